"""Pictures of a W-tilde run and of what it produced (matplotlib, no pyplot state).

Two layers:

* pure functions of arrays that return a :class:`matplotlib.figure.Figure` (usable in notebooks,
  where a returned Figure displays inline): :func:`plot_block_map`, :func:`plot_mask`,
  :func:`plot_image_on_mask` (dirty image, a W-tilde row, any per-pixel quantity),
  :func:`plot_lattice_kernel`, :func:`plot_reconstruction` (:mod:`wtilde_dask.plot.figures`);
* thin functions that read a :class:`wtilde_dask.store.WTildeStore` and write PNGs:
  :func:`plot_block_map_png` (what ``wtilde status STORE --plot map.png`` calls) and
  :func:`plot_store` (what ``wtilde plot STORE`` calls) (:mod:`wtilde_dask.plot.store_figures`).

Both are re-exported here, so ``from wtilde_dask import plot`` gives every figure.

Figures are drawn with the object-oriented API on an Agg canvas, so nothing here changes the
global matplotlib backend or touches pyplot's figure registry.

Image conventions (INTERFACES.md): a mask is an (ny, nx) bool array with True = MASKED; per-pixel
values come in "slim" order (unmasked pixels row-major); pixel (r, c) has its centre at
``y = ((ny-1)/2 - r) * sy``, ``x = (c - (nx-1)/2) * sx`` arcsec, so row 0 is the top of the image.

The block states, their colours and counts live in :mod:`wtilde_dask.blockstate` (shared with the scheduler's
block-map page) and are re-exported here.
"""

from __future__ import annotations

from wtilde_dask.blockstate import (  # noqa: F401 (re-exported)
    BLOCK_COLOURS,
    BLOCK_KEY_RE,
    DONE,
    FAILED,
    LOWER,
    PENDING,
    RUNNING,
    STATE_NAMES,
    block_counts,
    block_states,
    block_title,
    format_eta,
)
from wtilde_dask.plot.figures import (  # noqa: F401 (re-exported; _figure: the Agg figure the fit figures draw on)
    _figure,
    image_on_mask,
    plot_block_map,
    plot_image_on_mask,
    plot_lattice_kernel,
    plot_mask,
    plot_points,
    plot_reconstruction,
    plot_source_reconstruction,
    save_figure,
)
from wtilde_dask.plot.store_figures import (  # noqa: F401 (re-exported)
    _w_tilde_row,
    plot_block_map_png,
    plot_store,
)

__all__ = [
    "BLOCK_COLOURS",
    "BLOCK_KEY_RE",
    "DONE",
    "FAILED",
    "LOWER",
    "PENDING",
    "RUNNING",
    "block_counts",
    "block_states",
    "block_title",
    "format_eta",
    "image_on_mask",
    "plot_block_map",
    "plot_block_map_png",
    "plot_image_on_mask",
    "plot_lattice_kernel",
    "plot_mask",
    "plot_reconstruction",
    "plot_source_reconstruction",
    "plot_store",
    "save_figure",
]
