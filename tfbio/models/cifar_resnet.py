"""The CIFAR ResNets of He et al. 2016 (§4.2), option-A shortcuts.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR
2016, §4.2 ("CIFAR-10 and Analysis"): "The first layer is 3×3 convolutions.
Then we use a stack of 6n layers with 3×3 convolutions on the feature maps of
sizes {32, 16, 8} respectively, with 2n layers for each feature map size. The
numbers of filters are {16, 32, 64} respectively. The subsampling is
performed by convolutions with a stride of 2. The network ends with a global
average pooling, a 10-way fully-connected layer, and softmax. ... When
shortcut connections are used, they are connected to the pairs of 3×3 layers
(totally 3n shortcuts). On this dataset we use identity shortcuts in all
cases (i.e., option A)". Published sizes: ResNet-20 0.27 M, ResNet-32
0.46 M, ResNet-56 0.85 M parameters (Table 6).

The layout is biotorch's ``biotorch/models/small_resnet.py`` (jsalbert/
biotorch, "based in the implementation by Yerlan Idelbayev",
akamaster/pytorch_resnet_cifar10), the network of biotorch's CIFAR-10
ResNet-20/56 benchmark: 269,722 / 464,154 / 853,018 trainable parameters
at 10 classes for n = 3 / 5 / 9 (BN gamma and beta counted).

:class:`ShortcutA` (``"tfbio>ShortcutA"``) is the option-A shortcut as a
small registered layer, so that ``.keras`` files load in Keras' safe mode
(which refuses ``Lambda`` layers); it is registered when ``tfbio.models`` is
imported, so import it before ``keras.models.load_model``.

This module also holds the two weight initialisations shared with
``tfbio.models.le_net`` (:func:`initializers`).
"""

import math

import keras
from keras import ops

from tfbio import layers
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.models.resnet import _batchnorm
from tfbio.utils import checks

__all__ = ["ShortcutA", "cifar_resnet", "resnet20", "resnet32", "resnet56"]

INITS = ("kaiming", "xavier")


def initializers(init, fan_in):
  """``(kernel_initializer, bias_initializer)`` of a conv/dense layer.

  Args:
    init: ``"kaiming"``: akamaster's ``_weights_init``, i.e. PyTorch's
      ``kaiming_normal_`` with its defaults (He normal, fan-in, untruncated:
      ``VarianceScaling(2.0, "fan_in", "untruncated_normal")``) on every conv
      and linear kernel, biases as PyTorch's default
      ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. ``"xavier"``: biotorch's
      layers with ``init: "xavier"`` (the option of every biotorch benchmark
      config): Xavier (Glorot) uniform kernels and zero biases.
    fan_in: the layer's fan-in (``k*k*c_in`` or ``n_in``), for the bias
      bound.

  Returns:
    Two Keras initializers.
  """
  checks.one_of("init", init, INITS)
  if init == "xavier":
    return keras.initializers.GlorotUniform(), keras.initializers.Zeros()
  bound = 1.0 / math.sqrt(fan_in)
  return (keras.initializers.VarianceScaling(2.0, "fan_in",
                                             "untruncated_normal"),
          keras.initializers.RandomUniform(-bound, bound))


@keras.saving.register_keras_serializable(package="tfbio")
class ShortcutA(keras.layers.Layer):
  """He et al.'s option-A shortcut: subsample, then zero-pad the channels.

  ``y = pad_channels(x[:, ::s, ::s, :])`` with ``filters - c_in`` zero
  channels, half (rounded down) before and the rest after the input's, as
  akamaster's / biotorch's ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0,
  planes // 4, planes // 4))`` (16 -> 32 channels: 8 zeros, the 16 input
  channels, 8 zeros). No parameters; the gradient is exact (it has no ``W``
  to replace).

  Args:
    filters: output channels (``>= c_in``).
    strides: spatial subsampling step (2 in the CIFAR ResNets).
    **kwargs: ``keras.layers.Layer`` arguments.
  """

  def __init__(self, filters, strides=2, **kwargs):
    super().__init__(**kwargs)
    self.filters = checks.positive_int("filters", filters)
    self.strides = checks.positive_int("strides", strides)

  def _pads(self, channels):
    extra = self.filters - channels
    if extra < 0:
      raise ValueError(f"ShortcutA {self.name!r} cannot map {channels} "
                       f"channels to filters={self.filters}.")
    return extra // 2, extra - extra // 2

  def build(self, input_shape):
    self._pads(input_shape[-1])

  def call(self, inputs):
    s = self.strides
    x = inputs[:, ::s, ::s, :]
    before, after = self._pads(x.shape[-1])
    return ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]])

  def compute_output_shape(self, input_shape):
    spatial = tuple(None if n is None else -(-n // self.strides)
                    for n in input_shape[1:3])
    return (input_shape[0],) + spatial + (self.filters,)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters,
            "strides": self.strides}


def _conv3x3(x, filters, strides, init, plan, name):
  """3x3 conv, no bias, PyTorch's symmetric padding 1 (explicit at stride 2).

  TensorFlow's ``"same"`` pads only bottom/right at stride 2, hence the
  ``{name}_pad`` ``ZeroPadding2D`` there.
  """
  if strides > 1:
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
  kernel_init, _ = initializers(init, 9 * x.shape[-1])
  return layers.Conv2D(
      filters, 3, strides=strides, padding="same" if strides == 1 else "valid",
      use_bias=False, kernel_initializer=kernel_init, feedback=plan(name),
      name=name)(x)


def _block(x, filters, strides, init, plan, name):
  """biotorch's ``BasicBlock`` with ``option="A"`` (post-activation)."""
  y = _conv3x3(x, filters, strides, init, plan, f"{name}_conv1")
  y = keras.layers.ReLU(name=f"{name}_relu1")(_batchnorm(f"{name}_bn1")(y))
  y = _conv3x3(y, filters, 1, init, plan, f"{name}_conv2")
  y = _batchnorm(f"{name}_bn2")(y)
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = ShortcutA(filters, strides, name=f"{name}_shortcut")(x)
  y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
  return keras.layers.ReLU(name=f"{name}_relu2")(y)


def cifar_resnet(depth, num_classes=10, input_shape=(32, 32, 3), *,
                 feedback="bp", last_layer=None, overrides=None,
                 init="kaiming"):
  """The CIFAR ResNet with ``depth = 6n + 2`` layers (He et al. 2016 §4.2).

  ::

      conv1   3x3/1 16, pad 1, no bias - bn1 - relu   32x32x3 -> 32x32x16
      layer1  n BasicBlocks, 16 filters, stride 1             -> 32x32x16
      layer2  n BasicBlocks, 32 filters, stride 2 in block 0  -> 16x16x32
      layer3  n BasicBlocks, 64 filters, stride 2 in block 0  -> 8x8x64
      avgpool global average pool                             -> 64
      fc      Dense num_classes (the classifier, logits, with bias)

  A BasicBlock is ``conv3x3 - BN - ReLU - conv3x3 - BN``, plus the shortcut,
  then ReLU; the shortcut is the identity, or :class:`ShortcutA` (option A:
  stride-2 subsampling and zero channels, no parameters) in block 0 of
  layer2 and layer3. Every conv is followed by BN (PyTorch's defaults:
  ``epsilon=1e-5``, ``momentum=0.9`` in Keras' convention, learnable gamma
  and beta); convs have no bias. The stride-2 convs pad 1 on every side, as
  PyTorch (explicit ``ZeroPadding2D``), so activations match the PyTorch
  model position by position. Trainable parameters at 10 classes:
  ``464 + 4672 n + (13952 + 18560 (n-1)) + (55552 + 73984 (n-1)) + 650``.

  Initialisation (``init``, see :func:`initializers`): ``"kaiming"`` (the
  default) is akamaster's ``_weights_init`` (He normal fan-in kernels for
  every conv and the classifier; classifier bias PyTorch's
  ``U(±1/sqrt(64))``); ``"xavier"`` is what biotorch's ResNet-20/56
  benchmark runs use (its layers re-initialise with ``init: "xavier"``:
  Xavier uniform kernels, zero bias; biotorch's ``small_resnet.py`` itself
  has no init function). ``fa``/``urfb`` draw ``B`` from the same kernel
  initializer. BN starts at gamma 1, beta 0.

  Layer names (akamaster's with ``.`` -> ``_``; ``fc`` as biotorch):
  ``conv1``, ``bn1``, ``relu``, ``layer{s}_{b}_conv1`` (with
  ``layer{s}_0_conv1_pad`` for s = 2, 3), ``layer{s}_{b}_bn1``,
  ``layer{s}_{b}_relu1``, ``layer{s}_{b}_conv2``, ``layer{s}_{b}_bn2``,
  ``layer{s}_0_shortcut`` (s = 2, 3), ``layer{s}_{b}_add``,
  ``layer{s}_{b}_relu2`` for stage s in 1..3 and block b in 0..n-1,
  ``avgpool``, ``fc`` (the classifier).

  Args:
    depth: ``6n + 2`` (20, 32, 44, 56, 110, ...).
    num_classes: units of the classifier ``fc``.
    input_shape: ``(height, width, channels)``; any size (the pool is
      global), 32x32x3 for CIFAR.
    feedback: algorithm of every conv and of ``fc`` (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: algorithm of ``fc`` only (None: ``feedback``).
    overrides: ``{layer name or regex: algorithm}`` (wins over both).
    init: ``"kaiming"`` or ``"xavier"`` (above).

  Returns:
    A ``keras.Model`` named ``f"resnet{depth}"`` that outputs logits.

  Raises:
    ValueError: ``depth`` is not ``6n + 2`` with ``n >= 1``, or a bad
      argument.
  """
  depth = checks.positive_int("depth", depth)
  if depth < 8 or (depth - 2) % 6:
    raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 56, ...). "
                     f"Received: depth={depth!r}")
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  checks.one_of("init", init, INITS)
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  x = _conv3x3(inputs, 16, 1, init, plan, "conv1")
  x = keras.layers.ReLU(name="relu")(_batchnorm("bn1")(x))
  for stage, filters in enumerate((16, 32, 64), start=1):
    for block in range((depth - 2) // 6):
      strides = 2 if stage > 1 and block == 0 else 1
      x = _block(x, filters, strides, init, plan, f"layer{stage}_{block}")
  x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  kernel_init, bias_init = initializers(init, x.shape[-1])
  outputs = layers.Dense(num_classes, kernel_initializer=kernel_init,
                         bias_initializer=bias_init,
                         feedback=plan("fc", classifier=True), name="fc")(x)
  return plan.finish(keras.Model(inputs, outputs, name=f"resnet{depth}"))


def _registered(depth, params, paper_params, note=""):
  """Registers ``resnet{depth}``: :func:`cifar_resnet` at that depth."""

  def builder(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
              last_layer=None, overrides=None, init="kaiming"):
    return cifar_resnet(depth, num_classes, input_shape, feedback=feedback,
                        last_layer=last_layer, overrides=overrides, init=init)

  builder.__name__ = builder.__qualname__ = f"resnet{depth}"
  builder.__doc__ = (
      f"ResNet-{depth} (n = {(depth - 2) // 6}): :func:`cifar_resnet` with "
      f"``depth={depth}``.\n\n  {paper_params} parameters in He et al. 2016 "
      f"Table 6; {params:,} trainable at 10 classes (akamaster / biotorch)."
      f"{note}\n")
  return register_model(
      builder, source=(f"He et al. 2016 §4.2 (CIFAR ResNet-{depth}, option A;"
                       f" biotorch small_resnet.py / akamaster layout)"),
      input_shape=(32, 32, 3), num_classes=10, small_input_shape=(8, 8, 3),
      reference_params=params)


_BENCHMARK = " biotorch's CIFAR-10 benchmark network."
resnet20 = _registered(20, 269_722, "0.27 M", _BENCHMARK)
resnet32 = _registered(32, 464_154, "0.46 M")
resnet56 = _registered(56, 853_018, "0.85 M", _BENCHMARK)
