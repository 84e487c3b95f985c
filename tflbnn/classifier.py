"""A converted ``.tflite`` classifier with its sidecar metadata, run on the host.

``TFLiteClassifier`` is what ``tflbnn classify`` runs, and the reference the Android demo's JVM
logic is tested against (``tflbnn app-golden``): the same checks that a model and its metadata
belong together, the same preprocessing, the same softmax and the same top-k order.

``read_model_set`` is the one way the ``.tflite`` consumers (``classify``, ``bench``,
``app-model``, ``app-golden``) read a converted model: the file and its sidecar are read under
the folder's shared lock (so a concurrent ``convert`` cannot hand them a mixed set), and the
sidecar's ``model_sha256`` must be the SHA-256 of the bytes read.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

from tflbnn import _backend  # noqa: F401  (must come first)

import numpy as np

from tflbnn.converters import METADATA_KEY, TFLiteModelInfo, read_tflite, run_lce
from tflbnn.converters.flatbuffer import TFLiteFile, read_tflite_file
from tflbnn.data import load_image, preprocess
from tflbnn.metadata import ModelMetadata, check_model_sha256, locked_folder, sidecar_path

__all__ = ["ModelSet", "Prediction", "TFLiteClassifier", "read_model_set", "softmax_if_logits",
           "top_k"]

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


@dataclasses.dataclass(frozen=True)
class ModelSet:
    """A ``.tflite`` and its sidecar, read together and checked to belong together.

    Attributes:
        model: the model file (bytes and SHA-256).
        metadata: the sidecar's content; its ``model_sha256`` equals ``model.sha256``.
        sidecar: the sidecar file.
        float_twin: the float32 twin named by the sidecar, when asked for and recorded (its
            SHA-256 checked against ``extra.conversion.float_twin_sha256``), else ``None``.
        float_twin_note: why there is no float twin, or where it came from.
    """

    model: TFLiteFile
    metadata: ModelMetadata
    sidecar: Path
    float_twin: TFLiteFile | None = None
    float_twin_note: str = ""


def read_model_set(model_path: str | os.PathLike, *, float_twin: bool = False) -> ModelSet:
    """Read a converted ``.tflite`` and its sidecar, and check the sidecar's digest of it.

    Both (and the float twin, if asked for) are read while holding the folder's shared lock,
    which ``write_files_together`` takes exclusively to replace a set.

    Args:
        model_path: the ``.tflite``; its sidecar is ``sidecar_path(model_path)``.
        float_twin: also read the float32 twin the sidecar names. It must be a file in the
            model's own folder (a bare name, not a link leading out of it), whose SHA-256 the
            sidecar records.

    Returns:
        A ``ModelSet``.

    Raises:
        FileNotFoundError: if the model or its sidecar is missing.
        ValueError: if the model is not a TFLite file, the sidecar is invalid or lacks
            ``model_sha256``, the digest differs (the model was modified or belongs to another
            sidecar), or the float twin is outside the folder, missing its digest or modified;
            every message names the files.
    """
    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    folder = path.parent
    with locked_folder(folder, exclusive=False):
        model = read_tflite_file(path)
        sidecar = sidecar_path(path)
        if not sidecar.is_file():
            raise FileNotFoundError(
                f"no metadata {sidecar} next to {path}: a converted model needs the labels, "
                "preprocessing and model_sha256 that 'tflbnn convert' writes there")
        metadata = ModelMetadata.load(sidecar)
        check_model_sha256(metadata, sidecar, path, model.sha256)
        twin, note = (_read_float_twin(path, sidecar, metadata) if float_twin else (None, ""))
    return ModelSet(model=model, metadata=metadata, sidecar=sidecar, float_twin=twin,
                    float_twin_note=note)


def _read_float_twin(model_path: Path, sidecar: Path, metadata: ModelMetadata
                     ) -> tuple[TFLiteFile | None, str]:
    conversion = metadata.extra.get(METADATA_KEY) or {}
    name = conversion.get("float_twin")
    field = f"{METADATA_KEY}.float_twin"
    if not name:
        return None, f"{sidecar} names no float twin (converted with --no-float-reference?)"
    # The schema already refused folder parts; a link could still lead elsewhere.
    twin = model_path.parent / name
    if os.path.lexists(twin) and twin.resolve().parent != model_path.parent.resolve():
        raise ValueError(f"{sidecar}: extra.{field} {name!r} leads to {twin.resolve()}, "
                         f"outside the model's folder {model_path.parent}; refusing to read it")
    if not twin.exists():
        return None, f"float twin {twin} named in {sidecar} does not exist"
    expected = conversion.get("float_twin_sha256")
    if expected is None:
        raise ValueError(f"{sidecar}: extra.{METADATA_KEY}.float_twin_sha256 is missing, so "
                         f"nothing proves {twin} is the float twin of {model_path}; re-run "
                         "tflbnn convert")
    data = read_tflite_file(twin)
    if data.sha256 != expected:
        raise ValueError(f"{twin}: SHA-256 {data.sha256} does not match {sidecar} "
                         f"extra.{METADATA_KEY}.float_twin_sha256 {expected}: the float twin "
                         "was modified or belongs to another conversion; re-run tflbnn convert")
    return data, f"float twin from {sidecar}"


class TFLiteClassifier:
    """A ``.tflite`` image classifier and the ``model.json`` sidecar that describes its input.

    Args:
        model_path: the converted model; its metadata must be next to it (same stem, ``.json``)
            and record its SHA-256 (``read_model_set``).

    Raises:
        FileNotFoundError: if the model or its sidecar is missing.
        ValueError: if the file is not a TFLite model, the metadata is invalid or records
            another SHA-256, or the two disagree (input shape, number of labels, more than one
            input or output); the message names both files.
    """

    def __init__(self, model_path: str | os.PathLike):
        self.path = Path(model_path)
        model_set = read_model_set(self.path)
        self.flatbuffer = model_set.model.data
        self.sha256 = model_set.model.sha256
        self.sidecar = model_set.sidecar
        self.metadata = model_set.metadata
        self.info: TFLiteModelInfo = read_tflite(model_set.model)
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
