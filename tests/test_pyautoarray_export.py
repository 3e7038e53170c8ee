"""Our lattice kernel, exported to PyAutoArray's layout, equals its own ``nufft_precision_operator_from``."""

from __future__ import annotations

import numpy as np
import pytest

from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels import lattice as L

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def peer():
    import autoarray as aa
    from autoarray.inversion.inversion.interferometer import inversion_interferometer_util as util

    return aa, util


def peer_builders(util) -> dict:
    """PyAutoArray's preload builders by name. autoarray 2026.10.26.1 (Python >= 3.12): its default type-1
    NUFFT (finufft, ``method="nufft"``) and the brute-force NumPy and JAX builders; the older autoarray of
    Python 3.11 has only the brute force (NumPy, or JAX with ``use_jax=True``)."""
    import inspect

    if "method" in inspect.signature(util.nufft_precision_operator_from).parameters:
        return {name: {"method": name} for name in ("nufft", "numpy", "jax")}
    return {"numpy": {"use_jax": False}, "jax": {"use_jax": True}}


def _peer_operator(aa, util, grid, noise_real, uv, builder):
    options = peer_builders(util).get(builder)
    if options is None:
        pytest.skip(f"autoarray {aa.__version__} has no {builder!r} builder (the current release, on Python >= 3.12, has)")
    mask = aa.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    return util.nufft_precision_operator_from(
        noise_map_real=noise_real,
        uv_wavelengths=uv,
        shape_masked_pixels_2d=mask.shape_native_masked_pixels,
        grid_radians_2d=mask.derive_grid.all_false.in_radians.native.array,
        **options,
    )


CASES = {
    "sma_circular": lambda: ImageGrid.circular((30, 30), (0.1, 0.1), 1.2),
    "off_centre_non_square": lambda: ImageGrid.circular((30, 40), (0.12, 0.07), 0.6, centre=(0.5, -0.8)),
    "annular": lambda: ImageGrid.annular((24, 24), (0.1, 0.1), 0.3, 1.0),
}


@pytest.mark.parametrize("builder", ["nufft", "numpy", "jax"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_export_equals_peer(peer, sma_dataset, case, builder):
    aa, util = peer
    grid = CASES[case]()
    ds = sma_dataset
    w = ds.weights_real
    lk = L.lattice_kernels(ds.uv_wavelengths, w, w, grid)
    ours = L.to_pyautoarray(lk.kernel)
    if builder == "nufft" and grid.pixel_scales[0] != grid.pixel_scales[1]:
        # the peer's NUFFT builder needs square pixels; ours and its brute force do not
        with pytest.raises(ValueError, match="square pixels"):
            _peer_operator(aa, util, grid, ds.noise_map.real, ds.uv_wavelengths, builder)
        return
    theirs = _peer_operator(aa, util, grid, ds.noise_map.real, ds.uv_wavelengths, builder)
    assert ours.shape == theirs.shape == (2 * L.lattice_box(grid).shape_box[0], 2 * L.lattice_box(grid).shape_box[1])
    assert np.abs(ours - theirs).max() < 1e-12 * w.sum()
    np.testing.assert_allclose(L.from_pyautoarray(theirs), lk.kernel, rtol=0, atol=1e-12 * w.sum())


def test_peer_dense_matrix_from_our_export(peer, sma_dataset):
    """PyAutoArray's own dense W built from our exported operator equals our lattice W."""
    aa, util = peer
    grid = ImageGrid.circular((16, 16), (0.1, 0.1), 0.6, centre=(0.1, 0.05))
    ds = sma_dataset
    w = ds.weights_real
    lk = L.lattice_kernels(ds.uv_wavelengths, w, w, grid)
    dense_peer = util.nufft_weighted_noise_via_sparse_operator_from(
        L.to_pyautoarray(lk.kernel), np.asarray(lk.box_indices)
    )
    np.testing.assert_allclose(dense_peer, L.w_tilde_lattice(lk), rtol=0, atol=1e-13 * w.sum())


def test_peer_sparse_operator_applies_our_w(peer, sma_dataset, rng):
    """PyAutoArray's consumer of the export (Interferometer.apply_sparse_operator -> FFT apply_operator) applies
    exactly our lattice W-tilde to an image on the mask's bounding box."""
    aa, util = peer
    ds = sma_dataset
    grid = ImageGrid.circular((40, 40), (0.1, 0.1), 1.0, centre=(0.15, -0.2))
    mask = aa.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    dataset = aa.Interferometer(
        data=aa.Visibilities(ds.visibilities), noise_map=aa.VisibilitiesNoiseMap(ds.noise_map),
        uv_wavelengths=ds.uv_wavelengths, real_space_mask=mask, transformer_class=aa.TransformerDFT,
    )
    w = ds.weights_real
    lk = L.lattice_kernels(ds.uv_wavelengths, w, w, grid)
    operator = dataset.apply_sparse_operator(nufft_precision_operator=L.to_pyautoarray(lk.kernel)).sparse_operator
    ny, nx = L.lattice_box(grid).shape_box
    assert (operator.y_shape, operator.x_shape) == (ny, nx)
    x = rng.normal(size=grid.n_pixels)
    image = np.zeros((ny, nx))
    idx = lk.box_indices
    image[idx[:, 0], idx[:, 1]] = x
    applied = np.asarray(operator.apply_operator(image.reshape(-1, 1)))[:, 0].reshape(ny, nx)
    ours = L.w_tilde_lattice(lk) @ x
    # measured max |applied - ours| / max |ours| = 4e-16 .. 1.3e-15 (three draws): two FFT round trips of round-off
    np.testing.assert_allclose(applied[idx[:, 0], idx[:, 1]], ours, rtol=0, atol=1e-13 * np.abs(ours).max())
