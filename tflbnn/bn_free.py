"""BN-free binary networks ("BNN − BN = ?", papers.md §8): NF-Net pieces for ReActNet blocks.

Every BatchNormalization of ReActNet is removed and replaced by three NF-Net devices:

* **Scaled weight standardisation** of every convolution (float stem, float and binary block
  convolutions): ``Ŵ = g ⊙ γ (W − μ) / ((σ + ε) √N)`` per output channel, ``N`` the fan-in.
  ``"scaled_ws"`` is the float kernel quantizer, ``"scaled_ws_sign"`` the binary one
  (standardise, then ReActNet's ``α·sign`` with the STE through ``clip(Ŵ, −1, 1)``), and
  ``ScaledWSConv2D`` the convolution that owns the gain ``g`` and applies it after the
  quantizer (after binarisation for binary kernels).
* **Signal-propagation scaling** of the residual branches, ``x + α·f(x·β)`` with fixed
  ``α = 0.2`` and ``β = 1/√(expected variance)``: ``FixedScale`` layers, the β of every block
  from ``signal_propagation_betas``.
* **Adaptive gradient clipping** in the optimizer: ``tflbnn.training.AdaptiveGradientClipping``.

``bn_free_reactnet_block`` is the ReActNet-A block built from these pieces; ``reactnet_a``
takes ``bn_free=True`` to use it. The LCE converter sees through all of it: the standardised,
binarised and gain-scaled kernel is a constant expression of the stored kernel, folded into a
``±scale`` filter per output channel (``lq.math.sign`` multiply form, as
``ReActNetWeightSign``), and the fixed scales are multiplications it fuses or keeps as float
``MUL`` ops around the ``LceBconv2d``.
"""

from __future__ import annotations

from typing import Sequence

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.blocks import check_precision, quiet_weight_clip_warning, sign_or_shift
from tflbnn.layers import RPReLU
from tflbnn.quantizers import ReActNetWeightSign

__all__ = [
    "NF_ALPHA",
    "WS_EPSILON",
    "scaled_weight_standardization",
    "ScaledWeightStandardization",
    "ScaledWeightStandardizationSign",
    "ScaledWSConv2D",
    "FixedScale",
    "signal_propagation_betas",
    "ws_conv",
    "bn_free_reactnet_block",
]

#: The residual branch scale α of the reference code (``alpha=0.2``).
NF_ALPHA = 0.2

#: ε of the standardisation, added to the standard deviation (reference ``eps=1e-5``).
WS_EPSILON = 1e-5


def scaled_weight_standardization(kernel: tf.Tensor, gamma: float = 1.0,
                                  epsilon: float = WS_EPSILON) -> tf.Tensor:
    """``γ (W − μ) / ((σ + ε) √N)`` per output channel of a Keras kernel (output axis last).

    ``μ`` and ``σ`` (population standard deviation) are taken over every axis but the last,
    ``N`` is the number of weights per output channel (the fan-in ``k·k·C_in`` of a
    convolution). The result is differentiable in ``W``, as the reference
    ``ScaledStdConv2d``.

    Args:
        kernel: a kernel of rank >= 2, e.g. ``(kh, kw, C_in, C_out)``.
        gamma: the NF-Net γ (1.0 in the paper's code).
        epsilon: added to σ.

    Returns:
        The standardised kernel, same shape.

    Raises:
        ValueError: for a kernel of rank < 2.
    """
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape.rank is None or kernel.shape.rank < 2:
        raise ValueError(f"scaled weight standardisation needs a kernel of rank >= 2 with the "
                         f"output channels last, got shape {kernel.shape}")
    axes = list(range(kernel.shape.rank - 1))
    fan_in = 1
    for dim in kernel.shape[:-1]:
        fan_in *= int(dim)
    mean, variance = tf.nn.moments(kernel, axes=axes, keepdims=True)
    scale = gamma / (fan_in ** 0.5)
    return scale * (kernel - mean) / (tf.sqrt(variance) + epsilon)


@lq.utils.register_alias("scaled_ws")
@lq.utils.register_keras_custom_object
class ScaledWeightStandardization(lq.quantizers.Quantizer):
    """Float kernel "quantizer": NF-Net scaled weight standardisation, no binarisation.

    Usable by name (``kernel_quantizer="scaled_ws"``); see ``scaled_weight_standardization``.
    It declares no precision, so profiling and the converters treat the kernel as float.

    Args:
        gamma: the NF-Net γ.
        epsilon: added to the standard deviation.
    """

    def __init__(self, gamma: float = 1.0, epsilon: float = WS_EPSILON, **kwargs):
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        super().__init__(**kwargs)

    def call(self, inputs):
        return scaled_weight_standardization(inputs, self.gamma, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "epsilon": self.epsilon}


@lq.utils.register_alias("scaled_ws_sign")
@lq.utils.register_keras_custom_object
class ScaledWeightStandardizationSign(ReActNetWeightSign):
    """Binary kernel quantizer of the BN-free BNN: standardise, then ReActNet's ``α·sign``.

    Forward: ``α·sign(Ŵ)`` with ``Ŵ`` the scaled standardisation of ``W``
    (``scaled_weight_standardization``) and ``α = mean(|Ŵ|)`` per output channel, treated as a
    constant. Backward: the straight-through estimator through ``clip(Ŵ, −1, 1)`` and on
    through the standardisation, as the reference ``HardBinaryScaledStdConv2d``. Precision 1:
    a binary kernel for profiling, Bop and the LCE converter.

    Usable by name: ``kernel_quantizer="scaled_ws_sign"``.

    Args:
        gamma: the NF-Net γ.
        epsilon: added to the standard deviation.
        clip_value: standardised weights with ``|Ŵ| > clip_value`` get zero gradient.
    """

    def __init__(self, gamma: float = 1.0, epsilon: float = WS_EPSILON,
                 clip_value: float = 1.0, **kwargs):
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        super().__init__(clip_value=clip_value, **kwargs)

    def call(self, inputs):
        return super().call(scaled_weight_standardization(inputs, self.gamma, self.epsilon))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "epsilon": self.epsilon}


@lq.utils.register_keras_custom_object
class ScaledWSConv2D(lq.layers.QuantConv2D):
    """A convolution with scaled weight standardisation and a learnable gain per output channel.

    The kernel goes through ``"scaled_ws"`` (float) or ``"scaled_ws_sign"`` (``binary_weights``)
    and is then multiplied by the gain ``g`` (initialised at 1), so a binary kernel is
    ``g ⊙ α·sign(Ŵ)``: still ``±scale`` per output channel, which the LCE converter folds into
    an ``LceBconv2d`` filter and multiplier. The float and binary forms have the same weights
    (``kernel`` and ``gain``), so weights transfer between the precisions of a model.

    The gain has the shape ``(1, 1, 1, filters)``, the layout of the kernel's output axis, so
    that adaptive gradient clipping treats each gain as its own unit, as the reference code
    (whose gain is ``(C_out, 1, 1, 1)``) does.

    Args:
        filters: output channels.
        kernel_size: kernel size.
        binary_weights: binarise the standardised kernel (step 2 of the two-step recipe).
        gamma: the NF-Net γ of the standardisation.
        epsilon: added to the standard deviation of the standardisation.
        **kwargs: ``QuantConv2D`` arguments (``strides``, ``padding``, ``pad_values``,
            ``input_quantizer``, ...); the kernel quantizer is fixed by the layer.

    Raises:
        ValueError: when a ``kernel_quantizer`` is passed.
    """

    def __init__(self, filters: int, kernel_size, *, binary_weights: bool = False,
                 gamma: float = 1.0, epsilon: float = WS_EPSILON, **kwargs):
        if kwargs.pop("kernel_quantizer", None) is not None:
            raise ValueError("ScaledWSConv2D: the kernel quantizer is fixed by the layer "
                             "(binary kernels are chosen with binary_weights)")
        self.binary_weights = bool(binary_weights)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        quantizer_class = (ScaledWeightStandardizationSign if self.binary_weights
                           else ScaledWeightStandardization)
        with quiet_weight_clip_warning():
            super().__init__(filters, kernel_size,
                             kernel_quantizer=quantizer_class(gamma=gamma, epsilon=epsilon),
                             **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.gain = self.add_weight(name="gain", shape=(1, 1, 1, self.filters),
                                    initializer="ones")

    def convolution_op(self, inputs, kernel):
        # `kernel` is read inside larq's quantized scope: already standardised (and binarised).
        return super().convolution_op(inputs, kernel * self.gain)

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_quantizer", None)
        return {**config, "binary_weights": self.binary_weights, "gamma": self.gamma,
                "epsilon": self.epsilon}


@lq.utils.register_keras_custom_object
class FixedScale(tf.keras.layers.Layer):
    """Multiplies by a fixed (not trained) number: the α and β of signal-propagation scaling.

    Args:
        scale: the factor.
    """

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return inputs * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def signal_propagation_betas(strides: Sequence[int],
                             alpha: float = NF_ALPHA) -> list[tuple[float, float]]:
    """The ``(β1, β2)`` of each ReActNet block, bookkept as the reference code does.

    The expected variance starts at 1 after the stem and grows by ``α²`` at every residual add;
    ``β = 1/√variance`` is taken before each of a block's two sub-branches (β1 for the 3×3,
    β2 for the 1×1). After a transition (stride-2) block the variance is reset to 1, so the
    next block starts again from ``β1 = 1`` (the transition block itself still uses the
    accumulated values, as ``models/Qaw_reactnet_A_bf.py`` of VITA-Group/BNN_NoBN).

    Args:
        strides: the stride (1 or 2) of every block, in order.
        alpha: the residual branch scale.

    Returns:
        One ``(beta1, beta2)`` per block.

    Raises:
        ValueError: for a stride other than 1 or 2, or a non-positive ``alpha``.
    """
    if not alpha > 0:
        raise ValueError(f"signal propagation: alpha must be positive, got {alpha!r}")
    variance = 1.0
    beta1 = variance ** -0.5
    variance += alpha ** 2
    beta2 = variance ** -0.5
    betas = []
    for index, stride in enumerate(strides):
        if stride not in (1, 2):
            raise ValueError(f"signal propagation: block {index} has stride {stride!r}; "
                             "strides must be 1 or 2")
        betas.append((beta1, beta2))
        if stride == 2:
            variance = 1.0
            beta1 = variance ** -0.5
        else:
            variance += alpha ** 2
            beta1 = variance ** -0.5
        variance += alpha ** 2
        beta2 = variance ** -0.5
    return betas


def ws_conv(filters: int, kernel_size: int, *, strides: int = 1, binary_weights: bool = False,
            pad_values: float = 0.0, name: str) -> ScaledWSConv2D:
    """A bias-free, "same"-padded ``ScaledWSConv2D``.

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        binary_weights: binary kernel (``"scaled_ws_sign"``) instead of the float one.
        pad_values: padding value; 1.0 ("same-one") for ±1 inputs converts to ``LceBconv2d``
            on every LCE target (see ``tflbnn.blocks.binary_conv``), 0.0 for float inputs.
        name: layer name.

    Returns:
        The (unbuilt) layer.
    """
    return ScaledWSConv2D(filters, kernel_size, strides=strides, padding="same",
                          pad_values=pad_values, use_bias=False, binary_weights=binary_weights,
                          name=name)


def bn_free_reactnet_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    beta1: float = 1.0,
    beta2: float = 1.0,
    alpha: float = NF_ALPHA,
    pad_values: float = 1.0,
    name: str,
) -> tf.Tensor:
    """The BN-free ReActNet-A block (papers.md §8), normal or reduction form.

    ``y = shortcut + α·conv3x3(RSign(x·β1))`` with ``shortcut = x`` (stride 1) or
    ``AvgPool(x·β1)`` (stride 2), ``y = RPReLU(y)``; then
    ``out = y + α·conv1x1(RSign(y·β2))``, with the 1×1 part duplicated and concatenated in the
    reduction form (``out_channels == 2·C``), and ``RPReLU(out)``. Every convolution is a
    ``ScaledWSConv2D``; there is no BatchNormalization.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: ``C`` (normal block) or ``2·C`` (reduction block).
        stride: 1 or 2.
        precision: one of ``tflbnn.blocks.PRECISIONS``. The float twin has a learnable shift
            instead of the sign, zero padding and the float standardised kernel; step 1
            (``"binary_activations"``) the sign and the float standardised kernel.
        beta1: input scale of the 3×3 sub-branch (``signal_propagation_betas``).
        beta2: input scale of the 1×1 sub-branch.
        alpha: output scale of both sub-branches.
        pad_values: padding value of the binary 3×3 conv, see ``tflbnn.blocks.binary_conv``.
        name: prefix for the layer names.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unsupported channel ratio, stride or precision, or non-positive
            scales.
    """
    in_channels = int(x.shape[-1])
    if out_channels not in (in_channels, 2 * in_channels):
        raise ValueError(f"{name}: out_channels must be {in_channels} or {2 * in_channels} for "
                         f"an input with {in_channels} channels, got {out_channels}")
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")
    for option, value in (("alpha", alpha), ("beta1", beta1), ("beta2", beta2)):
        if not value > 0:
            raise ValueError(f"{name}: {option} must be positive, got {value!r}")
    check_precision(precision, name)
    binary_weights = precision == "binary"
    if precision == "float":
        pad_values = 0.0

    scaled = FixedScale(beta1, name=f"{name}_beta_3x3")(x)
    y = sign_or_shift(precision, f"{name}_rsign_3x3")(scaled)
    y = ws_conv(in_channels, 3, strides=stride, binary_weights=binary_weights,
                pad_values=pad_values, name=f"{name}_bconv_3x3")(y)
    y = FixedScale(alpha, name=f"{name}_alpha_3x3")(y)
    shortcut = x
    if stride == 2:
        # The reference pools the scaled input: x = pooling(x_in) with x_in = x·β1.
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool")(scaled)
    y = tf.keras.layers.Add(name=f"{name}_add_3x3")([shortcut, y])
    y = RPReLU(name=f"{name}_rprelu_3x3")(y)

    z = FixedScale(beta2, name=f"{name}_beta_1x1")(y)
    z = sign_or_shift(precision, f"{name}_rsign_1x1")(z)
    copies = out_channels // in_channels
    branches = []
    for copy in range(copies):
        suffix = "" if copies == 1 else f"_{copy + 1}"
        branch = ws_conv(in_channels, 1, binary_weights=binary_weights, pad_values=pad_values,
                         name=f"{name}_bconv_1x1{suffix}")(z)
        branch = FixedScale(alpha, name=f"{name}_alpha_1x1{suffix}")(branch)
        branches.append(tf.keras.layers.Add(name=f"{name}_add_1x1{suffix}")([y, branch]))
    out = branches[0]
    if copies > 1:
        out = tf.keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return RPReLU(name=f"{name}_rprelu_1x1")(out)
