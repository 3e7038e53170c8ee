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
import threading
from typing import NamedTuple

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE, SPEED_OF_LIGHT
from wtilde_dask.errors import DatasetError
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource
from wtilde_dask.io.ms_writer import CORR_TYPE_NAMES as CORR_NAMES
from wtilde_dask.io.selection import parse_channels

__all__ = [
    "C_LIGHT",
    "DATA_COLUMNS",
    "NOISE_COLUMNS",
    "MeasurementSetSource",
    "is_measurement_set",
]

C_LIGHT = SPEED_OF_LIGHT  # m / s
DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")
NOISE_COLUMNS = ("SIGMA_SPECTRUM", "SIGMA", "WEIGHT_SPECTRUM", "WEIGHT")
PARALLEL_PAIRS = ((9, 12), (5, 8))
PARALLEL_SINGLE = (9, 12, 5, 8)
ORDERS = ("recipe", "rows")
SCAN_ROWS = 1_000_000  # rows of DATA_DESC_ID / FIELD_ID / FLAG_ROW read at a time when planning

# casacore tables are not thread-safe: one read at a time per process (python-casacore holds the GIL in getcol
# anyway, so nothing is lost); several worker processes read in parallel.
_CASACORE_LOCK = threading.RLock()
_ROW_CACHE: dict = {}  # {"key": (path, mtime, fields, ddid, i0, i1, noise column), "columns": {name: array}}


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


def _open(path: str):
    from casacore import tables

    return tables.table(path, ack=False, readonly=True, lockoptions="autonoread")


def _split_items(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, (list, tuple, range, np.ndarray)):
        return [str(v).strip() if isinstance(v, str) else v for v in value]
    return [value]


def _merge_runs(runs: np.ndarray) -> np.ndarray:
    """Merge sorted (n, 2) [start, length] row runs that touch into (m, 2) runs."""
    if runs.shape[0] == 0:
        return np.zeros((0, 2), np.int64)
    runs = runs[np.argsort(runs[:, 0], kind="stable")]
    ends = runs[:, 0] + runs[:, 1]
    new = np.r_[True, runs[1:, 0] != ends[:-1]]
    group = np.cumsum(new) - 1
    starts = runs[new, 0]
    lengths = np.bincount(group, weights=runs[:, 1]).astype(np.int64)
    return np.stack([starts, lengths], axis=1).astype(np.int64)


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
        with _CASACORE_LOCK:
            self._plan(src, field, spw, channels, noise_column)
        if check_usable:
            self._check_usable()

    # ------------------------------------------------------------------ planning (on the client, once)
    def _plan(self, src, field, spw, channels, noise_column):
        from casacore import tables

        try:
            ms = _open(src)
        except RuntimeError as exc:
            raise DatasetError(f"{src}: cannot open as a Measurement Set ({exc})") from None
        try:
            colnames = set(ms.colnames())
            for need in ("UVW", "FLAG", "FLAG_ROW", "DATA_DESC_ID", "FIELD_ID", self.column):
                if need not in colnames:
                    raise DatasetError(
                        f"{src}: column {need} is missing from the main table (it has {', '.join(sorted(colnames))})"
                    )
            n_rows = ms.nrows()
            keywords = ms.getkeywords()

            def sub(name):
                if name not in keywords:
                    raise DatasetError(f"{src}: subtable {name} is missing")
                return tables.table(f"{src}/{name}", ack=False, readonly=True, lockoptions="autonoread")

            with sub("FIELD") as t:
                field_names = [str(n) for n in t.getcol("NAME")] if t.nrows() else []
                phase_dirs = [np.asarray(t.getcell("PHASE_DIR", i), np.float64) for i in range(t.nrows())]
            with sub("DATA_DESCRIPTION") as t:
                dd_spw = t.getcol("SPECTRAL_WINDOW_ID").astype(int) if t.nrows() else np.zeros(0, int)
                dd_pol = t.getcol("POLARIZATION_ID").astype(int) if t.nrows() else np.zeros(0, int)
            with sub("SPECTRAL_WINDOW") as t:
                chan_freq = [np.asarray(t.getcell("CHAN_FREQ", i), np.float64) for i in range(t.nrows())]
                spw_names = [str(n) for n in t.getcol("NAME")] if t.nrows() else []
            with sub("POLARIZATION") as t:
                corr_types = [np.asarray(t.getcell("CORR_TYPE", i)).astype(int).tolist() for i in range(t.nrows())]

            # runs of rows with one (DATA_DESC_ID, FIELD_ID): a bounded scan of two integer columns
            segments = []  # (start, length, ddid, field id)
            for start in range(0, n_rows, SCAN_ROWS):
                n = min(SCAN_ROWS, n_rows - start)
                dd = ms.getcol("DATA_DESC_ID", start, n).astype(np.int64)
                fi = ms.getcol("FIELD_ID", start, n).astype(np.int64)
                change = np.flatnonzero((np.diff(dd) != 0) | (np.diff(fi) != 0)) + 1
                first = np.r_[0, change]
                lengths = np.diff(np.r_[first, n])
                segments.append(np.stack([first + start, lengths, dd[first], fi[first]], axis=1))
            segments = np.concatenate(segments) if segments else np.zeros((0, 4), np.int64)
            counts = {}
            for f_id in np.unique(segments[:, 3]):
                counts[int(f_id)] = int(segments[segments[:, 3] == f_id, 1].sum())
            field_ids = self._select_fields(src, field, field_names, sorted(counts), counts)
            used = [f for f in field_ids if f in counts and f < len(phase_dirs)]
            for f in used[1:]:  # one phase centre: the image grid is relative to it
                d0, d1 = phase_dirs[used[0]], phase_dirs[f]
                if d0.shape != d1.shape or not np.allclose(d0, d1, rtol=0.0, atol=1e-10):
                    raise DatasetError(
                        f"{src}: FIELD {used[0]} ({field_names[used[0]]!r}) and FIELD {f} ({field_names[f]!r}) have "
                        f"different PHASE_DIR ({d0.ravel().tolist()} vs {d1.ravel().tolist()} rad): a mosaic; "
                        "select one field"
                    )
            chosen = segments[np.isin(segments[:, 3], field_ids)]
            runs = {int(d): _merge_runs(chosen[chosen[:, 2] == d, :2]) for d in np.unique(chosen[:, 2])}
            for d in runs:
                if not 0 <= d < dd_spw.size:
                    raise DatasetError(
                        f"{src}: DATA_DESC_ID {d} in the main table has no DATA_DESCRIPTION row "
                        f"({dd_spw.size} rows)"
                    )
            spw_with_data = sorted({int(dd_spw[d]) for d in runs})
            spw_chans = self._select_spws(
                src, spw, channels, spw_names, chan_freq, spw_with_data, field_ids, field_names
            )

            self.windows = []  # one entry per selected DATA_DESC_ID, in the recipe's order
            for s, chans in spw_chans:
                ddids = [d for d in sorted(runs) if int(dd_spw[d]) == s]
                if not ddids:
                    raise DatasetError(
                        f"{src}: spw {s} ({spw_names[s] if s < len(spw_names) else ''}) has no rows for field "
                        f"{self._field_label(field_ids, field_names)}"
                    )
                for d in ddids:
                    pol = int(dd_pol[d])
                    if not 0 <= pol < len(corr_types):
                        raise DatasetError(
                            f"{src}: DATA_DESCRIPTION row {d} names POLARIZATION row {pol}, which is missing"
                        )
                    codes = corr_types[pol]
                    hands = self._hands(src, codes, pol, s)
                    r = runs[d]
                    self.windows.append(
                        {
                            "ddid": d,
                            "spw": s,
                            "pol": pol,
                            "corr_types": codes,
                            "hands": hands,
                            "channels": chans,
                            "chan_freq": chan_freq[s][chans],
                            "n_chan_spw": int(chan_freq[s].size),
                            "n_corr": len(codes),
                            "runs": r,
                            "run_offsets": np.r_[0, np.cumsum(r[:, 1])].astype(np.int64),
                            "n_rows": int(r[:, 1].sum()),
                        }
                    )
            self.field_ids = field_ids
            self.field_names = [field_names[f] if f < len(field_names) else str(f) for f in field_ids]
            self.spw_ids = [s for s, _ in spw_chans]
            self.spw_names = [spw_names[s] if s < len(spw_names) else str(s) for s in self.spw_ids]
            first_row = int(self.windows[0]["runs"][0, 0])
            if not ms.iscelldefined(self.column, first_row):
                raise DatasetError(f"{src}: column {self.column} has no value in row {first_row} (an empty column)")
            self.noise_column = self._noise(src, ms, colnames, noise_column, first_row)
        finally:
            ms.close()
        self._files = self._file_records(pathlib.Path(src))

    @staticmethod
    def _field_label(field_ids, field_names) -> str:
        return ", ".join(f"{f} ({field_names[f]})" if f < len(field_names) else str(f) for f in field_ids)

    def _select_fields(self, src, field, field_names, used, counts) -> list[int]:
        listing = ", ".join(
            f"{i}: {n!r} ({counts.get(i, 0)} rows)" for i, n in enumerate(field_names)
        ) or "none"
        if field is None:
            if len(used) == 1:
                return used
            if not used:
                raise DatasetError(f"{src}: the main table has no rows")
            raise DatasetError(
                f"{src}: the main table holds {len(used)} fields ({listing}); choose one with field (--field NAME|ID)"
            )
        ids = []
        for item in _split_items(field):
            text = str(item).strip()
            matches = [i for i, n in enumerate(field_names) if n == text]
            if matches:
                ids.extend(matches)
            elif text.lstrip("-").isdigit() and 0 <= int(text) < len(field_names):
                ids.append(int(text))
            else:
                raise DatasetError(f"{src}: FIELD {text!r} not found (FIELD table: {listing})")
        ids = sorted(set(ids))
        if not any(i in used for i in ids):
            raise DatasetError(
                f"{src}: FIELD {field!r} has no rows in the main table (FIELD table: {listing})"
            )
        return ids

    def _select_spws(self, src, spw, channels, spw_names, chan_freq, with_data, field_ids, field_names):
        """[(spw id, selected channel indices)] in selection order."""
        n_spw = len(chan_freq)
        out = []
        items = _split_items(spw)
        if not items:
            items = with_data
        for item in items:
            text = str(item).strip()
            spec, chan_text = (text.split(":", 1) + [None])[:2] if ":" in text else (text, None)
            spec = spec.strip()
            ids = []
            if spec in spw_names:
                ids = [i for i, n in enumerate(spw_names) if n == spec]
            elif any(sep in spec and all(t.strip().isdigit() for t in spec.split(sep, 1)) for sep in "~-"):
                sep = "~" if "~" in spec else "-"
                a, b = (int(t) for t in spec.split(sep, 1))
                ids = list(range(a, b + 1))
            elif spec.isdigit() or (isinstance(item, (int, np.integer))):
                ids = [int(spec)]
            else:
                names = ", ".join(f"{i}: {n!r}" for i, n in enumerate(spw_names))
                raise DatasetError(f"{src}: spw {text!r} not found (SPECTRAL_WINDOW table: {names})")
            for s in ids:
                if not 0 <= s < n_spw:
                    names = ", ".join(f"{i}: {n!r}" for i, n in enumerate(spw_names))
                    raise DatasetError(f"{src}: spw {s} not found (SPECTRAL_WINDOW table: {names})")
                if s not in with_data:
                    raise DatasetError(
                        f"{src}: spw {s} ({spw_names[s]!r}) has no rows for field "
                        f"{self._field_label(field_ids, field_names)} (spws with data: {with_data})"
                    )
                if any(s == done for done, _ in out):
                    raise DatasetError(f"{src}: spw {s} is selected twice in spw {spw!r}")
                chans = parse_channels(chan_text if chan_text is not None else channels, chan_freq[s].size,
                                        f"{src}: spw {s}")
                out.append((s, chans))
        return out

    @staticmethod
    def _hands(src, codes, pol, spw) -> tuple:
        for a, b in PARALLEL_PAIRS:
            if a in codes and b in codes:
                return (codes.index(a), codes.index(b))
        for a in PARALLEL_SINGLE:
            if a in codes:
                return (codes.index(a),)
        names = ", ".join(CORR_NAMES.get(c, str(c)) for c in codes)
        raise DatasetError(
            f"{src}: POLARIZATION row {pol} (spw {spw}) has CORR_TYPE {codes} ({names}): no parallel hand "
            "(XX, YY, RR, LL) to form Stokes I from (cross hands only)"
        )

    def _noise(self, src, ms, colnames, noise_column, row) -> str:
        def usable(name):
            return name in colnames and ms.iscelldefined(name, row)

        if noise_column is not None:
            name = str(noise_column).upper()
            if name not in NOISE_COLUMNS:
                raise DatasetError(f"{src}: noise column {noise_column!r} is not one of {', '.join(NOISE_COLUMNS)}")
            if not usable(name):
                raise DatasetError(f"{src}: noise column {name} is missing or empty in row {row}")
            return name
        for name in NOISE_COLUMNS:
            if usable(name):
                return name
        raise DatasetError(f"{src}: no noise column: none of {', '.join(NOISE_COLUMNS)} is present with values")

    @staticmethod
    def _file_records(root: pathlib.Path) -> dict:
        """size and mtime of the main table's files and of the subtables the reader uses."""
        out = {}
        for sub in ("", "SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION", "FIELD"):
            folder = root / sub if sub else root
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                if f.is_file() and f.name.startswith("table.") and f.name != "table.lock":
                    st = f.stat()
                    out[f"{sub}/{f.name}" if sub else f.name] = {"size": int(st.st_size), "mtime": float(st.st_mtime)}
        return out

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
        out = []
        for w in self.windows:
            n_r, n_c = w["n_rows"], int(w["channels"].size)
            if order == "rows":
                per = max(1, self.chunk_size // n_c)
                out.extend([w["ddid"], 0, n_c, r, min(r + per, n_r)] for r in range(0, n_r, per))
            elif n_r <= self.chunk_size:
                per = max(1, min(n_c, self.chunk_size // n_r))
                out.extend([w["ddid"], c, min(c + per, n_c), 0, n_r] for c in range(0, n_c, per))
            else:
                out.extend(
                    [w["ddid"], c, c + 1, r, min(r + self.chunk_size, n_r)]
                    for c in range(n_c)
                    for r in range(0, n_r, self.chunk_size)
                )
        return out

    def _window(self, ddid: int) -> dict:
        for w in self.windows:
            if w["ddid"] == ddid:
                return w
        raise KeyError(f"{self.path}: chunk names DATA_DESC_ID {ddid}, which is not selected")

    @staticmethod
    def _segments(w: dict, i0: int, i1: int) -> list[tuple[int, int]]:
        """Table (startrow, nrow) runs covering selected rows i0:i1 of a window."""
        offs, runs = w["run_offsets"], w["runs"]
        first = int(np.searchsorted(offs, i0, side="right")) - 1
        out = []
        j = first
        while j < runs.shape[0] and offs[j] < i1:
            lo, hi = max(i0, offs[j]), min(i1, offs[j + 1])
            out.append((int(runs[j, 0] + (lo - offs[j])), int(hi - lo)))
            j += 1
        return out

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
        cached = {}
        with _CASACORE_LOCK:
            if _ROW_CACHE.get("key") == row_key:
                cached = {c: v for c, v in _ROW_CACHE["columns"].items() if c in cols and not cols[c]}
        parts = {c: [] for c in cols if c not in cached}
        with _CASACORE_LOCK:
            ms = _open(self.path)
            try:
                for start, n in self._segments(w, i0, i1):
                    for c in parts:
                        sliced = cols[c]
                        try:
                            if sliced and not whole:
                                parts[c].append(ms.getcolslice(c, blc, trc, startrow=start, nrow=n))
                            else:
                                parts[c].append(ms.getcol(c, start, n))
                        except RuntimeError as exc:  # an undefined cell, a cell of another shape, a damaged file
                            raise DatasetError(
                                f"{self.path}: column {c} rows {start}..{start + n - 1} (spw {w['spw']}, "
                                f"DATA_DESC_ID {ddid}) cannot be read: {exc}"
                            ) from None
            finally:
                ms.close()
        got = {c: (v[0] if len(v) == 1 else np.concatenate(v)) for c, v in parts.items()}
        got.update(cached)
        with _CASACORE_LOCK:
            if _ROW_CACHE.get("key") != row_key:
                _ROW_CACHE.clear()
                _ROW_CACHE.update(key=row_key, columns={})
            for c in cols:
                if not cols[c]:
                    got[c].setflags(write=False)  # shared with later chunks of these rows
                    _ROW_CACHE["columns"][c] = got[c]
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
