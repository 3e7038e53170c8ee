"""How F's FFTs run inside the jitted likelihood: XLA's FFT or ducc0 on the host, and one execution at a time.

Two ways, the same numbers (round-off):

* ``"xla"``: :func:`xla_lattice_apply`, ``jnp.fft`` on batches of box images inside the compiled function (runs
  on any JAX backend: what a GPU runs; on a CPU its speed depends on the jaxlib release);
* ``"ducc0"``: the whole ``F = T^T W T`` on the host
  (:func:`wtilde_dask.inversion.curvature_kernels.curvature_lattice`: ducc0's transforms, one batch of columns
  per core on ``wtilde.fft-threads`` threads, 0 = every core this process may use; on a Dask worker its own
  thread count, :func:`wtilde_dask.inversion.jax_batch.worker_likelihood`), a JAX primitive
  (:mod:`wtilde_dask.inversion.jax_host`: written straight into XLA's output buffers); CPU only. Its speed does
  not depend on the jaxlib release.

:func:`resolve_fft` reads the ``dask.config`` key ``wtilde.likelihood-fft``: ``auto`` (the default: ducc0 on a
CPU backend, XLA elsewhere), ``xla`` or ``ducc0``.

:func:`one_at_a_time`: XLA:CPU runs an FFT on its intra-op thread pool and waits there for the parts it queued;
two FFTs running at the same time in one process (two threads evaluating the likelihood at once, as the tasks of
a Dask worker with several threads do) can each wait for parts queued behind the other's, for ever (seen at the
ALMA preset on 2 cores). On a CPU backend the likelihood's executions therefore run one at a time per process,
each still on every core.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

FFT_WAYS = ("xla", "ducc0")


def xla_lattice_apply(images, K_hat, H_hat, shape_box, fft_shape, has_hankel: bool, real_kernel: bool = False):
    """W applied to (nb, ny, nx) box images: ``out[p] = sum_q k[p - q] x[q] + h[p + q] x[q]``.

    Zero-padded (Ny, Nx) FFTs (rfft along x on the ny rows, full along y), the Hankel part as
    ``conj(X) H_hat`` (the spectrum of the index-reversed image), as ``curvature_kernels.lattice_apply``.
    The y transforms run along the last axis (one explicit transpose each way: XLA's FFT works on the
    minor axes), the inverse keeps only the ny output rows. ``real_kernel`` (static): the offset kernel is
    even (``k[d] = k[-d]``, W symmetric), so ``K_hat`` is real and the product is real x complex
    (only without a Hankel part; the builder checks the imaginary part is round-off).
    """
    ny, nx = shape_box
    Ny, Nx = fft_shape
    X = jnp.fft.rfft(images, n=Nx, axis=2)  # (nb, ny, Nx//2+1)
    X = jnp.fft.fft(jnp.swapaxes(X, 1, 2), n=Ny, axis=2)  # (nb, Nx//2+1, Ny)
    if has_hankel:
        Y = X * K_hat.T[None] + jnp.conj(X) * H_hat.T[None]
    else:
        Y = X * (jnp.real(K_hat).T if real_kernel else K_hat.T)[None]
    Y = jnp.swapaxes(jnp.fft.ifft(Y, axis=2)[:, :, :ny], 1, 2)  # (nb, ny, Nx//2+1)
    return jnp.fft.irfft(Y, n=Nx, axis=2)[:, :, :nx]


_CPU_EXECUTIONS = threading.RLock()  # one jitted likelihood execution at a time per process on a CPU backend


@functools.cache
def _blas_controller():
    """The threadpoolctl controller of the BLAS libraries loaded (scipy's included: XLA's CPU LAPACK calls use it)."""
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """A context in which the BLAS libraries (OpenBLAS behind XLA's CPU Cholesky) run on one thread: their idle
    threads otherwise spin on the cores that the host FFT threads of the next call need (measured at the ALMA
    preset on 2 cores: 0.257 s per evaluation with 2 BLAS threads, 0.231 s with one)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def one_at_a_time(jitted, one_blas_thread: bool = False):
    """``jitted`` (a jitted function) whose calls run to completion under the process's CPU execution lock when
    JAX's default backend is the CPU (module doc), with ``one_blas_thread`` under :func:`_one_blas_thread`;
    called as it is on other backends or when an argument is being traced (inside the caller's own ``jit`` /
    ``grad``, where nothing executes)."""

    @functools.wraps(jitted)
    def call(*args, **kwargs):
        if jax.default_backend() != "cpu" or any(isinstance(a, jax.core.Tracer)
                                                 for a in jax.tree.leaves((args, kwargs))):
            return jitted(*args, **kwargs)
        with _CPU_EXECUTIONS:  # the BLAS limit is set (threadpoolctl sets it on creation) only once the lock is held
            with _one_blas_thread() if one_blas_thread else contextlib.nullcontext():
                return jax.block_until_ready(jitted(*args, **kwargs))

    return call


def resolve_fft(fft: str | None = None) -> str:
    """The FFT way to use: ``fft`` or the ``wtilde.likelihood-fft`` setting; ``"auto"``: ducc0 on a CPU
    backend, else XLA. Raises ValueError naming an unknown value."""
    from wtilde_dask import config

    way = config.get("likelihood-fft") if fft is None else fft
    if way not in ("auto",) + FFT_WAYS:
        raise ValueError(f"likelihood-fft: unknown {way!r}, expected auto, xla or ducc0")
    if way != "auto":
        return way
    return "ducc0" if jax.default_backend() == "cpu" else "xla"


__all__ = ["FFT_WAYS", "xla_lattice_apply", "one_at_a_time", "resolve_fft"]
