"""Generate the bad-input corpus of the reliability suite (``tests/test_reliability.py``).

Usage::

    python scripts/make_bad_inputs.py OUT_DIR

writes the corpus under ``OUT_DIR`` (about 60 MiB on disk, most of it sparse or compressed) and
``OUT_DIR/cases.json``, one record per case. The test imports this module and calls
``make_base`` (one small trained-looking ``.keras`` model, its sidecar and its conversion) and
``make_corpus`` (every bad input plus the case list) into pytest's temporary folder, so nothing
large is committed.

A case is either a CLI run (``argv`` for ``tflbnn.cli.main``) or a call of a public loader
(``loader`` and ``args``). For every case the suite expects: a non-zero exit (or the loader's
documented ``ValueError``/``FileNotFoundError``), no traceback, a message containing a word of
each group in ``words`` (the input's name, then the problem), no file left behind, and no code
from a hostile file executed: every payload in the corpus creates a file under
``OUT_DIR/executed/`` when it runs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Case", "make_base", "make_corpus", "MARKER_DIR", "LABELS", "main"]

#: Folder (under the corpus) where hostile payloads leave a file if they ever run.
MARKER_DIR = "executed"

#: The base model's classes: ten, like Fashion-MNIST, so a ten-letter string splits to ten.
LABELS = [f"class_{index}" for index in range(10)]

# Problem vocabularies: a message must contain one word of the group its case names.
CORRUPT = ("corrupt", "truncated", "not a", "invalid", "cannot", "damaged", "unreadable",
           "malformed", "too short", "bad ", "unexpected", "does not match", "mismatch")
NOT_FOUND = ("not found", "does not exist", "no such", "missing")
UNSAFE = ("lambda", "safe mode", "safe_mode", "unsafe", "not allowed", "refus", "arbitrary code",
          "untrusted")
BOMB = ("too large", "too big", "exceeds", "decompression bomb", "bomb", "pixels", "limit")
NOT_WRITABLE = ("not a directory", "is a directory", "not writable", "cannot write",
                "exists and is", "regular file", "is a file", "not a folder", "cannot create")
TYPE = ("must be", "expected", "invalid", "not a", "should be", "needs")
HASH = ("sha256", "checksum", "hash", "does not match", "mismatch", "modified", "corrupt")
OUTSIDE = ("outside", "escapes", "must be in", "not inside", "must stay", "relative",
           "bare file name", "in the model's folder")
UNKNOWN = ("unknown", "unrecognized", "invalid choice", "no such", "not one of", "one of",
           "not a known")


@dataclasses.dataclass
class Case:
    """One bad input and what its refusal must say.

    Attributes:
        id: unique, ``<entry point>/<what is wrong>``.
        area: the part of tflbnn that must refuse it (for the report): ``loader``, ``sidecar``,
            ``data``, ``config``, ``cli``, ``convert``, ``bench``, ``android``, ``models``.
        words: groups of alternatives; the message must contain one word of every group
            (case-insensitive).
        argv: ``tflbnn`` arguments, for a CLI case.
        loader: the public loader's name (see the test's registry), for a loader case.
        args: the loader's positional arguments.
        kwargs: the loader's keyword arguments.
    """

    id: str
    area: str
    words: list[list[str]]
    argv: list[str] | None = None
    loader: str | None = None
    args: list[Any] = dataclasses.field(default_factory=list)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- base assets


def tiny_model():
    """A small binary ReActNet on 16×16 grey images, ten classes (seeded, untrained)."""
    import tflbnn  # noqa: F401  (selects Keras 2 before TensorFlow)
    import tensorflow as tf
    from tflbnn import reactnet_block

    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = reactnet_block(x, 32, name="b1")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="tiny")


def make_base(folder: str | Path) -> Path:
    """Write the valid inputs the corpus mutates.

    ``model.keras`` + ``model.json`` (a trained model and its sidecar), ``parity.npy``,
    ``conv/model.tflite`` + ``model.float.tflite`` + ``model.json`` (its conversion through
    ``tflbnn convert``), ``photo.png`` (16×16 grey), ``photo.jpg`` (24×20 RGB) and ``app/`` (a
    minimal copy of the Android demo's layout).

    Args:
        folder: where to write; created.

    Returns:
        ``folder`` as a ``Path``.

    Raises:
        RuntimeError: if the conversion of the base model fails.
    """
    import numpy as np
    from PIL import Image

    from tflbnn.cli import main as cli_main
    from tflbnn.metadata import ModelMetadata, Preprocessing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    preprocessing = Preprocessing(16, 16, 1, (0.5,), (0.25,))
    tiny_model().save(folder / "model.keras")
    ModelMetadata(labels=LABELS, preprocessing=preprocessing, name="tiny").save(
        folder / "model.json")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(8, 16, 16, 1), dtype=np.uint8)
    np.save(folder / "parity.npy", preprocessing.normalize(pixels))
    (folder / "conv").mkdir(exist_ok=True)
    code = cli_main(["convert", str(folder / "model.keras"), "-o",
                     str(folder / "conv" / "model.tflite"), "--parity-images",
                     str(folder / "parity.npy")])
    if code != 0:
        raise RuntimeError(f"converting the base model failed with exit code {code}")
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    Image.fromarray(pixels[0, :, :, 0]).save(folder / "photo.png")
    Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(
        folder / "photo.jpg", quality=90)
    app = folder / "app"
    (app / "app/src/main").mkdir(parents=True, exist_ok=True)
    (app / "app/src/main/AndroidManifest.xml").write_text("<manifest/>\n")
    return folder


# --------------------------------------------------------------------------- file makers


def _flip(data: bytes, start: int, count: int) -> bytes:
    out = bytearray(data)
    for index in range(start, min(start + count, len(out))):
        out[index] ^= 0xFF
    return bytes(out)


def _largest_buffer_offset(tflite: bytes) -> tuple[int, int]:
    """(offset, length) of the largest constant buffer (the weights) inside a flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(tflite, 0)
    best = b""
    for index in range(model.BuffersLength()):
        data = model.Buffers(index).DataAsNumpy()
        if not isinstance(data, int) and data.size > len(best):
            best = data.tobytes()
    offset = tflite.find(best)
    if not best or offset < 0:
        raise RuntimeError("no weight buffer found in the base .tflite")
    return offset, len(best)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit grey PNG of ``width × height`` (all black): ~50 KiB for 20000²."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row * 1000) for _ in range(height // 1000)]
    chunks.append(compressor.compress(row * (height % 1000)))
    chunks.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", b"".join(chunks)) + _png_chunk(b"IEND", b""))


def jpeg_bomb(jpeg: bytes, width: int = 65500, height: int = 65500) -> bytes:
    """``jpeg`` with its frame header (SOF0/SOF2) claiming ``width × height``."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at >= 0:
            # SOFn: marker, length (2), precision (1), height (2), width (2).
            return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]
    raise RuntimeError("no SOF marker in the base JPEG")


def _idx_bytes(array, code: int | None = None) -> bytes:
    import numpy as np

    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    array = np.asarray(array)
    code = codes[array.dtype] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def _rewrite_zip(source: Path, destination: Path, replace: dict[str, bytes | None],
                 extra: dict[str, bytes] | None = None) -> None:
    """Copy a zip, replacing (``bytes``) or dropping (``None``) named entries."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w",
                                                         zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if item.filename in replace:
                if replace[item.filename] is not None:
                    new.writestr(item.filename, replace[item.filename])
            else:
                new.writestr(item, old.read(item.filename))
        for name, data in (extra or {}).items():
            new.writestr(name, data)


def _zip_bomb(source: Path, destination: Path, size: int = 1 << 30) -> None:
    """``source`` with its ``config.json`` prefixed by ``size`` bytes of JSON whitespace."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w",
                                                         zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if item.filename != "config.json":
                new.writestr(item, old.read(item.filename))
                continue
            block = b" " * (1 << 20)
            with new.open("config.json", "w", force_zip64=True) as handle:
                for _ in range(size // len(block)):
                    handle.write(block)
                handle.write(old.read("config.json"))


def _hostile_models(folder: Path, marker_dir: Path) -> dict[str, Path]:
    """Model files whose payload touches ``marker_dir/<name>`` if it ever runs."""
    import tflbnn  # noqa: F401
    import tensorflow as tf

    made = {}
    marker_dir.mkdir(parents=True, exist_ok=True)
    for name, suffix in (("lambda_keras", ".keras"), ("lambda_h5", ".h5")):
        marker = marker_dir / name
        payload = eval(  # noqa: S307  (builds the booby trap: a lambda with its own bytecode)
            f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
        inputs = tf.keras.Input((4,))
        outputs = tf.keras.layers.Dense(2)(tf.keras.layers.Lambda(payload, name="trap")(inputs))
        path = folder / f"{name}{suffix}"
        tf.keras.Model(inputs, outputs).save(path)
        made[name] = path
    for marker in marker_dir.iterdir():  # building the model ran each payload once
        marker.unlink()
    return made


def _config_with(source: Path, edit) -> bytes:
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
    edit(config)
    return json.dumps(config).encode()


def _layer(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == name)


def _sidecar(base: Path) -> dict:
    return json.loads((base / "conv" / "model.json").read_text())


def _set_key(data: Any, key: str, value: Any) -> bool:
    """Set ``key`` wherever it occurs in nested dicts; ``True`` if it was found."""
    found = False
    if isinstance(data, dict):
        for name in list(data):
            if name == key:
                data[name] = value
                found = True
            else:
                found = _set_key(data[name], key, value) or found
    elif isinstance(data, list):
        for item in data:
            found = _set_key(item, key, value) or found
    return found


# --------------------------------------------------------------------------- the corpus


class _Corpus:
    """Collects cases; every path it hands out is absolute."""

    def __init__(self, root: Path, base: Path):
        self.root = root
        self.base = base
        self.cases: list[Case] = []
        self.markers = root / MARKER_DIR
        self.image = str(base / "photo.png")
        self.tflite = str(base / "conv" / "model.tflite")
        self.keras = str(base / "model.keras")
        self.app = str(base / "app")

    def path(self, relative: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, relative: str, data: bytes | str) -> str:
        path = self.path(relative)
        if isinstance(data, str):
            data = data.encode("utf-8")
        path.write_bytes(data)
        return str(path)

    def cli(self, case_id: str, area: str, argv: Sequence[str], *words: Sequence[str]) -> None:
        self.cases.append(Case(case_id, area, [list(group) for group in words],
                               argv=[str(arg) for arg in argv]))

    def load(self, case_id: str, area: str, loader: str, args: Sequence[Any],
             *words: Sequence[str], **kwargs: Any) -> None:
        self.cases.append(Case(case_id, area, [list(group) for group in words], loader=loader,
                               args=list(args), kwargs=kwargs))


def _keras_files(c: _Corpus) -> list[tuple[str, str, list[Sequence[str]]]]:
    """(name, path, problem words) of the bad model files."""
    base = Path(c.keras)
    good = base.read_bytes()
    hostile = _hostile_models(c.path("keras/x").parent, c.markers)
    files = []

    def add(name, path, *problem):
        files.append((name, str(path), [*problem]))

    add("truncated", c.write("keras/truncated.keras", good[:len(good) // 2]), CORRUPT)
    add("random", c.write("keras/random.keras", bytes(range(256)) * 64), CORRUPT)
    # The zip's central directory is at the end; flipping inside the entries breaks a CRC.
    add("bit_flipped", c.write("keras/bit_flipped.keras", _flip(good, len(good) // 3, 64)),
        CORRUPT)
    add("empty", c.write("keras/empty.keras", b""), CORRUPT + ("empty",))
    add("lambda_keras", hostile["lambda_keras"], UNSAFE)
    add("lambda_h5", hostile["lambda_h5"], (".keras", "hdf5", "h5", "format", "suffix"))
    renamed = c.path("keras/h5_renamed.keras")
    shutil.copyfile(hostile["lambda_h5"], renamed)
    add("h5_renamed_keras", renamed, CORRUPT + ("hdf5", "zip"))
    keras_as_h5 = c.path("keras/keras_renamed.h5")
    shutil.copyfile(base, keras_as_h5)
    add("keras_renamed_h5", keras_as_h5, (".keras", "format", "suffix", "extension"))

    def os_system(config):
        _layer(config, "logits")["config"]["activation"] = {
            "module": "os", "class_name": "function", "config": "system",
            "registered_name": "function"}

    path = c.path("keras/os_system.keras")
    _rewrite_zip(base, path, {"config.json": _config_with(base, os_system)})
    add("os_system", path, ("os", "system", "module", "unknown", "not allowed", "unsafe",
                            "refus"))

    def popen(config):
        layer = _layer(config, "logits")
        layer.update({"module": "subprocess", "class_name": "Popen", "registered_name": "Popen"})
        layer["config"] = {"name": "logits", "args": ["touch", str(c.markers / "popen")]}

    path = c.path("keras/popen.keras")
    _rewrite_zip(base, path, {"config.json": _config_with(base, popen)})
    add("subprocess_popen", path, ("popen", "subprocess", "module", "unknown", "not allowed",
                                   "unsafe", "refus"))

    def unknown_layer(config):
        _layer(config, "logits")["class_name"] = "NoSuchLayer"

    path = c.path("keras/unknown_layer.keras")
    _rewrite_zip(base, path, {"config.json": _config_with(base, unknown_layer)})
    add("unknown_layer", path, ("nosuchlayer", "unknown"))
    path = c.path("keras/zip_bomb.keras")
    _zip_bomb(base, path)
    add("zip_bomb", path, BOMB + ("uncompressed",))
    path = c.path("keras/bad_config_json.keras")
    _rewrite_zip(base, path, {"config.json": b'{"class_name": "Functional", "config": {'})
    add("invalid_config_json", path, ("config.json",))
    path = c.path("keras/no_config.keras")
    _rewrite_zip(base, path, {"config.json": None})
    add("no_config_json", path, ("config.json",))
    path = c.path("keras/no_weights.keras")
    _rewrite_zip(base, path, {"model.weights.h5": None})
    add("no_weights", path, ("weights",))
    path = c.path("keras/bad_weights.keras")
    with zipfile.ZipFile(base) as archive:
        weights = archive.read("model.weights.h5")
    _rewrite_zip(base, path, {"model.weights.h5": weights[:len(weights) // 2]})
    add("truncated_weights", path, ("weights",) + CORRUPT)
    files.append(("photo_renamed", c.write("keras/photo.keras", Path(c.image).read_bytes()),
                  [CORRUPT]))
    folder = c.path("keras/folder.keras")
    folder.mkdir()
    add("directory", folder, ("directory", "folder", "not a file") + CORRUPT)
    add("missing", c.root / "keras/missing.keras", NOT_FOUND)
    add("wrong_suffix", c.write("keras/model.txt", good), (".keras", "suffix", "format"))
    return files


def _keras_cases(c: _Corpus) -> None:
    files = _keras_files(c)
    teacher_cases = {"lambda_keras", "lambda_h5", "h5_renamed_keras", "os_system", "missing",
                     "truncated", "directory", "zip_bomb"}
    for name, path, problem in files:
        who = [Path(path).name]
        c.cli(f"convert/keras_{name}", "loader",
              ["convert", path, "-o", c.root / "keras_out" / f"{name}.tflite", "--labels",
               c.base / "labels.txt", "--mean", "0.5", "--std", "0.25"], who, *problem)
        c.load(f"load_keras_model/{name}", "loader", "load_keras_model", [path], who, *problem)
        if name in teacher_cases:
            config = _train_config(c, f"teacher_{name}", recipe={"kind": "bop",
                                                                 "teacher": path})
            c.cli(f"train/teacher_{name}", "loader", ["train", config], who, *problem)


# --- converted models and sidecars


def _tflite_set(c: _Corpus, name: str, model: bytes | None = None,
                sidecar: dict | str | bytes | None = None, twin: bytes | None = None) -> str:
    """A folder ``tflite/<name>/`` holding ``<name>.tflite``, its sidecar and float twin."""
    folder = c.path(f"tflite/{name}/x").parent
    model_path = folder / f"{name}.tflite"
    if model is not None:
        model_path.write_bytes(model)
    data = _sidecar(c.base) if sidecar is None else sidecar
    if isinstance(data, dict):
        data = json.dumps(data, indent=2, allow_nan=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    # The float twin keeps the name the base sidecar records.
    twin_name = _sidecar(c.base)["extra"]["conversion"].get("float_twin", "model.float.tflite")
    (folder / f"{name}.json").write_bytes(data)
    (folder / twin_name).write_bytes(
        twin if twin is not None else (c.base / "conv" / "model.float.tflite").read_bytes())
    return str(model_path)


def _tflite_consumers(c: _Corpus, case: str, area: str, model: str, who: Sequence[str],
                      *problem: Sequence[str], bench: bool = True, golden: bool = True,
                      loader: bool = True) -> None:
    """The same bad model through classify, bench, app-model, app-golden and the loader."""
    c.cli(f"classify/{case}", area, ["classify", c.image, "--model", model], who, *problem)
    if bench:
        c.cli(f"bench/{case}", area, ["bench", model, "--runs", "1", "--warmup", "0"], who,
              *problem)
    c.cli(f"app-model/{case}", area, ["app-model", model, "--app-dir", c.app], who, *problem)
    if golden:
        c.cli(f"app-golden/{case}", area, ["app-golden", c.image, "--model", model, "--out",
                                           "golden"], who, *problem)
    if loader:
        c.load(f"TFLiteClassifier/{case}", area, "TFLiteClassifier", [model], who, *problem)


def _tflite_cases(c: _Corpus) -> None:
    good = Path(c.tflite).read_bytes()
    offset, length = _largest_buffer_offset(good)
    variants = {
        "weights_flipped": (_flip(good, offset + length // 2 - 32, 64), HASH),
        "truncated_half": (good[:len(good) // 2], CORRUPT),
        "truncated_7_bytes": (good[:7], CORRUPT),
        "wrong_header": (good[:4] + b"XXXX" + good[8:], CORRUPT + ("identifier", "TFL3")),
        "random_bytes": (bytes(range(251)) * 40, CORRUPT),
        "empty": (b"", CORRUPT + ("empty",)),
        "photo_renamed": (Path(c.image).read_bytes(), CORRUPT),
        "keras_renamed": (Path(c.keras).read_bytes(), CORRUPT),
    }
    for name, (data, problem) in variants.items():
        model = _tflite_set(c, name, data)
        _tflite_consumers(c, f"tflite_{name}", "sidecar" if problem is HASH else "loader",
                          model, [f"{name}.tflite"], problem)
    sparse = Path(_tflite_set(c, "huge_sparse", b""))
    with open(sparse, "r+b") as handle:  # 2 GiB of holes: takes no disk space
        handle.truncate(2 << 30)
    _tflite_consumers(c, "tflite_huge_sparse", "loader", str(sparse), ["huge_sparse.tflite"],
                      CORRUPT + BOMB + ("more than",))
    folder = Path(_tflite_set(c, "directory"))
    folder.mkdir()
    _tflite_consumers(c, "tflite_directory", "loader", str(folder), ["directory.tflite"],
                      ("directory", "folder", "not a file") + CORRUPT)
    _tflite_consumers(c, "tflite_missing", "loader", str(c.root / "tflite" / "missing.tflite"),
                      ["missing.tflite"], NOT_FOUND)
    lonely = c.path("tflite/lonely/lonely.tflite")
    lonely.write_bytes(good)
    _tflite_consumers(c, "tflite_no_sidecar", "sidecar", str(lonely), ["lonely"],
                      ("metadata", "sidecar") , bench=False)
    sidecar = _sidecar(c.base)
    if not _set_key(sidecar, "model_sha256", "0" * 64):
        sidecar["model_sha256"] = "0" * 64
    model = _tflite_set(c, "sha_mismatch", good, sidecar)
    _tflite_consumers(c, "sidecar_sha256_mismatch", "sidecar", model, ["sha_mismatch"], HASH)
    sidecar = _sidecar(c.base)
    if not _set_key(sidecar, "model_sha256", "not-a-digest"):
        sidecar["model_sha256"] = "not-a-digest"
    model = _tflite_set(c, "sha_garbage", good, sidecar)
    _tflite_consumers(c, "sidecar_sha256_garbage", "sidecar", model, ["sha_garbage"],
                      ("model_sha256", "sha256"), bench=False, golden=False)
    # Float twins that are not float twins: only bench reads them.
    twin_variants = {"twin_truncated": Path(c.tflite.replace("model.tflite", "model.float.tflite"))
                     .read_bytes()[:100], "twin_random": bytes(range(256)) * 8}
    for name, twin in twin_variants.items():
        model = _tflite_set(c, name, good, twin=twin)
        c.cli(f"bench/{name}", "bench", ["bench", model, "--runs", "1", "--warmup", "0"],
              ["float.tflite", "twin"], CORRUPT)


def _sidecar_cases(c: _Corpus) -> None:
    good = Path(c.tflite).read_bytes()

    def edit(path: Sequence[str], value: Any):
        def change(data):
            target = data
            for key in path[:-1]:
                target = target[key]
            if value is _DELETE:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        return change

    pre = ("preprocessing",)
    # name -> (change or raw text, words naming the field, problem, schema-level?)
    variants: dict[str, tuple[Any, Sequence[str], Sequence[str], bool]] = {
        "std_nan": (edit(pre + ("std",), [float("nan")]), ["std"], ("nan", "finite", "positive"),
                    True),
        "std_zero": (edit(pre + ("std",), [0.0]), ["std"], ("positive", "> 0", "zero", "non-zero"),
                     True),
        "std_string": (edit(pre + ("std",), ["x"]), ["std"], TYPE + ("number",), True),
        "std_negative": (edit(pre + ("std",), [-0.25]), ["std"], ("positive", "> 0"), True),
        "std_scalar": (edit(pre + ("std",), 0.25), ["std"], TYPE + ("list",), True),
        "mean_nan": (edit(pre + ("mean",), [float("nan")]), ["mean"], ("nan", "finite"), True),
        "mean_two_values": (edit(pre + ("mean",), [0.5, 0.5]), ["mean"], ("one per channel",
                                                                           "values", "needs"),
                            True),
        "labels_string": (edit(("labels",), "abcdefghij"), ["labels"], TYPE + ("list",), True),
        "labels_duplicate": (edit(("labels",), ["a"] * 10), ["labels"], ("unique", "duplicate"),
                             True),
        "labels_empty": (edit(("labels",), []), ["labels"], ("empty",), True),
        "labels_null_entries": (edit(("labels",), [None] * 10), ["labels"], TYPE + ("string",),
                                True),
        "labels_missing": (edit(("labels",), _DELETE), ["labels"], NOT_FOUND, True),
        "preprocessing_missing": (edit(pre, _DELETE), ["preprocessing"], NOT_FOUND, True),
        "height_missing": (edit(pre + ("height",), _DELETE), ["height"], NOT_FOUND, True),
        "height_string": (edit(pre + ("height",), "abc"), ["height"], TYPE + ("integer",), True),
        "height_fraction": (edit(pre + ("height",), 16.7), ["height"], TYPE + ("integer",), True),
        "channels_two": (edit(pre + ("channels",), 2), ["channels"], ("1 or 3", "or 3"), True),
        "center_crop_five": (edit(pre + ("center_crop",), 5), ["center_crop"], ("(0, 1]",
                                                                                "between"), True),
        "format_wrong": (edit(("format",), "something-else"), ["format"], ("not a tflbnn",
                                                                           "expected", "must be"),
                         True),
        "version_future": (edit(("version",), 99), ["version"], ("unsupported", "newer",
                                                                 "unknown", "must be"), True),
        "extra_string": (edit(("extra",), "x"), ["extra"], TYPE + ("object", "dict"), True),
        "top_level_list": ("[1, 2, 3]", ["json"], ("not a tflbnn", "object", "expected"), True),
        "invalid_json": ('{"format": "tflbnn-model-metadata", "labels": [', ["json"],
                         ("not a json", "invalid json", "expecting", "json"), True),
        "not_utf8": (b"\xff\xfe\x00garbage\x80", ["json"], ("utf-8", "json", "decode"), True),
        "nine_labels": (edit(("labels",), LABELS[:9]), ["labels"], ("9 labels", "outputs"),
                        False),
        "height_32": (edit(pre + ("height",), 32), ["32"], ("expects", "but", "mismatch"), False),
    }
    twin_key = ("extra", "conversion", "float_twin")
    variants["twin_outside"] = (edit(twin_key, "../outside.float.tflite"), ["float_twin"],
                                OUTSIDE, False)
    variants["twin_absolute"] = (edit(twin_key, str(c.base / "conv" / "model.float.tflite")),
                                 ["float_twin"], OUTSIDE, False)
    (c.root / "tflite" / "outside.float.tflite").parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(c.base / "conv" / "model.float.tflite",
                    c.root / "tflite" / "outside.float.tflite")
    for name, (change, field, problem, schema) in variants.items():
        if callable(change):
            data = _sidecar(c.base)
            change(data)
        else:
            data = change
        model = _tflite_set(c, f"sc_{name}", good, data)
        sidecar = model[:-len(".tflite")] + ".json"
        who = [f"sc_{name}.json"]
        twin = name.startswith("twin_")
        if not twin:
            c.cli(f"classify/sidecar_{name}", "sidecar",
                  ["classify", c.image, "--model", model], who, field, problem)
            c.cli(f"app-model/sidecar_{name}", "sidecar",
                  ["app-model", model, "--app-dir", c.app], who, field, problem)
        if schema:
            c.load(f"ModelMetadata.load/{name}", "sidecar", "ModelMetadata.load", [sidecar], who,
                   field, problem)
        if twin or name in ("invalid_json", "labels_missing", "std_nan", "labels_string"):
            c.cli(f"bench/sidecar_{name}", "sidecar", ["bench", model, "--runs", "1",
                                                       "--warmup", "0"], who, field, problem)
        if name in ("std_nan", "labels_string", "labels_duplicate", "invalid_json",
                    "nine_labels"):
            c.cli(f"app-golden/sidecar_{name}", "sidecar",
                  ["app-golden", c.image, "--model", model, "--out", "golden"], who, field,
                  problem)
        if name in ("std_nan", "std_zero", "labels_duplicate", "labels_string", "invalid_json"):
            c.cli(f"convert/metadata_{name}", "sidecar",
                  ["convert", c.keras, "-o", "out/m.tflite", "--metadata", sidecar,
                   "--parity-images", c.base / "parity.npy"], who, field, problem)


_DELETE = object()


# --- images


def _image_files(c: _Corpus) -> list[tuple[str, str, Sequence[str]]]:
    import numpy as np
    from PIL import Image

    png = Path(c.image).read_bytes()
    jpg = (c.base / "photo.jpg").read_bytes()
    sixteen = io.BytesIO()
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(sixteen, format="PNG")
    idat = png.find(b"IDAT")
    files = [
        ("png_bomb", c.write("images/png_bomb.png", png_bomb()), BOMB),
        ("jpeg_bomb", c.write("images/jpeg_bomb.jpg", jpeg_bomb(jpg)), BOMB),
        ("truncated_png", c.write("images/truncated.png", png[:len(png) // 2]), CORRUPT),
        ("truncated_jpeg", c.write("images/truncated.jpg", jpg[:len(jpg) // 2]), CORRUPT),
        ("random_bytes", c.write("images/random.png", bytes(range(256)) * 4), CORRUPT),
        ("text_as_jpeg", c.write("images/notes.jpg", "just some text\n"), CORRUPT),
        ("empty", c.write("images/empty.png", b""), CORRUPT + ("empty",)),
        ("sixteen_bit", c.write("images/sixteen.png", sixteen.getvalue()),
         ("16-bit", "not supported", "unsupported")),
        ("bad_crc", c.write("images/bad_crc.png", _flip(png, idat + 8, 4)), CORRUPT),
        ("tflite_renamed", c.write("images/model.png", Path(c.tflite).read_bytes()), CORRUPT),
    ]
    folder = c.path("images/folder.png")
    folder.mkdir()
    files.append(("directory", str(folder), ("directory", "folder", "not a file") + CORRUPT))
    files.append(("missing", str(c.root / "images" / "missing.png"), NOT_FOUND))
    return files


def _image_cases(c: _Corpus) -> None:
    for name, path, problem in _image_files(c):
        who = [Path(path).name]
        c.cli(f"classify/image_{name}", "data", ["classify", path, "--model", c.tflite], who,
              problem)
        c.cli(f"app-golden/image_{name}", "android",
              ["app-golden", path, "--model", c.tflite, "--out", "golden"], who, problem)
        c.load(f"load_image/{name}", "data", "load_image", [path], who, problem)
        if name in ("png_bomb", "jpeg_bomb", "truncated_png", "random_bytes", "sixteen_bit"):
            folder = c.path(f"parity_folders/{name}/x").parent
            shutil.copyfile(c.image, folder / "good.png")
            if Path(path).is_file():
                shutil.copyfile(path, folder / Path(path).name)
            c.cli(f"convert/parity_folder_{name}", "convert",
                  ["convert", c.keras, "-o", "out/m.tflite", "--parity-images", folder], who,
                  problem)
        if name in ("png_bomb", "jpeg_bomb", "truncated_png", "text_as_jpeg", "sixteen_bit"):
            root = _image_folder(c, f"imf_{name}", {"a": [c.image], "b": [c.image, path]})
            spec = _folder_spec(root, root)
            c.load(f"load_data/image_folder_{name}", "data", "load_data", [spec], who, problem)
            c.load(f"scan_image_folder/{name}", "data", "scan_image_folder", [str(root)], who,
                   problem)
            config = _train_config(c, f"imf_{name}", data=spec)
            c.cli(f"train/image_folder_{name}", "data", ["train", config], who, problem)


def _image_folder(c: _Corpus, name: str, classes: dict[str, list[str]]) -> Path:
    root = c.path(f"image_folders/{name}/x").parent
    for label, images in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            shutil.copyfile(image, root / label / f"{index}_{Path(image).name}")
    return root


def _folder_spec(train: Path, test: Path, **extra) -> dict:
    return {"kind": "image_folder", "train_dir": str(train), "test_dir": str(test),
            "image_size": [16, 16], "channels": 1, "mean": [0.5], "std": [0.25], **extra}


def _image_folder_cases(c: _Corpus) -> None:
    good = _image_folder(c, "good", {"a": [c.image], "b": [c.image]})
    empty = c.path("image_folders/empty/x").parent
    no_images = _image_folder(c, "no_images", {"a": [c.image]})
    (no_images / "b").mkdir()
    (no_images / "b" / "readme.txt").write_text("not an image\n")
    other_classes = _image_folder(c, "other_classes", {"a": [c.image], "c": [c.image]})
    regular = c.write("image_folders/regular_file", "a file, not a folder\n")
    cases = {
        "empty_train_dir": (_folder_spec(empty, good), ["empty"], ("no class", "sub-folder",
                                                                   "empty")),
        "class_without_images": (_folder_spec(no_images, good), ["'b'", "no_images"],
                                 ("no images",)),
        "train_dir_a_file": (_folder_spec(Path(regular), good), ["regular_file"],
                             ("not a directory", "not a folder", "is a file") + NOT_FOUND),
        "test_dir_missing": (_folder_spec(good, c.root / "image_folders" / "gone"), ["gone"],
                             NOT_FOUND),
        "test_classes_differ": (_folder_spec(good, other_classes), ["other_classes", "'c'"],
                                ("not known", "unknown", "differ", "class")),
        "labels_missing_class": (_folder_spec(good, good, labels=["a", "b", "zzz"]), ["zzz"],
                                 ("no folder",) + NOT_FOUND),
        "image_size_zero": (_folder_spec(good, good, image_size=[0, 16]), ["image_size"],
                            ("positive", "must be")),
        "image_size_string": (_folder_spec(good, good, image_size="x"), ["image_size"], TYPE),
        "channels_two": (_folder_spec(good, good, channels=2), ["channels"], ("1 or 3", "or 3")),
        "check_bogus": (_folder_spec(good, good, check="bogus"), ["check"], UNKNOWN),
        "limit_train_negative": (_folder_spec(good, good, limit_train=-5), ["limit_train"],
                                 ("positive", ">= 1", ">= 0", "must be")),
    }
    for name, (spec, who, problem) in cases.items():
        c.load(f"load_data/image_folder_{name}", "data", "load_data", [spec], who, problem)
    for name in ("empty_train_dir", "class_without_images", "train_dir_a_file"):
        spec, who, problem = cases[name]
        c.load(f"scan_image_folder/{name}", "data", "scan_image_folder", [spec["train_dir"]],
               who, problem)
    for name in ("empty_train_dir", "test_dir_missing", "image_size_string"):
        spec, who, problem = cases[name]
        c.cli(f"train/image_folder_{name}", "data",
              ["train", _train_config(c, f"imf_{name}", data=spec)], who, problem)


# --- IDX and TFRecord


def _idx_cases(c: _Corpus) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, 16, 16), dtype=np.uint8)
    labels = np.arange(20, dtype=np.uint8) % 10
    good_images = c.write("idx/good-images.idx", _idx_bytes(images))
    good_labels = c.write("idx/good-labels.idx", _idx_bytes(labels))
    good_bytes = _idx_bytes(images)
    bad_images = {
        "zero_images": (_idx_bytes(np.zeros((0, 16, 16), np.uint8)), ("0 images", "no images",
                                                                       "zero", "empty")),
        "bad_magic": (b"\x12\x34" + good_bytes[2:], ("magic",)),
        "truncated_data": (good_bytes[:len(good_bytes) - 100], CORRUPT),
        "truncated_header": (good_bytes[:3], CORRUPT + ("header",)),
        "unknown_dtype": (bytes([0, 0, 0x42, 3]) + good_bytes[4:], ("dtype",)),
        "zero_dimensions": (bytes([0, 0, 8, 0]), ("0 dimensions", "dimensions")),
        "float_images": (_idx_bytes(images.astype(">f4")), ("uint8",)),
        "two_dimensional": (_idx_bytes(images.reshape(20, 256)), ("dimensions", "(n, h, w)",
                                                                  "shape")),
        "corrupt_gzip": (b"\x1f\x8b\x08\x00" + bytes(range(200)), ("gzip",) + CORRUPT),
    }
    bad_labels = {
        "label_count_mismatch": (_idx_bytes(labels[:15]), ("mismatch", "15", "count")),
        "label_out_of_range": (_idx_bytes(np.full(20, 77, np.uint8)), ("77", "range")),
        "labels_two_dimensional": (_idx_bytes(labels.reshape(4, 5)), ("1-d", "dimension",
                                                                      "shape")),
    }

    def spec(train_images, train_labels, **extra):
        return {"kind": "idx", "train_images": train_images, "train_labels": train_labels,
                "test_images": good_images, "test_labels": good_labels,
                "labels": LABELS, **extra}

    for name, (data, problem) in bad_images.items():
        suffix = ".gz" if name == "corrupt_gzip" else ".idx"
        path = c.write(f"idx/{name}{suffix}", data)
        who = [Path(path).name]
        c.load(f"load_data/idx_{name}", "data", "load_data", [spec(path, good_labels)], who,
               problem)
        if name not in ("float_images", "two_dimensional", "zero_images"):
            c.load(f"read_idx/{name}", "data", "read_idx", [path], who, problem)
        if name in ("zero_images", "bad_magic", "truncated_data", "corrupt_gzip"):
            config = _train_config(c, f"idx_{name}", data=spec(path, good_labels))
            c.cli(f"train/idx_{name}", "data", ["train", config], who, problem)
    for name, (data, problem) in bad_labels.items():
        path = c.write(f"idx/{name}.idx", data)
        who = [Path(path).name]
        c.load(f"load_data/idx_{name}", "data", "load_data", [spec(good_images, path)], who,
               problem)
        if name != "label_out_of_range":  # the pair knows no class count; load_data does
            c.load(f"load_idx_pair/{name}", "data", "load_idx_pair", [good_images, path], who,
                   problem)
    c.load("load_data/idx_missing", "data", "load_data",
           [spec(str(c.root / "idx" / "gone.idx"), good_labels)], ["gone.idx"], NOT_FOUND)
    c.load("read_idx/missing", "data", "read_idx", [str(c.root / "idx" / "gone.idx")],
           ["gone.idx"], NOT_FOUND)
    c.load("load_data/idx_limit_train_negative", "data", "load_data",
           [spec(good_images, good_labels, limit_train=-5)], ["limit_train"],
           ("positive", ">= 1", ">= 0", "must be"))
    c.load("load_data/idx_std_zero", "data", "load_data",
           [spec(good_images, good_labels, mean=[0.5], std=[0.0])], ["std"],
           ("positive", "> 0", "zero"))
    c.load("load_data/idx_labels_duplicate", "data", "load_data",
           [spec(good_images, good_labels, labels=["a"] * 10)], ["labels"],
           ("unique", "duplicate"))
    c.load("load_data/unknown_kind", "data", "load_data", [{"kind": "bogus"}], ["bogus"],
           UNKNOWN)
    c.load("load_data/spec_not_a_table", "data", "load_data", [5], ["data", "spec"],
           TYPE + ("table", "dict", "mapping"))
    c.load("load_data/unknown_key", "data", "load_data",
           [spec(good_images, good_labels, colour="blue")], ["colour"], UNKNOWN)


def _write_records(path: Path, images: list[bytes], labels: list[int],
                   image_key: str = "image/encoded") -> None:
    """TFRecord of ``tf.train.Example``s, written directly so no check can refuse them."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(images, labels):
            feature = {image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                       "image/class/label": tf.train.Feature(
                           int64_list=tf.train.Int64List(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())


def _tfrecord_cases(c: _Corpus) -> None:
    png = Path(c.image).read_bytes()
    good = c.path("tfrecord/good.tfrecord")
    _write_records(good, [png] * 4, [0, 1, 2, 3])
    good_bytes = good.read_bytes()

    def records(name: str, images: list[bytes], labels: list[int], **keys) -> str:
        path = c.path(f"tfrecord/{name}.tfrecord")
        _write_records(path, images, labels, **keys)
        return str(path)

    files = {
        "random_bytes": (c.write("tfrecord/random.tfrecord", bytes(range(256)) * 8), CORRUPT),
        "truncated": (c.write("tfrecord/truncated.tfrecord", good_bytes[:len(good_bytes) - 30]),
                      CORRUPT),
        # A record's layout: length (8), length CRC (4), data, data CRC (4).
        "crc_flipped": (c.write("tfrecord/crc.tfrecord", _flip(good_bytes, 20, 2)), CORRUPT),
        "empty": (c.write("tfrecord/empty.tfrecord", b""), ("no records", "empty", "0 records")),
        "label_out_of_range": (records("label_range", [png] * 2, [0, 42]), ("42", "range")),
        "corrupt_image": (records("corrupt_image", [png, b"not an image"], [0, 1]), CORRUPT),
        "image_bomb": (records("image_bomb", [png, png_bomb()], [0, 1]), BOMB),
        "missing_image_key": (records("other_key", [png] * 2, [0, 1], image_key="img"),
                              ("image/encoded", "missing", "feature")),
    }

    def spec(train_files, **extra):
        return {"kind": "tfrecord", "train_files": train_files, "test_files": str(good),
                "labels": LABELS, "image_size": [16, 16], "channels": 1, "mean": [0.5],
                "std": [0.25], **extra}

    for name, (path, problem) in files.items():
        who = [Path(path).name]
        c.load(f"load_data/tfrecord_{name}", "data", "load_data", [spec(path)], who, problem)
        if name != "empty":  # counting no records is the scanner's right answer
            c.load(f"scan_tfrecords/{name}", "data", "scan_tfrecords", [path], who, problem,
                   num_classes=10)
        if name in ("truncated", "corrupt_image", "image_bomb"):
            config = _train_config(c, f"tfr_{name}", data=spec(path))
            c.cli(f"train/tfrecord_{name}", "data", ["train", config], who, problem)
    pattern = str(c.root / "tfrecord" / "nothing-*.tfrecord")
    c.load("load_data/tfrecord_no_match", "data", "load_data", [spec(pattern)],
           ["nothing-*"], ("no tfrecord files match", "no files", "match") + NOT_FOUND)


# --- configs


_BASE_DATA = {"kind": "fashion_mnist", "source": "embedded", "limit_train": 40, "limit_test": 20}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml(config: dict) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in config.items()
             if not isinstance(value, dict)]
    for key, value in config.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def _train_config(c: _Corpus, file_name: str, /, *, data: Any = None, recipe: Any = None,
                  model: Any = None, **top: Any) -> str:
    """A small, valid ``tflbnn train`` config with the given parts replaced; its path.

    Outputs go to ``out/`` under the working folder the case runs in.
    """
    config: dict[str, Any] = {"name": "run", "output_dir": "out"}
    config.update(top)
    config["model"] = ({"name": "reactnet_resnet18", "width": 0.125, "stem": "small"}
                       if model is None else model)
    config["data"] = dict(_BASE_DATA) if data is None else data
    base_recipe = {"kind": "float", "batch_size": 16, "epochs": 1, "lr_offset": 0}
    if isinstance(recipe, dict):
        base_recipe.update(recipe)
        recipe = {k: v for k, v in base_recipe.items() if v is not _DELETE}
    config["recipe"] = base_recipe if recipe is None else recipe
    return c.write(f"configs/{file_name}.toml", _toml(config))


def _config_cases(c: _Corpus) -> None:
    regular = c.write("configs/a_file", "a regular file\n")
    cases = [
        ("learning_rate_string", dict(recipe={"learning_rate": "x"}), ["learning_rate"], TYPE),
        ("recipe_a_list", dict(recipe=[1, 2]), ["recipe"], TYPE + ("table",)),
        ("data_a_number", dict(data=5), ["data"], TYPE + ("table",)),
        ("model_a_string", dict(model="reactnet_a"), ["model"], TYPE + ("table",)),
        ("limit_train_negative", dict(data={**_BASE_DATA, "limit_train": -5}), ["limit_train"],
         ("positive", ">= 1", ">= 0", "must be")),
        ("limit_test_string", dict(data={**_BASE_DATA, "limit_test": "x"}), ["limit_test"],
         TYPE),
        ("output_dir_a_file", dict(output_dir=regular), ["a_file", "output_dir"],
         NOT_WRITABLE),
        ("output_dir_a_number", dict(output_dir=5), ["output_dir"], TYPE + ("string",)),
        ("teacher_a_number", dict(recipe={"kind": "bop", "teacher": 5}), ["teacher"],
         TYPE + ("string", "path")),
        ("batch_size_zero", dict(recipe={"batch_size": 0}), ["batch_size"], (">= 1",)),
        ("batch_size_fraction", dict(recipe={"batch_size": 1.5}), ["batch_size"],
         ("integer",)),
        ("epochs_boolean", dict(recipe={"epochs": True}), ["epochs"], ("integer",)),
        ("learning_rate_nan", dict(recipe={"learning_rate": float("nan")}), ["learning_rate"],
         ("positive", "finite", "nan")),
        ("learning_rate_inf", dict(recipe={"learning_rate": float("inf")}), ["learning_rate"],
         ("finite", "inf")),
        ("learning_rate_negative", dict(recipe={"learning_rate": -1.0}), ["learning_rate"],
         ("positive",)),
        ("momentum_string", dict(recipe={"kind": "s3", "momentum": "x"}), ["momentum"], TYPE),
        ("weight_decay_negative", dict(recipe={"weight_decay": -1.0}), ["weight_decay"],
         (">= 0", "negative", "must be", "non-negative")),
        ("seed_string", dict(recipe={"seed": "x"}), ["seed"], TYPE + ("integer",)),
        ("augment_bogus", dict(recipe={"augment": "bogus"}), ["augment", "bogus"], UNKNOWN),
        ("label_weight_string", dict(recipe={"label_weight": "x"}), ["label_weight"], TYPE),
        ("lr_offset_string", dict(recipe={"lr_offset": "x"}), ["lr_offset"], TYPE),
        ("recipe_kind_number", dict(recipe={"kind": 5}), ["kind"], ("one of",)),
        ("data_kind_bogus", dict(data={"kind": "bogus"}), ["bogus"], UNKNOWN),
        ("data_source_number", dict(data={**_BASE_DATA, "source": 5}), ["source"],
         TYPE + UNKNOWN),
        ("model_unknown", dict(model={"name": "no_such_model"}), ["no_such_model"], UNKNOWN),
        ("model_width_string", dict(model={"name": "reactnet_resnet18", "width": "abc",
                                           "stem": "small"}), ["width"], TYPE),
        ("model_width_huge", dict(model={"name": "reactnet_resnet18", "width": 1e308,
                                         "stem": "small"}), ["width"],
         ("too large", "at most", "must be", "range", "<=")),
        ("model_width_negative", dict(model={"name": "reactnet_resnet18", "width": -1.0,
                                             "stem": "small"}), ["width"],
         ("positive", "must be")),
        ("model_option_unknown", dict(model={"name": "reactnet_resnet18", "colour": "blue"}),
         ["colour"], UNKNOWN),
        ("name_empty", dict(name=""), ["name"], ("plain directory name", "empty")),
        ("name_escapes", dict(name="../escape"), ["name"], ("plain directory name",)),
        ("teacher_gone", dict(recipe={"kind": "bop", "teacher": str(c.root / "gone.keras")}),
         ["gone.keras"], NOT_FOUND + ("is not a file",)),
    ]
    for name, parts, who, problem in cases:
        config = _train_config(c, name, **parts)
        c.cli(f"train/{name}", "config", ["train", config], who, problem)
    config = _train_config(c, "valid_for_options")
    c.cli("train/cli_output_dir_a_file", "config",
          ["train", config, "--output-dir", regular], ["a_file"], NOT_WRITABLE)
    c.cli("train/cli_name_escapes", "config", ["train", config, "--name", "../x"], ["name"],
          ("plain directory name",))
    c.cli("train/invalid_toml", "config",
          ["train", c.write("configs/broken.toml", "name = [unclosed\n")], ["broken.toml"],
          ("toml",))
    c.cli("train/not_utf8", "config", ["train", c.write("configs/latin1.toml",
                                                        b"name = \"caf\xe9\"\n")],
          ["latin1.toml"], ("utf-8", "toml", "decode"))
    folder = c.path("configs/folder.toml")
    folder.mkdir()
    c.cli("train/config_a_directory", "config", ["train", folder], ["folder.toml"],
          NOT_FOUND + ("directory", "not a file"))
    c.cli("train/config_missing", "config", ["train", c.root / "configs" / "gone.toml"],
          ["gone.toml"], NOT_FOUND)
    _resume_trap(c)


def _resume_trap(c: _Corpus) -> None:
    """A run folder whose finished stage holds a booby-trapped ``model.keras``: resuming the
    run must refuse it, not run it."""
    from tflbnn.experiment import load_config

    out = c.path("resume/out/x").parent
    config = _train_config(c, "resume_trap", output_dir=str(out))
    stage = out / "run" / "float"
    stage.mkdir(parents=True)
    (out / "run" / "config.json").write_text(
        json.dumps(load_config(config).as_dict(), indent=2, default=str))
    shutil.copyfile(c.root / "keras" / "lambda_keras.keras", stage / "model.keras")
    (stage / "stage.json").write_text(json.dumps(
        {"stage": "float", "test_loss": 1.0, "test_accuracy": 0.1, "seconds": 1.0}))
    c.cli("train/resume_trapped_stage", "loader", ["train", config], ["model.keras"], UNSAFE)


def _search_config(c: _Corpus, file_name: str, /, **parts: Any) -> str:
    config: dict[str, Any] = {"name": "search", "output_dir": "out",
                              "model": {"width": 0.25, "stem_stride": 1},
                              "data": dict(_BASE_DATA),
                              "supernet": {"batch_size": 16, "step1_epochs": 0,
                                           "step2_epochs": 1, "holdout": 10,
                                           "calibration_batches": 1, "eval_batch_size": 10},
                              "search": {"max_ops_fraction": 0.8, "population": 4,
                                         "generations": 1, "parents": 2, "mutations": 2,
                                         "crossovers": 2, "random_baseline": 1},
                              "retrain": {"kind": "two_step", "teacher_epochs": 1,
                                          "step1_epochs": 1, "step2_epochs": 1}}
    for key, value in parts.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return c.write(f"search_configs/{file_name}.toml", _toml(config))


def _search_cases(c: _Corpus) -> None:
    regular = c.write("search_configs/a_file", "a regular file\n")
    _search_config(c, "valid")
    cases = [
        ("data_a_number", dict(data=5), ["data"], TYPE + ("table",)),
        ("model_a_string", dict(model="binary_mobilenet"), ["model"], TYPE + ("table",)),
        ("supernet_a_string", dict(supernet="x"), ["supernet"], TYPE + ("table",)),
        ("search_a_list", dict(search=[1]), ["search"], TYPE + ("table",)),
        ("learning_rate_string", dict(supernet={"learning_rate": "x"}), ["learning_rate"],
         TYPE),
        ("holdout_negative", dict(supernet={"holdout": -1}), ["holdout"], (">= 1",)),
        ("population_zero", dict(search={"population": 0}), ["population"], (">= 1", "must be",
                                                                            "positive")),
        ("no_budget", dict(search={"max_ops_fraction": _DELETE}), ["budget"],
         ("exactly one", "needs")),
        ("max_ops_fraction_string", dict(search={"max_ops_fraction": "x"}), ["max_ops_fraction"],
         TYPE),
        ("baseline_fraction_string", dict(search={"baseline_min_fraction": "x"}),
         ["baseline_min_fraction"], TYPE),
        ("unknown_search_key", dict(search={"colour": "blue"}), ["colour"], UNKNOWN),
        ("retrain_learning_rate_string", dict(retrain={"learning_rate": "x"}),
         ["learning_rate"], TYPE),
        ("limit_train_negative", dict(data={**_BASE_DATA, "limit_train": -5}), ["limit_train"],
         ("positive", ">= 1", ">= 0", "must be")),
        ("width_string", dict(model={"width": "abc"}), ["width"], TYPE),
        ("output_dir_a_file", dict(output_dir=regular), ["a_file", "output_dir"], NOT_WRITABLE),
    ]
    for name, parts, who, problem in cases:
        if name == "no_budget":
            path = _search_config(c, name)
            text = Path(path).read_text().replace("max_ops_fraction = 0.8\n", "")
            Path(path).write_text(text)
        else:
            path = _search_config(c, name, **parts)
        c.cli(f"search/{name}", "config", ["search", path], who, problem)
    c.cli("search/invalid_toml", "config",
          ["search", c.write("search_configs/broken.toml", "[search\n")], ["broken.toml"],
          ("toml",))
    c.cli("search/config_missing", "config", ["search", c.root / "search_configs" / "gone.toml"],
          ["gone.toml"], NOT_FOUND)


# --- the remaining command options


def _option_cases(c: _Corpus) -> None:
    regular = c.write("outputs/a_file", "a regular file\n")
    existing_dir = c.path("outputs/existing_dir/x").parent
    parity = str(c.base / "parity.npy")
    convert = ["convert", c.keras, "--parity-images", parity]
    labels_dup = c.write("convert/labels_dup.txt", "a\nb\na\nc\nd\ne\nf\ng\nh\ni\n")
    labels_empty = c.write("convert/labels_empty.txt", "\n\n")
    with_labels = ["convert", c.keras, "-o", "out/m.tflite", "--labels", str(c.base / "labels.txt")]
    npy_wrong = c.path("convert/wrong_shape.npy")
    import numpy as np

    np.save(npy_wrong, np.zeros((3, 28, 28, 1), np.float32))
    npy_objects = c.path("convert/objects.npy")
    np.save(npy_objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    npy_truncated = c.write("convert/truncated.npy", Path(parity).read_bytes()[:200])
    empty_folder = c.path("convert/empty_folder/x").parent
    cases = [
        ("convert/output_under_a_file", [*convert, "-o", f"{regular}/m.tflite"], ["a_file"],
         NOT_WRITABLE),
        ("convert/output_an_existing_dir", [*convert, "-o", existing_dir], ["existing_dir"],
         NOT_WRITABLE + ("must end in",)),
        ("convert/labels_duplicate", [*with_labels[:-1], labels_dup, "--mean", "0.5", "--std",
                                      "0.25"], ["labels"], ("unique", "duplicate")),
        ("convert/labels_empty", [*with_labels[:-1], labels_empty, "--mean", "0.5", "--std",
                                  "0.25"], ["labels_empty.txt"], ("no labels", "empty")),
        ("convert/mean_two_values", [*with_labels, "--mean", "0.5", "0.5", "--std", "0.25"],
         ["mean"], ("one per channel", "values", "needs")),
        ("convert/std_zero", [*with_labels, "--mean", "0.5", "--std", "0"], ["std"],
         ("positive", "zero", "> 0")),
        ("convert/std_nan", [*with_labels, "--mean", "0.5", "--std", "nan"], ["std"],
         ("finite", "nan", "positive")),
        ("convert/center_crop_zero", [*with_labels, "--mean", "0.5", "--std", "0.25",
                                      "--center-crop", "0"], ["center", "crop"], ("(0, 1]",)),
        ("convert/labels_without_std", [*with_labels, "--mean", "0.5"], ["--std"],
         ("needs",)),
        ("convert/labels_and_metadata", [*with_labels, "--metadata", c.base / "model.json"],
         ["--metadata", "--labels"], ("not both", "either")),
        ("convert/parity_count_zero", [*convert, "-o", "out/m.tflite", "--parity-count", "0"],
         ["--parity-count"], ("at least 1",)),
        ("convert/parity_missing", ["convert", c.keras, "-o", "out/m.tflite", "--parity-images",
                                    c.root / "convert" / "gone.npy"], ["gone.npy"], NOT_FOUND),
        ("convert/parity_wrong_shape", ["convert", c.keras, "-o", "out/m.tflite",
                                        "--parity-images", npy_wrong], ["wrong_shape.npy",
                                                                        "(3, 28, 28, 1)"],
         ("shape", "expects", "input")),
        ("convert/parity_pickled_objects", ["convert", c.keras, "-o", "out/m.tflite",
                                            "--parity-images", npy_objects], ["objects.npy"],
         ("pickle", "object", "not a numpy")),
        ("convert/parity_truncated_npy", ["convert", c.keras, "-o", "out/m.tflite",
                                          "--parity-images", npy_truncated], ["truncated.npy"],
         CORRUPT),
        ("convert/parity_text_file", ["convert", c.keras, "-o", "out/m.tflite",
                                      "--parity-images", c.base / "labels.txt"], ["labels.txt"],
         (".npy",)),
        ("convert/parity_empty_folder", ["convert", c.keras, "-o", "out/m.tflite",
                                         "--parity-images", empty_folder], ["empty_folder"],
         ("no image",)),
        ("convert/metadata_missing", ["convert", c.keras, "-o", "out/m.tflite", "--metadata",
                                      c.root / "convert" / "gone.json"], ["gone.json"],
         NOT_FOUND),
        ("convert/min_top1_above_one", [*convert, "-o", "out/m.tflite", "--min-top1-agreement",
                                        "1.5"], ["--min-top1-agreement", "top1"],
         ("[0, 1]", "at most 1", "between")),
        ("convert/max_logit_delta_negative", [*convert, "-o", "out/m.tflite",
                                              "--max-logit-delta", "-1"],
         ["--max-logit-delta", "logit"], (">= 0", "non-negative", "negative", "positive")),
        ("convert/target_bogus", [*convert, "--target", "gpu"], ["--target"], UNKNOWN),
        ("bench/json_under_a_file", ["bench", c.tflite, "--runs", "1", "--warmup", "0", "--json",
                                     f"{regular}/b.json"], ["a_file"], NOT_WRITABLE),
        ("bench/json_an_existing_dir", ["bench", c.tflite, "--runs", "1", "--warmup", "0",
                                        "--json", existing_dir], ["existing_dir"], NOT_WRITABLE),
        ("bench/runs_zero", ["bench", c.tflite, "--runs", "0"], ["--runs"], (">= 1",)),
        ("bench/threads_zero", ["bench", c.tflite, "--threads", "0"], ["--threads"], (">= 1",)),
        ("bench/warmup_negative", ["bench", c.tflite, "--warmup", "-1"], ["--warmup"],
         (">= 0",)),
        ("bench/compare_missing", ["bench", c.tflite, "--runs", "1", "--warmup", "0",
                                   "--compare", c.root / "gone.float.tflite"],
         ["gone.float.tflite"], NOT_FOUND),
        ("bench/compare_not_float", ["bench", c.tflite, "--runs", "1", "--warmup", "0",
                                     "--compare", c.tflite], ["model.tflite"],
         ("float32 twin", "lce ops")),
        ("bench/compare_random", ["bench", c.tflite, "--runs", "1", "--warmup", "0",
                                  "--compare", c.write("bench/random.float.tflite",
                                                       bytes(range(256)) * 4)],
         ["random.float.tflite"], CORRUPT),
        ("bench/kernel_bogus", ["bench", c.tflite, "--kernel", "fast"], ["--kernel"], UNKNOWN),
        ("classify/top_k_zero", ["classify", c.image, "--model", c.tflite, "--top-k", "0"],
         ["--top-k"], ("at least 1",)),
        ("classify/threads_zero", ["classify", c.image, "--model", c.tflite, "--threads", "0"],
         ["--threads"], ("at least 1",)),
        ("classify/no_images", ["classify", "--model", c.tflite], ["image"],
         ("required", "arguments")),
        ("classify/no_model", ["classify", c.image], ["--model"], ("required",)),
        ("app-golden/out_under_a_file", ["app-golden", c.image, "--model", c.tflite, "--out",
                                         f"{regular}/golden"], ["a_file"], NOT_WRITABLE),
        ("app-golden/out_a_file", ["app-golden", c.image, "--model", c.tflite, "--out", regular],
         ["a_file"], NOT_WRITABLE + ("not a golden folder",)),
        ("app-golden/out_foreign_folder", ["app-golden", c.image, "--model", c.tflite, "--out",
                                           c.root / "outputs"], ["outputs"],
         ("not a golden folder",)),
        ("app-golden/fashion_mnist_negative", ["app-golden", "--model", c.tflite, "--out",
                                               "golden", "--fashion-mnist", "-1"],
         ["fashion", "fashion_mnist"], (">= 0", "negative")),
        ("app-golden/fashion_mnist_too_many", ["app-golden", "--model", c.tflite, "--out",
                                               "golden", "--fashion-mnist", "1000000"],
         ["fashion"], ("at most",)),
        ("app-golden/nothing_to_do", ["app-golden", "--model", c.tflite, "--out", "golden"],
         ["image", "--fashion-mnist"], ("give",)),
        ("app-model/app_dir_a_file", ["app-model", c.tflite, "--app-dir", regular], ["a_file"],
         ("not the tflbnn android demo",) + NOT_WRITABLE),
        ("app-model/app_dir_missing", ["app-model", c.tflite, "--app-dir",
                                       c.root / "no_app"], ["no_app"],
         ("not the tflbnn android demo",) + NOT_FOUND),
        ("demo/output_dir_a_file", ["demo", "--output-dir", regular], ["a_file"],
         NOT_WRITABLE),
        ("demo/name_escapes", ["demo", "--name", "../x"], ["name"], ("plain directory name",)),
        ("demo/name_empty", ["demo", "--name", ""], ["name"], ("plain directory name", "empty")),
        ("demo/bench_runs_zero", ["demo", "--bench-runs", "0"], ["--bench-runs", "bench_runs"],
         (">= 1", "at least 1", "positive")),
        ("demo/bench_runs_text", ["demo", "--bench-runs", "many"], ["--bench-runs"],
         ("invalid int",)),
    ]
    for case_id, argv, who, problem in cases:
        command = case_id.split("/")[0]
        area = {"app-golden": "android", "app-model": "android", "demo": "cli"}.get(command,
                                                                                   command)
        c.cli(case_id, area, argv, who, problem)


def _models_cases(c: _Corpus) -> None:
    cases = [
        ("width_abc", ["-o", "width=abc"], ["width"], TYPE + ("number",)),
        ("width_1e308", ["-o", "width=1e308"], ["width"], ("too large", "at most", "range",
                                                           "must be", "<=")),
        ("width_negative", ["-o", "width=-1"], ["width"], ("positive", "must be")),
        ("width_zero", ["-o", "width=0"], ["width"], ("positive", "must be")),
        ("width_nan", ["-o", "width=NaN"], ["width"], ("finite", "nan", "must be", "positive")),
        ("option_unknown", ["-o", "colour=blue"], ["colour"], UNKNOWN),
        ("option_without_value", ["-o", "width"], ["width", "--option"], ("key=value",)),
        ("stem_stride_fraction", ["-o", "stem_stride=0.5"], ["stem_stride"], TYPE +
         ("integer",)),
        ("precision_bogus", ["-o", "precision=bogus"], ["precision", "bogus"], UNKNOWN),
        ("input_shape_text", ["--input-shape", "abc"], ["input shape", "--input-shape"],
         ("224,224,3", "must look like")),
        ("input_shape_zero", ["--input-shape", "0,0,3"], ["input", "shape"],
         ("positive", "must be", "at least")),
        ("input_shape_two_dims", ["--input-shape", "1,2"], ["input shape", "--input-shape"],
         ("height,width,channels",)),
        ("num_classes_zero", ["--num-classes", "0"], ["num_classes", "--num-classes"],
         ("positive", ">= 1", "at least", "must be")),
        ("num_classes_negative", ["--num-classes", "-3"], ["num_classes", "--num-classes"],
         ("positive", ">= 1", "at least", "must be")),
    ]
    for name, extra, who, problem in cases:
        c.cli(f"models/{name}", "models", ["models", "reactnet_a", "--input-shape", "32,32,1",
                                           "--num-classes", "10", *extra], who, problem)
    c.cli("models/unknown_model", "models", ["models", "no_such_model"], ["no_such_model"],
          UNKNOWN)
    c.cli("models/groups_text", "models", ["models", "binary_mobilenet", "-o", "groups=abc"],
          ["groups"], TYPE)


def _argparse_cases(c: _Corpus) -> None:
    minimal = {"demo": [], "train": ["x.toml"], "search": ["x.toml"], "convert": ["m.keras"],
               "bench": ["m.tflite"], "classify": ["i.png", "--model", "m.tflite"], "models": [],
               "app-model": ["m.tflite"], "app-golden": ["--model", "m.tflite", "--out", "g"]}
    for command, argv in minimal.items():
        c.cli(f"{command}/unknown_option", "cli", [command, *argv, "--bogus-option"],
              ["--bogus-option"], ("unrecognized",))
    c.cli("tflbnn/unknown_command", "cli", ["frobnicate"], ["frobnicate"], ("invalid choice",))
    c.cli("tflbnn/no_command", "cli", [], ["command"], ("required",))


def make_corpus(out_dir: str | Path, base: str | Path) -> list[Case]:
    """Write every bad input under ``out_dir`` and return the cases that use them.

    Args:
        out_dir: the corpus folder (created; should be empty).
        base: a folder written by ``make_base``.

    Returns:
        The cases, also written to ``out_dir/cases.json``.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = _Corpus(out_dir, Path(base).resolve())
    for add in (_keras_cases, _tflite_cases, _sidecar_cases, _image_cases, _image_folder_cases,
                _idx_cases, _tfrecord_cases, _config_cases, _search_cases, _option_cases,
                _models_cases, _argparse_cases):
        add(corpus)
    ids = [case.id for case in corpus.cases]
    duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate case ids: {duplicates}")
    (out_dir / "cases.json").write_text(
        json.dumps([dataclasses.asdict(case) for case in corpus.cases], indent=1) + "\n")
    return corpus.cases


def main(argv: Sequence[str] | None = None) -> int:
    """``python scripts/make_bad_inputs.py OUT_DIR``: the base assets and the corpus."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python scripts/make_bad_inputs.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(args[0])
    cases = make_corpus(out_dir, make_base(out_dir / "base"))
    print(f"wrote {len(cases)} cases to {out_dir / 'cases.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
