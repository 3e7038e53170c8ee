"""Chunked readers of the PyAutoLens FITS folder, .npz and UVFITS; export to PyAutoLens FITS; simulate --format ms.

References are independent of the readers: load_dataset (whole-file astropy / np.load) for the folder and .npz,
and for UVFITS the arrays the test itself handed to a random-groups writer written here with astropy (AIPS
Memo 117 layout), combined into Stokes I by the recipe's formula in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from wtilde_dask.dataset import DatasetError, load_dataset, sma_dataset_path
from wtilde_dask.io import concatenate_chunks
from wtilde_dask.io.folder import FitsFolderSource, NpzSource, open_folder_or_npz
from wtilde_dask.io.uvfits import UvfitsSource

C = 299_792_458.0


# ---------------------------------------------------------------------------------------------- folder / npz
def _write_folder(folder, vis, noise, uv):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (("data.fits", vis), ("noise_map.fits", noise), ("uv_wavelengths.fits", uv)):
        fits.PrimaryHDU(np.asarray(arr, np.float64)).writeto(folder / name, overwrite=True)
    return folder


@pytest.mark.parametrize("chunk_size", [1, 37, 190, 10_000])
def test_sma_folder_in_chunks_equals_load_dataset(chunk_size):
    ref = load_dataset(sma_dataset_path())
    source = open_folder_or_npz("sma", chunk_size=chunk_size)
    assert isinstance(source, FitsFolderSource) and source.n_visibilities == 190
    assert len(source.chunk_ids()) == -(-190 // chunk_size)
    got = concatenate_chunks(source.read_chunk(c) for c in source.chunk_ids())
    np.testing.assert_array_equal(got.visibilities, ref.visibilities)
    np.testing.assert_array_equal(got.noise_map, ref.noise_map)
    np.testing.assert_array_equal(got.uv_wavelengths, ref.uv_wavelengths)
    rec = source.describe()
    assert rec["format"] == "fits-folder" and rec["n_visibilities"] == 190
    assert rec["files"]["data.fits"]["size"] == (sma_dataset_path() / "data.fits").stat().st_size


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_in_chunks_equals_load_dataset(tmp_path, sma_dataset, compressed):
    path = tmp_path / "d.npz"
    save = np.savez_compressed if compressed else np.savez
    ds = sma_dataset
    # visibilities as (K,) complex, noise_map as (K, 2) real/imag: both forms are accepted
    save(path, visibilities=ds.visibilities, noise_map=np.stack([ds.noise_map.real, ds.noise_map.imag], 1),
         uv_wavelengths=ds.uv_wavelengths)
    source = open_folder_or_npz(path, chunk_size=29)
    assert isinstance(source, NpzSource)
    assert source.memory_mapped is (not compressed)
    got = concatenate_chunks(source)
    ref = load_dataset(path)
    np.testing.assert_array_equal(got.visibilities, ref.visibilities)
    np.testing.assert_array_equal(got.noise_map, ref.noise_map)
    np.testing.assert_array_equal(got.uv_wavelengths, ref.uv_wavelengths)


def test_folder_bad_value_same_message_as_load_dataset(tmp_path, sma_dataset):
    ds = sma_dataset
    noise = np.stack([ds.noise_map.real, ds.noise_map.imag], 1)
    noise[151, 1] = -2.0
    folder = _write_folder(tmp_path / "bad", np.stack([ds.visibilities.real, ds.visibilities.imag], 1), noise,
                           ds.uv_wavelengths)
    with pytest.raises(DatasetError) as whole:
        load_dataset(folder)
    source = FitsFolderSource(folder, chunk_size=40)
    source.read_chunk(source.chunk_ids()[0])  # a clean chunk reads
    with pytest.raises(DatasetError) as chunked:
        for cid in source.chunk_ids():
            source.read_chunk(cid)
    assert str(chunked.value) == str(whole.value)
    assert "noise_map.fits: noise_map[151, 1] = -2.0 must be > 0" in str(chunked.value)


def test_folder_header_errors(tmp_path, sma_dataset):
    ds = sma_dataset
    vis = np.stack([ds.visibilities.real, ds.visibilities.imag], 1)
    folder = _write_folder(tmp_path / "k", vis, np.ones((189, 2)), ds.uv_wavelengths)
    with pytest.raises(DatasetError, match=r"noise_map.fits: noise_map has K = 189 rows but data.fits: visibilities has K = 190"):
        FitsFolderSource(folder)
    folder = _write_folder(tmp_path / "s", vis, np.ones((190, 3)), ds.uv_wavelengths)
    with pytest.raises(DatasetError, match=r"noise_map.fits: noise_map has shape \(190, 3\), expected \(K, 2\)"):
        FitsFolderSource(folder)
    (tmp_path / "k" / "uv_wavelengths.fits").unlink()
    with pytest.raises(DatasetError, match=r"missing file uv_wavelengths.fits"):
        FitsFolderSource(tmp_path / "k")
    with pytest.raises(DatasetError, match=r"missing file uv_wavelengths.fits"):
        load_dataset(tmp_path / "k")
    with pytest.raises(DatasetError, match=r"nothing.npz: missing file"):
        open_folder_or_npz(tmp_path / "nothing.npz")


# ---------------------------------------------------------------------------------------------- UVFITS
def write_uvfits(path, uu_s, vv_s, data, weight, stokes, *, ref_freq, ch_width, if_freqs=None, source=None,
                 sources=None, object_name="TARGET"):
    """A random-groups UVFITS (AIPS Memo 117) written with astropy, float64.

    uu_s, vv_s (n_groups,) seconds; data (n_groups, n_if, n_chan, n_stokes) complex; weight same shape;
    stokes: the AIPS codes of the STOKES axis (evenly spaced); channel c of IF i at
    ref_freq + if_freqs[i] + c * ch_width.
    """
    ng, n_if, n_chan, n_st = data.shape
    arr = np.zeros((ng, 1, 1, n_if, n_chan, n_st, 3))
    arr[:, 0, 0, ..., 0] = data.real
    arr[:, 0, 0, ..., 1] = data.imag
    arr[:, 0, 0, ..., 2] = weight
    names = ["UU---SIN", "VV---SIN", "WW---SIN", "BASELINE", "DATE"]
    pars = [uu_s, vv_s, np.zeros(ng), np.full(ng, 256.0 + 2), np.full(ng, 2.46e6)]
    if source is not None:
        names.append("SOURCE")
        pars.append(np.asarray(source, np.float64))
    groups = fits.GroupData(arr, parnames=names, pardata=pars, bitpix=-64)
    hdu = fits.GroupsHDU(groups)
    h = hdu.header
    cdelt = stokes[1] - stokes[0] if len(stokes) > 1 else -1
    for k, v in [("CTYPE2", "COMPLEX"), ("CRVAL2", 1.0), ("CDELT2", 1.0), ("CRPIX2", 1.0),
                 ("CTYPE3", "STOKES"), ("CRVAL3", float(stokes[0])), ("CDELT3", float(cdelt)), ("CRPIX3", 1.0),
                 ("CTYPE4", "FREQ"), ("CRVAL4", ref_freq), ("CDELT4", ch_width), ("CRPIX4", 1.0),
                 ("CTYPE5", "IF"), ("CRVAL5", 1.0), ("CDELT5", 1.0), ("CRPIX5", 1.0),
                 ("CTYPE6", "RA"), ("CRVAL6", 150.0), ("CTYPE7", "DEC"), ("CRVAL7", 2.0), ("OBJECT", object_name)]:
        h[k] = v
    hdus = [hdu]
    if_freqs = np.zeros(n_if) if if_freqs is None else np.asarray(if_freqs, np.float64)
    fq = fits.BinTableHDU.from_columns([
        fits.Column("FRQSEL", "1J", array=[1]),
        fits.Column("IF FREQ", f"{n_if}D", array=if_freqs.reshape(1, n_if)),
        fits.Column("CH WIDTH", f"{n_if}E", array=np.full((1, n_if), ch_width)),
        fits.Column("TOTAL BANDWIDTH", f"{n_if}E", array=np.full((1, n_if), ch_width * n_chan)),
        fits.Column("SIDEBAND", f"{n_if}J", array=np.ones((1, n_if))),
    ], name="AIPS FQ")
    hdus.append(fq)
    if sources is not None:
        ids, snames = zip(*sources.items())
        hdus.append(fits.BinTableHDU.from_columns([
            fits.Column("ID. NO.", "1J", array=list(ids)), fits.Column("SOURCE", "16A", array=list(snames)),
        ], name="AIPS SU"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _uvfits_case(rng, ng=23, n_if=2, n_chan=5, stokes=(-5, -6, -7, -8)):
    data = rng.normal(size=(ng, n_if, n_chan, len(stokes))) + 1j * rng.normal(size=(ng, n_if, n_chan, len(stokes)))
    weight = rng.uniform(0.5, 4.0, size=data.shape)
    last_if, last_chan, last_hand = n_if - 1, n_chan - 1, min(1, len(stokes) - 1)
    weight[3, 0, 1, 0] = -1.0  # flagged first hand
    weight[5, last_if, last_chan, last_hand] *= -1  # flagged second hand
    weight[7, last_if, 0, 0] = 0.0  # zero weight
    weight[8, 0, 0, last_hand] = np.nan  # not finite
    data[9, 0, last_chan - 1, 0] = np.nan + 0j  # bad data with a positive weight
    uu = rng.uniform(-2e-6, 2e-6, ng)
    vv = rng.uniform(-2e-6, 2e-6, ng)
    return uu, vv, data, weight


def _expected_uvfits(uu, vv, data, weight, freqs, hands, spw, channels):
    """Stokes I in the recipe's order (IF, then channels, then groups), flagged / bad dropped, as lists."""
    uv, vis, noise = [], [], []
    n_flag = n_bad = 0
    for i in spw:
        for c in channels:
            for g in range(len(uu)):
                w = [weight[g, i, c, h] for h in hands]
                d = [data[g, i, c, h] for h in hands]
                if any(x < 0 for x in w):
                    n_flag += 1
                    continue
                if not all(x > 0 and np.isfinite(x) for x in w) or not all(np.isfinite(x) for x in d):
                    n_bad += 1
                    continue
                f = freqs[i][c]
                uv.append((uu[g] * f, vv[g] * f))
                if len(hands) == 2:
                    vis.append(0.5 * ((d[0].real + d[1].real) + 1j * (d[0].imag + d[1].imag)))
                    s = 0.5 * np.sqrt(1.0 / w[0] + 1.0 / w[1])
                else:
                    vis.append(d[0])
                    s = 1.0 / np.sqrt(w[0])
                noise.append(s + 1j * s)
    return np.array(uv), np.array(vis), np.array(noise), n_flag, n_bad


@pytest.mark.parametrize("chunk_size", [5, 13, 10_000])
def test_uvfits_linear_feeds_selection_and_flags(tmp_path, rng, chunk_size):
    uu, vv, data, weight = _uvfits_case(rng)
    ref_freq, width, if_freqs = 230.0e9, 15.6e6, [0.0, 2.0e9]
    path = write_uvfits(tmp_path / "lin.uvfits", uu, vv, data, weight, [-5, -6, -7, -8], ref_freq=ref_freq,
                        ch_width=width, if_freqs=if_freqs)
    freqs = [[ref_freq + if_freqs[i] + c * width for c in range(5)] for i in range(2)]
    source = UvfitsSource(path, spw="1,0", channels="0~4", chunk_size=chunk_size)
    assert source.stokes_used == ["XX", "YY"]
    got = concatenate_chunks(source.read_chunk(c) for c in source.chunk_ids())
    uv, vis, noise, n_flag, n_bad = _expected_uvfits(uu, vv, data, weight, freqs, (0, 1), [1, 0], range(5))
    assert (got.n_flagged, got.n_bad_weight) == (n_flag, n_bad) == (2, 3)
    np.testing.assert_array_equal(got.uv_wavelengths, uv)
    np.testing.assert_array_equal(got.visibilities, vis)
    np.testing.assert_array_equal(got.noise_map, noise)
    # order="rows": one pass over the file, the same visibilities (W-tilde / dirty-image sums do not care)
    rows = concatenate_chunks(UvfitsSource(path, spw="1,0", order="rows", chunk_size=chunk_size))
    assert (rows.n_flagged, rows.n_bad_weight) == (2, 3)
    perm_ref = np.lexsort((got.visibilities.imag, got.visibilities.real))
    perm = np.lexsort((rows.visibilities.imag, rows.visibilities.real))
    np.testing.assert_array_equal(rows.visibilities[perm], got.visibilities[perm_ref])
    np.testing.assert_array_equal(rows.uv_wavelengths[perm], got.uv_wavelengths[perm_ref])
    # a channel range, one IF
    sub = concatenate_chunks(UvfitsSource(path, spw=[0], channels="1~3", chunk_size=chunk_size))
    uv, vis, noise, _, _ = _expected_uvfits(uu, vv, data, weight, freqs, (0, 1), [0], range(1, 4))
    np.testing.assert_array_equal(sub.uv_wavelengths, uv)
    np.testing.assert_array_equal(sub.visibilities, vis)


@pytest.mark.parametrize("stokes, hands, used", [((-1, -2), (0, 1), ["RR", "LL"]), ((-6,), (0,), ["YY"]),
                                                  ((1,), (0,), ["I"])])
def test_uvfits_circular_single_hand_and_stokes_i(tmp_path, rng, stokes, hands, used):
    uu, vv, data, weight = _uvfits_case(rng, n_if=1, n_chan=3, stokes=stokes)
    path = write_uvfits(tmp_path / "c.uvfits", uu, vv, data, weight, list(stokes), ref_freq=100e9, ch_width=-2e6)
    source = UvfitsSource(path, chunk_size=7)
    assert source.stokes_used == used
    got = concatenate_chunks(source)
    freqs = [[100e9 - 2e6 * c for c in range(3)]]
    uv, vis, noise, n_flag, n_bad = _expected_uvfits(uu, vv, data, weight, freqs, hands, [0], range(3))
    assert (got.n_flagged, got.n_bad_weight) == (n_flag, n_bad)
    np.testing.assert_array_equal(got.uv_wavelengths, uv)
    np.testing.assert_array_equal(got.visibilities, vis)
    np.testing.assert_array_equal(got.noise_map, noise)


def test_uvfits_field_selection(tmp_path, rng):
    uu, vv, data, weight = _uvfits_case(rng, n_if=1, n_chan=2, stokes=(-5, -6))
    src_ids = np.where(np.arange(len(uu)) % 3 == 0, 1, 2)
    path = write_uvfits(tmp_path / "m.uvfits", uu, vv, data, weight, [-5, -6], ref_freq=100e9, ch_width=1e6,
                        source=src_ids, sources={1: "J1000+0200", 2: "GAMA567624"})
    by_name = concatenate_chunks(UvfitsSource(path, field="GAMA567624", chunk_size=8))
    by_id = concatenate_chunks(UvfitsSource(path, field=2, chunk_size=8))
    np.testing.assert_array_equal(by_name.visibilities, by_id.visibilities)
    keep = src_ids == 2
    freqs = [[100e9, 100e9 + 1e6]]
    uv, vis, _, _, _ = _expected_uvfits(uu[keep], vv[keep], data[keep], weight[keep], freqs, (0, 1), [0], range(2))
    np.testing.assert_array_equal(by_name.uv_wavelengths, uv)
    np.testing.assert_array_equal(by_name.visibilities, vis)
    with pytest.raises(DatasetError, match=r"m.uvfits: field 'NGC1' not found in the AIPS SU table \(sources: 1:J1000\+0200, 2:GAMA567624\)"):
        UvfitsSource(path, field="NGC1")


def test_uvfits_bad_inputs(tmp_path, rng):
    uu, vv, data, weight = _uvfits_case(rng, n_if=1, n_chan=2, stokes=(-7, -8))
    cross = write_uvfits(tmp_path / "cross.uvfits", uu, vv, data, weight, [-7, -8], ref_freq=1e11, ch_width=1e6)
    with pytest.raises(DatasetError, match=r"cross.uvfits: STOKES axis holds XY, YX: no parallel hand"):
        UvfitsSource(cross)
    uu, vv, data, weight = _uvfits_case(rng, n_if=2, n_chan=2, stokes=(-5, -6))
    ok = write_uvfits(tmp_path / "ok.uvfits", uu, vv, data, weight, [-5, -6], ref_freq=1e11, ch_width=1e6)
    with pytest.raises(DatasetError, match=r"ok.uvfits: column 'CORRECTED_DATA' does not exist"):
        UvfitsSource(ok, column="CORRECTED_DATA")
    with pytest.raises(DatasetError, match=r"ok.uvfits: spw 2 does not exist \(the file has IFs 0..1\)"):
        UvfitsSource(ok, spw=[0, 2])
    with pytest.raises(DatasetError, match=r"ok.uvfits: channels '1~5' is outside the 2 channels"):
        UvfitsSource(ok, channels="1~5")
    with pytest.raises(DatasetError, match=r"ok.uvfits: field 'NGC1' not found: a single-source file \(OBJECT = 'TARGET'\)"):
        UvfitsSource(ok, field="NGC1")
    from wtilde_dask.io import open_visibilities

    assert isinstance(open_visibilities(ok, spw="1"), UvfitsSource)  # dispatch on the suffix
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image)
    with pytest.raises(DatasetError, match=r"image.fits: not a UVFITS file"):
        UvfitsSource(image)


# ---------------------------------------------------------------------------------------------- export-fits
from wtilde_dask.io.export import ExportError, export_fits  # noqa: E402


def test_export_fits_round_trip_from_folder(tmp_path, sma_dataset):
    source = open_folder_or_npz("sma", chunk_size=47)
    record = export_fits(source, tmp_path / "out", log=lambda *a: None)
    assert record["n_visibilities"] == 190
    back = load_dataset(tmp_path / "out")
    np.testing.assert_array_equal(back.visibilities, sma_dataset.visibilities)
    np.testing.assert_array_equal(back.noise_map, sma_dataset.noise_map)
    np.testing.assert_array_equal(back.uv_wavelengths, sma_dataset.uv_wavelengths)
    with fits.open(tmp_path / "out" / "data.fits") as hdul:  # a plain (K, 2) float64 image, as PyAutoLens reads it
        assert hdul[0].data.shape == (190, 2) and hdul[0].header["BITPIX"] == -64
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.fits", "export.json", "noise_map.fits",
                                                                   "uv_wavelengths.fits"]
    with pytest.raises(ExportError, match=r"already holds data.fits"):
        export_fits(source, tmp_path / "out", log=lambda *a: None)


def _average_reference(uu, vv, data, weight, freqs, spw, n_avg):
    """Channel averaging written out: per IF, row, group of n_avg channels, kept channels only."""
    uv, vis, noise = [], [], []
    for i in spw:
        n_chan = len(freqs[i])
        for c0 in range(0, n_chan, n_avg):
            for g in range(len(uu)):
                chans = range(c0, min(c0 + n_avg, n_chan))
                swr = swi = sre = sim = 0.0
                kept = 0
                for c in chans:
                    w0, w1 = weight[g, i, c, 0], weight[g, i, c, 1]
                    d0, d1 = data[g, i, c, 0], data[g, i, c, 1]
                    if not (w0 > 0 and w1 > 0 and np.isfinite(w0) and np.isfinite(w1) and np.isfinite(d0)
                            and np.isfinite(d1)):
                        continue
                    s = 0.5 * np.sqrt(1.0 / w0 + 1.0 / w1)
                    w = 1.0 / s**2
                    swr += w
                    swi += w
                    sre += w * 0.5 * (d0.real + d1.real)
                    sim += w * 0.5 * (d0.imag + d1.imag)
                    kept += 1
                if not kept:
                    continue
                f = np.mean([freqs[i][c] for c in chans])
                uv.append((uu[g] * f, vv[g] * f))
                vis.append(sre / swr + 1j * sim / swi)
                noise.append(1 / np.sqrt(swr) + 1j / np.sqrt(swi))
    return np.array(uv), np.array(vis), np.array(noise)


def test_export_fits_average_channels_from_uvfits(tmp_path, rng):
    uu, vv, data, weight = _uvfits_case(rng, n_if=2, n_chan=5, stokes=(-5, -6))
    weight[11, 0, 0:2, 0] = -1.0  # a whole group of two channels flagged: the averaged visibility is dropped
    ref_freq, width, if_freqs = 230.0e9, 15.6e6, [0.0, 2.0e9]
    path = write_uvfits(tmp_path / "a.uvfits", uu, vv, data, weight, [-5, -6], ref_freq=ref_freq, ch_width=width,
                        if_freqs=if_freqs)
    freqs = [[ref_freq + if_freqs[i] + c * width for c in range(5)] for i in range(2)]
    record = export_fits(UvfitsSource(path, chunk_size=20), tmp_path / "avg", average_channels=2,
                         log=lambda *a: None)
    got = load_dataset(tmp_path / "avg")
    uv, vis, noise = _average_reference(uu, vv, data, weight, freqs, [0, 1], 2)
    # 2 IFs x 23 rows x 3 groups (2+2+1 channels), less row 11 IF 0 group 0 and row 5 IF 1 group 2 (its one
    # channel flagged)
    assert record["n_visibilities"] == got.n_visibilities == len(vis) == 2 * 23 * 3 - 2
    np.testing.assert_allclose(got.uv_wavelengths, uv, rtol=1e-15, atol=0)
    np.testing.assert_allclose(got.visibilities, vis, rtol=1e-13, atol=0)
    np.testing.assert_allclose(got.noise_map, noise, rtol=1e-14, atol=0)
    # averaging 1 channel is the plain export
    export_fits(UvfitsSource(path), tmp_path / "one", average_channels=1, log=lambda *a: None)
    plain = concatenate_chunks(UvfitsSource(path))
    np.testing.assert_array_equal(load_dataset(tmp_path / "one").visibilities, plain.visibilities)


def test_export_fits_leaves_nothing_on_error(tmp_path, rng, sma_dataset):
    uu, vv, data, weight = _uvfits_case(rng, n_if=1, n_chan=2, stokes=(-5, -6))
    path = write_uvfits(tmp_path / "flagged.uvfits", uu, vv, data, -np.abs(weight), [-5, -6], ref_freq=1e11,
                        ch_width=1e6)
    with pytest.raises(ExportError, match=r"flagged.uvfits: the selection leaves no visibility \(46 flagged"):
        export_fits(UvfitsSource(path, chunk_size=10), tmp_path / "o1", log=lambda *a: None)
    assert list((tmp_path / "o1").iterdir()) == []
    # a bad value in the third chunk of a folder: the error of load_dataset, and no file left behind
    ds = sma_dataset
    noise = np.stack([ds.noise_map.real, ds.noise_map.imag], 1)
    noise[101, 0] = 0.0
    folder = _write_folder(tmp_path / "bad", np.stack([ds.visibilities.real, ds.visibilities.imag], 1), noise,
                           ds.uv_wavelengths)
    with pytest.raises(DatasetError, match=r"noise_map.fits: noise_map\[101, 0\] = 0.0 must be > 0"):
        export_fits(FitsFolderSource(folder, chunk_size=50), tmp_path / "o2", log=lambda *a: None)
    assert list((tmp_path / "o2").iterdir()) == []
    with pytest.raises(ExportError, match=r"average_channels = 2 needs a source with channels"):
        export_fits(FitsFolderSource(folder), tmp_path / "o3", average_channels=2, log=lambda *a: None)
    assert list((tmp_path / "o3").iterdir()) == []


# ---------------------------------------------------------------------------------------------- MS -> FITS
def _write_ms(path, rng, corr_types, n_rows=60, chans=(7, 5)):
    """A small multi-spw, partly flagged Measurement Set with known contents (simulate/ms_writer)."""
    from wtilde_dask.simulate.ms_writer import MeasurementSetWriter

    freqs = [230e9 + 31.25e6 * np.arange(n) + 2e9 * s for s, n in enumerate(chans)]
    n_corr = len(corr_types)
    with MeasurementSetWriter(path, chan_freqs=freqs, corr_types=corr_types, field_names=["GAMA567624"],
                              n_antennas=8) as ms:
        for s, n_chan in enumerate(chans):
            uvw = rng.uniform(-400, 400, (n_rows, 3))
            data = rng.normal(size=(n_rows, n_chan, n_corr)) + 1j * rng.normal(size=(n_rows, n_chan, n_corr))
            flag = rng.uniform(size=data.shape) < 0.1
            flag_row = np.zeros(n_rows, bool)
            flag_row[3] = True
            sigma = rng.uniform(0.5, 2.0, (n_rows, n_corr))
            ms.write_rows(s, uvw=uvw, data=data, flag=flag, flag_row=flag_row, sigma=sigma)
    return path


@pytest.mark.parametrize("corr_types", [["XX", "YY"], ["RR", "RL", "LR", "LL"]])
def test_export_fits_from_ms_round_trip_equals_recipe(tmp_path, rng, corr_types):
    """MS -> export_fits -> load_dataset equals the MS reader's arrays and the independent python-casacore
    recipe bit for bit (two windows, flags, linear and circular feeds)."""
    from wtilde_dask.io.ms import MeasurementSetSource

    path = _write_ms(tmp_path / "obs.ms", rng, corr_types)
    source = MeasurementSetSource(path, chunk_size=100)
    from_ms = concatenate_chunks(source)
    assert from_ms.n_flagged > 0
    record = export_fits(MeasurementSetSource(path, chunk_size=77), tmp_path / "fits", log=lambda *a: None)
    assert record["n_visibilities"] == from_ms.n_visibilities and record["n_flagged"] == from_ms.n_flagged
    assert record["source"]["format"] == "measurement-set"
    ds = load_dataset(tmp_path / "fits")
    np.testing.assert_array_equal(ds.uv_wavelengths, from_ms.uv_wavelengths)
    np.testing.assert_array_equal(ds.visibilities, from_ms.visibilities)
    np.testing.assert_array_equal(ds.noise_map, from_ms.noise_map)
    # the exported folder against the independent python-casacore recipe of tests/test_io_ms.py (not against
    # the reader that wrote it): bit for bit, and the weights the W-tilde uses are 1 / sigma^2 of the recipe
    from test_io_ms import recipe

    uv, vis, noise, n_flagged, _ = recipe(path, field_ids=[0], spws=[0, 1])
    assert record["n_flagged"] == n_flagged
    np.testing.assert_array_equal(ds.uv_wavelengths, uv)
    np.testing.assert_array_equal(ds.visibilities, vis)
    np.testing.assert_array_equal(ds.noise_map, noise)
    np.testing.assert_allclose(ds.weights_real, 1.0 / noise.real**2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ds.weights_imag, 1.0 / noise.imag**2, rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------------------------- export-pyautoarray
@pytest.mark.peer
def test_export_pyautoarray_sparse_terms_equal_the_peer(tmp_path, sma_dataset):
    """The SparseTerms .npz written beside the kernel equals PyAutoArray's own sparse_terms_from_chunks over the
    visibilities, and Interferometer.from_sparse_terms accepts it (a dataset with no visibilities)."""
    import autoarray as aa
    from autoarray.inversion.inversion.interferometer import inversion_interferometer_util as util

    import wtilde_dask
    from wtilde_dask.cli import main
    from wtilde_dask.cli.lattice import load_sparse_terms
    from wtilde_dask.grid import ImageGrid

    grid = ImageGrid.circular((24, 24), (0.1, 0.1), 0.9, centre=(0.1, -0.05))
    store = tmp_path / "w.zarr"
    wtilde_dask.compute(sma_dataset, grid, store, method="lattice", block_size=64)
    assert main(["export-pyautoarray", str(store), str(tmp_path / "op.npy")]) == 0
    terms = load_sparse_terms(tmp_path / "op_sparse_terms.npz")
    mask = aa.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    ds = sma_dataset
    chunks = [(ds.uv_wavelengths[i:i + 64], ds.visibilities[i:i + 64], ds.noise_map[i:i + 64]) for i in range(0, 190, 64)]
    peer = util.sparse_terms_from_chunks(chunks, real_space_mask=mask)
    w_sum = float(np.sum(ds.weights_real))
    assert terms.nufft_precision_operator.shape == peer.nufft_precision_operator.shape
    assert np.abs(terms.nufft_precision_operator - peer.nufft_precision_operator).max() < 1e-11 * w_sum
    scale = np.abs(peer.dirty_image_native).max()
    assert np.abs(terms.dirty_image_native - peer.dirty_image_native).max() < 1e-10 * scale
    assert np.abs(terms.dirty_beam_native - peer.dirty_beam_native).max() < 1e-10 * w_sum
    assert terms.n_vis == peer.n_vis == 190
    for name in ("sum_weights", "data_term", "noise_normalization"):
        assert getattr(terms, name) == pytest.approx(getattr(peer, name), rel=1e-13, abs=0), name
    dataset = aa.Interferometer.from_sparse_terms(terms, real_space_mask=mask)
    assert dataset.is_array_free
    assert dataset.sparse_operator.data_term == pytest.approx(peer.data_term, rel=1e-13)


# ---------------------------------------------------------------------------------------------- export-fits CLI
REAL_MS = __import__("pathlib").Path(__file__).parent / "data" / "ms" / "alma_gama567624_1bl.ms"


def _recipe_average(ms_path, n_avg, spw_rows=None):
    """The CASA recipe plus channel averaging written out with python-casacore, for a one-window XX/YY set:
    I = (XX + YY) / 2, sigma = 0.5 sqrt(sx^2 + sy^2) from SIGMA, flags of either hand or the row drop a channel,
    groups of n_avg channels averaged with weights 1/sigma^2, uv at the group's mean frequency, channel-major."""
    from casacore import tables

    with tables.table(str(ms_path), ack=False) as ms:
        data = ms.getcol("DATA").astype(np.complex128)
        flag = ms.getcol("FLAG")
        flag_row = ms.getcol("FLAG_ROW")
        sigma = ms.getcol("SIGMA").astype(np.float64)
        uvw = ms.getcol("UVW")
    with tables.table(str(ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        freq = spw.getcell("CHAN_FREQ", 0)
    vis = (data[:, :, 0] + data[:, :, 1]) / 2  # (rows, chan)
    s = 0.5 * np.sqrt(sigma[:, 0] ** 2 + sigma[:, 1] ** 2)
    keep = ~(flag[:, :, 0] | flag[:, :, 1] | flag_row[:, None])
    uv, out_vis, out_noise = [], [], []
    for c0 in range(0, freq.size, n_avg):
        chans = list(range(c0, min(c0 + n_avg, freq.size)))
        f = sum(freq[c] for c in chans) / len(chans)
        for r in range(vis.shape[0]):
            kept = [c for c in chans if keep[r, c]]
            if not kept:
                continue
            w = 1.0 / s[r] ** 2
            sw = w * len(kept)
            out_vis.append(sum(w * vis[r, c].real for c in kept) / sw + 1j * sum(w * vis[r, c].imag for c in kept) / sw)
            out_noise.append((1 + 1j) / np.sqrt(sw))
            uv.append(((uvw[r, 0] * f) / 299_792_458.0, (uvw[r, 1] * f) / 299_792_458.0))
    return np.array(uv), np.array(out_vis), np.array(out_noise)


def test_export_fits_cli_real_alma_ms(tmp_path):
    """wtilde export-fits on the real ALMA set: the FITS folder equals the MS reader's arrays; with
    --average-channels 4 it equals the recipe + averaging written out in this test."""
    from wtilde_dask.cli import main
    from wtilde_dask.io import open_visibilities

    assert main(["export-fits", str(REAL_MS), str(tmp_path / "plain"), "--field", "GAMA567624", "-q"]) == 0
    ref = concatenate_chunks(open_visibilities(REAL_MS, field="GAMA567624"))
    ds = load_dataset(tmp_path / "plain")
    assert ds.n_visibilities == ref.n_visibilities == 40 * 11
    np.testing.assert_array_equal(ds.visibilities, ref.visibilities)
    np.testing.assert_array_equal(ds.noise_map, ref.noise_map)
    np.testing.assert_array_equal(ds.uv_wavelengths, ref.uv_wavelengths)

    assert main(["export-fits", str(REAL_MS), str(tmp_path / "avg"), "--average-channels", "4", "--chunk-size", "50",
                 "-q"]) == 0
    avg = load_dataset(tmp_path / "avg")
    uv, vis, noise = _recipe_average(REAL_MS, 4)
    assert avg.n_visibilities == len(vis) == 40 * 3
    np.testing.assert_allclose(avg.uv_wavelengths, uv, rtol=1e-15, atol=0)
    np.testing.assert_allclose(avg.visibilities, vis, rtol=1e-13, atol=0)
    np.testing.assert_allclose(avg.noise_map, noise, rtol=1e-14, atol=0)


def test_export_fits_cli_average_generated_ms_with_flags(tmp_path, rng):
    """--average-channels on a generated, partly flagged XX/YY set (several windows; a channel range) equals the
    written-out recipe + averaging, window by window; bad selections exit 2 and leave no files."""
    from wtilde_dask.cli import main

    path = _write_ms(tmp_path / "obs.ms", rng, ["XX", "YY"], n_rows=30, chans=(7,))
    assert main(["export-fits", str(path), str(tmp_path / "avg"), "--average-channels", "3", "--chunk-size", "40",
                 "-q"]) == 0
    uv, vis, noise = _recipe_average(path, 3)
    got = load_dataset(tmp_path / "avg")
    np.testing.assert_allclose(got.uv_wavelengths, uv, rtol=1e-15, atol=0)
    np.testing.assert_allclose(got.visibilities, vis, rtol=1e-13, atol=0)
    np.testing.assert_allclose(got.noise_map, noise, rtol=1e-14, atol=0)
    assert main(["export-fits", str(path), str(tmp_path / "bad"), "--spw", "7", "-q"]) == 2
    assert main(["export-fits", str(path), str(tmp_path / "bad"), "--column", "CORRECTED_DATA", "-q"]) == 2
    assert main(["export-fits", str(path), str(tmp_path / "bad"), "--average-channels", "0", "-q"]) == 2
    assert not (tmp_path / "bad").exists() or list((tmp_path / "bad").iterdir()) == []
