"""Philox4x32-10 counter-based random numbers (Salmon et al., SC'11; constants
from Random123 ``include/Random123/philox.h``, see shared/LITERATURE.md §5).

One call maps a 128-bit counter and a 64-bit key to four independent 32-bit
words.  exodiff uses counter = (vesicle id mod 2³², step, stream, vesicle id
div 2³²) and key = seed (low word, high word), so every number is a pure
function of what it is for: the same on every backend, thread count, chunking
and after a resume.  The id's high word rides in the fourth counter word,
which was 0 before, so ids below 2³² draw the numbers they always drew and
ids from 2³² on do not repeat those of id mod 2³².

Two twins with the same arithmetic: ``philox4x32_np`` (vectorized NumPy,
here) for setup and the reference, and ``philox4x32`` (scalar, Numba, in
kernels/philox_numba.py) for the kernels.  This module imports no Numba, so
the NumPy reference runs without it.
Normals come from Box–Muller with polynomial log and cos/sin (below), so the
twins agree bit for bit without relying on libm, and a loop of them vectorizes.
"""
import math

import numpy as np

# Stream ids: the third counter word.  Listed once, here (as HOOMD's
# RNGIdentifiers.h does), and mirrored in kernels/exodiff_rng.cuh.
STREAM_DIFFUSE = 0   # per step: 4 normals, 3 for the displacement
STREAM_CONTACT = 1   # per step: faces, cell contact, binding, clearance
STREAM_BOUND = 2     # per step: bound-state event, channel, unbinding placement
STREAM_PLACE = 3     # setup: initial placement (counter word 1 = attempt)
STREAM_BIRTH = 4     # setup: secretion times (counter word 0 = donor cell)
STREAM_RADIUS = 5    # setup: vesicle radius draw
STREAM_SURFACE = 6   # setup: birth position on the donor's surface
STREAM_LEAP = 7      # per leap (word 1 = its first step): exit time, clearance, exit direction (cos θ, φ)
STREAM_LEAP_POSITION = 8  # per leap at its horizon: attempt j of the position in the ball uses 8 + 256 j (and + 128)

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF
TWO_PI = 2.0 * math.pi
INV_2_32 = 1.0 / 4294967296.0

# The same constants as uint64, for the 64-bit products of the rounds.
M0_U64 = np.uint64(M0)
M1_U64 = np.uint64(M1)
W0_U64 = np.uint64(W0)
W1_U64 = np.uint64(W1)
MASK32_U64 = np.uint64(MASK32)
SHIFT32_U64 = np.uint64(32)


# -- log and cos/sin for Box–Muller as plain polynomials ----------------------
# libm's log/sin/cos are calls the compiler cannot vectorize; these are
# straight-line float64 arithmetic, so a loop of Box–Muller transforms runs in
# SIMD lanes (the kernels draw a block's normals that way), and the NumPy twin
# and the C++ host harness (exodiff_rng.cuh) evaluate the same operations in
# the same order, bit for bit.  Accuracy over the uniforms they take: relative
# error of log ≤ 1 ulp, absolute error of cos/sin < 1e-15 (tests/test_philox.py).

# log: x = m·2^e with m in [√½, √2), log m = 2 atanh(f), f = (m−1)/(m+1),
# |f| ≤ 0.1716, series to f^23 (next term < 1e-19).  ln 2 split as in fdlibm's
# e_log.c (ln2_hi has trailing zero bits, so e·ln2_hi is exact).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bits of √½ (rounded down)
_ATANH = tuple(1.0 / (2 * k + 1) for k in range(1, 12))  # 1/3 ... 1/23
A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11 = _ATANH
# cos/sin of x with |x| ≤ π/4: Taylor series to x^18 and x^17 (next term < 1e-17).
_SIN = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(1, 9))
_COS = tuple((-1) ** k / math.factorial(2 * k) for k in range(1, 10))
S1, S2, S3, S4, S5, S6, S7, S8 = _SIN
C1, C2, C3, C4, C5, C6, C7, C8, C9 = _COS


def seed_key(seed):
    """Split a 64-bit seed into the Philox key words (k0 = low, k1 = high)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return seed & MASK32, seed >> 32


def philox4x32_np(c0, c1, c2, c3, k0, k1):
    """Vectorized Philox4x32-10: counters broadcast as arrays; returns four
    uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & MASK32_U64 for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    for r in range(10):
        p0 = M0_U64 * c0
        p1 = M1_U64 * c2
        c0, c1, c2, c3 = (p1 >> SHIFT32_U64) ^ c1 ^ k0, p1 & MASK32_U64, (p0 >> SHIFT32_U64) ^ c3 ^ k1, p0 & MASK32_U64
        if r < 9:
            k0 = (k0 + W0_U64) & MASK32_U64
            k1 = (k1 + W1_U64) & MASK32_U64
    return c0, c1, c2, c3


def to_uniform_np(x):
    return (x.astype(np.float64) + 0.5) * INV_2_32


def id_words_np(ident):
    """(low, high) 32-bit words of 64-bit ids: counter words 0 and 3."""
    ident = np.asarray(ident, dtype=np.uint64)
    return ident & MASK32_U64, ident >> SHIFT32_U64


def uniforms4_np(ident, c1, c2, k0, k1):
    """Four uniforms in (0, 1) from counter (ident low, c1, c2, ident high)."""
    lo, hi = id_words_np(ident)
    return tuple(to_uniform_np(x) for x in philox4x32_np(lo, c1, c2, hi, k0, k1))


def poly_log_np(x):
    """NumPy twin of poly_log."""
    ix = np.asarray(x, dtype=np.float64).view(np.int64)
    e = (ix - np.int64(SQRT_HALF_BITS)) >> np.int64(52)
    m = (ix - (e << np.int64(52))).view(np.float64)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = np.full_like(f, A11)
    for a in (A10, A9, A8, A7, A6, A5, A4, A3, A2, A1):
        p = p * f2 + a
    fe = e.astype(np.int32).astype(np.float64)
    return fe * LN2_HI + (2.0 * f + (2.0 * f * f2 * p + fe * LN2_LO))


def poly_cos_sin_2pi_np(u):
    """NumPy twin of poly_cos_sin_2pi."""
    u = np.asarray(u, dtype=np.float64)
    q = (4.0 * u + 0.5).astype(np.int32)
    x = TWO_PI * (u - 0.25 * q.astype(np.float64))
    x2 = x * x
    s = np.full_like(x, S8)
    for a in (S7, S6, S5, S4, S3, S2, S1):
        s = s * x2 + a
    s = x + x * x2 * s
    c = np.full_like(x, C9)
    for a in (C8, C7, C6, C5, C4, C3, C2, C1):
        c = c * x2 + a
    c = 1.0 + x2 * c
    swap = (q & 1).astype(np.float64)
    sign = 1.0 - 2.0 * ((q >> 1) & 1).astype(np.float64)
    return (c * (1.0 - swap) - s * swap) * sign, (s * (1.0 - swap) + c * swap) * sign


def normals4_np(ident, c1, c2, k0, k1):
    u0, u1, u2, u3 = uniforms4_np(ident, c1, c2, k0, k1)
    r0 = np.sqrt(-2.0 * poly_log_np(u0))
    r1 = np.sqrt(-2.0 * poly_log_np(u2))
    cos0, sin0 = poly_cos_sin_2pi_np(u1)
    cos1, sin1 = poly_cos_sin_2pi_np(u3)
    return r0 * cos0, r0 * sin0, r1 * cos1, r1 * sin1

