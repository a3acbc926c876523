"""exodiff against its peers, side by side in one run.

    python bench/peers/run_all.py [--quick] [--repeats R] [--tools exodiff,smoldyn,readdy]
                                  [--scenarios S1,S2,S3,ACC] [--stepping adaptive|fixed] [--no-write]
                                  [--block NAME]

Runs each tool's script (run_<tool>.py, one subprocess per run, each tool in
its own Python: see bench/README.md) on the scenarios of scenarios.py,
interleaved — every repeat runs all tools on a scenario back to back, in a
rotating order — so load from other processes falls on all of them alike.
Reports medians over the repeats of

- vesicle-steps/s on the wall clock (N₀ × steps / wall time of the stepping,
  set-up and JIT excluded) and the ratios exodiff / peer, the number the
  issue asks for;
- vesicle-steps per CPU-second of the process (all its threads): on a shared
  machine this moves less with other people's load than the wall clock does;
- accuracy on the absorbing-sphere case (ACC): absorbed fraction against the
  exact (R/r0)·erfc((r0 − R)/√(4Dt)), with the binomial standard error.

and writes the tables into bench/README.md between the markers of a block
(``<!-- NAME:begin -->`` … ``<!-- NAME:end -->``; NAME "peers" by default, the
full comparison; "peers-s2-smoldyn" holds the S2 run against Smoldyn).
Interpreters: $EXODIFF_PEER_<TOOL> (e.g. EXODIFF_PEER_SMOLDYN=/path/python),
else /tmp/exodiff-peers/<tool>/bin/python (setup_peers.sh makes them); exodiff
runs in this interpreter.
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenarios  # noqa: E402

TOOLS = ("exodiff", "smoldyn", "readdy")
README = os.path.join(os.path.dirname(HERE), "README.md")
BLOCK = "peers"
PEER_HOME = os.environ.get("EXODIFF_PEER_HOME", "/tmp/exodiff-peers")


def interpreter(tool):
    if tool == "exodiff":
        return sys.executable
    env = os.environ.get(f"EXODIFF_PEER_{tool.upper()}")
    if env:
        return env
    for cand in (os.path.join(PEER_HOME, tool, "bin", "python"), f"/tmp/venv_{tool}/bin/python"):
        if os.path.exists(cand):
            return cand
    return None


def probe(tool):
    """(python, version) or (None, reason)."""
    py = interpreter(tool)
    if py is None:
        return None, f"no interpreter (run bench/peers/setup_peers.sh or set EXODIFF_PEER_{tool.upper()})"
    r = subprocess.run([py, "-c", f"import {tool}; print({tool}.__version__)"], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"import {tool} failed with {py}: {last}"
    return py, r.stdout.strip()


def run_one(py, tool, scen, n, steps, timeout, extra=()):
    cmd = [py, os.path.join(HERE, f"run_{tool}.py"), scen] + (["--n", str(n)] if n else []) \
        + (["--steps", str(steps)] if steps else []) + list(extra)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {r.returncode}: {last}"}
    return json.loads(lines[-1])


def fmt_rate(x):
    if x is None or not math.isfinite(x):
        return "—"
    e = int(math.floor(math.log10(x)))
    return f"{x / 10 ** e:.2f}×10^{e}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load():
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 steps for S1–S3, 10⁴ vesicles in ACC, 1 repeat")
    p.add_argument("--repeats", type=int, help="runs per tool and scenario (default 3, quick 1)")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--scenarios", default="S1,S2,S3,ACC")
    p.add_argument("--steps", type=int, help="steps for S1–S3 (default 1000)")
    p.add_argument("--n", type=int, help="vesicles for S1–S3 (default 10⁵)")
    p.add_argument("--timeout", type=float, default=3600.0, help="per run [s]")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/README.md alone")
    p.add_argument("--block", default=BLOCK,
                   help=f"the marked block of bench/README.md to write (default {BLOCK}; see the docstring)")
    p.add_argument("--stepping", default="adaptive", choices=("adaptive", "fixed"),
                   help="exodiff's run.stepping (default: adaptive, its default)")
    a = p.parse_args(argv)
    repeats = a.repeats or (1 if a.quick else 3)
    steps = a.steps or (100 if a.quick else None)
    tools = [t for t in a.tools.split(",") if t]
    scens = [s for s in a.scenarios.split(",") if s]

    avail, notes = {}, {}
    for t in tools:
        py, info = probe(t)
        if py is None:
            notes[t] = info
            print(f"{t}: not run — {info}", file=sys.stderr)
        else:
            avail[t] = py
            notes[t] = info
            print(f"{t} {info}: {py}", file=sys.stderr)

    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load0 = load()
    results = {}   # (tool, scen) -> list of dicts
    errors = {}
    t_start = time.perf_counter()
    for rep in range(repeats):
        for scen in scens:
            acc = scen == "ACC"
            n = (10_000 if a.quick else None) if acc else a.n
            st = None if acc else steps
            order = [t for t in tools if t in avail]
            k = rep % max(1, len(order))
            for t in order[k:] + order[:k]:
                r = run_one(avail[t], t, scen, n, st, a.timeout,
                            ["--stepping", a.stepping] if t == "exodiff" else ())
                if "error" in r:
                    errors[(t, scen)] = r["error"]
                    print(f"  {scen} {t}: {r['error']}", file=sys.stderr)
                    continue
                results.setdefault((t, scen), []).append(r)
                print(f"  [{rep + 1}/{repeats}] {scen} {t:8s} {r['n'] * r['steps'] / r['wall_s']:.3g} vesicle-steps/s "
                      f"(wall {r['wall_s']:.1f} s, cpu {r['cpu_s']:.1f} s), absorbed {r['absorbed_fraction']:.4f}",
                      file=sys.stderr)
    elapsed = time.perf_counter() - t_start
    cmd = "python bench/peers/run_all.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv if argv is not None else sys.argv[1:]))
    md = report(results, errors, notes, tools, scens, repeats, started, load0, load(), elapsed, cmd)
    print(md)
    if not a.no_write:
        write_readme(md, a.block)
        print(f"(tables written to {os.path.relpath(README)}, block {a.block})", file=sys.stderr)


def med(results, t, s, key):
    rs = results.get((t, s))
    if not rs:
        return None
    if key == "wall":
        return statistics.median(r["n"] * r["steps"] / r["wall_s"] for r in rs)
    if key == "cpu":
        return statistics.median(r["n"] * r["steps"] / r["cpu_s"] for r in rs)
    return statistics.median(r[key] for r in rs)


def report(results, errors, notes, tools, scens, repeats, started, load0, load1, elapsed, cmd):
    L = []
    L.append(f"Measured {started} on {cpu_model()}, {os.cpu_count()} cores (shared: load average "
             f"{load0} at the start, {load1} at the end), {repeats} repeat(s), medians; "
             f"{elapsed / 60:.0f} min in all.  Command: `{cmd}`.")
    L.append("")
    ver = {t: notes.get(t, "") for t in tools}
    for t in tools:
        first = next((rs[0] for (tt, _), rs in results.items() if tt == t), None)
        if first:
            L.append(f"- {t} {first['version']}: {first['threads']} thread(s)"
                     + (f", {first['options']}" if first.get('options') else ""))
        else:
            L.append(f"- {t}: not run — {ver[t]}")
    L.append("")
    peers = [t for t in tools if t != "exodiff"]
    rate_scens = [s for s in scens if s != "ACC"]
    for key, title in (("wall", "Vesicle-steps per second (wall clock)"),
                       ("cpu", "Vesicle-steps per CPU-second (all threads of the process)")):
        if not rate_scens:
            break
        L.append(f"**{title}**")
        L.append("")
        head = ["scenario", "vesicles × steps"] + tools + [f"exodiff / {t}" for t in peers if "exodiff" in tools]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        for s in rate_scens:
            anyr = next((rs[0] for (tt, ss), rs in results.items() if ss == s), None)
            size = f"{anyr['n']:.0e} × {anyr['steps']}".replace("e+0", "e") if anyr else "—"
            row = [s, size]
            for t in tools:
                v = med(results, t, s, key)
                row.append(fmt_rate(v) if v else ("error" if (t, s) in errors else "—"))
            ex = med(results, "exodiff", s, key)
            for t in peers:
                if "exodiff" not in tools:
                    break
                v = med(results, t, s, key)
                row.append(f"{ex / v:.2f}" if ex and v else "—")
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    if rate_scens:  # the same start positions in every tool: the fractions should agree
        L.append("Absorbed fraction at the end (median): " + "; ".join(
            f"{s} " + ", ".join(f"{t} {med(results, t, s, 'absorbed_fraction'):.4f}" for t in tools
                                if results.get((t, s)))
            for s in rate_scens) + ".")
        L.append("")
    if "ACC" in scens:
        t_acc = scenarios.ACC_STEPS * scenarios.DT
        exact = scenarios.exact_absorbed(t_acc)
        L.append(f"**Accuracy: absorbing sphere** (R = {scenarios.ACC_R:g} µm, r0 = {scenarios.ACC_R0:g} µm, "
                 f"D = {scenarios.D:g} µm²/s, dt = {scenarios.DT * 1e3:g} ms, t = {t_acc:g} s; exact absorbed "
                 f"fraction {exact:.4f})")
        L.append("")
        L.append("| tool | vesicles | absorbed | error | error / SE |")
        L.append("|---|---|---|---|---|")
        for t in tools:
            rs = results.get((t, "ACC"))
            if not rs:
                L.append(f"| {t} | — | — | — | — |")
                continue
            n = rs[0]["n"]
            f = med(results, t, "ACC", "absorbed_fraction")
            se = math.sqrt(exact * (1 - exact) / n)
            L.append(f"| {t} | {n} | {f:.4f} | {100 * (f - exact) / exact:+.2f} % | {(f - exact) / se:+.1f} |")
        L.append("")
    if errors:
        L.append("Errors: " + "; ".join(f"{t} {s}: {e}" for (t, s), e in errors.items()))
        L.append("")
    return "\n".join(L)


def write_readme(md, name=BLOCK):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(README).read() if os.path.exists(README) else ""
    block = f"{begin}\n{md}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n## Peer comparison\n\n" + block + "\n"
    with open(README, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
