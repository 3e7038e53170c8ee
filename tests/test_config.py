"""Constants defined once; user defaults as dask.config settings under ``wtilde`` (packaged wtilde.yaml)."""

from __future__ import annotations

import math
import os
import pathlib
import re
import subprocess
import sys

import dask.config
import numpy as np

import wtilde_dask
from wtilde_dask import config, constants
from wtilde_dask.dataset import Interferometer
from wtilde_dask.ingest import open_source

PACKAGE = pathlib.Path(wtilde_dask.__file__).parent


def test_constants_match_their_definitions():
    assert constants.SPEED_OF_LIGHT == 299792458.0  # SI, exact
    # one arcsecond is 1/3600 of a degree
    assert math.isclose(constants.ARCSEC_TO_RADIANS, math.radians(1.0 / 3600.0), rel_tol=1e-15)
    assert math.isclose(constants.RADIANS_TO_ARCSEC * constants.ARCSEC_TO_RADIANS, 1.0, rel_tol=1e-15)


def test_constants_are_written_once_in_the_package():
    pattern = re.compile(r"299_?792_?458|648_?000|206_?264|pi\s*/\s*180\s*/\s*3600|DEFAULT_CHUNK_SIZE\s*=")
    hits = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if p.name != "constants.py" and pattern.search(p.read_text().split('"""', 2)[-1])]
    assert hits == []


def test_packaged_defaults_are_the_documented_ones():
    assert config.DEFAULTS_FILE.is_file()
    assert config.get("chunk-size") == 1_000_000 == constants.DEFAULT_CHUNK_SIZE
    assert config.get("block-size") == 1024 == constants.DEFAULT_BLOCK_SIZE
    assert config.get("max-groups") == 256 == constants.DEFAULT_MAX_GROUPS
    assert config.get("read-order") == "rows" == constants.DEFAULT_READ_ORDER


def test_dask_config_overrides_the_chunk_size():
    rng = np.random.default_rng(0)
    k = 1000
    data = Interferometer.from_arrays(rng.normal(size=k) + 1j * rng.normal(size=k), np.ones(k) * (1 + 1j),
                                      rng.uniform(-1e4, 1e4, size=(k, 2)))
    with dask.config.set({"wtilde.chunk-size": 300}):
        source = open_source(data)
    assert source.chunk_ids() == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    assert len(open_source(data).chunk_ids()) == 1  # back to the default 1e6
    assert len(open_source(data, chunk_size=100).chunk_ids()) == 10  # an explicit value wins


CLI = "import sys; from wtilde_dask.cli import main; sys.exit(main(sys.argv[1:]))"


def test_environment_sets_the_cli_block_size_default():
    env = dict(os.environ, DASK_WTILDE__BLOCK_SIZE="512")
    out = subprocess.run([sys.executable, "-c", CLI, "compute", "--help"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "default 512" in " ".join(out.split())


def test_local_workers_size_the_likelihood_threads_to_their_share():
    """On a LocalCluster worker process of ``threads_per_worker`` threads the likelihood's host F runs on that
    many threads (several workers share the cores); outside a worker on every core (0)."""
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.inversion.jax_batch import worker_threads

    with cluster_client("local", n_workers=2, threads_per_worker=1, log=lambda *a: None) as client:
        assert client.gather(client.map(lambda _: worker_threads(), range(4))) == [1, 1, 1, 1]
    assert worker_threads() == 0
