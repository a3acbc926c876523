"""GPU check of exodiff's cuda backend: its tests, the validation quick set and
the benchmark, in under 5 minutes on one GPU, with a summary at the end.

    bash bench/gpu_check.sh [--vesicles 1e7] [--cells 1000] [--json out.json]

1. GPU tests (pytest tests/test_cuda.py tests/test_cuda_host.py): CPU–GPU
   agreement per step to round-off, whole runs, statistical agreement, plus
   the host-harness and nvcc checks.
2. ``exodiff validate --quick --backend cuda``, where exodiff has that command.
3. Benchmark: vesicle-steps/s of the fused step for N vesicles among M cells
   (random packing, 200 µm box, ~3.5 cells per grid bin) and with the cell
   lookup off (no cells: free diffusion); their ratio is the fraction of the
   free-diffusion rate the lookup keeps.  Also the capacity-limited path (one
   launch per step plus a recount), the device→host copy per chunk, and the
   Numba backend on this CPU for scale.  Compile and upload times are
   reported, never timed in with the steps.

Without a usable GPU it says why, still builds the benchmark scenario and
times Numba (the parts that need no CuPy), and exits with status 2.  Exit
status 1: a GPU step failed; 0: everything passed.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 2e10   # vesicle-steps/s for 1e7 vesicles among 1000 cells on an H100 (issue 4)
BOX = 200.0          # µm


def _say(*parts):
    print(*parts, flush=True)


def bench_config(n_vesicles, n_cells, seed=1):
    """1000 target cells (5 µm) in a 200 µm box, periodic sideways; 50 nm
    vesicles (D ≈ 5.8 µm²/s at 37 °C by Stokes–Einstein), dt = 1 ms."""
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
    return parse_config(raw)


def subset(arrays, n):
    """The first n vesicles of a model's kernel arrays (the rest shared)."""
    from exodiff.kernels.state import FIELDS
    out = dict(arrays)
    for name in (k for k, f in FIELDS.items() if f.per_vesicle):
        out[name] = np.ascontiguousarray(arrays[name][:n])
    return out


def without_cells(arrays):
    """The same vesicles with the cell lookup off (as with no cells at all)."""
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    out["gitems"] = np.zeros(0, dtype=np.int32)
    return out


class _Model:
    def __init__(self, arrays):
        self.arrays = arrays


def numba_rate(arrays, steps=10):
    """Vesicle-steps/s of the Numba backend on these arrays (JIT excluded)."""
    import numba
    from exodiff.kernels import step_numba
    from exodiff.kernels.state import pack
    a = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    args = pack(a)
    step_numba.advance(0, 1, args)  # compile (or load from cache)
    t = time.perf_counter()
    step_numba.advance(1, 1 + steps, args)
    dt = time.perf_counter() - t
    return a["state"].size * steps / dt, numba.get_num_threads()


def gpu_rate(backend, arrays, seconds, sync, start=0):
    """Best and median vesicle-steps/s over 3 timed launches of ~`seconds`."""
    model = _Model(arrays)
    t = time.perf_counter()
    backend.prepare(model)
    sync()
    prepare_s = time.perf_counter() - t
    n = arrays["state"].size
    backend.advance(start, start + 5)  # first launch
    sync()
    t = time.perf_counter()
    backend.advance(start + 5, start + 25)
    sync()
    guess = n * 20 / (time.perf_counter() - t)
    steps = int(min(max(seconds * guess / n, 10), 20000))
    rates = []
    s = start + 25
    for _ in range(3):
        t = time.perf_counter()
        backend.advance(s, s + steps)
        sync()
        rates.append(n * steps / (time.perf_counter() - t))
        s += steps
    t = time.perf_counter()
    backend.fetch(model)
    fetch_s = time.perf_counter() - t
    return {"best": max(rates), "median": float(np.median(rates)), "steps": steps,
            "prepare_s": prepare_s, "fetch_s": fetch_s}


def run_tests(timeout):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_cuda.py", "tests/test_cuda_host.py"]
    _say("$", " ".join(cmd[2:]))
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    tail = (done.stdout + done.stderr).strip().splitlines()
    _say("\n".join(tail[-25:]))
    last = tail[-1] if tail else ""
    skipped_gpu = "test_cuda.py" in done.stdout and "SKIPPED" in done.stdout and "no GPU" in done.stdout
    ok = done.returncode == 0 and not skipped_gpu
    return ok, last + (" (GPU tests were skipped)" if skipped_gpu else "")


def run_validate(timeout):
    base = [sys.executable, "-m", "exodiff", "validate"]
    helped = subprocess.run(base + ["--help"], cwd=ROOT, capture_output=True, text=True)
    if helped.returncode != 0:
        return None, "skipped: this exodiff has no `validate` command yet"
    if "--quick" not in helped.stdout or "--backend" not in helped.stdout:
        return None, "skipped: `exodiff validate` has no --quick/--backend options"
    cmd = base + ["--quick", "--backend", "cuda"]
    _say("$ exodiff validate --quick --backend cuda")
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    out = (done.stdout + done.stderr).strip().splitlines()
    _say("\n".join(out[-30:]))
    return done.returncode == 0, (out[-1] if out else f"exit {done.returncode}")


def gpu_description():
    import cupy
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    rt = cupy.cuda.runtime.runtimeGetVersion()
    return (f"{name} (sm_{props['major']}{props['minor']}, {props['totalGlobalMem'] / 2**30:.0f} GiB), "
            f"CuPy {cupy.__version__}, CUDA runtime {rt // 1000}.{rt % 1000 // 10}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vesicles", type=float, default=1e7, help="benchmark vesicles (default 1e7)")
    p.add_argument("--cells", type=int, default=1000, help="benchmark cells (default 1000)")
    p.add_argument("--seconds", type=float, default=1.5, help="wall time per timed launch (default 1.5)")
    p.add_argument("--numba-vesicles", type=float, default=1e6, help="vesicles for the Numba rate (default 1e6)")
    p.add_argument("--skip-tests", action="store_true", help="benchmark only")
    p.add_argument("--json", help="also write the summary here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from exodiff.backends import cuda_unavailable_reason

    t_start = time.perf_counter()
    summary = {"vesicles": int(args.vesicles), "cells": args.cells}
    reason = cuda_unavailable_reason()
    summary["gpu"] = gpu_description() if reason is None else None
    _say(f"== exodiff GPU check: {summary['gpu'] or 'no usable GPU: ' + reason}")
    failed = False

    # 1-2. tests and validation (GPU)
    if reason is None and not args.skip_tests:
        _say("\n== GPU tests")
        ok, line = run_tests(timeout=200)
        summary["tests"] = {"passed": ok, "result": line}
        failed |= not ok
        _say("\n== validation quick set on the GPU")
        ok, line = run_validate(timeout=120)
        summary["validate"] = {"passed": ok, "result": line}
        failed |= ok is False

    # 3. benchmark: scenario and Numba on the CPU
    n = int(args.vesicles)
    _say(f"\n== benchmark: {n:.3g} vesicles among {args.cells} cells, {BOX:g} µm box, dt = 1 ms")
    from exodiff.model import build_model
    t = time.perf_counter()
    model = build_model(bench_config(n, args.cells))
    a = model.arrays
    _say(f"scenario built in {time.perf_counter() - t:.1f} s: grid {'×'.join(str(int(b)) for b in a['nbins'])} "
         f"bins, {a['gitems'].size / max(1, a['gstart'].size - 1):.1f} cells per bin, "
         f"step length {a['sigma'][0]:.3f} µm")
    nn = min(n, int(args.numba_vesicles))
    rate, threads = numba_rate(subset(a, nn))
    summary["numba"] = {"rate": rate, "threads": threads, "vesicles": nn}
    _say(f"numba ({threads} threads, {nn:.3g} vesicles): {rate:.3g} vesicle-steps/s")

    if reason is not None:
        _say(f"\nno GPU benchmark: {reason}")
        _print_summary(summary, time.perf_counter() - t_start)
        _write(args.json, summary)
        return 2

    # 3. benchmark on the GPU
    import cupy
    from exodiff.backend_cuda import CudaBackend
    sync = cupy.cuda.Device().synchronize
    backend = CudaBackend()
    try:
        cells = gpu_rate(backend, {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()},
                         args.seconds, sync)
        _say(f"cuda, {args.cells} cells: {cells['best']:.3g} vesicle-steps/s "
             f"({cells['steps']} steps per launch series; prepare {cells['prepare_s']:.2f} s incl. compile, "
             f"fetch {cells['fetch_s'] * 1e3:.0f} ms)")
        free = gpu_rate(backend, without_cells(a), args.seconds, sync)
        _say(f"cuda, no cell lookup: {free['best']:.3g} vesicle-steps/s")
        capped = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
        capped["type_capacity"] = np.full_like(a["type_capacity"], 50)
        cap = gpu_rate(backend, capped, args.seconds / 2, sync)
        _say(f"cuda, capacity-limited (a launch and a recount per step): {cap['best']:.3g} vesicle-steps/s")
        from exodiff.kernels.state import FETCHED
        fetched = sum(a[k].nbytes for k in FETCHED)
        summary["cuda"] = {"cells": cells, "free": free, "capacity": cap,
                           "lookup_keeps": cells["best"] / free["best"],
                           "fetch_mb": fetched / 1e6, "speedup_vs_numba": cells["best"] / rate}
    except Exception as exc:  # report, do not hide: the summary says what broke
        summary["cuda"] = {"error": f"{exc.__class__.__name__}: {exc}"}
        failed = True
    _print_summary(summary, time.perf_counter() - t_start)
    _write(args.json, summary)
    return 1 if failed else 0


def _print_summary(s, wall):
    _say("\n== summary")
    _say(f"device            {s['gpu'] or 'none'}")
    for key in ("tests", "validate"):
        if key in s:
            state = {True: "passed", False: "FAILED", None: "skipped"}[s[key]["passed"]]
            _say(f"{key:<17} {state}: {s[key]['result']}")
    nb = s["numba"]
    _say(f"numba             {nb['rate']:.3g} vesicle-steps/s ({nb['threads']} threads, {nb['vesicles']:.3g} vesicles)")
    c = s.get("cuda")
    if c and "error" in c:
        _say(f"cuda benchmark    FAILED: {c['error']}")
    elif c:
        verdict = "meets" if c["cells"]["best"] >= TARGET_RATE else "below"
        _say(f"cuda, {s['cells']} cells   {c['cells']['best']:.3g} vesicle-steps/s for {s['vesicles']:.3g} vesicles "
             f"({verdict} the H100 target {TARGET_RATE:.0e}; ×{c['speedup_vs_numba']:.0f} Numba)")
        _say(f"cuda, no cells    {c['free']['best']:.3g} vesicle-steps/s; the cell lookup keeps "
             f"{100 * c['lookup_keeps']:.0f} % of it")
        _say(f"cuda, capacity    {c['capacity']['best']:.3g} vesicle-steps/s (per-step launches)")
        _say(f"fetch per chunk   {c['cells']['fetch_s'] * 1e3:.0f} ms for {c['fetch_mb']:.0f} MB")
    _say(f"wall time         {wall:.0f} s")


def _write(path, summary):
    if path:
        Path(path).write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
