"""Figures, the HTML report, the XDMF sidecar, MDAnalysis and the
plot/report/export/compare commands (exodiff/plots.py, report.py,
export.py, cli.py), on one small real run."""
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from exodiff.cli import main
from exodiff.analysis import open_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    """A small real run with donors, targets and stored positions."""
    from exodiff.driver import Simulation
    from scenarios import scenario
    centers = [[15, 15, 15], [45, 45, 45], [15, 45, 30], [45, 15, 30], [30, 30, 12], [30, 30, 48]]
    cfg = scenario(run={"duration": 1.0, "dt": 2e-3, "seed": 4, "snapshot_interval": 0.25,
                        "observe_interval": 0.125},
                   domain={"size": [60.0, 60.0, 60.0], "boundary": "reflect"},
                   cells={"layout": "list", "centers": centers, "radius": 5.0,
                          "types": ["donor", "target", "target", "target", "target", "target"]},
                   cell_types={"donor": {"secretion_rate": 100.0, "secretes": "ev"},
                               "target": {"kappa": 5.0, "k_off": 0.5, "k_int": 2.0}},
                   vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 400,
                                    "cargo": {"miR21": 10, "CD63": 2}}},
                   output={"positions": "all"})
    path = tmp_path_factory.mktemp("out") / "small.h5"
    Simulation(cfg, backend="numba").run(path)
    return path


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_plot_command_writes_png_pdf_and_svg(run_path, tmp_path, capsys):
    for kind, suffix in (("uptake", "png"), ("snapshot", "pdf"), ("fpt", "svg")):
        out = tmp_path / f"{kind}.{suffix}"
        assert main(["plot", str(run_path), "--kind", kind, "-o", str(out), "--dpi", "40"]) == 0, kind
        assert out.stat().st_size > 1000
    _png(tmp_path / "uptake.png")
    assert (tmp_path / "snapshot.pdf").read_bytes()[:4] == b"%PDF"
    assert "wrote" in capsys.readouterr().out


def test_figures_have_labelled_axes_and_titles(run_path):
    from exodiff.plots import KINDS, figure
    with open_run(run_path) as run:
        for kind in KINDS:
            fig = figure(run, kind)
            assert fig.get_suptitle(), kind
            for ax in fig.axes:
                if ax.has_data():
                    assert "[" in ax.get_xlabel() and ax.get_ylabel(), (kind, ax.get_xlabel())


def test_report_writes_figures_html_and_csv(run_path, tmp_path):
    import pandas as pd
    out = tmp_path / "rep"
    assert main(["report", str(run_path), "-o", str(out), "--dpi", "50"]) == 0
    for name in ("uptake.png", "snapshot.png", "cells.csv", "uptake.csv", "dose_summary.csv", "donors.csv",
                 "index.html"):
        assert (out / name).is_file(), name
    cells = pd.read_csv(out / "cells.csv", index_col="cell")
    assert len(cells) == 6 and {"x", "type", "bound", "internalized", "cargo_miR21",
                                "nearest_donor_distance"} <= set(cells.columns)
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 10 and "every vesicle accounted for" in page
    assert "src=\"http" not in page and "<script" not in page  # self-contained


def test_report_on_a_run_without_positions_skips_what_needs_them(tmp_path):
    from exodiff.driver import Simulation
    from scenarios import scenario
    cfg = scenario(run={"duration": 0.1, "dt": 1e-2}, vesicles={"ev": {"radius": 0.05, "diffusion": 4.0,
                                                                       "count": 50}})
    path = tmp_path / "nopos.h5"
    Simulation(cfg, backend="numpy").run(path)
    with open_run(path) as run:
        from exodiff.report import write_report
        result = write_report(run, tmp_path / "r", dpi=40)
    assert set(result["skipped"]) == {"range", "msd", "profile", "snapshot"}
    assert (tmp_path / "r" / "uptake.png").is_file()


def _resolve(element, f):
    """Shape the HDF5 DataItems under ``element`` refer to, checked against the file."""
    for item in element.iter("DataItem"):
        if item.get("Format") == "HDF":
            name, path = item.text.strip().split(":", 1)
            ds = f[path]
            assert tuple(int(d) for d in item.get("Dimensions").split()) == ds.shape, path


def test_xdmf_sidecar_points_at_real_datasets(run_path, tmp_path, capsys):
    out = tmp_path / "small.xdmf"
    assert main(["export", str(run_path), "--xdmf", "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    series = root.find("Domain/Grid")
    assert series.get("CollectionType") == "Temporal"
    steps = series.findall("Grid")
    with open_run(run_path) as run, h5py.File(run_path, "r") as f:
        assert len(steps) == run.n_snapshots
        times = [float(g.find("Time").get("Value")) for g in steps]
        np.testing.assert_allclose(times, run.snapshot_times)
        ves = steps[-1].find("Grid[@Name='vesicles']")
        assert int(ves.find("Topology").get("NumberOfElements")) == run.n_stored
        names = [a.get("Name") for a in ves.findall("Attribute")]
        assert names == ["state", "cell", "species", "radius", "id"]
        cells = steps[-1].find("Grid[@Name='cells']")
        assert [a.get("Name") for a in cells.findall("Attribute")] == [
            "radius", "type", "bound", "internalized", "cargo_CD63", "cargo_miR21"]
        # hyperslab of the last frame: start, stride, count
        slab = ves.find("Geometry/DataItem/DataItem").text.split()
        S, n = run.n_snapshots, run.n_stored
        assert slab == [str(S - 1), "0", "0", "1", "1", "1", "1", str(n), "3"]
        _resolve(root, f)
        rel = ves.find("Geometry/DataItem/DataItem[@Format='HDF']").text.split(":")[0]
        assert (out.parent / rel).resolve() == run_path.resolve()  # relative to the sidecar
    assert main(["export", str(run_path)]) == 2  # no format chosen
    assert "--xdmf" in capsys.readouterr().err


def test_h5md_file_loads_in_mdanalysis(run_path):
    pytest.importorskip("MDAnalysis")
    from exodiff.export import mdanalysis_universe
    u = mdanalysis_universe(run_path)
    with open_run(run_path) as run:
        assert u.trajectory.n_frames == run.n_snapshots and len(u.atoms) == run.n_stored
        for ts in u.trajectory:
            np.testing.assert_allclose(u.atoms.positions, run.positions(ts.frame), rtol=1e-6, atol=1e-4)
            assert ts.time == pytest.approx(run.snapshot_times[ts.frame])
            np.testing.assert_allclose(ts.dimensions[:3], run.box_edges)
        assert set(u.atoms.types) == {"ev"}
        np.testing.assert_allclose(u.atoms.radii, run.vesicle_radius)


def test_compare_prints_a_table_per_cell_type(run_path, tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(run_path), str(run_path), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "donor" in text and "target" in text and "all" in text
    assert "no difference at alpha = 0.01" in text
    assert out.is_file()


@pytest.mark.parametrize("args, message", [
    (["plot", "{run}", "--kind", "violin"], "--kind 'violin': unknown"),
    (["plot", "{missing}", "--kind", "uptake"], "no such file"),
    (["plot", "{notrun}", "--kind", "uptake"], "not an exodiff run file"),
    (["plot", "{text}", "--kind", "uptake"], "not an HDF5 file"),
    (["plot", "{run}", "--kind", "uptake", "-o", "{tmp}/fig.bmp2"], "unknown figure format"),
    (["plot", "{run}", "--kind", "snapshot", "--frame", "99", "-o", "{tmp}/s.png"], "--frame 99: out of range"),
    (["report", "{missing}"], "no such file"),
    (["export", "{notrun}", "--xdmf"], "not an exodiff run file"),
    (["compare", "{run}", "{missing}"], "no such file"),
    (["plot", "{run}", "--kind", "uptake", "-o", "{tmp}/nodir/f.png"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(run_path, tmp_path, capsys, args, message):
    notrun = tmp_path / "other.h5"
    with h5py.File(notrun, "w") as f:
        f["x"] = 1
    text = tmp_path / "t.h5"
    text.write_text("hello")
    fill = dict(run=run_path, missing=tmp_path / "missing.h5", notrun=notrun, text=text, tmp=tmp_path)
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err, err
