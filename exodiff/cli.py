"""Command line: ``exodiff run|check|info|plot|report|export|compare|transfer`` (also
``python -m exodiff``).

Exit codes (DESIGN §4): 0 success; 2 bad input, one ``Error: …`` line naming
the key or file, nothing written; 1 failure while running; 130 interrupted.
Only this module prints.
"""
import argparse
import os
import sys

from .errors import InputError
from .version import __version__


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one ``Error: …`` line and exit 2, like every other bad input."""

    def error(self, message):
        print(f"Error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _threads_arg(value):
    """--threads N: a whole number of threads, 1 or more."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of threads, 1 or more")
    return n


def _add_threads(parser):
    parser.add_argument("--threads", type=_threads_arg, metavar="N",
                        help="CPU threads of the numba backend (default: NUMBA_NUM_THREADS, else one "
                             "per core; results do not depend on it)")


def _parser():
    p = _Parser(prog="exodiff", description=(
        "Exosome diffusion, binding and uptake among cells, on CPU or GPU."))
    p.add_argument("--version", action="version", version=f"exodiff {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a scenario and write an H5MD file")
    r.add_argument("config", help="scenario file (TOML)")
    r.add_argument("-o", "--output", help="output file (default: CONFIG's name with .h5, here)")
    r.add_argument("--backend", default="auto", help="auto (default), cuda, numba or numpy")
    r.add_argument("--seed", type=int, help="random seed (overrides run.seed)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set cells.count=500 (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the output file (same config, --seed and "
                        "--set options); its final file is identical to an uninterrupted run's")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_threads(r)

    c = sub.add_parser("check", help="validate a scenario and print derived parameters")
    c.add_argument("config")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    i = sub.add_parser("info", help="summarize a run file, or (--gpu) the CUDA setup")
    i.add_argument("run", nargs="?", help="an exodiff H5MD file")
    i.add_argument("--gpu", action="store_true",
                   help="print the CuPy, CUDA runtime and driver, NVRTC, headers and device found, "
                        "and whether the cuda backend can run")
    _add_analysis_parsers(sub)
    _add_sweep_parser(sub)
    _add_bench_parser(sub)
    _add_validate_parser(sub)
    return p


def main(argv=None):
    parser = _parser()
    # argparse exits with 2 on bad arguments, as DESIGN §4 asks
    args = parser.parse_args(argv)
    streams = sys.stdout, sys.stderr
    if args.command in WORK_COMMANDS:
        _keep_working_without_readers()
    try:
        return _dispatch(args)
    finally:  # a caller of main() in Python gets its own streams back
        sys.stdout, sys.stderr = streams


def _dispatch(args):
    try:
        if hasattr(args, "threads"):  # the commands that run the kernels
            from .threads import requested, use_threads
            if args.threads is not None:
                use_threads(args.threads)
            requested()  # before Numba reads it: a bad NUMBA_NUM_THREADS is bad input
        code = {"run": _run, "check": _check, "info": _info, **_ANALYSIS_COMMANDS,
                "sweep": _sweep, "bench": _bench,
                "validate": _validate}[args.command](args)
        sys.stdout.flush()  # a reader that has gone shows here, not at exit
        return code
    except BrokenPipeError:  # `exodiff info run.h5 | head -1`: the reader has what it wanted
        _drop_output()
        return 0
    except InputError as exc:
        if args.debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure while running: say what, keep the traceback behind --debug
        if args.debug:
            raise
        print(f"Error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


# Commands whose job is their result (a run file, a sweep, a verdict), not
# their text: a reader that goes away must not stop them.
WORK_COMMANDS = ("run", "sweep", "validate", "bench")


class _OutputWithoutReader:
    """A standard stream whose reader may go away (`exodiff run … 2>&1 | head`):
    from its first failing write on, this stream goes to /dev/null and the
    job goes on (a run still writes its file and exits with its own status);
    the other stream keeps its reader."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
            pass
        finally:
            os.close(devnull)

    def __getattr__(self, name):  # isatty, fileno, encoding… of the real stream
        return getattr(self._stream, name)


def _keep_working_without_readers():
    if sys.stdout is not None and not isinstance(sys.stdout, _OutputWithoutReader):
        sys.stdout = _OutputWithoutReader(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, _OutputWithoutReader):
        sys.stderr = _OutputWithoutReader(sys.stderr)


def _drop_output():
    """Send what is still to be written to stdout and stderr to /dev/null:
    their reader has gone, and Python would otherwise report the broken
    pipe again when it flushes them at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
                pass
    finally:
        os.close(devnull)


def _load(args, warn=True):
    from .config import load_config
    overrides = list(args.set)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"run.seed={args.seed}")
    cfg = load_config(args.config, overrides)
    for w in cfg.warnings if warn else ():
        print(f"Warning: {w}", file=sys.stderr)
    return cfg


def _run(args):
    from .driver import Simulation, check_output_path
    from .errors import RunInterrupted
    if args.resume and args.overwrite:
        raise InputError("--resume and --overwrite: choose one (continue the run, or start it over)")
    cfg = _load(args)
    out = args.output or os.path.splitext(os.path.basename(args.config))[0] + ".h5"
    backend = args.backend
    if args.resume:
        if not os.path.exists(out):
            raise InputError(f"{out}: no such file, nothing to resume; start the run without --resume")
        if backend == "auto":  # go on with the backend the run was started on
            from .io import open_run
            with open_run(out) as stored:
                backend = stored.backend or "auto"
    else:
        check_output_path(out, args.overwrite)
    sim = Simulation(cfg, backend=backend)
    if sim.backend_note:
        print(sim.backend_note, file=sys.stderr)
    m = sim.model
    plan = sim.plan_resume(out) if args.resume else False
    if plan and plan.complete:
        sim.run(out, resume=plan)  # tidies a leftover checkpoint
        print(f"{out} is already complete ({m.n_steps} steps); nothing to resume")
        return 0
    print(f"exodiff {__version__}: {m.n_vesicles} vesicles, {m.n_cells} cells, {m.n_steps} steps "
          f"of {cfg.run.dt:g} s on {sim.backend.name} [{sim.backend.device}] -> {out}", file=sys.stderr)
    if plan:
        for note in plan.notes:
            print(f"Note: {note}", file=sys.stderr)
        where = {"snapshot": "its last complete snapshot", "checkpoint": "its checkpoint",
                 "start": "the start (no saved state)"}[plan.source]
        print(f"resuming {out} at step {plan.step} of {m.n_steps} (t = {plan.step * cfg.run.dt:g} s), "
              f"from {where}", file=sys.stderr)
    start = plan.step * cfg.run.dt if plan else 0.0
    bar = None if args.quiet else _progress_bar(cfg.run.duration, start)
    try:
        summary = sim.run(out, progress=bar, overwrite=args.overwrite, resume=plan)
    except RunInterrupted as e:
        if bar is not None:
            bar.close()
            bar = None
        print(f"Interrupted at t = {e.time:g} s (step {e.step} of {e.n_steps}); the state is saved. "
              f"Continue with: {_resume_command(args, out)}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
        if bar is not None:
            bar.close()
            bar = None
        print(f"Interrupted; {out} keeps every frame finished so far. "
              f"Continue with: {_resume_command(args, out)}", file=sys.stderr)
        return 130
    except Exception as exc:  # e.g. a full disk: the file is still good to resume
        if args.debug or isinstance(exc, InputError) or not os.path.exists(out):
            raise
        print(f"Error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback); "
              f"{out} keeps every frame finished so far: continue with: {_resume_command(args, out)}",
              file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    resumed = f" (resumed at step {summary['resumed_from']})" if plan else ""
    print(f"wrote {out}{resumed}: {summary['wall_time']:.1f} s wall, "
          f"{summary['rate']:.3g} vesicle-steps/s ({summary['leaps']:,} leaps, "
          f"{summary['steps_taken']:,} steps taken); final: {counts}")
    return 0


def _resume_command(args, out):
    """The command line that continues this run."""
    import shlex
    cmd = ["exodiff", "run", args.config, "-o", out]
    if args.backend != "auto":
        cmd += ["--backend", args.backend]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    for item in args.set:
        cmd += ["--set", item]
    return shlex.join(cmd + ["--resume"])


class _progress_bar:
    """tqdm bar over simulated time with the vesicle-step rate."""

    def __init__(self, duration, start=0.0):
        from tqdm import tqdm
        self._bar = tqdm(total=duration, initial=start, unit="s sim", file=sys.stderr, dynamic_ncols=True,
                         bar_format="{l_bar}{bar}| {n:.4g}/{total:.4g} s sim "
                                    "[{elapsed}<{remaining}{postfix}]")

    def __call__(self, p):
        try:
            if p.elapsed > 0:  # before the update, which shows it
                self._bar.set_postfix_str(f"{p.vesicle_steps / p.elapsed:.3g} vesicle-steps/s",
                                          refresh=False)
            self._bar.update(p.time - self._bar.n)
        except OSError:  # stderr closed (a pipe whose reader has gone): the run goes on
            self._bar.disable = True

    def close(self):
        try:
            self._bar.close()
        except OSError:
            pass


def _check(args):
    from .derived import derived_parameters, format_check, format_leaps
    from .formats import format_bytes, format_count
    from .io.layout import FATE_BYTES_PER_VESICLE
    from .layouts import make_cells
    cfg = _load(args, warn=False)  # format_check lists the warnings
    # the cell layout is part of the input: build it so overlaps and
    # out-of-domain cells are reported here rather than at run time
    cells = make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), cfg.run.seed)
    print(format_check(cfg))
    print(f"cells: {cells.centers.shape[0]} placed")
    for line in format_leaps(cfg, cells):
        print(line)
    total = derived_parameters(cfg).total_vesicles
    print(f"run file: fate table {FATE_BYTES_PER_VESICLE} bytes per vesicle, "
          f"≈ {format_bytes(FATE_BYTES_PER_VESICLE * total)} for {format_count(total)} vesicles "
          f"(before compression)")
    return 0


def _info(args):
    if args.gpu:
        from .cuda_env import describe
        for what, found in describe():
            print(f"{what + ':':<14} {found}")
        return 0
    if args.run is None:
        raise InputError("info: give a run file (exodiff info RUN.h5) or --gpu")
    from .io import open_run
    with open_run(args.run) as run:
        print(run.summary_text())
    return 0


# ------------------------------------------------ plot, report, export, compare


def _add_analysis_parsers(sub):
    pl = sub.add_parser("plot", help="draw one figure of a run")
    pl.add_argument("run", help="an exodiff H5MD file")
    pl.add_argument("--kind", required=True,
                    help="uptake, dose, range, fpt, msd, profile, snapshot, transfer, delivery "
                         "(cargo by destination over time) or engagement (bound time)")
    pl.add_argument("-o", "--output", help="figure file, .png/.pdf/.svg (default: RUN_KIND.png, here)")
    pl.add_argument("--time", help="observation time for dose and range: seconds or a time with units, "
                                   "\"30 min\" (default: the end)")
    pl.add_argument("--frame", type=int, default=-1, help="snapshot index for snapshot (default: the last)")
    pl.add_argument("--axis", default="z", help="axis of the profile: x, y or z (default z)")
    pl.add_argument("--dpi", type=int, default=130)

    rp = sub.add_parser("report", help="all figures, an HTML page and per-cell CSV of a run")
    rp.add_argument("run", help="an exodiff H5MD file")
    rp.add_argument("-o", "--output", help="directory (default: RUN_report, here)")
    rp.add_argument("--dpi", type=int, default=110, help="resolution of the figures (default 110)")

    ex = sub.add_parser("export", help="sidecar files for other tools (ParaView)")
    ex.add_argument("run", help="an exodiff H5MD file")
    ex.add_argument("--xdmf", action="store_true", help="write an XDMF file for ParaView/VisIt")
    ex.add_argument("-o", "--output", help="output file (default: RUN with .xdmf, beside it)")

    tr = sub.add_parser("transfer", help="who sends what to whom: donor -> recipient counts, "
                                         "per-donor table, first passage by species and cell type")
    tr.add_argument("run", help="an exodiff H5MD file")
    tr.add_argument("--kind", default="internalized",
                    help="internalized (default), bound (first binding) or taken_up (either)")
    tr.add_argument("--species", help="one vesicle population (default: all)")
    tr.add_argument("--time", type=float, help="as of this time [s] (default: the last snapshot)")
    tr.add_argument("--event", default="internalized",
                    help="first-passage event: internalized (default) or bound")
    tr.add_argument("--csv", help="also write the per-donor table to this CSV file")

    cp = sub.add_parser("compare", help="uptake statistics of two runs with two-sample tests")
    cp.add_argument("run_a", help="first run file")
    cp.add_argument("run_b", help="second run file")
    cp.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    cp.add_argument("--csv", help="also write the table to this CSV file")


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _plot(args):
    from .analysis import open_run
    from .plots import KINDS, plot
    from .units import argument
    if args.kind not in KINDS:
        raise InputError(f"--kind {args.kind!r}: unknown; expected one of {', '.join(KINDS)}")
    out = args.output or f"{_stem(args.run)}_{args.kind}.png"
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in (".png", ".pdf", ".svg"):
        raise InputError(f"{out}: unknown figure format {suffix or '(none)'}; use .png, .pdf or .svg")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise InputError(f"{out}: the directory {folder} does not exist")
    if args.axis not in ("x", "y", "z"):
        raise InputError(f"--axis {args.axis!r}: expected x, y or z")
    time = argument(args.time, "s", "--time")
    with open_run(args.run) as run:
        plot(run, args.kind, out, dpi=args.dpi, time=time, frame=args.frame, axis=args.axis)
    print(f"wrote {out}")
    return 0


def _report(args):
    from .analysis import open_run
    from .report import write_report
    out = args.output or f"{_stem(args.run)}_report"
    with open_run(args.run) as run:
        result = write_report(run, out, dpi=args.dpi)
    for kind, why in result["skipped"].items():
        print(f"Note: no {kind} figure: {why}", file=sys.stderr)
    print(f"wrote {len(result['files'])} files to {result['dir']}/ (open index.html)")
    return 0


def _export(args):
    from .export import write_xdmf
    from .io import open_run
    if not args.xdmf:
        raise InputError("export: choose a format, e.g. --xdmf")
    with open_run(args.run) as run:
        out = write_xdmf(run, args.output)
    print(f"wrote {out} (open it in ParaView; keep it beside {os.path.basename(args.run)})")
    return 0


def _compare(args):
    from .analysis import RunComparison, open_run
    _check_csv_folder(args.csv)
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha {args.alpha}: expected a number between 0 and 1")
    with open_run(args.run_a) as a, open_run(args.run_b) as b:
        c = RunComparison(alpha=args.alpha).compute(a, b)
        print(f"A = {a.path} ({a.backend}, seed {a.seed});  B = {b.path} ({b.backend}, seed {b.seed})")
    print(f"compared at t = {c.time:g} s; uptake = bound + internalized (+ delivered + degraded), as a "
          "fraction of the released vesicles; first binding = time from release")
    print(_comparison_text(c.table))
    if c.dose_over_time is not None:
        print(_dose_text(c))
    for note in c.notes:
        print(f"Note: {note}")
    differs = c.table.index[c.table["differs"]].tolist()
    caveat = f" (not a valid test: both runs use seed {a.seed})" if a.seed == b.seed else ""
    print((f"differs at alpha = {args.alpha:g}: {', '.join(differs)}" if differs
           else f"no difference at alpha = {args.alpha:g}") + caveat)
    if args.csv:
        c.table.to_csv(args.csv)
        print(f"wrote {args.csv}")
    return 0


def _comparison_text(t):
    """The comparison table as fixed-width text (uptake fractions, z-test;
    first-binding counts and medians, KS test)."""
    head = (f"{'cell type':<12}{'uptake A':>10}{'uptake B':>10}{'z':>8}{'p (z)':>10}"
            f"{'bound A':>9}{'bound B':>9}{'median A [s]':>14}{'median B [s]':>14}{'KS D':>7}{'p (KS)':>10}")
    lines = [head, "-" * len(head)]
    for name, r in t.iterrows():
        lines.append(f"{str(name):<12}{r.fraction_a:>10.4f}{r.fraction_b:>10.4f}{r.z:>8.2f}{r.p_uptake:>10.3g}"
                     f"{r.bound_n_a:>9d}{r.bound_n_b:>9d}{r.median_first_bound_a:>14.4g}"
                     f"{r.median_first_bound_b:>14.4g}{r.ks_d:>7.3f}{r.p_first_bound:>10.3g}")
    r = t.iloc[-1]
    lines.append(f"released vesicles: A {r.released_a:,}, B {r.released_b:,}; bound = first bindings "
                 "by then (per type: vesicles on a cell of the type at the last snapshot)")
    return "\n".join(lines)


def _dose_text(c):
    """The functional dose of the comparison: per cell type (those with a
    dose in either run), the mean per cell over time in A and B and B/A,
    then the test at t_c."""
    from .formats import format_time
    df = c.dose_over_time
    dosed = [t for t in dict.fromkeys(df["type"]) if (df.loc[df["type"] == t, ["dose_a", "dose_b"]] > 0).any().any()]
    if not dosed:
        return "functional dose: no cargo reached a cytosol in either run"
    lines = ["functional dose: vesicles in the cytosol per cell (mean over the type), A | B | B/A:"]
    head = f"{'time':>10}" + "".join(f"{t[:22]:>26}" for t in dosed)
    lines += [head, "-" * len(head)]
    for time, rows in df.groupby("time", sort=True):
        rows = rows.set_index("type")
        cells = "".join(f"{rows.at[t, 'dose_a']:>9.4g}{rows.at[t, 'dose_b']:>9.4g}{rows.at[t, 'ratio']:>8.3f}"
                        for t in dosed)
        lines.append(f"{format_time(time):>10}{cells}")
    tests = "; ".join(f"{t} A {c.table.at[t, 'dose_a']:.4g}, B {c.table.at[t, 'dose_b']:.4g}, "
                      f"p = {c.table.at[t, 'p_dose']:.3g}" for t in dosed)
    lines.append(f"at t = {format_time(c.time)}, Mann-Whitney U over the cells of a type: {tests}")
    return "\n".join(lines)


def _transfer(args):
    from .analysis import Transfer, first_passage_table, open_run
    _check_csv_folder(args.csv)
    with open_run(args.run) as run:
        t = Transfer(time=args.time, kind=args.kind, species=args.species).compute(run)
        passage = first_passage_table(run, args.event)
    n = len(t.events)
    print(f"{run.path}: {n:,} vesicles {args.kind.replace('_', ' ')} from a donor by t = {t.time:g} s"
          + (f" ({args.species})" if args.species else ""))
    print("donor type (rows) -> recipient type (columns), vesicles:")
    print(t.type_matrix.to_string())
    print(f"autocrine fraction: {t.autocrine_fraction:.4g}; sender -> recipient distance: median "
          f"{_median(t.distances):.4g} µm; uptake decay length: {t.range_um:.4g} µm")
    by_species = t.events.groupby("species", observed=False).size()
    print("by species: " + ", ".join(f"{k} {v:,}" for k, v in by_species.items()))
    print(f"per donor (mean of {len(t.per_donor)} cells): "
          + ", ".join(f"{c} {t.per_donor[c].mean():.4g}" for c in t.per_donor.columns if c != "type"))
    print(f"first passage to {args.event} (every vesicle; median [s], NaN: not reached):")
    print(passage.to_string(index=False))
    if args.csv:
        t.per_donor.to_csv(args.csv)
        print(f"wrote {args.csv}")
    return 0


def _median(x):
    import numpy as np
    return float(np.median(x)) if len(x) else float("nan")


def _check_csv_folder(path):
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise InputError(f"{path}: the directory {folder} does not exist")


_ANALYSIS_COMMANDS = {"plot": _plot, "report": _report, "export": _export, "compare": _compare,
                      "transfer": _transfer}


# ------------------------------------------------------------------- sweep


def _add_sweep_parser(sub):
    sw = sub.add_parser("sweep", help="run a parameter sweep or ensemble on Dask (exodiff[cluster])")
    sw.add_argument("sweep", help="sweep file (TOML): base, mode, replicates, [set], [axes]")
    sw.add_argument("-o", "--output", required=True, metavar="DIR",
                    help="directory for one run file per point and summary.csv")
    sw.add_argument("--workers", type=int, metavar="N",
                    help="local worker processes, one run each (default: one per core, or one per GPU)")
    sw.add_argument("--scheduler", metavar="ADDRESS",
                    help="run on an existing Dask cluster (tcp://host:8786 or a scheduler JSON file)")
    sw.add_argument("--backend", default="auto", help="auto (default), cuda, numba or numpy")
    sw.add_argument("--dry-run", action="store_true", help="list the points without running them")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_threads(sw)  # per worker (default: cores // workers)


def _sweep(args):
    from .sweep import check_arguments, load_sweep, plan_sweep, require_dask, run_sweep
    if not args.dry_run:
        require_dask()
        check_arguments(args.workers, args.scheduler, args.backend)
    sweep = load_sweep(args.sweep)
    out = args.output
    plan = plan_sweep(sweep, out)
    shape = " × ".join(str(n) for n in sweep.shape[:-1]) or "no axes"
    print(f"{args.sweep}: {len(sweep.points)} runs ({sweep.mode} of {shape}, "
          f"{sweep.replicates} replicate{'s' * (sweep.replicates != 1)}) of {sweep.base} -> {out}",
          file=sys.stderr)
    if args.dry_run:
        for p in sweep.points:
            params = " ".join(o for o in p.overrides[:-1] if o.split("=", 1)[0] in p.params)
            print(f"{plan[p.index]}  {os.path.join(out, p.name)}  seed={p.seed}  {params}".rstrip())
        n_done = sum(s == "done" for s in plan.values())
        print(f"{len(sweep.points) - n_done} to run, {n_done} finished already", file=sys.stderr)
        return 0

    bar = None

    def progress(event):
        nonlocal bar
        if event.row is None:  # the start: where the points run
            if event.finished == event.total:
                print("nothing to run: every point finished before", file=sys.stderr)
                return
            print(f"running on {event.cluster}", file=sys.stderr)
            if not args.quiet:
                from tqdm import tqdm
                bar = tqdm(total=event.total, initial=event.finished, unit="run", file=sys.stderr,
                           dynamic_ncols=True)
            return
        if event.row["status"] == "failed":
            message = f"failed: {event.row['file']}: {event.row.get('error', '')}"
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)
        if bar is not None:
            bar.update(1)
            if event.failed:
                bar.set_postfix_str(f"{event.failed} failed", refresh=False)

    try:
        result = run_sweep(sweep, out, workers=args.workers, scheduler=args.scheduler,
                           backend=args.backend, progress=progress, quiet_logs=not args.debug)
    finally:
        if bar is not None:
            bar.close()
    ran, skipped, failed = (result.count(s) for s in ("ran", "skipped", "failed"))
    written = result.summary_csv + (f" and {result.summary_parquet}" if result.summary_parquet else "")
    print(f"{len(result.rows)} runs: {ran} ran, {skipped} skipped (finished before), "
          f"{failed} failed; summary in {written}")
    return 1 if failed else 0


def _add_bench_parser(sub):
    b = sub.add_parser("bench", help="vesicle-steps/s per backend on standard scenarios, memory, scaling")
    b.add_argument("--backend", action="append", metavar="B",
                   help="numba, numpy or cuda (repeatable; default: every backend that works here)")
    b.add_argument("--quick", action="store_true", help="small sizes, one repeat (about a minute)")
    b.add_argument("--stepping", action="append", metavar="SCENARIO", nargs="?", const="all",
                   help="instead: adaptive against fixed stepping, simulated vesicle-seconds per "
                        "wall-second on S2, well_24h, coculture (or the SCENARIO named; repeatable)")
    b.add_argument("--repeats", type=int, metavar="R", help="repeats of --stepping (default 3, quick 1)")
    _add_threads(b)


def _bench(args):
    from . import bench
    from .backends import BACKENDS
    backends = args.backend or bench.available_backends()
    for b in backends:
        if b not in BACKENDS or b == "auto":
            raise InputError(f"--backend: unknown backend {b!r}; expected numba, numpy or cuda")
    if "cuda" in backends:
        from .backends import cuda_unavailable_reason
        reason = cuda_unavailable_reason()
        if reason:
            raise InputError(f"--backend cuda: {reason}")
    if args.stepping:
        names = None if "all" in args.stepping else args.stepping
        for name in names or ():
            if name not in bench.STEPPING_SCENARIOS:
                raise InputError(f"--stepping {name}: no such scenario "
                                 f"(scenarios: {', '.join(bench.STEPPING_SCENARIOS)})")
        repeats = args.repeats or (1 if args.quick else 3)
        pairs = bench.measure_stepping(names, backends[0], repeats=repeats, quick=args.quick,
                                       progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
        print(bench.format_stepping(pairs, repeats), end="")
        return 0
    res = bench.run_all(backends, quick=args.quick,
                        progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    print(bench.format_report(res, quick=args.quick), end="")
    return 0



def _add_validate_parser(sub):
    v = sub.add_parser("validate", help="compare exodiff with exact solutions (configs/validation)")
    v.add_argument("--quick", action="store_true",
                   help="coarse time step and ~2%% standard errors (a few minutes; for CI)")
    v.add_argument("--case", action="append", metavar="NAME",
                   help="run only this case, or the cases starting with NAME (repeatable)")
    v.add_argument("--plot", metavar="DIR", help="write one PNG per case into DIR (needs matplotlib)")
    v.add_argument("--backend", default="auto", help="auto (default), cuda, numba or numpy")
    v.add_argument("--list", action="store_true", help="list the cases and exit")
    v.add_argument("--stepping", choices=("fixed", "adaptive"),
                   help="run every case with this run.stepping only (default: both, fixed first)")
    _add_threads(v)


def _validate(args):
    from . import validate
    from .backends import select_backend
    if args.list:
        width = max(len(name) for name in validate.CASES)
        for case in validate.CASES.values():
            print(f"{case.name:{width}s}  {case.title}")
        return 0
    cases = validate.select_cases(args.case)
    if args.plot:
        validate.require_matplotlib()
    backend, note = select_backend(args.backend)
    if note:
        print(note, file=sys.stderr)
    steppings = [args.stepping] if args.stepping else list(validate.STEPPINGS)
    print(f"exodiff {__version__} validate: {len(cases)} cases on {backend.name} [{backend.device}], "
          f"stepping {' and '.join(steppings)}" + (" (quick)" if args.quick else ""), file=sys.stderr)
    results = []
    for stepping in steppings:
        for case in cases:
            res = validate.run_case(case, backend=backend.name, quick=args.quick, stepping=stepping,
                                    progress=lambda name, step: print(f"  {name} ({stepping}): s = {step:g} L ...",
                                                                      file=sys.stderr, flush=True))
            print(f"  {case.name} ({stepping}): {sum(c.passed for c in res.checks)}/{len(res.checks)} pass, "
                  f"{res.vesicle_steps:.3g} vesicle-steps" + (f", {res.leaps:.3g} leaps" if res.leaps else "")
                  + f" in {res.wall_time:.0f} s", file=sys.stderr, flush=True)
            if args.plot:
                validate.plot_case(res, args.plot)
            results.append(res)
    print(validate.format_table(results))
    checks = [c for r in results for c in r.checks]
    failed = [c for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks within {validate.Z_PASS:g} standard errors"
          + (f"; FAILED: {', '.join(sorted({c.case for c in failed}))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
