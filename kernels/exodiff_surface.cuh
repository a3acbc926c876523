// Surface reaction probabilities: CUDA/C++ twin of kernels/surface.py.
//
// Kept in its own small header so that a change of the formulas in
// surface.py is mirrored here in one place: binding_probability,
// release_fraction, unbind_distance and their helpers and fitted constants.
// Same expressions, same order of operations (the host harness checks them bit
// for bit against Numba); see surface.py for the derivation.
#ifndef EXODIFF_SURFACE_CUH
#define EXODIFF_SURFACE_CUH

#include "exodiff_rng.cuh"  // the host/device qualifiers and <math.h>

namespace exo {

// P_flat: g(y) = y·(G1 + G2 y + G3 y² + G4 y³ + G5 y⁴)  (surface.py, item 2)
constexpr double G1 = 0.132411;
constexpr double G2 = -0.01243801;
constexpr double G3 = 0.08058059;
constexpr double G4 = -0.07661103;
constexpr double G5 = 0.05414042;
// Q(y, ε) = 1 + ε(Q10 + Q11 y + Q12 y²) + ε²(Q20 + …) + ε³(Q30 + …)  (item 3)
constexpr double Q10 = 1.08461, Q11 = -0.0870492, Q12 = -0.0623989;
constexpr double Q20 = -0.253313, Q21 = 0.12218, Q22 = -0.101381;
constexpr double Q30 = 0.08695, Q31 = -0.0381854, Q32 = 0.0528244;
// ε = s/R beyond which Q is held constant (the fit's range)
constexpr double EPS_MAX = 0.5;

// P on a flat wall for κ' = κ√(π dt/D)/2 ≥ 0 (finite): the fitted inverse of
// the Milne-problem mapping κ'(P).
__host__ __device__ __forceinline__ double flat_probability(double kp) {
    const double y = kp / (1.0 + kp);
    const double g = y * (G1 + y * (G2 + y * (G3 + y * (G4 + y * G5))));
    return y - y * (1.0 - y) * g;
}

// Q(y, ε): effective reactivity of a sphere over that of a flat wall at the
// same P, for y = κ'/(1 + κ') and ε = s/R (ε clipped at EPS_MAX).
__host__ __device__ __forceinline__ double curvature_factor(double y, double eps) {
    const double e = eps < EPS_MAX ? eps : EPS_MAX;
    return 1.0 + e * ((Q10 + y * (Q11 + y * Q12))
                      + e * ((Q20 + y * (Q21 + y * Q22))
                             + e * (Q30 + y * (Q31 + y * Q32))));
}

// P per detected contact for reactivity kappa [µm/s] (inf = every contact
// binds), vesicle diffusion [µm²/s], step dt [s] and contact radius [µm]
// (R_cell + r_vesicle; inf for a flat face):
//     P = P_flat(κ'/Q(y, s/R)),  κ' = κ√(π dt/D)/2,  y = κ'/(1 + κ').
__host__ __device__ __forceinline__ double binding_probability(double kappa, double diffusion,
                                                               double dt, double radius) {
    if (kappa <= 0.0) return 0.0;
    if (kappa > 1.7976931348623157e308) return 1.0;  // kappa = +inf (math.isinf for kappa > 0)
    const double kp = 0.5 * kappa * sqrt(3.14159265358979323846 * dt / diffusion);
    const double eps = sqrt(2.0 * diffusion * dt) / radius;
    return flat_probability(kp / curvature_factor(kp / (1.0 + kp), eps));
}

// Probability that an unbinding event releases the vesicle (otherwise it
// rebinds within the step): P·Q(0, s/R)/κ'; 1 for kappa = 0, 0 for kappa = inf.
// Arguments as for binding_probability.
__host__ __device__ __forceinline__ double release_fraction(double kappa, double diffusion,
                                                            double dt, double radius) {
    if (kappa <= 0.0) return 1.0;
    if (kappa > 1.7976931348623157e308) return 0.0;
    const double kp = 0.5 * kappa * sqrt(3.14159265358979323846 * dt / diffusion);
    const double eps = sqrt(2.0 * diffusion * dt) / radius;
    const double f = binding_probability(kappa, diffusion, dt, radius) * curvature_factor(0.0, eps) / kp;
    return f < 1.0 ? f : 1.0;
}

// Distance [µm] outside contact at which an unbound vesicle is placed:
// U·√(4 D dt)·√(−ln V), the density of starting points of binding steps
// (∝ erfc(x/√(4 D dt))).  radius [µm] is the contact radius (unused).
__host__ __device__ __forceinline__ double unbind_distance(double u, double v, double diffusion,
                                                           double dt, double radius) {
    (void)radius;
    return u * sqrt(4.0 * diffusion * dt) * sqrt(-log(v));
}

}  // namespace exo

#endif  // EXODIFF_SURFACE_CUH
