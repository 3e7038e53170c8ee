"""The store's format: its name and version, the reserved paths, the checksums and the group attributes a new
store is written with (the layout itself is specified in the package docstring and docs/store-format.md)."""

from __future__ import annotations

import datetime as _dt
import pathlib
import platform
import zlib
from importlib import metadata

import numpy as np

from wtilde_dask.constants import RADIANS_TO_ARCSEC
from wtilde_dask.store.fingerprint import combined_fingerprint

FORMAT_NAME = "wtilde_dask.store"
FORMAT_VERSION = 1
DTYPES = ("float64", "float32")
METHODS = ("direct", "lattice")
LOCK_GROUP = "lock"
RESERVE_FILE = ".wtilde-reserve"  # space a run holds back to record its ledger when the disk fills
INGEST_GROUP = "ingest"
RESERVED_NAMES = ("inputs", "w_tilde", "ledger", "ledger_seconds", LOCK_GROUP, INGEST_GROUP)  # not named arrays
_LEDGER_CHUNK = 64
ARCSEC_PER_RADIAN = RADIANS_TO_ARCSEC


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


CHECKSUM = "crc32 << 32 | adler32 of the block's C-order bytes (0 means not done)"


def block_checksum(array: np.ndarray) -> int:
    """uint64 checksum of a block's values: ``crc32 << 32 | adler32`` of its C-order bytes; never 0.

    Two fast 32-bit checksums (~2 GB/s each, several times faster than the chunk write) rather than a
    cryptographic hash: the ledger guards against torn or altered chunk files, not against an adversary.
    """
    data = memoryview(np.ascontiguousarray(array)).cast("B")
    value = (zlib.crc32(data) << 32) | zlib.adler32(data)
    return value or 1


def arrays_checksum(arrays: dict) -> int:
    """uint64 checksum of named arrays (names and float64 C-order bytes, in name order); never 0."""
    crc, adler = 0, 1
    for name in sorted(arrays):
        for data in (name.encode(), memoryview(np.ascontiguousarray(arrays[name], dtype=np.float64)).cast("B")):
            crc, adler = zlib.crc32(data, crc), zlib.adler32(data, adler)
    return ((crc << 32) | adler) or 1



def _software_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("wtilde_dask", "numpy", "jax", "dask", "distributed", "zarr", "xarray", "finufft"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _looks_like_store(path: pathlib.Path) -> bool:
    return (path / "w_tilde").is_dir() or (path / "ledger").is_dir()


def new_store_attrs(source, record: dict, grid, plan, *, method: str, dtype: str, components: dict,
                    in_memory: bool, copy_visibilities: bool) -> dict:
    """The group attributes of a new store (see the package docstring): format, sizes, fingerprint and its
    components, dataset / source / grid summaries, software versions, times, units and the checksum's definition."""
    created = _now()
    return {
        "wtilde_format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "method": method,
        "dtype": str(dtype),
        "n_pixels": plan.n_pixels,
        "block_size": plan.block_size,
        "n_blocks_side": plan.n_blocks_side,
        "n_blocks": plan.n_blocks,
        "fingerprint": combined_fingerprint(components),
        "fingerprint_components": components,
        "dataset": {"name": str(getattr(source, "path", "") or ""),
                    "n_visibilities": (source.dataset.n_visibilities if in_memory else record.get("n_visibilities"))},
        "source": record,
        "copied_visibilities": bool(copy_visibilities),
        "grid": {
            "n_pixels": plan.n_pixels,
            "is_lattice": bool(grid.is_lattice),
            "shape_native": None if grid.mask is None else list(np.shape(grid.mask)),
            "pixel_scales": None if grid.pixel_scales is None else [float(s) for s in grid.pixel_scales],
        },
        "software": _software_versions(),
        "created": created,
        "updated": created,
        "units": {"w_tilde": "1/Jy^2 (weights 1/sigma^2)", "grid": "radians", "pixel_scales": "arcsec"},
        "checksum": CHECKSUM,
    }
