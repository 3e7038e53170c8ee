"""W-tilde as a lazy dask array and an xarray DataArray: the full symmetric (M, M) matrix from the stored upper
triangle (block (bi, bj) with bi > bj is the transpose of stored block (bj, bi))."""

from __future__ import annotations

import functools

import numpy as np
import zarr

from wtilde_dask.errors import StoreError
from wtilde_dask.store.layout import ARCSEC_PER_RADIAN


# Reading blocks in dask graphs (module-level so they pickle to workers)
@functools.lru_cache(maxsize=16)
def _w_tilde_array(path: str):
    return zarr.open_array(store=path, path="w_tilde", mode="r")


def _read_symmetric_block(path: str, bi: int, bj: int, rows: tuple, cols: tuple, done: bool) -> np.ndarray:
    """Block (bi, bj) of the full symmetric matrix: stored (bi <= bj) or the transpose of (bj, bi)."""
    if not done:
        return np.full((rows[1] - rows[0], cols[1] - cols[0]), np.nan)
    arr = _w_tilde_array(path)
    if bi <= bj:
        return np.asarray(arr[rows[0]:rows[1], cols[0]:cols[1]])
    return np.ascontiguousarray(np.asarray(arr[cols[0]:cols[1], rows[0]:rows[1]]).T)



class ArrayViews:
    """Dask / xarray views of a :class:`~wtilde_dask.store.WTildeStore` (uses its ``path``, ``plan``, ``ledger``,
    ``group``)."""

    def grid_arcsec(self) -> np.ndarray:
        """(M, 2) (y, x) of each pixel in arcsec."""
        return np.asarray(self.group["inputs"]["grid_radians"][:]) * ARCSEC_PER_RADIAN

    def to_dask(self, allow_incomplete: bool = False):
        """The full (M, M) symmetric W-tilde as a lazy dask array, chunks (B, B).

        Block (bi, bj) with bi > bj is the transpose of stored block (bj, bi). An incomplete store
        is refused unless ``allow_incomplete``; missing blocks then read as NaN.
        """
        import dask.array as da
        from dask.base import tokenize

        plan = self.plan
        ledger = self.ledger()
        n_done = int(np.count_nonzero(np.triu(ledger)))
        if n_done < plan.n_blocks and not allow_incomplete:
            raise StoreError(f"store {self.path}: incomplete, {n_done}/{plan.n_blocks} blocks done; "
                             "finish it (run the same command again) or pass allow_incomplete=True")
        name = "w_tilde-" + tokenize(str(self.path.resolve()), self.fingerprint, ledger.tobytes())
        path = str(self.path.resolve())  # tasks run in worker processes, whose working directory may differ
        nb = plan.n_blocks_side
        dsk = {}
        for bi in range(nb):
            r = plan.pixel_range(bi)
            for bj in range(nb):
                c = plan.pixel_range(bj)
                done = bool(ledger[min(bi, bj), max(bi, bj)])
                dsk[(name, bi, bj)] = (_read_symmetric_block, path, bi, bj, (r.start, r.stop), (c.start, c.stop), done)
        chunks = (plan.block_chunks(), plan.block_chunks())
        return da.Array(dsk, name, chunks=chunks, dtype=np.dtype(self.dtype))

    def to_xarray(self, allow_incomplete: bool = False):
        """W-tilde as an ``xarray.DataArray`` dims (pixel_i, pixel_j); coords y_i, x_i, y_j, x_j in arcsec."""
        import xarray as xr

        data = self.to_dask(allow_incomplete=allow_incomplete)
        arcsec = self.grid_arcsec()
        M = self.n_pixels
        coords = {
            "pixel_i": np.arange(M), "pixel_j": np.arange(M),
            "y_i": ("pixel_i", arcsec[:, 0]), "x_i": ("pixel_i", arcsec[:, 1]),
            "y_j": ("pixel_j", arcsec[:, 0]), "x_j": ("pixel_j", arcsec[:, 1]),
        }
        attrs = {k: self._attrs[k] for k in ("method", "dtype", "n_pixels", "block_size", "fingerprint")}
        attrs.update(store=str(self.path), long_name="W-tilde curvature matrix",
                     formula="W_ij = sum_k [wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk)]",
                     units="1/Jy^2")
        da_ = xr.DataArray(data, dims=("pixel_i", "pixel_j"), coords=coords, name="w_tilde", attrs=attrs)
        for c in ("y_i", "x_i", "y_j", "x_j"):
            da_[c].attrs["units"] = "arcsec"
        return da_
