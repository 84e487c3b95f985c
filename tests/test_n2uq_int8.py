"""Full-integer TFLite conversion of N2UQ models (tflbnn.converters.n2uq_int8).

One small N2UQ network per bit width (float stem conv + BN + max pool, two blocks ``RPReLU →
QuantConv2D(LTQ, N2UQ weights) → BN → + shortcut``, global pool, float Dense) with non-default
thresholds and scales, trained briefly on real Fashion-MNIST images, converted once per module;
and a 2-bit variant with an ``RPReLU`` after each add, as in the ResNet-18 (not folded into an
LTQ: ``RPReLUInt8``).
"""

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2)
import larq as lq
import tensorflow as tf

from tflbnn.converters import n2uq_int8 as n2uq_int8
from tflbnn.converters.n2uq_int8 import (LEVELS_ZERO_POINT, N2UQInt8Conv2D, N2UQInt8Error,
                                         RPReLUInt8, activation_ranges, check_n2uq_int8,
                                         check_n2uq_int8_parity,
                                         convert_n2uq_int8, export_n2uq_int8_model,
                                         int8_export_specs, n2uq_int8_size,
                                         restore_exact_kernels, staircase, weight_multiplier)
from tflbnn.converters.int8_weights import run_tflite
from tflbnn.data import load_fashion_mnist
from tflbnn.layers import RPReLU
from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer

WIDTH = 16
TRAIN = slice(0, 1500)    # training and calibration images
HELD_OUT = slice(1500, 2000)  # the ~500 parity images, never trained on
#: Top-1 agreement the int8 models must reach, per bit width. Not the 99 % of the issue, which
#: int8 cannot give these models (module docstring of n2uq_int8): N2UQ networks are chaotic, an
#: LTQ turns any rounding of its input into level flips and the blocks multiply them; a trained
#: width-0.25 N2UQ ResNet-18 gives 94.5 % (2 bits) and 98.9 % (4 bits), and its Keras model
#: agrees with itself only 95.4 % / 99.0 % under ±0.001 input noise. A broken conversion gives
#: 28-31 % (the converter's bias defect). Measured here over seeds 0-4 × 1/2 threads
#: (tests/spread_measurements.json): 2 bits 90.2-98.6 % (the post-add model 94.0-97.2 %),
#: 4 bits 95.8-98.4 %; floors two spreads below the lowest. Not counted: the 2-bit model of
#: seed 4 (86.2 % / 87.2 %, median relative difference 0.29 / 0.27), which range tails of 0.05,
#: 0.2 or min/max convert at 97-98 % and 0.03-0.04: a converter defect at the default tail,
#: reported; the relative bound below fails it.
MIN_TOP1 = {2: 0.73, 4: 0.90}
#: Bound on the median relative logit difference (the parity check's ``max_relative_delta``).
#: Measured as above: 2 bits 0.030-0.087 (post-add 0.030-0.037), 4 bits 0.021-0.073; bounds
#: two spreads above the largest.
MAX_RELATIVE_DELTA = {2: 0.2, 4: 0.18}
#: Everything but the exact parts may differ by int8 rounding; the exact parts are checked
#: exactly below.
ALLOWED_OPS = {"QUANTIZE", "DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D",
               "MEAN", "FULLY_CONNECTED"}


@pytest.fixture(scope="module")
def fashion():
    images, labels = load_fashion_mnist("test", source="embedded")
    return images.astype(np.float32) / 255.0, labels


def build_model(bits: int, seed: int, rprelu_after_add: bool = False) -> tf.keras.Model:
    """The test network, with every LTQ moved off its default thresholds and scales.

    ``rprelu_after_add`` puts an ``RPReLU`` (``out{block}``, non-default shifts and per-channel
    slopes in (0.05, 0.6)) after each add, as the ResNet-18 has: the next block's ``RPReLU``
    still folds into its LTQ, these do not."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(WIDTH, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(momentum=0.8, name="stem_bn")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool")(x)
    for block in range(2):
        y = RPReLU(name=f"rprelu{block}")(x)
        y = lq.layers.QuantConv2D(
            WIDTH, 3, padding="same", use_bias=False, name=f"qconv{block}",
            input_quantizer=N2UQActivationQuantizer(bits=bits),
            kernel_quantizer=N2UQWeightQuantizer(bits=bits))(y)
        y = tf.keras.layers.BatchNormalization(momentum=0.8, name=f"bn{block}")(y)
        x = tf.keras.layers.Add(name=f"add{block}")([x, y])
        if rprelu_after_add:
            x = RPReLU(name=f"out{block}")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="classifier")(x))
    rng = np.random.default_rng(seed)
    k = 2**bits - 1
    for block in range(2):
        quantizer = model.get_layer(f"qconv{block}").input_quantizer
        quantizer.start.assign(0.1 + 0.05 * block)
        quantizer.intervals.assign((1.6 / k) * (1 + 0.3 * rng.uniform(-1, 1, k)))
        quantizer.input_scale.assign(1.2)
        quantizer.output_scale.assign(0.7)
        if rprelu_after_add:
            rprelu = model.get_layer(f"out{block}")
            rprelu.shift_in.assign(rng.uniform(-0.3, 0.3, WIDTH))
            rprelu.slope.assign(rng.uniform(0.05, 0.6, WIDTH))
            rprelu.shift_out.assign(rng.uniform(-0.3, 0.3, WIDTH))
    return model


def _trained_case(fashion, bits: int, seed: int, rprelu_after_add: bool = False) -> dict:
    images, labels = fashion
    model = build_model(bits, seed=seed, rprelu_after_add=rprelu_after_add)
    model.compile(tf.keras.optimizers.Adam(3e-3),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)  # tracing the N2UQ training step costs more than 40 steps
    data = (tf.data.Dataset.from_tensor_slices((images[TRAIN], labels[TRAIN]))
            .shuffle(1500, seed=seed).repeat().batch(64))
    model.fit(data, steps_per_epoch=40, epochs=1, verbose=0)
    flatbuffer = convert_n2uq_int8(model, images[TRAIN][:200])
    return {"bits": bits, "model": model, "flatbuffer": flatbuffer,
            "export": export_n2uq_int8_model(model, batch_size=None),
            "images": images[HELD_OUT], "labels": labels[HELD_OUT]}


@pytest.fixture(scope="module", params=[2, 4], ids=["2bit", "4bit"])
def case(request, fashion, test_seed):
    """A trained model of the given bit width, its export models and its int8 flatbuffer.

    Seeded (initialisation, non-default LTQ parameters, data order: seed ``bits + 10·test
    seed``) and trained in 40 eager steps under op determinism, so one machine always gets the
    same model; the statistical tests below have margins measured over other seeds."""
    return _trained_case(fashion, request.param, seed=request.param + 10 * test_seed)


@pytest.fixture(scope="module")
def post_add_case(fashion, test_seed):
    """The 2-bit model with an unfolded ``RPReLU`` after each add (seeded like ``case``)."""
    return _trained_case(fashion, 2, seed=2 + 10 * test_seed, rprelu_after_add=True)


def _sub_model(model: tf.keras.Model, names: list[str], inputs: bool = False) -> tf.keras.Model:
    layers = [model.get_layer(name) for name in names]
    return tf.keras.Model(model.input, [layer.input if inputs else layer.output
                                        for layer in layers])


def _quant_layers(export: tf.keras.Model) -> list[str]:
    return [layer.name for layer in export.layers if isinstance(layer, N2UQInt8Conv2D)]


def _level_step(quantizer: N2UQActivationQuantizer) -> np.float32:
    """The Keras level 1 value ``float32(Δ) · scale2``: what the output scale must equal."""
    return np.float32(np.float32(2 / quantizer.num_intervals)
                      * np.float32(quantizer.output_scale.numpy()))


# ------------------------------------------------------------------ the export model in float


def test_export_with_float_ltq_inputs_equals_keras(case, spread):
    """Without the int8 input grid the transform is exact up to float32 rounding.

    What can differ: BN folded into the kernel and bias (``W·f`` and ``b·f + β - μ·f`` instead
    of conv then BN) and the per-channel kernel fake quant (``k·m·s`` instead of ``α·k/K``),
    each an ulp or so. The LTQ decisions on equal inputs are bit-identical (same float32 ops),
    but an ulp upstream moves a later LTQ's input, and one within an ulp of a threshold takes
    the other level. Measured over seeds 0-4 × 1/2 threads (tests/spread_measurements.json):
    images over 2e-6 of the logit range 0 of 200 in 19 of 20 runs, 3 in one (seed 4, 4 bits,
    2 threads; up to 6.7e-4 of the range); argmax changes 0. Allowed: 9 images (two spreads
    above the largest count), each within 1e-2 of the range (15× the measured flips).
    """
    model, images = case["model"], case["images"][:200]
    export = export_n2uq_int8_model(model, quantize_ltq_inputs=False, batch_size=None)
    keras_out = model.predict(images, verbose=0)
    export_out = export.predict(images, verbose=0)
    scale = max(1.0, np.abs(keras_out).max())
    deltas = np.abs(export_out - keras_out).max(axis=1) / scale
    flipped = spread("images_over_rounding", np.sum(deltas > 2e-6))
    changed = spread("argmax_differences", np.sum(export_out.argmax(1) != keras_out.argmax(1)))
    assert spread("max_abs_delta_over_scale", deltas.max()) <= 1e-2
    assert flipped <= 9 and changed <= 9, (flipped, changed)


def test_export_levels_are_the_ltq_of_the_rounded_input(case, spread):
    """With int8 LTQ inputs, each layer's levels equal the original RPReLU + LTQ applied to
    the rounded input ``fake_quant(x + offset) - offset``, exactly, per element.

    Top-1 agreement of the whole export model with Keras on 500 images, measured over seeds
    0-4 × 1/2 threads (tests/spread_measurements.json): 2 bits 99.0-99.8 %, 4 bits 99.2-100 %;
    floor 97 %, two spreads below the lowest."""
    model, export = case["model"], case["export"]
    images = case["images"][:32]
    names = _quant_layers(export)
    inputs = _sub_model(export, names, inputs=True)(images)
    for name, x in zip(names, inputs):
        config = export.get_layer(name).levels
        assert config["input_range"] is not None and len(config["thresholds"][0]) == WIDTH, \
            "the RPReLU should be folded into per-channel thresholds"
        levels = staircase(x, **n2uq_int8._staircase_arguments(config)).numpy()
        with pytest.raises(ValueError, match="comparison must be one of.*'greater'"):
            staircase(x, **{**n2uq_int8._staircase_arguments(config), "comparison": "greater"})
        offset = n2uq_int8._fake_quant(np.asarray(config["input_offset"], np.float32),
                                       *config["offset_range"])
        rounded = n2uq_int8._fake_quant(x + offset, *config["input_range"]) - offset
        block = name[-1]
        quantizer = model.get_layer(name).input_quantizer
        reference = quantizer(model.get_layer(f"rprelu{block}")(rounded)).numpy()
        step = _level_step(quantizer)
        reference_index = np.rint(reference / step)
        # Keras' level i is float32(i·Δ)·scale2, an ulp or so from i·(Δ·scale2).
        np.testing.assert_allclose(reference_index * step, reference, rtol=1e-6)
        assert np.array_equal(np.rint(levels / config["level_step"]), reference_index), name
    keras_out = model.predict(case["images"], verbose=0)
    export_out = export.predict(case["images"], verbose=0)
    # Only the rounding of LTQ inputs to the fine int8 grid differs from Keras here.
    assert spread("top1_agreement", np.mean(export_out.argmax(1) == keras_out.argmax(1))) >= 0.97


# ------------------------------------------------------------------ the flatbuffer


def test_flatbuffer_is_exact_full_integer(case):
    model, flatbuffer, bits = case["model"], case["flatbuffer"], case["bits"]
    report = check_n2uq_int8(flatbuffer, model)
    assert set(report.op_histogram) <= ALLOWED_OPS, report.op_histogram
    assert report.op_histogram["QUANTIZE"] == 1 and report.op_histogram["DEQUANTIZE"] == 1
    assert "PRELU" not in report.op_histogram  # folded into the thresholds
    # Per LTQ one indicator DEPTHWISE_CONV_2D and one summing CONV_2D (with the stem and the
    # two N2UQ convs: 5 CONV_2D), whatever the bit width.
    assert report.op_histogram["DEPTHWISE_CONV_2D"] == 2
    assert report.op_histogram["CONV_2D"] == 5
    assert report.input_quantization[0] == report.output_quantization[0] == "float32"
    assert [layer for layer, *_ in report.levels_tensors] == ["qconv0", "qconv1"]
    assert all(scale > 0 and zero_point == LEVELS_ZERO_POINT
               for *_, scale, zero_point in report.levels_tensors)
    assert [(layer, channels) for layer, channels, _ in report.weight_layers] == [
        ("qconv0", WIDTH), ("qconv1", WIDTH)]
    assert all(deviation == 0.0 for *_, deviation in report.weight_layers)


def test_int8_weights_read_back_are_the_n2uq_levels(case):
    """The stored kernel is ``k·m`` (odd k) with the export scales, and dequantizes to the
    BN-folded N2UQ kernel ``W_q · f`` to float32 rounding."""
    graph, _, _ = n2uq_int8._read_graph(case["flatbuffer"])
    _, weight_specs = int8_export_specs(case["export"])
    m = weight_multiplier(case["bits"])
    for spec in weight_specs:
        op = n2uq_int8._linear_op(graph, spec.layer, spec.layer)
        weights = op.inputs[1]
        assert weights.dtype == "int8" and weights.quantized_dimension == 0
        assert np.array_equal(weights.scale, np.asarray(spec.scales, np.float32))
        levels = weights.data.astype(np.int64)
        assert np.all(levels % m == 0) and np.all((levels // m) % 2 == 1)
        assert np.abs(levels).max() <= (2**case["bits"] - 1) * m
        kernel, _ = case["export"].get_layer(spec.layer).tflite_kernel()
        dequantized = levels * weights.scale[:, None, None, None]
        np.testing.assert_allclose(dequantized, kernel, rtol=1e-6, atol=1e-9)
        # Bias at the scale the int8 kernel assumes: input scale × weight scale.
        bias = op.inputs[2]
        np.testing.assert_allclose(bias.scale, op.inputs[0].scale[0] * weights.scale,
                                   rtol=1e-6)


def test_ltq_outputs_are_exactly_on_levels(case, spread):
    """Every value of every LTQ output tensor is ``k · Δ · scale2``: the indicators saturate to
    exactly ``u_q ≥ g_q`` on the int8 input and the summing conv counts them."""
    model, export = case["model"], case["export"]
    graph, _, _ = n2uq_int8._read_graph(case["flatbuffer"])
    interpreter = tf.lite.Interpreter(model_content=case["flatbuffer"],
                                      experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    k_max = 2**case["bits"] - 1
    levels_specs, _ = int8_export_specs(export)
    assert [spec.layer for spec in levels_specs] == _quant_layers(export)
    for spec in levels_specs:
        ops = n2uq_int8._staircase_ops(graph, spec)
        assert ops.indicators.name == "DEPTHWISE_CONV_2D" and ops.levels.name == "CONV_2D"
        output = ops.levels.outputs[0]
        step = _level_step(model.get_layer(spec.layer).input_quantizer)
        assert output.scale[0] == step and output.zero_point[0] == LEVELS_ZERO_POINT
        compared = ops.indicators.inputs[0]
        # The export thresholds on the int8 grid of u: (K, C) integers.
        thresholds = compared.zero_point[0] + np.rint(
            np.asarray(spec.thresholds, np.float64) / compared.scale[0]).astype(np.int32)
        assert thresholds.shape == (k_max, WIDTH)
        seen = set()
        for image in case["images"][:16]:
            interpreter.set_tensor(input_index, image[None])
            interpreter.invoke()
            stored = interpreter.get_tensor(output.index).astype(np.int32)
            index = stored - LEVELS_ZERO_POINT
            assert index.min() >= 0 and index.max() <= k_max
            values = (stored - output.zero_point[0]) * output.scale[0]
            assert np.array_equal(values, index * step)
            seen.update(np.unique(index).tolist())
            u = interpreter.get_tensor(compared.index).astype(np.int32)
            passed = u[..., None, :] >= thresholds[None, None, None]  # (1, H, W, K, C)
            # The indicators, channel c·K + k: -128 (failed) or 127 (passed), nothing between.
            indicators = interpreter.get_tensor(ops.indicators.outputs[0].index)
            expected = np.where(np.swapaxes(passed, -1, -2), 127, -128)  # (1, H, W, C, K)
            assert np.array_equal(indicators, expected.reshape(indicators.shape))
            # The int8 staircase: count of thresholds at or below the int8 input, per channel.
            assert np.array_equal(index, passed.sum(axis=-2))
        assert spread(f"{spec.layer}_levels_seen", len(seen)) >= 3, \
            f"{spec.layer}: levels {sorted(seen)} too few to test anything"


def test_the_whole_model_runs_in_xnnpack(case, spread, test_threads):
    """The int8 model is one XNNPACK partition: no op falls back to a TFLite kernel between
    delegated ones (the comparison/select form of the LTQ cut the trained ResNet-18 into 25
    partitions and ran 3.8 times slower), and XNNPACK computes what the reference kernels do up
    to its own requantization rounding (measured: at most 2 output steps on 500 images).

    On the 50 images compared, measured over seeds 0-4 × 1/2 threads
    (tests/spread_measurements.json, this test and the post-add one): median per-image largest
    difference 0-1 output steps, bound 3; top-1 agreement of XNNPACK with the reference
    kernels 94-100 %, floor 80 % (two spreads below the lowest). Interpreter threads cannot
    change an integer kernel's output: checked exactly."""
    _assert_one_xnnpack_partition(case, spread, test_threads)


def _assert_one_xnnpack_partition(case: dict, spread, threads: int) -> None:
    delegated = tf.lite.Interpreter(model_content=case["flatbuffer"])
    delegated.allocate_tensors()
    details = delegated._get_ops_details()
    assert sum(op["op_name"] == "DELEGATE" for op in details) == 1, [
        op["op_name"] for op in details]
    images = case["images"][:50]
    fast = run_tflite(case["flatbuffer"], images, num_threads=threads)
    exact = run_tflite(case["flatbuffer"], images,
                       op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    # Integer kernels: splitting the work over threads cannot change a single output.
    np.testing.assert_array_equal(run_tflite(case["flatbuffer"], images, num_threads=3 - threads),
                                  fast)
    step = check_n2uq_int8(case["flatbuffer"]).output_quantization[1]
    assert spread("xnnpack_top1_agreement", np.mean(fast.argmax(1) == exact.argmax(1))) >= 0.8
    assert spread("xnnpack_median_steps",
                  np.median(np.abs(fast - exact).max(axis=1)) / step) <= 3 + 1e-6 / step


# ------------------------------------------------------------------ RPReLU not folded into an LTQ


def test_rprelu_after_add_is_depthwise_convs_in_one_xnnpack_partition(post_add_case, spread,
                                                                     test_threads):
    """An ``RPReLU`` after an add becomes two 1×1 ``DEPTHWISE_CONV_2D`` (one with a fused
    ``RELU``) and an ``ADD``, no ``PRELU`` (which XNNPACK does not delegate in int8: the
    ResNet-18 ran in 9 partitions, 1.5 ms instead of 0.8), and the model stays one partition."""
    model, flatbuffer = post_add_case["model"], post_add_case["flatbuffer"]
    # rprelu0 and rprelu1 fold into their LTQs.
    assert [layer.name for layer in post_add_case["export"].layers
            if isinstance(layer, RPReLUInt8) and layer.depthwise] == ["out0", "out1"]
    # Float (and no folding): the depthwise form is RPReLU up to float32 rounding.
    export = export_n2uq_int8_model(model, quantize_ltq_inputs=False, batch_size=None)
    keras_out = model.predict(post_add_case["images"][:200], verbose=0)
    export_out = export.predict(post_add_case["images"][:200], verbose=0)
    assert spread("max_abs_delta_over_scale", np.abs(export_out - keras_out).max()
                  / max(1.0, np.abs(keras_out).max())) <= 2e-6
    report = check_n2uq_int8(flatbuffer, model)
    assert set(report.op_histogram) <= ALLOWED_OPS, report.op_histogram
    # Two indicator ops and two per unfolded RPReLU.
    assert report.op_histogram["DEPTHWISE_CONV_2D"] == 2 + 2 * 2
    graph, _, _ = n2uq_int8._read_graph(flatbuffer)
    for name in ("out0", "out1"):
        convs = [op for op in graph.ops if op.name == "DEPTHWISE_CONV_2D"
                 and f"/{name}/" in op.outputs[0].name]
        assert len(convs) == 2
        # One branch is the ReLU (output range [0, max]), the other the linear part.
        assert sorted(op.outputs[0].zero_point[0] == -128 for op in convs) == [False, True]
    _assert_one_xnnpack_partition(post_add_case, spread, test_threads)
    _assert_parity(post_add_case, spread)


def test_rprelu_int8_forms_equal_rprelu():
    """Both forms of ``RPReLUInt8`` compute ``RPReLU`` in float, on 4-D and 2-D inputs; the
    export picks the ``PRELU`` form when a slope is 1 or more (no positive ReLU factor)."""
    rng = np.random.default_rng(0)
    for shape in ((3, 5, 5, 6), (7, 6)):
        x = rng.normal(0, 1, shape).astype(np.float32)
        weights = [rng.uniform(-0.5, 0.5, 6), rng.uniform(-0.5, 0.9, 6),
                   rng.uniform(-0.5, 0.5, 6)]
        reference = RPReLU()
        reference.build(shape)
        reference.shift_in.assign(weights[0])
        reference.slope.assign(weights[1])
        reference.shift_out.assign(weights[2])
        expected = reference(x).numpy()
        for depthwise in (True, False):
            layer = RPReLUInt8(depthwise=depthwise)
            layer.build(shape)
            layer.set_rprelu_weights(*weights)
            np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    layer = RPReLUInt8()
    layer.build((1, 6))
    with pytest.raises(ValueError, match="slope below 1"):
        layer.set_rprelu_weights(np.zeros(6), np.full(6, 1.5), np.zeros(6))
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3)(inputs)
    x = lq.layers.QuantConv2D(4, 1, input_quantizer=N2UQActivationQuantizer(bits=2),
                              kernel_quantizer=N2UQWeightQuantizer(bits=2), name="qconv")(x)
    x = RPReLU(name="steep")(x)
    model = tf.keras.Model(inputs, x)
    model.get_layer("steep").slope.assign([0.5, 1.0, 0.2, 0.3])
    assert not export_n2uq_int8_model(model).get_layer("steep").depthwise


def _assert_parity(case: dict, spread):
    """The parity check with this module's bounds, every figure recorded before it is checked."""
    report = check_n2uq_int8_parity(case["model"], case["flatbuffer"], case["images"],
                                    min_top1_agreement=MIN_TOP1[case["bits"]],
                                    max_relative_delta=MAX_RELATIVE_DELTA[case["bits"]],
                                    raise_on_failure=False)
    spread("top1_agreement", report.top1_agreement)
    spread("median_relative_delta", report.median_relative_delta)
    assert report.num_images == 500 and report.passed, report.summary()
    return report


def test_top1_agreement_with_keras(case, spread):
    """Parity of the int8 model with Keras on 500 held-out images (bounds: ``MIN_TOP1``,
    ``MAX_RELATIVE_DELTA``). The trained models are above chance (10 %, one standard deviation
    1.3 % on 500 images): measured 33.8-58.4 % (2 bits) and 42.6-56.2 % (4 bits), floor 25 %;
    int8 accuracy minus Keras accuracy -1.4 to +0.4 points, bound ±5 (two spreads beyond)."""
    report = _assert_parity(case, spread)
    keras_accuracy = spread("keras_accuracy", np.mean(report.keras_predictions == case["labels"]))
    int8_accuracy = np.mean(report.lce_predictions == case["labels"])
    accuracy_change = spread("accuracy_change", int8_accuracy - keras_accuracy)
    # The int8 model is as good a classifier as Keras (a few points either way).
    assert keras_accuracy > 0.25  # trained: chance is 0.1
    assert abs(accuracy_change) <= 0.05


@pytest.mark.parametrize("case", [2], indirect=True, ids=["2bit"])
def test_activation_ranges_set_the_float_tensor_scales(case, fashion, spread):
    """The percentile ranges are what the flatbuffer's float tensors get, they lie inside the
    calibration min/max, and the layers left to the converter are the ones that must be.

    The narrowest range as a fraction of its tensor's min/max width, measured over seeds 0-4 ×
    1/2 threads (tests/spread_measurements.json): 0.55-0.68; bound 0.95 (1 would be min/max)."""
    model, export = case["model"], case["export"]
    images = fashion[0][TRAIN][:200]  # what the case fixture calibrated with
    ranges = activation_ranges(model, images)
    # "stem" only feeds its BN (fused into the conv); "classifier" is the model output.
    assert set(ranges) == {"stem_bn", "qconv0", "add0", "qconv1", "add1", "gap"}
    outputs = _sub_model(export, list(ranges))(images)
    widths = []
    for (name, (low, high)), values in zip(ranges.items(), outputs):
        values = values.numpy()
        assert min(0.0, values.min()) <= low <= 0.0 <= high <= max(0.0, values.max()), name
        widths.append((high - low) / (max(0.0, values.max()) - min(0.0, values.min())))
    assert spread("min_width", min(widths)) < 0.95  # the tails matter: not min/max in disguise
    with pytest.raises(ValueError, match="tail must be a percentage"):
        activation_ranges(model, images, tail=50)
    with pytest.raises(ValueError, match="activation_ranges: no images"):
        activation_ranges(model, images[:0])
    graph, _, _ = n2uq_int8._read_graph(case["flatbuffer"])
    add = next(op for op in graph.ops if op.name == "ADD" and "/add0/" in op.outputs[0].name)
    low, high = ranges["add0"]
    assert add.outputs[0].scale[0] == pytest.approx((high - low) / 255, rel=1e-5)


@pytest.mark.parametrize("case", [4], indirect=True, ids=["4bit"])
def test_percentile_ranges_keep_the_logit_error_bounded(case, fashion, spread):
    """The percentile ranges (the default) against the converter's own min/max calibration
    (``range_tail=None``): median relative logit difference from Keras.

    On this model neither calibration is reliably closer to Keras: measured over seeds 0-4 ×
    1/2 threads (tests/spread_measurements.json), percentile 0.021-0.073, min/max 0.021-0.109,
    their ratio 0.38-2.56 (median 1.06). Asserting that the percentile ranges reduce the error
    (as this test once did, with a ratio below 0.8) fails on most seeds. What holds: the
    percentile error stays below ``MAX_RELATIVE_DELTA[4]`` (0.18, two spreads above the
    largest measured value)."""
    model, images = case["model"], case["images"]
    calibrated = convert_n2uq_int8(model, fashion[0][TRAIN][:200], range_tail=None)
    errors = [check_n2uq_int8_parity(model, flatbuffer, images, min_top1_agreement=0.0,
                                     raise_on_failure=False).median_relative_delta
              for flatbuffer in (case["flatbuffer"], calibrated)]
    spread("min_max_error", errors[1])
    spread("error_ratio", errors[0] / errors[1])
    assert spread("percentile_error", errors[0]) < MAX_RELATIVE_DELTA[4], errors


def test_size_against_float32(case, spread):
    size = n2uq_int8_size(case["model"], case["flatbuffer"])
    assert size.lce_bytes == len(case["flatbuffer"])
    # 8-bit weights instead of float32; on a model this small tensor names and op metadata
    # weigh as much as the weights (measured 2.4x at 2 bits, 2.8x at 4 bits; 3.3x on a 2-bit
    # width-0.25 N2UQ ResNet-18, whose staircase convolutions add 14 % to the file). Over seeds
    # 0-4 × 1/2 threads: 2.417-2.435 and 2.765-2.776, so 2.0 is 20 spreads below.
    assert spread("size_ratio", size.ratio) > 2.0


# ------------------------------------------------------------------ the checks can fail


@pytest.mark.parametrize("case", [2], indirect=True, ids=["2bit"])
def test_raw_converter_output_is_rejected(case, fashion):
    """Without ``restore_exact_kernels`` the converter's file fails the check: it re-quantized
    the N2UQ kernels (values 42.33 → 42 at 2 bits) and put the biases at the calibrated, not
    the final, input scale. Also shows the restore pass is what makes the file exact."""
    export = export_n2uq_int8_model(case["model"])
    converter = tf.lite.TFLiteConverter.from_keras_model(export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in fashion[0][:50])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    raw = converter.convert()
    with pytest.raises(N2UQInt8Error) as error:
        check_n2uq_int8(raw, case["model"])
    text = str(error.value)
    assert "N2UQ kernel of layer 'qconv0'" in text and "not stored losslessly" in text
    assert "is not at scale input × weight scale" in text
    check_n2uq_int8(restore_exact_kernels(raw, export), export)


def _patched(flatbuffer: bytes, tensor_name: str, change) -> bytes:
    """A copy of ``flatbuffer`` with ``change(data_view, scale_view)`` applied to one tensor."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(flatbuffer)
    subgraph = schema.Model.GetRootAs(data, 0).Subgraphs(0)
    model = schema.Model.GetRootAs(data, 0)
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        if tensor.Name().decode() == tensor_name:
            buffer = model.Buffers(tensor.Buffer())
            change(buffer.DataAsNumpy() if buffer.DataLength() else None,
                   tensor.Quantization().ScaleAsNumpy())
            return bytes(data)
    raise AssertionError(f"no tensor {tensor_name!r}")


@pytest.mark.parametrize("case", [4], indirect=True, ids=["4bit"])
def test_check_names_a_wrong_level_scale_and_a_wrong_weight(case):
    flatbuffer, model = case["flatbuffer"], case["model"]
    graph, _, _ = n2uq_int8._read_graph(flatbuffer)
    specs = {spec.layer: spec for spec in int8_export_specs(model)[0]}
    staircase_ops = n2uq_int8._staircase_ops(graph, specs["qconv1"])
    levels = staircase_ops.levels.outputs[0]

    def nudge_scale(_, scale):
        scale[0] = np.nextafter(scale[0], np.float32(1))  # one ulp: float32 equality matters

    with pytest.raises(N2UQInt8Error, match=r"LTQ of layer 'qconv1'.*"
                       + levels.name.replace("/", ".") + r".*must have scale"):
        check_n2uq_int8(_patched(flatbuffer, levels.name, nudge_scale), model)

    weights = n2uq_int8._linear_op(graph, "qconv0", "").inputs[1]

    def bump_weight(data, _):
        data[0] = np.uint8((int(data.view(np.int8)[0]) + 1) & 0xFF)  # k·m + 1

    with pytest.raises(N2UQInt8Error, match=r"N2UQ kernel of layer 'qconv0'.*not k·8"):
        check_n2uq_int8(_patched(flatbuffer, weights.name, bump_weight), model)

    bias = staircase_ops.indicators.inputs[2]

    def move_threshold(data, _):
        values = data.view(np.int32)
        values[5] += 127  # one threshold one int8 step further

    with pytest.raises(N2UQInt8Error, match=r"LTQ of layer 'qconv1'.*differs from.*in 1 "
                       r"channel\(s\)"):
        check_n2uq_int8(_patched(flatbuffer, bias.name, move_threshold), model)

    def widen(_, scale):
        scale[0] *= 2  # multiplier 2: 64·2 = 128 no longer saturates the passed indicators

    with pytest.raises(N2UQInt8Error, match=r"LTQ of layer 'qconv1'.*indicators saturate only"):
        check_n2uq_int8(_patched(flatbuffer, staircase_ops.indicators.outputs[0].name, widen),
                        model)


@lq.utils.register_keras_custom_object
class SineForTest(tf.keras.layers.Layer):
    """An op TFLite has no int8 kernel for: the converter leaves it in float."""

    def call(self, inputs):
        return tf.math.sin(inputs)


def test_float_op_in_the_body_is_named(fashion):
    images = fashion[0]
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = lq.layers.QuantConv2D(4, 3, input_quantizer=N2UQActivationQuantizer(bits=2),
                              kernel_quantizer=N2UQWeightQuantizer(bits=2), name="qconv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = SineForTest(name="sine")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))
    with pytest.raises(N2UQInt8Error) as error:
        convert_n2uq_int8(model, images[:20])
    problems = "\n".join(error.value.problems)
    assert "SIN #" in problems and "/sine/Sin" in problems
    assert "DEQUANTIZE to float inside the body" in problems


@pytest.mark.parametrize("case", [2], indirect=True, ids=["2bit"])
def test_int8_inputs_and_outputs(case):
    flatbuffer = convert_n2uq_int8(case["model"], case["images"][:50], inference_io_type="int8")
    report = check_n2uq_int8(flatbuffer, case["model"])
    assert "QUANTIZE" not in report.op_histogram and "DEQUANTIZE" not in report.op_histogram
    dtype, scale, zero_point = report.input_quantization
    assert dtype == "int8" and scale == pytest.approx(1 / 255) and zero_point == -128
    assert report.output_quantization[0] == "int8"
    with pytest.raises(ValueError, match="int8 input or output"):
        check_n2uq_int8_parity(case["model"], flatbuffer, case["images"][:10])


def test_unsupported_models_are_rejected_by_name():
    inputs = tf.keras.Input((8, 8, 3))
    x = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign",
                              kernel_quantizer=N2UQWeightQuantizer(bits=2), name="mixed")(inputs)
    with pytest.raises(ValueError, match="layer 'mixed'.*input_quantizer SteSign"):
        export_n2uq_int8_model(tf.keras.Model(inputs, x))
    plain = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3)(inputs), name="plain")
    with pytest.raises(ValueError, match="'plain' has no N2UQ layers"):
        export_n2uq_int8_model(plain)


def test_depthwise_dense_standalone_and_identical_ltqs(fashion, spread, test_seed):
    """The other layer kinds: a 3-bit depthwise conv (multiplier 2, bias, BN folded), a
    standalone LTQ layer, two 1×1 convs whose LTQs are identical (default initialisation: equal
    constants that the converter would merge), and a QuantDense whose negative ``input_scale``
    and ``output_scale`` turn into ``u ≤ g`` indicators (kernel -127) and a negated kernel."""
    images = fashion[0]
    tf.keras.utils.set_random_seed(3 + 10 * test_seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = lq.layers.QuantDepthwiseConv2D(
        3, padding="same", depth_multiplier=2, name="depthwise",
        input_quantizer=N2UQActivationQuantizer(bits=3),
        depthwise_quantizer=N2UQWeightQuantizer(bits=3, axis=(2, 3)))(x)
    x = tf.keras.layers.BatchNormalization(name="depthwise_bn")(x)
    x = N2UQActivationQuantizer(bits=2, name="standalone")(x)
    x = tf.keras.layers.MaxPool2D()(x)
    for name in ("same_a", "same_b"):
        x = lq.layers.QuantConv2D(8, 1, name=name, input_quantizer=N2UQActivationQuantizer(),
                                  kernel_quantizer=N2UQWeightQuantizer())(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(10, name="dense", kernel_quantizer=N2UQWeightQuantizer(bits=2),
                             input_quantizer=N2UQActivationQuantizer(
                                 bits=2, start_initializer=-1.5, input_scale_initializer=-1.0,
                                 output_scale_initializer=-0.5))(x)
    model = tf.keras.Model(inputs, x)
    rng = np.random.default_rng(3 + 10 * test_seed)
    for bn in ("stem_bn", "depthwise_bn"):
        layer = model.get_layer(bn)
        shape = layer.gamma.shape
        layer.gamma.assign(rng.uniform(-1.5, 1.5, shape))  # negative BN factors too
        layer.moving_mean.assign(rng.uniform(-0.2, 0.2, shape))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape))
    keras_out = model.predict(images[:100], verbose=0)
    # The LTQs are not all stuck at level 0 (measured 1.23-1.58 over seeds 0-4 × 1/2 threads).
    assert spread("max_abs_logit", np.abs(keras_out).max()) > 0.1
    export = export_n2uq_int8_model(model, quantize_ltq_inputs=False, batch_size=None)
    assert spread("max_abs_delta_over_scale",
                  np.abs(export.predict(images[:100], verbose=0) - keras_out).max()
                  / max(1.0, np.abs(keras_out).max())) <= 2e-6
    flatbuffer = convert_n2uq_int8(model, images[:100])
    report = check_n2uq_int8(flatbuffer, model)
    assert {layer for layer, *_ in report.levels_tensors} == {
        "depthwise", "standalone", "same_a", "same_b", "dense"}
    assert [layer for layer, *_ in report.weight_layers] == ["depthwise", "same_a", "same_b",
                                                             "dense"]
    # The N2UQ depthwise conv and one indicator op per LTQ.
    assert report.op_histogram["DEPTHWISE_CONV_2D"] == 1 + 5
    graph, _, _ = n2uq_int8._read_graph(flatbuffer)
    specs = {spec.layer: spec for spec in int8_export_specs(model)[0]}
    assert specs["dense"].comparison == "less_equal"
    assert {spec.comparison for name, spec in specs.items() if name != "dense"} == {
        "greater_equal"}
    dense = n2uq_int8._staircase_ops(graph, specs["dense"])
    assert np.all(dense.indicators.inputs[1].data == -127)
    # The identical LTQs of same_a and same_b (16 and 8 input channels) keep their own exact
    # constants, equal per channel.
    same = [n2uq_int8._staircase_ops(graph, specs[name]) for name in ("same_a", "same_b")]
    assert np.array_equal(same[0].indicator_bias.reshape(-1, 3)[:8],
                          same[1].indicator_bias.reshape(-1, 3))
    assert all(np.array_equal(ops.indicators.inputs[2].data, ops.indicator_bias) for ops in same)
