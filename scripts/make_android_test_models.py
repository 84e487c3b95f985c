"""Make the tiny .tflite files the JVM tests read, and their facts as tflbnn's reader sees them.

Run from the repository root with the project's virtual environment:
    .venv/bin/python scripts/make_android_test_models.py

Writes, into the JVM tests' resources (android_demo/core/src/test/resources/org/tflbnn/demo/core): tiny_lce.tflite (a binary conv network converted by LCE),
tiny_float.tflite (plain TFLite, no LCE ops, one op with a code above 127),
tiny_two_inputs.tflite (two inputs, for the "one input" check) and tiny_models.json (facts
from tflbnn's Python flatbuffer reader). The output is deterministic (fixed seed).
"""

import json
from pathlib import Path

from tflbnn import _backend  # noqa: F401  (must come first)

import larq as lq
import larq_compute_engine as lce
import tensorflow as tf

from tflbnn.android import tflite_facts
from tflbnn.converters import read_tflite

HERE = (Path(__file__).resolve().parent.parent / "android_demo" / "core" / "src" / "test"
        / "resources" / "org" / "tflbnn" / "demo" / "core")


def lce_model() -> tf.keras.Model:
    inputs = tf.keras.Input((6, 5, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4)(x)
    return tf.keras.Model(inputs, outputs)


def float_model() -> tf.keras.Model:
    inputs = tf.keras.Input((4, 4, 1))
    x = tf.keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    # GELU has builtin code 150: stored in builtin_code, with 127 in the int8 deprecated field.
    x = tf.keras.layers.Activation(tf.nn.gelu)(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def two_input_model() -> tf.keras.Model:
    first = tf.keras.Input((2,))
    second = tf.keras.Input((2,))
    outputs = tf.keras.layers.Dense(2)(tf.keras.layers.Concatenate()([first, second]))
    return tf.keras.Model([first, second], outputs)


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    models = {
        "tiny_lce.tflite": lce.convert_keras_model(lce_model()),
        "tiny_float.tflite": tf.lite.TFLiteConverter.from_keras_model(float_model()).convert(),
        "tiny_two_inputs.tflite":
            tf.lite.TFLiteConverter.from_keras_model(two_input_model()).convert(),
    }
    manifest = {}
    for name, data in models.items():
        (HERE / name).write_bytes(data)
        manifest[name] = tflite_facts(read_tflite(data))
    (HERE / "tiny_models.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
