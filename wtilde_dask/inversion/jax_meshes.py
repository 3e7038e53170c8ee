"""The source meshes of the JAX likelihood (:mod:`~wtilde_dask.inversion.jax_likelihood`): each gives the (M, P)
column indices and weights of the mapping matrix T for the (M, 2) traced image pixels.

* ``rectangular``: bilinear weights on the (ny, nx) nodes over the box of the traced points
  (:func:`rectangular_mapping`, :class:`~wtilde_dask.inversion.mesh.RectangularMesh`).
* ``delaunay``: barycentric weights on the triangles of S traced points chosen as vertices; the triangulation
  comes from the host (:func:`delaunay_topology_host`, SciPy) as a :class:`DelaunayTopology` of integers held
  fixed inside a derivative (:func:`delaunay_mapping`).

* ``voronoi``: Sibson weights (:mod:`~wtilde_dask.inversion.natural_neighbour`). The vertices are the traced
  image pixels of :func:`~wtilde_dask.inversion.natural_neighbour.slim_vertex_index` (the same rows for every
  lens); the integer tables (each point's cavity triangles, boundary edges, natural neighbours, padded with
  -1 to the largest count found) and the Delaunay edges come from the host (SciPy) as a
  :class:`VoronoiTopology` and enter the jitted function as integers, held fixed inside a derivative; the
  weights are JAX functions of the traced points (vertices included), so gradients flow, and they are
  continuous where the triangulation or a cavity changes. Its regularization weights the Delaunay edges by
  :func:`~wtilde_dask.inversion.natural_neighbour.voronoi_edge_weights` (JAX functions of the vertices, 0 for
  an edge that flips), so H is continuous too.
* ``rectangular_adapt_density``: the kernel-CDF node placement and bilinear weights of
  :mod:`~wtilde_dask.inversion.adaptive_mesh`, all in JAX (no host step); neighbours: the 4-connected
  lattice (its H is fixed, as for the rectangular mesh).
* ``rectangular_uniform``: PyAutoLens's ``RectangularUniform`` placement (:func:`uniform_overlay_mapping`):
  ny x nx pixel centres over the box of the traced points, bilinear weights extrapolated beyond the outermost
  centres; neighbours: the 4-connected lattice (fixed H).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.inversion.adaptive_mesh import DEFAULT_BANDWIDTH, adapt_density_mapping
from wtilde_dask.inversion.natural_neighbour import (SibsonPairs, delaunay_edges_and_opposites, sibson_pairs,
                                                     sibson_topology, sibson_weights_from_pairs, slim_vertex_index,
                                                     voronoi_edge_weights)
from wtilde_dask.errors import JaxLikelihoodError
from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


class VoronoiTopology(NamedTuple):
    """The discrete part of the natural-neighbour mesh (from :func:`voronoi_topology_host`).

    vertex_index (S,) rows of the traced grid that are vertices; the
    :class:`~wtilde_dask.inversion.natural_neighbour.SibsonTopology` fields kind (M,), simplex (M, 3) and
    neighbours (M, K); its cavity triangles as the flat :class:`~wtilde_dask.inversion.natural_neighbour.SibsonPairs`
    pair_point (P,), pair_corner (P, 3), pair_boundary (P, 3), pair_slot (P, 3); edges (3S, 2)
    Delaunay edges padded with (0, 0), edge_mask (3S,) 1.0 for real edges, opposite (3S, 2) the vertices
    opposite each edge (-1: none), for the neighbour weights (:func:`edge_weights`).
    """

    vertex_index: jax.Array
    kind: jax.Array
    simplex: jax.Array
    neighbours: jax.Array
    pair_point: jax.Array
    pair_corner: jax.Array
    pair_boundary: jax.Array
    pair_slot: jax.Array
    edges: jax.Array
    edge_mask: jax.Array
    opposite: jax.Array


def voronoi_topology_host(source_grid, n_pixels: int) -> VoronoiTopology:
    """Host step (NumPy / SciPy): the :class:`VoronoiTopology` (NumPy arrays) of the (M, 2) traced points."""
    pts = np.asarray(source_grid, dtype=np.float64)
    vertex_index = slim_vertex_index(len(pts), n_pixels)
    vertices = pts[vertex_index]
    on_vertex = -np.ones(len(pts), dtype=np.int64)
    on_vertex[vertex_index] = np.arange(len(vertex_index))
    topo = sibson_topology(vertices, pts, on_vertex=on_vertex)
    e, opp = delaunay_edges_and_opposites(vertices)
    n = len(vertex_index)
    edges = np.zeros((3 * n, 2), dtype=np.int32)
    edges[: len(e)] = e
    edge_mask = np.zeros(3 * n)
    edge_mask[: len(e)] = 1.0
    opposite = -np.ones((3 * n, 2), dtype=np.int32)
    opposite[: len(e)] = opp
    return VoronoiTopology(vertex_index.astype(np.int32), topo.kind, topo.simplex, topo.neighbours,
                           *sibson_pairs(topo), edges, edge_mask, opposite)


def pad_topologies(topologies) -> list[VoronoiTopology]:
    """The topologies padded to a common number of cavity pairs P and neighbour count K (to stack them for
    vmap; padding pairs as :func:`~wtilde_dask.inversion.natural_neighbour.sibson_pairs` pads)."""
    P = max(t.pair_point.shape[0] for t in topologies)
    K = max(t.neighbours.shape[1] for t in topologies)

    def pad(t):
        dp, dk = P - t.pair_point.shape[0], K - t.neighbours.shape[1]
        return t._replace(
            pair_point=np.pad(np.asarray(t.pair_point), (0, dp)),
            pair_corner=np.pad(np.asarray(t.pair_corner), ((0, dp), (0, 0)), constant_values=-1),
            pair_boundary=np.pad(np.asarray(t.pair_boundary), ((0, dp), (0, 0))),
            pair_slot=np.pad(np.asarray(t.pair_slot), ((0, dp), (0, 0))),
            neighbours=np.pad(np.asarray(t.neighbours), ((0, 0), (0, dk)), constant_values=-1))

    return [pad(t) for t in topologies]


def voronoi_mapping(source_grid, topology: VoronoiTopology):
    """(M, K) columns (padding: column 0 with weight 0) and Sibson weights of the traced points."""
    vertices = source_grid[topology.vertex_index]
    pairs = SibsonPairs(topology.pair_point, topology.pair_corner, topology.pair_boundary, topology.pair_slot)
    wts = sibson_weights_from_pairs(vertices, source_grid, topology.kind, topology.simplex, pairs,
                                    topology.neighbours.shape[1], xp=jnp)
    ok = topology.neighbours >= 0
    return jnp.where(ok, topology.neighbours, 0), jnp.where(ok, wts, 0.0)


def edge_weights(source_grid, topology: VoronoiTopology):
    """(3S,) neighbour weights of the padded Delaunay edges (:func:`voronoi_edge_weights`; 0 on padding)."""
    vertices = source_grid[topology.vertex_index]
    return topology.edge_mask * voronoi_edge_weights(vertices, topology.edges, topology.opposite, xp=jnp)


def adapt_density_jax_mapping(source_grid, mesh_shape, bandwidth=DEFAULT_BANDWIDTH):
    """(M, 4) columns and bilinear weights of the traced points on the mesh adapted to them."""
    return adapt_density_mapping(source_grid, source_grid, mesh_shape, bandwidth, xp=jnp)


def uniform_overlay_mapping(source_grid, mesh_shape, buffer: float = 1e-8):
    """(M, 4) columns and bilinear weights of the traced points on PyAutoLens's ``RectangularUniform`` mesh.

    Box ``[min - buffer, max + buffer]`` of the points per axis, cut into ny x nx pixels of size
    ``(hi - lo) / n``; the nodes are the pixel centres, row 0 at the top (``y = hi_y - (r + 1/2) dy``), column 0
    at the left (``x = lo_x + (c + 1/2) dx``). A point's cell ``(floor(fy), floor(fx))`` with
    ``fy = (y_top - y) / dy``, ``fx = (x - x_left) / dx`` is clipped to ``[0, n - 2]`` and the bilinear weights
    ``(1 - ty)(1 - tx), (1 - ty) tx, ty (1 - tx), ty tx`` (``t = f - floor``) are not clipped: points in the
    outer half pixel are extrapolated (weights outside [0, 1]), as autoarray 2026.10's
    ``overlay_grid_from`` + ``rectangular_mappings_weights_via_interpolation_from``.
    """
    ny, nx = mesh_shape
    lo = jnp.min(source_grid, axis=0) - buffer
    hi = jnp.max(source_grid, axis=0) + buffer
    dy, dx = (hi[0] - lo[0]) / ny, (hi[1] - lo[1]) / nx
    fy = (hi[0] - 0.5 * dy - source_grid[:, 0]) / dy
    fx = (source_grid[:, 1] - (lo[1] + 0.5 * dx)) / dx
    r = jnp.clip(jnp.floor(jax.lax.stop_gradient(fy)).astype(jnp.int32), 0, ny - 2)
    c = jnp.clip(jnp.floor(jax.lax.stop_gradient(fx)).astype(jnp.int32), 0, nx - 2)
    ty, tx = fy - r, fx - c
    cols = jnp.stack([r * nx + c, r * nx + c + 1, (r + 1) * nx + c, (r + 1) * nx + c + 1], axis=1)
    wts = jnp.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], axis=1)
    return cols, wts


def voronoi_topology(params, grid_arcsec, n_pixels: int) -> VoronoiTopology:
    """Host step: trace the grid for lens ``params`` (7,) and build :func:`voronoi_topology_host` (JAX arrays)."""
    from wtilde_dask.inversion.jax_lens import _ray_trace_jit

    source_grid = np.asarray(_ray_trace_jit(jnp.asarray(params, jnp.float64), grid_arcsec))
    return VoronoiTopology(*(jnp.asarray(a) for a in voronoi_topology_host(source_grid, n_pixels)))


# ----------------------------------------------------------------------------------------------
# The rectangular (box of the traced points) and Delaunay (barycentric) meshes: (M, P) columns and weights
# ----------------------------------------------------------------------------------------------
def rectangular_mapping(source_grid, mesh_shape, buffer=1e-3):
    """Bilinear (M, 4) columns and weights on the (ny, nx) mesh covering the traced points (mesh.py).

    Extent: ``lo, hi = min, max`` of the points, ``pad = (hi - lo) buffer + 1e-9``; node (r, c) at
    ``(y_max + pad - r dy, x_min - pad + c dx)``; points are clamped to the box.
    """
    ny, nx = mesh_shape
    lo, hi = jnp.min(source_grid, axis=0), jnp.max(source_grid, axis=0)
    pad = (hi - lo) * buffer + 1e-9
    y0, y1 = lo[0] - pad[0], hi[0] + pad[0]
    x0, x1 = lo[1] - pad[1], hi[1] + pad[1]
    dy, dx = (y1 - y0) / (ny - 1), (x1 - x0) / (nx - 1)
    fy = jnp.clip((y1 - source_grid[:, 0]) / dy, 0.0, ny - 1.0)
    fx = jnp.clip((source_grid[:, 1] - x0) / dx, 0.0, nx - 1.0)
    r = jnp.minimum(jnp.floor(jax.lax.stop_gradient(fy)).astype(jnp.int32), ny - 2)
    c = jnp.minimum(jnp.floor(jax.lax.stop_gradient(fx)).astype(jnp.int32), nx - 2)
    ty, tx = fy - r, fx - c
    cols = jnp.stack([r * nx + c, r * nx + c + 1, (r + 1) * nx + c, (r + 1) * nx + c + 1], axis=1)
    wts = jnp.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], axis=1)
    return cols, wts


def delaunay_topology_host(source_grid, n_pixels: int):
    """Host side (NumPy / SciPy) of the Delaunay mesh of :meth:`DelaunayMesh.from_source_grid`.

    Returns int32 arrays: ``vertex_index`` (S,) rows of ``source_grid`` that are vertices, in the vertex
    order of :class:`DelaunayMesh` (lexicographic (y, x)); ``simplex`` (M, 3) the vertices of each point's
    triangle (a point outside the hull: its nearest vertex three times, ``inside`` 0); ``inside`` (M,);
    ``edges`` (3S, 2) triangle edges padded with (0, 0) and ``edge_mask`` (3S,) 1.0 for real edges.
    """
    from scipy.spatial import ConvexHull, Delaunay, cKDTree

    pts_all = np.asarray(source_grid, dtype=np.float64)
    n = int(n_pixels)
    pts, first = np.unique(pts_all, axis=0, return_index=True)
    hull = ConvexHull(pts).vertices
    if not (len(hull) + 1 <= n <= len(pts)):
        raise JaxLikelihoodError(
            f"n_pixels: must lie in [{len(hull) + 1}, {len(pts)}] (hull corners + 1 .. traced points), got {n}")
    rest = np.setdiff1d(np.arange(len(pts)), hull)
    pick = rest[np.unique(np.linspace(0, len(rest) - 1, n - len(hull)).round().astype(np.int64))]
    chosen = np.sort(np.concatenate([hull, pick]))  # rows of the lexicographically sorted pts = DelaunayMesh order
    vertices = pts[chosen]
    vertex_index = first[chosen]
    tri = Delaunay(vertices)
    simplex_id = tri.find_simplex(pts_all)
    inside = simplex_id >= 0
    simplex = np.empty((len(pts_all), 3), dtype=np.int64)
    simplex[inside] = tri.simplices[simplex_id[inside]]
    if (~inside).any():
        _, nearest = cKDTree(vertices).query(pts_all[~inside])
        simplex[~inside] = np.atleast_1d(nearest)[:, None]
    simp = tri.simplices
    e = np.unique(np.sort(np.concatenate([simp[:, [0, 1]], simp[:, [1, 2]], simp[:, [0, 2]]]), axis=1), axis=0)
    edges = np.zeros((3 * n, 2), dtype=np.int64)
    edges[: len(e)] = e
    edge_mask = np.zeros(3 * n)
    edge_mask[: len(e)] = 1.0
    return (vertex_index.astype(np.int32), simplex.astype(np.int32), inside.astype(np.int32), edges.astype(np.int32),
            edge_mask)


class DelaunayTopology(NamedTuple):
    """The discrete part of a Delaunay mesh (from :func:`delaunay_topology_host`; held fixed in a derivative)."""

    vertex_index: jax.Array  # (S,) int32 rows of the traced grid that are vertices
    simplex: jax.Array  # (M, 3) int32 vertices of each traced point's triangle
    inside: jax.Array  # (M,) int32
    edges: jax.Array  # (3S, 2) int32, padded
    edge_mask: jax.Array  # (3S,) float64


def delaunay_mapping(source_grid, topology: DelaunayTopology):
    """Barycentric (M, 3) columns and weights of the traced points on the mesh of ``topology``.

    The vertex positions ``source_grid[vertex_index]`` and the weights are JAX functions of the traced
    points, so they are differentiable in the lens parameters; the topology (which points are vertices,
    the triangle of each point) is an integer input, fixed inside a derivative.
    """
    vertices = source_grid[topology.vertex_index]
    simplex, inside = topology.simplex, topology.inside == 1
    a, b, c = vertices[simplex[:, 0]], vertices[simplex[:, 1]], vertices[simplex[:, 2]]

    def cross(u, v):
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    p = source_grid
    area = jnp.where(inside, cross(b - a, c - a), 1.0)
    wa = cross(b - p, c - p) / area
    wb = cross(c - p, a - p) / area
    wts = jnp.stack([wa, wb, 1.0 - wa - wb], axis=1)
    wts = jnp.where(inside[:, None], wts, jnp.array([1.0, 0.0, 0.0]))
    return simplex, wts
