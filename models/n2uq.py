"""N2UQ ResNet-18/34/50 and MobileNetV2 (Liu et al., CVPR 2022; papers.md §3.4).

All convolutions are quantized except the first conv and the classifier. A quantized conv is
``lq.layers.QuantConv2D`` (or ``QuantDepthwiseConv2D``) with the learnable-threshold activation
quantizer ``N2UQActivationQuantizer(bits)`` as ``input_quantizer`` and
``N2UQWeightQuantizer(bits)`` as kernel quantizer. Blocks are pre-activation with RPReLU:

* BasicBlock: ``RPReLU → LTQ → QConv3×3 → BN`` twice, ``+ shortcut``, RPReLU;
* Bottleneck: the same unit three times (1×1, 3×3 with the stride, 1×1 ×4);
* the downsampling shortcut is ``LTQ → QConv1×1 → BN``, or a float ``Conv1×1 → BN`` with
  ``float_downsample=True`` (the paper's "N2UQ *" rows);
* stem: float ``Conv7×7 → BN → ReLU → MaxPool`` (or the small-input stem, see
  ``lowbit_resnet.STEMS``); classifier: global average pool and float dense.

MobileNetV2 uses the same unit for its expansion 1×1, depthwise 3×3 and projection 1×1, adds the
input when shape allows (no activation after the addition, as in the reference code), and
quantizes the final 1×1 (→1280) with :class:`PACT` activations, followed by BN and ReLU6.

``precision="float"`` builds the float twin the recipe trains first: the same layers and weights,
where each activation quantizer is replaced by its continuous relaxation with the quantizer's
parameters frozen at their initial values (:class:`LTQRelaxation`, :class:`PACTRelaxation`),
i.e. ``clip(x, 0, 2)``, and kernels stay float. Because both precisions have one weight layout,
``tflbnn.training.transfer_weights(float_twin, n2uq_model)`` initialises the N2UQ model from the
trained twin and leaves its thresholds and scales at their initial values, as the paper does when
it loads a float ResNet.

Deviations from the reference code (papers.md §3.4, official ``resnet.py`` /
``mobilenet_v2.py``), all documented on the objects concerned:

* Keras ``"same"`` padding (asymmetric on stride 2) instead of PyTorch's symmetric padding;
* the float twin has clipped activations (the relaxation) where the paper starts from a plain
  float ResNet with ReLU;
* MobileNetV2's first block (expansion 1) has no expansion 1×1 conv, as in MobileNetV2 and
  torchvision; the reference code adds a quantized 32→32 1×1 there (1,088 more weights);
* kernels start from Keras' Glorot-uniform initialiser (the reference code's tiny uniform init
  is overwritten by the float model anyway; the weight quantizer is scale-invariant).
"""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.blocks import batch_norm
from tflbnn.layers import RPReLU
from tflbnn.models.lowbit_resnet import (
    BlockFamily, ConvSpec, build_resnet, check_choice, float_conv_bn, register_variant,
)
from tflbnn.models.common import check_stride, classifier_head, scale_channels
from tflbnn.models.registry import ModelBuilder, register_model
from tflbnn.n2uq import (
    PACT, SUPPORTED_BITS, LTQRelaxation, N2UQActivationQuantizer, N2UQWeightQuantizer,
    PACTRelaxation,
)

__all__ = ["N2UQ_PRECISIONS", "N2UQ_THRESHOLDS",
           "N2UQ_WEIGHT_QUANTIZERS", "N2UQFamily",
           "n2uq_resnet18", "n2uq_resnet34", "n2uq_resnet50", "n2uq_mobilenet_v2",
           "MOBILENET_V2_SETTINGS"]

#: ``"n2uq"``: quantized weights and activations; ``"float"``: the float twin (same weights).
N2UQ_PRECISIONS = ("n2uq", "float")

#: Ablation switches (papers.md §3.6): ``"learned"`` thresholds with G-STE (N2UQ), or
#: ``"uniform"`` ones: the same quantizer with its thresholds and scales frozen at their initial,
#: equally spaced values, where G-STE reduces to the plain clipped STE (the DoReFa-style baseline).
N2UQ_THRESHOLDS = ("learned", "uniform")

#: ``"n2uq"``: the entropy-preserving normalised weight quantizer; ``"dorefa"``: DoReFa's
#: ``tanh`` weight quantizer (``larq.quantizers.DoReFa(mode="weights")``), the baseline.
N2UQ_WEIGHT_QUANTIZERS = ("n2uq", "dorefa")

#: MobileNetV2's inverted-residual stages (expansion t, channels c, blocks n, stride s).
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

#: Channels of MobileNetV2's stem and final 1×1 conv at width 1.0.
MOBILENET_V2_STEM, MOBILENET_V2_LAST = 32, 1280


class N2UQFamily(BlockFamily):
    """N2UQ's block pieces (see the module docstring), quantized or as the float twin.

    Args:
        bits: weight and activation bit width, one of ``tflbnn.n2uq.SUPPORTED_BITS``.
        precision: one of ``N2UQ_PRECISIONS``.
        float_downsample: keep the downsampling shortcuts float (the paper's * rows).
        model_name: named in error messages.
        thresholds: one of ``N2UQ_THRESHOLDS`` (ablation switch).
        weight_quantizer: one of ``N2UQ_WEIGHT_QUANTIZERS`` (ablation switch).

    Raises:
        ValueError: for invalid bits, precision, float_downsample, thresholds or weight quantizer.
    """

    def __init__(self, *, bits: int, precision: str, float_downsample: bool, model_name: str,
                 thresholds: str = "learned", weight_quantizer: str = "n2uq"):
        check_choice(bits, SUPPORTED_BITS, "bits", model_name)
        check_choice(precision, N2UQ_PRECISIONS, "precision", model_name)
        check_choice(thresholds, N2UQ_THRESHOLDS, "thresholds", model_name)
        check_choice(weight_quantizer, N2UQ_WEIGHT_QUANTIZERS, "weight_quantizer", model_name)
        if not isinstance(float_downsample, bool):
            raise ValueError(f"{model_name}: float_downsample must be True or False, "
                             f"got {float_downsample!r}")
        self.bits = bits
        self.quantized = precision == "n2uq"
        self.float_downsample = float_downsample
        self.learned_thresholds = thresholds == "learned"
        self.weight_quantizer_name = weight_quantizer

    def activation_quantizer(self, *, pact: bool = False, name: str) -> lq.quantizers.Quantizer:
        """The LTQ (or PACT), or its frozen relaxation in the float twin."""
        if pact:
            return PACT(self.bits, name=name) if self.quantized else \
                PACTRelaxation(self.bits, trainable=False, name=name)
        if not self.quantized:
            return LTQRelaxation(self.bits, trainable=False, name=name)
        return N2UQActivationQuantizer(self.bits, trainable=self.learned_thresholds, name=name)

    def weight_quantizer(self, *, depthwise: bool) -> lq.quantizers.Quantizer | None:
        """The kernel quantizer (``None`` in the float twin); depthwise ones are per channel."""
        if not self.quantized:
            return None
        if self.weight_quantizer_name == "dorefa":
            return lq.quantizers.DoReFa(k_bit=self.bits, mode="weights")
        return N2UQWeightQuantizer(self.bits, axis=(2, 3)) if depthwise else \
            N2UQWeightQuantizer(self.bits)

    def conv(self, spec: ConvSpec, *, pact: bool = False, name: str) -> tf.keras.layers.Layer:
        """A quantized conv (float kernel in the float twin) with its activation quantizer.

        Args:
            spec: the convolution; depthwise ones quantize per channel (``axis=(2, 3)``).
            pact: quantize the input with PACT instead of the LTQ.
            name: the layer name; the activation quantizer is ``{name}_ltq`` / ``{name}_pact``.

        Returns:
            The unbuilt ``QuantConv2D`` / ``QuantDepthwiseConv2D``.
        """
        input_quantizer = self.activation_quantizer(
            pact=pact, name=f"{name}_{'pact' if pact else 'ltq'}")
        common = dict(strides=spec.strides, padding="same", use_bias=False,
                      input_quantizer=input_quantizer, name=name)
        weight_quantizer = self.weight_quantizer(depthwise=spec.depthwise)
        if spec.depthwise:
            return lq.layers.QuantDepthwiseConv2D(
                spec.kernel_size, depthwise_quantizer=weight_quantizer, **common)
        return lq.layers.QuantConv2D(spec.filters, spec.kernel_size,
                                     kernel_quantizer=weight_quantizer, **common)

    def conv_unit(self, x: tf.Tensor, spec: ConvSpec, *, last: bool, name: str) -> tf.Tensor:
        """``RPReLU → LTQ → quantized conv → BN`` (``last`` changes nothing: pre-activation)."""
        y = RPReLU(name=f"{name}_rprelu")(x)
        y = self.conv(spec, name=name)(y)
        return batch_norm(f"{name}_bn")(y)

    def shortcut(self, x: tf.Tensor, filters: int, strides: int, *, name: str) -> tf.Tensor:
        """``LTQ → QConv1×1 → BN``, or float ``Conv1×1 → BN`` with ``float_downsample``."""
        if self.float_downsample:
            conv = tf.keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                          name=f"{name}_conv")
        else:
            conv = self.conv(ConvSpec(1, filters, strides), name=f"{name}_conv")
        return batch_norm(f"{name}_bn")(conv(x))

    def after_add(self, x: tf.Tensor, *, name: str) -> tf.Tensor:
        return RPReLU(name=f"{name}_rprelu")(x)


_RESNET_DOC = """N2UQ ResNet-{depth} (papers.md §3.4): pre-activation RPReLU blocks, LTQ activations.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        bits: weight and activation bits, 2, 3 or 4.
        precision: ``"n2uq"`` (quantized) or ``"float"`` (the float twin with the same weights,
            to train first and load with ``tflbnn.training.transfer_weights``).
        float_downsample: keep the 1×1 downsampling shortcuts float (the paper's * rows).
        thresholds: ``"learned"`` (N2UQ) or ``"uniform"`` (frozen, equally spaced: the
            ablation's DoReFa-style activations), see ``N2UQ_THRESHOLDS``.
        weight_quantizer: ``"n2uq"`` (normalised) or ``"dorefa"`` (the ablation baseline).
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, ReLU, max-pool) or ``"small"`` (3×3
            stride-1 conv, BN, ReLU; for 28×28 / 32×32 inputs).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """


def _register_resnet(depth: int) -> ModelBuilder:
    name = f"n2uq_resnet{depth}"

    def builder(
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        bits: int = 2,
        precision: str = "n2uq",
        float_downsample: bool = False,
        thresholds: str = "learned",
        weight_quantizer: str = "n2uq",
        width: float = 1.0,
        stem: str = "imagenet",
    ) -> tf.keras.Model:
        family = N2UQFamily(bits=bits, precision=precision, float_downsample=float_downsample,
                            thresholds=thresholds, weight_quantizer=weight_quantizer,
                            model_name=name)
        return build_resnet(family, depth=depth, input_shape=input_shape,
                            num_classes=num_classes, width=width, stem=stem, model_name=name)

    return register_variant(builder, name, _RESNET_DOC.format(depth=depth))


n2uq_resnet18 = _register_resnet(18)
n2uq_resnet34 = _register_resnet(34)
n2uq_resnet50 = _register_resnet(50)


@register_model("n2uq_mobilenet_v2")
def n2uq_mobilenet_v2(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    bits: int = 4,
    precision: str = "n2uq",
    width: float = 1.0,
    stem_stride: int = 2,
) -> tf.keras.Model:
    """N2UQ MobileNetV2 (papers.md §3.4; the paper reports W4/A4).

    Float stem ``Conv3×3 → BN → ReLU6``; 17 inverted residual blocks of N2UQ units (expansion
    1×1, depthwise 3×3 quantized per channel, projection 1×1), with the input added when the
    block keeps stride 1 and channels; ``PACT → QConv1×1 (→1280) → BN → ReLU6``; pool; float
    dense. As in MobileNetV2, ``width`` below 1 does not shrink the final 1280 channels.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        bits: weight and activation bits, 2, 3 or 4 (the paper: 4).
        precision: ``"n2uq"`` or ``"float"`` (the float twin, see the module docstring).
        width: channel multiplier (channels rounded to multiples of 8).
        stem_stride: stride of the float stem (2 for ImageNet, 1 for 28×28 / 32×32).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits.

    Raises:
        ValueError: for invalid options.
    """
    name = "n2uq_mobilenet_v2"
    family = N2UQFamily(bits=bits, precision=precision, float_downsample=False, model_name=name)
    check_stride(stem_stride, "stem_stride", name)
    in_channels = scale_channels(MOBILENET_V2_STEM, width, name)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = float_conv_bn(inputs, in_channels, 3, stem_stride, max_value=6.0, name="stem")
    block = 0
    for expansion, channels, blocks, first_stride in MOBILENET_V2_SETTINGS:
        out_channels = scale_channels(channels, width, name)
        for repeat in range(blocks):
            block += 1
            strides = first_stride if repeat == 0 else 1
            hidden = in_channels * expansion
            convs = [("expand", ConvSpec(1, hidden))] if expansion != 1 else []
            convs += [("depthwise", ConvSpec(3, hidden, strides, depthwise=True)),
                      ("project", ConvSpec(1, out_channels))]
            y = x
            for role, spec in convs:
                y = family.conv_unit(y, spec, last=role == "project", name=f"block{block}_{role}")
            if strides == 1 and in_channels == out_channels:
                y = tf.keras.layers.Add(name=f"block{block}_add")([x, y])
            x, in_channels = y, out_channels
    last_channels = scale_channels(MOBILENET_V2_LAST, max(1.0, width), name)
    x = family.conv(ConvSpec(1, last_channels), pact=True, name="last_conv")(x)
    x = batch_norm("last_bn")(x)
    x = tf.keras.layers.ReLU(max_value=6.0, name="last_relu")(x)
    outputs = classifier_head(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)
