"""Block states of a run: the codes, their names and colours, the scheduler's task keys, counts and a title line.

Pure NumPy, shared by the PNG block map (:mod:`wtilde_dask.plot`) and the scheduler's block-map page
(:mod:`wtilde_dask.dashboard`), so both draw the same states in the same colours.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

import numpy as np

__all__ = ["LOWER", "PENDING", "DONE", "RUNNING", "FAILED", "STATE_NAMES", "BLOCK_COLOURS", "BLOCK_KEY_RE",
           "block_states", "block_counts", "format_eta", "block_title"]


LOWER, PENDING, DONE, RUNNING, FAILED = -1, 0, 1, 2, 3
STATE_NAMES = {PENDING: "pending", DONE: "done", RUNNING: "running", FAILED: "failed"}
#: colour of each block state, the same on the PNG and on the dashboard page
BLOCK_COLOURS = {
    "done": "#2ca25f",  # green
    "running": "#fd8d3c",  # orange
    "pending": "#d5dbe3",  # light blue-grey (not a neutral grey: antialiased text never matches it)
    "failed": "#de2d26",  # red
    "lower": "#ffffff",  # below the diagonal: not stored (W is symmetric)
}
#: task keys of the block tasks, ``w_tilde-block-(bi,bj)-TOKEN`` (TOKEN: the run's 8 hex digits)
BLOCK_KEY_RE = re.compile(r"^w_tilde-block-\(\s*(\d+)\s*,\s*(\d+)\s*\)(?:-([0-9a-f]+))?$")


def block_states(
    ledger: np.ndarray | None = None,
    *,
    n_blocks_side: int | None = None,
    running: Iterable[tuple[int, int]] = (),
    failed: Iterable[tuple[int, int]] = (),
    done: Iterable[tuple[int, int]] = (),
) -> np.ndarray:
    """State of every block of the upper triangle.

    Parameters
    ----------
    ledger : (nb, nb) integer array or None
        The store's ledger: a block's checksum, 0 while the block is not done. Only ``bi <= bj`` is read.
    n_blocks_side : int, optional
        nb when no ledger is given.
    running, failed, done : iterables of (bi, bj)
        Blocks known from elsewhere (the scheduler's task states). ``failed`` and ``running`` never
        override a block the ledger has as done; ``done`` adds blocks.

    Returns
    -------
    (nb, nb) int8 array: ``DONE``, ``RUNNING``, ``PENDING``, ``FAILED`` on and above the diagonal,
    ``LOWER`` (-1) below it.
    """
    if ledger is not None:
        ledger = np.asarray(ledger)
        if ledger.ndim != 2 or ledger.shape[0] != ledger.shape[1]:
            raise ValueError(f"ledger has shape {ledger.shape}, expected a square (nb, nb) array")
        nb = ledger.shape[0]
    elif n_blocks_side is not None:
        nb = int(n_blocks_side)
    else:
        raise ValueError("block_states needs a ledger or n_blocks_side")
    states = np.full((nb, nb), PENDING, dtype=np.int8)
    states[np.tril_indices(nb, -1)] = LOWER
    for code, blocks in ((RUNNING, running), (FAILED, failed), (DONE, done)):
        for bi, bj in blocks:
            bi, bj = min(bi, bj), max(bi, bj)
            if bj < nb:
                states[bi, bj] = code
    if ledger is not None:
        upper = np.triu(np.ones((nb, nb), dtype=bool))
        states[upper & (ledger != 0)] = DONE
    return states


def block_counts(states: np.ndarray) -> dict[str, int]:
    """Counts of ``done``, ``running``, ``pending``, ``failed`` blocks and the ``total`` (upper triangle)."""
    states = np.asarray(states)
    counts = {name: int(np.count_nonzero(states == code)) for code, name in STATE_NAMES.items()}
    counts["total"] = int(np.count_nonzero(states != LOWER))
    return counts


def format_eta(seconds: float | None) -> str:
    """``'3 h 05 min'``, ``'4 min 10 s'``, ``'12 s'``; ``'?'`` for None / NaN / infinite."""
    if seconds is None or not math.isfinite(float(seconds)) or seconds < 0:
        return "?"
    seconds = int(round(float(seconds)))
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600:02d} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def block_title(counts: Mapping[str, int], eta_s: float | None = None, rate_blocks_per_s: float | None = None) -> str:
    """One line: ``'12/36 blocks done (33%) · 2 running · 0 failed · ETA 4 min 10 s'``."""
    total = max(int(counts.get("total", 0)), 1)
    done = int(counts.get("done", 0))
    parts = [f"{done}/{counts.get('total', 0)} blocks done ({100.0 * done / total:.0f}%)"]
    parts.append(f"{counts.get('running', 0)} running")
    parts.append(f"{counts.get('failed', 0)} failed")
    if rate_blocks_per_s:
        parts.append(f"{rate_blocks_per_s:.3g} blocks/s")
    if done >= counts.get("total", 0):
        parts.append("complete")
    elif eta_s is not None:
        parts.append(f"ETA {format_eta(eta_s)}")
    return " · ".join(parts)
