// CUDA kernels of the cuda backend (launched by exodiff/backend_cuda.py through
// cupy.RawModule; twin of kernels/step_numba.py: advance / count_bound).
//
// advance_f64, advance_mixed: one thread per vesicle runs exo::advance_one (exodiff_step.cuh)
// through steps n0..n1-1 with the vesicle's state in registers: global memory
// is read once and written once per launch, whatever the number of steps.
// Without receptor capacity the vesicles are independent and one launch runs
// many steps (fused); with it the backend launches one step at a time and
// recounts the bound vesicles per cell in between (count_bound), so binding
// reads the count as of the start of the step, as on the CPU.
//
// Compiles standalone (nvcc -I kernels -c exodiff_step.cu) and under NVRTC.
#include "exodiff_step.cuh"

// Threads per block; the backend passes its own value with -DEXO_BLOCK.
#ifndef EXO_BLOCK
#define EXO_BLOCK 256
#endif
// Blocks per SM the step kernels must fit (__launch_bounds__): 2 blocks of
// 256 threads caps them at 128 registers (25 % occupancy).  3 blocks (80
// registers) would make ptxas spill 48 bytes and 4 (64) 112 bytes, in the
// cell-contact loop, where the vesicle, its start point, the box and the
// per-vesicle constants are all live; moving the rare branches into
// __noinline__ functions costs a 384-byte frame instead (ABI saves).  Counts
// per architecture: tests/test_nvrtc.py (MAX_REGISTERS).
#ifndef EXO_MIN_BLOCKS
#define EXO_MIN_BLOCKS 2
#endif
// The adaptive entry points (the leap stage inlined: exodiff_step.cuh
// try_leap) need more registers than 2 blocks allow without spilling (ptxas,
// sm_90: 128 registers and a 144-byte frame at 2 blocks), so they run one
// block of 256 threads per SM at least; a leap saves tens to hundreds of
// steps, which pays for the lower occupancy (tests/test_nvrtc.py:
// MAX_REGISTERS_ADAPTIVE).
#ifndef EXO_MIN_BLOCKS_ADAPTIVE
#define EXO_MIN_BLOCKS_ADAPTIVE 1
#endif

// Vesicles i < n_vesicles, advanced from step n0 to n1: advance_f64 in float64
// throughout (run.precision = "double", bitwise with the CPU backends),
// advance_mixed with float32 normals (run.precision = "mixed").
extern "C" __global__ void __launch_bounds__(EXO_BLOCK, EXO_MIN_BLOCKS) advance_f64(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vesicles) exo::advance_one<exo::DOUBLE, false>(i, n0, n1, args);
}

extern "C" __global__ void __launch_bounds__(EXO_BLOCK, EXO_MIN_BLOCKS) advance_mixed(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vesicles) exo::advance_one<exo::MIXED, false>(i, n0, n1, args);
}

// The same with the leap stage (run.stepping = "adaptive").
extern "C" __global__ void __launch_bounds__(EXO_BLOCK, EXO_MIN_BLOCKS_ADAPTIVE)
    advance_f64_adaptive(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vesicles) exo::advance_one<exo::DOUBLE, true>(i, n0, n1, args);
}

extern "C" __global__ void __launch_bounds__(EXO_BLOCK, EXO_MIN_BLOCKS_ADAPTIVE)
    advance_mixed_adaptive(EXO_ADVANCE_PARAMS) {
    EXO_ADVANCE_ARGS;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vesicles) exo::advance_one<exo::MIXED, true>(i, n0, n1, args);
}

// bound_count[c] += number of BOUND vesicles on cell c (zero it first).
// Integer atomics: the count is exact whatever the order of the threads.
extern "C" __global__ void __launch_bounds__(EXO_BLOCK)
    count_bound(long long n_vesicles, const signed char* __restrict__ state,
                const int* __restrict__ cell, long long* __restrict__ bound_count) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vesicles && state[i] == exo::BOUND)
        atomicAdd(reinterpret_cast<unsigned long long*>(bound_count + cell[i]), 1ull);
}
