"""Fixed stepping of this tree against another exodiff tree (main), S1–S3.

    python bench/ab_fixed.py OTHER_PYTHON [--repeats R] [--steps S]

OTHER_PYTHON is the interpreter of the other tree (e.g. a venv made from
`git archive main`, installed with `pip install --no-deps -e .`).  Each
repeat runs one process per tree and scenario, alternating which tree goes
first; each process builds S1, S2 or S3 (exodiff.bench.scenario_config,
fixed stepping: a tree without run.stepping has only that), loads the JIT
cache with one step and times `steps` steps three times (median).  Prints the
medians over repeats and the ratio this / other per scenario.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import inspect, json, sys
from exodiff import bench
sc = bench.SCENARIOS[sys.argv[1]]
kw = {"stepping": "fixed"} if "stepping" in inspect.signature(bench.scenario_config).parameters else {}
cfg = bench.scenario_config(bench.N_STANDARD, sc["cells"], sc["kappa"], steps=10_000, **kw)
m = bench.measure(cfg, "numba", steps=int(sys.argv[2]), repeats=3)
print(json.dumps({"rate": m.rate, "tree": bench.__file__}))
"""


def rate(python, scenario, steps):
    # run outside any tree: "-c" would put the working folder first on sys.path
    out = subprocess.run([python, "-c", CHILD, scenario, str(steps)], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode != 0:
        sys.exit(f"{python} on {scenario} failed:\n{out.stderr}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {res['tree']}", file=sys.stderr)
    return res["rate"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("other", help="python of the other tree")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args(argv)
    trees = {"this": sys.executable, "other": a.other}
    rates = {}
    for r in range(a.repeats):
        for scenario in ("S1", "S2", "S3"):
            order = ["this", "other"] if r % 2 == 0 else ["other", "this"]
            for tree in order:
                x = rate(trees[tree], scenario, a.steps)
                rates.setdefault((scenario, tree), []).append(x)
                print(f"[{r + 1}/{a.repeats}] {scenario} {tree}: {x:.3g} vesicle-steps/s", file=sys.stderr, flush=True)
    print("| scenario | this (median) | other (median) | this / other | per repeat |")
    print("|---|---|---|---|---|")
    for scenario in ("S1", "S2", "S3"):
        t, o = rates[(scenario, "this")], rates[(scenario, "other")]
        per = ", ".join(f"{x / y:.2f}" for x, y in zip(t, o))
        print(f"| {scenario} | {statistics.median(t):.3g} | {statistics.median(o):.3g} | "
              f"{statistics.median(t) / statistics.median(o):.3f} | {per} |")


if __name__ == "__main__":
    main()
