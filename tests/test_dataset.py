"""Interferometer dataset: loaders (PyAutoLens FITS folder, .npz) and validation messages."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from wtilde_dask.dataset import DatasetError, Interferometer, load_dataset, sma_dataset_path


def write_folder(folder, data, noise, uv, hdu_ext=False):
    """Write a PyAutoLens-style dataset folder; with hdu_ext the arrays go to HDU 1 (primary empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (("data", data), ("noise_map", noise), ("uv_wavelengths", uv)):
        if hdu_ext:
            hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.asarray(arr), name="ARR")])
        else:
            hdul = fits.HDUList([fits.PrimaryHDU(np.asarray(arr))])
        hdul.writeto(folder / f"{name}.fits", overwrite=True)
    return folder


def arrays(rng, k=20):
    data = rng.normal(size=(k, 2))
    noise = rng.uniform(0.5, 2.0, size=(k, 2))
    uv = rng.normal(scale=1e5, size=(k, 2))
    return data, noise, uv


def test_sma_dataset_loads(sma_dataset):
    ds = sma_dataset
    assert ds.n_visibilities == 190
    assert ds.visibilities.dtype == np.complex128 and ds.visibilities.shape == (190,)
    assert ds.noise_map.dtype == np.complex128 and ds.noise_map.shape == (190,)
    assert ds.uv_wavelengths.dtype == np.float64 and ds.uv_wavelengths.shape == (190, 2)
    raw = fits.getdata(sma_dataset_path() / "data.fits")
    np.testing.assert_array_equal(ds.visibilities.real, raw[:, 0])
    np.testing.assert_array_equal(ds.visibilities.imag, raw[:, 1])
    np.testing.assert_allclose(ds.weights_real, 1.0 / ds.noise_map.real**2)
    np.testing.assert_allclose(ds.weights_imag, 1.0 / ds.noise_map.imag**2)
    assert "sma" in ds.name


def test_dataset_is_read_only(sma_dataset):
    with pytest.raises(ValueError):
        sma_dataset.visibilities[0] = 0
    with pytest.raises(AttributeError):
        sma_dataset.name = "x"


def test_fits_folder_and_hdu_selection(tmp_path, rng):
    data, noise, uv = arrays(rng)
    write_folder(tmp_path / "ext", data, noise, uv, hdu_ext=True)
    ds = load_dataset(tmp_path / "ext", hdu=1)
    np.testing.assert_array_equal(ds.visibilities, data[:, 0] + 1j * data[:, 1])
    np.testing.assert_array_equal(ds.noise_map, noise[:, 0] + 1j * noise[:, 1])
    np.testing.assert_array_equal(ds.uv_wavelengths, uv)
    ds_named = Interferometer.from_fits_folder(tmp_path / "ext", hdu="ARR")
    np.testing.assert_array_equal(ds_named.uv_wavelengths, uv)
    with pytest.raises(DatasetError, match=r"data\.fits: visibilities HDU 0 holds no data"):
        load_dataset(tmp_path / "ext")
    with pytest.raises(DatasetError, match=r"data\.fits: visibilities has no HDU 5"):
        load_dataset(tmp_path / "ext", hdu=5)


def test_npz_round_trip_complex_and_pairs(tmp_path, rng):
    data, noise, uv = arrays(rng)
    ds = Interferometer.from_arrays(data, noise, uv, name="x")
    path = ds.to_npz(tmp_path / "ds.npz")
    back = load_dataset(path)
    np.testing.assert_array_equal(back.visibilities, ds.visibilities)
    np.testing.assert_array_equal(back.noise_map, ds.noise_map)
    np.testing.assert_array_equal(back.uv_wavelengths, ds.uv_wavelengths)
    # (K, 2) real/imag layout and the PyAutoLens name "data"
    np.savez(tmp_path / "pairs.npz", data=data, noise_map=noise, uv_wavelengths=uv)
    pairs = load_dataset(tmp_path / "pairs.npz")
    np.testing.assert_array_equal(pairs.visibilities, ds.visibilities)


def test_k_equals_one(tmp_path):
    ds = Interferometer.from_arrays([1 + 2j], [0.5 + 0.25j], [[1e5, -2e5]])
    assert ds.n_visibilities == 1
    assert ds.weights_real[0] == 4.0 and ds.weights_imag[0] == 16.0


# ---------------------------------------------------------------- validation errors


def test_missing_file_is_named(tmp_path, rng):
    data, noise, uv = arrays(rng)
    folder = write_folder(tmp_path / "d", data, noise, uv)
    (folder / "noise_map.fits").unlink()
    with pytest.raises(DatasetError, match=r"noise_map\.fits.*missing file noise_map\.fits \(noise_map\)"):
        load_dataset(folder)
    with pytest.raises(DatasetError, match=r"nothere\.npz: missing file"):
        load_dataset(tmp_path / "nothere.npz")
    with pytest.raises(DatasetError, match=r"nowhere: dataset path does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_mismatched_k(tmp_path, rng):
    data, noise, uv = arrays(rng)
    folder = write_folder(tmp_path / "d", data, noise, uv[:-1])
    with pytest.raises(DatasetError, match=r"uv_wavelengths\.fits: uv_wavelengths has K = 19 rows but data\.fits: visibilities has K = 20"):
        load_dataset(folder)


def test_wrong_number_of_columns(tmp_path, rng):
    data, noise, uv = arrays(rng)
    folder = write_folder(tmp_path / "d", data, np.column_stack([noise, noise[:, :1]]), uv)
    with pytest.raises(DatasetError, match=r"noise_map\.fits: noise_map has shape \(20, 3\), expected \(K, 2\)"):
        load_dataset(folder)


def test_non_finite_value_names_index_and_value(tmp_path, rng):
    data, noise, uv = arrays(rng)
    data[7, 1] = np.nan
    folder = write_folder(tmp_path / "d", data, noise, uv)
    with pytest.raises(DatasetError, match=r"data\.fits: visibilities\[7, 1\] = nan is not finite"):
        load_dataset(folder)
    data[7, 1] = 0.0
    uv[3, 0] = np.inf
    np.savez(tmp_path / "x.npz", visibilities=data, noise_map=noise, uv_wavelengths=uv)
    with pytest.raises(DatasetError, match=r"x\.npz: uv_wavelengths\[3, 0\] = inf is not finite"):
        load_dataset(tmp_path / "x.npz")


@pytest.mark.parametrize("bad", [-0.0, 0.0, -1.5])
def test_noise_must_be_positive(tmp_path, rng, bad):
    data, noise, uv = arrays(rng)
    noise[17, 1] = bad
    folder = write_folder(tmp_path / "d", data, noise, uv)
    with pytest.raises(DatasetError) as err:
        load_dataset(folder)
    assert str(err.value) == f"noise_map.fits: noise_map[17, 1] = {bad!r} must be > 0"


def test_empty_dataset(tmp_path):
    np.savez(tmp_path / "e.npz", visibilities=np.zeros((0, 2)), noise_map=np.zeros((0, 2)), uv_wavelengths=np.zeros((0, 2)))
    with pytest.raises(DatasetError, match=r"e\.npz: visibilities has K = 0 rows, expected K >= 1"):
        load_dataset(tmp_path / "e.npz")


def test_npz_missing_array_and_unknown_format(tmp_path, rng):
    data, noise, uv = arrays(rng)
    np.savez(tmp_path / "m.npz", visibilities=data, uv_wavelengths=uv)
    with pytest.raises(DatasetError, match=r"m\.npz: missing array noise_map"):
        load_dataset(tmp_path / "m.npz")
    (tmp_path / "thing.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"thing\.txt: unknown dataset format"):
        load_dataset(tmp_path / "thing.txt")


def test_from_arrays_validates(rng):
    data, noise, uv = arrays(rng)
    noise[2, 0] = -3.0
    with pytest.raises(DatasetError, match=r"noise_map\[2, 0\] = -3\.0 must be > 0"):
        Interferometer.from_arrays(data, noise, uv, name="mine")
    with pytest.raises(DatasetError, match=r"mine: visibilities is complex with shape \(20, 2\)"):
        Interferometer.from_arrays(data + 0j, np.abs(noise), uv, name="mine")
