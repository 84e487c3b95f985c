"""RSign, RPReLU, LearnableBias and the ReActNet blocks against NumPy formulas; .keras round trip."""

import numpy as np
import pytest

import tflbnn
import tensorflow as tf

from tflbnn import RPReLU, RSign, LearnableBias


def test_rsign_forward_and_gradients_to_input_and_threshold():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, size=(2, 3, 3, 4)).astype(np.float32)
    bias = np.array([0.3, -0.2, 0.0, 1.0], dtype=np.float32)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    layer = RSign()
    layer.build(x.shape)
    layer.bias.assign(bias)
    x_tf = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_tf)
        y = layer(x_tf)
        loss = tf.reduce_sum(y * upstream)
    z = x + bias
    np.testing.assert_array_equal(y.numpy(), np.where(z >= 0, 1.0, -1.0))
    local = np.where(np.abs(z) < 1, 2 - 2 * np.abs(z), 0.0)
    np.testing.assert_allclose(tape.gradient(loss, x_tf).numpy(), upstream * local, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, layer.bias).numpy(),
                               (upstream * local).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)


def test_rprelu_matches_formula_and_starts_with_slope_quarter():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    layer = RPReLU()
    layer.build(x.shape)
    np.testing.assert_array_equal(layer.slope.numpy(), np.full(5, 0.25, np.float32))
    gamma, beta, zeta = rng.normal(size=(3, 5)).astype(np.float32)
    layer.shift_in.assign(-gamma)
    layer.slope.assign(beta)
    layer.shift_out.assign(zeta)
    expected = np.where(x > gamma, x - gamma + zeta, beta * (x - gamma) + zeta)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_rprelu_gradient_takes_the_slope_at_the_kink():
    """At ``x = gamma`` the gradient is beta (PReLU's ``x <= gamma`` branch), not 1 + beta."""
    gamma = np.array([0.5, -1.25, 0.0], np.float32)
    beta = np.array([0.25, -0.5, 2.0], np.float32)
    zeta = np.array([0.125, 0.0, -1.0], np.float32)
    # Rows: exactly at the kink, just above it, just below it (float32 steps of 2^-10 keep
    # x - gamma exact, so "at" is exactly 0).
    x = np.stack([gamma, gamma + 2.0**-10, gamma - 2.0**-10]).astype(np.float32)
    upstream = np.array([[1.0, 2.0, -1.0], [0.5, 1.0, 3.0], [-2.0, 1.0, 0.25]], np.float32)
    layer = RPReLU()
    layer.build(x.shape)
    layer.shift_in.assign(-gamma)
    layer.slope.assign(beta)
    layer.shift_out.assign(zeta)
    x_tf = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(layer(x_tf) * upstream)
    above = x > gamma
    local = np.where(above, 1.0, beta)  # d f / d x; d f / d shift_in is the same
    np.testing.assert_array_equal(local[0], beta)  # the kink row takes the x <= gamma branch
    np.testing.assert_allclose(tape.gradient(loss, x_tf).numpy(), upstream * local, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, layer.shift_in).numpy(),
                               (upstream * local).sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, layer.slope).numpy(),
                               (upstream * np.where(above, 0.0, x - gamma)).sum(axis=0),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tape.gradient(loss, layer.shift_out).numpy(), upstream.sum(axis=0),
                               rtol=1e-6)


def test_learnable_bias_adds_per_channel():
    layer = LearnableBias()
    layer.build((None, 3))
    layer.bias.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer(np.zeros((2, 3), np.float32)).numpy(), [[1, 2, 3]] * 2)


def _block_model(precision="binary", out_factor=2, stride=2):
    inputs = tf.keras.Input((8, 8, 32))
    x = tflbnn.reactnet_block(inputs, 32 * out_factor, stride=stride, precision=precision,
                              name="b")
    return tf.keras.Model(inputs, x)


@pytest.mark.parametrize("out_factor,stride,shape", [(1, 1, (8, 8, 32)), (2, 2, (4, 4, 64)),
                                                     (2, 1, (8, 8, 64))])
def test_reactnet_block_shapes_and_conv_layout(out_factor, stride, shape):
    model = _block_model(out_factor=out_factor, stride=stride)
    assert model.output_shape[1:] == shape
    convs = [layer for layer in model.layers if "bconv" in layer.name]
    assert len(convs) == 1 + out_factor  # one 3x3, one or two (duplicated) 1x1
    assert all(conv.kernel_quantizer.precision == 1 for conv in convs)
    assert all(conv.input_quantizer is None for conv in convs)


def test_reactnet_block_rejects_bad_channel_ratio_and_precision():
    inputs = tf.keras.Input((8, 8, 32))
    with pytest.raises(ValueError, match="out_channels"):
        tflbnn.reactnet_block(inputs, 48, name="bad")
    with pytest.raises(ValueError, match="precision"):
        tflbnn.reactnet_block(inputs, 32, precision="ternary", name="bad2")


def test_step1_and_float_precisions_keep_the_weight_layout():
    shapes = {p: [w.shape for w in _block_model(precision=p).weights]
              for p in ("float", "binary_activations", "binary")}
    assert shapes["float"] == shapes["binary_activations"] == shapes["binary"]


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = _block_model()
    rng = np.random.default_rng(3)
    for weight in model.weights:  # move every weight off its initial value
        weight.assign(weight + rng.normal(scale=0.1, size=weight.shape).astype(np.float32))
    x = rng.normal(size=(2, 8, 8, 32)).astype(np.float32)
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model(x, training=False).numpy(),
                                  loaded(x, training=False).numpy())
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
