"""Where things are relative to each other: the box, minimum images and bins.

One box type (:class:`Box`: lengths per axis, which axes are periodic) and
one binning serve the cell grid of the kernels (exodiff/grid.py), the
overlap checks of the cell layouts (exodiff/layouts.py) and the analyses
(exodiff/analysis.py, which search with a k-d tree built here).

Bin of a coordinate ``x`` on an axis of ``n`` bins of edge ``h`` (the exact
expression the Numba and CUDA kernels reproduce bit for bit; float64)::

    min(max(int(floor(x / h)), 0), n - 1)

so positions outside the box fall into the edge bins.  Bins of a 3-d grid
are numbered ``(ix * ny + iy) * nz + iz``.

The scalar functions here are plain Python on floats and ints, so that Numba
compiles them into the kernels that call them (``numba.njit(bin_index)``);
this module imports no Numba.
"""
import math
from dataclasses import dataclass

import numpy as np

# Bins in total never exceed this (memory: 8 bytes per bin and grid).
MAX_BINS = 1 << 21


@dataclass(frozen=True)
class Box:
    """The domain [0, L_x] × [0, L_y] × [0, L_z]: ``lengths`` float64[3]
    [µm] and ``periodic`` bool[3]."""
    lengths: np.ndarray
    periodic: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "lengths", np.asarray(self.lengths, dtype=np.float64).reshape(3))
        object.__setattr__(self, "periodic", np.asarray(self.periodic, dtype=np.bool_).reshape(3))

    @classmethod
    def from_faces(cls, lengths, faces):
        """The box whose 6 faces (xlo, xhi, ..., zhi: "reflect", "periodic",
        "absorb") are ``faces``; no faces (an old file) means none periodic."""
        faces = tuple(faces)
        return cls(lengths, [bool(faces) and faces[2 * a] == "periodic" for a in range(3)])

    @property
    def volume(self):
        """L_x L_y L_z [µm³]."""
        return float(self.lengths[0] * self.lengths[1] * self.lengths[2])

    def minimum_image(self, d):
        """Separation vectors ``d[..., 3]`` [µm] folded to the nearest
        periodic image on the periodic axes (a new array)."""
        d = np.array(d, dtype=np.float64, copy=True)
        for a in range(3):
            if self.periodic[a]:
                d[..., a] -= self.lengths[a] * np.round(d[..., a] / self.lengths[a])
        return d

    def wrap(self, points):
        """Points ``[..., 3]`` [µm] moved into [0, L) on the periodic axes
        (a new array; other axes unchanged)."""
        p = np.array(points, dtype=np.float64, copy=True)
        for a in range(3):
            if self.periodic[a]:
                L = self.lengths[a]
                x = p[..., a] - L * np.floor(p[..., a] / L)
                p[..., a] = np.where(x >= L, 0.0, x)  # -1e-17 + L rounds to L
        return p

    def tree(self, points):
        """A ``scipy.spatial.cKDTree`` of ``points[n, 3]`` whose distances
        are minimum-image distances on the periodic axes."""
        from scipy.spatial import cKDTree
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        boxsize = np.where(self.periodic, self.lengths, 0.0)  # 0: not periodic
        return cKDTree(self.wrap(points), boxsize=boxsize)


def grid_dims(lengths, h, n, bins_per_item):
    """Bins per axis (≥ 1) of edge ≥ ``h`` [µm] tiling the box exactly, for
    ``n`` items.  The edge is also kept ≥ (V / (bins_per_item · n))^(1/3),
    so memory stays O(n) for small items in a big box, and grows by 1.25×
    until the total is ≤ MAX_BINS.
    Returns (int64[3] nbins, float64[3] bin_size [µm])."""
    box = np.asarray(lengths, dtype=np.float64)
    volume = float(box[0] * box[1] * box[2])
    h = max(float(h), (volume / (bins_per_item * max(n, 1))) ** (1.0 / 3.0))
    while True:
        nbins = np.maximum(np.floor(box / h), 1).astype(np.int64)
        if int(np.prod(nbins)) <= MAX_BINS:
            return nbins, box / nbins
        h *= 1.25


def bin_index(x, h, n):
    """Bin of coordinate ``x`` [µm] on an axis of ``n`` bins of edge ``h``
    (the formula in the module docstring)."""
    return min(max(int(math.floor(x / h)), 0), n - 1)


def bin_of(positions, bin_size, nbins):
    """Bin id int64[N] of ``positions`` float64[N, 3] [µm] on a grid of
    ``nbins`` (3,) bins of edge ``bin_size`` (3,) (NumPy form of
    :func:`bin_index`, numbered as in the module docstring)."""
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = nbins
    i = [np.minimum(np.maximum(np.floor(p[:, a] / bin_size[a]).astype(np.int64), 0), n[a] - 1)
         for a in range(3)]
    return (i[0] * n[1] + i[1]) * n[2] + i[2]
