"""BiMLP-S and BiMLP-M (Xu, Chen, Wang, NeurIPS 2022; papers.md §2): binary Wave-MLPs.

Both take the published sizes at ``width=1.0`` with the ImageNet stem (the MindSpore
``BiMLP_S`` / ``BiMLP_M``: embed dims 64, 128, 320, 512, MLP ratio 4, 7×7 stride-4 stem) and
shrink to 28×28 / 32×32 inputs with ``width`` and ``stem="small"``. As for ReActNet, one
definition gives the three precisions of the two-step recipe (``tflbnn.blocks.PRECISIONS``),
with identical weights. Blocks, layers and the differences from the released code are in
``tflbnn.bimlp``.
"""

from __future__ import annotations

from typing import Sequence

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.bimlp import downsample, norm_layer, wave_block
from tflbnn.blocks import check_precision
from tflbnn.layers import RPReLU
from tflbnn.models.common import classifier_head, scale_channels
from tflbnn.models.registry import register_model

__all__ = ["bimlp_s", "bimlp_m", "BIMLP_EMBED_DIMS", "BIMLP_S_LAYERS", "BIMLP_M_LAYERS"]

#: Channels of the four stages at width 1.0.
BIMLP_EMBED_DIMS = (64, 128, 320, 512)
#: WaveBlocks per stage: BiMLP-S has Wave-MLP-T's depth, BiMLP-M Wave-MLP-S's.
BIMLP_S_LAYERS = (2, 2, 4, 2)
BIMLP_M_LAYERS = (2, 3, 10, 3)
_MLP_RATIO = 4
_STEMS = ("imagenet", "small")


def _stem(x: tf.Tensor, filters: int, stem: str, norm: str) -> tf.Tensor:
    if stem == "imagenet":
        # MindSpore Conv2d(kernel 7, stride 4, padding 2): 224 -> 56, padded symmetrically.
        x = tf.keras.layers.ZeroPadding2D(2, name="stem_pad")(x)
        x = tf.keras.layers.Conv2D(filters, 7, strides=4, use_bias=True, name="stem_conv")(x)
    else:
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=True,
                                   name="stem_conv")(x)
    x = norm_layer(norm, "stem_norm")(x)
    return RPReLU(name="stem_rprelu")(x)


def _bimlp(
    name: str,
    layers: Sequence[int],
    norm: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    stem: str,
    precision: str,
    drop_path_rate: float,
) -> tf.keras.Model:
    check_precision(precision, name)
    if stem not in _STEMS:
        raise ValueError(f"{name}: stem must be one of {_STEMS}, got {stem!r}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"{name}: drop_path_rate must be in [0, 1), got {drop_path_rate}")
    # Multiples of 8 keep dim/4 (re-weighting hidden) integral and 3·dim = 12·(dim/4) (its
    # tiled shortcut), as the uni-shortcuts need.
    dims = [scale_channels(dim, width, name) for dim in BIMLP_EMBED_DIMS]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _stem(inputs, dims[0], stem, norm)
    total_blocks = sum(layers)
    block_index = 0
    for stage, (dim, blocks) in enumerate(zip(dims, layers), start=1):
        if stage > 1:
            x = downsample(x, dim, norm=norm, name=f"downsample{stage - 1}")
        for block in range(1, blocks + 1):
            # Stochastic depth grows linearly from 0 to drop_path_rate over all blocks.
            rate = drop_path_rate * block_index / max(total_blocks - 1, 1)
            x = wave_block(x, mlp_ratio=_MLP_RATIO, norm=norm, precision=precision,
                           drop_path_rate=rate, name=f"stage{stage}_block{block}")
            block_index += 1
    x = norm_layer(norm, "head_norm")(x)
    return tf.keras.Model(inputs, classifier_head(x, num_classes), name=name)


@register_model("bimlp_s")
def bimlp_s(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem: str = "imagenet",
    precision: str = "binary",
    drop_path_rate: float = 0.0,
) -> tf.keras.Model:
    """BiMLP-S: WaveBlocks [2, 2, 4, 2], dims [64, 128, 320, 512], BatchNorm.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (float 7×7 stride-4 conv, norm, RPReLU) or ``"small"`` (3×3
            stride 1, for 28×28 / 32×32 inputs).
        precision: ``"binary"`` (step 2), ``"binary_activations"`` (step 1, real weights) or
            ``"float"`` (the float twin); see ``tflbnn.blocks.PRECISIONS``.
        drop_path_rate: stochastic depth of the last block (linearly less before it); 0 adds
            no drop-path layers.

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    return _bimlp("bimlp_s", BIMLP_S_LAYERS, "batch", input_shape=input_shape,
                  num_classes=num_classes, width=width, stem=stem, precision=precision,
                  drop_path_rate=drop_path_rate)


@register_model("bimlp_m")
def bimlp_m(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    stem: str = "imagenet",
    precision: str = "binary",
    drop_path_rate: float = 0.0,
) -> tf.keras.Model:
    """BiMLP-M: WaveBlocks [2, 3, 10, 3], dims [64, 128, 320, 512], GroupNorm(1, C).

    GroupNorm replaces BatchNorm in the stem, downsampling, block pre-norms and head; the
    layers inside the Bi-FCs stay BatchNorm, as in the released code.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` or ``"small"``, see ``bimlp_s``.
        precision: one of ``tflbnn.blocks.PRECISIONS``.
        drop_path_rate: stochastic depth of the last block, see ``bimlp_s``.

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    return _bimlp("bimlp_m", BIMLP_M_LAYERS, "group", input_shape=input_shape,
                  num_classes=num_classes, width=width, stem=stem, precision=precision,
                  drop_path_rate=drop_path_rate)
