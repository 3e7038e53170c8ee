"""The orchestrator: plan -> skip finished blocks -> submit (bounded) -> ledger -> progress.

Thin layer over the kernels (like codex-africanus' ``dask.py`` beside ``kernels.py``): it moves work
and bytes, never does maths. Each task opens the store on its worker, reads the inputs there (cached
per process), calls the kernel, writes its block and returns ``(checksum, compute_s, write_s)``;
only the orchestrator writes the ledger, after the block's write returned.

First the visibility pass (:mod:`wtilde_dask.ingest`): one chunked, resumable Dask pass over the source's
visibilities sums chi2_data, the noise normalisation, K, the dirty image and (lattice) the kernels. Then:

* "direct":  ``W[I, J] = A_I A_J^T`` by :func:`wtilde_dask.kernels.direct.w_tilde_block`, accumulated over the
  source's chunks in order (a per-process cache keeps chunks up to ``WTILDE_CHUNK_CACHE_BYTES``, default 1 GiB,
  so small data is read once per worker; larger data is streamed for each block);
* "lattice": each block is a gather from the kernels (:func:`wtilde_dask.kernels.lattice.w_tilde_block_lattice`);
* "auto": "lattice" for a masked lattice grid, else "direct".

This module is the entry (:func:`compute`, :func:`precheck`): it opens or creates the store under its lock and
starts the run. The run itself is :class:`wtilde_dask.block_run.BlockRun`; checking and repairing a store is
:mod:`wtilde_dask.verify`, its progress :mod:`wtilde_dask.status` (both re-exported here).
"""

from __future__ import annotations

import logging
import pathlib
import sys
import types

from wtilde_dask import config
from wtilde_dask.block_run import (  # noqa: F401 (run_token, block_key, METADATA_KEY re-exported)
    METADATA_KEY, BlockRun, block_key, os_error_message, run_token)
from wtilde_dask.errors import ComputeError  # noqa: F401 (re-exported)
from wtilde_dask.status import store_status  # noqa: F401 (re-exported)
from wtilde_dask.store import StoreError, StoreLock, WTildeStore
from wtilde_dask.verify import REPAIRABLE_ARRAYS, verify_store  # noqa: F401 (re-exported)
from wtilde_dask.worker import worker_inputs  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)


METHODS = ("auto", "direct", "lattice")


def resolve_method(method: str, grid) -> str:
    """"auto" -> "lattice" for a masked lattice grid, "direct" otherwise; checks the name."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return "lattice" if grid.is_lattice else "direct"
    if method == "lattice" and not grid.is_lattice:
        raise ValueError("method: 'lattice' needs a masked regular lattice grid; this grid is an irregular point set")
    return method


# ---------------------------------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------------------------------


def _open_or_create(out, dataset, grid, *, method, block_size, dtype, overwrite, log,
                    copy_visibilities=None) -> WTildeStore:
    out = pathlib.Path(out)
    if (out / "zarr.json").exists() and not overwrite:
        store = WTildeStore.open(out, mode="r+")
        store.check_inputs(dataset, grid, method=method, block_size=block_size, dtype=dtype)
        log(f"resuming {out}: same inputs (fingerprint {store.fingerprint[:12]})")
        return store
    if overwrite and (out / "zarr.json").exists():
        log(f"--overwrite: starting {out} over")
    return WTildeStore.create(out, dataset, grid, method=method, block_size=block_size, dtype=dtype,
                              overwrite=overwrite, copy_visibilities=copy_visibilities)


def _check_out_path(out: pathlib.Path) -> None:
    """Refuse to put a lock into a directory that is neither empty nor a W-tilde store."""
    if not out.exists():
        return
    if not out.is_dir():
        raise StoreError(f"--out {out}: exists and is not a directory")
    names = {p.name for p in out.iterdir()} - {"lock"}
    if names and "zarr.json" not in names:
        raise StoreError(f"--out {out}: exists, is not empty and is not a W-tilde store; choose another path")


def precheck(out, dataset, grid, *, method: str = "auto", block_size: int | None = None, dtype: str = "float64",
             overwrite: bool = False) -> str:
    """Refuse early (before any cluster starts) what :func:`compute` would refuse under the lock.

    Checks the method, the block size, that ``out`` is empty / a W-tilde store, that no live run holds
    it, and (unless ``overwrite``) that an existing store was built from the same inputs.
    Returns what will happen: "create", "resume" or "overwrite".
    """
    from wtilde_dask.store import lock_is_stale, read_lock

    method = resolve_method(method, grid)
    block_size = config.get("block-size") if block_size is None else block_size
    if int(block_size) < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size!r}")
    out = pathlib.Path(out)
    _check_out_path(out)
    record = read_lock(out)
    if record is not None and not lock_is_stale(record)[0]:
        raise StoreError(f"store {out}: another run holds it (host {record.get('host')}, pid {record.get('pid')}, "
                         f"started {record.get('started')}); wait for it to finish, or stop it first")
    if not (out / "zarr.json").exists():
        return "create"
    if overwrite:
        return "overwrite"
    from wtilde_dask.ingest import in_store_order

    dataset = in_store_order(dataset, out)  # a Measurement Set read in the store's order (rows / recipe)
    WTildeStore.open(out).check_inputs(dataset, grid, method=method, block_size=int(block_size), dtype=dtype)
    return "resume"


def compute(dataset, grid, out, *, block_size: int | None = None, method: str = "auto", dtype: str = "float64",
            client=None, overwrite: bool = False, progress: bool = True, max_in_flight: int | None = None,
            dirty_image: bool = True, n_workers: int | None = None, threads_per_worker: int | None = None,
            check_existing: bool = False, copy_visibilities: bool | None = None, chunk_size: int | None = None,
            log=None) -> WTildeStore:
    """Compute (or finish) the W-tilde of ``dataset`` on ``grid`` into the Zarr store ``out``.

    Parameters
    ----------
    dataset : a :class:`~wtilde_dask.io.VisibilitySource` (chunked reader), an Interferometer, or a path
        (Measurement Set, UVFITS, FITS folder, .npz) or "sma" (bundled data) for :func:`wtilde_dask.ingest.open_source`.
    grid : ImageGrid (masked lattice or irregular points).
    out : path of the store (created, or resumed when it holds the same inputs).
    block_size : B, blocks are (B, B) pixels (default: dask.config ``wtilde.block-size``, 1024);
        nb = ceil(M / B) blocks per side, nb (nb+1)/2 computed.
    method : "auto" | "direct" | "lattice".
    dtype : stored dtype, "float64" (default) or "float32" (always computed in float64).
    client : a ``distributed.Client``; None starts a LocalCluster sized to the machine
        (``n_workers`` x ``threads_per_worker``) for the call.
    overwrite : start over when ``out`` exists (otherwise it is resumed, and refused if its inputs differ).
    max_in_flight : tasks submitted at once (default 3 x total worker threads, at least 4).
    dirty_image : also compute and store the dirty image (M,).
    copy_visibilities : copy the visibilities into the store's ``inputs/`` (default: yes for in-memory data, FITS
        folders, .npz, sma; no for Measurement Sets / UVFITS, whose source -- path, selection, sizes, mtimes -- is
        recorded and read again where needed).
    chunk_size : visibilities per chunk when ``dataset`` is an Interferometer or a path (default 1e6).
    check_existing : on resume, read every done block and compare it with its ledger checksum; bad blocks
        are cleared and recomputed. Without it only the chunk files' existence and size are checked (one
        ``stat`` per block): a missing or truncated chunk is recomputed either way.

    Returns
    -------
    WTildeStore
        The complete store. :class:`ComputeError` is raised when blocks failed after retries (the store keeps
        what finished; run again to resume).
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.ingest import default_copy_visibilities, in_store_order, open_source

    dataset = open_source(dataset, chunk_size=chunk_size)
    if not overwrite:  # resuming: a Measurement Set / UVFITS read in the order the store was made with
        dataset = in_store_order(dataset, out)
    if copy_visibilities is None:
        copy_visibilities = default_copy_visibilities(dataset)
    method = resolve_method(method, grid)
    block_size = config.get("block-size") if block_size is None else block_size
    if int(block_size) < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size!r}")
    if client is None:
        from wtilde_dask.cluster import cluster_client

        with cluster_client("local", n_workers=n_workers, threads_per_worker=threads_per_worker, log=log) as c:
            return compute(dataset, grid, out, block_size=block_size, method=method, dtype=dtype, client=c,
                           overwrite=overwrite, progress=progress, max_in_flight=max_in_flight,
                           dirty_image=dirty_image, check_existing=check_existing,
                           copy_visibilities=copy_visibilities, log=log)

    out = pathlib.Path(out)
    _check_out_path(out)
    made_dir = not out.exists()
    lock = StoreLock(out, log=log)
    try:
        lock.acquire()
    except BaseException:
        if made_dir:
            _remove_new_store(out)
        raise
    store = None
    fresh = overwrite or not (out / "zarr.json").exists()
    try:
        try:
            store = _open_or_create(out, dataset, grid, method=method, block_size=int(block_size), dtype=dtype,
                                    overwrite=overwrite, log=log, copy_visibilities=copy_visibilities)
        except BaseException:
            if made_dir:  # nothing usable was made: leave no store behind
                lock.release()
                _remove_new_store(out)
            raise
        try:
            clear_damaged(store, read=check_existing, log=log)
            # workers read the copy in inputs/ when there is one, else the source itself (a small picklable reader)
            chunk = chunk_size or getattr(dataset, "chunk_size", None) or config.get("chunk-size")
            source = store.inputs_source(chunk) if store.copied_visibilities else dataset
            BlockRun(store, client, lock, progress=progress, max_in_flight=max_in_flight,
                     dirty_image=dirty_image, log=log, source=source).run()
        except ValueError as err:
            if fresh and not isinstance(err, StoreError) and store.n_done() == 0:
                # bad visibilities found by the pass (all flagged, a bad value in a chunk): no store is left
                lock.release()
                _remove_new_store(out)
            raise
        except OSError as err:  # disk full, quota, I/O error: say which store and why, keep what is done
            raise ComputeError(os_error_message(store, err)) from err
        return store
    finally:
        lock.release()


def clear_damaged(store: WTildeStore, *, read: bool = False, log=None) -> list[tuple[int, int, str]]:
    """Clear from the ledger (and delete the chunk files of) the done blocks that
    :meth:`WTildeStore.damaged_blocks` finds bad, so that the run computes them again; returns them.

    ``read=False``: missing or truncated chunk files only (a ``stat`` per block); ``read=True``: every done
    block is also read back and compared with its ledger checksum.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    damaged = store.damaged_blocks(read=read)
    for bi, bj, why in damaged:
        log(f"block ({bi}, {bj}): {why} (chunk {store.chunk_key(bi, bj)}); cleared, it will be computed again")
    if damaged:
        store.clear_blocks([(bi, bj) for bi, bj, _ in damaged], delete_chunks=True)
    if read:
        log(f"checked {len(store.done_blocks()) + len(damaged)} stored block(s) against the ledger: "
            f"{len(damaged)} bad")
    return damaged


def _remove_new_store(out: pathlib.Path) -> None:
    import shutil

    shutil.rmtree(out, ignore_errors=True)


class _CallableModule(types.ModuleType):
    """``wtilde_dask.compute`` is both this module and the function :func:`compute`.

    Importing the submodule makes Python set ``wtilde_dask.compute`` to the module (shadowing the lazy
    function export); making the module callable keeps ``wtilde_dask.compute(dataset, grid, out)`` working.
    Kept on purpose: both spellings are public (``from wtilde_dask.compute import compute`` in the notebooks and
    benches, ``wtilde_dask.compute(...)`` in the README), and no re-export from the package root can win over the
    attribute the import system sets, short of renaming this module.
    """

    def __call__(self, *args, **kwargs):
        return compute(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
