"""The PyAutoLens side of the fit benchmark (:mod:`wtilde_dask.bench.fit`) and its "same model, same number" check.

The peer: ``al.Interferometer`` with its sparse operator, our :class:`~wtilde_dask.fit.model.FitModel` as
``af.Model`` objects with the same priors, ``al.AnalysisInterferometer(use_jax=True)`` searched by
``af.Nautilus`` (:func:`run_peer_search`). Same number: at the truth and at prior draws, PyAutoLens's
``figure_of_merit`` beside our log evidences on its mesh placement, its own traced grid and mapping, and our
``rectangular`` mesh (:func:`same_number`, :func:`print_same_number`). Settings and the rows it prints: the
benchmark's module docstring.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time

import numpy as np

from wtilde_dask.errors import BenchFitError


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
