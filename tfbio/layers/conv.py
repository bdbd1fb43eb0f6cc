"""Keras convolutions (1-D/3-D, transposed, depthwise, separable) with feedback.

Each class is the Keras layer of the same name with its kernel use routed
through ``tfbio.ops.feedback_linear`` (see ``tfbio.layers.feedback_mixin``):
forward pass and weight gradients are Keras' own, the input gradient is the
VJP of the same convolution with the feedback kernel ``B`` in place of ``W``
(xiao2018, liao2016, amit2019, lillicrap2016 for the algorithms).
``tfbio.layers.Conv2D`` is the older, self-contained 2-D convolution.

All kinds are ``"conv"``; the fans are those Keras' ``VarianceScaling`` reads
from the kernel shape (docs/algorithms.md §2.5, "Scales per layer type").
"""

import keras
from keras import ops

from tfbio.layers.feedback_mixin import FeedbackLayerMixin

# Docstring paragraphs: the feedback arguments (every class) and the kernel
# layout and fans that the classes of one family share.
_FEEDBACK_ARGS_DOC = """
  Feedback args (keyword only): ``feedback``, ``density``,
  ``feedback_density``, ``sign_fixed``, ``seed``: see
  ``tfbio.layers.BaseFeedbackLayer``. Every other argument is Keras'.
"""

_TRANSPOSE_DOC = """
  Kernel ``(*kernel_size, filters, c_in)`` (Keras' layout); kind ``"conv"``.
  Fans are those Keras reads from that shape, i.e. those of the forward
  convolution ``filters -> c_in`` whose transpose this layer computes:
  ``fan_in = prod(kernel_size)*filters``, ``fan_out = prod(kernel_size)*c_in``
  (``c_in``: this layer's input channels); ``ss`` scale ``sqrt(2/fan_out)``.
"""

_DEPTHWISE_DOC = """
  Kernel ``(*kernel_size, c_in, depth_multiplier)``; kind ``"conv"``; fans as
  Keras reads them: ``fan_in = prod(kernel_size)*c_in``,
  ``fan_out = prod(kernel_size)*depth_multiplier`` (not the per-channel
  ``prod(kernel_size)`` a depthwise output really sees); ``ss`` scale
  ``sqrt(2/fan_out)``; ``fa`` draws ``B`` from ``depthwise_initializer``.
"""

_SEPARABLE_DOC = """
  The forward pass is Keras' separable convolution computed as its two
  factors, a depthwise convolution (kernel ``depthwise_kernel``,
  ``(*kernel_size, c_in, depth_multiplier)``) and a 1x1 pointwise one
  (``pointwise_kernel``, ``(1, ..., c_in*depth_multiplier, filters)``). Each
  kernel has its own feedback ``B`` (state names prefixed ``depthwise_`` /
  ``pointwise_``; the pointwise kernel draws from a seed derived from
  ``seed``), so the layer is two stacked feedback layers: the input gradient
  is the VJP with both ``B`` substituted, the pointwise weight gradient is
  exact, and the depthwise weight gradient is exact given the signal that
  the pointwise ``B`` sends back to it. Kind ``"conv"``; fans (Keras):
  depthwise as ``DepthwiseConv2D``; pointwise
  ``fan_in = c_in*depth_multiplier``, ``fan_out = filters``.
  ``feedback_kernel("depthwise_kernel")`` /
  ``feedback_kernel("pointwise_kernel")`` return the two ``B``.
"""


def _feedback_layer(*paragraphs):
  """Class decorator: registers the layer as ``"tfbio>" + its name``.

  Appends ``paragraphs`` (shared docstring parts), then the feedback
  arguments, to the class docstring.

  Args:
    *paragraphs: docstring paragraphs, each starting with a blank line.

  Returns:
    The decorator.
  """

  def decorate(cls):
    cls.__doc__ = "".join((cls.__doc__.rstrip(), "\n") + paragraphs +
                          (_FEEDBACK_ARGS_DOC, "  "))
    return keras.saving.register_keras_serializable(package="tfbio")(cls)

  return decorate


class _Conv(FeedbackLayerMixin):
  """Shared ``_linear`` of the plain (Keras ``BaseConv``) convolutions."""

  def _conv_padding(self):
    return self.padding

  def _linear(self, inputs, pairs):
    strides, padding = list(self.strides), self._conv_padding()
    dilation_rate, data_format = self.dilation_rate, self.data_format

    def op(x, kernel):
      return ops.conv(x, kernel, strides=strides, padding=padding,
                      dilation_rate=dilation_rate, data_format=data_format)

    return self._apply_kernel(op, inputs, pairs[0])


@_feedback_layer()
class Conv1D(_Conv, keras.layers.Conv1D):
  """``keras.layers.Conv1D`` whose input gradient convolves with ``B``.

  Kernel ``(k, c_in, filters)``; kind ``"conv"``, fans (Keras):
  ``fan_in = k*c_in``, ``fan_out = k*filters``; ``ss`` scale
  ``sqrt(2/(k*filters))``. ``padding="causal"`` works as in Keras.

  Example:

  >>> layer = tfbio.layers.Conv1D(8, 3, padding="causal", feedback="ss")
  >>> layer(tf.ones((2, 10, 4))).shape
  TensorShape([2, 10, 8])
  """

  def call(self, inputs, training=None):
    if self.padding == "causal":
      inputs = ops.pad(inputs, self._compute_causal_padding())
    return super().call(inputs, training=training)

  def _conv_padding(self):
    return "valid" if self.padding == "causal" else self.padding


@_feedback_layer()
class Conv3D(_Conv, keras.layers.Conv3D):
  """``keras.layers.Conv3D`` whose input gradient convolves with ``B``.

  Kernel ``(kd, kh, kw, c_in, filters)``; kind ``"conv"``, fans (Keras):
  ``fan_in = kd*kh*kw*c_in``, ``fan_out = kd*kh*kw*filters``; ``ss`` scale
  ``sqrt(2/fan_out)``.
  """


class _ConvTranspose(FeedbackLayerMixin):
  """Shared ``_linear`` of the transposed convolutions."""

  def _linear(self, inputs, pairs):
    strides, padding = list(self.strides), self.padding
    output_padding, dilation_rate = self.output_padding, self.dilation_rate
    data_format = self.data_format

    def op(x, kernel):
      return ops.conv_transpose(
          x, kernel, strides=strides, padding=padding,
          output_padding=output_padding, dilation_rate=dilation_rate,
          data_format=data_format)

    return self._apply_kernel(op, inputs, pairs[0])


@_feedback_layer(_TRANSPOSE_DOC)
class Conv2DTranspose(_ConvTranspose, keras.layers.Conv2DTranspose):
  """``keras.layers.Conv2DTranspose`` whose input gradient uses ``B``.

  Example:

  >>> layer = tfbio.layers.Conv2DTranspose(4, 3, strides=2, feedback="fa")
  >>> layer(tf.ones((1, 5, 5, 2))).shape
  TensorShape([1, 11, 11, 4])
  """


@_feedback_layer(_TRANSPOSE_DOC)
class Conv1DTranspose(_ConvTranspose, keras.layers.Conv1DTranspose):
  """``keras.layers.Conv1DTranspose`` whose input gradient uses ``B``."""


@_feedback_layer(_TRANSPOSE_DOC)
class Conv3DTranspose(_ConvTranspose, keras.layers.Conv3DTranspose):
  """``keras.layers.Conv3DTranspose`` whose input gradient uses ``B``."""


class _DepthwiseConv(FeedbackLayerMixin):
  """Shared ``_linear`` of the depthwise convolutions."""

  _feedback_kernel_specs = (("kernel", "", "depthwise_initializer"),)

  def _linear(self, inputs, pairs):
    strides, padding = self.strides, self.padding
    dilation_rate, data_format = self.dilation_rate, self.data_format

    def op(x, kernel):
      return ops.depthwise_conv(x, kernel, strides=strides, padding=padding,
                                dilation_rate=dilation_rate,
                                data_format=data_format)

    return self._apply_kernel(op, inputs, pairs[0])


@_feedback_layer(_DEPTHWISE_DOC)
class DepthwiseConv2D(_DepthwiseConv, keras.layers.DepthwiseConv2D):
  """``keras.layers.DepthwiseConv2D`` whose input gradient uses ``B``.

  Example:

  >>> layer = tfbio.layers.DepthwiseConv2D(3, padding="same", feedback="ss")
  >>> layer(tf.ones((1, 6, 6, 4))).shape
  TensorShape([1, 6, 6, 4])
  """


@_feedback_layer(_DEPTHWISE_DOC)
class DepthwiseConv1D(_DepthwiseConv, keras.layers.DepthwiseConv1D):
  """``keras.layers.DepthwiseConv1D`` whose input gradient uses ``B``."""


class _SeparableConv(FeedbackLayerMixin):
  """Depthwise then pointwise convolution, each kernel with its own ``B``."""

  _feedback_kernel_specs = (
      ("depthwise_kernel", "depthwise_", "depthwise_initializer"),
      ("pointwise_kernel", "pointwise_", "pointwise_initializer"),
  )

  def _linear(self, inputs, pairs):
    strides, padding = self.strides, self.padding
    dilation_rate, data_format = self.dilation_rate, self.data_format
    ones = (1,) * self.rank

    def depthwise(x, kernel):
      return ops.depthwise_conv(x, kernel, strides=strides, padding=padding,
                                dilation_rate=dilation_rate,
                                data_format=data_format)

    def pointwise(x, kernel):
      return ops.conv(x, kernel, strides=ones, padding="valid",
                      dilation_rate=ones, data_format=data_format)

    y = self._apply_kernel(depthwise, inputs, pairs[0])
    return self._apply_kernel(pointwise, y, pairs[1])


@_feedback_layer(_SEPARABLE_DOC)
class SeparableConv2D(_SeparableConv, keras.layers.SeparableConv2D):
  """``keras.layers.SeparableConv2D`` with a feedback kernel per factor.

  Example:

  >>> layer = tfbio.layers.SeparableConv2D(8, 3, feedback="fa")
  >>> layer(tf.ones((1, 6, 6, 4))).shape
  TensorShape([1, 4, 4, 8])
  >>> layer.feedback_kernel("pointwise_kernel").shape
  TensorShape([1, 1, 4, 8])
  """


@_feedback_layer(_SEPARABLE_DOC)
class SeparableConv1D(_SeparableConv, keras.layers.SeparableConv1D):
  """``keras.layers.SeparableConv1D`` with a feedback kernel per factor."""
