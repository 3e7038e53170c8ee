"""A small, streamed Measurement Set (v2) writer built on python-casacore.

Used by the tests (generated Measurement Sets with known contents) and by ``wtilde simulate --format ms``.
It writes what a calibrated MS carries and what our reader (:mod:`wtilde_dask.io.ms`) reads: the main table
(UVW in metres, ANTENNA1/2, TIME, FIELD_ID, DATA_DESC_ID, DATA / CORRECTED_DATA / MODEL_DATA of shape
(n_chan, n_corr), FLAG, FLAG_ROW, SIGMA / WEIGHT (n_corr) and optionally SIGMA_SPECTRUM / WEIGHT_SPECTRUM
(n_chan, n_corr)) and the subtables ANTENNA, SPECTRAL_WINDOW (CHAN_FREQ in Hz), POLARIZATION (CORR_TYPE codes,
9..12 = XX, XY, YX, YY; 5..8 = RR, RL, LR, LL), DATA_DESCRIPTION (spectral window + polarization) and FIELD
(NAME, PHASE_DIR). Everything else is left at casacore's defaults (``tables.default_ms``).

Rows are appended in blocks (:meth:`MeasurementSetWriter.write_rows`), one DATA_DESC_ID per call, so memory is
bounded by the block, never by the size of the set. The set is built under ``PATH.partial`` and renamed to
``PATH`` by :meth:`MeasurementSetWriter.close`: an interrupted write never leaves something that looks like a
finished Measurement Set. ``abort()`` (or an exception inside ``with``) removes the partial directory.

Example::

    with MeasurementSetWriter("obs.ms", chan_freqs=[np.linspace(230e9, 231e9, 64)], corr_types=["XX", "YY"],
                              field_names=["TARGET"]) as ms:
        ms.write_rows(0, uvw=uvw, data=data, antenna1=a1, antenna2=a2, time=t, sigma=sigma)
"""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np

from wtilde_dask.io.ms_table import CORR_TYPE_CODES, CORR_TYPE_NAMES

__all__ = ["CORR_TYPE_CODES", "CORR_TYPE_NAMES", "MeasurementSetWriter", "corr_type_codes"]


#: (receptor a, receptor b) of each correlation code, for POLARIZATION.CORR_PRODUCT
_RECEPTORS = {5: (0, 0), 6: (0, 1), 7: (1, 0), 8: (1, 1), 9: (0, 0), 10: (0, 1), 11: (1, 0), 12: (1, 1)}

DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")
SPECTRUM_COLUMNS = ("SIGMA_SPECTRUM", "WEIGHT_SPECTRUM")


def corr_type_codes(corr_types) -> list[int]:
    """Correlation types as casacore codes: names ("XX", "rr") or integer codes (9, 5) accepted."""
    codes = []
    for c in corr_types:
        if isinstance(c, str):
            if c.upper() not in CORR_TYPE_CODES:
                raise ValueError(f"unknown correlation type {c!r}; expected one of {sorted(CORR_TYPE_CODES)}")
            codes.append(CORR_TYPE_CODES[c.upper()])
        else:
            code = int(c)
            if code not in CORR_TYPE_NAMES:
                raise ValueError(f"unknown correlation type code {c!r}; expected one of {sorted(CORR_TYPE_NAMES)}")
            codes.append(code)
    if not codes:
        raise ValueError("corr_types is empty; a polarization setup needs at least one correlation")
    return codes


class MeasurementSetWriter:
    """Write a Measurement Set v2 in row blocks.

    Parameters
    ----------
    path : str or Path
        The ``.ms`` directory to create (refused if it exists unless ``overwrite``).
    chan_freqs : sequence of (n_chan_s,) arrays
        Channel centre frequencies of each spectral window, Hz.
    corr_types : sequence of names/codes, or a sequence of such sequences
        One polarization setup (e.g. ``["XX", "YY"]``) shared by all windows, or a list of setups (POLARIZATION
        rows, possibly with different numbers of correlations).
    data_descriptions : sequence of (spw_id, pol_id), optional
        DATA_DESCRIPTION rows; default one per spectral window, ``(s, 0)`` (or ``(s, s)`` when there is one
        polarization setup per window).
    field_names : sequence of str
        FIELD.NAME rows; ``phase_dirs`` (n_field, 2) radians (RA, Dec) optional.
    spw_names : sequence of str, optional
        SPECTRAL_WINDOW.NAME rows (default ``"SPW<i>"``).
    antenna_names, antenna_positions : optional
        ANTENNA rows (ITRF metres). Default: ``n_antennas`` antennas named ``A00``, ``A01``, ... at the origin.
    data_columns : which of DATA, CORRECTED_DATA, MODEL_DATA the main table has (default DATA only).
    spectrum_columns : which of SIGMA_SPECTRUM, WEIGHT_SPECTRUM it has (default none).
    tile_shape : (n_corr, n_chan, n_row) tile of the TiledShapeStMan that holds the data, flag, sigma / weight
        and spectrum columns, as CASA writes them; ``None`` puts everything in StandardStMan.
    """

    def __init__(
        self,
        path,
        *,
        chan_freqs,
        corr_types=("XX", "YY"),
        data_descriptions=None,
        field_names=("TARGET",),
        phase_dirs=None,
        spw_names=None,
        antenna_names=None,
        antenna_positions=None,
        n_antennas: int = 2,
        data_columns=("DATA",),
        spectrum_columns=(),
        telescope_name: str = "ALMA",
        tile_shape=(4, 32, 128),
        overwrite: bool = False,
    ):
        from casacore import tables

        self._tables = tables
        self.path = pathlib.Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path}: exists; pass overwrite=True to replace it")

        self.chan_freqs = [np.asarray(f, dtype=np.float64).ravel() for f in chan_freqs]
        if not self.chan_freqs or any(f.size < 1 for f in self.chan_freqs):
            raise ValueError("chan_freqs: every spectral window needs at least one channel")
        first = list(corr_types)[0] if len(list(corr_types)) else None
        setups = [corr_types] if isinstance(first, (str, int, np.integer)) else list(corr_types)
        self.polarizations = [corr_type_codes(s) for s in setups]
        if data_descriptions is None:
            if len(self.polarizations) == len(self.chan_freqs) and len(self.polarizations) > 1:
                data_descriptions = [(s, s) for s in range(len(self.chan_freqs))]
            else:
                data_descriptions = [(s, 0) for s in range(len(self.chan_freqs))]
        self.data_descriptions = [(int(s), int(p)) for s, p in data_descriptions]
        for s, p in self.data_descriptions:
            if not (0 <= s < len(self.chan_freqs) and 0 <= p < len(self.polarizations)):
                raise ValueError(f"data_descriptions entry ({s}, {p}) names a missing spectral window or polarization")
        self.field_names = [str(n) for n in field_names]
        self.phase_dirs = (
            np.zeros((len(self.field_names), 2)) if phase_dirs is None else np.asarray(phase_dirs, np.float64)
        )
        self.spw_names = [f"SPW{i}" for i in range(len(self.chan_freqs))] if spw_names is None else list(spw_names)
        if antenna_names is None:
            n = int(n_antennas if antenna_positions is None else len(antenna_positions))
            antenna_names = [f"A{i:02d}" for i in range(n)]
        self.antenna_names = [str(n) for n in antenna_names]
        self.antenna_positions = (
            np.zeros((len(self.antenna_names), 3))
            if antenna_positions is None
            else np.asarray(antenna_positions, np.float64).reshape(len(self.antenna_names), 3)
        )
        self.data_columns = tuple(data_columns)
        self.spectrum_columns = tuple(spectrum_columns)
        for c in self.data_columns:
            if c not in DATA_COLUMNS:
                raise ValueError(f"data_columns: {c!r} is not one of {DATA_COLUMNS}")
        for c in self.spectrum_columns:
            if c not in SPECTRUM_COLUMNS:
                raise ValueError(f"spectrum_columns: {c!r} is not one of {SPECTRUM_COLUMNS}")
        self.telescope_name = telescope_name
        self.tile_shape = None if tile_shape is None else [int(t) for t in tile_shape]
        self.n_rows = 0

        if self.partial_path.exists():
            shutil.rmtree(self.partial_path)
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        self._create()

    # ------------------------------------------------------------------ creation
    def _create(self):
        tables = self._tables
        description, dminfo = _main_table_layout(tables, self.data_columns, self.spectrum_columns, self.tile_shape)
        self._ms = tables.default_ms(str(self.partial_path), description, dminfo)
        _write_subtables(tables, str(self.partial_path), self)

    # ------------------------------------------------------------------ rows
    def write_rows(
        self,
        data_desc_id: int,
        *,
        uvw,
        data=None,
        corrected_data=None,
        model_data=None,
        antenna1=None,
        antenna2=None,
        time=None,
        field_id=0,
        flag=None,
        flag_row=None,
        sigma=None,
        weight=None,
        sigma_spectrum=None,
        weight_spectrum=None,
        interval: float = 1.0,
        scan_number=1,
    ) -> int:
        """Append ``n`` rows of one DATA_DESC_ID; return the first row number written.

        uvw : (n, 3) metres. data / corrected_data / model_data : (n, n_chan, n_corr) complex (stored as complex64,
        like real sets). flag : (n, n_chan, n_corr) bool (default False). flag_row : (n,) bool. sigma / weight :
        (n, n_corr) float (stored float32; defaults: weight = 1 / sigma**2 when sigma is given, else both 1).
        sigma_spectrum / weight_spectrum : (n, n_chan, n_corr), required when the set has that column.
        field_id, antenna1, antenna2, time, scan_number : scalars or (n,) arrays.
        """
        ddid = int(data_desc_id)
        if not 0 <= ddid < len(self.data_descriptions):
            raise ValueError(
                f"data_desc_id = {data_desc_id!r} is not a DATA_DESCRIPTION row (0..{len(self.data_descriptions) - 1})"
            )
        spw, pol = self.data_descriptions[ddid]
        n_chan, n_corr = self.chan_freqs[spw].size, len(self.polarizations[pol])
        uvw = np.asarray(uvw, np.float64)
        n = uvw.shape[0]
        if uvw.shape != (n, 3):
            raise ValueError(f"uvw has shape {uvw.shape}, expected (n, 3)")
        if n == 0:
            return self.n_rows
        columns = {"DATA": data, "CORRECTED_DATA": corrected_data, "MODEL_DATA": model_data}
        for name, value in columns.items():
            if value is not None and name not in self.data_columns:
                raise ValueError(f"{name} given but the set was created with data_columns={self.data_columns}")
            if value is None and name in self.data_columns:
                raise ValueError(f"{name} is a column of this set; pass it to write_rows")
        spectra = {"SIGMA_SPECTRUM": sigma_spectrum, "WEIGHT_SPECTRUM": weight_spectrum}
        for name, value in spectra.items():
            if value is not None and name not in self.spectrum_columns:
                raise ValueError(f"{name} given but the set was created with spectrum_columns={self.spectrum_columns}")
            if value is None and name in self.spectrum_columns:
                raise ValueError(f"{name} is a column of this set; pass it to write_rows")

        def cube(value, dtype, what):
            arr = np.asarray(value, dtype)
            if arr.shape != (n, n_chan, n_corr):
                raise ValueError(f"{what} has shape {arr.shape}, expected (n, n_chan, n_corr) = {(n, n_chan, n_corr)}")
            return arr

        def per_row(value, dtype):
            return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype), (n,)))

        if sigma is None and weight is None:
            sigma = np.ones((n, n_corr))
        if weight is None:
            weight = 1.0 / np.asarray(sigma, np.float64) ** 2
        if sigma is None:
            with np.errstate(divide="ignore"):
                sigma = 1.0 / np.sqrt(np.asarray(weight, np.float64))
        sigma = np.asarray(sigma, np.float32).reshape(n, n_corr)
        weight = np.asarray(weight, np.float32).reshape(n, n_corr)
        flag = np.zeros((n, n_chan, n_corr), bool) if flag is None else cube(flag, bool, "flag")
        time = np.arange(self.n_rows, self.n_rows + n, dtype=np.float64) if time is None else time
        antenna1 = 0 if antenna1 is None else antenna1
        antenna2 = 1 if antenna2 is None else antenna2

        ms, start = self._ms, self.n_rows
        ms.addrows(n)
        ms.putcol("UVW", uvw, start, n)
        ms.putcol("ANTENNA1", per_row(antenna1, np.int32), start, n)
        ms.putcol("ANTENNA2", per_row(antenna2, np.int32), start, n)
        ms.putcol("TIME", per_row(time, np.float64), start, n)
        ms.putcol("TIME_CENTROID", per_row(time, np.float64), start, n)
        ms.putcol("INTERVAL", per_row(interval, np.float64), start, n)
        ms.putcol("EXPOSURE", per_row(interval, np.float64), start, n)
        ms.putcol("FIELD_ID", per_row(field_id, np.int32), start, n)
        ms.putcol("DATA_DESC_ID", np.full(n, ddid, np.int32), start, n)
        ms.putcol("SCAN_NUMBER", per_row(scan_number, np.int32), start, n)
        ms.putcol("FLAG_ROW", per_row(False if flag_row is None else flag_row, bool), start, n)
        ms.putcol("FLAG", flag, start, n)
        ms.putcol("SIGMA", sigma, start, n)
        ms.putcol("WEIGHT", weight, start, n)
        for name, value in columns.items():
            if value is not None:
                ms.putcol(name, cube(value, np.complex64, name.lower()), start, n)
        for name, value in spectra.items():
            if value is not None:
                ms.putcol(name, cube(value, np.float32, name.lower()), start, n)
        self.n_rows += n
        return start

    # ------------------------------------------------------------------ finish
    def close(self) -> pathlib.Path:
        """Flush, close and move ``PATH.partial`` to ``PATH``; return ``PATH``."""
        if self._ms is None:
            return self.path
        self._ms.flush()
        self._ms.close()
        self._ms = None
        if self.path.exists():
            shutil.rmtree(self.path)
        os.rename(self.partial_path, self.path)
        return self.path

    def abort(self):
        """Close and remove the partial set."""
        if self._ms is not None:
            self._ms.close()
            self._ms = None
        shutil.rmtree(self.partial_path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _main_table_layout(tables, data_columns, spectrum_columns, tile_shape):
    """(table description of the extra data / spectrum columns, data-manager info of the tiled columns) for
    ``tables.default_ms``."""
    extra = [
        tables.makearrcoldesc(name, 0j, ndim=2, valuetype="complex", comment=f"{name} (n_chan, n_corr)")
        for name in data_columns
    ] + [
        tables.makearrcoldesc(name, 0.0, ndim=2, valuetype="float", comment=f"{name} (n_chan, n_corr)")
        for name in spectrum_columns
    ]
    dminfo = {}
    if tile_shape is not None:
        tiled = {
            "TiledData": list(data_columns),
            "TiledFlag": ["FLAG"],
            "TiledSigma": ["SIGMA"],
            "TiledWeight": ["WEIGHT"],
        }
        tiled.update({f"Tiled{c.title().replace('_', '')}": [c] for c in spectrum_columns})
        for i, (name, cols) in enumerate(tiled.items()):
            if not cols:
                continue
            shape = tile_shape if name not in ("TiledSigma", "TiledWeight") else [
                tile_shape[0], tile_shape[1] * tile_shape[2]
            ]
            dminfo[f"*{i + 1}"] = {
                "TYPE": "TiledShapeStMan",
                "NAME": name,
                "SPEC": {"DEFAULTTILESHAPE": np.array(shape, np.int32)},
                "COLUMNS": cols,
            }
    return (tables.maketabdesc(extra) if extra else None), (dminfo or None)


def _write_subtables(tables, path: str, w) -> None:
    """ANTENNA, SPECTRAL_WINDOW, POLARIZATION, DATA_DESCRIPTION, FIELD, OBSERVATION and FEED rows of the writer ``w``
    into the new set at ``path``."""

    with tables.table(f"{path}/ANTENNA", readonly=False, ack=False) as t:
        n = len(w.antenna_names)
        t.addrows(n)
        t.putcol("NAME", w.antenna_names)
        t.putcol("STATION", w.antenna_names)
        t.putcol("TYPE", ["GROUND-BASED"] * n)
        t.putcol("MOUNT", ["ALT-AZ"] * n)
        t.putcol("POSITION", w.antenna_positions)
        t.putcol("OFFSET", np.zeros((n, 3)))
        t.putcol("DISH_DIAMETER", np.full(n, 12.0))

    with tables.table(f"{path}/SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(len(w.chan_freqs))
        for i, f in enumerate(w.chan_freqs):
            width = np.full(f.size, np.abs(f[1] - f[0]) if f.size > 1 else 1.0e6)
            t.putcell("CHAN_FREQ", i, f)
            t.putcell("CHAN_WIDTH", i, width)
            t.putcell("EFFECTIVE_BW", i, width)
            t.putcell("RESOLUTION", i, width)
            t.putcell("NUM_CHAN", i, int(f.size))
            t.putcell("REF_FREQUENCY", i, float(f[0]))
            t.putcell("TOTAL_BANDWIDTH", i, float(width.sum()))
            t.putcell("NAME", i, w.spw_names[i])
            t.putcell("MEAS_FREQ_REF", i, 5)  # TOPO
            t.putcell("NET_SIDEBAND", i, 1)

    with tables.table(f"{path}/POLARIZATION", readonly=False, ack=False) as t:
        t.addrows(len(w.polarizations))
        for i, codes in enumerate(w.polarizations):
            t.putcell("CORR_TYPE", i, np.asarray(codes, np.int32))
            t.putcell("NUM_CORR", i, len(codes))
            t.putcell("CORR_PRODUCT", i, np.array([_RECEPTORS.get(c, (0, 0)) for c in codes], np.int32).T)

    with tables.table(f"{path}/DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(len(w.data_descriptions))
        t.putcol("SPECTRAL_WINDOW_ID", np.array([s for s, _ in w.data_descriptions], np.int32))
        t.putcol("POLARIZATION_ID", np.array([q for _, q in w.data_descriptions], np.int32))

    with tables.table(f"{path}/FIELD", readonly=False, ack=False) as t:
        n = len(w.field_names)
        t.addrows(n)
        t.putcol("NAME", w.field_names)
        t.putcol("CODE", [""] * n)
        dirs = w.phase_dirs.reshape(n, 1, 2)
        for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcol(col, dirs)
        t.putcol("SOURCE_ID", np.arange(n, dtype=np.int32))

    with tables.table(f"{path}/OBSERVATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("TELESCOPE_NAME", 0, w.telescope_name)
        t.putcell("OBSERVER", 0, "wtilde_dask")

    with tables.table(f"{path}/FEED", readonly=False, ack=False) as t:
        t.addrows(len(w.antenna_names))
        t.putcol("ANTENNA_ID", np.arange(len(w.antenna_names), dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(len(w.antenna_names), -1, np.int32))
        t.putcol("NUM_RECEPTORS", np.full(len(w.antenna_names), 2, np.int32))
