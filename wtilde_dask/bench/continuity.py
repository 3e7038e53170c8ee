"""Benchmark of how smoothly the log evidence follows the lens, per source mesh: the log evidence along a
line of Einstein radii, and the fraction of steps whose second difference is larger than the median first
difference (a jump: a smooth curve sampled finely has second differences far below its first differences).

    python -m wtilde_dask.bench continuity [--steps 400] [--shape 36 36] [--pixel-scale 0.1] [--vertices 150]
                                           [--mesh-shape 12 12] [--radius-range 0.9 1.1] [--visibilities 3000]
                                           [--meshes rectangular rectangular_adapt_density delaunay voronoi]

Data: a lensed Gaussian source (SIE + shear, Einstein radius 1.0") observed at ``--visibilities`` random
(u, v) points within 3e5 wavelengths (direct Fourier sum, noise 1/20 of the peak visibility, unequal real /
imaginary noise) on the whole ``--shape`` lattice of ``--pixel-scale`` arcsec pixels; its lattice W-tilde
store is computed on a two-worker LocalCluster. Each mesh's :class:`JaxLikelihood` (constant
regularization, coefficient 1) is evaluated at ``--steps`` + 1 Einstein radii evenly spaced over
``--radius-range``, the other lens parameters held at the truth. Printed per mesh: the fraction of jumps,
the median |first difference| and the largest |second difference|; the last line is machine-readable JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import tempfile

import numpy as np

from wtilde_dask.inversion.jax_likelihood import MESHES

logger = logging.getLogger(__name__)

TRUTH = (1.0, 0.8, 30.0, 0.02, -0.01, 0.02, 0.01)  # PARAM_NAMES order


def jump_fraction(log_evidence) -> float:
    """Fraction of the second differences of the 1-D series larger in size than its median |first difference|."""
    y = np.asarray(log_evidence, dtype=np.float64)
    if y.ndim != 1 or len(y) < 3:
        raise ValueError(f"log_evidence: need a 1-D series of at least 3 values, got shape {y.shape}")
    return float(np.mean(np.abs(np.diff(y, 2)) > np.median(np.abs(np.diff(y)))))


def lensed_dataset(grid, n_visibilities: int, seed: int = 1):
    """:class:`Interferometer` of a Gaussian source lensed by :data:`TRUTH` on the (M, 2) image grid."""
    from wtilde_dask.dataset import Interferometer
    from wtilde_dask.inversion.jax_likelihood import lens_from_params

    rng = np.random.default_rng(seed)
    beta = lens_from_params(np.array(TRUTH)).ray_trace(grid.grid_arcsec)
    image = np.exp(-0.5 * np.sum((beta - np.array([0.05, 0.1])) ** 2, axis=1) / 0.15 ** 2)
    uv = rng.uniform(-3e5, 3e5, (int(n_visibilities), 2))
    phase = 2j * np.pi * (uv[:, 1:2] * grid.grid_radians[None, :, 1] + uv[:, 0:1] * grid.grid_radians[None, :, 0])
    vis = np.exp(-phase) @ image
    sigma = 0.05 * float(np.abs(vis).max())
    sr, si = sigma * rng.uniform(0.8, 1.2, len(vis)), sigma * rng.uniform(0.8, 1.2, len(vis))
    vis = vis + rng.normal(size=len(vis)) * sr + 1j * rng.normal(size=len(vis)) * si
    return Interferometer.from_arrays(vis, sr + 1j * si, uv, name="continuity bench: lensed Gaussian")


def evidence_along_radius(store, mesh: str, radii, *, n_pixels: int, mesh_shape, coefficient: float = 1.0):
    """(len(radii),) log evidences of ``mesh`` at the Einstein ``radii``, the other parameters at :data:`TRUTH`."""
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

    lk = JaxLikelihood.from_store(store, mesh=mesh, mesh_shape=tuple(mesh_shape), n_pixels=int(n_pixels),
                                  coefficient=coefficient, batch_size=16)
    out = np.empty(len(radii))
    for i, b in enumerate(radii):
        p = np.array(TRUTH)
        p[0] = b
        out[i] = float(lk.log_evidence(p))
    return out


def continuity_table(store, meshes, steps: int, radius_range, *, n_pixels: int, mesh_shape) -> dict:
    """{mesh: {"jump_fraction", "median_first_difference", "max_second_difference", "log_evidence"}}."""
    radii = np.linspace(float(radius_range[0]), float(radius_range[1]), int(steps) + 1)
    table = {}
    for mesh in meshes:
        y = evidence_along_radius(store, mesh, radii, n_pixels=n_pixels, mesh_shape=mesh_shape)
        table[mesh] = {"jump_fraction": jump_fraction(y), "median_first_difference": float(np.median(np.abs(np.diff(y)))),
                       "max_second_difference": float(np.max(np.abs(np.diff(y, 2)))), "log_evidence": y.tolist()}
        logger.info("%s: jump fraction %.4f", mesh, table[mesh]["jump_fraction"])
    return table


def make_store(path, shape, pixel_scale: float, n_visibilities: int, workers: int = 2):
    """The lattice W-tilde store of :func:`lensed_dataset` on the whole (ny, nx) lattice."""
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.grid import ImageGrid

    grid = ImageGrid.from_mask(np.zeros(tuple(shape), dtype=bool), (pixel_scale, pixel_scale))
    with cluster_client("local", n_workers=int(workers), threads_per_worker=1, log=lambda *a: None) as client:
        return compute(lensed_dataset(grid, n_visibilities), grid, path, client=client, method="lattice",
                       progress=False, log=lambda *a, **k: None, overwrite=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench continuity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--shape", type=int, nargs=2, default=(36, 36), help="image lattice (default 36 36)")
    p.add_argument("--pixel-scale", type=float, default=0.1, help="arcsec (default 0.1)")
    p.add_argument("--vertices", type=int, default=150, help="delaunay / voronoi vertices (default 150)")
    p.add_argument("--mesh-shape", type=int, nargs=2, default=(12, 12), help="rectangular meshes' nodes (default 12 12)")
    p.add_argument("--radius-range", type=float, nargs=2, default=(0.9, 1.1), help="Einstein radii, arcsec")
    p.add_argument("--visibilities", type=int, default=3000)
    p.add_argument("--meshes", nargs="+", default=["rectangular", "rectangular_adapt_density", "delaunay", "voronoi"],
                   choices=MESHES)
    p.add_argument("--workers", type=int, default=2)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.steps < 2:
        raise ValueError(f"--steps: need at least 2, got {args.steps}")
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(pathlib.Path(tmp) / "continuity.zarr", args.shape, args.pixel_scale, args.visibilities,
                           args.workers)
        table = continuity_table(store, args.meshes, args.steps, args.radius_range, n_pixels=args.vertices,
                                 mesh_shape=args.mesh_shape)
    print(f"log evidence along {args.steps} steps of the Einstein radius {args.radius_range[0]}..{args.radius_range[1]}\" "
          f"({args.shape[0]}x{args.shape[1]} lattice at {args.pixel_scale}\", {args.vertices} vertices, "
          f"{args.mesh_shape[0]}x{args.mesh_shape[1]} rectangular nodes)")
    print(f"{'mesh':28s} {'jump fraction':>14s} {'median |d1|':>12s} {'max |d2|':>12s}")
    for mesh, row in table.items():
        print(f"{mesh:28s} {row['jump_fraction']:14.4f} {row['median_first_difference']:12.4g} "
              f"{row['max_second_difference']:12.4g}")
    print(json.dumps({mesh: row["jump_fraction"] for mesh, row in table.items()}))
    return 0
