"""One resumable training stage through ``model.fit``: checkpoints, CSV history, curves, NaN stop."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import quiet_weight_clip_warning
from tflbnn.losses import label_cross_entropy
from tflbnn.metadata import ModelMetadata, sidecar_path, write_bytes_atomic
from tflbnn.training.callbacks import SaveModelEachEpoch, StopOnNaN, save_model_atomic
from tflbnn.training.distillation import Distiller
from tflbnn.training.history import plot_histories, read_history
from tflbnn.training.optimizers import adam_linear_optimizer
from tflbnn.training.weights import add_conv_weight_decay

__all__ = ["StageResult", "train_stage", "load_stage", "count_batches", "OptimizerFactory"]

#: Builds a stage's optimizer from ``(model, epochs, steps_per_epoch)``.
OptimizerFactory = Callable[[tf.keras.Model, int, int], tf.keras.optimizers.Optimizer]

_DONE_FILE = "stage.json"


@dataclasses.dataclass
class StageResult:
    """What a finished stage leaves behind.

    Attributes:
        name: stage name.
        model: the trained model (the student when distilling).
        model_path: ``stage_dir/model.keras``.
        history: per-epoch rows (loss, accuracy, val_loss, val_accuracy, ...).
        test_loss: cross-entropy on the validation data after training.
        test_accuracy: top-1 accuracy on the validation data after training.
        seconds: wall time of the training (as recorded when a finished stage is reused).
        reused: the stage had finished before and was loaded instead of trained.
    """

    name: str
    model: tf.keras.Model
    model_path: Path
    history: list[dict[str, float]]
    test_loss: float
    test_accuracy: float
    seconds: float
    reused: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "epochs": len(self.history),
            "seconds": self.seconds,
            "model": str(self.model_path),
        }


def count_batches(dataset: tf.data.Dataset, what: str = "training") -> int:
    """The number of batches of a finite dataset (optimizer steps per epoch for training data).

    Raises:
        ValueError: naming ``what`` for an infinite, unknown-length or empty dataset.
    """
    steps = int(dataset.cardinality())
    if steps <= 0:
        raise ValueError(f"the {what} dataset has unknown or zero length ({steps} batches); "
                         "give a finite, batched dataset")
    return steps


def _cross_entropy(dataset: tf.data.Dataset) -> tf.keras.losses.Loss:
    # Mixup / cutmix pipelines yield one-hot label rows, the others integer labels.
    return label_cross_entropy(dataset.element_spec[1].shape.rank == 2)


def load_stage(stage_dir: str | os.PathLike) -> StageResult | None:
    """The result of a stage that finished earlier in ``stage_dir``, or ``None``."""
    stage_dir = Path(stage_dir)
    done = stage_dir / _DONE_FILE
    model_path = stage_dir / "model.keras"
    if not (done.is_file() and model_path.is_file()):
        return None
    record = json.loads(done.read_text())
    with quiet_weight_clip_warning():
        model = tf.keras.models.load_model(model_path, safe_mode=True, compile=False)
    return StageResult(
        name=record["stage"], model=model, model_path=model_path,
        history=read_history(stage_dir / "history.csv"), test_loss=record["test_loss"],
        test_accuracy=record["test_accuracy"], seconds=record["seconds"], reused=True,
    )


def train_stage(
    model: tf.keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    stage_dir: str | os.PathLike,
    epochs: int,
    learning_rate: float,
    weight_decay: float = 0.0,
    teacher: tf.keras.Model | None = None,
    label_weight: float = 0.0,
    lr_offset: int = 1,
    optimizer: OptimizerFactory | None = None,
    metadata: ModelMetadata | None = None,
    name: str | None = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> StageResult:
    """Train ``model`` for one stage, by default with Adam and ReActNet's linear per-epoch decay.

    Everything goes through ``model.fit``. The stage writes into ``stage_dir``: ``backup/``
    (``BackupAndRestore``: an interrupted stage resumes at its last finished epoch with the
    optimizer state), ``last.keras`` (the model after every epoch), ``history.csv``,
    ``curves.png`` and, when done, ``model.keras`` + ``model.json`` + ``stage.json``. A stage
    that already finished is loaded instead of trained again (it must have the same number of
    epochs).

    Args:
        model: the model to train (logits output). It is trained in place.
        train_data: batched ``(images, labels)`` training data.
        validation_data: batched ``(images, labels)`` data evaluated after every epoch.
        stage_dir: the stage's output directory.
        epochs: number of epochs.
        learning_rate: Adam's initial learning rate, decayed linearly per epoch (ignored with
            ``optimizer``).
        weight_decay: coupled L2 on conv kernels only (``add_conv_weight_decay``).
        teacher: when given, train with the distributional loss against it (``Distiller``);
            otherwise with cross-entropy on the labels.
        label_weight: weight of the label cross-entropy when distilling.
        lr_offset: see ``LinearEpochDecay`` (1 = reference code).
        optimizer: builds the optimizer from ``(model, epochs, steps_per_epoch)`` instead of
            the default Adam (e.g. ``n2uq_optimizer``, ``sgd_cosine_optimizer``).
        metadata: written next to ``model.keras`` as ``model.json`` (with results added).
        name: stage name for logs (default: the directory name).
        callbacks: extra Keras callbacks, run after the stage's own.
        verbose: Keras progress-bar verbosity.

    Returns:
        A ``StageResult``.

    Raises:
        TrainingDivergedError: if the loss becomes NaN or infinite.
        ValueError: for invalid arguments, or a finished stage in ``stage_dir`` with another
            number of epochs.
    """
    stage_dir = Path(stage_dir)
    name = name or stage_dir.name
    if epochs < 1:
        raise ValueError(f"stage {name}: epochs must be >= 1, got {epochs}")
    finished = load_stage(stage_dir)
    if finished is not None:
        if len(finished.history) != epochs:
            raise ValueError(f"stage {name}: {stage_dir} holds a finished run of "
                             f"{len(finished.history)} epochs but {epochs} were asked for; "
                             "remove that folder to train again, or ask for the same epochs")
        print(f"[{name}] already trained in {stage_dir}: reusing it "
              f"(test accuracy {finished.test_accuracy:.4f})")
        return finished
    stage_dir.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = count_batches(train_data, "training")
    if optimizer is None:
        stage_optimizer = adam_linear_optimizer(learning_rate, epochs, steps_per_epoch,
                                                lr_offset=lr_offset)
    else:
        stage_optimizer = optimizer(model, epochs, steps_per_epoch)
    add_conv_weight_decay(model, weight_decay)
    if teacher is not None:
        trainer: tf.keras.Model = Distiller(model, teacher, label_weight=label_weight)
        trainer.compile(optimizer=stage_optimizer, metrics=["accuracy"])
    else:
        trainer = model
        trainer.compile(optimizer=stage_optimizer, loss=_cross_entropy(train_data),
                        metrics=["accuracy"])

    callbacks = [
        StopOnNaN(where=str(stage_dir)),
        tf.keras.callbacks.BackupAndRestore(str(stage_dir / "backup")),
        tf.keras.callbacks.CSVLogger(str(stage_dir / "history.csv"), append=True),
        SaveModelEachEpoch(stage_dir / "last.keras", model_to_save=model),
        *callbacks,
    ]
    started = time.perf_counter()
    print(f"[{name}] training {model.name} for {epochs} epochs "
          f"({'distillation from ' + teacher.name if teacher is not None else 'cross-entropy'})")
    trainer.fit(train_data, validation_data=validation_data, epochs=epochs,
                callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - started

    model.compile(loss=_cross_entropy(validation_data), metrics=["accuracy"])
    test_loss, test_accuracy = model.evaluate(validation_data, verbose=0)
    history = read_history(stage_dir / "history.csv")
    plot_histories({name: history}, stage_dir / "curves.png", title=f"{name}: {model.name}")

    model_path = save_model_atomic(model, stage_dir / "model.keras")
    if metadata is not None:
        metadata.with_extra(stage=name, test_accuracy=float(test_accuracy)).save(
            sidecar_path(model_path))
    result = StageResult(name=name, model=model, model_path=model_path, history=history,
                         test_loss=float(test_loss), test_accuracy=float(test_accuracy),
                         seconds=seconds)
    write_bytes_atomic(stage_dir / _DONE_FILE, json.dumps(result.summary(), indent=2).encode())
    print(f"[{name}] test accuracy {test_accuracy:.4f} ({seconds:.0f} s)")
    return result
