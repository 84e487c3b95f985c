"""Speed of a grouped binary 3×3 convolution in TensorFlow on CPU, grouped vs block-diagonal.

    make benchmark-grouped-conv
    .venv/bin/python benchmarks/grouped_conv_speed.py [--steps 10] [--batch 128]

Times one training step (forward + backward) of ``larq.layers.QuantConv2D(groups=g)`` — which
Keras runs as its grouped convolution — against ``tflbnn.blocks.BlockDiagonalQuantConv2D``
with ``training=True`` (the same layer computed as a dense convolution with a block-diagonal
kernel), and the grouped inference pass for reference. Both layers hold the same kernel; the
script checks that their outputs and kernel gradients agree before timing them. The layer is a
binary MobileNet block's: 128 → 128 channels, 14×14, ±1 inputs, ``reactnet_weight_sign``
kernel. Median of ``--steps`` compiled steps after one warm-up. Results go to
benchmarks/results/grouped_conv_speed.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys

import tflbnn  # noqa: F401  (selects Keras 2 first)

import larq as lq
import numpy as np
import tensorflow as tf

from tflbnn.blocks import binary_conv
from tflbnn.converters.benchmark import time_runs

from results_files import write_results

NAME = "grouped_conv_speed"
CHANNELS = 128
SIZE = 14
GROUPS = (1, 2, 4)


def _median_seconds(step, steps: int) -> float:
    # One untimed call traces and compiles the step.
    return float(np.median(time_runs(step, steps, warmup=1))) / 1e3


def measure(groups: int, batch: int, steps: int) -> dict:
    """Median step times of the grouped and the block-diagonal layer at ``groups``.

    Raises:
        AssertionError: if the two layers' outputs or kernel gradients differ.
    """
    rng = np.random.default_rng(groups)
    inputs = tf.constant(np.where(rng.standard_normal((batch, SIZE, SIZE, CHANNELS)) >= 0,
                                  1.0, -1.0).astype(np.float32))
    fast = binary_conv(CHANNELS, 3, groups=groups, name="block_diagonal")
    grouped = lq.layers.QuantConv2D(CHANNELS, 3, padding="same", pad_values=1.0, groups=groups,
                                    use_bias=False, kernel_quantizer="reactnet_weight_sign",
                                    name="grouped")
    for layer in (fast, grouped):
        layer.build(inputs.shape)
    grouped.set_weights(fast.get_weights())

    def train_step(layer):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                outputs = layer(inputs, training=True)
                loss = tf.reduce_sum(outputs * tf.sin(outputs))
            return outputs, tape.gradient(loss, layer.kernel)
        return step

    fast_step, grouped_step = train_step(fast), train_step(grouped)
    for fast_value, grouped_value in zip(fast_step(), grouped_step()):
        np.testing.assert_allclose(fast_value.numpy(), grouped_value.numpy(), rtol=1e-4,
                                   atol=1e-2)
    inference = tf.function(lambda: grouped(inputs, training=False))
    return {
        "groups": groups,
        "grouped_train_s": _median_seconds(grouped_step, steps),
        "block_diagonal_train_s": _median_seconds(fast_step, steps),
        "grouped_inference_s": _median_seconds(inference, steps),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--batch", type=int, default=128, help="batch size")
    args = parser.parse_args(argv)
    rows = [measure(groups, args.batch, args.steps) for groups in GROUPS]
    lines = ["| groups | training step, grouped conv | training step, block-diagonal dense | "
             "speed-up | inference, grouped conv |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['groups']} | {1e3 * row['grouped_train_s']:.1f} ms | "
            f"{1e3 * row['block_diagonal_train_s']:.1f} ms | "
            f"{row['grouped_train_s'] / row['block_diagonal_train_s']:.1f}× | "
            f"{1e3 * row['grouped_inference_s']:.1f} ms |")
    header = (f"Binary 3×3 conv, {CHANNELS} → {CHANNELS} channels, {SIZE}×{SIZE}, batch "
              f"{args.batch}, TensorFlow {tf.__version__} on CPU ({os.cpu_count()} cores); "
              f"median of {args.steps} compiled steps. Training step = forward + backward to "
              "the kernel.")
    write_results(NAME, "benchmark-grouped-conv", header, "\n".join(lines), {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
