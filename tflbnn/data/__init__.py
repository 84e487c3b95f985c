"""Data for tflbnn: readers, the exact preprocessing rule, tf.data pipelines, data bundles.

* ``idx``: MNIST-family IDX files (``read_idx``, ``write_idx``, ``load_idx_pair``).
* ``fashion_mnist``: the full Fashion-MNIST or the subset shipped with tflbnn.
* ``image_folder`` / ``tfrecord``: ImageNet-style class folders and TFRecord shards, checked
  up front so bad files are reported by name.
* ``image_header``: ``MAX_IMAGE_PIXELS``, the size limit every decode checks from the file
  header first (``check_image_size``, ``open_image``).
* ``preprocess``: ``load_image`` and ``preprocess``, the reference implementation of the
  preprocessing rule in ``tflbnn.metadata``.
* ``pipeline``: ``make_dataset`` (batching, augmentation, MixUp/CutMix, normalization).
* ``bundle``: ``load_data(spec) -> DataBundle`` for configs and the CLI.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

from tflbnn.data.bundle import (
    DATA_KINDS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataBundle,
    check_data_spec,
    load_data,
)
from tflbnn.data.fashion_mnist import (
    FASHION_MNIST_ENV_VAR,
    FASHION_MNIST_LABELS,
    embedded_source_indices,
    fashion_mnist_manifest,
    fashion_mnist_preprocessing,
    find_full_fashion_mnist,
    load_fashion_mnist,
)
from tflbnn.data.idx import load_idx_pair, read_idx, write_idx
from tflbnn.data.image_check import check_images, image_problem
from tflbnn.data.image_header import (
    MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    check_image_size,
    header_size,
    open_image,
)
from tflbnn.data.image_folder import IMAGE_EXTENSIONS, ImageFolder, scan_image_folder
from tflbnn.data.pipeline import (
    AUGMENTATIONS,
    array_source,
    file_source,
    make_dataset,
    standard_augment,
)
from tflbnn.data.preprocess import (
    center_crop_box,
    convert_channels,
    decode_image,
    load_image,
    normalize,
    preprocess,
    resize_to_input,
)
from tflbnn.data.stats import pixel_mean_std
from tflbnn.data.subset import stratified_first_n
from tflbnn.data.tfrecord import (
    DEFAULT_IMAGE_KEY,
    DEFAULT_LABEL_KEY,
    resolve_files,
    scan_tfrecords,
    tfrecord_source,
    write_tfrecord,
)

__all__ = [
    "AUGMENTATIONS",
    "DATA_KINDS",
    "DEFAULT_IMAGE_KEY",
    "DEFAULT_LABEL_KEY",
    "DataBundle",
    "FASHION_MNIST_ENV_VAR",
    "FASHION_MNIST_LABELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "ImageTooLargeError",
    "MAX_IMAGE_PIXELS",
    "array_source",
    "center_crop_box",
    "check_data_spec",
    "check_image_size",
    "check_images",
    "convert_channels",
    "decode_image",
    "embedded_source_indices",
    "fashion_mnist_manifest",
    "fashion_mnist_preprocessing",
    "file_source",
    "find_full_fashion_mnist",
    "header_size",
    "image_problem",
    "load_data",
    "load_fashion_mnist",
    "load_idx_pair",
    "load_image",
    "make_dataset",
    "normalize",
    "open_image",
    "pixel_mean_std",
    "preprocess",
    "read_idx",
    "resize_to_input",
    "resolve_files",
    "scan_image_folder",
    "scan_tfrecords",
    "standard_augment",
    "stratified_first_n",
    "tfrecord_source",
    "write_idx",
    "write_tfrecord",
]
