"""ReActNet quantizers against the paper's formulas written in NumPy (papers.md §1.2, §1.3)."""

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2)
import larq as lq
import tensorflow as tf

from tflbnn.quantizers import ReActNetWeightSign, approx_sign_with_threshold


def numpy_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def numpy_approx_sign_grad(x):
    # dF/dx of ReActNet's piecewise polynomial: 2 + 2x on [-1, 0), 2 - 2x on [0, 1), else 0.
    return np.where((x >= -1) & (x < 0), 2 + 2 * x, np.where((x >= 0) & (x < 1), 2 - 2 * x, 0.0))


def test_approx_sign_forward_and_gradient_match_formula():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-2, 2, 997), [0.0, -1.0, 1.0, 0.5, -0.5]]).astype(np.float32)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        y = approx_sign_with_threshold(x_tf)
        loss = tf.reduce_sum(y * upstream)
    grad = tape.gradient(loss, x_tf).numpy()
    np.testing.assert_array_equal(y.numpy(), numpy_sign(x))
    np.testing.assert_allclose(grad, upstream * numpy_approx_sign_grad(x), rtol=1e-6, atol=1e-6)


def test_weight_quantizer_forward_is_alpha_sign_per_output_channel():
    rng = np.random.default_rng(1)
    w = rng.normal(scale=0.7, size=(3, 3, 16, 8)).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    out = ReActNetWeightSign()(tf.constant(w)).numpy()
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(out, alpha * numpy_sign(w), rtol=1e-6)
    assert out[0, 0, 0, 0] == pytest.approx(alpha[0])  # sign(0) = +1


def test_weight_quantizer_gradient_is_clipped_ste_without_alpha():
    rng = np.random.default_rng(2)
    w = rng.normal(scale=1.0, size=(1, 1, 32, 4)).astype(np.float32)
    upstream = rng.normal(size=w.shape).astype(np.float32)
    w_tf = tf.Variable(w)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ReActNetWeightSign()(w_tf) * upstream)
    grad = tape.gradient(loss, w_tf).numpy()
    expected = upstream * (np.abs(w) <= 1.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)
    # larq's magnitude_aware_sign scales this gradient by alpha; ReActNet's does not.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(lq.quantizers.MagnitudeAwareSign()(w_tf) * upstream)
    larq_grad = tape.gradient(loss, w_tf).numpy()
    assert not np.allclose(larq_grad, expected)


def test_weight_quantizer_is_usable_by_name_and_serializable():
    quantizer = lq.quantizers.get("reactnet_weight_sign")
    assert isinstance(quantizer, ReActNetWeightSign)
    assert quantizer.precision == 1
    clone = lq.quantizers.deserialize(lq.quantizers.serialize(ReActNetWeightSign(clip_value=0.5)))
    assert isinstance(clone, ReActNetWeightSign) and clone.clip_value == 0.5
