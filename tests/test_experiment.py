"""Config-driven runs and the main job, end to end on a tiny slice of the embedded data."""

import json

import pytest

from tflbnn.cli import main
from tflbnn.commands.demo import demo_config_path
from tflbnn.experiment import (RECIPES, RunConfig, check_same_settings, load_config,
                               run_experiment)

#: Floors of test_train_then_deploy_writes_every_artifact (measured ranges in its docstring):
#: deploy_run's parity floor, and images by which the Keras and LCE accuracies may differ.
FLOOR_AGREEMENT = 0.99
MAX_IMAGES = 3


def write_config(tmp_path, recipe_kind="binary", **recipe):
    recipe_lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in recipe.items())
    text = f"""
name = "tiny"
output_dir = "{tmp_path}"
[model]
name = "reactnet_resnet18"
width = 0.125
stem = "small"
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 256
limit_test = 200
[recipe]
kind = "{recipe_kind}"
batch_size = 64
epochs = 1
lr_offset = 0
{recipe_lines}
"""
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_packaged_demo_config_is_valid():
    config = load_config(demo_config_path())
    assert config.model == "reactnet_a" and config.recipe["kind"] == "two_step"
    assert config.data == {"kind": "fashion_mnist", "source": "embedded"}


@pytest.mark.parametrize("change,message", [
    ({"colour": "blue"}, "unknown top-level key"),
    ({"recipe": {"kind": "three_step"}}, "\\[recipe\\] kind must be one of"),
    ({"recipe": {"epochs": 0}}, "epochs must be an integer >= 1"),
    ({"recipe": {"learning_rat": 1e-3}}, "unknown \\[recipe\\] key"),
    ({"model": {"width": 0.5}}, "needs a 'name'"),
    ({"name": "../escape"}, "plain directory name"),
])
def test_invalid_configs_name_the_problem(change, message):
    config = {"name": "x", "model": {"name": "reactnet_a"}, "data": {"kind": "fashion_mnist"}}
    config.update(change)
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(config, source="my.toml")


def test_run_folder_trained_with_other_settings_is_refused(tmp_path):
    config = load_config(write_config(tmp_path, learning_rate=0.01))
    (config.run_dir / "binary").mkdir(parents=True)
    (config.run_dir / "binary" / "stage.json").write_text("{}")  # a finished stage
    saved = json.loads(json.dumps(config.as_dict(), default=str))
    saved["recipe"]["learning_rate"] = 0.5
    saved["model"]["width"] = 0.25
    del saved["recipe"]["seed"]  # a key added to the defaults since: not compared
    (config.run_dir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"tiny: .* holds a run trained with other settings "
                                         r"\(\[model\] width 0.25 -> 0.125; \[recipe\] "
                                         r"learning_rate 0.5 -> 0.01\); give this run another"):
        run_experiment(config, verbose=0)
    assert sorted(path.name for path in config.run_dir.iterdir()) == ["binary", "config.json"]
    assert json.loads((config.run_dir / "config.json").read_text()) == saved
    saved = json.loads(json.dumps(config.as_dict(), default=str))
    del saved["recipe"]["seed"]
    (config.run_dir / "config.json").write_text(json.dumps(saved))
    assert check_same_settings(config) == []  # the same settings, one key older: accepted
    (config.run_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the saved settings"):
        check_same_settings(config)


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed")
    with pytest.raises(ValueError, match="broken.toml"):
        load_config(broken)


def test_train_help_names_every_recipe_kind(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    missing = [kind for kind in RECIPES if kind not in help_text]
    assert not missing, f"tflbnn train --help does not name the recipe kind(s) {missing}"


def test_train_cli_reports_bad_model_option_without_training(tmp_path, capsys):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('stem = "small"', 'stem = "huge"'))
    assert main(["train", str(path)]) == 2
    assert "stem must be one of" in capsys.readouterr().err
    assert not (tmp_path / "tiny" / "model.keras").exists()


def test_train_then_deploy_writes_every_artifact(tmp_path, capsys, test_seed, spread):
    """Trains one epoch of a width-1/8 ReActNet-ResNet18 on 256 images and deploys it.

    Why the parity figures cannot flake: the run is seeded (recipe ``seed`` = ``1 + test_seed``,
    op determinism and fixed threads from tests/conftest.py), so a given seed and thread count
    always computes the same numbers. Measured over seeds 0-4 at 2 threads and seed 0 at 1
    thread (tests/spread_measurements.json): the LCE interpreter agreed with Keras on
    99.5-100 % of the 200 test images (0-1 image apart) and the two accuracies were equal
    every time. The floor is deploy_run's own 99 % (it raises ParityError below it, and takes
    no other floor), one spread below the lowest; recipe seed 0 was not used as the base
    because at 2 threads it sits exactly on that floor (99.0 %). The accuracy difference may
    be at most 3 images, two spreads above the largest measured disagreement (1 image). The
    accuracy itself is not asserted (one epoch on 256 images).
    """
    from tflbnn.deploy import deploy_run

    path = write_config(tmp_path, seed=1 + test_seed)
    assert main(["train", str(path), "--quiet"]) == 0
    run_dir = tmp_path / "tiny"
    for name in ("model.keras", "model.json", "training_curves.png", "results.json",
                 "binary/history.csv", "binary/curves.png"):
        assert (run_dir / name).is_file(), name
    metadata = json.loads((run_dir / "model.json").read_text())
    assert metadata["labels"][0] == "T-shirt/top"
    assert metadata["preprocessing"]["height"] == 28

    # A second run reuses the finished stage instead of training again.
    result = run_experiment(load_config(path), verbose=0)
    assert "already trained" in capsys.readouterr().out
    assert [row["epoch"] for row in result.final_history()] == list(range(
        result.stages["binary"]["epochs"]))

    metrics = deploy_run(result, bench_runs=3)
    coverage = metrics["conversion"]["coverage"]
    assert coverage["num_converted"] == coverage["num_binary_layers"] == 16
    parity = metrics["conversion"]["parity"]
    assert spread("top1_agreement", parity["top1_agreement"]) >= FLOOR_AGREEMENT
    # The accuracies are computed on the parity images, so they can differ by at most the
    # share of images on which the two disagree; a near tie can tip one image either way.
    accuracy = metrics["accuracy"]
    difference = spread("accuracy_difference",
                        abs(accuracy["binary_lce"] - accuracy["binary_keras"]))
    assert difference <= 1 - parity["top1_agreement"] + 1e-9
    assert difference * parity["num_images"] <= MAX_IMAGES + 1e-9
    size = metrics["conversion"]["size"]
    assert size["lce_bytes"] == (run_dir / "model.tflite").stat().st_size
    assert size["float_bytes"] == (run_dir / "model.float.tflite").stat().st_size
    for name in ("metrics.json", "report.md", "comparison.png", "labels.txt",
                 "model.float.tflite"):
        assert (run_dir / name).is_file(), name
    assert "LceBconv2d" in (run_dir / "report.md").read_text()


def test_models_cli_lists_and_profiles(capsys):
    assert main(["models"]) == 0
    assert "reactnet_a:" in capsys.readouterr().out
    assert main(["models", "reactnet_resnet18"]) == 0
    assert "OPs 1.64e+08" in capsys.readouterr().out
    assert main(["models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
