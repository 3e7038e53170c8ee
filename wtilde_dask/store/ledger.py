"""The blocks of W-tilde and their ledger: writing, reading and checking (bi <= bj) blocks, and the (nb, nb)
checksums that say which are done (written only by the orchestrator, after a block's write returned)."""

from __future__ import annotations

import contextlib
import functools
import pathlib

import numpy as np
import zarr

from wtilde_dask.errors import StoreError
from wtilde_dask.store.layout import block_checksum

class BlockLedger:
    """Blocks and ledger of a :class:`~wtilde_dask.store.WTildeStore` (uses its ``path``, ``group``, ``plan``, ``dtype``)."""

    @functools.cached_property
    def _w(self):
        return self.group["w_tilde"]

    def _check_block(self, bi: int, bj: int) -> tuple[slice, slice]:
        nb = self.plan.n_blocks_side
        if not (0 <= bi <= bj < nb):
            raise StoreError(f"block ({bi}, {bj}): stored blocks have 0 <= bi <= bj < {nb}")
        return self.plan.pixel_range(bi), self.plan.pixel_range(bj)

    def write_block(self, bi: int, bj: int, array) -> int:
        """Write block (bi, bj) (bi <= bj) and return its checksum (see :func:`block_checksum`)."""
        rows, cols = self._check_block(bi, bj)
        block = np.ascontiguousarray(np.asarray(array), dtype=self.dtype)
        expected = (rows.stop - rows.start, cols.stop - cols.start)
        if block.shape != expected:
            raise StoreError(f"block ({bi}, {bj}): shape {block.shape}, expected {expected}")
        self._w[rows, cols] = block
        return block_checksum(block)

    def read_block(self, bi: int, bj: int) -> np.ndarray:
        """Stored block (bi, bj), bi <= bj, shape (len(pixel_range(bi)), len(pixel_range(bj)))."""
        rows, cols = self._check_block(bi, bj)
        return np.asarray(self._w[rows, cols])

    def chunk_key(self, bi: int, bj: int) -> str:
        """Key (relative path) of block (bi, bj)'s chunk in the store."""
        self._check_block(bi, bj)
        return f"w_tilde/c/{bi}/{bj}"

    def chunk_path(self, bi: int, bj: int) -> pathlib.Path:
        """File of block (bi, bj)'s chunk on disk (``STORE/w_tilde/c/bi/bj``)."""
        return self.path / self.chunk_key(bi, bj)

    def chunk_nbytes(self) -> int | None:
        """Bytes of every w_tilde chunk file (B x B x itemsize: no compression, edge chunks are stored
        full size); None if the array were compressed (size then says nothing)."""
        if tuple(self._w.compressors) or tuple(self._w.filters):
            return None
        return int(np.prod(self._w.chunks)) * np.dtype(self.dtype).itemsize

    def block_damage(self, bi: int, bj: int, checksum: int | None = None, *, read: bool = True) -> str | None:
        """Why stored block (bi, bj) cannot be trusted, or None when it is sound.

        Checked in order: the chunk file exists ("chunk file missing": Zarr would silently return the
        fill value NaN), has the size of an uncompressed (B, B) chunk ("chunk truncated: n of N bytes"),
        and, when ``read``, decodes ("unreadable: ...") and hashes to ``checksum`` (the ledger entry;
        "checksum differs from the ledger"). ``read=False`` costs one ``stat`` per block.
        """
        path = self.chunk_path(bi, bj)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return "chunk file missing"
        except OSError as err:
            return f"chunk file unreadable: {err}"
        expected = self.chunk_nbytes()
        if expected is not None and size != expected:
            return (f"chunk truncated: {size} of {expected} bytes" if size < expected
                    else f"chunk has {size} bytes, expected {expected}")
        if not read:
            return None
        try:
            block = self.read_block(bi, bj)
        except Exception as err:  # noqa: BLE001 - any decode failure means the block is bad
            return f"unreadable: {type(err).__name__}: {err}"
        if checksum is not None and block_checksum(block) != int(checksum):
            return "checksum differs from the ledger"
        return None

    def damaged_blocks(self, blocks=None, *, read: bool = True) -> list[tuple[int, int, str]]:
        """``(bi, bj, why)`` for each block the ledger calls done (or each of ``blocks``) that
        :meth:`block_damage` finds bad; ``read=False`` checks only existence and size of the chunk files."""
        ledger = self.ledger()
        blocks = self.done_blocks() if blocks is None else [(int(bi), int(bj)) for bi, bj in blocks]
        bad = []
        for bi, bj in blocks:
            why = self.block_damage(bi, bj, int(ledger[bi, bj]) if ledger[bi, bj] else None, read=read)
            if why is not None:
                bad.append((bi, bj, why))
        return bad

    # ---- ledger ------------------------------------------------------------------------------------
    def ledger(self) -> np.ndarray:
        """(nb, nb) uint64 checksums; 0 = block not done (always 0 below the diagonal).

        Raises StoreError naming the store when the ledger itself cannot be read (then no block can be trusted).
        """
        try:
            return np.asarray(zarr.open_array(store=str(self.path), path="ledger", mode="r")[:])
        except Exception as err:  # noqa: BLE001 - missing or undecodable ledger chunks
            raise StoreError(f"store {self.path}: its ledger (ledger/) cannot be read ({type(err).__name__}: {err}); "
                             "without it no block can be trusted: start over with --overwrite") from err

    def ledger_seconds(self) -> np.ndarray:
        """(nb, nb) float64 seconds each done block's task took; NaN where not done."""
        return np.asarray(zarr.open_array(store=str(self.path), path="ledger_seconds", mode="r")[:])

    def mark_done(self, bi: int, bj: int, checksum: int, seconds: float) -> None:
        """Record block (bi, bj) as written (orchestrator only, after the write returned)."""
        self.mark_done_many([(bi, bj, checksum, seconds)])

    def mark_done_many(self, entries) -> None:
        """Record many (bi, bj, checksum, seconds) at once: one write per touched ledger chunk."""
        if not entries:
            return
        ledger = self.group["ledger"]
        seconds_arr = self.group["ledger_seconds"]
        c = ledger.chunks[0]
        nb = self.plan.n_blocks_side
        by_chunk: dict[tuple[int, int], list] = {}
        for bi, bj, checksum, seconds in entries:
            self._check_block(bi, bj)
            if int(checksum) == 0:
                raise StoreError(f"block ({bi}, {bj}): checksum 0 means 'not done'")
            by_chunk.setdefault((bi // c, bj // c), []).append((bi, bj, int(checksum), float(seconds)))
        for (ci, cj), items in by_chunk.items():
            region = (slice(ci * c, min((ci + 1) * c, nb)), slice(cj * c, min((cj + 1) * c, nb)))
            sums = np.asarray(ledger[region])
            secs = np.asarray(seconds_arr[region])
            for bi, bj, checksum, seconds in items:
                sums[bi - ci * c, bj - cj * c] = checksum
                secs[bi - ci * c, bj - cj * c] = seconds
            # seconds first: a ledger entry (checksum) always has its time
            seconds_arr[region] = secs
            ledger[region] = sums

    def clear_blocks(self, blocks, *, delete_chunks: bool = False) -> None:
        """Forget blocks in the ledger (they are computed again on the next run); with ``delete_chunks``
        also remove their chunk files (after the ledger: a crash in between leaves a not-done block)."""
        blocks = [(int(bi), int(bj)) for bi, bj in blocks]
        ledger = self.group["ledger"]
        seconds = self.group["ledger_seconds"]
        for bi, bj in blocks:
            ledger[bi, bj] = 0
            seconds[bi, bj] = np.nan
        if delete_chunks:
            for bi, bj in blocks:
                with contextlib.suppress(FileNotFoundError):
                    self.chunk_path(bi, bj).unlink()

    def done_blocks(self) -> list[tuple[int, int]]:
        led = self.ledger()
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(led)) if i <= j]

    def missing_blocks(self) -> list[tuple[int, int]]:
        led = self.ledger()
        return [(bi, bj) for bi, bj in self.plan.blocks() if led[bi, bj] == 0]

    def n_done(self) -> int:
        return int(np.count_nonzero(np.triu(self.ledger())))

    def is_complete(self) -> bool:
        return self.n_done() == self.plan.n_blocks
