"""Training pieces for binary networks, all usable from plain ``model.fit``.

- ``Distiller``: ReActNet's distributional loss against a frozen teacher.
- ``LinearEpochDecay``: the papers' linear per-epoch learning-rate decay.
- ``add_conv_weight_decay`` / ``transfer_weights``: the two-step recipe's weight handling.
- ``StopOnNaN``, ``SaveModelEachEpoch``: callbacks for long runs.
- ``train_stage`` / ``two_step``: resumable stages with checkpoints, CSV history and curves.
"""

from tflbnn import _backend  # noqa: F401

from tflbnn.losses import DistributionLoss, distribution_loss
from tflbnn.training.callbacks import SaveModelEachEpoch, StopOnNaN, TrainingDivergedError
from tflbnn.training.distillation import Distiller
from tflbnn.training.history import plot_histories, read_history
from tflbnn.training.recipes import STEP1_INITS, two_step
from tflbnn.training.schedules import LinearEpochDecay
from tflbnn.training.stage import StageResult, load_stage, train_stage
from tflbnn.training.weights import add_conv_weight_decay, conv_kernels, transfer_weights

__all__ = [
    "DistributionLoss",
    "distribution_loss",
    "Distiller",
    "LinearEpochDecay",
    "add_conv_weight_decay",
    "conv_kernels",
    "transfer_weights",
    "StopOnNaN",
    "SaveModelEachEpoch",
    "TrainingDivergedError",
    "read_history",
    "plot_histories",
    "StageResult",
    "train_stage",
    "load_stage",
    "two_step",
    "STEP1_INITS",
]
