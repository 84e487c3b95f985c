"""TFRecord files of encoded images and integer labels (the ImageNet/TF-slim layout).

Each record is a ``tf.train.Example`` with the encoded JPEG/PNG under ``image/encoded`` and the
class under ``image/class/label`` (both keys configurable). TF-slim ImageNet shards number
classes from 1 (0 = background); pass ``label_offset=1`` for those.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import glob
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from tflbnn.data.image_check import check_images
from tflbnn.data.image_header import check_image_size, header_size
from tflbnn.data.preprocess import decode_image

__all__ = [
    "DEFAULT_IMAGE_KEY",
    "DEFAULT_LABEL_KEY",
    "resolve_files",
    "write_tfrecord",
    "scan_tfrecords",
    "tfrecord_source",
]

DEFAULT_IMAGE_KEY = "image/encoded"
DEFAULT_LABEL_KEY = "image/class/label"

# Parse defaults that no real record holds, so a missing feature can be reported by index.
_MISSING_LABEL = np.iinfo(np.int64).min


def resolve_files(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Expand TFRecord file names and glob patterns into a sorted, checked list.

    Args:
        files: a path or glob pattern (``"train-*"``), or a sequence of them.

    Returns:
        The matching files; each pattern's matches are sorted, patterns keep their order.

    Raises:
        FileNotFoundError: if a path does not exist or a pattern matches nothing.
        ValueError: if no files are given.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    resolved: list[str] = []
    for item in files:
        item = str(item)
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"no TFRecord files match the pattern {item}")
            resolved.extend(matches)
        elif Path(item).is_file():
            resolved.append(item)
        else:
            raise FileNotFoundError(f"TFRecord file not found: {item}")
    if not resolved:
        raise ValueError("no TFRecord files given")
    return resolved


def _int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def write_tfrecord(path: str | os.PathLike, images: Sequence[str | os.PathLike | bytes],
                   labels: Sequence[int], *, image_key: str = DEFAULT_IMAGE_KEY,
                   label_key: str = DEFAULT_LABEL_KEY, check: str = "verify") -> int:
    """Write encoded images and labels as one TFRecord file.

    Image files are stored as they are (no re-encoding), so reading them back gives the
    same pixels as ``load_image`` on the original file.

    Args:
        path: destination file; written through a temporary file and a rename.
        images: JPEG/PNG file paths, or their encoded bytes.
        labels: integer class of each image.
        image_key: feature name of the encoded image.
        label_key: feature name of the label.
        check: image check before writing, see ``image_check.image_problem``.

    Returns:
        The number of records written.

    Raises:
        ValueError: if ``images`` and ``labels`` differ in length, a label is not an integer,
            or an image is unreadable (the message names the file or item index).
        FileNotFoundError: if an image file does not exist.
    """
    path = Path(path)
    images = list(images)
    labels = list(labels)
    if len(images) != len(labels):
        raise ValueError(f"{path}: got {len(images)} images but {len(labels)} labels")
    for index, label in enumerate(labels):
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool):
            raise ValueError(f"{path}: label {index} must be an integer, got {label!r}")
    for item in images:
        if not isinstance(item, bytes) and not Path(item).is_file():
            raise FileNotFoundError(f"image file not found: {item}")
    check_images(images, check=check, what="image")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with tf.io.TFRecordWriter(str(temporary)) as writer:
            for item, label in zip(images, labels):
                encoded = item if isinstance(item, bytes) else Path(item).read_bytes()
                example = tf.train.Example(features=tf.train.Features(feature={
                    image_key: _bytes_feature(encoded),
                    label_key: _int64_feature(label),
                }))
                writer.write(example.SerializeToString())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return len(images)


def _feature_spec(image_key: str, label_key: str) -> dict:
    return {
        image_key: tf.io.FixedLenFeature([], tf.string, default_value=b""),
        label_key: tf.io.FixedLenFeature([], tf.int64, default_value=_MISSING_LABEL),
    }


def _first_bad_record(file: str, spec: dict) -> tuple[int, str]:
    # Only on the error path: re-read the file one record at a time to name the record
    # that cannot be read or parsed (the batched scan only knows the batch).
    index = 0
    try:
        for record in tf.data.TFRecordDataset(file):
            tf.io.parse_single_example(record, spec)
            index += 1
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        return index, _plain_tf_message(error.message)
    except UnicodeDecodeError:
        # TF quotes the undecodable record in its message and then fails to decode that.
        return index, "the record is not a serialized tf.train.Example"
    return index, "unknown error"


def _plain_tf_message(message: str) -> str:
    # TF prefixes eager errors with graph-function names ("{{function_node ...}}") and
    # suffixes the op ("[Op:IteratorGetNext]"): neither means anything to a user.
    first_line = message.splitlines()[0] if message else ""
    first_line = re.sub(r"\{\{function_node [^}]*\}\}", "", first_line)
    first_line = re.sub(r"\s*\[Op:[^\]]*\]", "", first_line)
    return first_line.strip() or "unreadable record"


def _check_image_headers(file: str, start: int, images: np.ndarray, image_key: str) -> None:
    for offset, encoded in enumerate(images):
        where = f"TFRecord file {file}, record {start + offset}"
        size = header_size(encoded)
        if size is None:
            raise ValueError(f"{where}: the {image_key!r} feature is not a JPEG or PNG image "
                             f"(or its header is damaged)")
        check_image_size(*size, name=where)


def scan_tfrecords(files: str | os.PathLike | Sequence[str | os.PathLike], *,
                   num_classes: int | None = None, image_key: str = DEFAULT_IMAGE_KEY,
                   label_key: str = DEFAULT_LABEL_KEY, label_offset: int = 0) -> int:
    """Count the records of TFRecord files and check every record's features, label and size.

    This reads every file once; images are not decoded, but each one's header must be JPEG
    or PNG and claim at most ``image_header.MAX_IMAGE_PIXELS`` pixels. Problems are reported
    by file and record index before training rather than mid-epoch.

    Args:
        files: paths or glob patterns, see ``resolve_files``.
        num_classes: if given, every ``stored label - label_offset`` must be in
            ``[0, num_classes)``.
        image_key: feature name of the encoded image.
        label_key: feature name of the label.
        label_offset: subtracted from stored labels (1 for TF-slim ImageNet shards).

    Returns:
        The total number of records.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: if a file holds no records, is not a readable TFRecord file (truncated,
            corrupt), a record is not a ``tf.train.Example`` with the image and label
            features, an image is not JPEG/PNG or claims too many pixels, or a label is out of
            range. The message names the file and the record index.
    """
    spec = _feature_spec(image_key, label_key)
    total = 0
    for file in resolve_files(files):
        dataset = tf.data.TFRecordDataset(file).batch(1024).map(
            lambda records: tf.io.parse_example(records, spec))
        start = 0
        try:
            for batch in dataset:
                labels = batch[label_key].numpy()
                images = batch[image_key].numpy()
                empty = np.array([len(image) == 0 for image in images], dtype=bool)
                missing = labels == _MISSING_LABEL
                for flags, what in ((missing, f"no {label_key!r} feature"),
                                    (empty, f"no (or empty) {image_key!r} feature")):
                    if flags.any():
                        index = start + int(np.argmax(flags))
                        raise ValueError(f"TFRecord file {file}, record {index}: {what}")
                _check_image_headers(file, start, images, image_key)
                if num_classes is not None:
                    shifted = labels - label_offset
                    bad = (shifted < 0) | (shifted >= num_classes)
                    if bad.any():
                        first = int(np.argmax(bad))
                        raise ValueError(
                            f"TFRecord file {file}, record {start + first}: label "
                            f"{int(labels[first])} (minus label_offset {label_offset}) is "
                            f"outside [0, {num_classes}); {int(bad.sum())} bad label(s) in "
                            f"records {start}-{start + len(labels) - 1}")
                start += len(labels)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, UnicodeDecodeError):
            index, reason = _first_bad_record(file, spec)
            raise ValueError(f"TFRecord file {file}: unreadable at record {index}, truncated, "
                             f"corrupt or not a tf.train.Example with the expected features "
                             f"({reason})") from None
        if start == 0:
            raise ValueError(f"TFRecord file {file} holds no records")
        total += start
    return total


def tfrecord_source(files: str | os.PathLike | Sequence[str | os.PathLike], *,
                    num_classes: int | None = None, image_key: str = DEFAULT_IMAGE_KEY,
                    label_key: str = DEFAULT_LABEL_KEY, label_offset: int = 0,
                    shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Decoded ``(image, label)`` pairs from TFRecord files, ready for ``make_dataset``.

    Labels are checked in the graph: an out-of-range label stops iteration with a
    ``tf.errors.InvalidArgumentError`` whose message names the file and the record index
    (run ``scan_tfrecords`` to find such problems before training).

    Args:
        files: paths or glob patterns, see ``resolve_files``.
        num_classes: if given, labels (after ``label_offset``) must be in ``[0, num_classes)``.
        image_key: feature name of the encoded image.
        label_key: feature name of the label.
        label_offset: subtracted from stored labels.
        shuffle_files: shuffle the file order each epoch (for training).
        seed: seed of the file shuffle.

    Returns:
        Dataset of ``(uint8 (H, W, 3), int64 scalar)``; images keep their stored size.

    Raises:
        FileNotFoundError: if a file is missing or a pattern matches nothing.
        tf.errors.InvalidArgumentError: while iterating, for a label out of range or an image
            over ``MAX_IMAGE_PIXELS`` (naming the file and record); ``scan_tfrecords`` finds
            both before training.
    """
    resolved = resolve_files(files)
    spec = {
        image_key: tf.io.FixedLenFeature([], tf.string),
        label_key: tf.io.FixedLenFeature([], tf.int64),
    }
    file_names = tf.data.Dataset.from_tensor_slices(resolved)
    if shuffle_files and len(resolved) > 1:
        file_names = file_names.shuffle(len(resolved), seed=seed, reshuffle_each_iteration=True)

    def records_of(file_name):
        return tf.data.TFRecordDataset(file_name).enumerate().map(
            lambda index, record: (file_name, index, record))

    records = file_names.interleave(records_of, cycle_length=min(len(resolved), 16),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def parse(file_name, index, record):
        example = tf.io.parse_single_example(record, spec)
        label = example[label_key] - label_offset
        if num_classes is not None:
            in_range = tf.logical_and(label >= 0, label < num_classes)
            check = tf.debugging.Assert(in_range, [
                f"label outside [0, {num_classes}) (after label_offset {label_offset}) in "
                f"TFRecord file", file_name, "record", index, "label", label], summarize=3)
            with tf.control_dependencies([check]):
                label = tf.identity(label)
        where = ["TFRecord file", file_name, "record", index]
        return decode_image(example[image_key], where), label

    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
