"""A stand-in for the few CuPy calls exodiff/backend_cuda.py makes, backed by
NumPy and the CUDA host harness (kernels/host_harness.cpp), so the cuda
backend's Python side (upload, launches, recount, fetch) runs in CI without a
GPU.  The "kernels" are the harness's entry points of the same names and
parameter lists; the launch grid is ignored (the harness loops over all
vesicles).  Only what backend_cuda.py and backends.py use is provided.
"""
import contextlib
import sys
import types

import numpy as np


class ndarray(np.ndarray):
    """A NumPy array with CuPy's device-to-host copy."""

    def get(self, out=None):
        if out is None:
            return np.array(self)
        out[...] = self
        return out


def _wrap(a):
    return np.asarray(a).view(ndarray)


class _Function:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, grid, block, args):
        self.fn(*(a.ctypes.data if isinstance(a, np.ndarray) else a for a in args))


class _RawModule:
    def __init__(self, lib, code, options=()):
        assert "extern \"C\" __global__" in code and any(o.startswith("-I") for o in options)
        self.lib = lib

    def get_function(self, name):
        return _Function(getattr(self.lib, name))


class _Device:
    def __init__(self, device_id=None):
        self.id = 0 if device_id is None else device_id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def module(lib):
    """A module object that answers `import cupy` with `lib` as its GPU."""
    cp = types.ModuleType("cupy")
    cp.__version__ = "0 (stand-in)"
    cp.ndarray = ndarray
    cp.array = lambda a, dtype=None: _wrap(np.array(a, dtype=dtype))
    cp.asarray = lambda a, dtype=None: _wrap(np.asarray(a, dtype=dtype))
    cp.ascontiguousarray = lambda a: _wrap(np.ascontiguousarray(a))
    cp.asnumpy = lambda a: np.array(a)
    cp.RawModule = lambda code, options=(): _RawModule(lib, code, options)
    props = {"name": b"host harness", "major": 0, "minor": 0, "totalGlobalMem": 0}
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda i: props,
                                    runtimeGetVersion=lambda: 13000, driverGetVersion=lambda: 13000)
    nvrtc = types.SimpleNamespace(getVersion=lambda: (13, 0))
    cp.cuda = types.SimpleNamespace(Device=_Device, runtime=runtime, nvrtc=nvrtc)
    return cp


@contextlib.contextmanager
def installed(lib):
    """`import cupy` gives the stand-in inside the block."""
    from exodiff import backend_cuda
    old = sys.modules.get("cupy")
    sys.modules["cupy"] = module(lib)
    backend_cuda._functions.cache_clear()
    try:
        yield sys.modules["cupy"]
    finally:
        backend_cuda._functions.cache_clear()
        if old is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = old

