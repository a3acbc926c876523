// Philox4x32-10 counter-based random numbers: CUDA/C++ twin of kernels/philox.py.
//
// Salmon et al., SC'11; constants from Random123 include/Random123/philox.h.
// Counter = (vesicle id mod 2^32, step, stream, vesicle id div 2^32), key =
// seed (low word, high word):
// every number is a pure function of what it is for, so the GPU draws exactly
// the words the CPU backends draw (DESIGN §2).  The integer arithmetic is
// exact everywhere; to_uniform is one exact conversion, one exact add (the
// sum needs 34 significant bits) and a multiply by a power of two, so uniforms are
// bit-identical too.  normals4 on the host (the harness) evaluates the CPU
// backends' polynomial log and cos/sin, bit for bit; on the device it uses
// CUDA's log and sincospi(2u) (no Payne–Hanek reduction path, hence no local
// memory, for an angle that is always in [0, 2π)), within an ulp or two.
//
// Compiles as CUDA (nvcc, NVRTC) and as plain C++ (the host harness).
#ifndef EXODIFF_RNG_CUH
#define EXODIFF_RNG_CUH

#if !defined(__CUDACC__)
// Plain C++ (the host harness): the CUDA qualifiers mean nothing.
#define __host__
#define __device__
#define __forceinline__ inline
#endif

// Unroll small fixed loops on the device (so that arrays indexed by the loop
// variable stay in registers); host compilers do not know the pragma.
#if defined(__CUDA_ARCH__)
#define EXO_UNROLL _Pragma("unroll")
#else
#define EXO_UNROLL
#endif

#if !defined(__CUDACC_RTC__)
#include <math.h>  // NVRTC has the math functions built in and no system headers
#include <string.h>
#endif

namespace exo {

// +inf without headers under NVRTC (no HUGE_VAL there): the contact radius
// of a flat face, a leap's clearance before the faces are seen, the exit
// time for u <= 0.
__host__ __device__ __forceinline__ double infinity() {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double(0x7ff0000000000000LL);
#else
    return HUGE_VAL;
#endif
}

// Stream ids: the third counter word.  Mirror of the STREAM_* list in
// kernels/philox.py (tests/test_cuda_host.py checks that they agree).
enum Stream : unsigned int {
    STREAM_DIFFUSE = 0,  // per step: 4 normals, 3 for the displacement
    STREAM_CONTACT = 1,  // per step: faces, cell contact, binding, clearance
    STREAM_BOUND = 2,    // per step: bound-state event, channel, unbinding placement
    STREAM_PLACE = 3,    // setup: initial placement (counter word 1 = attempt)
    STREAM_BIRTH = 4,    // setup: secretion times (counter word 0 = donor cell)
    STREAM_RADIUS = 5,   // setup: vesicle radius draw
    STREAM_SURFACE = 6,  // setup: birth position on the donor's surface
    STREAM_LEAP = 7,     // per leap (word 1 = its first step): exit time, clearance, exit direction (cos θ, φ)
    STREAM_LEAP_POSITION = 8,  // per leap at its horizon: attempt j of the position in the ball uses 8 + 256 j (and + 128)
};

struct Words4 {
    unsigned int x0, x1, x2, x3;
};

struct Doubles4 {
    double v0, v1, v2, v3;
};

__host__ __device__ __forceinline__ void mulhilo32(unsigned int a, unsigned int b,
                                                   unsigned int& hi, unsigned int& lo) {
#if defined(__CUDA_ARCH__)
    hi = __umulhi(a, b);  // one instruction instead of a 64-bit multiply
    lo = a * b;
#else
    const unsigned long long p = (unsigned long long)a * b;
    hi = (unsigned int)(p >> 32);
    lo = (unsigned int)p;
#endif
}

// Philox4x32-10 of counter (c0..c3) and key (k0, k1).
__host__ __device__ __forceinline__ Words4 philox4x32(unsigned int c0, unsigned int c1,
                                                      unsigned int c2, unsigned int c3,
                                                      unsigned int k0, unsigned int k1) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const unsigned int W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    EXO_UNROLL
    for (int r = 0; r < 10; ++r) {
        unsigned int hi0, lo0, hi1, lo1;
        mulhilo32(M0, c0, hi0, lo0);
        mulhilo32(M1, c2, hi1, lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;  // the key schedule wraps mod 2^32, as in Random123
        k1 += W1;
    }
    Words4 w = {c0, c1, c2, c3};
    return w;
}

// 32-bit word -> uniform double in (0, 1), never 0 or 1.
__host__ __device__ __forceinline__ double to_uniform(unsigned int x) {
    return ((double)x + 0.5) * (1.0 / 4294967296.0);
}

// Four uniforms in (0, 1) from counter (id's low word, c1, c2, id's high
// word): the high word was 0 before ids reached 2^32, so the numbers of ids
// below it are unchanged (philox.id_words_np).
__host__ __device__ __forceinline__ Doubles4 uniforms4(unsigned long long id, unsigned int c1,
                                                       unsigned int c2, unsigned int k0,
                                                       unsigned int k1) {
    const Words4 w = philox4x32((unsigned int)id, c1, c2, (unsigned int)(id >> 32), k0, k1);
    Doubles4 u = {to_uniform(w.x0), to_uniform(w.x1), to_uniform(w.x2), to_uniform(w.x3)};
    return u;
}

#if !defined(__CUDA_ARCH__)
// The host's log and cos/sin of 2πu: the polynomials of kernels/philox.py
// (poly_log, poly_cos_sin_2pi), the same operations in the same order.
__host__ __forceinline__ double poly_log(double x) {
    const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
    long long ix;
    memcpy(&ix, &x, sizeof ix);
    const long long e = (ix - 0x3FE6A09E667F3BCDLL) >> 52;  // arithmetic shift, as NumPy's
    const long long im = ix - (long long)((unsigned long long)e << 52);
    double m;
    memcpy(&m, &im, sizeof m);
    const double f = (m - 1.0) / (m + 1.0);
    const double f2 = f * f;
    double p = 1.0 / 23.0;
    for (int k = 10; k >= 1; --k) p = p * f2 + 1.0 / (2 * k + 1);
    const double fe = (double)(int)e;
    return fe * LN2_HI + (2.0 * f + (2.0 * f * f2 * p + fe * LN2_LO));
}

__host__ __forceinline__ void poly_cos_sin_2pi(double u, double& c_out, double& s_out) {
    const double TWO_PI = 2.0 * 3.14159265358979323846;  // = 2.0 * math.pi exactly
    // (-1)^k / (2k+1)! and (-1)^k / (2k)!, the values Python's float division gives
    static const double S[8] = {-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0,
                                -1.0 / 39916800.0, 1.0 / 6227020800.0, -1.0 / 1307674368000.0,
                                1.0 / 355687428096000.0};
    static const double C[9] = {-1.0 / 2.0, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0,
                                -1.0 / 3628800.0, 1.0 / 479001600.0, -1.0 / 87178291200.0,
                                1.0 / 20922789888000.0, -1.0 / 6402373705728000.0};
    const int q = (int)(4.0 * u + 0.5);
    const double x = TWO_PI * (u - 0.25 * (double)q);
    const double x2 = x * x;
    double s = S[7];
    for (int k = 6; k >= 0; --k) s = s * x2 + S[k];
    s = x + x * x2 * s;
    double c = C[8];
    for (int k = 7; k >= 0; --k) c = c * x2 + C[k];
    c = 1.0 + x2 * c;
    const double swap = (double)(q & 1);
    const double sign = 1.0 - 2.0 * (double)((q >> 1) & 1);
    c_out = (c * (1.0 - swap) - s * swap) * sign;
    s_out = (s * (1.0 - swap) + c * swap) * sign;
}
#endif

// Four standard normals from the counter of uniforms4 by Box–Muller on the
// pairs (u0, u1) and (u2, u3); the same expressions as philox.normals4.
__host__ __device__ __forceinline__ Doubles4 normals4(unsigned long long id, unsigned int c1,
                                                      unsigned int c2, unsigned int k0,
                                                      unsigned int k1) {
    const Doubles4 u = uniforms4(id, c1, c2, k0, k1);
    double sin0, cos0, sin1, cos1;
#if defined(__CUDA_ARCH__)
    const double r0 = sqrt(-2.0 * log(u.v0));
    const double r1 = sqrt(-2.0 * log(u.v2));
    sincospi(2.0 * u.v1, &sin0, &cos0);
    sincospi(2.0 * u.v3, &sin1, &cos1);
#else
    const double r0 = sqrt(-2.0 * poly_log(u.v0));
    const double r1 = sqrt(-2.0 * poly_log(u.v2));
    poly_cos_sin_2pi(u.v1, cos0, sin0);
    poly_cos_sin_2pi(u.v3, cos1, sin1);
#endif
    Doubles4 z = {r0 * cos0, r0 * sin0, r1 * cos1, r1 * sin1};
    return z;
}

// 32-bit word -> uniform float in (0, 1): its top 23 bits plus one half, all
// exact in float32's 24-bit significand, so never 0 or 1 (2^-24 ≤ u ≤ 1 − 2^-24).
__host__ __device__ __forceinline__ float to_uniform_f32(unsigned int x) {
    return ((float)(x >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

// run.precision = "mixed": the four normals of normals4's counter (the same
// Philox words) with Box–Muller in float32, returned as doubles for the
// float64 positions.  Statistically equivalent to normals4, not bitwise: the
// uniforms keep 23 bits, so |z| ≤ √(−2 ln 2^-24) ≈ 5.8 (a tail of 7e-9 lost
// per normal; float64's is 6.9), and each normal carries a relative error of
// a few float32 ulps (~1e-7).  Consumer GPUs run float32 at 32–64 times their
// float64 rate, and these are most of the arithmetic of a free step.
__host__ __device__ __forceinline__ Doubles4 normals4_mixed(unsigned long long id, unsigned int c1,
                                                            unsigned int c2, unsigned int k0,
                                                            unsigned int k1) {
    const Words4 w = philox4x32((unsigned int)id, c1, c2, (unsigned int)(id >> 32), k0, k1);
    const float r0 = sqrtf(-2.0f * logf(to_uniform_f32(w.x0)));
    const float r1 = sqrtf(-2.0f * logf(to_uniform_f32(w.x2)));
    float sin0, cos0, sin1, cos1;
#if defined(__CUDA_ARCH__)
    sincospif(2.0f * to_uniform_f32(w.x1), &sin0, &cos0);
    sincospif(2.0f * to_uniform_f32(w.x3), &sin1, &cos1);
#else
    const float TWO_PI_F = 6.28318530717958647692f;
    sin0 = sinf(TWO_PI_F * to_uniform_f32(w.x1));
    cos0 = cosf(TWO_PI_F * to_uniform_f32(w.x1));
    sin1 = sinf(TWO_PI_F * to_uniform_f32(w.x3));
    cos1 = cosf(TWO_PI_F * to_uniform_f32(w.x3));
#endif
    Doubles4 z = {(double)(r0 * cos0), (double)(r0 * sin0), (double)(r1 * cos1), (double)(r1 * sin1)};
    return z;
}

}  // namespace exo

#endif  // EXODIFF_RNG_CUH
