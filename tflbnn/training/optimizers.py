"""Optimizers of the recipes: Adam with linear decay (plain, with AGC), Bop, N2UQ's, S3's.

All are ordinary Keras optimizers for ``model.compile``:

* ``adam_linear_optimizer``: ReActNet's Adam with linear per-epoch decay.
* ``agc_adam_optimizer``: the same Adam with adaptive gradient clipping (BN-free BNN).
* ``bop_optimizer``: Bop for the binary kernels, Adam for every other weight.
* ``n2uq_optimizer`` / ``sgd_cosine_optimizer``: the N2UQ and S3 optimizers.
"""

from __future__ import annotations

from typing import Sequence

from tflbnn import _backend  # noqa: F401

import larq as lq
import numpy as np
import tensorflow as tf

from tflbnn.n2uq import n2uq_threshold_variables
from tflbnn.training.agc import AGC_CLIP_FACTOR, AGC_EPSILON, AdaptiveGradientClipping
from tflbnn.training.schedules import LinearEpochDecay

__all__ = ["n2uq_optimizer", "sgd_cosine_optimizer", "adam_linear_optimizer",
           "agc_adam_optimizer", "bop_optimizer", "BOP_THRESHOLD", "BOP_GAMMA"]

#: larq's (and the paper's CIFAR-10 and ImageNet) Bop threshold τ.
BOP_THRESHOLD = 1e-8

#: larq's (and the paper's CIFAR-10 and ImageNet) initial Bop adaptivity rate γ.
BOP_GAMMA = 1e-4


def adam_linear_optimizer(learning_rate: float, epochs: int, steps_per_epoch: int, *,
                          lr_offset: int = 1, beta_1: float = 0.9,
                          beta_2: float = 0.999) -> tf.keras.optimizers.Optimizer:
    """Adam with the papers' linear per-epoch decay (``LinearEpochDecay``).

    Args:
        learning_rate: initial learning rate.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        lr_offset: see ``LinearEpochDecay``.
        beta_1: Adam's first-moment decay (Keras' and PyTorch's default 0.9).
        beta_2: Adam's second-moment decay (Keras' and PyTorch's default 0.999).

    Returns:
        A ``tf.keras.optimizers.Adam``.
    """
    return tf.keras.optimizers.Adam(
        LinearEpochDecay(learning_rate, epochs, steps_per_epoch, offset=lr_offset),
        beta_1=beta_1, beta_2=beta_2)


def agc_adam_optimizer(model: tf.keras.Model, learning_rate: float, epochs: int,
                       steps_per_epoch: int, *, clip_factor: float = AGC_CLIP_FACTOR,
                       epsilon: float = AGC_EPSILON, exclude: Sequence[str] | None = None,
                       lr_offset: int = 1) -> tf.keras.optimizers.legacy.Optimizer:
    """Adam with linear per-epoch decay and adaptive gradient clipping (papers.md §8).

    The clipping (``AdaptiveGradientClipping``: unit-wise, every weight but the classifier's)
    runs inside ``apply_gradients`` as a ``gradient_transformers`` entry of Keras' legacy Adam,
    the Keras 2 optimizer that takes them, so ``model.fit`` and ``Distiller`` both clip.

    Args:
        model: the model to train (built); its classifier is found here.
        learning_rate: initial learning rate.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        clip_factor: λ (0.02 in the paper's scripts).
        epsilon: ε, the floor of the weight norm.
        exclude: layer names left unclipped; ``None`` = the classifier (the output layer).
        lr_offset: see ``LinearEpochDecay``.

    Returns:
        A ``tf.keras.optimizers.legacy.Adam``.

    Raises:
        ValueError: for a non-positive λ or ε, or no classifier to exclude.
    """
    clipping = AdaptiveGradientClipping(model, clip_factor, epsilon, exclude=exclude)
    return tf.keras.optimizers.legacy.Adam(
        LinearEpochDecay(learning_rate, epochs, steps_per_epoch, offset=lr_offset),
        gradient_transformers=[clipping])


def bop_optimizer(model: tf.keras.Model, learning_rate: float, epochs: int,
                  steps_per_epoch: int, *, threshold: float = BOP_THRESHOLD,
                  gamma: float = BOP_GAMMA, gamma_decay: float = 1.0,
                  lr_offset: int = 1) -> tf.keras.optimizers.legacy.Optimizer:
    """Bop for the binary kernels, Adam with linear decay for the rest (papers.md §7).

    Bop (``larq.optimizers.Bop``) trains every variable ``Bop.is_binary_variable`` picks: the
    kernels whose quantizer has precision 1 (``reactnet_weight_sign``, ``scaled_ws_sign``,
    larq's binary quantizers), which larq wraps as variables with ``precision == 1``. It keeps
    no latent weights: ``m ← m + γ (g − m)``, and a weight flips when ``w·m > τ`` (its momentum
    exceeds the threshold and has its sign). Those kernels must therefore hold ±1 before
    training (``tflbnn.training.sign_binary_kernels``). Every other weight (BN, RSign and
    RPReLU parameters, the float stem and classifier) trains with legacy Adam at
    ``learning_rate``, decayed linearly per epoch (``LinearEpochDecay``), as the paper's
    ImageNet runs. Both go into ``larq.optimizers.CaseOptimizer``, which takes only Keras'
    legacy optimizers.

    Args:
        model: the model to train (built), with ±1 binary kernels.
        learning_rate: Adam's initial learning rate.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        threshold: τ (larq and the paper: 1e-8).
        gamma: initial γ (larq and the paper: 1e-4).
        gamma_decay: γ at the end of the run as a fraction of ``gamma``, reached linearly per
            step (the paper's ImageNet runs: 1e-4 → 1e-6, i.e. 0.01); 1.0 keeps γ constant.
        lr_offset: see ``LinearEpochDecay``.

    Returns:
        A ``larq.optimizers.CaseOptimizer``.

    Raises:
        ValueError: for invalid hyper-parameters, a model without binary kernels, or a binary
            kernel that does not hold ±1.
    """
    if not threshold >= 0:
        raise ValueError(f"bop_optimizer: threshold must be >= 0, got {threshold!r}")
    if not 0 < gamma <= 1:
        raise ValueError(f"bop_optimizer: gamma must be in (0, 1], got {gamma!r}")
    if not 0 < gamma_decay <= 1:
        raise ValueError(f"bop_optimizer: gamma_decay must be in (0, 1], got {gamma_decay!r}")
    binary = [v for v in model.trainable_variables if lq.optimizers.Bop.is_binary_variable(v)]
    if not binary:
        raise ValueError(f"bop_optimizer: model {model.name!r} has no binary kernels (no "
                         "trainable variable with precision 1) for Bop to train")
    for variable in binary:
        values = np.asarray(tf.convert_to_tensor(getattr(variable, "latent_variable", variable)))
        if not np.all(np.abs(values) == 1):
            raise ValueError(f"bop_optimizer: binary kernel {variable.name} of {model.name!r} "
                             "does not hold ±1; Bop flips signs and keeps no latent weights, so "
                             "sign the kernels first (tflbnn.training.sign_binary_kernels)")
    gamma_schedule = gamma
    if gamma_decay != 1.0:
        gamma_schedule = tf.keras.optimizers.schedules.PolynomialDecay(
            gamma, decay_steps=epochs * steps_per_epoch, end_learning_rate=gamma * gamma_decay,
            power=1.0)
    adam = tf.keras.optimizers.legacy.Adam(
        LinearEpochDecay(learning_rate, epochs, steps_per_epoch, offset=lr_offset))
    return lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable,
         lq.optimizers.Bop(threshold=threshold, gamma=gamma_schedule)),
        default_optimizer=adam,
    )


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
