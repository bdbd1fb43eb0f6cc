"""ResNet-18 (He et al. 2016) in torchvision's layout, with feedback layers.

xiao2018 §3.1 trains torchvision's ResNet-18 on ImageNet with sign-symmetry
and feedback alignment, optionally keeping back-propagation in the last
(classifier) layer; xiao2018 §3.2 uses it as RetinaNet's backbone. The layout
here reproduces torchvision's ``resnet18`` exactly (same shapes, same padding,
11,689,512 trainable parameters at 1,000 classes), so weights can be ported
layer by layer; layer names are torchvision's with ``.`` replaced by ``_``.
"""

import math

import keras

from tfbio import layers
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["resnet18", "resnet18_cifar", "resnet18_features"]

STEMS = ("imagenet", "cifar")


def _conv_initializer():
  # He normal, fan-out, untruncated (torchvision's kaiming_normal_ with
  # mode="fan_out"; xiao2018 footnote 2: `ss` and `fa` use this scale).
  return keras.initializers.VarianceScaling(2.0, "fan_out",
                                            "untruncated_normal")


def _batchnorm(name):
  # torchvision's BatchNorm2d: eps 1e-5, running-average momentum 0.1.
  return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9,
                                         name=name)


def _conv(filters, kernel_size, strides, padding, plan, name):
  return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                       use_bias=False, kernel_initializer=_conv_initializer(),
                       feedback=plan(name), data_format="channels_last",
                       name=name)


def _conv3x3(x, filters, strides, plan, name):
  """3x3 conv with torchvision's symmetric padding 1.

  ``padding="same"`` equals it at stride 1; at stride 2 TensorFlow would pad
  only bottom/right, so the stride-2 convs pad explicitly (``{name}_pad``).
  """
  if strides == 1:
    return _conv(filters, 3, 1, "same", plan, name)(x)
  x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
  return _conv(filters, 3, strides, "valid", plan, name)(x)


def _basic_block(x, filters, strides, plan, name):
  """torchvision's ``BasicBlock`` (expansion 1), post-activation."""
  shortcut = x
  y = _conv3x3(x, filters, strides, plan, f"{name}_conv1")
  y = _batchnorm(f"{name}_bn1")(y)
  y = keras.layers.ReLU(name=f"{name}_relu1")(y)
  y = _conv3x3(y, filters, 1, plan, f"{name}_conv2")
  y = _batchnorm(f"{name}_bn2")(y)
  if strides != 1 or x.shape[-1] != filters:
    shortcut = _conv(filters, 1, strides, "valid", plan,
                     f"{name}_downsample_0")(x)
    shortcut = _batchnorm(f"{name}_downsample_1")(shortcut)
  y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
  return keras.layers.ReLU(name=f"{name}_relu2")(y)


def resnet18_features(inputs, plan, stem="imagenet", width=64):
  """The ResNet-18 trunk: ``{"C1": stem output, "C2": ..., "C5": ...}``.

  ``C{s+1}`` is the output of stage ``layer{s}`` (strides 4, 8, 16, 32 with
  the ImageNet stem); RetinaNet takes C3-C5 (xiao2018 §3.2). ``plan`` is a
  :class:`tfbio.models.FeedbackPlan`; layer names as in :func:`resnet18`.
  ``width`` is the stem's and ``layer1``'s filters (64 in ResNet-18; the
  stages have ``width × (1, 2, 4, 8)``).
  """
  checks.one_of("stem", stem, STEMS)
  checks.positive_int("width", width)
  if stem == "imagenet":
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = _conv(width, 7, 2, "valid", plan, "conv1")(x)
  else:
    x = _conv(width, 3, 1, "same", plan, "conv1")(inputs)
  x = _batchnorm("bn1")(x)
  x = keras.layers.ReLU(name="relu")(x)
  features = {"C1": x}
  if stem == "imagenet":
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="maxpool")(x)
  for stage, multiple in enumerate((1, 2, 4, 8), start=1):
    filters = width * multiple
    for block in range(2):
      strides = 2 if stage > 1 and block == 0 else 1
      x = _basic_block(x, filters, strides, plan, f"layer{stage}_{block}")
    features[f"C{stage + 1}"] = x
  return features


@register_model(source="xiao2018 §3.1 (torchvision ResNet-18)",
                input_shape=(224, 224, 3), num_classes=1000,
                small_input_shape=(32, 32, 3), reference_params=11_689_512)
def resnet18(num_classes=1000, input_shape=(224, 224, 3), *, stem="imagenet",
             feedback="bp", last_layer=None, overrides=None, width=64):
  """ResNet-18 (He et al. 2016; torchvision layout) as used by xiao2018 §3.1.

  ::

      stem "imagenet": conv1 7x7/2 64 (pad 3) - bn1 - relu - maxpool 3x3/2
                       (pad 1)                       224x224 -> 56x56x64
      stem "cifar":    conv1 3x3/1 64 (pad 1) - bn1 - relu, no max pool
                                                     32x32 -> 32x32x64
      layer1..layer4:  2 BasicBlocks each, 64/128/256/512 filters, stride
                       1/2/2/2 in the first block of a stage
      avgpool:         global average pool
      fc:              Dense num_classes (the classifier, logits)

  A BasicBlock is ``conv3x3 - BN - ReLU - conv3x3 - BN``, added to the
  shortcut, then ReLU; the shortcut is the identity, or a 1x1 strided conv
  plus BN (``downsample``) where the shape changes. Convs have no bias (BN
  follows). BN as torchvision (``epsilon=1e-5``, ``momentum=0.9``, learnable
  gamma and beta). Padding matches torchvision exactly: explicit
  ``ZeroPadding2D`` for the stem conv, the max pool (after a ReLU, so zero
  padding is the same as torchvision's -inf) and every stride-2 3x3 conv.

  Initialisation as torchvision and xiao2018 (their ``fa`` draws ``B`` from
  the same initializers): conv kernels He normal, fan-out
  (``VarianceScaling(2.0, "fan_out", "untruncated_normal")``); the classifier
  kernel ``U(-1/sqrt(512), 1/sqrt(512))`` (``VarianceScaling(1/3, "fan_in",
  "uniform")``) and its bias from the same ``U(-1/sqrt(512), 1/sqrt(512))``
  (torchvision's ``nn.Linear``; a ``VarianceScaling`` initializer on the bias
  would read the bias length as its fan-in).

  Layer names (stable; torchvision's with ``.`` -> ``_``): ``conv1``,
  ``bn1``, ``relu``, ``maxpool`` (ImageNet stem; also ``conv1_pad``,
  ``maxpool_pad``), ``layer{s}_{b}_conv1``, ``layer{s}_{b}_bn1``,
  ``layer{s}_{b}_relu1``, ``layer{s}_{b}_conv2``, ``layer{s}_{b}_bn2``,
  ``layer{s}_{b}_downsample_0`` (conv), ``layer{s}_{b}_downsample_1`` (BN),
  ``layer{s}_{b}_add``, ``layer{s}_{b}_relu2`` for stage ``s`` in 1..4 and
  block ``b`` in 0..1 (``layer{s}_0_conv1_pad`` before the stride-2 convs),
  ``avgpool``, ``fc`` (the classifier).

  Example:

  >>> model = tfbio.models.resnet18(feedback="ss", last_layer="bp")
  >>> model.get_layer("fc").feedback.name
  'bp'

  Args:
    num_classes: units of the classifier ``fc``.
    input_shape: ``(height, width, channels)``, channels last.
    stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool, for 224x224 inputs)
      or ``"cifar"`` (3x3/1 conv, no pool, for 32x32 inputs).
    feedback: feedback algorithm of every conv and dense layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: feedback algorithm of the classifier ``fc`` only; None means
      ``feedback``. ``feedback="ss", last_layer="bp"`` is xiao2018's
      "SS + last layer BP".
    overrides: ``{layer name or regex: algorithm}`` (wins over both).
    width: filters of the stem and ``layer1`` (64, the paper's ResNet-18);
      the four stages have ``width × (1, 2, 4, 8)`` and the classifier's
      fan-in is ``8 × width``. A smaller width (e.g. 16) gives the same
      topology at a CPU-sized cost (tools/reproduce.py's "small ResNet").

  Returns:
    A ``keras.Model`` named ``"resnet18"`` that outputs logits.
  """
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  x = resnet18_features(inputs, plan, stem, width)["C5"]
  x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  bound = 1.0 / math.sqrt(x.shape[-1])
  outputs = layers.Dense(
      num_classes,
      kernel_initializer=keras.initializers.VarianceScaling(
          1.0 / 3.0, "fan_in", "uniform"),
      bias_initializer=keras.initializers.RandomUniform(-bound, bound),
      feedback=plan("fc", classifier=True), name="fc")(x)
  return plan.finish(keras.Model(inputs, outputs, name="resnet18"))


@register_model(source=("xiao2018 §3.1 / docs/algorithms.md §4 "
                        "(ResNet-18, CIFAR stem)"),
                input_shape=(32, 32, 3), num_classes=10)
def resnet18_cifar(num_classes=10, input_shape=(32, 32, 3), *,
                   feedback="bp", last_layer=None, overrides=None, width=64):
  """:func:`resnet18` with the CIFAR stem (3x3/1 conv, no max pool).

  The small-image variant of docs/algorithms.md §4 (11,173,962 trainable
  parameters at 10 classes); same layer names as :func:`resnet18` without
  ``conv1_pad``, ``maxpool_pad`` and ``maxpool``. ``width`` as in
  :func:`resnet18`.
  """
  return resnet18(num_classes, input_shape, stem="cifar", feedback=feedback,
                  last_layer=last_layer, overrides=overrides, width=width)
