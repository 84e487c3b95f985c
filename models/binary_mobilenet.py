"""Binary MobileNet with a searched number of groups per block (papers.md §6).

Phan et al. (CVPR 2020) binarize MobileNetV1 by replacing the depthwise 3×3 of each block with a
*grouped* binary 3×3 and searching the group count per layer. Here the layout is ReActNet-A's
(papers.md §1.1: MobileNetV1's 13 blocks with ``RSign`` / ``RPReLU``, parameter-free shortcuts
and duplicated 1×1 convs in the reduction blocks), and block ``i``'s 3×3 conv has
``groups[i]`` groups. ``groups = (1,) * 13`` is ReActNet-A itself.

LCE converts a grouped binary conv only when every group has a multiple of 32 input channels,
and runs it only with its indirect-BGEMM or reference kernel (lce.md §2.2); ``valid_groups``
applies that rule, ``group_choices`` lists the search space (powers of two) per block.
``binary_mobilenet_ops`` counts the OPs of a configuration analytically, exactly as
``tflbnn.models.profile`` counts the built model.

With ``supernet=True`` every 3×3 conv is a ``tflbnn.blocks.GroupSuperConv2D`` over the block's
choices: the weight-sharing one-shot supernet that ``tflbnn.group_search`` trains and searches.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import batch_norm, check_precision, reactnet_block
from tflbnn.models.common import check_stride, classifier_head, scale_channels
from tflbnn.models.reactnet import REACTNET_A_CHANNELS
from tflbnn.models.registry import register_model

__all__ = ["binary_mobilenet", "NUM_BLOCKS", "MIN_GROUP_CHANNELS", "block_layout",
           "valid_groups", "group_choices", "check_groups", "search_space_size",
           "binary_mobilenet_macs", "binary_mobilenet_ops"]

_NAME = "binary_mobilenet"

#: Blocks of MobileNetV1 / ReActNet-A, each with one (grouped) 3×3 conv.
NUM_BLOCKS = len(REACTNET_A_CHANNELS) - 1

#: LCE's rule for grouped binary convs: input channels per group a multiple of this.
MIN_GROUP_CHANNELS = 32


def block_layout(width: float = 1.0) -> list[tuple[int, int, int]]:
    """``(input channels, output channels, stride)`` of the 13 blocks at ``width``.

    The 3×3 conv of a block maps its input channels to themselves; the 1×1 part keeps or
    doubles them. Every channel change downsamples, except the first (32 → 64) block.

    Raises:
        ValueError: for a non-positive width.
    """
    channels = [scale_channels(c, width, _NAME) for c in REACTNET_A_CHANNELS]
    layout = []
    for index in range(1, len(channels)):
        grows = REACTNET_A_CHANNELS[index] != REACTNET_A_CHANNELS[index - 1]
        stride = 2 if grows and REACTNET_A_CHANNELS[index] != 64 else 1
        layout.append((channels[index - 1], channels[index], stride))
    return layout


def valid_groups(channels: int, *, min_group_channels: int = MIN_GROUP_CHANNELS) -> tuple[int, ...]:
    """Every group count a binary 3×3 conv over ``channels`` channels can have.

    ``g`` must divide ``channels`` and, unless ``g == 1``, leave a multiple of
    ``min_group_channels`` channels per group (LCE's rule for grouped bconvs).

    Returns:
        The valid counts in increasing order (always starting with 1).
    """
    return tuple(g for g in range(1, channels + 1) if channels % g == 0
                 and (g == 1 or (channels // g) % min_group_channels == 0))


def group_choices(width: float = 1.0, *, max_groups: int | None = None,
                  min_group_channels: int = MIN_GROUP_CHANNELS) -> list[tuple[int, ...]]:
    """The search space: the valid power-of-two group counts of each block's 3×3 conv.

    Args:
        width: channel multiplier of the model.
        max_groups: drop counts above this (``None``: no limit).
        min_group_channels: input channels per group must be a multiple of this (LCE: 32).

    Returns:
        13 tuples, one per block, each starting with 1.

    Raises:
        ValueError: for a non-positive width or ``max_groups < 1``.
    """
    if max_groups is not None and max_groups < 1:
        raise ValueError(f"{_NAME}: max_groups must be >= 1, got {max_groups}")
    choices = []
    for in_channels, _, _ in block_layout(width):
        choices.append(tuple(g for g in valid_groups(in_channels,
                                                     min_group_channels=min_group_channels)
                             if g & (g - 1) == 0 and (max_groups is None or g <= max_groups)))
    return choices


def search_space_size(choices: Sequence[Sequence[int]]) -> int:
    """Number of configurations: the product of the number of choices per block."""
    return math.prod(len(block) for block in choices)


def check_groups(groups: Sequence[int], width: float = 1.0, *,
                 owner: str = _NAME) -> tuple[int, ...]:
    """Validate a configuration: 13 group counts, each valid for its block (``valid_groups``).

    Args:
        groups: one group count per block.
        width: channel multiplier of the model.
        owner: name used in error messages.

    Returns:
        The configuration as a tuple of ints.

    Raises:
        ValueError: naming the block, its input channels and its valid choices.
    """
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise ValueError(f"{owner}: groups must be a sequence of {NUM_BLOCKS} ints, got "
                         f"{groups!r}")
    if len(groups) != NUM_BLOCKS:
        raise ValueError(f"{owner}: groups needs one entry per block ({NUM_BLOCKS}), got "
                         f"{len(groups)}: {list(groups)}")
    config = []
    for index, ((in_channels, _, _), g) in enumerate(zip(block_layout(width), groups), start=1):
        valid = valid_groups(in_channels)
        if isinstance(g, bool) or not isinstance(g, numbers.Integral) or int(g) not in valid:
            raise ValueError(
                f"{owner}: block{index} has {in_channels} input channels at width {width}; its "
                f"3x3 conv cannot have groups={g!r} (each group needs a multiple of "
                f"{MIN_GROUP_CHANNELS} channels for LCE). Valid choices: {list(valid)}")
        config.append(int(g))
    return tuple(config)


def _same_size(size: int, stride: int) -> int:
    return -(-size // stride)


def binary_mobilenet_macs(groups: Sequence[int], *, input_shape: tuple[int, int, int],
                          num_classes: int, width: float = 1.0,
                          stem_stride: int = 2) -> tuple[int, int]:
    """Binary and float multiply-accumulates of the fully binary model, without building it.

    The float stem (3×3, ``C_in → C0``) and classifier, and per block the grouped binary 3×3
    (``9 · C / g`` MACs per output value) and the binary 1×1 (``C · C_out`` per position).
    Batch norm, activations, shortcuts and pooling are not counted (as ``profile``).

    Returns:
        ``(binary MACs, float MACs)``.

    Raises:
        ValueError: for an invalid configuration or option.
    """
    check_stride(stem_stride, "stem_stride", _NAME)
    config = check_groups(groups, width)
    layout = block_layout(width)
    height, width_px, in_channels = (int(d) for d in input_shape)
    height, width_px = _same_size(height, stem_stride), _same_size(width_px, stem_stride)
    float_macs = height * width_px * 9 * in_channels * layout[0][0]
    binary_macs = 0
    for (channels, out_channels, stride), g in zip(layout, config):
        height, width_px = _same_size(height, stride), _same_size(width_px, stride)
        binary_macs += height * width_px * (9 * (channels // g) * channels
                                            + channels * out_channels)
    float_macs += layout[-1][1] * num_classes
    return binary_macs, float_macs


def binary_mobilenet_ops(groups: Sequence[int], *, input_shape: tuple[int, int, int],
                         num_classes: int, width: float = 1.0, stem_stride: int = 2) -> float:
    """OPs of the fully binary model, ``binary MACs / 64 + float MACs`` (``profile(m).ops``).

    Args:
        groups: one group count per block.
        input_shape: ``(H, W, C)``.
        num_classes: number of logits.
        width: channel multiplier.
        stem_stride: stride of the float stem.

    Returns:
        The OPs, computed as ``tflbnn.profiling.ModelProfile.ops`` computes them.

    Raises:
        ValueError: for an invalid configuration or option.
    """
    binary_macs, float_macs = binary_mobilenet_macs(
        groups, input_shape=input_shape, num_classes=num_classes, width=width,
        stem_stride=stem_stride)
    return binary_macs / 64.0 + float_macs


@register_model(_NAME)
def binary_mobilenet(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    groups: Sequence[int] = (1,) * NUM_BLOCKS,
    width: float = 1.0,
    stem_stride: int = 2,
    precision: str = "binary",
    pad_values: float = 1.0,
    supernet: bool = False,
    max_groups: int | None = None,
) -> tf.keras.Model:
    """ReActNet-A's layout with a grouped binary 3×3 conv of ``groups[i]`` groups in block ``i``.

    Args:
        input_shape: ``(H, W, C)``.
        num_classes: number of logits of the float classifier.
        groups: 13 group counts, each valid for its block (``valid_groups``); all 1 is
            ReActNet-A. With ``supernet`` the initially selected configuration.
        width: channel multiplier (channels rounded to multiples of 8).
        stem_stride: stride of the float 3×3 stem (2 for ImageNet, 1 for 28×28 / 32×32).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see ``tflbnn.blocks.PRECISIONS``.
        pad_values: padding value of the binary 3×3 convs (1.0 converts best with LCE).
        supernet: build the one-shot supernet: every 3×3 conv is a ``GroupSuperConv2D`` over
            the block's ``group_choices`` (model name ``binary_mobilenet_supernet``; layer names
            equal the plain model's, so ``tflbnn.group_search.extract_subnet`` can copy its
            weights into ``binary_mobilenet(groups=...)``).
        max_groups: supernet only: leave group counts above this out of the choices.

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options; an invalid group count names the block, its channels
            and the valid choices.
    """
    check_precision(precision, _NAME)
    check_stride(stem_stride, "stem_stride", _NAME)
    config = check_groups(groups, width)
    choices: list[tuple[int, ...] | None] = [None] * NUM_BLOCKS
    if supernet:
        choices = list(group_choices(width, max_groups=max_groups))
        for index, (g, block_choices) in enumerate(zip(config, choices), start=1):
            if g not in block_choices:
                raise ValueError(f"{_NAME}: block{index}'s supernet choices are "
                                 f"{list(block_choices)}; groups={g} is not one of them")
    elif max_groups is not None:
        raise ValueError(f"{_NAME}: max_groups limits the supernet's choices; it needs "
                         "supernet=True")
    layout = block_layout(width)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = tf.keras.layers.Conv2D(
        layout[0][0], 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = batch_norm("stem_bn")(x)
    for index, ((_, out_channels, stride), g, block_choices) in enumerate(
            zip(layout, config, choices), start=1):
        x = reactnet_block(
            x, out_channels, stride=stride, precision=precision, pad_values=pad_values,
            groups=g, group_choices=block_choices, name=f"block{index}",
        )
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=f"{_NAME}_supernet" if supernet else _NAME)
