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


def tiny_model(init_seed, precision="binary"):
    tf.keras.utils.set_random_seed(init_seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(inputs)
    x = tflbnn.blocks.batch_norm("stem_bn")(x)
    x = tflbnn.reactnet_block(x, 16, stride=2, precision=precision, name="block1")
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
    # By position: a model loaded from a file names its weights differently.
    assert [w.shape for w in model.weights] == [w.shape for w in other.weights]
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


def test_stage_interrupted_at_an_epoch_end_resumes_to_the_same_weights(bundle, reference,
                                                                      tmp_path):
    stop_after = 1
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


def test_interruptions_after_fit_keep_every_epoch(bundle, reference, tmp_path, monkeypatch):
    """A SIGINT between ``fit`` returning and ``stage.json`` once cost the whole stage; one
    between ``stage.json`` and the backup's removal must leave a reusable stage."""
    stage_dir = tmp_path / "stage"
    real_rmtree = stage_module.shutil.rmtree

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupted_backup_removal(path, *args, **kwargs):
        if str(path).endswith("backup"):
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stage_module, "plot_histories", interrupted)  # runs right after fit
        with pytest.raises(KeyboardInterrupt):
            _train(bundle, stage_dir)
    assert not (stage_dir / "stage.json").exists()
    assert json.loads((stage_dir / "backup" / "state.json").read_text())["epochs_done"] == EPOCHS

    recorder = _EpochRecorder()
    with monkeypatch.context() as patch:
        patch.setattr(stage_module.shutil, "rmtree", interrupted_backup_removal)
        with pytest.raises(KeyboardInterrupt):
            _train(bundle, stage_dir, init_seed=7, callbacks=[recorder])
    assert recorder.epochs == []  # nothing trained again
    assert json.loads((stage_dir / "stage.json").read_text())["epochs"] == EPOCHS
    assert (stage_dir / "backup").is_dir()

    finished = _train(bundle, stage_dir, init_seed=7)
    assert finished.reused and not (stage_dir / "backup").exists()
    assert_same_weights(reference.model, finished.model)
    assert [row["epoch"] for row in read_history(stage_dir / "history.csv")] == [0, 1, 2]


#: Run in a subprocess (argv: run folder, intra-op threads, inter-op threads): two-step
#: training that SIGKILLs itself right after step 1 commits its first epoch (the teacher
#: stage has finished by then).
KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, os.path.dirname(sys.argv[4]))
import tflbnn
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[2]))
tf.config.threading.set_inter_op_parallelism_threads(int(sys.argv[3]))
tf.config.experimental.enable_op_determinism()
from tflbnn.training.callbacks import EpochCheckpoint
from test_resume import run_two_step

commit = EpochCheckpoint.on_epoch_end

def commit_then_die(self, epoch, logs=None):
    commit(self, epoch, logs)
    if self.folder.parent.name == "step1" and epoch == 0:
        os.kill(os.getpid(), signal.SIGKILL)

EpochCheckpoint.on_epoch_end = commit_then_die
run_two_step(sys.argv[1])
"""


def run_two_step(run_dir):
    """Teacher (1 epoch), step 1 (2 epochs), step 2 (1 epoch) of the tiny model."""
    from tflbnn.training import two_step

    bundle = tflbnn_data.load_data({"kind": "fashion_mnist", "source": "embedded",
                                    "limit_train": 128, "limit_test": 64})

    def build(precision):
        return tiny_model(11, precision)

    return two_step(build, epoch_data(bundle), bundle.test_dataset(64), run_dir=run_dir,
                    teacher_epochs=1, step1_epochs=2, step2_epochs=1, learning_rate=5e-3,
                    lr_offset=0, verbose=0)


def test_run_killed_mid_stage_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, capsys):
    """SIGKILL in step 1 of a two-step run: the rerun reuses the teacher, resumes step 1 after
    its first epoch and ends with the final weights of a run that was never stopped."""
    import subprocess
    import sys

    run_dir = tmp_path / "killed"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(run_dir),
         str(tf.config.threading.get_intra_op_parallelism_threads()),
         str(tf.config.threading.get_inter_op_parallelism_threads()), __file__],
        capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (run_dir / "teacher" / "stage.json").is_file()
    assert json.loads((run_dir / "step1" / "backup" / "state.json").read_text())[
        "epochs_done"] == 1
    capsys.readouterr()
    resumed = run_two_step(run_dir)
    out = capsys.readouterr().out
    assert "[teacher] already trained" in out and "resuming after epoch 1" in out
    uninterrupted = run_two_step(tmp_path / "uninterrupted")
    for stage in ("teacher", "step1", "step2"):
        assert_same_weights(uninterrupted[stage].model, resumed[stage].model)
