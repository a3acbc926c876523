"""Philox4x32-10 against the Random123 known-answer vectors (DESIGN §6)."""
import numpy as np
import pytest

from exodiff.kernels import philox, philox_numba

KAT = [  # ctr[4], key[2] -> out[4]  (Random123 tests/kat_vectors, lines 27-29)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_numba_philox_matches_known_answers(ctr, key, expected):
    assert tuple(int(x) for x in philox_numba.philox4x32(*ctr, *key)) == expected


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_numpy_philox_matches_known_answers(ctr, key, expected):
    out = philox.philox4x32_np(*(np.array([c]) for c in ctr), *key)
    assert tuple(int(x[0]) for x in out) == expected


def test_normals_are_identical_in_numba_and_numpy_and_standard():
    ids = np.arange(200_000)
    ref = np.stack(philox.normals4_np(ids, 7, philox.STREAM_DIFFUSE, 42, 0))
    import numba

    @numba.njit
    def draw(n):
        out = np.empty((4, n))
        for i in range(n):
            a, b, c, d = philox_numba.normals4(i, 7, philox.STREAM_DIFFUSE, 42, 0)
            out[0, i], out[1, i], out[2, i], out[3, i] = a, b, c, d
        return out

    assert np.array_equal(draw(ids.size), ref)
    # 8e5 normals: standard errors of mean and variance are ~1.1e-3 and ~1.6e-3.
    assert abs(ref.mean()) < 5 * 1.0 / np.sqrt(ref.size)
    assert abs(ref.var() - 1.0) < 5 * np.sqrt(2.0 / ref.size)
    # distinct streams and steps give uncorrelated numbers
    other = np.stack(philox.normals4_np(ids, 8, philox.STREAM_DIFFUSE, 42, 0))
    assert abs(np.mean(ref * other)) < 5 / np.sqrt(ref.size)


def test_ids_beyond_32_bits_have_their_own_streams():
    """The vesicle id's high word is counter word 3 (0 below 2³², so those
    ids keep their numbers); ids from 2³² on draw other numbers than id mod
    2³², the same in NumPy and Numba."""
    import numba
    low = np.arange(1000, dtype=np.uint64)
    ids = low + np.uint64(3 << 32)

    @numba.njit
    def draw(ids):
        out = np.empty((8, ids.size))
        for k in range(ids.size):
            out[0:4, k] = philox_numba.uniforms4(ids[k], 9, philox.STREAM_CONTACT, 5, 6)
            out[4:8, k] = philox_numba.normals4(ids[k], 9, philox.STREAM_DIFFUSE, 5, 6)
        return out

    ref = np.stack(philox.uniforms4_np(ids, 9, philox.STREAM_CONTACT, 5, 6)
                   + philox.normals4_np(ids, 9, philox.STREAM_DIFFUSE, 5, 6))
    assert np.array_equal(draw(ids), ref)
    words_high = np.stack(philox.philox4x32_np(ids & philox.MASK32_U64, 9, philox.STREAM_CONTACT, 3, 5, 6))
    assert np.array_equal(philox.to_uniform_np(words_high), ref[:4])
    # below 2³²: counter word 3 is 0, as it always was
    words_low = np.stack(philox.philox4x32_np(low, 9, philox.STREAM_CONTACT, 0, 5, 6))
    assert np.array_equal(philox.to_uniform_np(words_low), np.stack(philox.uniforms4_np(low, 9, philox.STREAM_CONTACT, 5, 6)))
    # id and id mod 2³² draw different numbers
    assert not np.any(words_high == words_low)


def test_seed_key_splits_64_bits():
    assert philox.seed_key(42) == (42, 0)
    assert philox.seed_key((7 << 32) | 5) == (5, 7)


def test_polynomial_log_and_cos_sin_match_libm():
    """Box–Muller's log and cos/sin are polynomials (vectorizable, the same
    bits in Numba, NumPy and the C++ host harness): within an ulp or two of
    libm over the uniforms they take, including both ends of (0, 1)."""
    words = np.concatenate([np.arange(4096, dtype=np.uint64),
                            np.uint64(0xFFFFFFFF) - np.arange(4096, dtype=np.uint64),
                            np.concatenate(philox.philox4x32_np(np.arange(250_000), 3, 1, 0, 9, 9))])
    u = philox.to_uniform_np(words)
    log = philox.poly_log_np(u)
    np.testing.assert_allclose(log, np.log(u), rtol=3e-16, atol=0)
    cos, sin = philox.poly_cos_sin_2pi_np(u)
    assert np.max(np.abs(cos - np.cos(2 * np.pi * u))) < 2e-15
    assert np.max(np.abs(sin - np.sin(2 * np.pi * u))) < 2e-15
    # and at the quarter turns, where the rotation switches branches
    q = np.array([0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, np.nextafter(1.0, 0)])
    c, s = philox.poly_cos_sin_2pi_np(q)
    assert np.max(np.abs(c - np.cos(2 * np.pi * q))) < 2e-15
    assert np.max(np.abs(s - np.sin(2 * np.pi * q))) < 2e-15

    import numba

    @numba.njit
    def twin(u):
        out = np.empty((3, u.size))
        for i in range(u.size):
            out[0, i] = philox_numba.poly_log(u[i])
            out[1, i], out[2, i] = philox_numba.poly_cos_sin_2pi(u[i])
        return out

    assert np.array_equal(twin(u), np.stack([log, cos, sin]))
