"""The papers' recipes as sequences of ``train_stage`` calls: ReActNet's two steps, N2UQ, S3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.metadata import ModelMetadata
from tflbnn.training.optimizers import n2uq_optimizer, sgd_cosine_optimizer
from tflbnn.training.stage import StageResult, train_stage
from tflbnn.training.weights import add_weight_decay, transfer_weights

__all__ = ["two_step", "n2uq_recipe", "s3_recipe", "STEP1_INITS"]

#: How step 1 starts: from the float teacher's weights (same architecture) or from scratch.
STEP1_INITS = ("teacher", "scratch")


def two_step(
    build_model: Callable[[str], tf.keras.Model],
    train_data: tf.data.Dataset,
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

    Each stage is resumable (see ``train_stage``) under ``run_dir/<stage>``.

    Args:
        build_model: returns a fresh model for a precision ``"float"``,
            ``"binary_activations"`` or ``"binary"``; all three must share layer names.
        train_data: batched training data.
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
    if step1_init not in STEP1_INITS:
        raise ValueError(f"step1_init must be one of {STEP1_INITS}, got {step1_init!r}")
    run_dir = Path(run_dir)
    results: dict[str, StageResult] = {}
    common = dict(lr_offset=lr_offset, metadata=metadata, verbose=verbose)

    if teacher is None and teacher_epochs > 0:
        results["teacher"] = train_stage(
            build_model("float"), train_data, validation_data, stage_dir=run_dir / "teacher",
            epochs=teacher_epochs, learning_rate=teacher_learning_rate or learning_rate,
            weight_decay=weight_decay, **common,
        )
        teacher = results["teacher"].model

    step1_model = build_model("binary_activations")
    if step1_init == "teacher" and "teacher" in results:
        transfer_weights(teacher, step1_model)
    results["step1"] = train_stage(
        step1_model, train_data, validation_data, stage_dir=run_dir / "step1",
        epochs=step1_epochs, learning_rate=learning_rate, weight_decay=weight_decay,
        teacher=teacher, label_weight=label_weight, **common,
    )

    step2_model = build_model("binary")
    transfer_weights(results["step1"].model, step2_model)
    results["step2"] = train_stage(
        step2_model, train_data, validation_data, stage_dir=run_dir / "step2",
        epochs=step2_epochs, learning_rate=learning_rate, weight_decay=0.0,
        teacher=teacher, label_weight=label_weight, **common,
    )
    return results


def n2uq_recipe(
    build_model: Callable[[str], tf.keras.Model],
    train_data: tf.data.Dataset,
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
        train_data: batched training data.
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
    train_data: tf.data.Dataset,
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
        train_data: batched training data.
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
