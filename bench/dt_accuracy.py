"""Accuracy of the Collins–Kimball uptake against the time step.

Case (as configs/validation/collins_kimball.toml): one sphere of contact
radius R, vesicles start on the shell r0 = 1.2 R, bound fraction at
t = R²/(2D), κR/D = 0.01 … 100 and ∞ (Smoluchowski).  Two estimates of the
relative error (simulated − exact)/exact against s/R, s = √(2D dt):

* exact for the scheme (no noise): the bridge test uses radial distances and
  the mirror is radial, so exodiff's step outside one sphere is a Markov chain
  in r alone; this script evolves its radial mass distribution with the
  radial kernel of the 3-D Gaussian step (an FFT convolution in u = r·c,
  midpoint rule, h = s/16, the start on a node) — for the calibrated P of kernels/surface.py and, for
  comparison, the leading-order P = κ√(π dt/D)/2;
* Monte Carlo with the engine itself (numba backend) at s/R ≥ 0.02, with
  binomial error bars, for κR/D = 0.1, 1 and 10.

Writes bench/dt_accuracy.png and bench/dt_accuracy.md; prints the table.

    python bench/dt_accuracy.py            # ~15 min on 2 cores
    python bench/dt_accuracy.py --no-mc    # the scheme's exact errors only (~3 min)

Needs scipy (sparse matrices) and matplotlib.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

from exodiff.kernels.surface import binding_probability
from exodiff.validate import collins_kimball

HERE = os.path.dirname(os.path.abspath(__file__))
R0 = 1.2        # start radius / R
TAU = 0.5       # t D / R²
KAPPAS = (0.01, 0.1, 1.0, 10.0, 100.0, math.inf)   # κR/D
STEPS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)   # s/R
MC_KAPPAS = (0.1, 1.0, 10.0)
MC_STEPS = (0.02, 0.05, 0.1, 0.2, 0.3)
MC_SE = 0.003   # relative SE aimed at (0.005 at s = 0.02 R)


def leading_order(kappa, D, dt):
    return 1.0 if math.isinf(kappa) else min(1.0, 0.5 * kappa * math.sqrt(math.pi * dt / D))


def chain_bound_fraction(s, probs, h_frac=16, outer=4.0, cut=8.5):
    """Bound fraction at t = TAU·R²/D (steps rounded up as the engine does)
    for each binding probability in `probs`; returns (t, array).

    Units R = D = 1.  With u = m/r (m the radial mass per bin), the radial
    part of a free 3-D Gaussian step is the 1-D convolution
    u'(r) = ∫ φ_s(r − r0) u(r0) dr0 (the image term φ_s(r + r0) is below
    e^{−2/s²}), done by FFT; near the sphere the bridge contacts remove
    P·φ_s(r − r0)·e^{−2(r−1)(r0−1)/s²} and the ends inside, at 2 − r, come
    back mirrored with weight (1 − P)(2 − r)/r.  Midpoint rule, h = s/h_frac,
    r0 on a node, absorbing far boundary at r = 1 + outer."""
    from scipy.signal import oaconvolve
    m0 = int(math.ceil((R0 - 1.0) / (s / h_frac)))
    h = (R0 - 1.0) / (m0 + 0.5)
    n = int(math.ceil(outer / h))
    r = 1.0 + h * (np.arange(n) + 0.5)
    phi = lambda x: np.exp(-x * x / (2 * s * s)) / (math.sqrt(2.0 * math.pi) * s)
    band = int(math.ceil(cut * s / h))
    kernel = phi(h * np.arange(-band, band + 1)) * h
    K = min(n, 2 * band + 2)
    ri, rj = r[:K, None], r[None, :K]
    bridge = phi(ri - rj) * h * np.exp(-2.0 * (ri - 1.0) * (rj - 1.0) / (s * s))
    pre = 2.0 - ri
    mirror = np.where(pre > 0, (pre / ri) * phi(pre - rj) * h, 0.0)
    contact = (r[:K, None] * (bridge + mirror)).sum(axis=0)   # mass contacting per unit u_j
    P = np.asarray(probs, dtype=np.float64)[None, :]
    u = np.zeros((n, P.shape[1]))
    u[m0, :] = 1.0 / r[m0]
    bound = np.zeros(P.shape[1])
    dt = s * s / 2.0
    steps = int(math.ceil(TAU / dt - 1e-9))
    for _ in range(steps):
        head = u[:K]
        bound += P[0] * (contact @ head)
        near = -P * (bridge @ head) + (1.0 - P) * (mirror @ head)
        u = oaconvolve(u, kernel[:, None], mode="same", axes=0)
        u[:K] += near
    return steps * dt, bound


def exact_errors():
    """rows of (s/R, κR/D, rel. error calibrated, rel. error leading order)."""
    out = []
    for s in STEPS:
        t0 = time.perf_counter()
        dt = s * s / 2.0
        kap = [k for k in KAPPAS]
        probs = [float(binding_probability(k, 1.0, dt, 1.0)) for k in kap] + \
                [leading_order(k, 1.0, dt) for k in kap]
        t, bound = chain_bound_fraction(s, probs)
        for i, k in enumerate(kap):
            ex = collins_kimball(t, R0, 1.0, 1.0, k)
            out.append((s, k, bound[i] / ex - 1.0, bound[len(kap) + i] / ex - 1.0))
        print(f"  chain s/R = {s:g}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def monte_carlo():
    """rows of (s/R, κR/D, rel. error, rel. SE) from the engine."""
    from exodiff.config import parse_config
    from exodiff.driver import Simulation
    from exodiff.kernels.constants import BOUND
    D, Rc, rv = 4.0, 5.0, 0.05
    R = Rc + rv
    out = []
    for k in MC_KAPPAS:
        for s in MC_STEPS:
            t0 = time.perf_counter()
            dt = (s * R) ** 2 / (2 * D)
            steps = int(math.ceil(TAU * R * R / D / dt - 1e-9))
            t = steps * dt
            p = collins_kimball(t, R0 * R, R, D, k * D / R)
            target = MC_SE if s > 0.03 else 0.005
            n = int(math.ceil((1 - p) / (p * target ** 2)))
            hits, done = 0, 0
            for b in range(-(-n // 1_000_000)):
                nb = min(1_000_000, n - done)
                c = [100.0, 100.0, 100.0]
                cfg = parse_config({
                    "run": {"duration": t, "dt": dt, "seed": 900 + b},
                    "domain": {"size": [200.0] * 3, "boundary": "reflect"},
                    "cells": {"layout": "list", "centers": [c], "radius": Rc, "type": "target"},
                    "cell_types": {"target": {"kappa": k * D / R}},
                    "vesicles": {"ev": {"radius": rv, "diffusion": D, "count": nb,
                                        "placement": {"shell": {"center": c, "radius": R0 * R}}}},
                    "output": {"positions": "none"}})
                sim = Simulation(cfg, backend="numba")
                sim.run(os.path.join(HERE, "_dt_accuracy_tmp.h5"), overwrite=True)
                hits += int(np.count_nonzero(sim.model.arrays["state"] == BOUND))
                done += nb
            os.remove(os.path.join(HERE, "_dt_accuracy_tmp.h5"))
            se = math.sqrt(p * (1 - p) / n) / p
            out.append((s, k, hits / n / p - 1.0, se))
            print(f"  MC κR/D = {k:g}, s/R = {s:g}: N = {n}, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return out


def largest_step(rows, limit=0.01):
    """Largest s/R (of STEPS) up to which every κR/D stays within `limit`."""
    ok = None
    for s in STEPS:
        if all(abs(e) < limit for (ss, _, e, _) in rows if ss == s):
            ok = s
        else:
            break
    return ok


def markdown(rows, mc):
    kap = KAPPAS
    head = "| s/R | " + " | ".join("∞" if math.isinf(k) else f"κR/D = {k:g}" for k in kap) + " |"
    lines = ["Relative error of the Collins–Kimball bound fraction (r0 = 1.2 R, t = R²/2D), exact for "
             "exodiff's scheme (radial chain), calibrated P; in brackets the leading-order "
             "P = κ√(π dt/D)/2:", "", head, "|" + "---|" * (len(kap) + 1)]
    for s in STEPS:
        cells = []
        for k in kap:
            (e, e0), = [(e, e0) for (ss, kk, e, e0) in rows if ss == s and kk == k]
            cells.append(f"{100 * e:+.2f} % ({100 * e0:+.1f} %)" if not math.isinf(k) else f"{100 * e:+.2f} %")
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    smax = largest_step(rows)
    lines += ["", f"Largest step with |error| < 1 % for every κR/D: s = {smax:g} R "
                  f"(dt = {smax ** 2 / 2:.3g} R²/D; for R = 5 µm and D = 4 µm²/s, dt = "
                  f"{(smax * 5.05) ** 2 / 8 * 1e3:.3g} ms)."]
    if mc:
        lines += ["", "Monte Carlo with the engine (numba), relative error ± 1 SE:", "",
                  "| s/R | " + " | ".join(f"κR/D = {k:g}" for k in MC_KAPPAS) + " |",
                  "|" + "---|" * (len(MC_KAPPAS) + 1)]
        for s in MC_STEPS:
            cells = [f"{100 * e:+.2f} ± {100 * se:.2f} %" for k in MC_KAPPAS
                     for (ss, kk, e, se) in mc if ss == s and kk == k]
            lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows, mc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(KAPPAS)))
    for k, col in zip(KAPPAS, colors):
        ss = np.array([s for (s, kk, e, e0) in rows if kk == k])
        e = np.array([e for (s, kk, e, e0) in rows if kk == k])
        e0 = np.array([e0 for (s, kk, e, e0) in rows if kk == k])
        lab = "∞" if math.isinf(k) else f"{k:g}"
        axes[0].plot(ss, 100 * e, "-o", color=col, ms=3, label=f"κR/D = {lab}")
        if not math.isinf(k):
            axes[1].plot(ss, 100 * e0, "--", color=col, label=f"κR/D = {lab}")
        for (s, kk, em, se) in mc:
            if kk == k:
                axes[0].errorbar(s, 100 * em, yerr=100 * se, fmt="s", color=col, ms=4, capsize=2,
                                 mfc="none")
    for ax in axes:
        ax.set_xscale("log")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("step s / R   (s = √(2D dt))")
    axes[0].axhspan(-1, 1, color="0.9", zorder=0)
    axes[0].set_ylabel("relative error of the bound fraction [%]")
    axes[0].set_title("calibrated P (lines: exact for the scheme; squares: engine MC ±SE)",
                      fontsize=9)
    axes[1].set_title("leading-order P = κ√(π dt/D)/2 (before)", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-mc", action="store_true", help="skip the engine Monte Carlo")
    args = ap.parse_args()
    rows = exact_errors()
    mc = [] if args.no_mc else monte_carlo()
    text = markdown(rows, mc)
    with open(os.path.join(HERE, "dt_accuracy.md"), "w") as f:
        f.write(text)
    figure(rows, mc, os.path.join(HERE, "dt_accuracy.png"))
    print(text)


if __name__ == "__main__":
    main()
