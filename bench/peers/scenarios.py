"""The peer-benchmark scenarios, shared by every tool's script.

Plain NumPy (no exodiff import) so the Smoldyn script can use it from its own
Python 3.10 environment.  Units: µm, s.

S1  10⁵ vesicles, D = 4 µm²/s, reflective cube of side 200 µm, dt = 1 ms,
    1000 steps, no cells;
S2  S1 with 1000 non-overlapping absorbing cells (contact radius 5 µm);
S3  S2 with finite reactivity κ = 1 µm/s (irreversible binding).

Every tool gets the same cell centres and the same vesicle start positions
(uniform in the free volume), drawn here from a fixed seed.

ACC, the accuracy case: absorbing spheres of contact radius R = 5 µm, each
with vesicles started on its shell r0 = 6 µm; after t = 0.25 s (250 steps of
1 ms) the absorbed fraction is compared with the exact
(R/r0)·erfc((r0 − R)/√(4 D t)) (DESIGN §6).  To keep every tool's
neighbour search at S2's density (ReaDDy's cost grows with the number of
particle pairs within the reaction radius), the case is replicated: 10³
spheres on a lattice of spacing 40 µm in a reflective cube of side 400 µm,
50 vesicles on each shell.  In 0.25 s a vesicle moves ~2.4 µm rms, so the
neighbouring spheres (≥ 29 µm away) and the walls (≥ 14 µm) play no part.
"""
import argparse
import math

import numpy as np

BOX = 200.0            # cube side [µm]
D = 4.0                # diffusion coefficient [µm²/s]
DT = 1e-3              # step [s]
STEPS = 1000
N_VESICLES = 100_000
N_CELLS = 1000
CONTACT_RADIUS = 5.0   # cell radius + vesicle radius [µm]
VESICLE_RADIUS = 0.05  # exodiff only: its cells get radius CONTACT_RADIUS − this
KAPPA_S3 = 1.0         # [µm/s]
SEED = 20240601

SCENARIOS = {
    "S1": dict(cells=False, kappa=math.inf),
    "S2": dict(cells=True, kappa=math.inf),
    "S3": dict(cells=True, kappa=KAPPA_S3),
}

# accuracy case
ACC_SPACING = 40.0
ACC_PER_AXIS = 10
ACC_BOX = ACC_SPACING * ACC_PER_AXIS
ACC_R = CONTACT_RADIUS
ACC_R0 = 6.0
ACC_STEPS = 250
ACC_N = 50_000          # vesicles in all (ACC_N / 1000 per sphere)


def cell_centers(n=N_CELLS, box=BOX, radius=CONTACT_RADIUS, seed=SEED):
    """n non-overlapping spheres of `radius` inside [0, box]³ by random
    sequential addition (deterministic for a seed).  Returns float64[n, 3]."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty((n, 3))
    k = 0
    while k < n:
        cand = rng.uniform(radius, box - radius, (4096, 3))
        for p in cand:
            if k == n:
                break
            if k == 0 or np.min(np.sum((out[:k] - p) ** 2, axis=1)) >= (2.0 * radius) ** 2:
                out[k] = p
                k += 1
    return out


def vesicle_positions(n=N_VESICLES, centers=None, box=BOX, radius=CONTACT_RADIUS, seed=SEED + 1):
    """n points uniform in [0, box]³ outside every contact sphere."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty((0, 3))
    while out.shape[0] < n:
        p = rng.uniform(0.0, box, (2 * (n - out.shape[0]) + 64, 3))
        if centers is not None and len(centers):
            p = p[~_inside_any(p, centers, box, radius)]
        out = np.concatenate([out, p])
    return out[:n]


def _inside_any(p, centers, box, radius):
    """Whether each point p[i] lies within `radius` of a centre (hash grid
    of bins ≥ radius, so the 27 neighbouring bins hold every candidate)."""
    nb = max(1, int(box // radius))
    h = box / nb
    cb = np.clip((centers // h).astype(np.int64), 0, nb - 1)
    cid = (cb[:, 0] * nb + cb[:, 1]) * nb + cb[:, 2]
    order = np.argsort(cid, kind="stable")
    counts = np.bincount(cid, minlength=nb ** 3)
    table = np.full((nb ** 3, max(1, counts.max())), -1, dtype=np.int64)
    slot = np.arange(len(cid)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[cid[order], slot] = order
    pb = np.clip((p // h).astype(np.int64), 0, nb - 1)
    inside = np.zeros(p.shape[0], dtype=bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                q = pb + (dx, dy, dz)
                ok = np.all((q >= 0) & (q < nb), axis=1)
                b = (q[:, 0] * nb + q[:, 1]) * nb + q[:, 2]
                for k in range(table.shape[1]):
                    c = np.where(ok, table[np.where(ok, b, 0), k], -1)
                    d2 = ((p - centers[np.maximum(c, 0)]) ** 2).sum(axis=1)
                    inside |= (c >= 0) & (d2 <= radius * radius)
    return inside


def acc_centers():
    """Centres [1000, 3] of the accuracy case's sphere lattice."""
    g = (np.arange(ACC_PER_AXIS) + 0.5) * ACC_SPACING
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


def shell_positions(n=ACC_N, r0=ACC_R0, centers=None, seed=SEED + 2):
    """n points, uniform on the spheres of radius r0 about the centers
    (vesicle k on sphere k mod M)."""
    centers = acc_centers() if centers is None else centers
    rng = np.random.Generator(np.random.PCG64(seed))
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    return centers[np.arange(n) % len(centers)] + r0 * v


def exact_absorbed(t, R=ACC_R, r0=ACC_R0, diffusion=D):
    """Absorbed fraction by time t for a start at r0 outside an absorbing
    sphere of radius R (Smoluchowski; DESIGN §6)."""
    return R / r0 * math.erfc((r0 - R) / math.sqrt(4.0 * diffusion * t))


def doi_rate_for_kappa(kappa, R=CONTACT_RADIUS, diffusion=D):
    """Doi volume-reaction rate λ [1/s] (reaction within distance R at rate λ)
    whose steady-state rate constant 4πD(R − ℓ tanh(R/ℓ)), ℓ = √(D/λ), equals
    the Collins–Kimball k = k_f k_D/(k_f + k_D) of a sphere of reactivity κ
    (k_f = 4πR²κ, k_D = 4πRD): how ReaDDy, whose reactions are volume
    reactions, is given the same binding kinetics as S3."""
    if math.isinf(kappa):
        return math.inf
    kf, kd = 4 * math.pi * R * R * kappa, 4 * math.pi * R * diffusion
    target = kf * kd / (kf + kd) / (4 * math.pi * diffusion)   # R − ℓ tanh(R/ℓ)
    lo, hi = 1e-6, 1e6   # in ℓ [µm]: f(ℓ) = R − ℓ tanh(R/ℓ) falls from R to 0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if R - mid * math.tanh(R / mid) > target:
            lo = mid
        else:
            hi = mid
    ell = math.sqrt(lo * hi)
    return diffusion / (ell * ell)


def setup(name, n=N_VESICLES, steps=STEPS):
    """Geometry of scenario `name`: dict with box, dt, steps, diffusion,
    kappa, centers [M,3] (M = 0 for S1), positions [n,3]."""
    if name == "ACC":
        c = acc_centers()
        return dict(name=name, box=ACC_BOX, dt=DT, steps=steps, diffusion=D, kappa=math.inf,
                    centers=c, positions=shell_positions(n, centers=c))
    spec = SCENARIOS[name]
    centers = cell_centers() if spec["cells"] else np.zeros((0, 3))
    return dict(name=name, box=BOX, dt=DT, steps=steps, diffusion=D, kappa=spec["kappa"],
                centers=centers, positions=vesicle_positions(n, centers))


def arg_parser():
    """The command line every run_<tool>.py shares: SCENARIO [--n N] [--steps S]."""
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=list(SCENARIOS) + ["ACC"])
    p.add_argument("--n", type=int)
    p.add_argument("--steps", type=int)
    return p


def from_args(a):
    """(vesicles, steps, geometry) for parsed arguments, with the scenario's defaults."""
    acc = a.scenario == "ACC"
    n = a.n or (ACC_N if acc else N_VESICLES)
    steps = a.steps or (ACC_STEPS if acc else STEPS)
    return n, steps, setup(a.scenario, n, steps)
