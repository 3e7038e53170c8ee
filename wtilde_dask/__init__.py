"""wtilde_dask: the interferometer W-tilde curvature matrix, out of core on Dask, stored in Zarr.

W_ij = sum_k [ wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk) ],
phi_ik = 2 pi (x_i u_k + y_i v_k), wr = 1/sigma_re^2, wi = 1/sigma_im^2.

The public API is imported lazily so that ``import wtilde_dask`` stays cheap (no JAX, no Dask).
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Interferometer": "wtilde_dask.dataset",
    "load_dataset": "wtilde_dask.io",
    "ImageGrid": "wtilde_dask.grid",
    "compute": "wtilde_dask.compute",
    "WTildeStore": "wtilde_dask.store",
    "open_w_tilde": "wtilde_dask.store",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wtilde_dask' has no attribute {name!r}")
