"""Mapping matrices T (M image pixels x S source pixels), sparse.

``T[i, j]`` is the weight with which source pixel ``j`` contributes to image pixel ``i`` (a few
non-zeros per row: 4 for bilinear rectangular interpolation, 3 for Delaunay barycentric
interpolation). The inversion accepts:

* any ``scipy.sparse`` matrix (or a dense 2-D array), shape (M, S);
* PyAutoArray's padded triplets: ``pix_indexes_for_sub_slim_index`` (M, P) int, padded with -1,
  ``pix_sizes_for_sub_slim_index`` (M,) int (how many entries of the row are used), and
  ``pix_weights_for_sub_slim_index`` (M, P) float.

Everything is converted once to a ``scipy.sparse.csr_matrix`` of float64 (:func:`as_mapping_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from wtilde_dask.errors import MappingError  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class MappingTriplets:
    """PyAutoArray's padded mapper arrays (one row per image pixel, no sub-gridding)."""

    pix_indexes_for_sub_slim_index: np.ndarray  # (M, P) int, -1 = unused
    pix_sizes_for_sub_slim_index: np.ndarray  # (M,) int
    pix_weights_for_sub_slim_index: np.ndarray  # (M, P) float
    n_source_pixels: int


def mapping_matrix_from_triplets(
    pix_indexes_for_sub_slim_index,
    pix_sizes_for_sub_slim_index,
    pix_weights_for_sub_slim_index,
    n_source_pixels: int,
) -> sp.csr_matrix:
    """(M, S) CSR mapping matrix from PyAutoArray's padded triplets.

    Row ``i`` holds ``pix_weights[i, p]`` at column ``pix_indexes[i, p]`` for ``p < pix_sizes[i]``
    (duplicates are summed, as PyAutoArray's ``mapping_matrix_from`` does).
    """
    idx = np.asarray(pix_indexes_for_sub_slim_index)
    sizes = np.asarray(pix_sizes_for_sub_slim_index)
    wts = np.asarray(pix_weights_for_sub_slim_index, dtype=np.float64)
    if idx.ndim != 2 or wts.shape != idx.shape:
        raise MappingError(
            f"pix_indexes_for_sub_slim_index / pix_weights_for_sub_slim_index: shapes {idx.shape} and "
            f"{wts.shape} must be equal and 2-D (M, P)"
        )
    if sizes.shape != (idx.shape[0],):
        raise MappingError(f"pix_sizes_for_sub_slim_index: shape {sizes.shape}, expected ({idx.shape[0]},)")
    n_source_pixels = int(n_source_pixels)
    used = np.arange(idx.shape[1])[None, :] < sizes[:, None]
    if np.any(sizes < 0) or np.any(sizes > idx.shape[1]):
        raise MappingError(f"pix_sizes_for_sub_slim_index: values must lie in [0, {idx.shape[1]}]")
    cols = idx[used]
    if cols.size and (cols.min() < 0 or cols.max() >= n_source_pixels):
        bad = cols[(cols < 0) | (cols >= n_source_pixels)][0]
        raise MappingError(
            f"pix_indexes_for_sub_slim_index: index {bad} outside [0, {n_source_pixels}) within pix_sizes"
        )
    rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)[used]
    T = sp.coo_matrix((wts[used], (rows, cols)), shape=(idx.shape[0], n_source_pixels)).tocsr()
    T.sum_duplicates()
    return T


def mapping_matrix_from_columns(cols, wts, n_source_pixels: int) -> sp.csr_matrix:
    """(M, S) CSR ``T[i, cols[i, a]] += wts[i, a]`` from the likelihood's (M, n) per-row columns and weights
    (every entry kept, repeated columns and zero weights included; a negative column marks a padding entry of
    zero weight, stored as a zero in column 0; no checks: the likelihood's own arrays)."""
    M, n = cols.shape
    cols = np.asarray(cols).astype(np.int64)
    wts = np.asarray(wts, dtype=np.float64)
    if cols.size and cols.min() < 0:
        wts = np.where(cols >= 0, wts, 0.0)
        cols = np.maximum(cols, 0)
    return sp.csr_matrix((wts.ravel(), cols.ravel(), np.arange(0, M * n + 1, n)), shape=(M, int(n_source_pixels)))


def triplets_from_mapping_matrix(mapping_matrix) -> MappingTriplets:
    """PyAutoArray's padded triplets (-1 padded) from a mapping matrix (inverse of the above)."""
    T = as_mapping_matrix(mapping_matrix)
    counts = np.diff(T.indptr)
    P = max(int(counts.max(initial=0)), 1)
    M = T.shape[0]
    idx = -np.ones((M, P), dtype=np.int64)
    wts = np.zeros((M, P), dtype=np.float64)
    pos = np.arange(T.nnz) - np.repeat(T.indptr[:-1], counts)
    rows = np.repeat(np.arange(M), counts)
    idx[rows, pos] = T.indices
    wts[rows, pos] = T.data
    return MappingTriplets(idx, counts.astype(np.int64), wts, T.shape[1])


def as_mapping_matrix(mapping_matrix, n_pixels: int | None = None) -> sp.csr_matrix:
    """Coerce ``mapping_matrix`` to a float64 CSR (M, S) matrix.

    Accepts a scipy.sparse matrix/array, a dense 2-D array, a :class:`MappingTriplets`, or a tuple
    ``(pix_indexes, pix_sizes, pix_weights, n_source_pixels)``. ``n_pixels`` (M), when given, is checked.
    """
    if isinstance(mapping_matrix, MappingTriplets):
        T = mapping_matrix_from_triplets(
            mapping_matrix.pix_indexes_for_sub_slim_index,
            mapping_matrix.pix_sizes_for_sub_slim_index,
            mapping_matrix.pix_weights_for_sub_slim_index,
            mapping_matrix.n_source_pixels,
        )
    elif isinstance(mapping_matrix, tuple) and len(mapping_matrix) == 4:
        T = mapping_matrix_from_triplets(*mapping_matrix)
    elif sp.issparse(mapping_matrix):
        T = sp.csr_matrix(mapping_matrix, dtype=np.float64)
    else:
        arr = np.asarray(mapping_matrix, dtype=np.float64)
        if arr.ndim != 2:
            raise MappingError(f"mapping_matrix: expected a 2-D (M, S) matrix, got shape {arr.shape}")
        T = sp.csr_matrix(arr)
    if n_pixels is not None and T.shape[0] != int(n_pixels):
        raise MappingError(
            f"mapping_matrix: has {T.shape[0]} rows but the image grid has {int(n_pixels)} pixels (M)"
        )
    if not np.all(np.isfinite(T.data)):
        raise MappingError("mapping_matrix: contains non-finite weights")
    T.sort_indices()
    return T


def coo_triplets(mapping_matrix, row_index=None):
    """COO (rows, cols, vals) of T; ``row_index`` (M,) maps slim rows to other indices (e.g. a box)."""
    T = as_mapping_matrix(mapping_matrix).tocoo()
    rows = T.row if row_index is None else np.asarray(row_index)[T.row]
    return rows.astype(np.int64), T.col.astype(np.int64), T.data.astype(np.float64)
