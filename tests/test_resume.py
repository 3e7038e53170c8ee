"""Interruption: `wtilde compute` killed (SIGKILL to its whole process group) mid-run, then run again.

The second run must take over the dead run's lock, skip exactly the blocks the ledger holds, compute
only the rest, and end with a matrix identical bit for bit to an uninterrupted run.
"""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from wtilde_dask.cli import main
from wtilde_dask.store import WTildeStore, read_lock
from datasets import WTILDE, write_random_npz
from waiting import n_done

N_VIS = 48000  # ~0.3 s per block on one core: the ledger grows by a few blocks per flush
BLOCK = 48


@pytest.fixture(scope="module")
def dataset_npz(tmp_path_factory):
    return write_random_npz(tmp_path_factory.mktemp("data") / "synthetic.npz", N_VIS, seed=7)




def command(dataset, out):
    # M = 540 pixels, B = 48: 12 x 12 block grid, 78 blocks (direct products, visible time each)
    return WTILDE + ["compute", str(dataset), "--out", str(out),
            "--shape", "30", "30", "--pixel-scale", "0.1", "--mask-radius", "1.3", "--method", "direct",
            "--block-size", str(BLOCK), "--workers", "2", "--threads-per-worker", "1", "--no-progress"]


def run_to_end(cmd, timeout=300) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def uninterrupted(dataset_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "w.zarr"
    log = run_to_end(command(dataset_npz, out))
    assert "0 already done (skipped), 78 to compute" in log
    store = WTildeStore.open(out)
    return store.to_dask().compute(), store.ledger(), store.read_array("dirty_image")


@pytest.mark.parametrize("fraction", [0.05, 0.4, 0.8])
def test_killed_run_resumes_bit_identical(tmp_path, dataset_npz, uninterrupted, fraction, capsys):
    out = tmp_path / "w.zarr"
    cmd = command(dataset_npz, out)
    n_blocks = 78
    target = max(1, int(fraction * n_blocks))
    log_file = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and n_done(out) < target:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGSTOP)  # freeze the whole run where it stands (its pid stays alive)
        if fraction == 0.4 and proc.poll() is None:
            # a second run on the same store while the first is live: refused, store untouched
            assert main(cmd[3:]) == 2
            assert "another run holds it" in capsys.readouterr().err
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log_file.close()
    done_at_kill = n_done(out)
    assert 1 <= done_at_kill < n_blocks, f"killed at {done_at_kill}/{n_blocks} blocks: not mid-run"
    assert read_lock(out) is not None  # the dead run's lock is left behind...

    log = run_to_end(cmd)  # ...and does not block the resume
    assert "taking over a stale lock" in log and "is gone" in log
    assert f"{done_at_kill} already done (skipped), {n_blocks - done_at_kill} to compute" in log
    assert re.search(rf"done: {n_blocks - done_at_kill} blocks computed, {done_at_kill} skipped", log), log

    W_full, ledger_full, dirty_full = uninterrupted
    store = WTildeStore.open(out)
    assert store.is_complete() and read_lock(out) is None
    np.testing.assert_array_equal(store.ledger(), ledger_full)  # every block's checksum identical
    np.testing.assert_array_equal(store.to_dask().compute(), W_full)  # bit for bit
    np.testing.assert_array_equal(store.read_array("dirty_image"), dirty_full)
