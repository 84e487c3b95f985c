"""The papers' recipes as sequences of ``train_stage`` calls.

* ``two_step``: ReActNet's two steps (papers.md §1.5).
* ``adambnn_recipe``: AdamBNN's two steps (papers.md §1.8), ``two_step`` with its settings.
* ``bn_free_recipe``: the BN-free BNN's two steps with adaptive gradient clipping (§8).
* ``bop_recipe``: optional step 1, then the binary model trained with Bop (§7).
* ``n2uq_recipe`` and ``s3_recipe``: the low-bit recipes (§3.5, §4.1).

The ReActNet-family recipes share their stages (float teacher, step 1) through the private
``_teacher_stage`` / ``_step1_stage`` helpers; they differ only in the optimizer of each stage
and in what comes after step 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.metadata import ModelMetadata
from tflbnn.training.agc import AGC_CLIP_FACTOR
from tflbnn.training.optimizers import (BOP_GAMMA, BOP_THRESHOLD, adam_linear_optimizer,
                                        agc_adam_optimizer, bop_optimizer, n2uq_optimizer,
                                        sgd_cosine_optimizer)
from tflbnn.training.stage import OptimizerFactory, StageResult, TrainData, train_stage
from tflbnn.training.weights import add_weight_decay, sign_binary_kernels, transfer_weights

__all__ = ["two_step", "adambnn_recipe", "bn_free_recipe", "bop_recipe", "n2uq_recipe",
           "s3_recipe", "STEP1_INITS", "ADAMBNN_WEIGHT_DECAY", "ADAMBNN_BETAS"]

#: How step 1 starts: from the float teacher's weights (same architecture) or from scratch.
STEP1_INITS = ("teacher", "scratch")

#: AdamBNN's step-1 weight decay (run.sh: ``--weight_decay 5e-6``; ReActNet's is 1e-5).
ADAMBNN_WEIGHT_DECAY = 5e-6

#: AdamBNN's Adam betas, set explicitly in its train.py. They are PyTorch's and Keras'
#: defaults, so ReActNet's Adam (which leaves them at the default) has the same ones.
ADAMBNN_BETAS = (0.9, 0.999)

#: Builds a stage's optimizer factory from the stage's learning rate; ``None`` means
#: ``train_stage``'s default Adam with linear decay.
_OptimizerChoice = Callable[[float], "OptimizerFactory | None"]


def _default_adam(learning_rate: float) -> OptimizerFactory | None:
    return None


def _check_step1_init(step1_init: str) -> None:
    if step1_init not in STEP1_INITS:
        raise ValueError(f"step1_init must be one of {STEP1_INITS}, got {step1_init!r}")


def _teacher_stage(build_model, train_data, validation_data, results: dict[str, StageResult], *,
                   run_dir: Path, teacher: tf.keras.Model | None, teacher_epochs: int,
                   learning_rate: float, weight_decay: float, optimizer: _OptimizerChoice,
                   common: dict[str, Any]) -> tf.keras.Model | None:
    """Stage ``teacher``: the float twin trained with cross-entropy, unless a teacher is given."""
    if teacher is None and teacher_epochs > 0:
        results["teacher"] = train_stage(
            build_model("float"), train_data, validation_data, stage_dir=run_dir / "teacher",
            epochs=teacher_epochs, learning_rate=learning_rate, weight_decay=weight_decay,
            optimizer=optimizer(learning_rate), **common,
        )
        teacher = results["teacher"].model
    return teacher


def _step1_stage(build_model, train_data, validation_data, results: dict[str, StageResult], *,
                 run_dir: Path, teacher: tf.keras.Model | None, step1_init: str, epochs: int,
                 learning_rate: float, weight_decay: float, label_weight: float,
                 optimizer: _OptimizerChoice, common: dict[str, Any]) -> tf.keras.Model:
    """Stage ``step1``: binary activations, real weights, distilled from ``teacher`` if any."""
    step1_model = build_model("binary_activations")
    if step1_init == "teacher" and "teacher" in results:
        transfer_weights(teacher, step1_model)
    results["step1"] = train_stage(
        step1_model, train_data, validation_data, stage_dir=run_dir / "step1", epochs=epochs,
        learning_rate=learning_rate, weight_decay=weight_decay, teacher=teacher,
        label_weight=label_weight, optimizer=optimizer(learning_rate), **common,
    )
    return results["step1"].model


def _two_steps(build_model, train_data, validation_data, *, run_dir, step1_epochs: int,
               step2_epochs: int, learning_rate: float, teacher_epochs: int,
               teacher: tf.keras.Model | None, teacher_learning_rate: float | None,
               weight_decay: float, step1_init: str, label_weight: float, lr_offset: int,
               metadata: ModelMetadata | None, verbose: int | str,
               optimizer: _OptimizerChoice) -> dict[str, StageResult]:
    """Teacher, step 1 and step 2 of the two-step recipe, every stage with ``optimizer``."""
    _check_step1_init(step1_init)
    run_dir = Path(run_dir)
    results: dict[str, StageResult] = {}
    common = dict(lr_offset=lr_offset, metadata=metadata, verbose=verbose)
    teacher = _teacher_stage(
        build_model, train_data, validation_data, results, run_dir=run_dir, teacher=teacher,
        teacher_epochs=teacher_epochs, learning_rate=teacher_learning_rate or learning_rate,
        weight_decay=weight_decay, optimizer=optimizer, common=common)
    step1_model = _step1_stage(
        build_model, train_data, validation_data, results, run_dir=run_dir, teacher=teacher,
        step1_init=step1_init, epochs=step1_epochs, learning_rate=learning_rate,
        weight_decay=weight_decay, label_weight=label_weight, optimizer=optimizer,
        common=common)

    step2_model = build_model("binary")
    transfer_weights(step1_model, step2_model)
    results["step2"] = train_stage(
        step2_model, train_data, validation_data, stage_dir=run_dir / "step2",
        epochs=step2_epochs, learning_rate=learning_rate, weight_decay=0.0,
        teacher=teacher, label_weight=label_weight, optimizer=optimizer(learning_rate),
        **common,
    )
    return results


def two_step(
    build_model: Callable[[str], tf.keras.Model],
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    step1_epochs: int,
    step2_epochs: int,
    learning_rate: float,
    teacher_epochs: int = 0,
    teacher: tf.keras.Model | None = None,
    teacher_learning_rate: float | None = None,
    weight_decay: float = 1e-5,
    step1_init: str = "teacher",
    label_weight: float = 0.0,
    lr_offset: int = 1,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """ReActNet's two-step training with the distributional loss (papers.md §1.5).

    0. ``teacher``: unless a trained ``teacher`` is given, the float twin
       (``build_model("float")``) is trained with cross-entropy for ``teacher_epochs``
       (0 = no teacher: both steps then use cross-entropy on the labels).
    1. ``step1``: binary activations, real weights (``build_model("binary_activations")``),
       weight decay on conv kernels, distilled from the teacher. Starts from the float
       teacher's weights when ``step1_init="teacher"`` and the teacher is the float twin.
    2. ``step2``: binary activations and weights (``build_model("binary")``), initialised from
       step 1 with *all* weights transferred, no weight decay, distilled from the teacher.

    Every stage trains with Adam and linear per-epoch decay. Each stage is resumable (see
    ``train_stage``) under ``run_dir/<stage>``.

    Args:
        build_model: returns a fresh model for a precision ``"float"``,
            ``"binary_activations"`` or ``"binary"``; all three must share layer names.
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory.
        step1_epochs: epochs of step 1.
        step2_epochs: epochs of step 2.
        learning_rate: Adam learning rate of both steps.
        teacher_epochs: epochs to train the float twin as teacher (ignored with ``teacher``).
        teacher: an already trained teacher.
        teacher_learning_rate: learning rate for the teacher (default ``learning_rate``).
        weight_decay: step-1 weight decay (PyTorch-style coefficient); step 2 uses 0.
        step1_init: one of ``STEP1_INITS``.
        label_weight: weight of label cross-entropy added to the distillation loss.
        lr_offset: see ``LinearEpochDecay``.
        metadata: labels and preprocessing saved with every stage's model.
        verbose: Keras progress-bar verbosity.

    Returns:
        Stage name → ``StageResult``, in training order.

    Raises:
        ValueError: for invalid arguments.
    """
    return _two_steps(
        build_model, train_data, validation_data, run_dir=run_dir, step1_epochs=step1_epochs,
        step2_epochs=step2_epochs, learning_rate=learning_rate, teacher_epochs=teacher_epochs,
        teacher=teacher, teacher_learning_rate=teacher_learning_rate, weight_decay=weight_decay,
        step1_init=step1_init, label_weight=label_weight, lr_offset=lr_offset,
        metadata=metadata, verbose=verbose, optimizer=_default_adam)


def adambnn_recipe(
    build_model: Callable[[str], tf.keras.Model],
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    step1_epochs: int,
    step2_epochs: int,
    learning_rate: float,
    teacher_epochs: int = 0,
    teacher: tf.keras.Model | None = None,
    teacher_learning_rate: float | None = None,
    weight_decay: float = ADAMBNN_WEIGHT_DECAY,
    step1_init: str = "teacher",
    label_weight: float = 0.0,
    lr_offset: int = 1,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """AdamBNN's recipe (papers.md §1.8): ReActNet's two steps with AdamBNN's settings.

    The stages are ``two_step``'s (teacher, step 1, step 2). What AdamBNN's code
    (liuzechun/AdamBNN) changes against ReActNet's, and what that means here:

    * step-1 weight decay 5e-6 instead of 1e-5 (``ADAMBNN_WEIGHT_DECAY``, the default of
      ``weight_decay``); step 2 has none in both codes (and here).
    * Adam's betas written out as (0.9, 0.999) (``ADAMBNN_BETAS``): the PyTorch defaults
      ReActNet already used, and Keras' defaults, so no numerical difference.
    * the step-2 conv kernels named so that step 1's weights load strictly: ReActNet's
      MobileNet code silently dropped them (papers.md §1.5); ``transfer_weights`` here always
      copies every weight or raises, in both recipes.

    Everything else is the same: Adam with linear per-epoch decay, distributional loss from the
    teacher, weight decay on conv kernels only. The paper's schedule (256 epochs per step at
    batch 256, lr 1.25e-3; ReActNet: 128 epochs) is the caller's ``step1_epochs`` /
    ``step2_epochs`` / ``learning_rate``.

    Args:
        build_model: returns a fresh model for a precision ``"float"``,
            ``"binary_activations"`` or ``"binary"``; all three must share layer names.
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory.
        step1_epochs: epochs of step 1.
        step2_epochs: epochs of step 2.
        learning_rate: Adam learning rate of both steps.
        teacher_epochs: epochs to train the float twin as teacher (ignored with ``teacher``).
        teacher: an already trained teacher.
        teacher_learning_rate: learning rate for the teacher (default ``learning_rate``).
        weight_decay: step-1 weight decay (PyTorch-style coefficient); step 2 uses 0.
        step1_init: one of ``STEP1_INITS``.
        label_weight: weight of label cross-entropy added to the distillation loss.
        lr_offset: see ``LinearEpochDecay``.
        metadata: labels and preprocessing saved with every stage's model.
        verbose: Keras progress-bar verbosity.

    Returns:
        Stage name → ``StageResult`` (``teacher`` when trained, ``step1``, ``step2``).

    Raises:
        ValueError: for invalid arguments.
    """
    beta_1, beta_2 = ADAMBNN_BETAS

    def optimizer(rate: float) -> OptimizerFactory:
        def factory(model: tf.keras.Model, epochs: int, steps_per_epoch: int):
            return adam_linear_optimizer(rate, epochs, steps_per_epoch, lr_offset=lr_offset,
                                         beta_1=beta_1, beta_2=beta_2)
        return factory

    return _two_steps(
        build_model, train_data, validation_data, run_dir=run_dir, step1_epochs=step1_epochs,
        step2_epochs=step2_epochs, learning_rate=learning_rate, teacher_epochs=teacher_epochs,
        teacher=teacher, teacher_learning_rate=teacher_learning_rate, weight_decay=weight_decay,
        step1_init=step1_init, label_weight=label_weight, lr_offset=lr_offset,
        metadata=metadata, verbose=verbose, optimizer=optimizer)


def _check_bn_free(model: tf.keras.Model, owner: str) -> None:
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            raise ValueError(f"{owner}: model {model.name!r} has the BatchNormalization layer "
                             f"{layer.name!r}; build the BN-free variant (e.g. reactnet_a with "
                             "bn_free=True)")


def bn_free_recipe(
    build_model: Callable[[str], tf.keras.Model],
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    step1_epochs: int,
    step2_epochs: int,
    learning_rate: float,
    agc_clip: float = AGC_CLIP_FACTOR,
    teacher_epochs: int = 0,
    teacher: tf.keras.Model | None = None,
    teacher_learning_rate: float | None = None,
    weight_decay: float = 1e-5,
    step1_init: str = "teacher",
    label_weight: float = 0.0,
    lr_offset: int = 1,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """The BN-free BNN's recipe (papers.md §8): the two steps with adaptive gradient clipping.

    The stages of ``two_step`` (teacher, step 1 with conv weight decay, step 2 without) on a
    BN-free model (``reactnet_a(bn_free=True)``), every stage trained with
    ``agc_adam_optimizer``: Adam with linear decay and unit-wise AGC at ``agc_clip`` on every
    weight but the classifier. The paper's settings are Adam 5e-4, wd 1e-5 / 0, 256 epochs
    per step and a BN-free NFNet-F0 teacher; here the teacher is the model's own BN-free float
    twin, also trained with AGC.

    Args:
        build_model: returns a fresh BN-free model for a precision ``"float"``,
            ``"binary_activations"`` or ``"binary"``; all three must share layer names.
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory.
        step1_epochs: epochs of step 1.
        step2_epochs: epochs of step 2.
        learning_rate: Adam learning rate of both steps.
        agc_clip: AGC's λ (0.02 in the paper's scripts).
        teacher_epochs: epochs to train the float twin as teacher (ignored with ``teacher``).
        teacher: an already trained teacher.
        teacher_learning_rate: learning rate for the teacher (default ``learning_rate``).
        weight_decay: step-1 weight decay (PyTorch-style coefficient); step 2 uses 0.
        step1_init: one of ``STEP1_INITS``.
        label_weight: weight of label cross-entropy added to the distillation loss.
        lr_offset: see ``LinearEpochDecay``.
        metadata: labels and preprocessing saved with every stage's model.
        verbose: Keras progress-bar verbosity.

    Returns:
        Stage name → ``StageResult`` (``teacher`` when trained, ``step1``, ``step2``).

    Raises:
        ValueError: for invalid arguments, or a model with BatchNormalization.
    """
    if not agc_clip > 0:
        raise ValueError(f"bn_free_recipe: agc_clip must be positive, got {agc_clip!r}")

    def optimizer(rate: float) -> OptimizerFactory:
        def factory(model: tf.keras.Model, epochs: int, steps_per_epoch: int):
            # Every stage's model passes here before it trains.
            _check_bn_free(model, "bn_free_recipe")
            return agc_adam_optimizer(model, rate, epochs, steps_per_epoch,
                                      clip_factor=agc_clip, lr_offset=lr_offset)
        return factory

    return _two_steps(
        build_model, train_data, validation_data, run_dir=run_dir, step1_epochs=step1_epochs,
        step2_epochs=step2_epochs, learning_rate=learning_rate, teacher_epochs=teacher_epochs,
        teacher=teacher, teacher_learning_rate=teacher_learning_rate, weight_decay=weight_decay,
        step1_init=step1_init, label_weight=label_weight, lr_offset=lr_offset,
        metadata=metadata, verbose=verbose, optimizer=optimizer)


def bop_recipe(
    build_model: Callable[[str], tf.keras.Model],
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    epochs: int,
    learning_rate: float,
    step1_epochs: int = 0,
    threshold: float = BOP_THRESHOLD,
    gamma: float = BOP_GAMMA,
    gamma_decay: float = 1.0,
    teacher_epochs: int = 0,
    teacher: tf.keras.Model | None = None,
    teacher_learning_rate: float | None = None,
    weight_decay: float = 1e-5,
    step1_init: str = "teacher",
    label_weight: float = 0.0,
    lr_offset: int = 1,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """Bop for the binary kernels (papers.md §7), optionally after ReActNet's step 1.

    0. ``teacher`` (optional): as in ``two_step``; with a teacher both later stages distil
       from it, otherwise they use cross-entropy on the labels (the Bop paper's setting).
    1. ``step1`` (when ``step1_epochs`` > 0): binary activations, real weights, Adam with
       linear decay and conv weight decay, exactly ``two_step``'s step 1.
    2. ``bop``: the fully binary model (``build_model("binary")``), initialised from step 1
       (every weight), or from the float teacher trained here when there is no step 1 and
       ``step1_init="teacher"``, or fresh. Its binary kernels are then set to ``sign(W)``
       (``sign_binary_kernels``: Bop keeps no latent weights) and it trains with
       ``bop_optimizer``: Bop (``threshold``, ``gamma``) on the binary kernels, Adam at
       ``learning_rate`` with linear decay on the rest; no weight decay.

    Each stage is resumable (see ``train_stage``) under ``run_dir/<stage>``.

    Args:
        build_model: returns a fresh model for a precision ``"float"``,
            ``"binary_activations"`` or ``"binary"``; all three must share layer names.
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory.
        epochs: epochs of the Bop stage.
        learning_rate: Adam learning rate of step 1 and of the real-valued weights in the Bop
            stage.
        step1_epochs: epochs of step 1 (0 = no step 1).
        threshold: Bop's τ.
        gamma: Bop's initial γ.
        gamma_decay: final γ as a fraction of ``gamma`` (linear; 1.0 = constant).
        teacher_epochs: epochs to train the float twin as teacher (ignored with ``teacher``).
        teacher: an already trained teacher.
        teacher_learning_rate: learning rate for the teacher (default ``learning_rate``).
        weight_decay: step-1 (and teacher) weight decay; the Bop stage uses 0.
        step1_init: one of ``STEP1_INITS``.
        label_weight: weight of label cross-entropy added to the distillation loss.
        lr_offset: see ``LinearEpochDecay``.
        metadata: labels and preprocessing saved with every stage's model.
        verbose: Keras progress-bar verbosity.

    Returns:
        Stage name → ``StageResult`` (``teacher`` and ``step1`` when trained, ``bop``).

    Raises:
        ValueError: for invalid arguments or a model without binary kernels.
    """
    _check_step1_init(step1_init)
    if step1_epochs < 0:
        raise ValueError(f"bop_recipe: step1_epochs must be >= 0, got {step1_epochs}")
    run_dir = Path(run_dir)
    results: dict[str, StageResult] = {}
    common = dict(lr_offset=lr_offset, metadata=metadata, verbose=verbose)
    teacher = _teacher_stage(
        build_model, train_data, validation_data, results, run_dir=run_dir, teacher=teacher,
        teacher_epochs=teacher_epochs, learning_rate=teacher_learning_rate or learning_rate,
        weight_decay=weight_decay, optimizer=_default_adam, common=common)
    source = teacher if step1_init == "teacher" and "teacher" in results else None
    if step1_epochs > 0:
        source = _step1_stage(
            build_model, train_data, validation_data, results, run_dir=run_dir,
            teacher=teacher, step1_init=step1_init, epochs=step1_epochs,
            learning_rate=learning_rate, weight_decay=weight_decay, label_weight=label_weight,
            optimizer=_default_adam, common=common)

    model = build_model("binary")
    if source is not None:
        transfer_weights(source, model)
    sign_binary_kernels(model)

    def optimizer(model: tf.keras.Model, epochs: int, steps_per_epoch: int):
        return bop_optimizer(model, learning_rate, epochs, steps_per_epoch, threshold=threshold,
                             gamma=gamma, gamma_decay=gamma_decay, lr_offset=lr_offset)

    results["bop"] = train_stage(
        model, train_data, validation_data, stage_dir=run_dir / "bop", epochs=epochs,
        learning_rate=learning_rate, optimizer=optimizer, teacher=teacher,
        label_weight=label_weight, **common)
    return results


def n2uq_recipe(
    build_model: Callable[[str], tf.keras.Model],
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    epochs: int,
    learning_rate: float,
    float_epochs: int = 0,
    float_model: tf.keras.Model | None = None,
    float_learning_rate: float | None = None,
    quantizer_lr_factor: float = 0.1,
    distill: bool = False,
    label_weight: float = 0.0,
    lr_offset: int = 1,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """N2UQ's recipe (papers.md §3.5): quantize a trained float model of the same architecture.

    0. ``float``: unless a trained ``float_model`` is given, the float twin
       (``build_model("float")``) is trained with cross-entropy for ``float_epochs`` (Adam,
       linear decay).
    1. ``n2uq``: the quantized model (``build_model("n2uq")``) starts from the float weights
       (``transfer_weights(..., keep_target_quantizers=True)``: thresholds and scales start at
       their initial values, as when the paper loads a float ResNet) and trains with Adam and
       linear decay, thresholds and scales at ``quantizer_lr_factor`` times the rate
       (``n2uq_optimizer``), no weight decay. With ``distill`` the float model is also the
       teacher (ReActNet's distributional loss, as the paper's KD runs); otherwise
       cross-entropy on the labels.

    Each stage is resumable (see ``train_stage``) under ``run_dir/<stage>``.

    Args:
        build_model: returns a fresh model for a precision ``"float"`` or ``"n2uq"`` (e.g.
            ``n2uq_resnet18`` with ``precision``); both must share layer names.
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory.
        epochs: epochs of the quantized stage.
        learning_rate: initial Adam learning rate of the quantized stage.
        float_epochs: epochs of the float twin (ignored with ``float_model``).
        float_model: an already trained float model to start from.
        float_learning_rate: learning rate of the float twin (default ``learning_rate``).
        quantizer_lr_factor: learning-rate multiplier of thresholds and scales (paper: 0.1).
        distill: distil from the float model.
        label_weight: weight of label cross-entropy added to the distillation loss.
        lr_offset: see ``LinearEpochDecay``.
        metadata: labels and preprocessing saved with every stage's model.
        verbose: Keras progress-bar verbosity.

    Returns:
        Stage name → ``StageResult``, in training order.

    Raises:
        ValueError: when there is neither a float model nor float epochs to train one.
    """
    if float_model is None and float_epochs < 1:
        raise ValueError("n2uq_recipe starts from a trained float model: give float_model or "
                         f"float_epochs >= 1 (got {float_epochs})")
    run_dir = Path(run_dir)
    results: dict[str, StageResult] = {}
    common = dict(lr_offset=lr_offset, metadata=metadata, verbose=verbose)
    if float_model is None:
        results["float"] = train_stage(
            build_model("float"), train_data, validation_data, stage_dir=run_dir / "float",
            epochs=float_epochs, learning_rate=float_learning_rate or learning_rate, **common)
        float_model = results["float"].model

    model = build_model("n2uq")
    transfer_weights(float_model, model, keep_target_quantizers=True)

    def optimizer(model: tf.keras.Model, epochs: int, steps_per_epoch: int):
        return n2uq_optimizer(model, learning_rate, epochs, steps_per_epoch,
                              quantizer_lr_factor=quantizer_lr_factor, lr_offset=lr_offset)

    results["n2uq"] = train_stage(
        model, train_data, validation_data, stage_dir=run_dir / "n2uq", epochs=epochs,
        learning_rate=learning_rate, optimizer=optimizer,
        teacher=float_model if distill else None, label_weight=label_weight, **common)
    return results


def s3_recipe(
    model: tf.keras.Model,
    train_data: TrainData,
    validation_data: tf.data.Dataset,
    *,
    run_dir: str | os.PathLike,
    epochs: int,
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    teacher: tf.keras.Model | None = None,
    label_weight: float = 0.0,
    metadata: ModelMetadata | None = None,
    verbose: int | str = "auto",
) -> dict[str, StageResult]:
    """S3's recipe (papers.md §4.1): from random initialisation, SGD + momentum, cosine decay.

    One stage ``s3``: coupled L2 weight decay on *all* trainable weights, the S3 latents
    included (as the reference code's ``SGD(weight_decay=1e-4)``); the S3 layers' dense-weight
    regulariser (their ``density_regularization``) is in the model's losses already, so it is
    on. Cross-entropy on the labels, or distillation from ``teacher`` when given.

    Args:
        model: a freshly built S3 model (e.g. ``s3_resnet18``).
        train_data: training batches (``EpochData`` for an exact resume, see ``train_stage``).
        validation_data: batched validation data.
        run_dir: output directory; the stage is resumable under ``run_dir/s3``.
        epochs: epochs.
        learning_rate: initial SGD learning rate (paper: 0.1 at batch 256).
        momentum: SGD momentum.
        weight_decay: PyTorch-style coefficient on all trainable weights (paper: 1e-4).
        teacher: optional teacher for distillation.
        label_weight: weight of label cross-entropy added to the distillation loss.
        metadata: labels and preprocessing saved with the model.
        verbose: Keras progress-bar verbosity.

    Returns:
        ``{"s3": StageResult}``.

    Raises:
        ValueError: for invalid arguments.
    """
    add_weight_decay(model, weight_decay, model.trainable_weights)

    def optimizer(model: tf.keras.Model, epochs: int, steps_per_epoch: int):
        return sgd_cosine_optimizer(learning_rate, epochs, steps_per_epoch, momentum=momentum)

    return {"s3": train_stage(
        model, train_data, validation_data, stage_dir=Path(run_dir) / "s3", epochs=epochs,
        learning_rate=learning_rate, optimizer=optimizer, teacher=teacher,
        label_weight=label_weight, metadata=metadata, verbose=verbose)}
