"""The pixel limit every image decode obeys, checked from the file header before decoding.

A 48 KiB PNG can declare 20000×20000 pixels (1.2 GB once decoded to RGB) and a 41-byte JPEG
header can declare 65500×65500; decoding either exhausts memory or crashes deep inside PIL or
TensorFlow. tflbnn therefore reads the size a JPEG or PNG *claims* from its header (a few
bytes, nothing decoded) and refuses anything over ``MAX_IMAGE_PIXELS`` before any decoder sees
it: ``open_image`` (used by ``load_image`` and the up-front image checks) does so for every
file it opens, and the image-folder and TFRecord scans do so for every file the tf.data
pipelines will decode, so training never meets an oversized image mid-epoch.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path
from typing import BinaryIO, Iterator

from PIL import Image

__all__ = ["MAX_IMAGE_PIXELS", "PNG_SIGNATURE", "ImageTooLargeError", "check_image_size",
           "header_size", "open_image"]

#: Most pixels (width × height) an image may have: 8192 × 8192, 192 MiB as decoded RGB.
#: Below PIL's own bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 M), so an image this
#: check lets through never trips PIL's warning or error.
MAX_IMAGE_PIXELS = 8192 * 8192

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic...); C4 (DHT), C8 (JPG)
# and CC (DAC) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Start of scan / end of image: the frame header can no longer follow.
_JPEG_NO_FRAME = frozenset({0xD9, 0xDA})

# warnings.catch_warnings swaps process-wide state; tflbnn opens images from several threads
# (check_images), so the swaps are serialized.
_WARNINGS_LOCK = threading.Lock()


class ImageTooLargeError(ValueError):
    """An image declares more pixels than ``MAX_IMAGE_PIXELS``.

    Attributes:
        reason: the message without the file name (for callers that name the file
            themselves).
    """

    def __init__(self, reason: str, name: str | os.PathLike | None = None):
        self.reason = reason
        super().__init__(reason if name is None else f"{name}: {reason}")


def check_image_size(width: int, height: int, name: str | os.PathLike | None = None) -> None:
    """Refuse an image size over ``MAX_IMAGE_PIXELS``; the one place the limit is enforced.

    Args:
        width: pixels per row, as the header claims.
        height: rows, as the header claims.
        name: the file (or record) named in the message; omitted from it when ``None``.

    Raises:
        ImageTooLargeError: (a ``ValueError``) if ``width * height > MAX_IMAGE_PIXELS``; the
            message names the file, its claimed size and the limit.
    """
    pixels = int(width) * int(height)
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image claims {width}x{height} pixels ({pixels:,}), over the limit of "
            f"{MAX_IMAGE_PIXELS:,} pixels (tflbnn.data.MAX_IMAGE_PIXELS, 8192x8192); refusing "
            f"to decode it (a decompression bomb, or an image to downscale first)", name)


def _png_size(stream: BinaryIO) -> tuple[int, int] | None:
    # Signature (8 bytes), IHDR chunk length (4), b"IHDR", width (4), height (4).
    head = stream.read(24)
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _jpeg_size(stream: BinaryIO) -> tuple[int, int] | None:
    # Walk the marker segments after SOI, seeking over each one's payload, until a frame
    # header; only a few bytes per segment are read even behind a large EXIF block.
    stream.seek(len(_JPEG_SOI))
    while True:
        if stream.read(1) != b"\xff":
            return None
        marker = stream.read(1)
        while marker == b"\xff":  # fill bytes before a marker
            marker = stream.read(1)
        if not marker or marker[0] in _JPEG_NO_FRAME:
            return None
        if marker[0] in _JPEG_STANDALONE:
            continue
        length = stream.read(2)
        if len(length) < 2 or int.from_bytes(length, "big") < 2:
            return None
        if marker[0] in _JPEG_SOF:
            frame = stream.read(5)  # precision (1), height (2), width (2)
            if len(frame) < 5:
                return None
            return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        stream.seek(int.from_bytes(length, "big") - 2, io.SEEK_CUR)


def _header_size_of(stream: BinaryIO) -> tuple[int, int] | None:
    signature = stream.read(len(PNG_SIGNATURE))
    stream.seek(0)
    if signature == PNG_SIGNATURE:
        return _png_size(stream)
    if signature.startswith(_JPEG_SOI):
        return _jpeg_size(stream)
    return None


def header_size(source: str | os.PathLike | bytes) -> tuple[int, int] | None:
    """The ``(width, height)`` a JPEG or PNG claims in its header, without decoding it.

    Args:
        source: an image file, or the encoded bytes of an image.

    Returns:
        ``(width, height)``, or ``None`` if the data is not JPEG or PNG or its header is cut
        short or malformed (the decoder then reports the damage).

    Raises:
        OSError: if the file cannot be read.
    """
    if isinstance(source, bytes):
        return _header_size_of(io.BytesIO(source))
    with open(source, "rb") as stream:
        return _header_size_of(stream)


@contextlib.contextmanager
def open_image(source: str | os.PathLike | bytes,
               name: str | os.PathLike | None = None) -> Iterator[Image.Image]:
    """Open an image with PIL, refusing it first if it claims more than ``MAX_IMAGE_PIXELS``.

    JPEG and PNG sizes are read from the header before PIL sees the file; for the other
    formats PIL reads (header only, nothing decoded) and the size is checked before pixels
    are loaded. Use this, not ``PIL.Image.open``, wherever tflbnn decodes an image.

    Args:
        source: an image file, or the encoded bytes of an image.
        name: how messages name the image; default: the path (or nothing for bytes).

    Yields:
        The opened, not yet decoded, ``PIL.Image.Image``; closed on exit.

    Raises:
        ImageTooLargeError: (a ``ValueError``) if the image claims too many pixels.
        FileNotFoundError, OSError, PIL.UnidentifiedImageError, SyntaxError: as
            ``PIL.Image.open`` raises them for missing, unreadable or damaged files.
    """
    if name is None and not isinstance(source, bytes):
        name = str(source)
    size = header_size(source)
    if size is not None:
        check_image_size(*size, name=name)
    stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    if size is not None:
        image = Image.open(stream)
    else:
        # Formats without a header reader here: PIL's own bomb check runs in open() and
        # would warn (or raise) before the size is known; turn both into this module's error.
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(stream)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
                raise ImageTooLargeError(
                    f"image is over the limit of {MAX_IMAGE_PIXELS:,} pixels "
                    f"(tflbnn.data.MAX_IMAGE_PIXELS): {error}", name) from None
    with image:
        check_image_size(*image.size, name=name)
        yield image
