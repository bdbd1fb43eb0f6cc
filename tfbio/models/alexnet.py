"""AlexNet in torchvision's layout with batch norm, as xiao2018 §3.1 trains it.

xiao2018 §3.1: "We used a version of AlexNet (Krizhevsky, 2014, as used in
torchvision) and slightly modified it to have batch normalization layers after
every convolutional and fully-connected layer." With ``batchnorm=False`` the
network is torchvision's ``alexnet`` exactly (61,100,840 trainable parameters
at 1,000 classes).
"""

import math

import keras

from tfbio import layers
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["alexnet"]

# (name, filters, kernel, stride, padding, max pool after it)
_FEATURES = (
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
)


def _torch_default_initializer(fan_in):
  # torch.nn.Conv2d / nn.Linear default: kaiming_uniform(a=sqrt(5)) for the
  # kernel = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias uses the same bound.
  bound = 1.0 / math.sqrt(fan_in)
  return keras.initializers.RandomUniform(-bound, bound)


@register_model(source="xiao2018 §3.1 (torchvision AlexNet + BN)",
                input_shape=(224, 224, 3), num_classes=1000,
                small_input_shape=(64, 64, 3), reference_params=61_100_840,
                reference_kwargs={"batchnorm": False})
def alexnet(num_classes=1000, input_shape=(224, 224, 3), *, feedback="bp",
            last_layer=None, overrides=None, batchnorm=True, dropout=0.5):
  """AlexNet (torchvision layout), batch norm after every conv and FC layer.

  ::

      conv1 11x11/4 64 (pad 2) - [bn] - relu - pool1 3x3/2   224 -> 27x27x64
      conv2 5x5 192 (pad 2)    - [bn] - relu - pool2 3x3/2       -> 13x13x192
      conv3 3x3 384 (pad 1)    - [bn] - relu                     -> 13x13x384
      conv4 3x3 256 (pad 1)    - [bn] - relu                     -> 13x13x256
      conv5 3x3 256 (pad 1)    - [bn] - relu - pool5 3x3/2       -> 6x6x256
      avgpool  adaptive average pool to 6x6 (identity at 224x224; a 1, 2
               or 3 wide map is replicated, as torchvision does)
      flatten - drop6 - fc6 4096 - [bn] - relu                   -> 4096
              - drop7 - fc7 4096 - [bn] - relu                   -> 4096
      fc8  Dense num_classes (the classifier, logits)

  ``[bn]`` (``batchnorm=True``, xiao2018's modification): Keras
  ``BatchNormalization`` with learnable scale and shift and torchvision's
  ``epsilon=1e-5``, ``momentum=0.9``, after every conv and hidden FC layer
  (not after the logits); the layers keep their biases so that the layout
  (and weight porting) stays torchvision's. Initialisation as PyTorch's
  defaults, ``U(±1/sqrt(fan_in))`` for kernels and biases.

  Layer names (stable): ``conv1_pad``, ``conv1``, ``conv1_bn``,
  ``conv1_relu``, ``pool1``, ... ``conv5_relu``, ``pool5``, ``avgpool``,
  ``flatten``, ``drop6``, ``fc6``, ``fc6_bn``, ``fc6_relu``, ``drop7``,
  ``fc7``, ``fc7_bn``, ``fc7_relu``, ``fc8`` (the classifier); ``*_bn`` only
  with ``batchnorm=True``, ``drop*`` only with ``dropout > 0``.

  Args:
    num_classes: units of the classifier ``fc8``.
    input_shape: ``(height, width, channels)``; the feature map before
      ``avgpool`` must be at least 1x1 (inputs of about 63x63 and more).
    feedback, last_layer, overrides: the per-layer feedback spec
      (``tfbio.models.create_model``).
    batchnorm: xiao2018's batch norm after every conv / hidden FC layer.
    dropout: rate of torchvision's two dropout layers (0 removes them).

  Returns:
    A ``keras.Model`` named ``"alexnet"`` that outputs logits.
  """
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  checks.boolean("batchnorm", batchnorm)
  if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
    raise ValueError(f"dropout must be in [0, 1). Received: "
                     f"dropout={dropout!r}")
  plan = FeedbackPlan(feedback, last_layer, overrides)

  def finish(x, name):
    if batchnorm:
      x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9,
                                          name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)

  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  for name, filters, kernel, stride, pad, pool in _FEATURES:
    fan_in = kernel * kernel * x.shape[-1]
    x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="valid",
        kernel_initializer=_torch_default_initializer(fan_in),
        bias_initializer=_torch_default_initializer(fan_in),
        feedback=plan(name), name=name)(x)
    x = finish(x, name)
    if pool:
      if min(x.shape[1], x.shape[2]) < 3:
        raise ValueError(f"input_shape={input_shape} is too small for "
                         f"AlexNet: the map before pool after {name} is "
                         f"{x.shape[1]}x{x.shape[2]}.")
      x = keras.layers.MaxPooling2D(3, 2, name=f"pool{name[-1]}")(x)
  side = min(x.shape[1], x.shape[2])
  if side >= 6:
    x = keras.layers.AdaptiveAveragePooling2D((6, 6), name="avgpool")(x)
  elif x.shape[1] == x.shape[2] and 6 % side == 0:
    # torchvision's adaptive pool replicates a smaller map (1, 2 or 3 wide).
    x = keras.layers.UpSampling2D(6 // side, name="avgpool")(x)
  else:
    raise ValueError(f"input_shape={input_shape} gives a "
                     f"{x.shape[1]}x{x.shape[2]} map before avgpool; use an "
                     "input whose map is at least 6x6 (224x224) or 1, 2 or 3 "
                     "wide (e.g. 64x64).")
  x = keras.layers.Flatten(name="flatten")(x)
  for name, units in (("fc6", 4096), ("fc7", 4096)):
    if dropout:
      x = keras.layers.Dropout(dropout, name=f"drop{name[-1]}")(x)
    init = _torch_default_initializer(x.shape[-1])
    x = layers.Dense(units, kernel_initializer=init, bias_initializer=init,
                     feedback=plan(name), name=name)(x)
    x = finish(x, name)
  init = _torch_default_initializer(x.shape[-1])
  outputs = layers.Dense(num_classes, kernel_initializer=init,
                         bias_initializer=init,
                         feedback=plan("fc8", classifier=True), name="fc8")(x)
  return plan.finish(keras.Model(inputs, outputs, name="alexnet"))
