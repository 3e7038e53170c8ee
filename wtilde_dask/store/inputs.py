"""The visibilities copied into a store's ``inputs/``: written chunk by chunk, read back as a chunked source."""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import zarr

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE
from wtilde_dask.errors import StoreError
from wtilde_dask.io.base import VisibilityChunk, VisibilitySource

_INPUT_ROWS = 1 << 17  # rows per Zarr chunk of the copied inputs


def _copy_source(inputs: zarr.Group, source) -> int:
    """Stream ``source``'s chunks into inputs/uv_wavelengths, visibilities, noise_map (K, 2); return K."""
    arrays = {name: inputs.create_array(name, shape=(0, 2), chunks=(_INPUT_ROWS, 2), dtype="float64")
              for name in ("uv_wavelengths", "visibilities", "noise_map")}
    k = 0
    for chunk in source:
        n = chunk.n_visibilities
        if n == 0:
            continue
        values = {"uv_wavelengths": np.asarray(chunk.uv_wavelengths, np.float64),
                  "visibilities": np.stack([chunk.visibilities.real, chunk.visibilities.imag], axis=1),
                  "noise_map": np.stack([chunk.noise_map.real, chunk.noise_map.imag], axis=1)}
        for name, arr in arrays.items():
            arr.resize((k + n, 2))
            arr[k:k + n] = values[name]
        k += n
    return k


@functools.lru_cache(maxsize=8)
def _input_arrays(path: str) -> dict:
    return {name: zarr.open_array(store=path, path=f"inputs/{name}", mode="r")
            for name in ("uv_wavelengths", "visibilities", "noise_map")}


class StoreInputsSource(VisibilitySource):
    """The visibilities copied into a store's ``inputs/``, read in chunks of ``chunk_size`` rows (picklable:
    only the path travels; each process opens the arrays itself)."""

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE):
        if int(chunk_size) < 1:
            raise StoreError(f"chunk_size = {chunk_size!r} must be >= 1")
        self.path = str(pathlib.Path(path).resolve())
        self.chunk_size = int(chunk_size)
        self.n_visibilities = int(_input_arrays(self.path)["visibilities"].shape[0])

    def chunk_ids(self) -> list:
        k = self.n_visibilities
        return [(start, min(start + self.chunk_size, k)) for start in range(0, k, self.chunk_size)]

    def read_chunk(self, chunk_id) -> VisibilityChunk:
        start, stop = (int(i) for i in chunk_id)
        arrays = _input_arrays(self.path)
        vis = np.asarray(arrays["visibilities"][start:stop])
        noise = np.asarray(arrays["noise_map"][start:stop])
        return VisibilityChunk(np.asarray(arrays["uv_wavelengths"][start:stop]), vis[:, 0] + 1j * vis[:, 1],
                               noise[:, 0] + 1j * noise[:, 1])

    def describe(self) -> dict:
        return {"format": "store-inputs", "path": self.path, "n_visibilities": self.n_visibilities}
