"""Where the start-up of `exodiff run` goes, phase by phase.

    python bench/startup.py [CONFIG]

Without CONFIG it times a small run (1000 vesicles, 10 cells, 100 steps of
1 ms).  Run it twice: the first run may fill Numba's and pint's caches.
Prints wall and CPU seconds per phase (bench/README.md, "Start-up").
"""
import os
import sys
import tempfile
import time

SMALL = """
[run]
duration = "0.1 s"
dt = "1 ms"
seed = 1
[domain]
size = ["50 um", "50 um", "50 um"]
[cells]
layout = "random"
count = 10
radius = "5 um"
[cell_types.target]
kappa = "1 um/s"
[vesicles.ev]
radius = "50 nm"
count = 1000
[output]
positions = "none"
"""

marks = [("start", time.perf_counter(), time.process_time())]


def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))


def main():
    import numpy  # noqa: F401
    mark("import numpy")
    import numba  # noqa: F401
    mark("import numba")
    import h5py  # noqa: F401
    mark("import h5py")
    import pint  # noqa: F401
    mark("import pint")
    from exodiff.config import load_config
    from exodiff.driver import Simulation
    mark("import exodiff")
    with tempfile.TemporaryDirectory() as tmp:
        path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tmp, "small.toml")
        if len(sys.argv) == 1:
            with open(path, "w") as f:
                f.write(SMALL)
        config = load_config(path)
        mark("load_config (TOML, units)")
        try:
            import scipy.linalg  # noqa: F401  (Numba's CPU target imports it when present)
            mark("import scipy.linalg")
        except ImportError:
            pass
        sim = Simulation(config, backend="numba")
        mark("build the model (cells: first Numba use)")
        sim.backend.prepare(sim.model)
        sim.backend.advance(0, 1)
        mark("first step (kernels from the cache)")
        sim.run(os.path.join(tmp, "run.h5"), overwrite=True)
        mark("the run and its H5MD file")
    for (_, w0, c0), (name, w1, c1) in zip(marks, marks[1:]):
        print(f"{name:44s} wall {w1 - w0:6.3f} s   cpu {c1 - c0:6.3f} s")
    print(f"{'total':44s} wall {marks[-1][1] - marks[0][1]:6.3f} s   cpu {marks[-1][2] - marks[0][2]:6.3f} s")


if __name__ == "__main__":
    main()
