"""Regularized linear inversion and its Bayesian evidence (docs/mathematics.md), from F, D, H alone.

    s            = (F + H)^-1 D                                   (Cholesky)
    chi2         = chi2_data - 2 s.D + s.F.s,    chi2_data = sum_k wr Re(V)^2 + wi Im(V)^2
    log_evidence = -1/2 [chi2 + s.H.s + ln det(F + H) - ln det(H)
                         + sum_k ln(2 pi sigma_re^2) + ln(2 pi sigma_im^2)]

chi2 never touches the visibilities: chi2_data and the noise normalisation are two numbers of the
dataset, computed once (:func:`visibility_sums`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from wtilde_dask.inversion.regularization import log_det_cholesky
from wtilde_dask.errors import InversionError  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class VisibilitySums:
    """The two visibility sums the evidence needs besides F, D and H."""

    chi_squared_data: float  # sum_k wr Re(V)^2 + wi Im(V)^2
    noise_normalization: float  # sum_k ln(2 pi sigma_re^2) + ln(2 pi sigma_im^2)
    n_visibilities: int


def visibility_sums(visibilities, noise_map) -> VisibilitySums:
    """:class:`VisibilitySums` from (K,) complex visibilities and (K,) complex noise_map."""
    V = np.asarray(visibilities)
    N = np.asarray(noise_map)
    wr, wi = 1.0 / N.real**2, 1.0 / N.imag**2
    chi2_data = float(np.sum(wr * V.real**2) + np.sum(wi * V.imag**2))
    norm = float(np.sum(np.log(2 * np.pi * N.real**2)) + np.sum(np.log(2 * np.pi * N.imag**2)))
    return VisibilitySums(chi2_data, norm, int(V.size))


@dataclass(frozen=True)
class InversionResult:
    """Everything one evaluation produces (all scalars float, reconstruction (S,))."""

    reconstruction: np.ndarray
    chi_squared: float
    regularization_term: float  # s.H.s
    log_det_curvature_reg: float  # ln det(F + H)
    log_det_regularization: float  # ln det(H)
    noise_normalization: float
    log_evidence: float

    def scalars(self) -> dict:
        d = asdict(self)
        d.pop("reconstruction")
        return d


def solve_inversion(curvature, data_vector, regularization, sums: VisibilitySums) -> InversionResult:
    """Solve ``(F + H) s = D`` by Cholesky and score it (module doc). F, H (S, S), D (S,)."""
    F = np.asarray(curvature, dtype=np.float64)
    D = np.asarray(data_vector, dtype=np.float64)
    H = np.asarray(regularization, dtype=np.float64)
    S = D.shape[0]
    if F.shape != (S, S) or H.shape != (S, S):
        raise InversionError(f"curvature {F.shape} / regularization {H.shape}: expected ({S}, {S}) for {S} source pixels")
    try:
        cho = scipy.linalg.cho_factor(F + H, lower=True, check_finite=True)
    except np.linalg.LinAlgError as err:
        raise InversionError(f"curvature + regularization: not positive definite ({err})") from None
    s = scipy.linalg.cho_solve(cho, D)
    log_det_fh = float(2.0 * np.sum(np.log(np.diag(cho[0]))))
    log_det_h = log_det_cholesky(H, "regularization matrix")
    chi2 = float(sums.chi_squared_data - 2.0 * s @ D + s @ (F @ s))
    reg = float(s @ (H @ s))
    log_ev = -0.5 * (chi2 + reg + log_det_fh - log_det_h + sums.noise_normalization)
    return InversionResult(s, chi2, reg, log_det_fh, log_det_h, sums.noise_normalization, float(log_ev))
