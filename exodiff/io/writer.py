"""Writing a run file (layout: exodiff/io/layout.py).

Crash safety: the file is built under ``PATH.part`` with every group, dataset
and attribute created up front, switched to SWMR mode and only then renamed
to ``PATH``, so ``PATH`` is always a valid SWMR file.  Each frame writes its
``value`` rows, flushes, then extends and writes ``time`` and ``step`` and
flushes again: a series' complete frames are those whose ``step`` and
``time`` are written (their fill values are -1 and NaN).  The reader
truncates every series to its complete frames, so a run killed at any moment
reads back every frame finished before the kill.  A killed writer leaves the
superblock's "open for write" flags set, which only SWMR readers accept
(``open_run`` is one); :func:`~exodiff.io.recovery.clear_status_flags`
clears them for other tools.

The fate table and the milestones are written whole at each snapshot (the
reader cuts their event times back to the last complete snapshot), but only
the columns that changed since the file last got them: each is created empty,
reading as its fill value ("did not happen"), and a digest of what the file
holds tells which to rewrite, so a snapshot compresses no unchanged column.

Resume: :meth:`RunWriter.reopen` cuts every series back to the step the run
goes on from (exodiff/io/checkpoint.py says which) and goes on appending;
frames after it are written again, identically.  A writer holds a shared
:class:`~exodiff.io.recovery.RunLock` on ``PATH`` while it writes.
"""
from __future__ import annotations

import getpass
import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from .. import probes
from ..errors import InputError
from ..formats import one_line
from ..kernels.constants import FACE_KINDS, STATE_NAMES
from ..kernels.state import FIELDS
from .checkpoint import remove_checkpoint
from .layout import (CELL_PROPERTY_UNITS, COMPRESSIONS, DESTINATION_SERIES, FATE_COLUMNS, INITIAL_DONOR,
                     LENGTH_UNIT, MILESTONE_NAMES, SNAPSHOT_STATE, TIME_UNIT, complete_frames, names_attr,
                     value_chunks)
from .recovery import RunLock, clear_status_flags


class _Series:
    """One H5MD time-dependent element under ``parent/name``: ``step[F]``
    int64, ``time[F]`` float64 [s] and ``value[F, *frame_shape]``, all
    growing along their first axis, ``F`` frames written so far."""

    def __init__(self, parent, name, frame_shape, dtype, *, unit=None,
                 compression=None, hint=1):
        self.group = parent.create_group(name)
        clock_chunks = value_chunks((), 8, hint)
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
            chunks=value_chunks(frame_shape, dtype.itemsize, hint),
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
    n = complete_frames([s.group for s in series])
    if n:
        n = int(np.searchsorted(series[0].step[:n], last_step, side="right"))
    for s in series:
        for ds in (s.step, s.time, s.value):
            if ds.shape[0] != n:
                ds.resize(n, axis=0)
        s.frames = n
    return n


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
    origin : [N] donor cell of each vesicle, -1 for those present at t = 0
        (None: all -1)
    cell_properties : name -> [M] or [M, P] per-cell values stored under
        /particles/cells (kappa [µm/s], capacity, secretion_rate [1/s] per
        population), or None
    cargo_names : K cargo names (the last axis of ``cargo`` in write_observation)
    cargo_per_vesicle : [S, K] cargo of one vesicle of each species (None: not stored)
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
                 origin=None, cell_properties=None, extra_parameters=None, author=None,
                 cargo_per_vesicle=None):
        self.path = Path(path)
        box_edges = _array(box_edges, (3,), np.float64, "box_edges")
        if not np.all(box_edges > 0):
            raise ValueError(f"box_edges: {box_edges}, expected positive lengths")
        boundary = tuple(str(b) for b in boundary)
        if len(boundary) != 6 or any(b not in FACE_KINDS for b in boundary):
            raise ValueError(f"boundary: {boundary}, expected 6 of {tuple(FACE_KINDS)}")
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
        origin = np.full(N, -1, np.int32) if origin is None else _array(origin, (N,), np.int32, "origin")
        if N and not (-1 <= origin.min() and origin.max() < M):
            raise ValueError("origin: index outside the cells (or -1)")
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
        self.n_species = len(species_names)
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
            box.attrs["boundary"] = names_attr("periodic" if p else "none" for p in periodic)
            box.attrs["faces"] = names_attr(boundary)
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
            self._state.group.attrs["state_names"] = names_attr(STATE_NAMES)
            self._cell = _Series(ves, "cell", (n,), np.int32, **big)
            self._snapshot_series = [s for s in (self._position, self._image, self._state, self._cell,
                                                 self._edges) if s is not None]

            fixed = dict(compression=comp, shuffle=comp is not None) if n else {}
            ves.create_dataset("id", data=ids, **fixed)
            sp = ves.create_dataset("species", data=self._take(species), **fixed)
            sp.attrs["names"] = names_attr(species_names)
            ves.create_dataset("radius", data=self._take(vesicle_radius), **fixed).attrs["unit"] = LENGTH_UNIT
            ms = ves.create_group("milestones")
            self._milestones = {}
            # Columns that start as their fill value are created empty:
            # HDF5 reads unwritten storage as the fill value, and nothing
            # is compressed for them until a snapshot changes them.
            for name in MILESTONE_NAMES:
                ds = ms.create_dataset(name, shape=(n,), dtype=np.float64, fillvalue=np.nan, **fixed)
                ds.attrs["unit"] = TIME_UNIT
                self._milestones[name] = ds

            fates = f.create_group("fates")
            fixed = dict(compression=comp, shuffle=comp is not None) if N else {}
            fates.create_dataset("species", data=species, **fixed).attrs["names"] = names_attr(species_names)
            fates.create_dataset("origin", data=origin, **fixed)
            self._fates, self._fate_digests = {}, {}
            for name, (dtype, fill) in FATE_COLUMNS.items():
                ds = fates.create_dataset(name, shape=(N,), dtype=dtype, fillvalue=fill, **fixed)
                if name.endswith("_time"):
                    ds.attrs["unit"] = TIME_UNIT
                self._fates[name] = ds
                self._fate_digests[name] = _digest(np.full(N, fill, dtype=dtype))

            cells = particles.create_group("cells")
            cells.create_dataset("position", data=cell_centers).attrs["unit"] = LENGTH_UNIT
            cells.create_dataset("radius", data=cell_radii).attrs["unit"] = LENGTH_UNIT
            cells.create_dataset("type", data=cell_types).attrs["names"] = names_attr(cell_type_names)
            cells["box"] = box  # hard link: one box for both groups
            for name, value in (cell_properties or {}).items():
                value = np.asarray(value)
                if value.shape[:1] != (M,):
                    raise ValueError(f"cell_properties[{name!r}]: shape {value.shape}, expected ({M}, ...)")
                ds = cells.create_dataset(name, data=value)
                if name in CELL_PROPERTY_UNITS:
                    ds.attrs["unit"] = CELL_PROPERTY_UNITS[name]
                if value.ndim == 2:
                    ds.attrs["names"] = names_attr(species_names)
            self._state_series = {}
            for name in SNAPSHOT_STATE:
                per_vesicle = FIELDS[name].per_vesicle
                self._state_series[name] = _Series(
                    ves if per_vesicle else cells, name, (n if per_vesicle else M,), FIELDS[name].dtype,
                    unit=TIME_UNIT if name == "bound_duration" else None, **big)
            self._snapshot_series += list(self._state_series.values())

            obs_v = f.create_group("observables/vesicles")
            small = dict(hint=n_observations_hint)
            self._counts = [_Series(obs_v, s, (), np.int64, **small) for s in STATE_NAMES]
            obs_c = f.create_group("observables/cells")
            big = dict(compression=comp, hint=n_observations_hint)
            self._bound = _Series(obs_c, "bound", (M, self.n_species), np.int32, **big)
            self._internalized = _Series(obs_c, "internalized", (M, self.n_species), np.int32, **big)
            for s in (self._bound, self._internalized):
                s.group.attrs["species"] = names_attr(species_names)
            self._cargo = _Series(obs_c, "cargo", (M, self.n_cargo), np.float64, **big)
            self._cargo.group.attrs["names"] = names_attr(cargo_names)
            if cargo_per_vesicle is not None:
                self._cargo.group.attrs["per_vesicle"] = _array(
                    cargo_per_vesicle, (self.n_species, self.n_cargo), np.float64, "cargo_per_vesicle")
            self._destinations = _destination_series(obs_c, M, species_names, cell_type_names, big)
            self._observation_series = [*self._counts, self._bound, self._internalized, self._cargo,
                                        *self._destinations.values()]

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
                raise InputError(f"{path}: cannot reopen to resume ({one_line(e)})") from None
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
            raise InputError(f"{path}: cannot resume this file ({one_line(e)})") from None
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
        self.n_species = f["observables/cells/bound/value"].shape[2]
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
        self._state_series = {name: series((ves if FIELDS[name].per_vesicle else f["particles/cells"])[name])
                              for name in SNAPSHOT_STATE}
        self._snapshot_series += list(self._state_series.values())
        self._milestones = {name: ves["milestones"][name] for name in MILESTONE_NAMES}
        self._fates = {name: f["fates"][name] for name in FATE_COLUMNS}
        self._fate_digests = {}  # what the file holds is unknown: each column is written once
        obs_v, obs_c = f["observables/vesicles"], f["observables/cells"]
        self._counts = [series(obs_v[s]) for s in STATE_NAMES]
        self._bound, self._internalized = series(obs_c["bound"]), series(obs_c["internalized"])
        self._cargo = series(obs_c["cargo"])
        self._destinations = {name: series(obs_c[name]) for name in DESTINATION_SERIES}
        self._observation_series = [*self._counts, self._bound, self._internalized, self._cargo,
                                    *self._destinations.values()]
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

    def write_observation(self, step, time, state_counts, bound, internalized, cargo,
                          destinations=None):
        """Append one observation at ``step`` (time [s]): ``state_counts``
        vesicles per state (order STATE_NAMES), ``bound[M,S]`` and
        ``internalized[M,S]`` vesicles per cell and species, ``cargo[M,K]``
        cargo of the internalized vesicles (in endosomes) of each cell, and
        ``destinations`` (layout.DESTINATION_SERIES): ``delivered[M,S,D]``
        (in the cytosol, per species and donor type), ``fused[M,S]``,
        ``degraded[M,S]``, ``bound_steps[M]``; None: all zero (a run in
        which no vesicle bound, reached the cytosol or was degraded)."""
        M, K, S = self.n_cells, self.n_cargo, self.n_species
        counts = _array(state_counts, (len(STATE_NAMES),), np.int64, "state_counts")
        for series, c in zip(self._counts, counts):
            series.write_value(c)
        self._bound.write_value(_array(bound, (M, S), np.int32, "bound"))
        self._internalized.write_value(_array(internalized, (M, S), np.int32, "internalized"))
        self._cargo.write_value(_array(cargo, (M, K), np.float64, "cargo"))
        for name, series in self._destinations.items():
            shape = series.value.shape[1:]
            value = np.zeros(shape) if destinations is None else destinations[name]
            series.write_value(_array(value, shape, series.value.dtype, name))
        self._complete(self._observation_series, step, time)

    def write_snapshot(self, step, time, position, image, state, cell, fates, state_series=None):
        """Append one snapshot at ``step`` (time [s]) of the full pool:
        ``position[N,3]`` [µm] and ``image[N,3]`` (ignored, may be None, when
        positions are not written), ``state[N]`` (constants.VesicleState),
        ``cell[N]`` (-1 if none), ``fates`` name -> [N] for every name in
        FATE_COLUMNS (layout.no_fates: nothing happened) and
        ``state_series`` name -> [N] or [M] for every name in
        layout.SNAPSHOT_STATE (None: their initial values).  Only the rows of
        the stored vesicles are written, except the fate table: all N."""
        N = self.n_vesicles
        if self._position is not None:
            self._position.write_value(self._take(_array(position, (N, 3), np.float64, "position")))
            self._image.write_value(self._take(_array(image, (N, 3), np.int32, "image")))
        self._state.write_value(self._take(_array(state, (N,), np.int8, "state")))
        self._cell.write_value(self._take(_array(cell, (N,), np.int32, "cell")))
        self._edges.write_value(self._box_edges)
        for name, series in self._state_series.items():
            f = FIELDS[name]
            size = self.n_vesicles if f.per_vesicle else self.n_cells
            value = np.full(size, f.initial, f.dtype) if state_series is None else state_series[name]
            value = _array(value, (size,), f.dtype, name)
            series.write_value(self._take(value) if f.per_vesicle else value)
        for name, (dtype, _) in FATE_COLUMNS.items():
            column = _array(fates[name], (N,), dtype, name)
            # Most columns change in few snapshots; writing one means
            # compressing all N values, hashing it costs a fraction of that.
            digest = _digest(column)
            if self._fate_digests.get(name) == digest:
                continue
            self._fate_digests[name] = digest
            self._fates[name][...] = column
            if name in self._milestones:
                self._milestones[name][...] = self._take(column)
        probes.reach("snapshot", self._state.frames)
        self._complete(self._snapshot_series, step, time)
        probes.reach("snapshot done", int(step))

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


def _digest(column):
    """The SHA-256 digest of a fate column's bytes: equal digests
    mean the file already holds the column."""
    return hashlib.sha256(np.ascontiguousarray(column).view(np.uint8)).digest()


def _destination_series(obs_c, M, species_names, cell_type_names, options):
    """The series of layout.DESTINATION_SERIES under /observables/cells."""
    S, D = len(species_names), len(cell_type_names) + 1
    out = {"delivered": _Series(obs_c, "delivered", (M, S, D), np.int32, **options),
           "fused": _Series(obs_c, "fused", (M, S), np.int32, **options),
           "degraded": _Series(obs_c, "degraded", (M, S), np.int32, **options),
           "bound_steps": _Series(obs_c, "bound_steps", (M,), np.int64, **options)}
    for name in ("delivered", "fused", "degraded"):
        out[name].group.attrs["species"] = names_attr(species_names)
    out["delivered"].group.attrs["donor_types"] = names_attr([*cell_type_names, INITIAL_DONOR])
    return out


def _login_name():
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"
