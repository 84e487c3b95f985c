"""Knowledge distillation through plain ``model.fit``: a student trained on a frozen teacher."""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import tensorflow as tf

from tflbnn.losses import distribution_loss, label_cross_entropy

__all__ = ["Distiller"]


def _label_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    # One-hot (mixup / cutmix) labels have the logits' rank; integer labels one less.
    return label_cross_entropy(labels.shape.rank == logits.shape.rank)(labels, logits)


class Distiller(tf.keras.Model):
    """Trains ``student`` with ReActNet's distributional loss against a frozen ``teacher``.

    ``loss = distribution_loss(teacher(x), student(x)) + label_weight · CE(y, student(x))
    + student.losses`` (regularisers such as ``add_conv_weight_decay``). The teacher sees the
    same augmented batch in inference mode. Evaluation reports the student's cross-entropy
    against the labels as ``loss`` and the compiled metrics (e.g. accuracy).

    Use it like any model: ``Distiller(student, teacher).compile(optimizer, metrics=[...])``
    then ``fit``. Save ``distiller.student``, which is an ordinary functional model.

    Args:
        student: the model being trained (outputs logits).
        teacher: a trained model with the same number of logits; frozen here.
        label_weight: weight of the label cross-entropy; 0 reproduces ReActNet, which uses no
            labels at all.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model,
                 label_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if student.output_shape[-1] != teacher.output_shape[-1]:
            raise ValueError(f"Distiller: student {student.name!r} has "
                             f"{student.output_shape[-1]} outputs but teacher {teacher.name!r} "
                             f"has {teacher.output_shape[-1]}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.label_weight = float(label_weight)
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker] + super().metrics

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def train_step(self, data):
        images, labels = data[0], data[1]
        teacher_logits = self.teacher(images, training=False)
        with tf.GradientTape() as tape:
            logits = self.student(images, training=True)
            loss = distribution_loss(teacher_logits, logits)
            if self.label_weight:
                loss += self.label_weight * _label_loss(labels, logits)
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(labels, logits)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        images, labels = data[0], data[1]
        logits = self.student(images, training=False)
        self.loss_tracker.update_state(_label_loss(labels, logits))
        self.compiled_metrics.update_state(labels, logits)
        return {metric.name: metric.result() for metric in self.metrics}
