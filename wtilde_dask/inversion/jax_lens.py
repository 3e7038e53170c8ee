"""The lens in JAX: SIE + external shear ray tracing (:mod:`wtilde_dask.inversion.lens` written for ``jax.jit``).

``params`` (7,) in the order ``einstein_radius, axis_ratio, position_angle [deg], centre_y, centre_x, gamma_1,
gamma_2`` (arcsec, degrees counter-clockwise from +x); used by the JAX likelihood and its meshes.
"""

from __future__ import annotations

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

__all__ = ["ray_trace"]


def ray_trace(params, grid_arcsec):
    """(M, 2) source-plane (y, x) arcsec ``theta - alpha(theta)`` for lens ``params`` (7,) (module doc)."""
    b, q, pa, cy, cx, g1, g2 = (params[i] for i in range(7))
    phi = jnp.deg2rad(pa)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    y, x = grid_arcsec[:, 0], grid_arcsec[:, 1]
    dy, dx = y - cy, x - cx
    xp = cos * dx + sin * dy
    yp = -sin * dx + cos * dy
    tiny = 1e-12
    s2 = 1.0 - q * q
    near_round = s2 < 1e-4
    # near round (1 - q**2 < 1e-4, q = 1 included): arctan(e t)/e and arctanh(e t)/e by their series in e**2,
    # as lens.sie_deflections; the next term is under round-off
    psi_r = jnp.maximum(jnp.sqrt(q * q * xp * xp + yp * yp), tiny)
    tx, ty = xp / psi_r, yp / psi_r
    ux, uy = -s2 * tx * tx, s2 * ty * ty
    ax_round = b * q * tx * (1.0 + ux * (1.0 / 3.0 + ux * (1.0 / 5.0 + ux / 7.0)))
    ay_round = b * q * ty * (1.0 + uy * (1.0 / 3.0 + uy * (1.0 / 5.0 + uy / 7.0)))
    # SIE branch, with a safe q where the series is taken (no NaN in either branch's derivative)
    qs = jnp.where(near_round, 0.5, q)
    e = jnp.sqrt(1.0 - qs * qs)
    psi = jnp.maximum(jnp.sqrt(qs * qs * xp * xp + yp * yp), tiny)
    ax_sie = b * qs / e * jnp.arctan(e * xp / psi)
    ay_sie = b * qs / e * jnp.arctanh(jnp.clip(e * yp / psi, -1 + 1e-15, 1 - 1e-15))
    ax = jnp.where(near_round, ax_round, ax_sie)
    ay = jnp.where(near_round, ay_round, ay_sie)
    alpha_x = cos * ax - sin * ay + (g1 * x + g2 * y)
    alpha_y = sin * ax + cos * ay + (g2 * x - g1 * y)
    return jnp.stack([y - alpha_y, x - alpha_x], axis=1)


_ray_trace_jit = jax.jit(ray_trace)
