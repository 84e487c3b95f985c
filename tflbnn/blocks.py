"""Functional ReActNet building blocks on ``larq.layers.QuantConv2D``.

Each function takes a Keras tensor and returns the block's output tensor, so models built from
them are plain functional ``tf.keras.Model`` graphs that ``larq.models.summary``, ``.keras``
serialization and the LCE converter all understand.
"""

from tflbnn import _backend  # noqa: F401

import contextlib
import logging

import larq as lq
import tensorflow as tf

from tflbnn.layers import LearnableBias, RPReLU, RSign

__all__ = ["quiet_weight_clip_warning", "reactnet_block", "react_bireal_block", "binary_conv", "batch_norm", "sign_or_shift", "PRECISIONS", "check_precision"]

# PyTorch BatchNorm2d defaults (momentum 0.1, eps 1e-5) expressed in Keras terms.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def batch_norm(name: str) -> tf.keras.layers.BatchNormalization:
    """BatchNormalization with the PyTorch defaults the papers trained with."""
    return tf.keras.layers.BatchNormalization(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )


class _DropStarvedWeightsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "starved weights" not in record.getMessage()


@contextlib.contextmanager
def quiet_weight_clip_warning():
    """Silence larq's "binary weight quantizer without kernel_constraint" warning inside."""
    # ReActNet deliberately trains binary kernels without a weight_clip constraint (weights past
    # |1| stop learning, the "dead weights" AdamBNN studies), so larq's warning about it is noise.
    larq_logger = logging.getLogger("larq.layers_base")
    warning_filter = _DropStarvedWeightsWarning()
    larq_logger.addFilter(warning_filter)
    try:
        yield
    finally:
        larq_logger.removeFilter(warning_filter)


def binary_conv(
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    binary_weights: bool = True,
    pad_values: float = 1.0,
    name: str,
) -> lq.layers.QuantConv2D:
    """A ``QuantConv2D`` meant to receive ±1 inputs from an ``RSign`` layer.

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        binary_weights: binarise the kernel with ``reactnet_weight_sign`` (step 2); ``False``
            keeps real-valued weights (step 1 of the two-step recipe).
        pad_values: value used for "same" padding of the ±1 input. ``1.0`` ("same-one")
            converts to ``LceBconv2d`` on every LCE target and allows op fusion; ``0.0``
            matches the PyTorch reference but LCE only supports it on ARM without fusions.
        name: layer name.

    Returns:
        The (unbuilt) layer.
    """
    with quiet_weight_clip_warning():
        return lq.layers.QuantConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            pad_values=pad_values,
            use_bias=False,
            input_quantizer=None,
            kernel_quantizer="reactnet_weight_sign" if binary_weights else None,
            name=name,
        )


#: Precisions of a ReActNet model, one per stage of the two-step recipe:
#: ``"float"`` the real-valued twin (teacher), ``"binary_activations"`` step 1 (RSign inputs,
#: real weights), ``"binary"`` step 2 (binary inputs and weights). All share one weight layout.
PRECISIONS = ("float", "binary_activations", "binary")


def check_precision(precision: str, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ValueError(f"{owner}: precision must be one of {PRECISIONS}, got {precision!r}")


def sign_or_shift(precision: str, name: str) -> tf.keras.layers.Layer:
    """``RSign`` for binary activations, else the same learnable shift without the sign.

    The float twin keeps the shift so that all precisions of a model share one weight layout.
    """
    return LearnableBias(name=name) if precision == "float" else RSign(name=name)


def _check_channels(in_channels: int, out_channels: int, allowed: tuple, block_name: str) -> None:
    if out_channels not in allowed:
        raise ValueError(
            f"{block_name}: out_channels must be one of {sorted(set(allowed))} for an input with "
            f"{in_channels} channels, got {out_channels}"
        )


def reactnet_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    pad_values: float = 1.0,
    name: str,
) -> tf.Tensor:
    """The ReActNet-A basic block (papers.md §1.1), normal or reduction form.

    ``RSign → binary 3×3 (C→C, stride) → BN → + shortcut → RPReLU`` then
    ``RSign → binary 1×1 → BN → + identity → RPReLU``. The shortcut of the 3×3 part is the input,
    or a 2×2 average pool when strided. In the reduction form (``out_channels == 2·C``) the 1×1
    conv is duplicated, each copy adds the same activation as its shortcut, and the two halves
    are concatenated.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: ``C`` (normal block) or ``2·C`` (reduction block).
        stride: 1 or 2.
        precision: one of ``PRECISIONS``. The float twin has a learnable shift instead of the
            sign, zero padding and real-valued kernels.
        pad_values: padding value of the binary 3×3 conv, see ``binary_conv``.
        name: prefix for the layer names.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unsupported channel ratio or stride.
    """
    in_channels = int(x.shape[-1])
    _check_channels(in_channels, out_channels, (in_channels, 2 * in_channels), name)
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")

    check_precision(precision, name)
    binary_weights = precision == "binary"
    if precision == "float":
        pad_values = 0.0
    y = sign_or_shift(precision, f"{name}_rsign_3x3")(x)
    y = binary_conv(
        in_channels, 3, strides=stride, binary_weights=binary_weights,
        pad_values=pad_values, name=f"{name}_bconv_3x3",
    )(y)
    y = batch_norm(f"{name}_bn_3x3")(y)
    shortcut = x
    if stride == 2:
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(x)
    y = tf.keras.layers.Add(name=f"{name}_add_3x3")([shortcut, y])
    y = RPReLU(name=f"{name}_rprelu_3x3")(y)

    z = sign_or_shift(precision, f"{name}_rsign_1x1")(y)
    copies = out_channels // in_channels
    branches = []
    for copy in range(copies):
        suffix = "" if copies == 1 else f"_{copy + 1}"
        branch = binary_conv(
            in_channels, 1, binary_weights=binary_weights, pad_values=pad_values,
            name=f"{name}_bconv_1x1{suffix}",
        )(z)
        branch = batch_norm(f"{name}_bn_1x1{suffix}")(branch)
        branches.append(tf.keras.layers.Add(name=f"{name}_add_1x1{suffix}")([y, branch]))
    out = branches[0]
    if copies > 1:
        out = tf.keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return RPReLU(name=f"{name}_rprelu_1x1")(out)


def react_bireal_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    pad_values: float = 1.0,
    name: str,
) -> tf.Tensor:
    """The single-conv block of ReAct-BiReal-18 (papers.md §1.6).

    ``RSign → binary 3×3 (stride) → BN → + shortcut → RPReLU``. When the shape changes the
    shortcut is ``AvgPool 2×2 (stride) → real 1×1 conv → BN``.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: output channels.
        stride: 1 or 2.
        precision: one of ``PRECISIONS``. The float twin has a learnable shift instead of the
            sign, zero padding and real-valued kernels.
        pad_values: padding value of the binary 3×3 conv, see ``binary_conv``.
        name: prefix for the layer names.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unsupported stride.
    """
    in_channels = int(x.shape[-1])
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")

    check_precision(precision, name)
    binary_weights = precision == "binary"
    if precision == "float":
        pad_values = 0.0
    y = sign_or_shift(precision, f"{name}_rsign")(x)
    y = binary_conv(
        out_channels, 3, strides=stride, binary_weights=binary_weights,
        pad_values=pad_values, name=f"{name}_bconv_3x3",
    )(y)
    y = batch_norm(f"{name}_bn")(y)
    shortcut = x
    if stride == 2:
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(shortcut)
    if in_channels != out_channels:
        shortcut = tf.keras.layers.Conv2D(
            out_channels, 1, use_bias=False, name=f"{name}_downsample_conv"
        )(shortcut)
        shortcut = batch_norm(f"{name}_downsample_bn")(shortcut)
    y = tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return RPReLU(name=f"{name}_rprelu")(y)

