// The vesicle step: CUDA/C++ twin of kernels/step_numba.py (advance_block).
//
// One vesicle from step n0 to n1, with its state in registers, as a
// __host__ __device__ function: kernels/exodiff_step.cu runs it one thread per
// vesicle on the GPU, kernels/host_harness.cpp runs it in a loop on the CPU so
// the tests can check it against the Numba backend without a GPU (DESIGN §3).
// The operations and their order are those of advance_block's body, stage for
// stage (see that module for the physics); loop invariants are hoisted, and
// two shortcuts (min_image, bridge) skip divisions only where they provably
// change no bit:
//  1. Gaussian displacement √(2D dt)·ξ + drift·dt (ξ from STREAM_DIFFUSE);
//  2. domain faces: periodic wrap, mirror reflection, or absorption on contact
//     (end beyond the face, or a Brownian-bridge crossing within the step);
//  3. cells listed in the grid bin of the end point: contact at the end point
//     or with the bridge probability exp(−d0·d1/(D dt)); the first contact
//     binds with P(κ, D, dt)·(free receptor fraction), else reflects;
//  4. clearance with probability 1 − exp(−k_clear dt).
// BOUND vesicles unbind (released with surface.release_fraction, else they
// rebind within the step) or are internalized; PENDING ones become FREE at the
// end of their birth step.  Contact uniforms are drawn lazily, like Numba.
//
// Host builds (the harness) must not contract a*b+c into FMA
// (-ffp-contract=off) to stay bit-identical with Numba; the device may, since
// its contract with the CPU is agreement to round-off (DESIGN §2).
#ifndef EXODIFF_STEP_CUH
#define EXODIFF_STEP_CUH

#include "exodiff_rng.cuh"
#include "exodiff_surface.cuh"

// Read-only loads through the non-coherent cache on the device.
#if defined(__CUDA_ARCH__)
#define EXO_LDG(p) __ldg(p)
#else
#define EXO_LDG(p) (*(p))
#endif

namespace exo {

// Mirror of kernels/constants.py (tests/test_cuda_host.py checks that they agree).
enum VesicleState : int { PENDING = 0, FREE = 1, BOUND = 2, INTERNALIZED = 3, EXITED = 4, CLEARED = 5 };
enum FaceKind : int { REFLECT = 0, PERIODIC = 1, ABSORB = 2 };
constexpr double BRIDGE_CUTOFF = 40.0;
constexpr double FAR_SIGMAS = 6.3245617;  // cells out of reach: see constants.py

// Everything a launch reads but does not write (KERNEL_ARGS less the vesicle state).
struct Tables {
    double dt;
    unsigned int k0, k1;  // Philox key = seed (low, high word)
    // vesicle constants [N]
    const double* diffusion;
    const double* sigma;
    const double* settling;
    const double* vradius;
    const int* species;
    const long long* birth_step;
    const double* p_clear;  // [populations]
    // domain
    const double* box;       // [3]
    const int* face_kind;    // [6] xlo, xhi, ylo, yhi, zlo, zhi
    double face_kappa;
    const double* flow;      // [3]
    // cells [M]
    const double* ccenter;   // [M, 3]
    const double* cradius;
    const int* ctype;
    const long long* bound_count;  // as of the start of the step (capacity) or launch
    // cell types [T]
    const double* t_kappa;
    const long long* t_capacity;
    const double* t_p_event;
    const double* t_frac_off;
    // cell grid (CSR)
    const double* bin_size;  // [3]
    const long long* nbins;  // [3]
    const long long* gstart; // [bins + 1]
    const int* gitems;
    long long n_gitems;
};

// The vesicle state, structure of arrays (positions and images split by axis).
struct VesicleArrays {
    double* px;
    double* py;
    double* pz;
    int* ix;
    int* iy;
    int* iz;
    signed char* state;
    int* cell;
    double* t_bound;
    double* t_internalized;
    double* t_exit;
};

// One vesicle's state while it is being advanced (registers on the device).
// Its milestone times are not here: they change at most once each, and are
// written to memory when they do, which saves registers for every step.
struct Vesicle {
    double p[3];
    int image[3];
    int state;
    int cell;
};

// The domain as one vesicle's steps need it, loaded once per launch.
struct Domain {
    double L[3];
    bool periodic[3];
    bool absorb[6];
};

// +inf (the contact radius of a flat face), without headers under NVRTC.
__host__ __device__ __forceinline__ double infinity() {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double(0x7ff0000000000000LL);
#else
    return HUGE_VAL;
#endif
}

// Bring coordinate x back into [0, L]: wrap on a periodic axis (counting
// images), mirror on a closed one.  Twin of step_numba._fold.
__host__ __device__ __forceinline__ double fold(double x, double L, bool periodic, int& image) {
    if (periodic) {
        if (x < 0.0 || x >= L) {
            const double k = floor(x / L);
            x = x - k * L;
            image += (int)k;
            if (x >= L) {  // x/L rounded up to an integer
                x = x - L;
                image += 1;
            }
        }
        return x;
    }
    if (x < 0.0) x = -x;
    if (x > L) x = L - (x - L);
    if (x < 0.0) x = 0.0;  // a step longer than the box; stay on the face
    return x;
}

// Separation e along an axis under the minimum-image convention.  For
// |e| ≤ L/4 (all the cells a grid bin lists, in practice) floor(e/L + 0.5) is
// exactly 0 and e - L·0 is e: skipping the division there changes no bit.
__host__ __device__ __forceinline__ double min_image(double e, double L, bool periodic) {
    if (!periodic || fabs(e) <= 0.25 * L) return e;
    return e - L * floor(e / L + 0.5);
}

// Brownian-bridge crossing probability exp(−d0·d1/(D dt)) for two ends outside
// contact, 0 at and beyond the cutoff.  far = BRIDGE_CUTOFF·D·dt·(1 + 2⁻⁴⁰):
// from there on d0·d1/(D dt) rounds to ≥ BRIDGE_CUTOFF anyway, so the common
// far case skips a division and the result is bit-identical to Numba's.
__host__ __device__ __forceinline__ double bridge(double d0, double d1, double Ddt, double far) {
    const double prod = d0 * d1;
    if (prod >= far) return 0.0;
    const double arg = prod / Ddt;
    return arg < BRIDGE_CUTOFF ? exp(-arg) : 0.0;
}

// Grid bin of a point: the exact expression of exodiff/grid.py.
__host__ __device__ __forceinline__ long long bin_of(const double p[3], const Tables& T) {
    long long b[3];
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        const long long nb = EXO_LDG(T.nbins + a);
        long long k = (long long)floor(p[a] / EXO_LDG(T.bin_size + a));
        k = k > 0 ? k : 0;
        b[a] = k < nb - 1 ? k : nb - 1;
    }
    return (b[0] * EXO_LDG(T.nbins + 1) + b[1]) * EXO_LDG(T.nbins + 2) + b[2];
}

// The four STREAM_CONTACT uniforms of step n, drawn at most once per step.
struct ContactUniforms {
    bool drawn;
    double uf, uc, ub, ur;  // faces, cell contact, binding, clearance
    __host__ __device__ __forceinline__ void draw(unsigned int id, unsigned int n, const Tables& T) {
        if (drawn) return;
        const Doubles4 w = uniforms4(id, n, STREAM_CONTACT, T.k0, T.k1);
        uf = w.v0;
        uc = w.v1;
        ub = w.v2;
        ur = w.v3;
        drawn = true;
    }
};

// Place the vesicle at the centre of cell c plus f·e, folded into the box.
__host__ __device__ __forceinline__ void place_on(Vesicle& v, const double ce[3], const double e[3],
                                                  double f, const Domain& dom) {
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) v.p[a] = fold(ce[a] + e[a] * f, dom.L[a], dom.periodic[a], v.image[a]);
}

// Stage 2 on axis a (a template parameter so that v.p[a] stays in a register):
// wrap, mirror, or absorb at the faces.  Returns whether the vesicle exited.
template <int a>
__host__ __device__ __forceinline__ bool cross_faces(Vesicle& v, double* t_exit, double x0, double D,
                                                     double Ddt, double far, double t1,
                                                     unsigned int id, unsigned int nn,
                                                     ContactUniforms& u, const Domain& dom,
                                                     const Tables& T) {
    const double L = dom.L[a];
    double x = v.p[a];
    if (dom.periodic[a]) {
        v.p[a] = fold(x, L, true, v.image[a]);
        return false;
    }
    EXO_UNROLL
    for (int side = 0; side < 2; ++side) {
        const double d0 = side == 0 ? x0 : L - x0;
        const double d1 = side == 0 ? x : L - x;
        if (dom.absorb[2 * a + side]) {
            const double pc = (d1 <= 0.0 || d0 <= 0.0) ? 1.0 : bridge(d0, d1, Ddt, far);
            if (pc > 0.0) {
                const double pa = pc * binding_probability(T.face_kappa, D, T.dt, infinity());
                if (pa > 0.0) {
                    u.draw(id, nn, T);
                    if (u.uf < pa) {
                        v.state = EXITED;
                        *t_exit = t1;
                        v.p[a] = side == 0 ? 0.0 : L;  // on the face
                        return true;
                    }
                    u.uf = (u.uf - pa) / (1.0 - pa);
                }
            }
        }
        if (d1 < 0.0) x = side == 0 ? -x : L - (x - L);  // crossed, not absorbed: mirror
    }
    v.p[a] = fold(x, L, false, v.image[a]);
    return false;
}

// Advance vesicle i through steps n0..n1-1 (step n takes t_n = n·dt to t_{n+1}).
// Returns whether anything changed (a bound or pending vesicle often waits
// out the whole launch, and then need not be written back).
__host__ __device__ __forceinline__ bool advance_vesicle(long long i, long long n0, long long n1,
                                                         Vesicle& v, const VesicleArrays& A,
                                                         const Tables& T) {
    const double dt = T.dt;
    const unsigned int id = (unsigned int)i;  // counter word 0

    // Loop invariants, hoisted: the same values Numba recomputes every step.
    Domain dom;
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        dom.L[a] = EXO_LDG(T.box + a);
        dom.periodic[a] = EXO_LDG(T.face_kind + 2 * a) == PERIODIC;
    }
    EXO_UNROLL
    for (int f = 0; f < 6; ++f) dom.absorb[f] = EXO_LDG(T.face_kind + f) == ABSORB;
    const double D = EXO_LDG(T.diffusion + i);
    const double s = EXO_LDG(T.sigma + i);
    const double vr = EXO_LDG(T.vradius + i);
    const double Ddt = D * dt;
    const double far = BRIDGE_CUTOFF * Ddt * (1.0 + 0x1p-40);
    const double drift[3] = {EXO_LDG(T.flow + 0) * dt, EXO_LDG(T.flow + 1) * dt,
                             (EXO_LDG(T.flow + 2) - EXO_LDG(T.settling + i)) * dt};
    const double pcl = EXO_LDG(T.p_clear + EXO_LDG(T.species + i));
    bool changed = false;

    for (long long n = n0; n < n1; ++n) {
        const int st = v.state;
        if (st == INTERNALIZED || st == EXITED || st == CLEARED) break;
        const double t1 = (double)(n + 1) * dt;
        const unsigned int nn = (unsigned int)n;  // counter word 1
        if (st == PENDING) {
            if (EXO_LDG(T.birth_step + i) <= n) {
                v.state = FREE;
                changed = true;
            }
            continue;
        }
        if (st == BOUND) {
            const int c = v.cell;
            const int ty = EXO_LDG(T.ctype + c);
            const double p_event = EXO_LDG(T.t_p_event + ty);
            if (p_event <= 0.0) continue;
            const Doubles4 u = uniforms4(id, nn, STREAM_BOUND, T.k0, T.k1);
            if (u.v0 >= p_event) continue;
            changed = true;
            if (u.v1 >= EXO_LDG(T.t_frac_off + ty)) {
                v.state = INTERNALIZED;
                A.t_internalized[i] = t1;
                break;
            }
            // unbind, unless the release counts as rebinding within the step
            // (u1/frac_off is uniform; surface.release_fraction)
            const double Rc = EXO_LDG(T.cradius + c) + vr;
            if (u.v1 >= EXO_LDG(T.t_frac_off + ty) *
                            release_fraction(EXO_LDG(T.t_kappa + ty), D, dt, Rc))
                continue;
            // move out along the membrane normal of the binding site
            double ce[3], e[3];
            EXO_UNROLL
            for (int a = 0; a < 3; ++a) {
                ce[a] = EXO_LDG(T.ccenter + 3 * (long long)c + a);
                e[a] = min_image(v.p[a] - ce[a], dom.L[a], dom.periodic[a]);
            }
            const double r = sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2]);
            const double f = (Rc + unbind_distance(u.v2, u.v3, D, dt, Rc)) / r;
            place_on(v, ce, e, f, dom);
            v.state = FREE;
            v.cell = -1;
            continue;
        }

        // FREE.  1. displacement
        changed = true;
        const Doubles4 z = normals4(id, nn, STREAM_DIFFUSE, T.k0, T.k1);
        const double p0[3] = {v.p[0], v.p[1], v.p[2]};
        v.p[0] = p0[0] + (s * z.v0 + drift[0]);
        v.p[1] = p0[1] + (s * z.v1 + drift[1]);
        v.p[2] = p0[2] + (s * z.v2 + drift[2]);

        ContactUniforms u = {false, 0.0, 0.0, 0.0, 0.0};

        // 2. domain faces, axis by axis; an absorbed vesicle stops there (its
        // later axes keep their unfolded values, as in Numba)
        if (cross_faces<0>(v, A.t_exit + i, p0[0], D, Ddt, far, t1, id, nn, u, dom, T) ||
            cross_faces<1>(v, A.t_exit + i, p0[1], D, Ddt, far, t1, id, nn, u, dom, T) ||
            cross_faces<2>(v, A.t_exit + i, p0[2], D, Ddt, far, t1, id, nn, u, dom, T))
            break;

        // 3. cells near the end point
        if (T.n_gitems > 0) {
            const long long b = bin_of(v.p, T);
            int hit = -1;
            double e[3] = {0.0, 0.0, 0.0};
            double ce[3] = {0.0, 0.0, 0.0};
            double r1 = 0.0, d1 = 0.0;
            // cells farther than this from their contact sphere are out of
            // reach this step (constants.FAR_SIGMAS): no square root for them
            const double sx = v.p[0] - p0[0], sy = v.p[1] - p0[1], sz = v.p[2] - p0[2];
            const double margin = sqrt(sx * sx + sy * sy + sz * sz) + FAR_SIGMAS * sqrt(Ddt) + 1e-12;
            const long long kend = EXO_LDG(T.gstart + b + 1);
            for (long long k = EXO_LDG(T.gstart + b); k < kend; ++k) {
                const int c = EXO_LDG(T.gitems + k);
                const double Rc = EXO_LDG(T.cradius + c) + vr;
                EXO_UNROLL
                for (int a = 0; a < 3; ++a) {
                    ce[a] = EXO_LDG(T.ccenter + 3 * (long long)c + a);
                    e[a] = min_image(v.p[a] - ce[a], dom.L[a], dom.periodic[a]);
                }
                const double r2 = e[0] * e[0] + e[1] * e[1] + e[2] * e[2];
                if (r2 > (Rc + margin) * (Rc + margin)) continue;
                r1 = sqrt(r2);
                d1 = r1 - Rc;
                if (d1 <= 0.0) {
                    hit = c;
                    break;
                }
                double q[3];
                EXO_UNROLL
                for (int a = 0; a < 3; ++a) q[a] = min_image(p0[a] - ce[a], dom.L[a], dom.periodic[a]);
                const double d0 = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) - Rc;
                const double pc = d0 <= 0.0 ? 1.0 : bridge(d0, d1, Ddt, far);
                if (pc > 0.0) {
                    u.draw(id, nn, T);
                    if (u.uc < pc) {
                        hit = c;
                        break;
                    }
                    u.uc = (u.uc - pc) / (1.0 - pc);
                }
            }
            if (hit >= 0) {
                const int c = hit;  // e, ce, r1, d1 hold this cell's values
                const int ty = EXO_LDG(T.ctype + c);
                const double Rc = EXO_LDG(T.cradius + c) + vr;
                double pb = binding_probability(EXO_LDG(T.t_kappa + ty), D, dt, Rc);
                const long long cap = EXO_LDG(T.t_capacity + ty);
                if (cap > 0) {
                    const double free_frac = 1.0 - (double)EXO_LDG(T.bound_count + c) / (double)cap;
                    pb = free_frac > 0.0 ? pb * free_frac : 0.0;
                }
                u.draw(id, nn, T);
                if (r1 == 0.0) {  // end point at the centre: any normal will do
                    e[2] = 1.0;
                    r1 = 1.0;
                }
                if (u.ub < pb) {
                    place_on(v, ce, e, Rc / r1, dom);
                    v.state = BOUND;
                    v.cell = c;
                    if (A.t_bound[i] != A.t_bound[i]) A.t_bound[i] = t1;  // NaN: first binding
                    continue;
                }
                if (d1 < 0.0) place_on(v, ce, e, (2.0 * Rc - r1) / r1, dom);  // inside, not bound: mirror
            }
        }

        // 4. clearance in the medium
        if (pcl > 0.0) {
            u.draw(id, nn, T);
            if (u.ur < pcl) {
                v.state = CLEARED;
                break;
            }
        }
    }
    return changed;
}

// Load vesicle i, advance it through steps n0..n1-1, store it back if it
// changed.  Vesicles in a final state are neither read nor written: with one
// launch per step (finite capacity) the memory traffic is the cost.
__host__ __device__ __forceinline__ void advance_one(long long i, long long n0, long long n1,
                                                     const VesicleArrays& A, const Tables& T) {
    const int st = A.state[i];
    if (st == INTERNALIZED || st == EXITED || st == CLEARED) return;
    Vesicle v;
    v.p[0] = A.px[i];
    v.p[1] = A.py[i];
    v.p[2] = A.pz[i];
    v.image[0] = A.ix[i];
    v.image[1] = A.iy[i];
    v.image[2] = A.iz[i];
    v.state = st;
    v.cell = A.cell[i];
    if (!advance_vesicle(i, n0, n1, v, A, T)) return;
    A.px[i] = v.p[0];
    A.py[i] = v.p[1];
    A.pz[i] = v.p[2];
    A.ix[i] = v.image[0];
    A.iy[i] = v.image[1];
    A.iz[i] = v.image[2];
    A.state[i] = (signed char)v.state;
    A.cell[i] = v.cell;
}

}  // namespace exo

// The entry points' parameter list, shared by the CUDA kernel
// (exodiff_step.cu) and the host harness (host_harness.cpp) so that one
// Python argument builder (exodiff/backend_cuda.py: launch_args) serves both:
// KERNEL_ARGS in order, positions and images split by axis, plus the counts.
#define EXO_ADVANCE_PARAMS                                                                        \
    long long n_vesicles, long long n0, long long n1, double dt, unsigned int k0, unsigned int k1, \
        double *__restrict__ px, double *__restrict__ py, double *__restrict__ pz,                \
        int *__restrict__ ix, int *__restrict__ iy, int *__restrict__ iz,                         \
        signed char *__restrict__ state, int *__restrict__ cell, double *__restrict__ t_bound,    \
        double *__restrict__ t_internalized, double *__restrict__ t_exit,                         \
        const double *__restrict__ diffusion, const double *__restrict__ sigma,                   \
        const double *__restrict__ settling, const double *__restrict__ vradius,                  \
        const int *__restrict__ species, const long long *__restrict__ birth_step,                \
        const double *__restrict__ p_clear, const double *__restrict__ box,                       \
        const int *__restrict__ face_kind, double face_kappa, const double *__restrict__ flow,    \
        const double *__restrict__ ccenter, const double *__restrict__ cradius,                   \
        const int *__restrict__ ctype, const long long *__restrict__ bound_count,                 \
        const double *__restrict__ t_kappa, const long long *__restrict__ t_capacity,             \
        const double *__restrict__ t_p_event, const double *__restrict__ t_frac_off,              \
        const double *__restrict__ bin_size, const long long *__restrict__ nbins,                 \
        const long long *__restrict__ gstart, const int *__restrict__ gitems, long long n_gitems

// Build the two structs from those parameters (inside an entry point).
#define EXO_ADVANCE_STRUCTS                                                                      \
    const exo::VesicleArrays A = {px, py, pz, ix, iy, iz, state, cell,                          \
                                  t_bound, t_internalized, t_exit};                             \
    const exo::Tables T = {dt, k0, k1, diffusion, sigma, settling, vradius, species, birth_step, \
                           p_clear, box, face_kind, face_kappa, flow, ccenter, cradius, ctype,   \
                           bound_count, t_kappa, t_capacity, t_p_event, t_frac_off, bin_size,    \
                           nbins, gstart, gitems, n_gitems}

#endif  // EXODIFF_STEP_CUH
