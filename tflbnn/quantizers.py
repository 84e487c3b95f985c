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

    Written as ``tf.where(x >= 0, 1.0, -1.0)`` with scalar constants: the ``SelectV2`` form the
    LCE converter rewrites into ``LceQuantize`` (lce.md §2.2). Tensors built from ``x``'s shape
    (``ones_like``) would lower to ``FILL(SHAPE(x))`` under a dynamic batch and hide the pattern.
    ``sign(0) = +1``, as in ``larq.math.sign``.
    """
    x = tf.convert_to_tensor(x)
    return tf.where(x >= 0, tf.constant(1.0, x.dtype), tf.constant(-1.0, x.dtype))


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
        # larq.math.sign (sign(sign(W) + 0.1), so sign(0) = +1) rather than a select: the LCE
        # converter does not constant-fold a SelectV2 over kernels of 256x256x3x3 and more,
        # and the conv then stays float. The multiply-by-sign form folds at any size.
        binary = alpha * lq.math.sign(inputs)
        # Value of `binary`, gradient of `clipped`: the STE through clip without the alpha factor.
        return clipped + tf.stop_gradient(binary - clipped)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}
