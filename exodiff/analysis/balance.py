"""Every vesicle accounted for at every time (:class:`MassBalance`)."""
import numpy as np

from ..kernels.constants import BOUND, DEGRADED, DELIVERED, INTERNALIZED, STATE_NAMES
from .common import Analysis


class MassBalance(Analysis):
    """Every vesicle accounted for at every time.

    From the observations: per-state counts must add up to the pool size N
    and the per-cell bound/internalized counts, and where the file records
    them the per-cell delivered/degraded counts, to the state counts.  From
    the snapshots (when the whole pool is stored): the states counted in each
    snapshot must equal the observation at the same step.

    Results (T observations, S snapshots): times [T] s; counts [T,8]
    (columns STATE_NAMES); total [T]; missing [T] = N − total;
    bound_mismatch [T] = bound − Σ_cells bound; internalized_mismatch [T];
    delivered_mismatch [T], degraded_mismatch [T] (zeros for files that
    record no destinations);
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
        self.delivered_mismatch = np.zeros(len(self.times), dtype=np.int64)
        self.degraded_mismatch = np.zeros(len(self.times), dtype=np.int64)
        if run.has_destinations:
            self.delivered_mismatch = (self.counts[:, DELIVERED]
                                       - run.delivered_by_donor.sum(axis=(1, 2, 3), dtype=np.int64))
            self.degraded_mismatch = (self.counts[:, DEGRADED]
                                      - run.per_cell_species("degraded").sum(axis=(1, 2), dtype=np.int64))
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
                             and np.all(self.internalized_mismatch == 0) and np.all(checked == 0)
                             and not self.delivered_mismatch.any() and not self.degraded_mismatch.any())
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
        df["delivered_mismatch"] = self.delivered_mismatch
        df["degraded_mismatch"] = self.degraded_mismatch
        return df
