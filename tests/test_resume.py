"""Interrupted training resumes exactly: same final weights as a run that was never stopped.

Every test trains a tiny model for a few epochs on 256 embedded Fashion-MNIST images and
compares weights bit for bit; the suite runs with op determinism (``conftest.py``), so two
identical runs give identical bits, and the assertions hold or fail the same way every time.
"""

import json

import numpy as np
import pytest

import tflbnn
import tensorflow as tf

from tflbnn import data as tflbnn_data
from tflbnn.training import read_history, train_stage
from tflbnn.training import stage as stage_module
from tflbnn.training.stage import EpochData

EPOCHS = 3


@pytest.fixture(scope="module")
def bundle():
    return tflbnn_data.load_data({"kind": "fashion_mnist", "source": "embedded",
                                  "limit_train": 256, "limit_test": 64})


def tiny_model(init_seed):
    tf.keras.utils.set_random_seed(init_seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(inputs)
    x = tflbnn.blocks.batch_norm("stem_bn")(x)
    x = tflbnn.reactnet_block(x, 16, stride=2, precision="binary", name="block1")
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x), name="tiny")


def epoch_data(bundle, seed=3):
    return EpochData(lambda epoch_seed: bundle.train_dataset(32, augment="standard",
                                                             seed=epoch_seed), seed=seed)


class _Stop(tf.keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the end of ``epoch``, after the stage's checkpoint."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class _EpochRecorder(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def _train(bundle, stage_dir, init_seed=1, callbacks=()):
    return train_stage(tiny_model(init_seed), epoch_data(bundle), bundle.test_dataset(64),
                       stage_dir=stage_dir, epochs=EPOCHS, learning_rate=5e-3, lr_offset=0,
                       callbacks=list(callbacks), verbose=0)


@pytest.fixture(scope="module")
def reference(bundle, tmp_path_factory):
    """The stage run once without interruption."""
    return _train(bundle, tmp_path_factory.mktemp("reference") / "stage")


def assert_same_weights(model, other):
    assert [w.name for w in model.weights] == [w.name for w in other.weights]
    for mine, theirs in zip(model.weights, other.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)


def test_epochs_differ_in_order_and_repeat_exactly(bundle):
    """Each epoch has its own order, a function of (seed, epoch) only: resuming must restore it."""
    data = epoch_data(bundle)
    labels = [np.concatenate([y.numpy() for _, y in data.epoch(e)]) for e in (0, 1, 1)]
    assert not np.array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(labels[1], labels[2])
    streamed = np.concatenate([y.numpy() for _, y in data.stream(1, 2)])
    np.testing.assert_array_equal(streamed, labels[1])


@pytest.mark.parametrize("stop_after", [0, 1])
def test_stage_interrupted_at_an_epoch_end_resumes_to_the_same_weights(
        bundle, reference, tmp_path, stop_after):
    stage_dir = tmp_path / "stage"
    with pytest.raises(KeyboardInterrupt):
        _train(bundle, stage_dir, callbacks=[_Stop(stop_after)])
    assert not (stage_dir / "stage.json").exists()
    recorder = _EpochRecorder()
    # Another initialisation: the checkpoint, not the seed, must set every weight.
    resumed = _train(bundle, stage_dir, init_seed=7, callbacks=[recorder])
    assert recorder.epochs == list(range(stop_after + 1, EPOCHS))
    assert_same_weights(reference.model, resumed.model)
    assert [row["epoch"] for row in read_history(stage_dir / "history.csv")] == [0, 1, 2]
    assert not (stage_dir / "backup").exists()


def test_interruption_after_fit_before_the_stage_is_marked_done_keeps_every_epoch(
        bundle, reference, tmp_path, monkeypatch):
    """A SIGINT between ``fit`` returning and ``stage.json`` once cost the whole stage."""
    stage_dir = tmp_path / "stage"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(stage_module, "plot_histories", interrupted)  # runs right after fit
        with pytest.raises(KeyboardInterrupt):
            _train(bundle, stage_dir)
    assert not (stage_dir / "stage.json").exists()
    assert json.loads((stage_dir / "backup" / "state.json").read_text())["epochs_done"] == EPOCHS
    recorder = _EpochRecorder()
    finished = _train(bundle, stage_dir, init_seed=7, callbacks=[recorder])
    assert recorder.epochs == []  # nothing trained again
    assert_same_weights(reference.model, finished.model)
    assert json.loads((stage_dir / "stage.json").read_text())["epochs"] == EPOCHS
    assert not (stage_dir / "backup").exists()


def test_interruption_after_the_stage_is_marked_done_reuses_it(bundle, tmp_path, monkeypatch):
    stage_dir = tmp_path / "stage"
    real_rmtree = stage_module.shutil.rmtree

    def interrupted_backup_removal(path, *args, **kwargs):
        if str(path).endswith("backup"):
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stage_module.shutil, "rmtree", interrupted_backup_removal)
        with pytest.raises(KeyboardInterrupt):
            _train(bundle, stage_dir)
    assert (stage_dir / "stage.json").is_file() and (stage_dir / "backup").is_dir()
    again = _train(bundle, stage_dir, init_seed=7)
    assert again.reused and not (stage_dir / "backup").exists()
