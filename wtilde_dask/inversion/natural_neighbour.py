"""Sibson natural-neighbour interpolation on the Voronoi cells of a source mesh's vertices.

Coordinates are (y, x) arcsec in the source plane. For a point p inside the convex hull of the vertices,
the Sibson weight of vertex j is the area the Voronoi cell of p would steal from the cell of j if p were
inserted, divided by the area of p's new cell: ``lambda_j = |V+(p) n V(j)| / |V+(p)|``. Properties: the
weights are >= 0, sum to 1, reproduce linear functions exactly, and are continuous in p and in the vertex
positions, also where the Delaunay triangulation of the vertices flips (four cocircular vertices).

The computation has two parts:

* **topology** (host, NumPy / SciPy, integers): :func:`sibson_topology`. For each point, its Bowyer-Watson
  cavity = the Delaunay triangles whose circumcircle contains p (found by a walk over triangle neighbours from
  p's own triangle, compiled: :func:`~wtilde_dask.inversion.compiled.sibson_cavities`), which edges of the cavity
  triangles lie on the cavity's boundary, and its natural neighbours = the vertices of the cavity triangles.
  Padded with -1 to the largest count found (rounded up to a multiple of :data:`PAD_MULTIPLE` so that a jitted
  function sees few distinct shapes); no fixed cap.
* **weights** (:func:`sibson_weights`, any array module ``xp``: NumPy or ``jax.numpy``): pure functions of
  the vertex and point positions. With all coordinates relative to p, the triangles counter-clockwise in
  the (y, x) plane, ``c_T`` the circumcentre of cavity triangle T, for vertex j of T = (j, x, y):

      A_j += 1/2 [ m_jx x c_T + c_T x m_jy ]
           + 1/2 q_j x m_jx   if edge (j, x) is on the cavity boundary
           + 1/2 m_jy x q_j   if edge (j, y) is on the cavity boundary

  where ``u x v = u_0 v_1 - u_1 v_0``, ``q_j = j / 2`` (the midpoint of p and j), and ``m_jx`` is the
  circumcentre of the new triangle (p, j, x) when (j, x) is a boundary edge, else the edge midpoint
  ``(j + x) / 2`` (a point on the same Voronoi edge, the bisector of j and x, so the shoelace sum is
  unchanged). Summed over the fan of cavity triangles around j, this is the shoelace area of the polygon
  ``m_ja, c_T1, ..., c_Tk, m_jb, q_j``: the part of j's old cell inside p's new cell. ``lambda_j = A_j /
  sum_i A_i``. Only the circumcentres of non-degenerate triangles enter (the new triangles (p, boundary
  edge) are non-degenerate for p strictly inside the cavity), so points on interior mesh edges need no
  special case. At a cavity change (p crosses a circumcircle) the entering triangle contributes zero,
  so the weights are continuous there.

Regularization: the Delaunay edges of the vertices, each weighted by :func:`voronoi_edge_weights` (the
Voronoi facet shared by the two vertices over their distance; 1 on a square lattice): an edge that flips
has weight 0 on both sides of the flip, so H, like the weights, is continuous in the lens parameters
(with unit weights every flip changes H by a finite amount, a jump in the evidence).

Special points (``kind``): a point on a vertex (distance <= ``1e-12`` x the mesh size) gets weight 1 on
that vertex; a point outside the convex hull of the vertices gets weight 1 on its nearest vertex, as
PyAutoArray's ``DelaunayNN`` does (its ``outside_fallback_index``: the k-d tree nearest vertex); a point on
a hull edge (a barycentric coordinate of its triangle <= ``1e-10`` on a hull edge) gets the barycentric
weights of its triangle (the limit of the Sibson weights there: linear along the edge).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, cKDTree

from wtilde_dask.inversion import compiled
from wtilde_dask.inversion.mesh import DelaunayMesh, MeshError, _as_points

PAD_MULTIPLE = 8  # cavity / neighbour counts are padded up to a multiple of this
SIBSON, NEAREST, BARYCENTRIC = 0, 1, 2  # ``kind`` of a point


class SibsonTopology(NamedTuple):
    """Integer tables of the Sibson interpolation of M points on S vertices (from :func:`sibson_topology`).

    kind (M,) int32: :data:`SIBSON`, :data:`NEAREST` (on a vertex or outside the hull) or :data:`BARYCENTRIC`
    (on a hull edge); simplex (M, 3) int32: the point's triangle (counter-clockwise; NEAREST: the vertex
    three times); cavity (M, C, 3) int32 the vertices of each cavity triangle (counter-clockwise, -1 pad);
    boundary (M, C, 3) bool: the edge opposite vertex k of the cavity triangle is on the cavity boundary;
    slot (M, C, 3) int32: the column of vertex k of the cavity triangle in ``neighbours``; neighbours
    (M, K) int32: the natural neighbours (NEAREST: the vertex; BARYCENTRIC: the triangle), -1 pad.
    """

    kind: np.ndarray
    simplex: np.ndarray
    cavity: np.ndarray
    boundary: np.ndarray
    slot: np.ndarray
    neighbours: np.ndarray


def _padded(n: int) -> int:
    return max(PAD_MULTIPLE, -(-int(n) // PAD_MULTIPLE) * PAD_MULTIPLE)


def _cross(u, v):
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def oriented_triangulation(vertices):
    """``(simplices (T, 3), neighbours (T, 3))`` of the SciPy Delaunay triangulation of (S, 2) vertices,
    every triangle counter-clockwise in the (y, x) plane (``(b - a) x (c - a) > 0``); neighbours[t, k] is
    the triangle across the edge opposite vertex k (-1 on the hull)."""
    tri = Delaunay(vertices)
    simp, nbr = tri.simplices.copy(), tri.neighbors.copy()
    a, b, c = (vertices[simp[:, k]] for k in range(3))
    flip = _cross(b - a, c - a) < 0
    simp[flip] = simp[flip][:, [0, 2, 1]]
    nbr[flip] = nbr[flip][:, [0, 2, 1]]
    return tri, simp, nbr


def sibson_topology(vertices, points, on_vertex=None) -> SibsonTopology:
    """Host step: the integer tables of the Sibson weights of (M, 2) ``points`` on (S, 2) ``vertices``.

    ``on_vertex`` (M,) int, optional: the vertex each point coincides with (-1: none); default: found by
    a k-d tree (distance <= 1e-12 x the mesh size).
    """
    V = _as_points(vertices, "vertices")
    P = _as_points(points, "points")
    M = len(P)
    tri, simp, nbr = oriented_triangulation(V)
    scale = float(np.max(np.ptp(V, axis=0)))
    tree_v = cKDTree(V)
    dist, nearest = tree_v.query(P)
    if on_vertex is None:
        on_vertex = np.where(dist <= 1e-12 * scale, nearest, -1)
    on_vertex = np.asarray(on_vertex, dtype=np.int64)
    located = tri.find_simplex(P)
    # the SciPy simplex index is the same triangle in ``simp`` (only the vertex order may differ)
    kind = np.full(M, SIBSON, dtype=np.int32)
    kind[(located < 0) | (on_vertex >= 0)] = NEAREST
    simplex = np.repeat(np.where(on_vertex >= 0, on_vertex, nearest)[:, None], 3, axis=1)
    inside = kind == SIBSON
    simplex[inside] = simp[located[inside]]
    # on a hull edge: a barycentric coordinate ~ 0 opposite a hull edge
    if inside.any():
        a, b, c = (V[simplex[inside, k]] for k in range(3))
        p = P[inside]
        area = _cross(b - a, c - a)
        bary = np.stack([_cross(b - p, c - p), _cross(c - p, a - p), _cross(a - p, b - p)], axis=1) / area[:, None]
        on_hull = ((np.abs(bary) <= 1e-10) & (nbr[located[inside]] < 0)).any(axis=1)
        kind[np.flatnonzero(inside)[on_hull]] = BARYCENTRIC

    # each Sibson point's cavity (the triangles whose circumcircle holds it: |p - c_T| < R_T, a walk from its own
    # triangle), the cavity's boundary edges and natural neighbours (its triangles' distinct corners): a compiled
    # loop over the points, counted first, then written into tables padded to the largest counts
    a, b, c = (V[simp[:, k]] for k in range(3))
    cc = np.stack(_circumcentre_yx(a[:, 0], a[:, 1], b[:, 0], b[:, 1], c[:, 0], c[:, 1]), axis=1)
    r2 = np.sum((a - cc) ** 2, axis=1)
    walk_from = np.where(kind == SIBSON, located, -1).astype(np.int64)
    cavities = compiled.sibson_cavities()
    simp64, nbr64 = simp.astype(np.int64), nbr.astype(np.int64)
    n_cavity, n_neighbours = np.zeros(M, dtype=np.int64), np.zeros(M, dtype=np.int64)
    no_table = np.zeros((0, 0, 0), dtype=np.int32)
    cavities(P, cc, r2, nbr64, simp64, walk_from, False, n_cavity, n_neighbours, no_table,
             np.zeros((0, 0, 0), dtype=bool), no_table, np.zeros((0, 0), dtype=np.int32))
    C = _padded(n_cavity.max(initial=1))
    K = _padded(max(int(n_neighbours.max(initial=1)), 3))
    cavity = -np.ones((M, C, 3), dtype=np.int32)
    boundary = np.zeros((M, C, 3), dtype=bool)
    slot = np.zeros((M, C, 3), dtype=np.int32)
    neighbours = -np.ones((M, K), dtype=np.int32)
    cavities(P, cc, r2, nbr64, simp64, walk_from, True, n_cavity, n_neighbours, cavity, boundary, slot, neighbours)
    near = kind == NEAREST
    neighbours[near, 0] = simplex[near, 0]
    bar = kind == BARYCENTRIC
    neighbours[bar, :3] = simplex[bar]
    return SibsonTopology(kind, simplex.astype(np.int32), cavity, boundary, slot, neighbours)


def _circumcentre_yx(ay, ax, by, bx, cy, cx):
    """``(y, x)``: the circumcentres of the triangles (a, b, c), one coordinate array at a time (any array
    module)."""
    bay, bax, cay, cax = by - ay, bx - ax, cy - ay, cx - ax
    d = 2.0 * (bay * cax - bax * cay)
    ba2, ca2 = bay * bay + bax * bax, cay * cay + cax * cax
    return ay + (cax * ba2 - bax * ca2) / d, ax + (bay * ca2 - cay * ba2) / d


class SibsonPairs(NamedTuple):
    """The cavity triangles of every point as one flat list of (point, triangle) pairs (from
    :func:`sibson_pairs`): point (P,) int32 the point, corner (P, 3) int32 the triangle's vertices
    (counter-clockwise; -1 on padding pairs), boundary (P, 3) bool the edge opposite corner k is on the cavity
    boundary, slot (P, 3) int32 the column of corner k in the point's ``neighbours``. P is the number of pairs
    (~4 per point) rounded up to :func:`padded_pairs`, not the points times their largest cavity."""

    point: np.ndarray
    corner: np.ndarray
    boundary: np.ndarray
    slot: np.ndarray


def padded_pairs(n: int) -> int:
    """``n`` rounded up to a multiple of an eighth of its power of two (>= 64): at most 1/8 padding and eight
    sizes per doubling, so that a jitted function sees few distinct shapes."""
    step = max(64, 1 << max(0, int(n).bit_length() - 4))
    return max(step, -(-int(n) // step) * step)


def sibson_pairs(topology: SibsonTopology, size: int | None = None) -> SibsonPairs:
    """Host step: the (point, cavity triangle) pairs of ``topology``, padded to ``size`` pairs (default
    :func:`padded_pairs` of their number; padding pairs: point 0, corner -1, no boundary, slot 0)."""
    cavity = np.asarray(topology.cavity)
    pt, tr = np.nonzero(cavity[..., 0] >= 0)
    n = len(pt)
    P = padded_pairs(n) if size is None else int(size)
    if P < n:
        raise ValueError(f"size: {P} is fewer than the {n} cavity pairs")
    point = np.zeros(P, dtype=np.int32)
    corner = -np.ones((P, 3), dtype=np.int32)
    boundary = np.zeros((P, 3), dtype=bool)
    slot = np.zeros((P, 3), dtype=np.int32)
    point[:n] = pt
    corner[:n] = cavity[pt, tr]
    boundary[:n] = np.asarray(topology.boundary)[pt, tr]
    slot[:n] = np.asarray(topology.slot)[pt, tr]
    return SibsonPairs(point, corner, boundary, slot)


def sibson_weights(vertices, points, topology: SibsonTopology, xp=np):
    """(M, K) weights on the columns ``topology.neighbours`` (0 on padding) of the (M, 2) points on the
    (S, 2) vertices (``topology``: NumPy arrays from :func:`sibson_topology`):
    :func:`sibson_weights_from_pairs` on its :func:`sibson_pairs`."""
    return sibson_weights_from_pairs(vertices, points, topology.kind, topology.simplex, sibson_pairs(topology),
                                     topology.neighbours.shape[1], xp=xp)


def sibson_weights_from_pairs(vertices, points, kind, simplex, pairs: SibsonPairs, n_neighbours: int, xp=np):
    """(M, K = ``n_neighbours``) Sibson weights of the (M, 2) points on the (S, 2) vertices: the formula of the
    module doc over the cavity ``pairs``, in the array module ``xp`` (NumPy or ``jax.numpy``; differentiable in
    ``vertices`` and ``points`` with the integer tables held fixed); ``kind`` (M,) and ``simplex`` (M, 3) of
    :class:`SibsonTopology`. Each coordinate travels as its own (P,) array (a minor axis of length 2 or 3
    costs XLA a pad per slice in the reverse mode), and the work is per pair, not per padded cavity slot."""
    M, K = points.shape[0], int(n_neighbours)
    valid = pairs.corner[:, 0] >= 0  # (P,)
    py, px = points[:, 0][pairs.point], points[:, 1][pairs.point]
    # the three corners relative to p; padding pairs: a fixed non-degenerate triangle (area masked out,
    # derivatives finite)
    ry, rx = [], []
    for k, (dy, dx) in enumerate(((1.0, 0.0), (0.0, 1.0), (-1.0, -1.0))):
        corner = xp.maximum(pairs.corner[:, k], 0)
        ry.append(xp.where(valid, vertices[:, 0][corner] - py, dy))
        rx.append(xp.where(valid, vertices[:, 1][corner] - px, dx))
    cy, cx = _circumcentre_yx(ry[0], rx[0], ry[1], rx[1], ry[2], rx[2])  # (P,)
    bnd = [pairs.boundary[:, k] for k in range(3)]
    acc = np.zeros((M, K)) if xp is np else xp.zeros((M, K))
    for k in range(3):
        j, o1, o2 = k, (k + 1) % 3, (k + 2) % 3
        jy, jx = ry[j], rx[j]
        b_jx, b_jy = bnd[o2], bnd[o1]  # edge (j, x) is opposite vertex y

        def m(o, on_boundary):  # circumcentre of (p, j, other) on a boundary edge, else the edge midpoint
            sjy, sjx = xp.where(on_boundary, jy, 1.0), xp.where(on_boundary, jx, 0.0)
            soy, sox = xp.where(on_boundary, ry[o], 0.0), xp.where(on_boundary, rx[o], 1.0)
            gy, gx = _circumcentre_yx(0.0, 0.0, sjy, sjx, soy, sox)
            return xp.where(on_boundary, gy, 0.5 * (jy + ry[o])), xp.where(on_boundary, gx, 0.5 * (jx + rx[o]))

        (mxy, mxx), (myy, myx) = m(o1, b_jx), m(o2, b_jy)
        qy, qx = 0.5 * jy, 0.5 * jx
        a = 0.5 * ((mxy * cx - mxx * cy) + (cy * myx - cx * myy))
        a = a + xp.where(b_jx, 0.5 * (qy * mxx - qx * mxy), 0.0) + xp.where(b_jy, 0.5 * (myy * qx - myx * qy), 0.0)
        a = xp.where(valid, a, 0.0)
        if xp is np:
            np.add.at(acc, (np.asarray(pairs.point), np.asarray(pairs.slot[:, k])), a)
        else:
            acc = acc.at[pairs.point, pairs.slot[:, k]].add(a)
    sibson = kind == SIBSON
    total = xp.sum(acc, axis=1)
    acc = acc / xp.where(sibson, total, 1.0)[:, None]

    # fallbacks: weight 1 on a vertex (NEAREST), barycentric on a hull edge (BARYCENTRIC)
    s = simplex
    a, b, cc = vertices[s[:, 0]], vertices[s[:, 1]], vertices[s[:, 2]]
    tri_area = _cross(b - a, cc - a)
    tri_area = xp.where(kind == BARYCENTRIC, tri_area, 1.0)
    wa = _cross(b - points, cc - points) / tri_area
    wb = _cross(cc - points, a - points) / tri_area
    pad = xp.zeros((M, K - 3))
    bary = xp.concatenate([xp.stack([wa, wb, 1.0 - wa - wb], axis=1), pad], axis=1)
    one = xp.concatenate([xp.ones((M, 1)), xp.zeros((M, K - 1))], axis=1)
    out = xp.where((kind == BARYCENTRIC)[:, None], bary, acc)
    return xp.where((kind == NEAREST)[:, None], one, out)


def slim_vertex_index(n_points: int, n_pixels: int) -> np.ndarray:
    """(S,) rows of the (M, 2) traced grid that are vertices: ``n_pixels`` evenly spaced in the image grid's
    (slim) order, the same rows for every lens model (so the vertices move continuously with the lens)."""
    n, M = int(n_pixels), int(n_points)
    if not 3 <= n <= M:
        raise MeshError(f"n_pixels: must lie in [3, {M}] (3 .. traced points), got {n_pixels!r}")
    return np.linspace(0, M - 1, n).round().astype(np.int64)


class VoronoiMesh(DelaunayMesh):
    """Vertices anywhere, Sibson natural-neighbour interpolation on their Voronoi cells (module doc).

    Neighbours: the Delaunay edges, weighted by :attr:`edge_weights` in :meth:`regularization_matrix`.
    Vertex order: as given (:meth:`from_source_grid`: the image grid's order).
    """

    def __init__(self, vertices):
        pts = _as_points(vertices, "vertices")
        if len(pts) < 3:
            raise MeshError(f"vertices: need at least 3 distinct points, got {len(pts)}")
        if len(np.unique(pts, axis=0)) != len(pts):
            raise MeshError(f"vertices: {len(pts) - len(np.unique(pts, axis=0))} repeated position(s); need distinct points")
        self.centres = pts
        self.triangulation, _, _ = oriented_triangulation(pts)
        self.edges, self.opposite = delaunay_edges_and_opposites(pts)
        self._tree = cKDTree(pts)

    @property
    def edge_weights(self) -> np.ndarray:
        """(E,) neighbour weights of :attr:`edges` (:func:`voronoi_edge_weights`)."""
        return voronoi_edge_weights(self.centres, self.edges, self.opposite)

    def regularization_matrix(self, coefficient: float = 1.0, scheme: str = "constant") -> np.ndarray:
        """Dense (S, S) H of ``scheme`` as :func:`~wtilde_dask.inversion.regularization.regularization_matrix`,
        with the weighted Laplacian ``L = sum_e w_e (u_i - u_j)(u_i - u_j)^T`` (u the unit vectors)."""
        from wtilde_dask.inversion.regularization import (REGULARIZATION_EPS, SCHEMES, RegularizationError,
                                                          difference_matrix)

        if scheme not in SCHEMES:
            raise RegularizationError(f"regularization scheme: unknown {scheme!r}, expected one of {', '.join(SCHEMES)}")
        if not np.isfinite(coefficient) or coefficient < 0:
            raise RegularizationError(f"regularization coefficient: must be finite and >= 0, got {coefficient!r}")
        S, c2 = self.n_pixels, float(coefficient) ** 2
        if scheme == "zeroth":
            return c2 * np.eye(S)
        B = sp.diags(np.sqrt(self.edge_weights)) @ difference_matrix(self.edges, S)
        L = (B.T @ B).toarray()
        return c2 * (L if scheme in ("constant", "gradient") else L.T @ L) + REGULARIZATION_EPS * np.eye(S)

    @classmethod
    def from_source_grid(cls, source_grid, n_pixels: int) -> "VoronoiMesh":
        """Vertices = ``n_pixels`` traced points evenly spaced in the grid's order (:func:`slim_vertex_index`):
        the same image pixels for every lens (PyAutoArray's "Overlay"-style image-plane mesh), so the mesh
        moves continuously with the lens parameters. Traced points outside their hull: nearest vertex."""
        pts = _as_points(source_grid, "source_grid")
        return cls(pts[slim_vertex_index(len(pts), n_pixels)])

    def topology(self, source_grid) -> SibsonTopology:
        """:func:`sibson_topology` of the (N, 2) points on this mesh."""
        return sibson_topology(self.centres, source_grid)

    def mapping_matrix(self, source_grid) -> sp.csr_matrix:
        pts = _as_points(source_grid, "source_grid")
        topo = self.topology(pts)
        w = sibson_weights(self.centres, pts, topo)
        cols = topo.neighbours
        ok = cols >= 0
        rows = np.broadcast_to(np.arange(len(pts))[:, None], cols.shape)
        T = sp.coo_matrix((w[ok], (rows[ok], cols[ok])), shape=(len(pts), self.n_pixels)).tocsr()
        T.eliminate_zeros()
        return T



def delaunay_edges_and_opposites(vertices):
    """Host step: ``(edges (E, 2), opposite (E, 2))`` of the Delaunay triangulation of the (S, 2) vertices:
    each edge (i < j) and the vertex opposite it in each of its (one or two) triangles (-1: none, a hull edge)."""
    _, simp, _ = oriented_triangulation(np.asarray(vertices, dtype=np.float64))
    e = np.sort(np.concatenate([simp[:, [1, 2]], simp[:, [2, 0]], simp[:, [0, 1]]]), axis=1)
    o = np.concatenate([simp[:, 0], simp[:, 1], simp[:, 2]])
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, o = e[order], o[order]
    edges, first, counts = np.unique(e, axis=0, return_index=True, return_counts=True)
    opposite = -np.ones((len(edges), 2), dtype=np.int64)
    opposite[:, 0] = o[first]
    two = counts == 2
    opposite[two, 1] = o[first[two] + 1]
    return edges, opposite


MAX_EDGE_WEIGHT = 100.0  # bound of a neighbour weight (1 on a square lattice; a sliver on the hull -> infinity)


def voronoi_edge_weights(vertices, edges, opposite, xp=np):
    """(E,) neighbour weights ``w_ij = clip((cot a + cot b) / 2, 0, MAX_EDGE_WEIGHT)`` of the Delaunay edges,
    a and b the angles opposite edge (i, j) in its two triangles (one on the hull). For an interior edge
    ``(cot a + cot b) / 2`` is the length of the Voronoi facet shared by i and j over their distance: 1 between
    lattice neighbours of a square lattice, 0 on its diagonals and for an edge about to flip (four cocircular
    vertices), so a regularization built on these weights changes continuously where the triangulation flips.
    The bound keeps the nearly flat triangles along a straight stretch of the hull (angles -> 0, cot -> infinity)
    from tying their vertices together; lensing stretches a lattice's weights to ~ the magnification, far below."""
    vi, vj = vertices[edges[:, 0]], vertices[edges[:, 1]]
    total = 0.0
    for k in range(2):
        ok = opposite[:, k] >= 0
        vo = vertices[xp.maximum(opposite[:, k], 0)]
        u, v = vi - vo, vj - vo
        cr = xp.abs(_cross(u, v))
        cot = xp.sum(u * v, axis=-1) / xp.where(ok & (cr > 0), cr, 1.0)
        total = total + xp.where(ok, 0.5 * cot, 0.0)
    return xp.clip(total, 0.0, MAX_EDGE_WEIGHT)
