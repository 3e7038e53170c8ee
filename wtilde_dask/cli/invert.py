"""``wtilde invert STORE``: one regularized source inversion reusing the stored W-tilde.

Ray-traces the store's image grid through an SIE + external shear, builds the source mesh (rectangular,
density-adapted rectangular, Delaunay or natural-neighbour Voronoi) and its regularization, computes F = T^T W T by the chosen path, solves, scores, and writes
the reconstruction, chi-squared and log evidence into the store's ``inversion/`` group and a PNG
(dirty image, reconstruction on the mesh, residual dirty image).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "invert",
        help="regularized source inversion with the stored W-tilde (chi2, log evidence, PNG)",
        description=__doc__,
    )
    p.add_argument("store", help="W-tilde store (made by `wtilde compute`)")
    lens = p.add_argument_group("lens (SIE + external shear; arcsec, degrees)")
    lens.add_argument("--einstein-radius", type=float, default=1.0)
    lens.add_argument("--axis-ratio", type=float, default=1.0, help="q = b/a in (0, 1]")
    lens.add_argument("--position-angle", type=float, default=0.0, help="degrees counter-clockwise from +x")
    lens.add_argument("--lens-centre", type=float, nargs=2, default=(0.0, 0.0), metavar=("Y", "X"))
    lens.add_argument("--shear", type=float, nargs=2, default=(0.0, 0.0), metavar=("G1", "G2"))
    mesh = p.add_argument_group("source mesh and regularization")
    mesh.add_argument("--mesh", choices=("rectangular", "rectangular_adapt_density", "delaunay", "voronoi"),
                      default="rectangular",
                      help="rectangular (bilinear on a uniform lattice), rectangular_adapt_density (lattice following "
                           "the traced points' density), delaunay (barycentric), voronoi (Sibson natural neighbours)")
    mesh.add_argument("--mesh-shape", type=int, nargs=2, default=(20, 20), metavar=("NY", "NX"),
                      help="rectangular / rectangular_adapt_density mesh nodes (default 20 20)")
    mesh.add_argument("--mesh-pixels", type=int, default=400, help="delaunay / voronoi vertices (default 400)")
    mesh.add_argument("--regularization", choices=("constant", "gradient", "curvature", "zeroth"), default="constant")
    mesh.add_argument("--coefficient", type=float, default=1.0, help="regularization coefficient (default 1.0)")
    run = p.add_argument_group("curvature path and cluster")
    run.add_argument("--path", choices=("auto", "fft", "memory", "out-of-core", "dense"), default="auto",
                     help="auto: fft for lattice stores, else memory (W on the workers) or out-of-core")
    run.add_argument("--backend", choices=("numpy", "jax"), default="numpy",
                     help="numpy (default) or jax: the whole evaluation (ray tracing, mapping, regularization, F by FFT, "
                          "solve, evidence) by the jitted JAX likelihood; lattice stores (path fft)")
    run.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (block paths)")
    run.add_argument("--n-workers", type=int, default=None, help="local cluster workers (block paths)")
    run.add_argument("--png", default=None, help="PNG path (default: STORE_inversion.png beside the store)")
    p.set_defaults(func=run_invert)


def _cluster(args, needed: bool):
    if not needed:
        return contextlib.nullcontext(None)
    from wtilde_dask.cluster import cluster_client

    return cluster_client("scheduler" if args.scheduler else "local", scheduler=args.scheduler,
                          n_workers=args.n_workers, threads_per_worker=1 if args.n_workers else None)


def run_invert(args) -> int:
    from wtilde_dask.inversion import DelaunayMesh, LensModel, RectangularMesh, regularization_from_mesh
    from wtilde_dask.inversion.figure import plot_inversion
    from wtilde_dask.inversion.fitter import WTildeFitter, resolve_path
    from wtilde_dask.store import WTildeStore

    store = WTildeStore.open(args.store, mode="r+")
    grid = store.grid()
    lens = LensModel(args.einstein_radius, args.axis_ratio, args.position_angle, tuple(args.lens_centre), tuple(args.shear))
    source_grid = lens.ray_trace(grid.grid_arcsec)
    if args.mesh == "rectangular":
        mesh = RectangularMesh.from_source_grid(source_grid, tuple(args.mesh_shape))
    elif args.mesh == "rectangular_adapt_density":
        from wtilde_dask.inversion.adaptive_mesh import RectangularAdaptDensityMesh

        mesh = RectangularAdaptDensityMesh.from_source_grid(source_grid, tuple(args.mesh_shape))
    elif args.mesh == "voronoi":
        from wtilde_dask.inversion.natural_neighbour import VoronoiMesh

        mesh = VoronoiMesh.from_source_grid(source_grid, min(args.mesh_pixels, grid.n_pixels))
    else:
        mesh = DelaunayMesh.from_source_grid(source_grid, min(args.mesh_pixels, grid.n_pixels))
    T = mesh.mapping_matrix(source_grid)
    if hasattr(mesh, "regularization_matrix"):  # a mesh with weighted neighbours (voronoi)
        H = mesh.regularization_matrix(args.coefficient, args.regularization)
    else:
        H = regularization_from_mesh(mesh, args.coefficient, args.regularization)
    path = resolve_path(store, args.path)
    if args.backend == "jax" and path != "fft":
        raise SystemExit(f"wtilde invert: --backend jax needs the lattice kernel (--path fft on a lattice store); "
                         f"store {store.path} resolves --path {args.path} to {path!r}")
    with _cluster(args, path in ("memory", "out-of-core")) as client:
        t0 = time.perf_counter()
        fitter = WTildeFitter.from_store(store, path=path, client=client, backend=args.backend)
        if args.backend == "jax":
            from wtilde_dask.inversion.jax_likelihood import params_from_lens

            likelihood = fitter.jax_likelihood(grid.grid_arcsec, mesh=args.mesh, mesh_shape=tuple(args.mesh_shape),
                                               n_pixels=mesh.n_pixels, regularization=args.regularization,
                                               coefficient=args.coefficient)
            likelihood.fit(params_from_lens(lens))  # compile (counted as set-up)
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = likelihood.fit(params_from_lens(lens)) if args.backend == "jax" else fitter.fit(T, H)
        t_fit = time.perf_counter() - t0
        residual = fitter.residual_dirty_image(T, result.reconstruction)
    scalars = result.scalars()
    info = {
        **scalars,
        "path": path,
        "backend": args.backend,
        "n_source_pixels": int(mesh.n_pixels),
        "mesh": args.mesh,
        "mesh_shape": list(args.mesh_shape) if args.mesh.startswith("rectangular") else None,
        "regularization": args.regularization,
        "coefficient": args.coefficient,
        "lens": {"einstein_radius": lens.einstein_radius, "axis_ratio": lens.axis_ratio,
                 "position_angle": lens.position_angle, "centre": list(lens.centre), "shear": list(lens.shear)},
        "seconds_setup": t_setup,
        "seconds_fit": t_fit,
    }
    store.write_array("inversion/reconstruction", result.reconstruction, attrs=info)
    store.update_attrs(inversion=info)  # the latest inversion's numbers, also in the group attributes
    store.write_array("inversion/source_grid_arcsec", mesh.centres, attrs={"units": "arcsec", "order": "(y, x)"})
    store.write_array("inversion/residual_dirty_image", residual, attrs={"formula": "d - W T s"})
    store.write_array("inversion/model_image", np.asarray(T @ result.reconstruction).ravel(), attrs={"formula": "T s"})
    png = pathlib.Path(args.png) if args.png else store.path.with_name(store.path.name.rstrip("/").removesuffix(".zarr") + "_inversion.png")
    plot_inversion(png, grid=grid, mesh=mesh, dirty_image=fitter.dirty_image, reconstruction=result.reconstruction,
                   residual_dirty_image=residual, result=result, title=f"{store.path.name}: {args.mesh} mesh, {path} path")
    print(f"inversion of {store.path} ({store.n_pixels} image pixels, {mesh.n_pixels} source pixels, path {path}, "
          f"backend {args.backend})")
    for key in ("chi_squared", "regularization_term", "log_det_curvature_reg", "log_det_regularization",
                "noise_normalization", "log_evidence"):
        print(f"  {key:24s} {scalars[key]:.10g}")
    print(f"  setup {t_setup:.3f} s, fit {t_fit:.3f} s")
    print(f"  written: {store.path}/inversion/{{reconstruction,source_grid_arcsec,residual_dirty_image,model_image}}")
    print(f"  figure: {png}")
    print(json.dumps({"log_evidence": scalars["log_evidence"], "chi_squared": scalars["chi_squared"], "path": path}))
    return 0
