"""`wtilde compute | status | verify | info` through the real command line entry point."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from wtilde_dask.cli import main
from wtilde_dask.store import WTildeStore


@pytest.fixture(scope="module")
def sma_store(tmp_path_factory):
    """The README command on the bundled SMA data (80x80 at 0.05", r = 4": 6400 pixels, 28 blocks of 1024)."""
    out = tmp_path_factory.mktemp("sma") / "sma_w_tilde.zarr"
    assert main(["compute", "sma", "--out", str(out), "--workers", "2", "--threads-per-worker", "1", "--no-progress"]) == 0
    return out


def test_compute_sma_defaults(sma_store, sma_dataset):
    store = WTildeStore.open(sma_store)
    assert store.n_pixels == 6400 and store.block_size == 1024 and store.method == "lattice"
    assert store.is_complete() and store.has_array("dirty_image") and store.has_array("kernel")
    assert store.grid().shape_native == (80, 80) and store.grid().pixel_scales == (0.05, 0.05)
    np.testing.assert_array_equal(store.dataset().uv_wavelengths, sma_dataset.uv_wavelengths)


def test_rerun_skips_everything(sma_store, capsys):
    assert main(["compute", "sma", "--out", str(sma_store), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "28 already done (skipped), 0 to compute" in out and "done: 0 blocks computed" in out


def test_info_and_status(sma_store, capsys):
    assert main(["info", str(sma_store)]) == 0
    out = capsys.readouterr().out
    assert "M = 6400 pixels" in out and "28 upper-triangle blocks, 28 done" in out and "fingerprint" in out
    assert "mask" in out and "80x80 mask, 6400 unmasked pixels" in out
    assert main(["info", str(sma_store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_blocks"] == 28
    assert main(["status", str(sma_store)]) == 0
    out = capsys.readouterr().out
    assert "28/28 done (100.0%)" in out and "not running" in out and "mean" in out


def test_status_of_a_dead_run(tmp_path, sma_store, capsys):
    """A store whose run died: partial ledger + a lock left by a process that is gone."""
    import shutil

    copy = tmp_path / "dead.zarr"
    shutil.copytree(sma_store, copy)
    store = WTildeStore.open(copy, mode="r+")
    store.clear_blocks([(0, 6), (5, 6), (6, 6)])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (copy / "lock").mkdir()
    (copy / "lock" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "host": socket.gethostname(), "pid": gone.pid, "started": "earlier", "lease_until": 0, "token": "x"}}))
    assert main(["status", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "25/28 done (89.3%), 3 to go" in out
    assert "not running (lock stale" in out and "ETA:" in out and "unknown" not in out.split("ETA:")[1].splitlines()[0]
    assert main(["status", str(copy), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["done"] == 25 and st["remaining"] == 3 and st["eta_s"] > 0 and not st["running"]
    png = tmp_path / "blocks.png"
    assert main(["status", str(copy), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verify_detects_altered_chunk(tmp_path, sma_store, capsys):
    import shutil

    assert main(["verify", str(sma_store), "--sample", "1", "--seed", "0"]) == 0
    assert "verify: OK" in capsys.readouterr().out
    copy = tmp_path / "altered.zarr"
    shutil.copytree(sma_store, copy)
    chunk = copy / WTildeStore.open(copy).chunk_key(1, 3)
    raw = bytearray(chunk.read_bytes())
    raw[4096:4104] = np.float64(1.5).tobytes()  # one value changed on disk
    chunk.write_bytes(bytes(raw))
    assert main(["verify", str(copy), "--sample", "0"]) == 1
    out = capsys.readouterr().out
    assert "block (1, 3): checksum differs from the ledger" in out and "verify: FAILED" in out
    assert "27/28 stored blocks match" in out


def test_fingerprint_refusal_names_the_option(sma_store, capsys):
    assert main(["compute", "sma", "--out", str(sma_store), "--block-size", "512"]) == 2
    err = capsys.readouterr().err
    assert "differs: block_size" in err and "--overwrite" in err
    assert main(["compute", "sma", "--out", str(sma_store), "--mask-radius", "1.0"]) == 2
    err = capsys.readouterr().err
    assert "differs: grid, mask" in err and "6400 unmasked pixels" in err
    assert main(["compute", "sma", "--out", str(sma_store), "--method", "direct"]) == 2
    assert "differs: method" in capsys.readouterr().err


def _npz(path, K=20, **change):
    arrays = {"visibilities": np.ones(K, complex), "noise_map": np.full(K, 1 + 1j),
              "uv_wavelengths": np.linspace(-1e4, 1e4, 2 * K).reshape(K, 2)}
    arrays.update(change)
    np.savez(path, **arrays)
    return path


def _bad_fits_folder(folder, K=20):
    folder.mkdir()
    fits.writeto(folder / "data.fits", np.ones((K, 3)))  # wrong shape: (K, 3)
    fits.writeto(folder / "noise_map.fits", np.ones((K, 2)))
    fits.writeto(folder / "uv_wavelengths.fits", np.ones((K, 2)))
    return folder


@pytest.mark.parametrize("case", ["nan_noise", "zero_noise", "mismatched_lengths", "wrong_fits_shape", "empty_mask",
                                  "missing_shape"])
def test_bad_inputs_clear_error_and_no_store(tmp_path, case, capsys):
    K = 20
    args = ["--shape", "10", "10", "--pixel-scale", "0.1", "--mask-radius", "0.3"]
    if case == "nan_noise":
        noise = np.full(K, 1 + 1j)
        noise[3] = np.nan
        data = _npz(tmp_path / "d.npz", noise_map=noise)
        expect = "noise_map"
    elif case == "zero_noise":
        data = _npz(tmp_path / "d.npz", noise_map=np.zeros(K, complex))
        expect = "noise_map"
    elif case == "mismatched_lengths":
        data = _npz(tmp_path / "d.npz", uv_wavelengths=np.ones((K + 1, 2)))
        expect = "uv_wavelengths"
    elif case == "wrong_fits_shape":
        data = _bad_fits_folder(tmp_path / "fits")
        expect = "data.fits"
    elif case == "empty_mask":
        data = _npz(tmp_path / "d.npz")
        args[-1] = "0.001"
        expect = "no unmasked pixel"
    else:
        data = _npz(tmp_path / "d.npz")
        args = args[3:]
        expect = "--shape"
    out = tmp_path / "w.zarr"
    assert main(["compute", str(data), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert "error" in err and expect in err, err
    assert not out.exists()


def test_foreign_out_directory_refused(tmp_path, capsys):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    assert main(["compute", "sma", "--out", str(foreign)]) == 2
    assert "not a W-tilde store" in capsys.readouterr().err
    assert sorted(os.listdir(foreign)) == ["todo.txt"]


def test_verify_recomputes_a_bounded_sample_and_catches_wrong_values(tmp_path, sma_store, capsys):
    """A block whose values are wrong but whose ledger checksum was rewritten to match passes the checksum
    pass and must be caught by the reference recomputation, which looks at E x E entries per block only."""
    import shutil

    from wtilde_dask.store import block_checksum

    copy = tmp_path / "consistent_but_wrong.zarr"
    shutil.copytree(sma_store, copy)
    store = WTildeStore.open(copy, mode="r+")
    wrong = store.read_block(0, 0) * 1.001
    store.mark_done(0, 0, store.write_block(0, 0, wrong), 0.1)
    assert block_checksum(store.read_block(0, 0)) == int(store.ledger()[0, 0])
    assert main(["verify", str(copy), "--sample", "28", "--entries", "16", "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "28/28 stored blocks match" in out
    assert "block (0, 0) vs reference formula (16 x 16 entries)" in out and "FAILED" in out
    assert "dirty_image vs reference formula (16 pixels)" in out
