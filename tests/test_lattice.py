"""Lattice fast path: NUFFT kernels + gather equal the direct kernel and the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels import direct, reference
from wtilde_dask.kernels import lattice as L

RTOL = 1e-11


def _random_uv(rng, k, max_uv=3e5):
    return rng.uniform(-max_uv, max_uv, size=(k, 2))


def _weights(rng, k, equal):
    wr = rng.uniform(0.5, 2.0, k)
    wi = wr.copy() if equal else wr * rng.uniform(0.25, 4.0, k)
    return wr, wi


def _max_rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


GRIDS = {
    "circular": lambda: ImageGrid.circular((24, 24), (0.1, 0.1), 1.0),
    "annular": lambda: ImageGrid.annular((30, 30), (0.08, 0.08), 0.4, 1.1),
    "off_centre": lambda: ImageGrid.circular((40, 36), (0.1, 0.1), 0.7, centre=(1.1, -0.9)),
    "non_square_box": lambda: ImageGrid.circular((21, 50), (0.15, 0.05), 0.9, centre=(0.2, 0.3)),
    "random_mask": lambda: ImageGrid.from_mask(np.random.default_rng(5).uniform(size=(13, 17)) < 0.6, (0.1, 0.07)),
    "single_row": lambda: ImageGrid.from_mask(np.arange(60).reshape(6, 10) // 10 != 2, (0.1, 0.1)),
}


@pytest.mark.parametrize("equal", [True, False], ids=["equal_noise", "unequal_noise"])
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_lattice_equals_direct_and_reference_random_masks(name, equal, rng):
    grid = GRIDS[name]()
    uv = _random_uv(rng, 300)
    wr, wi = _weights(rng, 300, equal)
    lk = L.lattice_kernels(uv, wr, wi, grid)
    assert (lk.kernel_hankel is None) == equal
    w_lat = L.w_tilde_lattice(lk)
    g = grid.grid_radians
    w_ref = reference.w_tilde_reference(g, uv, wr, wi)
    w_dir = direct.w_tilde_block(g, g, uv, wr, wi)
    assert _max_rel(w_lat, w_ref) < RTOL
    assert _max_rel(w_lat, w_dir) < RTOL
    if equal:
        assert _max_rel(w_lat, reference.w_tilde_equal_weights_reference(g, uv, wr)) < RTOL


@pytest.mark.parametrize("equal", [True, False], ids=["equal_noise", "unequal_noise"])
def test_lattice_blocks_sma(sma_dataset, equal, rng):
    ds = sma_dataset
    uv = ds.uv_wavelengths
    wr = ds.weights_real
    wi = wr if equal else ds.weights_imag * rng.uniform(0.3, 3.0, ds.n_visibilities)
    grid = ImageGrid.circular((36, 36), (0.1, 0.1), 1.5, centre=(0.1, -0.2))
    lk = L.lattice_kernels(uv, wr, wi, grid)
    g, idx, m = grid.grid_radians, lk.box_indices, grid.n_pixels
    assert m > 600
    blocks = [(np.arange(0, 100), np.arange(0, 100)), (np.arange(0, 100), np.arange(m - 200, m)),
              (np.arange(m - 250, m), np.arange(40, 170))]
    for rows, cols in blocks:
        w_lat = L.w_tilde_block_lattice(lk.kernel, lk.kernel_hankel, idx[rows], idx[cols], block_size=256)
        assert w_lat.shape == (rows.size, cols.size)
        w_ref = reference.w_tilde_reference(g, uv, wr, wi, rows=rows, cols=cols)
        w_dir = direct.w_tilde_block(g[rows], g[cols], uv, wr, wi, block_size=256)
        assert _max_rel(w_lat, w_ref) < RTOL
        assert _max_rel(w_lat, w_dir) < RTOL


@pytest.mark.parametrize("backend", L.BACKENDS)
def test_offset_kernel_definition(backend, rng):
    uv = _random_uv(rng, 200, 2e6)  # large |u sx| exercises the wrapping into [-pi, pi)
    w = rng.uniform(0.1, 1.0, 200)
    ny, nx, sy, sx = 5, 7, 3e-7, 2e-7
    k = L.lattice_offset_kernel(uv, w, (ny, nx), (sy, sx), backend=backend, eps=1e-13)
    assert k.shape == (2 * ny - 1, 2 * nx - 1)
    for dr in range(-(ny - 1), ny):
        for dc in range(-(nx - 1), nx):
            exact = np.sum(w * np.cos(2 * np.pi * (dc * sx * uv[:, 0] - dr * sy * uv[:, 1])))
            assert abs(k[dr + ny - 1, dc + nx - 1] - exact) < 1e-12 * w.sum()
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-13 * w.sum())  # even: k(dr, dc) = k(-dr, -dc)


def test_hankel_kernel_definition(rng):
    uv = _random_uv(rng, 150)
    wd = rng.normal(size=150)
    ny, nx, sy, sx = 4, 6, 4e-7, 5e-7
    y0, x0 = 3.3e-6, -2.1e-6
    h = L.lattice_hankel_kernel(uv, wd, (ny, nx), (sy, sx), (y0, x0))
    for r_i, c_i, r_j, c_j in [(0, 0, 0, 0), (3, 5, 3, 5), (1, 2, 3, 0), (2, 5, 0, 1)]:
        phi_i = 2 * np.pi * ((x0 + c_i * sx) * uv[:, 0] + (y0 - r_i * sy) * uv[:, 1])
        phi_j = 2 * np.pi * ((x0 + c_j * sx) * uv[:, 0] + (y0 - r_j * sy) * uv[:, 1])
        exact = np.sum(wd * np.cos(phi_i + phi_j))
        assert abs(h[r_i + r_j, c_i + c_j] - exact) < 1e-12 * np.abs(wd).sum()


def test_backends_agree(rng):
    grid = GRIDS["non_square_box"]()
    uv = _random_uv(rng, 500)
    wr, wi = _weights(rng, 500, equal=False)
    a = L.lattice_kernels(uv, wr, wi, grid, backend="ducc0")
    b = L.lattice_kernels(uv, wr, wi, grid, backend="finufft", nthreads=1)
    scale = 0.5 * (wr + wi).sum()
    assert np.abs(a.kernel - b.kernel).max() < 1e-12 * scale
    assert np.abs(a.kernel_hankel - b.kernel_hankel).max() < 1e-12 * scale
    np.testing.assert_array_equal(a.box_indices, b.box_indices)


def test_lattice_box(rng):
    grid = ImageGrid.circular((40, 36), (0.1, 0.12), 0.7, centre=(1.1, -0.9))
    box = L.lattice_box(grid)
    r0, r1, c0, c1 = grid.bounding_box
    assert box.shape_box == (r1 - r0, c1 - c0)
    assert box.box_indices.min(axis=0).tolist() == [0, 0]
    sy, sx = box.pixel_scales_radians
    y = box.origin_radians[0] - box.box_indices[:, 0] * sy
    x = box.origin_radians[1] + box.box_indices[:, 1] * sx
    np.testing.assert_allclose(np.stack([y, x], 1), grid.grid_radians, rtol=0, atol=1e-9 * sy)


def test_block_padding_and_symmetry(rng):
    grid = GRIDS["annular"]()
    uv = _random_uv(rng, 100)
    wr, wi = _weights(rng, 100, equal=False)
    lk = L.lattice_kernels(uv, wr, wi, grid)
    full = L.w_tilde_lattice(lk)
    np.testing.assert_allclose(full, full.T, rtol=0, atol=1e-13 * np.abs(full).max())
    idx = lk.box_indices
    part = L.w_tilde_block_lattice(lk.kernel, lk.kernel_hankel, idx[5:17], idx[100:103], block_size=32)
    np.testing.assert_array_equal(part, full[5:17, 100:103])


def test_pyautoarray_layout_roundtrip(rng):
    k = rng.normal(size=(7, 9))
    p = L.to_pyautoarray(k)
    assert p.shape == (8, 10)
    assert not p[4].any() and not p[:, 5].any()
    assert p[0, 0] == k[3, 4] and p[1, 2] == k[4, 6] and p[-1, -2] == k[2, 2] and p[-3, 4] == k[0, 8]
    np.testing.assert_array_equal(L.from_pyautoarray(p), k)
    with pytest.warns(UserWarning, match="Hankel"):
        L.to_pyautoarray(k, kernel_hankel=np.ones_like(k))


def test_errors(rng):
    uv = _random_uv(rng, 10)
    with pytest.raises(L.LatticeError, match="weights"):
        L.lattice_offset_kernel(uv, np.ones(9), (3, 3), (1e-7, 1e-7))
    with pytest.raises(L.LatticeError, match="uv_wavelengths"):
        L.lattice_offset_kernel(uv[:, :1], np.ones(10), (3, 3), (1e-7, 1e-7))
    with pytest.raises(L.LatticeError, match="shape_box"):
        L.lattice_offset_kernel(uv, np.ones(10), (0, 3), (1e-7, 1e-7))
    with pytest.raises(L.LatticeError, match="pixel_scales_radians"):
        L.lattice_offset_kernel(uv, np.ones(10), (3, 3), (-1e-7, 1e-7))
    with pytest.raises(L.LatticeError, match="backend"):
        L.lattice_offset_kernel(uv, np.ones(10), (3, 3), (1e-7, 1e-7), backend="nope")
    with pytest.raises(L.LatticeError, match="not a masked lattice"):
        L.lattice_kernels(uv, np.ones(10), np.ones(10), ImageGrid.from_points(rng.normal(size=(5, 2)) * 1e-6))
    k = np.zeros((5, 5))
    with pytest.raises(L.LatticeError, match="outside the box"):
        L.w_tilde_block_lattice(k, None, np.array([[3, 0]]), np.array([[0, 0]]))
    with pytest.raises(L.LatticeError, match="odd sizes"):
        L.w_tilde_block_lattice(np.zeros((4, 5)), None, np.array([[0, 0]]), np.array([[0, 0]]))
    with pytest.raises(L.LatticeError, match="block_size"):
        L.w_tilde_block_lattice(k, None, np.zeros((3, 2), int), np.zeros((3, 2), int), block_size=2)
    with pytest.raises(L.LatticeError, match="even sizes"):
        L.from_pyautoarray(np.zeros((5, 6)))


@pytest.mark.parametrize("backend", L.BACKENDS)
@pytest.mark.parametrize("name", ["circular", "off_centre", "non_square_box", "random_mask"])
def test_lattice_dirty_image_equals_reference(name, backend, rng):
    grid = GRIDS[name]()
    k = 400
    uv = _random_uv(rng, k, 1e6)
    vis = rng.normal(size=k) + 1j * rng.normal(size=k)
    wr, wi = _weights(rng, k, equal=False)
    d = L.lattice_dirty_image(uv, vis, wr, wi, grid, backend=backend)
    ref = reference.dirty_image_reference(grid.grid_radians, uv, vis, wr, wi)
    assert d.shape == (grid.n_pixels,)
    assert _max_rel(d, ref) < RTOL


@pytest.mark.parametrize("equal", [True, False], ids=["equal_noise", "unequal_noise"])
@pytest.mark.parametrize("name", ["circular", "off_centre", "non_square_box", "random_mask", "single_row"])
def test_lattice_visibility_sums_equal_the_separate_transforms(name, equal, rng):
    """One batched NUFFT (the visibility pass's) gives the separate functions' kernel bit for bit, and the
    dirty image and Hankel kernel to rounding; each part can be left out."""
    grid = GRIDS[name]()
    k = 500
    uv = _random_uv(rng, k, 1e6)
    vis = rng.normal(size=k) + 1j * rng.normal(size=k)
    wr, wi = _weights(rng, k, equal)
    s = L.lattice_visibility_sums(uv, vis, wr, wr if equal else wi, grid)
    lk = L.lattice_kernels(uv, wr, wi, grid, nthreads=1)
    np.testing.assert_array_equal(s.kernel, lk.kernel)
    assert (s.kernel_hankel is None) == equal == (lk.kernel_hankel is None)
    if not equal:
        assert _max_rel(s.kernel_hankel, lk.kernel_hankel) < 1e-13
    ref = reference.dirty_image_reference(grid.grid_radians, uv, vis, wr, wi)
    assert s.dirty_image.shape == (grid.n_pixels,) and _max_rel(s.dirty_image, ref) < RTOL
    assert _max_rel(s.dirty_image, L.lattice_dirty_image(uv, vis, wr, wi, grid, nthreads=1)) < 1e-12
    only_dirty = L.lattice_visibility_sums(uv, vis, wr, wi, grid, kernels=False)
    assert only_dirty.kernel is None and only_dirty.kernel_hankel is None
    np.testing.assert_array_equal(only_dirty.dirty_image, s.dirty_image)
    only_kernels = L.lattice_visibility_sums(uv, None, wr, wi, grid, dirty_image=False)
    assert only_kernels.dirty_image is None
    np.testing.assert_array_equal(only_kernels.kernel, s.kernel)


def test_lattice_visibility_sums_name_bad_values(rng):
    grid = GRIDS["circular"]()
    uv = _random_uv(rng, 10)
    w = np.ones(10)
    bad = w.copy()
    bad[3] = np.inf
    with pytest.raises(L.LatticeError, match=r"weights_real\[3\]"):
        L.lattice_visibility_sums(uv, np.ones(10, complex), bad, w, grid)
    with pytest.raises(L.LatticeError, match="expected \\(10,\\)"):
        L.lattice_visibility_sums(uv, np.ones(9, complex), w, w, grid)
