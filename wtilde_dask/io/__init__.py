"""Readers of interferometer visibilities in bounded chunks: the one room for dataset I/O.

The contract every reader keeps (a Measurement Set, a UVFITS file, a PyAutoLens FITS folder, an ``.npz``, or
arrays already in memory):

* :meth:`VisibilitySource.chunk_ids` is a deterministic list of small, picklable, JSON-able descriptors.
  Concatenating :meth:`VisibilitySource.read_chunk` over it, in that order, gives the dataset in the order of
  the PyAutoLens CASA recipe (DESIGN §7): for each selected spectral window (in selection order), its
  channels flattened, then the windows concatenated.
  Readers of files with channels (Measurement Set, UVFITS) also take ``order="rows"``: chunks of rows with all
  their selected channels, each cell read once, the same visibilities in another order (per window: row blocks,
  channel-major within a block). Sums over visibilities may use it; ``describe()["order"]`` records it, and a
  source must be opened again with the same order (and chunk size) to give the same chunks.
* :meth:`VisibilitySource.read_chunk` opens the file itself (it runs on a Dask worker) and returns a
  :class:`VisibilityChunk` of Stokes I visibilities with flagged and zero / non-finite-weight visibilities
  **dropped and counted**; memory is bounded by the chunk size, never by the dataset's size.
* :meth:`VisibilitySource.describe` is a JSON-able record of where the data came from (format, path,
  selection, which noise column was used, sizes / mtimes / checksums identifying the source): the store keeps
  it instead of the visibilities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE

__all__ = ["VisibilityChunk", "VisibilitySource", "ArraySource", "concatenate_chunks", "open_visibilities"]


class VisibilityChunk(NamedTuple):
    """One chunk of Stokes I visibilities, ready for the sums of DESIGN §1.

    uv_wavelengths : (k, 2) float64, (u, v) in wavelengths (UVW[:, :2] x CHAN_FREQ / c for a Measurement Set)
    visibilities   : (k,) complex128, Stokes I
    noise_map      : (k,) complex128, real = sigma of Re(V), imag = sigma of Im(V); finite and > 0
    n_flagged      : visibilities of this chunk dropped because FLAG / FLAG_ROW said so
    n_bad_weight   : visibilities dropped because their weight (sigma) was zero or not finite, or (not flagged)
                     their data or uv were not finite
    """

    uv_wavelengths: np.ndarray
    visibilities: np.ndarray
    noise_map: np.ndarray
    n_flagged: int = 0
    n_bad_weight: int = 0

    @property
    def n_visibilities(self) -> int:
        return int(self.visibilities.shape[0])


class VisibilitySource:
    """Base class of the chunked readers (see the module docstring for the contract)."""

    path: str = ""

    def chunk_ids(self) -> list:
        raise NotImplementedError

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_ids())

    def __iter__(self):
        for chunk_id in self.chunk_ids():
            yield self.read_chunk(chunk_id)


class ArraySource(VisibilitySource):
    """A validated in-memory :class:`~wtilde_dask.dataset.Interferometer` served in chunks of ``chunk_size``."""

    def __init__(self, dataset, chunk_size: int = DEFAULT_CHUNK_SIZE):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size = {chunk_size!r} must be >= 1")
        self.dataset = dataset
        self.chunk_size = int(chunk_size)
        self.path = dataset.name

    def chunk_ids(self) -> list:
        k = self.dataset.n_visibilities
        return [(start, min(start + self.chunk_size, k)) for start in range(0, k, self.chunk_size)]

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = chunk_id
        d = self.dataset
        return VisibilityChunk(d.uv_wavelengths[start:stop], d.visibilities[start:stop], d.noise_map[start:stop])

    def describe(self) -> dict:
        return {"format": "arrays", "path": self.path, "n_visibilities": self.dataset.n_visibilities}


def concatenate_chunks(chunks) -> VisibilityChunk:
    """Concatenate chunks (small data only: this materialises everything)."""
    chunks = list(chunks)
    if not chunks:
        return VisibilityChunk(np.zeros((0, 2)), np.zeros(0, complex), np.zeros(0, complex))
    return VisibilityChunk(
        np.concatenate([c.uv_wavelengths for c in chunks]),
        np.concatenate([c.visibilities for c in chunks]),
        np.concatenate([c.noise_map for c in chunks]),
        sum(c.n_flagged for c in chunks),
        sum(c.n_bad_weight for c in chunks),
    )


FITS_SUFFIXES = (".uvfits", ".uvf", ".fits", ".fit", ".fts")


def open_visibilities(
    path,
    *,
    field=None,
    spw=None,
    channels=None,
    column: str = "DATA",
    chunk_size: int = 1_000_000,
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
    this many visibilities per chunk. Errors are :class:`wtilde_dask.dataset.DatasetError` naming the path.
    """
    import os
    import pathlib

    from wtilde_dask.dataset import DatasetError

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
        hdu = options.pop("hdu", 0)
        options.pop("order", None)  # flattened visibilities: one order, the file's
        if options:
            raise TypeError(f"open_visibilities: options {sorted(options)} do not apply to {text}")
        return open_folder_or_npz(text, hdu=hdu, chunk_size=chunk_size)

    if text == "sma":
        return folder_like()
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
