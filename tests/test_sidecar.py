"""The sidecar schema (tflbnn.metadata): one validator, driven by the shared case files.

``tests/data/sidecar_cases/cases.json`` lists one valid sidecar and one invalid file per rule
with the field its error must name; the Android app's JUnit test runs its Java mirror over the
same manifest, so both sides apply the same rules.
"""

import json
import math
import os
from pathlib import Path

import pytest

from tflbnn.metadata import (MAX_SIDECAR_BYTES, ModelMetadata, Preprocessing, labels_from_sequence,
                             sha256_bytes, validate_metadata)

CASES_DIR = Path(__file__).parent / "data" / "sidecar_cases"
CASES = json.loads((CASES_DIR / "cases.json").read_text(encoding="utf-8"))
SHA = sha256_bytes(b"a model")


def _strict_json(text):
    """Parse as JSON proper: NaN and Infinity are not JSON and must never be written."""
    def refuse(token):
        raise AssertionError(f"non-JSON token {token} written")
    return json.loads(text, parse_constant=refuse)


def test_manifest_lists_every_case_file_once():
    names = [case["file"] for case in CASES]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(path.name for path in CASES_DIR.glob("*.json")
                                   if path.name != "cases.json")
    assert any(case["valid"] for case in CASES) and any(not case["valid"] for case in CASES)
    for case in CASES:
        assert case["valid"] == (case["field"] == "" == case["problem"]), case


@pytest.mark.parametrize("case", [case for case in CASES if case["valid"]],
                         ids=lambda case: case["file"])
def test_valid_case_loads(case):
    path = CASES_DIR / case["file"]
    raw = json.loads(path.read_text(encoding="utf-8"))
    metadata = ModelMetadata.load(path)
    assert metadata.labels == tuple(raw["labels"])
    assert metadata.model_sha256 == raw["model_sha256"]
    pre = raw["preprocessing"]
    assert metadata.preprocessing.input_shape == (pre["height"], pre["width"], pre["channels"])
    assert metadata.preprocessing.std == tuple(float(value) for value in pre["std"])
    assert metadata.preprocessing.center_crop == pre.get("center_crop", 1.0)


@pytest.mark.parametrize("case", [case for case in CASES if not case["valid"]],
                         ids=lambda case: case["file"])
def test_invalid_case_is_refused_naming_file_and_field(case):
    path = CASES_DIR / case["file"]
    with pytest.raises(ValueError) as error:
        ModelMetadata.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {case['field']} "), message
    assert case["problem"] in message, message


@pytest.mark.parametrize("case", [case for case in CASES if not case["valid"]],
                         ids=lambda case: case["file"])
def test_validate_metadata_agrees_with_load_on_parsed_documents(case):
    # Python's json turns NaN/Infinity into floats; the validator refuses those as well.
    data = json.loads((CASES_DIR / case["file"]).read_text(encoding="utf-8"))
    with pytest.raises(ValueError) as error:
        validate_metadata(data, "doc")
    assert str(error.value).startswith(f"doc: {case['field']} ")
    assert case["problem"] in str(error.value)


def test_python_nan_in_a_document_is_refused_too():
    data = json.loads((CASES_DIR / "valid.json").read_text(encoding="utf-8"))
    data["preprocessing"]["mean"][2] = math.nan
    with pytest.raises(ValueError, match=r"^doc: preprocessing.mean\[2\] must be a finite number"):
        validate_metadata(data, "doc")
    data = json.loads((CASES_DIR / "valid.json").read_text(encoding="utf-8"))
    data["extra"]["history"] = [{"loss": 0.5}, {"loss": math.inf}]
    with pytest.raises(ValueError, match=r"^doc: extra.history\[1\].loss must be a finite"):
        validate_metadata(data, "doc")


def test_round_trip_keeps_every_field(tmp_path):
    original = ModelMetadata(
        labels=("cat", "dog", "bird"),
        preprocessing=Preprocessing(24, 32, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                    center_crop=0.875),
        name="tiny", extra={"conversion": {"float_twin": "m.float.tflite", "float_twin_sha256":
                                           SHA, "parity": None}, "accuracy": 0.8125},
        model_sha256=SHA)
    path = original.save(tmp_path / "m.json")
    assert ModelMetadata.load(path) == original
    written = _strict_json(path.read_text(encoding="utf-8"))
    assert written["model_sha256"] == SHA and written["labels"] == ["cat", "dog", "bird"]
    assert written["preprocessing"]["resize"] == "bilinear"


def test_keras_sidecar_needs_no_digest(tmp_path):
    metadata = ModelMetadata(("a", "b"), Preprocessing(8, 8, 1, (0.5,), (0.25,)))
    path = metadata.save(tmp_path / "model.json")
    assert "model_sha256" not in _strict_json(path.read_text())
    assert ModelMetadata.load(path).model_sha256 is None
    assert metadata.for_model(b"a model").model_sha256 == SHA


def test_nan_is_never_written(tmp_path):
    metadata = ModelMetadata(("a", "b"), Preprocessing(8, 8, 1, (0.5,), (0.25,)),
                             extra={"stages": [{"test_accuracy": float("nan")}]})
    target = tmp_path / "model.json"
    with pytest.raises(ValueError, match=rf"^{target}: extra.stages\[0\].test_accuracy must be a "
                                         "finite number, got NaN"):
        metadata.save(target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"preprocessing.std\[0\] must be a finite number"):
        Preprocessing(8, 8, 1, (0.5,), (float("nan"),))


@pytest.mark.parametrize("kwargs, message", [
    (dict(std=(0.0,)), r"^preprocessing.std\[0\] must be > 0, got 0.0$"),
    (dict(std=(-1,)), r"preprocessing.std\[0\] must be > 0"),
    (dict(mean=("x",)), r"preprocessing.mean\[0\] must be a finite number, got the string 'x'"),
    (dict(mean=(0.1, 0.2)), r"preprocessing.mean must have 1 values \(one per channel\), got 2"),
    (dict(height=28.5), r"preprocessing.height must be an integer, got 28.5"),
    (dict(height=None), r"preprocessing.height must be an integer, got null"),
    (dict(width=True), r"preprocessing.width must be an integer, got the boolean true"),
    (dict(width=8193), r"preprocessing.width must be in 1..8192, got 8193"),
    (dict(channels=2, mean=(0.5, 0.5), std=(1, 1)), r"preprocessing.channels must be 1 or 3"),
    (dict(center_crop=0.0), r"preprocessing.center_crop must be in \(0, 1\]"),
    (dict(center_crop=float("inf")), r"preprocessing.center_crop must be a finite number"),
])
def test_preprocessing_constructor_applies_the_schema(kwargs, message):
    arguments = dict(height=8, width=8, channels=1, mean=(0.5,), std=(0.25,), **{})
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Preprocessing(**arguments)


def test_preprocessing_accepts_numpy_statistics():
    np = pytest.importorskip("numpy")
    pre = Preprocessing(np.int64(28), 28, 1, (np.float32(0.25),), np.array([0.5]))
    assert pre.input_shape == (28, 28, 1) and type(pre.height) is int
    assert pre.mean == (0.25,) and pre.std == (0.5,)


def test_labels_refuse_strings_duplicates_and_empties():
    pre = Preprocessing(8, 8, 1, (0.5,), (0.25,))
    with pytest.raises(ValueError, match="^labels must be an array, got the string 'abc'"):
        ModelMetadata("abc", pre)
    with pytest.raises(ValueError, match=r"^labels\[2\] duplicates labels\[0\] \('a'\)"):
        ModelMetadata(("a", "b", "a"), pre)
    with pytest.raises(ValueError, match=r"^labels\[1\] must not be empty"):
        ModelMetadata(("a", ""), pre)
    with pytest.raises(ValueError, match=r"^labels\[0\] must be a string, got 3"):
        ModelMetadata((3, "b"), pre)
    with pytest.raises(ValueError, match=r"^names.txt: labels\[1\] duplicates labels\[0\]"):
        labels_from_sequence(["x", "x"], "names.txt")
    assert labels_from_sequence(["x", "y"]) == ("x", "y")
    with pytest.raises(ValueError, match="^model_sha256 must be 64 lowercase hex digits"):
        ModelMetadata(("a",), pre, model_sha256=SHA.upper())


def test_load_refuses_non_files_and_oversized_files_without_reading(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block if the loader did not check first
    with pytest.raises(ValueError, match=f"^{fifo}: not a regular file"):
        ModelMetadata.load(fifo)
    with pytest.raises(ValueError, match=f"^{tmp_path}: is a folder"):
        ModelMetadata.load(tmp_path)
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(MAX_SIDECAR_BYTES + 1)  # sparse: no data, only a size
    with pytest.raises(ValueError, match=f"^{big}: {MAX_SIDECAR_BYTES + 1} bytes, more than"):
        ModelMetadata.load(big)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        ModelMetadata.load(tmp_path / "missing.json")


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not a JSON metadata file"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "the top level must be an object, got an array of 2"),
    (b"[" * 100000, "not a JSON metadata file"),
])
def test_unparsable_sidecars_name_the_file(tmp_path, content, message):
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{path}: .*{message}"):
        ModelMetadata.load(path)
