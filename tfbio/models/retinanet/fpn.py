"""Feature pyramid (Lin et al. 2017, FPN) as RetinaNet uses it, P3-P7.

RetinaNet (Lin et al. 2017, "Focal loss", §4 "Feature Pyramid Network
Backbone"), as in xiao2018 §3.2:

* ``P5, P4, P3``: 1x1 lateral convs on ``C5, C4, C3`` (``fpn_lateral{l}``);
  top-down, the coarser level is upsampled 2x (nearest neighbour,
  ``fpn_upsample{l}``; cropped bottom/right by ``fpn_crop{l}`` when the
  finer map is odd-sized) and added (``fpn_add{l}``); then a 3x3 conv
  (``fpn_output{l}``).
* ``P6``: 3x3 stride-2 conv on **C5** (the paper's choice; Detectron2's
  later default uses P5), ``fpn_p6`` after ``fpn_p6_pad``.
* ``P7``: ReLU (``fpn_p7_relu``) then a 3x3 stride-2 conv on P6, ``fpn_p7``
  after ``fpn_p7_pad``.

Every level has 256 channels. Every conv is a tfbio feedback layer with its
algorithm from the model's ``FeedbackPlan`` (hidden layers). Stride-2 convs
pad 1 pixel on every side (``ZeroPadding2D``) as PyTorch implementations do,
rather than TensorFlow's bottom/right ``"same"`` padding. Kernels use
Detectron's ``c2_xavier_fill`` (``VarianceScaling(1.0, "fan_in",
"uniform")``), biases 0.
"""

import keras

from tfbio import layers

__all__ = ["FPN_CHANNELS", "build_fpn"]

FPN_CHANNELS = 256


def _xavier_fill():
  # Caffe2's XavierFill / Detectron2's c2_xavier_fill: U(±sqrt(3 / fan_in)).
  return keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")


def _conv(filters, kernel_size, strides, padding, plan, name):
  return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                       kernel_initializer=_xavier_fill(),
                       bias_initializer="zeros", feedback=plan(name),
                       data_format="channels_last", name=name)


def _upsample_to(x, reference, level):
  """2x nearest upsampling of ``x``, cropped to ``reference``'s size."""
  x = keras.layers.UpSampling2D(2, interpolation="nearest",
                                name=f"fpn_upsample{level}")(x)
  extra_h = x.shape[1] - reference.shape[1]
  extra_w = x.shape[2] - reference.shape[2]
  if extra_h or extra_w:
    x = keras.layers.Cropping2D(((0, extra_h), (0, extra_w)),
                                name=f"fpn_crop{level}")(x)
  return x


def build_fpn(features, plan, channels=FPN_CHANNELS):
  """P3-P7 from C3-C5.

  Args:
    features: ``{"C3", "C4", "C5"}`` tensors (e.g. from
      :func:`tfbio.models.retinanet.backbone.resnet18_backbone`).
    plan: the model's :class:`tfbio.models.FeedbackPlan`.
    channels: channels of every level (256 in the paper).

  Returns:
    ``[P3, P4, P5, P6, P7]``, finest first (strides 8..128 with the ImageNet
    stem).
  """
  laterals = {l: _conv(channels, 1, 1, "valid", plan, f"fpn_lateral{l}")(
      features[f"C{l}"]) for l in (3, 4, 5)}
  merged = {5: laterals[5]}
  for level in (4, 3):
    top_down = _upsample_to(merged[level + 1], laterals[level], level)
    merged[level] = keras.layers.Add(name=f"fpn_add{level}")(
        [laterals[level], top_down])
  outputs = [_conv(channels, 3, 1, "same", plan, f"fpn_output{l}")(merged[l])
             for l in (3, 4, 5)]
  x = keras.layers.ZeroPadding2D(1, name="fpn_p6_pad")(features["C5"])
  p6 = _conv(channels, 3, 2, "valid", plan, "fpn_p6")(x)
  x = keras.layers.ReLU(name="fpn_p7_relu")(p6)
  x = keras.layers.ZeroPadding2D(1, name="fpn_p7_pad")(x)
  p7 = _conv(channels, 3, 2, "valid", plan, "fpn_p7")(x)
  return outputs + [p6, p7]
