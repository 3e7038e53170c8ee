"""The views of a lens-model fit: ``wtilde plot STORE`` writes the corner plot and the max-likelihood
reconstruction of each fit, the corner plot's histograms are the stored posterior's weighted histograms, the
reconstruction image is the likelihood's reconstruction at the stored max-likelihood point, and the dashboard
page shows a fit's progress read from a real store.

One small real fit (a simulated lens, a lattice store on a LocalCluster, ``run_fit`` with Nautilus capped at a
few hundred evaluations) is shared by the tests of this module.
"""

from __future__ import annotations

import json
import math
import urllib.request

import numpy as np
import pytest

from wtilde_dask.bench import fit as bench_fit


@pytest.fixture(scope="module")
def fitted_store(tmp_path_factory):
    from distributed import Client, LocalCluster

    from wtilde_dask.compute import compute
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.fit.run import run_fit
    from wtilde_dask.grid import ImageGrid

    tmp = tmp_path_factory.mktemp("fit-views")
    radius = 0.45
    grid = ImageGrid.circular((20, 20), (0.05, 0.05), radius)
    truth = bench_fit.truth_for(radius)
    dataset = bench_fit.simulate_lens(grid, truth, 800, seed=2)
    model = FitModel.from_dict(bench_fit.model_dict(truth, ["einstein_radius", "ell_comps_0"], mesh_shape=(8, 8),
                                                    n_live=40, n_batch=40, seed=3, n_like_max=400))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        store = compute(dataset, grid, tmp / "fit.zarr", method="lattice", client=client, progress=False,
                        log=lambda *a, **k: None)
        result = run_fit(store.path, model, name="small", client=client)
        # run_fit names its fit to the scheduler, so the dashboard's fit view follows it
        from wtilde_dask.dashboard import FIT_METADATA_KEY

        assert client.get_metadata(FIT_METADATA_KEY) == {"store": str(store.path), "name": "small"}
    return store, model, result


def test_plot_writes_fit_figures(fitted_store, tmp_path):
    """``wtilde plot STORE --out DIR`` adds fit_NAME_corner.png and fit_NAME_reconstruction.png (real PNGs)."""
    from wtilde_dask.cli import main

    store, _, _ = fitted_store
    out = tmp_path / "plots"
    assert main(["plot", str(store.path), "--out", str(out)]) == 0
    for name in ("fit_small_corner.png", "fit_small_reconstruction.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_corner_histograms_are_the_weighted_posterior(fitted_store):
    """The diagonal histograms read back from the axes equal numpy.histogram of the stored samples with the
    stored weights over each parameter's range (20 bins), and the truth lines sit at the max-likelihood point."""
    from wtilde_dask.fit.figures import CORNER_BINS, corner_histograms, plot_corner
    from wtilde_dask.store.fit import FitRecord

    store, model, _ = fitted_store
    record = FitRecord(store.path, "small")
    samples, weights, log_l = record.posterior()
    result = record.result()
    names = result["free_names"]
    assert names == list(model.free_names) and samples.shape == (len(weights), len(names))
    best = [result["max_likelihood"][n] for n in names]
    fig = plot_corner(samples, weights, names, truths=best)
    drawn = corner_histograms(fig)
    assert len(drawn) == len(names)
    for j, (edges, heights) in enumerate(drawn):
        expected, expected_edges = np.histogram(samples[:, j], bins=CORNER_BINS,
                                                range=(samples[:, j].min(), samples[:, j].max()), weights=weights)
        np.testing.assert_allclose(edges, expected_edges, rtol=0, atol=1e-12)
        np.testing.assert_allclose(heights, expected, rtol=1e-12, atol=1e-15)
        assert math.isclose(float(heights.sum()), float(weights.sum()), rel_tol=1e-9)
    # the max-likelihood point is the stored sample with the largest log likelihood
    np.testing.assert_allclose(best, samples[int(np.argmax(log_l))], rtol=0, atol=0)
    diagonal = fig.axes[0]
    assert any(np.allclose(line.get_xdata(), best[0]) for line in diagonal.get_lines())


def test_reconstruction_is_the_likelihoods_at_max_likelihood(fitted_store):
    """The reconstruction figure draws s at the max-likelihood point on its rectangular mesh (image = s on the
    ny x nx nodes, row 0 at the top), whose log evidence is the stored max log likelihood (evaluated by the
    search on the Dask worker)."""
    from wtilde_dask.fit.figures import max_likelihood_reconstruction, plot_max_likelihood_reconstruction
    from wtilde_dask.store.fit import FitRecord

    store, model, _ = fitted_store
    values, nodes, log_ev, _ = max_likelihood_reconstruction(store, "small")
    ny, nx = model.source["shape"]
    assert values.shape == (ny * nx,) and nodes.shape == (ny * nx, 2)
    assert math.isclose(log_ev, FitRecord(store.path, "small").result()["max_log_likelihood"], rel_tol=1e-9)
    # nodes: rows from the top (y decreasing), columns left to right, equal steps
    grid_nodes = nodes.reshape(ny, nx, 2)
    assert np.all(np.diff(grid_nodes[:, 0, 0]) < 0) and np.all(np.diff(grid_nodes[0, :, 1]) > 0)
    fig = plot_max_likelihood_reconstruction(store, "small")
    image = np.asarray(fig.axes[0].get_images()[0].get_array())
    # the figure puts y increasing upwards (origin lower): its first row is the mesh's bottom row
    np.testing.assert_allclose(image[::-1], values.reshape(ny, nx), rtol=1e-12, atol=0)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def test_dashboard_fit_view_reads_the_store(fitted_store):
    """The block-map page and its JSON show the fit's evaluation count, state and log Z as the store records
    them (FitRecord), and the best-so-far reconstruction is served as a PNG."""
    from distributed import Client, LocalCluster

    from wtilde_dask import dashboard
    from wtilde_dask.store.fit import FitRecord

    store, _, _ = fitted_store
    record = FitRecord(store.path, "small")
    # a running fit's progress (as the runner writes it between batches): a count the finished fit never had
    n = int(record.progress()["n_evaluations"]) + 17
    record.update_progress(n_evaluations=n, evaluations_per_second=12.5)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        dashboard.install(client)
        base = f"http://127.0.0.1:{cluster.scheduler.http_server.port}/"
        status, _, body = _get(base + dashboard.PAGE_PATH)
        assert status == 200 and "No lens-model fit" in body.decode()  # nothing published yet
        dashboard.publish_fit(client, store.path, "small")
        status, _, body = _get(base + dashboard.PAGE_PATH)
        page = body.decode()
        assert status == 200 and 'data-fit="small"' in page
        assert f'<td class="evaluations">{n}</td>' in page
        state = json.loads(_get(base + dashboard.JSON_PATH)[2])
        (row,) = state["fit"]["fits"]
        progress = record.progress()
        assert row["name"] == "small" and row["n_evaluations"] == n == progress["n_evaluations"]
        assert row["state"] == progress["state"] and row["log_evidence"] == pytest.approx(progress["log_evidence"])
        status, ctype, png = _get(base + dashboard.FIT_IMAGE_PATH + "?name=small")
        assert status == 200 and ctype == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_dashboard_fit_view_in_chromium(fitted_store, artifacts_dir):
    """In a headless Chromium (Debian chromium + chromedriver through selenium): the page's script draws the fit's
    row with the evaluation count the store records, and the best-so-far reconstruction image loads."""
    import shutil
    import tempfile

    from distributed import Client, LocalCluster
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from waiting import wait_until

    from wtilde_dask import dashboard
    from wtilde_dask.store.fit import FitRecord

    store, _, _ = fitted_store
    n = int(FitRecord(store.path, "small").progress()["n_evaluations"])
    profile = tempfile.mkdtemp(prefix="wtilde-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            dashboard.install(client)
            dashboard.publish_fit(client, store.path, "small")
            driver.get(f"http://127.0.0.1:{cluster.scheduler.http_server.port}/{dashboard.PAGE_PATH}")
            cell = 'document.querySelector(\'tr[data-fit="small"] td.evaluations\')'
            wait_until(lambda: driver.execute_script(f"return {cell} && {cell}.textContent") == str(n), timeout=60,
                       what="the fit row drawn by the page's script")
            wait_until(lambda: driver.execute_script(
                "const i = document.getElementById('fit-image'); return i.complete && i.naturalWidth > 0"),
                timeout=120, what="the best-so-far reconstruction image")
            driver.save_screenshot(str(artifacts_dir / "dashboard_fit_view.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
