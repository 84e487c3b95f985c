"""Typed checks of config values, shared by the ``tflbnn train`` and ``tflbnn search`` configs.

A config section is checked against a registry ``{key: FieldCheck}``; every check raises a
``ValueError`` that names the file, the section and the key, states what is expected and shows
the value given, e.g. ``runs.toml: [recipe] learning_rate must be a number > 0, got 'x'``.
TOML has no null, so ``None`` only ever comes from a default (``optional``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

__all__ = ["FieldCheck", "integer", "number", "boolean", "text", "one_of", "optional", "table",
           "check_fields"]

#: ``check(value, where)``: raises ``ValueError`` naming ``where`` when ``value`` does not fit.
FieldCheck = Callable[[Any, str], None]


def _fail(where: str, expected: str, value: Any) -> None:
    raise ValueError(f"{where} must be {expected}, got {value!r}")


def integer(minimum: int | None = None) -> FieldCheck:
    """An integer (not a bool, not a float), ``>= minimum`` when one is given."""
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"

    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) \
                or (minimum is not None and value < minimum):
            _fail(where, expected, value)

    return check


def number(*, above: float | None = None, at_least: float | None = None,
           below: float | None = None, at_most: float | None = None) -> FieldCheck:
    """A finite int or float (not a bool) within the given bounds."""
    expected = _describe_range(above, at_least, below, at_most)

    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) \
                or (above is not None and not value > above) \
                or (at_least is not None and not value >= at_least) \
                or (below is not None and not value < below) \
                or (at_most is not None and not value <= at_most):
            _fail(where, expected, value)

    return check


def _describe_range(above, at_least, below, at_most) -> str:
    low = f"({above}" if above is not None else f"[{at_least}" if at_least is not None else None
    high = f"{below})" if below is not None else f"{at_most}]" if at_most is not None else None
    if low and high:
        return f"a number in {low}, {high}"
    if above == 0 and not high:
        return "a positive number"
    bounds = [f"{sign} {bound}" for sign, bound in
              ((">", above), (">=", at_least), ("<", below), ("<=", at_most)) if bound is not None]
    return " ".join(["a number", *bounds])


def boolean(value: Any, where: str) -> None:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        _fail(where, "true or false", value)


def text(value: Any, where: str) -> None:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        _fail(where, "a non-empty string", value)


def one_of(choices: Iterable[Any]) -> FieldCheck:
    """One of ``choices``, of the same type (``true`` is not the choice ``1``)."""
    choices = tuple(choices)

    def check(value: Any, where: str) -> None:
        if not any(value == choice and type(value) is type(choice) for choice in choices):
            _fail(where, f"one of {choices}", value)

    return check


def optional(inner: FieldCheck) -> FieldCheck:
    """``None`` (the default left in place) or a value ``inner`` accepts."""

    def check(value: Any, where: str) -> None:
        if value is not None:
            inner(value, where)

    return check


def table(value: Any, where: str) -> dict:
    """A TOML table (a mapping); returns a copy as a ``dict``.

    Raises:
        ValueError: naming ``where`` for anything else (a list, a string, a number).
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table of keys and values, got "
                         f"{type(value).__name__} {value!r}")
    return dict(value)


def check_fields(values: Mapping[str, Any], fields: Mapping[str, FieldCheck],
                 where: str) -> None:
    """Check every value in ``values`` that ``fields`` has a check for.

    Args:
        values: the section's keys and values.
        fields: key -> check; keys without a check are not looked at here.
        where: the file and section, e.g. ``"run.toml: [recipe]"``; the key is appended.

    Raises:
        ValueError: for the first value that does not fit, naming ``where`` and the key.
    """
    for key, value in values.items():
        if key in fields:
            fields[key](value, f"{where} {key}")
