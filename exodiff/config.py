"""Config: TOML file → validated Config (config_types.py) in default units
(DESIGN §4).

Every value is converted on load: lengths [µm], times [s], diffusion
coefficients [µm²/s], rates [1/s], reactivities and speeds [µm/s],
temperature [K], viscosity [Pa·s], densities [kg/m³].

Errors are ``ConfigError(key, message)`` (or ``InputError`` for the file
itself) with a one-line message that names the dotted key, the value given and
what was expected, so the CLI can print it and exit with code 2.
What cannot be meant is refused the same way (fractions that do not sum to
1 here; a vesicle not smaller than the smallest cell, a domain smaller than
a cell by derived.judge); what is implausible gives ``Config.warnings``,
each "key: reason", silenced per key by ``[check] quiet``.

(Its length, a little over 700 lines, is that one job: 43 keys, each
read with its own checks and its own message.)
"""
import copy
import math
import os

from .config_types import (
    AXES, INF, CellsConfig, CellTypeConfig, Config, DomainConfig, MediumConfig, OutputConfig,
    Placement, RadiusSpec, RunConfig, Secretion, VesicleConfig,
)
from .derived import judge
from .errors import ConfigError, InputError
from .formats import did_you_mean as _suggest
from .formats import format_time
from .kernels.constants import FACE_KINDS
from .tomlfile import TOMLDecodeError, parse_toml, read_toml
from .units import KINDS, bare_number_hint, describe, parse_quantity

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
RUN_KEYS = ("duration", "dt", "seed", "snapshot_interval", "observe_interval", "precision",
            "stepping")
# run.precision: "double" is float64 throughout, bitwise the same on every
# backend; "mixed" lets the cuda backend draw the displacement's normals in
# float32 (statistically equivalent, not bitwise: consumer GPUs run float64 at
# 1/32-1/64 of float32).  The CPU backends have nothing to gain from it and
# run "mixed" in double, bit for bit as "double".
PRECISIONS = ("double", "mixed")
# run.stepping: "adaptive" lets free vesicles far from every surface leap
# exactly over many steps (kernels/step_numpy.py: _leap); "fixed" takes one
# calibrated step per dt for every free vesicle (the oracle).
STEPPINGS = ("adaptive", "fixed")
LAYOUTS = ("random", "monolayer", "spheroid", "list", "file")
PLACEMENTS = ("uniform", "shell", "plane", "point")
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
    config.warnings = [f"{key}: {reason}" for key, reason in judge(config)
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
    stepping = _choice(t.get("stepping", "adaptive"), STEPPINGS, "run.stepping")
    return RunConfig(duration, dt, seed, snapshot, observe, precision, stepping)


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
                                             f"in the {size} µm domain" + bare_number_hint(v["radius"]))
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
