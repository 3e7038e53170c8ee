"""``python -m wtilde_dask.bench lattice``: the lattice offset kernel by one NUFFT against PyAutoArray.

For each case (box ny x nx, K visibilities of a simulated ALMA-like uv coverage with random per-visibility
noise) it measures, in one run on this machine:

* ours: :func:`wtilde_dask.kernels.lattice.lattice_offset_kernel` (ducc0, the default, and FINUFFT),
  best of ``--repeat`` after one warm-up call; also the full unequal-noise kernels (offset + Hankel);
* the peer: PyAutoArray ``nufft_precision_operator_from`` (autoarray 2026.10.26.1), one call as a user
  makes it: its default builder, a type-1 NUFFT on finufft (``method="nufft"``, eps 1e-12), and its two
  brute-force builders, ``method="jax"`` (chunked JAX, jit-compiled inside each call) and
  ``method="numpy"``. The NUFFT one always runs in full. When a calibration run predicts more than
  ``--peer-budget-s`` seconds for a brute-force builder, it runs on the first K_sub visibilities only and
  its time is extrapolated linearly in K (its cost is exactly proportional to K: a fixed work per
  visibility chunk); such cells are marked "*" (extrapolated: a straight line in K through the last two
  runs, so the jit compile time is counted once). An older autoarray without ``method=`` (Python 3.11)
  has only the brute force (``use_jax``), and the NUFFT column says so;
* ratio = peer time / our (ducc0) time;
* error = max |ours exported to PyAutoArray's layout - peer| / sum(w), on the same visibilities the peer
  used (the subset when extrapolated).

The last line is machine-readable: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import time

import numpy as np

from wtilde_dask.constants import ARCSEC_TO_RADIANS

DEFAULT_CASES = "64x64:2e5,160x160:1e6"


def _parse_cases(text: str):
    cases = []
    for item in text.split(","):
        try:
            box, k = item.strip().split(":")
            ny, nx = (int(s) for s in box.lower().split("x"))
            kk = int(float(k))
        except ValueError:
            raise argparse.ArgumentTypeError(f"case {item!r}: expected NYxNX:K, e.g. 64x64:2e5") from None
        if ny < 1 or nx < 1 or kk < 1:
            raise argparse.ArgumentTypeError(f"case {item!r}: sizes must be >= 1")
        cases.append((ny, nx, kk))
    return cases


def _dataset(k: int, seed: int):
    """(uv (K, 2), noise_real (K,), noise_imag (K,)) of a simulated ALMA-like observation."""
    from wtilde_dask.simulate import SimulationConfig, antenna_positions, baselines_equatorial, uv_rows

    cfg = SimulationConfig(n_visibilities=k, seed=seed)
    rng = np.random.default_rng(seed)
    enu = antenna_positions(cfg.n_antennas, cfg.max_baseline_m, rng, cfg.min_antenna_spacing_m)
    uv = uv_rows(cfg, baselines_equatorial(enu, cfg.latitude_deg), 0, k)
    sigma_re = rng.uniform(0.5, 2.0, k)
    sigma_im = sigma_re * rng.uniform(0.8, 1.25, k)
    return uv, sigma_re, sigma_im


def _native_grid(ny: int, nx: int, pixel_scale: float) -> np.ndarray:
    """(ny, nx, 2) (y, x) radians of the box, PyAutoArray convention."""
    from wtilde_dask.grid import ARCSEC_TO_RADIANS, pixel_centres_arcsec

    y, x = pixel_centres_arcsec((ny, nx), (pixel_scale, pixel_scale))
    return np.stack([y, x], axis=-1) * ARCSEC_TO_RADIANS


def _best(fn, repeat: int):
    fn()  # warm-up (imports, FFT plans)
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


PEER_VARIANTS = ("nufft", "jax", "numpy")
PEER_LABELS = {"nufft": "NUFFT (default)", "jax": "JAX brute", "numpy": "NumPy brute"}


def _peer(variant: str):
    """The peer's builder ``variant`` (one of PEER_VARIANTS) as a function, None when autoarray is not
    importable, or a string saying why this autoarray lacks it."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from autoarray.inversion.inversion.interferometer import inversion_interferometer_util as util
    except Exception:  # noqa: BLE001 - any import failure means "peer not available"
        return None
    logging.getLogger("autoarray").setLevel(logging.WARNING)
    import inspect

    import autoarray

    if "method" in inspect.signature(util.nufft_precision_operator_from).parameters:
        options = {"method": variant}
    elif variant == "nufft":
        return f"autoarray {autoarray.__version__} has no NUFFT builder (the current release, Python >= 3.12, has)"
    else:
        options = {"use_jax": variant == "jax"}

    def run(noise_real, uv, shape, grid):
        return util.nufft_precision_operator_from(
            noise_map_real=noise_real, uv_wavelengths=uv, shape_masked_pixels_2d=shape, grid_radians_2d=grid,
            **options,
        )

    return run


def _run_peer_full(run, noise, uv, shape, grid, repeat):
    """(best seconds of ``repeat`` full calls after one warm-up, K, False, operator): for the NUFFT builder."""
    t, op = _best(lambda: run(noise, uv, shape, grid), repeat)
    return t, len(noise), False, op


def _run_peer(run, noise, uv, shape, grid, budget_s, log):
    """(seconds for all K (measured or extrapolated), K used, extrapolated?, operator on the K used).

    Two calibration runs (4,096 and 8,192 visibilities) give a straight line t(K) = fixed + per_vis * K
    (fixed: the JAX variant's jit compile). Predicted <= budget: one full run. Otherwise the peer runs on the
    first K_sub visibilities (K_sub from the budget, at least the 8,192 of the calibration, whose run is
    reused) and t(K) is the straight line through the last two runs, evaluated at K ("extrapolated").
    """
    k = len(noise)

    def timed(kk):
        t0 = time.perf_counter()
        op = run(noise[:kk], uv[:kk], shape, grid)
        return time.perf_counter() - t0, op

    k1 = min(k, 4096)
    t1, op1 = timed(k1)
    if k1 == k:
        return t1, k, False, op1
    k2 = min(k, 2 * k1)
    t2, op2 = timed(k2)
    if k2 == k:
        return t2, k, False, op2
    per_vis = max((t2 - t1) / (k2 - k1), 0.5 * t2 / k2)
    fixed = max(t2 - per_vis * k2, 0.0)
    predicted = fixed + per_vis * k
    if predicted <= budget_s:
        k_sub = k
    else:
        k_sub = int(min(k, (0.8 * budget_s - fixed) / per_vis)) // 2048 * 2048
    log(f"    calibration: fixed {fixed:.2f} s + {per_vis * 1e6:.2f} us/visibility -> predicted {predicted:.1f} s "
        f"for K = {k:,}; {'full run' if k_sub == k else f'measured on K = {max(k_sub, k2):,}'}")
    if k_sub <= k2:  # the calibration run is the measurement
        return t2 + per_vis * (k - k2), k2, True, op2
    t, op = timed(k_sub)
    if k_sub == k:
        return t, k, False, op
    slope = max((t - t2) / (k_sub - k2), 0.0)
    return t + slope * (k - k_sub), k_sub, True, op


def _fmt_t(t):
    return "-" if t is None else (f"{t:.4f}" if t < 10 else f"{t:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wtilde_dask.bench lattice",
        description="Lattice offset kernel by one NUFFT vs PyAutoArray nufft_precision_operator_from "
                    "(its default NUFFT builder and its JAX / NumPy brute-force builders).",
    )
    parser.add_argument("--cases", type=_parse_cases, default=_parse_cases(DEFAULT_CASES),
                        help=f"comma-separated NYxNX:K (default {DEFAULT_CASES})")
    parser.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec (default 0.05)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats of our kernel (best of)")
    parser.add_argument("--peer", default="all",
                        help="comma-separated peer builders among nufft, jax, numpy; 'all' (default) or 'none'")
    parser.add_argument("--peer-budget-s", type=float, default=60.0,
                        help="largest predicted brute-force peer time run in full; above it the peer runs on a "
                             "subset of the visibilities and is extrapolated (default 60)")
    parser.add_argument("--nthreads", type=int, default=0, help="NUFFT threads (0 = all cores)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from wtilde_dask.kernels.lattice import lattice_hankel_kernel, lattice_offset_kernel, to_pyautoarray

    def log(msg):
        print(msg, flush=True)

    variants = {"all": list(PEER_VARIANTS), "none": []}.get(args.peer, [v.strip() for v in args.peer.split(",")])
    unknown = [v for v in variants if v not in PEER_VARIANTS]
    if unknown:
        parser.error(f"--peer: unknown builder(s) {', '.join(unknown)} (expected nufft, jax, numpy, all or none)")
    peers = {v: _peer(v) for v in variants}
    if any(p is None for p in peers.values()):
        log("PyAutoArray (autoarray) is not importable: peer columns skipped (pip install -e '.[peer]')")
        peers = {}
    for v, p in list(peers.items()):
        if isinstance(p, str):
            log(f"peer {v}: {p}; column skipped")
            del peers[v]
    import os

    log(f"lattice benchmark: {os.cpu_count()} cores, NUFFT threads {args.nthreads or 'all'}, pixel scale "
        f"{args.pixel_scale}\", simulated ALMA-like uv (43 antennas, 3 km, 4 channels), random per-visibility noise")
    if peers:
        import importlib.metadata as md

        log(f"peer: autoarray {md.version('autoarray')}, builders: {', '.join(PEER_LABELS[v] for v in peers)}")
    s = args.pixel_scale * ARCSEC_TO_RADIANS
    rows = []
    for ny, nx, k in args.cases:
        log(f"case box {ny}x{nx}, K = {k:,}")
        uv, sig_re, sig_im = _dataset(k, args.seed)
        w = 1.0 / sig_re**2
        wsum = float(w.sum())
        row = {"box": [ny, nx], "K": k}
        row["ours_ducc0_s"], kernel = _best(
            lambda: lattice_offset_kernel(uv, w, (ny, nx), (s, s), backend="ducc0", nthreads=args.nthreads),
            args.repeat)
        row["ours_finufft_s"], kernel_f = _best(
            lambda: lattice_offset_kernel(uv, w, (ny, nx), (s, s), backend="finufft", nthreads=args.nthreads),
            args.repeat)
        row["ducc0_vs_finufft_rel"] = float(np.abs(kernel - kernel_f).max() / wsum)
        wr, wi = 1.0 / sig_re**2, 1.0 / sig_im**2

        def unequal():
            lattice_offset_kernel(uv, 0.5 * (wr + wi), (ny, nx), (s, s), nthreads=args.nthreads)
            lattice_hankel_kernel(uv, 0.5 * (wr - wi), (ny, nx), (s, s), (0.0, 0.0), nthreads=args.nthreads)

        row["ours_unequal_noise_s"], _ = _best(unequal, max(1, args.repeat // 2))
        log(f"  ours: ducc0 {row['ours_ducc0_s']:.4f} s, finufft {row['ours_finufft_s']:.4f} s "
            f"(agree to {row['ducc0_vs_finufft_rel']:.1e} of sum(w)); offset+Hankel (unequal noise) "
            f"{row['ours_unequal_noise_s']:.4f} s")
        grid = _native_grid(ny, nx, args.pixel_scale)
        for variant, run in peers.items():
            if variant == "nufft":
                t, k_used, extrap, op = _run_peer_full(run, sig_re, uv, (ny, nx), grid, max(1, args.repeat // 2))
            else:
                t, k_used, extrap, op = _run_peer(run, sig_re, uv, (ny, nx), grid, args.peer_budget_s, log)
            ours_sub = kernel if k_used == k else lattice_offset_kernel(uv[:k_used], w[:k_used], (ny, nx), (s, s))
            err = float(np.abs(to_pyautoarray(ours_sub) - np.asarray(op)).max() / float(w[:k_used].sum()))
            row[f"peer_{variant}_s"] = t
            row[f"peer_{variant}_K_run"] = k_used
            row[f"peer_{variant}_extrapolated"] = extrap
            row[f"ratio_{variant}"] = t / row["ours_ducc0_s"]
            row[f"err_{variant}_rel_sum_w"] = err
            log(f"  peer {PEER_LABELS[variant]}: {t:.4f} s{' (extrapolated from K = %d)' % k_used if extrap else ''}, "
                f"ratio {t / row['ours_ducc0_s']:.1f}x, max diff {err:.2e} of sum(w)")
        rows.append(row)

    log("")
    shown = [v for v in PEER_VARIANTS if any(f"peer_{v}_s" in r for r in rows)]
    head = (f"{'box':>9} {'K':>9} | {'ours ducc0 s':>12} {'ours finufft s':>14} {'unequal s':>9}"
            + "".join(f" | {'peer ' + PEER_LABELS[v] + ' s':>22} {'ratio':>8} {'err/sum(w)':>10}" for v in shown))
    log(head)
    log("-" * len(head))
    for r in rows:
        cells = []
        for v in shown:
            if f"peer_{v}_s" in r:
                mark = "*" if r[f"peer_{v}_extrapolated"] else " "
                cells.append(f" | {_fmt_t(r[f'peer_{v}_s']) + mark:>22} {r[f'ratio_{v}']:>7.1f}x "
                             f"{r[f'err_{v}_rel_sum_w']:>10.1e}")
            else:
                cells.append(f" | {'-':>22} {'-':>8} {'-':>10}")
        log(f"{r['box'][0]:>4}x{r['box'][1]:<4} {r['K']:>9,} | {r['ours_ducc0_s']:>12.4f} {r['ours_finufft_s']:>14.4f} "
            f"{r['ours_unequal_noise_s']:>9.4f}" + "".join(cells))
    if any(r.get(f"peer_{v}_extrapolated") for r in rows for v in PEER_VARIANTS):
        log("* extrapolated linearly in K from a run on the first K_run visibilities (see RESULT); "
            "error measured on those K_run visibilities")
    log("ratio = peer time / ours (ducc0); err = max |ours in PyAutoArray layout - peer| / sum(w)")
    print("RESULT " + json.dumps({"benchmark": "lattice", "cases": rows}), flush=True)
    return 0
