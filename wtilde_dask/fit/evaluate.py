"""Log likelihoods of a batch of lens models on the Dask workers: the sampler's likelihood function.

A batch of N points, (N, 7) lens parameters in :data:`~wtilde_dask.inversion.jax_likelihood.PARAM_NAMES`
order and (N,) regularization coefficients, is cut into chunks of a fixed ``chunk_size`` (the last one
padded by repeating a valid row), so each worker compiles one batched function of one shape (``jax.vmap``: on a
CPU one host call whose lenses run side by side, one core each; :func:`~wtilde_dask.inversion.jax_likelihood.resolve_batch`); each worker
builds the :class:`~wtilde_dask.inversion.jax_likelihood.JaxLikelihood` once from the store path and options
(:func:`wtilde_dask.inversion.jax_batch.worker_likelihood`, a bounded per-process cache) and evaluates its
chunks. Only the store path, the options and the chunks travel through the scheduler.

The log likelihood of a point is the log evidence of the regularized source inversion at that lens
(``log_evidence`` of :mod:`~wtilde_dask.inversion.jax_likelihood`). A point outside the lens model's domain
(non-finite, einstein_radius < 0, axis_ratio outside (0, 1], negative coefficient) or whose evaluation gives
NaN / inf (a failed Cholesky solve) gets :data:`REJECTED_LOG_LIKELIHOOD`: -inf, which Nautilus accepts
(its shells and bounds treat -inf as "outside the likelihood contour"; NaN would break its ranks).

A point's value depends only on the point: the same chunk size and padding always give the same compiled
function, and batched evaluation does not mix the lenses of a chunk (checked in tests/test_fit_run.py).
A task lost with its worker is recomputed (``retries``).
"""

from __future__ import annotations

import logging

import numpy as np

from wtilde_dask.inversion.jax_batch import _options_key, worker_likelihood
from wtilde_dask.inversion.jax_likelihood import PARAM_NAMES

log = logging.getLogger(__name__)

REJECTED_LOG_LIKELIHOOD = -np.inf

#: A lens every likelihood accepts (SIS of 1 arcsec at the origin): the stand-in for rejected rows, so that
#: the chunk keeps its shape.
_SAFE_PARAMS = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_SAFE_COEFFICIENT = 1.0


def valid_points(params: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """(N,) True where the lens ``params`` (N, 7) and ``coefficients`` (N,) can be evaluated."""
    p = np.asarray(params, dtype=np.float64)
    c = np.asarray(coefficients, dtype=np.float64)
    ok = np.all(np.isfinite(p), axis=1) & np.isfinite(c) & (c >= 0)
    ok &= p[:, 0] >= 0  # einstein_radius
    ok &= (p[:, 1] > 0) & (p[:, 1] <= 1)  # axis_ratio
    return ok


def evaluate_points(store_path: str, options: tuple, params: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Worker side: (n,) log evidences of one chunk, non-finite ones replaced by the rejected value.

    A store or option the likelihood cannot be built from raises (the run stops with that message); when the
    chunk's evaluation raises (e.g. a Delaunay mesh that cannot be built for one lens) each point is evaluated
    alone (repeated to the chunk's shape: the same compiled function) and those that raise are rejected.
    """
    likelihood = worker_likelihood(store_path, options)
    failures = (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError)
    n = len(params)
    try:
        out = np.asarray(likelihood.log_evidence_batch(params, coefficients), dtype=np.float64)
    except failures as err:  # e.g. a mesh that cannot be built for one lens: find which, keep the others
        log.warning("chunk of %d lens models failed (%s: %s): evaluated one by one", n, type(err).__name__, err)
        out = np.full(n, REJECTED_LOG_LIKELIHOOD)
        for i in range(n):  # each point alone, repeated to the chunk's shape: the same compiled function
            try:
                out[i] = np.asarray(likelihood.log_evidence_batch(np.repeat(params[i:i + 1], n, axis=0),
                                                                  np.repeat(coefficients[i:i + 1], n)))[0]
            except failures:
                pass
    return np.where(np.isfinite(out), out, REJECTED_LOG_LIKELIHOOD)


class DaskLikelihood:
    """Callable ``(params (N, 7), coefficients (N,)) -> (N,) log likelihood`` evaluated on ``client``'s workers.

    ``options``: :meth:`JaxLikelihood.from_store` keywords (mesh, mesh_shape, n_pixels, regularization, ...);
    ``chunk_size``: points per task (fixed for the whole search: it fixes the compiled shape);
    ``retries``: times a task lost with its worker is recomputed. ``n_evaluations`` counts points evaluated.
    """

    def __init__(self, client, store_path, options: dict, chunk_size: int, *, retries: int = 3):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size: must be >= 1, got {chunk_size!r}")
        self.client = client
        self.store_path = str(store_path)
        self.options = dict(options)
        self.key = _options_key(self.options)
        self.chunk_size = int(chunk_size)
        self.retries = int(retries)
        self.n_evaluations = 0
        self._warm = []

    def warm_up(self) -> None:
        """Start building and compiling the likelihood on every worker now (one chunk of a safe lens each,
        results discarded), so that the compile overlaps the sampler's own start; returns at once."""
        k = self.chunk_size
        params, coefficients = np.repeat(_SAFE_PARAMS[None], k, axis=0), np.full(k, _SAFE_COEFFICIENT)
        workers = list(self.client.nthreads())
        self._warm = [self.client.submit(evaluate_points, self.store_path, self.key, params, coefficients,
                                         workers=[w], allow_other_workers=True, pure=False) for w in workers]

    def __call__(self, params, coefficients) -> np.ndarray:
        p = np.array(params, dtype=np.float64, ndmin=2)
        c = np.broadcast_to(np.asarray(coefficients, dtype=np.float64), (p.shape[0],)).copy()
        if p.shape[1] != len(PARAM_NAMES):
            raise ValueError(f"params: expected shape (N, 7) in the order {', '.join(PARAM_NAMES)}, got {p.shape}")
        n = p.shape[0]
        out = np.full(n, REJECTED_LOG_LIKELIHOOD)
        ok = valid_points(p, c)
        if not ok.any():
            self.n_evaluations += n
            return out
        p[~ok], c[~ok] = _SAFE_PARAMS, _SAFE_COEFFICIENT
        k = self.chunk_size
        n_chunks = -(-n // k)
        pad = n_chunks * k - n
        if pad:  # repeat the last row: one compiled shape per worker
            p = np.concatenate([p, np.repeat(p[-1:], pad, axis=0)])
            c = np.concatenate([c, np.repeat(c[-1:], pad)])
        chunks_p = [p[i * k:(i + 1) * k] for i in range(n_chunks)]
        chunks_c = [c[i * k:(i + 1) * k] for i in range(n_chunks)]
        futures = self.client.map(evaluate_points, [self.store_path] * n_chunks, [self.key] * n_chunks, chunks_p,
                                  chunks_c, pure=False, retries=self.retries)
        try:
            values = np.concatenate(self.client.gather(futures))[:n]
        finally:
            for f in futures:
                f.release()
        out[ok] = values[ok]
        self.n_evaluations += n
        self._warm = []  # the warm-up tasks ran before this batch on their workers: let them go
        return out


def _is_network_training(func) -> bool:
    """Whether Nautilus' pool call ``func`` trains its neural networks (``partial(nautilus.neural.train_network,
    ...)``), the one sampler computation worth sending to the workers."""
    from nautilus.neural import train_network

    return getattr(func, "func", func) is train_network


class DaskSamplerPool:
    """The pool Nautilus runs its own computations on: ``map(func, iterable)`` as a list. Training its
    neural-network bounds (most of the sampler's own time) is computed on ``client``'s workers, idle while the
    sampler works; sampling a bound (tens of milliseconds) runs here, in order.

    ``size`` is fixed by the caller (the workers at the fit's start, recorded with its settings): Nautilus
    splits its bound sampling into ``size`` random streams, so a resumed fit draws the same points whatever
    number of workers it then has.
    """

    def __init__(self, client, size: int, *, retries: int = 3):
        if int(size) < 1:
            raise ValueError(f"size: must be >= 1, got {size!r}")
        self.client = client
        self.size = int(size)
        self.retries = int(retries)

    def map(self, func, iterable) -> list:
        if not _is_network_training(func):  # sampling a bound: ~50 ms here, less than shipping the bound out
            return list(map(func, iterable))
        futures = self.client.map(func, list(iterable), pure=False, retries=self.retries)
        try:
            return list(self.client.gather(futures))
        finally:
            for f in futures:
                f.release()
