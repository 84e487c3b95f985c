"""Keras → Larq Compute Engine (or int8 TFLite) conversion with verification.

``convert_model`` picks the path from the model's layers (``conversion_kind``): binary models
become an LCE flatbuffer, checked for coverage (every binary convolution became an
``LceBconv2d``) and parity with Keras; N2UQ models a full-integer int8 model
(``convert_n2uq_int8``, ``check_n2uq_int8``); S3 shift-weight models a float32 model with the
shift weights stored as int8 (``store_int8_weights``, ``check_int8_weights``). Only when every
check passed does it write ``x.tflite``, the float32 twin ``x.float.tflite`` and the ``x.json``
metadata with the report. The pieces are usable on their own: ``convert_lce``/``convert_float``,
``read_tflite``, ``check_coverage``, ``check_parity``, ``benchmark_tflite``/``compare`` and
``load_keras_model``. ``store_int8_weights`` rewrites a flatbuffer so that weights that are
exactly small integers times a scale (shift and ternary weights) are stored as int8, losslessly.

This package reads any Keras model and takes numpy arrays; it does not depend on
``tflbnn.data`` or ``tflbnn.models``.
"""

from tflbnn import _backend  # noqa: F401

from tflbnn.converters.benchmark import (KERNELS, Comparison, LatencyStats, benchmark_tflite,
                                         compare, converted_label, kernel_flags)
from tflbnn.converters.coverage import (CoverageError, CoverageReport, CoverageWarning,
                                        LayerCoverage, binary_layers, check_coverage)
from tflbnn.converters.flatbuffer import OpInfo, TensorInfo, TFLiteModelInfo, read_tflite
from tflbnn.converters.int8_weights import (Int8ParityReport, Int8WeightError, Int8WeightSize,
                                            WeightTensor, check_int8_parity, check_int8_weights,
                                            convert_int8_weights, exact_int8_scales,
                                            int8_weight_size, read_weight_tensors, run_tflite,
                                            store_int8_weights)
from tflbnn.converters.keras_io import load_keras_model
from tflbnn.converters.lce import convert_float, convert_lce
from tflbnn.converters.n2uq_int8 import (N2UQInt8Check, N2UQInt8Error, check_n2uq_int8,
                                         check_n2uq_int8_parity, convert_n2uq_int8,
                                         export_n2uq_int8_model, n2uq_int8_size)
from tflbnn.converters.parity import (DEFAULT_MAX_LOGIT_DELTA, DEFAULT_MIN_TOP1_AGREEMENT,
                                      ParityError, ParityReport, check_parity,
                                      check_parity_images, run_lce)
from tflbnn.converters.pipeline import (CONVERSION_KINDS, DEFAULT_MAX_CALIBRATION_IMAGES,
                                        DEFAULT_N2UQ_MIN_TOP1_AGREEMENT, KIND_LCE,
                                        KIND_N2UQ_INT8, KIND_S3_INT8_WEIGHTS, METADATA_KEY,
                                        ConversionReport, conversion_kind, convert_model,
                                        float_twin_path)
from tflbnn.converters.size import SizeReport

__all__ = [
    "CONVERSION_KINDS",
    "DEFAULT_MAX_CALIBRATION_IMAGES",
    "DEFAULT_N2UQ_MIN_TOP1_AGREEMENT",
    "KERNELS",
    "KIND_LCE",
    "KIND_N2UQ_INT8",
    "KIND_S3_INT8_WEIGHTS",
    "Comparison",
    "ConversionReport",
    "CoverageError",
    "CoverageReport",
    "CoverageWarning",
    "DEFAULT_MAX_LOGIT_DELTA",
    "DEFAULT_MIN_TOP1_AGREEMENT",
    "LatencyStats",
    "Int8ParityReport",
    "Int8WeightError",
    "Int8WeightSize",
    "LayerCoverage",
    "N2UQInt8Check",
    "N2UQInt8Error",
    "METADATA_KEY",
    "OpInfo",
    "ParityError",
    "ParityReport",
    "SizeReport",
    "TFLiteModelInfo",
    "TensorInfo",
    "WeightTensor",
    "benchmark_tflite",
    "binary_layers",
    "check_coverage",
    "check_int8_parity",
    "check_int8_weights",
    "check_n2uq_int8",
    "check_n2uq_int8_parity",
    "check_parity",
    "check_parity_images",
    "compare",
    "conversion_kind",
    "converted_label",
    "convert_float",
    "convert_int8_weights",
    "convert_lce",
    "convert_model",
    "convert_n2uq_int8",
    "exact_int8_scales",
    "export_n2uq_int8_model",
    "float_twin_path",
    "int8_weight_size",
    "kernel_flags",
    "load_keras_model",
    "n2uq_int8_size",
    "read_tflite",
    "read_weight_tensors",
    "run_lce",
    "run_tflite",
    "store_int8_weights",
]
