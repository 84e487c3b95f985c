"""Read a TFLite flatbuffer: its operators, their tensors and the LCE custom options.

Uses TensorFlow's generated schema reader (``tensorflow.lite.python.schema_py_generated``) and
the ``flatbuffers`` package's FlexBuffer decoder for custom-op options, so no interpreter (and no
LCE kernel registration) is needed to inspect a model.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import struct
from pathlib import Path
from typing import Any, Union

from tflbnn import _backend  # noqa: F401

from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

from tflbnn.metadata import open_regular_file

__all__ = [
    "TensorInfo",
    "OpInfo",
    "TFLiteModelInfo",
    "read_tflite",
    "read_tflite_file",
    "load_tflite_bytes",
    "MAX_TFLITE_BYTES",
    "TFLiteFile",
    "LCE_BCONV",
    "LCE_QUANTIZE",
    "bconv_groups",
    "grouped_bconvs",
]

#: File identifier of the TFLite schema, at bytes 4..8 of every model.
TFLITE_IDENTIFIER = b"TFL3"
#: Largest ``.tflite`` file read: 2 GiB - 1 bytes, the most a FlatBuffer can address (its
#: offsets are signed 32-bit), so anything larger cannot be a model and is refused unread.
MAX_TFLITE_BYTES = 2**31 - 1
_HEADER_BYTES = 8
_READ_CHUNK = 1 << 20
LCE_BCONV = "LceBconv2d"
LCE_QUANTIZE = "LceQuantize"
#: Custom ops registered by ``RegisterLCECustomOps``; a model using any needs the LCE interpreter.
LCE_CUSTOM_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")

_BITS_PER_WORD = 32  # LCE bitpacks channels into int32 words

_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_")}
_TYPE_NAMES = {value: name.lower() for name, value in vars(schema.TensorType).items()
               if not name.startswith("_")}
# TFLite's Padding enum, as stored in LceBconv2d's options.
_PADDING_NAMES = {0: "SAME", 1: "VALID"}



@dataclasses.dataclass(frozen=True)
class TFLiteFile:
    """A ``.tflite`` file read by ``read_tflite_file``: its bytes and their SHA-256.

    Attributes:
        path: the file read.
        data: its content (a TFLite flatbuffer by its file identifier).
        sha256: SHA-256 of ``data``, 64 lowercase hex digits (as a sidecar's ``model_sha256``).
    """

    path: Path
    data: bytes = dataclasses.field(repr=False)
    sha256: str


Source = Union[bytes, bytearray, str, os.PathLike, TFLiteFile]


def read_tflite_file(path: str | os.PathLike) -> TFLiteFile:
    """Read a ``.tflite`` file, checking before reading it whole that it can be one.

    Order: a regular file (not a folder, device or pipe), at most ``MAX_TFLITE_BYTES``, and
    the file identifier ``TFL3`` at bytes 4..8; only then is the rest read, hashed as it
    streams in. A 2 GiB file of something else is refused after reading 8 bytes.

    Args:
        path: the ``.tflite`` file.

    Returns:
        A ``TFLiteFile``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a regular file, too large, or not a TFLite model (named).
    """
    path = Path(path)
    with open_regular_file(path, MAX_TFLITE_BYTES, "TFLite model") as handle:
        header = handle.read(_HEADER_BYTES)
        _check_identifier(header, str(path))
        digest = hashlib.sha256(header)
        chunks, size = [header], len(header)
        while chunk := handle.read(_READ_CHUNK):
            size += len(chunk)
            if size > MAX_TFLITE_BYTES:  # grew after the size check
                raise ValueError(f"{path}: more than the {MAX_TFLITE_BYTES} bytes a TFLite "
                                 "model may have")
            digest.update(chunk)
            chunks.append(chunk)
    return TFLiteFile(path=path, data=b"".join(chunks), sha256=digest.hexdigest())


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph.

    Attributes:
        name: the tensor name the converter chose (often truncated).
        shape: static shape (batch forced to 1 by the LCE converter).
        dtype: lower-case TFLite type name, e.g. ``"float32"``, ``"int32"`` (bitpacked).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator.

    Attributes:
        index: position in its subgraph's execution order.
        subgraph: index of the subgraph holding it.
        name: builtin operator name (``"CONV_2D"``) or custom code (``"LceBconv2d"``).
        custom: whether it is a custom op.
        inputs: input tensors, ``None`` for an omitted optional input.
        outputs: output tensors.
        options: decoded FlexBuffer custom options (a dict for LCE ops), else ``None``.
    """

    index: int
    subgraph: int
    name: str
    custom: bool
    inputs: tuple[TensorInfo | None, ...]
    outputs: tuple[TensorInfo, ...]
    options: dict[str, Any] | None = None

    def describe(self) -> str:
        """One line: name, input and output shapes/dtypes, and options."""
        def fmt(tensor):
            return "-" if tensor is None else f"{list(tensor.shape)}:{tensor.dtype}"
        text = (f"{self.name}({', '.join(fmt(t) for t in self.inputs)}) -> "
                f"{', '.join(fmt(t) for t in self.outputs)}")
        return f"{text} {self.options}" if self.options else text


@dataclasses.dataclass(frozen=True)
class TFLiteModelInfo:
    """What ``read_tflite`` found in a flatbuffer.

    Attributes:
        source: the file name, or ``"<bytes>"``.
        size_bytes: length of the flatbuffer.
        ops: every operator of every subgraph, in execution order.
        inputs: input tensors of the main subgraph.
        outputs: output tensors of the main subgraph.
    """

    source: str
    size_bytes: int
    ops: tuple[OpInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def op_histogram(self) -> dict[str, int]:
        """Operator name → count, most frequent first."""
        return dict(collections.Counter(op.name for op in self.ops).most_common())

    def ops_named(self, name: str) -> list[OpInfo]:
        """All operators with the given builtin name or custom code."""
        return [op for op in self.ops if op.name == name]

    @property
    def uses_lce_ops(self) -> bool:
        """True when the model needs the LCE interpreter (has any LCE custom op)."""
        return any(op.custom and op.name in LCE_CUSTOM_OPS for op in self.ops)


def bconv_groups(op: OpInfo) -> int:
    """Number of groups of an ``LceBconv2d`` op, from ``channels_in`` and its filter shape.

    The filter is OHWI with the I axis bitpacked into int32 words. Grouped bconvs need the
    channels per group to be a multiple of 32 (the converter enforces it), so one group's
    channels are exactly ``32 · words`` then; fewer channels than that means padding bits of a
    single group.
    """
    filter_tensor = op.inputs[1]
    channels_in = int((op.options or {}).get("channels_in", 0))
    words = filter_tensor.shape[3]
    per_group = words * _BITS_PER_WORD if filter_tensor.dtype == "int32" else words
    if per_group and channels_in > per_group and channels_in % per_group == 0:
        return channels_in // per_group
    return 1


def grouped_bconvs(info: TFLiteModelInfo) -> list[OpInfo]:
    """The ``LceBconv2d`` ops with more than one group (``bconv_groups``).

    LCE's default bconv kernel rejects them at preparation ("Grouped binary convolutions are
    not supported with this kernel"); only the indirect-BGEMM and reference kernels run them.
    """
    return [op for op in info.ops_named(LCE_BCONV) if bconv_groups(op) > 1]


def load_tflite_bytes(source: Source, name: str | None = None) -> tuple[bytes, str]:
    """Return ``(flatbuffer bytes, display name)`` from a path, a ``TFLiteFile`` or bytes.

    A path is read by ``read_tflite_file`` (size and file identifier checked first).

    Args:
        source: a ``.tflite`` path, a ``TFLiteFile`` or flatbuffer bytes.
        name: display name for bytes in error messages (default ``"<bytes>"``).

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: if the data is not a TFLite model (names the file).
    """
    if isinstance(source, TFLiteFile):
        return source.data, name or str(source.path)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), name or "<bytes>"
        _check_identifier(data, name)
        return data, name
    return read_tflite_file(source).data, str(source)


def _check_identifier(data: bytes, name: str) -> None:
    if len(data) < _HEADER_BYTES or data[4:8] != TFLITE_IDENTIFIER:
        found = data[4:8] if len(data) >= _HEADER_BYTES else b""
        raise ValueError(f"{name}: not a TFLite model (file identifier {found!r}, expected "
                         f"{TFLITE_IDENTIFIER!r})")


def read_tflite(source: Source, name: str | None = None) -> TFLiteModelInfo:
    """List the operators and I/O tensors of a TFLite flatbuffer.

    Args:
        source: path to a ``.tflite`` file, a ``TFLiteFile``, or the flatbuffer bytes.
        name: display name for bytes in error messages (default ``"<bytes>"``).

    Returns:
        A ``TFLiteModelInfo``.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if the data is not a TFLite flatbuffer or is corrupt; names the file.
    """
    data, name = load_tflite_bytes(source, name)
    try:
        model = schema.Model.GetRootAs(data, 0)
        codes = [_op_code_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
        ops: list[OpInfo] = []
        inputs: tuple[TensorInfo, ...] = ()
        outputs: tuple[TensorInfo, ...] = ()
        for sub_index in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(sub_index)
            tensors = [_tensor_info(subgraph.Tensors(i)) for i in range(subgraph.TensorsLength())]
            if sub_index == 0:
                inputs = tuple(tensors[i] for i in subgraph.InputsAsNumpy())
                outputs = tuple(tensors[i] for i in subgraph.OutputsAsNumpy())
            for op_index in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(op_index)
                op_name, custom = codes[op.OpcodeIndex()]
                ops.append(OpInfo(
                    index=op_index,
                    subgraph=sub_index,
                    name=op_name,
                    custom=custom,
                    inputs=tuple(tensors[i] if i >= 0 else None
                                 for i in _indices(op.InputsAsNumpy())),
                    outputs=tuple(tensors[i] for i in _indices(op.OutputsAsNumpy())),
                    options=_custom_options(op) if custom else None,
                ))
    except (struct.error, IndexError, KeyError, TypeError, ValueError, AttributeError,
            UnicodeDecodeError, OverflowError, MemoryError) as error:
        # A valid identifier with a corrupt body surfaces as one of these from the reader.
        raise ValueError(f"{name}: corrupt TFLite flatbuffer ({type(error).__name__}: "
                         f"{error})") from None
    return TFLiteModelInfo(source=name, size_bytes=len(data), ops=tuple(ops), inputs=inputs,
                           outputs=outputs)


def _indices(array) -> list[int]:
    # The generated reader returns 0 (not an empty array) for an absent vector.
    return [] if isinstance(array, int) else [int(i) for i in array]


def _op_code_name(code) -> tuple[str, bool]:
    custom = code.CustomCode()
    if custom:
        return custom.decode("utf-8"), True
    # Codes < 127 live in the int8 deprecated field for old readers; take the larger of both.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), False


def _tensor_info(tensor) -> TensorInfo:
    shape = tensor.ShapeAsNumpy()
    return TensorInfo(
        name=(tensor.Name() or b"").decode("utf-8", errors="replace"),
        shape=tuple(int(d) for d in _indices(shape)),
        dtype=_TYPE_NAMES.get(tensor.Type(), f"type_{tensor.Type()}"),
    )


def _custom_options(op) -> dict[str, Any] | None:
    if not op.CustomOptionsLength():
        return None
    raw = bytes(op.CustomOptionsAsNumpy())
    try:
        options = flexbuffers.Loads(raw)
    except Exception:  # noqa: BLE001 - non-FlexBuffer custom options are legal; keep them opaque
        return {"raw_bytes": len(raw)}
    if isinstance(options, dict) and "padding" in options:
        options = {**options, "padding": _PADDING_NAMES.get(options["padding"], options["padding"])}
    return options if isinstance(options, dict) else {"value": options}
