"""The FFT floor of one likelihood evaluation: the transforms that ``F = T^T W T`` by FFT cannot avoid, and
nothing else (no scatter, no kernel product, no gather, no projection), timed the fastest ways available.

For each of ``n_columns`` used columns of T on the (ny, nx) box zero-padded to (Ny, Nx), as
:func:`wtilde_dask.inversion.jax_curvature.lattice_apply`: a real-to-complex transform of length Nx along x
on the ny non-zero rows, a complex transform of length Ny along y on the Nx//2+1 columns, the inverse complex
transform along y, and the complex-to-real inverse of length Nx along x on the ny output rows.

* :func:`xla_floor`: the same four transforms in XLA (jitted, ``lax.map`` over batches of ``batch_size``
  columns, the y transforms on the minor axis after one transpose each way as in the likelihood);
* :func:`ducc_floor`: ducc0's ``r2c`` / ``c2c`` / ``c2r`` on the strided axes, ``nthreads`` threads inside each
  call or one batch per thread, the spectrum with y on its middle axis or (``y_last``, as the likelihood's F) on
  its fastest axis.

``column_rows`` (one array of box rows per used column, in the order of the batches): the forward ``r2c`` of a
batch runs on the rows its columns touch only, as the likelihood's F does
(:func:`~wtilde_dask.inversion.curvature_kernels.curvature_lattice`); the ducc0 ways then transform exactly those
rows, the XLA ways (one compiled shape for every batch) still every row.
"""

from __future__ import annotations

import numpy as np

from wtilde_dask.bench.timing import timed


def _images(n_columns: int, shape_box, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(int(n_columns),) + tuple(shape_box))


def xla_floor(n_columns: int, shape_box, fft_shape, batch_size: int, repeats: int = 3) -> float:
    """Minimum seconds over ``repeats`` (after a compiling call) of the four transforms of ``n_columns``
    columns in XLA, ``batch_size`` columns per step (the remainder in one smaller step)."""
    from wtilde_dask.kernels import enable_x64

    enable_x64()
    import jax
    import jax.numpy as jnp

    ny, nx = shape_box
    Ny, Nx = fft_shape
    bs = max(1, min(int(batch_size), int(n_columns)))
    n_full, rest = divmod(int(n_columns), bs)

    def transforms(x):  # (b, ny, nx) -> (b, ny, nx)
        X = jnp.fft.rfft(x, n=Nx, axis=2)
        X = jnp.fft.fft(jnp.swapaxes(X, 1, 2), n=Ny, axis=2)
        Y = jnp.swapaxes(jnp.fft.ifft(X, axis=2)[:, :, :ny], 1, 2)
        return jnp.fft.irfft(Y, n=Nx, axis=2)[:, :, :nx]

    @jax.jit
    def run(full, remainder):
        out = jax.lax.map(transforms, full) if n_full else full
        # The remainder's transforms wait for the batches' (as in the likelihood, one FFT after another):
        # two FFTs XLA:CPU runs at the same time on its thread pool can wait on each other forever.
        out, remainder = jax.lax.optimization_barrier((out, remainder))
        return out, (transforms(remainder) if rest else remainder)

    imgs = _images(n_columns, shape_box)
    full = jnp.asarray(imgs[: n_full * bs].reshape(n_full, bs, ny, nx))
    remainder = jnp.asarray(imgs[n_full * bs:])
    jax.block_until_ready(run(full, remainder))
    return min(timed(lambda: jax.block_until_ready(run(full, remainder)))[0] for _ in range(int(repeats)))


def batch_row_counts(column_rows, batch_size: int) -> list[int]:
    """Rows the forward transforms of each batch of ``batch_size`` columns need: the size of the union of its
    columns' ``column_rows``."""
    rows = list(column_rows)
    return [int(np.unique(np.concatenate(rows[k:k + batch_size])).size) for k in range(0, len(rows), batch_size)]


def round_trip(rows, n: int, X_rows, X, out, y_last: bool, nthreads: int = 1, X_x=None):
    """The floor's four transforms of b columns (ducc0): ``rows`` (b, ny, Nx) the row-padded images (the first
    ``n`` rows transformed), ``X_rows`` / ``X`` (b, Nx//2+1, Ny) with ``y_last`` else (b, Ny, Nx//2+1) complex
    (``X_rows`` zero beyond the first n rows), with ``y_last`` ``X_x`` (b, Ny, Nx//2+1) complex (None: allocated)
    for the inverse along y, ``out`` (b, ny, Nx): the convolution of the images with a unit
    kernel spectrum, i.e. ``out[:, :, :nx] = rows[:, :, :nx]`` when the box's nx <= Nx // 2 and n = ny."""
    import ducc0.fft as dfft

    ny, Nx = out.shape[1:]
    b = rows.shape[0]
    y_axis = 2 if y_last else 1
    row_spectra = X_rows[:, :, :n].transpose(0, 2, 1) if y_last else X_rows[:, :n, :]  # (b, n, Nx//2+1)
    dfft.r2c(rows[:, :n], axes=(2,), out=row_spectra, nthreads=nthreads)
    dfft.c2c(X_rows, axes=(y_axis,), out=X, nthreads=nthreads)
    if y_last:  # the inverse along y written with x on the fastest axis, as the likelihood's F (for the c2r)
        X_x = np.empty((b, X.shape[2], X.shape[1]), dtype=X.dtype) if X_x is None else X_x
        dfft.c2c(X, axes=(2,), forward=False, inorm=2, out=X_x.transpose(0, 2, 1), nthreads=nthreads)
        X = X_x
    else:
        dfft.c2c(X, axes=(1,), forward=False, inorm=2, out=X, nthreads=nthreads)
    dfft.c2r(X[:, :ny, :], axes=(2,), lastsize=Nx, forward=False, inorm=2, out=out, nthreads=nthreads)
    return out


def ducc_floor(n_columns: int, shape_box, fft_shape, batch_size: int, nthreads: int, repeats: int = 3,
               per_thread: bool = False, column_rows=None, y_last: bool = False) -> float:
    """Minimum seconds over ``repeats`` of the four transforms of ``n_columns`` columns by ducc0, ``batch_size``
    columns per call, buffers allocated and filled once (the forward ``c2c`` out of place, so the zero rows of
    the padded spectrum are never rewritten): ``nthreads`` threads inside each call, or with ``per_thread`` one
    batch per thread of a pool of ``nthreads`` threads, each call on one thread (as ``curvature_lattice``).
    ``column_rows``: the forward ``r2c`` of each batch on its touched rows only (module doc). ``y_last``: the
    (Nx//2+1, Ny) spectrum of a column with y on the fastest axis (the ``r2c`` writes its rows there; the
    inverse along y writes (Ny, Nx//2+1) for the ``c2r``), else (Ny, Nx//2+1) throughout (:func:`round_trip`)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ny, nx = shape_box
    Ny, Nx = fft_shape
    bs = max(1, min(int(batch_size), int(n_columns)))
    local = threading.local()
    n_rows = [ny] * (-(-int(n_columns) // bs)) if column_rows is None else batch_row_counts(column_rows, bs)

    spectrum = (bs, Nx // 2 + 1, Ny) if y_last else (bs, Ny, Nx // 2 + 1)

    def buffers():
        if not hasattr(local, "buffers"):
            rows = np.zeros((bs, ny, Nx))
            rows[:, :, :nx] = _images(bs, shape_box)
            local.buffers = (rows, np.zeros(spectrum, dtype=np.complex128), np.empty(spectrum, dtype=np.complex128),
                             np.empty((bs, Ny, Nx // 2 + 1), dtype=np.complex128), np.empty((bs, ny, Nx)))
        return local.buffers

    def transforms(start, threads):
        rows, X_rows, X, X_x, out = buffers()
        b = min(bs, int(n_columns) - start)
        round_trip(rows[:b], n_rows[start // bs], X_rows[:b], X[:b], out[:b], y_last, threads, X_x[:b])

    starts = range(0, int(n_columns), bs)
    if per_thread:
        pool = ThreadPoolExecutor(int(nthreads))

        def run():
            list(pool.map(lambda s: transforms(s, 1), starts))
    else:
        pool = None

        def run():
            for s in starts:
                transforms(s, int(nthreads))

    try:
        run()
        return min(timed(run)[0] for _ in range(int(repeats)))
    finally:
        if pool is not None:
            pool.shutdown()


def fft_floor(n_columns: int, shape_box, fft_shape, nthreads: int, repeats: int = 3,
              xla_batch_sizes=(8, 16, 32, 64), ducc_batch_sizes=(8, 16, 32), column_rows=None) -> dict:
    """{"<way> batch <b>": seconds} for every way tried, and "best" = (name, seconds) the fastest
    (``column_rows``: module doc)."""
    times = {}
    for b in xla_batch_sizes:
        times[f"XLA, batch {b}"] = xla_floor(n_columns, shape_box, fft_shape, b, repeats)
    try:
        import ducc0  # noqa: F401
    except ImportError:  # pragma: no cover - ducc0 is a dependency
        ducc_batch_sizes = ()
    for b in ducc_batch_sizes:
        times[f"ducc0 {nthreads} threads, batch {b}"] = ducc_floor(n_columns, shape_box, fft_shape, b, nthreads, repeats,
                                                                   column_rows=column_rows)
        for y_last, layout in ((False, ""), (True, ", y last")):
            times[f"ducc0 {nthreads} threads, one batch of {b} per thread{layout}"] = ducc_floor(
                n_columns, shape_box, fft_shape, b, nthreads, repeats, per_thread=True, column_rows=column_rows,
                y_last=y_last)
    name = min(times, key=times.get)
    return {**times, "best": (name, times[name])}
