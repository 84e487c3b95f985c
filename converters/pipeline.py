"""One call from a Keras model to verified ``.tflite`` + float twin + metadata JSON on disk.

Nothing is written until the conversion has passed its checks (coverage, parity), and the three
files appear together: each is staged in a temporary folder next to the destination, then all
are renamed into place; if anything fails, the staged files and any already renamed are removed.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tflbnn.metadata import ModelMetadata, sidecar_path, write_files_together
from tflbnn.converters.coverage import (CoverageError, CoverageReport, CoverageWarning,
                                        binary_layers, check_coverage)
from tflbnn.converters.flatbuffer import read_tflite
from tflbnn.converters.lce import convert_float, convert_lce, timed, with_batch_size_one
from tflbnn.converters.parity import (DEFAULT_MAX_LOGIT_DELTA, DEFAULT_MIN_TOP1_AGREEMENT,
                                      DEFAULT_ROUNDING_NOISE, ParityReport, check_parity,
                                      check_parity_images)
from tflbnn.converters.size import SizeReport

__all__ = ["ConversionReport", "convert_model", "float_twin_path", "METADATA_KEY"]

#: Key of the conversion report inside ``ModelMetadata.extra``.
METADATA_KEY = "conversion"


def float_twin_path(output_path: str | os.PathLike) -> Path:
    """Where the float32 twin of ``x.tflite`` goes: ``x.float.tflite`` in the same folder."""
    output_path = Path(output_path)
    return output_path.with_name(f"{output_path.stem}.float.tflite")


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """Everything a conversion established.

    Attributes:
        model_name: the Keras model's name.
        output: the LCE ``.tflite`` path.
        float_output: the float32 twin path, ``None`` without a float reference.
        metadata_output: the sidecar JSON path.
        lce_options: options given to the LCE converter (dtypes as strings).
        coverage: binary-layer coverage.
        parity: LCE-vs-Keras agreement, ``None`` when not checked.
        parity_note: where the parity images came from, or why parity was not checked.
        size: flatbuffer sizes.
        timings: seconds spent: ``lce_conversion``, ``float_conversion``, ``parity``.
        warnings: problems that were allowed (float fall-back of binary layers).
    """

    model_name: str
    output: str
    float_output: str | None
    metadata_output: str
    lce_options: dict[str, Any]
    coverage: CoverageReport
    parity: ParityReport | None
    parity_note: str
    size: SizeReport
    timings: dict[str, float]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict; file names are relative to the model's folder so it can move."""
        return {
            "model_name": self.model_name,
            "tflite": Path(self.output).name,
            "float_twin": Path(self.float_output).name if self.float_output else None,
            "lce_options": dict(self.lce_options),
            "coverage": self.coverage.as_dict(),
            "parity": self.parity.as_dict() if self.parity else None,
            "parity_note": self.parity_note,
            "size": self.size.as_dict(),
            "timings_s": {key: round(value, 3) for key, value in self.timings.items()},
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """A few lines of text for the terminal."""
        lines = [f"converted {self.model_name!r} -> {self.output} in "
                 f"{self.timings.get('lce_conversion', 0.0):.1f} s",
                 self.coverage.summary()]
        if self.parity is not None:
            lines.append(self.parity.summary())
            if self.parity_note:
                lines.append(f"  parity images: {self.parity_note}")
        else:
            lines.append(f"parity: NOT checked — {self.parity_note}")
        lines.append(self.size.summary())
        lines.extend(f"warning: {text}" for text in self.warnings)
        files = [self.output] + ([self.float_output] if self.float_output else [])
        lines.append(f"wrote {', '.join(files + [self.metadata_output])}")
        return "\n".join(lines)


def _describe_options(options: Mapping[str, Any]) -> dict[str, Any]:
    described = {"target": "arm", "inference_input_type": "float32",
                 "inference_output_type": "float32"}
    for key, value in options.items():
        described[key] = value.name if isinstance(value, tf.dtypes.DType) else value
    return described


def _check_metadata(model: tf.keras.Model, metadata: ModelMetadata) -> None:
    if isinstance(model.input_shape, list) or isinstance(model.output_shape, list):
        raise ValueError(f"convert_model: model {model.name!r} must have one input and one output "
                         "(an image classifier)")
    expected = tuple(model.input_shape[1:])
    if metadata.preprocessing.input_shape != expected:
        raise ValueError(f"convert_model: metadata preprocessing gives input "
                         f"{metadata.preprocessing.input_shape} but model {model.name!r} expects "
                         f"{expected}")
    units = model.output_shape[-1]
    if units is not None and len(metadata.labels) != units:
        raise ValueError(f"convert_model: metadata has {len(metadata.labels)} labels but model "
                         f"{model.name!r} has {units} outputs")


def convert_model(
    model: tf.keras.Model,
    output_path: str | os.PathLike,
    *,
    metadata: ModelMetadata,
    parity_images: np.ndarray | None = None,
    parity_note: str = "",
    strict_coverage: bool = True,
    min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT,
    max_logit_delta: float = DEFAULT_MAX_LOGIT_DELTA,
    rounding_noise: float | None = DEFAULT_ROUNDING_NOISE,
    float_reference: bool = True,
    lce_options: Mapping[str, Any] | None = None,
) -> ConversionReport:
    """Convert, verify, and only then write ``x.tflite``, ``x.float.tflite`` and ``x.json``.

    Args:
        model: a built single-input, single-output Keras classifier with binary layers.
        output_path: destination ``.tflite`` of the LCE model.
        metadata: labels and preprocessing; written to the sidecar ``x.json`` with the
            conversion report under ``extra["conversion"]`` (other ``extra`` keys are kept).
        parity_images: preprocessed float32 inputs ``(N, H, W, C)``; ``None`` skips parity.
        parity_note: where the images came from, or why there are none (recorded).
        strict_coverage: a binary layer that does not become ``LceBconv2d`` is an error; with
            False it is a ``CoverageWarning`` recorded in the report.
        min_top1_agreement: parity threshold, see ``tflbnn.converters.parity``.
        max_logit_delta: parity threshold, see ``tflbnn.converters.parity``.
        rounding_noise: parity tolerance calibration, see ``tflbnn.converters.parity``.
        float_reference: also convert and write the float32 twin ``x.float.tflite``.
        lce_options: options for ``convert_lce`` (``target``, ...).

    Returns:
        The ``ConversionReport`` (also stored in the metadata JSON).

    Raises:
        ValueError: for a model without binary layers, metadata that does not fit the model,
            an output path not ending in ``.tflite``, or bad parity images.
        CoverageError: when ``strict_coverage`` and a binary layer stayed float.
        ParityError: when LCE and Keras disagree beyond the thresholds.
    """
    output_path = Path(output_path)
    if output_path.suffix != ".tflite":
        raise ValueError(f"convert_model: output path must end in .tflite, got {output_path}")
    lce_options = dict(lce_options or {})
    if not binary_layers(model):
        raise ValueError(f"model {model.name!r} has no binary layers (no layer with a precision-1 "
                         "kernel quantizer); there is nothing for LCE to accelerate — convert it "
                         "with tf.lite.TFLiteConverter instead")
    _check_metadata(model, metadata)
    io_types = {lce_options.get("inference_input_type", tf.float32),
                lce_options.get("inference_output_type", tf.float32)}
    if parity_images is not None:
        if io_types != {tf.float32}:
            raise ValueError("convert_model: parity needs float32 model inputs and outputs; drop "
                             "parity images or the int8 inference types")
        # Fail on unusable images before the (slow) conversions, not after them.
        parity_images = check_parity_images(parity_images, model)

    # One batch-1 copy serves both converters (each would otherwise clone on its own).
    model_to_convert, _ = with_batch_size_one(model)
    flatbuffer, lce_seconds = timed(convert_lce, model_to_convert, **lce_options)
    timings = {"lce_conversion": lce_seconds}
    info = read_tflite(flatbuffer)
    allowed: list[str] = []
    try:
        coverage = check_coverage(model, info, strict=True)
    except CoverageError as error:
        if strict_coverage:
            raise
        coverage = error.report
        allowed.append(str(error))
        warnings.warn(allowed[-1], CoverageWarning, stacklevel=2)

    parity = None
    if parity_images is not None:
        parity, timings["parity"] = timed(
            check_parity, model, flatbuffer, parity_images, min_top1_agreement=min_top1_agreement,
            max_logit_delta=max_logit_delta, rounding_noise=rounding_noise)
    elif not parity_note:
        parity_note = "no parity images given"

    float_output = float_bytes = None
    if float_reference:
        float_bytes, timings["float_conversion"] = timed(convert_float, model_to_convert)
        float_output = float_twin_path(output_path)
    size = SizeReport(lce_bytes=len(flatbuffer),
                      float_bytes=len(float_bytes) if float_bytes is not None else None)
    metadata_output = sidecar_path(output_path)
    report = ConversionReport(
        model_name=model.name,
        output=str(output_path),
        float_output=str(float_output) if float_output else None,
        metadata_output=str(metadata_output),
        lce_options=_describe_options(lce_options),
        coverage=coverage,
        parity=parity,
        parity_note=parity_note,
        size=size,
        timings=timings,
        warnings=tuple(allowed),
    )
    files: dict[Path, bytes | ModelMetadata] = {output_path: flatbuffer}
    if float_output is not None:
        files[float_output] = float_bytes
    files[metadata_output] = metadata.with_extra(**{METADATA_KEY: report.as_dict()})
    write_files_together(files)
    return report
