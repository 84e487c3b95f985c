"""One resumable training stage through ``model.fit``: checkpoints, CSV history, curves, NaN stop.

A stage killed at any moment (exception, SIGINT, SIGKILL) and run again continues where it
stopped and ends exactly where an uninterrupted stage ends, given ``EpochData`` training data
(the same final weights, bit for bit, with TensorFlow's op determinism on):

* the weights, batch-norm statistics, optimizer slots and step counter (hence the learning
  rate schedule) of the last finished epoch are restored (``EpochCheckpoint``);
* the data of epoch ``e`` is built from a seed derived from ``(seed, e)`` alone, so the
  shuffle order and the augmentation of the resumed epochs are those the uninterrupted stage
  draws, however many epochs ran before in the process;
* Keras callbacks that draw per epoch (``group_search.RandomGroupSampling``) seed each epoch
  from ``(seed, epoch)`` too.

What is not restored: random ops inside a model that draw from TensorFlow's global, stateful
generator (``bimlp.DropPath``, drop-path in BiMLP models) start a new stream in a new process,
and keras-cv augmentations (``augment = "crop_resize"``, MixUp, CutMix) keep their own stateful
generators; a resumed run with those differs from an uninterrupted one in those draws only.
A plain ``tf.data.Dataset`` as training data is iterated afresh every epoch by Keras, so its
order after a resume is that of its first iteration, not of the epoch it resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence, Union

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.blocks import quiet_weight_clip_warning
from tflbnn.losses import label_cross_entropy
from tflbnn.metadata import ModelMetadata, sidecar_path, write_bytes_atomic
from tflbnn.model_files import load_keras_model
from tflbnn.training.callbacks import (EpochCheckpoint, SaveModelEachEpoch, StopOnNaN,
                                       restore_epoch_checkpoint, save_model_atomic)
from tflbnn.training.distillation import Distiller
from tflbnn.training.history import plot_histories, read_history, truncate_history
from tflbnn.training.optimizers import adam_linear_optimizer
from tflbnn.training.weights import add_conv_weight_decay

__all__ = ["StageResult", "EpochData", "TrainData", "train_stage", "load_stage",
           "has_unfinished_state", "discard_unfinished_stage", "count_batches",
           "OptimizerFactory"]

#: Builds a stage's optimizer from ``(model, epochs, steps_per_epoch)``.
OptimizerFactory = Callable[[tf.keras.Model, int, int], tf.keras.optimizers.Optimizer]

_DONE_FILE = "stage.json"
_BACKUP_DIR = "backup"
_HISTORY_FILE = "history.csv"
#: What an unfinished stage leaves in its folder (``discard_unfinished_stage`` removes them).
_PROGRESS_FILES = (_BACKUP_DIR, _HISTORY_FILE, "last.keras", "curves.png")


@dataclasses.dataclass(frozen=True)
class EpochData:
    """Training batches built afresh for every epoch from a seed derived from ``(seed, epoch)``.

    Epoch ``e`` is ``make(epoch_seed(e))``, built inside a ``tf.data`` function whose
    graph-level seed is fixed, so its shuffle order and augmentation depend on ``seed`` and
    ``e`` only: never on how many epochs the process ran before, nor on TensorFlow's global
    seed. A stage resumed at epoch ``e`` sees exactly the batches an uninterrupted stage sees
    there.

    Attributes:
        make: builds one epoch's batches from an int64 scalar seed tensor, drawing every
            random choice from it, e.g. ``lambda seed: bundle.train_dataset(128, seed=seed)``.
            Every epoch must have the same number of batches.
        seed: the run's seed.
    """

    make: Callable[[tf.Tensor], tf.data.Dataset]
    seed: int = 0

    def _epoch(self, epoch: tf.Tensor) -> tf.data.Dataset:
        # Traced by flat_map: the default graph is this function's, so the graph-level seed
        # set here reaches only this epoch's random ops. Without it tf.data would combine the
        # op seed with the process's global seed, and a global seed of 0 cannot be combined
        # with a tensor op seed at all.
        tf.random.set_seed(_EPOCH_GRAPH_SEED)
        key = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
        epoch_seed = tf.random.stateless_uniform([], seed=key, minval=0, maxval=2 ** 31 - 1,
                                                 dtype=tf.int64)
        return self.make(epoch_seed)

    def stream(self, first_epoch: int, epochs: int) -> tf.data.Dataset:
        """Epochs ``first_epoch .. epochs - 1`` one after the other, for one ``fit`` call."""
        return tf.data.Dataset.range(first_epoch, epochs).flat_map(self._epoch)

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The batches of epoch ``epoch``, exactly as ``stream`` yields them."""
        return self.stream(epoch, epoch + 1)

    def shape_example(self) -> tf.data.Dataset:
        """One epoch built eagerly: its length and element spec are those of every epoch."""
        return self.make(tf.constant(self.seed, tf.int64))


#: The graph-level seed of ``EpochData``'s epoch functions (any value but 0 would do).
_EPOCH_GRAPH_SEED = 1


#: A stage's training data: ``EpochData`` (exact resume) or a plain dataset of one epoch.
TrainData = Union[EpochData, tf.data.Dataset]


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


def _one_epoch(data: TrainData) -> tf.data.Dataset:
    return data.shape_example() if isinstance(data, EpochData) else data


def _cross_entropy(dataset: tf.data.Dataset) -> tf.keras.losses.Loss:
    # Mixup / cutmix pipelines yield one-hot label rows, the others integer labels.
    return label_cross_entropy(dataset.element_spec[1].shape.rank == 2)


def load_stage(stage_dir: str | os.PathLike) -> StageResult | None:
    """The result of a stage that finished earlier in ``stage_dir``, or ``None``.

    Raises:
        ValueError: naming the file when the stage's record cannot be read.
    """
    stage_dir = Path(stage_dir)
    done = stage_dir / _DONE_FILE
    model_path = stage_dir / "model.keras"
    if not (done.is_file() and model_path.is_file()):
        return None
    try:
        record = json.loads(done.read_text(encoding="utf-8"))
        summary = {key: record[key] for key in ("stage", "test_loss", "test_accuracy",
                                                "seconds")}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{done}: unreadable stage record ({error}); delete {stage_dir} to "
                         "train the stage again") from None
    with quiet_weight_clip_warning():
        model = load_keras_model(model_path)
    return StageResult(
        name=summary["stage"], model=model, model_path=model_path,
        history=read_history(stage_dir / _HISTORY_FILE), test_loss=summary["test_loss"],
        test_accuracy=summary["test_accuracy"], seconds=summary["seconds"], reused=True,
    )


def has_unfinished_state(stage_dir: str | os.PathLike) -> bool:
    """Whether ``stage_dir`` holds progress of a stage that has not finished (epochs, history)."""
    stage_dir = Path(stage_dir)
    return not (stage_dir / _DONE_FILE).is_file() and any(
        os.path.lexists(stage_dir / name) for name in _PROGRESS_FILES)


def discard_unfinished_stage(stage_dir: str | os.PathLike) -> None:
    """Remove what an unfinished stage left in ``stage_dir``, so that it starts over.

    Only the files ``train_stage`` writes while a stage runs are removed; a finished stage
    (with ``stage.json``) is never touched.

    Raises:
        ValueError: if the stage in ``stage_dir`` has finished.
    """
    stage_dir = Path(stage_dir)
    if (stage_dir / _DONE_FILE).is_file():
        raise ValueError(f"{stage_dir} holds a finished stage; it is not discarded")
    for name in _PROGRESS_FILES:
        path = stage_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()


def train_stage(
    model: tf.keras.Model,
    train_data: TrainData,
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
    (``EpochCheckpoint``: the training state after the last finished epoch), ``last.keras``
    (the model after every epoch), ``history.csv``, ``curves.png`` and, when done,
    ``model.keras`` + ``model.json`` + ``stage.json``. Run again after an interruption, the
    stage continues after its last finished epoch (exactly as if never stopped, with
    ``EpochData``: see the module docstring). Every step is crash-safe: ``stage.json``, the
    mark of a finished stage, is written atomically after the model and before ``backup/`` is
    deleted, so a kill between them redoes only the evaluation and saving. A stage that
    already finished is loaded instead of trained again (it must have the same number of
    epochs).

    Args:
        model: the model to train (logits output). It is trained in place.
        train_data: the training batches: ``EpochData`` (a resumed stage sees the data an
            uninterrupted one sees) or a finite, batched dataset iterated once per epoch.
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
        ValueError: for invalid arguments, a finished stage in ``stage_dir`` with another
            number of epochs, or saved epochs that do not fit the model (more epochs than
            asked for, other layers).
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
        # A kill after stage.json but before the backup's removal leaves it behind.
        shutil.rmtree(stage_dir / _BACKUP_DIR, ignore_errors=True)
        print(f"[{name}] already trained in {stage_dir}: reusing it "
              f"(test accuracy {finished.test_accuracy:.4f})")
        return finished
    stage_dir.mkdir(parents=True, exist_ok=True)

    first_epoch_data = _one_epoch(train_data)
    steps_per_epoch = count_batches(first_epoch_data, "training")
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
        trainer.compile(optimizer=stage_optimizer, loss=_cross_entropy(first_epoch_data),
                        metrics=["accuracy"])

    # The student and its optimizer: a teacher is fixed and may come from a file (without the
    # optimizer it was trained with), so it is no part of the training state.
    state = tf.train.Checkpoint(model=model, optimizer=stage_optimizer)
    done_epochs = restore_epoch_checkpoint(stage_dir / _BACKUP_DIR, state)
    if done_epochs > epochs:
        raise ValueError(f"stage {name}: {stage_dir / _BACKUP_DIR} holds {done_epochs} trained "
                         f"epochs but {epochs} were asked for; remove that folder to train "
                         "again, or ask for the same epochs")
    # Rows of epochs after the checkpoint come from a try whose checkpoint was never committed.
    truncate_history(stage_dir / _HISTORY_FILE, done_epochs)
    callbacks = [
        StopOnNaN(where=str(stage_dir)),
        tf.keras.callbacks.CSVLogger(str(stage_dir / _HISTORY_FILE), append=True),
        SaveModelEachEpoch(stage_dir / "last.keras", model_to_save=model),
        EpochCheckpoint(stage_dir / _BACKUP_DIR, state),
        *callbacks,
    ]
    started = time.perf_counter()
    how = "distillation from " + teacher.name if teacher is not None else "cross-entropy"
    if done_epochs < epochs:
        resumed = f", resuming after epoch {done_epochs}" if done_epochs else ""
        print(f"[{name}] training {model.name} for {epochs} epochs ({how}{resumed})")
        if isinstance(train_data, EpochData):
            # One iterator runs through the epochs; each epoch's batches come from its seed.
            trainer.fit(train_data.stream(done_epochs, epochs), steps_per_epoch=steps_per_epoch,
                        validation_data=validation_data, epochs=epochs,
                        initial_epoch=done_epochs, callbacks=callbacks, verbose=verbose)
        else:
            trainer.fit(train_data, validation_data=validation_data, epochs=epochs,
                        initial_epoch=done_epochs, callbacks=callbacks, verbose=verbose)
    else:
        print(f"[{name}] all {epochs} epochs were trained before an interruption; finishing")
    seconds = time.perf_counter() - started

    model.compile(loss=_cross_entropy(validation_data), metrics=["accuracy"])
    test_loss, test_accuracy = model.evaluate(validation_data, verbose=0)
    history = read_history(stage_dir / _HISTORY_FILE)
    plot_histories({name: history}, stage_dir / "curves.png", title=f"{name}: {model.name}")

    model_path = save_model_atomic(model, stage_dir / "model.keras")
    if metadata is not None:
        metadata.with_extra(stage=name, test_accuracy=float(test_accuracy)).save(
            sidecar_path(model_path))
    result = StageResult(name=name, model=model, model_path=model_path, history=history,
                         test_loss=float(test_loss), test_accuracy=float(test_accuracy),
                         seconds=seconds)
    # The commit: from here on the stage is finished; only then may its backup go.
    write_bytes_atomic(stage_dir / _DONE_FILE, json.dumps(result.summary(), indent=2).encode())
    shutil.rmtree(stage_dir / _BACKUP_DIR, ignore_errors=True)
    print(f"[{name}] test accuracy {test_accuracy:.4f} ({seconds:.0f} s)")
    return result
