"""Convert a Keras model to an LCE flatbuffer and to its float32 TFLite twin.

Both converters run on a copy of the model whose inputs have batch size 1. LCE forces batch 1
anyway (``SetBatchSizePass``), but only after its pattern passes: with a dynamic batch, a sign
written as ``tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))`` lowers to ``FILL(SHAPE(x))``
operands, which are not the constant ±1 that the ``LceQuantize`` pattern needs, so every binary
conv silently stays a float ``CONV_2D``. With a static batch the fills fold into constants and
the pattern matches (checked on LCE 0.16.0 with ``tflbnn.quantizers.binary_sign``, and with
``tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))``, the quantizer of LCE's own tests).

The copy is made from the layers' configs, except that the quantizers are passed on as they are
(shared with the original): a plain function does not survive a config round trip (larq
serialises it as its name, which nothing deserialises), nor does an unregistered quantizer
class, and a model that could not be copied would be converted with its dynamic batch and lose
exactly those binary convolutions.
"""

from __future__ import annotations

import time
from typing import Any

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import quiet_weight_clip_warning

__all__ = ["LCE_OPTION_NAMES", "convert_lce", "convert_float", "with_batch_size_one"]

#: Layer arguments that may hold a quantizer (larq's quantized layers).
_QUANTIZER_ARGUMENTS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer",
                        "pointwise_quantizer")

#: Keyword options of ``larq_compute_engine.convert_keras_model`` (LCE 0.16.0).
LCE_OPTION_NAMES = ("inference_input_type", "inference_output_type", "target",
                    "experimental_default_int8_range")


def _clone_layer(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
    """``clone_model``'s default copy (from the config), with the layer's own quantizers."""
    config = layer.get_config()
    for argument in _QUANTIZER_ARGUMENTS:
        quantizer = getattr(layer, argument, None)
        if argument in config and callable(quantizer):
            config[argument] = quantizer
    return type(layer).from_config(config)


def with_batch_size_one(model: tf.keras.Model) -> tuple[tf.keras.Model, bool]:
    """A copy of a functional or Sequential model whose inputs have batch size 1.

    Args:
        model: a built Keras model.

    Returns:
        ``(model_for_conversion, cloned)``. ``cloned`` is False when the model already has a
        batch of 1 everywhere or cannot be cloned (subclassed models); the original is then
        returned unchanged.
    """
    inputs = model.inputs or []
    if not inputs or all(tensor.shape[0] == 1 for tensor in inputs):
        return model, False
    try:
        names = list(getattr(model, "input_names", None) or [None] * len(inputs))
        new_inputs = [tf.keras.Input(shape=tensor.shape[1:], batch_size=1, dtype=tensor.dtype,
                                     name=name)
                      for tensor, name in zip(inputs, names)]
        with quiet_weight_clip_warning():
            clone = tf.keras.models.clone_model(
                model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0],
                clone_function=_clone_layer)
        clone.set_weights(model.get_weights())
    except (ValueError, TypeError, NotImplementedError, AttributeError):
        # Subclassed or otherwise unclonable models: convert as they are; the coverage check
        # reports any binary conv that failed to convert because of it.
        return model, False
    return clone, True


def _check_model(model: Any, owner: str) -> None:
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"{owner}: expected a tf.keras.Model, got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"{owner}: model {model.name!r} is not built")


def convert_lce(model: tf.keras.Model, **options: Any) -> bytes:
    """Convert a Keras model to a Larq Compute Engine TFLite flatbuffer.

    Args:
        model: a built Keras model (Keras 2 / tf-keras).
        **options: passed to ``larq_compute_engine.convert_keras_model``; one of
            ``LCE_OPTION_NAMES`` (e.g. ``target="arm"``).

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: for an unknown option, an unbuilt model, or an option LCE rejects.
    """
    import larq_compute_engine as lce

    _check_model(model, "convert_lce")
    unknown = sorted(set(options) - set(LCE_OPTION_NAMES))
    if unknown:
        raise ValueError(f"convert_lce: unknown option(s) {unknown}; valid: "
                         f"{list(LCE_OPTION_NAMES)}")
    model_to_convert, _ = with_batch_size_one(model)
    return lce.convert_keras_model(model_to_convert, **options)


def convert_float(model: tf.keras.Model) -> bytes:
    """Convert a Keras model to a plain float32 TFLite flatbuffer (the "float twin").

    Binary layers run as float ops (their ±1/±alpha values are computed in float32), which
    gives the size and latency the same network would have without LCE.

    Args:
        model: a built Keras model.

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: for an unbuilt model.
    """
    _check_model(model, "convert_float")
    model_to_convert, _ = with_batch_size_one(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model_to_convert)
    return converter.convert()


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    """Call ``function`` and return ``(result, seconds)``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start
