"""The one loader for model and weights files: nothing in a file the user hands over runs code.

Keras can run code while loading a model: a legacy HDF5 or SavedModel model restores ``Lambda``
layers from Python bytecode whatever ``safe_mode`` says, and even a ``.keras`` archive in safe
mode imports any module its ``config.json`` names (``{"module": "os", "config": "system"}``
resolves to ``os.system``) and unpickles ``model.weights.npz``. So tflbnn loads models only
through :func:`load_keras_model` and weights only through :func:`load_weights`, which accept
the ``.keras`` zip and the ``.weights.h5`` arrays file, and check them before Keras sees them:

* the file's kind from its bytes, not its name (HDF5, SavedModel, pickle, numpy, TFLite, a zip
  of something else are refused, named);
* the archive: only ``config.json``, ``metadata.json`` and ``model.weights.h5``, each with a
  bounded uncompressed size (a zip bomb is refused before anything is decompressed);
* ``config.json``: valid JSON, and every object it names (layer, activation, initializer,
  regularizer, constraint, quantizer, dtype policy) resolves, without importing anything, to
  a Keras built-in, or to a larq or tflbnn object registered with Keras; no ``Lambda``, no
  bytecode, no TF symbol outside the tensor-math ops;
* the weights: HDF5 groups and numeric datasets only, stored inside the file, of bounded size.

The checks and the load read one private copy of the file, so the file cannot change between
them; error messages name the user's file.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tflbnn import _backend  # noqa: F401

import h5py
import numpy as np
import tensorflow as tf

import tflbnn  # noqa: F401  (registers tflbnn's layers and quantizers as Keras custom objects)

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_WEIGHTS_BYTES",
    "ModelFileError",
    "load_keras_model",
    "load_weights",
]

#: Largest ``config.json`` accepted (the biggest zoo model's is about 1 MB).
MAX_CONFIG_BYTES = 64 * 2**20
#: Largest ``metadata.json`` accepted (Keras writes about 64 bytes).
MAX_METADATA_BYTES = 2**20
#: Largest weights accepted, both as the file and as the arrays it decodes to (the biggest zoo
#: model at ImageNet size holds a few hundred MB).
MAX_WEIGHTS_BYTES = 4 * 2**30

_CONFIG = "config.json"
_METADATA = "metadata.json"
_WEIGHTS = "model.weights.h5"
#: What a ``.keras`` archive may hold, with each member's size limit.
_ARCHIVE_MEMBERS = {_CONFIG: MAX_CONFIG_BYTES, _METADATA: MAX_METADATA_BYTES,
                    _WEIGHTS: MAX_WEIGHTS_BYTES}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: HDF5 puts its signature at 0 or, after a user block, at 512, 1024, 2048, ...
_HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

_REFUSAL = "not loaded because loading it could run code"
_RESAVE = "re-save the model as .keras with model.save('name.keras')"


class ModelFileError(ValueError):
    """A model or weights file tflbnn refuses to load; the message names the file and why."""


# --- what a file is ------------------------------------------------------------------------

def _file_kind(path: Path) -> str | None:
    """Name the format of a file or folder that is not a zip archive, or None for a zip."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "a TensorFlow SavedModel folder"
        return "a folder"
    if not path.is_file():
        return "not a regular file"
    with path.open("rb") as stream:
        head = stream.read(16)
        if any(_has_signature(stream, offset) for offset in _HDF5_SIGNATURE_OFFSETS):
            return "an HDF5 file (a legacy Keras model or weights file)"
    if head.startswith(_ZIP_SIGNATURES):
        return None
    if not head:
        return "an empty file"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "a Python pickle"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file"
    if head[4:8] == b"TFL3":
        return "a TFLite model"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file"
    return "not a zip archive"


def _has_signature(stream: io.BufferedReader, offset: int) -> bool:
    stream.seek(offset)
    return stream.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE


def _refuse_foreign_model(path: Path, kind: str) -> ModelFileError:
    if kind.startswith("an HDF5 file"):
        return ModelFileError(
            f"{path}: legacy HDF5 model: {_REFUSAL} (Keras restores Lambda layers in HDF5 "
            f"models from Python bytecode even in safe mode); {_RESAVE}")
    if kind == "a TensorFlow SavedModel folder":
        return ModelFileError(f"{path}: {kind}: {_REFUSAL} (safe mode does not cover "
                              f"SavedModel); {_RESAVE}")
    if kind == "a Python pickle":
        return ModelFileError(f"{path}: {kind}: {_REFUSAL} (unpickling runs code); {_RESAVE}")
    return ModelFileError(f"{path}: {kind}, not a Keras model; expected a .keras file "
                          f"(model.save('name.keras'))")


def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


@contextmanager
def _private_copy(path: Path, name: str) -> Iterator[Path]:
    """Copy ``path`` into a fresh private folder as ``name``, removed afterwards.

    The checks and the load then read the same bytes even if someone rewrites the file
    meanwhile, and Keras gets the file name it needs.
    """
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES + MAX_METADATA_BYTES:
        raise ModelFileError(f"{path}: {size} bytes, more than any model tflbnn loads "
                             f"({MAX_WEIGHTS_BYTES} bytes of weights at most)")
    folder = tempfile.mkdtemp(prefix="tflbnn-model-")
    try:
        copy = Path(folder) / name
        shutil.copyfile(path, copy)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the archive ---------------------------------------------------------------------------

def _read_archive(path: Path, copy: Path) -> tuple[dict[str, Any], bytes]:
    """Check the archive's members and sizes; return the parsed config and the weights bytes."""
    try:
        with zipfile.ZipFile(copy) as archive:
            members = archive.infolist()
            names = [member.filename for member in members]
            for name in names:
                if name not in _ARCHIVE_MEMBERS:
                    why = (" (NumPy weights are pickled; tflbnn reads model.weights.h5 only)"
                           if name.endswith(".npz") else "")
                    raise ModelFileError(
                        f"{path}: not a Keras model archive: it holds {name!r}{why}; a .keras "
                        f"file holds only {', '.join(_ARCHIVE_MEMBERS)}")
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ModelFileError(f"{path}: the archive holds {duplicates[0]!r} twice")
            for name in (_CONFIG, _WEIGHTS):
                if name not in names:
                    raise ModelFileError(f"{path}: not a Keras model archive: no {name} in it")
            for member in members:
                limit = _ARCHIVE_MEMBERS[member.filename]
                if member.file_size > limit:
                    raise ModelFileError(
                        f"{path}: {member.filename} inside it unpacks to {member.file_size} "
                        f"bytes, more than the {limit} tflbnn accepts (a zip bomb?)")
            config_bytes = archive.read(_CONFIG)
            weights = archive.read(_WEIGHTS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError,
            NotImplementedError) as error:
        raise ModelFileError(f"{path}: corrupt or truncated .keras archive: {error}") from None
    try:
        config = json.loads(config_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: {_CONFIG} inside it is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: {_CONFIG} inside it is not a Keras model config (a JSON "
                             f"object with class_name and config)")
    return config, weights


# --- the config ----------------------------------------------------------------------------

#: Where objects named by a config may come from: Keras's own namespaces, larq, tflbnn.
_ALLOWED_MODULE_ROOTS = ("keras", "tf_keras", "larq", "tflbnn")
#: Keras built-in layers that run or read something named in their config: Python bytecode or
#: a named function (Lambda), any TF symbol or attribute (the TF-op layers other than
#: TFOpLambda/SlicingOpLambda, whose functions are checked), vocabulary files (preprocessing).
_REFUSED_KERAS_MODULES = ("tf_keras.src.layers.core.lambda_layer",
                          "tf_keras.src.layers.preprocessing")
_TF_OP_LAYER_MODULE = "tf_keras.src.layers.core.tf_op_layer"
_TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
#: TensorFlow modules whose functions a TFOpLambda may call: tensor math, nothing with effects.
_TF_OP_MODULES = frozenset(f"tensorflow.python.ops.{name}" for name in (
    "array_ops", "array_ops_stack", "clip_ops", "gen_array_ops", "gen_math_ops", "gen_nn_ops",
    "image_ops_impl", "math_ops", "nn_impl", "nn_ops", "special_math_ops",
    "tensor_getitem_override"))
#: Keras modules searched for a built-in function named only by its name (as Keras does).
_KERAS_FUNCTION_MODULES = ("activations", "constraints", "initializers", "regularizers")
#: Where the Keras built-in functions a config may name live.
_KERAS_FUNCTION_SOURCES = tuple(f"tf_keras.src.{name}" for name in _KERAS_FUNCTION_MODULES)
#: Special objects Keras decodes from plain data (``{"class_name": "__numpy__", ...}``).
_DATA_OBJECTS = ("__tensor__", "__numpy__", "__bytes__")


def _allowed_classes() -> tuple[type, ...]:
    return (tf.keras.layers.Layer, tf.keras.initializers.Initializer,
            tf.keras.regularizers.Regularizer, tf.keras.constraints.Constraint,
            tf.keras.mixed_precision.Policy)


def _module_root(module: str) -> str:
    return module.split(".", 1)[0]


class _ConfigChecker:
    """Walks a ``config.json`` and refuses the first object Keras would resolve unsafely."""

    def __init__(self, path: Path):
        self.path = path

    def check(self, config: dict[str, Any]) -> None:
        # load_keras_model passes compile=False, and Keras then drops the top-level
        # compile_config (optimizer, losses) unread; everything else is deserialized.
        self._walk({key: value for key, value in config.items() if key != "compile_config"},
                   layer=None, where="")

    def _walk(self, node: Any, layer: str | None, where: str) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                self._walk(item, layer, f"{where}[{index}]")
            return
        if not isinstance(node, dict):
            return
        if "class_name" in node:
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                layer, where = inner["name"], ""
            self._check_object(node, layer, where)
            if node["class_name"] in _DATA_OBJECTS:
                return
        for key, value in node.items():
            self._walk(value, layer, f"{where}.{key}" if where else key)

    def _refuse(self, layer: str | None, where: str, what: str, why: str) -> ModelFileError:
        place = f"layer {layer!r}" if layer else "the model"
        if where:
            place += f" ({where})"
        return ModelFileError(f"{self.path}: {place} names {what}: {why}; {_REFUSAL}")

    def _check_object(self, spec: dict[str, Any], layer: str | None, where: str) -> None:
        class_name, module = spec["class_name"], spec.get("module")
        registered_name = spec.get("registered_name")
        if not isinstance(class_name, str) or not isinstance(module, (str, type(None))) \
                or not isinstance(registered_name, (str, type(None))):
            raise self._refuse(layer, where, repr(class_name), "class_name, module and "
                               "registered_name must be strings")
        if class_name in _DATA_OBJECTS:
            self._check_data(spec, layer, where)
            return
        if class_name.startswith("__"):
            raise self._refuse(layer, where, repr(class_name), "a special object tflbnn does "
                               "not accept (Python bytecode or a type spec)")
        if module is not None and _module_root(module) not in _ALLOWED_MODULE_ROOTS:
            name = spec.get("config") if class_name == "function" else class_name
            raise self._refuse(layer, where, f"{module}.{name}", f"module {module!r} is not "
                               f"an allowed source of Keras objects (only "
                               f"{', '.join(_ALLOWED_MODULE_ROOTS)})")
        if class_name == "function":
            name = spec.get("config")
            if not isinstance(name, str):
                raise self._refuse(layer, where, "a function", "its config is not a name")
            candidates = self._function_candidates(name, module, registered_name)
            label = name if module in (None, "builtins") else f"{module}.{name}"
        else:
            candidates = self._class_candidates(class_name, module, registered_name)
            label = class_name if module is None else f"{module}.{class_name}"
        if not candidates:
            raise self._refuse(layer, where, label, "not a Keras built-in nor an object "
                               "registered with Keras by larq or tflbnn")
        for candidate in candidates:
            self._check_resolved(candidate, spec, layer, where, label)

    def _class_candidates(self, class_name: str, module: str | None,
                          registered_name: str | None) -> list[Any]:
        """Every object Keras could resolve this class entry to (registered ones first)."""
        found = [tf.keras.saving.get_registered_object(name)
                 for name in {registered_name or class_name, class_name}]
        if module is not None:
            namespace = _namespace(module)
            if namespace is not None:
                found += [vars(namespace).get(name) if inspect.ismodule(namespace)
                          else getattr(namespace, name, None)
                          for name in {class_name, registered_name or class_name}]
        return [obj for obj in found if obj is not None]

    def _function_candidates(self, name: str, module: str | None,
                             registered_name: str | None) -> list[Any]:
        found = [tf.keras.saving.get_registered_object(key)
                 for key in {name, registered_name or name}]
        if module in (None, "builtins"):
            found += [getattr(getattr(tf.keras, space), name, None)
                      for space in _KERAS_FUNCTION_MODULES]
        else:
            namespace = _namespace(module)
            if namespace is not None:
                found.append(vars(namespace).get(name) if inspect.ismodule(namespace)
                             else getattr(namespace, name, None))
        return [obj for obj in found if obj is not None]

    def _check_resolved(self, obj: Any, spec: dict[str, Any], layer: str | None, where: str,
                        label: str) -> None:
        source = getattr(obj, "__module__", None) or ""
        if _module_root(source) not in ("tf_keras", "larq", "tflbnn"):
            raise self._refuse(layer, where, label, f"it resolves to {source or 'an object'} "
                               f"outside Keras, larq and tflbnn")
        if _module_root(source) != "tf_keras" and not _is_registered(obj):
            # larq and tflbnn register what a model may hold; their other functions
            # (file writers, training loops) must not be reachable by name.
            raise self._refuse(layer, where, label, "a larq/tflbnn object not registered "
                               "with Keras")
        if inspect.isfunction(obj) and _module_root(source) == "tf_keras" \
                and not source.startswith(_KERAS_FUNCTION_SOURCES):
            raise self._refuse(layer, where, label, "a Keras function that is not an "
                               "activation, initializer, regularizer or constraint")
        if inspect.isclass(obj):
            if not issubclass(obj, _allowed_classes()):
                raise self._refuse(layer, where, label, "not a Keras layer, initializer, "
                                   "regularizer, constraint or dtype policy")
            if source.startswith(_REFUSED_KERAS_MODULES):
                raise self._refuse(layer, where, label, "a layer that runs Python code or "
                                   "reads files named in its config (Lambda, preprocessing)")
            if source == _TF_OP_LAYER_MODULE:
                self._check_tf_op_layer(obj, spec, layer, where, label)
        elif not inspect.isfunction(obj):
            raise self._refuse(layer, where, label, "neither a class nor a function")

    def _check_tf_op_layer(self, obj: type, spec: dict[str, Any], layer: str | None,
                           where: str, label: str) -> None:
        if obj.__name__ not in _TF_OP_LAYERS:
            raise self._refuse(layer, where, label, "a layer that calls any TensorFlow "
                               "symbol or attribute named in its config")
        inner = spec.get("config")
        symbol = inner.get("function") if isinstance(inner, dict) else None
        function = _tf_symbol(symbol) if isinstance(symbol, str) else None
        if function is None or getattr(function, "__module__", None) not in _TF_OP_MODULES:
            raise self._refuse(layer, where, f"TensorFlow function {symbol!r}", "not a "
                               "tensor-math op (tflbnn accepts TF ops from "
                               "math/array/nn/image only)")

    def _check_data(self, spec: dict[str, Any], layer: str | None, where: str) -> None:
        inner = spec.get("config")
        dtype = inner.get("dtype") if isinstance(inner, dict) else None
        if spec["class_name"] == "__bytes__":
            return
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = None
        if kind not in ("b", "i", "u", "f", "c"):
            raise self._refuse(layer, where, f"an array of dtype {dtype!r}",
                               "only numeric arrays are accepted")


def _is_registered(obj: Any) -> bool:
    return any(obj is registered for registered in tf.keras.saving.get_custom_objects().values())


def _namespace(module: str) -> Any:
    """The already imported module (or Keras API namespace) ``module`` names, else None.

    Nothing is imported: Keras would import the module, which alone can run code.
    """
    if _module_root(module) == "keras":
        namespace: Any = tf.keras
        for part in module.split(".")[1:]:
            namespace = getattr(namespace, part, None)
            if namespace is None:
                return sys.modules.get("tf_" + module)
        return namespace
    return sys.modules.get(module)


def _tf_symbol(name: str) -> Any:
    """The TensorFlow API function ``tf.<name>`` (how TFOpLambda resolves it), else None."""
    try:
        return functools.reduce(getattr, name.split("."), tf)
    except AttributeError:
        return None


# --- the weights ---------------------------------------------------------------------------

def _check_weights_h5(path: Path, source: Any, what: str) -> int:
    """Check an HDF5 weights file holds only groups and numeric arrays stored in it.

    Args:
        path: the user's file, for messages.
        source: a file path or a binary file object with the HDF5 bytes.
        what: how to name the HDF5 part in messages ("model.weights.h5 inside it", "it").

    Returns:
        The number of arrays.

    Raises:
        ModelFileError: for a link to another file, a virtual or externally stored dataset, a
            non-numeric array, oversized arrays, or unreadable HDF5.
    """
    total = [0, 0]  # bytes, arrays

    def visit(group: h5py.Group, prefix: str) -> None:
        for key in group:
            name = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ModelFileError(f"{path}: {what} links {name!r} to another place "
                                     f"({type(link).__name__}); Keras weights hold only arrays")
            item = group[key]
            if isinstance(item, h5py.Group):
                visit(item, name)
                continue
            if not isinstance(item, h5py.Dataset):
                raise ModelFileError(f"{path}: {what} holds {name!r}, not an array")
            if item.is_virtual or item.external:
                raise ModelFileError(f"{path}: {what} stores {name!r} outside the file")
            if item.dtype.kind not in ("b", "i", "u", "f"):
                raise ModelFileError(f"{path}: {what} holds {name!r} of dtype {item.dtype}; "
                                     f"Keras weights are numeric arrays")
            total[0] += int(np.prod(item.shape, dtype=np.int64)) * item.dtype.itemsize
            total[1] += 1
            if total[0] > MAX_WEIGHTS_BYTES:
                raise ModelFileError(f"{path}: {what} decodes to more than "
                                     f"{MAX_WEIGHTS_BYTES} bytes of weights")

    try:
        with h5py.File(source, "r") as weights:
            visit(weights, "")
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{path}: {what} is not a readable HDF5 weights file: "
                             f"{error}") from None
    return total[1]


def _user_message(error: BaseException, copy: Path, path: Path) -> str:
    return str(error).replace(str(copy), str(path))


# --- the loaders ---------------------------------------------------------------------------

def load_keras_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a Keras model saved as ``.keras``, after checking nothing in it can run code.

    The checks (module docstring) run on a private copy, which Keras then loads with
    ``safe_mode=True`` and without the optimizer (``compile=False``).

    Args:
        path: the ``.keras`` file.

    Returns:
        The model.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ModelFileError: (a ``ValueError``) if the file is not a ``.keras`` archive (a legacy
            HDF5 model, a SavedModel, a pickle, ... named as such), is corrupt, truncated or
            oversized, its ``config.json`` is not JSON or names an object that is neither a
            Keras built-in nor registered by larq/tflbnn (named with its layer), or its
            weights are not plain arrays, or Keras cannot build the model from it.
    """
    path = _existing(path, "Keras model")
    kind = _file_kind(path)
    if kind is not None:
        raise _refuse_foreign_model(path, kind)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a zip archive named {path.suffix or 'without a suffix'}"
                             f"; expected a Keras model saved as '.keras'")
    with _private_copy(path, "model.keras") as copy:
        config, weights = _read_archive(path, copy)
        _ConfigChecker(path).check(config)
        _check_weights_h5(path, io.BytesIO(weights), f"{_WEIGHTS} inside it")
        del weights
        try:
            model = tf.keras.models.load_model(copy, compile=False, safe_mode=True)
        except Exception as error:  # noqa: BLE001  (Keras raises anything a bad config causes)
            raise ModelFileError(f"{path}: cannot build the Keras model it describes: "
                                 f"{type(error).__name__}: "
                                 f"{_user_message(error, copy, path)}") from None
    if not isinstance(model, tf.keras.Model):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


def load_weights(model: tf.keras.Model, path: str | os.PathLike) -> None:
    """Load a ``.weights.h5`` file (``model.save_weights``) into ``model``, arrays only.

    The file is read as HDF5 arrays (no pickles, no links to other files); if it does not fit
    the model, the model keeps its weights.

    Args:
        model: the built model to receive the weights.
        path: the ``.weights.h5`` file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ModelFileError: (a ``ValueError``) if the file is not an HDF5 weights file named
            ``.weights.h5``, holds anything but numeric arrays, holds more arrays than the
            model has variables, or does not match the model (the message names the first
            mismatching layer, as Keras reports it).
    """
    path = _existing(path, "weights file")
    kind = _file_kind(path)
    if kind is None or not kind.startswith("an HDF5 file"):
        raise ModelFileError(f"{path}: {kind or 'a zip archive'}, not a Keras weights file "
                             f"(model.save_weights('name.weights.h5'))")
    if not path.name.endswith(".weights.h5"):
        raise ModelFileError(f"{path}: an HDF5 file not named .weights.h5; tflbnn reads "
                             f"weights saved by model.save_weights('name.weights.h5') only")
    variables = {id(variable) for variable in model.variables}
    with _private_copy(path, "model.weights.h5") as copy:
        arrays = _check_weights_h5(path, copy, "it")
        if arrays > len(variables):
            raise ModelFileError(f"{path}: holds {arrays} arrays, the model has "
                                 f"{len(variables)} variables; it is another model's weights")
        backup = model.get_weights()
        try:
            model.load_weights(copy)
        except Exception as error:  # noqa: BLE001  (Keras raises anything a mismatch causes)
            model.set_weights(backup)
            raise ModelFileError(f"{path}: does not fit the model: "
                                 f"{_user_message(error, copy, path)}") from None
