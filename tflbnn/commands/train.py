"""``tflbnn train CONFIG.toml``: run a training recipe from a config file."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model with a recipe from a TOML config (resumes interrupted runs)",
        description="Train a zoo model with a recipe (two_step, float, binary, n2uq, s3, adambnn, "
                    "bop, bn_free) described in a TOML config. Checkpoints are written every epoch; running the same command "
                    "again resumes an interrupted run. Outputs go to <output_dir>/<name>/.",
    )
    parser.add_argument("config", help="TOML run config (see tflbnn.experiment for the format)")
    parser.add_argument("--output-dir", help="parent directory of runs (overrides the config)")
    parser.add_argument("--name", help="run name (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.experiment import load_config, run_experiment
    from tflbnn.training import TrainingDivergedError

    config = load_config(args.config, output_dir=args.output_dir, name=args.name)
    try:
        result = run_experiment(config, verbose=2 if args.quiet else "auto")
    except TrainingDivergedError as error:
        print(f"tflbnn train: training diverged: {error}")
        return 3
    for stage, summary in result.stages.items():
        print(f"{stage:>8}: test accuracy {summary['test_accuracy']:.4f} "
              f"({summary['epochs']} epochs, {summary['seconds']:.0f} s)")
    print(f"model: {result.model_path} (metadata {result.model_path.with_suffix('.json')})")
    print(f"curves: {config.run_dir / 'training_curves.png'}")
    return 0
