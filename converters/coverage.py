"""Check that every binary layer of a Keras model became an ``LceBconv2d`` in the flatbuffer.

The LCE converter never fails when it does not recognise a binary pattern: it silently keeps a
float op, and the model then has the size and speed of a float network. This module finds those
layers. Keras layers are matched to ``LceBconv2d`` ops by signature (kernel size, channels in,
filters, strides, dilation, groups, output size) as a multiset, because the converter renames
and truncates tensor names.

A layer is binary when its kernel quantizer *computes* ±alpha per output channel (or a sign
with 0 at 0, like ``tf.sign``), whatever it declares: quantizers are probed on fixed inputs
(``tflbnn.converters.quantizer_probe``), so string, object, custom-class and plain-function
quantizers (``tf.where`` signs, as in LCE's own tests) are all recognised. Its input is binary
when its input quantizer, or else the layer feeding it (``RSign``), computes exactly ±1. A
quantizer that cannot be classified is reported by layer name and never certified: it fails
strict coverage like a float fall-back.

Binary layers fall in three kinds:

* **eligible**: NHWC ``Conv2D`` layers with binary (±1) inputs whose groups have a multiple of
  32 input channels (or no groups). LCE can and must convert them; one that stays float fails
  strict coverage.
* **not eligible by LCE's rules**: depthwise convolutions and grouped convolutions with a
  number of input channels per group that is not a multiple of 32 (BiMLP's 1×7 / 7×1 token
  mixers have 1 or 2). LCE has no binary kernel for them (its converter prints an "Invalid
  binary grouped convolution" error for such a grouped conv and keeps a float ``CONV_2D``), so
  they run as float ops by design. They never fail strict coverage but are reported, with
  their share of binary MACs, in the report, its summary and a ``CoverageWarning``.
* **misused**: binary ``Dense`` layers, binary kernels on float (or ±2, or ``tf.sign``'s
  {-1, 0, 1}) inputs, transposed or ``channels_first`` convolutions. These also stay float, but
  a rewrite makes them convert (a 1×1 conv, an ``RSign`` input, ...), so they count as eligible
  and fail strict coverage.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tflbnn.profiling import flatten_layers, profile
from tflbnn.converters.flatbuffer import (LCE_BCONV, OpInfo, Source, TFLiteModelInfo, bconv_groups,
                                          read_tflite)
from tflbnn.converters.quantizer_probe import (FLOAT, SIGN_WITH_ZERO, Computation, ProbeError,
                                               input_computation, kernel_computation)

__all__ = [
    "CoverageError",
    "CoverageWarning",
    "LayerCoverage",
    "CoverageReport",
    "binary_layers",
    "check_coverage",
    "needs_coverage",
]


class CoverageError(ValueError):
    """Binary layers that did not become ``LceBconv2d``; ``report`` holds the details."""

    def __init__(self, message: str, report: "CoverageReport"):
        super().__init__(message)
        self.report = report


class CoverageWarning(UserWarning):
    """Issued instead of ``CoverageError`` when float fall-back is allowed."""


@dataclasses.dataclass(frozen=True)
class LayerCoverage:
    """The fate of one binary-kernel Keras layer.

    Attributes:
        name: Keras layer name.
        layer_type: Keras class name.
        macs: multiply-accumulates of the layer (from ``tflbnn.profiling``).
        mac_share: ``macs`` over the MACs of all binary-kernel layers (0..1).
        converted: whether an ``LceBconv2d`` was matched to it.
        reason: why it was not converted, ``None`` when converted.
        signature: the attributes used for matching.
        eligible: whether LCE's rules allow an ``LceBconv2d`` for it (module docstring); False
            for depthwise convolutions and grouped ones whose channels per group are not a
            multiple of 32, which run as float ops by design.
        kernel_values: what its kernel quantizer computes (e.g. "±alpha per output channel"),
            ``None`` when that cannot be told.
        input_values: what its input is (e.g. "±1", "float from 'bn' (BatchNormalization)"),
            ``None`` when not needed (ineligible layers) or when that cannot be told.
        determined: False when a quantizer of the layer, or the layer feeding it, could not be
            classified (``reason`` says which and why): such a layer is never certified and
            counts as a failure even if an ``LceBconv2d`` has its signature.
    """

    name: str
    layer_type: str
    macs: int
    mac_share: float
    converted: bool
    reason: str | None
    signature: dict[str, Any]
    eligible: bool = True
    kernel_values: str | None = None
    input_values: str | None = None
    determined: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CoverageReport:
    """Binary-layer coverage of a conversion.

    Attributes:
        layers: one entry per binary-kernel layer, in model order.
        op_histogram: operator name → count in the flatbuffer.
        unattributed_bconvs: ``LceBconv2d`` ops matched to no binary Keras layer.
    """

    layers: tuple[LayerCoverage, ...]
    op_histogram: dict[str, int]
    unattributed_bconvs: int = 0

    @property
    def num_binary_layers(self) -> int:
        return len(self.layers)

    @property
    def num_converted(self) -> int:
        return sum(layer.converted for layer in self.layers)

    @property
    def not_converted(self) -> tuple[LayerCoverage, ...]:
        """Every layer without an ``LceBconv2d``, eligible or not."""
        return tuple(layer for layer in self.layers if not layer.converted)

    @property
    def not_certified(self) -> tuple[LayerCoverage, ...]:
        """Layers whose quantizers (or the layer feeding them) could not be classified."""
        return tuple(layer for layer in self.layers if not layer.determined)

    @property
    def ineligible(self) -> tuple[LayerCoverage, ...]:
        """Layers LCE's rules keep in float (depthwise, < 32 or odd channels per group)."""
        return tuple(layer for layer in self.layers if not layer.eligible)

    @property
    def failures(self) -> tuple[LayerCoverage, ...]:
        """Eligible layers that did not become ``LceBconv2d``, and layers whose quantizers could
        not be classified: what strict coverage rejects."""
        return tuple(layer for layer in self.layers
                     if (layer.eligible and not layer.converted) or not layer.determined)

    @staticmethod
    def _share(layers: tuple[LayerCoverage, ...], of: tuple[LayerCoverage, ...]) -> float | None:
        total = sum(layer.macs for layer in of)
        if total == 0:
            return None
        return sum(layer.macs for layer in layers) / total

    @property
    def converted_mac_share(self) -> float | None:
        """Fraction of binary-kernel MACs that run in ``LceBconv2d``; None if MACs are unknown."""
        return self._share(tuple(layer for layer in self.layers if layer.converted), self.layers)

    @property
    def eligible_converted_mac_share(self) -> float | None:
        """Fraction of the *eligible* layers' MACs that run in ``LceBconv2d`` (1.0 when strict
        coverage passes); None without eligible MACs."""
        eligible = tuple(layer for layer in self.layers if layer.eligible)
        return self._share(tuple(layer for layer in eligible if layer.converted), eligible)

    @property
    def ineligible_mac_share(self) -> float:
        """Fraction of binary-kernel MACs in layers not eligible by LCE's rules (run in float)."""
        return self._share(self.ineligible, self.layers) or 0.0

    @property
    def complete(self) -> bool:
        """Every eligible layer became ``LceBconv2d`` (ineligible ones are reported apart)."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_binary_layers": self.num_binary_layers,
            "num_converted": self.num_converted,
            "num_eligible": self.num_binary_layers - len(self.ineligible),
            "converted_mac_share": self.converted_mac_share,
            "eligible_converted_mac_share": self.eligible_converted_mac_share,
            "ineligible_mac_share": self.ineligible_mac_share,
            "not_converted": [layer.as_dict() for layer in self.not_converted],
            "not_eligible": [layer.as_dict() for layer in self.ineligible],
            "not_certified": [layer.as_dict() for layer in self.not_certified],
            "layers": [layer.as_dict() for layer in self.layers],
            "unattributed_bconvs": self.unattributed_bconvs,
            "op_histogram": dict(self.op_histogram),
        }

    def ineligible_note(self) -> str | None:
        """One line naming the layers LCE's rules keep in float, or None when there are none."""
        if not self.ineligible:
            return None
        names = ", ".join(f"{layer.name} ({100 * layer.mac_share:.1f}%)"
                          for layer in self.ineligible)
        return (f"{len(self.ineligible)} of {self.num_binary_layers} binary layer(s) are not "
                f"eligible for {LCE_BCONV} by LCE's rules and run as float ops "
                f"({100 * self.ineligible_mac_share:.1f}% of binary MACs): {names}")

    def summary(self) -> str:
        share = self.converted_mac_share
        share_text = "n/a" if share is None else f"{100 * share:.1f}%"
        lines = [f"coverage: {self.num_converted}/{self.num_binary_layers} binary layers became "
                 f"{LCE_BCONV} ({share_text} of binary-kernel MACs)"]
        if self.ineligible:
            eligible = self.eligible_converted_mac_share
            eligible_text = "n/a" if eligible is None else f"{100 * eligible:.1f}%"
            num_eligible = self.num_binary_layers - len(self.ineligible)
            lines.append(f"  eligible by LCE's rules: {num_eligible} layers, {eligible_text} of "
                         "their MACs converted; not eligible: "
                         f"{len(self.ineligible)} layers, {100 * self.ineligible_mac_share:.1f}% "
                         "of binary MACs, run in float")
        for layer in self.layers:
            if layer.converted and layer.determined:
                continue
            status = ("NOT certified" if not layer.determined
                      else "not eligible" if not layer.eligible else "NOT converted")
            lines.append(f"  {status}: {layer.name} ({layer.layer_type}, "
                         f"{100 * layer.mac_share:.1f}% of binary MACs): {layer.reason}")
        if self.unattributed_bconvs:
            lines.append(f"  {self.unattributed_bconvs} {LCE_BCONV} op(s) matched no binary "
                         "Keras layer")
        histogram = ", ".join(f"{name}×{count}" for name, count in self.op_histogram.items())
        lines.append(f"ops: {histogram}")
        return "\n".join(lines)


def binary_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """Every layer (nested models walked into) whose kernel quantizer computes binary values.

    Binary means ±alpha per output channel, or a sign with 0 at 0 (module docstring), found by
    probing the quantizer, not from its declared ``precision``.

    Args:
        model: a built Keras model.

    Returns:
        The layers in model order.

    Raises:
        ValueError: (a ``ProbeError``) naming the first layer whose kernel quantizer cannot be
            classified, and why.
    """
    layers = []
    for layer in flatten_layers(model):
        computed = kernel_computation(layer)
        if computed is not None and computed.binary:
            layers.append(layer)
    return layers


def needs_coverage(layer: tf.keras.layers.Layer) -> bool:
    """Whether ``check_coverage`` lists ``layer``: its kernel quantizer computes binary values,
    or cannot be classified (it is then reported, never certified).

    Args:
        layer: any Keras layer.

    Returns:
        True for a binary or unclassifiable kernel quantizer, False otherwise (no quantizer,
        low-bit or float).
    """
    try:
        computed = kernel_computation(layer)
    except ProbeError:
        return True
    return computed is not None and computed.binary


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _output_hw(layer: tf.keras.layers.Layer) -> tuple[int | None, int | None]:
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):
        # A layer called more than once has no single output shape; match on the rest.
        return (None, None)
    return (shape[1], shape[2])


def _layer_signature(layer: tf.keras.layers.Layer) -> dict[str, Any]:
    kernel_h, kernel_w, _, filters = (int(d) for d in layer.kernel.shape)
    groups = int(getattr(layer, "groups", 1) or 1)
    return {
        "kernel": (kernel_h, kernel_w),
        "channels_in": int(layer.kernel.shape[2]) * groups,
        "filters": filters,
        "strides": _pair(layer.strides),
        "dilation": _pair(layer.dilation_rate),
        "groups": groups,
        "output_hw": _output_hw(layer),
    }


def _op_signature(op: OpInfo) -> dict[str, Any]:
    options = op.options or {}
    filter_shape = op.inputs[1].shape  # OHWI
    output_shape = op.outputs[0].shape
    return {
        "kernel": (filter_shape[1], filter_shape[2]),
        "channels_in": int(options.get("channels_in", 0)),
        "filters": filter_shape[0],
        "strides": (int(options.get("stride_height", 1)), int(options.get("stride_width", 1))),
        "dilation": (int(options.get("dilation_height_factor", 1)),
                     int(options.get("dilation_width_factor", 1))),
        "groups": bconv_groups(op),
        "output_hw": (output_shape[1], output_shape[2]) if len(output_shape) == 4 else (None, None),
    }


def _matches(layer_sig: dict[str, Any], op_sig: dict[str, Any]) -> bool:
    for key, wanted in layer_sig.items():
        found = op_sig[key]
        if isinstance(wanted, tuple):
            if any(w is not None and w != f for w, f in zip(wanted, found)):
                return False
        elif wanted is not None and wanted != found:
            return False
    return True


def _format_signature(sig: dict[str, Any]) -> str:
    return (f"{sig['kernel'][0]}x{sig['kernel'][1]}, {sig['channels_in']}->{sig['filters']} "
            f"channels, strides {sig['strides']}, dilation {sig['dilation']}, groups "
            f"{sig['groups']}, output {sig['output_hw'][0]}x{sig['output_hw'][1]}")


#: LCE bitpacks channels in 32-bit words; grouped bconvs need whole words per group.
_LCE_GROUP_CHANNELS = 32


def _ineligible_reason(layer: tf.keras.layers.Layer) -> str | None:
    """Why LCE's rules give this binary-kernel layer no bconv kernel, or None if they do."""
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return "LCE has no binary depthwise kernel; it runs as a float DEPTHWISE_CONV_2D"
    groups = int(getattr(layer, "groups", 1) or 1)
    if isinstance(layer, tf.keras.layers.Conv2D) and groups > 1:
        per_group = int(layer.kernel.shape[2])
        if per_group % _LCE_GROUP_CHANNELS:
            return (f"grouped convolution with {per_group} input channel(s) per group; LCE only "
                    f"converts grouped binary convolutions with a multiple of "
                    f"{_LCE_GROUP_CHANNELS} per group, so it runs as a float op")
    return None


def _input_reason(computed: Computation) -> str | None:
    """Why an input of this kind keeps the conv in float, or None for exactly ±1."""
    if computed.exactly_pm_one:
        return None
    if computed.kind == SIGN_WITH_ZERO:
        return (f"its input is {computed.description}: LCE's binary tensors hold only ±1, so "
                "the converter keeps the float sign and a float CONV_2D (use larq.math.sign or "
                "tf.where(x >= 0, 1.0, -1.0))")
    if computed.binary:
        return (f"its input is {computed.description}, not ±1: LCE's binary input must be "
                "exactly ±1 (tf.where(x >= 0, 1.0, -1.0) or larq's sign), so it stays a float "
                "CONV_2D")
    return (f"its input is not binary ({computed.description}; no ±1 input_quantizer and not "
            "fed by a ±1 layer such as RSign), so it stays a float CONV_2D with ±alpha weights")


def _quantized_kernel(layer: tf.keras.layers.Layer) -> np.ndarray:
    """The kernel the converter folds: the kernel quantizer applied to the latent kernel."""
    kernel = layer.kernel
    latent = getattr(kernel, "latent_variable", kernel)
    return np.asarray(layer.kernel_quantizer(tf.convert_to_tensor(latent)))


def _kernel_reason(layer: tf.keras.layers.Layer, computed: Computation) -> str | None:
    """Why this layer's quantized kernel is not ±alpha per output channel, or None."""
    if computed.kind != SIGN_WITH_ZERO:
        return None
    zeros = int(np.count_nonzero(_quantized_kernel(layer) == 0))
    if not zeros:
        return None  # no weight is exactly 0, so the folded filter is ±alpha after all
    return (f"its kernel_quantizer computes {computed.description} and {zeros} weight(s) are "
            "exactly 0: LCE's binary filter holds only ±alpha per output channel, so it stays "
            "a float CONV_2D")


def _fallback_reason(layer: tf.keras.layers.Layer, kernel: Computation,
                     inputs: Computation) -> str | None:
    """Why LCE does not turn this eligible binary-kernel layer into a bconv, or None if it should.

    Every reason here is a fixable use of a layer; depthwise and narrow grouped convolutions
    are ``_ineligible_reason``'s.

    Args:
        layer: the binary-kernel layer.
        kernel: what its kernel quantizer computes.
        inputs: what its input is (``input_computation``).
    """
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        return "LCE has no binary transposed convolution; it runs as float TRANSPOSE_CONV"
    if isinstance(layer, tf.keras.layers.Dense):
        return ("LCE has no binary fully-connected kernel; it runs as a float FULLY_CONNECTED "
                "(use Reshape((1, 1, -1)) + a 1x1 QuantConv2D instead)")
    if not isinstance(layer, tf.keras.layers.Conv2D):
        return "LCE converts only 2-D convolutions to LceBconv2d"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "LCE needs channels_last (NHWC) convolutions"
    return _input_reason(inputs) or _kernel_reason(layer, kernel)


@dataclasses.dataclass
class _Candidate:
    """A layer the coverage lists: a binary kernel quantizer, or one that cannot be classified."""

    layer: tf.keras.layers.Layer
    kernel: Computation | None
    error: str | None = None


def _candidates(model: tf.keras.Model) -> tuple[list[_Candidate], list[str]]:
    """The layers to cover, and "name (what its kernel computes)" of the other quantized ones."""
    candidates, others = [], []
    for layer in flatten_layers(model):
        try:
            kernel = kernel_computation(layer)
        except ProbeError as error:
            candidates.append(_Candidate(layer, None, str(error)))
            continue
        if kernel is None:
            continue
        if kernel.binary:
            candidates.append(_Candidate(layer, kernel))
        elif kernel.kind != FLOAT:
            others.append(f"{layer.name} ({kernel.description})")
    return candidates, others


def check_coverage(
    model: tf.keras.Model,
    flatbuffer: Source | TFLiteModelInfo,
    *,
    strict: bool = True,
) -> CoverageReport:
    """Match the binary layers of ``model`` to the ``LceBconv2d`` ops of its conversion.

    Args:
        model: the Keras model that was converted (built).
        flatbuffer: the LCE flatbuffer (bytes, a path, or a ``read_tflite`` result).
        strict: raise ``CoverageError`` when an eligible binary layer (module docstring) was
            not converted, or a layer's quantizer could not be classified; with False a
            ``CoverageWarning`` is issued instead. Layers not eligible by LCE's rules never
            raise: a ``CoverageWarning`` names them with their share of binary MACs, strict or
            not.

    Returns:
        A ``CoverageReport``.

    Raises:
        ValueError: if the model has no binary layers (naming its low-bit quantized layers, if
            any), or the flatbuffer is not TFLite.
        CoverageError: (strict only) naming each eligible binary layer that runs in float, with
            its share of binary MACs and the reason, and each layer that cannot be certified.
    """
    candidates, others = _candidates(model)
    if not candidates:
        found = (f"; its quantized layers compute low-bit values: {', '.join(others[:5])}"
                 f"{' ...' if len(others) > 5 else ''}" if others else "")
        raise ValueError(f"model {model.name!r} has no binary layers (no kernel quantizer "
                         f"computes ±alpha per output channel){found}; there is nothing for LCE "
                         "to accelerate — convert it with tf.lite.TFLiteConverter instead")
    info = flatbuffer if isinstance(flatbuffer, TFLiteModelInfo) else read_tflite(flatbuffer)
    macs = {entry.name: entry.binary_macs + entry.lowbit_macs + entry.float_macs
            for entry in profile(model).layers}
    total_macs = sum(macs.get(candidate.layer.name, 0) for candidate in candidates)

    free_ops = [(op, _op_signature(op)) for op in info.ops_named(LCE_BCONV)]
    matched_signatures: list[dict[str, Any]] = []
    entries = []
    # Both lists are in topological order, so the greedy pass is a multiset match; when several
    # layers share a signature and some are missing, the later ones are reported (which of
    # them fell back cannot be told from the flatbuffer).
    for candidate in candidates:
        layer = candidate.layer
        reason = _ineligible_reason(layer)
        eligible = reason is None
        input_values = None
        determined = candidate.error is None
        if not determined:
            reason = candidate.error
        elif eligible:
            try:
                inputs = input_computation(layer)
            except ProbeError as error:
                reason, determined = str(error), False
            else:
                input_values = inputs.description
                reason = _fallback_reason(layer, candidate.kernel, inputs)
        signature = (_layer_signature(layer)
                     if determined and isinstance(layer, tf.keras.layers.Conv2D) else {})
        converted = False
        # An undetermined input still takes its bconv, if any, so that the op is not counted
        # as unattributed; the layer is reported as not certified all the same.
        if eligible and (reason is None or (not determined and signature)):
            for position, (op, op_sig) in enumerate(free_ops):
                if _matches(signature, op_sig):
                    del free_ops[position]
                    converted = True
                    matched_signatures.append(signature)
                    break
            else:
                if determined:
                    twins = sum(1 for sig in matched_signatures if sig == signature)
                    reason = (f"no {LCE_BCONV} with signature [{_format_signature(signature)}] in "
                              "the flatbuffer: the converter did not recognise the pattern (the "
                              "input sign must be tf.where(x >= 0, 1.0, -1.0) or larq's sign, "
                              "the padding valid or same with pad_values=1, the kernel ±alpha "
                              "per output channel)")
                    if twins:
                        reason += (f"; {twins} other layer(s) with this signature were "
                                   "converted, so which one fell back is ambiguous")
        layer_macs = int(macs.get(layer.name, 0))
        entries.append(LayerCoverage(
            name=layer.name,
            layer_type=type(layer).__name__,
            macs=layer_macs,
            mac_share=layer_macs / total_macs if total_macs else 0.0,
            converted=converted,
            reason=reason,
            signature={key: list(value) if isinstance(value, tuple) else value
                       for key, value in signature.items()},
            eligible=eligible,
            kernel_values=None if candidate.kernel is None else candidate.kernel.description,
            input_values=input_values,
            determined=determined,
        ))
    report = CoverageReport(layers=tuple(entries), op_histogram=info.op_histogram(),
                            unattributed_bconvs=len(free_ops))
    note = report.ineligible_note()
    if note is not None:
        warnings.warn(note, CoverageWarning, stacklevel=2)
    if not report.complete:
        message = _failure_message(report)
        if strict:
            raise CoverageError(message, report)
        warnings.warn(message, CoverageWarning, stacklevel=2)
    return report


def _failure_message(report: CoverageReport) -> str:
    parts = []
    fell_back = tuple(layer for layer in report.failures if layer.determined)
    if fell_back:
        share = sum(layer.mac_share for layer in fell_back)
        details = "; ".join(f"{layer.name} ({layer.layer_type}, {100 * layer.mac_share:.1f}% of "
                            f"binary MACs): {layer.reason}" for layer in fell_back)
        parts.append(f"{len(fell_back)} of {report.num_binary_layers} binary layer(s) did not "
                     f"become {LCE_BCONV} and run in float ({100 * share:.1f}% of binary MACs): "
                     f"{details}")
    unknown = tuple(layer for layer in report.failures if not layer.determined)
    if unknown:
        details = "; ".join(str(layer.reason) for layer in unknown)
        parts.append(f"{len(unknown)} layer(s) cannot be certified as binary: {details}")
    message = ". ".join(parts)
    note = report.ineligible_note()
    return message if note is None else f"{message}. Besides, {note}"
