"""The vesicle step as a Numba CPU kernel.

Twin of ``step_numpy.py`` (the reference) and of exodiff_step.cuh: the same
stage functions with the same names in the same order (``_name`` here and in
NumPy, ``name`` in CUDA), the same operations in the same order inside, so
all three give bit-identical results for a seed (DESIGN §2).  One call
``advance(n0, n1, args)`` moves every vesicle from step n0 to n1 (step n takes
the system from t_n = n·dt to t_{n+1}); ``args`` is a ``state.StepArgs``.

Per FREE vesicle and step (DESIGN §1):
 1. displacement: √(2D dt)·ξ + drift·dt (ξ from STREAM_DIFFUSE);
 2. faces: periodic wrap, mirror reflection, or absorption on contact (end
    beyond the face, or a Brownian-bridge crossing within the step);
 3. contact: the cells listed in the grid bin of the end point; contact when
    the end point is within R_cell + r_vesicle, or with the bridge probability
    exp(−d0·d1/(D dt)) against the tangent plane;
 4. binding: the first contact binds with P(κ, D, dt)·(free receptor
    fraction), 5. reflection: otherwise an end point inside is mirrored;
 8. clearance with probability 1 − exp(−k_clear dt).
A BOUND vesicle (7. bound-state events) unbinds, is internalized or fuses
with the plasma membrane (DELIVERED) (competing first-order rates); an
unbinding releases it with ``release_fraction`` (else it rebinds within the
step), 6. placing it outside contact at ``unbind_distance``.  Each step
begun BOUND adds dt to its ``bound_duration`` and one to its cell's
``cell_bound_steps`` (per-thread integer partials, summed after the parallel
loop: exact at any thread count).
A PENDING vesicle becomes FREE at the end of its birth step (9. births).
An INTERNALIZED vesicle (in an endosome; 10. endosome events) escapes
(DELIVERED), is degraded (DEGRADED) or is recycled (competing rates): FREE
again, placed like an unbinding vesicle outside its cell.  It draws the
STREAM_BOUND words of its step: a vesicle begins a step either BOUND or
INTERNALIZED, so these counters are never used twice and the other streams'
numbers are unchanged.
With run.stepping = "adaptive", a FREE vesicle far from every surface first
tries 11. a leap (kernels/leap.py): it then flies over many steps, skipped by
every stage until it lands (Vesicles.leap_end).  Adaptive runs go vesicle by
vesicle (``_run_vesicle``, each with its own step counter, as on the GPU), so
a leap costs one visit, not one per step.  A BOUND vesicle, and an
INTERNALIZED one with endosomal rates, likewise waits for its next event in
one visit (stages 7 and 10; kernels/leap.py, "Waits"), skipped until then by
the same test (Vesicles.leap_end).  With receptor capacity both schemes run
the synced loop (below): windows of steps in which each vesicle runs on its
own until it meets a cell whose bound count it must read, and then those
halted vesicles in step order, each reading the count of its step.

Fixed stepping without capacity runs block by block, each block step by
step: the block's normals first, in a loop free of branches and libm calls
(philox.normals4 uses polynomials) that the compiler turns into SIMD code,
then the vesicles' steps.  The stages are
inlined into that loop (``inline="always"``, in Numba's IR): a call passing
the containers would cost ~0.4 µs, more than the step itself.  The loop is
compiled without Numba's reference counting (``_nrt=False``, so it allocates
nothing: its work arrays come from ``_scratch``): every read of a container's
field would otherwise take and drop a reference to the array, atomic
operations that made the step 2.5 times slower with cells (bench S2, S3).

Uniforms for contacts are drawn lazily (only in steps that need them); being
counter-based they are the same numbers the reference draws every step.  They
travel as ``u = (drawn, uf, uc, ub, ur)``: faces, cell contact, binding,
clearance.
"""
import math

import numba
import numpy as np

from .constants import (ABSORB, BOUND, BRIDGE_CUTOFF, CLEARED, DEGRADED, DELIVERED, EXITED,
                        FAR_SIGMAS, FREE, INTERNALIZED, PENDING, PERIODIC)
from .firstpassage import ball_horizon_uniform
from .leap import (LEAP_ACCEPT_OFFSET, LEAP_ATTEMPT_STRIDE, LEAP_CAP_SPREADS, LEAP_LOOK_SIGMAS,
                   LEAP_MARGIN_SIGMAS, LEAP_MAX_ATTEMPTS, LEAP_MIN_SIGMAS, LEAP_MIN_STEPS,
                   fold_reflecting, horizon_proposal, leap_path, sphere_point, wait_steps)
from .philox import STREAM_BOUND, STREAM_CONTACT, STREAM_DIFFUSE, STREAM_LEAP, STREAM_LEAP_POSITION
from .philox_numba import normals4, poly_cos_sin_2pi, uniforms4
from .surface import binding_probability, release_fraction, unbind_distance

inline = numba.njit(cache=True, inline="always")
BRIDGE_FAR_FACTOR = 1.0 + 2.0 ** -40  # _bridge's shortcut (exodiff_step.cuh's 1 + 0x1p-40)


# -- helpers ------------------------------------------------------------------------
@inline
def _fold(i, a, x, dom, image):
    """Bring coordinate x of vesicle i on axis a back into the box: wrap on a
    periodic axis (counting images), mirror on a closed one."""
    L = dom.box[a]
    if dom.face_kind[2 * a] == PERIODIC:
        if x < 0.0 or x >= L:
            k = math.floor(x / L)
            x = x - k * L
            image[i, a] += np.int32(k)
            if x >= L:  # x/L rounded up to an integer
                x = x - L
                image[i, a] += 1
        return x
    if x < 0.0:
        x = -x
    if x > L:
        x = L - (x - L)
    if x < 0.0:  # a step longer than the box; stay on the face
        x = 0.0
    return x


@inline
def _min_image(e, a, dom):
    """Separation e along axis a under the minimum-image convention.  For
    |e| ≤ L/4 (all the cells a grid bin lists, in practice) floor(e/L + 0.5)
    is exactly 0 and e − L·0 is e: skipping the division there changes no
    bit (as in exodiff_step.cuh)."""
    if dom.face_kind[2 * a] == PERIODIC:
        L = dom.box[a]
        if abs(e) <= 0.25 * L:
            return e
        return e - L * math.floor(e / L + 0.5)
    return e


@inline
def _bridge(d0, d1, Ddt):
    """Brownian-bridge crossing probability exp(−d0·d1/(D dt)) for two ends
    outside contact, 0 beyond the cutoff.  From d0·d1 ≥ BRIDGE_CUTOFF·D dt·
    (1 + 2⁻⁴⁰) on, d0·d1/(D dt) rounds to ≥ BRIDGE_CUTOFF anyway: the common
    far case skips the division and no bit changes (as in exodiff_step.cuh)."""
    prod = d0 * d1
    if prod >= BRIDGE_CUTOFF * Ddt * BRIDGE_FAR_FACTOR:
        return 0.0
    arg = prod / Ddt
    return math.exp(-arg) if arg < BRIDGE_CUTOFF else 0.0


@inline
def _bin_of(x, y, z, grid):
    ix = min(max(int(math.floor(x / grid.bin_size[0])), 0), grid.nbins[0] - 1)
    iy = min(max(int(math.floor(y / grid.bin_size[1])), 0), grid.nbins[1] - 1)
    iz = min(max(int(math.floor(z / grid.bin_size[2])), 0), grid.nbins[2] - 1)
    return (ix * grid.nbins[1] + iy) * grid.nbins[2] + iz


@inline
def _place_on(i, c, ex, ey, ez, f, ves, dom, cells):
    """Vesicle i at the centre of cell c plus f·(ex, ey, ez), folded into the box."""
    ves.pos[i, 0] = _fold(i, 0, cells.ccenter[c, 0] + ex * f, dom, ves.image)
    ves.pos[i, 1] = _fold(i, 1, cells.ccenter[c, 1] + ey * f, dom, ves.image)
    ves.pos[i, 2] = _fold(i, 2, cells.ccenter[c, 2] + ez * f, dom, ves.image)


@inline
def _passive_axes(dom):
    """Per axis, no absorbing face: _free_step leaves an end point inside
    [0, L) on such an axis as it is."""
    return (dom.face_kind[0] != ABSORB and dom.face_kind[1] != ABSORB,
            dom.face_kind[2] != ABSORB and dom.face_kind[3] != ABSORB,
            dom.face_kind[4] != ABSORB and dom.face_kind[5] != ABSORB)


@inline
def _contact_uniforms(u, i, n, run):
    """The STREAM_CONTACT uniforms of step n, drawn on first need."""
    if u[0]:
        return u
    uf, uc, ub, ur = uniforms4(i, n, STREAM_CONTACT, run.k0, run.k1)
    return (True, uf, uc, ub, ur)


# -- the stages, in the order of the twins ---------------------------------------------
@inline
def _displacement(i, z0, z1, z2, run, ves, par, dom):
    """1. Gaussian step plus drift; returns the start point."""
    dt = run.dt
    s = par.sigma[i]
    p0x = ves.pos[i, 0]
    p0y = ves.pos[i, 1]
    p0z = ves.pos[i, 2]
    ves.pos[i, 0] = p0x + (s * z0 + dom.flow[0] * dt)
    ves.pos[i, 1] = p0y + (s * z1 + dom.flow[1] * dt)
    ves.pos[i, 2] = p0z + (s * z2 + (dom.flow[2] - par.settling[i]) * dt)
    return p0x, p0y, p0z


@inline
def _cross_faces(i, a, x0, n, t1, D, Ddt, u, run, ves, dom):
    """2. On axis a, from start coordinate x0: wrap, mirror, or absorb at
    the faces.  Returns (exited, u)."""
    L = dom.box[a]
    x = ves.pos[i, a]
    if dom.face_kind[2 * a] == PERIODIC:
        ves.pos[i, a] = _fold(i, a, x, dom, ves.image)
        return False, u
    for side in range(2):
        if side == 0:
            d0 = x0
            d1 = x
        else:
            d0 = L - x0
            d1 = L - x
        if dom.face_kind[2 * a + side] == ABSORB:
            pc = 1.0 if d1 <= 0.0 or d0 <= 0.0 else _bridge(d0, d1, Ddt)
            if pc > 0.0:
                pa = pc * binding_probability(dom.face_kappa, D, run.dt, math.inf)
                if pa > 0.0:
                    u = _contact_uniforms(u, i, n, run)
                    if u[1] < pa:
                        ves.state[i] = EXITED
                        ves.exit_time[i] = t1
                        ves.pos[i, a] = 0.0 if side == 0 else L  # on the face
                        return True, u
                    u = (u[0], (u[1] - pa) / (1.0 - pa), u[2], u[3], u[4])
        if d1 < 0.0:  # crossed and not absorbed: mirror
            x = -x if side == 0 else L - (x - L)
    ves.pos[i, a] = _fold(i, a, x, dom, ves.image)
    return False, u


@inline
def _contact(i, n, p0x, p0y, p0z, Ddt, u, run, ves, par, dom, cells, grid):
    """3. The first cell of the end point's bin in contact (at the end point,
    or crossed within the step).  Returns (cell or -1, ex, ey, ez, r1, d1, u):
    the end point relative to its centre, their distance and the distance
    to contact."""
    b = _bin_of(ves.pos[i, 0], ves.pos[i, 1], ves.pos[i, 2], grid)
    ex = 0.0
    ey = 0.0
    ez = 0.0
    r1 = 0.0
    d1 = 0.0
    # cells farther than this from their contact sphere are out of reach
    # this step (constants.FAR_SIGMAS): no square root for them
    sx = ves.pos[i, 0] - p0x
    sy = ves.pos[i, 1] - p0y
    sz = ves.pos[i, 2] - p0z
    margin = math.sqrt(sx * sx + sy * sy + sz * sz) + FAR_SIGMAS * math.sqrt(Ddt) + 1e-12
    for k in range(grid.gstart[b], grid.gstart[b + 1]):
        c = grid.gitems[k]
        Rc = cells.cradius[c] + par.vradius[i]
        ex = _min_image(ves.pos[i, 0] - cells.ccenter[c, 0], 0, dom)
        ey = _min_image(ves.pos[i, 1] - cells.ccenter[c, 1], 1, dom)
        ez = _min_image(ves.pos[i, 2] - cells.ccenter[c, 2], 2, dom)
        r2 = ex * ex + ey * ey + ez * ez
        if r2 > (Rc + margin) * (Rc + margin):
            continue
        r1 = math.sqrt(r2)
        d1 = r1 - Rc
        if d1 <= 0.0:
            return c, ex, ey, ez, r1, d1, u
        qx = _min_image(p0x - cells.ccenter[c, 0], 0, dom)
        qy = _min_image(p0y - cells.ccenter[c, 1], 1, dom)
        qz = _min_image(p0z - cells.ccenter[c, 2], 2, dom)
        d0 = math.sqrt(qx * qx + qy * qy + qz * qz) - Rc
        pc = 1.0 if d0 <= 0.0 else _bridge(d0, d1, Ddt)
        if pc > 0.0:
            u = _contact_uniforms(u, i, n, run)
            if u[2] < pc:
                return c, ex, ey, ez, r1, d1, u
            u = (u[0], u[1], (u[2] - pc) / (1.0 - pc), u[3], u[4])
    return -1, ex, ey, ez, r1, d1, u


@inline
def _binding(i, c, n, t1, ex, ey, ez, r1, D, u, run, ves, par, dom, cells, types):
    """4. Bind to cell c with P(κ, D, dt) times its free receptor fraction,
    on its surface along (ex, ey, ez).  Returns (bound, u)."""
    Rc = cells.cradius[c] + par.vradius[i]
    pb = binding_probability(cells.ckappa[c], D, run.dt, Rc)
    if cells.ccapacity[c] > 0:
        free = 1.0 - cells.bound_count[c] / cells.ccapacity[c]
        pb = pb * free if free > 0.0 else 0.0
    u = _contact_uniforms(u, i, n, run)
    if u[3] < pb:
        _place_on(i, c, ex, ey, ez, Rc / r1, ves, dom, cells)
        ves.state[i] = BOUND
        ves.cell[i] = c
        if math.isnan(ves.first_bound_time[i]):
            ves.first_bound_time[i] = t1
            ves.first_bound_cell[i] = c
        return True, u
    return False, u


@inline
def _reflection(i, c, ex, ey, ez, r1, ves, par, dom, cells):
    """5. An end point inside contact and not bound: mirrored radially."""
    Rc = cells.cradius[c] + par.vradius[i]
    _place_on(i, c, ex, ey, ez, (2.0 * Rc - r1) / r1, ves, dom, cells)


@inline
def _unbinding_placement(i, c, Rc, u2, u3, run, ves, par, dom, cells):
    """6. An unbound vesicle moves out along the membrane normal of its
    binding site, to ``unbind_distance`` outside contact."""
    ex = _min_image(ves.pos[i, 0] - cells.ccenter[c, 0], 0, dom)
    ey = _min_image(ves.pos[i, 1] - cells.ccenter[c, 1], 1, dom)
    ez = _min_image(ves.pos[i, 2] - cells.ccenter[c, 2], 2, dom)
    r = math.sqrt(ex * ex + ey * ey + ez * ez)
    f = (Rc + unbind_distance(u2, u3, par.diffusion[i], run.dt, Rc)) / r
    _place_on(i, c, ex, ey, ez, f, ves, dom, cells)
    ves.state[i] = FREE
    ves.cell[i] = -1


@inline
def _bound_events(i, n, t1, horizon, bound_steps, run, ves, par, dom, cells, types):
    """7. A BOUND vesicle unbinds, is internalized or fuses (competing rates).
    ``horizon``: in adaptive stepping the steps to the next horizon, and
    without an event in step n it waits (kernels/leap.py, "Waits"); 0 in
    fixed stepping.  ``bound_steps``: this thread's partial of
    cells.cell_bound_steps.  Returns the steps this visit covers."""
    c = ves.cell[i]
    T = cells.ctype[c]
    p_event = types.type_p_event[T]
    u0, u1, u2, u3 = 1.0, 0.0, 0.0, 0.0  # without a rate: no event, no draw
    if p_event > 0.0:
        u0, u1, u2, u3 = uniforms4(i, n, STREAM_BOUND, run.k0, run.k1)
    k = _wait(i, n, horizon, p_event, u0, ves)
    steps = k if k > 0 else 1
    ves.bound_duration[i] += steps * run.dt
    bound_steps[c] += steps
    if k > 0:
        if k > 1:
            ves.leap_steps[i] += k - 1  # steps not taken (the run summary)
        return k
    if u1 >= types.type_frac_off[T]:
        if u1 >= types.type_cut_fuse[T]:
            ves.state[i] = DELIVERED
            ves.fused_time[i] = t1
            return 1
        ves.state[i] = INTERNALIZED
        if ves.internalized_cell[i] < 0:  # not recycled before
            ves.internalized_time[i] = t1
            ves.internalized_cell[i] = c
        return 1
    # unbind, unless the release counts as rebinding within the step
    # (u1/frac_off is uniform; surface.release_fraction)
    Rc = cells.cradius[c] + par.vradius[i]
    if u1 >= types.type_frac_off[T] * release_fraction(cells.ckappa[c], par.diffusion[i], run.dt, Rc):
        return 1
    _unbinding_placement(i, c, Rc, u2, u3, run, ves, par, dom, cells)
    return 1


@inline
def _wait(i, n, horizon, p, u0, ves):
    """0 if the vesicle (BOUND, or INTERNALIZED with p > 0; p: its event
    probability per step, u0: the first uniform of its draw) has its event
    in step n, else the steps this visit covers: 1 in fixed stepping
    (``horizon`` ≤ 0), else a wait, which ends at leap_end and marks in
    leap_look the event due at its end (kernels/leap.py, "Waits")."""
    if horizon <= 0:  # fixed stepping (or past the run's last stop: no horizon left)
        return 0 if u0 < p else 1
    if u0 < p or ves.leap_look[i] == -1 - n:  # an event now, or due: a wait ended here
        return 0
    k = wait_steps(u0, p, horizon)
    ves.leap_end[i] = n + k
    if k < horizon:
        ves.leap_look[i] = -1 - (n + k)
    return k


@inline
def _clearance(i, n, t1, u, run, ves, par):
    """8. Cleared in the medium with probability 1 − exp(−k_clear dt)."""
    pcl = par.p_clear[par.species[i]]
    if pcl > 0.0:
        u = _contact_uniforms(u, i, n, run)
        if u[4] < pcl:
            ves.state[i] = CLEARED
            ves.cleared_time[i] = t1


@inline
def _births(i, n, ves, par):
    """9. A PENDING vesicle is born (FREE) at the end of its birth step."""
    if par.birth_step[i] <= n:
        ves.state[i] = FREE


@inline
def _endosome_events(i, n, t1, horizon, run, ves, par, dom, cells, types):
    """10. An INTERNALIZED vesicle escapes (DELIVERED), is degraded or is
    recycled to the medium at its cell's surface (competing rates);
    ``horizon`` as in _bound_events.  Returns the steps this visit covers."""
    c = ves.cell[i]
    T = cells.ctype[c]
    if types.type_p_endo[T] <= 0.0:  # nothing ever happens to it: no wait either
        return 1
    u0, u1, u2, u3 = uniforms4(i, n, STREAM_BOUND, run.k0, run.k1)
    k = _wait(i, n, horizon, types.type_p_endo[T], u0, ves)
    if k > 0:
        return k
    if u1 < types.type_frac_escape[T]:
        ves.state[i] = DELIVERED
        ves.escape_time[i] = t1
        return 1
    if u1 < types.type_cut_recycle[T]:
        ves.state[i] = DEGRADED
        ves.degraded_time[i] = t1
        return 1
    Rc = cells.cradius[c] + par.vradius[i]
    _unbinding_placement(i, c, Rc, u2, u3, run, ves, par, dom, cells)
    ves.recycled[i] += 1
    return 1


@inline
def _leap_horizon(n, run):
    """Steps a leap from step n may last: to the next observation, snapshot
    or horizon stop (kernels/leap.py, item 2)."""
    e0 = run.horizon_every[0]
    e1 = run.horizon_every[1]
    h = min((n // e0 + 1) * e0, (n // e1 + 1) * e1)
    stops = run.horizon_stops
    k = 0
    while k < stops.size - 1 and stops[k] <= n:
        k += 1
    return min(h, stops[k]) - n


@inline
def _leap_faces(a, x, va, d, w, dom):
    """(d, w) lowered to the faces of axis a, from coordinate x, under drift
    va: d to absorbing faces (kept m away), w to reflecting faces under drift
    (the ball may touch them); a reflecting face on a drift-free axis is
    crossed by folding (kernels/leap.py, item 5)."""
    if dom.face_kind[2 * a] == PERIODIC:
        return d, w
    for side in range(2):
        gap = x if side == 0 else dom.box[a] - x
        if dom.face_kind[2 * a + side] == ABSORB:
            d = min(d, gap)
        elif va != 0.0:
            w = min(w, gap)
    return d, w


@inline
def _horizon_point(i, n, sh, run):
    """Position in the unit ball at dimensionless time sh given survival,
    for the leap of vesicle i from step n: exact rejection (kernels/leap.py, item 4)."""
    uniform = ball_horizon_uniform(sh)
    for j in range(LEAP_MAX_ATTEMPTS):
        w = STREAM_LEAP_POSITION + LEAP_ATTEMPT_STRIDE * j
        if uniform:
            u0, u1, u2, u3 = uniforms4(i, n, w, run.k0, run.k1)
            c_phi, s_phi = poly_cos_sin_2pi(u2)
            y0, y1, y2, acc = horizon_proposal(True, u0, u1, 0.0, c_phi, s_phi, sh)
            if u3 < acc:
                return y0, y1, y2
        else:
            z0, z1, z2, _ = normals4(i, n, w, run.k0, run.k1)
            y0, y1, y2, acc = horizon_proposal(False, z0, z1, z2, 0.0, 0.0, sh)
            if acc > 0.0 and uniforms4(i, n, w + LEAP_ACCEPT_OFFSET, run.k0, run.k1)[0] < acc:
                return y0, y1, y2
    return 0.0, 0.0, 0.0


@inline
def _land(i, a, x, dom, image):
    """A leap's landing coordinate x on axis a into the box: wrapped on a
    periodic axis, folded on a closed one (kernels/leap.py, item 5)."""
    if dom.face_kind[2 * a] == PERIODIC:
        return _fold(i, a, x, dom, image)
    return fold_reflecting(x, dom.box[a])


@inline
def _try_leap(i, n, horizon, run, ves, par, dom, cells, grid):
    """11. A FREE vesicle (not in flight) far from every surface leaps
    (kernels/leap.py): its ball from the clearance, then leap_path (and the
    horizon sampler), landing at step leap_end.  Returns whether it leapt."""
    dt = run.dt
    s = par.sigma[i]
    if horizon < LEAP_MIN_STEPS or not s > 0.0:
        return False
    vx = dom.flow[0]
    vy = dom.flow[1]
    vz = dom.flow[2] - par.settling[i]
    speed = math.sqrt(vx * vx + vy * vy + vz * vz)
    x = ves.pos[i, 0]
    y = ves.pos[i, 1]
    z = ves.pos[i, 2]
    d, w = _leap_faces(0, x, vx, math.inf, math.inf, dom)
    d, w = _leap_faces(1, y, vy, d, w, dom)
    d, w = _leap_faces(2, z, vz, d, w, dom)
    kx = min(max(int(math.floor(x / grid.bin_size[0])), 0), grid.nbins[0] - 1)
    ky = min(max(int(math.floor(y / grid.bin_size[1])), 0), grid.nbins[1] - 1)
    kz = min(max(int(math.floor(z / grid.bin_size[2])), 0), grid.nbins[2] - 1)
    ex = x - (kx + 0.5) * grid.bin_size[0]
    ey = y - (ky + 0.5) * grid.bin_size[1]
    ez = z - (kz + 0.5) * grid.bin_size[2]
    dist = math.sqrt(ex * ex + ey * ey + ez * ez)
    b = (kx * grid.nbins[1] + ky) * grid.nbins[2] + kz
    d = min(d, grid.clearance[b] - dist)  # the cells the bin does not list
    margin = LEAP_MARGIN_SIGMAS * s + speed * dt
    r = min(d - margin, w)
    if not r > LEAP_MIN_SIGMAS * s:  # too close already (the test below fails too)
        _put_off(i, n, horizon, LEAP_MIN_SIGMAS * s - r, s, speed, dt, ves)
        return False
    # the cells it lists, exactly (none without a cell lookup: gitems empty, as in _contact)
    listed_end = grid.gstart[b + 1] if grid.gitems.size > 0 else grid.gstart[b]
    for k in range(grid.gstart[b], listed_end):
        c = grid.gitems[k]
        qx = _min_image(x - cells.ccenter[c, 0], 0, dom)
        qy = _min_image(y - cells.ccenter[c, 1], 1, dom)
        qz = _min_image(z - cells.ccenter[c, 2], 2, dom)
        d = min(d, math.sqrt(qx * qx + qy * qy + qz * qz) - (cells.cradius[c] + par.vradius[i]))
    r = min(d - margin, w)
    steps = horizon
    if speed > 0.0:
        kmax = r / (2.0 * speed * dt)
        if kmax < steps:
            steps = int(math.floor(max(kmax, -1.0)))
    R = r - speed * (steps * dt)
    R = min(R, LEAP_CAP_SPREADS * (s * math.sqrt(steps)))
    if steps < LEAP_MIN_STEPS or not R >= LEAP_MIN_SIGMAS * s:
        _put_off(i, n, horizon, LEAP_MIN_SIGMAS * s - r, s, speed, dt, ves)
        return False
    u_time, u_clear, u_cos, u_phi = uniforms4(i, n, STREAM_LEAP, run.k0, run.k1)
    k, cleared, g, sh = leap_path(u_time, u_clear, steps, R, par.diffusion[i], dt,
                                  par.p_clear[par.species[i]])
    z0 = 0.0
    z1 = 0.0
    z2 = 0.0
    if sh > 0.0:  # inside at the horizon
        y0, y1, y2 = _horizon_point(i, n, sh, run)
    else:
        c_phi, s_phi = poly_cos_sin_2pi(u_phi)
        y0, y1, y2 = sphere_point(u_cos, c_phi, s_phi, 1.0)
        if g > 0.0:
            z0, z1, z2, _ = normals4(i, n + k - 1, STREAM_DIFFUSE, run.k0, run.k1)
    t = k * dt
    ves.pos[i, 0] = _land(i, 0, x + (R * y0 + (vx * t + g * z0)), dom, ves.image)
    ves.pos[i, 1] = _land(i, 1, y + (R * y1 + (vy * t + g * z1)), dom, ves.image)
    ves.pos[i, 2] = _land(i, 2, z + (R * y2 + (vz * t + g * z2)), dom, ves.image)
    ves.leap_end[i] = n + k
    ves.leaps[i] += 1
    ves.leap_steps[i] += k
    if cleared:
        ves.state[i] = CLEARED
        ves.cleared_time[i] = (n + k) * dt
    return True


@inline
def _free_step(i, n, t1, z0, z1, z2, passive, stop, run, ves, par, dom, cells, types, grid):
    """Stages 1–5 and 8: one step of FREE vesicle i with its normals z
    (``passive``: per axis, no absorbing face).  With ``stop``, a step that
    meets a cell of finite capacity (whose bound count binding reads) halts
    before stage 4 and returns True, its position not yet restored (the
    synced loop redoes the step when the count is known)."""
    D = par.diffusion[i]
    Ddt = D * run.dt
    p0x, p0y, p0z = _displacement(i, z0, z1, z2, run, ves, par, dom)
    u = (False, 0.0, 0.0, 0.0, 0.0)

    exited = False
    for a in range(3):
        if passive[a] and 0.0 <= ves.pos[i, a] < dom.box[a]:
            continue
        x0 = p0x if a == 0 else (p0y if a == 1 else p0z)
        exited, u = _cross_faces(i, a, x0, n, t1, D, Ddt, u, run, ves, dom)
        if exited:  # its later axes keep their unfolded values
            return False

    if grid.gitems.size > 0:
        c, ex, ey, ez, r1, d1, u = _contact(i, n, p0x, p0y, p0z, Ddt, u, run, ves, par, dom,
                                            cells, grid)
        if c >= 0:
            if stop and cells.ccapacity[c] > 0:
                return True
            if r1 == 0.0:  # end point at the centre: any normal will do
                ez = 1.0
                r1 = 1.0
            bound, u = _binding(i, c, n, t1, ex, ey, ez, r1, D, u, run, ves, par, dom, cells,
                                types)
            if bound:
                return False
            if d1 < 0.0:
                _reflection(i, c, ex, ey, ez, r1, ves, par, dom, cells)

    _clearance(i, n, t1, u, run, ves, par)
    return False


@inline
def _put_off(i, n, horizon, gap, s, speed, dt, ves):
    """Vesicle i, ``gap`` closer to a surface than a leap needs, looks
    again after min((gap/(LEAP_LOOK_SIGMAS·σ))², gap/(|v| dt)) steps, at the
    horizon at the latest (kernels/leap.py)."""
    if not gap > 0.0:
        return
    q = gap / (LEAP_LOOK_SIGMAS * s)
    j = q * q
    if speed > 0.0:
        j = min(j, gap / (speed * dt))
    j = min(j, float(horizon))
    ves.leap_look[i] = n + int(math.floor(j))


@inline
def _due(i, ves, par):
    """The step in which vesicle i acts next: its birth step while PENDING,
    else the end of its leap or wait (a past step: now)."""
    return par.birth_step[i] if ves.state[i] == PENDING else ves.leap_end[i]


# -- the loop -----------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy", _nrt=False)
def advance_block(i0, i1, n0, n1, scratch, bound_steps, run, ves, par, dom, cells, types, grid):
    """Advance vesicles i0..i1-1 through steps n0..n1-1: per step, first the
    normals of the block's free vesicles (a branch-free loop the compiler
    vectorizes), then each vesicle's stages.  ``scratch``: (free_ids, zx, zy,
    zz), arrays of at least i1 - i0 elements; ``bound_steps`` [M]: the
    thread's partial of cells.cell_bound_steps (added to)."""
    free_ids, zx, zy, zz = scratch
    passive = _passive_axes(dom)
    # without endosomal rates an INTERNALIZED vesicle never changes again
    endosomes = False
    for T in range(types.type_p_endo.size):
        if types.type_p_endo[T] > 0.0:
            endosomes = True
    adaptive = run.adaptive != 0
    for n in range(n0, n1):
        t1 = (n + 1) * run.dt
        # the vesicles that move in this step: FREE at its start (a vesicle
        # only changes its own state, so the list stays valid below), not
        # in flight, and not leaping from here
        nfree = 0
        horizon = _leap_horizon(n, run) if adaptive else 0
        for i in range(i0, i1):
            if ves.state[i] == FREE:
                if adaptive and (ves.leap_end[i] > n or (
                        ves.leap_look[i] <= n and _try_leap(i, n, horizon, run, ves, par, dom, cells, grid))):
                    continue
                free_ids[nfree] = i
                nfree += 1
        for k in range(nfree):
            z0, z1, z2, _ = normals4(free_ids[k], n, STREAM_DIFFUSE, run.k0, run.k1)
            zx[k] = z0
            zy[k] = z1
            zz[k] = z2
        kfree = 0  # FREE vesicles come below in the order of free_ids
        live = 0
        for i in range(i0, i1):
            st = ves.state[i]
            if st == EXITED or st == CLEARED or st == DELIVERED or st == DEGRADED:
                continue
            if st == INTERNALIZED and not endosomes:
                continue
            live += 1
            if adaptive and ves.leap_end[i] > n:  # in flight (FREE) or waiting (BOUND, INTERNALIZED)
                continue
            if st == PENDING:
                _births(i, n, ves, par)
                continue
            if st == BOUND:
                _bound_events(i, n, t1, horizon, bound_steps, run, ves, par, dom, cells, types)
                continue
            if st == INTERNALIZED:
                _endosome_events(i, n, t1, horizon, run, ves, par, dom, cells, types)
                continue

            _free_step(i, n, t1, zx[kfree], zy[kfree], zz[kfree], passive, False, run, ves, par, dom,
                       cells, types, grid)
            kfree += 1
        if live == 0:  # every vesicle of the block has left
            break


@inline
def _record(i, k, code, step, synced):
    """Change k (0 or 1) of vesicle i's run, of step ``step``, to a bound
    count (code c: +1 on cell c, -1 - c: -1 on cell c): linked into the
    bucket of its step (synced: see _run_vesicle)."""
    _, w0, rhead, node_next, node_cell = synced
    node = 2 * i + k
    node_cell[node] = code
    node_next[node] = rhead[step - w0]
    rhead[step - w0] = node


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _run_vesicle(i, n, n1, passive, bound_steps, synced, run, ves, par, dom, cells, types, grid):
    """Vesicle i from step n through n1 - 1, with its own step counter: a
    leap or a wait costs one visit.  Returns n1, or in the synced loop the
    step at which it halted.  ``synced`` is None for independent vesicles
    (Numba then compiles the code below for None without the branches
    under ``synced is not None``), else (stop_from, w0, rhead, node_next,
    node_cell): from step stop_from on the vesicle halts at a step in which
    it would read a bound count, its state as at that step's start, and it
    records each change of a bound count of a cell with finite capacity in
    rhead's bucket of its step (steps from w0; _record; at most two per
    call, the synced loop's argument)."""
    adaptive = run.adaptive != 0
    k = 0
    while n < n1:
        st = ves.state[i]
        if st == PENDING:
            if par.birth_step[i] > n:  # nothing happens before its birth step
                n = par.birth_step[i]
                continue
            _births(i, n, ves, par)
            n += 1
            continue
        if adaptive and ves.leap_end[i] > n:  # in flight (FREE) or waiting (BOUND, INTERNALIZED)
            n = ves.leap_end[i]
            continue
        t1 = (n + 1) * run.dt
        if st == BOUND:
            c = ves.cell[i]
            taken = _bound_events(i, n, t1, _leap_horizon(n, run) if adaptive else 0, bound_steps, run,
                                  ves, par, dom, cells, types)
            if synced is not None:
                if ves.state[i] != BOUND and cells.ccapacity[c] > 0:
                    _record(i, k, -1 - c, n, synced)
                    k += 1
            n += taken
            continue
        if st == INTERNALIZED and types.type_p_endo[cells.ctype[ves.cell[i]]] > 0.0:
            n += _endosome_events(i, n, t1, _leap_horizon(n, run) if adaptive else 0, run, ves, par,
                                  dom, cells, types)
            continue
        if st != FREE:  # EXITED, CLEARED, DELIVERED, DEGRADED, or in an endosome for good
            break
        if adaptive:
            if ves.leap_look[i] <= n and _try_leap(i, n, _leap_horizon(n, run), run, ves, par, dom,
                                                   cells, grid):
                n = ves.leap_end[i]
                continue
        z0, z1, z2, _ = normals4(i, n, STREAM_DIFFUSE, run.k0, run.k1)
        stop = False
        x = 0.0
        y = 0.0
        z = 0.0
        ix = np.int32(0)
        iy = np.int32(0)
        iz = np.int32(0)
        if synced is not None:
            stop = n >= synced[0]
            x = ves.pos[i, 0]
            y = ves.pos[i, 1]
            z = ves.pos[i, 2]
            ix = ves.image[i, 0]
            iy = ves.image[i, 1]
            iz = ves.image[i, 2]
        if _free_step(i, n, t1, z0, z1, z2, passive, stop, run, ves, par, dom, cells, types, grid):
            if synced is not None:  # halted: back to the step's start
                ves.pos[i, 0] = x
                ves.pos[i, 1] = y
                ves.pos[i, 2] = z
                ves.image[i, 0] = ix
                ves.image[i, 1] = iy
                ves.image[i, 2] = iz
                return n
        if synced is not None:
            if ves.state[i] == BOUND and cells.ccapacity[ves.cell[i]] > 0:
                _record(i, k, ves.cell[i], n, synced)
                k += 1
        n += 1
    return n1


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def advance_vesicles(i0, i1, n0, n1, bound_steps, run, ves, par, dom, cells, types, grid):
    """Advance vesicles i0..i1-1 through steps n0..n1-1 one vesicle at a
    time, each with its own step counter (as the CUDA kernel does): a leap
    or a wait for a birth costs one visit, not one per step.  The stages and
    random numbers are the step-major loop's, so the results are the same
    bits.  For independent vesicles only (no receptor capacity).
    ``bound_steps`` [M]: the thread's partial of cells.cell_bound_steps."""
    passive = _passive_axes(dom)
    for i in range(i0, i1):
        # one in flight, waiting or unborn through n1 - 1 is not called: a call
        # passing the containers costs ~0.2 µs, and one per such vesicle and
        # chunk was a quarter of S2's kernel time in a run (seven chunks)
        if _due(i, ves, par) >= n1:
            continue
        _run_vesicle(i, n0, n1, passive, bound_steps, None, run, ves, par, dom, cells, types, grid)


@numba.njit(cache=True)
def _scratch(nb):
    """A block's work arrays: the ids of its FREE vesicles and their normals."""
    return np.empty(nb, dtype=np.int64), np.empty(nb), np.empty(nb), np.empty(nb)


# The parallel loops take the containers one by one: Numba's parallel
# regions accept named tuples of arrays, not named tuples of named tuples.
# They run one contiguous range of blocks per thread (Numba's static
# schedule of a prange over blocks did the same), so that each range adds
# its vesicles' bound steps to a partial of its own: no races, and integer
# sums are exact in any order.
@numba.njit(cache=True)
def _add_bound_steps(partials, cells):
    """cells.cell_bound_steps += the threads' partials (integers: exact in any order)."""
    for t in range(partials.shape[0]):
        for c in range(partials.shape[1]):
            cells.cell_bound_steps[c] += partials[t, c]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _advance_blocks(n0, n1, block, parts, run, ves, par, dom, cells, types, grid):
    """Blocks of `block` vesicles in parallel (`parts` ranges of them), each
    through steps n0..n1-1."""
    n = ves.state.size
    nblocks = (n + block - 1) // block
    partials = np.zeros((parts, cells.cell_bound_steps.size), dtype=np.int64)
    for t in numba.prange(parts):
        for b in range(t * nblocks // parts, (t + 1) * nblocks // parts):
            advance_block(b * block, min((b + 1) * block, n), n0, n1, _scratch(block),
                          partials[t], run, ves, par, dom, cells, types, grid)
    _add_bound_steps(partials, cells)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _advance_vesicle_blocks(n0, n1, block, parts, run, ves, par, dom, cells, types, grid):
    """Blocks of `block` vesicles in parallel (`parts` ranges of them, as in
    _advance_blocks), each vesicle by vesicle."""
    n = ves.state.size
    nblocks = (n + block - 1) // block
    partials = np.zeros((parts, cells.cell_bound_steps.size), dtype=np.int64)
    for t in numba.prange(parts):
        for b in range(t * nblocks // parts, (t + 1) * nblocks // parts):
            advance_vesicles(b * block, min((b + 1) * block, n), n0, n1, partials[t], run, ves, par,
                             dom, cells, types, grid)
    _add_bound_steps(partials, cells)


@numba.njit(cache=True)
def count_bound(ves, cells):
    """cells.bound_count[c] = number of BOUND vesicles on cell c."""
    cells.bound_count[:] = 0
    for i in range(ves.state.size):
        if ves.state[i] == BOUND:
            cells.bound_count[ves.cell[i]] += 1


# -- the synced loop (receptor capacity) ----------------------------------------------
# With finite capacity, binding in step n reads each cell's bound count as of
# the start of step n (the count of vesicles BOUND to it then), so vesicles
# depend on each other, but only there: every other stage, and binding to a
# cell without a capacity, reads nothing of other vesicles.  The loop runs
# windows of SYNCED_WINDOW steps in two phases:
#  A. in parallel, each vesicle runs vesicle by vesicle (_run_vesicle) to the
#     window's end, or up to the first step in which it would read a count:
#     a contact with a cell of finite capacity.  There it halts, its state as
#     at that step's start.  A vesicle leaving BOUND on such a cell records
#     the change under its step.
#  B. in one thread, step by step: at step s the changes recorded under
#     steps before s are added to the counts, which are then exact (every
#     vesicle's trajectory is known up to its halt or the window's end, and
#     a change of step s' counts from step s' + 1 on); each vesicle halted at
#     s takes step s reading the count, and runs on to its next halt or the
#     window's end, recording its changes (a halt at s' > s goes into the
#     bucket of s').
# So every binding reads the count of its step, as in advance_block, and the
# results are the same bits; the order of vesicles within a step changes
# nothing (a vesicle changes only its own state).  A vesicle records at most
# two changes per run (binding at its halt, then leaving BOUND; another
# binding needs a halt first), and all changes of its earlier runs count
# before it runs again, so each has two record slots (nodes 2i, 2i + 1).
# Between windows the vesicles that act in no step of the next window sit in
# a calendar of wake-up steps (a ring of buckets, singly linked through
# `nxt`), so a waiting, flying or unborn vesicle costs no visit per window; a
# wake-up more than a ring's length ahead is met once per lap and put back.
# The parts take slices of SYNCED_SLICE vesicles in turn (part t: slices t,
# t + parts, ...), so that vesicles born late, which come last, do not leave
# a part idle.
SYNCED_WINDOW = 128
SYNCED_SLICE = 64
SYNCED_RING = 4096  # a power of two, at least SYNCED_WINDOW


@inline
def _settled(i, ves, cells, types):
    """Whether vesicle i will never change again: it left, or is in an
    endosome without endosomal rates."""
    st = ves.state[i]
    if st == EXITED or st == CLEARED or st == DELIVERED or st == DEGRADED:
        return True
    return st == INTERNALIZED and types.type_p_endo[cells.ctype[ves.cell[i]]] <= 0.0


@inline
def _schedule(i, w, nxt, head):
    """Put vesicle i in the calendar bucket of step w."""
    b = w & (SYNCED_RING - 1)
    nxt[i] = head[b]
    head[b] = i


@inline
def _place(i, m, nact, act, nxt, head, ves, par, cells, types):
    """After a run to step m: vesicle i dropped (settled), listed in act
    (acting at m) or put in the calendar.  Returns the new length of act."""
    if _settled(i, ves, cells, types):
        return nact
    w = _due(i, ves, par)
    if w > m:
        _schedule(i, w, nxt, head)
        return nact
    act[nact] = i
    return nact + 1


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _calendar_start(t, parts, n0, act, nxt, head, ves, par, cells, types):
    """The calendar of part t's vesicles at step n0: those acting at n0
    listed in act, the others in head's buckets.  Returns how many act."""
    n = ves.state.size
    m = 0
    for first in range(t * SYNCED_SLICE, n, parts * SYNCED_SLICE):
        for i in range(first, min(first + SYNCED_SLICE, n)):
            m = _place(i, n0, m, act, nxt, head, ves, par, cells, types)
    return m


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _window_part(n, m, nact, act, nxt, head, halted, halt_step, rhead, node_next, node_cell,
                 bound_steps, run, ves, par, dom, cells, types, grid):
    """Phase A of window [n, m) for one part: the vesicles listed in
    act[:nact] and those the calendar wakes in the window, each run to m or
    to its halt (listed in halted, its step in halt_step).  Returns (acting
    at m, listed in act; halted)."""
    passive = _passive_axes(dom)
    keep = 0
    nhalt = 0
    for k in range(nact + m - n):
        if k < nact:  # the list; then the buckets of steps n..m-1
            i = act[k]
        else:
            b = (n + k - nact) & (SYNCED_RING - 1)
            i = head[b]
            head[b] = -1
        while i >= 0:
            j = nxt[i] if k >= nact else -1
            w = _due(i, ves, par)
            if k >= nact and w >= m:  # a lap early
                _schedule(i, w, nxt, head)
            else:
                r = _run_vesicle(i, n, m, passive, bound_steps, (n, n, rhead, node_next, node_cell), run,
                                 ves, par, dom, cells, types, grid)
                if r < m:
                    halted[nhalt] = i
                    halt_step[nhalt] = r
                    nhalt += 1
                else:
                    keep = _place(i, m, keep, act, nxt, head, ves, par, cells, types)
            i = j
    return keep, nhalt


@inline
def _count_changes(b, rhead, node_next, node_cell, cells):
    """Add the changes in bucket b of every part to the bound counts."""
    for t in range(rhead.shape[0]):
        node = rhead[t, b]
        rhead[t, b] = -1
        while node >= 0:
            c = node_cell[node]
            if c >= 0:
                cells.bound_count[c] += 1
            else:
                cells.bound_count[-1 - c] -= 1
            node = node_next[node]


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _window_halts(n, m, parts, nact, act, nxt, head, nhalt, halted, halt_step, hhead, rhead, node_next,
                  node_cell, bound_steps, run, ves, par, dom, cells, types, grid):
    """Phase B of window [n, m), in one thread: step by step, the counts
    brought up to the step, then the vesicles halted in it (hhead: buckets
    of steps from n, linked through nxt) run on.  Updates nact."""
    passive = _passive_axes(dom)
    for t in range(parts):
        for k in range(nhalt[t]):
            i = halted[t, k]
            nxt[i] = hhead[halt_step[t, k] - n]
            hhead[halt_step[t, k] - n] = i
    for s in range(n, m):
        if s > n:
            _count_changes(s - 1 - n, rhead, node_next, node_cell, cells)
        i = hhead[s - n]
        hhead[s - n] = -1
        while i >= 0:
            j = nxt[i]
            t = (i // SYNCED_SLICE) % parts
            r = _run_vesicle(i, s, m, passive, bound_steps, (s + 1, n, rhead[t], node_next, node_cell),
                             run, ves, par, dom, cells, types, grid)
            if r < m:
                nxt[i] = hhead[r - n]
                hhead[r - n] = i
            else:
                nact[t] = _place(i, m, nact[t], act[t], nxt, head[t], ves, par, cells, types)
            i = j
    _count_changes(m - 1 - n, rhead, node_next, node_cell, cells)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _advance_synced(n0, n1, window, parts, run, ves, par, dom, cells, types, grid):
    """Steps n0..n1-1 in windows of `window` steps (at most SYNCED_RING),
    phase A in `parts` parts in parallel, phase B in this thread (above).
    The loop lives here: a Python-level loop would pay Numba's dispatch of
    the containers every window."""
    n = ves.state.size
    per_part = -(-n // (parts * SYNCED_SLICE)) * SYNCED_SLICE  # the most vesicles of a part
    nxt = np.empty(n, dtype=np.int64)
    act = np.empty((parts, per_part), dtype=np.int64)
    halted = np.empty((parts, per_part), dtype=np.int64)
    halt_step = np.empty((parts, per_part), dtype=np.int64)
    head = np.full((parts, SYNCED_RING), -1, dtype=np.int64)
    hhead = np.full(window, -1, dtype=np.int64)
    rhead = np.full((parts, window), -1, dtype=np.int64)
    node_next = np.empty(2 * n, dtype=np.int64)
    node_cell = np.empty(2 * n, dtype=np.int64)
    nact = np.zeros(parts, dtype=np.int64)
    nhalt = np.zeros(parts, dtype=np.int64)
    partials = np.zeros((parts, cells.cell_bound_steps.size), dtype=np.int64)
    count_bound(ves, cells)
    for t in numba.prange(parts):
        nact[t] = _calendar_start(t, parts, n0, act[t], nxt, head[t], ves, par, cells, types)
    for w0 in range(n0, n1, window):
        w1 = min(w0 + window, n1)
        for t in numba.prange(parts):
            nact[t], nhalt[t] = _window_part(w0, w1, nact[t], act[t], nxt, head[t], halted[t],
                                             halt_step[t], rhead[t], node_next, node_cell, partials[t],
                                             run, ves, par, dom, cells, types, grid)
        _window_halts(w0, w1, parts, nact, act, nxt, head, nhalt, halted, halt_step, hhead, rhead,
                      node_next, node_cell, partials[0], run, ves, par, dom, cells, types, grid)
    _add_bound_steps(partials, cells)
    count_bound(ves, cells)  # the cells without a capacity too


def advance(n0, n1, args):
    """Advance all vesicles from step n0 to n1 in place (args: state.StepArgs).

    With finite receptor capacity the vesicles interact through the bound
    count of each cell, which binding reads as of the start of each step; the
    kernel then runs the synced loop.  Without it every vesicle is
    independent and runs all its steps at once (fused, cache-friendly)."""
    n = args.vesicles.state.size
    if np.any(args.cells.ccapacity > 0):
        _advance_synced(n0, n1, SYNCED_WINDOW, numba.get_num_threads(), *args)
    elif args.run.adaptive:  # leaps: vesicle by vesicle, so a leap costs one visit
        _advance_vesicle_blocks(n0, n1, block_size(n), numba.get_num_threads(), *args)
        count_bound(args.vesicles, args.cells)
    else:
        _advance_blocks(n0, n1, block_size(n), numba.get_num_threads(), *args)
        count_bound(args.vesicles, args.cells)


def block_size(n):
    """Vesicles per block: enough blocks to balance the threads, few enough
    that the per-block call (~0.4 µs) stays negligible, and small enough that
    a block's positions and normals stay in cache from one step to the next
    (4096 vesicles: ~200 kB)."""
    return min(max(256, -(-n // (64 * numba.get_num_threads()))), 4096)
