"""The cuda backend's real compile path, without a GPU (issue 16).

Every entry point is compiled through CuPy's NVRTC path exactly as
CudaBackend builds it (tests/nvrtc_build.py says what is replaced: only the
device's architecture query and the final load), for sm_80 and sm_90: NVRTC
says nothing, every entry point is in the cubin, within the register budget
and without a stack frame (no spills, no local arrays).  The nvcc and
host-harness checks stay in test_cuda_host.py.

Needs the ``gpu-build`` extra (CuPy 14, the NVRTC and CUDA runtime-header
wheels); skipped, with the missing piece named, where it is absent, except
where EXODIFF_REQUIRE_NVRTC is set (.ci/run sets it): there a skip would hide
that the check never ran, so it is an error.
"""
import os
import re

import pytest

from exodiff import backend_cuda

import nvrtc_build

# The step kernels' registers on sm_80 / sm_90 with NVRTC 13 (CuPy 14.2):
# 128 / 128 before issue 16, 118 / 122 after it (both precisions; fewer
# values kept through the step).  __launch_bounds__(256, 2) caps them at 128
# (2 blocks of 256 threads per SM: 25 % occupancy); the next occupancy step,
# 3 blocks, needs 80, where ptxas still spills 48 bytes (see the note in
# kernels/exodiff_step.cu).  Issue 18 (fates after uptake: the endosome's
# events and the bound time) brought them to 126 / 124 with no stack frame:
# the same occupancy, since the launch bounds cap them at 128 anyway (ptxas
# spends registers up to the cap on scheduling; variants of the new code
# moved the count between 122 and 128).  Lower this as kernels shrink.
MAX_REGISTERS = 126
# The adaptive entry points (run.stepping = "adaptive", with the leap stage)
# run at __launch_bounds__(256, 1): nvcc 13 -Xptxas -v, sm_90: 186 registers,
# no stack frame (at (256, 2) ptxas capped them at 128 with a 144-byte frame).
# The ball leaps of 0.5.0 (one inversion, no conditional positions): 168 / 171
# on sm_80 / sm_90 with NVRTC 13, no stack frame.
MAX_REGISTERS_ADAPTIVE = 176


def _missing():
    from exodiff import cuda_env
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed"
    _, reason = cuda_env.nvrtc_version(cupy)
    return reason or cuda_env.headers_reason(cupy)


MISSING = _missing()
if MISSING and os.environ.get("EXODIFF_REQUIRE_NVRTC"):
    raise RuntimeError(f"EXODIFF_REQUIRE_NVRTC is set but the NVRTC compile test cannot run: {MISSING} "
                       "(pip install -e '.[gpu-build]')")
pytestmark = pytest.mark.skipif(MISSING is not None,
                                reason=f"NVRTC build check needs pip install -e '.[gpu-build]': {MISSING}")

_BUILDS = {}


def _build(arch):
    if arch not in _BUILDS:
        _BUILDS[arch] = nvrtc_build.build_backend_kernels(arch)
    return _BUILDS[arch]


@pytest.mark.parametrize("arch", nvrtc_build.ARCHS, ids=lambda a: f"sm_{a}")
def test_kernels_compile_as_the_backend_builds_them(arch, record_property):
    build = _build(arch)
    assert build.log.strip() == "", f"NVRTC said, for sm_{arch}:\n{build.log}"
    kernels = nvrtc_build.read_cubin(build.cubin)
    for entry in backend_cuda.ENTRY_POINTS:
        symbol = nvrtc_build.entry_symbol(build, entry)
        assert symbol in kernels, f"{entry} is not in the sm_{arch} cubin (it has {sorted(kernels)})"
        k = kernels[symbol]
        record_property(f"{entry}_sm_{arch}_registers", k.registers)
        bound = MAX_REGISTERS_ADAPTIVE if entry in backend_cuda.ADVANCE_ADAPTIVE.values() else MAX_REGISTERS
        assert 0 < k.registers <= bound, f"{entry} on sm_{arch}: {k.registers} registers"
        assert k.frame_bytes == 0, (f"{entry} on sm_{arch} has a {k.frame_bytes}-byte stack frame: "
                                    "register spills or an array indexed at run time")
    record_property(f"compile_seconds_sm_{arch}", round(build.seconds, 2))


@pytest.mark.parametrize("arch", nvrtc_build.ARCHS, ids=lambda a: f"sm_{a}")
def test_the_cubin_reader_agrees_with_ptxas(arch):
    """Registers and stack frame read from the cubin are what ptxas reports
    for the same build (with -v, which is all that differs)."""
    build = nvrtc_build.build_backend_kernels(arch, extra_options=("--ptxas-options=-v",))
    kernels = nvrtc_build.read_cubin(build.cubin)
    for entry in backend_cuda.ENTRY_POINTS:
        k = kernels[nvrtc_build.entry_symbol(build, entry)]
        assert (k.registers, k.frame_bytes) == _ptxas_report(build.log, nvrtc_build.entry_symbol(build, entry))


def test_the_cubin_reader_sees_spills():
    """A kernel squeezed to 32 registers spills: the reader must see its frame."""
    src = r'''
    extern "C" __global__ void __launch_bounds__(1024, 2) squeezed(const double* a, double* out, int n) {
        double v[48];
        #pragma unroll
        for (int k = 0; k < 48; ++k) v[k] = a[threadIdx.x + k * n];
        double s = 0;
        for (int r = 0; r < n; ++r) {
            #pragma unroll
            for (int k = 0; k < 48; ++k) { s += v[k] * v[(k * 7 + r) % 48]; v[k] = s * v[(k + 5) % 48]; }
        }
        out[threadIdx.x] = s;
    }'''
    build = nvrtc_build.compile_module(src, ("--ptxas-options=-v",), "90")
    k = nvrtc_build.read_cubin(build.cubin)["squeezed"]
    assert "spill stores" in build.log and k.frame_bytes > 0
    assert (k.registers, k.frame_bytes) == _ptxas_report(build.log, "squeezed")


def test_compile_errors_name_the_real_file_and_line():
    """The #line directive in front of the source: NVRTC's error points into
    kernels/exodiff_step.cu, not into a temporary file of CuPy's."""
    from cupy.cuda.compiler import CompileException
    args = backend_cuda.raw_module_args()
    lines = args["code"].split("\n")
    assert lines[0].startswith("#line 1 ")
    lines.insert(3, "exo_no_such_type broken;")   # becomes line 3 of the file
    with pytest.raises(CompileException) as err:
        nvrtc_build.compile_module("\n".join(lines), args["options"], "90")
    path = (backend_cuda.kernel_dir() / backend_cuda.SOURCE).as_posix()
    assert re.search(re.escape(path) + r"\(3\): error", str(err.value)), str(err.value)


def _ptxas_report(log, symbol):
    """(registers, stack frame bytes) of `symbol` in a ptxas -v log."""
    m = re.search(rf"Function properties for {re.escape(symbol)}\s*\n.*?(\d+) bytes stack frame.*?\n"
                  rf".*?Used (\d+) registers", log)
    assert m, log
    return int(m.group(2)), int(m.group(1))
