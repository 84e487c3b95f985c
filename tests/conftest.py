"""Shared test set-up: Keras 2, deterministic TensorFlow, and seeds that can be varied.

Every run of the suite computes the same numbers on the same machine, idle or loaded:

* Keras 2 is selected before any test module imports TensorFlow or Larq (``import tflbnn``).
* TensorFlow runs with op determinism and a fixed number of intra- and inter-op threads. The
  thread count matters: TensorFlow's CPU kernels split reductions (convolution back-props,
  batch-norm statistics, means) by thread, so a different count sums in another order, and a
  barely trained binary or low-bit network turns those last-bit differences into flipped signs
  and levels (tests/test_n2uq_int8.py's 2-bit model: 90.2 % top-1 agreement at 1 thread, 97.6 %
  at 2, same seed). Pinning them costs nothing on the 2-core machines the suite is sized for
  (the default there is 2 as well); op determinism cost no measurable CPU time either (the
  trained fixtures of tests/test_n2uq_int8.py: 24.5 / 23.4 s user with it, 24.9 / 23.6 s
  without, two rounds).
* Before each test (and each module's fixtures) Python, NumPy and TensorFlow are seeded with
  the test seed.

Statistical assertions (accuracies, agreements, error ratios, a loss that must fall) have
margins measured over seeds 0-4 and 1 and 2 threads with ``scripts/measure_test_spread.py``
(raw values in tests/spread_measurements.json, ranges in the tests' docstrings): a floor sits
at least two spreads (largest minus smallest measured value) below the smallest, or follows
from an independent expectation (chance level, float32 rounding) stated with it. The script
sets these environment variables; normal runs leave them unset:

* ``TFLBNN_TEST_SEED`` (default 0): the ``test_seed`` fixture. Tests that draw or train add it
  to their own fixed seeds, so the default reproduces the seeds their docstrings were written
  with.
* ``TFLBNN_TEST_THREADS`` (default 2): TensorFlow's intra-op threads and the ``test_threads``
  fixture, the thread count tests give the TFLite/LCE interpreters.
* ``TFLBNN_TEST_SPREAD_LOG``: a JSON-lines file the ``spread`` fixture appends each measured
  value to (nothing is written when unset).
"""

import json
import os

import pytest

import tflbnn  # noqa: F401  (selects Keras 2; must come before TensorFlow)
import tensorflow as tf

SEED_VARIABLE = "TFLBNN_TEST_SEED"
THREADS_VARIABLE = "TFLBNN_TEST_THREADS"
SPREAD_LOG_VARIABLE = "TFLBNN_TEST_SPREAD_LOG"
DEFAULT_SEED = 0
DEFAULT_THREADS = 2
#: Inter-op threads only schedule independent ops side by side; one per core of the 2-core
#: machine. They do not change results (each op's arithmetic is fixed by the intra-op count).
INTER_OP_THREADS = 2


def _environment_int(name: str, default: int, minimum: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{name}={text!r}: not an integer") from None
    if value < minimum:
        raise pytest.UsageError(f"{name}={value}: must be at least {minimum}")
    return value


TEST_SEED = _environment_int(SEED_VARIABLE, DEFAULT_SEED, 0)
TEST_THREADS = _environment_int(THREADS_VARIABLE, DEFAULT_THREADS, 1)


def pytest_configure(config):
    # Before any test runs an op: both settings are refused once TensorFlow's runtime started.
    tf.config.threading.set_intra_op_parallelism_threads(TEST_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
    tf.config.experimental.enable_op_determinism()


def pytest_report_header(config):
    return (f"tflbnn tests: seed {TEST_SEED}, {TEST_THREADS} TensorFlow intra-op thread(s), "
            "op determinism on")


@pytest.fixture(scope="session")
def test_seed() -> int:
    """The seed tests add to their fixed seeds: 0 unless ``TFLBNN_TEST_SEED`` says otherwise."""
    return TEST_SEED


@pytest.fixture(scope="session")
def test_threads() -> int:
    """Threads for TFLite/LCE interpreters, equal to TensorFlow's intra-op threads."""
    return TEST_THREADS


@pytest.fixture(scope="module", autouse=True)
def _seed_module():
    """Seeds module-scoped fixtures that train or draw (they run before function fixtures)."""
    tf.keras.utils.set_random_seed(TEST_SEED)  # Python's random, NumPy's global, TensorFlow


@pytest.fixture(autouse=True)
def _seed_test():
    tf.keras.utils.set_random_seed(TEST_SEED)  # Python's random, NumPy's global, TensorFlow


@pytest.fixture
def spread(request):
    """``spread(name, value)``: record a measured statistic of this test; returns ``value``.

    Appends ``{"test", "name", "value", "seed", "threads"}`` to the file named by
    ``TFLBNN_TEST_SPREAD_LOG`` (when set), before the test asserts on it, so that a failing
    run is measured too.
    """
    path = os.environ.get(SPREAD_LOG_VARIABLE)

    def record(name: str, value):
        value = float(value)
        if path:
            row = {"test": request.node.nodeid, "name": name, "value": value,
                   "seed": TEST_SEED, "threads": TEST_THREADS}
            with open(path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        return value

    return record
