"""Deterministic class-balanced subsets (``limit_train`` / ``limit_test`` of data specs)."""

from tflbnn import _backend  # noqa: F401  (must come first)

import numpy as np

__all__ = ["stratified_first_n"]


def stratified_first_n(labels: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of ``n`` samples spread evenly over the classes, earliest samples first.

    Classes take turns: every class's first sample, then every class's second sample, and so
    on (classes in label order within a turn), until ``n`` are chosen. A class that runs out
    simply stops taking turns. No randomness: the same labels always give the same subset.

    Args:
        labels: integer labels ``(N,)``.
        n: subset size; ``None`` or ``n >= N`` keeps everything.

    Returns:
        Sorted int64 indices into ``labels`` (so the subset keeps the original order).

    Raises:
        ValueError: if ``n`` is negative or ``labels`` is not 1-D.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if n is None or n >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    order = np.argsort(labels, kind="stable")
    grouped = labels[order]
    first_of_class = np.searchsorted(grouped, grouped, side="left")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - first_of_class
    chosen = np.lexsort((labels, rank))[:n]
    return np.sort(chosen).astype(np.int64)
