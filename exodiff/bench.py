"""Throughput of exodiff's backends on standard scenarios (``exodiff bench``).

Measures the stepping alone: the model is built, the backend prepared and one
step taken (JIT compilation or loading the cache, CUDA module build) before
the clock starts; then ``advance`` over a fixed number of steps is timed,
``repeats`` times, and the median is kept.  The entries of one table are timed
interleaved (each repeat times every entry once, in a rotating order), so
load from other processes falls on all of them alike.  The rate counts the vesicles
active (FREE or BOUND) at the start of each timed stretch:

    rate = active vesicles × steps / wall time   [vesicle-steps/s]

Scenarios (µm, s), the peers' S1–S3 (bench/peers/) built with exodiff's own
cell packing: 10⁵ vesicles of radius 0.05 µm with D = 4 µm²/s in a reflective
cube of side 200 µm, dt = 1 ms; S1 no cells, S2 1000 absorbing cells
(contact radius 5 µm), S3 S2 with κ = 1 µm/s.

Scaling in cells keeps the cell volume fraction of S2 (1000 cells of contact
radius 5 µm in 200³ µm³) by growing the box with the cell count, so a
vesicle sees the same neighbourhood; the cell grid must then keep the cost per
vesicle-step flat (DESIGN §3).  Only the CLI prints: this module returns
rows and formats them.
"""
import copy
import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .config import parse_config
from .kernels.constants import BOUND, FREE

BOX = 200.0
DIFFUSION = 4.0
DT = 1e-3
VESICLE_RADIUS = 0.05
CONTACT_RADIUS = 5.0
N_STANDARD = 100_000
CELLS_STANDARD = 1000
KAPPA_S3 = 1.0

SCENARIOS = {
    "S1": dict(cells=0, kappa="inf", text="no cells"),
    "S2": dict(cells=CELLS_STANDARD, kappa="inf", text="1000 absorbing cells"),
    "S3": dict(cells=CELLS_STANDARD, kappa=KAPPA_S3, text="1000 cells, κ = 1 µm/s"),
}


def scenario_config(vesicles, cells, kappa="inf", box=BOX, seed=1, capacity=0, k_off=0.0, steps=1000,
                    stepping="fixed"):
    """A Config for a reflective cube of side `box` [µm] with `vesicles`
    vesicles (D = 4 µm²/s) and `cells` randomly packed cells of contact radius
    5 µm, reactivity `kappa` [µm/s] ("inf": absorbing), receptor `capacity`
    (0: unlimited) and unbinding rate `k_off` [1/s]; a run of `steps` steps
    of 1 ms observed and snapshotted at its end only.  Fixed stepping by
    default: the tables count the kernel's vesicle-steps; adaptive stepping
    has its own table (measure_stepping)."""
    raw = {
        "run": {"duration": steps * DT, "dt": DT, "seed": seed, "stepping": stepping},
        "domain": {"size": [box] * 3, "boundary": "reflect"},
        "cell_types": {"target": {"kappa": kappa, "capacity": int(capacity), "k_off": float(k_off)}},
        "vesicles": {"ev": {"radius": VESICLE_RADIUS, "diffusion": DIFFUSION, "count": int(vesicles)}},
        "output": {"positions": "none"},
    }
    if cells:
        raw["cells"] = {"layout": "random", "count": int(cells), "radius": CONTACT_RADIUS - VESICLE_RADIUS}
    else:
        raw["cells"] = {"layout": "list", "centers": [], "radius": CONTACT_RADIUS - VESICLE_RADIUS}
    return parse_config(raw)


def box_for_cells(cells):
    """Side [µm] of the cube that holds `cells` cells at S2's volume fraction."""
    return BOX * (max(cells, 1) / CELLS_STANDARD) ** (1.0 / 3.0)


@dataclass
class Measurement:
    """One timed configuration."""
    backend: str
    device: str
    label: str
    vesicles: int
    cells: int
    steps: int
    rate: float                     # vesicle-steps/s (median)
    seconds: list = field(default_factory=list)
    bytes_per_vesicle: float = 0.0
    cells_per_bin: float = 0.0      # mean cells listed per grid bin, weighted by vesicles
    build_s: float = 0.0

    @property
    def ns_per_vesicle_step(self):
        return 1e9 / self.rate if self.rate > 0 else math.nan


def bytes_per_vesicle(model):
    """Bytes of per-vesicle state the kernels hold (arrays of length N)."""
    n = model.n_vesicles
    total = sum(a.nbytes for a in model.arrays.values() if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == n)
    total += model.birth_time.nbytes
    return total / max(n, 1)


def candidates_per_vesicle(model):
    """Mean number of cells listed in the grid bin of each vesicle (how many
    a vesicle tests per step)."""
    from .grid import bin_of
    g = model.grid
    if g is None or g.items.size == 0:
        return 0.0
    b = bin_of(g, model.arrays["pos"])
    return float(np.mean(g.start[b + 1] - g.start[b]))


class _Timed:
    """A built, prepared and warmed-up model on a backend, timed in stretches."""

    def __init__(self, config, backend_name, steps, label):
        from .backends import select_backend
        from .model import build_model
        t0 = time.perf_counter()
        self.model = build_model(config)
        self.build_s = time.perf_counter() - t0
        self.backend, _ = select_backend(backend_name)
        self.backend.prepare(self.model)
        self.backend.advance(0, 1)            # JIT / module load outside the clock
        self.backend.fetch(self.model)
        self.n, self.steps, self.label = 1, steps, label
        self.seconds, self.rates = [], []

    def time_once(self):
        state = self.model.arrays["state"]
        active = int(np.count_nonzero((state == FREE) | (state == BOUND)))
        t = time.perf_counter()
        self.backend.advance(self.n, self.n + self.steps)
        self.backend.fetch(self.model)
        dt = time.perf_counter() - t
        self.n += self.steps
        self.seconds.append(dt)
        self.rates.append(active * self.steps / dt if dt > 0 else math.nan)

    def result(self):
        m = self.model
        return Measurement(backend=self.backend.name, device=self.backend.device, label=self.label,
                           vesicles=m.n_vesicles, cells=m.n_cells, steps=self.steps,
                           rate=statistics.median(self.rates), seconds=self.seconds,
                           bytes_per_vesicle=bytes_per_vesicle(m), cells_per_bin=candidates_per_vesicle(m),
                           build_s=self.build_s)


def measure_interleaved(specs, repeats=3):
    """Time several (config, backend, steps, label) side by side: every
    repeat times each once, in a rotating order, so load from other
    processes falls on all alike.  Returns [Measurement] in specs' order."""
    timed = [_Timed(*spec) for spec in specs]
    for r in range(max(1, repeats)):
        k = r % len(timed)
        for t in timed[k:] + timed[:k]:
            t.time_once()
    out = [t.result() for t in timed]
    del timed
    return out


def measure(config, backend_name="numba", steps=100, repeats=3, label=""):
    """Build, warm up and time `backend_name` on `config`; returns Measurement."""
    return measure_interleaved([(config, backend_name, steps, label)], repeats)[0]


def available_backends():
    """Backends that can run here, fastest first."""
    from .backends import cuda_unavailable_reason
    out = ["numba", "numpy"]
    if cuda_unavailable_reason() is None:
        out.insert(0, "cuda")
    return out


def plan(quick=False):
    """Sizes: (vesicles, steps, repeats, vesicle scaling list, cell scaling list)."""
    if quick:
        return dict(vesicles=20_000, steps=50, repeats=1, scale_vesicles=[10_000, 100_000],
                    scale_cells=[10, 100, 1000, 10_000], scale_cells_vesicles=20_000)
    return dict(vesicles=N_STANDARD, steps=100, repeats=3, scale_vesicles=[10_000, 100_000, 1_000_000],
                scale_cells=[10, 100, 1000, 10_000], scale_cells_vesicles=N_STANDARD)


def run_all(backends=None, quick=False, progress=None):
    """Every table's measurements: dict with "standard", "vesicles", "cells"
    lists of Measurement.  Each table's entries are timed interleaved.
    `progress(str)` is told what runs next."""
    p = plan(quick)
    backends = backends or available_backends()
    say = progress or (lambda s: None)
    out = {}
    specs = []
    for b in backends:
        # the NumPy reference is slower: fewer steps keep it to seconds
        steps = p["steps"] if b != "numpy" else max(5, p["steps"] // 10)
        for name, sc in SCENARIOS.items():
            specs.append((scenario_config(p["vesicles"], sc["cells"], sc["kappa"]), b, steps, name))
    say(f"standard scenarios on {', '.join(backends)}")
    out["standard"] = measure_interleaved(specs, p["repeats"])
    main = backends[0]
    say(f"{main}: S2 with {', '.join(str(n) for n in p['scale_vesicles'])} vesicles")
    out["vesicles"] = measure_interleaved(
        [(scenario_config(n, CELLS_STANDARD, "inf"), main, max(10, min(p["steps"], int(1e7 // n))), "S2")
         for n in p["scale_vesicles"]], p["repeats"])
    say(f"{main}: {', '.join(str(m) for m in p['scale_cells'])} cells")
    out["cells"] = measure_interleaved(
        [(scenario_config(p["scale_cells_vesicles"], m, "inf", box=box_for_cells(m)), main, p["steps"], f"{m} cells")
         for m in p["scale_cells"]], p["repeats"])
    return out


def _rate(x):
    e = int(math.floor(math.log10(x))) if x > 0 and math.isfinite(x) else 0
    return f"{x / 10 ** e:.2f}e{e}" if x > 0 and math.isfinite(x) else "—"


def _table(head, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(head)]
    line = lambda r: "| " + " | ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows])


def format_report(res, quick=False):
    """The tables as markdown text."""
    p = plan(quick)
    out = []
    std = res["standard"]
    if std:
        out.append(f"Standard scenarios: {p['vesicles']} vesicles, D = {DIFFUSION:g} µm²/s, dt = {DT * 1e3:g} ms, "
                   f"reflective cube of side {BOX:g} µm (vesicle-steps/s, median of {p['repeats']})")
        out.append("")
        names = list(SCENARIOS)
        rows = []
        for b in dict.fromkeys(m.backend for m in std):
            ms = {m.label: m for m in std if m.backend == b}
            dev = next(iter(ms.values())).device
            rows.append([f"{b} [{dev}]"] + [_rate(ms[s].rate) if s in ms else "—" for s in names]
                        + [f"{next(iter(ms.values())).bytes_per_vesicle:.0f}"])
        out.append(_table(["backend"] + [f"{s} ({SCENARIOS[s]['text']})" for s in names] + ["bytes/vesicle"], rows))
        out.append("")
    if res["vesicles"]:
        m0 = res["vesicles"][0]
        out.append(f"Scaling in vesicles ({m0.backend}, S2: 1000 absorbing cells)")
        out.append("")
        out.append(_table(["vesicles", "steps", "vesicle-steps/s", "ns/vesicle-step"],
                          [[f"{m.vesicles}", m.steps, _rate(m.rate), f"{m.ns_per_vesicle_step:.0f}"]
                           for m in res["vesicles"]]))
        out.append("")
    if res["cells"]:
        cs = res["cells"]
        base = cs[0].ns_per_vesicle_step
        out.append(f"Scaling in cells ({cs[0].backend}, {cs[0].vesicles} vesicles; the box grows with the cell "
                   f"count to keep S2's volume fraction; cost per vesicle-step must stay flat)")
        out.append("")
        out.append(_table(["cells", "box side [µm]", "cells tested/step", "vesicle-steps/s", "ns/vesicle-step",
                           f"vs {cs[0].cells} cells"],
                          [[m.cells, f"{box_for_cells(m.cells):.0f}", f"{m.cells_per_bin:.2f}", _rate(m.rate),
                            f"{m.ns_per_vesicle_step:.0f}", f"{m.ns_per_vesicle_step / base:.2f}×"]
                           for m in cs]))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------- adaptive against fixed stepping

# Each entry: a config and the windows [steps] timed with each stepping, both
# from the start of the run.  S2 and the co-culture time the same window with
# both schemes; the 96-well's fixed window is short (its 24 h take the fixed
# scheme about six hours here), its adaptive window one hour.
STEPPING_SCENARIOS = {
    "S2": dict(fixed=1000, adaptive=1000, text="10⁵ vesicles, 1000 absorbing cells, 1 s"),
    "well_24h": dict(config="well_24h.toml", fixed=500, adaptive=45_000,
                     text="configs/well_24h.toml: fixed its first 10 s, adaptive its first 15 min "
                          "(one observation interval; every later one is alike)"),
    "coculture": dict(config="coculture.toml", fixed=30_000, adaptive=30_000,
                      text="configs/coculture.toml: the first 5 min"),
}


def _configs_dir():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "configs"


def stepping_config(name, stepping, steps, quick=False):
    """The Config of STEPPING_SCENARIOS[name] with run.stepping = `stepping`,
    cut to `steps` steps (observations and snapshots as the config has them)."""
    from .config import load_config
    if name == "S2":
        raw = scenario_config(20_000 if quick else N_STANDARD, CELLS_STANDARD, "inf", steps=steps,
                              stepping=stepping).raw
    else:
        raw = load_config(_configs_dir() / STEPPING_SCENARIOS[name]["config"]).raw
    raw = copy.deepcopy(raw)
    run = parse_config(raw).run
    raw["run"].update(duration=steps * run.dt, stepping=stepping,   # intervals: no longer than the window
                      snapshot_interval=min(run.snapshot_interval, steps * run.dt),
                      observe_interval=min(run.observe_interval, steps * run.dt))
    return parse_config(raw)


@dataclass
class SteppingMeasurement:
    """Simulated vesicle-seconds per wall-second of one scenario and stepping."""
    label: str
    stepping: str
    steps: int
    dt: float
    vesicle_seconds: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    cpu_seconds: list = field(default_factory=list)   # of the process, all threads
    leaps: int = 0

    @property
    def rate(self):
        return statistics.median(v / s for v, s in zip(self.vesicle_seconds, self.seconds)) \
            if self.seconds else math.nan

    @property
    def cpu_rate(self):
        """Per CPU-second: moves less than the wall clock with other people's load."""
        return statistics.median(v / s for v, s in zip(self.vesicle_seconds, self.cpu_seconds)) \
            if self.cpu_seconds else math.nan


def _time_window(config, backend_name):
    """Build `config`, warm the backend up (one step, outside the clock), run
    the rest of it from observation to observation; returns (simulated
    vesicle-seconds, wall seconds, CPU seconds, leaps)."""
    from .backends import select_backend
    from .model import build_model
    model = build_model(config)
    backend, _ = select_backend(backend_name)
    backend.prepare(model)
    backend.advance(0, 1)
    backend.fetch(model)
    a = model.arrays
    dt, n_end = config.run.dt, model.n_steps
    every = max(1, int(round(min(config.run.observe_interval, config.run.snapshot_interval) / dt)))
    births = np.sort(a["birth_step"][a["birth_step"] >= 1])
    n, work, wall, cpu = 1, 0, 0.0, 0.0
    while n < n_end:
        n1 = min(n_end, (n // every + 1) * every)
        n_active = int(np.count_nonzero((a["state"] == FREE) | (a["state"] == BOUND)))
        t, c = time.perf_counter(), time.process_time()
        backend.advance(n, n1)
        backend.fetch(model)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        # as the driver counts them: one born in step b is active from b + 1 on
        born = births[np.searchsorted(births, n):np.searchsorted(births, n1)]
        work += n_active * (n1 - n) + int((n1 - 1 - born).sum())
        n = n1
    leaps = int(a["leaps"].sum()) if "leaps" in a else 0
    return work * dt, wall, cpu, leaps


def measure_stepping(names=None, backend_name="numba", repeats=3, quick=False, progress=None):
    """[(fixed, adaptive) SteppingMeasurement] per scenario of
    STEPPING_SCENARIOS (all when `names` is None), timed alternately (fixed,
    adaptive, adaptive, fixed, …), each repeat on a freshly built model so
    every repeat times the same window."""
    say = progress or (lambda s: None)
    out = []
    for name in names or STEPPING_SCENARIOS:
        sc = STEPPING_SCENARIOS[name]
        pair = []
        for stepping in ("fixed", "adaptive"):
            steps = sc[stepping] if not quick else max(100, sc[stepping] // 10)
            cfg = stepping_config(name, stepping, steps + 1, quick)
            pair.append((SteppingMeasurement(name, stepping, steps, cfg.run.dt), cfg))
        for r in range(max(1, repeats)):
            for m, cfg in (pair if r % 2 == 0 else pair[::-1]):
                say(f"{name} {m.stepping}: {m.steps} steps (repeat {r + 1} of {repeats})")
                vs, wall, cpu, leaps = _time_window(cfg, backend_name)
                m.vesicle_seconds.append(vs)
                m.seconds.append(wall)
                m.cpu_seconds.append(cpu)
                m.leaps = leaps
        out.append(tuple(m for m, _ in pair))
    return out


def format_stepping(pairs, repeats):
    """The adaptive-against-fixed table as markdown."""
    rows = []
    for fixed, adaptive in pairs:
        rows.append([fixed.label, f"{fixed.dt * 1e3:g} ms",
                     f"{fixed.steps} / {adaptive.steps}",
                     _rate(fixed.rate), _rate(adaptive.rate), f"{adaptive.leaps:.3g}",
                     f"{adaptive.rate / fixed.rate:.1f}×", f"{adaptive.cpu_rate / fixed.cpu_rate:.1f}×"])
    head = ["scenario", "dt", "steps timed (fixed / adaptive)", "fixed [vesicle-s/s]",
            "adaptive [vesicle-s/s]", "leaps", "adaptive / fixed", "same, per CPU-second"]
    notes = "\n".join(f"- {k}: {v['text']}" for k, v in STEPPING_SCENARIOS.items()
                      if k in {p[0].label for p in pairs})
    return (f"Adaptive against fixed stepping: simulated vesicle-seconds per wall-second, same dt, "
            f"median of {repeats} (alternating)\n\n" + _table(head, rows) + "\n\n" + notes + "\n")
