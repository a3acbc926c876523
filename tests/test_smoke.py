"""The smoke set: what a user does first, in a minute, on every Python of the
declared range (3.10 to 3.13).  `.ci/run` runs it (``pytest -m smoke``) on
each other Python the machine has, in a fresh virtual environment with the
package installed; the main suite runs it too.

A short run on both CPU backends (bit-identical), the run read back with its
config and summary, every analysis, and the CLI's bad-input paths."""
import sys

import numpy as np
import pytest

import exodiff
from exodiff.cli import main

from scenarios import SMALL_TOML

pytestmark = pytest.mark.smoke

# SMALL with a secreting donor, a periodic axis, an absorbing face and
# clearance, so every analysis has something to count.
SMOKE = SMALL_TOML.replace('duration = "0.05 s"', 'duration = "0.2 s"\nsnapshot_interval = "0.05 s"') \
    .replace('type = "target"', 'types = ["target", "donor"]') \
    .replace('kappa = "inf"', 'kappa = "5 um/s"\nk_off = "1 /s"\nk_int = "2 /s"') \
    .replace('size = ["40 um", "40 um", "20 um"]',
             'size = ["40 um", "40 um", "20 um"]\nboundary = { x = "periodic", y = "periodic", '
             'z = ["reflect", "absorb"] }') \
    .replace("count = 200", 'count = 200\nhalf_life = "1 s"\ncargo = { mir = 2 }') \
    + '[cell_types.donor]\nsecretion_rate = "200 /s"\nsecretes = "ev"\n'


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The SMOKE run written by `exodiff run` on numpy and on numba."""
    root = tmp_path_factory.mktemp("smoke")
    cfg = root / "smoke.toml"
    cfg.write_text(SMOKE)
    out = {}
    for backend in ("numpy", "numba"):
        out[backend] = root / f"{backend}.h5"
        assert main(["run", str(cfg), "-o", str(out[backend]), "--backend", backend, "-q"]) == 0
    return cfg, out


def test_python_is_in_the_declared_range():
    assert (3, 10) <= sys.version_info[:2]


def test_short_run_reads_back_with_config_and_summary(runs, capsys):
    cfg, out = runs
    with exodiff.open_run(out["numba"]) as run:
        assert run.complete and run.n_snapshots == 5
        assert run.config is not None and run.config.run.seed == 1
        assert run.donor_types == ("donor",)
        text = run.summary_text()
        assert "donor" in text and "snapshots" in text
    assert main(["info", str(out["numba"])]) == 0
    assert str(out["numba"]) in capsys.readouterr().out


def test_cpu_backends_write_the_same_run(runs):
    _, out = runs
    with exodiff.open_run(out["numpy"]) as a, exodiff.open_run(out["numba"]) as b:
        for k in range(a.n_snapshots):
            assert np.array_equal(a.positions(k), b.positions(k))
            assert np.array_equal(a.states(k), b.states(k))
        assert np.array_equal(a.bound_per_cell, b.bound_per_cell)


def test_every_analysis_runs(runs):
    _, out = runs
    with exodiff.open_run(out["numba"]) as run:
        assert run.uptake_curves() is not None
        assert run.dose() is not None
        assert run.uptake_range() is not None
        assert run.first_passage(event="bound") is not None
        assert run.msd() is not None
        assert run.profile() is not None
        assert run.mass_balance() is not None


def _one_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.replace("seed = 1", "sed = 1"))
    assert main(["run", str(bad), "-o", str(tmp_path / "bad.h5")]) == 2
    assert "run.sed" in _one_error(capsys)
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in _one_error(capsys)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(bad), "--threads", "0"])
    assert exit_.value.code == 2 and "--threads" in _one_error(capsys)
    assert not list(tmp_path.glob("*.h5"))
