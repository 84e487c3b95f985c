"""Load a trained ``.keras`` model for conversion, without running untrusted code.

The loader itself lives in :mod:`tflbnn.model_files` (the one place that reads model files);
this module keeps the name importable from the converters package.
"""

from __future__ import annotations

from tflbnn.model_files import load_keras_model

__all__ = ["load_keras_model"]
