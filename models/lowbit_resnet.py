"""Shared plumbing of the low-bit ResNets (N2UQ in ``n2uq.py``, S3 in ``s3.py``).

A ResNet here is the torchvision layout (papers.md §3.4, §4.1): a float stem, four stages of
BasicBlocks (ResNet-18/34) or Bottlenecks (ResNet-50, stride on the 3×3) and a float classifier.
What differs between the methods is how one convolution of a block is wrapped (N2UQ:
``RPReLU → LTQ → quantized conv → BN``; S3: ``S3 conv → BN → ReLU``), the downsampling
shortcut and the activation after the addition. A :class:`BlockFamily` supplies those three
pieces and :func:`build_resnet` does the rest, so both methods share one ResNet definition.

:func:`parameter_breakdown` splits a model's weights the way the papers count them, so a
low-bit ResNet can be compared with the published float parameter counts.
"""

from __future__ import annotations

import abc
import dataclasses

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tflbnn.blocks import batch_norm
from tflbnn.layers import RPReLU
from tflbnn.models.common import classifier_head, scale_channels
from tflbnn.models.registry import ModelBuilder, register_model
from tflbnn.profiling import flatten_layers, profile

__all__ = ["BlockFamily", "ConvSpec", "RESNET_LAYOUTS", "STEMS", "build_resnet", "block_convs",
           "check_choice", "float_conv_bn", "parameter_breakdown", "register_variant"]

#: depth -> (block kind, blocks per stage), torchvision's ResNet-18/34/50.
RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}

#: Planes (3×3 width) of the four stages at width 1.0.
STAGE_PLANES = (64, 128, 256, 512)

#: A Bottleneck's last 1×1 conv widens its planes this many times.
BOTTLENECK_EXPANSION = 4

#: ``"imagenet"``: 7×7 stride-2 conv, BN, ReLU, 3×3 stride-2 max-pool (224×224 inputs);
#: ``"small"``: 3×3 stride-1 conv, BN, ReLU, no pool (28×28 / 32×32 inputs).
STEMS = ("imagenet", "small")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One convolution of a block.

    Attributes:
        kernel_size: square kernel size.
        filters: output channels (for a depthwise conv, its input channels).
        strides: 1 or 2.
        depthwise: a depthwise (one filter per channel) convolution.
    """

    kernel_size: int
    filters: int
    strides: int = 1
    depthwise: bool = False


class BlockFamily(abc.ABC):
    """How one method builds the pieces of a residual block (see the module docstring)."""

    @abc.abstractmethod
    def conv_unit(self, x: tf.Tensor, spec: ConvSpec, *, last: bool, name: str) -> tf.Tensor:
        """One convolution of a block with its normalisation and activation.

        Args:
            x: input tensor.
            spec: the convolution.
            last: the block's last convolution, whose output goes to the residual addition.
            name: prefix of the layer names; the convolution itself is named ``name``.

        Returns:
            The output tensor.
        """

    @abc.abstractmethod
    def shortcut(self, x: tf.Tensor, filters: int, strides: int, *, name: str) -> tf.Tensor:
        """The downsampling shortcut (1×1 conv and BN) used when a block changes shape."""

    @abc.abstractmethod
    def after_add(self, x: tf.Tensor, *, name: str) -> tf.Tensor:
        """The activation after the residual addition."""


def check_choice(value, choices: tuple, option: str, model_name: str) -> None:
    """Raise ``ValueError`` naming the model and option unless ``value`` is in ``choices``."""
    # `bool` is an int: `bits=True` must not pass as 1.
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{model_name}: {option} must be one of {choices}, got {value!r}")


def block_convs(kind: str, planes: int, strides: int) -> list[ConvSpec]:
    """The convolutions of a torchvision BasicBlock or Bottleneck (stride on the 3×3)."""
    if kind == "basic":
        return [ConvSpec(3, planes, strides), ConvSpec(3, planes)]
    return [ConvSpec(1, planes), ConvSpec(3, planes, strides),
            ConvSpec(1, planes * BOTTLENECK_EXPANSION)]


def _residual_block(x: tf.Tensor, family: BlockFamily, convs: list[ConvSpec], *,
                    name: str) -> tf.Tensor:
    y = x
    for index, spec in enumerate(convs, start=1):
        y = family.conv_unit(y, spec, last=index == len(convs), name=f"{name}_conv{index}")
    filters = convs[-1].filters
    strides = max(spec.strides for spec in convs)
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = family.shortcut(x, filters, strides, name=f"{name}_downsample")
    y = tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return family.after_add(y, name=name)


def float_conv_bn(x: tf.Tensor, filters: int, kernel_size: int, strides: int, *,
                  max_value: float | None = None, name: str) -> tf.Tensor:
    """Float ``Conv2D → BN → ReLU`` (``ReLU6`` with ``max_value=6``), e.g. a stem.

    Args:
        x: input tensor.
        filters: output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        max_value: cap of the ReLU, ``None`` for none.
        name: prefix of the layer names (``{name}_conv``, ``{name}_bn``, ``{name}_relu``).

    Returns:
        The output tensor.
    """
    x = tf.keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return tf.keras.layers.ReLU(max_value=max_value, name=f"{name}_relu")(x)


def register_variant(builder: ModelBuilder, name: str, doc: str) -> ModelBuilder:
    """Name, document and register a builder made by a factory (one per ResNet depth).

    Args:
        builder: the closure; its keyword parameters are the model's options.
        name: the zoo name, also given to the function.
        doc: its docstring.

    Returns:
        The registered builder.

    Raises:
        ValueError: if the name is already registered.
    """
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(name)(builder)


def build_resnet(
    family: BlockFamily,
    *,
    depth: int,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    stem: str,
    model_name: str,
) -> tf.keras.Model:
    """A ResNet-18/34/50 whose blocks come from ``family``; float stem and classifier.

    Args:
        family: the method's block pieces.
        depth: 18, 34 or 50.
        input_shape: ``(H, W, C)``.
        num_classes: logits of the float classifier.
        width: channel multiplier (channels rounded to multiples of 8, at least 8).
        stem: one of ``STEMS``.
        model_name: the Keras model name, also used in error messages.

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for an unknown depth or stem, or a non-positive width.
    """
    check_choice(depth, tuple(RESNET_LAYOUTS), "depth", model_name)
    check_choice(stem, STEMS, "stem", model_name)
    kind, blocks_per_stage = RESNET_LAYOUTS[depth]
    planes = [scale_channels(p, width, model_name) for p in STAGE_PLANES]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    if stem == "imagenet":
        x = float_conv_bn(inputs, planes[0], 7, 2, name="stem")
        x = tf.keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = float_conv_bn(inputs, planes[0], 3, 1, name="stem")
    for stage, (stage_planes, blocks) in enumerate(zip(planes, blocks_per_stage), start=1):
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _residual_block(x, family, block_convs(kind, stage_planes, strides),
                                name=f"stage{stage}_block{block}")
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=model_name)


def parameter_breakdown(model: tf.keras.Model) -> dict[str, int]:
    """Split a model's deployed weights into what the papers count and what they leave out.

    Categories:

    * ``"published"``: convolution and dense kernels and biases, BN scale and offset; what
      PyTorch's ``sum(p.numel() for p in model.parameters())`` counts for a torchvision model
      (e.g. 11,689,512 for ResNet-18), so comparable with the published sizes.
    * ``"bn_statistics"``: BN moving means and variances, buffers (not parameters) in PyTorch.
    * ``"quantizer"``: weights of activation/weight quantizers (N2UQ thresholds and scales,
      PACT clip values), whether trainable or frozen.
    * ``"rprelu"``: RPReLU shifts and slopes (N2UQ's ``[bias, PReLU, bias]``).
    * ``"total"``: the sum, equal to ``tflbnn.profiling.profile(model).params``.

    S3 layers count as deployed, one kernel instead of their latents (see ``profile``).

    Args:
        model: a built Keras model.

    Returns:
        A dict with the five counts.
    """
    counts = dict.fromkeys(("published", "bn_statistics", "quantizer", "rprelu"), 0)
    layers = list(flatten_layers(model))
    for layer, layer_profile in zip(layers, profile(model).layers):
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            statistics = int(np.prod(layer.moving_mean.shape) + np.prod(layer.moving_variance.shape))
            counts["bn_statistics"] += statistics
            counts["published"] += layer_profile.params - statistics
        elif isinstance(layer, RPReLU):
            counts["rprelu"] += layer_profile.params
        else:
            counts["quantizer"] += layer_profile.quantizer_params
            counts["published"] += layer_profile.params - layer_profile.quantizer_params
    counts["total"] = sum(counts.values())
    return counts
