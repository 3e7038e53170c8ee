"""Pure array kernels (NumPy / JAX): no Dask, no files.

Importing this package turns on JAX float64 (``jax_enable_x64``): every W-tilde number is fp64. JAX's flag is
process-wide (a function compiled under it keeps float64; a scoped switch would leave jitted functions built
outside the scope in float32), so it is set once here, at the bottom of the package, as PyAutoArray does on its
own import. ``import wtilde_dask`` alone does not import JAX (the package root is lazy); the flag is set when
kernels, the inversion or the fit are first used.
"""

import jax

jax.config.update("jax_enable_x64", True)


def enable_x64() -> None:
    """Make sure JAX computes in float64 (idempotent; called implicitly on import)."""
    jax.config.update("jax_enable_x64", True)
