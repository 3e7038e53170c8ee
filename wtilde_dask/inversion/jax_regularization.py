"""Regularization matrices of the source mesh in JAX (the formulas of :mod:`wtilde_dask.inversion.regularization`).

``H = c^2 L + eps I`` (constant / gradient), ``c^2 L^T L + eps I`` (curvature), ``c^2 I`` (zeroth), with L the
(S, S) graph Laplacian of the mesh's (E, 2) edges and c the regularization coefficient; for a mesh whose edges do
not depend on the lens (the rectangular lattices) H's base and its eigenvalues are computed once on the host
(:class:`FixedRegularization`), so ``ln det H`` needs no Cholesky per evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.inversion.regularization import REGULARIZATION_EPS
from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def laplacian(edges, edge_mask, n_pixels: int):
    """(S, S) graph Laplacian ``L = B^T B`` of the (E, 2) edges (masked-out rows add nothing)."""
    i, j = edges[:, 0], edges[:, 1]
    L = jnp.zeros((n_pixels, n_pixels))
    L = L.at[i, i].add(edge_mask).at[j, j].add(edge_mask)
    return L.at[i, j].add(-edge_mask).at[j, i].add(-edge_mask)


def regularization_matrix(L, coefficient, scheme: str):
    """(S, S) H of ``scheme`` from the Laplacian L (module doc)."""
    S = L.shape[0]
    c2 = coefficient * coefficient
    if scheme == "zeroth":
        return c2 * jnp.eye(S)
    base = L if scheme in ("constant", "gradient") else L.T @ L
    return c2 * base + REGULARIZATION_EPS * jnp.eye(S)


class FixedRegularization(NamedTuple):
    """H of a mesh whose edges do not depend on the lens (the rectangular mesh), factored once on the host.

    ``H = c^2 base + eps I`` with ``base`` (S, S) = L (constant / gradient), ``L^T L`` (curvature) or I (zeroth,
    eps = 0); ``base_eigenvalues`` (S,) its eigenvalues (``numpy.linalg.eigvalsh``, the null space's
    round-off set to exactly 0), so ``ln det H = sum ln(c^2 mu + eps)``: no Cholesky of H per evaluation,
    and still a function of the coefficient c (differentiable in it).
    """

    base: jax.Array
    base_eigenvalues: jax.Array
    eps: jax.Array


def fixed_regularization(edges, n_pixels: int, scheme: str) -> FixedRegularization:
    """Host step: :class:`FixedRegularization` of the (E, 2) mesh ``edges`` for ``scheme``."""
    from wtilde_dask.inversion.regularization import regularization_matrix as numpy_regularization_matrix

    base = numpy_regularization_matrix(edges, int(n_pixels), 1.0, scheme, eps=0.0)  # c = 1, eps = 0: the base
    eps = 0.0 if scheme == "zeroth" else REGULARIZATION_EPS
    mu = np.linalg.eigvalsh(base)
    mu[np.abs(mu) <= 1e-12 * max(float(np.max(np.abs(mu))), 1.0)] = 0.0  # L's null space (constants): exactly 0
    return FixedRegularization(jnp.asarray(base), jnp.asarray(np.maximum(mu, 0.0)), jnp.asarray(eps))


def fixed_regularization_matrix(fixed: FixedRegularization, coefficient):
    """(H (S, S), ln det H) of :class:`FixedRegularization` for ``coefficient``."""
    c2 = coefficient * coefficient
    H = c2 * fixed.base + fixed.eps * jnp.eye(fixed.base.shape[0])
    return H, jnp.sum(jnp.log(c2 * fixed.base_eigenvalues + fixed.eps))


__all__ = ["laplacian", "regularization_matrix", "FixedRegularization", "fixed_regularization",
           "fixed_regularization_matrix"]
