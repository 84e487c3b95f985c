"""tflbnn.converters: LCE conversion, flatbuffer reading, coverage, parity, size, benchmark."""

import gzip
import hashlib
import importlib.util
import warnings
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tflbnn import RSign, reactnet_block
from tflbnn.converters import (CoverageError, CoverageWarning, ParityError, benchmark_tflite,
                               check_coverage, check_parity, compare, convert_lce, convert_model,
                               load_keras_model, read_tflite)
from tflbnn.metadata import ModelMetadata, Preprocessing

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Full-train-set pixel statistics of Fashion-MNIST, used when tflbnn.data is not importable.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860406, 0.3530242
LABELS = [f"class_{i}" for i in range(10)]
PARITY_IMAGES = 200
#: test_parity_on_real_images: at most one of the 200 images may change its arg-max.
FLOOR_AGREEMENT = (PARITY_IMAGES - 1) / PARITY_IMAGES


def real_test_images(count):
    """Up to ``count`` preprocessed Fashion-MNIST test images, or None if none are installed."""
    if importlib.util.find_spec("tflbnn.data") is not None:
        try:
            from tflbnn.data import fashion_mnist_preprocessing, load_fashion_mnist
        except ImportError:
            pass
        else:
            images, _ = load_fashion_mnist("test")
            return fashion_mnist_preprocessing().normalize(images[:count])
    path = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    images = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28, 1)[:count]
    return Preprocessing(28, 28, 1, (FASHION_MNIST_MEAN,), (FASHION_MNIST_STD,)).normalize(images)


def tiny_reactnet(name="tiny"):
    """Stem conv to 32 channels, a normal and a reduction ReActNet block, GAP, Dense."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = reactnet_block(x, 32, name="b1")
    x = reactnet_block(x, 64, stride=2, name="b2")
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(10, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def mixed_model():
    """One convertible grouped bconv, one binary-kernel conv on float input, one binary dense."""
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = lq.layers.QuantConv2D(64, 3, padding="same", use_bias=False, kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", name="float_input_bconv")(x)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = RSign(name="sign")(x)
    x = lq.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, groups=2, use_bias=False,
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              name="grouped_bconv")(x)
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                   kernel_constraint="weight_clip", name="binary_dense")(x)
    return tf.keras.Model(inputs, outputs, name="mixed")


def metadata_for(model, **extra):
    height, width, channels = model.input_shape[1:]
    return ModelMetadata(labels=LABELS, name=model.name, extra=extra,
                         preprocessing=Preprocessing(height, width, channels, (0.5,) * channels,
                                                     (0.25,) * channels))


@pytest.fixture(scope="module")
def images():
    real = real_test_images(PARITY_IMAGES)
    if real is not None:
        return real, True
    # Without a data set: deterministic inputs, good for shape-level checks only.
    return np.random.default_rng(0).standard_normal((32, 28, 28, 1)).astype(np.float32), False


@pytest.fixture(scope="module")
def converted(tmp_path_factory, images, test_seed):
    tf.keras.utils.set_random_seed(1 + 10 * test_seed)
    model = tiny_reactnet()
    folder = tmp_path_factory.mktemp("converted")
    report = convert_model(model, folder / "tiny.tflite",
                           metadata=metadata_for(model, data={"kind": "test"}),
                           parity_images=images[0], parity_note="test images")
    return model, report, folder


@pytest.fixture(scope="module")
def mixed():
    tf.keras.utils.set_random_seed(2)
    model = mixed_model()
    return model, convert_lce(model)


def binary_conv_count(model):
    """Independent count: QuantConv2D layers whose kernel quantizer is a 1-bit quantizer."""
    return sum(isinstance(layer, lq.layers.QuantConv2D)
               and getattr(layer.kernel_quantizer, "precision", None) == 1
               for layer in model.layers)


def test_tiny_reactnet_converts_every_binary_conv(converted):
    model, report, folder = converted
    info = read_tflite(folder / "tiny.tflite")
    histogram = info.op_histogram()
    assert binary_conv_count(model) == 5
    assert histogram["LceBconv2d"] == 5
    assert histogram["LceQuantize"] >= 1
    assert "CONV_2D" in histogram  # only the float stem
    assert histogram["CONV_2D"] == 1
    assert report.coverage.num_binary_layers == 5
    assert report.coverage.num_converted == 5
    assert report.coverage.converted_mac_share == pytest.approx(1.0)
    assert report.coverage.op_histogram == histogram


def test_flatbuffer_reader_lists_ops_shapes_and_options(converted):
    _, _, folder = converted
    info = read_tflite(folder / "tiny.tflite")
    assert info.inputs[0].shape == (1, 28, 28, 1) and info.inputs[0].dtype == "float32"
    assert info.outputs[0].shape == (1, 10)
    bconvs = info.ops_named("LceBconv2d")
    assert all(op.options["channels_in"] == 32 for op in bconvs)
    assert sorted(op.options["stride_height"] for op in bconvs) == [1, 1, 1, 1, 2]
    assert all(op.inputs[0].dtype == "int32" for op in bconvs)  # bitpacked activations
    assert {op.inputs[1].shape[1:3] for op in bconvs} == {(3, 3), (1, 1)}
    assert "LceBconv2d(" in bconvs[0].describe()
    assert info.uses_lce_ops
    assert not read_tflite(folder / "tiny.float.tflite").uses_lce_ops


def test_parity_on_real_images(converted, images, spread):
    """The untrained tiny ReActNet agrees with Keras on 200 real images, to float rounding.

    Random (untrained) logits have near ties, and a binary activation within rounding of zero
    can flip a sign, so one image may change its arg-max. Measured over seeds 0-4 at 2 threads
    and seed 0 at 1 thread (tests/spread_measurements.json; the ``converted`` fixture's seed is
    ``1 + 10 * test_seed``): top-1 agreement 100 % everywhere, median relative difference
    2.2e-7-7.8e-7, mean |difference| 3.0e-7-2.4e-5 (the larger values: a few activations
    within rounding of zero flipping sign), Keras' own rounding sensitivity 1.0e-7-2.5e-7
    (so the tolerance stays at max_logit_delta, 1e-3). Floors: agreement 199/200 (one near
    tie may tip, an expectation the spread of 0 cannot give); the bounds 1e-5 and 1e-4 sit at
    least two spreads above the highest values (1.9e-6 and 7.3e-5).
    """
    if not images[1]:
        pytest.skip("no Fashion-MNIST installed and tflbnn.data not importable")
    _, report, _ = converted
    parity = report.parity
    assert parity.num_images == PARITY_IMAGES
    assert spread("top1_agreement", parity.top1_agreement) >= FLOOR_AGREEMENT
    assert spread("median_relative_delta", parity.median_relative_delta) < 1e-5
    spread("noise_relative_delta", parity.noise_relative_delta)
    assert parity.tolerance == pytest.approx(1e-3)  # the tiny net is not rounding-chaotic
    assert spread("mean_abs_delta", parity.mean_abs_delta) < 1e-4
    assert parity.passed


def test_parity_detects_a_wrong_scale(converted, images):
    model, report, folder = converted
    # The same network with one BatchNorm scale off by 5%, as a wrong BN fusion would produce.
    broken = tf.keras.models.clone_model(model)
    broken.set_weights(model.get_weights())
    gamma = broken.get_layer("b2_bn_1x1_1").gamma
    gamma.assign(gamma * 1.05)
    flatbuffer = (folder / "tiny.tflite").read_bytes()
    with pytest.raises(ParityError, match="does not match Keras") as error:
        check_parity(broken, flatbuffer, images[0])
    assert error.value.report.median_relative_delta > error.value.report.tolerance
    assert check_parity(model, flatbuffer, images[0][:8]).passed


def test_parity_rejects_wrong_input_shape_and_dtype(converted):
    model, _, folder = converted
    flatbuffer = (folder / "tiny.tflite").read_bytes()
    with pytest.raises(ValueError, match=r"shape \(4, 32, 32, 1\).*\(N, 28, 28, 1\)"):
        check_parity(model, flatbuffer, np.zeros((4, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        check_parity(model, flatbuffer, np.zeros((4, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 28, 28, 1\)"):
        convert_model(model, folder / "never.tflite", metadata=metadata_for(model),
                      parity_images=np.zeros((28, 28, 1), np.float32))
    assert not (folder / "never.tflite").exists()


def test_metadata_sidecar_is_written_and_reloadable(converted):
    model, report, folder = converted
    metadata = ModelMetadata.load(folder / "tiny.json")
    assert metadata.labels == tuple(LABELS)
    assert metadata.preprocessing.input_shape == (28, 28, 1)
    assert metadata.extra["data"] == {"kind": "test"}  # earlier extra keys survive
    conversion = metadata.extra["conversion"]
    assert conversion["tflite"] == "tiny.tflite"
    assert conversion["float_twin"] == "tiny.float.tflite"
    assert conversion["coverage"]["num_converted"] == 5
    assert conversion["parity"]["passed"] is True
    assert conversion["lce_options"]["target"] == "arm"
    assert conversion == report.as_dict()
    assert sorted(path.name for path in folder.iterdir()) == [
        "tiny.float.tflite", "tiny.json", "tiny.tflite"]
    # The digests of the files beside the sidecar, computed here independently.
    assert metadata.model_sha256 == hashlib.sha256(
        (folder / "tiny.tflite").read_bytes()).hexdigest()
    assert conversion["float_twin_sha256"] == hashlib.sha256(
        (folder / "tiny.float.tflite").read_bytes()).hexdigest()


def test_size_ratio_matches_file_sizes(converted):
    _, report, folder = converted
    lce_bytes = (folder / "tiny.tflite").stat().st_size
    float_bytes = (folder / "tiny.float.tflite").stat().st_size
    assert report.size.lce_bytes == lce_bytes
    assert report.size.float_bytes == float_bytes
    assert report.size.ratio == pytest.approx(float_bytes / lce_bytes)
    assert report.size.ratio > 2
    assert "smaller" in report.summary()


def test_benchmark_names_kernel_and_compares(converted):
    _, _, folder = converted
    lce_path, float_path = folder / "tiny.tflite", folder / "tiny.float.tflite"
    stats = benchmark_tflite(lce_path, num_runs=5, warmup=1)
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.runs == 5 and stats.interpreter == "lce"
    assert "indirect BGEMM" in stats.kernel
    default = benchmark_tflite(lce_path, num_runs=3, warmup=1, use_indirect_bgemm=False)
    assert "default" in default.kernel
    reference = benchmark_tflite(lce_path, num_runs=3, warmup=1, use_reference_bconv=True)
    assert "reference" in reference.kernel
    comparison = compare(lce_path, float_path, num_runs=5, warmup=1)
    assert "XNNPACK delegate" in comparison.float32.kernel
    assert comparison.speedup == pytest.approx(
        comparison.float32.median_ms / comparison.lce.median_ms)
    assert "faster" in comparison.summary() or "slower" in comparison.summary()
    with pytest.raises(ValueError, match="no LCE ops"):
        compare(float_path, lce_path, num_runs=1)


def test_fallback_layers_are_named_and_fail_strict_coverage(mixed):
    model, flatbuffer = mixed
    with pytest.raises(CoverageError) as error:
        check_coverage(model, flatbuffer)
    message = str(error.value)
    assert "float_input_bconv" in message and "input is not binary" in message
    assert "binary_dense" in message and "fully-connected" in message
    assert "grouped_bconv" not in message  # grouped bconvs (32 channels per group) convert
    with pytest.warns(CoverageWarning, match="binary_dense"):
        report = check_coverage(model, flatbuffer, strict=False)
    assert report.num_binary_layers == 3 and report.num_converted == 1
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["grouped_bconv"].converted and by_name["grouped_bconv"].signature["groups"] == 2
    float_input, grouped, dense = 16 * 16 * 9 * 64 * 64, 16 * 16 * 9 * 32 * 64, 64 * 10
    assert by_name["float_input_bconv"].macs == float_input
    assert by_name["float_input_bconv"].mac_share == pytest.approx(
        float_input / (float_input + grouped + dense))
    assert 0 < report.converted_mac_share < 1


def test_grouped_bconv_needs_indirect_or_reference_kernel(mixed):
    _, flatbuffer = mixed
    with pytest.raises(ValueError, match="grouped"):
        benchmark_tflite(flatbuffer, num_runs=1, use_indirect_bgemm=False)
    assert benchmark_tflite(flatbuffer, num_runs=2, warmup=1).median_ms > 0


def test_convert_model_strict_coverage_writes_nothing(tmp_path):
    tf.keras.utils.set_random_seed(3)
    model = mixed_model()
    with pytest.raises(CoverageError, match="float_input_bconv"):
        convert_model(model, tmp_path / "mixed.tflite", metadata=metadata_for(model))
    assert list(tmp_path.iterdir()) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = convert_model(model, tmp_path / "mixed.tflite", metadata=metadata_for(model),
                               strict_coverage=False, float_reference=False)
    assert any(issubclass(w.category, CoverageWarning) for w in caught)
    assert report.warnings and "binary_dense" in report.warnings[0]
    assert report.parity is None and "no parity images" in report.parity_note
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mixed.json", "mixed.tflite"]
    saved = ModelMetadata.load(tmp_path / "mixed.json").extra["conversion"]
    assert saved["float_twin"] is None
    assert [layer["name"] for layer in saved["coverage"]["not_converted"]] == [
        "float_input_bconv", "binary_dense"]


def test_model_without_binary_layers_is_rejected(tmp_path):
    inputs = tf.keras.Input((8, 8, 1))
    outputs = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(
        tf.keras.layers.Conv2D(4, 3)(inputs)))
    model = tf.keras.Model(inputs, outputs, name="all_float")
    with pytest.raises(ValueError, match="'all_float' has no binary layers"):
        convert_model(model, tmp_path / "f.tflite", metadata=metadata_for(model))
    with pytest.raises(ValueError, match="no binary layers"):
        check_coverage(model, b"")
    assert list(tmp_path.iterdir()) == []


def test_non_model_files_are_rejected_by_name(tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("definitely not a flatbuffer")
    with pytest.raises(ValueError, match="notes.tflite: not a TFLite model"):
        read_tflite(text)
    with pytest.raises(ValueError, match="notes.tflite: not a TFLite model"):
        benchmark_tflite(text)
    with pytest.raises(FileNotFoundError):
        read_tflite(tmp_path / "missing.tflite")
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(ValueError, match="fake.keras: .*not a Keras model"):
        load_keras_model(fake)
    with pytest.raises(FileNotFoundError):
        load_keras_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"\.keras"):
        load_keras_model(text)


def test_load_keras_model_refuses_lambda_and_loads_tflbnn_layers(tmp_path):
    inputs = tf.keras.Input((4, 4, 1))
    outputs = tf.keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    tf.keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="lambda.keras.*[Ll]ambda"):
        load_keras_model(tmp_path / "lambda.keras")

    model = mixed_model()
    model.save(tmp_path / "mixed.keras")
    loaded = load_keras_model(tmp_path / "mixed.keras")
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)
    assert isinstance(loaded.get_layer("sign"), RSign)
