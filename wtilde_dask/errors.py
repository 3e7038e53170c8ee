"""The package's errors: one root, :class:`WTildeError`, and one class per field.

Each error derives from :class:`WTildeError`, so ``except WTildeError`` catches all of them, and also from
``ValueError`` (bad input: the ``wtilde`` command exits 2 with one line) or ``RuntimeError`` (a run that cannot
go on). Messages name the file or field and the offending value. The modules that raise them re-export them
(``from wtilde_dask.dataset import DatasetError`` keeps working).
"""

from __future__ import annotations

__all__ = [
    "WTildeError",
    "DatasetError",
    "ExportError",
    "GridError",
    "LatticeError",
    "SimulationError",
    "StoreError",
    "StoreLockedError",
    "IngestError",
    "ComputeError",
    "ProfileError",
    "LensError",
    "MeshError",
    "MappingError",
    "RegularizationError",
    "InversionError",
    "FitterError",
    "JaxLikelihoodError",
    "BenchFitError",
]


class WTildeError(Exception):
    """Root of the package's errors: the message names the file or field and the offending value."""


# ---- data in and out ------------------------------------------------------------------------------------
class DatasetError(WTildeError, ValueError):
    """Bad interferometer input; the message names the file, the field, the bad index and value."""


class ExportError(DatasetError):
    """An export cannot be done (FITS folder or PyAutoArray terms): the message names the source / output
    and what is missing or bad."""


class GridError(WTildeError, ValueError):
    """Bad grid or mask input; the message names the parameter/file and the bad value."""


class LatticeError(WTildeError, ValueError):
    """Bad lattice-kernel input; the message names the parameter and the bad value."""


class SimulationError(WTildeError, ValueError):
    """Bad simulation parameter; the message names the parameter and the bad value."""


# ---- the store and the runs that fill it ---------------------------------------------------------------
class StoreError(WTildeError, ValueError):
    """A store that cannot be used as asked (missing, foreign, different inputs, locked, incomplete)."""


class StoreLockedError(StoreError):
    """Another live run holds the store's lock."""


class IngestError(WTildeError, ValueError):
    """The visibilities cannot give a W-tilde (e.g. every visibility flagged); the message names the source."""


class ComputeError(WTildeError, RuntimeError):
    """Blocks failed (after retries) or the run lost its lock; the store stays resumable."""


class ProfileError(WTildeError, ValueError):
    """A SLURM profile that cannot be found or holds a bad value."""


# ---- the inversion ---------------------------------------------------------------------------------------
class LensError(WTildeError, ValueError):
    """Bad lens parameters (the message names the parameter and value)."""


class MeshError(WTildeError, ValueError):
    """Bad mesh parameters (the message names the parameter and value)."""


class MappingError(WTildeError, ValueError):
    """A mapping matrix or its triplets are malformed (message names the field and the value)."""


class RegularizationError(WTildeError, ValueError):
    """Bad regularization input (the message names the parameter and value)."""


class InversionError(WTildeError, ValueError):
    """The inversion failed (e.g. F + H not positive definite); the message names the matrix."""


class FitterError(WTildeError, ValueError):
    """The fitter cannot be built as asked (message names the store/option and value)."""


class JaxLikelihoodError(WTildeError, ValueError):
    """The JAX likelihood cannot be built as asked (the message names the option and the value)."""


# ---- benchmarks ---------------------------------------------------------------------------------------------
class BenchFitError(WTildeError, ValueError):
    """A bad option of the fit benchmark (the message names it and the value)."""
