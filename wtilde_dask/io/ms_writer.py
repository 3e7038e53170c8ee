"""The old import path of the Measurement Set writer, now :mod:`wtilde_dask.simulate.ms_writer` (beside the
simulator that uses it).

Kept so that ``from wtilde_dask.io.ms_writer import MeasurementSetWriter`` still works; each name is looked up in
the new module on first use (with a :class:`DeprecationWarning`), so the readers in :mod:`wtilde_dask.io` never
import the simulator.
"""

from __future__ import annotations

import importlib
import warnings

NEW_HOME = "wtilde_dask.simulate.ms_writer"
MOVED = ["CORR_TYPE_CODES", "CORR_TYPE_NAMES", "MeasurementSetWriter", "corr_type_codes"]


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    warnings.warn(f"wtilde_dask.io.ms_writer.{name}: moved to {NEW_HOME}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(NEW_HOME), name)


def __dir__():
    return sorted(MOVED)
