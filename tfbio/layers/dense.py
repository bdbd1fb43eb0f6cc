"""Dense layer with a feedback kernel in its backward pass."""

import keras
import tensorflow as tf

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.ops import feedback_ops
from tfbio.utils import checks


@keras.saving.register_keras_serializable(package="tfbio")
class Dense(BaseFeedbackLayer):
  """``keras.layers.Dense`` whose input gradient uses a feedback kernel ``B``.

  Forward: ``activation(x @ W + b)``, exactly as Keras. Backward: ``dE/dW`` and
  ``dE/db`` are the true gradients, ``dE/dx = g @ B^T`` where ``B`` is defined
  by ``feedback`` (docs/algorithms.md §1, §2; xiao2018, liao2016, amit2019).

  Input shape: ``(..., n_in)``; output shape ``(..., units)``.

  Example:

  >>> layer = tfbio.layers.Dense(10, feedback="ss")
  >>> y = layer(tf.ones((2, 4)))
  >>> layer.feedback_kernel().shape
  TensorShape([4, 10])

  Args:
    units: positive int.
    activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, bias_constraint: as ``keras.layers.Dense``.
    feedback, density, feedback_density, sign_fixed, seed: see
      ``tfbio.layers.BaseFeedbackLayer``.
    **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).
  """

  kernel_kind = "dense"

  def __init__(self, units, activation=None, use_bias=True,
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
    self.units = checks.positive_int("units", units)
    self.input_spec = keras.layers.InputSpec(min_ndim=2)
    self.supports_masking = True

  def build(self, input_shape):
    n_in = input_shape[-1]
    if n_in is None:
      raise ValueError(f"The last dimension of the input to {self.name!r} "
                       f"must be known. Received: input_shape={input_shape}")
    self._build_weights((n_in, self.units), fan_in=n_in, fan_out=self.units,
                        bias_shape=(self.units,))
    self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n_in})

  def call(self, inputs, training=None):
    w, b = self._kernels(training=training)
    x = tf.convert_to_tensor(inputs)
    rank = x.shape.rank
    if rank > 2:
      batch_shape = tf.shape(x)[:-1]
      x = tf.reshape(x, [-1, x.shape[-1]])
    if b is None:
      y = tf.matmul(x, w)
    else:
      y = feedback_ops.feedback_matmul(
          x, w, b, feedback_receives_kernel_grad=(
              self.feedback.trainable_feedback))
    if rank > 2:
      y = tf.reshape(y, tf.concat([batch_shape, [self.units]], 0))
    y = self._finish(y)
    return y

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "units": self.units,
    })
    return config
