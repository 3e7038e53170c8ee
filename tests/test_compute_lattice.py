"""The lattice path through the service: simulate -> compute --method lattice -> export-pyautoarray."""

from __future__ import annotations

import numpy as np
import pytest

from wtilde_dask.cli import main as wtilde
from wtilde_dask.compute import compute
from wtilde_dask.dataset import load_dataset
from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels import lattice as L
from wtilde_dask.kernels.reference import w_tilde_reference
from wtilde_dask.simulate import simulate
from wtilde_dask.store import WTildeStore


def quiet(*args):
    pass



@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small simulated ALMA-like dataset (unequal real/imag noise) and an off-centre circular lattice mask."""
    folder = tmp_path_factory.mktemp("sim") / "alma"
    simulate(folder, n_visibilities=2500, chunk_size=1000, sigma=0.05, sigma_imag=0.08, max_baseline_m=400.0,
             image_shape=(64, 64), log=quiet)
    return load_dataset(folder), ImageGrid.circular((40, 40), (0.1, 0.1), 0.9, centre=(0.2, -0.3))


@pytest.mark.parametrize("equal", [False, True], ids=["unequal_noise", "equal_noise"])
def test_simulated_lattice_store_equals_reference(tmp_path, client, simulated, equal):
    ds, grid = simulated
    if equal:
        ds = type(ds).from_arrays(ds.visibilities, ds.noise_map.real * (1 + 1j), ds.uv_wavelengths)
    store = compute(ds, grid, tmp_path / "w.zarr", method="lattice", block_size=96, client=client, progress=False,
                    log=quiet)
    assert store.method == "lattice" and store.is_complete()
    assert store.has_array("kernel_hankel") == (not equal)
    W = store.to_dask().compute()
    ref = w_tilde_reference(grid.grid_radians, ds.uv_wavelengths, ds.weights_real, ds.weights_imag)
    assert np.abs(W - ref).max() <= 1e-11 * np.abs(ref).max()
    # the stored kernels are exactly lattice_kernels(...) of the inputs
    lk = L.lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
    np.testing.assert_allclose(store.read_array("kernel"), lk.kernel, rtol=0, atol=1e-13 * np.abs(lk.kernel).max())


def test_export_pyautoarray_cli(tmp_path, client, simulated, capsys):
    ds, grid = simulated
    equal = type(ds).from_arrays(ds.visibilities, ds.noise_map.real * (1 + 1j), ds.uv_wavelengths)
    compute(equal, grid, tmp_path / "w.zarr", method="lattice", block_size=128, client=client, progress=False,
            log=quiet)
    assert wtilde(["export-pyautoarray", str(tmp_path / "w.zarr"), str(tmp_path / "op.npy")]) == 0
    op = np.load(tmp_path / "op.npy")
    ny, nx = L.lattice_box(grid).shape_box
    assert op.shape == (2 * ny, 2 * nx)
    # against the defining sum, not the exporter's own path: P[dr % 2ny, dc % 2nx] = W between two pixels dr rows
    # down and dc columns right = sum_k w_k cos(2 pi (dx u_k + dy v_k)), dx = dc sx, dy = -dr sy (y decreases down
    # the rows; equal noise); row ny and column nx unused (zero)
    sy, sx = np.radians(np.asarray(grid.pixel_scales) / 3600.0)
    u, v, w = equal.uv_wavelengths[:, 0], equal.uv_wavelengths[:, 1], equal.weights_real
    expected = np.zeros((2 * ny, 2 * nx))
    for dr in range(-(ny - 1), ny):
        dc = np.arange(-(nx - 1), nx)
        phase = 2 * np.pi * ((dc * sx)[:, None] * u[None, :] + (-dr * sy) * v[None, :])
        expected[dr % (2 * ny), dc % (2 * nx)] = np.sum(w * np.cos(phase), axis=1)
    # the exporter against the exact sum: 6e-9 absolute measured, 6e-15 of sum(w) = 1e6 (the zero-offset entry)
    np.testing.assert_allclose(op, expected, rtol=0, atol=1e-12 * w.sum())
    # a direct store on a lattice grid has no kernel: the export computes it from the store's inputs
    compute(equal, grid, tmp_path / "d.zarr", method="direct", block_size=128, client=client, progress=False,
            log=quiet)
    assert not WTildeStore.open(tmp_path / "d.zarr").has_array("kernel")
    assert wtilde(["export-pyautoarray", str(tmp_path / "d.zarr"), str(tmp_path / "op2")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "op2.npy"), op, rtol=0, atol=1e-13 * equal.weights_real.sum())
    assert "computing it by NUFFT" in capsys.readouterr().out
    # unequal noise: the offset part is exported with a warning
    compute(ds, grid, tmp_path / "u.zarr", method="lattice", block_size=128, client=client, progress=False, log=quiet)
    assert wtilde(["export-pyautoarray", str(tmp_path / "u.zarr"), str(tmp_path / "u.npy")]) == 0
    assert "Hankel" in capsys.readouterr().out
    # an irregular grid cannot be exported
    pts = ImageGrid.from_points(grid.grid_radians[:50])
    compute(equal, pts, tmp_path / "p.zarr", block_size=64, client=client, progress=False, log=quiet)
    assert wtilde(["export-pyautoarray", str(tmp_path / "p.zarr"), str(tmp_path / "p.npy")]) == 2
    assert "irregular point set" in capsys.readouterr().err


@pytest.mark.peer
def test_exported_store_equals_pyautoarray(tmp_path, client, simulated):
    import autoarray as aa
    from autoarray.inversion.inversion.interferometer import inversion_interferometer_util as util

    ds, grid = simulated
    equal = type(ds).from_arrays(ds.visibilities, ds.noise_map.real * (1 + 1j), ds.uv_wavelengths)
    compute(equal, grid, tmp_path / "w.zarr", method="lattice", block_size=128, client=client, progress=False,
            log=quiet)
    assert wtilde(["export-pyautoarray", str(tmp_path / "w.zarr"), str(tmp_path / "op.npy")]) == 0
    mask = aa.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    theirs = util.nufft_precision_operator_from(
        noise_map_real=equal.noise_map.real, uv_wavelengths=equal.uv_wavelengths,
        shape_masked_pixels_2d=mask.shape_native_masked_pixels,
        grid_radians_2d=mask.derive_grid.all_false.in_radians.native.array,
    )
    assert np.abs(np.load(tmp_path / "op.npy") - theirs).max() <= 1e-12 * equal.weights_real.sum()
