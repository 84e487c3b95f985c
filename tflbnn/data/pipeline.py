"""tf.data input pipelines: decoded images in, model-ready batches out.

Sources yield ``(uint8 image (H, W, C), integer label)`` pairs: ``array_source`` (in-memory
arrays), ``file_source`` (image files) and ``tfrecord.tfrecord_source`` (TFRecord files).
``make_dataset`` turns a source into batches of ``(float32 (B, height, width, channels),
int64 (B,))``:

* evaluation (``training=False``): exactly ``preprocess`` per image, in source order;
* training: steps 1-3 of the preprocessing rule, shuffle, augmentation on 0-255 pixels,
  optional MixUp/CutMix, then step 4 (normalization), so augmentation never sees
  normalized values and padding is black.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import contextlib
import logging
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tflbnn.data.preprocess import decode_image, normalize, resize_to_input
from tflbnn.metadata import Preprocessing

__all__ = ["AUGMENTATIONS", "array_source", "file_source", "make_dataset", "standard_augment"]

AUGMENTATIONS = ("standard", "crop_resize", None)

# Range of crop area (fraction of the image) and aspect ratio of "crop_resize". The area is
# narrower than Inception's (0.08, 1) because tflbnn inputs are often tiny (28x28).
CROP_AREA = (0.25, 1.0)
CROP_ASPECT = (3.0 / 4.0, 4.0 / 3.0)


def array_source(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """A source over in-memory images.

    Args:
        images: uint8 array ``(N, H, W, C)``, ``C`` in {1, 3}.
        labels: integer array ``(N,)``.

    Returns:
        Dataset of ``(uint8 (H, W, C), int64)``.

    Raises:
        ValueError: if the dtypes, shapes or lengths do not fit.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (N, H, W, 1|3), got {images.dtype} "
                         f"{images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))


def file_source(paths: Sequence[str | os.PathLike], labels: Sequence[int]) -> tf.data.Dataset:
    """A source over JPEG/PNG files, decoded like ``preprocess.load_image``.

    Check the files first (``image_folder.scan_image_folder`` does) so that a bad file is
    reported by name; a decoding error inside tf.data does not name it.

    Args:
        paths: image files.
        labels: integer class of each file.

    Returns:
        Dataset of ``(uint8 (H, W, 3), int64)``.

    Raises:
        ValueError: if the lengths differ or there are no files.
    """
    paths = [str(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ValueError(f"got {len(paths)} image files but {len(labels)} labels")
    if not paths:
        raise ValueError("file_source needs at least one image file")
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(lambda path, label: (decode_image(tf.io.read_file(path), [path]), label),
                       num_parallel_calls=tf.data.AUTOTUNE)


def standard_augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pad with black, crop back at a random offset, flip left-right at random.

    Each side is padded by ``max(1, side // 8)`` pixels (3 for 28, 4 for 32, 28 for 224).

    Works on a whole batch at once (one random offset and flip per image), which is several
    times faster in tf.data than mapping per image.

    Args:
        images: float32 ``(B, H, W, C)`` batch with static ``H, W, C``, 0-255 values.
        seed: int64 ``(2,)`` stateless seed; the same seed gives the same augmentation.

    Returns:
        The augmented batch, same shape.
    """
    height, width = images.shape[1], images.shape[2]
    pad_h, pad_w = max(1, height // 8), max(1, width // 8)
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    top = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * pad_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * pad_w + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
    padded = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    cols = tf.where(flip[:, None], tf.reverse(cols, axis=[1]), cols)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def _import_keras_cv():
    # keras_cv imports tensorflow_datasets when available, which logs a long, harmless
    # traceback through absl when its protobuf version differs; keep the console clean.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)
    try:
        import keras_cv
    finally:
        absl_logger.setLevel(level)
    return keras_cv


@contextlib.contextmanager
def _quiet_tf_logger():
    # keras-cv's per-image sampling makes pfor print "Using a while_loop for converting ..."
    # warnings for every random op while the map function is traced; they are not actionable.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _crop_resize_layers(preprocessing: Preprocessing, seed: int | None):
    keras_cv = _import_keras_cv()
    crop = keras_cv.layers.RandomCropAndResize(
        target_size=(preprocessing.height, preprocessing.width),
        crop_area_factor=CROP_AREA, aspect_ratio_factor=CROP_ASPECT, seed=seed)
    flip = keras_cv.layers.RandomFlip("horizontal", seed=seed)
    return lambda images: flip(crop(images, training=True), training=True)


def _mix_layer(mixup: float, cutmix: float, seed: int | None):
    keras_cv = _import_keras_cv()
    layers = []
    if mixup > 0:
        layers.append(keras_cv.layers.MixUp(alpha=mixup, seed=seed))
    if cutmix > 0:
        layers.append(keras_cv.layers.CutMix(alpha=cutmix, seed=seed))

    def mix(images, labels):
        inputs = {"images": images, "labels": labels}
        if len(layers) == 1:
            outputs = layers[0](inputs, training=True)
        else:
            # With both enabled, each batch gets one of the two, chosen at random.
            outputs = tf.cond(tf.random.uniform([], seed=seed) < 0.5,
                              lambda: layers[0](inputs, training=True),
                              lambda: layers[1](inputs, training=True))
        return tf.cast(outputs["images"], tf.float32), tf.cast(outputs["labels"], tf.float32)

    return mix


def _validate(preprocessing, batch_size, augment, mixup, cutmix, num_classes, shuffle_buffer):
    if not isinstance(preprocessing, Preprocessing):
        raise ValueError(f"preprocessing must be a tflbnn.metadata.Preprocessing, got "
                         f"{type(preprocessing).__name__}")
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if mixup < 0 or cutmix < 0:
        raise ValueError(f"mixup and cutmix are Beta-distribution alphas >= 0 (0 = off), got "
                         f"mixup={mixup}, cutmix={cutmix}")
    if (mixup > 0 or cutmix > 0) and (num_classes is None or num_classes < 2):
        raise ValueError(f"mixup/cutmix need num_classes (>= 2) for one-hot labels, got "
                         f"num_classes={num_classes}")
    if shuffle_buffer is not None and shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")


def make_dataset(source: tf.data.Dataset | tuple[np.ndarray, np.ndarray],
                 preprocessing: Preprocessing, *, batch_size: int, training: bool = False,
                 augment: str | None = "standard", mixup: float = 0.0, cutmix: float = 0.0,
                 num_classes: int | None = None, shuffle_buffer: int = 10_000,
                 seed: int | None = None, drop_remainder: bool | None = None,
                 cache: bool | str = False) -> tf.data.Dataset:
    """Batch, augment and normalize a source into model inputs.

    Evaluation (``training=False``) applies exactly ``preprocess`` to every image, keeps the
    source order and ignores the augmentation options. Training shuffles, then augments:

    * ``"standard"``: pad by 1/8 of each side with black, random crop back to size, random
      horizontal flip (plain TF ops on whole batches, one offset/flip per image, seeded);
    * ``"crop_resize"``: keras-cv ``RandomCropAndResize`` (area ``CROP_AREA``, aspect
      ``CROP_ASPECT``) and ``RandomFlip("horizontal")`` on each batch;
    * ``None``: no augmentation.

    With ``mixup > 0`` and/or ``cutmix > 0`` (keras-cv ``MixUp``/``CutMix`` with that Beta
    alpha; with both, each batch gets one of them at random) the training labels become
    **one-hot float32 ``(B, num_classes)``** rows that sum to 1; train with categorical
    (not sparse) cross-entropy then. Normalization comes after all augmentation.

    Args:
        source: dataset of ``(uint8 image (H, W, C), integer label)`` (``array_source``,
            ``file_source``, ``tfrecord_source``), or an ``(images, labels)`` array pair.
        preprocessing: the input rule (size, channels, crop, mean/std).
        batch_size: images per batch.
        training: shuffle and augment (True) or evaluate (False).
        augment: "standard", "crop_resize" or None; training only.
        mixup: MixUp alpha, 0 = off; training only.
        cutmix: CutMix alpha, 0 = off; training only.
        num_classes: number of classes; required for mixup/cutmix.
        shuffle_buffer: training shuffle buffer size; 0 or None = no shuffling.
        seed: seed for shuffling and augmentation; None = different every run.
        drop_remainder: drop the last incomplete batch; default: ``training``.
        cache: cache the decoded images before shuffling and augmentation (for
            variable-size sources after resizing, as float32): True = in memory, a string =
            a cache file path.

    Returns:
        Prefetched dataset of ``(float32 (B, height, width, channels), labels)`` with labels
        int64 ``(B,)``, or float32 ``(B, num_classes)`` when mixup/cutmix is on.

    Raises:
        ValueError: if an option is invalid (the message names it).
    """
    _validate(preprocessing, batch_size, augment, mixup, cutmix, num_classes, shuffle_buffer)
    if isinstance(source, tuple):
        source = array_source(*source)
    if drop_remainder is None:
        drop_remainder = training
    autotune = tf.data.AUTOTUNE

    def to_input_size(images, labels):
        return resize_to_input(images, preprocessing), tf.cast(labels, tf.int64)

    # Same-size sources (arrays) are resized after batching, which vectorizes the work;
    # variable-size ones (files, TFRecords) must reach one size before they can be batched.
    same_size = source.element_spec[0].shape.is_fully_defined()
    dataset = source
    if not same_size:
        dataset = dataset.map(to_input_size, num_parallel_calls=autotune, deterministic=True)
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    if training and shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder,
                            num_parallel_calls=autotune, deterministic=True)
    if same_size:
        dataset = dataset.map(to_input_size, num_parallel_calls=autotune, deterministic=True)
    if training and augment == "standard":
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, batch_seed: (standard_augment(batch[0], batch_seed), batch[1]),
            num_parallel_calls=autotune)
    if training and augment == "crop_resize":
        crop_resize = _crop_resize_layers(preprocessing, seed)
        with _quiet_tf_logger():
            dataset = dataset.map(lambda images, labels: (crop_resize(images), labels),
                                  num_parallel_calls=autotune)
    if training and (mixup > 0 or cutmix > 0):
        mix = _mix_layer(mixup, cutmix, seed)
        dataset = dataset.map(
            lambda images, labels: mix(images, tf.one_hot(labels, num_classes)),
            num_parallel_calls=autotune)
    dataset = dataset.map(lambda images, labels: (normalize(images, preprocessing), labels),
                          num_parallel_calls=autotune, deterministic=True)
    return dataset.prefetch(autotune)
