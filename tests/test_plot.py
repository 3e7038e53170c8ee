"""Pictures: block states, the block map PNG (cells counted from pixel colours), images on the mask,
the lattice kernel, `wtilde plot` and `wtilde status --plot` on real stores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from wtilde_dask import plot
from wtilde_dask.plot import BLOCK_COLOURS, DONE, FAILED, LOWER, PENDING, RUNNING


# ------------------------------------------------------------------------------------------------
# helpers: read a PNG back and measure it
# ------------------------------------------------------------------------------------------------


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)


def read_png(path) -> np.ndarray:
    """(H, W, 3) uint8-valued int16 array of a PNG."""
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    if img.dtype != np.uint8:
        img = np.round(img * 255)
    return img[..., :3].astype(np.int16)


def colour_mask(img: np.ndarray, hex_colour: str, tol: int = 3) -> np.ndarray:
    return np.all(np.abs(img - _rgb(hex_colour)) <= tol, axis=-1)


def assert_not_blank(path, min_size=(300, 300)):
    img = read_png(path)
    h, w, _ = img.shape
    assert h >= min_size[0] and w >= min_size[1], f"{path}: {w}x{h} pixels"
    white = np.all(img >= 250, axis=-1)
    assert white.mean() < 0.97, f"{path}: {100 * white.mean():.1f}% white"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, f"{path}: too few colours"
    return img


def block_map_states_from_png(path, nb: int) -> np.ndarray:
    """Read back the state of every upper-triangle cell of a block-map PNG from its pixel colours.

    The map's coloured area spans exactly the nb x nb cell grid (row 0 spans all columns, column nb-1
    all rows); each cell's state is the colour at its centre.
    """
    img = read_png(path)
    any_state = np.zeros(img.shape[:2], dtype=bool)
    for name in ("done", "running", "pending", "failed"):
        any_state |= colour_mask(img, BLOCK_COLOURS[name])
    rows = np.flatnonzero(any_state.any(axis=1))
    cols = np.flatnonzero(any_state.any(axis=0))
    # the cell grid: first and last rows/columns holding state colours (legend patches lie inside it)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    states = np.full((nb, nb), LOWER, dtype=np.int8)
    codes = {"done": DONE, "running": RUNNING, "pending": PENDING, "failed": FAILED}
    for i in range(nb):
        for j in range(i, nb):
            y = int(top + (i + 0.5) * (bottom - top) / nb)
            x = int(left + (j + 0.5) * (right - left) / nb)
            found = [code for name, code in codes.items() if colour_mask(img[y : y + 1, x : x + 1], BLOCK_COLOURS[name])[0, 0]]
            assert len(found) == 1, f"cell ({i},{j}) at pixel ({y},{x}) has colour {img[y, x]}"
            states[i, j] = found[0]
    return states


# ------------------------------------------------------------------------------------------------
# pure functions
# ------------------------------------------------------------------------------------------------


def test_block_states_and_counts():
    nb = 5
    ledger = np.zeros((nb, nb), np.uint64)
    ledger[0, :] = 11  # 5 done
    ledger[1, 1] = 3
    ledger[3, 1] = 9  # below the diagonal: ignored
    states = plot.block_states(ledger, running=[(2, 3), (1, 1)], failed=[(4, 2)])  # (4,2) -> (2,4)
    assert states[1, 1] == DONE  # ledger wins over a stale running state
    assert states[2, 3] == RUNNING and states[2, 4] == FAILED
    assert (states[np.tril_indices(nb, -1)] == LOWER).all()
    counts = plot.block_counts(states)
    assert counts == {"pending": 7, "done": 6, "running": 1, "failed": 1, "total": 15}
    with pytest.raises(ValueError, match="ledger has shape"):
        plot.block_states(np.zeros((2, 3)))


def test_format_eta_and_title():
    assert plot.format_eta(None) == "?" and plot.format_eta(float("inf")) == "?"
    assert plot.format_eta(12.4) == "12 s"
    assert plot.format_eta(250) == "4 min 10 s"
    assert plot.format_eta(3 * 3600 + 5 * 60) == "3 h 05 min"
    title = plot.block_title({"done": 3, "running": 1, "failed": 0, "total": 10}, eta_s=70, rate_blocks_per_s=0.1)
    assert title.startswith("3/10 blocks done (30%)") and "ETA 1 min 10 s" in title
    assert "complete" in plot.block_title({"done": 10, "running": 0, "failed": 0, "total": 10})


@pytest.mark.parametrize("nb", [1, 3, 8, 23])
def test_block_map_png_cells_measured_from_pixels(tmp_path, rng, nb):
    ledger = np.zeros((nb, nb), np.uint64)
    iu = np.triu_indices(nb)
    done = rng.random(len(iu[0])) < 0.5
    ledger[iu[0][done], iu[1][done]] = 1 + rng.integers(1, 2**40, done.sum()).astype(np.uint64)
    pending = [(i, j) for i, j, d in zip(*iu, done) if not d]
    running = pending[:2]
    failed = pending[2:3]
    states = plot.block_states(ledger, running=running, failed=failed)
    path = plot.save_figure(plot.plot_block_map(states, eta_s=100.0, block_size=128, n_pixels=nb * 128), tmp_path / "map.png")
    assert_not_blank(path, (400, 400))
    measured = block_map_states_from_png(path, nb)
    np.testing.assert_array_equal(measured, states)
    assert int((measured == DONE).sum()) == int(done.sum())


def _lattice_mask(ny=24, nx=30, radius=0.5, scale=0.05):
    from wtilde_dask.grid import ImageGrid

    return ImageGrid.circular((ny, nx), (scale, scale), radius)


def test_image_on_mask_places_values_in_slim_order():
    mask = np.array([[True, False, False], [False, True, False]])
    img = plot.image_on_mask(np.array([1.0, 2.0, 3.0, 4.0]), mask)
    np.testing.assert_array_equal(img[~mask], [1, 2, 3, 4])
    assert np.isnan(img[mask]).all()
    with pytest.raises(ValueError, match=r"expected \(4,\)"):
        plot.image_on_mask(np.zeros(5), mask)


def test_image_figures_have_arcsec_axes(tmp_path):
    grid = _lattice_mask()
    values = np.cos(grid.grid_arcsec[:, 0] * 8) * np.sin(grid.grid_arcsec[:, 1] * 5)
    fig = plot.plot_image_on_mask(values, grid.mask, grid.pixel_scales, title="test", colorbar_label="W", symmetric=True, mark_pixel=3)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x (arcsec)" and ax.get_ylabel() == "y (arcsec)"
    # cropped to the unmasked pixels: limits within a few pixels of the mask radius
    x0, x1 = ax.get_xlim()
    assert -0.5 - 0.2 <= x0 < -0.45 and 0.45 < x1 <= 0.5 + 0.2
    # the plotted array is the data: pixel (r, c) of the lattice at y = ((ny-1)/2 - r) sy, x = (c - (nx-1)/2) sx,
    # masked pixels blank; the crop's first row / column read back from the image's extent (origin upper)
    shown = ax.images[0].get_array()
    left, right, bottom, top = ax.images[0].get_extent()
    (ny, nx), (sy, sx) = grid.shape_native, grid.pixel_scales
    c0 = int(round((left + sx / 2) / sx + (nx - 1) / 2))
    r0 = int(round((ny - 1) / 2 - (top - sy / 2) / sy))
    assert (right - left) == pytest.approx(shown.shape[1] * sx) and (top - bottom) == pytest.approx(shown.shape[0] * sy)
    full = np.full(grid.shape_native, np.nan)
    full[grid.lattice_indices[:, 0], grid.lattice_indices[:, 1]] = values
    expected = full[r0:r0 + shown.shape[0], c0:c0 + shown.shape[1]]
    assert np.isfinite(expected).sum() == grid.n_pixels  # every value is on the picture
    np.testing.assert_array_equal(np.ma.filled(shown.astype(float), np.nan), expected)
    path = plot.save_figure(fig, tmp_path / "img.png")
    img = assert_not_blank(path)
    # diverging map: both red-ish and blue-ish pixels
    assert ((img[..., 0] > 150) & (img[..., 2] < 100)).any() and ((img[..., 2] > 150) & (img[..., 0] < 100)).any()
    assert_not_blank(plot.save_figure(plot.plot_mask(grid.mask, grid.pixel_scales), tmp_path / "mask.png"))


def test_lattice_kernel_figure(tmp_path, sma_dataset):
    ny, nx = 9, 11
    dr, dc = np.meshgrid(np.arange(-(ny - 1), ny), np.arange(-(nx - 1), nx), indexing="ij")
    s = 0.1 / 206264.80624709636
    u, v = sma_dataset.uv_wavelengths.T
    w = sma_dataset.weights_real
    kernel = np.einsum("k,abk->ab", w, np.cos(2 * np.pi * (dc[..., None] * s * u - dr[..., None] * s * v)))
    fig = plot.plot_lattice_kernel(kernel, (0.1, 0.1))
    assert "k(0,0)" in fig.axes[0].get_title()
    assert fig.axes[0].get_xlabel() == "Δx (arcsec)"
    # the picture is log10(|k| / k(0, 0)) floored at 1e-4 (the default dynamic range), offsets as stored
    shown = np.asarray(fig.axes[0].images[0].get_array(), dtype=float)
    np.testing.assert_allclose(shown, np.log10(np.maximum(np.abs(kernel) / kernel[ny - 1, nx - 1], 1e-4)),
                               rtol=0, atol=1e-12)
    assert shown[ny - 1, nx - 1] == 0.0
    assert_not_blank(plot.save_figure(fig, tmp_path / "kernel.png"))
    with pytest.raises(ValueError, match="odd sides"):
        plot.plot_lattice_kernel(np.zeros((4, 5)), (0.1, 0.1))


# ------------------------------------------------------------------------------------------------
# stores: `wtilde plot` and `wtilde status --plot`
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def partial_store(tmp_path, sma_dataset):
    """A lattice-grid store with blocks written by hand from the reference formula (some left undone)."""
    from wtilde_dask.kernels.dirty import dirty_image
    from wtilde_dask.kernels.reference import w_tilde_reference
    from wtilde_dask.store import WTildeStore, block_checksum

    grid = _lattice_mask(ny=20, nx=20, radius=0.45, scale=0.05)
    ds = sma_dataset
    store = WTildeStore.create(tmp_path / "w.zarr", ds, grid, method="direct", block_size=64)
    plan = store.plan
    blocks = plan.blocks()
    undone = set(blocks[-3:])  # the last blocks in plan order are left undone
    for bi, bj in blocks:
        if (bi, bj) in undone:
            continue
        rows = np.arange(plan.n_pixels)[plan.pixel_range(bi)]
        cols = np.arange(plan.n_pixels)[plan.pixel_range(bj)]
        block = w_tilde_reference(grid.grid_radians, ds.uv_wavelengths, ds.weights_real, ds.weights_imag, rows=rows, cols=cols)
        store.write_block(bi, bj, block)
        store.mark_done(bi, bj, block_checksum(block), 0.25)
    store.write_array(
        "dirty_image",
        dirty_image(grid.grid_radians, ds.uv_wavelengths, ds.visibilities, ds.weights_real, ds.weights_imag),
    )
    return store, grid, undone


def test_status_plot_png_counts_done_cells(partial_store, artifacts_dir, tmp_path):
    store, grid, undone = partial_store
    nb = store.plan.n_blocks_side
    path = plot.plot_block_map_png(store.path, tmp_path / "map.png")
    assert_not_blank(path, (400, 400))
    measured = block_map_states_from_png(path, nb)
    ledger = store.ledger()
    assert int((measured == DONE).sum()) == int(np.count_nonzero(np.triu(ledger))) == store.plan.n_blocks - len(undone)
    for bi, bj in undone:
        assert measured[bi, bj] == PENDING
    shutil.copy(path, artifacts_dir / "status_plot_block_map.png")


def test_plot_store_writes_every_picture(partial_store, artifacts_dir, tmp_path, sma_dataset):
    from wtilde_dask.kernels.reference import w_tilde_reference

    store, grid, undone = partial_store
    out = tmp_path / "plots"
    written = plot.plot_store(store, out, row=0)  # row 0: block row 0 is complete
    assert {"block_map", "mask", "dirty_image", "w_tilde_row"} <= set(written)
    for name, path in written.items():
        assert_not_blank(path)
        shutil.copy(path, artifacts_dir / f"plot_{name}.png")
    # the row drawn is the store's row, equal to the reference formula
    index, values = plot._w_tilde_row(store, grid, 0)
    ref = w_tilde_reference(grid.grid_radians, sma_dataset.uv_wavelengths, sma_dataset.weights_real, sma_dataset.weights_imag, rows=[0])[0]
    np.testing.assert_allclose(values, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    # a row whose blocks are not all done is skipped, not drawn from NaNs
    last_row_block = max(bi for bi, bj in undone)
    assert plot._w_tilde_row(store, grid, last_row_block * store.block_size) is None


def test_cli_plot_and_status_plot(partial_store, tmp_path, capsys):
    from wtilde_dask.cli import main

    store, grid, undone = partial_store
    out = tmp_path / "cli_plots"
    assert main(["plot", str(store.path), "--out", str(out), "--row", "0"]) == 0
    printed = capsys.readouterr().out
    assert "block_map" in printed and (out / "w_tilde_row.png").exists() and (out / "dirty_image.png").exists()
    assert main(["plot", str(store.path), "--row", "100000"]) == 2
    assert "--row" in capsys.readouterr().err


def test_plot_after_compute_and_invert(tmp_path, sma_dataset, artifacts_dir, capsys):
    """A lattice store from `compute`, an inversion from `wtilde invert`, then `wtilde plot` and
    `wtilde status --plot`: every picture, the map all done."""
    from wtilde_dask.cli import main
    from wtilde_dask.compute import compute
    from wtilde_dask.grid import ImageGrid

    grid = ImageGrid.circular((40, 40), (0.1, 0.1), 1.5)
    out = tmp_path / "sma.zarr"
    store = compute(sma_dataset, grid, out, block_size=128, method="lattice", n_workers=1, threads_per_worker=1, progress=False, log=lambda *a: None)
    assert store.is_complete()
    assert main(["invert", str(out), "--einstein-radius", "0.8", "--mesh-shape", "12", "12", "--png", str(tmp_path / "inv.png")]) == 0
    plots = tmp_path / "plots"
    assert main(["plot", str(out), "--out", str(plots)]) == 0
    for name in ("block_map", "mask", "dirty_image", "lattice_kernel", "w_tilde_row", "reconstruction", "residual_dirty_image"):
        path = plots / f"{name}.png"
        assert path.exists(), name
        assert_not_blank(path)
        shutil.copy(path, artifacts_dir / f"sma_lattice_{name}.png")
    map_png = tmp_path / "status_map.png"
    assert main(["status", str(out), "--plot", str(map_png)]) == 0
    assert str(map_png) in capsys.readouterr().out
    nb = store.plan.n_blocks_side
    measured = block_map_states_from_png(map_png, nb)
    assert int((measured == DONE).sum()) == store.plan.n_blocks
    shutil.copy(map_png, artifacts_dir / "sma_lattice_status_plot.png")


def test_source_reconstruction_rectangular_and_delaunay(tmp_path, rng):
    ys, xs = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1.2, 1.2, 10), indexing="ij")
    points = np.stack([ys.ravel(), xs.ravel()], axis=1)
    values = np.exp(-(points**2).sum(axis=1))
    fig = plot.plot_source_reconstruction(values, points)
    assert "rectangular mesh 8×10" in fig.axes[0].get_title()
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (8, 10) and np.isclose(img[0, 0], values[0])  # origin lower: row 0 = lowest y
    # every node's value at its (y, x) place, also when the nodes come in another order
    np.testing.assert_array_equal(np.asarray(img), values.reshape(8, 10))
    order = rng.permutation(len(values))
    shuffled = plot.plot_source_reconstruction(values[order], points[order]).axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(shuffled), values.reshape(8, 10))
    assert_not_blank(plot.save_figure(fig, tmp_path / "rect.png"))
    scattered = rng.uniform(-1, 1, (60, 2))
    fig = plot.plot_source_reconstruction(np.cos(scattered[:, 0] * 3), scattered)
    assert "Delaunay mesh, 60 vertices" in fig.axes[0].get_title()
    mesh = fig.axes[0].collections[0]  # Gouraud-shaded triangles: one value per vertex, at (x, y)
    np.testing.assert_array_equal(np.asarray(mesh.get_array()), np.cos(scattered[:, 0] * 3))
    tri = mesh._triangulation
    np.testing.assert_array_equal(np.stack([tri.y, tri.x], axis=1), scattered)
    assert_not_blank(plot.save_figure(fig, tmp_path / "delaunay.png"))
