"""The vesicle step in plain NumPy: the reference and test oracle.

Slow and obvious: one vectorized pass per step over all vesicles, every
uniform drawn for every vesicle.  It follows ``step_numba.advance_block`` operation
for operation (same expressions, same order), so the two agree bit for bit;
see that module for the physics of each stage.
"""
import math

import numpy as np

from .constants import (ABSORB, BOUND, BRIDGE_CUTOFF, CLEARED, EXITED, FREE,
                        INTERNALIZED, KERNEL_ARGS, PENDING, PERIODIC)
from .philox import STREAM_BOUND, STREAM_CONTACT, STREAM_DIFFUSE, normals4_np, uniforms4_np
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


def _fold(x, a, box, face_kind, image, idx):
    """Wrap (periodic) or mirror (closed) coordinates x of vesicles idx on axis a."""
    L = box[a]
    if face_kind[2 * a] == PERIODIC:
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


def _min_image(e, a, box, face_kind):
    if face_kind[2 * a] == PERIODIC:
        L = box[a]
        return e - L * np.floor(e / L + 0.5)
    return e


def _bridge(d0, d1, Ddt):
    """Brownian-bridge crossing probability exp(−d0·d1/(D dt)) where both
    ends are outside (d0, d1 > 0) and it is above the cutoff, else 0."""
    arg = d0 * d1 / Ddt
    ok = (d0 > 0.0) & (d1 > 0.0) & (arg < BRIDGE_CUTOFF)
    return np.where(ok, np.exp(-np.where(ok, arg, 0.0)), 0.0)


def _bin_of(p, bin_size, nbins):
    ix = np.minimum(np.maximum(np.floor(p[:, 0] / bin_size[0]).astype(np.int64), 0), nbins[0] - 1)
    iy = np.minimum(np.maximum(np.floor(p[:, 1] / bin_size[1]).astype(np.int64), 0), nbins[1] - 1)
    iz = np.minimum(np.maximum(np.floor(p[:, 2] / bin_size[2]).astype(np.int64), 0), nbins[2] - 1)
    return (ix * nbins[1] + iy) * nbins[2] + iz


def _place_on(idx, c, ex, ey, ez, f, pos, ccenter, box, face_kind, image):
    """pos[idx] = centre of cell c + f·(ex, ey, ez), folded into the box."""
    for a, e in enumerate((ex, ey, ez)):
        pos[idx, a] = _fold(ccenter[c, a] + e * f, a, box, face_kind, image, idx)


def step(n, dt, k0, k1,
         pos, image, state, cell, t_bound, t_internalized, t_exit,
         diffusion, sigma, settling, vradius, species, birth_step, p_clear,
         box, face_kind, face_kappa, flow,
         ccenter, cradius, ctype, bound_count,
         t_kappa, t_capacity, t_p_event, t_frac_off,
         bin_size, nbins, gstart, gitems):
    """Advance every vesicle through step n (t_n -> t_{n+1}) in place."""
    t1 = (n + 1) * dt
    ids = np.arange(state.size, dtype=np.int64)
    start_state = state.copy()

    # PENDING: born at the end of the birth step
    born = (start_state == PENDING) & (birth_step <= n)
    state[born] = FREE

    # BOUND: unbinding or internalization
    idx = ids[start_state == BOUND]
    c = cell[idx]
    T = ctype[c]
    u0, u1, u2, u3 = uniforms4_np(idx, n, STREAM_BOUND, k0, k1)
    event = (t_p_event[T] > 0.0) & (u0 < t_p_event[T])
    internalize = event & (u1 >= t_frac_off[T])
    state[idx[internalize]] = INTERNALIZED
    t_internalized[idx[internalize]] = t1
    # unbind, unless the release counts as rebinding within the step
    Rc = cradius[c] + vradius[idx]
    release = release_fraction_np(t_kappa[T], diffusion[idx], dt, Rc)
    unbind = event & ~internalize & (u1 < t_frac_off[T] * release)
    idx, c, u2, u3, Rc = idx[unbind], c[unbind], u2[unbind], u3[unbind], Rc[unbind]
    ex = _min_image(pos[idx, 0] - ccenter[c, 0], 0, box, face_kind)
    ey = _min_image(pos[idx, 1] - ccenter[c, 1], 1, box, face_kind)
    ez = _min_image(pos[idx, 2] - ccenter[c, 2], 2, box, face_kind)
    r = np.sqrt(ex * ex + ey * ey + ez * ez)
    f = (Rc + unbind_distance_np(u2, u3, diffusion[idx], dt, Rc)) / r
    _place_on(idx, c, ex, ey, ez, f, pos, ccenter, box, face_kind, image)
    state[idx] = FREE
    cell[idx] = -1

    # FREE: 1. displacement
    idx = ids[start_state == FREE]
    D = diffusion[idx]
    s = sigma[idx]
    Ddt = D * dt
    z0, z1, z2, _ = normals4_np(idx, n, STREAM_DIFFUSE, k0, k1)
    p0 = pos[idx].copy()
    pos[idx, 0] = p0[:, 0] + (s * z0 + flow[0] * dt)
    pos[idx, 1] = p0[:, 1] + (s * z1 + flow[1] * dt)
    pos[idx, 2] = p0[:, 2] + (s * z2 + (flow[2] - settling[idx]) * dt)
    uf, uc, ub, ur = uniforms4_np(idx, n, STREAM_CONTACT, k0, k1)
    alive = np.ones(idx.size, dtype=bool)

    # 2. domain faces
    for a in range(3):
        L = box[a]
        x = pos[idx, a]
        if face_kind[2 * a] == PERIODIC:
            pos[idx, a] = _fold(x, a, box, face_kind, image, idx)
            continue
        for side in range(2):
            d0 = p0[:, a] if side == 0 else L - p0[:, a]
            d1 = x if side == 0 else L - x
            if face_kind[2 * a + side] == ABSORB:
                pc = np.where((d1 <= 0.0) | (d0 <= 0.0), 1.0, _bridge(d0, d1, Ddt))
                pa = pc * binding_probability_np(face_kappa, D, dt, math.inf)
                test = alive & (pc > 0.0) & (pa > 0.0)
                gone = test & (uf < pa)
                state[idx[gone]] = EXITED
                t_exit[idx[gone]] = t1
                x = np.where(gone, 0.0 if side == 0 else L, x)
                alive &= ~gone
                go_on = test & ~gone
                with np.errstate(divide="ignore", invalid="ignore"):
                    uf = np.where(go_on, (uf - pa) / (1.0 - pa), uf)
            crossed = alive & (d1 < 0.0)
            x = np.where(crossed, -x if side == 0 else L - (x - L), x)
        folded = _fold(x[alive], a, box, face_kind, image, idx[alive])
        x[alive] = folded
        pos[idx, a] = x

    # 3. cells near the end point
    if gitems.size > 0:
        b = _bin_of(pos[idx], bin_size, nbins)
        first, count = gstart[b], gstart[b + 1] - gstart[b]
        hit = np.full(idx.size, -1, dtype=np.int64)
        hx, hy, hz, hr, hd = (np.zeros(idx.size) for _ in range(5))
        searching = alive.copy()
        for k in range(int(count.max(initial=0))):
            m = searching & (k < count)
            j = np.nonzero(m)[0]
            if j.size == 0:
                break
            c = gitems[first[j] + k]
            vi = idx[j]
            Rc = cradius[c] + vradius[vi]
            ex = _min_image(pos[vi, 0] - ccenter[c, 0], 0, box, face_kind)
            ey = _min_image(pos[vi, 1] - ccenter[c, 1], 1, box, face_kind)
            ez = _min_image(pos[vi, 2] - ccenter[c, 2], 2, box, face_kind)
            r1 = np.sqrt(ex * ex + ey * ey + ez * ez)
            d1 = r1 - Rc
            qx = _min_image(p0[j, 0] - ccenter[c, 0], 0, box, face_kind)
            qy = _min_image(p0[j, 1] - ccenter[c, 1], 1, box, face_kind)
            qz = _min_image(p0[j, 2] - ccenter[c, 2], 2, box, face_kind)
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
        j = np.nonzero(hit >= 0)[0]
        c = hit[j]
        vi = idx[j]
        T = ctype[c]
        Rc = cradius[c] + vradius[vi]
        pb = binding_probability_np(t_kappa[T], D[j], dt, Rc)
        cap = t_capacity[T]
        with np.errstate(divide="ignore", invalid="ignore"):
            free = 1.0 - bound_count[c] / cap
            pb = np.where(cap > 0, np.where(free > 0.0, pb * free, 0.0), pb)
        centre = hr[j] == 0.0
        hz[j[centre]] = 1.0
        hr[j[centre]] = 1.0
        binds = ub[j] < pb
        jb, cb = j[binds], c[binds]
        _place_on(idx[jb], cb, hx[jb], hy[jb], hz[jb], Rc[binds] / hr[jb],
                  pos, ccenter, box, face_kind, image)
        state[idx[jb]] = BOUND
        cell[idx[jb]] = cb
        first_time = np.isnan(t_bound[idx[jb]])
        t_bound[idx[jb][first_time]] = t1
        alive[jb] = False
        mirror = ~binds & (hd[j] < 0.0)
        jm, cm = j[mirror], c[mirror]
        _place_on(idx[jm], cm, hx[jm], hy[jm], hz[jm], (2.0 * Rc[mirror] - hr[jm]) / hr[jm],
                  pos, ccenter, box, face_kind, image)

    # 4. clearance in the medium
    cleared = alive & (p_clear[species[idx]] > 0.0) & (ur < p_clear[species[idx]])
    state[idx[cleared]] = CLEARED


def count_bound(state, cell, bound_count):
    """bound_count[c] = number of BOUND vesicles on cell c."""
    bound_count[:] = np.bincount(cell[state == BOUND], minlength=bound_count.size)


def advance(n0, n1, *args):
    """Advance all vesicles from step n0 to n1, step by step; ``args`` in the
    order of ``constants.KERNEL_ARGS``."""
    named = dict(zip(KERNEL_ARGS, args))
    for n in range(n0, n1):
        step(n, *args)
        count_bound(named["state"], named["cell"], named["bound_count"])
