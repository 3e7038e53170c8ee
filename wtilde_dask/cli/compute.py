"""``wtilde compute | status | verify | info``: build, watch, check and describe a W-tilde store.

    wtilde compute sma --out sma_w_tilde.zarr          # bundled SMA data, 80x80 x 0.05", r = 4" mask
    wtilde compute DATA/ --shape 256 256 --pixel-scale 0.1 --mask-radius 3 --out w.zarr --block-size 2048
    wtilde status w.zarr        # done/total, mean block time, ETA (from the ledger; run live or dead)
    wtilde verify w.zarr --sample 3        # exit 0 sound, 1 not; --repair recomputes just the bad blocks
    wtilde info w.zarr
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys

from wtilde_dask import config

#: Defaults for the bundled SMA data (PyAutoGalaxy's pixelization walkthrough).
SMA_DEFAULTS = {"shape": (80, 80), "pixel_scale": (0.05,), "mask_radius": 4.0}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compute", help="compute (or resume) the W-tilde matrix of a dataset into a Zarr store",
        description="Compute the W-tilde matrix block by block on Dask workers into a Zarr store. Running the same "
                    "command again resumes where it stopped; a store built from other inputs is refused.",
    )
    p.add_argument("dataset", help="a calibrated Measurement Set (DATA.ms), a UVFITS file, a PyAutoLens FITS folder "
                                   "(data.fits, noise_map.fits, uv_wavelengths.fits), an .npz, or 'sma' for the "
                                   "bundled SMA example")
    p.add_argument("--field", metavar="NAME|ID", help="Measurement Set: the field to use (name or FIELD_ID)")
    p.add_argument("--spw", metavar="LIST", help="Measurement Set: spectral windows, e.g. 0,2-3 (default all)")
    p.add_argument("--channels", metavar="RANGE", help="Measurement Set: channels of each window, e.g. 0~63 (default all)")
    p.add_argument("--column", metavar="COL", help="Measurement Set: DATA (default), CORRECTED_DATA or MODEL_DATA")
    p.add_argument("--hdu", type=_hdu, metavar="N|NAME",
                   help="PyAutoLens FITS folder: the HDU (index or EXTNAME) holding each (K, 2) array (default 0)")
    p.add_argument("--chunk-size", type=int, metavar="N",
                   help="visibilities (Measurement Set: rows) read per chunk by a task (default: dask config wtilde.chunk-size, 1e6); "
                        "memory per worker is bounded by it")
    p.add_argument("--copy-visibilities", action=argparse.BooleanOptionalAction, default=None,
                   help="copy the visibilities into the store's inputs/ (default: yes for FITS folders, .npz and "
                        "sma; no for Measurement Sets and UVFITS, whose path, selection, sizes and mtimes are "
                        "recorded instead)")
    p.add_argument("--out", required=True, metavar="STORE.zarr", help="the Zarr store to create or resume")
    p.add_argument("--shape", type=int, nargs=2, metavar=("NY", "NX"), help="image lattice shape (sma: 80 80)")
    p.add_argument("--pixel-scale", type=float, nargs="+", metavar="P",
                   help="pixel scale in arcsec, one value or SY SX (sma: 0.05)")
    p.add_argument("--mask-radius", type=float, metavar="R", help="circular mask radius in arcsec (sma: 4.0)")
    p.add_argument("--mask-inner-radius", type=float, metavar="R0",
                   help="with --mask-radius: an annular mask R0 <= r <= R")
    p.add_argument("--mask-centre", type=float, nargs=2, metavar=("Y", "X"), default=(0.0, 0.0),
                   help="mask centre in arcsec (default 0 0)")
    p.add_argument("--mask-file", metavar="F", help="mask from a .npy or FITS file (True/1 = masked) instead of a circle")
    p.add_argument("--block-size", type=int, default=config.get("block-size"), metavar="B",
                   help="block edge in pixels (default %(default)s: dask config wtilde.block-size)")
    p.add_argument("--method", choices=("auto", "direct", "lattice"), default="auto",
                   help="direct matrix products or lattice NUFFT kernel + gathers (auto: lattice for a masked grid)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="stored dtype (default float64)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per core)")
    p.add_argument("--threads-per-worker", type=int, metavar="T", help="threads per local worker (default 1)")
    p.add_argument("--scheduler", metavar="ADDR", help="use a running Dask scheduler (tcp://host:8786) instead")
    p.add_argument("--cluster", choices=("local", "scheduler", "slurm"), default=None,
                   help="where to run (default: local, or scheduler when --scheduler is given)")
    p.add_argument("--profile", help="slurm: a profile NAME from dask's jobqueue config, or FILE.yaml:NAME "
                                     "(deployments/slurm/jobqueue.yaml)")
    p.add_argument("--jobs", type=int, help="cluster jobs to start (slurm)")
    p.add_argument("--adapt", type=int, nargs=2, metavar=("MIN", "MAX"), help="slurm: adaptive MIN..MAX worker jobs")
    p.add_argument("--lifetime", metavar="T", help="slurm: worker lifetime (e.g. 50m; default walltime - 10%%; 'none')")
    p.add_argument("--dashboard-address", metavar="HOST:PORT", help="local dashboard address (default 127.0.0.1:0)")
    p.add_argument("--max-in-flight", type=int, metavar="N", help="tasks submitted at once (default 3 x worker threads)")
    p.add_argument("--overwrite", action="store_true", help="delete an existing store at --out and start over")
    p.add_argument("--check-existing", action="store_true",
                   help="on resume, read every done block back and compare it with its ledger checksum; bad blocks "
                        "are recomputed (without it: missing or truncated chunk files only)")
    p.add_argument("--no-dirty-image", action="store_true", help="do not compute the dirty image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compute)

    p = subparsers.add_parser("status", help="visibility pass progress, blocks done/total, mean block time and ETA, "
                                          "and the lens-model fits of a store (live or dead run)")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--plot", metavar="PNG", help="also draw the block map into PNG")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser(
        "verify", help="check every block's checksum; recompute N random blocks by the reference formula; --repair",
        description="Check every block the ledger calls done (chunk file present, full size, readable, checksum = "
                    "ledger) and recompute N random blocks by the slow reference formula. Ends with a summary line "
                    "'verify: OK|FAILED: N blocks checked, b bad, r repaired'. --repair clears the bad blocks from "
                    "the ledger and recomputes only them from the store's own inputs (on a local cluster, or "
                    "--scheduler); every sound block is kept. Exit status: 0 the store is sound (after repair, if "
                    "asked), 1 it is not (bad blocks left, or the repair stopped), 2 the store cannot be used "
                    "(missing, not a W-tilde store, held by a live run).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--sample", type=int, default=2, metavar="N", help="blocks to recompute (default 2)")
    p.add_argument("--entries", type=int, default=64, metavar="E",
                   help="recompute at most E random rows x E random columns of each sampled block (default 64)")
    p.add_argument("--seed", type=int, default=None, help="random seed for the sample")
    p.add_argument("--repair", action="store_true",
                   help="clear bad blocks from the ledger and recompute just them (needs the store's lock)")
    p.add_argument("--workers", type=int, metavar="N", help="--repair: local worker processes (default: one per core)")
    p.add_argument("--threads-per-worker", type=int, metavar="T", help="--repair: threads per local worker")
    p.add_argument("--scheduler", metavar="ADDR", help="--repair: use a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true", help="--repair: no progress bar")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "info", help="a store's inputs, fingerprint and sizes; or a dataset's fields, windows, times and flags",
        description="On a W-tilde store: its inputs, source, grid, blocks, sizes and fingerprint. On a dataset (a "
                    "Measurement Set, a UVFITS file, a PyAutoLens FITS folder, an .npz or 'sma'): a listobs-like summary "
                    "(fields, spectral windows, correlations, rows, time range, flagged fraction, noise column).")
    p.add_argument("store", metavar="STORE|DATA")
    p.add_argument("--json", action="store_true",
                   help="print the store attributes (with the source's file sizes and times) or the summary as JSON")
    p.set_defaults(func=cmd_info)


# ---------------------------------------------------------------------------------------------------


def _hdu(text: str) -> int | str:
    """--hdu: an HDU index (digits) or an EXTNAME."""
    return int(text) if text.isdigit() else text


def _err(msg: str) -> ValueError:
    return ValueError(msg)


def load_inputs(args):
    """(source, grid) from the compute arguments (validation errors name the option and value); the source is a
    chunked reader (:func:`wtilde_dask.ingest.open_source`) with the selection flags."""
    from wtilde_dask.grid import ImageGrid
    from wtilde_dask.ingest import open_source

    is_sma = args.dataset.lower() == "sma"
    if args.chunk_size is not None and args.chunk_size < 1:
        raise _err(f"--chunk-size: must be >= 1, got {args.chunk_size}")
    selection = {k: getattr(args, k, None) for k in ("field", "spw", "channels", "column", "hdu")}
    dataset = open_source("sma" if is_sma else args.dataset, chunk_size=args.chunk_size, **selection)
    shape, scale, radius = args.shape, args.pixel_scale, args.mask_radius
    if is_sma:
        if args.mask_file is None:
            shape = shape or SMA_DEFAULTS["shape"]
            radius = radius if radius is not None else SMA_DEFAULTS["mask_radius"]
        scale = scale or SMA_DEFAULTS["pixel_scale"]
    if not scale:
        raise _err("--pixel-scale: required (arcsec per pixel; defaults exist only for the bundled 'sma')")
    if len(scale) not in (1, 2):
        raise _err(f"--pixel-scale: one value or two (SY SX), got {len(scale)}: {scale}")
    pixel_scales = (scale[0], scale[0]) if len(scale) == 1 else (scale[0], scale[1])
    if args.mask_file is not None:
        if args.mask_radius is not None or args.shape is not None:
            raise _err("--mask-file: give either a mask file or --shape/--mask-radius, not both")
        grid = ImageGrid.from_mask_file(args.mask_file, pixel_scales)
    else:
        if shape is None:
            raise _err("--shape: required (NY NX of the image lattice; defaults exist only for 'sma')")
        if radius is None:
            raise _err("--mask-radius: required (arcsec), or give --mask-file")
        if args.mask_inner_radius is not None:
            grid = ImageGrid.annular(tuple(shape), pixel_scales, args.mask_inner_radius, radius,
                                     centre=tuple(args.mask_centre))
        else:
            grid = ImageGrid.circular(tuple(shape), pixel_scales, radius, centre=tuple(args.mask_centre))
    return dataset, grid


def cmd_compute(args) -> int:
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.compute import ComputeError, compute, precheck

    dataset, grid = load_inputs(args)
    precheck(args.out, dataset, grid, method=args.method, block_size=args.block_size, dtype=args.dtype,
             overwrite=args.overwrite)
    from wtilde_dask.store import source_summary

    print(f"dataset: {source_summary(dataset.describe())}; grid: {grid!r}; block size {args.block_size}", flush=True)
    kind = args.cluster or ("scheduler" if args.scheduler else "local")
    cluster_kwargs = {"scheduler": args.scheduler, "n_workers": args.workers,
                      "threads_per_worker": args.threads_per_worker, "dashboard_address": args.dashboard_address}
    if args.profile is not None:
        cluster_kwargs["profile"] = args.profile
    if args.jobs is not None:
        cluster_kwargs["jobs"] = args.jobs
    if args.adapt is not None:
        cluster_kwargs["adapt"] = tuple(args.adapt)
    if args.lifetime is not None:
        cluster_kwargs["lifetime"] = args.lifetime

    def log(msg):
        print(msg, flush=True)

    with cluster_client(kind, log=log, **cluster_kwargs) as client:
        try:
            store = compute(dataset, grid, args.out, block_size=args.block_size, method=args.method,
                            dtype=args.dtype, client=client, overwrite=args.overwrite,
                            progress=not args.no_progress, max_in_flight=args.max_in_flight,
                            dirty_image=not args.no_dirty_image, check_existing=args.check_existing,
                            copy_visibilities=args.copy_visibilities, log=log)
        except ComputeError as err:
            print(f"wtilde compute: {err}", file=sys.stderr)
            return 1
    print(f"stored: {store.path} ({store.n_done()}/{store.plan.n_blocks} blocks); "
          f"read it with wtilde_dask.open_w_tilde({str(store.path)!r})", flush=True)
    return 0


def _fmt_s(seconds) -> str:
    if seconds is None:
        return "unknown"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_status(args) -> int:
    from wtilde_dask.status import store_status

    from wtilde_dask.cli.fit import fit_status, fit_status_lines

    st = store_status(args.store)
    if args.json:
        print(json.dumps({**st, "fits": fit_status(args.store)}, indent=2, default=str))
    else:
        lock = st["lock"] or {}
        run = ("running" if st["running"] else "not running") + (
            f" (lock {st['lock_state']}: host {lock.get('host')}, pid {lock.get('pid')}, started {lock.get('started')})"
            if st["lock"] else "")
        last = st["last_run"] or {}
        print(f"store:      {st['store']}")
        print(f"method:     {st['method']}, M = {st['n_pixels']} pixels, B = {st['block_size']}, "
              f"{st['n_blocks_side']}x{st['n_blocks_side']} block grid")
        vp = st["visibility_pass"]
        if vp is not None:
            what = "complete" if vp["state"] == "complete" else (
                "running" if st["running"] else "interrupted (the next `wtilde compute` resumes it)")
            print(f"visibilities: pass {what}: {vp['groups_done']}/{vp['n_groups']} groups of chunks summed "
                  f"({vp['n_chunks']} chunk{'' if vp['n_chunks'] == 1 else 's'}), {vp['visibilities_read']:,} visibilities read")
        print(f"blocks:     {st['done']}/{st['n_blocks']} done ({100 * st['fraction']:.1f}%), {st['remaining']} to go")
        print(f"block time: {_fmt_s(st['mean_block_s'])} mean (compute + write, per task)")
        print(f"ETA:        {_fmt_s(st['eta_s'])} at {st['worker_threads']} worker thread(s)"
              + ("" if st["remaining"] else " (complete)"))
        print(f"run:        {run}")
        if last:
            print(f"last run:   {last.get('state')} (started {last.get('started')}, host {last.get('host')}, "
                  f"pid {last.get('pid')}, skipped {last.get('skipped')}, computed {last.get('computed', '?')})")
        for line in fit_status_lines(args.store):  # the lens-model fits recorded in the store
            print(line)
    if args.plot:
        if importlib.util.find_spec("wtilde_dask.plot") is None:
            print("--plot: wtilde_dask.plot is not available", file=sys.stderr)
            return 2
        from wtilde_dask.plot import plot_block_map_png

        out = plot_block_map_png(args.store, args.plot)
        print(f"block map: {out}")
    return 0


def cmd_verify(args) -> int:
    from wtilde_dask.verify import verify_store

    if args.sample < 0:
        raise _err(f"--sample: must be >= 0, got {args.sample}")
    if args.entries < 1:
        raise _err(f"--entries: must be >= 1, got {args.entries}")
    def log(msg):
        print(msg, flush=True)

    if args.repair and args.scheduler:
        from wtilde_dask.cluster import cluster_client

        with cluster_client("scheduler", scheduler=args.scheduler, log=log) as client:
            report = verify_store(args.store, sample=args.sample, entries=args.entries, seed=args.seed,
                                  repair=True, client=client, progress=not args.no_progress, log=log)
    else:
        report = verify_store(args.store, sample=args.sample, entries=args.entries, seed=args.seed,
                              repair=args.repair, n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                              progress=not args.no_progress, log=log)
    return 0 if report["ok"] else 1


def _print_source(store) -> None:
    """The source record, noise column, visibility sums and dropped counts of ``wtilde info``."""
    record = store.source_record()
    print(f"source:       {record.get('format')} {record.get('path')}"
          + ("  (visibilities copied into inputs/)" if store.copied_visibilities else
             "  (visibilities not copied: read from the source)"))
    for key in ("selection", "column", "noise_column", "correlations", "spectral_windows", "n_rows"):
        if record.get(key) not in (None, {}, []):
            value = record[key]
            if key == "selection":
                value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "all"
            print(f"  {key:<12} {value if isinstance(value, str) else json.dumps(value, default=str)}")
    for w in record.get("windows") or []:
        ch = w.get("channels") or []
        chans = f"channels {ch[0]}-{ch[1]}" if len(ch) == 2 else f"{len(ch)} channels"
        print(f"  spw {w.get('spw')}: {chans}, Stokes I from {'+'.join(w.get('stokes_i_from', []))}, "
              f"{w.get('n_rows')} rows")
    files = record.get("files") or {}
    if files:
        total = sum(f.get("size", 0) for f in files.values())
        print(f"  files        {len(files)}, {total / 1e6:.3g} MB (each file's size and time: --json)")
    sums = store.visibility_sums()
    if sums is None:
        print("visibilities: pass not finished (no sums stored yet)")
        return
    print(f"visibilities: K = {sums['n_visibilities']} used; dropped {sums['n_flagged']} flagged, "
          f"{sums['n_bad_weight']} with zero or non-finite weight; noise from {record.get('noise_column', '?')}")
    print(f"  chi2_data = {sums['chi_squared_data']!r}, noise normalisation = {sums['noise_normalization']!r}")


def cmd_info(args) -> int:
    from wtilde_dask.store import WTildeStore, read_lock

    if not (pathlib.Path(args.store) / "zarr.json").exists() and (args.store == "sma" or pathlib.Path(args.store).exists()):
        from wtilde_dask.io.summary import summarize, summary_lines

        summary = summarize(args.store)
        print(json.dumps(summary, indent=2, default=str) if args.json else "\n".join(summary_lines(summary)))
        return 0
    store = WTildeStore.open(args.store)
    a = store.attrs
    if args.json:
        print(json.dumps(a, indent=2, default=str))
        return 0
    plan = store.plan
    M, B = plan.n_pixels, plan.block_size
    grid = a.get("grid", {})
    print(f"store:        {store.path} (format {a.get('wtilde_format')} v{a.get('format_version')})")
    print(f"dataset:      {a.get('dataset', {}).get('name')} ({a.get('dataset', {}).get('n_visibilities')} visibilities)")
    _print_source(store)
    print(f"grid:         M = {M} pixels" + (f", lattice {grid.get('shape_native')} at {grid.get('pixel_scales')} arcsec"
                                           if grid.get("is_lattice") else ", irregular points"))
    print(f"method:       {a.get('method')}, dtype {a.get('dtype')}")
    print(f"blocks:       B = {B}, {plan.n_blocks_side}x{plan.n_blocks_side} grid, {plan.n_blocks} upper-triangle blocks, "
          f"{store.n_done()} done")
    itemsize = 8 if a.get("dtype") == "float64" else 4
    print(f"sizes:        dense {M * M * itemsize / 1e9:.3g} GB, stored (upper blocks) "
          f"{sum(plan.block_shape(i, j)[0] * plan.block_shape(i, j)[1] for i, j in plan.blocks()) * itemsize / 1e9:.3g} GB, "
          f"on disk now {store.disk_bytes() / 1e9:.3g} GB")
    print(f"fingerprint:  {a.get('fingerprint')}")
    for name, comp in sorted(a.get("fingerprint_components", {}).items()):
        print(f"  {name:<14} {comp['sha256'][:16]}  {comp['summary']}")
    extra = [n for n in store.array_names() if not n.startswith("inputs/") and n not in ("w_tilde", "ledger", "ledger_seconds")]
    print(f"arrays:       {', '.join(extra) if extra else '(none besides w_tilde)'}")
    print("software:     " + ", ".join(f"{k} {v}" for k, v in a.get("software", {}).items()))
    print(f"created:      {a.get('created')}, updated {a.get('updated')}")
    lock = read_lock(store.path)
    if lock is None:
        print("lock:         none (no run holds the store)")
    else:
        print(f"lock:         host {lock.get('host')}, pid {lock.get('pid')}, started {lock.get('started')}")
    return 0
