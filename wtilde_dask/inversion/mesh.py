"""Source-plane meshes and their interpolation weights (the mapping matrix T) and neighbours.

All coordinates are (y, x) arcsec in the source plane.

* :class:`RectangularMesh`: an (ny, nx) lattice of nodes covering a box; a source-plane point gets
  bilinear weights on the 4 nodes of the cell it falls in (points outside the box are clamped to
  its edge). Node order is row-major with y decreasing down the rows (PyAutoArray's order).
  Neighbours: the 4-connected lattice.
* :class:`DelaunayMesh`: vertices anywhere (e.g. traced image pixels); a point inside the
  triangulation gets barycentric weights on its triangle's 3 vertices (``scipy.spatial.Delaunay``),
  a point outside the convex hull gets weight 1 on its nearest vertex. Neighbours: the triangle edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.spatial import ConvexHull, Delaunay, cKDTree
from wtilde_dask.errors import MeshError  # noqa: F401 (re-exported)


def _as_points(points, name):
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise MeshError(f"{name}: expected finite (N, 2) (y, x) arcsec, got shape {arr.shape}")
    return arr


def rectangular_edges(mesh_shape) -> np.ndarray:
    """(E, 2) 4-connected neighbour edges of the (ny, nx) mesh (row-major node index r * nx + c)."""
    ny, nx = mesh_shape
    idx = np.arange(ny * nx).reshape(ny, nx)
    right = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1)
    down = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], axis=1)
    return np.concatenate([right, down])


class _Mesh:
    edges: np.ndarray  # (E, 2) int, i < j

    @property
    def n_pixels(self) -> int:
        return int(self.centres.shape[0])

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """PyAutoArray's ``(neighbors (S, P) int padded with -1, neighbors_sizes (S,))``."""
        S = self.n_pixels
        both = np.concatenate([self.edges, self.edges[:, ::-1]])
        order = np.lexsort((both[:, 1], both[:, 0]))
        both = both[order]
        sizes = np.bincount(both[:, 0], minlength=S)
        P = max(int(sizes.max(initial=0)), 1)
        out = -np.ones((S, P), dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pos = np.arange(len(both)) - start[both[:, 0]]
        out[both[:, 0], pos] = both[:, 1]
        return out, sizes.astype(np.int64)

    def mapping_matrix(self, source_grid) -> sp.csr_matrix:
        """(N, S) CSR mapping matrix of the (N, 2) source-plane points (rows sum to 1)."""
        raise NotImplementedError


@dataclass(frozen=True)
class RectangularMesh(_Mesh):
    """(ny, nx) nodes spanning ``extent = (y_min, y_max, x_min, x_max)`` arcsec (nodes on the edges)."""

    shape: tuple[int, int]
    extent: tuple[float, float, float, float]
    edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        ny, nx = (int(n) for n in self.shape)
        if ny < 2 or nx < 2:
            raise MeshError(f"mesh shape: need at least (2, 2) nodes, got {self.shape}")
        y0, y1, x0, x1 = (float(v) for v in self.extent)
        if not (y1 > y0 and x1 > x0):
            raise MeshError(f"mesh extent: need y_max > y_min and x_max > x_min, got {self.extent}")
        object.__setattr__(self, "shape", (ny, nx))
        object.__setattr__(self, "edges", rectangular_edges((ny, nx)))

    @classmethod
    def from_source_grid(cls, source_grid, shape, buffer: float = 1e-3) -> "RectangularMesh":
        """Mesh covering the (N, 2) traced points, enlarged by ``buffer`` times its size on each side."""
        pts = _as_points(source_grid, "source_grid")
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = (hi - lo) * buffer + 1e-9
        return cls(tuple(shape), (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]))

    @property
    def spacing(self) -> tuple[float, float]:
        ny, nx = self.shape
        y0, y1, x0, x1 = self.extent
        return (y1 - y0) / (ny - 1), (x1 - x0) / (nx - 1)

    @property
    def centres(self) -> np.ndarray:
        """(S, 2) node positions (y, x) arcsec, row-major, y decreasing with row."""
        ny, nx = self.shape
        y0, y1, x0, x1 = self.extent
        yy, xx = np.meshgrid(np.linspace(y1, y0, ny), np.linspace(x0, x1, nx), indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def mapping_matrix(self, source_grid) -> sp.csr_matrix:
        pts = _as_points(source_grid, "source_grid")
        ny, nx = self.shape
        y0, y1, x0, x1 = self.extent
        dy, dx = self.spacing
        fy = np.clip((y1 - pts[:, 0]) / dy, 0.0, ny - 1.0)
        fx = np.clip((pts[:, 1] - x0) / dx, 0.0, nx - 1.0)
        r = np.minimum(np.floor(fy).astype(np.int64), ny - 2)
        c = np.minimum(np.floor(fx).astype(np.int64), nx - 2)
        ty, tx = fy - r, fx - c
        cols = np.stack([r * nx + c, r * nx + c + 1, (r + 1) * nx + c, (r + 1) * nx + c + 1], axis=1)
        wts = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], axis=1)
        rows = np.repeat(np.arange(len(pts)), 4)
        T = sp.coo_matrix((wts.ravel(), (rows, cols.ravel())), shape=(len(pts), ny * nx)).tocsr()
        T.eliminate_zeros()
        return T


class DelaunayMesh(_Mesh):
    """Delaunay triangulation of (S, 2) vertices (y, x) arcsec; barycentric interpolation."""

    def __init__(self, vertices):
        pts = _as_points(vertices, "vertices")
        pts = np.unique(pts, axis=0)
        if len(pts) < 3:
            raise MeshError(f"vertices: need at least 3 distinct points, got {len(pts)}")
        self.centres = pts
        self.triangulation = Delaunay(pts)
        simp = self.triangulation.simplices
        e = np.concatenate([simp[:, [0, 1]], simp[:, [1, 2]], simp[:, [0, 2]]])
        self.edges = np.unique(np.sort(e, axis=1), axis=0)
        self._tree = cKDTree(pts)

    @classmethod
    def from_source_grid(cls, source_grid, n_pixels: int) -> "DelaunayMesh":
        """Vertices = ``n_pixels`` of the traced points: the corners of their convex hull (so every
        traced point is inside the triangulation) plus points evenly spaced in their (slim) order.

        Tracing a sub-sample of the image grid puts more vertices where the lens magnifies
        (PyAutoArray's "Overlay"-style image-plane mesh)."""
        pts = np.unique(_as_points(source_grid, "source_grid"), axis=0)
        hull = ConvexHull(pts).vertices
        n = int(n_pixels)
        if not (len(hull) + 1 <= n <= len(pts)):
            raise MeshError(f"n_pixels: must lie in [{len(hull) + 1}, {len(pts)}] (hull corners + 1 .. traced points), got {n_pixels!r}")
        rest = np.setdiff1d(np.arange(len(pts)), hull)
        pick = rest[np.unique(np.linspace(0, len(rest) - 1, n - len(hull)).round().astype(np.int64))]
        return cls(pts[np.concatenate([hull, pick])])

    def mapping_matrix(self, source_grid) -> sp.csr_matrix:
        pts = _as_points(source_grid, "source_grid")
        tri = self.triangulation
        simplex = tri.find_simplex(pts)
        inside = simplex >= 0
        n = len(pts)
        trans = tri.transform[simplex[inside]]
        b = np.einsum("nij,nj->ni", trans[:, :2, :], pts[inside] - trans[:, 2, :])
        wts = np.concatenate([b, 1.0 - b.sum(axis=1, keepdims=True)], axis=1)
        cols_in = tri.simplices[simplex[inside]]
        rows_in = np.repeat(np.flatnonzero(inside), 3)
        _, nearest = self._tree.query(pts[~inside])
        rows = np.concatenate([rows_in, np.flatnonzero(~inside)])
        cols = np.concatenate([cols_in.ravel(), np.atleast_1d(nearest)])
        vals = np.concatenate([wts.ravel(), np.ones((~inside).sum())])
        T = sp.coo_matrix((vals, (rows, cols)), shape=(n, self.n_pixels)).tocsr()
        T.eliminate_zeros()
        return T
