"""The search's model file (wtilde_dask.fit.model, wtilde_dask.fit.priors): the example file parses; prior transforms
equal scipy.stats ``ppf`` and log densities equal ``logpdf``; ``likelihood_inputs`` equal PyAutoLens's axis ratio,
angle and deflections (and are jit / grad traceable); defaults equal PyAutoFit's / PyAutoLens's; every bad file
raises FitModelError naming the key and the value; records round-trip; ``differences`` names the changed key."""

from __future__ import annotations

import copy
import inspect
import json

import numpy as np
import pytest
import yaml
from scipy import stats

import autofit as af
import autolens as al
from wtilde_dask.errors import WTildeError
from wtilde_dask.fit import FitModel, FitModelError
from wtilde_dask.fit.model import PARAMETERS
from wtilde_dask.fit.priors import Gaussian, LogUniform, TruncatedGaussian, Uniform, prior_from_record
from wtilde_dask.inversion import jax_likelihood as jl
from wtilde_dask.inversion.lens import LensModel

import jax
import jax.numpy as jnp

EXAMPLE = """\
lens:
  einstein_radius: {prior: uniform, lower: 0.7, upper: 1.3}
  ell_comps_0: {prior: gaussian, mean: 0.0, sigma: 0.2}
  ell_comps_1: 0.0
  centre_0: 0.0
  centre_1: 0.0
  gamma_1: {prior: uniform, lower: -0.1, upper: 0.1}
  gamma_2: 0.0
source:
  mesh: rectangular
  shape: [20, 20]
  regularization: constant
  coefficient: {prior: log_uniform, lower: 1.0e-3, upper: 1.0e3}
sampler:
  name: nautilus
  n_live: 100
  n_batch: 20
  seed: 1
"""

FULL = {  # every lens parameter free, several prior kinds
    "lens": {
        "centre_0": {"prior": "gaussian", "mean": 0.05, "sigma": 0.1},
        "centre_1": {"prior": "uniform", "lower": -0.3, "upper": 0.2},
        "ell_comps_0": {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 0.3, "lower": -1.0, "upper": 1.0},
        "ell_comps_1": {"prior": "gaussian", "mean": 0.1, "sigma": 0.2},
        "einstein_radius": {"prior": "truncated_gaussian", "mean": 1.0, "sigma": 0.5, "lower": 0.0, "upper": "inf"},
        "gamma_1": {"prior": "uniform", "lower": -0.1, "upper": 0.1},
        "gamma_2": {"prior": "gaussian", "mean": 0.0, "sigma": 0.05},
    },
    "source": {"mesh": "delaunay", "n_pixels": 300, "regularization": "curvature",
               "coefficient": {"prior": "log_uniform", "lower": 1e-2, "upper": 1e2}},
    "sampler": {"name": "nuts", "num_warmup": 50, "num_samples": 100, "seed": 3},
}


def example() -> dict:
    return yaml.safe_load(EXAMPLE)


def scipy_prior(record: dict):
    """The scipy.stats distribution of a prior record (the independent reference)."""
    kind = record["prior"]
    if kind == "uniform":
        return stats.uniform(loc=record["lower"], scale=record["upper"] - record["lower"])
    if kind == "gaussian":
        return stats.norm(loc=record["mean"], scale=record["sigma"])
    if kind == "truncated_gaussian":
        m, s = record["mean"], record["sigma"]
        lo, hi = float(record["lower"]), float(record["upper"])
        return stats.truncnorm(a=(lo - m) / s, b=(hi - m) / s, loc=m, scale=s)
    return stats.loguniform(record["lower"], record["upper"])


# ---------------------------------------------------------------------------------------------------------------
# the example file
# ---------------------------------------------------------------------------------------------------------------
def test_example_file_parses(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(EXAMPLE)
    m = FitModel.from_yaml(path)
    assert m.free_names == ("ell_comps_0", "einstein_radius", "gamma_1", "coefficient")
    assert m.n_free == 4
    assert m.fixed == {"centre_0": 0.0, "centre_1": 0.0, "ell_comps_1": 0.0, "gamma_2": 0.0}
    assert m.source == {"mesh": "rectangular", "shape": (20, 20), "regularization": "constant"}
    assert {k: m.sampler[k] for k in ("name", "n_live", "n_batch", "seed")} == {
        "name": "nautilus", "n_live": 100, "n_batch": 20, "seed": 1}
    assert m.priors["coefficient"] == LogUniform(1e-3, 1e3)
    assert m.priors["einstein_radius"] == Uniform(0.7, 1.3)
    assert m.likelihood_options() == {"mesh": "rectangular", "mesh_shape": (20, 20), "regularization": "constant"}
    assert issubclass(FitModelError, WTildeError) and issubclass(FitModelError, ValueError)


def test_full_model_and_its_options():
    m = FitModel.from_dict(FULL)
    assert m.free_names == PARAMETERS
    assert m.fixed == {}
    assert m.likelihood_options() == {"mesh": "delaunay", "n_pixels": 300, "regularization": "curvature"}
    assert m.sampler["name"] == "nuts" and m.sampler["num_samples"] == 100 and m.sampler["seed"] == 3


def test_meshes_are_read_at_run_time(monkeypatch):
    """A mesh added to jax_likelihood.MESHES is accepted (sized by n_pixels, or shape for a rectangular one)."""
    monkeypatch.setattr(jl, "MESHES", jl.MESHES + ("voronoi", "rectangular_adaptive"))
    d = example()
    d["source"] = {"mesh": "voronoi", "n_pixels": 250, "coefficient": 1.0}
    assert FitModel.from_dict(d).likelihood_options()["n_pixels"] == 250
    d["source"] = {"mesh": "rectangular_adaptive", "shape": [12, 14], "coefficient": 1.0}
    assert FitModel.from_dict(d).likelihood_options()["mesh_shape"] == (12, 14)


@pytest.mark.peer
def test_left_out_parameters_get_pyautolens_default_priors():
    d = {"lens": {"einstein_radius": 1.0}, "source": {"mesh": "rectangular", "shape": [8, 8]},
         "sampler": {"name": "nautilus"}}
    m = FitModel.from_dict(d)
    iso, constant = af.Model(al.mp.Isothermal), af.Model(al.reg.Constant)
    shear = af.Model(al.mp.ExternalShear)
    for name, ref in (("centre_0", iso.centre.centre_0), ("centre_1", iso.centre.centre_1)):
        assert m.priors[name] == Gaussian(ref.mean, ref.sigma)
    for name, ref in (("ell_comps_0", iso.ell_comps.ell_comps_0), ("ell_comps_1", iso.ell_comps.ell_comps_1)):
        assert m.priors[name] == TruncatedGaussian(ref.mean, ref.sigma, ref.lower_limit, ref.upper_limit)
    for name, ref in (("gamma_1", shear.gamma_1), ("gamma_2", shear.gamma_2)):
        assert m.priors[name] == Uniform(ref.lower_limit, ref.upper_limit)
    assert m.priors["coefficient"] == LogUniform(constant.coefficient.lower_limit, constant.coefficient.upper_limit)
    assert m.source["regularization"] == "constant"
    assert m.fixed == {"einstein_radius": 1.0}


@pytest.mark.peer
def test_nautilus_defaults_are_pyautofit_constructor_defaults():
    """Every default but n_live / n_batch (PyAutoLens workspace values) is af.Nautilus's own."""
    m = FitModel.from_dict({**example(), "sampler": {"name": "nautilus"}})
    ref = {k: v.default for k, v in inspect.signature(af.Nautilus.__init__).parameters.items()}
    for k in ("f_live", "n_shell", "n_eff", "enlarge_per_dim", "split_threshold", "n_networks", "n_points_min",
              "n_update", "n_like_new_bound", "discard_exploration", "seed"):
        assert m.sampler[k] == ref[k], k
    assert ref["n_like_max"] == float("inf") and m.sampler["n_like_max"] is None
    assert (m.sampler["n_live"], m.sampler["n_batch"]) == (150, 50)


def test_nuts_defaults_are_blackjax_defaults():
    import blackjax
    import blackjax.mcmc.nuts

    m = FitModel.from_dict({**example(), "sampler": {"name": "nuts"}})
    adapt = inspect.signature(blackjax.window_adaptation).parameters
    nuts = inspect.signature(blackjax.mcmc.nuts.as_top_level_api).parameters
    assert m.sampler["target_acceptance_rate"] == adapt["target_acceptance_rate"].default
    assert m.sampler["max_num_doublings"] == nuts["max_num_doublings"].default


# ---------------------------------------------------------------------------------------------------------------
# priors against scipy.stats
# ---------------------------------------------------------------------------------------------------------------
PRIOR_RECORDS = [
    {"prior": "uniform", "lower": -0.1, "upper": 0.2},
    {"prior": "gaussian", "mean": 0.3, "sigma": 0.2},
    {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 0.3, "lower": -1.0, "upper": 1.0},
    {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 1.0, "lower": 4.0, "upper": 6.0},  # far upper tail
    {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 1.0, "lower": -7.0, "upper": -5.0},  # far lower tail
    {"prior": "truncated_gaussian", "mean": 1.0, "sigma": 0.5, "lower": 0.0, "upper": "inf"},
    {"prior": "log_uniform", "lower": 1e-3, "upper": 1e3},
]
U = np.concatenate([np.linspace(1e-6, 1 - 1e-6, 41), [0.5, 1e-9, 1 - 1e-9]])


@pytest.mark.parametrize("i", range(len(PRIOR_RECORDS)))
def test_prior_transform_is_scipy_ppf(i):
    record = PRIOR_RECORDS[i]
    prior = prior_from_record(record)
    ref = scipy_prior(record).ppf(U)
    np.testing.assert_allclose(prior.transform(U), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.jit(prior.transform)(jnp.asarray(U))), ref, rtol=1e-9, atol=1e-12)
    assert prior.transform(U.reshape(4, 11)).shape == (4, 11)


@pytest.mark.parametrize("i", range(len(PRIOR_RECORDS)))
def test_prior_log_prob_is_scipy_logpdf(i):
    record = PRIOR_RECORDS[i]
    prior, ref = prior_from_record(record), scipy_prior(record)
    x = ref.ppf(np.linspace(0.01, 0.99, 25))
    np.testing.assert_allclose(prior.log_prob(x), ref.logpdf(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.jit(prior.log_prob)(jnp.asarray(x))), ref.logpdf(x), rtol=1e-10,
                               atol=1e-12)
    if np.isfinite(prior.lower_limit):
        outside = np.array([prior.lower_limit - 1e-9, prior.lower_limit - 1.0])
        assert np.all(prior.log_prob(outside) == -np.inf)
        assert np.all(np.asarray(prior.log_prob(jnp.asarray(outside))) == -np.inf)
        assert np.all(ref.logpdf(outside) == -np.inf)
    # the gradient is finite inside and (for NUTS) does not turn into NaN outside
    points = np.concatenate([x, [prior.lower_limit - 1.0] if np.isfinite(prior.lower_limit) else []])
    g = jax.grad(lambda v: jnp.sum(prior.log_prob(v)))(jnp.asarray(points))
    assert np.all(np.isfinite(np.asarray(g)))


def test_model_prior_transform_and_log_prior_are_scipy():
    m = FitModel.from_dict(FULL)
    records = m.to_record()
    dists = [scipy_prior(records["lens"][n] if n != "coefficient" else records["source"]["coefficient"])
             for n in m.free_names]
    u = np.random.default_rng(5).uniform(size=(30, m.n_free))
    x = m.prior_transform(u)
    assert x.shape == (30, m.n_free)
    ref = np.stack([d.ppf(u[:, i]) for i, d in enumerate(dists)], axis=1)
    np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-12)
    ref_lp = sum(d.logpdf(x[:, i]) for i, d in enumerate(dists))
    np.testing.assert_allclose(m.log_prior(x), ref_lp, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax.jit(m.log_prior)(jnp.asarray(x))), ref_lp, rtol=1e-10)
    bad = x.copy()
    bad[0, m.free_names.index("einstein_radius")] = -0.1  # outside its truncated gaussian
    assert m.log_prior(bad)[0] == -np.inf and np.isfinite(m.log_prior(bad)[1])


# ---------------------------------------------------------------------------------------------------------------
# likelihood inputs against PyAutoLens
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.peer
def test_likelihood_inputs_are_autolens():
    m = FitModel.from_dict(FULL)
    x = m.prior_transform(np.random.default_rng(9).uniform(0.05, 0.95, size=(6, m.n_free)))
    params, coefficient = m.likelihood_inputs(x)
    assert isinstance(params, np.ndarray) and params.shape == (6, 7) and coefficient.shape == (6,)
    np.testing.assert_array_equal(coefficient, x[:, -1])
    g = np.random.default_rng(2).uniform(-2, 2, (200, 2))
    for row, p in zip(x, params):
        v = dict(zip(m.free_names, row))
        iso = al.mp.Isothermal(centre=(v["centre_0"], v["centre_1"]), ell_comps=(v["ell_comps_0"], v["ell_comps_1"]),
                               einstein_radius=v["einstein_radius"])
        shear = al.mp.ExternalShear(gamma_1=v["gamma_1"], gamma_2=v["gamma_2"])
        assert p[1] == pytest.approx(float(iso.axis_ratio()), abs=1e-14)
        assert p[2] == pytest.approx(float(iso.angle()), abs=1e-12)
        assert (p[3], p[4], p[5], p[6]) == (v["centre_0"], v["centre_1"], v["gamma_1"], v["gamma_2"])
        pts = al.Grid2DIrregular(g)
        ref = np.asarray(iso.deflections_yx_2d_from(pts)) + np.asarray(shear.deflections_yx_2d_from(pts))
        ours = LensModel(p[0], p[1], p[2], (p[3], p[4]), (p[5], p[6])).deflections(g)
        assert np.max(np.abs(ours - ref)) <= 1e-10


@pytest.mark.peer
def test_likelihood_inputs_fixed_values_and_single_point(tmp_path):
    m = FitModel.from_dict(example())
    x = np.array([[0.1, 1.05, 0.02, 3.0], [-0.2, 0.9, -0.05, 0.5]])  # ell_comps_0, einstein_radius, gamma_1, coeff
    params, coefficient = m.likelihood_inputs(x)
    iso = al.mp.Isothermal(centre=(0.0, 0.0), ell_comps=(0.1, 0.0), einstein_radius=1.05)
    assert params[0, 0] == pytest.approx(2 * float(iso.einstein_radius_rescaled()), rel=1e-14)
    assert params[0, 1] == pytest.approx(float(iso.axis_ratio()), abs=1e-14)
    np.testing.assert_array_equal(params[:, [3, 4, 6]], 0.0)  # centre and gamma_2 fixed at 0
    np.testing.assert_array_equal(params[:, 5], x[:, 2])
    np.testing.assert_array_equal(coefficient, [3.0, 0.5])
    p1, c1 = m.likelihood_inputs(x[1])
    assert p1.shape == (7,) and np.ndim(c1) == 0
    np.testing.assert_array_equal(p1, params[1])
    d = example()
    d["source"]["coefficient"] = 2.5
    m2 = FitModel.from_dict(d)
    assert m2.free_names == ("ell_comps_0", "einstein_radius", "gamma_1") and m2.fixed["coefficient"] == 2.5
    np.testing.assert_array_equal(m2.likelihood_inputs(x[:, :3])[1], [2.5, 2.5])


def test_likelihood_inputs_are_jax_traceable():
    m = FitModel.from_dict(FULL)
    x = m.prior_transform(np.random.default_rng(4).uniform(0.1, 0.9, size=(3, m.n_free)))
    p_np, c_np = m.likelihood_inputs(x)
    p_jx, c_jx = jax.jit(m.likelihood_inputs)(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(p_jx), p_np, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(c_jx), c_np, rtol=1e-13)
    # the Jacobian by jax equals central finite differences of the NumPy map
    jac = np.asarray(jax.jacfwd(lambda v: m.likelihood_inputs(v)[0])(jnp.asarray(x[0])))
    h = 1e-6
    fd = np.stack([(m.likelihood_inputs(x[0] + h * e)[0] - m.likelihood_inputs(x[0] - h * e)[0]) / (2 * h)
                   for e in np.eye(m.n_free)], axis=1)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-6)
    # round lens (ell_comps = 0): the gradient stays finite
    x0 = x[0].copy()
    x0[[2, 3]] = 0.0
    g = jax.grad(lambda v: jnp.sum(m.likelihood_inputs(v)[0]) + m.log_prior(v))(jnp.asarray(x0))
    assert np.all(np.isfinite(np.asarray(g)))


# ---------------------------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------------------------
def edit(path, value):
    """A function turning the example dict into a bad one: set ``value`` at the dotted ``path`` (None deletes)."""
    def apply(d):
        keys = path.split(".")
        node = d
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
        return d
    return apply


ER = "lens.einstein_radius"
BAD = {  # name: (edit, key the message names, value the message names)
    "unknown lens parameter": (edit("lens.einstein_radiuss", 1.0), "lens.einstein_radiuss", "1.0"),
    "unknown section": (edit("priors", {"a": 1}), "priors", "'a'"),
    "unknown source key": (edit("source.pixels", 10), "source.pixels", "10"),
    "unknown sampler setting": (edit("sampler.n_livee", 5), "sampler.n_livee", "5"),
    "reversed uniform bounds": (edit(ER, {"prior": "uniform", "lower": 1.3, "upper": 0.7}), f"{ER}.lower", "1.3"),
    "reversed truncated bounds": (edit("lens.gamma_2", {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 0.1,
                                                        "lower": 0.2, "upper": -0.2}), "lens.gamma_2.lower", "0.2"),
    "equal bounds": (edit("lens.centre_0", {"prior": "uniform", "lower": 0.5, "upper": 0.5}), "lens.centre_0.lower",
                     "0.5"),
    "unknown prior": (edit("lens.ell_comps_0", {"prior": "cauchy", "mean": 0.0}), "lens.ell_comps_0.prior", "cauchy"),
    "prior without kind": (edit("lens.centre_1", {"lower": 0.0, "upper": 1.0}), "lens.centre_1", "'lower'"),
    "prior missing a bound": (edit(ER, {"prior": "uniform", "lower": 0.7}), f"{ER}.upper", "missing"),
    "prior with a foreign key": (edit(ER, {"prior": "uniform", "lower": 0.7, "upper": 1.3, "sigma": 0.1}),
                                 f"{ER}.sigma", "0.1"),
    "sigma not positive": (edit("lens.ell_comps_0", {"prior": "gaussian", "mean": 0.0, "sigma": -0.2}),
                           "lens.ell_comps_0.sigma", "-0.2"),
    "empty truncation": (edit("lens.gamma_1", {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 0.001,
                                               "lower": 5.0, "upper": 6.0}), "lens.gamma_1", "5.0"),
    "unknown mesh": (edit("source.mesh", "hexagonal"), "source.mesh", "hexagonal"),
    "unknown regularization": (edit("source.regularization", "tikhonov"), "source.regularization", "tikhonov"),
    "unknown sampler": (edit("sampler.name", "emcee"), "sampler.name", "emcee"),
    "log_uniform lower 0": (edit("source.coefficient", {"prior": "log_uniform", "lower": 0.0, "upper": 10.0}),
                            "source.coefficient.lower", "0.0"),
    "log_uniform lower negative": (edit("lens.gamma_1", {"prior": "log_uniform", "lower": -1.0, "upper": 1.0}),
                                   "lens.gamma_1.lower", "-1.0"),
    "coefficient prior admits negatives": (edit("source.coefficient", {"prior": "uniform", "lower": -1.0,
                                                                       "upper": 1.0}),
                                           "source.coefficient.lower", "-1.0"),
    "coefficient gaussian": (edit("source.coefficient", {"prior": "gaussian", "mean": 1.0, "sigma": 0.1}),
                             "source.coefficient.prior", "gaussian"),
    "einstein_radius gaussian": (edit(ER, {"prior": "gaussian", "mean": 1.0, "sigma": 0.1}), f"{ER}.prior",
                                 "gaussian"),
    "einstein_radius prior admits negatives": (edit(ER, {"prior": "uniform", "lower": -0.5, "upper": 1.3}),
                                               f"{ER}.lower", "-0.5"),
    "einstein_radius truncated below 0": (edit(ER, {"prior": "truncated_gaussian", "mean": 1.0, "sigma": 0.3,
                                                    "lower": -0.1, "upper": 2.0}), f"{ER}.lower", "-0.1"),
    "einstein_radius fixed negative": (edit(ER, -1.0), ER, "-1.0"),
    "coefficient fixed negative": (edit("source.coefficient", -2.0), "source.coefficient", "-2.0"),
    "ell_comps fixed out of range": (edit("lens.ell_comps_1", 1.5), "lens.ell_comps_1", "1.5"),
    "fixed ellipticity outside the unit circle": (lambda d: {**d, "lens": {**d["lens"], "ell_comps_0": 0.8,
                                                                           "ell_comps_1": 0.7}},
                                                  "lens.ell_comps_0, lens.ell_comps_1", "(0.8, 0.7)"),
    "nautilus with one free parameter": (lambda d: {**d, "lens": {**d["lens"], "einstein_radius": 1.0,
                                                                  "ell_comps_0": 0.0, "gamma_1": 0.0}},
                                         "sampler.name", "nautilus"),
    "no free parameter": (lambda d: {"lens": {n: 0.5 for n in PARAMETERS[:-1]},
                                     "source": {**d["source"], "coefficient": 1.0}, "sampler": {"name": "nuts"}},
                          "sampler.name", "nuts"),
    "adaptive rectangular mesh too small": (lambda d: {**d, "source": {**d["source"], "mesh": "rectangular_adapt_density",
                                                                       "shape": [2, 20]}}, "source.shape[0]", "2"),
    "n_live not above n_free": (edit("sampler.n_live", 4), "sampler.n_live", "4"),
    "n_points_min too small": (edit("sampler.n_points_min", 2), "sampler.n_points_min", "2"),
    "missing lens": (edit("lens", None), "lens", "missing"),
    "missing source": (edit("source", None), "source", "missing"),
    "missing sampler": (edit("sampler", None), "sampler", "missing"),
    "missing mesh": (edit("source.mesh", None), "source.mesh", "missing"),
    "missing shape": (edit("source.shape", None), "source.shape", "missing"),
    "n_pixels on a rectangular mesh": (edit("source.n_pixels", 100), "source.n_pixels", "100"),
    "shape on a delaunay mesh": (lambda d: {**d, "source": {**d["source"], "mesh": "delaunay"}}, "source.shape",
                                 "[20, 20]"),
    "section not a mapping": (edit("lens", [1, 2]), "lens", "[1, 2]"),
    "non-numeric bound": (edit(ER, {"prior": "uniform", "lower": 0.7, "upper": "abc"}), f"{ER}.upper", "abc"),
    "non-numeric fixed value": (edit("lens.centre_0", "zero"), "lens.centre_0", "zero"),
    "boolean value": (edit("lens.centre_1", True), "lens.centre_1", "True"),
    "null value": (edit("lens.gamma_2", "~"), "lens.gamma_2", "null"),
    "nan": (edit("lens.gamma_2", float("nan")), "lens.gamma_2", "nan"),
    "infinite fixed value": (edit("lens.centre_0", float("inf")), "lens.centre_0", "inf"),
    "non-numeric shape": (edit("source.shape", [20, "x"]), "source.shape[1]", "x"),
    "shape too small": (edit("source.shape", [1, 20]), "source.shape[0]", "1"),
    "shape not a pair": (edit("source.shape", 20), "source.shape", "20"),
    "fractional n_live": (edit("sampler.n_live", 100.5), "sampler.n_live", "100.5"),
    "non-numeric n_batch": (edit("sampler.n_batch", "many"), "sampler.n_batch", "many"),
    "negative seed": (edit("sampler.seed", -1), "sampler.seed", "-1"),
    "f_live out of range": (edit("sampler.f_live", 1.5), "sampler.f_live", "1.5"),
    "nuts setting under nautilus": (edit("sampler.num_warmup", 10), "sampler.num_warmup", "10"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_model_names_key_and_value(name, tmp_path):
    change, key, value = BAD[name]
    data = change(copy.deepcopy(example()))
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data) if name != "null value" else EXAMPLE.replace("gamma_2: 0.0", "gamma_2: ~"))
    with pytest.raises(FitModelError) as err:
        FitModel.from_yaml(path)
    message = str(err.value)
    assert key in message and value in message and str(path) in message, message
    if name != "null value":
        with pytest.raises(FitModelError) as err:
            FitModel.from_dict(data)
        assert key in str(err.value) and value in str(err.value), str(err.value)


def test_nautilus_itself_refuses_one_parameter():
    """Why the model refuses one free parameter under nautilus: nautilus.Sampler raises for n_dim = 1."""
    import nautilus

    with pytest.raises(ValueError, match="less than 2 parameters"):
        nautilus.Sampler(lambda u: u, lambda x: 0.0, n_dim=1, n_live=20)
    d = example()
    d["lens"].update(einstein_radius=1.0, ell_comps_0=0.0, gamma_1=0.0)
    with pytest.raises(FitModelError, match="at least 2 free parameters"):
        FitModel.from_dict(d)
    d["sampler"] = {"name": "nuts"}  # one free parameter is fine for NUTS
    assert FitModel.from_dict(d).free_names == ("coefficient",)


def test_unparsable_and_missing_files(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("lens:\n  einstein_radius: {prior: uniform, lower: 0.7\nsource: [\n")
    with pytest.raises(FitModelError, match="not valid YAML") as err:
        FitModel.from_yaml(path)
    assert str(path) in str(err.value) and "line" in str(err.value)
    with pytest.raises(FitModelError, match="not found") as err:
        FitModel.from_yaml(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in str(err.value)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(FitModelError, match="expected a mapping") as err:
        FitModel.from_yaml(path)
    assert "[1, 2]" in str(err.value)


def test_numbers_written_as_yaml_strings_are_read(tmp_path):
    """YAML 1.1 reads 1e-3 (no dot) as a string; the model reads it as the number."""
    path = tmp_path / "model.yaml"
    path.write_text(EXAMPLE.replace("lower: 1.0e-3, upper: 1.0e3", "lower: 1e-3, upper: 1e3"))
    assert FitModel.from_yaml(path).priors["coefficient"] == LogUniform(1e-3, 1e3)


# ---------------------------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [example(), FULL], ids=["example", "full"])
def test_record_round_trip(data, tmp_path):
    m = FitModel.from_dict(copy.deepcopy(data))
    record = json.loads(json.dumps(m.to_record(), allow_nan=False))  # strict JSON
    assert FitModel.from_dict(record) == m
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(record))
    assert FitModel.from_yaml(path) == m
    assert m.differences(record) == []
    assert set(record) == {"lens", "source", "sampler"}


def test_differences_name_the_changed_key():
    m = FitModel.from_dict(example())
    record = m.to_record()
    changed = copy.deepcopy(record)
    changed["lens"]["einstein_radius"]["upper"] = 1.4
    assert m.differences(changed) == ["lens.einstein_radius.upper: 1.4 -> 1.3"]
    changed = copy.deepcopy(record)
    changed["source"]["shape"] = [24, 20]
    changed["sampler"]["n_live"] = 200
    assert m.differences(changed) == ["source.shape: [24, 20] -> [20, 20]", "sampler.n_live: 200 -> 100"]
    changed = copy.deepcopy(record)
    changed["lens"]["gamma_2"] = {"prior": "uniform", "lower": -0.1, "upper": 0.1}
    (line,) = m.differences(changed)
    assert line.startswith("lens.gamma_2: {prior: uniform, lower: -0.1, upper: 0.1} -> 0.0")
    changed = copy.deepcopy(record)
    changed["lens"]["ell_comps_0"] = {"prior": "truncated_gaussian", "mean": 0.0, "sigma": 0.2, "lower": -1.0,
                                      "upper": 1.0}
    (line,) = m.differences(changed)
    assert line.startswith("lens.ell_comps_0: {prior: truncated_gaussian") and line.endswith(
        "-> {prior: gaussian, mean: 0.0, sigma: 0.2}")
    # a record written without the defaults compares equal to one with them
    short = example()
    assert m.differences(short) == []
    (line,) = m.differences("not a record")
    assert line.startswith("model: not a record -> {lens: {centre_0: 0.0")
