"""Store conv/dense weights that are exactly int8 × scale as INT8 tensors + DEQUANTIZE.

Shift-weight networks (S3, DeepShift) have kernels whose values are signed powers of two, e.g.
``{0, ±1, ±2, ±4}``. In a float32 TFLite model each of them takes 32 bits; stored as int8 with a
scale they take 8 bits and lose nothing. ``store_int8_weights`` rewrites a float flatbuffer so
that every such weight tensor is an INT8 constant with quantization parameters, read through a
``DEQUANTIZE`` operator that hands the unchanged float op (``CONV_2D``, ``DEPTHWISE_CONV_2D``,
``FULLY_CONNECTED``, ``TRANSPOSE_CONV``) the *same* float32 values as before. Activations stay
float32 and every other tensor is untouched.

**The rule** (``exact_int8_scales``). A weight tensor is stored as int8 when one float32 scale
per tensor, or else one per output channel, reproduces it exactly: every weight ``w`` of a
channel equals ``float32(q * s)`` with an integer ``q`` in ``[-127, 127]``. The scale of a
channel is ``max|w| / n`` for the smallest ``n`` in 1..127 that works. The scale is *not*
required to be a power of two, because the converter folds an inference BatchNormalization into
the preceding conv: the stored kernel of an S3 conv is ``w * gamma_c / sqrt(var_c + eps)``, i.e.
``{0, ±1, ±2, ±4}`` times an arbitrary per-channel factor. Multiplying by a power of two is exact
in float32, so such channels still satisfy the rule with ``s_c = factor_c · 2**k``. Without BN
folding (or for DeepShift-Q, whose values are ``±2**e``) the scales come out as powers of two.
A DeepShift-Q channel fits when its exponents span at most 6 (``2**6 = 64 <= 127``): always for
3 bits, not for every 5-bit channel (exponents -15..0), whose tensors then stay float32.
Zeros compare numerically (``-0.0`` is stored as ``q = 0``), and tensors with NaN, infinities or
subnormal values are never converted (TensorFlow flushes subnormals to zero on CPU).

**Why a flatbuffer rewrite.** Measured with TensorFlow 2.16.2 on a 3×3×16×32 conv with weights
in ``{0, ±1, ±2, ±4}``:

* dynamic-range quantization (``optimizations=[DEFAULT]``) stores int8 weights with the scale
  ``max|w| / 127`` (not lossless: 1 becomes 32 · 4/127 = 1.0079) and a hybrid ``CONV_2D`` that
  quantizes the activations at run time (on that conv its output was even all zeros, with and
  without XNNPACK; not investigated further);
* ``FakeQuantWithMinMaxVars(-127, 127, narrow_range)`` on the kernel with ``DEFAULT`` and
  ``_experimental_low_bit_qat`` stores int8 with our scale 1.0, but again for a hybrid conv
  (max |Δ| 0.69 for outputs up to 93); without ``DEFAULT`` (also with
  ``_experimental_qdq_conversion_mode``) the kernel stays float32 with a run-time QUANTIZE →
  DEQUANTIZE pair; ``QuantizeAndDequantizeV2`` is folded away to float32;
* ``_experimental_reduce_type_precision`` leaves float weights float32.

None of them gives exact int8 storage with float activations, and the fake-quant routes would in
addition need graph surgery on an arbitrary Keras model. So the float flatbuffer is rewritten
with the schema object API (``schema_py_generated.ModelT``), which works on any float model,
whatever produced it.

``check_int8_weights`` reads a flatbuffer back and fails, naming the tensor and the op's output
(which carries the Keras layer names), when a weight that should be int8 is not;
``int8_weight_size`` reports the file size, the int8 bytes and the ideal size in bits;
``check_int8_parity`` compares the int8-weight model with the flatbuffer it was made from (in
the LCE interpreter and in TFLite + XNNPACK) and with Keras. LCE flatbuffers can be rewritten
too: their float convs (e.g. an S3 stem) get int8 weights, ``LceBconv2d`` stays as it is.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from typing import Any, Iterable, Sequence

from tflbnn import _backend  # noqa: F401

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from tflbnn.converters.flatbuffer import TFLITE_IDENTIFIER, Source, load_tflite_bytes, read_tflite
from tflbnn.converters.lce import convert_float
from tflbnn.converters.parity import (ParityReport, check_parity, check_parity_images,
                                      run_lce)

__all__ = [
    "WEIGHT_INPUTS",
    "Int8WeightError",
    "Int8ParityReport",
    "Int8WeightSize",
    "WeightTensor",
    "check_int8_parity",
    "check_int8_weights",
    "convert_int8_weights",
    "exact_int8_scales",
    "int8_weight_size",
    "read_weight_tensors",
    "run_tflite",
    "store_int8_weights",
]

#: Operators with a weight input: name → (input index of the weights, output-channel axis).
WEIGHT_INPUTS = {
    "CONV_2D": (1, 0),             # filter OHWI
    "DEPTHWISE_CONV_2D": (1, 3),   # filter 1HW(I·M)
    "FULLY_CONNECTED": (1, 0),     # weights (units, inputs)
    "TRANSPOSE_CONV": (1, 0),      # filter OHWI
}

_INT8_MAX = 127  # narrow range: -127..127, symmetric, zero point 0
_TINY = np.finfo(np.float32).tiny
# TFLite's exporter aligns constant buffers to 16 bytes; kernels and delegates may read them in
# place (mmap), so the rewrite keeps that alignment.
_BUFFER_ALIGNMENT = 16
# DEQUANTIZE versions in TFLite's op versioning (lite/tools/versioning/op_version.cc): an int8
# input is version 2, per-channel int8 version 5; the builtin resolver rejects a wrong one.
_DEQUANTIZE_VERSION = {False: 2, True: 5}
_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_")}
_TYPE_NAMES = {value: name.lower() for name, value in vars(schema.TensorType).items()
               if not name.startswith("_")}
_TYPE_BITS = {"float32": 32, "float16": 16, "float64": 64, "int8": 8, "uint8": 8, "int16": 16,
              "int32": 32, "int64": 64, "bool": 8}
_NAME_SEPARATORS = re.compile(r"[/;:]")


class Int8WeightError(ValueError):
    """A weight tensor that should be stored as int8 is not (or is stored wrongly).

    Attributes:
        tensors: the offending ``WeightTensor`` entries.
    """

    def __init__(self, message: str, tensors: Sequence["WeightTensor"] = ()):
        super().__init__(message)
        self.tensors = tuple(tensors)


# --------------------------------------------------------------------------------------------
# The rule


def exact_int8_scales(weights: np.ndarray, axis: int | None = None) -> np.ndarray | None:
    """Scales that store ``weights`` as int8 without changing any float32 value, if they exist.

    One scale for the whole tensor is tried first, then (when ``axis`` is given) one per slice
    along ``axis``. A scale ``s`` fits a set of weights when every weight equals
    ``float32(q * s)`` for an integer ``q`` in ``[-127, 127]``; it is ``max|w| / n`` with the
    smallest ``n`` in 1..127 that fits (an all-zero channel gets 1.0).

    Args:
        weights: float32 weight tensor.
        axis: output-channel axis for per-channel scales; ``None`` allows only one scale.

    Returns:
        float32 array of 1 (per-tensor) or ``weights.shape[axis]`` (per-channel) positive
        normal scales, or ``None`` when the tensor cannot be stored exactly (also for NaN,
        infinities, subnormals or an empty tensor).

    Raises:
        ValueError: for an axis out of range.
    """
    weights = np.asarray(weights, dtype=np.float32)
    if axis is not None and not -weights.ndim <= axis < weights.ndim:
        raise ValueError(f"exact_int8_scales: axis {axis} out of range for shape "
                         f"{weights.shape}")
    if weights.size == 0 or not np.isfinite(weights).all():
        return None
    magnitudes = np.abs(weights)
    if np.any((magnitudes > 0) & (magnitudes < _TINY)):
        return None
    # Per tensor: only the distinct magnitudes matter, at most 128 of them (|q| in 0..127).
    distinct = np.unique(magnitudes)
    if len(distinct) <= _INT8_MAX + 1:
        scale = _row_scales(distinct[None, :])
        if scale is not None:
            return scale
    if axis is None or weights.ndim == 0:
        return None
    rows = np.moveaxis(magnitudes, axis, 0).reshape(weights.shape[axis], -1)
    # A row with more than 128 distinct magnitudes cannot fit; this rejects ordinary float
    # kernels before the search over n.
    ordered = np.sort(rows, axis=1)
    distinct_counts = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
    if np.any(distinct_counts > _INT8_MAX + 1):
        return None
    return _row_scales(rows)


def _row_scales(magnitudes: np.ndarray) -> np.ndarray | None:
    """Per-row scales for a ``(rows, k)`` array of ``|w|``, or None when a row does not fit."""
    peak = magnitudes.max(axis=1)
    scales = np.ones(len(peak), np.float32)
    pending = peak > 0
    for n in range(1, _INT8_MAX + 1):
        if not pending.any():
            break
        index = np.flatnonzero(pending)
        candidate = (peak[index] / np.float32(n)).astype(np.float32)
        values = magnitudes[index]
        levels = np.rint(values / candidate[:, None])
        fits = ((levels <= _INT8_MAX).all(axis=1)
                & ((levels.astype(np.float32) * candidate[:, None]) == values).all(axis=1)
                & (candidate >= _TINY))
        scales[index[fits]] = candidate[fits]
        pending[index[fits]] = False
    return None if pending.any() else scales


def _scale_shape(ndim: int, scales: np.ndarray, axis: int) -> list[int]:
    shape = [1] * ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    return shape


def _quantize(weights: np.ndarray, scales: np.ndarray, axis: int) -> np.ndarray:
    """The int8 integers ``q`` of ``weights`` for the given scales (float32 arithmetic)."""
    shape = _scale_shape(weights.ndim, scales, axis)
    return np.rint(weights / scales.reshape(shape)).astype(np.int8)


def _dequantize(levels: np.ndarray, scales: np.ndarray, axis: int) -> np.ndarray:
    """``float32(q) * scale``, as TFLite's DEQUANTIZE computes it (zero point 0)."""
    shape = _scale_shape(levels.ndim, scales, axis)
    return levels.astype(np.float32) * scales.reshape(shape)


# --------------------------------------------------------------------------------------------
# Reading the flatbuffer


def _load_model(source: Source, name: str | None) -> tuple[schema.ModelT, str]:
    data, name = load_tflite_bytes(source, name)
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as error:  # noqa: BLE001 - any reader failure means a corrupt body
        raise ValueError(f"{name}: corrupt TFLite flatbuffer ({type(error).__name__}: "
                         f"{error})") from None
    return model, name


def _op_names(model: schema.ModelT) -> list[str]:
    names = []
    for code in model.operatorCodes or []:
        if code.customCode:
            names.append(code.customCode.decode("utf-8", errors="replace")
                         if isinstance(code.customCode, bytes) else str(code.customCode))
            continue
        # Codes < 127 live in the deprecated int8 field for old readers; take the larger.
        builtin = max(code.builtinCode or 0, code.deprecatedBuiltinCode or 0)
        names.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return names


def _text(name: Any) -> str:
    if name is None:
        return ""
    return name.decode("utf-8", errors="replace") if isinstance(name, bytes) else str(name)


def _list(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _buffer_bytes(model: schema.ModelT, tensor: schema.TensorT) -> bytes | None:
    """The tensor's constant data, or None for a non-constant tensor."""
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    if buffer is None:
        return None
    if buffer.data is None and (buffer.offset or 0) > 1:
        raise ValueError("TFLite models with weights outside the flatbuffer "
                         "(_experimental_use_buffer_offset) are not supported")
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return np.asarray(buffer.data, np.uint8).tobytes()


def _tensor_array(model: schema.ModelT, tensor: schema.TensorT) -> np.ndarray | None:
    raw = _buffer_bytes(model, tensor)
    dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8}.get(
        tensor.type)
    if raw is None or dtype is None:
        return None
    return np.frombuffer(raw, dtype).reshape(_list(tensor.shape))


@dataclasses.dataclass(frozen=True)
class WeightTensor:
    """The weight input of one conv/dense operator, as stored in the flatbuffer.

    Attributes:
        subgraph: subgraph index.
        op_index: position of the consuming operator in its subgraph.
        op_name: ``"CONV_2D"``, ``"FULLY_CONNECTED"``, ...
        tensor: name of the stored weight tensor (the DEQUANTIZE input when there is one).
        output: name of the operator's output tensor; the converter joins the Keras layer names
            of the fused ops into it (``model/re_lu/Relu;model/bn_a/...;model/s3a/Conv2D``).
        shape: stored shape (OHWI for convolutions).
        dtype: stored type name, e.g. ``"int8"``, ``"float32"``.
        constant: whether the tensor has data in the flatbuffer.
        dequantized: whether a ``DEQUANTIZE`` op turns the stored tensor into the op's input.
        num_scales: quantization scales of an int8 tensor (1 = per-tensor), else 0.
        zero_points_zero: whether every zero point is 0 (True for float tensors).
        levels: distinct integer values of an int8 tensor (``{0, ±1, ±2, ±4}`` → 7), else 0.
        exact_int8: for a float32 constant, whether ``exact_int8_scales`` finds scales, i.e. the
            tensor could be stored as int8 without loss; False otherwise.
    """

    subgraph: int
    op_index: int
    op_name: str
    tensor: str
    output: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool
    dequantized: bool
    num_scales: int
    zero_points_zero: bool
    levels: int
    exact_int8: bool

    @property
    def is_int8(self) -> bool:
        """True when the weights are stored as int8."""
        return self.dtype == "int8"

    @property
    def num_elements(self) -> int:
        """Number of weights."""
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def name_parts(self) -> tuple[str, ...]:
        """The tensor and output names cut at ``/``, ``;`` and ``:`` (Keras layer names are among
        the parts)."""
        parts = _NAME_SEPARATORS.split(f"{self.tensor};{self.output}")
        return tuple(part for part in parts if part)

    def describe(self) -> str:
        """One line naming the tensor, its op and the op's output."""
        stored = self.dtype + (f" ({self.num_scales} scale{'s' * (self.num_scales > 1)})"
                               if self.is_int8 else "")
        return (f"weight {self.tensor!r} {list(self.shape)} of {self.op_name} #{self.op_index} "
                f"(output {self.output!r}): {stored}")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "shape": list(self.shape), "is_int8": self.is_int8}


def read_weight_tensors(source: Source, name: str | None = None) -> tuple[WeightTensor, ...]:
    """List the weight tensor of every conv/dense operator (``WEIGHT_INPUTS``) of a flatbuffer.

    Args:
        source: a ``.tflite`` path or flatbuffer bytes.
        name: display name for bytes in error messages.

    Returns:
        One ``WeightTensor`` per operator with a weight input, in execution order.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: if the data is not a TFLite flatbuffer or is corrupt.
    """
    model, name = _load_model(source, name)
    return _weight_tensors(model)


def _producers(subgraph: schema.SubGraphT) -> dict[int, schema.OperatorT]:
    produced = {}
    for op in subgraph.operators or []:
        for index in _list(op.outputs):
            produced[index] = op
    return produced


@dataclasses.dataclass(frozen=True)
class _WeightInput:
    """Where one conv/dense op reads its weights."""

    subgraph: int
    op_index: int
    op_name: str
    axis: int
    direct: int  # the op's weight input tensor
    stored: int  # that tensor, or the input of the DEQUANTIZE producing it
    output: int  # the op's first output tensor


def _weight_inputs(model: schema.ModelT) -> list[_WeightInput]:
    names = _op_names(model)
    found = []
    for sub_index, subgraph in enumerate(model.subgraphs or []):
        producers = _producers(subgraph)
        for op_index, op in enumerate(subgraph.operators or []):
            op_name = names[op.opcodeIndex]
            if op_name not in WEIGHT_INPUTS:
                continue
            position, axis = WEIGHT_INPUTS[op_name]
            inputs = _list(op.inputs)
            if len(inputs) <= position or inputs[position] < 0:
                continue
            stored = direct = inputs[position]
            producer = producers.get(direct)
            if producer is not None and names[producer.opcodeIndex] == "DEQUANTIZE":
                stored = _list(producer.inputs)[0]
            found.append(_WeightInput(sub_index, op_index, op_name, axis, direct, stored,
                                      _list(op.outputs)[0]))
    return found


def _weight_tensors(model: schema.ModelT) -> tuple[WeightTensor, ...]:
    found = []
    for use in _weight_inputs(model):
        tensors = model.subgraphs[use.subgraph].tensors
        found.append(_describe_weight(model, tensors[use.stored], use.subgraph, use.op_index,
                                      use.op_name, _text(tensors[use.output].name), use.axis,
                                      use.stored != use.direct))
    return tuple(found)


def _describe_weight(model: schema.ModelT, tensor: schema.TensorT, sub_index: int,
                     op_index: int, op_name: str, output: str, axis: int,
                     dequantized: bool) -> WeightTensor:
    dtype = _TYPE_NAMES.get(tensor.type, f"type_{tensor.type}")
    values = _tensor_array(model, tensor)
    quantization = tensor.quantization
    scales = _list_float(quantization.scale) if quantization is not None else []
    zero_points = _list(quantization.zeroPoint) if quantization is not None else []
    levels, exact = 0, False
    if values is not None and dtype == "int8":
        levels = len(np.unique(values))
    elif values is not None and dtype == "float32":
        exact = exact_int8_scales(values, axis if values.ndim > axis else None) is not None
    return WeightTensor(
        subgraph=sub_index, op_index=op_index, op_name=op_name, tensor=_text(tensor.name),
        output=output, shape=tuple(_list(tensor.shape)), dtype=dtype,
        constant=_buffer_bytes(model, tensor) is not None, dequantized=dequantized,
        num_scales=len(scales) if dtype == "int8" else 0,
        zero_points_zero=all(point == 0 for point in zero_points), levels=levels,
        exact_int8=exact)


def _list_float(values: Any) -> list[float]:
    return [] if values is None else [float(v) for v in values]


# --------------------------------------------------------------------------------------------
# The rewrite


class _AlignedBufferT(schema.BufferT):
    """A ``BufferT`` whose data vector is packed at a 16-byte boundary (as TFLite's exporter)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - schema API name
        data = None
        if self.data is not None:
            raw = np.asarray(self.data, np.uint8).tobytes()
            # CreateNumpyVector aligns uint8 data to 1 byte only; this is its body with the
            # alignment raised.
            builder.StartVector(1, len(raw), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _aligned(buffer: schema.BufferT) -> _AlignedBufferT:
    aligned = _AlignedBufferT()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def _pack(model: schema.ModelT) -> bytes:
    model.buffers = [_aligned(buffer) for buffer in model.buffers or []]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _dequantize_code(model: schema.ModelT, per_channel: bool) -> int:
    """Index of a DEQUANTIZE operator code of the right version, added if missing."""
    version = _DEQUANTIZE_VERSION[per_channel]
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    for index, code in enumerate(model.operatorCodes):
        builtin = max(code.builtinCode or 0, code.deprecatedBuiltinCode or 0)
        if builtin == dequantize and not code.customCode and code.version == version:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = dequantize
    code.deprecatedBuiltinCode = min(dequantize, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer_references(model: schema.ModelT) -> collections.Counter:
    return collections.Counter(tensor.buffer for subgraph in model.subgraphs or []
                               for tensor in subgraph.tensors or [])


def store_int8_weights(flatbuffer: Source, *, name: str | None = None) -> bytes:
    """Store every exactly-representable conv/dense weight tensor of a model as int8.

    Each float32 constant that feeds the weight input of an op in ``WEIGHT_INPUTS`` and passes
    ``exact_int8_scales`` becomes an INT8 tensor (same name and shape, zero points 0, one scale
    or one per output channel); a new float32 tensor ``<name>/dequantized`` is produced from it
    by a ``DEQUANTIZE`` operator placed before its first consumer, and every consumer reads that
    tensor instead. The dequantized values equal the original float32 values exactly. All
    other tensors and operators, the signatures and the metadata are kept. Works on any float
    or LCE flatbuffer; a model without such weights comes back re-packed but equivalent.

    Args:
        flatbuffer: the float model, as bytes or a ``.tflite`` path.
        name: display name for bytes in error messages.

    Returns:
        The rewritten flatbuffer bytes.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: if the data is not a TFLite flatbuffer, is corrupt, or keeps its weights
            outside the flatbuffer.
    """
    model, name = _load_model(flatbuffer, name)
    uses = _weight_inputs(model)
    references = _buffer_references(model)
    for sub_index, subgraph in enumerate(model.subgraphs or []):
        _rewrite_subgraph(model, subgraph, _weight_candidates(uses, sub_index), references)
    return _pack(model)


def _weight_candidates(uses: list[_WeightInput], subgraph_index: int) -> dict[int, int | None]:
    """Weight tensor index → output-channel axis (None when its consumers disagree on it)."""
    candidates: dict[int, int | None] = {}
    for use in uses:
        if use.subgraph == subgraph_index and use.direct == use.stored:
            known = candidates.get(use.direct, use.axis)
            candidates[use.direct] = use.axis if known == use.axis else None
    return candidates


def _rewrite_subgraph(model: schema.ModelT, subgraph: schema.SubGraphT,
                      candidates: dict[int, int | None],
                      references: collections.Counter) -> None:
    tensors = subgraph.tensors
    # Subgraph inputs and variables may look like constants but are written at run time.
    protected = set(_list(subgraph.inputs)) | set(_list(subgraph.outputs))
    # Position of the first consumer → DEQUANTIZE ops to run just before it.
    dequantize_ops: dict[int, list[schema.OperatorT]] = collections.defaultdict(list)
    replaced: dict[int, int] = {}  # int8 tensor index → its dequantized float tensor
    for index, axis in candidates.items():
        tensor = tensors[index]
        if (index in protected or tensor.isVariable or tensor.type != schema.TensorType.FLOAT32
                or (tensor.quantization is not None and tensor.quantization.scale is not None)):
            continue
        weights = _tensor_array(model, tensor)
        if weights is None:
            continue
        scales = exact_int8_scales(weights, axis if axis is not None and
                                   weights.ndim > axis else None)
        if scales is None:
            continue
        per_channel = len(scales) > 1
        levels = _quantize(weights, scales, axis or 0)
        if not np.array_equal(_dequantize(levels, scales, axis or 0), weights):
            # exact_int8_scales guarantees this; a failure is a bug here, never a lossy file.
            raise RuntimeError(f"store_int8_weights: int8 form of weight "
                               f"{_text(tensor.name)!r} does not reproduce it exactly")
        replaced[index] = _add_dequantized_tensor(subgraph, tensor)
        _store_int8(model, tensor, levels, scales, axis if per_channel else 0, references)
        op = schema.OperatorT()
        op.opcodeIndex = _dequantize_code(model, per_channel)
        op.inputs, op.outputs = [index], [replaced[index]]
        first = min(position for position, consumer in enumerate(subgraph.operators)
                    if index in _list(consumer.inputs))
        dequantize_ops[first].append(op)
    if not replaced:
        return
    operators = []
    for position, consumer in enumerate(subgraph.operators):
        operators.extend(dequantize_ops.get(position, []))
        consumer.inputs = [replaced.get(i, i) for i in _list(consumer.inputs)]
        operators.append(consumer)
    subgraph.operators = operators


def _add_dequantized_tensor(subgraph: schema.SubGraphT, tensor: schema.TensorT) -> int:
    output = schema.TensorT()
    output.shape = list(_list(tensor.shape))
    if tensor.shapeSignature is not None:
        output.shapeSignature = list(_list(tensor.shapeSignature))
    output.type = schema.TensorType.FLOAT32
    output.buffer = 0  # the empty buffer: a run-time tensor
    output.name = f"{_text(tensor.name)}/dequantized".encode("utf-8")
    subgraph.tensors.append(output)
    return len(subgraph.tensors) - 1


def _store_int8(model: schema.ModelT, tensor: schema.TensorT, levels: np.ndarray,
                scales: np.ndarray, axis: int, references: collections.Counter) -> None:
    data = np.frombuffer(np.ascontiguousarray(levels).tobytes(), np.uint8)
    if references[tensor.buffer] == 1:
        model.buffers[tensor.buffer].data = data
    else:
        # Another tensor shares the float buffer: leave it and give this one its own.
        references[tensor.buffer] -= 1
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        references[tensor.buffer] = 1
    quantization = schema.QuantizationParametersT()
    quantization.scale = [float(scale) for scale in scales]
    quantization.zeroPoint = [0] * len(scales)
    quantization.quantizedDimension = int(axis)
    tensor.quantization = quantization
    tensor.type = schema.TensorType.INT8


def convert_int8_weights(model: tf.keras.Model) -> bytes:
    """Convert a Keras model to float32 TFLite and store its exact int8 weights as int8.

    Args:
        model: a built Keras model, e.g. ``tflbnn.shift.to_inference_model`` of an S3 model.

    Returns:
        The flatbuffer bytes (``store_int8_weights(convert_float(model))``).

    Raises:
        ValueError: for an unbuilt model.
    """
    return store_int8_weights(convert_float(model), name=f"model {model.name!r}")


# --------------------------------------------------------------------------------------------
# Verification


def check_int8_weights(
    source: Source,
    *,
    require_int8_for: Iterable[str] = (),
    require_exact: bool = True,
    name: str | None = None,
) -> tuple[WeightTensor, ...]:
    """Read a flatbuffer back and check how its conv/dense weights are stored.

    Always checked: every int8 weight has zero points 0 and reaches its op through a
    ``DEQUANTIZE`` (an int8 weight read directly by a float op means a hybrid kernel that
    quantizes activations). Optionally: every weight of the named layers is int8, and no
    float32 weight is left that could have been stored exactly as int8.

    Args:
        source: a ``.tflite`` path or flatbuffer bytes.
        require_int8_for: names that must each match at least one weight tensor, all of whose
            matches must be int8. A name matches a tensor equal to it or a part of the tensor
            or op-output name between ``/``, ``;`` or ``:`` — so a Keras layer name such as
            ``"s3a"`` matches the conv it became.
        require_exact: every float32 constant weight for which ``exact_int8_scales`` finds
            scales (e.g. every S3 or ternary kernel) must be int8.
        name: display name for bytes in error messages.

    Returns:
        Every ``WeightTensor`` (see ``read_weight_tensors``).

    Raises:
        Int8WeightError: naming each offending tensor, its op and the op's output.
        FileNotFoundError: if a path does not exist.
        ValueError: if the data is not a TFLite flatbuffer or is corrupt.
    """
    model, name = _load_model(source, name)
    weights = _weight_tensors(model)
    problems: list[tuple[str, WeightTensor]] = []
    for weight in weights:
        if weight.is_int8 and not weight.dequantized:
            problems.append(("is int8 but feeds the op directly (hybrid kernel), not through "
                             "DEQUANTIZE", weight))
        elif weight.is_int8 and not weight.zero_points_zero:
            problems.append(("is int8 with a non-zero zero point", weight))
        elif require_exact and weight.exact_int8 and not weight.is_int8:
            problems.append(("holds exactly int8 × scale values but is stored as "
                             f"{weight.dtype}", weight))
    missing = []
    for wanted in require_int8_for:
        matches = [weight for weight in weights
                   if wanted == weight.tensor or wanted in weight.name_parts]
        if not matches:
            missing.append(wanted)
        problems.extend((f"must be int8 (matches {wanted!r}) but is {weight.dtype}", weight)
                        for weight in matches if not weight.is_int8)
    if missing:
        available = sorted({part for weight in weights for part in weight.name_parts})
        raise Int8WeightError(f"{name}: no weight tensor matches {missing}; names present: "
                              f"{available}")
    if problems:
        lines = [f"  {weight.describe()} — {reason}" for reason, weight in problems]
        raise Int8WeightError(f"{name}: {len(problems)} weight tensor(s) not stored as "
                              "required:\n" + "\n".join(lines),
                              [weight for _, weight in problems])
    return weights


@dataclasses.dataclass(frozen=True)
class Int8WeightSize:
    """Size of a model with int8-stored weights: actual bytes and ideal bits.

    The ideal size counts ``bits_per_weight`` bits for each int8-stored weight and the stored
    width (32 for float32) for every other constant element, including the per-channel scales
    of the int8 tensors (where a folded BatchNorm lives).

    Attributes:
        file_bytes: size of the flatbuffer.
        int8_weights: elements of the int8 weight tensors (= their bytes).
        other_parameters: elements of all other constant tensors (biases, float weights,
            scales, shape constants).
        other_bits: their stored bits.
        bits_per_weight: the width given for the int8 weights, or ``None`` when each tensor's
            width was measured as ``ceil(log2(levels))`` of its distinct integer values.
        ideal_bits: ``int8 weights × their width + other_bits``.
        float_bytes: size of the float32 twin, ``None`` when not given.
    """

    file_bytes: int
    int8_weights: int
    other_parameters: int
    other_bits: int
    bits_per_weight: int | None
    ideal_bits: int
    float_bytes: int | None = None

    @property
    def int8_weight_bytes(self) -> int:
        return self.int8_weights

    @property
    def ideal_bytes(self) -> int:
        return math.ceil(self.ideal_bits / 8)

    @property
    def ratio(self) -> float | None:
        """How many times smaller the file is than the float32 twin."""
        return None if self.float_bytes is None else self.float_bytes / self.file_bytes

    def as_dict(self) -> dict[str, Any]:
        return {"file_bytes": self.file_bytes, "int8_weight_bytes": self.int8_weight_bytes,
                "int8_weights": self.int8_weights, "other_parameters": self.other_parameters,
                "other_bits": self.other_bits, "bits_per_weight": self.bits_per_weight,
                "ideal_bits": self.ideal_bits, "ideal_bytes": self.ideal_bytes,
                "float_bytes": self.float_bytes, "ratio": self.ratio}

    def summary(self) -> str:
        width = (f"{self.bits_per_weight} bits" if self.bits_per_weight is not None
                 else "measured bits")
        text = (f"size: {self.file_bytes / 1024:.1f} KiB with {self.int8_weights} int8 weights; "
                f"ideal {self.ideal_bytes / 1024:.1f} KiB ({width} per int8 weight, "
                f"{self.other_parameters} other values)")
        if self.float_bytes is not None:
            text += f"; float32 {self.float_bytes / 1024:.1f} KiB — {self.ratio:.2f}x smaller"
        return text


def int8_weight_size(source: Source, *, bits_per_weight: int | None = None,
                     float_flatbuffer: Source | None = None,
                     name: str | None = None) -> Int8WeightSize:
    """Measure a flatbuffer: bytes, int8 weight bytes and the ideal size in bits.

    Args:
        source: the int8-weight model, bytes or path.
        bits_per_weight: ideal width of an int8 weight (3 for S3 3-bit, 2 for 2-bit); ``None``
            takes ``ceil(log2(distinct values))`` per tensor from the stored integers.
        float_flatbuffer: the float32 twin, for ``float_bytes`` and ``ratio``.
        name: display name for bytes in error messages.

    Returns:
        An ``Int8WeightSize``.

    Raises:
        ValueError: for ``bits_per_weight`` outside 1..8, or data that is not a TFLite model.
        FileNotFoundError: if a path does not exist.
    """
    if bits_per_weight is not None and (isinstance(bits_per_weight, bool)
                                        or bits_per_weight not in range(1, 9)):
        raise ValueError(f"int8_weight_size: bits_per_weight must be in 1..8, got "
                         f"{bits_per_weight!r}")
    data, name = load_tflite_bytes(source, name)
    model, _ = _load_model(data, name)
    int8_buffers = {model.subgraphs[use.subgraph].tensors[use.stored].buffer
                    for use in _weight_inputs(model)
                    if model.subgraphs[use.subgraph].tensors[use.stored].type
                    == schema.TensorType.INT8}
    int8_weights = int8_bits = other = other_bits = 0
    seen = set()
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            raw = _buffer_bytes(model, tensor)
            if raw is None or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            if tensor.buffer in int8_buffers:
                values = np.frombuffer(raw, np.int8)
                width = bits_per_weight or max(1, math.ceil(math.log2(len(np.unique(values)))))
                int8_weights += values.size
                int8_bits += values.size * width
                scales = len(_list_float(tensor.quantization.scale))
                other += scales
                other_bits += 32 * scales
                continue
            bits = _TYPE_BITS.get(_TYPE_NAMES.get(tensor.type, ""), 8)
            count = len(raw) * 8 // bits
            other += count
            other_bits += count * bits
    float_bytes = None
    if float_flatbuffer is not None:
        float_bytes = len(load_tflite_bytes(float_flatbuffer)[0])
    return Int8WeightSize(file_bytes=len(data), int8_weights=int8_weights,
                          other_parameters=other, other_bits=other_bits,
                          bits_per_weight=bits_per_weight, ideal_bits=int8_bits + other_bits,
                          float_bytes=float_bytes)


# --------------------------------------------------------------------------------------------
# Parity


@dataclasses.dataclass(frozen=True)
class Int8ParityReport:
    """Outputs of the int8-weight model against the flatbuffer it was made from and Keras.

    Attributes:
        num_images: images compared.
        max_abs_delta_original: largest |Δ| against the original flatbuffer (float32 twin or
            LCE model) in the LCE interpreter; 0 when the dequantized weights are the original
            weights bit for bit.
        max_abs_delta_tflite: the same in ``tf.lite.Interpreter`` with its default XNNPACK
            delegate, ``None`` when not run (LCE models).
        keras: the ``check_parity`` report against Keras, ``None`` without a model.
        tolerance: bound applied to both deltas.
    """

    num_images: int
    max_abs_delta_original: float
    max_abs_delta_tflite: float | None
    keras: ParityReport | None
    tolerance: float

    @property
    def passed(self) -> bool:
        original = (self.max_abs_delta_original <= self.tolerance
                    and (self.max_abs_delta_tflite is None
                         or self.max_abs_delta_tflite <= self.tolerance))
        return original and (self.keras is None or self.keras.passed)

    def as_dict(self) -> dict[str, Any]:
        return {"num_images": self.num_images,
                "max_abs_delta_original": self.max_abs_delta_original,
                "max_abs_delta_tflite": self.max_abs_delta_tflite,
                "keras": self.keras.as_dict() if self.keras else None,
                "tolerance": self.tolerance, "passed": self.passed}

    def summary(self) -> str:
        text = (f"int8-weight parity on {self.num_images} images: max |Δ| vs original "
                f"{self.max_abs_delta_original:.3g} (LCE interpreter)")
        if self.max_abs_delta_tflite is not None:
            text += f", {self.max_abs_delta_tflite:.3g} (TFLite + XNNPACK)"
        text += f", tolerance {self.tolerance:.3g}"
        if self.keras is not None:
            text += f"; vs Keras: {self.keras.summary()}"
        return f"{text} — {'passed' if self.passed else 'FAILED'}"


def run_tflite(flatbuffer: bytes, images: np.ndarray, *, num_threads: int = 1,
               op_resolver_type: tf.lite.experimental.OpResolverType =
               tf.lite.experimental.OpResolverType.AUTO) -> np.ndarray:
    """Run ``tf.lite.Interpreter`` one image at a time.

    Args:
        flatbuffer: a model without custom ops.
        images: float32 ``(N, ...)`` inputs.
        num_threads: interpreter threads.
        op_resolver_type: the kernels: ``AUTO`` (default delegates, i.e. XNNPACK),
            ``BUILTIN_REF`` (TFLite's reference kernels), ...

    Returns:
        The outputs, ``(N, ...)``.
    """
    interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=num_threads,
                                      experimental_op_resolver_type=op_resolver_type)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in images:
        interpreter.set_tensor(source, image[None].astype(np.float32))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target)[0].copy())
    return np.stack(outputs)


def check_int8_parity(
    int8_flatbuffer: bytes,
    original_flatbuffer: bytes,
    images: np.ndarray,
    *,
    model: tf.keras.Model | None = None,
    tolerance: float = 0.0,
    use_xnnpack: bool = True,
    raise_on_failure: bool = True,
    **keras_parity: Any,
) -> Int8ParityReport:
    """Check that storing weights as int8 changed no output.

    The int8-weight model and the flatbuffer it was made from (the float32 twin, or an LCE
    model) run in the LCE interpreter and, with ``use_xnnpack``, in ``tf.lite.Interpreter``
    with its default XNNPACK delegate; their outputs must agree within ``tolerance`` (default
    0: the dequantized weights are the original weights bit for bit). With ``model`` the
    int8-weight model is also compared with Keras by ``check_parity`` (extra keyword arguments
    go to it); that comparison also measures the original conversion, not only this rewrite.

    Args:
        int8_flatbuffer: the model from ``store_int8_weights``.
        original_flatbuffer: the model it was made from.
        images: preprocessed float32 inputs ``(N, ...)``.
        model: the Keras model, or ``None`` to skip the Keras comparison.
        tolerance: bound on max |Δ| against the original, >= 0.
        use_xnnpack: also compare in ``tf.lite.Interpreter``; skipped for a model with LCE ops,
            which only the LCE interpreter runs.
        raise_on_failure: raise when a comparison fails.
        **keras_parity: options of ``check_parity`` (``max_logit_delta``, ...).

    Returns:
        An ``Int8ParityReport``.

    Raises:
        ValueError: for a negative tolerance, no images, images that do not fit the model, or
            output shapes that differ.
        Int8WeightError: when ``raise_on_failure`` and the outputs differ from the original
            beyond ``tolerance`` or from Keras beyond ``check_parity``'s thresholds.
    """
    if not tolerance >= 0:
        raise ValueError(f"check_int8_parity: tolerance must be >= 0, got {tolerance}")
    images = np.asarray(images)
    if model is not None:
        images = check_parity_images(images, model)
    images = images.astype(np.float32, copy=False)
    if len(images) == 0:
        raise ValueError("check_int8_parity: no images given")

    def delta(run) -> float:
        first, second = run(int8_flatbuffer, images), run(original_flatbuffer, images)
        if first.shape != second.shape:
            raise ValueError(f"check_int8_parity: output shapes differ: int8-weight model "
                             f"{first.shape}, original {second.shape}")
        return float(np.max(np.abs(first.astype(np.float64) - second)))

    lce_delta = delta(run_lce)
    with_lce_ops = read_tflite(int8_flatbuffer).uses_lce_ops
    tflite_delta = delta(run_tflite) if use_xnnpack and not with_lce_ops else None
    keras = None
    if model is not None:
        keras = check_parity(model, int8_flatbuffer, images, raise_on_failure=False,
                             **keras_parity)
    report = Int8ParityReport(num_images=len(images), max_abs_delta_original=lce_delta,
                              max_abs_delta_tflite=tflite_delta, keras=keras,
                              tolerance=float(tolerance))
    if raise_on_failure and not report.passed:
        raise Int8WeightError(f"int8-weight model output differs: {report.summary()}")
    return report
