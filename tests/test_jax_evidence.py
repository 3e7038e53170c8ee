"""The envelope-theorem reverse mode of the log evidence (``inversion/jax_evidence.py``) against central
differences of the evidence written here in NumPy from its definition (no JAX in the reference)."""

import numpy as np
import pytest

from wtilde_dask.inversion import jax_evidence

import jax  # noqa: E402  (after the package has switched JAX to float64)


def evidence_numpy(F, D, H, chi2_data, noise_norm, log_det_h=None):
    """-1/2 [chi2 + s.H.s + ln det(F + H) - ln det H + noise_normalization], s = (F + H)^-1 D (dense NumPy)."""
    A = F + H
    s = np.linalg.solve(A, D)
    chi2 = chi2_data - 2.0 * s @ D + s @ F @ s
    if log_det_h is None:
        log_det_h = np.linalg.slogdet(H)[1]
    return -0.5 * (chi2 + s @ H @ s + np.linalg.slogdet(A)[1] - log_det_h + noise_norm)


def random_problem(S=12, seed=3):
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(40, S))
    F = T.T @ T
    B = rng.normal(size=(S, S))
    H = 0.5 * (B @ B.T) / S + 0.3 * np.eye(S)
    D = rng.normal(size=S) * 3.0
    return F, D, H, 123.4, -56.7


def symmetric_direction(rng, S):
    X = rng.normal(size=(S, S))
    return 0.5 * (X + X.T)


@pytest.mark.parametrize("given_log_det_h", [False, True])
def test_envelope_vjp_equals_central_differences(given_log_det_h):
    F, D, H, chi2_data, nn = random_problem()
    S = F.shape[0]
    log_det_h = np.linalg.slogdet(H)[1] if given_log_det_h else None
    args = (F, D, H, chi2_data, nn) + ((log_det_h,) if given_log_det_h else ())
    value, grads = jax.value_and_grad(
        lambda *a: jax_evidence.log_evidence_from_matrices(*a), argnums=tuple(range(len(args))))(*args)
    assert float(value) == pytest.approx(evidence_numpy(F, D, H, chi2_data, nn, log_det_h), rel=1e-13)

    rng = np.random.default_rng(11)
    h = 1e-5
    for name, index in (("F", 0), ("H", 2)):
        X = symmetric_direction(rng, S)

        def along(t, index=index, X=X):
            a = list(args)
            a[index] = a[index] + t * X
            if given_log_det_h and index == 2:  # ln det H is then an input of its own, held fixed
                return evidence_numpy(a[0], a[1], a[2], chi2_data, nn, log_det_h)
            return evidence_numpy(a[0], a[1], a[2], chi2_data, nn, None if not given_log_det_h else log_det_h)

        numeric = (along(h) - along(-h)) / (2 * h)
        analytic = float(np.sum(np.asarray(grads[index]) * X))
        assert analytic == pytest.approx(numeric, rel=1e-7, abs=1e-9), name
    d = rng.normal(size=S)
    numeric = (evidence_numpy(F, D + h * d, H, chi2_data, nn, log_det_h)
               - evidence_numpy(F, D - h * d, H, chi2_data, nn, log_det_h)) / (2 * h)
    assert float(np.asarray(grads[1]) @ d) == pytest.approx(numeric, rel=1e-7)
    assert float(grads[3]) == -0.5 and float(grads[4]) == -0.5
    if given_log_det_h:
        assert float(grads[5]) == 0.5


def test_matches_jax_autodiff_of_the_plain_solve():
    """The same gradient as JAX's own rules through the Cholesky factorisation and the solves."""
    F, D, H, chi2_data, nn = random_problem(S=9, seed=5)
    ours = jax.grad(lambda f, d, hh: jax_evidence.log_evidence_from_matrices(f, d, hh, chi2_data, nn),
                    argnums=(0, 1, 2))(F, D, H)
    plain = jax.grad(lambda f, d, hh: jax_evidence.solve_and_score(f, d, hh, chi2_data, nn).log_evidence,
                     argnums=(0, 1, 2))(F, D, H)
    for a, b in zip(ours, plain):
        a, b = np.asarray(a), np.asarray(b)
        # JAX's rule for a symmetric input differentiates the lower triangle only: compare symmetrised
        if a.ndim == 2:
            a, b = a + a.T - np.diag(np.diag(a)), b + b.T - np.diag(np.diag(b))
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_not_positive_definite_gives_nan_not_an_error():
    F, D, H, chi2_data, nn = random_problem(S=6)
    value = jax_evidence.log_evidence_from_matrices(-10.0 * F, D, H, chi2_data, nn)
    assert np.isnan(float(value))


def test_inverse_from_the_cholesky_factor_equals_numpy_inverse_single_and_batched():
    """The reverse mode's (F + H)^-1 (LAPACK potri on a CPU) against numpy's inverse, also under vmap."""
    rng = np.random.default_rng(3)
    mats = []
    for _ in range(3):
        a = rng.normal(size=(40, 40))
        mats.append(a @ a.T + 40 * np.eye(40))
    L = jax.numpy.linalg.cholesky(jax.numpy.asarray(np.stack(mats)))
    single = np.asarray(jax.jit(jax_evidence._inverse)(L[0]))
    batched = np.asarray(jax.jit(jax.vmap(jax_evidence._inverse))(L))
    assert np.max(np.abs(single - np.linalg.inv(mats[0]))) <= 1e-12 * np.max(np.abs(single))
    for k in range(3):
        assert np.max(np.abs(batched[k] - np.linalg.inv(mats[k]))) <= 1e-12 * np.max(np.abs(batched[k]))
    assert np.array_equal(single, single.T)
