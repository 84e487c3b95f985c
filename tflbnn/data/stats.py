"""Pixel statistics for the normalization step of the preprocessing rule."""

from tflbnn import _backend  # noqa: F401  (must come first)

import numpy as np

__all__ = ["pixel_mean_std"]


def pixel_mean_std(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Counts each of the 256 pixel values per channel and works from the histogram, so it is
    exact in float64 and needs no float copy of the images (60000 MNIST images would take
    376 MB as float64).

    Args:
        images: uint8 array ``(..., C)``; the last axis is the channel.

    Returns:
        ``(mean, std)``, one float per channel each, for ``Preprocessing``.

    Raises:
        ValueError: if ``images`` is not uint8 or is empty.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"pixel_mean_std needs uint8 images, got {images.dtype}")
    if images.size == 0:
        raise ValueError("pixel_mean_std needs at least one pixel")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        counts = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        variance = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(variance ** 0.5)
    return tuple(means), tuple(stds)
