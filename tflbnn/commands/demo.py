"""``tflbnn demo``: the main job on the embedded data, end to end.

Trains ReActNet-A (float twin as teacher, then the two-step binary student) on the embedded
Fashion-MNIST subset, evaluates it, converts it to an LCE ``.tflite``, verifies coverage and
parity, benchmarks it against the float32 twin, and writes everything to ``runs/demo/``.
"""

from __future__ import annotations

import argparse
from importlib import resources

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run", "demo_config_path"]


def demo_config_path():
    """The packaged demo config (``tflbnn/configs/demo.toml``)."""
    return resources.files("tflbnn") / "configs" / "demo.toml"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train, convert, verify and benchmark a binary ReActNet on the embedded data",
        description="Train ReActNet-A on the embedded Fashion-MNIST subset (float teacher, then "
                    "the two-step binary student), convert it to an LCE .tflite, verify and "
                    "benchmark it. Re-running resumes or reuses finished stages.")
    parser.add_argument("--output-dir", default=None, help="parent directory (default: runs)")
    parser.add_argument("--name", default=None, help="run name (default: demo)")
    parser.add_argument("--bench-runs", type=int, default=100,
                        help="timed inferences per model (default 100)")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.deploy import deploy_run
    from tflbnn.experiment import load_config, run_experiment

    if args.bench_runs < 1:  # checked before the minutes of training, not after
        raise CommandError(f"--bench-runs must be at least 1, got {args.bench_runs}")
    with resources.as_file(demo_config_path()) as config_file:
        config = load_config(config_file, output_dir=args.output_dir, name=args.name)
    result = run_experiment(config, verbose=2 if args.quiet else "auto")
    print("converting, verifying and benchmarking ...")
    deploy_run(result, bench_runs=args.bench_runs)
    report = config.run_dir / "report.md"
    print(report.read_text())
    print(f"written to {config.run_dir}/ (report: {report})")
    print(f"to bundle it in the Android demo app: tflbnn app-model {config.run_dir}/model.tflite")
    return 0
