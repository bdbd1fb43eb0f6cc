"""RetinaNet inference: box deltas → boxes, then per-class NMS.

Lin et al. 2017 §4 ("Inference"): sigmoid scores, keep at most 1,000
top-scoring boxes per level above a 0.05 threshold, decode them from their
anchors, merge the levels and apply per-class non-maximum suppression at IoU
0.5, keeping the 100 best detections per image. Here the top-k preselection
(``pre_nms_top_k``) is over all levels at once, ranked by each anchor's best
class score, and the rest is ``tf.image.combined_non_max_suppression``
(class-agnostic boxes, one score per class). Outputs are padded to
``max_detections`` per image; ``num_detections`` says how many are real.
"""

import keras
import tensorflow as tf

from tfbio.models.retinanet import anchors as anchors_lib
from tfbio.models.retinanet import backbone as backbone_lib
from tfbio.utils import checks

__all__ = ["DETECTION_KEYS", "DecodeDetections", "decode_detections",
           "detection_model"]

DETECTION_KEYS = ("boxes", "scores", "classes", "num_detections")


def decode_detections(class_logits, box_deltas, anchors, *, image_size=None,
                      score_threshold=0.05, iou_threshold=0.5,
                      max_detections=100, max_detections_per_class=100,
                      pre_nms_top_k=5000,
                      variance=anchors_lib.BOX_VARIANCE):
  """Detections of a batch of RetinaNet outputs.

  Args:
    class_logits: ``(batch, N, K)`` logits (the model's ``class_logits``).
    box_deltas: ``(batch, N, 4)`` deltas (the model's ``box_deltas``).
    anchors: ``(N, 4)`` ``yxyx`` (``anchors.generate_anchors``).
    image_size: ``int`` or ``(height, width)``: boxes are clipped to the
      image when given.
    score_threshold: minimum sigmoid score (0.05).
    iou_threshold: per-class NMS IoU (0.5).
    max_detections: detections kept per image (100).
    max_detections_per_class: per class, before the merge (100).
    pre_nms_top_k: anchors kept before NMS, by best class score (None: all).
    variance: box coding variance.

  Returns:
    Dict ``"boxes"`` float32 ``(batch, max_detections, 4)`` ``yxyx`` pixels,
    ``"scores"`` float32 ``(batch, max_detections)``, ``"classes"`` int32
    ``(batch, max_detections)`` (0-based), ``"num_detections"`` int32
    ``(batch,)``; entries past ``num_detections`` are zero.
  """
  checks.positive_int("max_detections", max_detections)
  checks.positive_int("max_detections_per_class", max_detections_per_class)
  if pre_nms_top_k is not None:
    checks.positive_int("pre_nms_top_k", pre_nms_top_k)
  checks.number("iou_threshold", iou_threshold, 0, 1)
  scores = tf.sigmoid(tf.cast(class_logits, tf.float32))
  boxes = anchors_lib.decode_boxes(anchors, box_deltas, variance)
  if image_size is not None:
    height, width = anchors_lib.image_hw(image_size)
    upper = tf.constant([height, width, height, width], tf.float32)
    boxes = tf.clip_by_value(boxes, 0.0, upper)
  num_anchors = boxes.shape[1]
  if pre_nms_top_k is not None and (num_anchors is None
                                    or pre_nms_top_k < num_anchors):
    k = tf.minimum(pre_nms_top_k, tf.shape(boxes)[1])
    _, top = tf.math.top_k(tf.reduce_max(scores, -1), k=k)
    boxes = tf.gather(boxes, top, batch_dims=1)
    scores = tf.gather(scores, top, batch_dims=1)
  nmsed = tf.image.combined_non_max_suppression(
      boxes[:, :, None, :], scores,
      max_output_size_per_class=max_detections_per_class,
      max_total_size=max_detections, iou_threshold=iou_threshold,
      score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
  return {"boxes": nmsed.nmsed_boxes, "scores": nmsed.nmsed_scores,
          "classes": tf.cast(nmsed.nmsed_classes, tf.int32),
          "num_detections": tf.cast(nmsed.valid_detections, tf.int32)}


@keras.saving.register_keras_serializable(package="tfbio")
class DecodeDetections(keras.layers.Layer):
  """:func:`decode_detections` as a layer (for exported inference models).

  Called on ``{"class_logits": ..., "box_deltas": ...}`` (a RetinaNet's
  outputs) or ``[class_logits, box_deltas]``; the anchors are those of
  ``image_size`` at levels ``min_level..max_level``.

  Args:
    image_size: ``(height, width)`` of the network input.
    min_level, max_level: anchor levels (3, 7; 1, 5 with the CIFAR stem).
    score_threshold, iou_threshold, max_detections,
    max_detections_per_class, pre_nms_top_k: as :func:`decode_detections`.
    **kwargs: ``keras.layers.Layer`` arguments.
  """

  def __init__(self, image_size, min_level=anchors_lib.MIN_LEVEL,
               max_level=anchors_lib.MAX_LEVEL, score_threshold=0.05,
               iou_threshold=0.5, max_detections=100,
               max_detections_per_class=100, pre_nms_top_k=5000, **kwargs):
    super().__init__(**kwargs)
    self.image_size = anchors_lib.image_hw(image_size)
    self.min_level = min_level
    self.max_level = max_level
    self.score_threshold = float(score_threshold)
    self.iou_threshold = float(iou_threshold)
    self.max_detections = max_detections
    self.max_detections_per_class = max_detections_per_class
    self.pre_nms_top_k = pre_nms_top_k
    self._anchors = anchors_lib.generate_anchors(self.image_size, min_level,
                                                 max_level)

  def call(self, inputs):
    if isinstance(inputs, dict):
      class_logits, box_deltas = inputs["class_logits"], inputs["box_deltas"]
    else:
      class_logits, box_deltas = inputs
    return decode_detections(
        class_logits, box_deltas, self._anchors, image_size=self.image_size,
        score_threshold=self.score_threshold,
        iou_threshold=self.iou_threshold,
        max_detections=self.max_detections,
        max_detections_per_class=self.max_detections_per_class,
        pre_nms_top_k=self.pre_nms_top_k)

  def compute_output_spec(self, inputs):
    class_logits = (inputs["class_logits"] if isinstance(inputs, dict)
                    else inputs[0])
    batch = class_logits.shape[0]
    d = self.max_detections
    return {"boxes": keras.KerasTensor((batch, d, 4), "float32"),
            "scores": keras.KerasTensor((batch, d), "float32"),
            "classes": keras.KerasTensor((batch, d), "int32"),
            "num_detections": keras.KerasTensor((batch,), "int32")}

  def get_config(self):
    config = super().get_config()
    config.update({
        "image_size": self.image_size, "min_level": self.min_level,
        "max_level": self.max_level, "score_threshold": self.score_threshold,
        "iou_threshold": self.iou_threshold,
        "max_detections": self.max_detections,
        "max_detections_per_class": self.max_detections_per_class,
        "pre_nms_top_k": self.pre_nms_top_k})
    return config


def detection_model(model, **kwargs):
  """A RetinaNet plus :class:`DecodeDetections`: image → detections.

  The anchor levels are those of ``model``'s stem, recognised from its
  number of anchors.

  Args:
    model: a :func:`tfbio.models.retinanet_resnet18` model.
    **kwargs: :class:`DecodeDetections` options (thresholds, sizes).

  Returns:
    A ``keras.Model`` named ``f"{model.name}_detector"`` whose outputs are
    the dict of :func:`decode_detections`.
  """
  inputs = keras.Input(model.input_shape[1:], name="image")
  raw = model(inputs)
  image_size = tuple(model.input_shape[1:3])
  num_anchors = raw["class_logits"].shape[1]
  for lo, hi in backbone_lib.PYRAMID_LEVELS.values():
    if sum(anchors_lib.anchors_per_level(image_size, lo, hi)) == num_anchors:
      break
  else:
    raise ValueError(f"model {model.name!r} has {num_anchors} anchors, which "
                     f"matches no stem of {tuple(backbone_lib.PYRAMID_LEVELS)}"
                     f" at image size {image_size}")
  outputs = DecodeDetections(image_size, lo, hi, name="decode_detections",
                             **kwargs)(raw)
  return keras.Model(inputs, outputs, name=f"{model.name}_detector")
