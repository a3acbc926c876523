"""Compute backends.  Python chooses one per run; each moves the model's
arrays from step n0 to n1 and hands back the host arrays for observations.

- ``numpy``: the reference (kernels/step_numpy.py), slow and obvious;
- ``numba``: parallel CPU kernels (kernels/step_numba.py), the default
  without a GPU;
- ``cuda``:  CuPy-launched kernels (kernels/*.cu), when a device works.
"""
from .errors import InputError
from .threads import prepare_numba

BACKENDS = ("auto", "cuda", "numba", "numpy")


class CpuBackend:
    """NumPy or Numba: the kernels update the model's host arrays in place."""

    def __init__(self, name):
        prepare_numba()  # before Numba starts its threads (get_num_threads below)
        import numba
        if name == "numba":
            from .kernels import step_numba as kernel
            self.device = f"cpu ({numba.get_num_threads()} threads)"
        else:
            from .kernels import step_numpy as kernel
            self.device = "cpu"
        self.name = name
        self._kernel = kernel
        self._args = None

    def prepare(self, model):
        self._args = model.kernel_args()

    def advance(self, n0, n1):
        self._kernel.advance(n0, n1, *self._args)

    def fetch(self, model):
        """Bring the state the driver observes back into model.arrays (in place already)."""


def cuda_unavailable_reason():
    """None when a CUDA device can run exodiff's kernels, else why not."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'exodiff[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device found"
    except Exception as exc:  # CuPy raises driver-specific errors here
        return f"no usable CUDA device ({exc.__class__.__name__}: {exc})"
    try:
        from . import backend_cuda  # noqa: F401
    except ImportError:
        return "this exodiff build has no CUDA backend yet"
    return None


def select_backend(name="auto"):
    """Return (backend, note); note says why auto chose what it chose."""
    if name not in BACKENDS:
        raise InputError(f"--backend: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    note = None
    if name in ("auto", "cuda"):
        reason = cuda_unavailable_reason()
        if reason is None:
            from .backend_cuda import CudaBackend
            return CudaBackend(), "auto chose cuda" if name == "auto" else None
        if name == "cuda":
            raise InputError(f"--backend cuda: {reason}")
        note = f"auto chose numba: {reason}"
        name = "numba"
    return CpuBackend(name), note
