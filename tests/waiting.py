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
