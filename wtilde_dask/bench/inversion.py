"""Benchmark of the curvature matrix ``F = T^T W T`` per likelihood evaluation, by every path.

    python -m wtilde_dask.bench inversion [--pixels 15000] [--source-pixels 1000] [--visibilities 10000]
                                          [--block-size 1024] [--repeats 3] [--workers 2] [--store PATH]

Builds (or reuses, ``--store``) a lattice W-tilde store for a circular mask of about ``--pixels`` image
pixels (0.05 arcsec pixels) and a simulated uv coverage with equal real/imag noise (so PyAutoArray's
operator applies), ray-traces the grid through an SIE + shear onto a rectangular mesh of about
``--source-pixels`` nodes, then times one evaluation of F by:

* ``fft``: the lattice offset kernel applied by FFT on the zero-padded (2ny, 2nx) box (this process);
* ``memory``: the W blocks persisted in the Dask workers' memory, one task per stored block;
* ``out-of-core``: every stored block read from the Zarr store by its task, each evaluation;
* ``peer``: PyAutoArray's ``InterferometerSparseOperator.curvature_matrix_diag_from`` (autoarray
  2026.10.26.1) with the same T and the same preload (our kernel in its layout, which equals its own
  ``nufft_precision_operator_from`` to 1e-12 — checked in tests/test_pyautoarray_export.py): its JAX
  branch (``xp=jax.numpy``) under ``jax.jit``, warm, and its NumPy/scipy branch (``xp=numpy``) as called.

Every path's F is checked against the fft one. Then the out-of-core path's read rate (stored bytes /
seconds per evaluation) is compared with a plain read of the same blocks with the same task layout.

``evidence`` (in ``--paths`` by default): the full log evidence per lens model on the same data, mask,
rectangular mesh of the same size and constant regularization (coefficient 1):

* ours, NumPy: ray-trace (SIE + shear), mesh, T, H, then ``WTildeFitter.log_evidence(T, H)`` (fft path);
  and ``log_evidence(T, H)`` alone (what a sampler with its own T calls);
* ours, JAX: ``fitter.jax_likelihood(...).log_evidence(params)`` (jitted, warm);
* the peer: PyAutoLens ``FitInterferometer(dataset, tracer, xp=jax.numpy).log_evidence`` under ``jax.jit``
  (warm), ``Isothermal`` + ``ExternalShear`` lens, ``RectangularUniform`` mesh + ``Constant``
  regularization, its dataset's sparse operator from the same preload; with the linear solver
  (``use_positive_only_solver=False``, no edge zeroing, no border relocation: the maths ours does) and
  with its default settings (positive-only solver), and the linear one as called with NumPy.
* check: ours ``log_evidence(T, H)`` on the peer's own T and H equals the peer's log evidence.

Times are the minimum over ``--repeats`` interleaved rounds (median in brackets).
The last line is machine-readable:
``fft_speedup_vs_peer=<float> out_of_core_read_fraction=<float> evidence_speedup_vs_peer=<float>``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import pathlib
import platform
import shutil
import statistics
import tempfile

import numpy as np

from wtilde_dask.constants import ARCSEC_TO_RADIANS
from wtilde_dask.bench.timing import interleaved_rounds, timed, warm_up


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench inversion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pixels", type=int, default=15000, help="image pixels M (about; circular mask)")
    p.add_argument("--source-pixels", type=int, default=1000, help="source pixels S (about; square mesh)")
    p.add_argument("--visibilities", type=int, default=10000, help="K")
    p.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec")
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each)")
    p.add_argument("--store", default=None, help="store path to create or reuse (default: a temporary one)")
    p.add_argument("--no-peer", action="store_true", help="skip PyAutoArray")
    p.add_argument("--paths", default="fft,memory,out-of-core,peer,evidence", help="comma-separated subset")
    return p


def bench_inputs(n_pixels: int, n_visibilities: int, pixel_scale: float, seed: int = 0):
    """(dataset, grid): circular mask of ~n_pixels and a uniform-disc uv coverage, equal noise."""
    from wtilde_dask.dataset import Interferometer
    from wtilde_dask.grid import ImageGrid

    radius = math.sqrt(n_pixels * pixel_scale**2 / math.pi)
    n = int(math.ceil(2 * radius / pixel_scale)) + 2
    grid = ImageGrid.circular((n, n), (pixel_scale, pixel_scale), radius)
    rng = np.random.default_rng(seed)
    # baselines up to ~1/(2 pixel): the dirty beam is resolved on the lattice
    r_max = 0.5 / (pixel_scale * ARCSEC_TO_RADIANS)
    r = r_max * np.sqrt(rng.uniform(0, 1, n_visibilities))
    t = rng.uniform(0, 2 * np.pi, n_visibilities)
    uv = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    sigma = np.full(n_visibilities, 1.0 + 1.0j)
    vis = rng.normal(size=n_visibilities) + 1j * rng.normal(size=n_visibilities)
    return Interferometer.from_arrays(vis, sigma, uv, name="bench-inversion"), grid


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.inversion import LensModel, RectangularMesh
    from wtilde_dask.inversion.curvature import OutOfCoreCurvature, PersistedCurvature
    from wtilde_dask.inversion.fitter import store_lattice_curvature
    from wtilde_dask.kernels.lattice import lattice_box, to_pyautoarray

    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if args.no_peer and "peer" in paths:
        paths.remove("peer")
    unknown = sorted(set(paths) - {"fft", "memory", "out-of-core", "peer", "evidence"})
    if unknown:
        _parser().error(f"--paths: unknown {', '.join(unknown)} (expected fft, memory, out-of-core, peer, evidence)")
    dataset, grid = bench_inputs(args.pixels, args.visibilities, args.pixel_scale)
    tmp = None
    store_path = pathlib.Path(args.store) if args.store else None
    if store_path is None:
        tmp = tempfile.mkdtemp(prefix="wtilde-bench-inversion-")
        store_path = pathlib.Path(tmp) / "bench.zarr"
    lens = LensModel(einstein_radius=0.45 * math.sqrt(args.pixels / math.pi) * args.pixel_scale, axis_ratio=0.8,
                     position_angle=30.0, shear=(0.03, -0.01))
    src = lens.ray_trace(grid.grid_arcsec)
    side = max(2, int(round(math.sqrt(args.source_pixels))))
    mesh = RectangularMesh.from_source_grid(src, (side, side))
    T = mesh.mapping_matrix(src)
    print(f"inversion benchmark: M = {grid.n_pixels} image pixels (box {grid.bounding_box}), S = {mesh.n_pixels} "
          f"source pixels, nnz(T) = {T.nnz}, K = {dataset.n_visibilities}, B = {args.block_size}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
          f"{args.workers} Dask worker(s) x 1 thread")
    times: dict[str, list[float]] = {}  # filled by interleaved_rounds below
    results: dict[str, np.ndarray] = {}
    ctx = cluster_client("local", n_workers=args.workers, threads_per_worker=1, log=lambda *a: None)
    try:
        with ctx as client:
            t_store, store = timed(lambda: compute(dataset, grid, store_path, block_size=args.block_size,
                                                    method="lattice", client=client, progress=False,
                                                    log=lambda *a, **k: None))
            n_bytes_stored = sum(np.prod(store.plan.block_shape(bi, bj)) for bi, bj in store.plan.blocks()) * 8
            print(f"store: {store_path} ({store.plan.n_blocks} blocks, {n_bytes_stored / 1e9:.2f} GB stored), "
                  f"ready in {t_store:.1f} s")
            runners = {}
            if "fft" in paths:
                t_setup, fft = timed(lambda: store_lattice_curvature(store))
                runners["fft"] = lambda: fft(T)
                print(f"setup fft: {t_setup:.3f} s (kernel spectra)")
            if "memory" in paths:
                t_setup, mem = timed(lambda: PersistedCurvature(store, client))
                runners["memory"] = lambda: mem(T)
                print(f"setup memory: {t_setup:.3f} s (blocks read into the workers once)")
            ooc = OutOfCoreCurvature(store, client)
            if "out-of-core" in paths:
                runners["out-of-core"] = lambda: ooc(T)
            if "peer" in paths:
                peer = _peer_runners(store, T, lattice_box, to_pyautoarray)
                if peer:
                    runners.update(peer)
            results.update({name: np.asarray(v) for name, v in warm_up(runners).items()})
            plain = []
            times = interleaved_rounds(runners, args.repeats, after_round=(
                (lambda: plain.append(ooc.plain_read_seconds()[0])) if "out-of-core" in paths else None))
            evidence = (_evidence_section(store, dataset, lens, (side, side), args.repeats, peer=not args.no_peer)
                        if "evidence" in paths else {})
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    ref = results.get("fft", next(iter(results.values())))
    best = {k: min(v) for k, v in times.items()}
    peer_best = min((best[k] for k in best if k.startswith("peer")), default=None)
    print()
    print(f"{'path':28s} {'s / evaluation':>16s} {'median':>10s} {'vs peer':>9s} {'vs fft':>8s} {'max|dF|/max|F|':>16s}")
    for name in times:
        vs_peer = f"{peer_best / best[name]:8.2f}x" if peer_best else "       -"
        vs_fft = f"{best['fft'] / best[name]:7.2f}x" if "fft" in best else "      -"
        err = float(np.max(np.abs(results[name] - ref)) / np.max(np.abs(ref)))
        print(f"{name:28s} {best[name]:16.4f} {statistics.median(times[name]):10.4f} {vs_peer} {vs_fft} {err:16.2e}")
    fraction = float("nan")
    if plain and "out-of-core" in best:
        t_plain = min(plain)
        rate_ooc = n_bytes_stored / best["out-of-core"] / 1e9
        rate_plain = n_bytes_stored / t_plain / 1e9
        fraction = rate_ooc / rate_plain
        print(f"\nout-of-core read rate: {rate_ooc:.2f} GB/s ({n_bytes_stored / 1e9:.2f} GB per evaluation) against a plain "
              f"read of the same blocks with the same tasks: {rate_plain:.2f} GB/s ({t_plain:.3f} s) -> "
              f"{fraction:.2f} of the plain read rate (target >= 0.5)")
    speedup = (peer_best / best["fft"]) if (peer_best and "fft" in best) else float("nan")
    if peer_best and "fft" in best:
        print(f"fft path vs PyAutoArray InterferometerSparseOperator (best peer variant): {speedup:.2f}x "
              f"(target >= 1)")
    ev_speedup = evidence.get("speedup", float("nan"))
    print(f"fft_speedup_vs_peer={speedup:.4g} out_of_core_read_fraction={fraction:.4g} "
          f"evidence_speedup_vs_peer={ev_speedup:.4g}")
    return 0


def _peer_runners(store, T, lattice_box, to_pyautoarray) -> dict:
    """PyAutoArray's sparse operator on the same T and preload; {} when autoarray is not importable."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from autoarray.inversion.inversion.interferometer.inversion_interferometer_util import (
                InterferometerSparseOperator,
            )
    except Exception as err:  # noqa: BLE001 - peer optional
        print(f"peer: autoarray not importable ({type(err).__name__}: {err}); skipped")
        return {}
    import jax

    grid = store.grid()
    box = lattice_box(grid)
    ny, nx = box.shape_box
    preload = to_pyautoarray(store.read_array("kernel"))
    op = InterferometerSparseOperator.from_nufft_precision_operator(preload, np.zeros(grid.n_pixels))
    coo = T.tocoo()
    flat = box.box_indices[:, 0] * nx + box.box_indices[:, 1]
    rows, cols, vals = flat[coo.row], coo.col, coo.data
    S = T.shape[1]
    import inspect

    import jax.numpy as jnp

    if "xp" in inspect.signature(op.curvature_matrix_diag_from).parameters:  # autoarray 2026.10.26.1
        jitted = jax.jit(lambda r, c, v: op.curvature_matrix_diag_from(r, c, v, S=S, xp=jnp))
        as_called = {"xp": np}
    else:  # older autoarray (Python 3.11): one JAX implementation
        jitted = jax.jit(lambda r, c, v: op.curvature_matrix_diag_from(r, c, v, S=S))
        as_called = {}
    return {
        "peer (jax.jit)": lambda: np.asarray(jax.block_until_ready(jitted(rows, cols, vals))),
        "peer (as called)": lambda: np.asarray(op.curvature_matrix_diag_from(rows, cols, vals, S=S, **as_called)),
    }


def _peer_fit_factory(store, lens, mesh_shape):
    """(fit(er, xp, settings), settings_linear) for PyAutoLens's FitInterferometer on the store's data and mask
    with the lens as an Isothermal + ExternalShear of Einstein radius ``er`` and a RectangularUniform mesh
    with Constant regularization; None when autolens is not importable (message printed)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import autolens as al
    except Exception as err:  # noqa: BLE001 - peer optional
        print(f"evidence: autolens not importable ({type(err).__name__}: {err}); peer rows skipped "
              f"(pip install -e '.[peer]' on Python >= 3.12)")
        return None
    from wtilde_dask.kernels.lattice import to_pyautoarray

    grid, ds = store.grid(), store.dataset()
    mask = al.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    dataset = al.Interferometer(data=al.Visibilities(ds.visibilities), noise_map=al.VisibilitiesNoiseMap(ds.noise_map),
                                uv_wavelengths=ds.uv_wavelengths, real_space_mask=mask)
    dataset = dataset.apply_sparse_operator(nufft_precision_operator=to_pyautoarray(store.read_array("kernel")))
    ell_comps = al.convert.ell_comps_from(axis_ratio=lens.axis_ratio, angle=lens.position_angle)
    linear = al.Settings(use_positive_only_solver=False, use_edge_zeroed_pixels=False, use_border_relocator=False)

    def fit(er, xp=np, settings=None):
        lens_galaxy = al.Galaxy(redshift=0.5, mass=al.mp.Isothermal(centre=tuple(lens.centre), ell_comps=ell_comps,
                                                                     einstein_radius=er),
                                shear=al.mp.ExternalShear(gamma_1=lens.shear[0], gamma_2=lens.shear[1]))
        source = al.Galaxy(redshift=1.0, pixelization=al.Pixelization(
            mesh=al.mesh.RectangularUniform(shape=tuple(mesh_shape)), regularization=al.reg.Constant(coefficient=1.0)))
        return al.FitInterferometer(dataset=dataset, tracer=al.Tracer(galaxies=[lens_galaxy, source]), xp=xp,
                                    settings=settings)

    return fit, linear


def _evidence_section(store, dataset, lens, mesh_shape, repeats, peer=True) -> dict:
    """Time the full log evidence per lens model, ours and the peer's; print a table; {"speedup": ...}."""
    import jax
    import jax.numpy as jnp

    from wtilde_dask.inversion import RectangularMesh, regularization_from_mesh
    from wtilde_dask.inversion.fitter import WTildeFitter
    from wtilde_dask.inversion.jax_likelihood import params_from_lens

    print(f"\nevidence: full log evidence per lens model, rectangular mesh {mesh_shape[0]}x{mesh_shape[1]}, "
          f"constant regularization (coefficient 1)")
    fitter = WTildeFitter.from_store(store, path="fft")
    grid_arcsec = store.grid().grid_arcsec

    def ours_numpy():
        src = lens.ray_trace(grid_arcsec)
        mesh = RectangularMesh.from_source_grid(src, mesh_shape)
        return fitter.log_evidence(mesh.mapping_matrix(src), regularization_from_mesh(mesh, 1.0, "constant"))

    src = lens.ray_trace(grid_arcsec)
    mesh = RectangularMesh.from_source_grid(src, mesh_shape)
    T, H = mesh.mapping_matrix(src), regularization_from_mesh(mesh, 1.0, "constant")
    jl = fitter.jax_likelihood(mesh="rectangular", mesh_shape=mesh_shape, regularization="constant", coefficient=1.0)
    params = jnp.asarray(params_from_lens(lens))
    runners = {
        "ours NumPy (lens -> T, H -> evidence)": ours_numpy,
        "ours NumPy log_evidence(T, H) only": lambda: fitter.log_evidence(T, H),
        "ours JAX jit (lens -> evidence)": lambda: float(jax.block_until_ready(jl.log_evidence(params))),
    }
    check = None
    made = _peer_fit_factory(store, lens, mesh_shape) if peer else None
    if made is not None:
        fit, linear = made
        er = float(lens.einstein_radius)
        peer_lin = jax.jit(lambda e: fit(e, jnp, linear).log_evidence)
        peer_default = jax.jit(lambda e: fit(e, jnp).log_evidence)
        runners["peer FitInterferometer jit, linear solver"] = lambda: float(jax.block_until_ready(peer_lin(er)))
        runners["peer FitInterferometer jit, default (positive-only)"] = (
            lambda: float(jax.block_until_ready(peer_default(er))))
        runners["peer FitInterferometer NumPy, linear solver"] = lambda: float(fit(er, np, linear).log_evidence)
        reference = fit(er, np, linear)
        ours_on_peer_T = fitter.log_evidence(np.asarray(reference.inversion.mapping_matrix),
                                             np.asarray(reference.inversion.regularization_matrix))
        check = abs(ours_on_peer_T - float(reference.log_evidence)) / abs(float(reference.log_evidence))
    values = warm_up(runners)
    times = interleaved_rounds(runners, repeats)
    best = {k: min(v) for k, v in times.items()}
    ref_name = "peer FitInterferometer jit, linear solver"
    print(f"\n{'log evidence per evaluation':52s} {'s':>9s} {'median':>9s} {'vs peer jit linear':>19s} {'log evidence':>16s}")
    for name in times:
        vs = f"{best[ref_name] / best[name]:18.2f}x" if ref_name in best else f"{'-':>19s}"
        print(f"{name:52s} {best[name]:9.4f} {statistics.median(times[name]):9.4f} {vs} {values[name]:16.6f}")
    out = {}
    if check is not None:
        print(f"check: ours log_evidence(T, H) on the peer's own T and H = {ours_on_peer_T:.8f}, the peer's "
              f"{float(reference.log_evidence):.8f} (relative difference {check:.1e})")
        out["check"] = check
        print("(the two sides use their own lens normalisation and mesh placement, so their log evidences differ; "
              "the check above compares the same T and H)")
    if ref_name in best:
        ours_best = min(best["ours NumPy (lens -> T, H -> evidence)"], best["ours JAX jit (lens -> evidence)"])
        out["speedup"] = best[ref_name] / ours_best
        print(f"full log evidence: ours (best of NumPy / JAX) vs peer jitted FitInterferometer (linear solver): "
              f"{out['speedup']:.2f}x")
    return out
