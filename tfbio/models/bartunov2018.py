"""The networks of bartunov2018 ("Assessing the scalability of
biologically-motivated deep learning algorithms and architectures").

Bartunov, Santoro, Richards, Hinton & Lillicrap, 2018 (seed
``bartunov2018-target-propagation.txt``), §3: fully-connected (FC) and
locally-connected (LC) stacks for MNIST (§3.1), CIFAR-10 (§3.2) and ImageNet
(§3.3). Common to all (bartunov2018 §3):

* "All layers are initialized using the method of Glorot & Bengio (2010)":
  Glorot uniform kernels, zero biases (the bias init is not stated);
* "In all networks we used the hyperbolic tangent as a nonlinearity between
  layers": tanh after every hidden layer;
* "a stack of locally-connected layers specified as (receptive field size,
  number of output channels, stride, padding) followed by an output softmax
  layer": the stack is flattened (or, on ImageNet, spatially averaged) into
  the classifier ``output`` (Dense ``num_classes``), which outputs logits
  (the softmax lives in the loss).

Target propagation (docs/algorithms.md §6) trains layer ``l`` as
``h_l = f_l(h_{l-1}) = tanh(W_l h_{l-1} + b_l)``, so every hidden layer is
ONE Keras feedback layer with ``activation="tanh"`` built in (no separate
Activation layer): hidden layer ``l`` is the model layer named ``fc{l}`` /
``lc{l}``. The only parameter-free layers between them are ``flatten`` and,
on ImageNet, the average pools ``pool{k}``.

``conv=True`` builds "the convolutional analog of the LC network" (§3.2):
``tfbio.layers.Conv2D`` with identical geometry (kernel, filters, stride,
padding) in place of every ``tfbio.layers.LocallyConnected2D``; the layers
keep their ``lc{l}`` names so that configs and overrides apply to both.
"""

import keras

from tfbio import layers
from tfbio.layers.locally_connected import IMPLEMENTATIONS
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = [
    "bartunov2018_mnist_fc", "bartunov2018_cifar_fc",
    "bartunov2018_mnist_lc", "bartunov2018_cifar_lc",
    "bartunov2018_imagenet_lc",
]

# (receptive field, output channels, stride, padding), as in the text; the
# string "pool" is a 3x3 / stride 2 VALID average pool (ImageNet only).
_LC_ARCHITECTURES = {
    "bartunov2018_mnist_lc": (
        (3, 32, 2, "same"), (3, 16, 1, "same"), (3, 16, 1, "same"),
        (3, 10, 1, "valid"),
    ),
    "bartunov2018_cifar_lc": (
        (3, 32, 2, "same"), (3, 32, 2, "same"), (3, 16, 1, "same"),
        (3, 16, 2, "same"), (1, 10, 1, "same"),
    ),
    "bartunov2018_imagenet_lc": (
        (9, 48, 4, "same"), "pool", (5, 64, 1, "same"), "pool",
        (3, 96, 1, "same"), "pool", (3, 128, 1, "same"),
    ),
}


def _check_fc_input_shape(input_shape):
  """``(h, w, c)`` images or ``(features,)`` vectors; ValueError otherwise."""
  try:
    rank = len(input_shape)
  except TypeError:
    rank = 3
  return checks.shape("input_shape", input_shape,
                      rank=1 if rank == 1 else 3)


def _fc(model_name, units, depth, num_classes, input_shape, feedback,
        last_layer, overrides):
  """``depth`` tanh Dense layers of ``units`` (``fc1``..), then ``output``."""
  checks.positive_int("num_classes", num_classes)
  input_shape = _check_fc_input_shape(input_shape)
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  x = keras.layers.Flatten(name="flatten")(inputs)
  for l in range(1, depth + 1):
    x = layers.Dense(units, activation="tanh",
                     kernel_initializer="glorot_uniform",
                     bias_initializer="zeros", feedback=plan(f"fc{l}"),
                     name=f"fc{l}")(x)
  outputs = layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                         bias_initializer="zeros",
                         feedback=plan("output", classifier=True),
                         name="output")(x)
  return plan.finish(keras.Model(inputs, outputs, name=model_name))


def _lc(model_name, num_classes, input_shape, feedback, last_layer, overrides,
        conv, lc_implementation):
  """The LC stack ``_LC_ARCHITECTURES[model_name]``, then ``output``."""
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  checks.boolean("conv", conv)
  checks.one_of("lc_implementation", lc_implementation, IMPLEMENTATIONS)
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  n_lc = n_pool = 0
  for spec in _LC_ARCHITECTURES[model_name]:
    if spec == "pool":
      n_pool += 1
      x = keras.layers.AveragePooling2D(3, strides=2, padding="valid",
                                        name=f"pool{n_pool}")(x)
      continue
    n_lc += 1
    name = f"lc{n_lc}"
    size, filters, stride, padding = spec
    common = dict(strides=stride, padding=padding, activation="tanh",
                  kernel_initializer="glorot_uniform",
                  bias_initializer="zeros", feedback=plan(name), name=name)
    if conv:
      layer = layers.Conv2D(filters, size, data_format="channels_last",
                            **common)
    else:
      layer = layers.LocallyConnected2D(filters, size,
                                        implementation=lc_implementation,
                                        **common)
    x = layer(x)
  if n_pool:
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  else:
    x = keras.layers.Flatten(name="flatten")(x)
  outputs = layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                         bias_initializer="zeros",
                         feedback=plan("output", classifier=True),
                         name="output")(x)
  return plan.finish(keras.Model(inputs, outputs, name=model_name))


_FC_ARGS_DOC = """
  Args:
    num_classes: units of the classifier ``output``.
    input_shape: ``(height, width, channels)`` (flattened by the model) or
      ``(features,)``.
    feedback: feedback algorithm of every Dense layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: feedback algorithm of the classifier ``output`` only; None
      means ``feedback``.
    overrides: ``{layer name or regex: algorithm}``; wins over
      ``last_layer`` and ``feedback``.

  Returns:
    A ``keras.Model`` named ``"{name}"`` that outputs logits.

  Raises:
    ValueError: a bad option (the message quotes it), an unknown algorithm,
      or an ``overrides`` key that matches no feedback layer.
"""

_LC_ARGS_DOC = """
  Args:
    num_classes: units of the classifier ``output``.
    input_shape: ``(height, width, channels)``, channels last.
    feedback: feedback algorithm of every LC / conv / Dense layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: feedback algorithm of the classifier ``output`` only; None
      means ``feedback``.
    overrides: ``{layer name or regex: algorithm}``; wins over
      ``last_layer`` and ``feedback``.
    conv: True builds the convolutional analog (``tfbio.layers.Conv2D``,
      same geometry and names) instead of locally-connected layers.
    lc_implementation: ``"auto"``, ``"dense"`` or ``"sparse"``
      (``tfbio.layers.LocallyConnected2D``); ignored with ``conv=True``.

  Returns:
    A ``keras.Model`` named ``"{name}"`` that outputs logits.

  Raises:
    ValueError: a bad option (the message quotes it), an unknown algorithm,
      or an ``overrides`` key that matches no feedback layer.
"""


@register_model(source="bartunov2018 §3.1, MNIST fully-connected network",
                input_shape=(28, 28, 1), num_classes=10)
def bartunov2018_mnist_fc(num_classes=10, input_shape=(28, 28, 1), *,
                          feedback="bp", last_layer=None, overrides=None):
  """bartunov2018's MNIST fully-connected network (§3.1).

  "a network from the original DTP paper (Lee et al., 2015), consisting of 7
  hidden layers with 240 units per layer".

  ::

      layer          what                              output (28x28x1 in)
      flatten                                          784
      fc1 .. fc7     Dense 240, tanh (each)            240
      output         Dense num_classes (logits)        10

  537,850 trainable parameters at the defaults.
  """
  return _fc("bartunov2018_mnist_fc", 240, 7, num_classes, input_shape,
             feedback, last_layer, overrides)


@register_model(source="bartunov2018 §3.2, CIFAR-10 fully-connected network",
                input_shape=(32, 32, 3), num_classes=10)
def bartunov2018_cifar_fc(num_classes=10, input_shape=(32, 32, 3), *,
                          feedback="bp", last_layer=None, overrides=None):
  """bartunov2018's CIFAR-10 fully-connected network (§3.2).

  "a fully-connected network with 3 hidden layers of 1024 units".

  ::

      layer          what                              output (32x32x3 in)
      flatten                                          3072
      fc1 .. fc3     Dense 1024, tanh (each)           1024
      output         Dense num_classes (logits)        10

  5,256,202 trainable parameters at the defaults.
  """
  return _fc("bartunov2018_cifar_fc", 1024, 3, num_classes, input_shape,
             feedback, last_layer, overrides)


@register_model(source="bartunov2018 §3.1, MNIST locally-connected network",
                input_shape=(28, 28, 1), num_classes=10)
def bartunov2018_mnist_lc(num_classes=10, input_shape=(28, 28, 1), *,
                          feedback="bp", last_layer=None, overrides=None,
                          conv=False, lc_implementation="auto"):
  """bartunov2018's MNIST locally-connected network (§3.1).

  "4 hidden layers ... (3 × 3, 32, 2, SAME), (3 × 3, 16, 1, SAME),
  (3 × 3, 16, 1, SAME), (3 × 3, 10, 1, VALID)", then the output layer.

  ::

      layer    what                                    output (28x28x1 in)
      lc1      LC 3x3, 32, stride 2, SAME, tanh        14x14x32
      lc2      LC 3x3, 16, stride 1, SAME, tanh        14x14x16
      lc3      LC 3x3, 16, stride 1, SAME, tanh        14x14x16
      lc4      LC 3x3, 10, stride 1, VALID, tanh       12x12x10
      flatten                                          1440
      output   Dense num_classes (logits)              10

  1,646,954 trainable parameters at the defaults (LC; per-position biases).
  """
  return _lc("bartunov2018_mnist_lc", num_classes, input_shape, feedback,
             last_layer, overrides, conv, lc_implementation)


@register_model(source="bartunov2018 §3.2, CIFAR-10 locally-connected network",
                input_shape=(32, 32, 3), num_classes=10)
def bartunov2018_cifar_lc(num_classes=10, input_shape=(32, 32, 3), *,
                          feedback="bp", last_layer=None, overrides=None,
                          conv=False, lc_implementation="auto"):
  """bartunov2018's CIFAR-10 locally-connected network (§3.2).

  "a 5-layer network with locally-connected layers having the following
  structure: (3 × 3, 32, 2, SAME), (3 × 3, 32, 2, SAME), (3 × 3, 16, 1,
  SAME), (3 × 3, 16, 2, SAME), (1 × 1, 10, 1, SAME)"; ``conv=True`` is its
  "convolutional analog".

  ::

      layer    what                                    output (32x32x3 in)
      lc1      LC 3x3, 32, stride 2, SAME, tanh        16x16x32
      lc2      LC 3x3, 32, stride 2, SAME, tanh        8x8x32
      lc3      LC 3x3, 16, stride 1, SAME, tanh        8x8x16
      lc4      LC 3x3, 16, stride 2, SAME, tanh        4x4x16
      lc5      LC 1x1, 10, stride 1, SAME, tanh        4x4x10
      flatten                                          160
      output   Dense num_classes (logits)              10

  1,158,634 trainable parameters at the defaults (LC).
  """
  return _lc("bartunov2018_cifar_lc", num_classes, input_shape, feedback,
             last_layer, overrides, conv, lc_implementation)


@register_model(source="bartunov2018 §3.3, ImageNet locally-connected network",
                input_shape=(224, 224, 3), num_classes=1000,
                small_input_shape=(64, 64, 3))
def bartunov2018_imagenet_lc(num_classes=1000, input_shape=(224, 224, 3), *,
                             feedback="bp", last_layer=None, overrides=None,
                             conv=False, lc_implementation="auto"):
  """bartunov2018's ImageNet locally-connected network (§3.3).

  "(9 × 9, 48, 4, SAME), pooling, (5 × 5, 64, 1, SAME), pooling, (3 × 3,
  96, 1, SAME), pooling, (3 × 3, 128, 1, SAME), spatial 6 × 6 average. Here
  every pooling layer is an average pooling with 3 × 3 receptive field."

  ::

      layer    what                                    output (224x224x3 in)
      lc1      LC 9x9, 48, stride 4, SAME, tanh        56x56x48
      pool1    AvgPool 3x3, stride 2, VALID            27x27x48
      lc2      LC 5x5, 64, stride 1, SAME, tanh        27x27x64
      pool2    AvgPool 3x3, stride 2, VALID            13x13x64
      lc3      LC 3x3, 96, stride 1, SAME, tanh        13x13x96
      pool3    AvgPool 3x3, stride 2, VALID            6x6x96
      lc4      LC 3x3, 128, stride 1, SAME, tanh       6x6x128
      avgpool  global average ("spatial 6x6 average")  128
      output   Dense num_classes (logits)              1000

  Interpretations: the pools' stride (not given) is 2 with VALID padding,
  the only common choice that leaves the stated 6x6 map at 224x224 (56 ->
  27 -> 13 -> 6); "spatial 6x6 average" is a global average pool, which is
  the 6x6 average at 224x224 and still defined at other sizes. Inputs need
  at least 57x57 (``small_input_shape`` 64x64: 16 -> 7 -> 3 -> 1).

  106,238,856 trainable parameters at the defaults (LC; 99.9% of them in
  the per-position filters); ~0.42 GB of float32 weights before any
  feedback state, so build it at 224x224 only where memory allows.
  """
  return _lc("bartunov2018_imagenet_lc", num_classes, input_shape, feedback,
             last_layer, overrides, conv, lc_implementation)


for _builder, _doc in ((bartunov2018_mnist_fc, _FC_ARGS_DOC),
                       (bartunov2018_cifar_fc, _FC_ARGS_DOC),
                       (bartunov2018_mnist_lc, _LC_ARGS_DOC),
                       (bartunov2018_cifar_lc, _LC_ARGS_DOC),
                       (bartunov2018_imagenet_lc, _LC_ARGS_DOC)):
  if _builder.__doc__:  # None under python -OO.
    _builder.__doc__ += _doc.replace("{name}", _builder.__name__)
del _builder, _doc
