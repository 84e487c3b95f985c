"""Low-bit zoo (N2UQ, S3): published parameter counts, MACs/OPs/size, options, training, export."""

import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tflbnn.models import get_model, list_models, model_options, profile
from tflbnn.models.lowbit_resnet import parameter_breakdown
from tflbnn.n2uq import LTQRelaxation, PACT, PACTRelaxation
from tflbnn.n2uq import N2UQActivationQuantizer, n2uq_threshold_variables
from tflbnn.profiling import FLOAT_BITS, kernel_precision
from tflbnn.shift import S3Conv2D, S3Dense, to_inference_model
from tflbnn.training.weights import transfer_weights

#: Parameters of the float models as PyTorch counts them (conv/dense weights and biases, BN
#: weight and bias; no BN buffers): torchvision.models.resnet18/34/50 and mobilenet_v2 at 224×224
#: with 1000 classes, the numbers torchvision's model documentation lists ("num_params").
PUBLISHED_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                    "mobilenet_v2": 3_504_872}

LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3))}

SMALL = dict(input_shape=(28, 28, 1), num_classes=10, width=0.25)
SMALL_RESNET = dict(SMALL, stem="small")
SMALL_MOBILENET = dict(SMALL, stem_stride=1)


def trainable_params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def resnet_convs(depth):
    """The convs of torchvision's ResNet at 224×224, written out independently of the zoo.

    Returns ``(stem, blocks, downsamples, fc_in, rprelu_channels)``: convs as
    ``(output_size, kernel, in_channels, out_channels)``; ``rprelu_channels`` sums the channels
    of N2UQ's RPReLUs (one before every block conv, one after every addition).
    """
    kind, counts = LAYOUTS[depth]
    stem = (112, 7, 3, 64)
    blocks, downsamples, rprelu_channels = [], [], 0
    cin, size = 64, 56  # after the 3×3 stride-2 max-pool
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
        for index in range(count):
            stride = 2 if stage and index == 0 else 1
            out = size // stride
            if kind == "basic":
                convs = [(out, 3, cin, planes), (out, 3, planes, planes)]
            else:  # torchvision v1.5: the stride sits on the 3×3
                convs = [(size, 1, cin, planes), (out, 3, planes, planes),
                         (out, 1, planes, 4 * planes)]
            cout = convs[-1][3]
            blocks += convs
            rprelu_channels += sum(c[2] for c in convs) + cout
            if stride != 1 or cin != cout:
                downsamples.append((out, 1, cin, cout))
            cin, size = cout, out
    return stem, blocks, downsamples, cin, rprelu_channels


def macs(convs):
    return sum(size * size * k * k * cin * cout for size, k, cin, cout in convs)


def ltq_params(bits):
    """start, input_scale, output_scale and 2^bits - 1 interval lengths (papers.md §3.1)."""
    return 3 + 2**bits - 1


def model_cache(**fixed):
    """``build(name, **options)`` that builds each model once and then returns the same one."""
    cache = {}

    def build(name, **options):
        # Defaults filled in, so that small("m") and small("m", bits=<default>) are one model.
        key = (name, tuple(sorted({**model_options(name), **options}.items())))
        if key not in cache:
            cache[key] = get_model(name, **fixed, **options)
        return cache[key]

    return build


@pytest.fixture(scope="module")
def zoo224():
    """The published 224×224 / 1000-class models, each built once per module."""
    return model_cache(input_shape=(224, 224, 3), num_classes=1000)


@pytest.fixture(scope="module")
def small():
    """28×28×1 / 10-class models at width 0.25 with the small stem, each built once.

    Tests may train or perturb them but must leave frozen (non-trainable) weights alone: the
    transfer test relies on the float twin's frozen relaxations being at their initial values.
    """
    return model_cache(**SMALL_RESNET)


def test_registry_lists_the_lowbit_models():
    assert {"n2uq_resnet18", "n2uq_resnet34", "n2uq_resnet50", "n2uq_mobilenet_v2",
            "s3_resnet18", "s3_resnet50"} <= set(list_models())
    assert model_options("n2uq_resnet18") == {
        "bits": 2, "precision": "n2uq", "float_downsample": False, "thresholds": "learned",
        "weight_quantizer": "n2uq", "width": 1.0, "stem": "imagenet"}
    assert model_options("s3_resnet50")["bits"] == 3


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_n2uq_resnet_has_the_published_size_plus_reported_extras(zoo224, depth):
    model = zoo224(f"n2uq_resnet{depth}")
    _, blocks, downsamples, _, rprelu_channels = resnet_convs(depth)
    counts = parameter_breakdown(model)
    assert counts["published"] == PUBLISHED_PARAMS[f"resnet{depth}"]
    assert counts["rprelu"] == 3 * rprelu_channels  # shift_in, slope, shift_out per channel
    assert counts["quantizer"] == (len(blocks) + len(downsamples)) * ltq_params(2)
    assert counts["total"] == profile(model).params == model.count_params()
    assert trainable_params(model) == (counts["published"] + counts["rprelu"]
                                       + counts["quantizer"])


def test_n2uq_mobilenet_v2_has_the_published_size(zoo224):
    model = zoo224("n2uq_mobilenet_v2")
    counts = parameter_breakdown(model)
    assert counts["published"] == PUBLISHED_PARAMS["mobilenet_v2"]
    quantized = [layer for layer in model.layers if kernel_precision(layer) == 4]
    # 16 blocks with three convs, the first block with two, and the final 1×1 (PACT, 1 weight).
    assert len(quantized) == 16 * 3 + 2 + 1
    assert counts["quantizer"] == 50 * ltq_params(4) + 1
    assert isinstance(model.get_layer("last_conv").input_quantizer, PACT)
    depthwise = [l for l in quantized if isinstance(l, tf.keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 17
    assert all(l.depthwise_quantizer.axis == (2, 3) for l in depthwise)
    # MobileNetV2 paper: 300M multiply-adds at 224×224.
    p = profile(model)
    assert p.lowbit_macs + p.float_macs == pytest.approx(300e6, rel=0.01)


@pytest.mark.parametrize("depth", [18, 50])
def test_s3_resnet_exports_to_the_published_size(zoo224, depth):
    model = zoo224(f"s3_resnet{depth}")
    exported = to_inference_model(model)
    assert not any(isinstance(m, (S3Conv2D, S3Dense)) for m in exported.submodules)
    assert not any("latent" in w.name for w in exported.weights)
    # Exported: the float ResNet exactly (BN statistics are buffers in PyTorch).
    assert trainable_params(exported) == PUBLISHED_PARAMS[f"resnet{depth}"]
    assert parameter_breakdown(exported) == parameter_breakdown(model)
    assert profile(exported).params == profile(model).params == exported.count_params()
    # Training model: four latents (3 bits) per kernel weight instead of one.
    _, blocks, downsamples, _, _ = resnet_convs(depth)
    s3_kernels = sum(k * k * cin * cout for _, k, cin, cout in blocks + downsamples)
    assert trainable_params(model) == PUBLISHED_PARAMS[f"resnet{depth}"] + 3 * s3_kernels


def test_profiler_counts_n2uq_layers_at_their_bits(zoo224):
    stem, blocks, downsamples, fc_in, _ = resnet_convs(18)
    float_macs = macs([stem]) + fc_in * 1000
    lowbit_macs = macs(blocks + downsamples)
    assert float_macs + lowbit_macs == pytest.approx(1.8e9, rel=0.01)  # He et al. Table 1
    p = profile(zoo224("n2uq_resnet18"))
    assert (p.lowbit_macs, p.float_macs, p.binary_macs) == (lowbit_macs, float_macs, 0)
    assert p.bops == 2 * 2 * lowbit_macs
    assert p.ops == p.bops / 64 + float_macs == pytest.approx(2.245e8, rel=1e-3)
    quantized = [l for l in p.layers if l.lowbit_macs]
    assert len(quantized) == len(blocks) + len(downsamples)
    assert {(l.weight_bits, l.input_bits) for l in quantized} == {(2, 2)}
    assert p.lowbit_params == sum(k * k * cin * cout for _, k, cin, cout in blocks + downsamples)
    assert p.size_bits == 2 * p.lowbit_params + 32 * (p.params - p.lowbit_params)
    assert p.quantizer_params == parameter_breakdown(zoo224("n2uq_resnet18"))["quantizer"]
    assert "2/2" in p.table() and "f/f" in p.table()


def test_s3_profile_counts_shift_weights_with_float_activations(zoo224):
    _, blocks, downsamples, _, _ = resnet_convs(18)
    p = profile(zoo224("s3_resnet18"))
    s3 = [l for l in p.layers if l.layer_type == "S3Conv2D"]
    assert len(s3) == len(blocks) + len(downsamples)
    assert {(l.weight_bits, l.input_bits) for l in s3} == {(3, FLOAT_BITS)}
    assert p.lowbit_macs == p.binary_macs == p.bops == 0
    assert p.ops == p.float_macs == pytest.approx(1.8e9, rel=0.01)
    assert p.lowbit_params == sum(k * k * cin * cout for _, k, cin, cout in blocks + downsamples)
    assert p.size_bits == 3 * p.lowbit_params + 32 * (p.params - p.lowbit_params)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_bits_option_sets_every_quantizer_and_the_bops(small, bits):
    model = small("n2uq_resnet18", bits=bits)
    convs = [l for l in model.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert len(convs) == 16 + 3
    for layer in convs:
        assert layer.kernel_quantizer.bits == layer.input_quantizer.bits == bits
        assert layer.input_quantizer.intervals.shape == (2**bits - 1,)
    p = profile(model)
    assert {(l.weight_bits, l.input_bits) for l in p.layers if l.lowbit_macs} == {(bits, bits)}
    assert p.bops == bits * bits * p.lowbit_macs > 0


def test_float_downsample_keeps_the_shortcut_convs_float(small):
    quantized, model = small("n2uq_resnet18", bits=2), small("n2uq_resnet18", float_downsample=True)
    shortcuts = [l for l in model.layers if "downsample_conv" in l.name]
    assert len(shortcuts) == 3
    assert all(type(l) is tf.keras.layers.Conv2D for l in shortcuts)
    assert all(isinstance(quantized.get_layer(l.name).input_quantizer, N2UQActivationQuantizer)
               for l in shortcuts)
    rows = {l.name: l for l in profile(model).layers}
    assert all(rows[l.name].float_macs and not rows[l.name].lowbit_macs for l in shortcuts)
    shortcut_macs = sum(rows[l.name].float_macs for l in shortcuts)
    assert profile(model).lowbit_macs == profile(quantized).lowbit_macs - shortcut_macs
    counts, quantized_counts = parameter_breakdown(model), parameter_breakdown(quantized)
    assert counts["published"] == quantized_counts["published"]
    assert counts["quantizer"] == quantized_counts["quantizer"] - 3 * ltq_params(2)


def test_s3_bits_option_sets_the_layers_and_their_latents(small):
    for bits, latents in ((3, 4), (2, 2)):
        model = small("s3_resnet18", bits=bits)
        layers = [l for l in model.layers if isinstance(l, S3Conv2D)]
        assert len(layers) == 16 + 3 and {l.bits for l in layers} == {bits}
        assert {len(l.weights) for l in layers} == {latents}  # no bias
        assert {l.weight_bits for l in profile(model).layers if l.layer_type == "S3Conv2D"} == \
            {bits}


def one_train_step(model, rng):
    """One Adam step on random data; returns the names of the weights it changed."""
    x = rng.normal(size=(4,) + model.input_shape[1:]).astype(np.float32)
    y = np.arange(4) % model.output_shape[-1]
    # Eagerly: tracing the train function of a ResNet-18 costs ~30 s on 2 cores, one eager step
    # a few seconds, and both run the same layer code.
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), run_eagerly=True,
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in model.weights]
    assert np.isfinite(model.train_on_batch(x, y))
    return {w.name for w, old in zip(model.weights, before) if not np.array_equal(w.numpy(), old)}


@pytest.mark.parametrize("name", ["n2uq_resnet18", "s3_resnet18"])
def test_small_models_run_forward_and_train(small, name):
    """One Adam step. Cannot flake: Adam's first step moves every element with a non-zero
    gradient by about the rate, and only whether each weight moved at all is checked (seeded
    inputs and initialisation)."""
    model = small(name)  # the defaults: 2-bit N2UQ, 3-bit S3
    rng = np.random.default_rng(1)
    out = model(rng.normal(size=(2, 28, 28, 1)).astype(np.float32), training=False)
    assert out.shape == (2, 10) and np.all(np.isfinite(out))
    changed = one_train_step(model, rng)
    # Every kernel (S3: every latent) and every N2UQ threshold and scale takes the step.
    kernels = [w for l in model.layers if isinstance(l, (lq.layers.QuantConv2D, S3Conv2D))
               for w in l.trainable_weights]
    assert len(kernels) >= 19 and all(w.name in changed for w in kernels)
    thresholds = n2uq_threshold_variables(model)
    assert len(thresholds) == (19 * 4 if name.startswith("n2uq") else 0)


def test_float_twin_has_float_kernels_and_frozen_relaxations(small):
    """One Adam step. Cannot flake: which weights move (the kernels) and which cannot (the
    frozen relaxations) does not depend on the values reached."""
    twin = small("n2uq_resnet18", precision="float")
    convs = [l for l in twin.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert len(convs) == 19 and all(kernel_precision(l) is None for l in convs)
    assert {type(l.input_quantizer) for l in convs} == {LTQRelaxation}
    assert n2uq_threshold_variables(twin) == []
    p = profile(twin)
    assert p.lowbit_macs == p.binary_macs == p.bops == 0 and p.ops == p.float_macs
    changed = one_train_step(twin, np.random.default_rng(2))
    relaxations = {w.name for l in convs for w in l.input_quantizer.weights}
    assert len(relaxations) == 19 * 4 and not relaxations & changed
    assert all(l.kernel.name in changed for l in convs)


def test_relaxations_are_the_clip_at_init_and_follow_the_g_ste():
    # Off the interval boundaries, where the two piecewise-linear slopes are defined.
    x = tf.constant(np.linspace(-1.0, 3.0, 81, dtype=np.float32) + 0.013)
    for bits in (2, 3, 4):
        np.testing.assert_allclose(LTQRelaxation(bits)(x), np.clip(x, 0, 2), atol=1e-6)
    np.testing.assert_allclose(PACTRelaxation(4)(x), np.clip(x, 0, 2), atol=1e-6)
    # With moved thresholds the relaxation's slope is still the quantizer's G-STE gradient.
    grads = []
    for layer in (N2UQActivationQuantizer(3), LTQRelaxation(3)):
        layer.build(x.shape)
        layer.set_weights([np.float32(-0.2), np.linspace(0.1, 0.7, 7, dtype=np.float32),
                           np.float32(1.3), np.float32(0.8)])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        grads.append(tape.gradient(y, x).numpy())
    assert np.count_nonzero(grads[0]) > 40
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_pact_forward_and_gradient_follow_the_reference_code():
    pact = PACT(bits=2)
    x = tf.constant([-1.0, 0.2, 0.4, 1.0, 1.9, 2.0, 3.5])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = pact(x)
    # Levels {0, 2/3, 4/3, 2}; round half to even as torch.round.
    np.testing.assert_allclose(y, [0, 0, 2 / 3, 4 / 3, 2, 2, 2], atol=1e-6)
    np.testing.assert_array_equal(tape.gradient(y, x), [0, 1, 1, 1, 1, 0, 0])
    # d/dα: round(c K / α) / K below α, 2 at or above it (the rounded term is not detached).
    expected = sum([0, 0, 1 / 3, 2 / 3, 1, 2, 2])
    assert float(tape.gradient(y, pact.clip_value)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="bits"):
        PACT(bits=1)
    with pytest.raises(ValueError, match="clip_initializer"):
        PACT(clip_initializer=0.0)


def keras_round_trip(model, tmp_path, rng):
    """Save and load ``model`` (weights moved off their initial values); returns the copy."""
    for weight in model.weights:
        weight.assign(weight + rng.normal(scale=0.05, size=weight.shape).astype(np.float32))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, safe_mode=True)
    x = rng.normal(size=(2,) + model.input_shape[1:]).astype(np.float32)
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert trainable_params(loaded) == trainable_params(model)
    return loaded


@pytest.mark.parametrize("name,options", [("n2uq_resnet18", {"bits": 3}), ("s3_resnet18", {})])
def test_keras_round_trip_gives_identical_outputs(small, tmp_path, name, options):
    loaded = keras_round_trip(small(name, **options), tmp_path, np.random.default_rng(3))
    if name.startswith("n2uq"):
        conv = loaded.get_layer("stage2_block1_downsample_conv")
        assert conv.input_quantizer.bits == conv.kernel_quantizer.bits == 3


def test_keras_round_trip_of_pact_and_the_frozen_relaxations(tmp_path):
    inputs = tf.keras.Input((6, 6, 3))
    x = lq.layers.QuantConv2D(4, 1, input_quantizer=PACT(3), name="pact_conv")(inputs)
    x = lq.layers.QuantConv2D(4, 1, name="relaxed", input_quantizer=PACTRelaxation(
        4, trainable=False, clip_initializer=1.5))(x)
    x = LTQRelaxation(2, trainable=False, name="ltq_relaxation")(x)
    loaded = keras_round_trip(tf.keras.Model(inputs, x), tmp_path, np.random.default_rng(5))
    assert loaded.get_layer("pact_conv").input_quantizer.bits == 3
    relaxed = loaded.get_layer("relaxed").input_quantizer
    assert type(relaxed) is PACTRelaxation and not relaxed.trainable
    assert relaxed.clip_initializer == 1.5
    assert not loaded.get_layer("ltq_relaxation").trainable


def test_saved_pact_and_relaxations_load_without_importing_the_zoo(tmp_path):
    # The converters do not import the zoo, so a float twin or an N2UQ MobileNetV2 must load
    # with tflbnn alone (a quantizer missing from the custom objects stays a string in larq).
    inputs = tf.keras.Input((6, 6, 3))
    x = lq.layers.QuantConv2D(4, 1, input_quantizer=PACT(3), name="pact_conv")(inputs)
    x = lq.layers.QuantConv2D(4, 1, input_quantizer=LTQRelaxation(2, trainable=False),
                              name="relaxed")(x)
    model = tf.keras.Model(inputs, PACTRelaxation(4, trainable=False, name="pact_relaxed")(x))
    path, sample = tmp_path / "model.keras", tmp_path / "sample.npz"
    model.save(path)
    x = np.random.default_rng(7).normal(size=(2, 6, 6, 3)).astype(np.float32)
    np.savez(sample, x=x, expected=model(x).numpy())
    code = ("import sys, numpy as np\n"
            "from tflbnn.converters.keras_io import load_keras_model\n"
            "assert 'tflbnn.models' not in sys.modules\n"
            f"model = load_keras_model({str(path)!r})\n"
            f"sample = np.load({str(sample)!r})\n"
            "np.testing.assert_array_equal(model(sample['x']).numpy(), sample['expected'])\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_float_twin_transfers_to_n2uq_leaving_thresholds_at_init(small):
    twin = small("n2uq_resnet18", precision="float")
    rng = np.random.default_rng(4)
    for weight in twin.trainable_weights:  # stands for training the twin
        weight.assign(weight + rng.normal(scale=0.05, size=weight.shape).astype(np.float32))
    model = small("n2uq_resnet18", bits=2)
    assert transfer_weights(twin, model) == len(model.weights)
    for source, target in zip(twin.weights, model.weights):
        np.testing.assert_array_equal(source.numpy(), target.numpy())
    # The thresholds and scales are the quantizer's initial ones (start 0, a_i = Δ = 2/3).
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantConv2D):
            quantizer = layer.input_quantizer
            assert float(quantizer.start) == 0.0
            np.testing.assert_allclose(quantizer.intervals, [2 / 3] * 3, rtol=1e-6)
            assert float(quantizer.input_scale) == float(quantizer.output_scale) == 1.0
    # The twin and the shortcut option must agree: the float 1×1 has no quantizer weights.
    with pytest.raises(ValueError, match="downsample_conv"):
        transfer_weights(small("n2uq_resnet18", float_downsample=True), model)


@pytest.mark.parametrize("name,options,message", [
    ("n2uq_resnet18", {"depth": 3}, "valid options: .*float_downsample"),
    ("s3_resnet50", {"float_downsample": True}, "valid options: .*density_regularization"),
    ("n2uq_mobilenet_v2", {"stem": "small"}, "valid options: .*stem_stride"),
    ("n2uq_resnet34", {"bits": 1}, r"bits must be one of \(2, 3, 4\)"),
    ("n2uq_resnet18", {"bits": True}, "bits"),
    ("n2uq_resnet18", {"precision": "binary"}, "precision must be one of"),
    ("n2uq_resnet18", {"float_downsample": "yes"}, "float_downsample"),
    ("n2uq_resnet18", {"stem": "tiny"}, "stem must be one of"),
    ("n2uq_resnet50", {"width": 0}, "width"),
    ("n2uq_mobilenet_v2", {"stem_stride": 3}, "stem_stride"),
    ("s3_resnet18", {"bits": 4}, r"bits must be one of \(2, 3\)"),
    ("s3_resnet18", {"density_regularization": -1.0}, "density_regularization"),
])
def test_invalid_options_raise_and_name_what_is_valid(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_model(name, input_shape=(32, 32, 3), num_classes=10, **options)
