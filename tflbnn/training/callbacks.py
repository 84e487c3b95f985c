"""Callbacks for long, interruptible training runs."""

from __future__ import annotations

import math
import os
from pathlib import Path

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

__all__ = ["TrainingDivergedError", "StopOnNaN", "SaveModelEachEpoch", "save_model_atomic"]


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
                "Training stopped; the last completed epoch is kept for resuming. Try a lower "
                "learning rate or check the input data for NaN values."
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
