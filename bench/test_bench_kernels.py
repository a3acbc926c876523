"""Kernel benchmarks: Philox, one step with and without cells, grid build,
births and model build.  JIT compilation is done before timing (the session
fixture in conftest.py and a warm-up call per benchmark)."""
import math

import numba
import numpy as np
import pytest

from conftest import active, cell_params, vesicle_params
from exodiff.bench import box_for_cells, candidates_per_vesicle, scenario_config
from exodiff.kernels.philox_numba import normals4, uniforms4

# ---------------------------------------------------------------- Philox
N_RNG = 1_000_000


@numba.njit(cache=True)
def _fill_uniforms(out, n, k0, k1):
    for i in range(out.shape[0]):
        a, b, c, d = uniforms4(i, n, 1, k0, k1)
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c
        out[i, 3] = d


@numba.njit(cache=True)
def _fill_normals(out, n, k0, k1):
    for i in range(out.shape[0]):
        a, b, c, d = normals4(i, n, 0, k0, k1)
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c


@pytest.mark.parametrize("kind", ["uniforms4", "normals4"])
def test_philox(benchmark, kind):
    """Philox4x32-10 draws into an array, one counter per vesicle (a step's
    worth for 10⁶ vesicles): uniforms4 = one Philox call, normals4 = one call
    plus Box–Muller (the displacement of a step)."""
    out = np.empty((N_RNG, 4))
    fill = _fill_uniforms if kind == "uniforms4" else _fill_normals
    k0, k1 = np.uint64(42), np.uint64(0)
    fill(out, 0, k0, k1)
    benchmark.pedantic(fill, args=(out, 1, k0, k1), rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info["calls_per_s"] = N_RNG / benchmark.stats.stats.median
    benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.median / N_RNG * 1e9


def test_philox_numpy_reference(benchmark):
    """The vectorized NumPy twin (used for setup and by the reference backend)."""
    from exodiff.kernels.philox import normals4_np
    ids = np.arange(N_RNG, dtype=np.int64)
    benchmark.pedantic(normals4_np, args=(ids, 1, 0, 42, 0), rounds=3, iterations=1)
    benchmark.extra_info["calls_per_s"] = N_RNG / benchmark.stats.stats.median


# ---------------------------------------------------------------- one step
def _step_model(vesicles, cells, kappa="inf", capacity=0, backend="numba"):
    from exodiff.backends import select_backend
    from exodiff.model import build_model
    box = box_for_cells(cells) if cells else 200.0
    model = build_model(scenario_config(vesicles, cells, kappa, box=box, capacity=capacity, k_off=0.01 if capacity else 0.0))
    b, _ = select_backend(backend)
    b.prepare(model)
    b.advance(0, 1)  # warm
    b.fetch(model)
    return model, b


def _time_steps(benchmark, model, b, steps, rounds):
    counter = {"n": 1}
    n_active = active(model)

    def go():
        n = counter["n"]
        b.advance(n, n + steps)
        b.fetch(model)
        counter["n"] = n + steps

    benchmark.pedantic(go, rounds=rounds, iterations=1)
    t = benchmark.stats.stats.median
    benchmark.extra_info.update(vesicles=model.n_vesicles, cells=model.n_cells, steps=steps,
                                active=n_active, vesicle_steps_per_s=n_active * steps / t,
                                ns_per_vesicle_step=t / (n_active * steps) * 1e9,
                                cells_tested_per_step=candidates_per_vesicle(model))


@pytest.mark.parametrize("cells", cell_params())
@pytest.mark.parametrize("vesicles", vesicle_params())
def test_step_numba(benchmark, vesicles, cells):
    """One step of every vesicle (numba backend, absorbing cells).  With
    cells the box grows with their number at S2's volume fraction, so the
    cost per vesicle-step should not depend on `cells`."""
    model, b = _step_model(vesicles, cells)
    rounds = 20 if vesicles <= 100_000 else 5
    _time_steps(benchmark, model, b, 1, rounds)


@pytest.mark.parametrize("mode", ["independent", "capacity"])
def test_step_capacity_sync(benchmark, mode):
    """S3-like, 10⁵ vesicles, 1000 cells, κ = 1 µm/s, 20 steps per call:
    without capacity all steps run fused per vesicle; with a receptor
    capacity the kernel synchronizes every step (a parallel barrier and a
    recount of bound vesicles per cell)."""
    model, b = _step_model(100_000, 1000, kappa=1.0, capacity=1000 if mode == "capacity" else 0)
    _time_steps(benchmark, model, b, 20, 5)


def test_step_numpy_reference(benchmark):
    """One step of the NumPy reference backend, 10⁴ vesicles, 1000 cells."""
    model, b = _step_model(10_000, 1000, backend="numpy")
    _time_steps(benchmark, model, b, 1, 5)


# ---------------------------------------------------------------- set-up
@pytest.mark.parametrize("cells", [1000, 10_000, 100_000])
def test_grid_build(benchmark, cells):
    """Cell grid (CSR lists per bin) for `cells` cells at S2's volume fraction."""
    from exodiff.grid import build_cell_grid
    from exodiff.layouts import make_cells
    box = box_for_cells(cells)
    cfg = scenario_config(10, cells, box=box)
    c = make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), 1)
    reach = 0.05 + 8 * math.sqrt(2 * 4.0 * 1e-3)
    build_cell_grid(c.centers[:10], c.radii[:10], [box] * 3, [False] * 3, reach)  # JIT
    g = benchmark.pedantic(build_cell_grid, args=(c.centers, c.radii, [box] * 3, [False] * 3, reach),
                           rounds=5, iterations=1)
    benchmark.extra_info.update(cells=cells, bins=g.total_bins, items=int(g.items.size),
                                cells_per_bin=g.items.size / g.total_bins)


def test_births(benchmark):
    """Secretion schedule: 1000 donor cells at 0.02 /s for 2 h (~1.4·10⁵
    births, Poisson per donor from the counter RNG)."""
    from exodiff.kernels.philox import seed_key
    from exodiff.model import _poisson_births
    donors = np.arange(1000, dtype=np.int64)
    t, _ = benchmark.pedantic(_poisson_births, args=(donors, 0.02, 0.0, 7200.0, seed_key(1)),
                              rounds=5, iterations=1)
    benchmark.extra_info.update(births=int(t.size), births_per_s=t.size / benchmark.stats.stats.median)


@pytest.mark.parametrize("vesicles", vesicle_params()[:3])
def test_model_build(benchmark, vesicles):
    """build_model for S2 (1000 cells packed at random, vesicles placed
    uniformly in the free volume, the cell grid)."""
    from exodiff.model import build_model
    cfg = scenario_config(vesicles, 1000)
    build_model(scenario_config(100, 10))  # JIT of packing and grid
    m = benchmark.pedantic(build_model, args=(cfg,), rounds=3, iterations=1)
    benchmark.extra_info.update(vesicles=vesicles, vesicles_per_s=vesicles / benchmark.stats.stats.median)
    del m
