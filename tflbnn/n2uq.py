"""N2UQ quantizers: Nonuniform-to-Uniform Quantization (Liu et al., CVPR 2022, papers.md §3).

* :class:`N2UQActivationQuantizer` is the learnable-threshold quantizer (LTQ) with the
  generalised straight-through estimator (G-STE). It owns trainable weights (threshold start,
  interval lengths and two scales), so it is a Keras layer that Larq's quantized layers track
  as a sub-layer: ``lq.layers.QuantConv2D(..., input_quantizer=N2UQActivationQuantizer(bits=3))``
  trains its thresholds and saves them with the model. It also works as a standalone layer.
* :class:`N2UQWeightQuantizer` is the weight quantizer with the entropy-preserving per-channel
  normalisation, for ``kernel_quantizer`` / ``depthwise_quantizer``.
* :class:`LTQRelaxation` and :class:`PACTRelaxation` are the float twin's continuous stand-ins
  for the LTQ and for :class:`PACT` (the 4-bit activation quantizer of N2UQ's MobileNetV2).
  They live here, not in the zoo, so that any saved N2UQ model loads with only ``tflbnn``
  imported (the converters do not import the zoo).
* :func:`n2uq_threshold_variables` lists the LTQ weights of a model: the recipe trains them at a
  tenth of the learning rate (papers.md §3.5).

Both quantizers are usable by name: ``"n2uq_ltq"`` and ``"n2uq_weight"`` (2 bits), or with a
config, e.g. ``input_quantizer={"class_name": "n2uq_ltq", "config": {"bits": 3}}``.
"""

from tflbnn import _backend  # noqa: F401  (selects Keras 2 before TensorFlow is used)

from typing import Sequence

import larq as lq
import tensorflow as tf

from tflbnn.profiling import FLOAT_BITS

__all__ = ["LTQRelaxation", "N2UQActivationQuantizer", "N2UQWeightQuantizer", "PACT",
           "PACTRelaxation", "n2uq_threshold_variables"]

#: Bit widths the paper reports (W/A 2, 3 and 4 bits).
SUPPORTED_BITS = (2, 3, 4)

#: Interval lengths not above this are replaced by it in the forward, as in the reference code's
#: ``where(a > eps, a, eps)``: the thresholds stay ordered and the slopes ``Δ/a`` finite.
MIN_INTERVAL = 1e-3

#: Largest activation level before ``output_scale``: the levels are ``{0, Δ, ..., 2}``.
_TOP_LEVEL = 2.0


def _check_bits(bits: int, quantizer: str) -> int:
    if isinstance(bits, bool) or bits not in SUPPORTED_BITS:
        raise ValueError(f"{quantizer}: bits must be one of {SUPPORTED_BITS}, got {bits!r}")
    return int(bits)


def _level_step(bits: int) -> float:
    """Δ = 2 / (2^n - 1), the spacing of the activation levels (and of the weight levels)."""
    return 2.0 / (2**bits - 1)


@lq.utils.register_alias("n2uq_ltq")
@lq.utils.register_keras_custom_object
class N2UQActivationQuantizer(lq.quantizers.Quantizer):
    r"""N2UQ learnable-threshold activation quantizer (LTQ) with the G-STE gradient.

    Per tensor (one set of weights per layer, not per channel), with ``K = 2^bits - 1``:

    * ``z = x * input_scale``;
    * boundaries ``d_0 = start`` and ``d_i = start + a_1 + ... + a_i``, where each interval length
      ``a_i`` is replaced by ``MIN_INTERVAL`` when it is not above it (zero gradient to that
      ``a_i`` then);
    * forward: the level index is the number of thresholds ``d_{i-1} + a_i / 2`` (the interval
      midpoints) at or below ``z``, as in the paper's Eq. 2; the output is
      ``index * Δ * output_scale`` with ``Δ = 2 / K``, so levels are uniform in ``[0, 2]``
      before ``output_scale``;
    * backward (G-STE, papers.md §3.2): the gradient of the piecewise-linear expectation
      ``Δ (z - d_{i-1}) / a_i + (i - 1) Δ`` on ``d_{i-1} <= z < d_i``, ``0`` below ``start`` and
      the constant ``2`` from ``d_K`` on. ``x``, ``start``, every ``a_i`` and both scales get
      gradients.

    The reference code compares with ``>`` where the paper writes ``>=``; the two differ only for
    inputs exactly on a threshold or boundary. This follows the paper.

    Weights, created in ``build`` with recognisable names: ``start`` (scalar), ``intervals``
    (``K`` lengths ``a_i``), ``input_scale`` and ``output_scale`` (scalars).

    Args:
        bits: activation bit width n, one of 2, 3, 4.
        start_initializer: initial ``start`` (the paper's 0).
        interval_initializer: initial length of every interval; ``None`` means ``Δ = 2 / K``,
            the paper's value, which makes the initial quantizer uniform on ``[0, 2]``.
        input_scale_initializer: initial ``input_scale`` (the paper's ``scale1``, 1).
        output_scale_initializer: initial ``output_scale`` (the paper's ``scale2``, 1).
        **kwargs: Keras layer arguments (``name``, ``trainable``, ...).

    Raises:
        ValueError: for bits outside ``SUPPORTED_BITS`` or an initial interval length not above
            ``MIN_INTERVAL``.
    """

    def __init__(
        self,
        bits: int = 2,
        start_initializer: float = 0.0,
        interval_initializer: float | None = None,
        input_scale_initializer: float = 1.0,
        output_scale_initializer: float = 1.0,
        **kwargs,
    ):
        self.bits = _check_bits(bits, type(self).__name__)
        if interval_initializer is not None and not interval_initializer > MIN_INTERVAL:
            raise ValueError(f"{type(self).__name__}: interval_initializer must be above "
                             f"{MIN_INTERVAL}, got {interval_initializer!r}")
        self.start_initializer = float(start_initializer)
        self.interval_initializer = (None if interval_initializer is None
                                     else float(interval_initializer))
        self.input_scale_initializer = float(input_scale_initializer)
        self.output_scale_initializer = float(output_scale_initializer)
        # Output precision in bits, read by larq's summary and tflbnn.profiling.
        self.precision = self.bits
        super().__init__(**kwargs)

    @property
    def num_intervals(self) -> int:
        """K = 2^bits - 1, the number of learnable intervals (and of non-zero levels)."""
        return 2**self.bits - 1

    def build(self, input_shape):
        interval = (_level_step(self.bits) if self.interval_initializer is None
                    else self.interval_initializer)
        self.start = self._scalar_weight("start", self.start_initializer)
        self.intervals = self.add_weight(
            name="intervals", shape=(self.num_intervals,),
            initializer=tf.keras.initializers.Constant(interval))
        self.input_scale = self._scalar_weight("input_scale", self.input_scale_initializer)
        self.output_scale = self._scalar_weight("output_scale", self.output_scale_initializer)
        super().build(input_shape)

    def _scalar_weight(self, name: str, value: float) -> tf.Variable:
        return self.add_weight(name=name, shape=(),
                               initializer=tf.keras.initializers.Constant(value))

    def call(self, inputs):
        x = inputs * self.input_scale
        # tf.where, not tf.maximum: a clamped interval gets exactly zero gradient (papers.md §3.2).
        lengths = tf.where(self.intervals > MIN_INTERVAL, self.intervals,
                           tf.constant(MIN_INTERVAL, x.dtype))
        ends = self.start + tf.cumsum(lengths)  # d_1 .. d_K
        starts = tf.concat([tf.reshape(self.start, [1]), ends[:-1]], axis=0)  # d_0 .. d_{K-1}
        hard = self._uniform_levels(x, starts + lengths / 2)
        soft = self._expected_levels(x, starts, ends[-1], lengths)
        # Value of `hard`, gradient of `soft`. The bracket is exactly 0, so the forward value is
        # exactly a level (hard + soft - soft could be off by an ulp).
        quantized = tf.stop_gradient(hard) + (soft - tf.stop_gradient(soft))
        return quantized * self.output_scale

    def _uniform_levels(self, x: tf.Tensor, thresholds: tf.Tensor) -> tf.Tensor:
        """Level ``i Δ`` for ``x`` at or above the i-th threshold (they increase), else 0."""
        step = _level_step(self.bits)
        levels = tf.zeros_like(x)
        for i, threshold in enumerate(tf.unstack(thresholds)):
            levels = tf.where(x >= threshold, tf.constant((i + 1) * step, x.dtype), levels)
        return levels

    def _expected_levels(self, x: tf.Tensor, starts: tf.Tensor, end: tf.Tensor,
                         lengths: tf.Tensor) -> tf.Tensor:
        """G-STE: the expected level of stochastic rounding within each interval (Eq. 8-10)."""
        step = _level_step(self.bits)
        expected = tf.zeros_like(x)  # below d_0
        # Later intervals overwrite earlier ones: an input ends in the last interval it is past.
        for i, (interval_start, length) in enumerate(zip(tf.unstack(starts),
                                                         tf.unstack(lengths))):
            ramp = step / length * (x - interval_start) + i * step
            expected = tf.where(x >= interval_start, ramp, expected)
        return tf.where(x >= end, tf.constant(_TOP_LEVEL, x.dtype), expected)

    def get_config(self):
        return {
            **super().get_config(),
            "bits": self.bits,
            "start_initializer": self.start_initializer,
            "interval_initializer": self.interval_initializer,
            "input_scale_initializer": self.input_scale_initializer,
            "output_scale_initializer": self.output_scale_initializer,
        }


@lq.utils.register_alias("n2uq_weight")
@lq.utils.register_keras_custom_object
class N2UQWeightQuantizer(lq.quantizers.Quantizer):
    r"""N2UQ weight quantizer with entropy-preserving per-channel normalisation (papers.md §3.3).

    For each output channel c, with ``γ = (2^n - 1) / 2^(n-1)``:

    * ``α_c = γ · mean(|W_c|)``, treated as a constant;
    * ``W' = clip(W / α_c, -1, 1)``;
    * ``W_q = α_c · (round((W' + 1)(2^n - 1) / 2) · 2 / (2^n - 1) - 1)``: ``2^n`` symmetric
      levels without zero, e.g. ``α_c · {-1, -1/3, 1/3, 1}`` for 2 bits. ``round`` is
      half-to-even, as ``torch.round`` in the reference code;
    * backward: straight-through on ``W / α_c``, i.e. ``dL/dW = dL/dW_q / α_c``, with no clip
      mask.

    A channel whose weights are all zero has ``α_c = 0``; it is divided by 1 instead, so its
    quantized weights are 0 (the reference code gives NaN there) and its gradient is the plain
    straight-through ``dL/dW_q``.

    Args:
        bits: weight bit width n, one of 2, 3, 4.
        axis: the kernel axis, or axes, that index output channels; ``α`` is the mean over all
            other axes. The default ``-1`` fits Keras ``Conv2D`` (HWIO) and ``Dense`` (IO)
            kernels. Keras ``DepthwiseConv2D`` kernels are ``(h, w, in_channels,
            depth_multiplier)`` with output channel ``c * depth_multiplier + m``, so use
            ``axis=(2, 3)`` there.
        **kwargs: Keras layer arguments.

    Raises:
        ValueError: for bits outside ``SUPPORTED_BITS``, or an empty or non-integer ``axis``;
            when called, for an axis outside the kernel's rank.
    """

    def __init__(self, bits: int = 2, axis: int | Sequence[int] = -1, **kwargs):
        self.bits = _check_bits(bits, type(self).__name__)
        self.axis = _check_axis(axis, type(self).__name__)
        self.precision = self.bits
        super().__init__(**kwargs)

    def call(self, inputs):
        channel_axes = _resolve_axes(self.axis, inputs.shape.rank, self.name)
        reduce_axes = [a for a in range(inputs.shape.rank) if a not in channel_axes]
        gamma = (2**self.bits - 1) / 2 ** (self.bits - 1)
        alpha = tf.stop_gradient(
            gamma * tf.reduce_mean(tf.abs(inputs), axis=reduce_axes, keepdims=True))
        # An all-zero channel (e.g. pruned) has alpha = 0: divide by 1 instead, so it stays
        # zero (alpha * levels) rather than NaN as in the reference code.
        normalised = inputs / tf.where(alpha > 0.0, alpha, tf.ones_like(alpha))
        half_steps = (2**self.bits - 1) / 2
        clipped = tf.clip_by_value(normalised, -1.0, 1.0)
        levels = tf.round((clipped + 1.0) * half_steps) / half_steps - 1.0
        # Value alpha * levels exactly; gradient of `normalised`, i.e. 1 / alpha without a clip
        # mask (the reference code's `quan.detach() - scaled.detach() + scaled`).
        return tf.stop_gradient(alpha * levels) + (normalised - tf.stop_gradient(normalised))

    def get_config(self):
        axis = self.axis if isinstance(self.axis, int) else list(self.axis)
        return {**super().get_config(), "bits": self.bits, "axis": axis}


def _check_axis(axis: int | Sequence[int], quantizer: str) -> int | tuple[int, ...]:
    """An int, or a non-empty tuple of ints (a list from a JSON config becomes a tuple)."""
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else ()
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"{quantizer}: axis must be an int or a non-empty sequence of ints, "
                         f"got {axis!r}")
    return axes


def _resolve_axes(axis: int | tuple[int, ...], rank: int, name: str) -> set[int]:
    axes = (axis,) if isinstance(axis, int) else axis
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"{name}: axis {axis} is out of range for a kernel of rank {rank}")
    return {a % rank for a in axes}


def n2uq_threshold_variables(model: tf.keras.layers.Layer) -> list[tf.Variable]:
    """The trainable weights of every N2UQ activation quantizer in ``model``.

    These are the thresholds and scales (``start``, ``intervals``, ``input_scale``,
    ``output_scale``) that the N2UQ recipe trains at a tenth of the learning rate. Quantizers are
    found wherever they sit: standalone layers, ``input_quantizer`` of Larq layers, nested
    models. They are found by type rather than by variable name because Keras does not keep
    names stable (a model loaded from ``.keras`` has unscoped names such as ``start:0``).

    Args:
        model: a Keras model or layer.

    Returns:
        The variables in ``model.trainable_weights`` order, each once; empty when the model has
        no trainable ``N2UQActivationQuantizer``.
    """
    quantizers = [module for module in (model, *model.submodules)
                  if isinstance(module, N2UQActivationQuantizer)]
    wanted = {variable.ref() for quantizer in quantizers
              for variable in quantizer.trainable_weights}
    return [variable for variable in model.trainable_weights if variable.ref() in wanted]


@lq.utils.register_keras_custom_object
class LTQRelaxation(N2UQActivationQuantizer):
    r"""The continuous relaxation of the N2UQ activation quantizer, for the float twin.

    It owns the same weights as ``N2UQActivationQuantizer(bits)`` (``start``, ``intervals``,
    ``input_scale``, ``output_scale``) and computes the piecewise-linear function whose gradient
    is the quantizer's G-STE (papers.md §3.2), without rounding:

    ``y = output_scale · Σ_i Δ · clip((x · input_scale - d_{i-1}) / a_i, 0, 1)``

    with ``Δ = 2 / (2^bits - 1)``, interval lengths ``a_i`` (clamped as in the quantizer) and
    starts ``d_{i-1}``. At the initial values (``start = 0``, ``a_i = Δ``, scales 1) this is
    ``clip(x, 0, 2)`` for every ``bits``. The float twin builds it with ``trainable=False`` so
    those values stay the quantizer's initial ones. ``precision`` is ``FLOAT_BITS``: its output
    is float.

    Args:
        bits: sets the number of intervals, so that the weights match the quantizer's.
        **kwargs: ``N2UQActivationQuantizer`` arguments (initialisers, layer arguments).

    Raises:
        ValueError: as ``N2UQActivationQuantizer``.
    """

    def __init__(self, bits: int = 2, **kwargs):
        super().__init__(bits=bits, **kwargs)
        self.precision = FLOAT_BITS

    def call(self, inputs):
        x = inputs * self.input_scale
        lengths = tf.where(self.intervals > MIN_INTERVAL, self.intervals,
                           tf.constant(MIN_INTERVAL, x.dtype))
        starts = self.start + tf.cumsum(lengths, exclusive=True)
        step = _TOP_LEVEL / self.num_intervals
        # Within interval i the earlier ramps are saturated at 1 and the later ones at 0, which
        # is the G-STE expectation (i - 1)Δ + Δ (x - d_{i-1}) / a_i.
        ramps = [step * tf.clip_by_value((x - start) / length, 0.0, 1.0)
                 for start, length in zip(tf.unstack(starts), tf.unstack(lengths))]
        return tf.add_n(ramps) * self.output_scale


@lq.utils.register_alias("pact")
@lq.utils.register_keras_custom_object
class PACT(lq.quantizers.Quantizer):
    r"""PACT activation quantizer (Choi et al., 2018) as N2UQ's MobileNetV2 code uses it.

    With a learnable clip value ``α`` (one scalar, initialised at 2 as in the reference code)
    and ``K = 2^bits - 1``:

    * ``c = min(relu(x), α)``;
    * forward: ``round(c · K / α) · α / K``, ``K + 1`` uniform levels in ``[0, α]``;
    * backward, as the reference's ``round(c·n)/n + c - c.detach()`` gives it (the rounded term
      is not detached, only ``round`` itself has no gradient): ``∂y/∂x = 1`` on ``0 < x < α``
      and 0 elsewhere; ``∂y/∂α = round(c K / α) / K`` below ``α`` and ``2`` at or above it
      (the original PACT paper has 0 and 1).

    Args:
        bits: activation bit width, 2 to 8.
        clip_initializer: initial ``α``, positive.
        **kwargs: Keras layer arguments.

    Raises:
        ValueError: for bits outside 2..8 or a non-positive initial clip value.
    """

    def __init__(self, bits: int = 4, clip_initializer: float = _TOP_LEVEL, **kwargs):
        if isinstance(bits, bool) or bits not in range(2, 9):
            raise ValueError(f"{type(self).__name__}: bits must be an integer in 2..8, "
                             f"got {bits!r}")
        if not clip_initializer > 0:
            raise ValueError(f"{type(self).__name__}: clip_initializer must be positive, "
                             f"got {clip_initializer!r}")
        self.bits = int(bits)
        self.clip_initializer = float(clip_initializer)
        # Output precision in bits, read by larq's summary and tflbnn.profiling.
        self.precision = self.bits
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.clip_value = self.add_weight(
            name="clip_value", shape=(),
            initializer=tf.keras.initializers.Constant(self.clip_initializer))
        super().build(input_shape)

    def _clipped(self, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.nn.relu(inputs)
        # tf.where, as the reference's torch.where: inputs at or above α pass their gradient to α.
        return tf.where(x < self.clip_value, x, self.clip_value)

    def call(self, inputs):
        clipped = self._clipped(inputs)
        levels_per_unit = (2**self.bits - 1) / self.clip_value
        rounded = tf.round(clipped * levels_per_unit) / levels_per_unit
        return rounded + (clipped - tf.stop_gradient(clipped))

    def get_config(self):
        return {**super().get_config(), "bits": self.bits,
                "clip_initializer": self.clip_initializer}


@lq.utils.register_keras_custom_object
class PACTRelaxation(PACT):
    """PACT without rounding, ``min(relu(x), α)``: the float twin's stand-in for :class:`PACT`.

    Same weight (``clip_value``) and arguments as ``PACT``; the float twin builds it with
    ``trainable=False`` so ``α`` stays at its initial value. ``precision`` is ``FLOAT_BITS``.
    """

    def __init__(self, bits: int = 4, clip_initializer: float = _TOP_LEVEL, **kwargs):
        super().__init__(bits=bits, clip_initializer=clip_initializer, **kwargs)
        self.precision = FLOAT_BITS

    def call(self, inputs):
        return self._clipped(inputs)
