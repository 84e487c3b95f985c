"""Binary architectures and BNN recipes on the full Fashion-MNIST test set, deployed with LCE.

    make benchmark-bnn           # installs the full data set, then runs this script
    .venv/bin/python benchmarks/bnn_fashion_mnist.py [--output-dir runs] [--train-only]
                                                     [--only RUN ...]

Trains (or reuses / resumes, run by run) on the first ``TRAIN_IMAGES`` of the 60k training
images (stratified), for ``STAGE_EPOCHS`` epochs per training stage (``MOBILENET_EPOCHS`` for
the MobileNets, ``SUPERNET_EPOCHS`` per supernet step), small-input versions (28×28×1, width
0.25) of:

* ReActNet-A with four recipes, from tflbnn/configs/fashion_mnist_reactnet*.toml: Adam two-step
  (``reactnet_adam``, whose float twin is every other run's distillation teacher), AdamBNN
  (``reactnet_adambnn``), Bop for the binary kernels (``reactnet_bop``) and BN-free training
  (``reactnet_bn_free``) at the BN runs' learning rate;
* Bi-Real-18 (``bireal18``) and BiMLP-S (``bimlp_s``), fully binary from scratch, distilled from
  the ReActNet float twin;
* the binary MobileNet whose per-block groups were searched (``mobilenet_searched``: one-shot
  supernet, evolutionary search under an OPs budget, the winner retrained from scratch) and
  random group configurations at the same budget (``mobilenet_random_<k>``), same recipe.

The budget is sized so that the whole benchmark (training, search, then deployment) runs in
one sitting on two CPU cores, about two hours from nothing: the run logged in
benchmarks/logs/bnn_fashion_mnist.log took 83 minutes with the ReActNet, Bi-Real and BiMLP
runs reused from an earlier run, whose training stages had taken 34 minutes. The models are
compared with each other at equal, short training, not with the papers' accuracies.

Then each model is converted with ``tflbnn.converters.convert_model`` (coverage and parity
checks), its LCE accuracy is measured on all 10,000 test images, its latency with the LCE
interpreter (indirect BGEMM, 1 thread), and the table is printed and written to
benchmarks/results/ with JSON and plots.

Targets (issue "BiMLP, Bi-Real Net, binary MobileNet with searched groups, and the BNN
optimisation recipes"): the searched MobileNet beats the median random configuration at equal
OPs; BN-free within 2 points of the BN version; every model converts with 100% of its
LCE-eligible binary MACs in ``LceBconv2d``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tomllib
from importlib import resources
from pathlib import Path

import tflbnn  # noqa: F401  (selects Keras 2 first)

from tflbnn.commands.search import SearchConfig, run_search
from tflbnn.converters import CoverageError, ParityError
from tflbnn.deploy import deploy_run
from tflbnn.experiment import RunConfig, RunResult, run_experiment
from tflbnn.training.history import plot_validation_accuracy, save_figure

from results_files import RESULTS, write_results

NAME = "bnn_fashion_mnist"

#: Training images every run uses (the first of each class in turn, ``limit_train``); the
#: search holds its scoring images out of these.
TRAIN_IMAGES = 20_000
#: Epochs of every training stage of the ReActNet recipes (float teacher, step 1, binary step)
#: and of the one fully binary stage of Bi-Real-18 and BiMLP-S (distilled from the ReActNet
#: float twin).
STAGE_EPOCHS = 2
#: Epochs of the one fully binary stage of the searched and the random MobileNets. They are
#: cheap (about 30 s an epoch), and at 2 epochs identically trained configurations spread over
#: 7.8 points, more than the differences the search is to find.
MOBILENET_EPOCHS = 10
#: Epochs of each of the supernet's two steps (about 17 s an epoch on the search's split).
SUPERNET_EPOCHS = 8
#: Random group configurations at the search budget that are trained from scratch.
RANDOM_CONFIGS = 7
#: Timed single-image inferences per model.
BENCH_RUNS = 200


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained model of the benchmark.

    Attributes:
        name: run name (directory under the benchmark's output folder).
        label: row label in the table.
        group: ``"recipe"`` (ReActNet-A trained four ways), ``"architecture"`` or
            ``"mobilenet"`` (the searched one and the random configurations).
        config: the run's config.
    """

    name: str
    label: str
    group: str
    config: RunConfig


def _packaged(file_name: str) -> dict:
    with resources.as_file(resources.files("tflbnn") / "configs" / file_name) as path:
        return tomllib.loads(path.read_text(encoding="utf-8"))


#: Recipe keys that count epochs of a stage.
_EPOCH_KEYS = ("teacher_epochs", "step1_epochs", "step2_epochs", "epochs")


def _packaged_config(file_name: str, output_dir: Path, name: str,
                     **recipe_overrides) -> RunConfig:
    """A packaged config as run ``name`` under ``output_dir``, with recipe keys replaced."""
    config = _packaged(file_name)
    config.update(name=name, output_dir=str(output_dir))
    config["data"]["limit_train"] = TRAIN_IMAGES
    config["recipe"].update({key: STAGE_EPOCHS for key in _EPOCH_KEYS
                             if key in config["recipe"]})
    config["recipe"].update(recipe_overrides)
    return RunConfig.from_dict(config, source=f"{file_name} ({name})")


def teacher_path(output_dir: Path) -> Path:
    """The ReActNet-A float twin trained by the ``reactnet_adam`` run: every other teacher."""
    return output_dir / NAME / "reactnet_adam" / "teacher" / "model.keras"


def _scratch_recipe(output_dir: Path, epochs: int) -> dict:
    """One fully binary stage distilled from the ReActNet float twin, ReActNet's other settings."""
    reference = _packaged("fashion_mnist_reactnet.toml")["recipe"]
    return {"kind": "binary", "epochs": epochs, "teacher": str(teacher_path(output_dir)),
            **{key: reference[key] for key in ("batch_size", "learning_rate", "weight_decay",
                                               "lr_offset", "augment", "seed")}}


def _from_scratch(name: str, model: dict, output_dir: Path, epochs: int) -> RunConfig:
    """A fully binary model trained in one stage, distilled from the ReActNet float twin."""
    return RunConfig.from_dict({
        "name": name, "output_dir": str(output_dir / NAME), "model": model,
        "data": {"kind": "fashion_mnist", "source": "full", "limit_train": TRAIN_IMAGES},
        "recipe": _scratch_recipe(output_dir, epochs),
    }, source=f"{NAME} {name}")


def plan_runs(output_dir: Path) -> list[Run]:
    """The runs that need no search, in training order (``reactnet_adam`` first: the teacher).

    Args:
        output_dir: parent of the benchmark's run directory.

    Returns:
        The runs.
    """
    runs_dir = output_dir / NAME
    return [
        Run("reactnet_adam", "ReActNet-A, Adam two-step", "recipe",
            _packaged_config("fashion_mnist_reactnet.toml", runs_dir, "reactnet_adam")),
        Run("reactnet_adambnn", "ReActNet-A, AdamBNN", "recipe",
            _packaged_config("fashion_mnist_reactnet_adambnn.toml", runs_dir,
                             "reactnet_adambnn")),
        Run("reactnet_bop", "ReActNet-A, Bop (step 2)", "recipe",
            _packaged_config("fashion_mnist_reactnet_bop.toml", runs_dir, "reactnet_bop")),
        # The paper trains BN-free and BN ReActNet at the same lr (5e-4 for 256 epochs); the BN
        # runs here use 2e-3, and so does BN-free (at 5e-4 it underfits a short schedule).
        Run("reactnet_bn_free", "ReActNet-A, BN-free", "recipe",
            _packaged_config("fashion_mnist_reactnet_bn_free.toml", runs_dir,
                             "reactnet_bn_free", learning_rate=_packaged(
                                 "fashion_mnist_reactnet.toml")["recipe"]["learning_rate"])),
        Run("bireal18", "Bi-Real-18", "architecture", _from_scratch(
            "bireal18", {"name": "birealnet18", "width": 0.25, "stem": "small"}, output_dir,
            STAGE_EPOCHS)),
        Run("bimlp_s", "BiMLP-S", "architecture", _from_scratch(
            "bimlp_s", {"name": "bimlp_s", "width": 0.25, "stem": "small"}, output_dir,
            STAGE_EPOCHS)),
    ]


def search_config(output_dir: Path) -> SearchConfig:
    """The packaged group-search config at width 0.25, with the benchmark's retrain recipe.

    Width 0.25 keeps training on two cores affordable; eight of its 13 blocks still have a
    choice of groups (11,664 configurations). The budget is 70% of the ungrouped OPs.
    """
    config = _packaged("fashion_mnist_group_search.toml")
    config.update(name="mobilenet_search", output_dir=str(output_dir / NAME),
                  retrain=_scratch_recipe(output_dir, MOBILENET_EPOCHS))
    config["model"]["width"] = 0.25
    config["data"]["limit_train"] = TRAIN_IMAGES
    config["supernet"].update(step1_epochs=SUPERNET_EPOCHS, step2_epochs=SUPERNET_EPOCHS)
    # At width 0.25 grouping can cut OPs only to 53% of the ungrouped layout; a budget of 70%
    # leaves room for both a search and random configurations.
    config["search"]["max_ops_fraction"] = 0.7
    return SearchConfig.from_dict(config, source=f"{NAME} mobilenet_search")


def mobilenet_runs(outcome, output_dir: Path) -> list[Run]:
    """The searched configuration and the first ``RANDOM_CONFIGS`` random ones at its budget.

    Args:
        outcome: ``run_search``'s ``SearchOutcome`` (its winner and its random baseline, drawn
            with OPs between ``baseline_min_fraction`` of the budget and the budget).
        output_dir: parent of the benchmark's run directory.

    Returns:
        The runs, each trained from scratch with the same recipe.
    """
    model = dict(outcome.winner["model"])
    runs = [Run("mobilenet_searched", "binary MobileNet, searched groups", "mobilenet",
                _from_scratch("mobilenet_searched", model, output_dir, MOBILENET_EPOCHS))]
    for index, candidate in enumerate(outcome.baseline[:RANDOM_CONFIGS]):
        name = f"mobilenet_random_{index}"
        runs.append(Run(name, f"binary MobileNet, random groups #{index}", "mobilenet",
                        _from_scratch(name, {**model, "groups": list(candidate.groups)},
                                      output_dir, MOBILENET_EPOCHS)))
    return runs


def train(runs: list[Run]) -> dict[str, RunResult]:
    """Train (or reuse / resume) every run, in order.

    Returns:
        Run name → ``RunResult``.
    """
    results = {}
    for run in runs:
        print(f"=== {run.name}: {run.label}", flush=True)
        results[run.name] = run_experiment(run.config, verbose=2)
    return results


def _eligible_share(coverage: dict) -> float | None:
    """Share of the LCE-eligible binary MACs that run in ``LceBconv2d``."""
    return coverage["eligible_converted_mac_share"]


def deploy(run: Run, result: RunResult, *, bench_runs: int) -> dict:
    """Convert, verify on all test images and benchmark one run (``tflbnn.deploy.deploy_run``).

    A conversion refused by the coverage or parity check is a row with the refusal, so the
    table shows it instead of stopping the benchmark.

    Returns:
        The run's row.
    """
    row = {"run": run.name, "label": run.label, "group": run.group,
           "model": result.config.model, "model_options": result.config.model_options,
           "recipe": result.config.recipe["kind"], "keras_accuracy": result.test_accuracy,
           "profile": result.metadata.extra.get("profile")}
    try:
        metrics = deploy_run(result, bench_runs=bench_runs)
    except (CoverageError, ParityError) as error:
        row["error"] = f"{type(error).__name__}: {error}"
        print(f"{run.name}: conversion refused: {row['error']}", flush=True)
        return row
    coverage = metrics["conversion"]["coverage"]
    row.update(
        lce_accuracy=metrics["accuracy"]["binary_lce"],
        keras_accuracy=metrics["accuracy"]["binary_keras"],
        tflite_bytes=metrics["conversion"]["size"]["lce_bytes"],
        coverage=coverage,
        eligible_share=_eligible_share(coverage),
        latency=metrics["latency"],
        top1_agreement=(metrics["conversion"]["parity"] or {}).get("top1_agreement"),
    )
    print(f"{run.name}: LCE accuracy {100 * row['lce_accuracy']:.2f}% (Keras "
          f"{100 * row['keras_accuracy']:.2f}%), {row['tflite_bytes']:,} B, eligible binary "
          f"MACs in LceBconv2d {100 * row['eligible_share']:.1f}%, median "
          f"{row['latency']['lce']['median_ms']:.3f} ms", flush=True)
    return row


def _ineligible_share(coverage: dict) -> float:
    """Share of the binary MACs in layers LCE cannot run as binary kernels."""
    return coverage["ineligible_mac_share"]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def table(rows: list[dict]) -> tuple[str, dict[str, bool]]:
    """The README table and whether each target is met.

    Args:
        rows: ``deploy`` rows.

    Returns:
        ``(markdown, {target: met})``.
    """
    lines = ["| model | recipe | Keras top-1 | LCE top-1 | OPs | .tflite | eligible binary MACs "
             "in LceBconv2d | binary MACs not LCE-eligible | latency LCE median / p90 | "
             "float32 twin median |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ops = (row.get("profile") or {}).get("ops")
        ops_text = "" if ops is None else f"{ops / 1e6:.2f}×10⁶"
        if "error" in row:
            lines.append(f"| {row['label']} | {row['recipe']} | "
                         f"{_percent(row['keras_accuracy'])} | refused | {ops_text} | | | | "
                         f"{row['error'][:120]} | |")
            continue
        latency = row["latency"]
        lines.append(
            f"| {row['label']} | {row['recipe']} | {_percent(row['keras_accuracy'])} | "
            f"{_percent(row['lce_accuracy'])} | {ops_text} | {row['tflite_bytes']:,} B | "
            f"{100 * row['eligible_share']:.1f}% | "
            f"{100 * _ineligible_share(row['coverage']):.1f}% | "
            f"{latency['lce']['median_ms']:.3f} / {latency['lce']['p90_ms']:.3f} ms | "
            f"{latency['float32']['median_ms']:.3f} ms |")

    by_run = {row["run"]: row for row in rows}
    targets = {}
    searched = by_run.get("mobilenet_searched")
    randoms = [row for row in rows if row["run"].startswith("mobilenet_random_")
               and "lce_accuracy" in row]
    if searched is not None and "lce_accuracy" in searched and randoms:
        median = statistics.median(row["lce_accuracy"] for row in randoms)
        best = max(row["lce_accuracy"] for row in randoms)
        targets[f"searched MobileNet ({_percent(searched['lce_accuracy'])}) beats the median of "
                f"{len(randoms)} random configurations at the budget ({_percent(median)}; best "
                f"{_percent(best)})"] = searched["lce_accuracy"] > median
    bn = by_run.get("reactnet_adam")
    bn_free_rows = [row for row in rows if row["run"].startswith("reactnet_bn_free")]
    for bn_free in bn_free_rows:
        if bn and "lce_accuracy" in bn and "lce_accuracy" in bn_free:
            gap = 100 * (bn["lce_accuracy"] - bn_free["lce_accuracy"])
            targets[f"{bn_free['label']}: within 2 points of the BN version (Adam two-step; "
                    f"gap {gap:.2f})"] = gap <= 2.0
    for row in rows:
        share = row.get("eligible_share")
        targets[f"{row['run']}: 100% of LCE-eligible binary MACs in LceBconv2d"] = (
            "error" not in row and share == 1.0)
    lines += ["", "| target | met |", "|---|---|"]
    lines += [f"| {name} | {'yes' if met else 'NO'} |" for name, met in targets.items()]
    return "\n".join(lines), targets


def plot_accuracy_vs_ops(rows: list[dict], path: Path) -> Path:
    """LCE accuracy against OPs, one labelled point per deployed model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"recipe": "o", "architecture": "s", "mobilenet": "^"}
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    for row in rows:
        ops = (row.get("profile") or {}).get("ops")
        if "lce_accuracy" not in row or ops is None:
            continue
        axis.scatter(ops / 1e6, 100 * row["lce_accuracy"], marker=markers[row["group"]],
                     color="#999999" if "random" in row["run"] else None)
        axis.annotate(row["run"], (ops / 1e6, 100 * row["lce_accuracy"]), fontsize=7,
                      xytext=(4, 2), textcoords="offset points")
    axis.set_xlabel("OPs (×10⁶) = BOPs/64 + FLOPs, 28×28 input")
    axis.set_ylabel("LCE top-1 on 10k test images (%)")
    axis.set_title("Fashion-MNIST: binary architectures, recipes and searched groups")
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs"),
                        help="parent of the benchmark's run directory")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the runs and the search, then stop")
    parser.add_argument("--only", nargs="+", metavar="RUN",
                        help="only these runs (reactnet_adam, the teacher, is always trained "
                             "first); 'search' for the group search and its MobileNets")
    parser.add_argument("--bench-runs", type=int, default=BENCH_RUNS,
                        help="timed single-image inferences per model")
    args = parser.parse_args(argv)
    runs = plan_runs(args.output_dir)
    valid = {run.name for run in runs} | {"search"}
    unknown = sorted(set(args.only or ()) - valid)
    if unknown:
        parser.error(f"unknown run(s) {unknown}; valid: {sorted(valid)}")
    wanted = set(args.only) | {"reactnet_adam"} if args.only else None
    results = train([run for run in runs if wanted is None or run.name in wanted])
    if wanted is None or "search" in wanted:
        outcome = run_search(search_config(args.output_dir), verbose=2, progress=True)
        mobilenets = mobilenet_runs(outcome, args.output_dir)
        runs += mobilenets
        results.update(train(mobilenets))
        shutil.copyfile(outcome.paths["plot"], RESULTS / f"{NAME}_search_pareto.png")
        shutil.copyfile(outcome.paths["pareto"], RESULTS / f"{NAME}_search_pareto.csv")
    for name, result in results.items():
        print(f"{name}: Keras test accuracy {100 * result.test_accuracy:.2f}%")
    if args.train_only:
        return 0

    rows = [deploy(run, results[run.name], bench_runs=args.bench_runs)
            for run in runs if run.name in results]
    text, targets = table(rows)
    test_images = results["reactnet_adam"].data.test_arrays()[0].shape[0]
    header = (f"Small binary networks (28×28×1, width 0.25) on Fashion-MNIST, {test_images} test "
              "images; LCE = the converted .tflite in the LCE interpreter (indirect BGEMM, 1 "
              "thread), parity-checked against Keras on all of them")
    write_results(NAME, "benchmark-bnn", header, text, {"rows": rows, "targets": targets})
    plot_accuracy_vs_ops(rows, RESULTS / f"{NAME}_accuracy_vs_ops.png")
    histories = {name: result.final_history() for name, result in results.items()}
    plot_validation_accuracy(histories, RESULTS / f"{NAME}_training_curves.png",
                             xlabel="epoch of the run's last (fully binary) stage",
                             ylabel="Keras top-1 on 10k test images (%)")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
