"""``wtilde bench NAME ...``: the same benchmarks as ``python -m wtilde_dask.bench NAME``."""

import argparse

from wtilde_dask.bench import BENCHMARKS, run_benchmark


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks that print tables of measured ratios",
        description="Run a benchmark; everything after NAME goes to it (try `wtilde bench direct --help`).",
    )
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=lambda args: run_benchmark(args.name, args.bench_args))
