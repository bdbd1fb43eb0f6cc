"""2-D convolution with a feedback kernel in its backward pass."""

import keras
import tensorflow as tf

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.ops import feedback_ops
from tfbio.ops.feedback_linear import feedback_linear
from tfbio.utils import checks
from tfbio.utils.geometry import conv_output_length


@keras.saving.register_keras_serializable(package="tfbio")
class Conv2D(BaseFeedbackLayer):
  """``keras.layers.Conv2D`` whose input gradient convolves with ``B``.

  Forward: exactly Keras' convolution. Backward: true ``dE/dW``, ``dE/db``;
  ``dE/dx`` is the transposed convolution of ``g`` with ``B``
  (docs/algorithms.md §1, §2; xiao2018, liao2016, amit2019).

  Grouped convolution (``groups=G > 1``, e.g. ConvNeXt's depthwise 7x7):
  kernel ``(kh, kw, c_in/G, filters)`` as Keras; the convolution is Keras'
  ``ops.conv`` routed through ``tfbio.ops.feedback_linear`` (``dE/dx`` is its
  own input-VJP with ``B``); fans as Keras reads them,
  ``fan_in = kh*kw*c_in/G``, ``fan_out = kh*kw*filters``
  (docs/algorithms.md §2.5).

  Input shape: ``(batch, h, w, c_in)`` (``channels_last``) or
  ``(batch, c_in, h, w)`` (``channels_first``).

  Example:

  >>> layer = tfbio.layers.Conv2D(8, 3, padding="same", feedback="fa")
  >>> layer(tf.ones((1, 8, 8, 3))).shape
  TensorShape([1, 8, 8, 8])

  Args:
    filters, kernel_size, strides, padding, data_format, dilation_rate,
    groups, activation, use_bias, kernel_initializer,
    bias_initializer, kernel_regularizer, bias_regularizer,
    activity_regularizer, kernel_constraint, bias_constraint: as
      ``keras.layers.Conv2D``.
    feedback, density, feedback_density, sign_fixed, seed: see
      ``tfbio.layers.BaseFeedbackLayer``.
  """

  kernel_kind = "conv"

  def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
               data_format=None, dilation_rate=(1, 1), groups=1,
               activation=None, use_bias=True,
               kernel_initializer="glorot_uniform", bias_initializer="zeros",
               kernel_regularizer=None, bias_regularizer=None,
               activity_regularizer=None, kernel_constraint=None,
               bias_constraint=None, feedback="bp", density=1.0,
               feedback_density=1.0, sign_fixed=False, seed=None, **kwargs):
    super().__init__(
        activation=activation, use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
        feedback=feedback, density=density,
        feedback_density=feedback_density, sign_fixed=sign_fixed, seed=seed,
        **kwargs)
    filters = checks.positive_int("filters", filters)
    groups = checks.positive_int("groups", groups)
    if filters % groups:
      raise ValueError(f"filters must be divisible by groups. Received: "
                       f"filters={filters!r}, groups={groups!r}")
    self.filters = filters
    self.kernel_size = checks.int_tuple("kernel_size", kernel_size, 2)
    self.strides = checks.int_tuple("strides", strides, 2)
    self.padding = checks.padding("padding", padding)
    if data_format is None:
      data_format = keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
      raise ValueError(f"data_format must be 'channels_last' or "
                       f"'channels_first'. Received: data_format={data_format!r}")
    self.data_format = data_format
    self.dilation_rate = checks.int_tuple("dilation_rate", dilation_rate, 2)
    if max(self.strides) > 1 and max(self.dilation_rate) > 1:
      raise ValueError(f"strides > 1 cannot be combined with dilation_rate > 1."
                       f" Received: strides={strides!r}, "
                       f"dilation_rate={dilation_rate!r}")
    self.groups = groups
    self.input_spec = keras.layers.InputSpec(ndim=4)

  @property
  def _channel_axis(self):
    return -1 if self.data_format == "channels_last" else 1

  def build(self, input_shape):
    c_in = input_shape[self._channel_axis]
    if c_in is None:
      raise ValueError(f"The channel dimension of the input to {self.name!r} "
                       f"must be known. Received: input_shape={input_shape}")
    if c_in % self.groups:
      raise ValueError(f"The input channels of {self.name!r} must be "
                       f"divisible by groups. Received: channels={c_in}, "
                       f"groups={self.groups}")
    kh, kw = self.kernel_size
    per_group = c_in // self.groups
    self._build_weights(
        (kh, kw, per_group, self.filters), fan_in=kh * kw * per_group,
        fan_out=kh * kw * self.filters, bias_shape=(self.filters,))
    self.input_spec = keras.layers.InputSpec(
        ndim=4, axes={self._channel_axis: c_in})

  def call(self, inputs, training=None):
    w, b = self._kernels(training=training)
    x = tf.convert_to_tensor(inputs)
    if self.data_format == "channels_first":
      x = tf.transpose(x, [0, 2, 3, 1])
    if self.groups > 1:
      y = self._grouped_conv(x, w, b)
    elif b is None:
      y = tf.nn.conv2d(x, w, (1,) + self.strides + (1,),
                       self.padding.upper(),
                       dilations=(1,) + self.dilation_rate + (1,))
    else:
      y = feedback_ops.feedback_conv2d(
          x, w, b, strides=self.strides, padding=self.padding,
          dilations=self.dilation_rate,
          feedback_receives_kernel_grad=self.feedback.trainable_feedback)
    y = self._finish(y)
    if self.data_format == "channels_first":
      y = tf.transpose(y, [0, 3, 1, 2])
    return y

  def _grouped_conv(self, x, w, b):
    """Keras' grouped convolution (NHWC); input gradient with ``B``."""
    strides, padding = self.strides, self.padding
    dilation_rate = self.dilation_rate

    def op(inputs, kernel):
      return keras.ops.conv(inputs, kernel, strides=strides, padding=padding,
                            dilation_rate=dilation_rate,
                            data_format="channels_last")

    if b is None:
      return op(x, w)
    return feedback_linear(
        op, x, w, b,
        feedback_receives_kernel_grad=self.feedback.trainable_feedback)

  def compute_output_shape(self, input_shape):
    if self.data_format == "channels_last":
      spatial = input_shape[1:3]
    else:
      spatial = input_shape[2:4]
    out = tuple(
        conv_output_length(n, k, s, self.padding, d)
        for n, k, s, d in zip(spatial, self.kernel_size, self.strides,
                              self.dilation_rate))
    if self.data_format == "channels_last":
      return (input_shape[0],) + out + (self.filters,)
    return (input_shape[0], self.filters) + out

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "kernel_size": self.kernel_size,
        "strides": self.strides,
        "padding": self.padding,
        "data_format": self.data_format,
        "dilation_rate": self.dilation_rate,
        "groups": self.groups,
    })
    return config
