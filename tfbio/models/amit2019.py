"""The networks of amit2019 ("Deep learning with asymmetric connections").

Amit, Frontiers in Computational Neuroscience 2019 (seed
``amit2019-urfb-hebbian.txt``), §4 and §4.1: ``simpnet``, ``deepnet``,
``deepernet`` (residual ``SUM`` layers) and ``deepnet_s``, for 32x32x3
CIFAR-10/100 images. Common to all four (amit2019 §4):

* convolutions are SAME, stride 1 ("Conv 32 5x5 ... producing 32 output
  arrays of dimension 32x32");
* the saturated linearity ``σ(x) = min(max(x, -1), 1)``
  (``tfbio.activations.saturated_linear``) after every conv and "Full"
  layer, built into the feedback layer; the output layer is linear (logits
  for the multi-class hinge loss of amit2019 §3.2, or softmax
  cross-entropy);
* "Maxpool 3": "at each pixel the maximal value in the 3x3 window centered
  at that pixel ... and then only every second pixel is recorded" (32 ->
  16): here ``MaxPooling2D(3, strides=2, padding="same")``; "maxpool 3,
  stride 3" and "maxpool 2, stride 2" as stated, also SAME;
* "Drop .8": "a random subset of 80% of the pixels in each array are set to
  0": ``keras.layers.Dropout(0.8)`` (rate = the written number);
* Glorot uniform kernels ("All our weights are initialized based on the
  method described in Glorot and Bengio (2010)"), zero biases, in every
  layer including the output;
* no normalisation layers ("We make a point to avoid any adaptive
  normalization layers").

Options shared by the four builders:

* ``untied``: amit2019 §4.1's "untied" (locally-connected) layers:
  ``True`` or ``"all"`` replaces every conv by a
  ``tfbio.layers.LocallyConnected2D`` of the same filters / kernel /
  padding / stride (same layer name, same output shape); a list of conv
  names unties only those (for the ``deepnet_s`` recipe "train tied,
  freeze layer 1, retrain the rest untied", combined with ``tfbio.untie``
  by a config). ``lc_implementation`` is forwarded to the LC layers.
* ``density``: amit2019 §4 "pruning the forward and backward connections
  randomly by 50%": ``density=d`` passes ``density=d`` and
  ``feedback_density=d`` (two independent fixed random masks, for ``W`` and
  for ``B``) to every feedback layer, the output included.
* ``dropout=False`` leaves the dropout layers out (debugging, tests).
"""

import keras

from tfbio import activations
from tfbio import layers
from tfbio.layers.locally_connected import IMPLEMENTATIONS
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["simpnet", "deepnet", "deepernet", "deepnet_s"]

# Architectures as in the text, one tuple per layer:
#   ("conv", name, filters, kernel)   SAME, stride 1, saturated linearity
#   ("sum", name)                     Add of the two previous convs' outputs
#   ("pool", name, window, stride)    max pool, SAME
#   ("drop", name, rate)              Dropout(rate)
#   ("full", name, units)             flatten + Dense, saturated linearity
# The classifier ``output`` (Dense num_classes, linear) always follows.
_ARCHITECTURES = {
    "simpnet": (
        ("conv", "conv1", 32, 5),
        ("pool", "pool1", 3, 2),
        ("drop", "drop1", 0.8),
        ("full", "fc1", 500),
        ("drop", "drop2", 0.3),
    ),
    "deepnet": (
        ("conv", "conv1", 32, 5),
        ("pool", "pool1", 3, 2),
        ("conv", "conv2", 32, 3),
        ("conv", "conv3", 32, 3),
        ("pool", "pool2", 3, 2),
        ("drop", "drop1", 0.8),
        ("conv", "conv4", 32, 3),
        ("conv", "conv5", 32, 3),
        ("pool", "pool3", 3, 2),
        ("drop", "drop2", 0.3),
        ("full", "fc1", 500),
    ),
    "deepernet": (
        ("conv", "conv1", 16, 3),
        ("conv", "conv2", 16, 3),
        ("sum", "sum1"),
        ("conv", "conv3", 32, 3),
        ("conv", "conv4", 32, 3),
        ("sum", "sum2"),
        ("pool", "pool1", 3, 2),
        ("drop", "drop1", 0.5),
        ("conv", "conv5", 64, 3),
        ("conv", "conv6", 64, 3),
        ("sum", "sum3"),
        ("pool", "pool2", 3, 2),
        ("conv", "conv7", 128, 3),
        ("conv", "conv8", 128, 3),
        ("sum", "sum4"),
        ("pool", "pool3", 3, 2),
        ("drop", "drop2", 0.8),
        ("full", "fc1", 500),
    ),
    "deepnet_s": (
        ("conv", "conv1", 16, 3),
        ("conv", "conv2", 16, 3),
        ("sum", "sum1"),
        ("pool", "pool1", 3, 3),
        ("drop", "drop1", 0.5),
        ("conv", "conv3", 64, 3),
        ("conv", "conv4", 64, 3),
        ("sum", "sum2"),
        ("pool", "pool2", 2, 2),
        ("conv", "conv5", 64, 2),
        ("conv", "conv6", 64, 2),
        ("sum", "sum3"),
        ("pool", "pool3", 2, 2),
        ("drop", "drop2", 0.5),
        ("full", "fc1", 500),
    ),
}


def conv_layer_names(name):
  """Names of the conv layers of amit2019 model ``name`` (what ``untied``
  may list), in order; e.g. ``conv_layer_names("simpnet") == ["conv1"]``."""
  return [spec[1] for spec in _ARCHITECTURES[name] if spec[0] == "conv"]


def _check_untied(untied, model_name):
  """The set of conv names to untie, or ValueError quoting ``untied``."""
  convs = conv_layer_names(model_name)
  if untied is False:
    return set()
  if untied is True or (isinstance(untied, str) and untied == "all"):
    return set(convs)
  if isinstance(untied, (list, tuple)) and all(
      isinstance(n, str) and n in convs for n in untied):
    return set(untied)
  raise ValueError(f"untied must be False, True, 'all' or a list of conv "
                   f"layer names of {model_name} ({', '.join(convs)}). "
                   f"Received: untied={untied!r}")


def _build(model_name, num_classes, input_shape, feedback, last_layer,
           overrides, untied, density, dropout, lc_implementation):
  """Builds ``_ARCHITECTURES[model_name]`` (see the module docstring)."""
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  untied_names = _check_untied(untied, model_name)
  density = checks.density("density", density)
  checks.boolean("dropout", dropout)
  checks.one_of("lc_implementation", lc_implementation, IMPLEMENTATIONS)
  plan = FeedbackPlan(feedback, last_layer, overrides)
  common = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros",
                density=density, feedback_density=density)

  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  conv_outputs = []
  for spec in _ARCHITECTURES[model_name]:
    kind, name = spec[0], spec[1]
    if kind == "conv":
      filters, size = spec[2], spec[3]
      if name in untied_names:
        layer = layers.LocallyConnected2D(
            filters, size, strides=1, padding="same",
            implementation=lc_implementation,
            activation=activations.saturated_linear, feedback=plan(name),
            name=name, **common)
      else:
        layer = layers.Conv2D(
            filters, size, strides=1, padding="same",
            data_format="channels_last",
            activation=activations.saturated_linear, feedback=plan(name),
            name=name, **common)
      x = layer(x)
      conv_outputs.append(x)
    elif kind == "sum":
      x = keras.layers.Add(name=name)(conv_outputs[-2:])
    elif kind == "pool":
      x = keras.layers.MaxPooling2D(spec[2], strides=spec[3], padding="same",
                                    name=name)(x)
    elif kind == "drop":
      if dropout:
        x = keras.layers.Dropout(spec[2], name=name)(x)
    else:  # "full"
      x = keras.layers.Flatten(name="flatten")(x)
      x = layers.Dense(spec[2], activation=activations.saturated_linear,
                       feedback=plan(name), name=name, **common)(x)
  outputs = layers.Dense(num_classes, feedback=plan("output", classifier=True),
                         name="output", **common)(x)
  return plan.finish(keras.Model(inputs, outputs, name=model_name))


_ARGS_DOC = """
  Args:
    num_classes: units of the classifier ``output``.
    input_shape: ``(height, width, channels)``, channels last.
    feedback: feedback algorithm of every conv / LC / FC layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: feedback algorithm of the classifier ``output`` only; None
      means ``feedback``.
    overrides: ``{layer name or regex: algorithm}``; wins over
      ``last_layer`` and ``feedback``.
    untied: False (all convs tied), True or ``"all"`` (every conv a
      ``tfbio.layers.LocallyConnected2D``), or a list of conv names to untie.
    density: fraction in (0, 1] of the forward connections (``density``) and,
      through an independent mask, of the feedback connections
      (``feedback_density``) kept in every feedback layer; amit2019 uses 0.5.
    dropout: False leaves out the dropout layers.
    lc_implementation: ``"auto"``, ``"dense"`` or ``"sparse"``, for the
      untied layers (``tfbio.layers.LocallyConnected2D``).

  Returns:
    A ``keras.Model`` named ``"{name}"`` that outputs logits.

  Raises:
    ValueError: a bad option (the message quotes it), an unknown algorithm,
      or an ``overrides`` key that matches no feedback layer.
"""


@register_model(source="amit2019 §4, simpnet", input_shape=(32, 32, 3),
                num_classes=10)
def simpnet(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
            last_layer=None, overrides=None, untied=False, density=1.0,
            dropout=True, lc_implementation="auto"):
  """amit2019's shallow network (§4, "simpnet"; untied in §4.1).

  "simpnet: Conv 32 5x5; Maxpool 3; Drop .8; Full 500; Drop .3; Output".

  ::

      layer    what                                   output (32x32x3 in)
      conv1    Conv 32 5x5, SAME, stride 1, σ         32x32x32
      pool1    MaxPool 3x3, stride 2, SAME            16x16x32
      drop1    Dropout(0.8)                           16x16x32
      flatten                                         8192
      fc1      Dense 500, σ                           500
      drop2    Dropout(0.3)                           500
      output   Dense num_classes, linear (logits)     10

  ``σ`` is the saturated linearity; see the module docstring for the
  conventions (padding, dropout, init, ``untied``, ``density``). 4,103,942
  trainable parameters at the defaults (tied).

  Example:

  >>> model = tfbio.models.simpnet(feedback="urfb", density=0.5)
  >>> model.get_layer("pool1").output.shape
  (None, 16, 16, 32)
  """
  return _build("simpnet", num_classes, input_shape, feedback, last_layer,
                overrides, untied, density, dropout, lc_implementation)


@register_model(source="amit2019 §4, deepnet", input_shape=(32, 32, 3),
                num_classes=10)
def deepnet(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
            last_layer=None, overrides=None, untied=False, density=1.0,
            dropout=True, lc_implementation="auto"):
  """amit2019's deep network (§4, "deepnet").

  "deepnet: Conv 32 5x5; Maxpool 3; Conv 32 3x3; Conv 32 3x3; Maxpool 3;
  Drop .8; Conv 32 3x3; Conv 32 3x3; Maxpool 3; Drop .3; Full 500; Output".

  ::

      layer    what                                   output (32x32x3 in)
      conv1    Conv 32 5x5, SAME, σ                   32x32x32
      pool1    MaxPool 3x3, stride 2, SAME            16x16x32
      conv2    Conv 32 3x3, SAME, σ                   16x16x32
      conv3    Conv 32 3x3, SAME, σ                   16x16x32
      pool2    MaxPool 3x3, stride 2, SAME            8x8x32
      drop1    Dropout(0.8)                           8x8x32
      conv4    Conv 32 3x3, SAME, σ                   8x8x32
      conv5    Conv 32 3x3, SAME, σ                   8x8x32
      pool3    MaxPool 3x3, stride 2, SAME            4x4x32
      drop2    Dropout(0.3)                           4x4x32
      flatten                                         512
      fc1      Dense 500, σ                           500
      output   Dense num_classes, linear (logits)     10

  As written, deepnet has no dropout between ``fc1`` and ``output`` (the
  text's "Drop .3" precedes "Full 500"). 300,934 trainable parameters at
  the defaults (tied).
  """
  return _build("deepnet", num_classes, input_shape, feedback, last_layer,
                overrides, untied, density, dropout, lc_implementation)


@register_model(source="amit2019 §4, deepernet", input_shape=(32, 32, 3),
                num_classes=10)
def deepernet(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
              last_layer=None, overrides=None, untied=False, density=1.0,
              dropout=True, lc_implementation="auto"):
  """amit2019's residual network (§4, "deepernet").

  "deepernet: conv 16 3x3; conv 16 3x3; SUM; conv 32 3x3; conv 32 3x3; SUM;
  maxpool 3; drop .5; conv 64 3x3; conv 64 3x3; SUM; maxpool 3; conv 128
  3x3; conv 128 3x3; SUM; maxpool 3; drop .8; full conn. 500; output".

  ``SUM``: "after every pair of consecutive convolutional layers at the same
  resolution we introduce a layer that adds the two previous layers with no
  trainable parameters". Interpretation: ``sumK = Add()([convA, convB])``,
  the post-activation outputs of the pair's two convs (the pair's channel
  counts agree, so no projection is needed); the next layer reads the sum.

  ::

      layer    what                                   output (32x32x3 in)
      conv1    Conv 16 3x3, SAME, σ                   32x32x16
      conv2    Conv 16 3x3, SAME, σ                   32x32x16
      sum1     Add(conv1, conv2)                      32x32x16
      conv3    Conv 32 3x3, SAME, σ                   32x32x32
      conv4    Conv 32 3x3, SAME, σ                   32x32x32
      sum2     Add(conv3, conv4)                      32x32x32
      pool1    MaxPool 3x3, stride 2, SAME            16x16x32
      drop1    Dropout(0.5)                           16x16x32
      conv5    Conv 64 3x3, SAME, σ                   16x16x64
      conv6    Conv 64 3x3, SAME, σ                   16x16x64
      sum3     Add(conv5, conv6)                      16x16x64
      pool2    MaxPool 3x3, stride 2, SAME            8x8x64
      conv7    Conv 128 3x3, SAME, σ                  8x8x128
      conv8    Conv 128 3x3, SAME, σ                  8x8x128
      sum4     Add(conv7, conv8)                      8x8x128
      pool3    MaxPool 3x3, stride 2, SAME            4x4x128
      drop2    Dropout(0.8)                           4x4x128
      flatten                                         2048
      fc1      Dense 500, σ                           500
      output   Dense num_classes, linear (logits)     10

  1,323,030 trainable parameters at the defaults (tied).
  """
  return _build("deepernet", num_classes, input_shape, feedback, last_layer,
                overrides, untied, density, dropout, lc_implementation)


@register_model(source="amit2019 §4.1, deepnet_s", input_shape=(32, 32, 3),
                num_classes=10)
def deepnet_s(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
              last_layer=None, overrides=None, untied=False, density=1.0,
              dropout=True, lc_implementation="auto"):
  """amit2019's network for the untied experiments (§4.1, "deepnet_s").

  "deepnet_s: conv 16 3x3; conv 16 3x3; SUM; maxpool 3, stride 3; drop .5;
  conv 64 3x3; conv 64 3x3; SUM; maxpool 2, stride 2; conv 64 2x2; conv 64
  2x2; SUM; maxpool 2, stride 2; drop .5; full conn. 500; output". ``SUM``
  as in :func:`deepernet`.

  ::

      layer    what                                   output (32x32x3 in)
      conv1    Conv 16 3x3, SAME, σ                   32x32x16
      conv2    Conv 16 3x3, SAME, σ                   32x32x16
      sum1     Add(conv1, conv2)                      32x32x16
      pool1    MaxPool 3x3, stride 3, SAME            11x11x16
      drop1    Dropout(0.5)                           11x11x16
      conv3    Conv 64 3x3, SAME, σ                   11x11x64
      conv4    Conv 64 3x3, SAME, σ                   11x11x64
      sum2     Add(conv3, conv4)                      11x11x64
      pool2    MaxPool 2x2, stride 2, SAME            6x6x64
      conv5    Conv 64 2x2, SAME, σ                   6x6x64
      conv6    Conv 64 2x2, SAME, σ                   6x6x64
      sum3     Add(conv5, conv6)                      6x6x64
      pool3    MaxPool 2x2, stride 2, SAME            3x3x64
      drop2    Dropout(0.5)                           3x3x64
      flatten                                         576
      fc1      Dense 500, σ                           500
      output   Dense num_classes, linear (logits)     10

  SAME padding at the odd sizes (32 -> 11 with stride 3, 11 -> 6) and for
  the 2x2 convs pads bottom/right only (TensorFlow's rule). amit2019 trains
  it tied for 100 epochs, then freezes ``conv1`` and retrains the rest
  untied ("the seven updated layers": conv2..conv6, fc1, output); build that
  with ``untied=["conv2", ..., "conv6"]`` or ``tfbio.untie``. 375,382
  trainable parameters at the defaults (tied).
  """
  return _build("deepnet_s", num_classes, input_shape, feedback, last_layer,
                overrides, untied, density, dropout, lc_implementation)


for _builder in (simpnet, deepnet, deepernet, deepnet_s):
  if _builder.__doc__:  # None under python -OO.
    _builder.__doc__ += _ARGS_DOC.replace("{name}", _builder.__name__)
del _builder
