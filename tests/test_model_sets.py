"""A converted model and its sidecar as a set: digests, confinement, header-first reads,
atomic replacement under concurrency, and outputs refused before any work.

The model under test is the Android demo's bundled LCE model (a real ``tflbnn convert``
output), copied with a sidecar that records its SHA-256, so no test here converts anything.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tflbnn.android
import tflbnn.converters
import tflbnn.model_files
from tflbnn.android import APP_ASSETS
from tflbnn.cli import main
from tflbnn.metadata import ModelMetadata, locked_folder, write_files_together

ROOT = Path(__file__).resolve().parent.parent
APP_MODEL = ROOT / "android_demo" / APP_ASSETS / "model.tflite"
PHOTO = sorted((Path(__file__).parent / "data" / "photos").glob("*.png"))[0]
METADATA_PY = ROOT / "tflbnn" / "metadata.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def app_metadata() -> ModelMetadata:
    data = json.loads(APP_MODEL.with_suffix(".json").read_text())
    return ModelMetadata(labels=tuple(data["labels"]),
                         preprocessing=ModelMetadata.load(
                             APP_MODEL.with_suffix(".json")).preprocessing,
                         name=data["name"])


@pytest.fixture
def model_set(tmp_path) -> Path:
    """``tmp_path/set/m.tflite`` with a sidecar recording its digest (no float twin)."""
    folder = tmp_path / "set"
    folder.mkdir()
    model = folder / "m.tflite"
    shutil.copyfile(APP_MODEL, model)
    app_metadata().with_extra(conversion={"float_twin": None}).for_model(
        model.read_bytes()).save(folder / "m.json")
    return model


def fake_app(folder: Path) -> Path:
    (folder / "app/src/main").mkdir(parents=True)
    (folder / "app/src/main/AndroidManifest.xml").write_text("<manifest/>")
    return folder


def flip_weights(model: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the file (inside the weight buffers)."""
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    for index in range(middle, middle + count):
        data[index] ^= 0xFF
    model.write_bytes(bytes(data))


def must_not_run(*_args, **_kwargs):
    raise AssertionError("the expensive step ran although the input was already refused")


def test_untampered_set_is_accepted(model_set, tmp_path, capsys):
    """The control for the refusals below: the same set, unmodified, classifies and installs."""
    assert main(["classify", str(PHOTO), "--model", str(model_set)]) == 0
    app = fake_app(tmp_path / "app")
    assert main(["app-model", str(model_set), "--app-dir", str(app)]) == 0
    installed = app / APP_ASSETS
    assert (installed / "model.tflite").read_bytes() == APP_MODEL.read_bytes()
    assert ModelMetadata.load(installed / "model.json").model_sha256 == sha256(APP_MODEL)


def test_flipped_model_is_refused_by_every_consumer(model_set, tmp_path, capsys):
    flip_weights(model_set)
    sidecar = model_set.with_suffix(".json")
    expected = (f"{model_set}: SHA-256 {sha256(model_set)} does not match {sidecar} "
                f"model_sha256 {sha256(APP_MODEL)}: the model file was modified or belongs to "
                "another sidecar; re-run tflbnn convert")
    app = fake_app(tmp_path / "app")
    golden = tmp_path / "golden"
    commands = {
        "classify": ["classify", str(PHOTO), "--model", str(model_set)],
        "bench": ["bench", str(model_set), "--runs", "1"],
        "app-model": ["app-model", str(model_set), "--app-dir", str(app)],
        "app-golden": ["app-golden", str(PHOTO), "--model", str(model_set), "--out",
                       str(golden)],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        captured = capsys.readouterr()
        assert captured.err == f"tflbnn {name}: error: {expected}\n", name
        assert captured.out == ""
    assert not (app / APP_ASSETS).exists()  # nothing installed
    assert not golden.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app", "set"]


def test_sidecar_without_digest_or_with_bad_values_is_refused(model_set, capsys):
    sidecar = model_set.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    del data["model_sha256"]
    sidecar.write_text(json.dumps(data))
    assert main(["classify", str(PHOTO), "--model", str(model_set)]) == 2
    err = capsys.readouterr().err
    assert f"{sidecar}: model_sha256 is missing" in err and "re-run tflbnn convert" in err

    data["model_sha256"] = sha256(model_set)
    data["preprocessing"]["std"] = ["x"]
    sidecar.write_text(json.dumps(data))
    for argv in (["classify", str(PHOTO), "--model", str(model_set)],
                 ["bench", str(model_set), "--runs", "1"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.endswith(
            f"error: {sidecar}: preprocessing.std[0] must be a finite number, got the string "
            "'x'\n")


def write_twin_sidecar(model_set: Path, twin_name: str, twin_sha: str | None) -> None:
    conversion = {"float_twin": twin_name, "float_twin_sha256": twin_sha}
    app_metadata().with_extra(conversion=conversion).for_model(model_set.read_bytes()).save(
        model_set.with_suffix(".json"))


def test_float_twin_must_stay_in_the_models_folder(model_set, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tflbnn.converters, "benchmark_tflite", must_not_run)
    sidecar = model_set.with_suffix(".json")
    outside = tmp_path / "outside.tflite"
    shutil.copyfile(APP_MODEL, outside)

    data = json.loads(sidecar.read_text())
    data["extra"]["conversion"] = {"float_twin": "../outside.tflite",
                                   "float_twin_sha256": sha256(outside)}
    sidecar.write_text(json.dumps(data))
    assert main(["bench", str(model_set)]) == 2
    assert (f"{sidecar}: extra.conversion.float_twin must be a bare file name in the model's "
            "folder") in capsys.readouterr().err

    (model_set.parent / "m.float.tflite").symlink_to(outside)
    write_twin_sidecar(model_set, "m.float.tflite", sha256(outside))
    assert main(["bench", str(model_set)]) == 2
    err = capsys.readouterr().err
    assert f"{sidecar}: extra.conversion.float_twin 'm.float.tflite' leads to {outside}" in err
    assert "outside the model's folder" in err


def test_float_twin_digest_is_checked(model_set, monkeypatch, capsys):
    monkeypatch.setattr(tflbnn.converters, "benchmark_tflite", must_not_run)
    twin = model_set.parent / "m.float.tflite"
    shutil.copyfile(APP_MODEL, twin)
    write_twin_sidecar(model_set, twin.name, None)
    assert main(["bench", str(model_set)]) == 2
    assert "float_twin_sha256 is missing" in capsys.readouterr().err

    write_twin_sidecar(model_set, twin.name, sha256(twin))
    flip_weights(twin)
    assert main(["bench", str(model_set)]) == 2
    assert (f"error: {twin}: SHA-256 {sha256(twin)} does not match {model_set.with_suffix('.json')}"
            " extra.conversion.float_twin_sha256") in capsys.readouterr().err


HEADER_PROBE = textwrap.dedent("""
    import json, resource, sys
    from tflbnn.cli import main

    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    before = peak_kib()
    codes = []
    for path in sys.argv[1:]:
        codes.append(main(["bench", path]))
        codes.append(main(["classify", "any.png", "--model", path]))
    print(json.dumps({"codes": codes, "growth_kib": peak_kib() - before}))
""")


def test_big_files_are_refused_before_being_read(tmp_path):
    """A 1.5 GiB file with a wrong header and a 3 GiB one (over the FlatBuffer limit) are both
    refused while the process's peak memory grows by far less than either file."""
    wrong_header = tmp_path / "wrong.tflite"
    too_big = tmp_path / "huge.tflite"
    for path, header, size in ((wrong_header, b"\0\0\0\0JUNK", 3 << 29),
                               (too_big, b"\0\0\0\0TFL3", 3 << 30)):
        with open(path, "wb") as handle:
            handle.write(header)
            handle.truncate(size)  # sparse: takes no disk or memory until read
    result = subprocess.run([sys.executable, "-c", HEADER_PROBE, str(wrong_header),
                             str(too_big)], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [2, 2, 2, 2]
    assert report["growth_kib"] < 256 * 1024
    assert "Traceback" not in result.stderr
    assert result.stderr.count(f"{wrong_header}: not a TFLite model (file identifier "
                               "b'JUNK', expected b'TFL3')") == 2
    assert result.stderr.count(f"{too_big}: {3 << 30} bytes, more than the {2**31 - 1} a TFLite "
                               "model may have") == 2


# A writer or reader process for the race below. It loads tflbnn/metadata.py on its own (the
# module needs only numpy) so that 17 processes start in well under a second each.
RACER = textwrap.dedent("""
    import hashlib, importlib.util, json, os, sys, time
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("metadata_under_test", sys.argv[1])
    metadata = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = metadata
    spec.loader.exec_module(metadata)
    folder, role, worker = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    (folder.parent / f"ready-{role}-{worker}").touch()
    while not (folder.parent / "go").exists():
        time.sleep(0.001)

    def digest(data):
        return hashlib.sha256(data).hexdigest()

    if role == "writer":
        pre = metadata.Preprocessing(8, 8, 1, (0.5,), (0.25,))
        for round_ in range(int(sys.argv[5])):
            tag = f"{worker}-{round_}".encode()
            model = b"\\0\\0\\0\\0TFL3" + tag * (100 + 37 * worker)
            twin = b"\\0\\0\\0\\0TFL3float" + tag * (50 + 11 * round_)
            sidecar = metadata.ModelMetadata(
                ("a", "b"), pre, name=tag.decode(),
                extra={"conversion": {"float_twin": "m.float.tflite",
                                      "float_twin_sha256": digest(twin)}}).for_model(model)
            metadata.write_files_together({folder / "m.tflite": model,
                                           folder / "m.float.tflite": twin,
                                           folder / "m.json": sidecar})
    else:
        reads = mixed = 0
        while not (folder.parent / "stop").exists():
            with metadata.locked_folder(folder, exclusive=False):
                if not (folder / "m.json").exists():
                    continue
                model = (folder / "m.tflite").read_bytes()
                twin = (folder / "m.float.tflite").read_bytes()
                sidecar = json.loads((folder / "m.json").read_text())
            reads += 1
            mixed += (sidecar["model_sha256"] != digest(model) or
                      sidecar["extra"]["conversion"]["float_twin_sha256"] != digest(twin))
        print(json.dumps({"reads": reads, "mixed": mixed}))
""")


def test_racing_writers_leave_one_whole_set(tmp_path):
    """16 processes replace the same 3-file set 20 times each while a reader checks every set
    it sees; the lock makes the last writer win whole. Timing changes which writer wins, never
    the outcome checked, so the test cannot flake."""
    folder = tmp_path / "out"
    writers, rounds = 16, 20

    def start(role, worker, *extra):
        return subprocess.Popen([sys.executable, "-c", RACER, str(METADATA_PY), str(folder),
                                 role, str(worker), *map(str, extra)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    folder.mkdir()
    reader = start("reader", 0)
    procs = [start("writer", worker, rounds) for worker in range(writers)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < writers + 1:
        assert time.monotonic() < deadline, "racers did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    (tmp_path / "stop").touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["reads"] > 0 and seen["mixed"] == 0

    assert sorted(path.name for path in folder.iterdir()) == [
        "m.float.tflite", "m.json", "m.tflite"]  # no staging folders, temporary or lock files
    final = ModelMetadata.load(folder / "m.json")
    assert final.model_sha256 == sha256(folder / "m.tflite")
    assert final.extra["conversion"]["float_twin_sha256"] == sha256(folder / "m.float.tflite")


def test_failed_set_write_names_the_destination_and_keeps_the_old_set(model_set):
    folder = model_set.parent
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    broken = app_metadata().with_extra(accuracy=float("nan")).for_model(b"new")
    with pytest.raises(ValueError, match=rf"^{folder / 'm.json'}: extra.accuracy must be a "
                                         "finite number"):
        write_files_together({model_set: b"new", folder / "m.json": broken})
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_reader_waits_for_a_writer_holding_the_folder(tmp_path):
    """A shared lock is not granted while a set is being replaced (exclusive lock held)."""
    import fcntl

    with locked_folder(tmp_path, exclusive=True):
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    with locked_folder(tmp_path, exclusive=False):
        with locked_folder(tmp_path, exclusive=False):  # readers share
            pass
    assert list(tmp_path.iterdir()) == []  # no lock file


def test_unwritable_outputs_are_refused_before_any_work(model_set, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setattr(tflbnn.model_files, "load_keras_model", must_not_run)
    monkeypatch.setattr(tflbnn.converters, "convert_model", must_not_run)
    monkeypatch.setattr(tflbnn.converters, "benchmark_tflite", must_not_run)
    monkeypatch.setattr(tflbnn.android, "TFLiteClassifier", must_not_run)
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    keras = tmp_path / "model.keras"
    keras.write_bytes(b"never read")
    before = sorted(path.name for path in tmp_path.rglob("*"))

    cases = [
        (["convert", str(keras), "-o", str(blocker / "sub" / "m.tflite")],
         f"{blocker / 'sub' / 'm.tflite'}: cannot be written: {blocker} is a file, not a folder"),
        (["convert", str(keras), "-o", str(notes)], f"-o {notes}: the converted model's file"),
        (["bench", str(model_set), "--json", str(blocker / "r.json")],
         f"{blocker / 'r.json'}: cannot be written: {blocker} is a file, not a folder"),
        (["bench", str(model_set), "--json", str(notes)],
         f"{notes}: cannot write a file there: it is a folder"),
        (["app-golden", str(PHOTO), "--model", str(model_set), "--out", str(blocker / "g")],
         f"{blocker / 'g'}: cannot be written: {blocker} is a file, not a folder"),
        (["app-golden", str(PHOTO), "--model", str(model_set), "--out", str(blocker)],
         f"{blocker}: cannot write a folder there: a file of that name exists"),
        (["app-golden", str(PHOTO), "--model", str(model_set), "--out", str(notes)],
         f"{notes} exists and is not a golden folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"tflbnn {argv[0]}: error: {message}"), err
    assert sorted(path.name for path in tmp_path.rglob("*")) == before
    assert (notes / "keep.txt").read_text() == "mine"
