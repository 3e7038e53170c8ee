"""``run_fit``: a resumable lens-model search from a lattice W-tilde store to a posterior and an evidence.

1. The store is checked before anything is written: a lattice store whose visibility pass finished (kernel,
   dirty image and visibility sums stored); otherwise :class:`FitRunError` names the store and what is missing.
2. The fit ``NAME`` lives in ``STORE/fit/NAME/`` (:class:`~wtilde_dask.store.fit.FitRecord`). An existing fit
   with the same model and sampler settings is resumed from its checkpoint (a complete one is returned as
   stored); a different model is refused naming every difference, unless ``overwrite``.
3. The search (:mod:`~wtilde_dask.fit.samplers`): Nautilus with the likelihood on the Dask workers
   (:class:`~wtilde_dask.fit.evaluate.DaskLikelihood`), or NUTS in this process. Progress (evaluations, rate,
   current log Z, best point, state, pid and heartbeat) is written into the fit's attrs after every batch.
4. The result: posterior samples, weights and log likelihoods; log evidence and error; the max-likelihood
   point; the weighted median and the 1- and 3-sigma intervals (weighted quantiles at the normal
   probabilities 0.00135, 0.15866, 0.5, 0.84134, 0.99865) of each free parameter; evaluations, wall time
   (this process's, plus earlier runs' of a resumed fit) and seconds per evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from wtilde_dask.errors import StoreError, WTildeError
from wtilde_dask.fit.samplers import NautilusSearch, NutsSearch, SearchOutcome, sampler_settings
from wtilde_dask.store.fit import FitRecord

log = logging.getLogger(__name__)

#: Normal probabilities of -3, -1, 0, 1, 3 sigma.
SIGMA_LEVELS = {"lower_3sigma": float(ndtr(-3.0)), "lower_1sigma": float(ndtr(-1.0)), "median": 0.5,
                "upper_1sigma": float(ndtr(1.0)), "upper_3sigma": float(ndtr(3.0))}
HEARTBEAT_S = 15.0


class FitRunError(WTildeError, ValueError):
    """A fit that cannot start as asked (the message names the store, fit, key and value)."""


@dataclass
class FitResult:
    """A finished fit: ``summary`` (the JSON-able result recorded in the store) and the posterior arrays."""

    summary: dict
    samples: np.ndarray
    weights: np.ndarray
    log_likelihood: np.ndarray
    name: str = "default"
    resumed: bool = False
    extra: dict = field(default_factory=dict)


def weighted_quantiles(values, weights, probabilities) -> np.ndarray:
    """Quantiles of ``values`` (n,) with ``weights`` (n,) at ``probabilities``: linear interpolation of the
    weighted CDF taken at each sorted value's mid-weight ``(cumsum(w) - w / 2) / sum(w)``."""
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / np.sum(w)
    return np.interp(np.asarray(probabilities, dtype=np.float64), cdf, x)


def check_store_for_fit(store_path):
    """The :class:`~wtilde_dask.store.WTildeStore` at ``store_path`` when the JAX likelihood can use it, else
    :class:`FitRunError` naming the store and what it lacks (nothing is written)."""
    from wtilde_dask.store import WTildeStore

    try:
        store = WTildeStore.open(store_path)
    except StoreError as err:
        raise FitRunError(f"store {store_path}: cannot be fitted: {err}") from None
    grid = store.attrs.get("grid", {})
    if store.method != "lattice" or not grid.get("is_lattice"):
        raise FitRunError(f"store {store.path}: method {store.method!r} (lattice grid: {bool(grid.get('is_lattice'))}); "
                          "a fit needs a lattice store (wtilde compute --method lattice on a masked image lattice)")
    missing = [name for name in ("kernel", "dirty_image") if not store.has_array(name)]
    if store.visibility_sums() is None:
        missing.append("visibility_sums")
    if missing:
        raise FitRunError(f"store {store.path}: incomplete, missing {', '.join(missing)} (its visibility pass has not "
                          "finished); run `wtilde compute` on it to the end first")
    return store


def _n_workers(client) -> int:
    try:
        return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    except TypeError:
        return max(1, len(client.scheduler_info().get("workers", {})))


def _differences(model, record: FitRecord) -> list[str]:
    """What differs between ``model`` and the fit's stored model (its sampler settings included)."""
    return list(model.differences(record.model_record() or {}))


def summarise(model, outcome: SearchOutcome, wall_seconds: float) -> dict:
    """The result record (JSON-able) of a search's outcome."""
    names = list(model.free_names)
    x, w, log_l = outcome.samples, outcome.weights, outcome.log_likelihood
    i = int(np.argmax(log_l))
    levels = {key: {} for key in SIGMA_LEVELS}
    for j, name in enumerate(names):
        q = weighted_quantiles(x[:, j], w, list(SIGMA_LEVELS.values()))
        for key, value in zip(SIGMA_LEVELS, q):
            levels[key][name] = float(value)
    n = int(outcome.n_evaluations)
    return {
        "log_evidence": outcome.log_evidence,
        "log_evidence_error": outcome.log_evidence_error,
        "n_evaluations": n,
        "wall_seconds": float(wall_seconds),
        "seconds_per_evaluation": float(wall_seconds) / n if n else None,
        "max_log_likelihood": float(log_l[i]),
        "max_likelihood": {name: float(v) for name, v in zip(names, x[i])},
        **levels,
        "free_names": names,
        "sampler": None,
        "finished": bool(outcome.finished),
        "n_samples": int(len(x)),
    }


class _Heartbeat:
    """Stamps the fit's heartbeat every ``interval`` seconds while a batch runs (a live run never looks dead)."""

    def __init__(self, record: FitRecord, interval: float = HEARTBEAT_S):
        self.record, self.interval = record, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wtilde-fit-heartbeat", daemon=True)

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                self.record.update_progress()
            except OSError as err:  # keep going; the next stamp may succeed
                log.warning("fit heartbeat not written: %s", err)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def _interrupted_on_error(record: FitRecord):
    """Record state interrupted when the search stops by an exception (a kill is seen from the pid)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            record.update_progress(state="interrupted")
        raise


def precheck(store_path, model, name: str = "default", overwrite: bool = False):
    """(store, record) when ``model`` can be fitted as ``name`` to the store at ``store_path``; else
    :class:`FitRunError` (not a usable lattice store; another live run on this fit; a different model under
    this name without ``overwrite``). Writes nothing."""
    store = check_store_for_fit(store_path)
    record = FitRecord(store, name)
    if record.exists():
        if record.run_is_live():
            p = record.attrs().get("progress", {})
            raise FitRunError(f"fit {name!r} in {store.path}: another run is fitting it now (host {p.get('host')}, "
                              f"pid {p.get('pid')}); wait for it, or stop it first")
        if not overwrite:
            lines = _differences(model, record)
            if lines:
                raise FitRunError(f"fit {name!r} in {store.path} was started with a different model; differs: "
                                  + "; ".join(lines) + ". Use another --name, or --overwrite to start over")
    return store, record


#: the shortest interval between two per-batch progress writes (the dashboard and `wtilde status` read them)
PROGRESS_INTERVAL_SECONDS = 1.0


def run_fit(store_path, model, name: str = "default", client=None, overwrite: bool = False, *,
            slice_batches: int = 5, slice_seconds: float = 60.0, retries: int = 3) -> FitResult:
    """Fit ``model`` (a :class:`~wtilde_dask.fit.model.FitModel`) to the lattice store at ``store_path``.

    ``client``: a ``distributed.Client`` for Nautilus' likelihood batches (None: a LocalCluster sized to the
    machine is started for the run); ``overwrite``: delete an existing fit ``name`` and start over;
    ``slice_batches`` / ``slice_seconds``: a Nautilus checkpoint at least every that many batches / seconds;
    ``retries``: recomputations of a likelihood task whose worker was lost. Returns a :class:`FitResult`.
    """
    store, record = precheck(store_path, model, name, overwrite)
    sampler = dict(model.sampler)
    if client is None and sampler["name"] == "nautilus":
        from wtilde_dask.cluster import cluster_client

        with cluster_client("local", log=log.info) as own:
            return run_fit(store_path, model, name, own, overwrite, slice_batches=slice_batches,
                           slice_seconds=slice_seconds, retries=retries)
    settings = sampler_settings(sampler, _n_workers(client) if client is not None else 1)
    resumed = False
    previous_wall = 0.0
    if record.exists() and not overwrite:
        settings = {**settings, **(record.sampler_record() or {})}  # the seed drawn and chunk size chosen at the start
        if record.state() == "complete" and record.result() is not None:
            samples, weights, log_l = record.posterior()
            log.info("fit %r in %s: already complete", name, store.path)
            return FitResult(record.result(), samples, weights, log_l, name, resumed=True)
        resumed = True
        previous_wall = float(record.progress().get("wall_seconds") or 0.0)
        record.update_progress(state="running")
        log.info("fit %r in %s: resuming from its checkpoint", name, store.path)
    else:
        record.create(model.to_record(), settings, overwrite=overwrite)

    t0 = time.perf_counter()

    last_written = [-float("inf")]

    def report(**values):
        """Progress into the store: every slice's report (it carries ``n_slices``), per-batch ones at most once a
        second (each is an fsynced attribute write)."""
        now = time.perf_counter()
        if "n_slices" not in values and now - last_written[0] < PROGRESS_INTERVAL_SECONDS:
            return
        last_written[0] = now
        record.update_progress(state="running", wall_seconds=previous_wall + now - t0, **values)

    options = dict(model.likelihood_options())
    with _Heartbeat(record), _interrupted_on_error(record):
        if settings["name"] == "nautilus":
            from wtilde_dask.fit.evaluate import DaskLikelihood, DaskSamplerPool

            from wtilde_dask.dashboard import publish_fit

            publish_fit(client, store.path, name)  # the dashboard's fit view follows this fit
            likelihood = DaskLikelihood(client, store.path, options, int(settings["chunk_size"]), retries=retries)
            likelihood.warm_up()  # the workers compile while Nautilus starts
            pool = DaskSamplerPool(client, settings["pool_size"], retries=retries) if settings.get("pool_size") else None
            search = NautilusSearch(model, likelihood, record, settings, report=report, slice_batches=slice_batches,
                                    slice_seconds=slice_seconds, pool=pool)
        else:
            from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

            search = NutsSearch(model, JaxLikelihood.from_store(store, **options), record, settings, report=report)
        outcome = search.run()
    wall = previous_wall + time.perf_counter() - t0
    summary = summarise(model, outcome, wall)
    summary["sampler"] = settings["name"]
    record.write_result(summary, outcome.samples, outcome.weights, outcome.log_likelihood)
    record.update_progress(state="complete", n_evaluations=summary["n_evaluations"], wall_seconds=wall,
                           log_evidence=summary["log_evidence"], log_evidence_error=summary["log_evidence_error"],
                           max_log_likelihood=summary["max_log_likelihood"], best=summary["max_likelihood"])
    return FitResult(summary, outcome.samples, outcome.weights, outcome.log_likelihood, name, resumed)
