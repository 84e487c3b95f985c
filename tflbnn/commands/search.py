"""``tflbnn search CONFIG.toml``: one-shot group search for binary MobileNet, end to end.

The three phases of papers.md §6 (see ``tflbnn.group_search``) from a TOML config::

    name = "fashion_mnist_group_search"   # outputs in <output_dir>/<name>/search/
    output_dir = "runs"

    [model]                  # tflbnn.models.binary_mobilenet options
    width = 0.5
    stem_stride = 1
    # pad_values = 1.0
    # max_groups = 16        # leave larger group counts out of the search space

    [data]                   # a tflbnn.data.load_data spec; the search holds out part of
    kind = "fashion_mnist"   # its *training* set, the test set is never searched on
    source = "full"

    [supernet]               # one-shot training, a random sub-network per step
    batch_size = 128
    learning_rate = 2e-3
    step1_epochs = 4         # binary activations, real weights (0: skip)
    step2_epochs = 4         # fully binary
    weight_decay = 1e-5      # step 1 only, conv kernels
    lr_offset = 1
    augment = "standard"
    seed = 0
    holdout = 5000           # training images held out to score configurations
    calibration_batches = 20 # batch-norm recalibration batches per configuration
    eval_batch_size = 500

    [search]                 # evolutionary search; one budget key:
    max_ops_fraction = 0.8   # max_ops, max_ops_fraction (of the all-1 ReActNet-A layout),
                             # max_latency_ms or max_latency_fraction (LCE, indirect BGEMM)
    population = 16
    generations = 8
    parents = 4
    mutations = 8
    crossovers = 8
    mutation_probability = 0.1
    seed = 0
    random_baseline = 16     # random configurations within the budget, scored the same way
    baseline_min_fraction = 0.9  # ... with cost at least this fraction of the budget
    latency_runs = 30        # latency budgets: timed runs per configuration
    latency_threads = 1

    [retrain]                # --retrain: a tflbnn.experiment recipe for the winner
    kind = "two_step"
    teacher_epochs = 4
    step1_epochs = 4
    step2_epochs = 4

It writes ``<run>/search/``: the supernet stages (``supernet_step1/``, ``supernet_step2/``,
resumable), ``state.json`` (the resumable search), ``budget.json``, ``baseline.json``,
``candidates.csv``, ``pareto.csv``, ``pareto.png`` and ``winner.json``; ``--retrain`` trains the
winner from scratch into ``<run>/retrain/`` like ``tflbnn train``. Running the command again
continues an interrupted run and reuses every finished part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
from pathlib import Path
from typing import Any, Mapping

__all__ = ["add_parser", "run", "SearchConfig", "SearchOutcome", "load_search_config",
           "run_search"]

_MODEL_KEYS = {"width": 1.0, "stem_stride": 2, "pad_values": 1.0, "max_groups": None}

_SUPERNET_DEFAULTS: dict[str, Any] = {
    "batch_size": 128,
    "learning_rate": 2e-3,
    "step1_epochs": 4,
    "step2_epochs": 4,
    "weight_decay": 1e-5,
    "lr_offset": 1,
    "augment": "standard",
    "seed": 0,
    "holdout": 5000,
    "calibration_batches": 20,
    "eval_batch_size": 500,
}

_BUDGET_KEYS = ("max_ops", "max_ops_fraction", "max_latency_ms", "max_latency_fraction")

_SEARCH_DEFAULTS: dict[str, Any] = {
    **{key: None for key in _BUDGET_KEYS},
    "population": 16,
    "generations": 8,
    "parents": 4,
    "mutations": 8,
    "crossovers": 8,
    "mutation_probability": 0.1,
    "seed": 0,
    "max_tries": 1000,
    "random_baseline": 16,
    "baseline_min_fraction": 0.9,
    "latency_runs": 30,
    "latency_threads": 1,
}

_EVOLUTION_KEYS = ("population", "generations", "parents", "mutations", "crossovers",
                   "mutation_probability", "seed", "max_tries")


def _with_defaults(given: Any, defaults: Mapping[str, Any], section: str,
                   source: str) -> dict[str, Any]:
    from tflbnn import config_fields as fields

    given = fields.table(given, f"{source}: [{section}]")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{source}: unknown [{section}] key(s) {unknown}; valid: "
                         f"{sorted(defaults)}")
    return {**defaults, **given}


def _field_checks() -> dict[str, dict]:
    """The type and range of every key of the ``[model]``, ``[supernet]`` and ``[search]``."""
    from tflbnn import config_fields as fields
    from tflbnn.data import AUGMENTATIONS

    positive_integer = fields.integer(1)
    return {
        "model": {"width": fields.number(above=0), "stem_stride": fields.one_of((1, 2)),
                  "pad_values": fields.number(), "max_groups": fields.optional(positive_integer)},
        "supernet": {
            "batch_size": positive_integer, "learning_rate": fields.number(above=0),
            "step1_epochs": fields.integer(0), "step2_epochs": positive_integer,
            "weight_decay": fields.number(at_least=0), "lr_offset": fields.one_of((0, 1)),
            "augment": fields.one_of(AUGMENTATIONS), "seed": fields.integer(0),
            "holdout": positive_integer, "calibration_batches": positive_integer,
            "eval_batch_size": positive_integer,
        },
        "search": {
            **{key: fields.optional(fields.number(above=0)) for key in _BUDGET_KEYS},
            "population": positive_integer, "generations": positive_integer,
            "parents": positive_integer, "mutations": fields.integer(0),
            "crossovers": fields.integer(0), "mutation_probability": fields.number(above=0,
                                                                                   at_most=1),
            "seed": fields.integer(0), "max_tries": positive_integer,
            "random_baseline": fields.integer(0),
            "baseline_min_fraction": fields.number(at_least=0, at_most=1),
            "latency_runs": positive_integer, "latency_threads": positive_integer,
        },
    }


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """A validated ``tflbnn search`` configuration (module docstring: the file format).

    Attributes:
        name: run name, the directory under ``output_dir``.
        output_dir: parent directory of runs.
        model_options: ``binary_mobilenet`` options (width, stem_stride, pad_values,
            max_groups).
        data: a ``tflbnn.data.load_data`` spec.
        supernet: supernet-training settings, defaults filled in.
        search: search settings, defaults filled in.
        retrain: a ``tflbnn.experiment`` recipe for ``--retrain``.
        source: where the config came from (its file), named in errors; not a setting.
    """

    name: str
    output_dir: Path
    model_options: dict
    data: dict
    supernet: dict
    search: dict
    retrain: dict
    source: str = dataclasses.field(default="config", compare=False)

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name

    @property
    def search_dir(self) -> Path:
        return self.run_dir / "search"

    @property
    def subnet_options(self) -> dict:
        """The ``binary_mobilenet`` options of a sub-network (all but ``max_groups``)."""
        return {key: value for key, value in self.model_options.items() if key != "max_groups"}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "output_dir": str(self.output_dir),
                "model": self.model_options, "data": self.data, "supernet": self.supernet,
                "search": self.search, "retrain": self.retrain}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str = "config") -> "SearchConfig":
        """Validate a config mapping.

        Raises:
            ValueError: naming ``source`` and the offending key for anything invalid.
        """
        from tflbnn import config_fields as fields
        from tflbnn.experiment import RunConfig, check_top_level
        from tflbnn.group_search import EvolutionSettings

        name = check_top_level(
            config, known=("name", "output_dir", "model", "data", "supernet", "search", "retrain"),
            required=("name", "data", "search"), source=source)
        checks = _field_checks()
        model = fields.table(config.get("model", {}), f"{source}: [model]")
        if model.pop("name", "binary_mobilenet") != "binary_mobilenet":
            raise ValueError(f"{source}: the group search works on binary_mobilenet; leave "
                             "[model] name out or set it to \"binary_mobilenet\"")
        model = _with_defaults(model, _MODEL_KEYS, "model", source)
        data = fields.table(config["data"], f"{source}: [data]")
        supernet = _with_defaults(config.get("supernet", {}), _SUPERNET_DEFAULTS, "supernet",
                                  source)
        search = _with_defaults(config["search"], _SEARCH_DEFAULTS, "search", source)
        retrain = fields.table(config.get("retrain", {}), f"{source}: [retrain]")
        for section, values in (("model", model), ("supernet", supernet), ("search", search)):
            fields.check_fields(values, checks[section], f"{source}: [{section}]")
        budgets = [key for key in _BUDGET_KEYS if search[key] is not None]
        if len(budgets) != 1:
            raise ValueError(f"{source}: [search] needs exactly one budget among "
                             f"{list(_BUDGET_KEYS)}, got {budgets or 'none'}")
        try:
            EvolutionSettings(**{key: search[key] for key in _EVOLUTION_KEYS})
        except ValueError as error:
            raise ValueError(f"{source}: [search] {error}") from None
        # The experiment's own validation, so a bad recipe fails before hours of search.
        RunConfig.from_dict({"name": "retrain", "model": {"name": "binary_mobilenet"},
                             "data": data, "recipe": retrain}, source=f"{source} [retrain]")
        return cls(name=name, output_dir=Path(config.get("output_dir", "runs")),
                   model_options=model, data=data, supernet=supernet, search=search,
                   retrain=retrain, source=source)


def load_search_config(path: str | os.PathLike, **overrides: Any) -> SearchConfig:
    """Read a ``tflbnn search`` TOML config.

    Args:
        path: the TOML file.
        **overrides: top-level keys replacing the file's (``output_dir``, ``name``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not valid TOML or not a valid config (the message names the file).
    """
    from tflbnn.experiment import read_toml_config

    return SearchConfig.from_dict(read_toml_config(path, **overrides), source=str(path))


@dataclasses.dataclass
class SearchOutcome:
    """What ``run_search`` produced.

    Attributes:
        config: the run's config.
        result: the evolutionary search's ``SearchResult``.
        baseline: the scored random configurations within the budget.
        winner: the ``winner.json`` record.
        paths: output name → path (``candidates``, ``pareto``, ``plot``, ``winner``).
        retrain: the ``tflbnn.experiment.RunResult`` of ``--retrain``, else ``None``.
    """

    config: SearchConfig
    result: Any
    baseline: list
    winner: dict
    paths: dict[str, Path]
    retrain: Any = None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data: Any) -> Path:
    from tflbnn.metadata import write_bytes_atomic

    return write_bytes_atomic(path, json.dumps(data, indent=2).encode())


def _train_supernet(config: SearchConfig, build, train_data, holdout_data, verbose):
    from tflbnn.group_search import RandomGroupSampling
    from tflbnn.training import train_stage, transfer_weights

    settings = config.supernet
    common = dict(learning_rate=settings["learning_rate"], lr_offset=settings["lr_offset"],
                  verbose=verbose)
    step1 = None
    if settings["step1_epochs"] > 0:
        step1 = train_stage(
            build("binary_activations"), train_data, holdout_data,
            stage_dir=config.search_dir / "supernet_step1", epochs=settings["step1_epochs"],
            weight_decay=settings["weight_decay"], name="supernet step 1",
            callbacks=[RandomGroupSampling(seed=settings["seed"])], **common)
    model = build("binary")
    if step1 is not None:
        transfer_weights(step1.model, model)
    step2 = train_stage(
        model, train_data, holdout_data, stage_dir=config.search_dir / "supernet_step2",
        epochs=settings["step2_epochs"], weight_decay=0.0, name="supernet step 2",
        callbacks=[RandomGroupSampling(seed=settings["seed"] + 1)], **common)
    return step2.model


def _budget(config: SearchConfig, choices, ops, latency) -> tuple[str, float, dict]:
    """The budget's measure and value; a measured reference is stored and reused."""
    search = config.search
    key = next(key for key in _BUDGET_KEYS if search[key] is not None)
    largest = tuple(block[0] for block in choices)
    spec = {key: search[key]}
    path = config.search_dir / "budget.json"
    stored = _read_json(path)
    if stored is not None and stored.get("spec") == spec:
        return stored["cost_name"], float(stored["max_cost"]), stored
    if key == "max_ops":
        record = {"cost_name": "ops", "max_cost": float(search[key])}
    elif key == "max_ops_fraction":
        reference = ops(largest)
        record = {"cost_name": "ops", "max_cost": search[key] * reference,
                  "reference_ops": reference}
    elif key == "max_latency_ms":
        record = {"cost_name": "latency_ms", "max_cost": float(search[key])}
    else:
        # Measured once and stored: a re-measured reference would move the budget.
        reference = latency(largest)
        record = {"cost_name": "latency_ms", "max_cost": search[key] * reference,
                  "reference_latency_ms": reference}
    record = {"spec": spec, "reference_groups": list(largest), **record}
    _write_json(path, record)
    return record["cost_name"], float(record["max_cost"]), record


def _score_baseline(config: SearchConfig, choices, evaluator, ops, cost, max_cost):
    from tflbnn.group_search import Candidate, config_key, random_configs

    search = config.search
    if search["random_baseline"] == 0:
        return []
    path = config.search_dir / "baseline.json"
    spec = {"count": search["random_baseline"], "min_fraction": search["baseline_min_fraction"],
            "max_cost": max_cost, "seed": search["seed"]}
    stored = _read_json(path)
    scored = stored["candidates"] if stored is not None and stored.get("spec") == spec else {}
    configs = random_configs(choices, search["random_baseline"], rng=search["seed"] + 1,
                             cost=cost, max_cost=max_cost,
                             min_cost=search["baseline_min_fraction"] * max_cost,
                             max_tries=search["max_tries"] * 10)
    baseline = []
    for groups in configs:
        key = config_key(groups)
        if key not in scored:
            scored[key] = Candidate(groups, evaluator(groups), ops(groups), cost(groups), -1,
                                    "baseline").as_dict()
            _write_json(path, {"spec": spec, "candidates": scored})
        baseline.append(Candidate.from_dict(scored[key]))
    return baseline


def run_search(config: SearchConfig, *, retrain: bool = False, verbose: int | str = "auto",
               progress: bool = True) -> SearchOutcome:
    """Train the supernet, search, report, and optionally train the winner from scratch.

    Every phase resumes or is reused when run again (module docstring).

    Args:
        config: a ``SearchConfig``.
        retrain: train ``binary_mobilenet(groups=winner)`` with the ``[retrain]`` recipe.
        verbose: Keras progress-bar verbosity.
        progress: show the search's progress bar.

    Returns:
        A ``SearchOutcome``.

    Raises:
        ValueError: for invalid model or data settings, a budget nothing fits, or saved state
            from other settings.
        TrainingDivergedError: if supernet training diverges.
    """
    from tflbnn import _backend  # noqa: F401  (Keras 2 before TensorFlow)

    import tensorflow as tf

    from tflbnn import data as tflbnn_data
    from tflbnn.group_search import (EvolutionSettings, LatencyMeter, SupernetEvaluator,
                                     evolution_search, holdout_split, plot_search,
                                     write_candidates_csv)
    from tflbnn.models.binary_mobilenet import (binary_mobilenet, binary_mobilenet_ops,
                                                group_choices, search_space_size)

    from tflbnn.experiment import training_data
    from tflbnn.metadata import check_writable_output

    supernet_settings, search = config.supernet, config.search
    check_writable_output(config.search_dir, folder=True)
    tf.keras.utils.set_random_seed(supernet_settings["seed"])
    try:
        bundle = tflbnn_data.load_data(config.data)
        split = holdout_split(bundle, supernet_settings["holdout"])
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{config.source}: [data] {error}") from None
    except ValueError as error:
        raise ValueError(f"{config.source}: [data] {error}") from None
    input_shape, num_classes = bundle.preprocessing.input_shape, bundle.num_classes
    options = config.model_options
    choices = group_choices(options["width"], max_groups=options["max_groups"])

    def build_supernet(precision: str) -> tf.keras.Model:
        # Seeded per build: a resumed search builds each supernet with the initial weights
        # an uninterrupted one gives it, whatever ran before in the process.
        tf.keras.utils.set_random_seed(supernet_settings["seed"])
        return binary_mobilenet(input_shape=input_shape, num_classes=num_classes,
                                supernet=True, precision=precision, **options)

    def build_subnet(groups) -> tf.keras.Model:
        return binary_mobilenet(input_shape=input_shape, num_classes=num_classes,
                                groups=groups, **config.subnet_options)

    def ops(groups) -> float:
        return binary_mobilenet_ops(groups, input_shape=input_shape, num_classes=num_classes,
                                    width=options["width"], stem_stride=options["stem_stride"])

    try:  # a bad model config fails before any training
        build_supernet("binary")
    except (TypeError, OverflowError, ZeroDivisionError) as error:
        raise ValueError(f"{config.source}: [model] {options} cannot build binary_mobilenet: "
                         f"{error}") from None
    try:
        train_data = training_data(split, supernet_settings["batch_size"],
                                   augment=supernet_settings["augment"],
                                   seed=supernet_settings["seed"])
    except ValueError as error:
        raise ValueError(f"{config.source}: [supernet] {error}") from None
    search_dir = config.search_dir
    search_dir.mkdir(parents=True, exist_ok=True)
    _write_json(search_dir / "config.json", config.as_dict())
    print(f"[search] search space: {search_space_size(choices):,} configurations "
          f"({', '.join(str(len(block)) for block in choices)} choices per block)")

    holdout_data = split.test_dataset(supernet_settings["eval_batch_size"])
    supernet = _train_supernet(config, build_supernet, train_data, holdout_data, verbose)

    latency = LatencyMeter(build_subnet, num_runs=search["latency_runs"],
                           num_threads=search["latency_threads"])
    cost_name, max_cost, budget = _budget(config, choices, ops, latency)
    cost = ops if cost_name == "ops" else latency
    calibration = split.train_dataset(supernet_settings["batch_size"], augment=None,
                                      seed=supernet_settings["seed"])
    evaluator = SupernetEvaluator(supernet, holdout_data, calibration,
                                  calibration_batches=supernet_settings["calibration_batches"])
    settings = EvolutionSettings(**{key: search[key] for key in _EVOLUTION_KEYS})
    print(f"[search] budget: {cost_name} <= {max_cost:.6g}; {settings.generations} generations "
          f"of {settings.population}")
    result = evolution_search(choices, evaluator, ops=ops, max_cost=max_cost, cost=cost,
                              cost_name=cost_name, settings=settings,
                              state_path=search_dir / "state.json",
                              cost_cache=latency.cache if cost is latency else None,
                              progress=progress)
    baseline = _score_baseline(config, choices, evaluator, ops, cost, max_cost)

    front = result.pareto()
    paths = {
        "candidates": write_candidates_csv(search_dir / "candidates.csv",
                                           [*result.candidates, *baseline],
                                           cost_name=cost_name, pareto=front),
        "pareto": write_candidates_csv(search_dir / "pareto.csv", front, cost_name=cost_name,
                                       pareto=front),
        "plot": plot_search(search_dir / "pareto.png", result, baseline=baseline,
                            title=f"{config.name}: binary_mobilenet group search"),
    }
    winner = result.winner
    accuracies = [candidate.accuracy for candidate in baseline]
    record = {
        "groups": list(winner.groups),
        "accuracy": winner.accuracy,
        "ops": winner.ops,
        cost_name: winner.cost,
        "accuracy_note": "held-out top-1 accuracy of the supernet's shared weights after "
                         "batch-norm recalibration, not of a model trained from scratch",
        "model": {"name": "binary_mobilenet", **config.subnet_options,
                  "groups": list(winner.groups)},
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "budget": {key: value for key, value in budget.items() if key != "spec"},
        "search_space_size": search_space_size(choices),
        "choices": [list(block) for block in choices],
        "generations": result.generations,
        "evaluated": len(result.candidates),
        "pareto": [candidate.as_dict() for candidate in front],
        "random_baseline": {
            "count": len(baseline),
            "best": max(accuracies) if accuracies else None,
            "median": statistics.median(accuracies) if accuracies else None,
            "best_groups": list(max(baseline, key=lambda c: c.accuracy).groups)
                           if baseline else None,
        },
    }
    paths["winner"] = _write_json(search_dir / "winner.json", record)
    print(f"[search] winner {winner.key}: held-out accuracy {winner.accuracy:.4f} (supernet), "
          f"OPs {winner.ops:.4g}" + (f", latency {winner.cost:.3f} ms"
                                    if cost_name != "ops" else ""))
    if accuracies:
        print(f"[search] random baseline ({len(baseline)} within the budget): best "
              f"{max(accuracies):.4f}, median {statistics.median(accuracies):.4f}")
    outcome = SearchOutcome(config=config, result=result, baseline=baseline, winner=record,
                            paths=paths)
    if retrain:
        from tflbnn.experiment import RunConfig, run_experiment

        run_config = RunConfig.from_dict({
            "name": "retrain", "output_dir": str(config.run_dir),
            "model": record["model"], "data": config.data, "recipe": config.retrain,
        }, source=f"{config.name} [retrain]")
        outcome.retrain = run_experiment(run_config, verbose=verbose)
    return outcome


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="one-shot evolutionary search of binary MobileNet's group counts (resumable)",
        description="Train a one-shot binary MobileNet supernet, search the group count of "
                    "every block's 3x3 conv under an OPs or latency budget, and write "
                    "<output_dir>/<name>/search/ (candidates.csv, pareto.csv, pareto.png, "
                    "winner.json). Running it again resumes. --retrain then trains the "
                    "winner from scratch.")
    parser.add_argument("config", help="TOML search config (see tflbnn.commands.search)")
    parser.add_argument("--output-dir", help="parent directory of runs (overrides the config)")
    parser.add_argument("--name", help="run name (overrides the config)")
    parser.add_argument("--retrain", action="store_true",
                        help="train the winner from scratch with the [retrain] recipe")
    parser.add_argument("--quiet", action="store_true",
                        help="one line per epoch, no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tflbnn.training import TrainingDivergedError

    config = load_search_config(args.config, output_dir=args.output_dir, name=args.name)
    try:
        outcome = run_search(config, retrain=args.retrain, verbose=2 if args.quiet else "auto",
                             progress=not args.quiet)
    except TrainingDivergedError as error:
        print(f"tflbnn search: training diverged: {error}")
        return 3
    for name, path in outcome.paths.items():
        print(f"{name}: {path}")
    if outcome.retrain is not None:
        print(f"retrained winner: test accuracy {outcome.retrain.test_accuracy:.4f}, model "
              f"{outcome.retrain.model_path}")
    return 0
