"""Whole-run benchmarks: ``Simulation.run`` (the driver, the numba backend
and the H5MD writer, positions off) over vesicles × cells, and the standard
scenarios S1–S3.  The model is built in each round's set-up, outside the
timed region; kernels are compiled by the session fixture."""
import pytest

from conftest import cell_params, vesicle_params
from exodiff.bench import SCENARIOS, box_for_cells, scenario_config

VESICLE_STEPS = 10_000_000   # per run: steps = this / vesicles (at least 10)


def _run(benchmark, tmp_path, cfg_fn, rounds=3):
    from exodiff.driver import Simulation
    box = {}

    def setup():
        sim = Simulation(cfg_fn(), backend="numba")
        box["sim"] = sim
        return (sim,), {}

    def go(sim):
        box["summary"] = sim.run(tmp_path / "run.h5", overwrite=True)

    benchmark.pedantic(go, setup=setup, rounds=rounds, iterations=1)
    s = box["summary"]
    m = box["sim"].model
    t = benchmark.stats.stats.median
    benchmark.extra_info.update(vesicles=m.n_vesicles, cells=m.n_cells, steps=m.n_steps,
                                vesicle_steps=s["vesicle_steps"], vesicle_steps_per_s=s["vesicle_steps"] / t)


@pytest.mark.parametrize("cells", cell_params())
@pytest.mark.parametrize("vesicles", vesicle_params())
def test_run(benchmark, tmp_path, vesicles, cells):
    """A whole run of ~10⁷ vesicle-steps, absorbing cells at S2's volume fraction."""
    steps = max(10, VESICLE_STEPS // vesicles)
    box = box_for_cells(cells) if cells else 200.0
    _run(benchmark, tmp_path, lambda: scenario_config(vesicles, cells, box=box, steps=steps),
         rounds=3 if vesicles <= 100_000 else 1)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_standard_scenario(benchmark, tmp_path, name):
    """S1–S3 of bench/peers (10⁵ vesicles) for 100 steps (the peers run 1000)."""
    sc = SCENARIOS[name]
    _run(benchmark, tmp_path, lambda: scenario_config(100_000, sc["cells"], sc["kappa"], steps=100))
