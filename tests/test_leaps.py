"""Exact far-field leaps (run.stepping = "adaptive", kernels/leap.py).

Adaptive stepping is bitwise reproducible like fixed stepping: the Numba
kernel (vesicle by vesicle without capacity, step by step with it) matches
the NumPy reference, and the CUDA host harness matches both, on scenes with
cells, drift and settling, periodic, reflecting and absorbing faces,
clearance and births; thread count, chunking and interrupt + resume change
nothing; leaps happen and none passes a horizon; and adaptive equals fixed
stepping in distribution (free diffusion with drift: mean and MSD; folds
across drift-free faces and a floor touched under drift: mean and spread).
"""
import copy
import os
import re
import signal
from pathlib import Path

import numba
import numpy as np
import pytest

from exodiff.backends import select_backend
from exodiff.config import parse_config
from exodiff.driver import Simulation
from exodiff.errors import RunInterrupted
from exodiff.kernels import leap
from exodiff.kernels.constants import BOUND, CLEARED, EXITED, FREE
from exodiff.model import build_model

from scenarios import scenario
from test_backends import STATE_ARRAYS

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def sparse(capacity=0, stepping="adaptive", **run):
    """Few cells in a large box (so vesicles leap), with everything a leap
    must respect: periodic x, reflecting y, z reflecting below and absorbing
    above, drift and settling, binding (capacity-limited or not), clearance
    within leaps, secretion (births) and observations every 50 steps."""
    return scenario(
        run={"duration": 0.4, "dt": 2e-3, "seed": 99, "observe_interval": 0.1,
             "snapshot_interval": 0.2, "stepping": stepping, **run},
        medium={"gravity": True, "flow": [3.0, 0.0, -1.0]},
        domain={"size": [120.0, 100.0, 80.0],
                "boundary": {"x": "periodic", "y": "reflect", "z": ["reflect", "absorb"]},
                "kappa": 20.0},
        cells={"layout": "random", "count": 30, "radius": {"median": 4.0, "gsd": 1.2},
               "types": {"donor": 0.3, "target": 0.7}},
        cell_types={"donor": {"secretion_rate": 50.0, "secretes": "ev", "kappa": 5.0},
                    "target": {"kappa": "inf" if capacity else 30.0, "k_off": 4.0, "k_int": 2.0,
                               "capacity": capacity}},
        vesicles={"ev": {"radius": {"median": 0.5, "gsd": 1.4}, "density": 1200.0, "diffusion": 20.0,
                         "count": 1500, "half_life": 0.5, "cargo": {"miR": 3}}},
    )


def _run(cfg, backend, tmp_path, name, threads=None):
    sim = Simulation(cfg, backend=backend)
    old = numba.get_num_threads()
    if threads:
        numba.set_num_threads(threads)
    try:
        summary = sim.run(tmp_path / name)
    finally:
        numba.set_num_threads(old)
    return sim.model.arrays, summary


def _assert_same(a, b):
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The NumPy reference run of ``sparse(capacity)``, made once each."""
    made = {}

    def get(capacity):
        if capacity not in made:
            made[capacity] = _run(sparse(capacity), "numpy", tmp_path_factory.mktemp("ref"), "ref.h5")
        return made[capacity]
    return get


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_numba_matches_numpy_with_leaps(reference, capacity, tmp_path):
    ref, summary = reference(capacity)
    got, _ = _run(sparse(capacity), "numba", tmp_path, "b.h5")
    # leaps happen, cover much of the run, and the scene reaches every outcome
    assert summary["leaps"] > 1000 and ref["leap_steps"].sum() > 0.3 * summary["vesicle_steps"]
    assert summary["steps_taken"] == summary["vesicle_steps"] - ref["leap_steps"].sum()
    states = set(np.unique(ref["state"]).tolist())
    assert {FREE, BOUND, EXITED, CLEARED} <= states
    assert np.any(ref["image"] != 0)
    assert np.any(ref["leap_look"] > 0)  # put-off looks
    _assert_same(got, ref)


def test_leaps_clear_vesicles_at_the_step_of_clearance(reference):
    """Clearance within a leap: cleared at the end of a step, at a time no
    observation has passed (the leap ended there)."""
    ref, _ = reference(0)
    cleared = ref["state"] == CLEARED
    t = ref["cleared_time"][cleared]
    steps = t / ref["dt"]
    np.testing.assert_allclose(steps, np.round(steps), rtol=0, atol=1e-9)


def test_one_and_two_threads_and_any_chunking_agree(tmp_path):
    cfg = sparse(0)
    one, _ = _run(cfg, "numba", tmp_path, "a.h5", threads=1)
    two, _ = _run(cfg, "numba", tmp_path, "b.h5", threads=2)
    _assert_same(one, two)
    # chunks that cut through leaps (the driver cuts at observations only
    # when it must): steps of 7, straight through the backend
    m = build_model(cfg)
    backend, _ = select_backend("numba")
    backend.prepare(m)
    for n in range(0, m.n_steps, 7):
        backend.advance(n, min(n + 7, m.n_steps))
    backend.fetch(m)
    for name in ("pos", "image", "state", "cell", "leap_end", "leaps", "leap_steps", "leap_look"):
        np.testing.assert_array_equal(m.arrays[name], one[name], err_msg=name)


def test_no_leap_passes_a_horizon():
    """Advanced from horizon to horizon (observations, snapshots, the end),
    no vesicle is in flight past one, and no look is put off past one."""
    cfg = sparse(0, observe_interval=0.03, snapshot_interval=0.07)
    m = build_model(cfg)
    backend, _ = select_backend("numba")
    backend.prepare(m)
    every = m.arrays["horizon_every"]
    horizons = sorted({*range(0, m.n_steps, int(every[0])), *range(0, m.n_steps, int(every[1])),
                       m.n_steps} - {0})
    n = 0
    for h in horizons:
        backend.advance(n, h)
        backend.fetch(m)
        assert m.arrays["leap_end"].max() <= h and m.arrays["leap_look"].max() <= h, h
        n = h
    assert m.arrays["leaps"].sum() > 1000


def _interrupt_at(step):
    """A progress callback that sends this process SIGINT once past ``step``."""
    sent = []

    def progress(p):
        if p.step >= step and not sent:
            sent.append(p.step)
            os.kill(os.getpid(), signal.SIGINT)
    return progress


def assert_resumed_run_is_the_same(cfg, tmp_path, step, names):
    """Ctrl-C once past ``step``, then --resume: the same file as an
    uninterrupted run, and the same final arrays ``names``."""
    from test_resume import assert_same_file
    ref, _ = _run(cfg, "numba", tmp_path, "ref.h5")
    sim = Simulation(cfg, backend="numba")
    with pytest.raises(RunInterrupted):
        sim.run(tmp_path / "cut.h5", progress=_interrupt_at(step))
    sim = Simulation(cfg, backend="numba")
    sim.run(tmp_path / "cut.h5", resume=True)
    assert_same_file(tmp_path / "ref.h5", tmp_path / "cut.h5")
    for name in names:
        np.testing.assert_array_equal(sim.model.arrays[name], ref[name], err_msg=name)


@pytest.mark.parametrize("positions", ["all", "none"], ids=["from-snapshot", "from-checkpoint"])
def test_interrupt_and_resume_give_the_same_file(positions, tmp_path):
    """Ctrl-C mid-run (in flight vesicles saved with their landing steps),
    then --resume: the same file as an uninterrupted run, from the last
    snapshot (whose state has no leap fields) or from the checkpoint."""
    raw = copy.deepcopy(sparse(0).raw)
    raw["output"] = {"positions": positions}
    assert_resumed_run_is_the_same(parse_config(raw), tmp_path, 130, ("pos", "image", "state", "cell"))


def test_fixed_stepping_never_leaps(tmp_path):
    arrays, summary = _run(sparse(0, stepping="fixed"), "numba", tmp_path, "f.h5")
    assert summary["leaps"] == 0 and arrays["leap_end"].max() == 0 and arrays["leap_look"].max() == 0
    assert summary["steps_taken"] == summary["vesicle_steps"]


def _drifting(stepping, seed):
    """4000 vesicles from the centre of a reflecting 60 µm box with drift
    along x, for 1 s (MSD 6DT = 24 µm²): the faces, 30 µm away, matter
    little, and alike for both schemes."""
    return scenario(
        run={"duration": 1.0, "dt": 1e-3, "seed": seed, "stepping": stepping},
        medium={"flow": [4.0, 0.0, 0.0]},
        domain={"size": [60.0, 60.0, 60.0], "boundary": "reflect"},
        vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 4000,
                         "placement": {"point": [26.0, 30.0, 30.0]}}},
    )


def test_adaptive_equals_fixed_in_distribution(tmp_path):
    """Mean and mean square displacement after 1 s, adaptive against fixed
    (independent seeds) and against the exact free values (mean 4 µm along
    x, 2DT = 8 µm² per axis), within 4.5 standard errors of the sample."""
    out = {}
    for stepping, seed in (("adaptive", 1), ("fixed", 2)):
        arrays, summary = _run(_drifting(stepping, seed), "numba", tmp_path, f"{stepping}.h5")
        out[stepping] = arrays["pos"] - np.array([26.0, 30.0, 30.0])
        if stepping == "adaptive":
            # most of the way by leaps (the ball reaches the horizon: one each)
            assert summary["leaps"] >= 4000 and summary["steps_taken"] < 0.05 * summary["vesicle_steps"]
    n = out["fixed"].shape[0]
    for a, exact_mean in enumerate((4.0, 0.0, 0.0)):
        x, y = out["adaptive"][:, a], out["fixed"][:, a]
        se = np.sqrt((x.var() + y.var()) / n)
        assert abs(x.mean() - y.mean()) < 4.5 * se, a
        assert abs(x.mean() - exact_mean) < 4.5 * np.sqrt(x.var() / n), a
        dx, dy = (x - x.mean()) ** 2, (y - y.mean()) ** 2
        se2 = np.sqrt((dx.var() + dy.var()) / n)
        assert abs(dx.mean() - dy.mean()) < 4.5 * se2, a
        assert abs(dx.mean() - 8.0) < 4.5 * np.sqrt(dx.var() / n), a


def _slab(stepping, seed):
    """4000 vesicles in a reflecting 60 × 12 × 12 µm box with flow towards
    the floor, started 1.5 µm above it, for 1 s: leaps fold across the
    drift-free x and y faces (the narrow y axis many times over) and touch
    the floor under drift (kernels/leap.py, items 5 and 6)."""
    return scenario(
        run={"duration": 1.0, "dt": 1e-3, "seed": seed, "stepping": stepping},
        medium={"flow": [0.0, 0.0, -2.0]},
        domain={"size": [60.0, 12.0, 12.0], "boundary": "reflect"},
        vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 4000,
                         "placement": {"point": [30.0, 6.0, 1.5]}}},
    )


def test_folded_and_floor_touching_leaps_equal_fixed_stepping_in_distribution(tmp_path):
    """Per axis, the mean and the mean square about it after 1 s, adaptive
    against fixed stepping (independent seeds), within 4.5 standard errors."""
    out = {}
    for stepping, seed in (("adaptive", 3), ("fixed", 4)):
        arrays, summary = _run(_slab(stepping, seed), "numba", tmp_path, f"{stepping}.h5")
        out[stepping] = arrays["pos"]
        if stepping == "adaptive":
            assert summary["leaps"] > 8000 and summary["steps_taken"] < 0.5 * summary["vesicle_steps"]
    n = out["fixed"].shape[0]
    for a in range(3):
        x, y = out["adaptive"][:, a], out["fixed"][:, a]
        assert abs(x.mean() - y.mean()) < 4.5 * np.sqrt((x.var() + y.var()) / n), a
        dx, dy = (x - x.mean()) ** 2, (y - y.mean()) ** 2
        assert abs(dx.mean() - dy.mean()) < 4.5 * np.sqrt((dx.var() + dy.var()) / n), a


def test_fold_reflecting_is_the_triangle_wave():
    L = 12.0
    for x, want in ((5.0, 5.0), (-3.0, 3.0), (13.0, 11.0), (25.0, 1.0), (-25.0, 1.0), (35.0, 11.0),
                    (0.0, 0.0), (L, L), (-L, L), (2 * L, 0.0)):
        assert leap.fold_reflecting(x, L) == want, x


def test_cuda_leap_constants_mirror_leap_py():
    text = (KERNELS / "exodiff_step.cuh").read_text()
    found = dict(re.findall(r"constexpr (?:double|long long) ([A-Z][A-Z0-9_]*) = ([0-9.eE+-]+);", text))
    names = [n for n in dir(leap) if n.isupper() and isinstance(getattr(leap, n), (int, float))]
    assert names and set(names) <= set(found), sorted(set(names) - set(found))
    for name in names:
        assert float(found[name]) == getattr(leap, name), name


def test_the_margin_bounds_the_partial_step_by_e_minus_40():
    """erfc(M/√2) ≤ exp(−M²/2) ≤ exp(−BRIDGE_CUTOFF): a partial step (≤ dt)
    from LEAP_MARGIN_SIGMAS step lengths away reaches a surface with
    probability below e⁻⁴⁰ (kernels/leap.py, "Exactness")."""
    import math
    from exodiff.kernels.constants import BRIDGE_CUTOFF
    M = leap.LEAP_MARGIN_SIGMAS
    assert M * M / 2.0 >= BRIDGE_CUTOFF
    assert math.erfc(M / math.sqrt(2.0)) <= math.exp(-BRIDGE_CUTOFF)


def test_stepping_key_is_checked(tmp_path):
    from exodiff.errors import ConfigError
    raw = copy.deepcopy(sparse(0).raw)
    raw["run"]["stepping"] = "adaptve"
    with pytest.raises(ConfigError, match=r"run.stepping.*'adaptive'"):
        parse_config(raw)
    raw["run"].pop("stepping")
    assert parse_config(raw).run.stepping == "adaptive"
