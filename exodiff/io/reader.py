"""Reading a run file (layout: exodiff/io/layout.py): :func:`open_run`
gives a :class:`Run`, which reads what is asked of it, when asked, also
while the run is still being written.

The reader knows the file, not the science: analyses
(exodiff/analysis.py) build on its public methods.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..formats import one_line
from ..kernels.constants import STATE_NAMES
from ..kernels.state import FIELDS
from ..tomlfile import parse_toml
from . import summary
from .layout import (CHUNK_MAX_BYTES, FATE_CELL_TIMES, FATE_COLUMNS, LENGTH_UNIT, MILESTONE_NAMES,
                     SNAPSHOT_STATE, TIME_UNIT, complete_frames, names, text)

CELL_SNAPSHOT_STATE = tuple(k for k in SNAPSHOT_STATE if not FIELDS[k].per_vesicle)
from .recovery import check_not_in_use, clear_status_flags, superblock


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



_REQUIRED = ("parameters", "particles/vesicles/box/edges", "particles/vesicles/state",
             "particles/vesicles/cell", "particles/vesicles/id", "particles/cells/position",
             "observables/vesicles", "observables/cells/bound")


def open_run(path, run_class=None):
    """Open a run file read-only (also while it is being written) as a
    :class:`Run` (or as ``run_class``, a subclass of it).

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
        raise InputError(f"{path}: cannot read ({getattr(e, 'strerror', None) or one_line(e)})") from None
    if not hdf5:
        raise InputError(f"{path}: not an HDF5 file")
    try:
        f = _open_read(path)
    except OSError as e:  # reading the superblock, clearing flags
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        creator = f.get("h5md/creator")
        if creator is None or text(creator.attrs.get("name", "")) != "exodiff":
            raise InputError(f"{path}: not an exodiff run file (no /h5md/creator named 'exodiff')")
        missing = [name for name in _REQUIRED if name not in f]
        if missing:
            raise InputError(f"{path}: not a complete exodiff run file (missing /{missing[0]})")
        return (run_class or Run)(f, path)
    except InputError:
        f.close()
        raise
    except (KeyError, OSError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        # a damaged file: truncated, or links and datasets of the wrong kind
        f.close()
        raise InputError(f"{path}: not a readable exodiff run file ({one_line(e)})") from None


def _open_read(path):
    """h5py.File for reading ``path``.

    A file whose writer is alive (it holds the RunLock) is read in SWMR
    mode, the only way to read it while it is written.  Otherwise SWMR is
    avoided: on damaged metadata an SWMR reader retries, with back-off, for
    minutes; a plain reader fails at once.  So the status flags that a killed
    writer leaves (which only SWMR readers accept) are cleared first, and a
    file shorter than its superblock says is reported as truncated."""
    sb = superblock(path)
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
                raise InputError(f"{path}: cannot open HDF5 file ({one_line(e)})") from None
        if sb["base"] + sb["eoa"] > sb["size"] + _TRUNCATION_SLACK:
            raise InputError(f"{path}: truncated: {sb['size']:,} bytes, its superblock says "
                             f"{sb['base'] + sb['eoa']:,} (an incomplete copy, or a full disk?)")
        try:
            clear_status_flags(path)  # the writer was killed: make the file whole again
        except OSError:  # read-only: SWMR can read it as it is
            try:
                return h5py.File(path, "r", swmr=True)
            except (OSError, RuntimeError) as e:
                raise InputError(f"{path}: cannot open HDF5 file ({one_line(e)})") from None
    elif sb["eoa"] is not None and sb["base"] + sb["eoa"] > sb["size"]:
        raise InputError(f"{path}: truncated: {sb['size']:,} bytes, its superblock says "
                         f"{sb['base'] + sb['eoa']:,} (an incomplete copy?)")
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: cannot open HDF5 file ({one_line(e)})") from None


# A killed writer's superblock may name an end of file a little beyond what
# reached the disk (space allocated, data not yet written); more than this is
# a truncated file, whose metadata is gone.
_TRUNCATION_SLACK = CHUNK_MAX_BYTES + (1 << 20)


class Run:
    """A run file opened by :func:`open_run` (lengths [µm], times [s]).

    Every time series is cut to its complete frames: ``S`` snapshots of ``n``
    stored vesicles (``ids`` gives their pool indices), ``T`` observations of
    the ``M`` cells and ``K`` cargo kinds.  Cells and parameters are read at
    open; per-vesicle arrays on first use, per-frame data on access, and
    :meth:`iter_vesicles` reads any of them in chunks of vesicles, so a run of
    10⁸ vesicles is never loaded whole.

    ``cell_table`` gives the cells as a pandas table (x, y, z, radius, type,
    donor).  Analyses come with :func:`exodiff.analysis.open_run` (the same
    run, with analysis methods such as ``run.dose()``)."""

    def __init__(self, f, path):
        self._f = f
        self.path = Path(path)
        par = f["parameters"].attrs
        self.parameters = {k: (text(v) if isinstance(v, (str, bytes)) else v) for k, v in par.items()}
        self.config_text = text(par.get("config", ""))
        self.seed = int(par["seed"]) if "seed" in par else None
        self.dt = float(par["dt"]) if "dt" in par else math.nan
        self.backend = text(par.get("backend", ""))
        self.device = text(par.get("device", ""))
        self.exodiff_version = text(par.get("exodiff_version", ""))

        ves = f["particles/vesicles"]
        box = ves["box"]
        edges = box["edges"]
        if isinstance(edges, h5py.Dataset):  # files written before edges became a series
            self.box_edges = edges[()]
        elif min(edges["step"].shape[0], edges["value"].shape[0]) > 0 and edges["step"][0] >= 0:
            self.box_edges = edges["value"][0]  # a complete frame
        else:
            self.box_edges = np.asarray(par["box_edges"], dtype=np.float64)
        self.faces = names(box.attrs, "faces")
        self._ves = ves
        self.n_vesicles = int(ves.attrs.get("pool_size", ves["id"].shape[0]))
        self.species_names = names(ves["species"].attrs, "names")

        c = f["particles/cells"]
        self.cells = Cells(c["position"][()], c["radius"][()], c["type"][()],
                           names(c["type"].attrs, "names"))
        self.cargo_names = names(f["observables/cells/cargo"].attrs, "names")

        self.has_positions = "position" in ves
        self._snap = {k: ves[k] for k in ("position", "image", "state", "cell") if k in ves}
        # SNAPSHOT_STATE series (exodiff ≥ 0.4), per vesicle or per cell
        for k in SNAPSHOT_STATE:
            group = c if k in CELL_SNAPSHOT_STATE else ves
            if k in group:
                self._snap[k] = group[k]
        self._obs = {f"vesicles/{s}": f[f"observables/vesicles/{s}"] for s in STATE_NAMES}
        self._obs.update({f"cells/{k}": f[f"observables/cells/{k}"]
                          for k in ("bound", "internalized", "cargo")})
        self.n_snapshots = complete_frames(list(self._snap.values()))
        self.n_observations = complete_frames(list(self._obs.values()))
        self._check_shapes()

    def _check_shapes(self):
        """ValueError (open_run: InputError) when the arrays do not fit together."""
        M, n = len(self.cells), self._ves["id"].shape
        c = self.cells
        expect = {"cells/position": (np.shape(c.centers), (M, 3)), "cells/type": (np.shape(c.types), (M,)),
                  "vesicles/species": (self._ves["species"].shape, n),
                  "vesicles/radius": (self._ves["radius"].shape, n)}
        for name, g in self._snap.items():
            if name in CELL_SNAPSHOT_STATE:
                expect[f"cells/{name}"] = (g["value"].shape[1:2], (M,))
            else:
                expect[f"vesicles/{name}"] = (g["value"].shape[1:2], n)
        for name in ("cells/bound", "cells/internalized"):
            expect[name] = (self._obs[name]["value"].shape[1:2], (M,))
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
        return {"length": text(c), "time": text(t)}

    @cached_property
    def duration(self):
        """Simulated duration [s] (the config's; else the last time written)."""
        if "duration" in self.parameters:
            return float(self.parameters["duration"])
        times = np.concatenate([self.snapshot_times, self.observation_times])
        return float(times.max()) if times.size else 0.0

    @cached_property
    def config(self):
        """The run's config as a validated :class:`exodiff.config_types.Config`,
        or None when it no longer validates here (e.g. a cells file that has
        moved)."""
        from ..config import parse_config
        try:
            return parse_config(parse_toml(self.config_text), source=str(self.path))
        except Exception:
            return None

    @cached_property
    def donor_types(self):
        """Names of the cell types that secrete vesicles (secretion_rate > 0)."""
        cfg = self.config
        if cfg is not None:
            return tuple(n for n, ct in cfg.cell_types.items() if ct.secretion_rate > 0)
        try:
            types = parse_toml(self.config_text).get("cell_types", {})
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
        radius [µm], type (categorical name), donor (its type secretes), and
        where the file has them (exodiff ≥ 0.3) each cell's kappa [µm/s],
        capacity and secretion_rate_<population> [1/s]."""
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
        g = self._f["particles/cells"]
        if "kappa" in g:
            df["kappa"] = g["kappa"][()]
        if "capacity" in g:
            df["capacity"] = g["capacity"][()]
        if "secretion_rate" in g:
            rates = g["secretion_rate"][()]
            for j, name in enumerate(text(n) for n in g["secretion_rate"].attrs.get("names", ())):
                df[f"secretion_rate_{name}"] = rates[:, j]
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

    def snapshot_state(self, name, i=None):
        """A STATE field stored with every snapshot (layout.SNAPSHOT_STATE):
        "recycled" (int32) or "bound_duration" [s] of each stored vesicle,
        "cell_bound_steps" (int64, vesicle-steps bound on each cell so far;
        × dt: vesicle-seconds): frame ``i`` [n] or [M], or all [S, n] or
        [S, M].  InputError for files written before these series."""
        if name not in SNAPSHOT_STATE:
            raise ValueError(f"snapshot_state: {name!r}, expected one of {', '.join(SNAPSHOT_STATE)}")
        if name not in self._snap:
            raise InputError(f"{self.path}: no {name} series (written by exodiff "
                             f"{self.exodiff_version or '?'})")
        return self._frames(name, i)

    @cached_property
    def milestones(self):
        """name -> [n] time [s] of birth, first binding, internalization and
        exit of each stored vesicle (NaN = never), as of the last snapshot.
        Reads all n rows; :meth:`iter_vesicles` reads them in chunks."""
        g = self._f["particles/vesicles/milestones"]
        return {name: g[name][()] for name in MILESTONE_NAMES if name in g}

    @property
    def has_fates(self):
        """True when the file holds the fate table of every vesicle (exodiff ≥ 0.3)."""
        return "fates" in self._f

    def fate_columns(self, time=None):
        """The fate table as arrays: name -> [N] for "species", "origin" and
        every column of layout.FATE_COLUMNS, as of ``time`` [s] (None: the
        last complete snapshot, when the table was last written whole):
        events after it are dropped (NaN, cell -1).  InputError for files
        written before fate tables."""
        if not self.has_fates:
            raise InputError(f"{self.path}: no fate table (written by exodiff "
                             f"{self.exodiff_version or '< 0.3'}); rerun it with this version")
        g = self._f["fates"]
        out = {"species": g["species"][()], "origin": g["origin"][()]}
        out.update({name: g[name][()] for name in FATE_COLUMNS})
        if time is None:
            time = self.snapshot_times[-1] if self.n_snapshots else -math.inf
        for name in FATE_COLUMNS:
            if name.endswith("_time") and name != "birth_time":
                later = out[name] > time
                out[name][later] = np.nan
        for cell, when in FATE_CELL_TIMES.items():
            out[cell][np.isnan(out[when])] = -1
        return out

    @cached_property
    def fates(self):
        """The fate of every vesicle as a pandas DataFrame indexed by vesicle
        id (0..N-1), as of the last snapshot: species (population name),
        origin (donor cell, -1: present at t = 0), birth_time,
        first_bound_time, first_bound_cell, internalized_time,
        internalized_cell, exit_time, cleared_time (times [s]; NaN / -1: did
        not happen).  Whatever ``output.positions`` sampled."""
        import pandas as pd
        cols = self.fate_columns()
        names = [text(n) for n in self._f["fates/species"].attrs.get("names", self.species_names)]
        df = pd.DataFrame({"species": pd.Categorical.from_codes(cols["species"], categories=names),
                           "origin": cols["origin"], **{name: cols[name] for name in FATE_COLUMNS}})
        df.index.name = "vesicle"
        return df

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

    # --- observations
    def _obs_value(self, name):
        return self._obs[name]["value"][: self.n_observations]

    def cells_at(self, k):
        """(bound[M] int32, internalized[M] int32, cargo[M,K] float64) at
        observation ``k`` (an index, see :meth:`observation_index`), read
        alone: the whole [T,M] series is not loaded."""
        return tuple(_species_summed(self._obs[f"cells/{name}"]["value"][k], 1) if name != "cargo"
                     else self._obs[f"cells/{name}"]["value"][k]
                     for name in ("bound", "internalized", "cargo"))

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
        """int32[T,M] vesicles bound to each cell (all species)."""
        return _species_summed(self._obs_value("cells/bound"), 2)

    @cached_property
    def internalized_per_cell(self):
        """int32[T,M] vesicles internalized by each cell so far (all species)."""
        return _species_summed(self._obs_value("cells/internalized"), 2)

    def per_cell_species(self, kind):
        """int32[T,M,S] vesicles ``kind`` ("bound" or "internalized") per cell
        and species (S: the attribute ``species``, in the order of
        ``species_names``).  InputError for 0.2 files, which summed over
        species."""
        if kind not in ("bound", "internalized"):
            raise ValueError(f"per_cell_species: kind {kind!r}, expected 'bound' or 'internalized'")
        value = self._obs_value(f"cells/{kind}")
        if value.ndim != 3:
            raise InputError(f"{self.path}: cells/{kind} is not split by species in this file "
                             f"(exodiff {self.exodiff_version or '< 0.3'})")
        return value

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

    def summary_text(self):
        """Multi-line human summary (``exodiff info``); see exodiff/io/summary.py."""
        return summary.summary_text(self)

    def dataset_shape(self, name):
        """(shape, dtype) of the dataset ``name`` (an HDF5 path such as
        ``/particles/vesicles/position/value``) as stored, frames not cut."""
        ds = self._f[name]
        return ds.shape, ds.dtype

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


def _species_summed(value, ndim):
    """Per-cell counts of ``ndim`` axes ([M] or [T,M]) from counts per cell
    and species (one more axis); 0.2 files have them summed already."""
    return value.sum(axis=-1, dtype=value.dtype) if value.ndim > ndim else value


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
