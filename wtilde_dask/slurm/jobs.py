"""Running Dask workers as SLURM jobs: :func:`slurm_client` (the cluster, TLS, the dashboard), the keeper thread
that resubmits worker jobs that ended, and SIGTERM handling for the orchestrator job. Profiles:
:mod:`wtilde_dask.slurm.profiles`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading

from wtilde_dask.slurm.profiles import cluster_kwargs, load_profile

logger = logging.getLogger(__name__)


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

    from wtilde_dask.security import close_worker_files, run_security

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
