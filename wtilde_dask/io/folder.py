"""The PyAutoLens / PyAutoGalaxy FITS folder, an ``.npz`` and the bundled ``sma`` data as chunked sources.

A FITS folder holds ``data.fits``, ``noise_map.fits`` and ``uv_wavelengths.fits``, each a (K, 2) float array
(real, imag / sigma real, sigma imag / u, v in wavelengths) in HDU ``hdu``. :class:`FitsFolderSource` reads rows
``start:stop`` of the three files with astropy's ``ImageHDU.section`` on a memory map, so a chunk costs
O(chunk) memory whatever K is. An ``.npz`` written by ``numpy.savez`` (members stored, not compressed) is read
through a memory map of each member inside the zip; a compressed ``.npz`` cannot be mapped and is read whole
(the file is then small enough to have been compressed in memory by whoever wrote it).

Validation uses :mod:`wtilde_dask.dataset`'s helpers, so a bad value gets the same message as
:func:`~wtilde_dask.dataset.load_dataset` (file, field, row index in the file, value). The header checks (files
present, shapes (K, 2), equal K) run when the source is opened; the values of a chunk are checked when it is
read.
"""

from __future__ import annotations

import os
import pathlib
import zipfile

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.dataset import FITS_FILES, NPZ_NAMES, DatasetError, _common_k, _validate, sma_dataset_path
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource

__all__ = ["FitsFolderSource", "NpzSource", "open_folder_or_npz"]



def _file_record(path: pathlib.Path) -> dict:
    st = path.stat()
    return {"size": int(st.st_size), "mtime": float(st.st_mtime)}


def _check_chunk_size(chunk_size) -> int:
    if int(chunk_size) != chunk_size or int(chunk_size) < 1:
        raise ValueError(f"chunk_size = {chunk_size!r} must be a whole number >= 1")
    return int(chunk_size)


def _row_ranges(k: int, chunk_size: int) -> list:
    return [[start, min(start + chunk_size, k)] for start in range(0, k, chunk_size)]


class FitsFolderSource(VisibilitySource):
    """A PyAutoLens FITS folder read in row chunks.

    Parameters
    ----------
    folder : path of the folder holding data.fits, noise_map.fits, uv_wavelengths.fits.
    hdu : HDU index or name holding the (K, 2) array in each file.
    chunk_size : visibilities per chunk.
    """

    format = "fits-folder"

    def __init__(self, folder, *, hdu: int | str = 0, chunk_size: int = DEFAULT_CHUNK_SIZE):
        from astropy.io import fits

        self.folder = pathlib.Path(folder)
        self.path = str(self.folder)
        self.hdu = hdu
        self.chunk_size = _check_chunk_size(chunk_size)
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: dataset folder does not exist (expected {', '.join(FITS_FILES.values())})")
        k_of = {}
        for field, fname in FITS_FILES.items():
            path = self.folder / fname
            if not path.is_file():
                raise DatasetError(f"{path}: missing file {fname} ({field}) in dataset folder {self.folder}")
            try:
                with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                    try:
                        header = hdul[hdu].header
                    except (IndexError, KeyError):
                        raise DatasetError(f"{fname}: {field} has no HDU {hdu!r} (file has {len(hdul)} HDUs)") from None
                    shape = tuple(int(header.get(f"NAXIS{i}", 0)) for i in range(int(header.get("NAXIS", 0)), 0, -1))
            except DatasetError:
                raise
            except OSError as exc:
                raise DatasetError(f"{path}: cannot read {field} as FITS ({exc})") from None
            if not shape:
                raise DatasetError(f"{fname}: {field} HDU {hdu!r} holds no data")
            if len(shape) != 2 or shape[1] != 2:
                raise DatasetError(f"{fname}: {field} has shape {shape}, expected (K, 2) with 2 columns")
            if shape[0] < 1:
                raise DatasetError(f"{fname}: {field} has K = 0 rows, expected K >= 1 visibilities")
            k_of[field] = shape[0]
        self.n_visibilities = _common_k(k_of, FITS_FILES)

    def chunk_ids(self) -> list:
        return _row_ranges(self.n_visibilities, self.chunk_size)

    def read_rows(self, start: int, stop: int) -> dict:
        """Rows start:stop of the three files as float64 (stop - start, 2) arrays, keyed by field."""
        from astropy.io import fits

        out = {}
        for field, fname in FITS_FILES.items():
            with fits.open(self.folder / fname, memmap=True, lazy_load_hdus=True) as hdul:
                out[field] = np.array(hdul[self.hdu].section[start:stop], dtype=np.float64)
        return out

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = (int(i) for i in chunk_id)
        rows = self.read_rows(start, stop)
        vis, noise, uv = _validate(
            rows["visibilities"], rows["noise_map"], rows["uv_wavelengths"], dict(FITS_FILES), offset=start
        )
        return VisibilityChunk(uv, vis, noise)

    def describe(self) -> dict:
        return {
            "format": self.format,
            "path": str(self.folder.resolve()),
            "hdu": self.hdu,
            "n_visibilities": self.n_visibilities,
            "noise_column": FITS_FILES["noise_map"],
            "files": {fname: _file_record(self.folder / fname) for fname in FITS_FILES.values()},
        }


def _npz_member(path: pathlib.Path, zf: zipfile.ZipFile, member: str):
    """A read-only ``np.memmap`` of the stored (uncompressed) ``member`` of an .npz, or None if it is compressed."""
    info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        if dtype.hasobject:
            return None
        offset = f.tell()
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class NpzSource(VisibilitySource):
    """An ``.npz`` holding ``visibilities`` (or ``data``), ``noise_map``, ``uv_wavelengths``, read in row chunks.

    Visibilities and noise map may be (K,) complex or (K, 2) real/imag (as :meth:`Interferometer.from_npz`).
    """

    format = "npz"

    def __init__(self, path, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.npz_path = pathlib.Path(path)
        self.path = str(self.npz_path)
        self.chunk_size = _check_chunk_size(chunk_size)
        if not self.npz_path.is_file():
            raise DatasetError(
                f"{self.npz_path}: missing file (expected an .npz with visibilities, noise_map, uv_wavelengths)"
            )
        self.members, self.memory_mapped = {}, True
        arrays = self._open()
        k_of = {}
        for field, arr in arrays.items():
            if arr.dtype == object:
                raise DatasetError(f"{self.npz_path.name}: {field} has dtype object, expected numbers")
            if np.iscomplexobj(arr):
                if arr.ndim != 1:
                    raise DatasetError(f"{self.npz_path.name}: {field} is complex with shape {arr.shape}, expected (K,)")
            elif arr.ndim != 2 or arr.shape[1] != 2:
                raise DatasetError(f"{self.npz_path.name}: {field} has shape {arr.shape}, expected (K, 2) with 2 columns")
            if arr.shape[0] < 1:
                raise DatasetError(f"{self.npz_path.name}: {field} has K = 0 rows, expected K >= 1 visibilities")
            k_of[field] = int(arr.shape[0])
        self.n_visibilities = _common_k(k_of, dict.fromkeys(k_of, self.npz_path.name))
        self._loaded = None if self.memory_mapped else arrays  # a compressed file: decompressed once per process

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}  # a pickled reader (a Dask task) carries no arrays

    def _arrays(self) -> dict:
        """Memory maps of an uncompressed file (cheap to open per chunk); a compressed file's arrays, loaded once."""
        if self.memory_mapped:
            return self._open()
        if self._loaded is None:
            self._loaded = self._open()
        return self._loaded

    def _open(self) -> dict:
        """The three arrays: memory maps where the members are stored uncompressed, else loaded arrays."""
        try:
            with zipfile.ZipFile(self.npz_path) as zf:
                names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                arrays = {}
                for field, candidates in NPZ_NAMES.items():
                    for name in candidates:
                        if name in names:
                            self.members[field] = name
                            break
                    else:
                        raise DatasetError(
                            f"{self.npz_path.name}: missing array {field} (looked for {', '.join(candidates)}; "
                            f"file has {', '.join(names) or 'none'})"
                        )
                    arr = _npz_member(self.npz_path, zf, self.members[field] + ".npy")
                    if arr is None:
                        self.memory_mapped = False
                        with np.load(self.npz_path, allow_pickle=False) as npz:
                            arr = npz[self.members[field]]
                    arrays[field] = arr
                return arrays
        except DatasetError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{self.npz_path}: cannot read as .npz ({exc})") from None

    def chunk_ids(self) -> list:
        return _row_ranges(self.n_visibilities, self.chunk_size)

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = (int(i) for i in chunk_id)
        arrays = self._arrays()
        src = self.npz_path.name
        vis, noise, uv = _validate(
            np.array(arrays["visibilities"][start:stop]),
            np.array(arrays["noise_map"][start:stop]),
            np.array(arrays["uv_wavelengths"][start:stop]),
            {f: src for f in FITS_FILES},
            offset=start,
        )
        return VisibilityChunk(uv, vis, noise)

    def describe(self) -> dict:
        return {
            "format": self.format,
            "path": str(self.npz_path.resolve()),
            "n_visibilities": self.n_visibilities,
            "noise_column": self.members["noise_map"],
            "memory_mapped": self.memory_mapped,
            "files": {self.npz_path.name: _file_record(self.npz_path)},
        }


def open_folder_or_npz(path, *, hdu: int | str = 0, chunk_size: int = DEFAULT_CHUNK_SIZE) -> VisibilitySource:
    """``"sma"`` (the bundled SMA data), a PyAutoLens FITS folder, or an ``.npz`` file, as a chunked source."""
    if str(path) == "sma":
        path = sma_dataset_path()
    path = pathlib.Path(os.fspath(path))
    if path.is_dir():
        return FitsFolderSource(path, hdu=hdu, chunk_size=chunk_size)
    if path.suffix.lower() == ".npz":
        return NpzSource(path, chunk_size=chunk_size)
    if not path.exists():
        raise DatasetError(f"{path}: dataset path does not exist (expected a FITS folder or an .npz file)")
    raise DatasetError(
        f"{path}: unknown dataset format (expected a folder with data.fits/noise_map.fits/uv_wavelengths.fits or an .npz)"
    )
