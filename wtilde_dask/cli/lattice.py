"""``wtilde simulate OUT`` (synthetic ALMA-scale dataset) and ``wtilde export-pyautoarray STORE OUT.npy``."""

from __future__ import annotations

import argparse
import logging
import pathlib
import warnings

import numpy as np
from wtilde_dask.errors import ExportError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

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


def pyautoarray_sparse_terms(store, operator: np.ndarray, *, log=None) -> dict:
    """The fields of PyAutoArray's ``SparseTerms`` (autoarray 2026.10, ``inversion_interferometer_util``) for a
    lattice store: what ``Interferometer.from_sparse_terms(terms, real_space_mask)`` needs besides the kernel,
    so a PyAutoLens fit holds no visibilities.

    * ``nufft_precision_operator``: ``operator`` ((2ny, 2nx), :func:`wtilde_dask.kernels.lattice.to_pyautoarray`)
    * ``dirty_image_native`` (Ny, Nx): the store's ``dirty_image`` d_i = sum_k [wr Re(V) cos(phi) - wi Im(V) sin(phi)]
      placed on the mask's native shape, masked pixels 0
    * ``dirty_beam_native`` (Ny, Nx): sum_k wr_k cos(phi_ik) (PyAutoArray's adjoint of the weights 1/sigma_re^2),
      one type-1 NUFFT per chunk of the store's visibilities (streamed; masked pixels 0)
    * ``sum_weights`` = sum_k wr_k; ``data_term`` = chi2_data = sum_k wr Re(V)^2 + wi Im(V)^2;
      ``noise_normalization`` = sum_k ln(2 pi sigma_re^2) + ln(2 pi sigma_im^2); ``n_vis`` = K -- from the store's
      visibility sums when it has them, else summed in the same pass
    * provenance ``shape_native``, ``pixel_scales`` (arcsec), ``origin`` (0, 0)
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.ingest import store_source
    from wtilde_dask.kernels.lattice import lattice_dirty_image
    from wtilde_dask.kernels.visibility_sums import chunk_partial

    grid = store.grid()
    if not grid.is_lattice:
        raise ExportError(f"{store.path}: the store's grid is an irregular point set; PyAutoArray's sparse terms "
                          "need a masked lattice grid")
    idx = np.asarray(grid.lattice_indices)
    shape = tuple(int(n) for n in grid.shape_native)

    def native(slim):
        out = np.zeros(shape)
        out[idx[:, 0], idx[:, 1]] = slim
        return out

    sums = store.visibility_sums()
    beam = np.zeros(grid.n_pixels)
    sum_weights, chi2, norm, n_vis = 0.0, 0.0, 0.0, 0
    source = store_source(store)
    log(f"export-pyautoarray: dirty beam from {source.describe().get('format')} {source.path} "
        f"({len(source.chunk_ids())} chunks)")
    for cid in source.chunk_ids():
        c = source.read_chunk(cid)
        if c.n_visibilities == 0:
            continue
        wr = 1.0 / c.noise_map.real**2
        beam += lattice_dirty_image(c.uv_wavelengths, np.ones(c.n_visibilities, complex), wr, wr, grid)
        sum_weights += float(np.sum(wr))
        if sums is None:
            part = chunk_partial(c.uv_wavelengths, c.visibilities, c.noise_map)
            chi2 += part.chi_squared_data
            norm += part.noise_normalization
            n_vis += part.n_visibilities
    if sums is not None:
        chi2, norm, n_vis = sums["chi_squared_data"], sums["noise_normalization"], sums["n_visibilities"]
    return {
        "nufft_precision_operator": np.asarray(operator, dtype=np.float64),
        "dirty_image_native": native(store.read_array("dirty_image")),
        "dirty_beam_native": native(beam),
        "sum_weights": float(sum_weights),
        "data_term": float(chi2),
        "noise_normalization": float(norm),
        "n_vis": int(n_vis),
        "shape_native": shape,
        "pixel_scales": tuple(float(p) for p in grid.pixel_scales),
        "origin": (0.0, 0.0),
    }


def load_sparse_terms(path):
    """PyAutoArray's ``SparseTerms`` from the ``.npz`` written by :func:`export_pyautoarray`; then
    ``autoarray.Interferometer.from_sparse_terms(terms, real_space_mask=mask)``."""
    from autoarray.inversion.inversion.interferometer.inversion_interferometer_util import SparseTerms

    with np.load(path, allow_pickle=False) as npz:
        fields = {k: npz[k] for k in npz.files}
    for name in ("sum_weights", "data_term", "noise_normalization"):
        fields[name] = float(fields[name])
    fields["n_vis"] = int(fields["n_vis"])
    fields["shape_native"] = tuple(int(v) for v in fields["shape_native"])
    for name in ("pixel_scales", "origin"):
        fields[name] = tuple(float(v) for v in fields[name])
    return SparseTerms(**fields)


def export_pyautoarray(store_path, out, *, sparse_terms: bool = True, log=None) -> pathlib.Path:
    """Write the store's lattice kernel in PyAutoArray's ``nufft_precision_operator`` layout (2ny, 2nx) to ``out``
    (``.npy``), for ``Interferometer.apply_sparse_operator(nufft_precision_operator=np.load(out))``, and (with
    ``sparse_terms``) ``OUT_sparse_terms.npz``: the fields of PyAutoArray's ``SparseTerms``
    (:func:`pyautoarray_sparse_terms`: dirty image, dirty beam, chi2_data, noise normalisation, ...) for
    ``Interferometer.from_sparse_terms(load_sparse_terms(path), real_space_mask=mask)`` -- a fit with no
    visibilities in memory.

    Reads the store's ``kernel`` (offset kernel of (wr+wi)/2, :mod:`wtilde_dask.kernels.lattice`); if the store
    has none (method "direct" on a lattice grid) it is computed from the store's inputs by NUFFT. With unequal
    real/imag noise (a ``kernel_hankel``) PyAutoArray cannot hold the exact W-tilde: the offset part is
    written and a warning says so.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.kernels.lattice import lattice_kernels, to_pyautoarray
    from wtilde_dask.store import WTildeStore

    store = WTildeStore.open(store_path, mode="r")
    if store.has_array("kernel"):
        kernel = store.read_array("kernel")
        hankel = store.read_array("kernel_hankel") if store.has_array("kernel_hankel") else None
    else:
        grid = store.grid()
        if not grid.is_lattice:
            raise ExportError(f"{store_path}: the store's grid is an irregular point set; PyAutoArray's "
                              "nufft_precision_operator needs a masked lattice grid")
        log(f"export-pyautoarray: {store_path} has no 'kernel' (method {store.method!r}); computing it by NUFFT")
        ds = store.dataset()
        lk = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
        kernel, hankel = lk.kernel, lk.kernel_hankel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        operator = to_pyautoarray(kernel, hankel)
    for w in caught:
        log(f"export-pyautoarray: warning: {w.message}")
    out = pathlib.Path(out)
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")
    terms = pyautoarray_sparse_terms(store, operator, log=log) if sparse_terms else None
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, operator)
    log(f"export-pyautoarray: wrote {out} shape {operator.shape} (PyAutoArray nufft_precision_operator layout); "
        "use dataset.apply_sparse_operator(nufft_precision_operator=np.load(path))")
    if terms is not None:
        terms_path = out.with_name(out.stem + "_sparse_terms.npz")
        part = terms_path.with_name(terms_path.name + ".part.npz")
        np.savez(part, **{k: np.asarray(v) for k, v in terms.items()})
        part.replace(terms_path)
        log(f"export-pyautoarray: wrote {terms_path} (PyAutoArray SparseTerms: dirty image, dirty beam, "
            f"data_term = chi2_data {terms['data_term']:.6g}, noise_normalization {terms['noise_normalization']:.6g}, "
            f"n_vis {terms['n_vis']}); use Interferometer.from_sparse_terms("
            "wtilde_dask.cli.lattice.load_sparse_terms(path), real_space_mask=mask)")
    return out


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

