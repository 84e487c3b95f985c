"""binary_mobilenet: group validation, analytical OPs, the weight-sharing supernet layer."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tflbnn.models.binary_mobilenet  # noqa: F401  (registers the model)
from tflbnn.blocks import BlockDiagonalQuantConv2D, GroupSuperConv2D, binary_conv
from tflbnn.data import load_data
from tflbnn.group_search import (extract_subnet, grouped_kernel, set_supernet_groups,
                                 supernet_groups, winner_builder)
from tflbnn.layers import RSign
from tflbnn.models import get_model, profile
from tflbnn.models.binary_mobilenet import (binary_mobilenet, binary_mobilenet_macs,
                                            binary_mobilenet_ops, check_groups, group_choices,
                                            search_space_size, valid_groups)
from tflbnn.training import transfer_weights

# ReActNet-A's 3x3-conv input channels per block at width 1.0 (papers.md §1.1 layer table).
PAPER_BLOCK_INPUTS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024)


def scaled(channels, width):
    return max(8, int(round(channels * width / 8)) * 8)


def powers_of_two_choices(channels):
    """Hand rule: 1, and every power of two leaving a multiple of 32 channels per group."""
    return tuple([1] + [g for g in (2, 4, 8, 16, 32, 64) if channels % g == 0
                        and (channels // g) % 32 == 0])


# --- group choices and validation -------------------------------------------------------------

def test_group_choices_follow_lces_rule_at_each_width():
    for width in (0.125, 0.25, 0.5, 1.0):
        expected = [powers_of_two_choices(scaled(c, width)) for c in PAPER_BLOCK_INPUTS]
        assert group_choices(width) == expected
    # Width 0.5: blocks of 16, 32, 64, 64, 128, 128, 256 x 6 and 512 input channels.
    assert group_choices(0.5)[0] == (1,) and group_choices(0.5)[2] == (1, 2)
    assert group_choices(0.5)[-1] == (1, 2, 4, 8, 16)
    assert search_space_size(group_choices(0.5)) == 2 * 2 * 3 * 3 * 4 ** 6 * 5  # 737,280
    assert search_space_size(group_choices(0.25)) == 2 * 2 * 3 ** 6 * 4  # 11,664
    assert search_space_size(group_choices(0.125)) == 2 ** 6 * 3  # 192
    assert group_choices(0.5, max_groups=4)[-1] == (1, 2, 4)


def test_valid_groups_allows_any_divisor_with_32_channel_groups():
    assert valid_groups(96) == (1, 3)
    assert valid_groups(64) == (1, 2)
    assert valid_groups(16) == (1,)
    assert valid_groups(128, min_group_channels=16) == (1, 2, 4, 8)


@pytest.mark.parametrize("groups,message", [
    ((1,) * 12, "one entry per block (13), got 12"),
    ((1,) * 4 + (4,) + (1,) * 8, "block5 has 64 input channels at width 0.25; its 3x3 conv "
                                  "cannot have groups=4"),
    ((2,) + (1,) * 12, "block1 has 8 input channels"),
    ((1,) * 12 + (3,), "block13 has 256 input channels"),
    ((1,) * 12 + (2.0,), "groups=2.0"),
    ("1" * 13, "must be a sequence of 13 ints"),
])
def test_invalid_groups_name_block_channels_and_choices(groups, message):
    with pytest.raises(ValueError, match="binary_mobilenet") as error:
        check_groups(groups, 0.25)
    assert message in str(error.value)
    if "block5" in message:
        assert "Valid choices: [1, 2]" in str(error.value)


def test_model_rejects_bad_groups_and_supernet_options():
    with pytest.raises(ValueError, match="block13 has 256 input channels.*Valid choices: "
                                         r"\[1, 2, 4, 8\]"):
        get_model("binary_mobilenet", input_shape=(28, 28, 1), num_classes=10, width=0.25,
                  groups=[1] * 12 + [16])
    with pytest.raises(ValueError, match="needs supernet=True"):
        binary_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=0.25, max_groups=2)
    with pytest.raises(ValueError, match=r"block13's supernet choices are \[1, 2\]"):
        binary_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=0.25, supernet=True,
                         max_groups=2, groups=(1,) * 12 + (4,))


# --- analytical OPs --------------------------------------------------------------------------

@pytest.mark.parametrize("width,input_shape,stem_stride,groups", [
    (0.125, (28, 28, 1), 2, (1,) * 6 + (2,) * 6 + (4,)),
    (0.25, (28, 28, 1), 1, (1, 1, 1, 1, 2, 1, 4, 2, 1, 4, 2, 1, 8)),
    (0.5, (16, 20, 3), 2, (1, 1, 2, 1, 4, 2, 8, 1, 2, 4, 8, 1, 16)),
])
def test_analytical_ops_equal_the_profile_of_the_built_model(width, input_shape, stem_stride,
                                                             groups):
    model = binary_mobilenet(input_shape=input_shape, num_classes=7, width=width,
                             stem_stride=stem_stride, groups=groups)
    measured = profile(model)
    binary_macs, float_macs = binary_mobilenet_macs(groups, input_shape=input_shape,
                                                    num_classes=7, width=width,
                                                    stem_stride=stem_stride)
    assert (binary_macs, float_macs) == (measured.binary_macs, measured.float_macs)
    assert binary_mobilenet_ops(groups, input_shape=input_shape, num_classes=7, width=width,
                                stem_stride=stem_stride) == measured.ops
    # The grouped 3x3 convs are binary and grouped in the graph, as configured.
    convs = [model.get_layer(f"block{i}_bconv_3x3") for i in range(1, 14)]
    assert tuple(conv.groups for conv in convs) == groups
    assert all(conv.kernel.shape[2] * g == conv.filters for conv, g in zip(convs, groups))


def test_all_one_groups_is_reactnet_a():
    options = dict(input_shape=(28, 28, 1), num_classes=10, width=0.125, stem_stride=2)
    ours, reference = get_model("binary_mobilenet", **options), get_model("reactnet_a", **options)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in reference.layers]
    assert ours.count_params() == reference.count_params()
    assert profile(ours).ops == profile(reference).ops
    # ImageNet size: the published ReActNet-A OPs with the formula alone (no model built).
    assert binary_mobilenet_ops((1,) * 13, input_shape=(224, 224, 3),
                                num_classes=1000) == pytest.approx(0.87e8, rel=0.03)


def test_winner_builder_gives_every_precision_with_shared_weights():
    groups = (1,) * 6 + (2, 1, 1, 2, 2, 1, 4)
    build = winner_builder(groups, input_shape=(28, 28, 1), num_classes=10, width=0.125,
                           stem_stride=2)
    teacher, student = build("float"), build("binary")
    assert transfer_weights(teacher, student) == len(student.weights)
    assert tuple(student.get_layer(f"block{i}_bconv_3x3").groups
                 for i in range(1, 14)) == groups
    with pytest.raises(ValueError, match="block7 has 64 input channels"):
        winner_builder((1,) * 6 + (8,) + (1,) * 6, input_shape=(28, 28, 1), num_classes=10,
                       width=0.125)


# --- the supernet layer ----------------------------------------------------------------------

def numpy_grouped_binary_conv(x, full_kernel, groups, stride, pad_value=1.0):
    """Reference: same-one padded 3x3 conv, filter j sees only its group's input channels,
    kernel alpha * sign(W) with alpha the mean |W| of those entries."""
    batch, height, width, channels = x.shape
    filters = full_kernel.shape[-1]
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + 3 - height, 0)
    pad_w = max((out_w - 1) * stride + 3 - width, 0)
    padded = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                        (pad_w // 2, pad_w - pad_w // 2), (0, 0)), constant_values=pad_value)
    patches = np.stack([padded[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride, :]
                        for i in range(3) for j in range(3)], axis=3)  # (B, oh, ow, 9, C)
    per_in, per_out = channels // groups, filters // groups
    out = np.zeros((batch, out_h, out_w, filters))
    for f in range(filters):
        rows = slice((f // per_out) * per_in, (f // per_out + 1) * per_in)
        weights = full_kernel[:, :, rows, f].reshape(9, per_in)
        binary = np.abs(weights).mean() * np.where(weights >= 0, 1.0, -1.0)
        out[..., f] = np.einsum("bhwkc,kc->bhw", patches[..., rows], binary)
    return out


@pytest.fixture(scope="module")
def super_layer():
    rng = np.random.default_rng(0)
    layer = GroupSuperConv2D(64, 3, strides=2, padding="same", pad_values=1.0, use_bias=False,
                             group_choices=(1, 2, 4), groups=2, name="super")
    layer.build((None, 7, 7, 64))
    kernel = rng.standard_normal((3, 3, 64, 64)).astype(np.float32) * 0.6
    layer.kernel.assign(kernel)
    x = np.where(rng.standard_normal((2, 7, 7, 64)) >= 0, 1.0, -1.0).astype(np.float32)
    return layer, kernel, x


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_super_layer_is_the_grouped_binary_conv_in_numpy(super_layer, groups):
    layer, kernel, x = super_layer
    layer.set_groups(groups)
    assert layer.groups_active == groups
    expected = numpy_grouped_binary_conv(x, kernel, groups, stride=2)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_super_layer_gradient_is_the_grouped_layers_on_active_entries(super_layer):
    layer, kernel, x = super_layer
    layer.set_groups(4)
    real = binary_conv(64, 3, strides=2, groups=4, name="real")
    real.build((None, 7, 7, 64))
    real.kernel.assign(grouped_kernel(kernel, 4))
    upstream = np.random.default_rng(1).standard_normal((2, 4, 4, 64)).astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        super_loss = tf.reduce_sum(layer(x) * upstream)
        real_loss = tf.reduce_sum(real(x) * upstream)
    super_grad = tape.gradient(super_loss, layer.kernel).numpy()
    real_grad = tape.gradient(real_loss, real.kernel).numpy()
    np.testing.assert_allclose(grouped_kernel(super_grad, 4), real_grad, rtol=1e-5, atol=1e-5)
    # Outside the block diagonal and beyond the clip range (|W| > 1) nothing is learned.
    mask = np.zeros((64, 64), bool)
    for g in range(4):
        mask[g * 16:(g + 1) * 16, g * 16:(g + 1) * 16] = True
    assert np.all(super_grad[:, :, ~mask] == 0)
    assert np.all(super_grad[np.abs(kernel) > 1] == 0)
    assert np.any(super_grad[:, :, mask] != 0)


# --- the grouped binary conv's dense training path -------------------------------------------

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("groups", [2, 4])
def test_block_diagonal_conv_is_the_grouped_quant_conv(super_layer, groups, training):
    _, kernel, x = super_layer
    layer = binary_conv(64, 3, strides=2, groups=groups, name="fast")
    assert isinstance(layer, BlockDiagonalQuantConv2D)
    grouped = lq.layers.QuantConv2D(64, 3, strides=2, padding="same", pad_values=1.0,
                                    groups=groups, use_bias=False,
                                    kernel_quantizer="reactnet_weight_sign", name="grouped")
    for each in (layer, grouped):
        each.build((None, 7, 7, 64))
        each.kernel.assign(grouped_kernel(kernel, groups))
    inputs = tf.constant(x)
    upstream = np.random.default_rng(4).standard_normal((2, 4, 4, 64)).astype(np.float32)
    results = []
    for each in (layer, grouped):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = each(inputs, training=training)
            loss = tf.reduce_sum(outputs * upstream)
        results.append((outputs, *tape.gradient(loss, [inputs, each.kernel])))
    expected = numpy_grouped_binary_conv(x, kernel, groups, stride=2)
    np.testing.assert_allclose(results[0][0].numpy(), expected, rtol=1e-5, atol=1e-4)
    for fast, reference in zip(results[0], results[1]):
        np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("groups", [0, 3, -2])
def test_binary_conv_refuses_groups_that_do_not_divide_the_filters(groups):
    with pytest.raises(ValueError, match=rf"bad: groups must be a positive divisor of the 64 "
                                         rf"filters, got {groups}"):
        binary_conv(64, 3, groups=groups, name="bad")


def conv_kernel_shapes(model, images, training):
    """The filter shapes of the Conv2D ops in ``model``'s graph with ``training``."""
    graph = tf.function(lambda batch: model(batch, training=training)).get_concrete_function(
        tf.TensorSpec(images.shape, tf.float32)).graph
    # Keras puts grouped convolutions in a nested (XLA-compiled) function's graph.
    graphs = [graph] + [function.graph for function in graph._functions.values()]
    return [tuple(op.inputs[1].shape) for each in graphs for op in each.get_operations()
            if op.type == "Conv2D"]


def test_grouped_conv_trains_dense_and_infers_and_saves_grouped(tmp_path):
    inputs = tf.keras.Input((6, 6, 64))
    x = RSign(name="sign")(inputs)
    x = binary_conv(64, 3, groups=4, name="bconv")(x)
    outputs = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, outputs)
    images = np.random.default_rng(5).standard_normal((3, 6, 6, 64)).astype(np.float32)
    assert conv_kernel_shapes(model, images, training=True) == [(3, 3, 64, 64)]
    assert conv_kernel_shapes(model, images, training=False) == [(3, 3, 16, 64)]
    assert conv_kernel_shapes(model, images, training=None) == [(3, 3, 16, 64)]
    model.save(tmp_path / "grouped.keras")
    loaded = tf.keras.models.load_model(tmp_path / "grouped.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("bconv"), BlockDiagonalQuantConv2D)
    assert loaded.get_layer("bconv").groups == 4
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), rtol=1e-6)
    np.testing.assert_allclose(loaded(images, training=True).numpy(), model(images).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_grouped_kernel_matches_an_explicit_loop():
    kernel = np.arange(3 * 3 * 8 * 4, dtype=np.float32).reshape(3, 3, 8, 4)
    expected = np.zeros((3, 3, 4, 4), np.float32)
    for f in range(4):
        start = (f // 2) * 4
        expected[:, :, :, f] = kernel[:, :, start:start + 4, f]
    np.testing.assert_array_equal(grouped_kernel(kernel, 2), expected)
    with pytest.raises(ValueError, match="3 groups do not divide"):
        grouped_kernel(kernel, 3)


def test_super_layer_validates_choices():
    with pytest.raises(ValueError, match="groups=8 is not one of the group_choices"):
        GroupSuperConv2D(64, 3, group_choices=(1, 2), groups=8, name="bad")
    with pytest.raises(ValueError, match="input_quantizer is fixed"):
        GroupSuperConv2D(64, 3, input_quantizer="ste_sign")
    layer = GroupSuperConv2D(48, 3, group_choices=(1, 5), name="odd")
    with pytest.raises(ValueError, match="odd: group choice 5 does not divide the 48"):
        layer.build((None, 5, 5, 48))


def test_supernet_model_survives_keras_save_and_load(tmp_path):
    inputs = tf.keras.Input((6, 6, 64))
    x = RSign(name="sign")(inputs)
    x = GroupSuperConv2D(64, 3, padding="same", pad_values=1.0, use_bias=False,
                         group_choices=(1, 2), name="super")(x)
    outputs = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, outputs)
    model.get_layer("super").set_groups(2)
    images = np.random.default_rng(2).standard_normal((3, 6, 6, 64)).astype(np.float32)
    model.save(tmp_path / "super.keras")
    loaded = tf.keras.models.load_model(tmp_path / "super.keras", safe_mode=True)
    assert loaded.get_layer("super").groups_active == 2
    assert loaded.get_layer("super").group_choices == (1, 2)
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), rtol=1e-6)


# --- the whole supernet against the real grouped models --------------------------------------

def randomize(model, seed):
    """Move every weight off its initial value (BN statistics kept valid)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "choice" in weight.name:
            continue
        shape = weight.shape
        if "moving_variance" in weight.name:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in weight.name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = weight.numpy() + rng.normal(0.0, 0.1, shape)
        weight.assign(value.astype(np.float32))


def test_supernet_equals_the_grouped_model_with_copied_weights():
    options = dict(width=0.125, stem_stride=2)
    images, _ = load_data({"kind": "fashion_mnist", "source": "embedded"}).test_arrays(limit=16)
    supernet = binary_mobilenet(input_shape=(28, 28, 1), num_classes=10, supernet=True,
                                **options)
    randomize(supernet, seed=3)
    for config in [(1,) * 6 + (2,) * 6 + (4,), (1,) * 6 + (1, 2, 1, 2, 2, 1, 2)]:
        set_supernet_groups(supernet, config)
        assert supernet_groups(supernet) == config
        subnet = extract_subnet(supernet, config, **options)
        expected = subnet(images, training=False).numpy()
        np.testing.assert_allclose(supernet(images, training=False).numpy(), expected,
                                   rtol=1e-4, atol=1e-4)
        # Not a vacuous match: another selection gives other logits.
        set_supernet_groups(supernet, (1,) * 13)
        assert np.abs(supernet(images, training=False).numpy() - expected).max() > 1e-2
