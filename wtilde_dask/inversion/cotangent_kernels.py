"""The reverse mode of ``F = T^T W T`` with respect to T's weights, compiled (Numba), on every core; and the
log evidence of a mapping with its derivatives from one pass (:func:`log_evidence_pieces`).

For a cotangent G (S, S) of F and the forward's ``A = W T`` (module doc of
:mod:`wtilde_dask.inversion.jax_curvature`)::

    dL/dwts[i, a] = sum_p A[i, p] (G + G^T)[p, cols[i, a]]

over the used source pixels p: nnz(T) S multiply-adds, each needing an element of G at a column that changes
from pixel to pixel. Done here batch by batch of the forward's A (``A[b]`` (M, bs), one contiguous block) with
``(G + G^T)`` re-laid as ``Gp[c, b bs + j] = (G + G^T)[used[b bs + j], c]`` (a batch's bs numbers for source pixel
c side by side: one cache line per gather), the image pixels split over a pool of threads (the compiled loop,
:func:`~wtilde_dask.inversion.compiled.weights_cotangent_range`, releases the GIL).

Shapes: A (n_batches, M, bs) float64; cols (M, n) int; G (S, S); result (M, n) float64.
"""

from __future__ import annotations

import threading

import numpy as np
from scipy.linalg import lapack

from wtilde_dask.inversion import compiled, curvature_kernels
from wtilde_dask.inversion.curvature_kernels import thread_count, thread_pool
from wtilde_dask.inversion.mapping import mapping_matrix_from_columns


def weights_cotangent(A: np.ndarray, used: np.ndarray, cols: np.ndarray, G: np.ndarray, *, symmetric: bool = False,
                      workers=None, out: np.ndarray | None = None) -> np.ndarray:
    """(M, n) ``dL/dwts[i, a] = sum_k A[k // bs, i, k % bs] (G + G^T)[used[k], cols[i, a]]`` (module doc).

    ``A`` (n_batches, M, bs): the batches of ``W T`` of
    :func:`~wtilde_dask.inversion.curvature_kernels.curvature_lattice` (``products=True``), batch b column j
    being source pixel ``used[b bs + j]``; ``used`` (n_used,) int; ``cols`` (M, n) int64; ``G`` (S, S) the
    cotangent of F (``symmetric``: G is symmetric, ``G + G^T = 2 G``). ``workers``: threads (None: every
    core). ``out``: an (M, n) float64 array to write into.
    """
    _, M, bs = A.shape
    used = np.asarray(used, dtype=np.int64)
    n_batches = -(-used.size // bs)
    if out is None:
        out = np.empty(cols.shape)
    if used.size == 0:
        out[...] = 0.0
        return out
    G = np.asarray(G, dtype=np.float64)
    columns = np.zeros(n_batches * bs, dtype=np.int64)
    columns[:used.size] = used  # the padding meets zero columns of A
    # Gp[c, k] = (G + G^T)[used[k], c] / scale: the bs numbers of one batch for source pixel c side by side
    Gp = np.take(G, columns, axis=1) if symmetric else np.take(G + G.T, columns, axis=1)
    scale = 2.0 if symmetric else 1.0
    kernel = compiled.weights_cotangent_range()
    n_threads = min(thread_count(workers), M)
    edges = np.linspace(0, M, n_threads + 1).astype(np.int64)
    if n_threads <= 1:
        kernel(A, Gp, cols, n_batches, scale, 0, M, out)
    else:
        list(thread_pool(n_threads).map(
            lambda t: kernel(A, Gp, cols, n_batches, scale, edges[t], edges[t + 1], out), range(n_threads)))
    return out


_SPARES: dict[tuple, list[np.ndarray]] = {}  # buffers between calls (a fresh 100 MB array costs its page faults)
_SPARE_LOCK = threading.Lock()


def _spare_buffer(shape) -> np.ndarray:
    """A float64 array of ``shape`` from the buffers given back (:func:`_give_back`), or a new one."""
    with _SPARE_LOCK:
        kept = _SPARES.get(tuple(shape))
        if kept:
            return kept.pop()
    return np.empty(shape)


def _give_back(a: np.ndarray) -> None:
    """Keep ``a`` for the next :func:`_spare_buffer` of its shape (at most two per shape, of the last two shapes:
    the items of a batch evaluated side by side each hold one)."""
    with _SPARE_LOCK:
        kept = _SPARES.setdefault(a.shape, [])
        kept.append(a)
        del kept[:-2]
        for shape in list(_SPARES)[:-2]:
            del _SPARES[shape]


def inverse_from_upper_factor(upper_factor, out=None, overwrite: bool = False) -> np.ndarray | None:
    """(S, S) ``A^-1`` of the symmetric positive-definite A from its upper Cholesky factor (Fortran order;
    LAPACK ``potri``, over the factor's memory with ``overwrite``), written into ``out`` if given; None where
    ``potri`` finds a zero on the diagonal."""
    upper, info = lapack.dpotri(upper_factor, lower=0, overwrite_c=int(overwrite))
    if info != 0:
        return None
    inverse = np.add(upper, upper.T, out=out)  # upper's strict lower triangle is zero
    inverse.flat[::upper.shape[0] + 1] -= np.diagonal(upper)
    return inverse


def _log_det_and_inverse(H, inverse: bool):
    """``(ln det H, H^-1 or None)`` of the symmetric (S, S) H by its Cholesky factor (a copy); NaN (and an
    all-NaN inverse) when H is not positive definite."""
    factor, info = lapack.dpotrf(np.array(H, dtype=np.float64, order="F"), lower=0, overwrite_a=1, clean=1)
    if info != 0:
        return np.nan, (np.full(H.shape, np.nan) if inverse else None)
    log_det = 2.0 * np.sum(np.log(np.diagonal(factor)))
    return log_det, (inverse_from_upper_factor(factor, overwrite=True) if inverse else None)


def log_evidence_pieces(cols, wts, box_indices, op, H, dirty_image, *, cotangents: bool = False,
                        log_det_h: bool = False, batch_size: int = 8, workers=None):
    """The log evidence's pieces for the (M, n) mapping ``cols`` / ``wts``, with ``cotangents`` its derivatives
    too, in one pass.

    With ``T[i, cols[i, a]] += wts[i, a]`` (M, S), ``F = T^T W T`` (:func:`curvature_kernels.curvature_lattice`),
    ``D = T^T d``, the (S, S) regularization H and ``s = (F + H)^-1 D`` (Cholesky, LAPACK)::

        log_evidence = -1/2 [chi2_data - 2 s.D + s.F.s + s.H.s + ln det(F + H) - ln det H + noise_normalization]

    Returns ``(pieces (5,) = (s.D, s.F.s, s.H.s, ln det(F + H), ln det H), s (S,))``; ``ln det H`` only with
    ``log_det_h`` (its Cholesky on one of the threads while the others start F), else 0. With ``cotangents``
    also ``d log_evidence / d wts`` (M, n) and ``G`` (S, S), ``G = d log_evidence / dH = -1/2 (s s^T +
    (F + H)^-1)`` (+ 1/2 H^-1 with ``log_det_h``; without it the derivative at fixed ln det H, and also
    d log_evidence / dF), by the envelope theorem (no derivative of s is needed), and ``d/d wts[i, a] =
    sum_p (W T)[i, p] (G_F + G_F^T)[p, cols[i, a]] + s[cols[i, a]] d[i]`` with ``G_F = -1/2 (s s^T +
    (F + H)^-1)`` (F keeps ``W T`` for it in a reused buffer; 0 where ``cols < 0``, a padding entry).
    Everything NaN when F + H (or, with ``log_det_h``, H) is not positive definite (as a failed Cholesky in
    JAX). ``box_indices`` (M, 2), ``op``: the lattice of :func:`curvature_kernels.lattice_operator`.
    """
    M, n = cols.shape
    S = H.shape[0]
    T = mapping_matrix_from_columns(cols, wts, S)
    bs = max(1, min(int(batch_size), S))
    H = np.asarray(H, dtype=np.float64)
    n_threads = thread_count(workers)
    # H's own factor on one thread while the others start on F's batches (the pool is FIFO); on one thread after F
    h_beside_f = thread_pool(n_threads).submit(_log_det_and_inverse, H, cotangents) if (
        log_det_h and n_threads > 1) else None
    A = _spare_buffer((-(-S // bs), M, bs)) if cotangents else None
    F = _spare_buffer((S, S))
    try:
        if cotangents:
            _, used, _ = curvature_kernels.curvature_lattice(T, box_indices, op, batch_size=bs, workers=workers,
                                                             products=True, out=F, products_out=A)
        else:
            curvature_kernels.curvature_lattice(T, box_indices, op, batch_size=bs, workers=workers, out=F)
        if h_beside_f is not None:
            log_det, h_inverse = h_beside_f.result()
        else:
            log_det, h_inverse = _log_det_and_inverse(H, cotangents) if log_det_h else (0.0, None)
        d = np.asarray(dirty_image, dtype=np.float64)
        D = np.asarray(T.T @ d).ravel()
        F += H  # F + H in F's own memory (F itself is not needed again: s.F.s = s.D - s.H.s below)
        factor, info = lapack.dpotrf(F.T, lower=0, overwrite_a=1, clean=1)  # symmetric: its C order is F order
        if info != 0 or not np.isfinite(log_det):
            nan = (np.full(5, np.nan), np.full(S, np.nan))
            return nan + ((np.full((M, n), np.nan), np.full((S, S), np.nan)) if cotangents else ())
        s, _ = lapack.dpotrs(factor, D, lower=0)
        s_d, s_h_s = s @ D, s @ (H @ s)
        pieces = np.array([s_d, s_d - s_h_s, s_h_s, 2.0 * np.sum(np.log(np.diagonal(factor))), log_det])
        if not cotangents:
            return pieces, s
        G = inverse_from_upper_factor(factor, overwrite=True)  # (F + H)^-1 (F + H's factor: no zero pivot)
        G += np.multiply.outer(s, s)
        G *= -0.5
        g_wts = weights_cotangent(A, used, np.asarray(cols, dtype=np.int64), G, symmetric=True, workers=workers)
        g_wts += np.where(cols >= 0, s[cols] * d[:, None], 0.0)  # cols < 0: padding entries
        if h_inverse is not None:
            h_inverse *= 0.5
            G += h_inverse  # d/dH of +1/2 ln det H
        return pieces, s, g_wts, G
    finally:
        _give_back(F)  # nothing returned is a view of F (G, s and the pieces are new arrays)
        if A is not None:
            _give_back(A)


__all__ = ["weights_cotangent", "inverse_from_upper_factor", "log_evidence_pieces"]
