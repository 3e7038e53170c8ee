"""The README's Python examples run as written (real LocalCluster, real stores in a temporary folder), and what
they return is checked against a second path: the store read back as xarray, the NumPy fitter."""

import functools
import pathlib
import re

import numpy as np
import pytest
import scipy.sparse as sp

README = pathlib.Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert blocks, "README has no ```python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    w_tilde, dirty_image = namespace["w_tilde"], namespace["dirty_image"]
    assert w_tilde.shape == (6400, 6400) and dirty_image.shape == (6400,)
    assert (tmp_path / "sma_w_tilde.zarr" / "zarr.json").is_file()
    # the matrix read back is symmetric and its diagonal is sum_k (wr_k) (cos^2 + sin^2 with wr == wi here)
    corner = np.asarray(w_tilde[:50, 6350:])
    assert np.array_equal(corner, np.asarray(w_tilde[6350:, :50]).T)
    dataset = namespace["dataset"]
    np.testing.assert_allclose(np.diag(np.asarray(w_tilde[:20, :20])), dataset.weights_real.sum(), rtol=1e-12, atol=0)
    # the fitter built from the store: F = T^T W T and D = T^T d for a T that picks 20 scattered image pixels
    # (one source pixel each, weight 2) equal the xarray read of the same store
    fitter = namespace["fitter"]
    rows = np.arange(0, 6400, 320)
    T = sp.csr_matrix((np.full(rows.size, 2.0), (rows, np.arange(rows.size))), shape=(6400, rows.size))
    W = np.asarray(w_tilde[rows, :][:, rows])
    np.testing.assert_allclose(fitter.curvature(T), 4.0 * W, rtol=1e-13, atol=0)
    np.testing.assert_allclose(fitter.data_vector(T), 2.0 * np.asarray(dirty_image)[rows], rtol=1e-13, atol=0)


def test_readme_jax_likelihood_example_runs(tmp_path, monkeypatch, client):
    """The README's second block (the JAX likelihood) on a small lattice store named as in the block: its
    log evidence equals the NumPy fitter's on the same mesh, the vmap batch equals single calls, the gradient
    equals central differences, and L-BFGS-B from 10% off raises the evidence."""
    from wtilde_dask.compute import compute
    from wtilde_dask.dataset import Interferometer
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.inversion import LensModel, RectangularMesh, WTildeFitter, regularization_from_mesh
    from wtilde_dask.inversion.jax_likelihood import params_from_lens

    blocks = python_blocks()
    assert len(blocks) >= 2, "README has no second ```python example"
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(11)
    K = 1500
    uv = rng.uniform(-3e5, 3e5, (K, 2))
    sigma = rng.uniform(0.5, 2.0, K)
    vis = 1.5 + rng.normal(size=K) * sigma + 1j * rng.normal(size=K) * sigma
    grid = ImageGrid.circular((24, 24), (0.1, 0.1), 1.1)
    compute(Interferometer.from_arrays(vis, sigma * (1 + 1j), uv), grid, "w.zarr", method="lattice", block_size=256,
            client=client, progress=False, log=lambda *a, **k: None)
    lens = LensModel(einstein_radius=0.8, axis_ratio=0.75, position_angle=35.0, centre=(0.05, -0.03),
                     shear=(0.03, -0.02))
    params = params_from_lens(lens)
    batch = np.stack([params, params * np.array([1.05, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0])])
    p_start = params * np.array([1.1, 0.9, 1, 1, 1, 1, 1])
    namespace: dict = {"params": params, "batch": batch, "p_start": p_start}
    # the block's L-BFGS-B runs up to 200 iterations on a 32 x 32 mesh (minutes here); 4 are enough to check that
    # it moves uphill, so the default maxiter is lowered for this run only (the call itself is the README's)
    from wtilde_dask.inversion import jax_likelihood

    monkeypatch.setattr(jax_likelihood, "maximize_evidence",
                        functools.partial(jax_likelihood.maximize_evidence, maxiter=4))
    exec(compile(blocks[1], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    lk, p_fit, res = namespace["lk"], namespace["p_fit"], namespace["res"]

    source_grid = lens.ray_trace(grid.grid_arcsec)
    mesh = RectangularMesh.from_source_grid(source_grid, (32, 32))
    T = mesh.mapping_matrix(source_grid)
    H = regularization_from_mesh(mesh, 1.0)
    expected = WTildeFitter.from_store("w.zarr", path="fft").log_evidence(T, H)
    assert float(lk.log_evidence(params)) == pytest.approx(expected, rel=1e-10)
    singles = [float(lk.log_evidence(p)) for p in batch]
    np.testing.assert_allclose(np.asarray(lk.log_evidence_batch(batch)), singles, rtol=1e-12)
    value, grad = lk.value_and_grad(params)
    assert float(value) == pytest.approx(expected, rel=1e-10)
    h = 1e-6
    for i in (0, 1):  # einstein_radius, axis_ratio
        step = np.zeros(7)
        step[i] = h
        fd = (float(lk.log_evidence(params + step)) - float(lk.log_evidence(params - step))) / (2 * h)
        assert float(grad[i]) == pytest.approx(fd, rel=1e-4, abs=1e-3), i
    assert np.asarray(p_fit).shape == (7,)
    np.testing.assert_array_equal(np.asarray(p_fit)[2:], p_start[2:])  # only b and q were free
    assert float(lk.log_evidence(p_fit)) > float(lk.log_evidence(p_start))


def test_readme_model_file_is_the_documented_model():
    """The README's model.yaml parses into a FitModel with exactly the free parameters its priors name, and the
    fixed values it gives (read independently of the model code by PyYAML)."""
    import yaml

    from wtilde_dask.fit.model import FitModel

    (block,) = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    raw = yaml.safe_load(block)
    model = FitModel.from_dict(raw)
    with_prior = {k for k, v in raw["lens"].items() if isinstance(v, dict)} | {"coefficient"}
    assert set(model.free_names) == with_prior
    for key, value in raw["lens"].items():
        if not isinstance(value, dict):
            assert model.fixed[key] == value
    assert model.sampler["name"] == "nautilus" and model.sampler["n_live"] == 100 and model.sampler["seed"] == 1
    assert model.likelihood_options()["mesh"] == "rectangular"
