"""Stream any :class:`~wtilde_dask.io.VisibilitySource` into a PyAutoLens dataset folder.

Writes ``data.fits`` (real, imag), ``noise_map.fits`` (sigma real, sigma imag) and ``uv_wavelengths.fits``
(u, v in wavelengths), each a (K, 2) float64 primary image -- what PyAutoLens' ``Interferometer.from_fits`` and
:func:`wtilde_dask.dataset.load_dataset` read -- plus ``export.json`` (the source record, the selection and the
counts of dropped visibilities). K is not known before the data are read (flags drop visibilities), so each file
is written as a header with a placeholder row count, then the rows chunk by chunk, then the header is rewritten
in place with the final count (a FITS header is a fixed 2880-byte block, so the rewrite never moves data).
Everything is written under ``NAME.part`` and renamed at the end: an error leaves no half-written file behind.

Channel averaging (``average_channels=N``) averages N adjacent selected channels of one spectral window (the
last group of a window may be shorter), for each row and separately for the real and imaginary parts::

    V_re = sum_c wr_c Re(V_c) / sum_c wr_c,   sigma_re = 1 / sqrt(sum_c wr_c),   wr_c = 1 / sigma_re,c^2
    (the same with wi for the imaginary part)
    uv   = UVW[:, :2] x mean(f_c over the N channels of the group) / c    (UU, VV seconds x mean f for UVFITS)

The sums run over the channels that are kept (flagged and bad-weight channels carry no weight); a group with no
kept channel is dropped. The output frequency is the plain mean of the group's channel frequencies, as CASA's
``mstransform(chanaverage=True)`` sets CHAN_FREQ. A source offers averaging by implementing
``read_chunk_cube(chunk_id) -> ChannelCube`` (the chunk before flattening, for chunk ids ``[window, c0, c1, i0,
i1]``: selected channels c0:c1 of rows i0:i1 of one window) and ``channel_layout()`` (or, for the Measurement
Set reader, its ``windows``); the export then asks for chunks aligned on groups of N channels.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import NamedTuple

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.io.base import VisibilityChunk
from wtilde_dask.errors import ExportError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

__all__ = ["ChannelCube", "average_channel_cube", "aligned_chunk_ids", "flatten_cube", "export_fits", "ExportError",
           "FitsRowWriter"]

FILES = {"visibilities": "data.fits", "noise_map": "noise_map.fits", "uv_wavelengths": "uv_wavelengths.fits"}
COMMENTS = {
    "visibilities": "visibilities (K, 2): real, imag",
    "noise_map": "noise sigma (K, 2): real, imag",
    "uv_wavelengths": "uv_wavelengths (K, 2): u, v in wavelengths",
}


class ChannelCube(NamedTuple):
    """One chunk of one spectral window before flattening: selected channels x rows, Stokes I, channel-major.

    uv_base     : (n_rows, 2) float64, with ``uv_wavelengths = (uv_base * f) / uv_divisor`` for a channel at f Hz:
                  UVW[:, :2] metres and c (Measurement Set), UU/VV seconds and 1.0 (UVFITS) -- the reader's own
                  float64 arithmetic, so flattening a cube reproduces the reader bit for bit
    uv_divisor  : float
    frequencies : (n_chan,) float64, Hz, the chunk's channels
    visibilities: (n_chan, n_rows) complex128, Stokes I
    noise_map   : (n_chan, n_rows) complex128, sigma of the real / imaginary part (any value where not kept)
    keep        : (n_chan, n_rows) bool, False where flagged or of zero / non-finite weight or data
    n_flagged, n_bad_weight : the counts of the contract (:class:`~wtilde_dask.io.VisibilityChunk`)
    """

    uv_base: np.ndarray
    uv_divisor: float
    frequencies: np.ndarray
    visibilities: np.ndarray
    noise_map: np.ndarray
    keep: np.ndarray
    n_flagged: int = 0
    n_bad_weight: int = 0


def flatten_cube(cube: ChannelCube) -> VisibilityChunk:
    """The kept visibilities of a cube in the recipe's order (channel-major: k = c * n_rows + r)."""
    f = np.asarray(cube.frequencies, np.float64)[:, None]
    u = (cube.uv_base[None, :, 0] * f) / cube.uv_divisor
    v = (cube.uv_base[None, :, 1] * f) / cube.uv_divisor
    keep = cube.keep
    return VisibilityChunk(
        np.ascontiguousarray(np.stack([u[keep], v[keep]], axis=1)),
        np.ascontiguousarray(cube.visibilities[keep], dtype=np.complex128),
        np.ascontiguousarray(cube.noise_map[keep], dtype=np.complex128),
        int(cube.n_flagged),
        int(cube.n_bad_weight),
    )


def average_channel_cube(cube: ChannelCube, n: int) -> ChannelCube:
    """Average ``n`` adjacent channels of the cube (formula in the module docstring); returns the averaged cube.

    The cube's channels must start on a group boundary (the export asks the reader for aligned chunks).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"average_channels = {n!r} must be >= 1")
    n_chan = cube.visibilities.shape[0]
    starts = np.arange(0, n_chan, n)
    keep = cube.keep
    with np.errstate(divide="ignore", invalid="ignore"):
        wr = np.where(keep, 1.0 / cube.noise_map.real**2, 0.0)
        wi = np.where(keep, 1.0 / cube.noise_map.imag**2, 0.0)
        re = np.where(keep, cube.visibilities.real, 0.0)
        im = np.where(keep, cube.visibilities.imag, 0.0)
    sum_wr = np.add.reduceat(wr, starts, axis=0)
    sum_wi = np.add.reduceat(wi, starts, axis=0)
    any_kept = np.logical_or.reduceat(keep, starts, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vis = np.add.reduceat(wr * re, starts, axis=0) / sum_wr + 1j * (np.add.reduceat(wi * im, starts, axis=0) / sum_wi)
        noise = 1.0 / np.sqrt(sum_wr) + 1j / np.sqrt(sum_wi)
    counts = np.diff(np.append(starts, n_chan))
    freqs = np.add.reduceat(np.asarray(cube.frequencies, np.float64), starts) / counts
    return ChannelCube(cube.uv_base, cube.uv_divisor, freqs, vis, noise, any_kept, cube.n_flagged, cube.n_bad_weight)


def aligned_chunk_ids(layout, n_avg: int, chunk_size: int) -> list:
    """Chunk ids ``[window, c0, c1, i0, i1]`` whose channel ranges hold whole groups of ``n_avg`` channels.

    layout: [(window key, n selected channels, n rows)] in the source's order. Chunks of about ``chunk_size``
    visibilities: whole windows' rows with several groups when the rows are few, else one group x row ranges.
    Concatenated they keep the channel-major order of the recipe (groups, then rows).
    """
    out = []
    for key, n_chan, n_rows in layout:
        groups = [(c, min(c + n_avg, n_chan)) for c in range(0, n_chan, n_avg)]
        if n_rows * n_avg <= chunk_size:
            per = max(1, chunk_size // (n_rows * n_avg))
            for g in range(0, len(groups), per):
                out.append([key, groups[g][0], groups[min(g + per, len(groups)) - 1][1], 0, n_rows])
        else:
            rows = max(1, chunk_size // n_avg)
            out.extend([key, c0, c1, r, min(r + rows, n_rows)] for c0, c1 in groups for r in range(0, n_rows, rows))
    return out


class FitsRowWriter:
    """A (K, 2) float64 FITS primary image written row block by row block, K fixed at :meth:`close`."""

    def __init__(self, path, comment: str):
        from astropy.io import fits

        self.path = pathlib.Path(path)
        self.header = fits.Header()
        for key, value in (("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 2), ("NAXIS1", 2), ("NAXIS2", 0)):
            self.header[key] = value
        self.header["COMMENT"] = comment
        self.header["COMMENT"] = "written by wtilde_dask.io.export"
        self._header_bytes = self.header.tostring().encode("ascii")
        self.n_rows = 0
        self._file = open(self.path, "wb")
        self._file.write(self._header_bytes)

    def write(self, rows: np.ndarray):
        rows = np.asarray(rows, dtype=">f8")
        if rows.ndim != 2 or rows.shape[1] != 2:
            raise ValueError(f"{self.path.name}: rows have shape {rows.shape}, expected (k, 2)")
        self._file.write(np.ascontiguousarray(rows).tobytes())
        self.n_rows += rows.shape[0]

    def close(self):
        nbytes = self.n_rows * 16
        pad = (-nbytes) % 2880
        self._file.write(b"\0" * pad)
        self.header["NAXIS2"] = self.n_rows
        new = self.header.tostring().encode("ascii")
        if len(new) != len(self._header_bytes):  # cannot happen: same cards, fixed-width values
            raise RuntimeError(f"{self.path}: FITS header changed size")
        self._file.seek(0)
        self._file.write(new)
        self._file.close()

    def abort(self):
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def _channel_layout(source):
    """[(window key, n selected channels, n rows)] of a source with channels, or None."""
    if hasattr(source, "channel_layout"):
        return source.channel_layout()
    windows = getattr(source, "windows", None)  # MeasurementSetSource
    if windows and hasattr(source, "read_chunk_cube"):
        return [(w["ddid"], int(w["channels"].size), int(w["n_rows"])) for w in windows]
    return None


def _chunks(source, average_channels):
    """Yield VisibilityChunks of the source, channel-averaged when asked."""
    if not average_channels or int(average_channels) == 1:
        for cid in source.chunk_ids():
            yield source.read_chunk(cid)
        return
    layout = _channel_layout(source)
    if layout is None or not hasattr(source, "read_chunk_cube"):
        raise ExportError(
            f"{source.path}: average_channels = {average_channels} needs a source with channels "
            f"(a Measurement Set or UVFITS file); {type(source).__name__} holds flattened visibilities"
        )
    n = int(average_channels)
    for cid in aligned_chunk_ids(layout, n, getattr(source, "chunk_size", DEFAULT_CHUNK_SIZE)):
        yield flatten_cube(average_channel_cube(source.read_chunk_cube(cid), n))


def export_fits(source, out, *, average_channels: int | None = None, overwrite: bool = False, log=None) -> dict:
    """Stream ``source`` into the PyAutoLens folder ``out``; return the record also written to ``export.json``.

    Memory is one chunk of the source. Refused (nothing written): existing files in ``out`` without
    ``overwrite``, a source whose selection leaves no visibility (all flagged), ``average_channels`` < 1.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    if average_channels is not None and int(average_channels) < 1:
        raise ExportError(f"average_channels = {average_channels!r} must be >= 1")
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: output exists and is not a folder")
    names = list(FILES.values()) + ["export.json"]
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise ExportError(f"{out}: already holds {', '.join(existing)} (pass overwrite=True / --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    writers = {}
    n_flagged = n_bad = 0
    try:
        for field, name in FILES.items():
            writers[field] = FitsRowWriter(out / f"{name}.part", COMMENTS[field])
        for i, chunk in enumerate(_chunks(source, average_channels)):
            n_flagged += chunk.n_flagged
            n_bad += chunk.n_bad_weight
            writers["visibilities"].write(np.stack([chunk.visibilities.real, chunk.visibilities.imag], axis=1))
            writers["noise_map"].write(np.stack([chunk.noise_map.real, chunk.noise_map.imag], axis=1))
            writers["uv_wavelengths"].write(chunk.uv_wavelengths)
        k = writers["visibilities"].n_rows
        if k == 0:
            raise ExportError(
                f"{source.path}: the selection leaves no visibility ({n_flagged} flagged, {n_bad} of zero or "
                f"non-finite weight): nothing to export"
            )
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for field, name in FILES.items():
        (out / f"{name}.part").replace(out / name)
    record = {
        "source": source.describe(),
        "n_visibilities": int(k),
        "n_flagged": int(n_flagged),
        "n_bad_weight": int(n_bad),
        "average_channels": int(average_channels or 1),
        "files": dict(FILES),
        "seconds": time.perf_counter() - t0,
    }
    (out / "export.json").write_text(json.dumps(record, indent=1, default=str))
    log(f"export-fits: {k:,} visibilities ({n_flagged:,} flagged and {n_bad:,} of zero / non-finite weight dropped"
        f"{'' if not average_channels or average_channels == 1 else f', {average_channels} channels averaged'}) "
        f"-> {out} in {record['seconds']:.1f} s")
    return record
