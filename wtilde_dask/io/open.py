"""Opening data: :func:`open_visibilities` chooses the reader from what a path is, :func:`load_dataset` reads a
small dataset whole into an :class:`~wtilde_dask.dataset.Interferometer`, :func:`reopen_source` opens the source a
store recorded again (same selection, order and chunk size; refused when the files changed)."""

from __future__ import annotations

import json
import os
import pathlib

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.errors import DatasetError, StoreError
from wtilde_dask.io.base import VisibilitySource, concatenate_chunks

__all__ = ["open_visibilities", "load_dataset", "reopen_source", "recorded_selection", "FITS_SUFFIXES"]

FITS_SUFFIXES = (".uvfits", ".uvf", ".fits", ".fit", ".fts")


def open_visibilities(
    path,
    *,
    field=None,
    spw=None,
    channels=None,
    column: str = "DATA",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **options,
) -> VisibilitySource:
    """Open ``path`` as a chunked :class:`VisibilitySource`, choosing the reader from what the path is.

    * a Measurement Set directory (``table.info`` says ``Type = Measurement Set``) -> :class:`wtilde_dask.io.ms.
      MeasurementSetSource` (python-casacore); ``options``: ``noise_column``, ``order``, ``check_usable``;
    * a UVFITS file (``.uvfits``, ``.uvf``, ``.fits``) -> :class:`wtilde_dask.io.uvfits.UvfitsSource`;
    * a PyAutoLens FITS folder (data.fits, noise_map.fits, uv_wavelengths.fits), an ``.npz`` or ``"sma"`` (the
      bundled SMA data) -> :mod:`wtilde_dask.io.folder`; ``options``: ``hdu``. These hold Stokes I visibilities
      already selected: ``field`` / ``spw`` / ``channels`` / a column other than DATA are refused (``order`` is
      ignored: the file's order is the only one).

    Selection (Measurement Set / UVFITS): ``field`` NAME or ID, ``spw`` ``"0,2"`` / ``"0~3"`` / names,
    ``channels`` ``"A~B"`` (inclusive), ``column`` DATA | CORRECTED_DATA | MODEL_DATA. ``chunk_size``: at most
    this many visibilities per chunk. Errors are :class:`~wtilde_dask.errors.DatasetError` naming the path.
    """
    text = os.fspath(path) if not isinstance(path, str) else path
    selected = {k: v for k, v in (("field", field), ("spw", spw), ("channels", channels)) if v is not None}
    if column is not None and str(column).upper() != "DATA":
        selected["column"] = column

    def folder_like():
        from wtilde_dask.io.folder import open_folder_or_npz

        if selected:
            raise DatasetError(
                f"{text}: {', '.join(f'{k} {v!r}' for k, v in selected.items())} cannot be applied: a PyAutoLens FITS "
                "folder / .npz holds Stokes I visibilities already selected (selection is for a Measurement Set or "
                "UVFITS file)"
            )
        hdu = options.pop("hdu", None)
        hdu = 0 if hdu is None else hdu
        options.pop("order", None)  # flattened visibilities: one order, the file's
        if options:
            raise TypeError(f"open_visibilities: options {sorted(options)} do not apply to {text}")
        return open_folder_or_npz(text, hdu=hdu, chunk_size=chunk_size)

    if text == "sma":
        return folder_like()
    if not _folder_like_path(text):
        if options.get("hdu") is not None:
            raise DatasetError(f"{text}: hdu {options['hdu']!r} applies to a PyAutoLens FITS folder only, not to a "
                               "Measurement Set or UVFITS file")
        options.pop("hdu", None)
    p = pathlib.Path(text)
    if not p.exists():
        raise DatasetError(
            f"{text}: does not exist (expected a Measurement Set, a UVFITS file, a PyAutoLens FITS folder or an .npz)"
        )
    if p.is_dir():
        if (p / "table.dat").is_file():
            from wtilde_dask.io.ms import MeasurementSetSource

            return MeasurementSetSource(
                p, field=field, spw=spw, channels=channels, column=column or "DATA", chunk_size=chunk_size, **options
            )
        if (p / "data.fits").is_file() or (p / "uv_wavelengths.fits").is_file():
            return folder_like()
        raise DatasetError(
            f"{text}: not a Measurement Set (no table.dat: not a casacore table) and not a PyAutoLens FITS folder "
            "(no data.fits / noise_map.fits / uv_wavelengths.fits)"
        )
    if p.suffix.lower() == ".npz":
        return folder_like()
    if p.suffix.lower() in FITS_SUFFIXES:
        from wtilde_dask.io.uvfits import UvfitsSource

        return UvfitsSource(p, field=field, spw=spw, channels=channels, column=column or "DATA",
                            chunk_size=chunk_size, **options)
    raise DatasetError(
        f"{text}: unknown visibility format (expected a Measurement Set directory, a UVFITS file "
        f"({', '.join(FITS_SUFFIXES)}), a PyAutoLens FITS folder or an .npz)"
    )


def _folder_like_path(text: str) -> bool:
    """Whether ``text`` names a PyAutoLens FITS folder or an .npz (what takes an ``hdu``)."""
    p = pathlib.Path(text)
    return p.suffix.lower() == ".npz" or (p.is_dir() and not (p / "table.dat").is_file())


def load_dataset(path, hdu: int | str = 0, **selection):
    """Load a dataset whole into an :class:`~wtilde_dask.dataset.Interferometer` (small data only: everything is
    held in memory): a folder -> the PyAutoLens FITS triplet, a ``*.npz`` file ->
    :meth:`~wtilde_dask.dataset.Interferometer.from_npz`, a Measurement Set / UVFITS file -> read through
    :func:`open_visibilities` with ``selection`` (field, spw, channels, column)."""
    from wtilde_dask.dataset import Interferometer

    path = pathlib.Path(path)
    if (path / "table.dat").is_file() or path.suffix.lower() in (".uvfits", ".uvf"):
        chunk = concatenate_chunks(open_visibilities(path, **selection))
        return Interferometer(chunk.visibilities, chunk.noise_map, chunk.uv_wavelengths, name=str(path))
    if path.is_dir():
        return Interferometer.from_fits_folder(path, hdu=hdu)
    if path.suffix.lower() == ".npz":
        return Interferometer.from_npz(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset path does not exist (expected a FITS folder or an .npz file)")
    raise DatasetError(f"{path}: unknown dataset format (expected a folder with data.fits/noise_map.fits/uv_wavelengths.fits or an .npz)")


def recorded_selection(record: dict) -> dict:
    """The selection keywords (field, spw, channels, column) of a source record, as the readers take them."""
    return {k: v for k, v in (record.get("selection") or {}).items()
            if k in ("field", "spw", "channels", "column") and v is not None}


def reopen_source(record: dict, chunk_size: int = DEFAULT_CHUNK_SIZE, *, owner: str = "") -> VisibilitySource:
    """The source described by ``record`` (a reader's :meth:`~VisibilitySource.describe`, as a store keeps it)
    opened again with its recorded selection and order, in chunks of ``chunk_size`` visibilities.

    Refused (:class:`~wtilde_dask.errors.StoreError` naming ``owner``, e.g. ``"store w.zarr"``, and the fields that
    differ) when the source's record -- sizes, mtimes -- changed: what was computed from it no longer describes it."""
    owner = owner or "source record"
    if not record.get("path"):
        raise StoreError(f"{owner}: the source record names no path to open again ({record!r})")
    selection = recorded_selection(record)
    if record.get("hdu") is not None:  # a FITS folder read from another HDU than the first
        selection["hdu"] = record["hdu"]
    if record.get("order") is not None:  # a reader with orders (Measurement Set, UVFITS): the one recorded
        selection["order"] = record["order"]
    source = open_visibilities(record["path"], chunk_size=chunk_size, **selection)
    now = source.describe()
    if json.dumps(now, sort_keys=True, default=str) != json.dumps(record, sort_keys=True, default=str):
        changed = sorted(k for k in set(now) | set(record) if now.get(k) != record.get(k))
        raise StoreError(f"{owner}: its source {record.get('path')} changed since the store was made "
                         f"(differs: {', '.join(changed)}); the stored W-tilde no longer describes it")
    return source
