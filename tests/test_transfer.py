"""Who sends what to whom (issue 14): the fate table of every vesicle, per-cell
counts per species, several populations per donor and the Transfer
analysis, on small real runs."""
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from exodiff.analysis import Transfer, first_passage_table, open_run
from exodiff.errors import InputError
from exodiff.kernels.constants import STATE_NAMES
from scenarios import run_sim, scenario

SIGNALLING = Path(__file__).resolve().parents[1] / "configs" / "signalling.toml"
FATE_COLUMNS = ["species", "origin", "birth_time", "first_bound_time", "first_bound_cell",
                "internalized_time", "internalized_cell", "exit_time", "cleared_time",
                "escape_time", "degraded_time", "fused_time", "recycled", "bound_duration"]


def _run(tmp_path, name, **sections):
    run_sim(scenario(**sections), "numba", tmp_path, name)
    return open_run(tmp_path / name)


# Two species secreted by each of two donor types (one of them windowed),
# binding without unbinding (so the fate table holds the whole history),
# clearance, an absorbing face, vesicles present at t = 0 and periodic axes.
MIXED = dict(
    run={"duration": 0.4, "dt": 1e-3, "seed": 11, "snapshot_interval": 0.1, "observe_interval": 0.02},
    domain={"size": [40.0, 40.0, 24.0], "boundary": {"x": "periodic", "y": "periodic",
                                                      "z": ["reflect", "absorb"]}},
    cells={"layout": "list", "centers": [[10, 10, 10], [30, 30, 10], [10, 34, 12], [30, 10, 12]],
           "radius": 5.0, "types": ["msc", "fibro", "target", "macro"]},
    cell_types={"msc": {"secretes": ["exo", "mv"], "secretion_rate": {"exo": 400.0, "mv": 150.0},
                        "kappa": 2.0, "k_int": 3.0},
                "fibro": {"secretes": ["exo", "mv"], "secretion_rate": {"exo": 200.0, "mv": 300.0},
                          "secretion_window": {"mv": [0.1, 0.3]}},
                "target": {"kappa": 20.0, "k_int": 5.0},
                "macro": {"kappa": "inf", "k_int": 20.0, "capacity": 10}},
    vesicles={"exo": {"radius": 0.05, "diffusion": 5.0, "count": 300, "half_life": 0.5},
              "mv": {"radius": 0.2, "diffusion": 1.5, "count": 100}},
    output={"positions": "all"},
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("mixed")
    run = _run(path, "mixed.h5", **MIXED)
    yield run
    run.close()


def test_fate_table_has_every_vesicle_and_its_columns(mixed):
    fates = mixed.fates
    assert list(fates.columns) == FATE_COLUMNS
    assert len(fates) == mixed.n_vesicles and fates.index.name == "vesicle"
    assert list(fates["species"].cat.categories) == ["exo", "mv"]
    secreted = fates[fates["origin"] >= 0]
    assert (fates.loc[fates["origin"] < 0, "birth_time"] == 0).all()
    assert len(fates) - len(secreted) == 400
    # each donor type secretes both populations, the windowed one only inside its window
    types = mixed.cell_table["type"].to_numpy()
    donor_type = types[secreted["origin"].to_numpy()]
    for t in ("msc", "fibro"):
        assert set(secreted["species"][donor_type == t]) == {"exo", "mv"}
    mv_fibro = secreted[(donor_type == "fibro") & (secreted["species"] == "mv")]["birth_time"]
    assert mv_fibro.min() >= 0.1 and mv_fibro.max() < 0.3
    # every event happened to a vesicle born before it, on a cell where there is one
    for when, where in (("first_bound_time", "first_bound_cell"), ("internalized_time", "internalized_cell")):
        happened = fates[when].notna()
        assert ((fates[where] >= 0) == happened).all()
        assert (fates.loc[happened, when] > fates.loc[happened, "birth_time"]).all()
    inside = fates["internalized_time"].notna()
    assert (fates.loc[inside, "internalized_time"] > fates.loc[inside, "first_bound_time"]).all()
    for when in ("exit_time", "cleared_time", "internalized_time"):
        assert fates[when].notna().sum() > 0, when  # the scenario exercises every fate


def test_fate_table_reproduces_every_observation_exactly(mixed):
    """Without unbinding the fate table is the whole history: at every
    observation it gives the counts per state and the per-cell, per-species
    bound and internalized counts."""
    f = mixed.fate_columns()
    dt = mixed.dt
    bound_s = mixed.per_cell_species("bound")
    inside_s = mixed.per_cell_species("internalized")
    M, S = len(mixed.cells), len(mixed.species_names)
    assert bound_s.shape == (mixed.n_observations, M, S)
    with h5py.File(mixed.path, "r") as h:
        assert list(h["observables/cells/bound"].attrs["species"]) in (["exo", "mv"], [b"exo", b"mv"])
    for k, (step, t) in enumerate(zip(mixed.observation_steps, mixed.observation_times)):
        pending = (f["origin"] >= 0) & (np.floor(f["birth_time"] / dt) >= step)
        inside = f["internalized_time"] <= t
        exited = f["exit_time"] <= t
        cleared = f["cleared_time"] <= t
        bound = (f["first_bound_time"] <= t) & ~inside
        free = ~(pending | inside | exited | cleared | bound)
        got = {"pending": pending, "free": free, "bound": bound, "internalized": inside,
               "exited": exited, "cleared": cleared,
               "delivered": np.zeros(0, bool), "degraded": np.zeros(0, bool)}  # no fates after uptake here
        for name in STATE_NAMES:
            assert mixed.counts[name][k] == np.count_nonzero(got[name]), (t, name)
        for sel, cells, table in ((bound, f["first_bound_cell"], bound_s),
                                  (inside, f["internalized_cell"], inside_s)):
            expect = np.zeros((M, S), dtype=np.int64)
            np.add.at(expect, (cells[sel], f["species"][sel]), 1)
            np.testing.assert_array_equal(table[k], expect, err_msg=f"t = {t}")
    assert mixed.counts["bound"][-1] > 0 and mixed.counts["internalized"][-1] > 0


def test_sampled_positions_still_give_the_full_fate_table(mixed, tmp_path):
    sampled = dict(MIXED, output={"positions": {"sample": 40}})
    with _run(tmp_path, "sampled.h5", **sampled) as run:
        assert run.sampled and run.n_stored == 40
        assert run.fates.equals(mixed.fates)


def test_transfer_matrices_agree_with_the_fate_table(mixed):
    for kind in ("internalized", "bound", "taken_up"):
        tr = Transfer(kind=kind).compute(mixed)
        n = int(tr.cell_matrix.sum())
        assert n == len(tr.events) == int(tr.type_matrix.to_numpy().sum()) == tr.per_donor["taken_up"].sum()
        assert n > 0, kind
        assert list(tr.type_matrix.index) == list(mixed.cells.type_names)
        assert set(tr.per_donor.index) == {0, 1}  # the msc and fibro cells
    tr = mixed.transfer(kind="internalized", species="mv")
    assert (tr.events["species"] == "mv").all()
    f = mixed.fates
    mv = f[(f["species"] == "mv") & (f["origin"] >= 0)]
    assert tr.per_donor["secreted"].sum() == len(mv)
    assert tr.per_donor["exited"].sum() == mv["exit_time"].notna().sum()
    # distances are centre to centre with the minimum image on x and y
    c = mixed.cells.centers
    e = c[tr.events["recipient"]] - c[tr.events["donor"]]
    e[:, :2] -= 40.0 * np.round(e[:, :2] / 40.0)
    np.testing.assert_allclose(tr.events["distance"], np.linalg.norm(e, axis=1), rtol=1e-12)
    with pytest.raises(InputError, match="kind"):
        Transfer(kind="eaten")


def test_first_passage_uses_every_vesicle_and_splits_by_type(mixed):
    fp = mixed.first_passage(event="internalized")
    f = mixed.fates
    assert fp.n_subjects == len(f) and fp.n_events == f["internalized_time"].notna().sum()
    table = first_passage_table(mixed, "internalized")
    per_type = table[(table["species"] == "all") & (table["cell_type"] != "all")]
    by_cell_type = mixed.cell_table["type"].to_numpy()[f["internalized_cell"][f["internalized_cell"] >= 0]]
    for _, row in per_type.iterrows():
        assert row["events"] == np.count_nonzero(by_cell_type == row["cell_type"])
    assert per_type["events"].sum() == fp.n_events


def test_lone_donor_that_binds_is_all_autocrine(tmp_path):
    run = _run(tmp_path, "lone.h5",
               run={"duration": 0.3, "dt": 1e-3, "seed": 3, "snapshot_interval": 0.1},
               cells={"layout": "list", "centers": [[20, 20, 20]], "radius": 5.0, "type": "donor"},
               domain={"size": [40.0, 40.0, 40.0], "boundary": "reflect"},
               cell_types={"donor": {"secretion_rate": 500.0, "kappa": 10.0, "k_int": 5.0}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 0}})
    with run:
        for kind in ("internalized", "taken_up"):
            tr = run.transfer(kind=kind)
            assert len(tr.events) > 20 and tr.autocrine_fraction == 1.0
            assert tr.type_matrix.loc["donor", "donor"] == len(tr.events)
            assert math.isnan(tr.range_um)  # no transfer to another cell to fit


def test_one_donor_one_target_transfer_equals_internalized_count(tmp_path):
    run = _run(tmp_path, "pair.h5",
               run={"duration": 1.0, "dt": 1e-3, "seed": 8, "snapshot_interval": 0.5,
                    "observe_interval": 0.05},
               cells={"layout": "list", "centers": [[14, 20, 20], [25, 20, 20]], "radius": 5.0,
                      "types": ["donor", "target"]},
               domain={"size": [40.0, 40.0, 40.0], "boundary": "reflect"},
               cell_types={"donor": {"secretion_rate": 800.0},
                           "target": {"kappa": 50.0, "k_off": 2.0, "k_int": 10.0}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 0}},
               output={"positions": "none"})
    with run:
        f = run.fates
        assert (f.loc[f["internalized_cell"] >= 0, "origin"] == 0).all()
        assert (f["internalized_cell"][f["internalized_cell"] >= 0] == 1).all()
        for k, t in enumerate(run.observation_times):
            tr = Transfer(time=t).compute(run)
            assert tr.cell_matrix[0, 1] == run.internalized_per_cell[k, 1] == tr.cell_matrix.sum(), t
        assert run.internalized_per_cell[-1, 1] > 30


def test_two_symmetric_donors_send_alike(tmp_path):
    run = _run(tmp_path, "sym.h5",
               run={"duration": 2.0, "dt": 2e-3, "seed": 21, "snapshot_interval": 1.0},
               cells={"layout": "list", "centers": [[10, 20, 20], [30, 20, 20], [20, 20, 20]],
                      "radii": [3.0, 3.0, 6.0], "types": ["donor", "donor", "target"]},
               domain={"size": [40.0, 40.0, 40.0], "boundary": "reflect"},
               cell_types={"donor": {"secretion_rate": 600.0},
                           "target": {"kappa": "inf", "k_int": 50.0}},
               vesicles={"ev": {"radius": 0.05, "diffusion": 5.0, "count": 0}},
               output={"positions": "none"})
    with run:
        tr = run.transfer(kind="taken_up")
        a, b = tr.cell_matrix[0, 2], tr.cell_matrix[1, 2]
        n = a + b
        assert n > 100
        assert abs(a - n / 2) <= 3 * math.sqrt(n / 4), (a, b)  # binomial(n, 1/2), 3 SE
        assert tr.per_donor.loc[0, "recipients"] == 1


def test_reader_opens_0_2_files(tmp_path, mixed):
    """A 0.2 layout: no fate table, per-cell counts summed over species."""
    import shutil
    old = tmp_path / "old.h5"
    shutil.copy(mixed.path, old)
    with h5py.File(old, "r+") as h:
        del h["fates"]
        for name in ("bound", "internalized"):
            g = h[f"observables/cells/{name}"]
            summed = g["value"][()].sum(axis=2)
            del g["value"]
            g.create_dataset("value", data=summed.astype(np.int32), maxshape=(None, summed.shape[1]),
                             chunks=True)
            del g.attrs["species"]
        h["parameters"].attrs["exodiff_version"] = "0.2.0"
    with open_run(old) as run:
        np.testing.assert_array_equal(run.bound_per_cell, mixed.bound_per_cell)
        np.testing.assert_array_equal(run.cells_at(2)[1], mixed.cells_at(2)[1])
        with pytest.raises(InputError, match="no fate table"):
            run.fates
        with pytest.raises(InputError, match="not split by species"):
            run.per_cell_species("bound")
        fp = run.first_passage(event="bound")  # from the stored milestones
        assert fp.n_events == mixed.first_passage(event="bound").n_events


def test_check_shows_the_fate_table_cost(capsys):
    from exodiff.cli import main
    from exodiff.io.layout import FATE_BYTES_PER_VESICLE
    assert FATE_BYTES_PER_VESICLE == 4 + 4 + 9 * 8 + 3 * 4  # species, origin; 9 float64, 3 int32 columns
    assert main(["check", str(SIGNALLING)]) == 0
    assert f"run file: fate table {FATE_BYTES_PER_VESICLE} bytes per vesicle" in capsys.readouterr().out


def test_transfer_command(mixed, tmp_path, capsys):
    from exodiff.cli import main
    csv = tmp_path / "donors.csv"
    assert main(["transfer", str(mixed.path), "--kind", "taken_up", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    tr = mixed.transfer(kind="taken_up")
    assert f"{len(tr.events):,} vesicles taken up from a donor" in out
    assert "donor type (rows) -> recipient type (columns)" in out and "first passage to internalized" in out
    assert csv.read_text().splitlines()[0] == "donor,type,secreted,taken_up,recipients,exited,cleared"
    assert main(["transfer", str(mixed.path), "--kind", "eaten"]) == 2
    assert "Error: kind: 'eaten'" in capsys.readouterr().err


def test_transfer_figure_and_report(mixed, tmp_path):
    from exodiff.plots import figure
    from exodiff.report import write_report
    fig = figure(mixed, "transfer")
    heat, hist = fig.axes[:2]  # the heatmap and the distance histogram (then the colour bar)
    tr = mixed.transfer(kind="taken_up")
    shown = [t.get_text().split("\n")[0] for t in heat.texts]
    assert sum(int(s.replace(",", "")) for s in shown) == len(tr.events)
    assert hist.get_yscale() == "log" and "distance" in hist.get_xlabel()
    result = write_report(mixed, tmp_path / "report", dpi=40)
    donors = tmp_path / "report" / "donors.csv"
    assert donors in result["files"] and "transfer" not in result["skipped"]
    assert len(donors.read_text().splitlines()) == 1 + len(tr.per_donor)


def test_cell_to_cell_variability_is_log_normal_and_stored(tmp_path):
    """kappa, capacity and secretion_rate as { median, gsd }: per-cell values
    drawn log-normal from the seed, used by the kernels (secretion: births per
    donor), stored in /particles/cells and run.cell_table."""
    from exodiff.model import build_model
    sections = dict(
        run={"duration": 0.2, "dt": 1e-3, "seed": 5, "snapshot_interval": 0.1},
        domain={"size": [200.0, 200.0, 200.0], "boundary": "periodic"},
        cells={"layout": "random", "count": 400, "radius": 2.0, "types": {"donor": 0.5, "target": 0.5}},
        cell_types={"donor": {"secretion_rate": {"median": "50 /s", "gsd": 2.0}},
                    "target": {"kappa": {"median": "5 um/s", "gsd": 1.5},
                               "capacity": {"median": 100, "gsd": 1.2}, "k_int": 1.0}},
        vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 0}},
        output={"positions": "none"})
    cfg = scenario(**sections)
    model = build_model(cfg)
    a = model.arrays
    target = a["ctype"] == 1
    for values, median, gsd in ((a["ckappa"][target], 5.0, 1.5), (model.secretion_rate[~target, 0], 50.0, 2.0)):
        logs = np.log(values)
        n = logs.size
        assert abs(logs.mean() - math.log(median)) < 4 * math.log(gsd) / math.sqrt(n)
        assert abs(logs.std(ddof=1) / math.log(gsd) - 1) < 4 / math.sqrt(2 * (n - 1))
    assert np.all(a["ccapacity"][target] == np.rint(a["ccapacity"][target])) and a["ccapacity"][target].std() > 5
    assert np.all(a["ckappa"][~target] == 0) and np.all(model.secretion_rate[target] == 0)
    # births: Poisson per donor at its own rate (total within 4 SE)
    per_donor = np.bincount(model.origin[model.origin >= 0], minlength=len(target))[~target]
    expected = model.secretion_rate[~target, 0] * 0.2
    assert abs(per_donor.sum() - expected.sum()) < 4 * math.sqrt(expected.sum())
    assert np.corrcoef(per_donor, expected)[0, 1] > 0.5
    with _run(tmp_path, "var.h5", **sections) as run:
        table = run.cell_table
        np.testing.assert_array_equal(table["kappa"], a["ckappa"])
        np.testing.assert_array_equal(table["capacity"], a["ccapacity"])
        np.testing.assert_array_equal(table["secretion_rate_ev"], model.secretion_rate[:, 0])
        assert run.transfer().per_donor["secreted"].sum() == per_donor.sum()
