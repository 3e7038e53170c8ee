"""The lens-model log evidence in JAX: ray tracing, mapping, regularization, ``F = T^T W T`` by FFT of the
lattice kernel, Cholesky solve and evidence, as pure float64 functions of arrays (jit / vmap / grad).

A JAX twin of the NumPy per-evaluation path (:mod:`lens`, :mod:`mesh`, :mod:`regularization`,
:mod:`curvature_kernels`, :mod:`solve`); every formula is the NumPy one:

* lens parameters ``params`` (7,) in :data:`PARAM_NAMES` order: ``einstein_radius`` (arcsec), ``axis_ratio``
  q in (0, 1], ``position_angle`` (degrees), ``centre_y``, ``centre_x`` (arcsec), ``gamma_1``, ``gamma_2``
  (the fields of :class:`~wtilde_dask.inversion.lens.LensModel`); source plane ``beta = theta - alpha(theta)``.
* rectangular mesh (static (ny, nx)): the box of the traced points enlarged by ``buffer`` (min / max are
  differentiable), bilinear weights on the 4 nodes of a point's cell (:class:`RectangularMesh`).
* Delaunay mesh (static S vertices): which traced points are vertices, the triangulation, the triangle of
  every traced point and the mesh edges (:class:`DelaunayTopology`, integers) come from the host (SciPy,
  exactly :meth:`DelaunayMesh.from_source_grid`, :func:`delaunay_topology`) and enter the jitted function
  as an input, so they are held fixed inside a derivative, while the vertex positions (traced points) and
  the barycentric weights are JAX functions of the lens parameters: gradients flow through the Delaunay
  mesh. (Not ``jax.pure_callback``: its callback receives JAX arrays, and reading them on JAX's CPU
  client intermittently deadlocked here, as in jax-ml/jax#24255.)
* natural-neighbour mesh ``voronoi`` (Sibson weights, host topology as for Delaunay), the density-adapted
  lattice ``rectangular_adapt_density`` and PyAutoLens's ``RectangularUniform`` placement
  ``rectangular_uniform``: :mod:`~wtilde_dask.inversion.jax_meshes`.
* ``H = c^2 L + eps I`` (constant / gradient), ``c^2 L^T L + eps I`` (curvature), ``c^2 I`` (zeroth), L the
  graph Laplacian of the mesh edges (:mod:`regularization`).
* ``F = T^T W T`` with ``W_ij = k[r_i - r_j, c_i - c_j] + h[r_i + r_j, c_i + c_j]`` applied by FFT on the
  zero-padded (Ny, Nx) box of :class:`~wtilde_dask.inversion.curvature_kernels.LatticeOperator` (Hankel part
  included: exact for unequal real / imaginary noise): T's columns are scattered onto the box in batches,
  multiplied by the kernel spectra, gathered back and projected with T^T by segment sums.
* ``s = (F + H)^-1 D``, ``chi2 = chi2_data - 2 s.D + s.F.s``,
  ``log_evidence = -1/2 [chi2 + s.H.s + ln det(F + H) - ln det(H) + noise_normalization]``.

:class:`JaxLikelihood` holds the arrays (built once from a store or a :class:`WTildeFitter`) and the jitted
``log_evidence``, ``log_evidence_batch`` (vmap) and ``grad`` (jax.grad w.r.t. the lens parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from wtilde_dask.inversion import jax_curvature, jax_evidence, jax_fft, jax_meshes
from wtilde_dask.inversion.jax_lens import _ray_trace_jit, ray_trace  # noqa: F401 (re-exported)
from wtilde_dask.inversion.mesh import rectangular_edges
from wtilde_dask.inversion.regularization import REGULARIZATION_EPS, SCHEMES
from wtilde_dask.kernels import enable_x64
from wtilde_dask.errors import JaxLikelihoodError  # noqa: F401 (re-exported)

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

PARAM_NAMES = ("einstein_radius", "axis_ratio", "position_angle", "centre_y", "centre_x", "gamma_1", "gamma_2")
MESHES = ("rectangular", "delaunay", "voronoi", "rectangular_adapt_density", "rectangular_uniform")
LATTICE_MESHES = ("rectangular", "rectangular_adapt_density", "rectangular_uniform")  # (ny, nx) nodes, 4-connected: a fixed H
TOPOLOGY_MESHES = ("delaunay", "voronoi")  # integer tables from the host per lens


# ----------------------------------------------------------------------------------------------
# The arrays one likelihood needs (a pytree) and the static configuration
# ----------------------------------------------------------------------------------------------
class LatticeArrays(NamedTuple):
    """Everything per dataset, as JAX arrays (built once).

    grid_arcsec (M, 2) (y, x) arcsec image pixels; box_flat (M,) int flat index r * nx + c on the (ny, nx)
    box; dirty_image (M,); K_hat, H_hat (Ny, Nx//2+1) complex rfft2 spectra of the offset and index-sum
    kernels (H_hat zeros without a Hankel part); chi_squared_data, noise_normalization scalars.
    """

    grid_arcsec: jax.Array
    box_flat: jax.Array
    dirty_image: jax.Array
    K_hat: jax.Array
    H_hat: jax.Array
    chi_squared_data: jax.Array
    noise_normalization: jax.Array


@dataclass(frozen=True)
class LikelihoodConfig:
    """Static (hashable) choices: mesh kind and size, regularization, FFT box, column batch."""

    mesh: str = "rectangular"
    mesh_shape: tuple[int, int] = (32, 32)  # rectangular nodes (ny, nx)
    n_pixels: int = 400  # Delaunay vertices
    buffer: float = 1e-3  # rectangular mesh margin (RectangularMesh.from_source_grid)
    regularization: str = "constant"
    shape_box: tuple[int, int] = (1, 1)
    fft_shape: tuple[int, int] = (1, 1)
    has_hankel: bool = False
    batch_size: int = 8  # source columns per FFT batch (JaxLikelihood.from_fitter picks 8 for XLA, 16 for ducc0)
    real_kernel: bool = False  # K_hat real (even offset kernel; set by the builder): real x complex product
    batch_axis: str | None = None  # the vmap axis name when evaluated under jax.vmap (log_evidence_batch)
    fft: str = "xla"  # how F's FFTs run: "xla" (jnp.fft, any backend) | "ducc0" (CPU, every core; jax_fft)
    fft_threads: int = 0  # ducc0 threads (0: every core the process may use)

    @property
    def n_source_pixels(self) -> int:
        return int(self.mesh_shape[0] * self.mesh_shape[1]) if self.mesh in LATTICE_MESHES else int(self.n_pixels)


# ----------------------------------------------------------------------------------------------
# Mapping: (M, P) column indices and weights (PyAutoArray's padded triplets, here dense-P)
# ----------------------------------------------------------------------------------------------
def rectangular_mapping(source_grid, mesh_shape, buffer=1e-3):
    """Bilinear (M, 4) columns and weights on the (ny, nx) mesh covering the traced points (mesh.py).

    Extent: ``lo, hi = min, max`` of the points, ``pad = (hi - lo) buffer + 1e-9``; node (r, c) at
    ``(y_max + pad - r dy, x_min - pad + c dx)``; points are clamped to the box.
    """
    ny, nx = mesh_shape
    lo, hi = jnp.min(source_grid, axis=0), jnp.max(source_grid, axis=0)
    pad = (hi - lo) * buffer + 1e-9
    y0, y1 = lo[0] - pad[0], hi[0] + pad[0]
    x0, x1 = lo[1] - pad[1], hi[1] + pad[1]
    dy, dx = (y1 - y0) / (ny - 1), (x1 - x0) / (nx - 1)
    fy = jnp.clip((y1 - source_grid[:, 0]) / dy, 0.0, ny - 1.0)
    fx = jnp.clip((source_grid[:, 1] - x0) / dx, 0.0, nx - 1.0)
    r = jnp.minimum(jnp.floor(jax.lax.stop_gradient(fy)).astype(jnp.int32), ny - 2)
    c = jnp.minimum(jnp.floor(jax.lax.stop_gradient(fx)).astype(jnp.int32), nx - 2)
    ty, tx = fy - r, fx - c
    cols = jnp.stack([r * nx + c, r * nx + c + 1, (r + 1) * nx + c, (r + 1) * nx + c + 1], axis=1)
    wts = jnp.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], axis=1)
    return cols, wts


def delaunay_topology_host(source_grid, n_pixels: int):
    """Host side (NumPy / SciPy) of the Delaunay mesh of :meth:`DelaunayMesh.from_source_grid`.

    Returns int32 arrays: ``vertex_index`` (S,) rows of ``source_grid`` that are vertices, in the vertex
    order of :class:`DelaunayMesh` (lexicographic (y, x)); ``simplex`` (M, 3) the vertices of each point's
    triangle (a point outside the hull: its nearest vertex three times, ``inside`` 0); ``inside`` (M,);
    ``edges`` (3S, 2) triangle edges padded with (0, 0) and ``edge_mask`` (3S,) 1.0 for real edges.
    """
    from scipy.spatial import ConvexHull, Delaunay, cKDTree

    pts_all = np.asarray(source_grid, dtype=np.float64)
    n = int(n_pixels)
    pts, first = np.unique(pts_all, axis=0, return_index=True)
    hull = ConvexHull(pts).vertices
    if not (len(hull) + 1 <= n <= len(pts)):
        raise JaxLikelihoodError(
            f"n_pixels: must lie in [{len(hull) + 1}, {len(pts)}] (hull corners + 1 .. traced points), got {n}")
    rest = np.setdiff1d(np.arange(len(pts)), hull)
    pick = rest[np.unique(np.linspace(0, len(rest) - 1, n - len(hull)).round().astype(np.int64))]
    chosen = np.sort(np.concatenate([hull, pick]))  # rows of the lexicographically sorted pts = DelaunayMesh order
    vertices = pts[chosen]
    vertex_index = first[chosen]
    tri = Delaunay(vertices)
    simplex_id = tri.find_simplex(pts_all)
    inside = simplex_id >= 0
    simplex = np.empty((len(pts_all), 3), dtype=np.int64)
    simplex[inside] = tri.simplices[simplex_id[inside]]
    if (~inside).any():
        _, nearest = cKDTree(vertices).query(pts_all[~inside])
        simplex[~inside] = np.atleast_1d(nearest)[:, None]
    simp = tri.simplices
    e = np.unique(np.sort(np.concatenate([simp[:, [0, 1]], simp[:, [1, 2]], simp[:, [0, 2]]]), axis=1), axis=0)
    edges = np.zeros((3 * n, 2), dtype=np.int64)
    edges[: len(e)] = e
    edge_mask = np.zeros(3 * n)
    edge_mask[: len(e)] = 1.0
    return (vertex_index.astype(np.int32), simplex.astype(np.int32), inside.astype(np.int32), edges.astype(np.int32),
            edge_mask)


class DelaunayTopology(NamedTuple):
    """The discrete part of a Delaunay mesh (from :func:`delaunay_topology_host`; held fixed in a derivative)."""

    vertex_index: jax.Array  # (S,) int32 rows of the traced grid that are vertices
    simplex: jax.Array  # (M, 3) int32 vertices of each traced point's triangle
    inside: jax.Array  # (M,) int32
    edges: jax.Array  # (3S, 2) int32, padded
    edge_mask: jax.Array  # (3S,) float64


def delaunay_mapping(source_grid, topology: DelaunayTopology):
    """Barycentric (M, 3) columns and weights of the traced points on the mesh of ``topology``.

    The vertex positions ``source_grid[vertex_index]`` and the weights are JAX functions of the traced
    points, so they are differentiable in the lens parameters; the topology (which points are vertices,
    the triangle of each point) is an integer input, fixed inside a derivative.
    """
    vertices = source_grid[topology.vertex_index]
    simplex, inside = topology.simplex, topology.inside == 1
    a, b, c = vertices[simplex[:, 0]], vertices[simplex[:, 1]], vertices[simplex[:, 2]]

    def cross(u, v):
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    p = source_grid
    area = jnp.where(inside, cross(b - a, c - a), 1.0)
    wa = cross(b - p, c - p) / area
    wb = cross(c - p, a - p) / area
    wts = jnp.stack([wa, wb, 1.0 - wa - wb], axis=1)
    wts = jnp.where(inside[:, None], wts, jnp.array([1.0, 0.0, 0.0]))
    return simplex, wts


# ----------------------------------------------------------------------------------------------
# Regularization (regularization.py in JAX)
# ----------------------------------------------------------------------------------------------
def laplacian(edges, edge_mask, n_pixels: int):
    """(S, S) graph Laplacian ``L = B^T B`` of the (E, 2) edges (masked-out rows add nothing)."""
    i, j = edges[:, 0], edges[:, 1]
    L = jnp.zeros((n_pixels, n_pixels))
    L = L.at[i, i].add(edge_mask).at[j, j].add(edge_mask)
    return L.at[i, j].add(-edge_mask).at[j, i].add(-edge_mask)


def regularization_matrix(L, coefficient, scheme: str):
    """(S, S) H of ``scheme`` from the Laplacian L (module doc)."""
    S = L.shape[0]
    c2 = coefficient * coefficient
    if scheme == "zeroth":
        return c2 * jnp.eye(S)
    base = L if scheme in ("constant", "gradient") else L.T @ L
    return c2 * base + REGULARIZATION_EPS * jnp.eye(S)


class FixedRegularization(NamedTuple):
    """H of a mesh whose edges do not depend on the lens (the rectangular mesh), factored once on the host.

    ``H = c^2 base + eps I`` with ``base`` (S, S) = L (constant / gradient), ``L^T L`` (curvature) or I (zeroth,
    eps = 0); ``base_eigenvalues`` (S,) its eigenvalues (``numpy.linalg.eigvalsh``, the null space's
    round-off set to exactly 0), so ``ln det H = sum ln(c^2 mu + eps)``: no Cholesky of H per evaluation,
    and still a function of the coefficient c (differentiable in it).
    """

    base: jax.Array
    base_eigenvalues: jax.Array
    eps: jax.Array


def fixed_regularization(edges, n_pixels: int, scheme: str) -> FixedRegularization:
    """Host step: :class:`FixedRegularization` of the (E, 2) mesh ``edges`` for ``scheme``."""
    from wtilde_dask.inversion.regularization import regularization_matrix as numpy_regularization_matrix

    base = numpy_regularization_matrix(edges, int(n_pixels), 1.0, scheme, eps=0.0)  # c = 1, eps = 0: the base
    eps = 0.0 if scheme == "zeroth" else REGULARIZATION_EPS
    mu = np.linalg.eigvalsh(base)
    mu[np.abs(mu) <= 1e-12 * max(float(np.max(np.abs(mu))), 1.0)] = 0.0  # L's null space (constants): exactly 0
    return FixedRegularization(jnp.asarray(base), jnp.asarray(np.maximum(mu, 0.0)), jnp.asarray(eps))


def fixed_regularization_matrix(fixed: FixedRegularization, coefficient):
    """(H (S, S), ln det H) of :class:`FixedRegularization` for ``coefficient``."""
    c2 = coefficient * coefficient
    H = c2 * fixed.base + fixed.eps * jnp.eye(fixed.base.shape[0])
    return H, jnp.sum(jnp.log(c2 * fixed.base_eigenvalues + fixed.eps))


# ----------------------------------------------------------------------------------------------
# F = T^T W T and D = T^T d by FFT on the lattice box
# ----------------------------------------------------------------------------------------------
lattice_apply = jax_curvature.lattice_apply  # W on (nb, ny, nx) box images by FFT (re-exported)


def curvature_matrix(cols, wts, arrays: LatticeArrays, config: LikelihoodConfig):
    """(S, S) ``F = T^T W T`` for the (M, P) mapping columns / weights (module doc), with the hand-written
    reverse mode of :func:`~wtilde_dask.inversion.jax_curvature.curvature_from_mapping` (the gradient reuses
    the forward's ``W T`` at T's nonzeros: no FFT in the backward pass).

    Source pixels that no image pixel maps to (empty columns of T: the corners of a rectangular mesh,
    ~16% at the ALMA preset) have zero rows and columns in F: the columns are renumbered with the used
    ones first and the batches holding only empty columns skip their FFTs (``lax.cond``; under ``vmap``
    with ``config.batch_axis`` the axis name, a batch is skipped when it is empty for every lens).
    """
    return jax_curvature.curvature_from_mapping(cols, wts, arrays.K_hat, arrays.H_hat, arrays.box_flat, config)


def data_vector(cols, wts, dirty_image, n_source_pixels: int):
    """(S,) ``D = T^T d`` (:func:`~wtilde_dask.inversion.jax_curvature.data_vector`)."""
    return jax_curvature.data_vector(cols, wts, dirty_image, int(n_source_pixels))


# ----------------------------------------------------------------------------------------------
# Solve and score (solve.py in JAX)
# ----------------------------------------------------------------------------------------------
JaxInversion = jax_evidence.JaxInversion  # re-exported
solve_and_score = jax_evidence.solve_and_score


def mapping_and_regularization(params, arrays: LatticeArrays, config: LikelihoodConfig, coefficient, topology=None):
    """(cols (M, P), wts (M, P), H (S, S), ln det H or None, source_grid (M, 2)) for lens ``params``.

    ``topology``: the Delaunay mesh's :class:`DelaunayTopology`; for the rectangular mesh optionally its
    :class:`FixedRegularization` (H and ln det H without a Laplacian build or a Cholesky per evaluation).
    """
    source_grid = ray_trace(params, arrays.grid_arcsec)
    S = config.n_source_pixels
    if config.mesh in LATTICE_MESHES:
        if config.mesh == "rectangular":
            cols, wts = rectangular_mapping(source_grid, config.mesh_shape, config.buffer)
        elif config.mesh == "rectangular_uniform":
            cols, wts = jax_meshes.uniform_overlay_mapping(source_grid, config.mesh_shape)
        else:
            cols, wts = jax_meshes.adapt_density_jax_mapping(source_grid, config.mesh_shape)
        if isinstance(topology, FixedRegularization):
            H, log_det_h = fixed_regularization_matrix(topology, coefficient)
            return cols, wts, H, log_det_h, source_grid
        edges = jnp.asarray(rectangular_edges(config.mesh_shape), dtype=jnp.int32)
        L = laplacian(edges, jnp.ones(edges.shape[0]), S)
    else:
        if topology is None:
            raise JaxLikelihoodError(f"mesh {config.mesh!r}: needs the topology of the traced grid (JaxLikelihood.topology)")
        if config.mesh == "voronoi":
            cols, wts = jax_meshes.voronoi_mapping(source_grid, topology)
            L = laplacian(topology.edges, jax_meshes.edge_weights(source_grid, topology), S)
        else:
            cols, wts = delaunay_mapping(source_grid, topology)
            L = laplacian(topology.edges, topology.edge_mask, S)
    return cols, wts, regularization_matrix(L, coefficient, config.regularization), None, source_grid


def inversion(params, arrays: LatticeArrays, config: LikelihoodConfig, coefficient=1.0, topology=None) -> JaxInversion:
    """The whole evaluation for lens ``params`` (7,): trace, map, regularize, F, D, solve, score.
    ``topology``: the Delaunay mesh's :class:`DelaunayTopology`; the rectangular mesh's
    :class:`FixedRegularization` or None."""
    cols, wts, H, log_det_h, _ = mapping_and_regularization(params, arrays, config, coefficient, topology)
    F = curvature_matrix(cols, wts, arrays, config)
    D = data_vector(cols, wts, arrays.dirty_image, config.n_source_pixels)
    return solve_and_score(F, D, H, arrays.chi_squared_data, arrays.noise_normalization, log_det_h)


def log_evidence(params, arrays: LatticeArrays, config: LikelihoodConfig, coefficient=1.0, topology=None):
    """Scalar log evidence for lens ``params`` (7,) (what a sampler / optimiser calls): the numbers of
    :func:`inversion`, differentiated through the solve by the envelope theorem
    (:func:`~wtilde_dask.inversion.jax_evidence.log_evidence_from_matrices`)."""
    cols, wts, H, log_det_h, _ = mapping_and_regularization(params, arrays, config, coefficient, topology)
    F = curvature_matrix(cols, wts, arrays, config)
    D = data_vector(cols, wts, arrays.dirty_image, config.n_source_pixels)
    return jax_evidence.log_evidence_from_matrices(F, D, H, arrays.chi_squared_data, arrays.noise_normalization,
                                                   log_det_h)


def delaunay_topology(params, grid_arcsec, n_pixels: int) -> DelaunayTopology:
    """Host step: trace the grid for ``params`` (7,) and triangulate (:func:`delaunay_topology_host`)."""
    source_grid = np.asarray(_ray_trace_jit(jnp.asarray(params, jnp.float64), grid_arcsec))
    return DelaunayTopology(*(jnp.asarray(a) for a in delaunay_topology_host(source_grid, n_pixels)))



def inversion_from_mapping(cols, wts, H, arrays: LatticeArrays, config: LikelihoodConfig) -> JaxInversion:
    """The evaluation for a given mapping (M, P) columns / weights and (S, S) H (the fitter's JAX backend)."""
    F = curvature_matrix(cols, wts, arrays, config)
    D = data_vector(cols, wts, arrays.dirty_image, config.n_source_pixels)
    return solve_and_score(F, D, H, arrays.chi_squared_data, arrays.noise_normalization)


# ----------------------------------------------------------------------------------------------
# Builder (host side): arrays from a store / fitter, jitted functions held once
# ----------------------------------------------------------------------------------------------
def params_from_lens(lens) -> np.ndarray:
    """(7,) parameter vector of a :class:`~wtilde_dask.inversion.lens.LensModel`."""
    return np.array([lens.einstein_radius, lens.axis_ratio, lens.position_angle, lens.centre[0], lens.centre[1],
                     lens.shear[0], lens.shear[1]], dtype=np.float64)


def lens_from_params(params):
    """:class:`~wtilde_dask.inversion.lens.LensModel` of a (7,) parameter vector."""
    from wtilde_dask.inversion.lens import LensModel

    p = [float(v) for v in np.asarray(params, dtype=np.float64)]
    return LensModel(p[0], p[1], p[2], (p[3], p[4]), (p[5], p[6]))


def lattice_arrays_from_fitter(fitter, grid_arcsec) -> tuple[LatticeArrays, tuple, tuple, bool]:
    """(arrays, shape_box, fft_shape, has_hankel) from a ``path="fft"`` :class:`WTildeFitter`."""
    curv = fitter.curvature_path
    op = getattr(curv, "operator", None)
    if op is None:
        raise JaxLikelihoodError(
            f"fitter path {fitter.path!r}: the JAX likelihood needs the lattice kernel (path 'fft', a lattice store)")
    ny, nx = op.shape_box
    box = np.asarray(curv.box_indices, dtype=np.int64)
    has_hankel = op.H_hat is not None
    arrays = LatticeArrays(
        grid_arcsec=jnp.asarray(np.asarray(grid_arcsec, dtype=np.float64)),
        box_flat=jnp.asarray(box[:, 0] * nx + box[:, 1], dtype=jnp.int32),
        dirty_image=jnp.asarray(fitter.dirty_image),
        K_hat=jnp.asarray(op.K_hat),
        H_hat=jnp.asarray(op.H_hat if has_hankel else np.zeros_like(op.K_hat)),
        chi_squared_data=jnp.asarray(float(fitter.sums.chi_squared_data)),
        noise_normalization=jnp.asarray(float(fitter.sums.noise_normalization)),
    )
    return arrays, (int(ny), int(nx)), tuple(int(n) for n in op.fft_shape), has_hankel


def kernel_spectrum_is_real(K_hat, rtol: float = 1e-12) -> bool:
    """True when the (Ny, Nx//2+1) spectrum of the offset kernel is real up to round-off
    (``max |Im| <= rtol max |K_hat|``): the kernel is even, as for every symmetric W."""
    K = np.asarray(K_hat)
    return bool(np.max(np.abs(K.imag)) <= rtol * np.max(np.abs(K))) if K.size else True


class JaxLikelihood:
    """The jitted lens-model log evidence on one dataset, mesh and regularization.

    ``log_evidence(params)`` (7,) -> scalar; ``log_evidence_batch(params)`` (N, 7) -> (N,) by ``jax.vmap``;
    ``grad(params)`` (7,) -> (7,) by ``jax.grad``; ``value_and_grad``; ``inversion(params)`` all numbers.
    Each is compiled once per mesh shape (and batch size) on first call.
    """

    def __init__(self, arrays: LatticeArrays, config: LikelihoodConfig, coefficient: float = 1.0):
        if config.mesh not in MESHES:
            raise JaxLikelihoodError(f"mesh: unknown {config.mesh!r}, expected one of {', '.join(MESHES)}")
        if config.regularization not in SCHEMES:
            raise JaxLikelihoodError(
                f"regularization: unknown {config.regularization!r}, expected one of {', '.join(SCHEMES)}")
        if config.mesh == "rectangular" and min(config.mesh_shape) < 2:
            raise JaxLikelihoodError(f"mesh_shape: need at least (2, 2) nodes, got {config.mesh_shape}")
        if config.mesh == "rectangular_adapt_density" and min(config.mesh_shape) < 3:
            raise JaxLikelihoodError(f"mesh_shape: need at least (3, 3) nodes for {config.mesh!r}, got {config.mesh_shape}")
        if not np.isfinite(coefficient) or coefficient < 0:
            raise JaxLikelihoodError(f"coefficient: must be finite and >= 0, got {coefficient!r}")
        self.arrays = arrays
        self.config = config
        self.coefficient = float(coefficient)

        def bound(fn, cfg):  # fn(params, arrays, cfg, coefficient, topology) with the static configuration bound
            return lambda params, arrays, coefficient, topology: fn(params, arrays, cfg, coefficient, topology)

        # the rectangular mesh's H is the same for every lens: factored once here (FixedRegularization)
        self._fixed = (fixed_regularization(rectangular_edges(config.mesh_shape), config.n_source_pixels,
                                            config.regularization) if config.mesh in LATTICE_MESHES else None)
        f = bound(log_evidence, config)
        self._log_evidence = jax.jit(f)
        self._batch = jax.jit(jax.vmap(bound(log_evidence, replace(config, batch_axis="lens")),
                                       in_axes=(0, None, None, 0 if config.mesh in TOPOLOGY_MESHES else None),
                                       axis_name="lens"))
        # the same with one regularization coefficient per lens (a free coefficient in a search)
        self._batch_coefficients = jax.jit(jax.vmap(bound(log_evidence, replace(config, batch_axis="lens")),
                                                    in_axes=(0, None, 0, 0 if config.mesh in TOPOLOGY_MESHES else None),
                                                    axis_name="lens"))
        self._value_and_grad = jax.jit(jax.value_and_grad(f))
        self._grad = jax.jit(jax.grad(f))
        self._inversion = jax.jit(bound(inversion, config))

    @classmethod
    def from_fitter(cls, fitter, grid_arcsec, *, mesh="rectangular", mesh_shape=(32, 32), n_pixels=400,
                    regularization="constant", coefficient=1.0, batch_size=None, buffer=1e-3,
                    fft=None) -> "JaxLikelihood":
        """From a :class:`WTildeFitter` with the lattice (fft) path and the (M, 2) image grid in arcsec.
        ``fft``: "xla", "ducc0" or "auto" (default: the ``wtilde.likelihood-fft`` setting, :mod:`jax_fft`);
        ``batch_size``: source columns per FFT batch (default 16 with ducc0, 8 with XLA: the fastest at the
        ALMA preset on 2 CPU cores)."""
        from wtilde_dask import config as wtilde_config

        fft = jax_fft.resolve_fft(fft)
        if batch_size is None:
            batch_size = 16 if fft == "ducc0" else 8
        arrays, shape_box, fft_shape, has_hankel = lattice_arrays_from_fitter(fitter, grid_arcsec)
        config = LikelihoodConfig(mesh=mesh, mesh_shape=tuple(int(n) for n in mesh_shape), n_pixels=int(n_pixels),
                                  buffer=float(buffer), regularization=regularization, shape_box=shape_box,
                                  fft_shape=fft_shape, has_hankel=has_hankel, batch_size=int(batch_size),
                                  real_kernel=not has_hankel and kernel_spectrum_is_real(arrays.K_hat),
                                  fft=fft, fft_threads=int(wtilde_config.get("fft-threads")))
        return cls(arrays, config, coefficient)

    @classmethod
    def from_store(cls, store, **kwargs) -> "JaxLikelihood":
        """From a lattice W-tilde store (path or :class:`~wtilde_dask.store.WTildeStore`); kwargs as
        :meth:`from_fitter` (mesh, mesh_shape, n_pixels, regularization, coefficient, batch_size)."""
        from wtilde_dask.inversion.store_inputs import lattice_inputs
        from wtilde_dask.store import WTildeStore

        st = store if isinstance(store, WTildeStore) else WTildeStore.open(store)
        if st.method != "lattice" or not st.grid().is_lattice:
            raise JaxLikelihoodError(
                f"store {st.path}: the JAX likelihood needs a lattice store (method 'lattice'), got method {st.method!r}")
        return cls.from_fitter(lattice_inputs(st), st.grid().grid_arcsec, **kwargs)

    def _params(self, params, batch=False):
        p = jnp.asarray(params, dtype=jnp.float64)
        want = (p.shape[0], 7) if batch else (7,)
        if p.ndim != len(want) or p.shape[-1] != 7:
            raise JaxLikelihoodError(f"params: expected shape {'(N, 7)' if batch else '(7,)'} in the order "
                                     f"{', '.join(PARAM_NAMES)}, got {tuple(p.shape)}")
        return p

    def topology(self, params):
        """The Delaunay mesh's :class:`DelaunayTopology` at ``params`` (host: SciPy); for the rectangular mesh
        its :class:`FixedRegularization` (the same for every ``params``)."""
        if self.config.mesh == "voronoi":
            return jax_meshes.voronoi_topology(params, self.arrays.grid_arcsec, self.config.n_pixels)
        if self.config.mesh != "delaunay":
            return self._fixed
        return delaunay_topology(params, self.arrays.grid_arcsec, self.config.n_pixels)

    def log_evidence(self, params, topology=None) -> jax.Array:
        p = self._params(params)
        return self._log_evidence(p, self.arrays, self.coefficient, topology or self.topology(p))

    def log_evidence_batch(self, params, coefficients=None) -> jax.Array:
        """(N,) log evidences of the (N, 7) ``params`` by vmap; ``coefficients`` (N,): one regularization
        coefficient per lens (default: the likelihood's ``coefficient`` for all)."""
        p = self._params(params, batch=True)
        topo = self._fixed
        if self.config.mesh in TOPOLOGY_MESHES:
            topos = [self.topology(q) for q in p]
            if self.config.mesh == "voronoi":  # a common cavity size and neighbour count
                topos = jax_meshes.pad_topologies(topos)
            topo = jax.tree.map(lambda *a: jnp.stack(a), *topos)
        if coefficients is None:
            return self._batch(p, self.arrays, self.coefficient, topo)
        c = jnp.asarray(coefficients, dtype=jnp.float64)
        if c.shape != (p.shape[0],):
            raise JaxLikelihoodError(f"coefficients: expected shape ({p.shape[0]},) (one per lens), got {tuple(c.shape)}")
        return self._batch_coefficients(p, self.arrays, c, topo)

    def grad(self, params, topology=None) -> jax.Array:
        """d log_evidence / d params (7,); Delaunay: the topology at ``params`` held fixed."""
        p = self._params(params)
        return self._grad(p, self.arrays, self.coefficient, topology or self.topology(p))

    def value_and_grad(self, params, topology=None):
        p = self._params(params)
        return self._value_and_grad(p, self.arrays, self.coefficient, topology or self.topology(p))

    def inversion(self, params, topology=None) -> JaxInversion:
        p = self._params(params)
        return self._inversion(p, self.arrays, self.coefficient, topology or self.topology(p))

    def fit(self, params):
        """:class:`~wtilde_dask.inversion.solve.InversionResult` (NumPy) for lens ``params`` (7,)."""
        from wtilde_dask.inversion.solve import InversionResult

        r = jax.device_get(self.inversion(params))
        return InversionResult(np.asarray(r.reconstruction), *(float(v) for v in r[1:]))


def fit_from_mapping(mapping_matrix, regularization_matrix, arrays: LatticeArrays, config: LikelihoodConfig):
    """:class:`InversionResult` for a given T (anything :func:`as_mapping_matrix` takes) and H, in JAX."""
    from wtilde_dask.inversion.mapping import triplets_from_mapping_matrix
    from wtilde_dask.inversion.solve import InversionResult

    tri = triplets_from_mapping_matrix(mapping_matrix)
    cols = np.where(tri.pix_indexes_for_sub_slim_index >= 0, tri.pix_indexes_for_sub_slim_index, 0)
    wts = np.where(tri.pix_indexes_for_sub_slim_index >= 0, tri.pix_weights_for_sub_slim_index, 0.0)
    cfg = LikelihoodConfig(**{**config.__dict__, "mesh": "mapping", "n_pixels": int(tri.n_source_pixels)})
    r = jax.device_get(_inversion_from_mapping_jit(jnp.asarray(cols, jnp.int32), jnp.asarray(wts),
                                                   jnp.asarray(regularization_matrix, jnp.float64), arrays, cfg))
    return InversionResult(np.asarray(r.reconstruction), *(float(v) for v in r[1:]))


_inversion_from_mapping_jit = jax.jit(inversion_from_mapping, static_argnames=("config",))


def maximize_evidence(likelihood: JaxLikelihood, params0, free=("einstein_radius", "axis_ratio"), bounds=None,
                      maxiter: int = 200, step: float = 0.02):
    """Gradient-based fit: maximise the log evidence over the ``free`` lens parameters (names of
    :data:`PARAM_NAMES`) from ``params0`` (7,), the others held fixed, by SciPy's L-BFGS-B on ``jax.grad``.

    ``step``: the first step's size relative to each free parameter (L-BFGS-B runs on ``p / (step |p0|)``).
    ``bounds``: one (low, high) per free parameter (default: einstein_radius >= 1e-3, axis_ratio in (0.05, 1), others unbounded).
    Returns ``(params (7,), scipy OptimizeResult)``.
    """
    import scipy.optimize

    names = list(free)
    unknown = [n for n in names if n not in PARAM_NAMES]
    if unknown:
        raise JaxLikelihoodError(f"free: unknown parameter(s) {unknown}, expected names from {', '.join(PARAM_NAMES)}")
    idx = np.array([PARAM_NAMES.index(n) for n in names])
    base = np.asarray(params0, dtype=np.float64).copy()
    if bounds is None:
        default = {"einstein_radius": (1e-3, None), "axis_ratio": (0.05, 1.0)}
        bounds = [default.get(n, (None, None)) for n in names]

    # optimise x = p / scale with scale = step * max(|p0|, 0.1): L-BFGS-B's first step (length ~1 in x) is then
    # about ``step`` of each parameter instead of a whole unit of it
    scale = float(step) * np.maximum(np.abs(base[idx]), 0.1)
    bounds_x = [(None if lo is None else lo / s, None if hi is None else hi / s) for (lo, hi), s in zip(bounds, scale)]

    def objective(x):
        p = base.copy()
        p[idx] = x * scale
        value, grad = likelihood.value_and_grad(p)
        return -float(value), -np.asarray(grad)[idx] * scale

    res = scipy.optimize.minimize(objective, base[idx] / scale, jac=True, method="L-BFGS-B", bounds=bounds_x,
                                  options={"maxiter": int(maxiter)})
    out = base.copy()
    out[idx] = res.x * scale
    return out, res
