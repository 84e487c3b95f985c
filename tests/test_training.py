"""Training pieces: losses and schedules against formulas, fit-based stages, resume, NaN stop."""

import json

import numpy as np
import pytest

import tflbnn
import tensorflow as tf

from tflbnn.training import (Distiller, LinearEpochDecay, TrainingDivergedError,
                             add_conv_weight_decay, distribution_loss, transfer_weights,
                             train_stage, two_step, read_history,
                             plot_validation_accuracy)


def tiny_model(precision="binary", num_classes=4):
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tflbnn.blocks.batch_norm("stem_bn")(x)
    x = tflbnn.reactnet_block(x, 32, stride=2, precision=precision, name="block1")
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(num_classes, name="logits")(x),
                          name=f"tiny_{precision}")


def toy_data(n=64, seed=0, nan=False):
    """Four separable classes: a bright quadrant per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.normal(scale=0.3, size=(n, 16, 16, 1)).astype(np.float32)
    for i, label in enumerate(labels):
        r, c = divmod(label, 2)
        images[i, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 2.0
    if nan:
        images[:] = np.nan
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


def test_distribution_loss_matches_numpy_and_kl_identity():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 8, 5)).astype(np.float32)
    p_t = np.exp(teacher) / np.exp(teacher).sum(-1, keepdims=True)
    log_p_s = student - np.log(np.exp(student).sum(-1, keepdims=True))
    expected = -(p_t * log_p_s).sum(-1).mean()
    assert distribution_loss(teacher, student).numpy() == pytest.approx(expected, rel=1e-5)
    kl = (p_t * (np.log(p_t) - log_p_s)).sum(-1).mean()
    entropy = -(p_t * np.log(p_t)).sum(-1).mean()
    assert expected == pytest.approx(kl + entropy, rel=1e-5)
    teacher_tf = tf.Variable(teacher)
    with tf.GradientTape() as tape:
        loss = distribution_loss(teacher_tf, tf.constant(student))
    assert tape.gradient(loss, teacher_tf) is None


def test_linear_epoch_decay_follows_reference_code():
    schedule = LinearEpochDecay(1e-3, epochs=4, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 9, 10, 25, 39)]
    np.testing.assert_allclose(rates, [7.5e-4, 7.5e-4, 5e-4, 2.5e-4, 0.0], atol=1e-12)
    from_full = LinearEpochDecay(1e-3, epochs=4, steps_per_epoch=10, offset=0)
    assert float(from_full(0)) == pytest.approx(1e-3)
    clone = LinearEpochDecay.from_config(schedule.get_config())
    assert float(clone(25)) == pytest.approx(2.5e-4)


def test_conv_weight_decay_touches_conv_kernels_only():
    model = tiny_model("binary_activations")
    add_conv_weight_decay(model, 1e-2)
    with tf.GradientTape() as tape:
        loss = tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, grad in zip(model.trainable_variables, grads):
        if variable.name.endswith("kernel:0") and "logits" not in variable.name:
            np.testing.assert_allclose(grad.numpy(), 1e-2 * variable.numpy(), rtol=1e-5)
        else:
            assert grad is None, variable.name


def test_transfer_weights_copies_everything_and_names_mismatches():
    source, target = tiny_model("binary_activations"), tiny_model("binary")
    count = transfer_weights(source, target)
    assert count == len(target.weights)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="logits"):
        transfer_weights(source, tiny_model("binary", num_classes=5))


def test_distiller_fits_and_leaves_teacher_frozen(test_seed, spread):
    """Three epochs of distillation from an untrained float teacher remove most of the KL.

    The loss is the cross-entropy from the teacher's distribution, which cannot fall below the
    teacher's own entropy H (KL = loss - H); an untrained teacher is near uniform, so H is
    close to log 4 and the raw loss can only fall by a few percent (last/first epoch
    0.89-0.97 measured, too close to 1 for a margin). The assertion is on what the student
    can learn: the last epoch's excess over H is less than half the first's.

    Why it cannot flake: initial weights come from the test seed (tests/conftest.py) and the
    data from ``toy_data(seed=test_seed)``, with op determinism and fixed threads, so a seed
    computes the same losses on every run. Measured over seeds 0-4 at 2 threads and seed 0 at
    1 thread (tests/spread_measurements.json): excess ratio 0.065-0.181; ceiling 0.5, two
    spreads above the highest.
    """
    teacher = tiny_model("float")
    before = [w.numpy().copy() for w in teacher.weights]
    distiller = Distiller(tiny_model("binary"), teacher)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    data = toy_data(seed=test_seed)
    history = distiller.fit(data, epochs=3, verbose=0)
    losses = history.history["loss"]
    spread("last_to_first_loss", losses[-1] / losses[0])
    # The teacher is frozen and run in inference mode, so H is one number for the whole data.
    probabilities = np.concatenate([tf.nn.softmax(teacher(images, training=False)).numpy()
                                    for images, _ in data]).astype(np.float64)
    entropy = np.mean(-(probabilities * np.log(probabilities)).sum(-1))
    assert losses[-1] > entropy - 1e-3  # cross-entropy >= entropy (float32 rounding aside)
    assert spread("last_to_first_kl", (losses[-1] - entropy) / (losses[0] - entropy)) < 0.5
    for w, b in zip(teacher.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    with pytest.raises(ValueError, match="outputs"):
        Distiller(tiny_model(num_classes=3), teacher)


class _InterruptAt(tf.keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class _EpochRecorder(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_stage_resumes_after_interruption_and_reuses_finished_stage(tmp_path):
    stage_dir = tmp_path / "stage"
    with pytest.raises(KeyboardInterrupt):
        train_stage(tiny_model(), toy_data(), toy_data(seed=1), stage_dir=stage_dir, epochs=3,
                    learning_rate=1e-2, callbacks=[_InterruptAt(2)], verbose=0)
    assert (stage_dir / "last.keras").is_file() and not (stage_dir / "model.keras").exists()
    recorder = _EpochRecorder()
    result = train_stage(tiny_model(), toy_data(), toy_data(seed=1), stage_dir=stage_dir,
                         epochs=3, learning_rate=1e-2, callbacks=[recorder], verbose=0)
    assert recorder.epochs == [2]  # only the epoch that had not finished
    assert [row["epoch"] for row in read_history(stage_dir / "history.csv")] == [0, 1, 2]
    assert (stage_dir / "curves.png").stat().st_size > 0
    assert json.loads((stage_dir / "stage.json").read_text())["epochs"] == 3
    again = train_stage(tiny_model(), toy_data(), toy_data(seed=1), stage_dir=stage_dir,
                        epochs=3, learning_rate=1e-2, verbose=0)
    assert again.reused and again.test_accuracy == pytest.approx(result.test_accuracy)
    with pytest.raises(ValueError, match="finished run of 3 epochs but 5 were asked for"):
        train_stage(tiny_model(), toy_data(), toy_data(seed=1), stage_dir=stage_dir, epochs=5,
                    learning_rate=1e-2, verbose=0)


def test_plot_validation_accuracy_writes_png_and_names_a_history_without_it(tmp_path):
    rows = [{"epoch": 0.0, "val_accuracy": 0.5}, {"epoch": 1.0, "val_accuracy": 0.7}]
    path = plot_validation_accuracy({"a": rows, "b": rows[:1]}, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'b' has epochs without val_accuracy"):
        plot_validation_accuracy({"a": rows, "b": [{"epoch": 0.0, "loss": 1.0}]},
                                 tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_nan_loss_stops_with_clear_error_and_no_final_model(tmp_path):
    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 1, batch 1"):
        train_stage(tiny_model(), toy_data(nan=True), toy_data(), stage_dir=tmp_path / "s",
                    epochs=2, learning_rate=1e-2, verbose=0)
    assert not (tmp_path / "s" / "model.keras").exists()


def test_two_step_trains_teacher_then_both_steps(tmp_path, test_seed, spread):
    """Teacher, step 1 and step 2 each train and save a model; the teacher learns the toy task.

    Why it cannot flake: seeded weights (tests/conftest.py), data from ``toy_data`` with seeds
    ``2 * test_seed`` (train) and ``2 * test_seed + 1`` (test), op determinism and fixed threads.
    Four classes make chance 25 %. Measured over seeds 0-4 at 2 threads and seed 0 at 1 thread
    (tests/spread_measurements.json): teacher accuracy 100 % on the 64 test images at every
    seed and thread count (spread 0); floor 50 %, twice chance and half the measured value.
    """
    results = two_step(tiny_model, toy_data(n=128, seed=2 * test_seed),
                       toy_data(seed=2 * test_seed + 1), run_dir=tmp_path,
                       teacher_epochs=4, step1_epochs=2, step2_epochs=2, learning_rate=1e-2,
                       lr_offset=0, verbose=0)
    assert list(results) == ["teacher", "step1", "step2"]
    step2 = results["step2"].model
    assert all(layer.kernel_quantizer.precision == 1
               for layer in step2.layers if "bconv" in layer.name)
    # The toy task (a bright quadrant per class) is easy for the float twin.
    assert spread("teacher_accuracy", results["teacher"].test_accuracy) > 0.5
    for stage in results:
        assert (tmp_path / stage / "model.keras").is_file()
