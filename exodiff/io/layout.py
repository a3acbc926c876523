"""The run file's layout: HDF5 in the H5MD 1.1 layout (DESIGN §5), and the
names, units and chunking that its writer and reader share.

Layout (lengths in µm, unit ``"um"``; times in s, unit ``"s"``)::

    /h5md                          version=[1,1]; author(name); creator(name, version)
    /parameters                    attrs config, seed, backend, device, exodiff_version, dt, box_edges, ...
    /particles/vesicles            attr pool_size = N
        box                        attrs dimension=3, boundary[3] ("periodic"|"none"),
                                   faces[6] (our reflect|periodic|absorb)
            edges                  {step[S], time[S], value[S,3] float64} (static box, one row per snapshot)
        position                   {step[S], time[S], value[S,n,3] float64}   only if positions are written
        image                      {step, time, value[S,n,3] int32}            periodic images, with position
        state                      {step, time, value[S,n] int8}  attr state_names
        cell                       {step, time, value[S,n] int32} cell index, -1 if none
        id [n] int64               pool index of each stored vesicle
        species [n] int32          attr names; radius [n] float64
        recycled, bound_duration   {step, time, value[S,n]} int32, float64 (s): SNAPSHOT_STATE
        milestones/<name> [n]      birth_time, first_bound_time, internalized_time,
                                   exit_time (NaN = never), rewritten at each snapshot
    /fates                         the fate of every vesicle, all N whatever is sampled
        species [N] int32          attr names; origin [N] int32 donor cell, -1: present at t = 0
        <column> [N]               FATE_COLUMNS: birth_time, first_bound_time, first_bound_cell,
                                   internalized_time, internalized_cell, exit_time,
                                   cleared_time, escape_time, degraded_time, fused_time
                                   (NaN / -1 = did not happen), recycled (times),
                                   bound_duration (s), rewritten at each snapshot (as of the
                                   last complete one: later events are the reader's to drop;
                                   recycled and bound_duration may be a snapshot ahead in a
                                   killed run's file, their series are not)
    /particles/cells               position [M,3], radius [M], type [M] int32 (attr names), box (hard link),
                                   kappa [M] (um/s), capacity [M], secretion_rate [M,P] (1/s, attr names)
        cell_bound_steps           {step, time, value[S,M] int64} vesicle-steps bound on each
                                   cell so far (× dt: vesicle-seconds): SNAPSHOT_STATE
    /observables/vesicles/<state>  {step[T], time[T], value[T] int64}, one per name in STATE_NAMES
    /observables/cells/bound       {step, time, value[T,M,S] int32}  attr species[S] (0.2: [T,M])
    /observables/cells/internalized {step, time, value[T,M,S] int32} attr species[S] (0.2: [T,M])
    /observables/cells/cargo       {step, time, value[T,M,K] float64}  attr names[K]

``n`` is N, or the number of sampled vesicles when ``sample_ids`` is given.
State and face names are the project's (exodiff/kernels/constants.py).

A series' complete frames are those whose ``step`` and ``time`` are written
(their fill values are -1 and NaN): the writer writes a frame's ``value``
rows first (exodiff/io/writer.py, "Crash safety").
"""
import math

import h5py
import numpy as np

from ..kernels.state import FIELDS

MILESTONE_NAMES = ("birth_time", "first_bound_time", "internalized_time", "exit_time")
# The fate table's columns that change during a run, in the order users read
# them: name -> (dtype, "did not happen").  The kernels keep those declared
# with ``fate=True`` in kernels/state.py (dtype and initial value from there);
# birth_time comes from elsewhere: it is scheduled by the model.
_FATES_OUTSIDE_KERNELS = {"birth_time": (np.float64, np.nan)}
_FATES = {**_FATES_OUTSIDE_KERNELS, **{f.name: (f.dtype, f.initial) for f in FIELDS.values() if f.fate}}
FATE_COLUMNS = {name: _FATES[name] for name in (
    "birth_time", "first_bound_time", "first_bound_cell", "internalized_time", "internalized_cell",
    "exit_time", "cleared_time", "escape_time", "degraded_time", "fused_time", "recycled",
    "bound_duration")}
assert set(FATE_COLUMNS) == set(_FATES), "every fate field needs its place among the columns"
# Which event time each cell column belongs to.
FATE_CELL_TIMES = {"first_bound_cell": "first_bound_time", "internalized_cell": "internalized_time"}
# STATE fields (kernels/state.py) that every snapshot also stores as a series
# of its own, {step, time, value[S, n]} under /particles/vesicles or value[S, M]
# under /particles/cells: a resume needs them as of the snapshot it starts
# from, and unlike the fate table's event times (cut back to that time by the
# reader) these counts and sums cannot be cut back.
SNAPSHOT_STATE = ("recycled", "bound_duration", "cell_bound_steps")
# Per-cell properties in /particles/cells (drawn per cell when a type's value has a gsd).
CELL_PROPERTY_UNITS = {"kappa": "um/s", "secretion_rate": "1/s"}
FATE_BYTES_PER_VESICLE = 4 + 4 + sum(np.dtype(d).itemsize for d, _ in FATE_COLUMNS.values())
"""File bytes per vesicle of /fates (species, origin and the columns), uncompressed."""
COMPRESSIONS = ("gzip", "lzf", "none")
LENGTH_UNIT = "um"
TIME_UNIT = "s"

# Chunks hold whole frames; small frames are grouped up to CHUNK_MIN_BYTES
# (fewer chunk-index entries), large ones split along the vesicle/cell axis so
# no chunk exceeds CHUNK_MAX_BYTES (bounded memory per read and write).
CHUNK_MIN_BYTES = 64 * 1024
CHUNK_MAX_BYTES = 4 * 1024 * 1024
_STR = h5py.string_dtype()


def value_chunks(frame_shape, itemsize, hint):
    """Chunk shape for a series ``value[F, *frame_shape]`` (see CHUNK_*_BYTES)."""
    frame = [max(1, d) for d in frame_shape]
    if frame:
        row_bytes = itemsize * math.prod(frame[1:])
        frame[0] = max(1, min(frame[0], CHUNK_MAX_BYTES // row_bytes))
    frame_bytes = itemsize * math.prod(frame)
    frames = max(1, min(int(hint), CHUNK_MIN_BYTES // frame_bytes))
    return (frames, *frame)


def names_attr(names):
    """An HDF5 attribute value holding the strings ``names``."""
    return np.array([str(s) for s in names], dtype=_STR)


def text(x):
    """An HDF5 string (bytes or str) as str."""
    return x.decode() if isinstance(x, bytes) else str(x)


def names(attrs, key):
    """The strings of attribute ``key`` (none when absent) as a tuple."""
    return tuple(text(s) for s in attrs.get(key, ()))


def complete_frames(groups):
    """Number of frames complete in every one of the series ``groups``: the
    shortest ``step``/``time``/``value``, less any trailing frame whose step or
    time still holds its fill value (-1, NaN) after a kill."""
    if not groups:
        return 0
    n = min(min(g["step"].shape[0], g["time"].shape[0], g["value"].shape[0]) for g in groups)
    while n > 0 and any(g["step"][n - 1] < 0 or np.isnan(g["time"][n - 1]) for g in groups):
        n -= 1
    return n


def no_fates(n):
    """Fate columns of ``n`` vesicles to which nothing happened (birth at 0)."""
    out = {name: np.full(n, fill, dtype=dtype) for name, (dtype, fill) in FATE_COLUMNS.items()}
    out["birth_time"][:] = 0.0
    return out
