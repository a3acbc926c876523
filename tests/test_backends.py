"""Every CPU backend gives the same answers (DESIGN §2): the Numba kernel
matches the NumPy reference bit for bit, at any thread count and chunking."""
import numba
import numpy as np
import pytest

from exodiff.driver import Simulation
from exodiff.kernels.constants import (BOUND, CLEARED, DEGRADED, DELIVERED, EXITED, FREE,
                                      INTERNALIZED)
from exodiff.kernels.state import FETCHED

from scenarios import scenario

# everything a step changes, bound_count included
STATE_ARRAYS = FETCHED


def _everything(capacity, fates=False, stepping="adaptive"):
    """A small scenario that exercises every branch of the step: periodic,
    reflecting and partially absorbing faces, drift and settling, dense cells
    with binding (capacity-limited or not), unbinding, internalization,
    clearance and secretion; with ``fates`` also fusion, escape, degradation
    and recycling (issue 18); ``stepping``: run.stepping."""
    after = {"k_fuse": 1.5, "k_escape": 2.0, "k_degrade": 3.0, "k_recycle": 4.0} if fates else {}
    return scenario(
        run={"duration": 0.4, "dt": 2e-3, "seed": 1234, "observe_interval": 0.1, "stepping": stepping},
        medium={"gravity": True, "flow": [3.0, 0.0, -1.0]},
        domain={"size": [40.0, 40.0, 30.0],
                "boundary": {"x": "periodic", "y": "reflect", "z": ["reflect", "absorb"]},
                "kappa": 20.0},
        cells={"layout": "random", "count": 40, "radius": {"median": 3.0, "gsd": 1.2},
               "types": {"donor": 0.25, "target": 0.75}},
        cell_types={"donor": {"secretion_rate": 50.0, "secretes": "ev", "kappa": 5.0},
                    "target": {"kappa": "inf" if capacity else 30.0, "k_off": 4.0, "k_int": 2.0,
                               "capacity": capacity, **after}},
        vesicles={"ev": {"radius": {"median": 0.5, "gsd": 1.4}, "density": 1200.0, "diffusion": 20.0,
                         "count": 3000, "half_life": 2.0, "cargo": {"miR": 3}}},
    )


def _run(cfg, backend, tmp_path, threads=None, name="r.h5"):
    sim = Simulation(cfg, backend=backend)
    old = numba.get_num_threads()
    if threads:
        numba.set_num_threads(threads)
    try:
        sim.run(tmp_path / name)
    finally:
        numba.set_num_threads(old)
    return sim.model.arrays


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_numba_matches_numpy_reference_bit_for_bit(capacity, tmp_path):
    cfg = _everything(capacity)
    ref = _run(cfg, "numpy", tmp_path, name="a.h5")
    got = _run(cfg, "numba", tmp_path, name="b.h5")
    # the scenario must reach every state, or the comparison proves little
    states = set(np.unique(ref["state"]).tolist())
    assert {FREE, BOUND, INTERNALIZED, EXITED, CLEARED} <= states
    assert np.any(ref["image"] != 0)
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_numba_matches_numpy_reference_with_every_fate(capacity, tmp_path):
    """All the rates after uptake > 0: fusion, escape, degradation and
    recycling, the bound time per vesicle and per cell, bit for bit."""
    cfg = _everything(capacity, fates=True)
    ref = _run(cfg, "numpy", tmp_path, name="a.h5")
    got = _run(cfg, "numba", tmp_path, name="b.h5")
    states = set(np.unique(ref["state"]).tolist())
    assert {FREE, BOUND, INTERNALIZED, DELIVERED, DEGRADED} <= states
    for when in ("escape_time", "degraded_time", "fused_time"):
        assert np.any(np.isfinite(ref[when])), when
    assert np.any(ref["recycled"] > 0) and np.all(ref["cell_bound_steps"] >= 0)
    assert ref["cell_bound_steps"].sum() > 0
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize("capacity,fates", [(0, False), (0, True), (3, True)],
                         ids=["", "fates", "capacity-fates"])
def test_numba_is_identical_for_one_and_two_threads(capacity, fates, tmp_path):
    cfg = _everything(capacity, fates)
    one = _run(cfg, "numba", tmp_path, threads=1, name="a.h5")
    two = _run(cfg, "numba", tmp_path, threads=2, name="b.h5")
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)


def _long_waits():
    """_everything(3) over 5000 steps in one observation interval, with
    slow bound-state rates: waits (capped at the horizon) and births more
    than the synced loop's calendar ring ahead."""
    import copy
    from exodiff.config import parse_config
    raw = copy.deepcopy(_everything(3, fates=True).raw)
    raw["run"].update(duration=10.0, observe_interval=10.0)
    raw["cell_types"]["target"].update(k_off=0.05, k_int=0.05)
    raw["cell_types"]["donor"]["secretion_rate"] = 10.0
    raw["vesicles"]["ev"]["count"] = 300
    return parse_config(raw)


def test_synced_loop_windows_and_laps_change_nothing(tmp_path, monkeypatch):
    """The receptor-capacity loop (kernels/step_numba.py, "the synced
    loop") gives the NumPy reference's bits whatever its window (phase A's
    halts and phase B's runs fall elsewhere), with waits and births more
    than one calendar ring ahead (met once per lap)."""
    from exodiff.kernels import step_numba
    cfg = _long_waits()
    ref = _run(cfg, "numpy", tmp_path, name="ref.h5")
    dt = cfg.run.dt
    lap = step_numba.SYNCED_RING * dt
    # BOUND without a break for over a lap: its wait reaches past the ring
    since = cfg.run.duration - ref["first_bound_time"]
    assert np.any((ref["state"] == BOUND) & (ref["bound_duration"] > lap)
                  & np.isclose(ref["bound_duration"], since, atol=2 * dt))
    assert np.any(ref["birth_step"] > step_numba.SYNCED_RING)
    assert {BOUND, FREE, DEGRADED} <= set(ref["state"].tolist()) and np.any(np.isfinite(ref["internalized_time"]))
    for window in (1, 7, step_numba.SYNCED_WINDOW):
        monkeypatch.setattr(step_numba, "SYNCED_WINDOW", window)
        got = _run(cfg, "numba", tmp_path, name=f"w{window}.h5")
        for name in STATE_ARRAYS:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{name}, window {window}")


def test_chunking_does_not_change_the_result(tmp_path):
    """Observation times cut the run into chunks; the counter-based streams
    make the trajectory independent of where the cuts fall.  (Fixed stepping:
    in adaptive stepping observations are horizons no leap passes, so moving
    them changes the leaps; tests/test_leaps.py cuts chunks without moving
    them.)"""
    import copy
    from exodiff.config import parse_config
    raw = copy.deepcopy(_everything(0).raw)
    raw["run"]["stepping"] = "fixed"
    a = _run(parse_config(raw), "numba", tmp_path, name="a.h5")
    raw["run"]["observe_interval"] = 0.014
    b = _run(parse_config(raw), "numba", tmp_path, name="b.h5")
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_far_cell_rejection_skips_only_cells_out_of_reach():
    """The kernels skip a cell when r1 > Rc + |p1 − p0| + FAR_SIGMAS·√(D dt)
    (r1: end point to centre) without computing its bridge probability; that
    is exact only if every such cell has d0·d1/(D dt) ≥ BRIDGE_CUTOFF.  Checked
    just past the threshold, including the worst case (a step straight away
    from the cell, d0 = d1 − |step|), over steps of 0–3 σ: the bound is
    tightest for the shortest steps, where d0·d1/(D dt) → FAR_SIGMAS²."""
    from exodiff.kernels.constants import BRIDGE_CUTOFF, FAR_SIGMAS
    rng = np.random.default_rng(7)
    n = 200_000
    Ddt = rng.uniform(1e-4, 1.0, n)
    Rc = rng.uniform(0.5, 10.0, n)
    out = rng.normal(size=(n, 3))
    out /= np.linalg.norm(out, axis=1)[:, None]
    step = rng.normal(size=(n, 3))
    step[: n // 2] = out[: n // 2]  # worst case: straight away from the cell
    length = rng.uniform(0.0, 3.0, n)
    length[::100] = 1e-9
    step *= (np.sqrt(2 * Ddt) * length / np.linalg.norm(step, axis=1))[:, None]
    margin = np.linalg.norm(step, axis=1) + FAR_SIGMAS * np.sqrt(Ddt) + 1e-12
    p1 = out * ((Rc + margin) * (1 + 1e-12))[:, None]  # just out of reach
    p0 = p1 - step
    d1 = np.linalg.norm(p1, axis=1) - Rc
    d0 = np.linalg.norm(p0, axis=1) - Rc
    assert np.all(d0 * d1 / Ddt >= BRIDGE_CUTOFF)


def test_numpy_backend_runs_without_numba(tmp_path):
    """The NumPy reference needs no Numba (DESIGN §3: slow and obvious): in
    a process where ``import numba`` fails, a run on it (model building, grid,
    cell packing, stepping, writing) gives this process's answers bit for bit;
    auto falls back to it, and --backend numba says why it cannot run."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path
    cfg = _everything(3)
    (tmp_path / "run.toml").write_text(cfg.to_toml())
    code = textwrap.dedent(f"""
        import sys
        sys.modules["numba"] = None  # `import numba` raises ImportError from here on
        import numpy as np
        from exodiff.config import load_config
        from exodiff.driver import Simulation
        sim = Simulation(load_config({str(tmp_path / "run.toml")!r}), backend="numpy")
        sim.run({str(tmp_path / "nonumba.h5")!r})
        assert sys.modules["numba"] is None
        from exodiff.backends import select_backend
        from exodiff.errors import InputError
        try:
            select_backend("numba")
            raise AssertionError("--backend numba without Numba")
        except InputError as e:
            assert "Numba is not installed" in str(e)
        auto, note = select_backend("auto")
        assert auto.name in ("numpy", "cuda"), note
        np.savez({str(tmp_path / "state.npz")!r}, **{{k: sim.model.arrays[k] for k in {STATE_ARRAYS!r}}})
    """)
    tests = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tests)
    assert done.returncode == 0, done.stderr
    ref = _run(cfg, "numpy", tmp_path, name="ref.h5")
    got = np.load(tmp_path / "state.npz")
    assert {FREE, BOUND, INTERNALIZED} <= set(np.unique(ref["state"]).tolist())
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_kernel_arrays_follow_their_declarations():
    """kernels/state.py: the model's arrays have the declared dtypes and
    consistent sizes, the kernels' containers are those very arrays (their
    updates reach the model), and arrays that disagree are refused."""
    from exodiff.kernels import state
    from exodiff.model import build_model
    model = build_model(_everything(3))
    a = model.arrays
    for name, f in state.FIELDS.items():
        assert np.asarray(a[name]).dtype == np.dtype(f.dtype), name
        if f.per_vesicle:
            assert a[name].shape[0] == model.n_vesicles, name
    args = model.args()
    assert args.vesicles.pos is a["pos"] and args.cells.bound_count is a["bound_count"]
    with pytest.raises(TypeError, match="state"):
        state.pack(dict(a, state=a["state"].astype(np.int32)))
    with pytest.raises(ValueError, match="cradius"):
        state.typed(dict(a, cradius=np.ones(a["cradius"].size + 1)))
    with pytest.raises(ValueError, match="missing"):
        state.typed({k: v for k, v in a.items() if k != "vradius"})
    # the one way in from outside: a STATE field, and the bound count follows
    model.load_state({"state": BOUND, "cell": 0})
    assert a["bound_count"][0] == model.n_vesicles and a["bound_count"][1:].sum() == 0
    with pytest.raises(KeyError):
        model.load_state({"diffusion": 1.0})
