"""Run one peer-benchmark scenario in exodiff; print one JSON line.

    python run_exodiff.py S2 [--n N] [--steps S] [--threads T] [--backend numba]
                             [--stepping adaptive|fixed]

The scenario goes through the public API (config dict → Simulation → H5MD
file with positions off).  Cells get radius 5 − 0.05 µm and vesicles 0.05
µm, so the contact radius is the peers' 5 µm; the start positions are the
shared ones from scenarios.py, written into the model before the run.  A tiny
run of the same scenario first loads the JIT cache, so compilation is outside
the timed region.
"""
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402


def raw_config(g, n, seed=1, stepping="adaptive"):
    """exodiff config dict for the geometry g with n vesicles."""
    duration = g["steps"] * g["dt"]
    kappa = "inf" if math.isinf(g["kappa"]) else g["kappa"]
    cells = {"layout": "list", "centers": g["centers"].tolist(),
             "radius": scenarios.CONTACT_RADIUS - scenarios.VESICLE_RADIUS, "type": "target"}
    if len(g["centers"]) == 0:
        cells = {"layout": "list", "centers": [], "radius": 5.0}
    return {
        "run": {"duration": duration, "dt": g["dt"], "seed": seed, "stepping": stepping,
                "snapshot_interval": duration, "observe_interval": duration},
        "domain": {"size": [g["box"]] * 3, "boundary": "reflect"},
        "cells": cells,
        "cell_types": {"target": {"kappa": kappa}},
        "vesicles": {"ev": {"radius": scenarios.VESICLE_RADIUS, "diffusion": g["diffusion"], "count": n}},
        "output": {"positions": "none"},
    }


def run(g, n, backend, out, stepping):
    from exodiff.config import parse_config
    from exodiff.driver import Simulation
    from exodiff.kernels.constants import FREE
    sim = Simulation(parse_config(raw_config(g, n, stepping=stepping)), backend=backend)
    sim.model.arrays["pos"][:] = g["positions"][:n]
    w, c = time.perf_counter(), time.process_time()
    sim.run(out, overwrite=True)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return sim, wall, cpu, int((sim.model.arrays["state"] == FREE).sum())


def main(argv=None):
    p = scenarios.arg_parser()
    p.add_argument("--threads", type=int)
    p.add_argument("--backend", default="numba")
    p.add_argument("--stepping", default="adaptive", choices=("adaptive", "fixed"),
                   help="run.stepping (default: adaptive, exodiff's default)")
    a = p.parse_args(argv)
    n, steps, g = scenarios.from_args(a)

    import numba
    import exodiff
    if a.threads:
        numba.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run(dict(g, steps=2), min(n, 1000), a.backend, os.path.join(tmp, "warm.h5"), a.stepping)  # JIT in
        warm = time.perf_counter() - t0
        sim, wall, cpu, free = run(g, n, a.backend, os.path.join(tmp, "run.h5"), a.stepping)
    res = dict(tool="exodiff", version=exodiff.__version__, scenario=a.scenario, n=n, steps=steps,
               threads=numba.get_num_threads() if a.backend == "numba" else 1,
               wall_s=wall, cpu_s=cpu, setup_s=warm, free=free, absorbed_fraction=1.0 - free / n,
               options=f"{sim.backend.name} [{sim.backend.device}], {a.stepping} stepping")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
