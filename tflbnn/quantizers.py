"""Quantizers for binary networks, usable by string name in Larq layers.

Each quantizer is a ``larq.quantizers.Quantizer`` registered with Keras, so
``larq.layers.QuantConv2D(kernel_quantizer="reactnet_weight_sign")`` works and models that use
it survive ``model.save`` / ``tf.keras.models.load_model``.
"""

from tflbnn import _backend  # noqa: F401  (selects Keras 2 before TensorFlow is used)

import larq as lq
import tensorflow as tf

__all__ = ["ReActNetWeightSign", "approx_sign_with_threshold", "binary_sign"]


def binary_sign(x: tf.Tensor) -> tf.Tensor:
    """Return +1 where ``x >= 0`` and -1 elsewhere, with no gradient defined.

    Written as ``tf.where(x >= 0, 1, -1)``, the form the LCE converter rewrites into
    ``LceQuantize`` (see lce.md §2.2). ``sign(0) = +1``, as in ``larq.math.sign``.
    """
    x = tf.convert_to_tensor(x)
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


@tf.custom_gradient
def approx_sign_with_threshold(x: tf.Tensor):
    """Sign with the ApproxSign (Bi-Real / ReActNet) gradient ``2 - 2|x|`` on ``|x| < 1``.

    Forward: ``+1`` for ``x >= 0``, ``-1`` otherwise. Backward: ``dy * max(0, 2 - 2|x|)``,
    the derivative of the piecewise polynomial F of ReActNet's binary activation.
    """

    def grad(dy):
        return dy * tf.maximum(0.0, 2.0 - 2.0 * tf.abs(x))

    return binary_sign(x), grad


@lq.utils.register_alias("reactnet_weight_sign")
@lq.utils.register_keras_custom_object
class ReActNetWeightSign(lq.quantizers.Quantizer):
    r"""ReActNet's binary weight quantizer (``HardBinaryConv``).

    Forward: ``alpha * sign(W)`` with ``alpha = mean(|W|)`` per output channel (the last
    kernel axis), treated as a constant. Backward: the straight-through estimator through
    ``clip(W, -1, 1)``, i.e. ``dL/dW = dL/dWq * 1{|W| <= 1}``. Unlike larq's
    ``MagnitudeAwareSign`` the gradient is *not* multiplied by ``alpha``.

    Usable by name: ``kernel_quantizer="reactnet_weight_sign"``.

    Args:
        clip_value: weights with ``|W| > clip_value`` get zero gradient.
    """

    precision = 1

    def __init__(self, clip_value: float = 1.0, **kwargs):
        self.clip_value = float(clip_value)
        super().__init__(**kwargs)

    def call(self, inputs):
        reduce_axes = list(range(len(inputs.shape) - 1))
        alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(inputs), axis=reduce_axes))
        clipped = tf.clip_by_value(inputs, -self.clip_value, self.clip_value)
        binary = alpha * binary_sign(inputs)
        # Value of `binary`, gradient of `clipped`: the STE through clip without the alpha factor.
        return clipped + tf.stop_gradient(binary - clipped)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}
