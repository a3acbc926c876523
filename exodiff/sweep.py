"""Parameter sweeps and ensembles (``exodiff sweep``), run on dask.distributed.

A sweep file (TOML) names a base scenario, axes over any config key and a
number of replicates::

    base = "quickstart.toml"        # relative to the sweep file
    mode = "grid"                   # grid (every combination) | zip (i-th with i-th)
    replicates = 3                  # runs per parameter combination (default 1)
    [set]                           # optional: overrides shared by every point
    "run.duration" = "10 s"
    [axes]                          # quoted dotted keys, a list of values each
    "cell_types.target.kappa" = ["0.1 um/s", "1 um/s"]
    "cells.count" = [500, 2000]

Each point is the base config with ``--set``-style overrides, in this order:
the ``[set]`` entries, the axes' values, then ``run.seed``.  So a point's
stored config is exactly what ``exodiff run BASE --set KEY=VALUE… --seed SEED``
stores (:meth:`Point.command` spells it out).

Seeds: replicate ``r`` of a point whose config has seed ``s`` (the base's
``run.seed``, or a ``[set]``/axis value for it) runs with

    seed = (s + r · 0x9E3779B97F4A7C15) mod 2**64

a Weyl sequence with the golden-ratio increment: replicate 0 keeps ``s`` (it
is the plain ``exodiff run`` of that point), replicates of a point never share
a seed, every parameter combination gets the same replicate seeds (common
random numbers, so differences between points are not sampling noise of the
layout), and the seeds land far from the small seeds people type, so a
``run.seed`` axis does not collide with the replicates of another point.

Output, in the directory ``-o DIR``: one H5MD file per point named from its
parameters (``kappa=0.1um_s__count=500__rep0.h5``: the shortest unique tail of
each dotted key, the value with spaces dropped and anything outside
``[A-Za-z0-9.+-]`` as ``_``), and ``summary.csv`` (plus ``summary.parquet``
when pyarrow is installed) with one row per point (see :func:`result_row`).
A point runs into ``NAME.h5.incomplete`` and is renamed to ``NAME.h5`` when it
has finished, so ``NAME.h5`` exists only for finished points: those are
skipped when the sweep is run again.  A partial ``NAME.h5.incomplete`` (its
worker was killed) is resumed from its latest full state, as
``exodiff run --resume`` does, or run again from the start when it cannot be
resumed.  An existing ``NAME.h5`` that holds another scenario (the base file
was edited) is an input error, before anything runs.

Where points run (:func:`run_sweep`):

- by default a local cluster of worker processes, one thread and one run
  each.  CPU: ``--workers`` (default: as many as there are cores, at most the
  number of points to run), each with ``NUMBA_NUM_THREADS`` = cores // workers
  (at least 1), or the ``NUMBA_NUM_THREADS`` asked for (``--threads``).  GPU
  (``--backend cuda``, or ``auto`` where a CUDA device works): one worker
  per device, each seeing only its own device through
  ``CUDA_VISIBLE_DEVICES`` (``--workers N`` deals N workers round-robin over
  the devices).  Workers have no memory limit (one run owns its worker), and
  a point whose worker dies is retried once on a fresh worker, then reported
  as failed.
- ``--scheduler ADDRESS`` (or a scheduler JSON file): an existing cluster.
  Its workers must see the output directory at the same path (a shared file
  system) and should run one task at a time (``dask worker --nthreads 1``;
  on GPUs one worker per device, e.g. dask-cuda's ``dask cuda worker``); the
  backend name is passed to them unresolved, so ``auto`` picks per worker.

Only the CLI prints; this module reports through the ``progress`` callback
and raises InputError for bad input.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import math
import os
import re
import shlex
import time as _time
from dataclasses import dataclass, field

from .errors import InputError
from .formats import did_you_mean
from .threads import requested as requested_threads
from .tomlfile import UNSET, TOMLDecodeError, differences, parse_toml, read_toml, toml_value

SWEEP_KEYS = ("base", "mode", "replicates", "set", "axes")
MODES = ("grid", "zip")
SEED_STEP = 0x9E3779B97F4A7C15   # 2**64 / golden ratio, odd: the Weyl step
SEED_MODULUS = 2**64             # run.seed takes 0 … 2**64 - 1
SUMMARY = "summary"              # summary.csv, summary.parquet
INCOMPLETE = ".incomplete"       # suffix of a point's file while it runs
SUMMARY_EVERY = 5.0              # [s] least wall time between summary rewrites
INSTALL_HINT = "exodiff sweep needs Dask: pip install 'exodiff[cluster]'"
_MAX_STEM = 180                  # file names stay well below 255 bytes


def replicate_seed(seed, replicate):
    """Seed of replicate ``replicate`` (0, 1, …) of a point whose config has
    ``seed``: ``(seed + replicate · 0x9E3779B97F4A7C15) mod 2**64``."""
    return (int(seed) + int(replicate) * SEED_STEP) % SEED_MODULUS


# ------------------------------------------------------------ the sweep file


@dataclass(frozen=True, eq=False)
class Point:
    """One run of a sweep.

    params: dotted key -> value, as written in the sweep file's axes;
    overrides: the ``--set`` strings that make its config from the base
    (``[set]``, axes, then ``run.seed=SEED``); config: the validated Config;
    name: its file name in the output directory."""
    index: int
    params: dict
    replicate: int
    seed: int
    overrides: tuple
    config: object = field(repr=False, compare=False)
    name: str = ""

    def command(self, base):
        """The ``exodiff run`` command line that makes the same file."""
        words = ["exodiff", "run", shlex.quote(os.fspath(base))]
        for o in self.overrides[:-1]:  # the last is run.seed, given as --seed
            words += ["--set", shlex.quote(o)]
        return " ".join(words + ["--seed", str(self.seed)])


@dataclass
class Sweep:
    """A validated sweep file: ``points`` holds every run, each config loaded."""
    path: str
    base: str          # absolute path of the base scenario
    mode: str
    replicates: int
    set: dict          # dotted key -> value
    axes: dict         # dotted key -> list of values
    points: list

    @property
    def shape(self):
        """Values per axis (grid) or the zipped length, then replicates."""
        lengths = [len(v) for v in self.axes.values()]
        if self.mode == "zip" and lengths:
            lengths = [lengths[0]]
        return tuple(lengths) + (self.replicates,)


def load_sweep(path):
    """Read and validate a sweep file and load every point's config.

    Raises InputError (one line naming the file and key) for a bad sweep
    file, and for the first point whose config does not validate."""
    from .config import load_config
    path = os.fspath(path)
    raw = read_toml(path, "sweep")

    for key in raw:
        if key not in SWEEP_KEYS:
            raise InputError(f"{path}: {key}: unknown key{did_you_mean(key, SWEEP_KEYS)} "
                             f"(a sweep file has {', '.join(SWEEP_KEYS)})")
    base = raw.get("base")
    if not isinstance(base, str) or not base:
        raise InputError(f"{path}: base: expected the base scenario's file name, e.g. "
                         f'base = "quickstart.toml" (relative to the sweep file)')
    base = os.path.join(os.path.dirname(os.path.abspath(path)), base)
    mode = raw.get("mode", "grid")
    if mode not in MODES:
        raise InputError(f"{path}: mode: {mode!r}, expected \"grid\" or \"zip\""
                         + (did_you_mean(mode, MODES) if isinstance(mode, str) else ""))
    replicates = raw.get("replicates", 1)
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise InputError(f"{path}: replicates: {replicates!r}, expected a whole number ≥ 1")
    fixed = _dotted_table(raw.get("set", {}), "set", path)
    axes = _dotted_table(raw.get("axes", {}), "axes", path)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise InputError(f'{path}: axes."{key}": expected a non-empty list of values, '
                             f'e.g. "{key}" = [1, 2]')
        seen = set()
        for v in values:
            text = toml_value(v)
            if text in seen:
                raise InputError(f'{path}: axes."{key}": the value {text} appears twice')
            seen.add(text)
        if key in fixed:
            raise InputError(f'{path}: "{key}" is both in [set] and in [axes]; keep one')
    if mode == "zip" and len({len(v) for v in axes.values()}) > 1:
        lengths = ", ".join(f'"{k}" has {len(v)}' for k, v in axes.items())
        raise InputError(f'{path}: mode = "zip" needs axes of equal length ({lengths})')

    if mode == "grid":
        combos = list(itertools.product(*axes.values()))
    else:
        combos = list(zip(*axes.values()))
    short = _short_keys(list(axes))
    points, names = [], {}
    for combo in combos:
        params = dict(zip(axes, combo))
        sets = [f"{k}={toml_value(v)}" for k, v in fixed.items()]
        sets += [f"{k}={toml_value(v)}" for k, v in params.items()]
        stem = "__".join(f"{short[k]}={_sanitize(v)}" for k, v in params.items())
        label = stem or "base"
        try:
            seed0 = load_config(base, sets).run.seed
        except InputError as e:
            raise InputError(f"{path}: point {label}: {e}") from None
        for r in range(replicates):
            seed = replicate_seed(seed0, r)
            overrides = tuple(sets + [f"run.seed={seed}"])
            try:
                config = load_config(base, overrides)
            except InputError as e:  # not expected: the same config with another seed
                raise InputError(f"{path}: point {label} replicate {r}: {e}") from None
            name = _file_name(stem, r)
            if name in names:
                raise InputError(f"{path}: points {_describe(names[name])} and {_describe(params)} "
                                 f"would share the file {name}; make the values differ in more than "
                                 "spaces and punctuation")
            names[name] = params
            points.append(Point(len(points), params, r, seed, overrides, config, name))
    return Sweep(path=path, base=base, mode=mode, replicates=replicates, set=fixed,
                 axes=axes, points=points)


def _dotted_table(table, section, path):
    if not isinstance(table, dict):
        raise InputError(f"{path}: {section}: expected a table [{section}]")
    for key in table:
        if "." not in key:
            raise InputError(f'{path}: {section}.{key}: expected a quoted dotted config key, '
                             f'e.g. "cells.count" (a table [{section}.{key}] is not read)')
    return dict(table)


def _describe(params):
    return ", ".join(f"{k}={toml_value(v)}" for k, v in params.items()) or "(base)"


def _short_keys(keys):
    """Shortest dotted tail that tells each key apart: kappa, target.kappa, …"""
    parts = {k: k.split(".") for k in keys}
    short = {}
    for k in keys:
        for n in range(1, len(parts[k]) + 1):
            tail = parts[k][-n:]
            if all(parts[o][-n:] != tail for o in keys if o != k):
                break
        short[k] = _sanitize(".".join(tail))
    return short


def _sanitize(value):
    """Value -> file-name text: ``"0.1 um/s"`` -> ``0.1um_s``."""
    text = value if isinstance(value, str) else toml_value(value)
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")
    return text or "_"


def _file_name(stem, replicate):
    stem = f"{stem}__rep{replicate}" if stem else f"rep{replicate}"
    if len(stem) > _MAX_STEM:  # keep names legal; the hash keeps them distinct and stable
        stem = stem[: _MAX_STEM - 13] + "~" + hashlib.sha1(stem.encode()).hexdigest()[:12]
    return stem + ".h5"


# ------------------------------------------------- what is already finished


def plan_sweep(sweep, out_dir):
    """Point -> "done" (finished file present: skipped) or "todo".

    Raises InputError when ``out_dir`` is not a directory, or when a point's
    file exists but holds another scenario (checked for every point before
    anything runs)."""
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a directory")
    return {p.index: ("done" if _finished(p, out_dir) else "todo") for p in sweep.points}


def _finished(point, out_dir):
    from .io import open_run
    path = os.path.join(out_dir, point.name)
    if not os.path.exists(path):
        return False
    try:
        run = open_run(path)
    except InputError:
        raise InputError(f"{path}: exists but is not a readable exodiff run; "
                         "remove it or choose another -o") from None
    with run:
        if run.config != point.config:
            raise InputError(f"{path}: exists but holds another scenario ({_difference(run, point)}); "
                             "remove it or choose another -o")
        n_steps = run.parameters.get("n_steps")
        steps = run.observation_steps
        # NAME.h5 appears only by renaming a finished file; this catches copies
        return n_steps is None or (steps.size > 0 and int(steps[-1]) == int(n_steps))


def _difference(run, point):
    """The first config key whose value differs between a file and a point."""
    try:
        there = parse_toml(run.config_text)
    except TOMLDecodeError:
        return "its config is unreadable"
    for key, a, b in differences(there, parse_toml(point.config.to_toml())):
        return (f"{key} = {'(unset)' if a is UNSET else toml_value(a)} there, "
                f"{'(unset)' if b is UNSET else toml_value(b)} here")
    return "its config differs"


# ------------------------------------------------------------- the results


def result_row(path):
    """Results of a finished run file, for the summary.

    Columns: backend, device; ``n_<state>`` final count per state
    (pending, free, bound, internalized, exited, cleared); per cell type T:
    ``bound_T``, ``internalized_T`` (vesicles at the end) and ``uptake_T`` =
    (bound_T + internalized_T) / released, the fraction of the vesicles
    released so far (pool less pending) that cells of type T hold."""
    from .io import open_run
    from .kernels.constants import STATE_NAMES
    with open_run(path) as run:
        row = {"backend": run.backend, "device": run.device}
        if run.n_observations == 0:
            return row
        counts = {s: int(run.counts[s][-1]) for s in STATE_NAMES}
        row.update({f"n_{s}": c for s, c in counts.items()})
        released = sum(counts.values()) - counts["pending"]
        for name, (bound, inside) in run.uptake_by_type().items():
            b, i = int(bound[-1]), int(inside[-1])
            row[f"bound_{name}"] = b
            row[f"internalized_{name}"] = i
            row[f"uptake_{name}"] = (b + i) / released if released else math.nan
    return row


def _run_point(config, backend, path):
    """Run one point on a worker into PATH.incomplete, renamed to PATH when
    done.  A PATH.incomplete left by a killed attempt is resumed from its
    latest full state when the driver can (same config, version and
    backend), else run again from the start."""
    from .driver import Simulation
    sim = Simulation(config, backend=backend)
    partial = path + INCOMPLETE
    plan = None
    if os.path.exists(partial) and hasattr(sim, "plan_resume"):
        try:
            plan = sim.plan_resume(partial)
        except InputError:
            plan = None  # not resumable (damaged, other backend …): start over
    if plan is not None:
        summary = sim.run(partial, resume=plan)
    else:
        summary = sim.run(partial, overwrite=True)
    os.replace(partial, path)
    row = result_row(path)
    row.update(wall_time=summary["wall_time"], rate=summary["rate"],
               resumed_from=int(summary.get("resumed_from", 0)))
    return row


# ----------------------------------------------------------------- running


@dataclass
class SweepEvent:
    """What the ``progress`` callback receives: once with ``row`` None when
    the sweep starts (``finished`` = points skipped; ``cluster`` says where
    the rest run), then after each point that ran or failed."""
    total: int
    finished: int
    failed: int
    row: dict | None = None
    cluster: str = ""


@dataclass
class SweepResult:
    """rows: one dict per point, in point order (status ran | skipped |
    failed | pending); summary_csv / summary_parquet: the files written
    (parquet None without pyarrow)."""
    rows: list
    summary_csv: str
    summary_parquet: str | None

    def count(self, status):
        return sum(r["status"] == status for r in self.rows)


def require_dask():
    """Raise InputError with the install line when dask.distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(INSTALL_HINT) from None


def check_arguments(workers=None, scheduler=None, backend="auto"):
    """InputError for run_sweep arguments that cannot work (before any loading)."""
    from .backends import BACKENDS
    if backend not in BACKENDS:
        raise InputError(f"--backend: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise InputError(f"--workers: {workers}, expected at least 1")
    if workers is not None and scheduler is not None:
        raise InputError("--workers: not with --scheduler (the cluster has its own workers)")


def run_sweep(sweep, out_dir, *, workers=None, scheduler=None, backend="auto", progress=None,
              quiet_logs=True):
    """Run every unfinished point of ``sweep`` into ``out_dir`` and write the summary.

    workers: local worker processes (see the module docstring for the
    default); scheduler: address (``tcp://host:8786``) or scheduler file of
    an existing cluster instead; backend: auto | cuda | numba | numpy;
    progress(SweepEvent): see SweepEvent.  A point that fails (an exception,
    or its worker dying twice) gets status "failed" and its error line; the
    others go on.  Returns a SweepResult."""
    require_dask()
    check_arguments(workers, scheduler, backend)
    plan = plan_sweep(sweep, out_dir)
    out_dir = os.path.abspath(out_dir)
    todo = [p for p in sweep.points if plan[p.index] == "todo"]
    local = None
    if todo and scheduler is None:
        local = _local_cluster_spec(len(todo), workers, backend)  # may raise InputError
    os.makedirs(out_dir, exist_ok=True)

    earlier = _earlier_timings(os.path.join(out_dir, SUMMARY + ".csv"))
    rows = {}
    for p in sweep.points:
        row = _base_row(p)
        if plan[p.index] == "done":
            path = os.path.join(out_dir, p.name)
            row.update(status="skipped", **result_row(path))
            row.update(earlier.get(p.name, {}))
        rows[p.index] = row
    csv_path = os.path.join(out_dir, SUMMARY + ".csv")
    total, finished, failed = len(sweep.points), len(sweep.points) - len(todo), 0

    def report(row=None, cluster=""):
        if progress is not None:
            progress(SweepEvent(total, finished, failed, row, cluster))

    if not todo:
        report()
        return _finish(rows, sweep, out_dir)

    from distributed import Client, as_completed
    cluster = client = None
    futures = {}
    try:
        if local is not None:
            cluster, where = _start_local_cluster(local, quiet_logs)
            client = Client(cluster)
            run_backend = local["backend"]
        else:
            client, where = _connect(scheduler)
            run_backend = backend
        report(cluster=where)
        for p in todo:
            future = client.submit(_run_point, p.config, run_backend, os.path.join(out_dir, p.name),
                                   key=f"exodiff-{p.name}-{os.urandom(4).hex()}", pure=False)
            futures[future] = p
        last_write = _time.monotonic()
        for future in as_completed(futures):
            p = futures[future]
            row = rows[p.index]
            try:
                row.update(future.result())
                row["status"] = "ran"
            except Exception as exc:  # a failing point is reported, the others go on
                row.update(status="failed", error=_error_line(exc))
                failed += 1
            finished += 1
            future.release()
            report(row)
            if _time.monotonic() - last_write > SUMMARY_EVERY:
                _write_csv(list(rows.values()), csv_path, _columns(rows.values(), sweep))
                last_write = _time.monotonic()
    finally:
        if client is not None:
            pending = [f for f in futures if not f.done()]
            if pending:
                client.cancel(pending)
            _write_csv(list(rows.values()), csv_path, _columns(rows.values(), sweep))
            client.close()
        if cluster is not None:
            cluster.close()
    return _finish(rows, sweep, out_dir)


def _base_row(point):
    row = {"file": point.name, "status": "pending", "replicate": point.replicate, "seed": point.seed}
    row.update({k: v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else toml_value(v)
                for k, v in point.params.items()})
    return row


_RESULT_HEAD = ("wall_time", "rate", "resumed_from", "backend", "device")


def _columns(rows, sweep):
    head = ["file", "status", "replicate", "seed", *sweep.axes, *_RESULT_HEAD]
    rest = []
    for row in rows:
        rest.extend(k for k in row if k not in head and k != "error" and k not in rest)
    return head + rest + ["error"]


def _finish(rows, sweep, out_dir):
    rows = [rows[i] for i in sorted(rows)]
    columns = _columns(rows, sweep)
    csv_path = os.path.join(out_dir, SUMMARY + ".csv")
    _write_csv(rows, csv_path, columns)
    parquet = _write_parquet(rows, os.path.join(out_dir, SUMMARY + ".parquet"), columns)
    return SweepResult(rows, csv_path, parquet)


def _write_csv(rows, path, columns):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        for row in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)


def _write_parquet(rows, path, columns):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    import pandas as pd
    frame = pd.DataFrame(rows, columns=columns)
    def missing(v):
        return v is None or (isinstance(v, float) and math.isnan(v))

    for name in frame.columns:
        kinds = {type(v) for v in frame[name] if not missing(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:  # e.g. 5 and "6 um" on one axis
            frame[name] = [None if missing(v) else v if isinstance(v, str) else toml_value(v)
                           for v in frame[name]]
    tmp = path + ".tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def _earlier_timings(csv_path):
    """file -> {wall_time, rate, resumed_from} from an earlier summary (for
    the files that are skipped now)."""
    timings = {}
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("status") in ("ran", "skipped") and row.get("file"):
                    timings[row["file"]] = {k: float(row[k]) for k in ("wall_time", "rate")
                                            if row.get(k) not in (None, "")}
                    if row.get("resumed_from", "").isdigit():
                        timings[row["file"]]["resumed_from"] = int(row["resumed_from"])
    except (OSError, ValueError, csv.Error):
        pass  # no usable earlier summary: the skipped points' timings stay blank
    return timings


def _error_line(exc):
    from distributed import KilledWorker
    if isinstance(exc, KilledWorker):
        tries = getattr(exc, "allowed_failures", 0) + 1
        return f"KilledWorker: the worker running this point died (killed or crashed) on {tries} tr" + (
            "ies" if tries > 1 else "y")
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


# ------------------------------------------------------------- the cluster


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _local_cluster_spec(n_todo, workers, backend):
    """How many workers, with what environment: see the module docstring."""
    from .backends import cuda_unavailable_reason
    cores = _cores()
    devices = None
    if backend in ("auto", "cuda"):
        reason = cuda_unavailable_reason()
        if reason is None:
            import cupy
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
            devices = ([d.strip() for d in visible.split(",") if d.strip()] if visible
                       else [str(i) for i in range(cupy.cuda.runtime.getDeviceCount())])
        elif backend == "cuda":
            raise InputError(f"--backend cuda: {reason}")
    if devices:
        n = int(workers) if workers is not None else len(devices)
        run_backend = "cuda"
    else:
        n = int(workers) if workers is not None else max(1, min(cores, n_todo))
        run_backend = "numba" if backend == "auto" else backend
    threads = requested_threads() or max(1, cores // n)  # NUMBA_NUM_THREADS, or --threads
    envs = []
    for i in range(n):
        env = {"NUMBA_NUM_THREADS": str(threads)}
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[i % len(devices)]
        envs.append(env)
    return {"envs": envs, "backend": run_backend, "threads": threads, "devices": devices}


def _start_local_cluster(spec, quiet_logs):
    import logging

    from distributed import Nanny, Scheduler, SpecCluster
    # failures reach the caller as rows; the workers' own log lines would repeat them
    level = logging.CRITICAL if quiet_logs else logging.WARNING
    scheduler = {"cls": Scheduler, "options": {
        "host": "127.0.0.1", "dashboard": False,
        # a worker that dies running a point: one retry on a fresh worker
        "allowed_failures": 1}}
    workers = {i: {"cls": Nanny, "options": {
        "host": "127.0.0.1", "nthreads": 1, "memory_limit": 0, "env": env,
        "silence_logs": level}} for i, env in enumerate(spec["envs"])}
    cluster = SpecCluster(workers=workers, scheduler=scheduler, silence_logs=level,
                          name="exodiff-sweep")
    n = len(workers)
    if spec["devices"]:
        where = (f"a local cluster of {n} worker{'s' * (n != 1)}, one per GPU "
                 f"({', '.join(sorted(set(e['CUDA_VISIBLE_DEVICES'] for e in spec['envs'])))})")
    else:
        where = (f"a local cluster of {n} worker process{'es' * (n != 1)} "
                 f"({spec['backend']}, {spec['threads']} thread{'s' * (spec['threads'] != 1)} each)")
    return cluster, where


def _connect(scheduler):
    from distributed import Client
    try:
        if scheduler.endswith(".json") and os.path.isfile(scheduler):
            client = Client(scheduler_file=scheduler, timeout="20s")
        else:
            client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({' '.join(str(e).split())})") from None
    n = len(client.scheduler_info().get("workers", {}))
    return client, f"the cluster at {client.scheduler.address} ({n} worker{'s' * (n != 1)} now)"
