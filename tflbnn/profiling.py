"""Count binary, low-bit and float multiply-accumulates, OPs, parameters and model size.

OPs follow the binary-network papers (ReActNet, Bi-Real Net): ``OPs = BOPs / 64 + FLOPs``.
A MAC whose weight has ``w`` bits and whose input has ``a`` bits (both quantized, i.e. fewer
than 32 bits) costs ``w · a`` bit operations, the bit-serial decomposition of a low-bit product
into ``w · a`` binary ones (DoReFa-Net's bit-plane view; the BOPs of Baskin et al., UNIQ,
2018). For binary layers (``w = a = 1``) this is the papers' ``BOPs = binary MACs``, so binary
networks keep their published OPs. Every other MAC of a convolution or dense layer, including
those with low-bit weights but float inputs (S3 shift weights, a float-input layer with
DeepShift weights), is a FLOP. The N2UQ paper reports no OPs (papers.md §3.6 lists accuracy
only), so low-bit N2UQ models are counted with this convention. Element-wise layers (BN,
activations, additions, pooling) are not counted, as in the papers.

Model size stores each quantized kernel weight with its kernel's bits (1 for binary, ``bits``
for N2UQ and S3 layers) and every other weight with 32 bits. S3 layers are counted as deployed:
their training-only latents are replaced by one kernel of the same shape, as
``tflbnn.shift.to_inference_model`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from tflbnn import _backend  # noqa: F401

import larq as lq
import numpy as np
import tensorflow as tf

from tflbnn.shift import S3Conv2D, S3Dense

__all__ = ["LayerProfile", "ModelProfile", "profile", "is_binary_conv", "binary_input",
           "input_precision", "kernel_precision", "flatten_layers", "FLOAT_BITS"]

_CONV_TYPES = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D)
_DENSE_TYPES = (tf.keras.layers.Dense,)
_S3_TYPES = (S3Conv2D, S3Dense)

#: Bits of a float weight or activation; precisions at or above it count as float.
FLOAT_BITS = 32


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """Per-layer figures.

    Attributes:
        name: layer name.
        layer_type: Keras class name.
        binary_macs: MACs with binary weights and binary inputs.
        float_macs: MACs with a float weight or a float input.
        params: number of deployed weights (trainable and not; S3 latents count as one kernel).
        binary_params: weights stored with 1 bit (binary kernels).
        binary_weights: the kernel quantizer has precision 1.
        binary_input: the input is ±1 (input quantizer or producing layer of precision 1).
        weight_bits: bits per kernel weight (``FLOAT_BITS`` for a float kernel).
        input_bits: bits per input activation (``FLOAT_BITS`` for float inputs).
        lowbit_macs: MACs with quantized weights and quantized inputs that are not both binary,
            each costing ``weight_bits · input_bits`` BOPs.
        lowbit_params: kernel weights stored with ``weight_bits`` bits, 1 < bits < 32.
        quantizer_params: weights owned by quantizers (N2UQ thresholds and scales, PACT clip),
            included in ``params``.
    """

    name: str
    layer_type: str
    binary_macs: int
    float_macs: int
    params: int
    binary_params: int
    binary_weights: bool
    binary_input: bool
    weight_bits: int = FLOAT_BITS
    input_bits: int = FLOAT_BITS
    lowbit_macs: int = 0
    lowbit_params: int = 0
    quantizer_params: int = 0

    @property
    def bops(self) -> int:
        """Bit operations: binary MACs plus ``weight_bits · input_bits`` per low-bit MAC."""
        return self.binary_macs + self.lowbit_macs * self.weight_bits * self.input_bits

    @property
    def size_bits(self) -> int:
        float_params = self.params - self.binary_params - self.lowbit_params
        return self.binary_params + self.weight_bits * self.lowbit_params + FLOAT_BITS * float_params


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    """Whole-model figures, the sum over ``layers``."""

    layers: tuple[LayerProfile, ...]

    @property
    def binary_macs(self) -> int:
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def lowbit_macs(self) -> int:
        return sum(layer.lowbit_macs for layer in self.layers)

    @property
    def float_macs(self) -> int:
        return sum(layer.float_macs for layer in self.layers)

    @property
    def bops(self) -> int:
        """Binary MACs plus ``weight_bits · input_bits`` BOPs per low-bit MAC."""
        return sum(layer.bops for layer in self.layers)

    @property
    def ops(self) -> float:
        """BOPs / 64 + FLOPs."""
        return self.bops / 64.0 + self.float_macs

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def lowbit_params(self) -> int:
        return sum(layer.lowbit_params for layer in self.layers)

    @property
    def quantizer_params(self) -> int:
        return sum(layer.quantizer_params for layer in self.layers)

    @property
    def size_bits(self) -> int:
        """Quantized kernels at their bits per weight, every other weight at 32 bits."""
        return sum(layer.size_bits for layer in self.layers)

    @property
    def float32_size_bits(self) -> int:
        return FLOAT_BITS * self.params

    def as_dict(self) -> dict:
        return {
            "binary_macs": self.binary_macs,
            "lowbit_macs": self.lowbit_macs,
            "float_macs": self.float_macs,
            "bops": self.bops,
            "ops": self.ops,
            "params": self.params,
            "binary_params": self.binary_params,
            "lowbit_params": self.lowbit_params,
            "quantizer_params": self.quantizer_params,
            "size_bits": self.size_bits,
            "size_bytes": self.size_bits / 8.0,
            "float32_size_bytes": self.float32_size_bits / 8.0,
        }

    def table(self) -> str:
        """A plain-text table, one row per counted layer plus a total."""
        rows = [("layer", "type", "w/a bits", "binary MACs", "low-bit MACs", "float MACs",
                 "params", "bits")]
        for layer in self.layers:
            if layer.params or layer.binary_macs or layer.lowbit_macs or layer.float_macs:
                rows.append((layer.name, layer.layer_type,
                             f"{_bits_label(layer.weight_bits)}/{_bits_label(layer.input_bits)}",
                             f"{layer.binary_macs:,}", f"{layer.lowbit_macs:,}",
                             f"{layer.float_macs:,}", f"{layer.params:,}", f"{layer.size_bits:,}"))
        rows.append(("total", "", "", f"{self.binary_macs:,}", f"{self.lowbit_macs:,}",
                     f"{self.float_macs:,}", f"{self.params:,}", f"{self.size_bits:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) if i < 3 else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"OPs = BOPs/64 + FLOPs = {self.ops:.4g} (BOPs {self.bops:,}); size = "
                     f"{self.size_bits / 8 / 2**20:.3f} MiB (float32: "
                     f"{self.float32_size_bits / 8 / 2**20:.3f} MiB)")
        return "\n".join(lines)


def _bits_label(bits: int) -> str:
    return "f" if bits >= FLOAT_BITS else str(bits)


def _precision(quantizer) -> int | None:
    return getattr(quantizer, "precision", None) if quantizer is not None else None


def _quantized(bits: int | None) -> bool:
    return bits is not None and bits < FLOAT_BITS


def _inbound_layers(layer: tf.keras.layers.Layer) -> list:
    inbound = []
    for node in getattr(layer, "_inbound_nodes", []):
        layers = node.inbound_layers
        inbound.extend(layers if isinstance(layers, (list, tuple)) else [layers])
    return inbound


def input_precision(layer: tf.keras.layers.Layer) -> int | None:
    """Bits of the values ``layer`` multiplies, ``None`` when unknown (float).

    The precision of its own ``input_quantizer`` when that declares one; otherwise the precision
    every layer feeding it declares (``tflbnn.RSign`` declares 1, a standalone N2UQ activation
    quantizer its bits), when they all declare the same.
    """
    own = _precision(getattr(layer, "input_quantizer", None))
    if own is not None:
        return own
    inbound = _inbound_layers(layer)
    declared = {getattr(source, "precision", None) for source in inbound}
    return declared.pop() if inbound and len(declared) == 1 else None


def binary_input(layer: tf.keras.layers.Layer) -> bool:
    """Whether ``layer`` receives ±1 inputs (``input_precision(layer) == 1``)."""
    return input_precision(layer) == 1


def kernel_precision(layer: tf.keras.layers.Layer) -> int | None:
    """Precision in bits of a layer's kernel, ``None`` for a float kernel.

    The precision of the kernel quantizer (Larq's depthwise layers call theirs
    ``depthwise_quantizer``), or the ``bits`` of an S3 layer, whose kernel is computed from
    latents without a quantizer.
    """
    if isinstance(layer, _S3_TYPES):
        return layer.bits
    quantizer = (getattr(layer, "kernel_quantizer", None)
                 or getattr(layer, "depthwise_quantizer", None))
    return _precision(quantizer)


def _binary_weights(layer: tf.keras.layers.Layer) -> bool:
    return kernel_precision(layer) == 1


def _kernel_shape(layer: tf.keras.layers.Layer) -> tf.TensorShape:
    if isinstance(layer, _S3_TYPES):
        # Every latent has the kernel's shape; reading `kernel` would compute the S3 weight.
        return layer.latent_sign.shape
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return layer.depthwise_kernel.shape
    return layer.kernel.shape


def is_binary_conv(layer: tf.keras.layers.Layer) -> bool:
    """A convolution or dense layer whose kernel is binarised (precision-1 kernel quantizer)."""
    return isinstance(layer, _CONV_TYPES + _DENSE_TYPES) and _binary_weights(layer)


def _macs(layer: tf.keras.layers.Layer) -> int:
    output_shape = tf.TensorShape(layer.output_shape if not isinstance(layer.output_shape, list)
                                  else layer.output_shape[0])
    kernel_shape = _kernel_shape(layer)
    if isinstance(layer, _CONV_TYPES):
        # Conv2D: (kh, kw, in / groups, filters); depthwise: (kh, kw, in, multiplier). Either
        # way each output position costs the product of the kernel's dimensions.
        return int(np.prod(output_shape[1:3]) * np.prod(kernel_shape))
    if isinstance(layer, tf.keras.layers.Dense):
        positions = int(np.prod(output_shape[1:-1])) if len(output_shape) > 2 else 1
        return int(positions * np.prod(kernel_shape))
    return 0


def _count(weights) -> int:
    return int(sum(np.prod(weight.shape) for weight in weights))


def _deployed_params(layer: tf.keras.layers.Layer) -> int:
    if isinstance(layer, _S3_TYPES):
        bias = layer.bias.shape if layer.bias is not None else (0,)
        return int(np.prod(_kernel_shape(layer)) + np.prod(bias))
    return _count(layer.weights)


def _quantizer_params(layer: tf.keras.layers.Layer) -> int:
    """Weights owned by the layer's quantizers, or all of a standalone quantizer's."""
    if isinstance(layer, lq.quantizers.Quantizer):
        return _count(layer.weights)
    quantizers = {id(q): q for q in (getattr(layer, attribute, None) for attribute in
                                     ("input_quantizer", "kernel_quantizer", "depthwise_quantizer"))
                  if isinstance(q, tf.keras.layers.Layer)}
    return sum(_count(quantizer.weights) for quantizer in quantizers.values())


def flatten_layers(model: tf.keras.Model) -> Iterator[tf.keras.layers.Layer]:
    """The layers of ``model`` in order, with nested models replaced by their layers."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from flatten_layers(layer)
        else:
            yield layer


def _layer_profile(layer: tf.keras.layers.Layer) -> LayerProfile:
    params = _deployed_params(layer)
    macs = _macs(layer) if isinstance(layer, _CONV_TYPES + _DENSE_TYPES) else 0
    weight_bits = kernel_precision(layer) if macs else None
    weight_bits = weight_bits if _quantized(weight_bits) else FLOAT_BITS
    input_bits = input_precision(layer) if macs else None
    input_bits = input_bits if _quantized(input_bits) else FLOAT_BITS
    kernel_params = int(np.prod(_kernel_shape(layer))) if weight_bits < FLOAT_BITS else 0
    quantized_macs = macs if weight_bits < FLOAT_BITS and input_bits < FLOAT_BITS else 0
    fully_binary = weight_bits == input_bits == 1
    return LayerProfile(
        name=layer.name,
        layer_type=type(layer).__name__,
        binary_macs=quantized_macs if fully_binary else 0,
        float_macs=macs - quantized_macs,
        params=params,
        binary_params=kernel_params if weight_bits == 1 else 0,
        binary_weights=weight_bits == 1,
        binary_input=input_bits == 1,
        weight_bits=weight_bits,
        input_bits=input_bits,
        lowbit_macs=0 if fully_binary else quantized_macs,
        lowbit_params=0 if weight_bits == 1 else kernel_params,
        quantizer_params=_quantizer_params(layer),
    )


def profile(model: tf.keras.Model) -> ModelProfile:
    """Profile a built Keras model.

    Args:
        model: a built ``tf.keras.Model`` (nested models are walked into).

    Returns:
        A ``ModelProfile`` with one ``LayerProfile`` per layer.

    Raises:
        ValueError: if the model is not built.
    """
    if not model.built:
        raise ValueError(f"profile: model {model.name!r} is not built; call it on an input or "
                         "build it with an input shape first")
    return ModelProfile(tuple(_layer_profile(layer) for layer in flatten_layers(model)))
