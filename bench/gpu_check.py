"""GPU check of exodiff's cuda backend on one GPU, offline (it installs and
downloads nothing), in under 8 minutes, ending with one table.

    bash bench/gpu_check.sh [--vesicles 1e7] [--cells 1000] [--json out.json] [--dry-run]

1. Agreement (pytest tests/test_cuda.py, test_nvrtc.py, test_cuda_host.py):
   CPU–GPU agreement per step to round-off, over whole runs and
   statistically, one row per test; the NVRTC build and the host-harness/nvcc
   checks as one row each.
2. ``exodiff validate --quick --backend cuda``.
3. Rates, vesicle-steps/s of the fused step for N vesicles among M cells
   (random packing, 200 µm box, ~3.5 cells per grid bin): cuda in each
   precision the config offers (``run.precision`` "double" and "mixed",
   where that key exists; else double only), cuda without the cell lookup
   and capacity-limited (a launch and a recount per step), and Numba on this
   machine's CPUs.  Compile and upload are timed apart, never with the steps.

Each step has a time budget within the 8 minutes (``--dry-run`` prints
them); a step that runs out is a failure, and steps left without time are
reported as not run.  Without a usable GPU it says why within seconds and
exits with status 2.  Exit status 1: a check failed; 0: all passed.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 2e10   # vesicle-steps/s for 1e7 vesicles among 1000 cells on an H100 (issue 4)
BOX = 200.0          # µm
TOTAL_S = 470        # the whole check, under 8 minutes with start-up
BUDGET_S = {"tests": 170, "validate": 170}   # the rates get what is left (about 2 minutes)
TEST_FILES = ("tests/test_cuda.py", "tests/test_nvrtc.py", "tests/test_cuda_host.py")


def _say(*parts):
    print(*parts, flush=True)


def bench_config(n_vesicles, n_cells, seed=1, precision=None):
    """1000 target cells (5 µm) in a 200 µm box, periodic sideways; 50 nm
    vesicles (D ≈ 5.8 µm²/s at 37 °C by Stokes–Einstein), dt = 1 ms;
    `precision` sets run.precision (None: leave it out)."""
    from exodiff.config import parse_config
    raw = {
        "run": {"duration": 1000.0, "dt": 1e-3, "seed": seed},
        "domain": {"size": [BOX, BOX, BOX],
                   "boundary": {"x": "periodic", "y": "periodic", "z": "reflect"}},
        "cells": ({"layout": "random", "count": n_cells, "radius": 5.0, "types": {"target": 1.0}}
                  if n_cells else {"layout": "list", "centers": [], "radius": 5.0}),
        "cell_types": {"target": {"kappa": 1.0, "k_off": 1e-3, "k_int": 1e-3}},
        "vesicles": {"ev": {"radius": 0.05, "count": n_vesicles}},
        "output": {"positions": "none"},
    }
    if precision is not None:
        raw["run"]["precision"] = precision
    return parse_config(raw)


def precisions():
    """The run.precision values this exodiff accepts: ("double", "mixed") once
    mixed precision exists, else (None,) (the key unknown: double only)."""
    from exodiff.errors import InputError
    try:
        bench_config(10, 0, precision="mixed")
    except InputError:
        return (None,)
    return ("double", "mixed")


def subset(arrays, n):
    """The first n vesicles of a model's kernel arrays (the rest shared)."""
    from exodiff.kernels.state import FIELDS
    out = dict(arrays)
    for name in (k for k, f in FIELDS.items() if f.per_vesicle):
        out[name] = np.ascontiguousarray(arrays[name][:n])
    return out


def _copy_arrays(arrays):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}


def variant(model, **changes):
    """A shallow copy of `model` (precision and all) with fresh arrays, some replaced."""
    out = copy.copy(model)
    out.arrays = _copy_arrays(model.arrays)
    out.arrays.update(changes)
    return out


def numba_rate(arrays, steps=10):
    """Vesicle-steps/s of the Numba backend on these arrays (JIT excluded)."""
    import numba
    from exodiff.kernels import step_numba
    from exodiff.kernels.state import pack
    a = _copy_arrays(arrays)
    args = pack(a)
    step_numba.advance(0, 1, args)  # compile (or load from cache)
    t = time.perf_counter()
    step_numba.advance(1, 1 + steps, args)
    return a["state"].size * steps / (time.perf_counter() - t), numba.get_num_threads()


def gpu_rate(backend, model, seconds, sync):
    """Best and median vesicle-steps/s over 3 timed launch series of ~`seconds`."""
    t = time.perf_counter()
    backend.prepare(model)
    sync()
    prepare_s = time.perf_counter() - t
    n = model.arrays["state"].size
    backend.advance(0, 5)  # first launch
    sync()
    t = time.perf_counter()
    backend.advance(5, 25)
    sync()
    guess = n * 20 / (time.perf_counter() - t)
    steps = int(min(max(seconds * guess / n, 10), 20000))
    rates = []
    s = 25
    for _ in range(3):
        t = time.perf_counter()
        backend.advance(s, s + steps)
        sync()
        rates.append(n * steps / (time.perf_counter() - t))
        s += steps
    t = time.perf_counter()
    backend.fetch(model)
    return {"best": max(rates), "median": float(np.median(rates)), "steps": steps,
            "prepare_s": prepare_s, "fetch_s": time.perf_counter() - t}


def _tail(text, lines=25):
    return "\n".join(text.strip().splitlines()[-lines:])


def run_tests(timeout):
    """[(check, status, detail)] from pytest's JUnit report: one row per
    test_cuda.py test, one per other file."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               f"--junitxml={xml}", *TEST_FILES]
        _say("$ " + " ".join(cmd[2:]))
        try:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [("GPU tests", "FAILED", f"timed out after {timeout:.0f} s")]
        _say(_tail(done.stdout + done.stderr))
        if not xml.exists():
            return [("GPU tests", "FAILED", f"pytest exited {done.returncode} without a report")]
        cases = ET.parse(xml).getroot().iter("testcase")
        rows, files = [], {}
        for case in cases:
            outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
            status = {"passed": "ok", "skipped": "skipped"}.get(outcome, "FAILED")
            name = case.get("name")
            module = case.get("classname", "").rsplit(".", 1)[-1]
            if module == "test_cuda":
                detail = next((c.get("message", "") for c in case if c.tag == outcome), "")
                kind = "agreement" if any(w in name for w in ("match", "agree", "equal")) else "cuda"
                rows.append((f"{kind}: {name.removeprefix('test_cuda_')}", status, detail[:60]))
            else:
                files.setdefault(module, []).append(status)
        for module, statuses in files.items():
            counts = ", ".join(f"{statuses.count(s)} {w}" for s, w in
                               (("ok", "passed"), ("FAILED", "failed"), ("skipped", "skipped"))
                               if statuses.count(s))
            rows.append((f"{module}.py", "FAILED" if "FAILED" in statuses else "ok", counts))
        if done.returncode not in (0, 5) and not any(r[1] == "FAILED" for r in rows):
            rows.append(("GPU tests", "FAILED", f"pytest exited {done.returncode}"))
        return rows


def run_validate(timeout):
    base = [sys.executable, "-m", "exodiff", "validate"]
    helped = subprocess.run(base + ["--help"], cwd=ROOT, capture_output=True, text=True)
    if helped.returncode != 0 or "--quick" not in helped.stdout or "--backend" not in helped.stdout:
        return "skipped", "this exodiff has no `validate --quick --backend`"
    _say("$ exodiff validate --quick --backend cuda")
    try:
        done = subprocess.run(base + ["--quick", "--backend", "cuda"], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "FAILED", f"timed out after {timeout:.0f} s"
    out = (done.stdout + done.stderr).strip()
    _say(_tail(out, 30))
    last = out.splitlines()[-1] if out else f"exit {done.returncode}"
    return ("ok" if done.returncode == 0 else "FAILED"), last


def rates(args, sync, remaining):
    """Rows of the rate part: cuda per precision, without cells, capacity-limited, numba."""
    from exodiff.backend_cuda import CudaBackend
    from exodiff.model import build_model
    n = int(args.vesicles)
    rows = []
    t = time.perf_counter()
    models = {p: build_model(bench_config(n, args.cells, precision=p)) for p in precisions()}
    first = next(iter(models.values()))
    a = first.arrays
    _say(f"scenario built in {time.perf_counter() - t:.1f} s: {n:.3g} vesicles, {args.cells} cells, "
         f"grid {'×'.join(str(int(b)) for b in a['nbins'])} bins, "
         f"{a['gitems'].size / max(1, a['gstart'].size - 1):.1f} cells per bin")
    seconds = min(args.seconds, max(0.2, (remaining() - 30) / 30))
    nn = min(n, int(args.numba_vesicles))
    numba, threads = numba_rate(subset(a, nn))
    backend = CudaBackend()
    label = f"{n:.0e} vesicles, {args.cells} cells"
    best = {}
    for precision, model in models.items():
        r = gpu_rate(backend, variant(model), seconds, sync)
        _say(f"cuda {precision or 'double'}: {r['best']:.3g} vesicle-steps/s ({r['steps']} steps per launch "
             f"series; prepare {r['prepare_s']:.2f} s incl. compile, fetch {r['fetch_s'] * 1e3:.0f} ms)")
        best[precision] = r["best"]
        verdict = "meets" if r["best"] >= TARGET_RATE else "below"
        rows.append((f"cuda {precision or 'double'}, {label}", "ok",
                     f"{r['best']:.3g} vesicle-steps/s, ×{r['best'] / numba:.0f} numba ({verdict} {TARGET_RATE:.0e})"))
    if None in models:
        rows.append((f"cuda mixed, {label}", "skipped", "no run.precision in this exodiff yet"))
    free = gpu_rate(backend, variant(first, gitems=np.zeros(0, dtype=np.int32)), seconds, sync)
    kept = next(iter(best.values())) / free["best"]
    rows.append(("cuda double, no cell lookup", "ok",
                 f"{free['best']:.3g} vesicle-steps/s (the cell lookup keeps {100 * kept:.0f} % of it)"))
    cap = gpu_rate(backend, variant(first, ccapacity=np.full_like(a["ccapacity"], 50)), seconds / 2, sync)
    rows.append(("cuda double, capacity-limited", "ok", f"{cap['best']:.3g} vesicle-steps/s (a launch + recount per step)"))
    rows.append((f"numba, {nn:.0e} vesicles", "ok", f"{numba:.3g} vesicle-steps/s ({threads} threads)"))
    return rows


def plan(args):
    """The steps and their time budgets, as --dry-run prints them."""
    v = f"{args.vesicles:.0e} vesicles among {args.cells} cells"
    return [f"1. agreement: pytest {' '.join(TEST_FILES)}  (budget {BUDGET_S['tests']} s)",
            f"2. exodiff validate --quick --backend cuda  (budget {BUDGET_S['validate']} s)",
            f"3. rates, {v}: cuda {' and '.join(p or 'double' for p in precisions())}, no cell lookup, "
            f"capacity-limited; numba on {args.numba_vesicles:.0e} vesicles  (what is left of {TOTAL_S} s)",
            "then one table; exit 0 all passed, 1 a check failed, 2 no usable GPU"]


def gpu_description():
    from exodiff.cuda_env import describe
    found = dict(describe())
    return (f"{found['device']}; CuPy {found['CuPy']}, CUDA runtime {found['CUDA runtime']}, "
            f"driver {found['CUDA driver']}, NVRTC {found['NVRTC']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vesicles", type=float, default=1e7, help="benchmark vesicles (default 1e7)")
    p.add_argument("--cells", type=int, default=1000, help="benchmark cells (default 1000)")
    p.add_argument("--seconds", type=float, default=1.5, help="wall time per timed launch series (default 1.5)")
    p.add_argument("--numba-vesicles", type=float, default=1e6, help="vesicles for the Numba rate (default 1e6)")
    p.add_argument("--skip-tests", action="store_true", help="rates only (no pytest, no validate)")
    p.add_argument("--json", help="also write the table here")
    p.add_argument("--dry-run", action="store_true", help="print the steps and their budgets, run nothing")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.dry_run:
        _say("\n".join(plan(args)))
        return 0
    from exodiff.backends import cuda_unavailable_reason
    from exodiff.cuda_env import describe

    t_start = time.perf_counter()

    def remaining():
        return TOTAL_S - (time.perf_counter() - t_start)

    reason = cuda_unavailable_reason()
    if reason is not None:
        _say("\n".join(f"{what + ':':<14} {found}" for what, found in describe()))
        _say(f"gpu_check: no usable GPU: {reason}")
        return 2
    device = gpu_description()
    _say(f"== exodiff GPU check: {device}")
    rows = []
    if not args.skip_tests:
        _say("\n== agreement (GPU tests)")
        rows += run_tests(timeout=min(BUDGET_S["tests"], remaining() - 60))
        _say("\n== validation quick set on the GPU")
        if remaining() > 90:
            rows.append(("validate --quick --backend cuda",
                         *run_validate(timeout=min(BUDGET_S["validate"], remaining() - 60))))
        else:
            rows.append(("validate --quick --backend cuda", "FAILED", "not run: out of time"))
    _say("\n== rates")
    import cupy
    try:
        rows += rates(args, cupy.cuda.Device().synchronize, remaining)
    except Exception as exc:  # report, do not hide: the table says what broke
        rows.append(("rates", "FAILED", f"{exc.__class__.__name__}: {exc}"))
    wall = time.perf_counter() - t_start
    rows.append(("wall time", "ok" if wall < 480 else "FAILED", f"{wall:.0f} s (must stay under 480 s)"))
    _print_table(device, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    return 1 if any(status == "FAILED" for _, status, _ in rows) else 0


def _print_table(device, rows):
    width = max(len(r[0]) for r in rows)
    _say(f"\n== exodiff GPU check on {device}")
    _say(f"{'check':<{width}}  {'status':<7}  result")
    _say(f"{'-' * width}  {'-' * 7}  {'-' * 40}")
    for check, status, detail in rows:
        _say(f"{check:<{width}}  {status:<7}  {detail}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
