"""Run one peer-benchmark scenario in ReaDDy; print one JSON line.

    python run_readdy.py S2 [--n N] [--steps S] [--threads T]

Needs ``readdy`` (pip wheel for CPython 3.11 on Linux; see bench/README.md).
ReaDDy has no reflecting walls or surfaces: the box is held by its harmonic
box potential (non-periodic), and cells are static particles C with the
enzymatic reaction ``A +(R) C -> X + C`` — a Doi volume reaction inside the
contact radius R at rate λ — with X removed at once (``X ->``).  (The shorter
``A + C -> C`` is a fusion in ReaDDy: it would move the cell.)  κ = ∞ uses λ = 10⁵/s (reacts within the first step inside);
finite κ uses the λ whose steady-state rate equals the Collins–Kimball rate
(scenarios.doi_rate_for_kappa).  Irreversible in both cases.
"""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402

ABSORB_RATE = 1e5          # λ for κ = ∞ [1/s]: 1 − exp(−λ dt) = 1 at dt = 1 ms
WALL_FORCE = 100.0         # box-potential force constant [kT/µm²]


def main(argv=None):
    p = scenarios.arg_parser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args(argv)
    n, steps, g = scenarios.from_args(a)

    import readdy
    t0 = time.perf_counter()
    L = g["box"]
    # ReaDDy's box is centred on the origin; shift our [0, L]³ by −L/2 and
    # leave room outside the potential's box for its soft walls
    system = readdy.ReactionDiffusionSystem(box_size=[L + 20.0] * 3, periodic_boundary_conditions=[False] * 3,
                                            unit_system=None)
    system.add_species("A", diffusion_constant=g["diffusion"])
    system.potentials.add_box(particle_type="A", force_constant=WALL_FORCE, origin=[-L / 2] * 3, extent=[L] * 3)
    cells = len(g["centers"]) > 0
    rate = ABSORB_RATE if math.isinf(g["kappa"]) else scenarios.doi_rate_for_kappa(g["kappa"])
    if cells:
        system.add_species("C", diffusion_constant=0.0)
        system.add_species("X", diffusion_constant=0.0)
        system.reactions.add(f"bind: A +({scenarios.CONTACT_RADIUS}) C -> X + C", rate=rate)
        system.reactions.add("gone: X ->", rate=ABSORB_RATE)
    sim = system.simulation(kernel="CPU")
    sim.kernel_configuration.n_threads = a.threads
    sim.add_particles("A", g["positions"] - L / 2)
    if cells:
        sim.add_particles("C", g["centers"] - L / 2)
    counts = []
    sim.observe.number_of_particles(stride=steps, types=["A"], callback=lambda c: counts.append(int(c[0])))
    sim.show_progress = False
    sim.output_file = ""
    setup = time.perf_counter() - t0
    w, c = time.perf_counter(), time.process_time()
    sim.run(n_steps=steps, timestep=g["dt"])
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    free = counts[-1]
    res = dict(tool="readdy", version=readdy.__version__, scenario=a.scenario, n=n, steps=steps,
               threads=a.threads, wall_s=wall, cpu_s=cpu, setup_s=setup, free=free,
               absorbed_fraction=1.0 - free / n,
               options=f"Doi rate {rate:.4g}/s" if cells else "")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
