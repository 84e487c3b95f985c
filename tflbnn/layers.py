"""ReActNet layers: learnable per-channel shifts, RSign and RPReLU.

All layers act on the last (channel) axis and are registered Keras objects with ``get_config``.
"""

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.quantizers import approx_sign_with_threshold

__all__ = ["LearnableBias", "RSign", "RPReLU"]


def channel_count(input_shape, layer_name: str) -> int:
    """The size of the last (channel) axis of ``input_shape``.

    Raises:
        ValueError: naming ``layer_name`` if that size is unknown.
    """
    channels = tf.TensorShape(input_shape)[-1]
    if channels is None:
        raise ValueError(f"{layer_name}: the channel (last) axis must be known, got {input_shape}")
    return int(channels)


@lq.utils.register_keras_custom_object
class LearnableBias(tf.keras.layers.Layer):
    """Adds a learnable per-channel bias (ReActNet's ``LearnableBias``), initialised at 0."""

    def build(self, input_shape):
        channels = channel_count(input_shape, self.name)
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.bias


@lq.utils.register_keras_custom_object
class RSign(tf.keras.layers.Layer):
    r"""ReAct-Sign: binary activation with a learnable per-channel threshold.

    ``y = +1 if x + b >= 0 else -1`` with ``b = -threshold`` learnable per channel (initialised
    at 0). The gradient to ``x`` and ``b`` is ApproxSign's ``2 - 2|x + b|`` on ``|x + b| < 1``.

    The output is exactly ±1 and written as ``tf.where``, which the LCE converter turns into
    ``LceQuantize`` for the following ``QuantConv2D``.
    """

    #: Output precision in bits, read by ``tflbnn.models.profile`` to count binary MACs.
    precision = 1

    def build(self, input_shape):
        channels = channel_count(input_shape, self.name)
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        return approx_sign_with_threshold(inputs + self.bias)


@lq.utils.register_keras_custom_object
class RPReLU(tf.keras.layers.Layer):
    r"""ReAct-PReLU: ``y = PReLU_beta(x - gamma) + zeta`` with per-channel gamma, beta, zeta.

    ``f(x) = x - gamma + zeta`` if ``x > gamma`` else ``beta * (x - gamma) + zeta``; the
    gradient to ``x`` is 1 above ``gamma`` and ``beta`` at and below it, as for PyTorch's PReLU
    and the ReActNet paper (Liu et al., 2020), whose branch ``x <= gamma`` holds the kink.

    Args:
        slope_initializer: initial negative slope beta. The papers use PyTorch's PReLU default,
            0.25 (Keras' own PReLU starts at 0, a common porting bug).
    """

    def __init__(self, slope_initializer: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.slope_initializer = float(slope_initializer)

    def build(self, input_shape):
        channels = channel_count(input_shape, self.name)
        self.shift_in = self.add_weight(name="shift_in", shape=(channels,), initializer="zeros")
        self.slope = self.add_weight(
            name="slope",
            shape=(channels,),
            initializer=tf.keras.initializers.Constant(self.slope_initializer),
        )
        self.shift_out = self.add_weight(name="shift_out", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        shifted = inputs + self.shift_in
        # relu's gradient at 0 is 0 and minimum's (at a tie) goes to `shifted`, so the kink takes
        # the slope alone (beta); maximum + minimum would give both ties 1, i.e. 1 + beta. The
        # values are max(s, 0) + beta * min(s, 0), which converters.n2uq_int8 reproduces.
        activated = tf.nn.relu(shifted) + self.slope * tf.minimum(shifted, 0.0)
        return activated + self.shift_out

    def get_config(self):
        return {**super().get_config(), "slope_initializer": self.slope_initializer}
