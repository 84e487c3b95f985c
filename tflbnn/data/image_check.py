"""Up-front checks of image files and bytes, so bad data fails before training starts.

TensorFlow's decoders fail mid-epoch with an error that names no file; these checks run with
PIL when a data set is opened and name the offending file instead.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import UnidentifiedImageError

from tflbnn.data.image_header import ImageTooLargeError, check_image_size, header_size, open_image
from tflbnn.data.preprocess import UNSUPPORTED_MODES

__all__ = ["CHECK_MODES", "image_problem", "check_images"]

CHECK_MODES = ("verify", "decode", "none")

# The TF decoder used by the pipelines (decode_jpeg) reads exactly these formats the same way
# PIL does.
_SUPPORTED_FORMATS = {"JPEG", "PNG"}


def image_problem(source: str | os.PathLike | bytes, check: str = "verify") -> str | None:
    """Why an image cannot be used, or ``None`` if it passes the check.

    Every mode, ``"none"`` included, reads the size a JPEG/PNG header claims and refuses an
    image over ``image_header.MAX_IMAGE_PIXELS``, so the tf.data decoders never meet one.

    Args:
        source: an image file path, or the encoded bytes of an image.
        check: ``"verify"`` reads the header and checks the file structure
            (``PIL.Image.verify``: cheap, catches most corruption but not every truncated
            JPEG); ``"decode"`` fully decodes the pixels (slower, catches everything);
            ``"none"`` only checks that a file exists and the size its header claims.

    Returns:
        A short reason, or ``None``.

    Raises:
        ValueError: if ``check`` is not one of ``CHECK_MODES``.
    """
    if check not in CHECK_MODES:
        raise ValueError(f"check must be one of {CHECK_MODES}, got {check!r}")
    if not isinstance(source, bytes) and not Path(source).is_file():
        return "file not found"
    try:
        if check == "none":
            size = header_size(source)
            if size is not None:
                check_image_size(*size)
            return None
        with open_image(source) as image:
            if image.format not in _SUPPORTED_FORMATS:
                return f"format {image.format} is not supported (use JPEG or PNG)"
            if image.mode in UNSUPPORTED_MODES:
                return f"{image.mode} (16-bit or float) images are not supported"
            if check == "verify":
                image.verify()
            else:
                image.load()
    except ImageTooLargeError as error:
        return error.reason
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"cannot decode image ({error})"
    return None


def check_images(sources: Sequence[str | os.PathLike | bytes], *, check: str = "verify",
                 skip_invalid: bool = False, what: str = "image",
                 names: Sequence[str] | None = None) -> list[int]:
    """Check many images in parallel and either raise or warn about the bad ones.

    Args:
        sources: image paths or encoded bytes.
        check: see ``image_problem``.
        skip_invalid: if False, the first bad image raises; if True, bad images are reported
            in one ``warnings.warn`` and left out.
        what: noun used in messages (e.g. "image file").
        names: how to name each source in messages; defaults to the path (or "item <i>" for
            bytes).

    Returns:
        Indices of the images that passed, in order.

    Raises:
        ValueError: if an image is bad and ``skip_invalid`` is False; the message names it.
    """
    if names is None:
        names = [f"item {i}" if isinstance(s, bytes) else str(s) for i, s in enumerate(sources)]
    if check == "none":
        problems = [image_problem(s, "none") for s in sources]
    else:
        # PIL releases the GIL while decoding, so threads speed up large folders.
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
            problems = list(pool.map(lambda s: image_problem(s, check), sources))
    bad = [(names[i], p) for i, p in enumerate(problems) if p is not None]
    if bad and not skip_invalid:
        name, problem = bad[0]
        more = f" (and {len(bad) - 1} more bad {what}s)" if len(bad) > 1 else ""
        raise ValueError(f"invalid {what} {name}: {problem}{more}. Fix or remove it, or pass "
                         f"skip_invalid=True to leave bad {what}s out with a warning")
    if bad:
        listing = "\n".join(f"  {name}: {problem}" for name, problem in bad)
        warnings.warn(f"skipped {len(bad)} invalid {what}(s):\n{listing}", stacklevel=3)
    return [i for i, p in enumerate(problems) if p is None]
