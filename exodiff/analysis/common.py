"""What every analysis shares: the :class:`Analysis` base (freud's
pattern), names to indices, the run's box, and the nearest donor cell."""
import operator

import numpy as np

from ..errors import InputError
from ..units import argument
from ..locality import Box


class Analysis:
    """Results are available after compute(); reading one before says so."""

    def _need(self, name):
        value = getattr(self, name, None)
        if value is None:
            raise AttributeError(f"{type(self).__name__}: call compute(run) first")
        return value


def bins_setting(bins):
    """A number of bins, or bin edges [µm] as numbers or strings with units."""
    return bins if np.ndim(bins) == 0 else argument(bins, "um", "bins")


def type_index(run, cell_type):
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


def species_index(run, population):
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


def run_box(run):
    """The run's domain as a :class:`exodiff.locality.Box`."""
    return Box.from_faces(run.box_edges, run.faces)


def nearest_donor(run, donor_types, measure):
    """Distance [µm] from each cell to the nearest donor cell of a run:
    (distance[M], nearest donor's index[M] or -1, is_donor[M]).  measure
    "center": |c_i − c_d| with the minimum image on periodic axes;
    "surface": that less R_i + R_d.  Donor cells, and every cell when there
    is no donor, get NaN."""
    if donor_types is None:
        donor_types = run.donor_types
    donor_idx = [type_index(run, d) for d in donor_types]
    c = run.cells
    box = run_box(run)
    M = len(c)
    dist = np.full(M, np.nan)
    which = np.full(M, -1, dtype=np.int64)
    is_donor = np.isin(c.types, donor_idx)
    donors = np.nonzero(is_donor)[0]
    if donors.size == 0:
        return dist, which, is_donor
    targets = np.nonzero(~is_donor)[0]
    tree = box.tree(c.centers[donors])
    nearest = tree.query(box.wrap(c.centers[targets]))[0]
    # Candidates: every donor within the nearest centre distance plus the
    # spread of donor radii (the nearest surface can be a farther, larger cell).
    spread = float(np.ptp(c.radii[donors])) if measure == "surface" else 0.0
    candidates = tree.query_ball_point(box.wrap(c.centers[targets]), nearest * (1 + 1e-12) + spread)
    for t, near in zip(targets, candidates):
        near = donors[np.sort(np.asarray(near, dtype=np.int64))]
        d = box.minimum_image(c.centers[t] - c.centers[near])
        r = np.sqrt(np.einsum("jk,jk->j", d, d))
        if measure == "surface":
            r = r - c.radii[t] - c.radii[near]
        j = np.argmin(r)
        dist[t], which[t] = r[j], near[j]
    return dist, which, is_donor
