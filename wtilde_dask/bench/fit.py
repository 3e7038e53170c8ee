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
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import pathlib
import platform
import shutil
import tempfile
import time

import numpy as np

from wtilde_dask.constants import ARCSEC_TO_RADIANS
from wtilde_dask.errors import WTildeError

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


class BenchFitError(WTildeError, ValueError):
    """A bad option of the fit benchmark (the message names it and the value)."""


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
# PyAutoLens side
# ----------------------------------------------------------------------------------------------
def _autolens():
    with contextlib.redirect_stdout(io.StringIO()):
        import autofit as af
        import autolens as al
    return al, af


def peer_settings():
    """The PyAutoLens inversion settings that do the maths ours does: linear solve, no edge zeroing, no border
    relocation."""
    al, _ = _autolens()
    return al.Settings(use_positive_only_solver=False, use_edge_zeroed_pixels=False, use_border_relocator=False)


def peer_dataset(store, *, own_operator: bool = True):
    """PyAutoLens ``Interferometer`` on the store's visibilities, noise map, uv and mask, with its sparse operator:
    its own NUFFT precision operator (``own_operator``) or the store's lattice kernel in its layout."""
    al, _ = _autolens()
    grid, ds = store.grid(), store.dataset()
    mask = al.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    dataset = al.Interferometer(data=al.Visibilities(ds.visibilities), noise_map=al.VisibilitiesNoiseMap(ds.noise_map),
                                uv_wavelengths=ds.uv_wavelengths, real_space_mask=mask)
    if own_operator:
        with contextlib.redirect_stdout(io.StringIO()):
            return dataset.apply_sparse_operator()
    from wtilde_dask.kernels.lattice import to_pyautoarray

    return dataset.apply_sparse_operator(nufft_precision_operator=to_pyautoarray(store.read_array("kernel")))


def _peer_prior(af, prior):
    from wtilde_dask.fit import priors as P

    if isinstance(prior, P.Uniform):
        return af.UniformPrior(lower_limit=prior.lower, upper_limit=prior.upper)
    if isinstance(prior, P.TruncatedGaussian):
        return af.TruncatedGaussianPrior(mean=prior.mean, sigma=prior.sigma, lower_limit=prior.lower,
                                         upper_limit=prior.upper)
    if isinstance(prior, P.Gaussian):
        return af.GaussianPrior(mean=prior.mean, sigma=prior.sigma)
    if isinstance(prior, P.LogUniform):
        return af.LogUniformPrior(lower_limit=prior.lower, upper_limit=prior.upper)
    raise BenchFitError(f"prior: no PyAutoFit counterpart for {prior.to_record()}")


def peer_model(model):
    """``af.Collection`` of the lens and source galaxies of a :class:`FitModel` (same priors, same fixed values)."""
    al, af = _autolens()

    def value(name):
        return _peer_prior(af, model.priors[name]) if name in model.priors else float(model.fixed[name])

    if model.source["mesh"] not in ("rectangular", "rectangular_uniform") or model.source["regularization"] != "constant":
        raise BenchFitError(f"source: the benchmark compares the rectangular mesh with constant regularization, got "
                            f"mesh {model.source['mesh']!r}, regularization {model.source['regularization']!r}")
    mass = af.Model(al.mp.Isothermal)
    mass.centre.centre_0, mass.centre.centre_1 = value("centre_0"), value("centre_1")
    mass.ell_comps.ell_comps_0, mass.ell_comps.ell_comps_1 = value("ell_comps_0"), value("ell_comps_1")
    mass.einstein_radius = value("einstein_radius")
    shear = af.Model(al.mp.ExternalShear)
    shear.gamma_1, shear.gamma_2 = value("gamma_1"), value("gamma_2")
    regularization = af.Model(al.reg.Constant)
    regularization.coefficient = value("coefficient")
    source = af.Model(al.Galaxy, redshift=1.0, pixelization=af.Model(
        al.Pixelization, mesh=al.mesh.RectangularUniform(shape=tuple(model.source["shape"])),
        regularization=regularization))
    lens = af.Model(al.Galaxy, redshift=0.5, mass=mass, shear=shear)
    return af.Collection(galaxies=af.Collection(lens=lens, source=source))


def peer_instance(peer, model, x):
    """The PyAutoLens model instance at our (n_free,) point ``x`` (free names in our order)."""
    by_name = dict(zip(model.free_names, np.asarray(x, dtype=np.float64)))
    values = []
    for path in peer.paths:  # prior paths, in the model's prior order
        values.append(float(by_name[path[-1]]))
    return peer.instance_from_vector(values)


def peer_free_names(peer) -> list[str]:
    """Our names (the last element of each prior path) of the PyAutoLens model's free parameters, in its order."""
    return [path[-1] for path in peer.paths]


def kish_n_eff(weights) -> float:
    """``(sum w)^2 / sum w^2``: the effective sample size of posterior weights."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / np.sum(w * w)) if w.size else 0.0


def run_peer_search(dataset, model, *, name="bench", output=None) -> dict:
    """Fit ``model`` (FitModel) with ``af.Nautilus`` + ``al.AnalysisInterferometer(use_jax=True)``; return the
    summary {wall_seconds, n_evaluations, seconds_per_evaluation, log_evidence, log_evidence_error, samples,
    weights, log_likelihood, free_names (ours, in our order)}."""
    al, af = _autolens()
    from autonerves import conf

    st = model.sampler
    peer = peer_model(model)
    output = output or tempfile.mkdtemp(prefix="wtilde-bench-fit-peer-")
    conf.instance.output_path = str(output)
    options = {k: st[k] for k in ("n_update", "n_like_new_bound", "n_points_min") if st.get(k) is not None}
    search = af.Nautilus(name=name, n_live=int(st["n_live"]), n_batch=int(st["n_batch"]), seed=int(st["seed"]),
                         f_live=float(st["f_live"]), n_shell=int(st.get("n_shell", 1)), n_eff=int(st["n_eff"]),
                         n_networks=int(st["n_networks"]), enlarge_per_dim=float(st["enlarge_per_dim"]),
                         split_threshold=int(st["split_threshold"]),
                         n_like_max=float(st["n_like_max"]) if st.get("n_like_max") else float("inf"),
                         number_of_cores=1, checkpoint=False, silence=True, **options)
    analysis = al.AnalysisInterferometer(dataset=dataset, settings=peer_settings(), use_jax=True)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = search.fit(model=peer, analysis=analysis)
    wall = time.perf_counter() - t0
    samples = result.samples
    order = [peer_free_names(peer).index(n) for n in model.free_names]
    x = np.asarray(samples.parameter_lists, dtype=np.float64)[:, order]
    w = np.asarray(samples.weight_list, dtype=np.float64)
    w = w / w.sum()
    n_eval = _peer_evaluations(search, samples)
    return {"wall_seconds": wall, "n_evaluations": n_eval, "seconds_per_evaluation": wall / n_eval if n_eval else None,
            "log_evidence": float(samples.log_evidence), "log_evidence_error": 1.0 / math.sqrt(kish_n_eff(w)),
            "samples": x, "weights": w, "log_likelihood": np.asarray(samples.log_likelihood_list, dtype=np.float64),
            "free_names": list(model.free_names)}


def _peer_evaluations(search, samples) -> int:
    """The likelihood evaluations of the PyAutoLens search: nautilus' ``n_like``, which PyAutoFit records in the
    samples info as ``total_samples``."""
    info = getattr(samples, "samples_info", None) or {}
    if info.get("total_samples"):
        return int(info["total_samples"])
    raise BenchFitError(f"PyAutoLens samples info: no 'total_samples' (keys {sorted(info)})")


# ----------------------------------------------------------------------------------------------
# Same model, same number
# ----------------------------------------------------------------------------------------------
def peer_mapping(traced, mesh_shape):
    """PyAutoLens's ``RectangularUniform`` mapping of the (M, 2) traced grid: (cols (M, 4), weights (M, 4)) from
    its own ``overlay_grid_from`` (mesh pixel centres over the points' box) and bilinear interpolation."""
    al, _ = _autolens()
    from autoarray.inversion.mesh.interpolator.rectangular_uniform import (
        rectangular_mappings_weights_via_interpolation_from,
    )
    from autoarray.inversion.mesh.mesh.rectangular_rtu_adapt_density import overlay_grid_from

    traced = np.asarray(traced, dtype=np.float64)
    mesh_grid = overlay_grid_from(tuple(mesh_shape), al.Grid2DIrregular(traced))
    cols, wts = rectangular_mappings_weights_via_interpolation_from(tuple(mesh_shape), traced, np.asarray(mesh_grid))
    return np.asarray(cols), np.asarray(wts)


def _ours_on_mapping(cols, wts, arrays, config, fixed, coefficient):
    from wtilde_dask.inversion import jax_likelihood as jl

    H, log_det_h = jl.fixed_regularization_matrix(fixed, coefficient)
    F = jl.curvature_matrix(cols, wts, arrays, config)
    D = jl.data_vector(cols, wts, arrays.dirty_image, config.n_source_pixels)
    return jl.solve_and_score(F, D, H, arrays.chi_squared_data, arrays.noise_normalization, log_det_h).log_evidence


_ours_on_mapping_jit = None


def ours_on_mapping(likelihood, cols, wts, coefficient=1.0) -> float:
    """Our log evidence (W-tilde F by FFT, D, Cholesky solve, evidence; jitted) for given (M, 4) mapping columns
    and weights on the likelihood's rectangular mesh (its fixed regularization, ``coefficient``)."""
    global _ours_on_mapping_jit
    import jax
    import jax.numpy as jnp

    if _ours_on_mapping_jit is None:
        _ours_on_mapping_jit = jax.jit(_ours_on_mapping, static_argnames=("config",))
    return float(_ours_on_mapping_jit(jnp.asarray(cols, dtype=jnp.int32), jnp.asarray(wts, dtype=jnp.float64),
                                      likelihood.arrays, config=likelihood.config,
                                      fixed=likelihood.topology(None), coefficient=float(coefficient)))


def peer_figures_of_merit(analysis, peer, model, points) -> np.ndarray:
    """(n,) PyAutoLens's figure_of_merit at our (n, n_free) ``points``, as its search evaluates them: PyAutoFit's
    ``Fitness`` of the model and analysis (jitted and vmapped over the batch, as ``af.Nautilus`` calls it)."""
    from autofit.non_linear.fitness import Fitness

    order = [list(model.free_names).index(n) for n in peer_free_names(peer)]
    fitness = Fitness(model=peer, analysis=analysis, fom_is_log_likelihood=True,
                         resample_figure_of_merit=-np.inf, batched=True)
    return np.asarray(fitness(np.asarray(points, dtype=np.float64)[:, order]), dtype=np.float64)


def same_number(store, model, points, *, dataset=None) -> list[dict]:
    """For each (n_free,) point of ``points``: PyAutoLens's ``figure_of_merit`` (:func:`peer_figures_of_merit`:
    ``AnalysisInterferometer``, ``use_jax=True``, linear settings, its sparse operator on ``dataset`` -- default :func:`peer_dataset` with the
    store's kernel) and ours. Returns one dict per point: ``peer``, ``ours`` (JaxLikelihood.log_evidence of
    ``model.likelihood_inputs``), ``ours_peer_mesh`` (our W-tilde evidence on PyAutoLens's traced grid and
    mesh mapping), ``ours_our_mesh_peer_tracing`` (our mesh on PyAutoLens's traced grid), ``tracing`` (max
    |traced ours - traced PyAutoLens|, arcsec), and the relative differences."""
    import jax
    import jax.numpy as jnp

    from wtilde_dask.inversion import jax_likelihood as jl

    al, _ = _autolens()
    dataset = dataset if dataset is not None else peer_dataset(store, own_operator=False)
    peer = peer_model(model)
    analysis = al.AnalysisInterferometer(dataset=dataset, settings=peer_settings(), use_jax=True)
    options = model.likelihood_options()
    uniform = {**options, "mesh": "rectangular_uniform"}
    likelihood = jl.JaxLikelihood.from_store(store, **{**options, "mesh": "rectangular"})
    likelihood_uniform = jl.JaxLikelihood.from_store(store, **uniform)
    grid_arcsec = np.asarray(store.grid().grid_arcsec)
    pix_grid = dataset.grids.pixelization
    rows = []
    peer_values = peer_figures_of_merit(analysis, peer, model, points)
    for x, peer_value in zip(points, peer_values):
        x = np.asarray(x, dtype=np.float64)
        instance = peer_instance(peer, model, x)
        params, coefficient = model.likelihood_inputs(x)
        if abs(float(coefficient) - likelihood.coefficient) > 0:
            likelihood = jl.JaxLikelihood.from_store(store, **{**options, "mesh": "rectangular"},
                                                     coefficient=float(coefficient))
            likelihood_uniform = jl.JaxLikelihood.from_store(store, **uniform, coefficient=float(coefficient))
        peer_value = float(peer_value)
        tracer = al.Tracer(galaxies=[instance.galaxies.lens, al.Galaxy(redshift=1.0)])
        traced_peer = np.asarray(tracer.traced_grid_2d_list_from(grid=pix_grid)[-1])
        traced_ours = np.asarray(jl.ray_trace(jnp.asarray(params), jnp.asarray(grid_arcsec)))
        cols, wts = peer_mapping(traced_peer, options["mesh_shape"])
        ours = float(jax.block_until_ready(likelihood_uniform.log_evidence(params)))
        ours_rectangular = float(jax.block_until_ready(likelihood.log_evidence(params)))
        on_peer_mesh = ours_on_mapping(likelihood, cols, wts, float(coefficient))
        our_cols, our_wts = jl.rectangular_mapping(jnp.asarray(traced_peer), tuple(options["mesh_shape"]),
                                                   likelihood.config.buffer)
        ours_peer_tracing = ours_on_mapping(likelihood, our_cols, our_wts, float(coefficient))
        rows.append({
            "x": x.tolist(), "peer": peer_value, "ours": ours, "ours_rectangular": ours_rectangular,
            "ours_peer_mesh": on_peer_mesh,
            "ours_our_mesh_peer_tracing": ours_peer_tracing,
            "tracing": float(np.max(np.abs(traced_ours - traced_peer))),
            "rel_ours": abs(ours - peer_value) / abs(peer_value),
            "rel_rectangular": abs(ours_rectangular - peer_value) / abs(peer_value),
            "rel_peer_mesh": abs(on_peer_mesh - peer_value) / abs(peer_value),
            "rel_tracing": abs(ours_rectangular - ours_peer_tracing) / abs(peer_value),
        })
    return rows


def prior_draws(model, n: int, seed: int = 0) -> np.ndarray:
    """(n, n_free) points drawn from the model's priors (``prior_transform`` of uniform unit-cube points)."""
    u = np.random.default_rng(seed).uniform(size=(int(n), model.n_free))
    return np.asarray(model.prior_transform(u), dtype=np.float64)


def truth_point(model, truth: dict) -> np.ndarray:
    """The (n_free,) point of the truth (free names in the model's order)."""
    return np.array([truth[n] if n in truth else 1.0 for n in model.free_names], dtype=np.float64)


def print_same_number(rows, names, out=print) -> dict:
    """Print the same-number table; return the largest differences (relative unless named ``abs``)."""
    out(f"\nsame model, same number: PyAutoLens figure_of_merit vs ours at {len(rows)} points "
        f"(first: the truth; then prior draws); parameters {', '.join(names)}")
    out(f"{'point':>5s} {'PyAutoLens':>16s} {'ours rect._uniform':>19s} {'rel. diff':>9s} "
        f"{'ours on its T':>16s} {'rel. diff':>9s} {'ours rectangular':>17s} {'rel. diff':>9s} {'tracing':>8s}")
    for i, r in enumerate(rows):
        out(f"{i:5d} {r['peer']:16.6f} {r['ours']:19.6f} {r['rel_ours']:9.1e} {r['ours_peer_mesh']:16.6f} "
            f"{r['rel_peer_mesh']:9.1e} {r['ours_rectangular']:17.6f} {r['rel_rectangular']:9.1e} {r['tracing']:8.1e}")
    summary = {"max_rel_ours": max(r["rel_ours"] for r in rows),
               "max_rel_peer_mesh": max(r["rel_peer_mesh"] for r in rows),
               "max_rel_rectangular": max(r["rel_rectangular"] for r in rows),
               "max_abs_rectangular": max(abs(r["ours_rectangular"] - r["peer"]) for r in rows),
               "max_tracing": max(r["tracing"] for r in rows),
               "max_rel_tracing": max(r["rel_tracing"] for r in rows)}
    out(f"ours (JaxLikelihood, mesh rectangular_uniform) = PyAutoLens figure_of_merit to {summary['max_rel_ours']:.1e} "
        f"relative; our W-tilde evidence on its own traced grid and mapping: {summary['max_rel_peer_mesh']:.1e}; "
        f"ray tracing (params_from_autolens + our SIE + shear) vs its tracer: max {summary['max_tracing']:.1e} arcsec")
    out(f"our mesh 'rectangular' (nodes on the traced box enlarged by 1e-3, points clamped) instead: max "
        f"{summary['max_rel_rectangular']:.1e} relative ({summary['max_abs_rectangular']:.3g} in log Z): the mesh "
        f"placement is a difference of model")
    return summary


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
