"""The defaults a user sets, as ``dask.config`` settings under the key ``wtilde``.

The packaged ``wtilde.yaml`` is merged into dask's defaults on import (the pattern dask-jobqueue uses for its
``jobqueue.yaml``), so a user's own ``~/.config/dask/*.yaml``, ``DASK_WTILDE__...`` environment variables and
``dask.config.set({"wtilde.chunk-size": ...})`` take precedence::

    import dask.config
    with dask.config.set({"wtilde.chunk-size": 250_000}):
        wtilde_dask.compute("DATA.ms", grid, "w.zarr")

Keys (defaults in :mod:`wtilde_dask.constants`): ``chunk-size``, ``block-size``, ``max-groups``, ``read-order``, ``likelihood-fft``, ``fft-threads``, ``likelihood-batch``.
"""

from __future__ import annotations

import pathlib

import dask.config
import yaml

__all__ = ["get", "DEFAULTS_FILE"]

DEFAULTS_FILE = pathlib.Path(__file__).with_name("wtilde.yaml")

with DEFAULTS_FILE.open() as _f:
    dask.config.update_defaults(yaml.safe_load(_f))


def get(key: str):
    """The configured value of ``wtilde.<key>`` (e.g. ``get("chunk-size")``)."""
    return dask.config.get(f"wtilde.{key}")
