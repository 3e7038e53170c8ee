"""Everything W-tilde needs from the visibilities, as sums over visibilities: one chunk's partial, and the sum
of two partials (pure NumPy / ducc0 functions of arrays; no Dask, no files).

For a chunk of k visibilities (uv (k, 2) wavelengths, V (k,) complex, sigma = noise_map (k,) complex,
``wr = 1/sigma.real**2``, ``wi = 1/sigma.imag**2``) and an image grid (docs/mathematics.md):

* ``chi_squared_data    = sum_k wr_k Re(V_k)^2 + wi_k Im(V_k)^2``
* ``noise_normalization = sum_k ln(2 pi sigma_re,k^2) + ln(2 pi sigma_im,k^2)``
* ``n_visibilities = k`` (plus the counts the reader dropped: ``n_flagged``, ``n_bad_weight``)
* ``dirty_image`` (M,): ``d_i = sum_k [wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik)]`` (one type-1 NUFFT on a
  lattice grid, :func:`wtilde_dask.kernels.lattice.lattice_dirty_image`; the chunked JAX sum otherwise,
  :func:`wtilde_dask.kernels.dirty.dirty_image`)
* ``kernel`` (2ny-1, 2nx-1) and ``kernel_hankel`` (or None where wr == wi): the lattice offset and index-sum
  kernels (:func:`wtilde_dask.kernels.lattice.lattice_kernels`, one type-1 NUFFT each)

On a lattice grid the dirty image and the kernels of a chunk come from ONE batched ducc0 type-1 NUFFT (points
computed and sorted once, :func:`wtilde_dask.kernels.lattice.lattice_visibility_sums`); with equal noise
(``noise.real == noise.imag``, every Measurement Set / UVFITS chunk) the imaginary weights and logs are the real
ones, computed once (the same bits).

Each is linear in the visibilities (a sum over k), so the dataset's value is the sum of its chunks' values:
:func:`add_partials` adds two partials (``None`` is an exact zero kernel_hankel). Summing in a fixed order gives
bit-identical results; different chunkings agree to rounding (~1e-15 relative).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["VisibilityPartial", "noise_weights", "chunk_partial", "zero_partial", "add_partials", "sum_partials",
           "partial_arrays"]

ARRAY_NAMES = ("dirty_image", "kernel", "kernel_hankel")


@dataclass(frozen=True)
class VisibilityPartial:
    """The visibility sums of one chunk (or of a sum of chunks); see the module docstring for each formula.

    Arrays are float64 or None (not asked for; for ``kernel_hankel``: exactly zero because wr == wi).
    """

    chi_squared_data: float = 0.0
    noise_normalization: float = 0.0
    n_visibilities: int = 0
    n_flagged: int = 0
    n_bad_weight: int = 0
    dirty_image: np.ndarray | None = field(default=None, repr=False)
    kernel: np.ndarray | None = field(default=None, repr=False)
    kernel_hankel: np.ndarray | None = field(default=None, repr=False)

    def scalars(self) -> dict:
        """The scalar sums as a JSON-able dict (floats and ints)."""
        return {"chi_squared_data": float(self.chi_squared_data),
                "noise_normalization": float(self.noise_normalization),
                "n_visibilities": int(self.n_visibilities), "n_flagged": int(self.n_flagged),
                "n_bad_weight": int(self.n_bad_weight)}


def zero_partial(grid=None, *, dirty_image: bool = False, lattice: bool = False, n_flagged: int = 0,
                 n_bad_weight: int = 0) -> VisibilityPartial:
    """The partial of an empty chunk (every visibility dropped): zero sums and zero arrays of the right shapes."""
    dirty = kernel = None
    if dirty_image:
        dirty = np.zeros(len(grid.grid_radians))
    if lattice:
        from wtilde_dask.kernels.lattice import lattice_box

        ny, nx = lattice_box(grid).shape_box
        kernel = np.zeros((2 * ny - 1, 2 * nx - 1))
    return VisibilityPartial(0.0, 0.0, 0, int(n_flagged), int(n_bad_weight), dirty, kernel, None)


def noise_weights(noise_map):
    """``(sigma_re**2, wr, sigma_im**2, wi)`` of a (k,) complex noise map, ``w = 1 / sigma**2``. With equal noise
    (sigma_re == sigma_im: every Measurement Set / UVFITS chunk) the imaginary arrays ARE the real ones (the same
    numbers, computed once; ``wi is wr`` tells callers there is no Hankel part)."""
    sr2 = noise_map.real**2
    wr = 1.0 / sr2
    if np.array_equal(noise_map.real, noise_map.imag):
        return sr2, wr, sr2, wr
    si2 = noise_map.imag**2
    return sr2, wr, si2, 1.0 / si2


def chunk_partial(uv_wavelengths, visibilities, noise_map, grid=None, *, dirty_image: bool = False,
                  lattice: bool = False, n_flagged: int = 0, n_bad_weight: int = 0,
                  nthreads: int = 1, timings: dict | None = None) -> VisibilityPartial:
    """The :class:`VisibilityPartial` of one chunk.

    Parameters
    ----------
    uv_wavelengths : (k, 2) float64 wavelengths; visibilities : (k,) complex; noise_map : (k,) complex sigmas (> 0).
    grid : :class:`~wtilde_dask.grid.ImageGrid`, needed for ``dirty_image`` / ``lattice``.
    dirty_image : also the dirty image (M,) of the chunk.
    lattice : also the lattice offset / Hankel kernels (the grid must be a masked lattice).
    n_flagged, n_bad_weight : counts of visibilities the reader dropped from this chunk (carried along).
    nthreads : NUFFT threads (1 keeps the sums deterministic bit for bit; the pass parallelises over chunks).
    timings : a dict to which seconds are added: ``"nufft"`` (the lattice NUFFT call), ``"nufft_inputs"`` (its
        points and strengths), ``"sums"`` (everything else: casts, weights, chi2_data, noise normalisation, and the
        JAX dirty image of an irregular grid).
    """
    import time

    t_start = time.perf_counter()
    inner: dict = {}
    uv = np.asarray(uv_wavelengths, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visibilities, dtype=np.complex128).reshape(-1)  # no copy when already complex128
    noise = np.asarray(noise_map, dtype=np.complex128).reshape(-1)
    k = uv.shape[0]
    if vis.shape != (k,) or noise.shape != (k,):
        raise ValueError(f"chunk: visibilities {vis.shape} and noise_map {noise.shape} must be ({k},) like "
                         f"uv_wavelengths {uv.shape}")
    if k == 0:
        return zero_partial(grid, dirty_image=dirty_image, lattice=lattice, n_flagged=n_flagged,
                            n_bad_weight=n_bad_weight)
    sr2, wr, si2, wi = noise_weights(noise)
    equal = wi is wr
    chi2 = float(np.sum(wr * vis.real**2) + np.sum(wi * vis.imag**2))
    log_r = np.sum(np.log(2 * np.pi * sr2))
    norm = float(log_r + (log_r if equal else np.sum(np.log(2 * np.pi * si2))))
    dirty = kernel = hankel = None
    if (dirty_image or lattice) and grid.is_lattice:
        from wtilde_dask.kernels.lattice import lattice_visibility_sums

        sums = lattice_visibility_sums(uv, vis, wr, wi, grid, dirty_image=dirty_image, kernels=lattice,
                                       nthreads=nthreads, timings=inner)
        dirty, kernel, hankel = sums.dirty_image, sums.kernel, sums.kernel_hankel
    elif dirty_image:
        from wtilde_dask.kernels.dirty import dirty_image as dirty_sum

        dirty = np.asarray(dirty_sum(grid.grid_radians, uv, vis, wr, wi), dtype=np.float64)
    if lattice and not grid.is_lattice:
        from wtilde_dask.kernels.lattice import lattice_kernels

        lk = lattice_kernels(uv, wr, wi, grid, nthreads=nthreads)  # raises: not a lattice
        kernel, hankel = np.asarray(lk.kernel), (None if lk.kernel_hankel is None else np.asarray(lk.kernel_hankel))
    if timings is not None:
        for name, sec in inner.items():
            timings[name] = timings.get(name, 0.0) + sec
        timings["sums"] = timings.get("sums", 0.0) + (time.perf_counter() - t_start - sum(inner.values()))
    return VisibilityPartial(chi2, norm, k, int(n_flagged), int(n_bad_weight), dirty, kernel, hankel)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a.shape != b.shape:
        raise ValueError(f"partials of different shapes {a.shape} and {b.shape}: not the same grid")
    return a + b


def add_partials(a: VisibilityPartial, b: VisibilityPartial) -> VisibilityPartial:
    """``a + b`` term by term (``None`` arrays are exact zeros). Deterministic: the same inputs give the same bits."""
    return VisibilityPartial(
        float(a.chi_squared_data) + float(b.chi_squared_data),
        float(a.noise_normalization) + float(b.noise_normalization),
        int(a.n_visibilities) + int(b.n_visibilities), int(a.n_flagged) + int(b.n_flagged),
        int(a.n_bad_weight) + int(b.n_bad_weight),
        _add(a.dirty_image, b.dirty_image), _add(a.kernel, b.kernel), _add(a.kernel_hankel, b.kernel_hankel),
    )


def sum_partials(partials) -> VisibilityPartial:
    """Left-to-right sum of partials in the given order (an empty sequence gives an empty partial)."""
    total = None
    for p in partials:
        total = p if total is None else add_partials(total, p)
    return total if total is not None else VisibilityPartial()


def partial_arrays(p: VisibilityPartial) -> dict:
    """``{name: array}`` of the partial's arrays that are not None (dirty_image, kernel, kernel_hankel)."""
    return {name: getattr(p, name) for name in ARRAY_NAMES if getattr(p, name) is not None}
