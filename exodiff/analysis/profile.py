"""Concentration profiles of the vesicles: along an axis of the box or
radially around cells (:class:`Profile`)."""
import math

import numpy as np

from ..errors import InputError
from ..kernels.constants import STATE_NAMES
from ..units import argument
from .common import Analysis, bins_setting, run_box, type_index


def _slab_sphere_volume(a, b, c, R):
    """Volume [µm³] of the sphere (centre coordinate c, radius R) between the
    planes a < b along one axis: π ∫ (R² − (z−c)²) dz over the overlap."""
    lo = np.maximum(a, c - R)
    hi = np.minimum(b, c + R)
    v = np.pi * (R * R * (hi - lo) - ((hi - c) ** 3 - (lo - c) ** 3) / 3.0)
    return np.where(hi > lo, v, 0.0)


def _fibonacci_sphere(n):
    """n nearly uniform unit vectors [n,3] (golden-angle spiral)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (3.0 - math.sqrt(5.0)) * k
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


class Profile(Analysis):
    """Vesicle concentration profile along an axis, or radially around cells.

    axis "x"|"y"|"z" (default "z": height in a well): vesicles of the chosen
    states per slab, divided by the slab's free volume: box cross-section ×
    width − the volume of cells inside the slab (exact sphere–slab
    integrals).  cell = index, list of indices or type name: binned by the
    distance s from the cell's membrane (s = |r − c| − R, minimum image on
    periodic axes), averaged over the cells: Σ counts / Σ shell volumes.  A
    shell's volume counts only what lies in the domain and outside the other
    cells (quadrature over ``directions`` unit vectors × ``radial_points``
    radii per bin; exact for a shell inside the domain and free of cells).

    Settings: axis or cell; bins (number, or edges [µm]); range_max [µm]
    (radial: largest s, default a quarter of the shortest box edge);
    states (names; default ("free",): vesicles in the medium); frames
    (snapshot index, list of indices, or None: the last snapshot; several
    are averaged).

    Results (B bins, F frames): bin_edges [B+1] µm (axis coordinate, or
    s); bin_centers [B]; counts_by_frame [F,B] (stored vesicles), counts [B]
    (their sum); volume [B] µm³ (per frame, summed over the cells);
    concentration_by_frame [F,B] and concentration [B] (mean over the
    frames) in vesicles/µm³, scaled by N/n when a sample was stored;
    concentration_per_ml [B] (×10¹²); times [F] s of the frames used.
    """

    def __init__(self, axis="z", cell=None, bins=20, range_max=None, states=("free",), frames=None,
                 directions=1024, radial_points=8):
        if cell is None and axis not in ("x", "y", "z"):
            raise InputError(f"axis: {axis!r}, expected 'x', 'y' or 'z'")
        self.axis, self.cell, self.bins = axis, cell, bins_setting(bins)
        self.range_max = argument(range_max, "um", "range_max")
        self.states = (states,) if isinstance(states, str) else tuple(states)
        for s in self.states:
            if s not in STATE_NAMES:
                raise InputError(f"states: {s!r}, expected some of {', '.join(STATE_NAMES)}")
        self.frames, self.directions, self.radial_points = frames, int(directions), int(radial_points)
        self.concentration = None

    def _cells(self, run):
        if isinstance(self.cell, str):
            k = type_index(run, self.cell)
            idx = np.nonzero(run.cells.types == k)[0]
            if idx.size == 0:
                raise InputError(f"{run.path}: no cell of type {self.cell!r}")
            return idx
        idx = np.atleast_1d(np.asarray(self.cell, dtype=np.int64))
        M = len(run.cells)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= M:
            raise InputError(f"{run.path}: cell {self.cell} out of range (there are {M} cells)")
        return idx

    def compute(self, run):
        if not run.has_positions:
            raise InputError(f"{run.path}: positions were not stored in this run (profiles need them)")
        S = run.n_snapshots
        if S == 0:
            raise InputError(f"{run.path}: no snapshot written yet")
        frames = [S - 1] if self.frames is None else (
            [int(self.frames) % S] if np.ndim(self.frames) == 0 else sorted({int(f) % S for f in self.frames}))
        self.times = run.snapshot_times[frames]
        state_ids = np.array([STATE_NAMES.index(s) for s in self.states])
        box = run.box_edges
        radial = self.cell is not None
        if radial:
            cells = self._cells(run)
            rmax = self.range_max if self.range_max is not None else 0.25 * float(box.min())
            edges = (np.linspace(0.0, rmax, int(self.bins) + 1) if np.ndim(self.bins) == 0
                     else np.asarray(self.bins, dtype=np.float64))
        else:
            a = "xyz".index(self.axis)
            edges = (np.linspace(0.0, box[a], int(self.bins) + 1) if np.ndim(self.bins) == 0
                     else np.asarray(self.bins, dtype=np.float64))
        B, F = edges.size - 1, len(frames)
        counts = np.zeros((F, B), dtype=np.int64)
        for rows, d in run.iter_vesicles(("position", "state"), frames=frames):
            for f in range(F):
                p = d["position"][f][np.isin(d["state"][f], state_ids)]  # [k, 3]
                if radial:
                    counts[f] += self._radial_counts(run, cells, p, edges)
                else:
                    counts[f] += np.histogram(p[:, a], bins=edges)[0]
        volume = self._radial_volume(run, cells, edges) if radial else self._slab_volume(run, a, edges)
        self.bin_edges = edges
        self.bin_centers = 0.5 * (edges[1:] + edges[:-1])
        self.counts_by_frame = counts
        self.counts = counts.sum(axis=0)
        self.volume = volume
        scale = run.n_vesicles / run.n_stored if run.n_stored else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            self.concentration_by_frame = np.where(volume > 0, counts * scale / volume, np.nan)
            self.concentration = np.where(volume > 0, self.counts * scale / (volume * F), np.nan)
        self.concentration_per_ml = self.concentration * 1e12
        return self

    @staticmethod
    def _radial_counts(run, cells, points, edges):
        """Histogram over ``edges`` of the distance s from the membrane of
        each of ``cells`` to each of ``points`` [k, 3] within reach of it."""
        box = run_box(run)
        centers, radii = run.cells.centers, run.cells.radii
        counts = np.zeros(edges.size - 1, dtype=np.int64)
        if points.shape[0] == 0:
            return counts
        # A point beyond R + edges[-1] of a cell's centre lies past the last bin.
        reach = radii[cells] + float(edges[-1])
        near = box.tree(points).query_ball_point(box.wrap(centers[cells]), reach * (1 + 1e-12))
        for c, idx in zip(cells, near):
            if not idx:
                continue
            dr = box.minimum_image(points[np.sort(np.asarray(idx, dtype=np.int64))] - centers[c])
            s = np.sqrt(np.einsum("ij,ij->i", dr, dr)) - radii[c]
            counts += np.histogram(s, bins=edges)[0]
        return counts

    @staticmethod
    def _slab_volume(run, a, edges):
        box = run.box_edges
        area = float(np.prod(np.delete(box, a)))
        lo, hi = np.clip(edges[:-1], 0, box[a]), np.clip(edges[1:], 0, box[a])
        vol = area * np.maximum(hi - lo, 0.0)
        c, R = run.cells.centers[:, a], run.cells.radii
        shifts = [-box[a], 0.0, box[a]] if run_box(run).periodic[a] else [0.0]
        for sh in shifts:  # a cell straddling a periodic face counts on both sides
            vol -= _slab_sphere_volume(lo[:, None], hi[:, None], (c + sh)[None, :], R[None, :]).sum(axis=1)
        return vol

    def _radial_volume(self, run, cells, edges):
        box = run_box(run)
        centers, radii = run.cells.centers, run.cells.radii
        u = _fibonacci_sphere(self.directions)  # [D,3]
        B, P = edges.size - 1, self.radial_points
        vol = np.zeros(B)
        for c in cells:
            R = radii[c]
            # P sub-shells per bin, each sampled at its volume-median radius
            s_edges = np.concatenate([np.linspace(edges[b], edges[b + 1], P + 1)[:-1] for b in range(B)]
                                     + [edges[-1:]])
            r_edges = R + s_edges
            r_mid = np.cbrt(0.5 * (r_edges[1:] ** 3 + r_edges[:-1] ** 3))
            w = 4.0 / 3.0 * np.pi * (r_edges[1:] ** 3 - r_edges[:-1] ** 3) / u.shape[0]  # [B*P]
            rel = r_mid[:, None, None] * u[None, :, :]  # [B*P, D, 3] from the centre
            ok = np.ones(rel.shape[:2], dtype=bool)
            for ax in range(3):
                if not box.periodic[ax]:
                    x = centers[c, ax] + rel[..., ax]
                    ok &= (x >= 0) & (x <= box.lengths[ax])
            reach = R + edges[-1]
            dc = box.minimum_image(centers - centers[c])
            dist = np.sqrt(np.einsum("ij,ij->i", dc, dc))
            near = np.nonzero((dist < reach + radii) & (np.arange(len(radii)) != c))[0]
            for j in near:
                # only the sample points that can fall in cell j: radii within
                # R_j of its distance, directions in the cone it subtends
                d, Rj = dist[j], radii[j]
                ri = np.nonzero(np.abs(r_mid - d) < Rj)[0]
                if d > Rj:
                    di = np.nonzero(u @ (dc[j] / d) >= math.sqrt(1.0 - (Rj / d) ** 2) - 1e-12)[0]
                else:
                    di = np.arange(u.shape[0])
                if ri.size == 0 or di.size == 0:
                    continue
                sub = rel[np.ix_(ri, di)] - dc[j]
                hit = np.einsum("...k,...k->...", sub, sub) < Rj * Rj
                block = ok[np.ix_(ri, di)]
                ok[np.ix_(ri, di)] = block & ~hit
            vol += (ok.sum(axis=1) * w).reshape(B, P).sum(axis=1)
        return vol
