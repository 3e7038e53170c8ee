"""Rectangular source mesh whose nodes follow the density of the traced points (PyAutoArray's
``RectangularRTUAdaptDensity``, the differentiable one of its two adaptive rectangular meshes).

Coordinates are (y, x) arcsec. The (ny, nx) node lattice is uniform in a per-axis "CDF space" and mapped
to the source plane through a smooth kernel-density CDF of the traced points, so nodes crowd where many
traced points land (high magnification) and spread where they are sparse. With the N traced points
``beta_i`` (the grid the mesh is built on):

1. normalise: ``z = (beta - mu) / s``, ``mu`` the mean, ``s`` the smaller of the two standard deviations;
2. per axis d: ``F_d(t) = (1/N) sum_i Phi((t - z_id) / h_d)``, ``Phi`` the standard normal CDF,
   ``h_d = bandwidth * (max_i z_id - min_i z_id) / n_d``; rescaled so the data range maps to [0, 1]:
   ``U_d(t) = clip((F_d(t) - F_d(lo_d)) / (F_d(hi_d) - F_d(lo_d)), 0, 1)``;
3. index space ``g_d = (n_d - 3) U_d + 1`` in [1, n_d - 2]; the point's cell is ``i_d = clip(floor(g_d), 0,
   n_d - 2)`` to ``i_d + 1`` and ``t_d = g_d - i_d``; bilinear weights on the 4 corners, node (i_y, i_x)
   stored at row ``ny - i_y``, column ``i_x`` (row-major ``row * nx + col``): PyAutoArray's index and
   weight convention exactly (its outer ring of nodes holds no weight above row 1 / left of column 1).

Every step is a smooth function of the traced points except the cell choice, and the bilinear weights
are continuous across cells, so the mapping and the evidence are continuous in the lens parameters and
differentiable almost everywhere (PyAutoArray's other adaptive mesh, ``RectangularBilinearAdaptDensity``,
uses the empirical rank CDF: piecewise-constant in the lens, zero gradient; not provided here).
Node positions (for plots): the inverse CDF on a table of ``n_knots`` knots, node (r, c) at
``U_y = (ny - r - 1) / (ny - 3)``, ``U_x = (c - 1) / (nx - 3)``, clamped to the data range.
Neighbours (regularization): the 4-connected lattice, as :class:`~wtilde_dask.inversion.mesh.RectangularMesh`.
The formulas take an array module ``xp`` (NumPy or ``jax.numpy``), so the JAX likelihood uses them as is.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from wtilde_dask.inversion.mesh import MeshError, _as_points, _Mesh, rectangular_edges

DEFAULT_BANDWIDTH = 1.0  # PyAutoArray's KERNEL_CDF_DEFAULT_BANDWIDTH
DEFAULT_KNOTS = 64  # PyAutoArray's KERNEL_CDF_DEFAULT_KNOTS
QUERY_BLOCK = 512  # queries per block of the (block, N, 2) kernel sum


def _norm_cdf(t, xp):
    if xp is np:
        from scipy.special import erf
    else:
        from jax.scipy.special import erf
    return 0.5 * (1.0 + erf(t / np.sqrt(2.0)))


def _kernel_sum(q, z, h, xp):
    """(Q, 2) ``(1/N) sum_i Phi((q - z_i) / h)`` per axis, in blocks of :data:`QUERY_BLOCK` queries."""
    n = z.shape[0]

    def block(qb):
        return xp.sum(_norm_cdf((qb[:, None, :] - z[None, :, :]) / h, xp), axis=1) / n

    Q = q.shape[0]
    if Q <= QUERY_BLOCK:
        return block(q)
    if xp is np:
        return np.concatenate([block(q[i:i + QUERY_BLOCK]) for i in range(0, Q, QUERY_BLOCK)])
    import jax

    nb = -(-Q // QUERY_BLOCK)
    qp = xp.pad(q, ((0, nb * QUERY_BLOCK - Q), (0, 0)))
    return jax.lax.map(block, qp.reshape(nb, QUERY_BLOCK, 2)).reshape(nb * QUERY_BLOCK, 2)[:Q]


def density_transform(traced, mesh_shape, bandwidth=DEFAULT_BANDWIDTH, xp=np):
    """``(forward, (mu, s, lo, span, h, F_lo, F_hi))``: ``forward(points (Q, 2))`` -> (Q, 2) ``U`` in [0, 1]^2
    (steps 1-2 of the module doc) for the CDF of the (N, 2) ``traced`` points."""
    mu = xp.mean(traced, axis=0)
    s = xp.min(xp.std(traced, axis=0))
    z = (traced - mu) / s
    lo, hi = xp.min(z, axis=0), xp.max(z, axis=0)
    span = hi - lo
    h = bandwidth * span / xp.asarray([float(mesh_shape[0]), float(mesh_shape[1])])
    ends = _kernel_sum(xp.stack([lo, lo + span]), z, h, xp)
    F_lo, F_hi = ends[0], ends[1]

    def forward(points):
        F = _kernel_sum((points - mu) / s, z, h, xp)
        return xp.clip((F - F_lo) / (F_hi - F_lo), 0.0, 1.0)

    return forward, (mu, s, z, lo, span, h, F_lo, F_hi)


def adapt_density_mapping(traced, points, mesh_shape, bandwidth=DEFAULT_BANDWIDTH, xp=np):
    """(Q, 4) node indices and bilinear weights of (Q, 2) ``points`` on the mesh adapted to the (N, 2)
    ``traced`` points (step 3 of the module doc; column order as PyAutoArray: tl, tr, bl, br)."""
    ny, nx = (int(n) for n in mesh_shape)
    forward, _ = density_transform(traced, mesh_shape, bandwidth, xp)
    U = forward(points)
    g = U * xp.asarray([ny - 3.0, nx - 3.0]) + 1.0
    iy = xp.clip(xp.floor(g[:, 0]), 0, ny - 2)
    ix = xp.clip(xp.floor(g[:, 1]), 0, nx - 2)
    ty, tx = g[:, 0] - iy, g[:, 1] - ix
    iy, ix = iy.astype(np.int32), ix.astype(np.int32)
    cols = xp.stack([(ny - iy - 1) * nx + ix, (ny - iy - 1) * nx + ix + 1, (ny - iy) * nx + ix,
                     (ny - iy) * nx + ix + 1], axis=1)
    wts = xp.stack([ty * (1 - tx), ty * tx, (1 - ty) * (1 - tx), (1 - ty) * tx], axis=1)
    return cols, wts


class RectangularAdaptDensityMesh(_Mesh):
    """(ny, nx) nodes (both >= 3) adapted to the (N, 2) ``traced`` points (module doc); ``bandwidth`` in
    units of the mesh pixel scale, ``n_knots`` the size of the inverse-CDF table (node positions only)."""

    def __init__(self, traced, shape, bandwidth: float = DEFAULT_BANDWIDTH, n_knots: int = DEFAULT_KNOTS):
        ny, nx = (int(n) for n in shape)
        if ny < 3 or nx < 3:
            raise MeshError(f"mesh shape: need at least (3, 3) nodes, got {tuple(shape)}")
        if not (np.isfinite(bandwidth) and bandwidth > 0):
            raise MeshError(f"bandwidth: must be finite and > 0, got {bandwidth!r}")
        if int(n_knots) < 2:
            raise MeshError(f"n_knots: need at least 2, got {n_knots!r}")
        self.traced = _as_points(traced, "traced")
        if np.any(np.std(self.traced, axis=0) == 0):
            raise MeshError("traced: the points have zero spread along an axis; no density to adapt to")
        self.shape = (ny, nx)
        self.bandwidth = float(bandwidth)
        self.n_knots = int(n_knots)
        self.edges = rectangular_edges(self.shape)

    @classmethod
    def from_source_grid(cls, source_grid, shape, **kwargs) -> "RectangularAdaptDensityMesh":
        """The mesh adapted to the (N, 2) traced points themselves (PyAutoArray's use)."""
        return cls(source_grid, shape, **kwargs)

    @property
    def centres(self) -> np.ndarray:
        """(S, 2) node positions (y, x) arcsec, row-major (module doc: inverse CDF on the knot table)."""
        ny, nx = self.shape
        _, (mu, s, z, lo, span, h, F_lo, F_hi) = density_transform(self.traced, self.shape, self.bandwidth)
        knots = lo[None, :] + np.linspace(0.0, 1.0, self.n_knots)[:, None] * span[None, :]
        F_knots = (_kernel_sum(knots, z, h, np) - F_lo) / (F_hi - F_lo)
        uy = (ny - np.arange(ny) - 1) / (ny - 3) if ny > 3 else np.full(ny, 0.5)
        ux = (np.arange(nx) - 1) / (nx - 3) if nx > 3 else np.full(nx, 0.5)
        y = np.interp(uy, F_knots[:, 0], knots[:, 0]) * s + mu[0]
        x = np.interp(ux, F_knots[:, 1], knots[:, 1]) * s + mu[1]
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    @property
    def n_pixels(self) -> int:
        return int(self.shape[0] * self.shape[1])

    def mapping_matrix(self, source_grid) -> sp.csr_matrix:
        pts = _as_points(source_grid, "source_grid")
        cols, wts = adapt_density_mapping(self.traced, pts, self.shape, self.bandwidth)
        rows = np.repeat(np.arange(len(pts)), 4)
        T = sp.coo_matrix((wts.ravel(), (rows, cols.ravel())), shape=(len(pts), self.n_pixels)).tocsr()
        T.eliminate_zeros()
        return T
