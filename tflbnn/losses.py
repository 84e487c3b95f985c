"""ReActNet's distributional loss: knowledge distillation from a real-valued teacher."""

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

__all__ = ["distribution_loss", "DistributionLoss", "label_cross_entropy"]


def distribution_loss(teacher_logits: tf.Tensor, student_logits: tf.Tensor) -> tf.Tensor:
    """Soft cross-entropy of the student against the teacher's softmax (papers.md §1.4).

    ``L = -(1/N) Σ_n Σ_c softmax(z_T)_c · log softmax(z_S)_c``, which equals
    ``KL(p_T ‖ p_S)`` plus the teacher's entropy (a constant for the student). No gradient flows
    into the teacher.

    Args:
        teacher_logits: ``(N, C)`` logits of the real-valued teacher.
        student_logits: ``(N, C)`` logits of the binary student.

    Returns:
        The scalar mean loss over the batch.
    """
    targets = tf.stop_gradient(tf.nn.softmax(teacher_logits, axis=-1))
    log_probs = tf.nn.log_softmax(student_logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(targets * log_probs, axis=-1))


def label_cross_entropy(one_hot: bool) -> tf.keras.losses.Loss:
    """Cross-entropy on logits for one-hot (mixup / cutmix) or integer labels.

    Args:
        one_hot: the labels are one-hot rows (rank of the logits) rather than class indices.

    Returns:
        ``CategoricalCrossentropy`` or ``SparseCategoricalCrossentropy``, both ``from_logits``.
    """
    if one_hot:
        return tf.keras.losses.CategoricalCrossentropy(from_logits=True)
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@lq.utils.register_keras_custom_object
class DistributionLoss(tf.keras.losses.Loss):
    """``distribution_loss`` as a Keras loss: ``y_true`` are the teacher's logits."""

    def __init__(self, name: str = "distribution_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        targets = tf.stop_gradient(tf.nn.softmax(y_true, axis=-1))
        return -tf.reduce_sum(targets * tf.nn.log_softmax(y_pred, axis=-1), axis=-1)
