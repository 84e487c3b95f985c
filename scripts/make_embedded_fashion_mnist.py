#!/usr/bin/env python
"""Make the stratified Fashion-MNIST subset shipped inside tflbnn (``tflbnn/data/embedded``).

Picks a fixed number of images per class from the full Fashion-MNIST train and test sets with
a seeded random generator, keeps them in their original order, and writes them as gzipped IDX
files (no gzip timestamp, so the output is byte-for-byte reproducible) plus a JSON manifest
with per-class counts, the seed, SHA-256 checksums of sources and outputs, the source indices
file names, and the pixel mean/std of the *full* training set (used as the normalization of
``tflbnn.data.fashion_mnist_preprocessing``).

Usage:
    python scripts/make_embedded_fashion_mnist.py                 # Debian dataset-fashion-mnist
    python scripts/make_embedded_fashion_mnist.py --source-dir DIR --output-dir OUT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tflbnn.data.fashion_mnist import (  # noqa: E402
    DEBIAN_DIR,
    EMBEDDED_DIR,
    FASHION_MNIST_LABELS,
    MANIFEST_NAME,
    SPLIT_FILES,
)
from tflbnn.data.idx import load_idx_pair, write_idx  # noqa: E402
from tflbnn.data.stats import pixel_mean_std  # noqa: E402
from tflbnn.metadata import write_bytes_atomic  # noqa: E402

DEFAULT_SEED = 20171025  # Fashion-MNIST's arXiv submission date; any fixed value would do.

LICENSE_NOTE = (
    "Fashion-MNIST is Copyright (c) 2017 Zalando SE and released under the MIT License "
    "(https://github.com/zalandoresearch/fashion-mnist/blob/master/LICENSE). This is a "
    "subset of it, unmodified pixels and labels."
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stratified_random_subset(labels: np.ndarray, per_class: int, num_classes: int,
                             rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random samples of each class, sorted ascending."""
    chosen = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(f"class {label} has only {len(members)} samples, need {per_class}")
        chosen.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEBIAN_DIR,
                        help=f"folder with the four gzipped Fashion-MNIST IDX files "
                             f"(default: {DEBIAN_DIR})")
    parser.add_argument("--output-dir", type=Path, default=EMBEDDED_DIR,
                        help=f"where to write the subset (default: {EMBEDDED_DIR})")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    num_classes = len(FASHION_MNIST_LABELS)
    rng = np.random.default_rng(args.seed)
    manifest: dict = {
        "dataset": "Fashion-MNIST",
        "description": "Stratified random subset of Fashion-MNIST shipped with tflbnn so "
                       "that examples and tests run without downloading anything.",
        "license": "MIT",
        "license_note": LICENSE_NOTE,
        "generator": "scripts/make_embedded_fashion_mnist.py",
        "seed": args.seed,
        "labels": list(FASHION_MNIST_LABELS),
        "splits": {},
    }
    per_class = {"train": args.train_per_class, "test": args.test_per_class}
    for split, names in SPLIT_FILES.items():
        image_source = args.source_dir / names["images"]
        label_source = args.source_dir / names["labels"]
        images, labels = load_idx_pair(image_source, label_source)
        if split == "train":
            (mean,), (std,) = pixel_mean_std(images)
            manifest["full_train_pixel_stats"] = {
                "mean": mean,
                "std": std,
                "units": f"pixel / 255, over all pixels of all {len(images)} training images",
                "count": int(len(images)),
            }
        indices = stratified_random_subset(labels, per_class[split], num_classes, rng)
        outputs = {
            "images": write_idx(args.output_dir / names["images"], images[indices, :, :, 0]),
            "labels": write_idx(args.output_dir / names["labels"],
                                labels[indices].astype(np.uint8)),
            "source_indices": write_idx(args.output_dir / names["source_indices"],
                                        indices.astype(np.int32)),
        }
        counts = np.bincount(labels[indices], minlength=num_classes)
        manifest["splits"][split] = {
            "count": int(len(indices)),
            "count_per_class": {FASHION_MNIST_LABELS[c]: int(counts[c])
                                for c in range(num_classes)},
            "source_count": int(len(labels)),
            "source": {kind: {"file": path.name, "sha256": sha256_of(path)}
                       for kind, path in (("images", image_source), ("labels", label_source))},
            "files": {kind: {"file": path.name, "sha256": sha256_of(path),
                             "bytes": path.stat().st_size}
                      for kind, path in outputs.items()},
        }
    text = json.dumps(manifest, indent=2) + "\n"
    manifest_path = write_bytes_atomic(args.output_dir / MANIFEST_NAME, text.encode("utf-8"))
    total = sum(f["bytes"] for s in manifest["splits"].values() for f in s["files"].values())
    stats = manifest["full_train_pixel_stats"]
    print(f"wrote {manifest_path} and {total} bytes of IDX files; "
          f"full train mean={stats['mean']:.6f} std={stats['std']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
