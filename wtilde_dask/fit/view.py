"""The fit view's picture on the scheduler's dashboard: the source reconstruction at a fit's best point so far.

Served at ``/wtilde/fit/reconstruction.png?name=NAME`` beside the block-map page (:mod:`wtilde_dask.dashboard`,
which lists this module in its ``ROUTE_MODULES``), for the store the scheduler's metadata names
(:func:`wtilde_dask.dashboard.publish_fit`). It draws with the fit's JAX likelihood, so it sits above the fits in
the import layers, while the block-map page stays below the cluster that serves it.
"""

from __future__ import annotations

import json

import numpy as np
from distributed.http.utils import RequestHandler

from wtilde_dask.dashboard import FIT_IMAGE_PATH, _fit_store

__all__ = ["best_reconstruction_png", "FitReconstructionImage", "routes"]


# reconstruction images at the best point so far: {(store, name): (key of the best point, png bytes)}
_FIT_IMAGES: dict[tuple[str, str], tuple[str, bytes]] = {}
_FIT_LIKELIHOODS: dict[tuple[str, str], tuple[str, object]] = {}


def best_reconstruction_png(store_path: str, name: str) -> bytes | None:
    """PNG of the source reconstruction at fit ``name``'s best point so far (its progress ``best``; the result's
    max-likelihood point once complete), on its mesh; None when the fit has no best point yet. The JAX
    likelihood is built once per fit and model; the image is redrawn only when the best point changes."""
    from wtilde_dask.fit.figures import source_plane_nodes
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood
    from wtilde_dask.plot import plot_source_reconstruction
    from wtilde_dask.store.fit import FitRecord

    record = FitRecord(store_path, name)
    progress, model_record = record.progress(), record.model_record()
    best = progress.get("best")
    if not isinstance(best, dict) or not model_record:
        return None
    key = json.dumps([best, progress.get("max_log_likelihood")], sort_keys=True, default=str)
    hit = _FIT_IMAGES.get((store_path, name))
    if hit is not None and hit[0] == key:
        return hit[1]
    model = FitModel.from_dict(model_record)
    x = np.array([best[n] for n in model.free_names], dtype=np.float64)
    params, coefficient = model.likelihood_inputs(x)
    model_key = json.dumps(model_record, sort_keys=True, default=str) + f"|{float(coefficient)!r}"
    cached = _FIT_LIKELIHOODS.get((store_path, name))
    if cached is None or cached[0] != model_key:
        cached = (model_key, JaxLikelihood.from_store(store_path, **model.likelihood_options(),
                                                      coefficient=float(coefficient)))
        _FIT_LIKELIHOODS[(store_path, name)] = cached
    likelihood = cached[1]
    params = np.asarray(params, dtype=np.float64)
    inv = likelihood.inversion(params)
    fig = plot_source_reconstruction(np.asarray(inv.reconstruction), source_plane_nodes(likelihood, params),
                                     title=f"fit {name!r}: best so far (log L {float(inv.log_evidence):.6g})")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    png = buf.getvalue()
    _FIT_IMAGES[(store_path, name)] = (key, png)
    return png


class FitReconstructionImage(RequestHandler):
    """GET /wtilde/fit/reconstruction.png?name=NAME: the best-so-far reconstruction of a fit (drawn in a
    thread, so the scheduler's event loop never waits on it)."""

    async def get(self):
        import asyncio

        name = self.get_argument("name", "default")
        store = _fit_store(self.server)
        png = None
        if store:
            try:
                png = await asyncio.get_running_loop().run_in_executor(None, best_reconstruction_png, store, name)
            except Exception as err:  # noqa: BLE001 - a fit being written or a store being moved
                self.set_status(503)
                self.write(f"fit {name!r}: no reconstruction ({type(err).__name__}: {err})")
                return
        if png is None:
            self.set_status(404)
            self.write(f"fit {name!r}: no best point yet")
            return
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "no-store")
        self.write(png)


#: what ``distributed.scheduler.http.routes`` expects of a module: (path, handler class, kwargs)
routes: list[tuple] = [(FIT_IMAGE_PATH, FitReconstructionImage, {})]
