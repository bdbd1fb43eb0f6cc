"""``keras.layers.EinsumDense`` with a feedback kernel in its backward pass."""

import keras
from keras import ops

from tfbio.layers.feedback_mixin import FeedbackLayerMixin
from tfbio.layers.feedback_mixin import keras_fans


def einsum_kernel_axes(equation):
  """``(input_axes, output_axes)`` of the kernel of an EinsumDense equation.

  As Keras (``keras.src.layers.core.einsum_dense``): a kernel axis whose
  letter appears in the output is an output axis, the others (contracted
  with the input) are input axes.

  Args:
    equation: e.g. ``"abc,cde->abde"``.

  Returns:
    Two lists of kernel axis indices.
  """
  operands, output = equation.split("->")
  kernel = operands.split(",")[1].strip()
  output_axes = [i for i, dim in enumerate(kernel) if dim in output]
  input_axes = [i for i, dim in enumerate(kernel) if dim not in output]
  return input_axes, output_axes


@keras.saving.register_keras_serializable(package="tfbio")
class EinsumDense(FeedbackLayerMixin, keras.layers.EinsumDense):
  """``keras.layers.EinsumDense`` whose input gradient uses ``B``.

  Forward: ``activation(einsum(equation, x, W) + b)``, exactly Keras'.
  Backward: true ``dE/dW``, ``dE/db``; ``dE/dx = einsum-VJP of x`` with ``B``
  in place of ``W`` (the algorithms of ``tfbio.feedback``: xiao2018,
  liao2016, lillicrap2016, amit2019, akrout2019).

  Kind ``"dense"``. Fans are those Keras' ``VarianceScaling`` uses for this
  kernel: the product of the kernel's input (contracted) axes and of its
  output axes (Keras passes them as ``input_axes``/``output_axes``), e.g. for
  ``"abc,cde->abde"`` with kernel ``(c, d, e)``: ``fan_in = c``,
  ``fan_out = d*e``; ``ss`` scale ``1/sqrt(fan_in)``. ``fa`` draws ``B``
  from the kernel initializer with the same axes.

  Example:

  >>> layer = tfbio.layers.EinsumDense("ab,bc->ac", output_shape=8,
  ...                                  bias_axes="c", feedback="ss")
  >>> layer(tf.ones((2, 4))).shape
  TensorShape([2, 8])

  Args:
    equation, output_shape, activation, bias_axes, kernel_initializer,
    bias_initializer, kernel_regularizer, bias_regularizer,
    kernel_constraint, bias_constraint: as ``keras.layers.EinsumDense``
      (LoRA and quantization are not supported).
    feedback, density, feedback_density, sign_fixed, seed (keyword only):
      see ``tfbio.layers.BaseFeedbackLayer``.
  """

  feedback_kind = "dense"

  def _kernel_fans(self, attr, shape):
    input_axes, output_axes = einsum_kernel_axes(self.equation)
    return keras_fans(shape, input_axes, output_axes)

  def _adapt_feedback_initializer(self, initializer):
    if isinstance(initializer, keras.initializers.VarianceScaling) and (
        initializer.input_axes is None or initializer.output_axes is None):
      input_axes, output_axes = einsum_kernel_axes(self.equation)
      config = {**initializer.get_config(), "input_axes": input_axes,
                "output_axes": output_axes}
      return initializer.__class__.from_config(config)
    return initializer

  def _linear(self, inputs, pairs):
    equation = self.equation
    return self._apply_kernel(
        lambda x, kernel: ops.einsum(equation, x, kernel), inputs, pairs[0])

  def _finish(self, outputs):
    if self.bias is not None:
      outputs = ops.add(outputs, self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs
