"""Optimizers of the low-bit recipes: N2UQ's split learning rates and S3's SGD with cosine decay."""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.n2uq import n2uq_threshold_variables
from tflbnn.training.schedules import LinearEpochDecay

__all__ = ["n2uq_optimizer", "sgd_cosine_optimizer", "adam_linear_optimizer"]


def adam_linear_optimizer(learning_rate: float, epochs: int, steps_per_epoch: int, *,
                          lr_offset: int = 1) -> tf.keras.optimizers.Optimizer:
    """Adam with the papers' linear per-epoch decay (``LinearEpochDecay``).

    Args:
        learning_rate: initial learning rate.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        lr_offset: see ``LinearEpochDecay``.

    Returns:
        A ``tf.keras.optimizers.Adam``.
    """
    return tf.keras.optimizers.Adam(
        LinearEpochDecay(learning_rate, epochs, steps_per_epoch, offset=lr_offset))


def n2uq_optimizer(model: tf.keras.Model, learning_rate: float, epochs: int,
                   steps_per_epoch: int, *, quantizer_lr_factor: float = 0.1,
                   lr_offset: int = 1) -> tf.keras.optimizers.legacy.Optimizer:
    """N2UQ's optimizer (papers.md §3.5): Adam with linear decay, thresholds at a tenth of the rate.

    The thresholds and scales of every trainable N2UQ activation quantizer in ``model`` (see
    ``tflbnn.n2uq.n2uq_threshold_variables``) train with ``quantizer_lr_factor · learning_rate``,
    all other weights with ``learning_rate``; both decay linearly per epoch. The two Adams are
    Keras' legacy optimizers, the only kind ``larq.optimizers.CaseOptimizer`` accepts.

    Args:
        model: the N2UQ model to train (built).
        learning_rate: initial learning rate of the ordinary weights.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        quantizer_lr_factor: learning-rate multiplier of the thresholds and scales.
        lr_offset: see ``LinearEpochDecay``.

    Returns:
        A ``larq.optimizers.CaseOptimizer``, or the one Adam when ``model`` has no trainable
        thresholds (e.g. uniform, frozen ones: ``thresholds="uniform"``).

    Raises:
        ValueError: for a non-positive factor.
    """
    if not quantizer_lr_factor > 0:
        raise ValueError(f"quantizer_lr_factor must be > 0, got {quantizer_lr_factor!r}")
    quantizer_variables = {variable.ref() for variable in n2uq_threshold_variables(model)}

    def is_quantizer_variable(variable: tf.Variable) -> bool:
        return variable.ref() in quantizer_variables

    def adam(rate: float) -> tf.keras.optimizers.legacy.Adam:
        return tf.keras.optimizers.legacy.Adam(
            LinearEpochDecay(rate, epochs, steps_per_epoch, offset=lr_offset))

    if not quantizer_variables:
        return adam(learning_rate)
    return lq.optimizers.CaseOptimizer(
        (is_quantizer_variable, adam(learning_rate * quantizer_lr_factor)),
        default_optimizer=adam(learning_rate),
    )


def sgd_cosine_optimizer(learning_rate: float, epochs: int, steps_per_epoch: int, *,
                         momentum: float = 0.9) -> tf.keras.optimizers.Optimizer:
    """S3's optimizer (papers.md §4.1): SGD with momentum and cosine annealing to 0.

    The rate follows ``CosineDecay`` over all steps of the run (per step rather than per epoch
    as PyTorch's ``CosineAnnealingLR`` in the reference code; the curves coincide at epoch
    boundaries). Weight decay is added to the loss separately (``add_weight_decay``), as
    PyTorch's coupled ``weight_decay`` does.

    Args:
        learning_rate: initial learning rate (0.1 in the paper at batch 256).
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        momentum: SGD momentum.

    Returns:
        A ``tf.keras.optimizers.SGD``.

    Raises:
        ValueError: for a momentum outside [0, 1).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate,
                                                         decay_steps=epochs * steps_per_epoch)
    return tf.keras.optimizers.SGD(schedule, momentum=momentum)
