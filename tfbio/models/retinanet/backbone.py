"""RetinaNet's backbone: ResNet-18 (torchvision layout) stages C3-C5.

xiao2018 §3.2 trains RetinaNet (Lin et al. 2017) with "a backbone ResNet-18
pretrained on ImageNet". The backbone is :func:`tfbio.models.
resnet18_features` — same layers, same names (``conv1``, ``bn1``,
``layer{s}_{b}_conv1``, ...) as :func:`tfbio.models.resnet18` — so ImageNet
weights of a ``resnet18`` (trained with any feedback algorithm) copy over by
name with :func:`load_backbone_weights`.
"""

from absl import logging

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.models.resnet import resnet18_features
from tfbio.models.resnet import STEMS

__all__ = ["PYRAMID_LEVELS", "load_backbone_weights", "resnet18_backbone"]

# Pyramid levels (min_level, max_level) of the anchors for each stem: the
# ImageNet stem makes C3 stride 8 = 2**3; the CIFAR stem (no stride in the
# stem) makes it stride 2, so P3..P7 have strides 2**1..2**5.
PYRAMID_LEVELS = {"imagenet": (3, 7), "cifar": (1, 5)}


def resnet18_backbone(inputs, plan, stem="imagenet"):
  """``{"C3", "C4", "C5"}`` of a ResNet-18 on ``inputs``.

  Args:
    inputs: the image tensor ``(batch, h, w, 3)``.
    plan: the model's :class:`tfbio.models.FeedbackPlan` (every backbone conv
      is a hidden layer, ``plan(name)``).
    stem: ``"imagenet"`` (C3/C4/C5 strides 8/16/32) or ``"cifar"`` (2/4/8;
      for tiny images, with ``PYRAMID_LEVELS["cifar"]`` anchors).

  Returns:
    Dict of the outputs of stages ``layer2``, ``layer3``, ``layer4``
    (128, 256, 512 channels).
  """
  if stem not in STEMS:
    raise ValueError(f"backbone_stem must be one of {STEMS}. Received: "
                     f"backbone_stem={stem!r}")
  features = resnet18_features(inputs, plan, stem)
  return {k: features[k] for k in ("C3", "C4", "C5")}


def load_backbone_weights(detector, classifier):
  """Copies a ``resnet18``'s trunk weights into a RetinaNet, by layer name.

  Every layer of ``classifier`` (e.g. an ImageNet ``tfbio.models.resnet18``)
  whose name is also a layer of ``detector`` gets its weights copied: the
  kernel and bias of feedback layers (their feedback state is left as the
  detector built it, since the two may use different algorithms; sign
  references are re-read), all variables of other layers (batch norm). The
  classifier ``fc`` has no counterpart and is skipped.

  Args:
    detector: a model from :func:`tfbio.models.retinanet_resnet18`.
    classifier: a model with the ResNet-18 layer names.

  Returns:
    The sorted names of the layers copied.

  Raises:
    ValueError: no layer in common, or a shape mismatch.
  """
  names = {l.name for l in detector.layers}
  copied = []
  for old in classifier.layers:
    if old.name not in names or not old.weights:
      continue
    new = detector.get_layer(old.name)
    if isinstance(old, BaseFeedbackLayer) and isinstance(
        new, BaseFeedbackLayer):
      pairs = [(new.kernel, old.kernel)]
      if old.bias is not None and new.bias is not None:
        pairs.append((new.bias, old.bias))
    else:
      pairs = list(zip(new.weights, old.weights))
      if len(new.weights) != len(old.weights):
        raise ValueError(f"Layer {old.name!r} has {len(old.weights)} weights "
                         f"in the classifier but {len(new.weights)} in the "
                         "detector.")
    for target, source in pairs:
      if tuple(target.shape) != tuple(source.shape):
        raise ValueError(f"Shape mismatch for {target.path!r}: detector "
                         f"{tuple(target.shape)} vs classifier "
                         f"{tuple(source.shape)}")
      target.assign(source)
    if isinstance(new, BaseFeedbackLayer):
      new.reset_sign_reference()
    copied.append(old.name)
  if not copied:
    raise ValueError(f"No layer of {classifier.name!r} matches a layer of "
                     f"{detector.name!r} by name.")
  logging.info("load_backbone_weights: copied %d layers from %r into %r.",
               len(copied), classifier.name, detector.name)
  return sorted(copied)
