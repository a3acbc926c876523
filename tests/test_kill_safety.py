"""A killed run never leaves a file that cannot be read (issue 13).

HDF5's SWMR writer flushes in a fixed order: raw data, then the metadata
that points at it, then the superblock with the new end of allocation (EOA)
last.  A kill between the last two leaves objects on disk beyond the EOA
the superblock records.  SWMR readers accept that (HDF5 expects the stored
EOA to lag behind a SWMR writer); a plain reader fails with ``addr overflow``,
and a resumed writer would allocate new objects over them.  Clearing the
status flags therefore also raises the EOA to the end of the file (what
HDF5's ``h5clear --increment`` does for a crashed SWMR file).

Two kinds of proof:

- deterministic: ``strace`` injects SIGKILL at chosen ``pwrite`` calls of a
  real ``exodiff run`` (just before a superblock write, and inside the
  metadata and data writes of a frame), so CI replays exactly the moments
  that once failed;
- statistical, behind the ``slow`` marker (``pytest -m slow``): hundreds of
  runs killed at random instants while the test keeps the machine busy
  (busy loops and a writer that syncs to disk).  ``EXODIFF_KILL_TRIALS``
  sets the number of trials (default 200).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from exodiff.cli import main
from exodiff.io import clear_status_flags
from exodiff.io.recovery import _lookup3, superblock
from test_resume import (CAPACITY, EXODIFF, FUSED, ROOT, SAMPLED, _env, _exodiff, assert_same_file,
                         check_left_file)


@pytest.fixture(autouse=True)
def one_thread():
    """In-process resumes on one Numba thread, as the children run."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# ----------------------------------------------------------- the repair itself

def _set_eoa(path, eoa):
    """Write ``eoa`` into the superblock of ``path`` (version >= 2), with its
    checksum, as a writer's flush that stopped before the superblock would
    have left it."""
    sb = superblock(path)
    offset_size = sb["raw"][9]
    raw = bytearray(sb["raw"])
    at = 12 + 2 * offset_size
    raw[at: at + offset_size] = int(eoa).to_bytes(offset_size, "little")
    raw[-4:] = _lookup3(bytes(raw[:-4])).to_bytes(4, "little")
    with open(path, "r+b") as fh:
        fh.seek(sb["base"])
        fh.write(raw)


def test_clearing_flags_raises_an_eoa_that_lags_behind_the_file(tmp_path):
    """A killed SWMR writer's superblock may record an end of allocation
    below objects already on disk; the repair moves it to the end of the
    file, so plain readers open it and nothing is lost."""
    path = tmp_path / "lag.h5"
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        ds = f.create_dataset("x", shape=(0,), maxshape=(None,), chunks=(4,), dtype="i8")
        f.swmr_mode = True
        ds.resize(4, axis=0)
        ds[:] = [1, 2, 3, 4]
        f.flush()
        eoa_before = superblock(path)["eoa"]
        ds.resize(64, axis=0)  # new chunks and a bigger chunk index, beyond that EOA
        ds[:] = np.arange(64)
        f.flush()
        eoa_after = superblock(path)["eoa"]
        flags = superblock(path)["flags"]
        shutil.copy(path, tmp_path / "killed.h5")  # the file as a SIGKILL leaves it: flags set
    killed = tmp_path / "killed.h5"
    assert flags and eoa_after > eoa_before
    _set_eoa(killed, eoa_before)  # ... and stopped just before its superblock write
    assert clear_status_flags(killed)
    sb = superblock(killed)
    assert sb["flags"] == 0 and sb["base"] + sb["eoa"] >= sb["size"] >= eoa_after
    with h5py.File(killed, "r") as f:  # no "addr overflow"
        assert f["x"][()].tolist() == list(range(64))


# ------------------------------------------- kills at chosen writes (strace)

def _strace_works():
    if shutil.which("strace") is None:
        return "strace is not installed"
    try:
        done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=none", "-o", os.devnull, "true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"strace does not run here ({e})"
    return None if done.returncode == 0 else f"strace cannot trace here: {done.stderr.decode().strip()}"


STRACE_MISSING = _strace_works()
_PWRITE = re.compile(r'pwrite64\(\d+, "(.*?)"(?:\.\.\.)?, (\d+), (\d+)\)')
_SUPERBLOCK_START = r"\211HDF\r\n\32\n"


def _strace(args, extra):
    """``strace`` around ``exodiff run ARGS``, tracing pwrite64 (--seccomp-bpf would
    be faster, but it drops the injected signal)."""
    return ["strace", "-f", "-qq", "-e", "trace=pwrite64", *extra,
            *EXODIFF, "run", *map(str, args)]


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """The CAPACITY run written once under strace: its reference file and
    the list of its pwrite calls (offset, size, writes the superblock)."""
    root = tmp_path_factory.mktemp("traced")
    cfg, ref, log = root / "capacity.toml", root / "ref.h5", root / "pwrite.log"
    cfg.write_text(CAPACITY)
    done = subprocess.run(_strace([cfg, "-o", ref, "--backend", "numba", "-q"], ["-o", str(log)]),
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    writes = []
    for line in log.read_text().splitlines():
        m = _PWRITE.search(line)
        if m:
            writes.append((int(m.group(3)), int(m.group(2)), m.group(1).startswith(_SUPERBLOCK_START)))
    return cfg, ref, writes


def _kill_points(writes):
    """pwrite numbers (1-based) to kill at: just before each superblock write
    of the frames after the first (the moment of the issue's failure), and
    the first and a middle write of the flush before it (data and metadata
    of a frame in flight)."""
    sb = [i + 1 for i, (_, _, is_sb) in enumerate(writes) if is_sb]
    points = set()
    for prev, this in zip(sb[3:], sb[4:7]):  # past creation and the switch to SWMR
        points |= {this, prev + 1, (prev + this) // 2}
    return sorted(points)


@pytest.mark.skipif(STRACE_MISSING is not None, reason=f"{STRACE_MISSING}")
def test_kills_inside_a_flush_leave_readable_files_that_resume(traced, tmp_path, capsys):
    """SIGKILL exactly at chosen pwrite calls of a real run: every left file
    opens (exodiff info, open_run, and plain h5py after the repair), holds
    the frames completed before the kill, and resumes to the uninterrupted
    run's file, bit for bit."""
    cfg, ref, writes = traced
    points = _kill_points(writes)
    assert len(points) >= 6 and any(writes[n - 1][2] for n in points)
    for n in points:
        out = tmp_path / f"at{n}.h5"
        inject = ["-o", os.devnull, "-e", f"inject=pwrite64:signal=KILL:when={n}"]
        child = subprocess.run(_strace([cfg, "-o", out, "--backend", "numba", "-q"], inject),
                               capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
        assert child.returncode != 0 and out.exists(), (n, child.returncode, child.stderr)
        check_left_file(out, ref, done_steps=None)
        capsys.readouterr()
        assert main(["run", str(cfg), "-o", str(out), "--backend", "numba", "-q", "--resume"]) == 0, n
        assert_same_file(ref, out)


# ---------------------------------------------- random kills on a busy machine

def _busy_machine(tmp_path, n_loops):
    """Processes that keep every core and the disk busy: ``n_loops`` busy
    loops and one writer that writes and fsyncs 4 MiB at a time."""
    spin = "while True: pass"
    disk = ("import os,sys\nb=os.urandom(1<<22)\n"
            "while True:\n"
            " with open(sys.argv[1],'wb') as f:\n"
            "  [f.write(b) for _ in range(8)]; f.flush(); os.fsync(f.fileno())\n")
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n_loops)] + \
        [subprocess.Popen([sys.executable, "-c", disk, str(tmp_path / "disk-load")])]


# Small and short, with a frame every 10 steps: a run is mostly flushes, so
# random kills often land inside one.  Half the trials sample positions, so
# checkpoint files are written (and killed) too.
SOAK = FUSED.replace("count = 2500", "count = 500").replace('duration = "0.6 s"', 'duration = "0.3 s"') \
            .replace('snapshot_interval = "0.05 s"', 'snapshot_interval = "0.02 s"') \
            .replace('observe_interval = "0.02 s"', 'observe_interval = "0.01 s"')


@pytest.mark.slow
def test_random_kills_under_load_leave_readable_files(tmp_path, capsys):
    """Hundreds of `exodiff run` processes SIGKILLed at random instants while
    two busy loops and a syncing writer load the machine; each left file must
    pass what check_left_file asks and resume bit-identical.  Failures are
    printed as they come and counted over all trials."""
    trials = int(os.environ.get("EXODIFF_KILL_TRIALS", "200"))
    rng = np.random.default_rng(int(os.environ.get("EXODIFF_KILL_SEED", "13")))
    kinds = {}
    for name, text in (("all", SOAK), ("sampled", SOAK + SAMPLED)):
        cfg, ref = tmp_path / f"{name}.toml", tmp_path / f"{name}.h5"
        cfg.write_text(text)
        done = _exodiff("run", cfg, "-o", ref, "--backend", "numba", "-q", env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        kinds[name] = (cfg, ref)
    load = _busy_machine(tmp_path, n_loops=2)
    failures, no_file, finished, walls = [], 0, 0, []
    started = time.monotonic()
    try:
        for trial in range(trials):
            cfg, ref = kinds["all" if trial % 2 == 0 else "sampled"]
            out, trace = tmp_path / f"k{trial}.h5", tmp_path / f"k{trial}.trace"
            child = subprocess.Popen([*EXODIFF, "run", str(cfg), "-o", str(out),
                                      "--backend", "numba", "-q"], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=_env(EXODIFF_TEST_TRACE=str(trace)))
            try:
                # Kills land at a random instant between the file's creation
                # and the run's end, as this loaded machine runs it now (1
                # run in 10 is let finish, to time that).
                while not out.exists() and child.poll() is None:
                    time.sleep(0.002)
                appeared = time.monotonic()
                if trial % 10 == 9 or not walls:
                    child.wait(timeout=600)
                    walls.append(time.monotonic() - appeared)
                else:
                    try:
                        child.wait(timeout=rng.uniform(0.0, float(np.median(walls))))
                    except subprocess.TimeoutExpired:
                        child.send_signal(signal.SIGKILL)
                child.wait(timeout=60)
            finally:
                child.kill()
            finished += child.returncode == 0
            if not out.exists():
                no_file += 1
                continue
            done = [int(x.split()[1]) for x in trace.read_text().split("\n") if x] if trace.exists() else []
            try:
                check_left_file(out, ref, done)
                capsys.readouterr()
                assert main(["run", str(cfg), "-o", str(out), "--backend", "numba", "-q", "--resume"]) == 0
                assert_same_file(ref, out)
            except Exception as e:  # counted and reported; the trials go on
                failures.append(trial)
                with capsys.disabled():
                    print(f"\n  trial {trial} FAILED: {' '.join(str(e).split())[:300]} | "
                          f"{' '.join(capsys.readouterr().err.split())[:300]}", flush=True)
            for p in (out, out.with_name(out.name + ".checkpoint"), trace):
                p.unlink(missing_ok=True)
            if trial % 25 == 24:
                with capsys.disabled():
                    print(f"\n  {trial + 1} trials, {len(failures)} failed "
                          f"({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        for p in load:
            p.kill()
            p.wait()
    with capsys.disabled():
        print(f"\nkills under load: {trials} trials, {trials - no_file} left a file "
              f"({finished} had finished), {len(failures)} failed {failures}; median run after "
              f"the file appears {np.median(walls):.2f} s")
    assert not failures
