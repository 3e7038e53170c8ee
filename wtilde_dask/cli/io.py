"""``wtilde export-fits DATA OUT/``: a Measurement Set (or UVFITS, FITS folder, .npz) to PyAutoLens' FITS files."""

from __future__ import annotations

import argparse
import pathlib

from wtilde_dask import config

__all__ = ["register", "add_selection_arguments"]


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """The selection flags of ``wtilde export-fits`` (named as ``wtilde compute``'s; passed to
    :func:`wtilde_dask.io.open_visibilities`)."""
    p.add_argument("--field", default=None, help="FIELD name or id (Measurement Set), SOURCE name or id (UVFITS)")
    p.add_argument("--spw", default=None, help="spectral windows (UVFITS: IFs), e.g. '0,2' or '0~3' (default all)")
    p.add_argument("--channels", default=None, help="channel range of each window, CASA style 'A~B' inclusive")
    p.add_argument("--column", default="DATA", help="DATA | CORRECTED_DATA | MODEL_DATA (Measurement Set)")
    p.add_argument("--chunk-size", type=int, default=config.get("chunk-size"),
                   help="visibilities read at a time (memory bound; default %(default)s: dask config wtilde.chunk-size)")


def _export_fits(args) -> int:
    from wtilde_dask.io import open_visibilities
    from wtilde_dask.io.export import export_fits

    source = open_visibilities(
        str(args.data), field=args.field, spw=args.spw, channels=args.channels, column=args.column,
        chunk_size=args.chunk_size,
    )
    export_fits(source, args.out, average_channels=args.average_channels, overwrite=args.overwrite,
                log=(lambda *a: None) if args.quiet else print)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-fits",
        help="write PyAutoLens' data.fits, noise_map.fits, uv_wavelengths.fits from a Measurement Set (no CASA)",
        description="Streams the Stokes I visibilities of DATA (a Measurement Set directory, a UVFITS file, a "
                    "PyAutoLens FITS folder or an .npz) chunk by chunk into OUT/data.fits, noise_map.fits and "
                    "uv_wavelengths.fits ((K, 2) float64 each, for PyAutoLens' Interferometer.from_fits) and "
                    "OUT/export.json. Flagged and zero-weight visibilities are dropped and counted. Files are "
                    "written under NAME.part and renamed at the end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("data", type=pathlib.Path, help="Measurement Set, UVFITS file, FITS folder or .npz")
    p.add_argument("out", type=pathlib.Path, help="output folder")
    add_selection_arguments(p)
    p.add_argument("--average-channels", type=int, default=None, metavar="N",
                   help="average N adjacent channels of each spectral window (weighted mean, sigma propagated, "
                        "uv at the mean frequency)")
    p.add_argument("--overwrite", action="store_true", help="replace the files in OUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_export_fits)
