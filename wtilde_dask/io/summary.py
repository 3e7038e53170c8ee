"""A listobs-like summary of a dataset: what ``wtilde info DATA`` prints before anything is computed.

:func:`summarize` returns a JSON-able dict for a Measurement Set, a UVFITS file, a PyAutoLens FITS folder or an
``.npz``; :func:`summary_lines` turns it into the lines a person reads. The keys:

* ``format``, ``path``, ``rows`` (Measurement Set rows / UVFITS groups / visibilities of a flattened dataset);
* ``fields``: [{id, name, ra_deg, dec_deg}] (phase centres, J2000 as stored);
* ``spectral_windows``: [{id, n_channels, first_hz, last_hz, width_hz, rows}];
* ``correlations`` (e.g. ``["XX", "YY"]``) and ``stokes_i_from`` (the hands the readers average into Stokes I);
* ``time_range``: [first, last] as ISO dates (UTC) and ``duration_s``;
* ``flagged_fraction``: flagged cells (FLAG or FLAG_ROW; UVFITS: weight < 0) over all cells of the data column;
* ``data_columns`` and ``noise_column``: the columns present and the one the reader takes sigma from;
* ``unusable`` (Measurement Set): why the reader refuses the set without a selection (e.g. a mosaic), else None.

Flattened datasets (FITS folder, .npz) hold Stokes I visibilities already selected: ``rows`` is K and there are
no fields, windows or times; their uv range and noise are summarized instead.
"""

from __future__ import annotations

import pathlib

import numpy as np

from wtilde_dask.errors import DatasetError

__all__ = ["summarize", "summary_lines"]

#: MJD seconds (Measurement Set TIME) and Julian dates (UVFITS DATE) of the Unix epoch
_MJD_UNIX_EPOCH_S = 40587.0 * 86400.0
_JD_UNIX_EPOCH = 2440587.5
_ROWS_PER_READ = 100_000


def _iso(unix_seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(float(unix_seconds), dt.timezone.utc).isoformat(timespec="seconds")


def summarize(path, **options) -> dict:
    """The summary of the dataset at ``path`` (see the module docstring); ``options`` go to the reader
    (``noise_column`` for a Measurement Set). Errors are :class:`~wtilde_dask.errors.DatasetError` naming the path."""
    p = pathlib.Path(path)
    if (p / "table.dat").is_file():
        return _summarize_ms(p, **options)
    from wtilde_dask.io.open import FITS_SUFFIXES

    if p.is_file() and p.suffix.lower() in FITS_SUFFIXES:
        return _summarize_uvfits(p)
    if str(path) == "sma" or p.is_dir() or p.suffix.lower() == ".npz":
        return _summarize_flat(path)
    if not p.exists():
        raise DatasetError(f"{path}: does not exist (expected a Measurement Set, a UVFITS file, a PyAutoLens FITS "
                           "folder or an .npz)")
    raise DatasetError(f"{path}: unknown visibility format (expected a Measurement Set directory, a UVFITS file, "
                       "a PyAutoLens FITS folder or an .npz)")


# ---- Measurement Set ---------------------------------------------------------------------------------------
def _summarize_ms(path: pathlib.Path, **options) -> dict:
    from wtilde_dask.io.ms import MeasurementSetSource
    from wtilde_dask.io.ms_table import CORR_TYPE_NAMES, open_table

    try:  # the reader's own checks and its choice of noise column
        described, unusable = MeasurementSetSource(path, **options).describe(), None
    except DatasetError as err:  # still summarized (as listobs would); the reason is reported
        described, unusable = {}, str(err)
    with open_table(path) as main:
        n_rows = int(main.nrows())
        columns = set(main.colnames())
        times = main.getcol("TIME") if n_rows else np.zeros(0)
        ddids = main.getcol("DATA_DESC_ID") if n_rows else np.zeros(0, int)
        flagged = total = 0
        for start in range(0, n_rows, _ROWS_PER_READ):
            nrow = min(_ROWS_PER_READ, n_rows - start)
            flag = main.getcol("FLAG", startrow=start, nrow=nrow)
            flag_row = main.getcol("FLAG_ROW", startrow=start, nrow=nrow) if "FLAG_ROW" in columns else None
            cells = flag.reshape(nrow, -1)
            if flag_row is not None:
                cells = cells | flag_row[:, None]
            flagged += int(np.count_nonzero(cells))
            total += int(cells.size)
    with open_table(path, "FIELD") as t:
        names = list(t.getcol("NAME"))
        phase = t.getcol("PHASE_DIR")  # (n_field, 1, 2) radians
    fields = [{"id": i, "name": str(n), "ra_deg": float(np.degrees(phase[i, 0, 0]) % 360.0),
               "dec_deg": float(np.degrees(phase[i, 0, 1]))} for i, n in enumerate(names)]
    with open_table(path, "DATA_DESCRIPTION") as t:
        dd_spw = t.getcol("SPECTRAL_WINDOW_ID")
        dd_pol = t.getcol("POLARIZATION_ID")
    with open_table(path, "SPECTRAL_WINDOW") as t:
        spws = []
        for s in range(t.nrows()):
            freq = np.asarray(t.getcell("CHAN_FREQ", s), dtype=np.float64)
            width = np.asarray(t.getcell("CHAN_WIDTH", s), dtype=np.float64)
            rows = int(np.count_nonzero(np.isin(ddids, np.flatnonzero(dd_spw == s))))
            spws.append({"id": s, "n_channels": int(freq.size), "first_hz": float(freq[0]), "last_hz": float(freq[-1]),
                         "width_hz": float(width[0]), "rows": rows})
    with open_table(path, "POLARIZATION") as t:
        pols = [[CORR_TYPE_NAMES.get(int(c), str(c)) for c in t.getcell("CORR_TYPE", i)] for i in range(t.nrows())]
    used_pols = sorted({int(dd_pol[d]) for d in np.unique(ddids)}) if n_rows else []
    correlations = sorted({c for i in used_pols for c in pols[i]}, key=lambda c: [x for p in pols for x in p].index(c))
    hands = sorted({h for w in described.get("windows", []) for h in w.get("stokes_i_from", [])})
    t0, t1 = (float(times.min()), float(times.max())) if n_rows else (None, None)
    return {
        "format": "measurement-set",
        "path": str(path.resolve()),
        "rows": n_rows,
        "fields": fields,
        "spectral_windows": spws,
        "correlations": correlations,
        "stokes_i_from": hands,
        "time_range": None if t0 is None else [_iso(t0 - _MJD_UNIX_EPOCH_S), _iso(t1 - _MJD_UNIX_EPOCH_S)],
        "duration_s": None if t0 is None else t1 - t0,
        "flagged_fraction": flagged / total if total else 0.0,
        "data_columns": [c for c in ("DATA", "CORRECTED_DATA", "MODEL_DATA") if c in columns],
        "noise_column": described.get("noise_column"),
        "n_visibilities_max": described.get("n_visibilities_max"),
        "unusable": unusable,
    }


# ---- UVFITS ------------------------------------------------------------------------------------------------
def _summarize_uvfits(path: pathlib.Path) -> dict:
    from astropy.io import fits

    from wtilde_dask.io.uvfits import UvfitsSource

    reader = UvfitsSource(path)
    names = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR", -5: "XX", -6: "YY", -7: "XY",
             -8: "YX"}
    with fits.open(path, memmap=True) as hdul:
        header = hdul[0].header
        data = hdul[0].data
        parnames = [p.upper() for p in data.parnames]
        n_groups = int(header["GCOUNT"])
        dates = np.zeros(n_groups)
        for i, name in enumerate(parnames):  # DATE may be split over two parameters (day + fraction)
            if name in ("DATE", "_DATE"):
                dates = dates + np.asarray(data.par(i), dtype=np.float64)
        flagged = total = 0
        for start in range(0, n_groups, _ROWS_PER_READ):
            weights = np.asarray(data.data[start:start + _ROWS_PER_READ])[..., 2]
            flagged += int(np.count_nonzero(weights < 0))
            total += int(weights.size)
        fields = []
        if "AIPS SU" in hdul:
            su = hdul["AIPS SU"].data
            for sid, name in zip(su["ID. NO."], su["SOURCE"], strict=True):
                fields.append({"id": int(sid), "name": str(name).strip(), "ra_deg": None, "dec_deg": None})
        else:
            ra = dec = None
            for k in range(1, int(header.get("NAXIS", 0)) + 1):
                ctype = str(header.get(f"CTYPE{k}", "")).upper()
                if ctype.startswith("RA"):
                    ra = float(header.get(f"CRVAL{k}", 0.0))
                elif ctype.startswith("DEC"):
                    dec = float(header.get(f"CRVAL{k}", 0.0))
            fields.append({"id": 0, "name": str(header.get("OBJECT", "")).strip(), "ra_deg": ra, "dec_deg": dec})
    freqs = np.asarray(reader.frequencies)  # (n_if, n_chan) Hz
    spws = [{"id": i, "n_channels": int(freqs.shape[1]), "first_hz": float(freqs[i, 0]), "last_hz": float(freqs[i, -1]),
             "width_hz": float(freqs[i, 1] - freqs[i, 0]) if freqs.shape[1] > 1 else None, "rows": n_groups}
            for i in range(freqs.shape[0])]
    jd0, jd1 = (float(dates.min()), float(dates.max())) if n_groups and np.any(dates) else (None, None)
    return {
        "format": "uvfits",
        "path": str(path.resolve()),
        "rows": n_groups,
        "fields": fields,
        "spectral_windows": spws,
        "correlations": [names.get(s, str(s)) for s in reader.stokes],
        "stokes_i_from": list(reader.stokes_used),
        "time_range": None if jd0 is None else [_iso((jd0 - _JD_UNIX_EPOCH) * 86400.0),
                                                _iso((jd1 - _JD_UNIX_EPOCH) * 86400.0)],
        "duration_s": None if jd0 is None else (jd1 - jd0) * 86400.0,
        "flagged_fraction": flagged / total if total else 0.0,
        "data_columns": ["DATA"],
        "noise_column": "weight (sigma = 1 / sqrt(w))",
    }


# ---- flattened Stokes I (FITS folder, .npz, sma) -----------------------------------------------------------
def _summarize_flat(path) -> dict:
    from wtilde_dask.io.base import concatenate_chunks
    from wtilde_dask.io.open import open_visibilities

    source = open_visibilities(path)
    record = source.describe()
    c = concatenate_chunks(source)
    uv = np.hypot(c.uv_wavelengths[:, 0], c.uv_wavelengths[:, 1]) if c.n_visibilities else np.zeros(1)
    return {
        "format": record.get("format"),
        "path": record.get("path", str(path)),
        "rows": int(c.n_visibilities + c.n_flagged + c.n_bad_weight),
        "fields": [],
        "spectral_windows": [],
        "correlations": ["I"],
        "stokes_i_from": ["I"],
        "time_range": None,
        "duration_s": None,
        "flagged_fraction": (c.n_flagged + c.n_bad_weight) / max(1, c.n_visibilities + c.n_flagged + c.n_bad_weight),
        "data_columns": ["visibilities"],
        "noise_column": "noise_map",
        "uv_range_wavelengths": [float(uv.min()), float(uv.max())],
        "noise_median": [float(np.median(c.noise_map.real)), float(np.median(c.noise_map.imag))] if c.n_visibilities
        else None,
    }


# ---- text ----------------------------------------------------------------------------------------------------
def _hz(f) -> str:
    return "?" if f is None else f"{f / 1e9:.6f} GHz"


def summary_lines(s: dict) -> list[str]:
    """The lines ``wtilde info DATA`` prints for a :func:`summarize` dict."""
    lines = [f"dataset:      {s['format']} {s['path']}", f"rows:         {s['rows']:,}"]
    if s.get("time_range"):
        lines.append(f"time:         {s['time_range'][0]} to {s['time_range'][1]} ({s['duration_s'] / 3600:.2f} h)")
    if s.get("fields"):
        lines.append(f"fields:       {len(s['fields'])}")
        for f in s["fields"]:
            where = (f"  RA {f['ra_deg']:.6f} deg, Dec {f['dec_deg']:+.6f} deg" if f.get("ra_deg") is not None
                     and f.get("dec_deg") is not None else "")
            lines.append(f"  {f['id']:>3}  {f['name']:<20}{where}")
    if s.get("spectral_windows"):
        lines.append(f"spectral windows: {len(s['spectral_windows'])}")
        lines.append(f"  {'id':>3}  {'channels':>8}  {'first':>16}  {'last':>16}  {'width':>12}  {'rows':>10}")
        for w in s["spectral_windows"]:
            width = "?" if w.get("width_hz") is None else f"{w['width_hz'] / 1e3:.3f} kHz"
            lines.append(f"  {w['id']:>3}  {w['n_channels']:>8}  {_hz(w['first_hz']):>16}  {_hz(w['last_hz']):>16}  "
                         f"{width:>12}  {w['rows']:>10,}")
    lines.append(f"correlations: {' '.join(s['correlations'])} (Stokes I from {' + '.join(s['stokes_i_from']) or '?'})")
    lines.append(f"flagged:      {100.0 * s['flagged_fraction']:.2f}% of the data cells")
    lines.append(f"columns:      {', '.join(s['data_columns'])}; noise from {s.get('noise_column') or '?'}")
    if s.get("unusable"):
        lines.append(f"not usable as it is: {s['unusable']}")
    if s.get("uv_range_wavelengths"):
        lo, hi = s["uv_range_wavelengths"]
        lines.append(f"uv range:     {lo:.4g} to {hi:.4g} wavelengths")
    if s.get("noise_median"):
        lines.append(f"noise:        median sigma {s['noise_median'][0]:.4g} (real), {s['noise_median'][1]:.4g} (imag)")
    return lines
