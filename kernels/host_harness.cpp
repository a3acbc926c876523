// Host harness: the CUDA step body (exodiff_step.cuh) run on the CPU.
//
// Twin of exodiff_step.cu with a loop over vesicles where the GPU has one
// thread each, and the same entry points and parameter lists, so the tests
// drive it with the cuda backend's own argument builder
// (exodiff/backend_cuda.py: launch_args) and compare it with Numba bit for bit
// (DESIGN §3).  Built by tests/test_cuda_host.py as a shared library:
//     g++ -O2 -fno-fast-math -ffp-contract=off -shared -fPIC -I kernels
// (no FMA contraction, glibc's libm: the same arithmetic Numba does).
// advance_mixed is run.precision = "mixed" (float32 normals; checked
// statistically, not bitwise).  philox4x32 and normals4 expose the random numbers for the known-answer and
// bit-for-bit tests.
#include "exodiff_step.cuh"

extern "C" void advance_f64(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    for (long long i = 0; i < n_vesicles; ++i) exo::advance_one<exo::DOUBLE, false>(i, n0, n1, args);
}

extern "C" void advance_mixed(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    for (long long i = 0; i < n_vesicles; ++i) exo::advance_one<exo::MIXED, false>(i, n0, n1, args);
}

// run.stepping = "adaptive": the same with the leap stage.
extern "C" void advance_f64_adaptive(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    for (long long i = 0; i < n_vesicles; ++i) exo::advance_one<exo::DOUBLE, true>(i, n0, n1, args);
}

extern "C" void advance_mixed_adaptive(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    for (long long i = 0; i < n_vesicles; ++i) exo::advance_one<exo::MIXED, true>(i, n0, n1, args);
}

extern "C" void count_bound(long long n_vesicles, const signed char* state, const int* cell,
                            long long* bound_count) {
    for (long long i = 0; i < n_vesicles; ++i)
        if (state[i] == exo::BOUND) bound_count[cell[i]] += 1;
}

// Philox4x32-10 of ctr[4], key[2] into out[4] (the Random123 known answers).
extern "C" void philox4x32(const unsigned int* ctr, const unsigned int* key, unsigned int* out) {
    const exo::Words4 w = exo::philox4x32(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
    out[0] = w.x0;
    out[1] = w.x1;
    out[2] = w.x2;
    out[3] = w.x3;
}

// normals4(first + i, c1, c2, k0, k1) for i < n into out[4, n].
extern "C" void normals4(unsigned long long first, long long n, unsigned int c1, unsigned int c2,
                         unsigned int k0, unsigned int k1, double* out) {
    for (long long i = 0; i < n; ++i) {
        const exo::Doubles4 z = exo::normals4(first + (unsigned long long)i, c1, c2, k0, k1);
        out[i] = z.v0;
        out[n + i] = z.v1;
        out[2 * n + i] = z.v2;
        out[3 * n + i] = z.v3;
    }
}
