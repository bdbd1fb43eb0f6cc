"""Similarity of two weight (or gradient) vectors: cosine, angle, correlation.

One implementation for the NumPy-side analysis (``tfbio.analysis``, in
float64) and the in-graph diagnostics (``tfbio.tp``'s angle to the BP
gradient, in float32).

Convention: the angle between a vector and the zero vector is undefined, so
:func:`cosine`, :func:`angle_degrees` and :func:`pearson_correlation` return
NaN when either input has zero norm (for the correlation: is constant). Averages
over layers skip NaNs (``tfbio.analysis.network_metrics``).
"""

import math

import tensorflow as tf


def _flat(x, dtype):
  """A tensor, or a list/tuple of tensors, as one flat ``dtype`` vector."""
  if isinstance(x, (list, tuple)):
    parts = [tf.reshape(tf.cast(t, dtype), [-1]) for t in x]
    return tf.concat(parts, 0) if parts else tf.zeros([0], dtype)
  return tf.reshape(tf.cast(x, dtype), [-1])


def _cosine_flat(a, b):
  norm = tf.norm(a) * tf.norm(b)
  cos = tf.math.divide_no_nan(tf.reduce_sum(a * b), norm)
  return tf.where(norm > 0, cos, tf.constant(math.nan, a.dtype))


def cosine(a, b, dtype=tf.float32):
  """``<a, b> / (|a| |b|)`` of the flattened inputs; NaN if either is zero.

  Args:
    a, b: tensors (or arrays), or lists of them, flattened and concatenated in
      order; the same number of entries in all.
    dtype: the dtype of the computation (``tf.float64`` for the analysis).

  Returns:
    A scalar ``dtype`` tensor.
  """
  return _cosine_flat(_flat(a, dtype), _flat(b, dtype))


def angle_degrees(a, b, dtype=tf.float32):
  """Angle in degrees between the flattened inputs; NaN if either is zero.

  ``acos`` of :func:`cosine` clipped to ``[-1, 1]``: 0 for parallel inputs,
  90 for orthogonal ones, 180 for opposite ones.

  Args:
    a, b, dtype: as :func:`cosine`.

  Returns:
    A scalar ``dtype`` tensor in ``[0, 180]``, or NaN.
  """
  cos = cosine(a, b, dtype)
  angle = tf.acos(tf.clip_by_value(cos, -1.0, 1.0)) * (180.0 / math.pi)
  # Explicitly, as not every device's clip propagates NaN.
  return tf.where(tf.math.is_nan(cos), cos, angle)


def pearson_correlation(a, b, dtype=tf.float32):
  """Pearson correlation of the entries of ``a`` and ``b``; NaN if constant.

  The cosine of the centred inputs.

  Args:
    a, b, dtype: as :func:`cosine`.

  Returns:
    A scalar ``dtype`` tensor in ``[-1, 1]``, or NaN.
  """
  a, b = _flat(a, dtype), _flat(b, dtype)
  return _cosine_flat(a - tf.reduce_mean(a), b - tf.reduce_mean(b))
