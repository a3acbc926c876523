"""The surface kinetics against their derivation, and the validation suite
(exodiff/validate.py, DESIGN §6) in quick mode.

The quick cases run at the coarse step (s = 0.1 L) with ~2 % standard errors
and pass when |z| < 3 (tolerance from the sample size); the full suite is
``exodiff validate``.  All but two cases run on every backend, those on numba.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from exodiff import exact, validate
from exodiff.kernels import surface
from exodiff.kernels.step_numpy import binding_probability_np, release_fraction_np

SQRT2PI_4 = math.sqrt(2.0 * math.pi) / 4.0


# ------------------------------------------------------ the binding probability

def test_milne_solution_reproduces_spitzers_constant():
    """P = ½ is the Gaussian walk killed on landing beyond the wall, whose
    extrapolation length is −ζ(½)/√(2π) steps (Siegmund's correction)."""
    zeta_half = -1.4603545088095868
    assert exact.milne_flat(0.5) == pytest.approx(-zeta_half / math.sqrt(2 * math.pi), rel=1e-9)


@pytest.mark.parametrize("P", [1e-3, 0.05, 0.3, 0.6, 0.9, 0.99])
def test_flat_probability_inverts_the_milne_mapping(P):
    kp = exact.realized_kappa_prime(P)
    assert surface.flat_probability(kp) == pytest.approx(P, rel=1e-4)
    assert 1 - surface.flat_probability(kp) == pytest.approx(1 - P, rel=1e-4)


def test_leading_order_is_the_small_kappa_limit_and_first_order_is_p_over_1_minus_p():
    for P in (1e-4, 1e-3):
        kp = exact.realized_kappa_prime(P)
        assert kp / P == pytest.approx(1 + 1.1315 * P, rel=2e-5)
    # κ'(1 − P)/P rises from 1 to 3π/8 (the boundary-layer depletion)
    assert exact.realized_kappa_prime(0.999) * 0.001 / 0.999 == pytest.approx(3 * math.pi / 8, rel=2e-3)


@pytest.mark.parametrize("kappa_rd", [0.01, 1.0, 10.0, 100.0])
@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_binding_probability_realizes_kappa_on_a_sphere(kappa_rd, eps):
    """P from binding_probability, put into the stationary problem of the
    scheme outside a sphere, gives back κ to the fit's accuracy."""
    R, D = 1.0, 1.0
    dt = (eps * R) ** 2 / (2 * D)
    kappa = kappa_rd * D / R
    P = surface.binding_probability(kappa, D, dt, R)
    kp = kappa * math.sqrt(math.pi * dt / D) / 2
    assert exact.realized_kappa_prime(P, eps) == pytest.approx(kp, rel=1.5e-3)


def test_flat_faces_use_the_flat_mapping():
    D, dt, kappa = 4.0, 1e-3, 30.0
    kp = kappa * math.sqrt(math.pi * dt / D) / 2
    assert surface.binding_probability(kappa, D, dt, math.inf) == surface.flat_probability(kp)


def test_binding_probability_limits():
    assert surface.binding_probability(0.0, 4.0, 1e-3, 5.0) == 0.0
    assert surface.binding_probability(math.inf, 4.0, 1e-3, 5.0) == 1.0
    assert 0.99 < surface.binding_probability(1e6, 4.0, 1e-3, 5.0) < 1.0
    assert surface.release_fraction(0.0, 4.0, 1e-3, 5.0) == 1.0
    assert surface.release_fraction(math.inf, 4.0, 1e-3, 5.0) == 0.0
    # thinning P·Q(0, ε)/κ' → 1 as κ → 0, decreasing with κ
    f = [surface.release_fraction(k, 4.0, 1e-3, 5.0) for k in (1e-4, 1.0, 10.0, 100.0)]
    assert f[0] == pytest.approx(1.0, abs=1e-4)
    assert all(a > b for a, b in zip(f, f[1:]))


def test_numpy_surface_twins_match_numba_bit_for_bit():
    rng = np.random.default_rng(3)
    n = 400
    kappa = np.concatenate([[0.0, math.inf], 10 ** rng.uniform(-3, 4, n - 2)])
    D = 10 ** rng.uniform(-1, 1.5, n)
    radius = np.where(rng.random(n) < 0.2, math.inf, 10 ** rng.uniform(-0.5, 1.5, n))
    dt = 2e-3
    want_p = np.array([surface.binding_probability(k, d, dt, r) for k, d, r in zip(kappa, D, radius)])
    want_f = np.array([surface.release_fraction(k, d, dt, r) for k, d, r in zip(kappa, D, radius)])
    np.testing.assert_array_equal(binding_probability_np(kappa, D, dt, radius), want_p)
    np.testing.assert_array_equal(release_fraction_np(kappa, D, dt, radius), want_f)


# --------------------------------------------------------- the exact solutions

def test_exact_solutions_agree_with_their_limits():
    R, D, r0, t = 5.05, 4.0, 6.06, 3.0
    assert exact.collins_kimball(t, r0, R, D, 1e9) == pytest.approx(exact.smoluchowski(t, r0, R, D), rel=1e-6)
    assert exact.collins_kimball(t, r0, R, D, math.inf) == exact.smoluchowski(t, r0, R, D)
    # long times: R k_f/(r0 (k_f + k_D))
    assert exact.collins_kimball(1e12, r0, R, D, 0.8) == pytest.approx(R / r0 * (0.8 * R / D) / (1 + 0.8 * R / D), rel=1e-5)
    assert exact.radiation_wall_survival(t, 3.0, D, 0.0) == pytest.approx(1.0)
    # a perfectly absorbing wall: erf(x0/√(4Dt))
    assert exact.radiation_wall_survival(t, 3.0, D, 1e9) == pytest.approx(math.erf(3.0 / math.sqrt(4 * D * t)), abs=1e-6)
    H = 100.0
    assert exact.well_deposition(0.5, H, D) == pytest.approx(2 * math.sqrt(D * 0.5 / math.pi) / H, rel=1e-9)
    # settling: v → 0 gives diffusion onto a sink, 2√(Dt/π); large t gives v t
    assert exact.settling_deposit(10.0, D, 1e-6) == pytest.approx(2 * math.sqrt(D * 10.0 / math.pi), rel=1e-4)
    assert exact.settling_deposit(1e4, D, 1.0) == pytest.approx(1e4 + D, rel=1e-6)
    # every secreted vesicle is somewhere: ∫ c 4πr² dr = rate/k
    assert exact.secretion_shell_count(R, math.inf, 100.0, R, D, 0.16) == pytest.approx(100.0 / 0.16)
    r = np.linspace(R, R + 80, 200001)
    c = exact.secretion_profile(r, 100.0, R, D, 0.16)
    assert np.trapezoid(4 * math.pi * r * r * c, r) == pytest.approx(100.0 / 0.16, rel=1e-4)
    # erfcx: the two branches meet (e^{x²}erfc(x) below 26, the asymptotic series above)
    below, above = exact.erfcx(26.0 - 1e-9), exact.erfcx(26.0)
    assert above == pytest.approx(below, rel=1e-12)
    assert exact.erfcx(0.0) == 1.0


# ------------------------------------------------------- the cases, quick mode

# on every backend (NumPy runs these in ~30 s) with both steppings; the
# reaction-limited Collins–Kimball cases need 10⁷–10⁸ vesicle-steps and run
# on numba only; the leap cases (10⁸–10⁹ vesicle-steps over hours) run on
# numba with adaptive stepping, what they are for (`exodiff validate` runs
# them with both schemes at full size)
NUMBA_ONLY = ["collins_kimball_0.01", "collins_kimball_0.1"]
LEAP_CASES = [name for name in validate.CASES if name.startswith("leap_")]
CHEAP = [name for name in validate.CASES if name not in NUMBA_ONLY + LEAP_CASES]


def _assert_passes(result):
    assert result.checks, result.name
    assert all(c.passed for c in result.checks), "\n" + validate.format_table([result])
    # the sample sizes come from the exact values: SE within the quick target
    for c in result.checks:
        assert c.se <= 1.05 * validate.SE_TARGET_QUICK * abs(c.exact), c


@pytest.mark.validate
@pytest.mark.parametrize("stepping", validate.STEPPINGS)
@pytest.mark.parametrize("name", CHEAP)
def test_cheap_validation_cases_pass_on_every_backend(name, backend, stepping, quick_case):
    _assert_passes(quick_case(name, backend, stepping))


@pytest.mark.validate
@pytest.mark.parametrize("stepping", validate.STEPPINGS)
@pytest.mark.parametrize("name", NUMBA_ONLY)
def test_validation_case_passes(name, stepping, quick_case):
    _assert_passes(quick_case(name, "numba", stepping))


@pytest.mark.validate
@pytest.mark.parametrize("name", LEAP_CASES)
def test_leap_case_passes_with_adaptive_stepping(name, quick_case):
    result = quick_case(name, "numba", "adaptive")
    _assert_passes(result)
    assert all(c.stepping == "adaptive" for c in result.checks)
    assert result.leaps > 0, "the case is there to check leaps, and none was taken"


def test_case_selection_by_prefix_and_unknown_names():
    from exodiff.errors import InputError
    names = [c.name for c in validate.select_cases(["collins_kimball"])]
    assert names == [f"collins_kimball_{k:g}" for k in validate.CK_VALUES]
    assert [c.name for c in validate.select_cases(["leap"])] == LEAP_CASES
    assert len(LEAP_CASES) == 5
    with pytest.raises(InputError, match="no such validation case"):
        validate.select_cases(["nonsense"])


def test_cli_validate_prints_the_table_and_exit_codes(capsys):
    from exodiff.cli import main
    assert main(["validate", "--quick", "--case", "well_diffusion", "--backend", "numba"]) == 0
    out = capsys.readouterr().out
    # both schemes by default, each row saying which
    assert "well_diffusion" in out and "pass" in out and "2/2 checks" in out
    rows = [line for line in out.splitlines() if line.startswith("well_diffusion")]
    assert [row.split()[1] for row in rows] == ["fixed", "adaptive"]
    assert main(["validate", "--quick", "--case", "well_diffusion", "--backend", "numba",
                 "--stepping", "adaptive"]) == 0
    out = capsys.readouterr().out
    assert "1/1 checks" in out and " fixed " not in out
    assert main(["validate", "--case", "nonsense"]) == 2
    assert "no such validation case" in capsys.readouterr().err


@pytest.mark.parametrize("kappa_rd", [0.1, 1.0, 10.0])
def test_release_fraction_keeps_the_reversible_equilibrium_exact(kappa_rd):
    """Deterministic: the equilibrium of the scheme's radial chain around one
    cell (s = 0.1 R) has bound/free = κA/k_off to the quadrature's 0.2 %."""
    assert exact.reversible_equilibrium_chain(kappa_rd, 0.1) == pytest.approx(1.0, abs=2e-3)


# ------------------------------------------ exodiff check: the leap estimate

def _leap_estimate(raw):
    from exodiff.config import parse_config
    from exodiff.derived import leap_estimate
    from exodiff.layouts import make_cells
    cfg = parse_config(raw)
    return leap_estimate(cfg, make_cells(cfg.cells, cfg.domain.size, list(cfg.cell_types), cfg.run.seed))


def _box(boundary, size=400.0, observe=1.0):
    return {"run": {"duration": 10.0, "dt": 1e-3, "observe_interval": observe},
            "domain": {"size": [size] * 3, "boundary": boundary},
            "cells": {"layout": "list", "centers": [], "radius": 5.0}, "cell_types": {"none": {}},
            "vesicles": {"ev": {"radius": 0.05, "diffusion": 4.0, "count": 10}}}


def test_leap_estimate_limits():
    from exodiff.derived import LEAP_COST_STEPS
    # nothing to touch: every vesicle leaps from observation to observation
    # (its cube is capped at 10 spreads: it never leaves it), 1000 steps each
    (e,) = _leap_estimate(_box("periodic"))
    assert e.leap_share == 1.0
    assert e.mean_leap == pytest.approx(1.0)
    assert e.speedup == pytest.approx(1000 / LEAP_COST_STEPS)
    # a box too small for the margin: nobody leaps, nothing gained
    (e,) = _leap_estimate(_box("absorb", size=2.0))
    assert (e.leap_share, e.mean_leap, e.speedup) == (0.0, 0.0, 1.0)


def test_check_prints_the_leap_estimate_or_says_fixed(capsys):
    from exodiff.cli import main
    well = str(Path(__file__).resolve().parent.parent / "configs" / "well_24h.toml")
    assert main(["check", well]) == 0
    out = capsys.readouterr().out
    assert "Stepping: adaptive" in out
    shares = [float(line.split("%")[0].split()[-1]) for line in out.splitlines() if "of vesicle-time leaping" in line]
    assert len(shares) == 2 and all(s > 95 for s in shares)   # millimetres of medium over 30 µm of cells
    assert "all vesicles: speed-up ≈" in out
    assert main(["check", well, "--set", "run.stepping=fixed"]) == 0
    out = capsys.readouterr().out
    assert "Stepping: fixed" in out and "leaping" not in out
