"""exodiff: exosome diffusion, binding and uptake among cells.

    import exodiff
    cfg = exodiff.load_config("configs/quickstart.toml", ["cells.count=200"])
    exodiff.Simulation(cfg, backend="numba").run("quick.h5")
    run = exodiff.open_run("quick.h5")
"""
from .version import __version__


def __getattr__(name):
    # lazy: `import exodiff` stays fast and never needs numba/h5py to succeed
    if name == "load_config":
        from .config import load_config
        return load_config
    if name == "Simulation":
        from .driver import Simulation
        return Simulation
    if name == "open_run":
        from .analysis import open_run  # the run with its analyses as methods
        return open_run
    raise AttributeError(f"module 'exodiff' has no attribute {name!r}")


__all__ = ["load_config", "Simulation", "open_run", "__version__"]
