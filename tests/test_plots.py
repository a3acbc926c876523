"""What a reader of the figures sees (exodiff/plots.py), on one small real
run with two donor types, two recipient types and only three snapshots:
sizes, titles inside the figure, one colour per cell type, no offset
labels, round profile times, every donor type, and the MSD note."""
import re

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from exodiff.analysis import open_run
from exodiff.plots import _TYPE_COLORS, _figure, _title, figure


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from exodiff.driver import Simulation
    from scenarios import scenario
    centers = [[15, 15, 15], [45, 45, 45], [15, 45, 30], [45, 15, 30], [30, 30, 12], [30, 30, 48]]
    cfg = scenario(run={"duration": 1.0, "dt": 2e-3, "seed": 7, "snapshot_interval": 0.5,
                        "observe_interval": 0.25},
                   domain={"size": [60.0, 60.0, 60.0], "boundary": "reflect"},
                   cells={"layout": "list", "centers": centers, "radius": 5.0,
                          "types": ["msc", "fibroblast", "endothelial", "endothelial", "macrophage", "macrophage"]},
                   cell_types={"msc": {"secretion_rate": 200.0, "secretes": "exo"},
                               "fibroblast": {"secretion_rate": 100.0, "secretes": "mv"},
                               "endothelial": {"kappa": 5.0, "k_off": 0.5, "k_int": 2.0},
                               "macrophage": {"kappa": 20.0, "k_off": 0.5, "k_int": 5.0}},
                   vesicles={"exo": {"radius": 0.05, "diffusion": 4.0, "count": 300, "cargo": {"miR21": 10}},
                             "mv": {"radius": 0.2, "diffusion": 1.0, "count": 150, "cargo": {"miR21": 3}}},
                   output={"positions": "all"})
    path = tmp_path_factory.mktemp("plots") / "two_donors.h5"
    Simulation(cfg, backend="numba").run(path)
    with open_run(path) as r:
        yield r


def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def test_titles_lie_inside_the_figure(run):
    for kind in ("snapshot", "dose", "profile", "msd", "uptake"):
        fig = figure(run, kind)
        box = fig._suptitle.get_window_extent(_drawn(fig))
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (kind, box)
    fig, _ = _figure()  # a title longer than the figure is wide (a sampled snapshot's) wraps
    _title(fig, run, "Snapshot at t = 30 s: cells and vesicles (coloured by state) in slices through the "
                     "box middle; positions stored for a sample of 2,000")
    box = fig._suptitle.get_window_extent(_drawn(fig))
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width, box


def test_each_cell_type_has_one_colour_in_every_figure(run):
    types = run.cells.type_names
    assert len({c.lower() for c in _TYPE_COLORS[:len(types)]}) == len(types)
    snap = figure(run, "snapshot")
    patches = {h.get_label().split(" cell")[0]: h.get_facecolor()[:3] for h in snap.legends[0].legend_handles
               if " cell" in h.get_label()}
    assert set(patches) == set(types)
    for t, name in enumerate(types):
        assert np.allclose(patches[name], to_rgb(_TYPE_COLORS[t])), name
    dose = figure(run, "dose")
    for text, handle in zip(dose.axes[0].get_legend().get_texts(), dose.axes[0].get_legend().legend_handles):
        name = text.get_text().split(" (")[0]
        assert np.allclose(handle.get_edgecolor()[:3], to_rgb(_TYPE_COLORS[types.index(name)])), name


def test_dose_figure_is_a_readable_size_and_counts_the_cells_with_none(run):
    fig = figure(run, "dose")
    w, h = fig.get_size_inches() * 130  # the default dpi of exodiff plot
    assert 600 <= w <= 1400 and 400 <= h <= 1100, (w, h)
    d = run.dose()
    for ax in fig.axes:
        if ax.get_legend() is None:
            continue
        for text in ax.get_legend().get_texts():
            name, n_none = re.match(r"(\S+) \(\d+ cells, (\d+) with none\)", text.get_text()).groups()
            assert int(n_none) <= np.sum(d.types == run.cells.type_names.index(name))


def test_profile_has_every_donor_type_round_times_and_no_offset_label(run):
    fig = figure(run, "profile")
    _drawn(fig)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", ax.get_title()
    around = " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())
    for donor in run.donor_types:
        assert donor in around
    times = [float(m) for t in fig.axes[0].get_legend().get_texts()
             for m in re.findall(r"t = ([\d.]+) s", t.get_text())]
    assert times and all(abs(t / 0.5 - round(t / 0.5)) < 1e-9 for t in times), times


def test_msd_with_few_snapshots_says_why_and_what_to_change(run):
    assert run.n_snapshots == 3
    title = figure(run, "msd").axes[0].get_title()
    assert "0.5 s apart" in title and "snapshot_interval" in title
