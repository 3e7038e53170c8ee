"""The upper-triangle block plan of the (M, M) W-tilde matrix.

W-tilde is symmetric, so only blocks ``(bi, bj)`` with ``bi <= bj`` are computed and stored:
``nb * (nb + 1) / 2`` blocks for ``nb = ceil(M / B)``. Block ``(bi, bj)`` covers the pixel rows
``pixel_range(bi)`` and columns ``pixel_range(bj)``; the last row/column of blocks is ragged when
``B`` does not divide ``M``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of an (n_pixels, n_pixels) symmetric matrix cut into (block_size, block_size) tiles."""

    n_pixels: int
    block_size: int

    def __post_init__(self):
        if int(self.n_pixels) < 1:
            raise ValueError(f"n_pixels: must be >= 1, got {self.n_pixels!r}")
        if int(self.block_size) < 1:
            raise ValueError(f"block_size: must be >= 1, got {self.block_size!r}")
        object.__setattr__(self, "n_pixels", int(self.n_pixels))
        object.__setattr__(self, "block_size", int(self.block_size))

    @property
    def n_blocks_side(self) -> int:
        """Number of block rows (= block columns), ``ceil(M / B)``."""
        return math.ceil(self.n_pixels / self.block_size)

    @property
    def n_blocks(self) -> int:
        """Number of upper-triangle blocks (bi <= bj), ``nb (nb + 1) / 2``."""
        nb = self.n_blocks_side
        return nb * (nb + 1) // 2

    def pixel_range(self, b: int) -> slice:
        """Pixel indices ``[b B, min((b + 1) B, M))`` of block row/column ``b``."""
        if not 0 <= b < self.n_blocks_side:
            raise IndexError(f"block index {b} outside 0..{self.n_blocks_side - 1}")
        start = b * self.block_size
        return slice(start, min(start + self.block_size, self.n_pixels))

    def block_shape(self, bi: int, bj: int) -> tuple[int, int]:
        """Shape of block (bi, bj): ``(len(pixel_range(bi)), len(pixel_range(bj)))``."""
        ri, rj = self.pixel_range(bi), self.pixel_range(bj)
        return (ri.stop - ri.start, rj.stop - rj.start)

    def blocks(self) -> list[tuple[int, int]]:
        """All upper-triangle blocks ``(bi, bj)``, ``bi <= bj``, row by row.

        Row-major order keeps consecutive tasks on the same row block ``bi`` (the row pixels'
        features are the same), and puts the long rows first so the ragged tail is short.
        """
        nb = self.n_blocks_side
        return [(bi, bj) for bi in range(nb) for bj in range(bi, nb)]

    def is_diagonal(self, bi: int, bj: int) -> bool:
        return bi == bj

    def block_chunks(self) -> tuple[int, ...]:
        """Chunk sizes along one axis, as dask expects them."""
        return tuple(self.pixel_range(b).stop - self.pixel_range(b).start for b in range(self.n_blocks_side))
