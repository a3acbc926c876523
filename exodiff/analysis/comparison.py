"""Uptake statistics of two runs of one scenario (:class:`RunComparison`)."""
import dataclasses
import math

import numpy as np

from ..errors import InputError
from ..kernels.constants import BOUND, DEGRADED, DELIVERED, INTERNALIZED
from .common import Analysis
from .statistics import ks_two_sample, mann_whitney, two_proportion_z


class RunComparison(Analysis):
    """Uptake statistics of two runs of one scenario (two backends, seeds or
    versions) side by side, with a two-sample test per cell type.

    Compared at the last observation time that both runs reached (t_c).
    Uptake: of the vesicles released by t_c (N − pending), the fraction on
    or in cells of each type (bound, internalized, and where the runs record
    destinations delivered to the cytosol or degraded); two-proportion z-test
    (:func:`two_proportion_z`; vesicle fates taken as independent).  First
    binding: times from birth to first binding of the vesicles that bound by
    t_c, from the last snapshot's milestones; two-sample KS test
    (:func:`ks_two_sample`).  Per cell type it uses the vesicles that are on
    a cell of that type at the last snapshot (those that bound and left again
    count in the "all" row only).

    Functional dose (both runs record cargo by destination, as
    :class:`~exodiff.analysis.Delivery` reads it): the vesicles in the
    cytosol per cell of each type at t_c, with a Mann–Whitney U test over
    the cells of the type
    (:func:`mann_whitney`; the cells are the samples, although those of one
    run share its pool of vesicles: read p as approximate), and the mean
    dose per cell over time (shown, not tested: the observations of a run
    are not independent of each other).

    Settings: alpha (significance level for the ``differs`` column).

    Results: time [s] (t_c); same_scenario (configs equal but for the seed;
    None if a config cannot be read); notes (list of str); table: DataFrame,
    one row per cell type and "all": released_a/b, taken_up_a/b, fraction_a/b,
    difference, z, p_uptake, bound_n_a/b, median_first_bound_a/b [s], ks_d,
    p_first_bound, and with destinations dose_a/b (vesicles in the cytosol
    per cell), u, p_dose; differs (any p < alpha).  dose_over_time:
    DataFrame (None without destinations), one row per time and cell type:
    time [s], type, dose_a, dose_b (mean vesicles in the cytosol per cell),
    ratio = dose_b / dose_a.
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
        ca, cb = run_a.cells, run_b.cells
        if ca.centers.shape != cb.centers.shape or not (np.array_equal(ca.centers, cb.centers)
                                                        and np.array_equal(ca.radii, cb.radii)
                                                        and np.array_equal(ca.types, cb.types)):
            self.notes.append("the two runs place their cells differently (a random layout is drawn from "
                              "the seed): the differences include the layouts'")
        if run_a.seed == run_b.seed:
            self.notes.append(f"both runs use seed {run_a.seed}: they share their random numbers, so they "
                              "are not independent samples and the p-values do not hold; rerun one with "
                              "another --seed to test")
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
        self.dose_over_time = None
        if run_a.has_destinations and run_b.has_destinations:
            self._dose(run_a, run_b, t_c)
        else:
            old = [r.path.name for r in (run_a, run_b) if not r.has_destinations]
            self.notes.append(f"{', '.join(old)}: no cargo by destination recorded (written before "
                              "it was); the functional dose is not compared")
        return self

    def _dose(self, run_a, run_b, t_c):
        """Functional dose columns of ``table`` and ``dose_over_time``."""
        import pandas as pd
        dose = [r.delivered_by_donor.sum(axis=(2, 3), dtype=np.int64) for r in (run_a, run_b)]  # [T,M]
        at = [d[r.observation_index(t_c)] for d, r in zip(dose, (run_a, run_b))]
        # per cell type, then "all" (the layouts of the two runs may differ)
        masks, masks_b = ([r.cells.types == t for t in range(len(r.cells.type_names))]
                          + [np.ones(len(r.cells), bool)] for r in (run_a, run_b))
        cols = {"dose_a": [], "dose_b": [], "u": [], "p_dose": []}
        for ma, mb in zip(masks, masks_b):
            a, b = at[0][ma], at[1][mb]
            u, p = mann_whitney(a, b)
            cols["dose_a"].append(float(a.mean()) if a.size else math.nan)
            cols["dose_b"].append(float(b.mean()) if b.size else math.nan)
            cols["u"].append(u)
            cols["p_dose"].append(p)
        for name, values in cols.items():
            self.table[name] = values
        self.table["differs"] = self.table["differs"] | (self.table["p_dose"] < self.alpha)
        # over time: about a dozen of run A's observation times up to t_c
        times = run_a.observation_times[run_a.observation_times <= t_c * (1 + 1e-12)]
        times = times[np.unique(np.linspace(0, times.size - 1, min(times.size, 13)).round().astype(int))]
        rows = []
        for t in times:
            ka, kb = run_a.observation_index(t), run_b.observation_index(t)
            for k, name in enumerate(run_a.cells.type_names):
                a, b = dose[0][ka][masks[k]], dose[1][kb][masks_b[k]]
                da, db = (float(x.mean()) if x.size else math.nan for x in (a, b))
                rows.append({"time": float(t), "type": name, "dose_a": da, "dose_b": db,
                             "ratio": db / da if da > 0 else math.nan})
        self.dose_over_time = pd.DataFrame(rows)

    @staticmethod
    def _side(run, t_c):
        """Per cell type, then "all": released, taken_up, first-binding times."""
        k = run.observation_index(t_c)
        released = int(run.n_vesicles - run.counts["pending"][k])
        bound, inside = (np.asarray(a, dtype=np.int64) for a in run.cells_at(k)[:2])
        if run.has_destinations:  # taken up, then delivered or degraded: still taken up
            inside = inside + run.delivered_by_donor[k].sum(axis=(1, 2)) \
                + run.per_cell_species("degraded")[k].sum(axis=1)
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
                on = ok & (d["cell"] >= 0) & np.isin(d["state"], (BOUND, INTERNALIZED, DELIVERED, DEGRADED))
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
    return dataclasses.replace(ca, run=dataclasses.replace(ca.run, seed=0)) == \
        dataclasses.replace(cb, run=dataclasses.replace(cb.run, seed=0))
