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
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import socket
import sys
import time
import types

import numpy as np

from wtilde_dask import config
from wtilde_dask.store import StoreError, StoreLock, WTildeStore, _now
from wtilde_dask.submit import SubmitLoop, progress_bar
from wtilde_dask.worker import DISK_FULL, block_task, worker_inputs  # noqa: F401 (worker_inputs re-exported)
from wtilde_dask.errors import ComputeError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)


METHODS = ("auto", "direct", "lattice")
METADATA_KEY = "wtilde"
LEDGER_FLUSH_S = 0.5
METADATA_EVERY_S = 1.0


def run_token(path, fingerprint: str) -> str:
    """8 hex digits naming one store's run on a scheduler (store path + fingerprint)."""
    return hashlib.sha256(f"{path}|{fingerprint}".encode()).hexdigest()[:8]


def block_key(bi: int, bj: int, token: str) -> str:
    """Dask key of the task of block (bi, bj): ``w_tilde-block-(bi,bj)-TOKEN``.

    The token keeps two stores computed on one scheduler from sharing task keys (the scheduler would
    otherwise hand one run the other's result); the dashboard groups tasks by the prefix ``w_tilde-block``.
    """
    return f"w_tilde-block-({bi},{bj})-{token}"


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
            _Run(store, client, lock, progress=progress, max_in_flight=max_in_flight,
                 dirty_image=dirty_image, log=log, source=source).run()
        except ValueError as err:
            if fresh and not isinstance(err, StoreError) and store.n_done() == 0:
                # bad visibilities found by the pass (all flagged, a bad value in a chunk): no store is left
                lock.release()
                _remove_new_store(out)
            raise
        except OSError as err:  # disk full, quota, I/O error: say which store and why, keep what is done
            raise ComputeError(_os_error_message(store, err)) from err
        return store
    finally:
        lock.release()


def _os_error_message(store: WTildeStore, err: OSError) -> str:
    """One line naming the store, the cause of an OSError that stopped a run and what is kept (ENOSPC: free space)."""
    hint = "free space on its filesystem, then " if err.errno in DISK_FULL else ""
    where = f" ({err.filename})" if err.filename else ""
    try:
        kept = f"{store.n_done()}/{store.plan.n_blocks} blocks are stored"
    except Exception:  # noqa: BLE001 - the message must not fail
        kept = "every block recorded in the ledger is kept"
    return f"store {store.path}: {err.strerror or err}{where}; {kept}; {hint}run the same command again to resume"


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


class _Run:
    """One run of the orchestrator over one store (kept as an object for its counters)."""

    def __init__(self, store: WTildeStore, client, lock: StoreLock, *, progress, max_in_flight, dirty_image, log,
                 blocks=None, source=None):
        from wtilde_dask.cluster import total_threads
        from wtilde_dask.ingest import store_source

        # the chunked visibilities the pass and the direct blocks read (default: the store's copy or its source)
        self.source = source if source is not None else store_source(store)

        self.only = None if blocks is None else [(int(bi), int(bj)) for bi, bj in blocks]  # repair: just these
        self.store = store
        self.client = client
        self.lock = lock
        self.log = log
        self.progress = progress
        self.want_dirty = dirty_image
        self.path = str(store.path.resolve())
        self.fp = store.fingerprint
        self.token = run_token(self.path, self.fp)
        self.plan = store.plan
        self.method = store.method
        self.threads = total_threads(client)
        self.max_in_flight = int(max_in_flight) if max_in_flight else max(4, 3 * self.threads)
        self.done = 0
        self.skipped = 0
        self.failed = 0
        self.pending: list = []
        self.unrecorded = 0  # finished blocks the ledger could not take (disk full): redone by the next run
        self.last_flush = time.monotonic()
        self.last_meta = 0.0
        self.t_start = time.monotonic()
        self.times = {"visibility_pass": 0.0, "compute": 0.0, "write": 0.0}

    # ---- bookkeeping ---------------------------------------------------------------------------------
    def record_finished(self) -> None:
        """After a failure: record every finished block in the ledger; when the disk is full, free the store's
        reserve (:meth:`WTildeStore.reserve_space`) first; what still cannot be written is logged (and redone)."""
        for attempt in range(2):
            try:
                self.flush(force=True)
                return
            except OSError as err:
                if attempt == 0 and err.errno in DISK_FULL and self.store.release_space():
                    self.log(f"store {self.store.path}: disk full; freed the run's reserved space to record "
                             f"{len(self.pending)} finished block(s) in the ledger")
                    continue
                self.log(f"store {self.store.path}: could not record {len(self.pending)} finished block(s) in the "
                         f"ledger ({err}); they will be computed again")
                self.unrecorded += len(self.pending)
                self.pending = []
                return

    def flush(self, force=False) -> None:
        now = time.monotonic()
        if self.pending and (force or now - self.last_flush >= LEDGER_FLUSH_S or len(self.pending) >= 512):
            self.store.mark_done_many(self.pending)
            self.pending = []
            self.last_flush = now

    def rate(self) -> float:
        elapsed = time.monotonic() - self.t_start
        return self.done / elapsed if elapsed > 0 and self.done else 0.0

    def publish(self, state: str, force=False) -> None:
        now = time.monotonic()
        if not force and now - self.last_meta < METADATA_EVERY_S:
            return
        self.last_meta = now
        remaining = self.plan.n_blocks - self.skipped - self.done
        rate = self.rate()
        info = {
            "store": self.path, "method": self.method, "state": state, "key_token": self.token,
            "n_pixels": self.plan.n_pixels, "block_size": self.plan.block_size,
            "n_blocks_side": self.plan.n_blocks_side, "n_blocks": self.plan.n_blocks,
            "done": self.skipped + self.done, "skipped": self.skipped, "computed": self.done,
            "failed": self.failed, "rate_blocks_per_s": rate,
            "eta_s": (remaining / rate) if rate > 0 else None,
            "elapsed_s": time.monotonic() - self.t_start, "updated": time.time(),
        }
        try:
            self.client.set_metadata(METADATA_KEY, info)
        except Exception as err:  # noqa: BLE001 - monitoring must never stop the run
            self.log(f"could not publish progress to the scheduler: {err}")

    # ---- the run -------------------------------------------------------------------------------------
    def run(self) -> None:
        store, plan = self.store, self.plan
        ledger = store.ledger()
        todo = [b for b in (plan.blocks() if self.only is None else self.only) if ledger[b] == 0]
        self.skipped = plan.n_blocks - len(todo) if self.only is None else int(np.count_nonzero(np.triu(ledger)))
        B = plan.block_size
        self.log(f"store {store.path}: method {self.method}, M = {plan.n_pixels} pixels, B = {B}, "
                 f"{plan.n_blocks_side}x{plan.n_blocks_side} block grid, {plan.n_blocks} upper-triangle blocks; "
                 f"{self.skipped} already done (skipped), {len(todo)} to compute on {self.threads} worker thread(s)")
        store.update_attrs(last_run={"host": socket.gethostname(), "pid": os.getpid(), "started": _now(),
                                     "state": "running", "worker_threads": self.threads,
                                     "skipped": self.skipped, "to_compute": len(todo)})
        self.publish("running", force=True)
        try:
            store.reserve_space()  # freed to record the ledger should the disk fill up
            self._extras()
            self._blocks(todo)
        except BaseException as err:
            self.record_finished()  # on a full disk this frees the reserve; the first error is raised
            self.publish("failed" if not isinstance(err, KeyboardInterrupt) else "interrupted", force=True)
            try:
                store.update_attrs(last_run={**store.attrs.get("last_run", {}), "state": "failed",
                                             "finished": _now(), "computed": self.done, "error": str(err)[:500]})
            except OSError as attrs_err:
                self.log(f"store {store.path}: could not record the failed run in its attributes ({attrs_err})")
            store.release_space()
            raise
        store.release_space()
        self.flush(force=True)
        elapsed = time.monotonic() - self.t_start
        self.publish("finished", force=True)
        store.update_attrs(last_run={**store.attrs.get("last_run", {}), "state": "finished", "finished": _now(),
                                     "computed": self.done, "seconds": elapsed, "times": self.times})
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.log(f"done: {self.done} blocks computed, {self.skipped} skipped, in {elapsed:.2f} s "
                 f"({rate:.2f} blocks/s); task time totals: "
                 + ", ".join(f"{'gather' if (k, self.method) == ('compute', 'lattice') else k} {v:.2f} s"
                             for k, v in self.times.items() if v or k in ("compute", "write")))

    def _extras(self) -> None:
        """The visibility pass (wtilde_dask.ingest): sums, dirty image and lattice kernels, before any block."""
        from wtilde_dask.ingest import run_pass

        t0 = time.perf_counter()
        run_pass(self.store, self.client, self.source, dirty_image=self.want_dirty, lattice=self.method == "lattice",
                 progress=self.progress, log=self.log)
        self.times["visibility_pass"] = time.perf_counter() - t0

    def _blocks(self, todo) -> None:
        bar = progress_bar(self.progress, total=self.plan.n_blocks, initial=self.skipped, unit="block",
                           desc="w_tilde", smoothing=0.1)
        first_error = None
        # direct blocks read the visibilities through the reader (a small picklable object sent with each task;
        # not scattered, so a lost worker loses nothing other tasks depend on)
        source_ref = self.source if self.method == "direct" else None

        def submit(block):
            bi, bj = block
            return self.client.submit(block_task, self.path, self.fp, bi, bj, self.method, source_ref,
                                      key=block_key(bi, bj, self.token), retries=3, pure=False)

        try:
            with SubmitLoop(self.client, todo, submit, max_in_flight=self.max_in_flight) as loop:
                loop.fill()
                for fut, (bi, bj) in loop:
                    try:
                        result = fut.result()
                        if isinstance(result, OSError):  # the block's write found the disk full (block_task)
                            raise result
                        checksum, t_compute, t_write = result
                    except Exception as err:  # noqa: BLE001 - counted, reported, store stays resumable
                        self.failed += 1
                        if first_error is None:
                            first_error = (bi, bj, err)
                            self.log(f"block ({bi}, {bj}) failed after retries: {type(err).__name__}: {err}; "
                                     "not submitting more blocks")
                        continue
                    self.pending.append((bi, bj, checksum, t_compute + t_write))
                    self.times["compute"] += t_compute
                    self.times["write"] += t_write
                    self.done += 1
                    if bar is not None:
                        bar.update(1)
                    self.flush()
                    self.publish("running")
                    if self.lock.lost:
                        raise ComputeError(f"store {self.store.path}: another run took the lock over; stopping")
                    if first_error is None:
                        loop.submit_next()
        finally:
            if bar is not None:
                bar.close()
        if first_error is not None:
            bi, bj, err = first_error
            self.record_finished()
            hint = "free space on its filesystem, then " if getattr(err, "errno", None) in DISK_FULL else ""
            raise ComputeError(f"store {self.store.path}: {self.failed} block(s) failed, first ({bi}, {bj}): "
                               f"{type(err).__name__}: {err}; {self.skipped + self.done - self.unrecorded}/"
                               f"{self.plan.n_blocks} blocks are stored; {hint}run the same command again to resume"
                               ) from err


# ---------------------------------------------------------------------------------------------------
# Status and verification of any store (running or dead)
# ---------------------------------------------------------------------------------------------------


def store_status(path) -> dict:
    """Progress of the store at ``path`` from its ledger only (works while a run is live or dead).

    Keys: store, method, n_pixels, block_size, n_blocks_side, n_blocks, done, remaining, fraction,
    mean_block_s (task time, compute + write), worker_threads (of the last run), eta_s (remaining x mean /
    threads; None when nothing is done yet), running (a live lock), lock (record or None), lock_state, last_run,
    has_dirty_image, visibility_pass (:func:`wtilde_dask.ingest.pass_progress`: None before any pass).
    """
    from wtilde_dask.ingest import pass_progress
    from wtilde_dask.store import lock_is_stale, read_lock

    store = WTildeStore.open(path)
    plan = store.plan
    ledger = np.triu(store.ledger())
    seconds = store.ledger_seconds()
    done_mask = ledger != 0
    done = int(done_mask.sum())
    secs = seconds[done_mask]
    secs = secs[np.isfinite(secs)]
    mean = float(secs.mean()) if secs.size else None
    last_run = store.attrs.get("last_run", {}) or {}
    threads = int(last_run.get("worker_threads") or 1)
    remaining = plan.n_blocks - done
    record = read_lock(store.path)
    stale, why = lock_is_stale(record)
    return {
        "store": str(store.path), "method": store.method, "n_pixels": plan.n_pixels, "block_size": plan.block_size,
        "n_blocks_side": plan.n_blocks_side, "n_blocks": plan.n_blocks, "done": done, "remaining": remaining,
        "fraction": done / plan.n_blocks, "mean_block_s": mean, "worker_threads": threads,
        "eta_s": (remaining * mean / threads) if mean is not None else (0.0 if remaining == 0 else None),
        "running": record is not None and not stale, "lock": record,
        "lock_state": "none" if record is None else ("live" if not stale else f"stale ({why})"),
        "last_run": last_run, "has_dirty_image": store.has_array("dirty_image"),
        "visibility_pass": pass_progress(store),
    }


#: Named arrays that a repair recomputes when they cannot be read ("kernel" needs "kernel_hankel" with it).
REPAIRABLE_ARRAYS = ("kernel", "kernel_hankel", "dirty_image")


def _check_arrays(store: WTildeStore, log) -> dict:
    """{name: why} for each stored kernel / dirty image that cannot be read back."""
    bad = {}
    for name in REPAIRABLE_ARRAYS:
        if not store.has_array(name):
            continue
        try:
            values = store.read_array(name)
        except Exception as err:  # noqa: BLE001 - any decode failure means the array is bad
            bad[name] = f"unreadable: {type(err).__name__}: {err}"
        else:
            if not np.all(np.isfinite(values)):
                bad[name] = "holds non-finite values"
        if name in bad:
            log(f"{name}: {bad[name]}")
    return bad


def _reference_checks(store: WTildeStore, picks, *, entries: int, rtol: float, rng, dirty: bool, log):
    """Recompute E x E entries of each block in ``picks`` (and E^2/16 dirty-image pixels when ``dirty``)
    with :mod:`wtilde_dask.kernels.reference`; returns (per-block results, dirty-image result or None)."""
    from wtilde_dask.kernels import reference

    plan = store.plan
    dataset, grid = store.dataset(), store.grid()
    g, uv, wr, wi = grid.grid_radians, dataset.uv_wavelengths, dataset.weights_real, dataset.weights_imag

    def subset(pixels: slice, n: int) -> np.ndarray:
        index = np.arange(pixels.start, pixels.stop)
        return index if index.size <= n else np.sort(rng.choice(index, size=n, replace=False))

    recomputed = []
    for bi, bj in picks:
        block_rows, block_cols = plan.pixel_range(bi), plan.pixel_range(bj)
        rows, cols = subset(block_rows, entries), subset(block_cols, entries)
        ref = reference.w_tilde_reference(g, uv, wr, wi, rows=rows, cols=cols)
        try:
            got = store.read_block(bi, bj)[np.ix_(rows - block_rows.start, cols - block_cols.start)].astype(np.float64)
        except Exception as err:  # noqa: BLE001 - a chunk damaged since the checksum pass
            recomputed.append({"block": (bi, bj), "rel_error": float("inf"), "ok": False})
            log(f"block ({bi}, {bj}): unreadable: {type(err).__name__}: {err}")
            continue
        scale = float(np.max(np.abs(ref))) or 1.0
        err = float(np.max(np.abs(got - ref))) / scale if np.all(np.isfinite(got)) else float("inf")
        recomputed.append({"block": (bi, bj), "rel_error": err, "ok": err <= rtol})
        log(f"block ({bi}, {bj}) vs reference formula ({rows.size} x {cols.size} entries): max relative error {err:.2e} "
            f"({'ok' if err <= rtol else 'FAILED'}, tolerance {rtol:g})")
    result = None
    if dirty:
        pixels = subset(slice(0, plan.n_pixels), max(1, entries**2 // 16))
        ref = reference.dirty_image_reference(g[pixels], uv, dataset.visibilities, wr, wi)
        got = store.read_array("dirty_image")[pixels]
        err = float(np.max(np.abs(got - ref))) / (float(np.max(np.abs(ref))) or 1.0)
        if not np.isfinite(err):
            err = float("inf")
        result = {"rel_error": err, "ok": err <= rtol}
        log(f"dirty_image vs reference formula ({pixels.size} pixels): max relative error {err:.2e} "
            f"({'ok' if err <= rtol else 'FAILED'})")
    return recomputed, result


def verify_store(path, *, sample: int = 2, entries: int = 64, seed: int | None = None,
                 rtol: float | None = None, repair: bool = False, client=None, n_workers: int | None = None,
                 threads_per_worker: int | None = None, progress: bool = False, log=None) -> dict:
    """Check a store, and with ``repair`` mend it; the last line logged is the summary
    ``verify: OK|FAILED: N blocks checked, b bad, r repaired; d/n blocks stored; ...``.

    1. Every block the ledger calls done: its chunk file exists, has the size of a (B, B) chunk, decodes,
       and hashes to the ledger checksum (:meth:`WTildeStore.block_damage`); the stored kernels and dirty
       image are readable.
    2. ``sample`` random sound blocks (plus the dirty image) recomputed with
       :mod:`wtilde_dask.kernels.reference`: in each at most ``entries`` random rows x ``entries`` random
       columns (all when the block is smaller) and at most ``entries**2 // 16`` dirty-image pixels, so an
       ALMA-scale store (K = 1e6) verifies in seconds with bounded memory. A block passes when
       ``max|stored - reference| <= rtol * max|reference|`` (rtol 1e-10 for float64 stores, 1e-6 for float32).
    3. ``repair``: under the store's lock (refused while a live run holds it) the bad blocks of 1. and 2. are
       cleared from the ledger, their chunk files deleted, and only they are recomputed from the store's own
       inputs on ``client`` (None: a LocalCluster of ``n_workers`` x ``threads_per_worker`` started for the
       repair); unreadable kernels / dirty image are recomputed too. Repaired blocks are checked again.

    Blocks not computed yet are not damage (the summary gives d/n stored). Returns a report dict with
    ``ok`` (the store is sound now), ``checked``, ``bad_checksums``, ``bad_arrays``, ``recomputed``,
    ``dirty_image``, ``repaired``, ``repair_error`` and ``summary``.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    store = WTildeStore.open(path)
    lock = StoreLock(store.path, log=log).acquire() if repair else None
    try:
        return _verify(store, sample=sample, entries=entries, seed=seed, rtol=rtol, repair=repair, lock=lock,
                       client=client, n_workers=n_workers, threads_per_worker=threads_per_worker,
                       progress=progress, log=log)
    finally:
        if lock is not None:
            lock.release()


def _verify(store: WTildeStore, *, sample, entries, seed, rtol, repair, lock, client, n_workers,
            threads_per_worker, progress, log) -> dict:
    plan = store.plan
    rtol = float(rtol if rtol is not None else (1e-10 if store.dtype == "float64" else 1e-6))
    done = store.done_blocks()
    bad_checksums = []
    for bi, bj, why in store.damaged_blocks(done, read=True):
        bad_checksums.append({"block": (bi, bj), "chunk": store.chunk_key(bi, bj), "why": why})
        log(f"block ({bi}, {bj}): {why} (chunk {store.chunk_key(bi, bj)})")
    log(f"checksums: {len(done) - len(bad_checksums)}/{len(done)} stored blocks match the ledger "
        f"({plan.n_blocks - len(done)} not computed yet)")
    bad_arrays = _check_arrays(store, log)

    rng = np.random.default_rng(seed)
    bad_set = {tuple(b["block"]) for b in bad_checksums}
    sound = [b for b in done if b not in bad_set]
    picks = [sound[i] for i in rng.choice(len(sound), size=min(int(sample), len(sound)), replace=False)] if sound else []
    has_dirty = store.has_array("dirty_image") and "dirty_image" not in bad_arrays
    recomputed, dirty = _reference_checks(store, picks, entries=entries, rtol=rtol, rng=rng, dirty=has_dirty, log=log)

    to_repair = [tuple(b["block"]) for b in bad_checksums] + [tuple(r["block"]) for r in recomputed if not r["ok"]]
    arrays = set(bad_arrays) | ({"dirty_image"} if dirty is not None and not dirty["ok"] else set())
    if arrays & {"kernel", "kernel_hankel"}:
        arrays |= {n for n in ("kernel", "kernel_hankel") if store.has_array(n)}
    repaired, repair_error, still_bad = [], None, list(to_repair)
    if repair and (to_repair or arrays):
        try:
            _repair(store, to_repair, sorted(arrays), lock=lock, client=client, n_workers=n_workers,
                    threads_per_worker=threads_per_worker, progress=progress, log=log)
        except (ComputeError, OSError) as err:
            repair_error = str(err) if isinstance(err, ComputeError) else _os_error_message(store, err)
            log(f"repair stopped: {repair_error}")
        store = WTildeStore.open(store.path)
        ledger = store.ledger()
        left = {(bi, bj) for bi, bj, _ in store.damaged_blocks([b for b in to_repair if ledger[b]], read=True)}
        left |= {b for b in to_repair if not ledger[b]}
        wrong = [b for b in to_repair if b not in left and b in {tuple(r["block"]) for r in recomputed}]
        if wrong or "dirty_image" in arrays:
            again, dirty_again = _reference_checks(store, wrong, entries=entries, rtol=rtol, rng=rng,
                                                   dirty="dirty_image" in arrays and store.has_array("dirty_image"),
                                                   log=log)
            left |= {tuple(r["block"]) for r in again if not r["ok"]}
            if "dirty_image" in arrays:
                dirty = dirty_again
        still_bad = sorted(left)
        repaired = [b for b in to_repair if b not in left]
        arrays_left = {name for name in _check_arrays(store, log)}
        if "dirty_image" in arrays and not store.has_array("dirty_image"):
            arrays_left.add("dirty_image")
        if "kernel" in arrays and not store.has_array("kernel"):
            arrays_left.add("kernel")
        bad_arrays_now = sorted(arrays_left)
    else:
        bad_arrays_now = sorted(arrays)

    n_done = store.n_done()
    ok = not still_bad and not bad_arrays_now and repair_error is None
    summary = (f"verify: {'OK' if ok else 'FAILED'}: {len(done)} blocks checked, {len(to_repair)} bad, "
               f"{len(repaired)} repaired; {n_done}/{plan.n_blocks} blocks stored")
    if arrays:
        summary += f"; arrays bad: {', '.join(sorted(arrays))}" + (
            f", repaired: {', '.join(sorted(arrays - set(bad_arrays_now)))}" if repair else "")
    if ok:
        summary += "; the store is sound"
    elif repair_error is not None:
        summary += "; repair stopped (see above): run it again"
    elif not repair:
        summary += f"; repair: wtilde verify {store.path} --repair"
    log(summary)
    return {"store": str(store.path), "ok": ok, "checked": len(done), "bad_checksums": bad_checksums,
            "bad_arrays": bad_arrays, "recomputed": recomputed, "dirty_image": dirty, "n_blocks": plan.n_blocks,
            "rtol": rtol, "repaired": repaired, "still_bad": still_bad, "repair_error": repair_error,
            "summary": summary}


def _repair(store: WTildeStore, blocks, arrays, *, lock, client, n_workers, threads_per_worker, progress, log):
    """Clear ``blocks`` (ledger + chunk files) and ``arrays``, then recompute just them (under ``lock``)."""
    if client is None:
        from wtilde_dask.cluster import cluster_client

        with cluster_client("local", n_workers=n_workers, threads_per_worker=threads_per_worker, log=log) as c:
            return _repair(store, blocks, arrays, lock=lock, client=c, n_workers=None, threads_per_worker=None,
                           progress=progress, log=log)
    rw = WTildeStore.open(store.path, mode="r+")
    log(f"repair: clearing {len(blocks)} block(s) from the ledger"
        + (f" and removing {', '.join(arrays)}" if arrays else "") + "; recomputing them from the store's inputs")
    rw.clear_blocks(blocks, delete_chunks=True)
    for name in arrays:
        rw.delete_array(name)
    _Run(rw, client, lock, progress=progress, max_in_flight=None, dirty_image="dirty_image" in arrays, log=log,
         blocks=blocks).run()


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
