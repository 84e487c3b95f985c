"""Bi-Real Net 18 and 34 (papers.md §5): one binary 3×3 conv per block, each with a shortcut.

A Bi-Real block is ``ApproxSign → binary 3×3 conv (magnitude-aware weights) → BN → + shortcut``
with no activation after the addition: the real-valued sum is what the next block binarises, so
every binary convolution is wrapped by a real-valued identity path. When a block halves the
resolution and doubles the channels, the shortcut is ``AvgPool 2×2 s2 → float 1×1 conv → BN``.
Bi-Real-18 stacks ``[4, 4, 4, 4]`` blocks over 64/128/256/512 channels, Bi-Real-34
``[6, 8, 12, 6]``, after the float ResNet stem (7×7 s2 conv, BN, 3×3 s2 max-pool, no ReLU) and
before a global average pool and a float classifier.

Where the paper is silent the layers follow larq-zoo's ``BiRealNet`` (papers.md §9): larq's
``"approx_sign"`` input quantizer, ``"magnitude_aware_sign"`` kernel quantizer (``α·sign(W)``
with ``α = mean|W|`` per output channel, gradient scaled by ``α``) with the ``"weight_clip"``
constraint, Glorot-normal initialisation of every convolution, no biases before a BN, a
classifier with a bias. With 224×224×3 inputs and 1000 classes ``birealnet18`` therefore has
larq-zoo's 11,699,112 weights (BN moving statistics included). Two deliberate differences to
larq-zoo, neither of which changes a weight shape: BN uses the PyTorch defaults of the Bi-Real
code (``tflbnn.blocks.batch_norm``; larq-zoo has momentum 0.8 and Keras' epsilon), and the model
outputs logits instead of softmax probabilities, like the rest of the zoo.

Padding. The PyTorch and Caffe Bi-Real code pads the binarised input of each 3×3 conv with zeros,
a third value besides ±1. LCE converts such "same-zero" binary convolutions only for the ARM
target and without op fusion (lce.md §2.2, §2.3), so the binary convs here pad with +1
(``padding="same", pad_values=1.0``, "same-one"), which converts on every target and lets the
converter fuse the BN. Border outputs therefore differ from the reference code's (each padded
tap adds its weight instead of nothing); a network trained with +1 padding is consistent with
itself, and ``pad_values=0.0`` gives the reference behaviour for Keras-only experiments. Keras'
"same" padding of a stride-2 conv on an even input pads only the bottom and right (PyTorch's
``padding=1`` pads all sides), and larq-zoo makes the same choice.

Precisions (``tflbnn.blocks.PRECISIONS``), all with identical weights so ``transfer_weights`` and
the two-step recipe move weights between them: ``"binary"`` has binary inputs and weights,
``"binary_activations"`` binary inputs and real weights (step 1), and ``"float"`` is the float
twin (teacher) without quantizers. Without the sign a Bi-Real body would be purely linear (conv,
BN and additions), so the float twin applies the activation Bi-Real pre-trains its real-valued
network with before binarising, ``clip(x, -1, 1)`` (papers.md §5), where the sign was, and pads
with zeros.
"""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.blocks import batch_norm, check_precision
from tflbnn.models.lowbit_resnet import STEMS, check_choice
from tflbnn.models.common import classifier_head, resnet_stem, scale_channels
from tflbnn.models.registry import register_model

__all__ = ["BIREAL_LAYOUTS", "BIREAL_STAGE_CHANNELS", "PAD_VALUES", "bireal_block", "birealnet18",
           "birealnet34"]

#: Blocks per stage of Bi-Real-18 and Bi-Real-34 (papers.md §5).
BIREAL_LAYOUTS = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6)}

#: Channels of the four stages at width 1.0.
BIREAL_STAGE_CHANNELS = (64, 128, 256, 512)

#: Padding values LCE can convert (lce.md §2.1: ``LceBconv2d`` takes ``pad_values`` 0 or 1).
PAD_VALUES = (0.0, 1.0)

# larq-zoo's BiRealNet initialises every convolution this way; the paper does not say.
_CONV_INITIALIZER = "glorot_normal"


def _check_pad_values(pad_values: float, owner: str) -> None:
    if pad_values not in PAD_VALUES:
        raise ValueError(f"{owner}: pad_values must be one of {PAD_VALUES} (the values LCE's "
                         f"binary convolution supports), got {pad_values!r}")


def _clip_activation(x: tf.Tensor, name: str) -> tf.Tensor:
    # clip(x, -1, 1) = ReLU(x + 1, max 2) - 1, from built-in layers: a custom layer here would
    # make saved float twins unloadable without the zoo (the converters never import it).
    x = tf.keras.layers.Rescaling(1.0, offset=1.0, name=f"{name}_clip_shift")(x)
    x = tf.keras.layers.ReLU(max_value=2.0, name=f"{name}_clip")(x)
    return tf.keras.layers.Rescaling(1.0, offset=-1.0, name=f"{name}_clip_unshift")(x)


def bireal_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    pad_values: float = 1.0,
    name: str,
) -> tf.Tensor:
    """One Bi-Real block: ``ApproxSign → binary 3×3 conv → BN → + shortcut`` (papers.md §5).

    The shortcut is the input, passed through ``AvgPool 2×2 (stride 2)`` when ``stride == 2``
    and through a float 1×1 conv and BN when the channel count changes.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: output channels of the block.
        stride: 1 or 2.
        precision: one of ``tflbnn.blocks.PRECISIONS``: ``"binary"`` (ApproxSign inputs,
            magnitude-aware binary weights clipped to [-1, 1]), ``"binary_activations"``
            (ApproxSign inputs, real weights) or ``"float"`` (``clip(x, -1, 1)`` instead of the
            sign, real weights, zero padding).
        pad_values: 1.0 ("same-one", converts on every LCE target) or 0.0 (the reference
            code's zero padding); the float twin always pads with zeros.
        name: prefix of the layer names; the binary conv is ``{name}_bconv_3x3``.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unknown precision, a stride other than 1 or 2, or ``pad_values``
            other than 0 or 1.
    """
    check_precision(precision, name)
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")
    _check_pad_values(pad_values, name)
    in_channels = int(x.shape[-1])
    binary_weights = precision == "binary"

    y = x
    if precision == "float":
        y = _clip_activation(y, name)
        pad_values = 0.0
    y = lq.layers.QuantConv2D(
        out_channels,
        3,
        strides=stride,
        padding="same",
        pad_values=pad_values,
        input_quantizer=None if precision == "float" else "approx_sign",
        kernel_quantizer="magnitude_aware_sign" if binary_weights else None,
        kernel_constraint="weight_clip" if binary_weights else None,
        kernel_initializer=_CONV_INITIALIZER,
        use_bias=False,
        name=f"{name}_bconv_3x3",
    )(y)
    y = batch_norm(f"{name}_bn")(y)

    shortcut = x
    if stride == 2:
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(shortcut)
    if in_channels != out_channels:
        shortcut = tf.keras.layers.Conv2D(
            out_channels, 1, use_bias=False, kernel_initializer=_CONV_INITIALIZER,
            name=f"{name}_downsample_conv",
        )(shortcut)
        shortcut = batch_norm(f"{name}_downsample_bn")(shortcut)
    return tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])


def _build_birealnet(
    depth: int,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    stem: str,
    precision: str,
    pad_values: float,
) -> tf.keras.Model:
    name = f"birealnet{depth}"
    check_precision(precision, name)
    check_choice(stem, STEMS, "stem", name)
    _check_pad_values(pad_values, name)
    channels = [scale_channels(c, width, name) for c in BIREAL_STAGE_CHANNELS]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = resnet_stem(inputs, channels[0], stem, kernel_initializer=_CONV_INITIALIZER)
    for stage, (out_channels, blocks) in enumerate(zip(channels, BIREAL_LAYOUTS[depth]), start=1):
        for block in range(1, blocks + 1):
            x = bireal_block(
                x, out_channels, stride=2 if stage > 1 and block == 1 else 1,
                precision=precision, pad_values=pad_values, name=f"stage{stage}_block{block}",
            )
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)


@register_model("birealnet18")
def birealnet18(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem: str = "imagenet",
    precision: str = "binary",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """Bi-Real Net 18: 16 single-conv binary blocks ``[4, 4, 4, 4]`` (papers.md §5).

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model
            (11,699,112 weights, 1.63×10⁸ OPs).
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, 3×3 stride-2 max-pool) or ``"small"``
            (3×3 stride-1 conv and BN, for 28×28 / 32×32 inputs).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see the module docstring.
        pad_values: padding value of the binary 3×3 convs: 1.0 converts on every LCE target,
            0.0 is the reference code's zero padding (module docstring).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    return _build_birealnet(18, input_shape=input_shape, num_classes=num_classes, width=width,
                            stem=stem, precision=precision, pad_values=pad_values)


@register_model("birealnet34")
def birealnet34(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem: str = "imagenet",
    precision: str = "binary",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """Bi-Real Net 34: 32 single-conv binary blocks ``[6, 8, 12, 6]`` (papers.md §5).

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, 3×3 stride-2 max-pool) or ``"small"``
            (3×3 stride-1 conv and BN, for 28×28 / 32×32 inputs).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see the module docstring.
        pad_values: padding value of the binary 3×3 convs: 1.0 converts on every LCE target,
            0.0 is the reference code's zero padding (module docstring).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    return _build_birealnet(34, input_shape=input_shape, num_classes=num_classes, width=width,
                            stem=stem, precision=precision, pad_values=pad_values)
