"""Training pieces for binary networks, all usable from plain ``model.fit``.

- ``Distiller``: ReActNet's distributional loss against a frozen teacher.
- ``LinearEpochDecay``: the papers' linear per-epoch learning-rate decay.
- ``add_conv_weight_decay`` / ``transfer_weights``: the two-step recipe's weight handling.
- ``StopOnNaN``, ``SaveModelEachEpoch``: callbacks for long runs.
- ``n2uq_optimizer`` / ``sgd_cosine_optimizer``: the N2UQ and S3 optimizers.
- ``bop_optimizer`` + ``sign_binary_kernels``: Bop on ±1 binary kernels, Adam for the rest.
- ``AdaptiveGradientClipping`` / ``agc_adam_optimizer``: NF-Net adaptive gradient clipping, for
  BN-free models (``reactnet_a(bn_free=True)``).
- ``train_stage``: a resumable stage with checkpoints, CSV history and curves (with
  ``EpochData`` a resumed stage ends exactly where an uninterrupted one ends); the recipes
  ``two_step`` (ReActNet), ``adambnn_recipe``, ``bop_recipe``, ``bn_free_recipe``,
  ``n2uq_recipe`` and ``s3_recipe`` chain stages.
"""

from tflbnn import _backend  # noqa: F401

from tflbnn.losses import DistributionLoss, distribution_loss
from tflbnn.training.agc import AdaptiveGradientClipping, adaptive_clip, unitwise_norm
from tflbnn.training.callbacks import SaveModelEachEpoch, StopOnNaN, TrainingDivergedError
from tflbnn.training.distillation import Distiller
from tflbnn.training.history import plot_histories, plot_validation_accuracy, read_history
from tflbnn.training.optimizers import (adam_linear_optimizer, agc_adam_optimizer,
                                        bop_optimizer, n2uq_optimizer, sgd_cosine_optimizer)
from tflbnn.training.recipes import (STEP1_INITS, adambnn_recipe, bn_free_recipe, bop_recipe,
                                     n2uq_recipe, s3_recipe, two_step)
from tflbnn.training.schedules import LinearEpochDecay
from tflbnn.training.stage import (EpochData, StageResult, count_batches, load_stage,
                                   train_stage)
from tflbnn.training.weights import (add_conv_weight_decay, add_weight_decay, binary_kernels,
                                     conv_kernels, sign_binary_kernels, transfer_weights)

__all__ = [
    "DistributionLoss",
    "distribution_loss",
    "Distiller",
    "LinearEpochDecay",
    "add_conv_weight_decay",
    "add_weight_decay",
    "adam_linear_optimizer",
    "n2uq_optimizer",
    "sgd_cosine_optimizer",
    "agc_adam_optimizer",
    "bop_optimizer",
    "AdaptiveGradientClipping",
    "adaptive_clip",
    "unitwise_norm",
    "binary_kernels",
    "sign_binary_kernels",
    "count_batches",
    "conv_kernels",
    "transfer_weights",
    "StopOnNaN",
    "SaveModelEachEpoch",
    "TrainingDivergedError",
    "read_history",
    "plot_histories",
    "plot_validation_accuracy",
    "StageResult",
    "EpochData",
    "train_stage",
    "load_stage",
    "two_step",
    "adambnn_recipe",
    "bop_recipe",
    "bn_free_recipe",
    "n2uq_recipe",
    "s3_recipe",
    "STEP1_INITS",
]
