"""The cost of a vesicle in flight: every vesicle of a periodic box leaps from
observation to observation (adaptive) against one calibrated step each (fixed),
in CPU-ns per vesicle-step of the process (all threads).

    python bench/leap_overhead.py
"""
import time

from exodiff.backends import select_backend
from exodiff.config import parse_config
from exodiff.model import build_model

N, K = 100_000, 10_000   # vesicles; steps between observations (one leap each)


def main():
    for stepping in ("adaptive", "fixed"):
        steps = K if stepping == "adaptive" else 200
        raw = {"run": {"duration": (steps + 1) * 1e-3, "dt": 1e-3, "stepping": stepping},
               "domain": {"size": [400.0] * 3, "boundary": "periodic"},
               "cells": {"layout": "list", "centers": [], "radius": 5.0}, "cell_types": {"none": {}},
               "vesicles": {"ev": {"radius": 0.05, "diffusion": 4.0, "count": N}},
               "output": {"positions": "none"}}
        model = build_model(parse_config(raw))
        backend, _ = select_backend("numba")
        backend.prepare(model)
        backend.advance(0, 1)            # JIT outside the clock
        backend.fetch(model)
        wall, cpu = time.perf_counter(), time.process_time()
        backend.advance(1, steps + 1)
        backend.fetch(model)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{stepping}: {steps} steps, wall {wall:.2f} s, cpu {cpu:.2f} s: "
              f"{cpu / (N * steps) * 1e9:.2f} CPU-ns per vesicle-step, leaps {model.arrays['leaps'].sum()}")


if __name__ == "__main__":
    main()
