"""The inversion: reuse the stored W-tilde for curvature, data vector, reconstruction and evidence.

Pure maths: :mod:`mapping` (T), :mod:`lens` (SIE + shear ray-tracing), :mod:`mesh` (rectangular /
Delaunay interpolation), :mod:`regularization` (H, log det), :mod:`curvature_kernels` (F = T^T W T
from blocks, dense W or the lattice kernel by FFT; D = T^T d), :mod:`solve` (Cholesky, chi2,
evidence), :mod:`reference` (brute force from the visibilities). Dask plumbing: :mod:`curvature`.
The object a sampler uses: :class:`wtilde_dask.inversion.fitter.WTildeFitter`.
"""

from wtilde_dask.inversion.fitter import FitterError, WTildeFitter
from wtilde_dask.inversion.lens import LensModel
from wtilde_dask.inversion.mapping import MappingError, MappingTriplets, as_mapping_matrix, mapping_matrix_from_triplets
from wtilde_dask.inversion.mesh import DelaunayMesh, MeshError, RectangularMesh
from wtilde_dask.inversion.regularization import regularization_from_mesh, regularization_matrix
from wtilde_dask.inversion.solve import InversionError, InversionResult, VisibilitySums, solve_inversion, visibility_sums

__all__ = [
    "FitterError",
    "WTildeFitter",
    "LensModel",
    "MappingError",
    "MappingTriplets",
    "as_mapping_matrix",
    "mapping_matrix_from_triplets",
    "DelaunayMesh",
    "MeshError",
    "RectangularMesh",
    "regularization_from_mesh",
    "regularization_matrix",
    "InversionError",
    "InversionResult",
    "VisibilitySums",
    "solve_inversion",
    "visibility_sums",
]
