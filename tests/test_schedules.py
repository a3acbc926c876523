"""Rates that change in time (issue 18, item 4): any rate of a cell type and
a population's half_life take ``{ schedule = [[time, value], …] }``; a value
given for time t holds from step ceil(t/dt − 1e-9), the first step that
starts at or after t.  Births stay a Poisson process with the rate in force;
a schedule of one entry is the constant, bit for bit; the kernels take the
new constants exactly at the change step, on every backend, and across a
resume.
"""
import copy
import math

import h5py
import numpy as np
import pytest
from scipy import stats

from exodiff.config import parse_config
from exodiff.config_types import Schedule
from exodiff.derived import format_check
from exodiff.driver import Simulation
from exodiff.errors import ConfigError
from exodiff.kernels.constants import BOUND, DEGRADED, DELIVERED, FREE, INTERNALIZED
from exodiff.model import build_model, lognormal_per_cell, rate_constants
from exodiff.kernels import philox, state

from scenarios import BASE, run_sim
from test_backends import STATE_ARRAYS, _everything
from test_cuda_host import lib  # noqa: F401  (the host harness, a fixture)
from test_resume import CAPACITY, SAMPLED, _files, _kill_and_resume, one_thread, runs  # noqa: F401

# Sample-size tolerances: |z| below this many standard errors (two-sided
# p ≈ 6e-7 per check).
Z = 5.0


def _raw(**sections):
    raw = copy.deepcopy(BASE)
    raw.update(copy.deepcopy(sections))
    return raw


def _sched(*entries):
    return {"schedule": [list(e) for e in entries]}


# ------------------------------------------------------------------ the rule

def test_a_change_takes_effect_from_the_first_step_starting_at_or_after_it():
    s = Schedule((0.0, 0.03, 0.0305, 0.3), (1.0, 2.0, 3.0, 4.0))
    # 0.03 / 0.001 = 29.999999999999996: meant as step 30, and taken so
    assert s.steps(1e-3) == (0, 30, 31, 300)
    assert [s.at_step(n, 1e-3) for n in (0, 29, 30, 31, 299, 300, 10**6)] == [1, 1, 2, 3, 3, 4, 4]
    assert (s.at(0.0299), s.at(0.03), s.change_times, s.peak) == (1.0, 2.0, (0.03, 0.0305, 0.3), 4.0)
    # pieces on the step grid; an entry overridden within its step is left out
    assert Schedule((0.0, 0.2, 0.7), (1, 2, 3)).pieces(1.0) == [(0, 0.0, 1.0, 1), (2, 1.0, math.inf, 3)]
    assert Schedule.constant(5.0).pieces(0.1) == [(0, 0.0, math.inf, 5.0)]
    with pytest.raises(ValueError):
        s.value


def test_change_steps_lists_every_change_inside_the_run():
    raw = _raw(run={"duration": 1.0, "dt": 0.01},
               cell_types={"target": {"kappa": _sched((0, 1), ("0.25 s", 2)),
                                      "k_off": _sched((0, 1), ("0.25 s", 0), ("2 s", 1)),
                                      "k_int": _sched((0, 1), ("0.245 s", 2), ("0.25 s", 3))}},
               vesicles={"ev": {"radius": 0.05, "count": 10,
                                "half_life": _sched((0, "inf"), ("504 ms", "1 s"), ("0.999 s", "inf"))}})
    cfg = parse_config(raw)
    m = build_model(cfg)
    assert m.change_steps.dtype == np.int64
    assert m.change_steps.tolist() == [25, 51]
    # 0.999 s → step 100 = n_steps and 2 s → beyond: never in force, said by exodiff check
    assert any(w.startswith("cell_types.target.k_off: the change at 2 s comes after the end of the run")
               for w in cfg.warnings)
    assert any(w.startswith("vesicles.ev.half_life: the change at 999 ms") for w in cfg.warnings)
    assert ("cell_types.target.k_int: the entries at 245 ms and 250 ms both take effect at step 25 "
            "(run.dt = 10 ms); only the later applies") in cfg.warnings
    assert rate_constants(cfg, m.arrays["ctype"], 25)["type_frac_off"][0] == 0.0  # k_off 0, k_int 3
    assert build_model(parse_config(_raw())).change_steps.size == 0


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("value, key, message", [
    (_sched(("1 h", 1)), "schedule[0][0]", "the first entry must be at time 0"),
    (_sched((0, 1), ("2 h", 1), ("1 h", 2)), "schedule[2][0]", "times must increase: '1 h' is not after '2 h'"),
    (_sched((0, 1), ("1 h", 1), ("1 h", 2)), "schedule[2][0]", "is not after"),
    (_sched((0, 1), ("2 h", "-1 /s")), "schedule[1][1]", "must not be negative, got '-1 /s'"),
    (_sched((0, "2 um/s")), "schedule[0][1]", "expected a rate like '0.02 /s'"),
    (_sched((0, "nan")), "schedule[0][1]", "finite"),
    (_sched(("x", 1)), "schedule[0][0]", "expected a time like"),
    (_sched(("inf", 1)), "schedule[0][0]", "finite"),
    ({"schedule": [[0, 1], "2 h"]}, "schedule[1]", "expected [time, value]"),
    ({"schedule": [[0, 1, 2]]}, "schedule[0]", "expected [time, value]"),
    ({"schedule": []}, "schedule", "expected a list of [time, value] entries"),
    ({"schedule": [[0, 1]], "unit": "1/s"}, "unit", "unknown key"),
], ids=lambda x: x if isinstance(x, str) and len(x) < 20 else None)
def test_bad_schedule_entries_are_refused_naming_the_entry(value, key, message):
    raw = _raw(cell_types={"target": {"k_int": value}})
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert e.value.key == f"cell_types.target.k_int.{key}"
    assert message in str(e.value)


@pytest.mark.parametrize("value, key, message", [
    ({"median": _sched((0, 1)), "gsd": 0.5}, "gsd", "must be at least 1"),
    ({"schedule": [[0, 1]], "gsd": 2}, "schedule", "the schedule goes in the median"),
    ({"median": _sched((0, 1), (0, 2)), "gsd": 2}, "median.schedule[1][0]", "is not after"),
])
def test_a_spread_takes_its_schedule_in_the_median(value, key, message):
    with pytest.raises(ConfigError) as e:
        parse_config(_raw(cell_types={"target": {"kappa": value}}))
    assert e.value.key == f"cell_types.target.kappa.{key}"
    assert message in str(e.value)


def test_each_key_checks_its_entries_with_its_own_units_and_range():
    for table, key, value, message in (
            ("cell_types", "kappa", _sched((0, "1 /s")), "expected a reactivity"),
            ("cell_types", "k_off", _sched((0, 1), (1, "inf")), "finite"),
            ("vesicles", "half_life", _sched((0, "1 h"), (1, 0)), "must be positive"),
            ("cell_types", "secretion_rate", _sched((0, "1 um")), "expected a rate")):
        raw = _raw()
        section = raw[table]["target" if table == "cell_types" else "ev"]
        section[key] = value
        with pytest.raises(ConfigError, match=message):
            parse_config(raw)
    # kappa and half_life take "inf" in a schedule; units convert
    raw = _raw(cell_types={"target": {"kappa": _sched((0, 0), ("1 min", "inf"))}},
               vesicles={"ev": {"radius": 0.05, "half_life": _sched((0, "inf"), ("100 ms", "2 min"))}})
    cfg = parse_config(raw)
    assert cfg.cell_types["target"].kappa == Schedule((0.0, 60.0), (0.0, math.inf))
    assert cfg.vesicles["ev"].half_life == Schedule((0.0, 0.1), (math.inf, 120.0))


def test_secretion_schedules_per_population_and_with_a_spread():
    raw = _raw(vesicles={"a": {"radius": 0.05}, "b": {"radius": 0.05}},
               cell_types={"donor": {
                   "secretion_rate": {"a": _sched((0, "2 /s"), ("6 h", "0.6 /s")),
                                      "b": {"median": _sched((0, 0), ("1 h", "1 /min")), "gsd": 1.5}}}},
               cells={"layout": "list", "centers": [], "radius": 5.0})
    donor = parse_config(raw).cell_types["donor"]
    a, b = donor.secretions
    assert (a.population, a.rate, a.gsd) == ("a", Schedule((0.0, 21600.0), (2.0, 0.6)), 1.0)
    assert (b.population, b.rate, b.gsd) == ("b", Schedule((0.0, 3600.0), (0.0, pytest.approx(1 / 60))), 1.5)
    assert donor.secretion_rate == pytest.approx(2.0 + 1 / 60)  # at the peak of each: a donor type
    # a schedule that is 0 throughout secretes nothing
    raw["cell_types"]["donor"]["secretion_rate"]["b"] = _sched((0, 0), ("1 h", 0))
    assert [s.population for s in parse_config(raw).cell_types["donor"].secretions] == ["a"]


def test_check_prints_each_schedule_with_its_steps():
    raw = _raw(run={"duration": "10 h", "dt": "10 ms"},
               cell_types={"donor": {"secretion_rate": _sched(("0 h", "2 /s"), ("6 h", "0.6 /s")),
                                     "secretes": "ev"},
                           "target": {"kappa": _sched((0, "1 um/s"), ("6.000001 h", 0))}},
               cells={"layout": "list", "centers": [[20, 20, 20], [60, 60, 60]], "radius": 5.0,
                      "types": ["donor", "target"]})
    text = format_check(parse_config(raw))
    assert "secretes ev at 2 → 0.6 /s per cell" in text
    assert "κ = 1 → 0 µm/s" in text
    assert "P(bind per contact) on target = 0.0" in text and " → 0\n" in text
    assert "Schedules (a value given for time t holds from step ceil(t/dt), the first step" in text
    assert ("cell_types.donor.secretion_rate.ev [1/s]: 2 from 0 s (step 0), 0.6 from 6 h (step 2,160,000)"
            in text)
    # 6.000001 h = 21600.0036 s: the first step starting at or after it
    assert "0 from 6 h (step 2,160,001)" in text
    # the expected number secreted follows the schedule: 1 donor × (2 × 6 h + 0.6 × 4 h)
    assert "+ 51,840 expected secreted" in text


# ------------------------------------------------------------------ births

def test_births_per_window_are_poisson_with_the_window_rate():
    """8 donors secreting 2 /s, then 0.6 /s from t = 500.2 s; with dt = 1 s
    the change takes effect at 501 s.  The counts per donor and second in
    each window are iid Poisson(rate · 1 s): their mean and variance are
    within Z standard errors and their histogram passes a chi-square test."""
    rates, change = (2.0, 0.6), 500.2
    centers = [[15 + 30 * (i % 3), 15 + 30 * (i // 3 % 3), 50] for i in range(8)]
    raw = _raw(run={"duration": 1000.0, "dt": 1.0, "seed": 11},
               cells={"layout": "list", "centers": centers, "radius": 5.0, "type": "donor"},
               cell_types={"donor": {"secretion_rate": _sched((0, rates[0]), (change, rates[1])),
                                     "secretes": "ev"}},
               vesicles={"ev": {"radius": 0.05, "count": 0}})
    m = build_model(parse_config(raw))
    born = m.origin >= 0
    t, donor = m.birth_time[born], m.origin[born]
    for rate, (t0, t1) in zip(rates, ((0, 501), (501, 1000))):
        inside = (t >= t0) & (t < t1)
        counts = np.zeros((8, t1 - t0), dtype=np.int64)
        np.add.at(counts, (donor[inside], (t[inside] - t0).astype(np.int64)), 1)
        n = counts.size
        mean, var = counts.mean(), counts.var(ddof=1)
        assert abs(mean - rate) < Z * math.sqrt(rate / n), (rate, mean)
        # Var(s²) = (μ4 − σ⁴(n−3)/(n−1))/n, Poisson μ4 = λ(1 + 3λ)
        se_var = math.sqrt((rate * (1 + 3 * rate) - rate ** 2 * (n - 3) / (n - 1)) / n)
        assert abs(var - rate) < Z * se_var, (rate, var)
        top = int(stats.poisson.ppf(1 - 5 / n, rate))  # classes with ≥ ~5 expected, the tail pooled
        observed = np.bincount(np.minimum(counts.ravel(), top), minlength=top + 1)
        expected = n * np.append(stats.poisson.pmf(np.arange(top), rate), stats.poisson.sf(top - 1, rate))
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        assert chi2 < stats.chi2.ppf(1 - 1e-6, top), (rate, chi2)


def test_births_before_a_change_are_those_of_the_first_rate():
    """The first piece draws what a constant rate draws, up to the step the
    change takes effect from (501 s for a change at 500.2 s and dt = 1 s):
    births in [500.2 s, 501 s) are still the first rate's."""
    raw = _raw(run={"duration": 1000.0, "dt": 1.0, "seed": 3},
               cells={"layout": "list", "centers": [[20, 20, 20], [60, 60, 60]], "radius": 5.0,
                      "type": "donor"},
               cell_types={"donor": {"secretion_rate": 3.0, "secretes": "ev"}},
               vesicles={"ev": {"radius": 0.05, "count": 0}})
    constant = build_model(parse_config(raw))
    raw["cell_types"]["donor"]["secretion_rate"] = _sched((0, 3.0), (500.2, 0.5))
    scheduled = build_model(parse_config(raw))
    before = lambda m: np.sort(m.birth_time[m.birth_time < 501.0])
    assert np.count_nonzero((constant.birth_time >= 500.2) & (constant.birth_time < 501.0)) > 0
    np.testing.assert_array_equal(before(scheduled), before(constant))
    after = np.count_nonzero(scheduled.birth_time >= 501.0)
    assert abs(after - 2 * 0.5 * 499) < Z * math.sqrt(2 * 0.5 * 499)


# ------------------------------------------------------------------ bitwise

def _one_entry_schedules(raw):
    """``raw`` with every rate and half_life written as a schedule of one entry."""
    raw = copy.deepcopy(raw)
    for table in raw["cell_types"].values():
        for key in ("kappa", "k_off", "k_int", "secretion_rate"):
            if key in table and not isinstance(table[key], dict):
                table[key] = _sched((0, table[key]))
    for pop in raw["vesicles"].values():
        if "half_life" in pop:
            pop["half_life"] = _sched((0, pop["half_life"]))
    return raw


def _datasets(path):
    """Every dataset and attribute of a run file but the config text."""
    files = _files(path)
    files["parameters"][0].pop("config")
    for key in ("config_path", "overrides"):
        files["parameters"][0].pop(key, None)
    return files


def test_a_schedule_of_one_entry_is_the_constant_bit_for_bit(tmp_path):
    raw = copy.deepcopy(_everything(0).raw)
    raw["cell_types"]["donor"]["kappa"] = {"median": 5.0, "gsd": 1.5}
    raw["cell_types"]["donor"]["secretion_rate"] = {"median": 50.0, "gsd": 1.3}
    run_sim(parse_config(raw), "numba", tmp_path, "constant.h5")
    one = _one_entry_schedules(raw)
    one["cell_types"]["donor"]["kappa"] = {"median": _sched((0, 5.0)), "gsd": 1.5}
    one["cell_types"]["donor"]["secretion_rate"] = {"median": _sched((0, 50.0)), "gsd": 1.3}
    cfg = parse_config(one)
    assert all(s.is_constant for _, s in cfg.schedules())
    run_sim(cfg, "numba", tmp_path, "schedule.h5")
    a, b = _datasets(tmp_path / "constant.h5"), _datasets(tmp_path / "schedule.h5")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


def test_changes_to_the_same_value_leave_the_run_bit_for_bit(tmp_path):
    """37 changes of k_off, each to the value it had: the chunks end at each
    and the backend takes the constants anew, and nothing else changes.
    (Fixed stepping: in adaptive stepping a change step is also a horizon no
    leap passes, which moves the leaps: another, equally exact, sample.)"""
    raw = copy.deepcopy(_everything(3, stepping="fixed").raw)
    run_sim(parse_config(raw), "numba", tmp_path, "constant.h5")
    raw["cell_types"]["target"]["k_off"] = _sched(*[(k * 0.0107, 4.0) for k in range(37)])
    sim = run_sim(parse_config(raw), "numba", tmp_path, "changes.h5")
    assert sim.model.change_steps.size == 36
    a, b = _datasets(tmp_path / "constant.h5"), _datasets(tmp_path / "changes.h5")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


def _scheduled_everything(capacity):
    """_everything with every rate changing at off-grid times (dt = 2 ms)
    between observations, κ from finite to inf and back."""
    raw = copy.deepcopy(_everything(capacity).raw)
    donor, target = raw["cell_types"]["donor"], raw["cell_types"]["target"]
    donor["secretion_rate"] = _sched((0, 50.0), ("0.123 s", 10.0), ("0.3 s", 200.0))
    donor["kappa"] = {"median": _sched((0, 5.0), ("0.151 s", 40.0)), "gsd": 1.5}
    target["kappa"] = _sched((0, 30.0), ("0.123 s", "inf"), ("0.2401 s", 2.0))
    target["k_off"] = _sched((0, 4.0), ("0.05 s", 0.5), ("0.251 s", 20.0))
    target["k_int"] = _sched((0, 2.0), ("0.18 s", 30.0))
    target["k_fuse"] = _sched((0, 0), ("0.11 s", 3.0))
    target["k_escape"] = _sched((0, 1.0), ("0.2 s", 10.0))
    target["k_degrade"] = 2.0
    target["k_recycle"] = _sched((0, 5.0), ("0.29 s", 0))
    raw["vesicles"]["ev"]["half_life"] = _sched((0, 2.0), ("0.07 s", "inf"), ("0.33 s", 0.05))
    return parse_config(raw)


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_scheduled_runs_agree_bit_for_bit_on_numpy_and_numba(capacity, tmp_path):
    cfg = _scheduled_everything(capacity)
    steps = Simulation(cfg, backend="numpy").model.change_steps.tolist()
    assert steps == [25, 35, 55, 62, 76, 90, 100, 121, 126, 145, 150, 165]
    ref = run_sim(cfg, "numpy", tmp_path, "numpy.h5").model.arrays
    got = run_sim(cfg, "numba", tmp_path, "numba.h5").model.arrays
    assert {FREE, BOUND, INTERNALIZED, DELIVERED, DEGRADED} <= set(np.unique(ref["state"]).tolist())
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_cuda_backend_takes_the_new_constants_at_each_change(lib, tmp_path):  # noqa: F811
    """The cuda backend's update_constants (re-upload of the changed CONST
    arrays), with the host harness as its GPU, gives Numba's answer."""
    import fake_cupy
    cfg = _scheduled_everything(0)
    ref = run_sim(cfg, "numba", tmp_path, "numba.h5").model.arrays
    with fake_cupy.installed(lib):
        sim = Simulation(cfg, backend="cuda")
        assert sim.backend.name == "cuda"
        sim.run(tmp_path / "cuda.h5")
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(sim.model.arrays[name], ref[name], err_msg=name)


# ------------------------------------------------------------------ at the step

def test_kappa_and_its_spread_follow_the_schedule_per_cell():
    raw = _raw(run={"duration": 1.0, "dt": 0.01},
               cells={"layout": "random", "count": 30, "radius": 3.0},
               cell_types={"target": {"kappa": {"median": _sched((0, 2.0), ("0.5 s", 6.0), ("0.7 s", 0)),
                                                "gsd": 1.5}}})
    cfg = parse_config(raw)
    m = build_model(cfg)
    ctype, key = m.arrays["ctype"], philox.seed_key(cfg.run.seed)
    cells = np.arange(30)
    for step, kappa in ((0, 2.0), (49, 2.0), (50, 6.0), (69, 6.0), (70, 0.0)):
        got = rate_constants(cfg, ctype, step)["ckappa"]
        np.testing.assert_array_equal(got, lognormal_per_cell(kappa, 1.5, cells, 0, key))
    np.testing.assert_array_equal(m.arrays["ckappa"], rate_constants(cfg, ctype, 0)["ckappa"])
    names = m.set_rates(cfg, 50)
    assert {"ckappa", "type_p_event", "type_frac_off", "p_clear"} <= set(names)
    assert all(state.FIELDS[name].role == state.CONST for name in names)
    np.testing.assert_allclose(m.arrays["ckappa"], 3 * rate_constants(cfg, ctype, 0)["ckappa"], rtol=1e-15)


def test_clearance_changes_exactly_at_the_step(tmp_path):
    """Two populations, free in an empty box: ``on`` has no clearance until
    the change at 30.5 ms (step 31 of 1 ms), then a half-life of 50 ms;
    ``off`` the reverse.  No ``on`` vesicle is cleared before the end of
    step 31, none of ``off`` after the start of step 31, and the numbers
    cleared are binomial with the per-step probability of each rate."""
    h, dt, change, n_steps, N = 0.05, 1e-3, 31, 80, 20000
    raw = _raw(run={"duration": n_steps * dt, "dt": dt, "seed": 9},
               vesicles={"on": {"radius": 0.05, "diffusion": 1.0, "count": N,
                                "half_life": _sched((0, "inf"), ("30.5 ms", h))},
                         "off": {"radius": 0.05, "diffusion": 1.0, "count": N,
                                 "half_life": _sched((0, h), ("30.5 ms", "inf"))}})
    sim = run_sim(parse_config(raw), "numba", tmp_path)
    a = sim.model.arrays
    cleared = a["cleared_time"]
    on, off = cleared[a["species"] == 0], cleared[a["species"] == 1]
    p = -math.expm1(-math.log(2.0) / h * dt)
    first = (change + 1) * dt
    assert np.nanmin(on) == pytest.approx(first, abs=1e-12)
    assert np.nanmax(off) == pytest.approx(change * dt, abs=1e-12)
    for times, steps in ((on, n_steps - change), (off, change)):
        k = np.count_nonzero(~np.isnan(times))
        q = 1 - (1 - p) ** steps
        assert abs(k - N * q) < Z * math.sqrt(N * q * (1 - q)), (k, N * q)
    # and in the first step under the new rate alone: Binomial(N, p)
    k = np.count_nonzero(np.abs(on - first) < 1e-12)
    assert abs(k - N * p) < Z * math.sqrt(N * p * (1 - p))


def test_kappa_from_zero_to_inf_and_back_at_the_step(tmp_path):
    """Two cells: ``late`` is inert until 20.5 ms (step 21 of 1 ms), then
    binds every contact; ``early`` binds every contact until then, then
    none.  First bindings on ``late`` all end at or after step 21 (some in
    it), on ``early`` all before it (some in step 20)."""
    dt, n_steps = 1e-3, 60
    raw = _raw(run={"duration": n_steps * dt, "dt": dt, "seed": 21},
               domain={"size": [30.0, 30.0, 15.0], "boundary": "reflect"},
               cells={"layout": "list", "centers": [[8, 8, 7.5], [22, 22, 7.5]], "radius": 6.0,
                      "types": ["late", "early"]},
               cell_types={"late": {"kappa": _sched((0, 0), ("20.5 ms", "inf"))},
                           "early": {"kappa": _sched((0, "inf"), ("20.5 ms", 0))}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 20.0, "count": 20000}})
    a = run_sim(parse_config(raw), "numba", tmp_path).model.arrays
    t, cell = a["first_bound_time"], a["first_bound_cell"]
    late, early = t[cell == 0], t[cell == 1]
    assert late.size and early.size
    assert late.min() == pytest.approx(22 * dt, abs=1e-12)   # the end of step 21
    assert early.max() == pytest.approx(21 * dt, abs=1e-12)  # the end of step 20
    assert np.all(a["state"][cell >= 0] == BOUND)


def test_bound_rates_change_exactly_at_the_step(tmp_path):
    """Every vesicle starts bound to an inert cell (κ = 0: nothing rebinds);
    until 20.5 ms (step 21 of 1 ms) only unbinding at 30 /s, from then on
    only internalization at 50 /s.  The counts observed every ms: nothing
    internalized before step 21 ends, nothing freed after it starts, and the
    numbers are binomial with the per-step probabilities of each rate."""
    dt, change, n_steps, N = 1e-3, 21, 60, 20000
    raw = _raw(run={"duration": n_steps * dt, "dt": dt, "seed": 4, "observe_interval": dt},
               cells={"layout": "list", "centers": [[50, 50, 50]], "radius": 5.0},
               cell_types={"target": {"k_off": _sched((0, 30.0), ("20.5 ms", 0)),
                                      "k_int": _sched((0, 0), ("20.5 ms", 50.0))}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 1.0, "count": N}})
    sim = Simulation(parse_config(raw), backend="numba")
    a = sim.model.arrays
    e = a["pos"] - a["ccenter"][0]
    e /= np.linalg.norm(e, axis=1)[:, None]
    sim.model.load_state({"pos": a["ccenter"][0] + e * (a["cradius"][0] + a["vradius"])[:, None],
                          "state": BOUND, "cell": 0})
    sim.run(tmp_path / "bound.h5")
    with h5py.File(tmp_path / "bound.h5", "r") as f:
        free = f["observables/vesicles/free/value"][()]
        internalized = f["observables/vesicles/internalized/value"][()]
        steps = f["observables/vesicles/free/step"][()]
    assert steps.tolist() == list(range(n_steps + 1))
    assert np.all(internalized[:change + 1] == 0) and internalized[change + 1] > 0
    assert np.all(free[change:] == free[change]) and free[change] > free[change - 1]
    p_off, p_int = -math.expm1(-30.0 * dt), -math.expm1(-50.0 * dt)
    q = 1 - (1 - p_off) ** change
    assert abs(free[-1] - N * q) < Z * math.sqrt(N * q * (1 - q))
    r = (1 - q) * (1 - (1 - p_int) ** (n_steps - change))
    assert abs(internalized[-1] - N * r) < Z * math.sqrt(N * r * (1 - r))
    assert np.nanmin(a["internalized_time"]) == pytest.approx((change + 1) * dt, abs=1e-12)


# ------------------------------------------------------------------ resume

SCHEDULED = CAPACITY.replace('kappa = "5 um/s"', 'kappa = { schedule = [[0, "5 um/s"], ["0.05 s", "inf"], '
                                                 '["0.17 s", "2 um/s"]] }') \
                    .replace('k_off = "1 /s"', 'k_off = { schedule = [[0, "1 /s"], ["0.0505 s", "8 /s"]] }') \
                    .replace('secretion_rate = "300 /s"',
                             'secretion_rate = { schedule = [[0, "300 /s"], ["0.06 s", "50 /s"], '
                             '["0.21 s", "900 /s"]] }') \
                    .replace('half_life = "3 s"', 'half_life = { schedule = [[0, "3 s"], ["0.15 s", "0.05 s"]] }')


def test_resume_after_a_change_is_bitwise_identical(runs, tmp_path, capsys):
    """Killed after the changes at steps 50, 51 and 60, resumed from the
    checkpoint at step 100 (with the rates in force there, not those of
    step 0), through the changes at 150, 170 and 210: the same file as an
    uninterrupted run."""
    assert SCHEDULED.count("schedule") == 4
    cfg, ref, _ = runs("scheduled", SCHEDULED + SAMPLED)
    assert build_model(parse_config(__import__("tomllib").loads(SCHEDULED))).change_steps.tolist() == \
        [50, 51, 60, 150, 170, 210]
    said = _kill_and_resume(cfg, ref, tmp_path / "killed.h5", "chunk:130", capsys)
    assert "at step 100 of 300" in said
    with h5py.File(ref, "r") as f:  # the changes did change the run
        assert f["observables/vesicles/bound/value"][()].max() > 0


def test_endosomal_rates_change_exactly_at_the_step(tmp_path):
    """Every vesicle starts in an endosome of the one cell: degraded at
    30 /s until 20.5 ms (step 21 of 1 ms), from then on escaping at 40 /s.
    No escape ends before step 21 ends, no degradation after it starts, and
    the numbers are binomial with the per-step probabilities."""
    dt, change, n_steps, N = 1e-3, 21, 60, 20000
    raw = _raw(run={"duration": n_steps * dt, "dt": dt, "seed": 8},
               cells={"layout": "list", "centers": [[50, 50, 50]], "radius": 5.0},
               cell_types={"target": {"k_degrade": _sched((0, 30.0), ("20.5 ms", 0)),
                                      "k_escape": _sched((0, 0), ("20.5 ms", 40.0))}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 1.0, "count": N}})
    sim = Simulation(parse_config(raw), backend="numba")
    sim.model.load_state({"state": INTERNALIZED, "cell": 0})
    sim.run(tmp_path / "endosome.h5")
    a = sim.model.arrays
    escaped, degraded = a["escape_time"], a["degraded_time"]
    assert np.nanmin(escaped) == pytest.approx((change + 1) * dt, abs=1e-12)
    assert np.nanmax(degraded) == pytest.approx(change * dt, abs=1e-12)
    p_deg, p_esc = -math.expm1(-30.0 * dt), -math.expm1(-40.0 * dt)
    q = 1 - (1 - p_deg) ** change
    r = (1 - q) * (1 - (1 - p_esc) ** (n_steps - change))
    for k, p in ((np.count_nonzero(a["state"] == DEGRADED), q), (np.count_nonzero(a["state"] == DELIVERED), r)):
        assert abs(k - N * p) < Z * math.sqrt(N * p * (1 - p)), (k, N * p)
