"""The direct benchmark command prints its table and the machine-readable last line (no timing asserts)."""

from __future__ import annotations

import re

import pytest

from wtilde_dask.bench import run_benchmark


def test_bench_direct_small(capsys):
    assert run_benchmark("direct", ["--block-size", "32", "--visibilities", "300", "--repeats", "1", "--scan-visibilities", "20"]) == 0
    out = capsys.readouterr().out
    for text in ("GFLOP/s", "NumPy A @ B.T (dgemm)", "lax.scan per-element", "XLA backend: cpu", "BLAS:", "speed-up over lax.scan"):
        assert text in out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio_to_gemm=\d+\.\d+", last), last
    diff = float(re.search(r"\(([0-9.e+-]+) of max\|W\|", out).group(1))
    assert diff < 1e-12


def test_bench_direct_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        run_benchmark("direct", ["--block-size", "0"])
    assert "--block-size = 0 must be >= 1" in capsys.readouterr().err
