"""The host reverse mode (wtilde_dask.inversion.cotangent_kernels): the compiled cotangent of T's weights equals
``(W T (G + G^T))[i, cols[i, a]]`` from dense matrices built here; ``log_evidence_pieces`` equals the solve
written here with numpy.linalg, and its derivatives equal central differences of that dense formula. Edge
cases: a repeated column in a row, a row of zero weights, source pixels nobody maps to, a partial last batch,
one and two threads, F + H not positive definite (NaN, as a failed Cholesky)."""

from __future__ import annotations

import numpy as np
import pytest

from wtilde_dask.inversion import cotangent_kernels, curvature_kernels

from datasets import rel

NY, NX = 6, 7
S = 23
N_COLS = 4


def lattice_case(seed: int):
    """~80% of the pixels of a 6 x 7 box, a mapping with a repeated column, a zero-weight row and 3 unused
    source pixels."""
    rng = np.random.default_rng(seed)
    box = np.array([(r, c) for r in range(NY) for c in range(NX) if rng.random() < 0.8])
    M = len(box)
    cols = rng.integers(0, S - 3, size=(M, N_COLS))
    cols[0, 1] = cols[0, 0]
    wts = rng.normal(size=(M, N_COLS))
    wts[1] = 0.0
    return rng, box, cols, wts


def evidence_case(seed: int):
    """:func:`lattice_case` with a symmetric lattice kernel, its operator and dense W, an H that keeps F + H
    positive definite whatever W's sign, and a dirty image: ``(rng, box, cols, wts, op, W, H, d)``."""
    rng, box, cols, wts = lattice_case(seed)
    k = rng.normal(size=(2 * NY - 1, 2 * NX - 1))
    k = 0.5 * (k + k[::-1, ::-1])
    W = curvature_kernels.lattice_dense_w(box, k)
    B = rng.normal(size=(S, S))
    H = B @ B.T + S * np.eye(S) + np.abs(W).sum() * np.eye(S)
    return rng, box, cols, wts, curvature_kernels.lattice_operator(k), W, H, rng.normal(size=len(box))


def dense_T(cols, wts):
    M, n = cols.shape
    T = np.zeros((M, S))
    np.add.at(T, (np.repeat(np.arange(M), n), cols.ravel()), wts.ravel())
    return T


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("symmetric", [False, True])
def test_weights_cotangent_equals_the_dense_formula(workers, symmetric):
    rng, box, cols, wts = lattice_case(1)
    M = len(box)
    A_dense = rng.normal(size=(M, S))  # any (M, S) matrix with zero columns where T is empty
    used = np.flatnonzero(np.abs(dense_T(cols, wts)).sum(axis=0) > 0)
    A_dense[:, np.setdiff1d(np.arange(S), used)] = 0.0
    G = rng.normal(size=(S, S))
    if symmetric:
        G = G + G.T
    bs = 3
    assert used.size % bs != 0  # a partial last batch
    n_batches = -(-used.size // bs)
    A = np.zeros((n_batches + 1, M, bs))  # (as curvature_lattice: a partial batch's tail is zero)
    for k, p in enumerate(used):
        A[k // bs, :, k % bs] = A_dense[:, p]
    A[n_batches] = np.nan  # a batch beyond the used columns' is never read
    expected = (A_dense @ (G + G.T))[np.arange(M)[:, None], cols]
    got = cotangent_kernels.weights_cotangent(A, used, cols.astype(np.int64), G, symmetric=symmetric,
                                              workers=workers)
    assert got.shape == cols.shape
    assert rel(got, expected) <= 1e-13
    assert np.all(got[1] != 0)  # the zero-weight row has a derivative
    empty = cotangent_kernels.weights_cotangent(A[:0], used[:0], cols.astype(np.int64), G)
    assert np.array_equal(empty, np.zeros(cols.shape))


def dense_pieces(cols, wts, W, H, d):
    T = dense_T(cols, wts)
    F = T.T @ W @ T
    D = T.T @ d
    s = np.linalg.solve(F + H, D)
    return np.array([s @ D, s @ F @ s, s @ H @ s, np.linalg.slogdet(F + H)[1]]), s


def dense_log_evidence(cols, wts, W, H, d):
    (s_d, s_f_s, s_h_s, log_det_fh), _ = dense_pieces(cols, wts, W, H, d)
    return -0.5 * (-2.0 * s_d + s_f_s + s_h_s + log_det_fh)  # the terms that depend on the weights and H


def test_log_evidence_pieces_and_cotangents_equal_the_dense_formula():
    rng, box, cols, wts, op, W, H, d = evidence_case(2)
    M = len(box)
    pieces, s = cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d, batch_size=3, workers=2)
    ref_pieces, ref_s = dense_pieces(cols, wts, W, H, d)
    assert rel(pieces[:4], ref_pieces) <= 1e-11 and rel(s, ref_s) <= 1e-11
    assert pieces[4] == 0.0  # ln det H only when asked for
    pieces_c, s_c, g_wts, G = cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d, cotangents=True,
                                                                    batch_size=3, workers=2)
    assert np.array_equal(pieces_c, pieces) and np.array_equal(s_c, s)
    # d/dwts and d/dH by central differences of the dense log evidence
    step = 1e-5
    fd_w = np.zeros_like(wts)
    for i in range(M):
        for a in range(N_COLS):
            up, down = wts.copy(), wts.copy()
            up[i, a] += step
            down[i, a] -= step
            fd_w[i, a] = (dense_log_evidence(cols, up, W, H, d) - dense_log_evidence(cols, down, W, H, d)) / (2 * step)
    assert rel(g_wts, fd_w) <= 1e-6
    E = np.zeros((S, S))
    E[2, 5] = E[5, 2] = 1.0  # a symmetric direction in H: dL = tr(G^T E) = 2 G[2, 5]
    fd_h = (dense_log_evidence(cols, wts, W, H + step * E, d)
            - dense_log_evidence(cols, wts, W, H - step * E, d)) / (2 * step)
    assert abs(2 * G[2, 5] - fd_h) <= 1e-6 * max(1.0, abs(fd_h))
    assert np.allclose(G, G.T, rtol=0, atol=1e-12 * np.abs(G).max())

    # with ln det H from the same call (its Cholesky on a pool thread beside F): the piece equals slogdet and
    # G is the derivative of the whole log evidence (+1/2 ln det H) in H
    for workers in (1, 2):
        pieces_h, _, g_wts_h, G_h = cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d, cotangents=True,
                                                                          log_det_h=True, batch_size=3, workers=workers)
        assert rel(pieces_h[:4], pieces[:4]) <= 1e-13 and rel(g_wts_h, g_wts) <= 1e-13
        assert rel(pieces_h[4], np.linalg.slogdet(H)[1]) <= 1e-12

        def whole(H_):
            return dense_log_evidence(cols, wts, W, H_, d) + 0.5 * np.linalg.slogdet(H_)[1]

        fd_whole = (whole(H + step * E) - whole(H - step * E)) / (2 * step)
        assert abs(2 * G_h[2, 5] - fd_whole) <= 1e-6 * max(1.0, abs(fd_whole))
        assert abs(fd_whole - fd_h) > 1e-3 * abs(fd_h)  # the ln det H term matters here


def test_log_evidence_pieces_are_nan_when_f_plus_h_is_not_positive_definite():
    rng, box, cols, wts = lattice_case(3)
    k = rng.normal(size=(2 * NY - 1, 2 * NX - 1))
    op = curvature_kernels.lattice_operator(0.5 * (k + k[::-1, ::-1]))
    H = -1e6 * np.eye(S)
    d = rng.normal(size=len(box))
    for cotangents in (False, True):
        out = cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d, cotangents=cotangents)
        assert len(out) == (4 if cotangents else 2)
        assert all(np.all(np.isnan(a)) for a in out)
    # F + H positive definite but H not: NaN when ln det H is asked for
    W = curvature_kernels.lattice_dense_w(box, 0.5 * (k + k[::-1, ::-1]))
    T = dense_T(cols, wts)
    F = T.T @ W @ T
    H = np.eye(S) - F  # F + H = I
    assert np.linalg.eigvalsh(H).min() < 0
    assert np.all(np.isfinite(cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d)[0]))
    out = cotangent_kernels.log_evidence_pieces(cols, wts, box, op, H, d, log_det_h=True)
    assert np.isnan(out[0]).all()


def test_padding_entries_marked_negative_are_skipped():
    """A column of -1 marks a padding entry of zero weight (the voronoi mesh's neighbour padding): the pieces
    equal those with the entry dropped (the dense formula), its cotangent is 0 and every other entry's equals
    the cotangent computed without the mark."""
    rng, box, cols, wts, op, W, H, d = evidence_case(4)
    pad = rng.random(cols.shape) < 0.3
    pad[:, 0] = False
    wts = np.where(pad, 0.0, wts)
    marked = np.where(pad, -1, cols)
    pieces, _, g_marked, G = cotangent_kernels.log_evidence_pieces(marked, wts, box, op, H, d, cotangents=True,
                                                                  batch_size=3, workers=2)
    ref_pieces, _ = dense_pieces(np.where(pad, 0, cols), wts, W, H, d)
    assert rel(pieces[:4], ref_pieces) <= 1e-11
    _, _, g_plain, _ = cotangent_kernels.log_evidence_pieces(np.where(pad, 0, cols), wts, box, op, H, d,
                                                             cotangents=True, batch_size=3, workers=2)
    assert np.all(g_marked[pad] == 0.0)
    assert rel(g_marked[~pad], g_plain[~pad]) <= 1e-13
    assert np.any(g_plain[pad] != 0.0)  # without the mark the padding entries' cotangents were computed
