"""The visibility pass's tree in ``ingest/``: its plan and state, and the nodes (partial sums) of the fixed
summation tree, with the attrs that are the pass's ledger."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import zarr

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.errors import StoreError
from wtilde_dask.store.layout import INGEST_GROUP, _now, arrays_checksum

class IngestNodes:
    """The ``ingest/`` group of a :class:`~wtilde_dask.store.WTildeStore` (uses its ``path``, ``write_array``,
    ``update_attrs``)."""

    # Used by wtilde_dask.ingest: leaf nodes are chunk groups, parents the sums of their two children in a tree
    # fixed by the plan; node arrays are written by the worker that computed them, the node's attrs (complete,
    # checksum, scalar sums) by the orchestrator after that write returned: they are the ledger of the pass.

    def _ingest_dir(self) -> pathlib.Path:
        return self.path / INGEST_GROUP

    def _node_dir(self, level: int, index: int) -> pathlib.Path:
        return self._ingest_dir() / "nodes" / f"L{int(level)}_{int(index)}"

    def ingest_state(self) -> dict:
        """Attributes of ``ingest/`` (``plan``, ``state``: "running" | "complete"), {} before any pass."""
        meta = self._ingest_dir() / "zarr.json"
        if not meta.exists():
            return {}
        with open(meta) as fh:
            return dict(json.load(fh).get("attributes", {}))

    def pass_chunk_size(self) -> int:
        """Visibilities per chunk of the store's visibility pass (its plan), else the default 1e6: reading the source
        again in these chunks gives the pass's chunks (and, in row order, its order) exactly."""
        return int((self.ingest_state().get("plan") or {}).get("chunk_size") or DEFAULT_CHUNK_SIZE)

    def begin_ingest(self, plan: dict) -> bool:
        """Start (or resume) the pass with ``plan``: True when ``ingest/`` already holds a pass of the same plan
        (its finished nodes are kept), False when it was (re)created empty."""
        plan = json.loads(json.dumps(plan))
        if self.ingest_state().get("plan") == plan and (self._ingest_dir() / "nodes").is_dir():
            return True
        shutil.rmtree(self._ingest_dir(), ignore_errors=True)
        group = zarr.open_group(str(self._ingest_dir()), mode="w", zarr_format=3)
        group.create_group("nodes")
        group.attrs.update({"plan": plan, "state": "running", "started": _now()})
        return False

    def ingest_nodes(self) -> dict:
        """``{(level, index): attrs}`` of the finished nodes (attrs: checksum and the scalar sums)."""
        nodes = {}
        root = self._ingest_dir() / "nodes"
        if not root.is_dir():
            return nodes
        for entry in root.iterdir():
            if not (entry.name.startswith("L") and "_" in entry.name):
                continue
            try:
                with open(entry / "zarr.json") as fh:
                    attrs = json.load(fh).get("attributes", {})
                level, index = (int(x) for x in entry.name[1:].split("_"))
            except (OSError, ValueError, json.JSONDecodeError):
                continue  # torn or unfinished: recomputed
            if attrs.get("complete"):
                nodes[(level, index)] = attrs
        return nodes

    def write_ingest_arrays(self, level: int, index: int, arrays: dict) -> int:
        """Write a node's arrays (replacing any earlier attempt); return their checksum (:func:`arrays_checksum`)."""
        group = zarr.open_group(str(self._node_dir(level, index)), mode="w", zarr_format=3)
        for name, arr in sorted(arrays.items()):
            arr = np.ascontiguousarray(arr, dtype=np.float64)
            group.create_array(name, data=arr, chunks=arr.shape, compressors=None)
        return arrays_checksum(arrays)

    def mark_ingest_node(self, level: int, index: int, checksum: int, scalars: dict) -> None:
        """Record node (level, index) as finished (orchestrator only, after its arrays were written)."""
        group = zarr.open_group(str(self._node_dir(level, index)), mode="r+")
        group.attrs.update({**scalars, "checksum": int(checksum), "complete": True})

    def read_ingest_node(self, level: int, index: int, checksum: int | None = None) -> dict:
        """A node's arrays ``{name: array}``; with ``checksum``, a StoreError when they do not match it."""
        group = zarr.open_group(str(self._node_dir(level, index)), mode="r")
        arrays = {name: np.asarray(arr[...]) for name, arr in group.arrays()}
        if checksum is not None and arrays_checksum(arrays) != int(checksum):
            raise StoreError(f"store {self.path}: ingest node L{level}_{index}: arrays do not match their checksum")
        return arrays

    def delete_ingest_node(self, level: int, index: int) -> None:
        shutil.rmtree(self._node_dir(level, index), ignore_errors=True)

    def rename_ingest_node(self, level: int, index: int, new_level: int, new_index: int) -> None:
        """Move a finished node up the tree (a parent with one child is that child): one atomic rename."""
        target = self._node_dir(new_level, new_index)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(self._node_dir(level, index), target)

    def finish_ingest(self, arrays: dict, scalars: dict, definitions: dict) -> None:
        """Store the pass's totals: the named arrays (``definitions[name]`` as their attrs; "kernel" last, its
        presence means the lattice kernels are stored), attrs ``visibility_sums``; then mark ``ingest/`` complete
        and drop its nodes."""
        for name in sorted(arrays, key=lambda n: n == "kernel"):
            self.write_array(name, arrays[name], attrs={"definition": definitions.get(name, "")})
        dataset = {**self._attrs.get("dataset", {}), "n_visibilities": int(scalars["n_visibilities"])}
        self.update_attrs(visibility_sums=dict(scalars), dataset=dataset)
        group = zarr.open_group(str(self._ingest_dir()), mode="r+")
        group.attrs.update({"state": "complete", "finished": _now()})
        shutil.rmtree(self._ingest_dir() / "nodes", ignore_errors=True)
