"""What a fitter reads from a W-tilde store: the dirty image, the visibility sums and the lattice curvature.

Shared by the NumPy fitter (:class:`~wtilde_dask.inversion.fitter.WTildeFitter`) and the JAX likelihood
(:meth:`~wtilde_dask.inversion.jax_likelihood.JaxLikelihood.from_store`), which need the same inputs and nothing
of each other. Each falls back to computing from the store's inputs when an older store does not hold the array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.errors import FitterError
from wtilde_dask.inversion import curvature as cv
from wtilde_dask.inversion.solve import VisibilitySums, visibility_sums

__all__ = ["store_dirty_image", "store_visibility_sums", "store_lattice_curvature", "LatticeInputs", "lattice_inputs"]


def store_dirty_image(store) -> np.ndarray:
    """(M,) dirty image: the store's ``dirty_image`` array, else computed from its inputs."""
    if store.has_array("dirty_image"):
        return store.read_array("dirty_image").astype(np.float64)
    from wtilde_dask.kernels.dirty import dirty_image

    ds, grid = store.dataset(), store.grid()
    return np.asarray(dirty_image(grid.grid_radians, ds.uv_wavelengths, ds.visibilities, ds.weights_real, ds.weights_imag))


def store_visibility_sums(store) -> VisibilitySums:
    """chi2_data, noise normalisation and K of the store's visibilities: the sums its visibility pass stored
    (attrs ``visibility_sums``), else (stores made before the pass existed) computed from its inputs."""
    sums = store.visibility_sums()
    if sums is not None:
        return VisibilitySums(float(sums["chi_squared_data"]), float(sums["noise_normalization"]),
                              int(sums["n_visibilities"]))
    ds = store.dataset()
    return visibility_sums(ds.visibilities, ds.noise_map)


def store_lattice_curvature(store, **kwargs) -> cv.LatticeCurvature:
    """:class:`LatticeCurvature` from a lattice store's ``kernel`` (and ``kernel_hankel``) arrays;
    computes the kernels from the store's inputs when they are not stored."""
    from wtilde_dask.kernels.lattice import lattice_box, lattice_kernels

    grid = store.grid()
    if not grid.is_lattice:
        raise FitterError(f"store {store.path}: path 'fft' needs a lattice grid (this store's grid is a point set)")
    if store.has_array("kernel"):
        kernel = store.read_array("kernel")
        hankel = store.read_array("kernel_hankel") if store.has_array("kernel_hankel") else None
        box = lattice_box(grid).box_indices
    else:
        ds = store.dataset()
        kernel, hankel, box = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
    return cv.LatticeCurvature(kernel, box, hankel, **kwargs)


class LatticeInputs(NamedTuple):
    """The inputs of a lattice (``path="fft"``) likelihood: the curvature operator, the (M,) dirty image and the
    visibility sums (the attributes :func:`~wtilde_dask.inversion.jax_likelihood.lattice_arrays_from_fitter`
    reads from a fitter)."""

    curvature_path: cv.LatticeCurvature
    dirty_image: np.ndarray
    sums: VisibilitySums
    path: str = "fft"


def lattice_inputs(store, **kwargs) -> LatticeInputs:
    """:class:`LatticeInputs` of a lattice store (kwargs go to :class:`~wtilde_dask.inversion.curvature.LatticeCurvature`)."""
    return LatticeInputs(store_lattice_curvature(store, **kwargs), store_dirty_image(store),
                         store_visibility_sums(store))
