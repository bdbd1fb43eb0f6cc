"""Linear maps whose backward pass uses a feedback kernel ``B`` instead of ``W``.

For ``y = op(x; W)`` with upstream gradient ``g = dE/dy``
(docs/algorithms.md §0):

* the weight gradient is the true one, ``dE/dW = d/dW <g, op(x; W)>``;
* the input gradient is the same linear map with ``B`` in place of ``W``,
  ``dE/dx = d/dx <g, op(x; B)>``.

``B`` receives no gradient, except when ``feedback_receives_kernel_grad`` is
set: then ``dE/dB := dE/dW`` exactly, so that any optimizer moves ``B`` by the
same increment as ``W`` (updated random feedback, amit2019 §3.1; with weight
decay on both this is Kolen–Pollack).
"""

import tensorflow as tf


def feedback_matmul(x, kernel, feedback_kernel,
                    feedback_receives_kernel_grad=False):
  """``x @ kernel`` whose input gradient is ``g @ feedback_kernel^T``.

  Args:
    x: ``(batch, n_in)`` tensor.
    kernel: forward kernel ``W``, ``(n_in, n_out)``.
    feedback_kernel: ``B``, same shape as ``kernel``.
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``W``'s.

  Returns:
    ``(batch, n_out)`` tensor equal to ``x @ kernel``.
  """

  @tf.custom_gradient
  def _matmul(x, w, b):
    y = tf.matmul(x, w)

    def grad(g):
      dx = tf.matmul(g, b, transpose_b=True)
      dw = tf.matmul(x, g, transpose_a=True)
      return dx, dw, (dw if feedback_receives_kernel_grad else None)

    return y, grad

  return _matmul(x, kernel, feedback_kernel)


def _conv_attrs(strides, dilations):
  return [1, strides[0], strides[1], 1], [1, dilations[0], dilations[1], 1]


def feedback_conv2d(x, kernel, feedback_kernel, strides=(1, 1),
                    padding="VALID", dilations=(1, 1),
                    feedback_receives_kernel_grad=False):
  """2-D convolution (NHWC) whose input gradient convolves with ``B``.

  Args:
    x: ``(batch, h, w, c_in)`` tensor.
    kernel: forward kernel ``W``, ``(kh, kw, c_in, c_out)``.
    feedback_kernel: ``B``, same shape as ``kernel``.
    strides: pair of ints.
    padding: ``"SAME"`` or ``"VALID"``.
    dilations: pair of ints.
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``W``'s.

  Returns:
    ``tf.nn.conv2d(x, kernel, ...)``.
  """
  strides4, dilations4 = _conv_attrs(strides, dilations)
  padding = padding.upper()

  @tf.custom_gradient
  def _conv(x, w, b):
    y = tf.nn.conv2d(x, w, strides4, padding, dilations=dilations4)

    def grad(g):
      dx = tf.raw_ops.Conv2DBackpropInput(
          input_sizes=tf.shape(x), filter=b, out_backprop=g,
          strides=strides4, padding=padding, dilations=dilations4)
      dw = tf.raw_ops.Conv2DBackpropFilter(
          input=x, filter_sizes=tf.shape(w), out_backprop=g,
          strides=strides4, padding=padding, dilations=dilations4)
      return dx, dw, (dw if feedback_receives_kernel_grad else None)

    return y, grad

  return _conv(x, kernel, feedback_kernel)
