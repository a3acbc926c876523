"""Analyses of a run file: uptake, dose, range, first passage, MSD, profiles.

Each analysis follows the freud pattern: settings in the constructor, data in
``compute(run)`` (``run`` from :func:`exodiff.io.open_run`), results as
read-only properties; ``compute`` returns ``self`` so that
``Dose().compute(run).summary`` reads in one line.  The same analyses are on
the run that :func:`open_run` here (and :func:`exodiff.open_run`) opens:
``run.dose()``, ``run.first_passage(event="bound")``.

Lengths in µm, times in s, concentrations in vesicles/µm³ (×10¹² for
particles/mL).  Snapshot data (positions, states, milestones) are read in
chunks of vesicles (:meth:`exodiff.io.Run.iter_vesicles`), so memory does not
grow with the pool beyond the per-vesicle results an analysis returns.  When
the run stored a sample of the vesicles (``output.positions = {sample = n}``)
snapshot-based results describe the sample, and counts are scaled to the pool
where that is said.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from . import io
from .errors import InputError
from .kernels.constants import BOUND, CLEARED, EXITED, FREE, INTERNALIZED, PENDING, STATE_NAMES

__all__ = ["UptakeCurves", "Dose", "UptakeRange", "FirstPassage", "MSD", "Profile",
           "MassBalance", "RunComparison", "kaplan_meier", "ks_two_sample",
           "two_proportion_z", "gini", "cell_results", "expected_diffusion", "AnalysedRun", "open_run"]


class _Analysis:
    """Results are available after compute(); reading one before says so."""

    def _need(self, name):
        value = getattr(self, name, None)
        if value is None:
            raise AttributeError(f"{type(self).__name__}: call compute(run) first")
        return value


# ------------------------------------------------------------- helpers


def _type_index(run, cell_type):
    """Type index of a cell-type name or index (InputError naming the types)."""
    names = run.cells.type_names
    if isinstance(cell_type, str):
        if cell_type not in names:
            raise InputError(f"{run.path}: no cell type {cell_type!r} (types: {', '.join(names)})")
        return names.index(cell_type)
    k = operator.index(cell_type)
    if not 0 <= k < len(names):
        raise InputError(f"{run.path}: no cell type {k} (there are {len(names)})")
    return k


def _species_index(run, population):
    """Population index of a name or index; None stays None (all)."""
    if population is None:
        return None
    names = run.species_names
    if isinstance(population, str):
        if population not in names:
            raise InputError(f"{run.path}: no vesicle population {population!r} "
                             f"(populations: {', '.join(names)})")
        return names.index(population)
    k = operator.index(population)
    if not 0 <= k < len(names):
        raise InputError(f"{run.path}: no vesicle population {k} (there are {len(names)})")
    return k


def _periodic_axes(run):
    return np.array([run.faces[2 * a] == "periodic" for a in range(3)]) if run.faces \
        else np.zeros(3, dtype=bool)


def _minimum_image(d, box, periodic):
    """Separation vectors d[..., 3] folded to the nearest periodic image."""
    d = np.array(d, dtype=np.float64, copy=True)
    for a in range(3):
        if periodic[a]:
            d[..., a] -= box[a] * np.round(d[..., a] / box[a])
    return d


def _nearest_donor(run, donor_types, measure):
    """Distance [µm] from each cell to the nearest donor cell of a run:
    (distance[M], nearest donor's index[M] or -1, is_donor[M]).  measure
    "center": |c_i − c_d| with the minimum image on periodic axes;
    "surface": that less R_i + R_d.  Donor cells, and every cell when there
    is no donor, get NaN."""
    if donor_types is None:
        donor_types = run.donor_types
    donor_idx = [_type_index(run, d) for d in donor_types]
    c = run.cells
    box, periodic = run.box_edges, _periodic_axes(run)
    M = len(c)
    dist = np.full(M, np.nan)
    which = np.full(M, -1, dtype=np.int64)
    is_donor = np.isin(c.types, donor_idx)
    donors = np.nonzero(is_donor)[0]
    if donors.size == 0:
        return dist, which, is_donor
    targets = np.nonzero(~is_donor)[0]
    for start in range(0, targets.size, 4096):
        t = targets[start:start + 4096]
        d = _minimum_image(c.centers[t, None, :] - c.centers[None, donors, :], box, periodic)
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        if measure == "surface":
            r = r - c.radii[t, None] - c.radii[None, donors]
        j = np.argmin(r, axis=1)
        dist[t] = r[np.arange(t.size), j]
        which[t] = donors[j]
    return dist, which, is_donor


def gini(x):
    """Gini coefficient of non-negative values x[n]:
    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), x sorted ascending, i = 1..n
    (0: every cell the same dose, → 1: one cell takes everything).  NaN if
    n = 0 or Σx = 0."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return math.nan
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def kaplan_meier(durations, observed):
    """Kaplan–Meier estimate of the survival function.

    durations[n] [s]: time to the event, or to censoring; observed[n] bool.
    S(t) = Π_{t_j ≤ t} (1 − d_j / n_j) over the distinct event times t_j,
    with d_j events at t_j and n_j subjects whose duration is ≥ t_j (a
    subject censored at t_j is still at risk at t_j).  Greenwood's variance:
    Var S = S² Σ d_j / (n_j (n_j − d_j)).

    Returns (times[J], survival[J], at_risk[J], events[J], standard_error[J]).
    """
    durations = np.asarray(durations, dtype=np.float64).ravel()
    observed = np.asarray(observed, dtype=bool).ravel()
    if durations.shape != observed.shape:
        raise ValueError("kaplan_meier: durations and observed differ in shape")
    ordered = np.sort(durations)
    times, events = np.unique(durations[observed], return_counts=True)
    at_risk = durations.size - np.searchsorted(ordered, times, side="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod(1.0 - events / at_risk)
        terms = np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.inf)
        se = survival * np.sqrt(np.cumsum(terms))
    se = np.where(survival == 0, 0.0, se)
    return times, survival, at_risk.astype(np.int64), events.astype(np.int64), se


def _normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_z(k1, n1, k2, n2):
    """Two-sided two-proportion z-test with the pooled proportion:
    z = (p1 − p2) / √(p(1−p)(1/n1 + 1/n2)), p = (k1+k2)/(n1+n2);
    p-value = erfc(|z|/√2).  Returns (z, p) (NaN when undefined)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2, p = k1 / n1, k2 / n2, (k1 + k2) / (n1 + n2)
    var = p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return (0.0, 1.0) if p1 == p2 else (math.inf, 0.0)
    z = (p1 - p2) / math.sqrt(var)
    return z, 2.0 * _normal_sf(abs(z))


def _kolmogorov_sf(x):
    """P(K > x) for the Kolmogorov distribution: 2 Σ_k (−1)^(k−1) e^(−2k²x²)."""
    if x <= 0:
        return 1.0
    if x < 0.2:  # the alternating series converges slowly here; the value is 1 to 1e-15
        return 1.0
    k = np.arange(1, 101)
    return float(min(1.0, max(0.0, 2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * x * x)))))


def ks_two_sample(a, b):
    """Two-sample Kolmogorov–Smirnov test: D = sup |F_a − F_b| and its
    two-sided p-value P(K > λ) from the Kolmogorov distribution with
    Stephens' small-sample correction λ = (√n_e + 0.12 + 0.11/√n_e)·D,
    n_e = n_a n_b/(n_a + n_b) (Stephens 1970; Numerical Recipes §14.3):
    within 0.01 of the exact p-value from about ten values per sample.
    Returns (D, p); NaN when a sample is empty."""
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    na, nb = a.size, b.size
    if na == 0 or nb == 0:
        return math.nan, math.nan
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / na
    fb = np.searchsorted(b, x, side="right") / nb
    d = float(np.max(np.abs(fa - fb)))
    en = math.sqrt(na * nb / (na + nb))
    return d, _kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


# ------------------------------------------------------------- uptake


class UptakeCurves(_Analysis):
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


class Dose(_Analysis):
    """Dose per cell at one observation and its distribution across cells.

    The dose of a cell is what it has internalized: vesicles, and each cargo
    kind (molecules delivered, the per-vesicle cargo summed over its
    internalized vesicles).  Bound vesicles are reported beside it.

    Settings: time [s] (None: the last observation).

    Results (M cells, K cargo kinds): time [s]; vesicles [M] (internalized);
    bound [M]; cargo [M,K]; cargo_names; types [M]; type_names;
    table: DataFrame per cell (type, bound, internalized, one column per
    cargo kind); summary: DataFrame per cell type of the vesicle dose and
    each cargo: cells, mean, std, cv = std/mean, median, p10, p90, max,
    reached (fraction of cells with dose ≥ 1 vesicle / > 0 cargo), gini
    (:func:`gini`).
    """

    def __init__(self, time=None):
        self.time_setting = time
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
            for qname, q in quantities:
                x = q[mask]
                n = x.size
                mean = x.mean() if n else math.nan
                std = x.std(ddof=1) if n > 1 else math.nan
                rows.append({
                    "type": tname, "quantity": qname, "cells": n, "mean": mean, "std": std,
                    "cv": std / mean if n > 1 and mean > 0 else math.nan,
                    "median": float(np.median(x)) if n else math.nan,
                    "p10": float(np.percentile(x, 10)) if n else math.nan,
                    "p90": float(np.percentile(x, 90)) if n else math.nan,
                    "max": float(x.max()) if n else math.nan,
                    "reached": float(np.mean(x >= 1 if qname == "vesicles" else x > 0)) if n else math.nan,
                    "gini": gini(x),
                })
        return pd.DataFrame(rows)


class UptakeRange(_Analysis):
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
        self.time_setting, self.bins, self.donor_types = time, bins, donor_types
        self.measure, self.quantity = measure, quantity
        self.distance = None

    def compute(self, run):
        dist, which, is_donor = _nearest_donor(run, self.donor_types, self.measure)
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


# ------------------------------------------------------------- first passage


class FirstPassage(_Analysis):
    """First-passage times from release to first binding or to
    internalization, with the Kaplan–Meier survival curve.

    The clock of a vesicle starts at its birth (secretion; t = 0 for those
    present at the start).  Its event time is first_bound_time (event
    "bound") or internalized_time ("internalized").  Vesicles without the
    event by the last snapshot are right-censored: at their exit time if they
    left through an absorbing face, at the last snapshot before they were
    cleared in the medium (the last time known at risk), else at the last
    snapshot.  Leaving and clearance are thus treated as censoring: S(t) is
    the cause-specific survival, the probability of no event by t had the
    vesicle stayed.  Vesicles not yet released at the last snapshot are left
    out.  A sampled run gives the estimate for its sample.

    Settings: event "bound" | "internalized"; population (name or index;
    None: all).

    Results: durations [n] s (event or censoring time after birth);
    observed [n] bool; n_subjects, n_events; times [J] s (distinct event
    times); survival [J] = S(t_j) (Kaplan–Meier; S = 1 before times[0]);
    at_risk [J]; events [J]; standard_error [J] (Greenwood);
    median [s] (first t with S(t) ≤ 1/2; NaN if not reached);
    end_time [s] (the last snapshot, when the milestones were written).
    """

    def __init__(self, event="bound", population=None):
        if event not in ("bound", "internalized"):
            raise InputError(f"event: {event!r}, expected 'bound' or 'internalized'")
        self.event, self.population = event, population
        self.durations = None

    def compute(self, run):
        if run.n_snapshots == 0:
            raise InputError(f"{run.path}: no snapshot written yet (first-passage times need one)")
        pop = _species_index(run, self.population)
        times = run.snapshot_times
        t_end = float(times[-1])
        key = "first_bound_time" if self.event == "bound" else "internalized_time"
        fields = ("birth_time", key, "exit_time", "species", "state")
        durations, observed = [], []
        for rows, d in run.iter_vesicles(fields):
            state = d["state"]  # [S, r]
            born = d["birth_time"] <= t_end
            if pop is not None:
                born &= d["species"] == pop
            birth = d["birth_time"][born]
            ev = d[key][born]
            seen = ~np.isnan(ev) & (ev <= t_end)
            censor = np.full(birth.shape, t_end)
            ex = d["exit_time"][born]
            censor = np.where(~np.isnan(ex), np.minimum(ex, censor), censor)
            st = state[:, born]
            cleared = st[-1] == CLEARED
            if cleared.any():
                first = np.argmax(st[:, cleared] == CLEARED, axis=0)
                last_alive = np.where(first > 0, times[np.maximum(first - 1, 0)], birth[cleared])
                censor[cleared] = np.minimum(censor[cleared], last_alive)
            dur = np.where(seen, ev - birth, np.maximum(censor - birth, 0.0))
            durations.append(dur)
            observed.append(seen)
        self.durations = np.concatenate(durations) if durations else np.empty(0)
        self.observed = np.concatenate(observed) if observed else np.empty(0, dtype=bool)
        self.end_time = t_end
        self.n_subjects = int(self.durations.size)
        self.n_events = int(self.observed.sum())
        (self.times, self.survival, self.at_risk, self.events,
         self.standard_error) = kaplan_meier(self.durations, self.observed)
        below = np.nonzero(self.survival <= 0.5)[0]
        self.median = float(self.times[below[0]]) if below.size else math.nan
        return self

    def survival_at(self, t):
        """S(t) at times t [s] (array-like): the KM step function."""
        self._need("durations")
        t = np.asarray(t, dtype=np.float64)
        k = np.searchsorted(self.times, t, side="right") - 1
        s = np.concatenate([[1.0], self.survival])
        return s[k + 1]


# ------------------------------------------------------------- MSD


class MSD(_Analysis):
    """Mean squared displacement from unwrapped positions, every snapshot a
    time origin.

    For each pair of snapshots i < j (lag τ = t_j − t_i, grouped by the step
    difference), the average over the eligible vesicles of
    |r(t_j) − r(t_i)|², with r = position + image·box_edges.  Eligible:
    mode "free": free at t_i and t_j and not bound in between (first binding
    after t_j, or never), so the curve is free diffusion (6Dτ, plus (vτ)²
    with drift) bent only by the domain's walls; mode "all": every vesicle
    released by t_i and not exited or cleared at t_j (bound ones included:
    effective transport).  Pairs weigh by their vesicle counts.

    Settings: population (name or index; None: all); mode; max_lag [s]
    (None: all lags); fit_max_lag [s]: lags used in the fit of D (None:
    all; walls and obstacles bend long lags below 6Dτ); chunk_size
    (vesicles read at a time).

    Results (L lags): lag_times [L] s; msd [L] µm²; msd_components [L,3]
    µm² (x, y, z); mean_displacement [L,3] µm (drift ≈ v·τ); counts [L]
    (vesicle × origin pairs); diffusion [µm²/s]: D of the count-weighted
    least-squares fit msd = 6Dτ through the origin (NaN with no data).
    """

    def __init__(self, population=None, mode="free", max_lag=None, fit_max_lag=None, chunk_size=None):
        if mode not in ("free", "all"):
            raise InputError(f"mode: {mode!r}, expected 'free' or 'all'")
        self.population, self.mode, self.max_lag, self.chunk_size = population, mode, max_lag, chunk_size
        self.fit_max_lag = fit_max_lag
        self.msd = None

    def compute(self, run):
        if not run.has_positions:
            raise InputError(f"{run.path}: positions were not stored in this run (MSD needs them)")
        pop = _species_index(run, self.population)
        S = run.n_snapshots
        steps, times = run.snapshot_steps, run.snapshot_times
        dt = run.dt if math.isfinite(run.dt) and run.dt > 0 else None
        pairs = [(i, j) for i in range(S) for j in range(i + 1, S)
                 if self.max_lag is None or times[j] - times[i] <= self.max_lag * (1 + 1e-9)]
        lag_steps = np.unique([steps[j] - steps[i] for i, j in pairs]) if pairs else np.empty(0, np.int64)
        L = lag_steps.size
        lag_of = {int(s): k for k, s in enumerate(lag_steps)}
        sq = np.zeros((L, 3))
        disp = np.zeros((L, 3))
        counts = np.zeros(L, dtype=np.int64)
        lag_time_sum = np.zeros(L)
        fields = ("unwrapped", "state", "species", "first_bound_time", "birth_time")
        for rows, d in run.iter_vesicles(fields, chunk_size=self.chunk_size):
            u, st = d["unwrapped"], d["state"]
            keep = np.ones(st.shape[1], dtype=bool) if pop is None else d["species"] == pop
            fb = d["first_bound_time"]
            for i, j in pairs:
                if self.mode == "free":
                    ok = keep & (st[i] == FREE) & (st[j] == FREE) & ~(fb <= times[j])
                else:
                    ok = keep & (st[i] != PENDING) & (st[j] != EXITED) & (st[j] != CLEARED) \
                        & (d["birth_time"] <= times[i])
                n = int(np.count_nonzero(ok))
                if n == 0:
                    continue
                dr = u[j] - u[i]
                dr[~ok] = 0.0
                k = lag_of[int(steps[j] - steps[i])]
                sq[k] += np.einsum("ij,ij->j", dr, dr)
                disp[k] += dr.sum(axis=0)
                counts[k] += n
                lag_time_sum[k] += n * (times[j] - times[i])
        with np.errstate(invalid="ignore", divide="ignore"):
            if dt is not None:
                self.lag_times = lag_steps * dt
            else:
                self.lag_times = np.where(counts > 0, lag_time_sum / counts, np.nan)
            self.msd_components = sq / counts[:, None]
            self.msd = self.msd_components.sum(axis=1)
            self.mean_displacement = disp / counts[:, None]
        self.counts = counts
        use = counts > 0
        if self.fit_max_lag is not None:
            use &= self.lag_times <= self.fit_max_lag * (1 + 1e-9)
        tau, m, w = self.lag_times[use], self.msd[use], counts[use].astype(float)
        den = np.sum(w * tau * tau)
        self.diffusion = float(np.sum(w * m * tau) / (6.0 * den)) if den > 0 else math.nan
        return self


# ------------------------------------------------------------- profiles


def _slab_sphere_volume(a, b, c, R):
    """Volume [µm³] of the sphere (centre coordinate c, radius R) between the
    planes a < b along one axis: π ∫ (R² − (z−c)²) dz over the overlap."""
    lo = np.maximum(a, c - R)
    hi = np.minimum(b, c + R)
    v = np.pi * (R * R * (hi - lo) - ((hi - c) ** 3 - (lo - c) ** 3) / 3.0)
    return np.where(hi > lo, v, 0.0)


def _points_near(points, centers, reach, box, periodic):
    """For each centre, the indices of the points that may lie within
    ``reach`` of it (a superset: those in the 3×3×3 grid bins around it,
    bins at least ``reach`` wide).  Yields (centre index, int64 indices)."""
    nb = np.maximum(1, np.floor(box / max(reach, 1e-12)).astype(np.int64))
    width = box / nb
    ib = np.clip(np.floor(points / width).astype(np.int64), 0, nb - 1)
    key = (ib[:, 0] * nb[1] + ib[:, 1]) * nb[2] + ib[:, 2]
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    offsets = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    for c, center in enumerate(centers):
        cb = np.clip(np.floor(center / width).astype(np.int64), 0, nb - 1)
        nbr = cb + offsets
        for a in range(3):
            nbr[:, a] = np.mod(nbr[:, a], nb[a]) if periodic[a] else nbr[:, a]
        inside = np.all((nbr >= 0) & (nbr < nb), axis=1)
        keys = np.unique((nbr[inside, 0] * nb[1] + nbr[inside, 1]) * nb[2] + nbr[inside, 2])
        lo = np.searchsorted(sorted_keys, keys, side="left")
        hi = np.searchsorted(sorted_keys, keys, side="right")
        if np.sum(hi - lo) == 0:
            continue
        yield c, np.concatenate([order[a:b] for a, b in zip(lo, hi)])


def _fibonacci_sphere(n):
    """n nearly uniform unit vectors [n,3] (golden-angle spiral)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (3.0 - math.sqrt(5.0)) * k
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


class Profile(_Analysis):
    """Vesicle concentration profile along an axis, or radially around cells.

    axis "x"|"y"|"z" (default "z": height in a well): vesicles of the chosen
    states per slab, divided by the slab's free volume: box cross-section ×
    width − the volume of cells inside the slab (exact sphere–slab
    integrals).  cell = index, list of indices or type name: binned by the
    distance s from the cell's membrane (s = |r − c| − R, minimum image on
    periodic axes), averaged over the cells: Σ counts / Σ shell volumes.  A
    shell's volume counts only what lies in the domain and outside the other
    cells (quadrature over ``directions`` unit vectors × ``radial_points``
    radii per bin; exact for a shell inside the domain and free of cells).

    Settings: axis or cell; bins (number, or edges [µm]); range_max [µm]
    (radial: largest s, default a quarter of the shortest box edge);
    states (names; default ("free",): vesicles in the medium); frames
    (snapshot index, list of indices, or None: the last snapshot; several
    are averaged).

    Results (B bins, F frames): bin_edges [B+1] µm (axis coordinate, or
    s); bin_centers [B]; counts_by_frame [F,B] (stored vesicles), counts [B]
    (their sum); volume [B] µm³ (per frame, summed over the cells);
    concentration_by_frame [F,B] and concentration [B] (mean over the
    frames) in vesicles/µm³, scaled by N/n when a sample was stored;
    concentration_per_ml [B] (×10¹²); times [F] s of the frames used.
    """

    def __init__(self, axis="z", cell=None, bins=20, range_max=None, states=("free",), frames=None,
                 directions=1024, radial_points=8):
        if cell is None and axis not in ("x", "y", "z"):
            raise InputError(f"axis: {axis!r}, expected 'x', 'y' or 'z'")
        self.axis, self.cell, self.bins, self.range_max = axis, cell, bins, range_max
        self.states = (states,) if isinstance(states, str) else tuple(states)
        for s in self.states:
            if s not in STATE_NAMES:
                raise InputError(f"states: {s!r}, expected some of {', '.join(STATE_NAMES)}")
        self.frames, self.directions, self.radial_points = frames, int(directions), int(radial_points)
        self.concentration = None

    def _cells(self, run):
        if isinstance(self.cell, str):
            k = _type_index(run, self.cell)
            idx = np.nonzero(run.cells.types == k)[0]
            if idx.size == 0:
                raise InputError(f"{run.path}: no cell of type {self.cell!r}")
            return idx
        idx = np.atleast_1d(np.asarray(self.cell, dtype=np.int64))
        M = len(run.cells)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= M:
            raise InputError(f"{run.path}: cell {self.cell} out of range (there are {M} cells)")
        return idx

    def compute(self, run):
        if not run.has_positions:
            raise InputError(f"{run.path}: positions were not stored in this run (profiles need them)")
        S = run.n_snapshots
        if S == 0:
            raise InputError(f"{run.path}: no snapshot written yet")
        frames = [S - 1] if self.frames is None else (
            [int(self.frames) % S] if np.ndim(self.frames) == 0 else sorted({int(f) % S for f in self.frames}))
        self.times = run.snapshot_times[frames]
        state_ids = np.array([STATE_NAMES.index(s) for s in self.states])
        box, periodic = run.box_edges, _periodic_axes(run)
        radial = self.cell is not None
        if radial:
            cells = self._cells(run)
            rmax = self.range_max if self.range_max is not None else 0.25 * float(box.min())
            edges = (np.linspace(0.0, rmax, int(self.bins) + 1) if np.ndim(self.bins) == 0
                     else np.asarray(self.bins, dtype=np.float64))
        else:
            a = "xyz".index(self.axis)
            edges = (np.linspace(0.0, box[a], int(self.bins) + 1) if np.ndim(self.bins) == 0
                     else np.asarray(self.bins, dtype=np.float64))
        B, F = edges.size - 1, len(frames)
        counts = np.zeros((F, B), dtype=np.int64)
        for rows, d in run.iter_vesicles(("position", "state"), frames=frames):
            for f in range(F):
                p = d["position"][f][np.isin(d["state"][f], state_ids)]  # [k, 3]
                if radial:
                    reach = float(run.cells.radii[cells].max()) + float(edges[-1])
                    for c, idx in _points_near(p, run.cells.centers[cells], reach, box, periodic):
                        dr = _minimum_image(p[idx] - run.cells.centers[cells[c]], box, periodic)
                        s = np.sqrt(np.einsum("ij,ij->i", dr, dr)) - run.cells.radii[cells[c]]
                        counts[f] += np.histogram(s, bins=edges)[0]
                else:
                    counts[f] += np.histogram(p[:, a], bins=edges)[0]
        volume = self._radial_volume(run, cells, edges) if radial else self._slab_volume(run, a, edges)
        self.bin_edges = edges
        self.bin_centers = 0.5 * (edges[1:] + edges[:-1])
        self.counts_by_frame = counts
        self.counts = counts.sum(axis=0)
        self.volume = volume
        scale = run.n_vesicles / run.n_stored if run.n_stored else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            self.concentration_by_frame = np.where(volume > 0, counts * scale / volume, np.nan)
            self.concentration = np.where(volume > 0, self.counts * scale / (volume * F), np.nan)
        self.concentration_per_ml = self.concentration * 1e12
        return self

    @staticmethod
    def _slab_volume(run, a, edges):
        box = run.box_edges
        area = float(np.prod(np.delete(box, a)))
        lo, hi = np.clip(edges[:-1], 0, box[a]), np.clip(edges[1:], 0, box[a])
        vol = area * np.maximum(hi - lo, 0.0)
        c, R = run.cells.centers[:, a], run.cells.radii
        shifts = [-box[a], 0.0, box[a]] if _periodic_axes(run)[a] else [0.0]
        for sh in shifts:  # a cell straddling a periodic face counts on both sides
            vol -= _slab_sphere_volume(lo[:, None], hi[:, None], (c + sh)[None, :], R[None, :]).sum(axis=1)
        return vol

    def _radial_volume(self, run, cells, edges):
        box, periodic = run.box_edges, _periodic_axes(run)
        centers, radii = run.cells.centers, run.cells.radii
        u = _fibonacci_sphere(self.directions)  # [D,3]
        B, P = edges.size - 1, self.radial_points
        vol = np.zeros(B)
        for c in cells:
            R = radii[c]
            # P sub-shells per bin, each sampled at its volume-median radius
            s_edges = np.concatenate([np.linspace(edges[b], edges[b + 1], P + 1)[:-1] for b in range(B)]
                                     + [edges[-1:]])
            r_edges = R + s_edges
            r_mid = np.cbrt(0.5 * (r_edges[1:] ** 3 + r_edges[:-1] ** 3))
            w = 4.0 / 3.0 * np.pi * (r_edges[1:] ** 3 - r_edges[:-1] ** 3) / u.shape[0]  # [B*P]
            rel = r_mid[:, None, None] * u[None, :, :]  # [B*P, D, 3] from the centre
            ok = np.ones(rel.shape[:2], dtype=bool)
            for ax in range(3):
                if not periodic[ax]:
                    x = centers[c, ax] + rel[..., ax]
                    ok &= (x >= 0) & (x <= box[ax])
            reach = R + edges[-1]
            dc = _minimum_image(centers - centers[c], box, periodic)
            dist = np.sqrt(np.einsum("ij,ij->i", dc, dc))
            near = np.nonzero((dist < reach + radii) & (np.arange(len(radii)) != c))[0]
            for j in near:
                # only the sample points that can fall in cell j: radii within
                # R_j of its distance, directions in the cone it subtends
                d, Rj = dist[j], radii[j]
                ri = np.nonzero(np.abs(r_mid - d) < Rj)[0]
                if d > Rj:
                    di = np.nonzero(u @ (dc[j] / d) >= math.sqrt(1.0 - (Rj / d) ** 2) - 1e-12)[0]
                else:
                    di = np.arange(u.shape[0])
                if ri.size == 0 or di.size == 0:
                    continue
                sub = rel[np.ix_(ri, di)] - dc[j]
                hit = np.einsum("...k,...k->...", sub, sub) < Rj * Rj
                block = ok[np.ix_(ri, di)]
                ok[np.ix_(ri, di)] = block & ~hit
            vol += (ok.sum(axis=1) * w).reshape(B, P).sum(axis=1)
        return vol


# ------------------------------------------------------------- mass balance


class MassBalance(_Analysis):
    """Every vesicle accounted for at every time.

    From the observations: per-state counts must add up to the pool size N
    and the per-cell bound/internalized counts to the state counts.  From
    the snapshots (when the whole pool is stored): the states counted in each
    snapshot must equal the observation at the same step.

    Results (T observations, S snapshots): times [T] s; counts [T,6]
    (columns STATE_NAMES); total [T]; missing [T] = N − total;
    bound_mismatch [T] = bound − Σ_cells bound; internalized_mismatch [T];
    snapshot_mismatch [S]: max |snapshot count − observed count| over the
    states (NaN where no observation shares the step or a sample was
    stored); balanced: all of these are zero.
    """

    def __init__(self):
        self.counts = None

    def compute(self, run):
        self.times = run.observation_times
        self.n_vesicles = run.n_vesicles
        self.counts = np.stack([run.counts[s] for s in STATE_NAMES], axis=1)
        self.total = self.counts.sum(axis=1)
        self.missing = run.n_vesicles - self.total
        self.bound_mismatch = self.counts[:, BOUND] - run.bound_per_cell.sum(axis=1, dtype=np.int64)
        self.internalized_mismatch = (self.counts[:, INTERNALIZED]
                                      - run.internalized_per_cell.sum(axis=1, dtype=np.int64))
        S = run.n_snapshots
        self.snapshot_mismatch = np.full(S, np.nan)
        if S and not run.sampled:
            seen = np.zeros((S, len(STATE_NAMES)), dtype=np.int64)
            for rows, d in run.iter_vesicles(("state",)):
                for i in range(S):
                    seen[i] += np.bincount(d["state"][i], minlength=len(STATE_NAMES))
            obs_steps = run.observation_steps
            for i, step in enumerate(run.snapshot_steps):
                k = np.nonzero(obs_steps == step)[0]
                if k.size:
                    self.snapshot_mismatch[i] = np.abs(seen[i] - self.counts[k[0]]).max()
        checked = self.snapshot_mismatch[~np.isnan(self.snapshot_mismatch)]
        self.balanced = bool(np.all(self.missing == 0) and np.all(self.bound_mismatch == 0)
                             and np.all(self.internalized_mismatch == 0) and np.all(checked == 0))
        return self

    def to_frame(self):
        import pandas as pd
        self._need("counts")
        df = pd.DataFrame(self.counts, columns=list(STATE_NAMES))
        df.insert(0, "time", self.times)
        df["total"] = self.total
        df["missing"] = self.missing
        df["bound_mismatch"] = self.bound_mismatch
        df["internalized_mismatch"] = self.internalized_mismatch
        return df


# ------------------------------------------------------------- per-cell table


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
    df["nearest_donor_distance"] = _nearest_donor(run, None, "center")[0]
    df["time"] = dose.time
    return df


# ------------------------------------------------------------- comparing runs


class RunComparison(_Analysis):
    """Uptake statistics of two runs of one scenario (two backends, seeds or
    versions) side by side, with a two-sample test per cell type.

    Compared at the last observation time that both runs reached (t_c).
    Uptake: of the vesicles released by t_c (N − pending), the fraction bound
    to or internalized by cells of each type; two-proportion z-test
    (:func:`two_proportion_z`; vesicle fates taken as independent).  First
    binding: times from birth to first binding of the vesicles that bound by
    t_c, from the last snapshot's milestones; two-sample KS test
    (:func:`ks_two_sample`).  Per cell type it uses the vesicles that are on
    a cell of that type at the last snapshot (those that bound and left again
    count in the "all" row only).

    Settings: alpha (significance level for the ``differs`` column).

    Results: time [s] (t_c); same_scenario (configs equal but for the seed;
    None if a config cannot be read); notes (list of str); table: DataFrame,
    one row per cell type and "all": released_a/b, taken_up_a/b, fraction_a/b,
    difference, z, p_uptake, bound_n_a/b, median_first_bound_a/b [s], ks_d,
    p_first_bound, differs (either p < alpha).
    """

    def __init__(self, alpha=0.01):
        self.alpha = float(alpha)
        self.table = None

    def compute(self, run_a, run_b):
        import pandas as pd
        self.notes = []
        if run_a.cells.type_names != run_b.cells.type_names:
            raise InputError(f"{run_a.path} and {run_b.path}: different cell types "
                             f"({', '.join(run_a.cells.type_names)} vs {', '.join(run_b.cells.type_names)})")
        if run_a.n_observations == 0 or run_b.n_observations == 0:
            raise InputError("both runs need at least one observation")
        self.same_scenario = _same_scenario(run_a, run_b)
        if self.same_scenario is False:
            self.notes.append("the two configs differ in more than the seed: "
                              "differences may be real, not noise")
        t_c = min(run_a.observation_times[-1], run_b.observation_times[-1])
        self.time = float(t_c)
        for r in (run_a, run_b):
            if r.n_snapshots and abs(r.snapshot_times[-1] - t_c) > 1e-9 * max(1.0, t_c):
                self.notes.append(f"{r.path.name}: first-binding times use its last snapshot "
                                  f"(t = {r.snapshot_times[-1]:g} s), cut at t = {t_c:g} s")
        side = [self._side(r, t_c) for r in (run_a, run_b)]
        rows = []
        names = list(run_a.cells.type_names) + ["all"]
        for k, name in enumerate(names):
            A, B = (s[k] for s in side)
            z, p = two_proportion_z(A["taken_up"], A["released"], B["taken_up"], B["released"])
            d, p_ks = ks_two_sample(A["fpt"], B["fpt"])
            fa = A["taken_up"] / A["released"] if A["released"] else math.nan
            fb = B["taken_up"] / B["released"] if B["released"] else math.nan
            rows.append({
                "type": name, "released_a": A["released"], "released_b": B["released"],
                "taken_up_a": A["taken_up"], "taken_up_b": B["taken_up"],
                "fraction_a": fa, "fraction_b": fb, "difference": fa - fb, "z": z, "p_uptake": p,
                "bound_n_a": A["fpt"].size, "bound_n_b": B["fpt"].size,
                "median_first_bound_a": float(np.median(A["fpt"])) if A["fpt"].size else math.nan,
                "median_first_bound_b": float(np.median(B["fpt"])) if B["fpt"].size else math.nan,
                "ks_d": d, "p_first_bound": p_ks,
                "differs": bool((p < self.alpha) or (p_ks < self.alpha)),
            })
            if 0 < min(A["fpt"].size, B["fpt"].size) < 10:
                self.notes.append(f"{name}: fewer than 10 first bindings in a run; the KS p-value "
                                  "is rough")
        self.table = pd.DataFrame(rows).set_index("type")
        return self

    @staticmethod
    def _side(run, t_c):
        """Per cell type, then "all": released, taken_up, first-binding times."""
        k = run.observation_index(t_c)
        released = int(run.n_vesicles - run.counts["pending"][k])
        bound, inside = (np.asarray(a, dtype=np.int64) for a in run.cells_at(k)[:2])
        Y = len(run.cells.type_names)
        out = [{"released": released,
                "taken_up": int((bound + inside)[run.cells.types == t].sum())} for t in range(Y)]
        out.append({"released": released, "taken_up": int((bound + inside).sum())})
        fpt = [[] for _ in range(Y + 1)]
        if run.n_snapshots:
            for rows, d in run.iter_vesicles(("birth_time", "first_bound_time", "cell", "state"), frames=-1):
                fb = d["first_bound_time"]
                ok = ~np.isnan(fb) & (fb <= t_c)
                dur = fb - d["birth_time"]
                fpt[Y].append(dur[ok])
                on = ok & (d["cell"] >= 0) & ((d["state"] == BOUND) | (d["state"] == INTERNALIZED))
                t_of = run.cells.types[d["cell"][on]]
                for t in range(Y):
                    fpt[t].append(dur[on][t_of == t])
        for t in range(Y + 1):
            out[t]["fpt"] = np.concatenate(fpt[t]) if fpt[t] else np.empty(0)
        return out


def _same_scenario(a, b):
    ca, cb = a.config, b.config
    if ca is None or cb is None:
        return None
    import dataclasses
    return dataclasses.replace(ca, run=dataclasses.replace(ca.run, seed=0)) == \
        dataclasses.replace(cb, run=dataclasses.replace(cb.run, seed=0))


def expected_diffusion(run, population=None):
    """Mean diffusion coefficient D [µm²/s] that the config gives the stored
    vesicles of a population (None: all): its ``diffusion`` value, else the
    Stokes–Einstein D = kT/(6πηr) averaged over their radii.  NaN when the
    run's config cannot be read."""
    cfg = run.config
    if cfg is None:
        return math.nan
    from .physics import stokes_einstein_diffusion
    pop = _species_index(run, population)
    species, radius = run.species, run.vesicle_radius
    d = stokes_einstein_diffusion(radius, cfg.medium.temperature, cfg.medium.viscosity)
    for j, name in enumerate(run.species_names):
        given = cfg.vesicles[name].diffusion if name in cfg.vesicles else None
        if given is not None:
            d[species == j] = given
    sel = np.ones(species.shape, dtype=bool) if pop is None else species == pop
    return float(d[sel].mean()) if sel.any() else math.nan


# ------------------------------------------------------- runs with analyses


class AnalysedRun(io.Run):
    """A run file (:class:`exodiff.io.Run`) with the analyses above as
    methods, each memoized per settings (the frames of an open run are fixed,
    so a result holds): :meth:`uptake_curves`, :meth:`dose`,
    :meth:`uptake_range`, :meth:`first_passage`, :meth:`msd`,
    :meth:`profile`, :meth:`mass_balance`, and :meth:`cell_results`."""

    def _analysis(self, cls, settings):
        """``cls(**settings).compute(self)``, memoized per settings."""
        key = (cls.__name__, repr(sorted(settings.items())))
        cache = self.__dict__.setdefault("_analyses", {})
        if key not in cache:
            cache[key] = cls(**settings).compute(self)
        return cache[key]

    def uptake_curves(self, **settings):
        """:class:`UptakeCurves` computed on this run."""
        return self._analysis(UptakeCurves, settings)

    def dose(self, **settings):
        """:class:`Dose` computed on this run."""
        return self._analysis(Dose, settings)

    def uptake_range(self, **settings):
        """:class:`UptakeRange` computed on this run."""
        return self._analysis(UptakeRange, settings)

    def first_passage(self, **settings):
        """:class:`FirstPassage` computed on this run."""
        return self._analysis(FirstPassage, settings)

    def msd(self, **settings):
        """:class:`MSD` computed on this run."""
        return self._analysis(MSD, settings)

    def profile(self, **settings):
        """:class:`Profile` computed on this run."""
        return self._analysis(Profile, settings)

    def mass_balance(self, **settings):
        """:class:`MassBalance` computed on this run."""
        return self._analysis(MassBalance, settings)

    def cell_results(self, time=None):
        """:func:`cell_results` of this run at observation ``time`` [s]."""
        return cell_results(self, time)


def open_run(path):
    """Open a run file read-only as an :class:`AnalysedRun` (InputError as
    :func:`exodiff.io.open_run`)."""
    return io.open_run(path, run_class=AnalysedRun)
