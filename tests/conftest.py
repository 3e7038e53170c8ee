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


@pytest.fixture(scope="module")
def client():
    """A real two-process LocalCluster (one thread each) and its client, shared by a test module."""
    from wtilde_dask.cluster import cluster_client

    with cluster_client("local", n_workers=2, threads_per_worker=1, log=lambda *a: None) as c:
        yield c
