"""tflbnn: binary and low-bit neural networks in Keras, shipped as Larq Compute Engine TFLite.

Importing tflbnn selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before TensorFlow is imported and
raises ``ImportError`` if Keras 3 is active anyway.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

from tflbnn.layers import LearnableBias, RPReLU, RSign
from tflbnn.quantizers import ReActNetWeightSign
from tflbnn.blocks import react_bireal_block, reactnet_block
from tflbnn.n2uq import N2UQActivationQuantizer, N2UQWeightQuantizer, n2uq_threshold_variables
from tflbnn.shift import DeepShiftQ, S3Conv2D, S3Dense, s3_weight
from tflbnn.bimlp import (BinarySign, BranchMerge, BranchReweight, DropPath, GroupedQuantConv2D,
                          PhaseModulation, UniShortcut)
from tflbnn.bn_free import (FixedScale, ScaledWeightStandardization,
                            ScaledWeightStandardizationSign, ScaledWSConv2D)

__version__ = "0.1.0"

__all__ = [
    "BinarySign",
    "BranchMerge",
    "BranchReweight",
    "DropPath",
    "GroupedQuantConv2D",
    "PhaseModulation",
    "UniShortcut",
    "DeepShiftQ",
    "FixedScale",
    "LearnableBias",
    "N2UQActivationQuantizer",
    "N2UQWeightQuantizer",
    "RPReLU",
    "RSign",
    "ReActNetWeightSign",
    "S3Conv2D",
    "S3Dense",
    "ScaledWSConv2D",
    "ScaledWeightStandardization",
    "ScaledWeightStandardizationSign",
    "n2uq_threshold_variables",
    "react_bireal_block",
    "reactnet_block",
    "s3_weight",
    "__version__",
]
