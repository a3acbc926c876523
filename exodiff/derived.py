"""What follows from a validated Config: derived parameters, the refusals
and warnings, and the text of ``exodiff check``.

``derived_parameters`` gives the numbers ``exodiff check`` reports and the
driver sizes memory by (diffusion, settling, step length, binding
probability, expected vesicles; the cells counted as the run will draw
them).  ``judge`` refuses what cannot be meant (a vesicle not smaller than
the smallest cell, a domain smaller than a cell) and lists what is
implausible; config.parse_config calls it, so every Config has passed.
"""
import csv
import math
from dataclasses import dataclass

import numpy as np

from . import physics
from .config_types import AXES, INF
from .errors import ConfigError
from .formats import format_bytes, format_count, format_time
from .units import bare_number_hint, describe


@dataclass
class PopulationDerived:
    """Per vesicle population: diffusion [µm²/s] and where it came from,
    settling speed [µm/s] (0 without gravity), rms step per axis [µm],
    step / smallest cell radius, clearance rates [1/s] and binding
    probabilities per contact by cell type, each a tuple with one value per
    entry of the schedule of half_life and kappa (one for a constant),
    expected vesicle numbers."""
    name: str
    diffusion: float
    diffusion_source: str
    settling: float
    step: float
    step_ratio: float | None
    clearance_rates: tuple
    binding: dict
    initial: int
    secreted: float

    @property
    def total(self):
        return self.initial + self.secreted


@dataclass
class Derived:
    """What ``exodiff check`` reports. min_cell_radius, max_cell_radius [µm]
    of the cells the run places (drawn from the seed; None when unknown: no
    cells, or a file not readable here); cells_per_type: cells per type;
    memory [bytes] ≈ BYTES_PER_VESICLE per vesicle, the peak while a
    run is built (``exodiff run`` refuses runs that would not fit)."""
    steps: int
    n_cells: int | None
    min_cell_radius: float | None
    max_cell_radius: float | None
    cells_per_type: dict
    populations: dict
    total_vesicles: float
    memory: float


BYTES_PER_VESICLE = 440  # peak, measured: ~370 B (numba, N = 2e6 and 4e6) in 0.3.0, + 32 B of leap state


def population_diffusion(config, vesicles):
    """D [µm²/s] of a population: given, or Stokes–Einstein at the median
    radius."""
    if vesicles.diffusion is not None:
        return vesicles.diffusion
    m = config.medium
    return float(physics.stokes_einstein_diffusion(vesicles.radius.median, m.temperature, m.viscosity))


@dataclass
class CellCensus:
    """The cells a run places, drawn from the seed as ``make_cells`` draws
    them (``layouts.drawn_radii_and_types``): count, radii [µm] (None when a
    cell file cannot be read here), cells per type."""
    count: int | None
    radii: object
    per_type: dict

    @property
    def smallest(self):
        return float(min(self.radii)) if self.radii is not None and len(self.radii) else None

    @property
    def largest(self):
        return float(max(self.radii)) if self.radii is not None and len(self.radii) else None


def _cell_census(config):
    """The CellCensus of ``config``.  Files are read best-effort: the layout
    code validates them."""
    cells = config.cells
    if cells.layout == "file":
        rows = _read_cell_file(cells.path)
        if rows is None:
            return CellCensus(None, None, {})
        radii, names = rows
        return CellCensus(len(radii), radii, {name: names.count(name) for name in dict.fromkeys(names)})
    if not cells.count:
        return CellCensus(0, [], {name: 0 for name in cells.types})
    from .layouts import RADIUS_TAIL_SDS, drawn_radii_and_types, type_counts  # numba: only with cells
    if cells.layout != "list" and cells.count > CENSUS_DRAW_LIMIT:
        # Too many to draw here (exodiff run refuses most such runs for
        # memory): the bounds of the truncated log-normal, exact counts per type.
        spread = cells.radius.gsd ** RADIUS_TAIL_SDS
        counts = type_counts(list(cells.types.values()), cells.count) if cells.types else []
        return CellCensus(cells.count, [cells.radius.median / spread, cells.radius.median * spread],
                          {name: int(n) for name, n in zip(cells.types, counts)})
    names = list(config.cell_types)
    radii, types = drawn_radii_and_types(cells, names, config.run.seed)
    per_type = {name: int((types == names.index(name)).sum()) for name in cells.types}
    return CellCensus(len(radii), radii, per_type)


# Cells drawn by the census at most (8 bytes each, a few ms per 10⁶).
CENSUS_DRAW_LIMIT = 2_000_000


def _read_cell_file(path):
    """(radii, types) from a CSV with columns x,y,z,radius,type, or None."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [float(r["radius"]) for r in rows], [str(r.get("type", "")).strip() for r in rows]
    except Exception:  # HDF5, malformed or unreadable: the layout code reports it
        return None


def _secreted(config, population, per_type):
    """Expected number of vesicles of ``population`` secreted in [0, duration]."""
    total = 0.0
    for ct in config.cell_types.values():
        for sec in ct.secretions:
            if sec.population != population:
                continue
            start, end = sec.window
            for _, t0, t1, rate in sec.rate.pieces(config.run.dt):
                overlap = max(0.0, min(end, t1, config.run.duration) - max(start, t0, 0.0))
                mean = rate * math.exp(0.5 * math.log(sec.gsd) ** 2)  # of the log-normal
                total += mean * per_type.get(ct.name, 0) * overlap
    return total


def derived_parameters(config):
    """Derived numbers for ``exodiff check`` (see Derived)."""
    from .kernels.surface import binding_probability  # numba: import only when needed

    dt = config.run.dt
    census = _cell_census(config)
    n_cells, smallest, per_type = census.count, census.smallest, census.per_type
    populations = {}
    for name, v in config.vesicles.items():
        D = population_diffusion(config, v)
        settling = 0.0
        if config.medium.gravity:
            settling = float(physics.settling_velocity(v.radius.median, v.density,
                                                       config.medium.density, config.medium.viscosity))
        step = float(physics.step_length(D, dt))
        populations[name] = PopulationDerived(
            name=name,
            diffusion=D,
            diffusion_source="given" if v.diffusion is not None else (
                "Stokes–Einstein at the median radius" if v.radius.gsd > 1 else "Stokes–Einstein"),
            settling=settling,
            step=step,
            step_ratio=step / smallest if smallest else None,
            clearance_rates=tuple(math.log(2) / h for h in v.half_life.values),
            binding={ct.name: tuple(float(binding_probability(kappa, D, dt, (smallest or math.inf) + v.radius.median))
                                    for kappa in ct.kappa.values)
                     for ct in config.cell_types.values() if ct.kappa.peak > 0},
            initial=v.count,
            secreted=_secreted(config, name, per_type),
        )
    total = sum(p.total for p in populations.values())
    return Derived(
        steps=physics.step_count(config.run.duration, dt),
        n_cells=n_cells,
        min_cell_radius=smallest,
        max_cell_radius=census.largest,
        cells_per_type=per_type,
        populations=populations,
        total_vesicles=total,
        memory=BYTES_PER_VESICLE * total,
    )


def judge(config):
    """Raise ConfigError for what ``config`` cannot mean (see
    _refuse_impossible); else the (key, reason) warnings of what is
    probably not meant (see _warnings), none silenced yet."""
    census = _cell_census(config)
    _refuse_impossible(config, census)
    return _warnings(config, census)


# Steps up to 0.15 R keep the surface kinetics within 1 % of the exact
# Collins–Kimball uptake for every κ (bench/dt_accuracy.md); warn beyond.
STEP_WARN_RATIO = 0.15


def _warnings(config, census):
    """(key, reason) of what does not stop a run but is probably not meant:
    coarse steps, empty populations, values outside the PLAUSIBLE ranges."""
    warnings = []
    smallest, per_type = census.smallest, census.per_type
    for name, v in config.vesicles.items():
        D = population_diffusion(config, v)
        step = float(physics.step_length(D, config.run.dt))
        if smallest and step > STEP_WARN_RATIO * smallest:
            # s = √(2 D dt) ≤ 0.15 R  ⇔  dt ≤ (0.15 R)² / (2 D)
            suggestion = _round_down((STEP_WARN_RATIO * smallest) ** 2 / (2 * D))
            warnings.append((f"vesicles.{name}",
                f"step length √(2D·dt) = {step:.3g} µm is {step / smallest:.0%} of the "
                f"smallest cell radius {smallest:.3g} µm (over {STEP_WARN_RATIO:.0%}); contacts will be "
                f"coarse — try run.dt = \"{format_time(suggestion)}\" or less"))
        if v.count == 0 and _secreted(config, name, per_type) == 0:
            warnings.append((f"vesicles.{name}", "count is 0 and no cell type secretes it; the population stays empty"))
        low, high = PLAUSIBLE["vesicle radius"]
        if not low <= v.radius.median <= high:
            warnings.append((f"vesicles.{name}.radius",
                             f"{_length_text(v.radius.median)} is outside the usual {_length_text(low)}–"
                             f"{_length_text(high)} of extracellular vesicles"
                             + bare_number_hint(config.raw["vesicles"][name]["radius"])))
        low, high = PLAUSIBLE["diffusion"]
        if not low <= D <= high:
            source = "given" if v.diffusion is not None else "Stokes–Einstein"
            warnings.append((f"vesicles.{name}.diffusion",
                             f"D = {D:.3g} µm²/s ({source}) is outside the usual {low:g}–{high:g} µm²/s"))
    for name, t in config.cell_types.items():
        if any(math.isinf(t.kappa.at(when)) and t.k_off.at(when) > 0 for when in t.kappa.times + t.k_off.times):
            # release_fraction(inf) = 0: a perfectly absorbing membrane takes
            # back every vesicle it lets go within the same step
            warnings.append((f"cell_types.{name}",
                f"kappa = inf with k_off > 0: a perfectly absorbing membrane "
                f"rebinds every released vesicle at once, so none ever unbinds; give a finite kappa "
                f"for reversible binding"))
    warnings += _schedule_warnings(config)
    low, high = PLAUSIBLE["cell radius"]
    if smallest is not None and not (low <= smallest and census.largest <= high):
        radii = (f"{smallest:.3g} µm" if smallest == census.largest
                 else f"{smallest:.3g}–{census.largest:.3g} µm")
        warnings.append((_cell_radius_key(config), f"cell radii {radii} are outside the usual {low:g}–{high:g} µm"))
    run = config.run
    for name in ("observe_interval", "snapshot_interval"):
        if name == "snapshot_interval" and "snapshot_interval" not in config.raw["run"]:
            continue  # defaults to the duration: said once, for observe_interval
        steps = getattr(run, name) / run.dt
        if steps < MIN_STEPS_BETWEEN_OUTPUTS * (1 - 1e-9):
            warnings.append((f"run.{name}", f"only {steps:.3g} steps of run.dt between "
                             f"{'observations' if name == 'observe_interval' else 'snapshots'} "
                             f"(fewer than {MIN_STEPS_BETWEEN_OUTPUTS}): is run.dt meant to be this coarse?"))
    low, high = PLAUSIBLE["temperature"]
    if not low <= config.medium.temperature <= high:
        warnings.append(("medium.temperature", f"{config.medium.temperature - 273.15:.4g} °C is outside the usual "
                         f"{low - 273.15:g}–{high - 273.15:g} °C of living cells"))
    low, high = PLAUSIBLE["viscosity"]
    if not low <= config.medium.viscosity <= high:
        warnings.append(("medium.viscosity", f"{config.medium.viscosity * 1e3:.3g} mPa·s is outside the usual "
                         f"{low * 1e3:g}–{high * 1e3:g} mPa·s (water to dense matrix)"))
    return warnings


def _schedule_warnings(config):
    """(key, reason) for schedule entries that never apply: after the end
    of the run, or followed by another in the same step."""
    dt, warnings = config.run.dt, []
    n_steps = physics.step_count(config.run.duration, dt)
    for key, s in config.schedules():
        steps = s.steps(dt)
        for k in range(1, len(steps)):
            if steps[k] >= n_steps:
                warnings.append((key, f"the change at {format_time(s.times[k])} comes after the end of the "
                                      f"run ({format_time(config.run.duration)}) and never applies"))
                break
            if steps[k] == steps[k - 1]:
                warnings.append((key, f"the entries at {format_time(s.times[k - 1])} and "
                                      f"{format_time(s.times[k])} both take effect at step {steps[k]} "
                                      f"(run.dt = {format_time(dt)}); only the later applies"))
    return warnings


# Plausible ranges (default units): values outside are warned about, not
# refused; [check] quiet silences a warning per key.
PLAUSIBLE = {
    "vesicle radius": (0.01, 1.0),     # µm: 10 nm – 1 µm
    "cell radius": (1.0, 100.0),       # µm
    "diffusion": (0.01, 100.0),        # µm²/s
    "temperature": (273.15, 318.15),   # K: 0–45 °C
    "viscosity": (0.3e-3, 10.0),       # Pa·s: warm water to a stiff gel
}
MIN_STEPS_BETWEEN_OUTPUTS = 10


def _refuse_impossible(config, census):
    """ConfigError for what cannot be meant: a vesicle not smaller than the
    smallest cell, a cell that does not fit in the domain."""
    smallest, largest = census.smallest, census.largest
    for name, v in config.vesicles.items():
        if smallest is not None and v.radius.median >= smallest:
            given = config.raw["vesicles"][name]["radius"]
            raise ConfigError(f"vesicles.{name}.radius", f"{describe(given)} = {_length_text(v.radius.median)} is not "
                              f"smaller than the smallest cell (radius {smallest:.3g} µm)" + bare_number_hint(given))
    if largest is not None and 2 * largest > min(config.domain.size):
        size = " × ".join(f"{s:g}" for s in config.domain.size)
        raise ConfigError("domain.size", f"{size} µm is smaller than a cell (radius {largest:.3g} µm, "
                          f"diameter {2 * largest:.3g} µm; from {_cell_radius_key(config)})")


def _cell_radius_key(config):
    cells = config.cells
    return "cells.path" if cells.layout == "file" else ("cells.radii" if cells.radii else "cells.radius")


def _length_text(um):
    return f"{um * 1000:.3g} nm" if um < 1 else f"{um:.3g} µm"


def _round_down(x):
    """Largest 1, 2 or 5 × 10^k not above x."""
    exponent = math.floor(math.log10(x))
    for mantissa in (5, 2, 1):
        if mantissa * 10.0**exponent <= x * (1 + 1e-12):
            return mantissa * 10.0**exponent
    return 10.0**exponent


# ------------------------------------------------------------------ display


def format_check(config):
    """The text ``exodiff check`` prints: the config summarised in default
    units, derived parameters and warnings."""
    d = derived_parameters(config)
    run, medium, domain, cells = config.run, config.medium, config.domain, config.cells
    lines = []
    if config.source:
        lines.append(f"Config {config.source}: OK")
    lines.append(f"Run: duration {format_time(run.duration)}, dt {format_time(run.dt)} "
                 f"({format_count(d.steps)} steps), seed {run.seed}, snapshots every "
                 f"{format_time(run.snapshot_interval)}, observations every {format_time(run.observe_interval)}")
    if run.precision == "mixed":
        lines.append("Precision: mixed (float32 normals on the cuda backend; the CPU backends run double)")
    lines.append(f"Medium: T = {medium.temperature:.2f} K, η = {medium.viscosity:.3g} Pa·s, "
                 f"ρ = {medium.density:.4g} kg/m³, gravity {'on' if medium.gravity else 'off'}, "
                 f"flow ({', '.join(f'{v:g}' for v in medium.flow)}) µm/s")
    faces = ", ".join(f"{axis} {domain.faces[2 * i]}/{domain.faces[2 * i + 1]}" for i, axis in enumerate(AXES))
    line = f"Domain: {' × '.join(f'{s:g}' for s in domain.size)} µm; faces {faces}"
    if "absorb" in domain.faces:
        line += f"; absorbing faces κ = {domain.kappa:g} µm/s"
    lines.append(line)
    if cells.layout == "file":
        what = f"from {cells.path}" + (f": {d.n_cells} cells" if d.n_cells is not None else " (not read here)")
    else:
        radius = f"{cells.radius.median:g} µm" + (f" (gsd {cells.radius.gsd:g})" if cells.radius.gsd > 1 else "")
        if cells.radii:
            radius = f"{min(cells.radii):g}–{max(cells.radii):g} µm"
        elif cells.radius.gsd > 1 and d.min_cell_radius is not None:
            radius += f", drawn from the seed: {d.min_cell_radius:.3g}–{d.max_cell_radius:.3g} µm"
        what = f"{cells.count} ({cells.layout}), radius {radius}"
    lines.append(f"Cells: {what}")
    for name, n in d.cells_per_type.items():
        ct = config.cell_types.get(name)
        detail = ""
        if ct is not None:
            parts = []
            if ct.kappa.peak > 0:
                parts.append(f"κ = {_values(ct.kappa)} µm/s, k_off = {_values(ct.k_off)} /s, "
                             f"k_int = {_values(ct.k_int)} /s"
                             + (f", k_fuse = {_values(ct.k_fuse)} /s" if ct.k_fuse.peak else "")
                             + (f", capacity {ct.capacity}" if ct.capacity else ""))
                if ct.k_escape.peak or ct.k_degrade.peak or ct.k_recycle.peak:
                    parts.append(f"from the endosome k_escape = {_values(ct.k_escape)} /s, "
                                 f"k_degrade = {_values(ct.k_degrade)} /s, k_recycle = {_values(ct.k_recycle)} /s")
            for sec in ct.secretions:
                window = "" if sec.window == (0.0, INF) else \
                    f" from {format_time(sec.window[0])} to {format_time(sec.window[1])}"
                parts.append(f"secretes {sec.population} at {_values(sec.rate)} /s per cell{window}")
            detail = ": " + "; ".join(parts) if parts else ": inert"
        lines.append(f"  {name}: {n} cells{detail}")
    lines.append("Vesicles:")
    for name, p in d.populations.items():
        v = config.vesicles[name]
        radius = f"{v.radius.median * 1000:g} nm" + (f" (gsd {v.radius.gsd:g})" if v.radius.gsd > 1 else "")
        lines.append(f"  {name}: radius {radius}, D = {p.diffusion:.3g} µm²/s ({p.diffusion_source})")
        step = f"    step √(2D·dt) = {p.step:.3g} µm"
        if p.step_ratio is not None:
            step += f" = {p.step_ratio:.1%} of the smallest cell radius {d.min_cell_radius:.3g} µm"
        lines.append(step)
        if medium.gravity:
            lines.append(f"    settling {p.settling:.3g} µm/s (drift per step {p.settling * run.dt:.3g} µm)")
        if any(p.clearance_rates):
            lines.append(f"    clearance rate ln2/half_life = {_values(p.clearance_rates, '.3g')} /s")
        for ct_name, probs in p.binding.items():
            kappas = config.cell_types[ct_name].kappa.values
            note = ""
            if any(prob >= 1.0 and math.isfinite(kappa) for prob, kappa in zip(probs, kappas)):
                note = " (clipped: κ is more than this dt can represent; smaller dt for exact kinetics)"
            lines.append(f"    P(bind per contact) on {ct_name} = {_values(probs, '.4g')}{note}")
        lines.append(f"    vesicles: {format_count(p.initial)} at t = 0 + {format_count(p.secreted)} "
                     f"expected secreted = {format_count(p.total)}")
    lines += _schedule_lines(config, d.steps)
    lines.append(f"Memory: ≈ {format_bytes(d.memory)} for {format_count(d.total_vesicles)} vesicles "
                 f"({BYTES_PER_VESICLE} bytes each)")
    for w in config.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)


SCHEDULE_RULE = "a value given for time t holds from step ceil(t/dt), the first step that starts at or after t"


def _values(values, spec="g"):
    """A Schedule's values (or a tuple of values, one per entry) for
    ``exodiff check``: "2" for a constant, "2 → 0.6" for a schedule
    (its times: the Schedules block)."""
    values = values.values if hasattr(values, "values") else values
    return " → ".join(format(v, spec) for v in values)


def _schedule_lines(config, n_steps):
    """The Schedules block of ``exodiff check``: for each value that changes,
    its entries with the step each takes effect from."""
    dt = config.run.dt
    changing = [(key, s) for key, s in config.schedules() if not s.is_constant]
    if not changing:
        return []
    lines = [f"Schedules ({SCHEDULE_RULE}):"]
    for key, s in changing:
        entries = []
        for t, value, step in zip(s.times, s.values, s.steps(dt)):
            when = f"step {format_count(step)}" if step < n_steps else "after the end of the run"
            entries.append(f"{value:g} from {format_time(t)} ({when})")
        lines.append(f"  {key} [{SCHEDULE_UNITS.get(key.split('.')[2], '1/s')}]: " + ", ".join(entries))
    return lines


# The unit of a scheduled key (its third dotted part) if not 1/s, as exodiff check prints it.
SCHEDULE_UNITS = {"kappa": "µm/s", "half_life": "s"}


# ------------------------------------------------------- adaptive stepping

@dataclass
class LeapEstimate:
    """What ``exodiff check`` expects of run.stepping = "adaptive" for one
    population (see :func:`leap_estimate`): the share of vesicle-time spent
    leaping, the mean leap duration [s] and the speed-up over fixed steps."""
    name: str
    leap_share: float
    mean_leap: float
    speedup: float


# The model behind the estimate (checked against measured runs in
# bench/README.md, "Adaptive stepping"):
#  * vesicles spread uniformly over the free volume (sampled at
#    LEAP_SAMPLES points drawn from a fixed seed); bound ones, and vesicles
#    crowding near the cells, are not modelled;
#  * the kernels' rule (kernels/leap.py): d is the distance to the nearest
#    contact sphere as the kernels see it (the cells the grid bin lists
#    exactly, the others through the clearance map's lower bound,
#    exodiff/grid.py) or absorbing face, w to the nearest reflecting face
#    on an axis with drift (drift-free reflecting faces are crossed by
#    folding); σ = √(2D dt), |v| the drift speed and K the steps to the
#    next observation or snapshot; r = min(d − (LEAP_MARGIN_SIGMAS·σ +
#    |v|dt), w), K capped at
#    r/(2|v|dt), R = r − |v|K dt capped at LEAP_CAP_SPREADS·σ√K; the
#    vesicle leaps when R ≥ LEAP_MIN_SIGMAS·σ and K ≥ LEAP_MIN_STEPS, else
#    it steps;
#  * a leap lasts ℓ = E[min(τ, K dt)], τ the exit time from the ball
#    (survival S(Dt/R²), S = ball_survival of kernels/firstpassage.py):
#    ℓ = (R²/D)·G(DK dt/R²), G(σ) = ∫_0^σ S(u) du (G(∞) = 1/6, the mean
#    exit time R²/(6D)); where a vesicle leaps it leaps again on landing,
#    so all its time is in leaps;
#  * costs, in calibrated steps (numba, measured on S2: bench/README.md): a
#    leap LEAP_COST_STEPS (its look, exit time, landing, and the looks and
#    steps near the threshold that the uniform model misses), a step near
#    surfaces 1; a vesicle in flight is not visited (bench/leap_overhead.py).
# Then, averaging over the sample points, the leap share is the share of
# points that leap and the speed-up (1/dt)/⟨cost per second⟩, the cost per
# second LEAP_COST_STEPS/ℓ where it leaps and 1/dt elsewhere.
LEAP_SAMPLES = 20_000
LEAP_COST_STEPS = 3.0


def _ball_survival_integral():
    """(σ grid, G(σ) = ∫_0^σ S(u) du) on a log grid, S the ball's survival
    the kernels sample from (kernels/firstpassage.py), 1 below the grid
    (error < 1e-20)."""
    from .kernels.firstpassage import ball_survival
    u = np.geomspace(1e-4, 20.0, 3000)
    S = np.array([ball_survival(x) for x in u])
    G = u[0] + np.concatenate([[0.0], np.cumsum(0.5 * (S[1:] + S[:-1]) * np.diff(u))])
    return u, G


def _face_distances(x, domain, box, drift):
    """(d, w) at points x [n, 3]: the distance to the nearest absorbing face
    (kept m away) and to the nearest reflecting face under drift (``drift``
    [3]; the ball may touch it); drift-free reflecting faces are crossed by
    folding (kernels/leap.py, items 1, 5, 6)."""
    d = np.full(x.shape[0], np.inf)
    w = np.full(x.shape[0], np.inf)
    for a in range(3):
        if box.periodic[a]:
            continue
        for side in range(2):
            gap = x[:, a] if side == 0 else box.lengths[a] - x[:, a]
            if domain.faces[2 * a + side] == "absorb":
                d = np.minimum(d, gap)
            elif drift[a] != 0.0:
                w = np.minimum(w, gap)
    return d, w


def leap_estimate(config, cells):
    """[LeapEstimate] per population for run.stepping = "adaptive", from
    the geometry of ``config`` and its placed ``cells`` (layouts.Cells)
    (the model: the comment above)."""
    from .kernels.leap import LEAP_CAP_SPREADS, LEAP_MARGIN_SIGMAS, LEAP_MIN_SIGMAS, LEAP_MIN_STEPS
    from .locality import Box
    domain, run = config.domain, config.run
    box = Box.from_faces(domain.size, domain.faces)
    rng = np.random.Generator(np.random.Philox(run.seed + 0x1EA9))
    x = rng.random((LEAP_SAMPLES, 3)) * box.lengths
    d = derived_parameters(config)
    vr_max = max(config.vesicles[name].radius.median for name in d.populations)
    inside, listed, unlisted = _cell_distances(config, cells, box, x, d, vr_max)
    dt = run.dt
    K = max(1, round(min(run.observe_interval, run.snapshot_interval, run.duration) / dt))
    u, G = _ball_survival_integral()
    out = []
    for name, p in d.populations.items():
        vr = config.vesicles[name].radius.median
        free = ~inside                               # no vesicle inside a cell
        s, D = p.step, p.diffusion
        v = np.asarray(config.medium.flow, dtype=np.float64) - np.array([0.0, 0.0, p.settling])
        speed = float(np.linalg.norm(v))
        face, w = _face_distances(x, domain, box, v)
        r = np.minimum(np.minimum(face, np.minimum(listed - vr, unlisted)) - (LEAP_MARGIN_SIGMAS * s + speed * dt), w)
        k = np.full(LEAP_SAMPLES, float(K))
        if speed > 0:
            k = np.minimum(k, np.floor(np.maximum(r / (2.0 * speed * dt), -1.0)))
        R = np.minimum(r - speed * k * dt, LEAP_CAP_SPREADS * s * np.sqrt(np.maximum(k, 0.0)))
        leaps = free & (k >= LEAP_MIN_STEPS) & (R >= LEAP_MIN_SIGMAS * s)
        RR = np.where(leaps, R, 1.0)
        ell = np.where(leaps, RR * RR / D * np.interp(D * k * dt / (RR * RR), u, G, left=0.0), 0.0)
        ell = np.where(leaps & (D * k * dt / (RR * RR) < u[0]), k * dt, ell)
        n_free = max(int(free.sum()), 1)
        share = float(leaps.sum()) / n_free
        cost = np.where(leaps, LEAP_COST_STEPS / np.maximum(ell, 1e-300), 1.0 / dt)[free]
        speedup = (1.0 / dt) / float(np.mean(cost)) if free.any() else 1.0
        mean_leap = float(np.mean(ell[leaps])) if leaps.any() else 0.0
        out.append(LeapEstimate(name, share, mean_leap, speedup))
    return out


def _cell_distances(config, cells, box, x, d, vr_max):
    """At points x[n, 3]: (inside a cell, distance to the nearest cell
    surface of the cells x's grid bin lists, lower bound on the distance to
    the contact spheres of the others), as the kernels' leap stage sees them
    (the grid and clearance map of exodiff/model.py)."""
    from .grid import bin_of, build_cell_grid, clearance_map
    from .model import GRID_REACH_STEPS
    n = x.shape[0]
    if not cells.count:
        return np.zeros(n, dtype=bool), np.full(n, np.inf), np.full(n, np.inf)
    dist, idx = box.tree(cells.centers).query(x, k=1)
    inside = dist < cells.radii[idx] + vr_max
    D_max = max(p.diffusion for p in d.populations.values())
    reach = vr_max + GRID_REACH_STEPS * float(physics.step_length(D_max, config.run.dt))
    grid = build_cell_grid(cells.centers, cells.radii, box.lengths, box.periodic, reach)
    clearance = clearance_map(grid, cells.centers, cells.radii, box.lengths, box.periodic, vr_max)
    b = bin_of(grid, x)
    k = np.stack([b // (grid.nbins[1] * grid.nbins[2]), (b // grid.nbins[2]) % grid.nbins[1],
                  b % grid.nbins[2]], axis=1)
    unlisted = clearance[b] - np.linalg.norm(x - (k + 0.5) * grid.bin_size, axis=1)
    listed = np.full(n, np.inf)
    first, count = grid.start[b], grid.start[b + 1] - grid.start[b]
    for j in range(int(count.max(initial=0))):
        m = np.nonzero(j < count)[0]
        c = grid.items[first[m] + j]
        e = box.minimum_image(x[m] - cells.centers[c])
        listed[m] = np.minimum(listed[m], np.linalg.norm(e, axis=1) - cells.radii[c])
    return inside, listed, unlisted


def format_leaps(config, cells):
    """The lines ``exodiff check`` prints about run.stepping."""
    if config.run.stepping != "adaptive":
        return ["Stepping: fixed (one calibrated step per dt for every free vesicle; no leaps)"]
    lines = ["Stepping: adaptive (exact leaps far from surfaces); expected for vesicles spread uniformly:"]
    d = derived_parameters(config)
    weight = cost = 0.0
    for e in leap_estimate(config, cells):
        n = max(d.populations[e.name].total, 1e-300)
        weight += n
        cost += n / e.speedup
        lines.append(f"  {e.name}: {e.leap_share:.1%} of vesicle-time leaping"
                     + (f" (mean leap {format_time(e.mean_leap)})" if e.mean_leap > 0 else "")
                     + f", speed-up ≈ {e.speedup:.3g}× over fixed stepping")
    overall = weight / cost if cost > 0 else 1.0
    if len(lines) > 2:
        lines.append(f"  all vesicles: speed-up ≈ {overall:.3g}×")
    if overall < 1.0:
        lines.append('  (fixed stepping is as fast here: leaps are rare or short)')
    return lines
