"""The solve and the log evidence of a linear inversion in JAX, with a hand-written reverse mode.

For the (S, S) curvature ``F = T^T W T``, the (S, S) regularization H, the (S,) data vector ``D = T^T d``:

    s = (F + H)^-1 D,   chi2 = chi2_data - 2 s.D + s.F.s,
    log_evidence = -1/2 [chi2 + s.H.s + ln det(F + H) - ln det(H) + noise_normalization].

Reverse mode (:func:`log_evidence_from_matrices`): s maximises ``-1/2 (chi2 + s.H.s)`` for fixed F, H, D
(its derivative in s, ``-(F + H) s + D``, is zero there), so by the envelope theorem the derivatives of
the log evidence need no derivative of s or of the Cholesky factor:

    d/dF = -1/2 (s s^T + (F + H)^-1),   d/dD = s,
    d/dH = -1/2 (s s^T + (F + H)^-1) + 1/2 H^-1   (the last term only when ln det H is computed here),
    d/d chi2_data = d/d noise_normalization = -1/2,   d/d ln det H = +1/2 (when given).

The backward pass is one inverse from the forward's Cholesky factor (and one of H's when ln det H is
computed here): about a third of what differentiating the Cholesky factorisation and the two triangular
solves costs.
"""

from __future__ import annotations

from typing import NamedTuple

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from wtilde_dask.inversion import jax_host  # noqa: E402


class JaxInversion(NamedTuple):
    """One evaluation's numbers (JAX scalars; reconstruction (S,))."""

    reconstruction: jax.Array
    chi_squared: jax.Array
    regularization_term: jax.Array
    log_det_curvature_reg: jax.Array
    log_det_regularization: jax.Array
    noise_normalization: jax.Array
    log_evidence: jax.Array


def _log_det(cholesky_factor):
    return 2.0 * jnp.sum(jnp.log(jnp.diag(cholesky_factor)))


def solve_and_score(F, D, H, chi_squared_data, noise_normalization, log_det_h=None) -> JaxInversion:
    """Cholesky solve of ``(F + H) s = D``, chi2, log determinants and the log evidence (module doc).
    ``log_det_h``: ln det H when known (e.g. from H's eigenvalues), else by a Cholesky of H. Differentiated
    by JAX's own rules; :func:`log_evidence_from_matrices` is the same log evidence with the envelope VJP."""
    if log_det_h is None:
        log_det_h = _log_det(jnp.linalg.cholesky(H))
    return _score(F, D, H, jnp.linalg.cholesky(F + H), chi_squared_data, noise_normalization, log_det_h)


def _score(F, D, H, L_fh, chi_squared_data, noise_normalization, log_det_h) -> JaxInversion:
    """:func:`solve_and_score` given the lower Cholesky factor ``L_fh`` of F + H and ln det H."""
    s = jax.scipy.linalg.cho_solve((L_fh, True), D)
    log_det_fh = _log_det(L_fh)
    chi2 = chi_squared_data - 2.0 * s @ D + s @ (F @ s)
    reg = s @ (H @ s)
    log_ev = -0.5 * (chi2 + reg + log_det_fh - log_det_h + noise_normalization)
    return JaxInversion(s, chi2, reg, log_det_fh, log_det_h, noise_normalization, log_ev)


def _xla_inverse(cholesky_factor):
    eye = jnp.eye(cholesky_factor.shape[0], dtype=cholesky_factor.dtype)
    return jax.scipy.linalg.cho_solve((cholesky_factor, True), eye)


def _inverse(cholesky_factor):
    """(S, S) ``A^-1`` from the lower Cholesky factor of the symmetric positive-definite A: LAPACK's ``potri``
    on a CPU (float64), two triangular solves against the identity elsewhere."""
    if cholesky_factor.dtype != jnp.float64:
        return _xla_inverse(cholesky_factor)
    return jax.lax.platform_dependent(cholesky_factor, cpu=jax_host.cholesky_inverse, default=_xla_inverse)


def log_evidence_from_matrices(F, D, H, chi_squared_data, noise_normalization, log_det_h=None):
    """Scalar log evidence of :func:`solve_and_score`, differentiable in every array argument by the
    envelope-theorem VJP of the module doc (``log_det_h`` None: ln det H by :func:`log_det_spd`, whose VJP
    adds the ``+1/2 H^-1`` term)."""
    if log_det_h is None:
        log_det_h = log_det_spd(H)
    return _evidence(F, D, H, chi_squared_data, noise_normalization, log_det_h)


@jax.custom_vjp
def log_det_spd(A):
    """ln det A of a symmetric positive-definite (S, S) A by its Cholesky factor; VJP ``g A^-1``."""
    return _log_det(jnp.linalg.cholesky(A))


def _log_det_fwd(A):
    L = jnp.linalg.cholesky(A)
    return _log_det(L), L


def _log_det_bwd(L, g):
    return (g * _inverse(L),)


log_det_spd.defvjp(_log_det_fwd, _log_det_bwd)


@jax.custom_vjp
def _evidence(F, D, H, chi_squared_data, noise_normalization, log_det_h):
    return solve_and_score(F, D, H, chi_squared_data, noise_normalization, log_det_h).log_evidence


def _evidence_fwd(F, D, H, chi_squared_data, noise_normalization, log_det_h):
    L_fh = jnp.linalg.cholesky(F + H)
    inv = _score(F, D, H, L_fh, chi_squared_data, noise_normalization, log_det_h)
    return inv.log_evidence, (inv.reconstruction, L_fh)


def _evidence_bwd(residuals, g):
    s, L_fh = residuals
    G_f = -0.5 * g * (jnp.outer(s, s) + _inverse(L_fh))
    half = -0.5 * g
    return G_f, g * s, G_f, half, half, -half


_evidence.defvjp(_evidence_fwd, _evidence_bwd)


__all__ = ["JaxInversion", "solve_and_score", "log_evidence_from_matrices", "log_det_spd"]
