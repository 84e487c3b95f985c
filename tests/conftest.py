"""Shared test set-up: select Keras 2 before any test module imports TensorFlow or Larq."""

import tflbnn  # noqa: F401
