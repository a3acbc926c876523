"""`exodiff bench` and the peer-benchmark scenario helpers: argument errors,
a tiny measurement, the report tables, and the physics the peer scripts rely
on (exact absorbing-sphere fraction, the Doi rate that matches Collins–Kimball,
non-overlapping cells).  The benchmarks themselves live in bench/ and are run
by hand."""
import math
from pathlib import Path

import numpy as np
import pytest

from exodiff import bench
from exodiff.cli import main

PEERS = Path(__file__).resolve().parents[1] / "bench" / "peers"


def test_bench_rejects_unknown_backend(capsys):
    assert main(["bench", "--backend", "fortran"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Error: --backend: unknown backend 'fortran'; expected numba, numpy or cuda"]


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_measure_reports_rate_and_memory(name):
    cfg = bench.scenario_config(300, 5, "inf", box=60.0)
    m = bench.measure(cfg, name, steps=3, repeats=2, label="tiny")
    assert m.vesicles == 300 and m.cells == 5 and len(m.seconds) == 2
    assert m.rate > 0 and math.isfinite(m.ns_per_vesicle_step)
    # position (24) + image (12) + state (1) + cell (4) + the fate columns
    # (64: event times, cells, recycled, bound time) + leap state (32) + constants
    assert 80 <= m.bytes_per_vesicle <= 240


def test_report_has_every_table():
    mk = lambda label, cells=1000, n=100: bench.Measurement(
        backend="numba", device="cpu", label=label, vesicles=n, cells=cells, steps=10, rate=2e6,
        bytes_per_vesicle=117, cells_per_bin=1.5)
    res = {"standard": [mk(s) for s in bench.SCENARIOS], "vesicles": [mk("S2", n=10_000), mk("S2", n=100_000)],
           "cells": [mk("c", cells=m) for m in (10, 1000)]}
    text = bench.format_report(res, quick=True)
    assert "S1 (no cells)" in text and "bytes/vesicle" in text and " 117 |" in text
    assert "Scaling in vesicles" in text and "Scaling in cells" in text and "1.00×" in text


def test_box_for_cells_keeps_volume_fraction():
    for m in (10, 1000, 10_000):
        assert bench.box_for_cells(m) ** 3 / m == pytest.approx(bench.BOX ** 3 / bench.CELLS_STANDARD)


@pytest.fixture(scope="module")
def scenarios():
    """bench/peers/scenarios.py, loaded from its path: tests/ has a
    scenarios module of its own under the same name."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("peer_scenarios", PEERS / "scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_cells_do_not_overlap_and_vesicles_start_outside(scenarios):
    c = scenarios.cell_centers(200, box=100.0)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(len(c)) * 1e9
    assert d.min() >= 2 * scenarios.CONTACT_RADIUS
    assert np.all((c >= scenarios.CONTACT_RADIUS) & (c <= 100.0 - scenarios.CONTACT_RADIUS))
    p = scenarios.vesicle_positions(5000, c, box=100.0)
    dist = np.sqrt(((p[:, None] - c[None]) ** 2).sum(-1)).min(1)
    assert dist.min() > scenarios.CONTACT_RADIUS


def test_peer_doi_rate_matches_collins_kimball(scenarios):
    R, D, kappa = scenarios.CONTACT_RADIUS, scenarios.D, scenarios.KAPPA_S3
    lam = scenarios.doi_rate_for_kappa(kappa)
    ell = math.sqrt(D / lam)
    doi = 4 * math.pi * D * (R - ell * math.tanh(R / ell))
    kf, kd = 4 * math.pi * R * R * kappa, 4 * math.pi * R * D
    assert doi == pytest.approx(kf * kd / (kf + kd), rel=1e-9)
    assert math.isinf(scenarios.doi_rate_for_kappa(math.inf))


def test_peer_exact_absorbed_fraction(scenarios):
    assert scenarios.exact_absorbed(0.25) == pytest.approx(5 / 6 * math.erfc(0.5))
    assert scenarios.exact_absorbed(1e9) == pytest.approx(5 / 6, rel=1e-4)


def test_stepping_table_times_both_schemes_on_the_same_window():
    from exodiff import bench
    (pair,) = bench.measure_stepping(["S2"], "numba", repeats=2, quick=True)
    fixed, adaptive = pair
    assert (fixed.stepping, adaptive.stepping) == ("fixed", "adaptive")
    assert fixed.leaps == 0 and adaptive.leaps > 0
    # every repeat builds the model afresh: the same window, the same work
    assert fixed.vesicle_seconds[0] == fixed.vesicle_seconds[1] == adaptive.vesicle_seconds[0] > 0
    assert all(s > 0 for s in fixed.seconds + adaptive.seconds + fixed.cpu_seconds)
    text = bench.format_stepping([pair], 2)
    assert "| S2" in text and "adaptive / fixed" in text
