"""Priors of a lens-model search, in PyAutoFit's four kinds.

Each prior maps the unit cube onto the parameter (``transform(u)``, the inverse cumulative distribution: what a
nested sampler draws through) and gives its log density (``log_prob(x)``, ``-inf`` outside the support: what a
gradient sampler adds to the log likelihood). Both are vectorised over arrays of any shape and work on NumPy
arrays (NumPy out) and on JAX arrays (JAX out, jit / grad traceable).

==================  =====================================  =======================================================
kind                parameters                              transform(u) / log density on the support
==================  =====================================  =======================================================
uniform             lower < upper                           ``lower + u (upper - lower)`` / ``-ln(upper - lower)``
gaussian            mean, sigma > 0                         ``mean + sigma Phi^-1(u)`` / normal
truncated_gaussian  mean, sigma > 0, lower < upper          ``mean + sigma Phi^-1(Phi(a) + u (Phi(b) - Phi(a)))``,
                    (may be -inf / inf)                     ``a, b = (lower, upper - mean) / sigma`` / normal / Z
log_uniform         0 < lower < upper                       ``lower (upper / lower)**u`` / ``-ln(x ln(upper/lower))``
==================  =====================================  =======================================================

``to_record()`` is the JSON-able canonical form, ``{"prior": kind, ...}``; :func:`prior_from_record` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from scipy import special

from wtilde_dask.inversion.lens import array_module

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _special(xp):
    """The ``ndtr`` / ``ndtri`` of the array module ``xp``."""
    if xp is np:
        return special
    import jax.scipy.special as jsp

    return jsp


@dataclass(frozen=True)
class Prior:
    """Base: a one-dimensional prior with support ``[lower_limit, upper_limit]``."""

    kind: ClassVar[str] = ""

    @property
    def lower_limit(self) -> float:
        return -math.inf

    @property
    def upper_limit(self) -> float:
        return math.inf

    def transform(self, u):
        """Values at the unit-cube coordinates ``u`` (any shape) (module doc)."""
        raise NotImplementedError

    def log_prob(self, x):
        """Log density at ``x`` (any shape); ``-inf`` outside the support."""
        raise NotImplementedError

    def to_record(self) -> dict:
        """``{"prior": kind, <parameter>: float, ...}`` (JSON-able; infinities as the strings "-inf" / "inf")."""
        out = {"prior": self.kind}
        for f in fields(self):
            v = float(getattr(self, f.name))
            out[f.name] = v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
        return out

    def _inside(self, x):
        return (x >= self.lower_limit) & (x <= self.upper_limit)


class _LowerUpperSupport:
    """Mixin: the support is ``[self.lower, self.upper]`` (fields of the dataclass it is mixed into)."""

    @property
    def lower_limit(self) -> float:
        return self.lower

    @property
    def upper_limit(self) -> float:
        return self.upper


@dataclass(frozen=True)
class BoundedPrior(_LowerUpperSupport, Prior):
    """Base: a prior with the support ``[lower, upper]`` given by its two fields."""

    lower: float
    upper: float


@dataclass(frozen=True)
class Uniform(BoundedPrior):
    kind: ClassVar[str] = "uniform"

    def transform(self, u):
        xp = array_module(u)
        return self.lower + xp.asarray(u, dtype=float) * (self.upper - self.lower)

    def log_prob(self, x):
        xp = array_module(x)
        x = xp.asarray(x, dtype=float)
        return xp.where(self._inside(x), -math.log(self.upper - self.lower), -xp.inf)


@dataclass(frozen=True)
class Gaussian(Prior):
    mean: float
    sigma: float
    kind: ClassVar[str] = "gaussian"

    def transform(self, u):
        xp = array_module(u)
        return self.mean + self.sigma * _special(xp).ndtri(xp.asarray(u, dtype=float))

    def log_prob(self, x):
        xp = array_module(x)
        z = (xp.asarray(x, dtype=float) - self.mean) / self.sigma
        return -0.5 * z * z - math.log(self.sigma) - LOG_SQRT_2PI


@dataclass(frozen=True)
class TruncatedGaussian(_LowerUpperSupport, Prior):
    mean: float
    sigma: float
    lower: float
    upper: float
    kind: ClassVar[str] = "truncated_gaussian"

    def _standard_bounds(self):
        """(a, b, flip): the standardised bounds, mirrored onto the lower tail when the interval lies above the
        mean (``flip``), so ``Phi(b) - Phi(a)`` keeps its precision far in a tail."""
        a, b = (self.lower - self.mean) / self.sigma, (self.upper - self.mean) / self.sigma
        return (-b, -a, True) if a > 0 else (a, b, False)

    @property
    def mass(self) -> float:
        """``Z = Phi(b) - Phi(a)``: the normal probability inside ``[lower, upper]``."""
        a, b, _ = self._standard_bounds()
        return float(special.ndtr(b) - special.ndtr(a))

    def transform(self, u):
        xp = array_module(u)
        sp = _special(xp)
        a, b, flip = self._standard_bounds()
        pa, pb = float(special.ndtr(a)), float(special.ndtr(b))
        u = xp.asarray(u, dtype=float)
        z = sp.ndtri(pa + (1.0 - u if flip else u) * (pb - pa))
        z = xp.clip(z, a, b)  # round-off at the ends of the interval
        return self.mean + self.sigma * (-z if flip else z)

    def log_prob(self, x):
        xp = array_module(x)
        x = xp.asarray(x, dtype=float)
        z = (x - self.mean) / self.sigma
        val = -0.5 * z * z - math.log(self.sigma) - LOG_SQRT_2PI - math.log(self.mass)
        return xp.where(self._inside(x), val, -xp.inf)


@dataclass(frozen=True)
class LogUniform(BoundedPrior):
    kind: ClassVar[str] = "log_uniform"

    def transform(self, u):
        xp = array_module(u)
        return self.lower * xp.exp(xp.asarray(u, dtype=float) * math.log(self.upper / self.lower))

    def log_prob(self, x):
        xp = array_module(x)
        x = xp.asarray(x, dtype=float)
        inside = self._inside(x)
        safe = xp.where(inside, x, self.lower)  # no log of a non-positive value, even in the unused branch
        return xp.where(inside, -xp.log(safe) - math.log(math.log(self.upper / self.lower)), -xp.inf)


PRIORS: dict[str, type[Prior]] = {cls.kind: cls for cls in (Uniform, Gaussian, TruncatedGaussian, LogUniform)}


def prior_parameters(kind: str) -> tuple[str, ...]:
    """The parameter names of the prior ``kind`` (e.g. ``("lower", "upper")`` for uniform)."""
    return tuple(f.name for f in fields(PRIORS[kind]))


def prior_from_record(record: dict) -> Prior:
    """The prior of a ``to_record()`` dict (no validation: :mod:`wtilde_dask.fit.model` validates model files)."""
    cls = PRIORS[record["prior"]]
    return cls(**{name: float(record[name]) for name in prior_parameters(cls.kind)})
