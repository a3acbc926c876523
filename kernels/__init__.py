"""Performance-critical core: Philox RNG, the step as NumPy reference and Numba
kernel, and CUDA sources (*.cu/*.cuh).  Installed as ``exodiff.kernels``."""
