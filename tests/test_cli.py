"""The command line as a user meets it: exit codes, one-line errors, no
partial output (DESIGN §4), and the quickstart file layout (DESIGN §5)."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from exodiff.cli import main

from scenarios import SMALL_TOML

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.toml"
CHECKER = ROOT.parent / "shared" / "tools" / "check_h5md.py"

SMALL = SMALL_TOML

BAD = {
    "unknown key": (SMALL.replace('seed = 1', 'sed = 1'), "run.sed: unknown key; did you mean 'seed'?"),
    "negative radius": (SMALL.replace('radius = "50 nm"', 'radius = "-50 nm"'), "vesicles.ev.radius"),
    "wrong units": (SMALL.replace('dt = "1 ms"', 'dt = "1 um"'), "run.dt"),
    "overlapping cells": (SMALL.replace("[30, 30, 10]", "[14, 10, 10]"), "overlap"),
    "cell outside the domain": (SMALL.replace("[30, 30, 10]", "[38, 30, 10]"), "sticks out of the domain"),
    "malformed TOML": (SMALL.replace('[run]', '[run'), "invalid TOML"),
}


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    text, expected = BAD[case]
    cfg = _write(tmp_path, text)
    out = tmp_path / "out.h5"
    assert main(["run", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and expected in err[0], err
    assert not out.exists() and not list(tmp_path.glob("out.h5*"))
    assert main(["check", str(cfg)]) == 2


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


def test_refuses_to_overwrite_without_flag(tmp_path, capsys):
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    assert main(["run", str(cfg), "-o", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["run", str(cfg), "-o", str(out), "-q", "--overwrite", "--backend", "numba"]) == 0
    assert h5py.is_hdf5(out)


def test_unknown_backend_and_missing_output_directory(tmp_path, capsys):
    cfg = _write(tmp_path, SMALL)
    assert main(["run", str(cfg), "-o", str(tmp_path / "o.h5"), "--backend", "gpu"]) == 2
    assert main(["run", str(cfg), "-o", str(tmp_path / "no" / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert "--backend" in err and "does not exist" in err
    assert not list(tmp_path.glob("**/*.h5*"))


def test_seed_and_set_override_the_config(tmp_path, capsys):
    cfg = _write(tmp_path, SMALL)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["run", str(cfg), "-o", str(a), "-q", "--seed", "9", "--set", "vesicles.ev.count=50"]) == 0
    assert main(["run", str(cfg), "-o", str(b), "-q", "--seed", "9", "--set", "vesicles.ev.count=50"]) == 0
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert fa["parameters"].attrs["seed"] == 9
        assert fa["particles/vesicles/species"].shape == (50,)
        np.testing.assert_array_equal(fa["particles/vesicles/position/value"][()],
                                      fb["particles/vesicles/position/value"][()])


def test_check_prints_derived_parameters(capsys):
    assert main(["check", str(QUICKSTART)]) == 0
    out = capsys.readouterr().out
    for expected in ("Stokes–Einstein", "µm²/s", "P(bind per contact)", "Memory"):
        assert expected in out


def test_info_on_a_non_run_file(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    assert main(["info", str(junk)]) == 2
    assert "junk.h5" in capsys.readouterr().err


def test_quickstart_run_has_the_h5md_layout(tmp_path):
    """`exodiff run configs/quickstart.toml` end to end, as the README says,
    then the layout checker shipped in shared/tools and our own reader."""
    out = tmp_path / "quickstart.h5"
    proc = subprocess.run([sys.executable, "-m", "exodiff", "run", str(QUICKSTART), "-o", str(out),
                           "--backend", "numba", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    if CHECKER.exists():
        check = subprocess.run([sys.executable, str(CHECKER), str(out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    from exodiff import open_run
    with open_run(out) as run:
        counts = np.stack([run.counts[s] for s in ("pending", "free", "bound", "internalized",
                                                   "exited", "cleared")])
        assert np.all(counts.sum(axis=0) == run.n_vesicles)  # every vesicle in one state
        assert run.positions(-1).shape == (run.n_vesicles, 3)
        assert run.states(-1).dtype == np.int8
        # bound per cell adds up to the bound count at every observation
        np.testing.assert_array_equal(run.bound_per_cell.sum(axis=1), run.counts["bound"])
        times, bound, internalized = run.uptake("target")
        assert internalized[-1] > 0 and bound[-1] > 0
        assert run.uptake("donor")[1][-1] == 0  # donors have no receptors here
        with h5py.File(out, "r") as f:
            assert f["particles/vesicles/position/value"].attrs["unit"] in ("um", "µm")
            assert f["observables/vesicles/free/time"].attrs["unit"] == "s"
