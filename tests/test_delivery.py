"""Cargo by destination and engagement (exodiff/analysis/delivery.py): the
analyses against direct counts of vesicle states, on a synthetic file whose
every vesicle's path is known and on small real runs with every fate rate
on; mass balance by destination; files written before destinations."""
import h5py
import numpy as np
import pytest

from exodiff import analysis as A
from exodiff.analysis import open_run
from exodiff.errors import InputError
from exodiff.io import RunWriter
from exodiff.io.layout import DESTINATION_SERIES, no_fates
from exodiff.kernels.constants import STATE_NAMES
from test_analysis import DONOR_CONFIG as CONFIG  # any config that parses: it names the donor type

PENDING, FREE, BOUND, INTERNALIZED, EXITED, CLEARED, DELIVERED, DEGRADED = range(8)
TYPE_NAMES = ("donor", "target", "macrophage")
SPECIES = ("exo", "mv")
CARGO = ("CD63", "miR21")
PER_VESICLE = np.array([[50.0, 10.0], [0.0, 3.0]])  # [S,K]


def vesicle_paths(rng, N, T, M):
    """Per observation state[T,N] and cell[T,N] of N vesicles that each go
    pending -> free -> bound -> {endosome -> {escaped, degraded}, fused}, or
    free -> exited/cleared, one observation per stage at random times; and
    fused[N] (delivered by fusion)."""
    state = np.full((T, N), PENDING, np.int8)
    cell = np.full((T, N), -1, np.int32)
    fused = np.zeros(N, bool)
    for i in range(N):
        stages = [FREE, BOUND]
        end = rng.integers(4)
        if end == 0:
            stages = [FREE, [EXITED, CLEARED][rng.integers(2)]]
        elif end == 1:
            stages += [DELIVERED]
            fused[i] = True
        else:
            stages += [INTERNALIZED, [DELIVERED, DEGRADED][end - 2]]
        start = np.sort(rng.choice(np.arange(1, T), size=min(len(stages), T - 1), replace=False))
        c = rng.integers(M)
        for s, k in zip(stages, start):
            state[k:, i] = s
            if s not in (FREE, EXITED, CLEARED):
                cell[k:, i] = c
    return state, cell, fused


def write_paths(path, state, cell, fused, *, types, origin, species, dt=0.1, bound_steps=None):
    """A run file of the vesicle paths, its per-cell series counted here."""
    T, N = state.shape
    M, S, D = len(types), len(SPECIES), len(TYPE_NAMES) + 1
    donor = np.where(origin >= 0, np.asarray(types)[np.maximum(origin, 0)], D - 1)
    kw = dict(config_text=CONFIG, seed=1, backend="numpy", device="cpu", dt=dt, box_edges=[100.0] * 3,
              boundary=["reflect"] * 6, cell_centers=np.full((M, 3), 50.0), cell_radii=np.ones(M),
              cell_types=np.asarray(types, np.int32), cell_type_names=list(TYPE_NAMES), species=species,
              vesicle_radius=np.full(N, 0.05), species_names=list(SPECIES), cargo_names=list(CARGO),
              sample_ids=None, write_positions=True, compression="none", n_snapshots_hint=T,
              n_observations_hint=T, exodiff_version="test", origin=origin, cargo_per_vesicle=PER_VESICLE)

    def per_cell(k, sel, *axes):
        size = [M, S, D][:1 + len(axes)]
        flat = np.ravel_multi_index((cell[k, sel], *(a[sel] for a in axes)), size)
        return np.bincount(flat, minlength=int(np.prod(size))).reshape(size)

    with RunWriter(path, **kw) as w:
        for k in range(T):
            s = state[k]
            counts = np.bincount(s, minlength=len(STATE_NAMES))
            dest = {"delivered": per_cell(k, s == DELIVERED, species, donor),
                    "fused": per_cell(k, (s == DELIVERED) & fused, species),
                    "degraded": per_cell(k, s == DEGRADED, species),
                    "bound_steps": np.zeros(M) if bound_steps is None else bound_steps[k]}
            inside = per_cell(k, s == INTERNALIZED, species)
            w.write_observation(k, k * dt, counts, per_cell(k, s == BOUND, species), inside,
                                inside @ PER_VESICLE, destinations=dest)
            fates = no_fates(N)
            w.write_snapshot(k, k * dt, np.full((N, 3), 20.0), np.zeros((N, 3), np.int32), s, cell[k], fates)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    rng = np.random.default_rng(3)
    N, T = 600, 7
    types = [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    state, cell, fused = vesicle_paths(rng, N, T, len(types))
    origin = np.where(np.arange(N) < 100, -1, rng.integers(2, size=N)).astype(np.int32)
    species = (rng.random(N) < 0.3).astype(np.int32)
    path = write_paths(tmp_path_factory.mktemp("delivery") / "paths.h5", state, cell, fused,
                       types=types, origin=origin, species=species)
    return path, dict(state=state, cell=cell, fused=fused, types=np.array(types), origin=origin,
                      species=species)


def test_delivery_equals_direct_counts_of_the_vesicle_paths(synthetic):
    path, v = synthetic
    types = v["types"]
    with open_run(path) as run:
        d = run.delivery()
    T = v["state"].shape[0]
    dest = {"bound": BOUND, "endosome": INTERNALIZED, "cytosol": DELIVERED, "degraded": DEGRADED}
    for k in range(T):
        s, c = v["state"][k], v["cell"][k]
        for name, code in dest.items():
            for t in range(len(TYPE_NAMES)):
                on = (s == code) & (c >= 0) & (types[np.maximum(c, 0)] == t)
                assert d.by_type[name][k, t] == on.sum(), (k, name, t)
                np.testing.assert_allclose(d.cargo[name][k, t], PER_VESICLE[v["species"][on]].sum(axis=0))
                for j in range(len(SPECIES)):
                    if name == "cytosol":
                        assert d.cytosol_by_species[k, t, j] == np.sum(on & (v["species"] == j))
                if name == "cytosol":
                    assert d.by_type["fused"][k, t] == np.sum(on & v["fused"])
                    assert d.by_type["escaped"][k, t] == np.sum(on & ~v["fused"])
                    initial = on & (v["origin"] < 0)
                    assert d.cytosol_by_donor[k, t, -1] == initial.sum()
                    for j in range(len(TYPE_NAMES)):
                        sent = on & (v["origin"] >= 0) & (types[np.maximum(v["origin"], 0)] == j)
                        assert d.cytosol_by_donor[k, t, j] == sent.sum()
            per_cell = np.bincount(c[s == code], minlength=len(types))
            np.testing.assert_array_equal(d.per_cell[name][k], per_cell)
        in_cytosol = (s == DELIVERED)
        np.testing.assert_allclose(d.per_cell_cargo[k],
                                   np.stack([np.bincount(c[in_cytosol], PER_VESICLE[v["species"][in_cytosol], j],
                                                         minlength=len(types)) for j in range(len(CARGO))], 1))
    assert d.donor_names == (*TYPE_NAMES, "initial")
    np.testing.assert_allclose(d.mean_per_cell["cytosol"], d.by_type["cytosol"] / np.array([2, 5, 3]))
    df = d.to_frame()
    assert len(df) == T * len(TYPE_NAMES) * len(A.DESTINATIONS)
    last = df[(df.time == df.time.max()) & (df.destination == "degraded")].set_index("type")
    np.testing.assert_array_equal(last["vesicles"].to_numpy(), d.by_type["degraded"][-1])


def test_mass_balance_by_destination_at_every_observation(synthetic):
    path, v = synthetic
    with open_run(path) as run:
        d = run.delivery()
        check_destination_balance(run, d)


def check_destination_balance(run, d):
    """Every vesicle in one place at every observation: the states add up to
    N, and the per-cell destinations add up to the state counts."""
    counts = run.counts
    total = sum(counts[s] for s in STATE_NAMES)
    np.testing.assert_array_equal(total, run.n_vesicles)
    for name, state in (("bound", "bound"), ("endosome", "internalized"), ("cytosol", "delivered"),
                        ("degraded", "degraded")):
        np.testing.assert_array_equal(d.per_cell[name].sum(axis=1), counts[state], err_msg=name)
    np.testing.assert_array_equal(d.per_cell["escaped"] + d.per_cell["fused"], d.per_cell["cytosol"])
    assert run.mass_balance().balanced


def without_destinations(src, dst):
    """A copy of run file ``src`` as exodiff 0.3 wrote it: no destination
    series, no delivered/degraded state series, no new fate columns."""
    import shutil
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        for name in DESTINATION_SERIES:
            del f[f"observables/cells/{name}"]
        for state in ("delivered", "degraded"):
            if f"observables/vesicles/{state}" in f:
                del f[f"observables/vesicles/{state}"]
        for column in ("escape_time", "degraded_time", "fused_time", "recycled", "bound_duration"):
            if f"fates/{column}" in f:
                del f[f"fates/{column}"]
        del f["observables/cells/cargo"].attrs["per_vesicle"]
        f["parameters"].attrs["exodiff_version"] = "0.3.0"
    return dst


def test_a_file_without_destinations_opens_and_says_what_is_missing(synthetic, tmp_path):
    path, _ = synthetic
    old = without_destinations(path, tmp_path / "old.h5")
    with open_run(old) as run:
        assert not run.has_destinations
        assert run.n_observations == 7
        np.testing.assert_array_equal(run.counts["bound"], run.bound_per_cell.sum(axis=1))
        if "delivered" in STATE_NAMES:
            assert not run.counts["delivered"].any()  # that state did not exist then
        with pytest.raises(InputError, match=r"old.h5: no /observables/cells/delivered: written by "
                                             r"exodiff 0.3.0, before cargo was recorded by destination"):
            run.delivery()
        with pytest.raises(InputError, match="bound_steps"):
            run.engagement()
        f = run.fate_columns()  # columns added since: "did not happen", or not measured (NaN)
        assert np.isnan(f["escape_time"]).all() and not f["recycled"].any()
        assert np.isnan(f["bound_duration"]).all()
        assert "bound_duration" in run.missing_fate_columns
        run.uptake_curves()
        run.dose()


def test_engagement_sums_the_recorded_bound_steps(tmp_path):
    rng = np.random.default_rng(5)
    types = [0, 1, 1, 2]
    state, cell, fused = vesicle_paths(rng, 50, 5, len(types))
    steps = np.cumsum(rng.integers(0, 9, size=(5, len(types))), axis=0)
    path = write_paths(tmp_path / "e.h5", state, cell, fused, types=types, origin=np.full(50, -1, np.int32),
                       species=np.zeros(50, np.int32), dt=0.25, bound_steps=steps)
    with open_run(path) as run:
        e = A.Engagement(bins=5).compute(run)
    np.testing.assert_array_equal(e.bound_seconds, steps * 0.25)
    np.testing.assert_array_equal(e.by_type, np.stack([steps[:, [0]].sum(1), steps[:, 1:3].sum(1),
                                                      steps[:, 3]], 1) * 0.25)
    np.testing.assert_allclose(e.mean_per_cell[:, 1], steps[:, 1:3].sum(1) * 0.25 / 2)


def test_the_inhibitor_and_its_untreated_twin_differ_only_in_the_secretion_rate():
    from pathlib import Path

    from exodiff.tomlfile import parse_toml
    root = Path(__file__).resolve().parents[1] / "configs"
    treated, untreated = (parse_toml((root / name).read_text()) for name in ("inhibitor.toml",
                                                                             "inhibitor_untreated.toml"))
    schedule = treated["cell_types"]["donor"].pop("secretion_rate")
    assert untreated["cell_types"]["donor"].pop("secretion_rate") == "0.02 /s"
    assert schedule == {"schedule": [["0 h", "0.02 /s"], ["6 h", "0.006 /s"]]}  # -70 % at 6 h
    assert treated == untreated


def test_mann_whitney_matches_scipy_with_ties():
    from scipy.stats import mannwhitneyu
    rng = np.random.default_rng(2)
    for a, b in ((rng.poisson(2, 40), rng.poisson(3, 55)), (rng.normal(size=8), rng.normal(1, size=11)),
                 (np.zeros(30), np.r_[np.zeros(25), np.ones(5)])):
        u, p = A.statistics.mann_whitney(a, b)
        ref = mannwhitneyu(a, b, method="asymptotic", use_continuity=True)
        assert u == ref.statistic and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert A.statistics.mann_whitney(np.ones(4), np.ones(3))[1] == 1.0


def test_compare_shows_the_functional_dose_per_type_over_time(synthetic, tmp_path, capsys):
    from exodiff.cli import main
    path, v = synthetic
    rng = np.random.default_rng(9)
    state, cell, fused = vesicle_paths(rng, 600, 7, len(v["types"]))
    other = write_paths(tmp_path / "other.h5", state, cell, fused, types=v["types"], origin=v["origin"],
                        species=v["species"])
    with open_run(path) as a, open_run(other) as b:
        c = A.RunComparison().compute(a, b)
    for k, name in enumerate(TYPE_NAMES):
        on = [(s[-1] == DELIVERED) & (v["types"][np.maximum(cc[-1], 0)] == k)
              for s, cc in ((v["state"], v["cell"]), (state, cell))]
        dose = [np.bincount(cc[-1][o], minlength=len(v["types"]))[v["types"] == k]
                for o, cc in zip(on, (v["cell"], cell))]
        row = c.table.loc[name]
        assert row.dose_a == pytest.approx(dose[0].mean()) and row.dose_b == pytest.approx(dose[1].mean())
        assert (row.u, row.p_dose) == A.statistics.mann_whitney(*dose)
    np.testing.assert_array_equal(c.dose_over_time["time"].unique(), np.arange(7) * 0.1)
    last = c.dose_over_time[c.dose_over_time.time == 6 * 0.1].set_index("type")
    np.testing.assert_allclose(last["dose_a"], c.table["dose_a"].iloc[:-1])
    assert any("share their random numbers" in n for n in c.notes)  # both seed 1: not independent
    assert not any("place their cells differently" in n for n in c.notes)
    assert main(["compare", str(path), str(other)]) == 0
    out = capsys.readouterr().out
    assert "functional dose: vesicles in the cytosol per cell" in out and "Mann-Whitney U" in out
    old = without_destinations(other, tmp_path / "old.h5")
    with open_run(path) as a, open_run(old) as b:
        c = A.RunComparison().compute(a, b)
    assert c.dose_over_time is None and "p_dose" not in c.table
    assert any("old.h5: no cargo by destination" in n for n in c.notes)


# ------------------------------------------------------------- real runs

FATE_RATES = {"k_off": 0.5, "k_int": 4.0, "k_fuse": 1.0, "k_escape": 2.0, "k_degrade": 3.0, "k_recycle": 1.5}


def fate_config(target_cells=((7, 7, 7), (33, 33, 7)), macrophage=True, duration=4.0, **rates):
    """Cells of radius 6 µm in a 40 µm box and fast vesicles, so that a few
    seconds see every destination (D and κ = inf are for speed, not realism)."""
    from scenarios import scenario
    centers = [[20, 20, 20], *map(list, target_cells)] + ([[7, 33, 33]] if macrophage else [])
    types = ["donor"] + ["target"] * len(target_cells) + (["macrophage"] if macrophage else [])
    cell_types = {"donor": {"secretion_rate": 60.0, "secretes": "exo"},
                  "target": {"kappa": "inf", **{**FATE_RATES, **rates}},
                  "macrophage": {"kappa": "inf", "k_off": 0.5, "k_int": 6.0, "k_escape": 1.0, "k_degrade": 5.0}}
    return scenario(run={"duration": duration, "dt": 2e-3, "seed": 5, "snapshot_interval": 0.5,
                         "observe_interval": 0.5},
                    domain={"size": [40.0, 40.0, 40.0], "boundary": "reflect"},
                    cells={"layout": "list", "centers": centers, "radius": 6.0, "types": types},
                    cell_types={k: v for k, v in cell_types.items() if k in types},
                    vesicles={"exo": {"radius": 0.05, "diffusion": 20.0, "count": 300, "cargo": {"miR21": 10}},
                              "mv": {"radius": 0.2, "diffusion": 5.0, "count": 100,
                                     "cargo": {"miR21": 3, "CD63": 5}}},
                    output={"positions": "all"})


@pytest.fixture(scope="module")
def fate_run(tmp_path_factory):
    from exodiff.driver import Simulation
    path = tmp_path_factory.mktemp("fates") / "fates.h5"
    Simulation(fate_config(), backend="numba").run(path)
    with open_run(path) as run:
        yield run


def test_delivery_of_a_real_run_equals_the_states_in_its_snapshots(fate_run):
    run = fate_run
    assert run.has_destinations and not run.sampled
    np.testing.assert_array_equal(run.snapshot_steps, run.observation_steps)  # a snapshot at every observation
    d = run.delivery()
    f = run.fate_columns()
    M, S, D = len(run.cells), len(run.species_names), len(d.donor_names)
    donor = np.where(f["origin"] >= 0, run.cells.types[np.maximum(f["origin"], 0)], D - 1)
    fused = ~np.isnan(f["fused_time"])
    seen = set()
    for k in range(run.n_snapshots):
        state, cell = run.states(k), run.cell_of(k)
        seen |= set(np.unique(state).tolist())

        def count(sel, *axes, sizes=(M, S, D)):
            shape = sizes[:1 + len(axes)]
            flat = np.ravel_multi_index((cell[sel], *(a[sel] for a in axes)), shape)
            return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)

        np.testing.assert_array_equal(run.delivered_by_donor[k], count(state == DELIVERED, f["species"], donor))
        np.testing.assert_array_equal(run.per_cell_species("fused")[k],
                                      count((state == DELIVERED) & fused, f["species"]))
        np.testing.assert_array_equal(run.per_cell_species("degraded")[k], count(state == DEGRADED, f["species"]))
        for name, code in (("bound", BOUND), ("endosome", INTERNALIZED), ("cytosol", DELIVERED),
                           ("degraded", DEGRADED)):
            np.testing.assert_array_equal(d.per_cell[name][k], count(state == code), err_msg=name)
        np.testing.assert_array_equal(d.per_cell["fused"][k], count((state == DELIVERED) & fused))
        # fused vesicles have a fusion time and no escape time; escaped ones the other way round
        on = state == DELIVERED
        assert np.all(np.isnan(f["escape_time"][on & fused]))
        assert not np.any(np.isnan(f["escape_time"][on & ~fused]))
    assert {FREE, BOUND, INTERNALIZED, DELIVERED, DEGRADED} <= seen  # every destination was reached
    assert d.per_cell["fused"][-1].sum() > 0 and d.per_cell["escaped"][-1].sum() > 0
    assert (np.asarray(f["recycled"]) > 0).any()
    assert run.cargo_names == ("CD63", "miR21")
    np.testing.assert_array_equal(run.cargo_per_vesicle, [[0, 10], [5, 3]])  # exo, mv
    on = run.states(-1) == DELIVERED
    cell = run.cell_of(-1)
    np.testing.assert_allclose(d.per_cell_cargo[-1], np.stack(
        [np.bincount(cell[on], run.cargo_per_vesicle[f["species"][on], j], minlength=M) for j in range(2)], 1))


def test_mass_balance_by_destination_in_a_real_run(fate_run):
    check_destination_balance(fate_run, fate_run.delivery())


def test_bound_vesicle_seconds_per_cell_equal_the_vesicles_bound_durations(tmp_path):
    """One target cell: every vesicle that ever bound, bound only to it (and
    unbound, was recycled and bound again, as the rates let it)."""
    from exodiff.driver import Simulation
    path = tmp_path / "one_target.h5"
    Simulation(fate_config(target_cells=((7, 7, 7),), macrophage=False), backend="numba").run(path)
    with open_run(path) as run:
        e = run.engagement()
        f = run.fate_columns()
        assert run.complete and (f["recycled"] > 0).any() and e.summary["vesicles"].sum() > 20
        seconds = e.bound_seconds[-1]
        assert seconds[0] == 0  # the donor (kappa 0) never binds
        total = np.nansum(f["bound_duration"])
        assert seconds[1] > 0
        np.testing.assert_allclose(seconds[1], total, rtol=1e-9)
        np.testing.assert_allclose(e.durations["bound_duration"].sum(), total, rtol=1e-12)
        # the integral never decreases, and grows by at most (bound vesicles) x (time) between observations
        dt_obs = np.diff(e.times)
        assert np.all(np.diff(seconds := e.bound_seconds[:, 1]) >= 0)
        assert np.all(np.diff(seconds) <= run.n_vesicles * dt_obs + 1e-9)


# ------------------------------------------------------------- figures, report


def test_delivery_and_engagement_figures_read_well(fate_run, tmp_path):
    from matplotlib.colors import to_rgb

    from exodiff.plots import _DESTINATION_STYLE, _type_color, figure
    run = fate_run
    fig = figure(run, "delivery")
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    panels = [ax for ax in fig.axes if ax.has_data()]
    titles = [ax.get_title() for ax in panels]
    # one panel per recipient type that took something up (non-donor types first), then the donor lines
    assert [t.split(" (")[0] for t in titles[:-1]] == ["target", "macrophage", "donor"][:len(titles) - 1]
    assert titles[-1].startswith("Functional dose by donor type")
    legend = panels[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [label for _, _, label in _DESTINATION_STYLE][::-1]
    d = run.delivery()
    k = run.cells.type_names.index("target")
    assert f"{d.mean_per_cell['cytosol'][-1, k]:.3g} vesicles" in titles[0]
    lines = {line.get_label(): line for line in panels[-1].get_lines()}
    target = lines["target ← donor"]
    assert to_rgb(target.get_color()) == to_rgb(_type_color(k))
    np.testing.assert_allclose(target.get_ydata(), d.cytosol_by_donor[:, k, 0] / d.n_cells[k])
    e = figure(run, "engagement")
    left, right = [ax for ax in e.axes if ax.has_data()]
    eng = run.engagement()
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), eng.mean_per_cell[:, k])
    assert right.get_yscale() == "log" and "vesicles, mean" in right.get_legend().get_texts()[0].get_text()
    from exodiff.report import write_report
    result = write_report(run, tmp_path / "rep", dpi=40)
    assert {"delivery", "engagement"} <= {p.stem for p in result["files"]}
    frame = __import__("pandas").read_csv(tmp_path / "rep" / "delivery.csv")
    assert set(frame["destination"]) == set(A.DESTINATIONS)
    assert "functional dose" in (tmp_path / "rep" / "index.html").read_text()


def test_a_run_without_fates_after_uptake_says_so_in_the_delivery_figure(tmp_path):
    from exodiff.driver import Simulation
    from exodiff.plots import figure
    path = tmp_path / "no_fates.h5"
    cfg = fate_config(duration=0.5, macrophage=False, k_fuse=0.0, k_escape=0.0, k_degrade=0.0, k_recycle=0.0)
    Simulation(cfg, backend="numba").run(path)
    with open_run(path) as run:
        fig = figure(run, "delivery")
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("no cargo in any cytosol yet" in t for t in texts)
        assert run.delivery().by_type["cytosol"].sum() == 0
