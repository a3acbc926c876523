"""Philox4x32-10 against the Random123 known-answer vectors (DESIGN §6)."""
import numpy as np
import pytest

from exodiff.kernels import philox

KAT = [  # ctr[4], key[2] -> out[4]  (Random123 tests/kat_vectors, lines 27-29)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_numba_philox_matches_known_answers(ctr, key, expected):
    assert tuple(int(x) for x in philox.philox4x32(*ctr, *key)) == expected


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
            a, b, c, d = philox.normals4(i, 7, philox.STREAM_DIFFUSE, 42, 0)
            out[0, i], out[1, i], out[2, i], out[3, i] = a, b, c, d
        return out

    assert np.array_equal(draw(ids.size), ref)
    # 8e5 normals: standard errors of mean and variance are ~1.1e-3 and ~1.6e-3.
    assert abs(ref.mean()) < 5 * 1.0 / np.sqrt(ref.size)
    assert abs(ref.var() - 1.0) < 5 * np.sqrt(2.0 / ref.size)
    # distinct streams and steps give uncorrelated numbers
    other = np.stack(philox.normals4_np(ids, 8, philox.STREAM_DIFFUSE, 42, 0))
    assert abs(np.mean(ref * other)) < 5 / np.sqrt(ref.size)


def test_seed_key_splits_64_bits():
    assert philox.seed_key(42) == (42, 0)
    assert philox.seed_key((7 << 32) | 5) == (5, 7)
