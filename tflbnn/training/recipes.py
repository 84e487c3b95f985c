"""The ReActNet two-step recipe as a sequence of ``train_stage`` calls."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.metadata import ModelMetadata
from tflbnn.training.stage import StageResult, train_stage
from tflbnn.training.weights import transfer_weights

__all__ = ["two_step", "STEP1_INITS"]

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
