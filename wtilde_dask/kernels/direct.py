"""W-tilde blocks for any grid as a matrix product of cos/sin feature blocks (jitted JAX, float64).

For row pixels I and column pixels J (docs/mathematics.md):

``W[I, J] = sum_k [ wr_k cos(phi_Ik) cos(phi_Jk) + wi_k sin(phi_Ik) sin(phi_Jk) ] = A_I A_J^T``

with the features ``A_I = [sqrt(wr) cos(phi_I), sqrt(wi) sin(phi_I)]`` (|I| x 2K) and
``phi_ik = 2 pi (x_i u_k + y_i v_k)`` (grid (y, x) in radians, uv in wavelengths).

The visibilities are processed in chunks of ``visibility_chunk`` (a ``lax.scan`` with the (B, B)
accumulator as carry), so memory is O(B * chunk + B^2) whatever K is. Rows/columns are padded to
``block_size`` and K to a multiple of the chunk (padding visibilities have zero weight), so every block
of a run has the same shapes and the kernel compiles once. Runs unchanged on GPU when JAX sees one.

Two engines: "jax" (features and products in one jitted XLA scan; the GPU path) and "blas" (features
by the same jitted JAX code, products by NumPy's BLAS: dgemm, and dsyrk for ``A @ A.T`` on diagonal
blocks; the CPU default because XLA's CPU float64 matmul measured ~0.6x OpenBLAS here).
cos/sin use :func:`sincos_turns` (polynomials after exact range reduction in turns), ~10x faster on CPU
than ``jnp.cos``/``jnp.sin``, which otherwise cost as much as the product itself.
"""

from __future__ import annotations

import math

import numpy as np

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

__all__ = [
    "w_tilde_block",
    "prepare_visibilities",
    "pad_grid",
    "w_tilde_block_padded",
    "w_tilde_block_symmetric_padded",
    "w_tilde_block_padded_blas",
    "features",
    "sincos_turns",
    "turns",
    "phases",
    "default_engine",
]

TWO_PI = 2.0 * np.pi

# Taylor coefficients of sin (theta^1 .. theta^17) and cos (theta^0 .. theta^18); on |theta| <= pi/4 the
# first omitted terms are < 1e-19, below float64 rounding.
_SIN = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(9))
_COS = tuple((-1) ** n / math.factorial(2 * n) for n in range(10))


def sincos_turns(t):
    """``(cos(2 pi t), sin(2 pi t))`` for an array of phases ``t`` in turns (JAX, float64).

    Exact quadrant reduction ``t = n/4 + f`` (|f| <= 1/8, the subtraction is exact) followed by degree-17/18
    polynomials: only multiply-adds and selects, which XLA fuses and vectorises. On CPU this is ~10x faster
    than ``jnp.cos`` + ``jnp.sin`` (libm calls per element), and more accurate than ``cos(2*pi*t)`` for
    large t because ``2*pi*t`` is never rounded as a whole. Max error ~2 ulp of 1.
    """
    n = jnp.round(4.0 * t)
    theta = TWO_PI * (t - 0.25 * n)
    z = theta * theta
    s = _SIN[-1]
    for c in _SIN[-2::-1]:
        s = s * z + c
    s = s * theta
    co = _COS[-1]
    for c in _COS[-2::-1]:
        co = co * z + c
    quadrant = n - 4.0 * jnp.floor(0.25 * n)  # n mod 4 in {0, 1, 2, 3}
    odd = (quadrant == 1.0) | (quadrant == 3.0)
    cos_q, sin_q = jnp.where(odd, s, co), jnp.where(odd, co, s)
    cos = jnp.where((quadrant == 1.0) | (quadrant == 2.0), -cos_q, cos_q)
    sin = jnp.where(quadrant >= 2.0, -sin_q, sin_q)
    return cos, sin


def turns(grid, uv):
    """(M, C) phases in turns ``x u + y v`` (``phi = 2 pi * turns``) for grid (M, 2) (y, x) radians, uv (C, 2)."""
    return grid[:, 1:2] * uv[None, :, 0] + grid[:, 0:1] * uv[None, :, 1]


def phases(grid, uv):
    """(M, C) ``phi = 2 pi (x u + y v)`` radians for grid (M, 2) (y, x) radians and uv (C, 2) wavelengths."""
    return TWO_PI * turns(grid, uv)


@jax.jit
def features(grid, uv, sqrt_wr, sqrt_wi):
    """The two halves of the features ``A = [sqrt(wr) cos(phi), sqrt(wi) sin(phi)]`` for one visibility chunk.

    Returns ``(sqrt(wr) cos(phi), sqrt(wi) sin(phi))``, each (M, C) (jitted). They are kept apart (two products
    instead of one on the concatenation) because XLA's CPU fusion of a concatenate was 4-8x slower.
    """
    cos, sin = sincos_turns(turns(grid, uv))
    return cos * sqrt_wr[None, :], sin * sqrt_wi[None, :]


def _dot_t(a, b):
    """``a @ b.T`` in full float64 precision."""
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)


@jax.jit
def w_tilde_block_padded(grid_rows, grid_cols, uv_chunks, sqrt_wr_chunks, sqrt_wi_chunks):
    """Low-level jitted block on padded arrays, all in XLA (the GPU path).

    grid_rows (Br, 2), grid_cols (Bc, 2) radians; uv_chunks (n, C, 2); sqrt_wr_chunks, sqrt_wi_chunks (n, C)
    (square roots of the weights, zero on padding). Returns (Br, Bc) float64 JAX array.
    """

    def step(acc, chunk):
        uv, swr, swi = chunk
        cos_r, sin_r = features(grid_rows, uv, swr, swi)
        cos_c, sin_c = features(grid_cols, uv, swr, swi)
        return acc + _dot_t(cos_r, cos_c) + _dot_t(sin_r, sin_c), None

    acc0 = jnp.zeros((grid_rows.shape[0], grid_cols.shape[0]), dtype=jnp.float64)
    out, _ = lax.scan(step, acc0, (uv_chunks, sqrt_wr_chunks, sqrt_wi_chunks))
    return out


@jax.jit
def w_tilde_block_symmetric_padded(grid, uv_chunks, sqrt_wr_chunks, sqrt_wi_chunks):
    """Low-level jitted diagonal block ``A A^T`` (features computed once), exactly symmetrised. (B, B)."""

    def step(acc, chunk):
        uv, swr, swi = chunk
        cos, sin = features(grid, uv, swr, swi)
        return acc + _dot_t(cos, cos) + _dot_t(sin, sin), None

    acc0 = jnp.zeros((grid.shape[0], grid.shape[0]), dtype=jnp.float64)
    out, _ = lax.scan(step, acc0, (uv_chunks, sqrt_wr_chunks, sqrt_wi_chunks))
    return 0.5 * (out + out.T)


def w_tilde_block_padded_blas(grid_rows, grid_cols, uv_chunks, sqrt_wr_chunks, sqrt_wi_chunks, symmetric=False):
    """The CPU path: features from the jitted JAX :func:`features`, products by NumPy's BLAS.

    Same inputs as :func:`w_tilde_block_padded` (``grid_cols`` ignored when ``symmetric``). Per chunk,
    ``A_I @ A_J.T`` (dgemm) or, on the diagonal, ``A @ A.T`` (NumPy calls dsyrk: half the flops, exactly
    symmetric) into a (Br, Bc) buffer added to the float64 accumulator. The features of the next chunk are
    dispatched to XLA (asynchronously) before the current product runs. Returns (Br, Bc) NumPy array.
    """
    n = uv_chunks.shape[0]
    br = grid_rows.shape[0]
    bc = br if symmetric else grid_cols.shape[0]
    acc = np.zeros((br, bc), dtype=np.float64)
    tmp = np.empty_like(acc)

    def launch(i):
        rows = features(grid_rows, uv_chunks[i], sqrt_wr_chunks[i], sqrt_wi_chunks[i])
        cols = None if symmetric else features(grid_cols, uv_chunks[i], sqrt_wr_chunks[i], sqrt_wi_chunks[i])
        return rows, cols

    pending = launch(0)
    for i in range(n):
        rows, cols = pending
        if i + 1 < n:
            pending = launch(i + 1)
        for part in range(2):  # cos half, then sin half of the features
            a = np.asarray(rows[part])
            np.matmul(a, (a if symmetric else np.asarray(cols[part])).T, out=tmp)
            acc += tmp
    return acc


def default_engine() -> str:
    """"blas" when JAX runs on CPU (XLA's CPU float64 matmul is slower than OpenBLAS), else "jax"."""
    return "blas" if jax.default_backend() == "cpu" else "jax"


def _check_grid(name, grid) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != 2:
        raise ValueError(f"{name} has shape {g.shape}, expected (M, 2) (y, x) radians")
    return g


def prepare_visibilities(uv_wavelengths, weights_real, weights_imag, visibility_chunk=2048):
    """Chunked, zero-weight-padded JAX arrays for the padded kernels.

    Returns ``(uv_chunks (n, C, 2), sqrt_wr (n, C), sqrt_wi (n, C))`` with ``C = min(visibility_chunk, K)``
    and ``n = ceil(K / C)``.
    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    wr = np.asarray(weights_real, dtype=np.float64).reshape(-1)
    wi = np.asarray(weights_imag, dtype=np.float64).reshape(-1)
    k = uv.shape[0] if uv.ndim == 2 else -1
    if uv.ndim != 2 or uv.shape[1] != 2 or k < 1:
        raise ValueError(f"uv_wavelengths has shape {uv.shape}, expected (K, 2) with K >= 1")
    for name, w in (("weights_real", wr), ("weights_imag", wi)):
        if w.shape != (k,):
            raise ValueError(f"{name} has shape {w.shape}, expected ({k},) to match uv_wavelengths")
        if (w < 0).any():
            i = int(np.argmax(w < 0))
            raise ValueError(f"{name}[{i}] = {float(w[i])!r} must be >= 0")
    chunk = int(min(max(int(visibility_chunk), 1), k))
    n = -(-k // chunk)
    pad = n * chunk - k
    uv_p = np.concatenate([uv, np.zeros((pad, 2))]) if pad else uv
    swr = np.concatenate([np.sqrt(wr), np.zeros(pad)]) if pad else np.sqrt(wr)
    swi = np.concatenate([np.sqrt(wi), np.zeros(pad)]) if pad else np.sqrt(wi)
    return (
        jnp.asarray(uv_p.reshape(n, chunk, 2)),
        jnp.asarray(swr.reshape(n, chunk)),
        jnp.asarray(swi.reshape(n, chunk)),
    )


def pad_grid(grid, size: int):
    """Pad an (m, 2) grid with zero rows to (size, 2) (padding rows are cropped from the result)."""
    g = np.asarray(grid, dtype=np.float64)
    if size < g.shape[0]:
        raise ValueError(f"block_size = {size} is smaller than the {g.shape[0]} pixels of the block")
    if size == g.shape[0]:
        return jnp.asarray(g)
    return jnp.asarray(np.concatenate([g, np.zeros((size - g.shape[0], 2))]))


def w_tilde_block(
    grid_rows,
    grid_cols,
    uv_wavelengths,
    weights_real,
    weights_imag,
    *,
    block_size=None,
    visibility_chunk=2048,
    symmetric=False,
    engine=None,
) -> np.ndarray:
    """One W-tilde block ``W[I, J]`` (float64 NumPy array of shape (len(grid_rows), len(grid_cols))).

    ``W_ij = sum_k [ wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk) ]``,
    ``phi_ik = 2 pi (x_i u_k + y_i v_k)``.

    Parameters
    ----------
    grid_rows, grid_cols : (|I|, 2), (|J|, 2) float64
        (y, x) of the row / column pixels in radians (``grid_cols`` may be None when ``symmetric``).
    uv_wavelengths : (K, 2) float64
        (u, v) in wavelengths.
    weights_real, weights_imag : (K,) float64
        ``1/sigma_re**2`` and ``1/sigma_im**2`` (>= 0).
    block_size : int, optional
        Pad rows and columns to this many pixels (the ragged edge of a block plan), so every block of a
        run has one shape and compiles once. Default: no padding.
    visibility_chunk : int
        Visibilities per accumulation step (memory ~ 16 * block_size * chunk bytes per feature block).
    symmetric : bool
        Diagonal block (grid_rows is grid_cols): features computed once, ``A A^T``, exactly symmetric.
    engine : {"blas", "jax"}, optional
        "jax": everything in one jitted XLA program (GPU); "blas": JAX features + NumPy BLAS products (CPU).
        Default :func:`default_engine` (blas on CPU, jax elsewhere). Both agree to ~1e-15 relative.
    """
    rows = _check_grid("grid_rows", grid_rows)
    cols = rows if symmetric else _check_grid("grid_cols", grid_cols)
    if symmetric and grid_cols is not None and grid_cols is not grid_rows:
        other = _check_grid("grid_cols", grid_cols)
        if other.shape != rows.shape or not np.array_equal(other, rows):
            raise ValueError("symmetric=True needs grid_cols equal to grid_rows (a diagonal block)")
    engine = default_engine() if engine is None else engine
    if engine not in ("blas", "jax"):
        raise ValueError(f"engine = {engine!r} must be 'blas' or 'jax'")
    uv_c, swr_c, swi_c = prepare_visibilities(uv_wavelengths, weights_real, weights_imag, visibility_chunk)
    m, n = rows.shape[0], cols.shape[0]
    size_r = m if block_size is None else int(block_size)
    size_c = size_r if symmetric else (n if block_size is None else int(block_size))
    rows_p = pad_grid(rows, size_r)
    cols_p = rows_p if symmetric else pad_grid(cols, size_c)
    if engine == "blas":
        out = w_tilde_block_padded_blas(rows_p, cols_p, uv_c, swr_c, swi_c, symmetric=symmetric)
    elif symmetric:
        out = w_tilde_block_symmetric_padded(rows_p, uv_c, swr_c, swi_c)
    else:
        out = w_tilde_block_padded(rows_p, cols_p, uv_c, swr_c, swi_c)
    return np.asarray(out)[:m, :n]
