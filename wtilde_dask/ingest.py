"""The chunked pass over the visibilities: one Dask pass, resumable, bit-identical on every rerun.

Everything W-tilde needs from the visibilities is a sum over them (:mod:`wtilde_dask.kernels.visibility_sums`):
chi2_data, the noise normalisation, K and the dropped counts, the dirty image and, for the lattice method, the
offset and Hankel kernels. This module moves that work; it does no maths of its own.

* **Plan.** The source's chunks (``VisibilitySource.chunk_ids()``, each bounded in size) are cut into
  ``n_groups`` consecutive groups of ``group_chunks`` chunks (at most ``max_groups`` groups, default 256). One
  Dask task per group reads its chunks one at a time (memory: one chunk plus the partial sums, whatever K is),
  sums their partials in chunk order and writes the group's partial to the store.
* **Tree sum.** Groups are the leaves of a fixed binary tree: node (level, index) covers groups
  ``[index 2^level, (index+1) 2^level)``; a parent is ``left + right`` (a parent with one child *is* that child).
  The order of every addition is fixed by the plan, not by which task finishes first, so a rerun -- or a run
  killed and resumed -- gives the same bits. A parent is computed (a small task) as soon as both children are
  stored, then the children are deleted: the store holds O(in-flight x depth) partials, never one per group.
* **Ledger.** A node counts as done when the orchestrator has marked it complete in the store (its arrays'
  checksum and scalar sums in its attrs, written after the worker's write returned). A killed pass resumes from
  the finished nodes: only groups not covered by one are read again.
* **Order.** The sums do not care about the order of the visibilities, so :func:`open_source` opens a Measurement
  Set / UVFITS file with ``order="rows"`` (chunks of rows with all their selected channels: every cell read once;
  the recipe's channel-by-channel order reads a large window once per channel, ~10x slower: io/ms.py). The store
  records the order (``describe()["order"]``) and the pass its chunk size; :func:`store_source` opens the source
  again with both (the same chunks, the same bits), and a store made in another order is resumed in its own
  (:func:`in_store_order`). ``wtilde export-fits`` and ``load_dataset`` keep the recipe's order.
* **Worker memory.** A group task first calls :func:`keep_freed_memory` (glibc ``mallopt``): under Dask's nanny
  every chunk array would otherwise be a fresh ``mmap`` faulted in page by page (+30-40 % task time).
* The plan (chunk list, chunk size, group size, what is summed) is stored with the pass; a rerun with another plan (say
  another ``--chunk-size``) starts the pass over. Different chunkings agree to rounding (<= 1e-12 relative,
  tested), one chunking is bit-identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time


from wtilde_dask import config
from wtilde_dask.constants import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_GROUPS
from wtilde_dask.io import ArraySource, VisibilitySource, open_visibilities
from wtilde_dask.io.open import recorded_selection, reopen_source
from wtilde_dask.store import StoreError, WTildeStore
from wtilde_dask.submit import SubmitLoop, progress_bar
from wtilde_dask.worker import ingest_combine_task, ingest_group_task, keep_freed_memory  # noqa: F401 (re-exported)
from wtilde_dask.errors import IngestError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

__all__ = ["IngestError", "IngestPlan", "make_plan", "run_pass", "open_source", "default_copy_visibilities",
           "store_source", "in_store_order", "in_memory_partial", "tree_depth", "keep_freed_memory",
           "pass_progress", "DEFAULT_MAX_GROUPS"]


DEFINITIONS = {
    "dirty_image": "d_i = sum_k [wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik)]",
    "kernel": "offset kernel of (wr+wi)/2, see wtilde_dask.kernels.lattice",
    "kernel_hankel": "index-sum kernel of (wr-wi)/2, see wtilde_dask.kernels.lattice",
}


# ---------------------------------------------------------------------------------------------------
# The plan and the tree (index arithmetic only)
# ---------------------------------------------------------------------------------------------------


def tree_depth(n_groups: int) -> int:
    """Level of the root of the tree over ``n_groups`` leaves (0 for one group)."""
    return max(0, (int(n_groups) - 1).bit_length())


def _exists(level: int, index: int, n_groups: int) -> bool:
    return (index << level) < n_groups


def _covered(level: int, index: int) -> range:
    return range(index << level, (index + 1) << level)


class IngestPlan:
    """Chunks -> groups -> tree, and what the pass sums (dirty image, lattice kernels; the scalars always)."""

    def __init__(self, chunk_ids: list, group_chunks: int, *, dirty_image: bool, lattice: bool,
                 chunk_size: int | None = None):
        self.chunk_ids = [list(c) if isinstance(c, tuple) else c for c in chunk_ids]
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.group_chunks = int(group_chunks)
        self.n_groups = -(-len(self.chunk_ids) // self.group_chunks)
        self.dirty_image = bool(dirty_image)
        self.lattice = bool(lattice)
        self.depth = tree_depth(self.n_groups)

    def group(self, g: int) -> list:
        return self.chunk_ids[g * self.group_chunks:(g + 1) * self.group_chunks]

    def record(self) -> dict:
        ids = json.dumps(self.chunk_ids, default=str)
        return {"n_chunks": len(self.chunk_ids), "chunk_size": self.chunk_size, "group_chunks": self.group_chunks,
                "n_groups": self.n_groups,
                "chunk_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(), "dirty_image": self.dirty_image,
                "lattice": self.lattice, "tree": "fixed binary tree over groups, parent = left + right"}


def make_plan(source, *, dirty_image: bool, lattice: bool, max_groups: int = DEFAULT_MAX_GROUPS) -> IngestPlan:
    """The plan of a pass over ``source``: at most ``max_groups`` groups of consecutive chunks."""
    chunk_ids = list(source.chunk_ids())
    if int(max_groups) < 1:
        raise ValueError(f"max_groups = {max_groups!r} must be >= 1")
    group_chunks = max(1, -(-len(chunk_ids) // int(max_groups)))
    return IngestPlan(chunk_ids, group_chunks, dirty_image=dirty_image, lattice=lattice,
                      chunk_size=getattr(source, "chunk_size", None))


# ---------------------------------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------------------------------


def run_pass(store: WTildeStore, client, source, *, dirty_image: bool, lattice: bool,
             max_groups: int | None = None, max_in_flight: int | None = None, progress: bool = True,
             log=None, stats: dict | None = None) -> dict:
    """Run (or resume, or skip when done) the pass over ``source`` into ``store``; return the visibility sums.

    ``dirty_image`` / ``lattice``: also sum the dirty image / the lattice kernels (those already stored are not
    recomputed). Raises :class:`IngestError` when no visibility is left (all flagged or zero weight).
    ``stats``: a dict filled with the task seconds summed over the workers of this run: ``task`` (all tasks),
    ``reading``, ``sums``, ``nufft_inputs``, ``nufft`` (see :func:`ingest_group_task`).
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    want_dirty = bool(dirty_image) and not store.has_array("dirty_image")
    want_lattice = bool(lattice) and not store.has_array("kernel")
    state = store.ingest_state()
    if not want_dirty and not want_lattice and store.visibility_sums() is not None:
        if state.get("state") == "complete":
            log("visibility pass: already done (sums and arrays stored)")
        return store.visibility_sums()
    plan = make_plan(source, dirty_image=want_dirty, lattice=want_lattice,
                     max_groups=config.get("max-groups") if max_groups is None else max_groups)
    if plan.n_groups == 0:
        raise IngestError(f"{source_label(source)}: no visibilities to read (the selection is empty)")
    run = _Pass(store, client, source, plan, max_in_flight=max_in_flight, progress=progress, log=log)
    try:
        return run.run()
    finally:
        if stats is not None:
            stats.update(task=run.seconds, **run.parts)


def pass_progress(store: WTildeStore) -> dict | None:
    """Progress of the visibility pass read from the store alone (a live run or a dead one), for ``wtilde status``.

    None before any pass; else ``{"state": "running" | "complete", "n_groups", "n_chunks", "chunk_size",
    "groups_done", "visibilities_read"}``: the groups covered by finished tree nodes (the pass's ledger) and the
    visibilities they read (used + flagged + dropped). A "running" state with no live run is a killed pass: the
    next ``wtilde compute`` resumes it from those nodes.
    """
    state = store.ingest_state()
    if not state:
        return None
    plan = state.get("plan") or {}
    n_groups = int(plan.get("n_groups", 0))
    counts = ("n_visibilities", "n_flagged", "n_bad_weight")  # used + flagged + dropped = read
    if state.get("state") == "complete":
        sums = store.visibility_sums() or {}
        groups_done, read = n_groups, sum(int(sums.get(k, 0)) for k in counts)
    else:
        nodes = store.ingest_nodes()
        groups_done = len({g for lv, ix in nodes for g in _covered(lv, ix) if g < n_groups})
        read = sum(int(a.get(k, 0)) for a in nodes.values() for k in counts)
    return {"state": state.get("state"), "n_groups": n_groups, "n_chunks": int(plan.get("n_chunks", 0)),
            "chunk_size": plan.get("chunk_size"), "groups_done": groups_done, "visibilities_read": read}


def source_label(source) -> str:
    from wtilde_dask.store import source_summary

    try:
        return source_summary(source.describe())
    except Exception:  # noqa: BLE001 - a label only
        return str(getattr(source, "path", source))


class _Pass:
    def __init__(self, store, client, source, plan: IngestPlan, *, max_in_flight, progress, log):
        from wtilde_dask.cluster import total_threads

        self.store, self.client, self.source, self.plan, self.log = store, client, source, plan, log
        self.path = str(store.path.resolve())
        self.fp = store.fingerprint
        self.threads = total_threads(client)
        self.max_in_flight = int(max_in_flight) if max_in_flight else max(2, 2 * self.threads)
        self.progress = progress
        self.nodes: dict = {}  # (level, index) -> attrs (checksum + scalars) of finished nodes
        self.loop: SubmitLoop | None = None  # the run's submit loop: its running futures -> g | ("combine", level, index)
        self.seconds = 0.0
        self.parts = {"reading": 0.0, "sums": 0.0, "nufft_inputs": 0.0, "nufft": 0.0}  # task seconds by part

    # ---- tree bookkeeping -----------------------------------------------------------------------------
    def _ancestor_done(self, level: int, index: int) -> bool:
        L = self.plan.depth
        while level < L:
            level, index = level + 1, index >> 1
            if (level, index) in self.nodes:
                return True
        return False

    def _after_stored(self, level: int, index: int) -> None:
        """Node (level, index) is stored: move it up while it has no sibling, combine when the sibling is stored."""
        n, L = self.plan.n_groups, self.plan.depth
        while level < L:
            sib = index ^ 1
            parent = (level + 1, index >> 1)
            if not _exists(level, sib, n):  # a parent with one child is that child
                self.store.rename_ingest_node(level, index, *parent)
                self.nodes[parent] = self.nodes.pop((level, index))
                level, index = parent
                continue
            if (level, sib) in self.nodes and not any(isinstance(v, tuple) and v[1:] == parent
                                                      for v in self.loop.running.values()):
                left, right = sorted([index, sib])
                children = [(level, i, self.nodes[(level, i)]["checksum"], self.nodes[(level, i)]) for i in (left, right)]
                fut = self.client.submit(ingest_combine_task, self.path, self.fp, *parent, children,
                                         key=f"ingest-combine-L{parent[0]}_{parent[1]}-{self.fp[:8]}", retries=3,
                                         pure=False)
                self.loop.track(fut, ("combine", *parent))
            return

    def _stored(self, level: int, index: int, scalars: dict, checksum: int) -> None:
        self.store.mark_ingest_node(level, index, checksum, scalars)
        self.nodes[(level, index)] = {**scalars, "checksum": int(checksum)}
        if level > 0:  # children are summed into the parent: drop them
            for child in (2 * index, 2 * index + 1):
                if (level - 1, child) in self.nodes:
                    self.nodes.pop((level - 1, child))
                    self.store.delete_ingest_node(level - 1, child)
        self._after_stored(level, index)

    # ---- the pass --------------------------------------------------------------------------------------
    def run(self) -> dict:
        store, plan = self.store, self.plan
        resumed = store.begin_ingest(plan.record())
        if resumed:
            found = store.ingest_nodes()
            # a node whose ancestor is stored is already summed into it (crash before its deletion)
            self.nodes = {k: {**v} for k, v in found.items()}
            for lv, ix in sorted(found):
                if self._ancestor_done(lv, ix):
                    self.nodes.pop((lv, ix))
                    store.delete_ingest_node(lv, ix)
        todo = [g for g in range(plan.n_groups)
                if not any(g in _covered(lv, ix) for lv, ix in self.nodes)]
        what = ["sums"] + (["dirty image"] if plan.dirty_image else []) + (["lattice kernels"] if plan.lattice else [])
        self.log(f"visibility pass ({', '.join(what)}): {source_label(self.source)}; {len(plan.chunk_ids)} chunks "
                 f"in {plan.n_groups} group(s) of {plan.group_chunks}; "
                 + (f"resuming: {plan.n_groups - len(todo)} group(s) already summed, " if resumed else "")
                 + f"{len(todo)} to read on {self.threads} worker thread(s)")
        t0 = time.monotonic()
        bar = progress_bar(self.progress, total=plan.n_groups, initial=plan.n_groups - len(todo), unit="group",
                           desc="visibilities")
        # the reader (a small picklable object: path, selection, chunk plan) travels with each task; not scattered,
        # so a worker lost mid-pass (a SLURM job ending) loses no data the other tasks depend on
        source_ref = self.source

        def submit_group(g: int):
            return self.client.submit(ingest_group_task, self.path, self.fp, g, plan.group(g), source_ref,
                                      plan.dirty_image, plan.lattice,
                                      key=f"ingest-group-{g}-{self.fp[:8]}", retries=3, pure=False)

        # the queue's items are group numbers; the combines are tracked beside them as ("combine", level, index)
        self.loop = SubmitLoop(self.client, todo, submit_group, max_in_flight=self.max_in_flight)
        try:
            with self.loop as loop:
                for lv, ix in sorted(self.nodes):  # finish the combines a killed run left undone
                    if (lv, ix) in self.nodes:
                        self._after_stored(lv, ix)
                loop.fill()
                for fut, kind in loop:
                    scalars, checksum, seconds, parts = fut.result()
                    self.seconds += seconds
                    for name, sec in parts.items():
                        self.parts[name] = self.parts.get(name, 0.0) + sec
                    if isinstance(kind, int):  # a group
                        self._stored(0, kind, scalars, checksum)
                        if bar is not None:
                            bar.update(1)
                        loop.submit_next()
                    else:
                        self._stored(kind[1], kind[2], scalars, checksum)
        finally:
            if bar is not None:
                bar.close()
        root = (plan.depth, 0)
        if root not in self.nodes:
            raise StoreError(f"store {store.path}: the visibility pass ended without its root node {root}")
        scalars = {k: v for k, v in self.nodes[root].items() if k not in ("checksum", "complete")}
        if int(scalars["n_visibilities"]) == 0:
            raise IngestError(f"{source_label(self.source)}: no visibilities left: {scalars['n_flagged']} flagged, "
                              f"{scalars['n_bad_weight']} with zero or non-finite weight; nothing to compute")
        arrays = store.read_ingest_node(*root, self.nodes[root]["checksum"])
        store.finish_ingest(arrays, scalars, DEFINITIONS)
        if "kernel" in arrays:
            self.log(f"lattice: kernel {arrays['kernel'].shape}"
                     + (" + Hankel kernel" if "kernel_hankel" in arrays else "") + " summed by the visibility pass")
        self.log(f"visibility pass: K = {scalars['n_visibilities']} visibilities used, {scalars['n_flagged']} flagged "
                 f"and {scalars['n_bad_weight']} zero/non-finite-weight dropped; {time.monotonic() - t0:.2f} s "
                 f"(task time {self.seconds:.2f} s, of which reading the source {self.parts['reading']:.2f} s, "
                 f"sums {self.parts['sums']:.2f} s, NUFFT inputs {self.parts['nufft_inputs']:.2f} s, NUFFTs "
                 f"{self.parts['nufft']:.2f} s)")
        return store.visibility_sums()


# ---------------------------------------------------------------------------------------------------
# Reading a store's visibilities again; the in-memory reference of the pass
# ---------------------------------------------------------------------------------------------------


COPIED_FORMATS = ("arrays", "fits-folder", "npz")


def open_source(dataset, *, chunk_size: int | None = None, order: str | None = None, **selection):
    """A :class:`~wtilde_dask.io.VisibilitySource` from what :func:`wtilde_dask.compute` accepts: a source (as is),
    an Interferometer (served from memory), or a path / "sma" (:func:`wtilde_dask.io.open_visibilities`:
    Measurement Set, UVFITS, PyAutoLens FITS folder, .npz) with the selection (field, spw, channels, column).

    ``chunk_size`` (default: ``dask.config`` ``wtilde.chunk-size``, 1e6) visibilities per chunk.
    ``order``: how a Measurement Set / UVFITS file is read (ignored for the other formats). Default
    (``wtilde.read-order``) ``"rows"``:
    chunks of rows with all their selected channels, every cell read once -- the same visibilities as the PyAutoLens
    recipe's order, in another order, which the pass's sums and the direct blocks do not care about (10x faster
    to read on large windows; io/ms.py). ``"recipe"`` reads in the recipe's order (what ``wtilde export-fits`` and
    :func:`~wtilde_dask.dataset.load_dataset` give). The store records it (``describe()["order"]``) and
    :func:`store_source` opens the source again with it."""
    from wtilde_dask.dataset import Interferometer

    if isinstance(dataset, VisibilitySource):
        return dataset
    chunk_size = chunk_size or config.get("chunk-size")
    if isinstance(dataset, Interferometer):
        return ArraySource(dataset, chunk_size)
    selection = {k: v for k, v in selection.items() if v is not None}
    order = order or config.get("read-order")
    return open_visibilities(dataset, chunk_size=chunk_size, order=order, **selection)


def in_store_order(source, out):
    """``source`` as the existing store ``out`` reads it: when ``out`` was made from the same Measurement Set /
    UVFITS selection read in another order (say a store made before ``order="rows"`` became the default), the
    source opened again in the store's order, so that a resume continues the same pass bit for bit; else
    ``source`` unchanged (a different source is then refused by the fingerprint check, as before)."""
    import pathlib

    order = getattr(source, "order", None)
    if order is None or not (pathlib.Path(out) / "zarr.json").exists():
        return source
    try:
        record = WTildeStore.open(out).source_record()
    except Exception:  # noqa: BLE001 - not a store / unreadable: the caller's checks say why
        return source
    if record.get("order") in (None, order) or record.get("path") != source.describe().get("path"):
        return source
    selection = recorded_selection(record)
    if record.get("format") == "measurement-set" and record.get("noise_column"):
        selection["noise_column"] = record["noise_column"]  # the column the store's reader used
    try:
        again = open_visibilities(record["path"], chunk_size=getattr(source, "chunk_size", DEFAULT_CHUNK_SIZE),
                                  order=record["order"], **selection)
    except Exception:  # noqa: BLE001 - keep the caller's source; the fingerprint check names the difference
        return source
    mine = {k: v for k, v in source.describe().items() if k != "order"}
    theirs = {k: v for k, v in again.describe().items() if k != "order"}
    same = json.dumps(mine, sort_keys=True, default=str) == json.dumps(theirs, sort_keys=True, default=str)
    return again if same else source


def default_copy_visibilities(source) -> bool:
    """Whether a store copies the visibilities by default: yes for in-memory data and the small PyAutoLens formats
    (FITS folder, .npz, the bundled sma: today's self-contained store), no for Measurement Sets / UVFITS."""
    try:
        return source.describe().get("format") in COPIED_FORMATS
    except Exception:  # noqa: BLE001
        return False


def store_source(store: WTildeStore, chunk_size: int | None = None):
    """The visibilities of a store as a chunked source: the copy in ``inputs/``, or the recorded source opened
    again with its recorded selection and order (refused when the source's record -- sizes, mtimes -- changed).

    ``chunk_size``: default the one of the store's visibility pass (so that direct blocks repaired later sum the
    same chunks, bit for bit), else 1e6."""
    if chunk_size is None:
        chunk_size = store.pass_chunk_size()
    if store.copied_visibilities:
        return store.inputs_source(chunk_size)
    return reopen_source(store.source_record(), chunk_size, owner=f"store {store.path}")


def in_memory_partial(source, grid, *, dirty_image: bool = True, lattice: bool = False):
    """The pass done in this process, chunk after chunk in order (no Dask, no store): a reference for tests and
    benchmarks. Returns a :class:`~wtilde_dask.kernels.visibility_sums.VisibilityPartial`."""
    from wtilde_dask.kernels.visibility_sums import chunk_partial, sum_partials

    return sum_partials(chunk_partial(c.uv_wavelengths, c.visibilities, c.noise_map, grid, dirty_image=dirty_image,
                                      lattice=lattice, n_flagged=c.n_flagged, n_bad_weight=c.n_bad_weight)
                        for c in source)
