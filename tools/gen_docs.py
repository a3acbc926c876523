"""Write the numbers and tables that the code produces into the documents.

Blocks between

    <!-- BEGIN generated:NAME (python tools/gen_docs.py) -->
    <!-- END generated:NAME -->

in README.md and docs/*.md are replaced by the output of GENERATORS[NAME],
so the documents say what the code does today.  tests/test_docs.py fails
when a block differs from what this script would write.

    python tools/gen_docs.py            # rewrite the fast blocks
    python tools/gen_docs.py --slow     # also those that run simulations
                                        # (validate --quick ~1 min; the co-culture
                                        # tutorial reads RUN, default coculture.h5)
    python tools/gen_docs.py --check    # exit 1 and name the blocks that differ

Machine-dependent timings are not generated: they are written by hand with
their date and machine.
"""
import argparse
import io
import math
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- BEGIN generated:(?P<name>[\w-]+) \(python tools/gen_docs\.py\) -->\n)"
                   r"(?P<body>.*?)"
                   r"(<!-- END generated:(?P=name) -->)", re.S)


# ------------------------------------------------------------------ fast blocks


def config_reference():
    """Every key of every section from exodiff.config_schema, then what
    config.py and derived.py refuse and warn about, with their own constants."""
    from exodiff import config, derived
    from exodiff.config_schema import QUANTITY_UNITS, SCHEDULED, SCHEMA
    out = []
    for section, keys in SCHEMA.items():
        out += [f"### `[{section}]`", "", "| key | value | default | meaning |", "|---|---|---|---|"]
        for k in keys:
            kind = f"{k.kind} [{QUANTITY_UNITS[k.kind]}]" if k.kind in QUANTITY_UNITS else k.kind
            if k.name in SCHEDULED.get(section, ()):
                kind += ", or a [schedule](#rates-that-change-in-time)"
            default = f"`{k.default}`" if k.default[:1] in "\"[{0123456789" else k.default
            out.append(f"| `{k.name}` | {kind} | {default} | {k.meaning} |")
        if section == "cells":
            out += ["", "Keys by layout (others are refused, since they would be ignored):", ""]
            for layout, used in config.LAYOUT_KEYS.items():
                names = ", ".join(f"`{n}`" for n in config.CELLS_KEYS if n in used)
                out.append(f"- `{layout}`: `layout`, {names}")
        out.append("")
    out += schedules_reference()
    low_v, high_v = derived.PLAUSIBLE["vesicle radius"]
    low_c, high_c = derived.PLAUSIBLE["cell radius"]
    low_d, high_d = derived.PLAUSIBLE["diffusion"]
    low_t, high_t = derived.PLAUSIBLE["temperature"]
    low_e, high_e = derived.PLAUSIBLE["viscosity"]
    out += [
        "### What is refused",
        "",
        "One `Error:` line naming the key and the reason, exit code 2, nothing written:",
        "",
        "- unknown keys (with a did-you-mean), and keys of another section "
        "(`vesicles.exo.kappa: unknown key here; kappa belongs in [cell_types.NAME] or [domain]`);",
        "- values of the wrong kind or unit, negative or non-finite where that means nothing;",
        f"- cell-type fractions that do not sum to 1 (within {config.FRACTION_TOLERANCE:g});",
        "- a vesicle population whose median radius is not smaller than the smallest cell "
        "(a bare `radius = 50` is 50 µm);",
        "- a domain smaller than a cell; overlapping cells or cells outside the domain;",
        "- a schedule entry that is not `[time, value]`, a first time other than 0, times that do not "
        "increase, a value the key would refuse (named as `KEY.schedule[k][0]` for the time of entry k, "
        "`[k][1]` for its value).",
        "",
        "### What is warned about",
        "",
        "Each warning names its key; `[check] quiet = [\"KEY\", …]` silences it:",
        "",
        f"- the step length √(2D·dt) above {derived.STEP_WARN_RATIO:.0%} of the smallest cell radius "
        "(`vesicles.NAME`, with a suggested dt);",
        f"- a vesicle radius outside {low_v * 1000:g} nm–{high_v:g} µm (`vesicles.NAME.radius`);",
        f"- a cell radius outside {low_c:g}–{high_c:g} µm (`cells.radius`);",
        f"- D outside {low_d:g}–{high_d:g} µm²/s, given or from Stokes–Einstein (`vesicles.NAME.diffusion`);",
        f"- fewer than {derived.MIN_STEPS_BETWEEN_OUTPUTS} steps between observations or snapshots "
        "(`run.observe_interval`, `run.snapshot_interval`);",
        f"- a temperature outside {low_t - 273.15:g}–{high_t - 273.15:g} °C (`medium.temperature`) and a "
        f"viscosity outside {low_e * 1e3:g}–{high_e * 1e3:g} mPa·s (`medium.viscosity`);",
        "- a population that stays empty (`vesicles.NAME`), and `kappa = \"inf\"` with `k_off > 0` "
        "(`cell_types.NAME`: a perfectly absorbing membrane rebinds every released vesicle), at any time "
        "of their schedules;",
        "- a schedule entry that never applies: after the end of the run, or followed by another in the "
        "same step (the key).",
    ]
    return "\n".join(out) + "\n"


def schedules_reference():
    """The section on schedules, from the code's own list of keys and rule."""
    from exodiff import derived
    from exodiff.config_schema import SCHEDULED
    keys = ", ".join(f"`{k}`" for k in SCHEDULED["cell_types.NAME"])
    return [
        "### Rates that change in time",
        "",
        f"Every rate of a cell type ({keys}) and a population's `half_life` take, instead of a value, "
        "a piecewise-constant schedule: a list of `[time, value]` entries, the first at time 0, times "
        "strictly increasing, each value written as the key's own (units, range, `\"inf\"` where the "
        "key takes it). A secretion inhibitor that cuts release by 70 % after 6 h:",
        "",
        "```toml",
        "[cell_types.donor]",
        "secretion_rate = { schedule = [[\"0 h\", \"2 /s\"], [\"6 h\", \"0.6 /s\"]] }",
        "```",
        "",
        "A schedule goes where a value goes: per population (`secretion_rate = { exosome = { schedule = "
        "[…] } }`) and as the median of a spread (`kappa = { median = { schedule = […] }, gsd = 1.5 }`: "
        "each cell keeps its own log-normal factor, times the median in force).",
        "",
        f"On the step grid {derived.SCHEDULE_RULE} (to within 1e-9·dt, so a time meant as a "
        "multiple of dt is one): from that step on every backend uses the new value, in the kernels' "
        "constants (binding uses the calibrated probability per contact for the κ in force; every "
        "first-order rate and the clearance take their new values) and in the births: "
        "secretion stays a Poisson process per donor cell with the rate in force on each piece "
        "between changes. A schedule of one entry is the constant, bit for bit. `exodiff check` prints "
        "each schedule with the step each value takes effect from, and the values it implies (rates, "
        "binding probabilities) as `2 → 0.6`. A run interrupted after a change resumes with the rates "
        "in force at its step.",
        "",
    ]


def _check_text(relpath):
    from exodiff.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["check", relpath]) == 0
    return buf.getvalue()


def check_quickstart():
    return "```\n$ exodiff check configs/quickstart.toml\n" + _check_text("configs/quickstart.toml") + "```\n"


def check_coculture():
    return "```\n$ exodiff check configs/coculture.toml\n" + _check_text("configs/coculture.toml") + "```\n"


def quickstart_size():
    """The sentence of the README on what the quickstart simulates."""
    from exodiff.config import load_config
    from exodiff.derived import derived_parameters
    cfg = load_config(ROOT / "configs" / "quickstart.toml")
    d = derived_parameters(cfg)
    types = ", ".join(f"{n} {name}s" for name, n in d.cells_per_type.items())
    vesicles = round(d.total_vesicles, -3)
    return (f"The first runs {d.n_cells} cells ({types}) and ~{vesicles:,.0f} vesicles for "
            f"{cfg.run.duration:g} s of simulated time on the CPU\n")


# ------------------------------------------------------------------ slow blocks


def validate_quick(run_case=None):
    """The table of `exodiff validate --quick`, both steppings (seeded: the
    same on every machine, backend and thread count).  run_case(name,
    stepping) -> CaseResult runs one case on numba in quick mode (tests pass
    the results they have already computed)."""
    from exodiff import validate
    if run_case is None:
        def run_case(name, stepping):
            return validate.run_case(validate.CASES[name], backend="numba", quick=True, stepping=stepping)
    results = [run_case(name, stepping) for stepping in validate.STEPPINGS for name in validate.CASES]
    checks = [c for r in results for c in r.checks]
    passed = sum(c.passed for c in checks)
    table = "\n".join(line.rstrip() for line in validate.format_table(results).splitlines())
    return ("```\n" + table + "\n"
            + f"{passed}/{len(checks)} checks within {validate.Z_PASS:g} standard errors\n```\n")


def coculture_info(run_path):
    from exodiff.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["info", str(run_path)]) == 0
    text = buf.getvalue().replace(str(run_path), "coculture.h5")
    return "```\n$ exodiff info coculture.h5\n" + text + "```\n"


def coculture_results(run_path):
    """Who takes up what, and when: uptake per type, first passage, range, dose."""
    from exodiff.analysis import open_run  # the run with its analyses as methods
    with open_run(run_path) as run:
        u = run.uptake_curves()
        t_end = u.times[-1]
        lines = [f"| cell type | cells | bound at {t_end / 60:g} min | internalized | per cell | "
                 "share of released vesicles | most bound at |", "|---|---:|---:|---:|---:|---:|---:|"]
        for k, name in enumerate(u.type_names):
            donor = " (donor)" if name in run.donor_types else ""
            per_cell = u.taken_up[-1, k] / u.n_cells[k]
            peak = u.times[int(np.argmax(u.bound[:, k]))]
            lines.append(f"| {name}{donor} | {u.n_cells[k]:,} | {u.bound[-1, k]:,} | {u.internalized[-1, k]:,} | "
                         f"{per_cell:.3g} | {100 * u.fraction_taken_up[-1, k]:.3g} % | {peak / 60:.3g} min |")
        lines.append("")
        for event, what in (("bound", "first binding"), ("internalized", "internalization")):
            f = run.first_passage(event=event)
            median = f"{f.median:.3g} s" if math.isfinite(f.median) else "not reached"
            lines.append(f"- time from release to {what}: median {median} "
                         f"({f.n_events:,} of {f.n_subjects:,} released vesicles);")
        r = run.uptake_range()  # the bins of `exodiff plot --kind range`
        lines.append(f"- signal range: uptake per target cell falls e-fold every λ = {r.decay_length:.3g} µm "
                     "from the nearest donor;")
        d = run.dose().summary
        for _, row in d[d["quantity"] != "vesicles"].iterrows():
            lines.append(f"- {row['quantity']} delivered to {row['type']} cells: mean {row['mean']:.3g} "
                         f"molecules per cell, reaching {100 * row['reached']:.0f} % of them "
                         f"(Gini {row['gini']:.2f}).")
        return "\n".join(lines) + "\n"


FAST = {"config-reference": config_reference, "check-quickstart": check_quickstart,
        "check-coculture": check_coculture, "quickstart-size": quickstart_size}
SLOW = {"validate-quick": validate_quick}
FROM_RUN = {"coculture-info": coculture_info, "coculture-results": coculture_results}


def blocks(path):
    """Names of the generated blocks in a document."""
    return [m.group("name") for m in BLOCK.finditer(path.read_text())]


def render(names, run_path=None):
    """{name: text} for the given block names."""
    out = {}
    for name in names:
        if name in FAST:
            out[name] = FAST[name]()
        elif name in SLOW:
            out[name] = SLOW[name]()
        elif name in FROM_RUN:
            out[name] = FROM_RUN[name](run_path)
        else:
            raise SystemExit(f"unknown generated block {name!r}")
    return out


def substitute(text, texts):
    """The document with the bodies of the named blocks replaced."""
    def body(m):
        name = m.group("name")
        return m.group(1) + texts[name] + m.group(4) if name in texts else m.group(0)
    return BLOCK.sub(body, text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slow", action="store_true", help="also the blocks that run simulations")
    p.add_argument("--run", default="coculture.h5", help="the co-culture run for the tutorial blocks")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = p.parse_args(argv)
    import os
    os.chdir(ROOT)  # the commands are documented as run from the repository root
    wanted = set(FAST) | (set(SLOW) | set(FROM_RUN) if args.slow else set())
    names = sorted({n for doc in DOCUMENTS for n in blocks(doc)} & wanted)
    if set(names) & set(FROM_RUN) and not Path(args.run).exists():
        raise SystemExit(f"{args.run}: no such file; make it with "
                         f"exodiff run configs/coculture.toml -o {args.run} (about 10 s), or pass --run")
    texts = render(names, args.run)
    stale = []
    for doc in DOCUMENTS:
        old = doc.read_text()
        new = substitute(old, texts)
        if new != old:
            stale.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(new)
    verb = "differ" if args.check else "rewritten"
    print(f"{', '.join(map(str, stale))}: {verb}" if stale else "all generated blocks up to date")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
