"""The model registry: ``list_models()`` and ``get_model(name, ...)``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

__all__ = ["register_model", "list_models", "get_model"]

ModelBuilder = Callable[..., tf.keras.Model]
_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a builder ``fn(*, input_shape, num_classes, **options)`` by name."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
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
            or option values the architecture cannot take.
    """
    builder = _builder(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listing = ", ".join(f"{key}={value!r}" for key, value in valid.items())
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: {listing}")
    input_shape = tuple(int(dim) for dim in input_shape)
    if len(input_shape) != 3 or min(input_shape) <= 0:
        raise ValueError(f"{name}: input_shape must be (height, width, channels) with positive "
                         f"sizes, got {input_shape}")
    if int(num_classes) < 2:
        raise ValueError(f"{name}: num_classes must be at least 2, got {num_classes}")
    return builder(input_shape=input_shape, num_classes=int(num_classes), **options)
