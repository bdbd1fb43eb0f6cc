"""Feedback kernels ``B`` as pure functions of ``W`` and random state (SPEC §1)."""

import math

import tensorflow as tf


def ss_scale(kind, fan_in, fan_out):
  """Init scale ``s`` of a layer, used by sign-symmetry (xiao2018 §3.1 fn. 2).

  Args:
    kind: ``"dense"``: ``s = 1/sqrt(fan_in)`` (``n_in``, as in the authors'
      released code; the extracted text reads "1/n_output"), or ``"conv"``
      (also locally-connected): He normal fan-out, ``s = sqrt(2 / fan_out)``.
    fan_in: ``n_in`` for dense, ``kh*kw*c_in`` for conv.
    fan_out: ``n_out`` for dense, ``kh*kw*c_out`` for conv.

  Returns:
    Python float.
  """
  if kind == "dense":
    return 1.0 / math.sqrt(fan_in)
  if kind == "conv":
    return math.sqrt(2.0 / fan_out)
  raise ValueError(f"Unknown kernel kind: kind={kind!r}; expected 'dense' or "
                   "'conv'.")


def sign_symmetric(kernel, scale=1.0):
  """``sign(W) * scale`` (xiao2018 SS with ``s``; liao2016 uSF with 1; NuSF)."""
  return tf.sign(kernel) * tf.cast(scale, kernel.dtype)


def random_magnitude_sign(kernel, magnitude, flips=None):
  """``M ∘ sign(W) [∘ S_p]`` (liao2016 §2 settings 2–5)."""
  b = magnitude * tf.sign(kernel)
  if flips is not None:
    b = b * flips
  return b


def _seed(seed, purpose, step=0):
  # Stateless seeds are a pair of int64s: one for (layer seed, purpose),
  # one for the training step.
  return tf.stack([tf.cast(seed, tf.int64) * 16 + purpose,
                   tf.cast(step, tf.int64)])


def stateless_magnitude(shape, seed, purpose, step=0, dtype=tf.float32):
  """``M ~ U[0, 1)``, a deterministic function of (seed, purpose, step)."""
  return tf.random.stateless_uniform(shape, _seed(seed, purpose, step),
                                     dtype=dtype)


def stateless_flips(shape, flip_prob, seed, purpose, step=0,
                    dtype=tf.float32):
  """``S_p``: ``-1`` with probability ``flip_prob``, else ``+1``."""
  u = tf.random.stateless_uniform(shape, _seed(seed, purpose, step))
  return tf.where(u < flip_prob, tf.constant(-1, dtype), tf.constant(1, dtype))


def stateless_mask(shape, density, seed, purpose, dtype=tf.float32):
  """Fixed binary connectivity mask, each entry 1 with probability ``density``."""
  u = tf.random.stateless_uniform(shape, _seed(seed, purpose))
  return tf.cast(u < density, dtype)


def sign_fix(new_value, sign_reference, floor=1e-10):
  """Keeps each weight's sign: a weight whose sign would differ from
  ``sign_reference`` (±1) is set to ``sign_reference * floor`` (SPEC §1)."""
  keep = new_value * sign_reference > 0
  return tf.where(keep, new_value,
                  sign_reference * tf.cast(floor, new_value.dtype))
