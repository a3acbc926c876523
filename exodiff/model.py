"""From a validated Config to the arrays the kernels step (the initial state).

Everything random here comes from the counter-based Philox generator with
counters named after what they are for (kernels/philox.py), so the setup is
the same on every backend.  Cell packing is the exception: it is sequential by
nature and uses NumPy's Philox generator seeded from the run seed
(exodiff/layouts.py).
"""
import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from . import physics
from .errors import ConfigError
from .grid import build_cell_grid, clearance_map
from .kernels import philox, state
from .kernels.constants import BOUND, FACE_KINDS, FREE, PENDING, PERIODIC
from .layouts import make_cells

# Cells within this many step lengths (plus the vesicle radius) of a grid bin
# are listed in it: a crossing from farther away has a bridge probability
# below exp(-2·8·(8-7)) ~ 1e-7 even after a 7σ step, itself a 1e-10 event.
GRID_REACH_STEPS = 8.0
PLACEMENT_ATTEMPTS = 64


@dataclass
class Model:
    """Everything a run needs: the kernels' arrays by field name
    (kernels/state.py) and the metadata the driver and the writer use.
    Units: µm, s.

    ``arrays`` is read-only as a mapping; the kernels update its arrays in
    place (``args()`` bundles the same objects for them), and ``load_state``
    is the one way to put a state in from outside."""
    n_steps: int
    arrays: MappingProxyType
    birth_time: np.ndarray           # [N] s, 0 for vesicles present at t = 0
    origin: np.ndarray               # [N] int32 donor cell of each vesicle, -1 if present at t = 0
    secretion_rate: np.ndarray       # [M, P] 1/s each cell secretes of each population
    species_names: list
    cargo_names: list
    cargo_table: np.ndarray          # [P, K] cargo per vesicle of each population
    cell_type_names: list
    faces: tuple                     # 6 strings, xlo..zhi
    n_vesicles: int = 0
    n_cells: int = 0
    grid: object = None
    precision: str = "double"        # run.precision: the cuda backend's step kernel
    stepping: str = "adaptive"       # run.stepping: leaps far from surfaces, or fixed steps

    def args(self):
        """The kernels' argument (state.StepArgs) over these arrays."""
        return state.pack(self.arrays)

    def load_state(self, values):
        """Overwrite STATE fields (kernels/state.py) in place with ``values``
        (name -> array, any subset), converted to their dtypes, and recount
        the bound vesicles per cell from the result."""
        for name, value in values.items():
            f = state.FIELDS.get(name)
            if f is None or f.role != state.STATE:
                raise KeyError(f"{name}: not a field of the vesicle state")
            self.arrays[name][...] = np.asarray(value).astype(self.arrays[name].dtype, copy=False)
        a = self.arrays
        a["bound_count"][...] = np.bincount(a["cell"][a["state"] == BOUND], minlength=self.n_cells)


def _unit_vectors(u, v):
    """Uniform directions on the unit sphere from two uniforms in (0,1)."""
    cz = 2.0 * u - 1.0
    sz = np.sqrt(np.maximum(0.0, 1.0 - cz * cz))
    phi = 2.0 * math.pi * v
    return np.stack([sz * np.cos(phi), sz * np.sin(phi), cz], axis=1)


def _poisson_births(donors, rate, t0, t1, key, process=0):
    """Birth times of independent Poisson processes of `rate` [1/s] (one
    value, or one per donor) on [t0, t1) for the donor cells `donors`
    (global indices).  Interarrival k of
    donor d is −ln(u)/rate with u from counter (d, k, STREAM_BIRTH, process),
    so a donor's births do not depend on the other donors, nor on its other
    populations (``process``: the population's place in its type's
    ``secretes``).
    Returns (times, donor) ordered by donor, then time."""
    rate = np.broadcast_to(np.asarray(rate, dtype=np.float64), donors.shape)
    if donors.size == 0 or not np.all(rate > 0.0) or t1 <= t0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    lam = float(rate.max()) * (t1 - t0)
    width = int(lam + 8.0 * math.sqrt(lam) + 16)
    out_t, out_d = [], []
    parts = max(1, donors.size * width // 2_000_000)
    for block, block_rate in zip(np.array_split(donors, parts), np.array_split(rate, parts)):
        w = width
        while True:  # widen until every donor's last draw passes t1
            k = np.arange(w, dtype=np.int64)
            x = philox.philox4x32_np(block[:, None], k[None, :], philox.STREAM_BIRTH, process, *key)[0]
            times = t0 + np.cumsum(-np.log(philox.to_uniform_np(x)) / block_rate[:, None], axis=1)
            if np.all(times[:, -1] >= t1):
                break
            w *= 2
        inside = times < t1
        out_t.append(times[inside])
        out_d.append(np.broadcast_to(block[:, None], times.shape)[inside])
    return np.concatenate(out_t), np.concatenate(out_d).astype(np.int64)


def lognormal_per_cell(median, gsd, cells, quantity, key):
    """Values of one cell-type property for each of ``cells`` (global
    indices): median · gsd^z, z standard normal from counter (cell,
    1 + quantity, STREAM_RADIUS, 0), a counter of its own for each cell and
    property (the vesicle radii use word 1 = 0).  gsd = 1 gives the median
    exactly."""
    if gsd == 1.0 or cells.size == 0:
        return np.full(cells.size, median, dtype=np.float64)
    z = philox.normals4_np(cells.astype(np.int64), 1 + quantity, philox.STREAM_RADIUS, *key)[0]
    return median * gsd ** z


# Property numbers in the counter of lognormal_per_cell (secretion rates follow
# from SECRETION_RATE on, one per population in the order of secretes).
KAPPA, CAPACITY, SECRETION_RATE = 0, 1, 2


def build_model(config):
    """Build the initial state of a run from a validated config."""
    run, medium, domain = config.run, config.medium, config.domain
    dt = run.dt
    key = philox.seed_key(run.seed)
    box = np.asarray(domain.size, dtype=np.float64)
    face_kind = np.array([FACE_KINDS[f] for f in domain.faces], dtype=np.int32)
    periodic = np.array([face_kind[2 * a] == PERIODIC for a in range(3)])

    type_names = list(config.cell_types)
    types = [config.cell_types[t] for t in type_names]
    cells = make_cells(config.cells, box, type_names, run.seed)
    M = cells.centers.shape[0]

    species_names = list(config.vesicles)
    pops = [config.vesicles[p] for p in species_names]
    cargo_names = sorted({name for p in pops for name in p.cargo})
    cargo_table = np.array([[p.cargo.get(c, 0.0) for c in cargo_names] for p in pops],
                           dtype=np.float64).reshape(len(pops), len(cargo_names))

    # -- the vesicle pool: present at t = 0, then births in time order
    species = [np.full(p.count, j, dtype=np.int32) for j, p in enumerate(pops)]
    birth_time = [np.zeros(sum(p.count for p in pops))]
    donor = [np.full(birth_time[0].size, -1, dtype=np.int64)]
    births_t, births_d, births_s = [], [], []
    ckappa, ccapacity = np.zeros(M), np.zeros(M, dtype=np.int64)
    secretion_rate = np.zeros((M, len(species_names)))  # per cell and population [1/s]
    for T, ct in enumerate(types):
        donors = np.nonzero(cells.types == T)[0]
        ckappa[donors] = lognormal_per_cell(ct.kappa, ct.kappa_gsd, donors, KAPPA, key)
        ccapacity[donors] = np.rint(lognormal_per_cell(ct.capacity, ct.capacity_gsd, donors, CAPACITY, key))
        for process, sec in enumerate(ct.secretions):
            t0 = max(0.0, sec.window[0])
            t1 = min(physics.step_count(run.duration, dt) * dt, sec.window[1])
            rate = lognormal_per_cell(sec.rate, sec.gsd, donors, SECRETION_RATE + process, key)
            secretion_rate[donors, species_names.index(sec.population)] = rate
            t, d = _poisson_births(donors, rate, t0, t1, key, process)
            births_t.append(t)
            births_d.append(d)
            births_s.append(np.full(t.size, species_names.index(sec.population), dtype=np.int32))
    if births_t:
        t = np.concatenate(births_t)
        d = np.concatenate(births_d)
        s = np.concatenate(births_s)
        order = np.lexsort((s, d, t))  # by time, ties by donor, then population
        birth_time.append(t[order])
        donor.append(d[order])
        species.append(s[order])
    birth_time = np.concatenate(birth_time)
    donor = np.concatenate(donor)
    species = np.concatenate(species) if species else np.empty(0, dtype=np.int32)
    N = species.size
    ids = np.arange(N, dtype=np.int64)

    # -- per-vesicle constants
    median = np.array([p.radius.median for p in pops])[species]
    gsd = np.array([p.radius.gsd for p in pops])[species]
    z = philox.normals4_np(ids, 0, philox.STREAM_RADIUS, *key)[0]
    vradius = median * gsd ** z
    diffusion = physics.stokes_einstein_diffusion(vradius, medium.temperature, medium.viscosity)
    for j, p in enumerate(pops):
        if p.diffusion is not None:
            diffusion[species == j] = p.diffusion
    settling = np.zeros(N)
    if medium.gravity:
        rho = np.array([p.density for p in pops])[species]
        settling = physics.settling_velocity(vradius, rho, medium.density, medium.viscosity)
    p_clear = np.array([0.0 if math.isinf(p.half_life) else -math.expm1(-math.log(2.0) / p.half_life * dt)
                        for p in pops])

    reach = float(vradius.max(initial=0.0)
                  + GRID_REACH_STEPS * physics.step_length(diffusion.max(initial=0.0), dt))
    grid = build_cell_grid(cells.centers, cells.radii, box, periodic, reach)

    # -- initial positions
    vesicles = state.initial_state(N)
    pos = vesicles["pos"]
    born_later = donor >= 0
    vesicles["state"][:] = np.where(born_later, PENDING, FREE)
    birth_step = np.where(born_later, np.floor(birth_time / dt), -1)
    start = 0
    for j, p in enumerate(pops):
        sel = np.arange(start, start + p.count)
        start += p.count
        pos[sel] = _place(p, f"vesicles.{species_names[j]}.placement", sel, vradius[sel],
                          box, cells, grid, periodic, key)
    if born_later.any():
        sel = ids[born_later]
        u = philox.uniforms4_np(sel, 0, philox.STREAM_SURFACE, *key)
        c = donor[sel]
        pos[sel] = cells.centers[c] + _unit_vectors(u[0], u[1]) * (cells.radii[c] + vradius[sel])[:, None]
        pos[sel] = _into_box(pos[sel], box, periodic)

    ct_arr = lambda f, dtype=np.float64: np.array([f(t) for t in types], dtype=dtype).reshape(len(types))
    k_tot = ct_arr(lambda t: t.k_off + t.k_int)
    arrays = state.typed(dict(
        vesicles,
        dt=dt, k0=key[0], k1=key[1],
        diffusion=diffusion, sigma=physics.step_length(diffusion, dt), settling=settling,
        vradius=vradius, species=species, birth_step=birth_step, p_clear=p_clear,
        box=box, face_kind=face_kind, face_kappa=domain.kappa, flow=medium.flow,
        ccenter=cells.centers, cradius=cells.radii, ctype=cells.types, bound_count=np.zeros(M),
        ckappa=ckappa, ccapacity=ccapacity,
        type_p_event=-np.expm1(-k_tot * dt),
        type_frac_off=np.divide(ct_arr(lambda t: t.k_off), k_tot, out=np.zeros(len(types)),
                                where=k_tot > 0),
        bin_size=grid.bin_size, nbins=grid.nbins, gstart=grid.start, gitems=grid.items,
        adaptive=int(run.stepping == "adaptive"),
        horizon_every=np.array(horizon_every(run), dtype=np.int64),
        horizon_stops=np.array([physics.step_count(run.duration, dt)]),
        clearance=clearance_map(grid, cells.centers, cells.radii, box, periodic,
                                float(vradius.max(initial=0.0))),
    ))
    model = Model(n_steps=physics.step_count(run.duration, dt), arrays=MappingProxyType(arrays),
                 birth_time=birth_time, origin=donor.astype(np.int32),
                 secretion_rate=secretion_rate, species_names=species_names,
                 cargo_names=cargo_names, cargo_table=cargo_table, cell_type_names=type_names,
                 faces=tuple(domain.faces), n_vesicles=N, n_cells=M, grid=grid, precision=run.precision,
                 stepping=run.stepping)
    # the steps where the constants change (schedules) are horizons too
    arrays["horizon_stops"] = horizon_stops(getattr(model, "change_steps", ()), model.n_steps)
    return model


def horizon_stops(change_steps, n_steps):
    """Run.horizon_stops: the sorted steps in (0, n_steps) where the
    constants change, and n_steps (int64)."""
    changes = np.asarray(change_steps, dtype=np.int64)
    return np.unique(np.append(changes[(changes > 0) & (changes < n_steps)], np.int64(n_steps)))


def horizon_every(run):
    """Steps between observations and between snapshots (the driver's
    schedules; no leap passes a multiple of either)."""
    return (max(1, int(round(run.observe_interval / run.dt))),
            max(1, int(round(run.snapshot_interval / run.dt))))


def _into_box(p, box, periodic):
    """Wrap periodic axes, mirror closed ones (for points a vesicle radius
    outside a cell that touches a face)."""
    p = p.copy()
    for a in range(3):
        if periodic[a]:
            p[:, a] = np.mod(p[:, a], box[a])
        else:
            p[:, a] = np.abs(p[:, a])
            p[:, a] = np.where(p[:, a] > box[a], 2.0 * box[a] - p[:, a], p[:, a])
    return p


def overlapping_cell(points, vradius, cells, grid, box, periodic):
    """Index of a cell whose contact sphere (R_cell + r_vesicle) holds each
    point, or -1.  points [n,3] µm, vradius [n] µm."""
    from .grid import bin_of
    out = np.full(points.shape[0], -1, dtype=np.int64)
    if grid.items.size == 0 or points.shape[0] == 0:
        return out
    b = bin_of(grid, points)
    first, count = grid.start[b], grid.start[b + 1] - grid.start[b]
    for k in range(int(count.max(initial=0))):
        j = np.nonzero((k < count) & (out < 0))[0]
        c = grid.items[first[j] + k]
        e = points[j] - cells.centers[c]
        for a in range(3):
            if periodic[a]:
                e[:, a] -= box[a] * np.floor(e[:, a] / box[a] + 0.5)
        inside = np.einsum("ij,ij->i", e, e) < (cells.radii[c] + vradius[j]) ** 2
        out[j[inside]] = c[inside]
    return out


def _place(pop, key_name, ids, vradius, box, cells, grid, periodic, key):
    """Initial positions [n,3] of one population's vesicles `ids`."""
    n = ids.size
    pl = pop.placement
    if n == 0:
        return np.zeros((0, 3))
    if pl.kind == "uniform":
        # uniform in the free volume: redraw (attempt = counter word 1) the
        # vesicles that fall inside a cell's contact sphere
        pos = np.zeros((n, 3))
        todo = np.arange(n)
        for attempt in range(PLACEMENT_ATTEMPTS):
            u = philox.uniforms4_np(ids[todo], attempt, philox.STREAM_PLACE, *key)
            pos[todo] = np.stack(u[:3], axis=1) * box
            todo = todo[overlapping_cell(pos[todo], vradius[todo], cells, grid, box, periodic) >= 0]
            if todo.size == 0:
                return pos
        raise ConfigError(key_name, f"could not place {todo.size} of {n} vesicles outside the cells "
                          f"in {PLACEMENT_ATTEMPTS} attempts; the cells fill almost the whole domain")
    if pl.kind == "point":
        pos = np.tile(np.asarray(pl.point, dtype=np.float64), (n, 1))
    elif pl.kind == "shell":
        u = philox.uniforms4_np(ids, 0, philox.STREAM_PLACE, *key)
        pos = np.asarray(pl.center, dtype=np.float64) + pl.radius * _unit_vectors(u[0], u[1])
    elif pl.kind == "plane":
        u = philox.uniforms4_np(ids, 0, philox.STREAM_PLACE, *key)
        pos = np.stack(u[:3], axis=1) * box
        pos[:, pl.axis] = pl.at
    else:
        raise ConfigError(key_name, f"unknown placement {pl.kind!r}")
    outside = np.any((pos < 0.0) | (pos > box), axis=1)
    if outside.any():
        raise ConfigError(key_name, f"{int(outside.sum())} of {n} vesicles would start outside the "
                          f"{box[0]:g}×{box[1]:g}×{box[2]:g} µm domain")
    inside = overlapping_cell(pos, vradius, cells, grid, box, periodic)
    if np.any(inside >= 0):
        c = int(inside[inside >= 0][0])
        raise ConfigError(key_name, f"{int(np.sum(inside >= 0))} of {n} vesicles would start inside "
                          f"cell {c} (centre {np.round(cells.centers[c], 3).tolist()} µm, "
                          f"radius {cells.radii[c]:g} µm)")
    return pos
