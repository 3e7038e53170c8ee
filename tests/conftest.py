"""Shared fixtures. Tests use the copy of the SMA data bundled in the package, never ../shared."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

ARTIFACTS = pathlib.Path(os.environ.get("WTILDE_TEST_ARTIFACTS", pathlib.Path(__file__).parent.parent / "test-artifacts"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def sma_dataset():
    from wtilde_dask.dataset import load_dataset, sma_dataset_path

    return load_dataset(sma_dataset_path())


@pytest.fixture(scope="session")
def artifacts_dir() -> pathlib.Path:
    """Folder for test artefacts (screenshots, PNGs) kept after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
