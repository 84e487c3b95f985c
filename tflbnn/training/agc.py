"""Adaptive gradient clipping (NF-Nets; the BN-free BNN's, papers.md §8) as a gradient transformer.

For every unit ``i`` of a weight ``W`` (an output channel of a convolution kernel; a whole 1-D
weight such as a bias or PReLU slope):

    if ‖G_i‖ / max(‖W_i‖, ε) > λ :   G_i ← λ · max(‖W_i‖, ε) · G_i / ‖G_i‖

with λ the clip factor (0.02 in the paper's scripts) and ε = 1e-3. The classifier is not
clipped (the reference skips parameters named ``fc``).

``AdaptiveGradientClipping`` is a callable on ``(gradient, variable)`` pairs, the form of the
``gradient_transformers`` argument of Keras' legacy optimizers
(``tf.keras.optimizers.legacy.Adam(..., gradient_transformers=[agc])``): their
``apply_gradients`` runs the transformers after aggregation and before the update, so the
clipping happens in plain ``model.fit``, in ``Distiller`` (which calls ``apply_gradients``) and
inside a ``larq.optimizers.CaseOptimizer`` (whose sub-optimizers' ``apply_gradients`` run their
own transformers). ``tflbnn.training.agc_adam_optimizer`` builds the Adam.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

__all__ = ["AdaptiveGradientClipping", "unitwise_norm", "adaptive_clip", "classifier_layer",
           "AGC_CLIP_FACTOR", "AGC_EPSILON"]

#: λ of the BN-free BNN's scripts (``--clip_value 0.02``).
AGC_CLIP_FACTOR = 0.02

#: ε of the reference ``adaptive_clip_grad`` (the floor of the weight norm).
AGC_EPSILON = 1e-3

# The reference divides by max(‖G_i‖, 1e-6) so that a zero gradient stays zero.
_MIN_GRADIENT_NORM = 1e-6


def unitwise_norm(x: tf.Tensor) -> tf.Tensor:
    """The L2 norm of each output unit of ``x``, broadcastable to ``x``.

    Keras puts the output axis last (``(kh, kw, C_in, C_out)`` kernels, ``(in, out)`` dense
    kernels): the norm runs over every other axis. A scalar or 1-D weight is one unit.

    Args:
        x: a weight or gradient tensor.

    Returns:
        Norms with ``x``'s rank (size 1 on the reduced axes).
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank <= 1:
        return tf.norm(x)
    axes = list(range(x.shape.rank - 1))
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=axes, keepdims=True))


def adaptive_clip(gradient: tf.Tensor, weight: tf.Tensor, clip_factor: float = AGC_CLIP_FACTOR,
                  epsilon: float = AGC_EPSILON) -> tf.Tensor:
    """Clip ``gradient`` unit-wise to at most ``clip_factor · max(‖W_i‖, ε)`` (module docstring).

    Args:
        gradient: the gradient of ``weight``.
        weight: the weight's current value.
        clip_factor: λ.
        epsilon: ε, the floor of the weight norm.

    Returns:
        The clipped gradient.
    """
    gradient = tf.convert_to_tensor(gradient)
    weight = tf.cast(weight, gradient.dtype)
    max_norm = clip_factor * tf.maximum(unitwise_norm(weight), epsilon)
    gradient_norm = unitwise_norm(gradient)
    clipped = gradient * (max_norm / tf.maximum(gradient_norm, _MIN_GRADIENT_NORM))
    return tf.where(gradient_norm > max_norm, clipped, gradient)


def classifier_layer(model: tf.keras.Model) -> tf.keras.layers.Layer:
    """The layer producing ``model``'s single output, which must have weights (the classifier).

    Raises:
        ValueError: for a model with several outputs or whose output layer has no weights.
    """
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs; name the "
                         "classifier layers to leave unclipped with exclude=")
    layer = model.outputs[0].node.layer
    if not layer.trainable_weights:
        raise ValueError(f"model {model.name!r}: the output layer {layer.name!r} has no "
                         "weights; name the classifier layers to leave unclipped with exclude=")
    return layer


class AdaptiveGradientClipping:
    """A gradient transformer clipping every weight of ``model`` but its classifier (AGC).

    Args:
        model: the model being trained (built).
        clip_factor: λ (the paper's 0.02).
        epsilon: ε (1e-3).
        exclude: names of the layers whose weights are not clipped; ``None`` excludes the
            classifier, the layer producing the model's output (``classifier_layer``).

    Raises:
        ValueError: for a non-positive λ or ε, or an excluded layer ``model`` does not have.
    """

    def __init__(self, model: tf.keras.Model, clip_factor: float = AGC_CLIP_FACTOR,
                 epsilon: float = AGC_EPSILON, exclude: Sequence[str] | None = None):
        if not clip_factor > 0:
            raise ValueError(f"adaptive gradient clipping: clip_factor must be positive, got "
                             f"{clip_factor!r}")
        if not epsilon > 0:
            raise ValueError(f"adaptive gradient clipping: epsilon must be positive, got "
                             f"{epsilon!r}")
        self.clip_factor = float(clip_factor)
        self.epsilon = float(epsilon)
        if exclude is None:
            excluded_layers = [classifier_layer(model)]
        else:
            names = {layer.name: layer for layer in model.layers}
            missing = sorted(set(exclude) - set(names))
            if missing:
                raise ValueError(f"adaptive gradient clipping: model {model.name!r} has no "
                                 f"layer(s) {missing} to exclude")
            excluded_layers = [names[name] for name in exclude]
        self.excluded = tuple(layer.name for layer in excluded_layers)
        self._excluded_refs = {weight.ref() for layer in excluded_layers
                               for weight in layer.weights}

    def is_clipped(self, variable: tf.Variable) -> bool:
        """Whether ``variable``'s gradient is clipped (it is not a classifier weight)."""
        return variable.ref() not in self._excluded_refs

    def __call__(self, grads_and_vars: Iterable[tuple[tf.Tensor | None, tf.Variable]]
                 ) -> list[tuple[tf.Tensor | None, tf.Variable]]:
        transformed = []
        for gradient, variable in grads_and_vars:
            if gradient is not None and self.is_clipped(variable):
                # Clip against the stored (latent) weight, as the reference's `p.data`; a larq
                # QuantizedVariable read here would be the latent value too, but say so.
                weight = getattr(variable, "latent_variable", variable)
                gradient = adaptive_clip(gradient, tf.convert_to_tensor(weight),
                                         self.clip_factor, self.epsilon)
            transformed.append((gradient, variable))
        return transformed
