// The vesicle step: CUDA/C++ twin of kernels/step_numba.py and step_numpy.py.
//
// One vesicle from step n0 to n1, with its state in registers, as a
// __host__ __device__ function: kernels/exodiff_step.cu runs it one thread per
// vesicle on the GPU, kernels/host_harness.cpp runs it in a loop on the CPU so
// the tests can check it against the Numba backend without a GPU (DESIGN §3).
// The stage functions are the twins' (``_name`` there, ``name`` here), in the
// same order with the same operations (see step_numba for the physics):
// 1. displacement, 2. cross_faces, 3. contact, 4. binding, 5. reflection,
// 6. unbinding_placement, 7. bound_events, 8. clearance, 9. births,
// 10. endosome_events, and with run.stepping = "adaptive" 11. try_leap
// (kernels/leap.py: the vesicle then jumps its step counter to the landing
// step; entry points *_adaptive), where 7 and 10 also wait for the next
// event in one visit (kernels/leap.py, "Waits").  Loop invariants are
// hoisted, and two shortcuts (min_image, bridge) skip divisions
// only where they provably change no bit.  Contact uniforms are drawn lazily,
// like Numba, but each stage draws the STREAM_CONTACT words again (a pure
// function of the counter: the same numbers) rather than keeping all four in
// registers across the step, and contact() returns only the cell: binding and
// reflection recompute its separation with the same expressions.  Registers
// are what bound the GPU's occupancy (tests/test_nvrtc.py: MAX_REGISTERS).
//
// Host builds (the harness) must not contract a*b+c into FMA
// (-ffp-contract=off) to stay bit-identical with Numba; the device may, since
// its contract with the CPU is agreement to round-off (DESIGN §2).
#ifndef EXODIFF_STEP_CUH
#define EXODIFF_STEP_CUH

#include "exodiff_leap.cuh"
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
enum VesicleState : int {
    PENDING = 0, FREE = 1, BOUND = 2, INTERNALIZED = 3, EXITED = 4, CLEARED = 5, DELIVERED = 6, DEGRADED = 7
};
enum FaceKind : int { REFLECT = 0, PERIODIC = 1, ABSORB = 2 };
// run.precision (config.PRECISIONS): the step's template parameter, one entry
// point each (exodiff_step.cu).  MIXED draws the displacement's normals in
// float32 (normals4_mixed); everything else stays float64.
enum Precision : int { DOUBLE = 0, MIXED = 1 };
constexpr double BRIDGE_CUTOFF = 40.0;
constexpr double FAR_SIGMAS = 6.3245617;  // cells out of reach: see constants.py
// Leaps: mirror of kernels/leap.py (tests/test_leaps.py checks that they agree).
constexpr double LEAP_MARGIN_SIGMAS = 8.944281;
constexpr double LEAP_MIN_SIGMAS = 3.0;
constexpr long long LEAP_MIN_STEPS = 2;
constexpr double LEAP_CAP_SPREADS = 10.0;
constexpr double LEAP_LOOK_SIGMAS = 2.0;
constexpr long long LEAP_MAX_ATTEMPTS = 4096;
constexpr long long LEAP_ATTEMPT_STRIDE = 256;
constexpr long long LEAP_ACCEPT_OFFSET = 128;

// The kernels' arguments, container by container and field by field in the
// order of kernels/state.py (tests/test_cuda_host.py checks that they agree).
// Each list is an X-macro of P(T, name), an array of T, and S(T, name), a
// scalar; the step writes the non-const arrays.  An (N, 3) array comes one row
// per axis (pos: px, py, pz), so neighbouring threads touch neighbouring words.
#define EXO_RUN(P, S) S(double, dt) S(unsigned int, k0) S(unsigned int, k1) S(int, adaptive) \
    P(const long long, horizon_every) P(const long long, horizon_stops)
#define EXO_VESICLES(P, S)                                                          \
    P(double, px) P(double, py) P(double, pz) P(int, ix) P(int, iy) P(int, iz)      \
    P(signed char, state) P(int, cell) P(double, first_bound_time)                  \
    P(double, internalized_time) P(double, exit_time) P(int, first_bound_cell)      \
    P(double, cleared_time) P(double, escape_time) P(double, degraded_time)         \
    P(double, fused_time) P(int, recycled) P(double, bound_duration)                \
    P(int, internalized_cell) P(long long, leap_end) P(long long, leaps)            \
    P(long long, leap_steps) P(long long, leap_look)
#define EXO_VESICLE_PARAMS(P, S)                                                     \
    P(const double, diffusion) P(const double, sigma) P(const double, settling)     \
    P(const double, vradius) P(const int, species) P(const long long, birth_step)   \
    P(const double, p_clear)
#define EXO_DOMAIN(P, S) \
    P(const double, box) P(const int, face_kind) S(double, face_kappa) P(const double, flow)
#define EXO_CELLS(P, S) \
    P(const double, ccenter) P(const double, cradius) P(const int, ctype) P(const double, ckappa) \
    P(const long long, ccapacity) P(const long long, bound_count) P(long long, cell_bound_steps)
#define EXO_CELL_TYPES(P, S)                                                           \
    P(const double, type_p_event) P(const double, type_frac_off) P(const double, type_cut_fuse) \
    P(const double, type_p_endo) P(const double, type_frac_escape) P(const double, type_cut_recycle)
#define EXO_GRID(P, S) \
    P(const double, bin_size) P(const long long, nbins) P(const long long, gstart) P(const int, gitems) \
    P(const double, clearance)

#define EXO_MEMBER_P(T, name) T* name;
#define EXO_MEMBER_S(T, name) T name;
struct Run {
    EXO_RUN(EXO_MEMBER_P, EXO_MEMBER_S)
    long long n_stops;  // size of horizon_stops (the launcher's count)
};
struct Vesicles { EXO_VESICLES(EXO_MEMBER_P, EXO_MEMBER_S) };
struct VesicleParams { EXO_VESICLE_PARAMS(EXO_MEMBER_P, EXO_MEMBER_S) };
struct Domain { EXO_DOMAIN(EXO_MEMBER_P, EXO_MEMBER_S) };
struct Cells { EXO_CELLS(EXO_MEMBER_P, EXO_MEMBER_S) };
struct CellTypes { EXO_CELL_TYPES(EXO_MEMBER_P, EXO_MEMBER_S) };
struct Grid {
    EXO_GRID(EXO_MEMBER_P, EXO_MEMBER_S)
    long long n_gitems;  // size of gitems (the launcher's count)
};

// Everything a step reads and writes (state.StepArgs).
struct Args {
    Run run;
    Vesicles ves;
    VesicleParams par;
    Domain dom;
    Cells cells;
    CellTypes types;
    Grid grid;
};

// One vesicle's state while it is being advanced (registers on the device).
// Its milestone times are not here: they change at most once each, and are
// written to memory when they do, which saves registers for every step (so
// are the first binding's cell and the clearance time).
struct Vesicle {
    double p[3];
    int image[3];
    int state;
    int cell;
};

// The box as one vesicle's steps need it, loaded once per launch.
struct Box {
    double L[3];
    bool periodic[3];
    bool absorb[6];
};

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
__host__ __device__ __forceinline__ double bridge(double d0, double d1, double Ddt) {
    const double far = BRIDGE_CUTOFF * Ddt * (1.0 + 0x1p-40);
    const double prod = d0 * d1;
    if (prod >= far) return 0.0;
    const double arg = prod / Ddt;
    return arg < BRIDGE_CUTOFF ? exp(-arg) : 0.0;
}

// Grid bin of a point: the exact expression of exodiff/grid.py.
__host__ __device__ __forceinline__ long long bin_of(const double p[3], const Grid& g) {
    long long b[3];
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        const long long nb = EXO_LDG(g.nbins + a);
        long long k = (long long)floor(p[a] / EXO_LDG(g.bin_size + a));
        k = k > 0 ? k : 0;
        b[a] = k < nb - 1 ? k : nb - 1;
    }
    return (b[0] * EXO_LDG(g.nbins + 1) + b[1]) * EXO_LDG(g.nbins + 2) + b[2];
}

// STREAM_CONTACT uniform `word` of step n (0 faces, 1 cell contact; 2
// binding and 3 clearance are drawn where used), drawn when first needed and
// renormalised as each face or cell is passed, within its stage.
template <int word>
struct ContactUniform {
    static_assert(word == 0 || word == 1, "only the faces' and the contact's uniforms are kept");
    bool drawn;
    double value;
    __host__ __device__ __forceinline__ double& get(unsigned long long id, unsigned int n, const Run& run) {
        if (!drawn) {
            const Doubles4 w = uniforms4(id, n, STREAM_CONTACT, run.k0, run.k1);
            value = word == 0 ? w.v0 : w.v1;
            drawn = true;
        }
        return value;
    }
};

// Place the vesicle at the centre of cell c plus f·e, folded into the box.
__host__ __device__ __forceinline__ void place_on(Vesicle& v, const double ce[3], const double e[3],
                                                  double f, const Box& box) {
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) v.p[a] = fold(ce[a] + e[a] * f, box.L[a], box.periodic[a], v.image[a]);
}

// -- the stages, in the order of the twins (step_numpy.py, step_numba.py) -----

// 1. Gaussian step plus drift; p0 receives the start point.
template <Precision P>
__host__ __device__ __forceinline__ void displacement(Vesicle& v, double p0[3], double s,
                                                      const double drift[3], unsigned long long id,
                                                      unsigned int nn, const Run& run) {
    const Doubles4 z = P == MIXED ? normals4_mixed(id, nn, STREAM_DIFFUSE, run.k0, run.k1)
                                  : normals4(id, nn, STREAM_DIFFUSE, run.k0, run.k1);
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) p0[a] = v.p[a];
    v.p[0] = p0[0] + (s * z.v0 + drift[0]);
    v.p[1] = p0[1] + (s * z.v1 + drift[1]);
    v.p[2] = p0[2] + (s * z.v2 + drift[2]);
}

// 2. On axis a (a template parameter so that v.p[a] stays in a register):
// wrap, mirror, or absorb at the faces.  Returns whether the vesicle exited.
template <int a>
__host__ __device__ __forceinline__ bool cross_faces(Vesicle& v, long long i, double x0, double t1,
                                                     double D, double Ddt,
                                                     unsigned long long id, unsigned int nn,
                                                     ContactUniform<0>& uf, const Box& box,
                                                     const Args& args) {
    const double L = box.L[a];
    double x = v.p[a];
    if (box.periodic[a]) {
        v.p[a] = fold(x, L, true, v.image[a]);
        return false;
    }
    EXO_UNROLL
    for (int side = 0; side < 2; ++side) {
        const double d0 = side == 0 ? x0 : L - x0;
        const double d1 = side == 0 ? x : L - x;
        if (box.absorb[2 * a + side]) {
            const double pc = (d1 <= 0.0 || d0 <= 0.0) ? 1.0 : bridge(d0, d1, Ddt);
            if (pc > 0.0) {
                const double pa = pc * binding_probability(args.dom.face_kappa, D, args.run.dt, infinity());
                if (pa > 0.0) {
                    double& u = uf.get(id, nn, args.run);
                    if (u < pa) {
                        v.state = EXITED;
                        args.ves.exit_time[i] = t1;
                        v.p[a] = side == 0 ? 0.0 : L;  // on the face
                        return true;
                    }
                    u = (u - pa) / (1.0 - pa);
                }
            }
        }
        if (d1 < 0.0) x = side == 0 ? -x : L - (x - L);  // crossed, not absorbed: mirror
    }
    v.p[a] = fold(x, L, false, v.image[a]);
    return false;
}

// The point p relative to the centre ce of cell c (minimum image): e.
// Returns |e|².
__host__ __device__ __forceinline__ double separation(const double p[3], int c, double ce[3],
                                                      double e[3], const Box& box, const Args& args) {
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        ce[a] = EXO_LDG(args.cells.ccenter + 3 * (long long)c + a);
        e[a] = min_image(p[a] - ce[a], box.L[a], box.periodic[a]);
    }
    return e[0] * e[0] + e[1] * e[1] + e[2] * e[2];
}

// 3. The first cell of the end point's bin in contact (at the end point, or
// crossed within the step), or -1.
__host__ __device__ __forceinline__ int contact(const Vesicle& v, const double p0[3], double vr,
                                                double Ddt, unsigned long long id,
                                                unsigned int nn, const Box& box, const Args& args) {
    const long long b = bin_of(v.p, args.grid);
    // cells farther than this from their contact sphere are out of reach
    // this step (constants.FAR_SIGMAS): no square root for them
    const double sx = v.p[0] - p0[0], sy = v.p[1] - p0[1], sz = v.p[2] - p0[2];
    const double margin = sqrt(sx * sx + sy * sy + sz * sz) + FAR_SIGMAS * sqrt(Ddt) + 1e-12;
    ContactUniform<1> uc = {false, 0.0};
    const long long kend = EXO_LDG(args.grid.gstart + b + 1);
    for (long long k = EXO_LDG(args.grid.gstart + b); k < kend; ++k) {
        const int c = EXO_LDG(args.grid.gitems + k);
        const double Rc = EXO_LDG(args.cells.cradius + c) + vr;
        double ce[3], e[3];
        const double r2 = separation(v.p, c, ce, e, box, args);
        if (r2 > (Rc + margin) * (Rc + margin)) continue;
        const double d1 = sqrt(r2) - Rc;
        if (d1 <= 0.0) return c;
        const double d0 = sqrt(separation(p0, c, ce, e, box, args)) - Rc;
        const double pc = d0 <= 0.0 ? 1.0 : bridge(d0, d1, Ddt);
        if (pc > 0.0) {
            double& u = uc.get(id, nn, args.run);
            if (u < pc) return c;
            u = (u - pc) / (1.0 - pc);
        }
    }
    return -1;
}

// 4. Bind to cell c with P(κ, D, dt) times its free receptor fraction, on its
// surface along e.  Returns whether it bound.
__host__ __device__ __forceinline__ bool binding(Vesicle& v, long long i, int c, double t1,
                                                 const double e[3], const double ce[3], double r1,
                                                 double D, double vr, unsigned long long id,
                                                 unsigned int nn, const Box& box, const Args& args) {
    const double Rc = EXO_LDG(args.cells.cradius + c) + vr;
    double pb = binding_probability(EXO_LDG(args.cells.ckappa + c), D, args.run.dt, Rc);
    const long long cap = EXO_LDG(args.cells.ccapacity + c);
    if (cap > 0) {
        const double free_frac = 1.0 - (double)EXO_LDG(args.cells.bound_count + c) / (double)cap;
        pb = free_frac > 0.0 ? pb * free_frac : 0.0;
    }
    if (!(uniforms4(id, nn, STREAM_CONTACT, args.run.k0, args.run.k1).v2 < pb)) return false;
    place_on(v, ce, e, Rc / r1, box);
    v.state = BOUND;
    v.cell = c;
    double* first = args.ves.first_bound_time + i;
    if (*first != *first) {  // NaN: first binding
        *first = t1;
        args.ves.first_bound_cell[i] = c;
    }
    return true;
}

// 5. An end point inside contact and not bound: mirrored radially.
__host__ __device__ __forceinline__ void reflection(Vesicle& v, int c, const double e[3],
                                                    const double ce[3], double r1, double vr,
                                                    const Box& box, const Args& args) {
    const double Rc = EXO_LDG(args.cells.cradius + c) + vr;
    place_on(v, ce, e, (2.0 * Rc - r1) / r1, box);
}

// 6. An unbound vesicle moves out along the membrane normal of its binding
// site, to unbind_distance outside contact.
__host__ __device__ __forceinline__ void unbinding_placement(Vesicle& v, int c, double Rc, double u2,
                                                             double u3, double D, const Box& box,
                                                             const Args& args) {
    double ce[3], e[3];
    const double r = sqrt(separation(v.p, c, ce, e, box, args));
    const double f = (Rc + unbind_distance(u2, u3, D, args.run.dt, Rc)) / r;
    place_on(v, ce, e, f, box);
    v.state = FREE;
    v.cell = -1;
}

// k more vesicle-steps bound on cell c: an integer atomic on the device (exact
// whatever the order of the threads), a plain sum in the host harness's loop.
__host__ __device__ __forceinline__ void add_bound_steps(long long* count, long long k) {
#if defined(__CUDA_ARCH__)
    atomicAdd(reinterpret_cast<unsigned long long*>(count), (unsigned long long)k);
#else
    *count += k;
#endif
}

// Steps a vesicle with event probability p waits from a step whose uniform
// u0 >= p gave no event: leap.wait_steps (kernels/leap.py, "Waits").
__host__ __device__ __forceinline__ long long wait_steps(double u0, double p, long long horizon) {
    if (!(p > 0.0)) return horizon;
    const double j = log1p(-u0) / log1p(-p);
    if (j >= (double)horizon) return horizon;  // compared before the floor: j may exceed any integer
    const long long k = (long long)floor(j);
    return k > 1 ? k : 1;
}

// 0 if the vesicle (BOUND, or INTERNALIZED with p > 0) has its event in step
// n (u0 < p, or due at the end of a wait), else the steps this visit covers:
// 1 in fixed stepping (horizon ≤ 0), else a wait, which ends at leap_end and
// marks in leap_look the event due at its end.  Twin of step_numba._wait.
__host__ __device__ __forceinline__ long long wait(long long i, long long n, long long horizon, double p,
                                                   double u0, const Args& args) {
    if (horizon <= 0) return u0 < p ? 0 : 1;  // fixed stepping (or past the run's last stop)
    if (u0 < p || args.ves.leap_look[i] == -1 - n) return 0;  // an event now, or due
    const long long k = wait_steps(u0, p, horizon);
    args.ves.leap_end[i] = n + k;
    if (k < horizon) args.ves.leap_look[i] = -1 - (n + k);
    return k;
}

// 7. A BOUND vesicle unbinds, is internalized or fuses (competing rates).
// Every step begun bound adds dt to its bound_duration and one to its cell's
// cell_bound_steps.  horizon: in adaptive stepping the steps to the next
// horizon, and without an event in step n it waits (kernels/leap.py,
// "Waits"); 0 in fixed stepping.  t1 from n, as in clearance.  Returns the
// steps this visit covers; `changed`: whether the Vesicle changed.
__host__ __device__ __forceinline__ long long bound_events(Vesicle& v, long long i, long long n,
                                                           long long horizon, double D, double vr,
                                                           unsigned long long id, unsigned int nn,
                                                           const Box& box, const Args& args, bool& changed) {
    const int c = v.cell;
    const int ty = EXO_LDG(args.cells.ctype + c);
    const double p_event = EXO_LDG(args.types.type_p_event + ty);
    Doubles4 u = {1.0, 0.0, 0.0, 0.0};  // without a rate: no event, no draw
    if (p_event > 0.0) u = uniforms4(id, nn, STREAM_BOUND, args.run.k0, args.run.k1);
    const long long k = wait(i, n, horizon, p_event, u.v0, args);
    const long long steps = k > 0 ? k : 1;
    args.ves.bound_duration[i] += (double)steps * args.run.dt;
    add_bound_steps(args.cells.cell_bound_steps + c, steps);
    if (k > 0) {
        if (k > 1) args.ves.leap_steps[i] += k - 1;  // steps not taken (the run summary)
        return k;
    }
    changed = true;
    const double frac_off = EXO_LDG(args.types.type_frac_off + ty);
    if (u.v1 >= frac_off) {
        if (u.v1 >= EXO_LDG(args.types.type_cut_fuse + ty)) {
            v.state = DELIVERED;
            args.ves.fused_time[i] = (double)(n + 1) * args.run.dt;
            return 1;
        }
        v.state = INTERNALIZED;
        if (args.ves.internalized_cell[i] < 0) {  // not recycled before
            args.ves.internalized_time[i] = (double)(n + 1) * args.run.dt;
            args.ves.internalized_cell[i] = c;
        }
        return 1;
    }
    // unbind, unless the release counts as rebinding within the step
    // (u1/frac_off is uniform; surface.release_fraction)
    const double Rc = EXO_LDG(args.cells.cradius + c) + vr;
    if (u.v1 >= frac_off * release_fraction(EXO_LDG(args.cells.ckappa + c), D, args.run.dt, Rc))
        return 1;  // rebound within the step: nothing moved
    unbinding_placement(v, c, Rc, u.v2, u.v3, D, box, args);
    return 1;
}

// 8. Cleared in the medium with probability pcl = 1 − exp(−k_clear dt).
// t1 is recomputed from n (the same expression as the loop's): keeping the
// loop's value alive to here costs a register spill.
__host__ __device__ __forceinline__ bool clearance(Vesicle& v, long long i, long long n, double pcl,
                                                   unsigned long long id, unsigned int nn,
                                                   const Args& args) {
    if (!(pcl > 0.0)) return false;
    if (!(uniforms4(id, nn, STREAM_CONTACT, args.run.k0, args.run.k1).v3 < pcl)) return false;
    v.state = CLEARED;
    args.ves.cleared_time[i] = (double)(n + 1) * args.run.dt;
    return true;
}

// 9. A PENDING vesicle is born (FREE) at the end of its birth step.
__host__ __device__ __forceinline__ bool births(Vesicle& v, long long i, long long n, const Args& args) {
    if (EXO_LDG(args.par.birth_step + i) > n) return false;
    v.state = FREE;
    return true;
}

// Probability per step that an INTERNALIZED vesicle on cell c leaves its
// endosome (0: it stays for good).
__host__ __device__ __forceinline__ double p_endo(int c, const Args& args) {
    return EXO_LDG(args.types.type_p_endo + EXO_LDG(args.cells.ctype + c));
}

// 10. An INTERNALIZED vesicle (p_endo > 0) escapes (DELIVERED), is degraded
// or is recycled to the medium at its cell's surface (competing rates), with
// the STREAM_BOUND words of its step (a step begins BOUND or INTERNALIZED,
// never both); horizon as in bound_events.  t1 from n, as in clearance.
// Returns the steps this visit covers; `changed`: whether it changed.
__host__ __device__ __forceinline__ long long endosome_events(Vesicle& v, long long i, long long n, double pe,
                                                              long long horizon, double D, double vr,
                                                              unsigned long long id, unsigned int nn,
                                                              const Box& box, const Args& args, bool& changed) {
    const Doubles4 u = uniforms4(id, nn, STREAM_BOUND, args.run.k0, args.run.k1);
    const long long k = wait(i, n, horizon, pe, u.v0, args);
    if (k > 0) return k;
    changed = true;
    const int c = v.cell;
    const int ty = EXO_LDG(args.cells.ctype + c);
    if (u.v1 < EXO_LDG(args.types.type_frac_escape + ty)) {
        v.state = DELIVERED;
        args.ves.escape_time[i] = (double)(n + 1) * args.run.dt;
        return 1;
    }
    if (u.v1 < EXO_LDG(args.types.type_cut_recycle + ty)) {
        v.state = DEGRADED;
        args.ves.degraded_time[i] = (double)(n + 1) * args.run.dt;
        return 1;
    }
    unbinding_placement(v, c, EXO_LDG(args.cells.cradius + c) + vr, u.v2, u.v3, D, box, args);
    args.ves.recycled[i] += 1;
    return 1;
}

// 11. Leaps (kernels/leap.py; twins: step_numpy._try_leap, step_numba._try_leap).

// Steps a leap from step n may last: to the next observation, snapshot or
// horizon stop.
__host__ __device__ __forceinline__ long long leap_horizon(long long n, const Run& run) {
    const long long e0 = EXO_LDG(run.horizon_every + 0), e1 = EXO_LDG(run.horizon_every + 1);
    const long long h0 = (n / e0 + 1) * e0, h1 = (n / e1 + 1) * e1;
    long long h = h0 < h1 ? h0 : h1;
    long long k = 0;
    while (k < run.n_stops - 1 && EXO_LDG(run.horizon_stops + k) <= n) ++k;
    const long long stop = EXO_LDG(run.horizon_stops + k);
    h = stop < h ? stop : h;
    return h - n;
}

// How a leap ends (leap.leap_path): k steps later; sh == 0: it left the ball
// (landing at centre + R·direction + drift·k·dt + g·(normals of its last
// step)); sh > 0: inside at the horizon, at dimensionless time sh.
struct LeapPath {
    long long k;
    bool cleared;
    double g;
    double sh;
};

__host__ __device__ inline LeapPath leap_path(double u_time, double u_clear, long long steps, double R,
                                              double D, double dt, double p_clear) {
    using namespace leap;  // the ball's propagators (exodiff_leap.cuh)
    bool cleared = false;
    if (p_clear > 0.0) {
        const double survived = floor(log(u_clear) / log1p(-p_clear));
        if (survived < (double)steps) {
            steps = (long long)survived + 1;
            cleared = true;
        }
    }
    const double s = ball_exit_time(u_time);
    const double tau = s * R * R / D;
    if (tau >= (double)steps * dt)  // still inside at the horizon
        return {steps, cleared, 0.0, D * ((double)steps * dt) / (R * R)};
    long long k = (long long)ceil(tau / dt);
    k = k > 1 ? k : 1;
    k = k < steps ? k : steps;
    double delta = (double)k * dt - tau;
    delta = delta > 0.0 ? delta : 0.0;
    return {k, cleared && k == steps, sqrt(2.0 * D * delta), 0.0};
}

// (cos 2πu, sin 2πu): philox's polynomials on the host (bit-identical with
// Numba), sincospi on the device (as normals4).
__host__ __device__ __forceinline__ void cos_sin_2pi(double u, double& c, double& s) {
#if defined(__CUDA_ARCH__)
    sincospi(2.0 * u, &s, &c);
#else
    poly_cos_sin_2pi(u, c, s);
#endif
}

// A point of the unit ball's frame (by value: no array indexed at run time).
struct Point3 {
    double x, y, z;
};

// The point at radius r in the direction cos θ = 2 u_cos − 1, (cos φ, sin φ)
// (leap.sphere_point).
__host__ __device__ __forceinline__ Point3 sphere_point(double u_cos, double c_phi, double s_phi, double r) {
    const double ct = 2.0 * u_cos - 1.0;
    const double q = 1.0 - ct * ct;
    const double st = sqrt(q > 0.0 ? q : 0.0);
    return {r * (st * c_phi), r * (st * s_phi), r * ct};
}

// Position y in the unit ball at dimensionless time sh given survival, for
// the leap of vesicle id from step n: exact rejection, attempt j from
// counter (id, n, STREAM_LEAP_POSITION + 256 j) (leap.horizon_proposal and
// step_numba._horizon_point).
__host__ __device__ inline Point3 horizon_point(unsigned long long id, unsigned int n, double sh,
                                                const Run& run) {
    using namespace leap;
    const bool uniform = ball_horizon_uniform(sh);
    for (long long j = 0; j < LEAP_MAX_ATTEMPTS; ++j) {
        const unsigned int w = (unsigned int)(STREAM_LEAP_POSITION + LEAP_ATTEMPT_STRIDE * j);
        if (uniform) {
            const Doubles4 u = uniforms4(id, n, w, run.k0, run.k1);
            double c_phi, s_phi;
            cos_sin_2pi(u.v2, c_phi, s_phi);
#if defined(__CUDA_ARCH__)
            const double r = cbrt(u.v0);  // pow(u, 1/3) to round-off
#else
            const double r = pow(u.v0, 1.0 / 3.0);
#endif
            const Point3 y = sphere_point(u.v1, c_phi, s_phi, r);
            if (u.v3 < ball_horizon_accept(r, sh)) return y;
        } else {
            const Doubles4 z = normals4(id, n, w, run.k0, run.k1);
            const double q = sqrt(2.0 * sh);
            const Point3 y = {q * z.v0, q * z.v1, q * z.v2};
            const double acc = ball_horizon_accept(sqrt(y.x * y.x + y.y * y.y + y.z * y.z), sh);
            if (acc > 0.0 &&
                uniforms4(id, n, w + (unsigned int)LEAP_ACCEPT_OFFSET, run.k0, run.k1).v0 < acc)
                return y;
        }
    }
    return {0.0, 0.0, 0.0};
}

// x folded into [0, L] at two reflecting faces (leap.fold_reflecting).
__host__ __device__ __forceinline__ double fold_reflecting(double x, double L) {
    if (x < 0.0) x = -x;
    if (x > L) {
        x = x - 2.0 * L * floor(x / (2.0 * L));
        if (x < 0.0) x = -x;  // x/(2L) rounded up
        if (x > L) x = 2.0 * L - x;
    }
    return x;
}

// A look that finds the vesicle `gap` too close puts the next one off
// (step_numba._put_off).
__host__ __device__ __forceinline__ void put_off(long long i, long long n, long long horizon, double gap,
                                                 double s, double speed, double dt, const Args& args) {
    if (!(gap > 0.0)) return;
    const double q = gap / (LEAP_LOOK_SIGMAS * s);
    double j = q * q;
    if (speed > 0.0) {
        const double jd = gap / (speed * dt);
        j = jd < j ? jd : j;
    }
    const double hz = (double)horizon;
    j = hz < j ? hz : j;
    args.ves.leap_look[i] = n + (long long)floor(j);
}

// A FREE vesicle (not in flight, looking) far from every surface leaps: its
// ball from the clearance, then leap_path (and the horizon sampler).
// Returns the steps it flies (0: it did not leap).
__host__ __device__ inline long long try_leap(Vesicle& v, long long i, long long n, double D, double s,
                                                double vr, const Box& box, const Args& args) {
    const double dt = args.run.dt;
    const long long horizon = leap_horizon(n, args.run);
    if (horizon < LEAP_MIN_STEPS || !(s > 0.0)) return 0;
    const double vel[3] = {EXO_LDG(args.dom.flow + 0), EXO_LDG(args.dom.flow + 1),
                           EXO_LDG(args.dom.flow + 2) - EXO_LDG(args.par.settling + i)};
    const double speed = sqrt(vel[0] * vel[0] + vel[1] * vel[1] + vel[2] * vel[2]);
    // the faces: absorbing ones kept m away (d), reflecting ones under drift
    // touched at most (w); a drift-free reflecting face is crossed by folding
    double d = infinity(), w = infinity();
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        if (box.periodic[a]) continue;
        EXO_UNROLL
        for (int side = 0; side < 2; ++side) {
            const double gap = side == 0 ? v.p[a] : box.L[a] - v.p[a];
            if (box.absorb[2 * a + side]) d = gap < d ? gap : d;
            else if (vel[a] != 0.0) w = gap < w ? gap : w;
        }
    }
    long long kb[3];
    double e2 = 0.0;
    for (int a = 0; a < 3; ++a) {
        const long long nb = EXO_LDG(args.grid.nbins + a);
        const double h = EXO_LDG(args.grid.bin_size + a);
        long long k = (long long)floor(v.p[a] / h);
        k = k > 0 ? k : 0;
        kb[a] = k < nb - 1 ? k : nb - 1;
        const double e = v.p[a] - ((double)kb[a] + 0.5) * h;
        e2 = a == 0 ? e * e : e2 + e * e;
    }
    const long long b = (kb[0] * EXO_LDG(args.grid.nbins + 1) + kb[1]) * EXO_LDG(args.grid.nbins + 2) + kb[2];
    const double unlisted = EXO_LDG(args.grid.clearance + b) - sqrt(e2);
    d = unlisted < d ? unlisted : d;  // the cells the bin does not list
    const double margin = LEAP_MARGIN_SIGMAS * s + speed * dt;
    double r = d - margin < w ? d - margin : w;
    if (!(r > LEAP_MIN_SIGMAS * s)) {  // too close already
        put_off(i, n, horizon, LEAP_MIN_SIGMAS * s - r, s, speed, dt, args);
        return 0;
    }
    // and those it lists, exactly (none without a cell lookup: no gitems, as in contact)
    const long long kbeg = EXO_LDG(args.grid.gstart + b);
    const long long kend = args.grid.n_gitems > 0 ? EXO_LDG(args.grid.gstart + b + 1) : kbeg;
    for (long long k = kbeg; k < kend; ++k) {
        const int c = EXO_LDG(args.grid.gitems + k);
        double ce[3], e[3];
        const double dc = sqrt(separation(v.p, c, ce, e, box, args)) - (EXO_LDG(args.cells.cradius + c) + vr);
        d = dc < d ? dc : d;
    }
    r = d - margin < w ? d - margin : w;
    long long steps = horizon;
    if (speed > 0.0) {
        const double kmax = r / (2.0 * speed * dt);
        if (kmax < (double)steps) steps = (long long)floor(kmax > -1.0 ? kmax : -1.0);
    }
    double R = r - speed * ((double)steps * dt);
    const double cap = LEAP_CAP_SPREADS * (s * sqrt((double)steps));
    R = cap < R ? cap : R;
    if (steps < LEAP_MIN_STEPS || !(R >= LEAP_MIN_SIGMAS * s)) {
        put_off(i, n, horizon, LEAP_MIN_SIGMAS * s - r, s, speed, dt, args);
        return 0;
    }
    const unsigned long long id = (unsigned long long)i;
    const Doubles4 u = uniforms4(id, (unsigned int)n, STREAM_LEAP, args.run.k0, args.run.k1);
    const LeapPath path = leap_path(u.v0, u.v1, steps, R, D, dt,
                                    EXO_LDG(args.par.p_clear + EXO_LDG(args.par.species + i)));
    const long long k = path.k;
    Point3 y;
    Point3 z = {0.0, 0.0, 0.0};
    if (path.sh > 0.0) {  // inside at the horizon
        y = horizon_point(id, (unsigned int)n, path.sh, args.run);
    } else {
        double c_phi, s_phi;
        cos_sin_2pi(u.v3, c_phi, s_phi);
        y = sphere_point(u.v2, c_phi, s_phi, 1.0);
        if (path.g > 0.0) {
            const Doubles4 zz = normals4(id, (unsigned int)(n + k - 1), STREAM_DIFFUSE, args.run.k0, args.run.k1);
            z = {zz.v0, zz.v1, zz.v2};
        }
    }
    const double t = (double)k * dt;
    const double land[3] = {v.p[0] + (R * y.x + (vel[0] * t + path.g * z.x)),
                            v.p[1] + (R * y.y + (vel[1] * t + path.g * z.y)),
                            v.p[2] + (R * y.z + (vel[2] * t + path.g * z.z))};
    EXO_UNROLL
    for (int ax = 0; ax < 3; ++ax)
        v.p[ax] = box.periodic[ax] ? fold(land[ax], box.L[ax], true, v.image[ax])
                                   : fold_reflecting(land[ax], box.L[ax]);
    args.ves.leap_end[i] = n + k;
    args.ves.leaps[i] += 1;
    args.ves.leap_steps[i] += k;
    if (path.cleared) {
        v.state = CLEARED;
        args.ves.cleared_time[i] = (double)(n + k) * dt;
    }
    return k;
}

// -- the loop -------------------------------------------------------------------

// Advance vesicle i through steps n0..n1-1 (step n takes t_n = n·dt to t_{n+1}).
// Returns whether anything changed (a bound or pending vesicle often waits
// out the whole launch, and then need not be written back).
// ADAPTIVE: the entry points of run.stepping = "adaptive" (with the leap
// stage); the fixed ones have no leap code at all, so their registers and
// occupancy stay as they were (exodiff_step.cu).
template <Precision P, bool ADAPTIVE>
__host__ __device__ __forceinline__ bool advance_vesicle(long long i, long long n0, long long n1,
                                                         Vesicle& v, const Args& args) {
    const double dt = args.run.dt;
    const unsigned long long id = (unsigned long long)i;  // counter words 0 and 3

    // Loop invariants, hoisted: the same values Numba recomputes every step.
    Box box;
    EXO_UNROLL
    for (int a = 0; a < 3; ++a) {
        box.L[a] = EXO_LDG(args.dom.box + a);
        box.periodic[a] = EXO_LDG(args.dom.face_kind + 2 * a) == PERIODIC;
    }
    EXO_UNROLL
    for (int f = 0; f < 6; ++f) box.absorb[f] = EXO_LDG(args.dom.face_kind + f) == ABSORB;
    const double D = EXO_LDG(args.par.diffusion + i);
    const double s = EXO_LDG(args.par.sigma + i);
    const double vr = EXO_LDG(args.par.vradius + i);
    const double Ddt = D * dt;
    const double drift[3] = {EXO_LDG(args.dom.flow + 0) * dt, EXO_LDG(args.dom.flow + 1) * dt,
                             (EXO_LDG(args.dom.flow + 2) - EXO_LDG(args.par.settling + i)) * dt};
    const double pcl = EXO_LDG(args.par.p_clear + EXO_LDG(args.par.species + i));
    const bool adaptive = ADAPTIVE && args.run.adaptive != 0;
    bool changed = false;

    // a vesicle in flight (FREE) or waiting (BOUND, INTERNALIZED) is skipped
    // until it lands or its wait ends
    long long start = n0;
    if (adaptive) {
        const long long end = args.ves.leap_end[i];
        start = end > n0 ? end : n0;
    }
    for (long long n = start; n < n1; ++n) {
        const int st = v.state;
        if (st == EXITED || st == CLEARED || st == DELIVERED || st == DEGRADED) break;
        // the step's end time, (n + 1)·dt, is computed where it is written
        // (a milestone), so that it takes no register through the step
        const unsigned int nn = (unsigned int)n;  // counter word 1
        if (st == PENDING) {
            changed |= births(v, i, n, args);
            continue;
        }
        if (st == BOUND || st == INTERNALIZED) {
            // the steps to the next horizon, which a wait may not pass (kernels/leap.py, "Waits")
            const long long horizon = adaptive ? leap_horizon(n, args.run) : 0;
            if (st == BOUND) {
                n += bound_events(v, i, n, horizon, D, vr, id, nn, box, args, changed) - 1;
                continue;
            }
            const double pe = p_endo(v.cell, args);
            if (!(pe > 0.0)) break;  // in its endosome for good
            n += endosome_events(v, i, n, pe, horizon, D, vr, id, nn, box, args, changed) - 1;
            continue;
        }

        changed = true;
        if (adaptive && args.ves.leap_look[i] <= n) {
            const long long k = try_leap(v, i, n, D, s, vr, box, args);
            if (k > 0) {
                if (v.state == CLEARED) break;
                n += k - 1;  // in flight until step n + k
                continue;
            }
        }
        double p0[3];
        displacement<P>(v, p0, s, drift, id, nn, args.run);
        ContactUniform<0> uf = {false, 0.0};

        // an absorbed vesicle stops at its axis (its later axes keep their
        // unfolded values, as in Numba)
        if (cross_faces<0>(v, i, p0[0], (double)(n + 1) * dt, D, Ddt, id, nn, uf, box, args) ||
            cross_faces<1>(v, i, p0[1], (double)(n + 1) * dt, D, Ddt, id, nn, uf, box, args) ||
            cross_faces<2>(v, i, p0[2], (double)(n + 1) * dt, D, Ddt, id, nn, uf, box, args))
            break;

        if (args.grid.n_gitems > 0) {
            const int c = contact(v, p0, vr, Ddt, id, nn, box, args);
            if (c >= 0) {
                double ce[3], e[3];
                double r1 = sqrt(separation(v.p, c, ce, e, box, args));
                const double d1 = r1 - (EXO_LDG(args.cells.cradius + c) + vr);
                if (r1 == 0.0) {  // end point at the centre: any normal will do
                    e[2] = 1.0;
                    r1 = 1.0;
                }
                if (binding(v, i, c, (double)(n + 1) * dt, e, ce, r1, D, vr, id, nn, box, args)) continue;
                if (d1 < 0.0) reflection(v, c, e, ce, r1, vr, box, args);
            }
        }

        if (clearance(v, i, n, pcl, id, nn, args)) break;
    }
    return changed;
}

// Load vesicle i, advance it through steps n0..n1-1, store it back if it
// changed.  Vesicles in a final state are neither read nor written: with one
// launch per step (finite capacity) the memory traffic is the cost.
template <Precision P, bool ADAPTIVE>
__host__ __device__ __forceinline__ void advance_one(long long i, long long n0, long long n1,
                                                     const Args& args) {
    const Vesicles& A = args.ves;
    const int st = A.state[i];
    if (st == EXITED || st == CLEARED || st == DELIVERED || st == DEGRADED) return;
    if (st == INTERNALIZED && !(p_endo(A.cell[i], args) > 0.0)) return;
    Vesicle v;
    v.p[0] = A.px[i];
    v.p[1] = A.py[i];
    v.p[2] = A.pz[i];
    v.image[0] = A.ix[i];
    v.image[1] = A.iy[i];
    v.image[2] = A.iz[i];
    v.state = st;
    v.cell = A.cell[i];
    if (!advance_vesicle<P, ADAPTIVE>(i, n0, n1, v, args)) return;
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
// the vesicle count and the step range, every container's fields in order,
// and the grid's item count.
#define EXO_PARAM_P(T, name) , T* __restrict__ name
#define EXO_PARAM_S(T, name) , T name
#define EXO_ADVANCE_PARAMS                                                                   \
    long long n_vesicles, long long n0, long long n1 EXO_RUN(EXO_PARAM_P, EXO_PARAM_S)     \
        EXO_VESICLES(EXO_PARAM_P, EXO_PARAM_S) EXO_VESICLE_PARAMS(EXO_PARAM_P, EXO_PARAM_S) \
        EXO_DOMAIN(EXO_PARAM_P, EXO_PARAM_S) EXO_CELLS(EXO_PARAM_P, EXO_PARAM_S)            \
        EXO_CELL_TYPES(EXO_PARAM_P, EXO_PARAM_S) EXO_GRID(EXO_PARAM_P, EXO_PARAM_S),       \
        long long n_gitems, long long n_stops

// The containers from those parameters (inside an entry point).
#define EXO_INIT(T, name) name,
#define EXO_ADVANCE_ARGS                                                                     \
    const exo::Args args = {{EXO_RUN(EXO_INIT, EXO_INIT) n_stops},                           \
                            {EXO_VESICLES(EXO_INIT, EXO_INIT)},                              \
                            {EXO_VESICLE_PARAMS(EXO_INIT, EXO_INIT)},                        \
                            {EXO_DOMAIN(EXO_INIT, EXO_INIT)},                                \
                            {EXO_CELLS(EXO_INIT, EXO_INIT)},                                 \
                            {EXO_CELL_TYPES(EXO_INIT, EXO_INIT)},                            \
                            {EXO_GRID(EXO_INIT, EXO_INIT) n_gitems}}

#endif  // EXODIFF_STEP_CUH
