"""Benchmarks: commands that print tables of ratios measured in one run (never asserted in tests)."""

from importlib import import_module

BENCHMARKS = ("direct", "lattice", "inversion", "store", "ingest", "likelihood", "continuity", "fit")


def run_benchmark(name: str, argv: list[str]) -> int:
    """Run ``wtilde_dask.bench.<name>.main(argv)``."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark name: unknown {name!r}, expected one of {', '.join(BENCHMARKS)}")
    return int(import_module(f"wtilde_dask.bench.{name}").main(argv) or 0)
