"""Peak memory of ``exodiff report`` on a large synthetic run.

    python bench/report_memory.py [--vesicles 1000000] [--cells 2000] [--dir /tmp]

Writes a run file of N vesicles (all positions stored, gzip, 11 snapshots,
61 observations) with RunWriter, then runs ``exodiff report`` on it in a
child process and prints the child's peak resident memory (ru_maxrss of
RUSAGE_CHILDREN).  The vesicles random-walk (D = 4 µm²/s) in a
400×400×100 µm box; a growing share binds, is internalized, leaves or is
cleared; donors are 10 % of the cells.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

from exodiff.io import MILESTONE_NAMES, RunWriter
from exodiff.kernels.constants import STATE_NAMES

CONFIG = """[run]
duration = 600
dt = 0.01
seed = 1
[domain]
size = [400, 400, 100]
[cells]
layout = "random"
count = {M}
radius = 5
types = {{ donor = 0.1, target = 0.9 }}
[cell_types.donor]
secretion_rate = "1 /s"
secretes = "ev"
[cell_types.target]
kappa = 1
[vesicles.ev]
radius = 0.05
diffusion = 4
count = {N}
cargo = {{ miR21 = 10 }}
"""


def write_run(path, N, M, S=11, T=61, seed=0):
    rng = np.random.default_rng(seed)
    box = np.array([400.0, 400.0, 100.0])
    centers = rng.uniform([5, 5, 5], box - 5, (M, 3))
    types = (np.arange(M) % 10 != 0).astype(np.int32)  # every 10th cell a donor
    duration = 600.0
    kw = dict(config_text=CONFIG.format(N=N, M=M), seed=1, backend="synthetic", device="cpu", dt=0.01,
              box_edges=box, boundary=["reflect"] * 6, cell_centers=centers, cell_radii=np.full(M, 5.0),
              cell_types=types, cell_type_names=["donor", "target"], species=np.zeros(N, np.int32),
              vesicle_radius=np.full(N, 0.05), species_names=["ev"], cargo_names=["miR21"],
              sample_ids=None, write_positions=True, compression="gzip", n_snapshots_hint=S,
              n_observations_hint=T, exodiff_version="bench")
    # fates drawn once: the time each vesicle binds, is internalized, exits
    birth = np.where(rng.random(N) < 0.8, 0.0, rng.uniform(0, duration, N))
    t_bound = birth + rng.exponential(300.0, N)
    t_int = t_bound + rng.exponential(200.0, N)
    t_exit = np.where(rng.random(N) < 0.05, birth + rng.exponential(400.0, N), np.inf)
    target_cells = np.nonzero(types == 1)[0]
    cell_of = target_cells[rng.integers(0, target_cells.size, N)].astype(np.int32)
    pos = rng.uniform(0, 1, (N, 3)) * box
    image = np.zeros((N, 3), np.int32)
    snap_every = (T - 1) // (S - 1)
    with RunWriter(path, **kw) as w:
        for k in range(T):
            t = duration * k / (T - 1)
            state = np.full(N, 1, np.int8)
            state[birth > t] = 0
            state[(t_bound <= t) & (t_exit > t_bound)] = 2
            state[(t_int <= t) & (t_exit > t_int)] = 3
            state[t_exit <= t] = 4
            cell = np.where((state == 2) | (state == 3), cell_of, -1).astype(np.int32)
            bound = np.bincount(cell[state == 2], minlength=M).astype(np.int32)
            inside = np.bincount(cell[state == 3], minlength=M).astype(np.int32)
            counts = np.bincount(state, minlength=len(STATE_NAMES))
            w.write_observation(k, t, counts, bound, inside, inside[:, None] * 10.0)
            if k % snap_every == 0:
                if k:
                    step = rng.normal(0, np.sqrt(2 * 4.0 * duration / (S - 1)), (N, 3))
                    pos = pos + np.where((state == 1)[:, None], step, 0.0)
                    pos = np.abs(pos)  # reflect at 0 and at the far faces
                    pos = np.where(pos > box, 2 * box - pos, pos)
                    pos = np.clip(pos, 0, box)
                ms = {"birth_time": birth, "first_bound_time": np.where(t_bound <= t, t_bound, np.nan),
                      "internalized_time": np.where(t_int <= t, t_int, np.nan),
                      "exit_time": np.where(t_exit <= t, t_exit, np.nan)}
                w.write_snapshot(k, t, pos, image, state, cell, {m: ms[m] for m in MILESTONE_NAMES})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vesicles", type=int, default=1_000_000)
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--dir", default="/tmp")
    a = ap.parse_args()
    path = os.path.join(a.dir, f"synthetic_{a.vesicles}.h5")
    t0 = time.perf_counter()
    write_run(path, a.vesicles, a.cells)
    print(f"wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    out = os.path.join(a.dir, f"synthetic_{a.vesicles}_report")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exodiff", "report", path, "-o", out], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    print(f"exodiff report: {time.perf_counter() - t0:.0f} s, peak resident memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()
