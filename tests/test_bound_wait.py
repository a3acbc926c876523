"""BOUND and INTERNALIZED vesicles wait for their next event in one visit
(run.stepping = "adaptive"; kernels/leap.py, "Waits").

The law: with waits, the step of a bound vesicle's first event and its
channel (unbind, internalize, fuse) follow fixed stepping's geometric law
exactly, through observation horizons and a scheduled rate change, and so do
an internalized vesicle's endosomal events (escape, degrade, recycle):
chi-square against the exact probabilities, fixed seeds.  Bit identity: the
NumPy reference, Numba (1 and 2 threads, any chunking, with and without
receptor capacity) agree bit for bit on runs with waits (the CUDA host
harness too: tests/test_cuda_host.py), and an interrupted run resumed from
its snapshot or checkpoint gives the same file.
"""
import copy
import math

import numba
import numpy as np
import pytest
from scipy import stats

from exodiff.backends import select_backend
from exodiff.config import parse_config
from exodiff.kernels.constants import BOUND, DEGRADED, DELIVERED, FREE, INTERNALIZED
from exodiff.kernels.leap import wait_steps
from exodiff.model import build_model

from scenarios import scenario
from test_backends import _everything
from test_leaps import _assert_same, _run, assert_resumed_run_is_the_same

DT = 1e-3
N_STEPS = 600       # 0.6 s
OBSERVE = 0.05      # a horizon every 50 steps: waits are cut there
CHANGE = 0.25       # the scheduled rates change at step 250
COUNT = 20000


def _held(rates, stepping="adaptive", seed=5):
    """COUNT vesicles placed on 8 cells that never bind (κ = 0: an unbinding
    vesicle stays FREE, and releases are never rebindings): their first
    event's step and channel are the bound (or endosomal) law alone.
    ``rates``: the target type's rates, values or schedules."""
    return scenario(
        run={"duration": N_STEPS * DT, "dt": DT, "seed": seed, "observe_interval": OBSERVE,
             "stepping": stepping},
        domain={"size": [100.0, 100.0, 100.0], "boundary": "reflect"},
        cells={"layout": "list", "radius": 5.0, "type": "target",
               "centers": [[25.0 + 50 * (k & 1), 25.0 + 50 * (k >> 1 & 1), 25.0 + 50 * (k >> 2)]
                           for k in range(8)]},
        cell_types={"target": {"kappa": 0.0, **rates}},
        vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": COUNT}},
    )


def _schedule(before, after):
    return {"schedule": [[0, before], [CHANGE, after]]}


def _advance_held(cfg, state, backend="numba"):
    """All vesicles start in ``state`` on the cells (on their surfaces),
    advanced through the run with the rates of each piece of the schedule
    (as the driver does); returns the final arrays."""
    m = build_model(cfg)
    a = m.arrays
    n = a["state"].size
    cells = np.arange(n) % a["ccenter"].shape[0]
    a["state"][:] = state
    a["cell"][:] = cells
    a["pos"][:] = a["ccenter"][cells] + np.array([0.0, 0.0, 1.0]) * (a["cradius"][cells] + a["vradius"])[:, None]
    if state == INTERNALIZED:
        a["internalized_cell"][:] = cells
    b, _ = select_backend(backend)
    b.prepare(m)
    stops = [0, *m.change_steps.tolist(), m.n_steps]
    for n0, n1 in zip(stops[:-1], stops[1:]):
        b.update_constants(m, m.set_rates(cfg, n0))
        b.advance(n0, n1)
    b.fetch(m)
    return m.arrays


def _p(rate):
    return -math.expm1(-rate * DT)


def _check_law(step, channel, cells, n_rest, p_of, p_rest=None):
    """Chi-square of the observed (first-event step, channel) against the
    exact law: P(first event in step m) = Π_{l<m}(1 − p_l)·p_m, p_l the event
    probability of step l (``p_of``), channels by ``cells`` [(name, share
    before the change, share after)]; steps binned by equal mass.  The last
    cell: ``n_rest`` vesicles, of exact probability ``p_rest`` (default: no
    event in the run)."""
    p = np.array([p_of(m) for m in range(N_STEPS)])
    survive = np.concatenate([[1.0], np.cumprod(1.0 - p)])
    pm = survive[:-1] * p   # first event in step m
    edges = np.searchsorted(np.cumsum(pm) / pm.sum(), np.linspace(0, 1, 9)[1:-1])
    edges = np.unique(np.concatenate([[0], edges, [N_STEPS]]))
    change = int(round(CHANGE / DT))
    total = len(step) + n_rest
    observed, expected = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        for k, (name, before, after) in enumerate(cells):
            # the channel shares change at the schedule's change step
            share = np.where(np.arange(lo, hi) < change, before, after)
            got = np.count_nonzero((step >= lo) & (step < hi) & (channel == k))
            e = total * float((pm[lo:hi] * share).sum())
            if e == 0.0:  # a channel closed by the schedule
                assert got == 0, (name, lo, hi)
                continue
            observed.append(got)
            expected.append(e)
    observed.append(n_rest)
    expected.append(total * (survive[-1] if p_rest is None else p_rest))
    observed, expected = np.array(observed), np.array(expected)
    assert abs(expected.sum() - total) < 1e-6 * total or p_rest is None
    assert expected.min() > 20, expected.min()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = observed.size - 1
    assert chi2 < stats.chi2.ppf(1 - 1e-4, dof), (chi2, dof, observed, expected.round(1))


def _first_events_bound(a):
    """(step of the first event, channel 0 unbind / 1 internalize / 2 fuse)
    of the vesicles that left the bound state, and how many never did."""
    st = a["state"]
    left = st != BOUND
    steps = np.rint(a["bound_duration"] / DT).astype(np.int64) - 1  # the event step was bound too
    channel = np.where(st == FREE, 0, np.where(st == INTERNALIZED, 1, 2))
    assert set(np.unique(st[left]).tolist()) <= {FREE, INTERNALIZED, DELIVERED}
    # the times the kernels wrote agree with the bound time
    fused = st == DELIVERED
    np.testing.assert_allclose(a["fused_time"][fused], (steps[fused] + 1) * DT, rtol=1e-9)
    taken = st == INTERNALIZED
    np.testing.assert_allclose(a["internalized_time"][taken], (steps[taken] + 1) * DT, rtol=1e-9)
    return steps[left], channel[left], int(np.count_nonzero(~left))


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "scheduled"])
def test_bound_lifetime_and_channels_follow_the_geometric_law(scheduled):
    """k_off, k_int, k_fuse = 2, 1, 0.5 /s (p ≈ 3.5e-3 per step, so most
    waits run into a horizon), with ``scheduled`` k_off 2 -> 8 /s and k_fuse
    0.5 -> 0 at 0.25 s: first-event step and channel against the exact law."""
    k_off, k_int, k_fuse = ((_schedule(2.0, 8.0), 1.0, _schedule(0.5, 0.0)) if scheduled
                            else (2.0, 1.0, 0.5))
    a = _advance_held(_held({"k_off": k_off, "k_int": k_int, "k_fuse": k_fuse}), BOUND)
    before = (2.0, 1.0, 0.5)
    after = (8.0, 1.0, 0.0) if scheduled else before
    change = int(round(CHANGE / DT))

    def p_of(m):
        return _p(sum(before if m < change else after))
    cells = [(name, before[k] / sum(before), after[k] / sum(after))
             for k, name in enumerate(("unbind", "internalize", "fuse"))]
    steps, channel, censored = _first_events_bound(a)
    _check_law(steps, channel, cells, censored, p_of)
    # waits happened: the vesicles still bound took a few visits for their steps
    still = a["state"] == BOUND
    assert a["leap_steps"][still].min() > 0.8 * N_STEPS and np.any(a["leap_look"] < 0)


def test_endosome_events_follow_the_geometric_law():
    """INTERNALIZED vesicles with k_escape, k_degrade, k_recycle = 1, 2,
    1.5 /s, scheduled k_degrade 2 -> 0.5 at 0.25 s: the step of the
    endosome's event (escape and degradation times; recycling, which writes
    no time, by its share) against the exact law."""
    before, after = (1.0, 2.0, 1.5), (1.0, 0.5, 1.5)
    a = _advance_held(_held({"k_escape": 1.0, "k_degrade": _schedule(2.0, 0.5), "k_recycle": 1.5}),
                      INTERNALIZED)
    st = a["state"]
    recycled = a["recycled"] > 0
    assert np.all(a["recycled"] <= 1)  # κ = 0: a recycled vesicle never comes back
    escaped, degraded = st == DELIVERED, st == DEGRADED
    left = escaped | degraded
    steps = np.rint(np.where(escaped, a["escape_time"], a["degraded_time"])[left] / DT).astype(np.int64) - 1
    change = int(round(CHANGE / DT))

    def p_of(m):
        return _p(sum(before if m < change else after))
    # recycling writes no time: escape and degradation per bin of steps,
    # recycling in total (with the vesicles still in their endosome)
    cells = [("escape", before[0] / sum(before), after[0] / sum(after)),
             ("degrade", before[1] / sum(before), after[1] / sum(after))]
    p = np.array([p_of(m) for m in range(N_STEPS)])
    survive = np.concatenate([[1.0], np.cumprod(1.0 - p)])
    share = np.where(np.arange(N_STEPS) < change, before[2] / sum(before), after[2] / sum(after))
    p_recycle = float((survive[:-1] * p * share).sum())
    # the recycled and the never-left together are the chi-square's last cell
    _check_law(steps, np.where(escaped, 0, 1)[left], cells,
               int(np.count_nonzero(recycled)) + int(np.count_nonzero(st == INTERNALIZED)),
               p_of, p_recycle + survive[-1])
    n = st.size
    z = (np.count_nonzero(recycled) - n * p_recycle) / math.sqrt(n * p_recycle * (1 - p_recycle))
    assert abs(z) < 4.0, z
    assert np.any(a["leap_look"] < 0)  # events came due at the end of waits


def test_fixed_stepping_follows_the_same_law():
    """The oracle itself, on the same scene (so the law above is the one
    fixed stepping has): no waits, the same exact probabilities."""
    a = _advance_held(_held({"k_off": 2.0, "k_int": 1.0, "k_fuse": 0.5}, stepping="fixed", seed=6),
                      BOUND)
    steps, channel, censored = _first_events_bound(a)
    cells = [(name, s / 3.5, s / 3.5) for name, s in (("unbind", 2.0), ("internalize", 1.0), ("fuse", 0.5))]
    _check_law(steps, channel, cells, censored, lambda m: _p(3.5))
    assert a["leap_end"].max() == 0 and a["leap_look"].max() == 0 and a["leap_steps"].sum() == 0


def test_wait_steps_is_the_conditional_geometric_law():
    """Given u0 ≥ p, P(j ≥ m) = (1 − p)^(m − 1), capped at the horizon; no
    rate: the horizon; never below 1."""
    p, horizon = 0.01, 400
    u = np.linspace(p, 1.0, 200001)[1:-1]
    j = np.array([wait_steps(x, p, horizon) for x in u])
    assert j.min() >= 1 and j.max() == horizon
    for m in (1, 2, 10, 100, 300):
        np.testing.assert_allclose(np.mean(j >= m), (1 - p) ** (m - 1), atol=2e-5)
    assert wait_steps(0.5, 0.0, 17) == 17
    assert wait_steps(1.0 - 2.0 ** -33, 1e-300, 5) == 5  # no integer overflow


# -- bit identity ---------------------------------------------------------------
def scheduled_fates(capacity=0):
    """_everything with fates (bound and endosomal events) and a schedule of
    k_off and k_escape, so waits end at a rate change too."""
    raw = copy.deepcopy(_everything(capacity, fates=True).raw)
    target = raw["cell_types"]["target"]
    target["k_off"] = {"schedule": [[0, 4.0], [0.15, 1.0]]}
    target["k_escape"] = {"schedule": [[0, 2.0], [0.25, 0.5]]}
    return parse_config(raw)


SCENES = {"fates": lambda: _everything(0, fates=True), "capacity-fates": lambda: _everything(3, fates=True),
          "scheduled": scheduled_fates, "capacity-scheduled": lambda: scheduled_fates(3)}


def _waited(a):
    """Vesicles whose event came due at the end of a wait, and bound steps waited."""
    return np.count_nonzero(a["leap_look"] < 0), int(a["leap_steps"].sum())


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_numba_matches_numpy_with_waits(scene, tmp_path):
    cfg = SCENES[scene]()
    ref, summary = _run(cfg, "numpy", tmp_path, "ref.h5")
    one, _ = _run(cfg, "numba", tmp_path, "one.h5", threads=1)
    two, _ = _run(cfg, "numba", tmp_path, "two.h5", threads=2)
    due, _ = _waited(ref)
    assert due > 50
    assert {BOUND, INTERNALIZED, DELIVERED, DEGRADED} <= set(np.unique(ref["state"]).tolist())
    assert summary["steps_taken"] == summary["vesicle_steps"] - ref["leap_steps"].sum()
    _assert_same(one, ref)
    _assert_same(two, ref)


def test_chunking_changes_nothing_with_waits(tmp_path):
    """Straight through the backend in chunks of 7 steps (cutting through
    waits) and in one piece: the same state, leap fields included."""
    cfg = scheduled_fates()
    out = []
    for chunk in (7, None):
        m = build_model(cfg)
        b, _ = select_backend("numba")
        b.prepare(m)
        stops = [0, *m.change_steps.tolist(), m.n_steps]
        for n0, n1 in zip(stops[:-1], stops[1:]):
            b.update_constants(m, m.set_rates(cfg, n0))
            for n in range(n0, n1, chunk or (n1 - n0)):
                b.advance(n, min(n + (chunk or n1), n1))
        b.fetch(m)
        out.append({k: v.copy() for k, v in m.arrays.items()})
    assert _waited(out[0])[0] > 50
    for name in ("pos", "state", "cell", "bound_duration", "cell_bound_steps", "leap_end", "leap_steps",
                 "leap_look", "fused_time", "escape_time", "degraded_time", "recycled"):
        np.testing.assert_array_equal(out[0][name], out[1][name], err_msg=name)


@pytest.mark.parametrize("positions", ["all", "none"], ids=["from-snapshot", "from-checkpoint"])
def test_interrupt_and_resume_with_waits(positions, tmp_path):
    """Ctrl-C mid-run with vesicles waiting, then --resume: the same file."""
    raw = copy.deepcopy(scheduled_fates().raw)
    raw["output"] = {"positions": positions}
    raw["run"]["snapshot_interval"] = 0.1
    assert_resumed_run_is_the_same(parse_config(raw), tmp_path, 90,
                                   ("pos", "image", "state", "cell", "bound_duration", "cell_bound_steps"))


def test_numba_threads_agree_on_the_law_scene():
    """The law scene (20000 bound vesicles, a schedule) with 1 and 2 threads."""
    cfg = _held({"k_off": _schedule(2.0, 8.0), "k_int": 1.0, "k_fuse": 0.5})
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _advance_held(cfg, BOUND)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _advance_held(cfg, BOUND)
    finally:
        numba.set_num_threads(old)
    for name in ("state", "pos", "bound_duration", "cell_bound_steps", "leap_end", "leap_look", "leap_steps"):
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
