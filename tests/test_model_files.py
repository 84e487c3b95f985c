"""The one model loader: booby-trapped files are refused, named, and run nothing.

Each trap would run code (write a marker file) if Keras loaded it unchecked; the tests show it
is armed where that is safe to show, then that every entry point refuses it with exit code 2, a
message naming the user's file, and no marker. Nothing is trained: the resume tests plant a
finished stage (``stage.json`` + ``model.keras``, as ``train_stage`` leaves one) whose model
is the trap.
"""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2; must come before TensorFlow)
import larq as lq
import tensorflow as tf

from tflbnn.bimlp import wave_block
from tflbnn.cli import main
from tflbnn.model_files import (MAX_CONFIG_BYTES, ModelFileError, load_keras_model,
                                load_weights)
from tflbnn.models import get_model


# --- trap makers ----------------------------------------------------------------------------

def tiny_model(name="tiny"):
    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(3, activation="relu", name="dense")(inputs)
    outputs = tf.keras.layers.Dense(2, name="logits")(hidden)
    return tf.keras.Model(inputs, outputs, name=name)


def lambda_model(marker):
    def trap(x, marker=str(marker)):
        with open(marker, "w") as handle:
            handle.write("code ran")
        return x

    inputs = tf.keras.Input((4,))
    outputs = tf.keras.layers.Lambda(trap, name="trap")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(outputs))


def hdf5_lambda_trap(tmp_path, name="teacher.h5"):
    """A legacy HDF5 model whose Lambda writes ``ran`` when Keras rebuilds it."""
    marker = tmp_path / "ran"
    path = tmp_path / name
    model = lambda_model(marker)
    marker.unlink()  # building the model called the Lambda once
    model.save(path, save_format="h5")
    assert not marker.exists()
    return path, marker


def read_members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def with_config(source, path, change):
    members = read_members(source)
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config)
    return write_members(path, members)


def layer_config(config, name):
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def named(module, name, function=True):
    if function:
        return {"module": module, "class_name": "function", "config": name,
                "registered_name": name}
    return {"module": module, "class_name": name, "config": {}, "registered_name": None}


@pytest.fixture
def good_keras(tmp_path):
    path = tmp_path / "good.keras"
    tiny_model().save(path)
    return path


@pytest.fixture
def import_trap(tmp_path, monkeypatch):
    """An importable module that writes ``imported`` when imported (any module on sys.path
    with side effects would do for an attacker)."""
    marker = tmp_path / "imported"
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "tflbnn_test_trap.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Trap:\n"
        "    @classmethod\n"
        "    def from_config(cls, config):\n"
        "        return cls()\n")
    monkeypatch.syspath_prepend(str(folder))
    return marker


# --- the loader itself ----------------------------------------------------------------------

def test_a_saved_model_loads_with_its_weights(good_keras):
    model = tiny_model()
    model.set_weights([np.full(w.shape, i + 0.5, np.float32) for i, w in
                       enumerate(model.get_weights())])
    model.save(good_keras)
    loaded = load_keras_model(good_keras)
    for expected, got in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize("name, options", [
    ("reactnet_a", {"width": 0.125, "stem_stride": 2}),
    ("n2uq_resnet18", {"width": 0.125, "stem": "small"}),
    ("s3_resnet18", {"width": 0.125, "stem": "small"}),
    ("binary_mobilenet", {"width": 0.125, "groups": (1,) * 11 + (2, 4), "supernet": True,
                          "max_groups": 4}),
])
def test_zoo_models_with_every_custom_layer_still_load(tmp_path, name, options):
    model = get_model(name, input_shape=(16, 16, 1), num_classes=3, **options)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_keras_model(path)
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(images, training=False), model(images, training=False),
                               rtol=1e-5, atol=1e-5)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]


def test_a_bimlp_block_with_all_its_custom_layers_loads(tmp_path):
    """One WaveBlock holds every BiMLP layer (the whole bimlp_s has ~1000 layers: slow)."""
    inputs = tf.keras.Input((8, 8, 64))
    model = tf.keras.Model(inputs, wave_block(inputs, norm="group", drop_path_rate=0.1,
                                              name="w"))
    path = tmp_path / "wave.keras"
    model.save(path)
    loaded = load_keras_model(path)
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 64)).astype(np.float32)
    np.testing.assert_allclose(loaded(images, training=False), model(images, training=False),
                               rtol=1e-5, atol=1e-5)
    names = {type(layer).__name__ for layer in loaded.layers}
    assert {"BinarySign", "BranchMerge", "BranchReweight", "DropPath", "GroupedQuantConv2D",
            "PhaseModulation", "UniShortcut", "LearnableBias", "RPReLU"} <= names


def test_larq_quantizers_given_as_names_and_objects_load(tmp_path):
    inputs = tf.keras.Input((4,))
    x = lq.layers.QuantDense(3, input_quantizer="ste_sign",
                             kernel_quantizer=lq.quantizers.SteSign(),
                             kernel_constraint="weight_clip", name="a")(inputs)
    x = lq.layers.QuantDense(2, input_quantizer="approx_sign",
                             kernel_quantizer=tflbnn.ReActNetWeightSign(), name="b")(x)
    path = tmp_path / "larq.keras"
    tf.keras.Model(inputs, x).save(path)
    loaded = load_keras_model(path)
    assert isinstance(loaded.get_layer("b").kernel_quantizer, tflbnn.ReActNetWeightSign)


def test_tf_math_ops_in_a_functional_model_load_but_effectful_ones_do_not(tmp_path):
    inputs = tf.keras.Input((4,))
    path = tmp_path / "ops.keras"
    tf.keras.Model(inputs, tf.nn.relu(inputs[:, :3] * 2.0 + 1.0)).save(path)
    assert load_keras_model(path)(np.ones((1, 4), np.float32)).numpy().tolist() == [[3.0] * 3]

    def to_write_file(config):
        layer = next(layer for layer in config["config"]["layers"]
                     if layer["class_name"] == "TFOpLambda")
        layer["config"]["function"] = "io.write_file"

    bad = with_config(path, tmp_path / "write.keras", to_write_file)
    with pytest.raises(ModelFileError, match=r"write\.keras.*'io\.write_file'.*not a "
                                             r"tensor-math op"):
        load_keras_model(bad)


def test_legacy_hdf5_lambda_trap_is_armed_and_refused(tmp_path):
    path, marker = hdf5_lambda_trap(tmp_path)
    with pytest.raises(ModelFileError, match=rf"{path}: legacy HDF5 model: not loaded"):
        load_keras_model(path)
    assert not marker.exists()
    # The trap is real: Keras' own loader runs the Lambda, even in safe mode.
    tf.keras.models.load_model(path, safe_mode=True, compile=False)
    assert marker.exists()


def test_hdf5_renamed_keras_is_refused_as_hdf5(tmp_path):
    h5, marker = hdf5_lambda_trap(tmp_path)
    renamed = tmp_path / "model.keras"
    h5.rename(renamed)
    with pytest.raises(ModelFileError, match=rf"{renamed}: legacy HDF5 model"):
        load_keras_model(renamed)
    assert not marker.exists()


def test_keras_lambda_is_refused_naming_the_layer(tmp_path):
    marker = tmp_path / "ran"
    model = lambda_model(marker)
    marker.unlink()
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelFileError, match=rf"{path}: layer 'trap'.*Lambda"):
        load_keras_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("target, place", [
    (("os", "system"), "activation"),
    (("subprocess", "Popen"), "kernel_initializer"),
    (("builtins", "exec"), "kernel_regularizer"),
    (("builtins", "eval"), "activation"),
    (("os", "system"), "bias_constraint"),
    (("subprocess", "Popen"), "layer"),
    (("tflbnn.experiment", "run_experiment"), "activation"),
    (("keras.models", "load_model"), "activation"),
])
def test_configs_naming_code_are_refused_naming_file_layer_and_name(good_keras, tmp_path,
                                                                    target, place):
    module, name = target
    path = tmp_path / "hostile.keras"

    def plant(config):
        dense = layer_config(config, "dense")
        if place == "layer":
            dense.update(module=module, class_name=name, registered_name=name)
        else:
            dense["config"][place] = named(module, name)

    with_config(good_keras, path, plant)
    with pytest.raises(ModelFileError) as refused:
        load_keras_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: layer 'dense'"), message
    assert name in message and "not loaded because loading it could run code" in message


@pytest.mark.parametrize("place", ["model", "quantizer", "layer", "nested"])
def test_a_module_named_in_the_config_is_never_imported(tmp_path, import_trap, place):
    inputs = tf.keras.Input((4,))
    outputs = lq.layers.QuantDense(2, input_quantizer="ste_sign", name="q")(inputs)
    source = tmp_path / "q.keras"
    tf.keras.Model(inputs, outputs).save(source)
    path = tmp_path / "imports.keras"
    spec = named("tflbnn_test_trap", "Trap", function=False)

    def plant(config):
        layer = layer_config(config, "q")
        if place == "model":
            config.update(module="tflbnn_test_trap", class_name="Trap", registered_name="Trap")
        elif place == "quantizer":
            layer["config"]["input_quantizer"] = spec
        elif place == "layer":
            layer.update(module="tflbnn_test_trap", class_name="Trap", registered_name="Trap")
        else:
            layer["config"]["kernel_initializer"] = {
                "module": "keras.initializers", "class_name": "GlorotUniform",
                "config": {"seed": spec}, "registered_name": None}

    with_config(source, path, plant)
    where = "layer 'model" if place == "model" else "layer 'q'"
    with pytest.raises(ModelFileError, match=rf"{where}.*tflbnn_test_trap"):
        load_keras_model(path)
    assert not import_trap.exists()


def test_the_import_trap_is_armed(tmp_path, import_trap):
    """What the loader prevents: Keras imports the module a config names, even in safe mode."""
    inputs = tf.keras.Input((4,))
    source = tmp_path / "plain.keras"
    tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="d")(inputs)).save(source)
    path = with_config(source, tmp_path / "armed.keras", lambda config: config.update(
        module="tflbnn_test_trap", class_name="Trap", registered_name="Trap"))
    with pytest.raises(Exception):
        tf.keras.models.load_model(path, safe_mode=True, compile=False)
    assert import_trap.exists()


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(class_name="__lambda__"), "'__lambda__'.*special object"),
    (lambda c: layer_config(c, "dense")["config"].update(
        activation={"class_name": "__numpy__", "config": {"value": [1], "dtype": "object"}}),
     "dtype 'object'"),
    (lambda c: layer_config(c, "dense").update(class_name="Nope", module="keras.layers"),
     "keras.layers.Nope.*not a Keras built-in"),
    (lambda c: layer_config(c, "dense").update(class_name="StringLookup"),
     "StringLookup.*reads files"),
])
def test_other_unsafe_or_unknown_objects_are_refused(good_keras, tmp_path, change, message):
    path = with_config(good_keras, tmp_path / "odd.keras", change)
    with pytest.raises(ModelFileError, match=message):
        load_keras_model(path)


def test_invalid_json_config_names_config_json_and_the_file(good_keras, tmp_path):
    members = read_members(good_keras)
    members["config.json"] = b'{"class_name": "Functional", '
    path = write_members(tmp_path / "broken.keras", members)
    with pytest.raises(ModelFileError, match=rf"{path}: config.json inside it is not valid JSON"):
        load_keras_model(path)


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "corrupt or truncated"),
    (lambda data: data[:100], "corrupt or truncated"),
    (lambda data: data[:40] + bytes(b ^ 0xFF for b in data[40:1000]) + data[1000:],
     "corrupt or truncated"),
    (lambda data: b"", "an empty file"),
    (lambda data: b"\x80\x04\x95" + data[3:200], "a Python pickle.*unpickling runs code"),
    (lambda data: b"\x00\x00\x00\x00TFL3" + data[8:200], "a TFLite model"),
])
def test_damaged_and_foreign_files_are_refused(good_keras, tmp_path, damage, message):
    path = tmp_path / "damaged.keras"
    path.write_bytes(damage(good_keras.read_bytes()))
    with pytest.raises(ModelFileError, match=rf"{path}: .*{message}"):
        load_keras_model(path)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(good_keras, tmp_path):
    members = read_members(good_keras)
    members["config.json"] = members["config.json"] + b" " * MAX_CONFIG_BYTES
    path = write_members(tmp_path / "bomb.keras", members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < MAX_CONFIG_BYTES // 100
    with pytest.raises(ModelFileError, match=rf"{path}: config.json inside it unpacks to "
                                             r"\d+ bytes.*zip bomb"):
        load_keras_model(path)


def test_unexpected_members_pickled_weights_and_savedmodel_are_refused(good_keras, tmp_path):
    members = read_members(good_keras)
    npz = dict(members)
    npz["model.weights.npz"] = npz.pop("model.weights.h5")
    path = write_members(tmp_path / "npz.keras", npz)
    with pytest.raises(ModelFileError, match="'model.weights.npz'.*pickled"):
        load_keras_model(path)
    path = write_members(tmp_path / "extra.keras", {**members, "assets/x.py": b"print(1)"})
    with pytest.raises(ModelFileError, match=r"holds 'assets/x.py'"):
        load_keras_model(path)
    saved = tmp_path / "saved_model"
    tiny_model().save(saved, save_format="tf")
    with pytest.raises(ModelFileError, match=rf"{saved}: a TensorFlow SavedModel folder"):
        load_keras_model(saved)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_keras_model(tmp_path / "missing.keras")


def hdf5_bytes(fill):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        fill(handle)
    return buffer.getvalue()


@pytest.mark.parametrize("fill, message", [
    (lambda f: f.create_dataset("vars/0", data=np.array([b"x"], dtype=object),
                                dtype=h5py.string_dtype()), "dtype object"),
    (lambda f: f.__setitem__("vars/0", h5py.ExternalLink("/etc/passwd.h5", "/x")),
     "links '/vars/0'.*ExternalLink"),
    (lambda f: f.create_dataset("vars/0", shape=(2**20, 2**20), dtype="f4", chunks=(64, 64),
                                compression="gzip"), "more than \\d+ bytes"),
])
def test_weights_inside_the_archive_must_be_plain_arrays(good_keras, tmp_path, fill, message):
    members = read_members(good_keras)
    members["model.weights.h5"] = hdf5_bytes(fill)
    path = write_members(tmp_path / "weights.keras", members)
    with pytest.raises(ModelFileError, match=rf"{path}: model.weights.h5 inside it.*{message}"):
        load_keras_model(path)


def test_load_weights_reads_arrays_and_names_the_mismatch(tmp_path):
    source = tiny_model()
    source.set_weights([np.full(w.shape, 2.0, np.float32) for w in source.get_weights()])
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    target = tiny_model()
    load_weights(target, path)
    for expected, got in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(expected, got)

    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(5, name="dense")(inputs)
    other = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="logits")(hidden))
    before = other.get_weights()
    with pytest.raises(ModelFileError, match=rf"{path}: .*dense"):
        load_weights(other, path)
    for expected, got in zip(before, other.get_weights()):  # left as it was
        np.testing.assert_array_equal(expected, got)

    h5, marker = hdf5_lambda_trap(tmp_path)
    with pytest.raises(ModelFileError, match=rf"{h5}: an HDF5 file not named .weights.h5"):
        load_weights(target, h5)
    keras_file = tmp_path / "m.keras"
    source.save(keras_file)
    with pytest.raises(ModelFileError, match=rf"{keras_file}: a zip archive, not a Keras "
                                             r"weights file"):
        load_weights(target, keras_file)
    assert not marker.exists()


# --- every entry point ----------------------------------------------------------------------

def refused(capsys, argv, path, command):
    """Run ``tflbnn`` in-process; assert exit 2, one error line naming ``path``, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"tflbnn {command}: error:" in err and str(path) in err, err
    assert "Traceback" not in err
    return err


def test_train_refuses_a_trapped_teacher_before_training(tmp_path, capsys):
    teacher, marker = hdf5_lambda_trap(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(f"""
name = "teach"
output_dir = "{tmp_path / 'runs'}"
[model]
name = "reactnet_resnet18"
width = 0.125
stem = "small"
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 64
limit_test = 16
[recipe]
kind = "bop"
epochs = 1
batch_size = 32
teacher = "{teacher}"
""")
    err = refused(capsys, ["train", str(config), "--quiet"], teacher, "train")
    assert "legacy HDF5 model" in err
    assert not marker.exists()
    assert not [path for path in (tmp_path / "runs").rglob("*") if path.is_file()]


@pytest.mark.parametrize("trap", ["hdf5", "lambda", "system"])
def test_convert_refuses_trapped_models(tmp_path, capsys, good_keras, trap):
    marker = tmp_path / "ran"
    if trap == "hdf5":
        path, marker = hdf5_lambda_trap(tmp_path, "model.keras")
    elif trap == "lambda":
        path = tmp_path / "model.keras"
        lambda_model(marker).save(path)
        marker.unlink()
    else:
        path = with_config(good_keras, tmp_path / "model.keras", lambda c: layer_config(
            c, "dense")["config"].update(activation=named("os", "system")))
    out = tmp_path / "out"
    refused(capsys, ["convert", str(path), "-o", str(out / "m.tflite")], path, "convert")
    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("trap", ["hdf5", "keras"])
def test_tflite_commands_refuse_a_model_file_without_loading_it(tmp_path, capsys, good_keras,
                                                                trap):
    marker = tmp_path / "ran"
    if trap == "hdf5":
        path, marker = hdf5_lambda_trap(tmp_path, "model.tflite")
    else:
        path = tmp_path / "model.tflite"
        lambda_model(marker).save(tmp_path / "lambda.keras")
        marker.unlink()
        (tmp_path / "lambda.keras").rename(path)
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("L", (28, 28)).save(image)
    refused(capsys, ["classify", "--model", str(path), str(image)], path, "classify")
    app = tmp_path / "app"
    manifest = app / "app" / "src" / "main" / "AndroidManifest.xml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("<manifest/>")
    refused(capsys, ["app-model", str(path), "--app-dir", str(app)], path, "app-model")
    assert not marker.exists()
    assert [p for p in app.rglob("*") if p.is_file()] == [manifest]


TINY_RUN = """
name = "resume"
output_dir = "{out}"
[model]
name = "reactnet_resnet18"
width = 0.125
stem = "small"
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 64
limit_test = 16
[recipe]
kind = "binary"
epochs = 1
batch_size = 32
"""


def finished_stage(stage, checkpoint_maker):
    """A stage folder as ``train_stage`` leaves a finished stage, its model made by
    ``checkpoint_maker(path)``."""
    stage.mkdir(parents=True)
    (stage / "stage.json").write_text(json.dumps(
        {"stage": stage.name, "test_loss": 1.0, "test_accuracy": 0.5, "seconds": 1.0}))
    checkpoint = stage / "model.keras"
    checkpoint_maker(checkpoint)
    return checkpoint


def test_experiment_resume_refuses_a_trapped_stage_checkpoint(tmp_path, capsys):
    """A finished stage of the run (reused on a rerun) whose model.keras is a legacy HDF5
    Lambda trap."""
    h5, marker = hdf5_lambda_trap(tmp_path)
    checkpoint = finished_stage(tmp_path / "runs" / "resume" / "binary", h5.replace)
    config = tmp_path / "run.toml"
    config.write_text(TINY_RUN.format(out=tmp_path / "runs"))
    err = refused(capsys, ["train", str(config), "--quiet"], checkpoint, "train")
    assert "legacy HDF5 model" in err
    assert not marker.exists()


SEARCH = """
name = "search"
output_dir = "{out}"
[model]
width = 0.125
stem_stride = 2
[data]
kind = "fashion_mnist"
source = "embedded"
limit_train = 96
limit_test = 16
[supernet]
batch_size = 32
step1_epochs = 0
step2_epochs = 1
holdout = 32
calibration_batches = 1
eval_batch_size = 32
[search]
population = 2
generations = 1
parents = 1
mutations = 1
crossovers = 0
random_baseline = 1
max_ops_fraction = 0.9
baseline_min_fraction = 0.5
"""


def test_group_search_resume_refuses_a_trapped_supernet_checkpoint(tmp_path, capsys):
    """A finished supernet stage (as a search leaves it) whose model.keras is a trap; the
    search reuses finished stages, so it must refuse the file before training anything."""
    marker = tmp_path / "ran"

    def trap(path):
        lambda_model(marker).save(path)
        marker.unlink()

    checkpoint = finished_stage(tmp_path / "runs" / "search" / "search" / "supernet_step2", trap)
    config = tmp_path / "search.toml"
    config.write_text(SEARCH.format(out=tmp_path / "runs"))
    err = refused(capsys, ["search", str(config), "--quiet"], checkpoint, "search")
    assert "Lambda" in err
    assert not marker.exists()
