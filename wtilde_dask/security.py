"""TLS for one run: the scheduler, the workers and the client speak TLS with credentials made for that run.

The credentials are the library's: ``distributed.security.Security.temporary()`` makes a self-signed
certificate and key in memory (the scheduler and the client use them from memory), and dask-jobqueue's
``SLURMCluster`` writes the worker's copies (``--tls-ca-file/--tls-cert/--tls-key`` of the job script)
into its ``shared_temp_directory``. This module only chooses that directory and removes it:

* a new directory ``wtilde-tls-<random>`` of mode 0700, on a filesystem the worker jobs see (the
  profile's ``tls-directory`` or ``shared-temp-directory``, else ``$WTILDE_TLS_DIR`` or
  ``~/.wtilde/tls``); dask-jobqueue's files in it are mode 0600 (``tempfile``);
* removed, with everything in it, when the run ends (normally, on an error, Ctrl-C or SIGTERM).

Connections verify the peer's certificate against the run's certificate (``ssl.CERT_REQUIRED``): a
client with no credentials, credentials of another run, or plain TCP is refused. The run's private key
is the only secret; whoever can read it (the user, 0600) can connect anyway, so nothing is gained by a
separate CA key.

Example::

    with run_security(shared_dir) as run:
        cluster = SLURMCluster(..., **run.cluster_kwargs())   # security, protocol, shared_temp_directory
        ...
        close_worker_files(cluster)                           # before the directory is removed
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass

__all__ = ["RunSecurity", "run_security", "default_credentials_root", "close_worker_files"]

PREFIX = "wtilde-tls-"


@dataclass(frozen=True)
class RunSecurity:
    """A run's ``distributed.security.Security`` (in-memory PEM) and the private directory where
    dask-jobqueue writes the worker jobs' copies."""

    security: object
    directory: pathlib.Path

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for TLS with these credentials."""
        return {"security": self.security, "protocol": "tls://", "shared_temp_directory": str(self.directory)}

    def files(self) -> list[pathlib.Path]:
        """The credential files written so far (dask-jobqueue writes them when the cluster is built)."""
        return sorted(self.directory.iterdir()) if self.directory.is_dir() else []


def default_credentials_root() -> pathlib.Path:
    """``$WTILDE_TLS_DIR`` or ``~/.wtilde/tls``: home directories are shared with compute nodes on
    HPC systems such as COSMA."""
    env = os.environ.get("WTILDE_TLS_DIR")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".wtilde" / "tls"


@contextlib.contextmanager
def run_security(root: str | os.PathLike | None = None):
    """Context manager yielding a :class:`RunSecurity` made for this run; its directory is removed on exit.

    Parameters
    ----------
    root : path or None
        Where the run's directory ``wtilde-tls-<random>`` is made (``~`` and ``$VARS`` expanded; created
        with mode 0700 if missing). ``None``: :func:`default_credentials_root`. It must be visible from
        the worker jobs (a shared filesystem).
    """
    from distributed.security import Security

    root = pathlib.Path(os.path.expandvars(str(root))).expanduser() if root else default_credentials_root()
    if not root.exists():
        root.mkdir(mode=0o700, parents=True)
    directory = pathlib.Path(tempfile.mkdtemp(prefix=PREFIX, dir=root)).absolute()  # mode 0700
    try:
        yield RunSecurity(Security.temporary(), directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def close_worker_files(cluster) -> None:
    """Close (and so delete) the credential files dask-jobqueue keeps open for the cluster's lifetime
    (``tempfile.NamedTemporaryFile`` attributes ``_job_<key>``), so that nothing is left for the
    garbage collector to delete after :func:`run_security` removed the directory."""
    for key in ("ca_file", "cert", "key"):
        handle = getattr(cluster, f"_job_{key}", None)
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
