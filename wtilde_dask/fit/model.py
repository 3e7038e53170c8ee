"""The lens model of a search: a model file in PyAutoLens's terms, validated, and its maps onto the likelihood.

A model file (YAML) has three sections::

    lens:                      # PyAutoLens Isothermal + ExternalShear; each a number (fixed) or a prior
      centre_0: 0.0            # (y, x) arcsec
      centre_1: 0.0
      ell_comps_0: {prior: gaussian, mean: 0.0, sigma: 0.2}
      ell_comps_1: 0.0
      einstein_radius: {prior: uniform, lower: 0.7, upper: 1.3}     # arcsec, PyAutoLens's normalisation
      gamma_1: {prior: uniform, lower: -0.1, upper: 0.1}
      gamma_2: 0.0
    source:
      mesh: rectangular        # or delaunay, or any other name in jax_likelihood.MESHES
      shape: [20, 20]          # (ny, nx) for the rectangular meshes; n_pixels: S for the others
      regularization: constant # regularization.SCHEMES
      coefficient: {prior: log_uniform, lower: 1.0e-3, upper: 1.0e3}
    sampler:
      name: nautilus           # or nuts
      n_live: 100
      n_batch: 20
      seed: 1

Priors (:mod:`wtilde_dask.fit.priors`): ``uniform`` lower/upper, ``gaussian`` mean/sigma, ``truncated_gaussian``
mean/sigma/lower/upper, ``log_uniform`` lower/upper. A lens parameter left out gets PyAutoLens's default prior
(autogalaxy's ``config/priors/mass/total/isothermal.yaml`` and ``sheets/external_shear.yaml``: centre gaussian
(0, 0.1), ell_comps truncated_gaussian (0, 0.3, -1, 1), einstein_radius uniform (0, 8), gamma uniform (-0.3, 0.3));
a left-out ``coefficient`` gets ``regularization/constant.yaml``'s log_uniform (1e-6, 1e6); left-out sampler
settings get the defaults in :data:`SAMPLERS`. ``einstein_radius`` and ``coefficient`` must be >= 0: a prior
whose support reaches below 0 is refused.

Every problem raises :class:`FitModelError` naming the key (``lens.einstein_radius.lower``) and the value.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path


from wtilde_dask.errors import WTildeError
from wtilde_dask.fit.priors import PRIORS, Gaussian, LogUniform, Prior, TruncatedGaussian, Uniform, prior_parameters
from wtilde_dask.inversion.lens import array_module, params_from_autolens

log = logging.getLogger(__name__)


class FitModelError(WTildeError, ValueError):
    """A model file (or dict) that cannot be used: the message names the key and the value."""


LENS_PARAMETERS = ("centre_0", "centre_1", "ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2")
PARAMETERS = LENS_PARAMETERS + ("coefficient",)  # the order of free_names
SECTIONS = ("lens", "source", "sampler")
SOURCE_KEYS = ("mesh", "shape", "n_pixels", "regularization", "coefficient")
NON_NEGATIVE = ("einstein_radius", "coefficient")  # lower end of the parameter's domain: 0

# PyAutoLens's default priors (autogalaxy 2026.10.26.1 config/priors: mass/total/isothermal.yaml,
# mass/sheets/external_shear.yaml, regularization/constant.yaml)
DEFAULT_PRIORS: dict[str, Prior] = {
    "centre_0": Gaussian(mean=0.0, sigma=0.1),
    "centre_1": Gaussian(mean=0.0, sigma=0.1),
    "ell_comps_0": TruncatedGaussian(mean=0.0, sigma=0.3, lower=-1.0, upper=1.0),
    "ell_comps_1": TruncatedGaussian(mean=0.0, sigma=0.3, lower=-1.0, upper=1.0),
    "einstein_radius": Uniform(lower=0.0, upper=8.0),
    "gamma_1": Uniform(lower=-0.3, upper=0.3),
    "gamma_2": Uniform(lower=-0.3, upper=0.3),
    "coefficient": LogUniform(lower=1.0e-6, upper=1.0e6),
}

# Sampler settings and their defaults.
# nautilus: PyAutoFit 2026.10.26.1's ``af.Nautilus`` constructor defaults (autofit/non_linear/search/nest/nautilus/
# search.py; the same as its older config/non_linear/nest.yaml) -- except n_live and n_batch: PyAutoFit's defaults
# there are n_live=3000, n_batch=100, while the PyAutoLens workspace's lens-modelling scripts pass n_live=150,
# n_batch=50, which we take. n_like_max None = no limit (PyAutoFit: inf); seed None = fresh entropy.
# nuts (blackjax): window adaptation's target acceptance 0.8 and NUTS's max_num_doublings 10 are blackjax's defaults;
# the initial step size, warm-up / sample counts, chains and the draws between checkpoints are ours.
SAMPLERS: dict[str, dict] = {
    "nautilus": {
        "n_live": 150, "n_batch": 50, "seed": None, "f_live": 0.01, "n_shell": 1, "n_eff": 500, "n_like_max": None,
        "enlarge_per_dim": 1.1, "split_threshold": 100, "n_networks": 4, "n_points_min": None, "n_update": None,
        "n_like_new_bound": None, "discard_exploration": False,
    },
    "nuts": {
        "num_warmup": 500, "num_samples": 1000, "n_chains": 4, "seed": None, "step_size": 0.1,
        "target_acceptance_rate": 0.8, "max_num_doublings": 10, "checkpoint_draws": 50,
    },
}
# The fewest free parameters each sampler runs with (nautilus.Sampler raises "Cannot run Nautilus with less than 2
# parameters" for n_dim <= 1).
MIN_FREE = {"nautilus": 2, "nuts": 1}
MIN_SHAPE = {"rectangular_adapt_density": 3}  # nodes per axis (JaxLikelihood's floor; 2 for the others)

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # YAML 1.1 reads "1e-3" as a string


def _fail(key: str, message: str):
    raise FitModelError(f"{key}: {message}")


def _number(key: str, value, allow_inf: bool = False) -> float:
    """A finite float (or +-inf where allowed) from a YAML value; strings such as "1e-3" are read as numbers."""
    if value is None:
        _fail(key, "expected a number, got null")
    if isinstance(value, bool):
        _fail(key, f"expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            value = float(text)
        elif allow_inf and text.lower().lstrip("+-.") in ("inf", "infinity"):
            value = -math.inf if text.startswith("-") else math.inf
        else:
            _fail(key, f"expected a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        _fail(key, f"expected a number, got {value!r}")
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        _fail(key, f"expected a finite number, got {value!r}")
    return x


def _integer(key: str, value, minimum: int) -> int:
    x = _number(key, value)
    if not x.is_integer():
        _fail(key, f"expected an integer, got {value!r}")
    if x < minimum:
        _fail(key, f"must be >= {minimum}, got {value!r}")
    return int(x)


def _mapping(key: str, value) -> dict:
    if not isinstance(value, dict):
        _fail(key, f"expected a mapping, got {value!r}")
    return value


def _choice(key: str, value, options, what: str) -> str:
    if not isinstance(value, str) or value not in options:
        _fail(key, f"unknown {what} {value!r}; expected one of {', '.join(options)}")
    return value


def _prior(key: str, spec: dict, name: str) -> Prior:
    """The prior of ``spec`` ({"prior": kind, ...}) for parameter ``name``, checked against its domain."""
    if "prior" not in spec:
        _fail(key, f"a mapping needs 'prior' (one of {', '.join(PRIORS)}), got {spec!r}")
    kind = _choice(f"{key}.prior", spec["prior"], tuple(PRIORS), "prior")
    names = prior_parameters(kind)
    for k, v in spec.items():
        if k != "prior" and k not in names:
            _fail(f"{key}.{k}", f"unknown key for a {kind} prior (value {v!r}); expected {', '.join(names)}")
    for k in names:
        if k not in spec:
            _fail(f"{key}.{k}", f"missing: a {kind} prior needs {', '.join(names)}")
    vals = {k: _number(f"{key}.{k}", spec[k], allow_inf=(kind == "truncated_gaussian" and k in ("lower", "upper")))
            for k in names}
    if "sigma" in vals and vals["sigma"] <= 0:
        _fail(f"{key}.sigma", f"must be > 0, got {spec['sigma']!r}")
    if "lower" in vals and not vals["lower"] < vals["upper"]:
        _fail(f"{key}.lower", f"{spec['lower']!r} must be below {key}.upper {spec['upper']!r}")
    if kind == "log_uniform" and vals["lower"] <= 0:
        _fail(f"{key}.lower", f"must be > 0 for a log_uniform prior, got {spec['lower']!r}")
    prior = PRIORS[kind](**vals)
    if kind == "truncated_gaussian" and not prior.mass > 0:
        _fail(key, f"the gaussian (mean {vals['mean']}, sigma {vals['sigma']}) has no probability between lower "
                   f"{vals['lower']} and upper {vals['upper']}")
    if name in NON_NEGATIVE and prior.lower_limit < 0:
        bound = f"{key}.lower" if "lower" in vals else f"{key}.prior"
        shown = spec["lower"] if "lower" in vals else spec["prior"]
        _fail(bound, f"{shown!r} admits negative values ({prior.to_record()}), but {name} must be >= 0: use a "
                     f"uniform, log_uniform or truncated_gaussian prior with lower >= 0")
    return prior


def _parameter(key: str, value, name: str):
    """A fixed value (float) or a :class:`Prior` for parameter ``name``."""
    if isinstance(value, dict):
        return _prior(key, value, name)
    x = _number(key, value)
    if name in NON_NEGATIVE and x < 0:
        _fail(key, f"must be >= 0, got {value!r}")
    if name.startswith("ell_comps") and abs(x) >= 1:
        _fail(key, f"an ellipticity component must lie in (-1, 1), got {value!r}")
    return x


def _source(spec) -> tuple[dict, object]:
    """(source dict without the coefficient, coefficient value or prior)."""
    from wtilde_dask.inversion.jax_likelihood import MESHES  # read at run time: the mesh list grows
    from wtilde_dask.inversion.regularization import SCHEMES

    spec = _mapping("source", spec)
    for k, v in spec.items():
        if k not in SOURCE_KEYS:
            _fail(f"source.{k}", f"unknown key (value {v!r}); expected one of {', '.join(SOURCE_KEYS)}")
    if "mesh" not in spec:
        _fail("source.mesh", f"missing; expected one of {', '.join(MESHES)}")
    mesh = _choice("source.mesh", spec["mesh"], tuple(MESHES), "mesh")
    out = {"mesh": mesh}
    size, other = ("shape", "n_pixels") if mesh_takes_shape(mesh) else ("n_pixels", "shape")
    if other in spec:
        _fail(f"source.{other}", f"not used by mesh {mesh!r} (value {spec[other]!r}); give {size}")
    if size not in spec:
        _fail(f"source.{size}", f"missing: mesh {mesh!r} needs "
                                + ("shape: [ny, nx]" if size == "shape" else "n_pixels: S"))
    if size == "shape":
        shape = spec["shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            _fail("source.shape", f"expected [ny, nx], got {shape!r}")
        least = MIN_SHAPE.get(mesh, 2)
        out["shape"] = tuple(_integer(f"source.shape[{i}]", v, least) for i, v in enumerate(shape))
    else:
        out["n_pixels"] = _integer("source.n_pixels", spec["n_pixels"], 3)
    out["regularization"] = _choice("source.regularization", spec.get("regularization", "constant"),
                                    tuple(SCHEMES), "regularization")
    coefficient = (_parameter("source.coefficient", spec["coefficient"], "coefficient") if "coefficient" in spec
                   else DEFAULT_PRIORS["coefficient"])
    return out, coefficient


def mesh_takes_shape(mesh: str) -> bool:
    """True for the rectangular meshes (``jax_likelihood.LATTICE_MESHES``: sized by ``shape: [ny, nx]``), False for
    the others (``n_pixels``)."""
    from wtilde_dask.inversion import jax_likelihood

    return mesh in getattr(jax_likelihood, "LATTICE_MESHES", ()) or "rectangular" in mesh


def _check_setting(key: str, name: str, value):
    """One sampler setting, type- and range-checked."""
    if value is None and name in ("seed", "n_like_max", "n_points_min", "n_update", "n_like_new_bound"):
        return None
    if name == "discard_exploration":
        if not isinstance(value, bool):
            _fail(key, f"expected true or false, got {value!r}")
        return value
    if name == "seed":
        return _integer(key, value, 0)
    if name in ("f_live", "target_acceptance_rate"):
        x = _number(key, value)
        if not 0 < x < 1:
            _fail(key, f"must lie in (0, 1), got {value!r}")
        return x
    if name == "enlarge_per_dim":
        x = _number(key, value)
        if not x > 1:
            _fail(key, f"must be > 1, got {value!r}")
        return x
    if name == "step_size":
        x = _number(key, value)
        if not x > 0:
            _fail(key, f"must be > 0, got {value!r}")
        return x
    minimum = {"n_networks": 0, "num_warmup": 0}.get(name, 1)
    return _integer(key, value, minimum)


def _sampler(spec, free_names: tuple[str, ...]) -> dict:
    spec = _mapping("sampler", spec)
    if "name" not in spec:
        _fail("sampler.name", f"missing; expected one of {', '.join(SAMPLERS)}")
    name = _choice("sampler.name", spec["name"], tuple(SAMPLERS), "sampler")
    defaults = SAMPLERS[name]
    out = {"name": name}
    for k, v in spec.items():
        if k != "name" and k not in defaults:
            _fail(f"sampler.{k}", f"unknown setting for {name} (value {v!r}); expected one of {', '.join(defaults)}")
    for k, default in defaults.items():
        out[k] = _check_setting(f"sampler.{k}", k, spec[k]) if k in spec else default
    n_free = len(free_names)
    if n_free == 0:
        _fail("sampler.name", f"{name} has nothing to sample: every parameter is fixed; give at least one a prior")
    if n_free < MIN_FREE[name]:
        _fail("sampler.name", f"{name} needs at least {MIN_FREE[name]} free parameters"
              + (" (nautilus.Sampler refuses fewer: 'Cannot run Nautilus with less than 2 parameters')"
                 if name == "nautilus" else "")
              + f"; the model has {n_free} ({', '.join(free_names) or 'none'}): give more parameters a prior"
              + (", or use name: nuts" if name == "nautilus" and n_free == 1 else ""))
    if name == "nautilus":
        if out["n_live"] <= n_free:
            _fail("sampler.n_live", f"{out['n_live']} must exceed the number of free parameters ({n_free}): nautilus "
                                    "bounds the live points by ellipsoids, which need more points than dimensions")
        if out["n_points_min"] is not None and out["n_points_min"] < n_free + 1:
            _fail("sampler.n_points_min", f"{out['n_points_min']} must be at least the number of free parameters + 1 "
                                          f"({n_free + 1})")
    return out


def _record_value(value):
    """A fixed value or prior as it appears in a model file / record."""
    return value.to_record() if isinstance(value, Prior) else float(value)


def _same(a, b) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


_ABSENT = object()


def _show(v) -> str:
    if v is _ABSENT:
        return "(absent)"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if v is None:
        return "null"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _diff(key: str, old, new, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict) and old.get("prior") == new.get("prior"):
        for k in list(new) + [k for k in old if k not in new]:
            _diff(f"{key}.{k}" if key else k, old.get(k, _ABSENT), new.get(k, _ABSENT), out)
    elif not _same(old, new):
        out.append(f"{key or 'model'}: {_show(old)} -> {_show(new)}")


@dataclass(frozen=True)
class FitModel:
    """A validated lens model: free parameters with priors, fixed values, source and sampler settings.

    ``free_names`` are PyAutoLens names in :data:`PARAMETERS` order (those with priors); a point of the search
    is an (n_free,) vector in that order. ``priors`` maps each free name to its :class:`Prior`; ``fixed`` holds
    every other parameter's value; ``source`` = {"mesh", "shape" (ny, nx) or "n_pixels", "regularization"};
    ``sampler`` = {"name", settings...} with every default filled in.
    """

    free_names: tuple[str, ...]
    fixed: dict[str, float]
    source: dict
    sampler: dict
    priors: dict[str, Prior] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path) -> "FitModel":
        """Read and validate a model file; errors name the file, the key and the value."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FitModelError(f"model file {path}: not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FitModelError(f"model file {path}: cannot be read ({exc})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise FitModelError(f"model file {path}: not valid YAML{at}: {problem}") from None
        try:
            return cls.from_dict(data)
        except FitModelError as exc:
            raise FitModelError(f"model file {path}: {exc}") from None

    @classmethod
    def from_dict(cls, data) -> "FitModel":
        """Validate a model given as a dict (the parsed model file, or a :meth:`to_record`)."""
        if not isinstance(data, dict):
            _fail("model", f"expected a mapping with sections {', '.join(SECTIONS)}, got {data!r}")
        for k, v in data.items():
            if k not in SECTIONS:
                _fail(str(k), f"unknown section (value {v!r}); expected {', '.join(SECTIONS)}")
        for k in SECTIONS:
            if k not in data:
                _fail(k, f"missing section; a model file has the sections {', '.join(SECTIONS)}")
        lens = _mapping("lens", data["lens"])
        for k, v in lens.items():
            if k not in LENS_PARAMETERS:
                _fail(f"lens.{k}", f"unknown parameter (value {v!r}); expected one of {', '.join(LENS_PARAMETERS)}")
        values = {}
        for name in LENS_PARAMETERS:
            if name in lens:
                values[name] = _parameter(f"lens.{name}", lens[name], name)
            else:
                values[name] = DEFAULT_PRIORS[name]
                log.info("lens.%s: not given, PyAutoLens's default prior %s", name, values[name].to_record())
        e0, e1 = values["ell_comps_0"], values["ell_comps_1"]
        if not isinstance(e0, Prior) and not isinstance(e1, Prior) and math.hypot(e0, e1) >= 1:
            _fail("lens.ell_comps_0, lens.ell_comps_1", f"({e0}, {e1}) has magnitude {math.hypot(e0, e1):.6g}; "
                                                        "the ellipticity (ell_comps_0, ell_comps_1) must lie inside "
                                                        "the unit circle (axis ratio q > 0)")
        source, values["coefficient"] = _source(data["source"])
        free_names = tuple(n for n in PARAMETERS if isinstance(values[n], Prior))
        sampler = _sampler(data["sampler"], free_names)
        return cls(free_names=free_names,
                   fixed={n: v for n, v in values.items() if not isinstance(v, Prior)},
                   source=source, sampler=sampler,
                   priors={n: values[n] for n in free_names})

    # ------------------------------------------------------------------------------------------------------
    # the maps a sampler needs
    # ------------------------------------------------------------------------------------------------------
    @property
    def n_free(self) -> int:
        return len(self.free_names)

    def _columns(self, x, what: str):
        xp = array_module(x)
        x = xp.asarray(x, dtype=float)
        if x.ndim < 1 or x.shape[-1] != self.n_free:
            raise FitModelError(f"{what}: expected shape (n, {self.n_free}) in the order {', '.join(self.free_names)}, "
                                f"got {tuple(x.shape)}")
        return xp, x

    def prior_transform(self, u):
        """(n, n_free) physical values of (n, n_free) unit-cube points (or (n_free,) -> (n_free,))."""
        xp, u = self._columns(u, "prior_transform")
        return xp.stack([self.priors[n].transform(u[..., i]) for i, n in enumerate(self.free_names)], axis=-1)

    def log_prior(self, x):
        """(n,) sum of the free parameters' log prior densities at (n, n_free) points (-inf outside a support)."""
        xp, x = self._columns(x, "log_prior")
        total = xp.zeros(x.shape[:-1])
        for i, n in enumerate(self.free_names):
            total = total + self.priors[n].log_prob(x[..., i])
        return total

    def values(self, x) -> dict:
        """Every parameter (:data:`PARAMETERS`) at (n, n_free) points: columns of ``x`` or the fixed floats."""
        xp, x = self._columns(x, "values")
        return {n: (x[..., self.free_names.index(n)] if n in self.free_names else self.fixed[n]) for n in PARAMETERS}

    def likelihood_inputs(self, x):
        """(params (n, 7) in ``jax_likelihood.PARAM_NAMES`` order, coefficient (n,)) at (n, n_free) points
        ((n_free,) -> ((7,), scalar)). NumPy in, NumPy out; JAX in, JAX out (jit / grad traceable)."""
        xp, x = self._columns(x, "likelihood_inputs")
        v = self.values(x)
        params = params_from_autolens(*(v[n] for n in LENS_PARAMETERS))
        batch = x.shape[:-1]
        params = xp.broadcast_to(params, batch + (7,))
        coefficient = xp.broadcast_to(xp.asarray(v["coefficient"], dtype=float), batch)
        return params, coefficient

    def likelihood_options(self) -> dict:
        """Keyword arguments of ``JaxLikelihood.from_store``: mesh, mesh_shape or n_pixels, regularization."""
        out = {"mesh": self.source["mesh"], "regularization": self.source["regularization"]}
        if "shape" in self.source:
            out["mesh_shape"] = tuple(self.source["shape"])
        else:
            out["n_pixels"] = int(self.source["n_pixels"])
        return out

    # ------------------------------------------------------------------------------------------------------
    # records
    # ------------------------------------------------------------------------------------------------------
    def _value(self, name: str):
        return self.priors[name] if name in self.priors else self.fixed[name]

    def to_record(self) -> dict:
        """The canonical JSON-able form (a valid model file: ``from_dict(to_record())`` gives this model back)."""
        source = {"mesh": self.source["mesh"]}
        if "shape" in self.source:
            source["shape"] = [int(n) for n in self.source["shape"]]
        else:
            source["n_pixels"] = int(self.source["n_pixels"])
        source["regularization"] = self.source["regularization"]
        source["coefficient"] = _record_value(self._value("coefficient"))
        return {"lens": {n: _record_value(self._value(n)) for n in LENS_PARAMETERS},
                "source": source,
                "sampler": dict(self.sampler)}

    def differences(self, record) -> list[str]:
        """Lines naming what differs between a stored ``record`` (a :meth:`to_record`) and this model:
        ``"lens.einstein_radius.upper: 1.3 -> 1.4"`` (the record's value -> this model's); [] when the same."""
        if isinstance(record, dict):
            try:
                record = FitModel.from_dict(record).to_record()  # canonical: defaults filled, numbers as floats
            except FitModelError:
                pass
        out: list[str] = []
        _diff("", record, self.to_record(), out)
        return out
