"""The vesicle step as a Numba CPU kernel.

Twin of ``step_numpy.py`` (the reference): the same operations in the same
order, so both give bit-identical results for a seed (DESIGN §2).  One call
``advance(...)`` moves every vesicle from step n0 to n1; step n takes the
system from t_n = n·dt to t_{n+1}.

Per FREE vesicle and step (DESIGN §1):
 1. Gaussian displacement √(2D dt)·ξ + drift·dt (ξ from STREAM_DIFFUSE);
 2. domain faces: periodic wrap, mirror reflection, or absorption on contact
    (end beyond the face, or a Brownian-bridge crossing within the step);
 3. cells listed in the grid bin of the end point: contact when the end point
    is within R_cell + r_vesicle, or with the bridge probability
    exp(−d1·d2/(D dt)) against the tangent plane; the first contact binds with
    P(κ, D, dt)·(free receptor fraction), otherwise the vesicle is reflected;
 4. clearance with probability 1 − exp(−k_clear dt).
A BOUND vesicle unbinds or is internalized (competing first-order rates); an
unbinding releases it with ``release_fraction`` (else it rebinds within the
step), placing it outside contact at ``unbind_distance``.
A PENDING vesicle becomes FREE at the end of its birth step.

Each block of vesicles runs step by step: the block's normals first, in a
loop free of branches and libm calls (philox.normals4 uses polynomials) that
the compiler turns into SIMD code, then the vesicles' steps.

Uniforms for contacts are drawn lazily (only in steps that need them); being
counter-based they are the same numbers the reference draws every step.
"""
import math

import numba
import numpy as np

from .constants import (ABSORB, BOUND, BRIDGE_CUTOFF, CLEARED, EXITED, FAR_SIGMAS, FREE,
                        INTERNALIZED, KERNEL_ARGS, PENDING, PERIODIC)
from .philox import (STREAM_BOUND, STREAM_CONTACT, STREAM_DIFFUSE, normals4,
                     uniforms4)
from .surface import binding_probability, release_fraction, unbind_distance


@numba.njit(cache=True, inline="always")
def _fold(i, a, x, box, face_kind, image):
    """Bring coordinate x of vesicle i on axis a back into the box: wrap on a
    periodic axis (counting images), mirror on a closed one."""
    L = box[a]
    if face_kind[2 * a] == PERIODIC:
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


@numba.njit(cache=True, inline="always")
def _min_image(e, a, box, face_kind):
    """Separation e along axis a under the minimum-image convention."""
    if face_kind[2 * a] == PERIODIC:
        L = box[a]
        return e - L * math.floor(e / L + 0.5)
    return e


@numba.njit(cache=True, inline="always")
def _bin_of(x, y, z, bin_size, nbins):
    ix = min(max(int(math.floor(x / bin_size[0])), 0), nbins[0] - 1)
    iy = min(max(int(math.floor(y / bin_size[1])), 0), nbins[1] - 1)
    iz = min(max(int(math.floor(z / bin_size[2])), 0), nbins[2] - 1)
    return (ix * nbins[1] + iy) * nbins[2] + iz


@numba.njit(cache=True, error_model="numpy")
def advance_block(i0, i1, n0, n1, dt, k0, k1,
                  pos, image, state, cell, t_bound, t_internalized, t_exit,
                  diffusion, sigma, settling, vradius, species, birth_step, p_clear,
                  box, face_kind, face_kappa, flow,
                  ccenter, cradius, ctype, bound_count,
                  t_kappa, t_capacity, t_p_event, t_frac_off,
                  bin_size, nbins, gstart, gitems):
    """Advance vesicles i0..i1-1 through steps n0..n1-1: per step, first the
    normals of the block's free vesicles (a branch-free loop the compiler
    vectorizes), then each vesicle's step.  The step body is written out
    here rather than in a per-step function: a call passing ~35 arrays costs
    ~0.4 µs in Numba, more than the step itself."""
    # an axis without absorbing faces leaves an end point inside [0, L) as it is
    passive = np.empty(3, dtype=np.bool_)
    for a in range(3):
        passive[a] = face_kind[2 * a] != ABSORB and face_kind[2 * a + 1] != ABSORB
    nb = i1 - i0
    free_ids = np.empty(nb, dtype=np.int64)
    zx = np.empty(nb)
    zy = np.empty(nb)
    zz = np.empty(nb)
    for n in range(n0, n1):
        t1 = (n + 1) * dt
        # the vesicles that move in this step: FREE at its start (a vesicle
        # only changes its own state, so the list stays valid below)
        nfree = 0
        for i in range(i0, i1):
            if state[i] == FREE:
                free_ids[nfree] = i
                nfree += 1
        for k in range(nfree):
            z0, z1, z2, _ = normals4(free_ids[k], n, STREAM_DIFFUSE, k0, k1)
            zx[k] = z0
            zy[k] = z1
            zz[k] = z2
        kfree = 0  # FREE vesicles come below in the order of free_ids
        live = 0
        for i in range(i0, i1):
            st = state[i]
            if st == INTERNALIZED or st == EXITED or st == CLEARED:
                continue
            live += 1
            if st == PENDING:
                if birth_step[i] <= n:
                    state[i] = FREE
                continue
            if st == BOUND:
                c = cell[i]
                T = ctype[c]
                if t_p_event[T] <= 0.0:
                    continue
                u0, u1, u2, u3 = uniforms4(i, n, STREAM_BOUND, k0, k1)
                if u0 >= t_p_event[T]:
                    continue
                if u1 >= t_frac_off[T]:
                    state[i] = INTERNALIZED
                    t_internalized[i] = t1
                    continue
                # unbind, unless the release counts as rebinding within the
                # step (u1/frac_off is uniform; surface.release_fraction)
                Rc = cradius[c] + vradius[i]
                if u1 >= t_frac_off[T] * release_fraction(t_kappa[T], diffusion[i], dt, Rc):
                    continue
                # move out along the membrane normal of the binding site
                ex = _min_image(pos[i, 0] - ccenter[c, 0], 0, box, face_kind)
                ey = _min_image(pos[i, 1] - ccenter[c, 1], 1, box, face_kind)
                ez = _min_image(pos[i, 2] - ccenter[c, 2], 2, box, face_kind)
                r = math.sqrt(ex * ex + ey * ey + ez * ez)
                f = (Rc + unbind_distance(u2, u3, diffusion[i], dt, Rc)) / r
                pos[i, 0] = _fold(i, 0, ccenter[c, 0] + ex * f, box, face_kind, image)
                pos[i, 1] = _fold(i, 1, ccenter[c, 1] + ey * f, box, face_kind, image)
                pos[i, 2] = _fold(i, 2, ccenter[c, 2] + ez * f, box, face_kind, image)
                state[i] = FREE
                cell[i] = -1
                continue

            # FREE.  1. displacement
            D = diffusion[i]
            s = sigma[i]
            Ddt = D * dt
            p0x = pos[i, 0]
            p0y = pos[i, 1]
            p0z = pos[i, 2]
            pos[i, 0] = p0x + (s * zx[kfree] + flow[0] * dt)
            pos[i, 1] = p0y + (s * zy[kfree] + flow[1] * dt)
            pos[i, 2] = p0z + (s * zz[kfree] + (flow[2] - settling[i]) * dt)
            kfree += 1

            # uniforms of STREAM_CONTACT: faces, cell contact, binding, clearance
            drawn = False
            uf = 0.0
            uc = 0.0
            ub = 0.0
            ur = 0.0

            # 2. domain faces
            for a in range(3):
                L = box[a]
                x = pos[i, a]
                if passive[a] and 0.0 <= x < L:
                    continue
                if a == 0:
                    x0 = p0x
                elif a == 1:
                    x0 = p0y
                else:
                    x0 = p0z
                if face_kind[2 * a] == PERIODIC:
                    pos[i, a] = _fold(i, a, x, box, face_kind, image)
                    continue
                for side in range(2):
                    if side == 0:
                        d0 = x0
                        d1 = x
                    else:
                        d0 = L - x0
                        d1 = L - x
                    if face_kind[2 * a + side] == ABSORB:
                        if d1 <= 0.0 or d0 <= 0.0:
                            pc = 1.0
                        else:
                            arg = d0 * d1 / Ddt
                            pc = math.exp(-arg) if arg < BRIDGE_CUTOFF else 0.0
                        if pc > 0.0:
                            pa = pc * binding_probability(face_kappa, D, dt, math.inf)
                            if pa > 0.0:
                                if not drawn:
                                    uf, uc, ub, ur = uniforms4(i, n, STREAM_CONTACT, k0, k1)
                                    drawn = True
                                if uf < pa:
                                    state[i] = EXITED
                                    t_exit[i] = t1
                                    x = 0.0 if side == 0 else L
                                    break
                                uf = (uf - pa) / (1.0 - pa)
                    if d1 < 0.0:  # crossed and not absorbed: mirror
                        x = -x if side == 0 else L - (x - L)
                if state[i] == EXITED:
                    pos[i, a] = x
                    break
                pos[i, a] = _fold(i, a, x, box, face_kind, image)
            if state[i] == EXITED:
                continue

            # 3. cells near the end point
            if gitems.size > 0:
                b = _bin_of(pos[i, 0], pos[i, 1], pos[i, 2], bin_size, nbins)
                hit = -1
                ex = 0.0
                ey = 0.0
                ez = 0.0
                r1 = 0.0
                d1 = 0.0
                sx = pos[i, 0] - p0x
                sy = pos[i, 1] - p0y
                sz = pos[i, 2] - p0z
                margin = math.sqrt(sx * sx + sy * sy + sz * sz) + FAR_SIGMAS * math.sqrt(Ddt) + 1e-12
                for k in range(gstart[b], gstart[b + 1]):
                    c = gitems[k]
                    Rc = cradius[c] + vradius[i]
                    ex = _min_image(pos[i, 0] - ccenter[c, 0], 0, box, face_kind)
                    ey = _min_image(pos[i, 1] - ccenter[c, 1], 1, box, face_kind)
                    ez = _min_image(pos[i, 2] - ccenter[c, 2], 2, box, face_kind)
                    r2 = ex * ex + ey * ey + ez * ez
                    if r2 > (Rc + margin) * (Rc + margin):
                        continue  # out of reach this step (constants.FAR_SIGMAS)
                    r1 = math.sqrt(r2)
                    d1 = r1 - Rc
                    if d1 <= 0.0:
                        hit = c
                        break
                    qx = _min_image(p0x - ccenter[c, 0], 0, box, face_kind)
                    qy = _min_image(p0y - ccenter[c, 1], 1, box, face_kind)
                    qz = _min_image(p0z - ccenter[c, 2], 2, box, face_kind)
                    d0 = math.sqrt(qx * qx + qy * qy + qz * qz) - Rc
                    if d0 <= 0.0:
                        pc = 1.0
                    else:
                        arg = d0 * d1 / Ddt
                        pc = math.exp(-arg) if arg < BRIDGE_CUTOFF else 0.0
                    if pc > 0.0:
                        if not drawn:
                            uf, uc, ub, ur = uniforms4(i, n, STREAM_CONTACT, k0, k1)
                            drawn = True
                        if uc < pc:
                            hit = c
                            break
                        uc = (uc - pc) / (1.0 - pc)
                if hit >= 0:
                    c = hit
                    T = ctype[c]
                    Rc = cradius[c] + vradius[i]
                    pb = binding_probability(t_kappa[T], D, dt, Rc)
                    if t_capacity[T] > 0:
                        free = 1.0 - bound_count[c] / t_capacity[T]
                        pb = pb * free if free > 0.0 else 0.0
                    if not drawn:
                        uf, uc, ub, ur = uniforms4(i, n, STREAM_CONTACT, k0, k1)
                        drawn = True
                    if r1 == 0.0:  # end point at the centre: any normal will do
                        ez = 1.0
                        r1 = 1.0
                    if ub < pb:
                        f = Rc / r1
                        pos[i, 0] = _fold(i, 0, ccenter[c, 0] + ex * f, box, face_kind, image)
                        pos[i, 1] = _fold(i, 1, ccenter[c, 1] + ey * f, box, face_kind, image)
                        pos[i, 2] = _fold(i, 2, ccenter[c, 2] + ez * f, box, face_kind, image)
                        state[i] = BOUND
                        cell[i] = c
                        if math.isnan(t_bound[i]):
                            t_bound[i] = t1
                        continue
                    if d1 < 0.0:  # ended inside contact and not bound: mirror radially
                        f = (2.0 * Rc - r1) / r1
                        pos[i, 0] = _fold(i, 0, ccenter[c, 0] + ex * f, box, face_kind, image)
                        pos[i, 1] = _fold(i, 1, ccenter[c, 1] + ey * f, box, face_kind, image)
                        pos[i, 2] = _fold(i, 2, ccenter[c, 2] + ez * f, box, face_kind, image)

            # 4. clearance in the medium
            pcl = p_clear[species[i]]
            if pcl > 0.0:
                if not drawn:
                    uf, uc, ub, ur = uniforms4(i, n, STREAM_CONTACT, k0, k1)
                if ur < pcl:
                    state[i] = CLEARED
        if live == 0:  # every vesicle of the block has left
            break


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _advance_blocks(n0, n1, block, dt, k0, k1,
                    pos, image, state, cell, t_bound, t_internalized, t_exit,
                    diffusion, sigma, settling, vradius, species, birth_step, p_clear,
                    box, face_kind, face_kappa, flow,
                    ccenter, cradius, ctype, bound_count,
                    t_kappa, t_capacity, t_p_event, t_frac_off,
                    bin_size, nbins, gstart, gitems):
    """Blocks of `block` vesicles in parallel, each through steps n0..n1-1."""
    nblocks = (state.size + block - 1) // block
    for b in numba.prange(nblocks):
        advance_block(b * block, min((b + 1) * block, state.size), n0, n1, dt, k0, k1,
                      pos, image, state, cell, t_bound, t_internalized, t_exit,
                      diffusion, sigma, settling, vradius, species, birth_step, p_clear,
                      box, face_kind, face_kappa, flow,
                      ccenter, cradius, ctype, bound_count,
                      t_kappa, t_capacity, t_p_event, t_frac_off,
                      bin_size, nbins, gstart, gitems)


@numba.njit(cache=True)
def count_bound(state, cell, bound_count):
    """bound_count[c] = number of BOUND vesicles on cell c."""
    bound_count[:] = 0
    for i in range(state.size):
        if state[i] == BOUND:
            bound_count[cell[i]] += 1


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _advance_synced(n0, n1, block, dt, k0, k1,
                    pos, image, state, cell, t_bound, t_internalized, t_exit,
                    diffusion, sigma, settling, vradius, species, birth_step, p_clear,
                    box, face_kind, face_kappa, flow,
                    ccenter, cradius, ctype, bound_count,
                    t_kappa, t_capacity, t_p_event, t_frac_off,
                    bin_size, nbins, gstart, gitems):
    """Step by step, all vesicles per step, recounting bound vesicles per cell
    in between (the loop lives here: a Python-level loop would pay Numba's
    dispatch of ~35 arguments every step)."""
    nblocks = (state.size + block - 1) // block
    for n in range(n0, n1):
        for b in numba.prange(nblocks):
            advance_block(b * block, min((b + 1) * block, state.size), n, n + 1, dt, k0, k1,
                          pos, image, state, cell, t_bound, t_internalized, t_exit,
                          diffusion, sigma, settling, vradius, species, birth_step, p_clear,
                          box, face_kind, face_kappa, flow,
                          ccenter, cradius, ctype, bound_count,
                          t_kappa, t_capacity, t_p_event, t_frac_off,
                          bin_size, nbins, gstart, gitems)
        count_bound(state, cell, bound_count)


def advance(n0, n1, *args):
    """Advance all vesicles from step n0 to n1 in place; ``args`` in the order
    of ``constants.KERNEL_ARGS``.

    With finite receptor capacity the vesicles interact through the bound
    count of each cell, which binding reads as of the start of each step; the
    kernel then runs step by step and recounts.  Without it every vesicle is
    independent and runs all its steps at once (fused, cache-friendly)."""
    named = dict(zip(KERNEL_ARGS, args))
    n = named["state"].size
    if np.any(named["t_capacity"] > 0):
        _advance_synced(n0, n1, block_size(n), *args)
    else:
        _advance_blocks(n0, n1, block_size(n), *args)
        count_bound(named["state"], named["cell"], named["bound_count"])


def block_size(n):
    """Vesicles per block: enough blocks to balance the threads, few enough
    that the per-block call (~0.4 µs) stays negligible, and small enough that
    a block's positions and normals stay in cache from one step to the next
    (4096 vesicles: ~200 kB)."""
    return min(max(256, -(-n // (64 * numba.get_num_threads()))), 4096)
