"""Figures from arrays (matplotlib, no pyplot state): the block map, masks and images on masks, points, the
lattice kernel and a source reconstruction; each returns a :class:`matplotlib.figure.Figure`. Conventions:
:mod:`wtilde_dask.plot`.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from wtilde_dask.blockstate import BLOCK_COLOURS, FAILED, LOWER, block_counts, block_states, block_title



def _figure(figsize=(6.4, 5.6), dpi=100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> pathlib.Path:
    """Write ``fig`` to ``path`` (format from the suffix, PNG by default); make the folder; return the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path


def plot_block_map(
    states_or_ledger: np.ndarray,
    *,
    eta_s: float | None = None,
    rate_blocks_per_s: float | None = None,
    title: str = "W-tilde block map",
    subtitle: str | None = None,
    block_size: int | None = None,
    n_pixels: int | None = None,
):
    """The upper triangle of blocks coloured done / running / pending / failed.

    Parameters
    ----------
    states_or_ledger : (nb, nb) array
        Either the output of :func:`block_states` (int8 with -1 below the diagonal) or a store's
        ledger (unsigned checksums, 0 = not done), which is turned into states.
    eta_s, rate_blocks_per_s : float, optional
        Shown in the title when given.
    block_size, n_pixels : int, optional
        Shown on the axis labels (block index -> pixel range).

    Returns
    -------
    matplotlib Figure. Cell (bi, bj) is drawn at row bi, column bj; block (0, 0) is top left.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    arr = np.asarray(states_or_ledger)
    if arr.dtype == np.int8 and arr.size and arr.min() >= LOWER and arr.max() <= FAILED:
        states = arr
    else:
        states = block_states(arr)
    nb = states.shape[0]
    counts = block_counts(states)
    # colour index: 0 lower, 1 pending, 2 done, 3 running, 4 failed
    cmap = ListedColormap(
        [BLOCK_COLOURS["lower"], BLOCK_COLOURS["pending"], BLOCK_COLOURS["done"], BLOCK_COLOURS["running"], BLOCK_COLOURS["failed"]]
    )
    fig = _figure(figsize=(6.4, 6.2))
    ax = fig.add_subplot()
    ax.imshow(states.astype(np.int16) + 1, cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest", origin="upper")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    ax.set_axisbelow(False)
    if nb <= 64:  # cell borders
        ax.set_xticks(np.arange(-0.5, nb, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, nb, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.0 if nb <= 32 else 0.4)
        ax.tick_params(which="minor", length=0)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    unit = f" (block = {block_size} pixels)" if block_size else ""
    ax.set_xlabel(f"block column bj{unit}")
    ax.set_ylabel("block row bi")
    ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_visible(False)
    head = title if n_pixels is None else f"{title}: M = {n_pixels:,} pixels, {nb}×{nb} blocks"
    fig.suptitle(head + "\n" + block_title(counts, eta_s, rate_blocks_per_s), fontsize=10)
    handles = [
        Patch(facecolor=BLOCK_COLOURS[name], edgecolor="none", label=f"{name} ({counts[name]})")
        for name in ("done", "running", "pending", "failed")
    ]
    ax.legend(handles=handles, loc="lower left", frameon=False, fontsize=9, handlelength=1.0, handleheight=1.0)
    if subtitle:
        fig.text(0.01, 0.005, subtitle, fontsize=7, color="#555555", ha="left", va="bottom")
    return fig


def image_on_mask(values: np.ndarray, mask: np.ndarray, fill=np.nan) -> np.ndarray:
    """Scatter slim-ordered ``values`` (M,) onto the (ny, nx) lattice; masked pixels (True) get ``fill``."""
    mask = np.asarray(mask, dtype=bool)
    values = np.asarray(values)
    n_unmasked = int(np.count_nonzero(~mask))
    if values.shape != (n_unmasked,):
        raise ValueError(f"values have shape {values.shape}, expected ({n_unmasked},) = the number of unmasked pixels")
    image = np.full(mask.shape, fill, dtype=np.result_type(values.dtype, np.float64))
    image[~mask] = values
    return image


def _crop(mask: np.ndarray, margin: int = 2) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) rows/cols (inclusive-exclusive) of the unmasked pixels plus a margin."""
    rows = np.flatnonzero((~mask).any(axis=1))
    cols = np.flatnonzero((~mask).any(axis=0))
    if rows.size == 0:
        return 0, mask.shape[0], 0, mask.shape[1]
    ny, nx = mask.shape
    return max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, ny), max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, nx)


def _extent(shape_native, pixel_scales, r0, r1, c0, c1) -> list[float]:
    """imshow extent (left, right, bottom, top) in arcsec of rows r0:r1, cols c0:c1 (origin='upper')."""
    ny, nx = shape_native
    sy, sx = pixel_scales
    return [(c0 - nx / 2) * sx, (c1 - nx / 2) * sx, (ny / 2 - r1) * sy, (ny / 2 - r0) * sy]


def _arcsec_axes(ax):
    ax.set_xlabel("x (arcsec)")
    ax.set_ylabel("y (arcsec)")
    ax.set_aspect("equal")


def plot_mask(mask: np.ndarray, pixel_scales: tuple[float, float], *, title: str | None = None):
    """The mask on the full (ny, nx) lattice in arcsec: unmasked pixels (kept, False) dark, masked light."""
    from matplotlib.colors import ListedColormap

    mask = np.asarray(mask, dtype=bool)
    ny, nx = mask.shape
    fig = _figure(figsize=(5.6, 5.2))
    ax = fig.add_subplot()
    ax.imshow(
        (~mask).astype(np.int8),
        cmap=ListedColormap(["#f0f0f0", "#3182bd"]),
        vmin=0,
        vmax=1,
        interpolation="nearest",
        origin="upper",
        extent=_extent(mask.shape, pixel_scales, 0, ny, 0, nx),
    )
    _arcsec_axes(ax)
    n = int(np.count_nonzero(~mask))
    sy, sx = pixel_scales
    ax.set_title(title or f"Mask: {n:,} unmasked of {ny}×{nx} pixels ({sy:g}″ × {sx:g}″)", fontsize=10)
    return fig


def plot_image_on_mask(
    values: np.ndarray,
    mask: np.ndarray,
    pixel_scales: tuple[float, float],
    *,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "inferno",
    symmetric: bool = False,
    mark_pixel: int | None = None,
    crop: bool = True,
):
    """A per-pixel quantity (M,) in slim order drawn on the mask, arcsec axes, equal aspect, colour bar.

    ``symmetric=True`` centres the colour scale on 0 (diverging map) — for W-tilde rows and dirty
    images with negative sidelobes. ``mark_pixel`` (slim index) draws a cross on that pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    image = image_on_mask(np.asarray(values, dtype=np.float64), mask)
    r0, r1, c0, c1 = _crop(mask) if crop else (0, mask.shape[0], 0, mask.shape[1])
    fig = _figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    kwargs = {}
    finite = image[np.isfinite(image)]
    if symmetric and finite.size:
        vmax = float(np.max(np.abs(finite))) or 1.0
        kwargs = dict(vmin=-vmax, vmax=vmax)
        cmap = "RdBu_r" if cmap == "inferno" else cmap
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="#ffffff")
    im = ax.imshow(
        image[r0:r1, c0:c1],
        cmap=cm,
        interpolation="nearest",
        origin="upper",
        extent=_extent(mask.shape, pixel_scales, r0, r1, c0, c1),
        **kwargs,
    )
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label(colorbar_label)
    if mark_pixel is not None:
        rows, cols = np.nonzero(~mask)
        ny, nx = mask.shape
        sy, sx = pixel_scales
        y = ((ny - 1) / 2 - rows[mark_pixel]) * sy
        x = (cols[mark_pixel] - (nx - 1) / 2) * sx
        ax.plot([x], [y], marker="+", color="#00ff00" if not symmetric else "k", markersize=12, mew=1.5)
    _arcsec_axes(ax)
    ax.set_title(title, fontsize=10)
    return fig


def plot_points(values: np.ndarray, grid_arcsec: np.ndarray, *, title: str = "", colorbar_label: str = "", cmap="inferno"):
    """A per-pixel quantity on an irregular (M, 2) (y, x) arcsec point set: a scatter plot, arcsec axes."""
    fig = _figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    grid_arcsec = np.asarray(grid_arcsec)
    sc = ax.scatter(grid_arcsec[:, 1], grid_arcsec[:, 0], c=np.asarray(values, dtype=np.float64), cmap=cmap, s=12, marker="s")
    cbar = fig.colorbar(sc, ax=ax, shrink=0.9)
    cbar.set_label(colorbar_label)
    _arcsec_axes(ax)
    ax.set_title(title, fontsize=10)
    return fig


def plot_lattice_kernel(kernel: np.ndarray, pixel_scales: tuple[float, float], *, title: str | None = None, dynamic_range: float = 1e4):
    """The lattice offset kernel ``k[dr + ny-1, dc + nx-1]`` as ``log10(|k| / k(0, 0))``.

    ``k(dr, dc) = sum_k w_k cos(2 pi (dc sx u_k - dr sy v_k))`` is the weighted dirty beam sampled at
    pixel offsets; W_ij = k(r_i - r_j, c_i - c_j) for equal real/imag weights. Axes are the offsets in
    arcsec (``Δy = -dr sy``, ``Δx = dc sx``), so the picture is oriented like the sky. Values below
    ``k(0,0) / dynamic_range`` are clipped.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel has shape {kernel.shape}, expected (2*ny-1, 2*nx-1) (odd sides)")
    ky, kx = kernel.shape
    cy, cx = ky // 2, kx // 2
    peak = abs(kernel[cy, cx]) or float(np.max(np.abs(kernel))) or 1.0
    logk = np.log10(np.maximum(np.abs(kernel) / peak, 1.0 / dynamic_range))
    sy, sx = pixel_scales
    extent = [(-cx - 0.5) * sx, (cx + 0.5) * sx, (-cy - 0.5) * sy, (cy + 0.5) * sy]
    fig = _figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    im = ax.imshow(logk, cmap="viridis", interpolation="nearest", origin="upper", extent=extent, vmin=-math.log10(dynamic_range), vmax=0)
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label("log10 |k(Δy, Δx)| / k(0, 0)")
    ax.set_xlabel("Δx (arcsec)")
    ax.set_ylabel("Δy (arcsec)")
    ax.set_aspect("equal")
    ax.set_title(title or f"Lattice kernel |k| (weighted dirty beam), {ky}×{kx} offsets, k(0,0) = {peak:.4g}", fontsize=10)
    return fig


def _regular_lattice(points: np.ndarray, decimals: int = 9):
    """(ys, xs, rows, cols) when the (S, 2) (y, x) points fill a full rectangular lattice, else None."""
    ys, rows = np.unique(np.round(points[:, 0], decimals), return_inverse=True)
    xs, cols = np.unique(np.round(points[:, 1], decimals), return_inverse=True)
    if len(ys) * len(xs) != len(points) or len(ys) < 2 or len(xs) < 2:
        return None
    if len(set(zip(rows.tolist(), cols.tolist()))) != len(points):
        return None
    return ys, xs, rows, cols


def plot_source_reconstruction(values: np.ndarray, source_grid_arcsec: np.ndarray, *, title: str = "Source reconstruction",
                               colorbar_label: str = "surface brightness"):
    """A reconstruction on source-plane pixels (S, 2) (y, x) arcsec: an image when the pixels form a
    rectangular mesh, a Gouraud-shaded Delaunay triangulation otherwise. Arcsec axes, equal aspect."""
    values = np.asarray(values, dtype=np.float64)
    points = np.asarray(source_grid_arcsec, dtype=np.float64)
    if points.shape != (values.shape[0], 2):
        raise ValueError(f"source grid has shape {points.shape}, expected ({values.shape[0]}, 2) for {values.shape[0]} values")
    fig = _figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    lattice = _regular_lattice(points)
    if lattice is not None:
        ys, xs, rows, cols = lattice
        image = np.full((len(ys), len(xs)), np.nan)
        image[rows, cols] = values
        dy = (ys[-1] - ys[0]) / (len(ys) - 1)
        dx = (xs[-1] - xs[0]) / (len(xs) - 1)
        im = ax.imshow(image, cmap="inferno", origin="lower", interpolation="nearest",
                       extent=[xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2])
        kind = f"rectangular mesh {len(ys)}×{len(xs)}"
    else:
        im = ax.tripcolor(points[:, 1], points[:, 0], values, cmap="inferno", shading="gouraud")
        kind = f"Delaunay mesh, {len(points)} vertices"
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label(colorbar_label)
    ax.set_xlabel("source-plane x (arcsec)")
    ax.set_ylabel("source-plane y (arcsec)")
    ax.set_aspect("equal")
    ax.set_title(f"{title} ({kind})", fontsize=10)
    return fig


def plot_reconstruction(
    values: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    pixel_scales: tuple[float, float] | None = None,
    grid_arcsec: np.ndarray | None = None,
    title: str = "Reconstruction",
    colorbar_label: str = "surface brightness",
):
    """A reconstruction: on a lattice (``mask`` + ``pixel_scales``; values slim-ordered over the unmasked
    pixels, or a full (ny, nx) image) or on source-plane pixels ``grid_arcsec`` (S, 2) (y, x)."""
    values = np.asarray(values, dtype=np.float64)
    if mask is not None and pixel_scales is not None:
        mask = np.asarray(mask, dtype=bool)
        if values.shape == mask.shape:
            values = values[~mask]
        return plot_image_on_mask(values, mask, pixel_scales, title=title, colorbar_label=colorbar_label)
    if grid_arcsec is not None:
        return plot_source_reconstruction(values, grid_arcsec, title=title, colorbar_label=colorbar_label)
    if values.ndim == 2:
        mask = np.zeros(values.shape, dtype=bool)
        return plot_image_on_mask(values.ravel(), mask, pixel_scales or (1.0, 1.0), title=title, colorbar_label=colorbar_label, crop=False)
    raise ValueError(f"reconstruction has shape {values.shape}: give mask + pixel_scales or grid_arcsec to place it")


