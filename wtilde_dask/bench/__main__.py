"""``python -m wtilde_dask.bench NAME [options]`` (NAME: one of ``wtilde_dask.bench.BENCHMARKS``, e.g. fit)."""

import sys

from wtilde_dask.bench import BENCHMARKS, run_benchmark

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m wtilde_dask.bench {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_benchmark(sys.argv[1], sys.argv[2:]))
