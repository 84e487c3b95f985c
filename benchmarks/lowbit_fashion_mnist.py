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
import numpy as np

from tflbnn import converters
from tflbnn.experiment import RunConfig, RunResult, load_config, run_experiment
from tflbnn.metadata import write_bytes_atomic
from tflbnn.training.history import plot_validation_accuracy, save_figure

from results_files import RESULTS, write_results

NAME = "lowbit_fashion_mnist"

#: Test images for the conversion's parity check (and N2UQ's int8 calibration).
PARITY_IMAGES = 1000
#: Random training images that calibrate the N2UQ int8 conversions (not the parity images).
CALIBRATION_IMAGES = 500
#: The benchmark measures and reports the N2UQ int8 agreement (its target, 99%, is a row of
#: the targets table) rather than stopping at the conversion's own parity threshold.
BENCH_MIN_AGREEMENT = 0.0


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained model of the benchmark.

    Attributes:
        name: run name (directory under the output folder).
        method: ``"float"``, ``"n2uq"`` or ``"s3"``: how it is deployed; ``"ablation"``: an
            ablation model, measured in Keras only (the DoReFa weight baseline has no int8 path).
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
        Run("ablation_uniform", "ablation", "ablation W2/A2: uniform DoReFa-style baseline",
            quantized("ablation_uniform", 2, thresholds="uniform", weight_quantizer="dorefa")),
        Run("n2uq_w3a3", "n2uq", "N2UQ W3/A3", quantized("n2uq_w3a3", 3)),
        Run("s3_2bit", "s3", "S3 2-bit (ternary) weights",
            _variant(s3, "s3_2bit", model={"bits": 2})),
        Run("ablation_thresholds", "ablation", "ablation W2/A2: + learned thresholds (G-STE)",
            quantized("ablation_thresholds", 2, thresholds="learned", weight_quantizer="dorefa")),
        Run("ablation_weights", "ablation", "ablation W2/A2: + weight normalisation",
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


def deploy(run: Run, result: RunResult, images: np.ndarray, labels: np.ndarray, *,
           calibration: np.ndarray, out_dir: Path, bench_runs: int) -> dict:
    """Convert one trained model as ``tflbnn convert`` does, then measure the deployed file.

    Float models become a float32 ``.tflite``; N2UQ and S3 models go through
    ``converters.convert_model`` (full-integer int8, or int8 shift weights) with its checks.

    Args:
        run: the run.
        result: its training result.
        images: all preprocessed test images.
        labels: their labels.
        calibration: training images that calibrate the N2UQ int8 conversion.
        out_dir: where the ``.tflite`` files go.
        bench_runs: timed single-image inferences.

    Returns:
        The run's row: accuracies (Keras, deployed), size, ideal bits, latency, checks.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run.name}.tflite"
    row = {"run": run.name, "label": run.label, "method": run.method,
           "model_options": result.config.model_options,
           "keras_accuracy": result.test_accuracy,
           "profile": result.metadata.extra.get("profile")}
    if run.method == "ablation":
        print(f"{run.name}: Keras accuracy {100 * row['keras_accuracy']:.2f}% (not deployed)")
        return row
    if run.method == "float":
        flatbuffer = converters.convert_float(result.model)
        write_bytes_atomic(path, flatbuffer)
        row["conversion"] = {"kind": "float32"}
    else:
        report = converters.convert_model(
            result.model, path, metadata=result.metadata,
            parity_images=images[:PARITY_IMAGES],
            parity_note=f"first {PARITY_IMAGES} Fashion-MNIST test images",
            representative_images=calibration if run.method == "n2uq" else None,
            min_top1_agreement=BENCH_MIN_AGREEMENT if run.method == "n2uq" else None,
            max_logit_delta=np.inf if run.method == "n2uq" else None)
        flatbuffer = path.read_bytes()
        row["conversion"] = report.as_dict()
    outputs = converters.run_tflite(flatbuffer, images)
    predictions = np.argmax(outputs, axis=-1)
    row["deployed_accuracy"] = float(np.mean(predictions == labels))
    keras_predictions = np.argmax(result.model.predict(images, batch_size=256, verbose=0), -1)
    row["top1_agreement"] = float(np.mean(predictions == keras_predictions))
    row["tflite_bytes"] = len(flatbuffer)
    latency = converters.benchmark_tflite(path, num_runs=bench_runs, num_threads=1)
    row["latency"] = latency.as_dict()
    print(f"{run.name}: deployed accuracy {100 * row['deployed_accuracy']:.2f}% "
          f"(Keras {100 * row['keras_accuracy']:.2f}%), {len(flatbuffer):,} B, "
          f"median {latency.median_ms:.3f} ms", flush=True)
    return row


def _agreement(row: dict) -> str:
    return f"{100 * row['top1_agreement']:.2f}%" if "top1_agreement" in row else ""


def ideal_bytes(row: dict) -> float:
    """The deployed model's size at its ideal bit widths, in bytes.

    S3: the converter's count (int8 shift weights at their bits, everything else float32);
    otherwise the profiler's (low-bit weights at their bits, the rest float32).
    """
    weight_size = (row.get("conversion") or {}).get("weight_size")
    if weight_size:
        return float(weight_size["ideal_bytes"])
    return float(row["profile"]["size_bytes"])


#: Row order of the table: float, N2UQ by bits, S3 by bits (3 first), the ablation.
_DISPLAY_METHODS = ("float", "n2uq", "s3", "ablation")


def _display_key(row: dict) -> tuple[int, int]:
    bits = row["model_options"].get("bits", 0)
    return _DISPLAY_METHODS.index(row["method"]), -bits if row["method"] == "s3" else bits


def table(rows: list[dict]) -> tuple[str, dict[str, bool]]:
    """The README table and whether each target is met.

    Args:
        rows: ``deploy`` rows; one has ``run == "float"``.

    Returns:
        ``(markdown, {target: met})``.
    """
    by_run = {row["run"]: row for row in rows}
    # Deployed models by method and bits first, the Keras-only ablation last.
    rows = sorted(rows, key=_display_key)
    float_accuracy = by_run["float"]["deployed_accuracy"]
    lines = ["| model | Keras top-1 | deployed top-1 | gap to float | top-1 agreement with Keras | "
             ".tflite | ideal size | latency median / p90 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "deployed_accuracy" not in row:  # ablation: Keras only
            gap = 100 * (float_accuracy - row["keras_accuracy"])
            lines.append(f"| {row['label']} | {100 * row['keras_accuracy']:.2f}% | (Keras only) "
                         f"| {gap:.2f} | | | {ideal_bytes(row) / 1024:.1f} KiB | |")
            continue
        gap = 100 * (float_accuracy - row["deployed_accuracy"])
        kind = (row.get("conversion") or {}).get("kind", "")
        latency = row["latency"]
        lines.append(
            f"| {row['label']} | {100 * row['keras_accuracy']:.2f}% | "
            f"{100 * row['deployed_accuracy']:.2f}% ({kind}) | "
            f"{'' if row['run'] == 'float' else f'{gap:.2f}'} | {_agreement(row)} | "
            f"{row['tflite_bytes']:,} B | {ideal_bytes(row) / 1024:.1f} KiB | "
            f"{latency['median_ms']:.3f} / {latency['p90_ms']:.3f} ms |")

    def gap(name: str) -> float | None:
        row = by_run.get(name)
        return None if row is None else 100 * (float_accuracy - row["deployed_accuracy"])

    targets = {}
    for name, limit in (("n2uq_w2a2", 1.5), ("n2uq_w4a4", 0.5), ("s3_3bit", 0.5)):
        if gap(name) is not None:
            targets[f"{name} within {limit} points of float"] = gap(name) <= limit
    if "ablation_uniform" in by_run and "n2uq_w2a2" in by_run:
        # Both in Keras: the ablation compares training methods, not deployments.
        targets["full N2UQ W2/A2 beats the uniform baseline (Keras)"] = (
            by_run["n2uq_w2a2"]["keras_accuracy"] > by_run["ablation_uniform"]["keras_accuracy"])
    for row in rows:
        if row["method"] == "n2uq" and "top1_agreement" in row:
            targets[f"{row['run']} int8 top-1 agreement >= 99%"] = row["top1_agreement"] >= 0.99
    lines += ["", "| target | met |", "|---|---|"]
    lines += [f"| {name} | {'yes' if met else 'NO'} |" for name, met in targets.items()]
    return "\n".join(lines), targets


def plot_accuracy_vs_size(rows: list[dict], path: Path) -> Path:
    """Deployed accuracy against ideal model size, one labelled point per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        size = ideal_bytes(row) / 1024
        accuracy = 100 * row.get("deployed_accuracy", row["keras_accuracy"])
        axis.scatter(size, accuracy, marker="o" if "deployed_accuracy" in row else "x")
        axis.annotate(row["run"], (size, accuracy), fontsize=8, xytext=(4, 2),
                      textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("ideal model size (KiB, log scale)")
    axis.set_ylabel("top-1 on 10k test images (%): deployed o, Keras x")
    axis.set_title("Fashion-MNIST, ResNet-18 width 0.25: float vs N2UQ vs S3")
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs"),
                        help="parent of the benchmark's run directory")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the runs, then stop")
    parser.add_argument("--only", nargs="+", metavar="RUN",
                        help="only these runs (and the float run they start from)")
    parser.add_argument("--bench-runs", type=int, default=200,
                        help="timed single-image inferences per model")
    args = parser.parse_args(argv)
    runs = plan_runs(args.output_dir)
    unknown = sorted(set(args.only or ()) - {run.name for run in runs})
    if unknown:
        parser.error(f"unknown run(s) {unknown}; valid: {[run.name for run in runs]}")
    results = train_all(runs, set(args.only) if args.only else None)
    for name, result in results.items():
        print(f"{name}: Keras test accuracy {100 * result.test_accuracy:.2f}%")
    if args.train_only:
        return 0

    images, labels = results["float"].data.test_arrays()
    calibration_batch = results["float"].data.train_dataset(CALIBRATION_IMAGES, augment=None,
                                                            seed=0)
    calibration = next(iter(calibration_batch))[0].numpy()
    out_dir = args.output_dir / NAME / "tflite"
    rows = [deploy(run, results[run.name], images, labels, calibration=calibration,
                   out_dir=out_dir, bench_runs=args.bench_runs)
            for run in runs if run.name in results]
    text, targets = table(rows)
    header = (f"Small ResNet-18s (width 0.25, small stem) on Fashion-MNIST: {len(images)} test "
              "images; deployed = the .tflite in the TFLite interpreter (1 thread, XNNPACK "
              "default delegates); agreement = same top-1 class as Keras on all of them")
    write_results(NAME, "benchmark-lowbit", header, text, {"rows": rows, "targets": targets})
    plot_accuracy_vs_size(rows, RESULTS / f"{NAME}_accuracy_vs_size.png")
    histories = {name: result.final_history() for name, result in results.items()}
    plot_validation_accuracy(histories, RESULTS / f"{NAME}_training_curves.png",
                             xlabel="epoch of the run's last stage",
                             ylabel="Keras top-1 on 10k test images (%)")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
