"""The chunked visibility pass (wtilde_dask.ingest): chunk-size independence, bit-identical reruns, a SIGKILLed pass
resumed bit-identical, the sign convention end to end from a Measurement Set, and stores that need nothing but
themselves (sums stored, visibilities read through the recorded source).

Everything is real: a LocalCluster, Zarr stores on disk, Measurement Sets written with python-casacore (our
simulate/ms_writer), `wtilde compute` subprocesses killed with SIGKILL. References are independent: the slow element-wise
formulas of kernels/reference.py, the lattice kernels of all visibilities at once, sums written out in the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from datasets import WTILDE
from wtilde_dask.cli import main as wtilde
from wtilde_dask.compute import compute
from wtilde_dask.dataset import Interferometer
from wtilde_dask.grid import ImageGrid
from wtilde_dask.ingest import in_memory_partial, store_source, tree_depth
from wtilde_dask.io import ArraySource, concatenate_chunks
from wtilde_dask.kernels.lattice import lattice_kernels
from wtilde_dask.kernels.reference import dirty_image_reference, w_tilde_reference
from wtilde_dask.store import StoreError, WTildeStore

ARCSEC = np.pi / 648000.0
TOL = 1e-12


def quiet(*args):
    pass


def random_dataset(k: int, seed: int = 3, equal_noise: bool = False) -> Interferometer:
    rng = np.random.default_rng(seed)
    sr = rng.uniform(0.5, 2.0, k)
    si = sr if equal_noise else rng.uniform(0.5, 2.0, k)
    return Interferometer.from_arrays(rng.normal(size=k) + 1j * rng.normal(size=k), sr + 1j * si,
                                      rng.uniform(-6e4, 6e4, size=(k, 2)), name="random")


@pytest.fixture(scope="module")
def dataset():
    return random_dataset(1500)


@pytest.fixture(scope="module")
def grid():
    return ImageGrid.circular((21, 21), (0.12, 0.12), 1.0, centre=(0.1, -0.15))  # off-centre: Hankel term matters


def expected_sums(ds: Interferometer) -> dict:
    """chi2_data and the noise normalisation written out from their definitions (docs/mathematics.md; one NumPy expression each)."""
    wr, wi = 1 / ds.noise_map.real**2, 1 / ds.noise_map.imag**2
    return {"chi_squared_data": float(np.sum(wr * ds.visibilities.real**2 + wi * ds.visibilities.imag**2)),
            "noise_normalization": float(np.sum(np.log(2 * np.pi * ds.noise_map.real**2)
                                                + np.log(2 * np.pi * ds.noise_map.imag**2)))}


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / float(np.max(np.abs(b)))


# ---------------------------------------------------------------------------------------------------------------
# Chunk-size independence and determinism
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1500, 211, 16], ids=["one-chunk", "chunks-of-211", "chunks-of-16"])
def test_lattice_pass_equals_in_memory_for_any_chunk_size(tmp_path, client, dataset, grid, chunk_size):
    store = compute(ArraySource(dataset, chunk_size), grid, tmp_path / "w.zarr", method="lattice", block_size=64,
                    client=client, progress=False, log=quiet)
    state = store.ingest_state()
    n_chunks = -(-1500 // chunk_size)
    assert state["state"] == "complete" and state["plan"]["n_chunks"] == n_chunks
    group_chunks = -(-n_chunks // 256)  # at most 256 groups of consecutive chunks
    assert state["plan"]["group_chunks"] == group_chunks and state["plan"]["n_groups"] == -(-n_chunks // group_chunks)
    assert not (store.path / "ingest" / "nodes").exists()  # partials are dropped once the totals are stored
    # the kernels of all visibilities at once (one NUFFT each, no chunks)
    lk = lattice_kernels(dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag, grid)
    assert rel(store.read_array("kernel"), lk.kernel) <= TOL
    assert rel(store.read_array("kernel_hankel"), lk.kernel_hankel) <= TOL
    d_ref = dirty_image_reference(grid.grid_radians, dataset.uv_wavelengths, dataset.visibilities,
                                  dataset.weights_real, dataset.weights_imag)
    assert rel(store.read_array("dirty_image"), d_ref) <= TOL
    sums = store.visibility_sums()
    for name, value in expected_sums(dataset).items():
        assert abs(sums[name] - value) <= TOL * abs(value), name
    assert (sums["n_visibilities"], sums["n_flagged"], sums["n_bad_weight"]) == (1500, 0, 0)
    W = store.to_dask().compute()
    W_ref = w_tilde_reference(grid.grid_radians, dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag)
    assert rel(W, W_ref) <= 1e-11  # the lattice path's tolerance (README)


@pytest.mark.parametrize("chunk_size", [1500, 97])
def test_direct_blocks_stream_chunks(tmp_path, client, dataset, grid, chunk_size):
    points = ImageGrid.from_points(grid.grid_radians[::3])  # an irregular point set: direct method, JAX dirty image
    store = compute(ArraySource(dataset, chunk_size), points, tmp_path / "w.zarr", block_size=40, client=client,
                    progress=False, log=quiet)
    assert store.method == "direct" and not store.has_array("kernel")
    W_ref = w_tilde_reference(points.grid_radians, dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag)
    assert rel(store.to_dask().compute(), W_ref) <= TOL
    d_ref = dirty_image_reference(points.grid_radians, dataset.uv_wavelengths, dataset.visibilities,
                                  dataset.weights_real, dataset.weights_imag)
    assert rel(store.read_array("dirty_image"), d_ref) <= TOL


def test_rerun_is_bit_identical(tmp_path, client, dataset, grid):
    """Same chunk plan, another cluster shape (1 worker x 2 threads) and another store: the same bits."""
    source = ArraySource(dataset, 50)  # 30 chunks, 30 groups: a tree of depth 5 with one-child nodes
    a = compute(source, grid, tmp_path / "a.zarr", method="lattice", block_size=64, client=client, progress=False,
                log=quiet)
    b = compute(source, grid, tmp_path / "b.zarr", method="lattice", block_size=64, client=None, n_workers=1,
                threads_per_worker=2, progress=False, log=quiet)
    assert tree_depth(30) == 5
    for name in ("kernel", "kernel_hankel", "dirty_image"):
        np.testing.assert_array_equal(a.read_array(name), b.read_array(name))
    assert a.visibility_sums() == b.visibility_sums()
    np.testing.assert_array_equal(a.to_dask().compute(), b.to_dask().compute())
    # and the pass equals the same chunks summed in this process, in order (to rounding: the tree adds in pairs)
    ref = in_memory_partial(source, grid, dirty_image=True, lattice=True)
    assert rel(a.read_array("kernel"), ref.kernel) <= TOL and rel(a.read_array("dirty_image"), ref.dirty_image) <= TOL


# ---------------------------------------------------------------------------------------------------------------
# A pass killed with SIGKILL resumes and ends bit-identical
# ---------------------------------------------------------------------------------------------------------------

N_KILL = 60_000


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory):
    ds = random_dataset(N_KILL, seed=11)
    return ds.to_npz(tmp_path_factory.mktemp("kill") / "data.npz")


def kill_command(npz, out):
    # 120 chunks of 500 -> 120 groups of one chunk: a pass of several seconds (the run is frozen after 3 nodes)
    return WTILDE + ["compute", str(npz), "--out", str(out), "--shape", "25", "25", "--pixel-scale", "0.1",
                     "--mask-radius", "1.1", "--method", "lattice", "--block-size", "200", "--chunk-size", "500",
                     "--workers", "2", "--threads-per-worker", "1", "--no-progress"]


def run_ok(cmd) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, start_new_session=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def finished_nodes(path) -> int:
    try:
        return len(WTildeStore.open(path).ingest_nodes())
    except (StoreError, FileNotFoundError, KeyError, ValueError):
        return 0


def test_killed_pass_resumes_bit_identical(tmp_path, big_npz, capsys):
    full = tmp_path / "full.zarr"
    log_full = run_ok(kill_command(big_npz, full))
    assert "120 chunks in 120 group(s) of 1" in log_full and "resuming" not in log_full

    out = tmp_path / "killed.zarr"
    with open(tmp_path / "first.log", "w") as log_file:
        proc = subprocess.Popen(kill_command(big_npz, out), stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline and finished_nodes(out) < 3:
                time.sleep(0.01)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGSTOP)  # freeze the run (orchestrator and workers) mid-pass
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    killed = WTildeStore.open(out)
    assert killed.ingest_state()["state"] == "running" and killed.visibility_sums() is None, "not killed mid-pass"
    nodes = killed.ingest_nodes()
    assert nodes, "no finished node before the kill"
    done_groups = sum(len(range(i << lv, min((i + 1) << lv, 120))) for lv, i in nodes)
    assert 0 < done_groups < 120
    # `wtilde status` reads the pass's progress off the dead store (groups of 1 chunk of 500 visibilities)
    capsys.readouterr()
    assert wtilde(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert (f"visibilities: pass interrupted (the next `wtilde compute` resumes it): {done_groups}/120 groups of chunks "
            f"summed (120 chunks), {500 * done_groups:,} visibilities read") in status, status

    log = run_ok(kill_command(big_npz, out))
    assert "taking over a stale lock" in log
    resumed = [line for line in log.splitlines() if "resuming:" in line]
    assert resumed, log
    n_skipped = int(resumed[0].split("resuming: ")[1].split(" group")[0])
    assert n_skipped >= done_groups  # nodes finished between our count and the kill are kept too
    assert f"{120 - n_skipped} to read" in resumed[0]

    a, b = WTildeStore.open(full), WTildeStore.open(out)
    for name in ("kernel", "kernel_hankel", "dirty_image"):
        np.testing.assert_array_equal(b.read_array(name), a.read_array(name))
    assert b.visibility_sums() == a.visibility_sums()
    np.testing.assert_array_equal(b.to_dask().compute(), a.to_dask().compute())
    assert wtilde(["status", str(out)]) == 0
    assert "visibilities: pass complete: 120/120 groups of chunks summed (120 chunks), 60,000 visibilities read" in \
        capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# Measurement Set: sign convention end to end, the source recorded instead of copied
# ---------------------------------------------------------------------------------------------------------------

L_ARCSEC, M_ARCSEC = 0.30, -0.20  # the point source: 0.30" East (x = l), 0.20" South (y = m)


@pytest.fixture(scope="module")
def point_ms(tmp_path_factory):
    """A two-window, XX/YY Measurement Set of a 2 Jy point source at (l, m), V = S exp(-2 pi i (u l + v m)); every
    fifth row flagged in one channel, two rows flagged whole (FLAG_ROW)."""
    from wtilde_dask.simulate.ms_writer import MeasurementSetWriter

    rng = np.random.default_rng(5)
    freqs = [np.linspace(230e9, 231e9, 6), np.linspace(240e9, 241e9, 6)]
    path = tmp_path_factory.mktemp("ms") / "point.ms"
    l, m = L_ARCSEC * ARCSEC, M_ARCSEC * ARCSEC
    n_rows = 300
    flagged = 0
    with MeasurementSetWriter(path, chan_freqs=freqs, corr_types=["XX", "YY"], n_antennas=8) as ms:
        for ddid, f in enumerate(freqs):
            r = 3000.0 * np.sqrt(rng.uniform(0, 1, n_rows))
            t = rng.uniform(0, 2 * np.pi, n_rows)
            uvw = np.stack([r * np.cos(t), r * np.sin(t), rng.normal(0, 10, n_rows)], axis=1)
            u = uvw[:, 0, None] * f[None, :] / 299792458.0
            v = uvw[:, 1, None] * f[None, :] / 299792458.0
            vis = 2.0 * np.exp(-2j * np.pi * (u * l + v * m))
            data = np.repeat(vis[:, :, None], 2, axis=2)
            flag = np.zeros(data.shape, bool)
            flag[::5, 2, :] = True
            flag_row = np.zeros(n_rows, bool)
            flag_row[[7, 11]] = True
            flagged += int(flag[:, :, 0].sum()) + int((~flag[[7, 11], :, 0]).sum())
            sigma = np.full((n_rows, 2), 0.1, np.float32)
            ms.write_rows(ddid, uvw=uvw, data=data, flag=flag, flag_row=flag_row, sigma=sigma,
                          antenna1=np.zeros(n_rows, int), antenna2=np.ones(n_rows, int), time=np.arange(n_rows) * 1.0)
    return path, 2 * n_rows * 6, flagged


def test_point_source_peaks_at_l_m_from_a_measurement_set(tmp_path, point_ms, capsys):
    ms, n_total, n_flagged = point_ms
    out = tmp_path / "ms.zarr"
    assert wtilde(["compute", str(ms), "--out", str(out), "--shape", "31", "31", "--pixel-scale", "0.05",
                   "--mask-radius", "0.7", "--chunk-size", "500", "--workers", "2", "--threads-per-worker", "1",
                   "--no-progress"]) == 0
    store = WTildeStore.open(out)
    arcsec = store.grid_arcsec()
    peak = arcsec[int(np.argmax(store.read_array("dirty_image")))]
    np.testing.assert_allclose(peak, [M_ARCSEC, L_ARCSEC], atol=1e-9)  # (y, x) = (m, l)
    # the store records the source instead of copying it, and holds the sums an inversion needs
    assert not store.copied_visibilities and "visibilities" not in store.group["inputs"]
    record = store.source_record()
    assert record["format"] == "measurement-set" and record["noise_column"] == "SIGMA"
    sums = store.visibility_sums()
    assert sums["n_visibilities"] == n_total - n_flagged and sums["n_flagged"] == n_flagged
    # chi2_data from the model written into the set: |V| = 2 Jy per visibility, Stokes I sigma = 0.5 sqrt(2) 0.1
    sigma_i = 0.5 * np.sqrt(2 * np.float64(np.float32(0.1)) ** 2)
    assert abs(sums["chi_squared_data"] - sums["n_visibilities"] * 4.0 / sigma_i**2) <= 1e-6 * sums["chi_squared_data"]
    # everything the store needs is in it, or read through the recorded source
    ds = store.dataset()
    assert ds.n_visibilities == sums["n_visibilities"]
    d_ref = dirty_image_reference(store.grid().grid_radians, ds.uv_wavelengths, ds.visibilities,
                                  ds.weights_real, ds.weights_imag)
    assert rel(store.read_array("dirty_image"), d_ref) <= TOL
    capsys.readouterr()
    assert wtilde(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "measurement-set" in info and "not copied" in info and "noise from SIGMA" in info
    assert f"dropped {n_flagged} flagged" in info


def test_changed_source_is_refused(tmp_path, point_ms):
    """A store made without copying refuses to read a source whose record (sizes, mtimes) changed."""
    import shutil

    ms = tmp_path / "copy.ms"
    shutil.copytree(point_ms[0], ms)
    grid = ImageGrid.circular((11, 11), (0.1, 0.1), 0.5)
    store = compute(str(ms), grid, tmp_path / "w.zarr", block_size=64, n_workers=1, threads_per_worker=1,
                    progress=False, log=quiet)
    assert len(concatenate_chunks(store_source(store)).visibilities) == store.visibility_sums()["n_visibilities"]
    main_table = ms / "table.f0"
    os.utime(main_table, (time.time() + 100, time.time() + 100))
    with pytest.raises(StoreError, match="changed since the store was made"):
        store_source(store)


def test_fits_folder_store_is_keyed_by_content_not_by_path_or_mtime(tmp_path, client, sma_dataset, capsys):
    """A PyAutoLens FITS folder is fingerprinted by its arrays (hashed chunk by chunk): a store made from the
    same data in memory resumes from `wtilde compute FOLDER`, and a copy of the folder with new mtimes too."""
    import shutil

    from wtilde_dask.dataset import sma_dataset_path

    folder = tmp_path / "sma"
    shutil.copytree(sma_dataset_path(), folder)
    out = tmp_path / "w.zarr"
    grid = ImageGrid.circular((20, 20), (0.2, 0.2), 1.5)
    store = compute(sma_dataset, grid, out, block_size=64, client=client, progress=False, log=quiet)
    expected = store.to_dask().compute()
    for f in folder.iterdir():
        os.utime(f, (time.time() + 100, time.time() + 100))
    args = ["compute", str(folder), "--shape", "20", "20", "--pixel-scale", "0.2", "--mask-radius", "1.5",
            "--block-size", "64", "--out", str(out), "--scheduler", client.scheduler.address, "--no-progress"]
    assert wtilde(args) == 0
    printed = capsys.readouterr().out
    assert f"0 blocks computed, {store.plan.n_blocks} skipped" in printed, printed
    np.testing.assert_array_equal(WTildeStore.open(out).to_dask().compute(), expected)


def test_all_flagged_leaves_no_store(tmp_path, capsys):
    from wtilde_dask.simulate.ms_writer import MeasurementSetWriter

    ms = tmp_path / "flagged.ms"
    with MeasurementSetWriter(ms, chan_freqs=[np.linspace(230e9, 231e9, 4)], corr_types=["XX", "YY"]) as w:
        w.write_rows(0, uvw=np.ones((10, 3)), data=np.ones((10, 4, 2)), flag=np.ones((10, 4, 2), bool),
                     sigma=np.ones((10, 2)))
    out = tmp_path / "w.zarr"
    assert wtilde(["compute", str(ms), "--out", str(out), "--shape", "11", "11", "--pixel-scale", "0.1",
                   "--mask-radius", "0.5", "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(ms) in err and "flag" in err.lower()
    assert not out.exists()


def test_copy_visibilities_streams_the_source_into_the_store(tmp_path, client, point_ms):
    """--copy-visibilities (copy_visibilities=True) on a Measurement Set: inputs/ holds exactly what the reader gives,
    streamed chunk by chunk, and the results equal those of the store that only records the source."""
    ms = str(point_ms[0])
    grid = ImageGrid.circular((15, 15), (0.1, 0.1), 0.7)
    kwargs = dict(block_size=64, client=client, progress=False, log=quiet, chunk_size=700)
    copied = compute(ms, grid, tmp_path / "copied.zarr", copy_visibilities=True, **kwargs)
    recorded = compute(ms, grid, tmp_path / "recorded.zarr", **kwargs)
    assert copied.copied_visibilities and not recorded.copied_visibilities
    from wtilde_dask.io import open_visibilities

    expected = concatenate_chunks(open_visibilities(ms, chunk_size=700, order="rows"))  # as compute() opens it
    ds = copied.dataset()  # read back from inputs/
    np.testing.assert_array_equal(ds.uv_wavelengths, expected.uv_wavelengths)
    np.testing.assert_array_equal(ds.visibilities, expected.visibilities)
    np.testing.assert_array_equal(ds.noise_map, expected.noise_map)
    assert copied.attrs["dataset"]["n_visibilities"] == expected.n_visibilities
    assert copied.fingerprint == recorded.fingerprint  # the source record, not the copy, identifies the data
    for name in ("kernel", "dirty_image"):
        assert rel(copied.read_array(name), recorded.read_array(name)) <= TOL
    assert rel(copied.to_dask().compute(), recorded.to_dask().compute()) <= TOL


def test_measurement_set_read_in_row_order_by_default(tmp_path, client, point_ms):
    """compute() on a Measurement Set path reads it with order="rows" (each cell once); the store records the order
    and the pass's chunk size, store_source() opens the set again with both (the same chunks), the results equal a
    store made from the recipe-order reader (<= 1e-12), a rerun is bit-identical, and load_dataset keeps the
    recipe's order."""
    from wtilde_dask.dataset import load_dataset
    from wtilde_dask.io import open_visibilities

    ms = str(point_ms[0])
    grid = ImageGrid.circular((15, 15), (0.1, 0.1), 0.7)
    kwargs = dict(block_size=64, client=client, progress=False, log=quiet)
    rows = compute(ms, grid, tmp_path / "rows.zarr", chunk_size=500, method="lattice", **kwargs)
    assert rows.source_record()["order"] == "rows" and rows.ingest_state()["plan"]["chunk_size"] == 500
    # 2 windows x 6 channels x 300 rows, chunks of 500 // 6 = 83 rows with all 6 channels: 4 chunks per window
    assert rows.ingest_state()["plan"]["n_chunks"] == 8
    again = store_source(rows)
    assert (again.order, again.chunk_size) == ("rows", 500)
    assert again.chunk_ids() == open_visibilities(ms, chunk_size=500, order="rows").chunk_ids()
    recipe = compute(open_visibilities(ms, chunk_size=500, order="recipe"), grid, tmp_path / "recipe.zarr",
                     method="lattice", **kwargs)
    assert recipe.source_record()["order"] == "recipe" and recipe.ingest_state()["plan"]["n_chunks"] == 12
    assert rel(rows.to_dask().compute(), recipe.to_dask().compute()) <= TOL
    for name in ("kernel", "dirty_image"):
        assert rel(rows.read_array(name), recipe.read_array(name)) <= TOL
    a, b = rows.visibility_sums(), recipe.visibility_sums()
    assert (a["n_visibilities"], a["n_flagged"]) == (b["n_visibilities"], b["n_flagged"])
    for name in ("chi_squared_data", "noise_normalization"):
        assert abs(a[name] - b[name]) <= TOL * abs(b[name])
    # the same visibilities, in another order
    ds_rows, ds_recipe = rows.dataset(), load_dataset(ms)
    expected = concatenate_chunks(open_visibilities(ms))  # the recipe's order (what export-fits writes)
    np.testing.assert_array_equal(ds_recipe.uv_wavelengths, expected.uv_wavelengths)
    assert not np.array_equal(ds_rows.uv_wavelengths, ds_recipe.uv_wavelengths)
    k_rows, k_recipe = np.lexsort(ds_rows.uv_wavelengths.T), np.lexsort(ds_recipe.uv_wavelengths.T)
    for name in ("uv_wavelengths", "visibilities", "noise_map"):
        np.testing.assert_array_equal(getattr(ds_rows, name)[k_rows], getattr(ds_recipe, name)[k_recipe])
    # a store made in recipe order (as before order="rows" was the default) is resumed in its own order
    from wtilde_dask.compute import precheck

    assert precheck(tmp_path / "recipe.zarr", open_visibilities(ms, chunk_size=500, order="rows"), grid,
                    method="lattice", block_size=64) == "resume"
    lines = []
    resumed = compute(ms, grid, tmp_path / "recipe.zarr", chunk_size=500, method="lattice", block_size=64,
                      client=client, progress=False, log=lines.append)
    assert any("resuming" in line for line in lines) and resumed.source_record()["order"] == "recipe"
    # a rerun (another store, the same order and chunk size) is bit-identical
    rerun = compute(ms, grid, tmp_path / "rerun.zarr", chunk_size=500, method="lattice", **kwargs)
    for name in ("kernel", "dirty_image"):
        np.testing.assert_array_equal(rerun.read_array(name), rows.read_array(name))
    assert rerun.visibility_sums() == rows.visibility_sums()


def test_fitter_needs_nothing_but_the_store(tmp_path, client, point_ms):
    """A store made from a Measurement Set without copying: after the set is deleted, WTildeFitter (fft and dense
    paths) gives the brute-force evidence computed from the visibilities the reader gave before the deletion."""
    import shutil

    import scipy.sparse as sp

    from wtilde_dask.inversion import WTildeFitter
    from wtilde_dask.inversion.reference import inversion_reference
    from wtilde_dask.io import open_visibilities

    ms = tmp_path / "gone.ms"
    shutil.copytree(point_ms[0], ms)
    grid = ImageGrid.circular((15, 15), (0.1, 0.1), 0.7)
    store = compute(str(ms), grid, tmp_path / "w.zarr", block_size=64, client=client, progress=False, log=quiet)
    c = concatenate_chunks(open_visibilities(str(ms)))
    shutil.rmtree(ms)
    rng = np.random.default_rng(2)
    M, S = grid.n_pixels, 12
    T = sp.csr_matrix((np.ones(M), (np.arange(M), rng.integers(0, S, M))), shape=(M, S))
    H = 0.5 * np.eye(S)
    ref = inversion_reference(grid.grid_radians, c.uv_wavelengths, c.visibilities, c.noise_map, T.toarray(), H)
    for path in ("fft", "dense"):
        fit = WTildeFitter.from_store(tmp_path / "w.zarr", path=path).fit(T, H)
        assert abs(fit.log_evidence - ref["log_evidence"]) <= 1e-8 * abs(ref["log_evidence"]), path
        assert abs(fit.noise_normalization - ref["noise_normalization"]) <= 1e-12 * abs(ref["noise_normalization"])
    with pytest.raises(Exception, match="gone.ms"):
        store.dataset()  # the visibilities themselves are only in the (deleted) source


REAL_MS = __import__("pathlib").Path(__file__).parent / "data" / "ms" / "alma_gama567624_1bl.ms"


def test_real_alma_ms_store_equals_exported_fits_store(tmp_path, client):
    """The real ALMA set: `wtilde compute` on the Measurement Set and on its `wtilde export-fits` folder give the same
    W-tilde, dirty image and visibility sums (<= 1e-12), and the same K and flagged counts as the reader."""
    assert wtilde(["export-fits", str(REAL_MS), str(tmp_path / "fits"), "--field", "GAMA567624", "-q"]) == 0
    grid = ImageGrid.circular((15, 15), (0.5, 0.5), 3.0)
    kwargs = dict(block_size=64, client=client, progress=False, log=quiet)
    from_ms = compute(str(REAL_MS), grid, tmp_path / "ms.zarr", chunk_size=100, **kwargs)
    from_fits = compute(str(tmp_path / "fits"), grid, tmp_path / "fits.zarr", **kwargs)
    assert not from_ms.copied_visibilities and from_fits.copied_visibilities
    assert rel(from_ms.to_dask().compute(), from_fits.to_dask().compute()) <= TOL
    for name in ("kernel", "dirty_image"):
        assert rel(from_ms.read_array(name), from_fits.read_array(name)) <= TOL
    a, b = from_ms.visibility_sums(), from_fits.visibility_sums()
    assert a["n_visibilities"] == b["n_visibilities"] == 440
    for name in ("chi_squared_data", "noise_normalization"):
        assert abs(a[name] - b[name]) <= TOL * abs(b[name])


@pytest.mark.peer
def test_bench_ingest_runs_and_reports(tmp_path, capsys):
    """`python -m wtilde_dask.bench ingest` at a tiny size: every row printed, the machine-readable line parsed (the
    figures themselves are in the README, printed by the full-size command)."""
    import autoarray  # noqa: F401  (a required test dependency: an import error fails the test)
    from wtilde_dask.bench import run_benchmark

    assert run_benchmark("ingest", ["--visibilities", "3e5", "--chunk-size", "1e5", "--workers", "1", "--shape", "24",
                                    "--mask-radius", "0.5", "--peer-visibilities", "2e4", "4e4",
                                    "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    values = dict(item.split("=") for item in out.strip().splitlines()[-1].split())
    assert float(values["ingest_vis_per_s"]) > 0 and float(values["peer_vis_per_s"]) > 0
    assert 0 < float(values["peak_rss_max_gib"]) < 2 and float(values["peer_k_max"]) > 0
    assert "plain getcol read" in out and "apply_sparse_operator_from_chunks" in out
    # the NUFFT floor (the pass's NUFFTs alone) bounds the pass: ratio_bound = floor / plain read
    assert float(values["nufft_floor_vis_per_s"]) > 0 and float(values["ratio_bound"]) > 0
    assert "NUFFT floor" in out and "where the pass's task time goes" in out
    assert not (tmp_path / "store.zarr").exists()  # the bench's store is removed unless --keep


def test_keep_freed_memory_is_set_once_per_process():
    """The pass's worker tasks raise glibc's mmap / trim thresholds (Dask's nanny freezes them at 64-128 KiB, which
    made every chunk array a fresh mmap); a no-op returning False elsewhere, idempotent."""
    import platform

    from wtilde_dask.ingest import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
