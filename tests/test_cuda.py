"""The cuda backend on a real GPU (skipped, with the reason, without one).

DESIGN §2: the CUDA backend matches the CPU per step to round-off and
statistically over long runs.  Round-off here is the device's libm (log, exp
and sincospi within an ulp or two of glibc's) and FMA contraction: positions
differ by ~1e-15 µm per step.  A decision (u < p) flips only when a uniform
falls between the two roundings of p, a chance of ~1e-16 per comparison, so
over these runs states are expected to be identical and positions to agree
far inside the 1e-9 µm tolerance.
"""
import copy
from types import SimpleNamespace

import numpy as np
import pytest

from exodiff.backends import cuda_unavailable_reason
from exodiff.config import parse_config
from exodiff.kernels import step_numba
from exodiff.kernels import state
from exodiff.kernels.constants import STATE_NAMES
from exodiff.model import build_model

from scenarios import run_sim
from test_backends import STATE_ARRAYS, _everything

REASON = cuda_unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no GPU for the cuda backend: {REASON}")

POS_TOL = 1e-9   # µm
EXACT = tuple(name for name in state.FETCHED if name != "pos")


def _cuda():
    from exodiff.backend_cuda import CudaBackend
    return CudaBackend()


def _copy(arrays):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}


def _assert_agree(got, ref, where):
    for name in EXACT:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{name} {where}")
    np.testing.assert_allclose(got["pos"], ref["pos"], rtol=0, atol=POS_TOL, err_msg=f"pos {where}")


def test_cuda_backend_names_its_device():
    backend = _cuda()
    assert backend.name == "cuda" and backend.device


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_cuda_matches_numba_step_by_step(capacity):
    """From the same state, one step on each backend, compared; the GPU then
    restarts from the CPU's state, so each step is checked on its own."""
    model = build_model(_everything(capacity))
    cpu = _copy(model.arrays)
    gpu = SimpleNamespace(arrays=_copy(cpu))
    backend = _cuda()
    for n in range(model.n_steps):
        for k, v in cpu.items():
            gpu.arrays[k] = v.copy() if isinstance(v, np.ndarray) else v
        backend.prepare(gpu)
        backend.advance(n, n + 1)
        backend.fetch(gpu)
        step_numba.advance(n, n + 1, state.pack(cpu))
        _assert_agree(gpu.arrays, cpu, f"after step {n}")


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_cuda_matches_numba_over_a_whole_run(capacity, tmp_path):
    """The driver's run (fused launches between observations) on both."""
    cfg = _everything(capacity)
    ref = run_sim(cfg, "numba", tmp_path, "numba.h5").model.arrays
    got = run_sim(cfg, "cuda", tmp_path, "cuda.h5").model.arrays
    assert set(STATE_ARRAYS) == set(EXACT) | {"pos"}
    _assert_agree(got, ref, "at the end")


def test_cuda_fused_launches_equal_single_steps():
    """Cutting a chunk into launches does not change the GPU's answer."""
    from exodiff import backend_cuda
    model = build_model(_everything(0))
    one, many = SimpleNamespace(arrays=_copy(model.arrays)), SimpleNamespace(arrays=_copy(model.arrays))
    backend = _cuda()
    backend.prepare(one)
    backend.advance(0, model.n_steps)
    backend.fetch(one)
    backend.prepare(many)
    for first, end, _ in backend_cuda.launch_schedule(0, model.n_steps, model.n_vesicles, False,
                                                      work=5 * model.n_vesicles):
        backend.advance(first, end)
    backend.fetch(many)
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(many.arrays[name], one.arrays[name], err_msg=name)


@pytest.mark.validate
def test_cuda_and_numba_agree_statistically(tmp_path):
    """Independent seeds, the same cells, 20000 vesicles: the final count in
    each state (and so the absorbed, bound, internalized and cleared
    fractions) agrees within 5 binomial standard errors of the difference
    (two-sided p ≈ 6e-7 each)."""
    raw = copy.deepcopy(_everything(0).raw)
    raw["run"]["duration"] = 1.0
    raw["vesicles"]["ev"]["count"] = 20000
    # the same cells in both runs (a random layout would change with the seed)
    m = build_model(parse_config(raw))
    raw["cells"] = {"layout": "list", "centers": m.arrays["ccenter"].tolist(),
                    "radii": m.arrays["cradius"].tolist(),
                    "types": [m.cell_type_names[t] for t in m.arrays["ctype"]]}
    cpu_cfg = parse_config(copy.deepcopy(raw))
    raw["run"]["seed"] = raw["run"]["seed"] + 1
    gpu_cfg = parse_config(raw)
    a = run_sim(cpu_cfg, "numba", tmp_path, "numba.h5").model.arrays["state"]
    b = run_sim(gpu_cfg, "cuda", tmp_path, "cuda.h5").model.arrays["state"]
    na, nb = a.size, b.size
    for code, name in enumerate(STATE_NAMES):
        ka, kb = np.count_nonzero(a == code), np.count_nonzero(b == code)
        p = (ka + kb) / (na + nb)
        se = np.sqrt(p * (1 - p) * (1 / na + 1 / nb))
        if se == 0:
            assert ka == kb == 0 or (ka == na and kb == nb), name
            continue
        assert abs(ka / na - kb / nb) < 5 * se, f"{name}: numba {ka}/{na}, cuda {kb}/{nb}"
