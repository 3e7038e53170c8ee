"""Interferometer datasets: visibilities, noise map and (u, v) coverage, with loaders and validation.

Conventions (docs/mathematics.md):

* ``visibilities`` (K,) complex128, the measured data ``V_k`` (FITS files store (K, 2): real, imag);
* ``noise_map`` (K,) complex128: ``noise_map.real`` is sigma of the real part, ``noise_map.imag`` sigma of
  the imaginary part (same units as the visibilities; FITS (K, 2));
* ``uv_wavelengths`` (K, 2) float64: column 0 is u, column 1 is v, in wavelengths;
* weights ``wr = 1 / noise_map.real**2``, ``wi = 1 / noise_map.imag**2``.

Loaders: a PyAutoLens / PyAutoGalaxy dataset folder (``data.fits``, ``noise_map.fits``,
``uv_wavelengths.fits``) and ``.npz`` files with the same arrays. Everything is validated once, here:
a :class:`DatasetError` names the file, the field, the first bad index and its value.
"""

from __future__ import annotations

import dataclasses
import pathlib
from importlib import import_module

import numpy as np

from wtilde_dask.errors import DatasetError  # noqa: F401 (re-exported)

__all__ = ["DatasetError", "Interferometer", "sma_dataset_path"]

FITS_FILES = {"visibilities": "data.fits", "noise_map": "noise_map.fits", "uv_wavelengths": "uv_wavelengths.fits"}
NPZ_NAMES = {"visibilities": ("visibilities", "data"), "noise_map": ("noise_map",), "uv_wavelengths": ("uv_wavelengths",)}


def _fmt_index(index) -> str:
    return ", ".join(str(int(i)) for i in np.atleast_1d(index))


def _first_bad(mask: np.ndarray, offset: int = 0):
    """Index tuple of the first True in ``mask`` (C order); ``offset`` is added to the row (first) index, for a
    chunk that starts at row ``offset`` of its file."""
    idx = np.unravel_index(int(np.argmax(mask.ravel())), mask.shape)
    return (idx[0] + offset,) + tuple(idx[1:])


def _as_pairs(array, source: str, field: str, offset: int = 0) -> np.ndarray:
    """Return a (K, 2) float64 array from a (K, 2) real or (K,) complex input; validate shape and finiteness.
    ``offset``: the rows are rows offset.. of the file (error messages give file row numbers)."""
    arr = np.asarray(array)
    if arr.dtype == object:
        raise DatasetError(f"{source}: {field} has dtype object, expected numbers")
    if np.iscomplexobj(arr):
        if arr.ndim != 1:
            raise DatasetError(f"{source}: {field} is complex with shape {arr.shape}, expected (K,)")
        arr = np.stack([arr.real, arr.imag], axis=1)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError(f"{source}: {field} has shape {arr.shape}, expected (K, 2) with 2 columns")
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: {field} cannot be read as float64 ({exc})") from None
    if arr.shape[0] < 1:
        raise DatasetError(f"{source}: {field} has K = 0 rows, expected K >= 1 visibilities")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = _first_bad(bad)
        raise DatasetError(
            f"{source}: {field}[{_fmt_index(_first_bad(bad, offset))}] = {float(arr[idx])!r} is not finite"
        )
    return arr


def _common_k(k_of: dict, source_of: dict) -> int:
    """K shared by the three arrays (``k_of``: field -> rows); a mismatch names both sources and counts."""
    k = k_of["visibilities"]
    for field in ("noise_map", "uv_wavelengths"):
        if k_of[field] != k:
            raise DatasetError(
                f"{source_of[field]}: {field} has K = {k_of[field]} rows but "
                f"{source_of['visibilities']}: visibilities has K = {k}; they must match"
            )
    return k


def _validate(visibilities, noise_map, uv_wavelengths, sources: dict[str, str], offset: int = 0):
    vis = _as_pairs(visibilities, sources["visibilities"], "visibilities", offset)
    noise = _as_pairs(noise_map, sources["noise_map"], "noise_map", offset)
    uv = _as_pairs(uv_wavelengths, sources["uv_wavelengths"], "uv_wavelengths", offset)
    _common_k({"visibilities": vis.shape[0], "noise_map": noise.shape[0], "uv_wavelengths": uv.shape[0]}, sources)
    bad = ~(noise > 0)
    if bad.any():
        idx = _first_bad(bad)
        raise DatasetError(
            f"{sources['noise_map']}: noise_map[{_fmt_index(_first_bad(bad, offset))}] = {float(noise[idx])!r} must be > 0"
        )
    return (
        np.ascontiguousarray(vis[:, 0] + 1j * vis[:, 1], dtype=np.complex128),
        np.ascontiguousarray(noise[:, 0] + 1j * noise[:, 1], dtype=np.complex128),
        np.ascontiguousarray(uv, dtype=np.float64),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Interferometer:
    """An interferometer dataset (validated; build it with the ``from_*`` constructors).

    Attributes
    ----------
    visibilities : (K,) complex128
        Measured visibilities ``V_k``.
    noise_map : (K,) complex128
        ``real`` = sigma of Re(V_k), ``imag`` = sigma of Im(V_k); all > 0.
    uv_wavelengths : (K, 2) float64
        (u, v) in wavelengths.
    name : str
        Where the data came from (path or label).
    """

    visibilities: np.ndarray
    noise_map: np.ndarray
    uv_wavelengths: np.ndarray
    name: str = ""

    def __post_init__(self):
        vis, noise, uv = _validate(
            self.visibilities,
            self.noise_map,
            self.uv_wavelengths,
            {f: self.name or "<arrays>" for f in FITS_FILES},
        )
        for field, value in (("visibilities", vis), ("noise_map", noise), ("uv_wavelengths", uv)):
            value.setflags(write=False)
            object.__setattr__(self, field, value)

    # ------------------------------------------------------------------ properties
    @property
    def n_visibilities(self) -> int:
        """K, the number of visibilities."""
        return int(self.visibilities.shape[0])

    @property
    def weights_real(self) -> np.ndarray:
        """(K,) float64 ``wr = 1 / noise_map.real**2``."""
        return 1.0 / self.noise_map.real**2

    @property
    def weights_imag(self) -> np.ndarray:
        """(K,) float64 ``wi = 1 / noise_map.imag**2``."""
        return 1.0 / self.noise_map.imag**2

    def __repr__(self) -> str:
        return f"Interferometer(name={self.name!r}, n_visibilities={self.n_visibilities})"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, visibilities, noise_map, uv_wavelengths, name: str = "") -> "Interferometer":
        """Build from arrays; ``visibilities``/``noise_map`` either (K,) complex or (K, 2) real/imag."""
        return cls(visibilities, noise_map, uv_wavelengths, name=name)

    @classmethod
    def from_fits_folder(cls, folder, hdu: int | str = 0) -> "Interferometer":
        """Read a PyAutoLens/PyAutoGalaxy folder: ``data.fits``, ``noise_map.fits``, ``uv_wavelengths.fits``.

        Each file holds a (K, 2) array in HDU ``hdu`` (index or name).
        """
        from astropy.io import fits

        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: dataset folder does not exist (expected {', '.join(FITS_FILES.values())})")
        arrays, sources = {}, {}
        for field, fname in FITS_FILES.items():
            path = folder / fname
            sources[field] = fname
            if not path.is_file():
                raise DatasetError(f"{path}: missing file {fname} ({field}) in dataset folder {folder}")
            try:
                with fits.open(path, memmap=False) as hdul:
                    try:
                        data = hdul[hdu].data
                    except (IndexError, KeyError):
                        raise DatasetError(
                            f"{fname}: {field} has no HDU {hdu!r} (file has {len(hdul)} HDUs)"
                        ) from None
                    if data is None:
                        raise DatasetError(f"{fname}: {field} HDU {hdu!r} holds no data")
                    arrays[field] = np.array(data, dtype=np.float64)
            except DatasetError:
                raise
            except OSError as exc:
                raise DatasetError(f"{path}: cannot read {field} as FITS ({exc})") from None
        vis, noise, uv = _validate(arrays["visibilities"], arrays["noise_map"], arrays["uv_wavelengths"], sources)
        return cls(vis, noise, uv, name=str(folder))

    @classmethod
    def from_npz(cls, path) -> "Interferometer":
        """Read an ``.npz`` holding ``visibilities`` (or ``data``), ``noise_map``, ``uv_wavelengths``.

        Visibilities and noise map may be (K,) complex or (K, 2) real/imag.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: missing file (expected an .npz with visibilities, noise_map, uv_wavelengths)")
        arrays = {}
        try:
            with np.load(path, allow_pickle=False) as npz:
                for field, names in NPZ_NAMES.items():
                    for name in names:
                        if name in npz.files:
                            arrays[field] = npz[name]
                            break
                    else:
                        raise DatasetError(
                            f"{path.name}: missing array {field} (looked for {', '.join(names)}; file has {', '.join(npz.files) or 'none'})"
                        )
        except DatasetError:
            raise
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read as .npz ({exc})") from None
        src = path.name
        vis, noise, uv = _validate(arrays["visibilities"], arrays["noise_map"], arrays["uv_wavelengths"], {f: src for f in FITS_FILES})
        return cls(vis, noise, uv, name=str(path))

    def to_npz(self, path) -> pathlib.Path:
        """Write ``visibilities`` and ``noise_map`` (complex) and ``uv_wavelengths`` to an ``.npz``."""
        path = pathlib.Path(path)
        np.savez(path, visibilities=self.visibilities, noise_map=self.noise_map, uv_wavelengths=self.uv_wavelengths)
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def sma_dataset_path() -> pathlib.Path:
    """The bundled SMA example (190 visibilities, PyAutoGalaxy workspace ``interferometer/simple``)."""
    return pathlib.Path(__file__).parent / "data" / "sma"


def __getattr__(name):
    # ``load_dataset`` opens files, so it lives in :mod:`wtilde_dask.io`; it stays importable from here
    if name == "load_dataset":
        return import_module("wtilde_dask.io.open").load_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
