"""The one loader for model files: a ``.keras`` zip in safe mode, nothing that can run code."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

import tflbnn  # noqa: F401  (registers tflbnn's layers and quantizers as Keras custom objects)

__all__ = ["load_keras_model"]


def load_keras_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a Keras model saved in the ``.keras`` format, with ``safe_mode=True``.

    Safe mode refuses to deserialize Python bytecode (``Lambda`` layers), so a model file from
    elsewhere cannot run code on load. Only the ``.keras`` zip format is accepted because safe
    mode does not protect the legacy HDF5 and SavedModel loaders. The model is loaded without
    its optimizer (``compile=False``).

    Args:
        path: the ``.keras`` file.

    Returns:
        The model.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a ``.keras`` model, holds a layer safe mode refuses
            (e.g. ``Lambda``), or uses an unknown custom object; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Keras model not found: {path}")
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"{path}: expected a Keras model file saved as '.keras' (model.save("
                         "'name.keras')); HDF5 and SavedModel are not loaded because safe_mode "
                         "cannot guard them")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Keras model (a .keras file is a zip archive)")
    try:
        model = tf.keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: cannot load as a Keras model with safe_mode=True: "
                         f"{error}") from None
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model
