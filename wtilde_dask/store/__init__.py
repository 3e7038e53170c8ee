"""The W-tilde store: one self-describing Zarr v3 group on disk (the only module that knows its layout).

Layout of ``STORE.zarr`` (specified in docs/store-format.md)::

    zarr.json                 group attrs: wtilde_format, format_version, method, dtype, n_pixels (M),
                              block_size (B), n_blocks_side (nb), n_blocks, fingerprint (sha256) and
                              fingerprint_components, dataset / grid summaries, software versions,
                              created / updated, last_run
    inputs/                   what the workers read (nothing large travels through the scheduler)
      uv_wavelengths          (K, 2) float64, (u, v) in wavelengths          } only when the visibilities are
      visibilities            (K, 2) float64, (real, imag) [Jy]              } copied (attrs copied_visibilities);
      noise_map               (K, 2) float64, (sigma_real, sigma_imag) [Jy]  } else attrs "source" says where they are
      grid_radians            (M, 2) float64, (y, x) of the unmasked pixels [rad]
      mask                    (ny, nx) bool, True = masked (lattice grids only)
      lattice_indices         (M, 2) int64, (row, col) of each pixel in the (ny, nx) lattice
                              inputs attrs: pixel_scales (sy, sx) [arcsec], shape_native, name
    w_tilde                   (M, M) float64 (or float32), chunks (B, B), no compression;
                              only the blocks (bi, bj) with bi <= bj are written
    ledger                    (nb, nb) uint64: checksum of block (bi, bj) once written, 0 = not done
    ledger_seconds            (nb, nb) float64: seconds the block's task took (compute + write)
    dirty_image               (M,) float64, d_i = sum_k [wr Re(V) cos(phi_ik) - wi Im(V) sin(phi_ik)]
    kernel, kernel_hankel     lattice offset / Hankel kernels (method "lattice")
    inversion/...             results written by the inversion (write_array("inversion/NAME", ...))
    lock/zarr.json            present while a run holds the store: attrs host, pid, started, lease_until
    .wtilde-reserve           while a run is live: a few hundred KiB of allocated space, deleted when the
                              disk fills so that the ledger can still record every finished block
    ingest/                   the chunked pass over the visibilities (wtilde_dask.ingest): attrs plan, state
      nodes/L{l}_{i}/         one finished node of the fixed summation tree over chunk groups: arrays
                              dirty_image, kernel, kernel_hankel (those asked for); attrs complete, checksum and
                              the scalar sums (written by the orchestrator after the arrays: the ingest ledger)

Group attrs also hold ``source`` (the reader's describe(): format, path, selection, noise column, sizes /
mtimes), ``copied_visibilities`` and, once the pass is done, ``visibility_sums`` (chi_squared_data,
noise_normalization, n_visibilities, n_flagged, n_bad_weight): with them a store is all an inversion needs.

The ledger is written only by the orchestrator, after a block's write returned: a crash between the
two means the block is computed again (block tasks are idempotent).
A done block is trusted when its chunk file exists with the size of an uncompressed (B, B) chunk and,
when read, hashes to its ledger checksum (:meth:`WTildeStore.block_damage`); a bad one is cleared
(:meth:`WTildeStore.clear_blocks` with ``delete_chunks``) and computed again.

Where things live: :mod:`~wtilde_dask.store.layout` (format, reserved paths, checksums, new-store attributes),
:mod:`~wtilde_dask.store.fingerprint` (what a store was built from), :mod:`~wtilde_dask.store.lock` (the run's lock),
:mod:`~wtilde_dask.store.core` (:class:`WTildeStore`: create, open, attributes, inputs) with its parts
:mod:`~wtilde_dask.store.ledger` (blocks and ledger), :mod:`~wtilde_dask.store.ingest_nodes` (the visibility pass's
tree), :mod:`~wtilde_dask.store.arrays` (named arrays), :mod:`~wtilde_dask.store.views` (dask / xarray),
:mod:`~wtilde_dask.store.reserve` (the disk reserve), and :mod:`~wtilde_dask.store.inputs` (copied visibilities).
"""

from __future__ import annotations

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE, RADIANS_TO_ARCSEC  # noqa: F401 (re-exported)
from wtilde_dask.errors import StoreError, StoreLockedError  # noqa: F401 (re-exported)
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource  # noqa: F401 (re-exported)
from wtilde_dask.store.core import WTildeStore, open_w_tilde
from wtilde_dask.store.fingerprint import (_array_components_streamed, _sha256, as_source,  # noqa: F401
                                           combined_fingerprint, describe_differences, fingerprint_components,
                                           source_summary)
from wtilde_dask.store.inputs import _INPUT_ROWS, StoreInputsSource, _copy_source, _input_arrays  # noqa: F401
from wtilde_dask.store.layout import (_LEDGER_CHUNK, ARCSEC_PER_RADIAN, CHECKSUM, DTYPES, FORMAT_NAME,  # noqa: F401
                                      FORMAT_VERSION, INGEST_GROUP, LOCK_GROUP, METHODS, RESERVE_FILE,
                                      _looks_like_store, _now, _software_versions, arrays_checksum,
                                      block_checksum)
from wtilde_dask.store.lock import StoreLock, _pid_alive, lock_is_stale, read_lock  # noqa: F401
from wtilde_dask.store.views import _read_symmetric_block, _w_tilde_array  # noqa: F401
from wtilde_dask.tiling import BlockPlan  # noqa: F401 (re-exported)

__all__ = ["WTildeStore", "open_w_tilde", "StoreLock", "StoreInputsSource", "StoreError", "StoreLockedError",
           "read_lock", "lock_is_stale", "block_checksum", "arrays_checksum", "as_source", "source_summary",
           "fingerprint_components", "combined_fingerprint", "describe_differences", "FORMAT_NAME", "FORMAT_VERSION"]
