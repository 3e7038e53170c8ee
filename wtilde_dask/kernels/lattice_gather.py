"""Reading the lattice kernels back: a W-tilde block by gather, and PyAutoArray's kernel layout.

The kernels (``kernel`` of the mean weights ``(wr + wi)/2``, ``kernel_hankel`` of the half difference
``(wr - wi)/2``, each (2ny-1, 2nx-1); definitions and the NUFFTs that make them: :mod:`wtilde_dask.kernels.lattice`)
give every entry of W-tilde from box-relative pixel indices (row, column inside the mask's bounding box):

    W_ij = kernel[r_i - r_j + ny - 1, c_i - c_j + nx - 1] + kernel_hankel[r_i + r_j, c_i + c_j]

:func:`w_tilde_block_lattice` gathers one block (jitted JAX, fixed padded shapes, the same interface as
:func:`wtilde_dask.kernels.direct.w_tilde_block`); it runs in every lattice block task on the workers.
PyAutoArray layout (``nufft_precision_operator``, shape (2ny, 2nx)): ``P[dr % 2ny, dc % 2nx] = kernel(dr, dc)``
(Python negative indices for negative offsets), row ``ny`` and column ``nx`` zero; see :func:`to_pyautoarray` /
:func:`from_pyautoarray`. Both are re-exported by :mod:`wtilde_dask.kernels.lattice`.
"""

from __future__ import annotations

import warnings

import numpy as np

from wtilde_dask.errors import LatticeError
from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

__all__ = ["w_tilde_block_lattice", "w_tilde_lattice", "to_pyautoarray", "from_pyautoarray"]


# ---------------------------------------------------------------------------------------------- gather
@jax.jit
def _gather(kernel, rows, cols):
    nyk, nxk = kernel.shape
    dr = rows[:, None, 0] - cols[None, :, 0] + (nyk - 1) // 2
    dc = rows[:, None, 1] - cols[None, :, 1] + (nxk - 1) // 2
    return kernel.reshape(-1)[dr * nxk + dc]


@jax.jit
def _gather_hankel(kernel, hankel, rows, cols):
    nxk = kernel.shape[1]
    sr = rows[:, None, 0] + cols[None, :, 0]
    sc = rows[:, None, 1] + cols[None, :, 1]
    return _gather(kernel, rows, cols) + hankel.reshape(-1)[sr * nxk + sc]


def _check_indices(name, idx, shape_kernel) -> np.ndarray:
    a = np.asarray(idx)
    if a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "iu":
        raise LatticeError(f"{name} has shape {a.shape} dtype {a.dtype}, expected (n, 2) integer box-relative (row, col)")
    ny, nx = (shape_kernel[0] + 1) // 2, (shape_kernel[1] + 1) // 2
    if a.size and ((a.min(axis=0) < 0).any() or a[:, 0].max() >= ny or a[:, 1].max() >= nx):
        raise LatticeError(f"{name} has (row, col) outside the box (ny, nx) = ({ny}, {nx}) of the kernel")
    return a.astype(np.int64)


def _pad_indices(a: np.ndarray, size: int):
    if size < a.shape[0]:
        raise LatticeError(f"block_size = {size} is smaller than the {a.shape[0]} pixels of the block")
    if size == a.shape[0]:
        return jnp.asarray(a)
    return jnp.asarray(np.concatenate([a, np.zeros((size - a.shape[0], 2), dtype=np.int64)]))


def w_tilde_block_lattice(kernel, kernel_hankel, indices_rows, indices_cols, *, block_size=None) -> np.ndarray:
    """One W-tilde block ``W[I, J]`` gathered from the lattice kernels (float64, (len(rows), len(cols))).

    ``W[a, b] = kernel[r_a - r_b + ny-1, c_a - c_b + nx-1] + kernel_hankel[r_a + r_b, c_a + c_b]``

    (the Hankel term only when ``kernel_hankel`` is not None). Definitions: :mod:`wtilde_dask.kernels.lattice` /
    :func:`~wtilde_dask.kernels.lattice.lattice_kernels` (kernel of ``(wr+wi)/2``, kernel_hankel of ``(wr-wi)/2``).

    Parameters
    ----------
    kernel : (2ny-1, 2nx-1) float64 (NumPy or JAX).
    kernel_hankel : (2ny-1, 2nx-1) float64 or None.
    indices_rows, indices_cols : (|I|, 2), (|J|, 2) int, box-relative (row, col) of the row / column pixels.
    block_size : pad rows and columns to this many pixels (fixed shapes: one jit compile per run); the
        result is cropped back. Default: no padding.
    """
    shape_k = tuple(np.shape(kernel))
    if len(shape_k) != 2 or shape_k[0] % 2 == 0 or shape_k[1] % 2 == 0:
        raise LatticeError(f"kernel has shape {shape_k}, expected (2ny-1, 2nx-1) (odd sizes)")
    if kernel_hankel is not None and tuple(np.shape(kernel_hankel)) != shape_k:
        raise LatticeError(f"kernel_hankel has shape {np.shape(kernel_hankel)}, expected {shape_k} like kernel")
    rows = _check_indices("indices_rows", indices_rows, shape_k)
    cols = _check_indices("indices_cols", indices_cols, shape_k)
    m, n = rows.shape[0], cols.shape[0]
    size_r = m if block_size is None else int(block_size)
    size_c = n if block_size is None else int(block_size)
    jr, jc = _pad_indices(rows, size_r), _pad_indices(cols, size_c)
    k = jnp.asarray(kernel, dtype=jnp.float64)
    if kernel_hankel is None:
        out = _gather(k, jr, jc)
    else:
        out = _gather_hankel(k, jnp.asarray(kernel_hankel, dtype=jnp.float64), jr, jc)
    return np.asarray(out)[:m, :n]


def w_tilde_lattice(kernels, rows=None, cols=None) -> np.ndarray:
    """Dense ``W[rows][:, cols]`` (default: all M x M) from a :class:`~wtilde_dask.kernels.lattice.LatticeKernels`
    (:func:`~wtilde_dask.kernels.lattice.lattice_kernels`; small grids)."""
    idx = kernels.box_indices
    ir = idx if rows is None else idx[np.asarray(rows)]
    ic = idx if cols is None else idx[np.asarray(cols)]
    return w_tilde_block_lattice(kernels.kernel, kernels.kernel_hankel, ir, ic)


# ---------------------------------------------------------------------------------------------- PyAutoArray
def to_pyautoarray(kernel, kernel_hankel=None) -> np.ndarray:
    """PyAutoArray's ``nufft_precision_operator`` (2ny, 2nx) from the offset kernel (2ny-1, 2nx-1).

    Layout (autoarray ``nufft_precision_operator_from``): ``P[dr % (2ny), dc % (2nx)] = kernel(dr, dc)``,
    i.e. ``P[dr, dc]`` with Python negative indices for negative offsets, where ``dr`` is the row offset
    and ``dc`` the column offset (PyAutoArray's ``P[y_diff, x_diff]``, y_diff = rows down); row ``ny`` and
    column ``nx`` are unused and zero. PyAutoArray assumes equal real/imag noise with
    ``w = 1/noise_map.real**2``; our ``kernel`` is of ``(wr + wi)/2``, identical when the noise is equal.
    With a ``kernel_hankel`` (unequal noise) PyAutoArray cannot represent the exact W-tilde: the export is
    the offset part only and a warning says so.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise LatticeError(f"kernel has shape {k.shape}, expected (2ny-1, 2nx-1) (odd sizes)")
    if kernel_hankel is not None and np.any(np.asarray(kernel_hankel) != 0):
        warnings.warn(
            "unequal real/imag noise: PyAutoArray's nufft_precision_operator holds only the offset kernel of "
            "(wr + wi)/2; the index-sum (Hankel) part of the exact W-tilde is dropped in the export",
            stacklevel=2,
        )
    ny, nx = (k.shape[0] + 1) // 2, (k.shape[1] + 1) // 2
    out = np.zeros((2 * ny, 2 * nx), dtype=np.float64)
    dr = np.arange(-(ny - 1), ny) % (2 * ny)
    dc = np.arange(-(nx - 1), nx) % (2 * nx)
    out[np.ix_(dr, dc)] = k
    return out


def from_pyautoarray(nufft_precision_operator) -> np.ndarray:
    """Offset kernel (2ny-1, 2nx-1) from PyAutoArray's (2ny, 2nx) ``nufft_precision_operator`` (inverse of
    :func:`to_pyautoarray`): ``kernel[dr + ny-1, dc + nx-1] = P[dr % 2ny, dc % 2nx]``."""
    p = np.asarray(nufft_precision_operator, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] % 2 or p.shape[1] % 2:
        raise LatticeError(f"nufft_precision_operator has shape {p.shape}, expected (2ny, 2nx) (even sizes)")
    ny, nx = p.shape[0] // 2, p.shape[1] // 2
    dr = np.arange(-(ny - 1), ny) % (2 * ny)
    dc = np.arange(-(nx - 1), nx) % (2 * nx)
    return np.ascontiguousarray(p[np.ix_(dr, dc)])
