"""What every config key means: the source of the config reference.

``SCHEMA`` lists each section's keys in the order config.py accepts them,
with the kind of value, the default and a sentence.  The kind names the
default unit (``units.KINDS``) for quantities.  tests/test_docs.py keeps
SCHEMA equal to the keys config.py accepts, and ``python tools/gen_docs.py``
renders it, with the refusals of config.py and derived.py and the
plausible ranges of derived.py, into
docs/config.md, so the reference cannot drift from the code.
"""
from dataclasses import dataclass

from .config_types import CellTypeConfig


@dataclass(frozen=True)
class Key:
    """One config key: kind ("length", "time", "integer", …; quantities
    take a number in the default unit or a string with units), default
    (as written in TOML; "required" or "—" for none) and meaning."""
    name: str
    kind: str
    default: str
    meaning: str


# kind → default unit, for quantities (the rest are plain TOML values)
QUANTITY_UNITS = {
    "length": "µm", "time": "s", "diffusion coefficient": "µm²/s", "rate": "1/s",
    "speed": "µm/s", "reactivity": "µm/s", "temperature": "K", "viscosity": "Pa·s",
    "density": "kg/m³",
}

SCHEMA = {
    "run": [
        Key("duration", "time", "required", "simulated time"),
        Key("dt", "time", "required", "time step; `exodiff check` warns when the step length √(2D·dt) "
            "exceeds 15 % of the smallest cell radius and suggests a dt"),
        Key("seed", "integer", "42", "Philox key: the same seed gives the same run on every backend"),
        Key("snapshot_interval", "time", "duration", "positions, states and cell index of the vesicles"),
        Key("observe_interval", "time", "snapshot_interval", "counts per state and per cell"),
        Key("precision", "\"double\" or \"mixed\"", "\"double\"",
            "`double`: float64 throughout, the same bits on every backend; `mixed`: the cuda backend "
            "draws the diffusion normals in float32 (positions and surface tests stay float64), "
            "statistically equivalent, for GPUs with slow float64; the CPU backends run it as double"),
        Key("stepping", "\"adaptive\" or \"fixed\"", "\"adaptive\"",
            "`adaptive`: a free vesicle far from every cell and face leaps exactly over many steps "
            "(first-passage propagators of a ball around it), and takes calibrated steps near "
            "surfaces; `fixed`: one calibrated step per dt for every free vesicle (the oracle). "
            "Both give the same results in distribution, each the same bits on every backend"),
    ],
    "medium": [
        Key("temperature", "temperature", "\"37 degC\"", "for Stokes–Einstein D = kT/(6πηr)"),
        Key("viscosity", "viscosity", "\"0.78 mPa*s\"", "for Stokes–Einstein D and settling"),
        Key("density", "density", "\"1.007 g/mL\"", "for settling"),
        Key("gravity", "true/false", "false", "Stokes settling v = 2(ρp−ρf) g r²/(9η) along −z"),
        Key("flow", "3 speeds", "[0, 0, 0]", "uniform drift of free vesicles"),
    ],
    "domain": [
        Key("size", "3 lengths or one", "required", "box [Lx, Ly, Lz] (one length: a cube)"),
        Key("boundary", "face kinds", "\"reflect\"", "`reflect`, `periodic`, `absorb`, or per axis "
            "`{ x = \"periodic\", z = [\"reflect\", \"absorb\"] }` ([low, high])"),
        Key("kappa", "reactivity", "\"inf\"", "reactivity of absorbing faces (`\"inf\"`: every contact leaves)"),
    ],
    "cells": [
        Key("layout", "choice", "\"random\"", "`random` (non-overlapping packing), `monolayer` (on the floor), "
            "`spheroid`, `list`, `file`"),
        Key("count", "integer", "0", "number of cells"),
        Key("radius", "length or { median, gsd }", "required with cells", "`\"5 um\"`, or log-normal "
            "`{ median = \"6 um\", gsd = 1.15 }` truncated at ±3 geometric SDs; drawn from the seed, so "
            "`exodiff check` reports the radii the run places"),
        Key("radii", "list of lengths", "—", "one radius per center (layout `list`)"),
        Key("types", "fractions, or names", "the only cell type",
            "fractions `{ donor = 0.1, target = 0.9 }` summing to 1 (layout `list`: one name per center)"),
        Key("type", "name", "—", "one cell type for all cells"),
        Key("centers", "list of [x, y, z]", "—", "cell centres (layout `list`)"),
        Key("path", "file name", "—", "CSV `x,y,z,radius,type` or HDF5 (layout `file`), relative to the config"),
        Key("center", "3 lengths", "the box centre", "centre of the spheroid"),
        Key("spheroid_radius", "length", "from the packing fraction 0.35", "radius of the spheroid"),
        Key("floor", "length", "0", "z of the well floor (layout `monolayer`)"),
        Key("gap", "length", "0", "minimum gap between generated cells"),
    ],
    "cell_types.NAME": [
        Key("kappa", "reactivity or { median, gsd }", "0", "binding reactivity κ (a Robin boundary "
            "D∂c/∂n = κc); `\"inf\"`: every contact binds; 0: inert; `{ median = \"5 um/s\", gsd = 1.5 }`: "
            "log-normal across the cells of the type, drawn from the seed (per-cell values in "
            "/particles/cells and `run.cell_table`)"),
        Key("k_off", "rate", "0", "unbinding rate"),
        Key("k_int", "rate", "0", "internalization rate"),
        Key("capacity", "integer or { median, gsd }", "0", "most bound vesicles per cell; binding is "
            "scaled by the free fraction (0: unlimited); `{ median, gsd }`: log-normal across the cells "
            "(rounded)"),
        Key("secretion_rate", "rate, { median, gsd } or a table", "0", "vesicles secreted per second per "
            "cell (Poisson per cell and population); with several populations a table "
            "`{ exosome = \"2 /s\", microvesicle = \"0.5 /s\" }`; each rate may be `{ median, gsd }` "
            "(log-normal across the cells)"),
        Key("secretes", "population name or list", "the only population (or the rate table's)",
            "which `[vesicles.NAME]` is secreted, or several: `[\"exosome\", \"microvesicle\"]`"),
        Key("secretion_window", "[start, end] times or a table", "[0, \"inf\"]", "when the cells secrete; "
            "per population: `{ microvesicle = [\"0 s\", \"1 h\"] }`"),
        Key("k_fuse", "rate", "0", "fusion of a bound vesicle with the plasma membrane: cargo to the "
            "cytosol (state `delivered`); competes with `k_off` and `k_int`"),
        Key("k_escape", "rate", "0", "endosomal escape of an internalized vesicle: cargo to the cytosol "
            "(state `delivered`)"),
        Key("k_degrade", "rate", "0", "lysosomal degradation of an internalized vesicle (state `degraded`)"),
        Key("k_recycle", "rate", "0", "recycling of an internalized vesicle: free again just outside its "
            "cell's surface, keeping its origin; competes with `k_escape` and `k_degrade`"),
    ],
    "vesicles.NAME": [
        Key("radius", "length or { median, gsd }", "required", "`\"50 nm\"` or log-normal "
            "`{ median = \"50 nm\", gsd = 1.3 }`; a bare number is in µm"),
        Key("density", "density", "\"1.15 g/mL\"", "for settling"),
        Key("diffusion", "diffusion coefficient", "Stokes–Einstein", "overrides D = kT/(6πηr) (computed per "
            "vesicle from its radius; `exodiff check` prints it at the median radius)"),
        Key("count", "integer", "0", "vesicles present at t = 0"),
        Key("placement", "placement", "\"uniform\"", "`uniform` (free volume), "
            "`{ shell = { center, radius } }`, `{ plane = { axis = \"z\", at = h } }`, `{ point = [x, y, z] }`"),
        Key("half_life", "time", "\"inf\"", "clearance in the medium"),
        Key("cargo", "named counts", "{}", "delivered on internalization, e.g. `{ miR21 = 10 }`"),
    ],
    "output": [
        Key("positions", "choice", "\"all\"", "`all`, `none`, or `{ sample = 10000 }` evenly spaced vesicles"),
        Key("compression", "choice", "\"gzip\"", "`gzip`, `lzf`, `none`"),
    ],
    "check": [
        Key("quiet", "list of keys", "[]", "warnings on these keys, or on keys inside these tables, are "
            "not shown, e.g. `[\"vesicles.exo.radius\"]`; the values are still checked"),
    ],
}

# Keys that also take a piecewise-constant schedule,
# { schedule = [[time, value], …] } (config_types.Schedule): every rate of
# a cell type and a population's half_life.
SCHEDULED = {"cell_types.NAME": (*CellTypeConfig.RATES, "secretion_rate"), "vesicles.NAME": ("half_life",)}
