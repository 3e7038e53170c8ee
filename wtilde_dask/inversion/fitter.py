"""The object a sampler calls many times: built once from a store (or lattice kernels), then
``log_evidence(mapping_matrix, regularization_matrix)`` per lens model.

    fitter = WTildeFitter.from_store("obs.zarr", path="fft")            # or "memory" / "out-of-core"
    for params in sampler:
        T = mesh.mapping_matrix(LensModel(**params).ray_trace(grid_arcsec))
        logL = fitter.log_evidence(T, H)

Per evaluation only ``F = T^T W T`` (the chosen path), ``D = T^T d`` and one Cholesky of (S, S) are
computed; the visibilities enter through two numbers stored once (:class:`VisibilitySums`).
"""

from __future__ import annotations

import numpy as np

from wtilde_dask.inversion import curvature as cv
from wtilde_dask.inversion import curvature_kernels as ck
from wtilde_dask.inversion.mapping import as_mapping_matrix
from wtilde_dask.inversion.solve import InversionResult, VisibilitySums, solve_inversion
from wtilde_dask.errors import FitterError  # noqa: F401 (re-exported)
from wtilde_dask.inversion.store_inputs import (  # noqa: F401 (re-exported)
    store_dirty_image,
    store_lattice_curvature,
    store_visibility_sums,
)

PATHS = ("auto", "fft", "memory", "out-of-core", "dense")
BACKENDS = ("numpy", "jax")  # jax: F, D, solve and evidence by wtilde_dask.inversion.jax_likelihood (lattice stores)


def resolve_path(store, path: str = "auto", memory_limit_bytes: float = 4e9) -> str:
    """The curvature path "auto" means for ``store``: "fft" for lattice stores, else "memory" when the
    (M, M) float64 W is below ``memory_limit_bytes``, else "out-of-core"; other names are checked."""
    if path not in PATHS:
        raise FitterError(f"path: unknown {path!r}, expected one of {', '.join(PATHS)}")
    if path != "auto":
        return path
    if store.method == "lattice" and store.grid().is_lattice:
        return "fft"
    return "memory" if store.n_pixels**2 * 8 <= memory_limit_bytes else "out-of-core"


class WTildeFitter:
    """F, D, reconstruction and evidence for any mapping matrix, reusing a precomputed W-tilde.

    ``curvature``: a callable T -> F (one of :mod:`wtilde_dask.inversion.curvature`'s paths);
    ``dirty_image`` (M,); ``sums``: the dataset's :class:`VisibilitySums`.
    """

    def __init__(self, curvature, dirty_image, sums: VisibilitySums, *, path: str = "", store=None,
                 backend: str = "numpy"):
        if backend not in BACKENDS:
            raise FitterError(f"backend: unknown {backend!r}, expected one of {', '.join(BACKENDS)}")
        if backend == "jax" and not hasattr(curvature, "operator"):
            raise FitterError(f"backend 'jax': needs the lattice kernel (path 'fft', a lattice store), got path {path!r}")
        self.backend = backend
        self._jax = None  # (LatticeArrays, LikelihoodConfig), built on first use
        self.curvature_path = curvature
        self.dirty_image = np.asarray(dirty_image, dtype=np.float64)
        self.sums = sums
        self.path = path
        self.store = store
        if getattr(curvature, "n_pixels", self.n_pixels) != self.n_pixels:
            raise FitterError(f"dirty_image: {self.n_pixels} pixels, curvature path has {curvature.n_pixels}")

    @property
    def n_pixels(self) -> int:
        return int(self.dirty_image.shape[0])

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store, *, path: str = "auto", client=None, memory_limit_bytes: float = 4e9,
                   backend: str = "numpy", **kwargs):
        """Build from a W-tilde store (path or :class:`~wtilde_dask.store.WTildeStore`).

        ``path``: "fft" (lattice kernel by FFT), "memory" (W blocks persisted on the workers, or in this
        process without a client), "out-of-core" (every evaluation streams the stored blocks), "dense"
        (whole W in this process), "auto" (fft for lattice stores, else memory when W is below
        ``memory_limit_bytes``, else out-of-core). ``client``: a distributed.Client for the block paths.
        ``backend``: "numpy" or "jax" (lattice stores: :meth:`fit` runs in JAX; see :meth:`jax_likelihood`).
        """
        from wtilde_dask.store import WTildeStore

        st = store if isinstance(store, WTildeStore) else WTildeStore.open(store)
        path = resolve_path(st, path, memory_limit_bytes)
        if backend == "jax" and path != "fft":
            raise FitterError(f"store {st.path}: backend 'jax' needs path 'fft' (a lattice store), got path {path!r}")
        if path == "fft":
            curv = store_lattice_curvature(st, **kwargs)
        elif path == "memory":
            curv = cv.PersistedCurvature(st, client, **kwargs)
        elif path == "out-of-core":
            curv = cv.OutOfCoreCurvature(st, client, **kwargs)
        else:
            curv = cv.DenseCurvature(np.asarray(st.to_dask().compute()))
        return cls(curv, store_dirty_image(st), store_visibility_sums(st), path=path, store=st,
                   backend=backend)

    @classmethod
    def from_lattice_kernel(cls, kernel, box_indices, dirty_image, sums: VisibilitySums, kernel_hankel=None, **kwargs):
        """Build from lattice kernels (B's definitions: W = kernel[offset] + kernel_hankel[sum])."""
        return cls(cv.LatticeCurvature(kernel, box_indices, kernel_hankel, **kwargs), dirty_image, sums, path="fft")

    # ---- evaluation --------------------------------------------------------------------------------
    def curvature(self, mapping_matrix) -> np.ndarray:
        """(S, S) F = T^T W T."""
        return self.curvature_path(as_mapping_matrix(mapping_matrix, self.n_pixels))

    def data_vector(self, mapping_matrix) -> np.ndarray:
        """(S,) D = T^T d."""
        return ck.data_vector(as_mapping_matrix(mapping_matrix, self.n_pixels), self.dirty_image)

    def fit(self, mapping_matrix, regularization_matrix) -> InversionResult:
        """Reconstruction, chi2 and log evidence (docs/mathematics.md) for T (M, S) and H (S, S)."""
        T = as_mapping_matrix(mapping_matrix, self.n_pixels)
        if self.backend == "jax":
            from wtilde_dask.inversion import jax_likelihood as jl

            if self._jax is None:
                arrays, shape_box, fft_shape, hankel = jl.lattice_arrays_from_fitter(self, np.zeros((self.n_pixels, 2)))
                self._jax = (arrays, jl.LikelihoodConfig(shape_box=shape_box, fft_shape=fft_shape, has_hankel=hankel))
            return jl.fit_from_mapping(T, regularization_matrix, *self._jax)
        return solve_inversion(self.curvature_path(T), ck.data_vector(T, self.dirty_image), regularization_matrix, self.sums)

    def jax_likelihood(self, grid_arcsec=None, **kwargs):
        """The jitted JAX lens-model likelihood on this fitter's lattice kernel, dirty image and sums
        (:class:`~wtilde_dask.inversion.jax_likelihood.JaxLikelihood`; kwargs: mesh, mesh_shape, n_pixels,
        regularization, coefficient, batch_size). ``grid_arcsec`` (M, 2): default the store's grid."""
        from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

        if grid_arcsec is None:
            if self.store is None:
                raise FitterError("jax_likelihood: give grid_arcsec (M, 2) (this fitter has no store)")
            grid_arcsec = self.store.grid().grid_arcsec
        return JaxLikelihood.from_fitter(self, grid_arcsec, **kwargs)

    def log_evidence(self, mapping_matrix, regularization_matrix) -> float:
        """The Bayesian log evidence of the regularized source reconstruction (what a sampler maximises)."""
        return self.fit(mapping_matrix, regularization_matrix).log_evidence

    def residual_dirty_image(self, mapping_matrix, reconstruction) -> np.ndarray:
        """(M,) dirty image of the residual visibilities ``V - f s``: ``d - W (T s)``."""
        T = as_mapping_matrix(mapping_matrix, self.n_pixels)
        return self.dirty_image - self.curvature_path.apply(np.asarray(T @ np.asarray(reconstruction)).ravel())
