"""Space held back for the bookkeeping of a run on a filling disk: ``STORE/.wtilde-reserve``, deleted when the
disk fills so that the ledger can still record every finished block."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib

from wtilde_dask.store.layout import RESERVE_FILE

class DiskReserve:
    """The disk reserve of a :class:`~wtilde_dask.store.WTildeStore` (uses its ``path`` and ``plan``)."""

    @property
    def reserve_path(self) -> pathlib.Path:
        return self.path / RESERVE_FILE

    def reserve_nbytes(self) -> int:
        """Bytes a run holds back: the ledger and ledger_seconds uncompressed plus 256 KiB for attributes."""
        nb = self.plan.n_blocks_side
        return 2 * nb * nb * 8 + 256 * 1024

    def reserve_space(self) -> None:
        """Allocate ``STORE/.wtilde-reserve`` (:meth:`reserve_nbytes` bytes, really allocated, not sparse).

        When the disk fills during a run, the orchestrator deletes it (:meth:`release_space`) to record in
        the ledger every block whose write returned. Raises OSError (ENOSPC) when even that does not fit.
        """
        n = self.reserve_nbytes()
        path = self.reserve_path
        try:
            if path.exists() and path.stat().st_blocks * 512 >= n:
                return
            with open(path, "wb") as fh:
                try:
                    os.posix_fallocate(fh.fileno(), 0, n)
                except (AttributeError, OSError) as err:
                    if getattr(err, "errno", None) == errno.ENOSPC:
                        raise
                    fh.write(b"\0" * n)  # filesystems without fallocate
                    fh.flush()
                    os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise

    def release_space(self) -> bool:
        """Delete the reserve file; True when there was one to free."""
        try:
            self.reserve_path.unlink()
            return True
        except FileNotFoundError:
            return False
