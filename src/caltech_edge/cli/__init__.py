"""The ``caltech-edge`` command: a thin argparse layer over the API, no logic of its own.

Each stage contributes a module with ``register(subparsers)``; handlers import their
heavy dependencies only when they run, so ``caltech-edge --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import CaltechEdgeError

COMMAND_MODULES = (
    "data",
    "train",
    "export",
    "compress",
    "runtime",
    "package",
    "quickstart",
    "benchmark",
    "toolchain",
    "tune",
    "deploy",
    "cloud",
    "retrain",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caltech-edge",
        description="Train, compress, export and deploy image classifiers to edge cameras.",
    )
    parser.add_argument("--version", action="version", version=f"caltech-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, modules: Sequence[str] = COMMAND_MODULES) -> int:
    """Run the CLI; ``modules`` limits the commands (device bundles: only ``runtime``)."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CaltechEdgeError as exc:
        print(f"caltech-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
