"""The ``tflbnn`` command line: ``demo``, ``train``, ``search``, ``convert``, ``bench``, ``classify``,
``models``, ``app-model`` and ``app-golden``.

Errors: a bad input is reported as ``tflbnn <command>: error: <message>`` on stderr with exit code
2 and no traceback; argparse reports bad options the same way (usage, exit 2). The user's errors
are ``CommandError``, ``ValueError`` (which includes ``UnicodeDecodeError``, ``json`` and
``tomllib`` decode errors) and ``FileNotFoundError``, plus the few other exception types that can
only come from the user's files and paths (``USER_ERROR_MESSAGES``). Anything else is a bug in
tflbnn and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

from tflbnn.commands import CommandError

__all__ = ["main", "build_parser", "user_error_message", "USER_ERROR_MESSAGES"]

# Sub-command modules in tflbnn.commands, in the order `tflbnn --help` lists them.
_COMMANDS = ("demo", "train", "search", "convert", "bench", "classify", "models", "app-model",
             "app-golden")


def _os_error(error: OSError) -> str | None:
    # An OSError that names a path (a folder where a file is expected, a file under a file, no
    # permission, a full disk) is about the user's paths; one without a path may be a bug.
    if error.filename is None:
        return None
    paths = " -> ".join(os.fsdecode(name) for name in (error.filename, error.filename2)
                        if name is not None)
    reason = error.strerror or str(error)
    return f"{paths}: {reason[:1].lower()}{reason[1:]}"


def _image_too_large(error: Exception) -> str:
    return f"image too large to decode safely (decompression bomb?): {error}"


def _pil_errors() -> dict[type, Callable[[Exception], str | None]]:
    try:
        from PIL import Image
    except ImportError:  # pillow is a dependency; without it no PIL error can arise either
        return {}
    return {Image.DecompressionBombError: _image_too_large,
            Image.UnidentifiedImageError: str}


#: Exception type -> message for the user's errors that arrive as other types than
#: CommandError/ValueError/FileNotFoundError; a formatter returning None means "not the
#: user's error after all" (the traceback is kept). Checked in order, first match wins.
USER_ERROR_MESSAGES: dict[type, Callable[[Exception], str | None]] = {
    CommandError: str,
    FileNotFoundError: str,
    ValueError: str,
    **_pil_errors(),
    OSError: _os_error,
}


def user_error_message(error: BaseException) -> str | None:
    """The message to print for an error the user can fix, or ``None`` for a bug.

    Args:
        error: an exception raised by a sub-command.

    Returns:
        The text after ``tflbnn <command>: error:``, or ``None`` when ``error`` is not one of
        ``USER_ERROR_MESSAGES`` (a bug: let it raise with its traceback).
    """
    for kind, message in USER_ERROR_MESSAGES.items():
        if isinstance(error, kind):
            return message(error)
    return None


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
    """Run the command line and return its exit code.

    Args:
        argv: the arguments after ``tflbnn`` (default: ``sys.argv[1:]``).

    Returns:
        The sub-command's exit code; 2 for a bad input (message on stderr), 130 when
        interrupted.

    Raises:
        SystemExit: from argparse, for ``--help`` (0) and bad options (2, usage on stderr).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"tflbnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  (re-raised below unless it is the user's)
        message = user_error_message(error)
        if message is None:
            raise
        print(f"tflbnn {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
