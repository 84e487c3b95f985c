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

Every value is checked for its type and range when the config is read (a message names the
file, the table and the key), and the output folder, the data, the model options and the
teacher are checked before anything is written, so a refused run leaves nothing behind.

Running the same config again continues an interrupted run: finished stages are reused, the
interrupted one resumes after its last finished epoch and ends with the weights an
uninterrupted run ends with (each epoch's shuffle and augmentation come from ``(seed, epoch)``,
the optimizer state and schedule position from the epoch checkpoint). Not exact: drop-path
in BiMLP models and ``augment = "crop_resize"`` draw from generators that are not restored
(``tflbnn.training.stage`` says what differs). A run folder whose finished stages had other
settings is refused; one where no stage had finished starts over with the new settings.
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

from tflbnn import config_fields as fields
from tflbnn import data as tflbnn_data
from tflbnn.metadata import (ModelMetadata, check_writable_output, sidecar_path,
                             write_bytes_atomic)
from tflbnn.model_files import load_keras_model
from tflbnn.models import get_model, model_options, profile
from tflbnn.training import (adambnn_recipe, bn_free_recipe, bop_recipe, n2uq_recipe,
                             plot_histories, read_history, s3_recipe, train_stage, two_step)
from tflbnn.training.stage import (EpochData, TrainData, discard_unfinished_stage,
                                   has_unfinished_state)
from tflbnn.training.agc import AGC_CLIP_FACTOR
from tflbnn.training.optimizers import BOP_GAMMA, BOP_THRESHOLD
from tflbnn.training.recipes import ADAMBNN_WEIGHT_DECAY, STEP1_INITS

__all__ = ["RunConfig", "RunResult", "check_same_settings", "check_top_level", "load_config",
           "read_toml_config", "run_experiment", "training_data", "RECIPES"]

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


#: The type and range of every ``[recipe]`` key (``_KIND_FIELDS``: kinds that differ).
_RECIPE_FIELDS: dict[str, fields.FieldCheck] = {
    "kind": fields.one_of(RECIPES),
    "batch_size": fields.integer(1),
    "learning_rate": fields.number(above=0),
    "teacher_learning_rate": fields.optional(fields.number(above=0)),
    "teacher_epochs": fields.integer(0),
    "step1_epochs": fields.integer(1),
    "step2_epochs": fields.integer(1),
    "epochs": fields.integer(1),
    "weight_decay": fields.number(at_least=0),
    "label_weight": fields.number(at_least=0),
    "step1_init": fields.one_of(STEP1_INITS),
    "lr_offset": fields.one_of((0, 1)),
    "augment": fields.one_of(tflbnn_data.AUGMENTATIONS),
    "seed": fields.integer(0),
    "teacher": fields.optional(fields.text),
    "distill": fields.boolean,
    "quantizer_lr_factor": fields.number(above=0),
    "momentum": fields.number(at_least=0, below=1),
    "threshold": fields.number(at_least=0),
    "gamma": fields.number(above=0, at_most=1),
    "gamma_decay": fields.number(above=0, at_most=1),
    "agc_clip": fields.number(above=0),
}
_KIND_FIELDS: dict[str, dict[str, fields.FieldCheck]] = {
    "bop": {"step1_epochs": fields.integer(0)},  # Bop's step 1 is optional
}

#: Model option checks by the type of the option's default (options defaulting to None, or
#: to another type, are left to the model builder).
_OPTION_CHECKS: dict[type, fields.FieldCheck] = {
    bool: fields.boolean,
    int: fields.integer(),
    float: fields.number(),
    str: fields.text,
}


def _check_model_options(model_name: Any, options: dict[str, Any], source: str) -> None:
    fields.text(model_name, f"{source}: [model] name")
    try:
        defaults = model_options(model_name)
    except ValueError as error:
        raise ValueError(f"{source}: [model] {error}") from None
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"{source}: [model] unknown option(s) {unknown} for {model_name!r}; "
                         f"valid: {sorted(defaults)}")
    for key, value in options.items():
        check = _OPTION_CHECKS.get(type(defaults[key]))
        if check is not None:
            check(value, f"{source}: [model] {key}")


def _check_kind_options(kind: str, recipe: dict[str, Any], given: dict[str, Any],
                        model_name: str, model: dict[str, Any], source: str) -> None:
    """Refuse keys of another kind; check the BN-free kind's model; may set ``model["bn_free"]``."""
    for key, owner in _KIND_ONLY_KEYS.items():
        if key in given and kind != owner:
            raise ValueError(f"{source}: [recipe] {key} only applies to kind {owner!r}, not "
                             f"{kind!r}")
    if kind == "bn_free":
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
        ValueError: for an unknown or missing key, a name that is not a plain directory name,
            or an ``output_dir`` that is not a string.
    """
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {unknown}; valid: {sorted(known)}")
    for key in required:
        if key not in config:
            raise ValueError(f"{source}: missing required key {key!r}")
    fields.check_fields(config, {"name": fields.text, "output_dir": fields.text}, source + ":")
    name = config["name"]
    if "/" in name or "\\" in name or name.startswith("."):
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
        source: where the config came from (its file), named in errors; not a setting.
    """

    name: str
    output_dir: Path
    model: str
    model_options: dict
    data: dict
    recipe: dict
    source: str = dataclasses.field(default="config", compare=False)

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
        model = fields.table(config["model"], f"{source}: [model]")
        data = fields.table(config["data"], f"{source}: [data]")
        recipe_given = fields.table(config.get("recipe", {}), f"{source}: [recipe]")
        if "name" not in model:
            raise ValueError(f"{source}: [model] needs a 'name' (one of the zoo's models)")
        model_name = model.pop("name")
        _check_model_options(model_name, model, source)
        unknown = sorted(set(recipe_given) - set(_RECIPE_DEFAULTS))
        if unknown:
            raise ValueError(f"{source}: unknown [recipe] key(s) {unknown}; valid: "
                             f"{sorted(_RECIPE_DEFAULTS)}")
        kind = recipe_given.get("kind", _RECIPE_DEFAULTS["kind"])
        _RECIPE_FIELDS["kind"](kind, f"{source}: [recipe] kind")
        recipe = {**_RECIPE_DEFAULTS, **_KIND_DEFAULTS.get(kind, {}), **recipe_given}
        checks = {**_RECIPE_FIELDS, **_KIND_FIELDS.get(kind, {})}
        for key, owner in _KIND_ONLY_KEYS.items():
            if owner != kind:
                del checks[key]  # another kind's key: refused below when given
        fields.check_fields(recipe, checks, f"{source}: [recipe]")
        if kind == "n2uq" and recipe["teacher_epochs"] < 1 and not recipe["teacher"]:
            raise ValueError(f"{source}: the n2uq recipe starts from a float model: set "
                             "teacher_epochs >= 1 or teacher = \"float_model.keras\"")
        _check_kind_options(kind, recipe, recipe_given, model_name, model, source)
        return cls(name=name, output_dir=Path(config.get("output_dir", "runs")),
                   model=model_name, model_options=model, data=data, recipe=recipe,
                   source=source)


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


#: Augmentations whose randomness comes from the ``tf.data`` seed alone, so that ``EpochData``
#: can key it by epoch. keras-cv's (``"crop_resize"``) need a Python int seed and keep their
#: own generator state.
_EPOCH_KEYED_AUGMENTATIONS = ("standard", None)


def training_data(bundle: tflbnn_data.DataBundle, batch_size: int, *, augment: str | None,
                  seed: int) -> TrainData:
    """A run's training batches: ``EpochData`` (exact resume) wherever the augmentation allows.

    Args:
        bundle: the data.
        batch_size: images per batch.
        augment: a ``tflbnn.data.AUGMENTATIONS`` name.
        seed: the run's seed.

    Returns:
        ``EpochData`` whose epoch ``e`` is shuffled and augmented from ``(seed, e)``; for
        ``"crop_resize"`` a plain dataset reshuffled every epoch (a resumed run then sees other
        batches than an uninterrupted one: ``tflbnn.training.stage``).

    Raises:
        ValueError: if the batches cannot be built (e.g. ``batch_size`` larger than the
            training set), checked here before any training.
    """
    if augment not in _EPOCH_KEYED_AUGMENTATIONS:
        return bundle.train_dataset(batch_size, augment=augment, seed=seed)
    data = EpochData(lambda epoch_seed: bundle.train_dataset(batch_size, augment=augment,
                                                             seed=epoch_seed), seed=seed)
    data.shape_example()
    return data


def _has_finished_stage(run_dir: Path) -> bool:
    if (run_dir / "model.keras").exists():
        return True
    return any((child / "stage.json").is_file() for child in run_dir.iterdir() if child.is_dir())


def check_same_settings(config: RunConfig) -> list[str]:
    """Refuse to reuse or resume a run folder whose finished stages had other settings.

    Finished stages are reused and interrupted ones resumed, so a changed config run under the
    same name would mix settings, and its ``config.json`` would no longer say how the model
    was trained. A folder where no stage has finished holds nothing worth keeping (a run that
    failed or was stopped early): its settings may differ, and ``run_experiment`` then starts
    it over. Keys that the saved config lacks (added to the defaults since) are not compared.

    Returns:
        The differing settings (``"[section] key old -> new"``); empty when the folder has no
        saved config or the same settings. Non-empty only when no stage has finished.

    Raises:
        ValueError: naming the folder and every ``[model]``, ``[data]`` or ``[recipe]`` key
            whose value differs when a stage has finished, or if the saved ``config.json``
            cannot be read.
    """
    path = config.run_dir / "config.json"
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        sections = {section: dict(saved.get(section, {})) for section in
                    ("model", "data", "recipe")}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{config.name}: cannot read the saved settings {path} ({error}); "
                         "delete the folder or give this run another name") from None
    current = json.loads(json.dumps(config.as_dict(), default=str))
    changed = []
    for section, before in sections.items():
        after = current[section]
        for key in sorted(before):
            if before[key] != after.get(key):
                changed.append(f"[{section}] {key} {before[key]!r} -> {after.get(key)!r}")
    if changed and _has_finished_stage(config.run_dir):
        raise ValueError(f"{config.name}: {config.run_dir} holds a run trained with other "
                         f"settings ({'; '.join(changed)}); give this run another name "
                         "(--name) or delete that folder")
    return changed


def _start_over(run_dir: Path, changed: list[str]) -> None:
    """Discard what an unfinished run with other settings left (``check_same_settings``)."""
    stages = [child for child in sorted(run_dir.iterdir())
              if child.is_dir() and has_unfinished_state(child)]
    for stage_dir in stages:
        discard_unfinished_stage(stage_dir)
    note = f"; discarding the unfinished stage(s) {[d.name for d in stages]}" if stages else ""
    print(f"[{run_dir.name}] no stage of the earlier run in {run_dir} had finished and its "
          f"settings differ ({'; '.join(changed)}): starting over{note}")


def _checked_data(config: RunConfig) -> tflbnn_data.DataBundle:
    try:
        return tflbnn_data.load_data(config.data)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{config.source}: [data] {error}") from None
    except ValueError as error:
        raise ValueError(f"{config.source}: [data] {error}") from None


def _checked_teacher(config: RunConfig) -> tf.keras.Model | None:
    recipe = config.recipe
    teacher = None
    if recipe["teacher"]:
        if not Path(recipe["teacher"]).is_file():
            raise FileNotFoundError(f"{config.source}: recipe teacher {recipe['teacher']!r} is "
                                    "not a file (a trained .keras model)")
        teacher = load_keras_model(recipe["teacher"])
    return teacher


def run_experiment(config: RunConfig, *, verbose: int | str = "auto") -> RunResult:
    """Train the configured model with its recipe; resumes an interrupted run.

    Everything that can be checked is checked before anything is written: the output folder,
    the saved settings of an earlier run (``check_same_settings``), the data, the model
    options, the training batches and the teacher. A run stopped at any point resumes where it
    stopped and ends with the weights an uninterrupted run ends with (``train_stage``; the
    exceptions are listed in ``tflbnn.training.stage``): every model is built right after
    seeding with the recipe seed, so its initial weights do not depend on which stages ran
    before it in the process, and every epoch's data comes from ``(seed, epoch)``.

    Args:
        config: a ``RunConfig``.
        verbose: Keras progress-bar verbosity.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: for an invalid model/data configuration or teacher, an output folder that
            cannot be written, or a run folder whose finished stages had other settings
            (``check_same_settings``).
        FileNotFoundError: for a missing data file or teacher.
        TrainingDivergedError: if the loss becomes NaN.
    """
    recipe = config.recipe
    run_dir = check_writable_output(config.run_dir, folder=True)
    changed = check_same_settings(config)
    tf.keras.utils.set_random_seed(recipe["seed"])
    bundle = _checked_data(config)
    input_shape = bundle.preprocessing.input_shape

    def build(precision: str | None) -> tf.keras.Model:
        options = dict(config.model_options)
        if precision is not None:
            options["precision"] = precision
        # Seeded here, not once per process: a resumed run that reuses earlier stages builds
        # each later model with the initial weights an uninterrupted run gives it.
        tf.keras.utils.set_random_seed(recipe["seed"])
        return get_model(config.model, input_shape=input_shape, num_classes=len(bundle.labels),
                         **options)

    try:  # a bad model config fails before any training
        build(_FINAL_PRECISION[recipe["kind"]])
    except (TypeError, OverflowError, ZeroDivisionError) as error:
        raise ValueError(f"{config.source}: [model] options {config.model_options} cannot build "
                         f"{config.model!r}: {error}") from None
    try:
        train_data = training_data(bundle, recipe["batch_size"], augment=recipe["augment"],
                                   seed=recipe["seed"])
    except ValueError as error:
        raise ValueError(f"{config.source}: [recipe] {error}") from None
    test_data = bundle.test_dataset(recipe["batch_size"])
    metadata = ModelMetadata(labels=bundle.labels, preprocessing=bundle.preprocessing,
                             name=config.model,
                             extra={"data": config.data, "model_options": config.model_options,
                                    "recipe": recipe["kind"]})
    teacher = _checked_teacher(config)

    # Everything is checked: from here on the run folder is written.
    if changed:
        _start_over(run_dir, changed)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run_dir / "config.json", json.dumps(config.as_dict(), indent=2,
                                                           default=str).encode())
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
