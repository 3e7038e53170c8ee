"""The FFT floor of ``bench likelihood`` (:mod:`wtilde_dask.bench.fft_floor`): every way it tries is timed, the
fastest named, and the XLA floor never hangs.

The XLA floor once ran its last, smaller batch of columns beside the ``lax.map`` over the full batches: two FFTs
that XLA:CPU ran at the same time on its intra-op thread pool then waited on each other for ever (on this 2-core
machine within the first few calls at 100 columns of a 31 x 31 box, batches 8-64). A child process repeats those
calls so that a hang is a failure after the timeout, not a stuck test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from wtilde_dask.bench.fft_floor import fft_floor

REPEAT_SCRIPT = textwrap.dedent("""
    from wtilde_dask.bench.fft_floor import xla_floor
    for i in range(6):
        for batch in (8, 16, 32, 64):
            assert xla_floor(100, (31, 31), (62, 62), batch, repeats=2) > 0
    print("RAN", 6 * 4)
""")


def test_xla_floor_with_a_remainder_batch_never_hangs():
    proc = subprocess.run([sys.executable, "-c", REPEAT_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "RAN 24"


def test_fft_floor_times_every_way_and_names_the_fastest():
    times = fft_floor(37, (12, 14), (24, 28), nthreads=2, repeats=1, xla_batch_sizes=(8, 64), ducc_batch_sizes=(16,))
    assert set(times) == {"XLA, batch 8", "XLA, batch 64", "ducc0 2 threads, batch 16",
                          "ducc0 2 threads, one batch of 16 per thread",
                          "ducc0 2 threads, one batch of 16 per thread, y last", "best"}
    name, seconds = times["best"]
    assert seconds == min(v for k, v in times.items() if k != "best") and times[name] == seconds
    assert all(v > 0 for k, v in times.items() if k != "best")


def test_floor_forward_transforms_run_on_the_rows_each_batch_touches():
    import numpy as np

    from wtilde_dask.bench.fft_floor import batch_row_counts

    column_rows = [np.array([0, 3]), np.array([3, 4]), np.array([7]), np.array([0, 1, 2]), np.array([11])]
    assert batch_row_counts(column_rows, 2) == [3, 4, 1]  # {0, 3, 4}, {7, 0, 1, 2}, {11}
    assert batch_row_counts(column_rows, 8) == [7]
    times = fft_floor(len(column_rows), (12, 14), (24, 28), nthreads=2, repeats=1, xla_batch_sizes=(8,),
                      ducc_batch_sizes=(2,), column_rows=column_rows)
    assert set(times) == {"XLA, batch 8", "ducc0 2 threads, batch 2", "ducc0 2 threads, one batch of 2 per thread",
                          "ducc0 2 threads, one batch of 2 per thread, y last", "best"}
    assert all(v > 0 for k, v in times.items() if k != "best")


@pytest.mark.parametrize("y_last", [False, True])
def test_floor_transforms_are_a_convolution_with_the_unit_kernel(y_last):
    """The floor's four transforms on either spectrum layout: forward and inverse of the zero-padded box with a
    unit kernel spectrum give the images back (numpy.fft as the independent reference of the forward half)."""
    import numpy as np

    from wtilde_dask.bench.fft_floor import round_trip

    b, ny, nx, Ny, Nx = 3, 12, 14, 24, 28
    rows = np.zeros((b, ny, Nx))
    rows[:, :, :nx] = np.random.default_rng(4).normal(size=(b, ny, nx))
    shape = (b, Nx // 2 + 1, Ny) if y_last else (b, Ny, Nx // 2 + 1)
    X_rows, X = np.zeros(shape, complex), np.empty(shape, complex)
    out = round_trip(rows, ny, X_rows, X, np.empty((b, ny, Nx)), y_last)
    np.testing.assert_allclose(out[:, :, :nx], rows[:, :, :nx], atol=1e-12)
    np.testing.assert_allclose(out[:, :, nx:], 0.0, atol=1e-12)
    spectrum = np.fft.rfft2(np.pad(rows, ((0, 0), (0, Ny - ny), (0, 0))), axes=(1, 2))  # (b, Ny, Nx//2+1)
    X_rows[:] = 0.0
    round_trip(rows, ny, X_rows, X, np.empty((b, ny, Nx)), y_last)
    forward = np.fft.fft(X_rows, axis=2 if y_last else 1)
    np.testing.assert_allclose(forward.transpose(0, 2, 1) if y_last else forward, spectrum, atol=1e-10)
