"""Host-side support for the Android demo app in ``android_demo/``.

Two jobs:

- ``install_app_model`` puts a converted model and its metadata into the app's assets, where
  the app loads its default model from.
- ``write_golden`` writes the golden files the app's JVM tests compare against: for real
  images, the pixels Python decoded, the preprocessed input tensors (for the model's own rule
  and a few other rules that exercise crop, resize and colour paths), and the model's outputs
  and top-5, computed by the same code as ``tflbnn classify``.

Golden folder layout (format ``tflbnn-android-golden``, version 1)::

    manifest.json        models (facts read from each flatbuffer) and cases
    model.tflite, model.json
    images/NAME.png|jpg  the encoded image files
    decoded/NAME.u8      raw uint8 pixels, row-major HWC (C = 1 for grey files)
    inputs/CASE.f32      raw little-endian float32 preprocessed tensors, HWC
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from tflbnn import _backend  # noqa: F401  (must come first)

import numpy as np
from PIL import Image

from tflbnn.classifier import TFLiteClassifier
from tflbnn.converters import TFLiteModelInfo
from tflbnn.data import IMAGENET_MEAN, IMAGENET_STD, load_fashion_mnist, load_image, preprocess
from tflbnn.metadata import Preprocessing, check_writable_output, write_files_together

__all__ = [
    "APP_ASSETS",
    "APP_MANIFEST",
    "GOLDEN_FORMAT",
    "GOLDEN_PREPROCESSING",
    "install_app_model",
    "tflite_facts",
    "write_golden",
]

#: Where the app keeps its default model, relative to the ``android_demo`` folder.
APP_ASSETS = Path("app/src/main/assets")
#: The file that marks a folder as the demo app.
APP_MANIFEST = Path("app/src/main/AndroidManifest.xml")
#: Names the app looks for in its assets.
APP_MODEL_FILE = "model.tflite"
APP_METADATA_FILE = "model.json"
APP_LABELS_FILE = "labels.txt"

GOLDEN_FORMAT = "tflbnn-android-golden"
GOLDEN_VERSION = 1
_GOLDEN_TOP_K = 5
_MODEL_CASE = "model"

#: Rules tested besides the model's own: centre crop + downsizing to RGB, upsizing a small RGB
#: image to a non-square size, and a grey crop to a non-square size.
GOLDEN_PREPROCESSING: Mapping[str, Preprocessing] = {
    "rgb_crop": Preprocessing(64, 64, 3, IMAGENET_MEAN, IMAGENET_STD, center_crop=0.875),
    "rgb_up": Preprocessing(48, 40, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    "grey_crop": Preprocessing(20, 24, 1, (0.5,), (0.25,), center_crop=0.6),
}


def install_app_model(model_path: str | os.PathLike,
                      app_dir: str | os.PathLike = "android_demo") -> list[Path]:
    """Copy a converted model and its metadata into the demo app's assets.

    The model is checked before anything is installed: it must be a TFLite file with its
    ``.json`` sidecar next to it, the sidecar's ``model_sha256`` must be the file's SHA-256,
    the two must agree (input shape, label count), and the LCE interpreter must run it once.
    The bytes checked are the bytes installed.
    The three asset files (``model.tflite``, ``model.json``, ``labels.txt``) are replaced all
    together or not at all.

    Args:
        model_path: the ``.tflite`` written by ``tflbnn convert`` or ``tflbnn demo``.
        app_dir: the ``android_demo`` folder of a tflbnn checkout.

    Returns:
        The files written.

    Raises:
        FileNotFoundError: if the model, its sidecar or the app folder is missing.
        ValueError: if the model or metadata is invalid, the digest differs, or they disagree.
    """
    app_dir = Path(app_dir)
    if not (app_dir / APP_MANIFEST).is_file():
        raise FileNotFoundError(f"{app_dir} is not the tflbnn Android demo: {app_dir / APP_MANIFEST}"
                                " is missing (pass --app-dir pointing at android_demo/)")
    classifier = TFLiteClassifier(model_path)
    shape = (1, *classifier.metadata.preprocessing.input_shape)
    classifier.outputs(np.zeros(shape, dtype=np.float32))
    assets = app_dir / APP_ASSETS
    labels = "".join(f"{label}\n" for label in classifier.metadata.labels)
    return write_files_together({
        assets / APP_MODEL_FILE: classifier.flatbuffer,
        assets / APP_METADATA_FILE: classifier.metadata,
        assets / APP_LABELS_FILE: labels.encode("utf-8"),
    })


def tflite_facts(info: TFLiteModelInfo) -> dict:
    """What the app's flatbuffer reader must find in a model, as read by ``read_tflite``.

    Args:
        info: a model read by ``tflbnn.converters.read_tflite``.

    Returns:
        JSON-ready facts: size, input/output counts, shapes and dtypes of the first input and
        output, the operator histogram of the main subgraph (most frequent first), the number
        of ``LceBconv2d`` ops and whether any LCE op is used.
    """
    main_ops = collections.Counter(op.name for op in info.ops if op.subgraph == 0)
    return {
        "size_bytes": info.size_bytes,
        "input_count": len(info.inputs),
        "output_count": len(info.outputs),
        "input_shape": list(info.inputs[0].shape),
        "input_dtype": info.inputs[0].dtype,
        "output_shape": list(info.outputs[0].shape),
        "output_dtype": info.outputs[0].dtype,
        "ops": dict(main_ops.most_common()),
        "binary_convs": main_ops.get("LceBconv2d", 0),
        "uses_lce_ops": info.uses_lce_ops,
    }


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names, seen = [], collections.Counter()
    for path in paths:
        seen[path.stem] += 1
        names.append(path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}")
    return names


def _write_fashion_mnist_images(folder: Path, count: int) -> list[Path]:
    images, labels = load_fashion_mnist("test", source="embedded")
    if count > len(images):
        raise ValueError(f"--fashion-mnist: at most {len(images)} embedded test images, "
                         f"got {count}")
    paths = []
    for index in range(count):
        path = folder / f"fashion_mnist_{index:04d}_{int(labels[index])}.png"
        Image.fromarray(images[index, :, :, 0], mode="L").save(path)
        paths.append(path)
    return paths


def write_golden(out_dir: str | os.PathLike, model_path: str | os.PathLike,
                 images: Sequence[str | os.PathLike] = (), *, fashion_mnist: int = 0,
                 num_threads: int = 1) -> Path:
    """Write the Android demo's golden files (see the module docstring for the layout).

    Every image is run through the model with the model's own preprocessing (a case with
    outputs and top-5) and through each rule of ``GOLDEN_PREPROCESSING`` (input tensor only).
    The folder is built next to ``out_dir`` and renamed into place, so it is never half
    written; an existing golden folder is replaced.

    Args:
        out_dir: the folder to write.
        model_path: a converted ``.tflite`` with its ``.json`` sidecar.
        images: image files (PNG, JPEG, ...).
        fashion_mnist: also write the first this many embedded Fashion-MNIST test images as PNG
            files and use them.
        num_threads: interpreter threads.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        FileNotFoundError: for a missing model, sidecar or image.
        ValueError: for an invalid model (or one its sidecar's ``model_sha256`` does not
            match) or image, no images at all, or an ``out_dir`` that cannot be written or
            exists but is not a golden folder (it is never overwritten then); these are
            checked before any work. Errors name the given files, not the staged copies.
    """
    out_dir = check_writable_output(out_dir, folder=True)
    if out_dir.exists() and not _is_golden_folder(out_dir):
        raise ValueError(f"{out_dir} exists and is not a golden folder (no {GOLDEN_FORMAT} "
                         "manifest.json); refusing to overwrite it")
    if fashion_mnist < 0:
        raise ValueError(f"fashion_mnist must be >= 0, got {fashion_mnist}")
    if not images and fashion_mnist == 0:
        raise ValueError("write_golden: give image files or fashion_mnist > 0")
    classifier = TFLiteClassifier(model_path)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    # mkdtemp makes the folder private; the golden folder is shared with the JVM test run.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        _fill_golden(staging, classifier, [Path(image) for image in images], fashion_mnist,
                     num_threads)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _is_golden_folder(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == GOLDEN_FORMAT


def _fill_golden(folder: Path, classifier: TFLiteClassifier, images: list[Path],
                 fashion_mnist: int, num_threads: int) -> None:
    for sub in ("images", "decoded", "inputs"):
        (folder / sub).mkdir()
    # (decoded pixels, the copy in the golden folder). The user's files are decoded where they
    # are, so an error names them and not the staging copy that is deleted with the folder.
    sources = [(load_image(path), path)
               for path in _write_fashion_mnist_images(folder / "images", fashion_mnist)]
    for image, name in zip(images, _unique_names(images)):
        if not image.is_file():
            raise FileNotFoundError(f"image file not found: {image}")
        pixels = load_image(image)
        target = folder / "images" / f"{name}{image.suffix.lower()}"
        shutil.copyfile(image, target)
        sources.append((pixels, target))
    # The verified bytes and metadata, not a second read of files that may have changed since.
    (folder / APP_MODEL_FILE).write_bytes(classifier.flatbuffer)
    (folder / APP_METADATA_FILE).write_bytes(
        classifier.metadata.to_json_bytes(classifier.sidecar))

    rules = {_MODEL_CASE: classifier.metadata.preprocessing, **GOLDEN_PREPROCESSING}
    cases, model_inputs = [], []
    for pixels, source in sources:
        decoded = Path("decoded") / f"{source.stem}.u8"
        (folder / decoded).write_bytes(pixels.tobytes())
        for rule_name, rule in rules.items():
            tensor = np.asarray(preprocess(pixels, rule), dtype="<f4")
            case_name = f"{source.stem}__{rule_name}"
            tensor_file = Path("inputs") / f"{case_name}.f32"
            (folder / tensor_file).write_bytes(tensor.tobytes())
            if rule_name == _MODEL_CASE:
                model_inputs.append((len(cases), tensor))
            cases.append({
                "name": case_name,
                "image": f"images/{source.name}",
                "decoded": decoded.as_posix(),
                "decoded_shape": list(pixels.shape),
                "preprocessing": rule.to_dict(),
                "input": tensor_file.as_posix(),
                "input_shape": list(tensor.shape),
                "model": _MODEL_CASE if rule_name == _MODEL_CASE else None,
                "logits": None,
                "top5": None,
            })

    batch = np.stack([tensor for _, tensor in model_inputs]).astype(np.float32)
    outputs = classifier.outputs(batch, num_threads=num_threads)
    for (case_index, _), row, ranking in zip(model_inputs, outputs,
                                            classifier.rank(outputs, _GOLDEN_TOP_K)):
        cases[case_index]["logits"] = [float(value) for value in row]
        cases[case_index]["top5"] = [
            {"index": p.index, "label": p.label, "probability": p.probability} for p in ranking]

    manifest = {
        "format": GOLDEN_FORMAT,
        "version": GOLDEN_VERSION,
        "models": [{"name": _MODEL_CASE, "tflite": APP_MODEL_FILE, "metadata": APP_METADATA_FILE,
                    **tflite_facts(classifier.info)}],
        "cases": cases,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
