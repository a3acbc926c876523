"""Figures of a run: ``exodiff plot RUN.h5 --kind KIND -o FIG.png``.

Each ``plot_<kind>(run, **options)`` returns a matplotlib Figure built
without pyplot (``matplotlib.figure.Figure`` and the Agg canvas), so the
library never changes the user's matplotlib backend and works headless;
:func:`plot` builds one by kind name and saves it.  Axes carry units, every
figure a title and legend; times are shown in s, min or h by duration.
"""
from __future__ import annotations

import math
import textwrap

import numpy as np

from . import analysis as A
from .errors import InputError
from .formats import format_time
from .kernels.constants import STATE_NAMES

KINDS = ("uptake", "dose", "range", "fpt", "msd", "profile", "snapshot", "transfer", "delivery",
         "engagement")

# One colour per vesicle state (colour-blind safe: Paul Tol's "bright" scheme);
# bound (yellow) and internalized (purple) differ in hue and lightness.
STATE_COLORS = {"pending": "#BBBBBB", "free": "#4477AA", "bound": "#CCBB44",
                "internalized": "#AA3377", "exited": "#228833", "cleared": "#66CCEE",
                "delivered": "#005F73", "degraded": "#999999"}  # dark teal: unlike exited's green
# One colour per cell type, by type index, the same in every figure
# (Okabe & Ito's qualitative palette: distinct hues, colour-blind safe).
_TYPE_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
_MAX_POINTS = 40000  # vesicles drawn in a snapshot (an even subsample beyond)


def _figure(ncols=1, nrows=1, width=6.4, height=4.4, **kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes.ravel()


def _time_unit(t_max):
    """(label, seconds) of a readable unit for a time axis reaching t_max [s]."""
    for name, size in (("h", 3600.0), ("min", 60.0)):
        if t_max >= 3 * size:
            return name, size
    return "s", 1.0


def _title(fig, run, what):
    # wrapped to the figure's width: a suptitle wider than the figure is clipped at both ends
    chars = max(40, int(fig.get_figwidth() * 10))  # ~10 characters per inch at 11 pt
    lines = textwrap.wrap(what, chars) + textwrap.wrap(
        f"{run.path.name}: {run.n_vesicles:,} vesicles, {len(run.cells):,} cells, "
        f"{run.backend or 'unknown'} backend, seed {run.seed}", chars)
    fig.suptitle("\n".join(lines), fontsize=11)


def _type_color(k):
    return _TYPE_COLORS[k % len(_TYPE_COLORS)]


def _legend(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, **kw)


# ------------------------------------------------------------- uptake


def plot_uptake(run, **_):
    """Mean bound and internalized vesicles per cell vs time, by cell type
    (left), and the fate of the whole pool vs time (right)."""
    u = run.uptake_curves()
    mb = run.mass_balance()
    unit, scale = _time_unit(u.times[-1] if u.times.size else 0.0)
    t = u.times / scale
    fig, (ax, ax2) = _figure(ncols=2)
    shown = 0
    for k, name in enumerate(u.type_names):
        if u.n_cells[k] == 0 or (u.taken_up[:, k].max(initial=0) == 0 and len(u.type_names) > 1):
            continue
        c = _type_color(k)
        ax.plot(t, u.mean_internalized[:, k], color=c, lw=2,
                label=f"{name}: internalized ({u.n_cells[k]} cells)")
        ax.plot(t, u.mean_bound[:, k], color=c, lw=1.5, ls="--", label=f"{name}: bound")
        shown += 1
    quiet = [n for k, n in enumerate(u.type_names) if u.n_cells[k] and u.taken_up[:, k].max(initial=0) == 0]
    if quiet and shown:
        ax.text(0.02, 0.98, "no uptake: " + ", ".join(quiet), transform=ax.transAxes,
                va="top", fontsize=8, color="0.4")
    ax.set_xlabel(f"time [{unit}]")
    ax.set_ylabel("vesicles per cell (mean over the type)")
    ax.set_title("Uptake per cell")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    _legend(ax, loc="lower right")
    # the released vesicles only: pool slots not yet secreted would dwarf them
    released = mb.counts.sum(axis=1) - mb.counts[:, STATE_NAMES.index("pending")]
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = mb.counts.T / np.where(released > 0, released, np.nan)
    order = ["delivered", "degraded", "internalized", "bound", "free", "exited", "cleared"]
    ax2.stackplot(t, *[np.nan_to_num(fractions[STATE_NAMES.index(s)]) for s in order],
                  labels=order, colors=[STATE_COLORS[s] for s in order], alpha=0.85)
    ax2.set_xlabel(f"time [{unit}]")
    ax2.set_ylabel(f"fraction of the vesicles released ({int(released[-1]) if released.size else 0:,} "
                   f"at the end)")
    ax2.set_title("Vesicle fate" + ("" if mb.balanced else "  (MASS BALANCE FAILS)"))
    ax2.set_xlim(t[0] if t.size else 0, t[-1] if t.size else 1)
    ax2.set_ylim(0, 1)
    handles, labels = ax2.get_legend_handles_labels()  # top band first, as stacked
    ax2.legend(handles[::-1], labels[::-1], fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _title(fig, run, "Vesicle uptake over time")
    return fig


# ------------------------------------------------------------- dose


def plot_dose(run, time=None, **_):
    """Distribution across cells of the dose (vesicles internalized, and
    each cargo kind delivered) at one time, by cell type.  Cargo kinds that
    are a fixed multiple of the vesicle dose (one population) are named in
    the title instead of drawn again."""
    d = run.dose(time=time)
    v = d.vesicles.astype(float)
    quantities = [("vesicles internalized per cell [vesicles]", v)]
    scaled = []
    for j, name in enumerate(d.cargo_names):
        q = d.cargo[:, j]
        k = q.sum() / v.sum() if v.sum() > 0 else math.nan
        if math.isfinite(k) and np.allclose(q, k * v, rtol=1e-9, atol=1e-9):
            scaled.append(f"{name} = {k:g} × vesicles")
        elif len(quantities) < 4:
            quantities.append((f"{name} delivered per cell [molecules]", q))
    # at most two panels a row: a row of three or four is too wide to read
    ncols = min(2, len(quantities))
    fig, axes = _figure(ncols=ncols, nrows=-(-len(quantities) // ncols), width=6.0 if ncols == 1 else 5.0,
                        height=4.0)
    for ax in axes[len(quantities):]:
        ax.set_axis_off()
    for ax, (label, q) in zip(axes, quantities):
        # cells with none are counted in the legend, not drawn: a zero bin would dwarf the rest
        pos = q[q > 0]
        lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (0.0, 1.0)
        logx = lo > 0 and hi / lo >= 30  # values span decades
        bins = np.geomspace(lo, hi * 1.0001, 26) if logx else np.linspace(0, hi, 31)
        for k, name in enumerate(d.type_names):
            x = q[d.types == k]
            if x.size == 0 or (x.max(initial=0) == 0 and len(d.type_names) > 1):
                continue
            mean = x.mean()
            cv = x.std(ddof=1) / mean if x.size > 1 and mean > 0 else math.nan
            c = _type_color(k)
            ax.hist(x[x > 0], bins=bins, color=c, alpha=0.25, histtype="stepfilled")
            ax.hist(x[x > 0], bins=bins, color=c, lw=1.8, histtype="step",
                    label=f"{name} ({x.size} cells, {int(np.sum(x == 0))} with none):\n"
                          f"mean {mean:.3g}, CV {cv:.2f}, Gini {A.gini(x):.2f}")
            ax.axvline(mean, color=c, lw=1.5, ls="--")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(label + (" (log scale)" if logx else ""))
        ax.set_ylabel("cells with a dose > 0 [count]")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend above the bars
        _legend(ax, loc="upper left")
    axes[0].set_title("Dose per cell (dashed: mean over all cells of the type)"
                      + ("\ncargo: " + ", ".join(scaled) if scaled else ""),
                      fontsize=10)
    _title(fig, run, f"Dose per cell at t = {d.time:g} s")
    return fig


# ------------------------------------------------------------- range


def plot_range(run, time=None, bins=10, **_):
    """Uptake of each target cell vs distance to the nearest donor cell,
    with the binned mean and an exponential fit."""
    r = run.uptake_range(time=time, bins=bins)
    fig, (ax,) = _figure(width=7.0)
    ok = ~np.isnan(r.distance)
    ax.scatter(r.distance[ok], r.uptake[ok], s=8, color="0.55", alpha=0.6, lw=0,
               label=f"one target cell ({int(ok.sum())} cells)")
    good = r.n_cells > 0
    ax.errorbar(r.bin_centers[good], r.mean[good], yerr=np.nan_to_num(r.sem[good]), color="#D55E00",
                marker="o", lw=2, capsize=3, label="binned mean ± s.e.m.")
    reach = float(np.nanmax(r.distance)) if ok.any() else 0.0
    if math.isfinite(r.decay_length) and r.decay_length > reach:
        ax.plot([], [], " ", label=f"nearly flat: fitted λ = {r.decay_length:.3g} µm exceeds the "
                                   f"{reach:.3g} µm sampled")
    elif math.isfinite(r.decay_length) and r.decay_length > 0:
        use = good & (r.mean > 0)
        x = r.bin_centers[use]
        w = r.n_cells[use]
        amp = math.exp(np.average(np.log(r.mean[use]) + x / r.decay_length, weights=w))
        xs = np.linspace(r.bin_edges[0], r.bin_edges[-1], 100)
        ax.plot(xs, amp * np.exp(-xs / r.decay_length), color="#0072B2", ls="--",
                label=f"fit A·exp(−d/λ), λ = {r.decay_length:.3g} µm")
    elif r.decay_length == math.inf:
        ax.plot([], [], " ", label="uptake does not fall with distance (λ = ∞)")
    ax.set_xlabel("distance to the nearest donor cell, centre to centre [µm]")
    ax.set_ylabel("vesicles bound + internalized per cell")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    _legend(ax, loc="best")
    _title(fig, run, f"Signal range: uptake vs distance from donors (t = {r.time:g} s)")
    return fig


# ------------------------------------------------------------- first passage


def plot_fpt(run, **_):
    """Kaplan–Meier survival: the fraction of released vesicles not yet
    bound (and not yet internalized) vs time since release."""
    fig, (ax,) = _figure(width=7.0)
    t_max = 0.0
    curves = []
    for event in ("bound", "internalized"):
        color = STATE_COLORS[event]
        f = run.first_passage(event=event)
        curves.append((event, color, f))
        t_max = max(t_max, float(f.durations.max(initial=0.0)))
    unit, scale = _time_unit(t_max)
    for event, color, f in curves:
        if f.times.size > 4000:  # draw the step function on a fine grid, not 10⁶ steps
            t = np.linspace(0.0, t_max, 4001)
            k = np.searchsorted(f.times, t, side="right") - 1
            s = np.where(k >= 0, f.survival[np.maximum(k, 0)], 1.0)
            se = np.where(k >= 0, f.standard_error[np.maximum(k, 0)], 0.0)
            t = t / scale
        else:
            t = np.concatenate([[0.0], f.times, [t_max]]) / scale
            s = np.concatenate([[1.0], f.survival, f.survival[-1:] if f.survival.size else [1.0]])
            se = np.concatenate([[0.0], f.standard_error, f.standard_error[-1:] if f.survival.size else [0.0]])
        med = f"median {f.median / scale:.3g} {unit}" if math.isfinite(f.median) else "median not reached"
        ax.step(t, s, where="post", color=color, lw=2,
                label=f"not yet {event}: {f.n_events:,} of {f.n_subjects:,} vesicles; {med}")
        ax.fill_between(t, np.clip(s - 1.96 * se, 0, 1), np.clip(s + 1.96 * se, 0, 1),
                        step="post", color=color, alpha=0.2, lw=0)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel(f"time since release [{unit}]")
    ax.set_ylabel("fraction of vesicles without the event  S(t)")
    ax.set_xlim(0, t_max / scale if t_max > 0 else 1)
    ax.set_ylim(0, 1.02)
    _legend(ax, loc="upper right")
    ax.set_title("Kaplan–Meier estimate, 95% band (Greenwood); exits and clearance censored",
                 fontsize=9)
    _title(fig, run, "First-passage times: release → first binding, → internalization")
    return fig


# ------------------------------------------------------------- MSD


def plot_msd(run, **_):
    """MSD vs lag time from unwrapped positions, per population, with the
    free-diffusion line 6Dτ of the configured D."""
    fig, (ax,) = _figure(width=7.0)
    pops = [None] if len(run.species_names) <= 1 else list(run.species_names)
    plotted = False
    lags = 0  # lag times with free vesicles, most of any population
    for k, pop in enumerate(pops):
        color = _type_color(k)
        name = pop or (run.species_names[0] if run.species_names else "vesicles")
        m = run.msd(population=pop, mode="free")
        use = m.counts > 0
        lags = max(lags, int(use.sum()))
        if use.any():
            tau1 = m.lag_times[use][0]
            d1 = m.msd[use][0] / (6.0 * tau1)  # the fit restricted to the shortest lag
            ax.plot(m.lag_times[use], m.msd[use], "o-", color=color, lw=1.5,
                    label=f"{name}, free vesicles: D = MSD/6τ at τ = {tau1:.3g} s: {d1:.3g} µm²/s")
        a = run.msd(population=pop, mode="all")
        ua = a.counts > 0
        if ua.any():  # drawn even when no vesicle stayed free for a whole snapshot interval
            ax.plot(a.lag_times[ua], a.msd[ua], "s--", color=color, mfc="none", lw=1,
                    label=f"{name}, all released (bound included)")
        d_exp = A.expected_diffusion(run, pop)  # the D that exodiff check prints
        tau = a.lag_times[ua] if ua.any() else m.lag_times[use]
        if math.isfinite(d_exp) and tau.size:
            ax.plot(tau, 6 * d_exp * tau, ":", color=color,
                    label=f"{name}: 6Dτ with the config's D = {d_exp:.3g} µm²/s")
        plotted = plotted or use.any() or ua.any()
    L = run.box_edges
    if not plotted:
        ax.text(0.5, 0.5, "no released vesicle in two snapshots", ha="center",
                transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        ax.set_yscale("log")
    if lags < 3:  # say why there is no curve, and what would give one, where the layout keeps it in view
        ax.set_title("\n".join(textwrap.fill(line, 105) for line in _msd_note(run, lags).split("\n")),
                     fontsize=8, color="#994400")
    else:
        ax.set_title("every snapshot a time origin; free: vesicles not bound during the lag.\n"
                     f"Cells in the way lower the slope; the walls of the {L[0]:g}×{L[1]:g}×{L[2]:g} µm box "
                     "bend long lags", fontsize=9)
    ax.set_xlabel("lag time τ [s]")
    ax.set_ylabel("mean squared displacement [µm²]")
    _legend(ax, loc="upper left")
    _title(fig, run, "Mean squared displacement of vesicles")
    return fig


def _msd_note(run, lags):
    """Why an MSD plot has fewer than three lag times: the snapshot interval
    against the run and the box (only snapshots store positions; the
    observables are counts), and an interval that would resolve it."""
    t = run.snapshot_times
    interval = float(np.median(np.diff(t))) if t.size > 1 else math.nan
    unit, scale = _time_unit(interval if math.isfinite(interval) else 0.0)
    text = (f"Free vesicles at {lags or 'no'} lag time{'s' if lags > 1 else ''}: {t.size} snapshot"
            f"{'s' if t.size != 1 else ''}, {interval / scale:g} {unit} apart. Only snapshots store "
            "positions (the observables are counts), so the MSD has one point per snapshot lag"
            + (", and no vesicle stays free and unbound that long." if not lags else "."))
    d = max((A.expected_diffusion(run, p) for p in (run.species_names or [None])), default=math.nan)
    box = float(np.min(run.box_edges))
    if math.isfinite(d) and d > 0 and math.isfinite(interval):
        rms = math.sqrt(6 * d * interval)
        text += (f"\nIn {interval / scale:g} {unit} a free vesicle (D = {d:.3g} µm²/s) moves "
                 f"√(6Dτ) = {rms:.3g} µm" + (f", more than the {box:g} µm box: the walls cap the MSD."
                                             if rms > 0.5 * box else "."))
        good = (0.1 * box) ** 2 / (6 * d)  # rms step a tenth of the box
        u2, s2 = _time_unit(good)
        text += f"\nFor a curve, rerun with run.snapshot_interval ≈ \"{good / s2:.2g} {u2}\" or shorter."
    return text


# ------------------------------------------------------------- profile


def plot_profile(run, axis="z", bins=20, **_):
    """Concentration of free vesicles along an axis at several times (left)
    and around the donor cells (right, when there are donors)."""
    if not run.has_positions:
        raise InputError(f"{run.path}: positions were not stored in this run (profiles need them)")
    S = run.n_snapshots
    if S == 0:
        raise InputError(f"{run.path}: no snapshot written yet")
    types = run.cells.type_names
    donors = [d for d in run.donor_types if np.any(run.cells.types == types.index(d))]
    fig, axes = _figure(ncols=2 if donors else 1)
    times = run.snapshot_times
    unit, scale = _time_unit(times[-1])
    frames = _nice_frames(times / scale)
    along = run.profile(axis=axis, bins=bins, frames=frames)
    around = {d: run.profile(cell=d, bins=12, frames=frames) for d in donors}
    # a frame with no free vesicle anywhere (t = 0 before any secretion) is a flat zero line
    empty = [n for n in range(len(frames)) if not along.concentration_by_frame[n].any()]
    drawn = [n for n in range(len(frames)) if n not in empty] or list(range(len(frames)))
    scale_c = _nice_scale(max(float(np.max(p.concentration_by_frame[drawn])) * 1e12
                              for p in [along, *around.values()]))
    label_c = f"free vesicles [{_power_label(scale_c)}particles/mL]"
    cmap = _viridis()
    ax = axes[0]
    for m, n in enumerate(drawn):
        ax.plot(along.bin_centers, along.concentration_by_frame[n] * 1e12 / scale_c, "o-", ms=3,
                color=cmap(m / max(len(drawn) - 1, 1)), label=f"t = {times[frames[n]] / scale:g} {unit}")
    none = ", ".join(f"{times[frames[n]] / scale:g}" for n in empty if n not in drawn)
    ax.set_title(f"Along {axis} (volume of the cells excluded)" + (f"\nno free vesicle at t = {none} {unit}"
                                                                   if none else ""), fontsize=10)
    ax.set_xlabel(f"{axis} [µm]")
    ax.set_xlim(along.bin_edges[0], along.bin_edges[-1])
    if donors:  # colour: donor type; earlier times fainter
        ax = axes[1]
        for d, p in around.items():
            t = types.index(d)
            n_d = int(np.sum(run.cells.types == t))
            for m, n in enumerate(drawn):
                last = m == len(drawn) - 1
                ax.plot(p.bin_centers, p.concentration_by_frame[n] * 1e12 / scale_c, "o-", ms=3,
                        color=_type_color(t), alpha=0.25 + 0.75 * (m + 1) / len(drawn), lw=2 if last else 1,
                        label=f"{d} ({n_d} cells), t = {times[frames[n]] / scale:g} {unit}" if last else None)
        earlier = ", ".join(f"{times[frames[n]] / scale:g}" for n in drawn[:-1])
        ax.set_title("Around each donor type (mean over its cells)"
                     + (f"\nfainter: earlier, t = {earlier} {unit}" if earlier else ""), fontsize=10)
        ax.set_xlabel("distance from the donor cell's membrane [µm]")
        ax.set_xlim(0, max(p.bin_edges[-1] for p in around.values()))
    for ax in axes:
        ax.set_ylabel(label_c)
        ax.set_ylim(bottom=0)
        ax.ticklabel_format(axis="both", style="plain", useOffset=False)
        _legend(ax, loc="best")
    _title(fig, run, "Concentration profiles of free vesicles")
    return fig


def _nice_frames(t, n=5):
    """Indices of at most ``n`` snapshots nearest to round multiples (1, 2,
    2.5 or 5 × 10^k) of the display times ``t``, from 0 to the last."""
    if t.size <= 1 or t[-1] <= 0:
        return list(range(t.size))
    raw = t[-1] / (n - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(f * mag for f in (1, 2, 2.5, 5, 10) if f * mag >= raw * (1 - 1e-9))
    targets = np.arange(0.0, t[-1] * (1 + 1e-9), step)
    return sorted(set(int(np.argmin(np.abs(t - x))) for x in targets))


def _nice_scale(v):
    """A power of ten to divide values up to ``v`` by (1 when they read well as they are)."""
    return 1.0 if not v > 0 or 1e-2 <= v < 1e4 else 10.0 ** (3 * math.floor(math.log10(v) / 3))


def _power_label(scale):
    """'10⁹ ' for 1e9, '' for 1: the factor written into an axis label."""
    if scale == 1:
        return ""
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"10{str(int(round(math.log10(scale)))).translate(sup)} "


def _viridis():
    from matplotlib import colormaps
    return colormaps["viridis"]


# ------------------------------------------------------------- snapshot


def plot_snapshot(run, frame=-1, thickness=None, **_):
    """Cells and vesicles at one snapshot in two slices through the middle
    of the box: a slab across z (top view, x–y) and across y (side view,
    x–z), vesicles coloured by state, cells drawn as their largest section
    within the slab."""
    from matplotlib.collections import PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Patch, Rectangle
    if not run.has_positions:
        raise InputError(f"{run.path}: positions were not stored in this run (snapshot needs them)")
    S = run.n_snapshots
    if S == 0:
        raise InputError(f"{run.path}: no snapshot written yet")
    if not -S <= int(frame) < S:
        raise InputError(f"--frame {frame}: out of range, the run has {S} snapshots (0..{S - 1})")
    i = int(frame) % S
    L = run.box_edges
    c = run.cells
    if thickness is None:  # two cell diameters, or a fifth of the box when cells are big
        rad = float(np.median(c.radii)) if len(c) else 0.1 * float(L.min())
        thickness = min(4.0 * rad, 0.2 * float(L.max()))
    views = [(0, 1, 2), (0, 2, 1)]  # (horizontal, vertical, sliced axis)
    slabs = [(0.5 * (L[a] - thickness), 0.5 * (L[a] + thickness)) for _, _, a in views]
    pos = [[] for _ in views]
    st = [[] for _ in views]
    n_state = np.zeros(len(STATE_NAMES), dtype=np.int64)
    for rows, d in run.iter_vesicles(("position", "state"), frames=i):
        n_state += np.bincount(d["state"], minlength=len(STATE_NAMES))
        for k, (h, v, a) in enumerate(views):
            m = (d["position"][:, a] >= slabs[k][0]) & (d["position"][:, a] < slabs[k][1])
            pos[k].append(d["position"][m][:, (h, v)])
            st[k].append(d["state"][m])
    colors = [_type_color(t) for t in range(len(c.type_names))]
    fig = _figure_grid(L)
    axes = fig.axes
    legend = []
    for k, (ax, (h, v, a)) in enumerate(zip(axes, views)):
        p = np.concatenate(pos[k]) if pos[k] else np.empty((0, 2))
        s_ = np.concatenate(st[k]) if st[k] else np.empty(0, np.int8)
        stride = max(1, -(-p.shape[0] // _MAX_POINTS))
        p, s_ = p[::stride], s_[::stride]
        lo, hi = slabs[k]
        gap = np.maximum(0.0, np.maximum(lo - c.centers[:, a], c.centers[:, a] - hi))
        cut = gap < c.radii
        ax.add_patch(Rectangle((0, 0), L[h], L[v], fill=False, ec="0.3", lw=1))
        for t, name in enumerate(c.type_names):
            m = cut & (c.types == t)
            if m.any():
                r = np.sqrt(c.radii[m] ** 2 - gap[m] ** 2)
                ax.add_collection(PatchCollection(
                    [Circle((x, y), rr) for x, y, rr in zip(c.centers[m, h], c.centers[m, v], r)],
                    facecolor=colors[t], alpha=0.3, edgecolor=colors[t], lw=0.8))
        for name in ("free", "bound", "internalized", "exited", "cleared"):
            m = s_ == STATE_NAMES.index(name)
            if m.any():
                ax.scatter(p[m, 0], p[m, 1], s=2.5, color=STATE_COLORS[name], lw=0, rasterized=True)
        ax.set_xlim(0, L[h])
        ax.set_ylim(0, L[v])
        ax.set_aspect("equal")
        ax.set_xlabel(f"{'xyz'[h]} [µm]")
        ax.set_ylabel(f"{'xyz'[v]} [µm]")
        more = f", 1 in {stride} vesicles drawn" if stride > 1 else ""
        ax.set_title(f"{'top' if a == 2 else 'side'} view: slice {lo:.4g} ≤ {'xyz'[a]} < {hi:.4g} µm{more}",
                     fontsize=9)
    for t, name in enumerate(c.type_names):
        n_t = int(np.sum(c.types == t))
        if n_t:
            legend.append(Patch(facecolor=colors[t], edgecolor=colors[t], alpha=0.4,
                                label=f"{name} cell{' (donor)' if name in run.donor_types and 'donor' not in name else ''}"
                                      f" ({n_t} in all)"))
    for name in ("free", "bound", "internalized", "exited", "cleared"):
        n_s = int(n_state[STATE_NAMES.index(name)])
        if n_s == 0:
            continue
        label = f"{name} vesicle ({n_s:,} {'in the sample' if run.sampled else 'in all'})"
        legend.append(Line2D([], [], ls="", marker="o", ms=5, color=STATE_COLORS[name], label=label))
    fig.legend(handles=legend, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    note = f"; positions stored for a sample of {run.n_stored:,}" if run.sampled else ""
    _title(fig, run, f"Snapshot at t = {run.snapshot_times[i]:g} s: cells and vesicles "
                     f"(coloured by state) in slices through the box middle{note}")
    return fig


def _figure_grid(L):
    """A figure with the x–y view above the x–z view, heights to scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    width = 9.0
    h_top = 5.6 * L[1] / L[0]
    h_side = 5.6 * L[2] / L[0]
    fig = Figure(figsize=(width, min(14.0, max(4.0, h_top + h_side + 1.6))), layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(2, 1, height_ratios=[L[1], L[2]])
    return fig


# ------------------------------------------------------------- transfer


def plot_transfer(run, time=None, **_):
    """Who sends what to whom (:class:`exodiff.analysis.Transfer`, vesicles
    taken up): donor type × recipient type counts with each donor type's
    shares (left), and the sender → recipient distance by species (right)."""
    from matplotlib.colors import LogNorm
    tr = run.transfer(time=time, kind="taken_up")
    what = f"Transfer: vesicles taken up by t = {tr.time:g} s, by donor and recipient"
    if not len(tr.events):
        fig, (ax,) = _figure()
        ax.text(0.5, 0.5, "no secreted vesicle taken up by a cell yet", ha="center", va="center")
        ax.set_axis_off()
        _title(fig, run, what)
        return fig
    m = tr.type_matrix
    senders = m.index[m.sum(axis=1) > 0]
    receivers = m.columns[m.sum(axis=0) > 0]
    m = m.loc[senders, receivers]
    counts = m.to_numpy()
    fig, (ax, ax2) = _figure(ncols=2, width=6.0)
    im = ax.imshow(np.where(counts > 0, counts, np.nan), cmap="viridis",
                   norm=LogNorm(vmin=1, vmax=max(2, counts.max())), aspect="auto")
    share = counts / counts.sum(axis=1, keepdims=True)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{counts[i, j]:,}\n{100 * share[i, j]:.3g} %", ha="center", va="center",
                    fontsize=8, color="white" if counts[i, j] < counts.max() ** 0.5 else "black")
    ax.set_xticks(range(len(receivers)), list(receivers), rotation=30, ha="right")
    ax.set_yticks(range(len(senders)), list(senders))
    ax.set_xlabel("recipient cell type [counts; % of the donor type's]")
    ax.set_ylabel("donor cell type")
    fig.colorbar(im, ax=ax, label="vesicles taken up (log scale)")
    d = tr.events["distance"].to_numpy()
    edges = np.linspace(0.0, max(float(d.max()), 1e-9) * 1.0001, 30)
    for k, name in enumerate(run.species_names):
        sel = (tr.events["species"] == name).to_numpy()
        if sel.any():
            ax2.hist(d[sel], edges, histtype="step", lw=2, color=_type_color(k),
                     label=f"{name} ({sel.sum():,})")
    ax2.set_yscale("log")
    ax2.set_xlabel("sender → recipient centre distance [µm]")
    ax2.set_ylabel("vesicles taken up")
    if math.isfinite(tr.range_um):
        ax2.set_title(f"autocrine {100 * tr.autocrine_fraction:.3g} %; uptake decay length "
                      f"{tr.range_um:.3g} µm", fontsize=9)
    _legend(ax2)
    _title(fig, run, what)
    return fig


# ------------------------------------------------------------- delivery, engagement

# Where the cargo is (bottom to top in the delivery figure): the functional
# dose first, so its height reads off the axis.  Bound and endosome take the
# state colours; the cytosol two greens, degraded grey.
_DESTINATION_STYLE = (("escaped", STATE_COLORS["delivered"], "cytosol, by endosomal escape"),
                      ("fused", "#44AA99", "cytosol, by membrane fusion"),
                      ("endosome", STATE_COLORS["internalized"], "in endosomes"),
                      ("bound", STATE_COLORS["bound"], "bound at the periphery"),
                      ("degraded", STATE_COLORS["degraded"], "degraded"))
_DONOR_DASHES = ("-", "--", ":", "-.")


def _over_time(ax, t, unit, ylabel, title):
    """Axes of a quantity against time t [unit] from 0 up, with a title."""
    ax.set_xlabel(f"time [{unit}]")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    ax.set_ylim(bottom=0)


def _cells(n):
    return f"{n:,} cell" + ("" if n == 1 else "s")


def _amount(x):
    """A count for a title: whole with thousands separators from 100 up."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _recipient_types(run, taken_up):
    """Indices of the cell types to draw: those that took something up,
    non-donor types first (at most four)."""
    names = run.cells.type_names
    keep = [k for k in range(len(names)) if taken_up[:, k].max(initial=0) > 0]
    keep.sort(key=lambda k: names[k] in run.donor_types)
    return keep[:4]


def plot_delivery(run, **_):
    """Where the cargo is over time, per recipient cell type (one panel
    each; mean per cell of the type, stacked by destination: cytosol by
    escape and by fusion, endosome, bound, degraded), and the functional
    dose (cytosol) by donor type."""
    d = run.delivery()
    unit, scale = _time_unit(d.times[-1] if d.times.size else 0.0)
    t = d.times / scale
    total = sum(d.by_type[name] for name, _, _ in _DESTINATION_STYLE)
    shown = _recipient_types(run, total)
    n = len(shown) + 1
    ncols = 2 if n == 4 else min(3, n)
    fig, axes = _figure(ncols=ncols, nrows=-(-n // ncols), width=5.0, height=4.0)
    for ax in axes[n:]:
        ax.set_axis_off()
    if not shown:
        axes[0].text(0.5, 0.5, "no vesicle taken up by a cell yet", ha="center", va="center")
        for ax in axes:
            ax.set_axis_off()
        _title(fig, run, "Delivery: where the cargo is")
        return fig
    for ax, k in zip(axes, shown):
        layers = [d.mean_per_cell[name][:, k] for name, _, _ in _DESTINATION_STYLE]
        ax.stackplot(t, *layers, colors=[c for _, c, _ in _DESTINATION_STYLE],
                     labels=[label for _, _, label in _DESTINATION_STYLE], alpha=0.9)
        cargo = ", ".join(f"{name} {_amount(d.cargo['cytosol'][-1, k, j] / d.n_cells[k])}"
                          for j, name in enumerate(d.cargo_names))
        _over_time(ax, t, unit, "vesicles per cell (mean over the type)",
                   f"{d.type_names[k]} ({_cells(d.n_cells[k])}): in the cytosol at the end, per cell "
                   f"{d.mean_per_cell['cytosol'][-1, k]:.3g} vesicles" + (f"\n(cargo {cargo})" if cargo else ""))
    handles, labels = axes[0].get_legend_handles_labels()  # top band first, as stacked
    axes[0].legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left")
    ax = axes[len(shown)]
    donors = [j for j in range(len(d.donor_names)) if d.cytosol_by_donor[:, shown, j].max(initial=0) > 0]
    for k in shown:
        for m, j in enumerate(donors):
            if not d.cytosol_by_donor[:, k, j].any():
                continue
            per_cell = d.cytosol_by_donor[:, k, j] / max(1, d.n_cells[k])
            donor = "present at t = 0" if j == len(d.donor_names) - 1 else d.donor_names[j]
            ax.plot(t, per_cell, color=_type_color(k), ls=_DONOR_DASHES[m % len(_DONOR_DASHES)], lw=2,
                    label=f"{d.type_names[k]} ← {donor}")
    if not donors:
        ax.text(0.5, 0.5, "no cargo in any cytosol yet\n(k_escape = k_fuse = 0?)", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
    _over_time(ax, t, unit, "vesicles in the cytosol per cell", "Functional dose by donor type (recipient ← donor)")
    _legend(ax, loc="upper left")
    _title(fig, run, "Delivery: where the vesicles taken up by each cell type are (their cargo with "
                     "them), mean per cell")
    return fig


def plot_engagement(run, bins=30, **_):
    """Engagement at the periphery: bound vesicle-seconds per cell since
    the start, by cell type (mean, and the 10–90 % range over the cells),
    and the distribution of the total time each vesicle spent bound, as the
    fraction of vesicles bound longer than t (log scale: a straight line
    for one exponential dwell)."""
    e = run.engagement(bins=bins)
    unit, scale = _time_unit(e.times[-1] if e.times.size else 0.0)
    t = e.times / scale
    fig, (ax, ax2) = _figure(ncols=2, width=5.6)
    engaged = [k for k in range(len(e.type_names)) if e.by_type[:, k].max(initial=0) > 0]
    for k in engaged:
        x = e.bound_seconds[:, run.cells.types == k]
        lo, hi = np.percentile(x, [10, 90], axis=1)
        c = _type_color(k)
        ax.fill_between(t, lo, hi, color=c, alpha=0.2, lw=0)
        ax.plot(t, e.mean_per_cell[:, k], color=c, lw=2,
                label=f"{e.type_names[k]} ({_cells(e.n_cells[k])}): {_amount(e.mean_per_cell[-1, k])} "
                      f"vesicle-s per cell at the end")
    if not engaged:
        ax.text(0.5, 0.5, "no vesicle bound to a cell yet", ha="center", va="center", transform=ax.transAxes)
    _over_time(ax, t, unit, "bound vesicle-seconds per cell since the start",
               "Per cell: ∫ bound vesicles dt (line: mean; band: 10–90 % of cells)")
    _legend(ax, loc="upper left")
    d_unit, d_scale = _time_unit(float(e.bin_edges[-1]))
    codes = e.durations["type"].cat.codes.to_numpy() if len(e.durations) else np.zeros(0, int)
    for k, row in e.summary.iterrows():
        if row.vesicles:
            x = np.sort(e.durations["bound_duration"].to_numpy()[codes == k]) / d_scale
            longer = 1.0 - np.arange(1, x.size + 1) / x.size  # fraction bound longer than x
            ax2.step(np.r_[0.0, x], np.r_[1.0, longer], where="post", color=_type_color(k), lw=2,
                     label=f"first bound to {row.type}: {row.vesicles:,} vesicles, mean "
                           f"{row['mean'] / d_scale:.3g} {d_unit}")
    if not len(e.durations):
        ax2.text(0.5, 0.5, "no vesicle has bound yet", ha="center", va="center", transform=ax2.transAxes)
    else:
        ax2.set_yscale("log")
    ax2.set_xlim(left=0)
    ax2.set_xlabel(f"total time bound per vesicle, t [{d_unit}]")
    ax2.set_ylabel("fraction of the vesicles bound longer than t")
    ax2.set_title("Per vesicle, " + (f"as of t = {format_time(e.fate_time)}" if math.isfinite(e.fate_time)
                                     else "no snapshot yet")
                  + (" (still bound: time so far)" if e.notes else ""), fontsize=9)
    _legend(ax2, loc="upper right")
    _title(fig, run, "Engagement at the periphery: how long vesicles stay bound")
    return fig


# ------------------------------------------------------------- entry point


_PLOTTERS = {"uptake": plot_uptake, "dose": plot_dose, "range": plot_range, "fpt": plot_fpt,
             "msd": plot_msd, "profile": plot_profile, "snapshot": plot_snapshot,
             "transfer": plot_transfer, "delivery": plot_delivery, "engagement": plot_engagement}


def figure(run, kind, **options):
    """The figure of ``kind`` (one of KINDS) for an open run."""
    if kind not in _PLOTTERS:
        raise InputError(f"--kind {kind!r}: unknown; expected one of {', '.join(KINDS)}")
    return _PLOTTERS[kind](run, **options)


def plot(run, kind, path, dpi=130, **options):
    """Draw ``kind`` for ``run`` (opened by :func:`exodiff.open_run`) and
    save it to ``path`` (format from the suffix: .png, .pdf, .svg).  Returns
    the path."""
    fig = figure(run, kind, **options)
    fig.savefig(path, dpi=dpi)
    return path
