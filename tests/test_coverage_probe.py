"""Coverage decides "binary" from what a layer's quantizers compute (probed), not what they declare.

Quantizers are built the ways larq's and LCE's own tests build them: strings, quantizer objects,
plain functions (LCE's end-to-end tests pass ``tf.where(x >= 0, ones_like(x), -ones_like(x))``),
custom ``Quantizer`` classes, and the zoo's layers. Each model is converted with LCE, and the
report must list exactly the layers that compute binary values, each with whether it became an
``LceBconv2d`` (counted independently in the flatbuffer's op histogram).
"""

import itertools
import warnings

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2 before larq and TensorFlow are imported)
import larq as lq
import tensorflow as tf

from tflbnn import BinarySign, RSign
from tflbnn.bimlp import GroupedQuantConv2D
from tflbnn.converters import (CoverageError, CoverageWarning, binary_layers, check_coverage,
                               conversion_kind, convert_lce, convert_model, read_tflite)
from tflbnn.converters.coverage import needs_coverage
from tflbnn.converters.quantizer_probe import (BINARY, FLOAT, LOW_BIT, SIGN_WITH_ZERO, ProbeError,
                                               probe_quantizer)
from tflbnn.metadata import ModelMetadata, Preprocessing
from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer
from tflbnn.quantizers import ReActNetWeightSign

KERNEL_SHAPE = (3, 3, 4, 8)


def where_sign(x):
    """The binary quantizer of LCE's end-to-end tests."""
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def scalar_where_sign(x):
    return tf.where(x >= 0, 1.0, -1.0)


def larq_math_sign(x):
    return lq.math.sign(x)


def int8_fake_quant(x):
    return tf.quantization.fake_quant_with_min_max_args(x, -3.0, 3.0)


class WhereSign(lq.quantizers.Quantizer):
    """A custom quantizer class computing ±1 and declaring no precision."""

    def call(self, inputs):
        return tf.where(inputs >= 0, 1.0, -1.0)


class HalfSign(lq.quantizers.Quantizer):
    """A custom quantizer class computing ±0.5."""

    def call(self, inputs):
        return 0.5 * lq.math.sign(inputs)


class DeclaredBinaryIdentity(lq.quantizers.Quantizer):
    """Declares precision 1 but passes its input through: float in computation."""

    precision = 1

    def call(self, inputs):
        return inputs


class Flaky:
    """A sign whose polarity flips on every call: no fixed function to classify."""

    def __init__(self):
        self.calls = itertools.count()

    def __call__(self, inputs):
        polarity = 1.0 if next(self.calls) % 2 == 0 else -1.0
        return polarity * tf.where(inputs >= 0, 1.0, -1.0)


def constant_one(x):
    return tf.ones_like(x)


def raises(x):
    raise RuntimeError("only works on the training cluster")


def built(quantizer):
    """A larq quantizer object from a string, built as in a model."""
    quantizer = lq.quantizers.get(quantizer)
    if isinstance(quantizer, tf.keras.layers.Layer):
        quantizer.build(KERNEL_SHAPE)
    return quantizer


@pytest.mark.parametrize("quantizer,kind,unit,description", [
    ("ste_sign", BINARY, True, "±1"),
    ("approx_sign", BINARY, True, "±1"),
    ("swish_sign", BINARY, True, "±1"),
    (lq.quantizers.SteSign(), BINARY, True, "±1"),
    ("magnitude_aware_sign", BINARY, False, "±alpha per output channel"),
    (ReActNetWeightSign(), BINARY, False, "±alpha per output channel"),
    (where_sign, BINARY, True, "±1"),
    (scalar_where_sign, BINARY, True, "±1"),
    (larq_math_sign, BINARY, True, "±1"),
    (WhereSign(), BINARY, True, "±1"),
    (HalfSign(), BINARY, False, "±0.5"),
    (tf.sign, SIGN_WITH_ZERO, False, "±1 and 0 at 0 (like tf.sign)"),
    ("ste_heaviside", LOW_BIT, False, "2 levels {0, 1}"),
    ("ste_tern", LOW_BIT, False, "3 levels {-1, 0, 1}"),
    (lq.quantizers.DoReFa(k_bit=2, mode="weights"), LOW_BIT, False,
     "4 levels {-1, -0.3333, 0.3333, 1}"),
    (N2UQWeightQuantizer(bits=2), LOW_BIT, False,
     "4 levels {-1, -0.3333, 0.3333, 1} × a per-channel scale"),
    (N2UQActivationQuantizer(bits=2), LOW_BIT, False, "4 levels {0, 0.6667, 1.333, 2}"),
    (tf.identity, FLOAT, False, "float"),
    (lambda x: tf.clip_by_value(x, -1.0, 1.0), FLOAT, False, "float"),
    (DeclaredBinaryIdentity(), FLOAT, False, "float"),
], ids=lambda value: getattr(value, "__name__", type(value).__name__)
   if not isinstance(value, (str, bool)) else str(value))
def test_probe_classifies_what_a_quantizer_computes(quantizer, kind, unit, description):
    computed = probe_quantizer(built(quantizer), KERNEL_SHAPE, calls=4)
    assert (computed.kind, computed.unit, computed.description) == (kind, unit, description)
    assert computed.binary == (kind in (BINARY, SIGN_WITH_ZERO))


def test_probe_classifies_int8_fake_quantization_as_low_bit():
    computed = probe_quantizer(int8_fake_quant, (4096, 2), calls=1)
    assert computed.kind == LOW_BIT
    # 256 levels over [-3, 3]; the dense probe spread meets most but not necessarily all.
    assert 128 < computed.levels <= 256


@pytest.mark.parametrize("quantizer,why", [
    (raises, "raised RuntimeError: only works on the training cluster"),
    (lambda x: x >= 0, "returns bool values, not floats"),
    (lambda x: tf.reduce_mean(x, axis=-1), "returns shape [3, 3, 4]"),
    (lambda x: tf.math.log(x), "returns NaN or infinite values"),
    (constant_one, "returns the same value (1) for every probe input"),
    (Flaky(), "returns different values for the same input"),
])
def test_probe_refuses_what_it_cannot_classify(quantizer, why):
    with pytest.raises(ProbeError) as error:
        probe_quantizer(quantizer, KERNEL_SHAPE)
    assert why in str(error.value)


def _binary_conv(name, filters=32, **kwargs):
    kwargs.setdefault("kernel_constraint", "weight_clip")
    return lq.layers.QuantConv2D(filters, 3, padding="same", pad_values=1.0, use_bias=False,
                                 name=name, **kwargs)


def _bn(name):
    return tf.keras.layers.BatchNormalization(name=name)


def styles_model():
    """Eight binary convolutions, each built in another style; all of them convert."""
    inputs = tf.keras.Input((8, 8, 32))
    x = _binary_conv("s_ste", input_quantizer="ste_sign", kernel_quantizer="ste_sign")(inputs)
    x = _binary_conv("s_approx", input_quantizer="approx_sign",
                     kernel_quantizer="magnitude_aware_sign")(_bn("bn1")(x))
    x = _binary_conv("s_swish_object", input_quantizer="swish_sign",
                     kernel_quantizer=lq.quantizers.SteSign())(_bn("bn2")(x))
    x = _binary_conv("s_custom", input_quantizer=WhereSign(), kernel_quantizer=HalfSign())(
        _bn("bn3")(x))
    x = _binary_conv("s_where", input_quantizer=where_sign, kernel_quantizer=where_sign)(
        _bn("bn4")(x))
    x = _binary_conv("s_larq_math", 64, input_quantizer=larq_math_sign,
                     kernel_quantizer=lq.math.sign)(_bn("bn5")(x))
    x = RSign(name="rsign")(_bn("bn6")(x))
    x = _binary_conv("s_rsign", 64, kernel_quantizer="reactnet_weight_sign")(x)
    x = BinarySign(name="binary_sign")(_bn("bn7")(x))
    x = _binary_conv("s_grouped", 64, groups=2, kernel_quantizer="ste_sign")(x)  # 32 per group
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x), name="styles")


STYLES = ("s_ste", "s_approx", "s_swish_object", "s_custom", "s_where", "s_larq_math", "s_rsign",
          "s_grouped")


def issue_model(conv_quantizer, dense_quantizer):
    """Issue 17 §7: two binary convs and a ``QuantDense`` (binary when it has a quantizer)."""
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 1, name="stem")(inputs)
    x = _binary_conv("c1", input_quantizer=conv_quantizer, kernel_quantizer=conv_quantizer)(x)
    x = _binary_conv("c2", input_quantizer=conv_quantizer, kernel_quantizer=conv_quantizer)(
        _bn("bn1")(x))
    x = tf.keras.layers.GlobalAveragePooling2D()(_bn("bn2")(x))
    outputs = lq.layers.QuantDense(10, input_quantizer=dense_quantizer,
                                   kernel_quantizer=dense_quantizer,
                                   kernel_constraint="weight_clip", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="issue")


def mixed_model():
    """Binary layers next to low-bit and float-in-disguise ones.

    Binary in computation: ``bin`` (converts), ``dw_bin`` and ``grouped_narrow`` (not eligible
    by LCE's rules), ``sign_zero`` (``tf.sign`` input), ``half_input`` (±0.5 input) and
    ``float_input`` (fed by a BN). Not binary: ``n2uq`` (2-bit) and ``declared_only`` (declares
    precision 1, computes the identity).
    """
    inputs = tf.keras.Input((8, 8, 32))
    x = _binary_conv("bin", input_quantizer="ste_sign", kernel_quantizer="ste_sign")(inputs)
    x = lq.layers.QuantDepthwiseConv2D(3, padding="same", use_bias=False, name="dw_bin",
                                       input_quantizer="ste_sign", depthwise_quantizer="ste_sign",
                                       depthwise_constraint="weight_clip")(_bn("bn1")(x))
    x = BinarySign(name="sign_narrow")(_bn("bn2")(x))
    x = GroupedQuantConv2D(32, (1, 3), groups=32, padding="same", use_bias=False,
                           kernel_quantizer="reactnet_weight_sign",
                           kernel_constraint="weight_clip", name="grouped_narrow")(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", use_bias=False, name="n2uq",
                              input_quantizer=N2UQActivationQuantizer(bits=2),
                              kernel_quantizer=N2UQWeightQuantizer(bits=2))(_bn("bn3")(x))
    x = _binary_conv("declared_only", input_quantizer="ste_sign",
                     kernel_quantizer=DeclaredBinaryIdentity())(_bn("bn4")(x))
    x = _binary_conv("sign_zero", input_quantizer=tf.sign, kernel_quantizer="ste_sign")(
        _bn("bn5")(x))
    x = _binary_conv("half_input", input_quantizer=HalfSign(), kernel_quantizer="ste_sign")(
        _bn("bn6")(x))
    x = _binary_conv("float_input", kernel_quantizer="ste_sign")(_bn("bn7")(x))
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x), name="mixed")


MIXED_BINARY = ("bin", "dw_bin", "grouped_narrow", "sign_zero", "half_input", "float_input")


def int8_model():
    """LCE's ``toy_model_int8`` in small: int8 fake quantization between binary convs, and a
    conv whose quantizers are the fake quantization itself (8-bit, not binary)."""
    inputs = tf.keras.Input((8, 8, 32))
    x = int8_fake_quant(inputs)
    x = lq.layers.QuantConv2D(32, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", name="q_bin1")(x)
    x = int8_fake_quant(_bn("bn1")(x))
    x = lq.layers.QuantConv2D(32, 3, input_quantizer=int8_fake_quant,
                              kernel_quantizer=int8_fake_quant, name="q_int8")(x)
    x = int8_fake_quant(_bn("bn2")(x))
    x = lq.layers.QuantConv2D(32, 1, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", name="q_bin2")(x)
    x = int8_fake_quant(tf.keras.layers.GlobalAveragePooling2D()(_bn("bn3")(x)))
    return tf.keras.Model(inputs, x, name="int8")


def uncertain_model():
    """A binary conv, one whose kernel quantizer is a constant, one whose input quantizer flips."""
    inputs = tf.keras.Input((8, 8, 32))
    x = _binary_conv("sure", input_quantizer="ste_sign", kernel_quantizer="ste_sign")(inputs)
    x = _binary_conv("constant_kernel", input_quantizer="ste_sign",
                     kernel_quantizer=constant_one)(_bn("bn1")(x))
    x = _binary_conv("flaky_input", input_quantizer=Flaky(), kernel_quantizer="ste_sign")(
        _bn("bn2")(x))
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, x, name="uncertain")


def _randomise_batch_norms(model, seed):
    """Trained-like BN statistics, so that no layer sees an exactly constant input."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.3, beta),
                               rng.normal(0, 0.3, mean), rng.uniform(0.5, 2.0, variance)])


@pytest.fixture(scope="module")
def converted():
    """Each model with its LCE flatbuffer, converted once (module scope: seeded by conftest)."""
    builders = {"styles": styles_model, "mixed": mixed_model, "int8": int8_model,
                "uncertain": uncertain_model,
                "dense_function": lambda: issue_model("ste_sign", scalar_where_sign),
                "all_functions": lambda: issue_model(where_sign, None)}
    result = {}
    for seed, (name, build) in enumerate(builders.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # larq's lambda-serialisation and clip warnings
            model = build()
            _randomise_batch_norms(model, seed)
            result[name] = (model, read_tflite(convert_lce(model)))
    return result


def _check(model, info, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        return check_coverage(model, info, **kwargs)


def test_every_style_of_binary_layer_is_recognised_and_certified(converted):
    model, info = converted["styles"]
    report = _check(model, info)
    assert report.complete
    assert [layer.name for layer in report.layers] == list(STYLES)
    assert all(layer.converted and layer.determined for layer in report.layers)
    assert info.op_histogram()["LceBconv2d"] == len(STYLES)
    assert report.unattributed_bconvs == 0
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["s_approx"].kernel_values == "±alpha per output channel"
    assert by_name["s_custom"].kernel_values == "±0.5"
    assert by_name["s_where"].input_values == "±1"
    assert by_name["s_rsign"].input_values == "±1 from 'rsign' (RSign)"
    assert by_name["s_grouped"].input_values == "±1 from 'binary_sign' (BinarySign)"
    assert [layer.name for layer in binary_layers(model)] == list(STYLES)


def test_function_quantized_dense_fails_coverage_by_name(converted):
    """Issue 17 §7: it was reported as "2/2 binary layers became LceBconv2d (100%)"."""
    model, info = converted["dense_function"]
    assert info.op_histogram()["FULLY_CONNECTED"] == 1  # the dense layer runs in float
    with pytest.raises(CoverageError) as error:
        _check(model, info)
    message = str(error.value)
    assert message.startswith("1 of 3 binary layer(s) did not become LceBconv2d")
    assert "dense (QuantDense" in message and "FULLY_CONNECTED" in message
    report = error.value.report
    assert [layer.name for layer in report.layers] == ["c1", "c2", "dense"]
    assert [layer.name for layer in report.failures] == ["dense"]
    assert "coverage: 2/3 binary layers became LceBconv2d" in report.summary()

    with pytest.warns(CoverageWarning, match=r"dense \(QuantDense"):
        allowed = check_coverage(model, info, strict=False)
    assert not allowed.complete and [layer.name for layer in allowed.failures] == ["dense"]


def test_all_function_quantized_model_is_binary(converted):
    """Issue 17 §7: such a model was refused with "no binary layers"."""
    model, info = converted["all_functions"]
    assert conversion_kind(model) == "lce"
    report = _check(model, info)
    assert report.complete and [layer.name for layer in report.layers] == ["c1", "c2"]
    assert info.op_histogram()["LceBconv2d"] == 2


def test_mixed_model_lists_exactly_the_binary_layers(converted):
    model, info = converted["mixed"]
    with pytest.raises(CoverageError) as error:
        _check(model, info)
    report = error.value.report
    assert [layer.name for layer in report.layers] == list(MIXED_BINARY)
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["bin"].converted
    assert info.op_histogram()["LceBconv2d"] == 1
    assert [layer.name for layer in report.ineligible] == ["dw_bin", "grouped_narrow"]
    assert [layer.name for layer in report.failures] == ["sign_zero", "half_input",
                                                          "float_input"]
    assert "±1 and 0 at 0 (like tf.sign)" in by_name["sign_zero"].reason
    assert "larq.math.sign" in by_name["sign_zero"].reason
    assert "its input is ±0.5, not ±1" in by_name["half_input"].reason
    assert ("its input is not binary (float from 'bn7' (BatchNormalization)"
            in by_name["float_input"].reason)
    assert not needs_coverage(model.get_layer("n2uq"))
    assert not needs_coverage(model.get_layer("declared_only"))
    assert "sign_zero (QuantConv2D" in str(error.value)


def test_int8_fake_quant_parts_are_not_binary(converted):
    model, info = converted["int8"]
    report = _check(model, info)
    assert report.complete and [layer.name for layer in report.layers] == ["q_bin1", "q_bin2"]
    assert info.op_histogram()["LceBconv2d"] == 2


def test_unclassifiable_quantizers_are_named_and_never_certified(converted):
    model, info = converted["uncertain"]
    with pytest.raises(CoverageError) as error:
        _check(model, info)
    message = str(error.value)
    assert ("layer 'constant_kernel': cannot tell what its kernel_quantizer computes: it "
            "returns the same value (1) for every probe input") in message
    assert ("layer 'flaky_input': cannot tell what its input_quantizer computes: it returns "
            "different values for the same input") in message
    report = error.value.report
    assert [layer.name for layer in report.not_certified] == ["constant_kernel", "flaky_input"]
    assert [layer.name for layer in report.failures] == ["constant_kernel", "flaky_input"]
    assert "NOT certified: constant_kernel" in report.summary()
    assert {layer.name: layer.determined for layer in report.layers} == {
        "sure": True, "constant_kernel": False, "flaky_input": False}
    with pytest.warns(CoverageWarning, match="cannot be certified"):
        assert not check_coverage(model, info, strict=False).complete


def test_no_binary_layers_names_the_low_bit_ones():
    inputs = tf.keras.Input((8, 8, 4))
    x = lq.layers.QuantConv2D(8, 3, input_quantizer=int8_fake_quant,
                              kernel_quantizer=N2UQWeightQuantizer(bits=2), name="lowbit")(inputs)
    model = tf.keras.Model(inputs, x, name="no_binary")
    with pytest.raises(ValueError, match="model 'no_binary' has no binary layers") as error:
        check_coverage(model, b"")
    assert "lowbit (4 levels {-1, -0.3333, 0.3333, 1} × a per-channel scale)" in str(error.value)


def test_convert_model_with_float_fallback_names_the_dense_layer(converted, tmp_path):
    model, _ = converted["dense_function"]
    metadata = ModelMetadata(labels=[str(i) for i in range(10)],
                             preprocessing=Preprocessing(8, 8, 3, (0.0,) * 3, (1.0,) * 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        with pytest.raises(CoverageError, match=r"dense \(QuantDense"):
            convert_model(model, tmp_path / "strict.tflite", metadata=metadata,
                          float_reference=False)
    assert not list(tmp_path.iterdir())
    with pytest.warns(CoverageWarning, match=r"dense \(QuantDense"):
        report = convert_model(model, tmp_path / "allowed.tflite", metadata=metadata,
                               float_reference=False, strict_coverage=False)
    assert [layer.name for layer in report.coverage.failures] == ["dense"]
    assert any("dense (QuantDense" in warning for warning in report.warnings)
