"""Small scenario builders shared by the tests."""
import copy

from exodiff.config import parse_config

# Two absorbing cells and 200 vesicles for 50 steps: the smallest config a
# CLI test can run, as TOML text to edit with str.replace.
SMALL_TOML = """
[run]
duration = "0.05 s"
dt = "1 ms"
seed = 1
[domain]
size = ["40 um", "40 um", "20 um"]
[cells]
layout = "list"
centers = [[10, 10, 10], [30, 30, 10]]
radius = "4 um"
type = "target"
[cell_types.target]
kappa = "inf"
[vesicles.ev]
radius = "50 nm"
count = 200
"""

BASE = {
    "run": {"duration": 0.1, "dt": 1e-3, "seed": 7},
    "domain": {"size": [100.0, 100.0, 100.0], "boundary": "reflect"},
    "cells": {"layout": "list", "centers": [], "radius": 5.0},
    "cell_types": {"target": {}},
    "vesicles": {"ev": {"radius": 0.05, "diffusion": 4.0, "count": 1000}},
    "output": {"positions": "none"},
}


def scenario(**sections):
    """A Config from BASE with the given sections merged in (one level deep):
    scenario(run={"duration": 1.0}, cells={...})."""
    raw = copy.deepcopy(BASE)
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict) and name not in ("cells", "cell_types", "vesicles"):
            raw[name].update(value)
        else:
            raw[name] = value
    return parse_config(raw)


def run_sim(cfg, backend, tmp_path, name="run.h5"):
    """Run a scenario; returns the Simulation (final arrays in sim.model.arrays)."""
    from exodiff.driver import Simulation
    sim = Simulation(cfg, backend=backend)
    sim.summary = sim.run(tmp_path / name)
    return sim


def z_score(simulated, exact, se):
    return abs(simulated - exact) / se
