"""Learning-rate schedules of the binary-network recipes."""

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

__all__ = ["LinearEpochDecay"]


@lq.utils.register_keras_custom_object
class LinearEpochDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """ReActNet's linear decay, constant within an epoch (papers.md §1.5).

    Epoch ``k`` (0-based) trains at ``initial_learning_rate * (1 - (k + offset) / epochs)``.
    ``offset=1`` reproduces the reference code (``LambdaLR(1 - e/epochs)`` stepped at the start
    of every epoch), whose last epoch runs at learning rate 0 and only updates BatchNorm
    statistics; ``offset=0`` starts at the full rate instead.

    Args:
        initial_learning_rate: the base learning rate.
        epochs: number of epochs of the run.
        steps_per_epoch: optimizer steps in one epoch.
        offset: 1 (reference code) or 0.
    """

    def __init__(self, initial_learning_rate: float, epochs: int, steps_per_epoch: int,
                 offset: int = 1):
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"LinearEpochDecay: epochs and steps_per_epoch must be >= 1, got "
                             f"{epochs} and {steps_per_epoch}")
        if offset not in (0, 1):
            raise ValueError(f"LinearEpochDecay: offset must be 0 or 1, got {offset}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.offset = int(offset)

    def __call__(self, step):
        epoch = tf.math.floordiv(tf.cast(step, tf.float32), float(self.steps_per_epoch))
        fraction = 1.0 - (epoch + self.offset) / self.epochs
        return self.initial_learning_rate * tf.maximum(fraction, 0.0)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "offset": self.offset,
        }
