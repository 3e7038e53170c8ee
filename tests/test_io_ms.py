"""The Measurement Set reader against an independent implementation of the PyAutoLens CASA recipe.

The recipe (autolens_workspace ``scripts/interferometer/casa_reduction.py``) is re-implemented here with
python-casacore the way a CASA user runs it: one TaQL selection per spectral window (``DATA_DESC_ID == d AND
FIELD_ID IN [...]``), whole columns in CASA's ``tb.getcol`` layout (n_corr, n_chan, n_row), the polarisations
averaged, ``u = UVW[0] * CHAN_FREQ / c`` per channel, arrays (n_chan, n_row) flattened channel-major, spectral
windows concatenated. It imports nothing of the reader but the MS writer (used to make the test sets). The
reader reads contiguous row runs with ``getcolslice`` in bounded chunks; the two must agree bit for bit (same
float64 arithmetic), on the real ALMA set in tests/data/ms and on generated sets (2 and 4 correlations, linear
and circular feeds, several windows and fields with interleaved rows, FLAG / FLAG_ROW, SIGMA_SPECTRUM present or
absent, WEIGHT / WEIGHT_SPECTRUM only, zero and NaN weights). Nothing is mocked.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest

import casacore.tables as casacore_tables  # a required dependency: an import error fails the module

from wtilde_dask.dataset import DatasetError  # noqa: E402
from wtilde_dask.io import concatenate_chunks, open_visibilities  # noqa: E402
from wtilde_dask.simulate.ms_writer import MeasurementSetWriter  # noqa: E402

REAL_MS = pathlib.Path(__file__).parent / "data" / "ms" / "alma_gama567624_1bl.ms"
C = 299792458.0
PAIRS = ((9, 12), (5, 8))


# ---------------------------------------------------------------------------------------------- the recipe
def recipe(path, *, field_ids, spws, channels=None, column="DATA"):
    """(uv_wavelengths (K, 2), visibilities (K,), noise_map (K,), n_flagged, n_bad) by the CASA recipe.

    spws: spectral window ids in order; channels: {spw: index array} (default all).
    """
    t = casacore_tables
    path = str(path)
    main = t.table(path, ack=False)
    ddesc = t.table(path + "/DATA_DESCRIPTION", ack=False)
    spw_t = t.table(path + "/SPECTRAL_WINDOW", ack=False)
    pol_t = t.table(path + "/POLARIZATION", ack=False)
    names = main.colnames()
    uv_out, vis_out, noise_out = [], [], []
    n_flagged = n_bad = 0
    for spw in spws:
        freq_all = spw_t.getcell("CHAN_FREQ", spw)
        chans = np.arange(freq_all.size) if not channels or spw not in channels else np.asarray(channels[spw])
        freq = freq_all[chans]
        for ddid in range(ddesc.nrows()):
            if ddesc.getcell("SPECTRAL_WINDOW_ID", ddid) != spw:
                continue
            sub = main.query(f"DATA_DESC_ID == {ddid} AND FIELD_ID IN {list(map(int, field_ids))}")
            if sub.nrows() == 0:
                continue
            corr = list(pol_t.getcell("CORR_TYPE", ddesc.getcell("POLARIZATION_ID", ddid)))
            hands = next(((corr.index(a), corr.index(b)) for a, b in PAIRS if a in corr and b in corr), None)
            if hands is None:
                hands = (next(corr.index(c) for c in (9, 12, 5, 8) if c in corr),)
            # CASA's tb.getcol layout: (n_corr, n_chan, n_row)
            data = np.transpose(sub.getcol(column), (2, 1, 0))[:, chans, :]
            flag = np.transpose(sub.getcol("FLAG"), (2, 1, 0))[:, chans, :]
            flag_row = sub.getcol("FLAG_ROW")
            n_chan, n_row = chans.size, sub.nrows()
            if "SIGMA_SPECTRUM" in names and main.iscelldefined("SIGMA_SPECTRUM", 0):
                sigma = np.transpose(sub.getcol("SIGMA_SPECTRUM"), (2, 1, 0))[:, chans, :].astype(np.float64)
            elif "SIGMA" in names:
                sigma = np.repeat(sub.getcol("SIGMA").T[:, None, :], n_chan, axis=1).astype(np.float64)
            elif "WEIGHT_SPECTRUM" in names and main.iscelldefined("WEIGHT_SPECTRUM", 0):
                w = np.transpose(sub.getcol("WEIGHT_SPECTRUM"), (2, 1, 0))[:, chans, :].astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sigma = 1.0 / np.sqrt(w)
            else:
                w = np.repeat(sub.getcol("WEIGHT").T[:, None, :], n_chan, axis=1).astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sigma = 1.0 / np.sqrt(w)
            if len(hands) == 2:
                a, b = hands
                with np.errstate(invalid="ignore", over="ignore"):
                    vis = (data[a].astype(np.complex128) + data[b].astype(np.complex128)) / 2
                    sig = 0.5 * np.sqrt(sigma[a] ** 2 + sigma[b] ** 2)
                flagged = flag[a] | flag[b]
                ok_sigma = (sigma[a] > 0) & np.isfinite(sigma[a]) & (sigma[b] > 0) & np.isfinite(sigma[b])
            else:
                (a,) = hands
                vis = data[a].astype(np.complex128)
                sig = sigma[a]
                flagged = flag[a].copy()
                ok_sigma = (sig > 0) & np.isfinite(sig)
            flagged |= flag_row[None, :]
            uvw = sub.getcol("UVW")
            u = np.empty((n_chan, n_row))
            v = np.empty((n_chan, n_row))
            for i in range(n_chan):  # the recipe's loop over channels
                u[i, :] = (uvw[:, 0] * freq[i]) / C
                v[i, :] = (uvw[:, 1] * freq[i]) / C
            finite = np.isfinite(data[hands[0]]) & np.isfinite(data[hands[-1]]) & np.isfinite(uvw[:, :2]).all(1)
            good = ok_sigma & finite
            keep = ~flagged & good
            n_flagged += int(flagged.sum())
            n_bad += int((~flagged & ~good).sum())
            # flatten (n_chan, n_row) channel-major, as reshape does in the recipe
            uv_out.append(np.stack([u.reshape(-1), v.reshape(-1)], axis=1)[keep.reshape(-1)])
            vis_out.append(vis.reshape(-1)[keep.reshape(-1)])
            s = sig.reshape(-1)[keep.reshape(-1)]
            noise_out.append(s + 1j * s)
    return np.concatenate(uv_out), np.concatenate(vis_out), np.concatenate(noise_out), n_flagged, n_bad


def assert_same(chunk, expected):
    uv, vis, noise, n_flagged, n_bad = expected
    assert chunk.uv_wavelengths.dtype == np.float64 and chunk.visibilities.dtype == np.complex128
    assert chunk.noise_map.dtype == np.complex128
    assert chunk.uv_wavelengths.shape == uv.shape
    # bit for bit: the same float64 arithmetic
    assert np.array_equal(chunk.uv_wavelengths, uv)
    assert np.array_equal(chunk.visibilities, vis)
    assert np.array_equal(chunk.noise_map, noise)
    assert (chunk.n_flagged, chunk.n_bad_weight) == (n_flagged, n_bad)


def read_all(path, **kw):
    return concatenate_chunks(open_visibilities(path, **kw))


# ---------------------------------------------------------------------------------------------- test sets
def make_ms(
    path,
    *,
    corr_types=(("XX", "YY"),),
    data_descriptions=None,
    chan_freqs=(np.linspace(230.0e9, 230.7e9, 8), np.linspace(245.0e9, 245.4e9, 5)),
    fields=("J0000-0000", "TARGET"),
    rows_per_block=7,
    n_blocks=12,
    spectrum_columns=(),
    data_columns=("DATA",),
    flag_fraction=0.15,
    flag_row_fraction=0.1,
    bad_sigma=True,
    all_flagged=False,
    seed=0,
):
    """A small MS: blocks of rows cycle over (data description, field), so the rows of each are interleaved."""
    rng = np.random.default_rng(seed)
    w = MeasurementSetWriter(
        path,
        chan_freqs=chan_freqs,
        corr_types=corr_types,
        data_descriptions=data_descriptions,
        field_names=fields,
        n_antennas=6,
        data_columns=data_columns,
        spectrum_columns=spectrum_columns,
    )
    n_ddid = len(w.data_descriptions)
    with w:
        for block in range(n_blocks):
            ddid = block % n_ddid
            field = (block // n_ddid) % len(fields)
            spw, pol = w.data_descriptions[ddid]
            n_chan, n_corr, n = w.chan_freqs[spw].size, len(w.polarizations[pol]), rows_per_block

            def cube():
                return (rng.normal(size=(n, n_chan, n_corr)) + 1j * rng.normal(size=(n, n_chan, n_corr))).astype(
                    np.complex64
                )

            sigma = rng.uniform(0.5, 2.0, size=(n, n_corr)).astype(np.float32)
            sigma_spectrum = rng.uniform(0.5, 2.0, size=(n, n_chan, n_corr)).astype(np.float32)
            if bad_sigma and block % 3 == 1:  # a zero and a NaN weight / sigma in some rows
                sigma[0, -1] = 0.0
                sigma[1, 0] = np.nan
                sigma_spectrum[2, 1, 0] = 0.0
                sigma_spectrum[3, 0, -1] = np.nan
            data = cube()
            uvw = rng.uniform(-800.0, 800.0, size=(n, 3))
            if bad_sigma and block % 3 == 2:  # non-finite data in one hand, a non-finite UVW row
                data[4, 2, 0] = np.nan
                data[5, 1, -1] = complex(np.inf, 0.0)
                uvw[6, 1] = np.nan
            kw = {}
            if "CORRECTED_DATA" in data_columns:
                kw["corrected_data"] = cube()
            if "SIGMA_SPECTRUM" in spectrum_columns:
                kw["sigma_spectrum"] = sigma_spectrum
            if "WEIGHT_SPECTRUM" in spectrum_columns:
                with np.errstate(divide="ignore", invalid="ignore"):
                    kw["weight_spectrum"] = (1.0 / sigma_spectrum.astype(np.float64) ** 2).astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                weight = (1.0 / sigma.astype(np.float64) ** 2).astype(np.float32)
            w.write_rows(
                ddid,
                uvw=uvw,
                data=data,
                antenna1=rng.integers(0, 3, n),
                antenna2=rng.integers(3, 6, n),
                time=4.9e9 + block * 10.0 + np.arange(n),
                field_id=field,
                flag=np.ones((n, n_chan, n_corr), bool) if all_flagged
                else rng.random((n, n_chan, n_corr)) < flag_fraction,
                flag_row=rng.random(n) < flag_row_fraction,
                sigma=sigma,
                weight=weight,
                **kw,
            )
    return pathlib.Path(path)


def remove_columns(path, names):
    with casacore_tables.table(str(path), readonly=False, ack=False) as t:
        t.removecols(list(names))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms")
    out = {
        "linear2": make_ms(root / "linear2.ms"),
        "circular4": make_ms(
            root / "circular4.ms",
            corr_types=("RR", "RL", "LR", "LL"),
            spectrum_columns=("SIGMA_SPECTRUM",),
            data_columns=("DATA", "CORRECTED_DATA"),
            chan_freqs=(np.linspace(100e9, 100.3e9, 6), np.linspace(101e9, 101.3e9, 4), np.linspace(102e9, 102.1e9, 3)),
            seed=1,
        ),
        "linear4": make_ms(root / "linear4.ms", corr_types=("XX", "XY", "YX", "YY"), seed=2),
        # POLARIZATION rows of different lengths (as in the real set): spw 1 has YY only
        "mixedpol": make_ms(
            root / "mixedpol.ms", corr_types=(("XX", "YY"), ("YY",)), data_descriptions=[(0, 0), (1, 1)], seed=3
        ),
        "weight_spectrum": make_ms(root / "weight_spectrum.ms", spectrum_columns=("WEIGHT_SPECTRUM",), seed=4),
        "weight_only": make_ms(root / "weight_only.ms", seed=5),
        "cross_only": make_ms(root / "cross_only.ms", corr_types=("XY", "YX"), bad_sigma=False, seed=6),
        "all_flagged": make_ms(root / "all_flagged.ms", all_flagged=True, seed=7),
    }
    remove_columns(out["weight_spectrum"], ["SIGMA"])
    remove_columns(out["weight_only"], ["SIGMA"])
    return out


# ---------------------------------------------------------------------------------------------- the real set
@pytest.mark.parametrize("chunk_size", [1_000_000, 100, 7])
def test_real_alma_ms_equals_recipe(chunk_size):
    source = open_visibilities(REAL_MS, chunk_size=chunk_size)
    expected = recipe(REAL_MS, field_ids=[2], spws=[0])
    chunks = [source.read_chunk(c) for c in source.chunk_ids()]
    assert max(c.n_visibilities + c.n_flagged + c.n_bad_weight for c in chunks) <= chunk_size
    got = concatenate_chunks(chunks)
    assert_same(got, expected)
    assert got.n_visibilities == 40 * 11  # 40 rows x 11 channels, nothing flagged in this set
    record = source.describe()
    assert record["format"] == "measurement-set" and record["noise_column"] == "SIGMA"
    assert record["field_names"] == ["GAMA567624"] and record["windows"][0]["stokes_i_from"] == ["XX", "YY"]
    # the numbers themselves, from the file: uv of row 0, channel 0 and Stokes I / sigma of row 0, channel 0
    with casacore_tables.table(str(REAL_MS), ack=False) as t:
        uvw0, data0, sigma0 = t.getcell("UVW", 0), t.getcell("DATA", 0), t.getcell("SIGMA", 0).astype(float)
    f0 = 1.11457315e11
    assert got.uv_wavelengths[0] == pytest.approx(uvw0[:2] * f0 / C, rel=1e-8)
    assert got.visibilities[0] == pytest.approx((complex(data0[0, 0]) + complex(data0[0, 1])) / 2, rel=1e-12)
    assert got.noise_map[0].real == pytest.approx(0.5 * np.hypot(*sigma0), rel=1e-12)


def test_real_alma_ms_field_and_spw_selection():
    by_name = read_all(REAL_MS, field="GAMA567624", spw="0", channels="3~6")
    by_id = read_all(REAL_MS, field=2, spw=[0], channels=(3, 7))
    assert_same(by_name, recipe(REAL_MS, field_ids=[2], spws=[0], channels={0: np.arange(3, 7)}))
    assert np.array_equal(by_name.visibilities, by_id.visibilities)
    casa_syntax = read_all(REAL_MS, spw="0:3~6")
    assert np.array_equal(casa_syntax.uv_wavelengths, by_name.uv_wavelengths)
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: FIELD 'J1337-1257' has no rows"):
        open_visibilities(REAL_MS, field="J1337-1257")  # a FIELD row nobody observed in this set
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: FIELD 'NGC1068' not found .*GAMA567624"):
        open_visibilities(REAL_MS, field="NGC1068")
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: spw 'BB_9' not found .*FULL_RES"):
        open_visibilities(REAL_MS, spw="BB_9")
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: spw 3 not found"):
        open_visibilities(REAL_MS, spw="3")
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: spw 0 is selected twice in spw '0,0:1~2'"):
        open_visibilities(REAL_MS, spw="0,0:1~2")
    with pytest.raises(DatasetError, match=r"spw 0: channels '5~11' is outside the 11 channels"):
        open_visibilities(REAL_MS, channels="5~11")


# ---------------------------------------------------------------------------------------------- generated sets
@pytest.mark.parametrize("chunk_size", [10_000, 40, 3])
def test_linear_two_correlations_two_fields_interleaved(sets, chunk_size):
    path = sets["linear2"]
    source = open_visibilities(path, field="TARGET", chunk_size=chunk_size)
    chunks = [source.read_chunk(c) for c in source.chunk_ids()]
    assert max(c.n_visibilities + c.n_flagged + c.n_bad_weight for c in chunks) <= chunk_size  # bounded memory
    got = concatenate_chunks(chunks)
    expected = recipe(path, field_ids=[1], spws=[0, 1])
    assert_same(got, expected)
    assert got.n_flagged > 0 and got.n_bad_weight > 0  # flags, FLAG_ROW, zero and NaN sigma all occurred
    assert source.describe()["noise_column"] == "SIGMA"


def test_spw_order_channels_and_several_fields(sets):
    path = sets["linear2"]
    chans = {1: np.arange(1, 4), 0: np.arange(1, 4)}
    got = read_all(path, field="0,TARGET", spw="1,0", channels="1~3", chunk_size=17)
    assert_same(got, recipe(path, field_ids=[0, 1], spws=[1, 0], channels=chans))
    per_spw = read_all(path, field=1, spw="0:2~6,1", chunk_size=9)
    assert_same(per_spw, recipe(path, field_ids=[1], spws=[0, 1], channels={0: np.arange(2, 7)}))
    with pytest.raises(DatasetError, match=r"linear2\.ms: the main table holds 2 fields .*'TARGET'"):
        open_visibilities(path)


def test_fields_with_different_phase_centres_refused(tmp_path):
    path = make_ms(tmp_path / "mosaic.ms", fields=("P1", "P2"), n_blocks=4, seed=9)
    with casacore_tables.table(str(path / "FIELD"), readonly=False, ack=False) as t:
        t.putcell("PHASE_DIR", 1, np.array([[0.1, -0.5]]))
    with pytest.raises(DatasetError, match=r"mosaic\.ms: FIELD 0 \('P1'\) and FIELD 1 \('P2'\) have different "
                                           r"PHASE_DIR .*\[0\.1, -0\.5\] rad\): a mosaic"):
        open_visibilities(path, field="P1,P2")
    assert read_all(path, field="P2").n_visibilities > 0


def test_circular_four_correlations_sigma_spectrum_and_corrected_data(sets):
    path = sets["circular4"]
    for column in ("DATA", "CORRECTED_DATA"):
        source = open_visibilities(path, field="TARGET", column=column, chunk_size=25)
        assert source.describe()["noise_column"] == "SIGMA_SPECTRUM"
        assert source.describe()["windows"][0]["stokes_i_from"] == ["RR", "LL"]
        assert_same(concatenate_chunks(source), recipe(path, field_ids=[1], spws=[0, 1, 2], column=column))
    with pytest.raises(DatasetError, match=r"circular4\.ms: column MODEL_DATA is missing from the main table"):
        open_visibilities(path, field=1, column="MODEL_DATA")


def test_linear_four_correlations(sets):
    path = sets["linear4"]
    got = read_all(path, field="J0000-0000", chunk_size=11)
    assert_same(got, recipe(path, field_ids=[0], spws=[0, 1]))


def test_two_polarization_setups_single_hand(sets):
    path = sets["mixedpol"]
    source = open_visibilities(path, field=1, chunk_size=13)
    assert [w["stokes_i_from"] for w in source.describe()["windows"]] == [["XX", "YY"], ["YY"]]
    assert_same(concatenate_chunks(source), recipe(path, field_ids=[1], spws=[0, 1]))


@pytest.mark.parametrize("name, column", [("weight_spectrum", "WEIGHT_SPECTRUM"), ("weight_only", "WEIGHT")])
def test_weights_when_sigma_is_absent(sets, name, column):
    path = sets[name]
    source = open_visibilities(path, field=1, chunk_size=30)
    assert source.describe()["noise_column"] == column
    got = concatenate_chunks(source)
    assert_same(got, recipe(path, field_ids=[1], spws=[0, 1]))
    assert got.n_bad_weight > 0  # zero and NaN weights dropped and counted
    assert np.all(np.isfinite(got.noise_map)) and np.all(got.noise_map.real > 0)


def test_rows_order_is_a_permutation_of_the_recipe(sets):
    path = sets["linear2"]
    recipe_order = read_all(path, field=1, chunk_size=20)
    rows = open_visibilities(path, field=1, chunk_size=20, order="rows")
    n_chan = {w["ddid"]: w["channels"].size for w in rows.windows}
    assert all(c[1] == 0 and c[2] == n_chan[c[0]] for c in rows.chunk_ids())  # every chunk: all channels of rows
    rows_order = concatenate_chunks(rows)
    ia = np.lexsort((recipe_order.visibilities.imag, recipe_order.visibilities.real))
    ib = np.lexsort((rows_order.visibilities.imag, rows_order.visibilities.real))
    assert not np.array_equal(ia, ib)  # a different order ...
    for a, b in zip(recipe_order[:3], rows_order[:3]):
        assert np.array_equal(a[ia], b[ib])  # ... of the same visibilities
    assert (rows_order.n_flagged, rows_order.n_bad_weight) == (recipe_order.n_flagged, recipe_order.n_bad_weight)


def test_chunk_cube_flattens_to_the_chunk(sets):
    from wtilde_dask.io.export import flatten_cube

    source = open_visibilities(sets["circular4"], field=1, chunk_size=10)
    for cid in source.chunk_ids():
        a, b = source.read_chunk(cid), flatten_cube(source.read_chunk_cube(cid))
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_column_names_file_and_column():
    with pytest.raises(DatasetError, match=r"alma_gama567624_1bl\.ms: column CORRECTED_DATA is missing .*DATA"):
        open_visibilities(REAL_MS, column="CORRECTED_DATA")
    with pytest.raises(DatasetError, match=r"column 'FLOAT_DATA' is not one of DATA, CORRECTED_DATA, MODEL_DATA"):
        open_visibilities(REAL_MS, column="FLOAT_DATA")


def test_cross_hands_only_refused(sets):
    with pytest.raises(DatasetError, match=r"cross_only\.ms: POLARIZATION row 0 \(spw 0\) has CORR_TYPE \[10, 11\] "
                                           r"\(XY, YX\): no parallel hand"):
        open_visibilities(sets["cross_only"], field=1)


def test_all_flagged_refused(sets):
    with pytest.raises(DatasetError, match=r"all_flagged\.ms: every selected visibility is flagged .*field 'TARGET'.*"
                                           r"\d+ flagged"):
        open_visibilities(sets["all_flagged"], field="TARGET")


def test_not_a_measurement_set(tmp_path):
    plain = tmp_path / "folder.ms"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a table")
    with pytest.raises(DatasetError, match=r"folder\.ms: not a Measurement Set \(no table\.dat"):
        open_visibilities(plain)
    # a casacore table that is not a Measurement Set: the real set's SPECTRAL_WINDOW subtable, copied
    table = tmp_path / "spectral_window_table"
    shutil.copytree(REAL_MS / "SPECTRAL_WINDOW", table)
    with pytest.raises(DatasetError, match=r"spectral_window_table: not a Measurement Set: table\.info does not say"):
        open_visibilities(table)


def test_load_dataset_reads_a_small_measurement_set(sets):
    from wtilde_dask.dataset import load_dataset

    dataset = load_dataset(sets["linear2"], field="TARGET", spw="1")
    uv, vis, noise, _, _ = recipe(sets["linear2"], field_ids=[1], spws=[1])
    assert np.array_equal(dataset.uv_wavelengths, uv) and np.array_equal(dataset.visibilities, vis)
    assert np.array_equal(dataset.noise_map, noise)


def test_partly_undefined_noise_column_named_in_the_error(tmp_path):
    """SIGMA_SPECTRUM added after the fact and filled in row 0 only (as a partial CASA run can leave it)."""
    path = make_ms(tmp_path / "undefined.ms", fields=("TARGET",), n_blocks=2, seed=8)
    with casacore_tables.table(str(path), readonly=False, ack=False) as t:
        t.addcols(casacore_tables.maketabdesc(
            [casacore_tables.makearrcoldesc("SIGMA_SPECTRUM", 0.0, ndim=2, valuetype="float")]
        ))
        t.putcell("SIGMA_SPECTRUM", 0, np.ones((8, 2), np.float32))
    expected = (r"undefined\.ms: column SIGMA_SPECTRUM rows 0\.\.6 \(spw 0, DATA_DESC_ID 0\) cannot be read: "
                r".*no array in row 1")
    with pytest.raises(DatasetError, match=expected):
        open_visibilities(path)
    # asking for SIGMA explicitly reads the set
    assert_same(read_all(path, noise_column="SIGMA"), recipe_sigma(path))


def recipe_sigma(path):
    """The recipe on a set whose SIGMA_SPECTRUM is unusable: temporarily the same set without that column."""
    copy = pathlib.Path(str(path) + ".sigma")
    shutil.copytree(path, copy)
    remove_columns(copy, ["SIGMA_SPECTRUM"])
    return recipe(copy, field_ids=[0], spws=[0, 1])


def test_two_sources_on_one_set_do_not_share_rows(sets):
    """Chunks of the two fields alternate in one process: each still gets its own rows."""
    path = sets["linear2"]
    a = open_visibilities(path, field=0, chunk_size=30)
    b = open_visibilities(path, field=1, chunk_size=30)
    got_a, got_b = [], []
    for ca, cb in zip(a.chunk_ids(), b.chunk_ids()):
        got_a.append(a.read_chunk(ca))
        got_b.append(b.read_chunk(cb))
    assert a.chunk_ids() == b.chunk_ids()  # same descriptors, different rows
    assert_same(concatenate_chunks(got_a), recipe(path, field_ids=[0], spws=[0, 1]))
    assert_same(concatenate_chunks(got_b), recipe(path, field_ids=[1], spws=[0, 1]))
