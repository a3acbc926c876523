"""Surface reaction probabilities for exodiff's contact scheme.

The scheme (``step_numba.advance_block``): a free vesicle takes a Gaussian
step of rms length s = √(2 D dt) per axis; it *contacts* a surface when the
end point lies within contact (distance ≤ 0) or, ending outside, with the
Brownian-bridge probability exp(−d0·d1/(D dt)) for start and end distances
d0, d1 (for a cell, radial distances, i.e. the tangent plane); a contact
binds with probability P, otherwise an end point inside is mirrored.  The
continuum model it must reproduce is the Robin (radiation) boundary
D ∂c/∂n = κc (DESIGN §1, §6).  Below, κ' = κ√(π dt/D)/2 is DESIGN's
leading-order P, a = √(4 D dt) = √2·s and ε = s/R for a contact radius R.

1. Flat wall: the exact one-step kernel.  From a start at distance x the
   density of end points y > 0 that survive is

       K(x, y) = G(y − x) + (1 − 2P)·G(y + x) = (1 − P)·K_refl + P·K_abs,

   G = N(0, s²): ends beyond the wall are mirrored with weight 1 − P, ends on
   the near side survive the bridge test with 1 − P·exp(−xy/(D dt)), and
   G(y − x)·exp(−xy/(D dt)) = G(y + x).  So each step is, with probability
   P, a step of exactly absorbed Brownian motion and otherwise one of exactly
   reflected Brownian motion.  A start at x makes contact with probability
   erfc(x/a), so a uniform concentration c makes c·a/√π contacts per unit
   area per step and P = κ' is the leading order (half of Erban & Chapman's
   2007 κ√(π dt/D), which counts end-of-step crossings only).

2. Flat wall: the exact mapping.  Away from the wall the chain is free
   diffusion, so its long-time kinetics equal the continuum's with the
   Robin length ℓ = D/κ replaced by the extrapolation length ℓ(P) of the
   stationary (Milne) problem  c = K c,  c(x) → x + ℓ  (x → ∞),  whose
   binding flux obeys P ∫ c(x) erfc(x/a) dx = D dt.  Hence

       κ'(P) = (√(2π)/4)·s / ℓ(P).

   A linear profile c = x + ℓ gives κ' = P/(1 − P): the leading-order P makes
   the flux too large by a relative +P, because contacts sample the
   concentration a distance ~a out where it is higher than at the wall.  The
   true profile is depleted within ~s of the wall, and the Nyström solution
   of the Milne problem (``exodiff.validate.milne_flat``) gives
       κ'(P) = P/(1 − P) · r(P),  r rising from 1 to 3π/8 = 1.1781;
   exactly, P = ½ is the random walk absorbed on landing beyond the wall with
   ℓ = −ζ(½)·s/√(2π) = 0.58260 s (Spitzer/Siegmund), and P → 1 gives
   ℓ → (4/3)(1 − P)·s/√(2π).  Small P: κ' = P + 1.1315 P² + O(P³).  The
   inverse is fitted (max relative error 3e-5 on P and on 1 − P) as

       P_flat(κ') = y − y (1 − y) g(y),  y = κ'/(1 + κ'),
       g(y) = y (G1 + G2 y + G3 y² + G4 y³ + G5 y⁴).

   P_flat(∞) = 1: a perfectly absorbing face or cell stays exact, unlike
   Andrews' (2009) tables for the scheme without bridge detection, which
   top out at κ = 0.8586·√(2D/dt) at P = 1.

3. Sphere: curvature.  Because the bridge test uses radial distances and the
   mirror is radial, the scheme outside a sphere of radius R is itself a
   one-dimensional chain in r (kernel: the radial part of the 3-D Gaussian,
   (r0/r)[G(r − r0) − G(r + r0)]), so its steady state with far field
   1 − β R/r is computed exactly the same way (``exodiff.validate.
   milne_sphere``); κ_eff R/D = β/(1 − β).  Relative to the flat wall the
   effective reactivity is larger by Q(P, ε) ≈ 1 + 1.09 ε: shells at distance
   x hold (1 + x/R)² more vesicles than the tangent plane assumes, giving
   1 + (√(2π)/4) ε contacts (the same as exact 3-D first passage,
   (R/r)·erfc(x/a)), and the radial mirror leaves a stationary surplus of
   free vesicles within ~s of a convex surface (+11 % at contact for
   ε = 0.1) that supplies the rest.  Uncorrected, Collins–Kimball uptake at
   κR/D ≤ 1 is 7–12 % too high at s = 0.1 R.  Q is fitted (relative error
   < 3e-4 for ε ≤ 0.1, < 1.2e-3 for ε ≤ 0.5) in y and ε, ε clipped at 0.5:

       Q(y, ε) = 1 + Σ_{i=1..3} Σ_{j=0..2} Q_ij ε^i y^j,

   and P = P_flat(κ'/Q(y, ε)).  Faces (R = ∞) have Q = 1.

4. Unbinding.  A released vesicle is placed at ``unbind_distance`` with the
   density erfc(x/a), that of the starting points of binding steps, so
   binding and release are in detailed balance and a uniform concentration
   stays uniform.  Binding then takes c·P·(a/√π)·Q(0, ε) vesicles per area and
   step, so bound/free = κA/(k_off V) holds only if each unbinding event
   releases the vesicle with probability

       release_fraction = P·Q(0, ε)/κ'   (≤ 1; 1 for κ = 0, 0 for κ = ∞),

   the rest counting as rebinding within the step (the continuum's geminate
   recombination, which the discrete step cannot resolve).  The same factor
   makes releases count right in the far field: a unit source placed with
   density erfc(x/a) raises the far concentration in proportion to the mean
   of the Milne solution c over that density, D dt·√π/(P a), whereas the
   continuum's source at the wall gives c(0) = ℓ = D/κ; the ratio is again
   P/κ' (times Q(0, ε) on a sphere).  On a flat wall this is exact at any dt;
   on a sphere the equilibrium is within 0.15 % for s ≤ 0.1 R
   (``exodiff.validate.reversible_equilibrium_chain``).  Andrews (2009)
   instead fits a placement law for his scheme (no bridge test); here even
   placement at contact would release too much (c(0) > ℓ for every P), so the
   correction has to thin the releases.  κ = ∞ with k_off > 0 is the
   Dirichlet limit: a released vesicle rebinds at once.  The step grid adds
   k_off·dt/2 to bound/free (lifetimes are whole steps, 1 − e^{−k dt} each).

The receptor-capacity factor multiplies P (DESIGN §1) but not the release
fraction; that keeps the Langmuir equilibrium κ(1 − B/B_max)c = k_off B exact.
tests/test_validation.py checks the fits against the stationary solutions
(and Spitzer's constant, 1.1315, 3π/8, the equilibrium); bench/dt_accuracy.py
measures the Collins–Kimball error against dt.

Sources: Erban & Chapman 2007 (Phys Biol 4:16); Andrews 2009 (Phys Biol
6:046015; Smoldyn SurfaceParam.c); Collins & Kimball 1949; Siegmund 1979
(the ζ(½) correction); Brownian-bridge crossing: Andrews & Bray 2004.
"""
import math

from .jit import njit

# P_flat: g(y) = y·(G1 + G2 y + G3 y² + G4 y³ + G5 y⁴)
G1 = 0.132411
G2 = -0.01243801
G3 = 0.08058059
G4 = -0.07661103
G5 = 0.05414042
# Q(y, ε) = 1 + ε(Q10 + Q11 y + Q12 y²) + ε²(Q20 + …) + ε³(Q30 + …)
Q10, Q11, Q12 = 1.08461, -0.0870492, -0.0623989
Q20, Q21, Q22 = -0.253313, 0.12218, -0.101381
Q30, Q31, Q32 = 0.08695, -0.0381854, 0.0528244
# ε = s/R beyond which Q is held constant (the fit's range)
EPS_MAX = 0.5


@njit(cache=True)
def flat_probability(kp):
    """P on a flat wall for κ' = κ√(π dt/D)/2 ≥ 0 (finite): the fitted
    inverse of the Milne-problem mapping κ'(P) (module docstring, item 2)."""
    y = kp / (1.0 + kp)
    g = y * (G1 + y * (G2 + y * (G3 + y * (G4 + y * G5))))
    return y - y * (1.0 - y) * g


@njit(cache=True)
def curvature_factor(y, eps):
    """Q(y, ε): effective reactivity of a sphere over that of a flat wall at
    the same P, for y = κ'/(1 + κ') and ε = s/R (item 3; ε clipped at EPS_MAX)."""
    e = eps if eps < EPS_MAX else EPS_MAX
    return 1.0 + e * ((Q10 + y * (Q11 + y * Q12))
                      + e * ((Q20 + y * (Q21 + y * Q22))
                             + e * (Q30 + y * (Q31 + y * Q32))))


@njit(cache=True)
def binding_probability(kappa, diffusion, dt, radius):
    """P per detected contact for reactivity kappa [µm/s] (inf = every contact
    binds), vesicle diffusion [µm²/s], step dt [s] and contact radius [µm]
    (R_cell + r_vesicle; inf for a flat face):
    P = P_flat(κ'/Q(y, s/R)), κ' = κ√(π dt/D)/2, y = κ'/(1 + κ')."""
    if kappa <= 0.0:
        return 0.0
    if math.isinf(kappa):
        return 1.0
    kp = 0.5 * kappa * math.sqrt(math.pi * dt / diffusion)
    eps = math.sqrt(2.0 * diffusion * dt) / radius
    return flat_probability(kp / curvature_factor(kp / (1.0 + kp), eps))


@njit(cache=True)
def release_fraction(kappa, diffusion, dt, radius):
    """Probability that an unbinding event releases the vesicle (otherwise it
    rebinds within the step): P·Q(0, s/R)/κ' (item 4); 1 for kappa = 0,
    0 for kappa = inf.  Arguments as for ``binding_probability``."""
    if kappa <= 0.0:
        return 1.0
    if math.isinf(kappa):
        return 0.0
    kp = 0.5 * kappa * math.sqrt(math.pi * dt / diffusion)
    eps = math.sqrt(2.0 * diffusion * dt) / radius
    f = binding_probability(kappa, diffusion, dt, radius) * curvature_factor(0.0, eps) / kp
    return f if f < 1.0 else 1.0


@njit(cache=True)
def unbind_distance(u, v, diffusion, dt, radius):
    """Distance [µm] outside contact at which an unbound vesicle is placed.

    Detailed balance with the contact scheme asks for the density of starting
    points of binding steps, ∝ erfc(x/a) with a = √(4 D dt).  That is the law
    of U·a·√(−ln V) for independent uniforms U, V in (0, 1]: a uniform
    fraction of a Rayleigh variable (its density ∫_x^∞ f_R(y)/y dy ∝ erfc(x/a)).
    radius [µm] is the contact radius (unused: on a sphere the erfc law keeps
    the equilibrium within 0.15 % for s ≤ 0.1 R, see item 4)."""
    return u * math.sqrt(4.0 * diffusion * dt) * math.sqrt(-math.log(v))
