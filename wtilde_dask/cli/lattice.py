"""``wtilde simulate OUT`` (synthetic ALMA-scale dataset) and ``wtilde export-pyautoarray STORE OUT.npy``."""

from __future__ import annotations

import argparse
import pathlib

from wtilde_dask.errors import ExportError  # noqa: F401 (re-exported)
from wtilde_dask.pyautoarray import (  # noqa: F401 (re-exported)
    export_pyautoarray,
    load_sparse_terms,
    pyautoarray_sparse_terms,
)

__all__ = ["register", "export_pyautoarray", "pyautoarray_sparse_terms", "load_sparse_terms", "ExportError"]


def _count(text: str) -> int:
    """An integer that may be written 1e6 / 1_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return int(value)


def _simulate(args) -> int:
    from wtilde_dask.simulate import SimulationConfig, simulate, simulate_ms

    config = SimulationConfig(
        n_visibilities=args.n_visibilities, n_antennas=args.antennas, max_baseline_m=args.max_baseline_m,
        n_channels=args.channels, frequency_ghz=args.frequency_ghz, bandwidth_ghz=args.bandwidth_ghz,
        declination_deg=args.declination_deg, duration_h=args.duration_h, source=args.source, flux=args.flux,
        source_centre=tuple(args.source_centre), effective_radius=args.effective_radius,
        axis_ratio=args.axis_ratio, sersic_index=args.sersic_index, image_shape=tuple(args.image_shape),
        image_pixel_scale=args.image_pixel_scale, sigma=args.sigma, sigma_imag=args.sigma_imag, seed=args.seed,
        chunk_size=args.chunk_size, n_spw=args.spw, flag_fraction=args.flag_fraction,
        point_source=None if args.point_source is None else tuple(args.point_source),
    )
    run = simulate_ms if args.format == "ms" else simulate
    run(args.out, config, overwrite=args.overwrite, log=(lambda *a: None) if args.quiet else print)
    return 0


def _export(args) -> int:
    export_pyautoarray(args.store, args.out, sparse_terms=not args.kernel_only)
    return 0


def register(subparsers) -> None:
    d = {}
    from wtilde_dask.simulate import SimulationConfig

    for f in SimulationConfig.__dataclass_fields__.values():
        d[f.name] = f.default
    p = subparsers.add_parser(
        "simulate",
        help="simulate an ALMA-scale dataset folder or Measurement Set (written in chunks)",
        description="Earth-rotation synthesis of a random ~43-antenna array, several channels, a Gaussian or Sersic "
                    "source (or a point source), Gaussian noise. --format folder writes data.fits, noise_map.fits, "
                    "uv_wavelengths.fits (K, 2), source_image.fits and simulation.json into OUT; --format ms writes "
                    "a Measurement Set OUT (--spw windows of --channels channels, XX/YY, SIGMA and WEIGHT, "
                    "--flag-fraction flagged). Memory is O(--chunk-size) for any K.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out", type=pathlib.Path, help="output dataset folder")
    p.add_argument("-K", "--n-visibilities", type=_count, default=d["n_visibilities"], help="K, e.g. 1e6")
    p.add_argument("--antennas", type=int, default=d["n_antennas"])
    p.add_argument("--max-baseline-m", type=float, default=d["max_baseline_m"])
    p.add_argument("--channels", type=int, default=d["n_channels"], help="channels (per spectral window)")
    p.add_argument("--frequency-ghz", type=float, default=d["frequency_ghz"])
    p.add_argument("--bandwidth-ghz", type=float, default=d["bandwidth_ghz"])
    p.add_argument("--declination-deg", type=float, default=d["declination_deg"])
    p.add_argument("--duration-h", type=float, default=d["duration_h"])
    p.add_argument("--source", choices=("gaussian", "sersic"), default=d["source"])
    p.add_argument("--flux", type=float, default=d["flux"], help="total flux (Jy)")
    p.add_argument("--source-centre", type=float, nargs=2, metavar=("Y", "X"), default=d["source_centre"],
                   help="arcsec")
    p.add_argument("--effective-radius", type=float, default=d["effective_radius"],
                   help="arcsec (Gaussian sigma or Sersic half-light radius)")
    p.add_argument("--axis-ratio", type=float, default=d["axis_ratio"])
    p.add_argument("--sersic-index", type=float, default=d["sersic_index"])
    p.add_argument("--image-shape", type=int, nargs=2, metavar=("NY", "NX"), default=d["image_shape"])
    p.add_argument("--image-pixel-scale", type=float, default=d["image_pixel_scale"], help="arcsec")
    p.add_argument("--sigma", type=float, default=d["sigma"], help="noise sigma of the real part (Jy)")
    p.add_argument("--sigma-imag", type=float, default=None, help="noise sigma of the imaginary part (default: --sigma)")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--chunk-size", type=_count, default=d["chunk_size"], help="visibilities generated/written at a time")
    p.add_argument("--format", choices=("folder", "ms"), default="folder",
                   help="a PyAutoLens FITS folder or a Measurement Set")
    p.add_argument("--spw", type=int, default=d["n_spw"], help="spectral windows (--format ms)")
    p.add_argument("--flag-fraction", type=float, default=d["flag_fraction"],
                   help="fraction of (row, channel, correlation) flagged at random (--format ms)")
    p.add_argument("--point-source", type=float, nargs=2, metavar=("L", "M"), default=None,
                   help="a point source of --flux at l (East, x) and m (North, y) arcsec instead of the image")
    p.add_argument("--overwrite", action="store_true", help="replace the dataset files in OUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_simulate)

    e = subparsers.add_parser(
        "export-pyautoarray",
        help="write a store's lattice kernel as PyAutoArray's nufft_precision_operator (.npy)",
        description="Writes the (2ny, 2nx) nufft_precision_operator for "
                    "autoarray.Interferometer.apply_sparse_operator(nufft_precision_operator=np.load(OUT)), and "
                    "OUT_sparse_terms.npz with PyAutoArray's SparseTerms fields (dirty image, dirty beam, "
                    "data_term = chi2_data, noise_normalization, sum_weights, n_vis) for "
                    "autoarray.Interferometer.from_sparse_terms(...): a fit with no visibilities in memory.",
    )
    e.add_argument("store", type=pathlib.Path, help="a wtilde Zarr store (lattice grid)")
    e.add_argument("out", type=pathlib.Path, help="output .npy (and OUT_sparse_terms.npz beside it)")
    e.add_argument("--kernel-only", action="store_true",
                   help="write only the .npy kernel, not the SparseTerms .npz (which streams the visibilities once "
                        "for the dirty beam)")
    e.set_defaults(func=_export)

