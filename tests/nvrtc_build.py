"""The cuda backend's kernels compiled through CuPy's own NVRTC path, without
a GPU, and the registers and stack frame of each entry point read from the
cubin.

CudaBackend builds its kernels with ``cupy.RawModule(**raw_module_args())``
(exodiff/backend_cuda.py).  On a GPU, RawModule hands that to
``cupy._core.core.compile_with_cache`` (prepend_cupy_headers=False, backend
nvrtc, no jitify), which adds CuPy's include directories and the CUDA
headers', ``-ftz=true``, ``-arch=sm_XX`` for the device and
``--device-as-default-execution-space``, compiles with NVRTC into a cubin and
loads it on the device.  Without a device two of those steps cannot run, and
only those are replaced here: the architecture is given instead of asked of
the device (CuPy's own rule: a cubin for an architecture NVRTC knows), and
the cubin is caught where CuPy would load it.  Everything else, options
included, is CuPy's code (CuPy 14; the ``gpu-build`` extra pins it).

Register count and stack frame come from the cubin's ``.nv.info`` section
(the attributes cuobjdump calls EIATTR_REGCOUNT and EIATTR_FRAME_SIZE);
tests/test_nvrtc.py checks this reader against ptxas's own ``-v`` report.

    python tests/nvrtc_build.py        # a table: entry point, arch, registers, frame, compile time
"""
import contextlib
import io
import os
import struct
import sys
import time
import types
from dataclasses import dataclass

ARCHS = ("80", "90")   # A100, H100/H200

# .nv.info attributes (format 0x04: a 16-bit size, then (symbol index, value) as two uint32)
EIATTR_FRAME_SIZE = 0x11
EIATTR_REGCOUNT = 0x2F
EIFMT_SVAL = 0x04


@dataclass(frozen=True)
class Build:
    arch: str
    cubin: bytes
    log: str
    seconds: float
    mapping: dict   # name expression -> lowered name (empty without name expressions)


class _Loaded(Exception):
    """Raised where CuPy would load the cubin on the device: carries it out."""


class _CatchingModule:
    def _set_mapping(self, mapping):
        self.mapping = mapping or {}

    def load(self, cubin):
        raise _Loaded(cubin, getattr(self, "mapping", {}))


@contextlib.contextmanager
def _without_device():
    """CuPy's compile path with its two device calls replaced (see above)."""
    from cupy.cuda import compiler
    saved = compiler._get_arch_for_options_for_nvrtc, compiler.function, os.environ.get("CUPY_CACHE_IN_MEMORY")

    def arch_option(arch=None):   # CuPy's rule, minus the device query behind its memo
        if compiler._use_ptx or int(arch) > int(compiler._get_max_compute_capability()):
            raise RuntimeError(f"CuPy would build PTX, not a cubin, for sm_{arch} with this NVRTC")
        return f"-arch=sm_{arch}", "cubin"

    compiler._get_arch_for_options_for_nvrtc = arch_option
    compiler.function = types.SimpleNamespace(Module=_CatchingModule)
    os.environ["CUPY_CACHE_IN_MEMORY"] = "1"   # neither read nor write the user's kernel cache
    try:
        yield
    finally:
        compiler._get_arch_for_options_for_nvrtc, compiler.function = saved[:2]
        if saved[2] is None:
            del os.environ["CUPY_CACHE_IN_MEMORY"]
        else:
            os.environ["CUPY_CACHE_IN_MEMORY"] = saved[2]


def compile_module(code, options, arch, name_expressions=None):
    """Compile as ``cupy.RawModule(code=code, options=options,
    name_expressions=...)`` would on an sm_`arch` device.  Raises CuPy's
    CompileException (with NVRTC's log) on an error."""
    from cupy._core import core
    log = io.StringIO()
    with _without_device():
        t = time.perf_counter()
        try:
            core.compile_with_cache(code, tuple(options), arch=arch, prepend_cupy_headers=False,
                                    backend="nvrtc", translate_cucomplex=False,
                                    enable_cooperative_groups=False,
                                    name_expressions=name_expressions, log_stream=log, jitify=False)
        except _Loaded as caught:
            cubin, mapping = caught.args
        else:
            raise RuntimeError("CuPy returned without loading a cubin: its compile path changed")
        seconds = time.perf_counter() - t
    return Build(arch, cubin, log.getvalue(), seconds, mapping)


def build_backend_kernels(arch, extra_options=()):
    """The cuda backend's kernels, exactly as CudaBackend builds them, for sm_`arch`."""
    from exodiff import backend_cuda
    args = backend_cuda.raw_module_args()
    return compile_module(args["code"], tuple(args["options"]) + tuple(extra_options), arch,
                          args.get("name_expressions"))


def entry_symbol(build, entry_point):
    """The cubin symbol of an entry point (lowered, where it is a name expression)."""
    return build.mapping.get(entry_point, entry_point)


@dataclass(frozen=True)
class KernelInfo:
    registers: int
    frame_bytes: int   # stack frame: register spills and local arrays


def read_cubin(cubin):
    """{global function name: KernelInfo} from a cubin (64-bit little-endian ELF)."""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2 or cubin[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file: is this PTX?")
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", cubin, shoff + i * shentsize) for i in range(shnum)]

    def cstr(offset):
        return cubin[offset:cubin.index(b"\0", offset)].decode()

    names = [cstr(sections[shstrndx][4] + s[0]) for s in sections]
    by_name = dict(zip(names, sections))
    symtab, strtab = by_name[".symtab"], by_name[".strtab"]
    functions = {}   # symbol index -> name, for global functions (STT_FUNC, STB_GLOBAL)
    for i in range(symtab[5] // 24):
        st_name, st_info = struct.unpack_from("<IB", cubin, symtab[4] + 24 * i)
        if st_info == (1 << 4) | 2:
            functions[i] = cstr(strtab[4] + st_name)
    attrs = {EIATTR_REGCOUNT: {}, EIATTR_FRAME_SIZE: {}}
    info = by_name[".nv.info"]
    p, end = info[4], info[4] + info[5]
    while p < end:
        fmt, attr = cubin[p], cubin[p + 1]
        if fmt != EIFMT_SVAL:
            p += 4
            continue
        size, = struct.unpack_from("<H", cubin, p + 2)
        if attr in attrs:
            symbol, value = struct.unpack_from("<II", cubin, p + 4)
            attrs[attr][symbol] = value
        p += 4 + size
    return {name: KernelInfo(attrs[EIATTR_REGCOUNT].get(i, -1), attrs[EIATTR_FRAME_SIZE].get(i, -1))
            for i, name in functions.items()}


def main():
    from exodiff import backend_cuda
    import cupy
    from cupy.cuda import nvrtc
    print(f"CuPy {cupy.__version__}, NVRTC {'.'.join(map(str, nvrtc.getVersion()))}; "
          f"options {' '.join(backend_cuda.raw_module_args()['options'])}")
    print(f"{'entry point':<14} {'arch':<6} {'registers':>9} {'frame (B)':>9} {'compile (s)':>11}")
    for arch in ARCHS:
        build = build_backend_kernels(arch)
        info = read_cubin(build.cubin)
        for entry in backend_cuda.ENTRY_POINTS:
            k = info[entry_symbol(build, entry)]
            print(f"{entry:<14} sm_{arch:<3} {k.registers:>9} {k.frame_bytes:>9} {build.seconds:>11.2f}")
        if build.log.strip():
            print(f"NVRTC log for sm_{arch}:\n{build.log}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
