"""The :class:`WTildeStore` class: creating and opening a store, its attributes and inputs; the rest of its
methods come from one module per job (ledger, ingest_nodes, arrays, views, reserve)."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import zarr

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.errors import StoreError
from wtilde_dask.store.arrays import NamedArrays
from wtilde_dask.store.fingerprint import (as_source, combined_fingerprint, describe_differences,
                                           fingerprint_components, source_summary)
from wtilde_dask.store.ingest_nodes import IngestNodes
from wtilde_dask.store.inputs import StoreInputsSource, _copy_source
from wtilde_dask.store.layout import (DTYPES, FORMAT_NAME, FORMAT_VERSION, LOCK_GROUP, METHODS, _LEDGER_CHUNK,
                                      _looks_like_store, _now, new_store_attrs)
from wtilde_dask.store.ledger import BlockLedger
from wtilde_dask.store.reserve import DiskReserve
from wtilde_dask.store.views import ArrayViews
from wtilde_dask.tiling import BlockPlan


class WTildeStore(BlockLedger, IngestNodes, NamedArrays, ArrayViews, DiskReserve):
    """One W-tilde store (a Zarr v3 group). Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path, group: zarr.Group, mode: str):
        self.path = pathlib.Path(path)
        self.group = group
        self.mode = mode
        attrs = dict(group.attrs)
        if attrs.get("wtilde_format") != FORMAT_NAME:
            raise StoreError(f"store {self.path}: not a W-tilde store (no wtilde_format attribute)")
        if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
            raise StoreError(f"store {self.path}: format_version {attrs.get('format_version')} is newer than "
                             f"this software's {FORMAT_VERSION}; upgrade wtilde_dask")
        self._attrs = attrs

    # ---- creation / opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, path, dataset, grid, *, method: str, block_size: int, dtype: str = "float64",
               overwrite: bool = False, copy_visibilities: bool | None = None) -> WTildeStore:
        """Write a new store for ``dataset`` on ``grid``: attrs, inputs/, empty w_tilde and ledger.

        ``dataset``: an Interferometer, or a :class:`~wtilde_dask.io.VisibilitySource` (its ``describe()`` is
        recorded in attrs ``source``). ``copy_visibilities``: also copy the visibilities into ``inputs/``
        (always for in-memory data, which cannot be read again; default True for an in-memory dataset, False for
        a file source, whose chunks are then read from the file: streamed here, in bounded memory).
        An existing store is refused unless ``overwrite`` (its content is deleted, a held lock kept).
        """
        from wtilde_dask.io import ArraySource

        source = as_source(dataset)
        in_memory = isinstance(source, ArraySource)
        copy_visibilities = True if in_memory else bool(copy_visibilities)
        path = pathlib.Path(path)
        if method not in METHODS:
            raise StoreError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
        if str(dtype) not in DTYPES:
            raise StoreError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        plan = BlockPlan(len(grid.grid_radians), int(block_size))
        if path.exists():
            if not path.is_dir():
                raise StoreError(f"store {path}: exists and is not a directory")
            entries = [p for p in path.iterdir() if p.name != LOCK_GROUP]
            if entries and not (path / "zarr.json").exists() and not _looks_like_store(path):
                raise StoreError(f"store {path}: exists and is not a W-tilde store; refusing to delete it")
            if entries and not overwrite:
                raise StoreError(f"store {path}: already exists; resume it, or pass overwrite=True (--overwrite) to start over")
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        components = fingerprint_components(source, grid, method=method, dtype=dtype, block_size=plan.block_size)
        attrs = new_store_attrs(source, source.describe(), grid, plan, method=method, dtype=dtype,
                                components=components, in_memory=in_memory, copy_visibilities=copy_visibilities)
        group = zarr.open_group(str(path), mode="a", zarr_format=3)
        inputs = group.create_group("inputs", overwrite=True)
        if in_memory:
            dataset = source.dataset
            vis = np.asarray(dataset.visibilities, np.complex128)
            noise = np.asarray(dataset.noise_map, np.complex128)
            inputs.create_array("uv_wavelengths", data=np.asarray(dataset.uv_wavelengths, np.float64))
            inputs.create_array("visibilities", data=np.stack([vis.real, vis.imag], axis=1))
            inputs.create_array("noise_map", data=np.stack([noise.real, noise.imag], axis=1))
        elif copy_visibilities:
            attrs["dataset"]["n_visibilities"] = _copy_source(inputs, source)
        inputs.create_array("grid_radians", data=np.asarray(grid.grid_radians, np.float64))
        if grid.mask is not None:
            inputs.create_array("mask", data=np.asarray(grid.mask, bool))
        if grid.lattice_indices is not None:
            inputs.create_array("lattice_indices", data=np.asarray(grid.lattice_indices, np.int64))
        inputs.attrs.update({
            "name": attrs["dataset"]["name"],
            "pixel_scales": attrs["grid"]["pixel_scales"],
            "shape_native": attrs["grid"]["shape_native"],
            "visibilities_columns": ["real", "imag"],
            "noise_map_columns": ["sigma_real", "sigma_imag"],
        })
        M, B, nb = plan.n_pixels, plan.block_size, plan.n_blocks_side
        group.create_array("w_tilde", shape=(M, M), chunks=(min(B, M), min(B, M)), dtype=str(dtype),
                           fill_value=np.nan, compressors=None, dimension_names=("pixel_i", "pixel_j"),
                           attributes={"stored_blocks": "upper triangle, bi <= bj"})
        lc = min(nb, _LEDGER_CHUNK)
        group.create_array("ledger", shape=(nb, nb), chunks=(lc, lc), dtype="uint64", fill_value=0)
        group.create_array("ledger_seconds", shape=(nb, nb), chunks=(lc, lc), dtype="float64", fill_value=np.nan)
        group.attrs.update(attrs)  # written last: a store without attrs is not a store
        return cls(path, zarr.open_group(str(path), mode="r+"), "r+")

    @classmethod
    def open(cls, path, mode: str = "r") -> WTildeStore:
        """Open an existing store (``mode`` "r" or "r+")."""
        path = pathlib.Path(path)
        if not (path / "zarr.json").exists():
            raise StoreError(f"store {path}: no W-tilde store there (no zarr.json)")
        if mode not in ("r", "r+"):
            raise StoreError(f"mode: expected 'r' or 'r+', got {mode!r}")
        return cls(path, zarr.open_group(str(path), mode=mode), mode)

    @classmethod
    def open_for_run(cls, path, fingerprint: str) -> WTildeStore:
        """Open a store for writing from a task of the run that owns ``fingerprint``; refuse one overwritten since."""
        store = cls.open(path, mode="r+")
        if store.fingerprint != fingerprint:
            raise StoreError(f"store {path}: fingerprint changed under the run "
                             f"({store.fingerprint[:12]} != {fingerprint[:12]}); it was overwritten")
        return store

    def check_inputs(self, dataset, grid, *, method: str, block_size: int, dtype: str = "float64") -> None:
        """Raise StoreError naming every input that differs from what the store was built from."""
        given = fingerprint_components(dataset, grid, method=method, dtype=dtype, block_size=block_size)
        if combined_fingerprint(given) == self.fingerprint:
            return
        lines = describe_differences(self._attrs.get("fingerprint_components", {}), given)
        raise StoreError(
            f"store {self.path} was built from different inputs; differs: "
            + ", ".join(line.split(":")[0] for line in lines) + "\n  " + "\n  ".join(lines)
            + "\n  use another --out, or --overwrite (overwrite=True) to start over")

    # ---- attributes --------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    def refresh_attrs(self) -> dict:
        self.group = zarr.open_group(str(self.path), mode=self.mode)
        self._attrs = dict(self.group.attrs)
        return self.attrs

    def update_attrs(self, **values) -> None:
        values.setdefault("updated", _now())
        self.group.attrs.update(values)
        self._attrs.update(values)

    @property
    def fingerprint(self) -> str:
        return self._attrs["fingerprint"]

    @property
    def method(self) -> str:
        return self._attrs["method"]

    @property
    def dtype(self) -> str:
        return self._attrs["dtype"]

    @property
    def block_size(self) -> int:
        return int(self._attrs["block_size"])

    @property
    def n_pixels(self) -> int:
        return int(self._attrs["n_pixels"])

    @property
    def plan(self) -> BlockPlan:
        return BlockPlan(self.n_pixels, self.block_size)

    # ---- inputs ------------------------------------------------------------------------------------
    @property
    def copied_visibilities(self) -> bool:
        """True when ``inputs/`` holds the visibilities (old stores always do)."""
        return bool(self._attrs.get("copied_visibilities", True))

    def source_record(self) -> dict:
        """The recorded source (the reader's describe()); ``{"format": "arrays", ...}`` for in-memory data."""
        return dict(self._attrs.get("source") or {"format": "arrays", "path": self._attrs.get("dataset", {}).get("name")})

    def visibility_sums(self) -> dict | None:
        """``{chi_squared_data, noise_normalization, n_visibilities, n_flagged, n_bad_weight}`` once the pass is done."""
        sums = self._attrs.get("visibility_sums")
        return dict(sums) if sums else None

    def inputs_source(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> StoreInputsSource:
        """The copied visibilities in ``inputs/`` as a chunked :class:`~wtilde_dask.io.VisibilitySource`."""
        if not self.copied_visibilities:
            raise StoreError(f"store {self.path}: the visibilities are not copied into inputs/ "
                             f"(source: {source_summary(self.source_record())})")
        return StoreInputsSource(self.path, chunk_size)

    def dataset(self):
        """The Interferometer the store was built from: read back from inputs/, or -- when the visibilities were not
        copied -- read through the recorded source (:func:`wtilde_dask.io.reopen_source`; this materialises all
        visibilities in memory: small data only; stream :func:`wtilde_dask.ingest.store_source` instead)."""
        from wtilde_dask.dataset import Interferometer

        if not self.copied_visibilities:
            from wtilde_dask.io import concatenate_chunks, reopen_source

            c = concatenate_chunks(reopen_source(self.source_record(), self.pass_chunk_size(), owner=f"store {self.path}"))
            return Interferometer.from_arrays(c.visibilities, c.noise_map, c.uv_wavelengths,
                                              name=str(self.source_record().get("path", "")))
        inputs = self.group["inputs"]
        vis = np.asarray(inputs["visibilities"][:])
        noise = np.asarray(inputs["noise_map"][:])
        return Interferometer.from_arrays(
            visibilities=vis[:, 0] + 1j * vis[:, 1],
            noise_map=noise[:, 0] + 1j * noise[:, 1],
            uv_wavelengths=np.asarray(inputs["uv_wavelengths"][:]),
            name=str(inputs.attrs.get("name", "")),
        )

    def grid(self):
        """The ImageGrid the store was built from (read back from inputs/)."""
        from wtilde_dask.grid import ImageGrid

        inputs = self.group["inputs"]
        grid_radians = np.asarray(inputs["grid_radians"][:])
        mask = np.asarray(inputs["mask"][:]) if "mask" in inputs else None
        lattice = np.asarray(inputs["lattice_indices"][:]) if "lattice_indices" in inputs else None
        scales = inputs.attrs.get("pixel_scales")
        return ImageGrid(grid_radians=grid_radians, mask=mask,
                         pixel_scales=None if scales is None else tuple(float(s) for s in scales),
                         lattice_indices=lattice)


    # ---- sizes -------------------------------------------------------------------------------------
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def __repr__(self) -> str:
        return (f"WTildeStore({str(self.path)!r}, method={self.method!r}, M={self.n_pixels}, "
                f"B={self.block_size}, done={self.n_done()}/{self.plan.n_blocks})")


def open_w_tilde(path, allow_incomplete: bool = False):
    """The W-tilde of the store at ``path`` as a lazy ``xarray.DataArray`` (M, M), y/x arcsec coords."""
    return WTildeStore.open(path).to_xarray(allow_incomplete=allow_incomplete)
