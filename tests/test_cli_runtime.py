"""What the command line does on a busy machine and in pipelines (issue 13):
the rate it reports, a reader that closes the pipe early, and the number of
threads (--threads, NUMBA_NUM_THREADS)."""
import subprocess
import sys

import numpy as np
import pytest

from exodiff.cli import main
from exodiff.driver import Simulation

from scenarios import SMALL_TOML, scenario
from test_resume import ROOT, _env

# No vesicle at the start; one donor cell secretes them all through the run,
# and none ever leaves (no absorbing face, clearance or internalization).
SECRETION_ONLY = dict(
    run={"duration": 0.05},
    cells={"layout": "list", "centers": [[50.0, 50.0, 50.0]], "radius": 5.0, "type": "donor"},
    cell_types={"donor": {"secretion_rate": 4000.0, "secretes": "ev"}},
    vesicles={"ev": {"radius": 0.05, "diffusion": 4.0, "count": 0}},
)


def test_rate_counts_the_vesicles_secreted_during_the_run(tmp_path):
    """A run that starts with no vesicle reported 0 vesicle-steps: the work
    done counts each vesicle from the step after its birth on, exactly."""
    sim = Simulation(scenario(**SECRETION_ONLY), backend="numba")
    birth = sim.model.arrays["birth_step"].copy()
    n_steps = sim.model.n_steps
    seen = []
    summary = sim.run(tmp_path / "s.h5", progress=seen.append)
    assert birth.size > 100 and np.all((birth >= 0) & (birth < n_steps))
    assert summary["vesicle_steps"] == int((n_steps - 1 - birth).sum())
    assert summary["rate"] > 0
    steps = [p.vesicle_steps for p in seen]
    assert steps[0] > 0 and steps == sorted(steps) and steps[-1] == summary["vesicle_steps"]


def test_short_run_prints_a_positive_rate(tmp_path, capsys):
    """The CLI's closing line, for the same run."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(scenario(**SECRETION_ONLY).to_toml())
    assert main(["run", str(cfg), "-o", str(tmp_path / "c.h5"), "--backend", "numba", "-q"]) == 0
    said = capsys.readouterr().out
    rate = float(said.split(" vesicle-steps/s")[0].split()[-1])
    assert rate > 0, said


@pytest.mark.parametrize("command", [["info", "{run}"], ["check", "{cfg}"]], ids=["info", "check"])
def test_a_closed_pipe_ends_output_quietly(tmp_path, command):
    """`exodiff info run.h5 | head -1`: the reader closes the pipe before
    exodiff writes (here: before it even starts), which must end the output
    quietly with exit 0, not with a BrokenPipeError."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    run = tmp_path / "c.h5"
    assert main(["run", str(cfg), "-o", str(run), "--backend", "numpy", "-q"]) == 0
    args = [a.format(run=run, cfg=cfg) for a in command]
    child = subprocess.Popen([sys.executable, "-m", "exodiff", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    child.stdout.close()  # the reader has gone: every write to stdout fails with EPIPE
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0 and err == "", err


def test_a_run_goes_on_when_its_output_has_no_reader(tmp_path):
    """`exodiff run … 2>&1 | head -1`: the run's messages may have no reader
    (here stdout and stderr are closed before it starts); it must still
    write the whole run file and exit 0, not stop at its first message."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    out = tmp_path / "c.h5"
    child = subprocess.Popen([sys.executable, "-m", "exodiff", "run", str(cfg), "-o", str(out),
                              "--backend", "numpy"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    child.stdout.close()
    child.stderr.close()
    assert child.wait(timeout=300) == 0
    from exodiff.io import open_run
    with open_run(out) as run:
        assert run.n_steps and run.complete


def test_head_reads_the_first_line_of_info(tmp_path):
    """The pipeline as a user types it; exit status of exodiff through pipefail."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    run = tmp_path / "c.h5"
    assert main(["run", str(cfg), "-o", str(run), "--backend", "numpy", "-q"]) == 0
    done = subprocess.run(["bash", "-o", "pipefail", "-c",
                           f"'{sys.executable}' -m exodiff info '{run}' | head -1"],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
    assert done.returncode == 0 and done.stdout == f"{run}\n" and done.stderr == "", done


# ------------------------------------------------------------------ threads

def _child(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in _env(**env).items() if v is not None}, timeout=300)


def test_numba_threads_wait_passively_unless_the_user_chose(tmp_path):
    """OpenMP threads that spin at the end of each parallel loop made a run
    on a busy machine slower on two threads than on one (exodiff/threads.py):
    the numba backend asks for passive waiting before Numba starts its
    threads, and keeps a policy the user set."""
    code = ("import os; from exodiff.backends import CpuBackend; b = CpuBackend('numba'); "
            "print(os.environ['OMP_WAIT_POLICY'], b.device)")
    env = dict(_env(NUMBA_NUM_THREADS="2"))
    env.pop("OMP_WAIT_POLICY", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.stdout.split() == ["PASSIVE", "cpu", "(2", "threads)"], done.stderr
    done = _child(code, NUMBA_NUM_THREADS="2", OMP_WAIT_POLICY="ACTIVE")
    assert done.stdout.split()[0] == "ACTIVE", done.stderr


@pytest.mark.parametrize("how", ["--threads", "NUMBA_NUM_THREADS"])
def test_threads_option_and_environment_set_the_thread_count(tmp_path, how):
    """`exodiff run --threads 1` and NUMBA_NUM_THREADS=1 both run on one
    thread (the file names the device) and give the same file as two."""
    import h5py
    from test_resume import assert_same_file
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    args = [sys.executable, "-m", "exodiff", "run", str(cfg), "--backend", "numba", "-q", "-o"]
    one = subprocess.run(args + [str(tmp_path / "one.h5")] + (["--threads", "1"] if how == "--threads" else []),
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=_env(NUMBA_NUM_THREADS="2" if how == "--threads" else "1"))
    two = subprocess.run(args + [str(tmp_path / "two.h5")], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, env=_env(NUMBA_NUM_THREADS="2"))
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        assert a["parameters"].attrs["device"] == "cpu (1 threads)"
        assert b["parameters"].attrs["device"] == "cpu (2 threads)"
        for name in ("particles/vesicles/position/value", "particles/vesicles/state/value"):
            assert np.array_equal(a[name][()], b[name][()])


@pytest.mark.parametrize("command", ["run", "validate", "bench", "sweep"])
@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_thread_count_exits_2_with_one_line(tmp_path, capsys, command, value):
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    argv = {"run": ["run", str(cfg), "-o", str(tmp_path / "c.h5")], "validate": ["validate", "--quick"],
            "bench": ["bench", "--quick"], "sweep": ["sweep", str(cfg), "-o", str(tmp_path / "sw")]}[command]
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--threads", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "--threads" in err[0], err
    assert not list(tmp_path.glob("*.h5")) and not (tmp_path / "sw").exists()


def test_bad_numba_num_threads_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_TOML)
    done = subprocess.run([sys.executable, "-m", "exodiff", "run", str(cfg), "-o", str(tmp_path / "c.h5"),
                           "--backend", "numba", "-q"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=_env(NUMBA_NUM_THREADS="0"))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and err[0].startswith("Error: NUMBA_NUM_THREADS=0"), err
    assert not list(tmp_path.glob("*.h5*"))


def test_sweep_workers_take_the_thread_count_asked_for(monkeypatch):
    """By default a sweep splits the cores among its workers; NUMBA_NUM_THREADS
    (what --threads sets) gives each worker that many instead."""
    from exodiff import sweep
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(sweep, "_cores", lambda: 4)
    assert sweep._local_cluster_spec(8, 2, "numba")["threads"] == 2
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    spec = sweep._local_cluster_spec(8, 2, "numba")
    assert spec["threads"] == 1 and all(e["NUMBA_NUM_THREADS"] == "1" for e in spec["envs"])
