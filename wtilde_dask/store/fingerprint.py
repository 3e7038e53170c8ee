"""What a store was built from: the per-input sha256 fingerprint (so a resume refuses other inputs, naming each
difference) and the one-line summary of a source record."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from wtilde_dask.errors import StoreError


def _sha256(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()



def as_source(dataset_or_source):
    """A :class:`~wtilde_dask.io.VisibilitySource`: an Interferometer is wrapped in an ``ArraySource``."""
    from wtilde_dask.dataset import Interferometer
    from wtilde_dask.io import ArraySource, VisibilitySource

    if isinstance(dataset_or_source, VisibilitySource):
        return dataset_or_source
    if isinstance(dataset_or_source, Interferometer):
        return ArraySource(dataset_or_source)
    raise StoreError(f"dataset: expected an Interferometer or a VisibilitySource, got {type(dataset_or_source).__name__}")


def source_summary(record: dict) -> str:
    """One line naming a source record: format, path, selection, noise column, size."""
    parts = [f"{record.get('format', '?')} {record.get('path', '')}".strip()]
    selection = record.get("selection")
    if selection:
        parts.append("selection " + ", ".join(f"{k}={v}" for k, v in selection.items() if v is not None))
    if record.get("noise_column"):
        parts.append(f"noise from {record['noise_column']}")
    if record.get("n_visibilities") is not None:
        parts.append(f"{record['n_visibilities']} visibilities")
    return "; ".join(parts)


def _array_components_streamed(source) -> dict:
    """The uv_wavelengths / visibilities / noise_map components of a PyAutoLens FITS folder or .npz source, hashed
    chunk by chunk: the same sha256 as :func:`_sha256` of the whole arrays in memory (an Interferometer of the
    same data gives the same fingerprint), independent of the files' paths and modification times."""
    k = int(source.n_visibilities)
    fields = {"uv_wavelengths": ("<f8", (k, 2), "uv points"), "visibilities": ("<c16", (k,), "visibilities"),
              "noise_map": ("<c16", (k,), "noise values")}
    hashes = {}
    for name, (dtype, shape, _) in fields.items():
        hashes[name] = hashlib.sha256(f"{np.dtype(dtype).str}{shape}".encode())
    for chunk in source:
        for name in fields:
            hashes[name].update(np.ascontiguousarray(getattr(chunk, name), fields[name][0]).tobytes())
    out = {}
    for name, (_, _, what) in fields.items():
        hashes[name].update(b"|")
        out[name] = (hashes[name].hexdigest(), f"{k} {what}")
    return out


def fingerprint_components(dataset, grid, *, method: str, dtype: str, block_size: int) -> dict:
    """Per-input sha256 and a one-line summary: what the store was built from.

    ``dataset``: an Interferometer / ``ArraySource`` (arrays in memory: components uv_wavelengths, visibilities,
    noise_map, the sha256 of each array), a PyAutoLens FITS folder / ``.npz`` (the same three components, hashed
    chunk by chunk: equal to the in-memory hash, blind to paths and mtimes) or any other
    :class:`~wtilde_dask.io.VisibilitySource` such as a Measurement Set (component
    ``source``: the sha256 of its ``describe()`` record -- path, selection, noise column, file sizes and mtimes --
    instead of hashing 10^9 visibilities). Then mask (lattice mask or "none"), grid (grid_radians, pixel scales,
    lattice indices), method, dtype, block_size.
    """
    from wtilde_dask.io import ArraySource
    from wtilde_dask.io.folder import FitsFolderSource, NpzSource

    source = as_source(dataset)
    mask = grid.mask
    if isinstance(source, ArraySource):
        dataset = source.dataset
        comps = {
            "uv_wavelengths": (_sha256(np.asarray(dataset.uv_wavelengths, np.float64)),
                               f"{len(dataset.uv_wavelengths)} uv points"),
            "visibilities": (_sha256(np.asarray(dataset.visibilities, np.complex128)),
                             f"{len(dataset.visibilities)} visibilities"),
            "noise_map": (_sha256(np.asarray(dataset.noise_map, np.complex128)),
                          f"{len(dataset.noise_map)} noise values"),
        }
    elif isinstance(source, (FitsFolderSource, NpzSource)):
        comps = _array_components_streamed(source)
    else:
        record = source.describe()
        comps = {"source": (_sha256(json.dumps(record, sort_keys=True, default=str)), source_summary(record))}
    comps.update({
        "mask": (_sha256(np.asarray(mask, bool)) if mask is not None else _sha256("none"),
                 (f"{mask.shape[0]}x{mask.shape[1]} mask, {int((~np.asarray(mask)).sum())} unmasked pixels"
                  if mask is not None else "no mask (irregular point set)")),
        "grid": (_sha256(np.asarray(grid.grid_radians, np.float64),
                         None if grid.pixel_scales is None else tuple(float(s) for s in grid.pixel_scales),
                         None if grid.lattice_indices is None else np.asarray(grid.lattice_indices, np.int64)),
                 f"{len(grid.grid_radians)} pixels"
                 + ("" if grid.pixel_scales is None else
                    f", pixel scales {tuple(float(s) for s in grid.pixel_scales)} arcsec")),
        "method": (_sha256(str(method)), str(method)),
        "dtype": (_sha256(str(dtype)), str(dtype)),
        "block_size": (_sha256(int(block_size)), str(int(block_size))),
    })
    return {name: {"sha256": sha, "summary": summary} for name, (sha, summary) in comps.items()}


def combined_fingerprint(components: dict) -> str:
    return _sha256(*[f"{name}={components[name]['sha256']}" for name in sorted(components)])


def describe_differences(stored: dict, given: dict) -> list[str]:
    """Human lines naming each differing fingerprint component, e.g. ``mask: store has ..., given ...``."""
    lines = []
    for name in sorted(set(stored) | set(given)):
        a, b = stored.get(name), given.get(name)
        if a is None or b is None or a["sha256"] != b["sha256"]:
            same_summary = a is not None and b is not None and a["summary"] == b["summary"]
            sa = "missing" if a is None else a["summary"] + (f" (sha256 {a['sha256'][:12]})" if same_summary else "")
            sb = "missing" if b is None else b["summary"] + (f" (sha256 {b['sha256'][:12]})" if same_summary else "")
            lines.append(f"{name}: store has {sa}, given {sb}")
    return lines
