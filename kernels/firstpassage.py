"""PROVISIONAL stand-in for s15-math's first-passage propagators (same names
and meanings, see OWNERS.md); replaced by s15-math's module on merge.

Dimensionless: the interval (−1, 1), time s = D t / a².
"""
import math

from .jit import njit

PI = math.pi


@njit(cache=True)
def interval_survival(s):
    """P(1-D Brownian motion from 0 has not left (−1, 1) by time s)."""
    if s <= 0.0:
        return 1.0
    if s < 0.2:  # images: 1 − Σ_{n≥1} (−1)^{n+1} 2 erfc((2n−1)/(2√s))
        r = 2.0 * math.sqrt(s)
        tot = 0.0
        sign = 1.0
        for n in range(1, 20):
            term = 2.0 * math.erfc((2 * n - 1) / r)
            tot += sign * term
            sign = -sign
            if term < 1e-18:
                break
        return 1.0 - tot
    tot = 0.0
    for k in range(40):
        m = 2 * k + 1
        term = 4.0 / (m * PI) * math.exp(-m * m * PI * PI * s / 4.0)
        tot += term if k % 2 == 0 else -term
        if term < 1e-18:
            break
    return tot


@njit(cache=True)
def cube_exit_time(u):
    """s with interval_survival(s)³ = u (bisection in log s)."""
    lo = -30.0
    hi = 8.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        sv = interval_survival(math.exp(mid))
        if sv * sv * sv > u:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


@njit(cache=True)
def _unnormalized_cdf(x, s):
    """∫_{−1}^{x} p(y, s) dy, p the density of surviving paths."""
    if s < 0.2:
        r = math.sqrt(4.0 * s)
        tot = 0.0
        for n in range(-20, 21):
            sign = 1.0 if n % 2 == 0 else -1.0
            tot += sign * 0.5 * (math.erfc(-(x - 2 * n) / r) - math.erfc(-(-1.0 - 2 * n) / r))
        return tot
    tot = 0.0
    for k in range(40):
        m = 2 * k + 1
        w = math.exp(-m * m * PI * PI * s / 4.0)
        sign = 1.0 if k % 2 == 0 else -1.0
        tot += w * 2.0 / (m * PI) * (math.sin(m * PI * x / 2.0) + sign)
        if w < 1e-18:
            break
    return tot


@njit(cache=True)
def interval_position(u, s):
    """ξ in (−1, 1): the u-quantile of the position at time s given survival."""
    target = u * _unnormalized_cdf(1.0, s)
    lo = -1.0
    hi = 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _unnormalized_cdf(mid, s) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
