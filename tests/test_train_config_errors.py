"""Wrongly typed or impossible ``tflbnn train`` / ``tflbnn search`` configs: a message, no traces.

Every case runs the CLI and checks exit code 2, a message that names the config file and the
offending field, no traceback, and that nothing was written (the run folder does not exist).
No case trains: each one is refused before the first epoch.
"""

import json

import pytest

from tflbnn import experiment
from tflbnn.cli import main
from tflbnn.experiment import load_config, run_experiment

TRAIN_CONFIG = """
name = "tiny"
output_dir = "{out}"
[model]
name = "reactnet_resnet18"
width = 0.125
stem = "small"
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 64
limit_test = 32
[recipe]
kind = "binary"
batch_size = 32
epochs = 1
"""


def _top_level(text, section, line):
    """``text`` with the table ``[section]`` replaced by the top-level ``line``."""
    start = text.index(f"[{section}]\n")
    end = text.find("\n[", start + 1)
    text = text[:start] + (text[end + 1:] if end >= 0 else "")
    return line + "\n" + text


def _train_config(tmp_path, old=None, new=None):
    text = TRAIN_CONFIG.format(out=tmp_path / "out")
    if old is not None and old.startswith("top:"):
        text = _top_level(text, old[4:], new)
    elif old is not None:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def _refused(capsys, argv, *expected):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    message = captured.err
    assert message.startswith(f"tflbnn {argv[0]}: error: "), message
    for part in expected:
        assert part in message, (part, message)
    return message


@pytest.mark.parametrize("old,new,expected", [
    ("epochs = 1", 'epochs = 1\nlearning_rate = "x"',
     "[recipe] learning_rate must be a positive number, got 'x'"),
    ("epochs = 1", "epochs = 1\nlearning_rate = nan", "[recipe] learning_rate"),
    ("epochs = 1", "epochs = -2", "[recipe] epochs must be an integer >= 1, got -2"),
    ("epochs = 1", "epochs = 0", "[recipe] epochs must be an integer >= 1, got 0"),
    ("epochs = 1", "epochs = true", "[recipe] epochs must be an integer >= 1, got True"),
    ("epochs = 1", "epochs = 1.5", "[recipe] epochs must be an integer >= 1, got 1.5"),
    ("epochs = 1", 'epochs = 1\nseed = "0"', "[recipe] seed must be an integer >= 0"),
    ("epochs = 1", "epochs = 1\ndistill = 1", "[recipe] distill must be true or false"),
    ("epochs = 1", "epochs = 1\nlr_offset = true", "[recipe] lr_offset must be one of (0, 1)"),
    ("epochs = 1", "epochs = 1\nteacher = 5", "[recipe] teacher must be a non-empty string"),
    ('kind = "binary"', "kind = 3", "[recipe] kind must be one of"),
    ("epochs = 1", "epochs = 1\nepoch = 1", "unknown [recipe] key(s) ['epoch']"),
    ("top:recipe", "recipe = [1]", "[recipe] must be a table of keys and values, got list [1]"),
    ("top:model", 'model = "reactnet_a"', "[model] must be a table of keys and values, got str"),
    ("top:data", "data = 5", "[data] must be a table of keys and values, got int 5"),
    ("[recipe]\n", "[[recipe]]\n", "[recipe] must be a table of keys and values, got list"),
    ("[data]\nkind", "data = 5\n[data_]\nkind", "unknown top-level key(s) ['data_']"),
    ("width = 0.125", 'width = "abc"', "[model] width must be a number, got 'abc'"),
    ("width = 0.125", "width = true", "[model] width must be a number, got True"),
    ("width = 0.125", "widht = 0.125", "[model] unknown option(s) ['widht']"),
    ('name = "reactnet_resnet18"', "name = 18", "[model] name must be a non-empty string"),
    ('name = "tiny"', "name = 7", "name must be a non-empty string, got 7"),
    ('kind = "fashion_mnist"', 'kind = "mnist"', "[data] data spec key 'kind'"),
    ("batch_size = 32", "batch_size = 100",
     "[recipe] batch_size 100 is larger than the 64 training examples"),
])
def test_bad_train_config_values_are_named_and_nothing_is_written(tmp_path, capsys, old, new,
                                                                  expected):
    path = _train_config(tmp_path, old, new)
    _refused(capsys, ["train", str(path)], str(path), expected)
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    path = _train_config(tmp_path)
    (tmp_path / "out").write_text("not a folder")
    _refused(capsys, ["train", str(path)], str(tmp_path / "out"), "is a file, not a folder")
    assert (tmp_path / "out").read_text() == "not a folder"
    (tmp_path / "out").unlink()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tiny").write_text("a file named like the run")
    _refused(capsys, ["train", str(path)], str(tmp_path / "out" / "tiny"),
             "a file of that name exists")


def test_bad_teacher_path_writes_nothing_so_the_corrected_run_is_not_blocked(tmp_path, capsys,
                                                                             monkeypatch):
    missing = tmp_path / "missing_teacher.keras"
    path = _train_config(tmp_path, "epochs = 1", f'epochs = 1\nteacher = "{missing}"')
    _refused(capsys, ["train", str(path)], str(path), str(missing), "is not a file")
    assert not (tmp_path / "out").exists()

    # The corrected config (no teacher) is accepted and reaches training.
    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(experiment, "train_stage", reached)
    with pytest.raises(Reached):
        run_experiment(load_config(_train_config(tmp_path)), verbose=0)


def test_run_without_a_finished_stage_starts_over_with_new_settings(tmp_path, capsys,
                                                                    monkeypatch):
    """A run stopped before any stage finished does not block a rerun with changed settings."""
    config = load_config(_train_config(tmp_path, "epochs = 1", "epochs = 1\nlearning_rate = 0.5"))
    run_dir = config.run_dir
    stage_dir = run_dir / "binary"
    (stage_dir / "backup").mkdir(parents=True)
    (stage_dir / "backup" / "state.json").write_text('{"epochs_done": 1, "checkpoint": "x"}')
    (stage_dir / "history.csv").write_text("epoch,loss\n0,2.0\n")
    (stage_dir / "last.keras").write_bytes(b"partial")
    (run_dir / "notes.txt").write_text("mine")  # not the run's: left alone
    (run_dir / "config.json").write_text(json.dumps(config.as_dict(), default=str))

    corrected = load_config(_train_config(tmp_path, "epochs = 1",
                                          "epochs = 1\nlearning_rate = 0.01"))
    stages = []

    class Reached(Exception):
        pass

    def reached(model, train_data, test_data, *, stage_dir, **kwargs):
        stages.append((stage_dir, kwargs["learning_rate"]))
        raise Reached

    monkeypatch.setattr(experiment, "train_stage", reached)
    with pytest.raises(Reached):
        run_experiment(corrected, verbose=0)
    assert stages == [(stage_dir, 0.01)]
    assert "learning_rate 0.5 -> 0.01" in capsys.readouterr().out
    assert sorted(path.name for path in stage_dir.iterdir()) == []
    assert (run_dir / "notes.txt").read_text() == "mine"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["recipe"]["learning_rate"] == 0.01


SEARCH_CONFIG = """
name = "tiny_search"
output_dir = "{out}"
[model]
width = 0.25
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 64
limit_test = 32
[supernet]
batch_size = 16
step1_epochs = 0
step2_epochs = 1
holdout = 16
[search]
max_ops_fraction = 0.9
population = 4
generations = 1
parents = 2
mutations = 1
crossovers = 1
random_baseline = 0
"""


@pytest.mark.parametrize("old,new,expected", [
    ("population = 4", "population = true", "[search] population must be an integer >= 1"),
    ("population = 4", 'population = "4"', "[search] population must be an integer >= 1"),
    ("max_ops_fraction = 0.9", 'max_ops_fraction = "x"',
     "[search] max_ops_fraction must be a positive number, got 'x'"),
    ("random_baseline = 0", "random_baseline = 0\nbaseline_min_fraction = 2",
     "[search] baseline_min_fraction must be a number in [0, 1], got 2"),
    ("random_baseline = 0", "random_baseline = 0\nmutation_probability = 0",
     "[search] mutation_probability must be a number in (0, 1], got 0"),
    ("batch_size = 16", 'batch_size = 16\nlearning_rate = "x"',
     "[supernet] learning_rate must be a positive number, got 'x'"),
    ("holdout = 16", "holdout = 0", "[supernet] holdout must be an integer >= 1, got 0"),
    ("step2_epochs = 1", "step2_epochs = false", "[supernet] step2_epochs must be an integer"),
    ("top:supernet", "supernet = [1]", "[supernet] must be a table of keys and values"),
    ("top:search", "search = 0.5", "[search] must be a table of keys and values"),
    ("width = 0.25", 'width = "abc"', "[model] width must be a positive number, got 'abc'"),
    ("width = 0.25", "width = 0.25\nstem_stride = 3", "[model] stem_stride must be one of"),
    ("[model]\nwidth = 0.25\n", 'model = "binary_mobilenet"\n', "[model] must be a table"),
    ("random_baseline = 0", "random_baseline = 0\n[retrain]\nlearning_rate = \"x\"",
     "[retrain]: [recipe] learning_rate must be a positive number"),
])
def test_bad_search_config_values_are_named_and_nothing_is_written(tmp_path, capsys, old, new,
                                                                   expected):
    text = SEARCH_CONFIG.format(out=tmp_path / "out")
    if old.startswith("top:"):
        text = _top_level(text, old[4:], new)
    else:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "search.toml"
    path.write_text(text)
    _refused(capsys, ["search", str(path)], str(path), expected)
    assert not (tmp_path / "out").exists()


def test_search_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "search.toml"
    path.write_text(SEARCH_CONFIG.format(out=tmp_path / "out"))
    (tmp_path / "out").write_text("not a folder")
    _refused(capsys, ["search", str(path)], "is a file, not a folder")
