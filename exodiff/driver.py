"""The time loop: chunks of steps between observation and snapshot times.

The driver owns time and scheduling; backends own memory and launches; only
exodiff/io touches files.

Interruption and resume (DESIGN §2: the state at a step determines the rest
of the run, whatever the chunking): SIGINT (Ctrl-C) or SIGTERM makes the run
stop at the next step boundary, save the full state
(exodiff/io/checkpoint.py) and raise :class:`~exodiff.errors.RunInterrupted`;
a second Ctrl-C stops at once.  ``run(out, resume=True)`` continues from
the latest full state on disk and writes a file identical to an
uninterrupted run's.
"""
import json
import math
import os
import signal
import threading
import time as _time
from dataclasses import dataclass, field

import numpy as np

from . import probes
from .backends import select_backend
from .errors import ConfigError, InputError, RunInterrupted
from .formats import format_bytes, format_count
from .kernels.constants import BOUND, DEGRADED, DELIVERED, FREE, INTERNALIZED, STATE_NAMES
from .kernels.state import FATES, SNAPSHOT_ZEROS, STATE_FIELDS
from .model import build_model, horizon_every
from .version import __version__

# Steps are cut into chunks of about this much wall time, so that Ctrl-C is
# answered within a few seconds (results do not depend on the chunking).
CHUNK_WALL_S = 0.5
# The first chunk, before any timing: this many vesicle-steps.
FIRST_CHUNK_VESICLE_STEPS = 1_000_000
# Peak memory while a run is built and written [bytes]: per vesicle
# derived.BYTES_PER_VESICLE (also what `exodiff check` reports), per cell this.
PEAK_BYTES_PER_CELL = 400
# Philox counter words are 32-bit: step numbers must fit.  A vesicle id takes
# two words, and the kernels index vesicles with int64.
MAX_COUNTER = 2**32 - 1
MAX_VESICLES = 2**63 - 1
# The vesicle state a snapshot stores besides the fate table (_record): a full
# snapshot doubles as a checkpoint only if that is all of kernels/state.py's
# STATE fields (else checkpoint files carry the state at snapshot steps).
SNAPSHOT_FIELDS = ("pos", "image", "state", "cell")


def _snapshots_hold_state():
    """Whether a full snapshot holds every STATE field: the SNAPSHOT_FIELDS,
    the fate table, the series of io.layout.SNAPSHOT_STATE (imported here:
    the driver loads the io package, and h5py, only when it writes) and the
    leap fields a snapshot need not hold (state.SNAPSHOT_ZEROS)."""
    from .io.layout import SNAPSHOT_STATE
    return set(STATE_FIELDS) <= (set(SNAPSHOT_FIELDS) | set(FATES) | set(SNAPSHOT_STATE)
                                 | set(SNAPSHOT_ZEROS))


@dataclass
class Progress:
    """What a progress callback receives after each chunk."""
    step: int
    n_steps: int
    time: float              # simulated time reached [s]
    duration: float          # simulated time at the end [s]
    vesicle_steps: int       # active vesicle-steps done so far
    elapsed: float           # wall time so far [s]


def _vesicle_steps(n_active, births, n0, n1):
    """(vesicle-steps of steps n0..n1-1, vesicles active after them): the
    ``n_active`` vesicles active at n0 take every step; one born in step b
    (``births``: sorted birth steps) is active from step b + 1 on.  Those that
    leave meanwhile count until the next observation reads the states."""
    lo, hi = np.searchsorted(births, (n0, n1))
    born = births[lo:hi]
    return n_active * (n1 - n0) + int((n1 - 1 - born).sum()), n_active + born.size


class Schedule:
    """Steps 0, every, 2·every, … and always the last step ``n_steps``,
    without listing them (a run may have billions of steps)."""

    def __init__(self, n_steps, every):
        self.n_steps, self.every = int(n_steps), max(1, int(every))

    def __contains__(self, step):
        return step % self.every == 0 or step == self.n_steps

    def next_after(self, step):
        """The first scheduled step after ``step`` (beyond n_steps: None)."""
        nxt = min((step // self.every + 1) * self.every, self.n_steps)
        return nxt if nxt > step else None

    def count_upto(self, step):
        """How many scheduled steps are <= ``step``."""
        step = min(step, self.n_steps)
        return step // self.every + 1 + (step == self.n_steps and step % self.every != 0)

    def __len__(self):
        return self.count_upto(self.n_steps)


@dataclass
class ResumePlan:
    """Where ``Simulation.run(out, resume=…)`` goes on: ``step`` and the
    full state there (``state``: name in state.STATE_FIELDS -> array; None at step
    0), read from ``source`` ("snapshot", "checkpoint", "start"); ``complete``
    when the run in ``out`` has already finished.  ``notes``: why a newer
    source was passed over."""
    path: str
    step: int
    source: str
    complete: bool = False
    state: dict | None = None
    notes: list = field(default_factory=list)


class Simulation:
    """One run of a scenario.

    >>> sim = Simulation(load_config("configs/quickstart.toml"), backend="numba")
    >>> summary = sim.run("out.h5")
    """

    def __init__(self, config, backend="auto"):
        self.config = config
        check_resources(config)
        self.backend, self.backend_note = select_backend(backend)
        self.model = build_model(config)

    # -- observations -------------------------------------------------------
    def observe(self):
        """Counts per state [len(STATE_NAMES)], bound and internalized per cell and species
        [M, S], cargo delivered per cell [M, K] (sum over internalized vesicles)."""
        a, m = self.model.arrays, self.model
        state, cell, species = a["state"], a["cell"], a["species"]
        counts = np.bincount(state, minlength=len(STATE_NAMES)).astype(np.int64)
        S = len(m.species_names)

        def per_cell(sel):
            flat = cell[sel].astype(np.int64) * S + species[sel]
            return np.bincount(flat, minlength=m.n_cells * S).reshape(m.n_cells, S).astype(np.int32)

        bound = per_cell(state == BOUND)
        inside = state == INTERNALIZED
        internalized = per_cell(inside)
        cargo = np.zeros((m.n_cells, len(m.cargo_names)))
        per_vesicle = m.cargo_table[a["species"][inside]]
        for k in range(len(m.cargo_names)):
            cargo[:, k] = np.bincount(cell[inside], weights=per_vesicle[:, k], minlength=m.n_cells)
        return counts, bound, internalized, cargo

    def destinations(self):
        """Where the cargo of the vesicles on cells is (io.layout
        DESTINATION_SERIES): per cell, species and donor type [M,S,D] the
        vesicles whose cargo is in the cytosol (D: the cell types, then the
        vesicles present at t = 0), of those per cell and species the ones
        that entered by fusion [M,S], the degraded ones [M,S], and the bound
        vesicle-steps per cell since the start [M]."""
        a, m = self.model.arrays, self.model
        state, cell, species = a["state"], a["cell"], a["species"]
        sizes = (m.n_cells, len(m.species_names), len(m.cell_type_names) + 1)
        donor = np.full(state.size, sizes[2] - 1)  # present at t = 0: the last donor "type"
        secreted = m.origin >= 0
        donor[secreted] = a["ctype"][m.origin[secreted]]

        def per_cell(sel, *axes):
            shape = sizes[:1 + len(axes)]
            flat = np.ravel_multi_index((cell[sel], *(x[sel] for x in axes)), shape)
            return np.bincount(flat, minlength=math.prod(shape)).reshape(shape).astype(np.int32)

        delivered = state == DELIVERED
        return {"delivered": per_cell(delivered, species, donor),
                "fused": per_cell(delivered & ~np.isnan(a["fused_time"]), species),
                "degraded": per_cell(state == DEGRADED, species),
                "bound_steps": a["cell_bound_steps"].copy()}

    def fates(self):
        """The changing columns of the fate table (io.layout.FATE_COLUMNS), [N] each."""
        a = self.model.arrays
        return {"birth_time": self.model.birth_time, **{name: a[name] for name in FATES}}

    # -- the run ------------------------------------------------------------
    def _schedules(self):
        every_obs, every_snap = horizon_every(self.config.run)
        return Schedule(self.model.n_steps, every_obs), Schedule(self.model.n_steps, every_snap)

    def _sample_ids(self):
        positions, N = self.config.output.positions, self.model.n_vesicles
        if isinstance(positions, int) and positions < N:
            # evenly spaced pool indices: present-at-start and secreted vesicles alike
            return np.unique(np.linspace(0, N - 1, positions).astype(np.int64))
        return None

    def _full_state_snapshots(self):
        """Snapshots hold every vesicle's state: they double as checkpoints."""
        return (_snapshots_hold_state() and self.config.output.positions != "none"
                and self._sample_ids() is None)

    def run(self, out, progress=None, overwrite=False, resume=False):
        """Run to the end, writing the H5MD file `out`.  `progress(Progress)`
        is called after every chunk.  ``resume``: continue the interrupted
        run in `out` (True, or a plan from :meth:`plan_resume`); the file
        ends identical to an uninterrupted run's.  Returns a summary dict
        (``resumed_from``: the step it went on from; ``already_complete``).

        SIGINT/SIGTERM (main thread only) stop the run at the next step
        boundary with its state saved: RunInterrupted."""
        from .io import RunWriter, remove_checkpoint
        cfg, m = self.config, self.model
        out = os.fspath(out)
        dt = cfg.run.dt
        obs, snaps = self._schedules()
        if resume:
            plan = resume if isinstance(resume, ResumePlan) else self.plan_resume(out)
            if plan.complete:
                remove_checkpoint(out)
                return self._summary(out, 0, 0.0, resumed_from=m.n_steps, already_complete=True,
                                     counts={})
            self._load_state(plan)
            writer = RunWriter.reopen(out, plan.step)
            start = plan.step
        else:
            check_output_path(out, overwrite)
            writer = self._new_writer(out, len(obs), len(snaps))
            start = 0
        a = m.arrays
        full_state = self._full_state_snapshots()
        t_start = _time.perf_counter()
        done, n, checkpoints = 0, start, 0

        def active():
            return int(np.count_nonzero((a["state"] == FREE) | (a["state"] == BOUND)))

        def checkpoint(step):
            nonlocal checkpoints
            checkpoints += 1
            self._write_checkpoint(writer, out, step, checkpoints)

        def interrupted(step, signum):
            return RunInterrupted(out, step, m.n_steps, step * dt, signum)

        with writer, _StopSignals() as stop:
            m.set_rates(cfg, start)  # a resumed run may start after a change
            self.backend.prepare(m)
            last_snap, last_obs = writer.last_steps()
            self._record(writer, start, start in obs and last_obs < start,
                         start in snaps and last_snap < start)
            n_active = active()
            births = np.sort(a["birth_step"][a["birth_step"] >= start])  # secretions to come
            chunk = max(1, FIRST_CHUNK_VESICLE_STEPS // max(n_active, 1))
            while n < m.n_steps:
                self._change_rates(n)
                target = min(obs.next_after(n), snaps.next_after(n), self._next_change(n))
                while n < target:
                    n1 = min(target, n + chunk)
                    t0 = _time.perf_counter()
                    self.backend.advance(n, n1)
                    self.backend.synchronize()
                    elapsed = _time.perf_counter() - t0
                    # about CHUNK_WALL_S per chunk, growing at most twofold
                    rate = (n1 - n) / elapsed if elapsed > 0 else math.inf
                    chunk = int(max(1, min(2 * chunk, rate * CHUNK_WALL_S)))
                    work, n_active = _vesicle_steps(n_active, births, n, n1)
                    done += work
                    n = n1
                    probes.reach("chunk", n)
                    if progress is not None:
                        progress(Progress(n, m.n_steps, n * dt, m.n_steps * dt, done,
                                          _time.perf_counter() - t_start))
                    if stop.signum is not None and n < target:
                        self.backend.fetch(m)
                        checkpoint(n)
                        raise interrupted(n, stop.signum)
                self.backend.fetch(m)
                n_active = active()
                self._record(writer, n, n in obs, n in snaps)
                saved = n in snaps and full_state
                if n in snaps and not full_state and n < m.n_steps:
                    checkpoint(n)
                    saved = True
                if stop.signum is not None and n < m.n_steps:
                    if not saved:
                        checkpoint(n)
                    raise interrupted(n, stop.signum)
        remove_checkpoint(out)
        return self._summary(out, done, _time.perf_counter() - t_start, resumed_from=start)

    def _next_change(self, step):
        """The first step after ``step`` at which a scheduled rate changes
        (Model.change_steps), else the last step: chunks end there."""
        changes = self.model.change_steps
        k = np.searchsorted(changes, step, side="right")
        return int(changes[k]) if k < changes.size else self.model.n_steps

    def _change_rates(self, step):
        """At a change step, give the backend the rate constants in force
        from ``step`` on."""
        changes = self.model.change_steps
        k = np.searchsorted(changes, step)
        if k < changes.size and changes[k] == step:
            self.backend.update_constants(self.model, self.model.set_rates(self.config, step))

    def _summary(self, out, done, wall, **extra):
        counts = dict(zip(STATE_NAMES, (int(c) for c in self.observe()[0])))
        a = self.model.arrays
        # leaps, and the vesicle-steps not taken: covered by leaps or by waits
        # of BOUND vesicles (kernels/leap.py), since the last full state a
        # resumed run started from (snapshots do not keep the counters)
        leaps, leapt = int(a["leaps"].sum()), int(a["leap_steps"].sum())
        return {"path": out, "wall_time": wall, "vesicle_steps": done,
                "stepping": self.model.stepping, "leaps": leaps,
                "steps_taken": max(done - leapt, 0),
                "rate": done / wall if wall > 0 else float("nan"), "counts": counts,
                "backend": self.backend.name, "device": self.backend.device,
                "resumed_from": 0, "already_complete": False, **extra}

    def _new_writer(self, out, n_observations, n_snapshots):
        from .io import RunWriter
        cfg, m = self.config, self.model
        a = m.arrays
        return RunWriter(
            out, config_text=cfg.to_toml(), seed=cfg.run.seed, backend=self.backend.name,
            device=self.backend.device, dt=cfg.run.dt, box_edges=a["box"], boundary=m.faces,
            cell_centers=a["ccenter"], cell_radii=a["cradius"], cell_types=a["ctype"],
            cell_type_names=m.cell_type_names, species=a["species"], vesicle_radius=a["vradius"],
            species_names=m.species_names, cargo_names=m.cargo_names, sample_ids=self._sample_ids(),
            write_positions=cfg.output.positions != "none", compression=cfg.output.compression,
            n_snapshots_hint=n_snapshots, n_observations_hint=n_observations,
            exodiff_version=__version__, origin=m.origin, cargo_per_vesicle=m.cargo_table,
            cell_properties={"kappa": a["ckappa"], "capacity": a["ccapacity"],
                             "secretion_rate": m.secretion_rate},
            extra_parameters={"duration": cfg.run.duration, "n_steps": m.n_steps,
                              # how the run was started, for the --resume hint of exodiff info
                              "config_path": os.path.abspath(cfg.source) if cfg.source else "",
                              "overrides": json.dumps(list(cfg.overrides))})

    def _record(self, writer, step, observe, snapshot):
        t = step * self.config.run.dt
        a = self.model.arrays
        if observe:
            writer.write_observation(step, t, *self.observe(), destinations=self.destinations())
        if snapshot:
            from .io.layout import SNAPSHOT_STATE
            writer.write_snapshot(step, t, *(a[name] for name in SNAPSHOT_FIELDS), self.fates(),
                                  {name: a[name] for name in SNAPSHOT_STATE})

    # -- checkpoint and resume ------------------------------------------------
    def _checkpoint_attrs(self):
        return {"config": self.config.to_toml(), "exodiff_version": __version__,
                "n_vesicles": np.int64(self.model.n_vesicles)}

    def _write_checkpoint(self, writer, out, step, index):
        """Save the full state at ``step`` beside ``out`` (io.write_checkpoint),
        after the frames written so far are on the disk."""
        from .io import write_checkpoint
        writer.sync()
        a = self.model.arrays
        write_checkpoint(out, step=step, time=step * self.config.run.dt, index=index,
                         arrays={k: a[k] for k in STATE_FIELDS}, attrs=self._checkpoint_attrs())

    def plan_resume(self, out):
        """Check that the run file ``out`` can be continued by this
        simulation (same exodiff version, config and backend: InputError
        naming what differs) and find the latest full state on disk: the
        last complete snapshot when snapshots hold every vesicle, the
        checkpoint file, or step 0.  Returns a ResumePlan."""
        from .io import check_not_in_use, open_run
        out = os.fspath(out)
        if not os.path.exists(out):
            raise InputError(f"{out}: no such file, nothing to resume; start the run without --resume")
        check_not_in_use(out)
        m = self.model
        with open_run(out) as run:
            self._check_same_run(run, out)
            if run.complete:
                return ResumePlan(out, m.n_steps, "complete", complete=True)
            plan = ResumePlan(out, 0, "start")
            if _snapshots_hold_state() and run.full_state and run.n_snapshots:
                k = run.n_snapshots - 1
                plan = ResumePlan(out, int(run.snapshot_steps[k]), "snapshot",
                                  state=self._snapshot_state(run, k))
            ck = self._usable_checkpoint(run, out, plan.notes)
            if ck is not None and ck["step"] > plan.step:
                plan = ResumePlan(out, ck["step"], "checkpoint", state=ck["arrays"], notes=plan.notes)
        if plan.state is not None:
            problem = self._state_problem(plan.state)
            if problem:
                raise InputError(f"{out}: the state saved at step {plan.step} is damaged ({problem}); "
                                 f"start over with --overwrite")
        return plan

    def _check_same_run(self, run, out):
        hint = "or start over with --overwrite"
        if run.exodiff_version != __version__:
            raise InputError(f"{out}: written by exodiff {run.exodiff_version or '?'}, this is exodiff "
                             f"{__version__} (results would differ); resume with exodiff "
                             f"{run.exodiff_version or '?'}, {hint}")
        diffs = _config_differences(run.config_text, self.config.to_toml())
        if diffs:
            more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
            raise InputError(f"{out}: run with a different config: {'; '.join(diffs[:3])}{more}; "
                             f"resume with the same config, --seed and --set options, {hint}")
        if run.backend != self.backend.name:
            raise InputError(f"{out}: run on the {run.backend} backend, not {self.backend.name}; "
                             f"resume with --backend {run.backend}, {hint}")
        if run.n_vesicles != self.model.n_vesicles or run.n_steps not in (None, self.model.n_steps):
            raise InputError(f"{out}: {run.n_vesicles} vesicles and {run.n_steps} steps in the file, "
                             f"{self.model.n_vesicles} and {self.model.n_steps} here; {hint}")

    def _snapshot_state(self, run, k):
        """The full state at snapshot ``k`` of a full-state run file, the
        fate columns as of that snapshot (Run.fate_columns)."""
        t = float(run.snapshot_times[k])
        state = {"pos": run.positions(k), "image": run.images(k), "state": run.states(k),
                 "cell": run.cell_of(k)}
        columns = run.fate_columns(t)
        state.update({name: columns[name] for name in FATES})
        from .io.layout import SNAPSHOT_STATE
        state.update({name: run.snapshot_state(name, k) for name in SNAPSHOT_STATE})
        state.update({name: np.zeros(self.model.n_vesicles) for name in SNAPSHOT_ZEROS})
        return state

    def _usable_checkpoint(self, run, out, notes):
        """The checkpoint of ``out`` if it belongs to this run and every frame
        up to its step is in the file; else None (why: in ``notes``)."""
        from .io import read_checkpoint
        try:
            ck = read_checkpoint(out)
        except InputError as e:
            notes.append(f"checkpoint ignored: {e}")
            return None
        if ck is None:
            return None
        attrs, step = ck["attrs"], ck["step"]
        obs, snaps = self._schedules()
        if attrs != {k: (v.item() if isinstance(v, np.generic) else v)
                     for k, v in self._checkpoint_attrs().items()}:
            notes.append("checkpoint ignored: it belongs to another config or exodiff version")
        elif not 0 <= step <= self.model.n_steps:
            notes.append(f"checkpoint ignored: step {step} outside the run")
        elif (run.n_observations < obs.count_upto(step) or run.n_snapshots < snaps.count_upto(step)):
            notes.append(f"checkpoint ignored: the run file lacks frames before its step {step}")
        else:
            return ck
        return None

    def _state_problem(self, state):
        """What is wrong with a saved state (shapes, dtypes, ranges), or None."""
        N, M = self.model.n_vesicles, self.model.n_cells
        a = self.model.arrays
        for name in STATE_FIELDS:
            x = state.get(name)
            if x is None or np.shape(x) != a[name].shape:
                return f"{name} has shape {np.shape(x)}, expected {a[name].shape}"
        st, cell = np.asarray(state["state"]), np.asarray(state["cell"])
        if N and (st.min() < 0 or st.max() >= len(STATE_NAMES)):
            return "vesicle states out of range"
        if N and (cell.min() < -1 or cell.max() >= M):
            return "cell indices out of range"
        if not np.all(np.isfinite(state["pos"])):
            return "positions not finite"
        return None

    def _load_state(self, plan):
        """Put the state of ``plan`` into the model (in place: the kernels'
        arguments are these arrays) and recount the bound vesicles per cell."""
        if plan.state is None:
            return  # step 0: the model is the initial state
        self.model.load_state({name: plan.state[name] for name in STATE_FIELDS})


class _StopSignals:
    """While a run goes on (in the main thread), SIGINT and SIGTERM ask it to
    stop at the next step boundary (``signum``); a second SIGINT stops it at
    once (KeyboardInterrupt; the file stays readable and resumable from the
    last saved state).  Signals that were ignored stay ignored."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM"):
                sig = getattr(signal, name, None)
                if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _config_differences(stored_text, text):
    """The settings that differ between two config texts, as phrases
    ("run.seed = 7 here, 42 in the file")."""
    from .tomlfile import UNSET, TOMLDecodeError, differences, parse_toml
    try:
        stored = parse_toml(stored_text)
    except TOMLDecodeError:
        return ["the config stored in the file cannot be read"]
    diffs = []
    for key, there, here in differences(stored, parse_toml(text)):
        if here is UNSET:
            diffs.append(f"{key} is not set here ({there!r} in the file)")
        elif there is UNSET:
            diffs.append(f"{key} = {here!r} here, not set in the file")
        else:
            diffs.append(f"{key} = {here!r} here, {there!r} in the file")
    return diffs


def available_memory():
    """Bytes this process may still allocate (Linux MemAvailable, capped by
    a cgroup limit; free physical pages elsewhere), or None when unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fl, open(usage_file) as fu:
                room = int(fl.read().strip()) - int(fu.read().strip())
        except (OSError, ValueError):  # no cgroup file, or "max"
            continue
        avail = room if avail is None else min(avail, room)
        break
    return avail


def check_resources(config):
    """Refuse, before allocating anything, a run that cannot work: more
    steps than the random numbers' 32-bit step counter numbers, more vesicles
    than their 64-bit ids (two counter words, kernels/philox.py), or more memory than the machine has (estimated from the expected number of
    vesicles and cells).  Raises ConfigError naming the key."""
    from . import physics
    from .derived import BYTES_PER_VESICLE, derived_parameters
    n_steps = physics.step_count(config.run.duration, config.run.dt)
    if n_steps > MAX_COUNTER:
        raise ConfigError("run.dt", f"duration / dt = {n_steps:,} steps, more than the {MAX_COUNTER:,} "
                                    f"the random-number counter can number; use a longer dt or a "
                                    f"shorter duration")
    d = derived_parameters(config)
    total, cells = d.total_vesicles, d.n_cells or 0
    initial = sum(p.initial for p in d.populations.values())
    what = (f"{format_count(total)} vesicles in all ({format_count(initial)} at t = 0 + "
            f"{format_count(total - initial)} expected secreted)")
    key = "vesicles"
    if d.populations:
        name, pop = max(d.populations.items(), key=lambda kv: kv[1].total)
        key = f"vesicles.{name}.count" if pop.initial >= pop.secreted else f"vesicles.{name}"
    if total > MAX_VESICLES:
        raise ConfigError(key, f"{what}; at most {format_count(MAX_VESICLES)} can have their own "
                               f"random numbers")
    need_v, need_c = BYTES_PER_VESICLE * total, PEAK_BYTES_PER_CELL * cells
    avail = available_memory()
    if avail is not None and need_v + need_c > avail:
        if need_c > need_v:
            key, what = "cells.count", f"{format_count(cells)} cells"
        raise ConfigError(key, f"{what} need about {format_bytes(need_v + need_c)} of memory, more "
                               f"than the {format_bytes(avail)} available; lower the count"
                               + (" or the secretion" if key.startswith("vesicles") else ""))




def check_output_path(out, overwrite):
    """Refuse, before anything is written, outputs that cannot or must not be written."""
    from .io import check_not_in_use
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{out}: {folder} is not a directory")
    if not os.path.isdir(folder):
        raise InputError(f"{out}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{out}: the directory {folder} is not writable")
    if os.path.isdir(out):
        raise InputError(f"{out}: is a directory")
    if os.path.exists(out):
        if not overwrite:
            raise InputError(f"{out}: exists; pass --overwrite to replace it, or --resume to continue it")
        check_not_in_use(out)
