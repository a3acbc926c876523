"""The validated config: dataclasses in default units (DESIGN §4).

config.py builds them from TOML (``load_config``, ``parse_config``) and
checks every value; here is only what a Config holds.  Lengths [µm],
times [s], diffusion coefficients [µm²/s], rates [1/s], reactivities and
speeds [µm/s], temperature [K], viscosity [Pa·s], densities [kg/m³].
"""
import bisect
import copy
import math
from dataclasses import dataclass, field

from .tomlfile import dump_toml

INF = math.inf
AXES = ("x", "y", "z")   # the domain's axes, in the order of its size and faces


@dataclass
class RadiusSpec:
    """A radius [µm]: fixed (gsd = 1) or log-normal with this median and
    geometric standard deviation gsd (≥ 1)."""
    median: float
    gsd: float = 1.0


@dataclass
class RunConfig:
    """Times [s]. snapshot_interval defaults to duration (one final snapshot),
    observe_interval to snapshot_interval."""
    duration: float
    dt: float
    seed: int = 42
    snapshot_interval: float | None = None
    observe_interval: float | None = None
    precision: str = "double"   # config.PRECISIONS
    stepping: str = "adaptive"  # config.STEPPINGS

    def __post_init__(self):
        if self.snapshot_interval is None:
            self.snapshot_interval = self.duration
        if self.observe_interval is None:
            self.observe_interval = self.snapshot_interval


@dataclass
class MediumConfig:
    """temperature [K], viscosity [Pa·s], density [kg/m³], flow [µm/s]."""
    temperature: float = 310.15
    viscosity: float = 0.78e-3
    density: float = 1007.0
    gravity: bool = False
    flow: tuple = (0.0, 0.0, 0.0)


@dataclass
class DomainConfig:
    """Box [0,Lx]×[0,Ly]×[0,Lz], size [µm]; faces in the order
    xlo, xhi, ylo, yhi, zlo, zhi; kappa [µm/s] = reactivity of absorbing
    faces (inf: every hit leaves)."""
    size: tuple
    faces: tuple = ("reflect",) * 6
    kappa: float = INF


@dataclass
class CellsConfig:
    """Cell placement; lengths [µm].

    types: fractions per cell type, summing to 1 (for layout "list" the
    fractions of the per-cell list).  centers/radii/cell_types_list: per
    cell, layout "list" only.  path: absolute, layout "file" only.
    center/spheroid_radius: spheroid (None = layout code chooses).
    floor: z of the well floor (monolayer).  gap: minimum surface gap."""
    layout: str = "random"
    count: int = 0
    radius: RadiusSpec = field(default_factory=lambda: RadiusSpec(5.0))
    types: dict = field(default_factory=dict)
    centers: list | None = None
    radii: list | None = None
    cell_types_list: list | None = None
    path: str | None = None
    center: tuple | None = None
    spheroid_radius: float | None = None
    floor: float = 0.0
    gap: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """A value that is piecewise constant in time: ``values[k]`` holds from
    ``times[k]`` [s] on, until the next entry (times strictly increasing,
    ``times[0] == 0``).  A constant is a schedule of one entry, so every
    rate goes through the same code.

    On the step grid of dt a change at time t takes effect from step
    ceil(t/dt − 1e-9), the first step that starts at or after t (the 1e-9
    forgives the round-off of a t meant to be a multiple of dt): the
    model, the driver and the births all use :meth:`steps`, so a rate
    changes for every vesicle at the same step, whatever the backend and
    the chunking."""
    times: tuple
    values: tuple

    @classmethod
    def constant(cls, value):
        return cls((0.0,), (value,))

    @property
    def is_constant(self):
        return len(self.values) == 1

    @property
    def value(self):
        """The value of a constant schedule (ValueError for one that changes)."""
        if not self.is_constant:
            raise ValueError(f"a schedule of {len(self.values)} values, not a constant")
        return self.values[0]

    @property
    def change_times(self):
        """The times [s] at which the value changes (all entries but the first)."""
        return self.times[1:]

    @property
    def peak(self):
        """The largest value in the schedule."""
        return max(self.values)

    def at(self, t):
        """The value given for time t [s] (the last entry with time ≤ t)."""
        return self.values[max(0, bisect.bisect_right(self.times, t) - 1)]

    def steps(self, dt):
        """The step from which each entry holds: ceil(t/dt − 1e-9)."""
        return tuple(max(0, math.ceil(t / dt - 1e-9)) for t in self.times)

    def at_step(self, n, dt):
        """The value in force during step n (from time n·dt to (n+1)·dt)."""
        return self.values[bisect.bisect_right(self.steps(dt), n) - 1]

    def pieces(self, dt):
        """(k, start, end, value): the intervals [start, end) [s] on the step
        grid where entry k is in force, in time order (end of the last: inf);
        an entry overridden within the same step is left out."""
        steps = self.steps(dt)
        out = []
        for k, (n, v) in enumerate(zip(steps, self.values)):
            end = steps[k + 1] * dt if k + 1 < len(steps) else INF
            if k + 1 == len(steps) or steps[k + 1] > n:
                out.append((k, n * dt, end, v))
        return out


@dataclass(frozen=True)
class Secretion:
    """A cell type secretes ``population`` at ``rate`` [vesicles/s per
    cell] during ``window`` [s] (a Poisson process per cell; ``rate`` a
    :class:`Schedule`)."""
    population: str
    rate: Schedule             # median over the cells of the type
    window: tuple = (0.0, INF)
    gsd: float = 1.0           # log-normal spread of the rate across the cells


@dataclass
class CellTypeConfig:
    """kappa [µm/s] (inf = every contact binds), k_off, k_int [1/s],
    capacity (max bound vesicles, 0 = unlimited), secretions (one
    :class:`Secretion` per population secreted, in the order of
    ``secretes``).  (Bound vesicles stay where they bound: diffusion on the
    membrane is not modelled yet, so there is no key for it.)  kappa and
    capacity are the medians across the cells of the type, each drawn
    log-normal with geometric SD kappa_gsd, capacity_gsd (1: all alike).
    After uptake, competing first-order rates [1/s]: k_fuse (BOUND → fusion
    with the plasma membrane, DELIVERED), and from the endosome
    (INTERNALIZED) k_escape (→ DELIVERED), k_degrade (→ DEGRADED) and
    k_recycle (→ FREE again at the cell's surface).  The rates (``RATES``)
    are Schedules."""
    name: str
    kappa: Schedule = Schedule.constant(0.0)
    k_off: Schedule = Schedule.constant(0.0)
    k_int: Schedule = Schedule.constant(0.0)
    capacity: int = 0
    secretions: tuple = ()
    kappa_gsd: float = 1.0
    capacity_gsd: float = 1.0
    k_fuse: Schedule = Schedule.constant(0.0)
    k_escape: Schedule = Schedule.constant(0.0)
    k_degrade: Schedule = Schedule.constant(0.0)
    k_recycle: Schedule = Schedule.constant(0.0)

    @property
    def secretion_rate(self):
        """Vesicles/s per cell, all populations together, at the peak of
        each schedule (> 0: a donor type)."""
        return sum(s.rate.peak for s in self.secretions)

    # The first-order rates and the reactivity: each a Schedule, in the
    # order exodiff check lists them.
    RATES = ("kappa", "k_off", "k_int", "k_fuse", "k_escape", "k_degrade", "k_recycle")


@dataclass
class Placement:
    """Initial placement of a population: uniform (free volume), shell
    (sphere surface: center [µm], radius [µm]), plane (axis 0/1/2 at
    coordinate ``at`` [µm]) or point [µm]."""
    kind: str = "uniform"
    center: tuple | None = None
    radius: float | None = None
    axis: int | None = None
    at: float | None = None
    point: tuple | None = None


@dataclass
class VesicleConfig:
    """radius [µm], density [kg/m³], diffusion [µm²/s] (None: Stokes–Einstein
    at the median radius), count at t = 0, half_life [s] in the medium
    (inf: no clearance; a :class:`Schedule`), cargo: counts per vesicle by
    name."""
    name: str
    radius: RadiusSpec
    density: float = 1150.0
    diffusion: float | None = None
    count: int = 0
    placement: Placement = field(default_factory=Placement)
    half_life: Schedule = Schedule.constant(INF)
    cargo: dict = field(default_factory=dict)


@dataclass
class OutputConfig:
    """positions: "all", "none" or a sample size (int)."""
    positions: object = "all"
    compression: str = "gzip"


@dataclass
class Config:
    """The whole validated config.  ``source``, ``base_dir``, ``raw``,
    ``warnings``, ``quiet`` ([check] quiet) and ``overrides`` (the --set
    options) describe where it came from and are left out of ``==``,
    so two configs compare equal when they simulate the same thing."""
    run: RunConfig
    medium: MediumConfig
    domain: DomainConfig
    cells: CellsConfig
    cell_types: dict
    vesicles: dict
    output: OutputConfig
    source: str | None = field(default=None, compare=False)
    base_dir: str = field(default=".", compare=False)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    warnings: list = field(default_factory=list, compare=False)
    quiet: tuple = field(default=(), compare=False)   # [check] quiet: keys whose warnings are silenced
    overrides: tuple = field(default=(), compare=False)   # the --set options of load_config

    def to_toml(self):
        """The config as given (after ``--set`` overrides) as TOML text.

        Units are kept as the user wrote them; only ``cells.path`` is
        replaced by its absolute path so the text means the same thing
        wherever it is read back (e.g. from an output file)."""
        raw = copy.deepcopy(self.raw)
        if self.cells.path is not None and isinstance(raw.get("cells"), dict):
            raw["cells"]["path"] = self.cells.path
        return dump_toml(raw)

    def schedules(self):
        """(key, Schedule) of every value that may change in time: each
        cell type's RATES and secretion rates (``…secretion_rate.POP``),
        each population's half_life; constants included."""
        out = []
        for name, ct in self.cell_types.items():
            out += [(f"cell_types.{name}.{rate}", getattr(ct, rate)) for rate in ct.RATES]
            out += [(f"cell_types.{name}.secretion_rate.{s.population}", s.rate) for s in ct.secretions]
        out += [(f"vesicles.{name}.half_life", v.half_life) for name, v in self.vesicles.items()]
        return out
