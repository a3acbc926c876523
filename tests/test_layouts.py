"""Cell layouts: geometry, type fractions, determinism and error messages."""
import time
from types import SimpleNamespace as NS

import h5py
import numpy as np
import pytest

from exodiff.errors import ConfigError
from exodiff.layouts import Cells, make_cells, type_counts, validate_cells

NAMES = ["donor", "target"]
BOX = (200.0, 200.0, 100.0)


def cfg(**kw):
    """Duck-typed [cells] section with the config defaults."""
    d = dict(layout="random", count=200, radius=NS(median=5.0, gsd=1.0),
             types={"donor": 0.1, "target": 0.9}, centers=None, radii=None,
             cell_types_list=None, path=None, center=None, spheroid_radius=None,
             floor=0.0, gap=0.0)
    d.update(kw)
    return NS(**d)


def min_gap(cells):
    """Smallest surface-to-surface distance over all pairs (brute force) [µm]."""
    c, r = cells.centers, cells.radii
    if len(r) < 2:
        return np.inf
    best = np.inf
    for i in range(0, len(r), 500):  # chunks keep memory small
        d = np.linalg.norm(c[i:i + 500, None, :] - c[None, :, :], axis=2)
        s = d - r[i:i + 500, None] - r[None, :]
        idx = np.arange(i, min(i + 500, len(r)))
        s[np.arange(len(idx)), idx] = np.inf
        best = min(best, s.min())
    return best


def assert_valid(cells, box, n):
    assert isinstance(cells, Cells)
    assert cells.centers.shape == (n, 3) and cells.centers.dtype == np.float64
    assert cells.radii.shape == (n,) and cells.radii.dtype == np.float64
    assert cells.types.shape == (n,) and cells.types.dtype == np.int32
    assert cells.type_names == NAMES
    assert np.all(cells.radii > 0)
    assert np.all(cells.centers - cells.radii[:, None] >= -1e-9)
    assert np.all(cells.centers + cells.radii[:, None] <= np.asarray(box) + 1e-9)
    assert min_gap(cells) >= -1e-9


@pytest.mark.parametrize("layout", ["random", "monolayer", "spheroid"])
def test_packed_layouts_valid(layout):
    n = 200  # monolayer: area fraction 0.39; spheroid: default ball r ≈ 46 µm
    cells = make_cells(cfg(layout=layout, count=n), BOX, NAMES, 7)
    assert_valid(cells, BOX, n)
    assert np.bincount(cells.types, minlength=2).tolist() == [20, 180]


def test_monolayer_rests_on_floor():
    c = cfg(layout="monolayer", count=200, floor=10.0, radius=NS(median=5.0, gsd=1.2))
    cells = make_cells(c, BOX, NAMES, 1)
    assert_valid(cells, BOX, 200)
    np.testing.assert_allclose(cells.centers[:, 2], 10.0 + cells.radii)


def test_monolayer_floor_outside():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="monolayer", floor=95.0), BOX, NAMES, 1)
    assert e.value.key == "cells.floor"


def test_spheroid_inside_ball():
    center = (80.0, 90.0, 50.0)
    c = cfg(layout="spheroid", count=150, center=center, spheroid_radius=45.0)
    cells = make_cells(c, BOX, NAMES, 2)
    assert_valid(cells, BOX, 150)
    dist = np.linalg.norm(cells.centers - np.asarray(center), axis=1) + cells.radii
    assert dist.max() <= 45.0 + 1e-9


def test_spheroid_default_radius_fits_and_is_dense():
    cells = make_cells(cfg(layout="spheroid", count=1000), (300.0, 300.0, 300.0), NAMES, 3)
    assert_valid(cells, (300.0,) * 3, 1000)
    d = np.linalg.norm(cells.centers - 150.0, axis=1) + cells.radii
    phi = np.sum(cells.radii ** 3) / d.max() ** 3
    assert 0.25 < phi < 0.4


def test_spheroid_too_big_for_domain():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="spheroid", count=10, spheroid_radius=60.0), BOX, NAMES, 1)
    assert e.value.key == "cells.spheroid_radius"
    with pytest.raises(ConfigError) as e:  # default radius for 5000 cells > 50 µm
        make_cells(cfg(layout="spheroid", count=5000), BOX, NAMES, 1)
    assert e.value.key == "cells.spheroid_radius"


def test_lognormal_radii():
    cells = make_cells(cfg(count=1000, radius=NS(median=4.0, gsd=1.3)), BOX, NAMES, 5)
    assert_valid(cells, BOX, 1000)
    logs = np.log(cells.radii)
    assert abs(np.exp(np.median(logs)) - 4.0) < 0.2
    assert abs(np.exp(np.std(logs)) - 1.3) < 0.05
    assert np.all(np.abs(logs - np.log(4.0)) <= 3 * np.log(1.3) + 1e-12)  # tail truncated


def test_dense_random_2000_cells():
    # φ = 2000 · (4/3)π 5³ / (200·200·100) ≈ 0.26
    t = time.perf_counter()
    cells = make_cells(cfg(count=2000), BOX, NAMES, 11)
    assert time.perf_counter() - t < 30  # includes JIT compile on a cold cache
    assert_valid(cells, BOX, 2000)
    assert np.bincount(cells.types).tolist() == [200, 1800]


def test_impossible_packing_fails_fast():
    t = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(count=5000), BOX, NAMES, 1)  # φ ≈ 0.65: beyond random packing
    assert time.perf_counter() - t < 30
    assert e.value.key == "cells.count"
    msg = str(e.value)
    assert "placed only" in msg and "of 5000 cells" in msg and "volume fraction" in msg


def test_cell_larger_than_box():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(count=1, radius=NS(median=60.0, gsd=1.0)), BOX, NAMES, 1)
    assert e.value.key == "cells.radius"


def test_deterministic_for_seed():
    a = make_cells(cfg(count=500, radius=NS(median=5.0, gsd=1.2)), BOX, NAMES, 42)
    b = make_cells(cfg(count=500, radius=NS(median=5.0, gsd=1.2)), BOX, NAMES, 42)
    c = make_cells(cfg(count=500, radius=NS(median=5.0, gsd=1.2)), BOX, NAMES, 43)
    assert np.array_equal(a.centers, b.centers)
    assert np.array_equal(a.radii, b.radii)
    assert np.array_equal(a.types, b.types)
    assert not np.array_equal(a.centers, c.centers)


def test_batching_does_not_change_result(monkeypatch):
    import exodiff.layouts as lay
    a = make_cells(cfg(count=300), BOX, NAMES, 8)
    monkeypatch.setattr(lay, "PACK_BATCH", 7)  # refill uniforms every 7 attempts
    b = make_cells(cfg(count=300), BOX, NAMES, 8)
    assert np.array_equal(a.centers, b.centers)


def test_type_counts_largest_remainder():
    assert type_counts([0.1, 0.9], 2000).tolist() == [200, 1800]
    assert type_counts([1 / 3, 1 / 3, 1 / 3], 10).tolist() == [4, 3, 3]
    assert type_counts([0.25, 0.75], 3).tolist() == [1, 2]  # 0.75 vs 0.25 remainder
    assert type_counts([0.5, 0.5], 0).tolist() == [0, 0]


def test_types_three_way():
    names = ["a", "b", "c"]
    cells = make_cells(cfg(count=301, types={"c": 0.5, "a": 0.25, "b": 0.25}), BOX, names, 3)
    counts = np.bincount(cells.types, minlength=3)
    assert counts.sum() == 301 and counts[2] in (150, 151) and abs(counts[0] - 75) <= 1


def test_unknown_type_in_fractions():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(types={"tumor": 1.0}), BOX, NAMES, 1)
    assert e.value.key == "cells.types" and "tumor" in str(e.value)


def test_zero_cells():
    cells = make_cells(cfg(count=0), BOX, NAMES, 1)
    assert cells.centers.shape == (0, 3) and cells.types.shape == (0,)


# ---- list layout -----------------------------------------------------------

def test_list_layout():
    c = cfg(layout="list", centers=[[10, 10, 10], [30, 10, 10], [50, 50, 50]],
            radii=[5, 6, 7], cell_types_list=["target", "donor", "target"])
    cells = make_cells(c, BOX, NAMES, 1)
    assert cells.types.tolist() == [1, 0, 1]
    assert cells.radii.tolist() == [5, 6, 7]
    c = cfg(layout="list", centers=[[10, 10, 10], [30, 10, 10]], types={"target": 1.0})
    cells = make_cells(c, BOX, NAMES, 1)
    assert cells.radii.tolist() == [5, 5] and cells.types.tolist() == [1, 1]


def test_list_overlap_named():
    c = cfg(layout="list", centers=[[10, 10, 10], [50, 50, 50], [16, 10, 10]], types={"target": 1.0})
    with pytest.raises(ConfigError) as e:
        make_cells(c, BOX, NAMES, 1)
    assert e.value.key == "cells"
    assert "cells 0 and 2 overlap: centre distance 6 µm < 10 µm" in str(e.value)


def test_list_outside_named():
    c = cfg(layout="list", centers=[[10, 10, 10], [50, 197, 50]], types={"target": 1.0})
    with pytest.raises(ConfigError) as e:
        make_cells(c, BOX, NAMES, 1)
    msg = str(e.value)
    assert e.value.key == "cells" and "cell 1" in msg and "y = 200 µm face" in msg
    c = cfg(layout="list", centers=[[3, 10, 10]], types={"target": 1.0})
    with pytest.raises(ConfigError, match="x = 0 face"):
        make_cells(c, BOX, NAMES, 1)


def test_list_bad_radius_and_type():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="list", centers=[[10, 10, 10]], radii=[-1.0]), BOX, NAMES, 1)
    assert e.value.key == "cells.radii"
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="list", centers=[[10, 10, 10]], cell_types_list=["nerve"]), BOX, NAMES, 1)
    assert e.value.key == "cells.types" and "nerve" in str(e.value)
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="list", centers=[[10, 10, 10]], radii=[5, 5]), BOX, NAMES, 1)
    assert e.value.key == "cells.radii"


def test_touching_cells_allowed():
    c = cfg(layout="list", centers=[[10, 10, 10], [20, 10, 10]], types={"target": 1.0})
    make_cells(c, BOX, NAMES, 1)


def test_validate_many_cells_fast():
    # 10⁴ cells on a lattice (touching neighbours), then one overlap.
    g = np.arange(10.0, 200.0, 10.0)
    xyz = np.stack(np.meshgrid(g, g, np.arange(10.0, 100.0, 10.0), indexing="ij"), -1).reshape(-1, 3)
    r = np.full(len(xyz), 5.0)
    box = (210.0, 210.0, 100.0)
    t = time.perf_counter()
    validate_cells(xyz, r, box)
    xyz[-1] = xyz[-2] + [0, 0, 3.0]
    with pytest.raises(ConfigError, match=f"cells {len(xyz) - 2} and {len(xyz) - 1} overlap"):
        validate_cells(xyz, r, box)
    assert time.perf_counter() - t < 10


# ---- file layout -----------------------------------------------------------

def write(tmp_path, text, name="cells.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_csv_round_trip(tmp_path):
    ref = make_cells(cfg(count=100, radius=NS(median=5.0, gsd=1.2)), BOX, NAMES, 9)
    lines = ["x,y,z,radius,type"]
    for (x, y, z), r, t in zip(ref.centers, ref.radii, ref.types):
        lines.append(f"{float(x)!r},{float(y)!r},{float(z)!r},{float(r)!r},{NAMES[t] if t else 0}")  # names and indices
    path = write(tmp_path, "\n".join(lines) + "\n")
    cells = make_cells(cfg(layout="file", path=path), BOX, NAMES, 0)
    assert np.array_equal(cells.centers, ref.centers)
    assert np.array_equal(cells.radii, ref.radii)
    assert np.array_equal(cells.types, ref.types)


def test_csv_column_order_comments_blank_lines(tmp_path):
    path = write(tmp_path, "# my cells\ntype, radius, x, y, z\n\ndonor, 5, 10, 10, 10\n1, 4, 30, 30, 30\n")
    cells = make_cells(cfg(layout="file", path=path), BOX, NAMES, 0)
    assert cells.types.tolist() == [0, 1]
    assert cells.centers.tolist() == [[10, 10, 10], [30, 30, 30]]


def test_hdf5_round_trip(tmp_path):
    ref = make_cells(cfg(count=50), BOX, NAMES, 4)
    p = str(tmp_path / "cells.h5")
    with h5py.File(p, "w") as f:
        for a, c in enumerate("xyz"):
            f[c] = ref.centers[:, a]
        f["radius"] = ref.radii
        f["type"] = np.array([NAMES[t].encode() for t in ref.types])
    cells = make_cells(cfg(layout="file", path=p), BOX, NAMES, 0)
    assert np.array_equal(cells.centers, ref.centers) and np.array_equal(cells.types, ref.types)
    with h5py.File(p, "a") as f:
        del f["type"]
        f["type"] = ref.types.astype(np.int64)
    cells = make_cells(cfg(layout="file", path=p), BOX, NAMES, 0)
    assert np.array_equal(cells.types, ref.types)


@pytest.mark.parametrize("text, expect", [
    ("x,y,radius,type\n1,2,3,donor\n", "lacks column(s) z"),
    ("x,y,z,radius,type\n10,10,abc,5,donor\n", "line 2, column z: 'abc' is not a number"),
    ("x,y,z,radius,type\n10,10,10,5,donor\n30,30,30,5,nerve\n", "line 3, column type: unknown cell type 'nerve'"),
    ("x,y,z,radius,type\n10,10,10,5,7\n", "type index 7 out of range"),
    ("x,y,z,radius,type\n10,10,10,5\n", "line 2: 4 fields"),
    ("", "empty file"),
    ("x,y,z,radius,type\n", "contains no cells"),
])
def test_csv_errors(tmp_path, text, expect):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="file", path=path), BOX, NAMES, 0)
    assert e.value.key == "cells.path"
    assert path in str(e.value) and expect in str(e.value)


def test_csv_geometry_errors_name_line(tmp_path):
    path = write(tmp_path, "x,y,z,radius,type\n10,10,10,5,donor\n50,50,50,5,target\n14,10,10,5,target\n")
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="file", path=path), BOX, NAMES, 0)
    msg = str(e.value)
    assert "overlap" in msg and "line 2" in msg and "line 4" in msg
    path = write(tmp_path, "x,y,z,radius,type\n10,10,10,-5,donor\n", "neg.csv")
    with pytest.raises(ConfigError, match="line 2.*radius -5"):
        make_cells(cfg(layout="file", path=path), BOX, NAMES, 0)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="file", path=str(tmp_path / "nope.csv")), BOX, NAMES, 0)
    assert e.value.key == "cells.path" and "nope.csv" in str(e.value) and "not found" in str(e.value)


def test_unknown_layout():
    with pytest.raises(ConfigError) as e:
        make_cells(cfg(layout="hexagonal"), BOX, NAMES, 0)
    assert e.value.key == "cells.layout"
