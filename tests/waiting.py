"""Polling helper shared by the tests that watch a live run (browser, SLURM)."""

import time


def wait_until(predicate, timeout=30.0, what="condition", interval=0.2):
    """Return the first truthy ``predicate()``; fail the test after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value {last!r})")


def n_done(path) -> int:
    """Blocks the ledger of the store at ``path`` calls done; 0 while the store does not exist or is being
    created (no zarr.json, attributes or ledger yet) -- for tests that watch a live run."""
    import pathlib

    from wtilde_dask.store import WTildeStore

    if not (pathlib.Path(path) / "zarr.json").exists():
        return 0
    try:
        return WTildeStore.open(path).n_done()
    except Exception:  # noqa: BLE001 - a store half-way through its creation
        return 0
