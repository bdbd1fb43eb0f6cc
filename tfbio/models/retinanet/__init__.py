"""RetinaNet (Lin et al. 2017) on a ResNet-18 FPN, as in xiao2018 §3.2.

Split by role, as the TF Model Garden's RetinaNet:

* :mod:`~tfbio.models.retinanet.backbone`: ResNet-18 C3-C5
  (``resnet18_backbone``, ``load_backbone_weights``);
* :mod:`~tfbio.models.retinanet.fpn`: P3-P7 (``build_fpn``);
* :mod:`~tfbio.models.retinanet.heads`: class and box subnets, shared across
  levels (``build_heads``);
* :mod:`~tfbio.models.retinanet.anchors`: ``generate_anchors``, ``match``,
  ``encode_boxes`` / ``decode_boxes``;
* :mod:`~tfbio.models.retinanet.losses`: focal loss + smooth L1
  (``retinanet_loss``);
* :mod:`~tfbio.models.retinanet.decode`: deltas → boxes + NMS
  (``decode_detections``, ``DecodeDetections``, ``detection_model``);
* :mod:`~tfbio.models.retinanet.model`: the registered builder
  ``retinanet_resnet18`` (also ``tfbio.models.retinanet_resnet18``).

Example (xiao2018's "SS, BP in the last layer of both subnets")::

    from tfbio import models
    from tfbio.models import retinanet

    model = models.create_model("retinanet_resnet18", num_classes=80,
                                feedback="ss", last_layer="bp")
    anchors = retinanet.model_anchors((512, 512))
    cls_t, box_t = retinanet.anchors.match(anchors, gt_boxes, gt_classes)
    out = model(images, training=True)
    losses = retinanet.losses.retinanet_loss(cls_t, box_t,
                                             out["class_logits"],
                                             out["box_deltas"])
    # losses["total_loss"], losses["focal_loss"], losses["box_loss"]
"""

from tfbio.models.retinanet import anchors
from tfbio.models.retinanet import backbone
from tfbio.models.retinanet import decode
from tfbio.models.retinanet import fpn
from tfbio.models.retinanet import heads
from tfbio.models.retinanet import losses
from tfbio.models.retinanet.model import model_anchors
from tfbio.models.retinanet.model import retinanet_resnet18

# Only the builder goes into tfbio.models' namespace (via its `import *`).
__all__ = ["retinanet_resnet18"]
