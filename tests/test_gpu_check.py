"""bench/gpu_check.sh as far as a machine without a GPU can run it: its plan,
its fast refusals (no CuPy, no GPU), and its table with a CPU stand-in for
the GPU (issue 16)."""
import re
import subprocess
import sys
from pathlib import Path

import fake_cupy
from exodiff.backends import CpuBackend, cuda_unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402

NO_DRIVER_CUPY = '''
import types
__version__ = "0 (stand-in)"
runtime = types.SimpleNamespace(driverGetVersion=lambda: 0, runtimeGetVersion=lambda: 13000)
cuda = types.SimpleNamespace(runtime=runtime)
'''


def _script(tmp_path, cupy_source, *args):
    """Run bench/gpu_check.sh with `import cupy` giving cupy_source."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "cupy.py").write_text(cupy_source)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": f"{stub}:{ROOT}"}
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_dry_run_prints_the_plan_and_needs_no_cupy(tmp_path):
    done = _script(tmp_path, "raise ImportError('no CuPy here')", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1. agreement: pytest tests/test_cuda.py")
    assert lines[1].startswith("2. exodiff validate --quick --backend cuda")
    assert lines[2].startswith("3. rates, 1e+07 vesicles among 1000 cells: cuda double")
    budgets = sum(gpu_check.BUDGET_S.values())
    assert budgets < gpu_check.TOTAL_S < 480


def test_without_cupy_it_stops_at_once_and_installs_nothing(tmp_path):
    done = _script(tmp_path, "raise ImportError('no CuPy here')")
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot import CuPy, and this check installs nothing" in done.stderr


def test_without_a_gpu_it_says_why_and_exits_2(tmp_path):
    done = _script(tmp_path, NO_DRIVER_CUPY)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == ("gpu_check: no usable GPU: no NVIDIA driver found "
                                            "(libcuda is not installed or not loadable)")
    assert "CUDA driver:   none found" in done.stdout


class _StandIn:
    """The cuda backend's three calls, run by Numba: enough for the rate loop."""
    name = "cuda"

    def __init__(self):
        self._cpu = CpuBackend("numba")

    def prepare(self, model):
        self._cpu.prepare(model)

    def advance(self, n0, n1):
        self._cpu.advance(n0, n1)

    def fetch(self, model):
        pass


def test_the_table_with_a_stand_in_gpu(monkeypatch, capsys):
    from exodiff import backend_cuda, backends
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy.module(lib=None))
    monkeypatch.setattr(backends, "cuda_unavailable_reason", lambda: None)
    monkeypatch.setattr(backend_cuda, "CudaBackend", _StandIn)
    monkeypatch.setattr(gpu_check, "gpu_description", lambda: "stand-in")
    rc = gpu_check.main(["--skip-tests", "--vesicles", "3000", "--cells", "20", "--seconds", "0.05",
                         "--numba-vesicles", "2000"])
    out = capsys.readouterr().out
    table = out[out.index("== exodiff GPU check on stand-in"):].splitlines()[3:]
    rows = {check: rest for check, *rest in (re.split(r"\s{2,}", line, maxsplit=2) for line in table)}
    assert rc == 0, out
    assert rows["cuda double, 3e+03 vesicles, 20 cells"][0] == "ok"
    mixed = rows["cuda mixed, 3e+03 vesicles, 20 cells"]
    assert mixed[0] == ("ok" if gpu_check.precisions() != (None,) else "skipped"), mixed
    for check in ("cuda double, no cell lookup", "cuda double, capacity-limited", "numba, 2e+03 vesicles",
                  "wall time"):
        assert rows[check][0] == "ok", (check, out)
    assert re.fullmatch(r"\S+ vesicle-steps/s, ×\d+ numba \(below 2e\+10\)", rows["cuda double, 3e+03 vesicles, 20 cells"][1])


def test_agreement_rows_come_from_pytests_report(monkeypatch):
    """Here the GPU tests skip: one row per test of test_cuda.py, marked skipped."""
    monkeypatch.setattr(gpu_check, "TEST_FILES", ("tests/test_cuda.py",))
    rows = gpu_check.run_tests(timeout=300)
    names = [r[0] for r in rows]
    assert "agreement: matches_numba_step_by_step[independent]" in names
    assert "agreement: and_numba_agree_statistically" in names
    if cuda_unavailable_reason() is not None:
        assert all(status == "skipped" and "no GPU" in detail for _, status, detail in rows), rows
