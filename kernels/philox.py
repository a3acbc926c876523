"""Philox4x32-10 counter-based random numbers (Salmon et al., SC'11; constants
from Random123 ``include/Random123/philox.h``, see shared/LITERATURE.md §5).

One call maps a 128-bit counter and a 64-bit key to four independent 32-bit
words.  exodiff uses counter = (vesicle id, step, stream, 0) and key = seed
(low word, high word), so every number is a pure function of what it is for:
the same on every backend, thread count, chunking and after a resume.

Two twins with the same arithmetic: ``philox4x32`` (scalar, Numba) for the
kernels and ``philox4x32_np`` (vectorized NumPy) for setup and the reference.
"""
import math

import numba
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

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF
TWO_PI = 2.0 * math.pi
INV_2_32 = 1.0 / 4294967296.0

_M0 = np.uint64(M0)
_M1 = np.uint64(M1)
_W0 = np.uint64(W0)
_W1 = np.uint64(W1)
_MASK = np.uint64(MASK32)
_S32 = np.uint64(32)


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
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0 = p0 >> _S32
        lo0 = p0 & _MASK
        hi1 = p1 >> _S32
        lo1 = p1 & _MASK
        c0 = hi1 ^ c1 ^ k0
        c1 = lo1
        c2 = hi0 ^ c3 ^ k1
        c3 = lo0
        if r < 9:
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(cache=True, inline="always")
def to_uniform(x):
    """32-bit word -> uniform double in (0, 1), never 0 or 1."""
    return (np.float64(x) + 0.5) * INV_2_32


@numba.njit(cache=True, inline="always")
def uniforms4(c0, c1, c2, k0, k1):
    """Four uniforms in (0, 1) from counter (c0, c1, c2, 0)."""
    x0, x1, x2, x3 = philox4x32(c0, c1, c2, 0, k0, k1)
    return to_uniform(x0), to_uniform(x1), to_uniform(x2), to_uniform(x3)


@numba.njit(cache=True, inline="always")
def normals4(c0, c1, c2, k0, k1):
    """Four standard normals from counter (c0, c1, c2, 0) by Box–Muller on
    the pairs (u0, u1) and (u2, u3)."""
    u0, u1, u2, u3 = uniforms4(c0, c1, c2, k0, k1)
    r0 = math.sqrt(-2.0 * math.log(u0))
    r1 = math.sqrt(-2.0 * math.log(u2))
    t0 = TWO_PI * u1
    t1 = TWO_PI * u3
    return r0 * math.cos(t0), r0 * math.sin(t0), r1 * math.cos(t1), r1 * math.sin(t1)


def seed_key(seed):
    """Split a 64-bit seed into the Philox key words (k0 = low, k1 = high)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return seed & MASK32, seed >> 32


# ---------------------------------------------------------------- NumPy twin
def philox4x32_np(c0, c1, c2, c3, k0, k1):
    """Vectorized Philox4x32-10: counters broadcast as arrays; returns four
    uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    for r in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
        if r < 9:
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def to_uniform_np(x):
    return (x.astype(np.float64) + 0.5) * INV_2_32


def uniforms4_np(c0, c1, c2, k0, k1):
    return tuple(to_uniform_np(x) for x in philox4x32_np(c0, c1, c2, 0, k0, k1))


def normals4_np(c0, c1, c2, k0, k1):
    u0, u1, u2, u3 = uniforms4_np(c0, c1, c2, k0, k1)
    r0 = np.sqrt(-2.0 * np.log(u0))
    r1 = np.sqrt(-2.0 * np.log(u2))
    t0 = TWO_PI * u1
    t1 = TWO_PI * u3
    return r0 * np.cos(t0), r0 * np.sin(t0), r1 * np.cos(t1), r1 * np.sin(t1)
