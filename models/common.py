"""Pieces every zoo family shares: channel scaling, option checks, the ResNet stem, the head."""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import batch_norm

__all__ = ["scale_channels", "check_stride", "classifier_head", "resnet_stem"]


def scale_channels(channels: int, width: float, model_name: str) -> int:
    """Scale a published channel count by ``width``, to a multiple of 8 (at least 8).

    Args:
        channels: the channel count at width 1.0.
        width: the width multiplier.
        model_name: named in the error.

    Returns:
        The scaled channel count.

    Raises:
        ValueError: if ``width`` is not positive.
    """
    if width <= 0:
        raise ValueError(f"{model_name}: width must be positive, got {width}")
    # Multiples of 8 keep LCE's 8-output-channel kernels full (lce.md §2.3).
    return max(8, int(round(channels * width / 8)) * 8)


def check_stride(value: int, option: str, model_name: str) -> None:
    """Raise ``ValueError`` naming the model and option unless ``value`` is 1 or 2."""
    if value not in (1, 2):
        raise ValueError(f"{model_name}: {option} must be 1 or 2, got {value}")


def classifier_head(x: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Global average pooling (``pool``) and a float dense classifier (``logits``)."""
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.layers.Dense(num_classes, name="logits")(x)


def resnet_stem(inputs: tf.Tensor, filters: int, stem: str, *,
                kernel_initializer: str = "glorot_uniform") -> tf.Tensor:
    """The float ResNet stem without ReLU (papers.md §1.6): the first block's sign reads BN.

    Args:
        inputs: the image tensor.
        filters: output channels.
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, 3×3 stride-2 max-pool) or ``"small"``
            (3×3 stride-1 conv and BN, for 28×28 / 32×32 inputs).
        kernel_initializer: of the stem conv.

    Returns:
        The stem's output tensor.
    """
    kernel_size, strides = (7, 2) if stem == "imagenet" else (3, 1)
    x = tf.keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer=kernel_initializer, name="stem_conv",
    )(inputs)
    x = batch_norm("stem_bn")(x)
    if stem == "imagenet":
        x = tf.keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x
