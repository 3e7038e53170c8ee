"""The bounded submit loop shared by the block phase (:mod:`wtilde_dask.compute`) and the visibility pass
(:mod:`wtilde_dask.ingest`).

A queue of work items is submitted to a ``distributed.Client`` at most ``max_in_flight`` at a time (so the
scheduler never holds the whole run's graph, and a run of 10^5 blocks starts at once); the caller takes each
finished future as it completes, handles its result and asks for the next item. Futures the caller submits
outside the queue (the pass's tree combines) are tracked with :meth:`SubmitLoop.track` and come back the same way.
On leaving the ``with`` block, every future still running is cancelled (a failure or Ctrl-C stops the run).

::

    with SubmitLoop(client, items, submit_one, max_in_flight=8) as loop:
        loop.fill()
        for future, item in loop:          # in completion order; the future is released after the body
            handle(future.result())
            loop.submit_next()
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator

__all__ = ["SubmitLoop", "progress_bar"]


class SubmitLoop:
    """At most ``max_in_flight`` items of ``items`` running at once as futures of ``submit(item)``.

    ``submit``: a callable item -> ``distributed.Future`` (it calls ``client.submit``: the key, retries and
    arguments stay the caller's). ``running`` maps each unfinished future to its item (or the tag given to
    :meth:`track`). Iterating yields ``(future, item)`` in completion order and releases each future once the
    caller's loop body has run.
    """

    def __init__(self, client, items: Iterable, submit: Callable, *, max_in_flight: int):
        from distributed import as_completed

        if int(max_in_flight) < 1:
            raise ValueError(f"max_in_flight: must be >= 1, got {max_in_flight!r}")
        self.client = client
        self.max_in_flight = int(max_in_flight)
        self.running: dict = {}
        self._queue = iter(items)
        self._submit = submit
        self._completed = as_completed([], with_results=False)

    def track(self, future, tag) -> None:
        """Follow ``future`` (submitted by the caller, outside the queue and its bound) under ``tag``."""
        self.running[future] = tag
        self._completed.add(future)

    def submit_next(self) -> bool:
        """Submit the next item of the queue; False when the queue is empty."""
        for item in self._queue:
            self.track(self._submit(item), item)
            return True
        return False

    def fill(self) -> None:
        """Start the loop: submit the first ``max_in_flight`` items (fewer when the queue is shorter); after that
        the caller keeps the bound by submitting one item per finished one (:meth:`submit_next`)."""
        for _ in range(self.max_in_flight):
            if not self.submit_next():
                break

    def __iter__(self) -> Iterator:
        for future in self._completed:
            item = self.running.pop(future)
            try:
                yield future, item
            finally:
                future.release()

    def cancel(self) -> None:
        """Cancel every future still running."""
        for future in list(self.running):
            future.cancel()
        self.running.clear()

    def __enter__(self) -> SubmitLoop:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def progress_bar(enabled: bool, **options):
    """A ``tqdm`` bar on stderr (``options``: total, initial, unit, desc, ...) when ``enabled``, else None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **options)
