"""What a new user types: units on every argument, refusals of what cannot
be meant, warnings on the implausible (silenced per key), keys in the wrong
section, and `exodiff check` reporting the cells the run places."""
import copy

import numpy as np
import pytest

from exodiff.cli import main
from exodiff.config import parse_config
from exodiff.derived import derived_parameters, format_check
from exodiff.errors import ConfigError, InputError
from exodiff.layouts import make_cells

from scenarios import SMALL_TOML

MINIMAL = {
    "run": {"duration": 10, "dt": 0.01},
    "domain": {"size": [50, 50, 50]},
    "cell_types": {"t": {"kappa": 1}},
    "cells": {"count": 4, "radius": "5 um"},
    "vesicles": {"ev": {"radius": "50 nm", "count": 10}},
}


def config(**sections):
    """MINIMAL with sections merged in one level deep (None removes one)."""
    raw = copy.deepcopy(MINIMAL)
    for name, value in sections.items():
        if value is None:
            raw.pop(name)
        elif isinstance(value, dict) and name in raw:
            for key, item in value.items():
                if isinstance(item, dict) and isinstance(raw[name].get(key), dict):
                    raw[name][key].update(item)
                else:
                    raw[name][key] = item
        else:
            raw[name] = value
    return raw


def refusal(raw):
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_minimal_config_has_no_warnings():
    assert parse_config(config()).warnings == []


# ------------------------------------------------------------ refusals

@pytest.mark.parametrize("raw, key, reason", [
    (config(cell_types={"u": {}}, cells={"types": {"t": 0.6, "u": 0.5}}),
     "cells.types", "fractions must sum to 1"),
    (config(vesicles={"ev": {"radius": 20}}), "vesicles.ev.radius",
     "20 = 20 µm is not smaller than the smallest cell (radius 5 µm); a number without a unit is in µm "
     "(for nanometres write \"20 nm\")"),
    (config(vesicles={"ev": {"radius": 50}}), "vesicles.ev.radius",
     "does not fit in the 50 × 50 × 50 µm domain; a number without a unit is in µm"),
    (config(vesicles={"ev": {"radius": {"median": "6 um", "gsd": 1.1}}}), "vesicles.ev.radius",
     "not smaller than the smallest cell"),
    (config(domain={"size": [50, 50, 8]}), "domain.size",
     "50 × 50 × 8 µm is smaller than a cell (radius 5 µm"),
])
def test_refuses_what_cannot_be_meant(raw, key, reason):
    message = refusal(raw)
    assert message.startswith(f"{key}: ") and reason in message, message


def test_fractions_that_round_to_one_pass():
    cfg = parse_config(config(cell_types={"u": {}, "v": {}},
                              cells={"count": 3, "types": {"t": 0.333, "u": 0.333, "v": 0.333}}))
    assert sum(cfg.cells.types.values()) == pytest.approx(1.0)


def test_refusal_through_the_cli_exits_2_with_one_error_line(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(SMALL_TOML.replace('radius = "50 nm"', "radius = 5"))
    out = tmp_path / "o.h5"
    assert main(["run", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: vesicles.ev.radius: 5 = 5 µm is not smaller"), err
    assert not out.exists()


# ------------------------------------------------------------ warnings

@pytest.mark.parametrize("raw, key, reason", [
    (config(vesicles={"ev": {"radius": "5 nm"}}), "vesicles.ev.radius",
     "5 nm is outside the usual 10 nm–1 µm of extracellular vesicles"),
    (config(cells={"count": 0}, vesicles={"ev": {"radius": 2}}), "vesicles.ev.radius",
     "2 µm is outside the usual 10 nm–1 µm of extracellular vesicles; a number without a unit is in µm"),
    (config(cells={"radius": "0.5 um"}, vesicles={"ev": {"radius": "20 nm"}}), "cells.radius",
     "cell radii 0.5 µm are outside the usual 1–100 µm"),
    (config(domain={"size": [500, 500, 500]}, cells={"radius": "150 um"}), "cells.radius",
     "cell radii 150 µm are outside the usual 1–100 µm"),
    (config(vesicles={"ev": {"diffusion": "500 um^2/s"}}), "vesicles.ev.diffusion",
     "D = 500 µm²/s (given) is outside the usual 0.01–100 µm²/s"),
    (config(medium={"viscosity": "100 Pa*s"}), "vesicles.ev.diffusion",
     "(Stokes–Einstein) is outside the usual 0.01–100 µm²/s"),
    (config(run={"observe_interval": "0.05 s"}), "run.observe_interval",
     "only 5 steps of run.dt between observations (fewer than 10)"),
    (config(run={"snapshot_interval": "0.02 s", "observe_interval": "1 s"}), "run.snapshot_interval",
     "only 2 steps of run.dt between snapshots"),
    (config(medium={"temperature": "60 degC"}), "medium.temperature",
     "60 °C is outside the usual 0–45 °C"),
    (config(medium={"viscosity": "0.1 mPa*s"}), "medium.viscosity",
     "0.1 mPa·s is outside the usual 0.3–10000 mPa·s"),
])
def test_warns_on_the_implausible_and_quiet_silences_it(raw, key, reason):
    cfg = parse_config(raw)
    mine = [w for w in cfg.warnings if w.startswith(f"{key}: ")]
    assert len(mine) == 1 and reason in mine[0], cfg.warnings
    assert f"Warning: {mine[0]}" in format_check(cfg)
    raw["check"] = {"quiet": [key]}
    assert not [w for w in parse_config(raw).warnings if w.startswith(f"{key}: ")]


def test_quiet_silences_a_table_and_nothing_else():
    raw = config(vesicles={"ev": {"radius": "5 nm", "diffusion": 4}}, run={"observe_interval": "0.05 s"})
    raw["check"] = {"quiet": ["vesicles.ev"]}
    warnings = parse_config(raw).warnings
    assert len(warnings) == 1 and warnings[0].startswith("run.observe_interval: ")
    raw["check"] = {"quiet": ["vesicles.e"]}  # a prefix of a name is not a table above the key
    assert len(parse_config(raw).warnings) == 2
    raw["check"] = {"quiet": "vesicles.ev"}
    assert refusal(raw).startswith("check.quiet: expected a list of keys")


# ------------------------------------------------------------ misplaced keys

@pytest.mark.parametrize("raw, message", [
    (config(vesicles={"ev": {"kappa": "1 um/s"}}),
     "vesicles.ev.kappa: unknown key here; kappa belongs in [cell_types.NAME] or [domain]"),
    (config(cell_types={"t": {"half_life": "1 h"}}),
     "cell_types.t.half_life: unknown key here; half_life belongs in [vesicles.NAME]"),
    (config(cells={"dt": 1}), "cells.dt: unknown key here; dt belongs in [run]"),
    (dict(config(), seed=3), "seed: unknown key here; seed belongs in [run]"),
    (config(run={"sed": 3}), "run.sed: unknown key; did you mean 'seed'?"),
])
def test_a_key_in_the_wrong_section_says_where_it_belongs(raw, message):
    assert refusal(raw) == message


# ------------------------------------------------------------ check vs the placed cells

POLYDISPERSE = config(
    run={"dt": "5 ms", "seed": 3},
    domain={"size": [300, 300, 300]},
    cell_types={"m": {"kappa": 1}, "u": {}},
    cells={"count": 700, "radius": {"median": "6 um", "gsd": 1.15}, "types": {"m": 0.375, "u": 0.625},
           "gap": 0.5})


def test_check_reports_the_cells_the_run_places():
    cfg = parse_config(POLYDISPERSE)
    placed = make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), cfg.run.seed)
    d = derived_parameters(cfg)
    assert d.n_cells == len(placed)
    assert d.min_cell_radius == placed.radii.min() and d.max_cell_radius == placed.radii.max()
    assert d.min_cell_radius < 0.8 * 6.0  # the median is not the smallest
    names = list(cfg.cell_types)
    assert d.cells_per_type == {n: int((placed.types == names.index(n)).sum()) for n in ("m", "u")}
    text = format_check(cfg)
    assert f"m: {d.cells_per_type['m']} cells" in text
    assert f"of the smallest cell radius {placed.radii.min():.3g} µm" in text


def test_suggested_dt_keeps_the_smallest_placed_cell_within_the_step_limit():
    raw = copy.deepcopy(POLYDISPERSE)
    raw["run"]["dt"] = "0.1 s"
    cfg = parse_config(raw)
    (warning,) = [w for w in cfg.warnings if "step length" in w]
    suggested = warning.split('run.dt = "')[1].split('"')[0]
    raw["run"]["dt"] = suggested
    cfg = parse_config(raw)
    placed = make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), cfg.run.seed)
    step = derived_parameters(cfg).populations["ev"].step
    assert step <= 0.15 * placed.radii.min()
    assert not [w for w in cfg.warnings if "step length" in w]


# ------------------------------------------------------------ units on arguments

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("units")
    path = folder / "c.toml"
    path.write_text(SMALL_TOML.replace('duration = "0.05 s"', 'duration = "0.05 s"\n'
                                       'snapshot_interval = "10 ms"\nobserve_interval = "10 ms"'))
    out = folder / "small.h5"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 0
    return out


def test_analyses_take_times_and_lengths_with_units(small_run):
    from exodiff.analysis import MSD, Dose, Profile, UptakeRange
    from exodiff import open_run
    with open_run(small_run) as run:
        assert Dose(time="20 ms").compute(run).time == Dose(time=0.02).compute(run).time == 0.02
        assert Dose(time=np.float32(0.03)).compute(run).time == pytest.approx(0.03)
        a = MSD(max_lag="20 ms", fit_max_lag="0.01 s").compute(run)
        b = MSD(max_lag=0.02, fit_max_lag=0.01).compute(run)
        np.testing.assert_array_equal(a.lag_times, b.lag_times)
        assert a.lag_times.max() == pytest.approx(0.02)
        p = Profile(axis="z", bins=["0 um", "5 um", "0.02 mm"]).compute(run)
        np.testing.assert_array_equal(p.bin_edges, [0.0, 5.0, 20.0])
        q = Profile(cell=0, bins=4, range_max="8000 nm").compute(run)
        assert q.bin_edges[-1] == pytest.approx(8.0)
        assert UptakeRange(time="1 min").time_setting == 60.0
    with pytest.raises(InputError, match=r"^time: expected a time like '1 ms', got '30 um'$"):
        Dose(time="30 um")
    with pytest.raises(InputError, match=r"^range_max: expected a length"):
        Profile(range_max="1 s")


def test_cli_time_takes_units(small_run, tmp_path, capsys):
    fig = tmp_path / "dose.png"
    assert main(["plot", str(small_run), "--kind", "dose", "--time", "20 ms", "-o", str(fig)]) == 0
    assert fig.stat().st_size > 0
    assert main(["plot", str(small_run), "--kind", "dose", "--time", "0.02", "-o", str(fig)]) == 0
    capsys.readouterr()
    fig2 = tmp_path / "bad.png"
    assert main(["plot", str(small_run), "--kind", "dose", "--time", "30 parsecs", "-o", str(fig2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Error: --time: expected a time like '1 ms', got '30 parsecs'"]
    assert not fig2.exists()


# ------------------------------------------------------------ one D per population

def test_check_msd_figure_and_report_print_the_same_d_per_population(tmp_path):
    from exodiff import analysis, plots, report
    from exodiff.driver import Simulation
    from exodiff import open_run
    raw = config(run={"duration": 0.2, "dt": 0.002, "snapshot_interval": 0.05, "observe_interval": 0.05},
                 cells={"count": 4, "radius": "5 um"},
                 vesicles={"ev": {"radius": {"median": "50 nm", "gsd": 1.3}, "count": 300},
                           "big": {"radius": {"median": "150 nm", "gsd": 1.2}, "count": 300}},
                 output={"positions": "all"})
    cfg = parse_config(raw)
    check = {name: p.diffusion for name, p in derived_parameters(cfg).populations.items()}
    assert check["ev"] == pytest.approx(3 * check["big"])
    text = format_check(cfg)
    Simulation(cfg, backend="numba").run(tmp_path / "two.h5")
    with open_run(tmp_path / "two.h5") as run:
        labels = [t.get_text() for t in plots.figure(run, "msd").axes[0].get_legend().get_texts()]
        rows = dict(report._key_numbers(run))
        for name, D in check.items():
            assert f"{name}: radius" in text and f"D = {D:.3g} µm²/s (Stokes–Einstein at the median radius)" in text
            assert analysis.expected_diffusion(run, name) == D
            assert f"{name}: 6Dτ with the config's D = {D:.3g} µm²/s" in labels
            assert f"(config: {D:.3g} µm²/s;" in rows[f"diffusion of free {name} vesicles"]


# ------------------------------------------------------------ info's resume hint

def test_info_resume_hint_repeats_the_set_options(tmp_path, capsys):
    import os
    import shlex
    import signal
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML.replace('duration = "0.05 s"', 'duration = "0.05 s"\nsnapshot_interval = "10 ms"'))
    out = tmp_path / "killed.h5"
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_NUM_THREADS="1", EXODIFF_TEST_KILL_AT="snapshot:2")
    # tests/faults.py: exodiff with fault injection (SIGKILL at snapshot 2)
    child = subprocess.run([sys.executable, str(root / "tests" / "faults.py"), "run", str(cfg), "-o", str(out), "-q",
                            "--backend", "numba", "--seed", "5", "--set", "vesicles.ev.count=150"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert main(["info", str(out)]) == 0
    said = capsys.readouterr().out
    hint = said.split("continue it with ")[1].splitlines()[0].strip()
    assert hint == shlex.join(["exodiff", "run", str(cfg), "-o", str(out), "--set", "vesicles.ev.count=150",
                               "--set", "run.seed=5", "--resume"])
    assert main(shlex.split(hint)[1:] + ["-q"]) == 0  # the stored config matches: it resumes
    assert "resuming" in capsys.readouterr().err


# ------------------------------------------------------------ donors in dose tables

def test_dose_tables_leave_out_donors_that_took_up_nothing(tmp_path, capsys):
    from exodiff.driver import Simulation
    from exodiff import open_run
    raw = config(run={"duration": 0.2, "dt": 0.002, "observe_interval": 0.02},
                 cell_types={"donor": {"secretion_rate": 200, "secretes": "ev"},
                             "t": {"kappa": "inf", "k_int": 50}},
                 cells={"count": 8, "types": {"donor": 0.25, "t": 0.75}},
                 vesicles={"ev": {"count": 0, "cargo": {"miR21": 3}}})
    Simulation(parse_config(raw), backend="numba").run(tmp_path / "d.h5")
    with open_run(tmp_path / "d.h5") as run:
        summary = run.dose().summary
        assert set(summary["type"]) == {"t"} and not summary["donor"].any()
        assert summary["mean"].max() > 0
    assert main(["info", str(tmp_path / "d.h5")]) == 0
    assert "    donor (donor): bound 0, internalized 0" in capsys.readouterr().out
