"""S3 (sign-sparse-shift) ResNet-18 and ResNet-50 (Li et al., NeurIPS 2021; papers.md §4.1).

Standard (post-activation, v1) torchvision ResNets in which every convolution inside a block,
the downsampling 1×1 included, is a ``tflbnn.shift.S3Conv2D`` with ``bits``-bit shift weights
(3 bits: ``{0, ±1, ±2, ±4}``; 2 bits: ``{-1, 0, 1}``). Activations stay float and blocks keep
ReLU: ``S3Conv → BN → ReLU → ... → S3Conv → BN``, ``+ shortcut``, ReLU. The stem and the
classifier are float.

The models train from random initialisation, as in the paper; there is no float twin. For
deployment, ``tflbnn.shift.to_inference_model`` replaces the S3 layers' latents by one kernel
each, giving the float ResNet's weight count.

Deviation: Keras ``"same"`` padding (asymmetric on stride 2) instead of PyTorch's symmetric one.
"""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import batch_norm
from tflbnn.models.lowbit_resnet import (
    BlockFamily, ConvSpec, build_resnet, check_choice, register_variant,
)
from tflbnn.models.registry import ModelBuilder
from tflbnn.shift import S3_BITS, S3Conv2D

__all__ = ["S3Family", "s3_resnet18", "s3_resnet50"]


class S3Family(BlockFamily):
    """S3's block pieces: S3 convolutions, BN and ReLU (see the module docstring).

    Args:
        bits: shift-weight bits, one of ``tflbnn.shift.S3_BITS``.
        density_regularization: coefficient of the dense-weight prior on every S3 layer
            (the paper's ``--rs``, 1e-5); 0 disables it.
        model_name: named in error messages.

    Raises:
        ValueError: for invalid bits or a negative coefficient.
    """

    def __init__(self, *, bits: int, density_regularization: float, model_name: str):
        check_choice(bits, S3_BITS, "bits", model_name)
        if not density_regularization >= 0:  # also rejects NaN
            raise ValueError(f"{model_name}: density_regularization must be >= 0, "
                             f"got {density_regularization!r}")
        self.bits = bits
        self.density_regularization = float(density_regularization)

    def _conv(self, filters: int, kernel_size: int, strides: int, name: str) -> S3Conv2D:
        return S3Conv2D(filters, kernel_size, bits=self.bits,
                        density_regularization=self.density_regularization, strides=strides,
                        padding="same", use_bias=False, name=name)

    def conv_unit(self, x: tf.Tensor, spec: ConvSpec, *, last: bool, name: str) -> tf.Tensor:
        """``S3Conv → BN``, then ReLU unless it feeds the residual addition.

        Raises:
            ValueError: for a depthwise spec (the S3 ResNets have none).
        """
        if spec.depthwise:
            raise ValueError(f"{name}: S3 blocks have no depthwise convolutions")
        y = self._conv(spec.filters, spec.kernel_size, spec.strides, name)(x)
        y = batch_norm(f"{name}_bn")(y)
        return y if last else tf.keras.layers.ReLU(name=f"{name}_relu")(y)

    def shortcut(self, x: tf.Tensor, filters: int, strides: int, *, name: str) -> tf.Tensor:
        """``S3Conv1×1 (stride) → BN``: the paper quantizes the downsampling convs too."""
        return batch_norm(f"{name}_bn")(self._conv(filters, 1, strides, f"{name}_conv")(x))

    def after_add(self, x: tf.Tensor, *, name: str) -> tf.Tensor:
        return tf.keras.layers.ReLU(name=f"{name}_relu")(x)


_RESNET_DOC = """S3 ResNet-{depth} (papers.md §4.1): shift weights in every block conv, float activations.

    Args:
        input_shape: ``(H, W, C)``; 224×224×3 with 1000 classes is the published model.
        num_classes: number of logits of the float classifier.
        bits: 3 (weights in ``{{0, ±1, ±2, ±4}}``, the paper's) or 2 (``{{-1, 0, 1}}``).
        width: channel multiplier (channels rounded to multiples of 8).
        stem: ``"imagenet"`` (7×7 stride-2 conv, BN, ReLU, max-pool) or ``"small"`` (3×3
            stride-1 conv, BN, ReLU; for 28×28 / 32×32 inputs).
        density_regularization: dense-weight prior coefficient on every S3 layer (paper: 1e-5).

    Returns:
        An uncompiled ``tf.keras.Model`` that outputs logits; export it with
        ``tflbnn.shift.to_inference_model``.

    Raises:
        ValueError: for invalid options.
    """


def _register_resnet(depth: int) -> ModelBuilder:
    name = f"s3_resnet{depth}"

    def builder(
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        bits: int = 3,
        width: float = 1.0,
        stem: str = "imagenet",
        density_regularization: float = 1e-5,
    ) -> tf.keras.Model:
        family = S3Family(bits=bits, density_regularization=density_regularization,
                          model_name=name)
        return build_resnet(family, depth=depth, input_shape=input_shape,
                            num_classes=num_classes, width=width, stem=stem, model_name=name)

    return register_variant(builder, name, _RESNET_DOC.format(depth=depth))


s3_resnet18 = _register_resnet(18)
s3_resnet50 = _register_resnet(50)
