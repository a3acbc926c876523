"""The human summary of a run file that ``exodiff info`` shows."""
import numpy as np

from ..errors import InputError
from ..formats import format_time, one_line
from ..kernels.constants import STATE_NAMES


def summary_text(run):
    """Multi-line human summary of an open run (``exodiff info``).
    InputError when the file turns out damaged (data that cannot be read)."""
    try:
        return _summary_text(run)
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise InputError(f"{run.path}: damaged run file ({one_line(e)})") from None


def _summary_text(run):
    S, T, M = run.n_snapshots, run.n_observations, len(run.cells)
    lines = [f"{run.path}",
             f"  exodiff {run.exodiff_version}, backend {run.backend}"
             + (f" on {run.device}" if run.device else "")
             + f", seed {run.seed}, dt {format_time(run.dt)}"]
    stored = "positions not stored" if not run.has_positions else "positions stored"
    if run.n_stored != run.n_vesicles:
        stored += f" for a sample of {run.n_stored}"
    lines.append(f"  vesicles: {run.n_vesicles} in the pool ({stored});"
                 f" species: {', '.join(run.species_names) or '-'}")
    per_type = ", ".join(f"{name} {int(np.sum(run.cells.types == k))}"
                         for k, name in enumerate(run.cells.type_names))
    lines.append(f"  cells: {M}" + (f" ({per_type})" if M else ""))
    times = np.concatenate([run.snapshot_times, run.observation_times])
    covered = (f"{format_time(times.min())} to {format_time(times.max())}"
               if times.size else "nothing yet")
    lines.append(f"  time covered: {covered}; {S} snapshots, {T} observations")
    if not run.complete:
        last = max([int(x[-1]) for x in (run.snapshot_steps, run.observation_steps) if x.size],
                   default=0)
        lines.append(f"  incomplete: stopped after step {last} of {run.n_steps} (interrupted, "
                     f"or still running); continue it with "
                     f"{run.resume_command()}")
    if T == 0:
        lines.append("  no observations")
        return "\n".join(lines)
    t_end = format_time(run.observation_times[-1])
    lines.append(f"  counts at t = {t_end}: "
                 + ", ".join(f"{s} {int(run.counts[s][-1])}" for s in STATE_NAMES))
    lines.append(f"  uptake per cell type at t = {t_end} (bound, internalized; cargo "
                 + ("in endosomes; in the cytosol, degraded):" if run.has_destinations else "delivered):"))
    last_cargo = run.cargo_per_cell[-1]
    if run.has_destinations:  # where the rest went (files since the fates after uptake)
        delivered = run.delivered_by_donor[-1].sum(axis=(1, 2))
        degraded = run.per_cell_species("degraded")[-1].sum(axis=1)
    for k, name in enumerate(run.cells.type_names):
        mask = run.cells.types == k
        b = int(run.bound_per_cell[-1, mask].sum())
        i = int(run.internalized_per_cell[-1, mask].sum())
        cargo = "".join(f", {c} {last_cargo[mask, j].sum():g}"
                        for j, c in enumerate(run.cargo_names))
        role = " (donor)" if name in run.donor_types else ""
        fates = (f"; in the cytosol {int(delivered[mask].sum())}, degraded {int(degraded[mask].sum())}"
                 if run.has_destinations else "")
        lines.append(f"    {name}{role}: bound {b}, internalized {i}{cargo}{fates}")
    return "\n".join(lines)
