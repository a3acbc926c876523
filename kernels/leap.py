"""Exact far-field leaps (run.stepping = "adaptive"; DESIGN §2 "Stepping").

A FREE vesicle far from every surface it could touch need not take its steps
one by one: Brownian motion inside a region that holds no surface is free
diffusion, whose first passage out of a ball is known exactly (protective
domains: Oppelstrup et al., PRL 97, 230602 (2006); walk-on-spheres; the
propagators in kernels/firstpassage.py).  The kernels' stage 11
(``_try_leap`` in step_numpy.py and step_numba.py, ``try_leap`` in
exodiff_step.cuh, whose namespace exo::leap holds the propagators) does
this, at the start of a step n, for a FREE vesicle that is not in flight:

1. Clearance d: the distance from its centre x to the nearest surface it may
   not come near within a leap — every cell's contact sphere (R_cell +
   r_vesicle) and every absorbing face; and w, the distance to the nearest
   reflecting face on an axis with drift (item 6; a reflecting face on a
   drift-free axis is crossed by folding, item 5, and bounds nothing).
   The cells listed in the vesicle's grid bin are measured exactly; for all the others the kernels read Grid.clearance[b]
   (exodiff/grid.py: the distance from the centre of bin b to the nearest
   contact sphere, with the largest vesicle radius, of a cell the bin does
   not list: a lower bound for every vesicle) and use that a distance is
   1-Lipschitz: d(x) ≥ clearance[b] − |x − centre_b|.  O(1).
2. Horizon: the leap may last at most K steps, K = H − n where H is the
   first step after n that is an observation, a snapshot, a schedule change
   or the end of the run (Run.horizon_every, Run.horizon_stops): so it never
   passes a time at which anything reads the state, whatever the chunking,
   thread count or resume.  Under drift v = flow − settling·ẑ the ball moves
   with the drift (Brownian motion in the moving frame is free), sweeping
   |v|·K·dt: K is capped so that this takes at most half of what is left.
3. Ball: radius R = min(d − m, w) − |v| K dt around the moving centre, with
   the margin m = LEAP_MARGIN_SIGMAS·σ + |v|·dt (σ = √(2 D dt)), so the
   whole path of the leap stays at least m from every cell and absorbing
   face, and inside every reflecting face under drift.  It leaps only
   when R ≥ LEAP_MIN_SIGMAS·σ and K ≥ LEAP_MIN_STEPS (a shorter leap costs
   more than the steps it saves); R is capped at LEAP_CAP_SPREADS·σ·√K.
4. Sampling (``leap_path``, then the horizon sampler in each kernel).  The
   four uniforms of counter (id, n, STREAM_LEAP): exit time, clearance,
   cos θ and φ of the exit direction.
   - clearance in the medium: the step of clearance is geometric with
     p_clear per step, j = ⌊ln u / ln(1 − p_clear)⌋ steps survived; if j < K
     the leap ends with that step (K = j + 1) and, unless the vesicle left
     the ball before, it is CLEARED at its end (time (n + K)·dt), as in
     fixed stepping.  A vesicle that leaves earlier lands in an earlier
     step; the geometric draw then only said "not in those steps", and its
     later steps draw their clearance as usual (memoryless).
   - exit time τ = s·R²/D, s = ball_exit_time(u).  If τ < K·dt the vesicle
     leaves the ball at τ, at centre + R·(uniform direction: cos θ = 2u − 1,
     φ = 2πu by philox's poly_cos_sin_2pi; by symmetry the exit point is
     independent of τ); then one partial free step of δ = k·dt − τ,
     k = ⌈τ/dt⌉, puts it back on the step grid (Gaussian √(2Dδ) from
     counter (id, n + k − 1, STREAM_DIFFUSE): the normals of the last step
     it flew over, which it never draws otherwise).
   - else the leap ends at the horizon, at centre + R·y with y drawn from
     the law of Brownian motion at s_h = D K dt/R² given that it has not
     left the unit ball, by exact rejection (``horizon_proposal``; attempt
     j = 0, 1, ... uses counter (id, n, STREAM_LEAP_POSITION + 256 j)):
     ball_horizon_uniform(s_h) picks the proposal — uniform in the ball
     (uniforms4: r = u0^(1/3), cos θ = 2u1 − 1, φ = 2πu2, accepted when
     u3 < ball_horizon_accept(r, s_h)) or the free Gaussian (normals4
     scaled by √(2 s_h); accepted when the first uniform of the counter
     with stream + 128 is below ball_horizon_accept(r, s_h)).  The
     acceptance is ≥ ~25 % at every s_h (kernels/firstpassage.py), so a
     few attempts; after LEAP_MAX_ATTEMPTS (probability < 0.75^4096) the
     centre is taken.
   - plus the drift v·k·dt; periodic axes wrap (image counts kept), closed
     axes fold (``fold_reflecting``: items 5 and 6).
   The vesicle then is "in flight" until step n + k (Vesicles.leap_end): every
   stage skips it, it stays FREE, and its ``pos`` already holds the landing
   point (no observation falls inside a leap: step 2).
5. Folding.  On an axis whose drift component is exactly 0, reflected
   Brownian motion is the fold of free Brownian motion (the triangle wave
   of period 2L with both faces reflecting, one mirror about the reflecting
   face otherwise), just as the fixed scheme's per-step mirror is the fold
   of its Gaussian walk; so the leap samples the free motion in the ball
   and folds the landing point.  The folded path stays in the ball:
   mirroring a point across a face whose other side holds the ball's
   centre (the centre is in the box) never moves it farther from the
   centre.  So it keeps the margin m from every cell and absorbing face,
   exactly as an unfolded leap.  (Under drift the fold is not a symmetry of
   the moving frame: such faces bound w, item 6.)
6. Reflecting faces under drift.  The fixed scheme's reflecting face acts
   on a step's end point only (mirrored when beyond it; no bridge test, as
   for absorbing faces and cells), so it cannot tell a path that touches
   the face between two grid times from one that does not.  The ball may
   therefore touch such a face (no margin): every grid time of the leap
   before its last falls before τ, in the ball, inside the box, where the
   fixed scheme leaves its points as they are; the landing point, whose
   partial step may carry it beyond the face, is the end of a step from the
   previous grid point with the fixed scheme's law, and is mirrored as the
   fixed scheme mirrors a step's end.

Exactness.  Inside the ball the fixed scheme's Gaussian steps are exact
Brownian motion too (folded at drift-free reflecting faces, item 5; mirrored
at their ends at reflecting faces under drift, item 6), so the two schemes
agree in law except where the fixed scheme could touch a cell or an
absorbing face during the leap.  Every point of the (folded) path is ≥ m
from those until τ; in the partial step (δ ≤ dt, drift ≤ |v| dt) the path starts ≥
LEAP_MARGIN_SIGMAS·σ from the surface, and Brownian motion reaches a
half-space (a convex surface lies beyond its tangent plane) at distance x
within δ with probability erfc(x/√(4Dδ)) ≤ erfc(M/√2) ≤ exp(−M²/2) =
exp(−40) for M = LEAP_MARGIN_SIGMAS = √(2·BRIDGE_CUTOFF) (the same e⁻⁴⁰ ≈
4e−18 below which the fixed scheme's bridge test, FAR_SIGMAS, already counts
nothing).  With folding the partial step is the fold of a free step, which
touches a cell when the free step touches the cell or one of its mirror
images; each image is as far from the unfolded start as the cell is from the
folded one.  (Round-off in the fold's and the mirror's arithmetic moves a
point by an ulp of the box, as the fixed scheme's own mirror does.)  So per leap the distributions differ by at most N·e⁻⁴⁰ in total
variation, N the number of surfaces and mirror images of cells within reach
of the landing point (a handful), plus the round-off of the propagators
(kernels/firstpassage.py) and the rejection sampler's cut-off (< 1e-500).

Bit identity.  ``leap_path``, ``horizon_proposal``, ``sphere_point`` and
``fold_reflecting`` are scalar functions that the NumPy reference calls per
leaping vesicle and the Numba kernel calls directly, and the rejection loop
is written out the same way in each kernel; their C++ twins
(exodiff_step.cuh) do the same operations in the same order.

Waits of BOUND and INTERNALIZED vesicles (stages 7 and 10).  A BOUND
vesicle's events (unbind, internalize, fuse) are a Bernoulli(p) trial per
step, p = type_p_event, with the channel from further uniforms of the same
draw; the step of its next event is therefore geometric, and memoryless.  In
adaptive stepping a visit at step n (BOUND, not waiting) draws the counter
(id, n, STREAM_BOUND) as fixed stepping does, u0..u3:
  - u0 < p: the event happens in step n, exactly as in fixed stepping
    (channel from u1, placement from u2, u3);
  - else there is none in step n, and ``wait_steps`` gives
    j = ⌊ln(1 − u0)/ln(1 − p)⌋ ≥ 1 (j = ∞ for p = 0): given u0 ≥ p, 1 − u0
    is uniform on (0, 1 − p], so P(j ≥ m) = (1 − p)^(m−1): steps n + 1 ..
    n + j − 1 have no event and step n + j has one, which is the law of
    fixed stepping given no event in step n.  With K the steps to the next
    horizon (``_leap_horizon``: observation, snapshot, schedule change or
    end, as for leaps), the vesicle waits k = min(j, K) steps in this one
    visit: bound_duration += k·dt and its cell's bound steps += k, and it
    is skipped by every stage until step n + k (Vesicles.leap_end), BOUND
    all the while (so the receptor count of its cell and any observation
    see it as fixed stepping would).
  - j < K: the event is due at step n + j.  Vesicles.leap_look, which only
    FREE vesicles use otherwise, records that as −1 − (n + j); the visit at
    n + j then has its event without testing u0, with the channel and
    placement from u1, u2, u3 of counter (id, n + j, STREAM_BOUND):
    independent of the u0 that set the wait, so the channel is independent
    of the time, as in fixed stepping.  Any other value of leap_look (a
    FREE vesicle's look step ≥ 0, or an older mark) never equals −1 − m at
    a later visit m.
  - j ≥ K: no event before the horizon; the visit at n + K draws afresh.
    Only "no event in steps n .. n + K − 1" was used, and the steps from
    n + K on are independent of it (memoryless), so the new draw is exact.
So the time of the next event and its channel have exactly the law of fixed
stepping, up to the resolution 2⁻³² of the uniforms that fixed stepping's
test u0 < p shares (1 − u0 ≥ 2⁻³³ caps j at ≈ 22.9/p steps: a tail of
e^−22.9 ≈ 1e−10 per visit, beyond the horizon in practice).  A wait never
spans a rate change (schedule changes are horizons: Run.horizon_stops), so
the event due at n + j < n + K uses the rates that set the wait.  As a
leap's, a wait ends at a horizon at the latest, so observations, snapshots
and checkpoints see exact state, snapshot states need no leap fields
(state.SNAPSHOT_ZEROS: leap_end ≤ the step, and an event due before it has
happened), and nothing depends on chunking, thread count or resume.
INTERNALIZED vesicles with endosomal rates (p = type_p_endo > 0) wait the
same way (stage 10); with p = 0 nothing ever happens to them, and they wait
for nothing.  A BOUND vesicle's wait of k steps adds k − 1 to
Vesicles.leap_steps (the steps it covers beyond its one visit: not taken, for
the run summary, whose vesicle-steps count FREE and BOUND vesicles); an
endosome's wait adds nothing there.
"""
import math

from .firstpassage import ball_exit_time, ball_horizon_accept
from .jit import njit

# Margin against the partial step, in step lengths σ = √(2 D dt):
# √(2·BRIDGE_CUTOFF) = 8.94427191, rounded up by 1e-6 relative (as FAR_SIGMAS).
LEAP_MARGIN_SIGMAS = 8.944281
# A vesicle leaps when its ball's radius is at least this many σ (and the
# leap may last at least LEAP_MIN_STEPS): the expected exit time is then
# R²/(6D) = (R/σ)²/3 steps, which must pay for the leap's cost: ~130 ns
# (ball_exit_time ~80 ns, the Philox words, the partial step's normals)
# plus a look (~40 ns), against ~55 ns per step near cells (Numba, S2), so
# leaps pay from about 3σ on.
LEAP_MIN_SIGMAS = 3.0
LEAP_MIN_STEPS = 2
# Nor is a ball wider than this many spreads √(2 D K dt) of the whole leap
# any use (it is left before the horizon with probability < 1e-20), and
# without faces or cells nearby the clearance is infinite.
LEAP_CAP_SPREADS = 10.0
# A look that finds the vesicle Δ too close puts the next look off by
# min((Δ/(LEAP_LOOK_SIGMAS·σ))², Δ/(|v| dt)) steps (never past the horizon),
# about the time it needs to diffuse (or drift) that far: looking costs
# almost as much as a step, and skipping looks changes no law (a step is
# always exact).
LEAP_LOOK_SIGMAS = 2.0
# The horizon sampler's attempts at most (each accepted with probability ≥ ~¼).
LEAP_MAX_ATTEMPTS = 4096
# Attempt j of the horizon sampler draws from stream STREAM_LEAP_POSITION +
# LEAP_ATTEMPT_STRIDE·j, its Gaussian proposal's acceptance uniform from that
# plus LEAP_ACCEPT_OFFSET.
LEAP_ATTEMPT_STRIDE = 256
LEAP_ACCEPT_OFFSET = 128


@njit(cache=True)
def leap_path(u_time, u_clear, steps, R, D, dt, p_clear):
    """How a leap of at most ``steps`` steps in a ball of radius R [µm] ends,
    for a vesicle with diffusion D [µm²/s], step dt [s] and clearance
    probability p_clear per step, from two uniforms: exit time and
    clearance step.

    Returns (k, cleared, g, sh): the vesicle lands k steps later (1 ≤ k ≤
    steps); ``cleared``: cleared at the end of step k.  sh = 0: it left the
    ball, lands at centre + R·(uniform direction) + drift·k·dt +
    g·(normals of its last step), g = √(2Dδ) of the partial step; sh > 0:
    it is still inside at the horizon, at centre + R·y + drift·k·dt, y the
    unit ball's position at dimensionless time sh given survival."""
    cleared = False
    if p_clear > 0.0:
        survived = math.floor(math.log(u_clear) / math.log1p(-p_clear))
        if survived < steps:
            steps = int(survived) + 1
            cleared = True
    s = ball_exit_time(u_time)
    tau = s * R * R / D
    if tau >= steps * dt:  # still inside at the horizon
        return steps, cleared, 0.0, D * (steps * dt) / (R * R)
    k = int(math.ceil(tau / dt))
    k = min(max(k, 1), steps)
    delta = k * dt - tau
    delta = delta if delta > 0.0 else 0.0
    return k, cleared and k == steps, math.sqrt(2.0 * D * delta), 0.0


@njit(cache=True)
def sphere_point(u_cos, c_phi, s_phi, r):
    """The point at radius r in the direction cos θ = 2 u_cos − 1 and
    (cos φ, sin φ) = (c_phi, s_phi)."""
    ct = 2.0 * u_cos - 1.0
    st = math.sqrt(max(1.0 - ct * ct, 0.0))
    return r * (st * c_phi), r * (st * s_phi), r * ct


@njit(cache=True)
def horizon_proposal(uniform, w0, w1, w2, c_phi, s_phi, sh):
    """One proposal y of the horizon sampler (item 4) and its acceptance
    probability: ``uniform``: from the attempt's uniforms w0, w1 (u0, u1)
    and (c_phi, s_phi) = (cos, sin) 2πu2; else from its normals w0, w1, w2
    (z0, z1, z2).  Returns (y0, y1, y2, acceptance)."""
    if uniform:
        r = w0 ** (1.0 / 3.0)
        y0, y1, y2 = sphere_point(w1, c_phi, s_phi, r)
        return y0, y1, y2, ball_horizon_accept(r, sh)
    q = math.sqrt(2.0 * sh)
    y0 = q * w0
    y1 = q * w1
    y2 = q * w2
    return y0, y1, y2, ball_horizon_accept(math.sqrt(y0 * y0 + y1 * y1 + y2 * y2), sh)


@njit(cache=True)
def fold_reflecting(x, L):
    """x folded into [0, L] at two reflecting faces (the triangle wave of
    period 2L; one mirror where only one face can be reached)."""
    if x < 0.0:
        x = -x
    if x > L:
        x = x - 2.0 * L * math.floor(x / (2.0 * L))
        if x < 0.0:  # x/(2L) rounded up
            x = -x
        if x > L:
            x = 2.0 * L - x
    return x


@njit(cache=True)
def wait_steps(u0, p, horizon):
    """Steps a BOUND (or INTERNALIZED) vesicle waits without an event from a
    step whose uniform u0 ≥ p gave none (p: its event probability per step):
    min(⌊ln(1 − u0)/ln(1 − p)⌋, horizon), at least 1; ``horizon`` for p = 0.
    An event is due at the step it waits to when that is below ``horizon``
    (the "Waits" section above)."""
    if not p > 0.0:
        return horizon
    j = math.log1p(-u0) / math.log1p(-p)
    if j >= horizon:  # compared before the floor: j may exceed any integer
        return horizon
    return max(int(math.floor(j)), 1)
