"""The vesicle step in plain NumPy: the reference and test oracle.

Slow and obvious: one vectorized pass per step over all vesicles, every
uniform drawn for every vesicle.  Twin of ``step_numba.py`` and
exodiff_step.cuh: the same stage functions with the same names in the same
order (``_name`` here and in Numba, ``name`` in CUDA), each applied to all the
vesicles it concerns, with the same expressions in the same order, so the
three agree bit for bit; see step_numba for the physics of each stage.
``advance(n0, n1, args)`` takes a ``state.StepArgs``.  Imports no Numba.
"""
import math

import numpy as np

from .constants import (ABSORB, BOUND, BRIDGE_CUTOFF, CLEARED, DEGRADED, DELIVERED, EXITED, FREE,
                        INTERNALIZED, PENDING, PERIODIC)
from .firstpassage import ball_horizon_uniform
from .leap import (LEAP_ACCEPT_OFFSET, LEAP_ATTEMPT_STRIDE, LEAP_CAP_SPREADS, LEAP_LOOK_SIGMAS,
                   LEAP_MARGIN_SIGMAS, LEAP_MAX_ATTEMPTS, LEAP_MIN_SIGMAS, LEAP_MIN_STEPS,
                   fold_reflecting, horizon_proposal, leap_path, sphere_point, wait_steps)
from .philox import (STREAM_BOUND, STREAM_CONTACT, STREAM_DIFFUSE, STREAM_LEAP, STREAM_LEAP_POSITION,
                     normals4_np, poly_cos_sin_2pi_np, uniforms4_np)
from .surface import (EPS_MAX, G1, G2, G3, G4, G5, Q10, Q11, Q12, Q20, Q21, Q22, Q30, Q31,
                      Q32)


def _flat_probability_np(kp):
    """Vectorized twin of ``surface.flat_probability``."""
    y = kp / (1.0 + kp)
    g = y * (G1 + y * (G2 + y * (G3 + y * (G4 + y * G5))))
    return y - y * (1.0 - y) * g


def _curvature_factor_np(y, eps):
    """Vectorized twin of ``surface.curvature_factor``."""
    e = np.where(eps < EPS_MAX, eps, EPS_MAX)
    return 1.0 + e * ((Q10 + y * (Q11 + y * Q12))
                      + e * ((Q20 + y * (Q21 + y * Q22))
                             + e * (Q30 + y * (Q31 + y * Q32))))


def binding_probability_np(kappa, diffusion, dt, radius):
    """Vectorized twin of ``surface.binding_probability``."""
    kappa = np.broadcast_to(np.asarray(kappa, dtype=np.float64), np.shape(diffusion))
    with np.errstate(invalid="ignore", divide="ignore"):
        kp = 0.5 * kappa * np.sqrt(math.pi * dt / diffusion)
        eps = np.sqrt(2.0 * diffusion * dt) / radius
        p = _flat_probability_np(kp / _curvature_factor_np(kp / (1.0 + kp), eps))
    p = np.where(np.isinf(kappa), 1.0, p)
    return np.where(kappa <= 0.0, 0.0, p)


def release_fraction_np(kappa, diffusion, dt, radius):
    """Vectorized twin of ``surface.release_fraction``."""
    kappa = np.broadcast_to(np.asarray(kappa, dtype=np.float64), np.shape(diffusion))
    with np.errstate(invalid="ignore", divide="ignore"):
        kp = 0.5 * kappa * np.sqrt(math.pi * dt / diffusion)
        eps = np.sqrt(2.0 * diffusion * dt) / radius
        f = binding_probability_np(kappa, diffusion, dt, radius) * _curvature_factor_np(0.0, eps) / kp
    f = np.where(f < 1.0, f, 1.0)
    f = np.where(np.isinf(kappa), 0.0, f)
    return np.where(kappa <= 0.0, 1.0, f)


def unbind_distance_np(u, v, diffusion, dt, radius):
    """Vectorized twin of ``surface.unbind_distance``."""
    return u * np.sqrt(4.0 * diffusion * dt) * np.sqrt(-np.log(v))


# -- helpers ------------------------------------------------------------------------
def _fold(x, a, dom, image, idx):
    """Wrap (periodic) or mirror (closed) coordinates x of vesicles idx on axis a."""
    L = dom.box[a]
    if dom.face_kind[2 * a] == PERIODIC:
        out = (x < 0.0) | (x >= L)
        k = np.where(out, np.floor(x / L), 0.0)
        x = np.where(out, x - k * L, x)
        up = x >= L
        x = np.where(up, x - L, x)
        image[idx, a] += (k + up).astype(np.int32)
        return x
    x = np.where(x < 0.0, -x, x)
    x = np.where(x > L, L - (x - L), x)
    return np.where(x < 0.0, 0.0, x)


def _min_image(e, a, dom):
    if dom.face_kind[2 * a] == PERIODIC:
        L = dom.box[a]
        return e - L * np.floor(e / L + 0.5)
    return e


def _bridge(d0, d1, Ddt):
    """Brownian-bridge crossing probability exp(−d0·d1/(D dt)) where both
    ends are outside (d0, d1 > 0) and it is above the cutoff, else 0."""
    arg = d0 * d1 / Ddt
    ok = (d0 > 0.0) & (d1 > 0.0) & (arg < BRIDGE_CUTOFF)
    return np.where(ok, np.exp(-np.where(ok, arg, 0.0)), 0.0)


def _bin_of(p, grid):
    bin_size, nbins = grid.bin_size, grid.nbins
    ix = np.minimum(np.maximum(np.floor(p[:, 0] / bin_size[0]).astype(np.int64), 0), nbins[0] - 1)
    iy = np.minimum(np.maximum(np.floor(p[:, 1] / bin_size[1]).astype(np.int64), 0), nbins[1] - 1)
    iz = np.minimum(np.maximum(np.floor(p[:, 2] / bin_size[2]).astype(np.int64), 0), nbins[2] - 1)
    return (ix * nbins[1] + iy) * nbins[2] + iz


def _place_on(idx, c, ex, ey, ez, f, ves, dom, cells):
    """Vesicles idx at the centres of cells c plus f·(ex, ey, ez), folded into the box."""
    for a, e in enumerate((ex, ey, ez)):
        ves.pos[idx, a] = _fold(cells.ccenter[c, a] + e * f, a, dom, ves.image, idx)


# -- the stages, in the order of the twins ---------------------------------------------
def _displacement(idx, n, run, ves, par, dom):
    """1. Gaussian step plus drift of vesicles idx; returns their start points [n, 3]."""
    dt = run.dt
    s = par.sigma[idx]
    z0, z1, z2, _ = normals4_np(idx, n, STREAM_DIFFUSE, run.k0, run.k1)
    p0 = ves.pos[idx].copy()
    ves.pos[idx, 0] = p0[:, 0] + (s * z0 + dom.flow[0] * dt)
    ves.pos[idx, 1] = p0[:, 1] + (s * z1 + dom.flow[1] * dt)
    ves.pos[idx, 2] = p0[:, 2] + (s * z2 + (dom.flow[2] - par.settling[idx]) * dt)
    return p0


def _cross_faces(idx, a, p0, t1, D, Ddt, uf, alive, run, ves, dom):
    """2. On axis a, for the vesicles idx still alive: wrap, mirror, or
    absorb at the faces.  Returns (uf, alive)."""
    L = dom.box[a]
    x = ves.pos[idx, a]
    if dom.face_kind[2 * a] != PERIODIC:
        for side in range(2):
            d0 = p0[:, a] if side == 0 else L - p0[:, a]
            d1 = x if side == 0 else L - x
            if dom.face_kind[2 * a + side] == ABSORB:
                pc = np.where((d1 <= 0.0) | (d0 <= 0.0), 1.0, _bridge(d0, d1, Ddt))
                pa = pc * binding_probability_np(dom.face_kappa, D, run.dt, math.inf)
                test = alive & (pc > 0.0) & (pa > 0.0)
                gone = test & (uf < pa)
                ves.state[idx[gone]] = EXITED
                ves.exit_time[idx[gone]] = t1
                x = np.where(gone, 0.0 if side == 0 else L, x)  # on the face
                alive = alive & ~gone
                go_on = test & ~gone
                with np.errstate(divide="ignore", invalid="ignore"):
                    uf = np.where(go_on, (uf - pa) / (1.0 - pa), uf)
            crossed = alive & (d1 < 0.0)  # and not absorbed: mirror
            x = np.where(crossed, -x if side == 0 else L - (x - L), x)
    # vesicles absorbed on an earlier axis keep their unfolded values
    x[alive] = _fold(x[alive], a, dom, ves.image, idx[alive])
    ves.pos[idx, a] = x
    return uf, alive


def _contact(idx, p0, Ddt, uc, alive, ves, par, dom, cells, grid):
    """3. For the vesicles idx still alive, the first cell of the end
    point's bin in contact.  Returns (cell or -1, ex, ey, ez, r1, d1, uc) per
    vesicle: the end point relative to the cell centre, their distance and
    the distance to contact."""
    b = _bin_of(ves.pos[idx], grid)
    first, count = grid.gstart[b], grid.gstart[b + 1] - grid.gstart[b]
    hit = np.full(idx.size, -1, dtype=np.int64)
    hx, hy, hz, hr, hd = (np.zeros(idx.size) for _ in range(5))
    searching = alive.copy()
    for k in range(int(count.max(initial=0))):
        m = searching & (k < count)
        j = np.nonzero(m)[0]
        if j.size == 0:
            break
        c = grid.gitems[first[j] + k]
        vi = idx[j]
        Rc = cells.cradius[c] + par.vradius[vi]
        ex = _min_image(ves.pos[vi, 0] - cells.ccenter[c, 0], 0, dom)
        ey = _min_image(ves.pos[vi, 1] - cells.ccenter[c, 1], 1, dom)
        ez = _min_image(ves.pos[vi, 2] - cells.ccenter[c, 2], 2, dom)
        r1 = np.sqrt(ex * ex + ey * ey + ez * ez)
        d1 = r1 - Rc
        qx = _min_image(p0[j, 0] - cells.ccenter[c, 0], 0, dom)
        qy = _min_image(p0[j, 1] - cells.ccenter[c, 1], 1, dom)
        qz = _min_image(p0[j, 2] - cells.ccenter[c, 2], 2, dom)
        d0 = np.sqrt(qx * qx + qy * qy + qz * qz) - Rc
        pc = np.where(d0 <= 0.0, 1.0, _bridge(d0, d1, Ddt[j]))
        inside = d1 <= 0.0
        bridged = ~inside & (pc > 0.0) & (uc[j] < pc)
        now = inside | bridged
        hit[j[now]] = c[now]
        for arr, val in ((hx, ex), (hy, ey), (hz, ez), (hr, r1), (hd, d1)):
            arr[j[now]] = val[now]
        searching[j[now]] = False
        later = ~now & (pc > 0.0)
        uc[j[later]] = (uc[j[later]] - pc[later]) / (1.0 - pc[later])
    return hit, hx, hy, hz, hr, hd, uc


def _binding(vi, c, t1, ex, ey, ez, r1, D, ub, run, ves, par, dom, cells, types):
    """4. Vesicles vi in contact with cells c bind with P(κ, D, dt) times the
    free receptor fraction, on the surface along (ex, ey, ez).  Returns
    which bound."""
    Rc = cells.cradius[c] + par.vradius[vi]
    pb = binding_probability_np(cells.ckappa[c], D, run.dt, Rc)
    cap = cells.ccapacity[c]
    with np.errstate(divide="ignore", invalid="ignore"):
        free = 1.0 - cells.bound_count[c] / cap
        pb = np.where(cap > 0, np.where(free > 0.0, pb * free, 0.0), pb)
    binds = ub < pb
    vb, cb = vi[binds], c[binds]
    _place_on(vb, cb, ex[binds], ey[binds], ez[binds], Rc[binds] / r1[binds], ves, dom, cells)
    ves.state[vb] = BOUND
    ves.cell[vb] = cb
    first = np.isnan(ves.first_bound_time[vb])
    ves.first_bound_time[vb[first]] = t1
    ves.first_bound_cell[vb[first]] = cb[first]
    return binds


def _reflection(vi, c, ex, ey, ez, r1, ves, par, dom, cells):
    """5. End points inside contact and not bound: mirrored radially."""
    Rc = cells.cradius[c] + par.vradius[vi]
    _place_on(vi, c, ex, ey, ez, (2.0 * Rc - r1) / r1, ves, dom, cells)


def _unbinding_placement(vi, c, Rc, u2, u3, run, ves, par, dom, cells):
    """6. Unbound vesicles move out along the membrane normal of their
    binding site, to ``unbind_distance`` outside contact."""
    ex = _min_image(ves.pos[vi, 0] - cells.ccenter[c, 0], 0, dom)
    ey = _min_image(ves.pos[vi, 1] - cells.ccenter[c, 1], 1, dom)
    ez = _min_image(ves.pos[vi, 2] - cells.ccenter[c, 2], 2, dom)
    r = np.sqrt(ex * ex + ey * ey + ez * ez)
    f = (Rc + unbind_distance_np(u2, u3, par.diffusion[vi], run.dt, Rc)) / r
    _place_on(vi, c, ex, ey, ez, f, ves, dom, cells)
    ves.state[vi] = FREE
    ves.cell[vi] = -1


def _bound_events(idx, n, t1, horizon, run, ves, par, dom, cells, types):
    """7. BOUND vesicles idx unbind, are internalized or fuse (competing rates).
    ``horizon``: in adaptive stepping the steps to the next horizon, and
    those without an event in step n wait (kernels/leap.py, "Waits"); 0 in
    fixed stepping."""
    c = ves.cell[idx]
    T = cells.ctype[c]
    u0, u1, u2, u3 = uniforms4_np(idx, n, STREAM_BOUND, run.k0, run.k1)
    p_event, frac_off = types.type_p_event[T], types.type_frac_off[T]
    event, k = _wait(idx, n, horizon, p_event, u0, ves)
    ves.leap_steps[idx] += k - 1  # steps not taken (the run summary)
    ves.bound_duration[idx] += k * run.dt
    np.add.at(cells.cell_bound_steps, c, k)
    beyond = event & (u1 >= frac_off)
    fuse = beyond & (u1 >= types.type_cut_fuse[T])
    ves.state[idx[fuse]] = DELIVERED
    ves.fused_time[idx[fuse]] = t1
    internalize = beyond & ~fuse
    ves.state[idx[internalize]] = INTERNALIZED
    first = internalize & (ves.internalized_cell[idx] < 0)  # not recycled before
    ves.internalized_time[idx[first]] = t1
    ves.internalized_cell[idx[first]] = c[first]
    # unbind, unless the release counts as rebinding within the step
    Rc = cells.cradius[c] + par.vradius[idx]
    release = release_fraction_np(cells.ckappa[c], par.diffusion[idx], run.dt, Rc)
    unbind = event & ~internalize & (u1 < frac_off * release)
    _unbinding_placement(idx[unbind], c[unbind], Rc[unbind], u2[unbind], u3[unbind],
                         run, ves, par, dom, cells)


def _wait(idx, n, horizon, p, u0, ves):
    """Which of the vesicles idx (BOUND, or INTERNALIZED with p > 0; p: their
    event probability per step, u0: the first uniform of their draw) have
    their event in step n, and how many steps this visit covers: 1, or in
    adaptive stepping (``horizon`` > 0) for those without an event a wait,
    which ends at leap_end and marks in leap_look the event due at its end
    (kernels/leap.py, "Waits")."""
    event = (p > 0.0) & (u0 < p)
    k = np.ones(idx.size, dtype=np.int64)
    if horizon <= 0:  # fixed stepping (or past the run's last stop: no horizon left)
        return event, k
    event = event | (ves.leap_look[idx] == -1 - n)  # due: a wait ended here
    w = np.nonzero(~event)[0]
    k[w] = [wait_steps(u0[m], p[m], horizon) for m in w]
    ves.leap_end[idx[w]] = n + k[w]
    due = w[k[w] < horizon]
    ves.leap_look[idx[due]] = -1 - (n + k[due])
    return event, k


def _clearance(idx, t1, alive, ur, ves, par):
    """8. Vesicles idx still alive are cleared with probability 1 − exp(−k_clear dt)."""
    p = par.p_clear[par.species[idx]]
    cleared = alive & (p > 0.0) & (ur < p)
    ves.state[idx[cleared]] = CLEARED
    ves.cleared_time[idx[cleared]] = t1


def _births(idx, n, ves, par):
    """9. PENDING vesicles idx are born (FREE) at the end of their birth step."""
    ves.state[idx[par.birth_step[idx] <= n]] = FREE


def _endosome_events(idx, n, t1, horizon, run, ves, par, dom, cells, types):
    """10. INTERNALIZED vesicles idx escape (DELIVERED), are degraded or are
    recycled to the medium at their cell's surface (competing rates);
    ``horizon`` as in _bound_events (no waits without endosomal rates: then
    nothing ever happens to them)."""
    idx = idx[types.type_p_endo[cells.ctype[ves.cell[idx]]] > 0.0]
    c = ves.cell[idx]
    T = cells.ctype[c]
    u0, u1, u2, u3 = uniforms4_np(idx, n, STREAM_BOUND, run.k0, run.k1)
    p_endo = types.type_p_endo[T]
    event, _ = _wait(idx, n, horizon, p_endo, u0, ves)
    escape = event & (u1 < types.type_frac_escape[T])
    ves.state[idx[escape]] = DELIVERED
    ves.escape_time[idx[escape]] = t1
    recycle = event & ~escape & (u1 >= types.type_cut_recycle[T])
    degrade = event & ~escape & ~recycle
    ves.state[idx[degrade]] = DEGRADED
    ves.degraded_time[idx[degrade]] = t1
    vr, cr = idx[recycle], c[recycle]
    Rc = cells.cradius[cr] + par.vradius[vr]
    _unbinding_placement(vr, cr, Rc, u2[recycle], u3[recycle], run, ves, par, dom, cells)
    ves.recycled[vr] += 1


def _leap_horizon(n, run):
    """Steps a leap from step n may last: to the next observation, snapshot
    or horizon stop (kernels/leap.py, item 2)."""
    e0, e1 = run.horizon_every[0], run.horizon_every[1]
    h = min((n // e0 + 1) * e0, (n // e1 + 1) * e1)
    stops = run.horizon_stops
    return int(min(h, stops[min(np.searchsorted(stops, n, side="right"), stops.size - 1)]) - n)


def _leap_faces(p, drift, dom):
    """(d, w) for points p [n, 3] under drift [n, 3]: the distance to the
    nearest absorbing face (kept m away), and to the nearest reflecting
    face under drift (the ball may touch it); a reflecting face on a
    drift-free axis is crossed by folding (kernels/leap.py, item 5)."""
    d = np.full(p.shape[0], np.inf)
    w = np.full(p.shape[0], np.inf)
    for a in range(3):
        if dom.face_kind[2 * a] == PERIODIC:
            continue
        for side in range(2):
            gap = p[:, a] if side == 0 else dom.box[a] - p[:, a]
            if dom.face_kind[2 * a + side] == ABSORB:
                d = np.minimum(d, gap)
            else:
                w = np.where(drift[:, a] != 0.0, np.minimum(w, gap), w)
    return d, w


def _horizon_point(i, n, sh, run):
    """Position in the unit ball at dimensionless time sh given survival,
    for the leap of vesicle i from step n: exact rejection (kernels/leap.py, item 4)."""
    uniform = ball_horizon_uniform(sh)
    for j in range(LEAP_MAX_ATTEMPTS):
        w = STREAM_LEAP_POSITION + LEAP_ATTEMPT_STRIDE * j
        if uniform:
            u0, u1, u2, u3 = (float(u) for u in uniforms4_np(i, n, w, run.k0, run.k1))
            c_phi, s_phi = (float(c) for c in poly_cos_sin_2pi_np(u2))
            y0, y1, y2, acc = horizon_proposal(True, u0, u1, 0.0, c_phi, s_phi, sh)
            if u3 < acc:
                return y0, y1, y2
        else:
            z0, z1, z2, _ = (float(z) for z in normals4_np(i, n, w, run.k0, run.k1))
            y0, y1, y2, acc = horizon_proposal(False, z0, z1, z2, 0.0, 0.0, sh)
            if acc > 0.0 and float(uniforms4_np(i, n, w + LEAP_ACCEPT_OFFSET, run.k0, run.k1)[0]) < acc:
                return y0, y1, y2
    return 0.0, 0.0, 0.0


def _try_leap(idx, n, run, ves, par, dom, cells, grid):
    """11. FREE vesicles idx (not in flight, looking) far from every surface
    leap (kernels/leap.py): their ball from the clearance, then leap_path
    (and the horizon sampler); those too close put their next look off.
    Returns which leapt."""
    dt = run.dt
    horizon = _leap_horizon(n, run)
    p = ves.pos[idx]
    s = par.sigma[idx]
    vx = np.full(idx.size, dom.flow[0])
    vy = np.full(idx.size, dom.flow[1])
    vz = dom.flow[2] - par.settling[idx]
    speed = np.sqrt(vx * vx + vy * vy + vz * vz)
    d, w = _leap_faces(p, np.stack([vx, vy, vz], axis=1), dom)
    e = []
    for a in range(3):
        k = np.minimum(np.maximum(np.floor(p[:, a] / grid.bin_size[a]).astype(np.int64), 0),
                       grid.nbins[a] - 1)
        e.append(p[:, a] - (k.astype(np.float64) + 0.5) * grid.bin_size[a])
    dist = np.sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2])
    b = _bin_of(p, grid)
    d = np.minimum(d, grid.clearance[b] - dist)  # the cells the bin does not list
    margin = LEAP_MARGIN_SIGMAS * s + speed * dt
    r_near = np.minimum(d - margin, w)
    near = ~(r_near > LEAP_MIN_SIGMAS * s)  # too close already: the look ends here
    first, count = grid.gstart[b], grid.gstart[b + 1] - grid.gstart[b]
    if grid.gitems.size == 0:  # no cell lookup (as in _contact): no listed cells
        count = np.zeros_like(count)
    for k in range(int(count.max(initial=0))):  # and those it lists, exactly
        j = np.nonzero(k < count)[0]
        c = grid.gitems[first[j] + k]
        ex = _min_image(p[j, 0] - cells.ccenter[c, 0], 0, dom)
        ey = _min_image(p[j, 1] - cells.ccenter[c, 1], 1, dom)
        ez = _min_image(p[j, 2] - cells.ccenter[c, 2], 2, dom)
        dc = np.sqrt(ex * ex + ey * ey + ez * ez) - (cells.cradius[c] + par.vradius[idx[j]])
        d[j] = np.minimum(d[j], dc)
    r = np.where(near, r_near, np.minimum(d - margin, w))
    steps = np.full(idx.size, horizon, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        kmax = r / (2.0 * speed * dt)
    short = (speed > 0.0) & (kmax < steps)
    steps[short] = np.floor(np.maximum(kmax[short], -1.0)).astype(np.int64)
    R = r - speed * (steps * dt)
    R = np.minimum(R, LEAP_CAP_SPREADS * (s * np.sqrt(np.maximum(steps, 0).astype(np.float64))))
    go = (horizon >= LEAP_MIN_STEPS) & (s > 0.0) & ~near & (steps >= LEAP_MIN_STEPS) & (R >= LEAP_MIN_SIGMAS * s)
    _put_off(idx, (horizon >= LEAP_MIN_STEPS) & (s > 0.0) & ~go, n, horizon,
             LEAP_MIN_SIGMAS * s - r, s, speed, dt, ves)
    u_time, u_clear, u_cos, u_phi = uniforms4_np(idx, n, STREAM_LEAP, run.k0, run.k1)
    for m in np.nonzero(go)[0]:  # one by one, as the twins
        i = int(idx[m])
        k, cleared, g, sh = leap_path(float(u_time[m]), float(u_clear[m]), int(steps[m]), float(R[m]),
                                      float(par.diffusion[i]), dt, float(par.p_clear[par.species[i]]))
        z = (0.0, 0.0, 0.0)
        if sh > 0.0:  # inside at the horizon
            y = _horizon_point(i, n, sh, run)
        else:
            c_phi, s_phi = (float(c) for c in poly_cos_sin_2pi_np(u_phi[m]))
            y = sphere_point(float(u_cos[m]), c_phi, s_phi, 1.0)
            if g > 0.0:
                z = tuple(float(zz) for zz in normals4_np(i, n + k - 1, STREAM_DIFFUSE, run.k0, run.k1)[:3])
        t = k * dt
        one = np.array([i])
        for ax, v in enumerate((float(vx[m]), float(vy[m]), float(vz[m]))):
            x = float(p[m, ax]) + (float(R[m]) * y[ax] + (v * t + g * z[ax]))
            if dom.face_kind[2 * ax] == PERIODIC:
                ves.pos[i, ax] = _fold(np.array([x]), ax, dom, ves.image, one)[0]
            else:
                ves.pos[i, ax] = fold_reflecting(x, float(dom.box[ax]))
        ves.leap_end[i] = n + k
        ves.leaps[i] += 1
        ves.leap_steps[i] += k
        if cleared:
            ves.state[i] = CLEARED
            ves.cleared_time[i] = (n + k) * dt
    return go


def _put_off(idx, which, n, horizon, gap, s, speed, dt, ves):
    """The vesicles idx[which], ``gap`` closer to a surface than a leap
    needs, look again after min((gap/(LEAP_LOOK_SIGMAS·σ))², gap/(|v| dt))
    steps, at the horizon at the latest (kernels/leap.py)."""
    which = which & (gap > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = gap / (LEAP_LOOK_SIGMAS * s)
        j = q * q
        j = np.where(speed > 0.0, np.minimum(j, gap / (speed * dt)), j)
    j = np.minimum(j, float(horizon))
    ves.leap_look[idx[which]] = n + np.floor(j[which]).astype(np.int64)


# -- the loop -----------------------------------------------------------------------
def step(n, args):
    """Advance every vesicle through step n (t_n -> t_{n+1}) in place."""
    run, ves, par, dom, cells, types, grid = args
    t1 = (n + 1) * run.dt
    ids = np.arange(ves.state.size, dtype=np.int64)
    start_state = ves.state.copy()
    _births(ids[start_state == PENDING], n, ves, par)
    horizon = _leap_horizon(n, run) if run.adaptive else 0
    held = (start_state == BOUND) | (start_state == INTERNALIZED)
    if run.adaptive:  # waiting (kernels/leap.py, "Waits"): skipped
        held &= ves.leap_end <= n
    _bound_events(ids[held & (start_state == BOUND)], n, t1, horizon, run, ves, par, dom, cells, types)
    _endosome_events(ids[held & (start_state == INTERNALIZED)], n, t1, horizon, run, ves, par, dom,
                     cells, types)

    idx = ids[start_state == FREE]
    if run.adaptive:  # in flight: skipped; far from surfaces: leap
        idx = idx[ves.leap_end[idx] <= n]
        look = np.nonzero(ves.leap_look[idx] <= n)[0]
        leapt = look[_try_leap(idx[look], n, run, ves, par, dom, cells, grid)]
        idx = np.delete(idx, leapt)
    D = par.diffusion[idx]
    Ddt = D * run.dt
    p0 = _displacement(idx, n, run, ves, par, dom)
    uf, uc, ub, ur = uniforms4_np(idx, n, STREAM_CONTACT, run.k0, run.k1)
    alive = np.ones(idx.size, dtype=bool)
    for a in range(3):
        uf, alive = _cross_faces(idx, a, p0, t1, D, Ddt, uf, alive, run, ves, dom)

    if grid.gitems.size > 0:
        hit, ex, ey, ez, r1, d1, uc = _contact(idx, p0, Ddt, uc, alive, ves, par, dom, cells, grid)
        j = np.nonzero(hit >= 0)[0]
        c = hit[j]
        centre = r1[j] == 0.0  # end point at the centre: any normal will do
        ez[j[centre]] = 1.0
        r1[j[centre]] = 1.0
        binds = _binding(idx[j], c, t1, ex[j], ey[j], ez[j], r1[j], D[j], ub[j],
                         run, ves, par, dom, cells, types)
        alive[j[binds]] = False
        m = j[~binds & (d1[j] < 0.0)]
        _reflection(idx[m], hit[m], ex[m], ey[m], ez[m], r1[m], ves, par, dom, cells)

    _clearance(idx, t1, alive, ur, ves, par)


def count_bound(ves, cells):
    """cells.bound_count[c] = number of BOUND vesicles on cell c."""
    cells.bound_count[:] = np.bincount(ves.cell[ves.state == BOUND], minlength=cells.bound_count.size)


def advance(n0, n1, args):
    """Advance all vesicles from step n0 to n1, step by step (args: state.StepArgs)."""
    for n in range(n0, n1):
        step(n, args)
        count_bound(args.vesicles, args.cells)
