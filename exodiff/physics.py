"""Physical formulas shared by the config check, the model and the analyses.

Units follow the config defaults: lengths [µm], times [s], temperature [K],
viscosity [Pa·s], densities [kg/m³]."""
import math

import numpy as np

BOLTZMANN = 1.380649e-23  # J/K, exact (SI 2019)
GRAVITY = 9.80665  # m/s², standard gravity


def stokes_einstein_diffusion(radius, temperature, viscosity):
    """D = kT/(6πηr) [µm²/s] for a sphere of radius [µm] (array or scalar)."""
    r_m = np.asarray(radius, dtype=np.float64) * 1e-6
    return BOLTZMANN * temperature / (6.0 * math.pi * viscosity * r_m) * 1e12


def settling_velocity(radius, particle_density, fluid_density, viscosity):
    """Stokes settling speed v = 2(ρp−ρf) g r²/(9η) [µm/s], positive downwards."""
    r_m = np.asarray(radius, dtype=np.float64) * 1e-6
    return 2.0 * (particle_density - fluid_density) * GRAVITY * r_m**2 / (9.0 * viscosity) * 1e6


def step_length(diffusion, dt):
    """Root-mean-square step per axis s = √(2 D dt) [µm]."""
    return np.sqrt(2.0 * np.asarray(diffusion, dtype=np.float64) * dt)


def step_count(duration, dt):
    """Number of steps that cover `duration` [s] with steps of dt [s]
    (the last step may end up to dt later than `duration`)."""
    return max(1, int(math.ceil(duration / dt - 1e-9)))
