"""The model registry: ``list_models()`` and ``get_model(name, ...)``.

``get_model`` validates every argument before a builder runs, so the CLI and Python callers
get the same messages: options must have the type their builder's signature declares (ints
for ``int``, finite numbers for ``float``, ...), and sizes are bounded so that a typo such as
``width=1e308`` is refused instead of building a model that cannot fit in memory:

* ``input_shape``: height and width in [1, ``MAX_INPUT_SIDE``], channels in
  [1, ``MAX_INPUT_CHANNELS``];
* ``num_classes``: in [2, ``MAX_NUM_CLASSES``];
* ``width``: in (0, ``MAX_WIDTH``];
* ``pad_values``: 0.0 or 1.0, the padding values LCE's binary convolution converts.

Architecture-specific values (strides, stems, bit widths) are checked by the builders, whose
messages name the model and the option.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import types
import typing
from typing import Any, Callable

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

__all__ = ["MAX_INPUT_CHANNELS", "MAX_INPUT_SIDE", "MAX_NUM_CLASSES", "MAX_WIDTH",
           "register_model", "list_models", "model_options", "get_model"]

#: Largest input height or width (pixels).
MAX_INPUT_SIDE = 4096
#: Most input channels (1 grey, 3 RGB, 4 with alpha or depth).
MAX_INPUT_CHANNELS = 4
#: Most classes (ImageNet-21k has 21841); the float head holds ``features × classes`` weights.
MAX_NUM_CLASSES = 100_000
#: Largest width multiplier; channels and weights grow with its square (4.0: 16× the model).
MAX_WIDTH = 4.0

ModelBuilder = Callable[..., tf.keras.Model]
_BUILDERS: dict[str, ModelBuilder] = {}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value)


# What each annotated option type accepts, and how a message describes it. bool is not an
# int here: True for a stride or bit width is a mistake, not 1.
_TYPE_CHECKS: dict[type, tuple[Callable[[Any], bool], str]] = {
    int: (_is_int, "an integer"),
    float: (_is_finite_number, "a finite number"),
    bool: (lambda value: isinstance(value, bool), "true or false"),
    str: (lambda value: isinstance(value, str), "a string"),
    type(None): (lambda value: value is None, "none"),
}

# Ranges of options shared by many families: (test, description).
_OPTION_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "width": (lambda value: 0 < value <= MAX_WIDTH, f"in (0, {MAX_WIDTH}]"),
    # LceBconv2d pads with 0 or 1 only (lce.md §2.1); other values would not convert.
    "pad_values": (lambda value: value in (0.0, 1.0),
                   "0.0 or 1.0 (the padding values LCE's binary convolution supports)"),
}


def _type_check(hint: Any) -> tuple[Callable[[Any], bool], str]:
    """(accepts, description) for a builder's option annotation."""
    if hint in _TYPE_CHECKS:
        return _TYPE_CHECKS[hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        checks = [_type_check(member) for member in typing.get_args(hint)]
        return (lambda value: any(accepts(value) for accepts, _ in checks),
                " or ".join(description for _, description in checks))
    if origin is collections.abc.Sequence:
        item_accepts, item_description = _type_check(typing.get_args(hint)[0])
        return (lambda value: isinstance(value, (list, tuple))
                and all(item_accepts(item) for item in value),
                f"a list of {item_description.removeprefix('a ').removeprefix('an ')}s")
    raise TypeError(f"model option type {hint!r} has no check in the registry")


def _option_checks(builder: ModelBuilder) -> dict[str, tuple[Callable[[Any], bool], str]]:
    hints = typing.get_type_hints(builder)
    return {
        parameter.name: _type_check(hints[parameter.name])
        for parameter in inspect.signature(builder).parameters.values()
        if parameter.name not in ("input_shape", "num_classes")
    }


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a builder ``fn(*, input_shape, num_classes, **options)`` by name."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
        _option_checks(builder)  # every option's annotation must be checkable
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_BUILDERS)


def model_options(name: str) -> dict[str, Any]:
    """The options a model accepts besides ``input_shape`` and ``num_classes``, with defaults.

    Raises:
        ValueError: for an unknown model name.
    """
    builder = _builder(name)
    return {
        parameter.name: parameter.default
        for parameter in inspect.signature(builder).parameters.values()
        if parameter.name not in ("input_shape", "num_classes")
    }


def _builder(name: str) -> ModelBuilder:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}"
        ) from None


def get_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    **options: Any,
) -> tf.keras.Model:
    """Build a zoo model, uncompiled.

    Args:
        name: a name from ``list_models()``.
        input_shape: ``(height, width, channels)`` without the batch axis.
        num_classes: number of output logits.
        **options: model-specific options (see ``model_options(name)``).

    Returns:
        An uncompiled functional ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for an unknown name, an unknown option (the message lists the valid ones),
            an option of the wrong type or out of range, an input shape or class count out
            of the limits in the module docstring, or option values the architecture cannot
            take. Messages name the model, the option and the value.
    """
    builder = _builder(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listing = ", ".join(f"{key}={value!r}" for key, value in valid.items())
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: {listing}")
    _check_options(name, builder, options)
    input_shape = _checked_input_shape(name, input_shape)
    if not _is_int(num_classes) or not 2 <= num_classes <= MAX_NUM_CLASSES:
        raise ValueError(f"{name}: num_classes must be an integer in [2, {MAX_NUM_CLASSES:,}], "
                         f"got {num_classes!r}")
    return builder(input_shape=input_shape, num_classes=int(num_classes), **options)


def _check_options(name: str, builder: ModelBuilder, options: dict[str, Any]) -> None:
    checks = _option_checks(builder)
    for key, value in options.items():
        accepts, description = checks[key]
        if not accepts(value):
            raise ValueError(f"{name}: {key} must be {description}, got {value!r}")
        if key in _OPTION_RANGES:
            in_range, allowed = _OPTION_RANGES[key]
            if not in_range(value):
                raise ValueError(f"{name}: {key} must be {allowed}, got {value!r}")


def _checked_input_shape(name: str, input_shape: Any) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    valid = shape is not None and len(shape) == 3 and all(_is_int(dim) for dim in shape) \
        and all(1 <= dim <= MAX_INPUT_SIDE for dim in shape[:2]) \
        and 1 <= shape[2] <= MAX_INPUT_CHANNELS
    if not valid:
        raise ValueError(f"{name}: input_shape must be (height, width, channels) with height "
                         f"and width in [1, {MAX_INPUT_SIDE}] and channels in "
                         f"[1, {MAX_INPUT_CHANNELS}], got {input_shape!r}")
    return tuple(int(dim) for dim in shape)
