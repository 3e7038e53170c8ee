"""The W-tilde store: one self-describing Zarr v3 group on disk (the only module that knows its layout).

Layout of ``STORE.zarr`` (specified in docs/store-format.md)::

    zarr.json                 group attrs: wtilde_format, format_version, method, dtype, n_pixels (M),
                              block_size (B), n_blocks_side (nb), n_blocks, fingerprint (sha256) and
                              fingerprint_components, dataset / grid summaries, software versions,
                              created / updated, last_run
    inputs/                   what the workers read (nothing large travels through the scheduler)
      uv_wavelengths          (K, 2) float64, (u, v) in wavelengths          } only when the visibilities are
      visibilities            (K, 2) float64, (real, imag) [Jy]              } copied (attrs copied_visibilities);
      noise_map               (K, 2) float64, (sigma_real, sigma_imag) [Jy]  } else attrs "source" says where they are
      grid_radians            (M, 2) float64, (y, x) of the unmasked pixels [rad]
      mask                    (ny, nx) bool, True = masked (lattice grids only)
      lattice_indices         (M, 2) int64, (row, col) of each pixel in the (ny, nx) lattice
                              inputs attrs: pixel_scales (sy, sx) [arcsec], shape_native, name
    w_tilde                   (M, M) float64 (or float32), chunks (B, B), no compression;
                              only the blocks (bi, bj) with bi <= bj are written
    ledger                    (nb, nb) uint64: checksum of block (bi, bj) once written, 0 = not done
    ledger_seconds            (nb, nb) float64: seconds the block's task took (compute + write)
    dirty_image               (M,) float64, d_i = sum_k [wr Re(V) cos(phi_ik) - wi Im(V) sin(phi_ik)]
    kernel, kernel_hankel     lattice offset / Hankel kernels (method "lattice")
    inversion/...             results written by the inversion (write_array("inversion/NAME", ...))
    lock/zarr.json            present while a run holds the store: attrs host, pid, started, lease_until
    .wtilde-reserve           while a run is live: a few hundred KiB of allocated space, deleted when the
                              disk fills so that the ledger can still record every finished block
    ingest/                   the chunked pass over the visibilities (wtilde_dask.ingest): attrs plan, state
      nodes/L{l}_{i}/         one finished node of the fixed summation tree over chunk groups: arrays
                              dirty_image, kernel, kernel_hankel (those asked for); attrs complete, checksum and
                              the scalar sums (written by the orchestrator after the arrays: the ingest ledger)

Group attrs also hold ``source`` (the reader's describe(): format, path, selection, noise column, sizes /
mtimes), ``copied_visibilities`` and, once the pass is done, ``visibility_sums`` (chi_squared_data,
noise_normalization, n_visibilities, n_flagged, n_bad_weight): with them a store is all an inversion needs.

The ledger is written only by the orchestrator, after a block's write returned: a crash between the
two means the block is computed again (block tasks are idempotent).
A done block is trusted when its chunk file exists with the size of an uncompressed (B, B) chunk and,
when read, hashes to its ledger checksum (:meth:`WTildeStore.block_damage`); a bad one is cleared
(:meth:`WTildeStore.clear_blocks` with ``delete_chunks``) and computed again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import hashlib
import json
import os
import pathlib
import platform
import shutil
import socket
import threading
import time
import uuid
import zlib
from importlib import metadata

import numpy as np
import zarr

from wtilde_dask.io.base import VisibilityChunk, VisibilitySource
from wtilde_dask.tiling import BlockPlan
from wtilde_dask.constants import DEFAULT_CHUNK_SIZE, RADIANS_TO_ARCSEC
from wtilde_dask.errors import StoreError, StoreLockedError  # noqa: F401 (re-exported)

FORMAT_NAME = "wtilde_dask.store"
FORMAT_VERSION = 1
DTYPES = ("float64", "float32")
METHODS = ("direct", "lattice")
LOCK_GROUP = "lock"
RESERVE_FILE = ".wtilde-reserve"  # space a run holds back to record its ledger when the disk fills
INGEST_GROUP = "ingest"
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


def _sha256(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


def _software_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("wtilde_dask", "numpy", "jax", "dask", "distributed", "zarr", "xarray", "finufft"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def as_source(dataset_or_source):
    """A :class:`~wtilde_dask.io.VisibilitySource`: an Interferometer is wrapped in an ``ArraySource``."""
    from wtilde_dask.dataset import Interferometer
    from wtilde_dask.io import ArraySource, VisibilitySource

    if isinstance(dataset_or_source, VisibilitySource):
        return dataset_or_source
    if isinstance(dataset_or_source, Interferometer):
        return ArraySource(dataset_or_source)
    raise StoreError(f"dataset: expected an Interferometer or a VisibilitySource, got {type(dataset_or_source).__name__}")


def source_summary(record: dict) -> str:
    """One line naming a source record: format, path, selection, noise column, size."""
    parts = [f"{record.get('format', '?')} {record.get('path', '')}".strip()]
    selection = record.get("selection")
    if selection:
        parts.append("selection " + ", ".join(f"{k}={v}" for k, v in selection.items() if v is not None))
    if record.get("noise_column"):
        parts.append(f"noise from {record['noise_column']}")
    if record.get("n_visibilities") is not None:
        parts.append(f"{record['n_visibilities']} visibilities")
    return "; ".join(parts)


def _array_components_streamed(source) -> dict:
    """The uv_wavelengths / visibilities / noise_map components of a PyAutoLens FITS folder or .npz source, hashed
    chunk by chunk: the same sha256 as :func:`_sha256` of the whole arrays in memory (an Interferometer of the
    same data gives the same fingerprint), independent of the files' paths and modification times."""
    k = int(source.n_visibilities)
    fields = {"uv_wavelengths": ("<f8", (k, 2), "uv points"), "visibilities": ("<c16", (k,), "visibilities"),
              "noise_map": ("<c16", (k,), "noise values")}
    hashes = {}
    for name, (dtype, shape, _) in fields.items():
        hashes[name] = hashlib.sha256(f"{np.dtype(dtype).str}{shape}".encode())
    for chunk in source:
        for name in fields:
            hashes[name].update(np.ascontiguousarray(getattr(chunk, name), fields[name][0]).tobytes())
    out = {}
    for name, (_, _, what) in fields.items():
        hashes[name].update(b"|")
        out[name] = (hashes[name].hexdigest(), f"{k} {what}")
    return out


def fingerprint_components(dataset, grid, *, method: str, dtype: str, block_size: int) -> dict:
    """Per-input sha256 and a one-line summary: what the store was built from.

    ``dataset``: an Interferometer / ``ArraySource`` (arrays in memory: components uv_wavelengths, visibilities,
    noise_map, the sha256 of each array), a PyAutoLens FITS folder / ``.npz`` (the same three components, hashed
    chunk by chunk: equal to the in-memory hash, blind to paths and mtimes) or any other
    :class:`~wtilde_dask.io.VisibilitySource` such as a Measurement Set (component
    ``source``: the sha256 of its ``describe()`` record -- path, selection, noise column, file sizes and mtimes --
    instead of hashing 10^9 visibilities). Then mask (lattice mask or "none"), grid (grid_radians, pixel scales,
    lattice indices), method, dtype, block_size.
    """
    from wtilde_dask.io import ArraySource
    from wtilde_dask.io.folder import FitsFolderSource, NpzSource

    source = as_source(dataset)
    mask = grid.mask
    if isinstance(source, ArraySource):
        dataset = source.dataset
        comps = {
            "uv_wavelengths": (_sha256(np.asarray(dataset.uv_wavelengths, np.float64)),
                               f"{len(dataset.uv_wavelengths)} uv points"),
            "visibilities": (_sha256(np.asarray(dataset.visibilities, np.complex128)),
                             f"{len(dataset.visibilities)} visibilities"),
            "noise_map": (_sha256(np.asarray(dataset.noise_map, np.complex128)),
                          f"{len(dataset.noise_map)} noise values"),
        }
    elif isinstance(source, (FitsFolderSource, NpzSource)):
        comps = _array_components_streamed(source)
    else:
        record = source.describe()
        comps = {"source": (_sha256(json.dumps(record, sort_keys=True, default=str)), source_summary(record))}
    comps.update({
        "mask": (_sha256(np.asarray(mask, bool)) if mask is not None else _sha256("none"),
                 (f"{mask.shape[0]}x{mask.shape[1]} mask, {int((~np.asarray(mask)).sum())} unmasked pixels"
                  if mask is not None else "no mask (irregular point set)")),
        "grid": (_sha256(np.asarray(grid.grid_radians, np.float64),
                         None if grid.pixel_scales is None else tuple(float(s) for s in grid.pixel_scales),
                         None if grid.lattice_indices is None else np.asarray(grid.lattice_indices, np.int64)),
                 f"{len(grid.grid_radians)} pixels"
                 + ("" if grid.pixel_scales is None else
                    f", pixel scales {tuple(float(s) for s in grid.pixel_scales)} arcsec")),
        "method": (_sha256(str(method)), str(method)),
        "dtype": (_sha256(str(dtype)), str(dtype)),
        "block_size": (_sha256(int(block_size)), str(int(block_size))),
    })
    return {name: {"sha256": sha, "summary": summary} for name, (sha, summary) in comps.items()}


def combined_fingerprint(components: dict) -> str:
    return _sha256(*[f"{name}={components[name]['sha256']}" for name in sorted(components)])


def describe_differences(stored: dict, given: dict) -> list[str]:
    """Human lines naming each differing fingerprint component, e.g. ``mask: store has ..., given ...``."""
    lines = []
    for name in sorted(set(stored) | set(given)):
        a, b = stored.get(name), given.get(name)
        if a is None or b is None or a["sha256"] != b["sha256"]:
            same_summary = a is not None and b is not None and a["summary"] == b["summary"]
            sa = "missing" if a is None else a["summary"] + (f" (sha256 {a['sha256'][:12]})" if same_summary else "")
            sb = "missing" if b is None else b["summary"] + (f" (sha256 {b['sha256'][:12]})" if same_summary else "")
            lines.append(f"{name}: store has {sa}, given {sb}")
    return lines


# ---------------------------------------------------------------------------------------------------
# The lock: lock/zarr.json (a Zarr group whose attributes are the lock record), created with O_EXCL,
# refreshed by the live run (lease), taken over when stale.
# ---------------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def read_lock(path) -> dict | None:
    """The lock record of the store at ``path`` (dict) or None when no run holds it."""
    lock_file = pathlib.Path(path) / LOCK_GROUP / "zarr.json"
    try:
        with open(lock_file) as fh:
            return json.load(fh).get("attributes", {})
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {"corrupt": True}


def lock_is_stale(record: dict | None, *, now: float | None = None) -> tuple[bool, str]:
    """(stale, why): stale when the owner process is gone on this host, or the lease expired."""
    if record is None:
        return True, "no lock"
    if record.get("corrupt"):
        return True, "unreadable lock record"
    now = time.time() if now is None else now
    if record.get("host") == socket.gethostname() and not _pid_alive(record.get("pid", -1)):
        return True, f"owner process {record.get('pid')} on {record.get('host')} is gone"
    if float(record.get("lease_until", 0)) < now:
        return True, f"lease expired {now - float(record.get('lease_until', 0)):.0f} s ago"
    return False, "live"


class StoreLock:
    """Exclusive lock of one store by one run: ``with StoreLock(path): ...``.

    Taken atomically (``os.open(O_CREAT | O_EXCL)``); a stale lock (owner gone on this host, or
    lease not refreshed for ``lease_s`` seconds) is taken over with write-then-rename and a re-read.
    A background thread refreshes the lease every ``refresh_s`` seconds; ``lost`` turns True when
    another run took the lock over (the orchestrator then stops).
    """

    def __init__(self, path, *, lease_s: float = 60.0, refresh_s: float = 10.0, log=None):
        self.path = pathlib.Path(path)
        self.dir = self.path / LOCK_GROUP
        self.file = self.dir / "zarr.json"
        self.lease_s = float(lease_s)
        self.refresh_s = float(refresh_s)
        self.log = log or (lambda *a, **k: None)
        self.token = uuid.uuid4().hex
        self.started = _now()
        self.lost = False
        self.held = False
        self._stop = threading.Event()
        self._thread = None

    def _record(self) -> dict:
        return {"zarr_format": 3, "node_type": "group", "attributes": {
            "host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
            "started": self.started, "refreshed": _now(), "lease_until": time.time() + self.lease_s}}

    def _write_atomic(self) -> None:
        tmp = self.dir / f"zarr.json.tmp-{self.token}"
        try:
            with open(tmp, "w") as fh:
                json.dump(self._record(), fh)
            os.replace(tmp, self.file)
        except BaseException:  # e.g. disk full: leave no half-written temporary behind
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def acquire(self) -> StoreLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            record = read_lock(self.path)
            stale, why = lock_is_stale(record)
            if not stale:
                raise StoreLockedError(
                    f"store {self.path}: another run holds it (host {record.get('host')}, pid {record.get('pid')}, "
                    f"started {record.get('started')}, lease until "
                    f"{_dt.datetime.fromtimestamp(float(record.get('lease_until', 0)), _dt.timezone.utc):%H:%M:%S} UTC); "
                    "wait for it to finish, or stop it first") from None
            self.log(f"taking over a stale lock on {self.path} ({why})")
            self._write_atomic()
            time.sleep(0.05)
            if (read_lock(self.path) or {}).get("token") != self.token:
                raise StoreLockedError(f"store {self.path}: another run took the stale lock at the same time") from None
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(self._record(), fh)
        self.held = True
        self._thread = threading.Thread(target=self._refresh_loop, name="wtilde-lock-lease", daemon=True)
        self._thread.start()
        return self

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            record = read_lock(self.path)
            if (record or {}).get("token") != self.token:
                self.lost = True
                self.log(f"lost the lock on {self.path}: another run took it over")
                return
            try:
                self._write_atomic()
            except OSError as err:  # keep trying; the lease covers a few missed refreshes
                self.log(f"could not refresh the lock lease on {self.path}: {err}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held and not self.lost and (read_lock(self.path) or {}).get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        self.held = False

    def __enter__(self) -> StoreLock:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------------
# Reading blocks in dask graphs (module-level so they pickle to workers)
# ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _w_tilde_array(path: str):
    return zarr.open_array(store=path, path="w_tilde", mode="r")


def _read_symmetric_block(path: str, bi: int, bj: int, rows: tuple, cols: tuple, done: bool) -> np.ndarray:
    """Block (bi, bj) of the full symmetric matrix: stored (bi <= bj) or the transpose of (bj, bi)."""
    if not done:
        return np.full((rows[1] - rows[0], cols[1] - cols[0]), np.nan)
    arr = _w_tilde_array(path)
    if bi <= bj:
        return np.asarray(arr[rows[0]:rows[1], cols[0]:cols[1]])
    return np.ascontiguousarray(np.asarray(arr[cols[0]:cols[1], rows[0]:rows[1]]).T)


class WTildeStore:
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
        record = source.describe()
        created = _now()
        attrs = {
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

    def grid_arcsec(self) -> np.ndarray:
        """(M, 2) (y, x) of each pixel in arcsec."""
        return np.asarray(self.group["inputs"]["grid_radians"][:]) * ARCSEC_PER_RADIAN

    # ---- blocks ------------------------------------------------------------------------------------
    @functools.cached_property
    def _w(self):
        return self.group["w_tilde"]

    def _check_block(self, bi: int, bj: int) -> tuple[slice, slice]:
        nb = self.plan.n_blocks_side
        if not (0 <= bi <= bj < nb):
            raise StoreError(f"block ({bi}, {bj}): stored blocks have 0 <= bi <= bj < {nb}")
        return self.plan.pixel_range(bi), self.plan.pixel_range(bj)

    def write_block(self, bi: int, bj: int, array) -> int:
        """Write block (bi, bj) (bi <= bj) and return its checksum (see :func:`block_checksum`)."""
        rows, cols = self._check_block(bi, bj)
        block = np.ascontiguousarray(np.asarray(array), dtype=self.dtype)
        expected = (rows.stop - rows.start, cols.stop - cols.start)
        if block.shape != expected:
            raise StoreError(f"block ({bi}, {bj}): shape {block.shape}, expected {expected}")
        self._w[rows, cols] = block
        return block_checksum(block)

    def read_block(self, bi: int, bj: int) -> np.ndarray:
        """Stored block (bi, bj), bi <= bj, shape (len(pixel_range(bi)), len(pixel_range(bj)))."""
        rows, cols = self._check_block(bi, bj)
        return np.asarray(self._w[rows, cols])

    def chunk_key(self, bi: int, bj: int) -> str:
        """Key (relative path) of block (bi, bj)'s chunk in the store."""
        self._check_block(bi, bj)
        return f"w_tilde/c/{bi}/{bj}"

    def chunk_path(self, bi: int, bj: int) -> pathlib.Path:
        """File of block (bi, bj)'s chunk on disk (``STORE/w_tilde/c/bi/bj``)."""
        return self.path / self.chunk_key(bi, bj)

    def chunk_nbytes(self) -> int | None:
        """Bytes of every w_tilde chunk file (B x B x itemsize: no compression, edge chunks are stored
        full size); None if the array were compressed (size then says nothing)."""
        if tuple(self._w.compressors) or tuple(self._w.filters):
            return None
        return int(np.prod(self._w.chunks)) * np.dtype(self.dtype).itemsize

    def block_damage(self, bi: int, bj: int, checksum: int | None = None, *, read: bool = True) -> str | None:
        """Why stored block (bi, bj) cannot be trusted, or None when it is sound.

        Checked in order: the chunk file exists ("chunk file missing": Zarr would silently return the
        fill value NaN), has the size of an uncompressed (B, B) chunk ("chunk truncated: n of N bytes"),
        and, when ``read``, decodes ("unreadable: ...") and hashes to ``checksum`` (the ledger entry;
        "checksum differs from the ledger"). ``read=False`` costs one ``stat`` per block.
        """
        path = self.chunk_path(bi, bj)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return "chunk file missing"
        except OSError as err:
            return f"chunk file unreadable: {err}"
        expected = self.chunk_nbytes()
        if expected is not None and size != expected:
            return (f"chunk truncated: {size} of {expected} bytes" if size < expected
                    else f"chunk has {size} bytes, expected {expected}")
        if not read:
            return None
        try:
            block = self.read_block(bi, bj)
        except Exception as err:  # noqa: BLE001 - any decode failure means the block is bad
            return f"unreadable: {type(err).__name__}: {err}"
        if checksum is not None and block_checksum(block) != int(checksum):
            return "checksum differs from the ledger"
        return None

    def damaged_blocks(self, blocks=None, *, read: bool = True) -> list[tuple[int, int, str]]:
        """``(bi, bj, why)`` for each block the ledger calls done (or each of ``blocks``) that
        :meth:`block_damage` finds bad; ``read=False`` checks only existence and size of the chunk files."""
        ledger = self.ledger()
        blocks = self.done_blocks() if blocks is None else [(int(bi), int(bj)) for bi, bj in blocks]
        bad = []
        for bi, bj in blocks:
            why = self.block_damage(bi, bj, int(ledger[bi, bj]) if ledger[bi, bj] else None, read=read)
            if why is not None:
                bad.append((bi, bj, why))
        return bad

    # ---- ledger ------------------------------------------------------------------------------------
    def ledger(self) -> np.ndarray:
        """(nb, nb) uint64 checksums; 0 = block not done (always 0 below the diagonal).

        Raises StoreError naming the store when the ledger itself cannot be read (then no block can be trusted).
        """
        try:
            return np.asarray(zarr.open_array(store=str(self.path), path="ledger", mode="r")[:])
        except Exception as err:  # noqa: BLE001 - missing or undecodable ledger chunks
            raise StoreError(f"store {self.path}: its ledger (ledger/) cannot be read ({type(err).__name__}: {err}); "
                             "without it no block can be trusted: start over with --overwrite") from err

    def ledger_seconds(self) -> np.ndarray:
        """(nb, nb) float64 seconds each done block's task took; NaN where not done."""
        return np.asarray(zarr.open_array(store=str(self.path), path="ledger_seconds", mode="r")[:])

    def mark_done(self, bi: int, bj: int, checksum: int, seconds: float) -> None:
        """Record block (bi, bj) as written (orchestrator only, after the write returned)."""
        self.mark_done_many([(bi, bj, checksum, seconds)])

    def mark_done_many(self, entries) -> None:
        """Record many (bi, bj, checksum, seconds) at once: one write per touched ledger chunk."""
        if not entries:
            return
        ledger = self.group["ledger"]
        seconds_arr = self.group["ledger_seconds"]
        c = ledger.chunks[0]
        nb = self.plan.n_blocks_side
        by_chunk: dict[tuple[int, int], list] = {}
        for bi, bj, checksum, seconds in entries:
            self._check_block(bi, bj)
            if int(checksum) == 0:
                raise StoreError(f"block ({bi}, {bj}): checksum 0 means 'not done'")
            by_chunk.setdefault((bi // c, bj // c), []).append((bi, bj, int(checksum), float(seconds)))
        for (ci, cj), items in by_chunk.items():
            region = (slice(ci * c, min((ci + 1) * c, nb)), slice(cj * c, min((cj + 1) * c, nb)))
            sums = np.asarray(ledger[region])
            secs = np.asarray(seconds_arr[region])
            for bi, bj, checksum, seconds in items:
                sums[bi - ci * c, bj - cj * c] = checksum
                secs[bi - ci * c, bj - cj * c] = seconds
            # seconds first: a ledger entry (checksum) always has its time
            seconds_arr[region] = secs
            ledger[region] = sums

    def clear_blocks(self, blocks, *, delete_chunks: bool = False) -> None:
        """Forget blocks in the ledger (they are computed again on the next run); with ``delete_chunks``
        also remove their chunk files (after the ledger: a crash in between leaves a not-done block)."""
        blocks = [(int(bi), int(bj)) for bi, bj in blocks]
        ledger = self.group["ledger"]
        seconds = self.group["ledger_seconds"]
        for bi, bj in blocks:
            ledger[bi, bj] = 0
            seconds[bi, bj] = np.nan
        if delete_chunks:
            for bi, bj in blocks:
                with contextlib.suppress(FileNotFoundError):
                    self.chunk_path(bi, bj).unlink()

    def done_blocks(self) -> list[tuple[int, int]]:
        led = self.ledger()
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(led)) if i <= j]

    def missing_blocks(self) -> list[tuple[int, int]]:
        led = self.ledger()
        return [(bi, bj) for bi, bj in self.plan.blocks() if led[bi, bj] == 0]

    def n_done(self) -> int:
        return int(np.count_nonzero(np.triu(self.ledger())))

    def is_complete(self) -> bool:
        return self.n_done() == self.plan.n_blocks

    # ---- the chunked pass over the visibilities (ingest/) --------------------------------------------
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

    # ---- named extra arrays --------------------------------------------------------------------------
    def write_array(self, name: str, array, *, attrs: dict | None = None, chunks="auto") -> None:
        """Write (replace) a named array: "dirty_image", "kernel", "kernel_hankel", "inversion/NAME", ...

        Names containing "/" create subgroups. Reserved: inputs/*, w_tilde, ledger*, lock.
        """
        parts = [p for p in str(name).split("/") if p]
        if not parts or parts[0] in ("inputs", "w_tilde", "ledger", "ledger_seconds", LOCK_GROUP, INGEST_GROUP):
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
        if not parts or parts[0] in ("inputs", "w_tilde", "ledger", "ledger_seconds", LOCK_GROUP, INGEST_GROUP):
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

    # ---- the full symmetric matrix -------------------------------------------------------------------
    def to_dask(self, allow_incomplete: bool = False):
        """The full (M, M) symmetric W-tilde as a lazy dask array, chunks (B, B).

        Block (bi, bj) with bi > bj is the transpose of stored block (bj, bi). An incomplete store
        is refused unless ``allow_incomplete``; missing blocks then read as NaN.
        """
        import dask.array as da
        from dask.base import tokenize

        plan = self.plan
        ledger = self.ledger()
        n_done = int(np.count_nonzero(np.triu(ledger)))
        if n_done < plan.n_blocks and not allow_incomplete:
            raise StoreError(f"store {self.path}: incomplete, {n_done}/{plan.n_blocks} blocks done; "
                             "finish it (run the same command again) or pass allow_incomplete=True")
        name = "w_tilde-" + tokenize(str(self.path.resolve()), self.fingerprint, ledger.tobytes())
        path = str(self.path)
        nb = plan.n_blocks_side
        dsk = {}
        for bi in range(nb):
            r = plan.pixel_range(bi)
            for bj in range(nb):
                c = plan.pixel_range(bj)
                done = bool(ledger[min(bi, bj), max(bi, bj)])
                dsk[(name, bi, bj)] = (_read_symmetric_block, path, bi, bj, (r.start, r.stop), (c.start, c.stop), done)
        chunks = (plan.block_chunks(), plan.block_chunks())
        return da.Array(dsk, name, chunks=chunks, dtype=np.dtype(self.dtype))

    def to_xarray(self, allow_incomplete: bool = False):
        """W-tilde as an ``xarray.DataArray`` dims (pixel_i, pixel_j); coords y_i, x_i, y_j, x_j in arcsec."""
        import xarray as xr

        data = self.to_dask(allow_incomplete=allow_incomplete)
        arcsec = self.grid_arcsec()
        M = self.n_pixels
        coords = {
            "pixel_i": np.arange(M), "pixel_j": np.arange(M),
            "y_i": ("pixel_i", arcsec[:, 0]), "x_i": ("pixel_i", arcsec[:, 1]),
            "y_j": ("pixel_j", arcsec[:, 0]), "x_j": ("pixel_j", arcsec[:, 1]),
        }
        attrs = {k: self._attrs[k] for k in ("method", "dtype", "n_pixels", "block_size", "fingerprint")}
        attrs.update(store=str(self.path), long_name="W-tilde curvature matrix",
                     formula="W_ij = sum_k [wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk)]",
                     units="1/Jy^2")
        da_ = xr.DataArray(data, dims=("pixel_i", "pixel_j"), coords=coords, name="w_tilde", attrs=attrs)
        for c in ("y_i", "x_i", "y_j", "x_j"):
            da_[c].attrs["units"] = "arcsec"
        return da_

    # ---- space held back for the bookkeeping of a run on a filling disk -----------------------------
    @property
    def reserve_path(self) -> pathlib.Path:
        return self.path / RESERVE_FILE

    def reserve_nbytes(self) -> int:
        """Bytes a run holds back: the ledger and ledger_seconds uncompressed plus 256 KiB for attributes."""
        nb = self.plan.n_blocks_side
        return 2 * nb * nb * 8 + 256 * 1024

    def reserve_space(self) -> None:
        """Allocate ``STORE/.wtilde-reserve`` (:meth:`reserve_nbytes` bytes, really allocated, not sparse).

        When the disk fills during a run, the orchestrator deletes it (:meth:`release_space`) to record in
        the ledger every block whose write returned. Raises OSError (ENOSPC) when even that does not fit.
        """
        n = self.reserve_nbytes()
        path = self.reserve_path
        try:
            if path.exists() and path.stat().st_blocks * 512 >= n:
                return
            with open(path, "wb") as fh:
                try:
                    os.posix_fallocate(fh.fileno(), 0, n)
                except (AttributeError, OSError) as err:
                    if getattr(err, "errno", None) == errno.ENOSPC:
                        raise
                    fh.write(b"\0" * n)  # filesystems without fallocate
                    fh.flush()
                    os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise

    def release_space(self) -> bool:
        """Delete the reserve file; True when there was one to free."""
        try:
            self.reserve_path.unlink()
            return True
        except FileNotFoundError:
            return False

    # ---- sizes -------------------------------------------------------------------------------------
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def __repr__(self) -> str:
        return (f"WTildeStore({str(self.path)!r}, method={self.method!r}, M={self.n_pixels}, "
                f"B={self.block_size}, done={self.n_done()}/{self.plan.n_blocks})")


# ---------------------------------------------------------------------------------------------------
# Copied visibilities (inputs/) as a chunked source
# ---------------------------------------------------------------------------------------------------

_INPUT_ROWS = 1 << 17  # rows per Zarr chunk of the copied inputs


def _copy_source(inputs: zarr.Group, source) -> int:
    """Stream ``source``'s chunks into inputs/uv_wavelengths, visibilities, noise_map (K, 2); return K."""
    arrays = {name: inputs.create_array(name, shape=(0, 2), chunks=(_INPUT_ROWS, 2), dtype="float64")
              for name in ("uv_wavelengths", "visibilities", "noise_map")}
    k = 0
    for chunk in source:
        n = chunk.n_visibilities
        if n == 0:
            continue
        values = {"uv_wavelengths": np.asarray(chunk.uv_wavelengths, np.float64),
                  "visibilities": np.stack([chunk.visibilities.real, chunk.visibilities.imag], axis=1),
                  "noise_map": np.stack([chunk.noise_map.real, chunk.noise_map.imag], axis=1)}
        for name, arr in arrays.items():
            arr.resize((k + n, 2))
            arr[k:k + n] = values[name]
        k += n
    return k


@functools.lru_cache(maxsize=8)
def _input_arrays(path: str) -> dict:
    return {name: zarr.open_array(store=path, path=f"inputs/{name}", mode="r")
            for name in ("uv_wavelengths", "visibilities", "noise_map")}


class StoreInputsSource(VisibilitySource):
    """The visibilities copied into a store's ``inputs/``, read in chunks of ``chunk_size`` rows (picklable:
    only the path travels; each process opens the arrays itself)."""

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE):
        if int(chunk_size) < 1:
            raise StoreError(f"chunk_size = {chunk_size!r} must be >= 1")
        self.path = str(pathlib.Path(path).resolve())
        self.chunk_size = int(chunk_size)
        self.n_visibilities = int(_input_arrays(self.path)["visibilities"].shape[0])

    def chunk_ids(self) -> list:
        k = self.n_visibilities
        return [(start, min(start + self.chunk_size, k)) for start in range(0, k, self.chunk_size)]

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = (int(i) for i in chunk_id)
        arrays = _input_arrays(self.path)
        vis = np.asarray(arrays["visibilities"][start:stop])
        noise = np.asarray(arrays["noise_map"][start:stop])
        return VisibilityChunk(np.asarray(arrays["uv_wavelengths"][start:stop]), vis[:, 0] + 1j * vis[:, 1],
                               noise[:, 0] + 1j * noise[:, 1])

    def describe(self) -> dict:
        return {"format": "store-inputs", "path": self.path, "n_visibilities": self.n_visibilities}


def _looks_like_store(path: pathlib.Path) -> bool:
    return (path / "w_tilde").is_dir() or (path / "ledger").is_dir()


def open_w_tilde(path, allow_incomplete: bool = False):
    """The W-tilde of the store at ``path`` as a lazy ``xarray.DataArray`` (M, M), y/x arcsec coords."""
    return WTildeStore.open(path).to_xarray(allow_incomplete=allow_incomplete)
