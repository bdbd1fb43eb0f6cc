"""One custom-gradient op for every layer with a linear kernel.

For ``y = op(x, W)``, linear in ``x`` and in ``W`` (a matmul, an einsum, any
convolution, transposed or depthwise), and upstream gradient ``g = dE/dy``:

* the weight gradient is the true one, ``dE/dW = VJP_W op(x, ·) at g``;
* the input gradient is the same map with the feedback kernel ``B`` in place
  of ``W``: ``dE/dx = VJP_x op(·, B) at g``.

Both VJPs come from TensorFlow's own gradient of ``op`` evaluated at the
kernel ``B``: because ``op`` is linear in its kernel, ``VJP_W op(x, ·)`` does
not depend on the kernel's value, so one tape over ``op(x, B)`` gives the
input gradient *and* the weight gradient, i.e. exactly the two backward ops
back-propagation runs, with ``B`` as the filter of the first. The forward
pass is ``op(x, W)`` and nothing else. Inside ``tf.function`` (``model.fit``,
XLA) the ``op(x, B)`` recorded for the tape in the backward function is dead
code (TensorFlow's gradients of these ops read the op's inputs, never its
output) and is pruned; in eager mode it is evaluated once.
"""

import tensorflow as tf


def feedback_linear(op, x, kernel, feedback_kernel,
                    feedback_receives_kernel_grad=False):
  """``op(x, kernel)`` with the input gradient of ``op(·, feedback_kernel)``.

  Example:

  >>> op = lambda x, k: tf.matmul(x, k)
  >>> y = feedback_linear(op, x, w, b)      # == x @ w; dE/dx = g @ b^T

  Args:
    op: ``op(x, kernel) -> y``, linear in ``x`` and in ``kernel`` (no bias,
      no activation). It may close over Python values only (strides,
      padding, equation), not over variables.
    x: the input tensor.
    kernel: forward kernel ``W`` (a tensor: pass
      ``tf.convert_to_tensor(variable)``).
    feedback_kernel: ``B``, same shape and dtype as ``kernel``.
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``dE/dW``
      (updated random feedback, amit2019 §3.1; Kolen–Pollack, akrout2019);
      else ``B`` gets no gradient.

  Returns:
    ``op(x, kernel)``.
  """

  @tf.custom_gradient
  def _apply(x, w, b):

    def grad(g):
      with tf.GradientTape() as tape:
        tape.watch([x, b])
        y_b = op(x, b)
      dx, dw = tape.gradient(y_b, [x, b], output_gradients=g)
      return dx, dw, (dw if feedback_receives_kernel_grad else None)

    return op(x, w), grad

  return _apply(x, kernel, feedback_kernel)
