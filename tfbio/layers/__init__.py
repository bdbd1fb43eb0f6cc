"""Keras layers with asymmetric feedback (tfbio)."""

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense
from tfbio.layers.locally_connected import LocallyConnected2D
from tfbio.layers.normalization import affine_free_batch_norm

__all__ = [
    "BaseFeedbackLayer", "Conv2D", "Dense", "LocallyConnected2D",
    "affine_free_batch_norm",
]
