"""Command line: ``exodiff run|check|info`` (also ``python -m exodiff``).

Exit codes (DESIGN §4): 0 success; 2 bad input, one ``Error: …`` line naming
the key or file, nothing written; 1 failure while running; 130 interrupted.
Only this module prints.
"""
import argparse
import os
import sys

from . import __version__
from .errors import InputError


def _parser():
    p = argparse.ArgumentParser(prog="exodiff", description=(
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
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("check", help="validate a scenario and print derived parameters")
    c.add_argument("config")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    i = sub.add_parser("info", help="summarize a run file")
    i.add_argument("run", help="an exodiff H5MD file")
    return p


def main(argv=None):
    parser = _parser()
    # argparse exits with 2 on bad arguments, as DESIGN §4 asks
    args = parser.parse_args(argv)
    try:
        return {"run": _run, "check": _check, "info": _info}[args.command](args)
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


def _load(args):
    from .config import load_config
    overrides = list(args.set)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"run.seed={args.seed}")
    cfg = load_config(args.config, overrides)
    for w in cfg.warnings:
        print(f"Warning: {w}", file=sys.stderr)
    return cfg


def _run(args):
    from .driver import Simulation
    cfg = _load(args)
    out = args.output or os.path.splitext(os.path.basename(args.config))[0] + ".h5"
    from .driver import check_output_path
    check_output_path(out, args.overwrite)
    sim = Simulation(cfg, backend=args.backend)
    if sim.backend_note:
        print(sim.backend_note, file=sys.stderr)
    m = sim.model
    print(f"exodiff {__version__}: {m.n_vesicles} vesicles, {m.n_cells} cells, {m.n_steps} steps "
          f"of {cfg.run.dt:g} s on {sim.backend.name} [{sim.backend.device}] -> {out}", file=sys.stderr)
    bar = None if args.quiet else _progress_bar(cfg.run.duration)
    try:
        summary = sim.run(out, progress=bar, overwrite=args.overwrite)
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    print(f"wrote {out}: {summary['wall_time']:.1f} s wall, "
          f"{summary['rate']:.3g} vesicle-steps/s; final: {counts}")
    return 0


class _progress_bar:
    """tqdm bar over simulated time with the vesicle-step rate."""

    def __init__(self, duration):
        from tqdm import tqdm
        self._bar = tqdm(total=duration, unit="s sim", file=sys.stderr, dynamic_ncols=True,
                         bar_format="{l_bar}{bar}| {n:.4g}/{total:.4g} s sim "
                                    "[{elapsed}<{remaining}{postfix}]")

    def __call__(self, p):
        self._bar.update(p.time - self._bar.n)
        if p.elapsed > 0:
            self._bar.set_postfix_str(f"{p.vesicle_steps / p.elapsed:.3g} vesicle-steps/s",
                                      refresh=False)

    def close(self):
        self._bar.close()


def _check(args):
    from .config import format_check
    from .layouts import make_cells
    cfg = _load(args)
    # the cell layout is part of the input: build it so overlaps and
    # out-of-domain cells are reported here rather than at run time
    cells = make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), cfg.run.seed)
    print(format_check(cfg))
    print(f"cells: {cells.centers.shape[0]} placed")
    return 0


def _info(args):
    from .io import open_run
    with open_run(args.run) as run:
        print(run.summary_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
