"""The density-adapted rectangular mesh ``rectangular_adapt_density``: its node indices and bilinear weights
equal PyAutoArray's ``RectangularRTUAdaptDensity`` mapping and its node positions PyAutoArray's inverse CDF on
the same traced points; the JAX likelihood equals the NumPy fitter and the brute force from the visibilities;
vmap equals single calls; jax.grad equals central differences. Real lattice stores on a real LocalCluster;
small sizes (M = 448, S = 100, K = 2000)."""

from __future__ import annotations

import numpy as np
import pytest

from datasets import (assert_fit_equals_numpy_and_brute_force, assert_grad_equals_central_differences,
                      assert_vmap_equals_single_calls, cached_likelihood, lattice_stores)

from wtilde_dask.grid import ImageGrid
from wtilde_dask.inversion import LensModel, regularization_from_mesh
from wtilde_dask.inversion import jax_likelihood as jl
from wtilde_dask.inversion.adaptive_mesh import RectangularAdaptDensityMesh, adapt_density_mapping
from wtilde_dask.inversion.mesh import MeshError

RTOL = 1e-8
LENS = LensModel(einstein_radius=0.8, axis_ratio=0.75, position_angle=35.0, centre=(0.05, -0.03), shear=(0.03, -0.02))
GRID = ImageGrid.circular((26, 26), (0.1, 0.1), 1.2)
MESH_SHAPE = (10, 10)
COEFFICIENT = 0.5


@pytest.mark.parametrize("n", [5, 12])
def test_mapping_equals_pyautoarray(n):
    from autoarray.inversion.mesh.interpolator.rectangular import (
        adaptive_rectangular_mappings_weights_via_interpolation_from)

    source_grid = LENS.ray_trace(GRID.grid_arcsec)
    cols, wts = adapt_density_mapping(source_grid, source_grid, (n, n))
    peer_cols, peer_wts = adaptive_rectangular_mappings_weights_via_interpolation_from(
        n, source_grid, source_grid, transform="kernel")
    assert np.array_equal(cols, peer_cols)
    assert np.max(np.abs(wts - peer_wts)) <= 1e-12
    T = RectangularAdaptDensityMesh.from_source_grid(source_grid, (n, n)).mapping_matrix(source_grid)
    assert np.max(np.abs(np.asarray(T.sum(axis=1)).ravel() - 1)) <= 1e-12


def test_node_positions_equal_pyautoarray():
    from autoarray.inversion.mesh.interpolator.rectangular import adaptive_rectangular_transformed_grid_from

    source_grid = LENS.ray_trace(GRID.grid_arcsec)
    ny, nx = MESH_SHAPE
    mesh = RectangularAdaptDensityMesh.from_source_grid(source_grid, MESH_SHAPE)
    # node (r, c) sits at U_y = (ny - r - 1) / (ny - 3), U_x = (c - 1) / (nx - 3) in the peer's CDF space
    u = np.stack([(ny - np.arange(ny) - 1) / (ny - 3), (np.arange(nx) - 1) / (nx - 3)], axis=1)
    peer = adaptive_rectangular_transformed_grid_from(source_grid, u, mesh_pixels=ny, transform="kernel")
    centres = mesh.centres.reshape(ny, nx, 2)
    assert np.max(np.abs(centres[:, 0, 0] - peer[:, 0])) <= 1e-12
    assert np.max(np.abs(centres[0, :, 1] - peer[:, 1])) <= 1e-12
    # nodes crowd where the traced points are dense: the middle spacing is below the uniform one
    spacing = np.diff(centres[0, 1:-1, 1])
    assert spacing.min() < (peer[-2, 1] - peer[1, 1]) / (nx - 3)


def test_bad_shape_names_the_field():
    source_grid = LENS.ray_trace(GRID.grid_arcsec)
    with pytest.raises(MeshError, match=r"mesh shape: need at least \(3, 3\) nodes, got \(2, 5\)"):
        RectangularAdaptDensityMesh(source_grid, (2, 5))


# ---------------------------------------------------------------------------------------------- the likelihood
@pytest.fixture(scope="module")
def stores(tmp_path_factory, client):
    """{"equal": lattice store, equal real/imag noise (no Hankel part); "unequal": with the Hankel part}."""
    return lattice_stores(tmp_path_factory.mktemp("adaptive"), GRID, client, "adaptive")


def likelihood(stores, data) -> jl.JaxLikelihood:
    return cached_likelihood(stores[data], mesh="rectangular_adapt_density", mesh_shape=MESH_SHAPE,
                             coefficient=COEFFICIENT, batch_size=32)


@pytest.mark.parametrize("data", ["equal", "unequal"])
def test_jax_equals_numpy_fitter_and_brute_force(stores, data):
    store = stores[data]
    source_grid = LENS.ray_trace(store.grid().grid_arcsec)
    mesh = RectangularAdaptDensityMesh.from_source_grid(source_grid, MESH_SHAPE)
    T = mesh.mapping_matrix(source_grid)
    H = regularization_from_mesh(mesh, COEFFICIENT)
    assert_fit_equals_numpy_and_brute_force(store, likelihood(stores, data), jl.params_from_lens(LENS), T, H, RTOL)


def test_vmap_equals_single_calls(stores):
    lk = likelihood(stores, "unequal")
    assert_vmap_equals_single_calls(lk, jl.params_from_lens(LENS), 4)


def test_grad_equals_central_differences(stores):
    lk = likelihood(stores, "unequal")
    params = jl.params_from_lens(LENS)
    assert_grad_equals_central_differences(lk, params, value_rel=1e-11)
