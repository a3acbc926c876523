"""Run files: HDF5 in the H5MD 1.1 layout (DESIGN §5).

:class:`RunWriter` writes a run, :func:`open_run` reads one.  This is the only
module that touches files.

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
        milestones/<name> [n]      birth_time, first_bound_time, internalized_time,
                                   exit_time (NaN = never), rewritten at each snapshot
    /particles/cells               position [M,3], radius [M], type [M] int32 (attr names), box (hard link)
    /observables/vesicles/<state>  {step[T], time[T], value[T] int64}, one per name in STATE_NAMES
    /observables/cells/bound       {step, time, value[T,M] int32}
    /observables/cells/internalized {step, time, value[T,M] int32}
    /observables/cells/cargo       {step, time, value[T,M,K] float64}  attr names[K]

``n`` is N, or the number of sampled vesicles when ``sample_ids`` is given.

Crash safety: the file is built under ``PATH.part`` with every group, dataset
and attribute created up front, switched to SWMR mode and only then renamed
to ``PATH``, so ``PATH`` is always a valid SWMR file.  Each frame writes its
``value`` rows, flushes, then extends and writes ``time`` and ``step`` and
flushes again: a series' complete frames are those whose ``step`` and
``time`` are written (their fill values are -1 and NaN).  The reader
truncates every series to its complete frames, so a run killed at any moment
reads back every frame finished before the kill.  A killed writer leaves the
superblock's "open for write" flags set, which only SWMR readers accept
(``open_run`` is one); :func:`clear_status_flags` clears them for other tools.

Resume (``exodiff run --resume``): the state at a step ``s`` fully determines
the rest of a run (counter-based random numbers), so a run continues from the
latest step whose full state is on disk:

- the last complete snapshot, when snapshots hold the whole pool with
  positions (``output.positions = "all"``); the milestones as of that step
  are the stored ones with every time after it set back to NaN (they are
  first-event times, rewritten at each snapshot);
- else the checkpoint file ``PATH.checkpoint`` (:func:`write_checkpoint`):
  the full state of every vesicle at one step, written at each snapshot of a
  run whose snapshots are sampled or hold no positions, and on Ctrl-C at the
  step reached.  It is written as ``PATH.checkpoint.part``, synced, then
  renamed, so it is always whole; the run file is synced before, so every
  frame up to the checkpoint's step is on disk when the checkpoint is.  A
  completed run deletes it; a fresh run replaces any stale one;
- else step 0 (the initial state is rebuilt from the config).

:meth:`RunWriter.reopen` then cuts every series back to that step (frames
after it are written again, identically) and goes on appending.  A writer
holds a shared ``flock`` on ``PATH`` while it writes; ``--resume`` and
``--overwrite`` take it exclusively first, so they refuse a file that a live
run is still writing (SWMR writers drop HDF5's own lock).
"""
from __future__ import annotations

import getpass
import math
import operator
import os
import signal
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; resume trusts the user
    fcntl = None

STATE_NAMES = ("pending", "free", "bound", "internalized", "exited", "cleared")
MILESTONE_NAMES = ("birth_time", "first_bound_time", "internalized_time", "exit_time")
FACE_NAMES = ("xlo", "xhi", "ylo", "yhi", "zlo", "zhi")
FACE_KINDS = ("reflect", "periodic", "absorb")
COMPRESSIONS = ("gzip", "lzf", "none")
LENGTH_UNIT = "um"
TIME_UNIT = "s"

# Chunks hold whole frames; small frames are grouped up to _CHUNK_MIN_BYTES
# (fewer chunk-index entries), large ones split along the vesicle/cell axis so
# no chunk exceeds _CHUNK_MAX_BYTES (bounded memory per read and write).
_CHUNK_MIN_BYTES = 64 * 1024
_CHUNK_MAX_BYTES = 4 * 1024 * 1024
_STR = h5py.string_dtype()


def _value_chunks(frame_shape, itemsize, hint):
    """Chunk shape for a series ``value[F, *frame_shape]`` (see _CHUNK_*_BYTES)."""
    frame = [max(1, d) for d in frame_shape]
    if frame:
        row_bytes = itemsize * math.prod(frame[1:])
        frame[0] = max(1, min(frame[0], _CHUNK_MAX_BYTES // row_bytes))
    frame_bytes = itemsize * math.prod(frame)
    frames = max(1, min(int(hint), _CHUNK_MIN_BYTES // frame_bytes))
    return (frames, *frame)


class _Series:
    """One H5MD time-dependent element under ``parent/name``: ``step[F]``
    int64, ``time[F]`` float64 [s] and ``value[F, *frame_shape]``, all
    growing along their first axis, ``F`` frames written so far."""

    def __init__(self, parent, name, frame_shape, dtype, *, unit=None,
                 compression=None, hint=1):
        self.group = parent.create_group(name)
        clock_chunks = _value_chunks((), 8, hint)
        self.step = self.group.create_dataset(
            "step", shape=(0,), maxshape=(None,), dtype=np.int64,
            chunks=clock_chunks, fillvalue=-1)
        self.time = self.group.create_dataset(
            "time", shape=(0,), maxshape=(None,), dtype=np.float64,
            chunks=clock_chunks, fillvalue=np.nan)
        self.time.attrs["unit"] = TIME_UNIT
        dtype = np.dtype(dtype)
        # A zero-length fixed axis (no cells, no cargo) cannot hold a chunk
        # of length 1 unless it is unlimited.
        maxshape = (None, *(None if d == 0 else d for d in frame_shape))
        self.value = self.group.create_dataset(
            "value", shape=(0, *frame_shape), maxshape=maxshape, dtype=dtype,
            chunks=_value_chunks(frame_shape, dtype.itemsize, hint),
            compression=compression, shuffle=compression is not None)
        if unit is not None:
            self.value.attrs["unit"] = unit
        self.frames = 0

    def write_value(self, data):
        """Append the value of the next frame (complete only after write_clock)."""
        self.value.resize(self.frames + 1, axis=0)
        self.value[self.frames] = data

    def write_clock(self, step, time):
        """Append the frame's time, then its step, which completes the frame."""
        for ds, x in ((self.time, time), (self.step, step)):
            ds.resize(self.frames + 1, axis=0)
            ds[self.frames] = x
        self.frames += 1

    @classmethod
    def attach(cls, group):
        """The series stored in ``group`` of an existing file (frames unset:
        see :func:`_cut_series`)."""
        self = cls.__new__(cls)
        self.group = group
        self.step, self.time, self.value = group["step"], group["time"], group["value"]
        self.frames = 0
        return self


def _cut_series(series, last_step):
    """Cut the series that are written together (one frame each per call) to
    their complete frames at steps <= ``last_step``; returns how many remain.
    ``step`` is cut first, so a kill midway leaves the cut frames incomplete."""
    n = _complete_frames([s.group for s in series])
    if n:
        n = int(np.searchsorted(series[0].step[:n], last_step, side="right"))
    for s in series:
        for ds in (s.step, s.time, s.value):
            if ds.shape[0] != n:
                ds.resize(n, axis=0)
        s.frames = n
    return n


def _names_attr(names):
    return np.array([str(s) for s in names], dtype=_STR)


def _array(x, shape, dtype, what):
    """``x`` as an array of ``dtype`` whose shape must be ``shape``."""
    a = np.asarray(x)
    if a.shape != tuple(shape):
        raise ValueError(f"{what}: shape {a.shape}, expected {tuple(shape)}")
    return a.astype(dtype, copy=False)


class RunWriter:
    """Writes one run file; see the module docstring for the layout.

    Parameters (keyword-only except ``path``; lengths [µm], times [s])
    -------------------------------------------------------------------
    path : the run file, created or replaced once the layout is complete
    config_text : resolved TOML config; seed, backend, device, exodiff_version
    dt : time step [s]
    box_edges : (3,) box lengths [µm]
    boundary : 6 strings for xlo, xhi, ylo, yhi, zlo, zhi: reflect|periodic|absorb
    cell_centers [M,3] [µm], cell_radii [M] [µm], cell_types [M] int (index into
        cell_type_names)
    species [N] int (index into species_names), vesicle_radius [N] [µm]
    cargo_names : K cargo names (the last axis of ``cargo`` in write_observation)
    sample_ids : pool indices of the vesicles whose snapshots are stored
        (stored in increasing order), or None for all N
    write_positions : store position and image series (state and cell always)
    compression : "gzip" | "lzf" | "none", for the per-vesicle and per-cell data
    n_snapshots_hint, n_observations_hint : expected frame counts (chunk sizes only)
    extra_parameters : more attributes for /parameters (str, numbers, arrays)
    author : /h5md/author name (default: the login name)
    """

    def __init__(self, path, *, config_text, seed, backend, device, dt,
                 box_edges, boundary, cell_centers, cell_radii, cell_types,
                 cell_type_names, species, vesicle_radius, species_names,
                 cargo_names, sample_ids, write_positions, compression,
                 n_snapshots_hint, n_observations_hint, exodiff_version,
                 extra_parameters=None, author=None):
        self.path = Path(path)
        box_edges = _array(box_edges, (3,), np.float64, "box_edges")
        if not np.all(box_edges > 0):
            raise ValueError(f"box_edges: {box_edges}, expected positive lengths")
        boundary = tuple(str(b) for b in boundary)
        if len(boundary) != 6 or any(b not in FACE_KINDS for b in boundary):
            raise ValueError(f"boundary: {boundary}, expected 6 of {FACE_KINDS}")
        periodic = [boundary[2 * a] == "periodic" for a in range(3)]
        if any((boundary[2 * a + 1] == "periodic") != periodic[a] for a in range(3)):
            raise ValueError(f"boundary: {boundary}, periodic must be set on both faces of an axis")
        cell_radii = np.asarray(cell_radii, dtype=np.float64)
        M = cell_radii.shape[0]
        cell_centers = _array(cell_centers, (M, 3), np.float64, "cell_centers")
        cell_types = _array(cell_types, (M,), np.int32, "cell_types")
        if M and not (0 <= cell_types.min() and cell_types.max() < len(cell_type_names)):
            raise ValueError("cell_types: index outside cell_type_names")
        vesicle_radius = np.asarray(vesicle_radius, dtype=np.float64)
        N = vesicle_radius.shape[0]
        species = _array(species, (N,), np.int32, "species")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression: {compression!r}, expected one of {COMPRESSIONS}")
        comp = None if compression == "none" else compression
        if sample_ids is None:
            ids, self._select = np.arange(N, dtype=np.int64), None
        else:
            ids = np.sort(np.asarray(sample_ids, dtype=np.int64).ravel())
            if ids.size and (ids[0] < 0 or ids[-1] >= N or np.any(np.diff(ids) == 0)):
                raise ValueError(f"sample_ids: expected distinct pool indices in [0, {N})")
            self._select = ids
        n = ids.size
        self.n_vesicles, self.n_stored, self.n_cells = N, n, M
        self.n_cargo = len(cargo_names)
        self.write_positions = bool(write_positions)

        tmp = self.path.with_name(self.path.name + ".part")
        tmp.unlink(missing_ok=True)
        # Lowest format SWMR allows (HDF5 1.10): libver="latest" under HDF5 2.x
        # writes layout messages that HDF5 1.x readers (ParaView, VisIt) reject.
        f = h5py.File(tmp, "w", libver=("v110", "latest"))
        try:
            h5md = f.create_group("h5md")
            h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
            h5md.create_group("author").attrs["name"] = author or _login_name()
            creator = h5md.create_group("creator")
            creator.attrs["name"] = "exodiff"
            creator.attrs["version"] = str(exodiff_version)

            par = f.create_group("parameters")
            par.attrs["config"] = str(config_text)
            seed = int(seed)
            par.attrs["seed"] = np.uint64(seed) if seed >= 2**63 else np.int64(seed)
            par.attrs["backend"] = str(backend)
            par.attrs["device"] = str(device)
            par.attrs["exodiff_version"] = str(exodiff_version)
            par.attrs["dt"] = float(dt)
            for key, value in (extra_parameters or {}).items():
                par.attrs[key] = value

            # track_order keeps "vesicles" first: MDAnalysis reads the first particles group.
            particles = f.create_group("particles", track_order=True)
            ves = particles.create_group("vesicles")
            ves.attrs["pool_size"] = np.int64(N)
            box = ves.create_group("box")
            box.attrs["dimension"] = np.int32(3)
            box.attrs["boundary"] = _names_attr("periodic" if p else "none" for p in periodic)
            box.attrs["faces"] = _names_attr(boundary)
            # edges is a time series (one row per snapshot), not a fixed
            # dataset: MDAnalysis' H5MD reader reads box/edges/value[frame].
            # The fixed value is also in /parameters (files with no snapshot).
            par.attrs["box_edges"] = box_edges
            self._box_edges = box_edges
            self._edges = _Series(box, "edges", (3,), np.float64, unit=LENGTH_UNIT, hint=n_snapshots_hint)

            big = dict(compression=comp, hint=n_snapshots_hint)
            self._position = self._image = None
            if self.write_positions:
                self._position = _Series(ves, "position", (n, 3), np.float64, unit=LENGTH_UNIT, **big)
                self._image = _Series(ves, "image", (n, 3), np.int32, **big)
            self._state = _Series(ves, "state", (n,), np.int8, **big)
            self._state.group.attrs["state_names"] = _names_attr(STATE_NAMES)
            self._cell = _Series(ves, "cell", (n,), np.int32, **big)
            self._snapshot_series = [s for s in (self._position, self._image, self._state, self._cell,
                                                 self._edges) if s is not None]

            fixed = dict(compression=comp, shuffle=comp is not None) if n else {}
            ves.create_dataset("id", data=ids, **fixed)
            sp = ves.create_dataset("species", data=self._take(species), **fixed)
            sp.attrs["names"] = _names_attr(species_names)
            ves.create_dataset("radius", data=self._take(vesicle_radius), **fixed).attrs["unit"] = LENGTH_UNIT
            ms = ves.create_group("milestones")
            self._milestones = {}
            for name in MILESTONE_NAMES:
                ds = ms.create_dataset(name, data=np.full(n, np.nan), **fixed)
                ds.attrs["unit"] = TIME_UNIT
                self._milestones[name] = ds

            cells = particles.create_group("cells")
            cells.create_dataset("position", data=cell_centers).attrs["unit"] = LENGTH_UNIT
            cells.create_dataset("radius", data=cell_radii).attrs["unit"] = LENGTH_UNIT
            cells.create_dataset("type", data=cell_types).attrs["names"] = _names_attr(cell_type_names)
            cells["box"] = box  # hard link: one box for both groups

            obs_v = f.create_group("observables/vesicles")
            small = dict(hint=n_observations_hint)
            self._counts = [_Series(obs_v, s, (), np.int64, **small) for s in STATE_NAMES]
            obs_c = f.create_group("observables/cells")
            big = dict(compression=comp, hint=n_observations_hint)
            self._bound = _Series(obs_c, "bound", (M,), np.int32, **big)
            self._internalized = _Series(obs_c, "internalized", (M,), np.int32, **big)
            self._cargo = _Series(obs_c, "cargo", (M, self.n_cargo), np.float64, **big)
            self._cargo.group.attrs["names"] = _names_attr(cargo_names)
            self._observation_series = [*self._counts, self._bound, self._internalized, self._cargo]

            f.swmr_mode = True  # flushes the complete layout (and drops HDF5's lock)
            lock = RunLock(tmp, exclusive=False, wait=True)  # the inode keeps it through the rename
            remove_checkpoint(self.path)  # a stale one belongs to the file being replaced
            os.replace(tmp, self.path)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        self._f = f
        self._lock = lock

    @classmethod
    def reopen(cls, path, last_step):
        """Open the run file ``path`` of an interrupted run to go on writing
        it after step ``last_step``: every series is cut to its complete
        frames at steps <= last_step, and the next frames are appended.

        The file must not be written by a live process: the exclusive
        :class:`RunLock` taken here refuses it (InputError).  Clears the
        status flags a killed writer left, then opens the file directly in
        SWMR-write mode, so a kill at any moment leaves a readable file."""
        path = Path(path)
        lock = RunLock(path, exclusive=True)
        try:
            clear_status_flags(path)
            fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
            fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
            fapl.set_file_locking(False, True)  # ours is held; HDF5's would conflict with it
            try:
                fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE,
                                    fapl=fapl)
            except OSError as e:
                raise InputError(f"{path}: cannot reopen to resume ({_one_line(e)})") from None
            f = h5py.File(fid)
        except BaseException:
            lock.close()
            raise
        self = cls.__new__(cls)
        self.path, self._f, self._lock = path, f, lock
        try:
            self._attach(last_step)
        except (KeyError, OSError, ValueError) as e:
            self.close()
            raise InputError(f"{path}: cannot resume this file ({_one_line(e)})") from None
        lock.share()  # readers may open it again while we write
        return self

    def _attach(self, last_step):
        f = self._f
        ves = f["particles/vesicles"]
        if not isinstance(ves["box/edges"], h5py.Group):
            raise ValueError("written by an earlier exodiff file layout")
        ids = ves["id"][()]
        N = int(ves.attrs["pool_size"])
        self.n_vesicles, self.n_stored = N, ids.size
        self._select = None if ids.size == N else ids
        self.n_cells = f["particles/cells/radius"].shape[0]
        self.n_cargo = f["observables/cells/cargo/value"].shape[2]
        self.write_positions = "position" in ves
        self._box_edges = ves["box/edges/value"][0] if ves["box/edges/value"].shape[0] else \
            np.asarray(f["parameters"].attrs["box_edges"], dtype=np.float64)
        series = _Series.attach
        self._position = series(ves["position"]) if self.write_positions else None
        self._image = series(ves["image"]) if self.write_positions else None
        self._state, self._cell = series(ves["state"]), series(ves["cell"])
        self._edges = series(ves["box/edges"])
        self._snapshot_series = [s for s in (self._position, self._image, self._state, self._cell,
                                             self._edges) if s is not None]
        self._milestones = {name: ves["milestones"][name] for name in MILESTONE_NAMES}
        obs_v, obs_c = f["observables/vesicles"], f["observables/cells"]
        self._counts = [series(obs_v[s]) for s in STATE_NAMES]
        self._bound, self._internalized = series(obs_c["bound"]), series(obs_c["internalized"])
        self._cargo = series(obs_c["cargo"])
        self._observation_series = [*self._counts, self._bound, self._internalized, self._cargo]
        # snapshots first: a kill between the two cuts leaves observations
        # past the last snapshot, as a kill during a run does
        _cut_series(self._snapshot_series, last_step)
        _cut_series(self._observation_series, last_step)
        f.flush()

    def last_steps(self):
        """(step of the last snapshot, of the last observation) written, -1 if none."""
        return tuple(int(s[0].step[s[0].frames - 1]) if s[0].frames else -1
                     for s in (self._snapshot_series, self._observation_series))

    def sync(self):
        """Flush the file and have the OS write it to the disk (fsync), so a
        checkpoint written next never gets ahead of the frames it follows."""
        self._f.flush()
        self._lock.fsync()

    def _take(self, a):
        """The stored vesicles' rows of a per-vesicle array ``a[N, ...]``."""
        return a if self._select is None else a[self._select]

    @property
    def n_snapshots(self):
        """Snapshots written so far."""
        return self._state.frames

    @property
    def n_observations(self):
        """Observations written so far."""
        return self._bound.frames

    def write_observation(self, step, time, state_counts, bound, internalized, cargo):
        """Append one observation at ``step`` (time [s]): ``state_counts[6]``
        vesicles per state (order STATE_NAMES), ``bound[M]`` and
        ``internalized[M]`` vesicles per cell, ``cargo[M,K]`` cargo delivered
        to each cell so far."""
        M, K = self.n_cells, self.n_cargo
        counts = _array(state_counts, (len(STATE_NAMES),), np.int64, "state_counts")
        for series, c in zip(self._counts, counts):
            series.write_value(c)
        self._bound.write_value(_array(bound, (M,), np.int32, "bound"))
        self._internalized.write_value(_array(internalized, (M,), np.int32, "internalized"))
        self._cargo.write_value(_array(cargo, (M, K), np.float64, "cargo"))
        self._complete(self._observation_series, step, time)

    def write_snapshot(self, step, time, position, image, state, cell, milestones):
        """Append one snapshot at ``step`` (time [s]) of the full pool:
        ``position[N,3]`` [µm] and ``image[N,3]`` (ignored, may be None, when
        positions are not written), ``state[N]`` (0..5), ``cell[N]`` (-1 if
        none) and ``milestones`` name -> [N] times [s] (NaN = never) for every
        name in MILESTONE_NAMES.  Only the rows of the stored vesicles are
        written."""
        N = self.n_vesicles
        if self._position is not None:
            self._position.write_value(self._take(_array(position, (N, 3), np.float64, "position")))
            self._image.write_value(self._take(_array(image, (N, 3), np.int32, "image")))
        self._state.write_value(self._take(_array(state, (N,), np.int8, "state")))
        self._cell.write_value(self._take(_array(cell, (N,), np.int32, "cell")))
        self._edges.write_value(self._box_edges)
        for name in MILESTONE_NAMES:
            self._milestones[name][...] = self._take(_array(milestones[name], (N,), np.float64, name))
        fault_point("snapshot", self._state.frames)
        self._complete(self._snapshot_series, step, time)
        fault_trace(f"snapshot {int(step)}")

    def _complete(self, series, step, time):
        # The values must be on disk before any step says the frame is complete.
        self._f.flush()
        for s in series:
            s.write_clock(int(step), float(time))
        self._f.flush()

    def close(self):
        """Flush and close the file (idempotent), then release the lock."""
        if self._f is not None:
            self._f.close()
            self._f = None
        if getattr(self, "_lock", None) is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _login_name():
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# ----------------------------------------------------------------- reader


@dataclass(frozen=True)
class Cells:
    """Static cells: ``centers[M,3]`` [µm], ``radii[M]`` [µm], ``types[M]``
    int32 indices into ``type_names``."""
    centers: np.ndarray
    radii: np.ndarray
    types: np.ndarray
    type_names: tuple

    def __len__(self):
        return self.radii.shape[0]


def _text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def _names(attrs, key):
    return tuple(_text(s) for s in attrs.get(key, ()))


def _complete_frames(groups):
    """Number of frames complete in every one of the series ``groups``: the
    shortest ``step``/``time``/``value``, less any trailing frame whose step or
    time still holds its fill value (-1, NaN) after a kill."""
    if not groups:
        return 0
    n = min(min(g["step"].shape[0], g["time"].shape[0], g["value"].shape[0]) for g in groups)
    while n > 0 and any(g["step"][n - 1] < 0 or np.isnan(g["time"][n - 1]) for g in groups):
        n -= 1
    return n


_REQUIRED = ("parameters", "particles/vesicles/box/edges", "particles/vesicles/state",
             "particles/vesicles/cell", "particles/vesicles/id", "particles/cells/position",
             "observables/vesicles", "observables/cells/bound")


def open_run(path):
    """Open a run file read-only (also while it is being written) as a :class:`Run`.

    Raises InputError naming the file when it is missing, not HDF5 or not an
    exodiff H5MD run."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a run file")
    try:
        hdf5 = h5py.is_hdf5(path)
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: cannot read ({getattr(e, 'strerror', None) or _one_line(e)})") from None
    if not hdf5:
        raise InputError(f"{path}: not an HDF5 file")
    try:
        f = _open_read(path)
    except OSError as e:  # reading the superblock, clearing flags
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        creator = f.get("h5md/creator")
        if creator is None or _text(creator.attrs.get("name", "")) != "exodiff":
            raise InputError(f"{path}: not an exodiff run file (no /h5md/creator named 'exodiff')")
        missing = [name for name in _REQUIRED if name not in f]
        if missing:
            raise InputError(f"{path}: not a complete exodiff run file (missing /{missing[0]})")
        return Run(f, path)
    except InputError:
        f.close()
        raise
    except (KeyError, OSError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        # a damaged file: truncated, or links and datasets of the wrong kind
        f.close()
        raise InputError(f"{path}: not a readable exodiff run file ({_one_line(e)})") from None


def _open_read(path):
    """h5py.File for reading ``path``.

    A file whose writer is alive (it holds the RunLock) is read in SWMR
    mode, the only way to read it while it is written.  Otherwise SWMR is
    avoided: on damaged metadata an SWMR reader retries, with back-off, for
    minutes; a plain reader fails at once.  So the status flags that a killed
    writer leaves (which only SWMR readers accept) are cleared first, and a
    file shorter than its superblock says is reported as truncated."""
    sb = _superblock(path)
    if sb["flags"]:
        live = False
        try:
            check_not_in_use(path)
        except InputError:
            live = True
        if live:
            try:
                return h5py.File(path, "r", swmr=True)
            except (OSError, RuntimeError) as e:
                raise InputError(f"{path}: cannot open HDF5 file ({_one_line(e)})") from None
        if sb["base"] + sb["eoa"] > sb["size"] + _TRUNCATION_SLACK:
            raise InputError(f"{path}: truncated: {sb['size']:,} bytes, its superblock says "
                             f"{sb['base'] + sb['eoa']:,} (an incomplete copy, or a full disk?)")
        try:
            clear_status_flags(path)  # the writer was killed: make the file whole again
        except OSError:  # read-only: SWMR can read it as it is
            try:
                return h5py.File(path, "r", swmr=True)
            except (OSError, RuntimeError) as e:
                raise InputError(f"{path}: cannot open HDF5 file ({_one_line(e)})") from None
    elif sb["eoa"] is not None and sb["base"] + sb["eoa"] > sb["size"]:
        raise InputError(f"{path}: truncated: {sb['size']:,} bytes, its superblock says "
                         f"{sb['base'] + sb['eoa']:,} (an incomplete copy?)")
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: cannot open HDF5 file ({_one_line(e)})") from None


# A killed writer's superblock may name an end of file a little beyond what
# reached the disk (space allocated, data not yet written); more than this is
# a truncated file, whose metadata is gone.
_TRUNCATION_SLACK = _CHUNK_MAX_BYTES + (1 << 20)


class Run:
    """A run file opened by :func:`open_run` (lengths [µm], times [s]).

    Every time series is cut to its complete frames: ``S`` snapshots of ``n``
    stored vesicles (``ids`` gives their pool indices), ``T`` observations of
    the ``M`` cells and ``K`` cargo kinds.  Cells and parameters are read at
    open; per-vesicle arrays on first use, per-frame data on access, and
    :meth:`iter_vesicles` reads any of them in chunks of vesicles, so a run of
    10⁸ vesicles is never loaded whole.

    Tables: ``cell_table`` (pandas; x, y, z, radius, type, donor) and
    :meth:`cell_results` (per-cell uptake and dose).  Analyses (see
    :mod:`exodiff.analysis`), memoized per settings: :meth:`uptake_curves`,
    :meth:`dose`, :meth:`uptake_range`, :meth:`first_passage`, :meth:`msd`,
    :meth:`profile`, :meth:`mass_balance`."""

    def __init__(self, f, path):
        self._f = f
        self.path = Path(path)
        par = f["parameters"].attrs
        self.parameters = {k: (_text(v) if isinstance(v, (str, bytes)) else v) for k, v in par.items()}
        self.config_text = _text(par.get("config", ""))
        self.seed = int(par["seed"]) if "seed" in par else None
        self.dt = float(par["dt"]) if "dt" in par else math.nan
        self.backend = _text(par.get("backend", ""))
        self.device = _text(par.get("device", ""))
        self.exodiff_version = _text(par.get("exodiff_version", ""))

        ves = f["particles/vesicles"]
        box = ves["box"]
        edges = box["edges"]
        if isinstance(edges, h5py.Dataset):  # files written before edges became a series
            self.box_edges = edges[()]
        elif min(edges["step"].shape[0], edges["value"].shape[0]) > 0 and edges["step"][0] >= 0:
            self.box_edges = edges["value"][0]  # a complete frame
        else:
            self.box_edges = np.asarray(par["box_edges"], dtype=np.float64)
        self.faces = _names(box.attrs, "faces")
        self._ves = ves
        self.n_vesicles = int(ves.attrs.get("pool_size", ves["id"].shape[0]))
        self.species_names = _names(ves["species"].attrs, "names")

        c = f["particles/cells"]
        self.cells = Cells(c["position"][()], c["radius"][()], c["type"][()],
                           _names(c["type"].attrs, "names"))
        self.cargo_names = _names(f["observables/cells/cargo"].attrs, "names")

        self.has_positions = "position" in ves
        self._snap = {k: ves[k] for k in ("position", "image", "state", "cell") if k in ves}
        self._obs = {f"vesicles/{s}": f[f"observables/vesicles/{s}"] for s in STATE_NAMES}
        self._obs.update({f"cells/{k}": f[f"observables/cells/{k}"]
                          for k in ("bound", "internalized", "cargo")})
        self.n_snapshots = _complete_frames(list(self._snap.values()))
        self.n_observations = _complete_frames(list(self._obs.values()))
        self._check_shapes()

    def _check_shapes(self):
        """ValueError (open_run: InputError) when the arrays do not fit together."""
        M, n = len(self.cells), self._ves["id"].shape
        c = self.cells
        expect = {"cells/position": (np.shape(c.centers), (M, 3)), "cells/type": (np.shape(c.types), (M,)),
                  "vesicles/species": (self._ves["species"].shape, n),
                  "vesicles/radius": (self._ves["radius"].shape, n)}
        for name, g in self._snap.items():
            expect[f"vesicles/{name}"] = (g["value"].shape[1:2], n)
        for name in ("cells/bound", "cells/internalized"):
            expect[name] = (self._obs[name]["value"].shape[1:], (M,))
        for name, (got, want) in expect.items():
            if tuple(got) != tuple(want):
                raise ValueError(f"{name} has shape {tuple(got)}, expected {tuple(want)}")

    # --- completeness (a run may have been interrupted: see --resume)
    @cached_property
    def n_steps(self):
        """Steps of the whole run (None for files that do not say)."""
        n = self.parameters.get("n_steps")
        return None if n is None else int(n)

    @property
    def complete(self):
        """True when the run reached its last step: the final snapshot and
        observation are in the file (both schedules end on the last step)."""
        n = self.n_steps
        if n is None:
            return True  # not written by a driver that can stop early
        return (self.n_snapshots > 0 and int(self.snapshot_steps[-1]) == n
                and self.n_observations > 0 and int(self.observation_steps[-1]) == n)

    @property
    def full_state(self):
        """True when each snapshot holds the whole pool with positions, so a
        run can be resumed from it without a checkpoint."""
        return self.has_positions and not self.sampled

    # --- vesicle constants (read on first use: [n] arrays of a large run are big)
    @cached_property
    def ids(self):
        """int64[n] pool index of each stored vesicle."""
        return self._ves["id"][()]

    @cached_property
    def species(self):
        """int32[n] population index (into ``species_names``) of each stored vesicle."""
        return self._ves["species"][()]

    @cached_property
    def vesicle_radius(self):
        """float64[n] radius [µm] of each stored vesicle."""
        return self._ves["radius"][()]

    @property
    def n_stored(self):
        """n: vesicles whose snapshots are stored (N, or the sample size)."""
        return self._ves["id"].shape[0]

    @property
    def sampled(self):
        """True when snapshots hold a sample of the pool (n < N)."""
        return self.n_stored != self.n_vesicles

    # --- units, scenario, cells
    @cached_property
    def units(self):
        """Units of the stored quantities: {"length": "um", "time": "s"}."""
        t = self._snap["state"]["time"].attrs.get("unit", TIME_UNIT)
        c = self._f["particles/cells/position"].attrs.get("unit", LENGTH_UNIT)
        return {"length": _text(c), "time": _text(t)}

    @cached_property
    def duration(self):
        """Simulated duration [s] (the config's; else the last time written)."""
        if "duration" in self.parameters:
            return float(self.parameters["duration"])
        times = np.concatenate([self.snapshot_times, self.observation_times])
        return float(times.max()) if times.size else 0.0

    @cached_property
    def config(self):
        """The run's config as a validated :class:`exodiff.config.Config`,
        or None when it no longer validates here (e.g. a cells file that has
        moved)."""
        import tomllib
        from .config import parse_config
        try:
            return parse_config(tomllib.loads(self.config_text), source=str(self.path))
        except Exception:
            return None

    @cached_property
    def donor_types(self):
        """Names of the cell types that secrete vesicles (secretion_rate > 0)."""
        cfg = self.config
        if cfg is not None:
            return tuple(n for n, ct in cfg.cell_types.items() if ct.secretion_rate > 0)
        import tomllib
        try:
            types = tomllib.loads(self.config_text).get("cell_types", {})
        except Exception:
            return ()
        donors = []
        for name, table in types.items():
            rate = table.get("secretion_rate", 0) if isinstance(table, dict) else 0
            if isinstance(rate, str):
                head = rate.strip().split(" ")[0].split("/")[0]
                try:
                    rate = float(head)
                except ValueError:
                    rate = 0.0
            if rate > 0:
                donors.append(name)
        return tuple(donors)

    @cached_property
    def cell_table(self):
        """The cells as a pandas DataFrame indexed by cell (0..M-1): x, y, z,
        radius [µm], type (categorical name), donor (its type secretes)."""
        import pandas as pd
        c = self.cells
        names = list(c.type_names)
        df = pd.DataFrame({
            "x": c.centers[:, 0], "y": c.centers[:, 1], "z": c.centers[:, 2],
            "radius": c.radii,
            "type": pd.Categorical.from_codes(c.types, categories=names) if names
            else pd.Categorical([]),
            "donor": np.isin(c.types, [names.index(d) for d in self.donor_types if d in names]),
        })
        df.index.name = "cell"
        return df

    # --- snapshots
    @cached_property
    def snapshot_times(self):
        """[S] time of each snapshot [s]."""
        return self._snap["state"]["time"][: self.n_snapshots]

    @cached_property
    def snapshot_steps(self):
        """[S] step of each snapshot."""
        return self._snap["state"]["step"][: self.n_snapshots]

    def snapshot_index(self, time=None):
        """Index of the last snapshot at or before ``time`` [s] (None: the last)."""
        return _index_at(self.snapshot_times, time, self.path, "snapshot")

    def observation_index(self, time=None):
        """Index of the last observation at or before ``time`` [s] (None: the last)."""
        return _index_at(self.observation_times, time, self.path, "observation")

    def _frames(self, name, i, rows=None):
        if name not in self._snap:
            raise InputError(f"{self.path}: positions were not stored in this run")
        value = self._snap[name]["value"]
        S = self.n_snapshots
        rows = slice(None) if rows is None else rows
        if i is None:
            return value[:S, rows]
        i = operator.index(i)
        if not -S <= i < S:
            raise IndexError(f"snapshot {i} out of range: {self.path} has {S}")
        return value[i % S, rows]

    def positions(self, i=None, rows=None):
        """Positions [µm] wrapped into the box: frame ``i`` [n,3], or all
        [S,n,3]; ``rows`` (a slice of stored vesicles) reads only those."""
        return self._frames("position", i, rows)

    def images(self, i=None, rows=None):
        """Periodic image counts (int32): frame ``i`` [n,3], or all [S,n,3]."""
        return self._frames("image", i, rows)

    def unwrapped_positions(self, i=None, rows=None):
        """position + image * box_edges [µm]: frame ``i`` [n,3], or all [S,n,3]."""
        return self.positions(i, rows) + self.images(i, rows) * self.box_edges

    def states(self, i=None, rows=None):
        """States (int8, index into STATE_NAMES): frame ``i`` [n], or all [S,n]."""
        return self._frames("state", i, rows)

    def cell_of(self, i=None, rows=None):
        """Cell index of each stored vesicle (-1 if none): frame ``i`` [n], or all [S,n]."""
        return self._frames("cell", i, rows)

    @cached_property
    def milestones(self):
        """name -> [n] time [s] of birth, first binding, internalization and
        exit of each stored vesicle (NaN = never), as of the last snapshot.
        Reads all n rows; :meth:`iter_vesicles` reads them in chunks."""
        g = self._f["particles/vesicles/milestones"]
        return {name: g[name][()] for name in MILESTONE_NAMES if name in g}

    def iter_vesicles(self, fields=("state",), frames=None, chunk_size=None):
        """Read the stored vesicles in chunks of rows, never all at once.

        fields : names among "position", "image", "unwrapped" [µm], "state",
            "cell" (per snapshot), "id", "species", "radius" and the milestone
            names (fixed per vesicle)
        frames : a snapshot index (per-snapshot fields come as [r, ...]), a
            sequence of indices, or None for all snapshots ([F, r, ...])
        chunk_size : rows per chunk (default: about 64 MiB of data per chunk)

        Yields ``(rows, data)``: ``rows`` a slice of the stored vesicles and
        ``data`` field name -> array for those rows."""
        fields = tuple(fields)
        per_frame = {"position": 24, "image": 12, "unwrapped": 36, "state": 1, "cell": 4}
        fixed = {"id": 8, "species": 4, "radius": 8, **{m: 8 for m in MILESTONE_NAMES}}
        unknown = [f for f in fields if f not in per_frame and f not in fixed]
        if unknown:
            raise ValueError(f"iter_vesicles: unknown field {unknown[0]!r}; "
                             f"expected some of {(*per_frame, *fixed)}")
        S = self.n_snapshots
        if frames is None:
            sel, n_frames = slice(0, S), S
        elif isinstance(frames, (int, np.integer)):
            if not -S <= frames < S:
                raise IndexError(f"snapshot {frames} out of range: {self.path} has {S}")
            sel, n_frames = int(frames) % S, 1
        else:
            sel = sorted({int(i) % S for i in frames}) if S else []
            n_frames = len(sel)
        row_bytes = sum(per_frame[f] * max(n_frames, 1) for f in fields if f in per_frame) \
            + sum(fixed[f] for f in fields if f in fixed)
        if chunk_size is None:
            chunk_size = max(4096, (64 << 20) // max(row_bytes, 1))
        n = self.n_stored
        ms = self._ves["milestones"]
        for start in range(0, n, chunk_size):
            rows = slice(start, min(n, start + chunk_size))
            data = {}
            for f in fields:
                if f in fixed:
                    data[f] = (ms[f] if f in MILESTONE_NAMES else self._ves[f])[rows]
                    continue
                name = "position" if f == "unwrapped" else f
                if name not in self._snap:
                    raise InputError(f"{self.path}: positions were not stored in this run")
                if isinstance(sel, list) and not sel:
                    shape = self._snap[name]["value"].shape[2:]
                    data[f] = np.empty((0, rows.stop - rows.start, *shape),
                                       self._snap[name]["value"].dtype)
                    continue
                a = self._snap[name]["value"][sel, rows]
                if f == "unwrapped":
                    a = a + self._snap["image"]["value"][sel, rows] * self.box_edges
                data[f] = a
            yield rows, data

    # --- analyses (exodiff.analysis), computed on this run
    def _analysis(self, name, settings):
        """``analysis.<name>(**settings).compute(self)``, memoized per
        settings: the frames of an open Run are fixed, so a result holds."""
        key = (name, repr(sorted(settings.items())))
        cache = self.__dict__.setdefault("_analyses", {})
        if key not in cache:
            from . import analysis
            cache[key] = getattr(analysis, name)(**settings).compute(self)
        return cache[key]

    def uptake_curves(self, **settings):
        """:class:`exodiff.analysis.UptakeCurves` computed on this run."""
        return self._analysis("UptakeCurves", settings)

    def dose(self, **settings):
        """:class:`exodiff.analysis.Dose` computed on this run."""
        return self._analysis("Dose", settings)

    def uptake_range(self, **settings):
        """:class:`exodiff.analysis.UptakeRange` computed on this run."""
        return self._analysis("UptakeRange", settings)

    def first_passage(self, **settings):
        """:class:`exodiff.analysis.FirstPassage` computed on this run."""
        return self._analysis("FirstPassage", settings)

    def msd(self, **settings):
        """:class:`exodiff.analysis.MSD` computed on this run."""
        return self._analysis("MSD", settings)

    def profile(self, **settings):
        """:class:`exodiff.analysis.Profile` computed on this run."""
        return self._analysis("Profile", settings)

    def mass_balance(self, **settings):
        """:class:`exodiff.analysis.MassBalance` computed on this run."""
        return self._analysis("MassBalance", settings)

    def cell_results(self, time=None):
        """Per-cell results at observation ``time`` [s] (None: the last) as a
        DataFrame: the cell table plus bound, internalized, taken_up, cargo
        per kind and the distance to the nearest donor cell [µm]."""
        from .analysis import cell_results
        return cell_results(self, time)

    # --- observations
    def _obs_value(self, name):
        return self._obs[name]["value"][: self.n_observations]

    @cached_property
    def observation_times(self):
        """[T] time of each observation [s]."""
        return self._obs["cells/bound"]["time"][: self.n_observations]

    @cached_property
    def observation_steps(self):
        """[T] step of each observation."""
        return self._obs["cells/bound"]["step"][: self.n_observations]

    @cached_property
    def counts(self):
        """state name -> int64[T] number of vesicles in that state."""
        return {s: self._obs_value(f"vesicles/{s}") for s in STATE_NAMES}

    @cached_property
    def bound_per_cell(self):
        """int32[T,M] vesicles bound to each cell."""
        return self._obs_value("cells/bound")

    @cached_property
    def internalized_per_cell(self):
        """int32[T,M] vesicles internalized by each cell so far."""
        return self._obs_value("cells/internalized")

    @cached_property
    def cargo_per_cell(self):
        """float64[T,M,K] cargo delivered to each cell so far (K = cargo_names)."""
        return self._obs_value("cells/cargo")

    def _cell_mask(self, cell_type):
        if cell_type is None:
            return np.ones(len(self.cells), dtype=bool)
        names = self.cells.type_names
        if isinstance(cell_type, str):
            if cell_type not in names:
                raise InputError(f"{self.path}: no cell type {cell_type!r} (types: {', '.join(names)})")
            cell_type = names.index(cell_type)
        elif not 0 <= operator.index(cell_type) < len(names):
            raise InputError(f"{self.path}: no cell type {cell_type} (there are {len(names)})")
        return self.cells.types == cell_type

    def uptake(self, cell_type=None):
        """(times[T] [s], bound[T], internalized[T]) summed over the cells of
        ``cell_type`` (a name or index; None = all cells), int64."""
        mask = self._cell_mask(cell_type)
        bound = self.bound_per_cell[:, mask].sum(axis=1, dtype=np.int64)
        internalized = self.internalized_per_cell[:, mask].sum(axis=1, dtype=np.int64)
        return self.observation_times, bound, internalized

    def uptake_by_type(self):
        """cell type name -> (bound[T], internalized[T]) summed over its cells."""
        return {name: self.uptake(name)[1:] for name in self.cells.type_names}

    # --- summary
    def summary_text(self):
        """Multi-line human summary (``exodiff info``).  InputError when the
        file turns out damaged (data that cannot be read)."""
        try:
            return self._summary_text()
        except (OSError, KeyError, ValueError, IndexError) as e:
            raise InputError(f"{self.path}: damaged run file ({_one_line(e)})") from None

    def _summary_text(self):
        S, T, M = self.n_snapshots, self.n_observations, len(self.cells)
        lines = [f"{self.path}",
                 f"  exodiff {self.exodiff_version}, backend {self.backend}"
                 + (f" on {self.device}" if self.device else "")
                 + f", seed {self.seed}, dt {_fmt_time(self.dt)}"]
        stored = "positions not stored" if not self.has_positions else "positions stored"
        if self.n_stored != self.n_vesicles:
            stored += f" for a sample of {self.n_stored}"
        lines.append(f"  vesicles: {self.n_vesicles} in the pool ({stored});"
                     f" species: {', '.join(self.species_names) or '-'}")
        per_type = ", ".join(f"{name} {int(np.sum(self.cells.types == k))}"
                             for k, name in enumerate(self.cells.type_names))
        lines.append(f"  cells: {M}" + (f" ({per_type})" if M else ""))
        times = np.concatenate([self.snapshot_times, self.observation_times])
        covered = (f"{_fmt_time(times.min())} to {_fmt_time(times.max())}"
                   if times.size else "nothing yet")
        lines.append(f"  time covered: {covered}; {S} snapshots, {T} observations")
        if not self.complete:
            last = max([int(x[-1]) for x in (self.snapshot_steps, self.observation_steps) if x.size],
                       default=0)
            lines.append(f"  incomplete: stopped after step {last} of {self.n_steps} (interrupted, "
                         f"or still running); continue it with "
                         f"{self.resume_command()}")
        if T == 0:
            lines.append("  no observations")
            return "\n".join(lines)
        t_end = _fmt_time(self.observation_times[-1])
        lines.append(f"  counts at t = {t_end}: "
                     + ", ".join(f"{s} {int(self.counts[s][-1])}" for s in STATE_NAMES))
        lines.append(f"  uptake per cell type at t = {t_end} (bound, internalized; cargo delivered):")
        last_cargo = self.cargo_per_cell[-1]
        for k, name in enumerate(self.cells.type_names):
            mask = self.cells.types == k
            b = int(self.bound_per_cell[-1, mask].sum())
            i = int(self.internalized_per_cell[-1, mask].sum())
            cargo = "".join(f", {c} {last_cargo[mask, j].sum():g}"
                            for j, c in enumerate(self.cargo_names))
            role = " (donor)" if name in self.donor_types else ""
            lines.append(f"    {name}{role}: bound {b}, internalized {i}{cargo}")
        return "\n".join(lines)

    def resume_command(self):
        """The command line that continues this run: the config file and
        ``--set`` options it was started with (CONFIG for files that did
        not record them)."""
        import json
        import shlex
        cmd = ["exodiff", "run", self.parameters.get("config_path") or "CONFIG", "-o", str(self.path)]
        for item in json.loads(self.parameters.get("overrides") or "[]"):
            cmd += ["--set", item]
        return shlex.join(cmd + ["--resume"])

    def __repr__(self):
        return (f"<exodiff Run {str(self.path)!r}: {self.n_vesicles} vesicles, "
                f"{len(self.cells)} cells, {self.n_snapshots} snapshots, "
                f"{self.n_observations} observations>")

    def close(self):
        """Close the file (idempotent)."""
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _index_at(times, time, path, what):
    """Index of the last of ``times`` at or before ``time`` (None: the last)."""
    if times.size == 0:
        raise InputError(f"{path}: no {what} written yet")
    if time is None:
        return times.size - 1
    k = int(np.searchsorted(times, float(time) + 1e-9 * max(1.0, abs(float(time))), side="right")) - 1
    if k < 0:
        raise InputError(f"{path}: no {what} at or before t = {float(time):g} s "
                         f"(the first is at {times[0]:g} s)")
    return k


def _fmt_time(t):
    """``7200 s (2 h)``: seconds, with a larger unit when it reads better."""
    t = float(t)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(t) >= size:
            return f"{t:g} s ({t / size:.3g} {unit})"
    return f"{t:g} s"


# ------------------------------------------------- recovery after a crash


def clear_status_flags(path):
    """Clear the "open for write" flags that a killed writer leaves in the
    superblock (what HDF5's ``h5clear -s`` does), so that non-SWMR readers
    (plain h5py, check_h5md.py, MDAnalysis) open the file.  Only for a file
    whose writer is dead.  Returns True when flags were cleared."""
    path = Path(path)
    sb = _superblock(path)
    if sb["version"] < 2 or sb["flags"] == 0:
        return False  # superblocks before version 2 keep no such flags
    with open(path, "r+b") as fh:
        raw = bytearray(sb["raw"])
        raw[11] = 0
        raw[-4:] = struct.pack("<I", _lookup3(bytes(raw[:-4])))
        fh.seek(sb["base"])
        fh.write(raw)
        # A killed writer may have recorded an end of file beyond what reached
        # the disk; non-SWMR readers refuse such a file, so pad it.
        if sb["base"] + sb["eoa"] > sb["size"]:
            fh.truncate(sb["base"] + sb["eoa"])
    return True


def _superblock(path):
    """The HDF5 superblock of ``path``: base (byte offset), version, flags
    (status flags, version >= 2), eoa (end-of-file address the library
    recorded, None before version 2), size (of the file now) and raw (the
    version >= 2 superblock's bytes).  InputError when there is none or it
    is cut short."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        base = _find_superblock(fh)
        if base is None:
            raise InputError(f"{path}: not an HDF5 file")
        fh.seek(base)
        head = fh.read(12)
        if len(head) < 12:
            raise InputError(f"{path}: damaged HDF5 file (cut short in its superblock)")
        version, offset_size = head[8], head[9]
        info = {"base": base, "version": version, "flags": 0, "eoa": None, "size": size, "raw": b""}
        if version < 2:
            return info
        if offset_size not in (2, 4, 8):
            raise InputError(f"{path}: damaged HDF5 file (superblock offset size {offset_size})")
        fh.seek(base)
        raw = fh.read(12 + 4 * offset_size + 4)
        if len(raw) < 12 + 4 * offset_size + 4:
            raise InputError(f"{path}: damaged HDF5 file (cut short in its superblock)")
        info.update(flags=head[11], raw=raw,
                    eoa=int.from_bytes(raw[12 + 2 * offset_size: 12 + 3 * offset_size], "little"))
        return info


def _one_line(exc):
    return " ".join(str(exc).split())


class RunLock:
    """An advisory ``flock`` on a run file (module docstring, "Resume"):
    shared while a writer writes it, exclusive while ``--resume`` or
    ``--overwrite`` makes sure that no writer is alive.  Raises InputError
    when another process holds it the other way, unless ``wait``.  Where
    flock is missing or unsupported it locks nothing."""

    def __init__(self, path, exclusive, wait=False):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise InputError(f"{self.path}: cannot open ({e.strerror or e})") from None
        if fcntl is None:
            return
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, op)
        except BlockingIOError:
            self.close()
            raise InputError(f"{self.path}: in use by another process (an exodiff run still "
                             f"writing it, or a program that has it open)") from None
        except OSError:  # a file system without flock: go on unlocked
            pass

    def share(self):
        """Turn an exclusive lock into a shared one."""
        if fcntl is not None and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
            except OSError:
                pass

    def fsync(self):
        """Write the file's data to the disk (fsync on our descriptor: the
        kernel syncs the file, whoever wrote it)."""
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def check_not_in_use(path):
    """InputError when a live writer (or another resume) holds ``path``."""
    RunLock(path, exclusive=True).close()


# ---------------------------------------------------------- checkpoint file

CHECKPOINT_SUFFIX = ".checkpoint"
CHECKPOINT_FORMAT = "exodiff checkpoint 1"


def checkpoint_path(path):
    """The checkpoint file of the run file ``path``: ``PATH.checkpoint``."""
    return Path(os.fspath(path) + CHECKPOINT_SUFFIX)


def write_checkpoint(path, *, step, time, arrays, attrs, index=0):
    """Save the full state of the run written to ``path`` at ``step``
    (time [s]) as ``PATH.checkpoint``: ``arrays`` name -> array, ``attrs``
    name -> str or number (what the state belongs to: config, version).

    Atomic: written as ``.part``, synced to disk, renamed over the previous
    one, directory synced; a kill at any moment leaves the old or the new
    checkpoint, whole.  ``index`` numbers the call for :func:`fault_point`."""
    final = checkpoint_path(path)
    tmp = final.with_name(final.name + ".part")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["step"] = np.int64(step)
            f.attrs["time"] = float(time)
            for key, value in attrs.items():
                f.attrs[key] = value
            for key, a in arrays.items():
                f.create_dataset(key, data=np.asarray(a))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fault_point("checkpoint", index)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_checkpoint(path):
    """The checkpoint of the run file ``path`` as a dict (``step``, ``time``,
    ``attrs``, ``arrays``), or None when there is none.  InputError, naming
    the reason, when it exists but cannot be read."""
    ck = checkpoint_path(path)
    if not ck.exists():
        return None
    try:
        with h5py.File(ck, "r") as f:
            attrs = {k: (_text(v) if isinstance(v, (str, bytes)) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{ck}: not an exodiff checkpoint")
            arrays = {k: f[k][()] for k in f}
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{ck}: unreadable checkpoint ({_one_line(e)})") from None
    attrs.pop("format")
    return {"step": int(attrs.pop("step")), "time": float(attrs.pop("time")),
            "attrs": attrs, "arrays": arrays}


def remove_checkpoint(path):
    """Delete the checkpoint of the run file ``path`` (and a partial one)."""
    ck = checkpoint_path(path)
    for p in (ck, ck.with_name(ck.name + ".part")):
        p.unlink(missing_ok=True)


# ----------------------------------------------- fault injection (tests only)


def fault_point(event, index):
    """Test-only fault injection, inert unless the environment asks for it:
    with ``EXODIFF_TEST_KILL_AT="EVENT:INDEX"`` the process SIGKILLs itself at
    that point, as a power cut would stop it.  Points: ``snapshot:K`` while
    writing snapshot frame K of the file (values and milestones written, the
    frame not yet complete); ``chunk:S`` after the first chunk of steps that
    reaches step S or beyond (state advanced, its frames not yet written);
    ``checkpoint:K`` after writing this process' K-th checkpoint (1, 2, ...)
    but before it replaces the previous one.  Used by tests/test_resume.py."""
    spec = os.environ.get("EXODIFF_TEST_KILL_AT")
    if spec and spec.partition(":")[0] == event:
        at = int(spec.partition(":")[2])
        if index == at or (event == "chunk" and index >= at):
            os.kill(os.getpid(), signal.SIGKILL)


def fault_trace(line):
    """Test-only: with ``EXODIFF_TEST_TRACE=FILE``, append ``line`` to FILE
    (e.g. "snapshot 200" once that snapshot is complete), so a test that
    kills the process knows what was finished before the kill."""
    trace = os.environ.get("EXODIFF_TEST_TRACE")
    if trace:
        with open(trace, "a") as fh:
            fh.write(line + "\n")


_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _find_superblock(fh):
    """Byte offset of the superblock (0, 512, 1024, 2048, ...), or None."""
    end = fh.seek(0, os.SEEK_END)
    offset = 0
    while offset + 8 <= end:
        fh.seek(offset)
        if fh.read(8) == _SIGNATURE:
            return offset
        offset = 512 if offset == 0 else 2 * offset
    return None


def _lookup3(data, initval=0):
    """Bob Jenkins' lookup3 ``hashlittle``, HDF5's metadata checksum
    (H5_checksum_lookup3)."""
    mask = 0xFFFFFFFF

    def rot(x, k):
        return ((x << k) | (x >> (32 - k))) & mask

    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & mask
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<3I", data, i)
        a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
        a = ((a - c) & mask) ^ rot(c, 4);  c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 6);  a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 8);  b = (b + a) & mask
        a = ((a - c) & mask) ^ rot(c, 16); c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 19); a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 4);  b = (b + a) & mask
        i += 12
    if n == i:
        return c
    # The last 1..12 bytes, zero-padded (adding zero bytes changes nothing).
    x, y, z = struct.unpack("<3I", data[i:].ljust(12, b"\0"))
    a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
    c ^= b; c = (c - rot(b, 14)) & mask
    a ^= c; a = (a - rot(c, 11)) & mask
    b ^= a; b = (b - rot(a, 25)) & mask
    c ^= b; c = (c - rot(b, 16)) & mask
    a ^= c; a = (a - rot(c, 4)) & mask
    b ^= a; b = (b - rot(a, 14)) & mask
    c ^= b; c = (c - rot(b, 24)) & mask
    return c
