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

from wtilde_dask.errors import ProfileError  # noqa: F401 (re-exported)
from wtilde_dask.slurm.jobs import live_slurm_jobs, slurm_client, tunnel_hint  # noqa: F401 (re-exported)
from wtilde_dask.slurm.profiles import (  # noqa: F401 (re-exported)
    DEFAULT_DASHBOARD, EXAMPLE_PROFILES, REQUIRED_KEYS, WTILDE_KEYS, cluster_kwargs, load_profile, parse_walltime,
    profile_help, usable_profiles, worker_lifetime)
