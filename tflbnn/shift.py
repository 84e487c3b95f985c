"""Shift (power-of-two) weights: S3 sign-sparse-shift layers and the DeepShift-Q quantizer.

S3 (Li et al., NeurIPS 2021; papers.md §4.1) trains each kernel entry through binary latents:

    b01(z) = 1{z > 0},  sgn(z) = +1 if z >= 0 else -1   (both with identity gradients)
    p = b01(W_s1) * (b01(W_s2) + 1)                     in {0, 1, 2}
    W = sgn(W_sign) * b01(W_sparse) * 2**p               in {0, ±1, ±2, ±4}    (3 bits)
    W = sgn(W_sign) * b01(W_sparse)                      in {-1, 0, 1}         (2 bits)

``S3Conv2D`` and ``S3Dense`` hold only the latents (and the bias); their forward kernel is
``quantized_kernel``. Activations stay float: this is a weight-only shift network.
``to_inference_model`` replaces them by plain ``Conv2D`` / ``Dense`` layers whose kernel is the
value-set tensor, so the exported model carries no latents.

``DeepShiftQ`` (papers.md §4.3, registered as ``"deepshift_q"``) is the baseline: it rounds one
float latent to ``sign(W) * 2**round(log2|W|)``.
"""

from tflbnn import _backend  # noqa: F401  (selects Keras 2 before TensorFlow is used)

import math
from typing import Optional

import larq as lq
import tensorflow as tf

from tflbnn.quantizers import binary_sign

__all__ = [
    "DeepShiftQ",
    "S3_BITS",
    "S3Conv2D",
    "S3Dense",
    "S3DensityRegularizer",
    "s3_weight",
    "to_inference_model",
]

#: Bit widths of the S3 reparametrisation: 2 (ternary) and 3 (ternary times 2**{0,1,2}).
S3_BITS = (2, 3)

_LATENT_NAMES = ("latent_sign", "latent_sparse", "latent_shift1", "latent_shift2")

# Arguments of the float parents that describe a float kernel, which S3 layers do not have.
_KERNEL_ARGUMENTS = ("kernel_initializer", "kernel_regularizer", "kernel_constraint")


@tf.custom_gradient
def _straight_through(latent: tf.Tensor, forward: tf.Tensor):
    """Return ``forward`` exactly, passing the incoming gradient unchanged to ``latent``.

    A custom gradient rather than ``latent + stop_gradient(forward - latent)``: that sum is
    rounded in float and can miss the value set (e.g. a latent of 3e7 binarised to 1).
    """

    def grad(upstream):
        return upstream, None

    return tf.identity(forward), grad


def _binary01(latent: tf.Tensor) -> tf.Tensor:
    """``1{z > 0}`` (so ``b01(0) = 0``) with an identity straight-through gradient."""
    return _straight_through(latent, tf.cast(latent > 0, latent.dtype))


def _sign(latent: tf.Tensor) -> tf.Tensor:
    """``+1`` where ``z >= 0`` else ``-1`` (so ``sgn(0) = +1``), identity gradient."""
    return _straight_through(latent, binary_sign(latent))


def s3_weight(
    sign: tf.Tensor,
    sparse: tf.Tensor,
    shift1: Optional[tf.Tensor] = None,
    shift2: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Compute the S3 weight from its latents, differentiably (papers.md §4.1).

    With both shift latents: ``sgn(sign) * b01(sparse) * 2**(b01(shift1) * (b01(shift2) + 1))``,
    values in ``{0, ±1, ±2, ±4}``. Without them: ``sgn(sign) * b01(sparse)`` in ``{-1, 0, 1}``.
    The binarisers pass gradients straight through; ``2**p`` is differentiated exactly
    (``2**p * ln 2``) and the products by the chain rule.

    Args:
        sign: latent of the sign, any float shape.
        sparse: latent deciding zero (``<= 0``) or non-zero, same shape.
        shift1: first shift latent (3 bits), same shape, or ``None`` for 2 bits.
        shift2: second shift latent (3 bits), same shape, or ``None`` for 2 bits.

    Returns:
        The weight tensor, same shape and dtype as ``sign``. Zeros with a negative sign latent
        are ``-0.0``, which compares (and converts to integers) as 0.

    Raises:
        ValueError: when only one of ``shift1`` and ``shift2`` is given.
    """
    if (shift1 is None) != (shift2 is None):
        raise ValueError("s3_weight: give both shift latents (3 bits) or neither (2 bits)")
    ternary = _sign(sign) * _binary01(sparse)
    if shift1 is None:
        return ternary
    exponent = _binary01(shift1) * (_binary01(shift2) + 1.0)
    # tf.pow is exact for the small integer exponents 0, 1, 2, and its gradient with respect to
    # the exponent is 2**p * ln 2, the paper's backward.
    return ternary * tf.pow(tf.constant(2.0, exponent.dtype), exponent)


@lq.utils.register_keras_custom_object
class S3DensityRegularizer(tf.keras.regularizers.Regularizer):
    """S3's dense-weight prior ``coefficient * ||max(-W_sparse, 0)||_1``.

    It pushes the sparse latent positive, i.e. away from zero weights. The gradient is
    ``-coefficient`` where the latent is negative and 0 elsewhere (0 at exactly 0, as ReLU's).

    Args:
        coefficient: non-negative weight of the penalty (the paper's ``--rs``, 1e-5).

    Raises:
        ValueError: for a negative coefficient.
    """

    def __init__(self, coefficient: float = 1e-5):
        self.coefficient = _check_coefficient(coefficient)

    def __call__(self, sparse_latent: tf.Tensor) -> tf.Tensor:
        return self.coefficient * tf.reduce_sum(tf.nn.relu(-sparse_latent))

    def get_config(self) -> dict:
        return {"coefficient": self.coefficient}


def _check_coefficient(coefficient: float) -> float:
    coefficient = float(coefficient)
    if not coefficient >= 0.0:  # also rejects NaN
        raise ValueError(f"density regularisation must be >= 0, got {coefficient}")
    return coefficient


def _check_bits(bits: int, owner: str) -> int:
    if bits not in S3_BITS:
        raise ValueError(f"{owner}: bits must be one of {S3_BITS}, got {bits!r}")
    return int(bits)


def _reject_kernel_arguments(kwargs: dict, owner: str) -> None:
    # The float parent classes accept these and would silently ignore them here: the kernel is
    # computed from latents, which always get the paper's initialisation.
    given = [key for key in _KERNEL_ARGUMENTS if key in kwargs]
    if given:
        raise ValueError(f"{owner} has no float kernel; remove {given}")


def _he_fan_out() -> tf.keras.initializers.Initializer:
    """N(0, sqrt(2 / n)) with n = kh * kw * out_channels (a Dense kernel: n = units).

    A new instance per latent: Keras warns about, and may repeat values from, one unseeded
    initializer called several times.
    """
    return tf.keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _add_latents(layer: tf.keras.layers.Layer, shape, bits: int, coefficient: float) -> None:
    """Create the layer's latents ``latent_sign``, ``latent_sparse`` (+ shifts for 3 bits)."""
    names = _LATENT_NAMES if bits == 3 else _LATENT_NAMES[:2]
    for name in _LATENT_NAMES:
        setattr(layer, name, None)
    for name in names:
        regularizer = None
        if name == "latent_sparse" and coefficient > 0:
            regularizer = S3DensityRegularizer(coefficient)
        variable = layer.add_weight(
            name=name,
            shape=shape,
            initializer=_he_fan_out(),
            regularizer=regularizer,
            trainable=True,
            dtype=layer.dtype,
        )
        setattr(layer, name, variable)


def _add_bias(layer: tf.keras.layers.Layer, units: int) -> None:
    layer.bias = None
    if layer.use_bias:
        layer.bias = layer.add_weight(
            name="bias",
            shape=(units,),
            initializer=layer.bias_initializer,
            regularizer=layer.bias_regularizer,
            constraint=layer.bias_constraint,
            trainable=True,
            dtype=layer.dtype,
        )


class _ShiftKernel:
    """What S3Conv2D and S3Dense share: the kernel computed from the latents, and the config.

    Listed before the Keras base class, so ``super().get_config()`` is the base's.
    """

    @property
    def quantized_kernel(self) -> tf.Tensor:
        """The forward kernel from the latents, in the base layer's kernel shape."""
        return s3_weight(self.latent_sign, self.latent_sparse, self.latent_shift1,
                         self.latent_shift2)

    @property
    def kernel(self) -> tf.Tensor:
        # Conv2D.call and Dense.call read self.kernel; answering with the quantized kernel
        # reuses their convolution, groups, bias and activation code unchanged.
        return self.quantized_kernel

    def get_config(self) -> dict:
        config = {key: value for key, value in super().get_config().items()
                  if key not in _KERNEL_ARGUMENTS}
        return {**config, "bits": self.bits,
                "density_regularization": self.density_regularization}


@lq.utils.register_keras_custom_object
class S3Conv2D(_ShiftKernel, tf.keras.layers.Conv2D):
    """2-D convolution with S3 sign-sparse-shift weights (papers.md §4.1).

    Takes ``Conv2D``'s arguments except the ``kernel_*`` ones: there is no float kernel. The
    layer owns the latents ``latent_sign``, ``latent_sparse`` and, for 3 bits,
    ``latent_shift1`` and ``latent_shift2``, all of the kernel's shape and drawn from
    N(0, sqrt(2 / (kh * kw * filters))). ``quantized_kernel`` (also readable as ``kernel``, the
    name ``Conv2D.call`` uses) is the forward kernel. The bias and activations stay float.

    Args:
        filters: number of output channels.
        kernel_size: int or pair, the window size.
        bits: 3 for weights in ``{0, ±1, ±2, ±4}``, 2 for ``{-1, 0, 1}``.
        density_regularization: coefficient of ``S3DensityRegularizer`` on the sparse latent,
            added to ``layer.losses`` (and so to the ``model.fit`` loss); 0 disables it.
        **kwargs: the other ``tf.keras.layers.Conv2D`` arguments (strides, padding,
            dilation_rate, groups, activation, use_bias, bias_*, name, ...).

    Raises:
        ValueError: for bits outside ``S3_BITS``, a negative coefficient or a ``kernel_*``
            argument.
    """

    def __init__(self, filters: int, kernel_size, bits: int = 3,
                 density_regularization: float = 1e-5, **kwargs):
        _reject_kernel_arguments(kwargs, type(self).__name__)
        super().__init__(filters, kernel_size, **kwargs)
        self.bits = _check_bits(bits, type(self).__name__)
        self.density_regularization = _check_coefficient(density_regularization)

    def build(self, input_shape):
        # Conv.build without the float kernel (tf_keras base_conv.py).
        input_shape = tf.TensorShape(input_shape)
        input_channel = self._get_input_channel(input_shape)
        if input_channel % self.groups != 0:
            raise ValueError(
                f"{self.name}: {input_channel} input channels do not split into "
                f"{self.groups} groups"
            )
        # Validates the input shape (positive output sizes), as Conv.build does.
        self.compute_output_shape(input_shape)
        kernel_shape = self.kernel_size + (input_channel // self.groups, self.filters)
        _add_latents(self, kernel_shape, self.bits, self.density_regularization)
        _add_bias(self, self.filters)
        self.input_spec = tf.keras.layers.InputSpec(
            min_ndim=self.rank + 2, axes={self._get_channel_axis(): input_channel}
        )
        self.built = True


@lq.utils.register_keras_custom_object
class S3Dense(_ShiftKernel, tf.keras.layers.Dense):
    """Fully connected layer with S3 sign-sparse-shift weights (papers.md §4.1).

    The dense twin of ``S3Conv2D``: ``Dense``'s arguments except the ``kernel_*`` ones, latents
    of shape ``(input_dim, units)`` drawn from N(0, sqrt(2 / units)), forward kernel
    ``quantized_kernel`` (also ``kernel``). The paper keeps its classifier float; this layer is
    for experiments that quantise it too.

    Args:
        units: number of outputs.
        bits: 3 for weights in ``{0, ±1, ±2, ±4}``, 2 for ``{-1, 0, 1}``.
        density_regularization: coefficient of ``S3DensityRegularizer`` on the sparse latent;
            0 disables it.
        **kwargs: the other ``tf.keras.layers.Dense`` arguments (activation, use_bias, bias_*,
            name, ...).

    Raises:
        ValueError: for bits outside ``S3_BITS``, a negative coefficient, a ``kernel_*``
            argument, or (when built) an input whose last axis is unknown.
    """

    def __init__(self, units: int, bits: int = 3, density_regularization: float = 1e-5,
                 **kwargs):
        _reject_kernel_arguments(kwargs, type(self).__name__)
        super().__init__(units, **kwargs)
        self.bits = _check_bits(bits, type(self).__name__)
        self.density_regularization = _check_coefficient(density_regularization)

    def build(self, input_shape):
        # Dense.build without the float kernel (tf_keras dense.py).
        last_dim = tf.compat.dimension_value(tf.TensorShape(input_shape)[-1])
        if last_dim is None:
            raise ValueError(f"{self.name}: the last input axis must be known, got {input_shape}")
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=2, axes={-1: last_dim})
        _add_latents(self, (last_dim, self.units), self.bits, self.density_regularization)
        _add_bias(self, self.units)
        self.built = True


_FLOAT_TWINS = {S3Conv2D: tf.keras.layers.Conv2D, S3Dense: tf.keras.layers.Dense}


def _float_twin(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
    """An unbuilt Conv2D / Dense with the S3 layer's name and arguments (kernel_* defaults)."""
    config = layer.get_config()
    del config["bits"], config["density_regularization"]
    return _FLOAT_TWINS[type(layer)].from_config(config)


def _inference_weights(original: tf.keras.layers.Layer) -> list:
    if type(original) in _FLOAT_TWINS:
        kernel = original.quantized_kernel.numpy()
        return [kernel, original.bias.numpy()] if original.use_bias else [kernel]
    return original.get_weights()


def to_inference_model(model: tf.keras.Model) -> tf.keras.Model:
    """Return ``model`` with every ``S3Conv2D`` / ``S3Dense`` replaced by a float twin.

    Each S3 layer becomes a ``Conv2D`` / ``Dense`` of the same name and arguments whose kernel
    is the layer's ``quantized_kernel`` (values in the S3 value set), so the result has the
    weight count of the float architecture, no latents, and the same outputs. Other layers are
    copied with their weights; nested functional / sequential models are converted too. Built
    with ``tf.keras.models.clone_model``; the original model is not changed.

    Args:
        model: a built functional or sequential Keras model.

    Returns:
        The exported model, built, with weights set.

    Raises:
        ValueError: for an unbuilt model, a subclassed model (``clone_model`` cannot copy it),
            subclasses of the S3 layers, or S3 layers inside custom layers, which this function
            cannot reach.
    """
    if not model.built:
        raise ValueError(f"to_inference_model: build {model.name} first (call it on an input)")
    copied = []  # (original, clone) pairs whose weights are still to be set

    def clone_layer(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        if isinstance(layer, tf.keras.Model):
            return to_inference_model(layer)  # sets its own weights
        clone = _float_twin(layer) if type(layer) in _FLOAT_TWINS else \
            layer.__class__.from_config(layer.get_config())
        copied.append((layer, clone))
        return clone

    exported = tf.keras.models.clone_model(model, clone_function=clone_layer)
    for original, clone in copied:
        clone.set_weights(_inference_weights(original))
    # Subclasses of the S3 layers, and S3 layers owned by custom layers, were copied as they are.
    if any(isinstance(module, tuple(_FLOAT_TWINS)) for module in exported.submodules):
        raise ValueError("to_inference_model: only S3Conv2D / S3Dense layers of the model itself "
                         "or of nested models can be exported, not subclasses or S3 layers "
                         "inside custom layers")
    return exported


@lq.utils.register_alias("deepshift_q")
@lq.utils.register_keras_custom_object
class DeepShiftQ(lq.quantizers.Quantizer):
    r"""DeepShift-Q: round a float weight to a signed power of two (papers.md §4.3).

    Forward: ``|W|`` is clamped to ``[2**-(2**(bits-1) - 1), 1]``, then
    ``W_q = sign(W) * 2**round(log2|W|)`` (``round`` is half-to-even, as torch's). Backward:
    identity straight-through, through the clamp too. With the default 5 bits the exponents
    are ``-15 .. 0``: 4 bits of shift plus a sign bit.

    Exact zeros stay 0, as in the reference, whose ``clampabs`` leaves zeros untouched and whose
    ``torch.sign(0) = 0``. So 0 is a possible output besides the ``±2**e``.

    Usable by name: ``kernel_quantizer="deepshift_q"``.

    Args:
        bits: total weight bits including the sign, 2 to 7 (7 keeps ``2**-63`` a normal float32,
            which matters because TensorFlow flushes subnormals to zero on CPU).

    Raises:
        ValueError: for bits outside 2..7.
    """

    def __init__(self, bits: int = 5, **kwargs):
        if isinstance(bits, bool) or bits not in range(2, 8):
            raise ValueError(f"DeepShiftQ: bits must be an integer in 2..7, got {bits!r}")
        self.bits = int(bits)
        # Read by larq's model summary and tflbnn.profiling, as the class attribute of others.
        self.precision = self.bits
        super().__init__(**kwargs)

    @property
    def min_exponent(self) -> int:
        """The smallest shift exponent, ``-(2**(bits-1) - 1)``."""
        return -(2 ** (self.bits - 1) - 1)

    def call(self, inputs):
        magnitude = tf.clip_by_value(tf.abs(inputs), 2.0 ** self.min_exponent, 1.0)
        # log(x) / ln 2 as the reference computes it; exponents are integers, so 2**e is exact.
        exponent = tf.round(tf.math.log(magnitude) / math.log(2.0))
        shifted = tf.sign(inputs) * tf.pow(tf.constant(2.0, inputs.dtype), exponent)
        return _straight_through(inputs, shifted)

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits}
