"""The bounded submit loop (wtilde_dask.submit.SubmitLoop) on a real LocalCluster."""

from __future__ import annotations

import threading
import time

import pytest

from wtilde_dask.submit import SubmitLoop


def _square(x: int) -> int:
    return x * x


def _slow(x: int) -> int:
    time.sleep(0.2)
    return x


def test_every_item_comes_back_once_and_the_bound_holds(session_client):
    items = list(range(23))
    seen, most_running = {}, 0

    def submit(x):
        return session_client.submit(_square, x, key=f"submit-test-square-{x}", pure=False)

    with SubmitLoop(session_client, items, submit, max_in_flight=3) as loop:
        loop.fill()
        most_running = len(loop.running)
        for fut, item in loop:
            seen[item] = fut.result()
            most_running = max(most_running, len(loop.running) + 1)  # the one just finished was running too
            loop.submit_next()
    assert seen == {x: x * x for x in items}  # each item once, its own result
    assert most_running <= 3
    assert loop.running == {}


def test_tracked_futures_come_back_with_their_tag(session_client):
    def submit(x):
        return session_client.submit(_square, x, pure=False)

    tags = []
    with SubmitLoop(session_client, [1, 2], submit, max_in_flight=1) as loop:
        loop.track(session_client.submit(_square, 10, pure=False), ("extra", 10))
        loop.fill()
        for fut, tag in loop:
            tags.append((tag, fut.result()))
            loop.submit_next()
    assert sorted(tags, key=str) == sorted([(1, 1), (2, 4), (("extra", 10), 100)], key=str)


def test_leaving_on_an_error_cancels_what_is_still_running(session_client):
    submitted = []
    lock = threading.Lock()

    def submit(x):
        fut = session_client.submit(_slow, x, pure=False)
        with lock:
            submitted.append(fut)
        return fut

    with pytest.raises(RuntimeError, match="stop"):
        with SubmitLoop(session_client, range(6), submit, max_in_flight=4) as loop:
            loop.fill()
            for _fut, _item in loop:
                raise RuntimeError("stop")
    assert len(submitted) == 4  # the bound: nothing beyond the first four was submitted
    assert loop.running == {}
    assert sum(f.status == "cancelled" for f in submitted) >= 2  # at least the two waiting for a worker thread
    keys = [f.key for f in submitted]
    for _ in range(200):  # let the scheduler drop the cancelled keys while this test's log capture is open
        if not session_client.run_on_scheduler(lambda dask_scheduler: [k for k in keys if k in dask_scheduler.tasks]):
            break
        time.sleep(0.05)


def test_the_bound_must_be_positive(session_client):
    with pytest.raises(ValueError, match="max_in_flight"):
        SubmitLoop(session_client, [], lambda x: None, max_in_flight=0)
