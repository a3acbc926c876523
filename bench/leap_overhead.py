"""The cost of a vesicle in flight: every vesicle of a periodic box leaps from
observation to observation (adaptive) against one calibrated step each (fixed),
in CPU-ns per vesicle-step of the process (all threads).

    python bench/leap_overhead.py
"""
import time, numpy as np
from exodiff.config import parse_config
from exodiff.model import build_model
from exodiff.backends import select_backend
N, K = 100_000, 10_000
for st in ("adaptive", "fixed"):
    steps = K if st == "adaptive" else 200
    raw = {"run": {"duration": (steps + 1) * 1e-3, "dt": 1e-3, "stepping": st},
           "domain": {"size": [400.0] * 3, "boundary": "periodic"},
           "cells": {"layout": "list", "centers": [], "radius": 5.0}, "cell_types": {"none": {}},
           "vesicles": {"ev": {"radius": 0.05, "diffusion": 4.0, "count": N}}, "output": {"positions": "none"}}
    m = build_model(parse_config(raw)); b, _ = select_backend("numba"); b.prepare(m); b.advance(0, 1); b.fetch(m)
    w, c = time.perf_counter(), time.process_time()
    b.advance(1, steps + 1); b.fetch(m)
    w, c = time.perf_counter() - w, time.process_time() - c
    a = m.arrays
    print(f"{st}: {steps} steps, wall {w:.2f} s, cpu {c:.2f} s: {c / (N * steps) * 1e9:.2f} CPU-ns per vesicle-step, leaps {a['leaps'].sum()}")
