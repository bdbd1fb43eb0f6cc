"""The RetinaNet builder registered as ``retinanet_resnet18``."""

import keras

from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.models.retinanet import anchors as anchors_lib
from tfbio.models.retinanet import backbone as backbone_lib
from tfbio.models.retinanet import fpn as fpn_lib
from tfbio.models.retinanet import heads as heads_lib
from tfbio.utils import checks

__all__ = ["CLASSIFIER_LAYERS", "OUTPUT_KEYS", "model_anchors",
           "retinanet_resnet18"]

OUTPUT_KEYS = ("class_logits", "box_deltas")
CLASSIFIER_LAYERS = ("class_output", "box_output")


@register_model(source="xiao2018 §3.2 (RetinaNet, ResNet-18 FPN)",
                input_shape=(512, 512, 3), num_classes=80,
                small_input_shape=(128, 128, 3), task="detection")
def retinanet_resnet18(num_classes=80, input_shape=(512, 512, 3), *,
                       feedback="bp", last_layer=None, overrides=None,
                       backbone_stem="imagenet"):
  """RetinaNet (Lin et al. 2017) on a ResNet-18 FPN, as in xiao2018 §3.2.

  ::

      backbone: ResNet-18 (torchvision layout, tfbio.models.resnet18's layer
                names) -> C3, C4, C5 (strides 8, 16, 32; 128/256/512 ch.)
      FPN:      P3-P5 lateral 1x1 + top-down nearest 2x + 3x3, P6 = 3x3/2
                on C5, P7 = 3x3/2 on ReLU(P6); 256 channels (fpn.py)
      heads:    class and box subnets, 4 x (3x3 conv 256 + ReLU) + 3x3
                output conv (9*K logits / 9*4 deltas), shared by P3-P7
                (heads.py)

  9 anchors per position (anchors.py). xiao2018 trains it with "BP in the
  last layer of both subnets, SS (or FA) everywhere else":
  ``feedback="ss", last_layer="bp"`` puts exactly ``class_output`` and
  ``box_output`` on ``bp``.

  Outputs a dict: ``"class_logits"`` ``(batch, N, num_classes)`` (sigmoid
  logits, no background class) and ``"box_deltas"`` ``(batch, N, 4)``
  (``(dy, dx, dh, dw)``, anchors.py), ``N`` anchors in the order of
  ``anchors.generate_anchors(input_shape)`` (or :func:`model_anchors`).
  At 512x512, ``N = 49,104``; at 128x128, 3,069. 21,410,100 trainable
  parameters at 80 classes: backbone 11,176,512, FPN 3,770,368, class
  subnet 4,019,920, box subnet 2,443,300.

  Layer names (stable): the backbone keeps :func:`tfbio.models.resnet18`'s
  (``conv1``, ``bn1``, ``layer{s}_{b}_conv{1,2}``, ...; ``fc``/``avgpool``
  absent); FPN ``fpn_lateral{3,4,5}``, ``fpn_upsample{4,3}``,
  ``fpn_crop{4,3}`` (odd sizes only), ``fpn_add{4,3}``,
  ``fpn_output{3,4,5}``, ``fpn_p6_pad``, ``fpn_p6``, ``fpn_p7_relu``,
  ``fpn_p7_pad``, ``fpn_p7``; heads ``class_conv{1..4}``, ``class_output``,
  ``box_conv{1..4}``, ``box_output``, ``class_reshape{3..7}``,
  ``box_reshape{3..7}``, ``class_logits``, ``box_deltas``.

  Example:

  >>> model = tfbio.models.retinanet_resnet18(
  ...     num_classes=3, input_shape=(128, 128, 3), feedback="ss",
  ...     last_layer="bp")
  >>> sorted(model.tfbio_classifier_layers)
  ['box_output', 'class_output']

  Args:
    num_classes: ``K`` object classes.
    input_shape: ``(height, width, 3)``; any size (levels are
      ``ceil(size / stride)``, the top-down path crops odd sizes).
    feedback: algorithm of every conv (anything ``tfbio.feedback.get``
      accepts).
    last_layer: algorithm of ``class_output`` and ``box_output`` only; None
      means ``feedback``.
    overrides: ``{layer name or regex: algorithm}`` (wins over both).
    backbone_stem: ``"imagenet"`` (anchor levels 3-7) or ``"cifar"`` (no
      stem stride: levels 1-5, for tiny images); see
      ``backbone.PYRAMID_LEVELS`` and :func:`model_anchors`.

  Returns:
    A ``keras.Model`` named ``"retinanet_resnet18"``.
  """
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  if input_shape[-1] != 3:
    raise ValueError(f"input_shape must have 3 channels. Received: "
                     f"input_shape={input_shape!r}")
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  features = backbone_lib.resnet18_backbone(inputs, plan, backbone_stem)
  pyramid = fpn_lib.build_fpn(features, plan)
  class_logits, box_deltas = heads_lib.build_heads(
      pyramid, num_classes, anchors_lib.NUM_ANCHORS, plan,
      levels=range(3, 8))
  outputs = dict(zip(OUTPUT_KEYS, (class_logits, box_deltas)))
  return plan.finish(keras.Model(inputs, outputs, name="retinanet_resnet18"))


def model_anchors(input_shape, backbone_stem="imagenet"):
  """The anchors of :func:`retinanet_resnet18`'s outputs, ``(N, 4)`` yxyx.

  ``anchors.generate_anchors`` at ``backbone.PYRAMID_LEVELS[backbone_stem]``.
  """
  checks.one_of("backbone_stem", backbone_stem, backbone_lib.PYRAMID_LEVELS)
  min_level, max_level = backbone_lib.PYRAMID_LEVELS[backbone_stem]
  return anchors_lib.generate_anchors(input_shape, min_level, max_level)
