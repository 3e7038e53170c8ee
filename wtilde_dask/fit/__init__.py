"""Lens-model search: the model file (:mod:`.model`, :mod:`.priors`), the sampler runs and their records.

``FitModel.from_yaml(path)`` reads and validates a model file written in PyAutoLens's terms; ``run_fit`` (from
:mod:`.run`) runs the search on a store.
"""

from wtilde_dask.fit.model import FitModel, FitModelError
from wtilde_dask.fit.priors import Gaussian, LogUniform, Prior, TruncatedGaussian, Uniform

__all__ = ["FitModel", "FitModelError", "Prior", "Uniform", "Gaussian", "TruncatedGaussian", "LogUniform", "run_fit"]


def __getattr__(name):  # run_fit / FitResult on first use: the runner pulls in Dask and the samplers
    if name in ("run_fit", "FitResult"):
        from wtilde_dask.fit import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
