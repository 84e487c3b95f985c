"""Coverage of binary layers LCE's rules keep in float: grouped (< 32 channels/group), depthwise.

LCE 0.16.0 makes ``LceBconv2d`` ops only of grouped binary convolutions with a multiple of 32
input channels per group. For fewer its converter prints "Invalid binary grouped convolution"
and keeps a float ``CONV_2D``; ``GroupedQuantConv2D`` computes the same convolution as a float
``DEPTHWISE_CONV_2D``. Such layers are reported as not eligible, with their MAC shares, and do
not fail strict coverage; binary ``Dense`` layers and float-input binary convs still do.
"""

import warnings

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tflbnn import RSign
from tflbnn.bimlp import GroupedQuantConv2D
from tflbnn.blocks import batch_norm
from tflbnn.cli import main
from tflbnn.converters import (CoverageError, CoverageWarning, check_coverage, convert_lce,
                               convert_model, read_tflite)
from tflbnn.data import load_data
from tflbnn.metadata import ModelMetadata

POSITIONS = 14 * 14  # 28x28 input, stride-2 stem
# Hand-counted MACs: output positions x kernel taps x input channels per group x filters.
MACS = {
    "bconv": POSITIONS * 9 * 64 * 64,              # 3x3, 64 -> 64: eligible
    "grouped_pairs": POSITIONS * 7 * 2 * 32,       # 1x7, 64 -> 32, 32 groups of 2 channels
    "grouped_single": POSITIONS * 7 * 1 * 32,      # 7x1, 32 -> 32, 32 groups of 1 channel
    "binary_depthwise": POSITIONS * 9 * 32,        # 3x3 depthwise on 32 channels
}
TOTAL_MACS = sum(MACS.values())
INELIGIBLE = ("grouped_pairs", "grouped_single", "binary_depthwise")


def eligibility_model(binary_dense=False):
    """One eligible bconv, then grouped (2 and 1 channels per group) and depthwise ones."""
    binary = dict(use_bias=False, kernel_quantizer="reactnet_weight_sign",
                  kernel_constraint="weight_clip")
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(64, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(inputs)
    x = batch_norm("stem_bn")(x)
    x = RSign(name="sign1")(x)
    x = lq.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, name="bconv", **binary)(x)
    x = RSign(name="sign2")(batch_norm("bn1")(x))
    x = lq.layers.QuantConv2D(32, (1, 7), groups=32, padding="same", name="grouped_pairs",
                              **binary)(x)
    x = RSign(name="sign3")(batch_norm("bn2")(x))
    x = GroupedQuantConv2D(32, (7, 1), groups=32, padding="same", name="grouped_single",
                           **binary)(x)
    x = RSign(name="sign4")(batch_norm("bn3")(x))
    x = lq.layers.QuantDepthwiseConv2D(3, padding="same", use_bias=False,
                                       depthwise_quantizer="reactnet_weight_sign",
                                       depthwise_constraint="weight_clip",
                                       name="binary_depthwise")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(batch_norm("bn4")(x))
    if binary_dense:
        outputs = lq.layers.QuantDense(10, input_quantizer="ste_sign", name="binary_dense",
                                       **binary)(x)
    else:
        outputs = tf.keras.layers.Dense(10, name="logits")(x)
    model = tf.keras.Model(inputs, outputs, name="eligibility")
    # Trained-like BN statistics and sign thresholds. At their initial values (BN the identity,
    # thresholds 0) a binary conv that sums to exactly 0 feeds the next sign directly: LCE's
    # integer accumulator gives sign(0) = +1, Keras' float sum a residue of ±1e-7 and so either
    # sign (measured: 448 of 37,632 signs differ), which no trained model shows.
    rng = np.random.default_rng(23)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.3, beta),
                               rng.normal(0, 0.3, mean), rng.uniform(0.5, 2.0, variance)])
        elif isinstance(layer, RSign):
            layer.set_weights([rng.normal(0, 0.3, layer.bias.shape)])
    return model


@pytest.fixture(scope="module")
def converted():
    tf.keras.utils.set_random_seed(21)
    model = eligibility_model()
    return model, convert_lce(model)


def test_ineligible_layers_become_float_ops(converted):
    _, flatbuffer = converted
    histogram = read_tflite(flatbuffer).op_histogram()
    assert histogram["LceBconv2d"] == 1
    # LCE's fall-back for the 2-channel groups is a float grouped CONV_2D (next to the stem);
    # GroupedQuantConv2D and the depthwise layer are float DEPTHWISE_CONV_2D ops.
    assert histogram["CONV_2D"] == 2
    assert histogram["DEPTHWISE_CONV_2D"] == 2


def test_strict_coverage_passes_and_reports_ineligible_layers(converted):
    model, flatbuffer = converted
    with pytest.warns(CoverageWarning, match="3 of 4 binary layer.* not eligible") as caught:
        report = check_coverage(model, flatbuffer)  # strict
    assert "grouped_pairs" in str(caught[0].message)
    assert report.complete and report.failures == ()
    by_name = {layer.name: layer for layer in report.layers}
    assert list(by_name) == ["bconv", *INELIGIBLE]
    assert by_name["bconv"].eligible and by_name["bconv"].converted
    assert by_name["bconv"].reason is None
    for name in INELIGIBLE:
        assert not by_name[name].eligible and not by_name[name].converted
    assert "2 input channel(s) per group" in by_name["grouped_pairs"].reason
    assert "1 input channel(s) per group" in by_name["grouped_single"].reason
    assert "depthwise" in by_name["binary_depthwise"].reason
    for name, macs in MACS.items():
        assert by_name[name].macs == macs
        assert by_name[name].mac_share == pytest.approx(macs / TOTAL_MACS)
    ineligible_share = sum(MACS[name] for name in INELIGIBLE) / TOTAL_MACS
    assert report.ineligible_mac_share == pytest.approx(ineligible_share)
    assert report.converted_mac_share == pytest.approx(MACS["bconv"] / TOTAL_MACS)
    assert report.eligible_converted_mac_share == pytest.approx(1.0)

    summary = report.summary()
    assert "coverage: 1/4 binary layers" in summary
    assert "eligible by LCE's rules: 1 layers, 100.0% of their MACs converted" in summary
    assert f"not eligible: 3 layers, {100 * ineligible_share:.1f}% of binary MACs" in summary
    assert all(f"not eligible: {name} " in summary for name in INELIGIBLE)
    listed = report.as_dict()
    assert [layer["name"] for layer in listed["not_eligible"]] == list(INELIGIBLE)
    assert [(layer["name"], layer["eligible"], layer["converted"]) for layer in listed["layers"]] \
        == [("bconv", True, True)] + [(name, False, False) for name in INELIGIBLE]
    assert listed["eligible_converted_mac_share"] == pytest.approx(1.0)
    assert listed["num_eligible"] == 1


def test_misused_binary_layers_still_fail_strict_coverage():
    tf.keras.utils.set_random_seed(22)
    model = eligibility_model(binary_dense=True)
    flatbuffer = convert_lce(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        with pytest.raises(CoverageError, match="binary_dense") as error:
            check_coverage(model, flatbuffer)
    report = error.value.report
    assert [layer.name for layer in report.failures] == ["binary_dense"]
    assert "fully-connected" in report.failures[0].reason and report.failures[0].eligible
    message = str(error.value)
    assert message.startswith("1 of 5 binary layer(s) did not become LceBconv2d")
    assert "Besides, 3 of 5 binary layer(s) are not eligible" in message
    assert report.eligible_converted_mac_share < 1.0


def test_convert_model_and_cli_convert_models_with_ineligible_layers(converted, tmp_path,
                                                                     capsys):
    model, _ = converted
    data = load_data({"kind": "fashion_mnist", "source": "embedded"})
    images, _ = data.test_arrays(limit=50)
    metadata = ModelMetadata(labels=data.labels, preprocessing=data.preprocessing,
                             name="eligibility")
    with pytest.warns(CoverageWarning, match="not eligible"):
        report = convert_model(model, tmp_path / "api.tflite", metadata=metadata,
                               parity_images=images, float_reference=False)
    assert report.parity.passed and report.parity.top1_agreement == 1.0
    assert report.warnings == (report.coverage.ineligible_note(),)
    saved = ModelMetadata.load(tmp_path / "api.json").extra["conversion"]
    assert [layer["name"] for layer in saved["coverage"]["not_eligible"]] == list(INELIGIBLE)
    assert "not eligible" in saved["warnings"][0]

    model.save(tmp_path / "model.keras")
    metadata.save(tmp_path / "model.json")
    np.save(tmp_path / "parity.npy", images)
    with pytest.warns(CoverageWarning, match="not eligible"):
        code = main(["convert", str(tmp_path / "model.keras"), "-o", str(tmp_path / "cli.tflite"),
                     "--parity-images", str(tmp_path / "parity.npy"), "--no-float-reference"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "eligible by LCE's rules: 1 layers, 100.0% of their MACs converted" in printed
    assert "not eligible: grouped_single (GroupedQuantConv2D" in printed
    assert (tmp_path / "cli.tflite").is_file()
