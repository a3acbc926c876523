"""Analyses (exodiff/analysis.py) on synthetic run files whose answers are
known exactly, written with RunWriter, and on a short real run."""
import math
import shutil

import h5py
import numpy as np
import pytest

from exodiff import analysis as A
from exodiff.errors import InputError
from exodiff.analysis import open_run
from exodiff.io import RunWriter
from exodiff.io.layout import no_fates
from exodiff.kernels.constants import STATE_NAMES

FREE, BOUND, INTERNALIZED, EXITED, CLEARED, PENDING = 1, 2, 3, 4, 5, 0

DONOR_CONFIG = """[run]
duration = 10
dt = 0.01
seed = 1
[domain]
size = [100, 100, 100]
[cells]
layout = "list"
centers = [[50, 50, 50]]
radius = 5
type = "donor"
[cell_types.donor]
secretion_rate = "1 /s"
secretes = "ev"
[cell_types.target]
kappa = 1
[vesicles.ev]
radius = 0.05
diffusion = 4
count = 10
"""


def write_synthetic(path, *, N, box=(100.0, 100.0, 100.0), boundary=("reflect",) * 6,
                    centers=(), radii=(), types=(), type_names=("donor", "target"),
                    species=None, species_names=("ev",), cargo_names=("miR21",),
                    snapshots=(), observations=(), dt=0.01, config_text=DONOR_CONFIG,
                    sample_ids=None, positions=True, seed=1, backend="numpy"):
    """A run file from explicit frames.  snapshots: dicts with step, time,
    position [N,3], image [N,3], state [N], cell [N], milestones (name -> [N]);
    observations: dicts with step, time, counts[len(STATE_NAMES)], bound[M] or [M,S],
    internalized[M] or [M,S], cargo[M,K] (missing per-cell arrays are zeros)."""
    M = len(radii)
    K = len(cargo_names)
    kw = dict(config_text=config_text, seed=seed, backend=backend, device="cpu", dt=dt,
              box_edges=list(box), boundary=list(boundary),
              cell_centers=np.asarray(centers, dtype=float).reshape(M, 3), cell_radii=list(radii),
              cell_types=np.asarray(types, dtype=np.int32).reshape(M), cell_type_names=list(type_names),
              species=np.zeros(N, np.int32) if species is None else species,
              vesicle_radius=np.full(N, 0.05), species_names=list(species_names),
              cargo_names=list(cargo_names), sample_ids=sample_ids, write_positions=positions,
              compression="none", n_snapshots_hint=max(1, len(snapshots)),
              n_observations_hint=max(1, len(observations)), exodiff_version="test",
              extra_parameters={"duration": 10.0})
    with RunWriter(path, **kw) as w:
        for ob in observations:
            per_species = [np.reshape(ob.get(k, np.zeros(M)), (M, len(species_names)))
                           for k in ("bound", "internalized")]
            counts = np.asarray(ob["counts"])  # 0.3's six states: the later ones are 0
            counts = np.pad(counts, (0, len(STATE_NAMES) - counts.size))
            w.write_observation(ob["step"], ob["time"], counts, *per_species,
                                ob.get("cargo", np.zeros((M, K))))
        for sn in snapshots:
            ms = no_fates(N)
            ms["birth_time"][:] = np.nan  # as the tests before fate tables wrote them
            ms.update(sn.get("milestones", {}))
            w.write_snapshot(sn["step"], sn["time"], sn.get("position", np.zeros((N, 3))),
                             sn.get("image", np.zeros((N, 3), np.int32)), sn["state"],
                             sn.get("cell", np.full(N, -1, np.int32)), ms)
    return path


def counts_of(state):
    return np.bincount(np.asarray(state), minlength=len(STATE_NAMES))


# ------------------------------------------------------------- uptake, dose


def test_uptake_curves_sum_and_average_cells_by_type(tmp_path):
    types = [0, 1, 1, 1]
    bound = [np.array([0, 1, 2, 3]), np.array([0, 2, 0, 4])]
    inside = [np.array([0, 0, 0, 0]), np.array([1, 1, 2, 3])]
    counts = [np.array([4, 10, 6, 0, 0, 0]), np.array([2, 3, 6, 7, 0, 0])]
    path = write_synthetic(tmp_path / "u.h5", N=20, centers=np.zeros((4, 3)) + 50, radii=[1] * 4, types=types,
                           observations=[dict(step=k * 100, time=k * 1.0, counts=counts[k], bound=bound[k],
                                              internalized=inside[k]) for k in range(2)])
    with open_run(path) as run:
        u = run.uptake_curves()
        np.testing.assert_array_equal(u.times, [0.0, 1.0])
        np.testing.assert_array_equal(u.n_cells, [1, 3])
        np.testing.assert_array_equal(u.bound, [[0, 6], [0, 6]])
        np.testing.assert_array_equal(u.internalized, [[0, 0], [1, 6]])
        np.testing.assert_allclose(u.mean_internalized[1], [1.0, 2.0])
        np.testing.assert_array_equal(u.released, [16, 18])
        np.testing.assert_allclose(u.fraction_taken_up[1], [1 / 18, 12 / 18])
        df = u.to_frame()
        assert list(df["type"]) == ["donor", "target", "donor", "target"]
        assert df["taken_up"].tolist() == [0, 6, 1, 12]


def test_dose_summary_is_exact(tmp_path):
    inside = np.array([0, 0, 1, 3, 7])
    cargo = np.stack([inside * 10.0], axis=1)
    path = write_synthetic(tmp_path / "d.h5", N=20, centers=np.zeros((5, 3)) + 50, radii=[1] * 5,
                           types=[0, 1, 1, 1, 1],
                           observations=[dict(step=0, time=0.0, counts=[0, 20, 0, 0, 0, 0]),
                                         dict(step=5, time=2.0, counts=[0, 9, 0, 11, 0, 0],
                                              internalized=inside, cargo=cargo)])
    with open_run(path) as run:
        d = run.dose()
        assert d.time == 2.0
        np.testing.assert_array_equal(d.vesicles, inside)
        s = d.summary.set_index(["type", "quantity"])
        row = s.loc[("target", "vesicles")]
        x = np.array([0, 1, 3, 7.0])
        assert row["cells"] == 4 and row["mean"] == pytest.approx(2.75)
        assert row["std"] == pytest.approx(x.std(ddof=1))
        assert row["cv"] == pytest.approx(x.std(ddof=1) / 2.75)
        assert row["median"] == 2.0 and row["max"] == 7.0 and row["reached"] == 0.75
        # G = Σ(2i−n−1)x_i/(nΣx) = (−3·0 − 1·1 + 1·3 + 3·7)/(4·11)
        assert row["gini"] == pytest.approx(23 / 44)
        assert s.loc[("target", "miR21"), "mean"] == pytest.approx(27.5)
        assert "donor" not in s.index.get_level_values("type")  # a donor type that took up nothing
        assert not s["donor"].any()
        assert run.dose(time=1.0).vesicles.sum() == 0  # the observation at t = 0
        with pytest.raises(InputError, match="no observation at or before"):
            run.dose(time=-1.0)
        table = run.cell_results()
        assert table["internalized"].tolist() == inside.tolist()
        assert table["cargo_miR21"].tolist() == (inside * 10.0).tolist()


def test_gini_limits():
    assert A.gini([5, 5, 5, 5]) == 0.0
    assert A.gini([0, 0, 0, 4]) == pytest.approx(0.75)  # (n−1)/n for one cell taking all
    assert math.isnan(A.gini([]))


# ------------------------------------------------------------- range


def test_uptake_range_distances_bins_and_decay_length(tmp_path):
    # donor at the origin corner of a periodic box; targets along x at known
    # distances, one reached through the periodic face (x = 95 is 10 µm away)
    L = 100.0
    d = np.array([10.0, 12.0, 30.0, 32.0, 50.0])
    xs = np.array([5.0 + 10.0, 5.0 + 12.0, 5.0 + 30.0, 5.0 + 32.0, 5.0 + 50.0])
    xs[0] = 95.0  # 10 µm from the donor through the face
    centers = np.array([[5.0, 50, 50]] + [[x, 50, 50] for x in xs])
    lam = 20.0
    uptake = np.round(1e6 * np.exp(-d / lam)).astype(int)
    bound = np.concatenate([[0], uptake // 2])
    inside = np.concatenate([[0], uptake - uptake // 2])
    path = write_synthetic(tmp_path / "r.h5", N=10, box=(L, L, L), boundary=["periodic"] * 6,
                           centers=centers, radii=[1.0] * 6, types=[0, 1, 1, 1, 1, 1],
                           observations=[dict(step=0, time=0.0, counts=[0, 10, 0, 0, 0, 0],
                                              bound=bound, internalized=inside)])
    with open_run(path) as run:
        assert run.donor_types == ("donor",)
        r = run.uptake_range(bins=[0, 20, 40, 60])
        assert math.isnan(r.distance[0]) and r.nearest_donor[0] == -1
        np.testing.assert_allclose(r.distance[1:], d, rtol=1e-12)
        np.testing.assert_array_equal(r.n_cells, [2, 2, 1])
        np.testing.assert_allclose(r.mean, [uptake[:2].mean(), uptake[2:4].mean(), uptake[4]])
        np.testing.assert_allclose(r.sem[:2], [uptake[:2].std(ddof=1) / math.sqrt(2),
                                               uptake[2:4].std(ddof=1) / math.sqrt(2)])
        assert math.isnan(r.sem[2])
        r_fine = run.uptake_range(bins=[9, 11, 13, 29, 31, 33, 49, 51])  # one cell per used bin
        assert r_fine.decay_length == pytest.approx(lam, rel=1e-4)
        surface = run.uptake_range(measure="surface", bins=3)
        np.testing.assert_allclose(surface.distance[1:], d - 2.0)
        assert run.uptake_range(quantity="bound").uptake[1] == uptake[0] // 2


def test_uptake_range_without_donors_says_so(tmp_path):
    cfg = DONOR_CONFIG.replace('secretion_rate = "1 /s"', "secretion_rate = 0")
    path = write_synthetic(tmp_path / "nd.h5", N=4, centers=[[50, 50, 50]], radii=[5.0], types=[1],
                           config_text=cfg, observations=[dict(step=0, time=0.0, counts=[0, 4, 0, 0, 0, 0])])
    with open_run(path) as run:
        assert run.donor_types == ()
        with pytest.raises(InputError, match="no donor"):
            run.uptake_range()
        assert run.cell_results()["nearest_donor_distance"].isna().all()


# ------------------------------------------------------------- first passage


def test_kaplan_meier_matches_hand_computation():
    t, s, n, d, se = A.kaplan_meier([1, 2, 2, 3, 4, 5], [1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(t, [1, 2, 3, 5])
    np.testing.assert_array_equal(n, [6, 5, 3, 1])  # the one censored at 2 is at risk at 2
    np.testing.assert_array_equal(d, [1, 1, 1, 1])
    np.testing.assert_allclose(s, [5 / 6, 2 / 3, 4 / 9, 0.0])
    assert se[0] == pytest.approx(5 / 6 * math.sqrt(1 / 30))
    assert se[1] == pytest.approx(2 / 3 * math.sqrt(1 / 30 + 1 / 20))
    assert se[-1] == 0.0


def test_first_passage_censors_exits_clearance_and_the_end(tmp_path):
    nan = np.nan
    # vesicle: 0 bound at 2 (born 0); 1 bound at 5 (born 1); 2 never bound (censored at the end, 10);
    # 3 exited at 4 (censored at 4); 4 cleared at 7, between snapshots at 6 and 8 (censored at 7;
    # at 6, the last snapshot before, in files without a fate table);
    # 5 born at 9, not bound (censored at 10 → 1 s); 6 not yet born at the end (left out);
    # 7 bound at 3 and internalized at 7 (born 0)
    birth = np.array([0, 1, 0, 0, 0, 9, 12, 0], dtype=float)
    first = np.array([2, 5, nan, nan, nan, nan, nan, 3])
    inside_t = np.array([nan, nan, nan, nan, nan, nan, nan, 7])
    exit_t = np.array([nan, nan, nan, 4, nan, nan, nan, nan])
    cleared_t = np.array([nan, nan, nan, nan, 7, nan, nan, nan])
    N = 8
    times = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    snaps = []
    for k, t in enumerate(times):
        st = np.full(N, FREE, np.int8)
        st[birth > t] = PENDING
        st[(first <= t)] = BOUND
        st[inside_t <= t] = INTERNALIZED
        st[exit_t <= t] = EXITED
        if t >= 8:
            st[4] = CLEARED
        snaps.append(dict(step=k * 200, time=t, state=st,
                          milestones={"birth_time": birth, "first_bound_time": first,
                                      "internalized_time": inside_t, "exit_time": exit_t,
                                      "cleared_time": cleared_t,
                                      "first_bound_cell": np.where(first <= t, 0, -1),
                                      "internalized_cell": np.where(inside_t <= t, 0, -1)}))
    path = write_synthetic(tmp_path / "f.h5", N=N, snapshots=snaps,
                           observations=[dict(step=0, time=0.0, counts=counts_of(snaps[0]["state"]))])
    old = tmp_path / "old.h5"  # the same without the fate table, as exodiff 0.2 wrote it
    shutil.copy(path, old)
    with h5py.File(old, "r+") as h:
        del h["fates"]
    for file, cleared_at in ((path, 7), (old, 6)):
        with open_run(file) as run:
            np.testing.assert_allclose(run.first_passage(event="bound").durations,
                                       [2, 4, 10, 4, cleared_at, 1, 3])
    with open_run(path) as run:
        f = run.first_passage(event="bound")
        np.testing.assert_array_equal(f.observed, [1, 1, 0, 0, 0, 0, 1])
        assert f.n_subjects == 7 and f.n_events == 3 and f.end_time == 10.0
        # KM: t=2: 1−1/6 (durations ≥ 2: all but the 1 s one); t=3: ×(1−1/5); t=4: ×(1−1/4)
        np.testing.assert_allclose(f.times, [2, 3, 4])
        np.testing.assert_allclose(f.survival, [5 / 6, 5 / 6 * 4 / 5, 5 / 6 * 4 / 5 * 3 / 4])
        assert f.median == 4.0  # S(4) = 1/2 exactly
        np.testing.assert_allclose(f.survival_at([0, 2.5, 100]), [1, 5 / 6, 0.5])
        g = run.first_passage(event="internalized")
        assert g.n_events == 1 and g.durations[-1] == 7.0
        with pytest.raises(InputError, match="no vesicle population"):
            run.first_passage(population="nope")


# ------------------------------------------------------------- MSD


def test_msd_is_exact_for_straight_lines_through_periodic_faces(tmp_path):
    L = 10.0
    N, S = 6, 4
    v = np.array([[3.0, 0, 0], [0, -4.0, 0], [1.0, 2.0, 2.0], [0, 0, 5.0], [2, 2, 2], [1, 1, 1]])
    x0 = np.full((N, 3), 5.0)
    first = np.array([np.nan] * 4 + [1.5, np.nan])  # vesicle 4 binds at t = 1.5 (then stays put)
    snaps = []
    for k in range(S):
        t = float(k)
        r = x0 + v * t
        if k >= 2:
            r[4] = x0[4] + v[4] * 1.5
        img = np.floor(r / L).astype(np.int32)
        st = np.full(N, FREE, np.int8)
        st[4] = BOUND if k >= 2 else FREE
        st[5] = PENDING if k == 0 else FREE  # born at t = 0.5
        snaps.append(dict(step=k * 100, time=t, position=r - img * L, image=img, state=st,
                          milestones={"birth_time": np.array([0, 0, 0, 0, 0, 0.5]),
                                      "first_bound_time": first}))
    path = write_synthetic(tmp_path / "m.h5", N=N, box=(L, L, L), boundary=["periodic"] * 6,
                           snapshots=snaps, observations=[dict(step=0, time=0.0, counts=counts_of(snaps[0]["state"]))])
    with open_run(path) as run:
        np.testing.assert_allclose(run.unwrapped_positions(3)[:4], x0[:4] + v[:4] * 3)
        m = run.msd()  # free: vesicles 0–3 at every lag; 4 only over [0, 1]; 5 only from t = 1
        np.testing.assert_allclose(m.lag_times, [1.0, 2.0, 3.0])
        sp = (v ** 2).sum(axis=1)
        np.testing.assert_array_equal(m.counts, [3 * 4 + 1 + 2, 2 * 4 + 1, 4])
        exp1 = (3 * sp[:4].sum() + sp[4] + 2 * sp[5]) / 15
        np.testing.assert_allclose(m.msd, [exp1, 4 * (2 * sp[:4].sum() + sp[5]) / 9, 9 * sp[:4].mean()])
        np.testing.assert_allclose(m.mean_displacement[2], 3 * v[:4].mean(axis=0))
        a = run.msd(mode="all", max_lag=1.0)
        assert a.lag_times.tolist() == [1.0]
        assert a.counts[0] == 3 * 5 + 2  # the bound one counts, its displacement frozen
        one = run.msd(population="ev", chunk_size=2)  # chunked reading gives the same
        np.testing.assert_allclose(one.msd, m.msd)
        d = run.msd().diffusion
        tau, w = m.lag_times, m.counts
        assert d == pytest.approx(np.sum(w * m.msd * tau) / (6 * np.sum(w * tau ** 2)))


def test_msd_and_profiles_need_positions(tmp_path):
    path = write_synthetic(tmp_path / "np.h5", N=3, positions=False,
                           snapshots=[dict(step=0, time=0.0, state=np.ones(3, np.int8))],
                           observations=[dict(step=0, time=0.0, counts=[0, 3, 0, 0, 0, 0])])
    with open_run(path) as run:
        for call in (run.msd, run.profile):
            with pytest.raises(InputError, match="positions were not stored"):
                call()


# ------------------------------------------------------------- profiles


def test_z_profile_counts_over_free_volume(tmp_path):
    L = np.array([10.0, 20.0, 30.0])
    # one cell of radius 4 centred at z = 12: slabs [0,10), [10,20), [20,30)
    z = np.array([1, 2, 3, 15, 25, 26, 27, 28, 29, 5.0])
    N = z.size
    pos = np.column_stack([np.full(N, 1.0), np.full(N, 1.0), z])
    st = np.full(N, FREE, np.int8)
    st[-1] = BOUND  # not in the medium: not counted
    path = write_synthetic(tmp_path / "p.h5", N=N, box=L, centers=[[5, 10, 12]], radii=[4.0], types=[1],
                           snapshots=[dict(step=0, time=0.0, position=pos, state=st)],
                           observations=[dict(step=0, time=0.0, counts=counts_of(st))])
    with open_run(path) as run:
        p = run.profile(axis="z", bins=3)
        np.testing.assert_array_equal(p.counts, [3, 1, 5])
        cap = lambda a, b: math.pi * (16 * (b - a) - ((b - 12) ** 3 - (a - 12) ** 3) / 3)  # sphere ∩ slab
        vol = np.array([200 * 10 - cap(8, 10), 200 * 10 - cap(10, 16), 200 * 10.0])
        np.testing.assert_allclose(p.volume, vol)
        np.testing.assert_allclose(p.concentration, [3, 1, 5] / vol)
        np.testing.assert_allclose(p.concentration_per_ml, 1e12 * np.array([3, 1, 5]) / vol)
        assert run.profile(axis="z", bins=3, states=("free", "bound")).counts.tolist() == [4, 1, 5]


def test_radial_profile_volume_and_counts(tmp_path):
    L = 100.0
    c = np.array([50.0, 50.0, 50.0])
    s = np.array([0.5, 1.5, 1.6, 2.5, 3.5, 3.9])  # distances from the membrane (R = 5)
    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1], [0.6, 0.8, 0], [0, -0.6, 0.8], [-1, 0, 0]])
    pos = c + (5.0 + s)[:, None] * dirs
    N = s.size
    st = np.full(N, FREE, np.int8)
    path = write_synthetic(tmp_path / "rad.h5", N=N, box=(L, L, L), centers=[c, [10, 10, 10]], radii=[5.0, 5.0],
                           types=[0, 1], snapshots=[dict(step=0, time=0.0, position=pos, state=st)],
                           observations=[dict(step=0, time=0.0, counts=counts_of(st))])
    with open_run(path) as run:
        p = run.profile(cell=0, bins=4, range_max=4.0)
        np.testing.assert_array_equal(p.counts, [1, 2, 1, 2])
        r = 5.0 + p.bin_edges
        shells = 4 / 3 * np.pi * (r[1:] ** 3 - r[:-1] ** 3)  # inside the box, free of other cells
        np.testing.assert_allclose(p.volume, shells, rtol=1e-12)
        np.testing.assert_allclose(p.concentration, p.counts / shells)
        assert run.profile(cell="donor", bins=4, range_max=4.0).counts.tolist() == [1, 2, 1, 2]


def test_radial_shell_volume_is_clipped_by_a_wall(tmp_path):
    # cell 3 µm above the floor z = 0: the part of each shell below the floor
    # is a spherical cap, V_cap(r) = π (r − h)² (2r + h) / 3 with h = 3
    path = write_synthetic(tmp_path / "w.h5", N=1, box=(100, 100, 100), centers=[[50, 50, 3.0]], radii=[2.0],
                           types=[1], snapshots=[dict(step=0, time=0.0, state=np.ones(1, np.int8))],
                           observations=[dict(step=0, time=0.0, counts=[0, 1, 0, 0, 0, 0])])
    with open_run(path) as run:
        p = run.profile(cell=0, bins=[0.0, 1.0, 3.0, 6.0], directions=4096, radial_points=16)
        r = 2.0 + p.bin_edges
        cap = lambda r: np.where(r > 3, np.pi * (r - 3) ** 2 * (2 * r + 3) / 3, 0.0)
        exact = 4 / 3 * np.pi * (r[1:] ** 3 - r[:-1] ** 3) - (cap(r[1:]) - cap(r[:-1]))
        np.testing.assert_allclose(p.volume, exact, rtol=5e-3)


# ------------------------------------------------------------- mass balance


def test_mass_balance_accounts_for_every_vesicle(tmp_path):
    st = np.array([1, 1, 2, 3, 4, 5, 0], np.int8)
    cell = np.array([-1, -1, 0, 1, -1, -1, -1], np.int32)
    ok = dict(step=0, time=0.0, counts=counts_of(st), bound=[1, 0], internalized=[0, 1])
    path = write_synthetic(tmp_path / "b.h5", N=7, centers=[[20, 20, 20], [60, 60, 60]], radii=[5, 5], types=[1, 1],
                           snapshots=[dict(step=0, time=0.0, state=st, cell=cell)], observations=[ok])
    with open_run(path) as run:
        mb = run.mass_balance()
        assert mb.balanced
        np.testing.assert_array_equal(mb.total, [7])
        np.testing.assert_array_equal(mb.snapshot_mismatch, [0])
        assert mb.to_frame()["missing"].tolist() == [0]
    bad = dict(ok, counts=counts_of(st) - np.eye(len(STATE_NAMES), dtype=np.int64)[1], bound=[2, 0])
    path = write_synthetic(tmp_path / "b2.h5", N=7, centers=[[20, 20, 20], [60, 60, 60]], radii=[5, 5], types=[1, 1],
                           snapshots=[dict(step=0, time=0.0, state=st, cell=cell)], observations=[bad])
    with open_run(path) as run:
        mb = run.mass_balance()
        assert not mb.balanced
        assert mb.missing.tolist() == [1] and mb.bound_mismatch.tolist() == [-1]
        assert mb.snapshot_mismatch.tolist() == [1]


# ------------------------------------------------------------- tests of two samples


def test_two_proportion_z_and_ks_by_formula():
    z, p = A.two_proportion_z(30, 100, 50, 100)
    pool = 0.4
    assert z == pytest.approx(-0.2 / math.sqrt(pool * (1 - pool) * 0.02))
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert A.two_proportion_z(5, 10, 5, 10) == (0.0, 1.0)
    d, p = A.ks_two_sample([1, 2, 3, 4], [5, 6, 7, 8])
    assert d == 1.0 and p < 0.05
    d, p = A.ks_two_sample([1, 2, 3], [1, 2, 3])
    assert d == 0.0 and p == 1.0


def test_two_sample_tests_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.exponential(1.0, 400), rng.exponential(1.2, 300)
    d, p = A.ks_two_sample(a, b)
    ref = stats.ks_2samp(a, b, method="exact")
    assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, abs=0.01)
    en = math.sqrt(400 * 300 / 700)
    assert p == pytest.approx(stats.kstwobign.sf((en + 0.12 + 0.11 / en) * d), rel=1e-9)
    for n1, n2 in ((30, 25), (10, 12)):  # small samples: still near the exact p-value
        a, b = rng.exponential(1.0, n1), rng.exponential(1.3, n2)
        assert A.ks_two_sample(a, b)[1] == pytest.approx(stats.ks_2samp(a, b, method="exact").pvalue, abs=0.01)
    z, p = A.two_proportion_z(130, 400, 150, 380)
    table = np.array([[130, 270], [150, 230]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(chi2.statistic) and p == pytest.approx(chi2.pvalue)


def _fate_run(path, taken, seed, N=400):
    """One observation: the first ``taken`` vesicles bound to the target cell;
    first binding times 0.01·(i+1)·(1 + seed/10)."""
    st = np.full(N, FREE, np.int8)
    st[:taken] = BOUND
    cell = np.where(st == BOUND, 1, -1).astype(np.int32)
    first = np.where(st == BOUND, 0.01 * (np.arange(N) + 1) * (1 + seed / 10), np.nan)
    ms = {"birth_time": np.zeros(N), "first_bound_time": first}
    return write_synthetic(path, N=N, centers=[[20, 20, 20], [60, 60, 60]], radii=[5, 5], types=[0, 1], seed=seed,
                           snapshots=[dict(step=100, time=10.0, state=st, cell=cell, milestones=ms)],
                           observations=[dict(step=100, time=10.0, counts=counts_of(st), bound=[0, taken])])


def test_compare_same_and_different_runs(tmp_path):
    a = _fate_run(tmp_path / "a.h5", 200, seed=1)
    b = _fate_run(tmp_path / "b.h5", 120, seed=2)
    with open_run(a) as ra, open_run(b) as rb:
        same = A.RunComparison().compute(ra, ra).table
        assert same.loc["target", "z"] == 0 and same.loc["target", "p_uptake"] == 1.0
        assert same.loc["target", "ks_d"] == 0 and not same["differs"].any()
        c = A.RunComparison(alpha=0.01).compute(ra, rb)
        assert c.same_scenario is True  # the configs differ only in the seed
        t = c.table
        assert t.loc["target", "fraction_a"] == 0.5 and t.loc["target", "fraction_b"] == 0.3
        z, p = A.two_proportion_z(200, 400, 120, 400)
        assert t.loc["target", "z"] == pytest.approx(z) and t.loc["target", "p_uptake"] == pytest.approx(p)
        assert t.loc["target", "bound_n_a"] == 200 and t.loc["all", "bound_n_b"] == 120
        assert t.loc["target", "differs"] and not t.loc["donor", "differs"]
        assert t.loc["donor", "taken_up_a"] == 0


# ------------------------------------------------------------- the reader's chunks


def test_iter_vesicles_chunks_match_whole_reads(tmp_path):
    rng = np.random.default_rng(0)
    N = 37
    snaps = [dict(step=k, time=0.1 * k, position=rng.uniform(0, 100, (N, 3)), state=rng.integers(0, 6, N).astype(np.int8),
                  milestones={"birth_time": rng.uniform(0, 1, N)}) for k in range(3)]
    path = write_synthetic(tmp_path / "c.h5", N=N, snapshots=snaps,
                           observations=[dict(step=0, time=0.0, counts=counts_of(snaps[0]["state"]))])
    with open_run(path) as run:
        parts = list(run.iter_vesicles(("position", "state", "birth_time", "species"), chunk_size=10))
        assert [r.start for r, _ in parts] == [0, 10, 20, 30]
        np.testing.assert_array_equal(np.concatenate([d["position"] for _, d in parts], axis=1), run.positions())
        np.testing.assert_array_equal(np.concatenate([d["birth_time"] for _, d in parts]),
                                      run.milestones["birth_time"])
        one = list(run.iter_vesicles(("state",), frames=1, chunk_size=100))
        np.testing.assert_array_equal(one[0][1]["state"], run.states(1))
        np.testing.assert_array_equal(run.states(2, rows=slice(5, 9)), snaps[2]["state"][5:9])
        with pytest.raises(ValueError, match="unknown field"):
            next(run.iter_vesicles(("nope",)))
        assert run.units == {"length": "um", "time": "s"}
        assert run.snapshot_index(0.15) == 1 and run.observation_index() == 0
        df = run.cell_table
        assert list(df.columns) == ["x", "y", "z", "radius", "type", "donor"]


# ------------------------------------------------------------- a short real run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A small real run: 3 donors secreting among 12 targets, 600 vesicles."""
    from exodiff.driver import Simulation
    from scenarios import scenario
    rng = np.random.default_rng(5)
    centers, types = [], []
    while len(centers) < 15:
        c = rng.uniform(8, 52, 3)
        if all(np.linalg.norm(c - o) > 11 for o in centers):
            centers.append(c)
            types.append("donor" if len(centers) <= 3 else "target")
    cfg = scenario(run={"duration": 2.0, "dt": 2e-3, "seed": 11, "snapshot_interval": 0.5,
                        "observe_interval": 0.25},
                   domain={"size": [60.0, 60.0, 60.0], "boundary": "reflect"},
                   cells={"layout": "list", "centers": [c.tolist() for c in centers], "radius": 4.0,
                          "types": types},
                   cell_types={"donor": {"secretion_rate": 40.0, "secretes": "ev"},
                               "target": {"kappa": 2.0, "k_off": 0.5, "k_int": 1.0}},
                   vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 600,
                                    "cargo": {"miR21": 10}}},
                   output={"positions": "all"})
    path = tmp_path_factory.mktemp("real") / "real.h5"
    Simulation(cfg, backend="numba").run(path)
    return path


def test_real_run_balances_and_analyses_agree(real_run):
    with open_run(real_run) as run:
        assert run.mass_balance().balanced
        u = run.uptake_curves()
        k = run.cells.type_names.index("target")
        assert u.taken_up[-1, k] > 0
        f = run.first_passage()
        ms = run.milestones
        born = ms["birth_time"] <= run.snapshot_times[-1]
        assert f.n_subjects == born.sum()
        assert f.n_events == np.sum(ms["first_bound_time"][born] <= run.snapshot_times[-1])
        d = run.dose()
        cargo = run.config.vesicles["ev"].cargo["miR21"]
        np.testing.assert_allclose(d.cargo[:, 0], d.vesicles * cargo)
        assert d.vesicles.sum() == run.counts["internalized"][-1]
        r = run.uptake_range(bins=4)
        assert r.n_cells.sum() == 12
        p = run.profile(axis="z", bins=6, frames=None)
        assert p.counts.sum() == np.sum(run.states(-1) == FREE)
        m = run.msd()
        assert np.all(m.counts > 0) and np.all(np.diff(m.msd) > 0)


def test_msd_of_free_diffusion_is_6Dt(tmp_path):
    """No cells, periodic box: MSD(τ) = 6Dτ within 4 standard errors
    (Var |Δr|² = 24 D²τ² per vesicle; the first lag's origins are independent
    displacements of each vesicle, pooled)."""
    from exodiff.driver import Simulation
    from scenarios import scenario
    D, N = 4.0, 2000
    cfg = scenario(run={"duration": 1.0, "dt": 1e-2, "seed": 3, "snapshot_interval": 0.5},
                   domain={"size": [50.0, 50.0, 50.0], "boundary": "periodic"},
                   vesicles={"ev": {"radius": 0.05, "diffusion": D, "count": N}},
                   output={"positions": "all"})
    path = tmp_path / "free.h5"
    Simulation(cfg, backend="numba").run(path)
    with open_run(path) as run:
        m = run.msd()
        assert m.lag_times.tolist() == pytest.approx([0.5, 1.0])
        for tau, msd, n in zip(m.lag_times, m.msd, m.counts):
            se = math.sqrt(24.0) * D * tau / math.sqrt(N)  # pairs at one lag share vesicles: use N
            assert abs(msd - 6 * D * tau) < 4 * se, (tau, msd, 6 * D * tau, se)
        assert A.expected_diffusion(run) == D


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_radial_counts_match_brute_force(tmp_path, boundary):
    rng = np.random.default_rng(7)
    L = np.array([30.0, 24.0, 18.0])
    N = 3000
    pos = rng.uniform(0, 1, (N, 3)) * L
    centers = np.array([[2.0, 2.0, 2.0], [15.0, 12.0, 9.0], [28.0, 22.0, 16.5]])
    st = np.full(N, FREE, np.int8)
    path = write_synthetic(tmp_path / "bf.h5", N=N, box=L, boundary=[boundary] * 6, centers=centers,
                           radii=[1.5, 1.5, 1.5], types=[0, 0, 0],
                           snapshots=[dict(step=0, time=0.0, position=pos, state=st)],
                           observations=[dict(step=0, time=0.0, counts=counts_of(st))])
    edges = np.linspace(0, 6.0, 7)
    expected = np.zeros(6, dtype=np.int64)
    for c in centers:
        d = pos - c
        if boundary == "periodic":
            d -= L * np.round(d / L)
        expected += np.histogram(np.linalg.norm(d, axis=1) - 1.5, bins=edges)[0]
    with open_run(path) as run:
        p = run.profile(cell="donor", bins=edges)
        np.testing.assert_array_equal(p.counts, expected)


def test_radial_shell_volume_excludes_a_neighbour_cell(tmp_path):
    # cell 0 (R = 2) and a neighbour (R = 2) 7 µm away: a shell of radius r
    # loses the lens where the balls r and R_j overlap (d = 7)
    d, Rj = 7.0, 2.0

    def ball_in_ball(r):
        if r + Rj <= d:
            return 0.0
        if r >= d + Rj:
            return 4 / 3 * np.pi * Rj ** 3
        return np.pi * (r + Rj - d) ** 2 * (d * d + 2 * d * Rj - 3 * Rj * Rj + 2 * d * r + 6 * Rj * r - 3 * r * r) / (12 * d)

    path = write_synthetic(tmp_path / "n.h5", N=1, box=(100, 100, 100), centers=[[50, 50, 50], [50, 57, 50]],
                           radii=[2.0, 2.0], types=[1, 1], snapshots=[dict(step=0, time=0.0, state=np.ones(1, np.int8))],
                           observations=[dict(step=0, time=0.0, counts=[0, 1, 0, 0, 0, 0])])
    with open_run(path) as run:
        p = run.profile(cell=0, bins=[0.0, 2.0, 4.0, 6.0, 9.0], directions=8192, radial_points=32)
        r = 2.0 + p.bin_edges
        lens = np.array([ball_in_ball(x) for x in r])
        exact = 4 / 3 * np.pi * (r[1:] ** 3 - r[:-1] ** 3) - np.diff(lens)
        np.testing.assert_allclose(p.volume, exact, rtol=5e-3)
