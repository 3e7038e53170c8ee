"""The plan of a Measurement Set read: its subtables and the selection -> which rows, channels and columns to read.

Read once on the client when a :class:`~wtilde_dask.io.ms.MeasurementSetSource` is made (the tables through
:mod:`wtilde_dask.io.ms_table`): the field (FIELD names or ids, one phase centre), the spectral windows and their
channels (CASA's ``spw`` syntax, SPECTRAL_WINDOW via DATA_DESCRIPTION), the parallel hands that make Stokes I
(POLARIZATION.CORR_TYPE), the noise column, and per selected DATA_DESC_ID the runs of main-table rows that hold it
(:class:`MSPlan`). Then :func:`chunk_ids` cuts the windows into chunks and :func:`row_segments` maps a chunk's
selected rows back to table rows. Selection syntax and order: the reader's module docstring.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import numpy as np

from wtilde_dask.errors import DatasetError
from wtilde_dask.io.ms_table import CORR_TYPE_NAMES as CORR_NAMES
from wtilde_dask.io.ms_table import defined_columns, read_tables
from wtilde_dask.io.selection import parse_channels

__all__ = ["DATA_COLUMNS", "NOISE_COLUMNS", "ORDERS", "MSPlan", "chunk_ids", "plan_selection", "row_segments"]

DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")
NOISE_COLUMNS = ("SIGMA_SPECTRUM", "SIGMA", "WEIGHT_SPECTRUM", "WEIGHT")
PARALLEL_PAIRS = ((9, 12), (5, 8))
PARALLEL_SINGLE = (9, 12, 5, 8)
ORDERS = ("recipe", "rows")


class MSPlan(NamedTuple):
    """The selection resolved against the tables (:func:`plan_selection`)."""

    windows: list  # one dict per selected DATA_DESC_ID, in the recipe's order (see plan_selection)
    field_ids: list
    field_names: list
    spw_ids: list
    spw_names: list
    noise_column: str
    files: dict  # size and mtime of the table files read (file_records)


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


def plan_selection(src: str, column: str, field, spw, channels, noise_column) -> MSPlan:
    """Resolve the selection (``field``, ``spw``, ``channels``, data ``column``, ``noise_column``) of the
    Measurement Set at ``src`` into an :class:`MSPlan`; a :class:`DatasetError` names what does not fit.

    Each window dict: ddid, spw, pol, corr_types, hands (the correlation indices averaged into Stokes I),
    channels (selected channel indices), chan_freq (their frequencies, Hz), n_chan_spw, n_corr, runs ((n, 2)
    [startrow, nrow] table runs), run_offsets (selected-row offset of each run, (n + 1,)), n_rows.
    """
    tables = read_tables(src, required=("UVW", "FLAG", "FLAG_ROW", "DATA_DESC_ID", "FIELD_ID", column))
    segments, field_names, phase_dirs = tables.segments, tables.field_names, tables.phase_dirs
    dd_spw, dd_pol, chan_freq, spw_names = tables.dd_spw, tables.dd_pol, tables.chan_freq, tables.spw_names
    corr_types = tables.corr_types
    counts = {}
    for f_id in np.unique(segments[:, 3]):
        counts[int(f_id)] = int(segments[segments[:, 3] == f_id, 1].sum())
    field_ids = select_fields(src, field, field_names, sorted(counts), counts)
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
    spw_chans = select_spws(src, spw, channels, spw_names, chan_freq, spw_with_data, field_ids, field_names)

    windows = []  # one entry per selected DATA_DESC_ID, in the recipe's order
    for s, chans in spw_chans:
        ddids = [d for d in sorted(runs) if int(dd_spw[d]) == s]
        if not ddids:
            raise DatasetError(
                f"{src}: spw {s} ({spw_names[s] if s < len(spw_names) else ''}) has no rows for field "
                f"{field_label(field_ids, field_names)}"
            )
        for d in ddids:
            pol = int(dd_pol[d])
            if not 0 <= pol < len(corr_types):
                raise DatasetError(
                    f"{src}: DATA_DESCRIPTION row {d} names POLARIZATION row {pol}, which is missing"
                )
            codes = corr_types[pol]
            hands = stokes_i_hands(src, codes, pol, s)
            r = runs[d]
            windows.append(
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
    spw_ids = [s for s, _ in spw_chans]
    first_row = int(windows[0]["runs"][0, 0])
    defined = defined_columns(src, (column, *NOISE_COLUMNS), first_row)
    if column not in defined:
        raise DatasetError(f"{src}: column {column} has no value in row {first_row} (an empty column)")
    return MSPlan(
        windows=windows,
        field_ids=field_ids,
        field_names=[field_names[f] if f < len(field_names) else str(f) for f in field_ids],
        spw_ids=spw_ids,
        spw_names=[spw_names[s] if s < len(spw_names) else str(s) for s in spw_ids],
        noise_column=choose_noise_column(src, defined, noise_column, first_row),
        files=file_records(pathlib.Path(src)),
    )


def field_label(field_ids, field_names) -> str:
    """``"0 (NAME), 2 (OTHER)"``: the selected fields, for messages."""
    return ", ".join(f"{f} ({field_names[f]})" if f < len(field_names) else str(f) for f in field_ids)


def select_fields(src, field, field_names, used, counts) -> list[int]:
    """The FIELD ids of ``field`` (names or ids, a list or comma separated); None: the one field with rows
    (``used``: field ids with rows, ``counts``: rows per field id)."""
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


def select_spws(src, spw, channels, spw_names, chan_freq, with_data, field_ids, field_names):
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
                    f"{field_label(field_ids, field_names)} (spws with data: {with_data})"
                )
            if any(s == done for done, _ in out):
                raise DatasetError(f"{src}: spw {s} is selected twice in spw {spw!r}")
            chans = parse_channels(chan_text if chan_text is not None else channels, chan_freq[s].size,
                                    f"{src}: spw {s}")
            out.append((s, chans))
    return out


def stokes_i_hands(src, codes, pol, spw) -> tuple:
    """Indices into CORR_TYPE ``codes`` of the parallel hands Stokes I is made from: a pair, else one hand."""
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


def choose_noise_column(src, defined: set, noise_column, row: int) -> str:
    """The noise column: ``noise_column`` checked, or the first of :data:`NOISE_COLUMNS` in ``defined`` (the
    columns that hold a value in ``row``, the first selected row)."""

    def usable(name):
        return name in defined

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


def file_records(root: pathlib.Path) -> dict:
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


def chunk_ids(windows, chunk_size: int, order: str) -> list:
    """``[ddid, c0, c1, i0, i1]`` chunks of at most ``chunk_size`` visibilities (the reader's module docstring)."""
    out = []
    for w in windows:
        n_r, n_c = w["n_rows"], int(w["channels"].size)
        if order == "rows":
            per = max(1, chunk_size // n_c)
            out.extend([w["ddid"], 0, n_c, r, min(r + per, n_r)] for r in range(0, n_r, per))
        elif n_r <= chunk_size:
            per = max(1, min(n_c, chunk_size // n_r))
            out.extend([w["ddid"], c, min(c + per, n_c), 0, n_r] for c in range(0, n_c, per))
        else:
            out.extend(
                [w["ddid"], c, c + 1, r, min(r + chunk_size, n_r)]
                for c in range(n_c)
                for r in range(0, n_r, chunk_size)
            )
    return out


def row_segments(w: dict, i0: int, i1: int) -> list[tuple[int, int]]:
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
