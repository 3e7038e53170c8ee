"""``wtilde info`` on datasets (a listobs-like summary) and on a store (a screen a person reads; --json keeps all).

Expected values are read here independently: python-casacore on the Measurement Set's tables, the arrays written
into the UVFITS file, astropy.time for the dates.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from astropy.time import Time
from casacore.tables import table

from test_io_formats import _uvfits_case, write_uvfits
from wtilde_dask.cli import main
from wtilde_dask.compute import compute
from wtilde_dask.grid import ImageGrid

REAL_MS = "tests/data/ms/alma_gama567624_1bl.ms"


@pytest.fixture
def flagged_ms(tmp_path):
    """A copy of the real ALMA set with row 0 flagged in FLAG and row 1 by FLAG_ROW."""
    path = tmp_path / "flagged.ms"
    shutil.copytree(REAL_MS, path)
    with table(str(path), readonly=False, ack=False) as t:
        flag = t.getcell("FLAG", 0)
        t.putcell("FLAG", 0, np.ones_like(flag))
        t.putcell("FLAG_ROW", 1, True)
    return path


def _info(capsys, *argv):
    assert main(["info", *map(str, argv)]) == 0
    return capsys.readouterr().out


def test_info_on_a_measurement_set(flagged_ms, capsys):
    s = json.loads(_info(capsys, flagged_ms, "--json"))
    with table(str(flagged_ms), ack=False) as t:
        n_rows, time, flag = t.nrows(), t.getcol("TIME"), t.getcol("FLAG")
    with table(str(flagged_ms / "FIELD"), ack=False) as t:
        names = list(t.getcol("NAME"))
    with table(str(flagged_ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    cells_per_row = flag[0].size
    assert s["format"] == "measurement-set" and s["rows"] == n_rows == 40
    assert [f["name"] for f in s["fields"]] == names
    (spw,) = s["spectral_windows"]
    assert spw["n_channels"] == freq.size and spw["first_hz"] == freq[0] and spw["last_hz"] == freq[-1]
    assert spw["rows"] == n_rows
    assert s["correlations"] == ["XX", "YY"]  # CORR_TYPE 9, 12
    first, last = (Time(x / 86400.0, format="mjd", scale="utc") for x in (time.min(), time.max()))
    assert s["time_range"][0][:19] == first.isot[:19] and s["time_range"][1][:19] == last.isot[:19]
    assert s["flagged_fraction"] == pytest.approx(2 * cells_per_row / (n_rows * cells_per_row), rel=1e-12)
    assert s["noise_column"] == "SIGMA" and s["data_columns"] == ["DATA"]
    text = _info(capsys, flagged_ms)
    assert "spectral windows: 1" in text and "GAMA567624" in text and "XX YY" in text
    assert f"{100 * 2 / n_rows:.2f}% of the data cells" in text


def test_info_on_a_uvfits_file(tmp_path, capsys):
    rng = np.random.default_rng(5)
    uu, vv, data, weight = _uvfits_case(rng)  # 23 groups, 2 IFs x 5 channels, XX YY XY YX, one weight < 0 per hand
    ref, width, if_freqs = 230e9, 1e6, [0.0, 2e9]
    path = write_uvfits(tmp_path / "f.uvfits", uu, vv, data, weight, [-5, -6, -7, -8], ref_freq=ref, ch_width=width,
                        if_freqs=if_freqs)
    s = json.loads(_info(capsys, path, "--json"))
    assert s["format"] == "uvfits" and s["rows"] == 23
    assert s["correlations"] == ["XX", "YY", "XY", "YX"] and s["stokes_i_from"] == ["XX", "YY"]
    assert [w["n_channels"] for w in s["spectral_windows"]] == [5, 5]
    for w, f_if in zip(s["spectral_windows"], if_freqs, strict=True):
        assert w["first_hz"] == pytest.approx(ref + f_if) and w["last_hz"] == pytest.approx(ref + f_if + 4 * width)
    assert s["flagged_fraction"] == pytest.approx(np.count_nonzero(weight < 0) / weight.size)
    assert s["fields"][0]["name"] == "TARGET"
    assert s["time_range"][0][:19] == Time(2.46e6, format="jd", scale="utc").isot[:19]
    assert "spectral windows: 2" in _info(capsys, path)


def test_info_on_a_fits_folder(capsys, sma_dataset):
    s = json.loads(_info(capsys, "sma", "--json"))
    assert s["rows"] == sma_dataset.n_visibilities == 190 and s["correlations"] == ["I"]
    uv = np.hypot(*sma_dataset.uv_wavelengths.T)
    assert s["uv_range_wavelengths"] == pytest.approx([uv.min(), uv.max()])


def test_info_on_a_store_summarizes_the_source_files(tmp_path, client, capsys):
    grid = ImageGrid.circular((9, 9), (0.4, 0.4), 1.6)
    out = tmp_path / "w.zarr"
    compute(REAL_MS, grid, out, block_size=32, client=client, progress=False, log=lambda *a: None)
    text = _info(capsys, out)
    record = json.loads(_info(capsys, out, "--json"))["source"]
    files = record["files"]
    assert len(files) > 10 and all({"size", "mtime"} <= set(f) for f in files.values())
    total = sum(f["size"] for f in files.values())
    assert f"files        {len(files)}, {total / 1e6:.3g} MB" in text
    assert "mtime" not in text and "table.dat" not in text  # one line for the files, not one per file
    assert "spw 0: channels 0-10, Stokes I from XX+YY, 40 rows" in text
