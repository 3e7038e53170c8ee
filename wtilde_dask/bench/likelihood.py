"""Benchmark of the lens-model likelihood per evaluation: our JAX path (single, per item of a vmap batch,
gradient), our NumPy path, and PyAutoLens's jitted ``FitInterferometer`` on the same data, mask, mesh and
regularization, all measured in one run.

    python -m wtilde_dask.bench likelihood [--visibilities 1000000] [--shape 800 800] [--pixel-scale 0.05]
                                           [--mask-radius 3.5] [--mesh-shape 32 32] [--batch 8] [--repeats 3]
                                           [--dataset DIR] [--store PATH] [--workers 2] [--no-peer]

Defaults are the ALMA preset: an 800 x 800 grid of 0.05" pixels, circular mask of 3.5"
(M = 15,380), K = 1e6 visibilities simulated by ``wtilde simulate`` (ALMA-like, equal real / imaginary noise,
so PyAutoLens's operator, which models equal noise only, is exact), a 32 x 32 rectangular source mesh,
constant regularization (coefficient 1). The lattice W-tilde store is computed first on a LocalCluster.

Rows (times are the minimum over ``--repeats`` interleaved rounds after a warm-up that compiles; median in brackets):

* ``ours JAX jit``: ``JaxLikelihood.log_evidence(params)`` (ray tracing, mapping, H, F by FFT, solve, evidence);
* ``ours JAX vmap``: ``log_evidence_batch`` of ``--batch`` parameter vectors, time per item;
* ``ours JAX grad``: ``value_and_grad`` w.r.t. the 7 lens parameters (value and gradient);
* ``ours NumPy``: ray tracing, ``RectangularMesh``, T, H and ``WTildeFitter.log_evidence`` (fft path);
* ``peer jit``: PyAutoLens ``FitInterferometer(..., xp=jax.numpy)`` under ``jax.jit`` (Isothermal + ExternalShear,
  ``RectangularUniform`` mesh, ``Constant`` regularization, its sparse operator preloaded with our kernel in its
  ``nufft_precision_operator`` layout; linear solver, and its default positive-only solver); ``peer NumPy``: the
  same fit with ``xp=numpy``.

The JAX and NumPy log evidences are printed with their relative difference. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import shutil
import statistics
import tempfile

import numpy as np

from wtilde_dask.bench.timing import interleaved_rounds, timed, warm_up


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench likelihood", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visibilities", type=float, default=1e6, help="K to simulate (default 1e6)")
    p.add_argument("--dataset", default=None, help="an existing dataset folder / .npz instead of simulating")
    p.add_argument("--shape", type=int, nargs=2, default=(800, 800))
    p.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec")
    p.add_argument("--mask-radius", type=float, default=3.5, help="arcsec")
    p.add_argument("--mesh-shape", type=int, nargs=2, default=(32, 32))
    p.add_argument("--batch", type=int, default=8, help="parameter vectors per vmap batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers for the store")
    p.add_argument("--store", default=None, help="store path to create or reuse (default: temporary)")
    p.add_argument("--no-peer", action="store_true", help="skip PyAutoLens")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import jax
    import jax.numpy as jnp

    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.io import load_dataset
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.inversion import LensModel, RectangularMesh, regularization_from_mesh
    from wtilde_dask.inversion.fitter import WTildeFitter
    from wtilde_dask.inversion.jax_likelihood import params_from_lens

    tmp = tempfile.mkdtemp(prefix="wtilde-bench-likelihood-")
    try:
        if args.dataset:
            data_path = pathlib.Path(args.dataset)
        else:
            from wtilde_dask.simulate import simulate

            data_path = pathlib.Path(tmp) / "sim"
            t_sim, _ = timed(lambda: simulate(data_path, n_visibilities=int(args.visibilities), log=lambda *a, **k: None))
            print(f"simulated {int(args.visibilities):,} visibilities (wtilde simulate defaults) in {t_sim:.1f} s")
        dataset = load_dataset(data_path)
        grid = ImageGrid.circular(tuple(args.shape), (args.pixel_scale, args.pixel_scale), args.mask_radius)
        store_path = pathlib.Path(args.store) if args.store else pathlib.Path(tmp) / "bench.zarr"
        with cluster_client("local", n_workers=args.workers, threads_per_worker=1, log=lambda *a: None) as client:
            t_store, store = timed(lambda: compute(dataset, grid, store_path, method="lattice", client=client,
                                                    progress=False, log=lambda *a, **k: None))
        mesh_shape = tuple(args.mesh_shape)
        print(f"likelihood benchmark: M = {grid.n_pixels:,} image pixels ({args.shape[0]}x{args.shape[1]} at "
              f"{args.pixel_scale}\", r = {args.mask_radius}\"), K = {dataset.n_visibilities:,}, S = "
              f"{mesh_shape[0] * mesh_shape[1]} ({mesh_shape[0]}x{mesh_shape[1]} rectangular), constant regularization; "
              f"store ready in {t_store:.1f} s")
        print(f"machine: {platform.machine()}, python {platform.python_version()}, jax {jax.__version__} on "
              f"{jax.devices()[0].platform} ({jax.device_count()} device(s))")

        radius = 0.35 * args.mask_radius
        lens = LensModel(einstein_radius=radius, axis_ratio=0.8, position_angle=30.0, centre=(0.0, 0.0),
                         shear=(0.03, -0.01))
        fitter = WTildeFitter.from_store(store, path="fft")
        grid_arcsec = grid.grid_arcsec

        def ours_numpy():
            src = lens.ray_trace(grid_arcsec)
            mesh = RectangularMesh.from_source_grid(src, mesh_shape)
            return fitter.log_evidence(mesh.mapping_matrix(src), regularization_from_mesh(mesh, 1.0, "constant"))

        lk = fitter.jax_likelihood(grid_arcsec, mesh="rectangular", mesh_shape=mesh_shape, regularization="constant",
                                   coefficient=1.0)
        params = jnp.asarray(params_from_lens(lens))
        rng = np.random.default_rng(0)
        batch = jnp.asarray(params_from_lens(lens)[None] * (1 + 0.01 * rng.normal(size=(args.batch, 7))))
        B = int(args.batch)
        runners = {
            "ours JAX jit, single": (lambda: float(jax.block_until_ready(lk.log_evidence(params))), 1),
            f"ours JAX vmap, per item of {B}": (lambda: np.asarray(jax.block_until_ready(lk.log_evidence_batch(batch))), B),
            "ours JAX value_and_grad (7 params)": (lambda: jax.block_until_ready(lk.value_and_grad(params)), 1),
            "ours NumPy (lens -> T, H -> evidence)": (ours_numpy, 1),
        }
        peer_note = None
        if not args.no_peer:
            from wtilde_dask.bench.inversion import _peer_fit_factory

            made = _peer_fit_factory(store, lens, mesh_shape)
            if made is None:
                peer_note = "autolens not importable"
            else:
                fit, linear = made
                er = float(lens.einstein_radius)
                peer_lin = jax.jit(lambda e: fit(e, jnp, linear).log_evidence)
                peer_default = jax.jit(lambda e: fit(e, jnp).log_evidence)
                runners["peer FitInterferometer jit, linear solver"] = (lambda: float(jax.block_until_ready(peer_lin(er))), 1)
                runners["peer FitInterferometer jit, default solver"] = (
                    lambda: float(jax.block_until_ready(peer_default(er))), 1)
                runners["peer FitInterferometer NumPy, linear solver"] = (lambda: float(fit(er, np, linear).log_evidence), 1)
        calls = {name: fn for name, (fn, _) in runners.items()}
        values = warm_up(calls, label="warm-up (compile)")
        times = interleaved_rounds(calls, args.repeats, per={name: per for name, (_, per) in runners.items()})
        best = {k: min(v) for k, v in times.items()}
        peer_name = "peer FitInterferometer jit, linear solver"
        print(f"\n{'s per evaluation':46s} {'s':>9s} {'median':>9s} {'peer jit / this':>16s}")
        for name in times:
            vs = f"{best[peer_name] / best[name]:15.2f}x" if peer_name in best else f"{'-':>16s}"
            print(f"{name:46s} {best[name]:9.4f} {statistics.median(times[name]):9.4f} {vs}")
        v_jax = float(values["ours JAX jit, single"])
        v_np = float(values["ours NumPy (lens -> T, H -> evidence)"])
        v_vg = values["ours JAX value_and_grad (7 params)"]
        print(f"\nlog evidence: JAX {v_jax:.10f}, NumPy {v_np:.10f}, relative difference {abs(v_jax - v_np) / abs(v_np):.1e}; "
              f"value_and_grad value {float(v_vg[0]):.10f}; gradient {np.array2string(np.asarray(v_vg[1]), precision=4)}")
        if peer_name in values:
            print(f"peer log evidence {float(values[peer_name]):.6f} (its own Isothermal normalisation and mesh "
                  f"placement: not the same number as ours)")
        jax_vs_numpy = best["ours NumPy (lens -> T, H -> evidence)"] / best["ours JAX jit, single"]
        line = (f"jax_s={best['ours JAX jit, single']:.4f} jax_vmap_s_per_item={best[f'ours JAX vmap, per item of {B}']:.4f} "
                f"grad_s={best['ours JAX value_and_grad (7 params)']:.4f} "
                f"numpy_s={best['ours NumPy (lens -> T, H -> evidence)']:.4f} jax_vs_numpy={jax_vs_numpy:.2f}")
        if peer_name in best:
            line += (f" peer_jit_s={best[peer_name]:.4f} "
                     f"speedup_vs_peer_jit={best[peer_name] / best['ours JAX jit, single']:.2f}")
        elif peer_note:
            line += f" peer=skipped({peer_note.replace(' ', '_')})"
        print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
