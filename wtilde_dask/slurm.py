"""Dask workers as SLURM jobs (dask-jobqueue), with TLS and walltime-safe worker lifetimes.

``cluster.cluster_client(kind="slurm", ...)`` calls :func:`slurm_client`. The scheduler runs in the
calling process (the orchestrator, itself best run as a SLURM job: ``deployments/slurm/``); each
worker is one SLURM job built from a named *profile*.

Profiles
--------
A profile is a mapping of dask-jobqueue's ``jobqueue.yaml`` keys (``queue``, ``account``, ``cores``,
``memory``, ``processes``, ``walltime``, ``job-script-prologue``, ``interface``, ``local-directory``,
``shared-temp-directory``, ``log-directory``, ``job-extra-directives``, ``worker-extra-args``,
``scheduler-options``, ...) plus these wtilde keys:

``lifetime`` / ``lifetime-stagger``
    how long a worker lives (dask's ``--lifetime``) and the random spread (``--lifetime-stagger``),
    e.g. ``"50m"``. Default: ``walltime - max(2 min, 10% of walltime)`` and ``min(5 min, 5%)``, so
    workers retire cleanly (their running blocks move elsewhere) and are replaced before SLURM kills
    the job at its walltime.
``tls-directory``
    where the run's TLS files go, in a new ``wtilde-tls-<random>`` directory (default: under
    ``shared-temp-directory``, else ``$WTILDE_TLS_DIR`` or ``~/.wtilde/tls``); must be on a filesystem
    the worker jobs see.

``profile`` names are looked up as ``jobqueue.<name>`` in dask's configuration (e.g. a copy of
``deployments/slurm/jobqueue.yaml`` in ``~/.config/dask/``), or given as ``FILE.yaml`` (its only
profile) or ``FILE.yaml:NAME``. Keys a profile does not set come from ``jobqueue.slurm``.

Security: unless ``security=False``, the scheduler, the workers and the client speak TLS with
credentials made for this run (``distributed``'s ``Security.temporary()``; dask-jobqueue writes the
workers' copies into a private directory, :mod:`wtilde_dask.security`), removed at the end. The dashboard binds
to ``127.0.0.1:8787`` unless ``dashboard_address`` (or the profile's
``scheduler-options: {dashboard_address: ...}``) says otherwise; watch it through an SSH tunnel.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import pathlib
import re
import socket
import sys
import threading
from wtilde_dask.errors import ProfileError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)


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


# ---- running --------------------------------------------------------------------------------


#: SLURM job states in which a worker job may still connect
_ALIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                 "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"}


def live_slurm_jobs(job_ids) -> set[str] | None:
    """The ids among ``job_ids`` that SLURM still runs or will run (None if squeue does not answer)."""
    import subprocess

    job_ids = [str(j) for j in job_ids if j]
    if not job_ids:
        return set()
    try:
        out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i %T", "-u", str(os.getuid())],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    state = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)
    return {j for j in job_ids if state.get(j) in _ALIVE_STATES}


class _Keeper:
    """Resubmits worker jobs that ended (lifetime reached, scancel, node failure, failed start).

    * dask's SpecCluster forgets a lost worker's job (after ``lost-worker-timeout``) but keeps it
      in its plan; asking it to scale to its own plan submits a new job for each such gap. Adaptive
      scaling does the same only when its target changes, so this thread checks every ``interval``.
    * A job that ends before its worker ever connected (cancelled while pending, failed prologue)
      is never noticed by the scheduler: while some job has no connected worker, squeue is asked
      (every ``squeue_interval`` s) and jobs SLURM no longer runs are dropped, which opens a gap.
      After ``max_start_failures`` such jobs in a row (and no worker connected meanwhile) it stops
      resubmitting, says where the job logs are (the job script itself is broken) and interrupts
      the main thread (like Ctrl-C) instead of letting the run wait forever.
    """

    def __init__(self, cluster, log, interval=5.0, squeue_interval=None, max_start_failures=6, interrupt=True):
        self.cluster, self.log, self.interval = cluster, log, interval
        if squeue_interval is None:
            squeue_interval = float(os.environ.get("WTILDE_SQUEUE_INTERVAL", "15"))
        self.squeue_interval, self.max_start_failures = squeue_interval, max_start_failures
        self.interrupt = interrupt and threading.current_thread() is threading.main_thread()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wtilde-slurm-keeper", daemon=True)
        self._last_squeue = 0.0
        self.replaced = 0
        self.start_failures = 0
        self.gave_up = False
        self._ever_connected: set[str] = set()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2 * self.interval)

    def _connected_jobs(self) -> set:
        names = {str(w.get("name")) for w in self.cluster.scheduler_info.get("workers", {}).values()}
        return {job for job in self.cluster.workers if any(n == str(job) or n.startswith(f"{job}-") for n in names)}

    def _drop_dead_unconnected(self):
        import time

        connected = self._connected_jobs()
        if connected:
            self.start_failures = 0
            self._ever_connected.update(str(getattr(self.cluster.workers.get(n), "job_id", "")) for n in connected)
        waiting = {name: getattr(job, "job_id", None) for name, job in list(self.cluster.workers.items())
                   if name not in connected}
        if not waiting or time.monotonic() - self._last_squeue < self.squeue_interval:
            return
        self._last_squeue = time.monotonic()
        live = live_slurm_jobs(waiting.values())
        if live is None:
            return
        dead = [name for name, job_id in waiting.items() if job_id and str(job_id) not in live]
        if dead:
            never = [n for n in dead if str(waiting[n]) not in self._ever_connected]
            self.start_failures += len(never)
            self.log(f"slurm: worker job(s) {', '.join(str(waiting[n]) for n in dead)} ended"
                     + (f" ({len(never)} before their worker connected)" if never else ""))

            def drop():  # on the cluster's event loop, where SpecCluster changes ``workers`` itself
                for name in dead:
                    self.cluster.workers.pop(name, None)

            self.cluster.loop.add_callback(drop)

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                if self.cluster.status.name != "running":
                    continue
                self._drop_dead_unconnected()
                gaps = set(self.cluster.worker_spec) - set(self.cluster.workers)
                if not gaps:
                    continue
                if self.start_failures >= self.max_start_failures:
                    if not self.gave_up:
                        self.gave_up = True
                        self.log(f"slurm: ERROR: {self.start_failures} worker jobs in a row ended before their "
                                 f"worker connected: the job script fails; stopping the run. See the job logs "
                                 f"(log-directory {getattr(self.cluster, '_job_kwargs', {}).get('log_directory')}) "
                                 f"and `python -c 'print(cluster.job_script())'`")
                        if self.interrupt:
                            import _thread

                            _thread.interrupt_main()  # the orchestrator stops like Ctrl-C; blocks stay stored
                    continue
                self.gave_up = False
                self.replaced += len(gaps)
                self.log(f"slurm: {len(gaps)} worker job(s) ended; submitting replacement(s) "
                         f"({', '.join(map(str, sorted(gaps)))})")
                self.cluster.scale(jobs=len(self.cluster.worker_spec))
            except Exception as exc:  # noqa: BLE001 - keep the run going; report only
                self.log(f"slurm: keeper: {exc!r}")


@contextlib.contextmanager
def _sigterm_interrupts(log):
    """SIGTERM (scancel, walltime, the sbatch script) and SIGINT -> KeyboardInterrupt in the main thread, so that
    the run stops like Ctrl-C: finished blocks stay in the ledger, worker jobs are cancelled, the
    TLS credentials are removed. Elsewhere (not the main thread) nothing changes."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received = []

    def handler(signum, frame):
        if received:  # scancel signals every process of the job, the sbatch script forwards it too:
            return    # interrupt once, let the clean-up run
        received.append(signum)
        log("slurm: SIGTERM: stopping (finished blocks are kept; the same command resumes)")
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    # dask_jobqueue.runner, imported with dask_jobqueue, makes SIGINT call sys.exit() (exit status 0
    # for an interrupted run): restore Python's KeyboardInterrupt while the run lasts
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def tunnel_hint(dashboard_link: str | None) -> str:
    """The ssh command that forwards a dashboard on this (compute) node's loopback to a laptop."""
    port = "8787"
    if dashboard_link:
        m = re.search(r":(\d+)", dashboard_link.split("//", 1)[-1])
        if m:
            port = m.group(1)
    host = socket.gethostname()
    return f"ssh -N -L {port}:127.0.0.1:{port} -J USER@LOGIN-NODE USER@{host}   # then open http://localhost:{port}/status"


@contextlib.contextmanager
def slurm_client(profile=None, *, jobs=None, adapt=None, lifetime=None, dashboard_address=None,
                 security=None, log=None):
    """A ``distributed.Client`` on a ``dask_jobqueue.SLURMCluster`` built from ``profile``.

    Parameters
    ----------
    profile : str, path or dict, optional
        See :func:`load_profile`.
    jobs : int, optional
        Keep this many worker jobs (ended ones are resubmitted). Default 1 unless ``adapt``.
    adapt : (int, int), optional
        Adaptive scaling between MIN and MAX worker jobs (dask's ``Adaptive``).
    lifetime : str or float, optional
        Worker lifetime (e.g. "50m"); default from the profile or the walltime (see
        :func:`worker_lifetime`); "none" switches it off.
    dashboard_address : str, optional
        Where the scheduler's dashboard listens; default "127.0.0.1:8787" (a free port if taken).
    security : distributed.security.Security, False or None
        None: TLS with credentials made for this run (:func:`wtilde_dask.security.run_security`,
        removed at the end); False: plain TCP.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    import distributed
    from dask_jobqueue import SLURMCluster

    from .security import close_worker_files, run_security

    if jobs is not None and adapt is not None:
        raise ValueError(f"jobs/adapt: give one of jobs ({jobs}) or adapt ({adapt}), not both")
    if adapt is not None:
        lo, hi = (int(x) for x in adapt)
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f"adapt: expected MIN MAX with 0 <= MIN <= MAX and MAX >= 1, got {adapt!r}")
    n_jobs = 1 if jobs is None and adapt is None else jobs
    if n_jobs is not None and int(n_jobs) < 1:
        raise ValueError(f"jobs: must be >= 1, got {n_jobs!r}")

    name, settings = load_profile(profile)
    kw = cluster_kwargs(name, settings, lifetime=lifetime, dashboard_address=dashboard_address)  # checks first
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_interrupts(log))
        built = []  # the cluster, once built: its credential files are closed before the directory goes
        if security is None:
            run = stack.enter_context(
                run_security(settings.get("tls-directory") or settings.get("shared-temp-directory")))
            stack.callback(lambda: [close_worker_files(c) for c in built])
            kw.update(run.cluster_kwargs())
            security = run.security
            log(f"slurm: TLS credentials for this run in {run.directory} (user-only; removed at the end)")
        elif security is False:
            security = None
            log("slurm: WARNING: TLS switched off: anyone on the cluster network can reach the scheduler")
        else:
            kw.update(security=security, protocol="tls://")
        cluster = stack.enter_context(SLURMCluster(**kw))
        built.append(cluster)
        # threads the run will have once its jobs start: the orchestrator keeps enough blocks in flight
        cluster.wtilde_planned_threads = int(kw["cores"]) * (hi if adapt is not None else int(n_jobs))
        if adapt is not None:
            cluster.adapt(minimum_jobs=lo, maximum_jobs=hi, interval="2s", wait_count=3)
            scaling = f"adaptive {lo}..{hi} job(s)"
        else:
            cluster.scale(jobs=int(n_jobs))
            scaling = f"{int(n_jobs)} job(s)"
        client = stack.enter_context(distributed.Client(cluster, security=security))
        stack.enter_context(_Keeper(cluster, log))
        args = kw["worker_extra_args"]
        life = [args[args.index(o) + 1] for o in ("--lifetime", "--lifetime-stagger") if o in args]
        log(f"slurm: profile {name!r}: {scaling} of {kw['cores']} core(s), {kw['memory']}, "
            f"walltime {kw['walltime']}, partition {kw.get('queue') or '(default)'}"
            + (f", worker lifetime {life[0]} +- {life[1]}" if len(life) == 2 else ""))
        log(f"slurm: scheduler {cluster.scheduler_address}; dashboard: {client.dashboard_link}")
        log(f"slurm: watch from a laptop: {tunnel_hint(client.dashboard_link)}")
        yield client
