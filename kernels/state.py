"""The simulation state, declared once: every array the kernels read or write.

The kernels take seven structure-of-arrays containers (HOOMD's ``*_args``
structs), bundled as one :class:`StepArgs`; each field is declared here with
its dtype, shape and role, and everything else derives from these lists:

- the NumPy reference and the Numba kernel take the containers themselves
  (named tuples: Numba compiles them to structs of arrays);
- kernels/exodiff_step.cuh declares the same containers as C structs, field
  for field (X-macros ``EXO_<CONTAINER>``); the CUDA entry points and the host
  harness take their fields as one flat parameter list in this order, which
  exodiff/backend_cuda.py builds from these declarations
  (tests/test_cuda_host.py checks that the three agree);
- exodiff/model.py builds the arrays by these names and dtypes; the driver
  checkpoints and resumes the ``STATE`` fields and writes the ``fate`` ones
  (columns of the fate table, /fates) with every snapshot; the cuda backend
  fetches the ``STATE`` and ``DERIVED`` ones.

Adding a per-vesicle array: one ``Field`` below (the model starts a STATE
field at its ``initial`` value; a CONST one needs its values in
exodiff/model.py), its line in the C struct's X-macro in exodiff_step.cuh, and
the kernel code that uses it.  Checkpoints carry it from then on; a ``fate``
field is also a column of the run file's fate table (its place in the column
order: exodiff/io/layout.py FATE_COLUMNS, whose import fails until it has one);
other fields reach the run file only where the writer is taught to
(exodiff/driver.py: SNAPSHOT_FIELDS).

Shapes name their axes: N vesicles, M cells, T cell types, P populations, B
grid bins, S horizon stops; () is a scalar.
"""
import collections
from typing import NamedTuple

import numpy as np

# Roles
STATE = "state"      # changed by the step: fetched from a device, checkpointed, resumed
DERIVED = "derived"  # changed by the step but follows from the state (recounted
                     # on resume): fetched, not checkpointed
CONST = "const"      # set up by the model, read-only for the kernels


class Field(NamedTuple):
    """One array (or scalar) of the kernels' arguments."""
    name: str
    dtype: type
    shape: tuple     # axis names, e.g. ("N", 3); () for a scalar
    role: str
    doc: str
    initial: object = None  # fill value the model starts a STATE field with
    split: tuple = ()       # CUDA: an (N, 3) array passed one row per axis, by these names
    fate: bool = False       # a column of the fate table (first events; the run file's /fates)

    @property
    def per_vesicle(self):
        return self.shape[:1] == ("N",)


def _container(name, doc, *fields):
    """A named tuple class with the declarations in ``FIELDS``."""
    cls = collections.namedtuple(name, [f.name for f in fields])
    cls.__doc__ = doc
    cls.__module__ = __name__  # Numba's cache pickles the class by reference
    cls.FIELDS = fields
    return cls


f64, i64, i32, i8, u32 = np.float64, np.int64, np.int32, np.int8, np.uint32

Run = _container(
    "Run", "The step length and the random-number key.",
    Field("dt", f64, (), CONST, "step [s]"),
    Field("k0", u32, (), CONST, "Philox key, low word of the seed"),
    Field("k1", u32, (), CONST, "Philox key, high word of the seed"),
    Field("adaptive", i32, (), CONST, "run.stepping: 1 adaptive (far-field leaps), 0 fixed"),
    Field("horizon_every", i64, (2,), CONST,
          "steps between observations and between snapshots: no leap passes a multiple of either"),
    Field("horizon_stops", i64, ("S",), CONST,
          "sorted steps no leap passes (schedule changes), ending with the run's last step"),
)

Vesicles = _container(
    "Vesicles", "The vesicle state: what a step changes, per vesicle.",
    Field("pos", f64, ("N", 3), STATE, "position [µm], inside the box", 0.0, ("px", "py", "pz")),
    Field("image", i32, ("N", 3), STATE, "periodic images crossed per axis", 0, ("ix", "iy", "iz")),
    Field("state", i8, ("N",), STATE, "constants.VesicleState"),
    Field("cell", i32, ("N",), STATE, "cell bound to or internalized by, -1 if none", -1),
    Field("first_bound_time", f64, ("N",), STATE, "end of the step of first binding [s], NaN: never",
          np.nan, fate=True),
    Field("internalized_time", f64, ("N",), STATE, "end of the step of internalization [s], NaN: never",
          np.nan, fate=True),
    Field("exit_time", f64, ("N",), STATE, "end of the step of absorption at a face [s], NaN: never",
          np.nan, fate=True),
    Field("first_bound_cell", i32, ("N",), STATE, "cell of the first binding, -1: never", -1, fate=True),
    Field("cleared_time", f64, ("N",), STATE, "end of the step of clearance in the medium [s], NaN: never",
          np.nan, fate=True),
    # after uptake (issue 18)
    Field("escape_time", f64, ("N",), STATE, "end of the step of endosomal escape (DELIVERED) [s], "
          "NaN: never", np.nan, fate=True),
    Field("degraded_time", f64, ("N",), STATE, "end of the step of degradation (DEGRADED) [s], NaN: never",
          np.nan, fate=True),
    Field("fused_time", f64, ("N",), STATE, "end of the step of fusion with the plasma membrane "
          "(DELIVERED) [s], NaN: never", np.nan, fate=True),
    Field("recycled", i32, ("N",), STATE, "times recycled from an endosome back to the medium", 0, fate=True),
    Field("bound_duration", f64, ("N",), STATE, "total time bound [s]: dt per step begun BOUND", 0.0,
          fate=True),
    Field("internalized_cell", i32, ("N",), STATE, "cell of the first internalization, -1: never "
          "(a recycled vesicle's ``cell`` is -1 again)", -1, fate=True),
    Field("leap_end", i64, ("N",), STATE,
          "step at whose start a leaping vesicle is back on the step grid (its pos: the landing "
          "point), or a waiting BOUND or INTERNALIZED vesicle is visited again (kernels/leap.py, "
          "\"Waits\"); every stage skips it while the step is below this", 0),
    Field("leaps", i64, ("N",), STATE, "leaps taken (for the run summary)", 0),
    Field("leap_steps", i64, ("N",), STATE, "steps not taken: spent in flight in those leaps, or "
          "waiting BOUND beyond the visit that began the wait (for the run summary)", 0),
    Field("leap_look", i64, ("N",), STATE,
          "step from which a FREE vesicle looks for a leap again: a look that finds it too close "
          "to a surface puts the next off by about the steps it needs to get far enough (never "
          "past a horizon); for a waiting BOUND or INTERNALIZED vesicle, −1 − the step at which "
          "its event is due (kernels/leap.py, \"Waits\")", 0),
)

VesicleParams = _container(
    "VesicleParams", "Per-vesicle (and per-population) constants.",
    Field("diffusion", f64, ("N",), CONST, "D [µm²/s]"),
    Field("sigma", f64, ("N",), CONST, "step length √(2 D dt) [µm]"),
    Field("settling", f64, ("N",), CONST, "settling speed, downwards along z [µm/s]"),
    Field("vradius", f64, ("N",), CONST, "vesicle radius [µm]"),
    Field("species", i32, ("N",), CONST, "population index"),
    Field("birth_step", i64, ("N",), CONST, "step at whose end a PENDING vesicle is born"),
    Field("p_clear", f64, ("P",), CONST, "clearance probability per step, per population"),
)

Domain = _container(
    "Domain", "The box and its faces.",
    Field("box", f64, (3,), CONST, "edge lengths [µm]"),
    Field("face_kind", i32, (6,), CONST, "constants.FaceKind of xlo, xhi, ylo, yhi, zlo, zhi"),
    Field("face_kappa", f64, (), CONST, "reactivity of absorbing faces [µm/s]"),
    Field("flow", f64, (3,), CONST, "uniform drift [µm/s]"),
)

Cells = _container(
    "Cells", "The cells (static spheres).",
    Field("ccenter", f64, ("M", 3), CONST, "centre [µm]"),
    Field("cradius", f64, ("M",), CONST, "radius [µm]"),
    Field("ctype", i32, ("M",), CONST, "cell type index"),
    Field("ckappa", f64, ("M",), CONST, "binding reactivity κ [µm/s] (inf: every contact binds)"),
    Field("ccapacity", i64, ("M",), CONST, "receptor capacity, bound vesicles (0: unlimited)"),
    Field("bound_count", i64, ("M",), DERIVED,
          "BOUND vesicles per cell, as of the start of the step (recounted between steps)", 0),
    Field("cell_bound_steps", i64, ("M",), STATE,
          "vesicle-steps begun BOUND on the cell since the start (× dt: bound vesicle-seconds); "
          "integer sums, exact at any thread count", 0),
)

CellTypes = _container(
    "CellTypes", "Per cell type constants.",
    Field("type_p_event", f64, ("T",), CONST, "probability per step of unbinding or internalization"),
    Field("type_frac_off", f64, ("T",), CONST,
          "share of those events that unbind: k_off/(k_off + k_int + k_fuse)"),
    Field("type_cut_fuse", f64, ("T",), CONST, "channel threshold: of those events, the channel "
          "uniform fuses (DELIVERED) at or above (k_off + k_int)/(k_off + k_int + k_fuse); 1: never"),
    Field("type_p_endo", f64, ("T",), CONST, "probability per step that an INTERNALIZED vesicle leaves "
          "the endosome: 1 − exp(−(k_escape + k_degrade + k_recycle) dt)"),
    Field("type_frac_escape", f64, ("T",), CONST,
          "share of those that escape (DELIVERED): k_escape/(k_escape + k_degrade + k_recycle)"),
    Field("type_cut_recycle", f64, ("T",), CONST, "channel threshold: the channel uniform recycles "
          "at or above (k_escape + k_degrade)/(k_escape + k_degrade + k_recycle), else degrades; 1: never"),
)

Grid = _container(
    "Grid", "The cell grid (CSR): the cells near each bin.",
    Field("bin_size", f64, (3,), CONST, "bin edges [µm]"),
    Field("nbins", i64, (3,), CONST, "bins per axis"),
    Field("gstart", i64, ("B+1",), CONST, "bin b lists gitems[gstart[b]:gstart[b+1]]"),
    Field("gitems", i32, ("items",), CONST, "cell indices"),
    Field("clearance", f64, ("B",), CONST,
          "lower bound on the distance from the bin's centre to the nearest contact sphere "
          "(cell radius + the largest vesicle radius) of a cell the bin does not list [µm]; "
          "inf without one"),
)


class StepArgs(NamedTuple):
    """Everything a step reads and writes: the kernels' one argument."""
    run: Run
    vesicles: Vesicles
    params: VesicleParams
    domain: Domain
    cells: Cells
    types: CellTypes
    grid: Grid


StepArgs.__module__ = __name__
CONTAINERS = (Run, Vesicles, VesicleParams, Domain, Cells, CellTypes, Grid)
FIELDS = {f.name: f for c in CONTAINERS for f in c.FIELDS}
STATE_FIELDS = tuple(n for n, f in FIELDS.items() if f.role == STATE)
"""What a step changes and a checkpoint holds (bound_count is recounted)."""
FETCHED = tuple(n for n, f in FIELDS.items() if f.role in (STATE, DERIVED))
"""What a device backend copies back for the driver to observe and write."""
FATES = tuple(n for n, f in FIELDS.items() if f.fate)
"""The fate-table columns the kernels record (first events and their cells,
times recycled, time bound)."""
SNAPSHOT_ZEROS = ("leap_end", "leaps", "leap_steps", "leap_look")
"""STATE fields a snapshot need not hold (a state read back from one has them
0): no leap passes an observation or snapshot (kernels/step_numpy.py
``_try_leap``) nor does a put-off look or a wait of a BOUND or INTERNALIZED
vesicle, so there every ``leap_end`` and ``leap_look`` is at most the step,
which is as good as 0 (an event due at the end of a wait, −1 − its step in
``leap_look``, has happened before the horizon); the leap counters only feed
the run summary."""
assert len(FIELDS) == sum(len(c.FIELDS) for c in CONTAINERS), "field names must be unique"


def pack(arrays):
    """StepArgs of the arrays named in a flat mapping (``Model.arrays``),
    the same objects: the kernels update them in place.  Raises TypeError
    for an array of the wrong dtype (a converted copy would not see the
    kernels' updates)."""
    parts = []
    for cls in CONTAINERS:
        values = []
        for f in cls.FIELDS:
            x = arrays[f.name]
            if not f.shape:
                x = f.dtype(x)
            elif np.asarray(x).dtype != np.dtype(f.dtype):
                raise TypeError(f"{f.name}: dtype {np.asarray(x).dtype}, "
                                f"the kernels take {np.dtype(f.dtype)}")
            values.append(x)
        parts.append(cls(*values))
    return StepArgs(*parts)


def typed(values):
    """The kernels' arrays from a mapping of every field name to its value:
    each converted to its declared dtype (C-contiguous; scalars as NumPy
    scalars), in declaration order.  Raises ValueError for a missing or
    unknown name, or sizes that disagree (every N, M, T, P the same)."""
    missing, unknown = set(FIELDS) - set(values), set(values) - set(FIELDS)
    if missing or unknown:
        raise ValueError(f"kernel arrays: missing {sorted(missing)}, unknown {sorted(unknown)}")
    out, sizes = {}, {}
    for name, f in FIELDS.items():
        if not f.shape:
            out[name] = f.dtype(values[name])
            continue
        x = np.ascontiguousarray(values[name], dtype=f.dtype)
        if x.ndim != len(f.shape):
            raise ValueError(f"{name}: shape {x.shape}, expected {f.shape}")
        for axis, size in zip(f.shape, x.shape):
            if sizes.setdefault(axis, size if isinstance(axis, str) else axis) != size:
                raise ValueError(f"{name}: shape {x.shape}, expected {f.shape} with "
                                 f"{axis} = {sizes[axis]}")
        out[name] = x
    return out


def initial_state(n, m=0):
    """The STATE arrays of n vesicles and m cells filled with their
    ``initial`` values (``state``: zeros, PENDING)."""
    out = {}
    for name in STATE_FIELDS:
        f = FIELDS[name]
        shape = tuple({"N": n, "M": m}.get(a, a) for a in f.shape)
        out[name] = np.full(shape, 0 if f.initial is None else f.initial, dtype=f.dtype)
    return out
