"""Every keras.applications model through tfbio.convert (issue 15, item 6).

Each model is built offline (``weights=None``) at the smallest input Keras
accepts, with ``include_top=True, classes=10, classifier_activation=None``,
converted with ``tfbio.convert(model, "ss", strict=True)`` and trained for one
eager SGD step (batch 2). The default run covers one model for each kind of
layer and graph the conversion meets (``DEFAULT``: grouped convolutions,
squeeze-excitation and depthwise, depthwise-separable, Keras operations in
the graph, separable blocks with the initializer-scale SS; ~35 s on 2
cores); every other model is marked ``slow_apps`` and runs only with
``TFBIO_ALL_APPS=1`` (``make test-apps``; ResNet50 is also converted in
tests/test_convert.py). A model that builds but fails to convert or trains to
non-finite weights FAILS here; only a model that cannot be built is skipped.
"""

import collections
import gc
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio.convert import _walk

# Keras' minimum input side (obtain_input_shape's min_size with
# weights=None); every other model accepts 32x32.
_MIN_SIDE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
# One model per kind of layer / graph (the suite's time budget: DenseNet121,
# EfficientNetV2B0, InceptionV3, ResNet50V2 and VGG16 moved to slow_apps on
# 2026-12-04). ResNet50 and MobileNetV2 are converted in
# tests/test_convert.py too.
DEFAULT = ("ConvNeXtTiny", "EfficientNetB0", "MobileNet", "MobileNetV3Small",
           "Xception")
_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")

# Known failures, each a strict xfail (a fix makes the test fail until the
# entry is removed); measured 2026-12-03, see the README table.
# (None left: ConvNeXt's grouped Conv2D converts since tfbio's Conv2D
# supports groups.)
CONVERT_XFAIL = {}
_OVERFLOW = ("one SS step overflows: ss's scale sqrt(2/fan_out) is up to "
             "~27x the spread of the Glorot-initialised depthwise/separable "
             "kernels, and batch norm amplifies the SS gradient further "
             "(BP stays finite)")
_SMALL_BN = ("one SS step overflows at batch 2 and 32x32 (the last batch "
             "norms see 2 values per channel); finite at batch 8")
STEP_XFAIL = {"Xception": _OVERFLOW, "NASNetMobile": _OVERFLOW,
              "NASNetLarge": _OVERFLOW, "DenseNet169": _SMALL_BN,
              "DenseNet201": _SMALL_BN, "EfficientNetV2L": _SMALL_BN}
STEP_XFAIL.update(CONVERT_XFAIL)


def _constructors():
  """Every model constructor exported by keras.applications (and submodules)."""
  apps = keras.applications
  found = {n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n))}
  for module in vars(apps).values():
    if isinstance(module, types.ModuleType):
      found.update(n for n in dir(module) if n[:1].isupper()
                   and callable(getattr(module, n))
                   and not isinstance(getattr(module, n), type))
  return sorted(found)


NAMES = _constructors()


def _kernel_layers(model):
  """Layers (nested models walked) owning a kernel weight, counted as convert
  counts them: one per layer (a SeparableConv2D once for both kernels, a
  MultiHeadAttention once for its projections)."""
  return [layer for layer in _walk(model) if not isinstance(layer, keras.Model)
          and any(v.name in _KERNELS for v in layer.weights)]


def _size(weights):
  return sum(int(np.prod(v.shape)) for v in weights)


@pytest.fixture(scope="module",
                params=[pytest.param(n, id=n, marks=() if n in DEFAULT
                                     else pytest.mark.slow_apps)
                        for n in NAMES])
def app(request):
  """The model built, and its conversion (or the conversion's error)."""
  name, side = request.param, _MIN_SIDE.get(request.param, 32)
  keras.utils.clear_session(free_memory=True)
  gc.collect()
  keras.utils.set_random_seed(1234)
  try:
    base = getattr(keras.applications, name)(
        weights=None, include_top=True, classes=10, classifier_activation=None,
        input_shape=(side, side, 3))
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"{name} cannot be built offline at {side}x{side}x3: "
                f"{type(e).__name__}: {e}")
  result = types.SimpleNamespace(name=name, side=side, base=base, model=None,
                                 table=None, error=None)
  try:
    result.model, result.table = tfbio.convert(base, "ss", strict=True,
                                               return_table=True)
  except Exception as e:  # pylint: disable=broad-except
    result.error = f"{type(e).__name__}: {str(e)[:2000]}"
  yield result
  del result, base
  keras.utils.clear_session(free_memory=True)
  gc.collect()


def _converted(app):
  if app.error:
    pytest.fail(f"tfbio.convert({app.name}, 'ss', strict=True) failed: "
                f"{app.error}")
  return app.model, app.table


def test_every_application_is_listed():
  assert len(NAMES) >= 40, NAMES
  assert set(DEFAULT) <= set(NAMES)
  assert {"ResNet50", "ConvNeXtXLarge", "EfficientNetV2L", "MobileNetV3Large",
          "NASNetLarge", "DenseNet201", "InceptionV3", "Xception",
          "VGG19"} <= set(NAMES)


def test_converts_every_kernel_layer(app, request):
  if app.name in CONVERT_XFAIL:
    request.applymarker(pytest.mark.xfail(strict=True,
                                          reason=CONVERT_XFAIL[app.name]))
  model, table = _converted(app)
  expected = collections.Counter(type(layer).__name__
                                 for layer in _kernel_layers(app.base))
  assert expected, "no kernel layer found"
  converted = [row for row in table if row.status == "converted"]
  assert not [row for row in table if row.status.startswith("NOT CONVERTED")]
  assert {row.algorithm for row in converted} == {"ss"}
  assert len(converted) == sum(expected.values())
  assert collections.Counter(row.type.split(" -> ")[0]
                             for row in converted) == expected
  # No Keras kernel layer is left in the result; all are tfbio, all ss.
  feedback_types = (tfbio.layers.BaseFeedbackLayer,
                    tfbio.layers.FeedbackLayerMixin)
  kernel_layers = _kernel_layers(model)
  assert len(kernel_layers) == sum(expected.values())
  for layer in kernel_layers:
    assert isinstance(layer, feedback_types), layer.name
    assert layer.feedback.name == "ss", layer.name
  assert _size(model.trainable_weights) == _size(app.base.trainable_weights)


def test_one_ss_step(app, request):
  if app.name in STEP_XFAIL:
    request.applymarker(pytest.mark.xfail(strict=True,
                                          reason=STEP_XFAIL[app.name]))
  model, _ = _converted(app)
  _check_one_step(model, app.side)


def test_one_ss_step_at_the_initializers_scale(app):
  """The models whose SS step overflows at the papers' type formula train a
  finite step with ``ss:scale=initializer`` (s = each kernel's own
  initializer spread, docs/algorithms.md §1.1)."""
  if STEP_XFAIL.get(app.name) != _OVERFLOW:
    pytest.skip("only the models whose default SS step overflows")
  _check_one_step(tfbio.convert(app.base, "ss:scale=initializer",
                                strict=True), app.side)


def _check_one_step(model, side):
  kernels = [next(v for v in layer.weights if v.name in _KERNELS)
             for layer in _kernel_layers(model)]
  first, last = kernels[0].numpy(), kernels[-1].numpy()
  x = np.random.default_rng(0).uniform(
      0, 255, (2, side, side, 3)).astype("float32")
  with tf.GradientTape() as tape:
    loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        np.array([1, 7]), model(x, training=True), from_logits=True))
  grads = tape.gradient(loss, model.trainable_weights)
  assert np.isfinite(float(loss))
  assert not [v.path for g, v in zip(grads, model.trainable_weights)
              if g is None]
  keras.optimizers.SGD(0.01).apply(grads, model.trainable_weights)
  bad = [v.path for v in model.trainable_weights
         if not np.all(np.isfinite(v.numpy()))]
  assert not bad, (f"{len(bad)} of {len(model.trainable_weights)} weights "
                   f"non-finite after one SS step, e.g. {bad[:3]}")
  assert not np.array_equal(first, kernels[0].numpy()), kernels[0].path
  assert not np.array_equal(last, kernels[-1].numpy()), kernels[-1].path
