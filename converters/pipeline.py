"""One call from a Keras model to verified ``.tflite`` + float twin + metadata JSON on disk.

``convert_model`` picks the conversion path from the model's layers (``conversion_kind``):

* ``"lce"`` — binary layers (a kernel quantizer that computes ±alpha, found by probing it,
  ``coverage.needs_coverage``): Larq Compute Engine flatbuffer,
  checked for coverage (every binary conv became ``LceBconv2d``) and parity with Keras;
* ``"n2uq_int8"`` — N2UQ quantizers (``tflbnn.n2uq``): full-integer int8 TFLite calibrated on
  real images (``convert_n2uq_int8``), checked by ``check_n2uq_int8`` (every activation int8,
  no float fall-back in the body, levels and kernels exact) and ``check_n2uq_int8_parity``;
* ``"s3_int8_weights"`` — ``S3Conv2D`` / ``S3Dense`` layers (``tflbnn.shift``): the inference
  model (one kernel per layer) as float32 TFLite with every shift weight stored as int8,
  losslessly (``store_int8_weights``), checked by ``check_int8_weights`` (every S3 layer int8)
  and ``check_int8_parity`` (bit-identical to the float twin, and parity with Keras).

Nothing is written until the conversion has passed its checks (an output path that cannot be
written is refused before the conversion starts), and the three files appear together: each is
staged in a temporary folder next to the destination, then all are renamed into place under an
exclusive lock on the folder (``write_files_together``), so concurrent conversions to the same
path never leave a mixed set. The sidecar records the SHA-256 of the ``.tflite`` beside it
(``model_sha256``) and of the float twin (``extra.conversion.float_twin_sha256``); every
consumer of the model checks them.
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

from tflbnn.metadata import (ModelMetadata, check_writable_output, sha256_bytes, sidecar_path,
                             write_files_together)
from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer
from tflbnn.profiling import flatten_layers
from tflbnn.shift import S3Conv2D, S3Dense, to_inference_model
from tflbnn.converters.coverage import (CoverageError, CoverageReport, CoverageWarning,
                                        check_coverage, needs_coverage)
from tflbnn.converters.flatbuffer import LCE_BCONV, grouped_bconvs, read_tflite
from tflbnn.converters.int8_weights import (Int8ParityReport, Int8WeightError, Int8WeightSize,
                                            WeightTensor, check_int8_parity, check_int8_weights,
                                            int8_weight_size, read_weight_tensors,
                                            store_int8_weights)
from tflbnn.converters.lce import convert_float, convert_lce, timed, with_batch_size_one
from tflbnn.converters.n2uq_int8 import (DEFAULT_INT8_MAX_RELATIVE_DELTA, N2UQInt8Check,
                                         check_n2uq_int8, check_n2uq_int8_parity,
                                         convert_n2uq_int8)
from tflbnn.converters.parity import (DEFAULT_MAX_LOGIT_DELTA, DEFAULT_MIN_TOP1_AGREEMENT,
                                      DEFAULT_ROUNDING_NOISE, ParityError, ParityReport,
                                      check_parity,
                                      check_parity_images)
from tflbnn.converters.size import SizeReport

__all__ = ["CONVERSION_KINDS", "ConversionReport", "DEFAULT_MAX_CALIBRATION_IMAGES",
           "DEFAULT_N2UQ_MIN_TOP1_AGREEMENT", "KIND_LCE", "KIND_N2UQ_INT8",
           "KIND_S3_INT8_WEIGHTS", "METADATA_KEY", "conversion_kind", "convert_model",
           "float_twin_path"]

#: Key of the conversion report inside ``ModelMetadata.extra``.
METADATA_KEY = "conversion"

#: Binary layers → Larq Compute Engine flatbuffer.
KIND_LCE = "lce"
#: N2UQ quantizers → full-integer int8 TFLite.
KIND_N2UQ_INT8 = "n2uq_int8"
#: S3 shift-weight layers → float32 TFLite with the shift weights stored as int8.
KIND_S3_INT8_WEIGHTS = "s3_int8_weights"
#: Every conversion path, as ``conversion_kind`` names it.
CONVERSION_KINDS = (KIND_LCE, KIND_N2UQ_INT8, KIND_S3_INT8_WEIGHTS)

#: Top-1 agreement the N2UQ int8 model must reach by default (the project's requirement; the
#: int8 path measures 96.40 / 98.32 / 98.96 % at 2 / 3 / 4 bits on the trained Fashion-MNIST
#: ResNet-18s, see ``tflbnn.converters.n2uq_int8``).
DEFAULT_N2UQ_MIN_TOP1_AGREEMENT = 0.99
#: At most this many representative images calibrate an N2UQ int8 conversion.
DEFAULT_MAX_CALIBRATION_IMAGES = 500

_KIND_WORDS = {
    KIND_LCE: "binary layers (a kernel quantizer computing ±alpha) for LCE",
    KIND_N2UQ_INT8: "N2UQ quantizers for full-integer int8",
    KIND_S3_INT8_WEIGHTS: "S3 shift-weight layers (S3Conv2D/S3Dense) for int8 weights",
}
_KIND_TITLES = {
    KIND_LCE: "LCE",
    KIND_N2UQ_INT8: "N2UQ full-integer int8",
    KIND_S3_INT8_WEIGHTS: "S3 shift weights stored as int8",
}
_QUANTIZER_ATTRIBUTES = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer")


def float_twin_path(output_path: str | os.PathLike) -> Path:
    """Where the float32 twin of ``x.tflite`` goes: ``x.float.tflite`` in the same folder."""
    output_path = Path(output_path)
    return output_path.with_name(f"{output_path.stem}.float.tflite")


def _layer_kind(layer: tf.keras.layers.Layer) -> str | None:
    if isinstance(layer, N2UQActivationQuantizer) or any(
            isinstance(getattr(layer, name, None), (N2UQActivationQuantizer, N2UQWeightQuantizer))
            for name in _QUANTIZER_ATTRIBUTES):
        return KIND_N2UQ_INT8
    if isinstance(layer, (S3Conv2D, S3Dense)):
        return KIND_S3_INT8_WEIGHTS
    if needs_coverage(layer):
        return KIND_LCE
    return None


def conversion_kind(model: tf.keras.Model) -> str:
    """The conversion path a model's layers call for (one of ``CONVERSION_KINDS``).

    A layer (nested models walked into) counts as

    * ``"n2uq_int8"`` when it is an ``N2UQActivationQuantizer`` or has one, or an
      ``N2UQWeightQuantizer``, as its input, kernel or depthwise quantizer;
    * ``"s3_int8_weights"`` when it is an ``S3Conv2D`` or ``S3Dense``;
    * ``"lce"`` when its kernel quantizer has precision 1 (a binary layer).

    Every other layer is float and goes along with any path.

    Args:
        model: a Keras model.

    Returns:
        The one kind found.

    Raises:
        ValueError: when no layer has a kind (nothing to accelerate), or layers of more than
            one kind are mixed; the message names example layers of each kind.
    """
    found: dict[str, list[str]] = {}
    for layer in flatten_layers(model):
        kind = _layer_kind(layer)
        if kind is not None:
            found.setdefault(kind, []).append(layer.name)
    if not found:
        raise ValueError(
            f"model {model.name!r} has no binary layers (no layer whose kernel quantizer "
            "computes ±alpha), no N2UQ quantizers and no S3Conv2D/S3Dense layers; there is nothing "
            "for LCE or the int8 paths to accelerate — convert it with tf.lite.TFLiteConverter "
            "instead")
    if len(found) > 1:
        described = "; ".join(
            f"{_KIND_WORDS[kind]}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for kind, names in found.items())
        raise ValueError(f"model {model.name!r} mixes layers of several conversion paths "
                         f"({described}); convert_model handles one path per model")
    return next(iter(found))


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """Everything a conversion established.

    Attributes:
        model_name: the Keras model's name.
        output: the converted ``.tflite`` path.
        float_output: the float32 twin path, ``None`` without a float reference.
        metadata_output: the sidecar JSON path.
        lce_options: options given to the LCE converter (dtypes as strings); empty for the
            int8 paths.
        coverage: binary-layer coverage (LCE path), else ``None``.
        parity: converted-vs-Keras agreement, ``None`` when not checked.
        parity_note: where the parity images came from, or why parity was not checked.
        size: flatbuffer sizes; ``lce_bytes`` is the converted file whatever its kind.
        timings: seconds spent per stage (``lce_conversion`` or ``int8_conversion``,
            ``int8_check``, ``float_conversion``, ``parity``).
        warnings: problems that were allowed (float fall-back of binary layers, and binary
            layers that LCE's rules keep in float).
        kind: the conversion path, one of ``CONVERSION_KINDS``.
        int8_check: the int8 verification: an ``N2UQInt8Check`` (N2UQ path) or every
            ``WeightTensor`` of the flatbuffer (S3 path); ``None`` for LCE.
        int8_parity: S3 path: the int8-weight model against its float twin and Keras (whose
            ``keras`` part is also ``parity``); else ``None``.
        weight_size: S3 path: file bytes, int8 weights and the ideal size in bits; else
            ``None``.
        calibration_images: N2UQ path: images used to calibrate the int8 model; else ``None``.
        float_sha256: SHA-256 of the float twin written, ``None`` without one (the converted
            model's own digest is the sidecar's ``model_sha256``).
    """

    model_name: str
    output: str
    float_output: str | None
    metadata_output: str
    lce_options: dict[str, Any]
    coverage: CoverageReport | None
    parity: ParityReport | None
    parity_note: str
    size: SizeReport
    timings: dict[str, float]
    warnings: tuple[str, ...] = ()
    kind: str = KIND_LCE
    int8_check: N2UQInt8Check | tuple[WeightTensor, ...] | None = None
    int8_parity: Int8ParityReport | None = None
    weight_size: Int8WeightSize | None = None
    calibration_images: int | None = None
    float_sha256: str | None = None

    def _int8_check_dict(self) -> dict[str, Any] | None:
        if self.int8_check is None:
            return None
        if isinstance(self.int8_check, N2UQInt8Check):
            return {**self.int8_check.as_dict(), "passed": True}
        int8 = [weight for weight in self.int8_check if weight.is_int8]
        return {"int8_tensors": len(int8), "weight_tensors": len(self.int8_check),
                "int8_weights": sum(weight.num_elements for weight in int8),
                "weights": [weight.as_dict() for weight in self.int8_check], "passed": True}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict; file names are relative to the model's folder so it can move."""
        return {
            "kind": self.kind,
            "model_name": self.model_name,
            "tflite": Path(self.output).name,
            "float_twin": Path(self.float_output).name if self.float_output else None,
            "float_twin_sha256": self.float_sha256,
            "lce_options": dict(self.lce_options) if self.kind == KIND_LCE else None,
            "coverage": self.coverage.as_dict() if self.coverage else None,
            "int8_check": self._int8_check_dict(),
            "calibration_images": self.calibration_images,
            "parity": self.parity.as_dict() if self.parity else None,
            "int8_parity": self.int8_parity.as_dict() if self.int8_parity else None,
            "parity_note": self.parity_note,
            "size": self.size.as_dict(),
            "weight_size": self.weight_size.as_dict() if self.weight_size else None,
            "timings_s": {key: round(value, 3) for key, value in self.timings.items()},
            "warnings": list(self.warnings),
        }

    def _check_lines(self) -> list[str]:
        if self.kind == KIND_LCE:
            return [self.coverage.summary()] if self.coverage else []
        if isinstance(self.int8_check, N2UQInt8Check):
            return [f"int8 check passed: {self.int8_check.summary()}",
                    f"  calibrated on {self.calibration_images} image(s)"]
        weights = self.int8_check or ()
        int8 = [weight for weight in weights if weight.is_int8]
        return [f"int8 check passed: {len(int8)} of {len(weights)} weight tensors stored as "
                f"int8 ({sum(weight.num_elements for weight in int8)} weights, every S3 layer); "
                "the rest stay float32"]

    def _size_line(self) -> str:
        if self.weight_size is not None:
            return self.weight_size.summary()
        if self.kind == KIND_LCE:
            return self.size.summary()
        text = f"size: int8 {self.size.lce_bytes / 1024:.1f} KiB"
        if self.size.float_bytes is not None:
            text += (f", float32 {self.size.float_bytes / 1024:.1f} KiB — "
                     f"{self.size.ratio:.2f}x smaller")
        return text

    def summary(self) -> str:
        """A few lines of text for the terminal."""
        seconds = self.timings.get("lce_conversion", self.timings.get("int8_conversion", 0.0))
        lines = [f"converted {self.model_name!r} -> {self.output} "
                 f"({_KIND_TITLES.get(self.kind, self.kind)}) in {seconds:.1f} s",
                 *self._check_lines()]
        if self.int8_parity is not None:
            lines.append(self.int8_parity.summary())
        elif self.parity is not None:
            lines.append(self.parity.summary())
        if self.parity is not None:
            if self.parity_note:
                lines.append(f"  parity images: {self.parity_note}")
        else:
            lines.append(f"parity: NOT checked — {self.parity_note}")
        lines.append(self._size_line())
        lines.extend(f"warning: {text}" for text in self.warnings)
        files = [self.output] + ([self.float_output] if self.float_output else [])
        lines.append(f"wrote {', '.join(files + [self.metadata_output])}")
        return "\n".join(lines)


@dataclasses.dataclass
class _Converted:
    """What one conversion path hands back to ``convert_model``."""

    flatbuffer: bytes
    float_bytes: bytes | None
    timings: dict[str, float]
    parity: ParityReport | None = None
    coverage: CoverageReport | None = None
    int8_check: N2UQInt8Check | tuple[WeightTensor, ...] | None = None
    int8_parity: Int8ParityReport | None = None
    weight_size: Int8WeightSize | None = None
    calibration_images: int | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


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


def _convert_lce(model, parity_images, *, strict_coverage, float_reference, lce_options,
                 parity_options) -> _Converted:
    # One batch-1 copy serves both converters (each would otherwise clone on its own).
    model_to_convert, _ = with_batch_size_one(model)
    flatbuffer, lce_seconds = timed(convert_lce, model_to_convert, **lce_options)
    result = _Converted(flatbuffer, None, {"lce_conversion": lce_seconds})
    info = read_tflite(flatbuffer)
    try:
        result.coverage = check_coverage(model, info, strict=True)
    except CoverageError as error:
        if strict_coverage:
            raise
        result.coverage = error.report
        result.warnings.append(str(error))
        warnings.warn(result.warnings[-1], CoverageWarning, stacklevel=3)
    else:
        # check_coverage has warned already; keep the note with the report (JSON, summary).
        note = result.coverage.ineligible_note()
        if note is not None:
            result.warnings.append(note)
    grouped = grouped_bconvs(info)
    if grouped:
        # Not an error: the file is right, but where it runs needs the right kernel.
        result.warnings.append(
            f"{len(grouped)} grouped {LCE_BCONV} op(s): LCE's default bconv kernel rejects "
            "grouped convolutions; run this model with the indirect-BGEMM kernel "
            "(Interpreter(use_indirect_bgemm=True); on Android an lce-lite build that "
            "registers it)")
    if parity_images is not None:
        result.parity, result.timings["parity"] = timed(
            check_parity, model, flatbuffer, parity_images, **parity_options)
    if float_reference:
        result.float_bytes, result.timings["float_conversion"] = timed(
            convert_float, model_to_convert)
    return result


def _convert_n2uq(model, parity_images, representative_images, *, float_reference,
                  max_calibration_images, parity_options) -> _Converted:
    flatbuffer, seconds = timed(convert_n2uq_int8, model, representative_images,
                                max_calibration_images=max_calibration_images, verify=False)
    result = _Converted(flatbuffer, None, {"int8_conversion": seconds},
                        calibration_images=min(len(representative_images),
                                               max_calibration_images))
    result.int8_check, result.timings["int8_check"] = timed(check_n2uq_int8, flatbuffer, model)
    if parity_images is not None:
        result.parity, result.timings["parity"] = timed(
            check_n2uq_int8_parity, model, flatbuffer, parity_images,
            min_top1_agreement=parity_options["min_top1_agreement"],
            max_relative_delta=parity_options["max_logit_delta"], raise_on_failure=False)
        if not result.parity.passed:
            raise ParityError(f"the int8 N2UQ model of {model.name!r} does not match Keras: "
                              f"{result.parity.summary()}", result.parity)
    if float_reference:
        result.float_bytes, result.timings["float_conversion"] = timed(convert_float, model)
    return result


def _s3_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in flatten_layers(model) if isinstance(layer, (S3Conv2D, S3Dense))]


def _check_s3_weights(model: tf.keras.Model, flatbuffer: bytes,
                      layers: list[tf.keras.layers.Layer]) -> tuple[WeightTensor, ...]:
    """``check_int8_weights`` with every S3 layer required to be int8.

    The converter names a weight after its layer unless the op's output is the model output
    (an S3Dense classifier becomes ``StatefulPartitionedCall:0``), so layers that no tensor
    names are covered by ``require_exact`` (every S3 kernel is exactly int8 × scale) and by
    the count: there must be at least one int8 weight tensor per S3 layer.
    """
    name = f"model {model.name!r}"
    parts = {part for weight in read_weight_tensors(flatbuffer, name) for part in
             (weight.tensor, *weight.name_parts)}
    weights = check_int8_weights(flatbuffer, name=name, require_int8_for=[
        layer.name for layer in layers if layer.name in parts])
    int8 = [weight for weight in weights if weight.is_int8]
    if len(int8) < len(layers):
        raise Int8WeightError(f"{name}: {len(layers)} S3 layers but only {len(int8)} int8 weight "
                              f"tensor(s): {[weight.describe() for weight in weights]}",
                              [weight for weight in weights if not weight.is_int8])
    return weights


def _convert_s3(model, parity_images, *, float_reference, parity_options) -> _Converted:
    layers = _s3_layers(model)
    bits = {layer.bits for layer in layers}

    def convert() -> tuple[bytes, bytes]:
        # The float twin is the inference model's float32 conversion (one kernel per layer, no
        # latents); the int8-weight model is that flatbuffer with its shift weights as int8.
        float_bytes = convert_float(to_inference_model(model))
        return store_int8_weights(float_bytes, name=f"model {model.name!r}"), float_bytes

    (flatbuffer, float_bytes), seconds = timed(convert)
    result = _Converted(flatbuffer, float_bytes if float_reference else None,
                        {"int8_conversion": seconds})
    result.int8_check, result.timings["int8_check"] = timed(_check_s3_weights, model, flatbuffer,
                                                            layers)
    if parity_images is not None:
        result.int8_parity, result.timings["parity"] = timed(
            check_int8_parity, flatbuffer, float_bytes, parity_images, model=model,
            **parity_options)
        result.parity = result.int8_parity.keras
    result.weight_size = int8_weight_size(
        flatbuffer, bits_per_weight=bits.pop() if len(bits) == 1 else None,
        float_flatbuffer=float_bytes if float_reference else None, name=f"model {model.name!r}")
    return result


def convert_model(
    model: tf.keras.Model,
    output_path: str | os.PathLike,
    *,
    metadata: ModelMetadata,
    parity_images: np.ndarray | None = None,
    parity_note: str = "",
    strict_coverage: bool = True,
    min_top1_agreement: float | None = None,
    max_logit_delta: float | None = None,
    rounding_noise: float | None = DEFAULT_ROUNDING_NOISE,
    float_reference: bool = True,
    lce_options: Mapping[str, Any] | None = None,
    kind: str | None = None,
    representative_images: np.ndarray | None = None,
    max_calibration_images: int = DEFAULT_MAX_CALIBRATION_IMAGES,
) -> ConversionReport:
    """Convert, verify, and only then write ``x.tflite``, ``x.float.tflite`` and ``x.json``.

    The path (module docstring) follows ``conversion_kind(model)``. Every check of the path
    must pass before anything is written.

    Args:
        model: a built single-input, single-output Keras classifier with binary layers, N2UQ
            quantizers or S3 layers.
        output_path: destination ``.tflite`` of the converted model.
        metadata: labels and preprocessing; written to the sidecar ``x.json`` with the
            conversion report under ``extra["conversion"]`` (other ``extra`` keys are kept).
        parity_images: preprocessed float32 inputs ``(N, H, W, C)``; ``None`` skips parity.
        parity_note: where the images came from, or why there are none (recorded).
        strict_coverage: LCE path: an eligible binary layer that does not become
            ``LceBconv2d`` is an error; with False it is a ``CoverageWarning`` recorded in the
            report. Binary layers not eligible by LCE's rules (depthwise; grouped with channels
            per group not a multiple of 32) never fail: they are warned about and listed in the
            report with their share of binary MACs (``tflbnn.converters.coverage``). The int8
            paths have no fall-back to allow and reject False.
        min_top1_agreement: parity threshold in [0, 1]; ``None`` takes the path's default
            (``DEFAULT_MIN_TOP1_AGREEMENT``, ``DEFAULT_N2UQ_MIN_TOP1_AGREEMENT`` for N2UQ).
        max_logit_delta: bound on the median relative logit difference; ``None`` takes the
            path's default (``DEFAULT_MAX_LOGIT_DELTA``; ``DEFAULT_INT8_MAX_RELATIVE_DELTA`` of
            ``tflbnn.converters.n2uq_int8`` for N2UQ, whose float parts are int8-rounded).
        rounding_noise: parity tolerance calibration of the float paths (LCE, S3), see
            ``tflbnn.converters.parity``; the N2UQ int8 parity does not use it.
        float_reference: also write the float32 twin ``x.float.tflite`` (the S3 path converts
            it anyway, as the reference of its bit-exactness check).
        lce_options: options for ``convert_lce`` (``target``, ...); LCE path only.
        kind: the expected path; ``None`` takes ``conversion_kind(model)``.
        representative_images: N2UQ path: preprocessed float32 images that calibrate the int8
            model; ``None`` uses ``parity_images``.
        max_calibration_images: N2UQ path: calibrate on at most this many images.

    Returns:
        The ``ConversionReport`` (also stored in the metadata JSON).

    Raises:
        ValueError: for a model with nothing to accelerate or mixed paths, a ``kind`` that
            does not match the model, an option the path does not take, metadata that does not
            fit the model, an output path not ending in ``.tflite`` or that cannot be written
            (checked first), bad parity images, or an N2UQ model without images to calibrate
            on.
        CoverageError: LCE path, when ``strict_coverage`` and an eligible binary layer stayed
            float.
        ParityError: when the converted model and Keras disagree beyond the thresholds (LCE,
            N2UQ).
        N2UQInt8Error: N2UQ path, when the flatbuffer is not the exact full-integer model.
        Int8WeightError: S3 path, when a shift weight is not stored as int8 or the int8-weight
            model differs from its float twin or from Keras.
    """
    output_path = Path(output_path)
    if output_path.suffix != ".tflite":
        raise ValueError(f"convert_model: output path must end in .tflite, got {output_path}")
    # Refuse an unwritable destination before the (slow) conversion and checks, not after.
    check_writable_output(output_path)
    detected = conversion_kind(model)
    if kind is not None and kind != detected:
        if kind not in CONVERSION_KINDS:
            raise ValueError(f"convert_model: kind must be one of {CONVERSION_KINDS}, got "
                             f"{kind!r}")
        raise ValueError(f"convert_model: kind {kind!r} was asked for, but model {model.name!r} "
                         f"has {_KIND_WORDS[detected]} ({detected!r})")
    kind = detected
    lce_options = dict(lce_options or {})
    if kind != KIND_LCE and (lce_options or not strict_coverage):
        given = sorted(lce_options) + ([] if strict_coverage else ["strict_coverage=False"])
        raise ValueError(f"convert_model: {given} apply to LCE conversion only; model "
                         f"{model.name!r} converts as {kind!r}")
    if max_calibration_images < 1:
        raise ValueError(f"convert_model: max_calibration_images must be >= 1, got "
                         f"{max_calibration_images}")
    _check_metadata(model, metadata)
    io_types = {lce_options.get("inference_input_type", tf.float32),
                lce_options.get("inference_output_type", tf.float32)}
    if parity_images is not None:
        if io_types != {tf.float32}:
            raise ValueError("convert_model: parity needs float32 model inputs and outputs; drop "
                             "parity images or the int8 inference types")
        # Fail on unusable images before the (slow) conversions, not after them.
        parity_images = check_parity_images(parity_images, model)
    if kind == KIND_N2UQ_INT8:
        if representative_images is None:
            representative_images = parity_images
        if representative_images is None:
            raise ValueError(f"convert_model: model {model.name!r} has N2UQ quantizers; its "
                             "full-integer int8 conversion calibrates on real images — give "
                             "representative_images or parity_images")
        representative_images = check_parity_images(representative_images, model)
    elif representative_images is not None:
        raise ValueError(f"convert_model: representative_images calibrate the N2UQ int8 path "
                         f"only; model {model.name!r} converts as {kind!r}")

    parity_options: dict[str, Any] = {
        "min_top1_agreement": (min_top1_agreement if min_top1_agreement is not None else
                               DEFAULT_N2UQ_MIN_TOP1_AGREEMENT if kind == KIND_N2UQ_INT8 else
                               DEFAULT_MIN_TOP1_AGREEMENT),
        "max_logit_delta": (max_logit_delta if max_logit_delta is not None else
                            DEFAULT_INT8_MAX_RELATIVE_DELTA if kind == KIND_N2UQ_INT8 else
                            DEFAULT_MAX_LOGIT_DELTA),
    }
    if kind != KIND_N2UQ_INT8:
        parity_options["rounding_noise"] = rounding_noise
    if kind == KIND_LCE:
        result = _convert_lce(model, parity_images, strict_coverage=strict_coverage,
                              float_reference=float_reference, lce_options=lce_options,
                              parity_options=parity_options)
    elif kind == KIND_N2UQ_INT8:
        result = _convert_n2uq(model, parity_images, representative_images,
                               float_reference=float_reference,
                               max_calibration_images=max_calibration_images,
                               parity_options=parity_options)
    else:
        result = _convert_s3(model, parity_images, float_reference=float_reference,
                             parity_options=parity_options)
    if parity_images is None and not parity_note:
        parity_note = "no parity images given"

    if isinstance(result.int8_check, N2UQInt8Check):
        # Checked as bytes; name it after the file it becomes.
        result.int8_check = dataclasses.replace(result.int8_check, source=output_path.name)
    float_output = float_twin_path(output_path) if result.float_bytes is not None else None
    size = SizeReport(lce_bytes=len(result.flatbuffer),
                      float_bytes=len(result.float_bytes) if result.float_bytes is not None
                      else None)
    metadata_output = sidecar_path(output_path)
    report = ConversionReport(
        model_name=model.name,
        output=str(output_path),
        float_output=str(float_output) if float_output else None,
        metadata_output=str(metadata_output),
        lce_options=_describe_options(lce_options) if kind == KIND_LCE else {},
        coverage=result.coverage,
        parity=result.parity,
        parity_note=parity_note,
        size=size,
        timings=result.timings,
        warnings=tuple(result.warnings),
        kind=kind,
        int8_check=result.int8_check,
        int8_parity=result.int8_parity,
        weight_size=result.weight_size,
        calibration_images=result.calibration_images,
        float_sha256=(sha256_bytes(result.float_bytes) if float_output is not None else None),
    )
    files: dict[Path, bytes | ModelMetadata] = {output_path: result.flatbuffer}
    if float_output is not None:
        files[float_output] = result.float_bytes
    files[metadata_output] = metadata.with_extra(
        **{METADATA_KEY: report.as_dict()}).for_model(result.flatbuffer)
    write_files_together(files)
    return report
