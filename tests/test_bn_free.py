"""BN-free BNN (papers.md §8): weight standardisation, signal-propagation scales, AGC, conversion."""

import larq as lq
import numpy as np
import pytest

import tflbnn  # noqa: F401
import tensorflow as tf

from tflbnn.bn_free import (FixedScale, ScaledWSConv2D, ScaledWeightStandardizationSign,
                            bn_free_reactnet_block, signal_propagation_betas)
from tflbnn.converters import convert_model, run_lce
from tflbnn.data import load_data
from tflbnn.layers import RPReLU
from tflbnn.metadata import ModelMetadata
from tflbnn.models import get_model
from tflbnn.training import (AdaptiveGradientClipping, Distiller, agc_adam_optimizer,
                             distribution_loss, transfer_weights)


def numpy_ws(kernel, epsilon=1e-5):
    """NF-Net scaled weight standardisation per output channel (last axis), in float64."""
    w = kernel.astype(np.float64).reshape(-1, kernel.shape[-1])
    fan_in = w.shape[0]
    standardised = (w - w.mean(axis=0)) / ((w.std(axis=0) + epsilon) * np.sqrt(fan_in))
    return standardised.reshape(kernel.shape)


def test_scaled_ws_quantizer_standardises_each_output_channel():
    kernel = np.random.default_rng(0).normal(0.3, 2.0, size=(3, 3, 4, 5)).astype(np.float32)
    result = lq.quantizers.get("scaled_ws")(tf.constant(kernel)).numpy()
    np.testing.assert_allclose(result, numpy_ws(kernel), rtol=1e-5, atol=1e-7)
    per_channel = result.reshape(-1, 5)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-6)
    # Unit variance once multiplied by √N (N = 3·3·4 = 36): the "scaled" of scaled WS.
    np.testing.assert_allclose(per_channel.std(axis=0) * 6.0, 1.0, rtol=1e-4)


def test_binary_ws_quantizer_value_and_straight_through_gradient():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    quantizer = lq.quantizers.get({"class_name": "scaled_ws_sign",
                                   "config": {"clip_value": 0.15}})
    assert isinstance(quantizer, ScaledWeightStandardizationSign) and quantizer.precision == 1
    standardised = numpy_ws(kernel)
    alpha = np.abs(standardised).reshape(-1, 4).mean(axis=0)
    expected = alpha * np.where(standardised >= 0, 1.0, -1.0)
    weights = tf.Variable(kernel)
    upstream = rng.normal(size=kernel.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        value = quantizer(weights)
        objective = tf.reduce_sum(value * upstream)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    # STE through clip(Ŵ, -c, c) and on through the standardisation: the gradient is that of
    # Σ upstream·mask·Ŵ(W) with the mask 1{|Ŵ| <= c} held fixed; central differences in NumPy.
    mask = np.abs(standardised) <= 0.15
    assert 0 < mask.mean() < 1
    numeric = np.zeros(kernel.size)
    flat = kernel.astype(np.float64).ravel()
    step = 1e-6
    for i in range(kernel.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += step
        minus[i] -= step
        f = [np.sum(upstream * mask * numpy_ws(w.reshape(kernel.shape))) for w in (plus, minus)]
        numeric[i] = (f[0] - f[1]) / (2 * step)
    np.testing.assert_allclose(tape.gradient(objective, weights).numpy().ravel(), numeric,
                               rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("binary_weights", [False, True])
def test_ws_conv_applies_gain_per_output_channel_after_the_quantizer(binary_weights):
    rng = np.random.default_rng(2)
    layer = ScaledWSConv2D(6, 3, padding="same", use_bias=False, binary_weights=binary_weights)
    images = rng.choice([-1.0, 1.0], size=(2, 5, 5, 4)).astype(np.float32)
    layer(images)
    assert layer.gain.shape == (1, 1, 1, 6)
    gain = rng.uniform(0.5, 2.0, size=6).astype(np.float32)
    layer.gain.assign(gain.reshape(1, 1, 1, 6))
    standardised = numpy_ws(layer.kernel.latent_variable.numpy())
    if binary_weights:
        alpha = np.abs(standardised).reshape(-1, 6).mean(axis=0)
        standardised = alpha * np.where(standardised >= 0, 1.0, -1.0)
        # The deployed filter is ±scale per output channel, what LCE's IsBinaryFilter accepts.
        magnitudes = np.abs(standardised * gain).reshape(-1, 6)
        np.testing.assert_allclose(magnitudes, magnitudes[:1].repeat(len(magnitudes), 0),
                                   rtol=1e-6)
    expected = tf.nn.conv2d(images, (standardised * gain).astype(np.float32), 1, "SAME")
    np.testing.assert_allclose(layer(images).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_bn_free_block_rejects_bad_channels_and_scales():
    x = tf.keras.Input((8, 8, 8))
    with pytest.raises(ValueError, match="blk: out_channels must be 8 or 16 .* got 24"):
        bn_free_reactnet_block(x, 24, name="blk")
    with pytest.raises(ValueError, match="blk: beta2 must be positive"):
        bn_free_reactnet_block(x, 8, beta2=0.0, name="blk")
    with pytest.raises(ValueError, match="kernel quantizer is fixed"):
        ScaledWSConv2D(4, 3, kernel_quantizer="ste_sign")


def test_signal_propagation_betas_follow_the_reference_bookkeeping():
    alpha2 = 0.2 ** 2
    expected = [
        (1.0, (1 + alpha2) ** -0.5),                    # first block after the stem
        ((1 + 2 * alpha2) ** -0.5, (1 + 3 * alpha2) ** -0.5),  # transition: accumulated values
        (1.0, (1 + alpha2) ** -0.5),                    # reset after the transition
        ((1 + 2 * alpha2) ** -0.5, (1 + 3 * alpha2) ** -0.5),
        ((1 + 4 * alpha2) ** -0.5, (1 + 5 * alpha2) ** -0.5),
    ]
    np.testing.assert_allclose(signal_propagation_betas([1, 2, 1, 1, 1]), expected)
    with pytest.raises(ValueError, match="block 1 has stride 3"):
        signal_propagation_betas([1, 3])


@pytest.fixture(scope="module")
def small_models():
    """BN-free reactnet_a at width 0.125 on 16×16 inputs, one per precision (built once)."""
    options = dict(input_shape=(16, 16, 1), num_classes=4, width=0.125, bn_free=True)
    return {p: get_model("reactnet_a", precision=p, **options)
            for p in ("float", "binary_activations", "binary")}


def _inbound(layer):
    inbound = layer.inbound_nodes[0].inbound_layers
    return inbound if isinstance(inbound, list) else [inbound]


def test_bn_free_reactnet_a_scales_and_shortcuts(small_models):
    model = small_models["binary"]
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]  # papers.md §1.1, blocks 1-13
    variance, beta1, beta2 = 1.04, 1.0, 1.04 ** -0.5  # after the stem: β1 at 1, β2 at 1 + α²
    for index, stride in enumerate(strides, start=1):
        assert model.get_layer(f"block{index}_beta_3x3").scale == pytest.approx(beta1)
        assert model.get_layer(f"block{index}_beta_1x1").scale == pytest.approx(beta2)
        assert model.get_layer(f"block{index}_alpha_3x3").scale == pytest.approx(0.2)
        add = model.get_layer(f"block{index}_add_3x3")
        shortcut = _inbound(add)[0]
        if stride == 2:
            # AvgPool of x·β1, the input of the RSign.
            assert shortcut.name == f"block{index}_pool"
            assert _inbound(shortcut)[0].name == f"block{index}_beta_3x3"
        else:
            # The unscaled block input: the previous block's output (or the stem).
            assert shortcut.name in (f"block{index - 1}_rprelu_1x1", "stem_conv")
        # The 1×1 sub-branch adds its unscaled input out1.
        one_by_one = [l for l in model.layers if l.name.startswith(f"block{index}_add_1x1")]
        assert all(_inbound(l)[0].name == f"block{index}_rprelu_3x3" for l in one_by_one)
        variance = 1.0 if stride == 2 else variance + 0.04
        variance_after_first = variance + 0.04
        beta1, beta2 = variance ** -0.5, variance_after_first ** -0.5
        variance = variance_after_first


def test_bn_free_model_has_no_batch_norm_and_one_weight_layout(small_models):
    models = small_models
    layouts = {p: [(w.name, tuple(w.shape)) for w in m.weights] for p, m in models.items()}
    assert layouts["float"] == layouts["binary_activations"] == layouts["binary"]
    for model in models.values():
        assert not [l for l in model.submodules
                    if isinstance(l, tf.keras.layers.BatchNormalization)]
        convs = [l for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
        assert convs and all(isinstance(l, ScaledWSConv2D) for l in convs)
    binary = models["binary"]
    assert transfer_weights(models["binary_activations"], binary) == len(binary.weights)
    convs = {l.name: l for l in binary.layers if isinstance(l, ScaledWSConv2D)}
    assert not convs.pop("stem_conv").binary_weights
    assert all(l.binary_weights and l.kernel_quantizer.precision == 1 for l in convs.values())
    with pytest.raises(ValueError, match="bn_free must be true or false"):
        get_model("reactnet_a", bn_free="yes", input_shape=(16, 16, 1), num_classes=4)


def test_bn_free_model_survives_keras_round_trip(tmp_path, small_models):
    model = small_models["binary"]
    for weight in model.weights:  # move every weight off its initial value
        weight.assign(weight + np.random.default_rng(0).normal(0, 0.01, weight.shape))
    images = np.random.default_rng(1).normal(size=(3, 16, 16, 1)).astype(np.float32)
    model.save(tmp_path / "bn_free.keras")
    loaded = tf.keras.models.load_model(tmp_path / "bn_free.keras", safe_mode=True,
                                        compile=False)
    assert isinstance(loaded.get_layer("block2_bconv_3x3"), ScaledWSConv2D)
    assert isinstance(loaded.get_layer("block2_beta_3x3"), FixedScale)
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())


def numpy_agc(gradient, weight, clip=0.02, eps=1e-3):
    """The reference adaptive_clip_grad, on Keras layouts (output axis last)."""
    if gradient.ndim <= 1:
        w_norm, g_norm = np.linalg.norm(weight), np.linalg.norm(gradient)
    else:
        axes = tuple(range(gradient.ndim - 1))
        w_norm = np.sqrt((weight ** 2).sum(axis=axes, keepdims=True))
        g_norm = np.sqrt((gradient ** 2).sum(axis=axes, keepdims=True))
    max_norm = clip * np.maximum(w_norm, eps)
    clipped = gradient * max_norm / np.maximum(g_norm, 1e-6)
    return np.where(g_norm < max_norm, gradient, clipped)


def tiny_bn_free(name="tiny"):
    inputs = tf.keras.Input((8, 8, 2))
    x = ScaledWSConv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = RPReLU(name="rprelu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(3, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def test_agc_clips_units_like_the_reference_and_skips_the_classifier():
    model = tiny_bn_free()
    rng = np.random.default_rng(3)
    kernel = model.get_layer("conv").kernel
    # Output channels 0, 1 get small gradients (kept), 2, 3 large ones (clipped).
    kernel_grad = rng.normal(size=kernel.shape).astype(np.float32)
    kernel_grad[..., :2] *= 1e-4
    slope = model.get_layer("rprelu").slope
    grads = [(tf.constant(kernel_grad), kernel),
             (tf.constant(rng.normal(size=slope.shape).astype(np.float32)), slope),
             (tf.constant(rng.normal(size=(4, 3)).astype(np.float32) * 100),
              model.get_layer("logits").kernel),
             (None, model.get_layer("logits").bias)]
    clipped = AdaptiveGradientClipping(model, 0.02)(grads)
    latent = kernel.latent_variable.numpy()
    expected = numpy_agc(kernel_grad, latent)
    np.testing.assert_allclose(clipped[0][0].numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(clipped[0][0].numpy()[..., :2], kernel_grad[..., :2])
    unit_norms = np.sqrt((clipped[0][0].numpy()[..., 2:] ** 2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(unit_norms, 0.02 * np.sqrt((latent[..., 2:] ** 2)
                                                           .sum(axis=(0, 1, 2))), rtol=1e-5)
    np.testing.assert_allclose(clipped[1][0].numpy(),
                               numpy_agc(grads[1][0].numpy(), slope.numpy()), rtol=1e-5)
    assert np.linalg.norm(clipped[1][0].numpy()) < np.linalg.norm(grads[1][0].numpy())
    np.testing.assert_array_equal(clipped[2][0].numpy(), grads[2][0].numpy())  # classifier
    assert clipped[3][0] is None
    with pytest.raises(ValueError, match="no layer"):
        AdaptiveGradientClipping(model, exclude=["fc"])


@pytest.mark.parametrize("distil", [False, True])
def test_agc_runs_inside_fit_and_distiller(distil):
    """One fit step with legacy SGD(lr=1) + AGC moves every weight by minus its clipped gradient."""
    tf.keras.utils.set_random_seed(0)
    model, teacher = tiny_bn_free(), tiny_bn_free("teacher")
    rng = np.random.default_rng(4)
    images = rng.normal(size=(8, 8, 8, 2)).astype(np.float32)
    labels = np.arange(8) % 3
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = (distribution_loss(teacher(images), logits) if distil else
                tf.keras.losses.sparse_categorical_crossentropy(labels, logits, True))
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, variables)
    clipping = AdaptiveGradientClipping(model, 0.02)
    before = [np.array(tf.convert_to_tensor(getattr(v, "latent_variable", v))) for v in variables]
    expected = [w - (numpy_agc(g.numpy(), w) if clipping.is_clipped(v) else g.numpy())
                for w, g, v in zip(before, gradients, variables)]
    optimizer = tf.keras.optimizers.legacy.SGD(1.0, gradient_transformers=[clipping])
    if distil:
        trainer = Distiller(model, teacher)
        trainer.compile(optimizer=optimizer)
    else:
        trainer = model
        trainer.compile(optimizer=optimizer, loss=tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
    trainer.fit(images, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for variable, wanted in zip(variables, expected):
        after = tf.convert_to_tensor(getattr(variable, "latent_variable", variable)).numpy()
        np.testing.assert_allclose(after, wanted, rtol=1e-4, atol=1e-6, err_msg=variable.name)
    # The conv kernel's gradient was large enough to be clipped: AGC did something.
    assert not np.allclose(expected[0], before[0] - gradients[0].numpy())


def test_agc_adam_optimizer_clips_all_but_the_classifier():
    model = tiny_bn_free()
    optimizer = agc_adam_optimizer(model, 1e-3, epochs=2, steps_per_epoch=5)
    assert isinstance(optimizer, tf.keras.optimizers.legacy.Adam)
    (clipping,) = optimizer.gradient_transformers
    assert clipping.excluded == ("logits",) and clipping.clip_factor == 0.02
    assert [clipping.is_clipped(v) for v in model.trainable_variables] == \
        [not v.name.startswith("logits") for v in model.trainable_variables]


def test_small_bn_free_reactnet_a_trains_and_converts_fully_to_lce(tmp_path, spread, test_seed):
    """Trains 3 eager steps (seeded initialisation and data order, op determinism), then
    converts. Cannot flake: only whether the kernel moved is asserted of the training; parity
    measured over seeds 0-4, seed 0 at 1 and 2 threads (tests/spread_measurements.json): median
    relative difference 0.7e-6-1.2e-6, all 40 images within 1e-4 and the same class (bounds
    1e-5, 90 %, 90 %: the margin is for the flips a barely trained deep BNN can show, see
    below)."""
    data = load_data({"kind": "fashion_mnist", "source": "embedded", "limit_train": 96,
                      "limit_test": 40})
    tf.keras.utils.set_random_seed(10 * test_seed)
    model = get_model("reactnet_a", input_shape=data.preprocessing.input_shape,
                      num_classes=data.num_classes, width=0.25, stem_stride=1, bn_free=True)
    optimizer = agc_adam_optimizer(model, 2e-3, epochs=1, steps_per_epoch=3, lr_offset=0)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernel_before = model.get_layer("block5_bconv_3x3").kernel.latent_variable.numpy()
    # Eager steps: tracing this model's train step costs more than the steps themselves.
    for images, labels in data.train_dataset(32, augment=None, seed=10 * test_seed).take(3):
        with tf.GradientTape() as tape:
            batch_loss = loss(labels, model(images, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(batch_loss, variables), variables))
    assert not np.array_equal(
        model.get_layer("block5_bconv_3x3").kernel.latent_variable.numpy(), kernel_before)

    images, _ = data.test_arrays(limit=40)
    # A few flipped images are expected from a barely trained deep BNN: a pre-activation within
    # float32 rounding of zero takes another sign in LCE (tflbnn.converters.parity), so the
    # top-1 bar is lowered here and the per-image agreement is checked below instead.
    report = convert_model(model, tmp_path / "bn_free.tflite",
                           metadata=ModelMetadata(labels=data.labels,
                                                  preprocessing=data.preprocessing),
                           parity_images=images, float_reference=False, min_top1_agreement=0.0)
    assert report.coverage.num_binary_layers == 31 and report.coverage.complete
    assert report.coverage.converted_mac_share == 1.0
    assert report.coverage.op_histogram.get("LceBconv2d") == 31
    keras_logits = model(images).numpy()
    lce_logits = run_lce((tmp_path / "bn_free.tflite").read_bytes(), images)
    relative = (np.abs(lce_logits - keras_logits).max(axis=1)
                / np.maximum(1.0, np.abs(keras_logits).max(axis=1)))
    assert spread("median_relative", np.median(relative)) < 1e-5
    assert spread("share_within_1e-4", (relative < 1e-4).mean()) >= 0.9
    assert spread("top1_agreement", (lce_logits.argmax(1) == keras_logits.argmax(1)).mean()) >= 0.9
    assert spread("parity_top1_agreement", report.parity.top1_agreement) >= 0.9
