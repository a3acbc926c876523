"""Shared set-up for the pytest-benchmark suites (``pytest bench/``).

Sizes of 10⁶ vesicles and more carry the ``big`` marker and are skipped
unless ``--big`` is given, so a default ``pytest bench/`` stays within a few
minutes on 2 cores.  Kernels are compiled (or loaded from Numba's cache) by a
session fixture before any timing.  Every benchmark stores its throughput in
``extra_info`` (``vesicle_steps_per_s`` and friends), which
``--benchmark-json`` writes out and ``--benchmark-columns`` cannot show.
"""
import numpy as np
import pytest

VESICLES = [10_000, 100_000, 1_000_000, 10_000_000]
CELLS = [0, 10, 1000, 10_000]
BIG = 1_000_000


def pytest_addoption(parser):
    parser.addoption("--big", action="store_true", default=False,
                     help="also run the benchmarks with ≥ 10⁶ vesicles (minutes each, GBs of memory)")


def pytest_configure(config):
    config.addinivalue_line("markers", "big: benchmark with ≥ 10⁶ vesicles; skipped unless --big")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--big"):
        return
    skip = pytest.mark.skip(reason="≥ 10⁶ vesicles: pass --big to run")
    for item in items:
        if "big" in item.keywords:
            item.add_marker(skip)


def vesicle_params():
    """VESICLES as pytest params, the large ones marked big."""
    return [pytest.param(n, marks=pytest.mark.big, id=f"{n:.0e}".replace("+0", "")) if n >= BIG
            else pytest.param(n, id=f"{n:.0e}".replace("+0", "")) for n in VESICLES]


def cell_params():
    return [pytest.param(m, id=f"cells{m}") for m in CELLS]


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Compile (or load from cache) every Numba kernel variant outside the timed regions."""
    from exodiff.bench import scenario_config
    from exodiff.backends import select_backend
    from exodiff.model import build_model
    for kappa, capacity in (("inf", 0), (1.0, 0), (1.0, 10)):
        cfg = scenario_config(200, 5, kappa, box=60.0, capacity=capacity, k_off=1.0)
        model = build_model(cfg)
        backend, _ = select_backend("numba")
        backend.prepare(model)
        backend.advance(0, 2)
    yield


def active(model):
    from exodiff.kernels.constants import BOUND, FREE
    s = model.arrays["state"]
    return int(np.count_nonzero((s == FREE) | (s == BOUND)))
