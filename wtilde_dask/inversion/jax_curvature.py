"""``F = T^T W T`` and ``D = T^T d`` in JAX with hand-written reverse-mode derivatives (``jax.custom_vjp``).

T (M, S) is given by its per-row columns ``cols`` (M, n) int and weights ``wts`` (M, n):
``T[i, cols[i, a]] += wts[i, a]``. W (M, M) is the symmetric W-tilde matrix of the image pixels,
``W_ij = k[r_i - r_j, c_i - c_j] + h[r_i + r_j, c_i + c_j]``, applied by FFT on the zero-padded lattice box
(:func:`lattice_apply`).

Forward, two ways (``config.fft``): ``"ducc0"`` (the CPU default) computes F on the host
(:func:`wtilde_dask.inversion.jax_host.curvature`: ducc0, one batch of columns per core); ``"xla"`` (any
backend) inside the compiled function: the used columns of T (renumbered first) are scattered onto the box in
batches of ``config.batch_size``, W is applied by ``jnp.fft``, ``A = W T`` is gathered back at the M image pixels
and projected with ``T^T`` (segment sums); batches with no used column skip their FFTs (``lax.cond``; under
``vmap`` with the named axis ``config.batch_axis`` a batch is skipped when it is empty for every item,
``lax.pmax``). Both keep A in the same layout for the reverse mode.

Reverse mode: for a cotangent ``G`` (S, S) of F (a scalar L),

    dL = tr(G^T dF),  dF = dT^T A + A^T dT  (W = W^T)  =>  dL/dT = A (G + G^T),

and T depends on ``wts`` only at its nonzeros, so

    dL/dwts[i, a] = sum_s A[i, s] (G + G^T)[s, cols[i, a]],

O(nnz(T) S) operations on the forward's A (kept as the residual, (M, S) float64, in its FFT batches): no FFT in
the backward pass (the ``ducc0`` way: a compiled loop on every core,
:mod:`~wtilde_dask.inversion.cotangent_kernels`; ``xla``: :func:`weights_cotangent`).
For D: ``dL/dwts[i, a] = g[cols[i, a]] d[i]``. The integer ``cols``, the box indices and the kernel spectra get
no cotangent (zero): derivatives flow through the weights only.
"""

from __future__ import annotations

from functools import partial

from wtilde_dask.kernels import enable_x64

enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from wtilde_dask.inversion import jax_fft, jax_host  # noqa: E402

lattice_apply = jax_fft.xla_lattice_apply  # W on (nb, ny, nx) box images by jnp.fft (re-exported)


def _forward(cols, wts, K_hat, H_hat, box_flat, config, keep_wt: bool):
    """(F (S, S) symmetrised, A = W T (n_batches, M, bs) in the used-first column order or None, order (S,), n_used)."""
    if config.fft == "ducc0":
        return jax_host.curvature(cols, wts, K_hat, H_hat, box_flat, config, keep_wt)
    ny, nx = config.shape_box
    S = config.n_source_pixels
    bs = min(int(config.batch_size), S)
    n_batches = -(-S // bs)
    M, P = cols.shape
    pix = jnp.broadcast_to(box_flat[:, None], (M, P)).ravel()
    rows = jnp.broadcast_to(jnp.arange(M)[:, None], (M, P)).ravel()
    wflat = wts.ravel()
    used = jax.ops.segment_sum((wflat != 0).astype(jnp.int32), cols.ravel(), num_segments=S) > 0
    order = jnp.argsort(jnp.logical_not(used), stable=True)  # used columns first, each group in index order
    position = jnp.zeros(S, dtype=jnp.int32).at[order].set(jnp.arange(S, dtype=jnp.int32))
    n_used = jnp.sum(used.astype(jnp.int32))
    if config.batch_axis is not None:  # under vmap: skip a batch when it is empty for every item of the batch
        n_used = jax.lax.pmax(n_used, config.batch_axis)
    cflat = position[cols.ravel()]

    # (no jax.checkpoint here: with it, repeated value_and_grad calls intermittently never returned on
    # jax 0.11 CPU)
    def one_batch(start):
        def apply(_):
            local = cflat - start
            ok = (local >= 0) & (local < bs)
            imgs = jnp.zeros((bs, ny * nx), dtype=wflat.dtype).at[jnp.where(ok, local, bs), pix].add(wflat, mode="drop")
            out = lattice_apply(imgs.reshape(bs, ny, nx), K_hat, H_hat, config.shape_box, config.fft_shape,
                                config.has_hankel, config.real_kernel).reshape(bs, ny * nx)
            A = out[:, box_flat].T  # (M, bs) = W T[:, batch]
            block = jax.ops.segment_sum(wflat[:, None] * A[rows], cflat, num_segments=S)  # (S, bs)
            return (block, A) if keep_wt else block

        def skip(_):
            block = jnp.zeros((S, bs), dtype=wflat.dtype)
            return (block, jnp.zeros((M, bs), dtype=wflat.dtype)) if keep_wt else block

        return jax.lax.cond(start < n_used, apply, skip, None)

    out = jax.lax.map(one_batch, jnp.arange(n_batches) * bs)
    blocks, A = out if keep_wt else (out, None)
    F = jnp.transpose(blocks, (1, 0, 2)).reshape(S, n_batches * bs)[:, :S]
    F = F[position][:, position]  # back to the mesh's column order
    F = 0.5 * (F + F.T)
    return F, A, order, n_used  # A (n_batches, M, bs): batch b column j is column order[b bs + j] of W T


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def curvature_from_mapping(cols, wts, K_hat, H_hat, box_flat, config):
    """(S, S) ``F = T^T W T`` (module doc) for the (M, n) mapping ``cols`` / ``wts``.

    ``K_hat``, ``H_hat`` (Ny, Nx//2+1) the rfft2 spectra of the offset and index-sum kernels; ``box_flat``
    (M,) int the flat box index ``r * nx + c`` of each image pixel; ``config`` the static
    :class:`~wtilde_dask.inversion.jax_likelihood.LikelihoodConfig` (shape_box, fft_shape, has_hankel,
    real_kernel, fft, fft_threads, batch_size, batch_axis, n_source_pixels). Differentiable in ``wts`` (custom VJP).
    """
    return _forward(cols, wts, K_hat, H_hat, box_flat, config, keep_wt=False)[0]


def _curvature_fwd(cols, wts, K_hat, H_hat, box_flat, config):
    F, A, order, n_used = _forward(cols, wts, K_hat, H_hat, box_flat, config, keep_wt=True)
    return F, (cols, A, order, n_used)


def weights_cotangent(A, order, cols, G, n_used=None):
    """(M, n) ``dL/dwts[i, a] = sum_s A[i, s] (G + G^T)[s, cols[i, a]]`` (module doc), in XLA.

    ``A`` (n_batches, M, bs): the forward's batches of ``A = W T``, column p = b bs + j of the used-first
    order being column ``order[p]`` of W T; ``G`` (S, S) the cotangent of F. Summed batch by batch:
    ``sum_j A[b, i, j] (G + G^T)[order[b bs + j], cols[i, a]]`` (a (M, n, bs) gather of rows of bs numbers
    from the batch's (S, bs) slab); batches starting at or beyond ``n_used`` (all-zero A) are skipped.
    """
    nb, M, bs = A.shape
    S = G.shape[0]
    Gp = (G + G.T)[order]  # row p: (G + G^T)[order[p], :]
    Gp = jnp.transpose(jnp.pad(Gp, ((0, nb * bs - S), (0, 0))).reshape(nb, bs, S), (0, 2, 1))  # (nb, S, bs)

    def step(acc, xs):
        A_b, G_b, start = xs

        def add(acc):
            return acc + jnp.einsum("ij,iaj->ia", A_b, G_b[cols])

        if n_used is None:
            return add(acc), None
        return jax.lax.cond(start < n_used, add, lambda a: a, acc), None

    acc, _ = jax.lax.scan(step, jnp.zeros(cols.shape, dtype=G.dtype), (A, Gp, jnp.arange(nb) * bs))
    return acc


def _curvature_bwd(config, residuals, G):
    cols, A, order, n_used = residuals
    if config.fft == "ducc0":
        g_wts = jax_host.weights_cotangent(A, order, n_used, cols, G, config)
    else:
        g_wts = weights_cotangent(A, order, cols, G, n_used)
    return None, g_wts, None, None, None


curvature_from_mapping.defvjp(_curvature_fwd, _curvature_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def data_vector(cols, wts, dirty_image, n_source_pixels: int):
    """(S,) ``D = T^T d`` for the (M, n) mapping and the (M,) dirty image d; differentiable in ``wts``
    (``dL/dwts[i, a] = g[cols[i, a]] d[i]``) and ``dirty_image`` (``dL/dd[i] = sum_a wts[i, a] g[cols[i, a]]``)."""
    return jax.ops.segment_sum((wts * dirty_image[:, None]).ravel(), cols.ravel(), num_segments=n_source_pixels)


def _data_vector_fwd(cols, wts, dirty_image, n_source_pixels):
    return data_vector(cols, wts, dirty_image, n_source_pixels), (cols, wts, dirty_image)


def _data_vector_bwd(n_source_pixels, residuals, g):
    cols, wts, dirty_image = residuals
    g_at = g[cols]  # (M, n)
    return None, g_at * dirty_image[:, None], jnp.sum(wts * g_at, axis=1)


data_vector.defvjp(_data_vector_fwd, _data_vector_bwd)
