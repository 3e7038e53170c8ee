"""The Dask dashboard and our block-map page, opened in a real headless Chromium (Debian's chromium +
chromium-driver through selenium; nothing is downloaded).

* a bare LocalCluster with hand-set "wtilde" metadata, a store ledger and block tasks in known states:
  the page's colours and counts are exactly those states;
* a real run (compute in a background thread): the Dask status page holds our task names, the block
  map's done count lies between the ledger counts read before and after, and equals the ledger at the end.

Screenshots are saved to the ``artifacts_dir`` folder.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
import threading
import time
import urllib.request
import warnings

import numpy as np
import pytest
from waiting import wait_until

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser




@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by selenium with the system chromedriver (never selenium-manager)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: apt-get install chromium chromium-driver)")
    selenium = pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    del selenium
    profile = tempfile.mkdtemp(prefix="wtilde-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _page_counts(driver) -> dict[str, int]:
    """The counts the page shows, read in one script (one consistent state of the page)."""
    counts = driver.execute_script(
        "const o = {}; for (const k of ['done', 'running', 'pending', 'failed', 'total'])"
        " o[k] = document.getElementById('count-' + k).textContent; return o;"
    )
    return {k: int(v) for k, v in counts.items()}


def _svg_cells(driver) -> dict[str, int]:
    return driver.execute_script(
        "const out = {done: 0, running: 0, pending: 0, failed: 0};"
        "for (const r of document.querySelectorAll('#map rect.block')) out[r.classList[1]] += 1;"
        "return out;"
    )


def _fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _hand_made_store(path, sma_dataset, done_blocks):
    """A store whose ledger has ``done_blocks`` (fake checksums: only the ledger is read here)."""
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.store import WTildeStore

    grid = ImageGrid.circular((30, 30), (0.05, 0.05), 0.7)  # M = 609 pixels -> 10 x 10 blocks of 64
    store = WTildeStore.create(path, sma_dataset, grid, method="direct", block_size=64)
    for k, (bi, bj) in enumerate(done_blocks):
        store.mark_done(bi, bj, 1000 + k, 0.5)
    return store


def _sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def _fail(_):
    raise RuntimeError("block task failed on purpose (test)")


def test_block_map_page_shows_ledger_and_task_states(browser, tmp_path, sma_dataset, artifacts_dir):
    from distributed import Client, LocalCluster

    from wtilde_dask import dashboard

    done_blocks = [(0, j) for j in range(10)] + [(1, 1), (1, 2), (1, 3)]
    store = _hand_made_store(tmp_path / "hand.zarr", sma_dataset, done_blocks)
    nb = store.plan.n_blocks_side
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        url = dashboard.install(client)
        assert url.endswith("/wtilde/blocks")
        assert dashboard.install(client) == url  # idempotent
        # before any run: the page says so
        browser.get(url)
        wait_until(lambda: "No W-tilde run" in browser.find_element("id", "title").text, what="the 'no run' message")
        client.set_metadata(
            "wtilde",
            {"store": str(store.path), "n_blocks_side": nb, "n_blocks": store.plan.n_blocks, "done": len(done_blocks),
             "skipped": 0, "failed": 1, "rate_blocks_per_s": 0.25, "eta_s": 168.0, "method": "direct"},
        )
        failed = client.submit(_fail, 0, key="w_tilde-block-(4,7)")
        wait_until(lambda: failed.status == "error", what="the failing task")
        running = [client.submit(_sleep_then, 60, i, key=f"w_tilde-block-(2,{j})") for i, j in enumerate((2, 3))]
        wait_until(lambda: all(s == "processing" for s in client.run_on_scheduler(
            lambda dask_scheduler: [getattr(dask_scheduler.tasks.get(f.key), "state", None) for f in running])), what="running tasks")
        expected = {"done": len(done_blocks), "running": 2, "failed": 1, "total": nb * (nb + 1) // 2}
        expected["pending"] = expected["total"] - 13 - 2 - 1
        wait_until(lambda: _page_counts(browser) == expected, what=f"page counts {expected}")
        assert _svg_cells(browser) == {k: expected[k] for k in ("done", "running", "pending", "failed")}
        # each cell sits where its block is
        classes = browser.execute_script(
            "const o = {}; for (const r of document.querySelectorAll('#map rect.block')) o[r.dataset.bi + ',' + r.dataset.bj] = r.classList[1]; return o;"
        )
        assert classes["0,9"] == "done" and classes["2,3"] == "running" and classes["4,7"] == "failed" and classes["9,9"] == "pending"
        title = browser.find_element("id", "title").text
        assert "13/55 blocks done" in title and "ETA 2 min 48 s" in title
        state = _fetch_json(url + ".json")
        assert state["ledger_read"] is True and state["counts"] == expected
        browser.save_screenshot(str(artifacts_dir / "dashboard_block_map_hand_set.png"))
        for f in running:
            f.cancel()


# ------------------------------------------------------------------------------------------------
# a real run
# ------------------------------------------------------------------------------------------------

_BOKEH_STRINGS = """
const needle = arguments[0];
const found = new Set();
const docs = (window.Bokeh && Bokeh.documents) ? Bokeh.documents : [];
for (const doc of docs) {
  for (const model of doc.all_models) {
    let data = model.data;
    if (!data) continue;
    const columns = data instanceof Map ? Array.from(data.values()) : Object.values(data);
    for (const column of columns) {
      if (!column || typeof column === "string" || column.length === undefined) continue;
      for (const value of Array.from(column)) {
        if (typeof value === "string" && value.includes(needle)) found.add(value);
      }
    }
  }
}
return Array.from(found).slice(0, 50);
"""


def _random_dataset(rng, n_visibilities):
    from wtilde_dask.dataset import Interferometer

    uv = rng.normal(0.0, 2e5, (n_visibilities, 2))
    vis = rng.normal(size=n_visibilities) + 1j * rng.normal(size=n_visibilities)
    noise = np.full(n_visibilities, 0.5 + 0.7j)
    return Interferometer.from_arrays(vis, noise, uv, name="random test coverage")


def _ledger_done(path) -> int:
    from wtilde_dask.store import WTildeStore

    return int(np.count_nonzero(np.triu(WTildeStore.open(path).ledger())))


def test_real_run_dashboard_and_block_map(browser, tmp_path, rng, artifacts_dir):
    """A real compute (351 blocks of 128 x 128 pixels, K = 12,000: about 20-40 s on 2 quiet cores) watched
    in the browser. A very fast machine may finish before the first mid-run check; the end state is
    always checked."""
    from wtilde_dask import dashboard
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import compute
    from wtilde_dask.grid import ImageGrid

    dataset = _random_dataset(rng, 12_000)
    grid = ImageGrid.circular((70, 70), (0.05, 0.05), 1.6)  # M = 3228 pixels
    out = tmp_path / "run.zarr"
    lines: list[str] = []
    with cluster_client("local", n_workers=2, threads_per_worker=1, log=lines.append) as client:
        status_url = client.dashboard_link
        block_lines = [line for line in lines if line.startswith("block map: ")]
        assert block_lines, f"cluster_client did not print the block-map link: {lines}"
        blocks_url = block_lines[0].removeprefix("block map: ").strip()
        errors: list[BaseException] = []

        def run():
            try:
                compute(dataset, grid, out, block_size=128, method="direct", client=client, progress=False, log=lines.append)
            except BaseException as err:  # noqa: BLE001 - reported by the test thread
                errors.append(err)

        thread = threading.Thread(target=run, name="wtilde-compute", daemon=True)
        thread.start()
        state = wait_until(lambda: (s := _fetch_json(blocks_url + ".json"))["active"] and s, timeout=60, what="published progress")
        nb = state["n_blocks_side"]
        total = nb * (nb + 1) // 2
        assert state["metadata"]["store"] == str(out.resolve()) and state["counts"]["total"] == total

        # 1. the Dask status page holds our task names (task stream / progress data in the page)
        browser.get(status_url)
        names = wait_until(lambda: browser.execute_script(_BOKEH_STRINGS, "w_tilde-block"), timeout=60, what="w_tilde-block in the status page")
        assert any(n.startswith("w_tilde-block") for n in names), names
        # our page is in the dashboard's "More..." menu
        assert browser.execute_script("return document.querySelector('a[href=\"wtilde/blocks\"]') !== null")
        time.sleep(1.0)  # let the task stream draw a few more rectangles
        browser.save_screenshot(str(artifacts_dir / "dashboard_status_during_run.png"))

        # 2. our block map, while running: done shown lies between the ledger read before and after
        browser.get(blocks_url)
        wait_until(lambda: browser.find_element("id", "count-total").text == str(total), what="the block map page")
        checks = 0
        mid_run_shot = False
        while thread.is_alive() and checks < 5:
            t_before = time.time()
            before = _ledger_done(out)
            # wait for a page state the server computed from a ledger read after `before` (its ledger cache
            # lives dashboard._LEDGER_TTL_S): the page shows the server's time in body[data-updated]
            fresh_after = t_before + dashboard._LEDGER_TTL_S + 0.1
            wait_until(lambda: float(browser.find_element("tag name", "body").get_attribute("data-updated") or 0) > fresh_after,
                  what="a page refresh computed after the ledger read")
            shown = _page_counts(browser)
            after = _ledger_done(out)
            assert before <= shown["done"] <= after, (before, shown, after)
            assert shown["done"] + shown["running"] + shown["pending"] + shown["failed"] == total
            if not mid_run_shot and 0 < shown["done"] < total:
                browser.save_screenshot(str(artifacts_dir / "dashboard_block_map_during_run.png"))
                mid_run_shot = True
            checks += 1
        if checks == 0:
            warnings.warn("the run finished before the first mid-run comparison; only the end state was checked", stacklevel=1)
        thread.join(timeout=300)
        assert not thread.is_alive(), "compute did not finish"
        assert not errors, errors

        # 3. finished: the page shows every block done, as the ledger has it
        assert _ledger_done(out) == total
        wait_until(lambda: _page_counts(browser)["done"] == total, what="all blocks done on the page")
        assert _page_counts(browser) == {"done": total, "running": 0, "pending": 0, "failed": 0, "total": total}
        assert _svg_cells(browser)["done"] == total
        assert "complete" in browser.find_element("id", "title").text
        browser.save_screenshot(str(artifacts_dir / "dashboard_block_map_finished.png"))
        browser.get(status_url)
        wait_until(lambda: browser.execute_script(_BOKEH_STRINGS, "w_tilde-block"), timeout=60, what="task names after the run")
        browser.save_screenshot(str(artifacts_dir / "dashboard_status_after_run.png"))
