"""Importing tflbnn selects Keras 2, and fails clearly when Keras 3 is already active."""

import os
import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_import_selects_keras_2():
    result = run_python("import tflbnn, tensorflow as tf, tf_keras\n"
                        "assert tf.keras.Model is tf_keras.Model\nprint('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_keras_3_already_active_is_a_clear_error():
    result = run_python("import tensorflow as tf\ntf.keras.Model\nimport tflbnn")
    assert result.returncode != 0
    assert "ImportError: tflbnn needs Keras 2 (tf-keras)" in result.stderr
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr
