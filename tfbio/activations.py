"""Activations of the seeds: amit2019's saturated linearity."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfbio")
def saturated_linear(x):
  """``σ(x) = min(max(x, -1), 1)`` (amit2019 §3.1; docs/algorithms.md §3).

  Bounded, hence "more biologically plausible" than ReLU; ``σ'(x) = 1`` for
  ``|x| ≤ 1`` and 0 outside. Use as ``activation=tfbio.activations.
  saturated_linear`` or, in tfbio layers, as the string
  ``"tfbio>saturated_linear"`` (Keras' own layers accept only the function).
  """
  return ops.clip(x, -1.0, 1.0)
