"""The root of every error the package raises on bad input or an unusable state.

Each layer's errors (``DatasetError``, ``StoreError``, ``LensError``, ``FitModelError``, ...) derive from
:class:`WTildeError`, so ``except WTildeError`` catches all of them; they also derive from ``ValueError`` (bad
input) or ``RuntimeError`` (a run that cannot go on) as before. Messages name the field and the value.
"""

from __future__ import annotations


class WTildeError(Exception):
    """Root of the package's errors: the message names the file or field and the offending value."""
