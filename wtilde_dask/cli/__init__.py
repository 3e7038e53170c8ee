"""The ``wtilde`` command: one argparse sub-command group per module in COMMAND_MODULES.

Each module defines ``register(subparsers)`` and sets ``func`` on its parsers; ``func(args)``
returns the process exit code. Below the command the package reports progress through :mod:`logging` (loggers
under ``wtilde_dask``); :func:`main` shows the progress messages on standard output, one line each.
"""

from __future__ import annotations

import argparse
import logging
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


class _StdoutHandler(logging.StreamHandler):
    """Writes each record's message to the *current* ``sys.stdout`` (which a caller may have replaced)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


#: loggers whose messages are the command's progress report (the run's steps, links, checks), shown on stdout
PROGRESS_LOGGERS = ("wtilde_dask.compute", "wtilde_dask.verify", "wtilde_dask.ingest", "wtilde_dask.cluster",
                    "wtilde_dask.slurm", "wtilde_dask.simulate", "wtilde_dask.io.export", "wtilde_dask.pyautoarray", "wtilde_dask.cli")


def configure_logging(level: int = logging.INFO) -> None:
    """Show the progress messages of :data:`PROGRESS_LOGGERS` (``level`` and above) on standard output as plain
    lines, as the command prints its own; idempotent. (``wtilde fit`` sends its sampler's log to stderr itself.)"""
    for name in PROGRESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
            handler = _StdoutHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


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
    configure_logging()
    try:
        return int(args.func(args) or 0)
    except (WTildeError, ValueError) as err:  # the package's errors name the field and the value
        print(f"wtilde {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
