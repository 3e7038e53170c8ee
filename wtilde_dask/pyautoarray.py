"""The PyAutoArray export of a lattice store: the kernel in PyAutoArray's ``nufft_precision_operator`` layout and
the fields of its ``SparseTerms`` (``wtilde export-pyautoarray STORE OUT.npy``), and reading them back.

PyAutoLens users then fit with no visibilities in memory::

    terms = wtilde_dask.pyautoarray.load_sparse_terms("op_sparse_terms.npz")
    dataset = autoarray.Interferometer.from_sparse_terms(terms, real_space_mask=mask)
"""

from __future__ import annotations

import logging
import pathlib
import warnings

import numpy as np

from wtilde_dask.errors import ExportError

logger = logging.getLogger(__name__)

__all__ = ["export_pyautoarray", "pyautoarray_sparse_terms", "load_sparse_terms", "ExportError"]


def pyautoarray_sparse_terms(store, operator: np.ndarray, *, log=None) -> dict:
    """The fields of PyAutoArray's ``SparseTerms`` (autoarray 2026.10, ``inversion_interferometer_util``) for a
    lattice store: what ``Interferometer.from_sparse_terms(terms, real_space_mask)`` needs besides the kernel,
    so a PyAutoLens fit holds no visibilities.

    * ``nufft_precision_operator``: ``operator`` ((2ny, 2nx), :func:`wtilde_dask.kernels.lattice.to_pyautoarray`)
    * ``dirty_image_native`` (Ny, Nx): the store's ``dirty_image`` d_i = sum_k [wr Re(V) cos(phi) - wi Im(V) sin(phi)]
      placed on the mask's native shape, masked pixels 0
    * ``dirty_beam_native`` (Ny, Nx): sum_k wr_k cos(phi_ik) (PyAutoArray's adjoint of the weights 1/sigma_re^2),
      one type-1 NUFFT per chunk of the store's visibilities (streamed; masked pixels 0)
    * ``sum_weights`` = sum_k wr_k; ``data_term`` = chi2_data = sum_k wr Re(V)^2 + wi Im(V)^2;
      ``noise_normalization`` = sum_k ln(2 pi sigma_re^2) + ln(2 pi sigma_im^2); ``n_vis`` = K -- from the store's
      visibility sums when it has them, else summed in the same pass
    * provenance ``shape_native``, ``pixel_scales`` (arcsec), ``origin`` (0, 0)
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.ingest import store_source
    from wtilde_dask.kernels.lattice import lattice_dirty_image
    from wtilde_dask.kernels.visibility_sums import chunk_partial

    grid = store.grid()
    if not grid.is_lattice:
        raise ExportError(f"{store.path}: the store's grid is an irregular point set; PyAutoArray's sparse terms "
                          "need a masked lattice grid")
    idx = np.asarray(grid.lattice_indices)
    shape = tuple(int(n) for n in grid.shape_native)

    def native(slim):
        out = np.zeros(shape)
        out[idx[:, 0], idx[:, 1]] = slim
        return out

    sums = store.visibility_sums()
    beam = np.zeros(grid.n_pixels)
    sum_weights, chi2, norm, n_vis = 0.0, 0.0, 0.0, 0
    source = store_source(store)
    log(f"export-pyautoarray: dirty beam from {source.describe().get('format')} {source.path} "
        f"({len(source.chunk_ids())} chunks)")
    for cid in source.chunk_ids():
        c = source.read_chunk(cid)
        if c.n_visibilities == 0:
            continue
        wr = 1.0 / c.noise_map.real**2
        beam += lattice_dirty_image(c.uv_wavelengths, np.ones(c.n_visibilities, complex), wr, wr, grid)
        sum_weights += float(np.sum(wr))
        if sums is None:
            part = chunk_partial(c.uv_wavelengths, c.visibilities, c.noise_map)
            chi2 += part.chi_squared_data
            norm += part.noise_normalization
            n_vis += part.n_visibilities
    if sums is not None:
        chi2, norm, n_vis = sums["chi_squared_data"], sums["noise_normalization"], sums["n_visibilities"]
    return {
        "nufft_precision_operator": np.asarray(operator, dtype=np.float64),
        "dirty_image_native": native(store.read_array("dirty_image")),
        "dirty_beam_native": native(beam),
        "sum_weights": float(sum_weights),
        "data_term": float(chi2),
        "noise_normalization": float(norm),
        "n_vis": int(n_vis),
        "shape_native": shape,
        "pixel_scales": tuple(float(p) for p in grid.pixel_scales),
        "origin": (0.0, 0.0),
    }


def load_sparse_terms(path):
    """PyAutoArray's ``SparseTerms`` from the ``.npz`` written by :func:`export_pyautoarray`; then
    ``autoarray.Interferometer.from_sparse_terms(terms, real_space_mask=mask)``."""
    from autoarray.inversion.inversion.interferometer.inversion_interferometer_util import SparseTerms

    with np.load(path, allow_pickle=False) as npz:
        fields = {k: npz[k] for k in npz.files}
    for name in ("sum_weights", "data_term", "noise_normalization"):
        fields[name] = float(fields[name])
    fields["n_vis"] = int(fields["n_vis"])
    fields["shape_native"] = tuple(int(v) for v in fields["shape_native"])
    for name in ("pixel_scales", "origin"):
        fields[name] = tuple(float(v) for v in fields[name])
    return SparseTerms(**fields)


def export_pyautoarray(store_path, out, *, sparse_terms: bool = True, log=None) -> pathlib.Path:
    """Write the store's lattice kernel in PyAutoArray's ``nufft_precision_operator`` layout (2ny, 2nx) to ``out``
    (``.npy``), for ``Interferometer.apply_sparse_operator(nufft_precision_operator=np.load(out))``, and (with
    ``sparse_terms``) ``OUT_sparse_terms.npz``: the fields of PyAutoArray's ``SparseTerms``
    (:func:`pyautoarray_sparse_terms`: dirty image, dirty beam, chi2_data, noise normalisation, ...) for
    ``Interferometer.from_sparse_terms(load_sparse_terms(path), real_space_mask=mask)`` -- a fit with no
    visibilities in memory.

    Reads the store's ``kernel`` (offset kernel of (wr+wi)/2, :mod:`wtilde_dask.kernels.lattice`); if the store
    has none (method "direct" on a lattice grid) it is computed from the store's inputs by NUFFT. With unequal
    real/imag noise (a ``kernel_hankel``) PyAutoArray cannot hold the exact W-tilde: the offset part is
    written and a warning says so.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.kernels.lattice import lattice_kernels, to_pyautoarray
    from wtilde_dask.store import WTildeStore

    store = WTildeStore.open(store_path, mode="r")
    if store.has_array("kernel"):
        kernel = store.read_array("kernel")
        hankel = store.read_array("kernel_hankel") if store.has_array("kernel_hankel") else None
    else:
        grid = store.grid()
        if not grid.is_lattice:
            raise ExportError(f"{store_path}: the store's grid is an irregular point set; PyAutoArray's "
                              "nufft_precision_operator needs a masked lattice grid")
        log(f"export-pyautoarray: {store_path} has no 'kernel' (method {store.method!r}); computing it by NUFFT")
        ds = store.dataset()
        lk = lattice_kernels(ds.uv_wavelengths, ds.weights_real, ds.weights_imag, grid)
        kernel, hankel = lk.kernel, lk.kernel_hankel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        operator = to_pyautoarray(kernel, hankel)
    for w in caught:
        log(f"export-pyautoarray: warning: {w.message}")
    out = pathlib.Path(out)
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")
    terms = pyautoarray_sparse_terms(store, operator, log=log) if sparse_terms else None
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, operator)
    log(f"export-pyautoarray: wrote {out} shape {operator.shape} (PyAutoArray nufft_precision_operator layout); "
        "use dataset.apply_sparse_operator(nufft_precision_operator=np.load(path))")
    if terms is not None:
        terms_path = out.with_name(out.stem + "_sparse_terms.npz")
        part = terms_path.with_name(terms_path.name + ".part.npz")
        np.savez(part, **{k: np.asarray(v) for k, v in terms.items()})
        part.replace(terms_path)
        log(f"export-pyautoarray: wrote {terms_path} (PyAutoArray SparseTerms: dirty image, dirty beam, "
            f"data_term = chi2_data {terms['data_term']:.6g}, noise_normalization {terms['noise_normalization']:.6g}, "
            f"n_vis {terms['n_vis']}); use Interferometer.from_sparse_terms("
            "wtilde_dask.pyautoarray.load_sparse_terms(path), real_space_mask=mask)")
    return out
