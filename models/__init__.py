"""The tflbnn model zoo: papers' architectures at their published sizes, scalable to small inputs.

>>> from tflbnn.models import get_model, list_models, profile
>>> model = get_model("reactnet_a", input_shape=(28, 28, 1), num_classes=10, width=0.25,
...                   stem_stride=1)
>>> profile(model).ops
"""

from tflbnn import _backend  # noqa: F401

from tflbnn.profiling import LayerProfile, ModelProfile, profile
from tflbnn.models.registry import get_model, list_models, model_options, register_model
from tflbnn.models import reactnet  # noqa: F401  (registers the ReActNet models)
from tflbnn.models import n2uq  # noqa: F401  (registers the N2UQ models)
from tflbnn.models import s3  # noqa: F401  (registers the S3 models)
from tflbnn.models import bireal  # noqa: F401  (registers the Bi-Real models)
from tflbnn.models import binary_mobilenet  # noqa: F401  (registers the grouped binary MobileNet)
from tflbnn.models import bimlp  # noqa: F401  (registers the BiMLP models)

__all__ = [
    "get_model",
    "list_models",
    "model_options",
    "register_model",
    "profile",
    "ModelProfile",
    "LayerProfile",
]
