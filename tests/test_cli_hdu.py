"""`wtilde compute FOLDER --hdu N|NAME`: a PyAutoLens FITS folder whose (K, 2) arrays sit in another HDU than the
first gives the same store as the plain folder; an HDU on a Measurement Set is refused naming the option."""

from __future__ import annotations

import pathlib

import numpy as np
from astropy.io import fits

from wtilde_dask.cli import main
from wtilde_dask.store import WTildeStore

FILES = ("data.fits", "noise_map.fits", "uv_wavelengths.fits")


def _folders(tmp_path, rng):
    k = 300
    arrays = {"data.fits": rng.normal(size=(k, 2)), "noise_map.fits": rng.uniform(0.5, 2.0, (k, 2)),
              "uv_wavelengths.fits": rng.uniform(-4e4, 4e4, (k, 2))}
    plain, ext = tmp_path / "plain", tmp_path / "ext"
    plain.mkdir(), ext.mkdir()
    for name, a in arrays.items():
        fits.PrimaryHDU(a).writeto(plain / name)
        # primary HDU holds a decoy of the wrong shape; the arrays are in extension 1 named VIS
        fits.HDUList([fits.PrimaryHDU(np.zeros(3)), fits.ImageHDU(a, name="VIS")]).writeto(ext / name)
    return plain, ext


def _compute(dataset, out, *extra):
    argv = ["compute", str(dataset), "--out", str(out), "--shape", "12", "12", "--pixel-scale", "0.2",
            "--mask-radius", "1.0", "--workers", "1", *extra]
    return main(argv)


def test_hdu_index_and_name_read_the_extension(tmp_path):
    plain, ext = _folders(tmp_path, np.random.default_rng(3))
    assert _compute(plain, tmp_path / "plain.zarr") == 0
    assert _compute(ext, tmp_path / "by_index.zarr", "--hdu", "1") == 0
    assert _compute(ext, tmp_path / "by_name.zarr", "--hdu", "VIS") == 0
    ref = WTildeStore.open(tmp_path / "plain.zarr")
    for name in ("by_index.zarr", "by_name.zarr"):
        st = WTildeStore.open(tmp_path / name)
        np.testing.assert_array_equal(st.read_array("dirty_image"), ref.read_array("dirty_image"))
        np.testing.assert_array_equal(st.to_dask().compute(), ref.to_dask().compute())


def test_hdu_without_it_reads_the_decoy_and_is_refused(tmp_path, capsys):
    _, ext = _folders(tmp_path, np.random.default_rng(4))
    assert _compute(ext, tmp_path / "decoy.zarr") == 2  # HDU 0 holds a (3,) array, not (K, 2)
    assert not (tmp_path / "decoy.zarr").exists()


def test_hdu_on_a_measurement_set_is_refused(tmp_path, capsys):
    ms = pathlib.Path(__file__).parent / "data" / "ms" / "alma_gama567624_1bl.ms"
    assert _compute(ms, tmp_path / "ms.zarr", "--hdu", "1") == 2
    err = capsys.readouterr().err
    assert "hdu 1" in err and "FITS folder only" in err
    assert not (tmp_path / "ms.zarr").exists()
