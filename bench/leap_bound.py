"""The most that any leaping scheme equal in law to fixed stepping can gain.

Fixed stepping interacts with a surface within a step only when the vesicle
starts it closer than the margin m = LEAP_MARGIN_SIGMAS·σ + |v| dt (farther
away the interaction has probability < e⁻⁴⁰; kernels/leap.py), so an exact
leaping scheme must still take every step a FREE vesicle begins within m of a
cell's contact sphere or an absorbing face (a reflecting face acts on a
step's end point only, so leaps fold across it or touch it; periodic faces
are no surface).
Everything else — free vesicles farther away, and BOUND or INTERNALIZED
vesicles waiting for their next event — can be covered in one visit.  This
script runs the scenario with fixed stepping, samples the vesicles at regular
steps and prints the shares, and with them the bound

    speed-up ≤ active vesicle-steps / near-surface free vesicle-steps,

which ignores every cost of a leap or a wait (so it is an upper bound).

    python bench/leap_bound.py S2 | well_24h | coculture [--every N]

The windows are those of ``exodiff bench --stepping`` (exodiff/bench.py).
"""
import argparse

import numpy as np
from scipy.spatial import cKDTree

from exodiff.backends import select_backend
from exodiff.bench import STEPPING_SCENARIOS, stepping_config
from exodiff.kernels.constants import ABSORB, BOUND, FREE, PERIODIC
from exodiff.kernels.leap import LEAP_MARGIN_SIGMAS
from exodiff.model import build_model


def near_surface(arrays):
    """Mask over FREE vesicles: within the margin of a surface they may touch."""
    A = arrays
    free = A["state"] == FREE
    pos = A["pos"][free]
    box, kind, flow = A["box"], A["face_kind"], A["flow"]
    drift = np.zeros_like(pos)
    drift[:] = flow
    drift[:, 2] -= A["settling"][free]
    margin = LEAP_MARGIN_SIGMAS * A["sigma"][free] + np.linalg.norm(drift, axis=1) * A["dt"]
    d = np.full(len(pos), np.inf)
    for a in range(3):
        for side in range(2):
            k = kind[2 * a + side]
            if k != ABSORB:
                continue
            d = np.minimum(d, pos[:, a] if side == 0 else box[a] - pos[:, a])
    centres = A["ccenter"]
    if len(centres) and len(pos):
        periodic = all(kind[2 * a] == PERIODIC for a in range(3))
        tree = cKDTree(np.mod(centres, box) if periodic else centres, boxsize=box if periodic else None)
        q = np.mod(pos, box) if periodic else pos
        dist, idx = tree.query(q, k=min(8, len(centres)))
        dist, idx = np.atleast_2d(dist.T).T, np.atleast_2d(idx.T).T
        d = np.minimum(d, (dist - A["cradius"][idx] - A["vradius"][free][:, None]).min(axis=1))
    return d < margin


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=sorted(STEPPING_SCENARIOS))
    ap.add_argument("--every", type=int, default=0, help="steps between samples (default: 20 samples)")
    args = ap.parse_args()
    steps = STEPPING_SCENARIOS[args.scenario]["adaptive"]
    every = args.every or max(steps // 20, 1)
    model = build_model(stepping_config(args.scenario, "fixed", steps))
    backend, _ = select_backend("numba")
    backend.prepare(model)
    active = near = waiting = 0
    n = 0
    while n < steps:
        n1 = min(n + every, steps)
        backend.advance(n, n1)
        n = n1
        backend.fetch(model)
        state = model.arrays["state"]
        active += int(np.count_nonzero((state == FREE) | (state == BOUND)))
        waiting += int(np.count_nonzero(state == BOUND))
        near += int(np.count_nonzero(near_surface(model.arrays)))
    print(f"{args.scenario}, fixed stepping over its {steps}-step window, sampled every {every} steps:")
    print(f"  FREE within the margin of a surface: {near / active:.2%} of active (FREE or BOUND) vesicle-steps")
    print(f"  BOUND: {waiting / active:.2%}")
    print(f"  speed-up of any exact leaping scheme ≤ {active / max(near, 1):.0f}× "
          f"(≤ {active / max(near + waiting, 1):.1f}× if BOUND vesicles still paid a visit per step)")


if __name__ == "__main__":
    main()
