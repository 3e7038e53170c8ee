"""Inversion: F, D, s, chi2 and log evidence from every curvature path equal the brute force from the
visibilities (docs/mathematics.md), on real stores computed on a real LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from wtilde_dask.dataset import Interferometer
from wtilde_dask.grid import ImageGrid
from wtilde_dask.inversion import (
    DelaunayMesh,
    LensModel,
    MappingError,
    RectangularMesh,
    as_mapping_matrix,
    mapping_matrix_from_triplets,
    regularization_from_mesh,
    regularization_matrix,
)
from wtilde_dask.inversion.fitter import FitterError, WTildeFitter
from wtilde_dask.inversion.mapping import triplets_from_mapping_matrix
from wtilde_dask.inversion.reference import inversion_reference
from wtilde_dask.inversion.regularization import RegularizationError, log_det_cholesky
from wtilde_dask.inversion.solve import solve_inversion, visibility_sums

# Measured worst relative differences against the brute force (both data sets, both meshes, three paths): F 4e-15,
# D 7e-15, s 1.2e-12, chi2 / log det(F + H) / log evidence <= 3e-13, residual dirty image 9e-13. RTOL is 100x that.
RTOL = 1e-10
# log det(H) alone: H = c^2 L + 1e-8 I has a condition number ~1e9 (the Laplacian's null space lifted by 1e-8),
# and the brute force's LU slogdet and our Cholesky differ by ~cond * eps on the smallest eigenvalues: 7e-11 measured.
LOG_DET_H_RTOL = 1e-8
LENS = LensModel(einstein_radius=0.8, axis_ratio=0.75, position_angle=35.0, centre=(0.05, -0.03), shear=(0.03, -0.02))


def rel(a, b) -> float:
    """max |a - b| / max |b| (scalars: |a - b| / |b|)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def unequal_noise_dataset(rng, K=300) -> Interferometer:
    """Simulated uv coverage with unequal real/imag noise (a noise-only sky plus a point source)."""
    uv = rng.uniform(-3e5, 3e5, (K, 2))
    sr, si = rng.uniform(0.5, 2.0, K), rng.uniform(0.5, 2.0, K)
    vis = 1.5 + rng.normal(size=K) * sr + 1j * rng.normal(size=K) * si
    return Interferometer.from_arrays(vis, sr + 1j * si, uv, name="unequal-noise simulation")



@pytest.fixture(scope="module")
def stores(tmp_path_factory, client, sma_dataset):
    """{"sma": direct store on the SMA data, "unequal": lattice store on unequal-noise data}."""
    from wtilde_dask.compute import compute

    out = tmp_path_factory.mktemp("inversion")
    grid = ImageGrid.circular((26, 26), (0.1, 0.1), 1.2)
    quiet = dict(client=client, progress=False, log=lambda *a, **k: None)
    sma = compute(sma_dataset, grid, out / "sma.zarr", block_size=160, method="direct", **quiet)
    uneq = compute(unequal_noise_dataset(np.random.default_rng(7)), grid, out / "unequal.zarr", block_size=128,
                   method="lattice", **quiet)
    return {"sma": sma, "unequal": uneq}


def mesh_and_mapping(grid, kind):
    src = LENS.ray_trace(grid.grid_arcsec)
    mesh = RectangularMesh.from_source_grid(src, (11, 11)) if kind == "rectangular" else DelaunayMesh.from_source_grid(src, 140)
    return mesh, mesh.mapping_matrix(src)


@pytest.mark.parametrize("data", ["sma", "unequal"])
@pytest.mark.parametrize("mesh_kind", ["rectangular", "delaunay"])
def test_three_paths_equal_brute_force(stores, client, data, mesh_kind):
    store = stores[data]
    grid, ds = store.grid(), store.dataset()
    mesh, T = mesh_and_mapping(grid, mesh_kind)
    H = regularization_from_mesh(mesh, coefficient=0.5)
    ref = inversion_reference(grid.grid_radians, ds.uv_wavelengths, ds.visibilities, ds.noise_map, T, H)
    for path in ("out-of-core", "memory", "fft"):
        fitter = WTildeFitter.from_store(store, path=path, client=client)
        F = fitter.curvature(T)
        D = fitter.data_vector(T)
        result = fitter.fit(T, H)
        assert rel(F, ref["curvature"]) <= RTOL, path
        assert np.allclose(F, F.T, rtol=0, atol=1e-12 * np.abs(F).max())
        assert rel(D, ref["data_vector"]) <= RTOL, path
        assert rel(result.reconstruction, ref["reconstruction"]) <= RTOL, path
        for key in ("chi_squared", "regularization_term", "log_det_curvature_reg", "log_det_regularization",
                    "noise_normalization", "log_evidence"):
            tol = LOG_DET_H_RTOL if key == "log_det_regularization" else RTOL
            assert rel(getattr(result, key), ref[key]) <= tol, (path, key)
        assert fitter.log_evidence(T, H) == pytest.approx(ref["log_evidence"], rel=RTOL)
        # residual dirty image = dirty image of the residual visibilities V - f s
        f_res = ds.visibilities - ref["model_visibilities"]
        from wtilde_dask.kernels.reference import dirty_image_reference

        d_res = dirty_image_reference(grid.grid_radians, ds.uv_wavelengths, f_res, ds.weights_real, ds.weights_imag)
        assert rel(fitter.residual_dirty_image(T, result.reconstruction), d_res) <= RTOL, path


def test_block_paths_without_client_and_triplets(stores):
    """Serial (client=None) block paths and PyAutoArray triplets give the same F as a sparse T."""
    store = stores["unequal"]
    grid = store.grid()
    _, T = mesh_and_mapping(grid, "delaunay")
    tri = triplets_from_mapping_matrix(T)
    assert tri.pix_indexes_for_sub_slim_index.shape == (grid.n_pixels, 3)
    F_fft = WTildeFitter.from_store(store, path="fft").curvature(T)
    for path in ("out-of-core", "memory", "dense"):
        fitter = WTildeFitter.from_store(store, path=path, client=None)
        assert rel(fitter.curvature(tri), F_fft) <= 1e-12, path
    T2 = mapping_matrix_from_triplets(tri.pix_indexes_for_sub_slim_index, tri.pix_sizes_for_sub_slim_index,
                                      tri.pix_weights_for_sub_slim_index, tri.n_source_pixels)
    assert (T2 != T).nnz == 0


def test_auto_path_and_lattice_kernel_constructor(stores):
    store = stores["unequal"]
    fitter = WTildeFitter.from_store(store)  # auto -> fft for a lattice store
    assert fitter.path == "fft"
    assert WTildeFitter.from_store(stores["sma"], path="auto", client=None).path == "memory"
    grid, ds = store.grid(), store.dataset()
    _, T = mesh_and_mapping(grid, "rectangular")
    from wtilde_dask.kernels.lattice import lattice_kernels

    k = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
    assert k.kernel_hankel is not None
    f2 = WTildeFitter.from_lattice_kernel(k.kernel, k.box_indices, fitter.dirty_image,
                                          visibility_sums(ds.visibilities, ds.noise_map), kernel_hankel=k.kernel_hankel)
    assert rel(f2.curvature(T), fitter.curvature(T)) <= 1e-12
    with pytest.raises(FitterError, match="path"):
        WTildeFitter.from_store(store, path="gpu")


def test_mapping_matrices_rows_sum_to_one_and_bad_input():
    grid = ImageGrid.circular((20, 20), (0.1, 0.1), 0.9)
    src = LENS.ray_trace(grid.grid_arcsec)
    for mesh in (RectangularMesh.from_source_grid(src, (8, 8)), DelaunayMesh.from_source_grid(src, 60)):
        T = mesh.mapping_matrix(src)
        assert T.shape == (grid.n_pixels, mesh.n_pixels)
        np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, atol=1e-12)
        assert np.all(T.data >= -1e-12)
        # interpolation reproduces linear functions exactly (bilinear / barycentric)
        f = lambda p: 2.0 * p[:, 0] - 0.5 * p[:, 1] + 0.3  # noqa: E731
        if isinstance(mesh, DelaunayMesh):  # hull corners are vertices: every traced point is inside
            assert np.all(mesh.triangulation.find_simplex(src) >= 0)
        np.testing.assert_allclose(T @ f(mesh.centres), f(src), atol=1e-9)
    with pytest.raises(MappingError, match="rows"):
        as_mapping_matrix(sp.identity(5, format="csr"), n_pixels=6)
    with pytest.raises(MappingError, match="pix_indexes_for_sub_slim_index"):
        mapping_matrix_from_triplets(np.array([[0, 7]]), np.array([2]), np.array([[0.5, 0.5]]), 3)


def test_lens_deflections():
    g = np.array([[0.0, 1.0], [1.0, 0.0], [0.3, -0.4]])
    sis = LensModel(einstein_radius=1.2)
    a = sis.deflections(g)
    np.testing.assert_allclose(np.hypot(a[:, 0], a[:, 1]), 1.2, rtol=1e-12)  # SIS: |alpha| = b
    # SIS: alpha = b x / |x| (radial, pointing away from the centre), each component
    np.testing.assert_allclose(a, 1.2 * g / np.hypot(g[:, :1], g[:, 1:]), rtol=1e-12, atol=0)
    # nearly round SIE -> SIS; shear alone is linear
    np.testing.assert_allclose(LensModel(1.2, 0.999999).deflections(g), a, atol=1e-5)
    sh = LensModel(0.0, shear=(0.1, 0.05)).deflections(g)
    np.testing.assert_allclose(sh[:, 1], 0.1 * g[:, 1] + 0.05 * g[:, 0])
    np.testing.assert_allclose(sh[:, 0], 0.05 * g[:, 1] - 0.1 * g[:, 0])
    # the SIE deflection is the gradient of its potential: curl-free (numerical check)
    lens = LensModel(1.0, 0.6, 20.0)
    p, h = np.array([[0.37, -0.52]]), 1e-6
    day_dx = (lens.deflections(p + [0, h])[0, 0] - lens.deflections(p - [0, h])[0, 0]) / (2 * h)
    dax_dy = (lens.deflections(p + [h, 0])[0, 1] - lens.deflections(p - [h, 0])[0, 1]) / (2 * h)
    assert day_dx == pytest.approx(dax_dy, rel=1e-6)


def test_regularization_schemes():
    mesh = RectangularMesh((5, 6), (-1, 1, -1, 1))
    for scheme in ("constant", "gradient", "curvature", "zeroth"):
        H = regularization_from_mesh(mesh, 2.0, scheme)
        assert np.allclose(H, H.T)
        assert np.isfinite(log_det_cholesky(H))
    H = regularization_matrix(mesh.edges, mesh.n_pixels, 1.0, "constant")
    # singular Laplacian + 1e-8 diagonal: constants are (almost) free
    ones = np.ones(mesh.n_pixels)
    assert ones @ H @ ones == pytest.approx(1e-8 * mesh.n_pixels)
    with pytest.raises(RegularizationError, match="scheme"):
        regularization_matrix(mesh.edges, mesh.n_pixels, 1.0, "fourth")


def test_solve_rejects_indefinite():
    from wtilde_dask.inversion.solve import InversionError, VisibilitySums

    with pytest.raises(InversionError, match="positive definite"):
        solve_inversion(-np.eye(3), np.ones(3), np.zeros((3, 3)), VisibilitySums(1.0, 0.0, 1))


def test_reconstruction_of_lensed_source_correlates(rng, artifacts_dir):
    """High-S/N simulated lensed source: the reconstruction on the mesh follows the true source."""
    grid = ImageGrid.circular((36, 36), (0.1, 0.1), 1.7)
    lens = LensModel(1.0, 0.8, 40.0, (0.0, 0.0), (0.02, 0.01))
    src = lens.ray_trace(grid.grid_arcsec)

    def source(p):  # elliptical Gaussian + a faint second blob, source plane (y, x) arcsec
        y, x = p[:, 0] - 0.05, p[:, 1] + 0.08
        return np.exp(-0.5 * ((x / 0.25) ** 2 + (y / 0.15) ** 2)) + 0.5 * np.exp(-0.5 * ((p[:, 1] - 0.3) ** 2 + (p[:, 0] + 0.25) ** 2) / 0.1**2)

    K = 1500
    r = 8e5 * np.sqrt(rng.uniform(0, 1, K))
    t = rng.uniform(0, 2 * np.pi, K)
    uv = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    image = source(src)
    phi = 2 * np.pi * (np.outer(uv[:, 0], grid.grid_radians[:, 1]) + np.outer(uv[:, 1], grid.grid_radians[:, 0]))
    model = np.exp(-1j * phi) @ image
    sigma = 1e-3 * np.abs(model).max()
    vis = model + sigma * (rng.normal(size=K) + 1j * rng.normal(size=K))
    ds = Interferometer.from_arrays(vis, np.full(K, sigma * (1 + 1j)), uv)
    from wtilde_dask.kernels.dirty import dirty_image
    from wtilde_dask.kernels.lattice import lattice_kernels

    kern = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
    d = dirty_image(grid.grid_radians, ds.uv_wavelengths, ds.visibilities, ds.weights_real, ds.weights_imag)
    fitter = WTildeFitter.from_lattice_kernel(kern.kernel, kern.box_indices, d, visibility_sums(vis, ds.noise_map))
    for mesh in (RectangularMesh.from_source_grid(src, (20, 20)), DelaunayMesh.from_source_grid(src, 400)):
        T = mesh.mapping_matrix(src)
        H = regularization_from_mesh(mesh, coefficient=1.0)
        result = fitter.fit(T, H)
        used = np.asarray(T.sum(axis=0)).ravel() > 0.5  # source pixels the image constrains
        truth = source(mesh.centres)
        corr = np.corrcoef(result.reconstruction[used], truth[used])[0, 1]
        assert corr >= 0.9, (type(mesh).__name__, corr)
        from wtilde_dask.inversion.figure import plot_inversion

        plot_inversion(artifacts_dir / f"inversion_lensed_source_{type(mesh).__name__}.png", grid=grid, mesh=mesh,
                       dirty_image=d, reconstruction=result.reconstruction,
                       residual_dirty_image=fitter.residual_dirty_image(T, result.reconstruction), result=result,
                       title=f"simulated lensed source (S/N high): correlation with the true source {corr:.3f}")


@pytest.mark.peer
def test_curvature_equals_pyautoarray_sparse_operator(stores):
    """F (FFT path and out-of-core) equals PyAutoArray's InterferometerSparseOperator for the same T and preload."""
    from autoarray.inversion.inversion.interferometer.inversion_interferometer_util import (
        InterferometerSparseOperator,
        nufft_precision_operator_from,
    )

    from wtilde_dask.kernels.lattice import lattice_box

    store = stores["sma"]  # equal real/imag noise: PyAutoArray's assumption
    grid, ds = store.grid(), store.dataset()
    assert np.array_equal(ds.noise_map.real, ds.noise_map.imag)
    box = lattice_box(grid)
    (ny, nx), (y0, x0), (sy, sx) = box.shape_box, box.origin_radians, box.pixel_scales_radians
    yy, xx = np.meshgrid(y0 - np.arange(ny) * sy, x0 + np.arange(nx) * sx, indexing="ij")
    preload = nufft_precision_operator_from(ds.noise_map.real, ds.uv_wavelengths, (ny, nx), np.stack([yy, xx], -1))
    op = InterferometerSparseOperator.from_nufft_precision_operator(preload, np.zeros(grid.n_pixels), batch_size=32)
    # autoarray 2026.10.26.1: a NumPy/scipy branch (xp=numpy, the default) and a JAX branch (xp=jax.numpy, jitted)
    import inspect

    import jax
    import jax.numpy as jnp

    branches = {"as called": lambda r, c, v, S: op.curvature_matrix_diag_from(r, c, v, S=S)}
    if "xp" in inspect.signature(op.curvature_matrix_diag_from).parameters:
        branches["jax.jit, xp=jnp"] = jax.jit(lambda r, c, v, S: op.curvature_matrix_diag_from(r, c, v, S=S, xp=jnp),
                                              static_argnums=3)
    for kind in ("rectangular", "delaunay"):
        _, T = mesh_and_mapping(grid, kind)
        coo = T.tocoo()
        flat = box.box_indices[:, 0] * nx + box.box_indices[:, 1]
        ours = {path: WTildeFitter.from_store(store, path=path).curvature(T) for path in ("fft", "out-of-core")}
        for branch, run in branches.items():
            F_peer = np.asarray(run(flat[coo.row], coo.col, coo.data, T.shape[1]))
            for path, F in ours.items():
                assert rel(F, F_peer) <= 1e-10, (kind, branch, path)


@pytest.mark.peer
def test_log_evidence_equals_pyautolens_fit(stores, client):
    """Our log evidence, on PyAutoLens's own mapping and regularization matrices, equals its FitInterferometer's
    (autolens 2026.10.26.1, its own NUFFT preload and dirty image; linear solver, as ours: no positivity
    constraint, no edge zeroing, no border relocation)."""
    import autolens as al

    store = stores["sma"]  # equal real/imag noise, square pixels: the peer's assumptions
    grid, ds = store.grid(), store.dataset()
    mask = al.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    dataset = al.Interferometer(data=al.Visibilities(ds.visibilities), noise_map=al.VisibilitiesNoiseMap(ds.noise_map),
                                uv_wavelengths=ds.uv_wavelengths, real_space_mask=mask).apply_sparse_operator()
    lens = al.Galaxy(redshift=0.5, mass=al.mp.Isothermal(centre=(0.05, -0.03), ell_comps=(0.05, 0.1), einstein_radius=0.8),
                     shear=al.mp.ExternalShear(gamma_1=0.03, gamma_2=-0.02))
    fitter = WTildeFitter.from_store(store, path="memory", client=client)
    settings = al.Settings(use_positive_only_solver=False, use_edge_zeroed_pixels=False, use_border_relocator=False)
    vertices = al.Grid2DIrregular(grid.grid_arcsec[:: max(1, grid.n_pixels // 60)])  # Delaunay: image-plane points
    for mesh in (al.mesh.RectangularUniform(shape=(12, 12)), al.mesh.Delaunay(pixels=len(vertices))):
        source = al.Galaxy(redshift=1.0, pixelization=al.Pixelization(mesh=mesh, regularization=al.reg.Constant(0.7)))
        adapt = (al.AdaptImages(galaxy_image_plane_mesh_grid_dict={source: vertices})
                 if isinstance(mesh, al.mesh.Delaunay) else None)
        fit = al.FitInterferometer(dataset=dataset, tracer=al.Tracer(galaxies=[lens, source]), settings=settings,
                                   adapt_images=adapt)
        T = np.asarray(fit.inversion.mapping_matrix)
        H = np.asarray(fit.inversion.regularization_matrix)
        assert T.shape[0] == grid.n_pixels
        ours = fitter.fit(T, H)
        assert rel(ours.log_evidence, float(fit.log_evidence)) <= RTOL, type(mesh).__name__
        assert rel(ours.chi_squared, float(fit.chi_squared)) <= RTOL, type(mesh).__name__


@pytest.mark.peer
def test_constant_regularization_equals_pyautoarray():
    from autoarray.inversion.regularization.constant import constant_regularization_matrix_from

    src = LENS.ray_trace(ImageGrid.circular((16, 16), (0.1, 0.1), 0.7).grid_arcsec)
    mesh = DelaunayMesh.from_source_grid(src, 50)
    neighbors, sizes = mesh.neighbours()
    H_peer = constant_regularization_matrix_from(1.7, neighbors, sizes)
    np.testing.assert_allclose(regularization_from_mesh(mesh, 1.7, "constant"), H_peer, rtol=0, atol=1e-14)


def test_invert_cli_writes_results_and_png(stores, tmp_path, capsys):
    from wtilde_dask.cli import main
    from wtilde_dask.store import WTildeStore

    store = stores["unequal"]
    png = tmp_path / "inv.png"
    rc = main(["invert", str(store.path), "--einstein-radius", "0.8", "--axis-ratio", "0.75", "--mesh", "delaunay",
               "--mesh-pixels", "120", "--regularization", "curvature", "--coefficient", "0.3", "--png", str(png)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "log_evidence" in out and "path fft" in out
    st = WTildeStore.open(store.path)
    s = st.read_array("inversion/reconstruction")
    attrs = st.array_attrs("inversion/reconstruction")
    assert s.shape == (120,) and np.isfinite(attrs["log_evidence"])
    assert st.attrs["inversion"]["log_evidence"] == attrs["log_evidence"]
    assert st.read_array("inversion/source_grid_arcsec").shape == (120, 2)
    assert st.read_array("inversion/residual_dirty_image").shape == (st.n_pixels,)
    assert png.stat().st_size > 10_000
    assert main(["invert", str(store.path), "--axis-ratio", "1.5", "--png", str(tmp_path / "x.png")]) == 2
    assert "axis_ratio" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["invert", str(store.path), "--mesh", "hexagonal"])


def test_block_paths_refuse_incomplete_store(tmp_path, sma_dataset):
    from wtilde_dask.store import StoreError, WTildeStore

    grid = ImageGrid.circular((12, 12), (0.1, 0.1), 0.5)
    st = WTildeStore.create(tmp_path / "empty.zarr", sma_dataset, grid, method="direct", block_size=16)
    for path in ("out-of-core", "memory"):
        with pytest.raises(StoreError, match="incomplete"):
            WTildeFitter.from_store(st, path=path, client=None)


@pytest.mark.parametrize("fft_shape", [None, "minimal", "pyautoarray", (64, 81)])
def test_lattice_fft_exact_for_any_padded_size(fft_shape):
    """The FFT apply (Toeplitz + Hankel, unequal noise) is exact for every FFT box >= (2ny-1, 2nx-1)."""
    from wtilde_dask.inversion import curvature_kernels as ck
    from wtilde_dask.kernels.lattice import lattice_kernels
    from wtilde_dask.kernels.reference import w_tilde_reference

    rng = np.random.default_rng(5)
    grid = ImageGrid.circular((21, 25), (0.1, 0.12), 1.1)
    ds = unequal_noise_dataset(rng, K=150)
    kern = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
    ny, nx = (kern.kernel.shape[0] + 1) // 2, (kern.kernel.shape[1] + 1) // 2
    shape = {"minimal": (2 * ny - 1, 2 * nx - 1), "pyautoarray": (2 * ny, 2 * nx)}.get(fft_shape, fft_shape)
    op = ck.lattice_operator(kern.kernel, kern.kernel_hankel, shape)
    W = w_tilde_reference(grid.grid_radians, ds.uv_wavelengths, ds.weights_real, ds.weights_imag)
    _, T = mesh_and_mapping(grid, "rectangular")
    assert rel(ck.curvature_lattice(T, kern.box_indices, op, batch_size=7), ck.curvature_dense(T, W)) <= 1e-12
    # one batch per thread (2 threads), F written into a given array, and W T kept for the reverse mode in
    # batches: A[b, :, j] is column used[b bs + j] of the dense W T (columns beyond n_used zero)
    out = np.full((T.shape[1], T.shape[1]), np.nan)
    bs = 4
    F, used, A = ck.curvature_lattice(T, kern.box_indices, op, batch_size=bs, workers=2, out=out, products=True,
                                      products_batches=-(-T.shape[1] // bs) + 2)
    assert F is out and rel(F, ck.curvature_dense(T, W)) <= 1e-12
    WT = W @ T.toarray()
    assert np.array_equal(used, np.flatnonzero(np.abs(T).sum(axis=0).A1 > 0))
    assert A.shape == (-(-T.shape[1] // bs) + 2, grid.n_pixels, bs)
    columns = np.transpose(A, (1, 0, 2)).reshape(grid.n_pixels, -1)  # column b bs + j = A[b, :, j]
    assert used.size % bs != 0 and not columns[:, used.size:].any()  # a partial last batch: its tail is zero
    assert rel(columns[:, :used.size], WT[:, used]) <= 1e-12
    x = rng.normal(size=grid.n_pixels)
    assert rel(ck.lattice_apply_vector(x, kern.box_indices, op), W @ x) <= 1e-12
    with pytest.raises(ValueError, match="fft_shape"):
        ck.lattice_operator(kern.kernel, None, (2 * ny - 2, 2 * nx))
