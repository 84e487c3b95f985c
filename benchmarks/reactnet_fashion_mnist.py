"""Float vs binary ReActNet on the full Fashion-MNIST test set: accuracy, coverage, size, latency.

    make benchmark            # installs the full data set, then runs this script
    .venv/bin/python benchmarks/reactnet_fashion_mnist.py [--output-dir runs]

Trains (or reuses / resumes) the run described by tflbnn/configs/fashion_mnist_reactnet.toml:
the float twin of ReActNet-A (width 0.25) as teacher, then the two-step binary student, on the
60k training images. Then converts the binary model to an LCE .tflite, checks coverage and
parity on all 10k test images, benchmarks LCE (indirect BGEMM) against the float32 twin with
XNNPACK, prints the table below and writes it to benchmarks/results/.

Targets (issue "tflbnn end to end with ReActNet"): binary within 2 points of its float twin,
100% of binary MACs in LceBconv2d, LCE file <= 1/15 of the float32 file.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources

import tflbnn  # noqa: F401  (selects Keras 2 first)
from tflbnn.deploy import deploy_run
from tflbnn.experiment import load_config, run_experiment

from results_files import RESULTS, write_results



def table(metrics: dict) -> tuple[str, bool]:
    accuracy = metrics["accuracy"]
    coverage = metrics["conversion"]["coverage"]
    size = metrics["conversion"]["size"]
    latency = metrics["latency"]
    gap = 100 * (accuracy["float_twin"] - accuracy["binary_lce"])
    share = coverage["converted_mac_share"]
    size_fraction = size["lce_bytes"] / size["float_bytes"]
    rows = [
        ("float twin accuracy (Keras)", f"{100 * accuracy['float_twin']:.2f}%", "", None),
        ("binary accuracy (LCE interpreter)", f"{100 * accuracy['binary_lce']:.2f}%",
         f"Keras {100 * accuracy['binary_keras']:.2f}%", None),
        ("accuracy gap float - binary", f"{gap:.2f} points", "target <= 2", gap <= 2.0),
        ("binary MACs in LceBconv2d", f"{100 * share:.1f}%",
         f"{coverage['num_converted']}/{coverage['num_binary_layers']} layers, target 100%",
         share == 1.0),
        ("size LCE / float32 .tflite", f"1/{1 / size_fraction:.1f}",
         f"{size['lce_bytes']:,} B vs {size['float_bytes']:,} B, target <= 1/15",
         size_fraction <= 1 / 15),
        ("latency LCE, median / p90", f"{latency['lce']['median_ms']:.3f} / "
         f"{latency['lce']['p90_ms']:.3f} ms", latency["lce"]["kernel"], None),
        ("latency float32 XNNPACK, median / p90", f"{latency['float32']['median_ms']:.3f} / "
         f"{latency['float32']['p90_ms']:.3f} ms", latency["float32"]["kernel"], None),
        ("LCE speed-up over float32", f"{latency['speedup']:.2f}x",
         f"{latency['lce']['num_threads']} thread, {latency['lce']['runs']} runs", None),
    ]
    lines = ["| measure | value | notes | target met |", "|---|---|---|---|"]
    for name, value, note, met in rows:
        lines.append(f"| {name} | {value} | {note} | {'' if met is None else ('yes' if met else 'NO')} |")
    all_met = all(met for *_, met in rows if met is not None)
    return "\n".join(lines), all_met


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs", help="parent of the run directory")
    parser.add_argument("--bench-runs", type=int, default=200)
    args = parser.parse_args(argv)

    config_file = resources.files("tflbnn") / "configs" / "fashion_mnist_reactnet.toml"
    with resources.as_file(config_file) as path:
        config = load_config(path, output_dir=args.output_dir)
    result = run_experiment(config, verbose=2)
    metrics = deploy_run(result, bench_runs=args.bench_runs)
    text, all_met = table(metrics)
    header = (f"ReActNet-A (width {config.model_options.get('width')}) on Fashion-MNIST, "
              f"{metrics['test_images']} test images, model options {config.model_options}")
    write_results("reactnet_fashion_mnist", "benchmark", header, text, metrics)
    for plot in ("training_curves.png", "comparison.png"):
        shutil.copyfile(config.run_dir / plot, RESULTS / f"reactnet_fashion_mnist_{plot}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
