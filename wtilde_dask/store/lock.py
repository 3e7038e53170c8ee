"""The store's lock: ``lock/zarr.json`` (a Zarr group whose attributes are the lock record), created with O_EXCL,
refreshed by the live run (lease), taken over when stale."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import pathlib
import socket
import threading
import time
import uuid

import psutil

from wtilde_dask.errors import StoreLockedError
from wtilde_dask.store.layout import LOCK_GROUP, _now


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs. A zombie (killed, not yet reaped by its parent: a
    SIGKILLed job step whose parent died too) holds its pid but runs nothing: gone (psutil's status)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    try:
        return psutil.Process(int(pid)).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, ValueError):  # status unreadable (or a pid psutil refuses): trust the signal check
        return True


def read_lock(path) -> dict | None:
    """The lock record of the store at ``path`` (dict) or None when no run holds it."""
    lock_file = pathlib.Path(path) / LOCK_GROUP / "zarr.json"
    try:
        with open(lock_file) as fh:
            return json.load(fh).get("attributes", {})
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {"corrupt": True}


def lock_is_stale(record: dict | None, *, now: float | None = None) -> tuple[bool, str]:
    """(stale, why): stale when the owner process is gone on this host, or the lease expired."""
    if record is None:
        return True, "no lock"
    if record.get("corrupt"):
        return True, "unreadable lock record"
    now = time.time() if now is None else now
    if record.get("host") == socket.gethostname() and not _pid_alive(record.get("pid", -1)):
        return True, f"owner process {record.get('pid')} on {record.get('host')} is gone"
    if float(record.get("lease_until", 0)) < now:
        return True, f"lease expired {now - float(record.get('lease_until', 0)):.0f} s ago"
    return False, "live"


class StoreLock:
    """Exclusive lock of one store by one run: ``with StoreLock(path): ...``.

    Taken atomically (``os.open(O_CREAT | O_EXCL)``); a stale lock (owner gone on this host, or
    lease not refreshed for ``lease_s`` seconds) is taken over with write-then-rename and a re-read.
    A background thread refreshes the lease every ``refresh_s`` seconds; ``lost`` turns True when
    another run took the lock over (the orchestrator then stops).
    """

    def __init__(self, path, *, lease_s: float = 60.0, refresh_s: float = 10.0, log=None):
        self.path = pathlib.Path(path)
        self.dir = self.path / LOCK_GROUP
        self.file = self.dir / "zarr.json"
        self.lease_s = float(lease_s)
        self.refresh_s = float(refresh_s)
        self.log = log or (lambda *a, **k: None)
        self.token = uuid.uuid4().hex
        self.started = _now()
        self.lost = False
        self.held = False
        self._stop = threading.Event()
        self._thread = None

    def _record(self) -> dict:
        return {"zarr_format": 3, "node_type": "group", "attributes": {
            "host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
            "started": self.started, "refreshed": _now(), "lease_until": time.time() + self.lease_s}}

    def _write_atomic(self) -> None:
        tmp = self.dir / f"zarr.json.tmp-{self.token}"
        try:
            with open(tmp, "w") as fh:
                json.dump(self._record(), fh)
            os.replace(tmp, self.file)
        except BaseException:  # e.g. disk full: leave no half-written temporary behind
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def acquire(self) -> StoreLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            record = read_lock(self.path)
            stale, why = lock_is_stale(record)
            if not stale:
                raise StoreLockedError(
                    f"store {self.path}: another run holds it (host {record.get('host')}, pid {record.get('pid')}, "
                    f"started {record.get('started')}, lease until "
                    f"{_dt.datetime.fromtimestamp(float(record.get('lease_until', 0)), _dt.timezone.utc):%H:%M:%S} UTC); "
                    "wait for it to finish, or stop it first") from None
            self.log(f"taking over a stale lock on {self.path} ({why})")
            self._write_atomic()
            time.sleep(0.05)
            if (read_lock(self.path) or {}).get("token") != self.token:
                raise StoreLockedError(f"store {self.path}: another run took the stale lock at the same time") from None
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(self._record(), fh)
        self.held = True
        self._thread = threading.Thread(target=self._refresh_loop, name="wtilde-lock-lease", daemon=True)
        self._thread.start()
        return self

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            record = read_lock(self.path)
            if (record or {}).get("token") != self.token:
                self.lost = True
                self.log(f"lost the lock on {self.path}: another run took it over")
                return
            try:
                self._write_atomic()
            except OSError as err:  # keep trying; the lease covers a few missed refreshes
                self.log(f"could not refresh the lock lease on {self.path}: {err}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held and not self.lost and (read_lock(self.path) or {}).get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        self.held = False

    def __enter__(self) -> StoreLock:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc) -> None:
        self.release()
