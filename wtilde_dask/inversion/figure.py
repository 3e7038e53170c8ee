"""The inversion picture: dirty image, reconstruction on the source mesh, residual dirty image (Agg)."""

from __future__ import annotations

import pathlib

import numpy as np


def _on_image_plane(ax, fig, values, grid, title):
    from wtilde_dask.plot import image_on_mask

    vmax = float(np.max(np.abs(values))) or 1.0
    if grid.mask is not None and grid.pixel_scales is not None:
        mask = np.asarray(grid.mask, dtype=bool)
        image = image_on_mask(np.asarray(values, dtype=np.float64), mask)
        rows, cols = np.nonzero(~mask)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        ny, nx = mask.shape
        sy, sx = grid.pixel_scales
        extent = [(c0 - 0.5 - (nx - 1) / 2) * sx, (c1 - 0.5 - (nx - 1) / 2) * sx,
                  ((ny - 1) / 2 - r1 + 0.5) * sy, ((ny - 1) / 2 - r0 + 0.5) * sy]
        im = ax.imshow(image[r0:r1, c0:c1], cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="upper",
                       interpolation="nearest", extent=extent)
    else:
        g = grid.grid_arcsec
        im = ax.scatter(g[:, 1], g[:, 0], c=values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, s=8, marker="s")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (arcsec)")
    ax.set_ylabel("y (arcsec)")
    ax.set_aspect("equal")


def _on_mesh(ax, fig, values, mesh, title):
    from wtilde_dask.inversion.mesh import DelaunayMesh, RectangularMesh

    if isinstance(mesh, RectangularMesh):
        ny, nx = mesh.shape
        y0, y1, x0, x1 = mesh.extent
        dy, dx = mesh.spacing
        im = ax.imshow(np.asarray(values).reshape(ny, nx), cmap="inferno", origin="upper", interpolation="nearest",
                       extent=[x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2])
    elif isinstance(mesh, DelaunayMesh):
        c = mesh.centres
        im = ax.tripcolor(c[:, 1], c[:, 0], mesh.triangulation.simplices, np.asarray(values), cmap="inferno",
                          shading="gouraud")
    else:
        c = mesh.centres
        im = ax.scatter(c[:, 1], c[:, 0], c=values, cmap="inferno", s=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("source x (arcsec)")
    ax.set_ylabel("source y (arcsec)")
    ax.set_aspect("equal")


def plot_inversion(path, *, grid, mesh, dirty_image, reconstruction, residual_dirty_image, result=None,
                   title: str = "") -> pathlib.Path:
    """Write a 3-panel PNG: dirty image d, reconstruction s on the mesh, residual dirty image d - W T s."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    _on_image_plane(axes[0], fig, dirty_image, grid, "Dirty image d")
    sub = ""
    if result is not None:
        sub = f"\nchi2 = {result.chi_squared:.6g}, log evidence = {result.log_evidence:.6g}"
    _on_mesh(axes[1], fig, reconstruction, mesh, f"Reconstruction s on the {type(mesh).__name__} ({mesh.n_pixels} pixels){sub}")
    _on_image_plane(axes[2], fig, residual_dirty_image, grid, "Residual dirty image d - W T s")
    if title:
        fig.suptitle(title, fontsize=10)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
