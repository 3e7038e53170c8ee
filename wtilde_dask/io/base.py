"""The contract every visibility reader keeps: :class:`VisibilitySource` yielding bounded
:class:`VisibilityChunk` s, and :class:`ArraySource` serving an in-memory dataset (see :mod:`wtilde_dask.io`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE

__all__ = ["VisibilityChunk", "VisibilitySource", "ArraySource", "concatenate_chunks"]


class VisibilityChunk(NamedTuple):
    """One chunk of Stokes I visibilities, ready for the sums of docs/mathematics.md.

    uv_wavelengths : (k, 2) float64, (u, v) in wavelengths (UVW[:, :2] x CHAN_FREQ / c for a Measurement Set)
    visibilities   : (k,) complex128, Stokes I
    noise_map      : (k,) complex128, real = sigma of Re(V), imag = sigma of Im(V); finite and > 0
    n_flagged      : visibilities of this chunk dropped because FLAG / FLAG_ROW said so
    n_bad_weight   : visibilities dropped because their weight (sigma) was zero or not finite, or (not flagged)
                     their data or uv were not finite
    """

    uv_wavelengths: np.ndarray
    visibilities: np.ndarray
    noise_map: np.ndarray
    n_flagged: int = 0
    n_bad_weight: int = 0

    @property
    def n_visibilities(self) -> int:
        return int(self.visibilities.shape[0])


class VisibilitySource:
    """Base class of the chunked readers (see the module docstring for the contract)."""

    path: str = ""

    def chunk_ids(self) -> list:
        raise NotImplementedError

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_ids())

    def __iter__(self):
        for chunk_id in self.chunk_ids():
            yield self.read_chunk(chunk_id)


class ArraySource(VisibilitySource):
    """A validated in-memory :class:`~wtilde_dask.dataset.Interferometer` served in chunks of ``chunk_size``."""

    def __init__(self, dataset, chunk_size: int = DEFAULT_CHUNK_SIZE):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size = {chunk_size!r} must be >= 1")
        self.dataset = dataset
        self.chunk_size = int(chunk_size)
        self.path = dataset.name

    def chunk_ids(self) -> list:
        k = self.dataset.n_visibilities
        return [(start, min(start + self.chunk_size, k)) for start in range(0, k, self.chunk_size)]

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = chunk_id
        d = self.dataset
        return VisibilityChunk(d.uv_wavelengths[start:stop], d.visibilities[start:stop], d.noise_map[start:stop])

    def describe(self) -> dict:
        return {"format": "arrays", "path": self.path, "n_visibilities": self.dataset.n_visibilities}


def concatenate_chunks(chunks) -> VisibilityChunk:
    """Concatenate chunks (small data only: this materialises everything)."""
    chunks = list(chunks)
    if not chunks:
        return VisibilityChunk(np.zeros((0, 2)), np.zeros(0, complex), np.zeros(0, complex))
    return VisibilityChunk(
        np.concatenate([c.uv_wavelengths for c in chunks]),
        np.concatenate([c.visibilities for c in chunks]),
        np.concatenate([c.noise_map for c in chunks]),
        sum(c.n_flagged for c in chunks),
        sum(c.n_bad_weight for c in chunks),
    )
