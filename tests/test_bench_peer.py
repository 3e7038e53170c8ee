"""The benchmarks that compare with the peer (PyAutoArray / PyAutoLens 2026.10.26.1) run against it at small
sizes and print agreeing numbers (no timing asserts: the figures are in the README, printed by these commands)."""

from __future__ import annotations

import json
import re

import pytest

from wtilde_dask.bench import run_benchmark

pytestmark = pytest.mark.peer


def test_bench_lattice_against_every_peer_builder(capsys):
    import autoarray  # noqa: F401  (a required test dependency: an import error fails the test)
    assert run_benchmark("lattice", ["--cases", "16x16:3000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    row = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))["cases"][0]
    assert row["box"] == [16, 16] and row["K"] == 3000
    import inspect

    from autoarray.inversion.inversion.interferometer import inversion_interferometer_util as util

    current = "method" in inspect.signature(util.nufft_precision_operator_from).parameters
    builders = ("nufft", "jax", "numpy") if current else ("jax", "numpy")
    for b in builders:  # the peer's preload equals ours, each measured in full at this size
        assert row[f"err_{b}_rel_sum_w"] < 1e-11, (b, row)
        assert row[f"peer_{b}_K_run"] == 3000 and not row[f"peer_{b}_extrapolated"]
        assert row[f"ratio_{b}"] > 0
    assert "peer NUFFT (default)" in out or not current


def test_bench_inversion_against_the_peer(capsys):
    import autolens  # noqa: F401  (a required test dependency: an import error fails the test)
    assert run_benchmark("inversion", ["--pixels", "300", "--source-pixels", "64", "--visibilities", "500",
                                       "--block-size", "128", "--repeats", "1", "--workers", "1",
                                       "--paths", "fft,peer,evidence"]) == 0
    out = capsys.readouterr().out
    # F of the peer's two branches equals ours (last column: max|dF|/max|F| against the fft path)
    for name in ("peer (jax.jit)", "peer (as called)"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert float(line.split()[-1]) < 1e-10, line
    # ours on the peer's own T and H gives the peer's log evidence
    check = float(re.search(r"relative difference ([0-9.e+-]+)\)", out).group(1))
    assert check < 1e-8
    for row in ("ours NumPy (lens -> T, H -> evidence)", "ours JAX jit (lens -> evidence)",
                "peer FitInterferometer jit, linear solver", "peer FitInterferometer jit, default (positive-only)"):
        assert row in out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"fft_speedup_vs_peer=\S+ out_of_core_read_fraction=nan evidence_speedup_vs_peer=\d+\.?\d*", last), last


def test_bench_likelihood_against_the_peer(capsys):
    import autolens  # noqa: F401  (a required test dependency: an import error fails the test)
    assert run_benchmark("likelihood", ["--visibilities", "3000", "--shape", "40", "40", "--pixel-scale", "0.1",
                                        "--mask-radius", "1.5", "--mesh-shape", "8", "8", "--repeats", "1",
                                        "--batch", "2", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    # the JAX evaluation equals the NumPy one on the same lens, mesh and regularization
    rel = float(re.search(r"NumPy [0-9.e+-]+, relative difference ([0-9.e+-]+);", out).group(1))
    assert rel < 1e-8, out
    for row in ("ours JAX jit, single", "ours JAX batch (lax.map), per item of 2", "ours JAX vmap, per item of 2",
                "ours JAX value_and_grad (7 params)",
                "ours NumPy (lens -> T, H -> evidence)", "peer FitInterferometer jit, linear solver"):
        assert row in out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"jax_s=\S+ jax_map_s_per_item=\S+ jax_vmap_s_per_item=\S+ grad_s=\S+ numpy_s=\S+ jax_vs_numpy=\S+ "
                        r"peer_jit_s=\S+ speedup_vs_peer_jit=\S+", last), last
