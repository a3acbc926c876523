"""The time loop: chunks of steps between observation and snapshot times.

The driver owns time and scheduling; backends own memory and launches; only
exodiff/io.py touches files.
"""
import os
import time as _time
from dataclasses import dataclass

import numpy as np

from . import __version__
from .backends import select_backend
from .errors import InputError
from .kernels.constants import BOUND, FREE, INTERNALIZED, STATE_NAMES
from .model import build_model


@dataclass
class Progress:
    """What a progress callback receives after each chunk."""
    step: int
    n_steps: int
    time: float              # simulated time reached [s]
    duration: float          # simulated time at the end [s]
    vesicle_steps: int       # active vesicle-steps done so far
    elapsed: float           # wall time so far [s]


def schedule(n_steps, every):
    """Steps 0, every, 2·every, … and always the last step."""
    steps = set(range(0, n_steps + 1, max(1, every)))
    steps.add(n_steps)
    return steps


class Simulation:
    """One run of a scenario.

    >>> sim = Simulation(load_config("configs/quickstart.toml"), backend="numba")
    >>> summary = sim.run("out.h5")
    """

    def __init__(self, config, backend="auto"):
        self.config = config
        self.backend, self.backend_note = select_backend(backend)
        self.model = build_model(config)

    # -- observations -------------------------------------------------------
    def observe(self):
        """Counts per state [6], bound and internalized per cell [M], cargo
        delivered per cell [M, K] (sum over internalized vesicles)."""
        a, m = self.model.arrays, self.model
        state, cell = a["state"], a["cell"]
        counts = np.bincount(state, minlength=len(STATE_NAMES)).astype(np.int64)
        bound = np.bincount(cell[state == BOUND], minlength=m.n_cells).astype(np.int32)
        inside = state == INTERNALIZED
        internalized = np.bincount(cell[inside], minlength=m.n_cells).astype(np.int32)
        cargo = np.zeros((m.n_cells, len(m.cargo_names)))
        per_vesicle = m.cargo_table[a["species"][inside]]
        for k in range(len(m.cargo_names)):
            cargo[:, k] = np.bincount(cell[inside], weights=per_vesicle[:, k], minlength=m.n_cells)
        return counts, bound, internalized, cargo

    def milestones(self):
        a = self.model.arrays
        return {"birth_time": self.model.birth_time, "first_bound_time": a["t_bound"],
                "internalized_time": a["t_internalized"], "exit_time": a["t_exit"]}

    # -- the run ------------------------------------------------------------
    def run(self, out, progress=None, overwrite=False):
        """Run to the end, writing the H5MD file `out`.  `progress(Progress)`
        is called after every chunk.  Returns a summary dict."""
        from .io import RunWriter
        cfg, m = self.config, self.model
        out = os.fspath(out)
        check_output_path(out, overwrite)
        dt = cfg.run.dt
        obs = schedule(m.n_steps, int(round(cfg.run.observe_interval / dt)))
        snaps = schedule(m.n_steps, int(round(cfg.run.snapshot_interval / dt)))
        stops = sorted(obs | snaps)
        a = m.arrays
        sample_ids = None
        if isinstance(cfg.output.positions, int) and cfg.output.positions < m.n_vesicles:
            # evenly spaced pool indices: present-at-start and secreted vesicles alike
            sample_ids = np.unique(np.linspace(0, m.n_vesicles - 1, cfg.output.positions).astype(np.int64))
        writer = RunWriter(
            out, config_text=cfg.to_toml(), seed=cfg.run.seed, backend=self.backend.name,
            device=self.backend.device, dt=dt, box_edges=a["box"], boundary=m.faces,
            cell_centers=a["ccenter"], cell_radii=a["cradius"], cell_types=a["ctype"],
            cell_type_names=m.cell_type_names, species=a["species"], vesicle_radius=a["vradius"],
            species_names=m.species_names, cargo_names=m.cargo_names, sample_ids=sample_ids,
            write_positions=cfg.output.positions != "none", compression=cfg.output.compression,
            n_snapshots_hint=len(snaps), n_observations_hint=len(obs), exodiff_version=__version__,
            extra_parameters={"duration": cfg.run.duration, "n_steps": m.n_steps})
        self.backend.prepare(m)
        t_start = _time.perf_counter()
        done = 0
        with writer:
            self._record(writer, 0, 0 in obs, 0 in snaps)
            for n0, n1 in zip(stops[:-1], stops[1:]):
                active = int(np.count_nonzero((a["state"] == FREE) | (a["state"] == BOUND)))
                self.backend.advance(n0, n1)
                self.backend.fetch(m)
                done += active * (n1 - n0)
                self._record(writer, n1, n1 in obs, n1 in snaps)
                if progress is not None:
                    progress(Progress(n1, m.n_steps, n1 * dt, m.n_steps * dt, done,
                                      _time.perf_counter() - t_start))
        wall = _time.perf_counter() - t_start
        counts = dict(zip(STATE_NAMES, (int(c) for c in self.observe()[0])))
        return {"path": out, "wall_time": wall, "vesicle_steps": done,
                "rate": done / wall if wall > 0 else float("nan"), "counts": counts,
                "backend": self.backend.name, "device": self.backend.device}

    def _record(self, writer, step, observe, snapshot):
        t = step * self.config.run.dt
        a = self.model.arrays
        if observe:
            writer.write_observation(step, t, *self.observe())
        if snapshot:
            writer.write_snapshot(step, t, a["pos"], a["image"], a["state"], a["cell"], self.milestones())


def check_output_path(out, overwrite):
    """Refuse, before anything is written, outputs that cannot or must not be written."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise InputError(f"{out}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{out}: the directory {folder} is not writable")
    if os.path.isdir(out):
        raise InputError(f"{out}: is a directory")
    if os.path.exists(out) and not overwrite:
        raise InputError(f"{out}: exists; pass --overwrite to replace it")
