"""One object per data set for configs and the CLI: ``load_data(spec) -> DataBundle``.

A spec is a plain dict (from a config file) with a ``kind`` and that kind's keys:

* ``{"kind": "fashion_mnist", "source": "auto"|"embedded"|"full", "data_dir": None,
  "limit_train": None, "limit_test": None}``
* ``{"kind": "idx", "train_images", "train_labels", "test_images", "test_labels",
  "labels": [names] or None, "mean": None, "std": None, "limit_train", "limit_test"}``
  (mean/std default to the training set's per-channel pixel statistics)
* ``{"kind": "image_folder", "train_dir", "test_dir", "image_size": [h, w], "channels": 3,
  "mean": [...], "std": [...], "center_crop": 0.875, "labels": None, "check": "verify",
  "skip_invalid": False, "limit_train", "limit_test"}`` (mean/std default to the ImageNet
  values for 3 channels)
* ``{"kind": "tfrecord", "train_files", "test_files", "labels": [names], "image_size": [h, w],
  "channels": 3, "mean", "std", "center_crop": 0.875, "image_key": "image/encoded",
  "label_key": "image/class/label", "label_offset": 0, "num_train": None, "num_test": None}``
  (without num_train/num_test the files are scanned once to count records and check labels)

``limit_train``/``limit_test`` keep a deterministic class-balanced subset
(``subset.stratified_first_n``). ``check_data_spec`` validates every key's type and range
before anything is read. With ``num_train``/``num_test`` given, TFRecord files are not scanned,
so their labels and image sizes are not checked up front.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import dataclasses
import math
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tflbnn.data import fashion_mnist, image_folder, idx, tfrecord
from tflbnn.data.image_check import CHECK_MODES
from tflbnn.data.image_header import MAX_IMAGE_PIXELS
from tflbnn.data.pipeline import array_source, file_source, make_dataset
from tflbnn.data.stats import pixel_mean_std
from tflbnn.data.subset import stratified_first_n
from tflbnn.metadata import Preprocessing, labels_from_sequence

__all__ = ["DATA_KINDS", "IMAGENET_MEAN", "IMAGENET_STD", "DataBundle", "check_data_spec",
           "load_data"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (required keys, optional keys with defaults) per kind.
_LIMITS = {"limit_train": None, "limit_test": None}
_IMAGE_OPTIONS = {"channels": 3, "mean": None, "std": None, "center_crop": 0.875}
_SPEC_KEYS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "fashion_mnist": ((), {"source": "auto", "data_dir": None, **_LIMITS}),
    "idx": (("train_images", "train_labels", "test_images", "test_labels"),
            {"labels": None, "mean": None, "std": None, **_LIMITS}),
    "image_folder": (("train_dir", "test_dir", "image_size"),
                     {**_IMAGE_OPTIONS, "labels": None, "check": "verify",
                      "skip_invalid": False, **_LIMITS}),
    "tfrecord": (("train_files", "test_files", "labels", "image_size"),
                 {**_IMAGE_OPTIONS, "image_key": tfrecord.DEFAULT_IMAGE_KEY,
                  "label_key": tfrecord.DEFAULT_LABEL_KEY, "label_offset": 0,
                  "num_train": None, "num_test": None}),
}
DATA_KINDS = tuple(_SPEC_KEYS)


@dataclasses.dataclass(frozen=True)
class DataBundle:
    """A data set ready for training and evaluation.

    Attributes:
        labels: class names; index = label.
        preprocessing: the input rule models trained on this data use.
        num_train: training examples.
        num_test: test examples.
        train_source: ``(shuffle_files, seed) -> dataset`` of decoded ``(uint8 image, label)``.
        test_source: ``() -> dataset`` of decoded ``(uint8 image, label)`` in a fixed order.
    """

    labels: tuple[str, ...]
    preprocessing: Preprocessing
    num_train: int
    num_test: int
    train_source: Callable[[bool, int | None], tf.data.Dataset] = dataclasses.field(repr=False)
    test_source: Callable[[], tf.data.Dataset] = dataclasses.field(repr=False)

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(labels)``."""
        return len(self.labels)

    def train_dataset(self, batch_size: int, *, augment: str | None = "standard",
                      seed: int | None = None, mixup: float = 0.0, cutmix: float = 0.0,
                      shuffle_buffer: int = 10_000, drop_remainder: bool = True,
                      cache: bool | str = False) -> tf.data.Dataset:
        """Shuffled, augmented training batches (see ``pipeline.make_dataset``).

        Args:
            batch_size: images per batch.
            augment: "standard", "crop_resize" or None.
            seed: seed for shuffling and augmentation.
            mixup: MixUp alpha (0 = off); labels become one-hot float32 when on.
            cutmix: CutMix alpha (0 = off); labels become one-hot float32 when on.
            shuffle_buffer: shuffle buffer size.
            drop_remainder: drop the last incomplete batch.
            cache: cache decoded images (True = memory, str = file).

        Returns:
            Dataset of ``(float32 images, labels)``, one pass = one epoch.

        Raises:
            ValueError: if ``drop_remainder`` would drop every example (fewer training
                examples than ``batch_size``), or an option is invalid.
        """
        if drop_remainder and self.num_train < batch_size:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.num_train} "
                             f"training examples, so every batch would be dropped; use a "
                             f"smaller batch_size or drop_remainder=False")
        return make_dataset(self.train_source(True, seed), self.preprocessing,
                            batch_size=batch_size, training=True, augment=augment, mixup=mixup,
                            cutmix=cutmix, num_classes=self.num_classes,
                            shuffle_buffer=shuffle_buffer, seed=seed,
                            drop_remainder=drop_remainder, cache=cache)

    def test_dataset(self, batch_size: int, *, cache: bool | str = False) -> tf.data.Dataset:
        """Test batches, exactly ``preprocess``-ed, in a fixed order.

        Args:
            batch_size: images per batch (the last batch may be smaller).
            cache: cache decoded images (True = memory, str = file).

        Returns:
            Dataset of ``(float32 images, int64 labels)``.
        """
        return make_dataset(self.test_source(), self.preprocessing, batch_size=batch_size,
                            training=False, cache=cache)

    def test_arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` test examples, preprocessed, as arrays (for parity checks).

        Args:
            limit: number of examples; ``None`` = all.

        Returns:
            ``(float32 (N, height, width, channels), int64 (N,))``.
        """
        source = self.test_source()
        if limit is not None:
            source = source.take(int(limit))
        images, labels = [], []
        for batch_images, batch_labels in make_dataset(source, self.preprocessing,
                                                       batch_size=256, training=False):
            images.append(batch_images.numpy())
            labels.append(batch_labels.numpy())
        if not images:
            shape = (0, *self.preprocessing.input_shape)
            return np.zeros(shape, np.float32), np.zeros((0,), np.int64)
        return np.concatenate(images), np.concatenate(labels)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, (float, np.floating))) and \
        math.isfinite(float(value))


def _is_path(value: Any) -> bool:
    return isinstance(value, os.PathLike) or (isinstance(value, str) and value != "")


# Each rule returns why a value is wrong (completing "data spec key 'x' ..."), or None.
def _path(value: Any) -> str | None:
    return None if _is_path(value) else "must be a file or folder path (a non-empty string)"


def _optional(rule: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        problem = None if value is None else rule(value)
        return None if problem is None else f"{problem}, or left out"
    return check


def _one_of(choices: tuple) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, str) and value in choices
        return None if ok else f"must be one of {', '.join(map(repr, choices))}"
    return check


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "must be a positive integer (a count)"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _non_empty_str(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _label_offset(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "must be an integer >= 0"


def _channels(value: Any) -> str | None:
    return None if _is_int(value) and value in (1, 3) else "must be 1 (grey) or 3 (RGB)"


def _center_crop(value: Any) -> str | None:
    ok = _is_number(value) and 0.0 < float(value) <= 1.0
    return None if ok else "must be a number in (0, 1] (the fraction of each side kept)"


def _image_size(value: Any) -> str | None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(_is_int(side) and side >= 1 for side in value)):
        return "must be [height, width], two positive integers"
    if value[0] * value[1] > MAX_IMAGE_PIXELS:
        return f"is over the limit of {MAX_IMAGE_PIXELS:,} pixels (tflbnn.data.MAX_IMAGE_PIXELS)"
    return None


def _labels(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and bool(value) and \
        all(isinstance(label, str) and label for label in value)
    return None if ok else "must be a non-empty list of class names (strings)"


def _numbers(positive: bool) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, (list, tuple)) and bool(value) and all(
            _is_number(v) and (float(v) > 0 or not positive) for v in value)
        kind = "positive finite numbers" if positive else "finite numbers"
        return None if ok else f"must be a list of {kind}, one per channel"
    return check


def _files(value: Any) -> str | None:
    ok = _is_path(value) or (isinstance(value, (list, tuple)) and bool(value)
                             and all(_is_path(item) for item in value))
    return None if ok else "must be a path or glob pattern, or a non-empty list of them"


_KEY_RULES: dict[str, Callable[[Any], str | None]] = {
    "source": _one_of(fashion_mnist.SOURCES),
    "data_dir": _optional(_path),
    "limit_train": _optional(_positive_int),
    "limit_test": _optional(_positive_int),
    "train_images": _path,
    "train_labels": _path,
    "test_images": _path,
    "test_labels": _path,
    "train_dir": _path,
    "test_dir": _path,
    "labels": _optional(_labels),
    "mean": _optional(_numbers(positive=False)),
    "std": _optional(_numbers(positive=True)),
    "image_size": _image_size,
    "channels": _channels,
    "center_crop": _center_crop,
    "check": _one_of(CHECK_MODES),
    "skip_invalid": _bool,
    "train_files": _files,
    "test_files": _files,
    "image_key": _non_empty_str,
    "label_key": _non_empty_str,
    "label_offset": _label_offset,
    "num_train": _optional(_positive_int),
    "num_test": _optional(_positive_int),
}


def check_data_spec(spec: Any) -> dict:
    """Validate a data spec without opening any file: kind, keys and every value's type.

    The one place data specs are checked; ``load_data`` calls it first, and callers that
    must refuse a bad config before doing any work (writing a run folder) can call it too.

    Args:
        spec: a dict with ``kind`` and that kind's keys (see the module docstring).

    Returns:
        A new dict: the spec with every optional key filled in with its default.

    Raises:
        ValueError: for a spec that is not a dict, a missing or unknown kind (the message
            lists the valid ones), a missing required key, an unknown key, or a value of the
            wrong type or range; the message names the key, the value and what it must be.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"data spec must be a table (dict) with a 'kind', got "
                         f"{type(spec).__name__} {spec!r}")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in _SPEC_KEYS:
        got = "no 'kind'" if kind is None else repr(kind)
        raise ValueError(f"data spec key 'kind' must be one of {', '.join(DATA_KINDS)}; got "
                         f"{got}")
    required, optional = _SPEC_KEYS[kind]
    for key in required:
        if spec.get(key) is None:
            raise ValueError(f"data spec of kind {kind!r} is missing the key {key!r} "
                             f"(required: {', '.join(required)})")
    unknown = sorted(set(spec) - set(required) - set(optional) - {"kind"}, key=str)
    if unknown:
        raise ValueError(f"data spec of kind {kind!r} has unknown key(s) {unknown}; valid keys: "
                         f"{', '.join(('kind', *required, *optional))}")
    for key, value in spec.items():
        problem = _KEY_RULES[key](value) if key != "kind" else None
        if problem is not None:
            raise ValueError(f"data spec key {key!r} {problem}; got {value!r}")
    return {**optional, **spec}


def _limited(images: np.ndarray, labels: np.ndarray, limit: int | None):
    keep = stratified_first_n(labels, limit)
    return images[keep], labels[keep]


def _array_bundle(labels, preprocessing, train, test) -> DataBundle:
    return DataBundle(
        labels=labels_from_sequence(labels),
        preprocessing=preprocessing,
        num_train=len(train[1]),
        num_test=len(test[1]),
        train_source=lambda shuffle_files, seed: array_source(*train),
        test_source=lambda: array_source(*test),
    )


def _fashion_mnist(spec: dict) -> DataBundle:
    train = fashion_mnist.load_fashion_mnist("train", source=spec["source"],
                                             data_dir=spec["data_dir"])
    test = fashion_mnist.load_fashion_mnist("test", source=spec["source"],
                                            data_dir=spec["data_dir"])
    return _array_bundle(fashion_mnist.FASHION_MNIST_LABELS,
                         fashion_mnist.fashion_mnist_preprocessing(),
                         _limited(*train, spec["limit_train"]),
                         _limited(*test, spec["limit_test"]))


def _pixel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = pixel_mean_std(images)
    # A constant channel would give std 0, which Preprocessing rejects; 1 leaves it centred.
    return mean, tuple(s if s > 0 else 1.0 for s in std)


def _idx(spec: dict) -> DataBundle:
    train = idx.load_idx_pair(spec["train_images"], spec["train_labels"])
    test = idx.load_idx_pair(spec["test_images"], spec["test_labels"])
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"{spec['test_images']}: test images are {test[0].shape[1:]} but "
                         f"training images ({spec['train_images']}) are {train[0].shape[1:]}")
    height, width, channels = train[0].shape[1:]
    if channels not in (1, 3):
        raise ValueError(f"{spec['train_images']}: images must have 1 or 3 channels, got "
                         f"{channels}")
    labels = spec["labels"]
    if labels is None:
        top = int(max(train[1].max(initial=0), test[1].max(initial=0)))
        labels = [str(i) for i in range(top + 1)]
    for path, values in ((spec["train_labels"], train[1]), (spec["test_labels"], test[1])):
        if len(values) and values.max() >= len(labels):
            raise ValueError(f"{path}: label {int(values.max())} is outside the {len(labels)} "
                             f"class names given in 'labels'")
    mean, std = spec["mean"], spec["std"]
    if mean is None or std is None:
        computed_mean, computed_std = _pixel_stats(train[0])
        mean = computed_mean if mean is None else mean
        std = computed_std if std is None else std
    preprocessing = Preprocessing(height, width, channels, mean, std)
    return _array_bundle(labels, preprocessing, _limited(*train, spec["limit_train"]),
                         _limited(*test, spec["limit_test"]))


def _image_preprocessing(spec: dict) -> Preprocessing:
    size = spec["image_size"]
    channels = int(spec["channels"])
    mean, std = spec["mean"], spec["std"]
    if mean is None or std is None:
        if channels != 3:
            raise ValueError(f"data spec of kind {spec['kind']!r} with channels={channels} "
                             f"needs 'mean' and 'std' (the ImageNet defaults are for RGB)")
        mean = IMAGENET_MEAN if mean is None else mean
        std = IMAGENET_STD if std is None else std
    return Preprocessing(int(size[0]), int(size[1]), channels, mean, std,
                         center_crop=float(spec["center_crop"]))


def _image_folder(spec: dict) -> DataBundle:
    preprocessing = _image_preprocessing(spec)
    options = {"check": spec["check"], "skip_invalid": bool(spec["skip_invalid"])}
    train = image_folder.scan_image_folder(spec["train_dir"], spec["labels"], **options)
    test = image_folder.scan_image_folder(spec["test_dir"], train.class_names, **options)
    train_keep = stratified_first_n(train.labels, spec["limit_train"])
    test_keep = stratified_first_n(test.labels, spec["limit_test"])
    train_files = ([train.paths[i] for i in train_keep], train.labels[train_keep])
    test_files = ([test.paths[i] for i in test_keep], test.labels[test_keep])

    return DataBundle(
        labels=labels_from_sequence(train.class_names),
        preprocessing=preprocessing,
        num_train=len(train_keep),
        num_test=len(test_keep),
        train_source=lambda shuffle_files, seed: file_source(*train_files),
        test_source=lambda: file_source(*test_files),
    )


def _tfrecord(spec: dict) -> DataBundle:
    preprocessing = _image_preprocessing(spec)
    labels = labels_from_sequence(spec["labels"])
    options = {"num_classes": len(labels), "image_key": spec["image_key"],
               "label_key": spec["label_key"], "label_offset": int(spec["label_offset"])}
    train_files = tfrecord.resolve_files(spec["train_files"])
    test_files = tfrecord.resolve_files(spec["test_files"])
    counts = {}
    for split, files in (("train", train_files), ("test", test_files)):
        given = spec[f"num_{split}"]
        counts[split] = int(given) if given is not None else \
            tfrecord.scan_tfrecords(files, **options)
    return DataBundle(
        labels=labels,
        preprocessing=preprocessing,
        num_train=counts["train"],
        num_test=counts["test"],
        train_source=lambda shuffle_files, seed: tfrecord.tfrecord_source(
            train_files, shuffle_files=shuffle_files, seed=seed, **options),
        test_source=lambda: tfrecord.tfrecord_source(test_files, **options),
    )


_LOADERS = {
    "fashion_mnist": _fashion_mnist,
    "idx": _idx,
    "image_folder": _image_folder,
    "tfrecord": _tfrecord,
}


def load_data(spec: dict) -> DataBundle:
    """Open the data set a spec describes (see the module docstring for the kinds and keys).

    Args:
        spec: dict with ``kind`` and that kind's keys; missing optional keys take defaults.

    Returns:
        The ``DataBundle``.

    Raises:
        ValueError: for an invalid spec (see ``check_data_spec``; checked before any file is
            opened), or invalid data (the message names the file, and the record or class).
        FileNotFoundError: if a file or folder in the spec does not exist.
    """
    spec = check_data_spec(spec)
    return _LOADERS[spec["kind"]](spec)
