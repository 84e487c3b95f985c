"""The convert, bench and classify commands, run in-process through tflbnn.cli.main."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tflbnn import reactnet_block
from tflbnn.cli import main
from tflbnn.metadata import ModelMetadata, Preprocessing

LABELS = [f"class_{i}" for i in range(10)]
PARITY_COUNT = 24  # random-pixel parity images of the model_dir fixture
PHOTOS = Path(__file__).parent / "data" / "photos"
HAS_DATA = importlib.util.find_spec("tflbnn.data") is not None


def has_data_api():
    if not HAS_DATA:
        return False
    import tflbnn.data

    return all(hasattr(tflbnn.data, name) for name in ("load_image", "preprocess", "load_data"))


def tiny_model(seed):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = reactnet_block(x, 32, name="b1")
    x = reactnet_block(x, 64, stride=2, name="b2")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="cli_tiny")


PREPROCESSING = Preprocessing(16, 16, 1, (0.5,), (0.25,))


def one_flip_floor(count):
    """``--min-top1-agreement`` for ``count`` parity images: one arg-max may change.

    The models here are untrained: their logits have near ties, and a binary activation within
    float rounding of zero can flip a sign, so one image in a few dozen may change its arg-max
    without anything being wrong. The default floor (99 %) would fail the conversion on it.
    """
    return (count - 1) / count


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, test_seed):
    folder = tmp_path_factory.mktemp("cli")
    model = tiny_model(7 + 10 * test_seed)
    model.save(folder / "model.keras")
    ModelMetadata(labels=LABELS, preprocessing=PREPROCESSING, name="cli_tiny").save(
        folder / "model.json")
    rng = np.random.default_rng(test_seed)
    pixels = rng.integers(0, 256, size=(PARITY_COUNT, 16, 16, 1), dtype=np.uint8)
    np.save(folder / "parity.npy", PREPROCESSING.normalize(pixels))
    return folder


@pytest.fixture(scope="module")
def converted(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_out") / "tiny.tflite"
    code = main(["convert", str(model_dir / "model.keras"), "-o", str(out),
                 "--parity-images", str(model_dir / "parity.npy"),
                 "--min-top1-agreement", str(one_flip_floor(PARITY_COUNT))])
    assert code == 0
    return out


def test_convert_writes_three_files_and_prints_report(converted, capsys, spread):
    """The converted set, its coverage and its parity on 24 random-pixel images.

    Parity of the untrained model (the ``model_dir`` fixture: seed ``7 + 10 * test_seed``):
    measured over seeds 0-4 at 2 threads and seed 0 at 1 thread
    (tests/spread_measurements.json), top-1 agreement 100 % (spread 0); floor 23/24
    (one_flip_floor).
    """
    folder = converted.parent
    assert sorted(path.name for path in folder.iterdir()) == [
        "tiny.float.tflite", "tiny.json", "tiny.tflite"]
    metadata = ModelMetadata.load(folder / "tiny.json")
    assert metadata.labels == tuple(LABELS)
    conversion = metadata.extra["conversion"]
    coverage = conversion["coverage"]
    assert coverage["num_converted"] == coverage["num_binary_layers"] == 5
    parity = conversion["parity"]
    assert parity["num_images"] == PARITY_COUNT
    assert parity["min_top1_agreement"] == pytest.approx(one_flip_floor(PARITY_COUNT))
    assert spread("top1_agreement", parity["top1_agreement"]) >= one_flip_floor(PARITY_COUNT)
    assert conversion["size"]["lce_bytes"] == (folder / "tiny.tflite").stat().st_size


def test_convert_with_labels_and_no_parity_says_so(model_dir, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    bare = tmp_path / "bare.keras"
    bare.write_bytes((model_dir / "model.keras").read_bytes())  # no sidecar next to it
    out = tmp_path / "out" / "bare.tflite"
    code = main(["convert", str(bare), "-o", str(out), "--labels", str(labels), "--mean", "0.5",
                 "--std", "0.25", "--no-float-reference"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "parity will NOT be checked" in printed and "parity: NOT checked" in printed
    assert "coverage: 5/5" in printed
    assert sorted(path.name for path in out.parent.iterdir()) == ["bare.json", "bare.tflite"]
    conversion = ModelMetadata.load(out.parent / "bare.json").extra["conversion"]
    assert conversion["parity"] is None and "no parity images" in conversion["parity_note"]
    assert ModelMetadata.load(out.parent / "bare.json").preprocessing == PREPROCESSING


@pytest.mark.skipif(not has_data_api(), reason="tflbnn.data (load_data) not available")
def test_convert_defaults_parity_to_recorded_data_set(tmp_path, capsys, test_seed, spread):
    """Without --parity-images, parity runs on the sidecar's recorded data set (30 images).

    Untrained model (seed ``8 + 10 * test_seed``): measured over seeds 0-4 at 2 threads and
    seed 0 at 1 thread (tests/spread_measurements.json), top-1 agreement 100 % (spread 0); floor
    29/30 (one_flip_floor).
    """
    from tflbnn.data import load_data

    spec = {"kind": "fashion_mnist", "source": "embedded", "limit_test": 40}
    bundle = load_data(spec)
    tf.keras.utils.set_random_seed(8 + 10 * test_seed)
    inputs = tf.keras.Input(bundle.preprocessing.input_shape)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = reactnet_block(x, 32, name="b1")
    outputs = tf.keras.layers.Dense(10)(tf.keras.layers.GlobalAveragePooling2D()(x))
    tf.keras.Model(inputs, outputs, name="fm").save(tmp_path / "fm.keras")
    ModelMetadata(labels=bundle.labels, preprocessing=bundle.preprocessing,
                  extra={"data": spec}).save(tmp_path / "fm.json")
    code = main(["convert", str(tmp_path / "fm.keras"), "--parity-count", "30",
                 "--no-float-reference", "--min-top1-agreement", str(one_flip_floor(30))])
    assert code == 0
    parity = ModelMetadata.load(tmp_path / "fm.json").extra["conversion"]["parity"]
    assert parity["num_images"] == 30
    assert spread("top1_agreement", parity["top1_agreement"]) >= one_flip_floor(30)
    assert "recorded data set" in capsys.readouterr().out


@pytest.mark.skipif(not has_data_api(), reason="tflbnn.data (load_image) not available")
def test_convert_takes_parity_images_from_a_folder(model_dir, tmp_path, spread):
    """Parity images read from a folder of photos (5 of them, resized to 16x16 grey).

    Measured over seeds 0-4 at 2 threads and seed 0 at 1 thread
    (tests/spread_measurements.json): top-1 agreement 100 % (spread 0); floor 4/5 (one_flip_floor).
    """
    out = tmp_path / "photos.tflite"
    code = main(["convert", str(model_dir / "model.keras"), "-o", str(out), "--parity-images",
                 str(PHOTOS), "--parity-count", "5", "--no-float-reference",
                 "--min-top1-agreement", str(one_flip_floor(5))])
    assert code == 0
    conversion = ModelMetadata.load(tmp_path / "photos.json").extra["conversion"]
    assert conversion["parity"]["num_images"] == 5  # README.md in the folder is not an image
    assert spread("top1_agreement", conversion["parity"]["top1_agreement"]) >= one_flip_floor(5)
    assert str(PHOTOS) in conversion["parity_note"]


def test_convert_non_model_file_fails_by_name_and_writes_nothing(tmp_path, capsys):
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("this is not a model")
    out = tmp_path / "out.tflite"
    assert main(["convert", str(bogus), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bogus.keras: " in err and "not a Keras model" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bogus.keras"]


def test_convert_errors_before_writing(model_dir, tmp_path, capsys):
    bare = tmp_path / "bare.keras"
    bare.write_bytes((model_dir / "model.keras").read_bytes())
    assert main(["convert", str(bare), "-o", str(tmp_path / "x.tflite")]) == 2
    assert "no metadata" in capsys.readouterr().err

    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 28, 28, 1), np.float32))
    assert main(["convert", str(model_dir / "model.keras"), "-o", str(tmp_path / "x.tflite"),
                 "--parity-images", str(wrong)]) == 2
    assert "(3, 28, 28, 1)" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bare.keras", "wrong.npy"]


def test_bench_reports_kernel_and_speedup(converted, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(converted), "--runs", "5", "--warmup", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "indirect BGEMM" in printed and "XNNPACK" in printed
    assert "than float" in printed
    result = json.loads(out.read_text())
    assert result["lce"]["median_ms"] > 0 and result["float32"]["median_ms"] > 0
    assert result["speedup"] == pytest.approx(
        result["float32"]["median_ms"] / result["lce"]["median_ms"])

    assert main(["bench", str(converted), "--runs", "2", "--kernel", "reference"]) == 0
    assert "reference" in capsys.readouterr().out


def test_bench_rejects_non_model(model_dir, capsys):
    assert main(["bench", str(model_dir / "model.keras")]) == 2
    assert "model.keras: not a TFLite model" in capsys.readouterr().err


@pytest.mark.skipif(not has_data_api(), reason="tflbnn.data (load_image) not available")
def test_classify_prints_top_k(converted, capsys):
    photos = sorted(PHOTOS.glob("*.png"))[:2]
    if not photos:
        pytest.skip("no test photos")
    assert main(["classify", *map(str, photos), "--model", str(converted), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{photos[0]}:" and len(lines) == 2 * 4
    probabilities = [float(line.split()[-1]) for line in lines[1:4]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(line.split()[1] in LABELS for line in lines[1:4])
    assert 0 < sum(probabilities) <= 1.0 + 1e-6


def test_classify_needs_sidecar(converted, tmp_path, capsys):
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(converted.read_bytes())
    assert main(["classify", "whatever.png", "--model", str(lonely)]) == 2
    assert "no metadata" in capsys.readouterr().err
