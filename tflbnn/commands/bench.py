"""``tflbnn bench``: latency of a converted ``.tflite`` (LCE or int8) against its float32 twin on
this machine."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time a converted .tflite (and its float32 twin with XNNPACK) on this machine",
        description="Time single-image inference of MODEL.tflite written by 'tflbnn convert' "
                    "and of its float32 twin in TFLite with XNNPACK, and print the speed-up. LCE "
                    "models run in the LCE interpreter (on x86 the 'indirect' bconv kernel is ~5x "
                    "faster than 'default'; it is the default); int8 models (N2UQ full-integer, "
                    "S3 int8 weights) run in TFLite with XNNPACK, like the twin.")
    parser.add_argument("model", type=Path, help="the converted model (.tflite)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--kernel", choices=("indirect", "default", "reference"),
                        default="indirect",
                        help="LceBconv2d kernel, LCE models only (default indirect)")
    parser.add_argument("--compare", type=Path, metavar="FLOAT.tflite",
                        help="float32 model to compare with (default: the float twin named in "
                             "the sidecar MODEL.json, whose recorded SHA-256s the model and the "
                             "twin must match)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.set_defaults(func=run)


def _read_models(args: argparse.Namespace):
    """``(model, float twin or None, note)``: read and checked before anything is timed.

    With a sidecar next to the model, the model must match its ``model_sha256`` and the float
    twin it names is read from the model's folder only, checked against its recorded digest.
    """
    from tflbnn.classifier import read_model_set
    from tflbnn.converters.flatbuffer import read_tflite_file
    from tflbnn.metadata import sidecar_path

    sidecar = sidecar_path(args.model)
    if os.path.lexists(sidecar):
        model_set = read_model_set(args.model, float_twin=args.compare is None)
        model, twin, note = model_set.model, model_set.float_twin, model_set.float_twin_note
    else:
        model = read_tflite_file(args.model)
        twin, note = None, f"no sidecar {sidecar} naming a float twin"
    if args.compare is not None:
        twin, note = read_tflite_file(args.compare), "given with --compare"
    return model, twin, note


def run(args: argparse.Namespace) -> int:
    from tflbnn.converters import Comparison, benchmark_tflite, converted_label, kernel_flags
    from tflbnn.metadata import check_writable_output, write_bytes_atomic

    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        raise CommandError(f"--runs and --threads must be >= 1 and --warmup >= 0, got "
                           f"{args.runs}, {args.threads}, {args.warmup}")
    if args.json:
        check_writable_output(args.json)  # before the benchmark, not after it
    options = dict(num_runs=args.runs, warmup=args.warmup, num_threads=args.threads,
                   **kernel_flags(args.kernel))
    model, twin, note = _read_models(args)
    label = converted_label(model)
    if label is not None and twin is not None and converted_label(twin) is not None:
        raise CommandError(f"{twin.path}: contains LCE ops or int8 tensors; --compare needs "
                           "the float32 twin")
    stats = benchmark_tflite(model, **options)
    if label is None:
        print(f"note: {args.model} has no LCE ops and no int8 tensors; timed as a plain float "
              "TFLite model")
        print(stats.summary())
        result = {"model": stats.as_dict()}
    elif twin is None:
        print(f"{label:<5} {stats.summary()}")
        print(f"no float comparison: {note} (pass --compare FLOAT.tflite)")
        result = {"lce": stats.as_dict(), "float32": None, "speedup": None, "label": label}
    else:
        float_options = {key: value for key, value in options.items()
                         if key in ("num_runs", "warmup", "num_threads")}
        float_stats = benchmark_tflite(twin, **float_options)
        comparison = Comparison(lce=stats, float32=float_stats, label=label)
        print(comparison.summary())
        kernel = f"bconv kernel: {args.kernel}; " if label == "LCE" else ""
        print(f"{kernel}float model: {note}")
        result = comparison.as_dict()
    if args.json:
        write_bytes_atomic(args.json, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        print(f"wrote {args.json}")
    return 0
