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
    config = SimulationConfig(source="sersic")
    img = source_image(config)
    assert img.sum() == pytest.approx(config.flux, rel=1e-12)
    # the image's light moments against the config, from the pixel positions of the docstring's lattice:
    # centroid = source_centre, second-moment ellipse = axis ratio q and position angle (counter-clockwise from +x)
    ny, nx = img.shape
    s = config.image_pixel_scale
    y = np.broadcast_to(((ny - 1) / 2 - np.arange(ny))[:, None] * s, img.shape)
    x = np.broadcast_to((np.arange(nx) - (nx - 1) / 2)[None, :] * s, img.shape)
    w = img / img.sum()
    yc, xc = float((w * y).sum()), float((w * x).sum())
    # measured 2.8e-4 arcsec (1/180 pixel): the Sersic wings cut off at the image edge, asymmetric for an off-centre source
    assert (yc, xc) == pytest.approx(config.source_centre, abs=2e-3)
    cov = np.cov(np.stack([(x - xc).ravel(), (y - yc).ravel()]), aweights=w.ravel(), bias=True)
    evals, evecs = np.linalg.eigh(cov)
    # measured 0.0035 and 0.23 deg: the same edge truncation (a sign error in the angle gives 150 deg, q = 1 gives 1)
    assert np.sqrt(evals[0] / evals[1]) == pytest.approx(config.axis_ratio, rel=0.02)
    major = evecs[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0])) % 180
    assert angle == pytest.approx(config.position_angle_deg, abs=1.0)
    # effective radius = half-light radius: about half the flux inside the ellipse of semi-major axis R_e
    # (2% is the lattice's pixel edge at R_e = 8 pixels and the b_n approximation)
    xr = (x - xc) * np.cos(np.radians(angle)) + (y - yc) * np.sin(np.radians(angle))
    yr = -(x - xc) * np.sin(np.radians(angle)) + (y - yc) * np.cos(np.radians(angle))
    inside = np.hypot(xr, yr / config.axis_ratio) <= config.effective_radius
    assert img[inside].sum() == pytest.approx(0.5 * config.flux, rel=0.02)


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


# ---------------------------------------------------------------------------------------------- --format ms
def test_simulate_ms_layout_flags_and_noise(tmp_path):
    from casacore import tables

    from wtilde_dask.simulate import simulate_ms

    cfg = SimulationConfig(n_visibilities=30_000, n_spw=3, n_channels=10, flag_fraction=0.05, sigma=0.02,
                           chunk_size=4000, seed=5, image_shape=(32, 32))
    path = simulate_ms(tmp_path / "sim.ms", cfg, log=lambda *a: None)
    meta = json.loads((path / "simulation.json").read_text())
    rows_per_spw = meta["rows_per_spw"]
    assert rows_per_spw == -(-30_000 // 30) and meta["n_stokes_i_visibilities"] >= 30_000
    with tables.table(str(path), ack=False) as ms:
        assert ms.nrows() == 3 * rows_per_spw
        ddid = ms.getcol("DATA_DESC_ID")
        assert sorted(np.unique(ddid)) == [0, 1, 2] and (np.bincount(ddid) == rows_per_spw).all()
        flag = ms.getcol("FLAG")
        flag_row = ms.getcol("FLAG_ROW")
        assert flag.shape == (3 * rows_per_spw, 10, 2)
        assert 0.04 < flag.mean() < 0.06 and 0 < flag_row.sum() < 0.03 * len(flag_row)
        sigma, weight = ms.getcol("SIGMA"), ms.getcol("WEIGHT")
        np.testing.assert_allclose(sigma, math.sqrt(2) * 0.02, rtol=1e-6)
        np.testing.assert_allclose(weight, 1 / (math.sqrt(2) * 0.02) ** 2, rtol=1e-6)
        uvw = ms.getcol("UVW")
        data = ms.getcol("DATA")
    with tables.table(str(path / "SPECTRAL_WINDOW"), ack=False) as spw:
        assert spw.nrows() == 3
        np.testing.assert_array_equal(spw.getcol("CHAN_FREQ"), cfg.spw_frequencies_hz)
    with tables.table(str(path / "POLARIZATION"), ack=False) as pol:
        assert pol.getcol("CORR_TYPE").tolist() == [[9, 12]]
    # uv of window 0, channel 0 equal the docstring's formulas (uv_rows) for the same (time, baseline)
    rows0 = np.flatnonzero(ddid == 0)[:500]
    lam = SPEED_OF_LIGHT / cfg.spw_frequencies_hz[0, 0]
    rng = np.random.default_rng(cfg.seed)
    bl = baselines_equatorial(antenna_positions(43, cfg.max_baseline_m, rng, cfg.min_antenna_spacing_m),
                              cfg.latitude_deg)
    one = SimulationConfig(n_visibilities=cfg.n_times * 903, n_channels=1,
                           frequency_ghz=cfg.spw_frequencies_hz[0, 0] / 1e9)
    assert one.n_times == cfg.n_times  # the same hour angles; table rows 0..499 of window 0 are (t=0, b=0..499)
    expected = uv_rows(one, bl, 0, 500)
    np.testing.assert_allclose(uvw[rows0, :2] / lam, expected, rtol=1e-12, atol=1e-9)
    # Stokes I noise: (XX + YY) / 2 - model has sigma 0.02 (image model, re-computed here)
    model = visibilities_from_image(source_image(cfg), cfg.image_pixel_scale, uvw[rows0, :2] / lam)
    resid = 0.5 * (data[rows0, 0, 0] + data[rows0, 0, 1]) - model
    ok = ~(flag[rows0, 0, 0] | flag[rows0, 0, 1])
    assert abs(np.std(resid[ok].real) / 0.02 - 1) < 0.1 and abs(np.std(resid[ok].imag) / 0.02 - 1) < 0.1


def test_simulate_ms_point_source_sign_and_chunks(tmp_path, monkeypatch):
    """A point at (l, m) = (0.4", -0.3"): DATA = exp(-2 pi i (u l + v m)) and the dirty image from our MS reader
    peaks at x = l, y = m; rows are written in blocks of at most chunk_size visibilities."""
    from wtilde_dask.grid import ARCSEC_TO_RADIANS as ARCSEC
    from wtilde_dask.io import concatenate_chunks
    from wtilde_dask.io.ms import MeasurementSetSource
    from wtilde_dask.kernels.reference import dirty_image_reference
    from wtilde_dask.simulate import ms_writer, simulate_ms

    sizes = []
    real_write = ms_writer.MeasurementSetWriter.write_rows

    def spy(self, ddid, **kw):  # records the block size, then writes for real
        sizes.append(np.asarray(kw["data"]).shape[0] * np.asarray(kw["data"]).shape[1])
        return real_write(self, ddid, **kw)

    monkeypatch.setattr(ms_writer.MeasurementSetWriter, "write_rows", spy)
    path = simulate_ms(tmp_path / "pt.ms", n_visibilities=12_000, n_spw=2, n_channels=4, sigma=1e-9,
                       point_source=(0.4, -0.3), chunk_size=1000, max_baseline_m=800.0, log=lambda *a: None)
    assert max(sizes) <= 1000 and sum(sizes) >= 12_000
    src = MeasurementSetSource(path, chunk_size=3000)
    c = concatenate_chunks(src)
    l_rad, m_rad = 0.4 * ARCSEC, -0.3 * ARCSEC
    expected = np.exp(-2j * np.pi * (c.uv_wavelengths[:, 0] * l_rad + c.uv_wavelengths[:, 1] * m_rad))
    assert np.abs(c.visibilities - expected).max() < 1e-6  # complex64 storage
    grid = ImageGrid.from_mask(np.zeros((15, 15), bool), (0.1, 0.1))
    w = 1.0 / c.noise_map.real**2
    dirty = dirty_image_reference(grid.grid_radians, c.uv_wavelengths, c.visibilities, w, w)
    y, x = grid.grid_arcsec[np.argmax(dirty)]
    assert (round(y, 6), round(x, 6)) == (-0.3, 0.4)


def test_simulate_ms_cli(tmp_path):
    from casacore import tables

    from wtilde_dask.cli import main

    out = tmp_path / "cli.ms"
    assert main(["simulate", str(out), "-K", "5e3", "--format", "ms", "--spw", "2", "--channels", "5",
                 "--flag-fraction", "0.1", "--point-source", "0.1", "0.2", "-q"]) == 0
    with tables.table(str(out), ack=False) as ms:
        assert ms.getcol("FLAG").any()
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["config"]["point_source"] == [0.1, 0.2] and meta["config"]["n_spw"] == 2
    assert main(["simulate", str(out), "-K", "5e3", "--format", "ms", "-q"]) == 2  # exists: refused
    assert main(["simulate", str(tmp_path / "f"), "-K", "5e3", "--spw", "2", "-q"]) == 2  # folder: one window
