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
``alpha = b theta/|theta|``. (PyAutoLens's ``Isothermal`` uses a different normalisation of ``b``
for q < 1; the shapes of the deflection fields are the same.)

External shear (gamma_1, gamma_2), potential ``psi = 1/2 gamma_1 (x**2 - y**2) + gamma_2 x y``::

    alpha_x = gamma_1 x + gamma_2 y,   alpha_y = gamma_2 x - gamma_1 y
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from wtilde_dask.errors import LensError  # noqa: F401 (re-exported)


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
    if q > 1.0 - 1e-8:
        r = np.maximum(np.hypot(xp, yp), tiny)
        ax, ay = b * xp / r, b * yp / r
    else:
        e = np.sqrt(1.0 - q * q)
        psi = np.maximum(np.sqrt(q * q * xp * xp + yp * yp), tiny)
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
