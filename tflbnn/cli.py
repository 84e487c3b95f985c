"""The ``tflbnn`` command line: ``demo``, ``train``, ``search``, ``convert``, ``bench``, ``classify``,
``models``, ``app-model`` and ``app-golden``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tflbnn.commands import CommandError

__all__ = ["main", "build_parser"]

# Sub-command modules in tflbnn.commands, in the order `tflbnn --help` lists them.
_COMMANDS = ("demo", "train", "search", "convert", "bench", "classify", "models", "app-model",
             "app-golden")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="tflbnn",
        description="Train binary neural networks in Keras and ship them as LCE TFLite models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        importlib.import_module(f"tflbnn.commands.{command.replace('-', '_')}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, FileNotFoundError, ValueError) as error:
        print(f"tflbnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tflbnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
