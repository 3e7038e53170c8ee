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
``log_evidence``, ``log_evidence_batch`` (vmap or lax.map) and ``grad`` (jax.grad w.r.t. the lens parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from wtilde_dask.inversion import (jax_curvature, jax_evidence, jax_fft, jax_mapping_evidence, jax_meshes,
                                   jax_regularization)
from wtilde_dask.inversion.jax_lens import _ray_trace_jit, ray_trace  # noqa: F401 (re-exported)
from wtilde_dask.inversion.mesh import rectangular_edges
from wtilde_dask.inversion.regularization import SCHEMES
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
    batch_size: int = 8  # source columns per FFT batch (JaxLikelihood.from_fitter's default, both FFT ways)
    real_kernel: bool = False  # K_hat real (even offset kernel; set by the builder): real x complex product
    batch_axis: str | None = None  # the vmap axis name when evaluated under jax.vmap (log_evidence_batch)
    fft: str = "xla"  # how F's FFTs run: "xla" (jnp.fft, any backend) | "ducc0" (F on the host, CPU, every core; jax_fft)
    fft_threads: int = 0  # ducc0 threads (0: every core the process may use)

    @property
    def n_source_pixels(self) -> int:
        return int(self.mesh_shape[0] * self.mesh_shape[1]) if self.mesh in LATTICE_MESHES else int(self.n_pixels)


# Mapping of the rectangular and Delaunay meshes: jax_meshes (re-exported)
rectangular_mapping = jax_meshes.rectangular_mapping
delaunay_topology_host = jax_meshes.delaunay_topology_host
DelaunayTopology = jax_meshes.DelaunayTopology
delaunay_mapping = jax_meshes.delaunay_mapping

# Regularization: jax_regularization (re-exported)
laplacian = jax_regularization.laplacian
regularization_matrix = jax_regularization.regularization_matrix
FixedRegularization = jax_regularization.FixedRegularization
fixed_regularization = jax_regularization.fixed_regularization
fixed_regularization_matrix = jax_regularization.fixed_regularization_matrix


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
    if config.fft == "ducc0":  # the gradient from the same host call as F (jax_mapping_evidence)
        if config.mesh == "voronoi":  # padding entries marked -1: the host skips their cotangents
            cols = jnp.where(topology.neighbours >= 0, cols, -1)
        on_host = log_det_h is None  # an H that changes with the lens: ln det H in the host call, beside F
        return jax_mapping_evidence.log_evidence_from_mapping(
            cols, wts, H, jnp.zeros(()) if on_host else log_det_h, arrays.dirty_image, arrays.chi_squared_data,
            arrays.noise_normalization, arrays.K_hat, arrays.H_hat, arrays.box_flat, config, on_host)
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


BATCH_WAYS = ("vmap", "map")


def resolve_batch(batch: str | None = None, fft: str = "ducc0") -> str:
    """How a batch of lenses is evaluated: ``batch`` or the ``wtilde.likelihood-batch`` setting. ``"vmap"``: one
    ``jax.vmap`` over the batch (with F on the host, ``fft="ducc0"``: one host call whose lenses run side by side,
    one core each); ``"map"``: ``jax.lax.map``, one lens after the other inside one compiled function;
    ``"auto"`` (the default): map where F's FFTs run in XLA on a CPU backend (``fft="xla"``: a vmapped evaluation
    cost more per lens than a single one there, its FFT batches grow with the lenses), vmap elsewhere.
    Raises ValueError naming an unknown value."""
    from wtilde_dask import config as wtilde_config

    way = wtilde_config.get("likelihood-batch") if batch is None else batch
    if way not in ("auto",) + BATCH_WAYS:
        raise ValueError(f"likelihood-batch: unknown {way!r}, expected auto, vmap or map")
    if way == "auto":
        return "map" if jax.default_backend() == "cpu" and fft == "xla" else "vmap"
    return way


def _batched(single, vmapped, way: str, coefficient_axis, topology_axis):
    """Jitted ``(params (N, 7), arrays, coefficient, topology) -> (N,)``: ``vmapped`` under ``jax.vmap`` (axis name
    "lens") or ``single`` under ``jax.lax.map``; ``coefficient_axis`` / ``topology_axis``: 0 when batched, else None."""
    if way == "vmap":
        return jax.jit(jax.vmap(vmapped, in_axes=(0, None, coefficient_axis, topology_axis), axis_name="lens"))

    def mapped(params, arrays, coefficient, topology):
        def one(item):
            p, c, t = item
            return single(p, arrays, coefficient if c is None else c, topology if t is None else t)

        return jax.lax.map(one, (params, coefficient if coefficient_axis == 0 else None,
                                 topology if topology_axis == 0 else None))

    return jax.jit(mapped)


class JaxLikelihood:
    """The jitted lens-model log evidence on one dataset, mesh and regularization.

    ``log_evidence(params)`` (7,) -> scalar; ``log_evidence_batch(params)`` (N, 7) -> (N,) by ``jax.vmap`` or
    ``jax.lax.map`` (:func:`resolve_batch`);
    ``grad(params)`` (7,) -> (7,) by ``jax.grad``; ``value_and_grad``; ``inversion(params)`` all numbers.
    Each is compiled once per mesh shape (and batch size) on first call. On a CPU backend each call returns a
    finished result, and calls from several threads of one process run one at a time
    (:func:`~wtilde_dask.inversion.jax_fft.one_at_a_time`: XLA:CPU's FFTs can deadlock when run side by side).
    """

    def __init__(self, arrays: LatticeArrays, config: LikelihoodConfig, coefficient: float = 1.0, batch: str | None = None):
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
        run = jax_fft.one_at_a_time  # on a CPU: one execution at a time per process (XLA's FFTs side by side hang)
        self._log_evidence = run(jax.jit(f), one_blas_thread=True)
        topology_axis = 0 if config.mesh in TOPOLOGY_MESHES else None
        self.batch = resolve_batch(batch, config.fft)
        f_vmapped = bound(log_evidence, replace(config, batch_axis="lens"))
        self._batch = run(_batched(f, f_vmapped, self.batch, None, topology_axis), one_blas_thread=True)
        # the same with one regularization coefficient per lens (a free coefficient in a search)
        self._batch_coefficients = run(_batched(f, f_vmapped, self.batch, 0, topology_axis), one_blas_thread=True)
        self._value_and_grad = run(jax.jit(jax.value_and_grad(f)), one_blas_thread=True)
        self._grad = run(jax.jit(jax.grad(f)), one_blas_thread=True)
        self._inversion = run(jax.jit(bound(inversion, config)))

    @classmethod
    def from_fitter(cls, fitter, grid_arcsec, *, mesh="rectangular", mesh_shape=(32, 32), n_pixels=400,
                    regularization="constant", coefficient=1.0, batch_size=None, buffer=1e-3,
                    fft=None, batch=None, fft_threads=None) -> "JaxLikelihood":
        """From a :class:`WTildeFitter` with the lattice (fft) path and the (M, 2) image grid in arcsec.
        ``fft``: "xla", "ducc0" or "auto" (default: the ``wtilde.likelihood-fft`` setting, :mod:`jax_fft`);
        ``batch_size``: source columns per FFT batch (default 8: the fastest at the ALMA preset on 2 CPU cores,
        both ways); ``batch``: how :meth:`log_evidence_batch` runs its lenses, "vmap" or "map"
        (:func:`resolve_batch`); ``fft_threads``: threads of the host F (default: the ``wtilde.fft-threads``
        setting; 0 = every core)."""
        from wtilde_dask import config as wtilde_config

        fft = jax_fft.resolve_fft(fft)
        if batch_size is None:
            batch_size = 8
        arrays, shape_box, fft_shape, has_hankel = lattice_arrays_from_fitter(fitter, grid_arcsec)
        config = LikelihoodConfig(mesh=mesh, mesh_shape=tuple(int(n) for n in mesh_shape), n_pixels=int(n_pixels),
                                  buffer=float(buffer), regularization=regularization, shape_box=shape_box,
                                  fft_shape=fft_shape, has_hankel=has_hankel, batch_size=int(batch_size),
                                  real_kernel=not has_hankel and kernel_spectrum_is_real(arrays.K_hat),
                                  fft=fft, fft_threads=int(wtilde_config.get("fft-threads") if fft_threads is None
                                                           else fft_threads))
        return cls(arrays, config, coefficient, batch)

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


_inversion_from_mapping_jit = jax_fft.one_at_a_time(jax.jit(inversion_from_mapping, static_argnames=("config",)))


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
