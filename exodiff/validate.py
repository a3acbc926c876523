"""The validation suite: exodiff against exact solutions (DESIGN §6).

Each case is a scenario in ``configs/validation/`` and an exact formula
(exodiff/exact.py).  :func:`run_case` runs a case at two time steps, with the
step length s = √(2 D dt) a fixed fraction of the case's reference length L
(s = 0.02 L and 0.1 L; for cells L is the contact radius R), and compares the
simulated quantity with the exact one:

    |z| = |simulated − exact| / SE,   pass when |z| < 3,

where SE is the standard error of the estimate from its sample size
(binomial for fractions, Poisson for counts, χ²/normal for displacements),
never a tuned tolerance.  Sample sizes are chosen from the exact value so
that SE ≈ 0.9 % of it (``--quick``: 2 %, coarse step only).

Cases:
  free_diffusion            MSD = 6Dt, mean displacement = v t (uniform flow)
  smoluchowski              absorbed fraction (R/r0) erfc((r0 − R)/√(4Dt))
  collins_kimball_<κR/D>    partially absorbing sphere, κR/D = 0.01 … 100
  radiation_wall            survival at a partially absorbing face
  reversible_equilibrium    bound/free = κA/(k_off V_free)
  bound_kinetics            B = e^{−kt}, split k_off : k_int
  well_diffusion            deposition on an absorbing floor, diffusion only
  well_settling             the same with settling (gravity)
  secretion_clearance       steady profile s e^{−(r−R)/λ}/(4πD r (1 + R/λ))
and, where adaptive stepping leaps most (far from surfaces, long times;
one time step each, the column two):
  leap_free_diffusion       mean = v t and MSD = 6Dt after 1 h, periodic box
  leap_well_column          3 mm column with settling over 4 h (semi-infinite deposit)
  leap_smoluchowski         absorbing sphere from r0 = 10 R
  leap_collins_kimball      Collins–Kimball sphere (κR/D = 10) from r0 = 10 R
  leap_reversible_equilibrium  bound/free = κA/(k_off V) in a 50 µm periodic box

Every case runs with run.stepping = "fixed" (one calibrated step per dt,
the oracle) and "adaptive" (exact first-passage leaps far from surfaces);
each must pass on its own (``exodiff validate --stepping`` picks one).

Lengths in µm, times in s.  Only NumPy is needed; ``plot_case`` imports
matplotlib when called.
"""
from __future__ import annotations

import copy
import math
import os
import tempfile
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .exact import (bound_kinetics, collins_kimball, radiation_wall_survival, reversible_bound_fraction,
                    secretion_shell_count, settling_deposit, well_deposition)
from .kernels.constants import BOUND, EXITED, FREE, INTERNALIZED, STATE_NAMES

Z_PASS = 3.0            # |z| below this passes (the criterion)
SE_TARGET = 0.009       # relative standard error aimed at (full run; the issue asks < 1 %)
SE_TARGET_QUICK = 0.02  # … and with --quick
STEP_FRACTIONS = (0.02, 0.1)   # s / L of the two time steps (quick: the last)
MAX_BATCH = 1_000_000   # vesicles per simulation; larger samples run in batches


# ===================================================================== the cases

@dataclass
class Check:
    """One row of the validation table."""
    case: str
    step: float          # s / L
    quantity: str
    exact: float
    simulated: float
    se: float
    stepping: str = ""   # "fixed" or "adaptive" (run.stepping); "" as the config says

    @property
    def z(self):
        return abs(self.simulated - self.exact) / self.se if self.se > 0 else math.inf

    @property
    def passed(self):
        return self.z < Z_PASS


@dataclass
class Curve:
    """Simulated and exact values of a case against x, for the plot."""
    step: float
    x: np.ndarray
    simulated: np.ndarray
    se: np.ndarray
    exact: np.ndarray


@dataclass
class CaseResult:
    name: str
    title: str
    xlabel: str
    ylabel: str
    checks: list = field(default_factory=list)
    curves: list = field(default_factory=list)
    wall_time: float = 0.0
    vesicle_steps: int = 0
    stepping: str = ""
    leaps: int = 0       # leaps taken (adaptive stepping), from the runs' summaries


@dataclass(frozen=True)
class Case:
    name: str
    config: str          # file name in the validation config folder
    title: str
    run: object          # function(ctx, raw, step) -> (checks, curve, vesicle_steps)
    xlabel: str = "time [s]"
    ylabel: str = ""
    seed_offset: int = 0   # cases sharing a config draw independent numbers
    steps: tuple = STEP_FRACTIONS   # s / L of its time steps (quick: the last)


class _Context:
    def __init__(self, backend, quick, workdir):
        self.backend = backend
        self.quick = quick
        self.workdir = workdir
        self.target = SE_TARGET_QUICK if quick else SE_TARGET
        self.leaps = 0


def validation_config_dir():
    """configs/validation of this source tree (or $EXODIFF_VALIDATION_CONFIGS)."""
    env = os.environ.get("EXODIFF_VALIDATION_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "configs" / "validation"


def _load_raw(name, config_dir):
    from .tomlfile import read_toml
    path = Path(config_dir) / name
    if not path.is_file():
        raise InputError(f"{path}: no such validation config (exodiff validate needs a source "
                         f"checkout's configs/validation, or set EXODIFF_VALIDATION_CONFIGS)")
    return read_toml(path, "validation config")


def _parse(raw):
    from .config import parse_config
    return parse_config(raw)


def _setup(raw, step, length=None):
    """Parse `raw` and set run.dt so that s = √(2D dt) = step·L, L = `length`
    (a function of the parsed config; default the contact radius of the first
    cell).  Returns (raw, cfg, population name, D [µm²/s], R contact [µm])."""
    cfg = _parse(raw)
    (name, pop), = cfg.vesicles.items()
    if pop.diffusion is None:
        raise InputError(f"validation configs give vesicles.{name}.diffusion explicitly")
    D = float(pop.diffusion)
    R = float(cfg.cells.radius.median) + float(pop.radius.median)
    L = R if length is None else float(length(cfg, D, R))
    raw = copy.deepcopy(raw)
    dt = (step * L) ** 2 / (2.0 * D)
    raw["run"]["dt"] = dt
    for key in ("observe_interval", "snapshot_interval"):
        if key in raw["run"]:
            raw["run"][key] = max(_seconds(raw["run"][key]), dt)
    return raw, _parse(raw), name, D, R


def _seconds(value):
    from .units import parse_quantity
    return float(parse_quantity(value, "s", "run"))


def _final_time(cfg):
    from .physics import step_count
    return step_count(cfg.run.duration, cfg.run.dt) * cfg.run.dt


def _batches(n):
    """n vesicles in batches of at most MAX_BATCH, as even as possible."""
    nb = max(1, -(-n // MAX_BATCH))
    return [n // nb + (1 if b < n % nb else 0) for b in range(nb)]


def _simulate(ctx, raw, batches, configure, prepare=None, collect=None):
    """Run the scenario `raw` once per entry of `batches` (seeds seed,
    seed + 1, …), `configure(raw, entry)` setting the batch's size.  Returns
    (times[T], counts[T, len(STATE_NAMES)] summed over batches, [collect(sim, run)],
    vesicle-steps)."""
    from .driver import Simulation
    from .io import open_run
    times, counts, extra, work = None, None, [], 0
    base_seed = int(raw["run"].get("seed", 42))
    for b, entry in enumerate(batches):
        r = copy.deepcopy(raw)
        configure(r, entry)
        r["run"]["seed"] = base_seed + b
        sim = Simulation(_parse(r), backend=ctx.backend)
        if prepare is not None:
            prepare(sim)
        path = os.path.join(ctx.workdir, f"batch{b}.h5")
        summary = sim.run(path)
        work += summary["vesicle_steps"]
        ctx.leaps += int(summary.get("leaps", 0))
        with open_run(path) as run:
            times = np.asarray(run.observation_times, dtype=np.float64)
            c = np.stack([np.asarray(run.counts[s], dtype=np.int64) for s in STATE_NAMES], axis=1)
            if collect is not None:
                extra.append(collect(sim, run))
        counts = c if counts is None else counts + c
        os.remove(path)
    return times, counts, extra, work


def _count_setter(name):
    def configure(raw, k):
        raw["vesicles"][name]["count"] = int(k)
    return configure


def _binomial_size(p, target):
    """Sample size that makes the binomial SE of p about `target`·p."""
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return int(math.ceil((1.0 - p) / (p * target * target)))


def _binomial_se(p, n):
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def _fraction_curve(step, times, k, n, exact_fn):
    """Curve of a simulated fraction k/n against the exact one (t > 0)."""
    ok = times > 0
    t = times[ok]
    ex = np.array([exact_fn(x) for x in t])
    return Curve(step, t, k[ok] / n, np.sqrt(np.maximum(ex * (1 - ex), 0.0) / n), ex)


def _fraction_case(ctx, raw, step, case, quantity, column, exact_fn, n, complement=False):
    """Run n vesicles; check the fraction in state `column` (or 1 − it) at the end."""
    (name, _), = raw["vesicles"].items()
    times, counts, _, work = _simulate(ctx, raw, _batches(n), _count_setter(name))
    k = counts[:, column]
    if complement:
        k = n - k
    p = exact_fn(times[-1])
    check = Check(case, step, f"{quantity} at t = {times[-1]:.4g} s", p, k[-1] / n, _binomial_se(p, n))
    return [check], _fraction_curve(step, times, k, n, exact_fn), work


# -- free diffusion with drift ---------------------------------------------------

def _free_diffusion(ctx, raw, step, case="free_diffusion"):
    raw, cfg, name, D, _ = _setup(raw, step, lambda c, D, R: math.sqrt(6.0 * D * c.run.duration))
    t = _final_time(cfg)
    v = np.asarray(cfg.medium.flow, dtype=np.float64)
    speed = float(np.linalg.norm(v))
    # SE of the mean displacement along v: √(2Dt/N); of the MSD: 6Dt·√(2/(3N))
    n = max(int(math.ceil(2.0 * D * t / (ctx.target * speed * t) ** 2)),
            int(math.ceil(2.0 / (3.0 * ctx.target ** 2))))
    start = np.asarray(cfg.vesicles[name].placement.point, dtype=np.float64)

    def collect(sim, run):
        ts = np.asarray(run.snapshot_times, dtype=np.float64)
        return ts, [run.unwrapped_positions(i) - start for i in range(len(ts))]

    _, _, extra, work = _simulate(ctx, raw, _batches(n), _count_setter(name), collect=collect)
    ts = extra[0][0]
    disp = [np.concatenate([e[1][i] for e in extra]) for i in range(len(ts))]
    final = disp[-1]
    along = final @ (v / speed)
    msd = np.mean(np.sum((final - v * ts[-1]) ** 2, axis=1))
    t = ts[-1]
    checks = [
        Check(case, step, "mean displacement along the flow [µm]", speed * t,
              float(along.mean()), math.sqrt(2.0 * D * t / n)),
        Check(case, step, "MSD about the drift [µm²]", 6.0 * D * t, float(msd),
              6.0 * D * t * math.sqrt(2.0 / (3.0 * n))),
    ]
    ok = ts > 0
    m = np.array([np.mean(np.sum((d - v * x) ** 2, axis=1)) for d, x in zip(disp, ts)])[ok]
    curve = Curve(step, ts[ok], m, 6.0 * D * ts[ok] * math.sqrt(2.0 / (3.0 * n)), 6.0 * D * ts[ok])
    return checks, curve, work


# -- a single target sphere: Smoluchowski and Collins–Kimball --------------------

def _sphere_case(ctx, raw, step, case, kappa_rd=None):
    """Bound (absorbed) fraction at one cell of contact radius R for starts on
    a shell r0; κ from the config (inf: Smoluchowski) or κ = kappa_rd·D/R."""
    if kappa_rd is not None:
        cfg = _parse(raw)
        (name, pop), = cfg.vesicles.items()
        R = float(cfg.cells.radius.median) + float(pop.radius.median)
        raw = copy.deepcopy(raw)
        (_, ttable), = raw["cell_types"].items()
        ttable["kappa"] = kappa_rd * float(pop.diffusion) / R
    raw, cfg, name, D, R = _setup(raw, step)
    (ct,) = cfg.cell_types.values()
    r0 = float(cfg.vesicles[name].placement.radius)
    exact_fn = lambda x: collins_kimball(x, r0, R, D, ct.kappa.value)
    n = _binomial_size(exact_fn(_final_time(cfg)), ctx.target)
    label = "absorbed fraction" if math.isinf(ct.kappa.value) else "bound fraction"
    return _fraction_case(ctx, raw, step, case, label, BOUND, exact_fn, n)


# -- partially absorbing face ------------------------------------------------------

def _radiation_wall(ctx, raw, step):
    x0 = float(_parse(raw).vesicles[next(iter(raw["vesicles"]))].placement.at)
    raw, cfg, name, D, _ = _setup(raw, step, lambda c, D, R: x0)
    exact_fn = lambda x: radiation_wall_survival(x, x0, D, cfg.domain.kappa)
    n = _binomial_size(exact_fn(_final_time(cfg)), ctx.target)
    return _fraction_case(ctx, raw, step, "radiation_wall", "surviving fraction", EXITED,
                          exact_fn, n, complement=True)


# -- reversible binding -------------------------------------------------------------

def _reversible_equilibrium(ctx, raw, step, case="reversible_equilibrium"):
    raw, cfg, name, D, R = _setup(raw, step)
    (ct,) = cfg.cell_types.values()
    volume = float(np.prod(cfg.domain.size)) - 4.0 / 3.0 * math.pi * R ** 3
    p = reversible_bound_fraction(ct.kappa.value, 4.0 * math.pi * R * R, ct.k_off.value, volume)
    n = _binomial_size(p, ctx.target)
    return _fraction_case(ctx, raw, step, case, "bound fraction", BOUND, lambda x: p, n)


def _bound_kinetics(ctx, raw, step):
    """Every vesicle starts bound to the one cell, whose κ = 0 (no rebinding)."""
    raw, cfg, name, D, R = _setup(raw, step)
    (ct,) = cfg.cell_types.values()
    exact = bound_kinetics(_final_time(cfg), ct.k_off.value, ct.k_int.value)
    n = max(_binomial_size(p, ctx.target) for p in exact)

    def prepare(sim):
        a = sim.model.arrays
        e = a["pos"] - a["ccenter"][0]
        e /= np.linalg.norm(e, axis=1)[:, None]
        sim.model.load_state({"pos": a["ccenter"][0] + e * (a["cradius"][0] + a["vradius"])[:, None],
                              "state": BOUND, "cell": 0})

    times, counts, _, work = _simulate(ctx, raw, _batches(n), _count_setter(name), prepare=prepare)
    t = times[-1]
    exact = bound_kinetics(t, ct.k_off.value, ct.k_int.value)
    checks = [Check("bound_kinetics", step, f"{label} fraction at t = {t:.4g} s", ex,
                    counts[-1, col] / n, _binomial_se(ex, n))
              for label, col, ex in (("bound", BOUND, exact[0]), ("internalized", INTERNALIZED, exact[1]),
                                     ("free", FREE, exact[2]))]
    curve = _fraction_curve(step, times, counts[:, BOUND], n,
                            lambda x: bound_kinetics(x, ct.k_off.value, ct.k_int.value)[0])
    return checks, curve, work


# -- in-vitro well ------------------------------------------------------------------

def _well(ctx, raw, step, settling, case=None):
    from . import physics
    if settling:
        raw, cfg, name, D, _ = _setup(raw, step, lambda c, D, R: math.sqrt(D * c.run.duration))
        H = float(cfg.domain.size[2])
        pop = cfg.vesicles[name]
        v = -cfg.medium.flow[2]  # a downward flow settles too
        if cfg.medium.gravity:
            v += float(physics.settling_velocity(pop.radius.median, pop.density, cfg.medium.density,
                                                 cfg.medium.viscosity))
        exact_fn = lambda x: settling_deposit(x, D, v) / H
    else:
        raw, cfg, name, D, _ = _setup(raw, step, lambda c, D, R: c.domain.size[2])
        H = float(cfg.domain.size[2])
        exact_fn = lambda x: well_deposition(x, H, D)
    n = _binomial_size(exact_fn(_final_time(cfg)), ctx.target)
    case = case or ("well_settling" if settling else "well_diffusion")
    return _fraction_case(ctx, raw, step, case, "delivered fraction", EXITED, exact_fn, n)


# -- secreting donor with clearance ---------------------------------------------------

def _secretion(ctx, raw, step):

    def length(cfg, D, R):
        (pop,) = cfg.vesicles.values()
        return min(R, math.sqrt(D * pop.half_life.value / math.log(2.0)))

    raw, cfg, name, D, R = _setup(raw, step, length)
    k_clear = math.log(2.0) / cfg.vesicles[name].half_life.value
    lam = math.sqrt(D / k_clear)
    (tname,) = cfg.cell_types
    shells = ((R, R + lam), (R + lam, R + 3.0 * lam))
    # Poisson counts, SE = √mean: the smaller shell needs a mean ≥ 1/target²
    share = min(secretion_shell_count(a, b, k_clear, R, D, k_clear) for a, b in shells)
    rate = 1.0 / (ctx.target ** 2 * share) * k_clear
    n_batches = max(1, -(-int(rate * cfg.run.duration) // MAX_BATCH))
    centre = np.asarray(cfg.cells.centers[0], dtype=np.float64)

    def configure(r, batch_rate):
        r["cell_types"][tname]["secretion_rate"] = batch_rate

    def collect(sim, run):
        a = sim.model.arrays
        return np.linalg.norm(a["pos"][a["state"] == FREE] - centre, axis=1)

    _, _, extra, work = _simulate(ctx, raw, [rate / n_batches] * n_batches, configure, collect=collect)
    dist = np.concatenate(extra)
    checks = []
    for (a, b), label in zip(shells, ("R < r < R + λ", "R + λ < r < R + 3λ")):
        expected = secretion_shell_count(a, b, rate, R, D, k_clear)
        got = float(np.count_nonzero((dist > a) & (dist < b)))
        checks.append(Check("secretion_clearance", step, f"free vesicles at {label}", expected, got,
                            math.sqrt(expected)))
    edges = R + lam * np.linspace(0.0, 4.0, 17)
    counts = np.histogram(dist, edges)[0].astype(np.float64)
    vol = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    expected = np.array([secretion_shell_count(a, b, rate, R, D, k_clear)
                         for a, b in zip(edges[:-1], edges[1:])])
    curve = Curve(step, 0.5 * (edges[1:] + edges[:-1]), counts / vol, np.sqrt(expected) / vol,
                  expected / vol)
    return checks, curve, work


# -- the registry -----------------------------------------------------------------------

CK_VALUES = (0.01, 0.1, 1.0, 10.0, 100.0)


def _ck_name(k):
    return f"collins_kimball_{k:g}"


CASES = {c.name: c for c in [
    Case("free_diffusion", "free_diffusion.toml", "Free diffusion with drift: MSD = 6Dt",
         _free_diffusion, ylabel="MSD about the drift [µm²]"),
    Case("smoluchowski", "smoluchowski.toml", "Absorbing sphere (Smoluchowski)",
         lambda ctx, raw, step: _sphere_case(ctx, raw, step, "smoluchowski"),
         ylabel="absorbed fraction"),
    *[Case(_ck_name(k), "collins_kimball.toml", f"Collins–Kimball sphere, κR/D = {k:g}",
           (lambda kk: lambda ctx, raw, step: _sphere_case(ctx, raw, step, _ck_name(kk), kk))(k),
           ylabel="bound fraction", seed_offset=100 * i) for i, k in enumerate(CK_VALUES)],
    Case("radiation_wall", "radiation_wall.toml", "Partially absorbing face (radiation wall)",
         _radiation_wall, ylabel="surviving fraction"),
    Case("reversible_equilibrium", "reversible_equilibrium.toml",
         "Reversible binding: bound/free = κA/(k_off V)", _reversible_equilibrium,
         ylabel="bound fraction"),
    Case("bound_kinetics", "bound_kinetics.toml", "Bound-state kinetics: e^{−kt}, k_off : k_int",
         _bound_kinetics, ylabel="bound fraction"),
    Case("well_diffusion", "well_diffusion.toml", "In-vitro well, diffusion only",
         lambda ctx, raw, step: _well(ctx, raw, step, False), ylabel="delivered fraction"),
    Case("well_settling", "well_settling.toml", "In-vitro well, diffusion and settling",
         lambda ctx, raw, step: _well(ctx, raw, step, True), ylabel="delivered fraction"),
    Case("secretion_clearance", "secretion_clearance.toml",
         "Secreting cell with clearance: steady profile", _secretion,
         xlabel="distance from the donor centre [µm]", ylabel="free vesicles [1/µm³]"),
    # Cases for the exact leaps of adaptive stepping: far from every surface
    # and over long times, where vesicles leap most.  One time step each
    # (the column, cheap, two): the accuracy of the step near surfaces is
    # what the cases above check at two; the leaps must not change the answer.
    Case("leap_free_diffusion", "leap_free_diffusion.toml",
         "Free diffusion with drift over 1 h: mean = vt, MSD = 6Dt",
         lambda ctx, raw, step: _free_diffusion(ctx, raw, step, "leap_free_diffusion"),
         ylabel="MSD about the drift [µm²]", steps=(0.002,)),
    Case("leap_well_column", "leap_well_column.toml", "3 mm column with settling over 4 h",
         lambda ctx, raw, step: _well(ctx, raw, step, True, "leap_well_column"), ylabel="delivered fraction"),
    Case("leap_smoluchowski", "leap_smoluchowski.toml", "Absorbing sphere from r0 = 10 R",
         lambda ctx, raw, step: _sphere_case(ctx, raw, step, "leap_smoluchowski"),
         ylabel="absorbed fraction", steps=(0.1,)),
    Case("leap_collins_kimball", "leap_collins_kimball.toml", "Collins–Kimball sphere (κR/D = 10) from r0 = 10 R",
         lambda ctx, raw, step: _sphere_case(ctx, raw, step, "leap_collins_kimball"),
         ylabel="bound fraction", steps=(0.1,)),
    Case("leap_reversible_equilibrium", "leap_reversible_equilibrium.toml",
         "Reversible binding in a 50 µm periodic box: bound/free = κA/(k_off V)",
         lambda ctx, raw, step: _reversible_equilibrium(ctx, raw, step, "leap_reversible_equilibrium"),
         ylabel="bound fraction", steps=(0.1,)),
]}


def select_cases(names=None):
    """Cases named (exactly, or by prefix: 'collins_kimball'), all when None."""
    if not names:
        return list(CASES.values())
    out = []
    for name in names:
        hits = [c for n, c in CASES.items() if n == name] or \
               [c for n, c in CASES.items() if n.startswith(name)]
        if not hits:
            raise InputError(f"--case {name}: no such validation case (cases: {', '.join(CASES)})")
        out += [c for c in hits if c not in out]
    return out


STEPPINGS = ("fixed", "adaptive")   # run.stepping: `exodiff validate` runs both by default


def run_case(case, backend="auto", quick=False, config_dir=None, progress=None, stepping=None):
    """Run one case at its time steps with run.stepping = `stepping`
    ("fixed" or "adaptive"; None: as the config says); returns a CaseResult.
    Both schemes draw from the same seeds: each must pass on its own."""
    config_dir = validation_config_dir() if config_dir is None else Path(config_dir)
    raw = _load_raw(case.config, config_dir)
    if stepping is not None:
        if stepping not in STEPPINGS:
            raise InputError(f"--stepping {stepping}: expected {' or '.join(STEPPINGS)}")
        raw["run"]["stepping"] = stepping
    result = CaseResult(case.name, case.title, case.xlabel, case.ylabel, stepping=stepping or "")
    steps = case.steps[-1:] if quick else case.steps
    t0 = _time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="exodiff-validate-") as work:
        ctx = _Context(backend, quick, work)
        for step in steps:
            if progress is not None:
                progress(case.name, step)
            # independent random numbers for each case and time step (batches
            # add 1, 2, … to this seed)
            r = copy.deepcopy(raw)
            r["run"]["seed"] = int(raw["run"].get("seed", 42)) + case.seed_offset \
                + 1000 * case.steps.index(step)
            checks, curve, done = case.run(ctx, r, step)
            for c in checks:
                c.stepping = result.stepping
            result.checks += checks
            result.curves.append(curve)
            result.vesicle_steps += done
        result.leaps = ctx.leaps
    result.wall_time = _time.perf_counter() - t0
    return result


def format_table(results):
    """The validation table as text (one row per check)."""
    head = ("case", "stepping", "s/L", "quantity", "exact", "simulated", "SE", "|z|", "result")
    rows = [(c.case, c.stepping or "as config", f"{c.step:g}", c.quantity, f"{c.exact:.6g}",
             f"{c.simulated:.6g}", f"{c.se:.3g}", f"{c.z:.2f}", "pass" if c.passed else "FAIL")
            for r in results for c in r.checks]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    right = {2, 4, 5, 6, 7}
    fmt = lambda row: "  ".join(v.rjust(w) if i in right else v.ljust(w)
                                for i, (v, w) in enumerate(zip(row, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(row) for row in rows]
    return "\n".join(lines)


def require_matplotlib():
    """InputError, before any case runs, when matplotlib (a dependency of
    exodiff, but one a stripped environment may lack) cannot be imported."""
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError("--plot needs matplotlib, which exodiff depends on: pip install matplotlib")


def plot_case(result, directory):
    """Write DIRECTORY/<case>.png: simulated (points, ±SE) and exact (line)
    for each time step."""
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for curve, marker in zip(result.curves, "os^"):
        order = np.argsort(curve.x)
        ax.plot(curve.x[order], curve.exact[order], "-", color="0.3", lw=1.2,
                label="exact" if curve is result.curves[0] else None)
        ax.errorbar(curve.x, curve.simulated, yerr=curve.se, fmt=marker, ms=4, capsize=2,
                    label=f"exodiff, s = {curve.step:g} L")
    ax.set_xlabel(result.xlabel)
    ax.set_ylabel(result.ylabel)
    ax.set_title(result.title + (f" ({result.stepping} stepping)" if result.stepping else ""), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = directory / (f"{result.name}_{result.stepping}.png" if result.stepping else f"{result.name}.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
