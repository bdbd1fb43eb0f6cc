"""biotorch's LeNets (Sanfiz & Akrout 2021), with feedback layers.

The networks of biotorch's benchmark tables (its Benchmarks.md: "The model
used to compare is LeNet MNIST" for MNIST and Fashion-MNIST; "LeNet CIFAR10"
for CIFAR-10), reproduced from ``biotorch/models/le_net.py`` of
jsalbert/biotorch (the version at commit b07962b0, read from the stored
public source: ``LeNetMNIST``/``le_net_mnist`` and ``LeNetCIFAR``/
``le_net_cifar``; it is the version that defines ``le_net_cifar``, which
biotorch's ``models/<mode>/le_net.py`` wrappers and its
``benchmark_configs/cifar10/le_net`` configs use. An earlier version has no
ReLU between ``fc1`` and ``fc2`` of the MNIST network).

Interpretations:

* Input 32x32: biotorch resizes every dataset to the config's
  ``target_size`` (``transforms.Resize``, 32 for these networks; MNIST and
  Fashion-MNIST images are *resized* from 28 to 32, not padded); the MNIST
  network needs 32x32 for ``conv3`` to see a 5x5 map.
* ``num_classes``: biotorch's ``le_net_mnist``/``le_net_cifar`` ignore it
  (always 10); here it sets the classifier's units.
* ``LeNetCIFAR`` pools with ``F.avg_pool2d(out, out.size()[3])``, a global
  average pool for square maps: ``GlobalAveragePooling2D`` here.
* Initialisation: biotorch's layers re-initialise every conv/linear with the
  mode's ``init`` option; every benchmark config uses ``init: "xavier"``:
  Xavier (Glorot) uniform kernels and zero biases (the default here;
  ``init="kaiming"`` as ``tfbio.models.cifar_resnet.initializers``).

Layer names (biotorch's): ``conv{i}``, ``relu{i}``, ``pool{i}``,
``flatten`` (MNIST) or ``avgpool`` (CIFAR), ``fc1``, ``relu4``, ``fc2`` (the
classifier).
"""

import keras

from tfbio import layers
from tfbio.models.cifar_resnet import initializers
from tfbio.models.cifar_resnet import INITS
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["le_net_cifar", "le_net_mnist"]


def _build(name, num_classes, input_shape, feedback, last_layer, overrides,
           init, convs, hidden, global_pool):
  """``convs``: ``[(kernel, filters)]``, each valid/1 + ReLU (+ 2x2 max pool
  after all but the last); then flatten or global average pool, ``fc1``
  (``hidden`` units) + ReLU, ``fc2`` (the classifier)."""
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  checks.one_of("init", init, INITS)
  plan = FeedbackPlan(feedback, last_layer, overrides)

  def dense(x, units, layer_name, classifier=False):
    kernel_init, bias_init = initializers(init, x.shape[-1])
    return layers.Dense(units, kernel_initializer=kernel_init,
                        bias_initializer=bias_init,
                        feedback=plan(layer_name, classifier=classifier),
                        name=layer_name)(x)

  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  for i, (kernel, filters) in enumerate(convs, start=1):
    if min(x.shape[1], x.shape[2]) < kernel:
      raise ValueError(f"input_shape={input_shape} is too small for {name}: "
                       f"conv{i} ({kernel}x{kernel}) sees a "
                       f"{x.shape[1]}x{x.shape[2]} map.")
    kernel_init, bias_init = initializers(init, kernel * kernel * x.shape[-1])
    x = layers.Conv2D(filters, kernel, kernel_initializer=kernel_init,
                      bias_initializer=bias_init, feedback=plan(f"conv{i}"),
                      name=f"conv{i}")(x)
    x = keras.layers.ReLU(name=f"relu{i}")(x)
    if i < len(convs):
      x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
  if global_pool:
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
  else:
    x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.ReLU(name="relu4")(dense(x, hidden, "fc1"))
  outputs = dense(x, num_classes, "fc2", classifier=True)
  return plan.finish(keras.Model(inputs, outputs, name=name))


@register_model(source=("biotorch Benchmarks.md MNIST/Fashion-MNIST "
                        "(biotorch/models/le_net.py LeNetMNIST)"),
                input_shape=(32, 32, 1), num_classes=10,
                reference_params=61_706)
def le_net_mnist(num_classes=10, input_shape=(32, 32, 1), *, feedback="bp",
                 last_layer=None, overrides=None, init="xavier"):
  """biotorch's ``le_net_mnist`` (LeNet-5 layout, ReLU, max pools).

  ::

      conv1  Conv 5x5x6/1 + ReLU      32x32x1 -> 28x28x6
      pool1  Max-Pool 2x2/2                   -> 14x14x6
      conv2  Conv 5x5x16/1 + ReLU             -> 10x10x16
      pool2  Max-Pool 2x2/2                   -> 5x5x16
      conv3  Conv 5x5x120/1 + ReLU            -> 1x1x120
      flatten                                 -> 120
      fc1    FC 84 + ReLU (relu4)             -> 84
      fc2    FC num_classes (classifier)

  61,706 trainable parameters at 10 classes (156 + 2,416 + 48,120 + 10,164
  + 850; LeNet-5's well-known count). Needs a 32x32 input (MNIST resized to
  32, as biotorch's ``target_size: 32``).

  Args:
    num_classes: classes.
    input_shape: ``(height, width, channels)``, at least 32x32 (a larger
      input flattens a larger ``conv3`` map).
    feedback, last_layer, overrides: the per-layer feedback spec
      (``tfbio.models.create_model``).
    init: ``"xavier"`` (biotorch's benchmark configs) or ``"kaiming"``.
  """
  return _build("le_net_mnist", num_classes, input_shape, feedback,
                last_layer, overrides, init, convs=[(5, 6), (5, 16), (5, 120)],
                hidden=84, global_pool=False)


@register_model(source=("biotorch Benchmarks.md CIFAR-10 "
                        "(biotorch/models/le_net.py LeNetCIFAR)"),
                input_shape=(32, 32, 3), num_classes=10,
                small_input_shape=(18, 18, 3), reference_params=128_842)
def le_net_cifar(num_classes=10, input_shape=(32, 32, 3), *, feedback="bp",
                 last_layer=None, overrides=None, init="xavier"):
  """biotorch's ``le_net_cifar`` (3x3 convs, global average pool).

  ::

      conv1   Conv 3x3x32/1 + ReLU    32x32x3 -> 30x30x32
      pool1   Max-Pool 2x2/2                  -> 15x15x32
      conv2   Conv 3x3x64/1 + ReLU            -> 13x13x64
      pool2   Max-Pool 2x2/2 (floor)          -> 6x6x64
      conv3   Conv 3x3x128/1 + ReLU           -> 4x4x128
      avgpool global average pool             -> 128
      fc1     FC 256 + ReLU (relu4)           -> 256
      fc2     FC num_classes (classifier)

  128,842 trainable parameters at 10 classes (896 + 18,496 + 73,856 +
  33,024 + 2,570).

  Args:
    num_classes, input_shape, feedback, last_layer, overrides, init: as
      :func:`le_net_mnist`; any input of at least 18x18.
  """
  return _build("le_net_cifar", num_classes, input_shape, feedback,
                last_layer, overrides, init,
                convs=[(3, 32), (3, 64), (3, 128)], hidden=256,
                global_pool=True)
