"""N2UQ quantizers against the paper's formulas written in NumPy (papers.md §3.1-3.3).

The references below follow papers.md: Eq. 2 for the LTQ forward, the listed G-STE gradients
(∂/∂x = Δ/a_i on segment i, ∂/∂a_i = -Δ(x - d_{i-1})/a_i² on segment i and -Δ/a_j on any later
segment j, ∂/∂s = -Δ/a_j) for its backward, and §3.3 for the weight quantizer.
"""

import numpy as np
import pytest

import tflbnn  # noqa: F401  (selects Keras 2)
import larq as lq
import tensorflow as tf

from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer, n2uq_threshold_variables

EPS = np.float32(1e-3)  # the interval clamp of papers.md §3.1, compared in float32 like a


# ---------------------------------------------------------------- NumPy references (float64)

def reference_boundaries(start, intervals):
    """d_0 .. d_K and the clamped lengths, from papers.md §3.1."""
    a = np.where(intervals > EPS, intervals, EPS).astype(np.float64)
    return float(start) + np.concatenate([[0.0], np.cumsum(a)]), a


def reference_ltq(x, start, intervals, scale1, scale2, bits, upstream):
    """Forward value and the gradients of sum(upstream * y) w.r.t. x, s, a, scale1, scale2."""
    x = x.astype(np.float64)
    upstream = upstream.astype(np.float64)
    k = 2**bits - 1
    delta = 2.0 / k
    d, a = reference_boundaries(start, intervals)
    z = x * scale1
    index = np.zeros_like(z)
    for i in range(1, k + 1):  # Eq. 2: level i from the midpoint d_{i-1} + a_i/2 on
        index[z >= d[i - 1] + a[i - 1] / 2] = i
    y = index * delta * scale2

    dy_dz = np.zeros_like(z)
    grad_s = 0.0
    grad_a = np.zeros(k)
    g = upstream * scale2  # dL/d(expected level)
    for j in range(1, k + 1):  # segment j: d_{j-1} <= z < d_j
        seg = (z >= d[j - 1]) & (z < d[j])
        dy_dz[seg] = delta / a[j - 1]
        grad_s += np.sum(g[seg] * (-delta / a[j - 1]))
        grad_a[j - 1] += np.sum(g[seg] * (-delta * (z[seg] - d[j - 1]) / a[j - 1] ** 2))
        grad_a[: j - 1] += np.sum(g[seg] * (-delta / a[j - 1]))  # through d_{j-1}
    grad_a[intervals <= EPS] = 0.0  # clamped: a constant in the forward
    return {
        "y": y,
        "x": g * dy_dz * scale1,
        "start": grad_s,
        "intervals": grad_a,
        "input_scale": np.sum(g * dy_dz * x),
        "output_scale": np.sum(upstream * index * delta),
    }


def reference_weight_levels(bits):
    k = 2**bits - 1
    return np.arange(k + 1) * 2.0 / k - 1.0


def reference_weight_quantizer(w, bits, reduce_axes):
    """(W_q, α) of papers.md §3.3; α keeps dims so it broadcasts against w."""
    w = w.astype(np.float64)
    gamma = (2**bits - 1) / 2 ** (bits - 1)
    alpha = gamma * np.abs(w).mean(axis=reduce_axes, keepdims=True)
    clipped = np.clip(w / alpha, -1.0, 1.0)
    k = 2**bits - 1
    return alpha * (np.round((clipped + 1) * k / 2) * 2 / k - 1), alpha


# ---------------------------------------------------------------- helpers

def run_ltq(quantizer, x, upstream, values):
    """Set the quantizer's weights; return the gradients of sum(upstream * y) by name."""
    quantizer.build(x.shape)
    for name, value in values.items():
        getattr(quantizer, name).assign(value)
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(quantizer(x_tf) * upstream)
    names = ["start", "intervals", "input_scale", "output_scale"]
    grads = tape.gradient(loss, [x_tf] + [getattr(quantizer, n) for n in names])
    assert all(g is not None for g in grads)
    return dict(zip(["x"] + names, [g.numpy() for g in grads]))


def assert_ltq_matches(bits, x, start, intervals, scale1, scale2, seed=0):
    rng = np.random.default_rng(seed)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    quantizer = N2UQActivationQuantizer(bits=bits)
    values = {"start": start, "intervals": intervals, "input_scale": scale1,
              "output_scale": scale2}
    grads = run_ltq(quantizer, x, upstream, values)
    y = quantizer(tf.constant(x)).numpy()
    want = reference_ltq(x, start, intervals, scale1, scale2, bits, upstream)
    # Float32 sums err by a small fraction of the sum of |terms|: the same sums with |upstream|
    # (all terms of dL/ds, of each dL/da_i and of dL/dscale2 then share a sign), and |x| for
    # dL/dscale1.
    magnitude = reference_ltq(x, start, intervals, scale1, scale2, bits, np.abs(upstream))
    magnitude["input_scale"] = np.sum(np.abs(magnitude["x"] * x)) / scale1
    np.testing.assert_allclose(y, want["y"], rtol=1e-6, atol=1e-6)
    for name in ["x", "start", "intervals", "input_scale", "output_scale"]:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-5,
                                   atol=1e-5 * np.max(np.abs(magnitude[name])), err_msg=name)
    return y, grads


def random_ltq_parameters(bits, rng):
    k = 2**bits - 1
    intervals = rng.uniform(0.3, 1.7, k) * 2.0 / k
    return rng.uniform(-0.3, 0.3), intervals.astype(np.float32)


def inputs_away_from_breakpoints(rng, size, start, intervals, scale1, margin=1e-4):
    """Uniform inputs spanning below s to above d_K, none within `margin` of a threshold or d_i:
    float32 and float64 may put such points on different sides."""
    d, a = reference_boundaries(start, intervals)
    points = np.concatenate([d, d[:-1] + a / 2]) / scale1
    x = rng.uniform(points.min() - 1.0, points.max() + 1.0, size).astype(np.float32)
    far = np.min(np.abs(x.reshape(-1, 1) - points.reshape(1, -1)), axis=1) > margin
    return x[far]


# ---------------------------------------------------------------- activation quantizer (LTQ)

@pytest.mark.parametrize("bits", [2, 3, 4])
def test_ltq_forward_and_all_gradients_match_the_paper_on_random_inputs(bits):
    rng = np.random.default_rng(bits)
    start, intervals = random_ltq_parameters(bits, rng)
    scale1, scale2 = 1.3, 0.7  # non-default scales
    x = inputs_away_from_breakpoints(rng, 3000, start, intervals, scale1)
    y, grads = assert_ltq_matches(bits, x, start, intervals, scale1, scale2, seed=bits)
    # The random inputs cover every level, and every interval receives gradient.
    assert len(np.unique(y)) == 2**bits
    assert np.all(grads["intervals"] != 0)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_ltq_inputs_exactly_on_thresholds_and_boundaries(bits):
    # Dyadic parameters: every d_i and midpoint is exact in float32 and float64, so the paper's
    # half-open intervals decide. At a midpoint the output is the upper level (Eq. 2, x >= ...);
    # at d_{i-1} the slope is segment i's; at d_K the constant top (zero gradient). The scales
    # are powers of two, so x * scale1 lands exactly on them too.
    rng = np.random.default_rng(10 + bits)
    k = 2**bits - 1
    intervals = rng.choice([0.0625, 0.125, 0.25, 0.5], k).astype(np.float32)
    start = -0.25
    d, a = reference_boundaries(start, intervals)
    midpoints = d[:-1] + a / 2
    z = np.concatenate([d, midpoints, [d[0] - 0.5, d[-1] + 0.5]])
    x = (z / 2.0).astype(np.float32)
    y, grads = assert_ltq_matches(bits, x, start, intervals, 2.0, 0.5, seed=bits)
    delta = 2.0 / k
    np.testing.assert_allclose(y[k + 1: 2 * k + 1], np.arange(1, k + 1) * delta * 0.5,
                               rtol=1e-6)
    np.testing.assert_allclose(y[-2:], [0.0, 1.0])  # below s and above the last threshold
    assert grads["x"][0] != 0 and grads["x"][k] == 0  # at s: segment 1; at d_K: flat


def test_ltq_below_start_and_above_the_last_boundary_are_flat():
    quantizer = N2UQActivationQuantizer(bits=2, output_scale_initializer=1.5)
    x = np.array([-3.0, -0.01, 2.5, 40.0], np.float32)
    grads = run_ltq(quantizer, x, np.ones(4, np.float32), {})
    np.testing.assert_array_equal(quantizer(x).numpy(), [0.0, 0.0, 3.0, 3.0])
    assert np.all(grads["x"] == 0) and grads["start"] == 0 and np.all(grads["intervals"] == 0)


@pytest.mark.parametrize("tiny", [1e-4, -0.2, EPS], ids=["small", "negative", "exactly_eps"])
def test_ltq_clamps_tiny_intervals_with_zero_gradient(tiny):
    bits = 3
    rng = np.random.default_rng(5)
    start, intervals = random_ltq_parameters(bits, rng)
    intervals[2] = tiny
    x = inputs_away_from_breakpoints(rng, 3000, start, intervals, 1.1, margin=1e-5)
    _, grads = assert_ltq_matches(bits, x, start, intervals, 1.1, 0.9)
    assert grads["intervals"][2] == 0
    assert np.all(np.delete(grads["intervals"], 2) != 0)


def test_ltq_default_initialisation_is_uniform_on_zero_to_two():
    quantizer = N2UQActivationQuantizer(bits=2)
    quantizer.build((None,))
    np.testing.assert_allclose(quantizer.intervals.numpy(), [2 / 3] * 3, rtol=1e-6)
    assert quantizer.start.numpy() == 0 and quantizer.input_scale.numpy() == 1
    assert quantizer.output_scale.numpy() == 1
    x = np.array([-1.0, 0.3, 0.5, 1.2, 1.9, 3.0], np.float32)
    np.testing.assert_allclose(quantizer(x).numpy(), [0, 0, 2 / 3, 4 / 3, 2, 2], rtol=1e-6)
    assert quantizer.precision == 2


def test_ltq_under_mixed_precision_matches_float32_and_trains_float32_weights():
    # The level values themselves, half a step from any threshold, and inputs out of range.
    x = np.concatenate([[-1.0], np.arange(8) * 2 / 7, [3.0]]).astype(np.float32)
    mixed = N2UQActivationQuantizer(bits=3, dtype="mixed_float16")
    with tf.GradientTape() as tape:
        y = mixed(tf.constant(x, tf.float16))
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    grads = tape.gradient(loss, mixed.trainable_weights)
    assert y.dtype == tf.float16 and all(g.dtype == tf.float32 for g in grads)
    np.testing.assert_allclose(y.numpy(), N2UQActivationQuantizer(bits=3)(x).numpy(), atol=1e-3)
    np.testing.assert_allclose(y.numpy()[1:-1], x[1:-1], atol=1e-3)


def test_ltq_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        N2UQActivationQuantizer(bits=1)
    with pytest.raises(ValueError, match="bits"):
        N2UQActivationQuantizer(bits=8)
    with pytest.raises(ValueError, match="interval_initializer"):
        N2UQActivationQuantizer(interval_initializer=0.0)


# ---------------------------------------------------------------- weight quantizer

def assert_weight_quantizer_matches(w, bits, quantizer, reduce_axes):
    rng = np.random.default_rng(bits)
    upstream = rng.normal(size=w.shape).astype(np.float32)
    w_tf = tf.Variable(w)
    with tf.GradientTape() as tape:
        out = quantizer(w_tf)
        loss = tf.reduce_sum(out * upstream)
    grad = tape.gradient(loss, w_tf).numpy()
    out = out.numpy()
    want, alpha = reference_weight_quantizer(w, bits, reduce_axes)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
    # Every value lies on alpha_c * levels; every level is used in every channel.
    on_grid = out / alpha
    levels = reference_weight_levels(bits)
    assert np.max(np.min(np.abs(on_grid[..., None] - levels), axis=-1)) < 1e-6
    channel_axes = tuple(a for a in range(w.ndim) if a not in reduce_axes)
    flat = np.moveaxis(on_grid, channel_axes, range(-len(channel_axes), 0))
    flat = flat.reshape(-1, int(np.prod([w.shape[a] for a in channel_axes])))
    for column in flat.T:
        assert len(np.unique(np.round(column, 5))) == 2**bits
    # Straight-through on W / alpha: no clip mask, even where |W / alpha| > 1.
    assert np.any(np.abs(w / alpha) > 1)
    np.testing.assert_allclose(grad, upstream / alpha, rtol=1e-5)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weight_quantizer_matches_the_paper_per_output_channel(bits):
    rng = np.random.default_rng(20 + bits)
    # Channels with very different magnitudes: a per-tensor alpha would fail.
    w = rng.normal(size=(3, 3, 16, 4)) * np.array([0.01, 0.1, 1.0, 5.0])
    assert_weight_quantizer_matches(w.astype(np.float32), bits, N2UQWeightQuantizer(bits=bits),
                                    (0, 1, 2))


def test_weight_quantizer_on_dense_and_depthwise_kernels():
    rng = np.random.default_rng(30)
    dense = (rng.normal(size=(64, 6)) * rng.uniform(0.1, 2, 6)).astype(np.float32)
    assert_weight_quantizer_matches(dense, 2, N2UQWeightQuantizer(), (0,))
    # Keras depthwise kernels are (h, w, in_channels, depth_multiplier): one output channel
    # per (c, m), hence axis=(2, 3).
    layer = tf.keras.layers.DepthwiseConv2D(9, depth_multiplier=2)
    layer.build((None, 8, 8, 3))
    assert layer.depthwise_kernel.shape == (9, 9, 3, 2)
    depthwise = (rng.normal(size=(9, 9, 3, 2)) * rng.uniform(0.1, 2, (3, 2))).astype(np.float32)
    assert_weight_quantizer_matches(depthwise, 3, N2UQWeightQuantizer(bits=3, axis=(2, 3)),
                                    (0, 1))
    assert_weight_quantizer_matches(depthwise, 3, N2UQWeightQuantizer(bits=3, axis=[-2, -1]),
                                    (0, 1))


def test_weight_quantizer_keeps_an_all_zero_channel_zero():
    w = np.random.default_rng(31).normal(size=(3, 3, 4, 3)).astype(np.float32)
    w[..., 1] = 0.0
    w = tf.Variable(w)
    with tf.GradientTape() as tape:
        out = N2UQWeightQuantizer(bits=2)(w)
    grad = tape.gradient(out, w).numpy()
    out = out.numpy()
    assert np.all(out[..., 1] == 0.0) and np.all(np.isfinite(out))
    assert np.all(np.isfinite(grad)) and np.all(grad[..., 1] == 1.0)
    assert np.all(out[..., 0] != 0.0)  # the other channels keep N2UQ's zero-free levels


def test_weight_quantizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        N2UQWeightQuantizer(bits=5)
    with pytest.raises(ValueError, match="axis"):
        N2UQWeightQuantizer(axis=())
    with pytest.raises(ValueError, match="axis"):
        N2UQWeightQuantizer(axis=1.0)
    with pytest.raises(ValueError, match="out of range"):
        N2UQWeightQuantizer(axis=4)(tf.ones((3, 3, 2, 2)))


# ---------------------------------------------------------------- serialization

def test_quantizers_are_usable_by_name_and_round_trip_their_config():
    activation = lq.quantizers.get("n2uq_ltq")
    assert isinstance(activation, N2UQActivationQuantizer) and activation.bits == 2
    weight = lq.quantizers.get("n2uq_weight")
    assert isinstance(weight, N2UQWeightQuantizer) and weight.bits == 2 and weight.axis == -1
    three = lq.quantizers.get({"class_name": "n2uq_ltq", "config": {"bits": 3}})
    assert three.bits == 3 and three.precision == 3

    original = N2UQActivationQuantizer(bits=4, start_initializer=-0.1, interval_initializer=0.2,
                                       input_scale_initializer=2.0,
                                       output_scale_initializer=0.5)
    clone = lq.quantizers.deserialize(lq.quantizers.serialize(original))
    assert type(clone) is N2UQActivationQuantizer
    assert clone.get_config() == original.get_config()
    clone.build((None,))
    np.testing.assert_allclose(clone.intervals.numpy(), [0.2] * 15, rtol=1e-6)
    assert clone.start.numpy() == pytest.approx(-0.1) and clone.output_scale.numpy() == 0.5

    original = N2UQWeightQuantizer(bits=3, axis=(2, 3))
    clone = lq.quantizers.deserialize(lq.quantizers.serialize(original))
    assert clone.get_config() == original.get_config() and clone.axis == (2, 3)
    assert clone.precision == 3


# ---------------------------------------------------------------- Larq integration

def n2uq_model():
    """A standalone LTQ, a QuantConv2D and a QuantDepthwiseConv2D with N2UQ quantizers."""
    inputs = tf.keras.Input((6, 6, 3))
    x = N2UQActivationQuantizer(bits=2, name="act")(inputs)
    x = lq.layers.QuantConv2D(
        4, 3, name="conv", input_quantizer=N2UQActivationQuantizer(bits=3),
        kernel_quantizer=N2UQWeightQuantizer(bits=3))(x)
    x = lq.layers.QuantDepthwiseConv2D(
        3, depth_multiplier=2, name="dw", input_quantizer="n2uq_ltq",
        depthwise_quantizer=N2UQWeightQuantizer(bits=4, axis=(2, 3)))(x)
    return tf.keras.Model(inputs, x)


def quantizer_weights(quantizer):
    return [quantizer.start, quantizer.intervals, quantizer.input_scale, quantizer.output_scale]


def test_larq_layers_track_and_train_the_quantizer_weights():
    """One SGD step. Cannot flake: it asserts that every weight got some gradient and moved,
    not how far; the inputs (seed 40) and the initialisation (conftest's seed) are fixed."""
    model = n2uq_model()
    conv, depthwise = model.get_layer("conv"), model.get_layer("dw")
    expected = (quantizer_weights(model.get_layer("act"))
                + quantizer_weights(conv.input_quantizer)
                + quantizer_weights(depthwise.input_quantizer))
    assert [v.name for v in n2uq_threshold_variables(model)] == [v.name for v in expected]
    assert len({v.ref() for v in expected}) == 12
    conv_weights = {v.ref() for v in conv.trainable_weights}
    assert all(v.ref() in conv_weights for v in quantizer_weights(conv.input_quantizer))
    assert n2uq_threshold_variables(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])) == []

    rng = np.random.default_rng(40)
    x = rng.normal(size=(4, 6, 6, 3)).astype(np.float32)
    target = rng.normal(size=(4, 2, 2, 8)).astype(np.float32)
    before = [v.numpy().copy() for v in model.trainable_weights]
    train_step(model, x, target)
    for variable, old in zip(model.trainable_weights, before):
        assert not np.array_equal(variable.numpy(), old), variable.name


def train_step(model, x, target):
    optimizer = tf.keras.optimizers.SGD(0.01)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - target) ** 2)
        grads = tape.gradient(loss, model.trainable_weights)
        for grad, variable in zip(grads, model.trainable_weights):
            tf.debugging.assert_greater(tf.reduce_sum(tf.abs(grad)), 0.0, variable.name)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))

    step()


def test_keras_round_trip_gives_identical_outputs_and_quantizers(tmp_path):
    model = n2uq_model()
    rng = np.random.default_rng(50)
    for weight in model.weights:  # move every weight off its initial value
        weight.assign(weight + rng.normal(scale=0.1, size=weight.shape).astype(np.float32))
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    path = tmp_path / "n2uq.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
    for old, new in zip(n2uq_threshold_variables(model), n2uq_threshold_variables(loaded)):
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    conv = loaded.get_layer("conv")
    assert type(conv.input_quantizer) is N2UQActivationQuantizer
    assert conv.input_quantizer.bits == 3 and conv.kernel_quantizer.bits == 3
    assert loaded.get_layer("dw").depthwise_quantizer.axis == (2, 3)
