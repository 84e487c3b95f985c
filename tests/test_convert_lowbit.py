"""``tflbnn convert`` / ``tflbnn bench`` on N2UQ and S3 models: the int8 conversion paths.

Tiny untrained models (one N2UQ block, one S3 conv) saved as ``.keras`` with metadata, run
in-process through ``tflbnn.cli.main``; parity on embedded Fashion-MNIST test images.
"""

import json

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2)
import larq as lq
import tensorflow as tf

from tflbnn.cli import main
from tflbnn.converters import (KIND_LCE, KIND_N2UQ_INT8, KIND_S3_INT8_WEIGHTS, conversion_kind,
                               convert_model)
from tflbnn.data import FASHION_MNIST_LABELS, fashion_mnist_preprocessing, load_fashion_mnist
from tflbnn.layers import RPReLU
from tflbnn.metadata import ModelMetadata
from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer
from tflbnn.shift import S3Conv2D, S3Dense

#: Parity (and, for N2UQ, calibration) images: few, to keep the conversions fast.
NUM_IMAGES = 120
#: The N2UQ int8 path reaches ~95-99 % top-1 agreement, not the 0.99 default (see
#: tflbnn.converters.n2uq_int8); these tests pass this explicit lower threshold. The untrained
#: model here measured 95-100 % on the 120 images over seeds 0-4 × 2 threads and seed 0 × 1
#: thread (tests/spread_measurements.json); 0.85 is two spreads below the lowest.
N2UQ_MIN_TOP1 = "0.85"
#: The recorded data set: `tflbnn convert` takes its parity images from it.
DATA_SPEC = {"kind": "fashion_mnist", "source": "embedded", "limit_test": NUM_IMAGES}


def n2uq_model(seed: int = 1) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool")(x)
    y = RPReLU(name="rprelu")(x)
    y = lq.layers.QuantConv2D(8, 3, padding="same", use_bias=False, name="qconv",
                              input_quantizer=N2UQActivationQuantizer(bits=2),
                              kernel_quantizer=N2UQWeightQuantizer(bits=2))(y)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    x = tf.keras.layers.Add(name="add")([x, y])
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="head")(x), name="n2uq_tiny")


def s3_model(dense_head: bool = False, seed: int = 2) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = S3Conv2D(8, 3, bits=3, padding="same", use_bias=False, name="s3a")(x)
    x = tf.keras.layers.BatchNormalization(name="bn_a")(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    head = (S3Dense(10, bits=3, name="s3_head") if dense_head
            else tf.keras.layers.Dense(10, name="head"))
    return tf.keras.Model(inputs, head(x), name="s3_tiny")


def save(model: tf.keras.Model, folder, **extra):
    path = folder / f"{model.name}.keras"
    model.save(path)
    ModelMetadata(labels=FASHION_MNIST_LABELS, preprocessing=fashion_mnist_preprocessing(),
                  name=model.name, extra=extra).save(path.with_suffix(".json"))
    return path


@pytest.fixture(scope="module")
def images():
    pixels, _ = load_fashion_mnist("test", source="embedded")
    return fashion_mnist_preprocessing().normalize(pixels[:NUM_IMAGES]).astype(np.float32)


@pytest.fixture(scope="module")
def n2uq_converted(tmp_path_factory, test_seed):
    """An N2UQ model converted with parity images from its recorded data set."""
    folder = tmp_path_factory.mktemp("n2uq")
    path = save(n2uq_model(seed=1 + 10 * test_seed), folder, data=DATA_SPEC)
    out = folder / "out" / "n2uq.tflite"
    code = main(["convert", str(path), "-o", str(out), "--parity-count", str(NUM_IMAGES),
                 "--min-top1-agreement", N2UQ_MIN_TOP1])
    assert code == 0
    return path, out


@pytest.fixture(scope="module")
def s3_converted(tmp_path_factory, images, test_seed):
    folder = tmp_path_factory.mktemp("s3")
    path = save(s3_model(seed=2 + 10 * test_seed), folder)
    np.save(folder / "parity.npy", images)
    out = folder / "out" / "s3.tflite"
    code = main(["convert", str(path), "-o", str(out), "--parity-images",
                 str(folder / "parity.npy")])
    assert code == 0
    return path, out


def test_conversion_kind_follows_the_layers():
    assert conversion_kind(n2uq_model()) == KIND_N2UQ_INT8
    assert conversion_kind(s3_model()) == KIND_S3_INT8_WEIGHTS
    inputs = tf.keras.Input((8, 8, 1))
    x = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              name="bconv")(inputs)
    binary = tf.keras.Model(inputs, x, name="binary")
    assert conversion_kind(binary) == KIND_LCE

    # Nested models are walked into.
    outer_inputs = tf.keras.Input((8, 8, 1))
    assert conversion_kind(tf.keras.Model(outer_inputs, binary(outer_inputs))) == KIND_LCE

    mixed = tf.keras.Model(inputs, S3Conv2D(4, 1, name="s3x")(x), name="mixed")
    with pytest.raises(ValueError, match="'mixed' mixes layers") as error:
        conversion_kind(mixed)
    assert "bconv" in str(error.value) and "s3x" in str(error.value)

    plain = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3)(inputs), name="plain")
    with pytest.raises(ValueError, match="'plain' has no binary layers.*nothing"):
        conversion_kind(plain)


def test_convert_n2uq_writes_int8_model_twin_and_report(n2uq_converted, capsys, spread):
    """Parity as ``convert`` reports it; measured over seeds 0-4 (seed 0 at 1 and 2 threads)
    (tests/spread_measurements.json): top-1 agreement 95-100 % (floor 85 %), median relative logit
    difference 0.008-0.011 (bound 0.1, the converter's default for N2UQ int8)."""
    _, out = n2uq_converted
    assert sorted(path.name for path in out.parent.iterdir()) == [
        "n2uq.float.tflite", "n2uq.json", "n2uq.tflite"]
    conversion = ModelMetadata.load(out.with_suffix(".json")).extra["conversion"]
    assert conversion["kind"] == "n2uq_int8"
    assert conversion["coverage"] is None and conversion["lce_options"] is None
    check = conversion["int8_check"]
    assert check["passed"] and len(check["levels_tensors"]) == 1  # one levels tensor per LTQ
    assert {tensor[0] for tensor in check["levels_tensors"]} == {"qconv"}
    assert [layer[0] for layer in check["weight_layers"]] == ["qconv"]
    assert conversion["calibration_images"] == NUM_IMAGES
    parity = conversion["parity"]
    spread("top1_agreement", parity["top1_agreement"])
    spread("median_relative_delta", parity["median_relative_delta"])
    assert parity["passed"] and parity["num_images"] == NUM_IMAGES
    assert parity["min_top1_agreement"] == float(N2UQ_MIN_TOP1)
    assert "recorded data set" in conversion["parity_note"]
    assert conversion["size"]["lce_bytes"] == out.stat().st_size
    assert conversion["size"]["float_bytes"] == (out.parent / "n2uq.float.tflite").stat().st_size


def test_convert_s3_writes_int8_weights_and_ideal_size(s3_converted, spread):
    """Float32 TFLite against Keras on a float model: logits equal to ~1e-6 relative, so an
    image flips only if its two top logits are that close. Measured 100 % over seeds 0-4, seed
    0 at 1 and 2 threads (tests/spread_measurements.json); one flip in 120 is allowed all the
    same."""
    _, out = s3_converted
    assert sorted(path.name for path in out.parent.iterdir()) == [
        "s3.float.tflite", "s3.json", "s3.tflite"]
    conversion = ModelMetadata.load(out.with_suffix(".json")).extra["conversion"]
    assert conversion["kind"] == "s3_int8_weights"
    check = conversion["int8_check"]
    assert check["passed"] and check["int8_tensors"] == 1 and check["weight_tensors"] == 3
    assert conversion["int8_parity"]["passed"]
    assert conversion["int8_parity"]["max_abs_delta_original"] == 0.0
    assert spread("top1_agreement", conversion["parity"]["top1_agreement"]) >= 119 / 120
    size = conversion["weight_size"]
    assert size["file_bytes"] == out.stat().st_size
    assert size["bits_per_weight"] == 3 and size["int8_weights"] == 3 * 3 * 8 * 8
    assert size["ideal_bits"] < 8 * size["file_bytes"]
    assert size["float_bytes"] == (out.parent / "s3.float.tflite").stat().st_size


def test_convert_summary_names_the_path(tmp_path, images, capsys):
    path = save(s3_model(dense_head=True), tmp_path)  # S3Dense as the output layer
    np.save(tmp_path / "parity.npy", images[:20])
    assert main(["convert", str(path), "--parity-images", str(tmp_path / "parity.npy")]) == 0
    printed = capsys.readouterr().out
    assert "(S3 shift weights stored as int8)" in printed
    assert "2 of 3 weight tensors stored as int8" in printed
    assert "int8-weight parity on 20 images" in printed and "ideal" in printed
    assert f"wrote {tmp_path / 's3_tiny.tflite'}" in printed


@pytest.mark.parametrize("which", ["n2uq", "s3"])
def test_bench_times_int8_model_against_float_twin(which, n2uq_converted, s3_converted,
                                                    tmp_path, capsys):
    _, out = n2uq_converted if which == "n2uq" else s3_converted
    capsys.readouterr()
    result_path = tmp_path / "bench.json"
    assert main(["bench", str(out), "--runs", "3", "--warmup", "1", "--json",
                 str(result_path)]) == 0
    printed = capsys.readouterr().out
    assert "int8 is" in printed and "than float" in printed
    assert "bconv kernel" not in printed and "float twin from" in printed
    result = json.loads(result_path.read_text())
    assert result["label"] == "int8"
    assert result["lce"]["interpreter"] == result["float32"]["interpreter"] == "tflite"
    assert result["speedup"] == pytest.approx(
        result["float32"]["median_ms"] / result["lce"]["median_ms"])


def test_failing_n2uq_parity_writes_nothing(n2uq_converted, tmp_path, capsys):
    path, _ = n2uq_converted
    out = tmp_path / "out" / "fail.tflite"
    assert main(["convert", str(path), "-o", str(out), "--parity-count", "40",
                 "--max-logit-delta", "1e-9", "--min-top1-agreement", N2UQ_MIN_TOP1]) == 2
    error = capsys.readouterr().err
    assert "parity on 40 images" in error and "FAILED" in error and "nothing written" in error
    assert not out.parent.exists()


def test_int8_paths_reject_lce_options_and_missing_images(s3_converted, tmp_path, capsys):
    s3_path, _ = s3_converted
    assert main(["convert", str(s3_path), "-o", str(tmp_path / "x.tflite"), "--target",
                 "xcore"]) == 2
    assert "--target apply to LCE models only" in capsys.readouterr().err

    path = save(n2uq_model(), tmp_path)  # no data set recorded, no --parity-images
    assert main(["convert", str(path), "-o", str(tmp_path / "y.tflite")]) == 2
    assert "calibrates on real images" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n2uq_tiny.json", "n2uq_tiny.keras"]


def test_convert_model_rejects_a_kind_the_model_does_not_have(tmp_path, images):
    model = s3_model()
    metadata = ModelMetadata(labels=FASHION_MNIST_LABELS,
                             preprocessing=fashion_mnist_preprocessing())
    with pytest.raises(ValueError, match="kind 'lce' was asked for.*'s3_int8_weights'"):
        convert_model(model, tmp_path / "m.tflite", metadata=metadata, kind="lce")
    with pytest.raises(ValueError, match="representative_images calibrate the N2UQ"):
        convert_model(model, tmp_path / "m.tflite", metadata=metadata,
                      representative_images=images)
    assert list(tmp_path.iterdir()) == []
