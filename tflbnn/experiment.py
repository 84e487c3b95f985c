"""Config-driven training runs: what ``tflbnn train CONFIG`` and ``tflbnn demo`` execute.

A config is a small TOML file (or the equivalent dict)::

    name = "fashion_reactnet"        # run directory: <output_dir>/<name>
    output_dir = "runs"

    [model]                          # a zoo name plus its options
    name = "reactnet_a"
    width = 0.25
    stem_stride = 1

    [data]                           # a tflbnn.data.load_data spec
    kind = "fashion_mnist"
    source = "embedded"

    [recipe]
    kind = "two_step"                # "two_step", "adambnn", "bop", "bn_free", "float",
                                     # "binary", "n2uq" or "s3"
    batch_size = 128
    learning_rate = 1e-3
    teacher_epochs = 3               # two_step: float twin trained as teacher; n2uq: float twin
    step1_epochs = 4                 # two_step: binary activations, real weights
    step2_epochs = 4                 # two_step: fully binary
    epochs = 4                       # float / binary / n2uq (quantized stage) / s3
    weight_decay = 1e-5
    augment = "standard"

The other binary recipes (``tflbnn.training.adambnn_recipe`` / ``bop_recipe`` /
``bn_free_recipe``):

* ``kind = "adambnn"``: ``two_step``'s stages with AdamBNN's settings: step-1
  ``weight_decay`` defaults to 5e-6 (ReActNet: 1e-5), none in step 2 (as ReActNet), Adam betas
  (0.9, 0.999) (the default in both). Same keys as ``two_step``.
* ``kind = "bop"``: optional float teacher (``teacher_epochs`` or ``teacher = "path.keras"``;
  default none: cross-entropy, as the Bop paper; with one, both later stages distil from it),
  optional ReActNet step 1 (``step1_epochs``, default 0), then the fully binary model (from
  step 1's weights, else from the float teacher trained here when ``step1_init = "teacher"``,
  else fresh), kernels set to ±1, trained for ``epochs`` with Bop on the binary kernels
  (``threshold`` τ, default 1e-8; ``gamma`` γ, default 1e-4; ``gamma_decay``, the final γ as
  a fraction of ``gamma``, linear, default 1.0 = constant) and Adam at ``learning_rate`` with
  linear decay on the other weights. ``threshold``, ``gamma`` and ``gamma_decay`` are only
  accepted with this kind.
* ``kind = "bn_free"``: the BN-free BNN. The model is built with ``bn_free = true`` (set for
  you; ``[model] bn_free = false`` is an error, and the model must have that option, i.e.
  ``reactnet_a``), and ``two_step``'s stages train with Adam plus adaptive gradient clipping at
  ``agc_clip`` (default 0.02, the paper's λ; only accepted with this kind) on every weight but
  the classifier. ``learning_rate`` defaults to the paper's 5e-4. A BN-free model can also be
  trained by the other ReActNet kinds (``[model] bn_free = true``), without AGC.

The low-bit recipes (``tflbnn.training.n2uq_recipe`` / ``s3_recipe``):

* ``kind = "n2uq"``: the float twin (``precision = "float"``) is trained for ``teacher_epochs``,
  or loaded from ``teacher = "path.keras"``, then the N2UQ model starts from its weights and
  trains for ``epochs`` with Adam, linear decay and thresholds/scales at
  ``quantizer_lr_factor`` (0.1) times ``learning_rate``; ``distill = true`` distils from the
  float model. Weight decay defaults to 0 (the paper's).
* ``kind = "s3"``: from random initialisation, SGD with ``momentum`` (0.9) and cosine decay,
  ``learning_rate`` defaulting to 0.1 and ``weight_decay`` (on all weights) to 1e-4; the S3
  layers' dense-weight regulariser is on.

The run writes every stage under ``<output_dir>/<name>/<stage>/`` (resumable), then the final
model as ``model.keras`` + ``model.json`` (labels, preprocessing, data spec, results), the
combined ``training_curves.png`` and ``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn import data as tflbnn_data
from tflbnn.metadata import ModelMetadata, sidecar_path, write_bytes_atomic
from tflbnn.models import get_model, model_options, profile
from tflbnn.training import (adambnn_recipe, bn_free_recipe, bop_recipe, n2uq_recipe,
                             plot_histories, read_history, s3_recipe, train_stage, two_step)
from tflbnn.training.agc import AGC_CLIP_FACTOR
from tflbnn.training.optimizers import BOP_GAMMA, BOP_THRESHOLD
from tflbnn.training.recipes import ADAMBNN_WEIGHT_DECAY, STEP1_INITS

__all__ = ["RunConfig", "RunResult", "check_same_settings", "check_top_level", "load_config",
           "read_toml_config", "run_experiment", "RECIPES"]

RECIPES = ("two_step", "float", "binary", "n2uq", "s3", "adambnn", "bop", "bn_free")

#: The zoo precision of the model each recipe ends with (``None``: the builder has none).
_FINAL_PRECISION = {"two_step": "binary", "float": "float", "binary": "binary", "n2uq": "n2uq",
                    "s3": None, "adambnn": "binary", "bop": "binary", "bn_free": "binary"}

#: Recipe defaults that differ from ``_RECIPE_DEFAULTS`` for one kind (the papers' values).
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "n2uq": {"weight_decay": 0.0},
    "s3": {"learning_rate": 0.1, "weight_decay": 1e-4},
    "adambnn": {"weight_decay": ADAMBNN_WEIGHT_DECAY},
    "bop": {"teacher_epochs": 0, "step1_epochs": 0},
    "bn_free": {"learning_rate": 5e-4, "agc_clip": AGC_CLIP_FACTOR},
}

#: Recipe keys that only one kind reads; giving them to another kind is an error.
_KIND_ONLY_KEYS = {"threshold": "bop", "gamma": "bop", "gamma_decay": "bop",
                   "agc_clip": "bn_free"}

_RECIPE_DEFAULTS: dict[str, Any] = {
    "kind": "two_step",
    "batch_size": 128,
    "learning_rate": 1e-3,
    "teacher_learning_rate": None,
    "teacher_epochs": 3,
    "step1_epochs": 4,
    "step2_epochs": 4,
    "epochs": 4,
    "weight_decay": 1e-5,
    "label_weight": 0.0,
    "step1_init": "teacher",
    "lr_offset": 1,
    "augment": "standard",
    "seed": 0,
    "teacher": None,
    "distill": False,
    "quantizer_lr_factor": 0.1,
    "momentum": 0.9,
    "threshold": BOP_THRESHOLD,
    "gamma": BOP_GAMMA,
    "gamma_decay": 1.0,
    "agc_clip": 0.0,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_kind_options(kind: str, recipe: dict[str, Any], given: dict[str, Any],
                        model_name: str, model: dict[str, Any], source: str) -> None:
    """Validate the keys of the Bop and BN-free kinds; may set ``model["bn_free"]``."""
    for key, owner in _KIND_ONLY_KEYS.items():
        if key in given and kind != owner:
            raise ValueError(f"{source}: recipe {key} only applies to kind {owner!r}, not "
                             f"{kind!r}")
    if kind == "bop":
        if not _is_number(recipe["threshold"]) or not recipe["threshold"] >= 0:
            raise ValueError(f"{source}: recipe threshold must be a number >= 0, got "
                             f"{recipe['threshold']!r}")
        for key in ("gamma", "gamma_decay"):
            if not _is_number(recipe[key]) or not 0 < recipe[key] <= 1:
                raise ValueError(f"{source}: recipe {key} must be a number in (0, 1], got "
                                 f"{recipe[key]!r}")
    if kind == "bn_free":
        if not _is_number(recipe["agc_clip"]) or not recipe["agc_clip"] > 0:
            raise ValueError(f"{source}: recipe agc_clip must be a positive number, got "
                             f"{recipe['agc_clip']!r}")
        if model.get("bn_free", True) is not True:
            raise ValueError(f"{source}: recipe kind 'bn_free' builds the model with "
                             f"bn_free = true, but [model] sets bn_free = {model['bn_free']!r}")
        if "bn_free" not in model_options(model_name):
            raise ValueError(f"{source}: recipe kind 'bn_free' needs a model with a bn_free "
                             f"option (e.g. reactnet_a); {model_name!r} has none")
        model["bn_free"] = True


def check_top_level(config: Mapping[str, Any], *, known: tuple[str, ...],
                    required: tuple[str, ...], source: str) -> str:
    """Check a config's top-level keys and its run name.

    Args:
        config: the config mapping.
        known: every valid top-level key.
        required: the keys that must be present.
        source: where the config came from, named in errors.

    Returns:
        The run name.

    Raises:
        ValueError: for an unknown or missing key, or a name that is not a plain directory name.
    """
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {unknown}; valid: {sorted(known)}")
    for key in required:
        if key not in config:
            raise ValueError(f"{source}: missing required key {key!r}")
    name = str(config["name"])
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{source}: name must be a plain directory name, got {name!r}")
    return name


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see the module docstring for the file format).

    Attributes:
        name: run name, the directory under ``output_dir``.
        output_dir: parent directory of runs.
        model: zoo model name.
        model_options: options passed to ``get_model``.
        data: a ``tflbnn.data.load_data`` spec.
        recipe: recipe settings, defaults filled in.
    """

    name: str
    output_dir: Path
    model: str
    model_options: dict
    data: dict
    recipe: dict

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_dir": str(self.output_dir),
            "model": {"name": self.model, **self.model_options},
            "data": self.data,
            "recipe": self.recipe,
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str = "config") -> "RunConfig":
        """Validate a config mapping.

        Raises:
            ValueError: naming ``source`` and the offending key for anything invalid.
        """
        name = check_top_level(config, known=("name", "output_dir", "model", "data", "recipe"),
                               required=("name", "model", "data"), source=source)
        model = dict(config["model"])
        if "name" not in model:
            raise ValueError(f"{source}: [model] needs a 'name' (one of the zoo's models)")
        model_name = model.pop("name")
        recipe_given = dict(config.get("recipe", {}))
        unknown = sorted(set(recipe_given) - set(_RECIPE_DEFAULTS))
        if unknown:
            raise ValueError(f"{source}: unknown [recipe] key(s) {unknown}; valid: "
                             f"{sorted(_RECIPE_DEFAULTS)}")
        kind = recipe_given.get("kind", _RECIPE_DEFAULTS["kind"])
        if kind not in RECIPES:
            raise ValueError(f"{source}: recipe kind must be one of {RECIPES}, got {kind!r}")
        recipe = {**_RECIPE_DEFAULTS, **_KIND_DEFAULTS.get(kind, {}), **recipe_given}
        if recipe["step1_init"] not in STEP1_INITS:
            raise ValueError(f"{source}: step1_init must be one of {STEP1_INITS}, got "
                             f"{recipe['step1_init']!r}")
        for key in ("batch_size", "teacher_epochs", "step1_epochs", "step2_epochs", "epochs"):
            minimum = 0 if key == "teacher_epochs" or (key, kind) == ("step1_epochs", "bop") else 1
            if not isinstance(recipe[key], int) or recipe[key] < minimum:
                raise ValueError(f"{source}: recipe {key} must be an integer >= {minimum}, "
                                 f"got {recipe[key]!r}")
        if not recipe["learning_rate"] > 0:
            raise ValueError(f"{source}: recipe learning_rate must be positive")
        if not isinstance(recipe["distill"], bool):
            raise ValueError(f"{source}: recipe distill must be true or false, got "
                             f"{recipe['distill']!r}")
        if not recipe["quantizer_lr_factor"] > 0:
            raise ValueError(f"{source}: recipe quantizer_lr_factor must be positive")
        if not 0 <= recipe["momentum"] < 1:
            raise ValueError(f"{source}: recipe momentum must be in [0, 1), got "
                             f"{recipe['momentum']!r}")
        if kind == "n2uq" and recipe["teacher_epochs"] < 1 and not recipe["teacher"]:
            raise ValueError(f"{source}: the n2uq recipe starts from a float model: set "
                             "teacher_epochs >= 1 or teacher = \"float_model.keras\"")
        _check_kind_options(kind, recipe, recipe_given, model_name, model, source)
        return cls(name=name, output_dir=Path(config.get("output_dir", "runs")),
                   model=model_name, model_options=model, data=dict(config["data"]),
                   recipe=recipe)


def load_config(path: str | os.PathLike, **overrides: Any) -> RunConfig:
    """Read a TOML run config.

    Args:
        path: the TOML file.
        **overrides: top-level keys replacing the file's (e.g. ``output_dir``, ``name``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not valid TOML or not a valid config (the message names the file).
    """
    return RunConfig.from_dict(read_toml_config(path, **overrides), source=str(path))


def read_toml_config(path: str | os.PathLike, **overrides: Any) -> dict[str, Any]:
    """Read a TOML config file into a dict, before any validation.

    Args:
        path: the TOML file.
        **overrides: top-level keys replacing the file's; ``None`` values are ignored.

    Returns:
        The file's tables and keys with the overrides applied.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not valid UTF-8 TOML (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a valid TOML file ({error})") from None
    config.update({key: value for key, value in overrides.items() if value is not None})
    return config


@dataclasses.dataclass
class RunResult:
    """Outcome of ``run_experiment``.

    Attributes:
        config: the run's config.
        model: the final trained model.
        model_path: ``run_dir/model.keras``.
        metadata: the metadata saved next to it.
        stages: per-stage summaries (accuracy, epochs, seconds).
        data: the data bundle used.
    """

    config: RunConfig
    model: tf.keras.Model
    model_path: Path
    metadata: ModelMetadata
    stages: dict[str, dict]
    data: Any

    @property
    def test_accuracy(self) -> float:
        return list(self.stages.values())[-1]["test_accuracy"]

    def final_history(self) -> list[dict[str, float]]:
        """The per-epoch history of the run's last stage (``read_history`` rows).

        Raises:
            FileNotFoundError: if the stage's ``history.csv`` is missing.
        """
        final = list(self.stages.values())[-1]
        return read_history(Path(final["model"]).parent / "history.csv")


def check_same_settings(config: RunConfig) -> None:
    """Refuse to reuse or resume a run folder whose run was trained with other settings.

    Finished stages are reused and interrupted ones resumed, so a changed config run under the
    same name would mix settings, and its ``config.json`` would no longer say how the model
    was trained. Keys that the saved config lacks (added to the defaults since) are not
    compared.

    Raises:
        ValueError: naming the folder and every ``[model]``, ``[data]`` or ``[recipe]`` key
            whose value differs, or if the saved ``config.json`` cannot be read.
    """
    path = config.run_dir / "config.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config.name}: cannot read the saved settings {path} ({error}); "
                         "delete the folder or give this run another name") from None
    current = json.loads(json.dumps(config.as_dict(), default=str))
    changed = []
    for section in ("model", "data", "recipe"):
        before, after = saved.get(section, {}), current[section]
        for key in sorted(before):
            if before[key] != after.get(key):
                changed.append(f"[{section}] {key} {before[key]!r} -> {after.get(key)!r}")
    if changed:
        raise ValueError(f"{config.name}: {config.run_dir} holds a run trained with other "
                         f"settings ({'; '.join(changed)}); give this run another name "
                         "(--name) or delete that folder")


def run_experiment(config: RunConfig, *, verbose: int | str = "auto") -> RunResult:
    """Train the configured model with its recipe; resumes an interrupted run.

    Args:
        config: a ``RunConfig``.
        verbose: Keras progress-bar verbosity.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: for an invalid model/data configuration, or a run folder that holds a run
            with other settings (``check_same_settings``).
        TrainingDivergedError: if the loss becomes NaN.
    """
    check_same_settings(config)
    recipe = config.recipe
    tf.keras.utils.set_random_seed(recipe["seed"])
    bundle = tflbnn_data.load_data(config.data)
    input_shape = bundle.preprocessing.input_shape

    def build(precision: str | None) -> tf.keras.Model:
        options = dict(config.model_options)
        if precision is not None:
            options["precision"] = precision
        return get_model(config.model, input_shape=input_shape, num_classes=len(bundle.labels),
                         **options)

    # Fail on a bad model config before any data work or training.
    build(_FINAL_PRECISION[recipe["kind"]])
    train_data = bundle.train_dataset(recipe["batch_size"], augment=recipe["augment"],
                                      seed=recipe["seed"])
    test_data = bundle.test_dataset(recipe["batch_size"])
    metadata = ModelMetadata(labels=bundle.labels, preprocessing=bundle.preprocessing,
                             name=config.model,
                             extra={"data": config.data, "model_options": config.model_options,
                                    "recipe": recipe["kind"]})
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run_dir / "config.json", json.dumps(config.as_dict(), indent=2,
                                                           default=str).encode())
    teacher = None
    if recipe["teacher"]:
        if not Path(recipe["teacher"]).is_file():
            raise FileNotFoundError(f"{config.name}: recipe teacher {recipe['teacher']!r} is not "
                                    "a file (a trained .keras model)")
        teacher = tf.keras.models.load_model(recipe["teacher"], safe_mode=True, compile=False)
    common = dict(learning_rate=recipe["learning_rate"], lr_offset=recipe["lr_offset"],
                  metadata=metadata, verbose=verbose)

    two_steps = dict(
        teacher=teacher, teacher_epochs=recipe["teacher_epochs"],
        step1_epochs=recipe["step1_epochs"], step2_epochs=recipe["step2_epochs"],
        weight_decay=recipe["weight_decay"], teacher_learning_rate=recipe["teacher_learning_rate"],
        step1_init=recipe["step1_init"], label_weight=recipe["label_weight"], **common,
    )
    if recipe["kind"] == "two_step":
        results = two_step(build, train_data, test_data, run_dir=run_dir, **two_steps)
    elif recipe["kind"] == "adambnn":
        results = adambnn_recipe(build, train_data, test_data, run_dir=run_dir, **two_steps)
    elif recipe["kind"] == "bn_free":
        results = bn_free_recipe(build, train_data, test_data, run_dir=run_dir,
                                 agc_clip=recipe["agc_clip"], **two_steps)
    elif recipe["kind"] == "bop":
        results = bop_recipe(
            build, train_data, test_data, run_dir=run_dir, epochs=recipe["epochs"],
            step1_epochs=recipe["step1_epochs"], threshold=recipe["threshold"],
            gamma=recipe["gamma"], gamma_decay=recipe["gamma_decay"], teacher=teacher,
            teacher_epochs=recipe["teacher_epochs"],
            teacher_learning_rate=recipe["teacher_learning_rate"],
            weight_decay=recipe["weight_decay"], step1_init=recipe["step1_init"],
            label_weight=recipe["label_weight"], **common,
        )
    elif recipe["kind"] == "n2uq":
        results = n2uq_recipe(
            build, train_data, test_data, run_dir=run_dir, epochs=recipe["epochs"],
            float_epochs=recipe["teacher_epochs"], float_model=teacher,
            float_learning_rate=recipe["teacher_learning_rate"],
            quantizer_lr_factor=recipe["quantizer_lr_factor"], distill=recipe["distill"],
            label_weight=recipe["label_weight"], **common,
        )
    elif recipe["kind"] == "s3":
        results = s3_recipe(
            build(None), train_data, test_data, run_dir=run_dir, epochs=recipe["epochs"],
            learning_rate=recipe["learning_rate"], momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"], teacher=teacher,
            label_weight=recipe["label_weight"], metadata=metadata, verbose=verbose,
        )
    else:
        precision = _FINAL_PRECISION[recipe["kind"]]
        results = {recipe["kind"]: train_stage(
            build(precision), train_data, test_data, stage_dir=run_dir / recipe["kind"],
            epochs=recipe["epochs"], weight_decay=recipe["weight_decay"], teacher=teacher,
            label_weight=recipe["label_weight"], **common,
        )}

    final = list(results.values())[-1]
    stages = {name: result.summary() for name, result in results.items()}
    model_profile = profile(final.model)
    metadata = metadata.with_extra(test_accuracy=final.test_accuracy, stages=stages,
                                   profile=model_profile.as_dict())
    model_path = write_bytes_atomic(run_dir / "model.keras", final.model_path.read_bytes())
    metadata.save(sidecar_path(model_path))
    plot_histories({name: result.history for name, result in results.items()},
                   run_dir / "training_curves.png", title=f"{config.name}: {config.model}")
    write_bytes_atomic(run_dir / "results.json", json.dumps(
        {"stages": stages, "profile": model_profile.as_dict(), "model": str(model_path)},
        indent=2).encode())
    return RunResult(config=config, model=final.model, model_path=model_path, metadata=metadata,
                     stages=stages, data=bundle)
