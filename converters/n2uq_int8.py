"""Full-integer (int8) TFLite models of N2UQ networks, with activations exactly on the levels.

N2UQ's learnable-threshold quantizer (LTQ, :class:`tflbnn.n2uq.N2UQActivationQuantizer`) has
non-uniform thresholds but *uniform* outputs ``i · Δ · scale2``, and the N2UQ weights are
``α_c · k / K`` with odd ``k`` (``K = 2^n − 1``). So a quantized conv needs only integer
arithmetic: int8 levels in, int8 weights, int32 accumulation. This module builds that model with
the stock TFLite converter (TensorFlow 2.16.2), repairs two converter defects in the result, and
checks it.

**The lowering** (:func:`export_n2uq_int8_model`). The trained Keras model is cloned
(``tf.keras.models.clone_model`` with a ``clone_function``) and, per layer:

* a Larq ``QuantConv2D`` / ``QuantDepthwiseConv2D`` / ``QuantDense`` with N2UQ quantizers
  becomes one :class:`N2UQInt8Conv2D` / :class:`N2UQInt8DepthwiseConv2D` / :class:`N2UQInt8Dense`
  of the same name, which computes

  1. the **integer levels** of the LTQ (:func:`staircase`): the input gets a per-channel offset
     and is fake-quantized to int8 (``u``) over a range covering 0 and every threshold with a
     two-step margin (below the first threshold everything is level 0 and above the last the
     top level, so nothing outside that range matters); ``scale1`` and, when an ``RPReLU``
     alone feeds the LTQ, the whole monotone ``RPReLU`` are folded into per-channel thresholds
     (the ``RPReLU`` becomes an ``Identity``), and every threshold ``g`` is the grid value where
     the *original* float32 decision changes (:func:`_fit_grid`). So ``u ≥ g`` on int8 values
     (``u ≤ g`` for ``scale1 < 0``) is exactly the original LTQ decision on the rounded input.
     Two convolutions that XNNPACK runs in int8 count the passed thresholds:

     - **indicators**: a 1×1 ``DEPTHWISE_CONV_2D`` on ``u`` with depth multiplier K (output
       channel ``c·K + k``), kernel +1 (−1 for ``u ≤ g``), stored as int8 ±127 at scale 1/127,
       and bias ``∓g`` plus half an input step, so that the int32 accumulator is
       ``±127 · (u_q − g_q) + 64``: at least 64 when the threshold is passed, at most −63 when
       not. The output's fake quant ``[0, 255 · s_u / (127 · 4)]`` makes the requantization
       multiplier 4, so the indicator saturates at int8 127 or −128 (real 0), nothing between;
     - **levels**: a 1×1 ``CONV_2D`` (``K·C → C``, no bias) adds each channel's K indicators
       with int8 weight 127 (0 elsewhere); its fake quant ``[0, 255 · Δ·|s2|]`` makes the
       multiplier ``1 / (127 · 255)``, so the LTQ output is int8 with scale ``Δ·|s2|``
       (float32-equal to the Keras level ``float32(Δ)·s2``), zero point −128, level ``i``
       stored as ``i − 128``, ``i`` the number of passed thresholds.

     In float the indicator fake quant clamps to 0 or its maximum as well, so the export model
     computes the same levels as the int8 model;
  2. the linear op on the **N2UQ kernel values**, fake-quantized per output channel with scale
     ``α_c·|f_c| / (K·m)``, ``m = ⌊127 / K⌋`` (42 for 2 bits, 18 for 3, 8 for 4), narrow range,
     so the int8 weights are exactly ``k · m``: lossless. ``f_c`` is the BatchNormalization that
     alone follows the conv, folded here (``f = γ / √(var + ε)``; the BN becomes an ``Identity``)
     so that the converter has nothing left to fold into the kernel. A negative ``scale2``
     moves into the kernel (``levels · s2 · W = levels · |s2| · (−W)``);
* a standalone ``N2UQActivationQuantizer`` layer becomes an :class:`N2UQLevels` layer;
* any other ``tflbnn.layers.RPReLU`` (in the ResNet-18 the 8 after the residual adds, which
  feed an add or pooling besides the next LTQ) becomes :class:`RPReLUInt8`: with
  ``s = x + shift_in``, ``ζ = shift_out`` and every slope ``β < 1`` (the trained slopes are in
  (0.04, 0.53)), ``RPReLU = β·s + (1 − β)·max(s, 0) + ζ`` is two 1×1 ``DEPTHWISE_CONV_2D`` on
  ``x`` (weight ``β``, bias ``ζ + β·shift_in``; weight ``1 − β``, bias ``(1 − β)·shift_in``,
  fused ``RELU``) and an int8 ``ADD``, all delegated to XNNPACK. A layer with a slope of 1 or
  more (which would need a negative factor after the ``ReLU``) keeps the bias + Keras ``PReLU``
  + bias form, int8 ``ADD``/``PRELU``/``ADD``, which XNNPACK does not delegate. The two
  intermediate tensors get the converter's min/max (the input is already clamped to its range,
  so theirs are bounded by it: on the ResNet-18 their steps are 0.69–0.85 and 0.44–0.59 of the
  input's). ``RPReLU``'s own formula ``max(s, 0) + β·min(s, 0)`` does not survive int8
  calibration: ``MINIMUM`` must have equal input and output scales, the quantizer gives the
  shared input the ``min(s, 0)`` range ``[−0.66, 0]`` and every positive value becomes 0
  (measured on conv + RPReLU + pool + dense: max |Δlogit| 0.37 for logits of at most 0.42; with
  the ``PRELU`` form of ``RPReLUInt8`` 0.005). This affects every int8 conversion of
  ``RPReLU``, not only N2UQ;
* everything else (the float stem conv, BN, adds, pooling, the float classifier) is copied with
  its weights and gets int8 quantization on representative images. Each of those float tensors
  gets the ``[0.1 %, 99.9 %]`` percentile range of its values in the export model
  (:func:`activation_ranges`, a fake quant on the layer's output, :class:`RangedOutput`) instead
  of the converter's min/max, which a few extreme values set: the int8 steps of the residual
  stream shrink 1.4–1.8× (e.g. stem 0.032 → 0.018, first add 0.058 → 0.040 on a 4-bit
  ResNet-18). The model output (clamping logits would reorder the clamped classes) and outputs
  that only feed a BN or ReLU (the converter fuses those) keep the calibrated min/max.

Measured facts the lowering is built around (TensorFlow 2.16.2):

* the offset makes the compared value ``u`` a tensor of its own (a non-zero ``ADD`` is never
  removed): a fake quant directly on a tensor that also feeds a residual path left ``PRELU`` in
  float with ``DEQUANTIZE``/``QUANTIZE`` around it;
* the LTQ was first lowered to int8 ``GREATER_EQUAL`` + ``SELECT_V2`` chains: exact, but XNNPACK
  delegates neither, so every LTQ cut the delegated graph and ran on TFLite's reference
  kernels. On the trained 2-bit width-0.25 ResNet-18 (28×28 input, TFLite with XNNPACK, one
  thread) that took 5.7 ms per image in 25 XNNPACK partitions; the two convolutions took
  1.5 ms, still in 9 partitions while the 8 unfolded ``RPReLUInt8`` were int8 ``PRELU``, which
  XNNPACK does not delegate (with a ``RELU`` in their place, for timing only, 0.81 ms in one
  partition). Both LTQ lowerings give bit-identical logits on 1,000 test images, with and
  without XNNPACK;
* with the depthwise form of ``RPReLUInt8`` the whole ResNet-18 is one XNNPACK partition:
  0.82–0.85 ms against 1.47–1.56 ms with ``PRELU`` and 1.20–1.25 ms for the float32 twin
  (two sessions; medians of 6–8 interleaved rounds of 200 runs, one thread); at 4 bits 1.12
  against 1.79 ms. Summing the two ReLU halves ``[max(s, 0), max(−s, 0)]`` (one depthwise
  conv, multiplier 2) with a dense 1×1 ``CONV_2D`` ``2C → C`` (weights ``1, −β``) is also one
  partition but slower: 1.02 against 0.85 ms in the same rounds. The rounding of the residual
  stream changes: top-1 agreement with Keras on the first 1,000 test images 95.2 % → 96.3 %
  with XNNPACK, 96.6 % → 95.5 % with the reference kernels (mean |Δlogit| unchanged at 0.41;
  at 4 bits 98.9 → 98.8 % and 98.7 → 98.8 %), i.e. noise of the size the chaos described
  below gives;
* the dense summing conv costs ``K·C`` MACs per output value, yet it is faster than a grouped
  ``CONV_2D`` (C groups of K → 1, which XNNPACK runs slowly): 1.51 against 1.95 ms on that
  ResNet-18, 1.78 against 2.03 ms on the same network at 4 bits; ``RESHAPE`` + ``SUM`` is not
  delegated;
* XNNPACK runs an int8 ``ADD`` only if both input-to-output scale ratios are below 256
  (``xnn_create_add_nd_qs8``), so the step of ``u`` is kept at or above 1/256 (:func:`_fit_grid`);
* the converter stores the ±1 and block kernels exactly by itself (``max|w| / 127`` scales give
  ±127), and LTQs of equal width share one ±1 kernel and one summing-kernel buffer, which is
  harmless (equal integers); on the ResNet-18 the staircases take 117 KB more than the
  comparison form did (926,536 against 809,232 bytes), mostly per-channel quantization
  parameters and the 4 distinct summing kernels (65 KB); the depthwise ``RPReLUInt8`` add 26 KB
  more (952,792 bytes; per-channel parameters of 2 × 480 channels). The biases get a layer-dependent
  fraction of an accumulator unit (rounded away in int8) so that identical LTQs keep biases of
  their own.

**Converter defects repaired** (:func:`restore_exact_kernels`): with calibration the converter
ignores the weight fake quant and re-quantizes every kernel with ``max|w_c|/127`` (a 2-bit
``±1/3`` level becomes 42 instead of 42.33), and it quantizes biases with the *calibrated* range
of the conv input instead of the input's final quantization (the LTQ output seen as levels 0..2
gives a bias 127.5× too large: top-1 agreement 31 %). The pass rewrites the exact kernels, their
scales and every inconsistent bias in place in the flatbuffer, and writes the staircase integers
(indicator kernels and biases from the export thresholds on the flatbuffer's int8 grid of ``u``,
summing kernels), which makes them exact by construction rather than by the converter's float
rounding.

**Inputs and outputs** are float32 by default, with one ``QUANTIZE`` after the input and one
``DEQUANTIZE`` before the output: the model takes the same preprocessed images as every other
tflbnn model (classify, parity, the Android demo), and the two boundary ops are the only float
ops. ``inference_io_type="int8"`` gives int8 input and output instead; their scale and zero point
are in :class:`N2UQInt8Check` (``input_quantization``, ``output_quantization``).

**Verification** (:func:`check_n2uq_int8`) reads the flatbuffer back; see its docstring for the
exact rules (which non-int8 tensors are legitimate and why). **Parity**
(:func:`check_n2uq_int8_parity`) compares the int8 model with the *original* Keras model on real
images through :func:`tflbnn.converters.parity.check_parity`.

How close the models are. Measured on Fashion-MNIST: the test's two-block model (40 steps on
1,500 images, 500 held-out images) and ``n2uq_resnet18`` (width 0.25, ``stem="small"``, 300 Adam
steps of 64 on the 10,000 embedded training images, ~83 % accuracy; agreement on the embedded test
images, 200 training images for calibration):

* export model with ``quantize_ltq_inputs=False`` against Keras: equal up to float32 rounding of
  the BN fold and the kernel fake quant (max |Δ| ≤ 2e-6 of the logit range, same decisions);
* export model with int8 LTQ inputs: its levels are the original LTQ of the rounded input,
  exactly;
* TFLite against Keras: the levels, indicators and weights are exact, every float part is int8.
  Top-1 agreement, calibrated min/max → percentile ranges: ResNet-18 4 bits 98.6 % → 98.9 %
  (2,000 images; mean |Δlogit| 0.122 → 0.091 on 500), ResNet-18 2 bits 94.7 % → 94.5 % (1,000
  images), test model 2 bits 94.8 % → 95.2 %, 4 bits 97.0 % → 97.2 % (500 images; median
  relative logit difference 0.039 → 0.033 and 0.039 → 0.021). The 99 %
  asked for is not reached at 2 bits, and no int8 range choice can reach it: the N2UQ networks
  are chaotic. The ResNet-18's Keras model against *itself* on inputs with uniform noise of
  ±1e-5 / ±1e-4 / ±1e-3 (a quarter of one input step) agrees 99.4 / 98.0 / 95.4 % at 2 bits and
  99.4 / 99.8 / 99.0 % at 4 bits (500 images). ±1e-3 flips 0.1 % of the first LTQ's elements,
  and each block multiplies the flips (0.7 %, 2.3 %, 5 %, …, 7–17 % of the elements of every
  LTQ from the second stage on). The export model with a float32 residual stream but LTQ inputs
  on their 8-bit grid (step ≥ 1/256, nothing else rounded) agrees 95.8 % at 2 bits
  (99.4 % at 4 bits); also rounding every float tensor to the flatbuffer's int8 scales leaves
  95.8 % (98.6 %). So at 2 bits the limit is that LTQ inputs are 8-bit at all, not the
  calibration, the residual stream or the number of calibration images; 99 % would need LTQ
  inputs accurate to ~1e-5. The float32 TFLite conversion agrees 100 %. The int8 models classify
  as well as Keras (accuracy within a point).

On the fully trained width-0.25 ResNet-18s of ``benchmarks/lowbit_fashion_mnist.py`` (10,000
test images, 500 training images for calibration, TFLite with XNNPACK) the int8 models agree
with Keras on 96.40 % (2 bits), 98.32 % (3 bits) and 98.96 % (4 bits) of the images, with
deployed accuracy within 0.22 points of Keras.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from typing import Any, Iterable, Sequence

from tflbnn import _backend  # noqa: F401

import larq as lq
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from tflbnn.converters.flatbuffer import (Source, _indices, _op_code_name, _TYPE_NAMES,
                                          load_tflite_bytes)
from tflbnn.converters.lce import convert_float
from tflbnn.converters.parity import ParityReport, check_parity, check_parity_images
from tflbnn.converters.size import SizeReport
from tflbnn.layers import RPReLU
from tflbnn.n2uq import (MIN_INTERVAL, N2UQActivationQuantizer, N2UQWeightQuantizer,
                         _resolve_axes)

__all__ = [
    "DEFAULT_INT8_MAX_RELATIVE_DELTA",
    "DEFAULT_RANGE_TAIL",
    "INT8_IO_TYPES",
    "LEVELS_ZERO_POINT",
    "LevelsSpec",
    "N2UQInt8Check",
    "N2UQInt8Conv2D",
    "N2UQInt8Dense",
    "N2UQInt8DepthwiseConv2D",
    "N2UQInt8Error",
    "N2UQLevels",
    "RPReLUInt8",
    "RangedOutput",
    "WeightSpec",
    "activation_ranges",
    "check_n2uq_int8",
    "check_n2uq_int8_parity",
    "convert_n2uq_int8",
    "export_n2uq_int8_model",
    "int8_export_specs",
    "ltq_thresholds",
    "n2uq_int8_size",
    "restore_exact_kernels",
    "staircase",
    "weight_multiplier",
]

#: Zero point of every LTQ output tensor: level ``i`` is stored as ``i - 128``.
LEVELS_ZERO_POINT = -128
#: ``inference_io_type`` values of :func:`convert_n2uq_int8`.
INT8_IO_TYPES = ("float32", "int8")
#: Default bound on the median per-image relative logit difference of the int8 model against
#: Keras (``r`` of :mod:`tflbnn.converters.parity`). Every float activation of the model is
#: rounded to 8 bits, so the logits move by a few output quantization steps, unlike an LCE
#: model's float32 rounding; measured medians on the test models are 0.01–0.03.
DEFAULT_INT8_MAX_RELATIVE_DELTA = 0.1

_INT8_STEPS = 255          # an 8-bit fake quant has 256 levels
_NARROW_MAX = 127          # narrow-range int8 weights: -127..127, zero point 0
_MARGIN_STEPS = 2          # grid steps kept outside the thresholds, see _fit_grid
#: Smallest step of the compared value u: keeps the offset ADD in XNNPACK (_fit_grid).
_MIN_INPUT_STEP = 1.01 / 256
_COMPARISONS = {"greater_equal": tf.math.greater_equal, "less_equal": tf.math.less_equal}
#: Name scope of the staircase ops inside their layer's scope (how the flatbuffer names them).
_STAIRCASE_SCOPE = "ltq"
#: Indicator accumulator ``127 · (u_q - g_q) + 64`` (``-127 · ...`` for ``less_equal``): the
#: bias part that puts the sign change between ``u_q = g_q - 1`` and ``u_q = g_q``.
_INDICATOR_BIAS = 64
#: Requantization multiplier ``s_u · (1/127) / s_ind`` of the indicator convolution: 64 · 4 =
#: 256 saturates at 127, -63 · 4 at -128 (XNNPACK accepts multipliers below 256).
_INDICATOR_MULTIPLIER = 4
_LINEAR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Constant int32 operands that are legitimately int32 in a full-integer model, by op: biases
# (accumulator scale s_in·s_w, the int8 kernels add them in int32) and shapes, axes, paddings,
# sizes and indices (integers, not activations).
_INT32_OPERANDS = {
    "CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {0, 3},
    "RESHAPE": {1}, "MEAN": {1}, "SUM": {1}, "REDUCE_MAX": {1}, "REDUCE_MIN": {1},
    "PAD": {1}, "PADV2": {1}, "MIRROR_PAD": {1}, "TRANSPOSE": {1}, "SLICE": {1, 2},
    "STRIDED_SLICE": {1, 2, 3}, "RESIZE_BILINEAR": {1}, "RESIZE_NEAREST_NEIGHBOR": {1},
    "BROADCAST_TO": {1}, "TILE": {1}, "GATHER": {1}, "SPLIT": {0}, "EXPAND_DIMS": {1},
}


# --------------------------------------------------------------------------------------------
# Grids and thresholds


def _fake_quant(values, minimum: float, maximum: float):
    return tf.quantization.fake_quant_with_min_max_args(values, min=minimum, max=maximum,
                                                        num_bits=8)


def _fake_quant_grid(minimum: float, maximum: float) -> np.ndarray:
    """The 256 float32 values ``FakeQuantWithMinMaxArgs(minimum, maximum)`` can output.

    TensorFlow nudges the range so that 0 is a grid point; rather than re-deriving its float32
    arithmetic, the grid is read off the op itself on a probe 16 times finer than a step.
    """
    span = maximum - minimum
    probe = np.linspace(minimum - span, maximum + span, 48 * (_INT8_STEPS + 1), dtype=np.float32)
    grid = np.unique(_fake_quant(probe, minimum, maximum).numpy())
    if len(grid) != _INT8_STEPS + 1:  # a probe this fine hits every level
        raise AssertionError(f"fake-quant grid of [{minimum}, {maximum}] has {len(grid)} "
                             "values, expected 256")
    return grid


def ltq_thresholds(quantizer: N2UQActivationQuantizer) -> np.ndarray:
    """The K thresholds ``d_{i-1} + a_i / 2`` of a built LTQ, in float32 as its ``call`` has them.

    Computed with the quantizer's own TensorFlow ops (clamped lengths, cumsum, midpoints), so a
    comparison with them gives bit-identical decisions.

    Args:
        quantizer: a built ``N2UQActivationQuantizer``.

    Returns:
        float32 array of ``2^bits - 1`` increasing thresholds (on ``x · input_scale``).

    Raises:
        ValueError: if the quantizer has no weights yet (not built), naming it.
    """
    if not quantizer.built or not hasattr(quantizer, "intervals"):
        raise ValueError(f"N2UQ activation quantizer {quantizer.name!r} is not built: it has no "
                         "thresholds to export (call the model once first)")
    lengths = tf.where(quantizer.intervals > MIN_INTERVAL, quantizer.intervals,
                       tf.constant(MIN_INTERVAL, quantizer.intervals.dtype))
    ends = quantizer.start + tf.cumsum(lengths)
    starts = tf.concat([tf.reshape(quantizer.start, [1]), ends[:-1]], axis=0)
    return (starts + lengths / 2).numpy().astype(np.float32)


def _level_step(quantizer: N2UQActivationQuantizer) -> np.float32:
    """``|Δ · scale2|`` in float32: the Keras level 1 value ``float32(Δ) · scale2``, unsigned."""
    delta = np.float32(2.0 / quantizer.num_intervals)
    return np.float32(abs(delta * np.float32(quantizer.output_scale.numpy())))


def _output_maximum(step: np.float32, owner: str) -> float:
    """A fake-quant maximum whose scale ``maximum / 255`` is exactly ``step``.

    TensorFlow's fake-quant divides in float32; the TFLite quantizer may divide in double and
    round to float32. ``float32(255 · step)`` usually works for both; otherwise a neighbouring
    float32 does.
    """
    candidate = np.float32(_INT8_STEPS * np.float64(step))
    for offset in (0, 1, -1, 2, -2, 3, -3):
        maximum = np.float32(candidate + offset * np.spacing(candidate))
        if (np.float32(maximum / np.float32(_INT8_STEPS)) == step
                and np.float32(np.float64(maximum) / _INT8_STEPS) == step):
            return float(maximum)
    raise ValueError(f"{owner}: no float32 range [0, M] has scale exactly {step!r}")


def _rprelu(x: np.ndarray, shift_in: np.float32, slope: np.float32,
            shift_out: np.float32) -> np.ndarray:
    """``tflbnn.layers.RPReLU.call`` for one channel, in float32 with the same operations."""
    shifted = x + shift_in
    return (np.maximum(shifted, np.float32(0)) + slope * np.minimum(shifted, np.float32(0))
            + shift_out).astype(np.float32)


def _rprelu_inverse(values: np.ndarray, shift_in: float, slope: float,
                    shift_out: float) -> np.ndarray:
    """Where ``RPReLU`` (slope > 0, increasing) reaches ``values``, in float64 (approximate)."""
    target = values - shift_out
    return np.where(target >= 0, target, target / slope) - shift_in


def _centred_offsets(centres: np.ndarray, spread: float) -> tuple[np.ndarray, list[float]]:
    """Offsets ``≈ -centres`` on an int8 grid, never all zero, and that grid's range.

    The range spans 0 and every offset, so its end points are offsets and at least one offset
    stays non-zero after the fake quant (see ``_fit_grid`` for why that matters).
    """
    raw = -centres.astype(np.float64)
    if not np.any(raw):
        raw = np.full_like(raw, -spread / 4 if spread > 0 else -1.0)
    low, high = float(np.float32(min(0.0, raw.min()))), float(np.float32(max(0.0, raw.max())))
    offsets = _fake_quant(raw.astype(np.float32), low, high).numpy()
    return offsets, [low, high]


def _fit_grid(approximate: np.ndarray, decide, increasing: bool, owner: str) -> dict[str, Any]:
    """Offsets, int8 input range and grid thresholds of one LTQ (module docstring).

    ``u = fake_quant(x + offset_c)`` is compared with per-channel thresholds (``staircase``).
    The offsets centre each channel's thresholds on 0, so one fine per-tensor grid serves every
    channel. They also keep ``u`` a tensor of its own: a non-zero ``ADD`` is never removed, so
    when ``x`` has other readers (a residual path) the comparison's int8 range does not clamp it
    (converting a shared ``x`` directly left ``PRELU`` in float, measured). The range covers 0
    (TensorFlow nudges ranges to contain it) and every threshold with ``_MARGIN_STEPS`` grid
    steps to spare, so clamped inputs keep their level. Threshold ``(c, i)`` is the first grid
    value ``g`` (last for a decreasing LTQ) at which the original float32 decision on
    ``x = g - offset_c`` holds; so the int8 indicator ``u ≥ g`` (``u ≤ g``) is exactly the
    original decision on the rounded input.

    Args:
        approximate: ``(C, K)`` float64 thresholds on ``x``, for the range and the offsets.
        decide: ``decide(c, x)`` → ``(K, N)`` bool, the original decisions for channel ``c``.
        increasing: whether the decisions pass above the thresholds (``input_scale > 0``).
        owner: the layer, for errors.

    Returns:
        The ``staircase`` keys ``thresholds``, ``input_offset``, ``offset_range``,
        ``input_range`` and ``comparison``.

    Raises:
        AssertionError: if a decision is not monotone on the grid or the margin does not hold.
    """
    channels = approximate.shape[0]
    centres = (approximate.min(axis=1) + approximate.max(axis=1)) / 2
    spread = float(np.max(approximate.max(axis=1) - approximate.min(axis=1)))
    offsets, offset_range = _centred_offsets(centres, spread)
    centred = approximate + offsets[:, None].astype(np.float64)
    low, high = min(0.0, centred.min()), max(0.0, centred.max())
    margin = _MARGIN_STEPS * (high - low) / (_INT8_STEPS - 2 * _MARGIN_STEPS)
    low, high = low - margin, high + margin
    # XNNPACK runs an int8 ADD only if each input-to-output scale ratio is below 2^8
    # (xnn_create_add_nd_qs8), here s_x / s_u for u = x + offset. A step of u at or above
    # 1/256 keeps the ratio below 256 for every input step below ~1, so the offset ADD stays in
    # the delegate; the LTQ input is coarser than 1/256 anyway (it is int8 upstream). The
    # indicators themselves are exact at any step.
    shortfall = _INT8_STEPS * _MIN_INPUT_STEP - (high - low)
    if shortfall > 0:
        low, high = low - shortfall / 2, high + shortfall / 2
    minimum, maximum = float(np.float32(low)), float(np.float32(high))
    grid = _fake_quant_grid(minimum, maximum)
    thresholds = np.zeros(approximate.shape, np.float32)
    for channel in range(channels):
        passes = decide(channel, (grid - offsets[channel]).astype(np.float32))
        for index, row in enumerate(passes):
            ordered = row if increasing else row[::-1]
            first = int(np.argmax(ordered))
            # Monotone: a run of False then a run of True; the clamped low end must fail and
            # the clamped high end pass, or the margin was too small.
            if not ordered[-1] or ordered[0] or not ordered[first:].all():
                raise AssertionError(f"{owner}: decision {index + 1} of channel {channel} is "
                                     f"not a clean step on the grid [{grid[0]}, {grid[-1]}]")
            thresholds[channel, index] = grid[first] if increasing else grid[-1 - first]
    per_tensor = channels == 1
    return {
        "thresholds": [float(t) if per_tensor else thresholds[:, i].tolist()
                       for i, t in enumerate(thresholds[0])],
        "input_offset": float(offsets[0]) if per_tensor else offsets.tolist(),
        "offset_range": offset_range,
        "input_range": [minimum, maximum],
        "comparison": "greater_equal" if increasing else "less_equal",
    }


def weight_multiplier(bits: int) -> int:
    """``m = ⌊127 / K⌋``: N2UQ weight ``α·k/K`` is stored as the int8 ``k·m`` (``K = 2^bits-1``)."""
    return _NARROW_MAX // (2**bits - 1)


# --------------------------------------------------------------------------------------------
# Export layers


def _distinct_constant(value: np.ndarray | np.float32, fake_quant_range: Sequence[float],
                       key: str) -> tf.Tensor:
    """A constant that rounds to ``value`` under the fake quant but equals no other constant.

    ``value`` is on the grid of ``fake_quant_range``; adding a key-dependent fraction (2-45 %)
    of a grid step leaves the fake-quant output unchanged. Without it, equal thresholds and
    offsets of different layers (identical LTQs, e.g. at initialisation) are merged by the
    converter, and the merged constant loses its fake-quant range: it was quantized on its own
    value range instead (measured on a freshly built N2UQ ResNet-18).
    """
    minimum, maximum = fake_quant_range
    step = (maximum - minimum) / _INT8_STEPS
    fraction = 0.02 + 0.43 * (zlib.crc32(key.encode("utf-8")) % 10007) / 10007
    return tf.constant((np.asarray(value, np.float64) + fraction * step).astype(np.float32))


def _input_step(input_range: Sequence[float]) -> np.float32:
    """The int8 step of the compared value: ``FakeQuantWithMinMaxArgs``' float32 scale."""
    minimum, maximum = (np.float32(v) for v in input_range)
    return np.float32((maximum - minimum) / np.float32(_INT8_STEPS))


def _indicator_maximum(input_range: Sequence[float]) -> float:
    """Fake-quant maximum ``255 · s_u / (127 · 4)`` of the indicators (module docstring).

    The int8 output scale ``s_u / (127 · 4)`` makes the requantization multiplier
    ``_INDICATOR_MULTIPLIER`` = 4: accumulator 64 becomes 256 (int8 127), −63 becomes −252
    (int8 −128). In float the maximum, ``63.75 · s_u / 127``, lies below the passed-threshold
    value ``(64 + fraction) · s_u / 127`` of ``_integer_staircase``, so the fake quant clamps
    there too.
    """
    return float(np.float32(_INT8_STEPS * np.float64(_input_step(input_range))
                            / (_NARROW_MAX * _INDICATOR_MULTIPLIER)))


def _threshold_matrix(thresholds: Sequence[float | Sequence[float]], channels: int) -> np.ndarray:
    """``(C, K)`` float32 thresholds: per-tensor ones repeated over the channels."""
    columns = [np.broadcast_to(np.asarray(t, np.float32), (channels,)) for t in thresholds]
    return np.stack(columns, axis=1).astype(np.float32)


def _summing_pattern(channels: int, count: int) -> np.ndarray:
    """``(C·K, C)`` 0/1 matrix: indicator ``c·K + k`` (the depthwise output order) adds to ``c``."""
    return np.repeat(np.eye(channels, dtype=np.float32), count, axis=0)


def _integer_staircase(u: tf.Tensor, thresholds: np.ndarray, sign: float,
                       input_range: Sequence[float], level_step: float, output_maximum: float,
                       salt: str) -> tf.Tensor:
    """Indicators (depthwise 1×1, multiplier K) and their sum per channel, on int8 ``u``."""
    channels, count = thresholds.shape
    step_u = np.float64(_input_step(input_range))
    indicator_max = _indicator_maximum(input_range)
    # Bias: -sign·g plus a bit more than half an input step. The key-dependent part (0.02-0.45
    # of an accumulator unit s_u/127) keeps two layers' biases from being merged; the int8
    # bias rounds it away (restore_exact_kernels writes the exact integers).
    fraction = 0.02 + 0.43 * (zlib.crc32(f"{salt}/indicators".encode("utf-8")) % 10007) / 10007
    half = (_INDICATOR_BIAS + fraction) * step_u / _NARROW_MAX
    bias = (-sign * thresholds.astype(np.float64) + half).reshape(-1).astype(np.float32)
    kernel = np.full((1, 1, channels, count), sign, np.float32)
    shape = None
    if u.shape.rank != 4:
        shape = tf.shape(u)
        u = tf.reshape(u, (-1, 1, 1, channels))
    indicators = tf.nn.bias_add(
        tf.nn.depthwise_conv2d(u, tf.constant(kernel), (1, 1, 1, 1), "VALID",
                               name="indicators"), tf.constant(bias))
    indicators = _fake_quant(indicators, 0.0, indicator_max)
    # The sum: output channel c adds indicators c·K .. c·K + K - 1, each worth
    # level_step / indicator_max, so that the sum is the level i·level_step.
    weight = np.float32(np.float64(level_step) / np.float64(indicator_max))
    summing = (_summing_pattern(channels, count) * weight)[None, None]
    levels = tf.nn.conv2d(indicators, tf.constant(summing), 1, "VALID", name="levels")
    levels = _fake_quant(levels, 0.0, output_maximum)
    return levels if shape is None else tf.reshape(levels, shape)


def staircase(inputs: tf.Tensor, *, thresholds: Sequence[float | Sequence[float]],
              comparison: str, level_step: float, output_maximum: float,
              input_scale: float = 1.0, input_offset: float | Sequence[float] | None = None,
              offset_range: Sequence[float] | None = None,
              input_range: Sequence[float] | None = None, salt: str = "") -> tf.Tensor:
    """The integer-levels form of an LTQ: saturating indicators summed onto exact levels.

    With ``input_range`` (the int8 form, module docstring) the compared value ``u`` is
    fake-quantized, a 1×1 depthwise convolution with multiplier K (kernel ±1, bias −g plus half
    a step) gives one indicator per threshold and channel whose fake quant is so narrow that it
    saturates at 0 or its maximum, and a 1×1 convolution adds each channel's K indicators with
    weight ``level_step / maximum``. Without ``input_range`` (a float check) it compares in
    float and picks the levels with a ``tf.where`` chain, bit-identical to the LTQ.

    Args:
        inputs: the LTQ input (or the input of an ``RPReLU`` folded into the thresholds).
        thresholds: K thresholds, each a float or one float per channel (last axis), compared
            with ``inputs · input_scale + input_offset``; with ``input_range`` they are points
            of its fake-quant grid.
        comparison: ``"greater_equal"`` or ``"less_equal"``.
        level_step: level spacing (the output quantization scale).
        output_maximum: fake-quant maximum of the levels, ``255 · level_step`` in float32.
        input_scale: multiplier applied first (1 when folded into the thresholds).
        input_offset: added before the comparison (a float or one per channel), or None.
        offset_range: fake-quant range of the offset constant, or None.
        input_range: ``(min, max)`` of the int8 fake quant of the compared value, or None for a
            float comparison.
        salt: makes this call's constants differ from every other call's (the layer name).

    Returns:
        ``i · level_step`` where ``i`` counts the thresholds passed, fake-quantized on the
        output grid.
    """
    if comparison not in _COMPARISONS:
        raise ValueError(f"staircase: comparison must be one of {sorted(_COMPARISONS)}, got "
                         f"{comparison!r}")
    with tf.name_scope(_STAIRCASE_SCOPE):
        x = inputs if input_scale == 1.0 else inputs * input_scale
        if input_offset is not None:
            offset = np.asarray(input_offset, np.float32)
            if offset_range is None:
                x = x + tf.constant(offset)
            else:
                x = x + _fake_quant(_distinct_constant(offset, offset_range, f"{salt}/offset"),
                                    *offset_range)
        if input_range is not None:
            u = _fake_quant(x, *input_range)
            return _integer_staircase(
                u, _threshold_matrix(thresholds, int(u.shape[-1])),
                1.0 if comparison == "greater_equal" else -1.0, input_range, level_step,
                output_maximum, salt)
        compare = _COMPARISONS[comparison]
        levels = tf.zeros_like(x)
        for index, threshold in enumerate(thresholds, start=1):
            levels = tf.where(compare(x, tf.constant(np.asarray(threshold, np.float32))),
                              tf.constant(np.float32(index) * np.float32(level_step)), levels)
        return _fake_quant(levels, 0.0, output_maximum)


def _levels_config(quantizer: N2UQActivationQuantizer, owner: str, quantize_input: bool,
                   rprelu: RPReLU | None = None) -> dict[str, Any]:
    """``staircase`` arguments plus ``bits`` for a built LTQ, optionally after an ``RPReLU``.

    ``level_step`` is unsigned; the export moves a negative ``scale2`` into the kernel.
    """
    thresholds = ltq_thresholds(quantizer)
    input_scale = np.float32(quantizer.input_scale.numpy())
    step = _level_step(quantizer)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"{owner}: N2UQ output_scale {float(quantizer.output_scale.numpy())!r}"
                         " gives no usable levels (it must be finite and non-zero)")
    if not np.isfinite(input_scale) or input_scale == 0 or not np.isfinite(thresholds).all():
        raise ValueError(f"{owner}: N2UQ input_scale {float(input_scale)!r} and thresholds "
                         f"{thresholds.tolist()} must be finite with input_scale != 0")
    config = {"bits": quantizer.bits, "level_step": float(step),
              "output_maximum": _output_maximum(step, owner)}
    if not quantize_input:
        config.update(thresholds=[float(t) for t in thresholds], comparison="greater_equal",
                      input_scale=float(input_scale), input_offset=None, offset_range=None,
                      input_range=None)
        return config
    on_output = thresholds.astype(np.float64) / np.float64(input_scale)
    if rprelu is None:
        approximate = on_output[None, :]

        def decide(channel: int, x: np.ndarray) -> np.ndarray:
            return (x * input_scale)[None, :] >= thresholds[:, None]
    else:
        shift_in, slope, shift_out = (w.numpy().astype(np.float32) for w in
                                      (rprelu.shift_in, rprelu.slope, rprelu.shift_out))
        approximate = np.stack([_rprelu_inverse(on_output, *params)
                                for params in zip(shift_in, slope, shift_out)])

        def decide(channel: int, x: np.ndarray) -> np.ndarray:
            z = _rprelu(x, shift_in[channel], slope[channel], shift_out[channel]) * input_scale
            return z[None, :] >= thresholds[:, None]
    config.update(_fit_grid(approximate, decide, bool(input_scale > 0), owner),
                  input_scale=1.0)
    return config


def _staircase_arguments(levels: dict[str, Any]) -> dict[str, Any]:
    return {key: levels[key] for key in ("thresholds", "comparison", "level_step",
                                         "output_maximum", "input_scale", "input_offset",
                                         "offset_range", "input_range")}


@lq.utils.register_keras_custom_object
class N2UQLevels(tf.keras.layers.Layer):
    """A standalone LTQ in its integer-levels form (:func:`staircase`); no weights.

    Args:
        levels: the ``staircase`` arguments plus ``bits``, as the export transform makes them.
        **kwargs: Keras layer arguments.
    """

    def __init__(self, levels: dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.levels = dict(levels)

    def call(self, inputs):
        return staircase(inputs, **_staircase_arguments(self.levels), salt=self.name)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


class _ExactInt8Linear(tf.keras.layers.Layer):
    """Optional LTQ levels, then a linear op whose kernel is fake-quantized per output channel.

    Subclasses give the kernel shape, the output-channel layout and the op. The weights are
    ``kernel`` (N2UQ values, BN folded) and ``bias``; they are set by the export transform.

    Args:
        levels: ``staircase`` arguments plus ``bits`` for the input, or None (no LTQ).
        kernel_scales: per-output-channel int8 scales of the kernel fake quant, or None (the
            converter then calibrates the kernel as for any float layer).
        weight_bits: N2UQ weight bits (documentation and the verification), or None.
        use_bias: whether there is a bias.
        activation: a Keras activation applied last.
        output_range: ``(min, max)`` of an int8 fake quant on the output (the range chosen by
            ``activation_ranges``), or None to leave the output to the converter's calibration.
        **kwargs: Keras layer arguments.
    """

    def __init__(self, levels: dict[str, Any] | None = None,
                 kernel_scales: Sequence[float] | None = None, weight_bits: int | None = None,
                 use_bias: bool = True, activation: Any = None,
                 output_range: Sequence[float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.output_range = None if output_range is None else [float(v) for v in output_range]
        self.levels = None if levels is None else dict(levels)
        self.kernel_scales = None if kernel_scales is None else [float(s) for s in kernel_scales]
        self.weight_bits = weight_bits
        self.use_bias = bool(use_bias)
        self.activation = tf.keras.activations.get(activation)

    # The four methods below are each subclass's op; this base class is never used alone.

    def _kernel_shape(self, input_shape: tf.TensorShape) -> tuple[int, ...]:
        """The Keras kernel shape for ``input_shape``."""
        raise NotImplementedError(f"{type(self).__name__} does not define its kernel")

    def _output_channels(self) -> int:
        """Number of output channels (one kernel scale each)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its channels")

    def _linear(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The linear op on the (fake-quantized) kernel, without bias."""
        raise NotImplementedError(f"{type(self).__name__} does not define its op")

    def _channels_last(self, kernel: tf.Tensor) -> tf.Tensor:
        """The kernel with the output channel as its last axis (per-channel fake quant)."""
        return kernel

    def tflite_kernel(self) -> tuple[np.ndarray, int]:
        """``(kernel in the TFLite op's layout, its output-channel axis)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define its TFLite layout")

    def _from_channels_last(self, kernel: tf.Tensor) -> tf.Tensor:
        """Inverse of ``_channels_last``."""
        return kernel

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        self.kernel = self.add_weight(name="kernel", shape=self._kernel_shape(input_shape),
                                      initializer="zeros", trainable=False)
        channels = self._output_channels()
        if self.kernel_scales is not None and len(self.kernel_scales) != channels:
            raise ValueError(f"{self.name}: {len(self.kernel_scales)} kernel scales for "
                             f"{channels} output channels")
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros",
                                        trainable=False)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs if self.levels is None else staircase(
            inputs, **_staircase_arguments(self.levels), salt=self.name)
        kernel = tf.convert_to_tensor(self.kernel)
        if self.kernel_scales is not None:
            bound = _NARROW_MAX * tf.constant(self.kernel_scales, tf.float32)
            kernel = self._from_channels_last(
                tf.quantization.fake_quant_with_min_max_vars_per_channel(
                    self._channels_last(kernel), -bound, bound, num_bits=8, narrow_range=True))
        outputs = self._linear(x, kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs if self.output_range is None else _fake_quant(outputs, *self.output_range)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "kernel_scales": self.kernel_scales,
                "weight_bits": self.weight_bits, "use_bias": self.use_bias,
                "activation": tf.keras.activations.serialize(self.activation),
                "output_range": self.output_range}


def _pair(value: int | Sequence[int]) -> list[int]:
    return [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]


@lq.utils.register_keras_custom_object
class N2UQInt8Conv2D(_ExactInt8Linear):
    """Export form of an N2UQ ``QuantConv2D`` (channels last, one group).

    Args:
        filters: output channels.
        kernel_size: ``(h, w)``.
        strides: ``(sh, sw)``.
        padding: ``"same"`` or ``"valid"``.
        dilation_rate: ``(dh, dw)``.
        **kwargs: see ``_ExactInt8Linear``.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 dilation_rate=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size, self.strides = _pair(kernel_size), _pair(strides)
        self.dilation_rate, self.padding = _pair(dilation_rate), padding.lower()

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, int(input_shape[-1]), self.filters)

    def _output_channels(self):
        return self.filters

    def tflite_kernel(self):
        return np.transpose(self.kernel.numpy(), (3, 0, 1, 2)), 0  # HWIO → OHWI

    def _linear(self, inputs, kernel):
        return tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                            dilations=self.dilation_rate)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate}


@lq.utils.register_keras_custom_object
class N2UQInt8DepthwiseConv2D(_ExactInt8Linear):
    """Export form of an N2UQ ``QuantDepthwiseConv2D``; output channel ``c · M + m``.

    Args:
        kernel_size: ``(h, w)``.
        strides: ``(sh, sw)``.
        padding: ``"same"`` or ``"valid"``.
        depth_multiplier: M.
        dilation_rate: ``(dh, dw)``.
        **kwargs: see ``_ExactInt8Linear``.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, dilation_rate=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides = _pair(kernel_size), _pair(strides)
        self.dilation_rate, self.padding = _pair(dilation_rate), padding.lower()
        self.depth_multiplier = int(depth_multiplier)
        self._in_channels: int | None = None

    def _kernel_shape(self, input_shape):
        self._in_channels = int(input_shape[-1])
        return (*self.kernel_size, self._in_channels, self.depth_multiplier)

    def _output_channels(self):
        return self._in_channels * self.depth_multiplier

    def _channels_last(self, kernel):
        # (h, w, C, M) → (h, w, 1, C·M): the flat index c·M + m is TFLite's output channel.
        return tf.reshape(kernel, (*self.kernel_size, 1, -1))

    def _from_channels_last(self, kernel):
        return tf.reshape(kernel, (*self.kernel_size, self._in_channels, self.depth_multiplier))

    def tflite_kernel(self):
        kernel = self.kernel.numpy()  # (h, w, C, M) → (1, h, w, C·M)
        return kernel.reshape(1, *kernel.shape[:2], -1), 3

    def _linear(self, inputs, kernel):
        return tf.nn.depthwise_conv2d(inputs, kernel, strides=(1, *self.strides, 1),
                                      padding=self.padding.upper(), dilations=self.dilation_rate)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": self.dilation_rate}


@lq.utils.register_keras_custom_object
class N2UQInt8Dense(_ExactInt8Linear):
    """Export form of an N2UQ ``QuantDense`` on rank-2 inputs ``(batch, features)``.

    It runs as a 1×1 convolution between two reshapes: the converter cannot lower a dense
    kernel with per-channel fake quant (it transposes the ``(in, units)`` kernel to TFLite's
    ``(units, in)`` after quantizing and fails with "'tfl.transpose' op has mismatched quantized
    axes", measured), while a conv kernel is quantized on its last axis already.

    Args:
        units: output features.
        **kwargs: see ``_ExactInt8Linear``.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def _kernel_shape(self, input_shape):
        if input_shape.rank != 2:
            raise ValueError(f"{self.name}: N2UQ int8 export supports QuantDense on (batch, "
                             f"features) inputs only, got shape {input_shape}")
        return (1, 1, int(input_shape[-1]), self.units)

    def _output_channels(self):
        return self.units

    def tflite_kernel(self):
        return np.transpose(self.kernel.numpy(), (3, 0, 1, 2)), 0  # HWIO → OHWI

    def _linear(self, inputs, kernel):
        features = tf.reshape(inputs, (-1, 1, 1, inputs.shape[-1]))
        return tf.reshape(tf.nn.conv2d(features, kernel, strides=1, padding="VALID"),
                          (-1, self.units))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@lq.utils.register_keras_custom_object
class RPReLUInt8(tf.keras.layers.Layer):
    """``tflbnn.layers.RPReLU`` in a form that converts to int8 ops XNNPACK runs.

    With ``s = x + shift_in`` and ``ζ = shift_out``, ``RPReLU`` is
    ``max(s, 0) + β·min(s, 0) + ζ``, which equals ``β·s + (1 − β)·max(s, 0) + ζ`` for any slope
    ``β`` (``min(s, 0) = s − max(s, 0)``). When every ``β < 1`` (``depthwise=True``, what
    ``export_n2uq_int8_model`` chooses then) that is, per channel:

    * a 1×1 ``DEPTHWISE_CONV_2D`` with weight ``β`` and bias ``ζ + β·shift_in``;
    * a 1×1 ``DEPTHWISE_CONV_2D`` with weight ``1 − β > 0``, bias ``(1 − β)·shift_in`` and a
      fused ``RELU`` (``(1 − β)·max(s, 0) = max((1 − β)·s, 0)``);
    * the int8 ``ADD`` of the two.

    Inputs of rank other than 4 are reshaped to ``(N, 1, L, C)`` around the convs. A slope of 1
    or more would need a negative factor after the ``ReLU``; such layers use ``depthwise=False``:
    bias + Keras ``PReLU`` + bias, int8 ``ADD``/``PRELU``/``ADD`` (the same function, but
    XNNPACK does not delegate int8 ``PRELU``, so each one cuts the delegated graph).

    Same function and weights as ``RPReLU`` (``shift_in``, ``slope``, ``shift_out``); see the
    module docstring for why the original formula cannot be calibrated to int8.

    Args:
        depthwise: the depthwise-conv form (needs every slope below 1) or the ``PRELU`` form.
        **kwargs: Keras layer arguments.
    """

    def __init__(self, depthwise: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.depthwise = bool(depthwise)

    def build(self, input_shape):
        channels = int(tf.TensorShape(input_shape)[-1])
        rank = tf.TensorShape(input_shape).rank
        self.shift_in = self.add_weight(name="shift_in", shape=(channels,), initializer="zeros",
                                        trainable=False)
        if self.depthwise:
            self.slope = self.add_weight(name="slope", shape=(channels,), initializer="zeros",
                                         trainable=False)
        else:
            # Shared over the spatial axes, as the converter's PRELU pattern needs a per-channel
            # alpha of shape (1, ..., C).
            self.prelu = tf.keras.layers.PReLU(shared_axes=list(range(1, rank - 1)) or None,
                                               name="prelu")
            self.prelu.build(input_shape)
        self.shift_out = self.add_weight(name="shift_out", shape=(channels,),
                                         initializer="zeros", trainable=False)
        super().build(input_shape)

    def set_rprelu_weights(self, shift_in: np.ndarray, slope: np.ndarray,
                           shift_out: np.ndarray) -> None:
        """Copy an ``RPReLU``'s ``shift_in``, ``slope`` and ``shift_out``."""
        if self.depthwise and np.any(np.asarray(slope) >= 1):
            raise ValueError(f"RPReLUInt8 {self.name!r}: the depthwise form needs every slope "
                             f"below 1, got up to {float(np.max(slope))}")
        self.shift_in.assign(np.reshape(shift_in, self.shift_in.shape))
        slope_variable = self.slope if self.depthwise else self.prelu.alpha
        slope_variable.assign(np.reshape(slope, slope_variable.shape))
        self.shift_out.assign(np.reshape(shift_out, self.shift_out.shape))

    def call(self, inputs):
        if not self.depthwise:
            return self.prelu(inputs + self.shift_in) + self.shift_out
        rank = inputs.shape.rank
        x = inputs if rank == 4 else tf.reshape(inputs, (-1, 1, int(np.prod(
            inputs.shape[1:-1], dtype=np.int64)), inputs.shape[-1]))
        slope = self.slope
        linear = tf.nn.bias_add(
            tf.nn.depthwise_conv2d(x, tf.reshape(slope, (1, 1, -1, 1)), strides=(1, 1, 1, 1),
                                   padding="VALID"),
            self.shift_out + slope * self.shift_in)
        positive = tf.nn.relu(tf.nn.bias_add(
            tf.nn.depthwise_conv2d(x, tf.reshape(1 - slope, (1, 1, -1, 1)),
                                   strides=(1, 1, 1, 1), padding="VALID"),
            (1 - slope) * self.shift_in))
        outputs = linear + positive
        return outputs if rank == 4 else tf.reshape(outputs, (-1, *inputs.shape[1:]))

    def get_config(self):
        return {**super().get_config(), "depthwise": self.depthwise}


@lq.utils.register_keras_custom_object
class RangedOutput(tf.keras.layers.Layer):
    """A layer whose output gets an int8 fake quant over a chosen range (``activation_ranges``).

    The converter then quantizes the output with that range instead of the calibrated min/max.
    The wrapped layer keeps the original name, so its ops stay under ``.../<name>/``.

    Args:
        layer: the (cloned) layer to wrap.
        output_range: ``(min, max)`` of the fake quant, containing 0.
        **kwargs: Keras layer arguments (the name defaults to the wrapped layer's).
    """

    def __init__(self, layer: tf.keras.layers.Layer, output_range: Sequence[float], **kwargs):
        kwargs.setdefault("name", layer.name)
        super().__init__(**kwargs)
        self.inner = layer
        self.output_range = [float(v) for v in output_range]

    def call(self, inputs):
        return _fake_quant(self.inner(inputs), *self.output_range)

    def get_config(self):
        return {**super().get_config(), "layer": tf.keras.layers.serialize(self.inner),
                "output_range": self.output_range}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(tf.keras.layers.deserialize(config.pop("layer")), **config)


# --------------------------------------------------------------------------------------------
# The export transform


_QUANT_LAYERS = (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D, lq.layers.QuantDense)


def _kernel_quantizer(layer) -> Any:
    return (layer.depthwise_quantizer if isinstance(layer, lq.layers.QuantDepthwiseConv2D)
            else layer.kernel_quantizer)


def _kernel(layer) -> tf.Variable:
    return (layer.depthwise_kernel if isinstance(layer, lq.layers.QuantDepthwiseConv2D)
            else layer.kernel)


def _is_n2uq_layer(layer) -> bool:
    if type(layer) is N2UQActivationQuantizer:
        return True
    return isinstance(layer, _QUANT_LAYERS) and (
        type(layer.input_quantizer) is N2UQActivationQuantizer
        or type(_kernel_quantizer(layer)) is N2UQWeightQuantizer)


def _consumers(model: tf.keras.Model) -> dict[str, list[tf.keras.layers.Layer]]:
    """Layer name → the layers of ``model`` that take its output."""
    consumers: dict[str, list] = {layer.name: [] for layer in model.layers}
    network_nodes = getattr(model, "_network_nodes", set())
    for layer in model.layers:
        for index, node in enumerate(layer._inbound_nodes):
            # A layer may also be called in other models; only this model's nodes count.
            if f"{layer.name}_ib-{index}" not in network_nodes:
                continue
            for inbound in tf.nest.flatten(node.inbound_layers):
                consumers.setdefault(inbound.name, []).append(layer)
    return consumers


def _foldable_batch_norm(layer, consumers) -> tf.keras.layers.BatchNormalization | None:
    """The plain inference BN that alone consumes ``layer``'s linear output, if any."""
    after = consumers.get(layer.name, [])
    if len(after) != 1 or tf.keras.activations.serialize(layer.activation) != "linear":
        return None
    bn = after[0]
    if type(bn) is not tf.keras.layers.BatchNormalization:
        return None
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    rank = len(layer.output_shape)
    if len(axis) != 1 or axis[0] % rank != rank - 1 or bn.renorm or len(bn._inbound_nodes) != 1:
        return None
    return bn


def _batch_norm_factors(bn: tf.keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """``(f, g)`` with ``bn(y) = y·f + g`` at inference, in float32 as Keras computes them."""
    variance = bn.moving_variance.numpy()
    factor = tf.math.rsqrt(variance + np.float32(bn.epsilon)).numpy()
    if bn.scale:
        factor = factor * bn.gamma.numpy()
    offset = -bn.moving_mean.numpy() * factor
    if bn.center:
        offset = offset + bn.beta.numpy()
    return factor.astype(np.float32), offset.astype(np.float32)


def _n2uq_kernel(layer) -> tuple[np.ndarray, np.ndarray, int]:
    """N2UQ kernel values ``W_q`` (as Keras uses them), per-channel ``α`` (flat) and bits."""
    quantizer = _kernel_quantizer(layer)
    kernel = _kernel(layer)
    values = quantizer(tf.convert_to_tensor(kernel)).numpy()
    channel_axes = _resolve_axes(quantizer.axis, kernel.shape.rank, quantizer.name)
    reduce_axes = [a for a in range(kernel.shape.rank) if a not in channel_axes]
    gamma = (2**quantizer.bits - 1) / 2 ** (quantizer.bits - 1)
    # The quantizer's own alpha, computed the same way (gamma · mean |W_c|).
    alpha = (gamma * tf.reduce_mean(tf.abs(kernel), axis=reduce_axes)).numpy()
    expected_channels = (kernel.shape[-1] if not isinstance(layer, lq.layers.QuantDepthwiseConv2D)
                         else kernel.shape[-2] * kernel.shape[-1])
    if alpha.size != expected_channels:
        raise ValueError(f"layer {layer.name!r}: N2UQ weight quantizer axis {quantizer.axis} "
                         f"gives {alpha.size} scales for {expected_channels} output channels; "
                         "int8 export needs one scale per output channel")
    return values.astype(np.float32), alpha.reshape(-1).astype(np.float32), quantizer.bits


def _check_quant_layer(layer) -> None:
    config = layer.get_config()
    problems = []
    quantizers = {"input_quantizer": layer.input_quantizer,
                  "kernel quantizer": _kernel_quantizer(layer)}
    allowed = {"input_quantizer": N2UQActivationQuantizer, "kernel quantizer": N2UQWeightQuantizer}
    for role, quantizer in quantizers.items():
        if quantizer is not None and type(quantizer) is not allowed[role]:
            problems.append(f"{role} {type(quantizer).__name__} (only {allowed[role].__name__} "
                            "or none can be exported)")
    if config.get("data_format", "channels_last") != "channels_last":
        problems.append(f"data_format {config['data_format']!r}")
    if config.get("groups", 1) != 1:
        problems.append(f"groups={config['groups']}")
    pad_values = config.get("pad_values", 0.0)
    if pad_values not in (0, 0.0) and str(config.get("padding", "valid")).lower() == "same":
        problems.append(f"pad_values={pad_values} with 'same' padding")
    if problems:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to "
                         f"int8: {'; '.join(problems)}")


def _export_quant_layer(layer, bn, quantize_ltq_inputs: bool, rprelu: RPReLU | None,
                        output_range: Sequence[float] | None = None
                        ) -> tuple[_ExactInt8Linear, list[np.ndarray]]:
    """The export layer replacing an N2UQ Larq layer, and its weights ``[kernel, (bias)]``.

    ``bn`` is folded into the kernel and bias, ``rprelu`` into the LTQ thresholds;
    ``output_range`` fixes the int8 range of the output (None: calibrated).
    """
    _check_quant_layer(layer)
    config = layer.get_config()
    owner = f"layer {layer.name!r}"
    levels = None
    kernel_sign = np.float32(1.0)
    if layer.input_quantizer is not None:
        levels = _levels_config(layer.input_quantizer, owner, quantize_ltq_inputs, rprelu)
        # The levels are unsigned; a negative scale2 moves into the (linear) kernel.
        kernel_sign = np.float32(np.sign(layer.input_quantizer.output_scale.numpy()))
    if _kernel_quantizer(layer) is not None:
        kernel, alpha, weight_bits = _n2uq_kernel(layer)
    else:
        kernel, alpha, weight_bits = _kernel(layer).numpy(), None, None
    channels_last = (kernel.reshape(*kernel.shape[:-2], 1, -1)
                     if isinstance(layer, lq.layers.QuantDepthwiseConv2D) else kernel)
    bias = layer.bias.numpy() if layer.use_bias else None
    factor = np.ones(channels_last.shape[-1], np.float32)
    if bn is not None:
        factor, offset = _batch_norm_factors(bn)
        bias = offset if bias is None else (bias * factor + offset).astype(np.float32)
    folded = (channels_last * (factor * kernel_sign)).astype(np.float32)
    scales = None
    if alpha is not None:
        magnitude = (alpha * np.abs(factor)).astype(np.float32)
        steps = (2**weight_bits - 1) * weight_multiplier(weight_bits)
        # A zero channel (alpha or BN factor 0) is all zeros: any positive scale stores it.
        scales = np.where(magnitude > 0, magnitude / np.float32(steps), 1.0).astype(np.float32)
    common = dict(levels=levels, weight_bits=weight_bits, name=layer.name,
                  kernel_scales=None if scales is None else scales.tolist(),
                  use_bias=bias is not None, output_range=output_range,
                  activation=None if bn is not None else config.get("activation"))
    if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
        export = N2UQInt8DepthwiseConv2D(
            kernel_size=config["kernel_size"], strides=config["strides"],
            padding=config["padding"], depth_multiplier=config["depth_multiplier"],
            dilation_rate=config["dilation_rate"], **common)
        folded = folded.reshape(kernel.shape)
    elif isinstance(layer, lq.layers.QuantConv2D):
        export = N2UQInt8Conv2D(filters=config["filters"], kernel_size=config["kernel_size"],
                                strides=config["strides"], padding=config["padding"],
                                dilation_rate=config["dilation_rate"], **common)
    else:
        export = N2UQInt8Dense(units=config["units"], **common)
        folded = folded.reshape(1, 1, *folded.shape)
    return export, [folded] + ([bias.astype(np.float32)] if bias is not None else [])


def export_n2uq_int8_model(model: tf.keras.Model, *, quantize_ltq_inputs: bool = True,
                           batch_size: int | None = 1,
                           output_ranges: dict[str, Sequence[float]] | None = None
                           ) -> tf.keras.Model:
    """Clone an N2UQ model into the form that converts to an exact full-integer TFLite model.

    See the module docstring for the lowering. Non-N2UQ layers keep their class and weights
    (``RPReLU`` becomes the equivalent ``RPReLUInt8``; a layer named in ``output_ranges`` is
    wrapped in ``RangedOutput``).

    Args:
        model: a built functional or Sequential Keras model with N2UQ layers: Larq
            ``QuantConv2D`` / ``QuantDepthwiseConv2D`` / ``QuantDense`` whose input quantizer is
            ``N2UQActivationQuantizer`` and/or kernel quantizer ``N2UQWeightQuantizer`` (or
            none), or standalone ``N2UQActivationQuantizer`` layers.
        quantize_ltq_inputs: fake-quantize LTQ inputs to int8 with grid-adjusted thresholds
            (what the int8 model computes). False compares float inputs exactly as the
            quantizer does (a ``tf.where`` chain), to check the rest of the transform in
            float; such a model still converts, but its comparisons are neither exact in int8
            nor delegated to XNNPACK, and ``check_n2uq_int8`` rejects them.
        batch_size: static batch of the clone's inputs; 1 for conversion (the converter folds
            broadcast shapes then), None keeps it dynamic.
        output_ranges: layer name → ``(min, max)`` int8 range of that layer's output (from
            :func:`activation_ranges`); those outputs get a fake quant over the range (the
            layer is wrapped in :class:`RangedOutput`, or the export conv takes it as
            ``output_range``). None or missing names: the converter calibrates min/max.

    Returns:
        The export model, a new ``tf.keras.Model`` with the original's name.

    Raises:
        ValueError: for an unbuilt or subclassed model, a model without N2UQ layers, a nested
            model holding N2UQ layers, an unsupported quantizer or layer option, or degenerate
            LTQ scales; each names the layer.
    """
    if not isinstance(model, tf.keras.Model) or not model.built:
        raise ValueError("export_n2uq_int8_model: expected a built tf.keras.Model")
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"export_n2uq_int8_model: model {model.name!r} is subclassed; only "
                         "functional and Sequential models can be cloned")
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model) and any(_is_n2uq_layer(inner)
                                                     for inner in layer.submodules):
            raise ValueError(f"export_n2uq_int8_model: nested model {layer.name!r} holds N2UQ "
                             "layers; flatten it into one functional model first")
    if not any(_is_n2uq_layer(layer) for layer in model.layers):
        raise ValueError(f"export_n2uq_int8_model: model {model.name!r} has no N2UQ layers "
                         "(Larq layers with N2UQActivationQuantizer / N2UQWeightQuantizer)")

    output_ranges = dict(output_ranges or {})
    consumers = _consumers(model)
    replaced: dict[str, tuple[tf.keras.layers.Layer, list[np.ndarray] | None]] = {}
    # RPReLU → LTQ: with int8 LTQ inputs the RPReLU (monotone when every slope is positive)
    # becomes per-channel thresholds on its input, so the LTQ input is rounded once (the
    # RPReLU's input) instead of after each of its three int8 ops.
    fused_rprelu: dict[str, RPReLU] = {}
    for layer in model.layers:
        readers = consumers.get(layer.name, [])
        if (quantize_ltq_inputs and type(layer) is RPReLU and readers
                and len(layer._inbound_nodes) == 1 and np.all(layer.slope.numpy() > 0)
                and all(isinstance(reader, _QUANT_LAYERS)
                        and type(reader.input_quantizer) is N2UQActivationQuantizer
                        for reader in readers)):
            replaced[layer.name] = (tf.keras.layers.Identity(name=layer.name), None)
            fused_rprelu.update({reader.name: layer for reader in readers})
    for layer in model.layers:
        if layer.name in replaced:
            continue
        if len(layer._inbound_nodes) > 1 and _is_n2uq_layer(layer):
            raise ValueError(f"layer {layer.name!r} is shared (called more than once); int8 "
                             "export needs each N2UQ layer used once")
        if type(layer) is N2UQActivationQuantizer:
            levels = _levels_config(layer, f"layer {layer.name!r}", quantize_ltq_inputs)
            if layer.output_scale.numpy() < 0:
                raise ValueError(f"layer {layer.name!r}: a standalone N2UQ activation quantizer "
                                 "with negative output_scale cannot be exported (its levels "
                                 "are negative); put it inside a QuantConv2D")
            replaced[layer.name] = (N2UQLevels(levels, name=layer.name), None)
        elif _is_n2uq_layer(layer):
            bn = _foldable_batch_norm(layer, consumers)
            replaced[layer.name] = _export_quant_layer(layer, bn, quantize_ltq_inputs,
                                                       fused_rprelu.get(layer.name),
                                                       output_ranges.get(layer.name))
            if bn is not None:
                replaced[bn.name] = (tf.keras.layers.Identity(name=bn.name), None)
        elif type(layer) is RPReLU:
            replaced[layer.name] = (RPReLUInt8(depthwise=bool(np.all(layer.slope.numpy() < 1)),
                                               name=layer.name), None)

    def clone_layer(layer):
        new = (replaced[layer.name][0] if layer.name in replaced
               else layer.__class__.from_config(layer.get_config()))
        if layer.name in output_ranges and not isinstance(new, _ExactInt8Linear):
            return RangedOutput(new, output_ranges[layer.name])
        return new

    input_tensors = None
    if batch_size is not None:
        input_tensors = [tf.keras.Input(shape=t.shape[1:], batch_size=batch_size, dtype=t.dtype,
                                        name=name)
                         for t, name in zip(model.inputs, model.input_names)]
        input_tensors = input_tensors[0] if len(input_tensors) == 1 else input_tensors
    export = tf.keras.models.clone_model(model, input_tensors=input_tensors,
                                         clone_function=clone_layer)
    for layer in model.layers:
        new = export.get_layer(layer.name)
        new = new.inner if isinstance(new, RangedOutput) else new
        if layer.name in replaced:
            weights = replaced[layer.name][1]
            if weights is not None:
                new.set_weights(weights)
            elif isinstance(new, RPReLUInt8):
                new.set_rprelu_weights(layer.shift_in.numpy(), layer.slope.numpy(),
                                       layer.shift_out.numpy())
        elif layer.weights:
            new.set_weights(layer.get_weights())
    return export


# --------------------------------------------------------------------------------------------
# Activation ranges


# Layers whose output is a new int8 tensor that the converter calibrates (not pass-through ops
# like pooling by max, reshapes or padding, whose output shares the input's quantization).
_RANGED_LAYERS = (tf.keras.layers.BatchNormalization, tf.keras.layers.Add,
                  tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D,
                  tf.keras.layers.Dense, tf.keras.layers.GlobalAveragePooling2D,
                  tf.keras.layers.AveragePooling2D, tf.keras.layers.ReLU, RPReLUInt8,
                  _ExactInt8Linear)
# Consumers the converter fuses into their producer (BN into a conv, ReLU into a conv or add): a
# fake quant between them would block the fusion, so such producers are left alone.
_FUSED_CONSUMERS = (tf.keras.layers.BatchNormalization, tf.keras.layers.ReLU,
                    tf.keras.layers.Activation)
#: Default fraction (in percent) of values left outside each range by ``activation_ranges``.
DEFAULT_RANGE_TAIL = 0.1
_RANGE_SAMPLES = 1 << 20   # values per layer kept for the percentiles


def _ranged_layer_names(export: tf.keras.Model) -> list[str]:
    """Layers of an export model whose output range ``activation_ranges`` chooses."""
    consumers = _consumers(export)
    outputs = {tensor._keras_history.layer.name for tensor in export.outputs}
    names = []
    for layer in export.layers:
        after = consumers.get(layer.name, [])
        if (isinstance(layer, _RANGED_LAYERS) and layer.name not in outputs and after
                and not all(isinstance(reader, _FUSED_CONSUMERS) for reader in after)):
            names.append(layer.name)
    return names


def activation_ranges(model: tf.keras.Model, images: np.ndarray, *,
                      tail: float = DEFAULT_RANGE_TAIL, batch_size: int = 50
                      ) -> dict[str, tuple[float, float]]:
    """Percentile int8 ranges for the float tensors of an N2UQ model's export.

    The converter's calibration takes each tensor's min and max over the representative images,
    so a few extreme values (one channel, one image) set the int8 step of the whole tensor. Here
    each range is the ``[tail, 100 - tail]`` percentile interval of the tensor's values in the
    export model (widened to contain 0); values outside it are clamped. Model outputs are left to
    the converter (clamping logits would change the ranking of the clamped classes), as are
    outputs that only feed a BN or ReLU (the converter fuses those into their producer).

    Args:
        model: the N2UQ Keras model (exported here with ``batch_size=None``).
        images: the calibration images ``(N, H, W, C)``.
        tail: percent of values left outside at each end, in ``[0, 50)``; 0 gives min/max.
        batch_size: images per forward pass.

    Returns:
        Layer name → ``(min, max)``, for ``export_n2uq_int8_model(output_ranges=...)``.

    Raises:
        ValueError: for a tail outside ``[0, 50)`` or no images.
    """
    if not 0 <= tail < 50:
        raise ValueError(f"activation_ranges: tail must be a percentage in [0, 50), got {tail!r}")
    if len(images) == 0:
        raise ValueError("activation_ranges: no images")
    export = export_n2uq_int8_model(model, batch_size=None)
    names = _ranged_layer_names(export)
    if not names:
        return {}
    probe = tf.keras.Model(export.inputs, [export.get_layer(name).output for name in names])
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, values in zip(names, outputs):
            flat = np.ravel(values.numpy())
            # An even stride over every batch keeps ~_RANGE_SAMPLES values per layer in all.
            stride = max(1, flat.size * -(-len(images) // batch_size) // _RANGE_SAMPLES)
            samples[name].append(flat[::stride])
    ranges = {}
    for name in names:
        values = np.concatenate(samples[name]).astype(np.float64)
        low, high = np.percentile(values, [tail, 100 - tail])
        low, high = min(0.0, float(low)), max(0.0, float(high))
        if high > low:
            ranges[name] = (float(np.float32(low)), float(np.float32(high)))
    return ranges


# --------------------------------------------------------------------------------------------
# What the flatbuffer must contain


@dataclasses.dataclass(frozen=True)
class LevelsSpec:
    """One LTQ's integer-levels form, as the export model has it.

    Attributes:
        layer: the Keras layer name (also the name scope of its ops in the flatbuffer).
        bits: activation bits; the levels are ``0 .. 2^bits - 1``.
        level_step: ``|Δ · scale2|`` in float32, the required output scale.
        thresholds: grid-adjusted thresholds, each a float or one float per channel.
        input_range: fake-quant range of the input, or None for a float comparison.
        comparison: ``"greater_equal"`` or ``"less_equal"`` (a decreasing LTQ).
    """

    layer: str
    bits: int
    level_step: float
    thresholds: tuple[float | tuple[float, ...], ...]
    input_range: tuple[float, float] | None
    comparison: str = "greater_equal"


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One N2UQ kernel's lossless int8 storage, as the export model has it.

    Attributes:
        layer: the Keras layer name.
        bits: weight bits.
        multiplier: ``m``; every stored int8 weight is ``k · m`` with odd ``|k| <= 2^bits - 1``.
        scales: per-output-channel int8 scales the converter must keep.
    """

    layer: str
    bits: int
    multiplier: int
    scales: tuple[float, ...]


def int8_export_specs(model: tf.keras.Model) -> tuple[tuple[LevelsSpec, ...],
                                                      tuple[WeightSpec, ...]]:
    """The LTQ levels and exact weights an int8 flatbuffer of ``model`` must contain.

    Args:
        model: an export model, or an N2UQ model (exported first, with int8 LTQ inputs).

    Returns:
        ``(levels_specs, weight_specs)`` in layer order.
    """
    if not any(isinstance(layer, (N2UQLevels, _ExactInt8Linear)) for layer in model.layers):
        model = export_n2uq_int8_model(model)
    levels, weights = [], []
    for layer in model.layers:
        config = getattr(layer, "levels", None)
        if isinstance(layer, (N2UQLevels, _ExactInt8Linear)) and config is not None:
            levels.append(LevelsSpec(
                layer=layer.name, bits=int(config["bits"]), level_step=config["level_step"],
                thresholds=tuple(tuple(t) if isinstance(t, list) else t
                                 for t in config["thresholds"]),
                input_range=(None if config["input_range"] is None
                             else tuple(config["input_range"])),
                comparison=config["comparison"]))
        if isinstance(layer, _ExactInt8Linear) and layer.kernel_scales is not None:
            weights.append(WeightSpec(layer=layer.name, bits=layer.weight_bits,
                                      multiplier=weight_multiplier(layer.weight_bits),
                                      scales=tuple(layer.kernel_scales)))
    return tuple(levels), tuple(weights)


# --------------------------------------------------------------------------------------------
# Conversion


def convert_n2uq_int8(model: tf.keras.Model, representative_images: np.ndarray, *,
                      inference_io_type: str = "float32", max_calibration_images: int = 500,
                      range_tail: float | None = DEFAULT_RANGE_TAIL,
                      verify: bool = True) -> bytes:
    """Convert an N2UQ model to a full-integer TFLite flatbuffer (module docstring).

    Args:
        model: a built N2UQ Keras model (see ``export_n2uq_int8_model``).
        representative_images: preprocessed float32 inputs ``(N, H, W, C)`` for calibrating
            the float layers (real images from the training distribution).
        inference_io_type: ``"float32"`` (QUANTIZE/DEQUANTIZE at the boundary) or ``"int8"``.
        max_calibration_images: at most this many images are used, the first ones.
        range_tail: percent of values left outside each float tensor's int8 range at each end
            (``activation_ranges``); None leaves every range to the converter's min/max.
        verify: run ``check_n2uq_int8`` on the result.

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: for bad images or options, or what ``export_n2uq_int8_model`` rejects.
        N2UQInt8Error: when ``verify`` and the flatbuffer breaks a rule of ``check_n2uq_int8``.
    """
    if inference_io_type not in INT8_IO_TYPES:
        raise ValueError(f"convert_n2uq_int8: inference_io_type must be one of {INT8_IO_TYPES}, "
                         f"got {inference_io_type!r}")
    if max_calibration_images < 1:
        raise ValueError(f"convert_n2uq_int8: max_calibration_images must be >= 1, got "
                         f"{max_calibration_images}")
    images = check_parity_images(representative_images, model)[:max_calibration_images]
    ranges = None if range_tail is None else activation_ranges(model, images, tail=range_tail)
    export = export_n2uq_int8_model(model, output_ranges=ranges)

    def representative_dataset() -> Iterable[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if inference_io_type == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    flatbuffer = restore_exact_kernels(converter.convert(), export)
    if verify:
        check_n2uq_int8(flatbuffer, export)
    return flatbuffer


# --------------------------------------------------------------------------------------------
# Reading quantization back


@dataclasses.dataclass(frozen=True)
class _Tensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: np.ndarray            # float32, empty when not quantized
    zero_point: np.ndarray       # int64, empty when not quantized
    quantized_dimension: int
    data: np.ndarray | None      # constant contents (int8 / int32 / float32), else None

    @property
    def quantization(self) -> str:
        if not self.scale.size:
            return "no quantization"
        if self.scale.size == 1:
            return f"scale {self.scale[0]!r}, zero point {int(self.zero_point[0])}"
        return f"{self.scale.size} scales on axis {self.quantized_dimension}"

    def describe(self) -> str:
        return f"tensor {self.name!r} {list(self.shape)}:{self.dtype} ({self.quantization})"


@dataclasses.dataclass(frozen=True)
class _Op:
    index: int
    name: str
    custom: bool
    inputs: tuple[_Tensor | None, ...]
    outputs: tuple[_Tensor, ...]

    def describe(self) -> str:
        return (f"{self.name} #{self.index} (output "
                f"{', '.join(repr(t.name) for t in self.outputs)})")


@dataclasses.dataclass(frozen=True)
class _Graph:
    ops: tuple[_Op, ...]
    inputs: tuple[_Tensor, ...]
    outputs: tuple[_Tensor, ...]
    consumers: dict[int, list[tuple[_Op, int]]]  # tensor index → (op, input position)
    subgraphs: int


_NUMPY_TYPES = {"int8": np.int8, "int32": np.int32, "float32": np.float32, "uint8": np.uint8,
                "int16": np.int16, "int64": np.int64, "bool": np.bool_}


def _read_tensor(subgraph, model, index: int) -> _Tensor:
    tensor = subgraph.Tensors(index)
    dtype = _TYPE_NAMES.get(tensor.Type(), f"type_{tensor.Type()}")
    shape = tuple(_indices(tensor.ShapeAsNumpy()))
    quantization = tensor.Quantization()
    scale = np.zeros(0, np.float32)
    zero_point = np.zeros(0, np.int64)
    dimension = 0
    if quantization is not None and quantization.ScaleLength():
        scale = np.asarray(quantization.ScaleAsNumpy(), np.float32)
        zero_point = np.asarray(quantization.ZeroPointAsNumpy(), np.int64)
        dimension = int(quantization.QuantizedDimension())
    data = None
    buffer_index = tensor.Buffer()
    if 0 < buffer_index < model.BuffersLength():
        buffer = model.Buffers(buffer_index)
        if buffer.DataLength() and dtype in _NUMPY_TYPES:
            raw = buffer.DataAsNumpy().tobytes()
            data = np.frombuffer(raw, _NUMPY_TYPES[dtype]).reshape(shape)
    name = (tensor.Name() or b"").decode("utf-8", errors="replace")
    return _Tensor(index, name, dtype, shape, scale, zero_point, dimension, data)


def _read_graph(source: Source) -> tuple[_Graph, str, int]:
    data, name = load_tflite_bytes(source)
    try:
        model = schema.Model.GetRootAs(data, 0)
        codes = [_op_code_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
        subgraph = model.Subgraphs(0)
        tensors = [_read_tensor(subgraph, model, i) for i in range(subgraph.TensorsLength())]
        ops = []
        consumers: dict[int, list] = {}
        for op_index in range(subgraph.OperatorsLength()):
            raw = subgraph.Operators(op_index)
            op_name, custom = codes[raw.OpcodeIndex()]
            inputs = _indices(raw.InputsAsNumpy())
            op = _Op(op_index, op_name, custom,
                     tuple(tensors[i] if i >= 0 else None for i in inputs),
                     tuple(tensors[i] for i in _indices(raw.OutputsAsNumpy())))
            ops.append(op)
            for position, i in enumerate(inputs):
                if i >= 0:
                    consumers.setdefault(i, []).append((op, position))
        graph = _Graph(tuple(ops), tuple(tensors[i] for i in _indices(subgraph.InputsAsNumpy())),
                       tuple(tensors[i] for i in _indices(subgraph.OutputsAsNumpy())),
                       consumers, model.SubgraphsLength())
    except (AttributeError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{name}: corrupt TFLite flatbuffer ({type(error).__name__}: "
                         f"{error})") from None
    return graph, name, len(data)


def _names_linear_op(tensor: _Tensor, layer: str) -> bool:
    """Whether a fused output name has a part from ``layer``'s own conv/dense (not staircase).

    The staircase ops are under ``<layer>/ltq/``; the converter may also fuse the offset ADD of
    one layer's LTQ into the conv or BN of the layer before it, so that conv's output name then
    mentions this layer's ``ltq`` scope too.
    """
    for part in tensor.name.split(";"):
        _, scope, rest = f"/{part}".partition(f"/{layer}/")
        if scope and not rest.startswith(f"{_STAIRCASE_SCOPE}/"):
            return True
    return False


def _linear_op(graph: _Graph, layer: str, owner: str) -> _Op:
    """The one conv/dense op of a layer, found by its name scope in the output tensor names."""
    found = [op for op in graph.ops
             if op.name in _LINEAR_OPS and any(_names_linear_op(t, layer) for t in op.outputs)]
    if len(found) != 1:
        raise N2UQInt8Error(f"{owner}: {len(found)} conv/dense ops under the name {layer!r} in "
                            "the flatbuffer, expected 1", [f"{owner}: op not found"])
    return found[0]


def _bias_scales(op: _Op) -> np.ndarray | None:
    """The bias scales an int8 conv/dense kernel assumes: ``s_in · s_w`` (float32)."""
    inputs, weights = op.inputs[0], op.inputs[1]
    if inputs.dtype != "int8" or weights.dtype != "int8" or not inputs.scale.size:
        return None
    return (np.float32(inputs.scale[0]) * weights.scale).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _StaircaseOps:
    """One LTQ's ops in the flatbuffer and the integers they must hold (``staircase``)."""

    indicators: _Op              # DEPTHWISE_CONV_2D, multiplier K, on u
    levels: _Op                  # CONV_2D summing each channel's K indicators
    indicator_weights: np.ndarray  # int8 (C·K,): ±127
    indicator_bias: np.ndarray     # int32 (C·K,): ±127 · (z_u - g_q) + 64
    levels_weights: np.ndarray     # int8 (C, 1, 1, C·K): 127 on the block diagonal


def _staircase_ops(graph: _Graph, spec: LevelsSpec) -> _StaircaseOps:
    """Find an LTQ's indicator and levels convolutions and compute their exact integers.

    The indicator op is the one ``DEPTHWISE_CONV_2D`` under ``<layer>/ltq/``; the levels op is
    the ``CONV_2D`` that reads its output. The integers follow from the export thresholds on
    the int8 grid of the compared value ``u`` (the indicator input) as the flatbuffer has it.

    Raises:
        N2UQInt8Error: when the ops are missing or ambiguous, or the thresholds are not points
            of ``u``'s int8 grid (its quantization is not the export model's).
    """
    owner = f"LTQ of layer {spec.layer!r}"
    if spec.input_range is None:
        raise N2UQInt8Error(f"{owner}: the export model compares float inputs "
                            "(quantize_ltq_inputs=False); only the int8 form can be checked",
                            [f"{owner}: float comparisons"])
    scope = f"{spec.layer}/{_STAIRCASE_SCOPE}"
    found = [op for op in graph.ops
             if op.name == "DEPTHWISE_CONV_2D" and _in_scope(op.outputs[0], scope)]
    readers = ([reader for reader, position in graph.consumers.get(found[0].outputs[0].index, [])
                if reader.name == "CONV_2D" and position == 0] if len(found) == 1 else [])
    if len(found) != 1 or len(readers) != 1:
        raise N2UQInt8Error(
            f"{owner}: expected one DEPTHWISE_CONV_2D under {scope!r} read by one CONV_2D, found "
            f"{len(found)} indicator op(s) and {len(readers)} reader(s) (was the integer-levels "
            "form converted?)", [f"{owner}: staircase ops not found"])
    indicators, levels = found[0], readers[0]
    u = indicators.inputs[0]
    if u.dtype != "int8" or u.scale.size != 1:
        raise N2UQInt8Error(f"{owner}: compared value {u.describe()} is not per-tensor int8",
                            [u.name])
    channels, count = int(u.shape[-1]), len(spec.thresholds)
    scale, zero = np.float64(u.scale[0]), int(u.zero_point[0])
    expected_scale = _input_step(spec.input_range)
    steps = _threshold_matrix(spec.thresholds, channels).astype(np.float64) / scale
    grid = zero + np.rint(steps)
    if (abs(scale - expected_scale) > 1e-6 * expected_scale
            or np.any(np.abs(steps - np.rint(steps)) > 1e-3)
            or np.any(grid < -128) or np.any(grid > 127)):
        raise N2UQInt8Error(f"{owner}: {u.describe()} is not the int8 grid of the export "
                            f"range {list(spec.input_range)} (step {expected_scale!r}): the "
                            "thresholds are not points of it", [u.name])
    sign = 1 if spec.comparison == "greater_equal" else -1
    bias = sign * _NARROW_MAX * (zero - grid) + _INDICATOR_BIAS
    # TFLite stores a CONV_2D kernel as (out, h, w, in).
    summing = (_summing_pattern(channels, count).T * _NARROW_MAX).astype(np.int8)[:, None, None]
    return _StaircaseOps(indicators, levels,
                         np.full(channels * count, sign * _NARROW_MAX, np.int8),
                         bias.reshape(-1).astype(np.int32), summing)


def restore_exact_kernels(flatbuffer: bytes, export_model: tf.keras.Model) -> bytes:
    """Put the lossless N2UQ kernels and consistent biases into a converted flatbuffer.

    The TFLite converter (TensorFlow 2.16.2) does not keep the per-channel weight fake quant
    when it also calibrates: it re-quantizes every kernel with scale ``max|w_c| / 127``, so the
    ``k·m`` levels become ``round(127·k/K)`` (2 bits: 42.33 → 42), and it quantizes each bias
    with the *calibrated* range of the conv input instead of the input's final quantization: an
    LTQ output whose calibration saw levels 0..2 gets a bias scale ``2/255`` of ``s_in · s_w``,
    and the kernel adds that bias 127.5 times too large (measured: top-1 agreement 31 %). This
    pass fixes both in place, without re-serialising (same tensor sizes):

    * the kernel of every exact layer becomes ``round(W / s_c)`` = ``k · m`` with the export
      model's scales ``s_c`` — after checking that the converter's own int8 values are a
      rounding of the same kernel (nothing was fused into it);
    * every LTQ's staircase (``staircase``) gets its exact integers: indicator kernel ±127 at
      scale 1/127, indicator bias ``±127 · (z_u − g_q) + 64`` with ``g_q`` the export thresholds
      on the int8 grid of ``u`` as the flatbuffer quantizes it, summing kernel 127 / 0;
    * every int8 conv/dense bias whose scale differs from ``s_in · s_w`` is re-quantized to it,
      keeping its float value (which includes any constant add the converter fused into it).

    Args:
        flatbuffer: the converter's output for ``export_model``.
        export_model: the ``export_n2uq_int8_model`` clone that was converted.

    Returns:
        The corrected flatbuffer bytes.

    Raises:
        N2UQInt8Error: when a layer's op is not found, its weights are not int8 per-channel
            constants of the expected layout, a buffer is shared, the converter changed a
            kernel beyond rounding, or an LTQ's ``u`` is not on the export grid; names the
            layer and tensor.
    """
    data = bytearray(flatbuffer)
    graph, name, _ = _read_graph(bytes(data))
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    buffer_users = Counter(subgraph.Tensors(i).Buffer() for i in range(subgraph.TensorsLength()))

    def rewrite(tensor: _Tensor, values: np.ndarray, scales: np.ndarray) -> None:
        """Overwrite a constant tensor's data and scales inside ``data`` (same sizes)."""
        raw = subgraph.Tensors(tensor.index)
        stored = model.Buffers(raw.Buffer()).DataAsNumpy().view(values.dtype)
        if not np.array_equal(stored, values.reshape(-1)):
            # The converter shares one buffer between equal constants (e.g. zero biases).
            if buffer_users[raw.Buffer()] != 1:
                raise N2UQInt8Error(f"{name}: buffer of {tensor.describe()} is shared with "
                                    "another tensor; it cannot be rewritten alone",
                                    [tensor.name])
            stored[:] = values.reshape(-1)
        raw.Quantization().ScaleAsNumpy()[:] = scales

    for layer in export_model.layers:
        if not isinstance(layer, _ExactInt8Linear) or layer.kernel_scales is None:
            continue
        owner = f"N2UQ kernel of layer {layer.name!r}"
        op = _linear_op(graph, layer.name, owner)
        weights = op.inputs[1]
        kernel, axis = layer.tflite_kernel()
        scales = np.asarray(layer.kernel_scales, np.float32)
        if (weights.dtype != "int8" or weights.data is None or weights.shape != kernel.shape
                or weights.scale.size != scales.size or weights.quantized_dimension != axis):
            raise N2UQInt8Error(f"{owner}: {op.describe()} weight {weights.describe()} is not a "
                                f"per-channel int8 constant of shape {list(kernel.shape)} on "
                                f"axis {axis}", [weights.name])
        shape = [1] * kernel.ndim
        shape[axis] = scales.size
        levels = np.rint(kernel / scales.reshape(shape))
        converter_values = weights.data * weights.scale.reshape(shape).astype(np.float64)
        if np.any(np.abs(converter_values - kernel)
                  > 0.5001 * weights.scale.reshape(shape) + 1e-30):
            raise N2UQInt8Error(f"{owner}: the converter's {weights.describe()} is not a rounding "
                                "of the export kernel (was an op fused into the conv?)",
                                [weights.name])
        rewrite(weights, levels.astype(np.int8), scales)
    # The staircases: the indicator kernels and biases and the summing kernels, as integers.
    levels_specs, _ = int8_export_specs(export_model)
    for spec in levels_specs:
        if spec.input_range is None:
            continue  # a float comparison (quantize_ltq_inputs=False): nothing exact to restore
        ops = _staircase_ops(graph, spec)
        weights = ops.indicators.inputs[1]
        bias = ops.indicators.inputs[2] if len(ops.indicators.inputs) > 2 else None
        if (weights.dtype != "int8" or weights.data is None or weights.quantized_dimension != 3
                or weights.scale.size != ops.indicator_weights.size or bias is None
                or bias.dtype != "int32" or bias.data is None
                or bias.data.size != ops.indicator_bias.size):
            raise N2UQInt8Error(f"LTQ of layer {spec.layer!r}: {ops.indicators.describe()} has "
                                f"weight {weights.describe()} and bias "
                                f"{bias.describe() if bias is not None else None}; expected "
                                f"{ops.indicator_weights.size} per-channel int8 weights and "
                                "int32 biases", [weights.name])
        weight_scales = np.full(weights.scale.size, 1 / _NARROW_MAX, np.float32)
        rewrite(weights, ops.indicator_weights, weight_scales)
        rewrite(bias, ops.indicator_bias,
                (np.float32(ops.indicators.inputs[0].scale[0]) * weight_scales).astype(
                    np.float32))
        summing = ops.levels.inputs[1]
        if (summing.dtype != "int8" or summing.data is None
                or summing.shape != ops.levels_weights.shape or not summing.scale.size):
            raise N2UQInt8Error(f"LTQ of layer {spec.layer!r}: {ops.levels.describe()} weight "
                                f"{summing.describe()} is not an int8 constant of shape "
                                f"{list(ops.levels_weights.shape)}", [summing.name])
        rewrite(summing, ops.levels_weights, summing.scale)
    # Biases last: they depend on the (now final) weight scales.
    graph, _, _ = _read_graph(bytes(data))
    for op in graph.ops:
        bias = op.inputs[2] if op.name in _LINEAR_OPS and len(op.inputs) > 2 else None
        wanted = _bias_scales(op) if bias is not None else None
        if (wanted is None or bias.dtype != "int32" or bias.data is None
                or bias.scale.size != wanted.size or np.array_equal(bias.scale, wanted)):
            continue
        real = bias.data.astype(np.float64) * bias.scale.astype(np.float64)
        requantized = np.rint(real / wanted.astype(np.float64))
        if np.any(np.abs(requantized) > np.iinfo(np.int32).max):
            raise N2UQInt8Error(f"{name}: bias {bias.describe()} of {op.describe()} overflows "
                                "int32 at scale s_in·s_w", [bias.name])
        rewrite(bias, requantized.astype(np.int32), wanted)
    return bytes(data)


# --------------------------------------------------------------------------------------------
# Verification


class N2UQInt8Error(ValueError):
    """The flatbuffer is not the exact full-integer model; ``problems`` lists each violation."""

    def __init__(self, message: str, problems: Sequence[str]):
        super().__init__(message)
        self.problems = tuple(problems)


@dataclasses.dataclass(frozen=True)
class N2UQInt8Check:
    """What ``check_n2uq_int8`` established.

    Attributes:
        source: file name or ``"<bytes>"``.
        size_bytes: flatbuffer size.
        op_histogram: op name → count.
        input_quantization: ``(dtype, scale, zero point)`` of the model input (scale and zero
            point of the int8 tensor right after QUANTIZE for a float input).
        output_quantization: the same for the output (the int8 tensor before DEQUANTIZE).
        levels_tensors: ``(layer, tensor, scale, zero point)`` of each LTQ's levels tensor
            (the output of its summing conv), one per LTQ.
        weight_layers: ``(layer, channels, max relative scale deviation)`` per exact kernel.
    """

    source: str
    size_bytes: int
    op_histogram: dict[str, int]
    input_quantization: tuple[str, float, int]
    output_quantization: tuple[str, float, int]
    levels_tensors: tuple[tuple[str, str, float, int], ...]
    weight_layers: tuple[tuple[str, int, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        ops = ", ".join(f"{name} {count}" for name, count in self.op_histogram.items())
        in_type, in_scale, in_zero = self.input_quantization
        out_type, out_scale, out_zero = self.output_quantization
        return (f"int8 N2UQ model {self.source} ({self.size_bytes / 1024:.1f} KiB): "
                f"{len(self.levels_tensors)} LTQ tensors on exact levels, "
                f"{len(self.weight_layers)} lossless int8 N2UQ kernels; input {in_type} "
                f"(int8 scale {in_scale:.6g}, zero point {in_zero}), output {out_type} "
                f"(int8 scale {out_scale:.6g}, zero point {out_zero}); ops: {ops}")


def _in_scope(tensor: _Tensor, layer: str) -> bool:
    # Keras puts a layer's ops under ".../<layer name>/"; fused names join parts with ";".
    return any(f"/{layer}/" in f"/{part}" for part in tensor.name.split(";"))


def _boundary_quantization(graph: _Graph, problems: list[str]) -> tuple[tuple, tuple]:
    """``(dtype, scale, zero point)`` of the input and output, checking the boundary ops."""
    def int8_params(tensor: _Tensor) -> tuple[float, int]:
        return (float(tensor.scale[0]), int(tensor.zero_point[0])) if tensor.scale.size else (
            0.0, 0)

    results = []
    for role, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        if len(tensors) != 1:
            problems.append(f"model has {len(tensors)} {role}s; expected one")
            results.append(("?", 0.0, 0))
            continue
        tensor = tensors[0]
        if tensor.dtype == "int8":
            results.append(("int8", *int8_params(tensor)))
            continue
        if tensor.dtype != "float32":
            problems.append(f"model {role} {tensor.describe()} is neither int8 nor float32")
            results.append((tensor.dtype, 0.0, 0))
            continue
        if role == "input":
            users = [op for op, _ in graph.consumers.get(tensor.index, [])]
            if not users or any(op.name != "QUANTIZE" for op in users):
                problems.append(f"float32 input {tensor.name!r} feeds "
                                f"{sorted({op.name for op in users})}; only QUANTIZE may read it")
            boundary = users[0].outputs[0] if users else None
        else:
            producers = [op for op in graph.ops if tensor in op.outputs]
            if not producers or producers[0].name != "DEQUANTIZE":
                problems.append(f"float32 output {tensor.name!r} is produced by "
                                f"{producers[0].describe() if producers else 'no op'}; only "
                                "DEQUANTIZE may produce it")
            boundary = producers[0].inputs[0] if producers else None
        results.append(("float32", *(int8_params(boundary) if boundary is not None
                                     else (0.0, 0))))
    return results[0], results[1]


def _check_body(graph: _Graph, problems: list[str]) -> None:
    """Every op integer: the dtype rules of ``check_n2uq_int8``."""
    inputs = {t.index for t in graph.inputs}
    outputs = {t.index for t in graph.outputs}
    for op in graph.ops:
        if op.custom:
            problems.append(f"{op.describe()}: custom op in the body (builtin int8 ops only)")
            continue
        if op.name == "QUANTIZE" and op.inputs[0].dtype == "float32":
            if op.inputs[0].index not in inputs:
                problems.append(f"{op.describe()}: float → int8 QUANTIZE of "
                                f"{op.inputs[0].describe()} inside the body (only the model "
                                "input may be quantized from float)")
            continue
        if op.name == "DEQUANTIZE":
            if op.outputs[0].index not in outputs:
                problems.append(f"{op.describe()}: DEQUANTIZE to float inside the body (only the "
                                "model output may be dequantized)")
            continue
        for position, tensor in enumerate(op.inputs):
            if tensor is None or tensor.dtype == "int8":
                continue
            if (tensor.dtype == "int32" and tensor.data is not None
                    and position in _INT32_OPERANDS.get(op.name, ())):
                continue
            problems.append(f"{op.describe()}: input {position} {tensor.describe()} is not int8 "
                            "(allowed otherwise: int32 constant biases/shapes/axes)")
        wanted = _bias_scales(op) if op.name in _LINEAR_OPS and len(op.inputs) > 2 else None
        bias = op.inputs[2] if wanted is not None else None
        if bias is not None and (bias.scale.size != wanted.size or np.any(
                np.abs(bias.scale - wanted) > 1e-6 * wanted)):
            problems.append(f"{op.describe()}: bias {bias.describe()} is not at scale input × "
                            "weight scale; the int8 kernel would add it at the wrong scale")
        for tensor in op.outputs:
            if tensor.dtype == "int8":
                if not tensor.scale.size:
                    problems.append(f"{op.describe()}: int8 output {tensor.name!r} has no "
                                    "quantization parameters")
                continue
            problems.append(f"{op.describe()}: output {tensor.describe()} is not int8 (float or "
                            "wide-integer op in the body)")


def _requantization(op: _Op, channel: int = 0) -> float:
    """The float64 multiplier ``s_in · s_w / s_out`` an int8 conv applies to channel's sum."""
    weights = op.inputs[1]
    weight_scale = weights.scale[channel if weights.scale.size > 1 else 0]
    return (np.float64(op.inputs[0].scale[0]) * np.float64(weight_scale)
            / np.float64(op.outputs[0].scale[0]))


def _check_levels(graph: _Graph, spec: LevelsSpec, problems: list[str]
                  ) -> list[tuple[str, str, float, int]]:
    """One LTQ: saturating indicators with the exact thresholds, summed onto exact levels."""
    owner = f"LTQ of layer {spec.layer!r}"
    try:
        ops = _staircase_ops(graph, spec)
    except N2UQInt8Error as error:
        problems.append(str(error))
        return []
    indicators, levels = ops.indicators, ops.levels
    weights, bias = indicators.inputs[1], (indicators.inputs[2] if len(indicators.inputs) > 2
                                           else None)
    count = len(spec.thresholds)
    if (weights.data is None or weights.dtype != "int8"
            or weights.scale.size not in (1, ops.indicator_weights.size)
            or (weights.scale.size > 1 and weights.quantized_dimension != 3) or bias is None
            or bias.data is None or bias.dtype != "int32"):
        problems.append(f"{owner}: {indicators.describe()} has no constant int8 kernel with "
                        "per-channel or per-tensor scales and int32 bias")
        return []
    if (not np.array_equal(weights.data.reshape(-1), ops.indicator_weights)
            or np.any(weights.zero_point != 0)):
        problems.append(f"{owner}: {indicators.describe()} kernel {weights.describe()} must be "
                        f"{int(ops.indicator_weights[0])} in every one of its "
                        f"{ops.indicator_weights.size} channels (K = {count} per input channel)")
    if not np.array_equal(bias.data.reshape(-1), ops.indicator_bias):
        wrong = int(np.count_nonzero(bias.data.reshape(-1) != ops.indicator_bias))
        problems.append(f"{owner}: {indicators.describe()} bias {bias.describe()} differs from "
                        f"±127·(z_u − g) + {_INDICATOR_BIAS} in {wrong} channel(s): the int8 "
                        "thresholds are not the export model's grid thresholds")
    output = indicators.outputs[0]
    if output.dtype != "int8" or output.scale.size != 1 or output.zero_point[0] != -128:
        problems.append(f"{owner}: indicator output {output.describe()} must be per-tensor int8 "
                        "with zero point -128 (real 0)")
    else:
        # acc = ±127·(u_q - g_q) + 64: 64·M must round to at least 255 (saturating at 127) and
        # -63·M to at most -1 (saturating at -128); XNNPACK takes M below 256.
        multipliers = [_requantization(indicators, c) for c in range(weights.scale.size)]
        multiplier, largest = min(multipliers), max(multipliers)
        if not (254.5 + 0.01) / _INDICATOR_BIAS <= multiplier <= largest < 256:
            problems.append(f"{owner}: {indicators.describe()} requantizes with multipliers "
                            f"{multiplier:.6g}..{largest:.6g}; the indicators saturate only for "
                            f"multipliers in [{254.51 / _INDICATOR_BIAS:.5g}, 256)")
    summing = levels.inputs[1]
    if (summing.data is None or not np.array_equal(summing.data, ops.levels_weights)
            or np.any(summing.zero_point != 0)
            or (summing.scale.size > 1 and summing.quantized_dimension != 0)):
        problems.append(f"{owner}: {levels.describe()} kernel {summing.describe()} must add "
                        f"the {count} indicators of each channel with int8 weight 127 (zero "
                        "elsewhere)")
    elif len(levels.inputs) > 2 and levels.inputs[2] is not None and (
            levels.inputs[2].data is None or np.any(levels.inputs[2].data != 0)):
        problems.append(f"{owner}: {levels.describe()} has a non-zero bias "
                        f"{levels.inputs[2].describe()}")
    step = np.float32(spec.level_step)
    tensor = levels.outputs[0]
    if tensor.dtype != "int8" or tensor.scale.size != 1:
        problems.append(f"{owner}: levels {tensor.describe()} is not per-tensor int8")
        return []
    if tensor.scale[0] != step or tensor.zero_point[0] != LEVELS_ZERO_POINT:
        problems.append(f"{owner}: levels {tensor.describe()} must have scale {step!r} "
                        f"(Δ·scale2) and zero point {LEVELS_ZERO_POINT}")
    elif summing.data is not None and summing.scale.size and output.scale.size == 1:
        # An indicator is -128 + 255·[passed], so n passed thresholds accumulate 127·255·n,
        # requantized by M: every n in 0..K must land on level n (with a margin for the
        # fixed-point multiplier).
        unit = max(abs(_requantization(levels, c) * _NARROW_MAX * _INT8_STEPS - 1)
                   for c in range(summing.scale.size))
        if unit * count >= 0.25:
            problems.append(f"{owner}: {levels.describe()} maps a count of passed thresholds "
                            f"n to n·(1 {unit:+.3g}), not to level n")
    return [(spec.layer, tensor.name, float(tensor.scale[0]), int(tensor.zero_point[0]))]


def _check_weights(graph: _Graph, spec: WeightSpec, problems: list[str]
                   ) -> tuple[str, int, float] | None:
    """Exact N2UQ kernel: int8, per-channel scales as given, every value ``k·m``, k odd."""
    owner = f"N2UQ kernel of layer {spec.layer!r}"
    try:
        op = _linear_op(graph, spec.layer, owner)
    except N2UQInt8Error as error:
        problems.append(str(error))
        return None
    weights = op.inputs[1]
    if weights.dtype != "int8" or weights.data is None:
        problems.append(f"{owner}: {op.describe()} weight {weights.describe()} is not a "
                        "constant int8 tensor")
        return None
    expected = np.asarray(spec.scales, np.float32)
    axis = weights.quantized_dimension
    if weights.scale.size != expected.size:
        problems.append(f"{owner}: {weights.describe()} has {weights.scale.size} scales, "
                        f"expected {expected.size} per-channel scales")
        return None
    deviation = float(np.max(np.abs(weights.scale.astype(np.float64) - expected)
                             / expected))
    if not np.array_equal(weights.scale, expected):
        problems.append(f"{owner}: {weights.describe()} scales differ from the exact ones "
                        f"α·|f|/(K·m) (max relative deviation {deviation:.3g}); the converter "
                        "did not keep the weight fake-quant")
    if np.any(weights.zero_point != 0):
        problems.append(f"{owner}: {weights.describe()} has non-zero zero points")
    values = np.moveaxis(weights.data.astype(np.int64), axis, 0).reshape(expected.size, -1)
    k_max = 2**spec.bits - 1
    odd = (values % spec.multiplier == 0) & ((values // spec.multiplier) % 2 != 0)
    zero_channel = (values == 0).all(axis=1, keepdims=True)
    in_range = np.abs(values) <= k_max * spec.multiplier
    if not ((odd & in_range) | zero_channel).all():
        bad = np.unique(values[~((odd & in_range) | zero_channel)])[:10].tolist()
        problems.append(f"{owner}: {weights.describe()} holds int8 values {bad} that are not "
                        f"k·{spec.multiplier} with odd |k| <= {k_max} (the weights were "
                        "re-quantized, not stored losslessly)")
    return spec.layer, int(expected.size), deviation


def check_n2uq_int8(source: Source, model: tf.keras.Model | None = None, *,
                    raise_on_failure: bool = True) -> N2UQInt8Check:
    """Verify that a flatbuffer is a full-integer N2UQ model with exact levels and weights.

    Rules (each violation names the op and tensor):

    * body ops are builtin; every op output is int8 with quantization parameters;
    * every op input is int8, except int32 *constants* in the operand slots that are integer by
      definition: conv/dense biases (int32 at scale ``s_in · s_w``, which the int8 kernels add
      to their int32 accumulators) and shape, axis, padding, size and index operands
      (``_INT32_OPERANDS``);
    * float32 appears only at the boundary: the model input may be float32 if QUANTIZE is its
      only reader, the output may be float32 if DEQUANTIZE produces it; no other QUANTIZE from
      float, no other DEQUANTIZE (so no float weights dequantized at run time either);
    * with ``model``, per LTQ (``staircase``): the one ``DEPTHWISE_CONV_2D`` under
      ``<layer>/ltq/`` reads a per-tensor int8 ``u`` whose scale is the export range's step and
      whose grid holds every export threshold; its kernel is ±127 in every channel and its bias
      exactly ``±127 · (z_u − g_q) + 64``; its output has zero point −128 and a requantization
      multiplier in ``[254.51 / 64, 256)`` (every indicator saturates, XNNPACK accepts it); the
      ``CONV_2D`` reading it has kernel 127 on each channel's K indicators and 0 elsewhere, no
      non-zero bias, and an output (the levels) with scale exactly ``Δ · |scale2|`` (float32
      equality) and zero point −128, onto which each count ``0..K`` requantizes to itself;
    * with ``model``: every N2UQ kernel is stored as int8 with exactly the per-channel scales of
      the export model and values ``k · m`` (odd ``|k| <= 2^bits - 1``).

    Args:
        source: ``.tflite`` path or flatbuffer bytes.
        model: the N2UQ Keras model or its export model, for the LTQ and weight checks; None
            checks the dtype rules only.
        raise_on_failure: raise ``N2UQInt8Error`` on any violation.

    Returns:
        An ``N2UQInt8Check``.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: if the data is not a TFLite flatbuffer.
        N2UQInt8Error: when ``raise_on_failure`` and a rule is broken; ``problems`` lists all.
    """
    graph, name, size = _read_graph(source)
    problems: list[str] = []
    if graph.subgraphs != 1:
        problems.append(f"model has {graph.subgraphs} subgraphs; control flow is not integer")
    input_quantization, output_quantization = _boundary_quantization(graph, problems)
    _check_body(graph, problems)
    levels_found: list = []
    weights_found: list = []
    if model is not None:
        levels_specs, weight_specs = int8_export_specs(model)
        for spec in levels_specs:
            levels_found.extend(_check_levels(graph, spec, problems))
        for spec in weight_specs:
            result = _check_weights(graph, spec, problems)
            if result is not None:
                weights_found.append(result)
    report = N2UQInt8Check(
        source=name, size_bytes=size,
        op_histogram=dict(Counter(op.name for op in graph.ops).most_common()),
        input_quantization=input_quantization, output_quantization=output_quantization,
        levels_tensors=tuple(levels_found), weight_layers=tuple(weights_found))
    if problems and raise_on_failure:
        listed = "\n  ".join(problems)
        raise N2UQInt8Error(f"{name} is not an exact full-integer N2UQ model "
                            f"({len(problems)} problem(s)):\n  {listed}", problems)
    return report


# --------------------------------------------------------------------------------------------
# Parity and size


def check_n2uq_int8_parity(model: tf.keras.Model, flatbuffer: bytes, images: np.ndarray, *,
                           min_top1_agreement: float = 0.99,
                           max_relative_delta: float = DEFAULT_INT8_MAX_RELATIVE_DELTA,
                           raise_on_failure: bool = True) -> ParityReport:
    """Compare an int8 N2UQ flatbuffer (float32 I/O) with the original Keras model.

    Runs ``tflbnn.converters.parity.check_parity`` (the LCE interpreter, whose builtin int8
    kernels are TFLite's) without the float32 rounding-noise calibration, which does not apply
    to an int8 model: the bound is ``max_relative_delta`` on the median per-image relative
    logit difference, and top-1 agreement must reach ``min_top1_agreement``.

    Args:
        model: the original N2UQ Keras model.
        flatbuffer: its ``convert_n2uq_int8`` flatbuffer with float32 input and output.
        images: preprocessed float32 images ``(N, H, W, C)``.
        min_top1_agreement: in [0, 1].
        max_relative_delta: bound on the median relative logit difference.
        raise_on_failure: raise ``ParityError`` when a threshold is missed.

    Returns:
        The ``ParityReport``.

    Raises:
        ValueError: for an int8-I/O flatbuffer, bad images or thresholds.
        ParityError: when ``raise_on_failure`` and a threshold is missed.
    """
    graph, name, _ = _read_graph(flatbuffer)
    if any(t.dtype != "float32" for t in (*graph.inputs, *graph.outputs)):
        raise ValueError(f"check_n2uq_int8_parity: {name} has int8 input or output; parity "
                         "needs the float32-I/O conversion (inference_io_type='float32')")
    return check_parity(model, flatbuffer, images, min_top1_agreement=min_top1_agreement,
                        max_logit_delta=max_relative_delta, rounding_noise=None,
                        raise_on_failure=raise_on_failure)


def n2uq_int8_size(model: tf.keras.Model, flatbuffer: bytes) -> SizeReport:
    """File size of the int8 flatbuffer against the plain float32 conversion of ``model``.

    Args:
        model: the original N2UQ Keras model (its float32 TFLite twin is converted here).
        flatbuffer: the int8 flatbuffer.

    Returns:
        A ``SizeReport`` whose ``lce_bytes`` is the int8 file (it runs on the LCE interpreter
        as well as on TFLite's).
    """
    return SizeReport(lce_bytes=len(flatbuffer), float_bytes=len(convert_float(model)))
