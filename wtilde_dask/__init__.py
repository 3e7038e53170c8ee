"""wtilde_dask: the interferometer W-tilde curvature matrix, out of core on Dask, stored in Zarr.

W_ij = sum_k [ wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk) ],
phi_ik = 2 pi (x_i u_k + y_i v_k), wr = 1/sigma_re^2, wi = 1/sigma_im^2.

The public API (``_LAZY`` below: datasets and grids, compute / verify / status, the store, the inversion, the JAX
likelihood, fitting, the common error) is imported lazily on first use, so that ``import wtilde_dask`` stays cheap
(no JAX, no Dask).
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    # data in
    "Interferometer": "wtilde_dask.dataset",
    "load_dataset": "wtilde_dask.io",
    "open_visibilities": "wtilde_dask.io",
    "VisibilitySource": "wtilde_dask.io",
    "ImageGrid": "wtilde_dask.grid",
    # computing, checking and reading W-tilde
    "compute": "wtilde_dask.compute",
    "verify_store": "wtilde_dask.verify",
    "store_status": "wtilde_dask.status",
    "WTildeStore": "wtilde_dask.store",
    "open_w_tilde": "wtilde_dask.store",
    "cluster_client": "wtilde_dask.cluster",
    # inversion and the JAX likelihood
    "WTildeFitter": "wtilde_dask.inversion.fitter",
    "JaxLikelihood": "wtilde_dask.inversion.jax_likelihood",
    "maximize_evidence": "wtilde_dask.inversion.jax_likelihood",
    "LensModel": "wtilde_dask.inversion.lens",
    # fitting
    "FitModel": "wtilde_dask.fit.model",
    "run_fit": "wtilde_dask.fit.run",
    # errors
    "WTildeError": "wtilde_dask.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wtilde_dask' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
