"""Zoo: parameter and OP counts against the papers, registry errors, small-input variants."""

import contextlib
import io

import larq as lq
import numpy as np
import pytest

from tflbnn.models import get_model, list_models, model_options, profile


def trainable_params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def reactnet_a_expected():
    """Trainable parameters and MACs of ReActNet-A from the papers.md §1.1 layer table."""
    blocks = [(32, 64, 1, 112), (64, 128, 2, 56), (128, 128, 1, 56), (128, 256, 2, 28),
              (256, 256, 1, 28), (256, 512, 2, 14)] + [(512, 512, 1, 14)] * 5 + \
             [(512, 1024, 2, 7), (1024, 1024, 1, 7)]
    params = 3 * 32 * 9 + 2 * 32  # stem conv + BN (gamma, beta)
    binary_macs = 0
    for cin, cout, _, res in blocks:
        params += cin                       # RSign threshold before the 3x3
        params += 9 * cin * cin + 2 * cin   # binary 3x3 conv + BN
        params += 3 * cin                   # RPReLU (shift, slope, shift)
        params += cin                       # RSign before the 1x1
        params += cin * cout + 2 * cout     # one or two binary 1x1 convs + BN
        params += 3 * cout                  # RPReLU
        binary_macs += res * res * (9 * cin * cin + cin * cout)
    params += 1024 * 1000 + 1000
    float_macs = 112 * 112 * 27 * 32 + 1024 * 1000
    return params, binary_macs, float_macs


def react_bireal18_expected():
    """Trainable parameters of ReAct-BiReal-18 from papers.md §1.6."""
    params = 7 * 7 * 3 * 64 + 2 * 64
    cin = 64
    for cout in (64, 128, 256, 512):
        for block in range(4):
            params += cin + 9 * cin * cout + 2 * cout + 3 * cout  # RSign, bconv, BN, RPReLU
            if cin != cout:
                params += cin * cout + 2 * cout  # float 1x1 downsample + BN
            cin = cout
    return params + 512 * 1000 + 1000


@pytest.fixture(scope="module")
def reactnet_a_224():
    return get_model("reactnet_a", input_shape=(224, 224, 3), num_classes=1000)


@pytest.fixture(scope="module")
def bireal18_224():
    return get_model("reactnet_resnet18", input_shape=(224, 224, 3), num_classes=1000)


def test_registry_lists_models():
    assert {"reactnet_a", "reactnet_resnet18"} <= set(list_models())


def test_reactnet_a_matches_published_size_and_ops(reactnet_a_224):
    params, binary_macs, float_macs = reactnet_a_expected()
    assert trainable_params(reactnet_a_224) == params
    assert params == pytest.approx(29.3e6, rel=0.01)  # official ReActNet-A: 29.3M parameters
    p = profile(reactnet_a_224)
    assert p.binary_macs == binary_macs
    assert p.float_macs == float_macs
    assert p.ops == pytest.approx(0.87e8, rel=0.03)  # ReActNet paper: 0.87 x 10^8 OPs


def test_react_bireal18_matches_published_ops(bireal18_224):
    assert trainable_params(bireal18_224) == react_bireal18_expected()
    p = profile(bireal18_224)
    assert p.ops == pytest.approx(1.63e8, rel=0.03)  # ReActNet / Bi-Real paper: 1.63 x 10^8 OPs
    # 16 binary 3x3 convs, everything else float.
    assert sum(layer.binary_macs > 0 for layer in p.layers) == 16


def test_model_size_counts_binary_kernels_at_one_bit(reactnet_a_224):
    p = profile(reactnet_a_224)
    binary = sum(int(np.prod(l.kernel.shape)) for l in reactnet_a_224.layers if "bconv" in l.name)
    assert p.binary_params == binary
    assert p.size_bits == binary + 32 * (reactnet_a_224.count_params() - binary)


def test_larq_summary_works_on_every_zoo_model():
    for name in list_models():
        model = get_model(name, input_shape=(32, 32, 3), num_classes=10, width=0.25)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            lq.models.summary(model)
        assert "Total params" in out.getvalue()


@pytest.mark.parametrize("name,options", [
    ("reactnet_a", {"width": 0.25, "stem_stride": 1}),
    ("reactnet_resnet18", {"width": 0.25, "stem": "small"}),
])
@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3)])
def test_small_inputs_build_and_run(name, options, input_shape):
    model = get_model(name, input_shape=input_shape, num_classes=10, **options)
    out = model(np.zeros((2,) + input_shape, np.float32), training=False)
    assert out.shape == (2, 10)


def test_precisions_share_weight_shapes_for_two_step_transfer():
    shapes = [
        [w.shape for w in get_model("reactnet_a", input_shape=(28, 28, 1), num_classes=10,
                                    width=0.25, stem_stride=1, precision=p).weights]
        for p in ("float", "binary_activations", "binary")
    ]
    assert shapes[0] == shapes[1] == shapes[2]
    float_profile = profile(get_model("reactnet_a", input_shape=(28, 28, 1), num_classes=10,
                                      width=0.25, precision="float"))
    assert float_profile.binary_macs == 0


def test_unknown_name_and_options_list_what_is_valid():
    with pytest.raises(ValueError, match="reactnet_a"):
        get_model("resnet9000", input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ValueError, match="valid options: .*width"):
        get_model("reactnet_a", input_shape=(32, 32, 3), num_classes=10, depth=3)
    with pytest.raises(ValueError, match="width"):
        get_model("reactnet_a", input_shape=(32, 32, 3), num_classes=10, width=0)
    with pytest.raises(ValueError, match="stem_stride"):
        get_model("reactnet_a", input_shape=(32, 32, 3), num_classes=10, stem_stride=3)
    with pytest.raises(ValueError, match="stem"):
        get_model("reactnet_resnet18", input_shape=(32, 32, 3), num_classes=10, stem="tiny")
    with pytest.raises(ValueError, match="num_classes"):
        get_model("reactnet_a", input_shape=(32, 32, 3), num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        get_model("reactnet_a", input_shape=(32, 32), num_classes=10)
    assert "width" in model_options("reactnet_a")
