"""The three ways to get ``F = T^T W T`` (thin plumbing; the maths is in :mod:`curvature_kernels`).

* :class:`OutOfCoreCurvature`: each evaluation runs one task per stored block (bi <= bj) that reads the
  block from the Zarr store and returns ``T_I^T W_IJ T_J`` on the source columns it touches (the
  transpose is added off the diagonal); partial sums are tree-summed on the workers. Worker memory:
  a few blocks plus (S, S).
* :class:`PersistedCurvature`: the stored blocks are read once into the workers' memory (futures held
  by this object) and every evaluation runs the same per-block tasks on them.
* :class:`LatticeCurvature`: lattice stores; W is applied by FFT from the offset (and Hankel) kernel on
  the zero-padded (2ny, 2nx) box, never formed. Runs in this process (it is the fast path).

With ``client=None`` the block paths run the same functions serially in this process.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from wtilde_dask.inversion import curvature_kernels as ck
from wtilde_dask.inversion.mapping import as_mapping_matrix

TREE_FAN_IN = 8


@functools.lru_cache(maxsize=8)
def _open_store(path: str):
    from wtilde_dask.store import WTildeStore

    return WTildeStore.open(path)


def read_block(path: str, bi: int, bj: int) -> np.ndarray:
    """Stored block (bi, bj) of the store at ``path`` (worker side; the store handle is cached)."""
    return _open_store(str(path)).read_block(bi, bj)


def block_contribution_from_store(path: str, bi: int, bj: int, T_i, T_j):
    """Read block (bi, bj) and return its compact contribution ``(cols_i, cols_j, T_I^T W_IJ T_J)``."""
    return ck.curvature_block(T_i, read_block(path, bi, bj), T_j)


def read_block_nbytes(path: str, bi: int, bj: int) -> int:
    """Plain read of block (bi, bj), returning its size in bytes (the read-rate yardstick)."""
    return int(read_block(path, bi, bj).nbytes)


def accumulate_contributions(n_source_pixels: int, diagonals, *parts) -> np.ndarray:
    """(S, S) sum of a group of compact block contributions."""
    return ck.sum_block_contributions(n_source_pixels, parts, diagonals)


def _tree_sum(client, futures):
    while len(futures) > 1:
        futures = [
            client.submit(ck.sum_arrays, *futures[i : i + TREE_FAN_IN], pure=False)
            for i in range(0, len(futures), TREE_FAN_IN)
        ]
    return futures[0]


class _BlockCurvature:
    """Shared machinery of the two block paths: split T by block rows, map, group-sum, tree-sum."""

    def __init__(self, store, client=None, group_size: int = 8):
        from wtilde_dask.store import StoreError, WTildeStore

        self.store = store if isinstance(store, WTildeStore) else WTildeStore.open(store)
        if not self.store.is_complete():
            raise StoreError(
                f"store {self.store.path}: incomplete, {self.store.n_done()}/{self.store.plan.n_blocks} blocks "
                "done; finish it before inverting"
            )
        self.path = str(self.store.path)
        self.plan = self.store.plan
        self.blocks = self.plan.blocks()
        self.client = client
        self.group_size = int(group_size)

    @property
    def n_pixels(self) -> int:
        return self.plan.n_pixels

    @property
    def stored_bytes(self) -> int:
        """Bytes of all stored blocks (what one out-of-core evaluation reads)."""
        item = np.dtype(self.store.dtype).itemsize
        return int(sum(np.prod(self.plan.block_shape(bi, bj)) for bi, bj in self.blocks) * item)

    def _row_slices(self, T):
        return [T[self.plan.pixel_range(b)] for b in range(self.plan.n_blocks_side)]

    def _local_block(self, bi, bj):  # pragma: no cover - overridden
        raise NotImplementedError

    def _submit_block(self, bi, bj, T_i, T_j):  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, mapping_matrix) -> np.ndarray:
        """(S, S) F for the (M, S) mapping matrix."""
        T = as_mapping_matrix(mapping_matrix, self.n_pixels)
        S = T.shape[1]
        rows = self._row_slices(T)
        if self.client is None:
            F = np.zeros((S, S))
            for bi, bj in self.blocks:
                part = ck.curvature_block(rows[bi], self._local_block(bi, bj), rows[bj])
                ck.add_block_contribution(F, part, bi == bj)
            return F
        client = self.client
        row_futures = client.scatter(rows, hash=False)
        groups = []
        for g0 in range(0, len(self.blocks), self.group_size):
            chunk = self.blocks[g0 : g0 + self.group_size]
            parts = [self._submit_block(bi, bj, row_futures[bi], row_futures[bj]) for bi, bj in chunk]
            diag = [bi == bj for bi, bj in chunk]
            groups.append(client.submit(accumulate_contributions, S, diag, *parts, pure=False))
        return np.asarray(_tree_sum(client, groups).result())


    def apply(self, x) -> np.ndarray:
        """(M,) ``W x`` from the blocks (serially in this process: used once per fit for residuals)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.zeros(self.n_pixels)
        for bi, bj in self.blocks:
            ri, rj = self.plan.pixel_range(bi), self.plan.pixel_range(bj)
            a, b = ck.w_block_apply(self._block_here(bi, bj), x[ri], x[rj], bi == bj)
            y[ri] += a
            if b is not None:
                y[rj] += b
        return y

    def _block_here(self, bi, bj):
        return self._local_block(bi, bj)


class OutOfCoreCurvature(_BlockCurvature):
    """F from the store, reading every stored block once per evaluation (module doc)."""

    def _local_block(self, bi, bj):
        return self.store.read_block(bi, bj)

    def _submit_block(self, bi, bj, T_i, T_j):
        return self.client.submit(block_contribution_from_store, self.path, bi, bj, T_i, T_j, pure=False)

    def plain_read_seconds(self) -> tuple[float, int]:
        """(seconds, bytes) to read every stored block with the same task layout, doing nothing else."""
        t0 = time.perf_counter()
        if self.client is None:
            n = sum(read_block_nbytes(self.path, bi, bj) for bi, bj in self.blocks)
        else:
            futs = [self.client.submit(read_block_nbytes, self.path, bi, bj, pure=False) for bi, bj in self.blocks]
            n = sum(self.client.gather(futs))
        return time.perf_counter() - t0, int(n)


class PersistedCurvature(_BlockCurvature):
    """F from W blocks held in the workers' memory (read once at construction, reused)."""

    def __init__(self, store, client=None, group_size: int = 8):
        super().__init__(store, client, group_size)
        if client is None:
            self._blocks = {(bi, bj): self.store.read_block(bi, bj) for bi, bj in self.blocks}
        else:
            self._blocks = {
                (bi, bj): client.submit(read_block, self.path, bi, bj, key=f"w_tilde-persist-{self.store.fingerprint[:12]}-({bi},{bj})")
                for bi, bj in self.blocks
            }
            from distributed import wait

            done = wait(list(self._blocks.values()))  # in the workers' memory now (nothing comes back here)
            for fut in done.done:
                if fut.status == "error":
                    fut.result()  # raises the worker's exception

    def _local_block(self, bi, bj):
        return self._blocks[(bi, bj)]

    def _block_here(self, bi, bj):
        blk = self._blocks[(bi, bj)]
        return blk.result() if hasattr(blk, "result") else blk

    def _submit_block(self, bi, bj, T_i, T_j):
        return self.client.submit(ck.curvature_block, T_i, self._blocks[(bi, bj)], T_j, pure=False)

    def release(self) -> None:
        """Drop the workers' copies of W."""
        self._blocks = {}


class LatticeCurvature:
    """F on a lattice by FFT (block-Toeplitz + Hankel apply), never forming W.

    ``kernel_sum`` and ``kernel_hankel`` (2ny-1, 2nx-1) as in :func:`curvature_kernels.lattice_operator`
    (``W_ij = kernel_sum[r_i-r_j + ny-1, c_i-c_j + nx-1] + kernel_hankel[r_i+r_j, c_i+c_j]``);
    ``box_indices`` (M, 2) box-relative (row, col) of each image pixel.
    """

    def __init__(self, kernel_sum, box_indices, kernel_hankel=None, *, batch_size: int = 8, workers=None, fft_shape=None):
        self.operator = ck.lattice_operator(kernel_sum, kernel_hankel, fft_shape)
        self.box_indices = np.asarray(box_indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.workers = workers

    @property
    def n_pixels(self) -> int:
        return int(self.box_indices.shape[0])

    def __call__(self, mapping_matrix) -> np.ndarray:
        T = as_mapping_matrix(mapping_matrix, self.n_pixels)
        return ck.curvature_lattice(T, self.box_indices, self.operator, batch_size=self.batch_size, workers=self.workers)

    def apply(self, x) -> np.ndarray:
        """(M,) ``W x``."""
        return ck.lattice_apply_vector(np.asarray(x, dtype=np.float64), self.box_indices, self.operator, self.workers)


class DenseCurvature:
    """F from an in-memory (M, M) W (small problems, tests)."""

    def __init__(self, w_tilde):
        self.w_tilde = np.asarray(w_tilde, dtype=np.float64)

    @property
    def n_pixels(self) -> int:
        return int(self.w_tilde.shape[0])

    def __call__(self, mapping_matrix) -> np.ndarray:
        return ck.curvature_dense(as_mapping_matrix(mapping_matrix, self.n_pixels), self.w_tilde)

    def apply(self, x) -> np.ndarray:
        """(M,) ``W x``."""
        return self.w_tilde @ np.asarray(x, dtype=np.float64)
