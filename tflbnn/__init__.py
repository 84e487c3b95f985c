"""tflbnn: binary and low-bit neural networks in Keras, shipped as Larq Compute Engine TFLite.

Importing tflbnn selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before TensorFlow is imported and
raises ``ImportError`` if Keras 3 is active anyway.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

from tflbnn.layers import LearnableBias, RPReLU, RSign
from tflbnn.quantizers import ReActNetWeightSign
from tflbnn.blocks import react_bireal_block, reactnet_block

__version__ = "0.1.0"

__all__ = [
    "LearnableBias",
    "RPReLU",
    "RSign",
    "ReActNetWeightSign",
    "react_bireal_block",
    "reactnet_block",
    "__version__",
]
