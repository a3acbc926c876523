"""--backend auto chooses cuda only when everything it needs works (issue 16):
each missing piece simulated with a stand-in CuPy (tests/fake_cupy.py) must
make auto fall back to numba with that piece named, and --backend cuda
refuse with the same reason; `exodiff info --gpu` says what it found."""
import importlib.util
import sys
import types

import pytest

import fake_cupy
from exodiff import backend_cuda, cuda_env
from exodiff.backends import select_backend
from exodiff.cli import main
from exodiff.errors import InputError

from scenarios import SMALL_TOML


def _raise(exc):
    def f(*args, **kwargs):
        raise exc
    return f


class _CudaRuntimeError(RuntimeError):
    """Stands for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


def _no_driver(cp):
    cp.cuda.runtime.driverGetVersion = lambda: 0


def _driver_unqueryable(cp):
    cp.cuda.runtime.driverGetVersion = _raise(_CudaRuntimeError("cudaErrorUnknown"))


def _old_driver(cp):
    cp.cuda.runtime.driverGetVersion = lambda: 12080


def _no_device(cp):
    cp.cuda.runtime.getDeviceCount = lambda: 0


def _device_error(cp):
    cp.cuda.runtime.getDeviceCount = _raise(_CudaRuntimeError("cudaErrorNoDevice: no CUDA-capable device"))


def _no_nvrtc(cp):
    cp.cuda.nvrtc.getVersion = _raise(OSError('Failure finding "libnvrtc.so.13"'))


def _nvrtc_newer_than_driver(cp):
    cp.cuda.nvrtc.getVersion = lambda: (14, 0)


def _no_headers(cp):
    message = "Failed to find CUDA headers. Please install CUDA toolkit headers"
    cp._core = types.SimpleNamespace(core=types.SimpleNamespace(
        assemble_cupy_compiler_options=_raise(RuntimeError(message))))


MISSING = {   # what is broken -> words the reason must contain
    "no driver": (_no_driver, "no NVIDIA driver"),
    "driver unqueryable": (_driver_unqueryable, "cudaErrorUnknown"),
    "driver older than CuPy's runtime": (_old_driver, "exodiff[gpu-cuda12]"),
    "no device": (_no_device, "no CUDA device"),
    "device error": (_device_error, "cudaErrorNoDevice"),
    "no NVRTC": (_no_nvrtc, "cannot load NVRTC"),
    "NVRTC newer than the driver": (_nvrtc_newer_than_driver, "NVRTC 14.0"),
    "no CUDA headers": (_no_headers, "Failed to find CUDA headers"),
}


@pytest.fixture
def cupy(monkeypatch):
    """A CuPy where everything works; its kernels compile to stand-ins."""
    cp = fake_cupy.module(lib=None)
    cp._core = types.SimpleNamespace(core=types.SimpleNamespace(
        assemble_cupy_compiler_options=lambda options: options + ("-I/cuda/include",)))
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(backend_cuda, "_functions",
                        lambda device_id: dict.fromkeys(backend_cuda.ENTRY_POINTS))
    return cp


def test_auto_chooses_cuda_when_everything_works(cupy):
    assert cuda_env.unavailable_reason() is None
    backend, note = select_backend("auto")
    assert backend.name == "cuda" and note == "auto chose cuda"


@pytest.mark.parametrize("case", MISSING)
def test_auto_falls_back_to_numba_naming_what_is_missing(case, cupy):
    breaks, words = MISSING[case]
    breaks(cupy)
    backend, note = select_backend("auto")
    assert backend.name == "numba"
    assert note.startswith("auto chose numba: ") and words in note, note
    with pytest.raises(InputError, match="--backend cuda: .*" + words.replace("[", r"\[").replace("]", r"\]")):
        select_backend("cuda")


def test_kernels_that_fail_to_compile_are_not_chosen(cupy, monkeypatch):
    monkeypatch.setattr(backend_cuda, "_functions",
                        _raise(RuntimeError("nvrtc: error: invalid value for --gpu-architecture\nmore")))
    backend, note = select_backend("auto")
    assert backend.name == "numba"
    assert note == ("auto chose numba: exodiff's CUDA kernels do not compile or load on this device "
                    "(RuntimeError: nvrtc: error: invalid value for --gpu-architecture)")


def test_without_cupy_auto_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # import cupy raises ImportError
    backend, note = select_backend("auto")
    assert backend.name == "numba"
    assert "CuPy is not installed" in note and "exodiff[gpu-cuda13]" in note and "exodiff[gpu-cuda12]" in note


def test_run_prints_why_auto_chose_numba(cupy, tmp_path, capsys):
    _no_nvrtc(cupy)
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    assert main(["run", str(cfg), "-o", str(tmp_path / "c.h5"), "-q", "--set", "vesicles.ev.count=20"]) == 0
    err = capsys.readouterr().err
    assert "auto chose numba: CuPy cannot load NVRTC" in err


def test_info_gpu_lists_what_it_found(cupy, capsys):
    assert main(["info", "--gpu"]) == 0
    out = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    found = {k: v.strip() for k, v in out.items()}
    assert found == {"CuPy": "0 (stand-in)", "CUDA runtime": "13.0 (CuPy's)", "CUDA driver": "13.0",
                     "NVRTC": "13.0", "CUDA headers": "found",
                     "device": "host harness (device 0 of 1, sm_00, 0 GiB)", "cuda backend": "usable"}


def test_info_gpu_says_what_is_missing(cupy, capsys):
    _no_driver(cupy)
    _no_nvrtc(cupy)
    assert main(["info", "--gpu"]) == 0
    out = capsys.readouterr().out
    assert "CUDA driver:   none found" in out
    assert "NVRTC:         CuPy cannot load NVRTC" in out
    assert "cuda backend:  unavailable: no NVIDIA driver found" in out


def test_info_gpu_without_cupy(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["info", "--gpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CuPy:          not installed\n") and "exodiff[gpu-cuda13]" in out


def test_info_needs_a_run_file_or_gpu(capsys):
    assert main(["info"]) == 2
    assert capsys.readouterr().err == "Error: info: give a run file (exodiff info RUN.h5) or --gpu\n"


@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="CuPy is not installed")
def test_info_gpu_with_the_real_cupy(capsys):
    """With the real CuPy (the gpu-build extra, no GPU here): every row is
    there and the verdict agrees with cuda_unavailable_reason."""
    assert main(["info", "--gpu"]) == 0
    rows = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert list(rows) == ["CuPy", "CUDA runtime", "CUDA driver", "NVRTC", "CUDA headers", "device", "cuda backend"]
    reason = cuda_env.unavailable_reason()
    assert rows["cuda backend"].strip() == ("usable" if reason is None else "unavailable: " + reason)
