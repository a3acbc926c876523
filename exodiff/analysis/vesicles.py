"""What happens to the vesicles themselves, from the snapshots: first
passage to binding, internalization or exit (:class:`FirstPassage`), mean
squared displacement (:class:`MSD`) and the diffusion coefficient the config
gives them (:func:`expected_diffusion`)."""
import math

import numpy as np

from ..errors import InputError
from ..kernels.constants import CLEARED, EXITED, FREE, PENDING
from ..physics import stokes_einstein_diffusion
from ..units import argument
from .common import Analysis, species_index, type_index
from .statistics import kaplan_meier


class FirstPassage(Analysis):
    """First-passage times from release to first binding or to
    internalization, with the Kaplan–Meier survival curve.

    The clock of a vesicle starts at its birth (secretion; t = 0 for those
    present at the start).  Its event time is first_bound_time (event
    "bound") or internalized_time ("internalized").  Vesicles without the
    event by the last snapshot are right-censored: at their exit time if they
    left through an absorbing face, at their clearance in the medium, else
    at the last snapshot.  Leaving and clearance are thus treated as
    censoring: S(t) is the cause-specific survival, the probability of no
    event by t had the vesicle stayed.  With ``cell_type``, only events on
    cells of that type count; an event on another type censors the vesicle
    at its time.  Vesicles not yet released at the last snapshot are left
    out.  Every vesicle counts (the fate table); files written before fate
    tables (exodiff 0.2) give the estimate for their stored sample, with
    clearance known to the snapshot only, and no ``cell_type``.

    Settings: event "bound" | "internalized"; population (name or index;
    None: all); cell_type (recipient cell type name or index; None: any).

    Results: durations [n] s (event or censoring time after birth);
    observed [n] bool; n_subjects, n_events; times [J] s (distinct event
    times); survival [J] = S(t_j) (Kaplan–Meier; S = 1 before times[0]);
    at_risk [J]; events [J]; standard_error [J] (Greenwood);
    median [s] (first t with S(t) ≤ 1/2; NaN if not reached);
    end_time [s] (the last snapshot, when the milestones were written).
    """

    def __init__(self, event="bound", population=None, cell_type=None):
        if event not in ("bound", "internalized"):
            raise InputError(f"event: {event!r}, expected 'bound' or 'internalized'")
        self.event, self.population, self.cell_type = event, population, cell_type
        self.durations = None

    def compute(self, run):
        if run.n_snapshots == 0:
            raise InputError(f"{run.path}: no snapshot written yet (first-passage times need one)")
        t_end = float(run.snapshot_times[-1])
        if run.has_fates:
            self.durations, self.observed = self._from_fates(run, t_end)
        elif self.cell_type is not None:
            raise InputError(f"{run.path}: no fate table (exodiff 0.2), so no split by cell type")
        else:
            self.durations, self.observed = self._from_snapshots(run, t_end)
        self.end_time = t_end
        self.n_subjects = int(self.durations.size)
        self.n_events = int(self.observed.sum())
        (self.times, self.survival, self.at_risk, self.events,
         self.standard_error) = kaplan_meier(self.durations, self.observed)
        below = np.nonzero(self.survival <= 0.5)[0]
        self.median = float(self.times[below[0]]) if below.size else math.nan
        return self

    def _from_fates(self, run, t_end):
        f = run.fate_columns(t_end)
        pop = species_index(run, self.population)
        born = f["birth_time"] <= t_end
        if pop is not None:
            born &= f["species"] == pop
        birth = f["birth_time"][born]
        when, where = (("first_bound_time", "first_bound_cell") if self.event == "bound"
                       else ("internalized_time", "internalized_cell"))
        ev, cell = f[when][born], f[where][born]
        seen = ~np.isnan(ev)
        censor = np.fmin(np.fmin(f["exit_time"][born], f["cleared_time"][born]), t_end)
        if self.cell_type is not None:
            other = seen.copy()
            other[seen] = run.cells.types[cell[seen]] != type_index(run, self.cell_type)
            censor[other] = ev[other]
            seen &= ~other
        return np.where(seen, ev - birth, np.maximum(censor - birth, 0.0)), seen

    def _from_snapshots(self, run, t_end):
        """0.2 files: the milestones of the stored vesicles, clearance from the states."""
        pop = species_index(run, self.population)
        times = run.snapshot_times
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
        return (np.concatenate(durations) if durations else np.empty(0),
                np.concatenate(observed) if observed else np.empty(0, dtype=bool))

    def survival_at(self, t):
        """S(t) at times t [s] (array-like): the KM step function."""
        self._need("durations")
        t = np.asarray(t, dtype=np.float64)
        k = np.searchsorted(self.times, t, side="right") - 1
        s = np.concatenate([[1.0], self.survival])
        return s[k + 1]


def first_passage_table(run, event="bound"):
    """First passage split by population and recipient cell type: a pandas
    DataFrame with one row per (species, cell_type), "all" included for
    each: subjects, events, median [s] (NaN: not reached), by_end (1 − S at
    the last snapshot: the Kaplan–Meier probability of the event by then)."""
    import pandas as pd
    rows = []
    for pop in (None, *run.species_names):
        for ct in (None, *run.cells.type_names):
            f = FirstPassage(event, pop, ct).compute(run)
            rows.append({"species": pop or "all", "cell_type": ct or "all", "subjects": f.n_subjects,
                         "events": f.n_events, "median": f.median,
                         "by_end": 1.0 - f.survival[-1] if f.survival.size else 0.0})
    return pd.DataFrame(rows)


class MSD(Analysis):
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
        self.population, self.mode, self.chunk_size = population, mode, chunk_size
        self.max_lag = argument(max_lag, "s", "max_lag")
        self.fit_max_lag = argument(fit_max_lag, "s", "fit_max_lag")
        self.msd = None

    def compute(self, run):
        if not run.has_positions:
            raise InputError(f"{run.path}: positions were not stored in this run (MSD needs them)")
        pop = species_index(run, self.population)
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


def expected_diffusion(run, population=None):
    """The diffusion coefficient D [µm²/s] the config gives a population:
    its ``diffusion`` value, else Stokes–Einstein at the median radius
    (:func:`exodiff.derived.population_diffusion`, the number ``exodiff
    check`` prints).  population None: the only population, or with several
    the mean over the stored vesicles of their population's D.  NaN when
    the run's config cannot be read."""
    cfg = run.config
    if cfg is None:
        return math.nan
    from ..derived import population_diffusion
    per_population = np.array([population_diffusion(cfg, cfg.vesicles[name]) if name in cfg.vesicles
                               else math.nan for name in run.species_names])
    pop = species_index(run, population)
    if pop is not None:
        return float(per_population[pop])
    if per_population.size == 1:
        return float(per_population[0])
    species = np.asarray(run.species)
    return float(per_population[species].mean()) if species.size else math.nan
