"""The log evidence of a mapping (T's ``cols`` / ``wts``) with its reverse mode computed in the forward pass:
the ``ducc0`` (CPU) way of :func:`~wtilde_dask.inversion.jax_likelihood.log_evidence`.

Value (:func:`log_evidence_from_mapping`, no derivative asked): one host call
(:func:`~wtilde_dask.inversion.jax_host.log_evidence_pieces`) computes F, D and the Cholesky solve (LAPACK on
the host's own F: no (S, S) matrix crosses into XLA) and returns ``s.D``, ``s.F.s``, ``s.H.s`` and
``ln det(F + H)``; the log evidence of :mod:`~wtilde_dask.inversion.jax_evidence` is summed from them here.

Under ``grad`` / ``value_and_grad`` / ``vjp``: the same host call also keeps ``A = W T`` and computes
``G = d/dF = -1/2 (s s^T + (F + H)^-1)`` and ``d/dwts`` from A and G (the formulas of
:mod:`~wtilde_dask.inversion.jax_curvature` and :mod:`~wtilde_dask.inversion.jax_evidence`); A never leaves
that call, so no 100 MB residual is allocated, written and faulted in by XLA per gradient. The log evidence is
linear in its upstream cotangent g, so the backward pass only scales: ``g d/dwts``, ``g G`` for H, ``+g/2`` for
ln det H, ``-g/2`` for chi2_data and the noise normalization, ``g sum_a wts[i, a] s[cols[i, a]]`` for the dirty
image.
"""

from __future__ import annotations

from functools import partial

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from wtilde_dask.inversion import jax_host  # noqa: E402


@partial(jax.custom_vjp, nondiff_argnums=(10, 11))
def log_evidence_from_mapping(cols, wts, H, log_det_h, dirty_image, chi_squared_data, noise_normalization, K_hat,
                              H_hat, box_flat, config, log_det_h_on_host=False):
    """Scalar log evidence for the (M, n) mapping, (S, S) H, ln det H, the (M,) dirty image and the data's
    chi2 and noise normalization (module doc); ``config``: the static
    :class:`~wtilde_dask.inversion.jax_likelihood.LikelihoodConfig` (``fft == "ducc0"``);
    ``log_det_h_on_host`` (static): ln det H is computed in the host call (its Cholesky beside F's transforms;
    a mesh whose H changes with the lens) and the ``log_det_h`` argument is ignored. Differentiable in
    ``wts``, ``H``, ``log_det_h``, ``dirty_image``, ``chi_squared_data`` and ``noise_normalization``."""
    pieces, _ = jax_host.log_evidence_pieces(cols, wts, H, dirty_image, K_hat, H_hat, box_flat, config, False,
                                             log_det_h_on_host)
    return _value(pieces, log_det_h, chi_squared_data, noise_normalization, log_det_h_on_host)


def _value(pieces, log_det_h, chi_squared_data, noise_normalization, log_det_h_on_host):
    s_d, s_f_s, s_h_s, log_det_fh, host_log_det_h = pieces
    chi2 = chi_squared_data - 2.0 * s_d + s_f_s
    log_det_h = host_log_det_h if log_det_h_on_host else log_det_h
    return -0.5 * (chi2 + s_h_s + log_det_fh - log_det_h + noise_normalization)


def _fwd(cols, wts, H, log_det_h, dirty_image, chi_squared_data, noise_normalization, K_hat, H_hat, box_flat,
         config, log_det_h_on_host):
    pieces, s, g_wts, G = jax_host.log_evidence_pieces(cols, wts, H, dirty_image, K_hat, H_hat, box_flat, config,
                                                        True, log_det_h_on_host)
    value = _value(pieces, log_det_h, chi_squared_data, noise_normalization, log_det_h_on_host)
    return value, (cols, wts, s, g_wts, G)


def _bwd(config, log_det_h_on_host, residuals, g):
    cols, wts, s, g_wts, G = residuals  # G: d/dH, with 1/2 H^-1 when ln det H came from the host
    half = 0.5 * g
    g_dirty = g * jnp.sum(wts * s[cols], axis=1)
    g_log_det_h = 0.0 * half if log_det_h_on_host else half
    return None, g * g_wts, g * G, g_log_det_h, g_dirty, -half, -half, None, None, None


log_evidence_from_mapping.defvjp(_fwd, _bwd)

__all__ = ["log_evidence_from_mapping"]
