"""The orchestrator on a real LocalCluster (2 single-threaded worker processes) and real stores."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from wtilde_dask.compute import ComputeError, compute, store_status, verify_store
from wtilde_dask.dataset import Interferometer
from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels.lattice import lattice_kernels, w_tilde_lattice
from wtilde_dask.kernels.reference import dirty_image_reference, w_tilde_reference
from wtilde_dask.store import StoreError, StoreLock, StoreLockedError, WTildeStore
from waiting import n_done

RTOL = 1e-12



def synthetic_dataset(n_vis, seed=3, uv_max=4e4):
    """Random uv coverage and unequal real/imag noise (exercises the Hankel part of the lattice path)."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-uv_max, uv_max, size=(n_vis, 2))
    noise = rng.uniform(0.5, 2.0, n_vis) + 1j * rng.uniform(0.5, 2.0, n_vis)
    vis = rng.normal(size=n_vis) + 1j * rng.normal(size=n_vis)
    return Interferometer.from_arrays(vis, noise, uv, name=f"synthetic-{n_vis}")


def reference(dataset, grid):
    return w_tilde_reference(grid.grid_radians, dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag)


def rel_error(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def quiet(*args):
    pass


@pytest.mark.parametrize("method", ["direct", "lattice"])
def test_ragged_blocks_match_reference(tmp_path, client, method):
    dataset = synthetic_dataset(300)
    grid = ImageGrid.circular((30, 30), (0.1, 0.1), 1.3)  # M = 540 = 8 x 64 + 28
    assert grid.n_pixels % 64 != 0
    store = compute(dataset, grid, tmp_path / "w.zarr", block_size=64, method=method, client=client,
                    progress=False, log=quiet)
    assert store.method == method and store.is_complete() and store.plan.n_blocks == 45
    W = store.to_dask().compute()
    assert rel_error(W, reference(dataset, grid)) <= RTOL
    d = dirty_image_reference(grid.grid_radians, dataset.uv_wavelengths, dataset.visibilities,
                              dataset.weights_real, dataset.weights_imag)
    assert rel_error(store.read_array("dirty_image"), d) <= RTOL
    if method == "lattice":
        assert store.has_array("kernel") and store.has_array("kernel_hankel")  # unequal noise: Hankel part
    meta = client.get_metadata("wtilde")
    assert meta["state"] == "finished" and meta["done"] == meta["n_blocks"] == 45 and meta["method"] == method
    assert meta["store"] == str((tmp_path / "w.zarr").resolve()) and meta["failed"] == 0


def test_block_larger_than_matrix_sma(tmp_path, client, sma_dataset):
    grid = ImageGrid.circular((24, 24), (0.1, 0.1), 1.0)
    logs = []
    store = compute(sma_dataset, grid, tmp_path / "w.zarr", block_size=1024, client=client, progress=False,
                    log=logs.append)
    assert store.method == "lattice" and store.plan.n_blocks == 1  # auto -> lattice for a masked grid
    W = store.to_dask().compute()
    assert W.shape == (grid.n_pixels,) * 2
    assert rel_error(W, reference(sma_dataset, grid)) <= RTOL
    assert any("1 upper-triangle blocks; 0 already done (skipped), 1 to compute" in m for m in logs)
    assert any("lattice: kernel" in m for m in logs)


def test_sma_direct_and_lattice_agree_with_reference(tmp_path, client, sma_dataset):
    grid = ImageGrid.circular((40, 40), (0.05, 0.05), 0.9)
    ref = reference(sma_dataset, grid)
    for method in ("direct", "lattice"):
        store = compute(sma_dataset, grid, tmp_path / f"{method}.zarr", block_size=100, method=method,
                        client=client, progress=False, log=quiet)
        W = store.to_xarray().values
        assert rel_error(W, ref) <= RTOL, method
        report = verify_store(store.path, sample=2, seed=0, log=quiet)
        assert report["ok"] and report["checked"] == store.plan.n_blocks


def test_irregular_points_use_direct(tmp_path, client):
    rng = np.random.default_rng(5)
    grid = ImageGrid.from_points(rng.uniform(-1e-5, 1e-5, size=(150, 2)))
    dataset = synthetic_dataset(200)
    store = compute(dataset, grid, tmp_path / "w.zarr", block_size=64, client=client, progress=False, log=quiet)
    assert store.method == "direct"
    assert rel_error(store.to_dask().compute(), reference(dataset, grid)) <= RTOL
    with pytest.raises(ValueError, match="lattice"):
        compute(dataset, grid, tmp_path / "x.zarr", method="lattice", client=client, log=quiet)


def test_resume_recomputes_only_missing_blocks(tmp_path, client, sma_dataset):
    grid = ImageGrid.circular((20, 20), (0.1, 0.1), 1.0)
    path = tmp_path / "w.zarr"
    store = compute(sma_dataset, grid, path, block_size=64, method="direct", client=client, progress=False, log=quiet)
    full = store.to_dask().compute()
    before = store.ledger()
    store.clear_blocks([(0, 1), (2, 4)])
    logs = []
    again = compute(sma_dataset, grid, path, block_size=64, method="direct", client=client, progress=False,
                    log=logs.append)
    n = store.plan.n_blocks
    assert any(f"{n - 2} already done (skipped), 2 to compute" in m for m in logs)
    assert any("done: 2 blocks computed" in m for m in logs)
    np.testing.assert_array_equal(again.ledger(), before)
    np.testing.assert_array_equal(again.to_dask().compute(), full)
    status = store_status(path)
    assert status["done"] == n and status["remaining"] == 0 and not status["running"]


def test_refusals_leave_no_new_store(tmp_path, client, sma_dataset):
    grid = ImageGrid.circular((20, 20), (0.1, 0.1), 1.0)
    with pytest.raises(StoreError, match="dtype"):
        compute(sma_dataset, grid, tmp_path / "bad.zarr", dtype="float16", client=client, log=quiet)
    assert not (tmp_path / "bad.zarr").exists()
    path = tmp_path / "w.zarr"
    compute(sma_dataset, grid, path, block_size=64, client=client, progress=False, log=quiet)
    with pytest.raises(StoreError, match="differs: block_size"):
        compute(sma_dataset, grid, path, block_size=32, client=client, log=quiet)
    with StoreLock(path):
        with pytest.raises(StoreLockedError, match="another run holds it"):
            compute(sma_dataset, grid, path, block_size=32, overwrite=True, client=client, log=quiet)
    assert WTildeStore.open(path).is_complete()  # neither refusal touched the store
    store = compute(sma_dataset, grid, path, block_size=32, overwrite=True, client=client, progress=False, log=quiet)
    assert store.block_size == 32 and store.is_complete()


def test_failed_block_reported_then_resumed(tmp_path, client, sma_dataset):
    """A block whose task keeps failing: ComputeError names it, the rest is kept, the next run finishes."""
    grid = ImageGrid.circular((20, 20), (0.1, 0.1), 1.0)  # 316 pixels: blocks of 64, last block row has 60
    path = tmp_path / "w.zarr"

    def inject():
        import wtilde_dask.kernels.direct as direct

        original = getattr(direct, "_untouched_w_tilde_block", direct.w_tilde_block)
        direct._untouched_w_tilde_block = original

        def failing(grid_rows, *args, **kwargs):
            if len(grid_rows) == 60 and kwargs.get("symmetric"):  # block (4, 4) only
                raise RuntimeError("injected failure")
            return original(grid_rows, *args, **kwargs)

        direct.w_tilde_block = failing

    def restore():
        import wtilde_dask.kernels.direct as direct

        direct.w_tilde_block = getattr(direct, "_untouched_w_tilde_block", direct.w_tilde_block)

    client.run(inject)
    logs = []
    try:
        with pytest.raises(ComputeError, match=r"1 block\(s\) failed, first \(4, 4\): RuntimeError: injected failure"):
            compute(sma_dataset, grid, path, block_size=64, method="direct", client=client, progress=False,
                    log=logs.append)
    finally:
        client.run(restore)
    store = WTildeStore.open(path)
    assert store.missing_blocks() == [(4, 4)] and store.attrs["last_run"]["state"] == "failed"
    assert client.get_metadata("wtilde")["state"] == "failed"
    logs = []
    store = compute(sma_dataset, grid, path, block_size=64, method="direct", client=client, progress=False,
                    log=logs.append)
    assert any("14 already done (skipped), 1 to compute" in m for m in logs)
    assert rel_error(store.to_dask().compute(), reference(sma_dataset, grid)) <= RTOL


def test_worker_killed_mid_run(tmp_path, client):
    """A worker process dies while blocks run: the run still finishes and every block is correct."""
    dataset = synthetic_dataset(20000, seed=11)
    grid = ImageGrid.circular((20, 20), (0.1, 0.1), 1.0)  # 316 pixels, 10x10 blocks of 32
    path = tmp_path / "w.zarr"
    pids = client.run(os.getpid)
    result = {}

    def run():
        try:
            result["store"] = compute(dataset, grid, path, block_size=32, method="direct", client=client,
                                      progress=False, max_in_flight=4, log=quiet)
        except BaseException as err:  # noqa: BLE001
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    killed = None
    while thread.is_alive() and time.monotonic() < deadline:
        if n_done(path) >= 1:
            killed = next(iter(pids.values()))
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None, "the run finished before a worker could be killed"
    assert "error" not in result, result.get("error")
    store = result["store"]
    assert store.is_complete()
    assert killed not in client.run(os.getpid).values()  # it really died (the nanny started a new one)
    # the whole matrix, independently, by the lattice kernels (fast; agrees with the reference to ~1e-14)
    expected = w_tilde_lattice(lattice_kernels(dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag, grid))
    assert rel_error(store.to_dask().compute(), expected) <= RTOL
    assert verify_store(path, sample=1, seed=1, log=quiet)["ok"]
    client.wait_for_workers(2, timeout=60)


def test_python_api(tmp_path, client):
    """The README example: wtilde_dask.compute(...) (also after the submodule was imported) + open_w_tilde."""
    import wtilde_dask
    import wtilde_dask.compute  # noqa: F401  (shadows the lazy export with the module: must stay callable)

    grid = wtilde_dask.ImageGrid.circular((16, 16), (0.1, 0.1), 0.8)
    store = wtilde_dask.compute("sma", grid, tmp_path / "w.zarr", block_size=64, client=client, progress=False,
                                log=quiet)
    W = wtilde_dask.open_w_tilde(tmp_path / "w.zarr")
    assert W.shape == (grid.n_pixels, grid.n_pixels) and store.is_complete()
    np.testing.assert_allclose(W.values, reference(store.dataset(), grid), rtol=0, atol=RTOL * float(abs(W).max()))


def test_two_stores_at_once_on_one_scheduler(tmp_path, client):
    """Two runs sharing a scheduler must not share task keys (each block task names its run)."""
    grid = ImageGrid.circular((16, 16), (0.1, 0.1), 0.75)
    datasets = [synthetic_dataset(150, seed=s) for s in (11, 12)]
    errors = []

    def run(i):
        try:
            compute(datasets[i], grid, tmp_path / f"w{i}.zarr", block_size=32, method="direct", client=client,
                    progress=False, log=quiet)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for i in range(2):
        got = WTildeStore.open(tmp_path / f"w{i}.zarr").to_dask().compute()
        assert rel_error(got, reference(datasets[i], grid)) <= RTOL
