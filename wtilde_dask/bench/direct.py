"""Benchmark of the direct W-tilde block kernel against the machine's own float64 matrix product.

    python -m wtilde_dask.bench direct --block-size 1024 --visibilities 20000 [--repeats 3]

Prints, measured in the same run on the same shapes (B pixels per block side, K visibilities):

* the block kernel's effective rate, counting 4 B^2 K floating-point operations per off-diagonal block
  (the flops of ``A @ B.T`` with A, B of shape (B, 2K)), for each engine (BLAS on CPU, pure XLA);
* the matrix-product rate of NumPy's BLAS on those shapes (``A @ B.T``: dgemm; ``A @ A.T``: NumPy turns
  that into dsyrk, half the flops, so it is compared with the diagonal (symmetric) block);
  on a GPU also ``jnp.dot`` on the device (the reference for the XLA engine there);
* their ratio, the speed-up over the per-element formula ``sum_k w_k cos(phi_i - phi_j)`` written as a
  ``lax.scan`` over visibilities (the form of earlier JAX ports; timed on a subset of K and scaled
  linearly), and the max difference between the two;
* which BLAS and which XLA backend ran.

The last line is machine-readable: ``ratio_to_gemm=<float>`` (default engine, off-diagonal block,
against the float64 GEMM of the device it ran on).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from wtilde_dask.grid import ARCSEC_TO_RADIANS
from wtilde_dask.kernels.direct import default_engine, w_tilde_block

import jax  # noqa: E402  (x64 enabled by wtilde_dask.kernels)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall seconds of ``fn()`` over ``repeats`` runs after one warm-up (compile) run."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


@jax.jit
def _scan_per_element(grid_rows, grid_cols, uv, weights):
    """Earlier JAX ports' form: ``W_ij = sum_k w_k cos(2 pi ((x_i-x_j) u_k + (y_i-y_j) v_k))``, scanned over k."""
    dy = grid_rows[:, None, 0] - grid_cols[None, :, 0]
    dx = grid_rows[:, None, 1] - grid_cols[None, :, 1]

    def step(acc, vis):
        (u, v), w = vis
        return acc + w * jnp.cos(2.0 * jnp.pi * (dx * u + dy * v)), None

    acc0 = jnp.zeros(dx.shape, dtype=jnp.float64)
    out, _ = lax.scan(step, acc0, ((uv[:, 0], uv[:, 1]), weights))
    return out


def blas_description() -> str:
    """Which BLAS NumPy uses (threadpoolctl when installed, else numpy.show_config)."""
    try:
        import threadpoolctl

        infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            return "; ".join(
                f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads, "
                f"{i.get('filepath', '').rsplit('/', 1)[-1]})"
                for i in infos
            )
    except Exception:  # pragma: no cover - diagnostics only
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # pragma: no cover
        return "unknown"


def build_problem(block_size: int, n_visibilities: int, seed: int = 0):
    """Two disjoint random pixel sets of B points within +-2 arcsec (radians), uv up to 3e5 wavelengths,
    unequal real/imag weights (SMA-like magnitudes)."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-2.0, 2.0, size=(block_size, 2)) * ARCSEC_TO_RADIANS
    cols = rng.uniform(-2.0, 2.0, size=(block_size, 2)) * ARCSEC_TO_RADIANS
    uv = rng.uniform(-3e5, 3e5, size=(n_visibilities, 2))
    wr = 1.0 / rng.uniform(0.5, 2.0, size=n_visibilities) ** 2
    wi = 1.0 / rng.uniform(0.5, 2.0, size=n_visibilities) ** 2
    return rows, cols, uv, wr, wi


def run(block_size: int, n_visibilities: int, repeats: int = 3, visibility_chunk: int = 2048, scan_visibilities: int = 256, seed: int = 0):
    """Measure everything; return (rows of the table, ratio_to_gemm, info dict)."""
    b, k = block_size, n_visibilities
    flops = 4.0 * b * b * k
    rows, cols, uv, wr, wi = build_problem(b, k, seed)
    backend = jax.default_backend()
    engine = default_engine()
    engines = ["blas", "jax"] if backend == "cpu" else ["jax"]
    table = []  # (what, seconds best, seconds median, GFLOP/s, note)

    def add(what, t, note=""):
        best, med = t
        table.append((what, best, med, flops / best / 1e9, note))
        return flops / best / 1e9

    rates = {}
    for eng in engines:
        rates[(eng, "off")] = add(
            f"block W[I,J] engine={eng}",
            _time(lambda: w_tilde_block(rows, cols, uv, wr, wi, visibility_chunk=visibility_chunk, engine=eng), repeats),
            "off-diagonal",
        )
        rates[(eng, "diag")] = add(
            f"block W[I,I] engine={eng}",
            _time(lambda: w_tilde_block(rows, rows, uv, wr, wi, visibility_chunk=visibility_chunk, symmetric=True, engine=eng), repeats),
            "diagonal (dsyrk on blas: half the flops)" if eng == "blas" else "diagonal",
        )

    a = np.random.default_rng(seed + 1).standard_normal((b, 2 * k))
    c = np.random.default_rng(seed + 2).standard_normal((b, 2 * k))
    rates["numpy_gemm"] = add("NumPy A @ B.T (dgemm)", _time(lambda: a @ c.T, repeats), "A, B (B, 2K) float64")  # noqa: F821 (a, c deleted below, after use)
    rates["numpy_syrk"] = add("NumPy A @ A.T", _time(lambda: a @ a.T, repeats), "NumPy uses dsyrk: half the flops")  # noqa: F821 (a, c deleted below, after use)
    del a, c
    if backend != "cpu":
        ja = jnp.asarray(np.random.default_rng(seed + 1).standard_normal((b, 2 * k)))
        jc = jnp.asarray(np.random.default_rng(seed + 2).standard_normal((b, 2 * k)))
        dot = jax.jit(lambda x, y: jnp.dot(x, y.T, precision=lax.Precision.HIGHEST))
        rates["device_gemm"] = add(f"jnp.dot A @ B.T on {backend}", _time(lambda: dot(ja, jc), repeats), "device float64 GEMM")
        del ja, jc

    # the per-element lax.scan baseline on a subset of visibilities, scaled linearly to K
    ks = int(min(k, scan_visibilities))
    grows, gcols, uvs, ws = (jnp.asarray(x) for x in (rows, cols, uv[:ks], wr[:ks]))
    t_scan = _time(lambda: _scan_per_element(grows, gcols, uvs, ws), max(1, min(repeats, 2)))
    scale = k / ks
    scaled = (t_scan[0] * scale, t_scan[1] * scale)
    add("lax.scan per-element cos(phi_i-phi_j)", scaled, f"timed on {ks} visibilities, x{scale:.4g} to K")
    w_scan = np.asarray(_scan_per_element(grows, gcols, uvs, ws))
    w_block = w_tilde_block(rows, cols, uv[:ks], wr[:ks], wr[:ks], visibility_chunk=visibility_chunk, engine=engine)
    max_diff = float(np.abs(w_scan - w_block).max())
    rel_diff = max_diff / float(np.abs(w_scan).max())

    gemm_ref = rates["numpy_gemm"] if backend == "cpu" else rates["device_gemm"]
    ratio = rates[(engine, "off")] / gemm_ref
    t_block = next(best for what, best, *_ in table if what == f"block W[I,J] engine={engine}")
    info = {
        "B": b,
        "K": k,
        "visibility_chunk": visibility_chunk,
        "engine": engine,
        "backend": backend,
        "devices": ", ".join(str(d) for d in jax.devices()),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "blas": blas_description(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "speedup_over_scan": scaled[0] / t_block,
        "max_diff": max_diff,
        "rel_diff": rel_diff,
        "ratio_xla_to_gemm": rates[("jax", "off")] / gemm_ref,
        "ratio_diag_to_numpy_aat": rates[(engine, "diag")] / rates["numpy_syrk"],
    }
    return table, ratio, info


def format_report(table, ratio, info) -> str:
    lines = [
        f"direct W-tilde block benchmark: B={info['B']} pixels per block side, K={info['K']} visibilities, "
        f"chunk={info['visibility_chunk']}, float64",
        f"XLA backend: {info['backend']} ({info['devices']}), jax {info['jax']}; default engine: {info['engine']}",
        f"NumPy {info['numpy']} BLAS: {info['blas']}",
        f"flop count: 4*B^2*K = {4.0 * info['B'] ** 2 * info['K']:.4g} per block (same as A @ B.T with A, B of shape (B, 2K))",
        "",
        f"{'what':<42} {'best s':>10} {'median s':>10} {'GFLOP/s':>9}  note",
        "-" * 100,
    ]
    for what, best, med, gflops, note in table:
        lines.append(f"{what:<42} {best:>10.4f} {med:>10.4f} {gflops:>9.2f}  {note}")
    lines += [
        "-" * 100,
        f"ratio block (engine={info['engine']}, off-diagonal) / float64 GEMM rate: {ratio:.3f}",
        f"ratio block (engine=jax, off-diagonal) / float64 GEMM rate: {info['ratio_xla_to_gemm']:.3f}",
        f"ratio diagonal block / NumPy A @ A.T: {info['ratio_diag_to_numpy_aat']:.3f}",
        f"speed-up over lax.scan per-element formula: {info['speedup_over_scan']:.1f}x",
        f"max |W_block - W_scan| = {info['max_diff']:.3e} ({info['rel_diff']:.2e} of max|W|, equal weights, "
        f"the scan's visibility subset)",
        f"ratio_to_gemm={ratio:.4f}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wtilde_dask.bench direct",
        description="Direct W-tilde block kernel vs the machine's float64 matrix product and the per-element scan.",
    )
    parser.add_argument("--block-size", "--block", dest="block_size", type=int, default=1024, help="pixels per block side B (default 1024)")
    parser.add_argument("--visibilities", type=int, default=20000, help="number of visibilities K (default 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up; best and median reported (default 3)")
    parser.add_argument("--visibility-chunk", type=int, default=2048, help="visibilities per accumulation step (default 2048)")
    parser.add_argument(
        "--scan-visibilities", type=int, default=256, help="visibilities the lax.scan baseline is timed on, scaled linearly to K (default 256)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("block_size", "visibilities", "repeats", "visibility_chunk", "scan_visibilities"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)} must be >= 1")
    table, ratio, info = run(args.block_size, args.visibilities, args.repeats, args.visibility_chunk, args.scan_visibilities, args.seed)
    print(format_report(table, ratio, info), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
