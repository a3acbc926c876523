"""Hostile input (issue 7): a corpus of bad configs, arguments, output paths
and run files, each with the error line it must give.  Every one exits 2
with one ``Error: …`` line, writes nothing, prints no traceback and does not
hang (a watchdog ends the test run if one does)."""
import faulthandler
import os
import shutil
from pathlib import Path

import h5py
import pytest

from exodiff.cli import main

from scenarios import SMALL_TOML

BASE = SMALL_TOML.replace('seed = 1\n', 'seed = 1\nsnapshot_interval = "0.01 s"\n')


def sub(old, new):
    assert old in BASE, old
    return BASE.replace(old, new)


def add(section, line):
    return sub(f"[{section}]", f"[{section}]\n{line}")


MEDIUM = "[medium]\n{}\n[domain]"

# case -> (config text, what the one error line must contain)
CONFIGS = {
    # malformed files
    "malformed TOML": (sub("[run]", "[run"), "c.toml: invalid TOML"),
    "duplicate key": (sub("seed = 1", "seed = 1\nseed = 2"), "invalid TOML: Cannot overwrite a value"),
    "missing value": (sub('duration = "0.05 s"', "duration = "), "invalid TOML: Invalid value"),
    "binary garbage": ("\x00\x01\x02\x7f", "invalid TOML"),
    "not UTF-8": (b"\xff\xfe[run]".decode("latin-1"), "c.toml"),
    "empty file": ("", "run: missing section"),
    "no vesicles": (BASE.split("[vesicles.ev]")[0], "vesicles: missing section"),
    # unknown keys, with a did-you-mean
    "unknown section": (BASE + "\n[rn]\nx = 1\n", "rn: unknown key; did you mean 'run'?"),
    "unknown run key": (sub("seed = 1", "sed = 1"), "run.sed: unknown key; did you mean 'seed'?"),
    "unknown vesicle key": (add("vesicles.ev", "radious = 1"),
                            "vesicles.ev.radious: unknown key; did you mean 'radius'?"),
    "unknown cell type key": (add("cell_types.target", "koff = 1"),
                              "cell_types.target.koff: unknown key; did you mean 'k_off'?"),
    # wrong types
    "boolean duration": (sub('duration = "0.05 s"', "duration = true"), "run.duration: expected a time"),
    "string count": (sub("count = 200", 'count = "many"'), "vesicles.ev.count: expected an integer, got 'many'"),
    "fractional count": (sub("count = 200", "count = 1.5"), "vesicles.ev.count: expected an integer, got 1.5"),
    "two-vector size": (sub('size = ["40 um", "40 um", "20 um"]', "size = [40, 40]"),
                        "domain.size: expected 3 values"),
    "number boundary": (add("domain", "boundary = 3"), "domain.boundary: expected 'reflect'"),
    "string flow": (sub("[domain]", MEDIUM.format('flow = "fast"')), "medium.flow: expected 3 values"),
    "table vesicles": (BASE.split("[vesicles.ev]")[0] + "[vesicles]\nev = 3\n",
                       "vesicles.ev: expected a population table"),
    "float positions": (BASE + "\n[output]\npositions = 5.5\n", "output.positions: expected 'all', 'none'"),
    "unknown compression": (BASE + '\n[output]\ncompression = "zip"\n',
                            "output.compression: expected one of 'gzip', 'lzf', 'none', got 'zip'; did you mean 'gzip'?"),
    # wrong units
    "dt in µm": (sub('dt = "1 ms"', 'dt = "1 um"'), "run.dt: expected a time like '1 ms', got '1 um'"),
    "radius in s": (sub('radius = "50 nm"', 'radius = "5 s"'), "vesicles.ev.radius: expected a length"),
    "viscosity in m": (sub("[domain]", MEDIUM.format('viscosity = "1 m"')), "medium.viscosity: expected a viscosity"),
    "temperature in kg": (sub("[domain]", MEDIUM.format('temperature = "5 kg"')),
                          "medium.temperature: expected a temperature"),
    "kappa as a rate": (sub('kappa = "inf"', 'kappa = "1 /s"'), "cell_types.target.kappa: expected a reactivity"),
    "unit garbage": (sub('dt = "1 ms"', 'dt = "1 parsec/fortnight^"'), "run.dt: expected a time"),
    # NaN, inf, negative, zero
    "NaN dt": (sub('dt = "1 ms"', "dt = nan"), "run.dt: expected a finite time like '1 ms', got nan"),
    "NaN dt with unit": (sub('dt = "1 ms"', 'dt = "nan ms"'), "run.dt: expected a finite time"),
    "inf duration": (sub('duration = "0.05 s"', "duration = inf"), "run.duration: expected a finite time"),
    "inf size": (sub('size = ["40 um", "40 um", "20 um"]', "size = [inf, 40, 40]"),
                 "domain.size[0]: expected a finite length"),
    "negative radius": (sub('radius = "50 nm"', 'radius = "-50 nm"'), "vesicles.ev.radius: must be positive"),
    "negative count": (sub("count = 200", "count = -5"), "vesicles.ev.count: must not be negative, got -5"),
    "negative seed": (sub("seed = 1", "seed = -1"), "run.seed: must not be negative"),
    "seed beyond 64 bits": (sub("seed = 1", "seed = 18446744073709551616"), "run.seed: must be at most"),
    "below absolute zero": (sub("[domain]", MEDIUM.format('temperature = "-400 degC"')),
                            "medium.temperature: must be positive"),
    "zero viscosity": (sub("[domain]", MEDIUM.format("viscosity = 0")), "medium.viscosity: must be positive, got 0"),
    "NaN flow": (sub("[domain]", MEDIUM.format("flow = [nan, 0, 0]")), "medium.flow[0]: expected a finite speed"),
    "NaN cargo": (add("vesicles.ev", "cargo = { a = nan }"), "vesicles.ev.cargo.a: expected a finite number"),
    "gsd below 1": (sub('radius = "50 nm"', 'radius = { median = "50 nm", gsd = 0.5 }'),
                    "vesicles.ev.radius.gsd: must be at least 1"),
    "negative kappa": (sub('kappa = "inf"', "kappa = -1"), "cell_types.target.kappa: must not be negative"),
    "NaN k_off": (add("cell_types.target", "k_off = nan"), "cell_types.target.k_off: expected a finite rate"),
    "zero half-life": (add("vesicles.ev", "half_life = 0"), "vesicles.ev.half_life: must be positive, got 0"),
    "negative density": (add("vesicles.ev", "density = -1"), "vesicles.ev.density: must be positive, got -1"),
    "zero sample": (BASE + "\n[output]\npositions = { sample = 0 }\n", "output.positions.sample: must be at least 1"),
    # geometry
    "overlapping cells": (sub("[30, 30, 10]", "[14, 10, 10]"), "cells: cells 0 and 1 overlap"),
    "cell outside the domain": (sub("[30, 30, 10]", "[38, 30, 10]"), "sticks out of the domain through the x = 40 µm face"),
    "cell larger than the domain": (sub('radius = "4 um"', 'radius = "100 um"'), "domain.size: 40 × 40 × 20 µm is smaller than a cell"),
    "NaN cell centre": (sub("[30, 30, 10]", "[nan, 30, 10]"), "cells.centers[1][0]: expected a finite length"),
    "cells that cannot be packed": (sub('layout = "list"\ncenters = [[10, 10, 10], [30, 30, 10]]',
                                        'layout = "random"\ncount = 2000'), "cells.count: placed only"),
    "vesicle larger than the domain": (sub('radius = "50 nm"', 'radius = "1 mm"'),
                                       "vesicles.ev.radius: a vesicle of radius '1 mm' does not fit in the 40 × 40 × 20 µm domain"),
    "vesicles start outside": (add("vesicles.ev", "placement = { point = [100, 0, 0] }"),
                               "vesicles.ev.placement.point: must lie inside the domain"),
    "vesicles start inside a cell": (add("vesicles.ev", "placement = { point = [10, 10, 10] }"),
                                     "vesicles.ev.placement: 200 of 200 vesicles would start inside cell 0"),
    "missing cell file": (sub('layout = "list"\ncenters = [[10, 10, 10], [30, 30, 10]]\nradius = "4 um"\ntype = "target"',
                              'layout = "file"\npath = "nope.csv"'), "cells.path:"),
    # time
    "dt equal to duration": (sub('dt = "1 ms"', 'dt = "0.05 s"'), "run.dt: must be shorter than run.duration (50 ms)"),
    "dt longer than duration": (sub('dt = "1 ms"', 'dt = "1 s"'), "run.dt: must be shorter than run.duration"),
    "snapshots shorter than dt": (sub('snapshot_interval = "0.01 s"', 'snapshot_interval = "1 us"'),
                                  "run.snapshot_interval: must be at least run.dt"),
    "more steps than the counter": (sub('duration = "0.05 s"', 'duration = "1e7 s"').replace('dt = "1 ms"', 'dt = "1 us"')
                                    .replace('"0.01 s"', '"1e6 s"'),
                                    "run.dt: duration / dt = 10,000,000,000,000 steps, more than the 4,294,967,295"),
    # sizes: refused from an estimate, before anything is allocated
    "more vesicles than 64-bit ids": (sub("count = 200", "count = 1e30"),
                                       "vesicles.ev.count: 1e+30 vesicles in all (1e+30 at t = 0 + 0 expected secreted); at most 9.22e+18 can have"),
    "more vesicles than memory": (sub("count = 200", "count = 4000000000"),
                                  "vesicles.ev.count: 4,000,000,000 vesicles in all (4,000,000,000 at t = 0 + 0 expected secreted) need about 1.76 TB of memory, more than the"),
    "secretion beyond memory": (add("cell_types.target", 'secretion_rate = "1e9 /s"\nsecretes = "ev"'),
                                "vesicles.ev: 100,000,200 vesicles in all (200 at t = 0 + 100,000,000 expected"),
    "more cells than memory": (sub('layout = "list"\ncenters = [[10, 10, 10], [30, 30, 10]]',
                                   'layout = "random"\ncount = 1000000000000'), "cells.count: 1e+12 cells need about"),
}


@pytest.fixture(autouse=True)
def watchdog():
    """Nothing here may hang: dump the stacks and end the run after 120 s."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def written(folder, keep=("c.toml",)):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.name not in keep)


@pytest.mark.parametrize("case", CONFIGS)
def test_bad_config_is_refused_in_one_line(case, tmp_path, capsys, monkeypatch):
    text, expected = CONFIGS[case]
    if case == "secretion beyond memory":  # 1e8 vesicles: make them not fit, anywhere
        monkeypatch.setattr("exodiff.driver.available_memory", lambda: 10**9)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(text, encoding="latin-1" if case == "not UTF-8" else "utf-8")
    assert main(["run", "c.toml", "-o", "out.h5", "-q", "--backend", "numba"]) == 2
    line = one_error_line(capsys)
    assert expected in line, line
    assert written(tmp_path) == []


@pytest.mark.parametrize("args, expected", [
    (["--seed", "abc"], "Error: exodiff run: argument --seed: invalid int value: 'abc'"),
    (["--set", "run.dt"], "--set 'run.dt': expected key=value"),
    (["--set", "run.seed.x=1"], "run.seed is not a table"),
    (["--backend", "gpu"], "--backend: unknown backend 'gpu'"),
    (["--resume", "--overwrite"], "--resume and --overwrite: choose one"),
    (["--resume"], "nothing to resume"),
])
def test_bad_arguments_are_refused_in_one_line(args, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(BASE)
    with pytest.raises(SystemExit) if args[0] == "--seed" else _nothing() as exit_:
        rc = main(["run", "c.toml", "-o", "out.h5", "-q", *args])
    assert (exit_.value.code if args[0] == "--seed" else rc) == 2
    assert expected in one_error_line(capsys)
    assert written(tmp_path) == []


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_bad_config_paths(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "nope.toml: no such file" in one_error_line(capsys)
    assert main(["run", str(tmp_path), "-o", str(tmp_path / "o.h5")]) == 2
    assert "is a directory, not a config file" in one_error_line(capsys)
    assert written(tmp_path) == []


def test_bad_output_paths(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    plain = tmp_path / "plain"
    plain.write_text("a file, not a directory")
    cases = {tmp_path / "missing" / "o.h5": "the directory",
             plain / "o.h5": "is not a directory",
             tmp_path: "is a directory"}
    for out, expected in cases.items():
        assert main(["run", str(cfg), "-o", str(out), "-q"]) == 2
        line = one_error_line(capsys)
        assert expected in line, line
    assert written(tmp_path, keep=("c.toml", "plain")) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_in_a_read_only_directory(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["run", str(cfg), "-o", str(ro / "o.h5"), "-q"]) == 2
        assert "is not writable" in one_error_line(capsys)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------ bad run files

@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    (folder / "c.toml").write_text(BASE)
    assert main(["run", str(folder / "c.toml"), "-o", str(folder / "good.h5"), "-q",
                 "--backend", "numba"]) == 0
    return folder / "c.toml", folder / "good.h5"


def _make_bad_files(good, folder):
    data = good.read_bytes()
    files = {
        "truncated to half": (data[: len(data) // 2], "truncated: "),
        "truncated to its head": (data[:2000], "truncated: 2,000 bytes, its superblock says"),
        "HDF5 signature only": (data[:8], "damaged HDF5 file (cut short in its superblock)"),
        "empty": (b"", "not an HDF5 file"),
        "text": (b"hello, not HDF5", "not an HDF5 file"),
    }
    out = {}
    for name, (content, expected) in files.items():
        path = folder / (name.replace(" ", "_") + ".h5")
        path.write_bytes(content)
        out[name] = (path, expected)

    other = folder / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    out["HDF5 but not a run"] = (other, "not an exodiff run file (no /h5md/creator named 'exodiff')")
    for name, edit, expected in (
            ("a dataset missing", lambda f: f.__delitem__("particles/vesicles/state"),
             "not a complete exodiff run file (missing /particles/vesicles/state)"),
            ("a dataset of the wrong shape",
             lambda f: (f.__delitem__("particles/cells/position"),
                        f.__setitem__("particles/cells/position", "oops")),
             "cells/position has shape (), expected (2, 3)")):
        path = folder / (name.replace(" ", "_") + ".h5")
        shutil.copy(good, path)
        with h5py.File(path, "r+") as f:
            edit(f)
        out[name] = (path, expected)
    directory = folder / "dir.h5"
    directory.mkdir()
    out["a directory"] = (directory, "is a directory, not a run file")
    return out


def test_bad_run_files_are_refused_by_info_and_resume(good_run, tmp_path, capsys):
    cfg, good = good_run
    bad = _make_bad_files(good, tmp_path)
    for name, (path, expected) in bad.items():
        before = path.read_bytes() if path.is_file() else None
        assert main(["info", str(path)]) == 2, name
        line = one_error_line(capsys)
        assert expected in line and str(path) in line, (name, line)
        assert main(["run", str(cfg), "-o", str(path), "-q", "--resume"]) == 2, name
        line = one_error_line(capsys)
        assert expected in line, (name, line)
        if before is not None:
            assert path.read_bytes() == before, name  # nothing written
    assert written(tmp_path) == sorted(p.name for p, _ in bad.values())
