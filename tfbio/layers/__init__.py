"""Keras layers with asymmetric feedback (tfbio)."""

from tfbio.layers.attention import MultiHeadAttention
from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.layers.conv import Conv1D
from tfbio.layers.conv import Conv1DTranspose
from tfbio.layers.conv import Conv2DTranspose
from tfbio.layers.conv import Conv3D
from tfbio.layers.conv import Conv3DTranspose
from tfbio.layers.conv import DepthwiseConv1D
from tfbio.layers.conv import DepthwiseConv2D
from tfbio.layers.conv import SeparableConv1D
from tfbio.layers.conv import SeparableConv2D
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense
from tfbio.layers.einsum_dense import EinsumDense
from tfbio.layers.feedback_mixin import FeedbackLayerMixin
from tfbio.layers.locally_connected import LocallyConnected2D
from tfbio.layers.normalization import affine_free_batch_norm

__all__ = [
    "BaseFeedbackLayer", "Conv1D", "Conv1DTranspose", "Conv2D",
    "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "Dense",
    "DepthwiseConv1D", "DepthwiseConv2D", "EinsumDense", "FeedbackLayerMixin",
    "LocallyConnected2D", "MultiHeadAttention", "SeparableConv1D",
    "SeparableConv2D", "affine_free_batch_norm",
]
