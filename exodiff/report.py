"""``exodiff report RUN.h5 -o DIR``: every figure, a self-contained HTML
page and CSV tables of one run.

DIR receives ``<kind>.png`` for each figure of :data:`exodiff.plots.KINDS`
that the run allows (a run without positions has no MSD, profile or
snapshot; one without donor cells no range), ``cells.csv`` (one row per
cell: position, type, uptake, dose, distance to the nearest donor),
``uptake.csv`` (uptake curves per cell type), ``dose_summary.csv``,
``donors.csv`` (per donor cell: secreted, taken up, recipients, exited,
cleared; runs with a fate table), ``delivery.csv`` (vesicles and cargo per
cell type and destination over time; runs that record destinations) and ``index.html``, which embeds the figures (no external files needed).
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from . import analysis as A
from . import plots
from .errors import InputError

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.ok{color:#05803a}.bad{color:#b00020;font-weight:bold}.note{color:#666;font-size:.9em}"""

_CAPTIONS = {
    "uptake": "Mean bound and internalized vesicles per cell by cell type, and the fate of the whole pool.",
    "dose": "Dose per cell (vesicles internalized, cargo delivered) across the cells of each type.",
    "range": "Uptake of each target cell against its distance to the nearest donor cell.",
    "fpt": "Kaplan–Meier survival of the time from release to first binding and to internalization.",
    "msd": "Mean squared displacement of vesicles from unwrapped positions, with 6Dτ of the configured D.",
    "profile": "Concentration of free vesicles along z and around donor cells at several times.",
    "snapshot": "Cells and vesicles at the last snapshot in two slices through the box.",
    "transfer": "Vesicles taken up (bound or internalized) by donor and recipient cell type, and the "
                "distance from the secreting cell to the one that took them up, by species.",
    "delivery": "Where the cargo of the vesicles taken up is, per recipient cell type over time (mean per "
                "cell): in the cytosol (functional dose, by endosomal escape or membrane fusion), in "
                "endosomes, bound at the periphery, degraded; and the functional dose by donor type.",
    "engagement": "Bound vesicle-seconds per cell since the start (exact, from the kernels' count of bound "
                  "vesicle-steps) and the total time each vesicle spent bound.",
}


def write_report(run, out_dir, dpi=110):
    """Write the report of a run opened by :func:`exodiff.open_run` into
    ``out_dir`` (created if needed).
    Returns {"dir", "files": [paths], "skipped": {kind: reason}}."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if not out.parent.resolve().is_dir():
        raise InputError(f"{out}: the directory {out.parent.resolve()} does not exist")
    if run.n_observations == 0:
        raise InputError(f"{run.path}: no observation written yet, nothing to report")
    out.mkdir(exist_ok=True)
    files, skipped, images = [], {}, {}
    for kind in plots.KINDS:
        try:
            fig = plots.figure(run, kind)
        except InputError as e:
            skipped[kind] = str(e).replace(f"{run.path}: ", "")
            continue
        path = out / f"{kind}.png"
        fig.savefig(path, dpi=dpi)
        files.append(path)
        images[kind] = path

    cells = A.cell_results(run)
    files.append(_csv(cells, out / "cells.csv"))
    files.append(_csv(run.uptake_curves().to_frame(), out / "uptake.csv", index=False))
    dose = run.dose()
    summary = dose.summary
    files.append(_csv(summary, out / "dose_summary.csv", index=False))
    if run.has_fates and run.n_snapshots:
        files.append(_csv(run.transfer(kind="taken_up").per_donor, out / "donors.csv"))
    if run.has_destinations:
        files.append(_csv(run.delivery().to_frame(), out / "delivery.csv", index=False))

    page = _html(run, images, skipped, summary, dose)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    files.append(index)
    return {"dir": out, "files": files, "skipped": skipped}


def _csv(df, path, index=True):
    df.to_csv(path, index=index, float_format="%.10g")
    return path


def _key_numbers(run):
    """(label, value) lines of the headline results, each guarded."""
    rows = []
    mb = run.mass_balance()
    rows.append(("mass balance", '<span class="ok">every vesicle accounted for at every time</span>'
                 if mb.balanced else '<span class="bad">FAILS: counts do not add up '
                 f'(max missing {int(np.abs(mb.missing).max())})</span>'))
    u = run.uptake_curves()
    for k, name in enumerate(u.type_names):
        if u.n_cells[k]:
            rows.append((f"{name} cells ({u.n_cells[k]})",
                         f"{100 * u.fraction_taken_up[-1, k]:.3g} % of the released vesicles bound or internalized; "
                         f"{u.mean_internalized[-1, k]:.3g} internalized per cell at t = {u.times[-1]:g} s"))
    if run.has_destinations:
        d = run.delivery()
        for k, name in enumerate(d.type_names):
            taken = sum(d.by_type[x][-1, k] for x in ("bound", "endosome", "cytosol", "degraded"))
            if d.n_cells[k] and taken:
                m = {x: d.mean_per_cell[x][-1, k] for x in ("cytosol", "fused", "endosome", "bound", "degraded")}
                rows.append((f"{name}: functional dose",
                             f"{m['cytosol']:.3g} vesicles in the cytosol per cell ({m['fused']:.3g} by fusion); "
                             f"{m['endosome']:.3g} in endosomes, {m['bound']:.3g} bound, {m['degraded']:.3g} "
                             f"degraded, at t = {d.times[-1]:g} s"))
    if run.n_snapshots:
        for event in ("bound", "internalized"):
            f = run.first_passage(event=event)
            med = f"{f.median:.3g} s" if math.isfinite(f.median) else "not reached"
            rows.append((f"time to {'first binding' if event == 'bound' else 'internalization'}",
                         f"median {med} ({f.n_events:,} of {f.n_subjects:,} vesicles)"))
    try:
        r = run.uptake_range(time=None, bins=10)
        reach = float(np.nanmax(r.distance)) if np.isfinite(r.distance).any() else 0.0
        if math.isfinite(r.decay_length) and r.decay_length <= reach:
            text = f"uptake falls e-fold every λ = {r.decay_length:.3g} µm from the nearest donor"
        elif math.isfinite(r.decay_length):
            text = (f"uptake nearly flat with distance to the nearest donor (fitted λ = {r.decay_length:.3g} µm, "
                    f"beyond the {reach:.3g} µm sampled)")
        else:
            text = "uptake does not fall off with distance to the nearest donor"
        rows.append(("signal range", text))
    except InputError:
        pass
    if run.has_positions and run.n_snapshots > 1:
        # one row per population, with the D that exodiff check prints for it
        several = len(run.species_names) > 1
        for pop in (run.species_names if several else [None]):
            m = run.msd(population=pop, mode="free")
            d_exp = A.expected_diffusion(run, pop)
            use = m.counts > 0
            if use.any():
                tau = m.lag_times[use][0]
                rows.append((f"diffusion of free {pop} vesicles" if several else "diffusion of free vesicles",
                             f"MSD/6τ at the shortest lag τ = {tau:.3g} s: {m.msd[use][0] / (6 * tau):.3g} µm²/s"
                             + (f" (config: {d_exp:.3g} µm²/s; cells in the way and walls lower it)"
                                if math.isfinite(d_exp) else "")))
    return rows


def _html(run, images, skipped, summary, dose):
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>exodiff report: {e(run.path.name)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>exodiff report: {e(run.path.name)}</h1>",
             f'<p class="note">exodiff {e(run.exodiff_version)}, backend {e(run.backend)}'
             f'{" on " + e(run.device) if run.device else ""}, seed {run.seed}. '
             "Lengths in µm, times in s. Tables: cells.csv, uptake.csv, dose_summary.csv, donors.csv, "
             "delivery.csv.</p>",
             "<h2>Results</h2><table>"]
    for label, value in _key_numbers(run):
        parts.append(f"<tr><th style='text-align:left'>{e(label)}</th><td style='text-align:left'>{value}</td></tr>")
    parts.append("</table>")
    parts.append(f"<h2>Dose per cell at t = {dose.time:g} s</h2>")
    parts.append(summary.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0))
    parts.append("<h2>Figures</h2>")
    for kind, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<h3>{e(kind)}</h3><p>{e(_CAPTIONS.get(kind, ''))}</p>"
                     f'<img alt="{e(kind)} figure" src="data:image/png;base64,{data}">')
    if skipped:
        parts.append("<h2>Not drawn</h2><ul>")
        parts += [f"<li>{e(k)}: {e(v)}</li>" for k, v in skipped.items()]
        parts.append("</ul>")
    parts.append("<h2>Run</h2><pre>" + e(run.summary_text()) + "</pre>")
    parts.append("<h2>Config</h2><pre>" + e(run.config_text) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
