"""F = T^T W T and D = T^T d with their hand-written reverse mode (wtilde_dask.inversion.jax_curvature):
the values equal the dense formula written here (W built from the lattice kernels); jax.grad through the custom
VJP equals central differences of the dense formula; vmap (named axis, skipped batches) equals single calls;
the whole likelihood's value_and_grad equals central differences for the 7 lens parameters; value, vmap and
value_and_grad run 200 times in a row (in a child process with a time limit, so a hang fails the test).
Small sizes; real lattice stores on a real LocalCluster for the likelihood."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wtilde_dask.inversion import jax_curvature as jc
from wtilde_dask.inversion import jax_likelihood as jl
from wtilde_dask.inversion.curvature_kernels import lattice_operator

from datasets import assert_grad_equals_central_differences, rel
from test_jax_likelihood import COEFFICIENT, LENS, MESH_SHAPE, stores  # noqa: F401 (stores: the fixture)

import jax  # noqa: E402  (after wtilde_dask enabled float64)
import jax.numpy as jnp  # noqa: E402

NY, NX = 6, 7
S = 20
N_COLS = 4


FFT_WAYS = ["xla", "ducc0"]  # jnp.fft (every backend) and F by ducc0 on the host (CPU, every core)


def lattice_case(seed: int, hankel: bool, fft: str = "xla"):
    """Random even offset kernel k (and index-sum kernel h), ~80% of the box's pixels, a random mapping with
    repeated columns in a row, zero weights and 3 columns nobody maps to."""
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(2 * NY - 1, 2 * NX - 1))
    k = 0.5 * (k + k[::-1, ::-1])  # k[d] = k[-d]: W symmetric
    h = rng.normal(size=k.shape) if hankel else None
    box = np.array([(r, c) for r in range(NY) for c in range(NX) if rng.random() < 0.8])
    M = len(box)
    cols = rng.integers(0, S - 3, size=(M, N_COLS))
    cols[0, 1] = cols[0, 0]  # a repeated column within a row
    wts = rng.normal(size=(M, N_COLS))
    wts[1, :] = 0.0  # a row that maps nowhere (its weights still have a derivative)
    r, c = box.T
    W = k[r[:, None] - r[None, :] + NY - 1, c[:, None] - c[None, :] + NX - 1]  # W_ij = k[p_i - p_j] + h[p_i + p_j]
    if hankel:
        W = W + h[r[:, None] + r[None, :], c[:, None] + c[None, :]]
    op = lattice_operator(k, h)
    K_hat = np.asarray(op.K_hat)
    real_kernel = not hankel and bool(np.max(np.abs(K_hat.imag)) <= 1e-12 * np.max(np.abs(K_hat)))
    config = jl.LikelihoodConfig(mesh="mapping", n_pixels=S, shape_box=(NY, NX), fft_shape=op.fft_shape,
                                 has_hankel=hankel, batch_size=4, real_kernel=real_kernel, fft=fft)
    arrays = (jnp.asarray(op.K_hat), jnp.asarray(op.H_hat if hankel else np.zeros_like(op.K_hat)),
              jnp.asarray(box[:, 0] * NX + box[:, 1], dtype=jnp.int32))
    return cols, wts, W, arrays, config, rng


def dense_T(cols, wts):
    M, n = cols.shape
    T = np.zeros((M, S))
    np.add.at(T, (np.repeat(np.arange(M), n), cols.ravel()), wts.ravel())
    return T


def dense_F(cols, wts, W):
    T = dense_T(cols, wts)
    return T.T @ W @ T


@pytest.mark.parametrize("fft", FFT_WAYS)
@pytest.mark.parametrize("hankel", [False, True])
def test_curvature_and_data_vector_equal_the_dense_formula(hankel, fft):
    cols, wts, W, (K_hat, H_hat, box_flat), config, rng = lattice_case(1, hankel, fft)
    assert config.real_kernel == (not hankel)
    F = np.asarray(jc.curvature_from_mapping(jnp.asarray(cols, jnp.int32), jnp.asarray(wts), K_hat, H_hat, box_flat, config))
    assert rel(F, dense_F(cols, wts, W)) <= 1e-12
    assert np.all(F[S - 3:] == 0) and np.all(F[:, S - 3:] == 0)  # nobody maps to them: their batch is skipped
    d = rng.normal(size=len(cols))
    D = np.asarray(jc.data_vector(jnp.asarray(cols, jnp.int32), jnp.asarray(wts), jnp.asarray(d), S))
    assert rel(D, dense_T(cols, wts).T @ d) <= 1e-13


@pytest.mark.parametrize("fft", FFT_WAYS)
@pytest.mark.parametrize("hankel", [False, True])
def test_custom_vjp_equals_central_differences_of_the_dense_formula(hankel, fft):
    cols, wts, W, (K_hat, H_hat, box_flat), config, rng = lattice_case(2, hankel, fft)
    R = rng.normal(size=(S, S))  # not symmetric: the cotangent G = R is general
    d = rng.normal(size=len(cols))
    r_d = rng.normal(size=S)
    cols_j = jnp.asarray(cols, jnp.int32)

    def loss(w, dirty):
        F = jc.curvature_from_mapping(cols_j, w, K_hat, H_hat, box_flat, config)
        return jnp.sum(jnp.asarray(R) * F) + jnp.asarray(r_d) @ jc.data_vector(cols_j, w, dirty, S)

    def loss_dense(w, dirty):
        return float(np.sum(R * dense_F(cols, w, W)) + r_d @ (dense_T(cols, w).T @ dirty))

    g_w, g_d = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(wts), jnp.asarray(d))
    # the loss is quadratic in the weights (linear in d): central differences are exact up to round-off
    step = 1e-3
    fd_w = np.zeros_like(wts)
    for i in range(wts.shape[0]):
        for a in range(wts.shape[1]):
            up, down = wts.copy(), wts.copy()
            up[i, a] += step
            down[i, a] -= step
            fd_w[i, a] = (loss_dense(up, d) - loss_dense(down, d)) / (2 * step)
    fd_d = np.zeros_like(d)
    for i in range(len(d)):
        up, down = d.copy(), d.copy()
        up[i] += step
        down[i] -= step
        fd_d[i] = (loss_dense(wts, up) - loss_dense(wts, down)) / (2 * step)
    assert np.all(fd_w[1] != 0)  # the zero-weight row has a derivative, and the VJP gives it
    assert rel(g_w, fd_w) <= 1e-6
    assert rel(g_d, fd_d) <= 1e-6


@pytest.mark.parametrize("fft", FFT_WAYS)
def test_vmap_with_named_axis_equals_single_calls(fft):
    cols, wts, W, (K_hat, H_hat, box_flat), config, rng = lattice_case(3, True, fft)
    B = 3
    w_batch = wts[None] * (1 + 0.1 * rng.normal(size=(B,) + wts.shape))
    w_batch[2, :, :] = 0.0  # one item maps nowhere
    cfg_batch = jl.LikelihoodConfig(**{**config.__dict__, "batch_axis": "lens"})
    cols_j = jnp.asarray(cols, jnp.int32)
    R = jnp.asarray(rng.normal(size=(S, S)))

    def value(w, cfg):
        return jnp.sum(R * jc.curvature_from_mapping(cols_j, w, K_hat, H_hat, box_flat, cfg))

    batched = jax.jit(jax.vmap(jax.value_and_grad(lambda w: value(w, cfg_batch)), axis_name="lens"))(jnp.asarray(w_batch))
    for b in range(B):
        v, g = jax.value_and_grad(lambda w: value(w, config))(jnp.asarray(w_batch[b]))
        assert float(batched[0][b]) == pytest.approx(float(np.sum(np.asarray(R) * dense_F(cols, w_batch[b], W))),
                                                     rel=1e-12, abs=1e-12)
        assert abs(float(batched[0][b]) - float(v)) <= 1e-12 * max(1.0, abs(float(v)))
        # (item 2 maps nowhere: A = W T = 0, so its gradient is exactly 0)
        assert np.max(np.abs(np.asarray(batched[1][b]) - np.asarray(g))) <= 1e-12 * max(1.0, float(np.max(np.abs(g))))
    assert np.all(np.asarray(batched[1][2]) == 0) and np.any(np.asarray(batched[1][0]) != 0)


def test_likelihood_value_and_grad_equals_central_differences(stores):  # noqa: F811
    """Unequal noise (the Hankel part); the real-spectrum path of equal noise is checked above on the dense W."""
    lk = jl.JaxLikelihood.from_store(stores["unequal"], mesh="rectangular", mesh_shape=MESH_SHAPE, regularization="constant",
                                     coefficient=COEFFICIENT, batch_size=8)
    params = jl.params_from_lens(LENS)
    assert_grad_equals_central_differences(lk, params, value_rel=1e-13)


REPEAT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from wtilde_dask.inversion import jax_likelihood as jl
    lk = jl.JaxLikelihood.from_store(sys.argv[1], mesh="rectangular", mesh_shape=(9, 9), coefficient=0.5, batch_size=8,
                                     fft=sys.argv[2])
    assert lk.config.fft == sys.argv[2]
    p = np.array([0.8, 0.75, 35.0, 0.05, -0.03, 0.03, -0.02])
    batch = p[None] * (1 + 0.01 * np.random.default_rng(0).normal(size=(4, 7)))
    first = (float(lk.log_evidence(p)), np.asarray(lk.log_evidence_batch(batch)), np.asarray(lk.value_and_grad(p)[1]))
    for _ in range(200):
        v = float(lk.log_evidence(p))
        b = np.asarray(lk.log_evidence_batch(batch))
        g = np.asarray(lk.value_and_grad(p)[1])
        assert v == first[0] and np.array_equal(b, first[1]) and np.array_equal(g, first[2])
    print("RAN", 200, v, float(b[0]), float(g[0]))
""")


@pytest.mark.parametrize("fft", FFT_WAYS)
def test_value_vmap_and_value_and_grad_200_times_in_a_row(stores, fft):  # noqa: F811
    """A child process (so that a hang is a failure, after 600 s, not a stuck test run): 200 rounds of value,
    vmap and value_and_grad on the same inputs give the same numbers each time, with either FFT way."""
    proc = subprocess.run([sys.executable, "-c", REPEAT_SCRIPT, str(stores["unequal"].path), fft], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("RAN 200 ")
    lk = jl.JaxLikelihood.from_store(stores["unequal"], mesh="rectangular", mesh_shape=MESH_SHAPE,
                                     coefficient=COEFFICIENT, batch_size=8, fft="xla")
    assert float(line.split()[2]) == pytest.approx(float(lk.log_evidence(jl.params_from_lens(LENS))), rel=1e-12)


THREADS_SCRIPT = textwrap.dedent("""
    import sys, threading
    import numpy as np
    from wtilde_dask.inversion import jax_likelihood as jl
    lk = jl.JaxLikelihood.from_store(sys.argv[1], mesh="rectangular", mesh_shape=(12, 12), coefficient=0.5,
                                     batch_size=64, fft=sys.argv[2])
    p = np.array([0.8, 0.75, 35.0, 0.05, -0.03, 0.03, -0.02])
    batch = p[None] * (1 + 0.01 * np.random.default_rng(0).normal(size=(4, 7)))
    first = np.asarray(lk.log_evidence_batch(batch))
    errors = []

    def work():
        try:
            for _ in range(40):
                assert np.array_equal(np.asarray(lk.log_evidence_batch(batch)), first)
                assert float(lk.log_evidence(p)) == float(lk.log_evidence(p))
        except Exception as err:  # noqa: BLE001
            errors.append(repr(err))

    threads = [threading.Thread(target=work) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    print("RAN", 3 * 40, float(first[0]))
""")


@pytest.mark.parametrize("fft", FFT_WAYS)
def test_likelihood_called_from_several_threads_at_once_never_hangs(stores, fft):  # noqa: F811
    """Three threads of one process evaluating at once (as the tasks of a Dask worker with several threads do):
    XLA:CPU's FFTs, run side by side, once waited on each other for ever here; the likelihood now runs one
    execution at a time per process on a CPU (either FFT way). A child process, so that a hang is a failure
    after the timeout."""
    proc = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(stores["unequal"].path), fft],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("RAN 120 ")
    # the threads' value is the single-threaded one of the same lens (batch item 0, as drawn in the child)
    p = np.array([0.8, 0.75, 35.0, 0.05, -0.03, 0.03, -0.02])
    item0 = (p[None] * (1 + 0.01 * np.random.default_rng(0).normal(size=(4, 7))))[0]
    lk = jl.JaxLikelihood.from_store(stores["unequal"], mesh="rectangular", mesh_shape=(12, 12), coefficient=0.5,
                                     fft="xla")
    assert float(line.split()[2]) == pytest.approx(float(lk.log_evidence(item0)), rel=1e-12)


def test_fft_setting_auto_picks_ducc0_on_cpu_and_names_a_bad_value(stores):  # noqa: F811
    import dask.config

    from wtilde_dask.inversion import jax_fft

    assert jax.default_backend() == "cpu"
    assert jax_fft.resolve_fft() == "ducc0"  # the packaged default (auto) on a CPU backend
    assert jl.JaxLikelihood.from_store(stores["equal"], mesh_shape=MESH_SHAPE).config.fft == "ducc0"
    with dask.config.set({"wtilde.likelihood-fft": "xla"}):
        assert jax_fft.resolve_fft() == "xla"
        assert jl.JaxLikelihood.from_store(stores["equal"], mesh_shape=MESH_SHAPE).config.fft == "xla"
    with pytest.raises(ValueError, match="likelihood-fft: unknown 'fftw'"):
        jax_fft.resolve_fft("fftw")
    # a batch of lenses: vmap by default with F on the host (one host call, the lenses side by side), lax.map
    # with XLA's FFTs on a CPU; the way asked for otherwise; an unknown way named
    assert jl.resolve_batch() == "vmap" and jl.resolve_batch(fft="xla") == "map"
    assert jl.resolve_batch("vmap", fft="xla") == "vmap" and jl.resolve_batch("map") == "map"
    assert jl.JaxLikelihood.from_store(stores["equal"], mesh_shape=MESH_SHAPE).batch == "vmap"
    with pytest.raises(ValueError, match="likelihood-batch: unknown 'pmap'"):
        jl.resolve_batch("pmap")
    values = {fft: float(jl.JaxLikelihood.from_store(stores["unequal"], mesh_shape=MESH_SHAPE, coefficient=COEFFICIENT,
                                                     fft=fft).log_evidence(jl.params_from_lens(LENS)))
              for fft in FFT_WAYS}
    assert values["ducc0"] == pytest.approx(values["xla"], rel=1e-12)
