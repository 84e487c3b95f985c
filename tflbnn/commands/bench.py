"""``tflbnn bench``: latency of a converted ``.tflite`` (LCE or int8) against its float32 twin on
this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run", "float_twin_from_sidecar"]


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
                             "the sidecar MODEL.json)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.set_defaults(func=run)


def float_twin_from_sidecar(model_path: Path) -> tuple[Path | None, str]:
    """The float twin recorded by ``tflbnn convert`` in ``MODEL.json``, with a note if absent.

    Returns:
        ``(path or None, note)``.
    """
    from tflbnn.converters import METADATA_KEY
    from tflbnn.metadata import ModelMetadata, sidecar_path

    sidecar = sidecar_path(model_path)
    if not sidecar.is_file():
        return None, f"no sidecar {sidecar} naming a float twin"
    twin = ModelMetadata.load(sidecar).extra.get(METADATA_KEY, {}).get("float_twin")
    if not twin:
        return None, f"{sidecar} names no float twin (converted with --no-float-reference?)"
    path = model_path.parent / twin
    if not path.is_file():
        return None, f"float twin {path} named in {sidecar} does not exist"
    return path, f"float twin from {sidecar}"


def run(args: argparse.Namespace) -> int:
    from tflbnn.converters import Comparison, benchmark_tflite, converted_label, kernel_flags
    from tflbnn.metadata import write_bytes_atomic

    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        raise CommandError(f"--runs and --threads must be >= 1 and --warmup >= 0, got "
                           f"{args.runs}, {args.threads}, {args.warmup}")
    options = dict(num_runs=args.runs, warmup=args.warmup, num_threads=args.threads,
                   **kernel_flags(args.kernel))
    label = converted_label(args.model)
    stats = benchmark_tflite(args.model, **options)
    if label is None:
        print(f"note: {args.model} has no LCE ops and no int8 tensors; timed as a plain float "
              "TFLite model")
        print(stats.summary())
        result = {"model": stats.as_dict()}
    else:
        if args.compare is not None:
            twin, note = args.compare, "given with --compare"
        else:
            twin, note = float_twin_from_sidecar(args.model)
        if twin is None:
            print(f"{label:<5} {stats.summary()}")
            print(f"no float comparison: {note} (pass --compare FLOAT.tflite)")
            result = {"lce": stats.as_dict(), "float32": None, "speedup": None, "label": label}
        else:
            float_options = {key: value for key, value in options.items()
                             if key in ("num_runs", "warmup", "num_threads")}
            if converted_label(twin) is not None:
                raise CommandError(f"{twin}: contains LCE ops or int8 tensors; --compare needs "
                                   "the float32 twin")
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
