"""Evaluate the JAX log evidence for a batch of lens parameter vectors on the workers of a running Dask
cluster (LocalCluster, SLURM or any scheduler). Plumbing only: the maths is :mod:`jax_likelihood`.

Each worker builds the :class:`~wtilde_dask.inversion.jax_likelihood.JaxLikelihood` once from the store
path (cached per worker process, so the jitted function is compiled once per worker and batch shape);
nothing large travels through the scheduler: only the store path and the (n, 7) parameter chunks.
"""

from __future__ import annotations

import functools

import numpy as np

from wtilde_dask.inversion.jax_likelihood import PARAM_NAMES, JaxLikelihoodError


def worker_threads() -> int:
    """Threads of the Dask worker this runs on (0 outside a worker: every core)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError):
        return 0


@functools.lru_cache(maxsize=4)
def worker_likelihood(store_path: str, options: tuple):
    """The worker's :class:`JaxLikelihood` for ``store_path`` and ``options`` (sorted (key, value) pairs); its
    host F on the worker's own thread count (:func:`worker_threads`; several worker processes on one machine
    then share the cores instead of each taking them all), unless ``options`` name ``fft_threads``."""
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

    kwargs = dict(options)
    kwargs.setdefault("fft_threads", worker_threads())
    return JaxLikelihood.from_store(store_path, **kwargs)


def evaluate_chunk(store_path: str, options: tuple, params: np.ndarray, coefficients=None) -> np.ndarray:
    """(n,) log evidences of the (n, 7) ``params`` by the worker's cached, batched likelihood;
    ``coefficients`` (n,): one regularization coefficient per lens (default: the options' coefficient)."""
    return np.asarray(worker_likelihood(store_path, options).log_evidence_batch(params, coefficients))


def _options_key(options: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in options.items()))


def log_evidence_dask(client, store_path, params, *, chunk_size: int | None = None, **options) -> np.ndarray:
    """(N,) log evidences of the (N, 7) lens ``params`` (order :data:`PARAM_NAMES`), spread over ``client``'s workers.

    ``options``: :meth:`JaxLikelihood.from_store` keywords (mesh, mesh_shape, n_pixels, regularization,
    coefficient, batch_size). ``chunk_size``: parameter vectors per task (default: N over the worker count);
    every chunk is padded to that size so each worker compiles one batch shape.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(PARAM_NAMES) or p.shape[0] == 0:
        raise JaxLikelihoodError(f"params: expected shape (N, 7) with N >= 1 in the order {', '.join(PARAM_NAMES)}, "
                                 f"got {p.shape}")
    if not np.all(np.isfinite(p)):
        bad = np.argwhere(~np.isfinite(p))[0]
        raise JaxLikelihoodError(f"params: non-finite value {float(p[tuple(bad)])!r} at row {bad[0]} ({PARAM_NAMES[bad[1]]})")
    n_workers = max(1, len(client.scheduler_info()["workers"]))
    n = int(chunk_size) if chunk_size else int(np.ceil(p.shape[0] / n_workers))
    if n < 1:
        raise JaxLikelihoodError(f"chunk_size: must be >= 1, got {chunk_size!r}")
    key = _options_key(options)
    path = str(store_path)
    chunks, sizes = [], []
    for start in range(0, p.shape[0], n):
        c = p[start : start + n]
        sizes.append(len(c))
        if len(c) < n:  # pad with the last row: one compiled batch shape per worker
            c = np.concatenate([c, np.repeat(c[-1:], n - len(c), axis=0)])
        chunks.append(c)
    futures = client.map(evaluate_chunk, [path] * len(chunks), [key] * len(chunks), chunks, pure=False)
    out = client.gather(futures)
    return np.concatenate([o[:m] for o, m in zip(out, sizes)])
