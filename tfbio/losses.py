"""Losses of the seeds: amit2019's multi-class hinge (one-vs-all)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfbio")
class MulticlassHinge(keras.losses.Loss):
  """One-vs-all hinge of amit2019 §3.2 (docs/algorithms.md §3).

  For true class ``c`` and outputs ``x``:
  ``L = max(0, 1 - x_c) + μ Σ_{i≠c} max(0, 1 + x_i)``, so that
  ``-dL/dx`` is the top-layer signal ``δ_c = 1`` if ``x_c < 1`` else 0 and
  ``δ_i = -μ`` if ``x_i > -1`` else 0 — a local, Hebbian-computable error.
  Averaged over the batch (Keras' reduction).

  Example:

  >>> model.compile(optimizer="sgd", loss=tfbio.losses.MulticlassHinge())

  Args:
    mu: balancing factor ``μ`` ≥ 0 (the extraction of amit2019 loses its
      value); None means ``1/(C-1)`` for ``C`` classes.
    from_integer_labels: labels are class indices (True) or one-hot (False).
    name, reduction, dtype: as ``keras.losses.Loss``.
  """

  def __init__(self, mu=None, from_integer_labels=True,
               name="multiclass_hinge", reduction="sum_over_batch_size",
               dtype=None):
    if mu is not None:
      if not isinstance(mu, (int, float)) or isinstance(mu, bool) or not (
          mu >= 0):
        raise ValueError(f"mu must be a number >= 0 or None. Received: "
                         f"mu={mu!r}")
      mu = float(mu)
    super().__init__(name=name, reduction=reduction, dtype=dtype)
    self.mu = mu
    self.from_integer_labels = bool(from_integer_labels)

  def call(self, y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    num_classes = y_pred.shape[-1]
    if self.from_integer_labels:
      labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
      onehot = ops.one_hot(labels, num_classes, dtype=y_pred.dtype)
    else:
      onehot = ops.cast(y_true, y_pred.dtype)
    mu = self.mu if self.mu is not None else 1.0 / max(num_classes - 1, 1)
    true_term = ops.relu(1.0 - y_pred) * onehot
    other_term = ops.relu(1.0 + y_pred) * (1.0 - onehot) * mu
    return ops.sum(true_term + other_term, axis=-1)

  def get_config(self):
    config = super().get_config()
    config.update({"mu": self.mu,
                   "from_integer_labels": self.from_integer_labels})
    return config
