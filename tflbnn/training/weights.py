"""Weight handling of the recipes: weight decay, step-to-step transfer, ±1 kernels for Bop."""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.profiling import flatten_layers, kernel_precision
from tflbnn.quantizers import binary_sign

__all__ = ["add_conv_weight_decay", "add_weight_decay", "transfer_weights", "conv_kernels",
           "binary_kernels", "sign_binary_kernels"]


def conv_kernels(model: tf.keras.Model) -> list[tf.Variable]:
    """The kernels of every convolution (``Conv2D``, ``QuantConv2D``, depthwise) in ``model``."""
    kernels = []
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            kernels.append(layer.depthwise_kernel)
        elif isinstance(layer, tf.keras.layers.Conv2D):
            kernels.append(layer.kernel)
    return kernels


def add_weight_decay(model: tf.keras.Model, weight_decay: float,
                     variables: list[tf.Variable]) -> None:
    """Add coupled L2 weight decay on ``variables``, as PyTorch optimizers' ``weight_decay``.

    The gradient of each variable ``W`` gains ``wd · W``, i.e. the loss gains
    ``wd / 2 · Σ W²``. The term lives in ``model.losses``, which ``model.fit`` and ``Distiller``
    add to the loss; it is not saved with the model.

    Args:
        model: a built model that owns the variables.
        weight_decay: the PyTorch-style coefficient ``wd`` (e.g. 1e-5); 0 adds nothing.
        variables: the variables to decay.

    Raises:
        ValueError: for a negative coefficient, or no variables with a positive one.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay == 0:
        return
    if not variables:
        raise ValueError(f"model {model.name!r}: no variables to apply weight decay to")
    variables = list(variables)
    coefficient = 0.5 * float(weight_decay)
    model.add_loss(lambda: coefficient * tf.add_n([tf.reduce_sum(tf.square(v))
                                                   for v in variables]))


def add_conv_weight_decay(model: tf.keras.Model, weight_decay: float) -> None:
    """Add coupled L2 weight decay on convolution kernels only (ReActNet step 1).

    Matches PyTorch ``Adam(weight_decay=wd)`` restricted to 4-D parameters (see
    ``add_weight_decay``). BatchNorm, biases, PReLU slopes and the classifier are not decayed.

    Args:
        model: a built model.
        weight_decay: the PyTorch-style coefficient ``wd`` (e.g. 1e-5); 0 adds nothing.

    Raises:
        ValueError: for a negative coefficient or a model without convolutions.
    """
    if weight_decay > 0 and not conv_kernels(model):
        raise ValueError(f"model {model.name!r} has no convolution kernels to decay")
    add_weight_decay(model, weight_decay, conv_kernels(model) if weight_decay > 0 else [])


def _quantizer_weights(layer: tf.keras.layers.Layer) -> set:
    """References of the weights owned by ``layer``'s input quantizer, if it is a layer."""
    quantizer = getattr(layer, "input_quantizer", None)
    if not isinstance(quantizer, tf.keras.layers.Layer):
        return set()
    return {weight.ref() for weight in quantizer.weights}


def transfer_weights(source: tf.keras.Model, target: tf.keras.Model, *,
                     keep_target_quantizers: bool = False) -> int:
    """Copy every weight of ``target`` from the layer of the same name in ``source``.

    Used between the precisions of a zoo model (float teacher → step 1 → step 2, float twin →
    N2UQ), which share layer names and weight shapes. Unlike ReActNet's reference code (whose
    step 2 silently dropped the step-1 conv weights), every weight must be transferred or this
    raises.

    Args:
        source: trained model.
        target: model to initialise.
        keep_target_quantizers: leave the weights of every layer's ``input_quantizer`` (N2UQ
            thresholds and scales, PACT clip values) at the target's own values, and ignore the
            source's. The N2UQ recipe uses this: the float twin's relaxations are frozen at the
            initial values anyway, and one float twin then serves every bit width (their
            quantizers differ in the number of intervals).

    Returns:
        The number of weight tensors copied.

    Raises:
        ValueError: naming the first target layer with no counterpart or a shape mismatch.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        origin = source_layers.get(layer.name)
        if origin is None:
            raise ValueError(f"transfer_weights: layer {layer.name!r} of {target.name!r} has no "
                             f"matching layer in {source.name!r}")
        source_weights, target_weights = origin.weights, layer.weights
        if keep_target_quantizers:
            skip_source, skip_target = _quantizer_weights(origin), _quantizer_weights(layer)
            source_weights = [w for w in source_weights if w.ref() not in skip_source]
            target_weights = [w for w in target_weights if w.ref() not in skip_target]
        if len(source_weights) != len(target_weights):
            raise ValueError(f"transfer_weights: layer {layer.name!r} of {target.name!r} has "
                             f"{len(target_weights)} weights to copy but its namesake in "
                             f"{source.name!r} has {len(source_weights)}")
        for source_weight, target_weight in zip(source_weights, target_weights):
            if source_weight.shape != target_weight.shape:
                raise ValueError(f"transfer_weights: {target_weight.name} has shape "
                                 f"{target_weight.shape} but {source_weight.name} has "
                                 f"{source_weight.shape}")
            target_weight.assign(source_weight)
            copied += 1
    return copied


def binary_kernels(model: tf.keras.Model) -> list[tf.Variable]:
    """The stored kernels of every layer whose kernel quantizer has precision 1 (binary).

    Nested models are walked into. For larq layers these are the latent variables under the
    ``QuantizedVariable`` wrappers.
    """
    kernels = []
    for layer in flatten_layers(model):
        if kernel_precision(layer) != 1:
            continue
        variable = (layer.depthwise_kernel if isinstance(layer, tf.keras.layers.DepthwiseConv2D)
                    else layer.kernel)
        kernels.append(getattr(variable, "latent_variable", variable))
    return kernels


def sign_binary_kernels(model: tf.keras.Model) -> int:
    """Set every binary kernel (precision-1 quantizer) of ``model`` to ``sign(W)``, ``sign(0) = +1``.

    Bop keeps no latent weights and only flips signs, so a model it trains must start from ±1
    kernels (papers.md §7). Signing a kernel trained with real values (step 1) keeps the sign
    pattern the ReActNet quantizer used; its per-channel scale ``mean(|W|)`` becomes 1.

    Args:
        model: a built model.

    Returns:
        The number of kernels signed.

    Raises:
        ValueError: if ``model`` has no binary kernel.
    """
    kernels = binary_kernels(model)
    if not kernels:
        raise ValueError(f"sign_binary_kernels: model {model.name!r} has no binary kernels "
                         "(no layer with a precision-1 kernel quantizer)")
    for kernel in kernels:
        kernel.assign(binary_sign(kernel))
    return len(kernels)
