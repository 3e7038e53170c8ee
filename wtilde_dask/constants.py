"""Physical constants, unit conversions and the package's default sizes, each defined once.

The defaults here are the values a user may override through ``dask.config`` (key ``wtilde``, see
:mod:`wtilde_dask.config` and the packaged ``wtilde.yaml``); code that runs a job reads the configured value,
function signatures keep these as their literal defaults.
"""

from __future__ import annotations

import math

__all__ = [
    "SPEED_OF_LIGHT",
    "ARCSEC_TO_RADIANS",
    "RADIANS_TO_ARCSEC",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MAX_GROUPS",
    "DEFAULT_READ_ORDER",
]

#: speed of light in vacuum, m / s (exact, SI): ``uv [wavelengths] = uvw [m] * frequency [Hz] / SPEED_OF_LIGHT``
SPEED_OF_LIGHT = 299_792_458.0

#: radians per arcsecond: ``pi / (180 * 3600) = pi / 648000``
ARCSEC_TO_RADIANS = math.pi / 648000.0

#: arcseconds per radian: ``648000 / pi`` (multiplying by it is not bit-identical to dividing by ARCSEC_TO_RADIANS)
RADIANS_TO_ARCSEC = 648000.0 / math.pi

#: visibilities per chunk a reader yields (one task reads one chunk at a time)
DEFAULT_CHUNK_SIZE = 1_000_000

#: block edge B in image pixels: W is stored and computed in B x B blocks
DEFAULT_BLOCK_SIZE = 1024

#: most groups (tasks) the visibility pass cuts the chunks into
DEFAULT_MAX_GROUPS = 256

#: how the visibility pass reads a Measurement Set / UVFITS file: "rows" (every cell once) or "recipe"
DEFAULT_READ_ORDER = "rows"
