"""Every regularization scheme against its definition, built in this test from the mesh's geometry (not from the
mesh's own ``edges``): the neighbours of a rectangular mesh are the nodes one spacing apart along y or x; those of a
Delaunay mesh share a triangle of SciPy's triangulation of the vertices. Then, with ``N(i)`` the neighbours of i,

* constant (and its alias gradient): ``s^T H s = c^2 sum_{i<j neighbours} (s_i - s_j)^2 + eps |s|^2``
* curvature: ``s^T H s = c^2 sum_i (sum_{j in N(i)} (s_i - s_j))^2 + eps |s|^2`` (squared discrete Laplacian)
* zeroth: ``s^T H s = c^2 |s|^2``

H is the Hessian of that quadratic form; it is written out here entry by entry. PyAutoArray's constant matrix on
the same Delaunay neighbours is checked in tests/test_inversion.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial import Delaunay

from wtilde_dask.grid import ImageGrid
from wtilde_dask.inversion import DelaunayMesh, LensModel, RectangularMesh, regularization_from_mesh
from wtilde_dask.inversion.regularization import REGULARIZATION_EPS, log_det_cholesky

C = 1.7
LENS = LensModel(einstein_radius=0.8, axis_ratio=0.75, position_angle=35.0, centre=(0.05, -0.03), shear=(0.03, -0.02))


def rectangular_neighbours(mesh: RectangularMesh) -> set[tuple[int, int]]:
    """Pairs of nodes one spacing apart along y or x (from the node positions)."""
    p = mesh.centres
    sy, sx = mesh.spacing
    out = set()
    for i, j in itertools.combinations(range(len(p)), 2):
        dy, dx = abs(p[i, 0] - p[j, 0]), abs(p[i, 1] - p[j, 1])
        if (np.isclose(dy, sy) and np.isclose(dx, 0, atol=1e-12)) or (np.isclose(dx, sx) and np.isclose(dy, 0, atol=1e-12)):
            out.add((i, j))
    return out


def delaunay_neighbours(mesh: DelaunayMesh) -> set[tuple[int, int]]:
    """Pairs of vertices that share a triangle of SciPy's Delaunay triangulation of the mesh's vertices."""
    tri = Delaunay(mesh.centres)
    return {tuple(sorted((int(a), int(b)))) for simplex in tri.simplices for a, b in itertools.combinations(simplex, 2)}


def reference_matrix(pairs: set[tuple[int, int]], n: int, scheme: str, c: float = C) -> np.ndarray:
    """The Hessian of the scheme's quadratic form (module doc), summed term by term."""
    H = np.zeros((n, n))
    if scheme == "zeroth":
        return c**2 * np.eye(n)
    if scheme in ("constant", "gradient"):
        for i, j in pairs:  # d/ds of c^2 (s_i - s_j)^2 twice
            H[i, i] += c**2
            H[j, j] += c**2
            H[i, j] -= c**2
            H[j, i] -= c**2
    else:  # curvature: one Laplacian row l_i per node, H += c^2 l_i l_i^T
        nbrs = {i: set() for i in range(n)}
        for i, j in pairs:
            nbrs[i].add(j)
            nbrs[j].add(i)
        for i in range(n):
            l_i = np.zeros(n)
            l_i[i] = len(nbrs[i])
            for j in nbrs[i]:
                l_i[j] -= 1.0
            H += c**2 * np.outer(l_i, l_i)
    return H + REGULARIZATION_EPS * np.eye(n)


def meshes():
    src = LENS.ray_trace(ImageGrid.circular((18, 18), (0.1, 0.1), 0.8).grid_arcsec)
    return {"rectangular": RectangularMesh.from_source_grid(src, (6, 7)), "delaunay": DelaunayMesh.from_source_grid(src, 60)}


MESHES = meshes()


@pytest.mark.parametrize("kind", ["rectangular", "delaunay"])
def test_neighbours_from_the_geometry(kind):
    mesh = MESHES[kind]
    pairs = rectangular_neighbours(mesh) if kind == "rectangular" else delaunay_neighbours(mesh)
    if kind == "rectangular":
        ny, nx = 6, 7
        assert len(pairs) == ny * (nx - 1) + nx * (ny - 1)
    assert {tuple(sorted(map(int, e))) for e in mesh.edges} == pairs
    assert len(mesh.edges) == len(pairs)  # each neighbour pair once


@pytest.mark.parametrize("kind", ["rectangular", "delaunay"])
@pytest.mark.parametrize("scheme", ["constant", "gradient", "curvature", "zeroth"])
def test_scheme_equals_its_definition(kind, scheme):
    mesh = MESHES[kind]
    pairs = rectangular_neighbours(mesh) if kind == "rectangular" else delaunay_neighbours(mesh)
    H = regularization_from_mesh(mesh, C, scheme)
    ref = reference_matrix(pairs, mesh.n_pixels, scheme)
    # integer sums times c^2 and a 1e-8 diagonal: exact up to one rounding of c^2 * (small integer)
    np.testing.assert_allclose(H, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    # the quadratic form itself, for a random source
    s = np.random.default_rng(4).normal(size=mesh.n_pixels)
    if scheme in ("constant", "gradient"):
        energy = C**2 * sum((s[i] - s[j]) ** 2 for i, j in pairs)
    elif scheme == "curvature":
        lap = np.zeros(mesh.n_pixels)
        for i, j in pairs:
            lap[i] += s[i] - s[j]
            lap[j] += s[j] - s[i]
        energy = C**2 * float(lap @ lap)
    else:
        energy = C**2 * float(s @ s)
    eps = 0.0 if scheme == "zeroth" else REGULARIZATION_EPS
    assert s @ H @ s == pytest.approx(energy + eps * float(s @ s), rel=1e-12)
    # log det(H) from the spectrum of the graph Laplacian L (integer matrix, one exact zero for the connected mesh's
    # constant vector): constant c^2 lam + eps, curvature c^2 lam^2 + eps, zeroth c^2 per pixel
    assert log_det_cholesky(H) == pytest.approx(spectral_log_det(pairs, mesh.n_pixels, scheme), rel=LOG_DET_RTOL[scheme])


# measured |Cholesky - spectral| / |log det| on these meshes: constant 4e-11 .. 8e-10, curvature 6e-10 .. 1.6e-9,
# zeroth 2e-16. The constant vector's pivot is eps = 1e-8 while H's entries are ~c^2 * degree (constant) or
# ~c^2 * degree^2 (curvature): Cholesky gets that pivot to ~n * 1e-16 * max|H| absolute, i.e. ~1e-5 .. 1e-4 of its
# log, and that is all the error. A wrong scheme or a missing eps moves log det by O(1).
LOG_DET_RTOL = {"constant": 1e-8, "gradient": 1e-8, "curvature": 1e-7, "zeroth": 1e-14}


def spectral_log_det(pairs, n, scheme, c=C):
    if scheme == "zeroth":
        return n * np.log(c**2)
    L = np.zeros((n, n))
    for i, j in pairs:
        L[i, i] += 1
        L[j, j] += 1
        L[i, j] -= 1
        L[j, i] -= 1
    lam = np.linalg.eigvalsh(L)
    assert abs(lam[0]) < 1e-12 and lam[1] > 1e-6  # connected: one zero eigenvalue
    mu = lam[1:] if scheme in ("constant", "gradient") else lam[1:] ** 2
    return float(np.log(REGULARIZATION_EPS) + np.sum(np.log(c**2 * mu + REGULARIZATION_EPS)))
