"""The Measurement Set reader on a second real set: a VLA observation with two spectral windows and flagged rows.

tests/data/vla_tdem0003 (see its SOURCE.md): EVLA, one calibrator field, two windows of 64 channels near 36.3 and
36.4 GHz whose rows alternate (DATA_DESC_ID 0, 1, 0, 1, ...), circular feeds RR RL LR LL, 108 of the 2828 rows
flagged (FLAG_ROW and every FLAG cell of the row; 54 in each window, not the same baselines and times), SIGMA zero
on exactly those rows, and a WEIGHT_SPECTRUM that is not 1 / SIGMA**2. Written by CASA's importuvfits, not by this
project.

The expected arrays come from ``expected`` below, written here from the Measurement Set definition with
python-casacore alone: whole columns read once with ``getcol``, rows of a window picked with a numpy mask on
DATA_DESC_ID (no TaQL, no row runs, no chunks), Stokes I = (RR + LL) / 2 from the POLARIZATION row's CORR_TYPE,
sigma_I = sqrt(sigma_RR**2 + sigma_LL**2) / 2, uv = UVW * CHAN_FREQ / c, a visibility dropped when FLAG of either
hand or FLAG_ROW is set, (channel, row) flattened channel-major and the windows concatenated in the order asked
for. Nothing is mocked; the CLI runs against a real LocalCluster and a real Zarr store in tmp_path.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from casacore.tables import table

from wtilde_dask.cli import main
from wtilde_dask.io import concatenate_chunks, open_visibilities
from wtilde_dask.store import WTildeStore

VLA_MS = pathlib.Path(__file__).parent / "data" / "vla_tdem0003" / "day2_TDEM0003_10s_norx_1scan.ms"
C = 299792458.0  # m / s
RR, LL = 5, 8  # CORR_TYPE codes (casacore Stokes enum)


def _columns(path):
    with table(str(path), ack=False) as t:
        cols = {name: t.getcol(name) for name in
                ("DATA_DESC_ID", "FIELD_ID", "UVW", "DATA", "FLAG", "FLAG_ROW", "SIGMA", "WEIGHT", "WEIGHT_SPECTRUM")}
    with table(str(path / "DATA_DESCRIPTION"), ack=False) as t:
        cols["dd_spw"], cols["dd_pol"] = t.getcol("SPECTRAL_WINDOW_ID"), t.getcol("POLARIZATION_ID")
    with table(str(path / "SPECTRAL_WINDOW"), ack=False) as t:
        cols["chan_freq"] = [t.getcell("CHAN_FREQ", i) for i in range(t.nrows())]
    with table(str(path / "POLARIZATION"), ack=False) as t:
        cols["corr_type"] = [list(t.getcell("CORR_TYPE", i)) for i in range(t.nrows())]
    return cols


COLS = _columns(VLA_MS)


def expected(spws=(0, 1), channels=None, noise="SIGMA"):
    """(uv (K, 2), vis (K,), noise (K,), n_flagged, n_bad) for windows ``spws`` in that order.

    channels: {spw: index array} (default all channels). noise: SIGMA, WEIGHT_SPECTRUM or WEIGHT.
    """
    uv_out, vis_out, noise_out, n_flagged, n_bad = [], [], [], 0, 0
    for spw in spws:
        (ddid,) = np.flatnonzero(COLS["dd_spw"] == spw)
        rows = COLS["DATA_DESC_ID"] == ddid
        corr = COLS["corr_type"][COLS["dd_pol"][ddid]]
        a, b = corr.index(RR), corr.index(LL)
        freq = COLS["chan_freq"][spw]
        chans = np.arange(freq.size) if channels is None else np.asarray(channels[spw])
        freq = freq[chans]
        data = COLS["DATA"][rows][:, chans, :]  # (n_row, n_chan, n_corr) as stored
        flag = COLS["FLAG"][rows][:, chans, :]
        n_row = data.shape[0]
        if noise == "SIGMA":
            s = COLS["SIGMA"][rows].astype(np.float64)  # (n_row, n_corr): one sigma per correlation
            sig_a = np.broadcast_to(s[:, None, a], (n_row, chans.size))
            sig_b = np.broadcast_to(s[:, None, b], (n_row, chans.size))
        else:
            w = (COLS["WEIGHT_SPECTRUM"][rows][:, chans, :] if noise == "WEIGHT_SPECTRUM"
                 else np.broadcast_to(COLS["WEIGHT"][rows][:, None, :], (n_row, chans.size, len(corr))))
            with np.errstate(divide="ignore"):
                sig = 1.0 / np.sqrt(w.astype(np.float64))
            sig_a, sig_b = sig[:, :, a], sig[:, :, b]
        # channel-major: transpose (row, chan) -> (chan, row) before flattening
        vis = ((data[:, :, a].astype(np.complex128) + data[:, :, b].astype(np.complex128)) / 2).T
        sigma_i = (0.5 * np.sqrt(sig_a**2 + sig_b**2)).T
        dropped = (flag[:, :, a] | flag[:, :, b] | COLS["FLAG_ROW"][rows][:, None]).T
        bad = ~((sig_a > 0) & np.isfinite(sig_a) & (sig_b > 0) & np.isfinite(sig_b)).T & ~dropped
        keep = (~dropped & ~bad).reshape(-1)
        uvw = COLS["UVW"][rows]
        uv = (uvw[None, :, :2] * freq[:, None, None]) / C  # (n_chan, n_row, 2)
        uv_out.append(uv.reshape(-1, 2)[keep])
        vis_out.append(vis.reshape(-1)[keep])
        noise_out.append(sigma_i.reshape(-1)[keep] * (1 + 1j))
        n_flagged += int(dropped.sum())
        n_bad += int(bad.sum())
    return np.concatenate(uv_out), np.concatenate(vis_out), np.concatenate(noise_out), n_flagged, n_bad


def assert_equal(got, want):
    uv, vis, noise, n_flagged, n_bad = want
    assert got.uv_wavelengths.dtype == np.float64 and got.visibilities.dtype == np.complex128
    np.testing.assert_array_equal(got.uv_wavelengths, uv)
    np.testing.assert_array_equal(got.visibilities, vis)
    np.testing.assert_array_equal(got.noise_map, noise)
    assert (got.n_flagged, got.n_bad_weight) == (n_flagged, n_bad)


# ---------------------------------------------------------------------------------------------- the file itself
def test_the_file_has_two_windows_in_use_and_flagged_rows():
    """What the other tests rely on, read from the tables (a guard that the data are what SOURCE.md says)."""
    assert len(COLS["chan_freq"]) == 2 and [f.size for f in COLS["chan_freq"]] == [64, 64]
    assert np.array_equal(np.unique(COLS["DATA_DESC_ID"]), [0, 1]) and np.all(COLS["FIELD_ID"] == 0)
    assert np.array_equal(COLS["DATA_DESC_ID"][:6], [0, 1, 0, 1, 0, 1])  # interleaved: row runs of length one
    assert COLS["corr_type"] == [[5, 6, 7, 8]]  # RR RL LR LL
    flag_row, flag, dd = COLS["FLAG_ROW"], COLS["FLAG"], COLS["DATA_DESC_ID"]
    assert int(flag_row.sum()) == 108 and [int(flag_row[dd == k].sum()) for k in (0, 1)] == [54, 54]
    assert np.array_equal(flag.any(axis=(1, 2)), flag_row) and np.array_equal(flag.all(axis=(1, 2)), flag_row)
    assert np.array_equal((COLS["SIGMA"] == 0).any(axis=1), flag_row)  # zero sigma only where flagged


# ---------------------------------------------------------------------------------------------- reader vs recipe
@pytest.mark.parametrize("chunk_size", [1_000_000, 5_000, 700])
def test_both_windows_equal_the_recipe_and_flagged_rows_are_dropped(chunk_size):
    source = open_visibilities(VLA_MS, chunk_size=chunk_size)
    chunks = [source.read_chunk(c) for c in source.chunk_ids()]
    assert max(c.n_visibilities + c.n_flagged + c.n_bad_weight for c in chunks) <= chunk_size
    got = concatenate_chunks(chunks)
    assert_equal(got, expected())
    # 1414 rows per window, 54 of them flagged, 64 channels each; zero sigma on flagged rows counts as flagged
    assert got.n_visibilities == 2 * (1414 - 54) * 64
    assert (got.n_flagged, got.n_bad_weight) == (108 * 64, 0)
    record = source.describe()
    assert record["spw_ids"] == [0, 1] and record["noise_column"] == "SIGMA"
    assert [w["stokes_i_from"] for w in record["windows"]] == [["RR", "LL"], ["RR", "LL"]]


def test_numbers_of_one_unflagged_cell_per_window_from_getcell():
    """Visibility k = channel * n_kept_rows + row (channel-major; whole rows are flagged here), from single cells."""
    got = read_all()
    offset = 0
    for spw in (0, 1):
        rows = np.flatnonzero((COLS["DATA_DESC_ID"] == spw) & ~COLS["FLAG_ROW"])
        r, chan = 5, 37
        with table(str(VLA_MS), ack=False) as t:
            uvw, data, sigma = t.getcell("UVW", rows[r]), t.getcell("DATA", rows[r]), t.getcell("SIGMA", rows[r])
        k = offset + chan * rows.size + r
        f = COLS["chan_freq"][spw][chan]
        assert got.uv_wavelengths[k] == pytest.approx(uvw[:2] * f / C, rel=1e-12)
        assert got.visibilities[k] == pytest.approx((complex(data[chan, 0]) + complex(data[chan, 3])) / 2, rel=1e-12)
        assert got.noise_map[k] == pytest.approx((1 + 1j) * 0.5 * np.hypot(float(sigma[0]), float(sigma[3])))
        offset += rows.size * 64


def read_all(**kw):
    return concatenate_chunks(open_visibilities(VLA_MS, **kw))


def test_spw_selection_one_window_reversed_order_and_casa_channel_syntax():
    assert_equal(read_all(spw="1"), expected(spws=[1]))
    assert_equal(read_all(spw=[0]), expected(spws=[0]))
    assert_equal(read_all(spw="1,0"), expected(spws=[1, 0]))  # windows concatenated in the order asked for
    per_window = {0: np.arange(10, 20), 1: np.arange(0, 10)}
    assert_equal(read_all(spw="0:10~19,1:0~9"), expected(channels=per_window))
    same = {0: np.arange(3, 7), 1: np.arange(3, 7)}
    assert_equal(read_all(channels="3~6"), expected(channels=same))
    assert_equal(read_all(spw="0~1", channels=(3, 7)), expected(channels=same))


def test_row_order_reads_the_same_visibilities_in_another_order():
    got = concatenate_chunks(open_visibilities(VLA_MS, order="rows", chunk_size=900))
    uv, vis, noise, n_flagged, n_bad = expected()

    def canonical(uv_, vis_, noise_):
        i = np.lexsort((noise_.real, vis_.imag, vis_.real, uv_[:, 1], uv_[:, 0]))
        return uv_[i], vis_[i], noise_[i]

    for a, b in zip(canonical(got.uv_wavelengths, got.visibilities, got.noise_map), canonical(uv, vis, noise)):
        np.testing.assert_array_equal(a, b)
    assert (got.n_flagged, got.n_bad_weight) == (n_flagged, n_bad)


@pytest.mark.parametrize("column", ["WEIGHT_SPECTRUM", "WEIGHT"])
def test_noise_from_weights_when_asked(column):
    """This file's WEIGHT_SPECTRUM is WEIGHT / 64 (not 1 / SIGMA**2): the noise follows the column asked for."""
    source = open_visibilities(VLA_MS, noise_column=column)
    assert source.describe()["noise_column"] == column
    got = concatenate_chunks(source)
    assert_equal(got, expected(noise=column))
    by_sigma = read_all()
    ratio = got.noise_map.real / by_sigma.noise_map.real
    assert np.allclose(ratio, 8.0 if column == "WEIGHT_SPECTRUM" else 1.0, rtol=1e-6)  # sqrt(64)


# ---------------------------------------------------------------------------------------------- the command line
def test_wtilde_info_lists_both_windows_and_the_flagged_fraction(capsys):
    assert main(["info", str(VLA_MS), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["format"] == "measurement-set" and s["rows"] == COLS["DATA_DESC_ID"].size == 2828
    assert [w["id"] for w in s["spectral_windows"]] == [0, 1]
    for w, freq in zip(s["spectral_windows"], COLS["chan_freq"]):
        assert (w["n_channels"], w["first_hz"], w["last_hz"], w["rows"]) == (64, freq[0], freq[-1], 1414)
    assert s["correlations"] == ["RR", "RL", "LR", "LL"] and sorted(s["stokes_i_from"]) == ["LL", "RR"]
    assert s["flagged_fraction"] == pytest.approx(COLS["FLAG"].mean(), rel=1e-12)
    assert s["noise_column"] == "SIGMA"


def test_wtilde_compute_with_spw_and_channels_stores_the_recipes_dataset(tmp_path, session_client):
    out = tmp_path / "w.zarr"
    argv = ["compute", str(VLA_MS), "--spw", "1", "--channels", "20~27", "--out", str(out), "--shape", "10", "10",
            "--pixel-scale", "0.2", "--mask-radius", "1.0", "--method", "direct", "--block-size", "32",
            "--no-progress", "--scheduler", session_client.scheduler.address]
    assert main(argv) == 0
    ds = WTildeStore.open(out).dataset()  # the Measurement Set reopened with the recorded selection
    uv, vis, noise, _, _ = expected(spws=[1], channels={1: np.arange(20, 28)})
    assert uv.shape == ((1414 - 54) * 8, 2)
    np.testing.assert_array_equal(ds.uv_wavelengths, uv)
    np.testing.assert_array_equal(ds.visibilities, vis)
    np.testing.assert_array_equal(ds.noise_map, noise)
