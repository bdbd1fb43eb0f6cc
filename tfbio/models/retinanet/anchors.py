"""RetinaNet anchors, anchor-to-ground-truth matching and box coding.

Lin et al. 2017 ("Focal loss for dense object detection", §4) as used by
xiao2018 §3.2: at every pyramid level ``P_l`` (stride ``2**l``, ``l`` in
3..7) each feature-map position carries ``A = 9`` anchors, 3 scales
``{2^0, 2^(1/3), 2^(2/3)}`` × 3 aspect ratios ``{1:2, 1:1, 2:1}``, of base
size ``4 * 2**l`` (32 pixels at P3 … 512 at P7).

Conventions (used by the whole ``tfbio.models.retinanet`` package):

* Boxes are ``yxyx`` = ``[top, left, bottom, right]`` in absolute pixels of
  the (resized, padded) network input — TensorFlow's convention
  (``tf.image.combined_non_max_suppression``, ``tf.image.draw_bounding_boxes``
  take ``yxyx`` too).
* Anchor order: level (P3 first), then row ``y``, column ``x``, then the 9
  anchors of a position (scale-major: the 3 ratios of scale ``2^0``, then of
  ``2^(1/3)``, then of ``2^(2/3)``), which is the order of the model's
  outputs (a head's ``(H, W, A*K)`` map reshaped to ``(H*W*A, K)``).
* Anchor centres are at ``((i + 0.5) * stride, (j + 0.5) * stride)``, the
  centre of the input patch of feature position ``(i, j)`` (TF Model Garden,
  KerasCV; Detectron2 uses offset 0).
* A level's feature map is ``ceil(H / 2**l) x ceil(W / 2**l)``, which is what
  the ResNet-18 / FPN of :func:`tfbio.models.retinanet_resnet18` produce at
  any input size.
* Box coding (Faster R-CNN's, Lin et al. 2017 §4 "standard"): with anchor
  centre ``(ya, xa)`` and size ``(ha, wa)`` and box ``(y, x, h, w)``, the
  deltas are ``((y - ya) / ha, (x - xa) / wa, log(h / ha), log(w / wa))``,
  each divided by :data:`BOX_VARIANCE` ``= (1, 1, 1, 1)`` (Detectron's
  RetinaNet weights; the smooth-L1 ``beta = 1/9`` of ``tfbio.models.
  retinanet.losses`` is tuned for unscaled deltas). Encoding and decoding use
  ``keras.utils.bounding_boxes.encode_box_to_deltas`` /
  ``decode_deltas_to_boxes`` (``encoding_format="center_yxhw"``).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfbio.utils import checks

__all__ = [
    "ANCHOR_SIZE", "ASPECT_RATIOS", "BOX_VARIANCE", "MAX_LEVEL", "MIN_LEVEL",
    "NUM_ANCHORS", "SCALES", "anchors_per_level", "decode_boxes",
    "encode_boxes", "feature_sizes", "generate_anchors", "image_hw", "match",
]

MIN_LEVEL = 3
MAX_LEVEL = 7
SCALES = (2.0**0, 2.0**(1.0 / 3.0), 2.0**(2.0 / 3.0))
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # height / width
ANCHOR_SIZE = 4.0  # base anchor side = ANCHOR_SIZE * stride
NUM_ANCHORS = len(SCALES) * len(ASPECT_RATIOS)
BOX_VARIANCE = (1.0, 1.0, 1.0, 1.0)
# Detectron's clamp of dh, dw before exp(): log(1000 / 16).
_MAX_LOG_SCALE = math.log(1000.0 / 16.0)
_BOX_FORMAT = "yxyx"
_ENCODING = "center_yxhw"

BACKGROUND = -1
IGNORED = -2


def image_hw(image_size):
  """``int`` or ``(h, w[, c])`` → ``(h, w)``; ValueError otherwise."""
  if not isinstance(image_size, (str, bytes)):
    try:
      if len(image_size) == 3:
        image_size = tuple(image_size)[:2]
    except TypeError:
      pass
  return checks.int_tuple("image_size", image_size, 2)


def _check_levels(min_level, max_level):
  if (not isinstance(min_level, int) or not isinstance(max_level, int)
      or min_level < 0 or max_level < min_level):
    raise ValueError(f"Need 0 <= min_level <= max_level. Received: "
                     f"min_level={min_level!r}, max_level={max_level!r}")


def feature_sizes(image_size, min_level=MIN_LEVEL, max_level=MAX_LEVEL):
  """``[(h, w)]`` of levels ``min_level..max_level``: ``ceil(size / 2**l)``."""
  height, width = image_hw(image_size)
  _check_levels(min_level, max_level)
  return [(-(-height // 2**l), -(-width // 2**l))
          for l in range(min_level, max_level + 1)]


def anchors_per_level(image_size, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
                      num_anchors=NUM_ANCHORS):
  """Number of anchors of each level (``h * w * num_anchors``)."""
  return [h * w * num_anchors
          for h, w in feature_sizes(image_size, min_level, max_level)]


def generate_anchors(image_size, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
                     anchor_size=ANCHOR_SIZE, scales=SCALES,
                     aspect_ratios=ASPECT_RATIOS):
  """All anchors of an input, in the order of the model's outputs.

  Lin et al. 2017 §4: at level ``l`` the anchors of a position have side
  ``anchor_size * 2**l * scale`` (area preserved across ratios), height /
  width ``= ratio``, centred at ``((i + 0.5) * 2**l, (j + 0.5) * 2**l)``.
  Anchors are not clipped to the image.

  Example:

  >>> generate_anchors(128).shape  # 9 * (16² + 8² + 4² + 2² + 1²)
  (3069, 4)

  Args:
    image_size: ``int`` (square) or ``(height, width[, channels])`` of the
      network input.
    min_level, max_level: pyramid levels (stride ``2**l``).
    anchor_size: base side of a level's anchors in strides (4: 32 pixels at
      P3).
    scales: size multipliers of the anchors of a position.
    aspect_ratios: height / width of the anchors of a position.

  Returns:
    float32 numpy array ``(N, 4)``, ``yxyx`` absolute pixels.
  """
  _check_levels(min_level, max_level)
  cells = []
  for scale in scales:
    for ratio in aspect_ratios:
      if not scale > 0 or not ratio > 0:
        raise ValueError(f"scales and aspect_ratios must be > 0. Received: "
                         f"scales={scales!r}, aspect_ratios={aspect_ratios!r}")
      cells.append((math.sqrt(ratio), 1.0 / math.sqrt(ratio), scale))
  all_anchors = []
  for level, (h, w) in zip(range(min_level, max_level + 1),
                           feature_sizes(image_size, min_level, max_level)):
    stride = 2.0**level
    half = np.array([[0.5 * anchor_size * stride * s * hr,
                      0.5 * anchor_size * stride * s * wr]
                     for hr, wr, s in cells])  # (A, 2)
    cy, cx = np.meshgrid((np.arange(h) + 0.5) * stride,
                         (np.arange(w) + 0.5) * stride, indexing="ij")
    centers = np.stack([cy, cx], -1).reshape(-1, 1, 2)  # (H*W, 1, 2)
    level_anchors = np.concatenate([centers - half, centers + half], -1)
    all_anchors.append(level_anchors.reshape(-1, 4))
  return np.concatenate(all_anchors, 0).astype("float32")


def encode_boxes(anchors, boxes, variance=BOX_VARIANCE):
  """``(dy, dx, dh, dw)`` / ``variance`` of ``boxes`` w.r.t. ``anchors``.

  Args:
    anchors: ``(N, 4)`` ``yxyx``.
    boxes: ``(N, 4)`` or ``(batch, N, 4)`` ``yxyx``.
    variance: 4 divisors of the deltas (module docstring).

  Returns:
    Deltas, shaped like ``boxes``.
  """
  return keras.utils.bounding_boxes.encode_box_to_deltas(
      anchors, boxes, anchor_format=_BOX_FORMAT, box_format=_BOX_FORMAT,
      encoding_format=_ENCODING, variance=variance)


def decode_boxes(anchors, deltas, variance=BOX_VARIANCE):
  """Inverse of :func:`encode_boxes`; ``dh, dw`` clamped at log(1000/16).

  The clamp (Detectron's) keeps ``exp`` finite for wild early predictions;
  it never touches deltas of boxes under 62.5 anchor sizes.

  Returns:
    ``yxyx`` boxes shaped like ``deltas``.
  """
  deltas = tf.convert_to_tensor(deltas, tf.float32)
  variance = tf.constant(variance, tf.float32)
  limit = _MAX_LOG_SCALE / variance[2:]
  deltas = tf.concat([deltas[..., :2],
                      tf.minimum(deltas[..., 2:], limit)], -1)
  return keras.utils.bounding_boxes.decode_deltas_to_boxes(
      anchors, deltas, anchor_format=_BOX_FORMAT, box_format=_BOX_FORMAT,
      encoded_format=_ENCODING, variance=variance)


def match(anchors, gt_boxes, gt_classes, *, positive_iou=0.5,
          negative_iou=0.4, allow_low_quality_matches=True,
          variance=BOX_VARIANCE):
  """Training targets of every anchor (Lin et al. 2017 §4, "Anchors").

  Each anchor is matched to the ground-truth box of highest IoU: it is
  *positive* (target: that box's class and its encoded deltas) if the IoU is
  ``>= positive_iou``, *background* (``-1``) if ``< negative_iou`` and
  *ignored* (``-2``; no loss) in between. With
  ``allow_low_quality_matches`` (on by default, as Detectron/Detectron2's
  RetinaNet), every anchor whose IoU with some box equals that box's best
  IoU over all anchors (ties included, IoU > 0) is positive too, so every box
  gets at least one anchor; such an anchor keeps its own best box as target.

  Padding boxes are those with ``gt_classes < 0``.

  Args:
    anchors: ``(N, 4)`` ``yxyx`` (e.g. :func:`generate_anchors`).
    gt_boxes: ``(M, 4)`` or ``(batch, M, 4)`` ``yxyx``, same pixel frame.
    gt_classes: ``(M,)`` or ``(batch, M)`` int, contiguous class indices
      ``0..K-1``; negative for padding.
    positive_iou, negative_iou: the IoU thresholds (0.5, 0.4).
    allow_low_quality_matches: apply the best-anchor-per-box rule.
    variance: box coding variance (module docstring).

  Returns:
    ``(class_targets, box_targets)``: int32 ``(N,)`` / ``(batch, N)`` with a
    class index, ``-1`` (background) or ``-2`` (ignored); float32
    ``(N, 4)`` / ``(batch, N, 4)`` deltas, zero where not positive.
  """
  if not 0.0 <= negative_iou <= positive_iou <= 1.0:
    raise ValueError(f"Need 0 <= negative_iou <= positive_iou <= 1. Received: "
                     f"negative_iou={negative_iou!r}, "
                     f"positive_iou={positive_iou!r}")
  anchors = tf.convert_to_tensor(anchors, tf.float32)
  gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
  gt_classes = tf.cast(tf.convert_to_tensor(gt_classes), tf.int32)
  unbatched = gt_boxes.shape.rank == 2
  if unbatched:
    gt_boxes, gt_classes = gt_boxes[None], gt_classes[None]
  if gt_boxes.shape.rank != 3 or gt_boxes.shape[-1] != 4:
    raise ValueError(f"gt_boxes must be (M, 4) or (batch, M, 4). Received: "
                     f"gt_boxes.shape={gt_boxes.shape}")
  if gt_boxes.shape[1] == 0:  # No box slot at all: one padding box.
    batch = tf.shape(gt_boxes)[0]
    gt_boxes = tf.zeros([batch, 1, 4])
    gt_classes = tf.fill([batch, 1], -1)
  valid = gt_classes >= 0  # (B, M)
  iou = keras.utils.bounding_boxes.compute_iou(anchors, gt_boxes,
                                               _BOX_FORMAT)  # (B, N, M)
  iou = tf.where(valid[:, None, :], iou, -1.0)
  max_iou = tf.reduce_max(iou, axis=-1)  # (B, N)
  matched = tf.argmax(iou, axis=-1, output_type=tf.int32)  # (B, N)
  positive = max_iou >= positive_iou
  if allow_low_quality_matches:
    best = tf.reduce_max(iou, axis=1, keepdims=True)  # (B, 1, M)
    is_best = (iou >= best) & valid[:, None, :] & (best > 0.0)
    positive |= tf.reduce_any(is_best, axis=-1)
  negative = (max_iou < negative_iou) & ~positive
  matched_classes = tf.gather(gt_classes, matched, batch_dims=1)
  class_targets = tf.where(
      positive, matched_classes,
      tf.where(negative, BACKGROUND, IGNORED))
  matched_boxes = tf.gather(gt_boxes, matched, batch_dims=1)  # (B, N, 4)
  box_targets = encode_boxes(anchors, matched_boxes, variance)
  box_targets = tf.where(positive[..., None], box_targets, 0.0)
  if unbatched:
    class_targets, box_targets = class_targets[0], box_targets[0]
  return class_targets, box_targets
