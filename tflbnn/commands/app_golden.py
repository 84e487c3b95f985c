"""``tflbnn app-golden``: golden files for the Android demo's JVM parity tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "app-golden",
        help="write decoded pixels, preprocessed tensors and model outputs for the app's tests",
        description="For each IMAGE (and the first N embedded Fashion-MNIST test images), write "
                    "the pixels Python decodes, the preprocessed input tensors and MODEL's outputs "
                    "and top-5 into OUT, for android_demo/tools/run_jvm_tests.sh to compare "
                    "against the app's Java logic.")
    parser.add_argument("images", type=Path, nargs="*", metavar="IMAGE", help="image files")
    parser.add_argument("--model", type=Path, required=True, help="the .tflite model")
    parser.add_argument("--out", type=Path, required=True, help="golden folder to (re)write")
    parser.add_argument("--fashion-mnist", type=int, default=0, metavar="N",
                        help="also use the first N embedded Fashion-MNIST test images")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.android import write_golden

    if not args.images and args.fashion_mnist == 0:
        raise CommandError("give IMAGE files or --fashion-mnist N")
    out = write_golden(args.out, args.model, args.images, fashion_mnist=args.fashion_mnist)
    print(f"wrote golden files to {out}")
    return 0
