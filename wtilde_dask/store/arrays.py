"""Named arrays beside W-tilde: the dirty image, the lattice kernels, inversion results (``write_array``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import zarr

from wtilde_dask.errors import StoreError
from wtilde_dask.store.layout import LOCK_GROUP, RESERVED_NAMES

class NamedArrays:
    """Named arrays of a :class:`~wtilde_dask.store.WTildeStore` (uses its ``path`` and ``group``)."""

    def write_array(self, name: str, array, *, attrs: dict | None = None, chunks="auto") -> None:
        """Write (replace) a named array: "dirty_image", "kernel", "kernel_hankel", "inversion/NAME", ...

        Names containing "/" create subgroups. Reserved: inputs/*, w_tilde, ledger*, lock.
        """
        parts = [p for p in str(name).split("/") if p]
        if not parts or parts[0] in RESERVED_NAMES:
            raise StoreError(f"array name {name!r}: reserved or empty")
        group = self.group
        for part in parts[:-1]:
            group = group.require_group(part)
        data = np.asarray(array)
        try:
            group.create_array(parts[-1], data=data, chunks=chunks, overwrite=True,
                               attributes=dict(attrs or {}))
        except BaseException:  # e.g. disk full: no half-written array that has_array() would call present
            self.delete_array("/".join(parts))
            raise

    def delete_array(self, name: str) -> None:
        """Remove a named array written with :meth:`write_array` (a damaged one is then recomputed)."""
        parts = [p for p in str(name).split("/") if p]
        if not parts or parts[0] in RESERVED_NAMES:
            raise StoreError(f"array name {name!r}: reserved or empty")
        shutil.rmtree(self.path.joinpath(*parts), ignore_errors=True)

    def read_array(self, name: str) -> np.ndarray:
        """Read a named array written with :meth:`write_array` (or an input such as "inputs/mask")."""
        if not self.has_array(name):
            raise StoreError(f"store {self.path}: no array {name!r}")
        return np.asarray(zarr.open_array(store=str(self.path), path=name, mode="r")[...])

    def array_attrs(self, name: str) -> dict:
        return dict(zarr.open_array(store=str(self.path), path=name, mode="r").attrs)

    def has_array(self, name: str) -> bool:
        meta = self.path / name / "zarr.json"
        if not meta.exists():
            return False
        with open(meta) as fh:
            return json.load(fh).get("node_type") == "array"

    def array_names(self) -> list[str]:
        """Names of all arrays in the store (relative paths), inputs and ledger included."""
        names = []
        for meta in sorted(self.path.rglob("zarr.json")):
            rel = meta.parent.relative_to(self.path).as_posix()
            if rel == "." or rel.startswith(LOCK_GROUP):
                continue
            with open(meta) as fh:
                if json.load(fh).get("node_type") == "array":
                    names.append(rel)
        return names
