"""Pure array functions for the curvature matrix ``F = T^T W T`` and data vector ``D = T^T d``.

No Dask, no files: the Dask paths in :mod:`wtilde_dask.inversion.curvature` only move blocks and
partial sums between these functions.

Shapes: T (M, S) scipy.sparse CSR mapping matrix, W (M, M) W-tilde, d (M,) dirty image, F (S, S).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.sparse as sp

from wtilde_dask.cluster import machine_cores
from wtilde_dask.inversion import compiled

try:  # ducc0 is what B's lattice kernels use too; scipy.fft is the fallback
    import ducc0.fft as _ducc_fft
except ImportError:  # pragma: no cover
    _ducc_fft = None


# ----------------------------------------------------------------------------------------------
# General W (dense blocks)
# ----------------------------------------------------------------------------------------------
def compact_columns(T_rows: sp.csr_matrix) -> tuple[np.ndarray, sp.csr_matrix]:
    """(used source columns (n,), T restricted to them (rows, n))."""
    cols = np.unique(T_rows.indices)
    return cols, T_rows[:, cols]


def curvature_block(T_rows_i: sp.csr_matrix, w_block: np.ndarray, T_rows_j: sp.csr_matrix):
    """Contribution of one W block: ``X = T_I^T W_IJ T_J`` on the source columns the rows touch.

    T_rows_i (|I|, S), w_block (|I|, |J|), T_rows_j (|J|, S). Returns ``(cols_i, cols_j, X)`` with
    X (len(cols_i), len(cols_j)) so that ``F[ix_(cols_i, cols_j)] += X`` (compact: a block's rows
    touch few source pixels, so partial sums stay small when they travel between workers).
    """
    cols_i, Ti = compact_columns(sp.csr_matrix(T_rows_i))
    cols_j, Tj = compact_columns(sp.csr_matrix(T_rows_j))
    if len(cols_i) == 0 or len(cols_j) == 0:
        return cols_i, cols_j, np.zeros((len(cols_i), len(cols_j)))
    w = np.ascontiguousarray(w_block)
    # sparse @ C-ordered dense only (scipy copies transposed dense operands; W is the big one)
    Q = np.asarray(Ti.T.tocsr() @ w)  # (ni, |J|) = T_I^T W_IJ
    X = np.asarray(Tj.T.tocsr() @ np.ascontiguousarray(Q.T)).T  # (ni, nj) = (T_J^T Q^T)^T
    return cols_i, cols_j, np.ascontiguousarray(X)


def add_block_contribution(F: np.ndarray, part, diagonal: bool) -> np.ndarray:
    """In place: ``F += X`` at (cols_i, cols_j), plus ``X^T`` at (cols_j, cols_i) off the diagonal."""
    cols_i, cols_j, X = part
    if X.size:
        F[np.ix_(cols_i, cols_j)] += X
        if not diagonal:
            F[np.ix_(cols_j, cols_i)] += X.T
    return F


def sum_block_contributions(n_source_pixels: int, parts, diagonals) -> np.ndarray:
    """(S, S) sum of compact block contributions (``diagonals[k]`` True for bi == bj blocks)."""
    F = np.zeros((int(n_source_pixels), int(n_source_pixels)))
    for part, diag in zip(parts, diagonals):
        add_block_contribution(F, part, bool(diag))
    return F


def w_block_apply(w_block: np.ndarray, x_i: np.ndarray, x_j: np.ndarray, diagonal: bool):
    """One block's share of ``y = W x``: ``(W_IJ x_J, W_IJ^T x_I)`` (second None on the diagonal)."""
    w = np.asarray(w_block, dtype=np.float64)
    return w @ x_j, (None if diagonal else w.T @ x_i)


def sum_arrays(*arrays) -> np.ndarray:
    """Elementwise sum (the inner node of a tree reduction)."""
    out = np.array(arrays[0], dtype=np.float64, copy=True)
    for a in arrays[1:]:
        out += a
    return out


def curvature_dense(T, w_tilde: np.ndarray) -> np.ndarray:
    """(S, S) ``F = T^T W T`` with the whole (M, M) W in memory."""
    T = sp.csr_matrix(T)
    TT = T.T.tocsr()
    Q = np.asarray(TT @ np.ascontiguousarray(w_tilde))  # (S, M) = T^T W
    F = np.asarray(TT @ np.ascontiguousarray(Q.T))  # (S, S) = T^T (T^T W)^T = T^T W^T T
    return 0.5 * (F + F.T)


def data_vector(T, dirty_image: np.ndarray) -> np.ndarray:
    """(S,) ``D = T^T d`` (d: the dirty image / w_tilde_data)."""
    return np.asarray(sp.csr_matrix(T).T @ np.asarray(dirty_image, dtype=np.float64)).ravel()


# ----------------------------------------------------------------------------------------------
# Lattice: W applied by FFT (block-Toeplitz plus Hankel), never formed
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatticeOperator:
    """The lattice W as spectra on a zero-padded FFT box (what :func:`lattice_apply` multiplies by).

    ``K_hat``: ``rfft2`` of the circular layout of the offset kernel on the ``fft_shape`` (Ny, Nx) box
    (offset d at index d mod N); ``H_hat``: ``rfft2`` of the index-sum kernel placed at indices s
    (None without a Hankel part); ``shape_box`` (ny, nx). Any N >= 2n - 1 is exact (no wrap-around
    for offsets |d| <= n-1 nor for index sums s <= 2n-2); ``fft_shape`` picks FFT-friendly sizes.
    """

    K_hat: np.ndarray
    H_hat: np.ndarray | None
    shape_box: tuple[int, int]
    fft_shape: tuple[int, int]


def _good_size(n: int, real: bool) -> int:
    if _ducc_fft is not None:
        return int(_ducc_fft.good_size(n, real))
    return int(scipy.fft.next_fast_len(n, real=real))


def lattice_operator(kernel_sum: np.ndarray, kernel_hankel: np.ndarray | None = None, fft_shape=None) -> LatticeOperator:
    """:class:`LatticeOperator` of ``W_ij = k[r_i-r_j + ny-1, c_i-c_j + nx-1] + h[r_i+r_j, c_i+c_j]``.

    ``kernel_sum`` (2ny-1, 2nx-1) offset kernel; ``kernel_hankel`` (2ny-1, 2nx-1) index-sum kernel or
    None (the definitions of :mod:`wtilde_dask.kernels.lattice`: no factor 1/2 left). ``fft_shape``
    default: the smallest FFT-friendly sizes >= (2ny-1, 2nx-1) (2ny, 2nx is PyAutoArray's choice).
    """
    k = np.asarray(kernel_sum, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 != 1 or k.shape[1] % 2 != 1:
        raise ValueError(f"kernel: expected an odd (2ny-1, 2nx-1) offset kernel, got shape {k.shape}")
    ny, nx = (k.shape[0] + 1) // 2, (k.shape[1] + 1) // 2
    if fft_shape is None:
        fft_shape = (_good_size(2 * ny - 1, False), _good_size(2 * nx - 1, True))
    Ny, Nx = (int(n) for n in fft_shape)
    if Ny < 2 * ny - 1 or Nx < 2 * nx - 1:
        raise ValueError(f"fft_shape: {fft_shape} is smaller than (2ny-1, 2nx-1) = {(2 * ny - 1, 2 * nx - 1)}")
    circ = np.zeros((Ny, Nx))
    circ[np.ix_(np.arange(-(ny - 1), ny) % Ny, np.arange(-(nx - 1), nx) % Nx)] = k
    K_hat = scipy.fft.rfft2(circ)
    H_hat = None
    if kernel_hankel is not None:
        h = np.asarray(kernel_hankel, dtype=np.float64)
        if h.shape != k.shape:
            raise ValueError(f"kernel_hankel: shape {h.shape} differs from kernel {k.shape}")
        hc = np.zeros((Ny, Nx))
        hc[: 2 * ny - 1, : 2 * nx - 1] = h
        H_hat = scipy.fft.rfft2(hc)
    return LatticeOperator(K_hat, H_hat, (ny, nx), (Ny, Nx))


def _workspace(nb: int, ny: int, fft_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's reused (zero-padded image, spectrum, inverse) buffers for ``nb`` images (fresh large
    buffers cost page faults on every call; one set per thread, so concurrent callers never share one)."""
    Ny, Nx = fft_shape
    key = (nb, ny, Ny, Nx)
    cache = _WORKSPACES.__dict__.setdefault("buffers", {})
    if key not in cache:
        cache.clear()  # one shape at a time per thread
        cache[key] = (np.zeros((nb, ny, Nx)), np.zeros((nb, Ny, Nx // 2 + 1), dtype=np.complex128),
                      np.empty((nb, ny, Nx)))
    return cache[key]


_WORKSPACES = threading.local()


def lattice_apply(images: np.ndarray, op: LatticeOperator, workers=None, out: np.ndarray | None = None) -> np.ndarray:
    """Apply W to a batch of (nb, ny, nx) box images by FFT on the zero-padded (Ny, Nx) box.

    ``out[p] = sum_q k[p - q] x[q] + sum_q h[p + q] x[q]``; the Toeplitz part is a circular
    convolution (no wrap-around since N >= 2n-1), the Hankel part a correlation
    ``irfft(conj(X) H_hat)`` (``conj(X)`` is the spectrum of the index-reversed image). Pruned: the
    real-to-complex transform runs along x on the ny non-zero rows only, the inverse along x on the
    ny output rows only. FFTs by ducc0 (the library behind JAX's CPU FFT; about 2x pocketfft's speed
    on the strided axis here) in this thread's reused buffers, scipy.fft when ducc0 is missing.
    ``workers``: threads (None: all). ``op.K_hat`` may be real (an even offset kernel). ``out``: an
    (nb, ny, nx) float64 array to write the result into (returned); default a new array.
    """
    images = np.asarray(images, dtype=np.float64)
    nb, ny, nx = images.shape
    Ny, Nx = op.fft_shape
    if out is None:
        out = np.empty((nb, ny, nx))
    if _ducc_fft is None:
        buf = np.zeros((nb, ny, Nx))
        buf[:, :, :nx] = images
        X = np.zeros((nb, Ny, Nx // 2 + 1), dtype=np.complex128)
        X[:, :ny, :] = scipy.fft.rfft(buf, axis=2, workers=workers)
        X = scipy.fft.fft(X, axis=1, workers=workers, overwrite_x=True)
        X = _kernel_product(X, op)
        X = scipy.fft.ifft(X, axis=1, workers=workers, overwrite_x=True)[:, :ny, :]
        out[...] = scipy.fft.irfft(X, n=Nx, axis=2, workers=workers)[:, :, :nx]
        return out
    nthreads = 0 if workers is None or workers < 0 else int(workers)
    buf, X, inverse = _workspace(nb, ny, op.fft_shape)
    buf[:, :, :nx] = images  # columns nx: stay zero
    X[:, ny:, :] = 0.0
    _ducc_fft.r2c(buf, axes=(2,), out=X[:, :ny, :], nthreads=nthreads)
    _ducc_fft.c2c(X, axes=(1,), out=X, nthreads=nthreads)
    X = _kernel_product(X, op)
    _ducc_fft.c2c(X, axes=(1,), forward=False, inorm=2, out=X, nthreads=nthreads)
    _ducc_fft.c2r(X[:, :ny, :], axes=(2,), lastsize=Nx, forward=False, inorm=2, out=inverse, nthreads=nthreads)
    out[...] = inverse[:, :, :nx]
    return out


def _kernel_product(X: np.ndarray, op: LatticeOperator, y_last: bool = False) -> np.ndarray:
    """``X K_hat + conj(X) H_hat`` (the Hankel term when ``op.H_hat`` is not None), in place in X; X (b, Ny, Nk),
    or (b, Nk, Ny) with ``y_last``."""
    K_hat, H_hat = (op.K_hat.T, None if op.H_hat is None else op.H_hat.T) if y_last else (op.K_hat, op.H_hat)
    if H_hat is None:
        X *= K_hat[None]
        return X
    hankel = np.conj(X)
    hankel *= H_hat[None]
    X *= K_hat[None]
    X += hankel
    return X


def thread_count(workers) -> int:
    """Threads for ``workers`` (None, 0 or negative: every core this process may use)."""
    return int(workers) if workers is not None and int(workers) > 0 else machine_cores()


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def thread_pool(n_threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``n_threads`` threads for :func:`curvature_lattice` (made once, reused)."""
    with _POOLS_LOCK:
        if n_threads not in _POOLS:
            _POOLS[n_threads] = ThreadPoolExecutor(n_threads, thread_name_prefix="wtilde-lattice")
        return _POOLS[n_threads]


def _column_workspace(bs: int, op: LatticeOperator):
    """This thread's reused buffers for ``bs`` columns: the (bs, ny, Nx) images of a batch's touched rows, compacted
    (zero except while a batch is scattered), their (bs, ny, Nx//2+1) row spectra, the (bs, Nx//2+1, Ny) spectrum
    along x with y on the fastest axis (zero except while a batch is transformed), the working spectrum (same
    layout), the (bs, Ny, Nx//2+1) inverse transforms along y (x on the fastest axis, for the ``c2r`` along x), the
    (ny, Nx, bs) result (the columns on the fastest axis, as the projection reads them), and the row slots ((ny,)
    int64, -1) and touched rows ((ny,) int64) of :func:`~wtilde_dask.inversion.compiled.batch_rows`."""
    ny, _ = op.shape_box
    Ny, Nx = op.fft_shape
    key = ("columns", bs, ny, Ny, Nx)
    cache = _WORKSPACES.__dict__.setdefault("buffers", {})
    if key not in cache:
        cache.clear()
        Nk = Nx // 2 + 1
        cache[key] = (np.zeros((bs, ny, Nx)), np.empty((bs, ny, Nk), dtype=np.complex128),
                      np.zeros((bs, Nk, Ny), dtype=np.complex128), np.empty((bs, Nk, Ny), dtype=np.complex128),
                      np.empty((bs, Ny, Nk), dtype=np.complex128), np.empty((ny, Nx, bs)),
                      np.full(ny, -1, dtype=np.int64), np.empty(ny, dtype=np.int64))
    return cache[key]


def curvature_lattice(T, box_indices: np.ndarray, op: LatticeOperator, *, batch_size: int = 8, workers=None,
                      products: bool = False, products_batches: int = 0, out=None, products_out=None):
    """(S, S) ``F = T^T W T`` on a lattice by FFT, never forming W; with ``products`` also ``A = W T``.

    T (M, S); ``box_indices`` (M, 2) int box-relative (row, col) of each image pixel; ``op`` from
    :func:`lattice_operator`. The used source columns (those some image pixel maps to; the others have zero
    rows and columns in F) go in batches of ``batch_size``, one batch per thread of a pool of ``workers``
    threads (None: every core), each batch on one core from start to end: scatter the batch's columns of T
    onto the rows of the row-padded (ny, Nx) box that they touch (compacted: ~12% of the rows for a batch of 8 at
    the ALMA preset), ``r2c`` along x on those rows only, placed at their rows of the (Nx//2+1, Ny) spectrum
    (y on the fastest axis: ducc0's transforms along y run ~15% faster there than on the middle axis),
    ``c2c`` along y (length Ny), the product with the spectra (:func:`_kernel_product`), the inverse ``c2c``
    written with x on the fastest axis (for the ``c2r``) and ``c2r`` on the ny output rows (ducc0, one thread per
    batch), then ``F[used[first:], batch] = T^T (W T)[:, batch]`` with rows of T^T that index the padded box
    directly (no gather of the image pixels), only the rows from the batch's own on, written with
    their mirror (F is symmetric). Scatter and projection are compiled loops that release the GIL
    (:mod:`~wtilde_dask.inversion.compiled`), so the threads run side by side.

    ``products``: also return ``(used (n_used,) int, A (max(n_batches, products_batches), M, batch_size))``, the
    batches of ``A = W T`` at the M image pixels (what the reverse-mode derivative of F reuses):
    ``A[b, i, j]`` = ``(W T)[i, used[b batch_size + j]]``, zero beyond n_used (each batch one contiguous block:
    a row gather of the batch's result, no transpose). ``out`` (S, S) / ``products_out`` (batches >=
    n_batches, M, batch_size) float64: arrays to write F / A into (returned), e.g. the output buffers of a JAX
    primitive.
    """
    if _ducc_fft is None:  # pragma: no cover - ducc0 is a dependency
        raise ImportError("curvature_lattice needs ducc0")
    T = sp.csr_matrix(T, dtype=np.float64, copy=True)
    T.sum_duplicates()
    T.eliminate_zeros()  # a column with only zero weights is not used
    M, S = T.shape
    ny, nx = op.shape_box
    Ny, Nx = op.fft_shape
    box = np.asarray(box_indices, dtype=np.int64)
    padded = box[:, 0] * Nx + box[:, 1]  # flat index on the (ny, Nx) row-padded box
    Tc = T.tocsc()
    # row s of T^T with each image pixel i at its padded box index: F[:, batch] = TT_box @ (W T)[box, batch]
    TT_box = sp.csr_matrix((Tc.data, padded[Tc.indices], Tc.indptr), shape=(S, ny * Nx))
    counts = np.diff(Tc.indptr)
    used = np.flatnonzero(counts > 0)
    TT_used = TT_box[used]  # rows in the order of the batches
    bs = max(1, int(batch_size))
    real_product = op.H_hat is None and not np.iscomplexobj(op.K_hat)  # a real spectrum: compiled product
    K_real = np.ascontiguousarray(op.K_hat.T, dtype=np.float64) if real_product else None  # (Nk, Ny): y last
    A = None
    if products:
        n_batches = -(-used.size // bs)
        A = np.zeros((max(n_batches, int(products_batches)), M, bs)) if products_out is None else products_out
        A[n_batches:] = 0.0

    rows_of, scatter = compiled.batch_rows(), compiled.scatter_columns()
    place, project, scale = compiled.place_row_spectra(), compiled.project_columns(), compiled.scale_spectra()
    F = np.empty((S, S)) if out is None else out
    plane = ny * Nx
    box_row, box_col = box[:, 0].copy(), box[:, 1].copy()

    def one_batch(first: int) -> None:
        batch = used[first:first + bs]
        b = batch.size
        pad, X_compact, X_rows, X, X_x, out, slot, rows = _column_workspace(bs, op)
        n = rows_of(Tc.indptr, Tc.indices, batch, box_row, slot, rows)  # the forward transforms skip empty rows
        touched = rows[:n]
        flat_pad = pad.reshape(-1)
        Nk = X.shape[1]
        images = flat_pad[:bs * n * Nx].reshape(bs, n, Nx)[:b]  # the touched rows, compacted
        row_spectra = X_compact.reshape(-1)[:bs * n * Nk].reshape(bs, n, Nk)
        scatter(Tc.indptr, Tc.indices, Tc.data, batch, box_row, box_col, slot, n * Nx, Nx, flat_pad, True)
        _ducc_fft.r2c(images, axes=(2,), out=row_spectra[:b], nthreads=1)
        scatter(Tc.indptr, Tc.indices, Tc.data, batch, box_row, box_col, slot, n * Nx, Nx, flat_pad, False)
        slot[touched] = -1
        place(row_spectra, touched, n, b, X_rows, False)
        _ducc_fft.c2c(X_rows[:b], axes=(2,), out=X[:b], nthreads=1)
        place(row_spectra, touched, n, b, X_rows, True)  # zero again, ready for the next batch
        if real_product:
            scale(X, K_real, b)
        else:
            _kernel_product(X[:b], op, y_last=True)
        _ducc_fft.c2c(X[:b], axes=(2,), forward=False, inorm=2, out=X_x[:b].transpose(0, 2, 1), nthreads=1)
        _ducc_fft.c2r(X_x[:b, :ny, :], axes=(2,), lastsize=Nx, forward=False, inorm=2,
                      out=out[:, :, :b].transpose(2, 0, 1), nthreads=1)
        columns = out.reshape(plane, bs)
        project(TT_used.indptr, TT_used.indices, TT_used.data, used, first, b, columns, F)
        if products:
            block = A[first // bs]
            np.take(columns, padded, axis=0, out=block, mode="clip")
            block[:, b:] = 0.0  # a last, partial batch: its unused columns hold an earlier batch's numbers

    firsts = range(0, used.size, bs)
    n_threads = min(thread_count(workers), len(firsts)) if used.size else 1
    if n_threads <= 1:
        for first in firsts:
            one_batch(first)
    else:  # one task per thread, each taking the next batch until none is left (no future per batch)
        shared = iter(firsts)  # one iterator for all threads: a range iterator's next is atomic under the GIL

        def drain(_) -> None:
            for first in shared:
                one_batch(first)

        list(thread_pool(n_threads).map(drain, range(n_threads)))
    unused = np.flatnonzero(counts == 0)  # every (used, used) entry was written by one batch
    F[unused, :] = 0.0
    F[:, unused] = 0.0
    return (F, used, A) if products else F


def lattice_apply_vector(x: np.ndarray, box_indices: np.ndarray, op: LatticeOperator, workers=None) -> np.ndarray:
    """(M,) ``W x`` for an (M,) image x on the lattice (scatter onto the box, FFT apply, gather)."""
    ny, nx = op.shape_box
    box = np.asarray(box_indices, dtype=np.int64)
    img = np.zeros((1, ny, nx))
    img[0, box[:, 0], box[:, 1]] = x
    return lattice_apply(img, op, workers=workers)[0, box[:, 0], box[:, 1]]


def lattice_dense_w(box_indices: np.ndarray, kernel_sum: np.ndarray, kernel_hankel: np.ndarray | None = None):
    """(M, M) W gathered from the lattice kernels (small sizes; tests)."""
    k = np.asarray(kernel_sum)
    ny, nx = (k.shape[0] + 1) // 2, (k.shape[1] + 1) // 2
    r, c = np.asarray(box_indices).T
    W = k[r[:, None] - r[None, :] + ny - 1, c[:, None] - c[None, :] + nx - 1]
    if kernel_hankel is not None:
        W = W + np.asarray(kernel_hankel)[r[:, None] + r[None, :], c[:, None] + c[None, :]]
    return W
