"""Regularization matrices H (S x S) from a mesh's neighbour edges, and log det(H).

With ``B`` the (E, S) neighbour-difference matrix (one row per edge (i, j): +1 at i, -1 at j), the
graph Laplacian is ``L = B^T B`` (degree on the diagonal, -1 per neighbour). Schemes:

* ``constant`` (alias ``gradient``): ``H = c**2 L + eps I`` -- the sum of squared neighbour
  differences, exactly PyAutoArray's ``Constant`` regularization (``coefficient**2 * neighbours`` on the
  diagonal, ``-coefficient**2`` per neighbour, plus 1e-8).
* ``curvature``: ``H = c**2 L^T L + eps I`` -- squared discrete Laplacian (second differences).
* ``zeroth``: ``H = c**2 I``.

``L`` and ``L^T L`` are singular (constant vectors are in their null space). Like PyAutoArray we
add ``eps = 1e-8`` to the diagonal (``REGULARIZATION_EPS``), which makes H positive definite; then
``log det(H)`` is the exact log determinant of that H (by Cholesky), so the evidence is finite
and consistent with the H used in the solve.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from wtilde_dask.errors import RegularizationError  # noqa: F401 (re-exported)

REGULARIZATION_EPS = 1e-8
SCHEMES = ("constant", "gradient", "curvature", "zeroth")


def difference_matrix(edges, n_pixels: int) -> sp.csr_matrix:
    """(E, S) neighbour-difference matrix B: row e = +1 at edges[e, 0], -1 at edges[e, 1]."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    E = len(edges)
    rows = np.repeat(np.arange(E), 2)
    vals = np.tile([1.0, -1.0], E)
    return sp.csr_matrix((vals, (rows, edges.ravel())), shape=(E, int(n_pixels)))


def regularization_matrix(
    edges, n_pixels: int, coefficient: float = 1.0, scheme: str = "constant", eps: float = REGULARIZATION_EPS
) -> np.ndarray:
    """Dense (S, S) H for ``scheme`` (see module doc) from the mesh's (E, 2) neighbour edges."""
    if scheme not in SCHEMES:
        raise RegularizationError(f"regularization scheme: unknown {scheme!r}, expected one of {', '.join(SCHEMES)}")
    if not np.isfinite(coefficient) or coefficient < 0:
        raise RegularizationError(f"regularization coefficient: must be finite and >= 0, got {coefficient!r}")
    S = int(n_pixels)
    c2 = float(coefficient) ** 2
    if scheme == "zeroth":
        return c2 * np.eye(S)
    B = difference_matrix(edges, S)
    L = (B.T @ B).toarray()
    H = L if scheme in ("constant", "gradient") else L.T @ L
    return c2 * H + eps * np.eye(S)


def regularization_from_mesh(mesh, coefficient: float = 1.0, scheme: str = "constant") -> np.ndarray:
    """:func:`regularization_matrix` with the mesh's ``edges`` and ``n_pixels``."""
    return regularization_matrix(mesh.edges, mesh.n_pixels, coefficient, scheme)


def log_det_cholesky(matrix: np.ndarray, name: str = "matrix") -> float:
    """ln det of a symmetric positive-definite matrix: ``2 sum ln diag(chol)``."""
    try:
        c = scipy.linalg.cholesky(np.asarray(matrix, dtype=np.float64), lower=True, check_finite=True)
    except np.linalg.LinAlgError as err:
        raise RegularizationError(f"{name}: not positive definite ({err})") from None
    return float(2.0 * np.sum(np.log(np.diag(c))))
