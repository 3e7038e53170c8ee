"""The progress of any store (a live run or a dead one), read from its ledger, lock and attributes only."""

from __future__ import annotations

import numpy as np

from wtilde_dask.store import WTildeStore


def store_status(path) -> dict:
    """Progress of the store at ``path`` from its ledger only (works while a run is live or dead).

    Keys: store, method, n_pixels, block_size, n_blocks_side, n_blocks, done, remaining, fraction,
    mean_block_s (task time, compute + write), worker_threads (of the last run), eta_s (remaining x mean /
    threads; None when nothing is done yet), running (a live lock), lock (record or None), lock_state, last_run,
    has_dirty_image, visibility_pass (:func:`wtilde_dask.ingest.pass_progress`: None before any pass).
    """
    from wtilde_dask.ingest import pass_progress
    from wtilde_dask.store import lock_is_stale, read_lock

    store = WTildeStore.open(path)
    plan = store.plan
    ledger = np.triu(store.ledger())
    seconds = store.ledger_seconds()
    done_mask = ledger != 0
    done = int(done_mask.sum())
    secs = seconds[done_mask]
    secs = secs[np.isfinite(secs)]
    mean = float(secs.mean()) if secs.size else None
    last_run = store.attrs.get("last_run", {}) or {}
    threads = int(last_run.get("worker_threads") or 1)
    remaining = plan.n_blocks - done
    record = read_lock(store.path)
    stale, why = lock_is_stale(record)
    return {
        "store": str(store.path), "method": store.method, "n_pixels": plan.n_pixels, "block_size": plan.block_size,
        "n_blocks_side": plan.n_blocks_side, "n_blocks": plan.n_blocks, "done": done, "remaining": remaining,
        "fraction": done / plan.n_blocks, "mean_block_s": mean, "worker_threads": threads,
        "eta_s": (remaining * mean / threads) if mean is not None else (0.0 if remaining == 0 else None),
        "running": record is not None and not stale, "lock": record,
        "lock_state": "none" if record is None else ("live" if not stale else f"stale ({why})"),
        "last_run": last_run, "has_dirty_image": store.has_array("dirty_image"),
        "visibility_pass": pass_progress(store),
    }
