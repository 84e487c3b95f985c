"""A converted ``.tflite`` classifier with its sidecar metadata, run on the host.

``TFLiteClassifier`` is what ``tflbnn classify`` runs, and the reference the Android demo's JVM
logic is tested against (``tflbnn app-golden``): the same checks that a model and its metadata
belong together, the same preprocessing, the same softmax and the same top-k order.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

from tflbnn import _backend  # noqa: F401  (must come first)

import numpy as np

from tflbnn.converters import TFLiteModelInfo, read_tflite, run_lce
from tflbnn.data import load_image, preprocess
from tflbnn.metadata import ModelMetadata, sidecar_path

__all__ = ["Prediction", "TFLiteClassifier", "softmax_if_logits", "top_k"]

# Outputs that are already a distribution (a model ending in softmax) must not be re-normalised.
_PROBABILITY_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One ranked class.

    Attributes:
        index: output unit.
        label: its class name.
        probability: softmax probability (or the model's own, when it outputs a distribution).
    """

    index: int
    label: str
    probability: float


def softmax_if_logits(outputs) -> np.ndarray:
    """Row-wise softmax in float64, unless each row already is a probability distribution.

    A row counts as a distribution when every value is non-negative and the row sums to 1
    within 1e-3; such rows are returned unchanged (as float64).

    Args:
        outputs: array ``(N, classes)``.

    Returns:
        float64 probabilities of the same shape.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    sums = outputs.sum(axis=1)
    if np.all(outputs >= 0) and np.all(np.abs(sums - 1.0) <= _PROBABILITY_TOLERANCE):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def top_k(probabilities: Sequence[float], labels: Sequence[str], k: int) -> list[Prediction]:
    """The ``k`` most probable classes, highest first; ties go to the lower index.

    Args:
        probabilities: one row of class probabilities.
        labels: class names, one per probability.
        k: how many to return (at most the number of classes).

    Returns:
        ``min(k, classes)`` predictions.

    Raises:
        ValueError: if ``k < 1`` or ``labels`` and ``probabilities`` differ in length.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if k < 1:
        raise ValueError(f"top_k: k must be at least 1, got {k}")
    if len(labels) != len(probabilities):
        raise ValueError(f"top_k: {len(labels)} labels for {len(probabilities)} probabilities")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [Prediction(int(index), str(labels[index]), float(probabilities[index]))
            for index in order]


class TFLiteClassifier:
    """A ``.tflite`` image classifier and the ``model.json`` sidecar that describes its input.

    Args:
        model_path: the converted model; its metadata must be next to it (same stem, ``.json``).

    Raises:
        FileNotFoundError: if the model or its sidecar is missing.
        ValueError: if the file is not a TFLite model, the metadata is invalid, or the two
            disagree (input shape, number of labels, more than one input or output); the
            message names both files.
    """

    def __init__(self, model_path: str | os.PathLike):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.flatbuffer = self.path.read_bytes()
        self.info: TFLiteModelInfo = read_tflite(self.flatbuffer, name=str(self.path))
        self.sidecar = sidecar_path(self.path)
        if not self.sidecar.is_file():
            raise FileNotFoundError(
                f"no metadata {self.sidecar} next to {self.path}: a classifier needs the labels "
                "and preprocessing that 'tflbnn convert' writes there")
        self.metadata = ModelMetadata.load(self.sidecar)
        self._check_consistent()

    def _check_consistent(self) -> None:
        info, metadata = self.info, self.metadata
        if len(info.inputs) != 1 or len(info.outputs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output, found "
                             f"{len(info.inputs)} and {len(info.outputs)}")
        if info.inputs[0].dtype != "float32":
            raise ValueError(f"{self.path}: expected a float32 input, found "
                             f"{info.inputs[0].dtype}")
        expected = tuple(info.inputs[0].shape[1:])
        if expected != metadata.preprocessing.input_shape:
            raise ValueError(f"{self.sidecar}: preprocessing gives "
                             f"{metadata.preprocessing.input_shape} but {self.path} expects "
                             f"{expected}")
        if self.num_classes != len(metadata.labels):
            raise ValueError(f"{self.sidecar}: {len(metadata.labels)} labels but {self.path} has "
                             f"{self.num_classes} outputs")

    @property
    def num_classes(self) -> int:
        """Size of the model's output."""
        return int(self.info.outputs[0].shape[-1])

    def preprocess_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Decode image files and apply the metadata's preprocessing rule.

        Args:
            paths: image files.

        Returns:
            float32 array ``(N, height, width, channels)``.

        Raises:
            FileNotFoundError, ValueError: for a missing or undecodable image (named).
        """
        return np.stack([np.asarray(preprocess(load_image(path), self.metadata.preprocessing))
                         for path in paths])

    def outputs(self, inputs: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Run the model in the LCE interpreter on preprocessed inputs.

        Args:
            inputs: float32 array ``(N, height, width, channels)``.
            num_threads: interpreter threads.

        Returns:
            float32 array ``(N, classes)`` of raw outputs (logits, or probabilities when the
            model ends in a softmax).
        """
        return np.asarray(run_lce(self.flatbuffer, inputs, num_threads=num_threads),
                          dtype=np.float32).reshape(len(inputs), -1)

    def predict(self, inputs: np.ndarray, k: int = 5, num_threads: int = 1
                ) -> list[list[Prediction]]:
        """The top-``k`` classes of each preprocessed input.

        Args:
            inputs: float32 array ``(N, height, width, channels)``.
            k: classes per input.
            num_threads: interpreter threads.

        Returns:
            One list of predictions per input.
        """
        return self.rank(self.outputs(inputs, num_threads=num_threads), k)

    def rank(self, outputs: np.ndarray, k: int = 5) -> list[list[Prediction]]:
        """Softmax (unless already probabilities) and top-``k`` of raw model outputs.

        Args:
            outputs: array ``(N, classes)`` from ``outputs``.
            k: classes per row.

        Returns:
            One list of predictions per row.
        """
        probabilities = softmax_if_logits(outputs)
        return [top_k(row, self.metadata.labels, k) for row in probabilities]
