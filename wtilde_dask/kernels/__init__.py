"""Pure array kernels (NumPy / JAX): no Dask, no files.

Importing this package turns on JAX float64 (``jax_enable_x64``): every W-tilde number is fp64.
"""

import jax

jax.config.update("jax_enable_x64", True)


def enable_x64() -> None:
    """Make sure JAX computes in float64 (idempotent; called implicitly on import)."""
    jax.config.update("jax_enable_x64", True)
