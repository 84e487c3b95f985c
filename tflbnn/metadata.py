"""What travels with a model: class labels, the exact input preprocessing, and the file it fits.

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

Sidecar schema, version 1 (``validate_metadata``; the Android app mirrors it in Java, and both
are tested on the cases in ``tests/data/sidecar_cases``):
    - ``format`` == ``"tflbnn-model-metadata"``; ``version`` a JSON integer == 1;
    - ``name``: string, optional;
    - ``labels``: array of 1+ non-empty strings without duplicates;
    - ``preprocessing``: object; ``height``, ``width`` JSON integers in 1..``MAX_IMAGE_SIDE``;
      ``channels`` 1 or 3; ``mean``, ``std`` arrays of ``channels`` finite numbers, every
      ``std`` > 0; ``center_crop`` finite in (0, 1] (optional, 1.0); ``resize`` ==
      ``"bilinear"``, ``layout`` == ``"NHWC"``, ``dtype`` == ``"float32"`` (each optional);
    - ``extra``: object, optional; ``extra.conversion`` (the conversion report) an object whose
      ``float_twin`` is null or a bare file name and ``float_twin_sha256`` null or a digest;
    - ``model_sha256``: the SHA-256 (64 lowercase hex digits) of the ``.tflite`` beside the
      sidecar. Optional in the schema (training's ``.keras`` sidecars have none); every reader
      of a ``.tflite`` requires it and compares it with the file (``check_model_sha256``);
    - no ``NaN`` or ``Infinity`` anywhere (they are not JSON), and booleans are not numbers.
Every error names the file, the dotted field (``preprocessing.std[0]``) and the problem.

A model and its sidecar form a set that ``write_files_together`` replaces as a whole, under an
exclusive lock on their folder; readers take the shared lock (``locked_folder``) so they never
see one file of an old set and one of a new set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Preprocessing", "ModelMetadata", "MAX_IMAGE_SIDE", "MAX_SIDECAR_BYTES",
           "check_model_sha256", "check_writable_output", "labels_from_sequence",
           "locked_folder", "open_regular_file", "sha256_bytes", "sidecar_path",
           "validate_metadata", "write_bytes_atomic", "write_files_together"]

FORMAT_NAME = "tflbnn-model-metadata"
FORMAT_VERSION = 1
#: Largest image side a sidecar may ask for: 8192 px (a 8192x8192x3 float32 input is 768 MiB,
#: far beyond any classifier this package converts; larger values are typos or hostile).
MAX_IMAGE_SIDE = 8192
#: Largest sidecar read: 16 MiB (a conversion report with per-layer coverage and int8 weight
#: lists is tens of KiB; the bound keeps a hostile file from being read into memory).
MAX_SIDECAR_BYTES = 16 << 20

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIXED_STRINGS = {"resize": "bilinear", "layout": "NHWC", "dtype": "float32"}
_READ_CHUNK = 1 << 20


class _FieldError(ValueError):
    """A schema violation: the message is ``"<dotted field> <problem>"``."""


class _NonFinite:
    """What the JSON parser returns for the non-JSON tokens NaN, Infinity and -Infinity.

    Keeping the token as an object (instead of letting ``json`` turn it into a float, or
    failing without a field name) lets the validator report which field holds it.
    """

    def __init__(self, token: str):
        self.token = token


def _describe(value: Any) -> str:
    """A value as an error message shows it: its JSON type and (short) content."""
    if isinstance(value, _NonFinite):
        return value.token
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _require(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data:
        raise _FieldError(f"{field} is missing")
    return data[key]


def _check_integer(value: Any, field: str) -> int:
    # JSON integers only: 28.0 and true are not sizes.
    if type(value) is not int:
        raise _FieldError(f"{field} must be an integer, got {_describe(value)}")
    return value


def _check_number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _FieldError(f"{field} must be a finite number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _FieldError(f"{field} must be a finite number, got {value!r}")
    return number


def _check_string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _FieldError(f"{field} must be a string, got {_describe(value)}")
    return value


def _check_object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(f"{field} must be an object, got {_describe(value)}")
    return value


def _check_array(value: Any, field: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise _FieldError(f"{field} must be an array, got {_describe(value)}")
    return value


def _check_sha256(value: Any, field: str) -> str:
    _check_string(value, field)
    if not _SHA256.fullmatch(value):
        raise _FieldError(f"{field} must be 64 lowercase hex digits (a SHA-256), got "
                          f"{_describe(value)}")
    return value


def _check_labels(value: Any, field: str = "labels") -> tuple[str, ...]:
    labels = _check_array(value, field)
    if not labels:
        raise _FieldError(f"{field} must not be empty (one class name per model output)")
    seen: dict[str, int] = {}
    for index, label in enumerate(labels):
        _check_string(label, f"{field}[{index}]")
        if not label:
            raise _FieldError(f"{field}[{index}] must not be empty")
        if label in seen:
            raise _FieldError(f"{field}[{index}] duplicates {field}[{seen[label]}] ({label!r}); "
                              "class names must be unique")
        seen[label] = index
    return tuple(str(label) for label in labels)


def _check_preprocessing(value: Any, field: str = "preprocessing") -> dict[str, Any]:
    """Validate a preprocessing object; returns its values with the defaults filled in."""
    data = _check_object(value, field)
    sides = {}
    for key in ("height", "width"):
        side = _check_integer(_require(data, key, f"{field}.{key}"), f"{field}.{key}")
        if not 1 <= side <= MAX_IMAGE_SIDE:
            raise _FieldError(f"{field}.{key} must be in 1..{MAX_IMAGE_SIDE}, got {side}")
        sides[key] = side
    channels = _check_integer(_require(data, "channels", f"{field}.channels"),
                              f"{field}.channels")
    if channels not in (1, 3):
        raise _FieldError(f"{field}.channels must be 1 or 3, got {channels}")
    vectors = {}
    for key in ("mean", "std"):
        values = _check_array(_require(data, key, f"{field}.{key}"), f"{field}.{key}")
        if len(values) != channels:
            raise _FieldError(f"{field}.{key} must have {channels} values (one per channel), "
                              f"got {len(values)}")
        vectors[key] = tuple(_check_number(item, f"{field}.{key}[{index}]")
                             for index, item in enumerate(values))
    for index, std in enumerate(vectors["std"]):
        if not std > 0:
            raise _FieldError(f"{field}.std[{index}] must be > 0, got {std!r}")
    center_crop = _check_number(data.get("center_crop", 1.0), f"{field}.center_crop")
    if not 0.0 < center_crop <= 1.0:
        raise _FieldError(f"{field}.center_crop must be in (0, 1], got {center_crop!r}")
    for key, expected in _FIXED_STRINGS.items():
        if key in data and data[key] != expected:
            raise _FieldError(f'{field}.{key} must be "{expected}" (the only rule this version '
                              f"defines), got {_describe(data[key])}")
    return {**sides, "channels": channels, **vectors, "center_crop": center_crop}


def _check_bare_file_name(value: Any, field: str) -> str:
    name = _check_string(value, field)
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name):
        raise _FieldError(f"{field} must be a bare file name in the model's folder (no folder "
                          f"parts, '.' or '..'), got {_describe(value)}")
    return name


def _check_conversion(value: Any, field: str) -> None:
    conversion = _check_object(value, field)
    if conversion.get("float_twin") is not None:
        _check_bare_file_name(conversion["float_twin"], f"{field}.float_twin")
    if conversion.get("float_twin_sha256") is not None:
        _check_sha256(conversion["float_twin_sha256"], f"{field}.float_twin_sha256")


def _find_non_finite(value: Any, field: str) -> None:
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        raise _FieldError(f"{field} must be a finite number, got {_describe(value)} (not JSON)")
    if isinstance(value, dict):
        for key, item in value.items():
            _find_non_finite(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _find_non_finite(item, f"{field}[{index}]")


def _check_document(data: Any) -> None:
    document = _check_object(data, "the top level")
    if _require(document, "format", "format") != FORMAT_NAME:
        raise _FieldError(f'format must be "{FORMAT_NAME}", got {_describe(document["format"])}')
    version = _check_integer(_require(document, "version", "version"), "version")
    if version != FORMAT_VERSION:
        raise _FieldError(f"version must be {FORMAT_VERSION} (the version this tflbnn reads), "
                          f"got {version}")
    if "name" in document:
        _check_string(document["name"], "name")
    _check_labels(_require(document, "labels", "labels"))
    _check_preprocessing(_require(document, "preprocessing", "preprocessing"))
    if "extra" in document:
        extra = _check_object(document["extra"], "extra")
        if "conversion" in extra:
            _check_conversion(extra["conversion"], "extra.conversion")
    if "model_sha256" in document:
        _check_sha256(document["model_sha256"], "model_sha256")
    _find_non_finite(document, "")


def validate_metadata(data: Any, source: str | os.PathLike) -> None:
    """Check a parsed sidecar against the schema (module docstring).

    Args:
        data: the parsed JSON document (``NaN``/``Infinity`` tokens parsed as by
            ``ModelMetadata.load``, or Python floats, are both refused).
        source: the file (or description) named in errors.

    Raises:
        ValueError: ``"<source>: <dotted field> <problem>"`` for the first violation found.
    """
    try:
        _check_document(data)
    except _FieldError as error:
        raise ValueError(f"{source}: {error}") from None


def _parse_json(text: str, source: str | os.PathLike) -> Any:
    try:
        return json.loads(text, parse_constant=_NonFinite)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not a JSON metadata file ({error})") from None
    except RecursionError:
        raise ValueError(f"{source}: not a JSON metadata file (nested too deeply)") from None


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits (the form ``model_sha256`` stores)."""
    return hashlib.sha256(data).hexdigest()


def open_regular_file(path: str | os.PathLike, max_bytes: int, what: str) -> BinaryIO:
    """Open a file for reading after checking it is a regular file of at most ``max_bytes``.

    The checks use the opened descriptor (``fstat``), and the open does not block on a FIFO,
    so a device, pipe or folder is refused without reading anything from it.

    Args:
        path: the file.
        max_bytes: largest size accepted.
        what: what the file should be, for messages (``"TFLite model"``).

    Returns:
        A binary file object positioned at the start; the caller closes it.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a regular file or is larger than ``max_bytes``; names it.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a {what} file") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot open the {what} ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ValueError(f"{path}: is a folder, not a {what} file")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file (a device, pipe or socket), so not a "
                             f"{what}")
        if info.st_size > max_bytes:
            raise ValueError(f"{path}: {info.st_size} bytes, more than the {max_bytes} a {what} "
                             "may have")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_all(handle: BinaryIO, max_bytes: int, path: Path, what: str) -> bytes:
    # The size was checked by fstat; a file that grows while being read is still capped.
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: more than the {max_bytes} bytes a {what} may have")
    return data


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike, *, exclusive: bool) -> Iterator[None]:
    """Hold a lock on a folder: exclusive to replace a set of files in it, shared to read one.

    ``flock`` on the folder's own descriptor: no lock file is created, and the lock goes away
    with the process if it dies.

    Args:
        folder: an existing folder.
        exclusive: True for writers (``write_files_together``), False for readers.
    """
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def check_writable_output(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is spent on it.

    Nothing is created. The nearest existing ancestor must be a folder the process may write
    into (missing folders below it are created later by the writer), and ``path`` itself, if
    it exists, must be of the right kind.

    Args:
        path: the file (or, with ``folder``, the folder) to be written.
        folder: whether ``path`` is a folder to be (re)written.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: naming ``path`` and why it cannot be written.
    """
    path = Path(path)
    if os.path.lexists(path):
        if folder and not path.is_dir():
            raise ValueError(f"{path}: cannot write a folder there: a file of that name exists")
        if not folder and path.is_dir():
            raise ValueError(f"{path}: cannot write a file there: it is a folder")
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{path}: cannot be written: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot be written: no permission to write in {ancestor}")
    return path


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
    """Replace a set of files in one folder as a whole, or leave it as it was.

    Metadata is serialized and validated first (errors name its destination). Each file is
    staged in a temporary folder next to the destinations; then, holding the folder's
    exclusive lock (``locked_folder``), all are renamed into place. Concurrent writers of the
    same folder therefore replace whole sets one after the other (the last one wins), and
    readers holding the shared lock see either the old set or the new one, never a mix. If
    anything fails, the staged files and any already renamed are removed, and so are folders
    this call created (when still empty).

    Args:
        files: destination path -> content, either bytes or a ``ModelMetadata`` (saved as JSON).
            All destinations must be in the same folder.

    Returns:
        The destinations, in the order given.

    Raises:
        ValueError: if ``files`` is empty, the destinations are in different folders, or a
            metadata value is invalid.
    """
    destinations = [Path(path) for path in files]
    if not destinations:
        raise ValueError("write_files_together: no files given")
    parent = destinations[0].parent
    if any(path.parent != parent for path in destinations):
        raise ValueError(f"write_files_together: all files must be in one folder, got "
                         f"{sorted({str(path.parent) for path in destinations})}")
    contents = [content.to_json_bytes(destination) if isinstance(content, ModelMetadata)
                else bytes(content) for destination, content in zip(destinations, files.values())]
    created = _make_folders(parent)
    placed: list[Path] = []
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".tflbnn-stage-", dir=parent))
        staged = [(write_bytes_atomic(staging / destination.name, content), destination)
                  for destination, content in zip(destinations, contents)]
        with locked_folder(parent, exclusive=True):
            for temporary, destination in staged:
                os.replace(temporary, destination)
                placed.append(destination)
    except BaseException:
        for destination in placed:
            destination.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_empty_folders(created)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return destinations


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # a concurrent writer made it first; it is not ours to remove
            continue
        created.append(path)
    return created[::-1]


def _remove_empty_folders(folders: Sequence[Path]) -> None:
    # Only empty ones: a concurrent writer may have put its own set there meanwhile.
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """The metadata JSON that belongs to a model file: same directory and stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


def check_model_sha256(metadata: "ModelMetadata", sidecar: str | os.PathLike,
                       model_path: str | os.PathLike, actual_sha256: str) -> None:
    """Refuse a ``.tflite`` whose sidecar does not record its SHA-256, or records another.

    Args:
        metadata: the sidecar's content.
        sidecar: the sidecar file (for messages).
        model_path: the ``.tflite`` file (for messages).
        actual_sha256: the digest of the bytes read from ``model_path``.

    Raises:
        ValueError: naming both files, when the digest is missing or differs.
    """
    if metadata.model_sha256 is None:
        raise ValueError(f"{sidecar}: model_sha256 is missing, so nothing proves {model_path} "
                         "is the model this sidecar describes (a sidecar written before "
                         "tflbnn recorded it); re-run tflbnn convert")
    if metadata.model_sha256 != actual_sha256:
        raise ValueError(f"{model_path}: SHA-256 {actual_sha256} does not match {sidecar} "
                         f"model_sha256 {metadata.model_sha256}: the model file was modified or "
                         "belongs to another sidecar; re-run tflbnn convert")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (dataclass fields built from numpy statistics)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw images become the model's float input (see the module docstring for the rule).

    Attributes:
        height: input height in pixels, 1..``MAX_IMAGE_SIDE``.
        width: input width in pixels, 1..``MAX_IMAGE_SIDE``.
        channels: 1 (grey) or 3 (RGB).
        mean: per-channel mean, in [0, 1] pixel units (one finite value per channel).
        std: per-channel standard deviation, in [0, 1] pixel units (finite, > 0).
        center_crop: fraction of each side kept by the centre crop before resizing, in (0, 1].

    Raises:
        ValueError: ``"preprocessing.<field> <problem>"`` for a value the schema refuses.
    """

    height: int
    width: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    center_crop: float = 1.0

    def __post_init__(self):
        candidate = {
            "height": _plain(self.height), "width": _plain(self.width),
            "channels": _plain(self.channels),
            "mean": [_plain(value) for value in self.mean] if _is_sequence(self.mean)
            else self.mean,
            "std": [_plain(value) for value in self.std] if _is_sequence(self.std) else self.std,
            "center_crop": _plain(self.center_crop),
        }
        try:
            checked = _check_preprocessing(candidate)
        except _FieldError as error:
            raise ValueError(str(error)) from None
        for key, value in checked.items():
            object.__setattr__(self, key, value)

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
            **_FIXED_STRINGS,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "preprocessing") -> "Preprocessing":
        """Build from a parsed ``preprocessing`` object, checked by the schema's rules.

        Raises:
            ValueError: ``"<source>: preprocessing.<field> <problem>"``.
        """
        try:
            checked = _check_preprocessing(data)
        except _FieldError as error:
            raise ValueError(f"{source}: {error}") from None
        return cls(**checked)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """Labels and preprocessing of a classifier, stored as a JSON sidecar.

    Attributes:
        labels: class names, index = output unit (non-empty, unique strings).
        preprocessing: the input rule.
        name: a short model name (e.g. the zoo name).
        extra: free-form facts (training accuracy, zoo options, conversion report, ...).
        model_sha256: SHA-256 of the ``.tflite`` this sidecar belongs to (``None`` for a
            ``.keras`` sidecar).

    Raises:
        ValueError: ``"labels[2] duplicates labels[0] ..."`` and the like.
    """

    labels: tuple[str, ...]
    preprocessing: Preprocessing
    name: str = ""
    extra: dict = dataclasses.field(default_factory=dict)
    model_sha256: str | None = None

    def __post_init__(self):
        labels = list(self.labels) if isinstance(self.labels, (tuple, np.ndarray)) else self.labels
        try:
            object.__setattr__(self, "labels", _check_labels(labels))
            _check_string(self.name, "name")
            if not isinstance(self.preprocessing, Preprocessing):
                raise _FieldError(f"preprocessing must be a Preprocessing, got "
                                  f"{type(self.preprocessing).__name__}")
            _check_object(self.extra, "extra")
            if self.model_sha256 is not None:
                _check_sha256(self.model_sha256, "model_sha256")
        except _FieldError as error:
            raise ValueError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": self.name,
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict(),
            "extra": self.extra,
        }
        if self.model_sha256 is not None:
            data["model_sha256"] = self.model_sha256
        return data

    def with_extra(self, **extra: Any) -> "ModelMetadata":
        """A copy with ``extra`` updated by the given keys."""
        return dataclasses.replace(self, extra={**self.extra, **extra})

    def for_model(self, flatbuffer: bytes) -> "ModelMetadata":
        """A copy recording the SHA-256 of ``flatbuffer``, the ``.tflite`` it will sit beside."""
        return dataclasses.replace(self, model_sha256=sha256_bytes(flatbuffer))

    def to_json_bytes(self, destination: str | os.PathLike = "metadata") -> bytes:
        """The sidecar as UTF-8 JSON, validated by the schema.

        Args:
            destination: the file it is meant for, named in errors.

        Raises:
            ValueError: ``"<destination>: <field> <problem>"`` for an invalid value, e.g. a NaN
                in ``extra`` (never written: it is not JSON) or a value JSON cannot hold.
        """
        try:
            text = json.dumps(self.to_dict(), default=_json_default)
        except TypeError as error:
            raise ValueError(f"{destination}: {error}") from None
        data = _parse_json(text, destination)
        validate_metadata(data, destination)
        text = json.dumps(data, indent=2, allow_nan=False)
        return (text + "\n").encode("utf-8")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the metadata as JSON, atomically. Returns the path written.

        Raises:
            ValueError: as ``to_json_bytes``, naming ``path``; nothing is written then.
        """
        return write_bytes_atomic(path, self.to_json_bytes(path))

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike = "metadata") -> "ModelMetadata":
        """Build from a parsed sidecar after ``validate_metadata``.

        Raises:
            ValueError: naming ``source``, the field and the problem.
        """
        validate_metadata(data, source)
        extra = data.get("extra", {})
        return cls(labels=tuple(data["labels"]),
                   preprocessing=Preprocessing(**_check_preprocessing(data["preprocessing"])),
                   name=data.get("name", ""), extra=dict(extra),
                   model_sha256=data.get("model_sha256"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelMetadata":
        """Read and validate a sidecar (at most ``MAX_SIDECAR_BYTES``, a regular file).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file is not a valid tflbnn sidecar; the message names the file,
                the field and the problem.
        """
        path = Path(path)
        with open_regular_file(path, MAX_SIDECAR_BYTES, "model metadata") as handle:
            raw = _read_all(handle, MAX_SIDECAR_BYTES, path, "model metadata")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not a JSON metadata file (not UTF-8: {error})") from None
        return cls.from_dict(_parse_json(text, path), path)


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


def labels_from_sequence(labels: Sequence[str], source: str | os.PathLike | None = None
                         ) -> tuple[str, ...]:
    """Validate class names by the sidecar's rule: 1+ non-empty, unique strings.

    Args:
        labels: the names.
        source: where they come from (a labels file), named first in errors when given.

    Raises:
        ValueError: ``"[<source>: ]labels[2] duplicates labels[0] ..."`` and the like.
    """
    try:
        return _check_labels(list(labels))
    except _FieldError as error:
        raise ValueError(str(error) if source is None else f"{source}: {error}") from None
