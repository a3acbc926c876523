"""Surface reaction probabilities for exodiff's contact scheme.

Contacts are detected at the end of a step *and* within it (Brownian-bridge
test against the tangent plane).  A step that starts at distance x from a flat
reactive wall touches it with probability erfc(x/√(4 D dt)), so a uniform
concentration c makes 2c√(D dt/π) contacts per unit area per step.  Binding
each with probability P gives the Robin flux κc when

    P = κ √(π dt / D) / 2                                    (1)

(DESIGN §1; half of Erban & Chapman's 2007 value, which counts end-of-step
crossings only).  With unbinding placement drawn from the density of the
starting points of binding steps (see ``unbind_distance``), (1) satisfies
detailed balance exactly on a flat wall, so the reversible equilibrium
bound/free = κA/(k_off V) holds at any dt.
"""
import math

import numba


@numba.njit(cache=True)
def binding_probability(kappa, diffusion, dt, radius):
    """P per detected contact for reactivity kappa [µm/s] (inf = every contact
    binds), vesicle diffusion [µm²/s], step dt [s] and contact radius [µm]
    (R_cell + r_vesicle; inf for a flat face); clipped to [0, 1]."""
    if kappa <= 0.0:
        return 0.0
    if math.isinf(kappa):
        return 1.0
    p = 0.5 * kappa * math.sqrt(math.pi * dt / diffusion)
    return p if p < 1.0 else 1.0


@numba.njit(cache=True)
def unbind_distance(u, v, diffusion, dt, radius):
    """Distance [µm] outside contact at which an unbound vesicle is placed.

    Detailed balance with the contact scheme asks for the density of starting
    points of binding steps, ∝ erfc(x/a) with a = √(4 D dt).  That is the law
    of U·a·√(−ln V) for independent uniforms U, V in (0, 1]: a uniform
    fraction of a Rayleigh variable (its density ∫_x^∞ f_R(y)/y dy ∝ erfc(x/a)).
    radius [µm] is the contact radius (unused at this order)."""
    return u * math.sqrt(4.0 * diffusion * dt) * math.sqrt(-math.log(v))
