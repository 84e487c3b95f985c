"""Select Keras 2 (tf-keras) before TensorFlow is imported.

Larq and Larq Compute Engine only work with Keras 2. TensorFlow 2.16 picks Keras 3 unless
``TF_USE_LEGACY_KERAS=1`` is set before ``tensorflow`` is first imported, so every tflbnn module
imports this one first.
"""

import os
import sys

# TensorFlow's C++ start-up chatter: info lines for library use; for the `tflbnn` command also
# the spurious CUDA-plugin registration "errors" every CPU-only machine prints. Python-level
# errors still surface as exceptions, and a value the user sets wins.
_is_cli = os.path.basename(sys.argv[0] if sys.argv else "") == "tflbnn"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _is_cli else "2")

_tensorflow_was_imported = "tensorflow" in sys.modules
if not _tensorflow_was_imported:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402


def check_keras_2() -> None:
    """Raise if ``tf.keras`` is Keras 3, which Larq and LCE cannot use.

    Raises:
        ImportError: when TensorFlow was imported with Keras 3 active.
    """
    if not tf.keras.__name__.startswith("tf_keras"):
        raise ImportError(
            f"tflbnn needs Keras 2 (tf-keras) but tf.keras is {tf.keras.__name__} (Keras 3). "
            "TensorFlow was imported before tflbnn without TF_USE_LEGACY_KERAS=1. Either import "
            "tflbnn before tensorflow, or set the environment variable TF_USE_LEGACY_KERAS=1 "
            "before starting Python, and make sure tf-keras==2.16.0 is installed."
        )


check_keras_2()
