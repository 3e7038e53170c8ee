"""Selection of channels shared by the readers of files with spectral windows (Measurement Set, UVFITS)."""

from __future__ import annotations

import numpy as np

from wtilde_dask.errors import DatasetError

__all__ = ["parse_channels"]


def parse_channels(channels, n_chan: int, where: str) -> np.ndarray:
    """Channel indices: None (all), ``"A~B"`` (inclusive), ``"A"``, ``(start, stop)`` / ``range`` (exclusive)."""
    if channels is None:
        return np.arange(n_chan)
    try:
        if isinstance(channels, str):
            text = channels.strip()
            if "~" in text:
                a, b = (int(t) for t in text.split("~"))
                idx = np.arange(a, b + 1)
            else:
                idx = np.array([int(text)])
        elif isinstance(channels, range):
            idx = np.array(channels, dtype=np.int64)
        else:
            a, b = channels
            idx = np.arange(int(a), int(b))
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: channels {channels!r} is not a range like '4~60' or (start, stop)") from None
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_chan:
        raise DatasetError(f"{where}: channels {channels!r} is outside the {n_chan} channels (0..{n_chan - 1})")
    return idx.astype(np.int64)
