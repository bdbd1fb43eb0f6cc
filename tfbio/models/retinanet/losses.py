"""RetinaNet's losses: sigmoid focal loss and smooth-L1 box loss.

Lin et al. 2017 ("Focal loss for dense object detection", §3, §4
"Training"), as plotted by xiao2018 §3.2 Fig. 2 (box regression loss, focal
loss and their sum):

* **Focal loss** on every non-ignored anchor and every class, with one-hot
  targets (background anchors: all zeros):
  ``FL(p_t) = -α_t (1 - p_t)^γ log(p_t)``, ``α = 0.25``, ``γ = 2``. The
  formula is that of ``keras.losses.BinaryFocalCrossentropy(
  apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True)``,
  but summed over classes (the Keras loss averages over the last axis).
* **Box loss**: smooth L1 with ``β = 1/9`` (Detectron's 0.11 for RetinaNet;
  ``0.5 x² / β`` for ``|x| < β``, else ``|x| - β / 2``, i.e. Keras' Huber
  loss with ``δ = β`` divided by ``β``) summed over the 4 deltas of the
  positive anchors.
* Both are **sums over the batch divided by the number of positive anchors
  in the batch** (at least 1), as Detectron. Ignored anchors (class target
  ``-2``) contribute to neither.
"""

import tensorflow as tf

from tfbio.models.retinanet.anchors import BACKGROUND

__all__ = ["ALPHA", "GAMMA", "SMOOTH_L1_BETA", "retinanet_loss",
           "sigmoid_focal_loss", "smooth_l1"]

ALPHA = 0.25
GAMMA = 2.0
SMOOTH_L1_BETA = 1.0 / 9.0


def sigmoid_focal_loss(labels, logits, alpha=ALPHA, gamma=GAMMA):
  """Elementwise focal loss of sigmoid ``logits`` (Lin et al. 2017 eq. 5).

  Args:
    labels: 0/1 targets, same shape as ``logits``.
    logits: pre-sigmoid scores.
    alpha: weight of the positives (``1 - alpha`` for negatives); None: 1.
    gamma: focusing parameter ``γ >= 0``.

  Returns:
    float32 tensor shaped like ``logits``.
  """
  if gamma < 0:
    raise ValueError(f"gamma must be >= 0. Received: gamma={gamma!r}")
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(labels, tf.float32)
  cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                          logits=logits)
  probs = tf.sigmoid(logits)
  p_t = labels * probs + (1.0 - labels) * (1.0 - probs)
  loss = tf.pow(1.0 - p_t, gamma) * cross_entropy
  if alpha is not None:
    loss *= labels * alpha + (1.0 - labels) * (1.0 - alpha)
  return loss


def smooth_l1(x, beta=SMOOTH_L1_BETA):
  """Elementwise smooth L1: ``0.5 x² / β`` if ``|x| < β`` else ``|x| - β/2``."""
  if not beta > 0:
    raise ValueError(f"beta must be > 0. Received: beta={beta!r}")
  x = tf.abs(tf.cast(x, tf.float32))
  return tf.where(x < beta, 0.5 * tf.square(x) / beta, x - 0.5 * beta)


def retinanet_loss(class_targets, box_targets, class_logits, box_deltas, *,
                   alpha=ALPHA, gamma=GAMMA, beta=SMOOTH_L1_BETA,
                   box_weight=1.0):
  """RetinaNet's focal + box losses of a batch, normalised by positives.

  Args:
    class_targets: int ``(batch, N)`` from ``anchors.match``: class index,
      ``-1`` background, ``-2`` ignored.
    box_targets: ``(batch, N, 4)`` encoded deltas (used on positives only).
    class_logits: the model's ``(batch, N, K)`` output.
    box_deltas: the model's ``(batch, N, 4)`` output.
    alpha, gamma: focal loss parameters (0.25, 2).
    beta: smooth-L1 transition point (1/9).
    box_weight: weight of the box loss in the total (1).

  Returns:
    Dict of float32 scalars ``"box_loss"``, ``"focal_loss"``,
    ``"total_loss"`` (``focal + box_weight * box``) and ``"num_positives"``
    (the normaliser before clamping at 1).
  """
  class_targets = tf.cast(class_targets, tf.int32)
  num_classes = class_logits.shape[-1]
  positive = class_targets >= 0
  num_positives = tf.reduce_sum(tf.cast(positive, tf.float32))
  normalizer = tf.maximum(num_positives, 1.0)
  # Background (-1) one-hots to all zeros; ignored (-2) is masked out.
  onehot = tf.one_hot(tf.maximum(class_targets, BACKGROUND), num_classes,
                      dtype=tf.float32)
  valid = tf.cast(class_targets >= BACKGROUND, tf.float32)[..., None]
  focal = tf.reduce_sum(
      sigmoid_focal_loss(onehot, class_logits, alpha, gamma) * valid)
  box = tf.reduce_sum(
      smooth_l1(tf.cast(box_deltas, tf.float32) - tf.cast(box_targets,
                                                          tf.float32), beta)
      * tf.cast(positive, tf.float32)[..., None])
  focal_loss = focal / normalizer
  box_loss = box / normalizer
  return {"box_loss": box_loss, "focal_loss": focal_loss,
          "total_loss": focal_loss + box_weight * box_loss,
          "num_positives": num_positives}
