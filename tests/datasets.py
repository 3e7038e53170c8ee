"""Test data written to disk for the tests that run the `wtilde` command in a subprocess."""

import sys

import numpy as np

#: the `wtilde` command of this interpreter (subprocess argv)
WTILDE = [sys.executable, "-c", "import sys; from wtilde_dask.cli import main; sys.exit(main())"]


def write_random_npz(path, n_visibilities: int, seed: int):
    """An .npz of ``n_visibilities`` random visibilities, unequal real/imag noise and uv within +-5e4 wavelengths."""
    rng = np.random.default_rng(seed)
    np.savez(path, visibilities=rng.normal(size=n_visibilities) + 1j * rng.normal(size=n_visibilities),
             noise_map=rng.uniform(0.5, 2, n_visibilities) + 1j * rng.uniform(0.5, 2, n_visibilities),
             uv_wavelengths=rng.uniform(-5e4, 5e4, size=(n_visibilities, 2)))
    return path


def simulated_interferometer(seed: int, equal_noise: bool, name: str, K: int = 2000):
    """``K`` random visibilities around 1.5 with uv within +-3e5 wavelengths; equal real/imag noise (no Hankel
    part in the curvature) or unequal; the dataset is named ``"<name> equal"`` / ``"<name> unequal"``."""
    from wtilde_dask.dataset import Interferometer

    rng = np.random.default_rng(seed)
    uv = rng.uniform(-3e5, 3e5, (K, 2))
    sr = rng.uniform(0.5, 2.0, K)
    si = sr.copy() if equal_noise else rng.uniform(0.5, 2.0, K)
    vis = 1.5 + rng.normal(size=K) * sr + 1j * rng.normal(size=K) * si
    return Interferometer.from_arrays(vis, sr + 1j * si, uv, name=f"{name} {'equal' if equal_noise else 'unequal'}")


def lattice_stores(out, grid, client, name: str) -> dict:
    """{"equal": lattice store, equal real/imag noise (no Hankel part); "unequal": with the Hankel part}, computed
    on ``client`` into ``out/equal.zarr`` and ``out/unequal.zarr`` (block size 256)."""
    from wtilde_dask.compute import compute

    quiet = dict(client=client, progress=False, log=lambda *a, **k: None, method="lattice", block_size=256)
    return {data: compute(simulated_interferometer(i, data == "equal", name), grid, out / f"{data}.zarr", **quiet)
            for i, data in enumerate(("equal", "unequal"))}


def rel(a, b) -> float:
    """max |a - b| / max |b| (float64)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def assert_grad_equals_central_differences(lk, params, value_rel: float, same_topology=None) -> None:
    """``lk.value_and_grad(params)``: the value equals ``lk.log_evidence`` within ``value_rel``; the gradient is
    finite, nowhere 0, and each component equals the central difference with ``h = 1e-6 max(1, |p_i|)`` within
    1e-5 relative. ``same_topology(up, down, name)``, if given, asserts both points are on the same mesh."""
    import pytest

    from wtilde_dask.inversion import jax_likelihood as jl

    value, grad = lk.value_and_grad(params)
    grad = np.asarray(grad)
    assert float(value) == pytest.approx(float(lk.log_evidence(params)), rel=value_rel)
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)
    for i, name in enumerate(jl.PARAM_NAMES):
        h = 1e-6 * max(1.0, abs(params[i]))
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        if same_topology is not None:
            same_topology(up, down, name)
        fd = (float(lk.log_evidence(up)) - float(lk.log_evidence(down))) / (2 * h)
        assert abs(grad[i] - fd) <= 1e-5 * abs(fd), (name, grad[i], fd)


_LIKELIHOODS: dict = {}


def cached_likelihood(store, **options):
    """``JaxLikelihood.from_store(store, **options)``, built once per store path and options (the tests reuse it:
    its jit compilations are the slow part)."""
    from wtilde_dask.inversion import jax_likelihood as jl

    key = (str(store.path), tuple(sorted(options.items())))
    if key not in _LIKELIHOODS:
        _LIKELIHOODS[key] = jl.JaxLikelihood.from_store(store, **options)
    return _LIKELIHOODS[key]


def invert_argv(store, mesh: str, mesh_pixels: int, coefficient: float) -> list:
    """`wtilde invert` arguments for ``store`` with the lens of the likelihood tests (einstein radius 0.8", axis
    ratio 0.75, position angle 35 deg, centre (0.05, -0.03)", shear (0.03, -0.02)) on the FFT path."""
    return ["invert", str(store.path), "--einstein-radius", "0.8", "--axis-ratio", "0.75", "--position-angle", "35",
            "--lens-centre", "0.05", "-0.03", "--shear", "0.03", "-0.02", "--mesh", mesh, "--mesh-pixels",
            str(mesh_pixels), "--coefficient", str(coefficient), "--path", "fft"]


#: the terms of the log evidence a likelihood's ``fit`` returns, as named in ``inversion_reference``'s dict
EVIDENCE_TERMS = ("chi_squared", "regularization_term", "log_det_curvature_reg", "log_det_regularization",
                  "noise_normalization", "log_evidence")


def assert_fit_equals_numpy_and_brute_force(store, lk, params, T, H, rtol: float) -> None:
    """``lk.fit(params)`` and the NumPy fitter on the store (FFT path, given T and H) equal the brute force from
    the store's visibilities (``inversion_reference``) within ``rtol`` relative: the reconstruction (the same
    source pixels in the same order) and every evidence term."""
    from wtilde_dask.inversion.fitter import WTildeFitter
    from wtilde_dask.inversion.reference import inversion_reference

    grid, ds = store.grid(), store.dataset()
    ref = inversion_reference(grid.grid_radians, ds.uv_wavelengths, ds.visibilities, ds.noise_map, T, H)
    numpy_result = WTildeFitter.from_store(store, path="fft").fit(T, H)
    result = lk.fit(params)
    assert rel(result.reconstruction, ref["reconstruction"]) <= rtol
    for key in EVIDENCE_TERMS:
        assert rel(getattr(result, key), ref[key]) <= rtol, key
        assert rel(getattr(numpy_result, key), ref[key]) <= rtol, key


def assert_vmap_equals_single_calls(lk, params, n: int, describe=None) -> None:
    """``log_evidence_batch`` on ``n`` models scattered around ``params`` (seed 3), by ``jax.vmap`` and by
    ``jax.lax.map``, equals ``n`` single calls to 1e-12 relative, the ``n`` values all different;
    ``describe(batch)`` is the failure message, if given."""
    from wtilde_dask.inversion.jax_likelihood import JaxLikelihood

    rng = np.random.default_rng(3)
    batch = params[None] + rng.normal(scale=[0.03, 0.03, 5.0, 0.02, 0.02, 0.01, 0.01], size=(n, 7))
    single = np.array([float(lk.log_evidence(p)) for p in batch])
    assert len(np.unique(single)) == n  # n different models
    for way in ("vmap", "map"):
        other = JaxLikelihood(lk.arrays, lk.config, lk.coefficient, batch=way)
        assert other.batch == way
        batched = np.asarray(other.log_evidence_batch(batch))
        assert rel(batched, single) <= 1e-12, (way, None if describe is None else describe(batch))
