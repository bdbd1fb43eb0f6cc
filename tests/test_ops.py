"""tfbio.ops.feedback_matmul / feedback_conv2d against plain TF references.

Reference for the input gradient: the gradient of the plain op with ``B`` in
place of ``W``; reference for the weight gradient: the gradient of the plain
op with ``W``.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfbio import ops

RTOL = 1e-5
ATOL = 1e-5


def _rand(rng, *shape):
  return tf.constant(rng.standard_normal(shape).astype(np.float32))


def _grads(fn, x, w, b, g):
  """Gradients of <g, fn(x, w, b)> with respect to x, w, b."""
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, w, b])
    y = fn(x, w, b)
    loss = tf.reduce_sum(y * g)
  dx, dw, db = tape.gradient(loss, [x, w, b])
  return y, dx, dw, db


def _ref_grads(op, x, w, b, g):
  """(y, dx with B, dW with W) from plain ops."""
  with tf.GradientTape() as tape:
    tape.watch(w)
    y = op(x, w)
    loss = tf.reduce_sum(y * g)
  dw = tape.gradient(loss, w)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss_b = tf.reduce_sum(op(x, b) * g)
  dx = tape.gradient(loss_b, x)
  return y, dx, dw


# -- dense --------------------------------------------------------------------


def test_feedback_matmul_hand_computed():
  x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]], np.float32)  # (3, 2)
  w = np.array([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]], np.float32)  # (2, 3)
  b = np.array([[2.0, 0.0, -1.0], [1.0, 3.0, 0.5]], np.float32)
  g = np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0], [0.5, 0.5, 0.5]],
               np.float32)
  y, dx, dw, db = _grads(ops.feedback_matmul, tf.constant(x), tf.constant(w),
                         tf.constant(b), tf.constant(g))
  # Worked out by hand: y = x @ w, dx = g @ b.T, dw = x.T @ g.
  expected_y = np.array([[1.5, 0.0, -1.5], [-0.875, 2.5, -1.0],
                         [0.75, 3.0, -3.0]], np.float32)
  expected_dx = np.array([[0.0, 2.0], [-1.0, -2.5], [0.5, 2.25]], np.float32)
  expected_dw = np.array([[1.0, 1.0, 1.0], [3.5, 1.0, 6.0]], np.float32)
  np.testing.assert_allclose(expected_y, x @ w, rtol=1e-6)
  np.testing.assert_allclose(expected_dx, g @ b.T, rtol=1e-6)
  np.testing.assert_allclose(expected_dw, x.T @ g, rtol=1e-6)
  np.testing.assert_allclose(y.numpy(), expected_y, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(dx.numpy(), expected_dx, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(dw.numpy(), expected_dw, rtol=1e-6, atol=1e-6)
  assert db is None


@pytest.mark.parametrize("receives", [False, True])
def test_feedback_matmul_against_reference(receives):
  rng = np.random.default_rng(0)
  x, w, b, g = (_rand(rng, 5, 7), _rand(rng, 7, 4), _rand(rng, 7, 4),
                _rand(rng, 5, 4))
  fn = lambda x, w, b: ops.feedback_matmul(  # noqa: E731
      x, w, b, feedback_receives_kernel_grad=receives)
  y, dx, dw, db = _grads(fn, x, w, b, g)
  ry, rdx, rdw = _ref_grads(tf.matmul, x, w, b, g)
  np.testing.assert_allclose(y.numpy(), ry.numpy(), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=ATOL)
  # The input gradient really uses B, not W.
  assert np.abs(dx.numpy() - (g.numpy() @ w.numpy().T)).max() > 1e-2
  if receives:
    assert db is not None
    np.testing.assert_allclose(db.numpy(), dw.numpy(), rtol=0, atol=0)
  else:
    assert db is None


def test_feedback_matmul_with_b_equal_w_is_backprop():
  rng = np.random.default_rng(1)
  x, w, g = _rand(rng, 3, 6), _rand(rng, 6, 2), _rand(rng, 3, 2)
  y, dx, dw, _ = _grads(ops.feedback_matmul, x, w, w, g)
  ry, rdx, rdw = _ref_grads(tf.matmul, x, w, w, g)
  np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=ATOL)


def test_feedback_matmul_inside_tf_function():
  rng = np.random.default_rng(2)
  x, w, b, g = (_rand(rng, 4, 3), _rand(rng, 3, 5), _rand(rng, 3, 5),
                _rand(rng, 4, 5))

  @tf.function
  def f(x, w, b):
    return _grads(ops.feedback_matmul, x, w, b, g)[1:3]

  dx, dw = f(x, w, b)
  _, rdx, rdw = _ref_grads(tf.matmul, x, w, b, g)
  np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=ATOL)


# -- conv ---------------------------------------------------------------------

CONV_CASES = [
    # (input hw, kernel hw, strides, padding, dilations)
    ((7, 7), (3, 3), (1, 1), "SAME", (1, 1)),
    ((7, 7), (3, 3), (1, 1), "VALID", (1, 1)),
    ((7, 7), (3, 3), (2, 2), "SAME", (1, 1)),
    ((7, 7), (3, 3), (2, 2), "VALID", (1, 1)),
    ((8, 9), (2, 3), (2, 1), "SAME", (1, 1)),  # even size, mixed strides
    ((9, 9), (3, 3), (1, 1), "SAME", (2, 2)),  # dilation
    ((9, 8), (3, 2), (1, 1), "VALID", (2, 3)),
]


def _conv_case_id(case):
  hw, k, s, p, d = case
  return f"in{hw[0]}x{hw[1]}-k{k[0]}x{k[1]}-s{s[0]}{s[1]}-{p}-d{d[0]}{d[1]}"


def _conv_tensors(rng, hw, k, strides, padding, dilations, c_in=3, c_out=4):
  x = _rand(rng, 2, hw[0], hw[1], c_in)
  w = _rand(rng, k[0], k[1], c_in, c_out)
  b = _rand(rng, k[0], k[1], c_in, c_out)
  out_shape = tf.nn.conv2d(x, w, (1,) + strides + (1,), padding,
                           dilations=(1,) + dilations + (1,)).shape
  g = _rand(rng, *out_shape)
  return x, w, b, g


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_case_id)
def test_feedback_conv2d_against_reference(case):
  hw, k, strides, padding, dilations = case
  rng = np.random.default_rng(3)
  x, w, b, g = _conv_tensors(rng, hw, k, strides, padding, dilations)

  def ref_op(x, kernel):
    return tf.nn.conv2d(x, kernel, (1,) + strides + (1,), padding,
                        dilations=(1,) + dilations + (1,))

  ry, rdx, rdw = _ref_grads(ref_op, x, w, b, g)
  for receives in (False, True):
    fn = lambda x, w, b: ops.feedback_conv2d(  # noqa: E731
        x, w, b, strides=strides, padding=padding, dilations=dilations,
        feedback_receives_kernel_grad=receives)
    y, dx, dw, db = _grads(fn, x, w, b, g)
    np.testing.assert_allclose(y.numpy(), ry.numpy(), rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=1e-4)
    if receives:
      assert db is not None
      np.testing.assert_allclose(db.numpy(), dw.numpy(), rtol=0, atol=0)
    else:
      assert db is None
  # The input gradient really uses B, not W.
  _, wdx, _ = _ref_grads(ref_op, x, w, w, g)
  assert np.abs(dx.numpy() - wdx.numpy()).max() > 1e-2


def test_feedback_conv2d_lowercase_padding_and_defaults():
  rng = np.random.default_rng(4)
  x, w, b, g = _conv_tensors(rng, (6, 6), (3, 3), (1, 1), "VALID", (1, 1))
  y, dx, dw, _ = _grads(ops.feedback_conv2d, x, w, b, g)  # defaults: VALID
  ry, rdx, rdw = _ref_grads(
      lambda x, k: tf.nn.conv2d(x, k, 1, "VALID"), x, w, b, g)
  np.testing.assert_allclose(y.numpy(), ry.numpy(), rtol=RTOL, atol=1e-4)
  np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=1e-4)
  np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=1e-4)
  x, w, b, g = _conv_tensors(rng, (6, 6), (3, 3), (1, 1), "SAME", (1, 1))
  fn = lambda x, w, b: ops.feedback_conv2d(x, w, b, padding="same")  # noqa
  y, dx, dw, _ = _grads(fn, x, w, b, g)
  ry, rdx, rdw = _ref_grads(
      lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"), x, w, b, g)
  np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=RTOL, atol=1e-4)
  np.testing.assert_allclose(dw.numpy(), rdw.numpy(), rtol=RTOL, atol=1e-4)


def test_feedback_conv2d_1x1_matches_matmul_numpy():
  """A 1x1 convolution is a matmul over pixels: dx = g @ B^T, by NumPy."""
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
  w = rng.standard_normal((1, 1, 4, 5)).astype(np.float32)
  b = rng.standard_normal((1, 1, 4, 5)).astype(np.float32)
  g = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
  _, dx, dw, _ = _grads(ops.feedback_conv2d, tf.constant(x), tf.constant(w),
                        tf.constant(b), tf.constant(g))
  np.testing.assert_allclose(dx.numpy(), g @ b[0, 0].T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      dw.numpy()[0, 0], x.reshape(-1, 4).T @ g.reshape(-1, 5), rtol=1e-5,
      atol=1e-4)


def test_magnitude_and_flips_single_draw_is_uniform_and_independent():
  # M must be U[0,1) within both the flipped and the kept part (so it is
  # independent of S_p), and S_p = -1 with probability p.
  n = 200_000
  for p in (0.0, 0.3, 1.0):
    m, s = ops.stateless_magnitude_and_flips((n,), p, seed=7, purpose=1,
                                                   step=3)
    m, s = m.numpy(), s.numpy()
    assert set(np.unique(s)) <= {-1.0, 1.0}
    frac = np.mean(s < 0)
    assert abs(frac - p) <= 3 * np.sqrt(p * (1 - p) / n) + 1e-12, (p, frac)
    assert m.min() >= 0.0 and m.max() < 1.0
    for part in (m[s < 0], m[s > 0]):
      if part.size > 1000:
        np.testing.assert_allclose(part.mean(), 0.5, atol=0.01)
        np.testing.assert_allclose(part.std(), np.sqrt(1 / 12), atol=0.01)
  # Deterministic in (seed, purpose, step); different steps differ.
  a = ops.stateless_magnitude_and_flips((50,), 0.5, 7, 1, step=3)[0]
  b = ops.stateless_magnitude_and_flips((50,), 0.5, 7, 1, step=3)[0]
  c = ops.stateless_magnitude_and_flips((50,), 0.5, 7, 1, step=4)[0]
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_uniform_draw_is_tf_stateless_philox(dtype):
  """The raw-op draw equals tf.random.stateless_uniform(alg="philox") bit
  for bit (graph and XLA), so recorded runs draw what they drew before."""
  from tfbio.ops import feedback_kernels as fk
  from tfbio.utils import seeds as seeds_lib

  def both(step):
    seed = tf.stack([seeds_lib.mix_seed(tf.constant(123, tf.int64), 1),
                     tf.cast(step, tf.int64)])
    return (fk.stateless_magnitude([3, 50], 123, 1, step, dtype=dtype),
            tf.random.stateless_uniform([3, 50], seed, dtype=dtype,
                                        alg="philox"))

  for fn in (tf.function(both), tf.function(both, jit_compile=True)):
    ours, reference = fn(tf.constant(9, tf.int64))
    np.testing.assert_array_equal(np.asarray(ours, np.float32),
                                  np.asarray(reference, np.float32))
