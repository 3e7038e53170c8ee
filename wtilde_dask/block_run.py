"""One run over one store's blocks: the visibility pass, then the (bounded) block tasks, the ledger and progress.

:func:`wtilde_dask.compute.compute` starts a :class:`BlockRun` over every block not yet done; a repair
(:mod:`wtilde_dask.verify`) starts one over just the blocks it cleared. The run submits
:func:`wtilde_dask.worker.block_task` for each block through :class:`wtilde_dask.submit.SubmitLoop`, records each
finished block in the ledger (only here, after the block's write returned), publishes its progress to the
scheduler's metadata under :data:`METADATA_KEY` (read by :mod:`wtilde_dask.dashboard`) and its state in the
store's ``last_run`` attribute.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time

import numpy as np

from wtilde_dask.errors import ComputeError
from wtilde_dask.store import StoreLock, WTildeStore, _now
from wtilde_dask.submit import SubmitLoop, progress_bar
from wtilde_dask.worker import DISK_FULL, block_task

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


def os_error_message(store: WTildeStore, err: OSError) -> str:
    """One line naming the store, the cause of an OSError that stopped a run and what is kept (ENOSPC: free space)."""
    hint = "free space on its filesystem, then " if err.errno in DISK_FULL else ""
    where = f" ({err.filename})" if err.filename else ""
    try:
        kept = f"{store.n_done()}/{store.plan.n_blocks} blocks are stored"
    except Exception:  # noqa: BLE001 - the message must not fail
        kept = "every block recorded in the ledger is kept"
    return f"store {store.path}: {err.strerror or err}{where}; {kept}; {hint}run the same command again to resume"


class BlockRun:
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
