"""Image decoding and the exact preprocessing rule of ``tflbnn.metadata``.

``preprocess`` is the single reference implementation of the rule; evaluation, the conversion
parity checks and the Android app's golden tests all compare against it. In full:

1. Channels. Images are decoded to uint8 RGB, or grey for grey files. To 3 channels: grey is
   repeated. To 1 channel: the arithmetic of ``tf.image.rgb_to_grayscale``, element-wise in
   float32 and in this order: ``s = 1/255`` (rounded to float32), ``y = (r*s)*0.2989 +
   (g*s)*0.5870 + (b*s)*0.1140`` (left to right), grey ``= uint8(trunc(y * 255.5))`` (a grey
   image repeated to RGB and converted back is unchanged).
2. Centre crop. For each side ``s`` (height, then width) keep ``k = max(1, floor(s*f + 0.5))``
   pixels, ``f = center_crop``, computed in float64, starting at offset ``floor((s - k) / 2)``.
   ``f = 1`` keeps the whole image.
3. Resize to ``height × width`` with ``tf.image.resize(method="bilinear", antialias=False)``:
   half-pixel centres, edge pixels clamped, float32 output not rounded. Skipped when the
   cropped size already matches (bilinear resizing to the same size is the identity anyway).
4. ``x / 255`` then ``(x - mean[c]) / std[c]``, all in float32 with IEEE division (the same
   values as ``Preprocessing.normalize``).

Decoding: the TF pipeline decodes JPEG with ``dct_method="INTEGER_ACCURATE"`` and fancy
upsampling, which gives the same pixels as PIL (libjpeg-turbo's default islow DCT), so
``load_image`` + ``preprocess`` equals the tf.data pipeline bit for bit. EXIF orientation is not
applied by either. 16-bit images are rejected because PIL and TF convert them differently.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import UnidentifiedImageError

from tflbnn.data.image_header import (
    MAX_IMAGE_PIXELS,
    PNG_SIGNATURE,
    ImageTooLargeError,
    open_image,
)
from tflbnn.metadata import Preprocessing

__all__ = [
    "UNSUPPORTED_MODES",
    "load_image",
    "decode_image",
    "center_crop_box",
    "convert_channels",
    "resize_to_input",
    "normalize",
    "preprocess",
]

# ITU-R BT.601 luma weights, as in tf.image.rgb_to_grayscale.
_LUMA = (0.2989, 0.5870, 0.1140)
# PIL modes that hold grey pixels; every other supported mode is converted to RGB.
_GREY_MODES = {"L", "LA", "1"}
# 16-bit/float modes: PIL clips to 0-255 while TF rescales, so the two would disagree.
UNSUPPORTED_MODES = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N"})


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file with PIL to uint8, as step 1 of the rule expects.

    Palette, alpha, bilevel and CMYK images become RGB (alpha is dropped, not composited);
    grey images (with or without alpha) stay grey. The size the file claims is checked
    against ``image_header.MAX_IMAGE_PIXELS`` before anything is decoded.

    Args:
        path: image file (JPEG, PNG or anything else PIL reads at 8 bits per channel).

    Returns:
        uint8 array ``(H, W, 3)`` for colour images or ``(H, W, 1)`` for grey ones.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the path is not a regular file, the file cannot be decoded, is a
            16-bit/float image or claims more than ``MAX_IMAGE_PIXELS`` pixels
            (``ImageTooLargeError``); the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: not an image file (it is a folder or a special file)")
    try:
        with open_image(path) as image:
            mode = image.mode
            if mode not in UNSUPPORTED_MODES:
                target = "L" if mode in _GREY_MODES else "RGB"
                array = np.asarray(image.convert(target), dtype=np.uint8)
    except ImageTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        # PIL raises ValueError too (e.g. for an over-long compressed text chunk).
        raise ValueError(f"{path}: cannot decode image ({error})") from None
    if mode in UNSUPPORTED_MODES:
        raise ValueError(f"{path}: {mode} (16-bit or float) images are not supported; convert "
                         f"the file to 8 bits per channel")
    if array.ndim == 2:
        array = array[..., np.newaxis]
    return array


def _claimed_pixels(encoded: tf.Tensor) -> tf.Tensor:
    # In-graph twin of image_header.header_size, for data no scan has checked: PNG sizes
    # come from the IHDR bytes, JPEG sizes from extract_jpeg_shape (header only); other data
    # claims 0 and is left to the decoder to refuse.
    padded = tf.strings.join([encoded, tf.constant(bytes(24))])
    is_png = tf.logical_and(tf.strings.substr(padded, 0, 8) == PNG_SIGNATURE,
                            tf.strings.substr(padded, 12, 4) == b"IHDR")
    size_bytes = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 16, 8), tf.uint8), tf.int64)
    width = tf.reduce_sum(size_bytes[:4] * [2**24, 2**16, 2**8, 1])
    height = tf.reduce_sum(size_bytes[4:] * [2**24, 2**16, 2**8, 1])
    is_jpeg = tf.strings.substr(padded, 0, 2) == b"\xff\xd8"
    jpeg_pixels = tf.cond(
        is_jpeg,
        lambda: tf.reduce_prod(tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)),
        lambda: tf.constant(0, tf.int64))
    return tf.where(is_png, width * height, jpeg_pixels)


def decode_image(encoded: tf.Tensor, where: Sequence[tf.Tensor | str] = ()) -> tf.Tensor:
    """Decode JPEG or PNG bytes in TensorFlow exactly as ``load_image`` decodes them with PIL.

    The size the header claims is checked first against ``image_header.MAX_IMAGE_PIXELS``,
    as ``load_image`` does, so an image bomb fails with a message instead of an allocation
    of gigabytes. Data sets check every image when they are opened
    (``scan_image_folder``, ``scan_tfrecords``); this guard covers data nothing scanned.

    Args:
        encoded: scalar string tensor holding a JPEG or PNG file.
        where: tensors or strings that name the image in the error (e.g. its file name).

    Returns:
        uint8 tensor ``(H, W, 3)``; grey images are repeated to three channels, which
        ``convert_channels`` undoes without loss.

    Raises:
        tf.errors.InvalidArgumentError: when the graph runs, for an image over the limit or
            data the decoder cannot read.
    """
    pixels = _claimed_pixels(encoded)
    check = tf.debugging.Assert(
        pixels <= MAX_IMAGE_PIXELS,
        [*where, "image claims", pixels, f"pixels, over the limit of {MAX_IMAGE_PIXELS} "
         f"(tflbnn.data.MAX_IMAGE_PIXELS); refusing to decode it"])
    with tf.control_dependencies([check]):
        # decode_jpeg reads PNG too (same kernel as decode_image) and is the only decoder
        # that accepts dct_method; INTEGER_ACCURATE matches PIL, INTEGER_FAST does not.
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")


def center_crop_box(height: int, width: int, fraction: float) -> tuple[int, int, int, int]:
    """The window kept by step 2 of the rule.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        fraction: ``center_crop``, the fraction of each side kept, in (0, 1].

    Returns:
        ``(top, left, crop_height, crop_width)``.

    Raises:
        ValueError: if ``fraction`` is outside (0, 1] or a side is not positive.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"center_crop must be in (0, 1], got {fraction}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    kept_h = max(1, math.floor(height * fraction + 0.5))
    kept_w = max(1, math.floor(width * fraction + 0.5))
    return (height - kept_h) // 2, (width - kept_w) // 2, kept_h, kept_w


def convert_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
    """Step 1 of the rule: convert uint8 images to 1 or 3 channels.

    Args:
        images: uint8 tensor ``(..., H, W, C)`` with ``C`` in {1, 3}.
        channels: 1 or 3.

    Returns:
        uint8 tensor ``(..., H, W, channels)``.

    Raises:
        ValueError: if the input channel count is not 1 or 3 or ``channels`` is invalid.
    """
    images = tf.convert_to_tensor(images)
    have = images.shape[-1]
    if have not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if have == channels:
        return images
    if channels == 3:
        return tf.repeat(images, 3, axis=-1)
    return _rgb_to_grey(images)


def _rgb_to_grey(images: tf.Tensor) -> tf.Tensor:
    # tf.image.rgb_to_grayscale's arithmetic, written element-wise: it uses a matrix product
    # whose rounding depends on the tensor shape (per image vs per batch can differ by one
    # grey level), which would make tf.data and eager preprocessing disagree.
    scaled = tf.cast(images, tf.float32) * tf.constant(1.0 / 255.0, tf.float32)
    red, green, blue = tf.unstack(scaled, axis=-1)
    luma = red * _LUMA[0] + green * _LUMA[1] + blue * _LUMA[2]
    grey = tf.saturate_cast(luma * tf.constant(255.5, tf.float32), tf.uint8)
    return grey[..., tf.newaxis]


def _crop_sizes(side: tf.Tensor, fraction: float) -> tuple[tf.Tensor, tf.Tensor]:
    # float64 like center_crop_box, so graph and Python agree on every .5 boundary.
    kept = tf.floor(tf.cast(side, tf.float64) * fraction + 0.5)
    kept = tf.maximum(tf.cast(kept, tf.int32), 1)
    return (side - kept) // 2, kept


def resize_to_input(images: tf.Tensor, preprocessing: Preprocessing) -> tf.Tensor:
    """Steps 1 to 3 of the rule: channels, centre crop and resize, before normalization.

    Args:
        images: uint8 (or 0-255 float) tensor or array ``(H, W, C)`` or ``(N, H, W, C)``;
            height and width may be unknown until run time.
        preprocessing: the rule's parameters.

    Returns:
        float32 tensor ``(..., height, width, channels)`` with values in 0-255.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        images = convert_channels(images, preprocessing.channels)
    elif images.shape[-1] != preprocessing.channels:
        raise ValueError(f"float images must already have {preprocessing.channels} channels, "
                         f"got shape {images.shape}; pass uint8 images to convert channels")
    if preprocessing.center_crop < 1.0:
        static_h, static_w = images.shape[-3], images.shape[-2]
        if static_h is not None and static_w is not None:
            top, left, kept_h, kept_w = center_crop_box(static_h, static_w,
                                                        preprocessing.center_crop)
        else:
            shape = tf.shape(images)
            top, kept_h = _crop_sizes(shape[-3], preprocessing.center_crop)
            left, kept_w = _crop_sizes(shape[-2], preprocessing.center_crop)
        images = images[..., top:top + kept_h, left:left + kept_w, :]
    images = tf.cast(images, tf.float32)
    target = (preprocessing.height, preprocessing.width)
    if tuple(images.shape[-3:-1]) != target:
        images = tf.image.resize(images, target, method="bilinear", antialias=False)
    return images


def normalize(images: tf.Tensor, preprocessing: Preprocessing) -> tf.Tensor:
    """Step 4 of the rule: ``(x / 255 - mean) / std`` per channel, in float32.

    Gives bit for bit the float32 values of ``Preprocessing.normalize`` (NumPy), eagerly, in
    ``tf.function`` and in tf.data.

    Args:
        images: tensor ``(..., height, width, channels)`` with values in 0-255.
        preprocessing: supplies ``mean`` and ``std``.

    Returns:
        float32 tensor of the same shape.
    """
    # In a tf.function, Grappler rewrites x / constant into x * (1 / constant), which is off
    # by an ulp for some values; DivNoNan is not rewritten and divides exactly (the divisors
    # are never zero).
    images = tf.math.divide_no_nan(tf.cast(images, tf.float32), tf.constant(255.0, tf.float32))
    mean = tf.constant(preprocessing.mean, tf.float32)
    std = tf.constant(preprocessing.std, tf.float32)
    return tf.math.divide_no_nan(images - mean, std)


def preprocess(images: np.ndarray | tf.Tensor, preprocessing: Preprocessing) -> tf.Tensor:
    """Apply the whole preprocessing rule (see the module docstring) to decoded images.

    Args:
        images: uint8 array or tensor ``(H, W, C)`` or ``(N, H, W, C)``, ``C`` in {1, 3}, as
            returned by ``load_image`` or ``decode_image`` (a batch shares one size).
        preprocessing: the rule's parameters.

    Returns:
        float32 tensor ``(..., height, width, channels)``, the model input. Call ``.numpy()``
        for an array.

    Raises:
        ValueError: if the images have an unsupported channel count or dtype.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(f"preprocess expects uint8 images (decoded pixels), got {images.dtype}")
    if images.shape.rank not in (3, 4):
        raise ValueError(f"preprocess expects (H, W, C) or (N, H, W, C) images, got shape "
                         f"{images.shape}")
    return normalize(resize_to_input(images, preprocessing), preprocessing)
