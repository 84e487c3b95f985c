"""Sub-commands of the ``tflbnn`` command line, one module each.

Every module exposes ``add_parser(subparsers)``, which registers its sub-command and sets
``func`` to a callable ``(args) -> int`` returning the process exit code.
"""


class CommandError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits with 2."""
