"""Exact first-passage propagators of Brownian motion in an interval, a cube and a ball.

The leap stage (DESIGN §2 "Stepping") moves a free vesicle far from every
surface by a whole protective domain at once, a cube (sections 1–4) or the
ball circumscribing it (sections 5–7).  These scalar functions sample, from
uniforms, the exit time from the domain and the position inside it at a
given time, exactly (to round-off); kernels/exodiff_leap.cuh holds their C++
twins, operation for operation, so the host harness matches them bit for bit.

Dimensionless variables: a vesicle with diffusion coefficient D starts at the
centre of a cube of half-width a; x = X/a and s = D t/a².

1. One axis.  X(t) starts at 0 in (−a, a) with absorbing ends.  The
   eigenfunctions of ∂_s = ∂²_x on (−1, 1) with zero ends that are not zero at
   the start are cos((2k+1)πx/2) (normalized: ∫cos² = 1), with eigenvalues
   λ_k = (2k+1)²π²/4, so the density of surviving paths is

       p(x, s) = Σ_k cos((2k+1)πx/2) e^{−λ_k s}                      (eigen)
               = Σ_n (−1)^n g(x − 2n),  g = N(0, 2s)                  (images)

   (the two are Poisson-summation partners: a theta-function identity).
   Integrating over (−1, 1) gives the survival probability

       S(s) = (4/π) Σ_k (−1)^k e^{−λ_k s}/(2k+1)
            = 1 − 2 Σ_m (−1)^m erfc((2m+1) z),   z = 1/(2√s),

   and, given survival, the mass beyond ξ ∈ [0, 1) (the CDF by symmetry is
   F(−ξ) = 1 − F(ξ) = H(ξ)/S) is, with φ = π(1 − ξ)/2,

       H(ξ) = ∫_ξ^1 p = (4/π) Σ_k (−1)^k e^{−λ_k s} sin²((2k+1)φ/2)/(2k+1)
            = ½erfc(ξz) + ½erfc((2−ξ)z) − ½erfc((2+ξ)z) − erfc(z)
              + erfc(3z) − ½erfc((4−ξ)z) + ½erfc((4+ξ)z) − …

   (the eigen form from ∫_ξ^1 cos((2k+1)πx/2) dx = (−1)^k (2/((2k+1)π))
   (1 − cos((2k+1)φ)), the image form term by term).  The exact mean exit
   time is ∫_0^∞ S ds = (4/π) Σ (−1)^k /((2k+1) λ_k) = (16/π³)·(π³/32) = ½,
   i.e. a²/(2D) (tests/test_firstpassage.py checks it).

2. Why the eigen series for large s and the images for small s.  Relative to
   the first term the eigen terms fall as c_k = e^{−(λ_k − λ_0)s} =
   e^{−π² s k(k+1)}; the image terms as erfc((2m+1)z)/erfc(z) ≈ e^{−2m(m+1)/s}.
   * survival and exit time: images below S_SWITCH = 0.1 with m = 0, 1
     (the first dropped term, 2erfc(5z), is < 3e-27 of 1 − S); modes above,
     summed while c_k ≥ MODE_CUTOFF = 1e-20 (k ≤ 6 at s = 0.1), so the
     dropped tail is < 1.2e-20 of the sum.
   * position: modes from X_SWITCH = 0.05 on (k ≤ 9), the three images
     written above below it (dropped terms ≤ erfc(3z) < 2.4e-21 absolute, with
     S = 1 − 2erfc(z) dropping 2erfc(3z) < 5e-21), and below GAUSS_SWITCH =
     0.006 the free Gaussian alone (the images' mass, ≤ 2erfc(z) < 1.4e-19;
     a cube of half-width 10 spreads √(2DT), the widest a leap uses, puts its
     horizon T at s = 0.005).
   The eigen sums are evaluated without cancellation in the tails: the modes'
   e^{−λ_k s} by the recurrence c_{k+1} = c_k·r^{k+1}, r = e^{−2π² s}, and
   sin((2k+1)β), cos((2k+1)β) (β = φ/2) by Reinsch's difference form of the
   Chebyshev recurrence (d += λ y; y += d with λ = −4 sin²β), which stays
   accurate for small β where 2cos φ would lose it.

3. The cube.  The three coordinates of 3-D Brownian motion are independent
   1-D Brownian motions, and the cube (−a, a)³ is the product of three
   intervals, so "still inside at t" is the intersection of three independent
   events: P(T_cube > t) = S(s)³.  The exit time T_cube = min(T_x, T_y, T_z)
   of three i.i.d. axis exit times is therefore sampled by inverting
   S(s)³ = u (``cube_exit_time``); the axis that exits is each with
   probability 1/3 and its end ±a with probability ½.  The other two
   coordinates: the event {the x axis exits first, at t} is {T_x = t} ∩
   {T_y > t} ∩ {T_z > t}, and the y-path is independent of the x- and
   z-paths, so given it Y(t) has the law of a 1-D path given only T_y > t:
   density p(y, s)/S(s), independently of Z(t).  T_cube is a stopping time,
   so by the strong Markov property the walk then restarts afresh from the
   exit point.  ``interval_position(u, s)`` samples it
   by inversion; with three uniforms it also places all three coordinates at
   a horizon that comes before the exit.

4. Inversion, and the error bounds.  Each function is a pure function of its
   arguments.  The inverses use Halley's iteration (cubic convergence; the
   function and two derivatives come from the same sums) from an asymptotic
   first guess, inside a bracket that every evaluation narrows, with a
   bisection step wherever Halley would leave it: at most MAX_ITER = 60
   steps, done after a Halley step below STOP = 1e-7 relative (the error it
   leaves is ~ step³ ≈ 1e-21).  Typical counts: 2–3 evaluations.  The same
   operations in the same order run in the C++ twin; they use only +, −, ×,
   ÷, sqrt and libm's exp, log, sin, cos, erfc, so the host harness matches
   bit for bit (and so do Numba and plain Python, which call the same libm).
   * ``interval_survival(s)``: relative error ≤ 4ε(1 + π²s/4), ε = 2^-52 (a
     few roundings, and the argument's own rounding amplified by e^{−π²s/4};
     truncation below 1e-20).
   * ``cube_exit_time(u)``: solves E(s) = −ln S(s) = −ln(u)/3: in s above
     the switch (E is convex there; first guess the upper bound
     s = (E + ln(4/π))/(π²/4)) and in w = 1/s below it,
     on ln E (nearly linear in w: E ≈ 2erfc(√w/2)), starting from the
     asymptotic inverse of erfc.  Computed −ln(1 − Q) uses log's own
     rounding twice (Goldberg's log1p), so E is relatively accurate even for u
     near 1.  The result is the exact root for some u' with |u'/u − 1| below
     a few 1e-16.  In ulps of s, against 40-digit mpmath at ~500 points: ≤ 3.2
     below the switch, ≤ 7.4 above it, the largest next to it, where E ≈ 0.05
     is a difference of terms ≈ 0.25 and s moves with E/(s E') ≈ 1/3 of E's
     relative error.
   * ``interval_position(u, s)``: solves ln H = ln(a·S), a = min(u, 1 − u)
     (the tail mass on the side of u), in φ (modes) or t = ξz (images), so
     tails keep relative precision.  The result is the exact quantile of some
     u' with |u' − u| ≤ 3e-16 (absolute), and relative to a in the tails down
     to what the double ξ can resolve next to ±1 (the image form of H also
     cancels there).

5. The ball.  A vesicle starts at the centre of a ball of radius R; now
   x = X/R, r = |x| and s = D t/R².  The density of surviving paths p(r, s)
   is radial, and v = r·p turns ∂_s p = Δp = p_rr + (2/r) p_r into the 1-D
   ∂_s v = v_rr on (0, 1), with v(0) = 0 (p is finite) and v(1) = 0: the
   interval problem again, in r.  The radial Dirichlet eigenfunctions are
   φ_n = sin(nπr)/(r√(2π)) (∫φ_n² dV = 1), λ_n = n²π², φ_n(0) = nπ/√(2π), so

       p(r, s) = Σ_{n≥1} (n/2) sin(nπr)/r · e^{−n²π² s}                     (eigen)

   Images: v's odd extension to (−1, 1), zero at ±1, is 2-periodic
   (v(2 − r) = −v(r) = v(−r)), so v = Σ_{n∈Z} v0(r − 2n) with v0 = r·p_free,
   p_free = (4πs)^{−3/2} e^{−r²/(4s)} (v0 is odd: the sum is zero at ±1, terms
   n and 1 − n cancel there), i.e.

       p/p_free = Σ_{n∈Z} (1 − 2n/r) e^{−n(n−r)/s}                            (images)
                = 1 + Σ_{n≥1} e^{−n²/s} [2cosh(nr/s) − (4n/r) sinh(nr/s)]

   (terms n and −n paired, so r → 0 is a limit, not a cancellation).  With
   ∫_0^1 4πr²·(n/2) sin(nπr)/r dr = 2(−1)^{n+1} and the Laplace transform
   E e^{−λT} = √λ/sinh√λ = 2√λ Σ_{m≥0} e^{−(2m+1)√λ} (u = E_x e^{−λT} solves
   Δu = λu, u = 1 on the sphere: u = sinh(√λ r)/(r sinh√λ)), inverted term by
   term, the survival is

       S(s) = 2 Σ_{n≥1} (−1)^{n+1} e^{−n²π² s}
            = 1 − (2/√(πs)) Σ_{m≥0} e^{−(2m+1)²/(4s)}

   (Poisson partners again), and with x = e^{−π² s} the eigen form is a
   lacunary power series, S = 2P(x), P(x) = x − x⁴ + x⁹ − x¹⁶ + …  The mean
   exit time is ∫_0^∞ S ds = (2/π²) Σ (−1)^{n+1}/n² = 1/6, i.e. R²/(6D)
   (against 0.225 a²/D for the inscribed cube, a = R/√3: leaps 2.2× longer),
   and the exit point is uniform on the sphere (the problem is isotropic;
   its direction is independent of T).  The mass beyond radius ξ, from
   ∫ r sin(kr) dr = sin(kr)/k² − r cos(kr)/k, is
   H(ξ) = 2 Σ e^{−n²π²s} [(−1)^{n+1} + ξ cos(nπξ) − sin(nπξ)/(nπ)]
   (H(0) = S; the tests check the sampler's radii against 1 − H/S).

6. The ball: which form where, the inversion, the error bounds.
   * ``ball_survival(s)``: images below BALL_SWITCH = 0.1 with m = 0, 1 (the
     first dropped term is e^{−6/s} < e^{−60} = 8.8e-27 of the first; the
     second is q⁹ = q·(q⁴)², q = e^{−1/(4s)}, within 10ε of a term < e^{−20}
     of the sum); modes from 0.1 on, the terms x^{n²−1} relative to the first
     summed while ≥ MODE_CUTOFF = 1e-20 (n ≤ 6 at s = 0.1), so the dropped
     alternating tail is < 1e-20 of the sum.  Relative error ≤ 4ε(1 + π² s)
     (the argument's rounding amplified by e^{−π² s}, as for the interval).
   * ``ball_exit_time(u)``: the root of S(s) = u, chosen by u against
     BALL_U_SWITCH = S(0.1) = 0.70710…  Rather than E(s) = −ln S = −ln u in s
     (the cube's way), each regime solves the equation whose round-off is
     smallest, with the safeguarded Halley step ``_halley``:
     - u > BALL_U_SWITCH (s < 0.1): there 1 − u is exact (Sterbenz) and is
       the image sum, so in y = 1/(4s): y − ½ ln y − ln(1 + e^{−8y}) = L,
       L = ln(4/√π) − ln(1 − u) (ln(1 + e) taken as e(1 − e/2), an error
       < e³/3 < 1e-21 for y ≥ 2); f' ≥ 0.75, bracket [2, 2L], first guess
       y ≈ L + ½ ln L + ln L/(4L), the asymptotic root of y = L + ½ ln y.
     - u ≤ BALL_U_SWITCH: P(x) = u/2 in x = e^{−π² s}, a polynomial (no
       exp or log in the loop), increasing on the bracket [u/2, ½]
       (P(x) ≤ x; 2P(½) = 0.879 > u), first guess the series reversion
       x ≈ v + v⁴ + 4v⁷ − v⁹ + 22v¹⁰ (v = u/2), then s = −ln x/π², whose
       relative error is that of x over |ln x| ≥ 0.98.  Below
       BALL_U_TINY = 2⁻²⁴, x = u/2 to (u/2)³ < 3e-23 relative:
       s = (ln 2 − ln u)/π² directly (u/2 would underflow for the least u).
     Typical counts: 1–2 evaluations (modes), 2 (images).  In ulps of
     s, against 40-digit mpmath at 500 quantiles: ≤ 2.2 (images), ≤ 2.7
     (modes).  In Numba a call costs less than cube_exit_time's (the modes'
     loop is a polynomial, one log after it; tests/test_firstpassage.py run
     as a script prints both).

7. The ball: the position at a horizon s given survival, by exact rejection.
   The target density is p(x, s)/S(s) on the ball.  Rejection sampling
   (von Neumann) from a proposal density g with acceptance a = c·p/g ≤ 1
   returns exactly the density ∝ p, at the acceptance rate c·S.
   * s < HORIZON_SWITCH = 0.19: g = the free Gaussian N(0, 2s I),
     a = p/p_free from the images.  a ≤ 1 because p_free − p is the density
     of the free paths that left the ball before s (≥ 0); a ≥ 0, and a = 0
     at r ≥ 1 (the sum vanishes at r = 1; outside it is set to 0).  Rate:
     S(s) > S(0.19) = 0.3055.  Pairs n = 1, 2, 3 (pair n is at most
     2e^{−n(n−1)/s}(1 + 2n²/s): n = 4 < 1.3e-25 for s < 0.19); the factors
     e^{−n(n∓r)/s} and e^{−n²/s} by recurrence from three exps; in the
     paired form (4n/r) sinh(nr/s) = (4n²/s)·sinh(x)/x, x = nr/s, with
     sinh(x)/x by its Taylor series below SHC_SWITCH = 0.5 (error < 5e-17)
     and as the difference of the two exponentials above (cancelling by at
     most coth ½ ≈ 2.2), so a is continuous at r → 0, where it tends to
     1 + Σ e^{−n²/s}(2 − 4n²/s).  Absolute error a few ε (each exponential's
     argument rounding costs ε·x e^{−x} ≤ ε/e).  Below HORIZON_TINY = 1e-18
     the sum is 1.0 in doubles for every r < 1 (e^{−(1−r)/s} ≤ e^{−111}).
   * s ≥ HORIZON_SWITCH: g uniform in the ball, a = p(r)/p(0) from the modes:
     a = (sin θ/θ) Σ n U_{n−1}(cos θ) c_n / Σ n² c_n, θ = πr, c_n = x^{n²−1},
     with sin(nθ)/sin θ = U_{n−1}(cos θ) by the Chebyshev recurrence (no
     division by a vanishing r; a(0) = 1 exactly).  a ≤ 1 term by term:
     |sin nθ| ≤ n|sin θ| ≤ nθ, so n·sin(nπr)/(πr) ≤ n², with c_n > 0.  Terms
     while n² c_n ≥ 1e-20 (n ≤ 5 at s = 0.19).  Rate: S/((4π/3)·p(0, s)),
     p(0, s) = (π/2) Σ n² e^{−n²π² s}: 0.2986 at s = 0.19, rising to 3/π² =
     0.304 as s → ∞.
   The switch 0.19 sits next to where the two rates cross (s = 0.1922,
   both 0.299), so every s > 0 accepts ≥ 29.8 % of proposals.  The kernels
   draw the proposals (leap.py); ``ball_horizon_uniform(s)`` says which.

Sources: the series are the textbook solutions of the diffusion equation on an
interval (Carslaw & Jaeger, Conduction of Heat in Solids, §3.3; Feller, vol. 2,
§X.5 for the theta identity) and in a sphere (Carslaw & Jaeger, ch. IX, the
sphere with zero surface temperature, through v = r·p); cubic protective
domains sampled axis by axis follow Donev et al., J. Comput. Phys. 229, 3214
(2010), after Oppelstrup et al., Phys. Rev. Lett. 97, 230602 (2006), whose
first-passage kinetic Monte Carlo also uses spheres; jumping to a uniform point
of the largest sphere around the walker is the walk on spheres (M. E. Muller,
Ann. Math. Statist. 27, 569 (1956)).  Rejection sampling: J. von Neumann,
"Various techniques used in connection with random digits" (1951).  Reinsch's
modification of the trigonometric recurrence: Stoer & Bulirsch, Introduction
to Numerical Analysis, §2.3.  Goldberg's log1p: D. Goldberg, "What every
computer scientist should know about floating-point arithmetic" (1991),
Theorem 4.
"""
import math

from .jit import njit

# Constants correctly rounded (not computed from the rounded math.pi)
PI_2 = 1.5707963267948966               # π/2
PI2_4 = 2.4674011002723395              # π²/4 = λ_0
PI2 = 9.869604401089358                 # π²
PI4 = 97.40909103400244                 # π⁴
TWO_PI2 = 19.739208802178716            # 2π²: r = e^{−2π² s}
FOUR_OVER_PI = 1.2732395447351628       # 4/π
TWO_OVER_PI = 0.6366197723675814        # 2/π
LN_FOUR_OVER_PI = 0.24156447527049044   # ln(4/π)
INV_SQRT_PI = 0.5641895835477563        # 1/√π
LN_TWO_OVER_SQRT_PI = 0.12078223763524522  # ln(2/√π)
SQRT_HALF = 0.7071067811865476          # 1/√2

S_SWITCH = 0.1        # survival, exit time: images below, modes from here on
X_SWITCH = 0.05       # position: images below, modes from here on
GAUSS_SWITCH = 0.006  # position: the free Gaussian below (images < 1.4e-19)
MODE_CUTOFF = 1e-20   # modes summed while e^{−(λ_k − λ_0)s} ≥ this
MAX_MODES = 16        # never reached for s ≥ X_SWITCH (k ≤ 9 there)
MAX_ITER = 60         # Halley/bisection steps at most
STOP = 1e-7           # done after a Halley step below STOP (relative): the
                      # error left is ~ (step)³, far below round-off
# E(S_SWITCH) = −ln S(0.1) by the mode sum (PI2_4·s − LN_FOUR_OVER_PI − ln A):
# cube_exit_time's regime switch
E_SWITCH = 0.05202475901682888

# A&S 26.2.23: normal quantile to 4.5e-4, the image regime's first guess
QC0, QC1, QC2 = 2.515517, 0.802853, 0.010328
QD1, QD2, QD3 = 1.432788, 0.189269, 0.001308


@njit(cache=True)
def _mode_sums(s):
    """(A, B, C) = Σ_k (−1)^k (1, k(k+1), k²(k+1)²)·c_k/(2k+1), c_k =
    e^{−π² s k(k+1)}: S = (4/π) e^{−π² s/4} A, A' = −π² B, A'' = π⁴ C."""
    r = math.exp(-TWO_PI2 * s)
    a = 1.0
    b = 0.0
    cc = 0.0
    c = 1.0
    ratio = 1.0
    sign = 1.0
    for k in range(1, MAX_MODES):
        ratio = ratio * r
        c = c * ratio
        if c < MODE_CUTOFF:
            break
        sign = -sign
        term = sign * c / (2.0 * k + 1.0)
        kk = k * (k + 1.0)
        a = a + term
        b = b + kk * term
        cc = cc + (kk * kk) * term
    return a, b, cc


@njit(cache=True)
def interval_survival(s):
    """Probability that 1-D Brownian motion started at the centre of (−a, a)
    is still inside at dimensionless time s = D t/a² (1 for s ≤ 0)."""
    if not s > 0.0:
        return 1.0
    if s < S_SWITCH:
        z = 0.5 / math.sqrt(s)
        return 1.0 - 2.0 * (math.erfc(z) - math.erfc(3.0 * z))
    a, b, c = _mode_sums(s)
    return FOUR_OVER_PI * math.exp(-PI2_4 * s) * a


@njit(cache=True)
def _neg_log1m(q):
    """−ln(1 − q) for 0 ≤ q < 1, relatively accurate for small q (Goldberg)."""
    w = 1.0 - q
    if w == 1.0:
        return q
    return q * math.log(w) / (w - 1.0)


@njit(cache=True)
def _halley(x, f, f1, f2, lo, hi, floor):
    """One safeguarded Halley step on a monotone f (f1's sign tells which way)
    with f, f', f'' = f, f1, f2 at x: the bracket [lo, hi] narrowed by x, then
    x − 2 f f1/(2 f1² − f f2), or the bracket's midpoint where that leaves it.
    Returns (next x, lo, hi, done): done after a Halley step below
    STOP·(x + floor)."""
    if (f > 0.0) == (f1 > 0.0):
        hi = x
    else:
        lo = x
    xn = x - 2.0 * f * f1 / (2.0 * f1 * f1 - f * f2)
    if xn >= lo and xn <= hi:
        return xn, lo, hi, abs(xn - x) <= STOP * (xn + floor)
    return 0.5 * (lo + hi), lo, hi, False


@njit(cache=True)
def cube_exit_time(u):
    """The dimensionless s with interval_survival(s)³ = u for u in (0, 1):
    the exit time from a cube of half-width a is s·a²/D (0 for u ≥ 1,
    inf for u ≤ 0)."""
    if not u < 1.0:
        return 0.0
    if not u > 0.0:
        return math.inf
    target = -math.log(u) / 3.0          # E(s) = −ln S(s) at the root
    if target >= E_SWITCH:
        # modes, in s: E = π²s/4 − ln(4/π) − ln A, convex; E ≥ π²s/4 − ln(4/π)
        lo = S_SWITCH
        hi = (target + LN_FOUR_OVER_PI) / PI2_4
        x = hi
        for it in range(MAX_ITER):
            a, b, c = _mode_sums(x)
            ba = b / a
            f = PI2_4 * x - LN_FOUR_OVER_PI - math.log(a) - target
            f1 = PI2_4 + PI2 * ba
            f2 = PI4 * (ba * ba - c / a)
            x, lo, hi, done = _halley(x, f, f1, f2, lo, hi, 0.0)
            if done:
                break
        return x
    # images, in w = 1/s = 4z²: ln E(w) − ln(target), E decreasing in w, with
    # E ≈ Q = 2(erfc(z) − erfc(3z)); E(z0) < target at z0² = ln(2/(√π target))
    # (erfc(z) < e^{−z²}/(z√π)), so w < 4z0²
    lt = math.log(target)
    z0sq = LN_TWO_OVER_SQRT_PI - lt
    lo = 1.0 / S_SWITCH
    hi = 4.0 * z0sq
    x = 4.0 * (z0sq - 0.5 * math.log(z0sq))     # one fixed-point step of z² + ln z
    if not (x > lo and x < hi):
        x = 0.5 * (lo + hi)
    for it in range(MAX_ITER):
        z = 0.5 * math.sqrt(x)
        zz = z * z
        e1 = math.exp(-zz)
        e9 = math.exp(-9.0 * zz)
        q = 2.0 * (math.erfc(z) - math.erfc(3.0 * z))
        e = _neg_log1m(q)
        m = 1.0 - q
        k = INV_SQRT_PI / (2.0 * z)
        qw = -k * (e1 - 3.0 * e9)                                        # dQ/dw
        qww = -k * (-2.0 * e1 + 54.0 * e9 - (e1 - 3.0 * e9) / zz) / 8.0    # d²Q/dw²
        ew = qw / m
        eww = qww / m + ew * ew
        f = math.log(e) - lt
        f1 = ew / e
        f2 = eww / e - f1 * f1
        x, lo, hi, done = _halley(x, f, f1, f2, lo, hi, 0.0)
        if done:
            break
    return 1.0 / x


@njit(cache=True)
def _asin_series(v):
    """asin(v) for 0 ≤ v ≤ ½ by its Taylor series to v⁹ (error < 1.2e-5)."""
    v2 = v * v
    return v * (1.0 + v2 * (1.0 / 6.0 + v2 * (0.075 + v2 * (5.0 / 112.0 + v2 * (35.0 / 1152.0)))))


@njit(cache=True)
def _mode_guess(v2, r):
    """First guess of φ with h(φ) = v2 (≤ ½): the first mode's root β0 =
    asin(√v2) (for √v2 > ½ as π/2 − 2 asin(√((1 − √v2)/2))), moved by one
    Newton step for the second mode, −(c1/3) sin²3β: β0 + (c1/6) sin β0
    (3 − 4 v2)²/cos β0, c1 = r.  Error ~ c1² + 1e-5."""
    sb = math.sqrt(v2)
    if sb <= 0.5:
        b0 = _asin_series(sb)
    else:
        b0 = PI_2 - 2.0 * _asin_series(math.sqrt(0.5 * (1.0 - sb)))
    w = 3.0 - 4.0 * v2
    return 2.0 * (b0 + r / 6.0 * sb * (w * w) / math.sqrt(1.0 - v2))


@njit(cache=True)
def _mode_tail(phi, r):
    """(h, p, p') at φ: h = Σ_k (−1)^k c_k sin²((2k+1)φ/2)/(2k+1) = H·(π/4)
    e^{π² s/4}, p = 2 dh/dφ = Σ_k (−1)^k c_k sin((2k+1)φ) and its derivative
    Σ_k (−1)^k c_k (2k+1) cos((2k+1)φ); r = e^{−2π² s}."""
    sb = math.sin(0.5 * phi)
    cb = math.cos(0.5 * phi)
    lam = -4.0 * sb * sb
    ys = sb          # sin((2k+1)β), Reinsch: ds += λ·ys, ys += ds
    ds = 2.0 * sb
    yc = cb          # cos((2k+1)β)
    dc = 0.0
    h = sb * sb
    p = 2.0 * sb * cb
    dp = cb * cb - sb * sb
    c = 1.0
    ratio = 1.0
    sign = 1.0
    for k in range(1, MAX_MODES):
        ratio = ratio * r
        c = c * ratio
        if c < MODE_CUTOFF:
            break
        ds = ds + lam * ys
        ys = ys + ds
        dc = dc + lam * yc
        yc = yc + dc
        sign = -sign
        sc = sign * c
        odd = 2.0 * k + 1.0
        h = h + sc * (ys * ys) / odd
        p = p + sc * (2.0 * ys * yc)
        dp = dp + sc * odd * (yc * yc - ys * ys)
    return h, p, dp


@njit(cache=True)
def _mode_position(a, s):
    """|ξ| ≥ 0 with mass a·S beyond it (modes, s ≥ X_SWITCH), by Halley in
    φ = π(1 − ξ)/2 on ln h(φ) = ln(a·A)."""
    r = math.exp(-TWO_PI2 * s)
    amp, b, c = _mode_sums(s)
    lt = math.log(a * amp)            # H = a·S  <=>  h = a·A
    lo = 0.0
    hi = PI_2
    x = _mode_guess(a * amp, r)
    if x > hi:
        x = hi
    for it in range(MAX_ITER):
        h, p, dp = _mode_tail(x, r)
        if h > 0.0 and p > 0.0:
            f = math.log(h) - lt
            f1 = 0.5 * p / h                 # d ln h/dφ
            f2 = 0.5 * dp / h - f1 * f1
            x, lo, hi, done = _halley(x, f, f1, f2, lo, hi, 0.0)
            if done:
                break
        else:                                 # φ so small that h underflowed
            lo = x
            x = 0.5 * (lo + hi)
    return 1.0 - TWO_OVER_PI * x


@njit(cache=True)
def _image_position(a, s):
    """|ξ| ≥ 0 with mass a·S beyond it (images, s < X_SWITCH), by Halley in
    t = ξz on ln H(t) = ln(a·S)."""
    z = 0.5 / math.sqrt(s)
    images = s >= GAUSS_SWITCH
    if images:
        ez = math.erfc(z)
        lt = math.log(a * (1.0 - 2.0 * ez))
    else:
        ez = 0.0
        lt = math.log(a)
    # first guess: the normal quantile of a (A&S 26.2.23), over √2
    eta = math.sqrt(-2.0 * math.log(a))
    x = (eta - (QC0 + eta * (QC1 + eta * QC2)) / (1.0 + eta * (QD1 + eta * (QD2 + eta * QD3)))) * SQRT_HALF
    lo = 0.0
    hi = z
    if x < lo:
        x = lo
    if x > hi:
        x = 0.5 * hi
    for it in range(MAX_ITER):
        h = 0.5 * math.erfc(x)
        g = math.exp(-x * x)                 # √π·(−dH/dt)
        dg = -2.0 * x * g
        if images:
            zm = 2.0 * z - x
            zp = 2.0 * z + x
            em = math.exp(-zm * zm)
            ep = math.exp(-zp * zp)
            h = h + 0.5 * (math.erfc(zm) - math.erfc(zp)) - ez
            g = g - em - ep
            dg = dg - 2.0 * zm * em + 2.0 * zp * ep
        if h > 0.0 and g > 0.0:
            f = math.log(h) - lt
            f1 = -INV_SQRT_PI * g / h        # d ln H/dt
            f2 = -INV_SQRT_PI * dg / h - f1 * f1
            x, lo, hi, done = _halley(x, f, f1, f2, lo, hi, 1.0)
            if done:
                break
        else:                                 # so far out that H underflowed
            hi = x
            x = 0.5 * (lo + hi)
    return x / z


@njit(cache=True)
def interval_position(u, s):
    """ξ in (−1, 1): the u-quantile of X(t)/a at dimensionless time s given
    that X, started at the centre, has not left (−a, a) by then (0 for s ≤ 0)."""
    if not s > 0.0:
        return 0.0
    if u < 0.5:
        a = u
        sign = -1.0
    else:
        a = 1.0 - u
        sign = 1.0
    if not a > 0.0:
        return sign
    if s >= X_SWITCH:
        return sign * _mode_position(a, s)
    return sign * _image_position(a, s)


# -- the ball ---------------------------------------------------------------------
PI = 3.141592653589793                   # π
LN_TWO = 0.6931471805599453              # ln 2
FOUR_OVER_SQRT_PI = 2.256758334191025    # 4/√π
LN_FOUR_OVER_SQRT_PI = 0.8139294181951905  # ln(4/√π)

BALL_SWITCH = 0.1     # survival, exit time: images below, modes from here on
# S_ball at the double BALL_SWITCH, correctly rounded (40-digit sums of both series):
# ball_exit_time's regime switch (images for u above it)
BALL_U_SWITCH = 0.707100348157759
BALL_Y_LO = 2.0       # exit time, images: bracket 1/(4s) ≥ 2 (s ≤ ⅛; the first
                      # dropped image there is e^{−48} ≈ 1.4e-21 of 1 − S)
BALL_X_HI = 0.5       # exit time, modes: bracket e^{−π² s} ≤ ½ (2P(½) = 0.879 > u)
BALL_U_TINY = 2.0 ** -24  # below: e^{−π² s} = u/2 exactly (next term (u/2)³ < 3e-23)
MAX_BALL_MODES = 12   # never reached for e^{−π² s} ≤ ½ (n ≤ 9 there)
HORIZON_SWITCH = 0.19  # horizon: free-Gaussian proposal below, uniform from here on
HORIZON_TINY = 1e-18  # horizon below: the acceptance is 1.0 in doubles for every r < 1
IMAGE_PAIRS = 3       # horizon, images: n = ±1, ±2, ±3 (±4 < 1.3e-25 for s < 0.19)
SHC_SWITCH = 0.5      # sinh(x)/x by its series below (7 terms, error < 5e-17)


@njit(cache=True)
def _ball_modes(x):
    """(A, B, C) = Σ_{n≥1} (−1)^{n+1} (1, n², n²(n²−1))·x^{n²−1} for
    x = e^{−π² s}: S = 2xA, and with P(x) = xA: P' = B, x·P'' = C.  Summed
    while x^{n²−1} ≥ MODE_CUTOFF (the dropped tail alternates and falls)."""
    x2 = x * x
    ratio = x
    c = 1.0
    a = 1.0
    b = 1.0
    cc = 0.0
    sign = 1.0
    for n in range(2, MAX_BALL_MODES):
        ratio = ratio * x2          # x^{2n−1}
        c = c * ratio               # x^{n²−1}
        if c < MODE_CUTOFF:
            break
        sign = -sign
        term = sign * c
        nn = n * n * 1.0
        a = a + term
        b = b + nn * term
        cc = cc + (nn * (nn - 1.0)) * term
    return a, b, cc


@njit(cache=True)
def ball_survival(s):
    """Probability that Brownian motion started at the centre of a ball of
    radius R is still inside at dimensionless time s = D t/R² (1 for s ≤ 0)."""
    if not s > 0.0:
        return 1.0
    if s < BALL_SWITCH:
        y = 0.25 / s
        q = math.exp(-y)
        q2 = q * q
        q4 = q2 * q2
        return 1.0 - FOUR_OVER_SQRT_PI * math.sqrt(y) * q * (1.0 + q4 * q4)
    x = math.exp(-PI2 * s)
    a, b, c = _ball_modes(x)
    return 2.0 * x * a


@njit(cache=True)
def ball_exit_time(u):
    """The dimensionless s with ball_survival(s) = u for u in (0, 1): the exit
    time from a ball of radius R is s·R²/D (0 for u ≥ 1, inf for u ≤ 0)."""
    if not u < 1.0:
        return 0.0
    if not u > 0.0:
        return math.inf
    if u > BALL_U_SWITCH:
        # images, in y = 1/(4s): ln(1 − S) = ln(4/√π) + ½ ln y − y + ln(1 + e^{−8y});
        # 1 − u is exact here (Sterbenz), so solve y − ½ ln y − ln(1 + e^{−8y}) = L
        big_l = LN_FOUR_OVER_SQRT_PI - math.log(1.0 - u)
        ll = math.log(big_l)
        x = big_l + 0.5 * ll + 0.25 * ll / big_l      # y = L + ½ ln y, asymptotically
        lo = BALL_Y_LO
        hi = 2.0 * big_l
        if not (x > lo and x < hi):
            x = 0.5 * (lo + hi)
        for it in range(MAX_ITER):
            e8 = math.exp(-8.0 * x)
            f = x - 0.5 * math.log(x) - e8 * (1.0 - 0.5 * e8) - big_l
            f1 = 1.0 - 0.5 / x + 8.0 * e8
            f2 = 0.5 / (x * x) - 64.0 * e8
            x, lo, hi, done = _halley(x, f, f1, f2, lo, hi, 0.0)
            if done:
                break
        return 0.25 / x
    if u < BALL_U_TINY:
        return (LN_TWO - math.log(u)) / PI2
    # modes, in x = e^{−π² s}: P(x) = x − x⁴ + x⁹ − … = u/2, P increasing on
    # (0, ½]; P(v) ≤ v, so the root is ≥ v = u/2; first guess from x = v + x⁴ − x⁹
    v = 0.5 * u
    v3 = v * v * v
    x = v + v * v3 * (1.0 + v3 * (4.0 + v * v * (22.0 * v - 1.0)))
    lo = v
    hi = BALL_X_HI
    if not (x >= lo and x < hi):
        x = 0.5 * (lo + hi)
    for it in range(MAX_ITER):
        a, b, c = _ball_modes(x)
        f = x * a - v
        x, lo, hi, done = _halley(x, f, b, c / x, lo, hi, 0.0)
        if done:
            break
    return -math.log(x) / PI2


@njit(cache=True)
def ball_horizon_uniform(s):
    """Which proposal the horizon sampler uses at s: True = uniform in the
    ball, False = the free Gaussian N(0, 2s I)."""
    return s >= HORIZON_SWITCH


@njit(cache=True)
def _sinhc(x):
    """sinh(x)/x for 0 ≤ x < SHC_SWITCH by its Taylor series to x¹² (error < 5e-17)."""
    x2 = x * x
    return 1.0 + x2 * (1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (1.0 / 5040.0 + x2 * (
        1.0 / 362880.0 + x2 * (1.0 / 39916800.0 + x2 * (1.0 / 6227020800.0))))))


@njit(cache=True)
def ball_horizon_accept(r, s):
    """Acceptance probability, in [0, 1] to round-off, of a proposal at radius
    r ≥ 0 (of the unit ball) for the position at time s given survival:
    p_ball/p_free for the Gaussian proposal (s < HORIZON_SWITCH),
    p_ball(r)/p_ball(0) for the uniform one; 0 for r ≥ 1."""
    if not r < 1.0:
        return 0.0
    if not s >= HORIZON_TINY:
        return 1.0
    if s >= HORIZON_SWITCH:
        # modes: Σ n sin(nπr)/(πr)·c_n / Σ n² c_n, c_n = x^{n²−1};
        # sin(nθ)/sin θ = U_{n−1}(cos θ) by its recurrence
        x = math.exp(-PI2 * s)
        th = PI * r
        sn = math.sin(th)
        cs = math.cos(th)
        two_cs = 2.0 * cs
        u_prev = 1.0               # U_{n−2}
        u_cur = two_cs             # U_{n−1}, n = 2
        x2 = x * x
        ratio = x
        c = 1.0
        num = 1.0
        den = 1.0
        for n in range(2, MAX_BALL_MODES):
            ratio = ratio * x2
            c = c * ratio
            nn = n * n * 1.0
            if nn * c < MODE_CUTOFF:
                break
            num = num + (n * u_cur) * c
            den = den + nn * c
            u_next = two_cs * u_cur - u_prev
            u_prev = u_cur
            u_cur = u_next
        sinc = 1.0
        if th > 0.0:
            sinc = sn / th
        return sinc * num / den
    # images: 1 + Σ_{n≥1} e^{−n²/s}[2cosh(nr/s) − (4n/r) sinh(nr/s)], with
    # am, ap = e^{−n(n∓r)/s} and gn = e^{−n²/s} by recurrence from n = 1
    inv_s = 1.0 / s
    g = math.exp(-inv_s)
    am1 = math.exp(-(1.0 - r) * inv_s)
    ap1 = math.exp(-(1.0 + r) * inv_s)
    g2 = g * g
    am = am1
    ap = ap1
    gn = g
    g2n = g2                      # g^{2n}
    acc = 1.0
    for n in range(1, IMAGE_PAIRS + 1):
        xn = n * r * inv_s
        if xn < SHC_SWITCH:       # (4n/r) sinh(nr/s) = (4n²/s) sinh(x)/x
            term = (am + ap) - (4.0 * n * n) * inv_s * gn * _sinhc(xn)
        else:
            term = (am + ap) - (2.0 * n / r) * (am - ap)
        acc = acc + term
        am = am * am1 * g2n
        ap = ap * ap1 * g2n
        gn = gn * g2n * g
        g2n = g2n * g2
    return acc
