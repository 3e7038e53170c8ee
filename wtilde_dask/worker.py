"""The worker side of a run: the tasks Dask runs and the per-process caches they share.

Both the block phase (:mod:`wtilde_dask.compute`) and the visibility pass (:mod:`wtilde_dask.ingest`) submit these
functions; a worker process opens each store once (:func:`worker_inputs`, keyed by store path and fingerprint) and
keeps recently read chunks for the direct blocks (up to ``WTILDE_CHUNK_CACHE_BYTES``, default 1 GiB).

* :func:`block_task` computes block (bi, bj) of W (direct: summed over the source's chunks in order; lattice: from
  the stored kernels) and writes it; a full disk is returned, not raised, so the orchestrator stops the run.
* :func:`ingest_group_task` reads one group of chunks and writes its partial sums as a leaf of the pass's tree;
  :func:`ingest_combine_task` writes a parent node as left + right child.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import numpy as np

from wtilde_dask.store import WTildeStore

__all__ = ["worker_inputs", "block_task", "ingest_group_task", "ingest_combine_task", "keep_freed_memory",
           "DISK_FULL"]

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # write errors that stop a run (no retry) with "free space" advice


# ---------------------------------------------------------------------------------------------------
# Inputs cached per process, keyed by (store path, fingerprint)
# ---------------------------------------------------------------------------------------------------

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def worker_inputs(path: str, fingerprint: str) -> dict:
    """The store of the run that owns ``fingerprint``, opened once per worker process (a small cache shared by the
    block tasks and the visibility-pass tasks): {"store", "plan", "grid",
    "grid_radians"}, plus the lattice kernels once :func:`_lattice_inputs` has read them."""
    key = (str(path), fingerprint)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            store = WTildeStore.open_for_run(path, fingerprint)
            grid = store.grid()
            hit = {
                "store": store,
                "plan": store.plan,
                "grid_radians": grid.grid_radians,
                "grid": grid,
            }
            if len(_CACHE) >= 4:
                _CACHE.clear()
            _CACHE[key] = hit
    return hit


def _lattice_inputs(hit: dict) -> dict:
    with _CACHE_LOCK:
        if "kernel" not in hit:
            from wtilde_dask.kernels.lattice import lattice_box

            store = hit["store"]
            hit["box_indices"] = lattice_box(hit["grid"]).box_indices
            hit["kernel_hankel"] = store.read_array("kernel_hankel") if store.has_array("kernel_hankel") else None
            hit["kernel"] = store.read_array("kernel")
    return hit


_CHUNKS: dict = {}  # (fingerprint, chunk id) -> (uv, wr, wi), least recently used first
_CHUNKS_BYTES = [0]


def _chunk_cache_limit() -> int:
    return int(float(os.environ.get("WTILDE_CHUNK_CACHE_BYTES", 2**30)))


def _weighted_chunks(source, fingerprint: str):
    """Yield (uv, wr, wi) of every chunk of ``source`` in order, through a per-process LRU cache."""
    # the chunk plan depends on the reader and its chunk size, not only on the data (the fingerprint)
    fingerprint = f"{fingerprint}|{type(source).__name__}|{getattr(source, 'chunk_size', '')}"
    key_ids = (fingerprint, "chunk_ids")
    with _CACHE_LOCK:
        ids = _CHUNKS.get(key_ids)
    if ids is None:
        ids = list(source.chunk_ids())
        with _CACHE_LOCK:
            _CHUNKS[key_ids] = ids
    limit = _chunk_cache_limit()
    for chunk_id in ids:
        key = (fingerprint, repr(chunk_id))
        with _CACHE_LOCK:
            hit = _CHUNKS.pop(key, None)
            if hit is not None:
                _CHUNKS[key] = hit  # most recently used
        if hit is None:
            c = source.read_chunk(chunk_id)
            hit = (np.ascontiguousarray(c.uv_wavelengths, np.float64), 1.0 / c.noise_map.real**2,
                   1.0 / c.noise_map.imag**2)
            size = sum(a.nbytes for a in hit)
            with _CACHE_LOCK:
                if size <= limit:
                    _CHUNKS[key] = hit
                    _CHUNKS_BYTES[0] += size
                    for old in [k for k in _CHUNKS if k[1] != "chunk_ids"]:
                        if _CHUNKS_BYTES[0] <= limit:
                            break
                        _CHUNKS_BYTES[0] -= sum(a.nbytes for a in _CHUNKS.pop(old))
        yield hit


def block_task(path: str, fingerprint: str, bi: int, bj: int, method: str, source=None) -> tuple[int, float, float]:
    """Compute block (bi, bj) on a worker, write it to the store; return (checksum, compute_s, write_s).

    ``source`` (direct method): the chunked visibility source; the block is summed over its chunks in order."""
    hit = worker_inputs(path, fingerprint)
    plan = hit["plan"]
    size = min(plan.block_size, plan.n_pixels)  # fixed padded shape: one compile per worker
    rows, cols = plan.pixel_range(bi), plan.pixel_range(bj)
    t0 = time.perf_counter()
    if method == "direct":
        from wtilde_dask.kernels.direct import w_tilde_block

        g = hit["grid_radians"]
        diagonal = bi == bj
        block = np.zeros((rows.stop - rows.start, cols.stop - cols.start))
        for uv, wr, wi in _weighted_chunks(source, fingerprint):
            if uv.shape[0]:
                block += w_tilde_block(g[rows], None if diagonal else g[cols], uv, wr, wi, block_size=size,
                                       symmetric=diagonal)
    elif method == "lattice":
        from wtilde_dask.kernels.lattice import w_tilde_block_lattice

        hit = _lattice_inputs(hit)
        idx = hit["box_indices"]
        block = w_tilde_block_lattice(hit["kernel"], hit["kernel_hankel"], idx[rows], idx[cols], block_size=size)
    else:
        raise ValueError(f"method: {method!r} is not a block method")
    t1 = time.perf_counter()
    try:
        checksum = hit["store"].write_block(bi, bj, block)
    except OSError as err:
        if err.errno in DISK_FULL:  # no retry can help: returned to the orchestrator, which stops the run
            return err
        raise
    t2 = time.perf_counter()
    return checksum, t1 - t0, t2 - t1


# ---------------------------------------------------------------------------------------------------
# The visibility pass's tasks
# ---------------------------------------------------------------------------------------------------

_MALLOC_KEEPS_FREED = False


def keep_freed_memory() -> bool:
    """Let this process's C heap keep the memory a chunk frees for the next chunk (glibc only; once per process).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``),
    which also freezes glibc's mmap threshold at 128 KiB: every array of a chunk (tens of MB) is then a fresh
    ``mmap`` whose pages fault in again, ~3e5 page faults per 1e7 visibilities, +30-40 % task time on the pass
    (measured on one core: 6.0-7.1 s against 4.4-5.1 s per 1e7 visibilities). Raising both thresholds to 1 GiB
    makes freed arrays reusable: the worker's RSS stays at one chunk's working set (bounded by the chunk size,
    flat in K; the ingest benchmark reports it) instead of going down between chunks. Returns whether it was set."""
    global _MALLOC_KEEPS_FREED
    if _MALLOC_KEEPS_FREED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
        _MALLOC_KEEPS_FREED = bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc
        _MALLOC_KEEPS_FREED = False
    return _MALLOC_KEEPS_FREED


def ingest_group_task(path: str, fingerprint: str, group: int, chunk_ids: list, source, dirty_image: bool,
                      lattice: bool):
    """Read the group's chunks one by one, sum their partials in chunk order, write them as leaf node
    (0, group); return (scalar sums, checksum, seconds, {part: seconds}) with the parts ``reading`` (the source's
    read_chunk), ``sums``, ``nufft_inputs`` and ``nufft`` (:func:`~wtilde_dask.kernels.visibility_sums.chunk_partial`)."""
    from wtilde_dask.kernels.visibility_sums import chunk_partial, partial_arrays, sum_partials

    keep_freed_memory()
    hit = worker_inputs(path, fingerprint)
    store, grid = hit["store"], hit["grid"]
    t0 = time.perf_counter()
    parts = {"reading": 0.0}

    def partials():
        for chunk_id in chunk_ids:
            t = time.perf_counter()
            c = source.read_chunk(chunk_id)
            parts["reading"] += time.perf_counter() - t
            yield chunk_partial(c.uv_wavelengths, c.visibilities, c.noise_map, grid, dirty_image=dirty_image,
                                lattice=lattice, n_flagged=c.n_flagged, n_bad_weight=c.n_bad_weight, nthreads=1,
                                timings=parts)

    total = sum_partials(partials())
    checksum = store.write_ingest_arrays(0, group, partial_arrays(total))
    return total.scalars(), checksum, time.perf_counter() - t0, parts


def ingest_combine_task(path: str, fingerprint: str, level: int, index: int, children: list):
    """Node (level, index) = left child + right child (``children``: [(level, index, checksum, scalars)], left
    first); written to the store; returns (scalar sums, checksum, seconds, {})."""
    from wtilde_dask.kernels.visibility_sums import VisibilityPartial, add_partials, partial_arrays

    store = worker_inputs(path, fingerprint)["store"]
    t0 = time.perf_counter()
    parts = []
    for c_level, c_index, checksum, scalars in children:
        arrays = store.read_ingest_node(c_level, c_index, checksum)
        parts.append(VisibilityPartial(**{k: scalars[k] for k in VisibilityPartial().scalars()}, **arrays))
    total = add_partials(parts[0], parts[1])
    checksum = store.write_ingest_arrays(level, index, partial_arrays(total))
    return total.scalars(), checksum, time.perf_counter() - t0, {}
