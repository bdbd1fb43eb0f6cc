"""Feedback kernels ``B`` as pure functions of ``W`` and random state.

Definitions: docs/algorithms.md §1.
"""

import math

import tensorflow as tf

from tfbio.utils import seeds


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
  return tf.stack([seeds.mix_seed(tf.cast(seed, tf.int64), purpose),
                   tf.cast(step, tf.int64)])


def _uniform(shape, seed, purpose, step, dtype=tf.float32):
  # Philox explicitly: the default algorithm is 30-100x slower under XLA on
  # CPU (bench/step_time.py). Note that XLA and non-XLA draws differ.
  return tf.random.stateless_uniform(shape, _seed(seed, purpose, step),
                                     dtype=dtype, alg="philox")


def stateless_magnitude(shape, seed, purpose, step=0, dtype=tf.float32):
  """``M ~ U[0, 1)``, a deterministic function of (seed, purpose, step)."""
  return _uniform(shape, seed, purpose, step, dtype)


def stateless_magnitude_and_flips(shape, flip_prob, seed, purpose, step=0,
                                  dtype=tf.float32):
  """``(M, S_p)`` from a single uniform draw ``u``.

  ``S_p = -1`` where ``u < p`` (probability ``p``), else ``+1``; ``M`` is ``u``
  rescaled within its part, ``u/p`` or ``(u-p)/(1-p)``, hence again ``U[0,1)``
  and independent of ``S_p``. One draw instead of two halves the RNG cost.
  """
  u = _uniform(shape, seed, purpose, step, dtype)
  p = tf.constant(flip_prob, dtype)
  flipped = u < p
  safe_p = tf.maximum(p, tf.constant(1e-30, dtype))
  safe_q = tf.maximum(1 - p, tf.constant(1e-30, dtype))
  magnitude = tf.where(flipped, u / safe_p, (u - p) / safe_q)
  flips = tf.where(flipped, tf.constant(-1, dtype), tf.constant(1, dtype))
  return magnitude, flips


def stateless_mask(shape, density, seed, purpose, dtype=tf.float32):
  """Fixed binary connectivity mask, each entry 1 with probability ``density``."""
  return tf.cast(_uniform(shape, seed, purpose, 0) < density, dtype)


def sign_fix(new_value, sign_reference, floor=1e-10):
  """Keeps each weight's sign: a weight whose sign would differ from
  ``sign_reference`` (±1) is set to ``sign_reference * floor``
  (docs/algorithms.md §1)."""
  keep = new_value * sign_reference > 0
  return tf.where(keep, new_value,
                  sign_reference * tf.cast(floor, new_value.dtype))
