"""Direct feedback alignment (DFA) as pure tensor functions.

Nøkland 2016, "Direct Feedback Alignment Provides Learning in Deep Neural
Networks" (NeurIPS), §2–3. For a network ``h_l = f(a_l)``,
``a_l = W_l h_{l-1} + b_l`` (``l = 1..L``, ``h_0 = x``) with output error
``e = ∂E/∂a_L`` (for softmax cross-entropy averaged over a batch of ``N``:
``(softmax(a_L) - onehot(y)) / N``), each hidden layer gets

    δ_l = (e B_l) ⊙ f'(a_l),     B_l fixed random, shape (n_L, n_l),

and the usual weight update with ``δ_l`` in place of the back-propagated
gradient: ``∂W_l := h_{l-1}ᵀ δ_l``, ``∂b_l := Σ_batch δ_l``. (This module
writes ``e B_l`` with row vectors ``e``; with column vectors, as in the paper,
it is ``B_lᵀ e``.) No error passes between hidden layers; the output
layer gets its true gradient ``h_{L-1}ᵀ e``.

Everything here takes plain tensors, so that the maths can be checked
against NumPy in a few lines; ``tfbio.dfa.DFAModel`` uses these functions.

Example:

>>> e = tf.constant([[0.1, -0.1]])                 # (batch, n_L)
>>> b = feedback_matrix((2, 3), 0.5, seed=1)       # (n_L, n_l)
>>> project_error(e, b, (3,)).shape
TensorShape([1, 3])
"""

import math

import tensorflow as tf

from tfbio.utils import seeds

# Stream purposes of DFAModel's seed (tfbio.utils.seeds.mix_seed).
PURPOSE_FEEDBACK_MATRIX = 1
PURPOSE_FEEDBACK_MASK = 2


def default_feedback_scale(num_outputs):
  """``1/sqrt(n_L)``: the half-width of DFAModel's default uniform ``B_l``.

  With ``B_l ~ U[-s, s]``, ``s = 1/sqrt(n_L)``, each unit's projected error
  ``(e B_l)_j`` has variance ``||e||² / (3 n_L)`` for any ``n_L``: the
  projection neither grows nor shrinks with the number of outputs (the same
  ``1/sqrt(fan_in)`` rule as Keras' default uniform dense initializer, with
  ``fan_in = n_L`` the input of the feedback pathway). This is tfbio's
  choice, not a value quoted from Nøkland 2016.

  Args:
    num_outputs: ``n_L`` >= 1.

  Returns:
    Python float.
  """
  return 1.0 / math.sqrt(num_outputs)


def _stateless_uniform(shape, seed, purpose, index, dtype):
  # A pair of int64s: (mixed model seed, hidden-layer index). Philox, as in
  # tfbio.ops.feedback_kernels (same draws on every device and replica).
  key = tf.stack([seeds.mix_seed(tf.cast(seed, tf.int64), purpose),
                  tf.cast(index, tf.int64)])
  return tf.random.stateless_uniform(shape, key, dtype=dtype, alg="philox")


def feedback_matrix(shape, scale, seed, index=0, dtype=tf.float32):
  """A fixed random ``B ~ U[-scale, scale)``, a function of ``(seed, index)``.

  Args:
    shape: ``(n_L, n_l)``.
    scale: half-width of the uniform distribution (> 0).
    seed: int seed (the model's).
    index: which hidden layer (a separate stream per layer).
    dtype: float dtype.

  Returns:
    A tensor of ``shape``.
  """
  u = _stateless_uniform(shape, seed, PURPOSE_FEEDBACK_MATRIX, index, dtype)
  return tf.cast(scale, dtype) * (2.0 * u - 1.0)


def feedback_mask(shape, density, seed, index=0, dtype=tf.float32):
  """A fixed random binary mask, each entry 1 with probability ``density``.

  Drawn independently of :func:`feedback_matrix` (sparse DFA: Crafton et al.
  2019, "Direct Feedback Alignment With Sparse Connections for Local
  Learning").
  """
  u = _stateless_uniform(shape, seed, PURPOSE_FEEDBACK_MASK, index, dtype)
  return tf.cast(u < tf.cast(density, dtype), dtype)


def project_error(error, feedback, shape):
  """``e B``, reshaped to a hidden layer's output shape.

  Args:
    error: ``e = ∂E/∂a_L``, ``(batch, ...)`` (flattened to ``(batch, n_L)``).
    feedback: ``B``, ``(n_L, n_l)``.
    shape: the hidden layer's output shape without the batch axis (its
      product is ``n_l``), e.g. ``(h, w, c)`` for a convolution.

  Returns:
    ``(batch,) + shape``, in the dtype of ``feedback``.
  """
  e = tf.reshape(tf.cast(error, feedback.dtype), [tf.shape(error)[0], -1])
  projected = tf.matmul(e, feedback)
  return tf.reshape(projected, tf.concat(
      [tf.shape(error)[:1], tf.constant(shape, tf.int32)], 0))


def conv_input_projection(error, feedback, input_shape, output_hw, strides,
                          padding, dilation_rate):
  """The error sent to a convolution's input through a kernel-shaped ``B``.

  ``∂/∂x <conv(x, B), ē>``: the input gradient of a channels-last
  convolution with kernel ``B`` ``(kh, kw, c_in, n_L)`` at the output
  gradient ``ē``, the per-example error ``e`` repeated at every one of the
  convolution's ``output_hw`` positions (biotorch's DFA ``Conv2d``:
  ``torch.nn.grad.conv2d_input(weight_backward, e repeated)``).

  Args:
    error: ``e``, ``(batch, n_L)`` (flattened if not).
    feedback: ``B``, ``(kh, kw, c_in, n_L)``.
    input_shape: ``(h, w, c_in)``, the convolution's input without batch.
    output_hw: ``(h_out, w_out)``.
    strides, padding, dilation_rate: the convolution's (Keras spelling).

  Returns:
    ``(batch, h, w, c_in)``, in the dtype of ``feedback``.
  """
  e = tf.reshape(tf.cast(error, feedback.dtype), [tf.shape(error)[0], -1])
  batch = tf.shape(e)[0]
  repeated = tf.broadcast_to(
      e[:, None, None, :],
      tf.stack([batch, output_hw[0], output_hw[1], tf.shape(e)[1]]))
  return tf.nn.conv2d_transpose(
      repeated, feedback,
      tf.concat([[batch], tf.constant(list(input_shape), tf.int32)], 0),
      strides=list(strides), padding=padding.upper(),
      dilations=list(dilation_rate))


def hidden_delta(error, feedback, activation_derivative):
  """``δ_l = (e B_l) ⊙ f'(a_l)`` for a dense hidden layer (Nøkland 2016 eq. 3).

  Args:
    error: ``(batch, n_L)``.
    feedback: ``(n_L, n_l)``.
    activation_derivative: ``f'(a_l)``, ``(batch, n_l)``.
  """
  return tf.matmul(error, feedback) * activation_derivative


def dense_gradients(inputs, delta):
  """``(h_{l-1}ᵀ δ_l, Σ_batch δ_l)``: a dense layer's ``(∂W, ∂b)`` from ``δ``."""
  return tf.matmul(inputs, delta, transpose_a=True), tf.reduce_sum(delta, 0)
