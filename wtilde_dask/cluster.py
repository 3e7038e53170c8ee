"""Where the blocks run: an embedded LocalCluster (default), an existing scheduler address, or SLURM.

``cluster_client`` is a context manager yielding a ``distributed.Client``; it prints the dashboard
link at start and closes what it started on exit. ``kind="slurm"``: worker jobs of a dask-jobqueue
``SLURMCluster`` from a profile, TLS with credentials made for the run (:mod:`wtilde_dask.slurm`,
:mod:`wtilde_dask.security`); ``security=`` passes a ``distributed.security.Security`` to any kind.
"""

from __future__ import annotations

import contextlib
import logging
import os

logger = logging.getLogger(__name__)


KINDS = ("local", "scheduler", "slurm")

#: Environment of each local worker process: one worker = ``threads_per_worker`` cores, so that
#: JAX/XLA and BLAS thread pools do not oversubscribe the machine when several workers run.
def _worker_env(threads_per_worker: int) -> dict:
    n = str(int(threads_per_worker))
    env = {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    if int(threads_per_worker) == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            flags = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
        env["XLA_FLAGS"] = flags
    return env


def machine_cores() -> int:
    """Cores this process may use (affinity / cgroup aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def local_cluster_size(n_workers=None, threads_per_worker=None) -> tuple[int, int]:
    """(n_workers, threads_per_worker) for a LocalCluster sized to the machine.

    Default: one single-threaded worker process per core (a block is one fp64 matrix product;
    independent blocks in separate processes scale without the GIL or shared thread pools).
    """
    cores = machine_cores()
    if threads_per_worker is None:
        threads_per_worker = 1 if n_workers is None else max(1, cores // int(n_workers))
    if n_workers is None:
        n_workers = max(1, cores // int(threads_per_worker))
    if int(n_workers) < 1:
        raise ValueError(f"n_workers: must be >= 1, got {n_workers!r}")
    if int(threads_per_worker) < 1:
        raise ValueError(f"threads_per_worker: must be >= 1, got {threads_per_worker!r}")
    return int(n_workers), int(threads_per_worker)


def dashboard_link(client) -> str | None:
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing, disabled)
        return None


def announce_block_map(client, log=None) -> str:
    """Serve our block-map page on the client's scheduler (wtilde_dask.dashboard) and log its link."""
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.dashboard import install

    link = install(client)
    if link:
        log(f"block map: {link}")
    return link


@contextlib.contextmanager
def cluster_client(kind="local", *, scheduler=None, n_workers=None, threads_per_worker=None,
                   dashboard_address=None, profile=None, jobs=None, adapt=None, lifetime=None,
                   security=None, memory_limit="auto", log=None):
    """A ``distributed.Client`` on the cluster of ``kind``; closes what it started on exit.

    kind "local": an embedded ``LocalCluster`` of ``n_workers`` processes x ``threads_per_worker``
        threads (default: one single-threaded process per core), dashboard on
        ``dashboard_address`` (default "127.0.0.1:0": localhost only, a free port).
    kind "scheduler": connect to the running scheduler at ``scheduler`` ("tcp://host:8786").
    kind "slurm": worker jobs of a ``dask_jobqueue.SLURMCluster`` from the named ``profile``, TLS with
        per-run credentials, ``jobs`` N or ``adapt`` (MIN, MAX), worker ``lifetime``
        (see :func:`wtilde_dask.slurm.slurm_client`).
    The dashboard link is printed with ``log`` at start.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    import distributed

    if kind is None:
        kind = "scheduler" if scheduler else "local"
    if kind == "local":
        if scheduler:
            raise ValueError(f"scheduler: {scheduler!r} given with kind 'local'; use kind='scheduler'")
        n_workers, threads_per_worker = local_cluster_size(n_workers, threads_per_worker)
        with distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=dashboard_address or "127.0.0.1:0",
            host="127.0.0.1",
            memory_limit=memory_limit,
            env=_worker_env(threads_per_worker),
            security=security,
        ) as cluster, distributed.Client(cluster, security=security) as client:
            log(f"local cluster: {n_workers} worker process(es) x {threads_per_worker} thread(s); "
                f"dashboard: {dashboard_link(client)}")
            announce_block_map(client, log)
            yield client
    elif kind == "scheduler":
        if not scheduler:
            raise ValueError("scheduler: kind 'scheduler' needs an address such as tcp://host:8786")
        with distributed.Client(scheduler, security=security, timeout="30s") as client:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            log(f"scheduler {scheduler}: {n} worker(s); dashboard: {dashboard_link(client)}")
            announce_block_map(client, log)
            yield client
    elif kind == "slurm":
        from wtilde_dask.slurm import slurm_client

        with slurm_client(profile, jobs=jobs, adapt=adapt, lifetime=lifetime, dashboard_address=dashboard_address,
                          security=security, log=log) as client:
            announce_block_map(client, log)
            yield client
    else:
        raise ValueError(f"cluster kind: {kind!r} is not available here (expected one of {', '.join(KINDS)})")


def total_threads(client) -> int:
    """Threads over all workers the client's scheduler knows now (>= 1)."""
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except TypeError:  # older distributed without n_workers
        workers = client.scheduler_info().get("workers", {})
    planned = getattr(getattr(client, "cluster", None), "wtilde_planned_threads", 0)  # SLURM jobs still queued
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()), int(planned))
