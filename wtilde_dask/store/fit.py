"""Where a lens-model fit lives in a W-tilde store (the only module that knows this layout).

Layout of ``STORE.zarr/fit/NAME/`` (one group per named fit)::

    zarr.json                  group attrs, replaced atomically (temporary file + os.replace):
      model                    the fit model's canonical record (FitModel.to_record())
      sampler                  the sampler settings the run used (name, n_live, n_batch, seed, chunk_size, ...)
      progress                 {state: running | interrupted | complete, n_evaluations, log_evidence,
                                log_evidence_error, evaluations_per_second, max_log_likelihood, best {name: value},
                                n_slices, started, updated, host, pid, heartbeat (unix seconds)}
      result                   once complete: the summary (log_evidence, log_evidence_error, n_evaluations,
                                wall_seconds, seconds_per_evaluation, max_log_likelihood, max_likelihood,
                                median, lower_1sigma, upper_1sigma, lower_3sigma, upper_3sigma, free_names)
    posterior_samples          (n, n_free) float64, physical parameters in free_names order   } written when
    posterior_weights          (n,) float64, normalised weights (sum 1)                       } the fit is
    posterior_log_likelihood   (n,) float64                                                   } complete
    checkpoint/                the sampler's state: each file replaced atomically (copied to a temporary
                               file in the same folder, flushed, then os.replace), so a kill at any instant
                               leaves the previous checkpoint whole
    work/                      the sampler's working files (not kill-safe; rebuilt from checkpoint/ on resume)

A run counts as live while its process exists on this host, or (another host) while its heartbeat is
younger than :data:`HEARTBEAT_STALE_S`; a ``running`` record whose run is not live reads as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import threading
import time
import uuid

import numpy as np

from wtilde_dask.errors import StoreError
from wtilde_dask.store.layout import _now
from wtilde_dask.store.lock import _pid_alive

FIT_GROUP = "fit"
STATES = ("running", "interrupted", "complete")
HEARTBEAT_STALE_S = 120.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ARRAYS = ("posterior_samples", "posterior_weights", "posterior_log_likelihood")


def _store_path(store) -> pathlib.Path:
    return pathlib.Path(getattr(store, "path", store))


def _replace_atomically(path: pathlib.Path, write) -> None:
    """Make ``path`` by ``write(tmp)`` into a temporary file in the same folder, fsync, then os.replace: a kill at
    any instant leaves either the previous or the new file whole."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_json_atomic(path: pathlib.Path, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` atomically."""

    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(record, fh, default=_json_default)

    _replace_atomically(path, write)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fit_names(store) -> list[str]:
    """Names of the fits recorded in ``store`` (path or WTildeStore), sorted."""
    root = _store_path(store) / FIT_GROUP
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "zarr.json").is_file())


class FitRecord:
    """The fit ``name`` of the store at ``store`` (a path or a :class:`~wtilde_dask.store.WTildeStore`)."""

    def __init__(self, store, name: str = "default"):
        if not isinstance(name, str) or not _NAME.match(name):
            raise StoreError(f"fit name: {name!r} is not allowed (letters, digits, '_', '.', '-'; at most 64 "
                             f"characters, starting with a letter or digit)")
        self.store_path = _store_path(store)
        self.name = name
        self.path = self.store_path / FIT_GROUP / name
        self._lock = threading.Lock()

    # ---- group and attributes ------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / "zarr.json").is_file()

    def attrs(self) -> dict:
        """The fit group's attributes ({} when the fit does not exist)."""
        try:
            with open(self.path / "zarr.json") as fh:
                return dict(json.load(fh).get("attributes", {}))
        except FileNotFoundError:
            return {}

    def _write_attrs(self, attrs: dict) -> None:
        _write_json_atomic(self.path / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attrs})

    def update_attrs(self, **values) -> None:
        with self._lock:
            attrs = self.attrs()
            attrs.update(values)
            self._write_attrs(attrs)

    def create(self, model: dict, sampler: dict, *, overwrite: bool = False) -> None:
        """Start the fit: the group with attrs model, sampler and a fresh progress (state running).
        An existing fit is deleted first when ``overwrite``, else refused."""
        if self.exists():
            if not overwrite:
                raise StoreError(f"fit {self.name!r} in {self.store_path}: already exists (resume it, or overwrite)")
            self.delete()
        root = self.store_path / FIT_GROUP
        if not (root / "zarr.json").is_file():
            root.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(root / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {}})
        self.path.mkdir(parents=True, exist_ok=True)
        now = _now()
        self._write_attrs({"model": model, "sampler": sampler,
                           "progress": {"state": "running", "n_evaluations": 0, "log_evidence": None,
                                        "log_evidence_error": None, "evaluations_per_second": None,
                                        "max_log_likelihood": None, "best": None, "n_slices": 0, "started": now,
                                        "updated": now, **self._owner()}})

    @staticmethod
    def _owner() -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}

    def model_record(self) -> dict | None:
        return self.attrs().get("model")

    def sampler_record(self) -> dict | None:
        return self.attrs().get("sampler")

    # ---- progress ------------------------------------------------------------------------------------
    def progress(self) -> dict:
        """The recorded progress, with ``state`` as read now (a dead run's ``running`` reads ``interrupted``)."""
        p = dict(self.attrs().get("progress") or {})
        if p:
            p["state"] = self._live_state(p)
        return p

    def state(self) -> str | None:
        """running | interrupted | complete, or None when the fit does not exist."""
        return self.progress().get("state") if self.exists() else None

    @staticmethod
    def _live_state(p: dict) -> str:
        state = p.get("state", "interrupted")
        if state != "running":
            return state
        if p.get("host") == socket.gethostname():
            return "running" if p.get("pid") is not None and _pid_alive(p["pid"]) else "interrupted"
        return "running" if time.time() - float(p.get("heartbeat") or 0) < HEARTBEAT_STALE_S else "interrupted"

    def run_is_live(self) -> bool:
        """True when another live process is running this fit."""
        p = self.attrs().get("progress") or {}
        return self._live_state(p) == "running" and not (
            p.get("host") == socket.gethostname() and int(p.get("pid", -1)) == os.getpid())

    def update_progress(self, **values) -> dict:
        """Merge ``values`` into progress, stamping updated, host, pid and heartbeat; returns the new progress."""
        with self._lock:
            attrs = self.attrs()
            progress = dict(attrs.get("progress") or {})
            progress.update(values)
            progress.update(updated=_now(), **self._owner())
            attrs["progress"] = progress
            self._write_attrs(attrs)
            return progress

    # ---- checkpoint ----------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return self.path / "checkpoint"

    def checkpoint_path(self, filename: str = "sampler.h5") -> pathlib.Path:
        """Where the committed checkpoint file ``filename`` lives (may not exist yet)."""
        return self.checkpoint_dir / filename

    def has_checkpoint(self, filename: str = "sampler.h5") -> bool:
        return self.checkpoint_path(filename).is_file()

    def working_path(self, filename: str = "sampler.h5") -> pathlib.Path:
        """A working file for the sampler (its folder exists); rebuilt from the checkpoint on resume."""
        work = self.path / "work"
        work.mkdir(parents=True, exist_ok=True)
        return work / filename

    def commit_checkpoint(self, source, filename: str = "sampler.h5") -> pathlib.Path:
        """Copy ``source`` into ``checkpoint/filename`` atomically (temporary copy in the same folder, fsync,
        os.replace): a kill at any instant leaves either the previous or the new checkpoint whole."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        final = self.checkpoint_path(filename)
        _replace_atomically(final, lambda tmp: shutil.copyfile(source, tmp))
        return final

    def restore_checkpoint(self, filename: str = "sampler.h5") -> pathlib.Path | None:
        """Copy the committed checkpoint to the working file (returned); None (working file removed) when
        there is no checkpoint yet."""
        work = self.working_path(filename)
        with contextlib.suppress(FileNotFoundError):
            work.unlink()
        if not self.has_checkpoint(filename):
            return None
        shutil.copyfile(self.checkpoint_path(filename), work)
        return work

    # ---- result --------------------------------------------------------------------------------------
    def write_result(self, result: dict, samples, weights, log_l) -> None:
        """Write the posterior arrays, then the result and progress state complete (attrs last)."""
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        for name, data in zip(_ARRAYS, (samples, weights, log_l)):
            group.create_array(name, data=np.asarray(data, dtype=np.float64), overwrite=True)
        with self._lock:
            attrs = self.attrs()  # zarr rewrote zarr.json with the same attributes; ours go last
            attrs["result"] = result
            progress = dict(attrs.get("progress") or {})
            progress.update(state="complete", updated=_now(), **self._owner())
            attrs["progress"] = progress
            self._write_attrs(attrs)
        shutil.rmtree(self.path / "work", ignore_errors=True)

    def result(self) -> dict | None:
        """The summary of a complete fit, else None."""
        return self.attrs().get("result")

    def posterior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(samples (n, n_free), weights (n,), log_likelihood (n,)) of a complete fit."""
        import zarr

        if self.result() is None:
            raise StoreError(f"fit {self.name!r} in {self.store_path}: not complete (no posterior yet)")
        group = zarr.open_group(str(self.path), mode="r")
        return tuple(np.asarray(group[name][...]) for name in _ARRAYS)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
