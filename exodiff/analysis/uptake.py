"""Uptake by the cells: counts over time (:class:`UptakeCurves`), the dose
per cell at one time (:class:`Dose`), uptake against the distance from the
donor cells (:class:`UptakeRange`) and the per-cell table
(:func:`cell_results`)."""
import math

import numpy as np

from ..errors import InputError
from ..units import argument
from .common import Analysis, bins_setting, nearest_donor
from .statistics import gini


class UptakeCurves(Analysis):
    """Bound and internalized vesicles vs time, per cell type and per cell,
    from the observations (complete counts, also when positions are
    sampled).

    Results after ``compute(run)`` (T observations, Y cell types, M cells):
      times [T] s; type_names (Y names); n_cells [Y]
      bound, internalized [T,Y]: vesicles bound to / internalized by the
        cells of each type (sum over its cells)
      taken_up [T,Y] = bound + internalized
      mean_bound, mean_internalized [T,Y]: per cell of the type (NaN if none)
      per_cell_bound, per_cell_internalized [T,M] int
      released [T]: vesicles in the medium so far, N − pending
      fraction_taken_up [T,Y] = taken_up / released (NaN while none released)
    """

    def __init__(self):
        self.times = None

    def compute(self, run):
        c = run.cells
        Y = len(c.type_names)
        self.times = run.observation_times
        self.type_names = c.type_names
        self.per_cell_bound = run.bound_per_cell
        self.per_cell_internalized = run.internalized_per_cell
        onehot = (c.types[:, None] == np.arange(Y)[None, :]).astype(np.int64)  # [M,Y]
        self.n_cells = onehot.sum(axis=0)
        self.bound = self.per_cell_bound.astype(np.int64) @ onehot
        self.internalized = self.per_cell_internalized.astype(np.int64) @ onehot
        self.taken_up = self.bound + self.internalized
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean_bound = self.bound / np.where(self.n_cells > 0, self.n_cells, np.nan)
            self.mean_internalized = self.internalized / np.where(self.n_cells > 0, self.n_cells, np.nan)
            self.released = run.n_vesicles - run.counts["pending"]
            rel = np.where(self.released > 0, self.released, np.nan)
            self.fraction_taken_up = self.taken_up / rel[:, None]
        return self

    def to_frame(self):
        """Long table: one row per (time, cell type)."""
        import pandas as pd
        self._need("times")
        T, Y = self.bound.shape
        return pd.DataFrame({
            "time": np.repeat(self.times, Y),
            "type": np.tile(np.array(self.type_names, dtype=object), T),
            "bound": self.bound.ravel(), "internalized": self.internalized.ravel(),
            "taken_up": self.taken_up.ravel(),
            "mean_bound_per_cell": self.mean_bound.ravel(),
            "mean_internalized_per_cell": self.mean_internalized.ravel(),
            "fraction_taken_up": self.fraction_taken_up.ravel(),
        })


class Dose(Analysis):
    """Dose per cell at one observation and its distribution across cells.

    The dose of a cell is what it has internalized: vesicles, and each cargo
    kind (molecules delivered, the per-vesicle cargo summed over its
    internalized vesicles).  Bound vesicles are reported beside it.

    Settings: time [s] (None: the last observation; a number in s or a
    string with units, "30 min").

    Results (M cells, K cargo kinds): time [s]; vesicles [M] (internalized);
    bound [M]; cargo [M,K]; cargo_names; types [M]; type_names;
    table: DataFrame per cell (type, bound, internalized, one column per
    cargo kind); summary: DataFrame per cell type of the vesicle dose and
    each cargo: donor (the type secretes), cells, mean, std, cv = std/mean,
    median, p10, p90, max, reached (fraction of cells with dose ≥ 1 vesicle
    / > 0 cargo), gini (:func:`gini`); donor types that took up nothing are
    left out (their rows would be all zeros).
    """

    def __init__(self, time=None):
        self.time_setting = argument(time, "s", "time")
        self.vesicles = None

    def compute(self, run):
        k = run.observation_index(self.time_setting)
        self.time = float(run.observation_times[k])
        bound, inside, cargo = run.cells_at(k)
        self.vesicles = np.asarray(inside, dtype=np.int64)
        self.bound = np.asarray(bound, dtype=np.int64)
        self.cargo = np.asarray(cargo, dtype=np.float64)
        self.cargo_names = run.cargo_names
        self.types = run.cells.types
        self.type_names = run.cells.type_names
        self.donor_types = tuple(run.donor_types)
        return self

    @property
    def table(self):
        import pandas as pd
        self._need("vesicles")
        df = pd.DataFrame({
            "type": pd.Categorical.from_codes(self.types, categories=list(self.type_names))
            if self.type_names else pd.Categorical([]),
            "bound": self.bound, "internalized": self.vesicles})
        for j, name in enumerate(self.cargo_names):
            df[name] = self.cargo[:, j]
        df.index.name = "cell"
        return df

    @property
    def summary(self):
        import pandas as pd
        self._need("vesicles")
        rows = []
        quantities = [("vesicles", self.vesicles.astype(np.float64))]
        quantities += [(name, self.cargo[:, j]) for j, name in enumerate(self.cargo_names)]
        for t, tname in enumerate(self.type_names):
            mask = self.types == t
            donor = tname in self.donor_types
            if donor and not any(q[mask].any() for _, q in quantities):
                continue  # a donor type that took up nothing: a row of zeros says nothing
            for qname, q in quantities:
                x = q[mask]
                n = x.size
                mean = x.mean() if n else math.nan
                std = x.std(ddof=1) if n > 1 else math.nan
                rows.append({
                    "type": tname, "quantity": qname, "donor": donor, "cells": n, "mean": mean, "std": std,
                    "cv": std / mean if n > 1 and mean > 0 else math.nan,
                    "median": float(np.median(x)) if n else math.nan,
                    "p10": float(np.percentile(x, 10)) if n else math.nan,
                    "p90": float(np.percentile(x, 90)) if n else math.nan,
                    "max": float(x.max()) if n else math.nan,
                    "reached": float(np.mean(x >= 1 if qname == "vesicles" else x > 0)) if n else math.nan,
                    "gini": gini(x),
                })
        return pd.DataFrame(rows)


class UptakeRange(Analysis):
    """Uptake vs distance to the nearest donor (secreting) cell: how far the
    signal reaches.

    Settings: time [s] (None: the last observation); bins (number, or edges
    [µm]); donor_types (names; None: the types whose secretion_rate > 0 in the
    run's config); measure "center" (centre-to-centre distance) or "surface"
    (gap between the membranes, d − R_i − R_donor); quantity "taken_up"
    (bound + internalized), "internalized" or "bound".

    Results for the M cells (donor cells get NaN distance and are left out
    of the bins): time [s]; distance [M] µm; nearest_donor [M] (cell index,
    -1 for donors); uptake [M] vesicles per cell; bin_edges [B+1] µm;
    bin_centers [B]; n_cells [B]; mean [B] (vesicles per cell, NaN if the
    bin is empty); sem [B] = std/√n; decay_length [µm]: λ of the
    least-squares fit mean ≈ A·exp(−d/λ) to the log of the non-empty,
    non-zero bins weighted by their cell counts (NaN with fewer than two
    such bins, inf when uptake does not fall with distance).
    """

    def __init__(self, time=None, bins=10, donor_types=None, measure="center", quantity="taken_up"):
        if measure not in ("center", "surface"):
            raise InputError(f"measure: {measure!r}, expected 'center' or 'surface'")
        if quantity not in ("taken_up", "internalized", "bound"):
            raise InputError(f"quantity: {quantity!r}, expected 'taken_up', 'internalized' or 'bound'")
        self.time_setting, self.bins, self.donor_types = argument(time, "s", "time"), bins_setting(bins), donor_types
        self.measure, self.quantity = measure, quantity
        self.distance = None

    def compute(self, run):
        dist, which, is_donor = nearest_donor(run, self.donor_types, self.measure)
        if not is_donor.any():
            raise InputError(f"{run.path}: no donor (secreting) cells to measure the range from"
                             + ("" if self.donor_types else "; name them with donor_types"))
        k = run.observation_index(self.time_setting)
        self.time = float(run.observation_times[k])
        bound, inside = (np.asarray(a, dtype=np.int64) for a in run.cells_at(k)[:2])
        self.uptake = {"taken_up": bound + inside, "internalized": inside, "bound": bound}[self.quantity]
        self.distance, self.nearest_donor = dist, which
        ok = ~np.isnan(dist)
        d, u = dist[ok], self.uptake[ok].astype(np.float64)
        if np.ndim(self.bins) == 0:
            hi = d.max() if d.size else 1.0
            lo = min(0.0, d.min()) if d.size else 0.0
            edges = np.linspace(lo, hi * (1 + 1e-9) + 1e-12, int(self.bins) + 1)
        else:
            edges = np.asarray(self.bins, dtype=np.float64)
        self.bin_edges = edges
        self.bin_centers = 0.5 * (edges[1:] + edges[:-1])
        B = edges.size - 1
        b = np.searchsorted(edges, d, side="right") - 1
        inb = (b >= 0) & (b < B)
        b, u = b[inb], u[inb]
        self.n_cells = np.bincount(b, minlength=B)
        s1 = np.bincount(b, weights=u, minlength=B)
        s2 = np.bincount(b, weights=u * u, minlength=B)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(self.n_cells > 0, s1 / self.n_cells, np.nan)
            var = (s2 - self.n_cells * self.mean ** 2) / (self.n_cells - 1)
            self.sem = np.where(self.n_cells > 1, np.sqrt(np.maximum(var, 0) / self.n_cells), np.nan)
        use = (self.n_cells > 0) & (self.mean > 0)
        self.decay_length = math.nan
        if use.sum() >= 2:
            x, y, w = self.bin_centers[use], np.log(self.mean[use]), self.n_cells[use].astype(float)
            xm, ym = np.average(x, weights=w), np.average(y, weights=w)
            sxx = np.sum(w * (x - xm) ** 2)
            slope = np.sum(w * (x - xm) * (y - ym)) / sxx if sxx > 0 else 0.0
            self.decay_length = -1.0 / slope if slope < 0 else math.inf
        return self


def cell_results(run, time=None):
    """Per-cell results at observation ``time`` [s] (None: the last) as a
    DataFrame indexed by cell: x, y, z, radius [µm], type, donor, bound,
    internalized, taken_up [vesicles], one column per cargo kind
    (delivered), nearest_donor_distance [µm] (centre to centre; NaN for donor
    cells or without donors), and time [s]."""
    df = run.cell_table.copy()
    dose = Dose(time).compute(run)
    df["bound"] = dose.bound
    df["internalized"] = dose.vesicles
    df["taken_up"] = dose.bound + dose.vesicles
    for j, name in enumerate(dose.cargo_names):
        df[f"cargo_{name}"] = dose.cargo[:, j]
    df["nearest_donor_distance"] = nearest_donor(run, None, "center")[0]
    df["time"] = dose.time
    return df
