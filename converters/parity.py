"""Compare the LCE interpreter's outputs with Keras on the same preprocessed images.

Tolerances. Keras computes a binary conv in float32 on ±1 inputs and ±alpha weights; LCE counts
bits exactly and applies alpha and the folded BatchNorm afterwards. The two agree to float32
rounding (about 1e-6 of the logit scale on the tiny test nets, 2.6e-7 on the reference ReActNet
blocks). But a rounding difference on a pre-activation that is within ~1e-6 of zero flips one
sign, and that flip changes downstream logits by a *large* amount. On real images this happens
to a small fraction of inputs for a correct conversion, so the maximum difference alone cannot
tell a correct conversion from a broken one. The checks are therefore:

* top-1 agreement ≥ ``min_top1_agreement`` (default 0.99: up to 1 image in 100 may flip);
* the per-image relative logit difference, ``max_c |Δ| / max(1, max_c |logit_keras|)``, must be
  ≤ ``max_logit_delta`` (default 1e-3, ~1000× float32 rounding) on all images but at most
  ``floor((1 - min_top1_agreement) · N)`` of them — the same outlier budget as top-1.

A broken conversion (wrong padding value, BN fused with the wrong sign, a missing scale) is off
by ≥1e-2 relative on most images and fails both; a correct one passes with orders of margin.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

__all__ = ["ParityError", "ParityReport", "check_parity", "check_parity_images", "run_lce", "DEFAULT_MIN_TOP1_AGREEMENT",
           "DEFAULT_MAX_LOGIT_DELTA"]

DEFAULT_MIN_TOP1_AGREEMENT = 0.99
DEFAULT_MAX_LOGIT_DELTA = 1e-3
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
        relative_delta_checked: the largest per-image relative Δ once the ``allowed_outliers``
            worst images are set aside; checked against ``max_logit_delta``.
        images_over_delta: images whose relative Δ exceeds ``max_logit_delta``.
        allowed_outliers: ``floor((1 - min_top1_agreement) · num_images)``.
        min_top1_agreement: threshold used.
        max_logit_delta: threshold used.
        kernel: the LCE interpreter's bconv kernel.
    """

    num_images: int
    top1_agreement: float
    max_abs_delta: float
    mean_abs_delta: float
    relative_delta_checked: float
    images_over_delta: int
    allowed_outliers: int
    min_top1_agreement: float
    max_logit_delta: float
    kernel: str

    @property
    def passed(self) -> bool:
        return (self.top1_agreement >= self.min_top1_agreement
                and self.relative_delta_checked <= self.max_logit_delta)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def summary(self) -> str:
        return (f"parity on {self.num_images} images ({self.kernel}): top-1 agreement "
                f"{100 * self.top1_agreement:.2f}% (min {100 * self.min_top1_agreement:.2f}%), "
                f"max |Δlogit| {self.max_abs_delta:.3g}, mean {self.mean_abs_delta:.3g}; relative Δ "
                f"{self.relative_delta_checked:.3g} (max {self.max_logit_delta:g}) with "
                f"{self.images_over_delta} image(s) over it, {self.allowed_outliers} allowed — "
                f"{'passed' if self.passed else 'FAILED'}")


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
        max_logit_delta: bound on the per-image relative logit difference (module docstring).
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
    images = check_parity_images(images, model)
    # Without indirect BGEMM use the reference kernel: the default one rejects grouped bconvs.
    lce_out = run_lce(flatbuffer, images, num_threads=num_threads,
                      use_indirect_bgemm=use_indirect_bgemm,
                      use_reference_bconv=not use_indirect_bgemm)
    keras_out = _keras_outputs(model, images)
    if lce_out.shape != keras_out.shape:
        raise ValueError(f"check_parity: LCE output shape {lce_out.shape} differs from Keras "
                         f"output shape {keras_out.shape}")
    lce_flat = lce_out.reshape(len(images), -1).astype(np.float64)
    keras_flat = keras_out.reshape(len(images), -1).astype(np.float64)
    delta = np.abs(lce_flat - keras_flat)
    scale = np.maximum(1.0, np.abs(keras_flat).max(axis=1))
    relative = delta.max(axis=1) / scale
    # The epsilon keeps e.g. (1 - 0.99) * 100 = 0.99999... from flooring to 0.
    allowed = int(np.floor((1.0 - min_top1_agreement) * len(images) + 1e-9))
    allowed = min(allowed, len(images) - 1)
    report = ParityReport(
        num_images=len(images),
        top1_agreement=float(np.mean(lce_flat.argmax(axis=1) == keras_flat.argmax(axis=1))),
        max_abs_delta=float(delta.max()),
        mean_abs_delta=float(delta.mean()),
        relative_delta_checked=float(np.sort(relative)[len(images) - 1 - allowed]),
        images_over_delta=int(np.sum(relative > max_logit_delta)),
        allowed_outliers=allowed,
        min_top1_agreement=float(min_top1_agreement),
        max_logit_delta=float(max_logit_delta),
        kernel="indirect BGEMM" if use_indirect_bgemm else "reference",
    )
    if raise_on_failure and not report.passed:
        raise ParityError(f"LCE output does not match Keras: {report.summary()}", report)
    return report
