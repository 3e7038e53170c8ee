"""Test data written to disk for the tests that run the `wtilde` command in a subprocess."""

import sys

import numpy as np

#: the `wtilde` command of this interpreter (subprocess argv)
WTILDE = [sys.executable, "-c", "import sys; from wtilde_dask.cli import main; sys.exit(main())"]


def write_random_npz(path, n_visibilities: int, seed: int):
    """An .npz of ``n_visibilities`` random visibilities, unequal real/imag noise and uv within +-5e4 wavelengths."""
    rng = np.random.default_rng(seed)
    np.savez(path, visibilities=rng.normal(size=n_visibilities) + 1j * rng.normal(size=n_visibilities),
             noise_map=rng.uniform(0.5, 2, n_visibilities) + 1j * rng.uniform(0.5, 2, n_visibilities),
             uv_wavelengths=rng.uniform(-5e4, 5e4, size=(n_visibilities, 2)))
    return path
