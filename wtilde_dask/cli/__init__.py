"""The ``wtilde`` command: one argparse sub-command group per module in COMMAND_MODULES.

Each module defines ``register(subparsers)`` and sets ``func`` on its parsers; ``func(args)``
returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from wtilde_dask.errors import WTildeError

COMMAND_MODULES = [
    "wtilde_dask.cli.compute",
    "wtilde_dask.cli.bench",
    "wtilde_dask.cli.plot",
    "wtilde_dask.cli.lattice",
    "wtilde_dask.cli.io",
    "wtilde_dask.cli.invert",
    "wtilde_dask.cli.fit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wtilde",
        description="Precompute the interferometer W-tilde matrix on Dask, store it in Zarr, reuse it.",
    )
    from wtilde_dask import __version__

    parser.add_argument("--version", action="version", version=f"wtilde_dask {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (WTildeError, ValueError) as err:  # the package's errors name the field and the value
        print(f"wtilde {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
