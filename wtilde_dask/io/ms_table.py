"""The reads of a Measurement Set: the one reader module that opens python-casacore tables.

Everything the readers take from a Measurement Set goes through here (like dask-ms's table proxy): the main
table's columns and the subtables the plan needs (:func:`read_tables`), whether cells hold values
(:func:`defined_columns`), and the main-table reads of one chunk's row runs (:func:`read_rows`). Tables are opened
read-only, one access at a time per process (:data:`CASACORE_LOCK`), and closed after each call; rows are read with
``getcol`` / ``getcolslice`` over contiguous row runs, never through a TaQL reference table.
:func:`open_table` gives the listobs-like summary (:mod:`wtilde_dask.io.summary`) its tables.

Also the casacore Stokes enum (:data:`CORR_TYPE_CODES`, POLARIZATION.CORR_TYPE), shared with the writer.
"""

from __future__ import annotations

import contextlib
import threading
from typing import NamedTuple

import numpy as np

from wtilde_dask.errors import DatasetError

__all__ = ["CASACORE_LOCK", "CORR_TYPE_CODES", "CORR_TYPE_NAMES", "MSTables", "SCAN_ROWS", "defined_columns",
           "open_table", "read_rows", "read_tables"]

#: casacore Stokes enum codes of the correlation products an interferometer records
CORR_TYPE_CODES = {
    "I": 1, "Q": 2, "U": 3, "V": 4,
    "RR": 5, "RL": 6, "LR": 7, "LL": 8,
    "XX": 9, "XY": 10, "YX": 11, "YY": 12,
}  # fmt: skip
CORR_TYPE_NAMES = {code: name for name, code in CORR_TYPE_CODES.items()}

SCAN_ROWS = 1_000_000  # rows of DATA_DESC_ID / FIELD_ID read at a time when scanning for row runs

# casacore tables are not thread-safe: one read at a time per process (python-casacore holds the GIL in getcol
# anyway, so nothing is lost); several worker processes read in parallel.
CASACORE_LOCK = threading.RLock()
_ROW_CACHE: dict = {}  # {"key": (path, mtime, fields, ddid, i0, i1, noise column), "columns": {name: array}}


class MSTables(NamedTuple):
    """What the plan reads of a Measurement Set before choosing rows (:func:`read_tables`)."""

    colnames: set  # main-table column names
    n_rows: int  # main-table rows
    field_names: list  # FIELD.NAME per FIELD row
    phase_dirs: list  # FIELD.PHASE_DIR per FIELD row, float64 radians
    dd_spw: np.ndarray  # (n_dd,) int: DATA_DESCRIPTION.SPECTRAL_WINDOW_ID
    dd_pol: np.ndarray  # (n_dd,) int: DATA_DESCRIPTION.POLARIZATION_ID
    chan_freq: list  # SPECTRAL_WINDOW.CHAN_FREQ per window, float64 Hz
    spw_names: list  # SPECTRAL_WINDOW.NAME per window
    corr_types: list  # POLARIZATION.CORR_TYPE per row, lists of int codes
    segments: np.ndarray  # (n, 4) int64 [start, length, DATA_DESC_ID, FIELD_ID]: runs of rows of one (ddid, field)


def _open(path: str, subtable: str | None = None):
    from casacore import tables

    return tables.table(f"{path}/{subtable}" if subtable else path, ack=False, readonly=True,
                        lockoptions="autonoread")


@contextlib.contextmanager
def open_table(path, subtable: str | None = None):
    """The main table (or ``subtable``) of the Measurement Set at ``path``, read-only, under the casacore lock."""
    with CASACORE_LOCK:
        table = _open(str(path), subtable)
        try:
            yield table
        finally:
            table.close()


def read_tables(src: str, required=()) -> MSTables:
    """The main table's columns and row count, the FIELD, DATA_DESCRIPTION, SPECTRAL_WINDOW and POLARIZATION
    subtables, and the runs of rows of one (DATA_DESC_ID, FIELD_ID) (a bounded scan of those two integer columns).

    ``required``: main-table columns that must exist (a :class:`DatasetError` naming the missing one otherwise).
    """
    with CASACORE_LOCK:
        try:
            ms = _open(src)
        except RuntimeError as exc:
            raise DatasetError(f"{src}: cannot open as a Measurement Set ({exc})") from None
        try:
            colnames = set(ms.colnames())
            for need in required:
                if need not in colnames:
                    raise DatasetError(
                        f"{src}: column {need} is missing from the main table (it has {', '.join(sorted(colnames))})"
                    )
            n_rows = ms.nrows()
            keywords = ms.getkeywords()

            def sub(name):
                if name not in keywords:
                    raise DatasetError(f"{src}: subtable {name} is missing")
                return _open(src, name)

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
        finally:
            ms.close()
    return MSTables(colnames, n_rows, field_names, phase_dirs, dd_spw, dd_pol, chan_freq, spw_names, corr_types,
                    segments)


def defined_columns(src: str, columns, row: int) -> set:
    """Those of the main-table ``columns`` that exist and hold a value in ``row``."""
    with open_table(src) as ms:
        names = set(ms.colnames())
        return {c for c in columns if c in names and ms.iscelldefined(c, row)}


def read_rows(src: str, segments, columns: dict, blc, trc, *, whole: bool, where: str, cache_key=None) -> dict:
    """{name: array} of the main-table ``columns`` over the row runs ``segments`` [(startrow, nrow)], concatenated.

    ``columns``: {name: sliced}; a sliced column (cells (n_chan, n_corr)) is read with ``getcolslice`` from ``blc``
    to ``trc`` unless ``whole`` (every channel: plain ``getcol``). The unsliced (per-row) columns are kept for the
    next call with the same ``cache_key`` (the rows of a chunk read again for its next channels; bounded by one
    chunk, marked read-only). ``where`` names the rows in an error (e.g. ``"spw 0, DATA_DESC_ID 0"``).
    """
    cached = {}
    with CASACORE_LOCK:
        if cache_key is not None and _ROW_CACHE.get("key") == cache_key:
            cached = {c: v for c, v in _ROW_CACHE["columns"].items() if c in columns and not columns[c]}
    parts = {c: [] for c in columns if c not in cached}
    with open_table(src) as ms:
        for start, n in segments:
            for c in parts:
                try:
                    if columns[c] and not whole:
                        parts[c].append(ms.getcolslice(c, blc, trc, startrow=start, nrow=n))
                    else:
                        parts[c].append(ms.getcol(c, start, n))
                except RuntimeError as exc:  # an undefined cell, a cell of another shape, a damaged file
                    raise DatasetError(
                        f"{src}: column {c} rows {start}..{start + n - 1} ({where}) cannot be read: {exc}"
                    ) from None
    got = {c: (v[0] if len(v) == 1 else np.concatenate(v)) for c, v in parts.items()}
    got.update(cached)
    if cache_key is not None:
        with CASACORE_LOCK:
            if _ROW_CACHE.get("key") != cache_key:
                _ROW_CACHE.clear()
                _ROW_CACHE.update(key=cache_key, columns={})
            for c in columns:
                if not columns[c]:
                    got[c].setflags(write=False)  # shared with later chunks of these rows
                    _ROW_CACHE["columns"][c] = got[c]
    return got
