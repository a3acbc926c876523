"""What CUDA software and device this machine has, and whether the cuda
backend can run on it.

The cuda backend needs five things, and CuPy importing is only the first:
a driver at least as new (major version) as CuPy's CUDA runtime, a device,
the NVRTC library that compiles the kernels at run time, the CUDA runtime
headers CuPy 14 puts on every compile's include path (it refuses to compile
without them, although exodiff's kernels include none), and finally the
kernels themselves compiling and loading on the device.  ``unavailable_reason``
checks them in that order and names the first that fails with its fix, so
``--backend auto`` falls back to numba instead of choosing cuda and failing
in ``prepare``; the last check compiles the real kernels, once per device
and process, which the backend then reuses.

CuPy is imported inside the functions, never at module import.
"""
GPU_EXTRA = "pip install 'exodiff[gpu-cuda13]' for CUDA 13 drivers, 'exodiff[gpu-cuda12]' for CUDA 12"


def cuda_version(number):
    """CUDA's integer version (13020) as text ("13.2")."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _import_cupy():
    """(cupy, None) or (None, why not)."""
    try:
        import cupy
    except ImportError:
        return None, f"CuPy is not installed: {GPU_EXTRA}"
    except Exception as exc:  # a broken install raises anything at import
        return None, f"CuPy fails to import ({exc.__class__.__name__}: {exc})"
    return cupy, None


def _error(exc):
    first = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {first[0] if first else ''}"


def _driver(cupy):
    """(driver version, runtime version, reason or None)."""
    rt = cupy.cuda.runtime
    try:
        driver = rt.driverGetVersion()
        runtime = rt.runtimeGetVersion()
    except Exception as exc:
        return None, None, f"the CUDA driver cannot be queried ({_error(exc)})"
    if driver == 0:
        return driver, runtime, "no NVIDIA driver found (libcuda is not installed or not loadable)"
    # CUDA's minor-version compatibility: a 13.x runtime runs on any 13.0+ driver
    if driver // 1000 < runtime // 1000:
        return driver, runtime, (
            f"the NVIDIA driver supports CUDA {cuda_version(driver)}, older than the CUDA "
            f"{cuda_version(runtime)} runtime of this CuPy: install the CuPy for CUDA "
            f"{driver // 1000} (pip install 'exodiff[gpu-cuda{driver // 1000}]') or update the driver")
    return driver, runtime, None


def _device(cupy):
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device found"
    except Exception as exc:  # CuPy raises driver-specific errors here
        return f"no usable CUDA device ({_error(exc)})"
    return None


def nvrtc_version(cupy):
    """((major, minor), None) or (None, why NVRTC cannot be used)."""
    try:
        return tuple(cupy.cuda.nvrtc.getVersion()), None
    except Exception as exc:  # CuPy loads libnvrtc on first use
        return None, (f"CuPy cannot load NVRTC, which compiles the kernels ({_error(exc)}): "
                      f"{GPU_EXTRA}, or put a CUDA toolkit's libnvrtc on LD_LIBRARY_PATH")


def headers_reason(cupy):
    """None when CuPy finds the CUDA headers it puts on every compile's
    include path, else why not.  Asks CuPy's own function; CuPy before 14
    has none (and adds no such directory), so there is nothing to check."""
    try:
        assemble = cupy._core.core.assemble_cupy_compiler_options
    except AttributeError:
        return None
    try:
        assemble(())
    except Exception as exc:
        return (f"CuPy cannot find the CUDA runtime headers it compiles with ({_error(exc)}): "
                f"{GPU_EXTRA}, or set CUDA_PATH to a CUDA toolkit")
    return None


def _kernels(cupy):
    """Compile and load exodiff's kernels on the current device (cached for
    the backend)."""
    try:
        from . import backend_cuda
    except ImportError:
        return "this exodiff build has no CUDA backend"
    try:
        backend_cuda._functions(cupy.cuda.Device().id)
    except Exception as exc:
        return f"exodiff's CUDA kernels do not compile or load on this device ({_error(exc)})"
    return None


def unavailable_reason():
    """None when the cuda backend can run here, else why not (one line)."""
    cupy, reason = _import_cupy()
    if reason:
        return reason
    driver, _, reason = _driver(cupy)
    if reason:
        return reason
    reason = _device(cupy)
    if reason:
        return reason
    nvrtc, reason = nvrtc_version(cupy)
    if reason:
        return reason
    if nvrtc[0] > driver // 1000:
        return (f"NVRTC {nvrtc[0]}.{nvrtc[1]} builds for CUDA {nvrtc[0]}, newer than the driver's "
                f"CUDA {cuda_version(driver)}: install NVRTC {driver // 1000} "
                f"(pip install 'exodiff[gpu-cuda{driver // 1000}]') or update the driver")
    return headers_reason(cupy) or _kernels(cupy)


def describe():
    """[(what, found)] of the CUDA software and device, for ``exodiff info --gpu``;
    each entry says what is missing where something is."""
    cupy, reason = _import_cupy()
    if reason:
        return [("CuPy", "not installed" if "not installed" in reason else reason),
                ("cuda backend", "unavailable: " + reason)]
    rows = [("CuPy", cupy.__version__)]
    driver, runtime, reason = _driver(cupy)
    rows.append(("CUDA runtime", cuda_version(runtime) + " (CuPy's)" if runtime is not None else "unknown"))
    rows.append(("CUDA driver", cuda_version(driver) if driver else "none found"))
    nvrtc, why = nvrtc_version(cupy)
    rows.append(("NVRTC", f"{nvrtc[0]}.{nvrtc[1]}" if nvrtc else why))
    rows.append(("CUDA headers", headers_reason(cupy) or "found"))
    rows.append(("device", reason or _device(cupy) or _device_name(cupy)))
    verdict = unavailable_reason()
    rows.append(("cuda backend", "usable" if verdict is None else "unavailable: " + verdict))
    return rows


def _device_name(cupy):
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return (f"{name} (device {dev.id} of {cupy.cuda.runtime.getDeviceCount()}, "
            f"sm_{props['major']}{props['minor']}, {props['totalGlobalMem'] / 2**30:.0f} GiB)")
