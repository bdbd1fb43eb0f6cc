"""The networks of liao2016 ("How important is weight symmetry in BP?").

Liao, Leibo & Poggio, AAAI 2016 (seed ``liao2016-weight-symmetry.txt``),
Table 1: "AxBxC/D means C feature maps of size AxB, with stride D ... The
other models [than CIFAR] do not have paddings ... Rectified linear units
(ReLU) are used as nonlinearities for all models." Batch normalization
(liao2016 §3) has no learnable scale/shift except in the paper's "BN" and
"BN+BM" baselines, and its test-time statistics are exponential moving
averages with alpha = 0.05 (Keras ``momentum=0.95``).
"""

import keras

from tfbio import feedback as feedback_lib
from tfbio import layers


def _conv_initializer():
  # He normal, fan-out (xiao2018): the scale that `ss` assumes for conv layers
  # (SPEC §1), so that sign-symmetry feeds back at the init scale.
  return keras.initializers.VarianceScaling(2.0, "fan_out",
                                            "untruncated_normal")


def _dense_initializer():
  # U(-1/sqrt(n_in), 1/sqrt(n_in)): the dense scale that `ss` assumes.
  return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def liao2016_mnist(num_classes=10, input_shape=(28, 28, 1), feedback="bp",
                   last_layer=None, batchnorm=False):
  """liao2016's MNIST network (Table 1, "MNIST" column).

  ::

      conv1  Conv 5x5x20/1   (valid) + ReLU      28x28x1 -> 24x24x20
      pool1  Max-Pool 2x2/2                               -> 12x12x20
      conv2  Conv 5x5x50/1   (valid) + ReLU               -> 8x8x50
      pool2  Max-Pool 2x2/2                               -> 4x4x50
      fc1    FC 500 + ReLU                                -> 500
      fc2    FC num_classes (the classifier, logits)

  With ``batchnorm=True`` an affine-free ``BatchNormalization`` (no gamma or
  beta, ``momentum=0.95``: liao2016's EMA with alpha 0.05) sits between each
  hidden conv/FC layer and its ReLU, and those layers have no bias (the mean
  subtraction would cancel it). The classifier's logits are not normalized.

  Layer names (stable): ``conv1``, ``conv1_bn``, ``conv1_relu``, ``pool1``,
  ``conv2``, ``conv2_bn``, ``conv2_relu``, ``pool2``, ``flatten``, ``fc1``,
  ``fc1_bn``, ``fc1_relu``, ``fc2`` (the classifier); ``*_bn`` only with
  ``batchnorm=True``.

  Initialisation (the paper does not state it): He normal fan-out for conv
  kernels and ``U(-1/sqrt(n_in), 1/sqrt(n_in))`` for dense kernels (xiao2018),
  the scales that the ``ss`` feedback assumes; zero biases.

  Example:

  >>> model = tfbio.models.liao2016_mnist(feedback="usf", batchnorm=True)
  >>> model.output_shape
  (None, 10)

  Args:
    num_classes: units of the classifier ``fc2``.
    input_shape: ``(height, width, channels)``, channels last.
    feedback: feedback algorithm of every conv/FC layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: feedback algorithm of the classifier ``fc2`` only; None
      means ``feedback``.
    batchnorm: add liao2016's affine-free batch norm after each hidden layer.

  Returns:
    A ``keras.Model`` named ``"liao2016_mnist"`` that outputs logits.
  """
  feedback = feedback_lib.get(feedback)
  last_layer = feedback if last_layer is None else feedback_lib.get(last_layer)
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int. Received: "
                     f"num_classes={num_classes!r}")

  def hidden(x, layer, name):
    x = layer(x)
    if batchnorm:
      x = layers.affine_free_batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)

  def conv(filters, name):
    return layers.Conv2D(filters, 5, padding="valid", use_bias=not batchnorm,
                         kernel_initializer=_conv_initializer(),
                         feedback=feedback, data_format="channels_last",
                         name=name)

  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = hidden(inputs, conv(20, "conv1"), "conv1")
  x = keras.layers.MaxPooling2D(2, 2, name="pool1")(x)
  x = hidden(x, conv(50, "conv2"), "conv2")
  x = keras.layers.MaxPooling2D(2, 2, name="pool2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = hidden(x, layers.Dense(500, use_bias=not batchnorm,
                             kernel_initializer=_dense_initializer(),
                             feedback=feedback, name="fc1"), "fc1")
  outputs = layers.Dense(num_classes, kernel_initializer=_dense_initializer(),
                         feedback=last_layer, name="fc2")(x)
  return keras.Model(inputs, outputs, name="liao2016_mnist")

