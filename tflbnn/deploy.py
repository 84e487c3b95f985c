"""After training: convert, verify, benchmark and report a run (``tflbnn demo``, benchmarks).

``deploy_run`` takes a finished ``tflbnn.experiment.RunResult`` and writes, next to its
``model.keras``: ``model.tflite`` (LCE), ``model.float.tflite`` (float32 twin), ``model.json``
(labels, preprocessing, training and conversion facts), ``labels.txt``, ``metrics.json``,
``comparison.png`` and ``report.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tflbnn import _backend  # noqa: F401

import numpy as np

from tflbnn import converters
from tflbnn.experiment import RunResult
from tflbnn.metadata import write_bytes_atomic
from tflbnn.training.history import save_figure

__all__ = ["deploy_run", "write_report", "plot_comparison"]


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def deploy_run(result: RunResult, *, parity_limit: int | None = None, bench_runs: int = 50,
               num_threads: int = 1, kernel: str = "indirect") -> dict[str, Any]:
    """Convert the run's final model, verify it on the test set and benchmark it.

    Args:
        result: a finished run.
        parity_limit: test images used for parity and LCE accuracy (``None`` = all).
        bench_runs: timed inferences per model for the latency benchmark.
        num_threads: interpreter threads for the benchmark.
        kernel: LCE bconv kernel for the benchmark (see ``converters.KERNELS``); parity uses
            the indirect kernel.

    Returns:
        The metrics dict also written to ``metrics.json``.

    Raises:
        CoverageError / ParityError: if the conversion is incomplete or disagrees with Keras
            (nothing is written then).
    """
    run_dir = result.model_path.parent
    images, labels = result.data.test_arrays(parity_limit)
    data_name = result.config.data.get("kind", "data")
    report = converters.convert_model(
        result.model, run_dir / "model.tflite", metadata=result.metadata,
        parity_images=images,
        parity_note=f"{len(images)} test images of {data_name} ({result.config.data})",
    )
    comparison = converters.compare(report.output, report.float_output, num_runs=bench_runs,
                                    num_threads=num_threads, **converters.kernel_flags(kernel))
    write_bytes_atomic(run_dir / "labels.txt", ("\n".join(result.metadata.labels) + "\n").encode())

    stages = result.stages
    metrics = {
        "model": result.config.model,
        "model_options": result.config.model_options,
        "data": result.config.data,
        "test_images": int(len(images)),
        "accuracy": {
            "float_twin": stages.get("teacher", {}).get("test_accuracy"),
            "step1_binary_activations": stages.get("step1", {}).get("test_accuracy"),
            "binary_keras": _accuracy(report.parity.keras_predictions, labels),
            "binary_lce": _accuracy(report.parity.lce_predictions, labels),
        },
        "stages": stages,
        "profile": result.metadata.extra.get("profile"),
        "conversion": report.as_dict(),
        "latency": comparison.as_dict(),
        "files": {
            "keras": result.model_path.name,
            "tflite": Path(report.output).name,
            "float_tflite": Path(report.float_output).name,
            "metadata": Path(report.metadata_output).name,
        },
    }
    write_bytes_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    plot_comparison(metrics, run_dir / "comparison.png")
    write_report(metrics, run_dir / "report.md")
    return metrics


def plot_comparison(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bar charts of accuracy, file size and latency: float twin vs binary LCE model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = metrics["accuracy"]
    size = metrics["conversion"]["size"]
    latency = metrics["latency"]
    panels = [
        ("top-1 accuracy (%)", [100 * (accuracy["float_twin"] or float("nan")),
                                100 * accuracy["binary_lce"]]),
        ("file size (KiB)", [size["float_bytes"] / 1024, size["lce_bytes"] / 1024]),
        ("latency, median (ms)", [latency["float32"]["median_ms"], latency["lce"]["median_ms"]]),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for axis, (title, values) in zip(axes, panels):
        bars = axis.bar(["float32 twin", "binary (LCE)"], values, color=["#888888", "#2a6fbb"])
        axis.bar_label(bars, fmt="%.4g")
        axis.set_title(title)
    figure.suptitle(f"{metrics['model']} on {metrics['data'].get('kind')}: "
                    f"{metrics['test_images']} test images")
    figure.tight_layout()
    return save_figure(figure, path)


def write_report(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """A short markdown report of a deployed run."""
    accuracy = metrics["accuracy"]
    conversion = metrics["conversion"]
    coverage = conversion["coverage"]
    parity = conversion["parity"] or {}
    size = conversion["size"]
    latency = metrics["latency"]

    def percent(value):
        return "n/a" if value is None else f"{100 * value:.2f}%"

    lines = [
        f"# {metrics['model']} on {metrics['data'].get('kind')}",
        "",
        f"Options: `{metrics['model_options']}`; data: `{metrics['data']}`.",
        "",
        "| stage | test accuracy | epochs | seconds |",
        "|---|---|---|---|",
    ]
    for stage, summary in metrics["stages"].items():
        lines.append(f"| {stage} | {percent(summary['test_accuracy'])} | {summary['epochs']} | "
                     f"{summary['seconds']:.0f} |")
    lines += [
        "",
        "| | float32 twin | binary (LCE) |",
        "|---|---|---|",
        f"| accuracy ({metrics['test_images']} test images) | {percent(accuracy['float_twin'])} | "
        f"{percent(accuracy['binary_lce'])} (Keras {percent(accuracy['binary_keras'])}) |",
        f"| `.tflite` size | {size['float_bytes']:,} B | {size['lce_bytes']:,} B "
        f"({size['ratio']:.1f}x smaller) |",
        f"| latency median / p90, {latency['lce']['num_threads']} thread | "
        f"{latency['float32']['median_ms']:.3f} / {latency['float32']['p90_ms']:.3f} ms "
        f"({latency['float32']['kernel']}) | {latency['lce']['median_ms']:.3f} / "
        f"{latency['lce']['p90_ms']:.3f} ms ({latency['lce']['kernel']}) |",
        "",
        f"Coverage: {coverage['num_converted']} of {coverage['num_binary_layers']} binary "
        f"convolutions became `LceBconv2d` ({percent(coverage['converted_mac_share'])} of binary "
        f"MACs).",
        f"Parity (LCE interpreter vs Keras): top-1 agreement {percent(parity.get('top1_agreement'))},"
        f" max |Δlogit| {parity.get('max_abs_delta', float('nan')):.3g}.",
        "",
        "Files: " + ", ".join(f"`{name}`" for name in metrics["files"].values()) +
        ", `labels.txt`, `metrics.json`, `training_curves.png`, `comparison.png`.",
        "",
        "![training curves](training_curves.png)",
        "",
        "![float vs binary](comparison.png)",
        "",
    ]
    return write_bytes_atomic(path, "\n".join(lines).encode())
