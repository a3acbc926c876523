"""Exact far-field leaps (run.stepping = "adaptive"; DESIGN §2 "Stepping").

A FREE vesicle far from every surface it could touch need not take its steps
one by one: Brownian motion inside a region that holds no surface is free
diffusion, whose first passage out of a cube is known exactly (Oppelstrup et
al., PRL 97, 230602 (2006); Donev et al., JCP 229, 3214 (2010): a cube
factorizes into three independent 1-D intervals).  The kernels' stage 11
(``_try_leap`` in step_numpy.py and step_numba.py, ``try_leap`` in
exodiff_step.cuh, whose namespace exo::leap holds the propagators) does
this, at the start of a step n, for a FREE vesicle that is not in flight:

1. Clearance d: the distance from its centre x to the nearest surface it may
   not cross within a leap — each non-periodic face (reflecting or
   absorbing) and every cell's contact sphere (R_cell + r_vesicle).  The
   cells listed in the vesicle's grid bin are measured exactly; for all
   the others the kernels read Grid.clearance[b] (exodiff/grid.py: the
   distance from the centre of bin b to the nearest contact sphere, with
   the largest vesicle radius, of a cell the bin does not list: a lower
   bound for every vesicle) and use that a distance is 1-Lipschitz:
   d(x) ≥ clearance[b] − |x − centre_b|.  O(1).
2. Horizon: the leap may last at most K steps, K = H − n where H is the
   first step after n that is an observation, a snapshot, a schedule change
   or the end of the run (Run.horizon_every, Run.horizon_stops): so it never
   passes a time at which anything reads the state, whatever the chunking,
   thread count or resume.  Under drift v = flow − settling·ẑ the cube moves
   with the drift (Brownian motion in the moving frame is free), sweeping
   |v|·K·dt: K is capped so that this takes at most half of what is left.
3. Cube: half-width a = (d − m − |v| K dt)/√3, with the margin
   m = LEAP_MARGIN_SIGMAS·σ + |v|·dt (σ = √(2 D dt)); the cube lies in the
   ball of radius √3·a around the moving centre, so the whole path of the
   leap stays at least m from every surface.  It leaps only when
   a ≥ LEAP_MIN_SIGMAS·σ and K ≥ LEAP_MIN_STEPS (a shorter leap costs more
   than the steps it saves); a is capped at LEAP_CAP_SPREADS·σ·√K.
4. Sampling (``leap_path``; uniforms from counter (id, n, STREAM_LEAP) and
   (id, n, STREAM_LEAP_POSITION)):
   - clearance in the medium: the step of clearance is geometric with
     p_clear per step, j = ⌊ln u / ln(1 − p_clear)⌋ steps survived; if j < K
     the leap ends with that step (K = j + 1) and, unless the vesicle left
     the cube before, it is CLEARED at its end (time (n + K)·dt), as in
     fixed stepping.  A vesicle that leaves earlier lands in an earlier
     step; the geometric draw then only said "not in those steps", and its
     later steps draw their clearance as usual (memoryless).
   - exit time τ = s·a²/D, s = cube_exit_time(u) (kernels/firstpassage.py).
     If τ ≥ K·dt, the leap ends at the horizon: each axis at
     a·interval_position(u, D K dt/a²) (conditioned on not having left).
     Else one axis (equal odds) is at ±a (equal odds) and the other two at
     a·interval_position(u, s); then one partial free step of
     δ = k·dt − τ, k = ⌈τ/dt⌉, puts the vesicle back on the step grid
     (Gaussian √(2Dδ) from counter (id, n + k − 1, STREAM_DIFFUSE): the
     normals of the last step it flew over, which it never draws otherwise).
   - plus the drift v·k·dt; periodic axes wrap (image counts kept).
   The vesicle then is "in flight" until step n + k (Vesicles.leap_end): every
   stage skips it, it stays FREE, and its ``pos`` already holds the landing
   point (no observation falls inside a leap: step 2).

Exactness.  Inside the ball the fixed scheme's Gaussian steps are exact
Brownian motion too, so the two schemes agree in law except where the fixed
scheme could touch a surface during the leap.  Every point of the path is
≥ m from every surface until τ; in the partial step (δ ≤ dt, drift ≤ |v| dt)
the path starts ≥ LEAP_MARGIN_SIGMAS·σ from the surface, and Brownian motion
reaches a half-space (a convex surface lies beyond its tangent plane) at
distance x within δ with probability erfc(x/√(4Dδ)) ≤ erfc(M/√2) ≤
exp(−M²/2) = exp(−40) for M = LEAP_MARGIN_SIGMAS = √(2·BRIDGE_CUTOFF) (the
same e⁻⁴⁰ ≈ 4e−18 below which the fixed scheme's bridge test, FAR_SIGMAS,
already counts nothing).  So per leap the distributions differ by at most
N·e⁻⁴⁰ in total variation, N the number of surfaces within reach of the
landing point (a handful), plus the round-off of the propagators
(kernels/firstpassage.py).

Bit identity.  ``leap_path`` is one scalar function that the NumPy
reference calls per leaping vesicle and the Numba kernel calls directly; its
C++ twin (exodiff_step.cuh) does the same operations in the same order.

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

from .firstpassage import cube_exit_time, interval_position
from .jit import njit

# Margin against the partial step, in step lengths σ = √(2 D dt):
# √(2·BRIDGE_CUTOFF) = 8.94427191, rounded up by 1e-6 relative (as FAR_SIGMAS).
LEAP_MARGIN_SIGMAS = 8.944281
# A vesicle leaps when its cube's half-width is at least this many σ (and
# the leap may last at least LEAP_MIN_STEPS): the expected exit time is then
# ≳ 0.4·(a/σ)² steps, which must pay for the leap's cost (bench: S2).
LEAP_MIN_SIGMAS = 4.0
LEAP_MIN_STEPS = 2
# Nor is a cube wider than this many spreads √(2 D K dt) of the whole leap
# any use (it is left before the horizon with probability < 1e-20), and
# without faces or cells nearby the clearance is infinite.
LEAP_CAP_SPREADS = 10.0
# A look that finds the vesicle Δ too close puts the next look off by
# min((Δ/(LEAP_LOOK_SIGMAS·σ))², Δ/(|v| dt)) steps (never past the horizon),
# about the time it needs to diffuse (or drift) that far: looking costs
# almost as much as a step, and skipping looks changes no law (a step is
# always exact).
LEAP_LOOK_SIGMAS = 2.0
SQRT3 = 1.7320508075688772  # √3 rounded to the nearest double


@njit(cache=True)
def leap_path(u_time, u_face, u_clear, u0, u1, u2, steps, a, D, dt, p_clear):
    """Where a leap of at most ``steps`` steps in a cube of half-width a
    [µm] ends, for a vesicle with diffusion D [µm²/s], step dt [s] and
    clearance probability p_clear per step, from six uniforms: exit time,
    exit face, clearance step, and the positions on the three axes.

    Returns (k, cleared, c0, c1, c2, g): the vesicle lands k steps later
    (1 ≤ k ≤ steps) at the cube's centre + a·(c0, c1, c2) + drift·k·dt +
    g·(normals of its last step), g = √(2Dδ) of the partial step (0 when the
    leap ends at its horizon); ``cleared``: cleared at the end of step k."""
    cleared = False
    if p_clear > 0.0:
        survived = math.floor(math.log(u_clear) / math.log1p(-p_clear))
        if survived < steps:
            steps = int(survived) + 1
            cleared = True
    s = cube_exit_time(u_time)
    tau = s * a * a / D
    if tau >= steps * dt:  # still inside at the horizon
        sh = D * (steps * dt) / (a * a)
        return (steps, cleared, interval_position(u0, sh), interval_position(u1, sh),
                interval_position(u2, sh), 0.0)
    k = int(math.ceil(tau / dt))
    k = min(max(k, 1), steps)
    delta = k * dt - tau
    delta = delta if delta > 0.0 else 0.0
    g = math.sqrt(2.0 * D * delta)
    face = min(int(6.0 * u_face), 5)
    side = 1.0 if face & 1 else -1.0
    q0 = interval_position(u0, s)
    q1 = interval_position(u1, s)
    axis = face >> 1
    if axis == 0:
        return k, cleared and k == steps, side, q0, q1, g
    if axis == 1:
        return k, cleared and k == steps, q0, side, q1, g
    return k, cleared and k == steps, q0, q1, side, g


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
