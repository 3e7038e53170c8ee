#!/usr/bin/env python
"""Cost of finishing a W-tilde store on N workers, from the block time measured in the store itself.

    python deployments/slurm/estimate_cost.py STORE.zarr --jobs 16 --processes 32 --threads 4

wall time  = blocks to go x mean block time / worker processes   (+ queueing, start-up)
core-hours = blocks to go x mean block time x threads per process / 3600

The mean block time comes from the store's ledger (`wtilde status --json`): run the real command for
a few minutes on the real nodes (it resumes later), then estimate. The block time depends on the
node type and the threads per process it was measured with: measure with the profile you will use.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--jobs", type=int, default=1, help="worker jobs (default 1)")
    p.add_argument("--processes", type=int, default=1, help="worker processes per job (profile 'processes')")
    p.add_argument("--threads", type=int, default=1, help="threads per worker process (cores / processes)")
    p.add_argument("--block-seconds", type=float, help="use this block time instead of the measured one")
    p.add_argument("--pixels", type=int, metavar="M",
                   help="estimate a larger problem of M pixels with the store's block size and visibilities "
                        "(a pilot run on a small mask measures the block time)")
    args = p.parse_args(argv)

    out = subprocess.run(["wtilde", "status", "--json", args.store], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr or out.stdout, file=sys.stderr)
        return out.returncode
    status = json.loads(out.stdout)
    block_s = args.block_seconds or status.get("mean_block_s")
    if not block_s:
        print(f"{args.store}: no block finished yet: run it for a few minutes first, or give --block-seconds",
              file=sys.stderr)
        return 1
    workers = args.jobs * args.processes
    n_blocks, todo = int(status["n_blocks"]), int(status["n_blocks"]) - int(status["done"])
    print(f"store {args.store}: {status['done']}/{n_blocks} blocks done, {todo} to go; "
          f"mean block time {block_s:.3g} s (measured with {status.get('worker_threads')} thread(s) in all)")
    cases = [("to finish this store", todo), ("this store from scratch", n_blocks)]
    if args.pixels:
        nb = -(-args.pixels // int(status["block_size"]))
        cases.append((f"M = {args.pixels} pixels, B = {status['block_size']} ({nb}x{nb} grid)", nb * (nb + 1) // 2))
    print(f"on {args.jobs} job(s) x {args.processes} process(es) x {args.threads} thread(s):")
    for what, blocks in cases:
        wall_h = blocks * block_s / workers / 3600
        core_h = blocks * block_s * args.threads / 3600
        print(f"  {what}: {blocks} blocks, wall time ~ {wall_h:.3g} h (+ queueing), {core_h:.4g} core-hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
