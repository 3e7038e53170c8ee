"""The block-map routes on a real scheduler, without a browser (the browser tests are in
test_dashboard_browser.py): the JSON state, the two ways of switching the page on, and the fallback
to published counts when the scheduler cannot read the store."""

from __future__ import annotations

import json
import urllib.request

import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster

from wtilde_dask import dashboard


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def _cluster(**kwargs):
    return LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0", **kwargs)


def _base(cluster) -> str:
    return f"http://127.0.0.1:{cluster.scheduler.http_server.port}/"


def test_routes_through_dask_config():
    """``distributed.scheduler.http.routes`` + this module: the page exists from the scheduler's start."""
    modules = dashboard.with_routes()
    assert modules[-1] == "wtilde_dask.dashboard" and dashboard.with_routes(modules) == modules
    with dask.config.set({"distributed.scheduler.http.routes": modules}):
        with _cluster() as cluster:
            status, ctype, body = _get(_base(cluster) + dashboard.PAGE_PATH)
            assert status == 200 and ctype.startswith("text/html") and "W-tilde block map" in body
            status, ctype, body = _get(_base(cluster) + dashboard.JSON_PATH)
            state = json.loads(body)
            assert ctype.startswith("application/json") and state["active"] is False and state["n_blocks_side"] == 0
            with Client(cluster) as client:  # installing again at run time adds nothing twice
                assert dashboard.install(client).endswith("/" + dashboard.PAGE_PATH)


def test_install_at_run_time_and_state_from_ledger(tmp_path, sma_dataset):
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.store import WTildeStore

    grid = ImageGrid.circular((20, 20), (0.05, 0.05), 0.45)
    store = WTildeStore.create(tmp_path / "s.zarr", sma_dataset, grid, method="direct", block_size=64)
    nb = store.plan.n_blocks_side
    store.mark_done(0, 0, 5, 0.1)
    store.mark_done(0, nb - 1, 6, 0.1)
    with _cluster() as cluster, Client(cluster) as client:
        with pytest.raises(urllib.error.HTTPError):
            _get(_base(cluster) + dashboard.JSON_PATH)  # not there before install
        link = dashboard.install(client)
        assert link == dashboard.page_link(client) and link.endswith("/" + dashboard.PAGE_PATH)
        url = _base(cluster) + dashboard.PAGE_PATH  # (an in-process cluster's link names the host's address)
        client.set_metadata("wtilde", {"store": str(store.path), "n_blocks_side": nb, "done": 2, "failed": 0,
                                       "eta_s": float("nan"), "rate_blocks_per_s": 0.0, "method": "direct"})
        state = json.loads(_get(url + ".json")[2])  # NaN published -> null in JSON
        assert state["ledger_read"] is True and state["metadata"]["eta_s"] is None
        assert state["counts"] == {"done": 2, "running": 0, "pending": nb * (nb + 1) // 2 - 2, "failed": 0, "total": nb * (nb + 1) // 2}
        assert state["states"][0][0] == "d" and state["states"][0][-1] == "d" and state["states"][-1][0] == "."
        # the scheduler cannot read the store (remote filesystem): counts come from the metadata
        client.set_metadata("wtilde", {"store": str(tmp_path / "elsewhere.zarr"), "n_blocks_side": 4, "done": 7,
                                       "skipped": 1, "failed": 1, "eta_s": 30.0, "method": "lattice"})
        state = json.loads(_get(url + ".json")[2])
        assert state["ledger_read"] is False
        assert state["counts"] == {"done": 8, "running": 0, "pending": 1, "failed": 1, "total": 10}
        assert "8/10 blocks done" in state["title"] and "ETA 30 s" in state["title"]


def test_block_task_states(tmp_path):
    """Task keys w_tilde-block-(bi,bj) in the scheduler: erred -> failed, others ignored."""

    class FakeTask:
        def __init__(self, state):
            self.state = state

    class FakeScheduler:
        tasks = {
            "w_tilde-block-(0,1)": FakeTask("processing"),
            "w_tilde-block-(1,1)": FakeTask("memory"),
            "w_tilde-block-(0,2)": FakeTask("erred"),
            "w_tilde-block-(2,2)-0badc0de": FakeTask("queued"),
            "w_tilde-block-(2,2)-12345678": FakeTask("erred"),  # another store's run on this scheduler
            "other-task": FakeTask("processing"),
            ("tuple", 1): FakeTask("processing"),
        }

        def get_metadata(self, keys, default=None):
            return {"store": "", "n_blocks_side": 3, "done": 0, "key_token": "0badc0de"}

    state = dashboard.scheduler_block_state(FakeScheduler())
    assert state["states"] == ["prf", ".rp", "..p"]
    assert state["tasks"] == 4
    assert state["counts"] == {"done": 0, "running": 2, "pending": 3, "failed": 1, "total": 6}
    assert np.all([len(row) == 3 for row in state["states"]])
