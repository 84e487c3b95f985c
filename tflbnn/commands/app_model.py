"""``tflbnn app-model``: make a converted model the Android demo app's default model."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "app-model",
        help="copy a converted .tflite and its metadata into the Android demo app's assets",
        description="Check MODEL (a .tflite with its .json sidecar from 'tflbnn convert' or "
                    "'tflbnn demo'), then copy model.tflite, model.json and labels.txt into "
                    "APP_DIR/app/src/main/assets, replacing the app's default model.")
    parser.add_argument("model", type=Path, metavar="MODEL", help="the .tflite model")
    parser.add_argument("--app-dir", type=Path, default=Path("android_demo"),
                        help="the android_demo folder (default: ./android_demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.android import install_app_model

    for path in install_app_model(args.model, args.app_dir):
        print(f"wrote {path}")
    return 0
