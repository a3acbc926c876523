"""Cell grid: every cell within reach of a point is listed in its bin."""
import time
from types import SimpleNamespace as NS

import numpy as np
import pytest

from exodiff import locality
from exodiff.grid import bin_of, build_cell_grid
from exodiff.layouts import make_cells


def packed(n, box, seed, gsd=1.0):
    c = NS(layout="random", count=n, radius=NS(median=5.0, gsd=gsd), types={"t": 1.0},
           centers=None, radii=None, cell_types_list=None, path=None, center=None,
           spheroid_radius=None, floor=0.0, gap=0.0)
    return make_cells(c, box, ["t"], seed)


def brute_force_check(g, centers, radii, box, periodic, reach, points):
    """Every cell with (minimum-image) distance ≤ radius + reach from a point
    is in the point's bin."""
    box = np.asarray(box)
    bins = bin_of(g, points)
    for p, b in zip(points, bins):
        d = p - centers
        for a in range(3):
            if periodic[a]:
                d[:, a] -= box[a] * np.round(d[:, a] / box[a])
        near = np.flatnonzero(np.linalg.norm(d, axis=1) <= radii + reach)
        listed = g.cells_in_bin(b)
        missing = np.setdiff1d(near, listed)
        assert missing.size == 0, f"point {p} bin {b}: cells {missing} not listed"


def check_structure(g, box):
    nb = int(np.prod(g.nbins))
    assert g.start.shape == (nb + 1,) and g.start.dtype == np.int64
    assert g.items.dtype == np.int32 and g.start[0] == 0 and g.start[-1] == len(g.items)
    assert np.all(np.diff(g.start) >= 0)
    for b in range(nb):
        lst = g.cells_in_bin(b)
        assert np.all(np.diff(lst) > 0)  # increasing, no duplicates
    np.testing.assert_allclose(g.nbins * g.bin_size, box)
    assert np.all(g.origin == 0)


def sample_points(rng, box, n, outside):
    """Uniform points, points near faces/edges, and (if outside) points just
    beyond the faces."""
    box = np.asarray(box)
    p = rng.random((n, 3)) * box
    q = rng.random((n, 3)) * box
    face = rng.integers(0, 3, n)
    q[np.arange(n), face] = rng.choice([0.0, 1.0], n) * box[face] + rng.normal(0, 1e-3, n)
    q[np.arange(n), face] = np.clip(q[np.arange(n), face], 0, box[face])
    pts = [p, q, np.array([[0, 0, 0], box, [box[0], 0, box[2]]], dtype=float)]
    if outside:
        o = rng.random((n // 4, 3)) * box
        o[:, 0] = np.where(rng.random(n // 4) < 0.5, -rng.random(n // 4) * 3, box[0] + rng.random(n // 4) * 3)
        pts.append(o)
    return np.concatenate(pts)


@pytest.mark.parametrize("periodic", [(False, False, False), (True, True, False), (True, True, True)])
@pytest.mark.parametrize("reach", [0.0, 1.5, 8.0])
def test_brute_force_listing(periodic, reach):
    box = (120.0, 100.0, 60.0)
    cells = packed(300, box, 1, gsd=1.2)
    g = build_cell_grid(cells.centers, cells.radii, box, periodic, reach)
    check_structure(g, box)
    rng = np.random.default_rng(0)
    pts = sample_points(rng, box, 2000, outside=not periodic[0])
    brute_force_check(g, cells.centers, cells.radii, box, periodic, reach, pts)


def test_periodic_image_listed():
    # A cell touching the x = 0 face must be listed by bins at the far x face.
    box = (100.0, 100.0, 100.0)
    g1 = np.arange(5.0, 100.0, 10.0)  # a lattice of touching cells: many bins
    centers = np.stack(np.meshgrid(g1, g1, g1, indexing="ij"), -1).reshape(-1, 3)
    centers = np.concatenate([[[5.0, 50.0, 50.0]], centers[centers[:, 0] > 10]])
    radii = np.full(len(centers), 5.0)
    g = build_cell_grid(centers, radii, box, (True, False, False), 1.0)
    far = np.array([[99.5, 50.0, 50.0]])
    assert g.nbins[0] > 2
    assert 0 in g.cells_in_bin(bin_of(g, far)[0])
    g = build_cell_grid(centers, radii, box, (False, False, False), 1.0)
    assert 0 not in g.cells_in_bin(bin_of(g, far)[0])


@pytest.mark.parametrize("box, periodic", [((30.0, 30.0, 30.0), (True, True, True)),
                                           ((12.0, 40.0, 25.0), (True, False, True))])
def test_few_bins_large_reach(box, periodic):
    # Reach comparable to the box: one or two bins per axis, images wrap.
    rng = np.random.default_rng(3)
    centers = rng.random((5, 3)) * np.asarray(box) * 0.6 + np.asarray(box) * 0.2
    radii = np.full(5, 2.0)
    g = build_cell_grid(centers, radii, box, periodic, 6.0)
    check_structure(g, box)
    pts = rng.random((3000, 3)) * np.asarray(box)
    brute_force_check(g, centers, radii, box, periodic, 6.0, pts)


def test_bin_cap(monkeypatch):
    # Tiny cells in a big box: bins are widened to respect the cap.
    monkeypatch.setattr(locality, "MAX_BINS", 1000)
    box = (1000.0, 1000.0, 1000.0)
    rng = np.random.default_rng(5)
    centers = rng.random((20000, 3)) * 990 + 5
    radii = np.full(20000, 0.5)
    g = build_cell_grid(centers, radii, box, (False, False, False), 0.1)
    assert int(np.prod(g.nbins)) <= 1000 and np.all(g.nbins >= 1)
    pts = rng.random((300, 3)) * 1000
    brute_force_check(g, centers, radii, box, (False,) * 3, 0.1, pts)


def test_bin_of_formula():
    box = (100.0, 70.0, 30.0)
    cells = packed(50, box, 2)
    g = build_cell_grid(cells.centers, cells.radii, box, (False,) * 3, 0.5)
    pts = np.array([[0.0, 0.0, 0.0], [100.0, 70.0, 30.0], [-5.0, 80.0, 15.0], [50.0, 35.0, 15.0]])
    nx, ny, nz = g.nbins
    exp = []
    for x, y, z in pts:
        ix = min(max(int(np.floor(x / g.bin_size[0])), 0), nx - 1)
        iy = min(max(int(np.floor(y / g.bin_size[1])), 0), ny - 1)
        iz = min(max(int(np.floor(z / g.bin_size[2])), 0), nz - 1)
        exp.append((ix * ny + iy) * nz + iz)
    assert bin_of(g, pts).tolist() == exp
    assert exp[0] == 0 and exp[1] == nx * ny * nz - 1


def test_no_cells():
    g = build_cell_grid(np.zeros((0, 3)), np.zeros(0), (10.0, 10.0, 10.0), (False,) * 3, 1.0)
    assert g.nbins.tolist() == [1, 1, 1] and g.start.tolist() == [0, 0] and len(g.items) == 0
    assert bin_of(g, np.array([[5.0, 5.0, 5.0]])).tolist() == [0]


@pytest.mark.parametrize("periodic", [(False,) * 3, (True,) * 3])
def test_dense_packing_small_lists_and_fast(periodic):
    # 10⁴ cells at φ ≈ 0.27 (as dense as random packing comfortably gets).
    box = (340.0, 340.0, 170.0)
    cells = packed(10000, box, 7)
    build_cell_grid(cells.centers[:10], cells.radii[:10], box, periodic, 0.5)  # JIT warm-up
    t = time.perf_counter()
    g = build_cell_grid(cells.centers, cells.radii, box, periodic, 0.5)
    elapsed = time.perf_counter() - t
    counts = np.diff(g.start)
    assert counts.mean() < 8 and counts.max() <= 20
    assert elapsed < 1.0
    rng = np.random.default_rng(1)
    brute_force_check(g, cells.centers, cells.radii, box, periodic, 0.5, rng.random((300, 3)) * np.asarray(box))
