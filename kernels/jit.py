"""Numba's ``njit`` where Numba is installed, else the plain Python function.

Modules whose compiled functions the NumPy reference path also calls (the
surface probabilities, the cell grid and packing) decorate them with this
``njit``, so the NumPy backend runs, slowly but identically, on a machine
without Numba (DESIGN §3: the reference is slow and obvious).  The Numba
kernels themselves (step_numba.py, philox_numba.py) import numba directly.
"""
try:
    import numba
except ImportError:  # the NumPy reference runs without it
    numba = None


def njit(*args, **options):
    """``numba.njit(*args, **options)``, or the function itself without Numba."""
    if numba is not None:
        return numba.njit(*args, **options)
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]
    return lambda fn: fn
