"""Philox4x32-10 and Box–Muller normals as scalar Numba functions: the
kernels' twins of the NumPy functions in kernels/philox.py (same constants,
same operations in the same order, bit for bit; see that module)."""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .philox import (A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, C1, C2, C3, C4, C5, C6, C7, C8,
                     C9, INV_2_32, LN2_HI, LN2_LO, S1, S2, S3, S4, S5, S6, S7, S8, SQRT_HALF_BITS,
                     TWO_PI, M0_U64, M1_U64, MASK32_U64, SHIFT32_U64, W0_U64, W1_U64)


@numba.njit(cache=True, inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) and key (k0, k1), all uint32 values
    carried in uint64; returns four uint64 holding 32-bit words."""
    c0 = np.uint64(c0)
    c1 = np.uint64(c1)
    c2 = np.uint64(c2)
    c3 = np.uint64(c3)
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    for r in range(10):
        p0 = M0_U64 * c0
        p1 = M1_U64 * c2
        hi0 = p0 >> SHIFT32_U64
        lo0 = p0 & MASK32_U64
        hi1 = p1 >> SHIFT32_U64
        lo1 = p1 & MASK32_U64
        c0 = hi1 ^ c1 ^ k0
        c1 = lo1
        c2 = hi0 ^ c3 ^ k1
        c3 = lo0
        if r < 9:
            k0 = (k0 + W0_U64) & MASK32_U64
            k1 = (k1 + W1_U64) & MASK32_U64
    return c0, c1, c2, c3


@numba.njit(cache=True, inline="always")
def to_uniform(x):
    """32-bit word -> uniform double in (0, 1), never 0 or 1."""
    return (np.float64(x) + 0.5) * INV_2_32


@numba.njit(cache=True, inline="always")
def uniforms4(ident, c1, c2, k0, k1):
    """Four uniforms in (0, 1) from counter (ident low word, c1, c2, ident
    high word): a 64-bit id (philox.id_words_np)."""
    ident = np.uint64(ident)
    x0, x1, x2, x3 = philox4x32(ident & MASK32_U64, c1, c2, ident >> SHIFT32_U64, k0, k1)
    return to_uniform(x0), to_uniform(x1), to_uniform(x2), to_uniform(x3)



@intrinsic
def _bits_of(typingctx, x):
    """int64 with the bits of float64 x."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _float_of(typingctx, bits):
    """float64 with the bits of int64 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@numba.njit(cache=True, inline="always")
def poly_log(x):
    """Natural log of a positive normal float64."""
    ix = _bits_of(x)
    e = (ix - np.int64(SQRT_HALF_BITS)) >> np.int64(52)
    m = _float_of(ix - (e << np.int64(52)))
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = A11
    p = p * f2 + A10
    p = p * f2 + A9
    p = p * f2 + A8
    p = p * f2 + A7
    p = p * f2 + A6
    p = p * f2 + A5
    p = p * f2 + A4
    p = p * f2 + A3
    p = p * f2 + A2
    p = p * f2 + A1
    fe = np.float64(np.int32(e))
    return fe * LN2_HI + (2.0 * f + (2.0 * f * f2 * p + fe * LN2_LO))


@numba.njit(cache=True, inline="always")
def poly_cos_sin_2pi(u):
    """(cos 2πu, sin 2πu) for u in [0, 1): quarter turn q = round(4u) and
    |x| = |2π(u − q/4)| ≤ π/4, then a branch-free rotation by q quarter turns
    (multiplying by 0 and ±1 is exact)."""
    q = np.int32(4.0 * u + 0.5)
    x = TWO_PI * (u - 0.25 * np.float64(q))
    x2 = x * x
    s = S8
    s = s * x2 + S7
    s = s * x2 + S6
    s = s * x2 + S5
    s = s * x2 + S4
    s = s * x2 + S3
    s = s * x2 + S2
    s = s * x2 + S1
    s = x + x * x2 * s
    c = C9
    c = c * x2 + C8
    c = c * x2 + C7
    c = c * x2 + C6
    c = c * x2 + C5
    c = c * x2 + C4
    c = c * x2 + C3
    c = c * x2 + C2
    c = c * x2 + C1
    c = 1.0 + x2 * c
    swap = np.float64(q & np.int32(1))
    sign = 1.0 - 2.0 * np.float64((q >> np.int32(1)) & np.int32(1))
    return (c * (1.0 - swap) - s * swap) * sign, (s * (1.0 - swap) + c * swap) * sign


@numba.njit(cache=True, inline="always")
def normals4(ident, c1, c2, k0, k1):
    """Four standard normals from the counter of uniforms4 by Box–Muller on
    the pairs (u0, u1) and (u2, u3)."""
    u0, u1, u2, u3 = uniforms4(ident, c1, c2, k0, k1)
    r0 = math.sqrt(-2.0 * poly_log(u0))
    r1 = math.sqrt(-2.0 * poly_log(u2))
    cos0, sin0 = poly_cos_sin_2pi(u1)
    cos1, sin1 = poly_cos_sin_2pi(u3)
    return r0 * cos0, r0 * sin0, r1 * cos1, r1 * sin1
