"""The networks of liao2016 ("How important is weight symmetry in BP?").

Liao, Leibo & Poggio, AAAI 2016 (seed ``liao2016-weight-symmetry.txt``),
Table 1: "AxBxC/D means C feature maps of size AxB, with stride D. The
CIFAR10&100 architecture has a 2 units zero-padding for every convolution
layer and 1 unit right-bottom zero-padding for every pooling layer. The other
models do not have paddings. ... Rectified linear units (ReLU) are used as
nonlinearities for all models."

Batch normalization (liao2016 §3; ``batchnorm=True``) has no learnable
scale/shift and test-time statistics as exponential moving averages with
alpha = 0.05 (Keras ``momentum=0.95``); it sits between every hidden conv/FC
layer and its ReLU (those layers then have no bias, which the mean
subtraction would cancel). The classifier's logits are not normalized.

Initialisation (the paper does not state it): He normal fan-out for conv
kernels and ``U(-1/sqrt(n_in), 1/sqrt(n_in))`` for dense kernels (xiao2018),
the scales that the ``ss`` feedback assumes (docs/algorithms.md §1); zero
biases.

Layer names (every network): ``conv{i}``, ``conv{i}_bn``, ``conv{i}_relu``,
``pool{i}`` (with ``pool{i}_pad`` for the CIFAR network), ``flatten``,
``fc{j}``, ``fc{j}_bn``, ``fc{j}_relu``; the last ``fc{j}`` is the classifier.
"""

import keras

from tfbio import layers
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["liao2016_cifar", "liao2016_mnist", "liao2016_others",
           "liao2016_svhn", "liao2016_timit"]


def _conv_initializer():
  # He normal, fan-out (xiao2018): the scale that `ss` assumes for conv layers
  # (docs/algorithms.md §1), so that sign-symmetry feeds back at the init
  # scale.
  return keras.initializers.VarianceScaling(2.0, "fan_out",
                                            "untruncated_normal")


def _dense_initializer():
  # U(-1/sqrt(n_in), 1/sqrt(n_in)): the dense scale that `ss` assumes.
  return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _build(name, num_classes, input_shape, feedback, last_layer, overrides,
           batchnorm, convs, fcs, conv_padding="valid", pool_pad=False):
  """Builds a Table 1 column.

  Args:
    convs: ``[(kernel, filters, stride, pool)]`` with ``pool`` ``None`` or
      ``("max"|"avg", size, stride)``.
    fcs: hidden FC widths; the classifier (``num_classes``) follows.
    conv_padding: ``"valid"`` or ``"same"`` (CIFAR: 2 units at 5x5/1).
    pool_pad: 1 unit right-bottom zero padding before every pool (CIFAR).
  """
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape,
                             rank=3 if convs else None)
  checks.boolean("batchnorm", batchnorm)
  plan = FeedbackPlan(feedback, last_layer, overrides)

  def hidden(x, layer):
    x = layer(x)
    if batchnorm:
      x = layers.affine_free_batch_norm(f"{layer.name}_bn")(x)
    return keras.layers.ReLU(name=f"{layer.name}_relu")(x)

  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  for i, (kernel, filters, stride, pool) in enumerate(convs, start=1):
    if min(x.shape[1], x.shape[2]) < kernel:
      raise ValueError(f"input_shape={input_shape} is too small for {name}: "
                       f"conv{i} ({kernel}x{kernel}) sees a "
                       f"{x.shape[1]}x{x.shape[2]} map.")
    x = hidden(x, layers.Conv2D(
        filters, kernel, strides=stride, padding=conv_padding,
        use_bias=not batchnorm, kernel_initializer=_conv_initializer(),
        feedback=plan(f"conv{i}"), name=f"conv{i}"))
    if pool is not None:
      kind, size, pool_stride = pool
      if pool_pad:
        x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)),
                                       name=f"pool{i}_pad")(x)
      pool_cls = (keras.layers.MaxPooling2D if kind == "max"
                  else keras.layers.AveragePooling2D)
      x = pool_cls(size, pool_stride, name=f"pool{i}")(x)
  if len(x.shape) > 2:
    x = keras.layers.Flatten(name="flatten")(x)
  for j, units in enumerate(fcs, start=1):
    x = hidden(x, layers.Dense(units, use_bias=not batchnorm,
                               kernel_initializer=_dense_initializer(),
                               feedback=plan(f"fc{j}"), name=f"fc{j}"))
  last = f"fc{len(fcs) + 1}"
  outputs = layers.Dense(num_classes, kernel_initializer=_dense_initializer(),
                         feedback=plan(last, classifier=True), name=last)(x)
  return plan.finish(keras.Model(inputs, outputs, name=name))


@register_model(source="liao2016 Table 1, MNIST column",
                input_shape=(28, 28, 1), num_classes=10,
                reference_params=431_080)
def liao2016_mnist(num_classes=10, input_shape=(28, 28, 1), *, feedback="bp",
                   last_layer=None, overrides=None, batchnorm=False):
  """liao2016's MNIST network (Table 1, "MNIST" column).

  ::

      conv1  Conv 5x5x20/1 + ReLU     28x28x1 -> 24x24x20
      pool1  Max-Pool 2x2/2                   -> 12x12x20
      conv2  Conv 5x5x50/1 + ReLU             -> 8x8x50
      pool2  Max-Pool 2x2/2                   -> 4x4x50
      fc1    FC 500 + ReLU                    -> 500
      fc2    FC num_classes (classifier)

  431,080 trainable parameters at 10 classes, as Caffe's and MatConvNet's
  LeNet (the reference count of the registry).

  Args:
    num_classes: classes.
    input_shape: ``(height, width, channels)``.
    feedback, last_layer, overrides: the per-layer feedback spec
      (``tfbio.models.create_model``).
    batchnorm: liao2016's affine-free batch norm after each hidden layer.
  """
  return _build("liao2016_mnist", num_classes, input_shape, feedback,
                last_layer, overrides, batchnorm,
                convs=[(5, 20, 1, ("max", 2, 2)), (5, 50, 1, ("max", 2, 2))],
                fcs=[500])


@register_model(source="liao2016 Table 1, CIFAR10&100 column",
                input_shape=(32, 32, 3), num_classes=10)
def liao2016_cifar(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
                   last_layer=None, overrides=None, batchnorm=False):
  """liao2016's CIFAR-10/100 network (Table 1, "CIFAR10&100" column).

  ::

      conv1  Conv 5x5x32/1, pad 2 + ReLU   32x32x3 -> 32x32x32
      pool1  Max-Pool 3x3/2, pad 1 right-bottom   -> 16x16x32
      conv2  Conv 5x5x64/1, pad 2 + ReLU          -> 16x16x64
      pool2  Avg-Pool 3x3/2, pad 1 right-bottom   -> 8x8x64
      conv3  Conv 5x5x64/1, pad 2 + ReLU          -> 8x8x64
      pool3  Avg-Pool 3x3/2, pad 1 right-bottom   -> 4x4x64
      fc1    FC 128 + ReLU                         -> 128
      fc2    FC num_classes (10 or 100; classifier)

  The 2-unit conv padding is ``padding="same"`` (5x5, stride 1); the pooling
  padding is an explicit ``ZeroPadding2D`` (``pool{i}_pad``), so the average
  pools count the padded zeros (as MatConvNet's do).
  """
  return _build("liao2016_cifar", num_classes, input_shape, feedback,
                last_layer, overrides, batchnorm,
                convs=[(5, 32, 1, ("max", 3, 2)), (5, 64, 1, ("avg", 3, 2)),
                       (5, 64, 1, ("avg", 3, 2))],
                fcs=[128], conv_padding="same", pool_pad=True)


@register_model(source="liao2016 Table 1, SVHN column",
                input_shape=(32, 32, 3), num_classes=10)
def liao2016_svhn(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
                  last_layer=None, overrides=None, batchnorm=False):
  """liao2016's SVHN network (Table 1, "SVHN" column).

  ::

      conv1  Conv 5x5x20/1 + ReLU     32x32x3 -> 28x28x20
      pool1  Max-Pool 2x2/2                   -> 14x14x20
      conv2  Conv 7x7x512/1 + ReLU            -> 8x8x512
      pool2  Max-Pool 2x2/2                   -> 4x4x512
      fc1    FC 40 + ReLU                     -> 40
      fc2    FC num_classes (classifier)
  """
  return _build("liao2016_svhn", num_classes, input_shape, feedback,
                last_layer, overrides, batchnorm,
                convs=[(5, 20, 1, ("max", 2, 2)), (7, 512, 1, ("max", 2, 2))],
                fcs=[40])


@register_model(source="liao2016 Table 1, 'All others' column",
                input_shape=(119, 119, 3), num_classes=102,
                small_input_shape=(48, 48, 3))
def liao2016_others(num_classes=102, input_shape=(119, 119, 3), *,
                    feedback="bp", last_layer=None, overrides=None,
                    batchnorm=False):
  """liao2016's network for "all others" (Table 1, 119x119x3 inputs).

  Used for STL10, Caltech101/256, iCub, Flowers, faces and scenes; the
  hidden FC widths depend on the number of classes ``C``::

      conv1  Conv 9x9x48/2 + ReLU     119x119x3 -> 56x56x48
      pool1  Max-Pool 2x2/2                     -> 28x28x48
      conv2  Conv 5x5x128/1 + ReLU              -> 24x24x128
      pool2  Max-Pool 2x2/2                     -> 12x12x128
      fc1    FC max(256, 3C) + ReLU
      fc2    FC 2C + ReLU
      fc3    FC C (classifier)
  """
  checks.positive_int("num_classes", num_classes)
  return _build("liao2016_others", num_classes, input_shape, feedback,
                last_layer, overrides, batchnorm,
                convs=[(9, 48, 2, ("max", 2, 2)), (5, 128, 1, ("max", 2, 2))],
                fcs=[max(256, 3 * num_classes), 2 * num_classes])


@register_model(source="liao2016 Table 1, TIMIT-80 column",
                input_shape=(1845,), num_classes=80)
def liao2016_timit(num_classes=80, input_shape=(1845,), *, feedback="bp",
                   last_layer=None, overrides=None, batchnorm=False):
  """liao2016's fully-connected TIMIT-80 network (Table 1, "TIMIT-80").

  ::

      input  1845 features ("1845x1x1"; any shape, flattened)
      fc1    FC 512 + ReLU
      fc2    FC 256 + ReLU
      fc3    FC num_classes (80; classifier)
  """
  return _build("liao2016_timit", num_classes, input_shape, feedback, last_layer,
                overrides, batchnorm, convs=[], fcs=[512, 256])
