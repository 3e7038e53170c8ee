"""Pictures of a lens-model fit stored in a W-tilde store: the corner plot of the posterior and the
max-likelihood source reconstruction (matplotlib figures on an Agg canvas; no pyplot state).

* :func:`plot_corner` — ``corner.corner`` of the weighted posterior samples (n, n_free): 1-D histograms of
  ``bins`` bins over each parameter's sample range on the diagonal (weighted counts: the sum of the weights
  of the samples in a bin), 2-D weighted histograms with 0.5 / 1 / 1.5 / 2 sigma contours below it; the
  max-likelihood point is drawn as the truth lines;
* :func:`plot_max_likelihood_reconstruction` — the source reconstruction ``s = (F + H)^-1 D`` at the
  max-likelihood point, on its source-plane mesh (the nodes of the rectangular meshes, the vertices of the
  others: :func:`source_plane_nodes`), from the store's JAX likelihood;
* :func:`plot_fits` — both for every fit in a store (``wtilde plot STORE``): ``fit_NAME_corner.png`` and
  ``fit_NAME_reconstruction.png``.

The fit is read through :class:`~wtilde_dask.store.fit.FitRecord` only.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

log = logging.getLogger(__name__)

CORNER_BINS = 20


def _no_contour_warning(record) -> bool:
    """Logging filter: drop corner's "Too few points to create valid contours" (a tight 2-D posterior)."""
    return "valid contours" not in record.getMessage()


def plot_corner(samples, weights, names, *, truths=None, title: str | None = None, bins: int = CORNER_BINS):
    """Corner plot of ``samples`` (n, n_free) with ``weights`` (n,) and parameter ``names`` (n_free,);
    ``truths`` (n_free,) drawn as lines (the max-likelihood point in :func:`plot_fits`). Returns the Figure.

    The diagonal panel i is ``corner``'s weighted histogram: ``bins`` equal bins over
    ``[min samples[:, i], max samples[:, i]]``, heights ``numpy.histogram(samples[:, i], bins, weights=weights)``.
    """
    import corner

    from wtilde_dask.plot import _figure

    x = np.asarray(samples, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != w.shape[0] or x.shape[1] != len(names):
        raise ValueError(f"samples: expected shape (n, {len(names)}) with weights (n,), got {x.shape} and {w.shape}")
    k = x.shape[1]
    fig = _figure(figsize=(2.4 * k + 1.0, 2.4 * k + 1.0))
    fig.set_layout_engine(None)
    # a parameter whose samples are all equal has no range: give it a small one around the value
    span = [(lo, hi) if hi > lo else (lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3))
            for lo, hi in zip(x.min(axis=0), x.max(axis=0))]
    root = logging.getLogger()  # corner logs "Too few points to create valid contours" on the root logger
    root.addFilter(_no_contour_warning)
    try:
        corner.corner(x, weights=w, labels=list(names), truths=None if truths is None else list(truths), bins=bins,
                      range=span, fig=fig, show_titles=True, title_fmt=".4f", title_kwargs={"fontsize": 9},
                      label_kwargs={"fontsize": 10}, truth_color="#d62728", quantiles=[0.15866, 0.5, 0.84134])
    finally:
        root.removeFilter(_no_contour_warning)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def corner_histograms(fig) -> list[tuple[np.ndarray, np.ndarray]]:
    """The diagonal histograms drawn by :func:`plot_corner`, read back from the axes: one (edges (bins+1,),
    heights (bins,)) per parameter (from the step outline of ``ax.hist(histtype="step")``)."""
    axes = fig.axes
    k = int(round(np.sqrt(len(axes))))
    out = []
    for i in range(k):
        ax = axes[i * k + i]
        patch = next(p for p in ax.patches if hasattr(p, "get_xy"))
        xy = np.asarray(patch.get_xy())
        # a step outline: (e0, 0), (e0, h0), (e1, h0), (e1, h1), ..., (eB, h_{B-1}), (eB, 0)
        edges = xy[0::2, 0][: len(xy) // 2]
        heights = xy[1::2, 1][: len(xy) // 2 - 1]
        out.append((edges, heights))
    return out


def source_plane_nodes(likelihood, params, topology=None) -> np.ndarray:
    """(S, 2) (y, x) arcsec source-plane positions of the mesh's pixels for lens ``params`` (7,): the nodes of
    the rectangular meshes (``rectangular``: the traced box enlarged by ``buffer``, nodes on its edges;
    ``rectangular_uniform``: PyAutoLens's pixel centres), the vertices (traced image pixels) of the others."""
    import jax.numpy as jnp

    from wtilde_dask.inversion import jax_likelihood as jl

    cfg = likelihood.config
    traced = np.asarray(jl.ray_trace(jnp.asarray(params, dtype=jnp.float64), likelihood.arrays.grid_arcsec))
    lo, hi = traced.min(axis=0), traced.max(axis=0)
    if cfg.mesh in ("rectangular", "rectangular_uniform"):
        ny, nx = cfg.mesh_shape
        if cfg.mesh == "rectangular":
            pad = (hi - lo) * cfg.buffer + 1e-9
            y = np.linspace(hi[0] + pad[0], lo[0] - pad[0], ny)
            x = np.linspace(lo[1] - pad[1], hi[1] + pad[1], nx)
        else:
            lo, hi = lo - 1e-8, hi + 1e-8
            dy, dx = (hi[0] - lo[0]) / ny, (hi[1] - lo[1]) / nx
            y = hi[0] - (np.arange(ny) + 0.5) * dy
            x = lo[1] + (np.arange(nx) + 0.5) * dx
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)
    topo = topology if topology is not None else likelihood.topology(jnp.asarray(params, dtype=jnp.float64))
    index = getattr(topo, "vertex_index", None)
    if index is None:
        raise ValueError(f"mesh {cfg.mesh!r}: no source-plane node positions to draw the reconstruction on")
    return traced[np.asarray(index)]


def max_likelihood_reconstruction(store, name: str = "default"):
    """(values (S,), nodes (S, 2), log evidence, model) of fit ``name`` at its max-likelihood point: the
    reconstruction and its mesh, from the store's :class:`~wtilde_dask.inversion.jax_likelihood.JaxLikelihood`
    with the fit's model (mesh, regularization, coefficient)."""
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood
    from wtilde_dask.store.fit import FitRecord

    record = FitRecord(store, name)
    result = record.result()
    if result is None:
        raise ValueError(f"fit {name!r}: no result stored yet (state {record.state()!r})")
    model = FitModel.from_dict(record.model_record())
    x = np.array([result["max_likelihood"][n] for n in model.free_names], dtype=np.float64)
    params, coefficient = model.likelihood_inputs(x)
    likelihood = JaxLikelihood.from_store(store, **model.likelihood_options(), coefficient=float(coefficient))
    params = np.asarray(params, dtype=np.float64)
    inv = likelihood.inversion(params)
    return (np.asarray(inv.reconstruction), source_plane_nodes(likelihood, params), float(inv.log_evidence), model)


def plot_max_likelihood_reconstruction(store, name: str = "default"):
    """The max-likelihood source reconstruction of fit ``name`` on its source-plane mesh (a Figure)."""
    from wtilde_dask.plot import plot_source_reconstruction

    values, nodes, log_ev, model = max_likelihood_reconstruction(store, name)
    return plot_source_reconstruction(values, nodes, title=f"fit {name!r}: max-likelihood source "
                                                           f"(log evidence {log_ev:.6g})")


def plot_fits(store, out_dir) -> dict[str, pathlib.Path]:
    """Write the corner plot and the max-likelihood reconstruction of every fit with a result in ``store``
    into ``out_dir``: {"fit_NAME_corner": path, "fit_NAME_reconstruction": path}."""
    from wtilde_dask.plot import save_figure
    from wtilde_dask.store.fit import FitRecord, fit_names

    out_dir = pathlib.Path(out_dir)
    written: dict[str, pathlib.Path] = {}
    for name in fit_names(store):
        record = FitRecord(store, name)
        result = record.result()
        if result is None:
            log.info("fit %r: no result yet (state %s): no figures", name, record.state())
            continue
        samples, weights, _ = record.posterior()
        names = list(result["free_names"])
        best = [result["max_likelihood"][n] for n in names]
        title = (f"fit {name!r}: log Z = {result['log_evidence']:.3f} ± {result['log_evidence_error'] or float('nan'):.3f}, "
                 f"{result['n_evaluations']:,} evaluations" if result.get("log_evidence") is not None
                 else f"fit {name!r}: {result['n_evaluations']:,} evaluations")
        fig = plot_corner(samples, weights, names, truths=best, title=title)
        written[f"fit_{name}_corner"] = save_figure(fig, out_dir / f"fit_{name}_corner.png")
        fig = plot_max_likelihood_reconstruction(store, name)
        written[f"fit_{name}_reconstruction"] = save_figure(fig, out_dir / f"fit_{name}_reconstruction.png")
    return written
