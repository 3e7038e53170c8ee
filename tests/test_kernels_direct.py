"""Direct block kernel and dirty image against the slow NumPy formulas in kernels.reference."""

from __future__ import annotations

import numpy as np
import pytest

from wtilde_dask.grid import ARCSEC_TO_RADIANS, ImageGrid
from wtilde_dask.kernels import reference
from wtilde_dask.kernels.direct import (
    features,
    sincos_turns,
    w_tilde_block,
    w_tilde_block_padded,
    w_tilde_block_symmetric_padded,
)
from wtilde_dask.kernels.dirty import dirty_image

TOL = 1e-12


def assert_close(got, want, scale=None):
    scale = np.abs(want).max() if scale is None else scale
    err = np.abs(got - want).max()
    assert got.shape == want.shape
    assert err <= TOL * scale, f"max|diff| = {err:.3e} > {TOL} * {scale:.3e}"


def random_problem(rng, m, k, extent_arcsec=2.0, uv_max=3e5):
    """Irregular points within +-extent arcsec, uv up to uv_max wavelengths, unequal real/imag noise."""
    grid = rng.uniform(-extent_arcsec, extent_arcsec, size=(m, 2)) * ARCSEC_TO_RADIANS
    uv = rng.uniform(-uv_max, uv_max, size=(k, 2))
    wr = 1.0 / rng.uniform(0.5, 2.0, size=k) ** 2
    wi = 1.0 / rng.uniform(0.5, 2.0, size=k) ** 2
    vis = rng.normal(size=k) + 1j * rng.normal(size=k)
    return grid, uv, wr, wi, vis


@pytest.fixture(params=["blas", "jax"])
def engine(request):
    return request.param


def assemble(grid, uv, wr, wi, block, chunk, engine=None):
    """Full W from a block plan (upper blocks computed, lower mirrored), all blocks padded to `block`."""
    m = grid.shape[0]
    out = np.zeros((m, m))
    starts = range(0, m, block)
    for i0 in starts:
        for j0 in starts:
            if j0 < i0:
                continue
            rows, cols = grid[i0 : i0 + block], grid[j0 : j0 + block]
            w = w_tilde_block(rows, cols, uv, wr, wi, block_size=block, visibility_chunk=chunk, symmetric=i0 == j0, engine=engine)
            out[i0 : i0 + block, j0 : j0 + block] = w
            out[j0 : j0 + block, i0 : i0 + block] = w.T
    return out


@pytest.mark.parametrize("extent, uv_max", [(2.0, 3e5), (20.0, 1e6)])
def test_random_points_unequal_noise(rng, extent, uv_max, engine):
    grid, uv, wr, wi, _ = random_problem(rng, 157, 333, extent, uv_max)
    want = reference.w_tilde_reference(grid, uv, wr, wi)
    # whole matrix in one off-diagonal-style call and in one symmetric call
    assert_close(w_tilde_block(grid, grid, uv, wr, wi, visibility_chunk=100, engine=engine), want)
    assert_close(w_tilde_block(grid, grid, uv, wr, wi, symmetric=True, engine=engine), want)
    # a rectangular block with padding and a chunk that does not divide K
    rows, cols = np.arange(10, 60), np.arange(40, 157)
    got = w_tilde_block(grid[rows], grid[cols], uv, wr, wi, block_size=128, visibility_chunk=64, engine=engine)
    assert_close(got, want[np.ix_(rows, cols)], np.abs(want).max())


def test_sma_circular_mask_block_plan(sma_dataset, engine):
    ds = sma_dataset
    grid = ImageGrid.circular((80, 80), 0.05, 1.0).grid_radians  # 1264 pixels
    want = reference.w_tilde_reference(grid, ds.uv_wavelengths, ds.weights_real, ds.weights_imag)
    got = assemble(grid, ds.uv_wavelengths, ds.weights_real, ds.weights_imag, block=300, chunk=64, engine=engine)  # 300 does not divide 1264
    assert_close(got, want)
    assert np.all(np.diag(got) > 0)


def test_symmetric_block_is_exactly_symmetric(rng, engine):
    grid, uv, wr, wi, _ = random_problem(rng, 70, 90)
    w = w_tilde_block(grid, grid, uv, wr, wi, block_size=96, symmetric=True, engine=engine)
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w_tilde_block(grid, None, uv, wr, wi, block_size=96, symmetric=True, engine=engine), w)


def test_equal_weights_match_cos_difference_form(rng, sma_dataset):
    grid, uv, wr, _, _ = random_problem(rng, 80, 200)
    want = reference.w_tilde_equal_weights_reference(grid, uv, wr)
    assert_close(w_tilde_block(grid, grid, uv, wr, wr, symmetric=True), want)
    assert_close(reference.w_tilde_reference(grid, uv, wr, wr), want)
    ds = sma_dataset
    assert np.array_equal(ds.weights_real, ds.weights_imag)
    g = ImageGrid.circular((40, 40), 0.05, 0.6).grid_radians
    want = reference.w_tilde_equal_weights_reference(g, ds.uv_wavelengths, ds.weights_real)
    assert_close(w_tilde_block(g, g, ds.uv_wavelengths, ds.weights_real, ds.weights_imag, symmetric=True), want)


def test_single_visibility_and_single_pixel(rng, engine):
    grid, uv, wr, wi, vis = random_problem(rng, 9, 1)
    want = reference.w_tilde_reference(grid, uv, wr, wi)
    assert_close(w_tilde_block(grid, grid, uv, wr, wi, block_size=16, engine=engine), want)
    assert_close(w_tilde_block(grid, grid, uv, wr, wi, symmetric=True, engine=engine), want)
    one, uv, wr, wi, vis = random_problem(rng, 1, 50)
    want = reference.w_tilde_reference(one, uv, wr, wi)
    got = w_tilde_block(one, one, uv, wr, wi, symmetric=True, engine=engine)
    assert got.shape == (1, 1)
    assert_close(got, want)
    np.testing.assert_allclose(got[0, 0], np.sum(wr * np.cos(reference.phases_reference(one, uv)[0]) ** 2 + wi * np.sin(reference.phases_reference(one, uv)[0]) ** 2), rtol=1e-13)
    assert_close(w_tilde_block(one, one, uv, wr, wi, block_size=8, engine=engine), want)
    assert_close(dirty_image(one, uv, vis, wr, wi), reference.dirty_image_reference(one, uv, vis, wr, wi))


def test_one_compilation_per_block_shape(rng):
    grid, uv, wr, wi, _ = random_problem(rng, 100, 64)
    kw = dict(block_size=32, visibility_chunk=32)
    for engine in ("jax", "blas"):
        w_tilde_block(grid[:32], grid[32:64], uv, wr, wi, engine=engine, **kw)
        w_tilde_block(grid[:32], grid[:32], uv, wr, wi, symmetric=True, engine=engine, **kw)
    jitted = (w_tilde_block_padded, w_tilde_block_symmetric_padded, features)
    sizes = [f._cache_size() for f in jitted]
    for engine in ("jax", "blas"):
        for j0 in (32, 64, 96):  # the ragged last block (4 pixels) is padded to 32
            w_tilde_block(grid[:32], grid[j0 : j0 + 32], uv, wr, wi, engine=engine, **kw)
            w_tilde_block(grid[j0 : j0 + 32], grid[j0 : j0 + 32], uv, wr, wi, symmetric=True, engine=engine, **kw)
    assert [f._cache_size() for f in jitted] == sizes


def test_dirty_image_random_and_sma(rng, sma_dataset):
    grid, uv, wr, wi, vis = random_problem(rng, 203, 301, 20.0, 1e6)
    want = reference.dirty_image_reference(grid, uv, vis, wr, wi)
    assert_close(dirty_image(grid, uv, vis, wr, wi, visibility_chunk=64, pixel_chunk=50), want)
    ds = sma_dataset
    g = ImageGrid.circular((80, 80), 0.05, 1.0).grid_radians
    want = reference.dirty_image_reference(g, ds.uv_wavelengths, ds.visibilities, ds.weights_real, ds.weights_imag)
    got = dirty_image(g, ds.uv_wavelengths, ds.visibilities, ds.weights_real, ds.weights_imag, pixel_chunk=500)
    assert_close(got, want)


def test_dirty_image_sign_convention():
    """A point source of flux 1 at pixel p has V_k = exp(-1j phi_pk): the dirty image there is sum_k w."""
    rng = np.random.default_rng(3)
    grid, uv, wr, _, _ = random_problem(rng, 30, 400)
    vis = np.exp(-1j * reference.phases_reference(grid[7:8], uv)[0])
    d = dirty_image(grid, uv, vis, wr, wr)
    np.testing.assert_allclose(d[7], wr.sum(), rtol=1e-12)
    # and equals W[:, p] (the model-image column), the identity the inversion relies on
    assert_close(d, w_tilde_block(grid, grid[7:8], uv, wr, wr)[:, 0])


def test_kernel_input_errors(rng):
    grid, uv, wr, wi, vis = random_problem(rng, 5, 7)
    with pytest.raises(ValueError, match=r"weights_imag has shape \(6,\), expected \(7,\)"):
        w_tilde_block(grid, grid, uv, wr, wi[:6])
    bad = wr.copy()
    bad[4] = -2.0
    with pytest.raises(ValueError, match=r"weights_real\[4\] = -2\.0 must be >= 0"):
        w_tilde_block(grid, grid, uv, bad, wi)
    with pytest.raises(ValueError, match=r"grid_cols has shape \(5, 3\)"):
        w_tilde_block(grid, np.zeros((5, 3)), uv, wr, wi)
    with pytest.raises(ValueError, match=r"block_size = 4 is smaller than the 5 pixels"):
        w_tilde_block(grid, grid, uv, wr, wi, block_size=4)
    with pytest.raises(ValueError, match=r"symmetric=True needs grid_cols equal to grid_rows"):
        w_tilde_block(grid, grid[::-1], uv, wr, wi, symmetric=True)
    with pytest.raises(ValueError, match=r"engine = 'numpy' must be 'blas' or 'jax'"):
        w_tilde_block(grid, grid, uv, wr, wi, engine="numpy")
    with pytest.raises(ValueError, match=r"visibilities has shape \(6,\), expected \(7,\)"):
        dirty_image(grid, uv, vis[:6], wr, wi)
    with pytest.raises(ValueError, match=r"uv_wavelengths has shape \(7, 3\)"):
        dirty_image(grid, np.zeros((7, 3)), vis, wr, wi)


def test_sincos_turns_accuracy():
    """The polynomial cos/sin after exact reduction in turns: within a few ulp of NumPy near 0, and of
    float-exact cos(2 pi t) for large t (NumPy's cos(2*pi*t) itself carries the rounding of 2*pi*t)."""
    import jax.numpy as jnp

    for extent, tol in ((0.5, 1e-15), (2.0, 4e-15)):  # NumPy's 2*pi*t is rounded: ulp(4 pi) = 1.8e-15
        t = np.concatenate([np.linspace(-extent, extent, 40001), [0.125, 0.25, 0.375, 0.5, -0.25, 1e-300, 0.0]])
        c, s = (np.asarray(a) for a in sincos_turns(jnp.asarray(t)))
        assert np.abs(c - np.cos(2 * np.pi * t)).max() < tol
        assert np.abs(s - np.sin(2 * np.pi * t)).max() < tol
    # large t that are exact multiples of 1/8 turn: exact answers known
    k = np.arange(-4000, 4000)
    big = 1.0e5 + k / 8.0
    c, s = (np.asarray(a) for a in sincos_turns(jnp.asarray(big)))
    r = np.sqrt(0.5)
    exact_cos = np.array([1.0, r, 0.0, -r, -1.0, -r, 0.0, r])
    np.testing.assert_allclose(c, exact_cos[k % 8], rtol=0, atol=2e-16)
    np.testing.assert_allclose(s, exact_cos[(k - 2) % 8], rtol=0, atol=2e-16)
