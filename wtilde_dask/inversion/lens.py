"""Lens ray-tracing: singular isothermal ellipsoid (SIE) plus external shear, analytic deflections.

Coordinates are (y, x) in arcsec (the image grid's ``grid_arcsec``). The source-plane position of an
image-plane point theta is ``beta = theta - alpha(theta)``.

SIE (Kormann et al. 1994; Keeton 2001 eq. for s = 0), in the lens frame (x' along the major axis,
rotated by ``position_angle`` degrees counter-clockwise from +x, origin at ``centre``), axis ratio
``q = b/a`` in (0, 1]::

    psi      = sqrt(q**2 x'**2 + y'**2)
    alpha_x' = b q / sqrt(1-q**2) * arctan (sqrt(1-q**2) x' / psi)
    alpha_y' = b q / sqrt(1-q**2) * arctanh(sqrt(1-q**2) y' / psi)

with ``b = einstein_radius`` (arcsec); for q -> 1 this is the singular isothermal sphere
``alpha = b theta/|theta|``; for ``1 - q**2 < 1e-4`` the arctan / arctanh ratios are evaluated by their series in
``1 - q**2`` (exact to round-off, as PyAutoLens does). The convergence is
``kappa = b q / (2 sqrt(q**2 x'**2 + y'**2)) = b / (2 sqrt(x'**2 + y'**2 / q**2))``: b is the semi-major axis of
the ``kappa = 1/2`` contour.

PyAutoLens parameterisation (``Isothermal`` + ``ExternalShear``, :func:`params_from_autolens`)::

    f = min(sqrt(ell_comps_0**2 + ell_comps_1**2), 0.999)     axis_ratio q = (1 - f) / (1 + f)
    position_angle = 1/2 arctan2(ell_comps_0, ell_comps_1)  (degrees, counter-clockwise from +x, in [-45, 135))
    b = 2 einstein_radius / (1 + q)      centre (y, x) = (centre_0, centre_1)      shear unchanged

i.e. PyAutoLens's ``einstein_radius`` is the radius of the circle of mean convergence one in its intermediate-axis
normalisation, ``kappa = theta_E / (2 sqrt(q x'**2 + y'**2 / q))`` multiplied by ``2 sqrt(q) / (1 + q)``.

External shear (gamma_1, gamma_2), potential ``psi = 1/2 gamma_1 (x**2 - y**2) + gamma_2 x y``::

    alpha_x = gamma_1 x + gamma_2 y,   alpha_y = gamma_2 x - gamma_1 y
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from wtilde_dask.errors import LensError  # noqa: F401 (re-exported)

# PyAutoLens clamps the ellipticity magnitude here (autogalaxy.convert.ELL_COMPS_MAGNITUDE_CLAMP): q >= 1/1999
ELL_COMPS_MAGNITUDE_CLAMP = 0.999


@dataclass(frozen=True)
class LensModel:
    """SIE + external shear. Angles in degrees, lengths in arcsec."""

    einstein_radius: float = 1.0
    axis_ratio: float = 1.0
    position_angle: float = 0.0
    centre: tuple[float, float] = (0.0, 0.0)  # (y, x) arcsec
    shear: tuple[float, float] = (0.0, 0.0)  # (gamma_1, gamma_2)

    def __post_init__(self):
        if not np.isfinite(self.einstein_radius) or self.einstein_radius < 0:
            raise LensError(f"einstein_radius: must be finite and >= 0, got {self.einstein_radius!r}")
        if not (0.0 < self.axis_ratio <= 1.0):
            raise LensError(f"axis_ratio: must lie in (0, 1], got {self.axis_ratio!r}")

    @classmethod
    def from_autolens(cls, centre=(0.0, 0.0), ell_comps=(0.0, 0.0), einstein_radius=1.0, gamma_1=0.0,
                      gamma_2=0.0) -> "LensModel":
        """The lens of PyAutoLens's ``Isothermal(centre, ell_comps, einstein_radius)`` +
        ``ExternalShear(gamma_1, gamma_2)`` (:func:`params_from_autolens`)."""
        p = [float(v) for v in params_from_autolens(centre[0], centre[1], ell_comps[0], ell_comps[1],
                                                    einstein_radius, gamma_1, gamma_2)]
        return cls(p[0], p[1], p[2], (p[3], p[4]), (p[5], p[6]))

    def deflections(self, grid_arcsec: np.ndarray) -> np.ndarray:
        """(N, 2) (alpha_y, alpha_x) arcsec at the (N, 2) (y, x) arcsec positions."""
        return sie_deflections(
            grid_arcsec, self.einstein_radius, self.axis_ratio, self.position_angle, self.centre
        ) + shear_deflections(grid_arcsec, *self.shear)

    def ray_trace(self, grid_arcsec: np.ndarray) -> np.ndarray:
        """(N, 2) source-plane (y, x) arcsec: ``beta = theta - alpha(theta)``."""
        grid = np.asarray(grid_arcsec, dtype=np.float64)
        return grid - self.deflections(grid)


def sie_deflections(grid_arcsec, einstein_radius, axis_ratio, position_angle=0.0, centre=(0.0, 0.0)):
    """(N, 2) SIE deflections (alpha_y, alpha_x), arcsec, of the (N, 2) (y, x) arcsec grid (see module doc)."""
    grid = np.asarray(grid_arcsec, dtype=np.float64)
    if grid.ndim != 2 or grid.shape[1] != 2:
        raise LensError(f"grid_arcsec: expected shape (N, 2), got {grid.shape}")
    b, q = float(einstein_radius), float(axis_ratio)
    phi = np.deg2rad(position_angle)
    cos, sin = np.cos(phi), np.sin(phi)
    dy, dx = grid[:, 0] - centre[0], grid[:, 1] - centre[1]
    xp = cos * dx + sin * dy
    yp = -sin * dx + cos * dy
    tiny = 1e-12
    s2 = 1.0 - q * q
    psi = np.maximum(np.sqrt(q * q * xp * xp + yp * yp), tiny)
    if s2 < 1e-4:
        # near round: arctan(e t)/e and arctanh(e t)/e as their series in e**2 = s2 (|t| <= 1/q; the next term,
        # below s2**4/9, is under round-off); q = 1 gives the singular isothermal sphere b theta/|theta|
        tx, ty = xp / psi, yp / psi
        ux, uy = -s2 * tx * tx, s2 * ty * ty
        ax = b * q * tx * (1.0 + ux * (1.0 / 3.0 + ux * (1.0 / 5.0 + ux / 7.0)))
        ay = b * q * ty * (1.0 + uy * (1.0 / 3.0 + uy * (1.0 / 5.0 + uy / 7.0)))
    else:
        e = np.sqrt(s2)
        ax = b * q / e * np.arctan(e * xp / psi)
        ay = b * q / e * np.arctanh(np.clip(e * yp / psi, -1 + 1e-15, 1 - 1e-15))
    out = np.empty_like(grid)
    out[:, 1] = cos * ax - sin * ay
    out[:, 0] = sin * ax + cos * ay
    return out


def shear_deflections(grid_arcsec, gamma_1=0.0, gamma_2=0.0):
    """(N, 2) external-shear deflections (alpha_y, alpha_x), arcsec (see module doc)."""
    grid = np.asarray(grid_arcsec, dtype=np.float64)
    y, x = grid[:, 0], grid[:, 1]
    return np.stack([gamma_2 * x - gamma_1 * y, gamma_1 * x + gamma_2 * y], axis=1)


def array_module(*arrays):
    """``jax.numpy`` when any argument is a JAX array (or tracer), else ``numpy``."""
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def params_from_autolens(centre_0, centre_1, ell_comps_0, ell_comps_1, einstein_radius, gamma_1, gamma_2):
    """(..., 7) lens parameters in ``PARAM_NAMES`` order (einstein_radius b, axis_ratio, position_angle, centre_y,
    centre_x, gamma_1, gamma_2) of PyAutoLens's ``Isothermal`` + ``ExternalShear`` (formulas in the module doc).

    Arguments are scalars or broadcastable arrays (arcsec; ``einstein_radius`` in PyAutoLens's normalisation);
    NumPy in, NumPy out; JAX in, JAX out (jit / grad traceable: the square root and the angle are guarded at
    ``ell_comps = (0, 0)`` so their derivatives stay finite there).
    """
    xp = array_module(centre_0, centre_1, ell_comps_0, ell_comps_1, einstein_radius, gamma_1, gamma_2)
    e0, e1 = xp.asarray(ell_comps_0, dtype=float), xp.asarray(ell_comps_1, dtype=float)
    s = e0 * e0 + e1 * e1
    round_ = s == 0
    fac = xp.where(round_, 0.0, xp.sqrt(xp.where(round_, 1.0, s)))
    fac = xp.minimum(fac, ELL_COMPS_MAGNITUDE_CLAMP)
    q = (1.0 - fac) / (1.0 + fac)
    angle = xp.rad2deg(0.5 * xp.arctan2(e0, xp.where(round_, 1.0, e1)))
    angle = xp.where(angle < -45.0, angle + 180.0, angle)
    b = 2.0 * xp.asarray(einstein_radius, dtype=float) / (1.0 + q)
    values = xp.broadcast_arrays(b, q, angle, *(xp.asarray(v, dtype=float)
                                                for v in (centre_0, centre_1, gamma_1, gamma_2)))
    return xp.stack(values, axis=-1)


def autolens_from_params(params) -> dict:
    """PyAutoLens's ``Isothermal`` + ``ExternalShear`` parameters (dict of arrays: centre_0, centre_1, ell_comps_0,
    ell_comps_1, einstein_radius, gamma_1, gamma_2) of (..., 7) lens parameters; inverse of
    :func:`params_from_autolens` (``ell_comps = (1 - q)/(1 + q) (sin 2 phi, cos 2 phi)``, ``theta_E = b (1 + q)/2``)."""
    p = np.asarray(params, dtype=np.float64)
    b, q, pa, cy, cx, g1, g2 = (p[..., i] for i in range(7))
    fac = (1.0 - q) / (1.0 + q)
    phi = np.deg2rad(pa)
    return {"centre_0": cy, "centre_1": cx, "ell_comps_0": fac * np.sin(2 * phi), "ell_comps_1": fac * np.cos(2 * phi),
            "einstein_radius": b * (1.0 + q) / 2.0, "gamma_1": g1, "gamma_2": g2}
