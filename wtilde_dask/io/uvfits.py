"""UVFITS (random groups, AIPS Memo 117) as a chunked Stokes I source, read with astropy.

Why astropy and not pyuvdata: pyuvdata 3.2.8 reads a whole file into a ``UVData`` object (no row-range reads)
and its install pulls numba, which pins NumPy below the version this project runs on (measured here: ``pip
install pyuvdata`` downgraded numpy 2.5.5 -> 2.3.5). astropy opens the random groups on a memory map, so a
chunk of groups costs O(chunk) memory.

Conventions (AIPS Memo 117, what CASA ``exportuvfits`` and pyuvdata write):

* random parameters ``UU``, ``VV`` (also ``UU---SIN`` / ``UU--``) in **seconds** (light travel time); with
  PSCAL / PZERO applied by astropy. ``uv_wavelengths = (UU, VV) x f`` per channel, f in Hz.
* data axes by ``CTYPEn``: ``COMPLEX`` (real, imag, weight), ``STOKES``, ``FREQ``, optional ``IF``, ``RA``,
  ``DEC``. Channel c of IF i is at ``f = CRVAL_FREQ + (c + 1 - CRPIX_FREQ) * df_i + IF_FREQ[i]`` with
  ``IF_FREQ`` from the ``AIPS FQ`` table (0 when absent) and ``df_i = CH WIDTH[i] * SIDEBAND[i]`` from that
  table for several IFs, ``CDELT_FREQ`` otherwise.
* Stokes codes ``CRVAL + (j + 1 - CRPIX) * CDELT``: 1 = I, -1..-4 = RR, LL, RL, LR, -5..-8 = XX, YY, XY, YX.
  Stokes I from the parallel hands: ``I = (a + b) / 2`` with ``sigma = 0.5 sqrt(sa^2 + sb^2)`` for both the
  real and imaginary part (XX/YY preferred, then RR/LL); a file with Stokes I uses it as is; a single parallel
  hand is used as is; cross hands only are refused.
* weight component w: ``sigma = 1 / sqrt(w)``; ``w < 0`` means flagged (dropped, counted in ``n_flagged``);
  ``w == 0``, a non-finite weight or non-finite data are dropped and counted in ``n_bad_weight``. A Stokes I
  visibility is dropped when either of its hands is.
* order: for each selected IF (in selection order), channel-major (k = c * n_groups + g), as the Measurement Set
  reader and the PyAutoLens CASA recipe (docs/data.md). A chunk is a channel range x a range of groups; when the
  groups do not fit one chunk each channel is its own pass over the groups (memory stays one chunk).
  ``order="rows"`` reads the file once instead (chunks of all selected channels x a range of groups, channel-major
  within a chunk): the same visibilities in another order, for sums that do not care (W-tilde, dirty image).
* the sign convention of the file is kept (V = sum I exp(-2 pi i (u l + v m)), as in a Measurement Set).

Selection: ``field`` (a SOURCE id or a name of the ``AIPS SU`` table; a single-source file accepts its
``OBJECT`` name or 0), ``spw`` (IF indices), ``channels`` (``"A~B"`` inclusive, CASA style, or
a Python ``range`` / ``(start, stop)`` with stop exclusive), ``column`` (only ``DATA``: a UVFITS file has one).
"""

from __future__ import annotations

import pathlib

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.errors import DatasetError
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource
from wtilde_dask.io.selection import parse_channels

__all__ = ["UvfitsSource", "STOKES_CODES", "parse_spw"]

STOKES_CODES = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR",
                -5: "XX", -6: "YY", -7: "XY", -8: "YX"}  # fmt: skip
PARALLEL_PAIRS = ((-5, -6), (-1, -2))
PARALLEL_SINGLE = (-5, -6, -1, -2)



def parse_spw(spw, n_available: int, source: str) -> list[int]:
    """IF / spectral window indices from None (all), an int, a list of ints or a string ``"0,2"`` / ``"1~3"``."""
    if spw is None:
        return list(range(n_available))
    items = []
    parts = spw.split(",") if isinstance(spw, str) else (spw if isinstance(spw, (list, tuple, range)) else [spw])
    for part in parts:
        text = str(part).strip()
        try:
            if "~" in text:
                a, b = (int(t) for t in text.split("~"))
                items.extend(range(a, b + 1))
            else:
                items.append(int(text))
        except ValueError:
            raise DatasetError(f"{source}: spw {spw!r}: {text!r} is not an IF index (0..{n_available - 1})") from None
    for i in items:
        if not 0 <= i < n_available:
            raise DatasetError(f"{source}: spw {i} does not exist (the file has IFs 0..{n_available - 1})")
    if not items:
        raise DatasetError(f"{source}: spw {spw!r} selects no IF")
    return items


def _uv_parameter(names: list[str], axis: str, source: str) -> str:
    for name in names:
        if name.upper() == axis or name.upper().startswith(axis + "-"):
            return name
    raise DatasetError(f"{source}: random parameter {axis} is missing (parameters: {', '.join(names)})")


class UvfitsSource(VisibilitySource):
    """A UVFITS file read in chunks of groups (see the module docstring for conventions and selection)."""

    format = "uvfits"

    def __init__(self, path, *, field=None, spw=None, channels=None, column: str = "DATA",
                 chunk_size: int = DEFAULT_CHUNK_SIZE, order: str = "recipe"):
        from astropy.io import fits

        self.file = pathlib.Path(path)
        self.path = str(self.file)
        src = self.path
        if int(chunk_size) != chunk_size or int(chunk_size) < 1:
            raise ValueError(f"chunk_size = {chunk_size!r} must be a whole number >= 1")
        if order not in ("recipe", "rows"):
            raise ValueError(f"order = {order!r} must be one of ('recipe', 'rows')")
        self.order = order
        if str(column).upper() != "DATA":
            raise DatasetError(f"{src}: column {column!r} does not exist: a UVFITS file has one data column (DATA)")
        if not self.file.is_file():
            raise DatasetError(f"{src}: UVFITS file does not exist")
        try:
            with fits.open(self.file, memmap=True) as hdul:
                hdu = hdul[0]
                if not isinstance(hdu, fits.GroupsHDU):
                    raise DatasetError(f"{src}: not a UVFITS file (the primary HDU has no random groups, GROUPS = "
                                       f"{hdu.header.get('GROUPS')!r})")
                header = hdu.header
                parnames = list(hdu.data.parnames)
                self.n_groups = int(header["GCOUNT"])
                tables = {h.name: h for h in hdul[1:]}
                fq = tables.get("AIPS FQ")
                su = tables.get("AIPS SU")
                self._read_axes(header, fq, src)
                self._select_field(field, header, parnames, su, src)
        except DatasetError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"{src}: cannot read as UVFITS ({type(exc).__name__}: {exc})") from None
        self.u_name = _uv_parameter(parnames, "UU", src)
        self.v_name = _uv_parameter(parnames, "VV", src)
        self.spw = parse_spw(spw, self.n_if, src)
        self.channels = parse_channels(channels, self.n_chan, src)
        self.selection = {"field": field, "spw": spw, "channels": channels, "column": "DATA"}
        self.chunk_size = int(chunk_size)

    # ------------------------------------------------------------------ header
    def _read_axes(self, header, fq, src):
        naxis = int(header["NAXIS"])
        axes = {}
        for j in range(2, naxis + 1):
            ctype = str(header.get(f"CTYPE{j}", "")).strip().upper()
            axes[ctype.split("-")[0]] = j
        for need in ("COMPLEX", "STOKES", "FREQ"):
            if need not in axes:
                raise DatasetError(f"{src}: data axis {need} is missing (CTYPEs: {', '.join(axes) or 'none'})")
        ndata = naxis - 1  # numpy axes after the group axis, FITS axis j <-> numpy axis 1 + (naxis - j)
        self._axis = {name: 1 + (naxis - j) for name, j in axes.items()}
        self._ndim = ndata + 1
        n_complex = int(header[f"NAXIS{axes['COMPLEX']}"])
        if n_complex != 3:
            raise DatasetError(f"{src}: COMPLEX axis has {n_complex} entries, expected 3 (real, imag, weight)")
        js = axes["STOKES"]
        n_stokes = int(header[f"NAXIS{js}"])
        crval, cdelt, crpix = (float(header.get(f"{k}{js}", d)) for k, d in (("CRVAL", 0), ("CDELT", 1), ("CRPIX", 1)))
        self.stokes = [int(round(crval + (i + 1 - crpix) * cdelt)) for i in range(n_stokes)]
        names = [STOKES_CODES.get(c, str(c)) for c in self.stokes]
        if 1 in self.stokes:
            self.hands = (self.stokes.index(1),)
        else:
            self.hands = ()
            for a, b in PARALLEL_PAIRS:
                if a in self.stokes and b in self.stokes:
                    self.hands = (self.stokes.index(a), self.stokes.index(b))
                    break
            else:
                for a in PARALLEL_SINGLE:
                    if a in self.stokes:
                        self.hands = (self.stokes.index(a),)
                        break
        if not self.hands:
            raise DatasetError(f"{src}: STOKES axis holds {', '.join(names)}: no parallel hand (XX, YY, RR, LL) or "
                               "Stokes I to form Stokes I from (cross hands only)")
        self.stokes_used = [names[h] for h in self.hands]
        jf = axes["FREQ"]
        self.n_chan = int(header[f"NAXIS{jf}"])
        f0, df, fpix = (float(header.get(f"{k}{jf}", d)) for k, d in (("CRVAL", 0), ("CDELT", 1), ("CRPIX", 1)))
        self.n_if = int(header[f"NAXIS{axes['IF']}"]) if "IF" in axes else 1
        if_freq = np.zeros(self.n_if)
        ch_delta = np.full(self.n_if, df)
        if fq is not None:
            if len(fq.data) != 1:
                raise DatasetError(f"{src}: AIPS FQ table has {len(fq.data)} rows (FRQSEL setups); one is supported")
            cols = fq.columns.names
            if "IF FREQ" in cols:
                if_freq = np.atleast_1d(np.asarray(fq.data["IF FREQ"][0], np.float64)).reshape(-1)[: self.n_if]
            if self.n_if > 1 and "CH WIDTH" in cols:
                width = np.atleast_1d(np.asarray(fq.data["CH WIDTH"][0], np.float64)).reshape(-1)[: self.n_if]
                side = (np.atleast_1d(np.asarray(fq.data["SIDEBAND"][0], np.float64)).reshape(-1)[: self.n_if]
                        if "SIDEBAND" in cols else np.ones(self.n_if))
                ch_delta = width * side
        chan = np.arange(self.n_chan, dtype=np.float64) + 1.0 - fpix
        #: (n_if, n_chan) channel frequencies, Hz
        self.frequencies = f0 + if_freq[:, None] + chan[None, :] * ch_delta[:, None]
        if not (np.isfinite(self.frequencies).all() and (self.frequencies > 0).all()):
            raise DatasetError(f"{src}: channel frequencies from FREQ (CRVAL {f0}, CDELT {df}) and AIPS FQ are not "
                               "all finite and > 0")

    def _select_field(self, field, header, parnames, su, src):
        self.source_id = None
        if field is None:
            return
        if "SOURCE" not in [p.upper() for p in parnames]:
            obj = str(header.get("OBJECT", "")).strip()
            if str(field).strip() in (obj, "0"):
                return
            raise DatasetError(f"{src}: field {field!r} not found: a single-source file (OBJECT = {obj!r})")
        ids, names = [], []
        if su is not None:
            cols = su.columns.names
            id_col = "ID. NO." if "ID. NO." in cols else cols[0]
            ids = [int(i) for i in su.data[id_col]]
            names = [str(n).strip() for n in su.data["SOURCE"]] if "SOURCE" in cols else [""] * len(ids)
        text = str(field).strip()
        if text in names:
            self.source_id = ids[names.index(text)]
        elif text.lstrip("-").isdigit() and (not ids or int(text) in ids):
            self.source_id = int(text)
        else:
            known = ", ".join(f"{i}:{n}" for i, n in zip(ids, names)) or "none listed"
            raise DatasetError(f"{src}: field {field!r} not found in the AIPS SU table (sources: {known})")
        self._source_par = [p for p in parnames if p.upper() == "SOURCE"][0]

    # ------------------------------------------------------------------ contract
    def channel_layout(self) -> list:
        """[(IF index, n selected channels, n groups)] in the reading order."""
        return [(int(i), int(self.channels.size), self.n_groups) for i in self.spw]

    def chunk_ids(self) -> list:
        """``[IF, c0, c1, g0, g1]``: selected channels c0:c1 of groups g0:g1 of one IF, about chunk_size each."""
        from wtilde_dask.io.export import aligned_chunk_ids

        if self.order == "rows":  # one pass over the file: all selected channels of a range of groups
            n_c = int(self.channels.size)
            per = max(1, self.chunk_size // n_c)
            return [[i, 0, n_c, g, min(g + per, self.n_groups)] for i, _, _ in self.channel_layout()
                    for g in range(0, self.n_groups, per)]
        return aligned_chunk_ids(self.channel_layout(), 1, self.chunk_size)

    def _take(self, data, if_index: int, hand: int, comp: int, chans) -> np.ndarray:
        """(channels, groups) float64 of one Stokes hand and complex component of one IF."""
        index = [slice(None)] + [0] * (self._ndim - 1)
        index[self._axis["COMPLEX"]] = comp
        index[self._axis["STOKES"]] = hand
        index[self._axis["FREQ"]] = chans
        if "IF" in self._axis:
            index[self._axis["IF"]] = if_index
        return np.asarray(data[tuple(index)], dtype=np.float64).T

    def read_chunk_cube(self, chunk_id):
        """The chunk as a :class:`~wtilde_dask.io.export.ChannelCube` (channels x groups of one IF)."""
        from astropy.io import fits

        from wtilde_dask.io.export import ChannelCube

        if_index, c0, c1, start, stop = (int(i) for i in chunk_id)
        chans = self.channels[c0:c1]
        with fits.open(self.file, memmap=True) as hdul:
            groups = hdul[0].data[start:stop]
            uv_base = np.empty((stop - start, 2))
            uv_base[:, 0] = np.asarray(groups.par(self.u_name), dtype=np.float64)
            uv_base[:, 1] = np.asarray(groups.par(self.v_name), dtype=np.float64)
            keep_rows = np.ones(stop - start, bool)
            if self.source_id is not None:
                keep_rows = np.asarray(groups.par(self._source_par)).astype(np.int64) == self.source_id
            data = groups.data
            re = [self._take(data, if_index, h, 0, chans) for h in self.hands]
            im = [self._take(data, if_index, h, 1, chans) for h in self.hands]
            wt = [self._take(data, if_index, h, 2, chans) for h in self.hands]
        flagged = np.zeros(re[0].shape, bool)
        bad = np.zeros(re[0].shape, bool)
        for w in wt:
            flagged |= w < 0
        for r, i, w in zip(re, im, wt):
            bad |= ~flagged & ~((w > 0) & np.isfinite(w) & np.isfinite(r) & np.isfinite(i))
        flagged &= keep_rows[None, :]
        bad &= keep_rows[None, :]
        keep = keep_rows[None, :] & ~flagged & ~bad
        with np.errstate(divide="ignore", invalid="ignore"):
            if len(self.hands) == 2:
                vis = 0.5 * ((re[0] + re[1]) + 1j * (im[0] + im[1]))
                sigma = 0.5 * np.sqrt(1.0 / wt[0] + 1.0 / wt[1])
            else:
                vis = re[0] + 1j * im[0]
                sigma = 1.0 / np.sqrt(wt[0])
        return ChannelCube(uv_base, 1.0, self.frequencies[if_index, chans], vis, sigma * (1 + 1j), keep,
                           int(flagged.sum()), int(bad.sum()))

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        from wtilde_dask.io.export import flatten_cube

        return flatten_cube(self.read_chunk_cube(chunk_id))

    def describe(self) -> dict:
        st = self.file.stat()
        return {
            "format": self.format,
            "path": str(self.file.resolve()),
            "selection": {k: (list(v) if isinstance(v, (tuple, range)) else v) for k, v in self.selection.items()},
            "noise_column": "weight component of the random groups (sigma = 1/sqrt(w))",
            "stokes": self.stokes_used,
            "order": self.order,
            "n_groups": self.n_groups,
            "n_if": self.n_if,
            "n_channels_selected": int(self.channels.size),
            "files": {self.file.name: {"size": int(st.st_size), "mtime": float(st.st_mtime)}},
        }
