"""Who sends what to whom: donor cell → recipient cell transfer of vesicles,
from the fate table of every vesicle (:attr:`exodiff.io.Run.fates`)."""
import math

import numpy as np

from ..errors import InputError
from .common import Analysis, run_box, species_index

KINDS = ("internalized", "bound", "taken_up")
# Bins of the sender → recipient distance in the fit of range_um.
RANGE_BINS = 40


def recipients(fates, kind):
    """Recipient cell [N] of each vesicle for ``kind`` (-1: none yet).

    "internalized": the cell that internalized it; "bound": the cell it first
    bound to; "taken_up": the cell that internalized it, else the one it
    first bound to (the fate table keeps the first binding only, so a vesicle
    that unbound and was internalized elsewhere counts for the second)."""
    if kind not in KINDS:
        raise InputError(f"kind: {kind!r}, expected one of {', '.join(KINDS)}")
    if kind == "internalized":
        return fates["internalized_cell"]
    if kind == "bound":
        return fates["first_bound_cell"]
    inside = fates["internalized_cell"]
    return np.where(inside >= 0, inside, fates["first_bound_cell"])


class Transfer(Analysis):
    """Donor → recipient transfer counts as of ``time``.

    Every secreted vesicle (origin ≥ 0) taken up by a cell is one transfer
    from its donor (origin) to that cell (see :func:`recipients` for
    ``kind``); vesicles present at t = 0 have no donor and are left out.
    Uses the fate table, so all N vesicles count whatever the snapshots
    sampled.

    Settings: time [s] (None: the last snapshot; events after it are not
    counted); kind "internalized" | "bound" | "taken_up"; species (a
    population name or index; None: all).

    Results:
    cell_matrix : scipy.sparse CSR [M, M], donor cell × recipient cell counts
    type_matrix : pandas DataFrame, donor type (rows) × recipient type
        (columns), counts
    autocrine_fraction : taken up by their own donor, of all transfers (NaN: none)
    events : pandas DataFrame, one row per transfer: vesicle, species, donor,
        recipient, distance [µm] (centre to centre, minimum image on periodic
        axes), time [s] of the event
    distances : [n] the events' distances [µm]
    range_um : decay length λ [µm] of transfers per donor–recipient pair
        with centre distance, ∝ exp(−r/λ) (Poisson fit over distance bins,
        autocrine transfers left out; inf when uptake does not fall with
        distance, NaN with too few transfers)
    per_donor : pandas DataFrame indexed by donor cell: type, secreted (born
        by ``time``), taken_up (transfers of ``kind``), recipients (distinct
        cells), exited, cleared
    time : the time [s] the counts are as of
    """

    def __init__(self, time=None, kind="internalized", species=None):
        if kind not in KINDS:
            raise InputError(f"kind: {kind!r}, expected one of {', '.join(KINDS)}")
        self.time, self.kind, self.species = time, kind, species
        self.cell_matrix = None

    def compute(self, run):
        import pandas as pd
        import scipy.sparse

        if run.n_snapshots == 0:
            raise InputError(f"{run.path}: no snapshot written yet (the fate table is written with them)")
        t = float(run.snapshot_times[-1]) if self.time is None else float(self.time)
        fates = run.fate_columns(min(t, float(run.snapshot_times[-1])))
        pop = species_index(run, self.species)
        M = len(run.cells)
        names = list(run.cells.type_names)
        born = fates["birth_time"] <= t
        chosen = born if pop is None else born & (fates["species"] == pop)
        to = recipients(fates, self.kind)
        moved = chosen & (fates["origin"] >= 0) & (to >= 0)
        ids = np.nonzero(moved)[0]
        donor, recipient = fates["origin"][ids].astype(np.int64), to[ids].astype(np.int64)
        self.time = t
        self.cell_matrix = scipy.sparse.coo_matrix(
            (np.ones(ids.size, dtype=np.int64), (donor, recipient)), shape=(M, M)).tocsr()
        types = run.cells.types
        counts = np.zeros((len(names), len(names)), dtype=np.int64)
        np.add.at(counts, (types[donor], types[recipient]), 1)
        self.type_matrix = pd.DataFrame(counts, index=pd.Index(names, name="donor"),
                                        columns=pd.Index(names, name="recipient"))
        self.autocrine_fraction = float(np.mean(donor == recipient)) if ids.size else math.nan
        box = run_box(run)
        centres = run.cells.centers
        d = box.minimum_image(centres[recipient] - centres[donor]) if ids.size else np.zeros((0, 3))
        self.distances = np.sqrt(np.einsum("ij,ij->i", d, d))
        event_time = _event_times(fates, self.kind)[ids]
        species_names = list(run.species_names)
        self.events = pd.DataFrame({
            "vesicle": ids, "species": pd.Categorical.from_codes(fates["species"][ids], species_names),
            "donor": donor, "recipient": recipient, "distance": self.distances, "time": event_time})
        self.range_um = _decay_length(run, box, donor, recipient, self.distances)

        secreting = np.nonzero(np.bincount(fates["origin"][chosen & (fates["origin"] >= 0)],
                                           minlength=M) > 0)[0] if M else np.empty(0, np.int64)
        donors = np.union1d(secreting, _donor_cells(run))
        mine = chosen & (fates["origin"] >= 0)
        of = fates["origin"][mine]

        def per(mask):
            return np.bincount(of[mask[mine]], minlength=M)[donors] if M else np.zeros(0, np.int64)

        distinct = np.zeros(M, dtype=np.int64)
        if ids.size:
            pairs = np.unique(donor * M + recipient)
            distinct = np.bincount(pairs // M, minlength=M)
        self.per_donor = pd.DataFrame({
            "type": pd.Categorical.from_codes(types[donors], names) if names else [],
            "secreted": per(np.ones_like(mine)),
            "taken_up": np.bincount(donor, minlength=M)[donors] if M else [],
            "recipients": distinct[donors],
            "exited": per(fates["exit_time"] <= t),
            "cleared": per(fates["cleared_time"] <= t),
        }, index=pd.Index(donors, name="donor"))
        return self


def _event_times(fates, kind):
    if kind == "internalized":
        return fates["internalized_time"]
    if kind == "bound":
        return fates["first_bound_time"]
    return np.where(fates["internalized_cell"] >= 0, fates["internalized_time"], fates["first_bound_time"])


def _donor_cells(run):
    """Cells of the types that secrete (by the config)."""
    names = list(run.cells.type_names)
    idx = [names.index(d) for d in run.donor_types if d in names]
    return np.nonzero(np.isin(run.cells.types, idx))[0]


def _decay_length(run, box, donor, recipient, distances):
    """λ of transfers per (donor, other cell) pair ∝ exp(−r/λ): a Poisson
    fit of the transfer counts per distance bin against the number of
    pairs in the bin (the exposure)."""
    keep = donor != recipient
    if np.count_nonzero(keep) < 2:
        return math.nan
    donors = np.unique(donor[keep])
    centres = run.cells.centers
    far = float(distances[keep].max())
    edges = np.linspace(0.0, far * (1 + 1e-9), RANGE_BINS + 1)
    pairs = np.zeros(RANGE_BINS)
    for d in donors:  # distances from each donor to every other cell
        e = box.minimum_image(centres - centres[d])
        r = np.sqrt(np.einsum("ij,ij->i", e, e))
        r[d] = np.inf
        pairs += np.histogram(r, edges)[0]
    hits = np.histogram(distances[keep], edges)[0].astype(float)
    mid = 0.5 * (edges[1:] + edges[:-1])
    use = pairs > 0
    x, k, exposure = mid[use], hits[use], pairs[use]
    if np.count_nonzero(k) < 2:
        return math.nan
    # Newton on log L = Σ k (a − b x) − E e^{a − b x} (a = log amplitude, b = 1/λ)
    b = 0.0
    a = math.log(k.sum() / exposure.sum())
    for _ in range(100):
        mu = exposure * np.exp(a - b * x)
        g = np.array([np.sum(k - mu), -np.sum(x * (k - mu))])
        h = np.array([[np.sum(mu), -np.sum(x * mu)], [-np.sum(x * mu), np.sum(x * x * mu)]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            return math.nan
        a, b = a + step[0], b + step[1]
        if abs(step[1]) <= 1e-12 * max(abs(b), 1e-12):
            break
    return 1.0 / b if b > 0 else math.inf
