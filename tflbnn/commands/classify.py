"""``tflbnn classify``: run a converted ``.tflite`` on image files, using its sidecar metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify image files with a converted .tflite and its sidecar metadata",
        description="Preprocess each IMAGE exactly as MODEL.json says, run the model in the LCE "
                    "interpreter and print the top-k classes with softmax probabilities.")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--model", type=Path, required=True, help="the .tflite model")
    parser.add_argument("--top-k", type=int, default=5, help="classes to print (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.classifier import TFLiteClassifier

    if args.top_k < 1:
        raise CommandError(f"--top-k must be at least 1, got {args.top_k}")
    if args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    classifier = TFLiteClassifier(args.model)
    inputs = classifier.preprocess_files(args.images)
    rankings = classifier.predict(inputs, k=args.top_k, num_threads=args.threads)
    for path, ranking in zip(args.images, rankings):
        print(f"{path}:")
        for rank, prediction in enumerate(ranking, start=1):
            print(f"  {rank}. {prediction.label:<24} {prediction.probability:.4f}")
    return 0
