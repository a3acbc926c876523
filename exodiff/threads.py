"""CPU threads of the Numba kernels: how many, and how they wait.

How many: ``--threads N`` (run, validate, bench, sweep) or the environment's
``NUMBA_NUM_THREADS``; by default Numba's, one per core.  Results do not
depend on it (DESIGN §2).

How they wait: Numba runs parallel loops on its OpenMP threading layer here
(GNU libgomp).  Unless told otherwise, a libgomp thread that finishes its
share of a parallel loop spins, up to GOMP_SPINCOUNT = 300,000 times, before
it sleeps (GCC's libgomp manual, "GOMP_SPINCOUNT").  The kernel with
receptor capacity ran one parallel loop per step (it now runs one per
window of steps), so on a machine whose cores other programs use, the
spinning thread kept a core from the thread it waited for, step after
step: with two busy processes on this 2-core machine a run took 6.3 s on
two threads against 2.6 s on one, and 1.3 s on two threads that sleep at
once (issue 13, medians of 3).  So exodiff asks
OpenMP for passive waiting (``OMP_WAIT_POLICY=PASSIVE``) unless the user set
a policy, before Numba loads its threading layer; on an idle machine the
cost is a wake-up per parallel loop, microseconds.
"""
import os
import sys

from .errors import InputError

# Set before Numba starts its threads (numba.get_num_threads() starts them):
# OpenMP reads it once, when the library loads.
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")


def prepare_numba():
    """Ask for passive waiting unless the user chose a policy (module
    docstring); call before Numba's first parallel loop or thread query.
    InputError for a NUMBA_NUM_THREADS that is not a whole number >= 1."""
    os.environ.setdefault(*WAIT_POLICY)
    requested()


def requested():
    """The thread count asked for through NUMBA_NUM_THREADS (set by the user
    or by --threads), or None."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"NUMBA_NUM_THREADS={value}: expected a whole number of threads, 1 or more")
    return n


def use_threads(n):
    """Run the Numba kernels of this process, and of the processes it starts
    (sweep workers), on ``n`` threads."""
    os.environ["NUMBA_NUM_THREADS"] = str(n)
    if "numba" in sys.modules:  # loaded already (a second command in one process): resize
        import numba
        most = numba.config.NUMBA_NUM_THREADS
        if n > most:
            raise InputError(f"--threads {n}: this process started Numba with at most {most} threads")
        numba.set_num_threads(n)
