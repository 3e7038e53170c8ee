"""Shared fixtures. Tests use the copy of the SMA data bundled in the package, never a path outside the project."""

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


@pytest.fixture(scope="session")
def session_client():
    """One real two-process LocalCluster for the whole run, for modules whose tests leave the workers as they found
    them (no worker restarts, kills or memory limits): saves a cluster start per module."""
    from wtilde_dask.cluster import cluster_client

    with cluster_client("local", n_workers=2, threads_per_worker=1, log=lambda *a: None) as c:
        yield c


# ---------------------------------------------------------------------------------------------- skips fail in CI
def _ci() -> bool:
    """True when the CI environment variable says so (CI sets CI=true; .ci/run exports it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(report, what: str) -> None:
    """Turn a skipped (or xfailed) report into a failure that names what was missing."""
    if hasattr(report, "wasxfail"):
        reason = f"expected failure ({report.wasxfail or 'no reason given'})"
        del report.wasxfail
    else:
        reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = f"CI=true: a {what} may not skip or xfail here; it did: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skipped, xfailed or xpassed test is a failure: a missing dependency must not look like a pass."""
    outcome = yield
    report = outcome.get_result()
    if _ci() and (report.skipped or hasattr(report, "wasxfail")):
        _fail_skip(report, f"test ({item.nodeid})")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under CI, a module that skips at import (pytest.importorskip at module level) fails its collection."""
    outcome = yield
    report = outcome.get_result()
    if _ci() and report.skipped:
        _fail_skip(report, f"module ({collector.nodeid})")
