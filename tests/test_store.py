"""The Zarr store: layout, symmetric reader, fingerprint refusals, the lock, named arrays."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from wtilde_dask.dataset import Interferometer
from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels.reference import w_tilde_reference
from wtilde_dask.store import (StoreError, StoreLock, StoreLockedError, WTildeStore, block_checksum, open_w_tilde,
                               read_lock)


@pytest.fixture
def grid():
    return ImageGrid.circular((12, 12), (0.2, 0.2), 1.05)  # 88 pixels: not a multiple of the block size


def _fill(store, dataset, grid, blocks=None):
    """Write reference blocks (no cluster) and mark them done; returns the full reference matrix."""
    W = w_tilde_reference(grid.grid_radians, dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag)
    plan = store.plan
    entries = []
    for bi, bj in blocks or plan.blocks():
        checksum = store.write_block(bi, bj, W[plan.pixel_range(bi), plan.pixel_range(bj)])
        entries.append((bi, bj, checksum, 0.01))
    store.mark_done_many(entries)
    return W


def test_layout_and_symmetric_reader(tmp_path, sma_dataset, grid):
    path = tmp_path / "w.zarr"
    store = WTildeStore.create(path, sma_dataset, grid, method="direct", block_size=32)
    assert store.plan.n_blocks_side == 3 and store.plan.n_blocks == 6
    W = _fill(store, sma_dataset, grid)
    root = zarr.open_group(str(path), mode="r")
    a = dict(root.attrs)
    assert a["format_version"] == 1 and a["n_pixels"] == grid.n_pixels and a["block_size"] == 32
    assert set(a["fingerprint_components"]) == {"uv_wavelengths", "visibilities", "noise_map", "mask", "grid",
                                                "method", "dtype", "block_size"}
    assert root["w_tilde"].chunks == (32, 32) and root["ledger"].dtype == np.uint64
    # only upper blocks written: the chunk files of lower blocks do not exist
    assert (path / "w_tilde" / "c" / "0" / "2").exists() and not (path / "w_tilde" / "c" / "2" / "0").exists()
    np.testing.assert_array_equal(root["inputs/mask"][:], grid.mask)
    full = store.to_dask().compute()
    assert full.shape == (grid.n_pixels,) * 2
    np.testing.assert_allclose(full, W, rtol=0, atol=1e-12 * np.abs(W).max())
    np.testing.assert_array_equal(full[64:88, 0:32], full[0:32, 64:88].T)  # lower = transposed upper
    xa = open_w_tilde(path)
    assert xa.dims == ("pixel_i", "pixel_j")
    np.testing.assert_allclose(xa["y_i"].values, grid.grid_arcsec[:, 0])
    np.testing.assert_allclose(xa["x_j"].values, grid.grid_arcsec[:, 1])
    np.testing.assert_array_equal(xa.values, full)
    # inputs read back
    again = WTildeStore.open(path)
    np.testing.assert_array_equal(again.dataset().visibilities, sma_dataset.visibilities)
    np.testing.assert_array_equal(again.grid().grid_radians, grid.grid_radians)
    np.testing.assert_array_equal(again.grid().lattice_indices, grid.lattice_indices)
    assert again.is_complete() and again.ledger()[0, 2] == block_checksum(W[0:32, 64:88])


def test_incomplete_store_refused_unless_asked(tmp_path, sma_dataset, grid):
    store = WTildeStore.create(tmp_path / "w.zarr", sma_dataset, grid, method="direct", block_size=32)
    W = _fill(store, sma_dataset, grid, blocks=[(0, 0), (0, 2)])
    with pytest.raises(StoreError, match="incomplete, 2/6 blocks"):
        store.to_dask()
    part = store.to_dask(allow_incomplete=True).compute()
    np.testing.assert_allclose(part[0:32, 64:88], W[0:32, 64:88], atol=1e-12 * np.abs(W).max(), rtol=0)
    np.testing.assert_allclose(part[64:88, 0:32], W[64:88, 0:32], atol=1e-12 * np.abs(W).max(), rtol=0)
    assert np.isnan(part[32:64, 0:32]).all() and np.isnan(part[32:64, 32:64]).all()
    assert sorted(store.missing_blocks()) == [(0, 1), (1, 1), (1, 2), (2, 2)]


def _differs(store, dataset, grid, **kw):
    args = dict(method="direct", block_size=32, dtype="float64")
    args.update(kw)
    with pytest.raises(StoreError) as err:
        store.check_inputs(dataset, grid, **args)
    return str(err.value)


def test_fingerprint_mismatch_names_what_differs(tmp_path, sma_dataset, grid):
    store = WTildeStore.create(tmp_path / "w.zarr", sma_dataset, grid, method="direct", block_size=32)
    store.check_inputs(sma_dataset, grid, method="direct", block_size=32, dtype="float64")  # same: fine
    first = _differs(store, sma_dataset, grid, block_size=16).splitlines()[0]
    assert first.endswith("differs: block_size")
    assert "method" in _differs(store, sma_dataset, grid, method="lattice").splitlines()[0]
    msg = _differs(store, sma_dataset, grid, dtype="float32")
    assert "differs: dtype" in msg and "store has float64, given float32" in msg
    other_mask = ImageGrid.circular((12, 12), (0.2, 0.2), 0.85)
    msg = _differs(store, sma_dataset, other_mask).splitlines()[0]
    assert "mask" in msg and "grid" in msg and "method" not in msg
    noise = sma_dataset.noise_map * 1.5
    msg = _differs(store, Interferometer.from_arrays(sma_dataset.visibilities, noise, sma_dataset.uv_wavelengths), grid)
    assert msg.splitlines()[0].endswith("differs: noise_map")
    vis = sma_dataset.visibilities + 1.0
    msg = _differs(store, Interferometer.from_arrays(vis, sma_dataset.noise_map, sma_dataset.uv_wavelengths), grid)
    assert msg.splitlines()[0].endswith("differs: visibilities")
    uv = sma_dataset.uv_wavelengths * 1.01
    msg = _differs(store, Interferometer.from_arrays(sma_dataset.visibilities, sma_dataset.noise_map, uv), grid)
    assert msg.splitlines()[0].endswith("differs: uv_wavelengths")


def test_create_refuses_existing_and_foreign(tmp_path, sma_dataset, grid):
    path = tmp_path / "w.zarr"
    WTildeStore.create(path, sma_dataset, grid, method="direct", block_size=32)
    with pytest.raises(StoreError, match="already exists"):
        WTildeStore.create(path, sma_dataset, grid, method="direct", block_size=32)
    fresh = WTildeStore.create(path, sma_dataset, grid, method="direct", block_size=16, overwrite=True)
    assert fresh.block_size == 16 and fresh.n_done() == 0
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not a W-tilde store"):
        WTildeStore.create(foreign, sma_dataset, grid, method="direct", block_size=32, overwrite=True)
    assert (foreign / "cat.jpg").exists()
    with pytest.raises(StoreError, match="no W-tilde store"):
        WTildeStore.open(tmp_path / "nothing.zarr")


def test_named_arrays_and_checksum(tmp_path, sma_dataset, grid):
    store = WTildeStore.create(tmp_path / "w.zarr", sma_dataset, grid, method="direct", block_size=32)
    store.write_array("dirty_image", np.arange(grid.n_pixels, dtype=float), attrs={"units": "Jy"})
    store.write_array("inversion/reconstruction", np.ones(5))
    store.write_array("inversion/reconstruction", np.zeros(3))  # replaced
    np.testing.assert_array_equal(store.read_array("inversion/reconstruction"), np.zeros(3))
    assert store.array_attrs("dirty_image")["units"] == "Jy"
    assert {"dirty_image", "inversion/reconstruction"} <= set(store.array_names())
    with pytest.raises(StoreError, match="reserved"):
        store.write_array("w_tilde", np.ones(3))
    with pytest.raises(StoreError, match="no array"):
        store.read_array("kernel")
    with pytest.raises(StoreError, match="shape"):
        store.write_block(0, 2, np.ones((32, 32)))
    with pytest.raises(StoreError, match="bi <= bj"):
        store.write_block(1, 0, np.ones((32, 32)))
    a = np.random.default_rng(1).normal(size=(4, 4))
    b = a.copy()
    b[1, 2] = np.nextafter(b[1, 2], np.inf)
    assert block_checksum(a) != block_checksum(b) and block_checksum(a) == block_checksum(a.copy())


# ---------------------------------------------------------------------------------------------- lock
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant_lock(path, **attrs):
    (path / "lock").mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "token": "planted", "started": "then",
              "lease_until": time.time() + 60}
    record.update(attrs)
    (path / "lock" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": record}))


def test_second_lock_refused_while_live(tmp_path):
    path = tmp_path / "w.zarr"
    with StoreLock(path) as first:
        assert read_lock(path)["token"] == first.token
        with pytest.raises(StoreLockedError, match="another run holds it"):
            StoreLock(path).acquire()
    assert read_lock(path) is None  # released


def test_live_lock_of_another_host_refused(tmp_path):
    path = tmp_path / "w.zarr"
    _plant_lock(path, host="elsewhere-node-17", pid=1)
    with pytest.raises(StoreLockedError, match="elsewhere-node-17"):
        StoreLock(path).acquire()


@pytest.mark.parametrize("stale", ["dead_pid", "expired_lease"])
def test_stale_lock_taken_over(tmp_path, stale):
    path = tmp_path / "w.zarr"
    if stale == "dead_pid":
        _plant_lock(path, pid=_dead_pid())
    else:
        _plant_lock(path, host="elsewhere-node-17", pid=1, lease_until=time.time() - 5)
    messages = []
    with StoreLock(path, log=messages.append) as lock:
        assert read_lock(path)["token"] == lock.token
    assert "stale lock" in messages[0]
    assert ("is gone" if stale == "dead_pid" else "lease expired") in messages[0]


def test_lock_of_a_killed_unreaped_process_is_stale(tmp_path):
    """A run SIGKILLed whose parent has not reaped it yet (a zombie: its pid still answers signal 0) holds
    nothing: its lock is taken over, while a live process's lock is refused."""
    path = tmp_path / "w.zarr"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant_lock(path, pid=live.pid)
        with pytest.raises(StoreLockedError, match="another run holds it"):
            StoreLock(path).acquire()
        live.kill()
        deadline = time.monotonic() + 30
        while open(f"/proc/{live.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # not waited for: a zombie
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(live.pid, 0)  # the zombie's pid still answers
        messages = []
        with StoreLock(path, log=messages.append):
            pass
        assert f"owner process {live.pid}" in messages[0] and "is gone" in messages[0]
    finally:
        live.kill()
        live.wait()


def test_lease_is_refreshed_and_loss_detected(tmp_path):
    path = tmp_path / "w.zarr"
    with StoreLock(path, lease_s=2.0, refresh_s=0.2) as lock:
        first = read_lock(path)["lease_until"]
        time.sleep(0.7)
        assert read_lock(path)["lease_until"] > first
        _plant_lock(path, token="intruder")
        time.sleep(0.6)
        assert lock.lost
    assert read_lock(path)["token"] == "intruder"  # the loser does not delete the winner's lock
