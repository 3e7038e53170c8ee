"""PyAutoLens's ``FitInterferometer`` on an image-plane mesh, the peer rows of the likelihood benchmark for the
``delaunay`` and ``voronoi`` meshes (:mod:`wtilde_dask.bench.likelihood`).

The comparable peer meshes: ``al.mesh.Delaunay`` (barycentric interpolation in the triangle, as our
``delaunay``) and ``al.mesh.DelaunayNN`` (Sibson natural-neighbour weights on the same triangulation, as our
``voronoi``). Their vertices are an image-plane mesh grid traced to the source plane: an
``al.image_mesh.Overlay`` of (n, n) points over the image, of which the points inside the mask are kept, with n
chosen so that the count is the closest to our number of source pixels (:func:`overlay_mesh_grid`); no edge ring,
no zeroed pixels. The grid reaches the fit through ``al.AdaptImages(galaxy_image_plane_mesh_grid_dict=...)``.

Regularization: ``al.reg.ConstantSplit`` under ``jax.jit`` (the peer's constant scheme on these meshes that
traces: its ``al.reg.Constant`` builds the vertex neighbours with SciPy from the traced vertices, which
``jax.jit`` cannot do), ``al.reg.Constant`` (the scheme ours uses, the graph Laplacian of the Delaunay edges)
with ``xp=numpy`` only. Data, mask and the sparse operator preloaded with our lattice kernel:
:func:`~wtilde_dask.bench.fit_peer.peer_dataset` (``own_operator=False``), as the rectangular peer rows.
"""

from __future__ import annotations

import math

import numpy as np

from wtilde_dask.errors import MeshError

PEER_MESHES = {"delaunay": "Delaunay", "voronoi": "DelaunayNN"}
PEER_REGULARIZATIONS = {"constant_split": "ConstantSplit", "constant": "Constant"}


def overlay_mesh_grid(al, mask, n_pixels: int):
    """(image-plane mesh grid (S', 2) arcsec, overlay shape (n, n)): the ``al.image_mesh.Overlay`` whose count of
    points inside ``mask`` is the closest to ``n_pixels`` (n grows from ``ceil(sqrt(n_pixels)) - 1`` until the count
    reaches ``n_pixels``; at most n^2 points fall inside, so smaller n cannot reach it)."""
    target = int(n_pixels)
    n_max = int(max(np.asarray(mask).shape))
    best = None
    for n in range(max(math.isqrt(max(target - 1, 0)), 2), n_max + 1):
        grid = al.image_mesh.Overlay(shape=(n, n), respect_small_datasets=False).image_plane_mesh_grid_from(mask=mask)
        if best is None or abs(grid.shape[0] - target) < abs(best[0].shape[0] - target):
            best = (grid, (n, n))
        if grid.shape[0] >= target:
            break
    return best


def peer_mesh_fit_factory(store, lens, mesh: str, n_pixels: int):
    """(fit(er, xp, settings, regularization), linear settings, info) for PyAutoLens's ``FitInterferometer`` on the
    store's data and mask with the lens as an Isothermal + ExternalShear of Einstein radius ``er``, the peer mesh of
    ``mesh`` ("delaunay" -> ``Delaunay``, "voronoi" -> ``DelaunayNN``) on an Overlay image-plane mesh grid of about
    ``n_pixels`` points, and ``regularization`` "constant_split" or "constant" (coefficient 1).
    ``info``: {"mesh_class", "n_pixels", "overlay_shape"}. None when autolens is not importable (message printed)."""
    if mesh not in PEER_MESHES:
        raise MeshError(f"mesh: no peer mesh for {mesh!r}, expected one of {', '.join(PEER_MESHES)}")
    try:
        from wtilde_dask.bench.fit_peer import _autolens, peer_dataset, peer_settings

        al, _ = _autolens()
    except Exception as err:  # noqa: BLE001 - peer optional
        print(f"likelihood: autolens not importable ({type(err).__name__}: {err}); peer rows skipped "
              f"(pip install -e '.[peer]' on Python >= 3.12)")
        return None
    dataset = peer_dataset(store, own_operator=False)
    image_plane_mesh_grid, overlay_shape = overlay_mesh_grid(al, dataset.real_space_mask, n_pixels)
    mesh_cls = getattr(al.mesh, PEER_MESHES[mesh])
    S = int(image_plane_mesh_grid.shape[0])
    ell_comps = al.convert.ell_comps_from(axis_ratio=lens.axis_ratio, angle=lens.position_angle)

    def fit(er, xp=np, settings=None, regularization="constant_split"):
        reg = getattr(al.reg, PEER_REGULARIZATIONS[regularization])(coefficient=1.0)
        lens_galaxy = al.Galaxy(redshift=0.5, mass=al.mp.Isothermal(centre=tuple(lens.centre), ell_comps=ell_comps,
                                                                     einstein_radius=er),
                                shear=al.mp.ExternalShear(gamma_1=lens.shear[0], gamma_2=lens.shear[1]))
        source = al.Galaxy(redshift=1.0, pixelization=al.Pixelization(mesh=mesh_cls(pixels=S), regularization=reg))
        adapt_images = al.AdaptImages(galaxy_image_plane_mesh_grid_dict={source: image_plane_mesh_grid})
        return al.FitInterferometer(dataset=dataset, tracer=al.Tracer(galaxies=[lens_galaxy, source]), xp=xp,
                                    settings=settings, adapt_images=adapt_images)

    info = {"mesh_class": PEER_MESHES[mesh], "n_pixels": S, "overlay_shape": overlay_shape}
    return fit, peer_settings(), info
