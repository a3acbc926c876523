"""Fates after uptake (issue 18): fusion from the bound state, escape,
degradation and recycling from the endosome, the time bound per vesicle and
per cell; and with every new rate at 0, exodiff 0.3's results bit for bit.

Exact references: each state's events are competing first-order rates, drawn
once per step, so the step of the first event is geometric,
P(T > k·dt) = exp(−k_total·k·dt) exactly, and the channel is picked by the
rate shares independently of the time.  Tolerances come from the sample size
(binomial standard errors, the Kolmogorov–Smirnov bound), seeds are fixed.
"""
import hashlib
import math

import numpy as np
import pytest

from exodiff.analysis import MassBalance, open_run
from exodiff.config import parse_config
from exodiff.driver import Simulation
from exodiff.errors import ConfigError
from exodiff.kernels import step_numba, step_numpy
from exodiff.kernels.constants import (BOUND, DEGRADED, DELIVERED, FREE, INTERNALIZED,
                                       STATE_NAMES)
from exodiff.kernels.surface import unbind_distance

from scenarios import SMALL_TOML, scenario
from test_backends import _everything

# z beyond which a binomial share or a KS distance counts as a failure (a
# false alarm once in ~10⁴ runs of a test; the seeds are fixed anyway)
Z = 4.0
KS_ALPHA_1E4 = 2.15  # √(−ln(1e-4/2)/2): the KS critical value × √n at α = 1e-4

R_CELL, R_VES, D = 5.0, 0.05, 4.0


def _one_cell(n, dt, **rates):
    """n vesicles and one cell of type "target" with ``rates`` (kappa 0
    unless given: nothing binds, so every unbinding or recycling releases
    for good)."""
    return scenario(
        run={"duration": 1.0, "dt": dt, "seed": 11},
        domain={"size": [40.0, 40.0, 40.0], "boundary": "reflect"},
        cells={"layout": "list", "centers": [[20.0, 20.0, 20.0]], "radius": R_CELL},
        cell_types={"target": {"kappa": 0.0, **rates}},
        vesicles={"ev": {"radius": R_VES, "diffusion": D, "count": n}},
    )


def _start_on_the_cell(sim, state):
    """Every vesicle in ``state`` on cell 0 at time 0, on its contact sphere
    (as validate.py starts bound vesicles)."""
    a = sim.model.arrays
    e = a["pos"] - a["ccenter"][0]
    e /= np.linalg.norm(e, axis=1)[:, None]
    sim.model.load_state({"pos": a["ccenter"][0] + e * (a["cradius"][0] + a["vradius"])[:, None],
                          "state": state, "cell": 0})


def _binomial_ok(count, n, p):
    """count of n agrees with probability p within Z standard errors."""
    return abs(count / n - p) <= Z * math.sqrt(p * (1 - p) / n), (count, n, p)


def _ks_geometric(times, k_total, dt):
    """KS distance between event times on the step grid and their exact law
    P(T ≤ k·dt) = 1 − exp(−k_total·k·dt), over the grid."""
    steps = np.rint(np.asarray(times) / dt).astype(np.int64)
    assert np.allclose(steps * dt, times, rtol=1e-12, atol=0)  # on the grid
    k = np.arange(1, steps.max() + 1)
    empirical = np.searchsorted(np.sort(steps), k, side="right") / steps.size
    exact = -np.expm1(-k_total * k * dt)
    return float(np.max(np.abs(empirical - exact)))


def _mean_ok(times, k_total, dt):
    """The mean event time agrees with the geometric law's,
    E[T] = dt/(1 − q) with q = exp(−k_total·dt), Var[T] = dt²·q/(1 − q)²,
    within Z standard errors."""
    q = math.exp(-k_total * dt)
    mean, sd = dt / (1 - q), dt * math.sqrt(q) / (1 - q)
    return abs(np.mean(times) - mean) <= Z * sd / math.sqrt(len(times)), (np.mean(times), mean)


def _leave(start, channels, n, dt, steps, kernel=step_numba):
    """n vesicles start in state ``start`` on the cell at t = 0 and run
    ``steps`` steps, with ``channels`` {destination state: (rate key, rate)}:
    none may be left (the steps make that all but certain), and each
    destination holds its rate's share of them (binomial).  Returns the
    arrays and the total rate."""
    sim = Simulation(_one_cell(n, dt, **dict(channels.values())), backend="numpy")
    _start_on_the_cell(sim, start)
    kernel.advance(0, steps, sim.model.args())
    a = sim.model.arrays
    k = sum(rate for _, rate in channels.values())
    assert np.count_nonzero(a["state"] == start) == 0
    for state, (_, rate) in channels.items():
        ok, detail = _binomial_ok(np.count_nonzero(a["state"] == state), n, rate / k)
        assert ok, (STATE_NAMES[state], detail)
    return a, k


# -- from the endosome ---------------------------------------------------------


def test_endosome_branching_and_residence_time():
    """Vesicles internalized at t = 0 leave the endosome by escape, degradation
    or recycling in the ratio of the rates, after an exponential time with
    the total rate (on the step grid); recycled ones are FREE, all others
    DELIVERED or DEGRADED with their event time."""
    dt = 1e-3
    # 3000 steps: exp(−6·3) ≈ 1.5e-8 of each still inside
    a, k = _leave(INTERNALIZED, {DELIVERED: ("k_escape", 1.0), DEGRADED: ("k_degrade", 2.0),
                                 FREE: ("k_recycle", 3.0)}, 20000, dt, 3000)
    st = a["state"]
    escaped, degraded = st == DELIVERED, st == DEGRADED
    assert np.all(np.isfinite(a["escape_time"]) == escaped)
    assert np.all(np.isfinite(a["degraded_time"]) == degraded)
    assert np.all(a["recycled"] == (st == FREE))
    assert np.all(a["cell"][escaped | degraded] == 0) and np.all(a["cell"][st == FREE] == -1)
    times = np.concatenate([a["escape_time"][escaped], a["degraded_time"][degraded]])
    # the channel does not depend on the time: escapes and degradations
    # together follow the law of the first event
    assert _ks_geometric(times, k, dt) < KS_ALPHA_1E4 / math.sqrt(times.size)
    ok, detail = _mean_ok(times, k, dt)
    assert ok, detail
    for when in (a["escape_time"][escaped], a["degraded_time"][degraded]):
        assert _ks_geometric(when, k, dt) < KS_ALPHA_1E4 / math.sqrt(when.size)
    assert np.all(np.isnan(a["fused_time"])) and np.all(a["bound_duration"] == 0.0)


def test_a_recycled_vesicle_is_free_just_outside_its_cell():
    """Step by step: each vesicle recycled in a step is FREE at the end of it,
    outside contact by unbind_distance along its radius (as an unbinding
    vesicle), counted once in ``recycled``; species and origin stay."""
    n, dt = 2000, 1e-3
    sim = Simulation(_one_cell(n, dt, k_recycle=20.0), backend="numba")
    _start_on_the_cell(sim, INTERNALIZED)
    a = sim.model.arrays
    species = a["species"].copy()
    contact = R_CELL + a["vradius"]
    reach = unbind_distance(1.0, 1e-300, D, dt, R_CELL)  # the largest placement
    seen = 0
    for step in range(200):
        before = a["state"].copy()
        direction = a["pos"] - a["ccenter"][0]
        step_numba.advance(step, step + 1, sim.model.args())
        out = (before == INTERNALIZED) & (a["state"] == FREE)
        seen += out.sum()
        r = np.linalg.norm(a["pos"][out] - a["ccenter"][0], axis=1)
        assert np.all(r > contact[out]) and np.all(r - contact[out] < reach)
        # along the radius through the binding site
        cosine = np.einsum("ij,ij->i", a["pos"][out] - a["ccenter"][0], direction[out])
        np.testing.assert_allclose(cosine / (r * np.linalg.norm(direction[out], axis=1)), 1.0,
                                   rtol=1e-12)
        assert np.all(a["cell"][out] == -1) and np.all(a["recycled"][out] == 1)
        assert np.count_nonzero(a["state"] == INTERNALIZED) + np.count_nonzero(a["state"] == FREE) == n
    assert seen > 0.9 * n and np.array_equal(a["species"], species)
    assert np.array_equal(sim.model.origin, np.full(n, -1))


def test_recycled_vesicles_are_taken_up_again_and_every_vesicle_is_counted(tmp_path):
    """A run with every fate rate > 0 through the driver: at every
    observation the states add up to N and the per-cell counts to the state
    counts (MassBalance); recycled vesicles come back (bound or internalized
    again), keeping their origin; the fate table keeps the first
    internalization's time and cell."""
    cfg = _everything(0, fates=True)
    sim = Simulation(cfg, backend="numba")
    sim.run(tmp_path / "fates.h5")
    a = sim.model.arrays
    with open_run(tmp_path / "fates.h5") as run:
        balance = MassBalance().compute(run)
        assert balance.balanced and np.all(balance.total == run.n_vesicles)
        fates = run.fates
        assert set(STATE_NAMES) <= set(run.counts)
        assert run.counts["delivered"][-1] > 0 and run.counts["degraded"][-1] > 0
        np.testing.assert_array_equal(run.snapshot_state("cell_bound_steps", -1), a["cell_bound_steps"])
        np.testing.assert_array_equal(run.snapshot_state("recycled", -1), a["recycled"])
    again = (a["recycled"] > 0) & np.isin(a["state"], (BOUND, INTERNALIZED, DELIVERED, DEGRADED))
    assert again.any()
    np.testing.assert_array_equal(fates["origin"], sim.model.origin)
    np.testing.assert_array_equal(fates["recycled"], a["recycled"])
    inside = np.isfinite(a["internalized_time"])
    assert np.array_equal(inside, a["internalized_cell"] >= 0)
    # without recycling the cell of the first internalization is where it stays
    stayed = inside & (a["recycled"] == 0) & np.isnan(a["fused_time"])
    np.testing.assert_array_equal(a["internalized_cell"][stayed], a["cell"][stayed])


# -- from the bound state ------------------------------------------------------


@pytest.mark.parametrize("kernel", [step_numba, step_numpy], ids=["numba", "numpy"])
def test_fusion_competes_with_unbinding_and_internalization(kernel):
    """Vesicles bound at t = 0 (kappa 0: an unbinding releases for good)
    unbind, are internalized or fuse in the ratio k_off : k_int : k_fuse,
    after an exponential time with their sum; each was bound for exactly the
    steps up to its event, per vesicle and per cell."""
    dt = 1e-3
    # 3500 steps: exp(−5·3.5) ≈ 2.5e-8 of each still bound
    a, k = _leave(BOUND, {FREE: ("k_off", 1.0), INTERNALIZED: ("k_int", 1.5), DELIVERED: ("k_fuse", 2.5)},
                  20000 if kernel is step_numba else 4000, dt, 3500, kernel)
    st = a["state"]
    fused, inside = st == DELIVERED, st == INTERNALIZED
    assert np.all(np.isfinite(a["fused_time"]) == fused) and np.all(np.isnan(a["escape_time"]))
    assert np.all(a["cell"][fused] == 0) and np.all(a["internalized_cell"][inside] == 0)
    assert _ks_geometric(a["fused_time"][fused], k, dt) < KS_ALPHA_1E4 / math.sqrt(fused.sum())
    ok, detail = _mean_ok(a["fused_time"][fused], k, dt)
    assert ok, detail
    ended = np.where(fused, a["fused_time"], np.where(inside, a["internalized_time"], np.nan))
    np.testing.assert_allclose(a["bound_duration"][fused | inside], ended[fused | inside], rtol=1e-12)
    bound_steps = np.rint(a["bound_duration"] / dt).astype(np.int64)
    assert a["cell_bound_steps"][0] == bound_steps.sum() and bound_steps.min() >= 1


# -- defaults ------------------------------------------------------------------

# sha256 (first 20 hex digits) of each array after the two scenes of
# tests/test_backends.py (_everything(0) and _everything(3)) run on the Numba
# backend by exodiff 0.3.0 (main at 6df2482): the fields 0.3 had.
EXODIFF_0_3 = {
    0: {"bound_count": "de69397851ca4a3b1de3", "cell": "05a50069b00bacaee469",
        "cleared_time": "e16facdedd26f1dccfa0", "exit_time": "9a9471d3eabdcbd62d3e",
        "first_bound_cell": "046c362ae5b56f34574f", "first_bound_time": "354f33008223f425943f",
        "image": "7b33246f35a9c1ae599a", "internalized_time": "5c96b9cd20effe22bb13",
        "pos": "652e8fa3033f56e64782", "state": "2030151772a2b1f918de"},
    3: {"bound_count": "d1ac7587952b18719a8b", "cell": "acbca1b92eea58e20ddd",
        "cleared_time": "6eda343274d6f2b1d96e", "exit_time": "dfadd4aa4733a84221a1",
        "first_bound_cell": "acbca1b92eea58e20ddd", "first_bound_time": "eca23e105681b0761a29",
        "image": "e23f147d862737124ed7", "internalized_time": "36d14fe55b97c53de53d",
        "pos": "627d2ebfffd99a219629", "state": "7b8749ed6e96d308e497"},
}


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_without_the_new_rates_the_results_are_those_of_0_3(capacity, tmp_path):
    """All new rates 0: every array 0.3 had is bit for bit what 0.3 computed,
    and the fate table's internalized_cell is what 0.3 derived (the cell of
    an INTERNALIZED vesicle).  Fixed stepping: 0.3 had no leaps."""
    sim = Simulation(_everything(capacity, stepping="fixed"), backend="numba")
    sim.run(tmp_path / "r.h5")
    a = sim.model.arrays
    got = {name: hashlib.sha256(np.ascontiguousarray(a[name]).tobytes()).hexdigest()[:20]
           for name in EXODIFF_0_3[capacity]}
    assert got == EXODIFF_0_3[capacity]
    np.testing.assert_array_equal(a["internalized_cell"],
                                  np.where(a["state"] == INTERNALIZED, a["cell"], -1))
    assert not np.isin(a["state"], (DELIVERED, DEGRADED)).any() and not a["recycled"].any()


# -- config --------------------------------------------------------------------


def test_fate_rates_take_units_and_refuse_negative_values():
    raw = {"cell_types": {"target": {"kappa": "inf", "k_fuse": "6 /min", "k_escape": "1 /h",
                                     "k_degrade": 0.5, "k_recycle": "2e-3 /s"}}}
    import tomllib
    base = tomllib.loads(SMALL_TOML)
    base["cell_types"] = raw["cell_types"]
    t = parse_config(base).cell_types["target"]
    rates = [getattr(t, k).value for k in ("k_fuse", "k_escape", "k_degrade", "k_recycle")]
    assert rates == pytest.approx([0.1, 1 / 3600, 0.5, 2e-3])
    base["cell_types"]["target"]["k_recycle"] = "-1 /s"
    with pytest.raises(ConfigError, match="k_recycle") as e:
        parse_config(base)
    assert "must not be negative" in str(e.value)
