"""TLS for a run (wtilde_dask.security: distributed's Security.temporary(), worker files written by
dask-jobqueue into a private per-run directory): file modes, removal, and who can connect.

No SLURM here: a real ``SLURMCluster`` is built (its scheduler runs on 127.0.0.1; building it submits no
job) and its worker command, taken from its job script, runs as a local process, as a SLURM job would
run it. tests/test_slurm.py does the same through a real SLURM."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
import subprocess

import dask
import pytest
from distributed import Client
from distributed.security import Security

from wtilde_dask.security import close_worker_files, run_security


def try_client(address, security=None, timeout=3):
    """Connect an asynchronous Client (its own event loop) and run one task; raises on refusal."""

    async def go():
        async with Client(address, security=security, timeout=timeout, asynchronous=True) as client:
            return await client.submit(lambda x: x + 1, 1)

    # a refused Client cannot close cleanly and would leave dask's default scheduler pointing at it
    with dask.config.set({"scheduler": dask.config.get("scheduler", None)}):
        return asyncio.run(go())


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _slurm_cluster(run):
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(cores=1, memory="1GB", walltime="00:10:00", processes=1,
                        scheduler_options={"host": "127.0.0.1", "dashboard_address": None}, **run.cluster_kwargs())


def _worker_command(cluster) -> list[str]:
    """The ``dask_worker`` line of the cluster's SLURM job script, as argv."""
    line = next(ln for ln in cluster.job_script().splitlines() if "distributed.cli.dask_worker" in ln)
    return shlex.split(line)


def test_worker_files_user_only_in_a_private_directory_removed_at_the_end(tmp_path):
    root = tmp_path / "shared" / "tls"
    with run_security(root) as run:
        assert run.directory.parent == root and run.directory.name.startswith("wtilde-tls-")
        assert _mode(root) == 0o700  # created by us
        assert _mode(run.directory) == 0o700
        with _slurm_cluster(run) as cluster:
            files = run.files()
            assert len(files) == 3, files  # ca, cert, key: dask-jobqueue's copies for the worker jobs
            for path in files:
                assert _mode(path) == 0o600, path
            argv = _worker_command(cluster)
            paths = {opt: argv[argv.index(opt) + 1] for opt in ("--tls-ca-file", "--tls-cert", "--tls-key")}
            assert {os.path.dirname(p) for p in paths.values()} == {str(run.directory)}
            assert b"PRIVATE KEY" in open(paths["--tls-key"], "rb").read()
            assert open(paths["--tls-cert"]).read() == run.security.tls_worker_cert
            close_worker_files(cluster)
        assert run.files() == []  # closed = deleted
    assert not run.directory.exists()
    assert root.exists()


def test_default_root_and_removed_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WTILDE_TLS_DIR", str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match="boom"):
        with run_security() as run:
            assert run.directory.parent == tmp_path / "root"
            assert _mode(tmp_path / "root") == 0o700
            (run.directory / "x").write_text("left over")
            raise RuntimeError("boom")
    assert not run.directory.exists()


# the refused clients cannot close cleanly; their __del__ then finds their event loop closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_only_the_runs_credentials_connect(tmp_path):
    """A TLS scheduler (SLURMCluster's) and a worker started from its job script's command with the files
    dask-jobqueue wrote: the run's client computes; a client with no credentials, plain TCP, or another
    run's credentials is refused."""
    with run_security(tmp_path / "tls") as run, _slurm_cluster(run) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        worker = subprocess.Popen(_worker_command(cluster), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with Client(address, security=run.security, timeout=30) as client:
                client.wait_for_workers(1, timeout=60)
                assert client.submit(lambda x: x + 1, 41).result(timeout=30) == 42

            with pytest.raises(TypeError, match="ssl_context"):  # no TLS credentials at all
                try_client(address)
            with pytest.raises(OSError):  # plain TCP to the TLS port: the handshake fails, connection reset
                try_client(address.replace("tls://", "tcp://"))
            with pytest.raises(OSError, match="certificate"):  # valid TLS, a certificate of another CA
                try_client(address, Security.temporary())
            with run_security(tmp_path / "other") as other:  # another run's credentials
                with pytest.raises(OSError, match="certificate"):
                    try_client(address, other.security)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        close_worker_files(cluster)
    assert not run.directory.exists()
