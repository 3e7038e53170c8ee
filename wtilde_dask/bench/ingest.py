"""Ingest benchmark: the chunked visibility pass on a generated Measurement Set of >= 1e8 visibilities.

    python -m wtilde_dask.bench ingest [--visibilities 1e8] [--workers 2] [--chunk-size 1e6] [--dir DIR]
                                       [--shape 64 64] [--pixel-scale 0.05] [--mask-radius 1.5]
                                       [--peer-visibilities 1e7 2e7] [--order rows|recipe] [--floor-chunks 4] [--keep]

What it measures, all in one run on this machine:

1. An ALMA-like Measurement Set of ``--visibilities`` Stokes I visibilities (4 spw x 64 channels, XX/YY, 2 %
   flagged; ``wtilde_dask.simulate.simulate_ms``) is written into ``--dir`` (kept and reused when present).
2. **Plain read**: python-casacore ``getcol`` of the columns the reader uses (UVW, DATA, FLAG, FLAG_ROW, SIGMA)
   over every row, in blocks of about ``--chunk-size`` visibilities, by as many processes as the pass has workers
   (disjoint row ranges): visibilities per second of reading alone.
3. **Our pass** (:func:`wtilde_dask.ingest.run_pass` on a LocalCluster of ``--workers`` single-thread workers):
   the Measurement Set opened as ``wtilde compute`` opens it (``order="rows"``: chunks of rows with all their
   channels, each cell read once; ``--order recipe`` for the recipe's channel-by-channel order) and read chunk by
   chunk (Stokes I, flags, noise), chi2_data, noise normalisation, dirty image and
   the lattice offset + Hankel kernels summed and stored; visibilities per second, the ratio to the plain read, and
   the peak RSS of the client and of each worker (psutil, sampled every 0.1 s during the pass). It runs on 1/8 of
   the channels and on all of them, to show the peak RSS does not grow with K, and once more with the scalar sums
   only (no NUFFT): the reading side alone (Stokes I, flags, noise, chi2_data) against the plain read. Where the
   pass's task time goes (summed over workers, :func:`wtilde_dask.ingest.run_pass`'s ``stats``): reading (the
   source's ``read_chunk``: getcol, Stokes I, flags, noise, uv), sums (casts, weights, chi2_data, noise
   normalisation), NUFFT inputs (points, strengths, phase folds) and the NUFFT call itself; the rest of the task
   time is the store write and Dask.
3b. **NUFFT floor**: the pass's batched ducc0 type-1 NUFFT alone
   (:func:`wtilde_dask.kernels.lattice.lattice_nufft`: the same points, strengths, eps 2.5e-13, (2ny-1, 2nx-1)
   grid and nthreads=1), in memory, on ``--floor-chunks`` of the pass's chunks per process (spread over the set,
   inputs prepared before the clock starts), in as many processes as the pass has workers, started together:
   visibilities read per second (the pass's unit: kept + flagged). No pass at this accuracy can be faster, so
   ``floor / plain read`` (``ratio_bound``) is the best ratio to the plain read any pass could reach here.
4. **Peer**: PyAutoArray's ``Interferometer.apply_sparse_operator_from_chunks`` (autoarray 2026.10) in a fresh
   process on the first ``--peer-visibilities`` visibilities of the same set (same mask), fed with the same chunks;
   its seconds, visibilities per second and peak RSS (ru_maxrss). The peer's method needs an ``Interferometer``
   holding every visibility, so its memory grows with K: the slope between the two sizes gives bytes per
   visibility and the **largest K** that fits in this machine's available memory. Ours is bounded by the disk
   holding the Measurement Set (free bytes / Measurement Set bytes per visibility): its RSS is flat in K.

The last line is machine-readable: ``ingest_vis_per_s=... ratio_to_plain_read=... peak_rss_max_gib=...
nufft_floor_vis_per_s=... ratio_bound=... ours_to_floor=...``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

GiB = 2.0**30


# ---------------------------------------------------------------------------------------------------------------
# The Measurement Set
# ---------------------------------------------------------------------------------------------------------------


def make_ms(path: pathlib.Path, n_visibilities: int, chunk_size: int) -> None:
    """Write the benchmark's Measurement Set in a child process (its memory does not count for the client)."""
    code = (
        "import sys; from wtilde_dask.simulate import simulate_ms; "
        f"simulate_ms({str(path)!r}, n_visibilities={int(n_visibilities)}, n_spw=4, n_channels=64, "
        f"flag_fraction=0.02, point_source=(0.3, -0.2), flux=2.0, chunk_size={int(chunk_size)}, "
        "log=lambda m: print(m, flush=True))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def dir_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# Plain read (python-casacore getcol), in parallel processes over disjoint row ranges
# ---------------------------------------------------------------------------------------------------------------

PLAIN_COLUMNS = ("UVW", "DATA", "FLAG", "FLAG_ROW", "SIGMA")


def _plain_read_rows(args) -> tuple[int, float]:
    path, r0, r1, block = args
    from casacore import tables

    t0 = time.perf_counter()
    n = 0
    with tables.table(path, ack=False) as t:
        for start in range(r0, r1, block):
            nrow = min(block, r1 - start)
            for col in PLAIN_COLUMNS:
                t.getcol(col, startrow=start, nrow=nrow)
            n += nrow
    return n, time.perf_counter() - t0


def plain_read(path: pathlib.Path, processes: int, chunk_size: int, n_chan: int) -> float:
    """Wall seconds for ``processes`` processes to getcol every row of PLAIN_COLUMNS (blocks of chunk_size visibilities)."""
    from concurrent.futures import ProcessPoolExecutor

    from casacore import tables

    with tables.table(str(path), ack=False) as t:
        nrows = t.nrows()
    block = max(1, chunk_size // n_chan)
    edges = np.linspace(0, nrows, processes + 1).astype(int)
    work = [(str(path), int(edges[i]), int(edges[i + 1]), block) for i in range(processes)]
    import multiprocessing

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm, range(processes)))  # processes started and casacore imported before the clock starts
        t0 = time.perf_counter()
        list(pool.map(_plain_read_rows, work))
        return time.perf_counter() - t0


def _warm(_):
    import casacore.tables  # noqa: F401

    time.sleep(0.2)  # keep this process busy so that each worker gets one warm-up


# ---------------------------------------------------------------------------------------------------------------
# Our pass
# ---------------------------------------------------------------------------------------------------------------


class RssSampler:
    """Peak RSS of a set of processes (psutil), sampled every ``every`` seconds in a thread."""

    def __init__(self, pids: dict, every: float = 0.1):
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: 0 for name in pids}
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while True:
            for name, proc in self.procs.items():
                try:
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
                except Exception:  # noqa: BLE001 - a process that ended
                    pass
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def our_pass(ms: pathlib.Path, grid, client, out: pathlib.Path, *, chunk_size: int, channels=None,
             images: bool = True, order: str = "rows") -> dict:
    """Run the pass on ``ms`` (optionally a channel subset) into a fresh store; seconds, K, peak RSS per process.
    ``images=False``: the scalar sums only (reading, Stokes I, flags, chi2_data): the cost of the reading side."""
    import shutil

    from wtilde_dask.ingest import open_source, run_pass
    from wtilde_dask.store import WTildeStore

    shutil.rmtree(out, ignore_errors=True)
    # as `wtilde compute` opens it (wtilde_dask.ingest.open_source): order="rows" by default, each cell read once
    source = open_source(str(ms), chunk_size=chunk_size, channels=channels, order=order)
    store = WTildeStore.create(out, source, grid, method="lattice" if images else "direct", block_size=4096,
                               copy_visibilities=False)
    pids = {"client": os.getpid()}
    pids.update({f"worker {i}": pid for i, pid in enumerate(client.run(os.getpid).values())})
    with RssSampler(pids) as rss:
        t0 = time.perf_counter()
        lines = []
        stats: dict = {}
        sums = run_pass(store, client, source, dirty_image=images, lattice=images, progress=False, log=lines.append,
                        stats=stats)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "K": int(sums["n_visibilities"]), "n_flagged": int(sums["n_flagged"]),
            "K_read": int(sums["n_visibilities"]) + int(sums["n_flagged"]) + int(sums["n_bad_weight"]),
            "rss": dict(rss.peak), "store": store, "log": lines[-1] if lines else "", "parts": stats}


# ---------------------------------------------------------------------------------------------------------------
# The NUFFT floor: the pass's batched ducc0 type-1 NUFFTs alone, in memory, one process per worker
# ---------------------------------------------------------------------------------------------------------------


def _floor_process(ms, chunk_ids, chunk_size, order, grid_args, barrier, queue):
    """Prepare the NUFFT inputs of ``chunk_ids`` as the pass does (not timed), wait for the other processes, then
    time the NUFFT calls alone; put (visibilities read, visibilities transformed, seconds) on ``queue``."""
    try:
        from wtilde_dask.grid import ImageGrid
        from wtilde_dask.ingest import keep_freed_memory, open_source
        from wtilde_dask.kernels.lattice import lattice_box, lattice_nufft, lattice_nufft_inputs
        from wtilde_dask.kernels.visibility_sums import noise_weights

        keep_freed_memory()  # as the pass's workers
        grid = ImageGrid.circular(*grid_args)
        box = lattice_box(grid)
        source = open_source(str(ms), chunk_size=chunk_size, order=order)
        inputs, n_read = [], 0
        for cid in chunk_ids:
            c = source.read_chunk(cid)
            n_read += c.n_visibilities + c.n_flagged + c.n_bad_weight
            _, wr, _, wi = noise_weights(np.asarray(c.noise_map, np.complex128))  # chunk_partial's weights
            inputs.append(lattice_nufft_inputs(c.uv_wavelengths, c.visibilities, wr, wi, grid, box=box))
        lattice_nufft(inputs[0], nthreads=1)  # warm: ducc0's first call
        barrier.wait()
        t0 = time.perf_counter()
        for inp in inputs:
            lattice_nufft(inp, nthreads=1)
        seconds = time.perf_counter() - t0
        queue.put((n_read, sum(i.points.shape[1] for i in inputs), len(inputs[0].names), seconds))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        queue.put(repr(exc))


def nufft_floor(ms: pathlib.Path, processes: int, chunk_size: int, order: str, grid_args: tuple,
                chunks_per_process: int) -> dict:
    """The pass's NUFFTs alone (same points, eps, grids, nthreads=1), ``processes`` processes at once, each on
    ``chunks_per_process`` of the pass's chunks (spread over the set) held in memory: visibilities read per second
    (the pass's unit: kept + flagged), i.e. the fastest any pass doing these NUFFTs could go."""
    import multiprocessing

    from wtilde_dask.ingest import open_source

    ids = open_source(str(ms), chunk_size=chunk_size, order=order).chunk_ids()
    step = max(1, len(ids) // max(1, processes * chunks_per_process))
    picked = ids[::step][: processes * chunks_per_process]
    shares = [picked[i::processes] for i in range(processes) if picked[i::processes]]  # fewer chunks than processes
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(len(shares)), ctx.Queue()
    procs = [ctx.Process(target=_floor_process, args=(str(ms), share, chunk_size, order, grid_args, barrier, queue))
             for share in shares]
    for p in procs:
        p.start()
    got = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    errors = [g for g in got if isinstance(g, str)]
    if errors:
        return {"error": errors[0]}
    n_read = sum(g[0] for g in got)
    n_points = sum(g[1] for g in got)
    seconds = max(g[3] for g in got)
    return {"vis_per_s": n_read / seconds, "points_per_s": n_points / seconds, "n_read": n_read,
            "n_transforms": got[0][2], "seconds": seconds, "processes": len(got),
            "ns_per_point_per_process": seconds / n_points * 1e9 * len(got)}


# ---------------------------------------------------------------------------------------------------------------
# The peer: PyAutoArray's apply_sparse_operator_from_chunks, in a fresh process
# ---------------------------------------------------------------------------------------------------------------

PEER_CODE = r"""
import json, resource, sys, time
import numpy as np
ms, k_max, chunk, shape, scale, radius = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
from wtilde_dask.io import open_visibilities
import autoarray as aa
parts, k = [], 0
for c in open_visibilities(ms, chunk_size=chunk):
    parts.append(c)
    k += c.n_visibilities
    if k >= k_max:
        break
uv = np.concatenate([c.uv_wavelengths for c in parts])[:k_max]
vis = np.concatenate([c.visibilities for c in parts])[:k_max]
noise = np.concatenate([c.noise_map for c in parts])[:k_max]
del parts
mask = aa.Mask2D.circular(shape_native=(shape, shape), pixel_scales=scale, radius=radius)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
dataset = aa.Interferometer(data=aa.Visibilities(vis), noise_map=aa.VisibilitiesNoiseMap(noise), uv_wavelengths=uv,
                            real_space_mask=mask, transformer_class=aa.TransformerNUFFT)
chunks = ((uv[i:i + chunk], vis[i:i + chunk], noise[i:i + chunk]) for i in range(0, len(vis), chunk))
t0 = time.perf_counter()
out = dataset.apply_sparse_operator_from_chunks(chunks)
seconds = time.perf_counter() - t0
print(json.dumps({"K": int(len(vis)), "seconds": seconds, "rss_before_dataset": rss0,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def peer(ms: pathlib.Path, k: int, chunk_size: int, shape: int, scale: float, radius: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", PEER_CODE, str(ms), str(int(k)), str(int(chunk_size)), str(shape),
                           str(scale), str(radius)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"K": int(k), "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


# ---------------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--visibilities", type=float, default=1e8, help="Stokes I visibilities of the generated set (1e8)")
    p.add_argument("--workers", type=int, default=2, help="single-thread worker processes (default 2)")
    p.add_argument("--chunk-size", type=float, default=1e6, help="visibilities per chunk (default 1e6)")
    p.add_argument("--dir", default=None, help="where the Measurement Set and stores go (default: a temp dir)")
    p.add_argument("--shape", type=int, default=64, help="square lattice side (default 64)")
    p.add_argument("--pixel-scale", type=float, default=0.05, help="arcsec (default 0.05)")
    p.add_argument("--mask-radius", type=float, default=1.5, help="arcsec (default 1.5)")
    p.add_argument("--peer-visibilities", type=float, nargs=2, default=(1e7, 2e7), metavar=("K1", "K2"),
                   help="two sizes for the peer (its memory slope gives its largest K; default 1e7 2e7: smaller "
                        "sizes give a slope lost in the process's base memory)")
    p.add_argument("--order", choices=("rows", "recipe"), default="rows",
                   help="how the pass reads the Measurement Set: rows (default, as `wtilde compute`: each cell once) "
                        "or recipe (the PyAutoLens recipe's order, channel by channel)")
    p.add_argument("--floor-chunks", type=int, default=4,
                   help="chunks per process held in memory for the NUFFT floor (default 4)")
    p.add_argument("--keep", action="store_true", help="keep the Measurement Set and the stores")
    args = p.parse_args(argv)

    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.grid import ImageGrid

    K, chunk = int(args.visibilities), int(args.chunk_size)
    root = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="wtilde-bench-ingest-"))
    root.mkdir(parents=True, exist_ok=True)
    ms = root / f"alma_{K:.0e}.ms".replace("+", "")
    if not ms.exists():
        t0 = time.perf_counter()
        make_ms(ms, K, chunk)
        print(f"Measurement Set {ms}: written in {time.perf_counter() - t0:.1f} s")
    ms_bytes = dir_bytes(ms)
    n_chan = 64
    print(f"Measurement Set {ms}: {ms_bytes / GiB:.2f} GiB, {ms_bytes / K:.1f} bytes per Stokes I visibility")
    grid = ImageGrid.circular((args.shape, args.shape), (args.pixel_scale,) * 2, args.mask_radius)
    print(f"grid: {args.shape}x{args.shape} at {args.pixel_scale}\", mask radius {args.mask_radius}\": "
          f"M = {grid.n_pixels}; chunks of {chunk:,} visibilities read in order={args.order}; {args.workers} "
          "worker(s) x 1 thread")

    t_plain1 = plain_read(ms, args.workers, chunk, n_chan)
    print(f"plain read ({', '.join(PLAIN_COLUMNS)}, {args.workers} processes): {t_plain1:.1f} s")
    runs = {}
    with cluster_client("local", n_workers=args.workers, threads_per_worker=1, log=lambda *a: None) as client:
        for label, channels, images in (("1/8 of the channels", f"0~{n_chan // 8 - 1}", True),
                                        ("all channels", None, True),
                                        ("all channels, scalar sums only (no NUFFT)", None, False)):
            r = our_pass(ms, grid, client, root / "store.zarr", chunk_size=chunk, channels=channels, images=images,
                         order=args.order)
            runs[label] = r
            print(f"our pass, {label}: {r['K_read']:,} visibilities read ({r['K']:,} used, {r['n_flagged']:,} flagged) "
                  f"in {r['seconds']:.1f} s = {r['K_read'] / r['seconds']:,.0f} vis/s; peak RSS "
                  + ", ".join(f"{n} {v / GiB:.2f} GiB" for n, v in r["rss"].items()))
            print(f"  {r['log']}")
            parts = r["parts"]
            print("  task seconds by part (summed over workers): "
                  + ", ".join(f"{k} {parts.get(k, 0.0):.2f}" for k in ("reading", "sums", "nufft_inputs", "nufft"))
                  + f" of {parts.get('task', 0.0):.2f}")
    floor = nufft_floor(ms, args.workers, chunk, args.order, ((args.shape, args.shape), (args.pixel_scale,) * 2,
                                                               args.mask_radius), args.floor_chunks)
    if "error" in floor:
        print(f"NUFFT floor: failed: {floor['error']}")
    else:
        print(f"NUFFT floor ({floor['n_transforms']} batched ducc0 type-1 transforms per chunk, eps 2.5e-13, "
              f"nthreads=1, {args.workers} process(es), {floor['n_read']:,} visibilities in memory): "
              f"{floor['vis_per_s']:,.0f} vis/s ({floor['ns_per_point_per_process']:.0f} ns per transformed "
              "visibility per process)")
    t_plain2 = plain_read(ms, args.workers, chunk, n_chan)
    print(f"plain read again: {t_plain2:.1f} s")
    full = runs["all channels"]
    t_plain = min(t_plain1, t_plain2)
    ours_rate = full["K_read"] / full["seconds"]
    plain_rate = full["K_read"] / t_plain
    ratio = ours_rate / plain_rate

    peers = [peer(ms, int(k), chunk, args.shape, args.pixel_scale, args.mask_radius) for k in args.peer_visibilities]
    for r in peers:
        if "error" in r:
            print(f"peer apply_sparse_operator_from_chunks, K = {r['K']:,}: failed: {r['error']}")
        else:
            print(f"peer apply_sparse_operator_from_chunks, K = {r['K']:,}: {r['seconds']:.1f} s = "
                  f"{r['K'] / r['seconds']:,.0f} vis/s; peak RSS {r['peak_rss'] / GiB:.2f} GiB")

    # largest K: ours is bounded by the disk holding the Measurement Set (RSS flat in K); the peer by memory
    free_disk = __import__("shutil").disk_usage(root).free
    ours_k_max = (free_disk + ms_bytes) / (ms_bytes / K)
    avail = available_bytes()
    ok = [r for r in peers if "error" not in r]
    print()
    print("| | visibilities/s | peak RSS | largest K here |")
    print("|---|---|---|---|")
    rss_small = max(runs["1/8 of the channels"]["rss"].values())
    rss_full = max(full["rss"].values())
    print(f"| plain getcol read ({args.workers} proc) | {plain_rate:,.0f} | - | - |")
    sums_only = runs["all channels, scalar sums only (no NUFFT)"]
    sums_rate = sums_only["K_read"] / sums_only["seconds"]
    print(f"| ours, scalar sums only: read + Stokes I + flags + chi2 ({args.workers} workers) | {sums_rate:,.0f} "
          f"(ratio to plain read {sums_rate / plain_rate:.2f}) | {max(sums_only['rss'].values()) / GiB:.2f} GiB | - |")
    print(f"| ours: wtilde ingest pass ({args.workers} workers) | {ours_rate:,.0f} (ratio to plain read {ratio:.2f}) | "
          f"{rss_full / GiB:.2f} GiB max over processes at K = {full['K_read']:,} "
          f"({rss_small / GiB:.2f} GiB at K = {runs['1/8 of the channels']['K_read']:,}) | "
          f"{ours_k_max:.2e} (disk: {free_disk / GiB:.0f} GiB free / {ms_bytes / K:.1f} B per visibility) |")
    parts = full["parts"]
    task = parts.get("task", 0.0) or float("nan")
    print(f"| ours, where the pass's task time goes | reading {parts.get('reading', 0.0):.1f} s "
          f"({parts.get('reading', 0.0) / task:.0%}), sums {parts.get('sums', 0.0):.1f} s "
          f"({parts.get('sums', 0.0) / task:.0%}), NUFFT inputs {parts.get('nufft_inputs', 0.0):.1f} s "
          f"({parts.get('nufft_inputs', 0.0) / task:.0%}), NUFFTs {parts.get('nufft', 0.0):.1f} s "
          f"({parts.get('nufft', 0.0) / task:.0%}) of {task:.1f} s | - | - |")
    floor_rate = floor.get("vis_per_s", float("nan"))
    ratio_bound = floor_rate / plain_rate
    print(f"| NUFFT floor: the pass's ducc0 NUFFTs alone, in memory ({args.workers} proc) | {floor_rate:,.0f} "
          f"(ratio to plain read {ratio_bound:.2f}: the best any pass at eps 2.5e-13 can reach here) | - | - |")
    if len(ok) == 2 and ok[1]["K"] != ok[0]["K"]:
        slope = (ok[1]["peak_rss"] - ok[0]["peak_rss"]) / (ok[1]["K"] - ok[0]["K"])
        base = ok[0]["peak_rss"] - slope * ok[0]["K"]
        peer_k_max = (avail - base) / slope if slope > 0 else float("inf")
        print(f"| peer: apply_sparse_operator_from_chunks (1 proc) | {ok[1]['K'] / ok[1]['seconds']:,.0f} | "
              f"{ok[1]['peak_rss'] / GiB:.2f} GiB at K = {ok[1]['K']:,} ({slope:.0f} B per visibility) | "
              f"{peer_k_max:.2e} (memory: {avail / GiB:.1f} GiB available) |")
        peer_rate = ok[1]["K"] / ok[1]["seconds"]
    else:
        peer_k_max, peer_rate = float("nan"), float("nan")
    print()
    print(f"ingest_vis_per_s={ours_rate:.0f} ratio_to_plain_read={ratio:.3f} "
          f"sums_only_ratio_to_plain_read={sums_rate / plain_rate:.3f} peak_rss_max_gib={rss_full / GiB:.3f} "
          f"peak_rss_small_k_gib={rss_small / GiB:.3f} peer_vis_per_s={peer_rate:.0f} ours_to_peer={ours_rate / peer_rate:.2f} "
          f"ours_k_max={ours_k_max:.3g} peer_k_max={peer_k_max:.3g} nufft_floor_vis_per_s={floor_rate:.0f} "
          f"ratio_bound={ratio_bound:.3f} ours_to_floor={ours_rate / floor_rate:.3f}")
    if not args.keep:
        import shutil

        shutil.rmtree(root / "store.zarr", ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
