"""Cell layouts: static spherical cells placed in the domain (DESIGN §1, §4).

``make_cells(cells, domain_size, cell_type_names, seed)`` turns the ``[cells]``
config section (lengths already in µm) into a :class:`Cells` table.  Layouts:

``random``     random sequential packing (non-overlapping) in the whole box
``monolayer``  cells resting on the floor ``z = floor + R``, random in x, y
``spheroid``   random packing inside a ball (a tumour-like spheroid)
``list``       explicit ``centers`` with ``radius``/``radii`` and types
``file``       CSV (``x,y,z,radius,type``) or HDF5 (datasets x, y, z, radius, type)

Every layout is validated the same way (positive finite radii, inside the
domain, no overlaps); problems raise :class:`~exodiff.errors.ConfigError`.

Determinism: all randomness comes from ``numpy.random.Philox`` keyed by
``seed + 0x5EED``, one jumped sub-stream each for radii, positions and types,
so the same seed gives identical cells on every machine.
"""
import csv
import math
import os
from dataclasses import dataclass

import numpy as np

from . import locality
from .errors import ConfigError
from .kernels.jit import njit

SEED_OFFSET = 0x5EED
# Log-normal radii are truncated at ±3 geometric SDs: the far tail would give
# the occasional cell larger than the box (or than the rest by far), which no
# packer can place and no biologist means.
RADIUS_TAIL_SDS = 3.0
# Default spheroid: cell volume / ball volume.
SPHEROID_PACKING = 0.35
# Random sequential packing gives up on a cell after this many rejected
# positions, and on the whole packing after TOTAL_ATTEMPTS_PER_CELL × N
# positions (at least MIN_TOTAL_ATTEMPTS), so an impossible request fails in
# seconds instead of hanging.
MAX_ATTEMPTS_PER_CELL = 200_000
TOTAL_ATTEMPTS_PER_CELL = 5_000
MIN_TOTAL_ATTEMPTS = 20_000_000
# Attempts per batch of uniforms handed to the packer (None: max(4096, 4N)).
# The result does not depend on it; tests set it small to prove that.
PACK_BATCH = None
# Relative slack on the overlap / inside checks, so cells that touch exactly
# (e.g. written to a CSV with rounding) are not rejected over round-off.
REL_TOL = 1e-9


@dataclass
class Cells:
    """Static spherical cells.

    centers    float64[M, 3]  centre positions [µm]
    radii      float64[M]     radii [µm]
    types      int32[M]       index into ``type_names``
    type_names list[str]      cell-type names (the config's ``cell_types``)
    """
    centers: np.ndarray
    radii: np.ndarray
    types: np.ndarray
    type_names: list

    @property
    def count(self):
        return int(self.radii.shape[0])

    def __len__(self):
        return self.count


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------

def make_cells(cells, domain_size, cell_type_names, seed):
    """Build and validate the cells described by the ``[cells]`` section.

    cells            config object with attributes ``layout, count, radius
                     (.median, .gsd), types (dict name→fraction), centers,
                     radii, cell_types_list, path, center, spheroid_radius,
                     floor, gap`` (lengths in µm)
    domain_size      (Lx, Ly, Lz) [µm]
    cell_type_names  list of the defined cell-type names; ``Cells.types``
                     indexes into it
    seed             int run seed
    Returns :class:`Cells`.  Raises ConfigError on impossible or invalid
    layouts.
    """
    box = np.asarray(domain_size, dtype=np.float64).reshape(3)
    names = list(cell_type_names)
    radius_rng, pack_rng, type_rng = _streams(seed)

    layout = getattr(cells, "layout", "random")
    gap = float(getattr(cells, "gap", 0.0) or 0.0)
    if not (gap >= 0.0 and math.isfinite(gap)):
        raise ConfigError("cells.gap", f"gap {gap} µm must be a finite number ≥ 0")
    label = None

    if layout in ("random", "monolayer", "spheroid"):
        n = int(cells.count)
        if n < 0:
            raise ConfigError("cells.count", f"count {n} must be ≥ 0")
        radii = _draw_radii(cells.radius, n, radius_rng)
        if layout == "random":
            centers = _layout_random(radii, box, gap, pack_rng)
        elif layout == "monolayer":
            centers = _layout_monolayer(radii, box, gap, float(getattr(cells, "floor", 0.0) or 0.0), pack_rng)
        else:
            centers = _layout_spheroid(cells, radii, box, gap, pack_rng)
        types = _types_from_fractions(cells.types, n, names, type_rng)
    elif layout == "list":
        centers, radii, types = _layout_list(cells, names, radius_rng, type_rng)
    elif layout == "file":
        centers, radii, types, label = _layout_file(cells.path, names)
    else:
        raise ConfigError("cells.layout", f"unknown layout {layout!r}; expected random, monolayer, spheroid, list or file")

    validate_cells(centers, radii, box, label=label)
    return Cells(centers=np.ascontiguousarray(centers, dtype=np.float64),
                 radii=np.ascontiguousarray(radii, dtype=np.float64),
                 types=np.ascontiguousarray(types, dtype=np.int32),
                 type_names=names)


def drawn_radii_and_types(cells, cell_type_names, seed):
    """(radii float64[M] [µm], types int32[M]) that :func:`make_cells` gives
    these cells, drawn from the same streams but without placing them
    (cheap: what ``exodiff check`` reports and sizes its advice on).  Layout
    ``file`` reads the file."""
    names = list(cell_type_names)
    radius_rng, _, type_rng = _streams(seed)
    layout = getattr(cells, "layout", "random")
    if layout == "list":
        _, radii, types = _layout_list(cells, names, radius_rng, type_rng)
    elif layout == "file":
        _, radii, types, _ = _layout_file(cells.path, names)
    else:
        n = int(cells.count)
        radii = _draw_radii(cells.radius, n, radius_rng)
        types = _types_from_fractions(cells.types, n, names, type_rng) if n else np.zeros(0, np.int32)
    return np.asarray(radii, dtype=np.float64), np.asarray(types, dtype=np.int32)


def _streams(seed):
    """The independent Philox streams for radii, positions and types."""
    key = (int(seed) + SEED_OFFSET) % (1 << 128)
    return (np.random.Generator(np.random.Philox(key=key)),
            np.random.Generator(np.random.Philox(key=key).jumped(1)),
            np.random.Generator(np.random.Philox(key=key).jumped(2)))


# --------------------------------------------------------------------------
# Radii and types
# --------------------------------------------------------------------------

def _draw_radii(radius, n, rng):
    """n radii [µm]: all ``radius.median`` when gsd == 1, else log-normal with
    that median and geometric SD, truncated at ±RADIUS_TAIL_SDS (resampled)."""
    median, gsd = _median_gsd(radius)
    if n == 0:
        return np.zeros(0)
    if gsd == 1.0:
        return np.full(n, median)
    sigma = math.log(gsd)
    z = rng.standard_normal(n)
    bad = np.abs(z) > RADIUS_TAIL_SDS
    while bad.any():  # resample the tail: exact truncated normal, terminates fast
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > RADIUS_TAIL_SDS
    return median * np.exp(sigma * z)


def _median_gsd(radius):
    if hasattr(radius, "median"):
        median, gsd = float(radius.median), float(getattr(radius, "gsd", 1.0) or 1.0)
    else:
        median, gsd = float(radius), 1.0
    if not (median > 0.0 and math.isfinite(median)):
        raise ConfigError("cells.radius", f"radius {median} µm must be positive and finite")
    if not (gsd >= 1.0 and math.isfinite(gsd)):
        raise ConfigError("cells.radius", f"gsd {gsd} must be a finite number ≥ 1 (1 = all cells equal)")
    return median, gsd


def type_counts(fractions, n):
    """Exact per-type counts for n cells from fractions (largest remainder:
    floor(f·n) each, the rest to the largest fractional parts, ties to the
    earlier type).  Returns int64[len(fractions)] summing to n."""
    f = np.asarray(fractions, dtype=np.float64)
    f = f / f.sum()
    exact = f * n
    counts = np.floor(exact).astype(np.int64)
    rest = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def _types_from_fractions(types, n, names, rng):
    """int32[n] type indices with exact counts by fraction, shuffled."""
    if isinstance(types, str):
        types = {types: 1.0}
    if not types:
        if len(names) == 1:
            types = {names[0]: 1.0}
        else:
            raise ConfigError("cells.types", f"give the fraction of each cell type, e.g. {{ {names[0] if names else 'target'} = 1.0 }}")
    idx, fr = [], []
    for name, frac in types.items():
        if name not in names:
            raise ConfigError("cells.types", f"unknown cell type {name!r}; defined types: {', '.join(names) or 'none'}")
        frac = float(frac)
        if not (frac >= 0.0 and math.isfinite(frac)):
            raise ConfigError("cells.types", f"fraction {frac} of {name!r} must be ≥ 0")
        idx.append(names.index(name))
        fr.append(frac)
    if sum(fr) <= 0.0:
        raise ConfigError("cells.types", "fractions must not all be 0")
    counts = type_counts(fr, n)
    out = np.repeat(np.asarray(idx, dtype=np.int32), counts)
    return rng.permutation(out).astype(np.int32)


# --------------------------------------------------------------------------
# Packing layouts
# --------------------------------------------------------------------------

def _layout_random(radii, box, gap, rng):
    """Centres [µm] for cells anywhere in the box, R ≤ x ≤ L − R per axis."""
    n = radii.shape[0]
    if n == 0:
        return np.zeros((0, 3))
    rmax = float(radii.max())
    for a, ax in enumerate("xyz"):
        if 2.0 * rmax > box[a]:
            raise ConfigError("cells.radius", f"a cell of radius {rmax:.4g} µm does not fit in the domain ({ax} size {box[a]:.4g} µm)")
    lo = radii[:, None] * np.ones(3)
    hi = box[None, :] - radii[:, None]
    return _pack(radii, lo, hi, None, box, gap, rng, "the " + _box_str(box) + " µm box", _box_volume(box))


def _layout_monolayer(radii, box, gap, floor, rng):
    """Centres [µm] for cells resting on the floor: z = floor + R, x, y random."""
    n = radii.shape[0]
    if n == 0:
        return np.zeros((0, 3))
    rmax = float(radii.max())
    if not (floor >= 0.0 and floor + 2.0 * rmax <= box[2]):
        raise ConfigError("cells.floor", f"floor z = {floor:.4g} µm puts cells of radius up to {rmax:.4g} µm outside the domain (z from 0 to {box[2]:.4g} µm)")
    for a, ax in enumerate("xy"):
        if 2.0 * rmax > box[a]:
            raise ConfigError("cells.radius", f"a cell of radius {rmax:.4g} µm does not fit in the domain ({ax} size {box[a]:.4g} µm)")
    lo = np.empty((n, 3))
    hi = np.empty((n, 3))
    lo[:, :2] = radii[:, None]
    hi[:, :2] = box[None, :2] - radii[:, None]
    lo[:, 2] = hi[:, 2] = floor + radii  # lo == hi: the packer keeps z fixed
    # The floor area (not the volume) is what fills up, so report the
    # area fraction covered by the cells' footprints.
    return _pack(radii, lo, hi, None, box, gap, rng,
                 f"the {box[0]:.4g}×{box[1]:.4g} µm floor", box[0] * box[1], dim=2)


def _layout_spheroid(cells, radii, box, gap, rng):
    """Centres [µm] packed in a ball: |c − centre| + R ≤ spheroid_radius."""
    n = radii.shape[0]
    center = getattr(cells, "center", None)
    center = box / 2.0 if center is None else np.asarray(center, dtype=np.float64).reshape(3)
    rs = getattr(cells, "spheroid_radius", None)
    median, _ = _median_gsd(cells.radius)
    if rs is None:
        # Centres of cells of radius ≤ R_max must lie within rs − R_max of the
        # ball centre; size that core so the cells fill SPHEROID_PACKING of
        # it: rs = R_max + (Σ R³ / φ)^(1/3).  (Sizing the whole ball at φ —
        # rs = R (n/φ)^(1/3) — is beyond what random sequential packing
        # reaches once the wall's excluded shell is counted; this gives a
        # cell volume fraction of the ball of ≈ 0.29 at 2000 cells, 0.32 at 10⁴.)
        rmax = float(radii.max()) if n else median
        rs = rmax + (float(np.sum(radii ** 3)) / SPHEROID_PACKING) ** (1.0 / 3.0) if n else median
        how = f"the default spheroid radius {rs:.4g} µm (for {n} cells)"
    else:
        rs = float(rs)
        how = f"spheroid radius {rs:.4g} µm"
    if not (rs > 0.0 and math.isfinite(rs)):
        raise ConfigError("cells.spheroid_radius", f"spheroid radius {rs} µm must be positive and finite")
    for a, ax in enumerate("xyz"):
        if center[a] - rs < -REL_TOL * box[a] or center[a] + rs > box[a] * (1 + REL_TOL):
            raise ConfigError("cells.spheroid_radius",
                              f"{how} around centre ({_vec_str(center)}) µm does not fit in the domain "
                              f"({ax} from 0 to {box[a]:.4g} µm); give a smaller cells.spheroid_radius or a larger domain")
    if n == 0:
        return np.zeros((0, 3))
    rmax = float(radii.max())
    if rmax > rs:
        raise ConfigError("cells.spheroid_radius", f"{how} is smaller than a cell (radius {rmax:.4g} µm)")
    ball_r = rs - radii  # the centre must stay this close to the ball centre
    lo = center[None, :] - ball_r[:, None]
    hi = center[None, :] + ball_r[:, None]
    return _pack(radii, lo, hi, (center, ball_r), box, gap, rng,
                 f"a spheroid of radius {rs:.4g} µm", 4.0 / 3.0 * math.pi * rs ** 3,
                 hint="lower cells.count or cells.radius, or raise cells.spheroid_radius")


def _pack(radii, lo, hi, ball, box, gap, rng, where, volume, dim=3,
          hint="lower cells.count or cells.radius"):
    """Random sequential packing.  Cell i's centre is drawn uniformly in the
    axis box [lo[i], hi[i]] (and, if ``ball = (centre, r[i])``, kept within
    r[i] of centre) and accepted if its surface is ≥ gap from every placed
    cell.  Larger cells go first (they are the hardest to fit).  Returns
    float64[N, 3] centres [µm] in the original cell order."""
    n = radii.shape[0]
    order = np.argsort(-radii, kind="stable")
    r_o = np.ascontiguousarray(radii[order])
    lo_o = np.ascontiguousarray(lo[order])
    hi_o = np.ascontiguousarray(hi[order])
    if ball is None:
        bc, br = np.zeros(3), np.full(n, -1.0)
    else:
        bc, br = np.asarray(ball[0], dtype=np.float64), np.ascontiguousarray(ball[1][order])
    # Neighbour grid: a bin edge ≥ 2 R_max + gap means any cell that could
    # be too close lies in the 27 surrounding bins.
    nbins, bin_size = _grid_dims(box, 2.0 * float(r_o[0]) + gap, n)
    head = np.full(int(np.prod(nbins)), -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    pos = np.zeros((n, 3))
    state = np.zeros(3, dtype=np.int64)  # placed, attempts on current cell, total attempts
    max_total = max(MIN_TOTAL_ATTEMPTS, TOTAL_ATTEMPTS_PER_CELL * n)
    batch = 3 * (PACK_BATCH or max(4096, 4 * n))
    # Uniforms come from the Philox stream in batches; the stream is consumed
    # strictly in order, so the result does not depend on the batch size.
    while True:
        u = rng.random(batch)
        status = _pack_kernel(r_o, lo_o, hi_o, bc, br, gap, u, pos, head, nxt,
                              nbins, bin_size, state, MAX_ATTEMPTS_PER_CELL, max_total)
        if status == 0:
            break
        if status == 2:
            k = int(state[0])
            if dim == 3:
                frac = float(np.sum(4.0 / 3.0 * math.pi * r_o ** 3)) / volume
                what = "volume fraction"
            else:
                frac = float(np.sum(math.pi * r_o ** 2)) / volume
                what = "area fraction"
            rad = (f"{r_o[-1]:.4g}–{r_o[0]:.4g}" if r_o[0] != r_o[-1] else f"{r_o[0]:.4g}")
            raise ConfigError("cells.count",
                              f"placed only {k} of {n} cells of radius {rad} µm in {where} "
                              f"({what} {frac:.3g}{', gap %.4g µm' % gap if gap else ''}); "
                              f"{hint}")
        # status 1: uniforms exhausted, draw the next batch
    out = np.empty((n, 3))
    out[order] = pos
    return out


@njit(cache=True)
def _pack_kernel(radii, lo, hi, ball_c, ball_r, gap, u, pos, head, nxt, nbins, bin_size,
                 state, max_attempts, max_total):
    """Place cells state[0]..N−1 using uniforms u (3 per attempt).  Linked-list
    grid (head per bin, nxt per cell).  Returns 0 done, 1 out of uniforms
    (call again with fresh ones), 2 gave up (state[0] = cells placed)."""
    n = radii.shape[0]
    nx, ny, nz = nbins[0], nbins[1], nbins[2]
    k = state[0]
    tries = state[1]
    total = state[2]
    j = 0
    while k < n:
        if j + 3 > u.shape[0]:
            state[0] = k
            state[1] = tries
            state[2] = total
            return 1
        if tries >= max_attempts or total >= max_total:
            state[0] = k
            state[1] = tries
            state[2] = total
            return 2
        tries += 1
        total += 1
        r = radii[k]
        x = lo[k, 0] + u[j] * (hi[k, 0] - lo[k, 0])
        y = lo[k, 1] + u[j + 1] * (hi[k, 1] - lo[k, 1])
        z = lo[k, 2] + u[j + 2] * (hi[k, 2] - lo[k, 2])
        j += 3
        if ball_r[k] >= 0.0:
            dx = x - ball_c[0]
            dy = y - ball_c[1]
            dz = z - ball_c[2]
            if dx * dx + dy * dy + dz * dz > ball_r[k] * ball_r[k]:
                continue
        ix = _bin_index(x, bin_size[0], nx)
        iy = _bin_index(y, bin_size[1], ny)
        iz = _bin_index(z, bin_size[2], nz)
        if _overlapping(x, y, z, r, pos, radii, gap, 1.0, head, nxt, ix, iy, iz, nbins, True) >= 0:
            continue
        pos[k, 0] = x
        pos[k, 1] = y
        pos[k, 2] = z
        _link(head, nxt, (ix * ny + iy) * nz + iz, k)
        k += 1
        tries = 0
    state[0] = k
    state[1] = tries
    state[2] = total
    return 0


# --------------------------------------------------------------------------
# Explicit layouts
# --------------------------------------------------------------------------

def _layout_list(cells, names, radius_rng, type_rng):
    centers = getattr(cells, "centers", None)
    if centers is None:
        raise ConfigError("cells.centers", "layout = \"list\" needs centers = [[x, y, z], …]")
    try:
        centers = np.asarray(centers, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("cells.centers", "centers must be a list of [x, y, z] numbers") from None
    if centers.size == 0:
        centers = centers.reshape(0, 3)
    if centers.ndim != 2 or centers.shape[1] != 3:
        raise ConfigError("cells.centers", f"centers must be a list of [x, y, z] triples (got shape {centers.shape})")
    n = centers.shape[0]
    radii = getattr(cells, "radii", None)
    if radii is not None:
        try:
            radii = np.asarray(radii, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError("cells.radii", "radii must be a list of numbers") from None
        if radii.shape[0] != n:
            raise ConfigError("cells.radii", f"{radii.shape[0]} radii given for {n} centers")
        for i, r in enumerate(radii):
            if not (r > 0.0 and math.isfinite(r)):
                raise ConfigError("cells.radii", f"cell {i}: radius {r} µm must be positive and finite")
    else:
        radii = _draw_radii(cells.radius, n, radius_rng)
    per_cell = getattr(cells, "cell_types_list", None)
    if per_cell is not None:
        per_cell = list(per_cell)
        if len(per_cell) != n:
            raise ConfigError("cells.types", f"{len(per_cell)} types given for {n} centers")
        types = np.empty(n, dtype=np.int32)
        for i, t in enumerate(per_cell):
            if t not in names:
                raise ConfigError("cells.types", f"cell {i}: unknown cell type {t!r}; defined types: {', '.join(names) or 'none'}")
            types[i] = names.index(t)
    else:
        types = _types_from_fractions(getattr(cells, "types", None), n, names, type_rng)
    return centers, radii, types


def _layout_file(path, names):
    """Read cells from CSV or HDF5.  Returns centers, radii, types, label."""
    if not path:
        raise ConfigError("cells.path", "layout = \"file\" needs path = \"cells.csv\" (columns x,y,z,radius,type)")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError("cells.path", f"cell file {path} not found")
    import h5py
    if h5py.is_hdf5(path):
        centers, radii, types, label = _read_hdf5(path, names)
    else:
        centers, radii, types, label = _read_csv(path, names)
    if radii.shape[0] == 0:
        raise ConfigError("cells.path", f"{path}: contains no cells")
    return centers, radii, types, label


_COLUMNS = ("x", "y", "z", "radius", "type")


def _type_index(value, names, where):
    """Type column entry → index: a defined type name, or an integer index."""
    v = value.strip() if isinstance(value, str) else value
    if isinstance(v, str):
        if v in names:
            return names.index(v)
        try:
            i = int(v)
        except ValueError:
            raise ConfigError("cells.path", f"{where}: unknown cell type {v!r}; defined types: {', '.join(names) or 'none'}") from None
    else:
        i = int(v)
    if not 0 <= i < len(names):
        raise ConfigError("cells.path", f"{where}: type index {i} out of range (0 to {len(names) - 1}: {', '.join(names)})")
    return i


def _read_csv(path, names):
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(num, row) for num, row in enumerate(csv.reader(fh), start=1)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError("cells.path", f"cannot read cell file {path}: {e}") from None
    # Blank lines and '#' comment lines are skipped.
    rows = [(num, row) for num, row in rows
            if row and any(f.strip() for f in row) and not row[0].lstrip().startswith("#")]
    if not rows:
        raise ConfigError("cells.path", f"{path}: empty file; expected a header line x,y,z,radius,type")
    hnum, header = rows[0]
    header = [h.strip().lower() for h in header]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise ConfigError("cells.path", f"{path} line {hnum}: header {','.join(header)!r} lacks column(s) {', '.join(missing)}; expected x,y,z,radius,type")
    col = {c: header.index(c) for c in _COLUMNS}
    n = len(rows) - 1
    centers = np.empty((n, 3))
    radii = np.empty(n)
    types = np.empty(n, dtype=np.int32)
    lines = np.empty(n, dtype=np.int64)
    for i, (num, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ConfigError("cells.path", f"{path} line {num}: {len(row)} fields, header has {len(header)}")
        for a, c in enumerate(("x", "y", "z", "radius")):
            text = row[col[c]].strip()
            try:
                v = float(text)
            except ValueError:
                raise ConfigError("cells.path", f"{path} line {num}, column {c}: {text!r} is not a number") from None
            if a < 3:
                centers[i, a] = v
            else:
                radii[i] = v
        types[i] = _type_index(row[col["type"]], names, f"{path} line {num}, column type")
        lines[i] = num
    return centers, radii, types, lambda i: f"cell {i} ({path} line {lines[i]})"


def _read_hdf5(path, names):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            missing = [c for c in _COLUMNS if c not in f]
            if missing:
                raise ConfigError("cells.path", f"{path}: missing dataset(s) {', '.join(missing)}; expected x, y, z, radius, type")
            data = {c: f[c][()] for c in _COLUMNS}
    except OSError as e:
        raise ConfigError("cells.path", f"cannot read cell file {path}: {e}") from None
    n = np.asarray(data["x"]).reshape(-1).shape[0]
    cols = []
    for c in ("x", "y", "z", "radius"):
        v = np.asarray(data[c]).reshape(-1)
        if v.shape[0] != n:
            raise ConfigError("cells.path", f"{path}: dataset {c} has {v.shape[0]} rows, x has {n}")
        try:
            cols.append(v.astype(np.float64))
        except (TypeError, ValueError):
            raise ConfigError("cells.path", f"{path}: dataset {c} is not numeric") from None
    t = np.asarray(data["type"]).reshape(-1)
    if t.shape[0] != n:
        raise ConfigError("cells.path", f"{path}: dataset type has {t.shape[0]} rows, x has {n}")
    types = np.empty(n, dtype=np.int32)
    for i, v in enumerate(t):
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, np.floating):
            if v != int(v):
                raise ConfigError("cells.path", f"{path}: dataset type, row {i}: {v} is not a type name or integer index")
            v = int(v)
        types[i] = _type_index(v, names, f"{path}: dataset type, row {i}")
    centers = np.stack(cols[:3], axis=1)
    return centers, cols[3], types, lambda i: f"cell {i} ({path} row {i})"


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def validate_cells(centers, radii, domain_size, label=None):
    """Check radii > 0 and finite, every cell inside the box and no two cells
    overlapping (centre distance < R1 + R2, with relative slack REL_TOL).

    centers float64[M, 3] [µm], radii float64[M] [µm], domain_size (3,) [µm];
    label(i) optionally names cell i (e.g. its file line).  Raises
    ConfigError("cells", …) naming the first offending cell(s).  O(M) with a
    grid: 10⁴ cells take milliseconds.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    box = np.asarray(domain_size, dtype=np.float64).reshape(3)
    name = label or (lambda i: f"cell {i}")
    n = radii.shape[0]
    if centers.shape[0] != n:
        raise ConfigError("cells", f"{centers.shape[0]} centres but {n} radii")
    if n == 0:
        return
    bad = np.flatnonzero(~(np.isfinite(radii) & (radii > 0.0)))
    if bad.size:
        i = int(bad[0])
        raise ConfigError("cells", f"{name(i)}: radius {radii[i]} µm must be positive and finite")
    bad = np.flatnonzero(~np.isfinite(centers).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise ConfigError("cells", f"{name(i)}: centre ({_vec_str(centers[i])}) is not finite")
    tol = REL_TOL * box
    low = centers - radii[:, None] < -tol
    high = centers + radii[:, None] > box + tol
    out = low | high
    if out.any():
        i = int(np.flatnonzero(out.any(axis=1))[0])
        a = int(np.flatnonzero(out[i])[0])
        face = f"{'xyz'[a]} = 0" if low[i, a] else f"{'xyz'[a]} = {box[a]:.4g} µm"
        raise ConfigError("cells", f"{name(i)} (centre ({_vec_str(centers[i])}) µm, radius {radii[i]:.4g} µm) "
                                   f"sticks out of the domain through the {face} face")
    nbins, bin_size = _grid_dims(box, 2.0 * float(radii.max()), n)
    pair = _first_overlap(np.ascontiguousarray(centers), np.ascontiguousarray(radii), nbins, bin_size, REL_TOL)
    if pair[0] >= 0:
        i, j = int(pair[0]), int(pair[1])
        d = float(np.linalg.norm(centers[i] - centers[j]))
        names = f"cells {i} and {j}" if label is None else f"{name(i)} and {name(j)}"
        raise ConfigError("cells", f"{names} overlap: centre distance {d:.4g} µm < {radii[i] + radii[j]:.4g} µm")


@njit(cache=True)
def _first_overlap(centers, radii, nbins, bin_size, rel_tol):
    """(i, j), i < j, for the overlapping pair with the smallest j (then
    smallest i); (−1, −1) if none.  Bin edge ≥ 2 R_max, so neighbours of a
    cell lie in its 27 surrounding bins."""
    n = radii.shape[0]
    nx, ny, nz = nbins[0], nbins[1], nbins[2]
    head = np.full(nx * ny * nz, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    out = np.full(2, -1, dtype=np.int64)
    for k in range(n):
        x, y, z = centers[k, 0], centers[k, 1], centers[k, 2]
        ix = _bin_index(x, bin_size[0], nx)
        iy = _bin_index(y, bin_size[1], ny)
        iz = _bin_index(z, bin_size[2], nz)
        best = _overlapping(x, y, z, radii[k], centers, radii, 0.0, 1.0 - rel_tol,
                            head, nxt, ix, iy, iz, nbins, False)
        if best >= 0:
            out[0] = best
            out[1] = k
            return out
        _link(head, nxt, (ix * ny + iy) * nz + iz, k)
    return out


# The bin formula (exodiff/locality.py), compiled for the kernels above.
_bin_index = njit(cache=True)(locality.bin_index)


@njit(cache=True)
def _link(head, nxt, b, k):
    """Put cell k at the head of bin b's linked list (head per bin, nxt per cell)."""
    nxt[k] = head[b]
    head[b] = k


@njit(cache=True)
def _overlapping(x, y, z, r, centers, radii, gap, scale, head, nxt, ix, iy, iz, nbins, first):
    """A listed cell c, in the 27 bins around bin (ix, iy, iz), whose centre
    lies closer to (x, y, z) than (r + radii[c] + gap) · scale: the first
    one found when ``first``, else the one of smallest index; −1 if none.
    Bins at least as wide as that distance hold every such cell."""
    nx, ny, nz = nbins[0], nbins[1], nbins[2]
    best = -1
    for jx in range(max(ix - 1, 0), min(ix + 2, nx)):
        for jy in range(max(iy - 1, 0), min(iy + 2, ny)):
            for jz in range(max(iz - 1, 0), min(iz + 2, nz)):
                c = head[(jx * ny + jy) * nz + jz]
                while c >= 0:
                    dx = x - centers[c, 0]
                    dy = y - centers[c, 1]
                    dz = z - centers[c, 2]
                    s = (r + radii[c] + gap) * scale
                    if dx * dx + dy * dy + dz * dz < s * s:
                        if first:
                            return c
                        if best < 0 or c < best:
                            best = c
                    c = nxt[c]
    return best


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _grid_dims(box, h, n):
    """Bins per axis (≥ 1) of edge ≥ h tiling the box, for n cells, at most
    8 bins per cell (:func:`exodiff.locality.grid_dims`).
    Returns (int64[3] nbins, float64[3] bin_size [µm])."""
    return locality.grid_dims(box, h, n, 8.0)


def _box_volume(box):
    return float(box[0] * box[1] * box[2])


def _box_str(box):
    return "×".join(f"{v:.4g}" for v in box)


def _vec_str(v):
    return ", ".join(f"{float(x):.4g}" for x in v)
