"""Compute backends.  Python chooses one per run; each moves the model's
arrays from step n0 to n1 and hands back the host arrays for observations.

- ``numpy``: the reference (kernels/step_numpy.py), slow and obvious; runs
  without Numba installed;
- ``numba``: parallel CPU kernels (kernels/step_numba.py), the default
  without a GPU;
- ``cuda``:  CuPy-launched kernels (kernels/*.cu; exodiff/backend_cuda.py),
  when a device works.
"""
from typing import Protocol

from .errors import InputError
from .kernels import state
from .threads import prepare_numba

BACKENDS = ("auto", "cuda", "numba", "numpy")


class Backend(Protocol):
    """What the driver asks of a backend (each call in place, on the arrays
    of ``model.arrays``, declared in kernels/state.py)."""

    name: str    # "numpy", "numba", "cuda": what --backend takes
    device: str  # what it runs on, for people and the run file

    def prepare(self, model) -> None:
        """Take on the model's arrays (compile, upload): once per run, and
        again after the model's state is changed from outside."""

    def advance(self, n0: int, n1: int) -> None:
        """Advance every vesicle from step n0 to n1 (maybe asynchronously)."""

    def synchronize(self) -> None:
        """Wait until the steps launched so far are done."""

    def fetch(self, model) -> None:
        """Make ``model.arrays`` hold the current state (state.FETCHED)."""

    def update_constants(self, model, names) -> None:
        """Take on the new values of the CONST arrays ``names`` of
        ``model.arrays`` (rates that changed at a scheduled step), for the
        steps advanced from now on."""


class CpuBackend:
    """NumPy or Numba: the kernels update the model's host arrays in place, so
    fetch and synchronize have nothing to do.  The NumPy one never imports
    Numba."""

    def __init__(self, name):
        prepare_numba()  # before Numba starts its threads (get_num_threads below)
        if name == "numba":
            import numba

            from .kernels import step_numba as kernel
            self.device = f"cpu ({numba.get_num_threads()} threads)"
        else:
            from .kernels import step_numpy as kernel
            self.device = "cpu"
        self.name = name
        self._kernel = kernel
        self._args = None

    def prepare(self, model):
        self._args = state.pack(model.arrays)

    def advance(self, n0, n1):
        self._kernel.advance(n0, n1, self._args)

    def synchronize(self):
        """Nothing runs in the background on the CPU."""

    def fetch(self, model):
        """model.arrays are the kernels' arrays: nothing to copy."""

    def update_constants(self, model, names):
        """The kernels read model.arrays, which were changed in place: nothing to copy."""


def cuda_unavailable_reason():
    """None when a CUDA device can run exodiff's kernels, else why not: the
    driver, device, NVRTC and CUDA headers are checked and the kernels
    compiled (exodiff/cuda_env.py)."""
    from .cuda_env import unavailable_reason
    return unavailable_reason()


def numba_unavailable_reason():
    """None when Numba imports, else why not (the numpy backend needs none)."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        return f"Numba is not installed ({exc})"
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
        no_numba = numba_unavailable_reason()
        if no_numba is None:
            return CpuBackend("numba"), f"auto chose numba: {reason}"
        return CpuBackend("numpy"), f"auto chose numpy (the slow reference): {reason}; {no_numba}"
    if name == "numba":
        reason = numba_unavailable_reason()
        if reason is not None:
            raise InputError(f"--backend numba: {reason}; pip install numba, or use --backend numpy")
    return CpuBackend(name), note
