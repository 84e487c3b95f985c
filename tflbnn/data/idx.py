"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array in C order, big-endian. Files ending in ``.gz`` are gzipped.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from tflbnn.metadata import write_bytes_atomic

__all__ = ["read_idx", "write_idx", "load_idx_pair"]

# IDX dtype codes (http://yann.lecun.com/exdb/mnist/); multi-byte types are big-endian.
_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE = {dtype.newbyteorder("="): code for code, dtype in _CODE_TO_DTYPE.items()}


# Bytes read per step of a gzip stream, so a file never takes more memory than it holds.
_CHUNK = 16 * 2**20


def _open(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_at_most(stream, count: int) -> bytes:
    # Reads count bytes, or fewer at the end of the data, in bounded chunks: a header that
    # claims a huge array must not make one read() allocate it before the data runs out.
    chunks, have = [], 0
    while have < count:
        chunk = stream.read(min(_CHUNK, count - have))
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def _read_header(path: Path, stream) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_at_most(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(magic)} bytes)")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path}: bad IDX magic number {magic.hex()} (must start with "
                         f"two zero bytes); is this an IDX file?")
    code, ndim = magic[2], magic[3]
    if code not in _CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    dims = _read_at_most(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} "
                         f"bytes, file has {4 + len(dims)}")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return _CODE_TO_DTYPE[code], shape


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped if the name ends in ``.gz``).

    Reads no more than the header says the array holds (plus one byte to detect trailing
    data), so a header claiming a huge array cannot exhaust memory.

    Args:
        path: the IDX file.

    Returns:
        The array, in native byte order, with the dtype and shape given by the header
        (uint8 for MNIST-family images and labels).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not valid IDX: bad gzip stream, bad magic number, unknown
            dtype code, or a size that does not match the header. The message names the file.
    """
    path = Path(path)
    try:
        with _open(path) as stream:
            dtype, shape = _read_header(path, stream)
            # Python integers: a product of 32-bit dimensions can overflow int64.
            body_size = math.prod(shape) * dtype.itemsize
            body = _read_at_most(stream, body_size + 1)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        what = "not a valid gzip file" if path.suffix == ".gz" else "cannot be read"
        raise ValueError(f"{path}: {what} ({error})") from None
    if len(body) != body_size:
        header_size = 4 + 4 * len(shape)
        dims = "x".join(str(d) for d in shape)
        kind = "truncated" if len(body) < body_size else "has trailing bytes"
        found = f"{header_size + len(body)} bytes" if len(body) <= body_size else \
            "more bytes"
        raise ValueError(f"{path}: IDX data {kind}: header says {dims} of {dtype.name} "
                         f"({header_size + body_size} bytes with header) but the data has "
                         f"{found}")
    array = np.frombuffer(body, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as an IDX file, gzipped when ``path`` ends in ``.gz``.

    The gzip header carries no timestamp or file name, so the same array always gives the
    same bytes (the embedded Fashion-MNIST subset relies on this to be reproducible).

    Args:
        path: destination; written atomically, parent directories are created.
        array: array of dtype uint8, int8, int16, int32, float32 or float64, at least 1-D.

    Returns:
        The path written.

    Raises:
        ValueError: if the dtype has no IDX code, the array is 0-D, or a dimension does not
            fit in 32 bits.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _DTYPE_TO_CODE:
        raise ValueError(f"{path}: IDX cannot store dtype {array.dtype} (supported: uint8, "
                         f"int8, int16, int32, float32, float64)")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"{path}: IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"{path}: dimension too large for IDX: {array.shape}")
    header = bytes([0, 0, _DTYPE_TO_CODE[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    data = header + body
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return write_bytes_atomic(path, data)


def load_idx_pair(images_path: str | os.PathLike,
                  labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an MNIST-style pair of image and label IDX files.

    Args:
        images_path: uint8 IDX file of shape ``(N, H, W)`` (or ``(N, H, W, C)``).
        labels_path: uint8 IDX file of shape ``(N,)``.

    Returns:
        ``(images, labels)``: images uint8 ``(N, H, W, C)`` (``C`` = 1 for 3-D files) and
        labels int64 ``(N,)``.

    Raises:
        FileNotFoundError: if a file does not exist.
        ValueError: if a file is not valid IDX, is not uint8, has the wrong number of
            dimensions, holds no images, or the image and label counts differ. The message
            names the file(s).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path}: images must be uint8 IDX, got {images.dtype}")
    if images.ndim not in (3, 4):
        raise ValueError(f"{images_path}: images must have 3 (N, H, W) or 4 (N, H, W, C) "
                         f"dimensions, got shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: labels must be 1-D uint8 IDX, got {labels.dtype} "
                         f"with shape {labels.shape}")
    if len(images) == 0:
        raise ValueError(f"{images_path}: the IDX file holds no images (its header says "
                         f"{'x'.join(str(d) for d in images.shape)})")
    if 0 in images.shape[1:]:
        raise ValueError(f"{images_path}: images have an empty dimension (shape "
                         f"{images.shape}); each image needs a height and width of at least 1")
    if len(images) != len(labels):
        raise ValueError(f"image/label count mismatch: {images_path} has {len(images)} images "
                         f"but {labels_path} has {len(labels)} labels")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images, labels.astype(np.int64)
