"""Ingest benchmark: the chunked visibility pass on a generated Measurement Set of >= 1e8 visibilities.

    python -m wtilde_dask.bench ingest [--visibilities 1e8] [--workers 2] [--chunk-size 1e6] [--dir DIR]
                                       [--shape 64 64] [--pixel-scale 0.05] [--mask-radius 1.5]
                                       [--peer-visibilities 1e7 2e7] [--order rows|recipe] [--keep]

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
   only (no NUFFT): the reading side alone (Stokes I, flags, noise, chi2_data) against the plain read.
4. **Peer**: PyAutoArray's ``Interferometer.apply_sparse_operator_from_chunks`` (autoarray 2026.10) in a fresh
   process on the first ``--peer-visibilities`` visibilities of the same set (same mask), fed with the same chunks;
   its seconds, visibilities per second and peak RSS (ru_maxrss). The peer's method needs an ``Interferometer``
   holding every visibility, so its memory grows with K: the slope between the two sizes gives bytes per
   visibility and the **largest K** that fits in this machine's available memory. Ours is bounded by the disk
   holding the Measurement Set (free bytes / Measurement Set bytes per visibility): its RSS is flat in K.

The last line is machine-readable: ``ingest_vis_per_s=... ratio_to_plain_read=... peak_rss_max_gib=...``.
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
        sums = run_pass(store, client, source, dirty_image=images, lattice=images, progress=False, log=lines.append)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "K": int(sums["n_visibilities"]), "n_flagged": int(sums["n_flagged"]),
            "K_read": int(sums["n_visibilities"]) + int(sums["n_flagged"]) + int(sums["n_bad_weight"]),
            "rss": dict(rss.peak), "store": store, "log": lines[-1] if lines else ""}


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
          f"ours_k_max={ours_k_max:.3g} peer_k_max={peer_k_max:.3g}")
    if not args.keep:
        import shutil

        shutil.rmtree(root / "store.zarr", ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
