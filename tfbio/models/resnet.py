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

from tfbio import feedback as feedback_lib
from tfbio import layers

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


def _conv(filters, kernel_size, strides, padding, feedback, name):
  return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                       use_bias=False, kernel_initializer=_conv_initializer(),
                       feedback=feedback, data_format="channels_last",
                       name=name)


def _conv3x3(x, filters, strides, feedback, name):
  """3x3 conv with torchvision's symmetric padding 1.

  ``padding="same"`` equals it at stride 1; at stride 2 TensorFlow would pad
  only bottom/right, so the stride-2 convs pad explicitly (``{name}_pad``).
  """
  if strides == 1:
    return _conv(filters, 3, 1, "same", feedback, name)(x)
  x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
  return _conv(filters, 3, strides, "valid", feedback, name)(x)


def _basic_block(x, filters, strides, feedback, name):
  """torchvision's ``BasicBlock`` (expansion 1), post-activation."""
  shortcut = x
  y = _conv3x3(x, filters, strides, feedback, f"{name}_conv1")
  y = _batchnorm(f"{name}_bn1")(y)
  y = keras.layers.ReLU(name=f"{name}_relu1")(y)
  y = _conv3x3(y, filters, 1, feedback, f"{name}_conv2")
  y = _batchnorm(f"{name}_bn2")(y)
  if strides != 1 or x.shape[-1] != filters:
    shortcut = _conv(filters, 1, strides, "valid", feedback,
                     f"{name}_downsample_0")(x)
    shortcut = _batchnorm(f"{name}_downsample_1")(shortcut)
  y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
  return keras.layers.ReLU(name=f"{name}_relu2")(y)


def resnet18(num_classes=1000, input_shape=(224, 224, 3), stem="imagenet",
             feedback="bp", last_layer=None):
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

  Returns:
    A ``keras.Model`` named ``"resnet18"`` that outputs logits.
  """
  if stem not in STEMS:
    raise ValueError(f"stem must be one of {STEMS}. Received: stem={stem!r}")
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int. Received: "
                     f"num_classes={num_classes!r}")
  feedback = feedback_lib.get(feedback)
  last_layer = feedback if last_layer is None else feedback_lib.get(last_layer)

  inputs = keras.Input(shape=tuple(input_shape), name="image")
  if stem == "imagenet":
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = _conv(64, 7, 2, "valid", feedback, "conv1")(x)
  else:
    x = _conv(64, 3, 1, "same", feedback, "conv1")(inputs)
  x = _batchnorm("bn1")(x)
  x = keras.layers.ReLU(name="relu")(x)
  if stem == "imagenet":
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="maxpool")(x)

  for stage, filters in enumerate((64, 128, 256, 512), start=1):
    for block in range(2):
      strides = 2 if stage > 1 and block == 0 else 1
      x = _basic_block(x, filters, strides, feedback,
                       f"layer{stage}_{block}")

  x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  bound = 1.0 / math.sqrt(x.shape[-1])
  outputs = layers.Dense(
      num_classes,
      kernel_initializer=keras.initializers.VarianceScaling(
          1.0 / 3.0, "fan_in", "uniform"),
      bias_initializer=keras.initializers.RandomUniform(-bound, bound),
      feedback=last_layer, name="fc")(x)
  return keras.Model(inputs, outputs, name="resnet18")
