"""Batch normalization presets of the seeds."""

import keras


def affine_free_batch_norm(name=None, axis=-1, epsilon=1e-3, **kwargs):
  """liao2016's batch normalization: no learnable scale or shift.

  A preset over ``keras.layers.BatchNormalization`` with ``center=False,
  scale=False`` and test-time statistics as an exponential moving average
  with alpha = 0.05 (``momentum=0.95``), as liao2016 §3 uses everywhere
  except in its "BN"/"BN+BM" baselines (docs/algorithms.md §3). Batch norm
  back-propagates its input gradient normally under every feedback
  algorithm.

  Args:
    name: layer name.
    axis, epsilon, **kwargs: passed to ``BatchNormalization``.

  Returns:
    A ``keras.layers.BatchNormalization``.
  """
  for key in ("center", "scale", "momentum"):
    if key in kwargs:
      raise ValueError(f"affine_free_batch_norm fixes {key}; use "
                       f"keras.layers.BatchNormalization directly. Received: "
                       f"{key}={kwargs[key]!r}")
  return keras.layers.BatchNormalization(
      axis=axis, momentum=0.95, epsilon=epsilon, center=False, scale=False,
      name=name, **kwargs)
