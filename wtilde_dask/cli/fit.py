"""``wtilde fit STORE --model MODEL.yaml``: a resumable lens-model search on a lattice W-tilde store.

    wtilde fit lens.zarr --model model.yaml                    # local cluster, fit "default"
    wtilde fit lens.zarr --model model.yaml --name sie_shear   # the same command again resumes it
    wtilde fit lens.zarr --model model.yaml --cluster slurm --profile NAME --jobs 4

The model file (lens parameters in PyAutoLens's terms with priors, source mesh and regularization, sampler)
is read and checked, then the store, before anything is written or started. Nautilus sends each batch of
points to the Dask workers; NUTS runs in this process. The search checkpoints into ``STORE/fit/NAME/``;
after a kill the same command resumes it; a different model under the same name is refused naming what
differs (``--overwrite`` starts over). Prints a log line per checkpoint (evaluations, log Z), a summary table,
and as the last line one JSON object: log_evidence, log_evidence_error, n_evaluations, wall_seconds,
max_log_likelihood, median, lower_3sigma, upper_3sigma (the last three map each free parameter's PyAutoLens
name to a number).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys

JSON_KEYS = ("log_evidence", "log_evidence_error", "n_evaluations", "wall_seconds", "max_log_likelihood", "median",
             "lower_3sigma", "upper_3sigma")


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="lens-model search (Nautilus or NUTS) on a lattice store: posterior and "
                                          "evidence; resumable", description=__doc__,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("store", metavar="STORE", help="a lattice W-tilde store (wtilde compute --method lattice)")
    p.add_argument("--model", required=True, metavar="MODEL.yaml", help="the model file (lens, source, sampler)")
    p.add_argument("--name", default="default", help="the fit's name in the store (default 'default')")
    p.add_argument("--overwrite", action="store_true", help="delete an existing fit of this name and start over")
    p.add_argument("--checkpoint-batches", type=int, default=5, metavar="N",
                   help="Nautilus: checkpoint after at most N batches (default 5)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0, metavar="S",
                   help="Nautilus: checkpoint at least every S seconds (default 60)")
    p.add_argument("--retries", type=int, default=3, metavar="R",
                   help="recompute a likelihood task up to R times when its worker is lost (default 3)")
    c = p.add_argument_group("cluster (as wtilde compute; Nautilus only)")
    c.add_argument("--cluster", choices=("local", "scheduler", "slurm"), default=None,
                   help="where the likelihood runs (default: local, or scheduler when --scheduler is given)")
    c.add_argument("--scheduler", metavar="ADDR", help="use a running Dask scheduler (tcp://host:8786)")
    c.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per core)")
    c.add_argument("--threads-per-worker", type=int, metavar="T", help="threads per local worker (default 1)")
    c.add_argument("--profile", help="slurm: a profile NAME from dask's jobqueue config, or FILE.yaml:NAME")
    c.add_argument("--jobs", type=int, help="slurm: cluster jobs to start")
    c.add_argument("--adapt", type=int, nargs=2, metavar=("MIN", "MAX"), help="slurm: adaptive MIN..MAX worker jobs")
    c.add_argument("--lifetime", metavar="T", help="slurm: worker lifetime (e.g. 50m; 'none')")
    c.add_argument("--dashboard-address", metavar="HOST:PORT", help="local dashboard address (default 127.0.0.1:0)")
    p.set_defaults(func=cmd_fit)


def _cluster(args, needed: bool):
    if not needed:
        return contextlib.nullcontext(None)
    from wtilde_dask.cluster import cluster_client

    kind = args.cluster or ("scheduler" if args.scheduler else "local")
    kwargs = {"scheduler": args.scheduler, "n_workers": args.workers, "threads_per_worker": args.threads_per_worker,
              "dashboard_address": args.dashboard_address}
    for key in ("profile", "jobs", "lifetime"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.adapt is not None:
        kwargs["adapt"] = tuple(args.adapt)
    return cluster_client(kind, log=lambda msg: print(msg, file=sys.stderr, flush=True), **kwargs)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.6g}"


def summary_lines(summary: dict) -> list[str]:
    """The readable summary table of a fit result."""
    names = summary["free_names"]
    cols = ("max_likelihood", "median", "lower_1sigma", "upper_1sigma", "lower_3sigma", "upper_3sigma")
    width = max([len(n) for n in names] + [9])
    lines = [f"{'parameter':<{width}}  " + "  ".join(f"{c:>14}" for c in cols)]
    for n in names:
        lines.append(f"{n:<{width}}  " + "  ".join(f"{_fmt(summary[c][n]):>14}" for c in cols))
    lz, err = summary.get("log_evidence"), summary.get("log_evidence_error")
    lines.append("log evidence:       " + ("none (NUTS gives a posterior only)" if lz is None
                                          else f"{lz:.4f} +- {_fmt(err)}"))
    lines.append(f"max log likelihood: {summary['max_log_likelihood']:.4f}")
    spe = summary.get("seconds_per_evaluation")
    lines.append(f"evaluations:        {summary['n_evaluations']} in {summary['wall_seconds']:.1f} s"
                 + ("" if spe is None else f" ({spe * 1e3:.2f} ms each)") + f", sampler {summary.get('sampler')}")
    return lines


def cmd_fit(args) -> int:
    from wtilde_dask.fit.model import FitModel
    from wtilde_dask.fit.run import precheck, run_fit

    for key, value, low in (("--checkpoint-batches", args.checkpoint_batches, 1), ("--retries", args.retries, 0)):
        if value < low:
            raise ValueError(f"{key}: must be >= {low}, got {value}")
    if not args.checkpoint_seconds > 0:
        raise ValueError(f"--checkpoint-seconds: must be > 0, got {args.checkpoint_seconds}")
    model = FitModel.from_yaml(args.model)  # everything is checked before anything is written or started
    precheck(args.store, model, args.name, args.overwrite)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    fit_log = logging.getLogger("wtilde_dask.fit")
    fit_log.addHandler(handler)
    fit_log.setLevel(logging.INFO)
    try:
        with _cluster(args, model.sampler["name"] == "nautilus") as client:
            result = run_fit(args.store, model, args.name, client, args.overwrite,
                             slice_batches=args.checkpoint_batches, slice_seconds=args.checkpoint_seconds,
                             retries=args.retries)
    finally:
        fit_log.removeHandler(handler)
    s = result.summary
    print(f"fit {args.name!r} of {args.store}" + (" (resumed)" if result.resumed else ""))
    for line in summary_lines(s):
        print("  " + line)
    print(json.dumps({k: s.get(k) for k in JSON_KEYS}), flush=True)
    return 0


def fit_status_lines(store_path) -> list[str]:
    """One line per fit in the store: state, evaluations, rate, current log Z (from the store alone)."""
    from wtilde_dask.store.fit import FitRecord, fit_names

    lines = []
    for name in fit_names(store_path):
        rec = FitRecord(store_path, name)
        p = rec.progress()
        sampler = (rec.sampler_record() or {}).get("name", "?")
        rate = p.get("evaluations_per_second")
        lz = p.get("log_evidence")
        what = {"running": "running", "complete": "complete",
                "interrupted": "interrupted (the same `wtilde fit` command resumes it)"}.get(p.get("state"), p.get("state"))
        lines.append(f"fit {name}: {what}; {sampler}, {p.get('n_evaluations', 0)} evaluations"
                     + ("" if rate is None else f" at {rate:.3g}/s")
                     + ("" if lz is None else f", log Z {lz:.4f}")
                     + ("" if p.get("max_log_likelihood") is None else f", max log L {p['max_log_likelihood']:.4f}"))
    return lines


def fit_status(store_path) -> dict:
    """{name: progress (state as read now)} of every fit in the store."""
    from wtilde_dask.store.fit import FitRecord, fit_names

    return {name: FitRecord(store_path, name).progress() for name in fit_names(store_path)}
