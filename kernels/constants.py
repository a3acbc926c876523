"""Codes shared by every backend (mirrored in kernels/exodiff_step.cuh)."""

# The project's vocabulary, defined here once (kernels import nothing of
# exodiff, so everything above them can import from here).  The kernels use
# the plain int aliases below: Numba freezes module-level ints as constants.
from enum import IntEnum


class VesicleState(IntEnum):
    """Vesicle states (DESIGN §1), stored as int8; files name them in order."""
    PENDING = 0       # not yet secreted
    FREE = 1
    BOUND = 2
    INTERNALIZED = 3
    EXITED = 4
    CLEARED = 5
    # After uptake (issue 18): cargo released to the cytosol by endosomal
    # escape or by fusion with the plasma membrane, or degraded in a
    # lysosome; ``cell`` keeps the cell.  INTERNALIZED means "in an endosome".
    DELIVERED = 6
    DEGRADED = 7


class FaceKind(IntEnum):
    """Domain face kinds, per face in the order of FACE_NAMES."""
    REFLECT = 0
    PERIODIC = 1
    ABSORB = 2


PENDING, FREE, BOUND, INTERNALIZED, EXITED, CLEARED, DELIVERED, DEGRADED = (int(s) for s in VesicleState)
STATE_NAMES = tuple(s.name.lower() for s in VesicleState)

REFLECT, PERIODIC, ABSORB = (int(k) for k in FaceKind)
FACE_KINDS = {k.name.lower(): int(k) for k in FaceKind}
FACE_NAMES = ("xlo", "xhi", "ylo", "yhi", "zlo", "zhi")

# Brownian-bridge crossing probabilities exp(-d1 d2 / (D dt)) below
# exp(-40) ≈ 4e-18 are taken as zero: they cannot change a 32-bit uniform
# draw, and skipping them saves an exp() per nearby cell per step.
BRIDGE_CUTOFF = 40.0

# A cell whose contact sphere is farther from a vesicle's end point than the
# step length plus FAR_SIGMAS·√(D dt) cannot be touched in the step: its
# bridge exponent d0·d1/(D dt) exceeds BRIDGE_CUTOFF (d0 ≥ d1 − step).  The
# kernels reject such cells on the squared distance, before any square root.
# √BRIDGE_CUTOFF = 6.32455532…, rounded up by 1e-6 relative against round-off.
FAR_SIGMAS = 6.3245617
