"""Benchmark of a whole lens-model search: PyAutoLens 2026.10 (``af.Nautilus`` + ``al.AnalysisInterferometer``)
against our :func:`~wtilde_dask.fit.run.run_fit`, on one simulated dataset, with the same priors and the same
Nautilus settings, both searches in the same run.

    python -m wtilde_dask.bench fit [--pixels 1000] [--pixel-scale 0.05] [--visibilities 5000] [--mesh-shape 20 20]
                                    [--mesh rectangular_uniform] [--free einstein_radius,ell_comps_0,ell_comps_1]
                                    [--n-live 100] [--n-batch 50] [--n-eff 500] [--f-live 0.01] [--n-like-max N]
                                    [--seed 1] [--workers 2] [--same-number 10] [--peer-operator own]
                                    [--preset alma] [--no-peer] [--no-ours] [--keep DIR]

Data: an ALMA-like uv coverage from :mod:`wtilde_dask.simulate` (Earth-rotation synthesis of 43 antennas),
the lensed image of a Gaussian source (PyAutoLens ``Isothermal`` + ``ExternalShear`` lens through
:func:`~wtilde_dask.inversion.lens.params_from_autolens` and :class:`~wtilde_dask.inversion.lens.LensModel`) on a
circular mask of about ``--pixels`` pixels, visibilities by :func:`~wtilde_dask.simulate.visibilities_from_image`
plus equal real / imaginary Gaussian noise (PyAutoLens's sparse operator models equal noise only). The lattice
W-tilde store is computed on a LocalCluster.

Model: the free parameters of ``--free`` (PyAutoLens names) with uniform priors around the truth, the others
fixed at the truth; a rectangular source mesh of ``--mesh-shape`` nodes with constant regularization,
coefficient 1. The same :class:`~wtilde_dask.fit.model.FitModel` is handed to both sides: ours to ``run_fit``,
PyAutoLens's as ``af.Model`` objects with the same priors (``af.UniformPrior``, ...).

PyAutoLens side: ``al.Interferometer`` on the same visibilities, noise and mask with its sparse operator
(``apply_sparse_operator``, its own NUFFT precision operator), ``al.AnalysisInterferometer(use_jax=True)``
with ``al.Settings(use_positive_only_solver=False, use_edge_zeroed_pixels=False, use_border_relocator=False)``
(the linear solve our evidence does; no border relocation; the dataset's over-sampling is 1 by default),
``al.mesh.RectangularUniform`` + ``al.reg.Constant``, searched by ``af.Nautilus`` with the same n_live, n_batch,
seed, f_live, n_shell, n_eff and n_like_max (``number_of_cores=1``: its likelihood is batched by ``jax.vmap``).

Same model: our mesh ``rectangular_uniform`` is PyAutoLens's ``RectangularUniform`` placement (ny x nx pixel
centres inside the traced points' box, points beyond the outermost centres extrapolated by the bilinear
weights); our ``rectangular`` mesh (``--mesh rectangular``: nodes on the box enlarged by 1e-3 of its size,
points clamped) is a different model. The ``same number`` section measures both: at the truth and at
``--same-number`` prior draws it prints PyAutoLens's ``figure_of_merit``, our ``JaxLikelihood`` log evidence
on ``rectangular_uniform``, our W-tilde evidence on PyAutoLens's own traced grid and mesh mapping, our
``rectangular`` mesh's, and the largest difference of the traced grids.

Rows: wall time of each search (jit compiles included, dataset preparation not), likelihood evaluations,
seconds per evaluation, log Z +- error (error = 1 / sqrt(n_eff) for both, n_eff the Kish effective sample
size of the posterior weights), weighted posterior medians with their 1-sigma half-widths, the difference
of medians in units of the two half-widths added in quadrature, and a ratio line (PyAutoLens / ours).
``--preset alma``: the ALMA-scale dataset (0.05" pixels, 3.5" mask, M ~ 15,400, K = 1e6, 32 x 32 mesh) with
a fixed evaluation budget ``--n-like-max`` (default 600) so that both searches stop after the same number
of evaluations: compare their seconds per evaluation.
The last line is machine-readable.

This module: the dataset, the model, the command and its report; the PyAutoLens side and the same-number check
are in :mod:`wtilde_dask.bench.fit_peer` (re-exported here).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pathlib
import platform
import shutil
import tempfile
import time

import numpy as np

from wtilde_dask.bench.fit_peer import (  # noqa: F401 (re-exported)
    peer_dataset, peer_figures_of_merit, peer_mapping, peer_model, print_same_number, prior_draws, run_peer_search,
    same_number, truth_point)
from wtilde_dask.constants import ARCSEC_TO_RADIANS
from wtilde_dask.errors import BenchFitError  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

#: The simulated lens (PyAutoLens ``Isothermal`` + ``ExternalShear`` parameters; einstein_radius is scaled
#: with the mask radius by :func:`truth_for`).
TRUTH = {"centre_0": 0.0, "centre_1": 0.0, "ell_comps_0": 0.1, "ell_comps_1": 0.05, "einstein_radius": 0.5,
         "gamma_1": 0.02, "gamma_2": -0.01}
#: Half-widths of the uniform priors around the truth.
PRIOR_HALF_WIDTH = {"centre_0": 0.05, "centre_1": 0.05, "ell_comps_0": 0.15, "ell_comps_1": 0.15,
                    "einstein_radius": 0.15, "gamma_1": 0.05, "gamma_2": 0.05}
PRESETS = {
    "alma": {"pixels": None, "shape": (800, 800), "mask_radius": 3.5, "pixel_scale": 0.05, "visibilities": 1_000_000,
             "mesh_shape": (32, 32), "n_like_max": 600},
}


# ----------------------------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------------------------
def truth_for(mask_radius: float) -> dict:
    """:data:`TRUTH` with the Einstein radius at 0.55 of the mask radius (the arcs well inside the mask)."""
    return {**TRUTH, "einstein_radius": round(0.55 * float(mask_radius), 4)}


def lensed_gaussian_image(grid, truth: dict, *, source_centre=(0.05, 0.03), source_sigma=None) -> np.ndarray:
    """(ny, nx) image of a round Gaussian source (peak 1) seen through the lens ``truth`` (PyAutoLens names) on
    the whole lattice of ``grid`` (masked pixels too: the sky does not stop at the mask)."""
    from wtilde_dask.grid import pixel_centres_arcsec
    from wtilde_dask.inversion.jax_likelihood import lens_from_params
    from wtilde_dask.inversion.lens import params_from_autolens

    lens = lens_from_params(params_from_autolens(*(truth[k] for k in TRUTH)))
    yy, xx = pixel_centres_arcsec(grid.shape_native, grid.pixel_scales)
    beta = lens.ray_trace(np.stack([yy.ravel(), xx.ravel()], axis=1))
    sigma = float(source_sigma) if source_sigma is not None else 0.3 * float(truth["einstein_radius"])
    r2 = (beta[:, 0] - source_centre[0]) ** 2 + (beta[:, 1] - source_centre[1]) ** 2
    return np.exp(-0.5 * r2 / sigma**2).reshape(grid.shape_native)


def simulate_lens(grid, truth: dict, n_visibilities: int, *, seed: int = 1, signal_to_noise: float = 20.0,
                  max_baseline_m: float | None = None):
    """An :class:`~wtilde_dask.dataset.Interferometer` of the lensed Gaussian (:func:`lensed_gaussian_image`)
    observed with ``wtilde simulate``'s ALMA-like coverage (one channel, baselines up to ``max_baseline_m``,
    default: the resolution of about two image pixels) plus equal real / imaginary noise of sigma
    ``max |V| / signal_to_noise``."""
    from wtilde_dask import simulate as sim
    from wtilde_dask.dataset import Interferometer

    if max_baseline_m is None:  # lambda / B ~ 2 pixels at 230 GHz
        max_baseline_m = sim.SPEED_OF_LIGHT / 230e9 / (2 * grid.pixel_scales[0] * ARCSEC_TO_RADIANS)
    config = sim.SimulationConfig(n_visibilities=int(n_visibilities), n_channels=1, bandwidth_ghz=0.0,
                                  max_baseline_m=float(max_baseline_m), seed=int(seed))
    rng = np.random.default_rng(config.seed)
    antennas = sim.antenna_positions(config.n_antennas, config.max_baseline_m, rng, config.min_antenna_spacing_m)
    uv = sim.uv_rows(config, sim.baselines_equatorial(antennas, config.latitude_deg), 0, config.n_visibilities)
    image = lensed_gaussian_image(grid, truth)
    vis = sim.visibilities_from_image(image, grid.pixel_scales, uv)
    sigma = float(np.max(np.abs(vis))) / float(signal_to_noise)
    vis = vis + sigma * (rng.normal(size=len(vis)) + 1j * rng.normal(size=len(vis)))
    return Interferometer.from_arrays(vis, np.full(len(vis), sigma * (1 + 1j)), uv, name="bench fit (simulated lens)")


def model_dict(truth: dict, free, *, mesh="rectangular_uniform", mesh_shape=(20, 20), n_live=100, n_batch=50, seed=1, n_like_max=None,
               f_live=0.01, n_eff=500, coefficient=1.0) -> dict:
    """A model file (dict, :meth:`FitModel.from_dict`): ``free`` (PyAutoLens names) with uniform priors of
    :data:`PRIOR_HALF_WIDTH` around ``truth``, the other lens parameters fixed at the truth; rectangular mesh,
    constant regularization of fixed ``coefficient``; Nautilus with the given settings. ``mesh``:
    ``rectangular_uniform`` (PyAutoLens's ``RectangularUniform`` placement: the same model on both sides) or
    ``rectangular`` (ours; a difference of model)."""
    unknown = [n for n in free if n not in TRUTH]
    if unknown:
        raise BenchFitError(f"--free: unknown parameter(s) {', '.join(unknown)}; expected names from {', '.join(TRUTH)}")
    lens = {}
    for name, value in truth.items():
        if name in free:
            h = PRIOR_HALF_WIDTH[name]
            lens[name] = {"prior": "uniform", "lower": round(value - h, 6), "upper": round(value + h, 6)}
        else:
            lens[name] = float(value)
    sampler = {"name": "nautilus", "n_live": int(n_live), "n_batch": int(n_batch), "seed": int(seed),
               "f_live": float(f_live), "n_eff": int(n_eff)}
    if n_like_max:
        sampler["n_like_max"] = int(n_like_max)
    return {"lens": lens,
            "source": {"mesh": mesh, "shape": [int(n) for n in mesh_shape], "regularization": "constant",
                       "coefficient": float(coefficient)},
            "sampler": sampler}


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="alma: the ALMA-scale dataset, fixed budget")
    p.add_argument("--pixels", type=int, default=1000, help="image pixels M (about; circular mask)")
    p.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec")
    p.add_argument("--visibilities", type=int, default=5000, help="K")
    p.add_argument("--mesh-shape", type=int, nargs=2, default=(20, 20))
    p.add_argument("--mesh", choices=("rectangular_uniform", "rectangular"), default="rectangular_uniform",
                   help="our mesh: PyAutoLens's RectangularUniform placement (same model) or our rectangular one")
    p.add_argument("--free", default="einstein_radius,ell_comps_0,ell_comps_1",
                   help="comma-separated free parameters (PyAutoLens names)")
    p.add_argument("--n-live", type=int, default=100)
    p.add_argument("--n-batch", type=int, default=50)
    p.add_argument("--n-eff", type=int, default=500, help="Nautilus' effective sample size goal")
    p.add_argument("--f-live", type=float, default=0.01, help="Nautilus' live-set evidence fraction to stop at")
    p.add_argument("--n-like-max", type=int, default=None, help="evaluation budget of each search")
    p.add_argument("--seed", type=int, default=1, help="simulation and Nautilus seed")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (store and our search)")
    p.add_argument("--same-number", type=int, default=10, help="prior draws compared point by point (0: none)")
    p.add_argument("--peer-operator", choices=("own", "ours"), default="own",
                   help="PyAutoLens's sparse operator from its own NUFFT precision operator, or from our lattice kernel")
    p.add_argument("--no-peer", action="store_true", help="skip PyAutoLens")
    p.add_argument("--no-ours", action="store_true", help="skip our search")
    p.add_argument("--keep", default=None, help="folder to keep the store and outputs in (default: temporary)")
    return p


def _grid_for(args):
    from wtilde_dask.grid import ImageGrid

    if args.preset:
        pre = PRESETS[args.preset]
        return ImageGrid.circular(pre["shape"], (pre["pixel_scale"],) * 2, pre["mask_radius"]), pre["mask_radius"]
    if args.pixels < 50:
        raise BenchFitError(f"--pixels: need at least 50, got {args.pixels}")
    radius = math.sqrt(args.pixels * args.pixel_scale**2 / math.pi)
    n = int(math.ceil(2 * radius / args.pixel_scale)) + 2
    return ImageGrid.circular((n, n), (args.pixel_scale, args.pixel_scale), radius), radius


def posterior_summary(samples, weights) -> tuple[np.ndarray, np.ndarray]:
    """(medians (n_free,), 1-sigma half-widths (n_free,)) of weighted samples (weighted quantiles)."""
    from wtilde_dask.fit.run import SIGMA_LEVELS, weighted_quantiles

    probs = [SIGMA_LEVELS["lower_1sigma"], 0.5, SIGMA_LEVELS["upper_1sigma"]]
    q = np.array([weighted_quantiles(samples[:, j], weights, probs) for j in range(samples.shape[1])])
    return q[:, 1], 0.5 * (q[:, 2] - q[:, 0])


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.preset:
        pre = PRESETS[args.preset]
        args.visibilities = pre["visibilities"]
        args.mesh_shape = pre["mesh_shape"]
        args.n_like_max = args.n_like_max or pre["n_like_max"]
    free = [s.strip() for s in args.free.split(",") if s.strip()]
    import jax

    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.fit.model import FitModel

    grid, radius = _grid_for(args)
    truth = truth_for(radius)
    model = FitModel.from_dict(model_dict(truth, free, mesh=args.mesh, mesh_shape=args.mesh_shape, n_live=args.n_live,
                                          n_batch=args.n_batch, seed=args.seed, n_like_max=args.n_like_max,
                                          n_eff=args.n_eff, f_live=args.f_live))
    tmp = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="wtilde-bench-fit-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t_sim = time.perf_counter()
        dataset = simulate_lens(grid, truth, args.visibilities, seed=args.seed)
        t_sim = time.perf_counter() - t_sim
        store_path = tmp / "bench_fit.zarr"
        rows = {}
        with cluster_client("local", n_workers=args.workers, threads_per_worker=1, log=lambda *a: None) as client:
            t_store = time.perf_counter()
            store = compute(dataset, grid, store_path, method="lattice", client=client, progress=False,
                            overwrite=True, log=lambda *a, **k: None)
            t_store = time.perf_counter() - t_store
            print(f"fit benchmark{' (preset ' + args.preset + ')' if args.preset else ''}: M = {grid.n_pixels:,} image "
                  f"pixels ({grid.shape_native[0]}x{grid.shape_native[1]} at {grid.pixel_scales[0]}\", r = {radius:.3f}\"), "
                  f"K = {dataset.n_visibilities:,} (simulated in {t_sim:.1f} s), S = {args.mesh_shape[0]}x{args.mesh_shape[1]} "
                  f"{args.mesh}, constant regularization (coefficient 1); store ready in {t_store:.1f} s")
            print(f"free: {', '.join(f'{n} ~ U({model.priors[n].lower}, {model.priors[n].upper})' for n in model.free_names)}"
                  f"; truth {', '.join(f'{n} = {truth[n]}' for n in model.free_names)}")
            st = model.sampler
            print(f"Nautilus: n_live {st['n_live']}, n_batch {st['n_batch']}, seed {st['seed']}, f_live {st['f_live']}, "
                  f"n_eff {st['n_eff']}, n_like_max {st['n_like_max'] or 'none'}")
            print(f"machine: {platform.machine()}, python {platform.python_version()}, jax {jax.__version__} on "
                  f"{jax.devices()[0].platform}, {args.workers} Dask worker(s) x 1 thread; "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
            peer_ds = None
            if not args.no_peer:
                t_ds = time.perf_counter()
                peer_ds = peer_dataset(store, own_operator=args.peer_operator == "own")
                print(f"PyAutoLens dataset with its sparse operator ({args.peer_operator} precision operator) in "
                      f"{time.perf_counter() - t_ds:.1f} s")
                if args.same_number:
                    points = np.vstack([truth_point(model, truth)[None], prior_draws(model, args.same_number, args.seed)])
                    same = print_same_number(same_number(store, model, points, dataset=peer_ds), model.free_names)
                    rows["same"] = same
                print("\nPyAutoLens search running ...", flush=True)
                rows["PyAutoLens"] = run_peer_search(peer_ds, model, output=tmp / "peer_output")
                print(f"PyAutoLens search: {rows['PyAutoLens']['wall_seconds']:.1f} s, "
                      f"{rows['PyAutoLens']['n_evaluations']} evaluations", flush=True)
            if not args.no_ours:
                from wtilde_dask.fit.run import run_fit

                print("our search running ...", flush=True)
                t0 = time.perf_counter()
                result = run_fit(store_path, model, name="bench", client=client, overwrite=True)
                wall = time.perf_counter() - t0
                s = result.summary
                print(f"our search: {wall:.1f} s, {s['n_evaluations']} evaluations", flush=True)
                rows["ours"] = {"wall_seconds": wall, "n_evaluations": int(s["n_evaluations"]),
                                "seconds_per_evaluation": wall / max(int(s["n_evaluations"]), 1),
                                "log_evidence": s["log_evidence"], "log_evidence_error": s["log_evidence_error"],
                                "samples": result.samples, "weights": result.weights,
                                "log_likelihood": result.log_likelihood}
        return _report(rows, model, truth)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _report(rows: dict, model, truth) -> int:
    names = list(model.free_names)
    searches = [k for k in ("PyAutoLens", "ours") if k in rows]
    print(f"\n{'search':12s} {'wall s':>9s} {'evaluations':>12s} {'s / eval':>10s} {'log Z':>14s} {'+- err':>8s}  "
          + "  ".join(f"{n + ' median +- 1sigma':>30s}" for n in names))
    stats = {}
    for k in searches:
        r = rows[k]
        med, sig = posterior_summary(r["samples"], r["weights"])
        stats[k] = (med, sig)
        print(f"{k:12s} {r['wall_seconds']:9.1f} {r['n_evaluations']:12,d} {r['seconds_per_evaluation']:10.4f} "
              f"{r['log_evidence']:14.3f} {r['log_evidence_error']:8.3f}  "
              + "  ".join(f"{m:18.5f} +- {s:8.5f}" for m, s in zip(med, sig)))
    print(f"{'truth':12s} {'':>9s} {'':>12s} {'':>10s} {'':>14s} {'':>8s}  "
          + "  ".join(f"{truth[n]:18.5f}{'':12s}" for n in names))
    line = {}
    if len(searches) == 2:
        (m1, s1), (m2, s2) = stats["PyAutoLens"], stats["ours"]
        z = (m2 - m1) / np.sqrt(s1**2 + s2**2)
        a, b = rows["PyAutoLens"], rows["ours"]
        dz = b["log_evidence"] - a["log_evidence"]
        dz_err = math.hypot(a["log_evidence_error"], b["log_evidence_error"])
        print(f"{'ours - PyAutoLens':18s} median difference in sigma (1-sigma half-widths in quadrature): "
              + ", ".join(f"{n} {v:+.2f}" for n, v in zip(names, z))
              + f"; log Z {dz:+.3f} +- {dz_err:.3f}")
        ratio_wall = a["wall_seconds"] / b["wall_seconds"]
        ratio_eval = a["seconds_per_evaluation"] / b["seconds_per_evaluation"]
        print(f"ratio PyAutoLens / ours: wall {ratio_wall:.2f}x, seconds per evaluation {ratio_eval:.2f}x, "
              f"evaluations {a['n_evaluations'] / b['n_evaluations']:.2f}x")
        line.update(wall_ratio=round(ratio_wall, 4), s_per_eval_ratio=round(ratio_eval, 4),
                    max_median_sigma=round(float(np.max(np.abs(z))), 4), log_z_difference=round(dz, 4))
    for k in searches:
        key = "peer" if k == "PyAutoLens" else "ours"
        r = rows[k]
        line.update({f"{key}_wall_s": round(r["wall_seconds"], 3), f"{key}_evaluations": r["n_evaluations"],
                     f"{key}_s_per_eval": round(r["seconds_per_evaluation"], 6),
                     f"{key}_log_z": round(r["log_evidence"], 4), f"{key}_log_z_err": round(r["log_evidence_error"], 4)})
    if "same" in rows:
        line.update({k: float(f"{v:.3e}") for k, v in rows["same"].items()})
    print("FIT_BENCH " + json.dumps(line))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
