"""ReActNet-A (MobileNetV1 layout) and ReAct-BiReal-18 (ResNet-18 layout), papers.md §1.1, §1.6.

Both definitions take the published sizes at ``width=1.0`` with the ImageNet stem, and shrink to
small inputs (28×28, 32×32) with ``width`` and the stem options. The same definition gives the
three precisions of the two-step recipe: ``precision="float"`` is the float twin,
``"binary_activations"`` is step 1 and ``"binary"`` (the default) the fully binary step 2. All three
have identical weights, so weights transfer between them with ``set_weights``.

``reactnet_a(bn_free=True)`` is the BN-free ReActNet-A of papers.md §8 (``tflbnn.bn_free``): no
BatchNormalization anywhere, every convolution (stem included) with scaled weight
standardisation and a gain, residual branches scaled as ``x + α·f(x·β)``. Train it with adaptive
gradient clipping (``tflbnn.training.agc_adam_optimizer``, recipe ``bn_free_recipe``).
"""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import batch_norm, check_precision, react_bireal_block, reactnet_block
from tflbnn.bn_free import bn_free_reactnet_block, signal_propagation_betas, ws_conv
from tflbnn.models.common import check_stride, classifier_head, resnet_stem, scale_channels
from tflbnn.models.registry import register_model

__all__ = ["reactnet_a", "reactnet_resnet18", "REACTNET_A_CHANNELS"]

#: Output channels of ReActNet-A's stem and 13 blocks at width 1.0 (papers.md §1.1).
REACTNET_A_CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)

#: ReAct-BiReal-18: (channels, blocks) per stage at width 1.0 (papers.md §1.6).
REACT_BIREAL_18_STAGES = ((64, 4), (128, 4), (256, 4), (512, 4))


@register_model("reactnet_a")
def reactnet_a(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem_stride: int = 2,
    precision: str = "binary",
    pad_values: float = 1.0,
    bn_free: bool = False,
) -> tf.keras.Model:
    """ReActNet-A: MobileNetV1's 13 blocks with full binary 3×3 and binary 1×1 convolutions.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem_stride: stride of the float 3×3 stem (2 for ImageNet, 1 for 28×28 / 32×32).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see ``tflbnn.blocks.PRECISIONS``.
        pad_values: padding value of the binary 3×3 convs (1.0 converts best with LCE).
        bn_free: build the BN-free variant (papers.md §8): scaled weight-standardised
            convolutions with gains (stem included), no BatchNormalization, residual branches
            ``x + 0.2·f(x·β)`` with β from ``tflbnn.bn_free.signal_propagation_betas``.

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    name = "reactnet_a"
    check_precision(precision, name)
    check_stride(stem_stride, "stem_stride", name)
    if not isinstance(bn_free, bool):
        raise ValueError(f"{name}: bn_free must be true or false, got {bn_free!r}")
    channels = [scale_channels(c, width, name) for c in REACTNET_A_CHANNELS]
    # Every channel change downsamples, except the first (32 -> 64) block.
    strides = [2 if REACTNET_A_CHANNELS[i] != REACTNET_A_CHANNELS[i - 1]
               and REACTNET_A_CHANNELS[i] != 64 else 1 for i in range(1, len(channels))]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    if bn_free:
        x = ws_conv(channels[0], 3, strides=stem_stride, name="stem_conv")(inputs)
        betas = signal_propagation_betas(strides)
        for index, (stride, (beta1, beta2)) in enumerate(zip(strides, betas), start=1):
            x = bn_free_reactnet_block(
                x, channels[index], stride=stride, precision=precision, beta1=beta1,
                beta2=beta2, pad_values=pad_values, name=f"block{index}",
            )
    else:
        x = tf.keras.layers.Conv2D(
            channels[0], 3, strides=stem_stride, padding="same", use_bias=False,
            name="stem_conv"
        )(inputs)
        x = batch_norm("stem_bn")(x)
        for index, stride in enumerate(strides, start=1):
            x = reactnet_block(
                x, channels[index], stride=stride, precision=precision, pad_values=pad_values,
                name=f"block{index}",
            )
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)


@register_model("reactnet_resnet18")
def reactnet_resnet18(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem: str = "imagenet",
    precision: str = "binary",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """ReAct-BiReal-18: Bi-Real Net 18 with RSign / RPReLU (16 single-conv binary blocks).

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, 3×3 stride-2 max-pool) or ``"small"``
            (3×3 stride-1 conv and BN, for 28×28 / 32×32 inputs).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see ``tflbnn.blocks.PRECISIONS``.
        pad_values: padding value of the binary 3×3 convs (1.0 converts best with LCE).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    name = "reactnet_resnet18"
    check_precision(precision, name)
    stems = ("imagenet", "small")
    if stem not in stems:
        raise ValueError(f"{name}: stem must be one of {stems}, got {stem!r}")
    stages = [(scale_channels(c, width, name), blocks) for c, blocks in REACT_BIREAL_18_STAGES]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = resnet_stem(inputs, stages[0][0], stem)
    for stage, (out_channels, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = react_bireal_block(
                x, out_channels, stride=stride, precision=precision, pad_values=pad_values,
                name=f"stage{stage}_block{block}",
            )
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)
