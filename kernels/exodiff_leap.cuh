// Exact first-passage propagators for leaps: CUDA/C++ twin of
// kernels/firstpassage.py.
//
// interval_survival(s), cube_exit_time(u) and interval_position(u, s) (the
// cube), ball_survival(s), ball_exit_time(u), ball_horizon_uniform(s) and
// ball_horizon_accept(r, s) (the ball), with their helpers and constants:
// the same expressions in the same order of operations, using only +, −, ×,
// ÷, sqrt and exp, log, sin, cos, erfc, so the host build (without FMA
// contraction, glibc's libm, as Numba) matches the Python/Numba functions bit
// for bit (tests/test_firstpassage.py).  On the device CUDA's libm (and
// sincospi for the sines and cosines, which keeps the trigonometric reduction
// out of local memory) and FMA contraction differ from glibc by an ulp or two
// per call; the sampled distributions are the same to round-off.  See
// firstpassage.py for the derivation and the error bounds.
#ifndef EXODIFF_LEAP_CUH
#define EXODIFF_LEAP_CUH

#include "exodiff_rng.cuh"  // the host/device qualifiers and <math.h>

namespace exo {
namespace leap {

// Constants correctly rounded (firstpassage.py)
constexpr double PI_2 = 1.5707963267948966;               // π/2
constexpr double PI2_4 = 2.4674011002723395;              // π²/4 = λ_0
constexpr double PI2 = 9.869604401089358;                 // π²
constexpr double PI4 = 97.40909103400244;                 // π⁴
constexpr double TWO_PI2 = 19.739208802178716;            // 2π²: r = e^{−2π² s}
constexpr double FOUR_OVER_PI = 1.2732395447351628;       // 4/π
constexpr double TWO_OVER_PI = 0.6366197723675814;        // 2/π
constexpr double LN_FOUR_OVER_PI = 0.24156447527049044;   // ln(4/π)
constexpr double INV_SQRT_PI = 0.5641895835477563;        // 1/√π
constexpr double LN_TWO_OVER_SQRT_PI = 0.12078223763524522;  // ln(2/√π)
constexpr double SQRT_HALF = 0.7071067811865476;          // 1/√2
constexpr double INV_TWO_PI = 0.15915494309189535;        // 1/(2π), device only

constexpr double S_SWITCH = 0.1;        // survival, exit time: images below, modes above
constexpr double X_SWITCH = 0.05;       // position: images below, modes above
constexpr double GAUSS_SWITCH = 0.006;  // position: the free Gaussian below
constexpr double MODE_CUTOFF = 1e-20;   // modes summed while e^{−(λ_k − λ_0)s} ≥ this
constexpr int MAX_MODES = 16;
constexpr int MAX_ITER = 60;            // Halley/bisection steps at most
constexpr double STOP = 1e-7;           // done after a Halley step below STOP (relative)
constexpr double E_SWITCH = 0.05202475901682888;  // −ln S(S_SWITCH) by the mode sum

// A&S 26.2.23: normal quantile to 4.5e-4, the image regime's first guess
constexpr double QC0 = 2.515517, QC1 = 0.802853, QC2 = 0.010328;
constexpr double QD1 = 1.432788, QD2 = 0.189269, QD3 = 0.001308;

// The ball (firstpassage.py, "the ball")
constexpr double PI = 3.141592653589793;                  // π
constexpr double LN_TWO = 0.6931471805599453;             // ln 2
constexpr double FOUR_OVER_SQRT_PI = 2.256758334191025;   // 4/√π
constexpr double LN_FOUR_OVER_SQRT_PI = 0.8139294181951905;  // ln(4/√π)
constexpr double BALL_SWITCH = 0.1;        // survival, exit time: images below, modes above
constexpr double BALL_U_SWITCH = 0.707100348157759;  // S_ball(BALL_SWITCH): exit time's switch
constexpr double BALL_Y_LO = 2.0;          // exit time, images: bracket 1/(4s) ≥ 2
constexpr double BALL_X_HI = 0.5;          // exit time, modes: bracket e^{−π² s} ≤ ½
constexpr double BALL_U_TINY = 5.9604644775390625e-08;  // 2^-24: e^{−π² s} = u/2 below
constexpr int MAX_BALL_MODES = 12;
constexpr double HORIZON_SWITCH = 0.19;    // horizon: Gaussian proposal below, uniform above
constexpr double HORIZON_TINY = 1e-18;     // horizon: acceptance 1.0 below (every r < 1)
constexpr int IMAGE_PAIRS = 3;             // horizon, images: n = ±1, ±2, ±3
constexpr double SHC_SWITCH = 0.5;         // sinh(x)/x by its series below

struct Sums3 {
    double a, b, c;
};

struct Step {
    double x, lo, hi;
    bool done;
};

// (A, B, C) = Σ_k (−1)^k (1, k(k+1), k²(k+1)²)·c_k/(2k+1), c_k = e^{−π² s k(k+1)}.
__host__ __device__ __forceinline__ Sums3 mode_sums(double s) {
    const double r = exp(-TWO_PI2 * s);
    double a = 1.0, b = 0.0, cc = 0.0, c = 1.0, ratio = 1.0, sign = 1.0;
    for (int k = 1; k < MAX_MODES; ++k) {
        ratio = ratio * r;
        c = c * ratio;
        if (c < MODE_CUTOFF) break;
        sign = -sign;
        const double term = sign * c / (2.0 * k + 1.0);
        const double kk = k * (k + 1.0);
        a = a + term;
        b = b + kk * term;
        cc = cc + (kk * kk) * term;
    }
    return Sums3{a, b, cc};
}

// −ln(1 − q) for 0 ≤ q < 1, relatively accurate for small q (Goldberg).
__host__ __device__ __forceinline__ double neg_log1m(double q) {
    const double w = 1.0 - q;
    if (w == 1.0) return q;
    return q * log(w) / (w - 1.0);
}

// One safeguarded Halley step on a monotone f (f1's sign tells which way):
// the bracket narrowed by x, then x − 2 f f1/(2 f1² − f f2), or the bracket's
// midpoint where that leaves it; done after a Halley step below STOP·(x + floor).
__host__ __device__ __forceinline__ Step halley(double x, double f, double f1, double f2,
                                                double lo, double hi, double floor) {
    if ((f > 0.0) == (f1 > 0.0)) hi = x; else lo = x;
    const double xn = x - 2.0 * f * f1 / (2.0 * f1 * f1 - f * f2);
    if (xn >= lo && xn <= hi) return Step{xn, lo, hi, fabs(xn - x) <= STOP * (xn + floor)};
    return Step{0.5 * (lo + hi), lo, hi, false};
}

// asin(v) for 0 ≤ v ≤ ½ by its Taylor series to v⁹ (error < 1.2e-5).
__host__ __device__ __forceinline__ double asin_series(double v) {
    const double v2 = v * v;
    return v * (1.0 + v2 * (1.0 / 6.0 + v2 * (0.075 + v2 * (5.0 / 112.0 + v2 * (35.0 / 1152.0)))));
}

// First guess of φ with h(φ) = v2 (firstpassage._mode_guess): the first
// mode's root, moved by one Newton step for the second mode (c1 = r).
__host__ __device__ __forceinline__ double mode_guess(double v2, double r) {
    const double sb = sqrt(v2);
    double b0;
    if (sb <= 0.5) {
        b0 = asin_series(sb);
    } else {
        b0 = PI_2 - 2.0 * asin_series(sqrt(0.5 * (1.0 - sb)));
    }
    const double w = 3.0 - 4.0 * v2;
    return 2.0 * (b0 + r / 6.0 * sb * (w * w) / sqrt(1.0 - v2));
}

// (h, p, p') at φ (firstpassage._mode_tail); r = e^{−2π² s}.
__host__ __device__ __forceinline__ Sums3 mode_tail(double phi, double r) {
#if defined(__CUDA_ARCH__)
    // sin, cos of φ/2 = π·(φ/2π) without the Payne–Hanek path (local memory)
    double sb, cb;
    sincospi(phi * INV_TWO_PI, &sb, &cb);
#else
    const double sb = sin(0.5 * phi);
    const double cb = cos(0.5 * phi);
#endif
    const double lam = -4.0 * sb * sb;
    double ys = sb, ds = 2.0 * sb;   // sin((2k+1)β), Reinsch: ds += λ·ys, ys += ds
    double yc = cb, dc = 0.0;        // cos((2k+1)β)
    double h = sb * sb;
    double p = 2.0 * sb * cb;
    double dp = cb * cb - sb * sb;
    double c = 1.0, ratio = 1.0, sign = 1.0;
    for (int k = 1; k < MAX_MODES; ++k) {
        ratio = ratio * r;
        c = c * ratio;
        if (c < MODE_CUTOFF) break;
        ds = ds + lam * ys;
        ys = ys + ds;
        dc = dc + lam * yc;
        yc = yc + dc;
        sign = -sign;
        const double sc = sign * c;
        const double odd = 2.0 * k + 1.0;
        h = h + sc * (ys * ys) / odd;
        p = p + sc * (2.0 * ys * yc);
        dp = dp + sc * odd * (yc * yc - ys * ys);
    }
    return Sums3{h, p, dp};
}

// |ξ| ≥ 0 with mass a·S beyond it (modes, s ≥ X_SWITCH), Halley in φ = π(1 − ξ)/2.
__host__ __device__ inline double mode_position(double a, double s) {
    const double r = exp(-TWO_PI2 * s);
    const double amp = mode_sums(s).a;
    const double lt = log(a * amp);
    double lo = 0.0, hi = PI_2;
    double x = mode_guess(a * amp, r);
    if (x > hi) x = hi;
    for (int it = 0; it < MAX_ITER; ++it) {
        const Sums3 t = mode_tail(x, r);
        const double h = t.a, p = t.b, dp = t.c;
        if (h > 0.0 && p > 0.0) {
            const double f = log(h) - lt;
            const double f1 = 0.5 * p / h;
            const double f2 = 0.5 * dp / h - f1 * f1;
            const Step st = halley(x, f, f1, f2, lo, hi, 0.0);
            x = st.x;
            lo = st.lo;
            hi = st.hi;
            if (st.done) break;
        } else {  // φ so small that h underflowed
            lo = x;
            x = 0.5 * (lo + hi);
        }
    }
    return 1.0 - TWO_OVER_PI * x;
}

// |ξ| ≥ 0 with mass a·S beyond it (images, s < X_SWITCH), Halley in t = ξz.
__host__ __device__ inline double image_position(double a, double s) {
    const double z = 0.5 / sqrt(s);
    const bool images = s >= GAUSS_SWITCH;
    double ez, lt;
    if (images) {
        ez = erfc(z);
        lt = log(a * (1.0 - 2.0 * ez));
    } else {
        ez = 0.0;
        lt = log(a);
    }
    const double eta = sqrt(-2.0 * log(a));
    double x = (eta - (QC0 + eta * (QC1 + eta * QC2)) / (1.0 + eta * (QD1 + eta * (QD2 + eta * QD3)))) * SQRT_HALF;
    double lo = 0.0, hi = z;
    if (x < lo) x = lo;
    if (x > hi) x = 0.5 * hi;
    for (int it = 0; it < MAX_ITER; ++it) {
        double h = 0.5 * erfc(x);
        double g = exp(-x * x);
        double dg = -2.0 * x * g;
        if (images) {
            const double zm = 2.0 * z - x;
            const double zp = 2.0 * z + x;
            const double em = exp(-zm * zm);
            const double ep = exp(-zp * zp);
            h = h + 0.5 * (erfc(zm) - erfc(zp)) - ez;
            g = g - em - ep;
            dg = dg - 2.0 * zm * em + 2.0 * zp * ep;
        }
        if (h > 0.0 && g > 0.0) {
            const double f = log(h) - lt;
            const double f1 = -INV_SQRT_PI * g / h;
            const double f2 = -INV_SQRT_PI * dg / h - f1 * f1;
            const Step st = halley(x, f, f1, f2, lo, hi, 1.0);
            x = st.x;
            lo = st.lo;
            hi = st.hi;
            if (st.done) break;
        } else {  // so far out that H underflowed
            hi = x;
            x = 0.5 * (lo + hi);
        }
    }
    return x / z;
}

// (A, B, C) = Σ_{n≥1} (−1)^{n+1} (1, n², n²(n²−1))·x^{n²−1}, x = e^{−π² s}
// (firstpassage._ball_modes): S = 2xA; with P = xA: P' = B, x·P'' = C.
__host__ __device__ __forceinline__ Sums3 ball_modes(double x) {
    const double x2 = x * x;
    double ratio = x, c = 1.0, a = 1.0, b = 1.0, cc = 0.0, sign = 1.0;
    for (int n = 2; n < MAX_BALL_MODES; ++n) {
        ratio = ratio * x2;   // x^{2n−1}
        c = c * ratio;        // x^{n²−1}
        if (c < MODE_CUTOFF) break;
        sign = -sign;
        const double term = sign * c;
        const double nn = n * n * 1.0;
        a = a + term;
        b = b + nn * term;
        cc = cc + (nn * (nn - 1.0)) * term;
    }
    return Sums3{a, b, cc};
}

// sinh(x)/x for 0 ≤ x < SHC_SWITCH by its Taylor series to x¹².
__host__ __device__ __forceinline__ double sinhc(double x) {
    const double x2 = x * x;
    return 1.0 + x2 * (1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (1.0 / 5040.0 + x2 * (
        1.0 / 362880.0 + x2 * (1.0 / 39916800.0 + x2 * (1.0 / 6227020800.0))))));
}

}  // namespace leap

// Probability that 1-D Brownian motion started at the centre of (−a, a) is
// still inside at dimensionless time s = D t/a² (1 for s ≤ 0).
__host__ __device__ inline double interval_survival(double s) {
    if (!(s > 0.0)) return 1.0;
    if (s < leap::S_SWITCH) {
        const double z = 0.5 / sqrt(s);
        return 1.0 - 2.0 * (erfc(z) - erfc(3.0 * z));
    }
    return leap::FOUR_OVER_PI * exp(-leap::PI2_4 * s) * leap::mode_sums(s).a;
}

// The dimensionless s with interval_survival(s)³ = u for u in (0, 1): the
// exit time from a cube of half-width a is s·a²/D (0 for u ≥ 1, inf for u ≤ 0).
__host__ __device__ inline double cube_exit_time(double u) {
    if (!(u < 1.0)) return 0.0;
    if (!(u > 0.0)) return infinity();
    const double target = -log(u) / 3.0;
    if (target >= leap::E_SWITCH) {
        double lo = leap::S_SWITCH;
        double hi = (target + leap::LN_FOUR_OVER_PI) / leap::PI2_4;
        double x = hi;
        for (int it = 0; it < leap::MAX_ITER; ++it) {
            const leap::Sums3 m = leap::mode_sums(x);
            const double ba = m.b / m.a;
            const double f = leap::PI2_4 * x - leap::LN_FOUR_OVER_PI - log(m.a) - target;
            const double f1 = leap::PI2_4 + leap::PI2 * ba;
            const double f2 = leap::PI4 * (ba * ba - m.c / m.a);
            const leap::Step st = leap::halley(x, f, f1, f2, lo, hi, 0.0);
            x = st.x;
            lo = st.lo;
            hi = st.hi;
            if (st.done) break;
        }
        return x;
    }
    const double lt = log(target);
    const double z0sq = leap::LN_TWO_OVER_SQRT_PI - lt;
    double lo = 1.0 / leap::S_SWITCH;
    double hi = 4.0 * z0sq;
    double x = 4.0 * (z0sq - 0.5 * log(z0sq));
    if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
    for (int it = 0; it < leap::MAX_ITER; ++it) {
        const double z = 0.5 * sqrt(x);
        const double zz = z * z;
        const double e1 = exp(-zz);
        const double e9 = exp(-9.0 * zz);
        const double q = 2.0 * (erfc(z) - erfc(3.0 * z));
        const double e = leap::neg_log1m(q);
        const double m = 1.0 - q;
        const double k = leap::INV_SQRT_PI / (2.0 * z);
        const double qw = -k * (e1 - 3.0 * e9);
        const double qww = -k * (-2.0 * e1 + 54.0 * e9 - (e1 - 3.0 * e9) / zz) / 8.0;
        const double ew = qw / m;
        const double eww = qww / m + ew * ew;
        const double f = log(e) - lt;
        const double f1 = ew / e;
        const double f2 = eww / e - f1 * f1;
        const leap::Step st = leap::halley(x, f, f1, f2, lo, hi, 0.0);
        x = st.x;
        lo = st.lo;
        hi = st.hi;
        if (st.done) break;
    }
    return 1.0 / x;
}

// ξ in (−1, 1): the u-quantile of X(t)/a at dimensionless time s given that X,
// started at the centre, has not left (−a, a) by then (0 for s ≤ 0).
__host__ __device__ inline double interval_position(double u, double s) {
    if (!(s > 0.0)) return 0.0;
    double a, sign;
    if (u < 0.5) {
        a = u;
        sign = -1.0;
    } else {
        a = 1.0 - u;
        sign = 1.0;
    }
    if (!(a > 0.0)) return sign;
    if (s >= leap::X_SWITCH) return sign * leap::mode_position(a, s);
    return sign * leap::image_position(a, s);
}

// Probability that Brownian motion started at the centre of a ball of radius R
// is still inside at dimensionless time s = D t/R² (1 for s ≤ 0).
__host__ __device__ inline double ball_survival(double s) {
    if (!(s > 0.0)) return 1.0;
    if (s < leap::BALL_SWITCH) {
        const double y = 0.25 / s;
        const double q = exp(-y);
        const double q2 = q * q;
        const double q4 = q2 * q2;
        return 1.0 - leap::FOUR_OVER_SQRT_PI * sqrt(y) * q * (1.0 + q4 * q4);
    }
    const double x = exp(-leap::PI2 * s);
    return 2.0 * x * leap::ball_modes(x).a;
}

// The dimensionless s with ball_survival(s) = u for u in (0, 1): the exit time
// from a ball of radius R is s·R²/D (0 for u ≥ 1, inf for u ≤ 0).
__host__ __device__ inline double ball_exit_time(double u) {
    if (!(u < 1.0)) return 0.0;
    if (!(u > 0.0)) return infinity();
    if (u > leap::BALL_U_SWITCH) {
        // images, in y = 1/(4s): y − ½ ln y − ln(1 + e^{−8y}) = L
        const double big_l = leap::LN_FOUR_OVER_SQRT_PI - log(1.0 - u);
        const double ll = log(big_l);
        double x = big_l + 0.5 * ll + 0.25 * ll / big_l;
        double lo = leap::BALL_Y_LO;
        double hi = 2.0 * big_l;
        if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
        for (int it = 0; it < leap::MAX_ITER; ++it) {
            const double e8 = exp(-8.0 * x);
            const double f = x - 0.5 * log(x) - e8 * (1.0 - 0.5 * e8) - big_l;
            const double f1 = 1.0 - 0.5 / x + 8.0 * e8;
            const double f2 = 0.5 / (x * x) - 64.0 * e8;
            const leap::Step st = leap::halley(x, f, f1, f2, lo, hi, 0.0);
            x = st.x;
            lo = st.lo;
            hi = st.hi;
            if (st.done) break;
        }
        return 0.25 / x;
    }
    if (u < leap::BALL_U_TINY) return (leap::LN_TWO - log(u)) / leap::PI2;
    // modes, in x = e^{−π² s}: x − x⁴ + x⁹ − … = u/2
    const double v = 0.5 * u;
    const double v3 = v * v * v;
    double x = v + v * v3 * (1.0 + v3 * (4.0 + v * v * (22.0 * v - 1.0)));
    double lo = v;
    double hi = leap::BALL_X_HI;
    if (!(x >= lo && x < hi)) x = 0.5 * (lo + hi);
    for (int it = 0; it < leap::MAX_ITER; ++it) {
        const leap::Sums3 m = leap::ball_modes(x);
        const double f = x * m.a - v;
        const leap::Step st = leap::halley(x, f, m.b, m.c / x, lo, hi, 0.0);
        x = st.x;
        lo = st.lo;
        hi = st.hi;
        if (st.done) break;
    }
    return -log(x) / leap::PI2;
}

// Which proposal the horizon sampler uses at s: true = uniform in the ball,
// false = the free Gaussian N(0, 2s I).
__host__ __device__ inline bool ball_horizon_uniform(double s) {
    return s >= leap::HORIZON_SWITCH;
}

// Acceptance probability, in [0, 1] to round-off, of a proposal at radius
// r ≥ 0 (of the unit ball) for the position at time s given survival:
// p_ball/p_free for the Gaussian proposal, p_ball(r)/p_ball(0) for the uniform
// one; 0 for r ≥ 1.
__host__ __device__ inline double ball_horizon_accept(double r, double s) {
    if (!(r < 1.0)) return 0.0;
    if (!(s >= leap::HORIZON_TINY)) return 1.0;
    if (s >= leap::HORIZON_SWITCH) {
        // modes: Σ n sin(nπr)/(πr)·c_n / Σ n² c_n, sin(nθ)/sin θ = U_{n−1}(cos θ)
        const double x = exp(-leap::PI2 * s);
        const double th = leap::PI * r;
#if defined(__CUDA_ARCH__)
        double sn, cs;
        sincospi(r, &sn, &cs);  // r in [0, 1): no Payne–Hanek reduction (local memory)
#else
        const double sn = sin(th);
        const double cs = cos(th);
#endif
        const double two_cs = 2.0 * cs;
        double u_prev = 1.0, u_cur = two_cs;
        const double x2 = x * x;
        double ratio = x, c = 1.0, num = 1.0, den = 1.0;
        for (int n = 2; n < leap::MAX_BALL_MODES; ++n) {
            ratio = ratio * x2;
            c = c * ratio;
            const double nn = n * n * 1.0;
            if (nn * c < leap::MODE_CUTOFF) break;
            num = num + (n * u_cur) * c;
            den = den + nn * c;
            const double u_next = two_cs * u_cur - u_prev;
            u_prev = u_cur;
            u_cur = u_next;
        }
        double sinc = 1.0;
        if (th > 0.0) sinc = sn / th;
        return sinc * num / den;
    }
    // images: 1 + Σ_{n≥1} e^{−n²/s}[2cosh(nr/s) − (4n/r) sinh(nr/s)]
    const double inv_s = 1.0 / s;
    const double g = exp(-inv_s);
    const double am1 = exp(-(1.0 - r) * inv_s);
    const double ap1 = exp(-(1.0 + r) * inv_s);
    const double g2 = g * g;
    double am = am1, ap = ap1, gn = g, g2n = g2, acc = 1.0;
    for (int n = 1; n < leap::IMAGE_PAIRS + 1; ++n) {
        const double xn = n * r * inv_s;
        double term;
        if (xn < leap::SHC_SWITCH) {
            term = (am + ap) - (4.0 * n * n) * inv_s * gn * leap::sinhc(xn);
        } else {
            term = (am + ap) - (2.0 * n / r) * (am - ap);
        }
        acc = acc + term;
        am = am * am1 * g2n;
        ap = ap * ap1 * g2n;
        gn = gn * g2n * g;
        g2n = g2n * g2;
    }
    return acc;
}

}  // namespace exo

#endif  // EXODIFF_LEAP_CUH
