"""Brute-force inversion from the visibilities (tests and ``verify`` only; slow, NumPy).

Ground truth for every W-tilde path: the transformed mapping matrix
``f_kj = sum_i T_ij exp(-1j phi_ik)`` (K, S), ``phi_ik = 2 pi (x_i u_k + y_i v_k)``; then

    F_ab = sum_k wr_k Re(f_ka) Re(f_kb) + wi_k Im(f_ka) Im(f_kb)
    D_a  = sum_k wr_k Re(V_k) Re(f_ka) + wi_k Im(V_k) Im(f_ka)
    s    = (F + H)^-1 D,   model visibilities  V_model = f s
    chi2 = sum_k wr_k (Re V_k - Re V_model_k)^2 + wi_k (Im V_k - Im V_model_k)^2

and the log evidence of docs/mathematics.md with these. (Expanding f: F = T^T W T and D = T^T d with
W and d as defined there, which is what the fast paths use.)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def transformed_mapping_matrix_reference(grid_radians, uv_wavelengths, mapping_matrix, chunk: int = 512) -> np.ndarray:
    """(K, S) complex ``f = exp(-1j phi) T`` from the (M, 2) (y, x) radian grid and (K, 2) (u, v)."""
    g = np.asarray(grid_radians, dtype=np.float64)
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    T = sp.csr_matrix(mapping_matrix)
    K = uv.shape[0]
    f = np.empty((K, T.shape[1]), dtype=np.complex128)
    TT = T.T.tocsr()
    for k0 in range(0, K, chunk):
        phi = 2 * np.pi * (np.outer(uv[k0 : k0 + chunk, 0], g[:, 1]) + np.outer(uv[k0 : k0 + chunk, 1], g[:, 0]))
        f[k0 : k0 + chunk] = np.asarray(TT @ np.exp(-1j * phi).T).T
    return f


def inversion_reference(grid_radians, uv_wavelengths, visibilities, noise_map, mapping_matrix, regularization) -> dict:
    """Brute-force F, D, s, chi2, model visibilities and log evidence (module doc) as a dict."""
    f = transformed_mapping_matrix_reference(grid_radians, uv_wavelengths, mapping_matrix)
    V = np.asarray(visibilities)
    N = np.asarray(noise_map)
    wr, wi = 1.0 / N.real**2, 1.0 / N.imag**2
    F = f.real.T @ (wr[:, None] * f.real) + f.imag.T @ (wi[:, None] * f.imag)
    D = f.real.T @ (wr * V.real) + f.imag.T @ (wi * V.imag)
    H = np.asarray(regularization, dtype=np.float64)
    s = np.linalg.solve(F + H, D)
    model = f @ s
    chi2 = float(np.sum(wr * (V.real - model.real) ** 2) + np.sum(wi * (V.imag - model.imag) ** 2))
    reg = float(s @ H @ s)
    _, ld_fh = np.linalg.slogdet(F + H)
    _, ld_h = np.linalg.slogdet(H)
    norm = float(np.sum(np.log(2 * np.pi * N.real**2)) + np.sum(np.log(2 * np.pi * N.imag**2)))
    log_ev = -0.5 * (chi2 + reg + ld_fh - ld_h + norm)
    return {
        "curvature": F,
        "data_vector": D,
        "reconstruction": s,
        "model_visibilities": model,
        "chi_squared": chi2,
        "regularization_term": reg,
        "log_det_curvature_reg": float(ld_fh),
        "log_det_regularization": float(ld_h),
        "noise_normalization": norm,
        "log_evidence": float(log_ev),
    }
