"""The ``cuda`` backend: the step as CUDA kernels (kernels/exodiff_step.cu)
launched through CuPy.

Twin of ``CpuBackend`` (exodiff/backends.py), with the same three calls:
``prepare(model)`` compiles the kernels (once per device and process) and
uploads the model's arrays once, ``advance(n0, n1)`` launches the step
kernels, ``fetch(model)`` copies back into ``model.arrays`` what the driver
observes and writes.  CuPy is imported when a ``CudaBackend`` is made, never
when this module is imported, so exodiff imports and runs without it.

Launches mirror ``kernels/step_numba.advance``: without receptor capacity
the vesicles are independent, and each fused launch runs one thread per
vesicle through many steps with its state in registers; with finite capacity
binding reads the per-cell bound count as of the start of each step, so the
kernel runs one step per launch and ``count_bound`` recounts in between.

Device layout: structure of arrays.  Positions and periodic images are kept
as (3, N) arrays and passed split by axis (px, py, pz; ix, iy, iz), so the
loads and stores of neighbouring threads are contiguous: that matters for the
per-step launches of the capacity-limited case, where every launch reads and
writes the state of every changing vesicle.

The argument builder (``to_device_layout``, ``launch_args``) derives the
parameter list from kernels/state.py and takes an array module, so the tests
run it with NumPy to drive the host harness (kernels/host_harness.cpp), which
has the kernels' exact parameter lists.
"""
import functools
import hashlib
from pathlib import Path

import numpy as np

from .kernels import state

BLOCK = 256             # threads per block (given to the kernels as -DEXO_BLOCK)
LAUNCH_WORK = 1 << 30   # most vesicle-steps per fused launch: ~0.05 s at 2e10/s,
                        # so no launch trips a display watchdog or holds off
                        # Ctrl-C, while re-reading the state per launch (~1 GB
                        # for 1e7 vesicles, ~0.3 ms) stays around 1 % of it
SOURCE = "exodiff_step.cu"
# the kernels launched, by name: the step per run.precision, and the recount
ADVANCE = {"double": "advance_f64", "mixed": "advance_mixed"}
# ... and per run.precision with the leap stage, for run.stepping = "adaptive"
ADVANCE_ADAPTIVE = {"double": "advance_f64_adaptive", "mixed": "advance_mixed_adaptive"}
ENTRY_POINTS = (*ADVANCE.values(), "count_bound", *ADVANCE_ADAPTIVE.values())


def advance_entry(model):
    """The step kernel's name for a model's run.precision and run.stepping."""
    return (ADVANCE_ADAPTIVE if model.stepping == "adaptive" else ADVANCE)[model.precision]

# The entry points' parameters (kernels/exodiff_step.cuh: EXO_ADVANCE_PARAMS)
# are the fields of kernels/state.py in order, (N, 3) arrays split by axis,
# between the counts and step range the launcher adds:
LEADING = {"n_vesicles": np.int64, "n0": np.int64, "n1": np.int64}
TRAILING = {"n_gitems": np.int64, "n_stops": np.int64}


def _param_dtypes():
    out = dict(LEADING)
    for f in state.FIELDS.values():
        for name in f.split or (f.name,):
            out[name] = f.dtype
    out.update(TRAILING)
    return out


PARAM_DTYPES = _param_dtypes()
"""advance_f64's parameters in order, with the NumPy type of each (arrays:
of their elements)."""
PARAMS = tuple(PARAM_DTYPES)
FETCHED = state.FETCHED
"""What fetch() brings back: everything the driver observes or writes."""


def kernel_dir():
    """The folder of the installed CUDA sources (the exodiff.kernels package)."""
    from . import kernels
    return Path(kernels.__file__).resolve().parent


def kernel_source():
    """(code, options) for ``cupy.RawModule``.

    The code is exodiff_step.cu behind ``#line 1 "<path>"``, so compiler
    errors name the real file; its headers come in through ``-I``.  CuPy's
    on-disk cache keys on the code and the options but not on included files,
    so a hash of every CUDA source goes into the options as a define."""
    folder = kernel_dir()
    path = folder / SOURCE
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.cu")) + sorted(folder.glob("*.cuh")):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    code = f'#line 1 "{path.as_posix()}"\n' + path.read_text(encoding="utf-8")
    options = ("-std=c++17", f"-I{folder}", f"-DEXO_BLOCK={BLOCK}",
               f"-DEXODIFF_SOURCES_SHA256={digest.hexdigest()[:16]}")
    return code, options


def to_device_layout(arrays, xp):
    """The kernel arrays of a model as the entry points take them.

    arrays: mapping of the field names of kernels/state.py (``Model.arrays``);
    xp: the array module to copy them into (cupy on a GPU, numpy for the host
    harness).  Returns a dict: every array as a C-ordered copy of its declared
    dtype, split (N, 3) arrays as (3, N) arrays plus their rows under the
    split names, scalars as NumPy scalars of their type, and the counts
    n_vesicles, n_gitems and n_stops."""
    out = {}
    for name, f in state.FIELDS.items():
        if not f.shape:
            out[name] = f.dtype(arrays[name])
            continue
        host = np.asarray(arrays[name], dtype=f.dtype)
        if f.split:
            if host.ndim != 2 or host.shape[1] != len(f.split):
                raise ValueError(f"{name}: expected shape (N, {len(f.split)}), got {host.shape}")
            soa = xp.array(np.ascontiguousarray(host.T))
            out[name] = soa
            for a, part in enumerate(f.split):
                out[part] = soa[a]
        else:
            out[name] = xp.array(np.ascontiguousarray(host))
    out["n_vesicles"] = np.int64(np.asarray(arrays["state"]).size)
    out["n_gitems"] = np.int64(np.asarray(arrays["gitems"]).size)
    out["n_stops"] = np.int64(np.asarray(arrays["horizon_stops"]).size)
    return out


def launch_args(dev, n0, n1):
    """advance_f64's arguments (PARAMS order) for steps n0..n1-1; dev from
    ``to_device_layout``."""
    named = dict(dev, n0=np.int64(n0), n1=np.int64(n1))
    return tuple(named[name] for name in PARAMS)


def launch_schedule(n0, n1, n_vesicles, capacity, work=LAUNCH_WORK):
    """The launches that take every vesicle from step n0 to n1, as
    (first step, end step, recount after) tuples: one step each with finite
    capacity (a recount after each, as the CPU does), else fused launches of
    at most `work` vesicle-steps and one recount at the end."""
    if n1 <= n0:
        return []
    if capacity:
        return [(n, n + 1, True) for n in range(n0, n1)]
    per = max(1, work // max(1, n_vesicles))
    starts = range(n0, n1, per)
    return [(s, min(s + per, n1), s + per >= n1) for s in starts]


def host_layout(dev, name):
    """Array `name` of a device layout as the model keeps it: (N, 3) for the
    split ones (still of module xp)."""
    value = dev[name]
    return value.T if state.FIELDS[name].split else value


def raw_module_args():
    """The keyword arguments of ``cupy.RawModule`` that build the kernels:
    the one description of the build, which tests/test_nvrtc.py compiles
    through CuPy's NVRTC path for each architecture without a GPU."""
    code, options = kernel_source()
    return {"code": code, "options": options}


@functools.lru_cache(maxsize=None)
def _functions(device_id):
    """{name: kernel} of the ENTRY_POINTS compiled for device `device_id`:
    once per device and process (CuPy also keeps the binary in its disk cache)."""
    import cupy
    with cupy.cuda.Device(device_id):
        module = cupy.RawModule(**raw_module_args())
        return {name: module.get_function(name) for name in ENTRY_POINTS}


def _copy_back(src, dst):
    """Device array src into the host array dst, in place (dst keeps its identity,
    so whatever holds model.arrays sees the new values)."""
    import cupy
    if dst.dtype == src.dtype and dst.flags.c_contiguous:
        cupy.ascontiguousarray(src).get(out=dst)
    else:
        dst[...] = cupy.asnumpy(src)


class CudaBackend:
    """The step on one CUDA device (the current one unless device_id is given)."""

    name = "cuda"

    def __init__(self, device_id=None):
        import cupy
        self._cupy = cupy
        self._device = cupy.cuda.Device(device_id) if device_id is not None else cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(self._device.id)
        name = props["name"]
        self.device = name.decode() if isinstance(name, bytes) else str(name)
        self._dev = None

    def prepare(self, model):
        """Compile (first time on this device) and upload the model's arrays;
        the step kernel is model.precision's (run.precision) and
        model.stepping's."""
        with self._device:
            kernels = _functions(self._device.id)
            self._advance, self._count = kernels[advance_entry(model)], kernels["count_bound"]
            self._dev = to_device_layout(model.arrays, self._cupy)
        self._n = int(self._dev["n_vesicles"])
        self._blocks = ((self._n + BLOCK - 1) // BLOCK,)
        self._capacity = bool(np.any(np.asarray(model.arrays["ccapacity"]) > 0))

    def advance(self, n0, n1):
        """Advance every vesicle from step n0 to n1 (asynchronous: fetch waits)."""
        if self._n == 0:
            return
        with self._device:
            for first, end, recount in launch_schedule(n0, n1, self._n, self._capacity):
                self._advance(self._blocks, (BLOCK,), launch_args(self._dev, first, end))
                if recount:
                    self._recount()

    def synchronize(self):
        """Wait for the launched kernels (the driver times its chunks with it)."""
        self._device.synchronize()

    def fetch(self, model):
        """Copy the state the driver observes and writes back into model.arrays."""
        a = model.arrays
        with self._device:
            for name in FETCHED:
                _copy_back(host_layout(self._dev, name), a[name])

    def _recount(self):
        d = self._dev
        d["bound_count"].fill(0)
        self._count(self._blocks, (BLOCK,), (d["n_vesicles"], d["state"], d["cell"], d["bound_count"]))
