"""Nothing lost (issue 7): a run killed at any moment leaves a readable file
with every finished snapshot, and ``exodiff run --resume`` continues it to a
file identical, dataset for dataset and attribute for attribute, to an
uninterrupted run's.

Kills come from real ``exodiff run`` processes, started through
tests/faults.py, which listens to exodiff's probes (exodiff/probes.py): with
``EXODIFF_TEST_KILL_AT="chunk:S"`` the process SIGKILLs itself after the
chunk of steps that reaches step S (before writing what follows),
``"snapshot:K"`` in the middle of writing snapshot frame K,
``"checkpoint:K"`` after writing its K-th checkpoint but before committing it.
``EXODIFF_TEST_TRACE=FILE`` makes it log each snapshot once complete.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from exodiff.cli import main
from exodiff.io import RunLock, checkpoint_path, clear_status_flags, open_run

ROOT = Path(__file__).resolve().parents[1]
# `exodiff` with fault injection (tests/faults.py)
EXODIFF = [sys.executable, str(ROOT / "tests" / "faults.py")]

# Secretion (pending slots), an absorbing face, clearance, binding with
# receptor capacity (step-synchronised kernel), unbinding, internalization,
# fusion, escape, degradation, recycling (bound time per vesicle and per cell),
# periodic images: every part of the state a resume must restore.
CAPACITY = """
[run]
duration = "0.3 s"
dt = "1 ms"
seed = 5
snapshot_interval = "0.1 s"
observe_interval = "0.04 s"
[domain]
size = ["30 um", "30 um", "16 um"]
boundary = { x = "periodic", y = "periodic", z = ["reflect", "absorb"] }
[cells]
layout = "list"
centers = [[8, 8, 8], [22, 22, 8], [8, 22, 7]]
radius = "4 um"
types = ["target", "donor", "target"]
[cell_types.target]
kappa = "5 um/s"
k_off = "1 /s"
k_int = "20 /s"
k_fuse = "5 /s"
k_escape = "20 /s"
k_degrade = "10 /s"
k_recycle = "20 /s"
capacity = 15
[cell_types.donor]
secretion_rate = "300 /s"
secretes = "ev"
[vesicles.ev]
radius = { median = "50 nm", gsd = 1.2 }
count = 800
half_life = "3 s"
cargo = { mir = 3 }
"""
# No capacity (the fused kernel), more snapshots: the random-kill trials.
FUSED = CAPACITY.replace("capacity = 15", "").replace('duration = "0.3 s"', 'duration = "0.6 s"') \
                .replace('snapshot_interval = "0.1 s"', 'snapshot_interval = "0.05 s"') \
                .replace('observe_interval = "0.04 s"', 'observe_interval = "0.02 s"') \
                .replace("count = 800", "count = 2500")
SAMPLED = "\n[output]\npositions = { sample = 100 }\n"
# Long enough (~3 s of stepping on one thread) that a signal sent after the
# first snapshot lands while the run is still going, however fast the kernel.
LONG = FUSED.replace('duration = "0.6 s"', 'duration = "20 s"') \
            .replace('snapshot_interval = "0.05 s"', 'snapshot_interval = "1 s"') \
            .replace('observe_interval = "0.02 s"', 'observe_interval = "0.5 s"')
NO_POSITIONS = '\n[output]\npositions = "none"\n'


def _files(path):
    """Everything under an HDF5 file: name -> (attrs, dataset bytes or None)."""
    out = {}

    def attrs(obj):
        return {k: (np.asarray(v).tolist() if np.asarray(v).dtype.kind == "O" else np.asarray(v).tobytes())
                for k, v in obj.attrs.items()}

    with h5py.File(path, "r") as f:
        out["/"] = (attrs(f), None)

        def visit(name, obj):
            data = None
            if isinstance(obj, h5py.Dataset):
                data = (obj.shape, obj.dtype.str, obj[()].tobytes())
            out[name] = (attrs(obj), data)
        f.visititems(visit)
    return out


# How a run was started (for the --resume hint of exodiff info): two command
# lines that give the same config (--seed 5 or --set run.seed=5) make the same run.
PROVENANCE = ("config_path", "overrides")


def assert_same_file(a, b):
    """Every group, dataset (shape, dtype, bytes) and attribute equal, but
    the PROVENANCE attributes of /parameters."""
    fa, fb = _files(a), _files(b)
    for f in (fa, fb):
        for key in PROVENANCE:
            f["parameters"][0].pop(key, None)
    assert sorted(fa) == sorted(fb)
    different = [name for name in fa if fa[name] != fb[name]]
    assert not different, f"{b} differs from {a} in {different}"


def _exodiff(*args, env=None, **kw):
    return subprocess.run([*EXODIFF, *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, **kw)


def _env(**extra):
    """The children's environment: one Numba thread (faster to start and,
    on a busy machine, to run; results do not depend on it) unless asked."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1")
    env.pop("EXODIFF_TEST_KILL_AT", None)
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def one_thread():
    """In-process resumes on one Numba thread too: on a busy machine the
    step-synchronised kernel runs far faster so (results are the same)."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Config files and uninterrupted reference runs, made once."""
    root = tmp_path_factory.mktemp("reference")
    made = {}

    def get(name, text):
        if name not in made:
            cfg = root / f"{name}.toml"
            cfg.write_text(text)
            ref = root / f"{name}.h5"
            # in a child like the others, so /parameters.device (which
            # names the thread count) is the same as theirs
            done = _exodiff("run", cfg, "-o", ref, "--backend", "numba", "-q", env=_env(), timeout=300)
            assert done.returncode == 0, done.stderr
            wall = float(done.stdout.split(" s wall")[0].split()[-1])
            made[name] = (cfg, ref, wall)
        return made[name]
    return get


def _kill_and_resume(cfg, ref, out, kill_at, capsys):
    """Kill a child at ``kill_at``, resume here; returns what the resume said."""
    child = _exodiff("run", cfg, "-o", out, "--backend", "numba", "-q",
                     env=_env(EXODIFF_TEST_KILL_AT=kill_at), timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    with open_run(out) as run:  # readable as it was left, before any repair
        assert not run.complete and run.n_snapshots >= 0
    assert main(["run", str(cfg), "-o", str(out), "--backend", "numba", "-q", "--resume"]) == 0
    assert_same_file(ref, out)
    assert not checkpoint_path(out).exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("kill_at", ["chunk:150", "snapshot:2"])
def test_resume_after_kill_is_bitwise_identical(runs, tmp_path, kill_at, capsys):
    """Killed during a chunk of steps and in the middle of a snapshot write;
    snapshots hold every vesicle, so they are the resume points."""
    cfg, ref, _ = runs("capacity", CAPACITY)
    out = tmp_path / "killed.h5"
    said = _kill_and_resume(cfg, ref, out, kill_at, capsys)
    assert "at step 100 of 300 (t = 0.1 s), from its last complete snapshot" in said
    # the fate table is among the bytes compared, and records every fate
    with open_run(out) as run:
        fates = run.fates
    for column in ("first_bound_time", "internalized_time", "exit_time", "cleared_time", "escape_time",
                   "degraded_time", "fused_time"):
        assert fates[column].notna().any(), column
    assert (fates["recycled"] > 0).any() and (fates["bound_duration"] > 0).any()


@pytest.mark.parametrize("output, kill_at, resumed_at", [
    (SAMPLED, "chunk:130", 100), (NO_POSITIONS, "snapshot:3", 100), (SAMPLED, "checkpoint:2", 50)],
    ids=["sampled-chunk", "no-positions-snapshot", "sampled-checkpoint"])
def test_resume_from_the_checkpoint_file_is_bitwise_identical(runs, tmp_path, output, kill_at,
                                                              resumed_at, capsys):
    """Sampled or no positions: the full state lives in PATH.checkpoint,
    written (atomically) at every snapshot; a kill while it is being written
    leaves the previous one."""
    cfg, ref, _ = runs("fused-sampled" if output == SAMPLED else "fused-none", FUSED + output)
    out = tmp_path / "killed.h5"
    said = _kill_and_resume(cfg, ref, out, kill_at, capsys)
    assert f"at step {resumed_at} of 600" in said and "from its checkpoint" in said


def test_resume_twice_with_other_thread_counts(runs, tmp_path):
    """Killed, resumed, killed again while resuming, resumed again with
    another thread count: still the same file."""
    cfg, ref, _ = runs("capacity", CAPACITY)
    out = tmp_path / "twice.h5"
    child = _exodiff("run", cfg, "-o", out, "--backend", "numba", "-q",
                     env=_env(EXODIFF_TEST_KILL_AT="snapshot:2", NUMBA_NUM_THREADS="1"), timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    child = _exodiff("run", cfg, "-o", out, "-q", "--resume",
                     env=_env(EXODIFF_TEST_KILL_AT="snapshot:3", NUMBA_NUM_THREADS="2"), timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert main(["run", str(cfg), "-o", str(out), "-q", "--resume"]) == 0
    assert_same_file(ref, out)  # /parameters.device: the first process' thread count


def test_ctrl_c_saves_a_checkpoint_and_exits_130(runs, tmp_path):
    """SIGINT between snapshots: the run stops at the next step boundary
    within seconds, saves its state, says how to resume and exits 130."""
    cfg, ref, _ = runs("long-sampled", LONG + SAMPLED)
    out, trace = tmp_path / "c.h5", tmp_path / "trace"
    child = subprocess.Popen([*EXODIFF, "run", str(cfg), "-o", str(out),
                              "--backend", "numba", "-q", "--seed", "5", "--set", 'run.dt="1 ms"'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=_env(EXODIFF_TEST_TRACE=str(trace)))
    try:
        deadline = time.monotonic() + 120
        while not (trace.exists() and trace.read_text()):  # snapshot 0 is written
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        answered = time.monotonic() - sent
    finally:
        child.kill()
    assert child.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("Interrupted at t = ") and "the state is saved" in line
    command = line.split("Continue with: ")[1]
    assert command.endswith("--resume") and "--seed 5" in command and "'run.dt=\"1 ms\"'" in command
    assert checkpoint_path(out).exists()
    assert answered < 30  # chunks are ~0.5 s; the rest is writing the checkpoint, on a busy machine
    assert main(shlex.split(command)[1:]) == 0
    assert_same_file(ref, out)


def test_resume_on_a_complete_run_says_so(runs, tmp_path, capsys):
    cfg, ref, _ = runs("capacity", CAPACITY)
    out = tmp_path / "done.h5"
    shutil.copy(ref, out)
    checkpoint_path(out).write_bytes(b"stale")
    assert main(["run", str(cfg), "-o", str(out), "-q", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert not checkpoint_path(out).exists()
    assert_same_file(ref, out)


def _one_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


def test_resume_refuses_what_it_cannot_continue(runs, tmp_path, capsys):
    """Exit 2 with one line, the file untouched: no file, another seed or
    config, another exodiff version, another backend, --overwrite too, a
    file still being written."""
    cfg, ref, _ = runs("capacity", CAPACITY)
    base = ["run", str(cfg), "-q", "--resume", "-o"]
    assert main(base + [str(tmp_path / "none.h5")]) == 2
    assert "nothing to resume" in _one_error(capsys)

    out = tmp_path / "killed.h5"
    child = _exodiff("run", cfg, "-o", out, "--backend", "numba", "-q",
                     env=_env(EXODIFF_TEST_KILL_AT="snapshot:2"), timeout=300)
    assert child.returncode == -signal.SIGKILL
    clear_status_flags(out)  # what any reader of a killed run's file does first (exodiff/io/reader.py)
    before = out.read_bytes()
    assert main(base + [str(out), "--seed", "6"]) == 2
    assert "run.seed = 6 here, 5 in the file" in _one_error(capsys)
    assert main(base + [str(out), "--set", "vesicles.ev.count=10", "--set", "run.dt=2ms"]) == 2
    line = _one_error(capsys)
    assert "vesicles.ev.count = 10 here, 800 in the file" in line and "run.dt" in line
    assert main(base + [str(out), "--backend", "numpy"]) == 2
    assert "--backend numba" in _one_error(capsys)
    assert main(base + [str(out), "--overwrite"]) == 2
    assert "choose one" in _one_error(capsys)
    lock = RunLock(out, exclusive=False)  # as a live writer holds it
    try:
        assert main(base + [str(out)]) == 2
        assert "in use by another process" in _one_error(capsys)
    finally:
        lock.close()
    assert out.read_bytes() == before

    old = tmp_path / "old.h5"
    shutil.copy(out, old)
    clear_status_flags(old)
    with h5py.File(old, "r+") as f:
        f["parameters"].attrs["exodiff_version"] = "0.0.1"
    assert main(base + [str(old)]) == 2
    assert "written by exodiff 0.0.1" in _one_error(capsys)

    # after all that, the killed file still resumes to the reference
    assert main(base + [str(out)]) == 0
    assert_same_file(ref, out)


# ------------------------------------------------------ random kill trials

TRIALS = int(os.environ.get("EXODIFF_KILL_TRIALS", "6"))  # more for a longer soak


def check_left_file(out, ref, done_steps):
    """What a killed run must leave: a file exodiff info and open_run read,
    whose complete frames equal the reference run's (every snapshot in
    ``done_steps`` among them), readable by plain h5py after the repair."""
    assert main(["info", str(out)]) == 0
    with open_run(out) as run, open_run(ref) as full:
        steps = list(run.snapshot_steps)
        assert steps == list(full.snapshot_steps[: len(steps)])
        assert done_steps is None or set(done_steps) <= set(steps), (done_steps, steps)
        for k in range(run.n_snapshots):
            assert np.array_equal(run.states(k), full.states(k))
            assert np.array_equal(run.cell_of(k), full.cell_of(k))
            assert np.array_equal(run.positions(k), full.positions(k))
        T = run.n_observations
        assert np.array_equal(run.bound_per_cell, full.bound_per_cell[:T])
        assert all(np.array_equal(run.counts[s], full.counts[s][:T]) for s in full.counts)
        left = run.n_snapshots, T, run.complete
    clear_status_flags(out)
    with h5py.File(out, "r") as f:  # plain h5py, as other tools read it
        f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
    return left


def test_random_kills_leave_readable_files_that_resume(runs, tmp_path, capsys):
    """SIGKILL real `exodiff run` processes at random moments (after the file
    appears; half with sampled positions, whose checkpoints are written too).
    Each left file must open with `exodiff info` and, after
    clear_status_flags, with plain h5py; hold every snapshot that was
    complete before the kill, each equal to the uninterrupted run's; and
    resume to a file identical to it."""
    rng = np.random.default_rng(7)
    n_snapshots = 13  # FUSED: 0.6 s, one every 0.05 s
    tried = readable = complete_before = resumed = 0
    counts = []
    for trial in range(TRIALS):
        kind = ("fused", FUSED) if trial % 2 == 0 else ("fused-sampled", FUSED + SAMPLED)
        cfg, ref, wall = runs(*kind)
        out, trace = tmp_path / f"k{trial}.h5", tmp_path / f"k{trial}.trace"
        child = subprocess.Popen([*EXODIFF, "run", str(cfg), "-o", str(out),
                                  "--backend", "numba", "-q"], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=_env(EXODIFF_TEST_TRACE=str(trace)))
        try:
            # Wait for snapshot k (a random one) to be complete, then a
            # random part of the time between snapshots (as this machine
            # runs now): kills land anywhere in the run, at any speed.
            k = int(rng.integers(1, n_snapshots - 1))
            arrived = []
            deadline = time.monotonic() + 120
            while len(arrived) <= k and child.poll() is None:
                assert time.monotonic() < deadline
                lines = len(trace.read_text().split("\n")) - 1 if trace.exists() else 0
                arrived += [time.monotonic()] * (lines - len(arrived))
                time.sleep(0.005)
            interval = (arrived[-1] - arrived[1]) / (len(arrived) - 2) if len(arrived) > 2 \
                else wall / n_snapshots
            time.sleep(rng.uniform(0.0, interval))
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=30)
        finally:
            child.kill()
        tried += 1
        done = [int(x.split()[1]) for x in trace.read_text().split("\n") if x] if trace.exists() else []
        snapshots, observations, complete = check_left_file(out, ref, done)
        capsys.readouterr()
        counts.append((snapshots, observations))
        complete_before += complete
        with h5py.File(out, "r") as f:
            assert f["particles/vesicles/state/step"].shape[0] >= len(done)
        readable += 1
        assert main(["run", str(cfg), "-o", str(out), "--backend", "numba", "-q", "--resume"]) == 0
        capsys.readouterr()
        assert_same_file(ref, out)
        resumed += 1
    with capsys.disabled():
        print(f"\nrandom kills: {tried} tried, {readable} left a readable file with every "
              f"completed snapshot, {resumed} resumed bit-identical; (snapshots, observations) "
              f"at kill: {counts}; {complete_before} had already finished")
    assert tried == readable == resumed == TRIALS
    assert complete_before <= TRIALS // 2  # most kills landed mid-run
