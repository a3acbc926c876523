"""Sweeps on Dask (issue 8): a sweep's files equal the same points run alone,
a sweep re-run after a worker died redoes only the unfinished points, and bad
sweep files are one-line input errors that write nothing."""
import csv
import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from exodiff.cli import main
from exodiff.errors import InputError
from exodiff.sweep import SEED_STEP, load_sweep, plan_sweep, replicate_seed

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.toml"

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="dask.distributed is not installed (pip install 'exodiff[cluster]')")

# The quick start made tiny: 10 steps of 5 ms, 50 cells, 500 vesicles.
TINY = """
[set]
"run.duration" = "0.05 s"
"run.snapshot_interval" = "0.025 s"
"run.observe_interval" = "0.01 s"
"cells.count" = 50
"vesicles.exosome.count" = 500
"""


def _sweep_file(tmp_path, top="", tables=""):
    """A sweep file next to a copy of the quick start (base is relative):
    top-level keys ``top``, then the tiny [set], then ``tables``."""
    shutil.copy(QUICKSTART, tmp_path / "quickstart.toml")
    path = tmp_path / "sweep.toml"
    path.write_text('base = "quickstart.toml"\n' + top + TINY + tables)
    return path


def _run_alone(point, base, out):
    """The point run by itself, as `exodiff run` with its --set and --seed."""
    argv = shlex.split(point.command(base))[1:]
    assert main(argv + ["-o", str(out), "-q", "--backend", "numba"]) == 0


def _assert_same_file(a, b):
    """Every dataset's contents and every attribute equal, except the
    device string (it names the number of Numba threads)."""
    def items(path):
        found = {}
        with h5py.File(path, "r", swmr=True) as f:
            def visit(name, obj):
                attrs = {k: v for k, v in obj.attrs.items() if not (name == "parameters" and k == "device")}
                data = obj[()] if isinstance(obj, h5py.Dataset) else None
                found[name] = (attrs, data, getattr(obj, "dtype", None))
            f.visititems(visit)
        return found
    x, y = items(a), items(b)
    assert sorted(x) == sorted(y)
    for name in x:
        (ax, dx, tx), (ay, dy, ty) = x[name], y[name]
        assert tx == ty, name
        if dx is not None:
            assert np.array_equal(dx, dy, equal_nan=dx.dtype.kind == "f"), name
        assert sorted(ax) == sorted(ay), name
        for k in ax:
            assert np.array_equal(np.asarray(ax[k]), np.asarray(ay[k])), f"{name}@{k}"


def _summary(out):
    with open(out / "summary.csv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


# ---------------------------------------------------------- the sweep file


def test_points_seeds_and_names_are_deterministic(tmp_path):
    path = _sweep_file(tmp_path, 'mode = "zip"\nreplicates = 2\n', """
[axes]
"cell_types.target.kappa" = ["0.1 um/s", "inf"]
"cell_types.donor.kappa" = [0.5, "2 um/s"]
""")
    sweep = load_sweep(path)
    names = [p.name for p in sweep.points]
    assert names == ["target.kappa=0.1um_s__donor.kappa=0.5__rep0.h5",   # tails that tell keys apart
                     "target.kappa=0.1um_s__donor.kappa=0.5__rep1.h5",
                     "target.kappa=inf__donor.kappa=2um_s__rep0.h5",
                     "target.kappa=inf__donor.kappa=2um_s__rep1.h5"]
    assert [p.seed for p in sweep.points] == [42, 42 + SEED_STEP] * 2
    assert replicate_seed(2**64 - 1, 1) == SEED_STEP - 1          # wraps modulo 2**64
    again = load_sweep(path)
    assert [(p.name, p.seed, p.overrides) for p in again.points] == \
        [(p.name, p.seed, p.overrides) for p in sweep.points]
    p = sweep.points[3]
    assert p.overrides[-3:] == ('cell_types.target.kappa="inf"', 'cell_types.donor.kappa="2 um/s"',
                                f"run.seed={42 + SEED_STEP}")
    assert p.config.cell_types["target"].kappa.value == np.inf and p.config.run.seed == 42 + SEED_STEP


# case -> (top-level keys, tables after the tiny [set], what the error names)
BAD = {
    "unknown mode": ('mode = "grd"\n', '[axes]\n"cells.radius" = [5]', ["mode: 'grd'", "did you mean 'grid'"]),
    "zip of unequal axes": ('mode = "zip"\n', '[axes]\n"cells.radius" = [5, 6]\n"run.seed" = [1]',
                            ['"cells.radius" has 2, "run.seed" has 1', "equal length"]),
    "unknown config key": ("", '[axes]\n"cells.cuont" = [5]',
                           ["cells.cuont: unknown key", "did you mean 'count'"]),
    "bad value on one point": ("", '[axes]\n"cell_types.target.capacity" = [5, -3]',
                               ["point capacity=-3: ", "cell_types.target.capacity"]),
    "key in [set] and [axes]": ("", '[axes]\n"cells.count" = [5]',
                                ['"cells.count" is both in [set] and in [axes]']),
    "unknown sweep key": ("replicate = 2\n", "", ["replicate: unknown key", "did you mean 'replicates'"]),
    "no replicates": ("replicates = 0\n", "", ["replicates: 0", "≥ 1"]),
    "empty axis": ("", '[axes]\n"cells.radius" = []', ['axes."cells.radius"', "non-empty list"]),
    "axis not a list": ("", '[axes]\n"cells.radius" = 5', ['axes."cells.radius"', "list of values"]),
    "unquoted dotted key": ("", "[axes]\ncells.radius = [5]", ["axes.cells", "quoted dotted"]),
    "duplicate value": ("", '[axes]\n"cells.radius" = [5, 5]', ['axes."cells.radius"', "appears twice"]),
    "invalid TOML": ("", "[axes", ["invalid TOML"]),
    "missing base": ("", "", ["nope.toml: no such file", "point base"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_file_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    top, tables, expected = BAD[case]
    path = _sweep_file(tmp_path, top, tables)
    if case == "missing base":
        path.write_text(path.read_text().replace("quickstart.toml", "nope.toml"))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"Error: {path}: "), err
    assert all(e in err[0] for e in expected), err
    assert not out.exists()


def test_dry_run_lists_points_without_running(tmp_path, capsys):
    path = _sweep_file(tmp_path, "replicates = 2\n", '[axes]\n"cell_types.target.kappa" = ["0.1 um/s", 2]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        f'todo  {out}/kappa=0.1um_s__rep0.h5  seed=42  cell_types.target.kappa="0.1 um/s"',
        f'todo  {out}/kappa=0.1um_s__rep1.h5  seed={42 + SEED_STEP}  cell_types.target.kappa="0.1 um/s"',
        f"todo  {out}/kappa=2__rep0.h5  seed=42  cell_types.target.kappa=2",
        f"todo  {out}/kappa=2__rep1.h5  seed={42 + SEED_STEP}  cell_types.target.kappa=2",
    ]
    assert not out.exists()


def test_sweep_without_dask_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'exodiff[cluster]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------- on Dask


@needs_dask
@pytest.mark.parametrize("args, expected", [
    (["--workers", "0"], "--workers: 0, expected at least 1"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "--workers: not with --scheduler"),
    (["--backend", "fortran"], "--backend: unknown backend 'fortran'"),
])
def test_bad_sweep_arguments_exit_2_before_anything_starts(args, expected, tmp_path, capsys):
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), *args]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_dask
def test_sweep_on_two_workers_matches_each_point_run_alone(tmp_path, capsys):
    path = _sweep_file(tmp_path, "replicates = 2\n",
                       '[axes]\n"cell_types.target.kappa" = ["0.1 um/s", "inf"]\n')
    out = tmp_path / "out"
    rc = main(["sweep", str(path), "-o", str(out), "--workers", "2", "--backend", "numba", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2 worker processes (numba, 1 thread each)" in captured.err
    assert "4 runs: 4 ran, 0 skipped (finished before), 0 failed" in captured.out

    sweep = load_sweep(path)
    summary = _summary(out)
    assert sorted(os.listdir(out)) == sorted([p.name for p in sweep.points] + ["summary.csv"]
                                             + (["summary.parquet"] if _has_pyarrow() else []))
    for p in sweep.points:
        alone = tmp_path / f"alone_{p.index}.h5"
        _run_alone(p, sweep.base, alone)
        _assert_same_file(out / p.name, alone)
        row = summary[p.name]
        assert row["status"] == "ran" and row["error"] == ""
        assert int(row["seed"]) == p.seed and int(row["replicate"]) == p.replicate
        assert row["cell_types.target.kappa"] == p.params["cell_types.target.kappa"]
        assert float(row["wall_time"]) > 0 and row["backend"] == "numba"
        with h5py.File(alone, "r") as f:
            final = {s: int(f[f"observables/vesicles/{s}/value"][-1])
                     for s in ("free", "bound", "internalized")}
            types = f["particles/cells/type"][()]
            bound = f["observables/cells/bound/value"][-1]
            inside = f["observables/cells/internalized/value"][-1]
            released = sum(int(f[f"observables/vesicles/{s}/value"][-1]) for s in
                           ("free", "bound", "internalized", "exited", "cleared"))
        assert {s: int(row[f"n_{s}"]) for s in final} == final
        target = types == 1
        held = bound[target].sum() + inside[target].sum()
        assert int(row["bound_target"]) == bound[target].sum()
        assert float(row["uptake_target"]) == pytest.approx(held / released)
    uptake = {p.name: float(summary[p.name]["uptake_target"]) for p in sweep.points}
    kappa = {p.name: p.params["cell_types.target.kappa"] for p in sweep.points}
    # every contact binds vs. rarely
    assert min(u for n, u in uptake.items() if kappa[n] == "inf") > \
        max(u for n, u in uptake.items() if kappa[n] != "inf")
    if _has_pyarrow():
        import pandas as pd
        frame = pd.read_parquet(out / "summary.parquet")
        assert list(frame["file"]) == [p.name for p in sweep.points]
        assert list(frame["seed"].astype(str)) == [str(p.seed) for p in sweep.points]


class _KillOnePoint:
    """Worker plugin: the run of files whose name holds ``victim`` kills its
    worker process halfway (os._exit, as a crash or the OOM killer would)."""
    name = "exodiff-test-kill-one-point"

    def __init__(self, victim):
        self.victim = victim

    def setup(self, worker):
        from exodiff import driver
        self._original = original = driver.Simulation.run
        victim = self.victim

        def run(sim, out, progress=None, **kw):
            if victim in os.fspath(out):
                def progress(p):
                    if 2 * p.step > p.n_steps:  # past the snapshot halfway
                        os._exit(1)
            return original(sim, out, progress=progress, **kw)
        driver.Simulation.run = run

    def teardown(self, worker):
        from exodiff import driver
        driver.Simulation.run = self._original


@needs_dask
def test_rerun_after_a_worker_died_redoes_only_unfinished_points(tmp_path, capsys):
    import cloudpickle
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin

    path = _sweep_file(tmp_path, "", '[axes]\n"cell_types.target.kappa" = ["0.5 um/s", "1 um/s", "2 um/s"]\n')
    sweep = load_sweep(path)
    victim = sweep.points[1]
    out = tmp_path / "out"
    # allowed_failures=0: the first death of a point's worker fails the point
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           scheduler_kwargs={"allowed_failures": 0}, memory_limit=0)
    client = Client(cluster)
    try:
        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests
        plugin = type("KillOnePoint", (_KillOnePoint, WorkerPlugin), {})(victim.name)
        client.register_plugin(plugin)
        argv = ["sweep", str(path), "-o", str(out), "--scheduler", cluster.scheduler_address,
                "--backend", "numba", "-q"]
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert f"failed: {victim.name}: KilledWorker" in captured.err
        assert "3 runs: 2 ran, 0 skipped (finished before), 1 failed" in captured.out
        summary = _summary(out)
        assert summary[victim.name]["status"] == "failed" and "died" in summary[victim.name]["error"]
        assert not (out / victim.name).exists()
        assert (out / (victim.name + ".incomplete")).exists()  # killed halfway
        finished = {p.name: (out / p.name).stat().st_mtime_ns for p in sweep.points if p is not victim}
        assert len(finished) == 2 and all(summary[n]["status"] == "ran" for n in finished)

        assert main(["sweep", str(path), "-o", str(out), "--dry-run"]) == 0
        listed = capsys.readouterr().out
        assert listed.count("done  ") == 2 and f"todo  {out}/{victim.name}" in listed

        client.unregister_worker_plugin(_KillOnePoint.name)
        assert main(argv) == 0
        assert "3 runs: 1 ran, 2 skipped (finished before), 0 failed" in capsys.readouterr().out
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.close()
        cluster.close()
    assert {n: (out / n).stat().st_mtime_ns for n in finished} == finished  # not redone
    assert sorted(os.listdir(out)) == sorted([p.name for p in sweep.points] + ["summary.csv"]
                                             + (["summary.parquet"] if _has_pyarrow() else []))
    summary = _summary(out)
    assert summary[victim.name]["status"] == "ran"
    # killed after the snapshot at step 5 of 10: went on from there (--resume)
    assert summary[victim.name]["resumed_from"] == "5"
    assert all(summary[n]["status"] == "skipped" and float(summary[n]["wall_time"]) > 0 for n in finished)
    _run_alone(victim, sweep.base, tmp_path / "alone.h5")
    _assert_same_file(out / victim.name, tmp_path / "alone.h5")

    # a finished file is never taken for another scenario's point
    path.write_text(path.read_text().replace('"0.05 s"', '"0.04 s"'))
    with pytest.raises(InputError, match=r'exists but holds another scenario \(run.duration = "0.05 s" there, '
                                         r'"0.04 s" here\)'):
        plan_sweep(load_sweep(path), out)


def _has_pyarrow():
    return importlib.util.find_spec("pyarrow") is not None
