"""Image-plane grids: masked lattices (PyAutoArray conventions) and irregular point sets.

Conventions (fixed, the same as PyAutoArray):

* ``shape_native = (ny, nx)``, ``pixel_scales = (sy, sx)`` in arcsec, grid origin (0, 0);
* pixel (r, c) centre: ``y = ((ny - 1)/2 - r) * sy``, ``x = (c - (nx - 1)/2) * sx`` (arcsec):
  rows run top to bottom (y decreases with row), x increases with column;
* radians = arcsec * pi / 648000;
* mask arrays: True = MASKED (excluded), False = unmasked (kept);
* circular mask: a pixel is unmasked when the distance of its centre from ``centre`` (y, x) is < radius
  (strictly, as PyAutoArray 2026.7's ``Mask2D.circular``: ``distance**2 >= radius**2`` is masked);
* annular mask: unmasked when ``inner_radius <= distance <= outer_radius`` (PyAutoArray's ``circular_annular``);
* unmasked pixels are ordered row-major ("slim" order).

``grid_radians`` is (M, 2) with columns (y, x) in radians, the input of every kernel.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from wtilde_dask.constants import ARCSEC_TO_RADIANS
from wtilde_dask.errors import GridError  # noqa: F401 (re-exported)

__all__ = ["GridError", "ImageGrid", "ARCSEC_TO_RADIANS"]



def _pixel_scales(pixel_scales) -> tuple[float, float]:
    if np.isscalar(pixel_scales):
        pixel_scales = (pixel_scales, pixel_scales)
    try:
        ps = tuple(float(p) for p in pixel_scales)
    except (TypeError, ValueError):
        raise GridError(f"pixel_scales = {pixel_scales!r} must be a number or a pair (sy, sx) in arcsec") from None
    if len(ps) != 2:
        raise GridError(f"pixel_scales = {pixel_scales!r} must be a pair (sy, sx) in arcsec")
    for name, p in zip(("sy", "sx"), ps):
        if not (math.isfinite(p) and p > 0):
            raise GridError(f"pixel_scales {name} = {p!r} must be a finite number > 0 (arcsec)")
    return ps


def _shape_native(shape_native) -> tuple[int, int]:
    try:
        shape = tuple(int(s) for s in shape_native)
        ok = len(shape) == 2 and all(int(s) == s for s in shape_native)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(shape) < 1:
        raise GridError(f"shape_native = {shape_native!r} must be a pair (ny, nx) of integers >= 1")
    return shape


def _positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GridError(f"{name} = {value!r} must be a number (arcsec)") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise GridError(f"{name} = {value!r} must be a finite number {'>= 0' if allow_zero else '> 0'} (arcsec)")
    return v


def _centre(centre) -> tuple[float, float]:
    try:
        c = tuple(float(v) for v in centre)
    except (TypeError, ValueError):
        raise GridError(f"centre = {centre!r} must be a pair (y, x) in arcsec") from None
    if len(c) != 2 or not all(math.isfinite(v) for v in c):
        raise GridError(f"centre = {centre!r} must be a finite pair (y, x) in arcsec")
    return c


def pixel_centres_arcsec(shape_native, pixel_scales) -> tuple[np.ndarray, np.ndarray]:
    """(ny, nx) arrays of pixel-centre y and x (arcsec) for the full lattice (PyAutoArray convention)."""
    ny, nx = shape_native
    sy, sx = pixel_scales
    y = ((ny - 1) / 2.0 - np.arange(ny, dtype=np.float64)) * sy
    x = (np.arange(nx, dtype=np.float64) - (nx - 1) / 2.0) * sx
    return np.broadcast_to(y[:, None], (ny, nx)), np.broadcast_to(x[None, :], (ny, nx))


def _distances_squared(shape_native, pixel_scales, centre) -> np.ndarray:
    """(ny, nx) squared distance (arcsec^2) of each pixel centre from ``centre`` (y, x).

    Evaluated with the same floating-point operations as PyAutoArray's ``mask_2d_circular_from`` so that
    pixels exactly on the circle fall on the same side.
    """
    (ny, nx), (sy, sx), (cy, cx) = shape_native, pixel_scales, centre
    yc = 0.5 * (ny - 1) - cy / sy
    xc = 0.5 * (nx - 1) + cx / sx
    y = (np.arange(ny, dtype=np.float64)[:, None] - yc) * sy
    x = (np.arange(nx, dtype=np.float64)[None, :] - xc) * sx
    return x**2 + y**2


@dataclasses.dataclass(frozen=True, eq=False)
class ImageGrid:
    """The unmasked image pixels (or an irregular point set) a W-tilde is computed on.

    Attributes
    ----------
    grid_radians : (M, 2) float64
        (y, x) of each pixel centre in radians, slim (row-major) order for lattices.
    mask : (ny, nx) bool or None
        True = masked; None for an irregular point set.
    pixel_scales : (sy, sx) arcsec or None
    lattice_indices : (M, 2) int64 or None
        (row, col) of each pixel in the full ``shape_native`` lattice.
    """

    grid_radians: np.ndarray
    mask: np.ndarray | None = None
    pixel_scales: tuple[float, float] | None = None
    lattice_indices: np.ndarray | None = None

    def __post_init__(self):
        g = np.asarray(self.grid_radians)
        if g.ndim != 2 or g.shape[1] != 2:
            raise GridError(f"grid_radians has shape {g.shape}, expected (M, 2) with columns (y, x)")
        if g.shape[0] < 1:
            raise GridError("grid_radians has M = 0 points, expected M >= 1")
        g = np.ascontiguousarray(g, dtype=np.float64)
        bad = ~np.isfinite(g)
        if bad.any():
            i, j = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape)
            raise GridError(f"grid_radians[{i}, {j}] = {float(g[i, j])!r} is not finite")
        g.setflags(write=False)
        object.__setattr__(self, "grid_radians", g)
        if self.mask is not None:
            m = np.ascontiguousarray(self.mask, dtype=bool)
            m.setflags(write=False)
            object.__setattr__(self, "mask", m)
            object.__setattr__(self, "pixel_scales", _pixel_scales(self.pixel_scales))
            li = np.ascontiguousarray(self.lattice_indices, dtype=np.int64)
            if li.shape != g.shape:
                raise GridError(f"lattice_indices has shape {li.shape}, expected {g.shape}")
            li.setflags(write=False)
            object.__setattr__(self, "lattice_indices", li)

    # ------------------------------------------------------------------ properties
    @property
    def n_pixels(self) -> int:
        """M, the number of unmasked pixels / points."""
        return int(self.grid_radians.shape[0])

    @property
    def is_lattice(self) -> bool:
        """True for a masked regular lattice (lattice_indices known)."""
        return self.mask is not None

    @property
    def shape_native(self) -> tuple[int, int] | None:
        """(ny, nx) of the full lattice, None for a point set."""
        return None if self.mask is None else tuple(int(s) for s in self.mask.shape)

    @property
    def grid_arcsec(self) -> np.ndarray:
        """(M, 2) (y, x) in arcsec."""
        return self.grid_radians / ARCSEC_TO_RADIANS

    @property
    def pixel_scales_radians(self) -> tuple[float, float] | None:
        """(sy, sx) in radians, None for a point set."""
        if self.pixel_scales is None:
            return None
        return (self.pixel_scales[0] * ARCSEC_TO_RADIANS, self.pixel_scales[1] * ARCSEC_TO_RADIANS)

    @property
    def bounding_box(self) -> tuple[int, int, int, int] | None:
        """(r0, r1, c0, c1): rows r0..r1-1 and columns c0..c1-1 hold every unmasked pixel (None for a point set)."""
        if self.lattice_indices is None:
            return None
        li = self.lattice_indices
        return (int(li[:, 0].min()), int(li[:, 0].max()) + 1, int(li[:, 1].min()), int(li[:, 1].max()) + 1)

    def __repr__(self) -> str:
        if self.is_lattice:
            return f"ImageGrid(n_pixels={self.n_pixels}, shape_native={self.shape_native}, pixel_scales={self.pixel_scales})"
        return f"ImageGrid(n_pixels={self.n_pixels}, irregular points)"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_mask(cls, mask, pixel_scales, *, source: str = "mask") -> "ImageGrid":
        """Grid of the unmasked pixels of a boolean mask (True = masked), pixel scales in arcsec."""
        m = np.asarray(mask)
        if m.ndim != 2:
            raise GridError(f"{source} has shape {m.shape}, expected a 2-D (ny, nx) boolean array")
        if m.dtype != bool:
            if m.dtype.kind not in "biu" or not np.isin(m, (0, 1)).all():
                raise GridError(f"{source} has dtype {m.dtype}, expected booleans (True = masked) or 0/1 integers")
            m = m.astype(bool)
        ps = _pixel_scales(pixel_scales)
        rows, cols = np.nonzero(~m)
        if rows.size == 0:
            raise GridError(f"{source} of shape {m.shape} masks every pixel (no unmasked pixel): empty grid")
        y, x = pixel_centres_arcsec(m.shape, ps)
        grid = np.stack([y[rows, cols], x[rows, cols]], axis=1) * ARCSEC_TO_RADIANS
        return cls(grid, mask=m, pixel_scales=ps, lattice_indices=np.stack([rows, cols], axis=1))

    @classmethod
    def circular(cls, shape_native, pixel_scales, radius, centre=(0.0, 0.0)) -> "ImageGrid":
        """Pixels whose centre lies within ``radius`` arcsec of ``centre`` (y, x) arcsec: distance < radius.

        Identical to PyAutoArray's ``Mask2D.circular(shape_native, pixel_scales, radius, centre)`` (strict:
        a centre exactly on the circle is masked).
        """
        shape = _shape_native(shape_native)
        ps = _pixel_scales(pixel_scales)
        r = _positive("radius", radius)
        cy, cx = _centre(centre)
        mask = _distances_squared(shape, ps, (cy, cx)) >= r**2
        return cls._from_shape_mask(mask, ps, f"circular mask with radius = {radius!r} arcsec, centre = {centre!r}, "
                                              f"shape_native = {shape}, pixel_scales = {ps}")

    @classmethod
    def annular(cls, shape_native, pixel_scales, inner_radius, outer_radius, centre=(0.0, 0.0)) -> "ImageGrid":
        """Pixels with ``inner_radius <= distance <= outer_radius`` (arcsec) from ``centre`` (y, x).

        Identical to PyAutoArray's ``Mask2D.circular_annular``.
        """
        shape = _shape_native(shape_native)
        ps = _pixel_scales(pixel_scales)
        r_in = _positive("inner_radius", inner_radius, allow_zero=True)
        r_out = _positive("outer_radius", outer_radius)
        if r_in >= r_out:
            raise GridError(f"inner_radius = {inner_radius!r} must be < outer_radius = {outer_radius!r} (arcsec)")
        cy, cx = _centre(centre)
        d2 = _distances_squared(shape, ps, (cy, cx))
        mask = ~((d2 >= r_in**2) & (d2 <= r_out**2))
        return cls._from_shape_mask(mask, ps, f"annular mask with inner_radius = {inner_radius!r}, outer_radius = "
                                              f"{outer_radius!r} arcsec, centre = {centre!r}, shape_native = {shape}, "
                                              f"pixel_scales = {ps}")

    @classmethod
    def _from_shape_mask(cls, mask: np.ndarray, pixel_scales, description: str) -> "ImageGrid":
        """:meth:`from_mask` for a mask built from shape parameters; an all-masked one is refused naming them."""
        if mask.all():
            raise GridError(f"{description} has no unmasked pixel: empty grid")
        return cls.from_mask(mask, pixel_scales)

    @classmethod
    def from_mask_file(cls, path, pixel_scales, hdu: int | str = 0) -> "ImageGrid":
        """Mask from a boolean ``.npy`` or FITS image (True/1 = masked, PyAutoArray's meaning)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise GridError(f"{path}: mask file does not exist")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            try:
                m = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise GridError(f"{path}: cannot read mask as .npy ({exc})") from None
        elif suffix in (".fits", ".fit", ".fts"):
            from astropy.io import fits

            try:
                with fits.open(path, memmap=False) as hdul:
                    try:
                        data = hdul[hdu].data
                    except (IndexError, KeyError):
                        raise GridError(f"{path.name}: mask has no HDU {hdu!r} (file has {len(hdul)} HDUs)") from None
                    if data is None:
                        raise GridError(f"{path.name}: mask HDU {hdu!r} holds no data")
                    m = np.array(data)
            except GridError:
                raise
            except OSError as exc:
                raise GridError(f"{path}: cannot read mask as FITS ({exc})") from None
            if m.dtype.kind == "f":
                if not np.isin(m, (0.0, 1.0)).all():
                    bad = ~np.isin(m, (0.0, 1.0))
                    i, j = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape) if m.ndim == 2 else (0, 0)
                    raise GridError(f"{path.name}: mask[{i}, {j}] = {float(m[i, j])!r}, expected 0 (unmasked) or 1 (masked)")
                m = m.astype(np.int8)
        else:
            raise GridError(f"{path}: unknown mask format {suffix!r} (expected .npy or .fits)")
        return cls.from_mask(m, pixel_scales, source=f"{path.name}: mask")

    @classmethod
    def from_points(cls, grid_radians) -> "ImageGrid":
        """An irregular (M, 2) point set, (y, x) in radians (not a lattice)."""
        g = np.asarray(grid_radians)
        if g.dtype.kind not in "biuf":
            raise GridError(f"grid_radians has dtype {g.dtype}, expected real numbers (radians)")
        return cls(g)
