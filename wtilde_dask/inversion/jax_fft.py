"""W applied to a batch of box images by FFT inside a jitted JAX function: XLA's FFT or ducc0's.

``out[p] = sum_q k[p - q] x[q] + h[p + q] x[q]`` on the (ny, nx) box, zero-padded to the (Ny, Nx) FFT box
(:class:`~wtilde_dask.inversion.curvature_kernels.LatticeOperator`). Two ways, the same numbers (round-off):

* ``"xla"``: ``jnp.fft`` (runs on any JAX backend; on CPU XLA runs ducc0's transforms on its intra-op thread
  pool, and the speed depends on the jaxlib release);
* ``"ducc0"``: a JAX primitive (bound by JAXbind, ``jaxbind.get_linear_call``) whose CPU implementation is
  :func:`wtilde_dask.inversion.curvature_kernels.lattice_apply`: ducc0's transforms on ``nthreads`` threads
  (every core by default), in reused per-thread buffers. It is linear in the images and W is symmetric, so its
  transpose is itself (reverse mode); under ``vmap`` the batch axis is folded into the image batch.
  CPU only.

:func:`resolve_fft` reads the ``dask.config`` key ``wtilde.likelihood-fft``: ``xla`` (the default: at the ALMA
preset on a 2-core CPU the whole evaluation ran faster with XLA's FFT than with ducc0 called from inside the
jitted function, whose threads then ran at about half their speed outside it), ``ducc0``, or ``auto`` (ducc0 on a
CPU backend when JAXbind imports, else XLA); ``wtilde.fft-threads``: ducc0's threads, 0 = every core this process
may use.

:func:`one_at_a_time`: XLA:CPU runs an FFT on its intra-op thread pool and waits there for the parts it queued;
two FFTs running at the same time in one process (two threads evaluating the likelihood at once, as the tasks of
a Dask worker with several threads do) can each wait for parts queued behind the other's, for ever (seen at the
ALMA preset on 2 cores). On a CPU backend the likelihood's executions therefore run one at a time per process,
each still on every thread of the pool.
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

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


def one_at_a_time(jitted):
    """``jitted`` (a jitted function) whose calls run to completion under the process's CPU execution lock when
    JAX's default backend is the CPU (module doc); called as it is on other backends or when an argument is being
    traced (inside the caller's own ``jit`` / ``grad``, where nothing executes)."""

    @functools.wraps(jitted)
    def call(*args, **kwargs):
        if jax.default_backend() != "cpu" or any(isinstance(a, jax.core.Tracer)
                                                 for a in jax.tree.leaves((args, kwargs))):
            return jitted(*args, **kwargs)
        with _CPU_EXECUTIONS:
            return jax.block_until_ready(jitted(*args, **kwargs))

    return call


def _threads(requested: int) -> int:
    if requested and requested > 0:
        return int(requested)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _ducc_apply(out, args, kwargs_dump):
    """JAXbind's CPU callback: ``out[0][...] = W images`` (batch axes of a vmap moved to the front)."""
    from jaxbind import load_kwargs

    from wtilde_dask.inversion.curvature_kernels import LatticeOperator, lattice_apply as numpy_lattice_apply

    K_hat, H_hat, images = args
    kw = load_kwargs(kwargs_dump)
    ny, nx = kw["shape_box"]
    batch_axes = tuple((kw.get("batch_axes") or ((), (), ()))[2])
    front = tuple(range(len(batch_axes)))
    x = np.moveaxis(images, batch_axes, front) if batch_axes else images
    result = np.moveaxis(out[0], batch_axes, front) if batch_axes else out[0]
    lead = x.shape[:-2]
    op = LatticeOperator(K_hat.real if kw["real_kernel"] else K_hat, H_hat if kw["has_hankel"] else None,
                         (ny, nx), tuple(kw["fft_shape"]))
    y = numpy_lattice_apply(x.reshape((-1, ny, nx)), op, workers=kw["nthreads"])
    result[...] = y.reshape(lead + (ny, nx))


def _ducc_abstract(K_hat, H_hat, images, **kwargs):
    batch_axes = (kwargs.get("batch_axes") or ((), (), ()))[2]
    return ((images.shape, images.dtype, batch_axes[-1] if batch_axes else ()),)


_DUCC_PRIMITIVE = None


def _ducc_primitive():
    global _DUCC_PRIMITIVE
    if _DUCC_PRIMITIVE is None:
        from jaxbind import get_linear_call

        _DUCC_PRIMITIVE = get_linear_call(_ducc_apply, _ducc_apply, _ducc_abstract, _ducc_abstract,
                                          first_n_args_fixed=2, func_can_batch=True)
    return _DUCC_PRIMITIVE


def ducc_lattice_apply(images, K_hat, H_hat, shape_box, fft_shape, has_hankel: bool, real_kernel: bool = False,
                       nthreads: int = 0):
    """:func:`xla_lattice_apply` by ducc0 on ``nthreads`` CPU threads (0: every core this process may use)."""
    return _ducc_primitive()(K_hat, H_hat, images, shape_box=tuple(int(n) for n in shape_box),
                             fft_shape=tuple(int(n) for n in fft_shape), has_hankel=bool(has_hankel),
                             real_kernel=bool(real_kernel), nthreads=_threads(nthreads))[0]


def lattice_apply(images, K_hat, H_hat, shape_box, fft_shape, has_hankel: bool, real_kernel: bool = False,
                  fft: str = "xla", nthreads: int = 0):
    """W on (nb, ny, nx) box images, by ``fft`` ("xla" or "ducc0", module doc)."""
    if fft == "ducc0":
        return ducc_lattice_apply(images, K_hat, H_hat, shape_box, fft_shape, has_hankel, real_kernel, nthreads)
    return xla_lattice_apply(images, K_hat, H_hat, shape_box, fft_shape, has_hankel, real_kernel)


def resolve_fft(fft: str | None = None) -> str:
    """The FFT way to use: ``fft`` or the ``wtilde.likelihood-fft`` setting; ``"auto"``: ducc0 on a CPU
    backend when JAXbind imports, else XLA. Raises ValueError naming an unknown value."""
    from wtilde_dask import config

    way = config.get("likelihood-fft") if fft is None else fft
    if way not in ("auto",) + FFT_WAYS:
        raise ValueError(f"likelihood-fft: unknown {way!r}, expected auto, xla or ducc0")
    if way != "auto":
        return way
    if jax.default_backend() != "cpu":
        return "xla"
    try:
        import jaxbind  # noqa: F401
    except ImportError:  # pragma: no cover - jaxbind is a dependency
        return "xla"
    return "ducc0"


__all__ = ["FFT_WAYS", "lattice_apply", "xla_lattice_apply", "ducc_lattice_apply", "resolve_fft"]
