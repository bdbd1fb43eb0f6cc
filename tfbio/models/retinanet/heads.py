"""RetinaNet's classification and box subnets, shared across pyramid levels.

Lin et al. 2017 ("Focal loss", §4 "Classification Subnet", "Box Regression
Subnet", "Initialization"), used by xiao2018 §3.2: each subnet is 4 × (3x3
conv, 256 channels, ReLU) followed by a 3x3 output conv with ``A * K``
(classification: ``K`` sigmoid logits per anchor) or ``A * 4`` (box deltas)
channels. A subnet's parameters are shared by all pyramid levels: every conv
layer is built once and called on every level, so the model has 10 head
conv layers whatever the number of levels.

Initialization: kernels ``N(0, 0.01²)``, biases 0, except the classification
output bias ``-log((1 - π) / π)`` with prior ``π = 0.01``, so that every
anchor starts at foreground probability ~0.01 (keeps the focal loss of the
many background anchors from swamping the first iterations).

The two output convs are the "last layer" of xiao2018's "BP in the last layer
of both subnets": they take ``plan(name, classifier=True)``.

Layer names: ``{prefix}_conv1`` .. ``{prefix}_conv4`` (ReLU fused in the
conv), ``{prefix}_output`` (the last layer), ``{prefix}_reshape{l}`` (per
level, to ``(batch, H*W*A, outputs)``) with prefix ``class`` and ``box``;
the concatenations over levels are ``class_logits`` and ``box_deltas``.
"""

import math

import keras

from tfbio import layers

__all__ = ["HEAD_CHANNELS", "HEAD_DEPTH", "PRIOR_PROBABILITY", "build_head",
           "build_heads"]

HEAD_CHANNELS = 256
HEAD_DEPTH = 4
PRIOR_PROBABILITY = 0.01


def _conv(filters, plan, name, activation=None, bias_initializer="zeros",
          classifier=False):
  return layers.Conv2D(
      filters, 3, padding="same", activation=activation,
      kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
      bias_initializer=bias_initializer,
      feedback=plan(name, classifier=classifier),
      data_format="channels_last", name=name)


def build_head(features, prefix, outputs_per_anchor, num_anchors, plan,
               bias_initializer="zeros", channels=HEAD_CHANNELS,
               depth=HEAD_DEPTH, levels=None, name=None):
  """One subnet applied, with the same layers, to every level.

  Args:
    features: list of pyramid tensors ``(batch, H_l, W_l, C)``.
    prefix: layer-name prefix (``"class"``, ``"box"``).
    outputs_per_anchor: ``K`` (classes) or 4 (box deltas).
    num_anchors: anchors per position ``A``.
    plan: the model's :class:`tfbio.models.FeedbackPlan`.
    bias_initializer: of the output conv.
    channels, depth: the hidden convs (256, 4).
    levels: names of the levels (for the reshape layers); default 3, 4, ...
    name: of the concatenation layer; default ``f"{prefix}_concat"``.

  Returns:
    ``(batch, sum_l H_l * W_l * A, outputs_per_anchor)``, levels in order.
  """
  if not features:
    raise ValueError(f"features must be a non-empty list. Received: "
                     f"features={features!r}")
  levels = list(levels or range(3, 3 + len(features)))
  name = name or f"{prefix}_concat"
  hidden = [_conv(channels, plan, f"{prefix}_conv{i}", activation="relu")
            for i in range(1, depth + 1)]
  output = _conv(num_anchors * outputs_per_anchor, plan, f"{prefix}_output",
                 bias_initializer=bias_initializer, classifier=True)
  per_level = []
  for level, x in zip(levels, features):
    for conv in hidden:
      x = conv(x)
    x = output(x)
    per_level.append(keras.layers.Reshape(
        (-1, outputs_per_anchor), name=f"{prefix}_reshape{level}")(x))
  if len(per_level) == 1:
    return keras.layers.Identity(name=name)(per_level[0])
  return keras.layers.Concatenate(axis=1, name=name)(per_level)


def build_heads(features, num_classes, num_anchors, plan, levels=None):
  """``(class_logits, box_deltas)`` of the two RetinaNet subnets.

  Args:
    features: list of pyramid tensors (P3..P7).
    num_classes: ``K`` (no background class: sigmoid per class).
    num_anchors: ``A`` (9).
    plan: the model's :class:`tfbio.models.FeedbackPlan`.
    levels: level names for the per-level layers.

  Returns:
    ``(batch, N, K)`` class logits and ``(batch, N, 4)`` box deltas.
  """
  prior = -math.log((1.0 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
  class_logits = build_head(
      features, "class", num_classes, num_anchors, plan,
      bias_initializer=keras.initializers.Constant(prior), levels=levels,
      name="class_logits")
  box_deltas = build_head(features, "box", 4, num_anchors, plan,
                          levels=levels, name="box_deltas")
  return class_logits, box_deltas
