"""PNGs of a :class:`wtilde_dask.store.WTildeStore`: thin readers of the store over :mod:`wtilde_dask.plot.figures`
(``wtilde status STORE --plot`` and ``wtilde plot STORE``).
"""

from __future__ import annotations

import pathlib

import numpy as np

from wtilde_dask.blockstate import block_counts, block_states, format_eta
from wtilde_dask.plot.figures import (plot_block_map, plot_image_on_mask, plot_lattice_kernel, plot_mask, plot_points,
                                      plot_reconstruction, save_figure)



def _open_store(store):
    if isinstance(store, (str, pathlib.Path)):
        from wtilde_dask.store import WTildeStore

        return WTildeStore.open(store)
    return store


def plot_block_map_png(store, path, *, states: np.ndarray | None = None) -> pathlib.Path:
    """Draw the block map of ``store`` (a WTildeStore or its path) from its ledger alone and write a PNG.

    Works on any store, running, finished or dead: done = ledger checksum != 0, everything else
    pending (running / failed are only known to a live scheduler: see :mod:`wtilde_dask.dashboard`).
    The subtitle gives the mean seconds per finished block (from ``ledger_seconds``) and the work left
    at that pace on one worker thread.
    """
    store = _open_store(store)
    ledger = np.asarray(store.ledger())
    if states is None:
        states = block_states(ledger)
    counts = block_counts(states)
    pace = ""
    try:
        seconds = np.asarray(store.ledger_seconds(), dtype=np.float64)
        finished = seconds[np.isfinite(seconds) & (ledger != 0)]
    except Exception:  # noqa: BLE001 - older stores without per-block timings
        finished = np.zeros(0)
    if finished.size:
        mean = float(finished.mean())
        left = counts["total"] - counts["done"]
        pace = f"mean {mean:.3g} s per block; {left} left ≈ {format_eta(left * mean)} on one worker thread · "
    fig = plot_block_map(
        states,
        block_size=getattr(store, "block_size", None),
        n_pixels=getattr(store, "n_pixels", None),
        subtitle=f"{pace}method {getattr(store, 'method', '?')} · {pathlib.Path(str(getattr(store, 'path', ''))).name}",
    )
    return save_figure(fig, path)


def _grid_of(store):
    try:
        return store.grid()
    except Exception:  # noqa: BLE001
        return None


def _read_optional(store, name):
    """A named array of the store, or None when it is absent (absent arrays are simply not drawn)."""
    has = getattr(store, "has_array", None)
    if has is not None and not has(name):
        return None
    try:
        return np.asarray(store.read_array(name))
    except Exception:  # noqa: BLE001
        return None


def plot_store(store, out_dir, *, row: int | None = None) -> dict[str, pathlib.Path]:
    """Write every picture the store supports into ``out_dir``; return {name: path}.

    * ``block_map.png`` — the ledger;
    * ``mask.png`` — the mask (lattice grids);
    * ``dirty_image.png`` — ``d_i = sum_k [wr Re(V) cos(phi_ik) - wi Im(V) sin(phi_ik)]`` when stored;
    * ``lattice_kernel.png`` — log-scaled |k| when a lattice kernel is stored;
    * ``w_tilde_row.png`` — row ``row`` of W-tilde (default: the pixel nearest the mask centre) drawn on
      the mask, when the blocks holding that row are done;
    * ``reconstruction.png`` — the inversion's source reconstruction (``wtilde invert``) when stored;
    * ``residual_dirty_image.png`` — its residual dirty image ``d - W T s`` when stored.
    """
    store = _open_store(store)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, pathlib.Path] = {}
    written["block_map"] = plot_block_map_png(store, out_dir / "block_map.png")
    grid = _grid_of(store)
    lattice = grid is not None and getattr(grid, "mask", None) is not None and getattr(grid, "pixel_scales", None) is not None

    def on_grid(values, **kw):
        if lattice:
            return plot_image_on_mask(values, grid.mask, grid.pixel_scales, **kw)
        return plot_points(values, grid.grid_arcsec, **{k: v for k, v in kw.items() if k in ("title", "colorbar_label")})

    if lattice:
        written["mask"] = save_figure(plot_mask(grid.mask, grid.pixel_scales), out_dir / "mask.png")
    dirty = _read_optional(store, "dirty_image")
    if dirty is not None and grid is not None:
        fig = on_grid(dirty, title="Dirty image d = Σ_k [wr Re V cos φ − wi Im V sin φ]", colorbar_label="d_i (weighted)", symmetric=True)
        written["dirty_image"] = save_figure(fig, out_dir / "dirty_image.png")
    kernel = _read_optional(store, "kernel")
    if kernel is not None and kernel.ndim == 2 and grid is not None and getattr(grid, "pixel_scales", None) is not None:
        written["lattice_kernel"] = save_figure(plot_lattice_kernel(kernel, grid.pixel_scales), out_dir / "lattice_kernel.png")
    if grid is not None:
        w_row = _w_tilde_row(store, grid, row)
        if w_row is not None:
            index, values = w_row
            fig = on_grid(
                values,
                title=f"W-tilde row {index}: W[{index}, j] on the mask (+ = pixel {index})",
                colorbar_label="W_ij [Jy⁻²]",
                symmetric=True,
                mark_pixel=index,
            )
            written["w_tilde_row"] = save_figure(fig, out_dir / "w_tilde_row.png")
    recon = _reconstruction_of(store)
    if recon is not None:
        values, kw = recon
        written["reconstruction"] = save_figure(plot_reconstruction(values, **kw), out_dir / "reconstruction.png")
    residual = _read_optional(store, "inversion/residual_dirty_image")
    if residual is not None and grid is not None and residual.shape == (grid.n_pixels,):
        fig = on_grid(residual, title="Residual dirty image d − W T s", colorbar_label="weighted residual", symmetric=True)
        written["residual_dirty_image"] = save_figure(fig, out_dir / "residual_dirty_image.png")
    return written


def _centre_pixel(grid) -> int:
    arcsec = np.asarray(grid.grid_arcsec)
    centre = arcsec.mean(axis=0)
    return int(np.argmin(np.sum((arcsec - centre) ** 2, axis=1)))


def _w_tilde_row(store, grid, row):
    """(i, W[i, :]) read block by block from the store; None when a needed block is not done."""
    index = _centre_pixel(grid) if row is None else int(row)
    plan = store.plan
    bi = index // plan.block_size
    ledger = np.asarray(store.ledger())
    pieces = []
    for bj in range(plan.n_blocks_side):
        a, b = min(bi, bj), max(bi, bj)
        if ledger[a, b] == 0:
            return None
        block = np.asarray(store.read_block(a, b))
        local = index - bi * plan.block_size
        pieces.append(block[local, :] if bi <= bj else block[:, local])
    return index, np.concatenate(pieces)[: store.n_pixels]


def _reconstruction_of(store):
    """(values, kwargs for plot_reconstruction) of the inversion stored by ``wtilde invert``, or None.

    ``inversion/reconstruction`` (S,) with ``inversion/source_grid_arcsec`` (S, 2) (y, x) source pixels.
    """
    values = _read_optional(store, "inversion/reconstruction")
    if values is None:
        return None
    source_grid = _read_optional(store, "inversion/source_grid_arcsec")
    if source_grid is not None and source_grid.shape == (values.shape[0], 2):
        title = "Source reconstruction s"
        try:
            attrs = store.array_attrs("inversion/reconstruction")
            if "log_evidence" in attrs:
                title += f" (log evidence {float(attrs['log_evidence']):.6g})"
        except Exception:  # noqa: BLE001
            pass
        return values, dict(grid_arcsec=source_grid, title=title)
    grid = _grid_of(store)
    if grid is not None and grid.mask is not None and values.shape == (grid.n_pixels,):
        return values, dict(mask=grid.mask, pixel_scales=grid.pixel_scales, title="Reconstruction (image plane)")
    return None
