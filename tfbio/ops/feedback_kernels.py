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


def initializer_std(initializer, fan_in, fan_out):
  """The standard deviation of the values ``initializer`` draws for a kernel
  with Keras fans ``fan_in`` / ``fan_out`` (those it draws with), or None
  where it is not a known distribution.

  Keras' ``VarianceScaling`` family (Glorot, He, LeCun; normal, truncated
  or uniform) draws with variance ``scale / n``, ``n`` the mode's fan (the
  truncated normal is rescaled by Keras so that this holds); ``RandomNormal(stddev)``: ``stddev``;
  ``TruncatedNormal(stddev)`` (cut at 2 std): ``0.8796 * stddev``;
  ``RandomUniform(a, b)``: ``(b - a) / sqrt(12)``. Used by
  ``ss:scale=initializer`` (docs/algorithms.md §1.1).
  """
  import keras  # pylint: disable=g-import-not-at-top
  inits = keras.initializers
  if isinstance(initializer, inits.VarianceScaling):
    n = {"fan_in": fan_in, "fan_out": fan_out,
         "fan_avg": (fan_in + fan_out) / 2.0}[initializer.mode]
    return math.sqrt(initializer.scale / max(1.0, n))
  if isinstance(initializer, inits.TruncatedNormal):
    return 0.87962566103423978 * initializer.stddev
  if isinstance(initializer, inits.RandomNormal):
    return float(initializer.stddev)
  if isinstance(initializer, inits.RandomUniform):
    return (initializer.maxval - initializer.minval) / math.sqrt(12.0)
  return None


def glorot_std(fan_in, fan_out):
  """``sqrt(2 / (fan_in + fan_out))``: the standard deviation of Glorot
  (Xavier) initialisation, normal or uniform (glorot2010 eq. 16): biotorch's
  uSF scale (``ss:scale=glorot``, docs/algorithms.md §1.1)."""
  return math.sqrt(2.0 / (fan_in + fan_out))


def glorot_limit(fan_in, fan_out):
  """``sqrt(6 / (fan_in + fan_out))``: the half-width of Glorot (Xavier)
  uniform initialisation, so ``|U(-a, a)| = a * U[0, 1)``: biotorch's brSF /
  frSF magnitudes (``brsf:magnitude=glorot``, docs/algorithms.md §1.1)."""
  return math.sqrt(6.0 / (fan_in + fan_out))


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


_PHILOX = 1  # tf.random.Algorithm.PHILOX


def _uniform(shape, seed, purpose, step, dtype=tf.float32):
  # Philox explicitly: the default algorithm is 30-100x slower under XLA on
  # CPU (bench/step_time.py). Note that XLA and non-XLA draws differ.
  # The two raw ops draw exactly what
  # ``tf.random.stateless_uniform(shape, seed, dtype, alg="philox")`` draws
  # (tests/test_ops.py), without the ~45 small graph ops that function
  # composes per call to scramble the seed: per layer and per step, that
  # graph overhead was most of the per-step rules' cost on small networks.
  key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(
      seed=_seed(seed, purpose, step))
  return tf.raw_ops.StatelessRandomUniformV2(
      shape=shape, key=key, counter=counter, alg=_PHILOX, dtype=dtype)


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
