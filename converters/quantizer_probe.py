"""What a layer's quantizers compute, found by running them on probe values.

A quantizer's ``precision`` attribute is a declaration: plain functions (the ``tf.where`` signs
that LCE's own end-to-end tests pass as ``input_quantizer``) have none, and a class may declare
1 and compute something else. The coverage check needs what runs, so this module calls each
quantizer on deterministic probe values (0, ±1e-7, ±1e-3, ±0.5, ±1, ±2, ±1000 and a dense
spread over [-4, 4], both signs in every channel; a kernel quantizer on tensors of the kernel's
shape, as it may depend on it) and classifies its outputs, channel by channel (the last axis,
the output channels of a kernel):

* ``BINARY``: two values ``±s`` (``s`` may differ per channel: ``magnitude_aware_sign`` and
  ReActNet's weight sign give ``±alpha``). ``unit`` says whether every ``s`` is exactly 1, which
  LCE's binary *input* needs (its converter matches ``select(cond, 1.0, -1.0)`` and larq's
  ``sign(sign(x) + c)``); a *kernel* may have any ``±alpha`` per output channel.
* ``SIGN_WITH_ZERO``: ``±s``, and 0 exactly where the input is 0 (``tf.sign``): meant as a sign,
  but LCE's binary tensors have no 0 (the converter keeps a float ``SIGN``).
* ``LOW_BIT``: at most ``MAX_LOW_BIT_LEVELS`` distinct values (counted as they are, or divided
  by each channel's largest magnitude when that gives fewer, so that per-channel scales do not
  multiply the count), with many inputs per level: the outputs strictly inside the output range
  take at most half as many values as their inputs. Ternary, N2UQ, DoReFa, int8 fake
  quantization, ``{0, 1}``. A float function (identity, clip, tanh) keeps distinct inputs apart
  wherever it does not saturate. An 8-bit grid on a kernel with few weights per channel may
  not meet enough inputs per level and read as float; either way it is not binary.
* ``FLOAT``: anything else, including no quantizer.

A quantizer that raises, returns another shape, a non-float or non-finite value, a constant, or
different outputs for the same input cannot be classified: ``ProbeError`` names the layer and
says why. A layer without an input quantizer gets its input from the layers that feed it
(``tflbnn.RSign``, a sign written as a Keras layer); those are probed the same way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

__all__ = [
    "BINARY",
    "FLOAT",
    "LOW_BIT",
    "MAX_LOW_BIT_LEVELS",
    "SIGN_WITH_ZERO",
    "Computation",
    "ProbeError",
    "input_computation",
    "kernel_computation",
    "probe_quantizer",
]

BINARY = "binary"
SIGN_WITH_ZERO = "sign_with_zero"
LOW_BIT = "low_bit"
FLOAT = "float"

#: More distinct output levels than this (8 bits) count as float.
MAX_LOW_BIT_LEVELS = 256

#: Probe values every channel should see in total, enough to tell 8-bit grids from float.
_VALUES_PER_CHANNEL = 1024
#: Calls of a kernel quantizer at most (each on a kernel-shaped tensor: a quantizer may depend on
#: the shape, e.g. larq's flip-ratio metric, so the kernel shape is kept).
_MAX_KERNEL_CALLS = 32
#: Largest probe tensor, in elements.
_MAX_ELEMENTS = 1 << 21
#: Size given to unknown spatial dimensions of a probed input (fully convolutional models).
_UNKNOWN_DIM = 8
#: Relative tolerance of "the same magnitude". alpha * sign(x) alone is exact, but a
#: straight-through form such as ``x + stop_gradient(alpha * sign(x) - x)`` rounds at the scale
#: of ``x``: the BN-free weight sign on a standardised 3x3x64 kernel was measured 6e-6 apart
#: within one channel. 1e-4 still tells apart any grid with two levels of one sign.
_RTOL = 1e-4
#: Attributes of a layer's weight quantizer and the variable it quantizes.
_KERNEL_QUANTIZERS = (("kernel_quantizer", "kernel"), ("depthwise_quantizer", "depthwise_kernel"))
#: Values every channel meets first: zero, tiny, mid and large magnitudes of both signs.
_SPECIAL_VALUES = (0.0, 1e-7, -1e-3, 0.5, -1.0, 2.0, -1000.0, -1e-7, 1e-3, -0.5, 1.0, -2.0,
                   1000.0)


class ProbeError(ValueError):
    """A quantizer (or a layer feeding a binary layer) whose output cannot be classified."""


@dataclasses.dataclass(frozen=True)
class Computation:
    """What a quantizer (or the layer feeding a binary layer) computes.

    Attributes:
        kind: ``BINARY``, ``SIGN_WITH_ZERO``, ``LOW_BIT`` or ``FLOAT``.
        levels: distinct output values seen per channel at most (after per-channel scaling),
            0 for ``FLOAT``.
        unit: the two binary values are exactly ±1 (every channel); False unless binary.
        description: a phrase for reports, e.g. "±1", "±alpha per output channel", "4 levels".
    """

    kind: str
    levels: int
    unit: bool
    description: str

    @property
    def binary(self) -> bool:
        """A sign (``BINARY`` or ``SIGN_WITH_ZERO``): the layer is meant to be binary."""
        return self.kind in (BINARY, SIGN_WITH_ZERO)

    @property
    def exactly_pm_one(self) -> bool:
        """Exactly ±1 with no 0: what LCE's binary input needs."""
        return self.kind == BINARY and self.unit


#: A tensor that no quantizer touched.
NO_QUANTIZER = Computation(FLOAT, 0, False, "float (no quantizer)")


def _dense_sequence(length: int) -> np.ndarray:
    """A deterministic spread over [-4, 4], a third of it within ±0.25."""
    rng = np.random.default_rng(0)
    index = np.arange(length)
    # Every third value small, so that narrow dead zones (ternary thresholds) are sampled too;
    # signs alternate independently of that.
    dense = np.where(index % 3 == 2, rng.uniform(0.0, 0.25, length),
                     rng.uniform(0.0, 4.0, length))
    dense[index % 2 == 1] *= -1.0
    return dense


def probe_values(shape: tuple[int, ...], call: int = 0) -> np.ndarray:
    """Deterministic probe values of ``shape``.

    Each channel (last axis) starts with the special values (all of them when it has room,
    otherwise a window that moves with ``call``, so that over the calls it meets them all), then
    takes its own window of the dense spread, which also moves with ``call``.

    Args:
        shape: the tensor shape, fully known.
        call: the index of the call.

    Returns:
        A float64 array of ``shape``.
    """
    channels = shape[-1] if shape else 1
    per_channel = int(np.prod(shape[:-1])) if shape else 1
    specials = np.asarray(_SPECIAL_VALUES)
    dense = _dense_sequence(max(4 * _VALUES_PER_CHANNEL, per_channel + 7 * channels))
    room = min(len(specials), per_channel)
    rows = np.arange(per_channel)[:, None]
    columns = np.arange(channels)[None, :]
    special = specials[(rows + call * room + columns) % len(specials)]
    spread = dense[(rows - room + 7 * columns + call * per_channel) % len(dense)]
    return np.where(rows < room, special, spread).reshape(shape)


def _describe(kind: str, scales: np.ndarray, levels: np.ndarray | None = None,
              scaled: bool = False) -> str:
    """A phrase for reports; ``levels`` are a low-bit quantizer's values (normalised to the
    largest magnitude per channel when ``scaled``)."""
    if kind == BINARY:
        if np.all(scales == 1.0):
            return "±1"
        if np.allclose(scales, scales.flat[0], rtol=_RTOL):
            return f"±{scales.flat[0]:.6g}"
        return "±alpha per output channel"
    if kind == SIGN_WITH_ZERO:
        return "±1 and 0 at 0 (like tf.sign)" if np.all(scales == 1.0) else "±alpha and 0 at 0"
    if kind == LOW_BIT:
        text = f"{len(levels)} levels"
        if len(levels) <= 4:
            text += f" {{{', '.join(f'{v:.4g}' for v in levels)}}}"
        return text + (" × a per-channel scale" if scaled else "")
    return "float"


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, merging those within float32 rounding of each other."""
    ordered = np.sort(values.ravel())
    if ordered.size == 0:
        return ordered
    tolerance = 1e-5 * max(float(np.abs(ordered).max()), 1e-30)
    return ordered[np.concatenate([[True], np.diff(ordered) > tolerance])]


def _collapses(inner: list[tuple[np.ndarray, np.ndarray | None]],
               outputs: list[np.ndarray]) -> bool:
    """Whether, in every channel, the inner outputs take at most half as many distinct values as
    their inputs (pooled over the calls); without inputs, as there are output values."""
    for c in range(outputs[0].shape[-1]):
        if inner[0][1] is None:
            values = np.concatenate([y[:, c] for y in outputs])
            distinct_in, distinct_out = values.size, _distinct(values).size
        else:
            distinct_in = _distinct(np.concatenate([x[mask[:, c], c]
                                                    for mask, x in inner])).size
            distinct_out = _distinct(np.concatenate([y[mask[:, c], c] for (mask, _), y
                                                     in zip(inner, outputs)])).size
        if 2 * distinct_out > distinct_in:
            return False
    return True


def _classify(inputs: list[np.ndarray | None], outputs: list[np.ndarray]) -> Computation:
    """Classify ``outputs[i] = f(inputs[i])`` (see the module docstring).

    ``inputs[i]`` may be None when the output has another shape (a layer that is not
    element-wise): zeros and inner levels then cannot be related to inputs.
    """
    channels = outputs[0].shape[-1] if outputs[0].ndim else 1
    raw, normalised, scales = [], [], []
    sign_like = True  # every call-channel is ±s, with 0 only at 0 inputs
    zero_at_zero = False
    # Per call and channel, the values strictly inside the output range (below the largest and
    # above the smallest): a quantizer maps many inputs to each inner level, while a float
    # function (identity, clip, tanh) keeps distinct inputs apart wherever it does not saturate.
    inner = []
    for x, y in zip(inputs, outputs):
        y2 = y.reshape(-1, channels)
        scale = np.abs(y2).max(axis=0)
        scales.append(scale)
        raw.append(y2)
        normalised.append(y2 / np.where(scale > 0, scale, 1.0))
        magnitude = np.abs(y2)
        on_scale = np.isclose(magnitude, scale, rtol=_RTOL, atol=0.0) & (scale > 0)
        zeros = magnitude == 0
        x2 = None if x is None else x.reshape(-1, channels)
        zeros_ok = x2 is None or bool(np.all(~zeros | (x2 == 0)))
        if not np.all(on_scale | zeros) or not zeros_ok:
            sign_like = False
        zero_at_zero = zero_at_zero or bool(np.any(zeros & (scale > 0)))
        inner.append(((y2 > y2.min(axis=0)) & (y2 < y2.max(axis=0)), x2))
    scales = np.stack(scales)
    raw_pooled, normalised_pooled = np.concatenate(raw), np.concatenate(normalised)
    raw_levels = [_distinct(raw_pooled[:, c]) for c in range(channels)]
    scaled_levels = [_distinct(normalised_pooled[:, c]) for c in range(channels)]
    # A fixed grid has fewest levels as it is; a grid scaled per call and channel (by the mean
    # magnitude of a kernel) once divided by that scale.
    scaled = max(map(len, scaled_levels)) < max(map(len, raw_levels))
    per_channel = scaled_levels if scaled else raw_levels
    levels = max(map(len, per_channel))
    if levels == 1:
        raise ProbeError(f"it returns the same value ({float(outputs[0].flat[0]):.6g}) for every "
                         "probe input")
    if sign_like and {-1.0, 1.0} <= set(np.unique(np.sign(raw_pooled)).tolist()):
        kind = SIGN_WITH_ZERO if zero_at_zero else BINARY
        unit = kind == BINARY and bool(np.all(scales == 1.0))
        return Computation(kind, levels, unit, _describe(kind, scales))
    if levels <= MAX_LOW_BIT_LEVELS and _collapses(inner, normalised if scaled else raw):
        values = _distinct(np.concatenate(per_channel))
        return Computation(LOW_BIT, levels, False,
                           _describe(LOW_BIT, scales, values, scaled=scaled))
    return Computation(FLOAT, 0, False, "float")


def _call(function: Callable[[tf.Tensor], Any], x: np.ndarray, dtype: tf.DType) -> np.ndarray:
    try:
        result = function(tf.constant(x, dtype=dtype))
        result = tf.convert_to_tensor(result)
    except Exception as error:  # noqa: BLE001 - user code: any failure means "cannot tell"
        raise ProbeError(f"calling it on a {list(x.shape)} {dtype.name} tensor raised "
                         f"{type(error).__name__}: {error}") from None
    if not result.dtype.is_floating:
        raise ProbeError(f"it returns {result.dtype.name} values, not floats")
    values = result.numpy().astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ProbeError("it returns NaN or infinite values for finite inputs")
    return values


def probe_quantizer(quantizer: Callable[[tf.Tensor], Any], shape: tuple[int, ...], *,
                    calls: int = 1, dtype: tf.DType = tf.float32) -> Computation:
    """Run ``quantizer`` on ``calls`` probe tensors of ``shape`` and classify what it computes.

    Args:
        quantizer: a larq quantizer object, a function, or any element-wise callable.
        shape: the fully known shape to call it with.
        calls: how many probe tensors (a small kernel needs several to see enough values).
        dtype: the tensor dtype.

    Returns:
        A ``Computation``; ``NO_QUANTIZER`` for ``None``.

    Raises:
        ProbeError: saying why the output cannot be classified (not naming the layer).
    """
    if quantizer is None:
        return NO_QUANTIZER
    if isinstance(quantizer, tf.keras.layers.Layer) and not quantizer.built:
        # Calling it would build it: probe a copy, which computes what its first call would.
        try:
            quantizer = type(quantizer).from_config(quantizer.get_config())
        except Exception as error:  # noqa: BLE001 - user code: any failure means "cannot tell"
            raise ProbeError(f"it is a layer that was never built and cannot be copied to be "
                             f"probed ({type(error).__name__}: {error})") from None
    inputs, outputs = [], []
    for call in range(calls):
        x = probe_values(shape, call)
        y = _call(quantizer, x, dtype)
        if y.shape != x.shape:
            raise ProbeError(f"it returns shape {list(y.shape)} for an input of shape "
                             f"{list(x.shape)}; a quantizer must be element-wise")
        if call == 0 and not np.array_equal(_call(quantizer, x, dtype), y):
            raise ProbeError("it returns different values for the same input")
        # Compare with the values the quantizer actually saw (after the cast to dtype).
        inputs.append(x.astype(dtype.as_numpy_dtype).astype(np.float64))
        outputs.append(y)
    return _classify(inputs, outputs)


def _known_shape(shape, what: str) -> tuple[int, ...]:
    """``shape`` without its batch axis unknowns; unknown spatial sizes become ``_UNKNOWN_DIM``."""
    dims = list(tf.TensorShape(shape).as_list())
    if not dims or dims[-1] is None:
        raise ProbeError(f"{what} has no known channel (last) axis: {shape}")
    batch_values = int(np.prod([d or _UNKNOWN_DIM for d in dims[1:-1]] or [1]))
    batch = max(1, min(math.ceil(_VALUES_PER_CHANNEL / batch_values),
                       _MAX_ELEMENTS // max(1, batch_values * dims[-1])))
    return (batch, *[d or _UNKNOWN_DIM for d in dims[1:]])


def _weight_quantizer(layer: tf.keras.layers.Layer) -> tuple[str, Any, str] | None:
    for attribute, variable in _KERNEL_QUANTIZERS:
        if hasattr(layer, attribute):
            return attribute, getattr(layer, attribute), variable
    return None


def kernel_computation(layer: tf.keras.layers.Layer) -> Computation | None:
    """What ``layer``'s kernel quantizer computes on tensors of its kernel's shape.

    Args:
        layer: any Keras layer.

    Returns:
        ``None`` when the layer has no ``kernel_quantizer`` or ``depthwise_quantizer`` attribute
        (not a larq quantized layer), ``NO_QUANTIZER`` when it is ``None``, else the
        classification.

    Raises:
        ProbeError: "layer 'x': cannot tell what its kernel_quantizer computes: <why>".
    """
    found = _weight_quantizer(layer)
    if found is None:
        return None
    attribute, quantizer, variable_name = found
    if quantizer is None:
        return NO_QUANTIZER
    variable = getattr(layer, variable_name, None)
    try:
        if variable is None:
            raise ProbeError(f"the layer has no {variable_name} (it is not built)")
        shape = tuple(int(d) for d in variable.shape)
        per_channel = int(np.prod(shape[:-1])) if shape else 1
        calls = max(1, min(_MAX_KERNEL_CALLS, math.ceil(_VALUES_PER_CHANNEL / per_channel)))
        return probe_quantizer(quantizer, shape, calls=calls, dtype=tf.as_dtype(variable.dtype))
    except ProbeError as error:
        raise ProbeError(f"layer {layer.name!r}: cannot tell what its {attribute} computes: "
                         f"{error}") from None


def _output_computation(source: tf.keras.layers.Layer) -> Computation:
    """What ``source`` outputs for probe inputs (it feeds a layer without input quantizer)."""
    if isinstance(source, tf.keras.layers.InputLayer):
        return Computation(FLOAT, 0, False, "the model input")
    input_shape = source.get_input_shape_at(0)
    if isinstance(input_shape, list) or (isinstance(input_shape, tuple) and input_shape
                                         and isinstance(input_shape[0], (tuple, list))):
        return Computation(FLOAT, 0, False,
                           f"the output of {source.name!r} ({type(source).__name__}), which "
                           "combines several tensors")
    shape = _known_shape(input_shape, f"the input of {source.name!r}")
    x = probe_values(shape)
    dtype = tf.as_dtype(source.compute_dtype or "float32")

    def call(tensor):
        return source(tensor, training=False)

    y = _call(call, x, dtype)
    if not np.array_equal(_call(call, x, dtype), y):
        raise ProbeError("it returns different values for the same input")
    same_shape = y.shape == x.shape
    computed = _classify([x.astype(dtype.as_numpy_dtype).astype(np.float64) if same_shape
                          else None], [y])
    return dataclasses.replace(
        computed, description=f"{computed.description} from {source.name!r} "
                              f"({type(source).__name__})")


def _inbound_layers(layer: tf.keras.layers.Layer) -> list[tf.keras.layers.Layer]:
    found: dict[int, tf.keras.layers.Layer] = {}
    for node in layer.inbound_nodes:
        sources = node.inbound_layers
        for source in sources if isinstance(sources, (list, tuple)) else [sources]:
            found.setdefault(id(source), source)
    return list(found.values())


def _passes_pm_one(quantizer, layer: tf.keras.layers.Layer) -> bool:
    """Whether ``quantizer`` returns ±1 inputs unchanged (larq's ``NoOp`` does)."""
    shape = _known_shape(layer.get_input_shape_at(0), f"the input of {layer.name!r}")
    x = np.where(probe_values(shape) >= 0, 1.0, -1.0)
    return np.array_equal(_call(quantizer, x, tf.float32), x)


def input_computation(layer: tf.keras.layers.Layer) -> Computation:
    """What ``layer`` multiplies its kernel with: its input quantizer's output, or, without one
    (or with one that leaves ±1 unchanged, as larq's ``NoOp(precision=1)``), what the layers
    feeding it output.

    Args:
        layer: a built Keras layer in a functional or Sequential model.

    Returns:
        The classification; ``FLOAT`` when fed by the model input or by several layers that do
        not all output the same binary kind.

    Raises:
        ProbeError: "layer 'x': cannot tell what its input_quantizer computes: <why>", or the
            same about a layer feeding it.
    """
    quantizer = getattr(layer, "input_quantizer", None)
    if quantizer is not None:
        try:
            shape = _known_shape(layer.get_input_shape_at(0), f"the input of {layer.name!r}")
            computed = probe_quantizer(quantizer, shape, dtype=tf.as_dtype(layer.compute_dtype))
            if computed.kind != FLOAT or not _passes_pm_one(quantizer, layer):
                return computed
        except ProbeError as error:
            raise ProbeError(f"layer {layer.name!r}: cannot tell what its input_quantizer "
                             f"computes: {error}") from None
    sources = _inbound_layers(layer)
    if not sources:
        return Computation(FLOAT, 0, False, "no layer feeds it")
    computed = []
    for source in sources:
        try:
            computed.append(_output_computation(source))
        except ProbeError as error:
            raise ProbeError(f"layer {layer.name!r}: cannot tell what {source.name!r} "
                             f"({type(source).__name__}), which feeds it, computes: "
                             f"{error}") from None
    first = computed[0]
    if all(c.kind == first.kind and c.unit == first.unit for c in computed):
        return first
    return next(c for c in computed if not c.exactly_pm_one)
