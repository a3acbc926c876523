"""Where the cargo lands (:class:`Delivery`: periphery, endosome, cytosol,
degraded) and how long vesicles engage the cell surface
(:class:`Engagement`), from the per-observation counts by destination and
the fate table."""
import math

import numpy as np

from ..errors import InputError
from .common import Analysis

# The destinations of a vesicle on a cell, in the order of a vesicle's path:
# bound at the periphery, in an endosome (INTERNALIZED), its cargo in the
# cytosol (DELIVERED: "escaped" from an endosome or "fused" with the plasma
# membrane; "cytosol" is both), or degraded (DEGRADED).
DESTINATIONS = ("bound", "endosome", "cytosol", "escaped", "fused", "degraded")


def _by_type(run, per_cell):
    """Sum over the cells of each type of ``per_cell[T, M, ...]`` -> [T, Y, ...]."""
    Y = len(run.cells.type_names)
    out = np.zeros((per_cell.shape[0], Y, *per_cell.shape[2:]), dtype=per_cell.dtype)
    for t in range(Y):
        out[:, t] = per_cell[:, run.cells.types == t].sum(axis=1)
    return out


def _per_cell_mean(total, n_cells):
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / np.where(n_cells > 0, n_cells, np.nan)


class Delivery(Analysis):
    """Functional dose: where the vesicles taken up by each cell are, at
    every observation, and the cargo they carry there.

    A vesicle on a cell is bound (periphery), in an endosome (internalized),
    delivered (its cargo in the cytosol: by endosomal escape or by fusion
    with the plasma membrane) or degraded; the functional dose of a cell is
    what reached its cytosol.  Counts are complete (every vesicle, also when
    positions are sampled) and exact at each observation; cargo is the
    vesicle count times each species' cargo per vesicle.

    Results after ``compute(run)`` (T observations, M cells, Y cell types,
    S species, D donor types, K cargo kinds):
      times [T] s; type_names, species_names, cargo_names; donor_names (the
        cell types, then "initial": vesicles present at t = 0); n_cells [Y]
      per_cell : destination -> int64[T,M] vesicles per cell, for each of
        DESTINATIONS (bound, endosome, cytosol = escaped + fused, degraded)
      by_type : destination -> int64[T,Y] summed over the cells of each type
      mean_per_cell : destination -> float[T,Y] per cell of the type (NaN: no cells)
      cytosol_by_species [T,Y,S], cytosol_by_donor [T,Y,D]: the functional
        dose of each recipient type by species and by donor type (vesicles)
      per_cell_by_donor [T,M,D]: functional dose per cell by donor type
      cargo : destination -> float64[T,Y,K] cargo per type at each destination
      per_cell_cargo [T,M,K]: cargo in the cytosol of each cell
    InputError for files that did not record destinations (exodiff 0.3):
    their uptake is in :class:`UptakeCurves`.
    """

    def __init__(self):
        self.times = None

    def compute(self, run):
        by_donor = run.delivered_by_donor.astype(np.int64)  # [T,M,S,D]
        cytosol = by_donor.sum(axis=3)
        fused = run.per_cell_species("fused").astype(np.int64)
        per_species = {"bound": run.per_cell_species("bound").astype(np.int64),  # [T,M,S] each
                       "endosome": run.per_cell_species("internalized").astype(np.int64),
                       "cytosol": cytosol, "escaped": cytosol - fused, "fused": fused,
                       "degraded": run.per_cell_species("degraded").astype(np.int64)}
        table = run.cargo_per_vesicle  # [S,K]
        self.times = run.observation_times
        self.type_names, self.species_names = run.cells.type_names, run.species_names
        self.cargo_names, self.donor_names = run.cargo_names, run.donor_type_names
        self.n_cells = np.bincount(run.cells.types, minlength=len(self.type_names))
        self.per_cell = {d: x.sum(axis=2) for d, x in per_species.items()}
        species_by_type = {d: _by_type(run, x) for d, x in per_species.items()}  # [T,Y,S]
        self.by_type = {d: x.sum(axis=2) for d, x in species_by_type.items()}
        self.mean_per_cell = {d: _per_cell_mean(x, self.n_cells) for d, x in self.by_type.items()}
        self.cytosol_by_species = species_by_type["cytosol"]
        self.per_cell_by_donor = by_donor.sum(axis=2)
        self.cytosol_by_donor = _by_type(run, self.per_cell_by_donor)
        self.cargo = {d: x @ table for d, x in species_by_type.items()}
        self.per_cell_cargo = per_species["cytosol"] @ table
        return self

    def to_frame(self):
        """Long table: one row per (time, cell type, destination): vesicles,
        mean_per_cell, and the cargo of each kind."""
        import pandas as pd
        self._need("times")
        T, Y = self.by_type["cytosol"].shape
        frames = []
        for d in DESTINATIONS:
            df = pd.DataFrame({
                "time": np.repeat(self.times, Y),
                "type": pd.Categorical(np.tile(np.array(self.type_names, dtype=object), T),
                                       categories=list(self.type_names)),
                "destination": d, "vesicles": self.by_type[d].ravel(),
                "mean_per_cell": self.mean_per_cell[d].ravel()})
            for j, name in enumerate(self.cargo_names):
                df[name] = self.cargo[d][:, :, j].ravel()
            frames.append(df)
        return pd.concat(frames, ignore_index=True).sort_values(["time", "type"], kind="stable",
                                                                ignore_index=True)


class Engagement(Analysis):
    """Engagement at the periphery: how long vesicles stay bound to cells.

    Per cell, the bound vesicle-seconds since the start (the integral over
    time of the number of vesicles bound to it), exact at every observation
    (the kernels count vesicle-steps bound; every event falls on the step
    grid).  Per vesicle, the total time it spent bound (fate column
    ``bound_duration``, as of the last snapshot), for the vesicles that ever
    bound, with the type of the cell they first bound to.

    Settings: bins (number of bins of the bound-duration histogram).

    Results (T observations, M cells, Y cell types, n vesicles that bound):
      times [T] s; type_names; n_cells [Y]
      bound_seconds [T,M] vesicle-seconds bound to each cell since the start
      by_type [T,Y] summed over the cells of each type; mean_per_cell [T,Y]
      fate_time: the time [s] the durations are as of (NaN: no snapshot yet)
      durations : pandas DataFrame, one row per vesicle that bound by then:
        vesicle, species, first_bound_cell, type (of that cell),
        bound_duration [s] (for a vesicle still bound at fate_time: so far)
      bin_edges [B+1] s; histogram [Y,B] vesicles per bin by first cell type
      summary : DataFrame per cell type: vesicles, mean, median, p90 [s] of
        bound_duration, and bound vesicle-seconds at the last observation
      notes : list of str
    InputError for files that did not record bound time (exodiff 0.3).
    """

    def __init__(self, bins=30):
        self.bins = int(bins)
        if self.bins < 1:
            raise InputError(f"bins: {bins!r}, expected a positive number")
        self.times = None

    def compute(self, run):
        import pandas as pd
        self.notes = []
        self.times = run.observation_times
        self.type_names = run.cells.type_names
        Y = len(self.type_names)
        self.n_cells = np.bincount(run.cells.types, minlength=Y)
        self.bound_seconds = run.bound_steps * run.dt
        self.by_type = _by_type(run, self.bound_seconds)
        self.mean_per_cell = _per_cell_mean(self.by_type, self.n_cells)
        columns = ("vesicle", "species", "first_bound_cell", "type", "bound_duration")
        self.fate_time = math.nan
        if "bound_duration" in run.missing_fate_columns:
            raise InputError(f"{run.path}: no fate column bound_duration (written by exodiff "
                             f"{run.exodiff_version or '< 0.3'}); rerun it with this version")
        if run.n_snapshots == 0:
            self.notes.append("no snapshot yet: the fate table with the bound durations is written with them")
            self.durations = pd.DataFrame({c: [] for c in columns})
        else:
            self.fate_time = float(run.snapshot_times[-1])
            f = run.fate_columns()
            ids = np.nonzero(~np.isnan(f["first_bound_time"]))[0]
            first = f["first_bound_cell"][ids]
            k = np.nonzero(np.isclose(run.observation_times, self.fate_time, rtol=1e-12, atol=0))[0]
            n_bound = int(run.counts["bound"][k[0]]) if k.size else 0
            if n_bound:
                self.notes.append(f"{n_bound:,} vesicles still bound at t = {self.fate_time:g} s: "
                                  f"their durations so far")
            self.durations = pd.DataFrame({
                "vesicle": ids,
                "species": pd.Categorical.from_codes(f["species"][ids], list(run.species_names)),
                "first_bound_cell": first,
                "type": pd.Categorical.from_codes(run.cells.types[first], list(self.type_names)),
                "bound_duration": f["bound_duration"][ids]})
        d = self.durations["bound_duration"].to_numpy(dtype=np.float64)
        hi = float(d.max()) if d.size else 1.0
        self.bin_edges = np.linspace(0.0, hi * (1 + 1e-9) + 1e-12, self.bins + 1)
        codes = self.durations["type"].cat.codes.to_numpy() if d.size else np.zeros(0, np.int64)
        self.histogram = np.stack([np.histogram(d[codes == t], self.bin_edges)[0] for t in range(Y)]) \
            if Y else np.zeros((0, self.bins), dtype=np.int64)
        rows = []
        for t, name in enumerate(self.type_names):
            x = d[codes == t]
            rows.append({"type": name, "cells": int(self.n_cells[t]), "vesicles": int(x.size),
                         "mean": float(x.mean()) if x.size else math.nan,
                         "median": float(np.median(x)) if x.size else math.nan,
                         "p90": float(np.percentile(x, 90)) if x.size else math.nan,
                         "bound_vesicle_seconds": float(self.by_type[-1, t]) if self.times.size else math.nan})
        self.summary = pd.DataFrame(rows)
        return self
