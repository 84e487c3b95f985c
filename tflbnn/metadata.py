"""What travels with a model: class labels and the exact input preprocessing.

A trained ``model.keras`` and a converted ``model.tflite`` both get a sidecar ``model.json``
(same stem) holding a ``ModelMetadata``, so a classifier (the CLI, the Android demo) needs
nothing else to feed the model and name its outputs.

Preprocessing rule (the same everywhere, Python and the app):
    1. decode the image to uint8 RGB or grey; convert to ``channels`` (grey uses the ITU-R
       BT.601 luma weights 0.2989, 0.5870, 0.1140, as ``tf.image.rgb_to_grayscale``);
    2. centre-crop a square-ish window keeping ``center_crop`` of each side (1.0 keeps all);
    3. resize to ``height × width`` with bilinear interpolation, half-pixel centres, no
       antialiasing (``tf.image.resize(method="bilinear")``);
    4. scale to [0, 1] by dividing by 255, then ``(x - mean[c]) / std[c]`` per channel.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Preprocessing", "ModelMetadata", "sidecar_path", "write_bytes_atomic",
           "write_files_together", "labels_from_sequence"]

FORMAT_NAME = "tflbnn-model-metadata"
FORMAT_VERSION = 1


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A crash or an exception never leaves a half-written file at ``path``.

    Args:
        path: destination file; its directory is created if missing.
        data: bytes to write.

    Returns:
        The destination as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def write_files_together(files: Mapping[str | os.PathLike, "bytes | ModelMetadata"]) -> list[Path]:
    """Write several files into one folder all together or not at all.

    Each file is staged in a temporary folder next to the destinations, then all are renamed
    into place; if anything fails, the staged files and any already renamed are removed (and the
    folder too, when this call created it), so readers never see a partial set.

    Args:
        files: destination path -> content, either bytes or a ``ModelMetadata`` (saved as JSON).
            All destinations must be in the same folder.

    Returns:
        The destinations, in the order given.

    Raises:
        ValueError: if ``files`` is empty or the destinations are in different folders.
    """
    destinations = [Path(path) for path in files]
    if not destinations:
        raise ValueError("write_files_together: no files given")
    parent = destinations[0].parent
    if any(path.parent != parent for path in destinations):
        raise ValueError(f"write_files_together: all files must be in one folder, got "
                         f"{sorted({str(path.parent) for path in destinations})}")
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tflbnn-stage-", dir=parent))
    placed: list[Path] = []
    try:
        staged = []
        for destination, content in zip(destinations, files.values()):
            temporary = staging / destination.name
            if isinstance(content, ModelMetadata):
                content.save(temporary)
            else:
                write_bytes_atomic(temporary, content)
            staged.append((temporary, destination))
        for temporary, destination in staged:
            os.replace(temporary, destination)
            placed.append(destination)
    except BaseException:
        for destination in placed:
            destination.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent:
            shutil.rmtree(parent, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return destinations


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """The metadata JSON that belongs to a model file: same directory and stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw images become the model's float input (see the module docstring for the rule).

    Attributes:
        height: input height in pixels.
        width: input width in pixels.
        channels: 1 (grey) or 3 (RGB).
        mean: per-channel mean, in [0, 1] pixel units (one value per channel).
        std: per-channel standard deviation, in [0, 1] pixel units.
        center_crop: fraction of each side kept by the centre crop before resizing.
    """

    height: int
    width: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    center_crop: float = 1.0

    def __post_init__(self):
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"Preprocessing: height and width must be positive, got "
                             f"{self.height}x{self.width}")
        if self.channels not in (1, 3):
            raise ValueError(f"Preprocessing: channels must be 1 or 3, got {self.channels}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        for field in ("mean", "std"):
            values = getattr(self, field)
            if len(values) != self.channels:
                raise ValueError(f"Preprocessing: {field} needs {self.channels} values (one per "
                                 f"channel), got {len(values)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"Preprocessing: std must be positive, got {self.std}")
        if not 0.0 < self.center_crop <= 1.0:
            raise ValueError(f"Preprocessing: center_crop must be in (0, 1], got {self.center_crop}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model input shape without the batch axis, ``(height, width, channels)``."""
        return (self.height, self.width, self.channels)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Apply step 4 of the rule to uint8 (or 0–255 float) images of the final size.

        Args:
            images: array ``(..., height, width, channels)`` with values in 0–255.

        Returns:
            float32 array of the same shape.
        """
        scaled = np.asarray(images, dtype=np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (scaled - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "center_crop": self.center_crop,
            "resize": "bilinear",
            "layout": "NHWC",
            "dtype": "float32",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        try:
            return cls(
                height=int(data["height"]),
                width=int(data["width"]),
                channels=int(data["channels"]),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
                center_crop=float(data.get("center_crop", 1.0)),
            )
        except KeyError as missing:
            raise ValueError(f"preprocessing is missing the field {missing}") from None


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """Labels and preprocessing of a classifier, stored as a JSON sidecar.

    Attributes:
        labels: class names, index = output unit.
        preprocessing: the input rule.
        name: a short model name (e.g. the zoo name).
        extra: free-form facts (training accuracy, zoo options, conversion report, ...).
    """

    labels: tuple[str, ...]
    preprocessing: Preprocessing
    name: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        if not self.labels:
            raise ValueError("ModelMetadata: labels must not be empty")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": self.name,
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict(),
            "extra": self.extra,
        }

    def with_extra(self, **extra: Any) -> "ModelMetadata":
        """A copy with ``extra`` updated by the given keys."""
        return dataclasses.replace(self, extra={**self.extra, **extra})

    def save(self, path: str | os.PathLike) -> Path:
        """Write the metadata as JSON, atomically. Returns the path written."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False, default=_json_default)
        return write_bytes_atomic(path, (text + "\n").encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelMetadata":
        """Read metadata written by ``save``.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file is not tflbnn metadata or a field is missing or invalid;
                the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model metadata file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a JSON metadata file ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: not a tflbnn model metadata file "
                             f"(expected \"format\": \"{FORMAT_NAME}\")")
        try:
            return cls(
                labels=tuple(data["labels"]),
                preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                name=str(data.get("name", "")),
                extra=dict(data.get("extra", {})),
            )
        except KeyError as missing:
            raise ValueError(f"{path}: metadata is missing the field {missing}") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: invalid metadata: {error}") from None


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")


def labels_from_sequence(labels: Sequence[str]) -> tuple[str, ...]:
    """Validate class names: a non-empty sequence of unique names.

    Raises:
        ValueError: for an empty sequence or duplicate names.
    """
    labels = tuple(str(label) for label in labels)
    if not labels:
        raise ValueError("class labels must not be empty")
    if len(set(labels)) != len(labels):
        raise ValueError(f"class labels must be unique, got {list(labels)}")
    return labels
