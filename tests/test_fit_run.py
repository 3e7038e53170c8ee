"""`wtilde fit` / run_fit: a Nautilus search on the Dask workers recovers a simulated lens (every free parameter's
truth inside its 3-sigma interval), its evidence prefers the true model (shear free) over one without shear, a
SIGKILLed run resumed by the same command ends with the uninterrupted run's log evidence bit for bit (Nautilus
keeps its PCG64 state in its checkpoint, and a point's log likelihood does not depend on how its batch was
split), bad stores / a different model are refused with no fit/ group written, the last stdout line is the JSON
summary, and NUTS on two parameters lands within 3 sigma of the truth.

Data: an SIE + external shear lens (PyAutoLens parameters) of an elliptical Gaussian source, imaged on a 30x30
lattice at 0.1" (sub-sampled 3x3), observed at K = 1e4 random (u, v) points by the package's NUFFT
(simulate.visibilities_from_image) plus Gaussian noise; a lattice store on a real two-worker LocalCluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from wtilde_dask.dataset import Interferometer
from wtilde_dask.grid import ImageGrid
from wtilde_dask.inversion.lens import LensModel, params_from_autolens

TRUTH = {"centre_0": 0.0, "centre_1": 0.0, "ell_comps_0": 0.05, "ell_comps_1": 0.1, "einstein_radius": 0.9,
         "gamma_1": 0.04, "gamma_2": -0.03}
LENS_ORDER = ("centre_0", "centre_1", "ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2")
SHAPE, SCALE, RADIUS = (30, 30), 0.1, 1.5
SOURCE = {"centre": (0.05, 0.05), "sigma": 0.2, "axis_ratio": 0.8}
MESH = [12, 12]
NAUTILUS = {"name": "nautilus", "n_live": 50, "n_batch": 50, "n_eff": 200, "n_networks": 1, "seed": 5}
PRIORS = {"ell_comps_0": {"prior": "uniform", "lower": -0.3, "upper": 0.3},
          "ell_comps_1": {"prior": "uniform", "lower": -0.3, "upper": 0.3},
          "einstein_radius": {"prior": "uniform", "lower": 0.6, "upper": 1.2},
          "gamma_1": {"prior": "uniform", "lower": -0.15, "upper": 0.15},
          "gamma_2": {"prior": "uniform", "lower": -0.15, "upper": 0.15}}
WTILDE = [os.path.join(os.path.dirname(sys.executable), "wtilde")]  # the installed command
QUIET = dict(progress=False, log=lambda *a, **k: None)


def model_dict(free, sampler=None, **fixed) -> dict:
    """A model file's content: ``free`` parameters with PRIORS, the others at the truth (or ``fixed``)."""
    lens = {n: (PRIORS[n] if n in free else fixed.get(n, TRUTH[n])) for n in LENS_ORDER}
    return {"lens": lens, "source": {"mesh": "rectangular", "shape": MESH, "regularization": "constant",
                                     "coefficient": 1.0},
            "sampler": dict(sampler or NAUTILUS)}


SHEAR_MODEL = model_dict(("ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2"))
NO_SHEAR_MODEL = model_dict(("ell_comps_0", "ell_comps_1", "einstein_radius"), gamma_1=0.0, gamma_2=0.0)


def write_model(path, model: dict):
    path.write_text(yaml.safe_dump(model))
    return path


def lensed_image(truth: dict, sub: int = 3) -> np.ndarray:
    """(ny, nx) image of the Gaussian source through the lens, each pixel the mean of sub x sub rays."""
    p = params_from_autolens(*(truth[k] for k in LENS_ORDER))
    lens = LensModel(p[0], p[1], p[2], (p[3], p[4]), (p[5], p[6]))
    ny, nx = SHAPE
    y = ((ny - 1) / 2 - np.arange(ny))[:, None] * SCALE
    x = (np.arange(nx) - (nx - 1) / 2)[None, :] * SCALE
    img = np.zeros(SHAPE)
    for dy in (np.arange(sub) + 0.5) / sub - 0.5:
        for dx in (np.arange(sub) + 0.5) / sub - 0.5:
            g = np.stack(np.broadcast_arrays(y - dy * SCALE, x + dx * SCALE), -1).reshape(-1, 2)
            b = lens.ray_trace(g)
            cy, cx = SOURCE["centre"]
            r2 = ((b[:, 0] - cy) ** 2 + ((b[:, 1] - cx) / SOURCE["axis_ratio"]) ** 2) / SOURCE["sigma"] ** 2
            img += np.exp(-0.5 * r2).reshape(SHAPE)
    return img / sub**2


def simulated_dataset(K: int = 10_000, seed: int = 3) -> Interferometer:
    from wtilde_dask.simulate import visibilities_from_image

    rng = np.random.default_rng(seed)
    r, t = 6e5 * np.sqrt(rng.uniform(0, 1, K)), rng.uniform(0, 2 * np.pi, K)
    uv = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    vis = visibilities_from_image(lensed_image(TRUTH), SCALE, uv)
    sigma = 0.15 * np.abs(vis).max()
    noise = sigma * (rng.normal(size=K) + 1j * rng.normal(size=K))
    return Interferometer.from_arrays(vis + noise, sigma * (1 + 1j) * np.ones(K), uv, name="lensed SIE + shear")


@pytest.fixture(scope="module")
def store(tmp_path_factory, client):
    from wtilde_dask.compute import compute

    out = tmp_path_factory.mktemp("fit") / "lens.zarr"
    grid = ImageGrid.circular(SHAPE, (SCALE, SCALE), RADIUS)
    return compute(simulated_dataset(), grid, out, client=client, method="lattice", block_size=1024, **QUIET)


@pytest.fixture(scope="module")
def shear_fit(store, client):
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.fit.run import run_fit

    return run_fit(store.path, FitModel.from_dict(SHEAR_MODEL), name="shear", client=client, slice_batches=3)


@pytest.fixture(scope="module")
def no_shear_fit(store, client):
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.fit.run import run_fit

    return run_fit(store.path, FitModel.from_dict(NO_SHEAR_MODEL), name="no_shear", client=client, slice_batches=3)


def local_likelihood(store, coefficient=1.0):
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

    return JaxLikelihood.from_store(store, mesh="rectangular", mesh_shape=tuple(MESH), regularization="constant",
                                    coefficient=coefficient)


# ---------------------------------------------------------------------------------------------------------------
def test_fit_recovers_every_free_parameter_within_3_sigma(store, shear_fit):
    from wtilde_dask.store.fit import FitRecord

    s = shear_fit.summary
    assert s["free_names"] == ["ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2"]
    for name in s["free_names"]:
        assert s["lower_3sigma"][name] < TRUTH[name] < s["upper_3sigma"][name], (name, s["lower_3sigma"][name],
                                                                                 TRUTH[name], s["upper_3sigma"][name])
        assert s["lower_3sigma"][name] < s["lower_1sigma"][name] < s["median"][name] < s["upper_1sigma"][name] \
            < s["upper_3sigma"][name]
    # the store holds the same result and posterior; weights sum to 1
    rec = FitRecord(store, "shear")
    assert rec.state() == "complete" and rec.result()["log_evidence"] == s["log_evidence"]
    samples, weights, log_l = rec.posterior()
    np.testing.assert_array_equal(samples, shear_fit.samples)
    assert samples.shape == (len(weights), 5) and weights.sum() == pytest.approx(1.0)
    # the quantiles by definition: the posterior weight below each
    for name, j in zip(s["free_names"], range(5)):
        w_max = weights.max()
        below = weights[samples[:, j] < s["median"][name]].sum()
        assert abs(below - 0.5) <= w_max + 1e-9
        assert weights[samples[:, j] < s["lower_3sigma"][name]].sum() <= 0.00135 + w_max + 1e-9
    # the max-likelihood value, evaluated again in this process by a fresh likelihood (not through Dask)
    from wtilde_dask.fit.model import FitModel

    model = FitModel.from_dict(SHEAR_MODEL)
    best = np.array([[s["max_likelihood"][n] for n in s["free_names"]]])
    params, coefficient = model.likelihood_inputs(best)
    assert float(coefficient[0]) == 1.0
    assert float(local_likelihood(store).log_evidence(params[0])) == pytest.approx(s["max_log_likelihood"], rel=1e-9)
    assert s["max_log_likelihood"] == pytest.approx(log_l.max(), rel=1e-12)
    assert s["n_evaluations"] > 0 and s["wall_seconds"] > 0 and s["log_evidence"] < s["max_log_likelihood"]


def test_evidence_prefers_the_true_model_with_shear(shear_fit, no_shear_fit):
    a, b = shear_fit.summary, no_shear_fit.summary
    error = float(np.hypot(a["log_evidence_error"], b["log_evidence_error"]))
    assert a["log_evidence"] - b["log_evidence"] > error, (a["log_evidence"], b["log_evidence"], error)


def test_batches_do_not_depend_on_the_split_and_bad_points_are_rejected(store, client):
    from wtilde_dask.fit.evaluate import REJECTED_LOG_LIKELIHOOD, DaskLikelihood

    rng = np.random.default_rng(11)
    truth = params_from_autolens(*(TRUTH[k] for k in LENS_ORDER))
    params = truth + rng.normal(0, 0.01, (9, 7)) * np.array([1, 0.5, 20, 1, 1, 1, 1])
    coefficients = rng.choice([0.5, 2.0], 9)
    params[3, 0] = np.nan  # not evaluated: rejected
    coefficients[5] = 1e200  # evaluated: H = c^2 L overflows, the solve gives NaN -> rejected
    f = DaskLikelihood(client, store.path, {"mesh": "rectangular", "mesh_shape": tuple(MESH),
                                            "regularization": "constant"}, chunk_size=4)
    out = f(params, coefficients)
    assert out[3] == REJECTED_LOG_LIKELIHOOD and out[5] == REJECTED_LOG_LIKELIHOOD
    good = np.isfinite(out)
    assert good.sum() == 7
    # the same points in another order (other chunk neighbours, other padding rows): the same values, bit for bit
    order = rng.permutation(9)
    np.testing.assert_array_equal(f(params[order], coefficients[order]), out[order])
    # each value is the single-lens log evidence with that point's own coefficient (evaluated here, unbatched)
    for c in (0.5, 2.0):
        lk = local_likelihood(store, coefficient=float(c))
        for i in np.flatnonzero(good & (coefficients == c)):
            assert out[i] == pytest.approx(float(lk.log_evidence(params[i])), rel=1e-10)
    assert f.n_evaluations == 18


def test_sampler_pool_trains_networks_on_the_workers_and_equals_local_training(client):
    """Nautilus' network training through DaskSamplerPool runs on the workers and gives the networks a local
    map gives (each network's seed is its index); any other sampler computation runs in this process."""
    from functools import partial

    from nautilus.neural import train_network

    from wtilde_dask.fit.evaluate import DaskSamplerPool

    rng = np.random.default_rng(14)
    x = rng.uniform(size=(200, 2))
    y = np.argsort(np.argsort(-np.sum((x - 0.5) ** 2, axis=1))) / 200.0
    train = partial(train_network, x, y, {})
    from distributed import get_task_stream

    pool = DaskSamplerPool(client, 2)
    with get_task_stream(client) as stream:
        remote = pool.map(train, range(2))
    assert len(stream.data) == 2  # two tasks ran on the workers
    local = list(map(train, range(2)))
    probe = rng.uniform(size=(50, 2))
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a.predict(probe), b.predict(probe))
    worker_pids = set(client.run(os.getpid).values())
    assert os.getpid() not in worker_pids
    with get_task_stream(client) as stream:
        assert pool.map(lambda _: os.getpid(), range(3)) == [os.getpid()] * 3  # not network training: here
    assert stream.data == []
    with pytest.raises(ValueError, match="size: must be >= 1, got 0"):
        DaskSamplerPool(client, 0)


def test_worker_memory_does_not_grow_with_the_number_of_evaluations(store, client):
    """Each worker keeps one likelihood and one compiled chunk shape: after a warm-up, 1,600 more evaluations
    (80 batches of 20 new points) leave every worker's resident memory within 40 MB of where it was (keeping each
    point's (S, S) curvature matrix, 166 kB at S = 144, would add ~130 MB per worker; a compile per batch more)."""
    import gc

    import psutil

    from wtilde_dask.fit.evaluate import DaskLikelihood

    rng = np.random.default_rng(13)
    truth = params_from_autolens(*(TRUTH[k] for k in LENS_ORDER))
    f = DaskLikelihood(client, store.path, {"mesh": "rectangular", "mesh_shape": tuple(MESH),
                                            "regularization": "constant"}, chunk_size=10)

    def batch():
        return f(truth + rng.normal(0, 0.01, (20, 7)) * np.array([1, 0.5, 20, 1, 1, 1, 1]), np.ones(20))

    def rss():
        gc.collect()
        return psutil.Process().memory_info().rss

    for _ in range(10):
        batch()
    before = client.run(rss)
    for _ in range(80):
        assert np.isfinite(batch()).all()
    after = client.run(rss)
    growth = {w: (after[w] - before[w]) / 2**20 for w in before}
    assert max(growth.values()) < 40.0, growth


def test_a_worker_killed_mid_batch_is_recomputed_to_the_same_values(store, client):
    from wtilde_dask.fit.evaluate import DaskLikelihood

    rng = np.random.default_rng(12)
    truth = params_from_autolens(*(TRUTH[k] for k in LENS_ORDER))
    params = truth + rng.normal(0, 0.01, (200, 7)) * np.array([1, 0.5, 20, 1, 1, 1, 1])
    f = DaskLikelihood(client, store.path, {"mesh": "rectangular", "mesh_shape": tuple(MESH),
                                            "regularization": "constant"}, chunk_size=4)
    reference = f(params, np.ones(200))
    pids = client.run(os.getpid)
    victim_address, victim = sorted(pids.items())[0]
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("out", f(params, np.ones(200))))
    worker.start()
    t0 = time.time()
    while not client.processing().get(victim_address) and time.time() - t0 < 60:
        time.sleep(0.005)
    assert client.processing().get(victim_address), "the batch never reached the worker"
    os.kill(victim, signal.SIGKILL)  # the worker dies holding tasks of the batch
    worker.join(timeout=300)
    assert victim not in client.run(os.getpid).values()
    np.testing.assert_array_equal(result["out"], reference)


def _wait_for_slices(store, name, n, proc, timeout=300.0) -> dict:
    from wtilde_dask.store.fit import FitRecord

    rec, t0 = FitRecord(store, name), time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, f"wtilde fit ended early: {proc.communicate()}"
        p = rec.progress() if rec.exists() else {}
        if (p.get("n_slices") or 0) >= n and rec.has_checkpoint("nautilus.h5"):
            return p
        time.sleep(0.2)
    raise AssertionError(f"no {n} checkpoints in {timeout} s")


def test_sigkill_then_the_same_command_resumes_to_the_same_evidence(store, no_shear_fit, tmp_path):
    """kill -9 of the orchestrator after a few checkpoints, then the same command: the fit completes with the
    uninterrupted run's log evidence exactly (same seed, same batches: Nautilus' RNG state is checkpointed)."""
    model = write_model(tmp_path / "model.yaml", NO_SHEAR_MODEL)
    cmd = WTILDE + ["fit", str(store.path), "--model", str(model), "--name",
           "resumed", "--workers", "2", "--threads-per-worker", "1", "--checkpoint-batches", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = _wait_for_slices(store, "resumed", 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert progress["state"] == "running"
    status = subprocess.run(WTILDE + ["status", str(store.path)], capture_output=True,
                            text=True, check=True).stdout
    assert "fit resumed: interrupted" in status, status
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from its checkpoint" in done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])  # the last stdout line is the JSON summary
    assert set(last) == {"log_evidence", "log_evidence_error", "n_evaluations", "wall_seconds", "max_log_likelihood",
                         "median", "lower_3sigma", "upper_3sigma"}
    for key in ("median", "lower_3sigma", "upper_3sigma"):
        assert set(last[key]) == {"ell_comps_0", "ell_comps_1", "einstein_radius"}
    ref = no_shear_fit.summary
    assert last["log_evidence"] == ref["log_evidence"]
    assert last["n_evaluations"] == ref["n_evaluations"]
    assert last["median"] == ref["median"]
    status = subprocess.run(WTILDE + ["status", str(store.path)], capture_output=True,
                            text=True, check=True).stdout
    assert "fit resumed: complete" in status and f"{ref['n_evaluations']} evaluations" in status


def _cli(argv, capsys):
    from wtilde_dask.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_refusals_name_the_problem_and_write_no_fit_group(store, shear_fit, tmp_path, capsys, client):
    from wtilde_dask.compute import compute
    from wtilde_dask.store import WTildeStore
    from wtilde_dask.store.fit import FitRecord

    # a different model under an existing name: refused naming the difference; the stored fit is untouched
    before = (store.path / "fit" / "shear" / "zarr.json").read_bytes()
    changed = model_dict(("ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2"))
    changed["lens"]["einstein_radius"] = {"prior": "uniform", "lower": 0.6, "upper": 1.3}
    rc, out, err = _cli(["fit", str(store.path), "--model", str(write_model(tmp_path / "m.yaml", changed)),
                         "--name", "shear"], capsys)
    assert rc == 2 and "lens.einstein_radius.upper: 1.2 -> 1.3" in err, err
    assert (store.path / "fit" / "shear" / "zarr.json").read_bytes() == before
    assert FitRecord(store, "shear").state() == "complete"
    # with --overwrite the same change passes the checks (the run would then start over)
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.fit.run import precheck

    precheck(store.path, FitModel.from_dict(changed), "shear", overwrite=True)

    good = write_model(tmp_path / "good.yaml", NO_SHEAR_MODEL)
    ds = simulated_dataset(K=500)
    # a store made by the direct method: not a lattice store
    direct = compute(ds, ImageGrid.circular((8, 8), (0.1, 0.1), 0.4), tmp_path / "direct.zarr", client=client,
                     method="direct", block_size=64, **QUIET)
    # an incomplete store: created, never computed
    incomplete = WTildeStore.create(tmp_path / "incomplete.zarr", ds, ImageGrid.circular(SHAPE, (SCALE, SCALE), RADIUS),
                                    method="lattice", block_size=1024)
    cases = [(direct.path, "method 'direct'"), (incomplete.path, "incomplete, missing kernel, dirty_image, "
                                                                  "visibility_sums"),
             (tmp_path / "missing.zarr", "no W-tilde store there")]
    for path, words in cases:
        rc, out, err = _cli(["fit", str(path), "--model", str(good)], capsys)
        assert rc == 2 and str(path) in err and words in err, err
        assert not (path / "fit").exists()
    assert not (tmp_path / "missing.zarr").exists()
    # a bad model file: the model's error (key and value), nothing written in a good store
    bad = dict(NO_SHEAR_MODEL, sampler={"name": "nautilus", "n_live": -3})
    rc, out, err = _cli(["fit", str(store.path), "--model", str(write_model(tmp_path / "bad.yaml", bad)),
                         "--name", "bad"], capsys)
    assert rc == 2 and "sampler.n_live" in err and "-3" in err, err
    assert not (store.path / "fit" / "bad").exists()


def test_nuts_posterior_median_within_3_sigma_of_the_truth(store, tmp_path, capsys):
    nuts = {"name": "nuts", "num_warmup": 50, "num_samples": 80, "n_chains": 1, "seed": 2, "max_num_doublings": 3}
    model = model_dict(("einstein_radius", "gamma_1"), sampler=nuts)
    model["source"]["shape"] = [10, 10]  # a cheaper gradient
    model = write_model(tmp_path / "nuts.yaml", model)
    rc, out, err = _cli(["fit", str(store.path), "--model", str(model), "--name", "nuts"], capsys)
    assert rc == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["log_evidence"] is None and last["log_evidence_error"] is None  # NUTS: a posterior, no evidence
    from wtilde_dask.store.fit import FitRecord

    samples, weights, _ = FitRecord(store, "nuts").posterior()
    assert samples.shape == (80, 2)
    for j, name in enumerate(("einstein_radius", "gamma_1")):
        sigma = float(np.std(samples[:, j]))
        assert sigma > 0
        assert abs(last["median"][name] - TRUTH[name]) < 3 * sigma, (name, last["median"][name], sigma)
    assert "log evidence:       none" in out


def test_nuts_sigkill_then_the_same_command_resumes_to_the_same_draws(store, tmp_path):
    """NUTS checkpoints its adapted step size, mass matrix, chain positions, PRNG key and draws every
    ``checkpoint_draws`` draws: kill -9 after the first draws are committed, rerun the same command, and the posterior draws equal an
    uninterrupted run's exactly."""
    from wtilde_dask.store.fit import FitRecord

    nuts = {"name": "nuts", "num_warmup": 20, "num_samples": 60, "n_chains": 1, "seed": 4, "max_num_doublings": 3,
            "checkpoint_draws": 10}
    model = model_dict(("einstein_radius",), sampler=nuts)
    model["source"]["shape"] = [8, 8]
    path = write_model(tmp_path / "nuts.yaml", model)

    def command(name):
        return WTILDE + ["fit", str(store.path), "--model", str(path), "--name", name]

    ref = subprocess.run(command("nuts_ref"), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    proc = subprocess.Popen(command("nuts_kill"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rec, t0 = FitRecord(store, "nuts_kill"), time.time()
    try:
        while time.time() - t0 < 300:
            assert proc.poll() is None, f"wtilde fit ended before it was killed: {proc.communicate()}"
            if rec.exists() and (rec.progress().get("n_slices") or 0) >= 10 and rec.has_checkpoint("nuts.npz"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no NUTS checkpoint with draws in 300 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert rec.state() in ("running", "interrupted") and (rec.progress().get("n_slices") or 0) < 60
    done = subprocess.run(command("nuts_kill"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from its checkpoint" in done.stderr and "nuts: resumed after warm-up" in done.stderr
    a, _, _ = FitRecord(store, "nuts_ref").posterior()
    b, _, _ = FitRecord(store, "nuts_kill").posterior()
    assert a.shape == (60, 1)
    np.testing.assert_array_equal(a, b)
