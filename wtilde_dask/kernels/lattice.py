"""W-tilde on a regular pixel lattice: the whole matrix from one or two type-1 NUFFTs, blocks by gather.

Every pixel of a masked lattice grid sits at ``y_i = y0 - r_i * sy``, ``x_i = x0 + c_i * sx`` (radians),
where (r_i, c_i) are its **box-relative** indices (row, column inside the bounding box of the unmasked
pixels, ``0 <= r < ny``, ``0 <= c < nx``) and (y0, x0) the centre of box pixel (0, 0). With
``phi_ik = 2 pi (x_i u_k + y_i v_k)`` (docs/mathematics.md) the general W-tilde splits exactly into

    W_ij = sum_k [wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk)]
         = sum_k (wr_k + wi_k)/2 cos(phi_ik - phi_jk) + sum_k (wr_k - wi_k)/2 cos(phi_ik + phi_jk)
         = kernel[r_i - r_j + ny - 1, c_i - c_j + nx - 1] + kernel_hankel[r_i + r_j, c_i + c_j]

**Definitions used everywhere in this package** (what the store keeps as ``kernel`` / ``kernel_hankel``):

* ``kernel`` (2ny-1, 2nx-1): the *offset* (Toeplitz) kernel of the mean weights ``(wr + wi)/2``,
  ``kernel[dr + ny-1, dc + nx-1] = sum_k (wr_k+wi_k)/2 cos(2 pi (dc sx u_k - dr sy v_k))``
  for ``dr = r_i - r_j`` in [-(ny-1), ny-1], ``dc = c_i - c_j`` in [-(nx-1), nx-1]. With equal
  noise (wr == wi == w) this is exactly ``sum_k w_k cos(phi_ik - phi_jk)``, PyAutoArray's preload.
  It is even: ``kernel[dr, dc] == kernel[-dr, -dc]``.
* ``kernel_hankel`` (2ny-1, 2nx-1) or None: the *index-sum* (Hankel) kernel of the half weight
  difference ``(wr - wi)/2``,
  ``kernel_hankel[sr, sc] = sum_k (wr_k-wi_k)/2 cos(4 pi (xc u_k + yc v_k) + 2 pi ((sc-(nx-1)) sx u_k - (sr-(ny-1)) sy v_k))``
  for ``sr = r_i + r_j`` in [0, 2ny-2], ``sc = c_i + c_j`` in [0, 2nx-2], where (yc, xc) is the centre
  of the box, ``yc = y0 - (ny-1)/2 sy``, ``xc = x0 + (nx-1)/2 sx`` (this is ``cos(phi_ik + phi_jk)``; it
  depends on the absolute position of the box, not only on offsets). None when wr == wi (it is zero).

So: **W = kernel[offset] + kernel_hankel[sum]**, no factor 1/2 left anywhere (the halves are in the weights).

Each kernel is ONE type-1 NUFFT of the K weights onto the (2ny-1) x (2nx-1) integer modes:
``f[m1, m2] = sum_k c_k exp(i (m1 a_k + m2 b_k))`` with ``a_k = -2 pi sy v_k``, ``b_k = 2 pi sx u_k``.
Because the modes are integers the points can be wrapped into [-pi, pi) exactly; we wrap in cycles
(``t - rint(t)``) before multiplying by 2 pi, which keeps the phases as accurate as the direct formula.
Library: ``ducc0.nufft.nu2u`` (default) or FINUFFT (``finufft.nufft2d1``). Measured here (2 cores, fp64,
max error relative to sum(w) against an exact separable matrix product): box 64x64, K=2e5:
ducc0 0.018 s / err 2.9e-15, finufft 0.035 s / err 1.0e-14; box 160x160, K=1e6: ducc0 0.11-0.15 s /
3.2e-15, finufft 0.14-0.27 s / 5.3e-15. ducc0 was 1.5-2x faster at the same accuracy, so it is the
default; ``backend="finufft"`` selects FINUFFT. ``eps`` is the library's (relative l2) tolerance; the
default 2.5e-13 (ducc0's float64 floor; FINUFFT takes smaller) gives max errors of 3e-15 x sum(|weights|)
at K = 2e5 and 1e-14 on the 190-visibility SMA set (eps = 1e-12 gave 2.4e-14 there), always <= 1e-12.

A block ``W[I, J]`` is then a pure gather from the kernel(s): :func:`w_tilde_block_lattice` (jitted
JAX, fixed padded shapes, same interface as :func:`wtilde_dask.kernels.direct.w_tilde_block`), in
:mod:`wtilde_dask.kernels.lattice_gather` with the PyAutoArray layout below (both re-exported here).

PyAutoArray layout (``nufft_precision_operator``, shape (2ny, 2nx)): ``P[dr % 2ny, dc % 2nx] = kernel(dr, dc)``
(Python negative indices for negative offsets), row ``ny`` and column ``nx`` zero; see
:func:`to_pyautoarray` / :func:`from_pyautoarray`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.errors import LatticeError  # noqa: F401 (re-exported)
from wtilde_dask.kernels.lattice_gather import (  # noqa: F401 (re-exported: blocks by gather, PyAutoArray layout)
    from_pyautoarray, to_pyautoarray, w_tilde_block_lattice, w_tilde_lattice)

__all__ = [
    "DEFAULT_EPS",
    "LatticeError",
    "LatticeBox",
    "LatticeKernels",
    "lattice_box",
    "lattice_offset_kernel",
    "lattice_hankel_kernel",
    "lattice_kernels",
    "lattice_dirty_image",
    "lattice_visibility_sums",
    "lattice_nufft_inputs",
    "lattice_nufft",
    "LatticeSums",
    "LatticeNufft",
    "w_tilde_block_lattice",
    "w_tilde_lattice",
    "nufft_points",
    "to_pyautoarray",
    "from_pyautoarray",
]

DEFAULT_EPS = 2.5e-13  # ducc0's tightest float64 tolerance
TWO_PI = 2.0 * np.pi
BACKENDS = ("ducc0", "finufft")


# ---------------------------------------------------------------------------------------------- NUFFT
def _check_uv_weights(uv_wavelengths, weights, name="weights", complex_ok=False):
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] < 1:
        raise LatticeError(f"uv_wavelengths has shape {uv.shape}, expected (K, 2) with K >= 1")
    w = np.asarray(weights)
    w = w.astype(np.complex128 if (complex_ok and np.iscomplexobj(w)) else np.float64).reshape(-1)
    if w.shape != (uv.shape[0],):
        raise LatticeError(f"{name} has shape {np.shape(weights)}, expected ({uv.shape[0]},) to match uv_wavelengths")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.argmax(bad))
        raise LatticeError(f"{name}[{i}] = {w[i]!r} is not finite")
    if not np.isfinite(uv).all():
        i = int(np.argmax(~np.isfinite(uv).all(axis=1)))
        raise LatticeError(f"uv_wavelengths[{i}] = {uv[i]!r} is not finite")
    return uv, w


def _check_box(shape_box, pixel_scales_radians):
    try:
        ny, nx = (int(s) for s in shape_box)
    except (TypeError, ValueError):
        raise LatticeError(f"shape_box = {shape_box!r} must be a pair (ny, nx) of integers >= 1") from None
    if ny < 1 or nx < 1:
        raise LatticeError(f"shape_box = {shape_box!r} must be a pair (ny, nx) of integers >= 1")
    try:
        sy, sx = (float(s) for s in pixel_scales_radians)
    except (TypeError, ValueError):
        raise LatticeError(f"pixel_scales_radians = {pixel_scales_radians!r} must be a pair (sy, sx) > 0") from None
    if not (np.isfinite(sy) and np.isfinite(sx) and sy > 0 and sx > 0):
        raise LatticeError(f"pixel_scales_radians = {pixel_scales_radians!r} must be a pair (sy, sx) > 0")
    return (ny, nx), (sy, sx)


def nufft_points(uv_wavelengths, pixel_scales_radians) -> np.ndarray:
    """(K, 2) NUFFT points ``(a_k, b_k) = 2 pi frac(-sy v_k, sx u_k)`` in [-pi, pi] for lattice modes (row, col).

    ``exp(i (m_r a_k + m_c b_k)) = exp(2 pi i (m_c sx u_k - m_r sy v_k))`` exactly for integer modes: the
    phase of a row/column offset (m_r, m_c) on the lattice (y decreases with row). Wrapping is done in cycles
    (``t - rint(t)``) before the multiplication by 2 pi.
    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    sy, sx = pixel_scales_radians
    t = np.empty_like(uv)
    t[:, 0] = -sy * uv[:, 1]
    t[:, 1] = sx * uv[:, 0]
    t -= np.rint(t)
    t *= TWO_PI
    return t


def _nufft_type1(coord, strengths, n_modes, eps, backend, nthreads):
    """``f[m1, m2] = sum_k c_k exp(+i (m1 a_k + m2 b_k))``, m centred (-(n-1)/2 .. (n-1)/2), (n1, n2) complex."""
    c = np.ascontiguousarray(strengths, dtype=np.complex128)
    if backend == "ducc0":
        import ducc0

        out = np.empty(n_modes, dtype=np.complex128)
        eps_ducc = max(float(eps), 2.5e-13)  # ducc0's float64 floor is 2e-13
        return ducc0.nufft.nu2u(
            points=c, coord=np.ascontiguousarray(coord), forward=False, epsilon=eps_ducc,
            nthreads=int(nthreads), out=out,
        )
    if backend == "finufft":
        import finufft

        opts = {"nthreads": int(nthreads)} if int(nthreads) > 0 else {}
        return finufft.nufft2d1(
            np.ascontiguousarray(coord[:, 0]), np.ascontiguousarray(coord[:, 1]), c, n_modes,
            eps=float(eps), isign=1, **opts,
        )
    raise LatticeError(f"backend = {backend!r}, expected one of {', '.join(BACKENDS)}")


def lattice_offset_kernel(
    uv_wavelengths, weights, shape_box, pixel_scales_radians, eps=DEFAULT_EPS, *, backend="ducc0", nthreads=0
) -> np.ndarray:
    """Offset (Toeplitz) kernel by one type-1 NUFFT.

    ``k[dr + ny-1, dc + nx-1] = sum_k weights_k cos(2 pi (dc sx u_k - dr sy v_k))``

    for ``dr`` in [-(ny-1), ny-1] (row offset r_i - r_j; y decreases with row so y_i - y_j = -dr sy)
    and ``dc`` in [-(nx-1), nx-1] (column offset, x_i - x_j = dc sx). Equals
    ``sum_k weights_k cos(phi_ik - phi_jk)`` for two lattice pixels at that offset.

    Parameters
    ----------
    uv_wavelengths : (K, 2) float64, (u, v) in wavelengths.
    weights : (K,) float64 (for W-tilde: ``(wr + wi)/2``; with equal noise just ``1/sigma**2``).
    shape_box : (ny, nx) of the bounding box of the unmasked pixels.
    pixel_scales_radians : (sy, sx) radians.
    eps : NUFFT tolerance (relative); the default gives max error <~1e-14 x sum(|weights|) (see module doc).
    backend : "ducc0" (default, measured faster) or "finufft".
    nthreads : NUFFT threads, 0 = all hardware threads (pass 1 inside a one-thread Dask worker).

    Returns (2ny-1, 2nx-1) float64.
    """
    uv, w = _check_uv_weights(uv_wavelengths, weights)
    (ny, nx), ps = _check_box(shape_box, pixel_scales_radians)
    coord = nufft_points(uv, ps)
    f = _nufft_type1(coord, w, (2 * ny - 1, 2 * nx - 1), eps, backend, nthreads)
    return np.ascontiguousarray(f.real)


def lattice_hankel_kernel(
    uv_wavelengths, weights_diff, shape_box, pixel_scales_radians, origin_radians, eps=DEFAULT_EPS, *,
    backend="ducc0", nthreads=0,
) -> np.ndarray:
    """Index-sum (Hankel) kernel by one type-1 NUFFT with complex strengths.

    ``h[sr, sc] = sum_k weights_diff_k cos(phi_ik + phi_jk)`` for any two pixels with box-relative index
    sums ``sr = r_i + r_j`` in [0, 2ny-2], ``sc = c_i + c_j`` in [0, 2nx-2]; explicitly

    ``h[sr, sc] = sum_k wd_k cos(theta_k + 2 pi ((sc - (nx-1)) sx u_k - (sr - (ny-1)) sy v_k))``,
    ``theta_k = 4 pi (xc u_k + yc v_k)``, box centre ``yc = y0 - (ny-1)/2 sy``, ``xc = x0 + (nx-1)/2 sx``.

    The constant phase ``theta_k`` (the absolute position of the box) is folded into the strengths
    ``wd_k exp(i theta_k)``, so the same centred-mode NUFFT as :func:`lattice_offset_kernel` does it.

    Parameters
    ----------
    uv_wavelengths : (K, 2) float64 wavelengths.
    weights_diff : (K,) float64 (for W-tilde: ``(wr - wi)/2``).
    shape_box : (ny, nx); pixel_scales_radians : (sy, sx) radians.
    origin_radians : (y0, x0) radians, centre of box pixel (0, 0) (top-left: row 0, column 0).

    Returns (2ny-1, 2nx-1) float64.
    """
    uv, wd = _check_uv_weights(uv_wavelengths, weights_diff, name="weights_diff")
    (ny, nx), (sy, sx) = _check_box(shape_box, pixel_scales_radians)
    try:
        y0, x0 = (float(o) for o in origin_radians)
    except (TypeError, ValueError):
        raise LatticeError(f"origin_radians = {origin_radians!r} must be a pair (y0, x0) in radians") from None
    yc = y0 - 0.5 * (ny - 1) * sy
    xc = x0 + 0.5 * (nx - 1) * sx
    cycles = 2.0 * (xc * uv[:, 0] + yc * uv[:, 1])
    cycles -= np.rint(cycles)
    strengths = wd * np.exp(1j * TWO_PI * cycles)
    coord = nufft_points(uv, (sy, sx))
    f = _nufft_type1(coord, strengths, (2 * ny - 1, 2 * nx - 1), eps, backend, nthreads)
    return np.ascontiguousarray(f.real)


# ---------------------------------------------------------------------------------------------- grids
class LatticeBox(NamedTuple):
    """The bounding box of a lattice grid's unmasked pixels."""

    box_indices: np.ndarray  # (M, 2) int64 (row, col) relative to the box
    shape_box: tuple  # (ny, nx)
    origin_radians: tuple  # (y0, x0) radians of box pixel (0, 0)
    pixel_scales_radians: tuple  # (sy, sx) radians


class LatticeKernels(NamedTuple):
    """What :func:`lattice_kernels` returns: ``W[i, j] = kernel[off] + kernel_hankel[sum]`` (module doc)."""

    kernel: np.ndarray  # (2ny-1, 2nx-1) offset kernel of (wr+wi)/2
    kernel_hankel: np.ndarray | None  # (2ny-1, 2nx-1) index-sum kernel of (wr-wi)/2, None when wr == wi
    box_indices: np.ndarray  # (M, 2) int64 box-relative (row, col), slim order


def lattice_box(grid) -> LatticeBox:
    """Box-relative indices, box shape, origin and pixel scales of a lattice :class:`~wtilde_dask.grid.ImageGrid`.

    The origin (y0, x0) is taken from ``grid.grid_radians`` itself (the mean of ``y_i + r_i sy`` and
    ``x_i - c_i sx``), so the lattice kernels use exactly the coordinates the direct kernel uses.
    """
    if not getattr(grid, "is_lattice", False) or grid.lattice_indices is None:
        raise LatticeError(f"grid {grid!r} is not a masked lattice (an irregular point set): use method='direct'")
    r0, r1, c0, c1 = grid.bounding_box
    box = np.ascontiguousarray(grid.lattice_indices - np.array([r0, c0]), dtype=np.int64)
    sy, sx = grid.pixel_scales_radians
    g = grid.grid_radians
    y0s = g[:, 0] + box[:, 0] * sy
    x0s = g[:, 1] - box[:, 1] * sx
    y0, x0 = float(np.mean(y0s)), float(np.mean(x0s))
    spread = max(np.ptp(y0s) / sy, np.ptp(x0s) / sx)
    if spread > 1e-6:
        raise LatticeError(
            f"grid_radians is not a regular lattice with pixel_scales {grid.pixel_scales} arcsec: pixel centres "
            f"deviate by {spread:.3g} pixels from y0 - r sy, x0 + c sx"
        )
    return LatticeBox(box, (r1 - r0, c1 - c0), (y0, x0), (sy, sx))


def lattice_kernels(uv_wavelengths, weights_real, weights_imag, grid, *, eps=DEFAULT_EPS, backend="ducc0",
                    nthreads=0) -> LatticeKernels:
    """Everything the lattice path needs from a dataset and a lattice grid (one or two NUFFTs).

    ``kernel = lattice_offset_kernel(uv, (wr + wi)/2, ...)``; ``kernel_hankel = lattice_hankel_kernel(uv,
    (wr - wi)/2, ...)`` or None when ``wr == wi`` exactly; ``box_indices`` (M, 2) box-relative (row, col)
    of the grid's pixels in slim order. Then ``W[I, J] = w_tilde_block_lattice(kernel, kernel_hankel,
    box_indices[I], box_indices[J])`` equals ``kernels.direct.w_tilde_block(grid[I], grid[J], uv, wr, wi)``.

    uv_wavelengths (K, 2); weights_real, weights_imag (K,) = 1/sigma_re**2, 1/sigma_im**2; grid: lattice ImageGrid.
    """
    wr = np.asarray(weights_real, dtype=np.float64).reshape(-1)
    wi = np.asarray(weights_imag, dtype=np.float64).reshape(-1)
    if wr.shape != wi.shape:
        raise LatticeError(f"weights_imag has shape {wi.shape}, expected {wr.shape} like weights_real")
    box = lattice_box(grid)
    kw = dict(eps=eps, backend=backend, nthreads=nthreads)
    kernel = lattice_offset_kernel(uv_wavelengths, 0.5 * (wr + wi), box.shape_box, box.pixel_scales_radians, **kw)
    hankel = None
    if not np.array_equal(wr, wi):
        hankel = lattice_hankel_kernel(
            uv_wavelengths, 0.5 * (wr - wi), box.shape_box, box.pixel_scales_radians, box.origin_radians, **kw
        )
    return LatticeKernels(kernel, hankel, box.box_indices)


def lattice_dirty_image(uv_wavelengths, visibilities, weights_real, weights_imag, grid, *, eps=DEFAULT_EPS,
                        backend="ducc0", nthreads=0) -> np.ndarray:
    """Dirty image (M,) of a lattice grid by one type-1 NUFFT onto the (ny, nx) bounding box.

    ``d_i = sum_k [wr_k Re(V_k) cos(phi_ik) - wi_k Im(V_k) sin(phi_ik)] = Re sum_k c_k exp(i phi_ik)`` with
    ``c_k = wr_k Re(V_k) + i wi_k Im(V_k)`` (docs/mathematics.md, the same numbers as
    :func:`wtilde_dask.kernels.dirty.dirty_image`); ``phi_ik = 2 pi (x_i u_k + y_i v_k)``, the constant phase
    of the box position is folded into ``c_k``. Cost O(K + ny nx log(ny nx)) instead of O(K M).

    uv_wavelengths (K, 2); visibilities (K,) complex; weights_real, weights_imag (K,); grid: lattice ImageGrid.
    Returns (M,) float64 in the grid's slim order.
    """
    uv, vis = _check_uv_weights(uv_wavelengths, visibilities, name="visibilities", complex_ok=True)
    _, wr = _check_uv_weights(uv, weights_real, name="weights_real")
    _, wi = _check_uv_weights(uv, weights_imag, name="weights_imag")
    box = lattice_box(grid)
    (ny, nx), (sy, sx) = box.shape_box, box.pixel_scales_radians
    y0, x0 = box.origin_radians
    # centred modes: array index r <-> mode r - ny//2, so phi = 2 pi ((x0 + nx//2 sx) u + (y0 - ny//2 sy) v) + modes
    cycles = (x0 + (nx // 2) * sx) * uv[:, 0] + (y0 - (ny // 2) * sy) * uv[:, 1]
    cycles -= np.rint(cycles)
    strengths = (wr * vis.real + 1j * (wi * vis.imag)) * np.exp(1j * TWO_PI * cycles)
    f = _nufft_type1(nufft_points(uv, (sy, sx)), strengths, (ny, nx), eps, backend, nthreads)
    return np.ascontiguousarray(f.real[box.box_indices[:, 0], box.box_indices[:, 1]])


class LatticeSums(NamedTuple):
    """What :func:`lattice_visibility_sums` returns (each None when not asked for; ``kernel_hankel`` also None
    when wr == wi)."""

    dirty_image: np.ndarray | None  # (M,) float64, slim order
    kernel: np.ndarray | None  # (2ny-1, 2nx-1) offset kernel of (wr+wi)/2
    kernel_hankel: np.ndarray | None  # (2ny-1, 2nx-1) index-sum kernel of (wr-wi)/2


def _phasor(cycles: np.ndarray) -> np.ndarray:
    """``exp(2 pi i cycles)`` (cycles already wrapped to [-1/2, 1/2]) as cos + i sin (faster than np.exp of a
    complex array, the same values to rounding)."""
    t = TWO_PI * cycles
    out = np.empty(t.shape, np.complex128)
    np.cos(t, out=out.real)
    np.sin(t, out=out.imag)
    return out


def _rotate(values: np.ndarray, cycles: np.ndarray) -> None:
    """``values *= exp(2 pi i cycles)`` in place: ducc0's vectorised ``misc.lensing_rotate`` (~8 ns per value
    against ~40 ns for NumPy's cos, sin and product; the same accuracy, ~2e-16 relative), else NumPy."""
    try:
        import ducc0

        ducc0.misc.lensing_rotate(values, TWO_PI * cycles, 1, 1)
    except (ImportError, AttributeError):
        values *= _phasor(cycles)


class LatticeNufft(NamedTuple):
    """The inputs of the one batched type-1 NUFFT of :func:`lattice_visibility_sums` (see :func:`lattice_nufft`)."""

    names: tuple  # what each transform is: "kernel", "kernel_hankel", "dirty_image"
    coord: np.ndarray  # (K, 2) float64 NUFFT points (nufft_points)
    points: np.ndarray  # (len(names), K) complex128 strengths
    shape: tuple  # (2ny-1, 2nx-1) modes
    box: LatticeBox
    eps: float


def lattice_nufft_inputs(uv_wavelengths, visibilities, weights_real, weights_imag, grid, *, dirty_image=True,
                         kernels=True, eps=DEFAULT_EPS, box: LatticeBox | None = None) -> LatticeNufft:
    """Points and strengths of :func:`lattice_visibility_sums`'s NUFFT (checked: finite, shapes); see there."""
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] < 1:
        raise LatticeError(f"uv_wavelengths has shape {uv.shape}, expected (K, 2) with K >= 1")
    k = uv.shape[0]
    wr = np.asarray(weights_real, dtype=np.float64).reshape(-1)
    wi = wr if weights_imag is weights_real else np.asarray(weights_imag, dtype=np.float64).reshape(-1)
    for name, w in (("weights_real", wr), ("weights_imag", wi)):
        if w.shape != (k,):
            raise LatticeError(f"{name} has shape {w.shape}, expected ({k},) to match uv_wavelengths")
    vis = None
    if dirty_image:
        vis = np.asarray(visibilities, dtype=np.complex128).reshape(-1)
        if vis.shape != (k,):
            raise LatticeError(f"visibilities has shape {vis.shape}, expected ({k},) to match uv_wavelengths")
    box = lattice_box(grid) if box is None else box
    (ny, nx), (sy, sx) = box.shape_box, box.pixel_scales_radians
    y0, x0 = box.origin_radians
    equal = wi is wr or np.array_equal(wr, wi)
    names = (("kernel",) if kernels else ()) + (("kernel_hankel",) if kernels and not equal else ()) + (
        ("dirty_image",) if dirty_image else ())
    points = np.empty((len(names), k), np.complex128)
    for p, name in zip(points, names):
        if name == "kernel":
            p.real = 0.5 * (wr + wi)
            p.imag = 0.0
        elif name == "kernel_hankel":  # lattice_hankel_kernel: theta = 4 pi (xc u + yc v), box centre (yc, xc)
            yc, xc = y0 - 0.5 * (ny - 1) * sy, x0 + 0.5 * (nx - 1) * sx
            cycles = 2.0 * (xc * uv[:, 0] + yc * uv[:, 1])
            cycles -= np.rint(cycles)
            p.real = 0.5 * (wr - wi)
            p.imag = 0.0
            _rotate(p, cycles)
        else:  # lattice_dirty_image: centred modes, phi = 2 pi ((x0 + nx//2 sx) u + (y0 - ny//2 sy) v) + modes
            cycles = (x0 + (nx // 2) * sx) * uv[:, 0] + (y0 - (ny // 2) * sy) * uv[:, 1]
            cycles -= np.rint(cycles)
            p.real = wr * vis.real
            p.imag = wi * vis.imag
            _rotate(p, cycles)
    coord = nufft_points(uv, (sy, sx))
    if not (np.isfinite(coord).all() and np.isfinite(points).all()):
        _check_uv_weights(uv, wr, "weights_real")  # raises, naming the first bad value
        _check_uv_weights(uv, wi, "weights_imag")
        if dirty_image:
            _check_uv_weights(uv, vis, "visibilities", complex_ok=True)
        raise LatticeError("non-finite NUFFT strengths (weights x visibilities overflow float64)")
    return LatticeNufft(names, coord, points, (2 * ny - 1, 2 * nx - 1), box, max(float(eps), 2.5e-13))


def lattice_nufft(inputs: LatticeNufft, *, nthreads=1) -> np.ndarray:
    """The one batched ducc0 type-1 NUFFT: (len(names), 2ny-1, 2nx-1) complex128."""
    import ducc0

    out = np.empty((len(inputs.names),) + inputs.shape, np.complex128)
    return ducc0.nufft.nu2u(points=inputs.points, coord=inputs.coord, forward=False, epsilon=inputs.eps,
                            nthreads=int(nthreads), out=out)


def lattice_visibility_sums(uv_wavelengths, visibilities, weights_real, weights_imag, grid, *, dirty_image=True,
                            kernels=True, eps=DEFAULT_EPS, nthreads=1, box: LatticeBox | None = None,
                            timings: dict | None = None) -> LatticeSums:
    """The dirty image and the lattice kernels of one set of visibilities by ONE batched ducc0 type-1 NUFFT.

    The same quantities as :func:`lattice_dirty_image` and :func:`lattice_kernels` (module docstring), computed
    together: the NUFFT points are computed and sorted once, and the 1 to 3 strength vectors (offset kernel
    ``(wr+wi)/2``; index-sum kernel ``(wr-wi)/2 exp(i theta)`` when wr != wi; dirty image
    ``(wr Re V + i wi Im V) exp(i theta')``, the phases applied by ``ducc0.misc.lensing_rotate``) are spread in one
    ``ducc0.nufft.nu2u`` call (``ntrans``) onto the
    kernel's (2ny-1, 2nx-1) modes. The dirty image's (ny, nx) modes (centred: box row r is mode r - ny//2) are the
    middle of that grid, rows / columns from ``ny-1-ny//2``. The offset kernel is bit for bit
    :func:`lattice_offset_kernel`'s (same points, same strengths, one call); the others agree to rounding.
    Measured (one core, 1e6 ALMA-like points, eps 2.5e-13, box 60x60): 2 transforms batched ~200 ns per point
    against ~210 ns as two calls; ducc0 chose support 13 at oversampling 2.5 (its widest); ``sigma_min`` /
    ``sigma_max`` changed nothing measurable, FINUFFT 2.5 took ~2x longer per transform at the same accuracy.

    uv_wavelengths (K, 2); visibilities (K,) complex (None when ``dirty_image`` is False); weights_real,
    weights_imag (K,) float64 (the same array object, or equal arrays, when the noise is equal: no Hankel part);
    grid: a lattice ImageGrid (``box``: its :func:`lattice_box`, when known). ``nthreads`` = 1 (default) keeps
    reruns bit-identical. ``timings``: a dict to which the seconds of the NUFFT call (``"nufft"``) and of its
    inputs (``"nufft_inputs"``) are added.
    """
    import time

    t0 = time.perf_counter()
    inputs = lattice_nufft_inputs(uv_wavelengths, visibilities, weights_real, weights_imag, grid,
                                  dirty_image=dirty_image, kernels=kernels, eps=eps, box=box)
    if not inputs.names:
        return LatticeSums(None, None, None)
    t1 = time.perf_counter()
    out = lattice_nufft(inputs, nthreads=nthreads)
    t2 = time.perf_counter()
    got = {name: out[j].real for j, name in enumerate(inputs.names)}
    dirty = kernel = hankel = None
    if "dirty_image" in got:
        (ny, nx), idx = inputs.box.shape_box, inputs.box.box_indices
        dirty = np.ascontiguousarray(got["dirty_image"][ny - 1 - ny // 2 + idx[:, 0], nx - 1 - nx // 2 + idx[:, 1]])
    if "kernel" in got:
        kernel = np.ascontiguousarray(got["kernel"])
    if "kernel_hankel" in got:
        hankel = np.ascontiguousarray(got["kernel_hankel"])
    if timings is not None:
        timings["nufft_inputs"] = timings.get("nufft_inputs", 0.0) + (t1 - t0)
        timings["nufft"] = timings.get("nufft", 0.0) + (t2 - t1)
    return LatticeSums(dirty, kernel, hankel)
