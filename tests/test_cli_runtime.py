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
