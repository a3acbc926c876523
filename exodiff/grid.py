"""Uniform grid over the domain listing the cells near each bin (DESIGN §3).

Cells are static, so the grid is built once: a vesicle at x finds its bin
with the formula below and tests only the cells that bin lists.  The lists
are stored CSR-style: bin b lists ``items[start[b]:start[b+1]]``.

Bin of a position: exodiff/locality.py (the exact expression, reproduced
bit for bit by the Numba and CUDA kernels).

Guarantee: for every position p inside the box (a tiny slack of 1e-9 bin
edge either side included) and, on non-periodic axes, also outside it (the
edge bins absorb the clipped outside), bin_of(p) lists every cell c with
``dist(p, centre_c) ≤ radii[c] + reach`` — on periodic axes with the minimum
image distance.  So a vesicle whose search radius (its own radius plus its
step) is ≤ reach misses no cell.
"""
import math
from dataclasses import dataclass

import numpy as np

from . import locality
from .kernels.jit import njit

# Bins are widened by this fraction of their edge in the sphere test, so a
# point that floor(x / bin_size) rounds into a neighbouring bin is covered.
BIN_SLACK = 1e-9


@dataclass
class CellGrid:
    """CSR lists of the cells near each bin of a uniform grid.

    origin    float64[3]          grid origin [µm] (always 0: the box corner)
    bin_size  float64[3]          bin edge per axis [µm]; nbins·bin_size = box
    nbins     int64[3]            bins per axis (nx, ny, nz), each ≥ 1
    start     int64[nx·ny·nz + 1] bin b lists items[start[b]:start[b+1]]
    items     int32[K]            cell indices, increasing within each bin
    reach     float               margin [µm] the grid was built for
    """
    origin: np.ndarray
    bin_size: np.ndarray
    nbins: np.ndarray
    start: np.ndarray
    items: np.ndarray
    reach: float = 0.0

    @property
    def total_bins(self):
        return int(self.nbins[0] * self.nbins[1] * self.nbins[2])

    def cells_in_bin(self, b):
        """int32 array of the cells listed in bin b."""
        return self.items[self.start[b]:self.start[b + 1]]


# At most this many bins per cell (memory stays O(cells) in a sparse box).
BINS_PER_CELL = 64


def choose_bins(box, rmax, reach, m):
    """Bins per axis and bin edges for a box [µm] holding m cells of radius
    ≤ rmax [µm].  Target edge h = rmax + reach: a bin then lists only the
    cells within about one contact radius of it (S2: 0.44 cells per vesicle
    step, against 3.3 with h = 2 (rmax + reach)), each cell touching ≤ 27
    bins; h = (V / (64 m))^(1/3) instead where cells are sparse, so the grid
    never has more than ~64 bins per cell.  h grows until the total is
    ≤ locality.MAX_BINS.  Bins tile the box exactly (bin_size = L / n ≥ h).
    Returns (int64[3], float64[3])."""
    return locality.grid_dims(box, rmax + reach, m, BINS_PER_CELL)


def build_cell_grid(centers, radii, box, periodic, reach):
    """Grid over [0, box] listing in each bin every cell whose sphere of
    radius radii[c] + reach intersects the bin (minimum image on periodic
    axes).

    centers  float64[M, 3] cell centres [µm], inside the box
    radii    float64[M]    cell radii [µm]
    box      (3,)          domain size (Lx, Ly, Lz) [µm]
    periodic (3,) bool     periodic axes
    reach    float ≥ 0     extra margin [µm] (vesicle radius + a few steps)
    Returns :class:`CellGrid`.  M = 0 gives one empty bin.
    """
    centers = np.ascontiguousarray(centers, dtype=np.float64).reshape(-1, 3)
    radii = np.ascontiguousarray(radii, dtype=np.float64).reshape(-1)
    box = np.asarray(box, dtype=np.float64).reshape(3)
    per = np.asarray(periodic, dtype=np.bool_).reshape(3)
    reach = float(reach)
    if not (reach >= 0.0 and math.isfinite(reach)):
        raise ValueError(f"reach must be finite and ≥ 0, got {reach}")
    m = radii.shape[0]
    if m == 0:
        return CellGrid(origin=np.zeros(3), bin_size=box.copy(), nbins=np.ones(3, dtype=np.int64),
                        start=np.zeros(2, dtype=np.int64), items=np.zeros(0, dtype=np.int32), reach=reach)
    nbins, bin_size = choose_bins(box, float(radii.max()), reach, m)
    counts = np.zeros(int(np.prod(nbins)) + 1, dtype=np.int64)
    _fill(centers, radii, box, per, reach, nbins, bin_size, counts, np.zeros(0, dtype=np.int32), True)
    start = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=start[1:])
    items = np.empty(int(start[-1]), dtype=np.int32)
    cursor = start.copy()
    _fill(centers, radii, box, per, reach, nbins, bin_size, cursor, items, False)
    return CellGrid(origin=np.zeros(3), bin_size=bin_size, nbins=nbins, start=start, items=items, reach=reach)


@njit(cache=True)
def _axis_bins(x, rho, n, h, length, periodic, out_bin, out_d2):
    """Bins along one axis whose interval is within rho of coordinate x,
    with the squared per-axis distance.  Non-periodic: the edge bins extend
    to ∓∞ (they hold clipped outside positions).  Periodic: minimum image,
    each bin at most once.  Returns how many were written."""
    slack = BIN_SLACK * h
    k = 0
    a = int(math.floor((x - rho) / h)) - 1
    b = int(math.floor((x + rho) / h)) + 1
    if periodic:
        if b - a + 1 >= n:
            a = 0
            b = n - 1
        for u in range(a, b + 1):
            w = u % n
            best = np.inf
            for img in range(-1, 2):  # x is inside [0, L], so ±1 image suffices
                lo = w * h + img * length - slack
                hi = (w + 1) * h + img * length + slack
                d = max(lo - x, 0.0, x - hi)
                if d < best:
                    best = d
            if best <= rho:
                out_bin[k] = w
                out_d2[k] = best * best
                k += 1
    else:
        for u in range(max(a, 0), min(b, n - 1) + 1):
            lo = -np.inf if u == 0 else u * h - slack
            hi = np.inf if u == n - 1 else (u + 1) * h + slack
            d = max(lo - x, 0.0, x - hi)
            if d <= rho:
                out_bin[k] = u
                out_d2[k] = d * d
                k += 1
    return k


@njit(cache=True)
def _fill(centers, radii, box, per, reach, nbins, bin_size, cursor, items, count_only):
    """Pass 1 (count_only): cursor[b] += 1 for each (cell, bin) pair.
    Pass 2: items[cursor[b]++] = c, cells in increasing order, so each bin's
    list comes out sorted."""
    nmax = max(nbins[0], max(nbins[1], nbins[2]))
    bins = np.empty((3, nmax), dtype=np.int64)
    d2 = np.empty((3, nmax), dtype=np.float64)
    kk = np.empty(3, dtype=np.int64)
    ny = nbins[1]
    nz = nbins[2]
    for c in range(radii.shape[0]):
        rho = radii[c] + reach
        for a in range(3):
            kk[a] = _axis_bins(centers[c, a], rho, nbins[a], bin_size[a], box[a], per[a], bins[a], d2[a])
        r2 = rho * rho
        for i in range(kk[0]):
            for j in range(kk[1]):
                dxy = d2[0, i] + d2[1, j]
                if dxy > r2:
                    continue
                for k in range(kk[2]):
                    if dxy + d2[2, k] <= r2:
                        b = (bins[0, i] * ny + bins[1, j]) * nz + bins[2, k]
                        if count_only:
                            cursor[b] += 1
                        else:
                            items[cursor[b]] = c
                            cursor[b] += 1


def bin_of(grid, positions):
    """Bin id int64[N] of positions float64[N, 3] [µm] in ``grid``
    (:func:`exodiff.locality.bin_of`)."""
    return locality.bin_of(positions, grid.bin_size, grid.nbins)


# Nearest cells queried per bin for the clearance map (in blocks of bins);
# cells beyond them enter through a bound (the k-th centre distance minus the
# largest radius).
CLEARANCE_NEIGHBOURS = 16
CLEARANCE_BLOCK = 1 << 16


def clearance_map(grid, centers, radii, box, periodic, vradius_max):
    """Grid.clearance (kernels/state.py): for each bin of ``grid``, a lower
    bound on the distance [µm] from the bin's centre to the nearest contact
    sphere (cell radius + ``vradius_max``, the largest vesicle radius) of
    the cells the bin does NOT list, ≥ 0; minimum image on periodic axes;
    inf without such cells.  (The kernels measure the listed cells exactly,
    as the contact stage does.)

    Exact where the CLEARANCE_NEIGHBOURS nearest centres include that
    sphere; beyond them the k-th centre distance minus the largest radius
    bounds the rest.  The kernels use it as a 1-Lipschitz bound: a point x
    in the bin is at least clearance − |x − centre| from every contact sphere
    of an unlisted cell."""
    from .locality import Box
    nb = grid.total_bins
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    out = np.full(nb, np.inf)
    m = radii.size
    if m == 0:
        return out
    k = min(CLEARANCE_NEIGHBOURS, m)
    tree = Box(box, periodic).tree(centers)
    # (bin, cell) pairs the grid lists, as sorted keys bin·m + cell
    counts = np.diff(grid.start)
    listed = np.repeat(np.arange(nb, dtype=np.int64), counts) * m + grid.items
    listed.sort()
    nx, ny, nz = (int(v) for v in grid.nbins)
    for b0 in range(0, nb, CLEARANCE_BLOCK):
        b = np.arange(b0, min(nb, b0 + CLEARANCE_BLOCK), dtype=np.int64)
        ix, iy, iz = b // (ny * nz), (b // nz) % ny, b % nz  # bins numbered (ix·ny + iy)·nz + iz
        points = np.stack([(ix + 0.5) * grid.bin_size[0], (iy + 0.5) * grid.bin_size[1],
                           (iz + 0.5) * grid.bin_size[2]], axis=1)
        dist, idx = tree.query(points, k=k)
        dist, idx = dist.reshape(b.size, k), idx.reshape(b.size, k)
        key = b[:, None] * m + idx
        pos = np.minimum(np.searchsorted(listed, key), max(listed.size - 1, 0))
        is_listed = listed[pos] == key if listed.size else np.zeros(key.shape, dtype=bool)
        gap = np.where(is_listed, np.inf, dist - radii[idx])
        near = np.min(gap, axis=1)
        if k < m:
            near = np.minimum(near, dist[:, -1] - radii.max())
        out[b] = np.maximum(near - vradius_max, 0.0)
    return out
