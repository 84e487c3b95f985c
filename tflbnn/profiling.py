"""Count binary and float multiply-accumulates, OPs, parameters and model size of a Keras model.

OPs follow the binary-network papers (ReActNet, Bi-Real Net): ``OPs = BOPs / 64 + FLOPs``,
where BOPs are the MACs of convolutions with binary weights *and* binary inputs and FLOPs are
the MACs of every other convolution and dense layer. Element-wise layers (BN, activations,
additions, pooling) are not counted, as in the papers.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from tflbnn import _backend  # noqa: F401

import larq as lq
import numpy as np
import tensorflow as tf

__all__ = ["LayerProfile", "ModelProfile", "profile", "is_binary_conv", "binary_input",
           "kernel_precision", "flatten_layers"]

_CONV_TYPES = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D)
_DENSE_TYPES = (tf.keras.layers.Dense,)


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """Per-layer figures.

    Attributes:
        name: layer name.
        layer_type: Keras class name.
        binary_macs: MACs with binary weights and binary inputs.
        float_macs: all other MACs.
        params: number of weights (trainable and not).
        binary_params: weights stored with 1 bit (binary kernels).
        binary_weights: the kernel quantizer has precision 1.
        binary_input: the input is ±1 (input quantizer or producing layer of precision 1).
    """

    name: str
    layer_type: str
    binary_macs: int
    float_macs: int
    params: int
    binary_params: int
    binary_weights: bool
    binary_input: bool

    @property
    def size_bits(self) -> int:
        return self.binary_params + 32 * (self.params - self.binary_params)


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    """Whole-model figures, the sum over ``layers``."""

    layers: tuple[LayerProfile, ...]

    @property
    def binary_macs(self) -> int:
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def float_macs(self) -> int:
        return sum(layer.float_macs for layer in self.layers)

    @property
    def ops(self) -> float:
        """BOPs / 64 + FLOPs."""
        return self.binary_macs / 64.0 + self.float_macs

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def size_bits(self) -> int:
        """Binary kernels at 1 bit per weight, every other weight at 32 bits."""
        return sum(layer.size_bits for layer in self.layers)

    @property
    def float32_size_bits(self) -> int:
        return 32 * self.params

    def as_dict(self) -> dict:
        return {
            "binary_macs": self.binary_macs,
            "float_macs": self.float_macs,
            "ops": self.ops,
            "params": self.params,
            "binary_params": self.binary_params,
            "size_bits": self.size_bits,
            "size_bytes": self.size_bits / 8.0,
            "float32_size_bytes": self.float32_size_bits / 8.0,
        }

    def table(self) -> str:
        """A plain-text table, one row per counted layer plus a total."""
        rows = [("layer", "type", "binary MACs", "float MACs", "params", "bits")]
        for layer in self.layers:
            if layer.params or layer.binary_macs or layer.float_macs:
                rows.append((layer.name, layer.layer_type, f"{layer.binary_macs:,}",
                             f"{layer.float_macs:,}", f"{layer.params:,}", f"{layer.size_bits:,}"))
        rows.append(("total", "", f"{self.binary_macs:,}", f"{self.float_macs:,}",
                     f"{self.params:,}", f"{self.size_bits:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"OPs = BOPs/64 + FLOPs = {self.ops:.4g}; size = {self.size_bits / 8 / 2**20:.3f} "
                     f"MiB (float32: {self.float32_size_bits / 8 / 2**20:.3f} MiB)")
        return "\n".join(lines)


def _precision(quantizer) -> int | None:
    return getattr(quantizer, "precision", None) if quantizer is not None else None


def _inbound_layers(layer: tf.keras.layers.Layer) -> list:
    inbound = []
    for node in getattr(layer, "_inbound_nodes", []):
        layers = node.inbound_layers
        inbound.extend(layers if isinstance(layers, (list, tuple)) else [layers])
    return inbound


def binary_input(layer: tf.keras.layers.Layer) -> bool:
    """Whether ``layer`` receives ±1 inputs.

    True when its own ``input_quantizer`` has precision 1, or when every layer feeding it
    declares ``precision == 1`` (as ``tflbnn.RSign`` does).
    """
    if _precision(getattr(layer, "input_quantizer", None)) == 1:
        return True
    inbound = _inbound_layers(layer)
    return bool(inbound) and all(getattr(source, "precision", None) == 1 for source in inbound)


def kernel_precision(layer: tf.keras.layers.Layer) -> int | None:
    """Precision in bits of a layer's kernel quantizer, ``None`` without one.

    Larq's depthwise layers call theirs ``depthwise_quantizer``.
    """
    quantizer = (getattr(layer, "kernel_quantizer", None)
                 or getattr(layer, "depthwise_quantizer", None))
    return _precision(quantizer)


def _binary_weights(layer: tf.keras.layers.Layer) -> bool:
    return kernel_precision(layer) == 1


def _kernel(layer: tf.keras.layers.Layer) -> tf.Variable:
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return layer.depthwise_kernel
    return layer.kernel


def is_binary_conv(layer: tf.keras.layers.Layer) -> bool:
    """A convolution or dense layer whose kernel is binarised (precision-1 kernel quantizer)."""
    return isinstance(layer, _CONV_TYPES + _DENSE_TYPES) and _binary_weights(layer)


def _macs(layer: tf.keras.layers.Layer) -> int:
    output_shape = tf.TensorShape(layer.output_shape if not isinstance(layer.output_shape, list)
                                  else layer.output_shape[0])
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        kh, kw, channels_in, multiplier = layer.depthwise_kernel.shape
        return int(np.prod(output_shape[1:3]) * kh * kw * channels_in * multiplier)
    if isinstance(layer, tf.keras.layers.Conv2D):
        kh, kw, channels_per_group, filters = layer.kernel.shape
        return int(np.prod(output_shape[1:3]) * kh * kw * channels_per_group * filters)
    if isinstance(layer, tf.keras.layers.Dense):
        units_in, units_out = layer.kernel.shape
        positions = int(np.prod(output_shape[1:-1])) if len(output_shape) > 2 else 1
        return int(positions * units_in * units_out)
    return 0


def flatten_layers(model: tf.keras.Model) -> Iterator[tf.keras.layers.Layer]:
    """The layers of ``model`` in order, with nested models replaced by their layers."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from flatten_layers(layer)
        else:
            yield layer


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
    layers = []
    for layer in flatten_layers(model):
        params = int(sum(np.prod(weight.shape) for weight in layer.weights))
        macs = _macs(layer) if isinstance(layer, _CONV_TYPES + _DENSE_TYPES) else 0
        weights_binary = _binary_weights(layer)
        input_binary = binary_input(layer) if macs else False
        binary_params = int(np.prod(_kernel(layer).shape)) if weights_binary else 0
        fully_binary = weights_binary and input_binary
        layers.append(LayerProfile(
            name=layer.name,
            layer_type=type(layer).__name__,
            binary_macs=macs if fully_binary else 0,
            float_macs=0 if fully_binary else macs,
            params=params,
            binary_params=binary_params,
            binary_weights=weights_binary,
            binary_input=input_binary,
        ))
    return ModelProfile(tuple(layers))
