"""``tflbnn models``: list the zoo, or profile one model (MACs, OPs, parameters, size)."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run"]


def _shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(part) for part in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape must look like 224,224,3, got {text!r}")
    if len(dims) != 3:
        raise argparse.ArgumentTypeError(f"input shape needs height,width,channels, got {text!r}")
    return dims


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options look like key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list zoo models, or profile one (binary/float MACs, OPs, size)")
    parser.add_argument("name", nargs="?", help="model to profile; omit to list all")
    parser.add_argument("--input-shape", type=_shape, default=(224, 224, 3),
                        help="height,width,channels (default 224,224,3)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--option", "-o", type=_option, action="append", default=[],
                        metavar="KEY=VALUE", help="model option, e.g. -o width=0.25")
    parser.add_argument("--layers", action="store_true", help="print the per-layer table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.models import get_model, list_models, model_options, profile

    if not args.name:
        for name in list_models():
            options = ", ".join(f"{key}={value!r}" for key, value in model_options(name).items())
            print(f"{name}: {options}")
        return 0
    model = get_model(args.name, input_shape=args.input_shape, num_classes=args.num_classes,
                      **dict(args.option))
    result = profile(model)
    if args.layers:
        print(result.table())
    print(f"{args.name} {args.input_shape} -> {args.num_classes} classes")
    print(f"  binary MACs {result.binary_macs:,}  low-bit MACs {result.lowbit_macs:,}  "
          f"float MACs {result.float_macs:,}  OPs {result.ops:.4g}")
    print(f"  parameters {result.params:,} ({result.binary_params:,} binary, "
          f"{result.lowbit_params:,} low-bit)  size "
          f"{result.size_bits / 8 / 2**20:.2f} MiB vs float32 "
          f"{result.float32_size_bits / 8 / 2**20:.2f} MiB")
    return 0
