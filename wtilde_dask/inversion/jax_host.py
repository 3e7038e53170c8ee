"""NumPy functions that jitted JAX code calls on a CPU, as JAX primitives (JAXbind: each writes its results
straight into XLA's own output buffers, no copy; under ``vmap`` called once per item; never differentiated
themselves: their callers carry hand-written reverse modes).

* :func:`curvature`: ``F = T^T W T`` (and, for the reverse mode, ``W T``) by
  :func:`~wtilde_dask.inversion.curvature_kernels.curvature_lattice` (ducc0, one batch of columns per core), the
  ``ducc0`` way of :mod:`~wtilde_dask.inversion.jax_curvature`;
* :func:`weights_cotangent`: the reverse mode of that F with respect to T's weights from the kept ``W T``
  (:func:`~wtilde_dask.inversion.cotangent_kernels.weights_cotangent`: compiled, every core);
* :func:`log_evidence_pieces`: the log evidence's pieces from a mapping (F, the Cholesky solve), and with
  ``cotangents`` every derivative in the same call
  (:func:`~wtilde_dask.inversion.cotangent_kernels.log_evidence_pieces`: ``W T`` stays in this process's reused
  buffer instead of travelling to XLA as a 100 MB residual);
* :func:`cholesky_inverse`: ``A^-1`` from the lower Cholesky factor of A by LAPACK's ``potri``, for the reverse
  mode of :mod:`~wtilde_dask.inversion.jax_evidence`.

Integers travel as float64 (exact below 2**53): JAXbind passes and returns floating-point and complex arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax.numpy as jnp  # noqa: E402

from wtilde_dask.inversion import curvature_kernels  # noqa: E402
from wtilde_dask.inversion.mapping import mapping_matrix_from_columns  # noqa: E402

_PRIMITIVES: dict = {}


def _primitive(f, abstract, n_args: int):
    """The JAXbind primitive of ``f(out, args, kwargs_dump)`` (made once per function), every argument fixed."""
    if f not in _PRIMITIVES:
        from jaxbind import get_nonlinear_call

        _PRIMITIVES[f] = get_nonlinear_call(f, (None, None), abstract, None, first_n_args_fixed=n_args)
    return _PRIMITIVES[f]


def _curvature_host(out, args, kwargs_dump):
    """``out``: (F,) or (F, W T batches, order, n_used); ``args``: (cols, wts, K_hat, H_hat, box_flat)."""
    from jaxbind import load_kwargs

    kw = load_kwargs(kwargs_dump)
    cols, wts, K_hat, H_hat, box_flat = args
    S = kw["n_source_pixels"]
    T = mapping_matrix_from_columns(cols, wts, S)
    box, op = _lattice(K_hat, H_hat, box_flat, kw)
    run = dict(batch_size=kw["batch_size"], workers=kw["threads"])
    if not kw["keep_wt"]:
        curvature_kernels.curvature_lattice(T, box, op, out=out[0], **run)
        return
    F, A, order, n_used = out
    _, used, _ = curvature_kernels.curvature_lattice(T, box, op, out=F, products=True, products_out=A, **run)
    order[:used.size] = used
    order[used.size:] = np.setdiff1d(np.arange(S), used, assume_unique=True)
    n_used[...] = used.size


def _curvature_abstract(cols, wts, K_hat, H_hat, box_flat, *, n_source_pixels, batch_size, keep_wt, **_):
    S, M = n_source_pixels, cols.shape[0]
    shapes = [((S, S), jnp.float64)]
    if keep_wt:
        shapes += [((-(-S // batch_size), M, batch_size), jnp.float64), ((S,), jnp.float64), ((), jnp.float64)]
    return tuple(shapes)


def curvature(cols, wts, K_hat, H_hat, box_flat, config, keep_wt: bool):
    """``jax_curvature._forward`` on the host: (F (S, S), and with ``keep_wt`` A = W T in batches (n_batches, M,
    bs) of the used-first column order, order (S,) int32, n_used int32; else three None). ``config``: the static
    :class:`~wtilde_dask.inversion.jax_likelihood.LikelihoodConfig` (box, FFT box, kernel kind, batch size,
    ``fft_threads``: 0 = every core)."""
    S = config.n_source_pixels
    bs = min(int(config.batch_size), S)
    out = _primitive(_curvature_host, _curvature_abstract, 5)(
        cols.astype(jnp.float64), wts, K_hat, H_hat, box_flat.astype(jnp.float64), n_source_pixels=S,
        batch_size=bs, keep_wt=bool(keep_wt), shape_box=tuple(int(n) for n in config.shape_box),
        fft_shape=tuple(int(n) for n in config.fft_shape), real_kernel=bool(config.real_kernel),
        has_hankel=bool(config.has_hankel), threads=int(config.fft_threads))
    if not keep_wt:
        return out[0], None, None, None
    F, A, order, n_used = out
    return F, A, order.astype(jnp.int32), n_used.astype(jnp.int32)


def _weights_cotangent_host(out, args, kwargs_dump):
    """``out``: (dL/dwts (M, n),); ``args``: (A batches, order, n_used, cols, G)."""
    from jaxbind import load_kwargs

    from wtilde_dask.inversion import cotangent_kernels

    A, order, n_used, cols, G = args
    used = np.asarray(order[:int(n_used)]).astype(np.int64)
    cotangent_kernels.weights_cotangent(A, used, np.asarray(cols).astype(np.int64), G,
                                        workers=load_kwargs(kwargs_dump)["threads"], out=out[0])


def weights_cotangent(A, order, n_used, cols, G, config):
    """(M, n) ``dL/dwts`` of F from the forward's A (n_batches, M, bs) in the used-first ``order`` (S,) with
    ``n_used`` columns, the mapping's ``cols`` (M, n) and the cotangent G (S, S) of F (``config.fft_threads``
    threads, 0 = every core). The ``ducc0`` way's reverse mode (:mod:`~wtilde_dask.inversion.jax_curvature`)."""
    return _primitive(_weights_cotangent_host, lambda A, order, n_used, cols, G, **_: ((cols.shape, jnp.float64),),
                      5)(A, order.astype(jnp.float64), n_used.astype(jnp.float64), cols.astype(jnp.float64), G,
                         threads=int(config.fft_threads))[0]


def _lattice(K_hat, H_hat, box_flat, kw):
    """(box indices (M, 2), LatticeOperator) from the primitive's arrays and keywords."""
    nx = kw["shape_box"][1]
    K = np.ascontiguousarray(np.real(K_hat)) if kw["real_kernel"] else np.asarray(K_hat)
    op = curvature_kernels.LatticeOperator(K, np.asarray(H_hat) if kw["has_hankel"] else None,
                                           tuple(kw["shape_box"]), tuple(kw["fft_shape"]))
    box_flat = np.asarray(box_flat).astype(np.int64)
    return np.stack((box_flat // nx, box_flat % nx), axis=1), op


def _evidence_host(out, args, kwargs_dump):
    """``out``: (pieces (5,), s (S,)[, d/dwts (M, n), G (S, S)]); ``args``: (cols, wts, H, d, K_hat, H_hat,
    box_flat); with the keyword ``batched`` (one flag per argument) each output and each flagged argument has a
    leading axis of the batch's items (:func:`log_evidence_pieces` under ``vmap``)."""
    from jaxbind import load_kwargs

    from wtilde_dask.inversion import cotangent_kernels

    kw = load_kwargs(kwargs_dump)
    cols, wts, H, dirty_image, K_hat, H_hat, box_flat = args
    box, op = _lattice(K_hat, H_hat, box_flat, kw)

    def evaluate(item: int | None, workers: int) -> None:
        def arg(a, k):
            return a if item is None or not kw["batched"][k] else a[item]

        results = cotangent_kernels.log_evidence_pieces(
            np.asarray(arg(cols, 0)).astype(np.int64), arg(wts, 1), box, op, arg(H, 2), arg(dirty_image, 3),
            cotangents=kw["cotangents"], log_det_h=kw["log_det_h"], batch_size=kw["batch_size"], workers=workers)
        for o, r in zip(out, results):
            (o if item is None else o[item])[...] = r

    if kw["batched"] is None:
        evaluate(None, kw["threads"])
        return
    # a batch: one item per thread, each on one core from start to end (no thread waits for another inside an
    # item, and one item's Cholesky runs beside another's transforms); the last items, fewer than the threads,
    # one after the other on every thread
    n_items = out[0].shape[0]
    n_threads = curvature_kernels.thread_count(kw["threads"])
    side_by_side = n_items - n_items % n_threads if n_threads > 1 else 0
    if side_by_side:
        list(curvature_kernels.thread_pool(n_threads).map(lambda item: evaluate(item, 1), range(side_by_side)))
    for item in range(side_by_side, n_items):
        evaluate(item, kw["threads"])


def _evidence_abstract(cols, wts, H, *_, cotangents, batched, **__):
    S = H.shape[-1]
    M, n = cols.shape[-2:]
    lead = () if batched is None else (next(a.shape[0] for a, b in zip((cols, wts, H) + _, batched) if b),)
    shapes = (((5,), jnp.float64), ((S,), jnp.float64)) + ((((M, n), jnp.float64), ((S, S), jnp.float64))
                                                             if cotangents else ())
    return tuple((lead + shape, dtype) for shape, dtype in shapes)


def _evidence_kwargs(config, cotangents: bool, log_det_h: bool, S: int, batched) -> dict:
    return dict(cotangents=bool(cotangents), log_det_h=bool(log_det_h), batch_size=min(int(config.batch_size), S),
                batched=batched, shape_box=tuple(int(n) for n in config.shape_box), fft_shape=tuple(int(n) for n in config.fft_shape),
                real_kernel=bool(config.real_kernel), has_hankel=bool(config.has_hankel),
                threads=int(config.fft_threads))


@functools.cache
def _evidence_call(config, cotangents: bool, log_det_h: bool):
    """``f(cols, wts, H, dirty_image, K_hat, H_hat, box_flat)`` -> the outputs of :func:`_evidence_host`, whose
    ``vmap`` is one host call for the whole batch (its items side by side on the host's threads) instead of
    JAXbind's one call per item."""
    from jax.custom_batching import custom_vmap

    def call(batched, *args):
        S = args[2].shape[-1]
        kwargs = _evidence_kwargs(config, cotangents, log_det_h, S, batched)
        return _primitive(_evidence_host, _evidence_abstract, 7)(*args, **kwargs)

    @custom_vmap
    def evidence(cols, wts, H, dirty_image, K_hat, H_hat, box_flat):
        return call(None, cols, wts, H, dirty_image, K_hat, H_hat, box_flat)

    @evidence.def_vmap
    def evidence_batch(axis_size, in_batched, *args):
        outs = call(tuple(bool(b) for b in in_batched), *args)
        return outs, [True] * len(outs)

    return evidence


def log_evidence_pieces(cols, wts, H, dirty_image, K_hat, H_hat, box_flat, config, cotangents: bool,
                        log_det_h: bool = False):
    """(pieces (5,) = (s.D, s.F.s, s.H.s, ln det(F + H), ln det H or 0), s (S,)) on the host for the mapping
    ``cols`` / ``wts`` (M, n), H (S, S) and the dirty image (M,); with ``cotangents`` also (d log_evidence/d wts
    (M, n), G (S, S)); with ``log_det_h`` ln det H too and G its derivative in H
    (:func:`~wtilde_dask.inversion.cotangent_kernels.log_evidence_pieces`). Under ``vmap``: one host call for
    the batch, its items side by side (:func:`_evidence_call`)."""
    return tuple(_evidence_call(config, bool(cotangents), bool(log_det_h))(
        cols.astype(jnp.float64), wts, H, dirty_image, K_hat, H_hat, box_flat.astype(jnp.float64)))


def _cholesky_inverse_host(out, args, kwargs_dump):
    """``out[0] = A^-1`` from the C-ordered lower factor L (= the Fortran-ordered upper factor L^T: no copy into
    LAPACK's layout); NaN where ``potri`` finds a zero on the diagonal (what two triangular solves give there)."""
    from wtilde_dask.inversion import cotangent_kernels

    if cotangent_kernels.inverse_from_upper_factor(np.asarray(args[0]).T, out=out[0]) is None:
        out[0][...] = np.nan


def cholesky_inverse(cholesky_factor):
    """(S, S) float64 ``A^-1`` from the lower Cholesky factor of the symmetric positive-definite A (LAPACK
    ``potri``: a third of the work of two triangular solves against the identity). CPU only."""
    return _primitive(_cholesky_inverse_host, lambda L, **_: ((L.shape, L.dtype),), 1)(cholesky_factor)[0]
