"""Readers of interferometer visibilities in bounded chunks: the one room for dataset I/O.

The contract every reader keeps (a Measurement Set, a UVFITS file, a PyAutoLens FITS folder, an ``.npz``, or
arrays already in memory):

* :meth:`VisibilitySource.chunk_ids` is a deterministic list of small, picklable, JSON-able descriptors.
  Concatenating :meth:`VisibilitySource.read_chunk` over it, in that order, gives the dataset in the order of
  the PyAutoLens CASA recipe (docs/data.md): for each selected spectral window (in selection order), its
  channels flattened, then the windows concatenated.
  Readers of files with channels (Measurement Set, UVFITS) also take ``order="rows"``: chunks of rows with all
  their selected channels, each cell read once, the same visibilities in another order (per window: row blocks,
  channel-major within a block). Sums over visibilities may use it; ``describe()["order"]`` records it, and a
  source must be opened again with the same order (and chunk size) to give the same chunks.
* :meth:`VisibilitySource.read_chunk` opens the file itself (it runs on a Dask worker) and returns a
  :class:`VisibilityChunk` of Stokes I visibilities with flagged and zero / non-finite-weight visibilities
  **dropped and counted**; memory is bounded by the chunk size, never by the dataset's size.
* :meth:`VisibilitySource.describe` is a JSON-able record of where the data came from (format, path,
  selection, which noise column was used, sizes / mtimes / checksums identifying the source): the store keeps
  it instead of the visibilities.
"""

from wtilde_dask.io.base import ArraySource, VisibilityChunk, VisibilitySource, concatenate_chunks
from wtilde_dask.io.open import load_dataset, open_visibilities, reopen_source

__all__ = ["VisibilityChunk", "VisibilitySource", "ArraySource", "concatenate_chunks", "open_visibilities",
           "load_dataset", "reopen_source"]
