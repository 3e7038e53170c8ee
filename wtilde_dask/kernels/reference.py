"""Slow plain-NumPy formulas: the ground truth for tests and ``verify`` (never used for production).

Everything here is written element by element in the field's notation, looping over one index in
Python and vectorising only the sums, with no matrix product (no BLAS), so it is an independent check
of the block-product kernels in :mod:`wtilde_dask.kernels.direct` and :mod:`wtilde_dask.kernels.dirty`.

Notation (docs/mathematics.md): grid (M, 2) (y, x) radians, ``uv_wavelengths`` (K, 2) (u, v) wavelengths,
``phi_ik = 2 pi (x_i u_k + y_i v_k)``, ``wr = 1/sigma_re**2``, ``wi = 1/sigma_im**2``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "phases_reference",
    "w_tilde_reference",
    "w_tilde_equal_weights_reference",
    "dirty_image_reference",
]


def _index(rows, m: int) -> np.ndarray:
    return np.arange(m) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)


def phases_reference(grid_radians, uv_wavelengths) -> np.ndarray:
    """(M, K) ``phi_ik = 2 pi (x_i u_k + y_i v_k)`` (radians); grid (M, 2) (y, x) radians, uv (K, 2)."""
    g = np.asarray(grid_radians, dtype=np.float64)
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    return 2.0 * np.pi * (g[:, 1:2] * uv[None, :, 0] + g[:, 0:1] * uv[None, :, 1])


def w_tilde_reference(grid_radians, uv_wavelengths, weights_real, weights_imag, rows=None, cols=None) -> np.ndarray:
    """W-tilde entries ``W[rows][:, cols]`` by the general (unequal real/imag noise) formula.

    ``W_ij = sum_k [ wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk) ]``

    Parameters: grid_radians (M, 2) (y, x) radians; uv_wavelengths (K, 2); weights_real, weights_imag (K,);
    rows, cols: pixel indices (default all). Returns (len(rows), len(cols)) float64.
    Loops over the row pixel; the sum over k is an element-wise sum (no matrix product).
    """
    g = np.asarray(grid_radians, dtype=np.float64)
    wr = np.asarray(weights_real, dtype=np.float64)
    wi = np.asarray(weights_imag, dtype=np.float64)
    rows, cols = _index(rows, g.shape[0]), _index(cols, g.shape[0])
    phi_cols = phases_reference(g[cols], uv_wavelengths)  # (J, K)
    cos_j, sin_j = np.cos(phi_cols), np.sin(phi_cols)
    out = np.empty((rows.size, cols.size))
    for a, i in enumerate(rows):
        phi_i = phases_reference(g[i : i + 1], uv_wavelengths)[0]  # (K,)
        out[a] = np.sum(wr * np.cos(phi_i) * cos_j + wi * np.sin(phi_i) * sin_j, axis=1)
    return out


def w_tilde_equal_weights_reference(grid_radians, uv_wavelengths, weights, rows=None, cols=None) -> np.ndarray:
    """W-tilde for equal real/imag weights in the familiar difference form (PyAutoArray's).

    ``W_ij = sum_k w_k cos(2 pi ((x_i - x_j) u_k + (y_i - y_j) v_k))`` = ``sum_k w_k cos(phi_ik - phi_jk)``.

    grid_radians (M, 2) (y, x) radians; uv_wavelengths (K, 2); weights (K,). Returns (len(rows), len(cols)).
    """
    g = np.asarray(grid_radians, dtype=np.float64)
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    rows, cols = _index(rows, g.shape[0]), _index(cols, g.shape[0])
    out = np.empty((rows.size, cols.size))
    for a, i in enumerate(rows):
        dy = g[i, 0] - g[cols, 0]  # (J,)
        dx = g[i, 1] - g[cols, 1]
        out[a] = np.sum(w * np.cos(2.0 * np.pi * (dx[:, None] * uv[None, :, 0] + dy[:, None] * uv[None, :, 1])), axis=1)
    return out


def dirty_image_reference(grid_radians, uv_wavelengths, visibilities, weights_real, weights_imag) -> np.ndarray:
    """Dirty image / w_tilde_data (M,): ``d_i = sum_k [ wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik) ]``.

    grid_radians (M, 2) (y, x) radians; uv_wavelengths (K, 2); visibilities (K,) complex; weights (K,).
    """
    g = np.asarray(grid_radians, dtype=np.float64)
    v = np.asarray(visibilities, dtype=np.complex128)
    wr = np.asarray(weights_real, dtype=np.float64)
    wi = np.asarray(weights_imag, dtype=np.float64)
    out = np.empty(g.shape[0])
    for i in range(g.shape[0]):
        phi = phases_reference(g[i : i + 1], uv_wavelengths)[0]
        out[i] = np.sum(wr * v.real * np.cos(phi) - wi * v.imag * np.sin(phi))
    return out
