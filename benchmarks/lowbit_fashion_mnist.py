"""Float vs N2UQ vs S3 small ResNet-18s on the full Fashion-MNIST test set, deployed as TFLite.

    make benchmark-lowbit        # installs the full data set, then runs this script
    .venv/bin/python benchmarks/lowbit_fashion_mnist.py [--output-dir runs] [--train-only]

Trains (or reuses / resumes, run by run) on the 60k training images, from the recipes in
tflbnn/configs/fashion_mnist_n2uq.toml and fashion_mnist_s3.toml:

* ``float``: the N2UQ ResNet-18's float twin (width 0.25, small stem), the float reference and
  the initialisation of every N2UQ run;
* ``n2uq_w2a2`` / ``n2uq_w3a3`` / ``n2uq_w4a4``: N2UQ from the float twin;
* the paper's 2-bit ablation (papers.md §3.6), same recipe and float start: the uniform
  DoReFa-style baseline (frozen equally spaced thresholds, i.e. plain STE, and DoReFa's tanh
  weights), + learned thresholds with G-STE, + the N2UQ weight normalisation, both (= n2uq_w2a2);
* ``s3_3bit`` / ``s3_2bit``: S3 shift-weight ResNet-18s from random initialisation.

Then it deploys each model as ``tflbnn convert`` does (N2UQ: full-integer int8; S3: int8 shift
weights; float: float32), measures the deployed files' accuracy with the TFLite interpreter on
all 10,000 test images, their size and latency, prints the table and writes it, JSON and plots
to benchmarks/results/.

Targets (issue "Low-bit methods"): N2UQ 2-bit within 1.5 points of float, 4-bit within 0.5;
S3 3-bit within 0.5 of float; in the ablation the full method beats the uniform baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from importlib import resources
from pathlib import Path

import tflbnn  # noqa: F401  (selects Keras 2 first)
from tflbnn.experiment import RunConfig, RunResult, load_config, run_experiment

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "lowbit_fashion_mnist"


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained model of the benchmark.

    Attributes:
        name: run name (directory under the output folder).
        method: ``"float"``, ``"n2uq"`` or ``"s3"``: how it is deployed.
        label: row label in the table.
        config: the run's config.
    """

    name: str
    method: str
    label: str
    config: RunConfig


def _packaged_config(file_name: str, output_dir: Path, name: str) -> RunConfig:
    with resources.as_file(resources.files("tflbnn") / "configs" / file_name) as path:
        return load_config(path, output_dir=str(output_dir), name=name)


def _variant(config: RunConfig, name: str, model: dict | None = None,
             recipe: dict | None = None) -> RunConfig:
    return dataclasses.replace(config, name=name,
                               model_options={**config.model_options, **(model or {})},
                               recipe={**config.recipe, **(recipe or {})})


def plan_runs(output_dir: Path) -> list[Run]:
    """The benchmark's runs in training order (most important first, so a cut run says most).

    Args:
        output_dir: parent of the benchmark's run directories.

    Returns:
        The runs; the N2UQ ones start from the ``float`` run's model.
    """
    output_dir = output_dir / NAME
    n2uq = _packaged_config("fashion_mnist_n2uq.toml", output_dir, "n2uq")
    s3 = _packaged_config("fashion_mnist_s3.toml", output_dir, "s3")
    float_run = _variant(n2uq, "float", recipe={
        "kind": "float", "epochs": n2uq.recipe["teacher_epochs"],
        "learning_rate": n2uq.recipe["teacher_learning_rate"]})
    float_model = str(float_run.run_dir / "model.keras")

    def quantized(name: str, bits: int, **switches) -> RunConfig:
        return _variant(n2uq, name, model={"bits": bits, **switches},
                        recipe={"teacher": float_model})

    return [
        Run("float", "float", "float (N2UQ float twin)", float_run),
        Run("n2uq_w2a2", "n2uq", "N2UQ W2/A2", quantized("n2uq_w2a2", 2)),
        Run("s3_3bit", "s3", "S3 3-bit weights", _variant(s3, "s3_3bit", model={"bits": 3})),
        Run("n2uq_w4a4", "n2uq", "N2UQ W4/A4", quantized("n2uq_w4a4", 4)),
        Run("ablation_uniform", "n2uq", "ablation W2/A2: uniform DoReFa-style baseline",
            quantized("ablation_uniform", 2, thresholds="uniform", weight_quantizer="dorefa")),
        Run("n2uq_w3a3", "n2uq", "N2UQ W3/A3", quantized("n2uq_w3a3", 3)),
        Run("s3_2bit", "s3", "S3 2-bit (ternary) weights",
            _variant(s3, "s3_2bit", model={"bits": 2})),
        Run("ablation_thresholds", "n2uq", "ablation W2/A2: + learned thresholds (G-STE)",
            quantized("ablation_thresholds", 2, thresholds="learned", weight_quantizer="dorefa")),
        Run("ablation_weights", "n2uq", "ablation W2/A2: + weight normalisation",
            quantized("ablation_weights", 2, thresholds="uniform", weight_quantizer="n2uq")),
    ]


def train_all(runs: list[Run], only: set[str] | None = None) -> dict[str, RunResult]:
    """Train (or reuse) every run, in order.

    Args:
        runs: from ``plan_runs``.
        only: names of the runs to train (``None``: all); the float run is always included
            because the N2UQ runs start from it.

    Returns:
        Run name → ``RunResult``.
    """
    results = {}
    for run in runs:
        if only is not None and run.name not in only and run.name != "float":
            continue
        print(f"=== {run.name}: {run.label}", flush=True)
        results[run.name] = run_experiment(run.config, verbose=2)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs"),
                        help="parent of the benchmark's run directory")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the runs, then stop")
    parser.add_argument("--only", nargs="+", metavar="RUN",
                        help="train only these runs (and the float run they start from)")
    args = parser.parse_args(argv)
    runs = plan_runs(args.output_dir)
    unknown = sorted(set(args.only or ()) - {run.name for run in runs})
    if unknown:
        parser.error(f"unknown run(s) {unknown}; valid: {[run.name for run in runs]}")
    results = train_all(runs, set(args.only) if args.only else None)
    for name, result in results.items():
        print(f"{name}: Keras test accuracy {100 * result.test_accuracy:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
