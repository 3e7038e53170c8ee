"""SLURM worker profiles: dask-jobqueue ``jobqueue.yaml`` settings plus the wtilde keys, read, checked and turned
into ``SLURMCluster`` arguments (walltime-safe worker lifetimes, the dashboard address, TLS). No job is submitted
here: :mod:`wtilde_dask.slurm.jobs` runs them. Profile keys and lookup: :mod:`wtilde_dask.slurm`.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import sys

from wtilde_dask.errors import ProfileError

DEFAULT_DASHBOARD = "127.0.0.1:8787"
WTILDE_KEYS = ("lifetime", "lifetime-stagger", "tls-directory")


# ---- profiles -------------------------------------------------------------------------------


def _read_yaml(path: pathlib.Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"profile file {path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"profile file {path}: expected a mapping, got {type(data).__name__}")
    return data


def load_profile(profile: str | os.PathLike | dict | None) -> tuple[str, dict]:
    """(name, settings) of a SLURM profile; settings use jobqueue.yaml's hyphenated keys.

    ``profile``: a dict (used as is), ``None`` (dask's ``jobqueue.slurm``), a name in dask's
    config ``jobqueue.<name>``, ``FILE.yaml`` (a file with one profile, under ``jobqueue:`` or at
    the top level) or ``FILE.yaml:NAME``.
    """
    import dask

    if isinstance(profile, dict):
        return "custom", dict(profile)
    if profile is None:
        return "slurm", {}
    text = str(profile)
    m = re.fullmatch(r"(.+\.ya?ml)(?::([^:/]+))?", text)
    if m:
        path = pathlib.Path(m.group(1)).expanduser()
        data = _read_yaml(path)
        profiles = data.get("jobqueue", data)
        name = m.group(2)
        if name is None:
            if len(profiles) != 1:
                raise ProfileError(
                    f"profile file {path}: holds {len(profiles)} profiles ({', '.join(map(str, profiles))}); "
                    f"choose one with {path}:NAME")
            name = next(iter(profiles))
        if name not in profiles or not isinstance(profiles[name], dict):
            raise ProfileError(f"profile file {path}: no profile {name!r} (has {', '.join(map(str, profiles))})")
        return name, dict(profiles[name])
    settings = dask.config.get(f"jobqueue.{text}", default=None)
    if not isinstance(settings, dict):
        raise ProfileError(f"profile {text!r}: not found in dask's config (jobqueue.{text}).{profile_help()}")
    return text, dict(settings)


REQUIRED_KEYS = ("cores", "memory", "walltime")
EXAMPLE_PROFILES = "deployments/slurm/jobqueue.yaml"


def _config_files() -> list[str]:
    """Each YAML file in dask's config directories, with the jobqueue profiles it defines."""
    import dask
    import yaml

    found = []
    for directory in dict.fromkeys(dask.config.paths):
        d = pathlib.Path(directory)
        files = sorted(p for p in d.glob("*") if p.suffix in (".yaml", ".yml")) if d.is_dir() else []
        for path in files:
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                found.append(f"{path} (unreadable: {type(exc).__name__})")
                continue
            jq = data.get("jobqueue") if isinstance(data, dict) else None
            names = [str(k) for k, v in jq.items() if isinstance(v, dict)] if isinstance(jq, dict) else []
            found.append(f"{path} ({'jobqueue profiles: ' + ', '.join(names) if names else 'no jobqueue profile'})")
    return found


def usable_profiles() -> list[str]:
    """Names under ``jobqueue`` in dask's config that set cores, memory and walltime."""
    import dask

    return sorted(k for k, v in dask.config.get("jobqueue", default={}).items()
                  if isinstance(v, dict) and all(v.get(r) not in (None, "") for r in REQUIRED_KEYS))


def profile_help() -> str:
    """What to do when no usable profile is found: where dask's config was read, the ``FILE.yaml:NAME``
    form, and the profiles that exist."""
    import dask

    files = _config_files()
    usable = usable_profiles()
    return (
        f"\n  dask's config directories searched: {', '.join(dict.fromkeys(dask.config.paths))}"
        f"\n  config files found: {'; '.join(files) if files else 'none'}"
        f"\n  profiles that set {', '.join(REQUIRED_KEYS)}: {', '.join(usable) if usable else 'none'} "
        f"(dask-jobqueue's built-in 'slurm' template leaves them unset)"
        f"\n  fix: pass --profile FILE.yaml:NAME (e.g. --profile {EXAMPLE_PROFILES}:cosma8, with your account and "
        f"partition set in it), or copy {EXAMPLE_PROFILES} (wtilde_dask's source tree) to {dask.config.PATH}/ "
        f"and pass --profile NAME"
    )


_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_walltime(text) -> float:
    """Seconds in a SLURM time limit: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"."""
    m = _WALLTIME.match(str(text).strip())
    if not m:
        raise ProfileError(f"walltime: {text!r} is not a SLURM time (e.g. 01:00:00 or 2-00:00:00)")
    days, a, b, c = m.groups()
    a, b, c = int(a), None if b is None else int(b), None if c is None else int(c)
    if days is not None:  # D-HH[:MM[:SS]]
        return int(days) * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if b is None:  # MM
        return a * 60.0
    if c is None:  # MM:SS
        return a * 60.0 + b
    return a * 3600.0 + b * 60 + c


def _seconds(value, what) -> float:
    from dask.utils import parse_timedelta

    if isinstance(value, str) and ":" in value:
        return parse_walltime(value)
    try:
        return float(parse_timedelta(value, default="s"))
    except (ValueError, TypeError, KeyError) as exc:
        raise ProfileError(f"{what}: {value!r} is not a duration (e.g. 50m, 3000s, 00:50:00)") from exc


def worker_lifetime(walltime, lifetime=None, stagger=None) -> tuple[float, float] | None:
    """(lifetime_s, stagger_s) for the worker jobs, or None when lifetimes are switched off.

    Default lifetime: ``walltime - max(120 s, 10% of walltime)``; stagger ``min(300 s, 5% of the
    walltime, 10% of the lifetime)``.
    The lifetime plus its stagger must end before the walltime.
    """
    wall = parse_walltime(walltime)
    if lifetime in ("none", "off", False, 0, "0"):
        return None
    life = wall - max(120.0, 0.1 * wall) if lifetime is None else _seconds(lifetime, "lifetime")
    st = min(300.0, 0.05 * wall, 0.1 * life) if stagger is None else _seconds(stagger, "lifetime-stagger")
    if life <= 0:
        raise ProfileError(f"lifetime: walltime {walltime} is too short to leave a margin before it")
    if life + st >= wall:
        raise ProfileError(
            f"lifetime: {life:g}s (+ stagger {st:g}s) must end before the walltime {walltime} ({wall:g}s)")
    return life, st


def cluster_kwargs(name: str, settings: dict, *, lifetime=None, dashboard_address=None, security=None) -> dict:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for a profile.

    Adds to the profile: the worker lifetime options, TLS (``protocol="tls://"``), the dashboard
    address (127.0.0.1 by default), a default job name ``wtilde-worker``, a default
    ``job_script_prologue`` that activates this Python environment, and per-process thread limits.
    """
    import dask
    from dask_jobqueue import SLURMCluster
    from dask_jobqueue.core import Job, JobQueueCluster
    from dask_jobqueue.slurm import SLURMJob

    base = dict(dask.config.get("jobqueue.slurm", default={}))
    merged = {**base, **settings}
    allowed = set()
    for cls in (SLURMCluster, JobQueueCluster, SLURMJob, Job):
        allowed |= set(inspect.signature(cls.__init__).parameters)
    allowed -= {"self", "args", "kwargs", "base_class_kwargs", "job_kwargs", "scheduler", "loop",
                "asynchronous", "n_workers", "job_cls", "config_name"}
    unknown = sorted(k for k in settings if k.replace("-", "_") not in allowed and k not in WTILDE_KEYS
                     and k not in ("name", "extra", "env-extra", "header-skip", "job-extra"))
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown key(s) {', '.join(unknown)}")

    kw = {}
    for key, value in merged.items():
        k = key.replace("-", "_")
        if key in WTILDE_KEYS or k in ("extra", "env_extra", "header_skip", "job_extra"):
            continue
        if k == "name":
            k = "job_name"
        if k in allowed:
            kw[k] = value
    missing = [r for r in REQUIRED_KEYS if kw.get(r) in (None, "")]
    if missing:
        raise ProfileError(f"profile {name!r}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set."
                           f"{profile_help()}")
    if kw.get("log_directory"):  # dask-jobqueue creates it as given: expand ~ and $VARS here
        kw["log_directory"] = os.path.expanduser(os.path.expandvars(str(kw["log_directory"])))
    kw["job_name"] = settings.get("job-name", settings.get("name")) or "wtilde-worker"
    processes = int(kw.get("processes") or 1)
    kw["processes"] = processes
    threads = max(1, int(kw["cores"]) // processes)

    prologue = list(kw.get("job_script_prologue") or [])
    if not prologue and os.path.exists(os.path.join(sys.prefix, "bin", "activate")):
        prologue = [f"source {sys.prefix}/bin/activate"]
    prologue += [f"export OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"]
    if threads == 1:
        prologue += ['export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false"']
    kw["job_script_prologue"] = prologue

    extra = list(kw.get("worker_extra_args") or [])
    life = worker_lifetime(kw["walltime"], settings.get("lifetime") if lifetime is None else lifetime,
                           settings.get("lifetime-stagger"))
    if life is not None:
        extra += ["--lifetime", f"{int(life[0])}s", "--lifetime-stagger", f"{int(life[1])}s"]
    kw["worker_extra_args"] = extra

    sched = dict(kw.get("scheduler_options") or {})
    if dashboard_address is not None:
        sched["dashboard_address"] = dashboard_address
    sched.setdefault("dashboard_address", DEFAULT_DASHBOARD)
    kw["scheduler_options"] = sched
    if hasattr(security, "cluster_kwargs"):  # a wtilde_dask.security.RunSecurity
        kw.update(security.cluster_kwargs())
    elif security is not None:  # a distributed.security.Security
        kw["security"] = security
        kw["protocol"] = "tls://"
    return kw


