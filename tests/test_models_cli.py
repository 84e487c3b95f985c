"""``tflbnn models`` and ``get_model`` refuse bad options, shapes and class counts by name
(issue 17 §4): exit 2, a message naming the option and the value, no traceback, and no
attempt to build a model that would not fit in memory."""

import pytest

from tflbnn.cli import main
from tflbnn.models import get_model
from tflbnn.models.registry import MAX_INPUT_SIDE, MAX_NUM_CLASSES, MAX_WIDTH


def run_models(capsys, *argv: str) -> tuple[int, str]:
    """Run ``tflbnn models`` in-process; argparse's own errors exit through SystemExit."""
    try:
        code = main(["models", *argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


@pytest.mark.parametrize("option,shown", [
    ("width=abc", "'abc'"),
    ("width=1e308", "1e+308"),
    ("width=nan", "'nan'"),       # not JSON: taken as the string
    ("width=NaN", "nan"),         # JSON's NaN: a float, but not finite
    ("width=inf", "'inf'"),
    ("width=Infinity", "inf"),
    ("width=-1", "-1"),
    ("width=0", "0"),
    ("width=true", "True"),
    (f"width={MAX_WIDTH * 2}", str(MAX_WIDTH * 2)),
    ("stem_stride=1.5", "1.5"),
    ("stem_stride=\"2\"", "'2'"),
    ("pad_values=1e308", "1e+308"),
    ("pad_values=0.5", "0.5"),
    ("bn_free=1", "1"),
])
def test_bad_option_values_name_the_option_and_value(capsys, option, shown):
    code, output = run_models(capsys, "reactnet_a", "--input-shape", "16,16,1",
                              "--num-classes", "10", "-o", option)
    key = option.split("=")[0]
    assert code == 2
    assert f"reactnet_a: {key} must be" in output and shown in output


def test_unknown_and_malformed_options(capsys):
    code, output = run_models(capsys, "reactnet_a", "-o", "depth=3")
    assert code == 2 and "unknown option(s) depth" in output and "valid options" in output
    code, output = run_models(capsys, "reactnet_a", "-o", "foo")
    assert code == 2 and "key=value" in output and "'foo'" in output


@pytest.mark.parametrize("shape,shown", [
    ("0,0,1", "(0, 0, 1)"),
    (f"{MAX_INPUT_SIDE + 1},32,3", f"({MAX_INPUT_SIDE + 1}, 32, 3)"),
    ("100000,100000,3", "(100000, 100000, 3)"),
    ("32,32,5000", "(32, 32, 5000)"),
    ("a,b,c", "'a,b,c'"),
    ("32,32", "'32,32'"),
])
def test_bad_input_shapes(capsys, shape, shown):
    code, output = run_models(capsys, "reactnet_a", "--input-shape", shape)
    assert code == 2
    assert "input shape" in output.replace("input_shape", "input shape") and shown in output


@pytest.mark.parametrize("count", ["1", "0", "-3", str(MAX_NUM_CLASSES + 1)])
def test_bad_class_counts(capsys, count):
    code, output = run_models(capsys, "reactnet_a", "--num-classes", count)
    assert code == 2 and "num_classes" in output and count in output


def test_unknown_model(capsys):
    code, output = run_models(capsys, "resnet9000")
    assert code == 2 and "unknown model 'resnet9000'" in output and "reactnet_a" in output


def test_python_callers_get_the_same_messages(capsys):
    """The CLI's message is exactly get_model's: validation lives in the registry."""
    with pytest.raises(ValueError) as error:
        get_model("reactnet_a", input_shape=(16, 16, 1), num_classes=10, width="abc")
    _, output = run_models(capsys, "reactnet_a", "--input-shape", "16,16,1",
                           "--num-classes", "10", "-o", "width=abc")
    assert str(error.value) in output
    for shape in [(16.5, 16, 1), (16, 16), "16,16,1", (True, 16, 1)]:
        with pytest.raises(ValueError, match="input_shape"):
            get_model("reactnet_a", input_shape=shape, num_classes=10)
    with pytest.raises(ValueError, match=r"groups must be a list of integers, got \[1, 'x'\]"):
        get_model("binary_mobilenet", input_shape=(16, 16, 1), num_classes=10, groups=[1, "x"])
    with pytest.raises(ValueError, match="max_groups must be an integer or none, got 2.5"):
        get_model("binary_mobilenet", input_shape=(16, 16, 1), num_classes=10, max_groups=2.5)


def test_valid_options_still_profile(capsys):
    """A small valid model builds and profiles (JSON values, ints for float options)."""
    code, output = run_models(capsys, "reactnet_a", "--input-shape", "16,16,1",
                              "--num-classes", "10", "-o", "width=0.25", "-o", "stem_stride=1",
                              "-o", "pad_values=1")
    assert code == 0, output
    assert "reactnet_a (16, 16, 1) -> 10 classes" in output
    code, output = run_models(capsys)
    assert code == 0 and "reactnet_a: width=1.0" in output
