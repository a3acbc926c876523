"""Config: TOML file → validated dataclasses in default units (DESIGN §4).

Every value is converted on load: lengths [µm], times [s], diffusion
coefficients [µm²/s], rates [1/s], reactivities and speeds [µm/s],
temperature [K], viscosity [Pa·s], densities [kg/m³].

Errors are ``ConfigError(key, message)`` (or ``InputError`` for the file
itself) with a one-line message that names the dotted key, the value given and
what was expected, so the CLI can print it and exit with code 2.
What cannot be meant is refused the same way (fractions that do not sum to
1, a vesicle not smaller than the smallest cell, a domain smaller than a
cell); what is implausible gives ``Config.warnings``, each "key: reason",
silenced per key by ``[check] quiet``.
"""
import copy
import csv
import math
import os
from dataclasses import dataclass, field

from . import physics
from .errors import ConfigError, InputError
from .formats import did_you_mean as _suggest
from .formats import format_bytes, format_count, format_time
from .kernels.constants import FACE_KINDS
from .tomlfile import TOMLDecodeError, dump_toml, parse_toml, read_toml
from .units import KINDS, describe, parse_quantity

INF = math.inf

# ---------------------------------------------------------------- data model


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
    precision: str = "double"   # PRECISIONS

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


LAYOUTS = ("random", "monolayer", "spheroid", "list", "file")


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


PLACEMENTS = ("uniform", "shell", "plane", "point")


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


# ------------------------------------------------------------------ loading


def load_config(path, overrides=()):
    """Read, override and validate a TOML config file.

    overrides: "dotted.key=value" strings (CLI ``--set``), applied before
    validation.  Raises InputError for the file, ConfigError for values."""
    path = os.fspath(path)
    raw = apply_overrides(read_toml(path), overrides)
    base_dir = os.path.dirname(os.path.abspath(path))
    config = parse_config(raw, base_dir=base_dir, source=path)
    config.overrides = tuple(overrides)
    return config


def apply_overrides(raw, overrides):
    """A copy of ``raw`` with each "dotted.key=value" set.

    The value is read as a TOML value (``3``, ``true``, ``"x"``, ``[1, 2]``,
    ``{ x = "periodic" }``); anything else (``0.5 ms``) is taken as a plain
    string, which is what a shell user means.  Missing tables are created."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise InputError(f"--set {describe(item)}: expected key=value, e.g. run.dt=\"0.5 ms\"")
        key, text = item.split("=", 1)
        parts = [p.strip() for p in key.strip().split(".")]
        if not all(parts):
            raise InputError(f"--set {describe(item)}: expected key=value with a dotted key, e.g. run.dt=\"0.5 ms\"")
        value = _override_value(text.strip())
        table = raw
        for i, part in enumerate(parts[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(parts[: i + 1])
                raise InputError(f"--set {describe(item)}: {where} is not a table")
        table[parts[-1]] = value
    return raw


def _override_value(text):
    try:
        parsed = parse_toml("v = " + text)
    except TOMLDecodeError:
        return text
    # "1\nw = 2" parses, but is not one value.
    return parsed["v"] if len(parsed) == 1 else text




# --------------------------------------------------------------- validation

SECTIONS = ("run", "medium", "domain", "cells", "cell_types", "vesicles", "output", "check")
RUN_KEYS = ("duration", "dt", "seed", "snapshot_interval", "observe_interval", "precision")
# run.precision: "double" is float64 throughout, bitwise the same on every
# backend; "mixed" lets the cuda backend draw the displacement's normals in
# float32 (statistically equivalent, not bitwise: consumer GPUs run float64 at
# 1/32-1/64 of float32).  The CPU backends have nothing to gain from it and
# run "mixed" in double, bit for bit as "double".
PRECISIONS = ("double", "mixed")
MEDIUM_KEYS = ("temperature", "viscosity", "density", "gravity", "flow")
DOMAIN_KEYS = ("size", "boundary", "kappa")
CELLS_KEYS = ("layout", "count", "radius", "radii", "types", "type", "centers", "path",
              "center", "spheroid_radius", "floor", "gap")
# Keys that mean something only for some layouts; a stray one is probably a
# mistake about the layout, so it is an error rather than silently ignored.
LAYOUT_KEYS = {
    "random": {"count", "radius", "types", "type", "gap"},
    "monolayer": {"count", "radius", "types", "type", "gap", "floor"},
    "spheroid": {"count", "radius", "types", "type", "gap", "center", "spheroid_radius"},
    "list": {"count", "radius", "radii", "types", "type", "centers"},
    "file": {"path"},
}
CELL_TYPE_KEYS = ("kappa", "k_off", "k_int", "capacity", "secretion_rate", "secretes",
                  "secretion_window")
VESICLE_KEYS = ("radius", "density", "diffusion", "count", "placement", "half_life", "cargo")
OUTPUT_KEYS = ("positions", "compression")
# [check] quiet = ["vesicles.exo.radius", ...]: warnings on these keys (or
# keys below them) are not shown; the values are still checked.
CHECK_KEYS = ("quiet",)
COMPRESSIONS = ("gzip", "lzf", "none")
AXES = ("x", "y", "z")

_REQUIRED = object()


def parse_config(raw, base_dir=".", source=None):
    """Validate a raw config dict (as read from TOML) into a Config.

    base_dir: directory that relative paths (cells.path) are resolved
    against; source: where the dict came from, for messages."""
    if not isinstance(raw, dict):
        raise ConfigError("", f"expected a table of config sections, got {describe(raw)}")
    _check_keys(raw, SECTIONS, "")
    for name in ("run", "domain"):
        if name not in raw:
            raise ConfigError(name, f"missing section; add [{name}] (see DESIGN §4)")
    if not raw.get("vesicles"):
        raise ConfigError("vesicles", "missing section; add at least one population, e.g. [vesicles.exosome]")

    run = _parse_run(_table(raw["run"], "run"))
    medium = _parse_medium(_table(raw.get("medium", {}), "medium"))
    domain = _parse_domain(_table(raw["domain"], "domain"))
    vesicles = _parse_vesicles(_table(raw["vesicles"], "vesicles"), domain)
    cell_types = _parse_cell_types(_table(raw.get("cell_types", {}), "cell_types"), vesicles)
    cells = _parse_cells(_table(raw.get("cells", {}), "cells"), cell_types, domain, base_dir)
    output = _parse_output(_table(raw.get("output", {}), "output"))
    quiet = _parse_check(_table(raw.get("check", {}), "check"))
    config = Config(run=run, medium=medium, domain=domain, cells=cells, cell_types=cell_types,
                    vesicles=vesicles, output=output, source=source,
                    base_dir=os.path.abspath(base_dir), raw=raw, quiet=quiet)
    census = _cell_census(config)
    _refuse_impossible(config, census)
    config.warnings = [f"{key}: {reason}" for key, reason in _warnings(config, census)
                       if not _silenced(key, quiet)]
    return config


# -- generic value readers ---------------------------------------------------


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def _check_keys(table, allowed, prefix):
    for key in table:
        if key not in allowed:
            homes = _homes(key) if _is_section(prefix) else []
            if homes:
                raise ConfigError(_join(prefix, key), f"unknown key here; {key} belongs in {' or '.join(homes)}")
            raise ConfigError(_join(prefix, key), "unknown key" + _suggest(key, allowed))


def _homes(key):
    """The sections where ``key`` is known, e.g. ["[cell_types.NAME]", "[domain]"]."""
    sections = {"[cell_types.NAME]": CELL_TYPE_KEYS, "[vesicles.NAME]": VESICLE_KEYS, "[cells]": CELLS_KEYS,
                "[run]": RUN_KEYS, "[medium]": MEDIUM_KEYS, "[domain]": DOMAIN_KEYS,
                "[output]": OUTPUT_KEYS, "[check]": CHECK_KEYS}
    return [name for name, keys in sections.items() if key in keys]


def _is_section(prefix):
    """True for the top level and the section tables (run, cell_types.NAME, …),
    where a key from another section is a likely mix-up."""
    head, _, name = prefix.partition(".")
    return prefix == "" or prefix in SECTIONS or (head in ("cell_types", "vesicles") and "." not in name)


def _table(value, key, what="a table"):
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected {what}, got {describe(value)}")
    return value


def _quantity(table, name, unit, prefix, default=_REQUIRED, allow_inf=False,
              positive=False, nonnegative=False, kind=None):
    """table[name] in ``unit`` with a range check; ``default`` if absent."""
    key = _join(prefix, name)
    if name not in table:
        if default is _REQUIRED:
            raise ConfigError(key, f"required, e.g. {name} = \"{KINDS[unit][1]}\"")
        return default
    value = parse_quantity(table[name], unit, key, allow_inf=allow_inf, kind=kind)
    _check_sign(value, key, table[name], positive, nonnegative)
    return value


def _check_sign(value, key, given, positive=False, nonnegative=False):
    if positive and not value > 0:
        raise ConfigError(key, f"must be positive, got {describe(given)}")
    if nonnegative and not value >= 0:
        raise ConfigError(key, f"must not be negative, got {describe(given)}")


def _integer(table, name, prefix, default=_REQUIRED, minimum=0, maximum=None):
    key = _join(prefix, name)
    if name not in table:
        if default is _REQUIRED:
            raise ConfigError(key, "required (an integer)")
        return default
    value = table[name]
    # Accept 1e5 (a float in TOML) when it is a whole number: people write it.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {describe(table[name])}")
    if minimum is not None and value < minimum:
        what = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ConfigError(key, f"{what}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(key, f"must be at most {maximum}, got {value}")
    return value


def _number(value, key, what="a number"):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected {what}, got {describe(value)}")
    if not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {describe(value)}")
    return float(value)


def _boolean(table, name, prefix, default):
    key = _join(prefix, name)
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {describe(value)}")
    return value


def _string(value, key):
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {describe(value)}")
    return value


def _choice(value, choices, key):
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(f"'{c}'" for c in choices)
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(key, f"expected one of {options}, got {describe(value)}{hint}")
    return value


def _vector(value, unit, key):
    """A 3-vector of quantities [default unit] as a tuple of floats."""
    example = KINDS[unit][1]
    if not isinstance(value, list) or len(value) != 3:
        raise ConfigError(key, f"expected 3 values [x, y, z] like [\"{example}\", …], got {describe(value)}")
    return tuple(parse_quantity(v, unit, f"{key}[{i}]") for i, v in enumerate(value))


def _inside(point, domain, key, given):
    if not all(0.0 <= p <= s for p, s in zip(point, domain.size)):
        size = " × ".join(f"{s:g}" for s in domain.size)
        raise ConfigError(key, f"must lie inside the domain [0, L] with L = {size} µm, got {describe(given)}")


def _radius_spec(value, key):
    """"5 um" or { median = "5 um", gsd = 1.2 } → RadiusSpec [µm]."""
    if isinstance(value, dict):
        _check_keys(value, ("median", "gsd"), key)
        median = _quantity(value, "median", "um", key, positive=True)
        gsd = 1.0
        if "gsd" in value:
            gsd = _number(value["gsd"], f"{key}.gsd", "a geometric standard deviation ≥ 1 like 1.2")
            if gsd < 1.0:
                raise ConfigError(f"{key}.gsd", f"must be at least 1 (1 = all the same radius), got {describe(value['gsd'])}")
        return RadiusSpec(median, gsd)
    median = parse_quantity(value, "um", key)
    _check_sign(median, key, value, positive=True)
    return RadiusSpec(median, 1.0)


# -- sections ------------------------------------------------------------------


def _parse_run(t):
    p = "run"
    _check_keys(t, RUN_KEYS, p)
    duration = _quantity(t, "duration", "s", p, positive=True)
    dt = _quantity(t, "dt", "s", p, positive=True)
    if dt >= duration:
        raise ConfigError("run.dt", f"must be shorter than run.duration ({format_time(duration)}), got {describe(t['dt'])}")
    # Philox takes a 64-bit key.
    seed = _integer(t, "seed", p, default=42, maximum=2**64 - 1)
    snapshot = _quantity(t, "snapshot_interval", "s", p, default=duration, positive=True)
    observe = _quantity(t, "observe_interval", "s", p, default=snapshot, positive=True)
    for name, value in (("snapshot_interval", snapshot), ("observe_interval", observe)):
        if value < dt:
            raise ConfigError(f"run.{name}", f"must be at least run.dt ({format_time(dt)}), got {describe(t[name])}")
    precision = _choice(t.get("precision", "double"), PRECISIONS, "run.precision")
    return RunConfig(duration, dt, seed, snapshot, observe, precision)


def _parse_medium(t):
    p = "medium"
    _check_keys(t, MEDIUM_KEYS, p)
    return MediumConfig(
        temperature=_quantity(t, "temperature", "K", p, default=310.15, positive=True),
        viscosity=_quantity(t, "viscosity", "Pa*s", p, default=0.78e-3, positive=True),
        density=_quantity(t, "density", "kg/m^3", p, default=1007.0, positive=True),
        gravity=_boolean(t, "gravity", p, False),
        flow=_vector(t["flow"], "um/s", "medium.flow") if "flow" in t else (0.0, 0.0, 0.0),
    )


def _parse_domain(t):
    p = "domain"
    _check_keys(t, DOMAIN_KEYS, p)
    if "size" not in t:
        raise ConfigError("domain.size", "required, e.g. size = [\"200 um\", \"200 um\", \"100 um\"]")
    if isinstance(t["size"], list):
        size = _vector(t["size"], "um", "domain.size")
    else:  # one length: a cube
        size = (parse_quantity(t["size"], "um", "domain.size"),) * 3
    for s in size:
        _check_sign(s, "domain.size", t["size"], positive=True)
    faces = _parse_faces(t.get("boundary", "reflect"), "domain.boundary")
    kappa = _quantity(t, "kappa", "um/s", p, default=INF, allow_inf=True, nonnegative=True,
                      kind="reactivity")
    return DomainConfig(size=size, faces=faces, kappa=kappa)


def _parse_faces(value, key):
    """"reflect" or { x = "periodic", z = ["reflect", "absorb"] } → 6 faces."""
    if isinstance(value, str):
        return (_choice(value, FACE_KINDS, key),) * 6
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected 'reflect', 'periodic', 'absorb' or a table per axis "
                               f"like {{ z = [\"reflect\", \"absorb\"] }}, got {describe(value)}")
    _check_keys(value, AXES, key)
    faces = []
    for axis in AXES:
        akey = f"{key}.{axis}"
        v = value.get(axis, "reflect")
        if isinstance(v, str):
            low = high = _choice(v, FACE_KINDS, akey)
        elif isinstance(v, list) and len(v) == 2:
            low = _choice(v[0], FACE_KINDS, f"{akey}[0]")
            high = _choice(v[1], FACE_KINDS, f"{akey}[1]")
        else:
            raise ConfigError(akey, f"expected a face kind or [low, high], got {describe(v)}")
        if (low == "periodic") != (high == "periodic"):
            raise ConfigError(akey, f"'periodic' must be on both faces of an axis, got {describe(v)}")
        faces += [low, high]
    return tuple(faces)


def _parse_vesicles(t, domain):
    vesicles = {}
    for name, v in t.items():
        p = f"vesicles.{name}"
        v = _table(v, p, f"a population table [vesicles.{name}]")
        _check_keys(v, VESICLE_KEYS, p)
        if "radius" not in v:
            raise ConfigError(f"{p}.radius", "required, e.g. radius = \"50 nm\" or { median = \"50 nm\", gsd = 1.3 }")
        diffusion = None
        if "diffusion" in v:
            diffusion = _quantity(v, "diffusion", "um^2/s", p, positive=True)
        cargo = {}
        for cname, amount in _table(v.get("cargo", {}), f"{p}.cargo").items():
            ckey = f"{p}.cargo.{cname}"
            cargo[cname] = _number(amount, ckey, "a count per vesicle")
            _check_sign(cargo[cname], ckey, amount, nonnegative=True)
        radius = _radius_spec(v["radius"], f"{p}.radius")
        if 2.0 * radius.median >= min(domain.size):
            size = " × ".join(f"{s:g}" for s in domain.size)
            raise ConfigError(f"{p}.radius", f"a vesicle of radius {describe(v['radius'])} does not fit "
                                             f"in the {size} µm domain" + _bare_number_hint(v["radius"]))
        vesicles[name] = VesicleConfig(
            name=name,
            radius=radius,
            density=_quantity(v, "density", "kg/m^3", p, default=1150.0, positive=True),
            diffusion=diffusion,
            count=_integer(v, "count", p, default=0),
            placement=_parse_placement(v.get("placement", "uniform"), f"{p}.placement", domain),
            half_life=_quantity(v, "half_life", "s", p, default=INF, allow_inf=True, positive=True),
            cargo=cargo,
        )
    return vesicles


def _parse_placement(value, key, domain):
    if isinstance(value, str):
        if value in PLACEMENTS and value != "uniform":
            raise ConfigError(key, f"'{value}' needs parameters, e.g. {_PLACEMENT_EXAMPLES[value]}")
        _choice(value, ("uniform",), key)
        return Placement("uniform")
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(key, "expected \"uniform\" or one of "
                               + ", ".join(_PLACEMENT_EXAMPLES.values()) + f", got {describe(value)}")
    (kind, params), = value.items()
    if kind not in _PLACEMENT_EXAMPLES:
        raise ConfigError(f"{key}.{kind}", "unknown placement" + _suggest(kind, _PLACEMENT_EXAMPLES))
    pkey = f"{key}.{kind}"
    if kind == "point":
        point = _vector(params, "um", pkey)
        _inside(point, domain, pkey, params)
        return Placement("point", point=point)
    params = _table(params, pkey, f"a table like {_PLACEMENT_EXAMPLES[kind]}")
    if kind == "shell":
        _check_keys(params, ("center", "radius"), pkey)
        # Without a center the shell sits in the middle of the domain.
        center = tuple(s / 2 for s in domain.size)
        if "center" in params:
            center = _vector(params["center"], "um", f"{pkey}.center")
            _inside(center, domain, f"{pkey}.center", params["center"])
        radius = _quantity(params, "radius", "um", pkey, positive=True)
        return Placement("shell", center=center, radius=radius)
    # plane
    _check_keys(params, ("axis", "at"), pkey)
    if "axis" not in params:
        raise ConfigError(f"{pkey}.axis", "required: \"x\", \"y\" or \"z\"")
    axis = AXES.index(_choice(params["axis"], AXES, f"{pkey}.axis"))
    at = _quantity(params, "at", "um", pkey)
    if not 0.0 <= at <= domain.size[axis]:
        raise ConfigError(f"{pkey}.at", f"must lie in [0, {domain.size[axis]:g}] µm (the domain along "
                                        f"{AXES[axis]}), got {describe(params['at'])}")
    return Placement("plane", axis=axis, at=at)


_PLACEMENT_EXAMPLES = {
    "shell": "{ shell = { center = [x, y, z], radius = r } }",
    "plane": "{ plane = { axis = \"z\", at = h } }",
    "point": "{ point = [x, y, z] }",
}


def _parse_cell_types(t, vesicles):
    types = {}
    for name, c in t.items():
        p = f"cell_types.{name}"
        c = _table(c, p, f"a table [cell_types.{name}]")
        _check_keys(c, CELL_TYPE_KEYS, p)
        secretions = _parse_secretions(c, p, vesicles)
        kappa, kappa_gsd = _spread(c, "kappa", p, lambda t, n, k: _quantity(
            t, n, "um/s", k, default=0.0, allow_inf=True, nonnegative=True, kind="reactivity"))
        capacity, capacity_gsd = _spread(c, "capacity", p, lambda t, n, k: _integer(t, n, k, default=0))
        types[name] = CellTypeConfig(
            name=name,
            kappa=kappa,
            k_off=_quantity(c, "k_off", "1/s", p, default=0.0, nonnegative=True),
            k_int=_quantity(c, "k_int", "1/s", p, default=0.0, nonnegative=True),
            capacity=capacity,
            secretions=secretions,
            kappa_gsd=kappa_gsd,
            capacity_gsd=capacity_gsd,
        )
    return types


def _spread(table, name, prefix, parse):
    """(median, gsd) of ``table[name]``: a value (gsd 1) or { median = …,
    gsd = … } (log-normal across the cells of a type); ``parse(t, name,
    prefix)`` reads one value."""
    value = table.get(name)
    if not _is_spread(value):
        return parse(table, name, prefix), 1.0
    key = _join(prefix, name)
    _check_keys(value, ("median", "gsd"), key)
    if "median" not in value:
        raise ConfigError(f"{key}.median", "required with gsd")
    gsd = _number(value.get("gsd", 1.0), f"{key}.gsd", "a geometric standard deviation ≥ 1 like 1.5")
    if not 1.0 <= gsd < math.inf:
        raise ConfigError(f"{key}.gsd", f"must be at least 1 (1 = all cells alike), got {describe(value['gsd'])}")
    return parse(value, "median", key), gsd


def _is_spread(value):
    return isinstance(value, dict) and ("median" in value or "gsd" in value)


def _parse_secretions(c, p, vesicles):
    """The Secretions of cell type table ``c`` (key prefix ``p``).

    ``secretes`` is a population name or a list of them; ``secretion_rate``
    a rate (one population) or a table population -> rate;
    ``secretion_window`` one [start, end] for all, or a table population ->
    [start, end] (populations not in it secrete all the time)."""
    rates = c.get("secretion_rate")
    if "secretes" in c:
        given = c["secretes"]
        names = [given] if isinstance(given, str) else given
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{p}.secretes", f"expected a population name or a list of them, "
                                               f"got {describe(given)}")
        for k, pop in enumerate(names):
            key = f"{p}.secretes" if isinstance(given, str) else f"{p}.secretes[{k}]"
            _string(pop, key)
            if pop not in vesicles:
                raise ConfigError(key, f"no population [vesicles.{pop}]" + _suggest(pop, vesicles)
                                  + f" (populations: {', '.join(vesicles)})")
        if len(set(names)) != len(names):
            raise ConfigError(f"{p}.secretes", f"a population is listed twice: {describe(given)}")
    elif isinstance(rates, dict) and not _is_spread(rates):
        names = list(rates)
    elif rates is not None and _spread(c, "secretion_rate", p, _rate)[0] > 0:
        if len(vesicles) != 1:
            raise ConfigError(f"{p}.secretes", "required when secretion_rate > 0 and there are several "
                              f"populations ({', '.join(vesicles)})")
        names = list(vesicles)
    else:
        names = []
    if rates is None:
        if names:
            raise ConfigError(f"{p}.secretion_rate", f"required with secretes, e.g. "
                                                     f"secretion_rate = \"2 /s\"")
        per_pop = {}
    elif isinstance(rates, dict) and not _is_spread(rates):
        _check_keys(rates, names, f"{p}.secretion_rate")
        missing = [n for n in names if n not in rates]
        if missing:
            raise ConfigError(f"{p}.secretion_rate.{missing[0]}", "required: a rate for every population "
                                                                  "in secretes")
        per_pop = {n: _spread(rates, n, f"{p}.secretion_rate", _rate) for n in names}
    else:
        if len(names) > 1:
            raise ConfigError(f"{p}.secretion_rate", f"give one rate per population, e.g. "
                              f"secretion_rate = {{ {names[0]} = \"2 /s\", {names[1]} = \"0.5 /s\" }}")
        per_pop = {n: _spread(c, "secretion_rate", p, _rate) for n in names}
    windows = {n: (0.0, INF) for n in names}
    if "secretion_window" in c:
        w = c["secretion_window"]
        key = f"{p}.secretion_window"
        if isinstance(w, dict):
            _check_keys(w, names, key)
            windows.update({n: _parse_window(v, f"{key}.{n}") for n, v in w.items()})
        else:
            window = _parse_window(w, key)  # checked even when nothing is secreted
            windows = {n: window for n in names}
    return tuple(Secretion(n, per_pop[n][0], windows[n], per_pop[n][1]) for n in names if per_pop[n][0] > 0)


def _rate(table, name, prefix):
    return _quantity(table, name, "1/s", prefix, nonnegative=True)


def _parse_window(value, key):
    """[start, end] times [s]; end may be "inf"."""
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(key, f"expected [start, end] like [\"0 s\", \"1 h\"], got {describe(value)}")
    start = parse_quantity(value[0], "s", f"{key}[0]")
    _check_sign(start, f"{key}[0]", value[0], nonnegative=True)
    end = parse_quantity(value[1], "s", f"{key}[1]", allow_inf=True)
    if not end > start:
        raise ConfigError(key, f"end must be after start, got {describe(value)}")
    return (start, end)


def _parse_cells(t, cell_types, domain, base_dir):
    p = "cells"
    _check_keys(t, CELLS_KEYS, p)
    layout = _choice(t.get("layout", "random"), LAYOUTS, "cells.layout")
    for key in t:
        if key != "layout" and key not in LAYOUT_KEYS[layout]:
            users = " or ".join(f"'{name}'" for name in LAYOUTS if key in LAYOUT_KEYS[name])
            raise ConfigError(f"cells.{key}", f"only used with layout = {users} (layout is '{layout}')")
    if "type" in t and "types" in t:
        raise ConfigError("cells.type", "give either type (one type for all cells) or types, not both")
    if "radius" in t and "radii" in t:
        raise ConfigError("cells.radii", "give either radius or radii, not both")

    cells = CellsConfig(layout=layout)
    if layout == "file":
        if "path" not in t:
            raise ConfigError("cells.path", "required for layout = 'file', e.g. path = \"cells.csv\"")
        rel = os.path.expanduser(_string(t["path"], "cells.path"))
        cells.path = os.path.abspath(os.path.join(base_dir, rel))
        if not os.path.isfile(cells.path):
            raise ConfigError("cells.path", f"{cells.path}: no such file")
        return cells

    if layout == "list":
        centers = t.get("centers")
        if not isinstance(centers, list):
            raise ConfigError("cells.centers", f"required for layout = 'list': [[x, y, z], …], got {describe(centers)}")
        cells.centers = [_vector(c, "um", f"cells.centers[{i}]") for i, c in enumerate(centers)]
        n = len(cells.centers)
        cells.count = _integer(t, "count", p, default=n)
        if cells.count != n:
            raise ConfigError("cells.count", f"is {cells.count} but cells.centers lists {n} cells")
        if "radii" in t:
            radii = t["radii"]
            if not isinstance(radii, list) or len(radii) != n:
                raise ConfigError("cells.radii", f"expected a list of {n} radii (one per center), got {describe(radii)}")
            cells.radii = [parse_quantity(r, "um", f"cells.radii[{i}]") for i, r in enumerate(radii)]
            for i, r in enumerate(cells.radii):
                _check_sign(r, f"cells.radii[{i}]", radii[i], positive=True)
            # radius summarises the list (median); layouts use radii.
            cells.radius = RadiusSpec(sorted(cells.radii)[n // 2] if n else 5.0)
        elif "radius" in t:
            cells.radius = _radius_spec(t["radius"], "cells.radius")
        elif n:
            raise ConfigError("cells.radius", "required: radius = \"5 um\" or radii = [one per center]")
        if isinstance(t.get("types"), list):
            names = t["types"]
            if len(names) != n:
                raise ConfigError("cells.types", f"expected a list of {n} type names (one per center), got {len(names)}")
            cells.cell_types_list = [_string(s, f"cells.types[{i}]") for i, s in enumerate(names)]
            for i, s in enumerate(cells.cell_types_list):
                _need_type(s, cell_types, f"cells.types[{i}]")
            cells.types = {s: cells.cell_types_list.count(s) / n for s in dict.fromkeys(cells.cell_types_list)}
        elif "types" in t:
            raise ConfigError("cells.types", "for layout = 'list' give type = \"name\" (all cells) or "
                              f"types = [one name per center], got {describe(t['types'])}")
        else:
            cells.types = _single_type(t, cell_types, needed=n > 0)
        return cells

    # random, monolayer, spheroid
    cells.count = _integer(t, "count", p, default=0)
    if "radius" in t:
        cells.radius = _radius_spec(t["radius"], "cells.radius")
    elif cells.count:
        raise ConfigError("cells.radius", "required, e.g. radius = \"5 um\" or { median = \"5 um\", gsd = 1.2 }")
    if isinstance(t.get("types"), dict):
        cells.types = _fractions(t["types"], cell_types)
    elif "types" in t:
        raise ConfigError("cells.types", f"expected fractions like {{ donor = 0.1, target = 0.9 }}, got "
                          f"{describe(t['types'])} (a list of names per cell needs layout = 'list')")
    else:
        cells.types = _single_type(t, cell_types, needed=cells.count > 0)
    cells.gap = _quantity(t, "gap", "um", p, default=0.0, nonnegative=True)
    if layout == "monolayer":
        cells.floor = _quantity(t, "floor", "um", p, default=0.0)
        if not 0.0 <= cells.floor < domain.size[2]:
            raise ConfigError("cells.floor", f"must lie in [0, {domain.size[2]:g}) µm (the domain height), "
                                             f"got {describe(t['floor'])}")
    if layout == "spheroid":
        if "center" in t:
            cells.center = _vector(t["center"], "um", "cells.center")
            _inside(cells.center, domain, "cells.center", t["center"])
        if "spheroid_radius" in t:
            cells.spheroid_radius = _quantity(t, "spheroid_radius", "um", p, positive=True)
    return cells


def _need_type(name, cell_types, key):
    if name not in cell_types:
        raise ConfigError(key, f"no [cell_types.{name}] section" + _suggest(name, cell_types))


def _single_type(t, cell_types, needed):
    """types from ``type = "name"``, or the only defined cell type."""
    if "type" in t:
        name = _string(t["type"], "cells.type")
        _need_type(name, cell_types, "cells.type")
        return {name: 1.0}
    if len(cell_types) == 1:
        return {next(iter(cell_types)): 1.0}
    if needed:
        raise ConfigError("cells.types", "required: which cell types, e.g. types = { donor = 0.1, target = 0.9 } "
                                         "or type = \"target\"")
    return {}


def _fractions(value, cell_types):
    fractions = {}
    for name, f in value.items():
        key = f"cells.types.{name}"
        fractions[name] = _number(f, key, "a fraction like 0.9")
        _check_sign(fractions[name], key, f, nonnegative=True)
        _need_type(name, cell_types, key)
    total = sum(fractions.values())
    if not total > 0:
        raise ConfigError("cells.types", f"fractions must not all be zero, got {describe(value)}")
    if abs(total - 1.0) > FRACTION_TOLERANCE:
        raise ConfigError("cells.types", f"fractions must sum to 1, got {describe(value)} (sum {total:.4g})")
    return {name: f / total for name, f in fractions.items()}


# Cell-type fractions may miss 1 by rounding (0.333 × 3); they are then
# rescaled to sum to 1 exactly.
FRACTION_TOLERANCE = 1e-3


def _parse_output(t):
    p = "output"
    _check_keys(t, OUTPUT_KEYS, p)
    positions = t.get("positions", "all")
    if isinstance(positions, dict):
        _check_keys(positions, ("sample",), "output.positions")
        positions = _integer(positions, "sample", "output.positions", minimum=1)
    elif isinstance(positions, int) and not isinstance(positions, bool):
        positions = _integer(t, "positions", p, minimum=1)
    elif positions not in ("all", "none"):
        raise ConfigError("output.positions", f"expected 'all', 'none' or {{ sample = 10000 }}, got {describe(positions)}"
                          + (_suggest(positions, ("all", "none")) if isinstance(positions, str) else ""))
    compression = _choice(t.get("compression", "gzip"), COMPRESSIONS, "output.compression")
    return OutputConfig(positions=positions, compression=compression)


def _parse_check(t):
    """[check] quiet = ["dotted.key", …] → tuple of keys whose warnings are silenced."""
    _check_keys(t, CHECK_KEYS, "check")
    quiet = t.get("quiet", [])
    if not isinstance(quiet, list):
        raise ConfigError("check.quiet", f"expected a list of keys like [\"vesicles.exo.radius\"], got {describe(quiet)}")
    return tuple(_string(k, f"check.quiet[{i}]") for i, k in enumerate(quiet))


def _silenced(key, quiet):
    """A warning on ``key`` is silenced by quiet entry ``key`` or any table above it."""
    return any(key == q or key.startswith(q + ".") for q in quiet)


# ------------------------------------------------------- derived parameters


@dataclass
class PopulationDerived:
    """Per vesicle population: diffusion [µm²/s] and where it came from,
    settling speed [µm/s] (0 without gravity), rms step per axis [µm],
    step / smallest cell radius, clearance rate [1/s], binding probability
    per contact by cell type, expected vesicle numbers."""
    name: str
    diffusion: float
    diffusion_source: str
    settling: float
    step: float
    step_ratio: float | None
    clearance_rate: float
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


BYTES_PER_VESICLE = 400  # peak, measured: ~370 B (numba, N = 2e6 and 4e6)


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
            if sec.population == population:
                start, end = sec.window
                overlap = max(0.0, min(end, config.run.duration) - max(start, 0.0))
                mean = sec.rate * math.exp(0.5 * math.log(sec.gsd) ** 2)  # of the log-normal
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
            clearance_rate=math.log(2) / v.half_life,
            binding={ct.name: float(binding_probability(ct.kappa, D, dt, (smallest or math.inf) + v.radius.median))
                     for ct in config.cell_types.values() if ct.kappa > 0},
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
                             + _bare_number_hint(config.raw["vesicles"][name]["radius"])))
        low, high = PLAUSIBLE["diffusion"]
        if not low <= D <= high:
            source = "given" if v.diffusion is not None else "Stokes–Einstein"
            warnings.append((f"vesicles.{name}.diffusion",
                             f"D = {D:.3g} µm²/s ({source}) is outside the usual {low:g}–{high:g} µm²/s"))
    for name, t in config.cell_types.items():
        if math.isinf(t.kappa) and t.k_off > 0:
            # release_fraction(inf) = 0: a perfectly absorbing membrane takes
            # back every vesicle it lets go within the same step
            warnings.append((f"cell_types.{name}",
                f"kappa = inf with k_off > 0: a perfectly absorbing membrane "
                f"rebinds every released vesicle at once, so none ever unbinds; give a finite kappa "
                f"for reversible binding"))
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
                              f"smaller than the smallest cell (radius {smallest:.3g} µm)" + _bare_number_hint(given))
    if largest is not None and 2 * largest > min(config.domain.size):
        size = " × ".join(f"{s:g}" for s in config.domain.size)
        raise ConfigError("domain.size", f"{size} µm is smaller than a cell (radius {largest:.3g} µm, "
                          f"diameter {2 * largest:.3g} µm; from {_cell_radius_key(config)})")


def _cell_radius_key(config):
    cells = config.cells
    return "cells.path" if cells.layout == "file" else ("cells.radii" if cells.radii else "cells.radius")


def _length_text(um):
    return f"{um * 1000:.3g} nm" if um < 1 else f"{um:.3g} µm"


def _bare_number_hint(given):
    """Why a length came out in µm, when it was written without a unit."""
    median = given.get("median") if isinstance(given, dict) else given
    if isinstance(median, (int, float)) and not isinstance(median, bool):
        return f"; a number without a unit is in µm (for nanometres write \"{median:g} nm\")"
    return ""


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
            if ct.kappa > 0:
                parts.append(f"κ = {ct.kappa:g} µm/s, k_off = {ct.k_off:g} /s, k_int = {ct.k_int:g} /s"
                             + (f", capacity {ct.capacity}" if ct.capacity else ""))
            for sec in ct.secretions:
                window = "" if sec.window == (0.0, INF) else \
                    f" from {format_time(sec.window[0])} to {format_time(sec.window[1])}"
                parts.append(f"secretes {sec.population} at {sec.rate:g} /s per cell{window}")
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
        if math.isfinite(v.half_life):
            lines.append(f"    clearance rate ln2/half_life = {p.clearance_rate:.3g} /s")
        for ct_name, prob in p.binding.items():
            kappa = config.cell_types[ct_name].kappa
            note = ""
            if prob >= 1.0 and math.isfinite(kappa):
                note = " (clipped: κ is more than this dt can represent; smaller dt for exact kinetics)"
            lines.append(f"    P(bind per contact) on {ct_name} = {prob:.4g}{note}")
        lines.append(f"    vesicles: {format_count(p.initial)} at t = 0 + {format_count(p.secreted)} "
                     f"expected secreted = {format_count(p.total)}")
    lines.append(f"Memory: ≈ {format_bytes(d.memory)} for {format_count(d.total_vesicles)} vesicles "
                 f"({BYTES_PER_VESICLE} bytes each)")
    for w in config.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)
