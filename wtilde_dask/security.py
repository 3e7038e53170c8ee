"""TLS credentials made for one run, for the scheduler, the workers and the client.

On a shared cluster the scheduler listens on a network that other users reach, so every
connection of a run (client <-> scheduler <-> workers) speaks TLS with certificates made for that
run only:

* a certificate authority (CA) whose private key lives only in memory while the run's certificate
  is signed, then is dropped: nobody, not even the run, can sign a second certificate that the
  run's processes would accept;
* one certificate + private key signed by that CA, used by every role (scheduler, worker, client),
  with both the ``serverAuth`` and ``clientAuth`` usages;
* the three files ``ca.pem``, ``cert.pem`` and ``key.pem`` are written with mode 0600 into a new
  directory of mode 0700, on a filesystem that the worker jobs see (a SLURM job reads them by path),
  and are removed when the run ends.

Connections verify the peer's certificate chain against the run's CA (``ssl.CERT_REQUIRED``); a
client holding no credentials, or credentials from another CA, cannot connect.

Example::

    with run_credentials(shared_dir) as creds:
        security = creds.security()          # distributed.security.Security
        cluster = SLURMCluster(..., security=security, protocol="tls://")
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import secrets
import shutil
import stat
from dataclasses import dataclass

__all__ = [
    "SecurityError",
    "RunCredentials",
    "create_run_credentials",
    "load_run_credentials",
    "run_credentials",
    "default_credentials_root",
]

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


class SecurityError(ValueError):
    """Credentials that are missing, unreadable or readable by other users."""


@dataclass(frozen=True)
class RunCredentials:
    """Paths of a run's TLS files (PEM): the CA certificate, the run certificate and its key."""

    directory: pathlib.Path
    ca_file: pathlib.Path
    cert_file: pathlib.Path
    key_file: pathlib.Path

    def security(self, require_encryption: bool = True):
        """A ``distributed.security.Security`` using these files for every role.

        The values are file paths (not PEM text), so that dask-jobqueue passes them to the worker
        jobs as ``--tls-ca-file/--tls-cert/--tls-key`` without copying the key anywhere else.
        """
        from distributed.security import Security

        cert, key = str(self.cert_file), str(self.key_file)
        return Security(
            require_encryption=require_encryption,
            tls_ca_file=str(self.ca_file),
            tls_client_cert=cert,
            tls_client_key=key,
            tls_scheduler_cert=cert,
            tls_scheduler_key=key,
            tls_worker_cert=cert,
            tls_worker_key=key,
        )

    def remove(self) -> None:
        """Delete the credential files and their directory."""
        shutil.rmtree(self.directory, ignore_errors=True)


def default_credentials_root() -> pathlib.Path:
    """``$WTILDE_TLS_DIR`` or ``~/.wtilde/tls``: home directories are shared with compute nodes on
    HPC systems such as COSMA."""
    env = os.environ.get("WTILDE_TLS_DIR")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".wtilde" / "tls"


def _private_dir(path: pathlib.Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def create_run_credentials(
    directory: str | os.PathLike | None = None,
    *,
    common_name: str = "wtilde-dask run",
    valid_days: float = 30.0,
) -> RunCredentials:
    """Make a CA and one certificate/key for a run and write them, user-only, to a new directory.

    Parameters
    ----------
    directory : path or None
        Where to put ``ca.pem``, ``cert.pem``, ``key.pem``. Must not exist yet, or be an empty
        directory. ``None``: a new ``run-<random>`` directory under :func:`default_credentials_root`.
        It must be visible from the worker jobs (a shared filesystem).
    common_name : str
        Subject common name of the run certificate (the CA is "<common_name> CA").
    valid_days : float
        Validity of both certificates (days); long enough for a run resubmitted several times.

    Returns
    -------
    RunCredentials
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if directory is None:
        root = default_credentials_root()
        _private_dir(root)
        directory = root / f"run-{secrets.token_hex(8)}"
    directory = pathlib.Path(directory).expanduser().absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SecurityError(f"TLS credentials directory {directory} already exists and is not empty")
    _private_dir(directory)

    now = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=valid_days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    del ca_key  # never written: no further certificate can be signed by this run's CA

    creds = RunCredentials(directory, directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)
    _write_private(creds.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(creds.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        creds.key_file,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return creds


def load_run_credentials(directory: str | os.PathLike) -> RunCredentials:
    """Open existing credentials, refusing files or a directory that other users can read or write.

    Raises
    ------
    SecurityError
        A file is missing, or the directory/file mode grants any group/other permission
        (message names the path and its mode).
    """
    directory = pathlib.Path(directory).expanduser().absolute()
    creds = RunCredentials(directory, directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)
    if not directory.is_dir():
        raise SecurityError(f"TLS credentials directory {directory} does not exist")
    for path in (directory, creds.ca_file, creds.cert_file, creds.key_file):
        if not path.exists():
            raise SecurityError(f"TLS credentials file {path} is missing")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecurityError(
                f"TLS credentials {path} have mode {mode:04o}: other users may read them; "
                f"expected {'0700' if path.is_dir() else '0600'}"
            )
    return creds


@contextlib.contextmanager
def run_credentials(directory: str | os.PathLike | None = None, *, keep: bool = False, **kwargs):
    """Context manager: :func:`create_run_credentials`, removed on exit unless ``keep``."""
    creds = create_run_credentials(directory, **kwargs)
    try:
        yield creds
    finally:
        if not keep:
            creds.remove()
