"""The CUDA kernels checked without a GPU (DESIGN §3).

The step body of the cuda backend (kernels/exodiff_step.cuh) is a
``__host__ __device__`` function; kernels/host_harness.cpp runs it over all
vesicles on the CPU with the kernels' own entry points, and these tests drive
it with the cuda backend's own argument builder and launch schedule
(exodiff/backend_cuda.py).  Built without FMA contraction and linked to the
same libm (glibc) as Numba, it must match the Numba backend bit for bit.
The shipped .cu files must also compile with nvcc for sm_80 and sm_90 with
warnings as errors, and on sm_90 the step kernel must use no local memory (its
state stays in registers).
"""
import collections
import copy
import ctypes
import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from exodiff import backend_cuda
from exodiff.config import parse_config
from exodiff.driver import Simulation
from exodiff.kernels import constants, philox, state

from test_backends import STATE_ARRAYS, _everything
from test_philox import KAT

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
CXX = shutil.which("g++")
NVCC = shutil.which("nvcc")
HARNESS_FLAGS = ["-O2", "-fno-fast-math", "-ffp-contract=off", "-std=c++17",
                 "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]

# C element types of the containers' fields and the entry points' parameters
# -> (ctypes type of the parameter, NumPy dtype of the element)
C_TYPES = {
    "long long": (ctypes.c_longlong, np.int64), "unsigned int": (ctypes.c_uint, np.uint32),
    "double": (ctypes.c_double, np.float64), "int": (ctypes.c_int, np.int32),
    "signed char": (ctypes.c_byte, np.int8),
}


def _camel_to_macro(name):
    """VesicleParams -> EXO_VESICLE_PARAMS (the X-macro of a container)."""
    return "EXO_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def header_fields(container):
    """[(kind P or S, const, C element type, name)] of a container's X-macro
    in kernels/exodiff_step.cuh (the C struct's members, in order)."""
    text = (KERNELS / "exodiff_step.cuh").read_text()
    macro = _camel_to_macro(container.__name__)
    m = re.search(rf"#define {macro}\(P, S\)((?:.*\\\n)*.*)", text)
    assert m is not None, f"{macro} not found in exodiff_step.cuh"
    items = re.findall(r"\b([PS])\((const )?([a-z ]+?), (\w+)\)", m.group(1))
    return [(kind, bool(const), ctype, name) for kind, const, ctype, name in items]


def header_params():
    """[(C type, name)] of EXO_ADVANCE_PARAMS as the compiler sees it (the
    preprocessor's expansion; pointers as "T*", qualifiers dropped)."""
    if CXX is None:
        pytest.skip("g++ is not installed: cannot expand the CUDA headers")
    src = '#include "exodiff_step.cuh"\nBEGIN EXO_ADVANCE_PARAMS END\n'
    done = subprocess.run([CXX, "-E", "-P", "-x", "c++", "-I", str(KERNELS), "-"], input=src,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    body = re.search(r"BEGIN(.*)END", done.stdout, re.S).group(1)
    body = body.replace("__restrict__", "").replace("const ", "")
    params = []
    for item in body.split(","):
        m = re.fullmatch(r"\s*([a-z ]+?)\s*(\*?)\s*(\w+)\s*", item)
        params.append((m.group(1) + m.group(2), m.group(3)))
    return params


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if CXX is None:
        pytest.skip("g++ is not installed: cannot build the CUDA host harness")
    out = tmp_path_factory.mktemp("harness") / "libexodiff_host.so"
    cmd = [CXX, *HARNESS_FLAGS, "-I", str(KERNELS), str(KERNELS / "host_harness.cpp"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    lib = ctypes.CDLL(str(out))
    for name in (*backend_cuda.ADVANCE.values(), *backend_cuda.ADVANCE_ADAPTIVE.values()):
        getattr(lib, name).argtypes = [ctypes.c_void_p if t.endswith("*") else C_TYPES[t][0]
                                       for t, _ in header_params()]
        getattr(lib, name).restype = None
    lib.count_bound.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * 3
    lib.count_bound.restype = None
    lib.philox4x32.argtypes = [ctypes.c_void_p] * 3
    lib.philox4x32.restype = None
    lib.normals4.argtypes = [ctypes.c_ulonglong, ctypes.c_longlong] + [ctypes.c_uint] * 4 + [ctypes.c_void_p]
    lib.normals4.restype = None
    return lib


def _c(value):
    return value.ctypes.data if isinstance(value, np.ndarray) else value


class HostBackend:
    """CudaBackend with the GPU replaced by the host harness: the same layout,
    argument list and launch schedule, NumPy arrays instead of CuPy ones."""
    name = "cuda-host"
    device = "cpu (CUDA host harness)"

    def __init__(self, lib, work=backend_cuda.LAUNCH_WORK):
        self.lib = lib
        self.work = work

    def prepare(self, model):
        self.dev = backend_cuda.to_device_layout(model.arrays, np)
        self.capacity = bool(np.any(model.arrays["ccapacity"] > 0))
        self.step = getattr(self.lib, backend_cuda.advance_entry(model))

    def advance(self, n0, n1):
        d = self.dev
        n = int(d["n_vesicles"])
        for first, end, recount in backend_cuda.launch_schedule(n0, n1, n, self.capacity, self.work):
            self.step(*(_c(v) for v in backend_cuda.launch_args(d, first, end)))
            if recount:
                d["bound_count"][:] = 0
                self.lib.count_bound(n, _c(d["state"]), _c(d["cell"]), _c(d["bound_count"]))

    def update_constants(self, model, names):
        for name in names:
            self.dev.update(backend_cuda._field_to_device(state.FIELDS[name], model.arrays[name], np))

    def synchronize(self):
        pass

    def fetch(self, model):
        for name in backend_cuda.FETCHED:
            model.arrays[name][...] = backend_cuda.host_layout(self.dev, name)


def _run(cfg, tmp_path, name, backend="numba", host=None):
    sim = Simulation(cfg, backend=backend)
    if host is not None:
        sim.backend = host
    sim.run(tmp_path / name)
    return sim.model.arrays


# -- the sources agree with the Python side ----------------------------------
@pytest.mark.parametrize("container", state.CONTAINERS, ids=lambda c: c.__name__)
def test_cuda_structs_match_the_state_definitions(container):
    """Each C struct (its X-macro) has the fields of kernels/state.py in
    order: the same names (split ones by axis), element types, and const
    exactly where the step does not write."""
    got = header_fields(container)
    expected = [(name, f) for f in container.FIELDS for name in (f.split or (f.name,))]
    assert [g[3] for g in got] == [name for name, _ in expected]
    for (kind, const, ctype, name), (_, f) in zip(got, expected):
        assert kind == ("P" if f.shape else "S"), name
        assert np.dtype(C_TYPES[ctype][1]) == np.dtype(f.dtype), name
        if f.shape:
            assert const == (f.role != state.STATE), name


def test_entry_point_parameters_match_the_argument_builder():
    """EXO_ADVANCE_PARAMS, expanded (the host harness and the CUDA kernel
    take exactly it), is backend_cuda's parameter list with its types."""
    params = header_params()
    assert tuple(name for _, name in params) == backend_cuda.PARAMS
    for ctype, name in params:
        assert np.dtype(C_TYPES[ctype.rstrip("*")][1]) == np.dtype(backend_cuda.PARAM_DTYPES[name]), name
        is_array = ctype.endswith("*")
        f = state.FIELDS.get(name) or next((f for f in state.FIELDS.values() if name in f.split), None)
        assert is_array == bool(f is not None and f.shape), name


def test_cuda_constants_mirror_the_python_ones():
    rng = (KERNELS / "exodiff_rng.cuh").read_text()
    step = (KERNELS / "exodiff_step.cuh").read_text()
    pairs = dict(re.findall(r"\b([A-Z][A-Z_]+) = (\d+)", rng + step))
    for name in (*(s.name for s in constants.VesicleState), *(k.name for k in constants.FaceKind)):
        assert int(pairs[name]) == getattr(constants, name), name
    streams = [n for n in dir(philox) if n.startswith("STREAM_")]
    assert set(streams) == {n for n in pairs if n.startswith("STREAM_")}
    for name in streams:
        assert int(pairs[name]) == getattr(philox, name), name
    cutoff = re.search(r"BRIDGE_CUTOFF = ([0-9.]+);", step).group(1)
    assert float(cutoff) == constants.BRIDGE_CUTOFF
    far = re.search(r"FAR_SIGMAS = ([0-9.]+);", step).group(1)
    assert float(far) == constants.FAR_SIGMAS
    # the far-cell rejection must be conservative: above √cutoff with room for round-off
    assert constants.FAR_SIGMAS >= np.sqrt(constants.BRIDGE_CUTOFF) * (1 + 1e-7)


def test_cuda_surface_constants_mirror_surface_py():
    from exodiff.kernels import surface
    text = (KERNELS / "exodiff_surface.cuh").read_text()
    found = dict(re.findall(r"\b([A-Z][A-Z0-9_]*) = (-?[0-9.eE+-]+)[,;]", text))
    names = [n for n in dir(surface) if re.fullmatch(r"[A-Z][A-Z0-9_]*", n)
             and isinstance(getattr(surface, n), float)]
    assert names and set(names) <= set(found), sorted(set(names) - set(found))
    for name in names:
        assert float(found[name]) == getattr(surface, name), name


def test_device_layout_round_trips_the_model_arrays():
    from exodiff.model import build_model
    arrays = build_model(_everything(0)).arrays
    dev = backend_cuda.to_device_layout(arrays, np)
    for name in backend_cuda.FETCHED:
        np.testing.assert_array_equal(backend_cuda.host_layout(dev, name), arrays[name], err_msg=name)
    assert np.shares_memory(dev["px"], dev["pos"]) and not np.shares_memory(dev["pos"], arrays["pos"])


def test_launch_schedule_covers_every_step_once():
    fused = backend_cuda.launch_schedule(10, 35, 1000, False, work=7000)
    assert fused == [(10, 17, False), (17, 24, False), (24, 31, False), (31, 35, True)]
    assert backend_cuda.launch_schedule(3, 6, 10, True) == [(3, 4, True), (4, 5, True), (5, 6, True)]
    assert backend_cuda.launch_schedule(5, 5, 10, False) == []


# -- the host harness against Numba -------------------------------------------
@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_cuda_philox_matches_known_answers(lib, ctr, key, expected):
    out = np.zeros(4, dtype=np.uint32)
    lib.philox4x32(np.array(ctr, dtype=np.uint32).ctypes.data, np.array(key, dtype=np.uint32).ctypes.data,
                   out.ctypes.data)
    assert tuple(int(x) for x in out) == expected


def test_cuda_normals_match_numpy_bit_for_bit(lib):
    n = 100_000
    out = np.zeros((4, n))
    lib.normals4(0, n, 7, philox.STREAM_DIFFUSE, 42, 3, out.ctypes.data)
    ref = np.stack(philox.normals4_np(np.arange(n), 7, philox.STREAM_DIFFUSE, 42, 3))
    np.testing.assert_array_equal(out, ref)


def test_cuda_normals_of_ids_beyond_32_bits_match_numpy(lib):
    """Vesicle ids from 2³² on: the id's high word is counter word 3, the same
    in the harness as in NumPy (test_philox checks NumPy against Numba and
    that these streams differ from those of id mod 2³²)."""
    n = 1000
    for first in (2**32 - n // 2, 5 * 2**32 + 17, 2**64 - n):
        out = np.zeros((4, n))
        lib.normals4(first, n, 7, philox.STREAM_DIFFUSE, 42, 3, out.ctypes.data)
        ids = np.uint64(first) + np.arange(n, dtype=np.uint64)
        ref = np.stack(philox.normals4_np(ids, 7, philox.STREAM_DIFFUSE, 42, 3))
        np.testing.assert_array_equal(out, ref, err_msg=str(first))


@pytest.mark.parametrize("capacity, fates", [(0, False), (3, False), (0, True), (3, True)],
                         ids=["independent", "capacity-limited", "independent-fates",
                              "capacity-limited-fates"])
def test_host_harness_matches_numba_bit_for_bit(lib, capacity, fates, tmp_path):
    """The whole run through the driver: births, faces, cells, binding with and
    without capacity, unbinding, internalization, clearance (and with
    ``fates`` fusion, escape, degradation, recycling, bound time per vesicle
    and per cell); fused launches are cut every 7 steps to exercise the
    launch schedule."""
    cfg = _everything(capacity, fates)
    ref = _run(cfg, tmp_path, "numba.h5")
    host = _run(cfg, tmp_path, "host.h5", host=HostBackend(lib, work=7 * ref["state"].size))
    states = set(np.unique(ref["state"]).tolist())
    assert {constants.FREE, constants.BOUND, constants.INTERNALIZED, constants.EXITED,
            constants.CLEARED} <= states
    if fates:
        assert {constants.DELIVERED, constants.DEGRADED} <= states
        assert np.any(ref["recycled"] > 0) and ref["cell_bound_steps"].sum() > 0
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(host[name], ref[name], err_msg=name)


def test_cuda_backend_matches_numba_with_the_harness_as_its_gpu(lib, tmp_path):
    """CudaBackend's own Python side (compile options, upload, launch
    schedule, recount, fetch into the driver's arrays) with a stand-in for
    CuPy whose kernels are the host harness: selected by --backend cuda, it
    must give Numba's answers bit for bit."""
    import fake_cupy
    cfg = _everything(3)
    ref = _run(cfg, tmp_path, "numba.h5")
    with fake_cupy.installed(lib):
        sim = Simulation(cfg, backend="cuda")
        assert sim.backend.name == "cuda" and sim.backend.device == "host harness"
        sim.run(tmp_path / "cuda.h5")
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(sim.model.arrays[name], ref[name], err_msg=name)


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_host_harness_matches_numba_with_leaps(lib, capacity, tmp_path):
    """Adaptive stepping (tests/test_leaps.py's scene: leaps past cells,
    faces, drift and births, clearance within leaps), launches cut every 7
    steps so that they cut through leaps."""
    from test_leaps import sparse
    cfg = sparse(capacity)
    ref = _run(cfg, tmp_path, "numba.h5")
    host = _run(cfg, tmp_path, "host.h5", host=HostBackend(lib, work=7 * ref["state"].size))
    assert ref["leaps"].sum() > 1000
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(host[name], ref[name], err_msg=name)


@pytest.mark.parametrize("capacity", [0, 3], ids=["independent", "capacity-limited"])
def test_host_harness_matches_numba_with_waits(lib, capacity, tmp_path):
    """BOUND and INTERNALIZED vesicles waiting for their events
    (kernels/leap.py, "Waits"), with fates and a schedule of k_off and
    k_escape (tests/test_bound_wait.py's scene), launches cut every 7 steps
    so that they cut through waits."""
    from test_bound_wait import scheduled_fates
    cfg = scheduled_fates(capacity)
    ref = _run(cfg, tmp_path, "numba.h5")
    host = _run(cfg, tmp_path, "host.h5", host=HostBackend(lib, work=7 * ref["state"].size))
    assert np.count_nonzero(ref["leap_look"] < 0) > 50  # events came due at the end of waits
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(host[name], ref[name], err_msg=name)


# -- run.precision = "mixed" ---------------------------------------------------
class _CountingLib:
    """The harness with a count of the calls of each entry point."""

    def __init__(self, lib):
        self.lib = lib
        self.calls = collections.Counter()

    def __getattr__(self, name):
        fn = getattr(self.lib, name)

        def call(*args):
            self.calls[name] += 1
            return fn(*args)
        return call


def _with_precision(cfg, precision):
    raw = copy.deepcopy(cfg.raw)
    raw["run"]["precision"] = precision
    return parse_config(raw)


def test_mixed_precision_is_close_to_double_but_not_bitwise(lib, tmp_path):
    """The same Philox words through float32 Box–Muller: free vesicles end up
    within float32 round-off of the double run (relative ~1e-7 per normal,
    summed over the steps), yet not on the same bits; vesicles that met a
    cell or face may have taken another branch, so only the ones still free
    in both are compared.  Fixed stepping: a leap's radius follows the
    distance to the nearest surface, so each leap passes a position's
    round-off on with a factor up to 2 (the adaptive mixed kernels are
    checked against the validation cases below)."""
    cfg = _everything(0, stepping="fixed")
    double = _run(cfg, tmp_path, "double.h5", host=HostBackend(lib))
    mixed_cfg = _with_precision(cfg, "mixed")
    mixed = _run(mixed_cfg, tmp_path, "mixed.h5", host=HostBackend(lib))
    numba_mixed = _run(mixed_cfg, tmp_path, "numba.h5")   # CPU backends run "mixed" in double
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(numba_mixed[name], double[name], err_msg=name)
    free = (double["state"] == constants.FREE) & (mixed["state"] == constants.FREE)
    assert free.sum() > 50
    box = np.asarray(double["box"])
    unwrapped = lambda a: a["pos"][free] + a["image"][free] * box
    diff = np.abs(unwrapped(mixed) - unwrapped(double))
    step = float(np.max(double["sigma"]))
    assert np.median(diff) < 1e-5 * step and np.any(diff > 0), (np.median(diff), step)


def _mixed_validation_configs(tmp_path):
    """configs/validation with run.precision = "mixed" added to each."""
    from exodiff import validate
    out = tmp_path / "mixed-configs"
    out.mkdir()
    for src in validate.validation_config_dir().glob("*.toml"):
        text = src.read_text(encoding="utf-8")
        assert text.count("\n[run]\n") == 1, src
        (out / src.name).write_text(text.replace("\n[run]\n", '\n[run]\nprecision = "mixed"\n'),
                                    encoding="utf-8")
    return out


@pytest.mark.parametrize("case", ["free_diffusion", "smoluchowski", "radiation_wall"])
def test_mixed_precision_passes_the_validation_cases(lib, case, tmp_path):
    """run.precision = "mixed" through the cuda backend with the host harness
    as its GPU (advance_mixed, counted), on the validation cases whose
    answers hang on the normals: the MSD of free diffusion, the flux into an
    absorbing sphere, the survival at a partially absorbing face; quick
    mode, the tolerance from each case's standard error (validate.Z_PASS)."""
    import fake_cupy
    from exodiff import validate
    from test_validation import _assert_passes
    counting = _CountingLib(lib)
    with fake_cupy.installed(counting):
        result = validate.run_case(validate.CASES[case], backend="cuda", quick=True,
                                   config_dir=_mixed_validation_configs(tmp_path))
    calls = counting.calls
    assert calls["advance_mixed"] + calls["advance_mixed_adaptive"] > 0, calls
    assert calls["advance_f64"] + calls["advance_f64_adaptive"] == 0, calls
    print("\n" + validate.format_table([result]))
    _assert_passes(result)


# -- nvcc ----------------------------------------------------------------------
NVCC_FLAGS = ["-Werror", "all-warnings", "-Xcompiler", "-Wall,-Werror", "-Xptxas", "-v"]


@functools.lru_cache(maxsize=None)
def _nvcc(source, arch, tmp):
    """Compile kernels/<source> as shipped (standalone, -I kernels): (ok, log)."""
    cmd = [NVCC, "-I", str(KERNELS), f"-arch={arch}", "-c", str(KERNELS / source),
           "-o", str(Path(tmp) / f"{source}.{arch}.o"), *NVCC_FLAGS]
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def nvcc_dir(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc is not on the PATH: cannot compile the CUDA sources")
    return str(tmp_path_factory.mktemp("nvcc"))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", sorted(p.name for p in KERNELS.glob("*.cu")))
def test_cuda_sources_compile_without_warnings(source, arch, nvcc_dir):
    ok, log = _nvcc(source, arch, nvcc_dir)
    assert ok, log


@pytest.mark.parametrize("entry", [*backend_cuda.ADVANCE.values(), *backend_cuda.ADVANCE_ADAPTIVE.values()])
def test_step_kernel_keeps_its_state_in_registers(nvcc_dir, entry):
    """No stack frame (spills or local arrays) in the step kernels on Hopper:
    the fused launch is meant to touch global memory once per launch."""
    ok, log = _nvcc("exodiff_step.cu", "sm_90", nvcc_dir)
    assert ok, log
    props = re.search(rf"Function properties for {entry}\s*\n\s*(\d+) bytes stack frame", log)
    assert props is not None, log
    assert int(props.group(1)) == 0, (
        f"{entry} uses local memory: an array indexed by a runtime value or a "
        "register spill (see `ptxas -v` below)\n" + log)
