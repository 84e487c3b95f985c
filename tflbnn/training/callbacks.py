"""Callbacks for long, interruptible training runs, and the epoch checkpoint they resume from."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.metadata import write_bytes_atomic

__all__ = ["TrainingDivergedError", "StopOnNaN", "SaveModelEachEpoch", "EpochCheckpoint",
           "restore_epoch_checkpoint", "save_model_atomic"]

#: The commit record of an ``EpochCheckpoint`` folder: finished epochs and their checkpoint.
_STATE_FILE = "state.json"


def save_model_atomic(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` as ``.keras`` through a temporary file and a rename.

    An interruption never leaves a half-written model at ``path``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    return path


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped before saving bad weights."""


class StopOnNaN(tf.keras.callbacks.Callback):
    """Raise ``TrainingDivergedError`` as soon as a batch loss is NaN or infinite.

    Raising (instead of Keras' ``TerminateOnNaN``, which stops quietly and lets the end-of-epoch
    callbacks save the broken weights) leaves the last good epoch checkpoint in place, so a run
    can be resumed with a lower learning rate.

    Args:
        where: a description of the run for the message (e.g. the stage directory).
    """

    def __init__(self, where: str = ""):
        super().__init__()
        self.where = where
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            place = f" in {self.where}" if self.where else ""
            raise TrainingDivergedError(
                f"loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}{place}. "
                "Training stopped; the completed epochs are kept (a run with the same settings "
                "resumes after them). Try a lower learning rate or check the input data for "
                "NaN values."
            )


class SaveModelEachEpoch(tf.keras.callbacks.Callback):
    """Save ``model_to_save`` as a ``.keras`` file at the end of every epoch, atomically.

    Args:
        path: destination ``.keras`` file, overwritten each epoch.
        model_to_save: the model to save (e.g. a ``Distiller``'s student); default the model
            being trained.
    """

    def __init__(self, path: str | os.PathLike, model_to_save: tf.keras.Model | None = None):
        super().__init__()
        self.path = Path(path)
        self.model_to_save = model_to_save

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.model_to_save or self.model, self.path)


def _checkpoint_prefix(folder: Path, epochs_done: int) -> Path:
    return folder / f"epoch-{epochs_done:05d}"


def _read_state(folder: Path) -> dict | None:
    path = folder / _STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        epochs_done = state["epochs_done"]
        prefix = folder / state["checkpoint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: unreadable epoch checkpoint record ({error}); delete "
                         f"{folder} to train the stage from its first epoch") from None
    if not isinstance(epochs_done, int) or epochs_done < 1 or Path(state["checkpoint"]).name \
            != state["checkpoint"]:
        raise ValueError(f"{path}: invalid epoch checkpoint record {state!r}; delete {folder} "
                         "to train the stage from its first epoch")
    return {"epochs_done": epochs_done, "prefix": prefix}


def restore_epoch_checkpoint(folder: str | os.PathLike, checkpoint: tf.train.Checkpoint) -> int:
    """Restore the training state an ``EpochCheckpoint`` committed last in ``folder``.

    Model weights are restored at once; optimizer slots that the optimizer creates on its first
    step are restored when they are created (TensorFlow's deferred restoration).

    Args:
        folder: the ``EpochCheckpoint`` folder (missing: nothing to restore).
        checkpoint: the same objects the callback saved (``tf.train.Checkpoint``).

    Returns:
        The number of finished epochs restored; 0 when there is no committed checkpoint.

    Raises:
        ValueError: naming the folder when its record or checkpoint cannot be read or does
            not fit the objects (e.g. a model with other layers).
    """
    folder = Path(folder)
    state = _read_state(folder)
    if state is None:
        return 0
    try:
        status = checkpoint.read(str(state["prefix"]))
        status.assert_existing_objects_matched()
        # Optimizer slots are restored when the first step creates them; a stage whose epochs
        # had all finished takes no step, and TensorFlow would warn about the unused values.
        status.expect_partial()
    except (tf.errors.OpError, AssertionError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ValueError(f"{folder}: the checkpoint of epoch {state['epochs_done']} does not "
                         f"fit this model and optimizer ({first_line}); delete {folder} to "
                         "train the stage from its first epoch") from None
    return state["epochs_done"]


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Keep the full training state after every epoch in ``folder``, crash-safely.

    At the end of epoch ``e`` the ``checkpoint`` (model weights, batch-norm statistics,
    optimizer slots and step counter, hence the learning-rate schedule's position) is written
    under a new name, then ``state.json`` naming it is replaced atomically (the commit), then
    older checkpoints are deleted. A kill at any moment leaves ``state.json`` naming a
    complete checkpoint, or no ``state.json`` when no epoch had finished;
    ``restore_epoch_checkpoint`` reads it back. Keras' ``BackupAndRestore`` is not used
    because the caller must know the epoch to resume at before ``fit`` starts, to feed that
    epoch's data (``tflbnn.training.stage.EpochData``).

    Args:
        folder: where the checkpoints and ``state.json`` live.
        checkpoint: the objects to save, e.g. ``tf.train.Checkpoint(model=m, optimizer=o)``.
    """

    def __init__(self, folder: str | os.PathLike, checkpoint: tf.train.Checkpoint):
        super().__init__()
        self.folder = Path(folder)
        self.checkpoint = checkpoint

    def on_epoch_end(self, epoch, logs=None):
        epochs_done = int(epoch) + 1
        prefix = _checkpoint_prefix(self.folder, epochs_done)
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob(f"{prefix.name}*"):  # from a killed earlier try
            _remove(leftover)
        self.checkpoint.write(str(prefix))
        write_bytes_atomic(self.folder / _STATE_FILE, json.dumps(
            {"epochs_done": epochs_done, "checkpoint": prefix.name}).encode())
        for path in self.folder.glob("epoch-*"):
            if not path.name.startswith(f"{prefix.name}."):
                _remove(path)


def _remove(path: Path) -> None:
    # TensorFlow writes a checkpoint through a "<prefix>_temp" folder, left behind by a kill.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
