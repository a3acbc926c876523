"""The validated config: dataclasses in default units (DESIGN §4).

config.py builds them from TOML (``load_config``, ``parse_config``) and
checks every value; here is only what a Config holds.  Lengths [µm],
times [s], diffusion coefficients [µm²/s], rates [1/s], reactivities and
speeds [µm/s], temperature [K], viscosity [Pa·s], densities [kg/m³].
"""
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
class Secretion:
    """A cell type secretes ``population`` at ``rate`` [vesicles/s per
    cell] during ``window`` [s] (a Poisson process per cell)."""
    population: str
    rate: float                # median over the cells of the type
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
    log-normal with geometric SD kappa_gsd, capacity_gsd (1: all alike)."""
    name: str
    kappa: float = 0.0
    k_off: float = 0.0
    k_int: float = 0.0
    capacity: int = 0
    secretions: tuple = ()
    kappa_gsd: float = 1.0
    capacity_gsd: float = 1.0

    @property
    def secretion_rate(self):
        """Vesicles/s per cell, all populations together (> 0: a donor type)."""
        return sum(s.rate for s in self.secretions)


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
    (inf: no clearance), cargo: counts per vesicle by name."""
    name: str
    radius: RadiusSpec
    density: float = 1150.0
    diffusion: float | None = None
    count: int = 0
    placement: Placement = field(default_factory=Placement)
    half_life: float = INF
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
