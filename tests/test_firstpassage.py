"""The exact first-passage propagators of the leaps (kernels/firstpassage.py).

Physics against results derived independently of the module's formulas: the
textbook eigen and image series summed directly with many terms or to 40
digits (not the module's tail forms and recurrences), the exact mean exit
times a²/(2D) (interval) and R²/(6D) (ball), the quantile identities, the
ball's exact radius distribution at a horizon, and brute-force Brownian motion
with small Gaussian steps and the Brownian-bridge crossing test.  Then the C++ twin
(kernels/exodiff_leap.cuh) bit for bit on the host, and its device build
(NVRTC as the backend compiles, or nvcc where CuPy is missing).
"""
import ctypes
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import numba
import mpmath as mp
import pytest
from scipy import integrate, special, stats

from exodiff.kernels import firstpassage as fp

import nvrtc_build
from test_cuda_host import CXX, HARNESS_FLAGS, KERNELS, NVCC, NVCC_FLAGS
from test_nvrtc import MISSING as NVRTC_MISSING

EPS = np.finfo(float).eps
LAM0 = math.pi ** 2 / 4
KS_ALPHA = 1e-3     # the Monte Carlo comparisons fail by chance once in 1000


# -- independent references (NumPy, many terms, the textbook forms) ------------
ODD = 2.0 * np.arange(400) + 1.0          # 2k + 1
SIGN = (-1.0) ** np.arange(400)


def survival_eigen(s):
    s = np.atleast_1d(np.asarray(s, float))[:, None]
    return (4 / np.pi * SIGN / ODD * np.exp(-ODD ** 2 * LAM0 * s)).sum(axis=1)


def survival_images(s):
    s = np.atleast_1d(np.asarray(s, float))[:, None]
    z = 0.5 / np.sqrt(s)
    return 1.0 - 2.0 * (SIGN[:30] * special.erfc(ODD[:30] * z)).sum(axis=1)


def survival_ref(s):
    s = np.asarray(s, float)
    return np.where(s < 0.3, survival_images(np.minimum(s, 0.3)), survival_eigen(np.maximum(s, 0.3)))


def cdf_ref(xi, s):
    """P(X/a ≤ ξ | survived to s): eigen (s ≥ 0.3) or images, unconditioned
    mass divided by the survival of the same series."""
    if s >= 0.3:
        w = np.exp(-(ODD ** 2 - 1) * LAM0 * s)      # relative to the first mode
        survival = (4 / np.pi * SIGN / ODD * w).sum()
        return (0.5 * survival + (2 / (np.pi * ODD) * w * np.sin(ODD * np.pi * xi / 2)).sum()) / survival
    z = 0.5 / math.sqrt(s)
    n = np.arange(-12, 13)
    # ∫_{-1}^{ξ} g(x − 2n) dx = ½[erfc((−1 − 2n)z) − erfc((ξ − 2n)z)]
    mass = 0.5 * (special.erfc((-1 - 2 * n) * z) - special.erfc((xi - 2 * n) * z))
    return ((-1.0) ** n * mass).sum() / survival_images(s)[0]


def mean_square_ref(s):
    """E[(X/a)² | survived to s] from the eigen series: ∫x² cos(βx) dx over
    (−1, 1) = 2(−1)^k (1/β − 2/β³), β = (2k+1)π/2."""
    beta = ODD * np.pi / 2
    w = np.exp(-(ODD ** 2 - 1) * LAM0 * s)
    return (w * SIGN * (1 / beta - 2 / beta ** 3)).sum() / (w * SIGN / beta).sum()


# -- the inputs of the bit-identity checks: every regime, its edges, bad input --
def _inputs(n=3000):
    """(u, s, r): n Philox-style uniforms against log-uniform s and radii r,
    then the edges of every regime and bad input, each against random
    partners, and radii on both sides of the horizon's sinh(x)/x switch."""
    rng = np.random.default_rng(15)
    u = (rng.integers(0, 2 ** 32, n) + 0.5) / 2 ** 32          # Philox's uniforms
    s = np.exp(rng.uniform(np.log(1e-7), np.log(300.0), n))
    r = 1.02 * rng.uniform(0, 1, n) ** (1 / 3)                  # a few beyond the ball
    u_switch = math.exp(-3 * fp.E_SWITCH)
    edges_u = [2 ** -33, 1 - 2 ** -33, 1e-300, 5e-324, 1e-20, 0.5, 0.25, 0.75, np.nextafter(1, 0), 0.0, 1.0,
               -0.1, 1.1]
    for x in (u_switch, fp.BALL_U_SWITCH, fp.BALL_U_TINY):
        edges_u += [x, np.nextafter(x, 0), np.nextafter(x, 1)]
    edges_s = []
    for x in (fp.S_SWITCH, fp.X_SWITCH, fp.GAUSS_SWITCH, fp.BALL_SWITCH, fp.HORIZON_SWITCH, fp.HORIZON_TINY):
        edges_s += [x, np.nextafter(x, 0), np.nextafter(x, 1)]
    edges_s += [0.0, -1.0, 1e-12, 1e3, 1e-300, 5.0, 0.3, math.nan]
    edges_r = [0.0, 1e-300, 5e-324, 1e-9, 0.5, np.nextafter(1, 0), 1.0, 1.5, math.inf, math.nan]
    m = max(len(edges_u), len(edges_s))
    s_shc = rng.uniform(1e-3, fp.HORIZON_SWITCH, m)             # n·r/s = SHC_SWITCH for n = 1, 2
    r_shc = np.concatenate([[x * fp.SHC_SWITCH / k, np.nextafter(x * fp.SHC_SWITCH / k, 0)]
                            for x in s_shc[:m // 4] for k in (1, 2)])
    u = np.concatenate([u, np.resize(edges_u, m), rng.uniform(0, 1, 2 * m + r_shc.size)])
    s = np.concatenate([s, rng.uniform(1e-3, 1.0, 2 * m), np.resize(edges_s, m), np.repeat(s_shc[:m // 4], 4)])
    r = np.concatenate([r, rng.uniform(0, 1, m), np.resize(edges_r, m), rng.uniform(0, 1, m), r_shc])
    return u, s, r


def _evaluate(u, s, r):
    """(interval survival, cube exit time, interval position, ball survival,
    ball exit time, ball_horizon_uniform as 0/1, ball_horizon_accept) of the
    module for each (u, s, r)."""
    out = np.empty((len(u), 7))
    for i in range(len(u)):
        x, y, z = float(u[i]), float(s[i]), float(r[i])
        out[i] = (fp.interval_survival(y), fp.cube_exit_time(x), fp.interval_position(x, y),
                  fp.ball_survival(y), fp.ball_exit_time(x), float(fp.ball_horizon_uniform(y)),
                  fp.ball_horizon_accept(z, y))
    return out


def _over_arrays(fn, arity):
    """A Numba loop applying the scalar function fn to each element (arity 1)
    or each pair of elements (arity 2) of its array arguments."""
    if arity == 1:
        @numba.njit
        def loop(x):
            out = np.empty(x.size)
            for i in range(x.size):
                out[i] = fn(x[i])
            return out
    else:
        @numba.njit
        def loop(x, y):
            out = np.empty(x.size)
            for i in range(x.size):
                out[i] = fn(x[i], y[i])
            return out
    return loop


_exit_times = _over_arrays(fp.cube_exit_time, 1)
_positions = _over_arrays(fp.interval_position, 2)
_survivals = _over_arrays(fp.interval_survival, 1)
_ball_exit_times = _over_arrays(fp.ball_exit_time, 1)
_ball_survivals = _over_arrays(fp.ball_survival, 1)
_acceptances = _over_arrays(fp.ball_horizon_accept, 2)


# -- series and exact integrals -------------------------------------------------
def test_the_two_series_agree_and_the_module_matches_them():
    s = np.geomspace(0.01, 1.0, 60)
    eig, img = survival_eigen(s), survival_images(s)
    assert np.max(np.abs(eig / img - 1)) < 2e-15
    s = np.concatenate([np.geomspace(1e-4, 100.0, 400), [0.1, np.nextafter(0.1, 0), 0.05, 0.006]])
    got = np.array([fp.interval_survival(x) for x in s])
    # the argument's own rounding makes e^{−π²s/4} uncertain by π²s/4 ulps
    assert np.all(np.abs(got / survival_ref(s) - 1) <= 4 * EPS * (1 + LAM0 * s))
    assert fp.interval_survival(0.0) == 1.0 and fp.interval_survival(-1.0) == 1.0
    assert fp.interval_survival(1e4) == 0.0


def test_mean_exit_time_of_the_interval_is_a2_over_2D():
    """∫_0^∞ S ds = ½ exactly: the mean exit time from the centre of (−a, a)."""
    mean = sum(integrate.quad(fp.interval_survival, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for lo, hi in [(0, 0.1), (0.1, 1), (1, 10), (10, 100)])
    assert abs(mean - 0.5) < 1e-12


def test_conditional_density_integrates_to_the_survival_and_is_symmetric():
    for s in [0.003, 0.02, 0.3, 2.0]:
        z = 0.5 / math.sqrt(s)
        n = np.arange(-12, 13)

        def density(x):
            return ((-1.0) ** n * np.exp(-((x - 2 * n) * z) ** 2)).sum() * z / math.sqrt(math.pi)
        total = integrate.quad(density, -1, 1, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        assert abs(total / fp.interval_survival(s) - 1) < 1e-12
    u = (np.arange(0, 2 ** 32, 2 ** 20) + 0.5) / 2 ** 32      # 1 − u is exact
    for s in [1e-5, 0.01, 0.07, 0.3, 3.0]:
        for x in u:
            assert fp.interval_position(1 - x, s) == -fp.interval_position(x, s)


# -- the inverses -----------------------------------------------------------------
def test_cube_exit_time_inverts_the_cube_survival_to_round_off():
    """S(s)³ = u with S summed independently; the tolerance is the rounding of
    s itself (a relative ε moves ln S³ by 3·s·|d ln S/ds| ε ≤ 3·(π²/4)·s ε)
    plus a few ε of ln u."""
    u = np.concatenate([np.linspace(0.0005, 0.9995, 2000), [2 ** -33, 1 - 2 ** -33, 1e-300, 1e-20,
                        1 - 1e-12, np.nextafter(1, 0), math.exp(-3 * fp.E_SWITCH)]])
    s = _exit_times(u)
    err = np.abs(3 * np.log(survival_ref(s)) - np.log(u))
    assert np.all(err <= 8 * EPS * (1 + 3 * LAM0 * s)), (u[np.argmax(err)], err.max())
    assert np.all(np.diff(s[:2000]) < 0)          # the inverse of a decreasing function
    assert fp.cube_exit_time(1.0) == 0.0 and fp.cube_exit_time(0.0) == math.inf


def test_cube_exit_time_is_the_root_to_a_few_ulps():
    """Against the root of E(s) = −ln S(s) = −ln(u)/3 found by bisection on
    the independently summed E (images with log1p, so E keeps its relative
    precision for u → 1, where s hardly moves u); a few ulps of s, more next
    to S_SWITCH (up to ~8), where E ≈ 0.05 is itself known only to ~1e-15
    relative and s to E/(s E') ≈ 1/3 of that.  (Halley with a wrong second
    derivative converges only quadratically: it leaves ~14 ulps here.)"""
    u = np.concatenate([1 - np.geomspace(1e-15, 0.2, 150), np.linspace(0.001, 0.85, 100)])
    target = -np.log(u) / 3

    def energy(s):
        z = 0.5 / np.sqrt(s)[:, None]
        q = 2.0 * (SIGN[:30] * special.erfc(ODD[:30] * z)).sum(axis=1)
        small = -np.log1p(-np.minimum(q, 0.5))
        w = (4 / np.pi * SIGN[:60] / ODD[:60] * np.exp(-(ODD[:60] ** 2 - 1) * LAM0 * s[:, None])).sum(axis=1)
        return np.where(s < 0.3, small, LAM0 * s - np.log(w))
    lo, hi = np.full(u.size, 1e-3), np.full(u.size, 50.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = energy(mid) > target
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    s = _exit_times(u)
    ulps = np.abs(s - lo) / np.spacing(lo)
    # seen: ≤ 5 (images), ≤ 9 (modes), the reference's own rounding included
    assert np.all(ulps <= np.where(s < fp.S_SWITCH, 6, 12)), (u[np.argmax(ulps)], ulps.max())


def test_position_is_the_conditional_quantile():
    rng = np.random.default_rng(16)
    us = np.concatenate([rng.uniform(0, 1, 25), [2 ** -33, 1 - 2 ** -33, 1e-8, 0.5, 0.5 + 2 ** -33, 0.75]])
    for s in [1e-7, 1e-3, 0.004, 0.005, 0.0065, 0.02, np.nextafter(0.05, 0), 0.05, 0.1, 0.3, 1.0, 10.0, 300.0]:
        xi = _positions(us, np.full(us.size, s))
        assert np.all(np.abs(xi) < 1)
        F = np.array([cdf_ref(x, s) for x in xi])
        assert np.all(np.abs(F - us) < 1e-15), (s, us[np.argmax(np.abs(F - us))], np.abs(F - us).max())
    assert fp.interval_position(0.3, 0.0) == 0.0
    assert fp.interval_position(0.0, 0.5) == -1.0 and fp.interval_position(1.0, 0.5) == 1.0


def test_mean_square_position_matches_the_series():
    """E[ξ²] as the integral of the squared quantile function over u (adaptive
    quadrature; by symmetry twice the integral over (0, ½)) against the eigen
    series' closed form."""
    for s in [0.002, 0.02, 0.049, 0.06, 0.3, 3.0]:
        m2 = 2 * integrate.quad(lambda u: fp.interval_position(u, s) ** 2, 0, 0.5,
                                epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        assert abs(m2 / mean_square_ref(s) - 1) < 1e-10, s


def test_mean_exit_time_of_the_cube():
    """E[T] = ∫_0^∞ S³ ds (quadrature), against the mean of sampled exit times
    (2·10⁵ uniforms, 5 standard errors) and the midpoint rule over u."""
    mean = sum(integrate.quad(lambda s: fp.interval_survival(s) ** 3, lo, hi, epsabs=1e-14, limit=200)[0]
               for lo, hi in [(0, 0.1), (0.1, 1), (1, 10), (10, 100)])
    t = _exit_times(np.random.default_rng(17).uniform(0, 1, 200000))
    assert abs(t.mean() - mean) < 5 * t.std() / math.sqrt(t.size)
    n = 200000
    mid = _exit_times((np.arange(n) + 0.5) / n).mean()
    assert abs(mid / mean - 1) < 1e-4


# -- brute force: small Gaussian steps with the Brownian-bridge crossing test ----
# Step in s = D t/a² (rms √(2H) = 0.045 of the half-width).  With the bridge
# test the walk's survival to the end of each step is exact (up to crossing
# both ends in one step, ~e^{−1/H}); only the exit time within the step
# (taken at its middle, an error ≪ H) and the other axis's coordinate at it
# (the step's mean: a spread of √(H/2) that widens the distribution by ~H/4
# in variance) are approximate, far below what the KS test resolves.
H = 1e-3


@numba.njit
def _crossed(x0, x1, h):
    """Whether a step from x0 to x1 (variance 2h) left (−1, 1): by its end, or
    by the Brownian bridge between, with probability e^{−(1−x0)(1−x1)/h} for
    the upper end, likewise for the lower (a uniform is drawn only where that
    exceeds e^{−40})."""
    if x1 >= 1.0 or x1 <= -1.0:
        return True
    g = min((1.0 - x0) * (1.0 - x1), (1.0 + x0) * (1.0 + x1))
    if g > 40.0 * h:
        return False
    p = math.exp(-(1.0 - x0) * (1.0 - x1) / h) + math.exp(-(1.0 + x0) * (1.0 + x1) / h)
    return np.random.random() < p


@numba.njit
def _brute_cube(n, h, seed):
    """Exit time (end of the step minus h/2) and another axis's coordinate
    (mean of the step's ends) for n walks from the centre of (−1, 1)³."""
    np.random.seed(seed)
    times = np.empty(n)
    other = np.empty(n)
    sd = math.sqrt(2.0 * h)
    for i in range(n):
        x, y, z = 0.0, 0.0, 0.0
        t = 0.0
        while True:
            t += h
            x1 = x + sd * np.random.standard_normal()
            y1 = y + sd * np.random.standard_normal()
            z1 = z + sd * np.random.standard_normal()
            cx, cy, cz = _crossed(x, x1, h), _crossed(y, y1, h), _crossed(z, z1, h)
            if cx or cy or cz:
                times[i] = t - 0.5 * h
                # the axis after the first that crossed (the other two are
                # exchangeable; that one crossed too with probability ~1e-3)
                if cx:
                    other[i] = 0.5 * (y + y1)
                elif cy:
                    other[i] = 0.5 * (z + z1)
                else:
                    other[i] = 0.5 * (x + x1)
                break
            x, y, z = x1, y1, z1
    return times, other


@numba.njit
def _brute_interval(n, h, steps, seed):
    """Positions after `steps` steps of the walks (of n) that never left (−1, 1)."""
    np.random.seed(seed)
    out = np.empty(n)
    m = 0
    sd = math.sqrt(2.0 * h)
    for i in range(n):
        x = 0.0
        alive = True
        for k in range(steps):
            x1 = x + sd * np.random.standard_normal()
            if _crossed(x, x1, h):
                alive = False
                break
            x = x1
        if alive:
            out[m] = x
            m += 1
    return out[:m]


def test_exit_time_and_exit_position_match_brute_force():
    t_bf, other_bf = _brute_cube(20000, H, 151)
    rng = np.random.default_rng(152)
    t = _exit_times(rng.uniform(0, 1, 200000))
    assert stats.ks_2samp(t, t_bf).pvalue > KS_ALPHA
    xi = _positions(rng.uniform(0, 1, t.size), t)
    assert stats.ks_2samp(xi, other_bf).pvalue > KS_ALPHA


@pytest.mark.parametrize("s", [0.02, 0.3])
def test_position_at_a_horizon_matches_brute_force(s):
    steps = round(s / H)
    n = 60000
    x_bf = _brute_interval(n, H, steps, 153)
    xi = _positions(np.random.default_rng(154).uniform(0, 1, 200000), np.full(200000, steps * H))
    assert stats.ks_2samp(xi, x_bf).pvalue > KS_ALPHA
    # and the survivors' share against the survival, within 4 binomial sigmas
    p = fp.interval_survival(steps * H)
    assert abs(x_bf.size - n * p) < 4 * math.sqrt(n * p * (1 - p))


# -- the ball ---------------------------------------------------------------------
# Independent references: the eigen and image series of the unit ball summed
# directly (many terms, NumPy or 40-digit mpmath), not the module's recurrences.
N_BALL = np.arange(1, 400)


def ball_survival_eigen(s):
    s = np.atleast_1d(np.asarray(s, float))[:, None]
    return (2 * (-1.0) ** (N_BALL + 1) * np.exp(-N_BALL ** 2 * math.pi ** 2 * s)).sum(axis=1)


def ball_survival_images(s):
    s = np.atleast_1d(np.asarray(s, float))[:, None]
    odd = ODD[:30]
    return 1.0 - (2 / np.sqrt(math.pi * s) * np.exp(-odd ** 2 / (4 * s))).sum(axis=1)


def ball_survival_ref(s):
    s = np.asarray(s, float)
    return np.where(s < 0.15, ball_survival_images(np.minimum(s, 0.15)), ball_survival_eigen(np.maximum(s, 0.15)))


def ball_tail_ref(xi, s):
    """H(ξ) = ∫_{|x|>ξ} p_ball(x, s) dx = 2 Σ_n e^{−n²π²s}[(−1)^{n+1} + ξ cos(nπξ)
    − sin(nπξ)/(nπ)] (from ∫ r sin(kr) dr = sin(kr)/k² − r cos(kr)/k)."""
    xi = np.atleast_1d(np.asarray(xi, float))[:, None]
    k = N_BALL * math.pi
    w = np.exp(-N_BALL ** 2 * math.pi ** 2 * s)
    return (2 * w * ((-1.0) ** (N_BALL + 1) + xi * np.cos(k * xi) - np.sin(k * xi) / k)).sum(axis=1)


def ball_radius_cdf(xi, s):
    """P(|X| ≤ ξ | survived to s) = 1 − H(ξ)/S."""
    return 1.0 - ball_tail_ref(xi, s) / ball_tail_ref(0.0, s)[0]


def ball_density_images_mp(r, s):
    """p_ball(r, s) = Σ_{n∈Z} v0(r − 2n)/r, v0(x) = x·(4πs)^{−3/2} e^{−x²/(4s)}: the
    odd, 2-periodic extension of v = r·p (the 1-D heat equation, zero at ±1)."""
    r, s = mp.mpf(r), mp.mpf(s)
    return sum((r - 2 * n) * mp.exp(-(r - 2 * n) ** 2 / (4 * s)) for n in range(-12, 13)) \
        / (r * (4 * mp.pi * s) ** 1.5)


def ball_density_eigen_mp(r, s):
    """p_ball(r, s) = Σ_n φ_n(0) φ_n(r) e^{−n²π²s}, φ_n = sin(nπr)/(r√(2π))."""
    r, s = mp.mpf(r), mp.mpf(s)
    if r == 0:
        return sum(n * n * mp.pi / 2 * mp.exp(-n * n * mp.pi ** 2 * s) for n in range(1, 60))
    return sum(n / 2 * mp.sin(n * mp.pi * r) / r * mp.exp(-n * n * mp.pi ** 2 * s) for n in range(1, 60))


def ball_acceptance_rate(s):
    """The sampler's acceptance rate: S(s) for the Gaussian proposal (∫ p_ball),
    S/(V p_ball(0, s)) for the uniform one (V = 4π/3)."""
    S = ball_survival_eigen(s)[0]
    if not fp.ball_horizon_uniform(s):
        return S
    return S / (4 * math.pi / 3 * math.pi / 2 * (N_BALL ** 2 * np.exp(-N_BALL ** 2 * math.pi ** 2 * s)).sum())


@numba.njit
def _sample_horizon(s):
    """One position at time s given survival in the unit ball (NumPy's
    generator standing in for Philox; the kernels draw as OWNERS.md says),
    and the attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        if fp.ball_horizon_uniform(s):          # uniform in the ball
            r = np.random.random() ** (1.0 / 3.0)
            ct = 2.0 * np.random.random() - 1.0
            phi = 2.0 * math.pi * np.random.random()
            st = math.sqrt(max(0.0, 1.0 - ct * ct))
            x, y, z = r * st * math.cos(phi), r * st * math.sin(phi), r * ct
        else:                                     # the free Gaussian N(0, 2s I)
            sd = math.sqrt(2.0 * s)
            x = sd * np.random.standard_normal()
            y = sd * np.random.standard_normal()
            z = sd * np.random.standard_normal()
            r = math.sqrt(x * x + y * y + z * z)
        if np.random.random() < fp.ball_horizon_accept(r, s):
            return x, y, z, attempts


@numba.njit
def _horizon_radii(n, s, seed):
    np.random.seed(seed)
    radii = np.empty(n)
    attempts = 0
    for i in range(n):
        x, y, z, k = _sample_horizon(s)
        radii[i] = math.sqrt(x * x + y * y + z * z)
        attempts += k
    return radii, attempts


def test_ball_series_agree_and_the_module_matches_them():
    s = np.geomspace(0.01, 1.0, 60)
    eig, img = ball_survival_eigen(s), ball_survival_images(s)
    # (each is relatively accurate only where it is used: images for 1 − S at
    # small s, modes for S at large s)
    assert np.max(np.abs(eig - img)) < 4 * EPS
    s = np.concatenate([np.geomspace(1e-4, 60.0, 400),      # S(60) ≈ 1e-257
                        [fp.BALL_SWITCH, np.nextafter(fp.BALL_SWITCH, 0), np.nextafter(fp.BALL_SWITCH, 1)]])
    got = np.array([fp.ball_survival(x) for x in s])
    # the argument's own rounding makes e^{−π²s} uncertain by π²s ulps
    assert np.all(np.abs(got / ball_survival_ref(s) - 1) <= 4 * EPS * (1 + math.pi ** 2 * s))
    assert fp.ball_survival(0.0) == 1.0 and fp.ball_survival(-1.0) == 1.0
    assert fp.ball_survival(1e4) == 0.0
    # the switch constant is S at the switch (40 digits, both series)
    mp.mp.dps = 40
    sw = mp.mpf(fp.BALL_SWITCH)
    eigen = 2 * mp.nsum(lambda n: (-1) ** (n + 1) * mp.exp(-n * n * mp.pi ** 2 * sw), [1, mp.inf])
    images = 1 - 2 / mp.sqrt(mp.pi * sw) * mp.nsum(lambda m: mp.exp(-(2 * m + 1) ** 2 / (4 * sw)), [0, mp.inf])
    assert abs(eigen - images) < mp.mpf(10) ** -35 and float(eigen) == fp.BALL_U_SWITCH


def test_mean_exit_time_of_the_ball_is_R2_over_6D():
    """∫_0^∞ S ds = 1/6 (E T = R²/(6D) from the centre), and the mean of
    ball_exit_time over a fine midpoint grid of quantiles."""
    mean = sum(integrate.quad(fp.ball_survival, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for lo, hi in [(0, 0.1), (0.1, 1), (1, 10), (10, 100)])
    assert abs(mean - 1 / 6) < 1e-12
    n = 400000
    mid = _ball_exit_times((np.arange(n) + 0.5) / n).mean()
    # the midpoint rule's error, mostly from T ≈ −ln(u/2)/π² in the first
    # interval, ~ 1/(π² n) (seen: 8.7e-8)
    assert abs(mid - 1 / 6) < 5e-7


def test_ball_exit_time_inverts_the_survival_to_round_off():
    """S(s) = u with S summed independently; the tolerance is the rounding of
    s (a relative ε moves ln S by s·|d ln S/ds|·ε ≤ π² s ε) plus a few ε."""
    u = np.concatenate([np.linspace(0.0005, 0.9995, 2000), [2 ** -33, 1 - 2 ** -33, 1e-300, 1e-20,
                        1 - 1e-12, np.nextafter(1, 0), fp.BALL_U_SWITCH, np.nextafter(fp.BALL_U_SWITCH, 1),
                        fp.BALL_U_TINY, np.nextafter(fp.BALL_U_TINY, 0)]])
    s = _ball_exit_times(u)
    err = np.abs(np.log(ball_survival_ref(s)) - np.log(u))
    # for u near 1, ln S ≈ −(1 − S): compare 1 − S instead, relatively
    near = u > 0.99
    err[near] = np.abs((1 - ball_survival_ref(s[near])) / (1 - u[near]) - 1)
    assert np.all(err <= 8 * EPS * (1 + math.pi ** 2 * s)), (u[np.argmax(err)], err.max())
    assert np.all(np.diff(s[:2000]) < 0)
    assert fp.ball_exit_time(1.0) == 0.0 and fp.ball_exit_time(0.0) == math.inf
    assert fp.ball_exit_time(-0.5) == math.inf and fp.ball_exit_time(2.0) == 0.0


def test_ball_exit_time_is_the_root_to_a_few_ulps():
    """Against 40-digit mpmath: Newton on the directly summed series (images
    below s = 0.3, modes above) from the module's s, at ~500 quantiles."""
    mp.mp.dps = 40

    def survival_and_slope(s):
        if s < 0.3:
            terms = [(mp.exp(-(2 * m + 1) ** 2 / (4 * s)), (2 * m + 1) ** 2) for m in range(8)]
            q = 2 / mp.sqrt(mp.pi * s) * sum(e for e, _ in terms)
            dq = 2 / mp.sqrt(mp.pi * s) * sum(e * (k / (4 * s * s) - 1 / (2 * s)) for e, k in terms)
            return 1 - q, -dq
        terms = [(-1) ** (n + 1) * mp.exp(-n * n * mp.pi ** 2 * s) for n in range(1, 12)]
        return 2 * sum(terms), -2 * mp.pi ** 2 * sum(n * n * t for n, t in zip(range(1, 12), terms))
    u = np.concatenate([1 - np.geomspace(1e-16, 0.29, 200), np.linspace(0.001, 0.75, 200),
                        np.geomspace(1e-300, 1e-3, 100)])
    s = _ball_exit_times(u)
    ulps = np.empty(u.size)
    for i in range(u.size):
        root = mp.mpf(s[i])
        for _ in range(3):
            f, df = survival_and_slope(root)
            root -= (f - mp.mpf(u[i])) / df
        ulps[i] = float(abs(mp.mpf(s[i]) - root)) / np.spacing(float(root))
    # seen: ≤ 2.2 (images), ≤ 2.7 (modes)
    assert np.all(ulps <= 4), (u[np.argmax(ulps)], ulps.max())


@pytest.mark.parametrize("s", [0.002, 0.02, 0.1, 0.18, 0.19, 0.5, 2.0])
def test_horizon_acceptance_is_the_density_ratio(s):
    """p_ball/p_free (Gaussian proposal) or p_ball(r)/p_ball(0) (uniform), from
    60-digit image and eigen sums; within [0, 1]; 0 at r ≥ 1; continuous at
    r → 0 (the image form's paired terms, the eigen form's sin(nπr)/r)."""
    mp.mp.dps = 60
    r = np.concatenate([np.linspace(0.0, 0.999, 40), [1e-300, 1e-9, 0.5 * fp.SHC_SWITCH * s,
                        np.nextafter(fp.SHC_SWITCH * s, 0), fp.SHC_SWITCH * s, 1 - 1e-9, np.nextafter(1, 0)]])
    got = np.array([fp.ball_horizon_accept(x, s) for x in r])
    uniform = fp.ball_horizon_uniform(s)
    want = []
    for x in r:
        rx = max(x, 1e-12)      # the limit r → 0 (its error ~ r²; 60 digits for
                                # the images' cancelling ±n terms, ~ 1/r)
        if uniform:
            want.append(ball_density_eigen_mp(rx, s) / ball_density_eigen_mp(0, s))
        else:
            want.append(ball_density_images_mp(rx, s) * (4 * mp.pi * s) ** 1.5 * mp.exp(mp.mpf(rx) ** 2 / (4 * s)))
    want = np.array([float(w) for w in want])
    assert np.all(np.abs(got - want) < 4 * EPS), (r[np.argmax(np.abs(got - want))], np.abs(got - want).max())
    assert np.all(got >= 0) and np.all(got <= 1)
    for x in [1.0, 1.5, math.inf, math.nan]:
        assert fp.ball_horizon_accept(x, s) == 0.0
    assert abs(fp.ball_horizon_accept(1e-8, s) - fp.ball_horizon_accept(0.0, s)) < 1e-14


def test_horizon_acceptance_stays_in_0_1_and_its_rate_above_29_percent():
    """On a fine (r, s) grid every acceptance is in [0, 1] (the Dirichlet kernel
    is below the free one and radially decreasing from the centre), and the
    sampler's acceptance rate, S or S/(V p_ball(0)), is ≥ 0.298 at every s."""
    for s in np.geomspace(1e-4, 30, 120):
        a = np.array([fp.ball_horizon_accept(x, s) for x in np.linspace(0, 1, 501)])
        assert np.all(a >= 0) and np.all(a <= 1), s
        assert a[-1] == 0.0
    rates = [ball_acceptance_rate(s) for s in np.concatenate([np.geomspace(1e-3, 50, 300),
                                                               [np.nextafter(fp.HORIZON_SWITCH, 0)]])]
    assert min(rates) > 0.298
    assert abs(ball_acceptance_rate(50.0) - 3 / math.pi ** 2) < 1e-12    # the s → ∞ limit


def test_radius_tail_formula_is_the_integral_of_the_density():
    """H(ξ) (the reference of the sampler's test) against quadrature of the
    image form of p_ball over the shell ξ < r < 1."""
    mp.mp.dps = 20
    for s in [0.01, 0.1, 0.5]:
        for xi in [0.0, 0.3, 0.8]:
            h = mp.quad(lambda r: 4 * mp.pi * r * r * ball_density_images_mp(r, s), [max(xi, 1e-12), 0.5, 1])
            # absolutely: the eigen sum cancels in the far tail at small s
            assert abs(float(h) - ball_tail_ref(xi, s)[0]) < 4 * EPS, (s, xi)


@pytest.mark.parametrize("s", [0.005, 0.05, 0.15, 0.3, 1.0, 3.0])
def test_horizon_sampler_radius_matches_the_exact_distribution(s):
    """The rejection sampler's radii against F(ξ) = 1 − H(ξ)/S (KS), and its
    attempts against the stated acceptance rate (4 binomial sigmas)."""
    n = 20000
    radii, attempts = _horizon_radii(n, s, 1500 + int(1000 * s))
    assert stats.kstest(radii, lambda x: ball_radius_cdf(x, s)).pvalue > KS_ALPHA
    p = ball_acceptance_rate(s)
    # n successes in `attempts` Bernoulli(p) trials: attempts ≈ n/p ± √(n(1−p))/p
    assert abs(attempts - n / p) < 4 * math.sqrt(n * (1 - p)) / p, (attempts, n / p)


@numba.njit
def _brute_ball(n, h, horizon, seed):
    """n walks of small Gaussian steps (variance 2h per axis) from the centre
    of the unit ball, each until it leaves or reaches `horizon`: the exit
    times (mid-step, inf for survivors) and the survivors' radii.  A step
    crosses the sphere by its end or, between, with the probability of the
    bridge crossing the tangent plane, e^{−d0 d1/h} (d = 1 − |x|; drawn only
    above e^{−40}); the sphere's curvature changes that by ~√h, far below
    what the KS tests resolve."""
    np.random.seed(seed)
    times = np.full(n, np.inf)
    radii = np.empty(n)
    m = 0
    sd = math.sqrt(2.0 * h)
    steps = round(horizon / h)
    for i in range(n):
        x, y, z = 0.0, 0.0, 0.0
        d0 = 1.0
        alive = True
        for k in range(steps):
            x1 = x + sd * np.random.standard_normal()
            y1 = y + sd * np.random.standard_normal()
            z1 = z + sd * np.random.standard_normal()
            d1 = 1.0 - math.sqrt(x1 * x1 + y1 * y1 + z1 * z1)
            crossed = d1 <= 0.0
            if not crossed and d0 * d1 < 40.0 * h:
                crossed = np.random.random() < math.exp(-d0 * d1 / h)
            if crossed:
                times[i] = (k + 0.5) * h
                alive = False
                break
            x, y, z, d0 = x1, y1, z1, d1
        if alive:
            radii[m] = 1.0 - d0
            m += 1
    return times, radii[:m]


@pytest.mark.parametrize("horizon", [0.05, 0.3])
def test_ball_exit_time_and_horizon_match_brute_force(horizon):
    """Brownian motion by small steps, independent of every series: its exit
    times before the horizon against 1 − ball_survival (KS, conditioned on
    exiting before it), the survivors' share against ball_survival(horizon)
    (4 binomial sigmas), their radii against the rejection sampler's."""
    h = 5e-5       # rms step 0.01 of the radius
    n = 10000
    times, radii_bf = _brute_ball(n, h, horizon, 155)
    exited = times[np.isfinite(times)]
    p = fp.ball_survival(horizon)
    assert abs(radii_bf.size - n * p) < 4 * math.sqrt(n * p * (1 - p))
    cdf = lambda t: (1 - np.array([fp.ball_survival(x) for x in np.atleast_1d(t)])) / (1 - p)
    assert stats.kstest(exited, cdf).pvalue > KS_ALPHA
    radii, _ = _horizon_radii(20000, horizon, 156)
    assert stats.ks_2samp(radii, radii_bf).pvalue > KS_ALPHA


# -- every backend the same: plain Python, Numba, the C++ twin ------------------
def test_numba_and_plain_python_agree_bit_for_bit():
    u, s, r = _inputs(600)      # plain Python is slow: fewer random inputs, every edge
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import test_firstpassage as t; "
            "np.save(sys.argv[2], t._evaluate(*t._inputs(600)))")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"firstpassage_py_{os.getpid()}.npy"
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    plain = np.load(out)
    out.unlink()
    assert np.array_equal(_evaluate(u, s, r).view(np.int64), plain.view(np.int64))


# Both include the step kernel's header first: the twin must live beside it.
HOST_SOURCE = r"""
#include "exodiff_step.cuh"
#include "exodiff_leap.cuh"
extern "C" void leap_eval(long long n, const double* u, const double* s, const double* r, double* out) {
    for (long long i = 0; i < n; ++i) {
        out[7 * i] = exo::interval_survival(s[i]);
        out[7 * i + 1] = exo::cube_exit_time(u[i]);
        out[7 * i + 2] = exo::interval_position(u[i], s[i]);
        out[7 * i + 3] = exo::ball_survival(s[i]);
        out[7 * i + 4] = exo::ball_exit_time(u[i]);
        out[7 * i + 5] = exo::ball_horizon_uniform(s[i]) ? 1.0 : 0.0;
        out[7 * i + 6] = exo::ball_horizon_accept(r[i], s[i]);
    }
}
"""

DEVICE_SOURCE = r"""
#include "exodiff_step.cuh"
#include "exodiff_leap.cuh"
extern "C" __global__ void leap_probe(const double* u, const double* s, const double* r, double* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = exo::interval_position(u[i], exo::cube_exit_time(u[i]))
                        + exo::interval_position(u[i], s[i]) + exo::interval_survival(s[i])
                        + exo::ball_survival(s[i]) + exo::ball_exit_time(u[i])
                        + (exo::ball_horizon_uniform(s[i]) ? 1.0 : 0.0) + exo::ball_horizon_accept(r[i], s[i]);
}
"""


def test_cuda_twin_is_bit_identical_on_the_host(tmp_path):
    if CXX is None:
        pytest.skip("g++ is not installed: cannot build the host twin")
    src = tmp_path / "leap_host.cpp"
    src.write_text(HOST_SOURCE)
    lib_path = tmp_path / "libleap.so"
    cmd = [CXX, *HARNESS_FLAGS, "-I", str(KERNELS), str(src), "-o", str(lib_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    lib = ctypes.CDLL(str(lib_path))
    lib.leap_eval.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * 4
    lib.leap_eval.restype = None
    u, s, r = _inputs()
    out = np.empty((u.size, 7))
    lib.leap_eval(u.size, u.ctypes.data, s.ctypes.data, r.ctypes.data, out.ctypes.data)
    want = _evaluate(u, s, r)
    same = out.view(np.int64) == want.view(np.int64)
    assert same.all(), (u[~same.all(axis=1)][:5], s[~same.all(axis=1)][:5])


def test_cuda_twin_compiles_with_nvcc_without_local_memory(tmp_path):
    """Where NVRTC is missing (the test below covers the backend's path); once
    exodiff_step.cu includes the twin, test_cuda_host's nvcc builds cover it."""
    if NVCC is None:
        pytest.skip("nvcc is not on the PATH: cannot compile the CUDA twin")
    if NVRTC_MISSING is None:
        pytest.skip("the NVRTC build below checks the device compile")
    src = tmp_path / "leap_probe.cu"
    src.write_text(DEVICE_SOURCE)
    cmd = [NVCC, "-I", str(KERNELS), "-arch=sm_90", "-c", str(src), "-o", str(tmp_path / "probe.o"),
           *NVCC_FLAGS]
    done = subprocess.run(cmd, capture_output=True, text=True)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    frames = [int(x) for x in
              re.findall(r"Function properties for leap_probe\s*\n\s*(\d+) bytes stack frame", log)]
    assert frames == [0], log


@pytest.mark.skipif(NVRTC_MISSING is not None, reason=f"NVRTC build check: {NVRTC_MISSING}")
@pytest.mark.parametrize("arch", nvrtc_build.ARCHS, ids=lambda a: f"sm_{a}")
def test_cuda_twin_compiles_through_nvrtc_without_local_memory(arch):
    """The backend's own compile path (CuPy's NVRTC, tests/nvrtc_build.py):
    no warnings, no stack frame (the device's sincospi keeps the trigonometric
    reduction's local array out)."""
    build = nvrtc_build.compile_module(DEVICE_SOURCE, ("-std=c++17", f"-I{KERNELS}"), arch)
    assert build.log.strip() == "", build.log
    info = nvrtc_build.read_cubin(build.cubin)["leap_probe"]
    assert info.frame_bytes == 0, info


def _timings(n=200000, repeats=7):
    """ns per call in Numba, median of `repeats`, the cases alternating (the
    cost per leap: one exit time and two or three positions for the cube; one
    exit time, and at a horizon ~1/rate acceptances, for the ball)."""
    import time
    rng = np.random.default_rng(0)
    u = (rng.integers(0, 2 ** 32, n) + 0.5) / 2 ** 32          # Philox's uniforms
    v = (rng.integers(0, 2 ** 32, n) + 0.5) / 2 ** 32
    s_exit = _exit_times(u)
    radii = rng.uniform(0, 1, n) ** (1 / 3)
    cases = [("cube_exit_time(u)", _exit_times, (u,)),
             ("ball_exit_time(u)", _ball_exit_times, (u,)),
             ("ball_survival(s) at ball exit times", _ball_survivals, (_ball_exit_times(u),)),
             ("ball_horizon_accept(r, 0.05) (images)", _acceptances, (radii * 0.5, np.full(n, 0.05))),
             ("ball_horizon_accept(r, 1.0) (modes)", _acceptances, (radii, np.full(n, 1.0))),
             ("interval_position(u, s) at exit times", _positions, (v, s_exit)),
             ("interval_position(u, 0.02) (images)", _positions, (v, np.full(n, 0.02))),
             ("interval_position(u, 0.001) (Gaussian)", _positions, (v, np.full(n, 0.001))),
             ("interval_position(u, 1.0) (modes)", _positions, (v, np.full(n, 1.0))),
             ("interval_survival(s) at exit times", _survivals, (s_exit,))]
    times = {name: [] for name, _, _ in cases}
    for name, fn, args in cases:
        fn(*args)
    for _ in range(repeats):
        for name, fn, args in cases:
            t0 = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - t0)
    for name, _, _ in cases:
        print(f"{name:42s} {np.median(times[name]) / n * 1e9:7.1f} ns/call")


if __name__ == "__main__":   # python tests/test_firstpassage.py: the cost of a call
    _timings()
