"""Out-of-core benchmark: W-tilde of M ~ 7,500 and ~ 30,000 pixels into Zarr, memory and write rate.

    python -m wtilde_dask.bench store [--pixels 7500 30000] [--block-size 1024] [--method lattice]
                                      [--workers N] [--dir DIR] [--keep]

For each M (a circular mask on a 0.05" lattice sized to hold about M pixels, the bundled SMA
visibilities), it runs the real service (``wtilde_dask.compute`` on a LocalCluster) into a fresh store
and prints:

* the dense size (M^2 x 8 bytes) and the bytes actually stored (upper-triangle blocks only);
* the peak resident memory (ru_maxrss) of the client process (which also hosts the scheduler) and of
  each worker process, to show it stays flat (independent of M) and under 2 GiB;
* the store's write rate (stored bytes / wall time of the block phase) against a plain sequential
  write of the same number of bytes, in pieces of one block, to the same directory, measured in the
  same run right after.

The last line is machine-readable:
``write_ratio=<float> peak_rss_max_gib=<float>`` (largest M; the ratio is store rate / plain rate).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import resource
import shutil
import tempfile
import time

import numpy as np


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def grid_for_pixels(n_pixels: int, pixel_scale: float = 0.05):
    """A circular mask on a square lattice holding about ``n_pixels`` unmasked pixels."""
    from wtilde_dask.grid import ImageGrid

    radius = math.sqrt(n_pixels / math.pi) * pixel_scale
    side = 2 * math.ceil(radius / pixel_scale) + 4
    return ImageGrid.circular((side, side), (pixel_scale, pixel_scale), radius)


def plain_write(directory: pathlib.Path, n_bytes: int, piece_bytes: int) -> float:
    """Seconds to write ``n_bytes`` sequentially (pieces of ``piece_bytes``, one file) into ``directory``."""
    piece = np.random.default_rng(0).random(max(1, piece_bytes // 8))
    buf = piece.tobytes()
    path = directory / "plain_write.bin"
    t0 = time.perf_counter()
    written = 0
    with open(path, "wb") as fh:
        while written < n_bytes:
            fh.write(buf)
            written += len(buf)
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def run_one(n_pixels, *, block_size, method, client, directory: pathlib.Path, dataset, keep: bool) -> dict:
    from wtilde_dask.compute import compute
    from wtilde_dask.store import WTildeStore

    grid = grid_for_pixels(n_pixels)
    out = directory / f"w_tilde_{grid.n_pixels}.zarr"
    logs = []
    t0 = time.perf_counter()
    store = compute(dataset, grid, out, block_size=block_size, method=method, client=client, overwrite=True,
                    progress=False, dirty_image=False, log=logs.append)
    wall = time.perf_counter() - t0
    plan = store.plan
    stored = sum(np.prod(plan.block_shape(i, j)) for i, j in plan.blocks()) * 8
    on_disk = store.disk_bytes()
    times = store.attrs.get("last_run", {}).get("times", {})
    block_phase = store.attrs.get("last_run", {}).get("seconds", wall) - times.get("visibility_pass", times.get("kernel", 0.0))
    workers = client.run(_peak_rss_bytes)
    plain = plain_write(directory, int(on_disk), min(block_size, plan.n_pixels) ** 2 * 8)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    assert isinstance(store, WTildeStore)
    return {
        "M": grid.n_pixels, "B": plan.block_size, "blocks": plan.n_blocks, "method": store.method,
        "dense_gb": grid.n_pixels ** 2 * 8 / 1e9, "stored_gb": stored / 1e9, "disk_gb": on_disk / 1e9,
        "wall_s": wall, "block_phase_s": block_phase, "blocks_per_s": plan.n_blocks / block_phase,
        "store_mb_s": on_disk / block_phase / 1e6, "plain_mb_s": on_disk / plain / 1e6,
        "write_ratio": (on_disk / block_phase) / (on_disk / plain),
        "client_rss_gib": _peak_rss_bytes() / 2**30,
        "worker_rss_gib": sorted(v / 2**30 for v in workers.values()),
        "kernel_s": times.get("visibility_pass", times.get("kernel", 0.0)), "compute_s": times.get("compute", 0.0), "write_s": times.get("write", 0.0),
    }


def main(argv=None) -> int:
    from wtilde_dask.cluster import cluster_client
    from wtilde_dask.dataset import sma_dataset_path
    from wtilde_dask.io import load_dataset

    parser = argparse.ArgumentParser(prog="python -m wtilde_dask.bench store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", type=int, nargs="+", default=[7500, 30000], help="approximate M values")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--method", choices=("auto", "direct", "lattice"), default="lattice")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    args = parser.parse_args(argv)

    dataset = load_dataset(sma_dataset_path())
    directory = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="wtilde-bench-store-"))
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"SMA visibilities (K = {dataset.n_visibilities}), stores in {directory}", flush=True)
    with cluster_client("local", n_workers=args.workers, log=lambda m: print(m, flush=True)) as client:
        for m in args.pixels:
            row = run_one(m, block_size=args.block_size, method=args.method, client=client, directory=directory,
                          dataset=dataset, keep=args.keep)
            rows.append(row)
            print(f"  M = {row['M']}: {row['blocks']} blocks in {row['block_phase_s']:.1f} s", flush=True)
    if not args.dir and not args.keep:
        shutil.rmtree(directory, ignore_errors=True)

    head = (f"{'M':>7} {'B':>5} {'blocks':>6} {'method':>7} {'dense GB':>8} {'stored GB':>9} {'blocks/s':>8} "
            f"{'store MB/s':>10} {'plain MB/s':>10} {'ratio':>6} {'client RSS':>10} {'worker RSS (GiB)':>18}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['M']:>7} {r['B']:>5} {r['blocks']:>6} {r['method']:>7} {r['dense_gb']:>8.2f} {r['disk_gb']:>9.2f} "
              f"{r['blocks_per_s']:>8.1f} {r['store_mb_s']:>10.0f} {r['plain_mb_s']:>10.0f} {r['write_ratio']:>6.2f} "
              f"{r['client_rss_gib']:>10.2f} {' '.join(f'{v:.2f}' for v in r['worker_rss_gib']):>18}")
    print()
    print("store MB/s: bytes on disk / wall time of the block phase (tasks compute + write, orchestrator, ledger);")
    print("plain MB/s: the same bytes written sequentially to one file in one-block pieces, same directory, same run.")
    print("RSS: peak resident memory (ru_maxrss) per process; the client process also runs the scheduler.")
    for r in rows:
        print(f"  M = {r['M']}: task totals kernel {r['kernel_s']:.2f} s, compute {r['compute_s']:.1f} s, "
              f"write {r['write_s']:.1f} s (summed over workers)")
    last = rows[-1]
    peak = max([last["client_rss_gib"], *last["worker_rss_gib"]])
    print(f"write_ratio={last['write_ratio']:.3f} peak_rss_max_gib={peak:.3f}")
    return 0
