"""``tflbnn classify``: run a converted ``.tflite`` on image files, using its sidecar metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run", "softmax_if_logits"]

# Outputs that are already a distribution (a model ending in softmax) must not be re-normalised.
_PROBABILITY_TOLERANCE = 1e-3


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


def softmax_if_logits(outputs):
    """Row-wise softmax, unless each row already is a probability distribution.

    Args:
        outputs: array ``(N, classes)``.

    Returns:
        float64 probabilities of the same shape.
    """
    import numpy as np

    outputs = np.asarray(outputs, dtype=np.float64)
    sums = outputs.sum(axis=1)
    if np.all(outputs >= 0) and np.all(np.abs(sums - 1.0) <= _PROBABILITY_TOLERANCE):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from tflbnn.converters import read_tflite, run_lce
    from tflbnn.data import load_image, preprocess
    from tflbnn.metadata import ModelMetadata, sidecar_path

    if args.top_k < 1:
        raise CommandError(f"--top-k must be at least 1, got {args.top_k}")
    info = read_tflite(args.model)
    sidecar = sidecar_path(args.model)
    if not sidecar.is_file():
        raise CommandError(f"no metadata {sidecar} next to {args.model}: classify needs the labels "
                           "and preprocessing that 'tflbnn convert' writes there")
    metadata = ModelMetadata.load(sidecar)
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise CommandError(f"{args.model}: expected one input and one output, found "
                           f"{len(info.inputs)} and {len(info.outputs)}")
    expected = tuple(info.inputs[0].shape[1:])
    if expected != metadata.preprocessing.input_shape:
        raise CommandError(f"{sidecar}: preprocessing gives {metadata.preprocessing.input_shape} "
                           f"but {args.model} expects {expected}")
    classes = info.outputs[0].shape[-1]
    if classes != len(metadata.labels):
        raise CommandError(f"{sidecar}: {len(metadata.labels)} labels but {args.model} has "
                           f"{classes} outputs")
    images = np.stack([np.asarray(preprocess(load_image(path), metadata.preprocessing))
                       for path in args.images])
    probabilities = softmax_if_logits(
        run_lce(args.model.read_bytes(), images, num_threads=args.threads).reshape(len(images), -1))
    top_k = min(args.top_k, classes)
    for path, row in zip(args.images, probabilities):
        print(f"{path}:")
        for rank, index in enumerate(np.argsort(-row, kind="stable")[:top_k], start=1):
            print(f"  {rank}. {metadata.labels[index]:<24} {row[index]:.4f}")
    return 0

