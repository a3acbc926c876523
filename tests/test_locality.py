"""The box, minimum image and binning shared by the grid, the layouts and the
analyses (exodiff/locality.py)."""
import numpy as np
import pytest

from exodiff import locality
from exodiff.locality import Box, bin_index, bin_of, grid_dims


def brute_nearest(box, points, queries):
    """(distance, index) of the nearest point to each query, over all
    points, with the minimum image on the periodic axes."""
    d = box.minimum_image(queries[:, None, :] - points[None, :, :])
    r = np.sqrt((d * d).sum(axis=-1))
    j = np.argmin(r, axis=1)
    return r[np.arange(len(queries)), j], j


@pytest.mark.parametrize("periodic", [(False, False, False), (True, True, False), (True, True, True)])
def test_tree_finds_the_minimum_image_neighbours(periodic):
    box = Box([30.0, 20.0, 10.0], periodic)
    rng = np.random.default_rng(4)
    points = rng.random((400, 3)) * box.lengths
    queries = rng.random((200, 3)) * box.lengths
    dist, idx = box.tree(points).query(box.wrap(queries))
    want_d, want_j = brute_nearest(box, points, queries)
    np.testing.assert_allclose(dist, want_d, rtol=1e-12, atol=1e-12)
    assert np.array_equal(idx, want_j)
    # near a periodic face the nearest point is often across it
    across = np.abs(queries - points[idx]).max(axis=1) > box.lengths.max() / 2
    assert across.any() == any(periodic)


def test_minimum_image_and_wrap():
    box = Box.from_faces([10.0, 10.0, 10.0], ["periodic", "periodic", "reflect", "reflect",
                                               "periodic", "periodic"])
    assert box.periodic.tolist() == [True, False, True]
    d = box.minimum_image(np.array([[9.0, 9.0, -6.0]]))
    assert d.tolist() == [[-1.0, 9.0, 4.0]]  # y is not periodic: unchanged
    p = box.wrap(np.array([[-1e-17, 12.0, 10.0]]))
    assert p.tolist() == [[0.0, 12.0, 0.0]]  # -1e-17 + 10 rounds to 10: wrapped to 0
    assert np.all((p[:, [0, 2]] >= 0) & (p[:, [0, 2]] < 10.0))
    assert Box.from_faces([1.0, 2.0, 3.0], ()).periodic.tolist() == [False] * 3
    assert Box([1.0, 2.0, 3.0], [False] * 3).volume == 6.0


def test_bin_index_is_the_formula_of_bin_of():
    rng = np.random.default_rng(2)
    nbins, size = np.array([7, 3, 5]), np.array([1.5, 4.0, 2.0])
    pts = rng.uniform(-3.0, 15.0, (500, 3))  # outside the box too: edge bins
    ids = bin_of(pts, size, nbins)
    for p, b in zip(pts, ids):
        i = [bin_index(p[a], size[a], nbins[a]) for a in range(3)]
        assert b == (i[0] * nbins[1] + i[1]) * nbins[2] + i[2]
    assert ids.min() >= 0 and ids.max() < nbins.prod()


def test_grid_dims_tiles_the_box_and_respects_the_caps(monkeypatch):
    nbins, size = grid_dims([100.0, 50.0, 10.0], 7.0, 10, 64)
    assert np.allclose(nbins * size, [100.0, 50.0, 10.0]) and np.all(size >= 7.0)
    assert nbins.tolist() == [14, 7, 1]
    # few items in a big box: edge kept ≥ (V / (bins_per_item n))^(1/3)
    nbins, size = grid_dims([1000.0] * 3, 1.0, 1, 8.0)
    assert nbins.prod() <= 8
    monkeypatch.setattr(locality, "MAX_BINS", 100)
    nbins, _ = grid_dims([1000.0] * 3, 1.0, 10**6, 8.0)
    assert nbins.prod() <= 100
