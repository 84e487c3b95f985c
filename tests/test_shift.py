"""S3 shift weights and DeepShift-Q against the formulas of papers.md §4 written in NumPy."""

import itertools

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2)
import larq as lq
import tensorflow as tf

from tflbnn.shift import (DeepShiftQ, S3Conv2D, S3Dense, S3DensityRegularizer, s3_weight,
                          to_inference_model)

VALUES_3BIT = np.array([-4, -2, -1, 0, 1, 2, 4], np.float32)
VALUES_2BIT = np.array([-1, 0, 1], np.float32)


def np_b01(z):
    return (z > 0).astype(np.float32)


def np_sgn(z):
    return np.where(z >= 0, 1.0, -1.0).astype(np.float32)


def random_latents(rng, shape, count=4):
    return [rng.normal(size=shape).astype(np.float32) for _ in range(count)]


def weight_and_gradients(latents, upstream):
    """W = s3_weight(*latents) and d(sum(W * upstream)) / d latent for each latent."""
    variables = [tf.Variable(latent) for latent in latents]
    with tf.GradientTape() as tape:
        weight = s3_weight(*variables)
        loss = tf.reduce_sum(weight * upstream)
    return weight.numpy(), [g.numpy() for g in tape.gradient(loss, variables)]


def test_3bit_weight_table_over_all_latent_signs():
    # Each latent at -1, 0 or +1: b01(0) = 0 and sgn(0) = +1 (papers.md §4.1).
    expected = {}
    for sign, sparse, s1, s2 in itertools.product([-1.0, 0.0, 1.0], repeat=4):
        magnitude = 0 if sparse <= 0 else {(False, False): 1, (False, True): 1,
                                           (True, False): 2, (True, True): 4}[(s1 > 0, s2 > 0)]
        expected[(sign, sparse, s1, s2)] = (-1 if sign < 0 else 1) * magnitude
    latents = np.array(list(expected), np.float32).T  # 4 rows of 81 combinations
    weight = s3_weight(*[tf.constant(row) for row in latents]).numpy()
    np.testing.assert_array_equal(weight, np.array(list(expected.values()), np.float32))
    assert set(weight.tolist()) == set(VALUES_3BIT.tolist())


def test_2bit_weight_table():
    sign, sparse = np.array(list(itertools.product([-1.0, 0.0, 1.0], repeat=2)), np.float32).T
    weight = s3_weight(tf.constant(sign), tf.constant(sparse)).numpy()
    # (sign, sparse) in the order (-1,-1), (-1,0), (-1,1), (0,-1), ...: zero unless sparse > 0.
    np.testing.assert_array_equal(weight, [0, 0, -1, 0, 0, 1, 0, 0, 1])
    assert set(weight.tolist()) == set(VALUES_2BIT.tolist())


@pytest.mark.parametrize("bits,values", [(3, VALUES_3BIT), (2, VALUES_2BIT)])
def test_random_latents_give_only_value_set_weights_and_reach_all(bits, values):
    rng = np.random.default_rng(0)
    latents = random_latents(rng, (3, 3, 8, 16), count=bits + 1 if bits == 3 else 2)
    weight = s3_weight(*latents).numpy()
    assert np.isin(weight, values).all()
    assert set(np.unique(weight).tolist()) == set(values.tolist())


def test_large_latents_stay_in_the_value_set():
    # latent + stop_gradient(q - latent) would round to 0 or 2 here instead of 1.
    big = tf.constant([3e7 + 2.0, -3e7, 5e-8], tf.float32)
    weight = s3_weight(big, big, big, big).numpy()
    np.testing.assert_array_equal(weight, [4.0, 0.0, 4.0])


def test_3bit_gradients_match_chain_rule():
    rng = np.random.default_rng(1)
    sign, sparse, s1, s2 = latents = random_latents(rng, (4, 5, 6))
    upstream = rng.normal(size=sign.shape).astype(np.float32)
    weight, grads = weight_and_gradients(latents, upstream)
    power = 2.0 ** (np_b01(s1) * (np_b01(s2) + 1))
    np.testing.assert_array_equal(weight, np_sgn(sign) * np_b01(sparse) * power)
    d_power = upstream * np_sgn(sign) * np_b01(sparse) * power * np.log(2.0)
    expected = [upstream * np_b01(sparse) * power,
                upstream * np_sgn(sign) * power,
                d_power * (np_b01(s2) + 1),
                d_power * np_b01(s1)]
    for name, grad, want in zip(["sign", "sparse", "shift1", "shift2"], grads, expected):
        np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_2bit_gradients_match_chain_rule():
    rng = np.random.default_rng(2)
    sign, sparse = latents = random_latents(rng, (7, 9), count=2)
    upstream = rng.normal(size=sign.shape).astype(np.float32)
    weight, (grad_sign, grad_sparse) = weight_and_gradients(latents, upstream)
    np.testing.assert_array_equal(weight, np_sgn(sign) * np_b01(sparse))
    np.testing.assert_allclose(grad_sign, upstream * np_b01(sparse), rtol=1e-6)
    np.testing.assert_allclose(grad_sparse, upstream * np_sgn(sign), rtol=1e-6)


def test_one_shift_latent_alone_is_rejected():
    with pytest.raises(ValueError, match="both shift latents"):
        s3_weight(tf.ones(2), tf.ones(2), tf.ones(2))


def test_density_regularizer_value_and_gradient():
    rng = np.random.default_rng(3)
    latent = np.concatenate([rng.normal(size=200), [0.0]]).astype(np.float32)
    variable = tf.Variable(latent)
    with tf.GradientTape() as tape:
        penalty = S3DensityRegularizer(0.25)(variable)
    expected = 0.25 * np.maximum(-latent, 0).sum()
    assert penalty.numpy() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(tape.gradient(penalty, variable).numpy(),
                               np.where(latent < 0, -0.25, 0.0), rtol=1e-6)
    with pytest.raises(ValueError, match=">= 0"):
        S3DensityRegularizer(-1.0)


def test_layer_adds_the_regularizer_to_its_losses_and_to_the_fit_loss():
    layer = S3Conv2D(4, 3, density_regularization=1e-2)
    model = tf.keras.Sequential([tf.keras.Input((5, 5, 3)), layer])
    sparse = layer.latent_sparse.numpy()
    expected_penalty = 1e-2 * np.maximum(-sparse, 0).sum()
    assert len(model.losses) == 1
    assert model.losses[0].numpy() == pytest.approx(expected_penalty, rel=1e-5)
    model.compile(loss="mse")
    x = np.ones((2, 5, 5, 3), np.float32)
    y = np.zeros((2, 3, 3, 4), np.float32)
    mse = np.mean(model(x).numpy() ** 2)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + expected_penalty, rel=1e-5)
    assert S3Conv2D(4, 3, density_regularization=0.0)(x).shape == (2, 3, 3, 4)
    unregularised = S3Conv2D(4, 3, density_regularization=0.0)
    unregularised(x)
    assert unregularised.losses == []


@pytest.mark.parametrize("layer,input_shape,fan_out", [
    (S3Conv2D(128, 3, bits=3), (1, 9, 9, 16), 3 * 3 * 128),
    (S3Dense(512, bits=3), (1, 64), 512),
])
def test_latents_are_untruncated_he_fan_out_normal(layer, input_shape, fan_out, spread):
    layer.build(input_shape)
    std = np.sqrt(2.0 / fan_out)
    latents = [layer.latent_sign, layer.latent_sparse, layer.latent_shift1, layer.latent_shift2]
    samples = [latent.numpy().ravel() for latent in latents]
    # >= 18k samples each. One sigma of the sample std is 0.52% of std, of the mean 0.74% of
    # std, of the tail fraction 0.08% and of a correlation 0.0074: every bound is 7+ sigma away.
    # Measured over seeds 0-4, seed 0 at 1 and 2 threads (tests/spread_measurements.json): std
    # 0.9935-1.01 of std, mean -0.013-0.013 std, tail 1.09-1.42 %, correlations -0.020-0.012.
    for values in samples:
        assert spread("std_ratio", np.std(values) / std) == pytest.approx(1, rel=0.05)
        assert abs(spread("mean_over_std", np.mean(values) / std)) < 0.06
        # 1.24% of a normal lies beyond 2.5 std; Keras' truncated normal (cut at 2.27 std after
        # its rescaling) has none.
        assert 0.006 < spread("tail_share", np.mean(np.abs(values) > 2.5 * std)) < 0.02
    # Four independent draws, not one draw repeated.
    for first, second in itertools.combinations(samples, 2):
        assert abs(spread("correlation", np.corrcoef(first, second)[0, 1])) < 0.06


def grouped_conv_reference(x, kernel, strides, padding, groups):
    """Grouped convolution as `groups` separate tf.nn.conv2d calls, concatenated."""
    inputs = tf.split(x, groups, axis=-1)
    kernels = tf.split(kernel, groups, axis=-1)
    outputs = [tf.nn.conv2d(i, k, strides, padding) for i, k in zip(inputs, kernels)]
    return tf.concat(outputs, axis=-1)


@pytest.mark.parametrize("bits,strides,padding,groups,use_bias", [
    (3, 1, "SAME", 1, True),
    (2, 2, "VALID", 1, False),
    (3, 1, "VALID", 2, True),
])
def test_conv_forward_is_conv2d_with_the_quantized_kernel(bits, strides, padding, groups,
                                                          use_bias):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 7, 7, 4)).astype(np.float32)
    layer = S3Conv2D(6, 3, strides=strides, padding=padding.lower(), groups=groups,
                     use_bias=use_bias, bits=bits)
    layer.build(x.shape)
    if use_bias:
        layer.bias.assign(rng.normal(size=6).astype(np.float32))
    kernel = layer.quantized_kernel
    assert kernel.shape == (3, 3, 4 // groups, 6)
    assert np.isin(kernel.numpy(), VALUES_3BIT if bits == 3 else VALUES_2BIT).all()
    expected = grouped_conv_reference(x, kernel, strides, padding, groups)
    if use_bias:
        expected = expected + layer.bias
    # A tolerance: the grouped case runs Keras' XLA-compiled convolution against split
    # tf.nn.conv2d calls, which may sum in another order.
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    assert len(layer.weights) == (4 if bits == 3 else 2) + use_bias
    assert not any("kernel" in weight.name for weight in layer.weights)


def test_dense_forward_is_matmul_with_the_quantized_kernel():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 10)).astype(np.float32)
    layer = S3Dense(4, bits=2, activation="relu")
    out = layer(x).numpy()
    expected = np.maximum(x @ layer.quantized_kernel.numpy() + layer.bias.numpy(), 0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert np.isin(layer.quantized_kernel.numpy(), VALUES_2BIT).all()


def test_every_latent_of_the_layer_gets_a_gradient():
    layer = S3Conv2D(4, 3, padding="same")
    x = tf.constant(np.random.default_rng(6).normal(size=(1, 5, 5, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 5  # four latents and the bias
    assert all(grad is not None and np.any(grad.numpy() != 0) for grad in grads)


@pytest.mark.parametrize("kwargs,message", [
    ({"bits": 4}, "bits"),
    ({"density_regularization": -1e-5}, ">= 0"),
    ({"kernel_initializer": "zeros"}, "no float kernel"),
])
def test_layers_reject_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S3Conv2D(4, 3, **kwargs)
    with pytest.raises(ValueError, match=message):
        S3Dense(4, **kwargs)


def test_get_config_round_trip():
    layer = S3Conv2D(8, (3, 1), strides=2, padding="same", bits=2, groups=2,
                     density_regularization=3e-4, use_bias=False, name="s3")
    config = layer.get_config()
    assert config["bits"] == 2 and config["density_regularization"] == 3e-4
    assert "kernel_initializer" not in config
    assert S3Conv2D.from_config(config).get_config() == config
    dense = S3Dense(5, bits=3, density_regularization=0.0)
    assert S3Dense.from_config(dense.get_config()).get_config() == dense.get_config()


def shift_model():
    inputs = tf.keras.Input((8, 8, 4))
    x = S3Conv2D(8, 3, padding="same", name="conv_a")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.ReLU()(x)
    x = S3Conv2D(8, 3, strides=2, groups=2, bits=2, use_bias=False, name="conv_b")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = S3Dense(6, name="fc_shift")(x)
    outputs = tf.keras.layers.Dense(3, name="fc")(x)
    return tf.keras.Model(inputs, outputs)


def float_model():
    """shift_model's architecture with plain Conv2D / Dense layers."""
    inputs = tf.keras.Input((8, 8, 4))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, groups=2, use_bias=False)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(6)(x)
    outputs = tf.keras.layers.Dense(3)(x)
    return tf.keras.Model(inputs, outputs)


def perturbed(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # move every weight (BN statistics too) off its initial value
        weight.assign(weight + rng.normal(scale=0.3, size=weight.shape).astype(np.float32))
    return model


def test_keras_round_trip_is_bit_identical(tmp_path):
    model = perturbed(shift_model(), seed=7)
    x = np.random.default_rng(8).normal(size=(2, 8, 8, 4)).astype(np.float32)
    path = tmp_path / "shift.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
    for name in ("conv_a", "conv_b", "fc_shift"):
        original, clone = model.get_layer(name), loaded.get_layer(name)
        assert type(clone) is type(original) and clone.bits == original.bits
        np.testing.assert_array_equal(clone.quantized_kernel.numpy(),
                                      original.quantized_kernel.numpy())
    assert len(loaded.losses) == 3


def test_export_drops_latents_and_keeps_outputs():
    model = perturbed(shift_model(), seed=9)
    exported = to_inference_model(model)
    x = np.random.default_rng(10).normal(size=(3, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(exported(x).numpy(), model(x).numpy())
    assert exported.count_params() == float_model().count_params()
    assert not any("latent" in weight.name for weight in exported.weights)
    assert not any(isinstance(layer, (S3Conv2D, S3Dense, tf.keras.layers.Lambda))
                   for layer in exported.layers)
    assert exported.losses == []
    for name, values in (("conv_a", VALUES_3BIT), ("conv_b", VALUES_2BIT),
                         ("fc_shift", VALUES_3BIT)):
        layer = exported.get_layer(name)
        assert type(layer) in (tf.keras.layers.Conv2D, tf.keras.layers.Dense)
        np.testing.assert_array_equal(layer.kernel.numpy(),
                                      model.get_layer(name).quantized_kernel.numpy())
        assert np.isin(layer.kernel.numpy(), values).all()
    conv_b = exported.get_layer("conv_b")
    assert conv_b.groups == 2 and conv_b.strides == (2, 2) and not conv_b.use_bias


def test_export_of_sequential_and_nested_models():
    inner = tf.keras.Sequential([tf.keras.Input((6,)), S3Dense(5, name="inner_shift")],
                                name="inner")
    inputs = tf.keras.Input((6,))
    outputs = S3Dense(2, bits=2, name="outer_shift")(inner(inputs))
    model = perturbed(tf.keras.Model(inputs, outputs), seed=11)
    exported = to_inference_model(model)
    x = np.random.default_rng(12).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_array_equal(exported(x).numpy(), model(x).numpy())
    assert [w.name for w in exported.weights] == [
        "inner_shift/kernel:0", "inner_shift/bias:0", "outer_shift/kernel:0",
        "outer_shift/bias:0"]
    exported_inner = to_inference_model(inner)
    np.testing.assert_array_equal(exported_inner(x).numpy(), inner(x).numpy())


def test_export_rejects_an_unbuilt_model():
    with pytest.raises(ValueError, match="build"):
        to_inference_model(tf.keras.Sequential([S3Dense(3)]))


def np_deepshift(w, bits):
    low = 2.0 ** -(2 ** (bits - 1) - 1)
    magnitude = np.clip(np.abs(w), low, 1.0)
    # np.sign(0) = 0 keeps exact zeros at 0, as the reference's torch.sign.
    return np.sign(w) * 2.0 ** np.round(np.log2(magnitude))


@pytest.mark.parametrize("bits", [5, 3])
def test_deepshift_q_forward_matches_numpy(bits):
    rng = np.random.default_rng(13)
    w = np.concatenate([rng.normal(scale=0.5, size=2000), rng.uniform(-1e-6, 1e-6, 50),
                        [0.0, 1.0, -1.0, 3.0, -2.0 ** -20]]).astype(np.float32)
    out = DeepShiftQ(bits=bits)(tf.constant(w)).numpy()
    np.testing.assert_array_equal(out, np_deepshift(w.astype(np.float64), bits))
    exponents = np.log2(np.abs(out[out != 0]))
    assert exponents.min() == -(2 ** (bits - 1) - 1) and exponents.max() == 0
    np.testing.assert_array_equal(exponents, np.round(exponents))
    assert out[-5] == 0.0  # the exact zero


def test_deepshift_q_gradient_is_identity():
    rng = np.random.default_rng(14)
    w = tf.Variable(rng.normal(scale=2.0, size=(3, 3, 4, 5)).astype(np.float32))
    upstream = rng.normal(size=w.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(DeepShiftQ()(w) * upstream)
    np.testing.assert_array_equal(tape.gradient(loss, w).numpy(), upstream)


def test_deepshift_q_is_registered_and_serializable(tmp_path):
    assert isinstance(lq.quantizers.get("deepshift_q"), DeepShiftQ)
    clone = lq.quantizers.deserialize(lq.quantizers.serialize(DeepShiftQ(bits=4)))
    assert isinstance(clone, DeepShiftQ) and clone.bits == 4 and clone.precision == 4
    with pytest.raises(ValueError, match="bits"):
        DeepShiftQ(bits=8)
    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 2)),
        lq.layers.QuantConv2D(3, 3, kernel_quantizer="deepshift_q", name="conv")])
    perturbed(model, seed=15)
    path = tmp_path / "deepshift.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert isinstance(loaded.get_layer("conv").kernel_quantizer, DeepShiftQ)
    x = np.random.default_rng(16).normal(size=(1, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
