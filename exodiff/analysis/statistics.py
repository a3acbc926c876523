"""Statistics on the analyses' results, each with its formula:
Gini coefficient, Kaplan–Meier survival, two-proportion z test, the
two-sample Kolmogorov–Smirnov test and the Mann–Whitney U test."""
import math

import numpy as np


def gini(x):
    """Gini coefficient of non-negative values x[n]:
    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), x sorted ascending, i = 1..n
    (0: every cell the same dose, → 1: one cell takes everything).  NaN if
    n = 0 or Σx = 0."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return math.nan
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def kaplan_meier(durations, observed):
    """Kaplan–Meier estimate of the survival function.

    durations[n] [s]: time to the event, or to censoring; observed[n] bool.
    S(t) = Π_{t_j ≤ t} (1 − d_j / n_j) over the distinct event times t_j,
    with d_j events at t_j and n_j subjects whose duration is ≥ t_j (a
    subject censored at t_j is still at risk at t_j).  Greenwood's variance:
    Var S = S² Σ d_j / (n_j (n_j − d_j)).

    Returns (times[J], survival[J], at_risk[J], events[J], standard_error[J]).
    """
    durations = np.asarray(durations, dtype=np.float64).ravel()
    observed = np.asarray(observed, dtype=bool).ravel()
    if durations.shape != observed.shape:
        raise ValueError("kaplan_meier: durations and observed differ in shape")
    ordered = np.sort(durations)
    times, events = np.unique(durations[observed], return_counts=True)
    at_risk = durations.size - np.searchsorted(ordered, times, side="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod(1.0 - events / at_risk)
        terms = np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.inf)
        se = survival * np.sqrt(np.cumsum(terms))
    se = np.where(survival == 0, 0.0, se)
    return times, survival, at_risk.astype(np.int64), events.astype(np.int64), se


def _normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_z(k1, n1, k2, n2):
    """Two-sided two-proportion z-test with the pooled proportion:
    z = (p1 − p2) / √(p(1−p)(1/n1 + 1/n2)), p = (k1+k2)/(n1+n2);
    p-value = erfc(|z|/√2).  Returns (z, p) (NaN when undefined)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2, p = k1 / n1, k2 / n2, (k1 + k2) / (n1 + n2)
    var = p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return (0.0, 1.0) if p1 == p2 else (math.inf, 0.0)
    z = (p1 - p2) / math.sqrt(var)
    return z, 2.0 * _normal_sf(abs(z))


def _kolmogorov_sf(x):
    """P(K > x) for the Kolmogorov distribution: 2 Σ_k (−1)^(k−1) e^(−2k²x²)."""
    if x <= 0:
        return 1.0
    if x < 0.2:  # the alternating series converges slowly here; the value is 1 to 1e-15
        return 1.0
    k = np.arange(1, 101)
    return float(min(1.0, max(0.0, 2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * x * x)))))


def ks_two_sample(a, b):
    """Two-sample Kolmogorov–Smirnov test: D = sup |F_a − F_b| and its
    two-sided p-value P(K > λ) from the Kolmogorov distribution with
    Stephens' small-sample correction λ = (√n_e + 0.12 + 0.11/√n_e)·D,
    n_e = n_a n_b/(n_a + n_b) (Stephens 1970; Numerical Recipes §14.3):
    within 0.01 of the exact p-value from about ten values per sample.
    Returns (D, p); NaN when a sample is empty."""
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    na, nb = a.size, b.size
    if na == 0 or nb == 0:
        return math.nan, math.nan
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / na
    fb = np.searchsorted(b, x, side="right") / nb
    d = float(np.max(np.abs(fa - fb)))
    en = math.sqrt(na * nb / (na + nb))
    return d, _kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def mann_whitney(a, b):
    """Two-sided Mann–Whitney U test of a[n_a] against b[n_b] (a shift in
    location; ties, such as the many cells with a dose of 0, get mid-ranks):
    U = R_a − n_a(n_a+1)/2 with R_a the sum of a's ranks in the pooled
    sample; under the null U is about normal with mean n_a n_b/2 and
    variance n_a n_b/12 · ((n+1) − Σ(t³−t)/(n(n−1))), n = n_a + n_b, t the
    size of each group of ties; z = (|U − mean| − 1/2)/sd (continuity
    correction), p = erfc(|z|/√2).  Returns (U, p); NaN when a sample is
    empty, p = 1 when every value is the same."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = a.size, b.size
    if na == 0 or nb == 0:
        return math.nan, math.nan
    x = np.concatenate([a, b])
    _, inverse, ties = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(ties)
    mid_rank = upper - (ties - 1) / 2.0  # ranks 1..n, ties averaged
    u = float(mid_rank[inverse[:na]].sum() - na * (na + 1) / 2.0)
    n = na + nb
    var = na * nb / 12.0 * ((n + 1) - float(np.sum(ties.astype(np.float64) ** 3 - ties)) / (n * (n - 1)))
    if var <= 0:
        return u, 1.0
    z = max(0.0, abs(u - na * nb / 2.0) - 0.5) / math.sqrt(var)
    return u, 2.0 * _normal_sf(z)
