"""The loops of the host curvature path that NumPy cannot run without Python overhead or temporaries, compiled by
Numba on first use (cached on disk) and releasing the GIL, so that the threads of
:func:`~wtilde_dask.inversion.curvature_kernels.curvature_lattice` run them side by side.

* :func:`batch_rows`: the box rows a batch of T's columns touches (the rows its forward transforms need);
* :func:`scatter_columns`: columns of T (CSC) onto those rows of the FFT box, compacted (or back to zero);
* :func:`place_row_spectra`: a batch's row spectra (compacted) at their rows of the y-last spectrum (or back to
  zero);
* :func:`scale_spectra`: ``X[q] *= K`` for complex spectra X and a real kernel spectrum K (no complex copy of K);
* :func:`project_columns`: ``F[used[r], used[first + j]] = sum_i T[i, used[r]] (W T)[i, used[first + j]]`` for the
  rows r from the batch's own on (F's lower triangle), mirrored into the upper one;
* :func:`weights_cotangent_range`: ``dL/dwts[i, a] = scale sum_k A[k // bs, i, k % bs] Gp[cols[i, a], k]`` for
  the image pixels ``lo <= i < hi`` (:mod:`~wtilde_dask.inversion.cotangent_kernels`);
* :func:`sibson_cavities`: each point's Bowyer-Watson cavity in a Delaunay triangulation (a walk from its own
  triangle), the cavity's boundary edges and its natural neighbours
  (:func:`~wtilde_dask.inversion.natural_neighbour.sibson_topology`).

Each is a plain function of arrays; shapes and formulas are in their docstrings.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _numba():
    import numba

    return numba


@functools.cache
def batch_rows():
    """``f(indptr, indices, batch, box_row, slot, rows) -> n``: the n distinct box rows ``box_row[i]`` of the image
    pixels i in T's CSC columns ``batch``, in ``rows[:n]`` (first seen first), with ``slot[rows[k]] = k``
    (``slot``: (ny,) int64, -1 for a row not touched; the caller sets it back to -1 after the batch)."""

    @_numba().njit(nogil=True, cache=True)
    def rows_of(indptr, indices, batch, box_row, slot, rows):  # pragma: no cover - compiled
        n = 0
        for j in range(batch.size):
            c = batch[j]
            for k in range(indptr[c], indptr[c + 1]):
                r = box_row[indices[k]]
                if slot[r] < 0:
                    slot[r] = n
                    rows[n] = r
                    n += 1
        return n

    return rows_of


@functools.cache
def scatter_columns():
    """``f(indptr, indices, data, batch, box_row, box_col, slot, plane, Nx, box, write)``: for j, c =
    enumerate(batch) and each entry k of T's CSC column c (image pixel i = indices[k]),
    ``box[j * plane + slot[box_row[i]] * Nx + box_col[i]] = data[k]`` if ``write`` else 0 (``box``: the flat
    (bs, rows, Nx) images of the batch's touched rows, compacted by ``slot``; ``plane`` = rows * Nx)."""

    @_numba().njit(nogil=True, cache=True)
    def scatter(indptr, indices, data, batch, box_row, box_col, slot, plane, Nx, box, write):  # pragma: no cover
        for j in range(batch.size):
            c = batch[j]
            base = j * plane
            for k in range(indptr[c], indptr[c + 1]):
                i = indices[k]
                box[base + slot[box_row[i]] * Nx + box_col[i]] = data[k] if write else 0.0

    return scatter


@functools.cache
def place_row_spectra():
    """``f(row_spectra, touched, n, b, Z, zero)``: ``Z[q, x, touched[r]] = row_spectra[q, r, x]`` (or 0.0 with
    ``zero``) for q < b, r < n; ``row_spectra`` (bs, >= n, Nk) complex128 (the spectra along x of a batch's touched
    rows, compacted), Z (bs, Nk, Ny) complex128 (y on the fastest axis, for the transforms along y)."""

    @_numba().njit(nogil=True, cache=True)
    def place(row_spectra, touched, n, b, Z, zero):  # pragma: no cover - compiled
        for q in range(b):
            for x in range(Z.shape[1]):  # one row of Z at a time (the reads stay on the same n cache lines)
                for r in range(n):
                    Z[q, x, touched[r]] = 0.0 if zero else row_spectra[q, r, x]

    return place


@functools.cache
def scale_spectra():
    """``f(X, K, b)``: ``X[q, a, c] *= K[a, c]`` for q < b, in place; X (bs, A, C) complex128 (C order), K
    (A, C) float64 (the same layout as X's planes: (Nk, Ny) for y-last spectra)."""

    @_numba().njit(nogil=True, cache=True)
    def scale(X, K, b):  # pragma: no cover - compiled
        na, nc = K.shape
        for q in range(b):
            for a in range(na):
                for c in range(nc):
                    X[q, a, c] = X[q, a, c] * K[a, c]

    return scale


@functools.cache
def project_columns():
    """``f(indptr, indices, data, used, first, b, columns, F)``: with T^T's used rows in CSR (``indptr`` over
    the n_used used source pixels in ``used`` order, ``indices`` flat indices on the padded box) and
    ``columns`` (ny Nx, bs) the batch's ``W T`` on the padded box, for r >= first and j < b with
    r >= first + j: ``F[used[r], used[first + j]] = F[used[first + j], used[r]] = sum_k data[k]
    columns[indices[k], j]`` over row r's entries (the lower triangle and its mirror; every (used, used) entry
    of F is written by exactly one batch)."""

    @_numba().njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def project(indptr, indices, data, used, first, b, columns, F):  # pragma: no cover - compiled
        bs = columns.shape[1]
        acc = np.zeros(bs)
        for r in range(first, used.size):
            for j in range(bs):
                acc[j] = 0.0
            for k in range(indptr[r], indptr[r + 1]):
                v = data[k]
                row = indices[k]
                for j in range(bs):
                    acc[j] += v * columns[row, j]
            q = used[r]
            for j in range(min(b, r - first + 1)):
                p = used[first + j]
                F[q, p] = acc[j]
                F[p, q] = acc[j]

    return project


@functools.cache
def weights_cotangent_range():
    """``f(A, Gp, cols, n_batches, scale, lo, hi, out)``: ``out[i, a] = scale sum_b sum_j A[b, i, j]
    Gp[cols[i, a], b bs + j]`` for ``lo <= i < hi`` (A (n_batches', M, bs), Gp (S, n_batches bs), cols (M, n)
    int64, out (M, n)); 0 where ``cols[i, a] < 0`` (a padding entry)."""

    @_numba().njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def pixel_range(A, Gp, cols, n_batches, scale, lo, hi, out):  # pragma: no cover - compiled
        n = cols.shape[1]
        bs = A.shape[2]
        tile = 128  # pixels whose sums stay in cache while every batch passes (out is (M, n): ~MBs for n ~ 10)
        for t0 in range(lo, hi, tile):
            t1 = min(t0 + tile, hi)
            for i in range(t0, t1):
                for a in range(n):
                    out[i, a] = 0.0
            for b in range(n_batches):
                k = b * bs
                for i in range(t0, t1):
                    for a in range(n):
                        c = cols[i, a]
                        if c < 0:  # a padding entry (its cotangent is not needed): left at 0
                            continue
                        s = 0.0
                        for j in range(bs):
                            s += A[b, i, j] * Gp[c, k + j]
                        out[i, a] += s
            for i in range(t0, t1):
                for a in range(n):
                    out[i, a] *= scale

    return pixel_range


@functools.cache
def sibson_cavities():
    """``f(P, cc, r2, nbr, simp, located, fill, n_cavity, n_neighbours, cavity, boundary, slot, neighbours)``: for
    each point m with ``located[m] >= 0`` (P (M, 2); the triangles' circumcentres ``cc`` (T, 2), squared radii
    ``r2`` (T,), neighbours ``nbr`` (T, 3) across the edge opposite each corner (-1: hull), corners ``simp``
    (T, 3)), its cavity = the triangles whose circumcircle holds the point strictly inside (|p - c|^2 < r^2),
    found by a walk over neighbours from its own triangle ``located[m]`` (always in it; the cavity of a Delaunay
    triangulation is connected), in increasing triangle order; without ``fill`` only the counts ``n_cavity[m]``
    and ``n_neighbours[m]`` (the distinct corners); with ``fill`` also ``cavity[m, c]`` (the triangle's corners),
    ``boundary[m, c, k]`` (the edge opposite corner k leads out of the cavity), ``neighbours[m, :]`` (the distinct
    corners, increasing) and ``slot[m, c, k]`` (corner k's column in ``neighbours[m]``)."""

    @_numba().njit(nogil=True, cache=True)
    def holds(tris, n, t):  # pragma: no cover - compiled
        for q in range(n):
            if tris[q] == t:
                return True
        return False

    @_numba().njit(nogil=True, cache=True)
    def cavities(P, cc, r2, nbr, simp, located, fill, n_cavity, n_neighbours, cavity, boundary, slot,
                 neighbours):  # pragma: no cover - compiled
        tris = np.empty(64, dtype=np.int64)
        verts = np.empty(192, dtype=np.int64)
        for m in range(P.shape[0]):
            t0 = located[m]
            if t0 < 0:
                continue
            py, px = P[m, 0], P[m, 1]
            tris[0] = t0
            n = 1
            head = 0
            while head < n:  # breadth-first walk: tris[:n] found, tris[head:n] still to expand
                t = tris[head]
                head += 1
                for k in range(3):
                    u = nbr[t, k]
                    if u < 0 or holds(tris, n, u):
                        continue
                    dy, dx = py - cc[u, 0], px - cc[u, 1]
                    if dy * dy + dx * dx < r2[u]:
                        if n == tris.size:
                            grown = np.empty(2 * n, dtype=np.int64)
                            grown[:n] = tris[:n]
                            tris = grown
                        tris[n] = u
                        n += 1
            for a in range(1, n):  # insertion sorts: a few entries each, no allocation per point
                v = tris[a]
                b = a - 1
                while b >= 0 and tris[b] > v:
                    tris[b + 1] = tris[b]
                    b -= 1
                tris[b + 1] = v
            if verts.size < 3 * n:
                verts = np.empty(3 * n, dtype=np.int64)
            n_distinct = 0
            for c in range(n):
                for k in range(3):
                    v = simp[tris[c], k]
                    b = n_distinct - 1
                    while b >= 0 and verts[b] > v:
                        b -= 1
                    if b >= 0 and verts[b] == v:
                        continue
                    for q in range(n_distinct, b + 1, -1):
                        verts[q] = verts[q - 1]
                    verts[b + 1] = v
                    n_distinct += 1
            n_cavity[m] = n
            n_neighbours[m] = n_distinct
            if not fill:
                continue
            for j in range(n_distinct):
                neighbours[m, j] = verts[j]
            for c in range(n):
                t = tris[c]
                for k in range(3):
                    v = simp[t, k]
                    cavity[m, c, k] = v
                    j = 0
                    while verts[j] != v:
                        j += 1
                    slot[m, c, k] = j
                    boundary[m, c, k] = not holds(tris, n, nbr[t, k])  # a hull edge (-1) is on the boundary

    return cavities


__all__ = ["batch_rows", "scatter_columns", "scale_spectra", "project_columns", "weights_cotangent_range",
           "sibson_cavities"]
