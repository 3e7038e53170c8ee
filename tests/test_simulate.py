"""Synthetic ALMA-like datasets: uv tracks, sign convention, chunked FITS writing, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wtilde_dask.dataset import load_dataset
from wtilde_dask.grid import ImageGrid
from wtilde_dask.simulate import (
    SPEED_OF_LIGHT,
    SimulationConfig,
    SimulationError,
    antenna_positions,
    baselines_equatorial,
    simulate,
    source_image,
    uv_rows,
    visibilities_from_image,
)


@pytest.mark.parametrize("shape, scales", [((9, 12), (0.07, 0.05)), ((10, 7), (0.1, 0.1)), ((1, 5), (0.2, 0.3))])
def test_visibilities_sign_convention(shape, scales, rng):
    """V_k = sum_i I_i exp(-i 2 pi (x_i u_k + y_i v_k)) on the package lattice (grid.ImageGrid)."""
    img = rng.uniform(size=shape)
    grid = ImageGrid.from_mask(np.zeros(shape, bool), scales)
    uv = rng.uniform(-2e6, 2e6, (40, 2))
    vis = visibilities_from_image(img, scales, uv)
    phi = 2 * np.pi * (grid.grid_radians[:, 1:2] * uv[:, 0] + grid.grid_radians[:, 0:1] * uv[:, 1])
    direct = (img.ravel()[:, None] * np.exp(-1j * phi)).sum(axis=0)
    assert np.abs(vis - direct).max() < 1e-11 * img.sum()


def test_uv_tracks_are_earth_rotation_ellipses():
    cfg = SimulationConfig(n_visibilities=903 * 2 * 50, n_channels=2, seed=3)
    rng = np.random.default_rng(cfg.seed)
    enu = antenna_positions(cfg.n_antennas, cfg.max_baseline_m, rng, cfg.min_antenna_spacing_m)
    assert enu.shape == (43, 3)
    sep = np.hypot(*(enu[:, None, :2] - enu[None, :, :2]).transpose(2, 0, 1))
    assert sep[np.triu_indices(43, 1)].min() >= cfg.min_antenna_spacing_m
    bl = baselines_equatorial(enu, cfg.latitude_deg)
    assert bl.shape == (903, 3)
    assert np.linalg.norm(bl, axis=1).max() <= cfg.max_baseline_m
    uv = uv_rows(cfg, bl, 0, cfg.n_visibilities)
    # rows (time, channel, baseline): baseline b, channel 0 over all times
    b, nb, nch = 17, 903, 2
    idx = np.arange(cfg.n_times) * nb * nch + b
    lam = SPEED_OF_LIGHT / cfg.frequencies_hz[0]
    u, v = uv[idx, 0] * lam, uv[idx, 1] * lam
    dec = math.radians(cfg.declination_deg)
    bx, by, bz = bl[b]
    ellipse = u**2 + ((v - math.cos(dec) * bz) / math.sin(dec)) ** 2
    np.testing.assert_allclose(ellipse, bx**2 + by**2, rtol=1e-10)
    # |uv| <= |B| / lambda for every channel
    lam_min = SPEED_OF_LIGHT / cfg.frequencies_hz.max()
    assert np.hypot(uv[:, 0], uv[:, 1]).max() <= cfg.max_baseline_m / lam_min
    # rows are consistent whatever slice is asked for
    np.testing.assert_array_equal(uv_rows(cfg, bl, 1000, 1200), uv[1000:1200])


def test_simulate_writes_a_loadable_folder_in_chunks(tmp_path):
    out = simulate(tmp_path / "sim", n_visibilities=5000, chunk_size=1500, sigma=0.02, sigma_imag=0.03, seed=4,
                   image_shape=(64, 48), log=lambda *a: None)
    ds = load_dataset(out)
    assert ds.n_visibilities == 5000
    np.testing.assert_array_equal(ds.noise_map, np.full(5000, 0.02 + 0.03j))
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["config"]["n_visibilities"] == 5000 and meta["n_baselines"] == 903
    cfg = SimulationConfig(n_visibilities=5000, chunk_size=1500, sigma=0.02, sigma_imag=0.03, seed=4,
                           image_shape=(64, 48))
    model = visibilities_from_image(source_image(cfg), cfg.image_pixel_scale, ds.uv_wavelengths)
    resid = ds.visibilities - model
    assert abs(np.std(resid.real) / 0.02 - 1) < 0.06
    assert abs(np.std(resid.imag) / 0.03 - 1) < 0.06
    shortest = np.argmin(np.hypot(ds.uv_wavelengths[:, 0], ds.uv_wavelengths[:, 1]))
    assert abs(np.abs(model[shortest]) - 1.0) < 0.05  # the shortest baseline sees almost all of the 1 Jy
    # the same parameters and seed give the same files; the chunk size changes only the noise draws
    again = simulate(tmp_path / "sim2", n_visibilities=5000, chunk_size=5000, sigma=1e-12, seed=4,
                     image_shape=(64, 48), log=lambda *a: None)
    ds2 = load_dataset(again)
    np.testing.assert_array_equal(ds2.uv_wavelengths, ds.uv_wavelengths)
    np.testing.assert_allclose(ds2.visibilities, model, rtol=0, atol=1e-10)


def test_simulate_small_k_and_sersic(tmp_path):
    out = simulate(tmp_path / "s", n_visibilities=1000, source="sersic", n_channels=1, log=lambda *a: None)
    ds = load_dataset(out)
    assert ds.n_visibilities == 1000
    img = source_image(SimulationConfig(source="sersic"))
    assert img.sum() == pytest.approx(1.0)
    assert img.max() == img[np.unravel_index(np.argmax(img), img.shape)]


def test_simulate_refuses_overwrite_and_bad_params(tmp_path):
    simulate(tmp_path / "s", n_visibilities=100, log=lambda *a: None)
    with pytest.raises(SimulationError, match="already holds data.fits"):
        simulate(tmp_path / "s", n_visibilities=100, log=lambda *a: None)
    simulate(tmp_path / "s", n_visibilities=200, overwrite=True, log=lambda *a: None)
    assert load_dataset(tmp_path / "s").n_visibilities == 200
    with pytest.raises(SimulationError, match="n_antennas"):
        SimulationConfig(n_antennas=1)
    with pytest.raises(SimulationError, match="sigma"):
        SimulationConfig(sigma=-1.0)
    with pytest.raises(SimulationError, match="source"):
        SimulationConfig(source="point")


def test_cli_simulate(tmp_path, capsys):
    from wtilde_dask.cli import main

    assert main(["simulate", str(tmp_path / "c"), "-K", "2e3", "--chunk-size", "700", "--channels", "2",
                 "--sigma-imag", "0.2"]) == 0
    ds = load_dataset(tmp_path / "c")
    assert ds.n_visibilities == 2000
    assert ds.noise_map[0] == pytest.approx(0.05 + 0.2j)
    assert main(["simulate", str(tmp_path / "c"), "-K", "10"]) == 2
    assert "already holds" in capsys.readouterr().err
