"""Exact solutions the validation suite compares exodiff with (DESIGN §6),
and the stationary-problem solvers that derive the binding probability of
``exodiff.kernels.surface`` (:func:`milne_flat`, :func:`milne_sphere`,
:func:`reversible_equilibrium_chain`); the tests check the fitted formulas
against them.  Lengths in µm, times in s; NumPy only.
"""
import math

import numpy as np


def erfcx(x):
    """Scaled complementary error function e^{x²} erfc(x) for x ≥ 0 (no overflow)."""
    if x < 26.0:
        return math.exp(x * x) * math.erfc(x)
    y = 1.0 / (x * x)  # asymptotic series, relative error < 1e-13 here
    return (1.0 - y * (0.5 - y * (0.75 - y * (1.875 - y * 6.5625)))) / (x * math.sqrt(math.pi))


def smoluchowski(t, r0, R, D):
    """Probability that a vesicle starting at r0 [µm] has hit an absorbing
    sphere of radius R [µm] by time t [s]: (R/r0)·erfc((r0 − R)/√(4Dt))."""
    return R / r0 * math.erfc((r0 - R) / math.sqrt(4.0 * D * t))


def collins_kimball(t, r0, R, D, kappa):
    """Reacted fraction at a Collins–Kimball sphere (Robin D ∂c/∂r = κc at R)
    for a start at r0: R k_f/(r0 (k_f + k_D))·[erfc(a) − W(a, α√t)] with
    k_D = 4πRD, k_f = 4πR²κ, α = (1 + k_f/k_D)√D/R, a = (r0 − R)/√(4Dt),
    W(a, b) = e^{2ab + b²} erfc(a + b) (ecell greens_functions,
    __p_reaction_irr).  kappa = inf gives :func:`smoluchowski`."""
    if math.isinf(kappa):
        return smoluchowski(t, r0, R, D)
    ratio = kappa * R / D                        # k_f / k_D
    alpha = (1.0 + ratio) * math.sqrt(D) / R
    a = (r0 - R) / math.sqrt(4.0 * D * t)
    w = math.exp(-a * a) * erfcx(a + alpha * math.sqrt(t))
    return R / r0 * ratio / (1.0 + ratio) * (math.erfc(a) - w)


def radiation_wall_survival(t, x0, D, kappa):
    """Survival of a vesicle starting at x0 [µm] from a partially absorbing
    plane (D ∂c/∂x = κc): erf(a) + exp(κx0/D + κ²t/D)·erfc(a + κ√(t/D)),
    a = x0/√(4Dt), written with erfcx so that it cannot overflow."""
    a = x0 / math.sqrt(4.0 * D * t)
    return math.erf(a) + math.exp(-a * a) * erfcx(a + kappa * math.sqrt(t / D))


def reversible_bound_fraction(kappa, area, k_off, free_volume):
    """Fraction of vesicles bound at equilibrium, r/(1 + r) with
    r = bound/free = κA/(k_off V_free)."""
    r = kappa * area / (k_off * free_volume)
    return r / (1.0 + r)


def bound_kinetics(t, k_off, k_int):
    """Fractions (bound, internalized, free) at t of vesicles bound at 0 to a
    cell that does not rebind: e^{−kt}, k_int/k·(1 − e^{−kt}), k_off/k·(…)."""
    k = k_off + k_int
    b = math.exp(-k * t)
    return b, k_int / k * (1.0 - b), k_off / k * (1.0 - b)


def well_deposition(t, H, D, terms=200):
    """Delivered fraction by diffusion alone to an absorbing floor under a
    reflecting top at H [µm], uniform start:
    1 − Σ_n 8/((2n+1)²π²)·exp(−(2n+1)²π²Dt/(4H²))."""
    s = 0.0
    for n in range(terms):
        m = (2 * n + 1) * math.pi
        s += 8.0 / (m * m) * math.exp(-m * m * D * t / (4.0 * H * H))
    return 1.0 - s


def settling_deposit(t, D, v):
    """Deposit per area over initial concentration, M/c0 [µm], at an absorbing
    floor of a semi-infinite column with diffusion D and settling speed v > 0
    [µm/s]: (vt/2 + D/v)(1 + erf q) + √(Dt/π) e^{−q²} − D/v, q = v√t/(2√D)."""
    q = v * math.sqrt(t) / (2.0 * math.sqrt(D))
    return ((v * t / 2.0 + D / v) * (1.0 + math.erf(q)) + math.sqrt(D * t / math.pi) * math.exp(-q * q)
            - D / v)


def secretion_profile(r, rate, R, D, k_clear):
    """Steady concentration [1/µm³] at r ≥ R around a sphere of radius R that
    secretes `rate` vesicles/s from its surface and binds none, with clearance
    k_clear [1/s]: rate·e^{−(r−R)/λ}/(4πD r (1 + R/λ)), λ = √(D/k_clear)."""
    lam = math.sqrt(D / k_clear)
    r = np.asarray(r, dtype=np.float64)
    return rate * np.exp(-(r - R) / lam) / (4.0 * math.pi * D * r * (1.0 + R / lam))


def secretion_shell_count(a, b, rate, R, D, k_clear):
    """Expected number of free vesicles with R ≤ a < r < b at steady state:
    ∫ c 4πr² dr = rate/(D(1 + R/λ))·λ[(a+λ)e^{−(a−R)/λ} − (b+λ)e^{−(b−R)/λ}]."""
    lam = math.sqrt(D / k_clear)
    edge = lambda x: (x + lam) * math.exp(-(x - R) / lam) if math.isfinite(x) else 0.0
    return rate / (D * (1.0 + R / lam)) * lam * (edge(a) - edge(b))


# ========================================= stationary problems behind P(κ, D, dt)

def _gauss_legendre(n, a, b):
    x, w = np.polynomial.legendre.leggauss(n)
    return a + (x + 1.0) * (b - a) / 2.0, w * (b - a) / 2.0


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _upper_tail(x):
    return 0.5 * np.vectorize(math.erfc)(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def milne_flat(P, X=14.0, n=200):
    """Extrapolation length ℓ/s of exodiff's scheme at a flat wall with
    binding probability P per contact: the solution of
    c(x) = ∫_0^∞ [φ(x − y) + (1 − 2P) φ(x + y)] c(y) dy,  c(x) → x + ℓ,
    in units of the step s (φ the standard normal density), by Nyström
    quadrature on [0, X] and the exact linear tail beyond.  The Robin
    reactivity the scheme realizes is κ' = κ√(π dt/D)/2 = (√(2π)/4)/ℓ
    (kernels/surface.py, item 2)."""
    rho = 1.0 - 2.0 * P
    y, w = _gauss_legendre(n, 0.0, X)

    def kernel(x):
        return (_phi(x[:, None] - y[None, :]) + rho * _phi(x[:, None] + y[None, :])) * w[None, :]

    def tail(x):  # ∫_X^∞ [φ(x−y) + ρφ(x+y)]·(y, 1) dy
        q1, g1, q2, g2 = _upper_tail(X - x), _phi(X - x), _upper_tail(X + x), _phi(X + x)
        return x * q1 + g1 + rho * (g2 - x * q2), q1 + rho * q2

    lin, const = tail(y)
    A = np.zeros((n + 1, n + 1))
    b = np.zeros(n + 1)
    A[:n, :n] = np.eye(n) - kernel(y)
    A[:n, n] = -const
    b[:n] = lin
    xX = np.array([X])
    linX, constX = tail(xX)
    A[n, :n] = kernel(xX)[0]
    A[n, n] = constX[0] - 1.0
    b[n] = X - linX[0]
    return float(np.linalg.solve(A, b)[n])


def milne_sphere(P, eps, X=14.0, n=200, n_tail=80):
    """β of the steady state 1 − βR/r that exodiff's scheme reaches outside a
    sphere of radius R with binding probability P per contact and step
    s = eps·R.  The bridge test (radial distances) and the mirror (radial)
    make the scheme a Markov chain in r alone, with the radial kernel of the
    3-D Gaussian step (r0/r)[φ_s(r − r0) − φ_s(r + r0)]; it is solved like
    :func:`milne_flat` (units R = 1).  The realized reactivity is
    κR/D = β/(1 − β), i.e. κ' = β/(1 − β)·eps·√(2π)/4."""
    s = eps
    c = 1.0 / (math.sqrt(2.0 * math.pi) * s)
    r, wr = _gauss_legendre(n, 1.0, 1.0 + X * s)
    rt, wt = _gauss_legendre(n_tail, 1.0 + X * s, 1.0 + (X + 12.0) * s)

    def k3(r0, r1):
        return (r0 / r1) * c * (np.exp(-(r1 - r0) ** 2 / (2 * s * s)) - np.exp(-(r1 + r0) ** 2 / (2 * s * s)))

    def kernel(dst, src, w):
        d0, d1 = src[None, :] - 1.0, dst[:, None] - 1.0
        direct = k3(src[None, :], dst[:, None]) * (1.0 - P * np.exp(-2.0 * d0 * d1 / (s * s)))
        pre = 2.0 - dst  # mirror image inside of an end point outside
        ok = pre > 0.0
        mirrored = np.where(ok[:, None], k3(src[None, :], np.where(ok, pre, 1.0)[:, None])
                            * ((pre / dst) ** 2)[:, None], 0.0)
        return (direct + (1.0 - P) * mirrored) * w[None, :]

    A = np.zeros((n + 1, n + 1))
    b = np.zeros(n + 1)
    Ko = kernel(r, rt, wt)
    A[:n, :n] = np.eye(n) - kernel(r, r, wr)
    A[:n, n] = (Ko / rt[None, :]).sum(axis=1)
    b[:n] = Ko.sum(axis=1)
    rX = np.array([1.0 + X * s])
    KoX = kernel(rX, rt, wt)[0]
    A[n, :n] = kernel(rX, r, wr)[0]
    A[n, n] = -(KoX / rt).sum() + 1.0 / rX[0]
    b[n] = 1.0 - KoX.sum()
    return float(np.linalg.solve(A, b)[n])


def realized_kappa_prime(P, eps=0.0):
    """κ' = κ√(π dt/D)/2 that exodiff realizes with binding probability P per
    contact, at a flat wall (eps = 0) or a sphere with s = eps·R."""
    if eps == 0.0:
        return math.sqrt(2.0 * math.pi) / 4.0 / milne_flat(P)
    beta = milne_sphere(P, eps)
    return beta / (1.0 - beta) * eps * math.sqrt(2.0 * math.pi) / 4.0


def reversible_equilibrium_chain(kappa_rd, eps, q=2e-3, outer=3.0, h_frac=12):
    """(bound/free)/(κA/k_off) at the equilibrium of exodiff's scheme around
    one sphere (R = D = 1, step s = eps), deterministic: the radial chain of
    :func:`milne_sphere` on [R, R + outer] closed by a reflecting outer sphere,
    binding with ``surface.binding_probability``, unbinding with probability
    q·``release_fraction`` per step (q = k_off dt) and placement with the
    density erfc(x/√(4D dt)) of ``unbind_distance``.  `free` is the
    concentration midway, away from both walls.  1 is exact."""
    from math import erfc as _erfc

    from .kernels.surface import binding_probability, release_fraction
    s = eps
    dt = s * s / 2.0
    kappa = kappa_rd
    P = binding_probability(kappa, 1.0, dt, 1.0)
    h = s / h_frac
    r = 1.0 + h * (np.arange(int(outer / h)) + 0.5)
    rout = 1.0 + outer
    g = 1.0 / (math.sqrt(2.0 * math.pi) * s)

    def k(r0, r1):  # radial density of the end point r1 of a step from r0 (mass form)
        return (r1 / r0) * g * (np.exp(-(r1 - r0) ** 2 / (2 * s * s)) - np.exp(-(r1 + r0) ** 2 / (2 * s * s)))

    src, dst = r[None, :], r[:, None]
    pre = 2.0 - dst
    T = (k(src, dst) * (1.0 - P * np.exp(-2.0 * (src - 1.0) * (dst - 1.0) / (s * s)))
         + (1.0 - P) * np.where(pre > 0, k(src, np.maximum(pre, 1e-12)), 0.0)
         + k(src, 2.0 * rout - dst)) * h
    x = r - 1.0
    phi = np.array([_erfc(v / (math.sqrt(2.0) * s)) for v in x]) * h
    phi /= phi.sum()
    pu = q * release_fraction(kappa, 1.0, dt, 1.0)
    n = r.size
    A = np.zeros((n + 1, n + 1))
    b = np.zeros(n + 1)
    A[:n, :n] = np.eye(n) - T
    A[:n, n] = -pu * phi
    # the bound balance pu·B = bind·m follows from the free one; close the
    # system with the normalization Σm + B = 1 instead
    A[n, :] = 1.0
    b[n] = 1.0
    sol = np.linalg.solve(A, b)
    m, B = sol[:n], sol[n]
    conc = m / (4.0 * math.pi * r * r * h)
    mid = (x > 0.35 * outer) & (x < 0.65 * outer)
    target = kappa * 4.0 * math.pi / (q / dt)
    return B / conc[mid].mean() / target
