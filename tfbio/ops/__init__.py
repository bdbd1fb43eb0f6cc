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

__all__ = [
    "feedback_conv2d",
    "feedback_matmul",
    "random_magnitude_sign",
    "sign_fix",
    "sign_symmetric",
    "ss_scale",
    "stateless_magnitude_and_flips",
    "stateless_magnitude",
    "stateless_mask",
]
