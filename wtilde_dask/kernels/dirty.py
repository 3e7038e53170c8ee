"""The dirty image (PyAutoArray's ``w_tilde_data``), chunked over visibilities (jitted JAX, float64).

``d_i = sum_k [ wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik) ]``,
``phi_ik = 2 pi (x_i u_k + y_i v_k)`` (grid (y, x) radians, uv wavelengths), ``wr = 1/sigma_re**2``,
``wi = 1/sigma_im**2``. It is the data vector of the linear inversion: ``D = T^T d``.
"""

from __future__ import annotations

import numpy as np

from wtilde_dask.kernels.direct import pad_grid, sincos_turns, turns

import jax  # noqa: E402  (x64 enabled by wtilde_dask.kernels)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

__all__ = ["dirty_image", "dirty_image_padded"]


@jax.jit
def dirty_image_padded(grid, uv_chunks, wre_chunks, wim_chunks):
    """Low-level jitted dirty image on padded arrays.

    grid (P, 2) radians; uv_chunks (n, C, 2); wre_chunks = wr*Re(V), wim_chunks = wi*Im(V), both (n, C)
    (zero on padding). Returns (P,).
    """

    def step(acc, chunk):
        uv, a, b = chunk
        cos, sin = sincos_turns(turns(grid, uv))
        hi = lax.Precision.HIGHEST
        return acc + jnp.dot(cos, a, precision=hi) - jnp.dot(sin, b, precision=hi), None

    out, _ = lax.scan(step, jnp.zeros(grid.shape[0], dtype=jnp.float64), (uv_chunks, wre_chunks, wim_chunks))
    return out


def dirty_image(
    grid_radians,
    uv_wavelengths,
    visibilities,
    weights_real,
    weights_imag,
    *,
    visibility_chunk=2048,
    pixel_chunk=4096,
) -> np.ndarray:
    """Dirty image (M,) float64: ``d_i = sum_k [ wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik) ]``.

    Parameters
    ----------
    grid_radians : (M, 2) (y, x) radians
    uv_wavelengths : (K, 2) wavelengths
    visibilities : (K,) complex
    weights_real, weights_imag : (K,) ``1/sigma_re**2``, ``1/sigma_im**2``
    visibility_chunk, pixel_chunk : work sizes (memory ~ 8 * pixel_chunk * visibility_chunk bytes);
        pixels are processed in padded chunks of a fixed shape (one compilation).
    """
    g = np.asarray(grid_radians, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != 2 or g.shape[0] < 1:
        raise ValueError(f"grid_radians has shape {g.shape}, expected (M, 2) (y, x) radians with M >= 1")
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] < 1:
        raise ValueError(f"uv_wavelengths has shape {uv.shape}, expected (K, 2) with K >= 1")
    k = uv.shape[0]
    v = np.asarray(visibilities).reshape(-1)
    wr = np.asarray(weights_real, dtype=np.float64).reshape(-1)
    wi = np.asarray(weights_imag, dtype=np.float64).reshape(-1)
    for name, arr in (("visibilities", v), ("weights_real", wr), ("weights_imag", wi)):
        if arr.shape != (k,):
            raise ValueError(f"{name} has shape {arr.shape}, expected ({k},) to match uv_wavelengths")
    chunk = int(min(max(int(visibility_chunk), 1), k))
    n = -(-k // chunk)
    pad = n * chunk - k

    def chunked(a, width=()):
        a = np.concatenate([a, np.zeros((pad, *width))]) if pad else a
        return jnp.asarray(a.reshape(n, chunk, *width))

    uv_c = chunked(uv, (2,))
    a_c = chunked(wr * v.real.astype(np.float64))
    b_c = chunked(wi * v.imag.astype(np.float64))
    m = g.shape[0]
    p = int(min(max(int(pixel_chunk), 1), m))
    out = np.empty(m)
    for start in range(0, m, p):
        part = g[start : start + p]
        out[start : start + part.shape[0]] = np.asarray(dirty_image_padded(pad_grid(part, p), uv_c, a_c, b_c))[: part.shape[0]]
    return out
