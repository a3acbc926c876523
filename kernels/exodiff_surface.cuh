// Surface reaction probabilities: CUDA/C++ twin of kernels/surface.py.
//
// Kept in its own small header so that a change of the formulas in
// surface.py is mirrored here in one place.  Same expressions, same order of
// operations (the host harness checks them bit for bit against Numba); see
// surface.py for the derivation.
#ifndef EXODIFF_SURFACE_CUH
#define EXODIFF_SURFACE_CUH

#include "exodiff_rng.cuh"  // the host/device qualifiers and <math.h>

namespace exo {

// P per detected contact for reactivity kappa [µm/s] (inf = every contact
// binds), vesicle diffusion [µm²/s], step dt [s] and contact radius [µm]
// (R_cell + r_vesicle; inf for a flat face); clipped to [0, 1].
//     P = κ √(π dt / D) / 2
__host__ __device__ __forceinline__ double binding_probability(double kappa, double diffusion,
                                                               double dt, double radius) {
    (void)radius;  // unused at this order
    if (kappa <= 0.0) return 0.0;
    if (kappa > 1.7976931348623157e308) return 1.0;  // kappa = +inf (math.isinf for kappa > 0)
    const double p = 0.5 * kappa * sqrt(3.14159265358979323846 * dt / diffusion);
    return p < 1.0 ? p : 1.0;
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
