"""TLS credentials for a run (wtilde_dask.security): file modes, and who can connect."""

from __future__ import annotations

import asyncio
import os
import stat

import dask
import pytest
from distributed import Client, LocalCluster
from distributed.security import Security

from wtilde_dask.security import (
    SecurityError,
    create_run_credentials,
    load_run_credentials,
    run_credentials,
)


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


def test_files_are_user_only(tmp_path):
    creds = create_run_credentials(tmp_path / "tls")
    assert _mode(creds.directory) == 0o700
    for path in (creds.ca_file, creds.cert_file, creds.key_file):
        assert _mode(path) == 0o600, path
    assert b"PRIVATE KEY" in creds.key_file.read_bytes()
    # the CA's private key is never written
    assert sorted(p.name for p in creds.directory.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert load_run_credentials(creds.directory) == creds


def test_default_directory_under_root(tmp_path, monkeypatch):
    monkeypatch.setenv("WTILDE_TLS_DIR", str(tmp_path / "root"))
    with run_credentials() as creds:
        assert creds.directory.parent == tmp_path / "root"
        assert _mode(tmp_path / "root") == 0o700
        assert creds.key_file.exists()
    assert not creds.directory.exists()


def test_refuses_group_readable(tmp_path):
    creds = create_run_credentials(tmp_path / "tls")
    os.chmod(creds.key_file, 0o640)
    with pytest.raises(SecurityError, match=r"key\.pem.*0640"):
        load_run_credentials(creds.directory)


def test_refuses_non_empty_directory(tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "other").write_text("x")
    with pytest.raises(SecurityError, match="not empty"):
        create_run_credentials(tmp_path / "tls")


def test_security_uses_file_paths(tmp_path):
    creds = create_run_credentials(tmp_path / "tls")
    sec = creds.security()
    assert sec.require_encryption
    worker = sec.get_tls_config_for_role("worker")
    assert worker["ca_file"] == str(creds.ca_file)
    assert worker["cert"] == str(creds.cert_file)
    assert worker["key"] == str(creds.key_file)


def test_only_the_runs_credentials_connect(tmp_path):
    """A TLS LocalCluster on 127.0.0.1: the run's client computes; a client with no credentials or
    with another CA's certificate is refused."""
    creds = create_run_credentials(tmp_path / "tls")
    sec = creds.security()
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tls://", host="127.0.0.1",
        security=sec, dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with Client(address, security=sec, timeout=20) as client:
            assert client.submit(lambda x: x + 1, 41).result(timeout=30) == 42

        with pytest.raises(TypeError, match="ssl_context"):  # no TLS credentials at all
            try_client(address)
        with pytest.raises(OSError):  # plain TCP to the TLS port: the handshake fails, connection reset
            try_client(address.replace("tls://", "tcp://"))
        with pytest.raises(OSError, match="certificate"):  # valid TLS, a certificate from another CA
            try_client(address, Security.temporary())
        other = create_run_credentials(tmp_path / "other").security()
        with pytest.raises(OSError, match="certificate"):  # another run's credentials
            try_client(address, other)
