"""Pure tensor functions behind tfbio's layers.

Everything here takes plain tensors (forward kernel ``W`` and feedback kernel
``B`` explicitly) so that the maths can be checked against a NumPy or plain
TensorFlow reference in a few lines.
"""

from tfbio.ops.feedback_kernels import (
    random_magnitude_sign,
    sign_fix,
    sign_symmetric,
    ss_scale,
    stateless_magnitude_and_flips,
    stateless_magnitude,
    stateless_mask,
)
from tfbio.ops.feedback_ops import feedback_conv2d, feedback_matmul
from tfbio.ops.feedback_linear import feedback_linear
from tfbio.ops.kolen_pollack import kolen_pollack_decay
from tfbio.ops.similarity import angle_degrees, cosine, pearson_correlation

__all__ = [
    "angle_degrees",
    "cosine",
    "feedback_conv2d",
    "feedback_linear",
    "feedback_matmul",
    "kolen_pollack_decay",
    "pearson_correlation",
    "random_magnitude_sign",
    "sign_fix",
    "sign_symmetric",
    "ss_scale",
    "stateless_magnitude_and_flips",
    "stateless_magnitude",
    "stateless_mask",
]
