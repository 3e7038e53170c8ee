"""``wtilde plot STORE [--out DIR] [--row I]``: the pictures of a store, as PNGs.

Writes block_map.png (the ledger), mask.png, dirty_image.png, lattice_kernel.png (log-scaled |k|),
w_tilde_row.png (one row of W-tilde drawn on the mask) and reconstruction.png, each when the store
has what it needs; for every fit with a result (``wtilde fit``), fit_NAME_corner.png (the weighted posterior,
max-likelihood lines) and fit_NAME_reconstruction.png (the max-likelihood source on its mesh). ``wtilde status STORE --plot map.png`` draws the block map alone
(:func:`wtilde_dask.plot.plot_block_map_png`).
"""

from __future__ import annotations

import pathlib


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw a store's pictures (block map, mask, dirty image, kernel, a W-tilde row, reconstruction, fits)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("store", help="path of the W-tilde Zarr store")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: STORE_plots next to the store)")
    parser.add_argument("--row", type=int, default=None,
                        help="pixel index (slim order) of the W-tilde row to draw (default: the pixel nearest the mask centre)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wtilde_dask.plot import plot_store
    from wtilde_dask.store import WTildeStore

    store = WTildeStore.open(args.store)
    if args.row is not None and not 0 <= args.row < store.n_pixels:
        raise ValueError(f"--row: {args.row} is outside 0..{store.n_pixels - 1} (the store has M = {store.n_pixels} pixels)")
    path = pathlib.Path(args.store)
    out = pathlib.Path(args.out) if args.out else path.parent / (path.name.removesuffix(".zarr") + "_plots")
    written = plot_store(store, out, row=args.row)
    from wtilde_dask.fit.figures import plot_fits

    written.update(plot_fits(store, out))
    for name, file in written.items():
        print(f"{name:15s} {file}")
    return 0
