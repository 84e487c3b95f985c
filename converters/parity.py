"""Compare the LCE interpreter's outputs with Keras on the same preprocessed images.

Why the tolerance is not simply "max |Δlogit| < ε". Keras computes a binary conv in float32 on
±1 inputs and ±alpha weights; LCE counts bits exactly and applies alpha and the folded BatchNorm
afterwards. Both agree to float32 rounding (≈1e-6 of the logit scale). But a pre-activation that
lies within rounding of zero takes a different sign in the two, and the flip moves the logits
by a *large* amount. How often that happens grows with the number of activations: measured on
random-init ReActNet-A (LCE 0.16.0, indirect BGEMM), the per-image relative difference
``r = max_c |Δ| / max(1, max_c |logit_keras|)`` was

* 28×28 Fashion-MNIST (200 images): median 5.8e-7, a few flipped images up to 0.11;
* 224×224 photos (7 images): 2 images at 8e-7, 5 flipped at 3e-3…2.6e-2 — and Keras against
  *itself* on inputs perturbed by 1e-5 (relative) moved by a median 2.7e-2.

So a deep binary net at ImageNet resolution is chaotic under float32 rounding, and a fixed bound
would reject correct conversions. The checks are therefore:

* top-1 agreement ≥ ``min_top1_agreement`` (default 0.99);
* the **median** image's ``r`` ≤ the tolerance, where the tolerance is ``max_logit_delta``
  (default 1e-3, ~1000× float32 rounding) or, if larger, ``2 ×`` the median ``r`` of Keras
  against Keras on inputs perturbed by ``rounding_noise`` (default 1e-5 relative, the size of
  the accumulated float32 differences between two implementations of a deep net).

A breakage changes *every* image, flips only some: on the 28×28 net a 1 % BatchNorm-scale error
in one layer gave median 0.11 (minimum 0.04), a wrong pad value 0.42, against 5.8e-7 for the
correct conversion. At 224×224 a wrong pad value (median 0.08), a negated BN scale (0.25) or
shifted BN offsets (0.22) exceed the calibrated tolerance (2 × 0.027), while a 1–5 % error in one
layer (0.033) is below the model's own rounding sensitivity and cannot be seen at its output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

__all__ = ["ParityError", "ParityReport", "check_parity", "check_parity_images", "run_lce",
           "DEFAULT_MIN_TOP1_AGREEMENT", "DEFAULT_MAX_LOGIT_DELTA", "DEFAULT_ROUNDING_NOISE"]

DEFAULT_MIN_TOP1_AGREEMENT = 0.99
DEFAULT_MAX_LOGIT_DELTA = 1e-3
DEFAULT_ROUNDING_NOISE = 1e-5
# The tolerance is this many times the model's own median sensitivity to rounding-level noise.
_NOISE_FACTOR = 2.0
_KERAS_BATCH = 64


class ParityError(ValueError):
    """LCE and Keras disagree beyond the thresholds; ``report`` holds the figures."""

    def __init__(self, message: str, report: "ParityReport"):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """LCE-vs-Keras agreement on a set of images.

    Attributes:
        num_images: images compared.
        top1_agreement: fraction of images with the same arg-max.
        max_abs_delta: largest |Δ logit| over all images and classes.
        mean_abs_delta: mean |Δ logit| over all images and classes.
        median_relative_delta: median over images of ``r`` (module docstring); the checked value.
        max_relative_delta: largest ``r``.
        noise_relative_delta: median ``r`` of Keras against itself on inputs perturbed by
            ``rounding_noise``; ``None`` when not measured.
        tolerance: the bound applied to ``median_relative_delta``.
        images_over_tolerance: images whose ``r`` exceeds ``tolerance`` (sign flips).
        min_top1_agreement: threshold used.
        max_logit_delta: threshold given.
        rounding_noise: relative input perturbation used for the calibration, or ``None``.
        kernel: the LCE interpreter's bconv kernel.
        lce_predictions: arg-max class of the LCE outputs per image (not in ``as_dict``).
        keras_predictions: arg-max class of the Keras outputs per image (not in ``as_dict``).
    """

    num_images: int
    top1_agreement: float
    max_abs_delta: float
    mean_abs_delta: float
    median_relative_delta: float
    max_relative_delta: float
    noise_relative_delta: float | None
    tolerance: float
    images_over_tolerance: int
    min_top1_agreement: float
    max_logit_delta: float
    rounding_noise: float | None
    kernel: str
    lce_predictions: np.ndarray | None = dataclasses.field(default=None, repr=False)
    keras_predictions: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return (self.top1_agreement >= self.min_top1_agreement
                and self.median_relative_delta <= self.tolerance)

    def as_dict(self) -> dict[str, Any]:
        figures = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                   if not field.name.endswith("_predictions")}
        return {**figures, "passed": self.passed}

    def summary(self) -> str:
        if self.noise_relative_delta is None:
            origin = "max_logit_delta"
        else:
            origin = (f"max of max_logit_delta {self.max_logit_delta:g} and {_NOISE_FACTOR:g}x "
                      f"Keras' own rounding sensitivity {self.noise_relative_delta:.3g}")
        return (f"parity on {self.num_images} images ({self.kernel}): top-1 agreement "
                f"{100 * self.top1_agreement:.2f}% (min {100 * self.min_top1_agreement:.2f}%); "
                f"|Δlogit| max {self.max_abs_delta:.3g}, mean {self.mean_abs_delta:.3g}; "
                f"relative Δ median {self.median_relative_delta:.3g}, max "
                f"{self.max_relative_delta:.3g} (tolerance {self.tolerance:.3g} = {origin}; "
                f"{self.images_over_tolerance} image(s) over it) — "
                f"{'passed' if self.passed else 'FAILED'}")


def _relative_deltas(outputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    outputs = outputs.reshape(len(outputs), -1).astype(np.float64)
    reference = reference.reshape(len(reference), -1).astype(np.float64)
    scale = np.maximum(1.0, np.abs(reference).max(axis=1))
    return np.abs(outputs - reference).max(axis=1) / scale


def check_parity_images(images: Any, model: tf.keras.Model) -> np.ndarray:
    """Validate parity inputs for ``model``: float, ``(N, *model input shape)``, N ≥ 1.

    Args:
        images: candidate inputs.
        model: a single-input Keras model.

    Returns:
        The images as a float32 array.

    Raises:
        ValueError: naming the model, the expected and the given shape or dtype.
    """
    if isinstance(model.input_shape, list):
        raise ValueError(f"check_parity: model {model.name!r} has several inputs; parity is "
                         "defined for single-input classifiers")
    expected = tuple(model.input_shape)
    owner = f"model {model.name!r}"
    images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{owner}: parity images must be preprocessed float32 inputs, got dtype "
                         f"{images.dtype} (apply the model's preprocessing first)")
    if images.ndim != len(expected) or tuple(images.shape[1:]) != tuple(expected[1:]):
        raise ValueError(f"{owner}: parity images have shape {images.shape}, the model expects "
                         f"(N, {', '.join(str(d) for d in expected[1:])})")
    if len(images) == 0:
        raise ValueError(f"{owner}: no parity images given")
    return images.astype(np.float32, copy=False)


def run_lce(flatbuffer: bytes, images: np.ndarray, *, num_threads: int = 1,
            use_indirect_bgemm: bool = True, use_reference_bconv: bool = False) -> np.ndarray:
    """Run the LCE interpreter on a batch of inputs, one image at a time (LCE fixes batch 1).

    Args:
        flatbuffer: LCE model bytes.
        images: float32 array ``(N, ...)`` of preprocessed inputs.
        num_threads: interpreter threads.
        use_indirect_bgemm: use the indirect-BGEMM bconv kernel (fast on x86, handles groups).
        use_reference_bconv: use the reference bconv kernel.

    Returns:
        The model outputs, ``(N, ...)``.
    """
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer, num_threads=num_threads,
                              use_reference_bconv=use_reference_bconv,
                              use_indirect_bgemm=use_indirect_bgemm)
    return np.asarray(interpreter.predict(images))


def _keras_outputs(model: tf.keras.Model, images: np.ndarray) -> np.ndarray:
    outputs = []
    for start in range(0, len(images), _KERAS_BATCH):
        result = model(images[start:start + _KERAS_BATCH], training=False)
        if isinstance(result, (list, tuple, dict)):
            raise ValueError(f"check_parity: model {model.name!r} has several outputs; parity "
                             "is defined for single-output classifiers")
        outputs.append(np.asarray(result))
    return np.concatenate(outputs)


def check_parity(
    model: tf.keras.Model,
    flatbuffer: bytes,
    images: np.ndarray,
    *,
    min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT,
    max_logit_delta: float = DEFAULT_MAX_LOGIT_DELTA,
    rounding_noise: float | None = DEFAULT_ROUNDING_NOISE,
    num_threads: int = 1,
    use_indirect_bgemm: bool = True,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Compare ``model(images, training=False)`` with the LCE interpreter on ``flatbuffer``.

    Args:
        model: the Keras model that was converted.
        flatbuffer: its LCE flatbuffer.
        images: preprocessed float32 inputs ``(N, H, W, C)`` matching the model input.
        min_top1_agreement: minimum fraction of images with the same arg-max, in [0, 1].
        max_logit_delta: bound on the median per-image relative logit difference (module
            docstring); raised to twice the model's own rounding sensitivity when that is larger.
        rounding_noise: relative input perturbation used to measure that sensitivity; ``None``
            applies ``max_logit_delta`` as it is.
        num_threads: LCE interpreter threads.
        use_indirect_bgemm: bconv kernel for the run (reference kernel when False).
        raise_on_failure: raise ``ParityError`` when a threshold is missed.

    Returns:
        A ``ParityReport``.

    Raises:
        ValueError: for images of the wrong shape or dtype, or a threshold out of range.
        ParityError: when ``raise_on_failure`` and a threshold is missed.
    """
    if not 0.0 <= min_top1_agreement <= 1.0:
        raise ValueError(f"check_parity: min_top1_agreement must be in [0, 1], got "
                         f"{min_top1_agreement}")
    if max_logit_delta < 0:
        raise ValueError(f"check_parity: max_logit_delta must be >= 0, got {max_logit_delta}")
    if rounding_noise is not None and rounding_noise <= 0:
        raise ValueError(f"check_parity: rounding_noise must be positive or None, got "
                         f"{rounding_noise}")
    images = check_parity_images(images, model)
    # Without indirect BGEMM use the reference kernel: the default one rejects grouped bconvs.
    lce_out = run_lce(flatbuffer, images, num_threads=num_threads,
                      use_indirect_bgemm=use_indirect_bgemm,
                      use_reference_bconv=not use_indirect_bgemm)
    keras_out = _keras_outputs(model, images)
    if lce_out.shape != keras_out.shape:
        raise ValueError(f"check_parity: LCE output shape {lce_out.shape} differs from Keras "
                         f"output shape {keras_out.shape}")
    relative = _relative_deltas(lce_out, keras_out)
    tolerance, noise = float(max_logit_delta), None
    if rounding_noise is not None:
        # Fixed seed: the same model and images always get the same tolerance.
        factors = 1.0 + rounding_noise * np.random.default_rng(0).standard_normal(images.shape)
        perturbed = _keras_outputs(model, (images * factors).astype(np.float32))
        noise = float(np.median(_relative_deltas(perturbed, keras_out)))
        tolerance = max(tolerance, _NOISE_FACTOR * noise)
    lce_flat = lce_out.reshape(len(images), -1)
    keras_flat = keras_out.reshape(len(images), -1)
    delta = np.abs(lce_flat.astype(np.float64) - keras_flat)
    report = ParityReport(
        num_images=len(images),
        top1_agreement=float(np.mean(lce_flat.argmax(axis=1) == keras_flat.argmax(axis=1))),
        lce_predictions=lce_flat.argmax(axis=1),
        keras_predictions=keras_flat.argmax(axis=1),
        max_abs_delta=float(delta.max()),
        mean_abs_delta=float(delta.mean()),
        median_relative_delta=float(np.median(relative)),
        max_relative_delta=float(relative.max()),
        noise_relative_delta=noise,
        tolerance=tolerance,
        images_over_tolerance=int(np.sum(relative > tolerance)),
        min_top1_agreement=float(min_top1_agreement),
        max_logit_delta=float(max_logit_delta),
        rounding_noise=rounding_noise,
        kernel="indirect BGEMM" if use_indirect_bgemm else "reference",
    )
    if raise_on_failure and not report.passed:
        raise ParityError(f"LCE output does not match Keras: {report.summary()}", report)
    return report
