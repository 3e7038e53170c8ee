"""Benchmark of the lens-model likelihood per evaluation: our JAX path (single, per item of a batch,
gradient), our NumPy path, and PyAutoLens's jitted ``FitInterferometer`` on the same data, mask, mesh and
regularization, all measured in one run.

    python -m wtilde_dask.bench likelihood [--visibilities 1000000] [--shape 800 800] [--pixel-scale 0.05]
                                           [--mask-radius 3.5] [--mesh {rectangular,delaunay,voronoi}]
                                           [--mesh-shape 32 32] [--mesh-pixels 400] [--batch 8] [--repeats 3]
                                           [--dataset DIR] [--store PATH] [--workers 2] [--no-peer]
                                           [--no-one-thread]

Defaults are the ALMA preset: an 800 x 800 grid of 0.05" pixels, circular mask of 3.5"
(M = 15,380), K = 1e6 visibilities simulated by ``wtilde simulate`` (ALMA-like, equal real / imaginary noise,
so PyAutoLens's operator, which models equal noise only, is exact), a 32 x 32 rectangular source mesh,
constant regularization (coefficient 1). The lattice W-tilde store is computed first on a LocalCluster.

Rows (times are the minimum over ``--repeats`` interleaved rounds after a warm-up that compiles; median in brackets;
in each round a row gets 0.3 s idle, so that the threads the previous row left spinning do not land on its time,
then one untimed call and the timed call right after it: the steady state of a search's back-to-back calls, as the
FFT floor's calls are timed back to back):

* ``ours JAX jit``: ``JaxLikelihood.log_evidence(params)`` (ray tracing, mapping, H, F by FFT, solve, evidence);
* ``ours JAX batch (lax.map)`` / ``ours JAX vmap``: ``log_evidence_batch`` of ``--batch`` parameter vectors, time per
  item, with the lenses one after the other in one compiled function (the CPU default) and under ``jax.vmap``;
* ``ours JAX grad``: ``value_and_grad`` w.r.t. the 7 lens parameters (value and gradient);
* ``ours NumPy``: ray tracing, ``RectangularMesh``, T, H and ``WTildeFitter.log_evidence`` (fft path);
* ``FFT floor``: only the transforms F needs at this lens (the used columns' pruned forward and inverse 2D
  FFTs of the box, the forward ones on the rows each batch touches as in F; :mod:`wtilde_dask.bench.fft_floor`),
  the fastest of XLA at batch sizes 8-64 (every row) and ducc0 on
  every core (threads inside each call, or one batch per thread) at batch sizes 8-32, measured in the same run;
  ``eval_vs_floor`` = the JAX evaluation / the floor;
* ``ours JAX jit, one thread``: the same likelihood in a child process pinned to core 0 (``taskset -c 0``,
  XLA's intra-op pool at one thread, ducc0 on one thread); ``--no-one-thread`` skips it;
* ``ours JAX jit, single, XLA FFT``: the same likelihood with F's FFTs by ``jnp.fft`` inside the compiled function
  instead of F on the host by ducc0 (the CPU default; :mod:`wtilde_dask.inversion.jax_fft`; what a GPU runs);
* ``peer jit``: PyAutoLens ``FitInterferometer(..., xp=jax.numpy)`` under ``jax.jit`` (Isothermal + ExternalShear,
  ``RectangularUniform`` mesh, ``Constant`` regularization, its sparse operator preloaded with our kernel in its
  ``nufft_precision_operator`` layout; linear solver, and its default positive-only solver); ``peer NumPy``: the
  same fit with ``xp=numpy``.

``--mesh delaunay`` / ``--mesh voronoi`` (``--mesh-pixels`` S vertices, default 400) time the same rows on the
image-plane meshes, whose vertex table (which traced points are vertices, the triangulation, each traced point's
triangle or natural neighbours) is built on the host per lens and enters the compiled function as an input:

* ``ours JAX jit, single`` / ``value_and_grad``: ``fitter.jax_likelihood(mesh=..., n_pixels=S)``, host table
  included in each call; the gradient holds the table fixed;
* the batch rows: ``log_evidence_batch`` builds one table per lens (``voronoi``: padded to a common size) and
  stacks them;
* ``ours NumPy``: :class:`~wtilde_dask.inversion.DelaunayMesh` (barycentric, Constant on the Delaunay edges) or
  :class:`~wtilde_dask.inversion.natural_neighbour.VoronoiMesh` (Sibson weights, Voronoi-weighted edges);
* FFT floor, one-thread and XLA FFT rows as above (the one-thread child gets the mesh and S);
* the peer (:mod:`wtilde_dask.bench.peer_mesh`): ``al.mesh.Delaunay`` (for ``delaunay``) or ``al.mesh.DelaunayNN``
  (its Sibson natural-neighbour mesh, for ``voronoi``) on an ``al.image_mesh.Overlay`` image-plane mesh grid of
  about S points; ``peer <mesh> jit, ConstantSplit, linear solver`` / ``default solver``: under ``jax.jit`` with
  ``al.reg.ConstantSplit`` (coefficient 1), the reference of the ``peer jit / this`` column and of
  ``speedup_vs_peer_jit``; ``peer <mesh> NumPy (not jittable), Constant, linear``: ``al.reg.Constant`` (the scheme
  ours uses), which builds its neighbours with SciPy from the traced vertices and so runs with ``xp=numpy`` only.
  The peer's vertices are not ours, so its log evidences are not the same number as ours; the ``check`` line
  gives ours evaluated on the peer's own T and H (Constant), which equals the peer's.

The JAX and NumPy log evidences are printed with their relative difference, then ``value_and_grad / eval``.
The last two lines are machine-readable (the floor, one-thread and gradient ratios; then the times; for
``delaunay`` / ``voronoi`` the times line ends with ``mesh=<mesh> S=<ours> peer_S=<the peer's>``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from wtilde_dask.bench.timing import interleaved_rounds, timed, warm_up

MESHES = ("rectangular", "delaunay", "voronoi")
_FFT_WORDS = {"ducc0": "ducc0 on the host, one batch per core", "xla": "XLA's FFT (jnp.fft)"}
SETTLE_S = 0.3  # idle before each row's untimed + timed call (bench.timing.interleaved_rounds): no spin from the last row


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench likelihood", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visibilities", type=float, default=1e6, help="K to simulate (default 1e6)")
    p.add_argument("--dataset", default=None, help="an existing dataset folder / .npz instead of simulating")
    p.add_argument("--shape", type=int, nargs=2, default=(800, 800))
    p.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec")
    p.add_argument("--mask-radius", type=float, default=3.5, help="arcsec")
    p.add_argument("--mesh", choices=MESHES, default="rectangular",
                   help="source mesh (default rectangular; delaunay / voronoi: --mesh-pixels vertices)")
    p.add_argument("--mesh-shape", type=int, nargs=2, default=(32, 32), help="rectangular mesh nodes (ny nx)")
    p.add_argument("--mesh-pixels", type=int, default=400, help="delaunay / voronoi vertices (default 400)")
    p.add_argument("--batch", type=int, default=8, help="parameter vectors per batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers for the store")
    p.add_argument("--store", default=None, help="store path to create or reuse (default: temporary)")
    p.add_argument("--no-peer", action="store_true", help="skip PyAutoLens")
    p.add_argument("--no-one-thread", action="store_true", help="skip the one-thread row (a child process)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import jax
    import jax.numpy as jnp

    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.io import load_dataset
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.inversion import DelaunayMesh, LensModel, RectangularMesh, regularization_from_mesh
    from wtilde_dask.inversion.natural_neighbour import VoronoiMesh
    from wtilde_dask.inversion.fitter import WTildeFitter
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood, params_from_lens

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
        mesh = args.mesh
        n_mesh = int(args.mesh_pixels)
        if mesh == "rectangular":
            mesh_text = f"{mesh_shape[0] * mesh_shape[1]} ({mesh_shape[0]}x{mesh_shape[1]} rectangular)"
        else:
            mesh_text = f"{n_mesh} ({mesh} vertices: {_MESH_WORDS[mesh]})"
        print(f"likelihood benchmark: M = {grid.n_pixels:,} image pixels ({args.shape[0]}x{args.shape[1]} at "
              f"{args.pixel_scale}\", r = {args.mask_radius}\"), K = {dataset.n_visibilities:,}, S = "
              f"{mesh_text}, constant regularization; store ready in {t_store:.1f} s")
        print(f"machine: {platform.machine()}, python {platform.python_version()}, jax {jax.__version__} on "
              f"{jax.devices()[0].platform} ({jax.device_count()} device(s))")

        radius = 0.35 * args.mask_radius
        lens = LensModel(einstein_radius=radius, axis_ratio=0.8, position_angle=30.0, centre=(0.0, 0.0),
                         shear=(0.03, -0.01))
        fitter = WTildeFitter.from_store(store, path="fft")
        grid_arcsec = grid.grid_arcsec

        def ours_numpy():
            src = lens.ray_trace(grid_arcsec)
            if mesh == "rectangular":
                source_mesh = RectangularMesh.from_source_grid(src, mesh_shape)
                H = regularization_from_mesh(source_mesh, 1.0, "constant")
            elif mesh == "delaunay":
                source_mesh = DelaunayMesh.from_source_grid(src, n_mesh)
                H = regularization_from_mesh(source_mesh, 1.0, "constant")
            else:
                source_mesh = VoronoiMesh.from_source_grid(src, n_mesh)
                H = source_mesh.regularization_matrix(1.0, "constant")  # Voronoi-weighted Delaunay edges
            return fitter.log_evidence(source_mesh.mapping_matrix(src), H)

        mesh_kwargs = (dict(mesh="rectangular", mesh_shape=mesh_shape) if mesh == "rectangular"
                       else dict(mesh=mesh, n_pixels=n_mesh))
        lk = fitter.jax_likelihood(grid_arcsec, **mesh_kwargs, regularization="constant", coefficient=1.0)
        print(f"JAX likelihood: F by {_FFT_WORDS.get(lk.config.fft, lk.config.fft)} ({lk.config.batch_size} columns "
              f"per batch)")
        lk_xla = lk
        if lk.config.fft != "xla":  # the XLA row: the same likelihood with jnp.fft
            lk_xla = fitter.jax_likelihood(grid_arcsec, **mesh_kwargs, regularization="constant", coefficient=1.0,
                                           fft="xla")
            print(f"the XLA FFT row: jnp.fft ({lk_xla.config.batch_size} columns per batch)")
        lk_map = JaxLikelihood(lk.arrays, lk.config, lk.coefficient, batch="map")
        lk_vmap = JaxLikelihood(lk.arrays, lk.config, lk.coefficient, batch="vmap")
        params = jnp.asarray(params_from_lens(lens))
        rng = np.random.default_rng(0)
        batch = jnp.asarray(params_from_lens(lens)[None] * (1 + 0.01 * rng.normal(size=(args.batch, 7))))
        B = int(args.batch)
        runners = {
            "ours JAX jit, single": (lambda: float(jax.block_until_ready(lk.log_evidence(params))), 1),
            f"ours JAX batch (lax.map), per item of {B}": (
                lambda: np.asarray(jax.block_until_ready(lk_map.log_evidence_batch(batch))), B),
            f"ours JAX vmap, per item of {B}": (lambda: np.asarray(jax.block_until_ready(lk_vmap.log_evidence_batch(batch))), B),
            "ours JAX value_and_grad (7 params)": (lambda: jax.block_until_ready(lk.value_and_grad(params)), 1),
            "ours NumPy (lens -> T, H -> evidence)": (ours_numpy, 1),
        }
        if lk.config.fft != "xla":
            runners["ours JAX jit, single, XLA FFT"] = (lambda: float(jax.block_until_ready(lk_xla.log_evidence(params))), 1)
        peer_note = None
        peer_name = "peer FitInterferometer jit, linear solver"
        peer_values = {}  # row name -> what its log evidence is, for the lines under the table
        peer_check = None
        if not args.no_peer and mesh != "rectangular":
            peer_name, peer_note, peer_check = _peer_mesh_rows(runners, peer_values, store, lens, mesh, n_mesh,
                                                               fitter)
        elif not args.no_peer:
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
        floor_name, floor_s, floor_all, n_used = _floor(lk, params, args.repeats)
        print(f"FFT floor ({n_used} used columns of {lk.config.n_source_pixels}, box {lk.config.shape_box} padded to "
              f"{lk.config.fft_shape}): " + ", ".join(f"{k} {v:.4f} s" for k, v in floor_all.items()))
        calls = {name: fn for name, (fn, _) in runners.items()}
        values = warm_up(calls, label="warm-up (compile)")
        times = interleaved_rounds(calls, args.repeats, per={name: per for name, (_, per) in runners.items()},
                                   settle=SETTLE_S, steady=True)
        best = {k: min(v) for k, v in times.items()}
        one = None if args.no_one_thread else _one_thread(store.path, lk, params, args.repeats)
        if one is not None:
            times["ours JAX jit, one thread (taskset -c 0)"] = one[0]
            best["ours JAX jit, one thread (taskset -c 0)"] = min(one[0])
        times[f"FFT floor ({floor_name})"] = [floor_s]
        best[f"FFT floor ({floor_name})"] = floor_s
        width = max([46] + [len(name) for name in times])
        print(f"\n{'s per evaluation':{width}s} {'s':>9s} {'median':>9s} {'peer jit / this':>16s}")
        for name in times:
            vs = f"{best[peer_name] / best[name]:15.2f}x" if peer_name in best else f"{'-':>16s}"
            print(f"{name:{width}s} {best[name]:9.4f} {statistics.median(times[name]):9.4f} {vs}")
        v_jax = float(values["ours JAX jit, single"])
        v_np = float(values["ours NumPy (lens -> T, H -> evidence)"])
        v_vg = values["ours JAX value_and_grad (7 params)"]
        print(f"\nlog evidence: JAX {v_jax:.10f}, NumPy {v_np:.10f}, relative difference {abs(v_jax - v_np) / abs(v_np):.1e}; "
              f"value_and_grad value {float(v_vg[0]):.10f}; gradient {np.array2string(np.asarray(v_vg[1]), precision=4)}")
        if peer_name in values and mesh == "rectangular":
            print(f"peer log evidence {float(values[peer_name]):.6f} (its own Isothermal normalisation and mesh "
                  f"placement: not the same number as ours)")
        for name, what in peer_values.items():
            if name in values:
                print(f"peer log evidence {float(values[name]):.6f} ({what}; its own Isothermal normalisation and "
                      f"vertex choice: not the same number as ours)")
        if peer_check is not None:
            print(f"check: ours log_evidence(T, H) on the peer's own T and H (Constant) = {peer_check[0]:.8f}, the "
                  f"peer's {peer_check[1]:.8f} (relative difference {abs(peer_check[0] - peer_check[1]) / abs(peer_check[1]):.1e})")
        t_eval = best["ours JAX jit, single"]
        grad_over_eval = best["ours JAX value_and_grad (7 params)"] / t_eval
        ratios = (f"eval_vs_floor={t_eval / floor_s:.2f} grad_over_eval={grad_over_eval:.2f} floor_s={floor_s:.4f} "
                  f"floor_way={floor_name.replace(' ', '_').replace(',', '')}")
        if one is not None:
            if abs(one[1] - v_jax) > 1e-9 * abs(v_jax):
                raise RuntimeError(f"one-thread log evidence {one[1]!r} differs from {v_jax!r}")
            ratios += f" one_thread_s={min(one[0]):.4f} speedup_vs_one_thread={min(one[0]) / t_eval:.2f}"
        print(f"value_and_grad / eval = {grad_over_eval:.2f}; eval / FFT floor = {t_eval / floor_s:.2f}"
              + (f"; one thread / eval = {min(one[0]) / t_eval:.2f}" if one is not None else ""))
        if "ours JAX jit, single, XLA FFT" in best:
            ratios += f" xla_fft_s={best['ours JAX jit, single, XLA FFT']:.4f}"
        print(ratios)
        jax_vs_numpy = best["ours NumPy (lens -> T, H -> evidence)"] / best["ours JAX jit, single"]
        line = (f"jax_s={best['ours JAX jit, single']:.4f} jax_map_s_per_item={best[f'ours JAX batch (lax.map), per item of {B}']:.4f} "
                f"jax_vmap_s_per_item={best[f'ours JAX vmap, per item of {B}']:.4f} "
                f"grad_s={best['ours JAX value_and_grad (7 params)']:.4f} "
                f"numpy_s={best['ours NumPy (lens -> T, H -> evidence)']:.4f} jax_vs_numpy={jax_vs_numpy:.2f}")
        if peer_name in best:
            line += (f" peer_jit_s={best[peer_name]:.4f} "
                     f"speedup_vs_peer_jit={best[peer_name] / best['ours JAX jit, single']:.2f}")
        elif peer_note:
            line += f" peer=skipped({peer_note.replace(' ', '_')})"
        if mesh != "rectangular":
            line += f" mesh={mesh} S={lk.config.n_source_pixels}"
            if peer_check is not None:
                line += f" peer_S={peer_check[2]}"
        print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


_MESH_WORDS = {"delaunay": "Delaunay, barycentric", "voronoi": "natural neighbour, Sibson"}


def _peer_mesh_rows(runners, peer_values, store, lens, mesh, n_mesh, fitter):
    """Add the peer rows of a ``delaunay`` / ``voronoi`` run to ``runners`` (:mod:`wtilde_dask.bench.peer_mesh`):
    ``Delaunay`` / ``DelaunayNN`` with ``ConstantSplit`` under ``jax.jit`` (linear and default solvers) and with
    ``Constant`` by NumPy (not jittable there). Returns (the jitted linear row's name, a note when skipped,
    (ours on the peer's Constant T and H, the peer's log evidence, the peer's S) or None)."""
    import jax
    import jax.numpy as jnp

    from wtilde_dask.bench.peer_mesh import peer_mesh_fit_factory

    made = peer_mesh_fit_factory(store, lens, mesh, n_mesh)
    if made is None:
        return "peer jit", "autolens not importable", None
    fit, linear, info = made
    cls, S = info["mesh_class"], info["n_pixels"]
    print(f"peer: al.mesh.{cls}, S = {S} (Overlay {info['overlay_shape'][0]}x{info['overlay_shape'][1]} image-plane "
          f"mesh grid inside the mask), jitted with al.reg.ConstantSplit (its Constant builds neighbours with SciPy "
          f"from the traced vertices: NumPy only)")
    er = float(lens.einstein_radius)
    peer_lin = jax.jit(lambda e: fit(e, jnp, linear, "constant_split").log_evidence)
    peer_default = jax.jit(lambda e: fit(e, jnp, None, "constant_split").log_evidence)
    name = f"peer {cls} jit, ConstantSplit, linear solver"
    runners[name] = (lambda: float(jax.block_until_ready(peer_lin(er))), 1)
    runners[f"peer {cls} jit, ConstantSplit, default solver"] = (
        lambda: float(jax.block_until_ready(peer_default(er))), 1)
    numpy_name = f"peer {cls} NumPy (not jittable), Constant, linear"
    runners[numpy_name] = (lambda: float(fit(er, np, linear, "constant").log_evidence), 1)
    peer_values[name] = f"{cls}, ConstantSplit, linear solver"
    peer_values[numpy_name] = f"{cls}, Constant, linear solver"
    reference = fit(er, np, linear, "constant")
    ours_on_peer = fitter.log_evidence(np.asarray(reference.inversion.mapping_matrix),
                                       np.asarray(reference.inversion.regularization_matrix))
    return name, None, (float(ours_on_peer), float(reference.log_evidence), S)


def _column_rows(lk, params) -> list[np.ndarray]:
    """The box rows of each source pixel that some image pixel maps to at ``params`` (the columns F transforms, in
    index order: the order of F's batches), as the rows its forward transforms need."""
    from wtilde_dask.inversion.jax_likelihood import mapping_and_regularization

    cols, wts, *_ = mapping_and_regularization(params, lk.arrays, lk.config, lk.coefficient, lk.topology(params))
    cols, wts = np.asarray(cols), np.asarray(wts)
    box_row = np.asarray(lk.arrays.box_flat) // lk.config.shape_box[1]
    pixel = np.broadcast_to(np.arange(cols.shape[0])[:, None], cols.shape)
    keep = wts != 0
    column, row = cols[keep], box_row[pixel[keep]]
    return [np.unique(row[column == c]) for c in np.unique(column)]


def _floor(lk, params, repeats: int):
    """(best way, seconds, {way: seconds}, used columns) of the FFT floor at ``params`` (bench.fft_floor), the
    forward transforms on the rows each batch touches (as F)."""
    from wtilde_dask.bench.fft_floor import fft_floor

    column_rows = _column_rows(lk, params)
    res = fft_floor(len(column_rows), lk.config.shape_box, lk.config.fft_shape, nthreads=os.cpu_count() or 1,
                    repeats=max(int(repeats), 2), column_rows=column_rows)
    name, seconds = res.pop("best")
    return name, seconds, res, len(column_rows)


_ONE_THREAD_SCRIPT = """
import sys, time
import numpy as np
import jax
from wtilde_dask.inversion.jax_likelihood import JaxLikelihood
store, ny, nx, reg, coef, bs, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
params = np.array([float(v) for v in sys.argv[8].split(",")])
mesh, n_pixels = sys.argv[9], int(sys.argv[10])
lk = JaxLikelihood.from_store(store, mesh=mesh, mesh_shape=(ny, nx), n_pixels=n_pixels, regularization=reg, coefficient=coef, batch_size=bs)
value = float(jax.block_until_ready(lk.log_evidence(params)))
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(lk.log_evidence(params))
    times.append(time.perf_counter() - t0)
print("ONE_THREAD", repr(value), " ".join(repr(t) for t in times))
"""


def _one_thread(store_path, lk, params, repeats: int):
    """([seconds per call], log evidence) of the same likelihood in a child process pinned to core 0, XLA's
    intra-op pool at one thread; None (with a note) where ``taskset`` is missing."""
    taskset = shutil.which("taskset")
    if taskset is None:
        print("one-thread row skipped: taskset not found")
        return None
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                      "intra_op_parallelism_threads=1").strip())
    cfg = lk.config
    cmd = [taskset, "-c", "0", sys.executable, "-c", _ONE_THREAD_SCRIPT, str(store_path), str(cfg.mesh_shape[0]),
           str(cfg.mesh_shape[1]), cfg.regularization, repr(lk.coefficient), str(cfg.batch_size),
           str(max(int(repeats), 1)), ",".join(repr(float(v)) for v in np.asarray(params)), cfg.mesh, str(cfg.n_pixels)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ONE_THREAD ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"one-thread run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    fields = line.split()
    return [float(v) for v in fields[2:]], float(fields[1])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
