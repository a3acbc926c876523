"""Run one peer-benchmark scenario in Smoldyn; print one JSON line.

    python run_smoldyn.py S2 [--n N] [--steps S] [--boxsize B]

Needs the ``smoldyn`` wheel (Python 3.10): see bench/README.md.  Smoldyn is
single-threaded.  The model is written as a Smoldyn configuration file:
reflective walls, the cells as sphere panels (front = outside) with
``action front A absorb`` (κ = ∞) or ``rate A fsoln front κ`` (finite κ:
irreversible adsorption, Andrews 2009), and explicit start positions.
"""
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402

# Smoldyn's virtual-box edge [µm].  Its default partition was 3–4× slower
# here; on S2, 10–20 µm were within 10 % of each other and 5 or 40 µm about
# 2× slower (bench/README.md).
DEFAULT_BOXSIZE = 20.0


def config_text(g, seed, boxsize):
    L = g["box"]
    lines = ["dim 3"] + [f"boundaries {ax} 0 {L} r" for ax in "xyz"]
    lines += ["species A", f"difc A {g['diffusion']}", "time_start 0",
              f"time_stop {g['steps'] * g['dt']!r}", f"time_step {g['dt']!r}",
              f"random_seed {seed}", f"boxsize {boxsize}"]
    if len(g["centers"]):
        lines += ["start_surface cells"]
        if math.isinf(g["kappa"]):
            lines += ["action front A absorb"]
        else:
            lines += [f"rate A fsoln front {g['kappa']!r}"]
        lines += [f"panel sphere {x:.17g} {y:.17g} {z:.17g} {scenarios.CONTACT_RADIUS} 8 8"
                  for x, y, z in g["centers"]]
        lines += ["end_surface"]
    lines += [f"mol 1 A {x:.17g} {y:.17g} {z:.17g}" for x, y, z in g["positions"]]
    lines += ["end_file", ""]
    return "\n".join(lines)


def main(argv=None):
    p = scenarios.arg_parser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--boxsize", type=float, default=DEFAULT_BOXSIZE)
    a = p.parse_args(argv)
    n, steps, g = scenarios.from_args(a)

    import smoldyn
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.txt")
        with open(path, "w") as f:
            f.write(config_text(g, a.seed, a.boxsize))
        # Smoldyn reports its setup on stdout: keep ours for the JSON line
        out = os.dup(1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            sim = smoldyn.Simulation.fromFile(path)
            setup = time.perf_counter() - t0
            w, c = time.perf_counter(), time.process_time()
            sim.runSim()
            wall, cpu = time.perf_counter() - w, time.process_time() - c
            free = sim.getMoleculeCount("A", smoldyn._smoldyn.MolecState.soln)
        finally:
            sys.stdout.flush()
            os.dup2(out, 1)
    res = dict(tool="smoldyn", version=smoldyn.__version__, scenario=a.scenario, n=n, steps=steps,
               threads=1, wall_s=wall, cpu_s=cpu, setup_s=setup, free=int(free),
               absorbed_fraction=1.0 - free / n, options=f"boxsize {a.boxsize:g}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
