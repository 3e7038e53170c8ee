"""Image grids: PyAutoArray conventions, masks from arrays/files, point sets, validation messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits

from wtilde_dask.grid import ARCSEC_TO_RADIANS, GridError, ImageGrid



def inside_circle(shape, pixel_scales, radius, centre, inclusive=False) -> np.ndarray:
    """(n, 2) lattice indices (r, c), row-major, of the pixels whose centre is within ``radius`` arcsec of
    ``centre`` (y, x): a double loop over the lattice, pixel centre y = ((ny-1)/2 - r) sy, x = (c - (nx-1)/2) sx.
    The boundary: ``< radius`` (``<=`` with ``inclusive``), up to 1e-12 arcsec of round-off."""
    ny, nx = shape
    sy, sx = pixel_scales
    out = []
    for r in range(ny):
        for c in range(nx):
            d = math.hypot(((ny - 1) / 2 - r) * sy - centre[0], (c - (nx - 1) / 2) * sx - centre[1])
            if d < radius - 1e-12 or (inclusive and d <= radius + 1e-12):
                out.append((r, c))
    return np.array(out, dtype=np.int64)

def test_pixel_centres_follow_pyautoarray_convention():
    g = ImageGrid.from_mask(np.zeros((3, 4), dtype=bool), pixel_scales=(0.5, 0.25))
    assert g.n_pixels == 12 and g.is_lattice and g.shape_native == (3, 4)
    # slim (row-major) order; y decreases with row, x increases with column
    np.testing.assert_array_equal(g.lattice_indices[:5], [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]])
    np.testing.assert_allclose(g.grid_arcsec[0], [0.5, -0.375])
    np.testing.assert_allclose(g.grid_arcsec[3], [0.5, 0.375])
    np.testing.assert_allclose(g.grid_arcsec[-1], [-0.5, 0.375])
    np.testing.assert_allclose(g.grid_radians, g.grid_arcsec * math.pi / 648000.0, rtol=1e-15)
    assert g.pixel_scales == (0.5, 0.25)
    np.testing.assert_allclose(g.pixel_scales_radians, (0.5 * ARCSEC_TO_RADIANS, 0.25 * ARCSEC_TO_RADIANS))
    assert g.bounding_box == (0, 3, 0, 4)


def test_circular_mask_and_bounding_box():
    g = ImageGrid.circular((80, 80), 0.05, 1.0)
    d = np.hypot(*g.grid_arcsec.T)
    assert (d < 1.0).all()
    r0, r1, c0, c1 = g.bounding_box
    assert (r0, r1, c0, c1) == (20, 60, 20, 60)
    # every pixel whose centre is inside the circle is selected, and no other: the selection equals the set of
    # lattice pixels (r, c) with centre y = (39.5 - r) 0.05, x = (c - 39.5) 0.05 at distance < 1 (slim order)
    np.testing.assert_array_equal(g.lattice_indices, inside_circle((80, 80), (0.05, 0.05), 1.0, (0.0, 0.0)))
    assert g.n_pixels == 1264  # the lattice points of radius < 20 pixels (Gauss circle count for the half-offset lattice)
    # the lattice indices and the grid agree
    np.testing.assert_allclose(g.grid_arcsec[:, 0], (39.5 - g.lattice_indices[:, 0]) * 0.05, atol=1e-13)
    np.testing.assert_allclose(g.grid_arcsec[:, 1], (g.lattice_indices[:, 1] - 39.5) * 0.05, atol=1e-13)
    # the mask the users pair with the SMA data: all 6400 pixels unmasked
    assert ImageGrid.circular((80, 80), 0.05, 4.0).n_pixels == 6400


def test_off_centre_circle_and_annulus():
    g = ImageGrid.circular((40, 40), 0.1, 0.5, centre=(0.6, -0.4))
    d = np.hypot(g.grid_arcsec[:, 0] - 0.6, g.grid_arcsec[:, 1] + 0.4)
    assert (d < 0.5).all() and g.n_pixels > 50
    np.testing.assert_array_equal(g.lattice_indices, inside_circle((40, 40), (0.1, 0.1), 0.5, (0.6, -0.4)))
    assert (~g.mask).sum() == g.n_pixels and np.array_equal(np.argwhere(~g.mask), g.lattice_indices)
    a = ImageGrid.annular((40, 40), 0.1, 0.5, 1.2)
    d = np.hypot(*a.grid_arcsec.T)
    assert (d >= 0.5 - 1e-12).all() and (d <= 1.2 + 1e-12).all()
    assert a.mask.sum() == 1600 - a.n_pixels
    outer = {tuple(rc) for rc in inside_circle((40, 40), (0.1, 0.1), 1.2, (0.0, 0.0), inclusive=True)}
    hole = {tuple(rc) for rc in inside_circle((40, 40), (0.1, 0.1), 0.5, (0.0, 0.0))}
    assert {tuple(rc) for rc in a.lattice_indices} == outer - hole


def test_from_mask_file_npy_and_fits(tmp_path):
    mask = np.ones((10, 12), dtype=bool)
    mask[2:5, 3:9] = False
    np.save(tmp_path / "mask.npy", mask)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(mask.astype(np.float64))]).writeto(tmp_path / "mask.fits")
    a = ImageGrid.from_mask_file(tmp_path / "mask.npy", 0.1)
    b = ImageGrid.from_mask_file(tmp_path / "mask.fits", (0.1, 0.1), hdu=1)
    for g in (a, b):
        assert g.n_pixels == 18 and g.bounding_box == (2, 5, 3, 9)
        np.testing.assert_array_equal(g.mask, mask)
    np.testing.assert_array_equal(a.grid_radians, b.grid_radians)


def test_from_points_is_not_a_lattice(rng):
    pts = rng.normal(scale=1e-5, size=(17, 2))
    g = ImageGrid.from_points(pts)
    assert g.n_pixels == 17 and not g.is_lattice
    assert g.mask is None and g.shape_native is None and g.bounding_box is None and g.pixel_scales_radians is None
    np.testing.assert_array_equal(g.grid_radians, pts)
    assert ImageGrid.from_points([[0.0, 0.0]]).n_pixels == 1


# ---------------------------------------------------------------- validation errors


def test_empty_circular_mask_names_parameters():
    with pytest.raises(GridError, match=r"radius = 0\.01 arcsec, centre = \(5\.0, 5\.0\), shape_native = \(10, 10\).*no unmasked pixel"):
        ImageGrid.circular((10, 10), 0.1, 0.01, centre=(5.0, 5.0))
    with pytest.raises(GridError, match=r"inner_radius = 0\.5, outer_radius = 0\.6 arcsec.*no unmasked pixel"):
        ImageGrid.annular((4, 4), 1.0, 0.5, 0.6, centre=(30.0, 0.0))


def test_empty_mask_array_and_file(tmp_path):
    with pytest.raises(GridError, match=r"mask of shape \(3, 3\) masks every pixel"):
        ImageGrid.from_mask(np.ones((3, 3), dtype=bool), 0.1)
    np.save(tmp_path / "all.npy", np.ones((4, 5), dtype=bool))
    with pytest.raises(GridError, match=r"all\.npy: mask of shape \(4, 5\) masks every pixel"):
        ImageGrid.from_mask_file(tmp_path / "all.npy", 0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pixel_scales=0.0), r"pixel_scales sy = 0\.0 must be a finite number > 0"),
        (dict(pixel_scales=(0.1, -0.2)), r"pixel_scales sx = -0\.2 must be a finite number > 0"),
        (dict(pixel_scales=(0.1, 0.1, 0.1)), r"pixel_scales = \(0\.1, 0\.1, 0\.1\) must be a pair"),
        (dict(radius=-1.0), r"radius = -1\.0 must be a finite number > 0"),
        (dict(radius=float("nan")), r"radius = nan must be a finite number > 0"),
        (dict(shape_native=(0, 5)), r"shape_native = \(0, 5\) must be a pair \(ny, nx\) of integers >= 1"),
        (dict(shape_native=(5,)), r"shape_native = \(5,\) must be a pair"),
        (dict(centre=(0.0, float("inf"))), r"centre = \(0\.0, inf\) must be a finite pair"),
    ],
)
def test_bad_circular_parameters(kwargs, message):
    args = dict(shape_native=(10, 10), pixel_scales=0.1, radius=0.3, centre=(0.0, 0.0))
    args.update(kwargs)
    with pytest.raises(GridError, match=message):
        ImageGrid.circular(**args)


def test_bad_annulus_radii():
    with pytest.raises(GridError, match=r"inner_radius = 1\.0 must be < outer_radius = 0\.5"):
        ImageGrid.annular((10, 10), 0.1, 1.0, 0.5)


def test_bad_mask_inputs(tmp_path):
    with pytest.raises(GridError, match=r"mask has shape \(4,\), expected a 2-D"):
        ImageGrid.from_mask(np.zeros(4, dtype=bool), 0.1)
    with pytest.raises(GridError, match=r"mask has dtype float64, expected booleans"):
        ImageGrid.from_mask(np.full((2, 2), 0.5), 0.1)
    bad = np.zeros((3, 3))
    bad[1, 2] = 0.5
    fits.PrimaryHDU(bad).writeto(tmp_path / "bad.fits")
    with pytest.raises(GridError, match=r"bad\.fits: mask\[1, 2\] = 0\.5, expected 0 \(unmasked\) or 1 \(masked\)"):
        ImageGrid.from_mask_file(tmp_path / "bad.fits", 0.1)
    with pytest.raises(GridError, match=r"missing\.npy: mask file does not exist"):
        ImageGrid.from_mask_file(tmp_path / "missing.npy", 0.1)
    (tmp_path / "m.txt").write_text("0")
    with pytest.raises(GridError, match=r"m\.txt: unknown mask format '\.txt'"):
        ImageGrid.from_mask_file(tmp_path / "m.txt", 0.1)


def test_bad_points():
    with pytest.raises(GridError, match=r"grid_radians has shape \(4, 3\), expected \(M, 2\)"):
        ImageGrid.from_points(np.zeros((4, 3)))
    with pytest.raises(GridError, match=r"grid_radians has M = 0 points"):
        ImageGrid.from_points(np.zeros((0, 2)))
    pts = np.zeros((5, 2))
    pts[3, 1] = np.nan
    with pytest.raises(GridError, match=r"grid_radians\[3, 1\] = nan is not finite"):
        ImageGrid.from_points(pts)


@pytest.mark.peer
@pytest.mark.parametrize(
    "shape, scales, radius, centre",
    [
        ((7, 7), (1.0, 1.0), 2.0, (0.0, 0.0)),  # pixels exactly on the circle
        ((80, 80), (0.05, 0.05), 1.0, (0.0, 0.0)),
        ((20, 24), (0.1, 0.15), 0.9, (0.1, -0.2)),
        ((9, 8), (0.3, 0.2), 0.6, (0.3, 0.2)),
    ],
)
def test_circular_matches_pyautoarray(shape, scales, radius, centre):
    import autoarray as aa
    mask = aa.Mask2D.circular(shape_native=shape, pixel_scales=scales, radius=radius, centre=centre)
    g = ImageGrid.circular(shape, scales, radius, centre)
    np.testing.assert_array_equal(np.asarray(mask), g.mask)
    np.testing.assert_allclose(np.asarray(mask.derive_grid.unmasked), g.grid_arcsec, rtol=0, atol=1e-12)


@pytest.mark.peer
def test_annular_matches_pyautoarray():
    import autoarray as aa
    mask = aa.Mask2D.circular_annular(shape_native=(30, 30), pixel_scales=0.1, inner_radius=0.5, outer_radius=1.2)
    g = ImageGrid.annular((30, 30), 0.1, 0.5, 1.2)
    np.testing.assert_array_equal(np.asarray(mask), g.mask)
    np.testing.assert_allclose(np.asarray(mask.derive_grid.unmasked), g.grid_arcsec, rtol=0, atol=1e-12)
