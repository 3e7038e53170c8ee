"""Measurement Set v2 as a chunked Stokes I source, read with python-casacore (no CASA needed).

The convention is the PyAutoLens CASA recipe (autolens_workspace ``scripts/interferometer/casa_reduction.py``,
docs/data.md), reproduced here without CASA:

* The recipe reads ``DATA`` with CASA's ``tb.getcol`` (shape (n_corr, n_chan, n_row)), builds
  ``u_wavelengths[i, :] = UVW[0, :] * CHAN_FREQ[i] / c`` for each channel i (an array (n_chan, n_row)), averages the
  two polarisations (``np.average(visibilities, axis=0)``) and reshapes (n_chan, n_row, 2) to (n_chan * n_row, 2):
  within a spectral window the visibility index is **channel-major**, ``k = c * n_row + r``. It splits the set
  into one MS per spectral window and concatenates the windows ("You have visibilities from 4 spectral windows.
  Concatenate them in one single array"). Order here: (1) correlations -> Stokes I, (2) channels flattened
  channel-major, (3) spectral windows concatenated in selection order.
* ``uv_wavelengths = UVW[:, :2] * CHAN_FREQ / c`` in float64, evaluated as ``(uvw * f) / C_LIGHT`` with
  ``C_LIGHT = 299792458.0`` m/s; UVW in metres, CHAN_FREQ in Hz from SPECTRAL_WINDOW via DATA_DESCRIPTION.
* Stokes I from the parallel hands named by POLARIZATION.CORR_TYPE (9, 12 = XX, YY; 5, 8 = RR, LL), whatever the
  number of correlations (2 or 4) and their order: ``I = (a + b) / 2`` with ``sigma = 0.5 * sqrt(sa**2 + sb**2)``
  for both the real and imaginary part (CASA's SIGMA is per component; the recipe stacks it as (sigma, sigma)). A
  single parallel hand is used as is. Data with no parallel hand (cross hands only) is refused. Arithmetic:
  visibilities cast complex64 -> complex128, then ``(a + b) / 2``; sigmas cast float32 -> float64.
* Noise from the first column present (and defined) of SIGMA_SPECTRUM, SIGMA, WEIGHT_SPECTRUM, WEIGHT (weights:
  ``sigma = 1 / sqrt(w)``), or the one asked for (``noise_column``); :meth:`MeasurementSetSource.describe` names it.
* Flags: a Stokes I visibility is dropped (counted in ``n_flagged``) when FLAG_ROW or FLAG of either parallel hand
  is set (CASA's ``stokes='I'``, which needs both hands). Unflagged visibilities with a zero / negative /
  non-finite sigma or weight, or non-finite data (either hand) or UVW, are dropped and counted in
  ``n_bad_weight``. The run never crashes on them.
* Sign convention: kept as in the MS (V = sum I exp(-2 pi i (u l + v m)), l East, m North); with PyAutoArray's
  transformer exp(-2 pi i (x u + y v)) the grid's x is l and y is m.

Selection: ``field`` (a FIELD name or id, or a list; default: the one field in the main table, refused when
there are several), ``spw`` (ids, names, ``"0~3"`` ranges, CASA's ``"SPW:CHANS"`` per window, comma separated;
default all windows with data; ``"0-3"`` is read as ``"0~3"``), ``channels`` (``"A~B"`` inclusive, ``"A"``, or
``(start, stop)`` / ``range``), ``column`` (DATA, CORRECTED_DATA, MODEL_DATA).

Chunks (:meth:`chunk_ids`) are ``[ddid, c0, c1, i0, i1]``: selected channels ``c0:c1`` of the selected rows
``i0:i1`` of one DATA_DESC_ID, at most ``chunk_size`` visibilities (rows x channels, flagged included). With
``order="recipe"`` (default) they are whole channels of all rows, or one channel x a row range, so that their
concatenation is the recipe's order; a window larger than a chunk is then read once per channel (a one-channel
``getcolslice`` decodes whole tiles). ``order="rows"`` gives chunks of rows with all their selected channels
(channel-major within the chunk): every cell is read once, the same visibilities come in another order -- what a
sum over visibilities (the W-tilde pass) wants. Rows are read with ``getcol`` / ``getcolslice`` over contiguous runs of
the selected rows (found once by a bounded scan of DATA_DESC_ID and FIELD_ID), never through a TaQL reference
table; memory is bounded by the chunk size.

Three modules: the plan (:mod:`wtilde_dask.io.ms_plan`: subtables and selection -> windows, row runs, chunks, once
on the client), the reads (:mod:`wtilde_dask.io.ms_table`: the only reader module that opens casacore tables) and
this one (:class:`MeasurementSetSource`: a chunk's cells -> Stokes I, flags and noise, on the workers).

Why python-casacore directly (and not dask-ms / xarray-ms): the chunks are row runs of one window with a channel
slice, which ``getcol`` / ``getcolslice`` read with nothing in between, and dask-ms (itself built on
python-casacore) was not faster. ``python -m wtilde_dask.bench.ms_read`` (XX/YY, chunks of 1e6 visibilities,
2 cores shared with other jobs), plain python-casacore ``getcol`` of UVW, DATA, FLAG, FLAG_ROW, SIGMA vs dask-ms
0.2.32 ``xds_from_ms`` of the same columns in the same row chunks vs this reader (everything: Stokes I, uv, flags,
noise), as first measured: 1.28e7 visibilities (2 x 64 channels x 1e5 rows, best of 5) 0.207 s / 0.324 s /
0.767 s (``order="rows"``) / 1.333 s (``order="recipe"``); 1.02e8 visibilities (2 x 64 x 8e5, one run) 2.62 s /
2.30 s / 7.20 s / 62.7 s. After :meth:`read_chunk_cube` was reworked (one channel-major array per column, one
compress; quiet machine, no dask-ms in that environment): ``--rows 100000 --channels 64 --spw 2 --repeat 5``
plain 0.144 s, ``order="rows"`` 0.599 s (0.24 of the plain read), ``order="recipe"`` 1.004 s.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE, SPEED_OF_LIGHT
from wtilde_dask.errors import DatasetError
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource
from wtilde_dask.io.ms_plan import DATA_COLUMNS, NOISE_COLUMNS, ORDERS, chunk_ids, plan_selection, row_segments
from wtilde_dask.io.ms_table import CORR_TYPE_NAMES as CORR_NAMES
from wtilde_dask.io.ms_table import read_rows

__all__ = [
    "C_LIGHT",
    "DATA_COLUMNS",
    "NOISE_COLUMNS",
    "MeasurementSetSource",
    "is_measurement_set",
]

C_LIGHT = SPEED_OF_LIGHT  # m / s


class _Cells(NamedTuple):
    """One chunk's cells before flattening (``MeasurementSetSource._read``): (n_chan, n_row) channel-major."""

    uv_base: np.ndarray  # (n_row, 2) float64 UVW[:, :2] in metres
    freq: np.ndarray  # (n_chan,) Hz
    vis_sum: np.ndarray  # (n_chan, n_row) complex128: a + b of the two hands (halve), or the one hand
    halve: bool  # Stokes I = vis_sum / 2
    sigma: np.ndarray  # (n_chan or 1, n_row) float64
    keep: np.ndarray  # (n_chan, n_row) bool, C order
    n_keep: int
    n_flagged: int
    n_bad: int


def is_measurement_set(path) -> bool:
    """True for a casacore table directory whose table.info says ``Type = Measurement Set``."""
    p = pathlib.Path(path)
    info = p / "table.info"
    if not (p.is_dir() and (p / "table.dat").is_file() and info.is_file()):
        return False
    try:
        first = info.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return False
    return first.split("=", 1)[-1].strip().lower() == "measurement set"


class MeasurementSetSource(VisibilitySource):
    """A Measurement Set v2 read in chunks of Stokes I visibilities (see the module docstring).

    Parameters
    ----------
    path : the ``.ms`` directory.
    field, spw, channels, column : the selection (module docstring).
    noise_column : None (first of SIGMA_SPECTRUM, SIGMA, WEIGHT_SPECTRUM, WEIGHT present) or one of those.
    chunk_size : at most this many visibilities (rows x channels) per chunk.
    check_usable : scan flags and weights chunk by chunk until one usable visibility is found; refuse the set
        when there is none (all flagged / zero weight). Reads one chunk's flags and noise in the usual case.
    """

    format = "measurement-set"

    def __init__(
        self,
        path,
        *,
        field=None,
        spw=None,
        channels=None,
        column: str = "DATA",
        noise_column: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        order: str = "recipe",
        check_usable: bool = True,
    ):
        self.path = os.fspath(path)
        src = self.path
        if int(chunk_size) != chunk_size or int(chunk_size) < 1:
            raise ValueError(f"chunk_size = {chunk_size!r} must be a whole number >= 1")
        self.chunk_size = int(chunk_size)
        if order not in ORDERS:
            raise ValueError(f"order = {order!r} must be one of {ORDERS}")
        self.order = order
        p = pathlib.Path(src)
        if not p.exists():
            raise DatasetError(f"{src}: Measurement Set does not exist")
        if not is_measurement_set(p):
            why = "no table.dat (not a casacore table)" if not (p / "table.dat").is_file() else (
                "table.info does not say 'Type = Measurement Set'"
            )
            raise DatasetError(f"{src}: not a Measurement Set: {why}")
        self.column = str(column).upper()
        if self.column not in DATA_COLUMNS:
            raise DatasetError(f"{src}: column {column!r} is not one of {', '.join(DATA_COLUMNS)}")

        def plain(value):  # JSON-able, and accepted again by this constructor
            if value is None or isinstance(value, (str, int)):
                return value
            if isinstance(value, range):
                if value.step != 1:
                    raise DatasetError(f"{src}: channels {value!r}: a range with a step is not supported")
                return [value.start, value.stop]
            return [x if isinstance(x, str) else int(x) for x in value]


        self.selection = {"field": plain(field), "spw": plain(spw), "channels": plain(channels), "column": self.column}
        plan = plan_selection(src, self.column, field, spw, channels, noise_column)
        self.windows = plan.windows  # one dict per selected DATA_DESC_ID (wtilde_dask.io.ms_plan.plan_selection)
        self.field_ids, self.field_names = plan.field_ids, plan.field_names
        self.spw_ids, self.spw_names = plan.spw_ids, plan.spw_names
        self.noise_column = plan.noise_column
        self._files = plan.files
        if check_usable:
            self._check_usable()

    def _check_usable(self):
        n_flagged = n_bad = 0
        for chunk_id in self._chunk_ids("rows"):  # each cell once, whatever the order asked for
            keep, flagged, bad = self._read(chunk_id, masks_only=True)
            if keep:
                return
            n_flagged += flagged
            n_bad += bad
        sel = ", ".join(f"{k} {v!r}" for k, v in self.selection.items())
        raise DatasetError(
            f"{self.path}: every selected visibility is flagged or has a zero / non-finite {self.noise_column} "
            f"({sel}; {n_flagged} flagged, {n_bad} with bad weight or data): nothing to use"
        )

    # ------------------------------------------------------------------ contract
    def chunk_ids(self) -> list:
        return self._chunk_ids(self.order)

    def _chunk_ids(self, order: str) -> list:
        return chunk_ids(self.windows, self.chunk_size, order)

    def _window(self, ddid: int) -> dict:
        for w in self.windows:
            if w["ddid"] == ddid:
                return w
        raise KeyError(f"{self.path}: chunk names DATA_DESC_ID {ddid}, which is not selected")

    def _read(self, chunk_id, masks_only: bool = False):
        ddid, c0, c1, i0, i1 = (int(x) for x in chunk_id)
        w = self._window(ddid)
        chans = w["channels"][c0:c1]
        lo, hi = int(chans.min()), int(chans.max())
        pick = None if chans.size == hi - lo + 1 else chans - lo  # None: the slice lo..hi is the selection
        whole = lo == 0 and hi == w["n_chan_spw"] - 1
        blc, trc = [lo, 0], [hi, w["n_corr"] - 1]
        spectrum = self.noise_column.endswith("_SPECTRUM")
        cols = {"FLAG": True, "FLAG_ROW": False, self.noise_column: spectrum}
        if not masks_only:
            cols.update({"UVW": False, self.column: True})
        # the per-row columns of rows i0:i1 are the same for every channel chunk of those rows (recipe order reads a
        # large window channel by channel): the last ones read in this process are kept (bounded by one chunk)
        row_key = (self.path, self._files.get("table.dat", {}).get("mtime"), tuple(self.field_ids), ddid, i0, i1,
                   self.noise_column)
        got = read_rows(self.path, row_segments(w, i0, i1), cols, blc, trc, whole=whole,
                        where=f"spw {w['spw']}, DATA_DESC_ID {ddid}", cache_key=row_key)
        hands = w["hands"]

        def hand(cube, h):
            """(n_chan_chunk, n_row) view of correlation h of a (n_row, n_chan, n_corr) cell slice: channel-major,
            the recipe's order."""
            return (cube[:, :, h] if pick is None else cube[:, pick, h]).T

        flag = got["FLAG"]
        n_rows = flag.shape[0]
        n_chan = int(chans.size)
        # (n_chan, n_row) C-ordered masks and sums: channel-major, written once from the (row, chan, corr) cells
        flagged = np.empty((n_chan, n_rows), bool)
        if len(hands) == 2:
            np.logical_or(hand(flag, hands[0]), hand(flag, hands[1]), out=flagged)
        else:
            np.copyto(flagged, hand(flag, hands[0]))
        flagged |= got["FLAG_ROW"].astype(bool, copy=False)[None, :]
        noise = got[self.noise_column]
        if spectrum:
            per_hand = [hand(noise, h).astype(np.float64) for h in hands]  # (n_chan, n_row)
        else:
            per_hand = [noise[None, :, h].astype(np.float64) for h in hands]  # (1, n_row): same for all channels
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.noise_column.startswith("WEIGHT"):
                per_hand = [1.0 / np.sqrt(x) for x in per_hand]
            good = np.isfinite(per_hand[0]) & (per_hand[0] > 0)
            for sig in per_hand[1:]:
                good = good & np.isfinite(sig) & (sig > 0)
        if masks_only:
            keep = ~flagged & good
            n_keep = int(np.count_nonzero(keep))
            n_flagged = int(np.count_nonzero(flagged))
            return n_keep, n_flagged, flagged.size - n_keep - n_flagged
        uv_base = np.ascontiguousarray(got["UVW"][:, :2], dtype=np.float64)
        data = got[self.column]
        # Stokes I: the sum of the hands cast to complex128 (halved by the caller: (a + b) / 2 either way), or the
        # one hand. A float32 pair is finite exactly when its float64 sum is (no overflow in float64), so
        # isfinite(sum) is isfinite(a) & isfinite(b).
        vis_sum = np.empty((n_chan, n_rows), np.complex128)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite entries are dropped by keep
            if len(hands) == 2:
                np.add(hand(data, hands[0]), hand(data, hands[1]), out=vis_sum, dtype=np.complex128)
                sigma = 0.5 * np.sqrt(per_hand[0] ** 2 + per_hand[1] ** 2)
            else:
                np.copyto(vis_sum, hand(data, hands[0]))
                sigma = per_hand[0]
        keep = np.isfinite(vis_sum)
        good = good & np.isfinite(uv_base).all(axis=1)[None, :]
        if not good.all():
            keep &= good
        keep &= ~flagged
        n_keep = int(np.count_nonzero(keep))
        n_flagged = int(np.count_nonzero(flagged))
        n_bad = flagged.size - n_keep - n_flagged  # unflagged and not good
        return _Cells(uv_base, w["chan_freq"][c0:c1], vis_sum, len(hands) == 2, sigma, keep, n_keep, n_flagged, n_bad)

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        """The chunk's kept Stokes I visibilities, channel-major (``k = c * n_rows + r``) as in the recipe."""
        cells = self._read(chunk_id)
        keep, n_keep = cells.keep, cells.n_keep
        # uv = (UVW * f) / c for every (channel, row), compressed once as complex pairs
        full = np.empty(keep.shape + (2,))
        np.multiply(cells.uv_base[None, :, :], cells.freq[:, None, None], out=full)
        full /= C_LIGHT
        uv = full.view(np.complex128)[:, :, 0][keep].view(np.float64).reshape(n_keep, 2)
        vis = cells.vis_sum[keep]
        if cells.halve:
            vis /= 2
        sig = np.broadcast_to(cells.sigma, keep.shape)[keep]
        noise = np.empty(n_keep, np.complex128)
        noise.real = sig
        noise.imag = sig
        return VisibilityChunk(uv, vis, noise, cells.n_flagged, cells.n_bad)

    def read_chunk_cube(self, chunk_id):
        """The chunk before flattening, as a :class:`wtilde_dask.io.export.ChannelCube` (channels x rows), for
        channel averaging; ``flatten_cube`` of it equals :meth:`read_chunk` bit for bit."""
        from wtilde_dask.io.export import ChannelCube

        cells = self._read(chunk_id)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite cells are not kept
            vis = cells.vis_sum / 2 if cells.halve else cells.vis_sum
        sig = np.broadcast_to(cells.sigma, cells.keep.shape)
        return ChannelCube(cells.uv_base, C_LIGHT, np.array(cells.freq), vis, sig + 1j * sig, cells.keep,
                           cells.n_flagged, cells.n_bad)

    @property
    def n_visibilities_max(self) -> int:
        """Selected rows x selected channels, before flags: an upper bound of K."""
        return int(sum(w["n_rows"] * w["channels"].size for w in self.windows))

    def describe(self) -> dict:
        windows = []
        for w in self.windows:
            ch = w["channels"]
            contiguous = bool(ch.size == ch[-1] - ch[0] + 1 and np.all(np.diff(ch) == 1))
            windows.append(
                {
                    "data_desc_id": w["ddid"],
                    "spw": w["spw"],
                    "polarization_id": w["pol"],
                    "corr_types": [CORR_NAMES.get(c, str(c)) for c in w["corr_types"]],
                    "stokes_i_from": [CORR_NAMES.get(w["corr_types"][h], "?") for h in w["hands"]],
                    "channels": [int(ch[0]), int(ch[-1])] if contiguous else [int(c) for c in ch],
                    "n_rows": w["n_rows"],
                }
            )
        return {
            "format": self.format,
            "path": str(pathlib.Path(self.path).resolve()),
            "selection": dict(self.selection),
            "field_ids": [int(f) for f in self.field_ids],
            "field_names": self.field_names,
            "spw_ids": [int(s) for s in self.spw_ids],
            "column": self.column,
            "noise_column": self.noise_column,
            "windows": windows,
            "n_visibilities_max": self.n_visibilities_max,
            "order": self.order,
            "files": self._files,
        }
