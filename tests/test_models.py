"""Every registered model: builds, trains a step, round-trips, takes the spec.

Parametrized over ``tfbio.models.list_models()``, so a newly registered
model is tested automatically.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfbio
from tfbio import models

ALL = models.list_models()
CLASSIFICATION = [n for n in ALL
                  if models.model_info(n).task == "classification"]
# Deeper instances of another registered model's builder (the same code,
# tfbio/models/cifar_resnet.py): that model's step and round trip cover them
# (they stay in every other test); ~25 s saved on 2 cores.
SAME_BUILDER_AS = {"resnet32": "resnet20", "resnet56": "resnet20"}


def _small(name, **kwargs):
  info = models.model_info(name)
  return models.create_model(name, num_classes=3,
                             input_shape=info.small_input_shape or
                             info.input_shape, **kwargs)


def _feedback_layers(model):
  return [l for l in model.layers if isinstance(l, tfbio.layers.BaseFeedbackLayer)]


def _batch(model, n=2):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n,) + tuple(model.input_shape[1:])).astype("float32")
  y = np.arange(n) % model.output_shape[-1]
  return x, y


@pytest.mark.parametrize("name", [n for n in CLASSIFICATION
                                  if n not in SAME_BUILDER_AS])
def test_model_trains_a_step_and_round_trips(name, tmp_path):
  model = _small(name)
  assert model.output_shape == (None, 3)
  assert _feedback_layers(model), "no tfbio feedback layer"
  model.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), jit_compile=False)
  x, y = _batch(model)
  before = [w.numpy().copy() for w in model.trainable_weights]
  loss = model.train_on_batch(x, y)
  assert np.isfinite(loss), loss
  assert any(not np.array_equal(b, w.numpy())
             for b, w in zip(before, model.trainable_weights))
  expected = model.predict_on_batch(x)
  assert np.all(np.isfinite(expected))
  path = str(tmp_path / f"{name}.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(loaded.predict_on_batch(x), expected, rtol=1e-5,
                             atol=1e-5)
  assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


@pytest.mark.parametrize("name", ALL)
def test_last_layer_bp_leaves_exactly_the_classifiers_on_bp(name):
  model = _small(name, feedback="ss", last_layer="bp")
  classifiers = set(model.tfbio_classifier_layers)
  assert classifiers
  on_bp = {l.name for l in _feedback_layers(model) if l.feedback.name == "bp"}
  assert on_bp == classifiers
  others = [l for l in _feedback_layers(model) if l.name not in classifiers]
  assert others and all(l.feedback.name == "ss" for l in others)


@pytest.mark.parametrize("name", ALL)
def test_overrides_reach_the_named_layer_and_bad_ones_fail(name):
  first = _feedback_layers(_small(name))[0].name
  model = _small(name, feedback="bp", overrides={first: "fa"})
  algos = {l.name: l.feedback.name for l in _feedback_layers(model)}
  assert algos.pop(first) == "fa"
  assert set(algos.values()) == {"bp"}
  with pytest.raises(ValueError, match="matched no feedback layer"):
    _small(name, overrides={"no_such_layer": "fa"})


@pytest.mark.parametrize("name", [n for n in ALL
                                  if models.model_info(n).reference_params])
def test_parameter_count_matches_the_reference(name):
  info = models.model_info(name)
  model = models.create_model(name, **info.reference_kwargs)
  count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert count == info.reference_params


def test_registry_lists_every_family_and_rejects_unknown_names():
  names = models.list_models()
  for expected in ("liao2016_mnist", "liao2016_cifar", "liao2016_svhn",
                   "liao2016_others", "liao2016_timit", "resnet18",
                   "resnet18_cifar", "alexnet"):
    assert expected in names
  assert models.list_models("liao2016_*") == [
      n for n in names if n.startswith("liao2016_")]
  with pytest.raises(ValueError, match="resnet18"):
    models.create_model("resnet19")
  with pytest.raises(ValueError, match="Unknown model 'zzz'"):
    models.create_model("zzz")
  with pytest.raises(ValueError, match="input_shape"):
    models.create_model("liao2016_mnist", input_shape=(28, 28))
  with pytest.raises(ValueError, match="num_classes"):
    models.create_model("liao2016_cifar", num_classes=0)
  with pytest.raises(TypeError):
    models.create_model("liao2016_cifar", no_such_option=1)
  with pytest.raises(ValueError, match="nope"):
    models.create_model("alexnet", feedback="nope")


def test_register_model_rejects_duplicates():
  with pytest.raises(ValueError, match="already registered"):
    models.register_model(models.model_info("alexnet").builder,
                          source="x", input_shape=(1,), num_classes=1)


def test_list_models_from_a_plain_tfbio_import():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run(
      [sys.executable, "-c",
       "import tfbio; print(tfbio.models.list_models())"],
      capture_output=True, text=True, env=env, check=True, timeout=120)
  assert "'liao2016_mnist'" in out.stdout and "'resnet18'" in out.stdout


def test_liao2016_layer_shapes_follow_table_1():
  cifar = models.create_model("liao2016_cifar", num_classes=100)
  shapes = {l.name: l.output.shape[1:] for l in cifar.layers}
  assert shapes["conv1"] == (32, 32, 32) and shapes["pool1"] == (16, 16, 32)
  assert shapes["pool2"] == (8, 8, 64) and shapes["pool3"] == (4, 4, 64)
  assert shapes["fc1"] == (128,) and shapes["fc2"] == (100,)
  assert isinstance(cifar.get_layer("pool2"), keras.layers.AveragePooling2D)
  # 5*5*3*32+32 + 5*5*32*64+64 + 5*5*64*64+64 + 4*4*64*128+128 + 128*100+100
  assert cifar.count_params() == (2432 + 51264 + 102464 + 131200 + 12900)
  svhn = models.create_model("liao2016_svhn")
  assert svhn.get_layer("pool2").output.shape[1:] == (4, 4, 512)
  # 5*5*3*20+20 + 7*7*20*512+512 + 4*4*512*40+40 + 40*10+10
  assert svhn.count_params() == 1520 + 502272 + 327720 + 410
  others = models.create_model("liao2016_others", num_classes=102)
  assert others.get_layer("conv1").output.shape[1:] == (56, 56, 48)
  assert others.get_layer("pool2").output.shape[1:] == (12, 12, 128)
  assert others.get_layer("fc1").units == 306  # max(256, 3*102)
  assert others.get_layer("fc2").units == 204
  assert models.create_model("liao2016_others",
                             num_classes=10).get_layer("fc1").units == 256
  timit = models.create_model("liao2016_timit")
  # 1845*512+512 + 512*256+256 + 256*80+80
  assert timit.count_params() == 945152 + 131328 + 20560
  bn = models.create_model("liao2016_cifar", batchnorm=True)
  assert not bn.get_layer("conv1").use_bias
  assert bn.get_layer("fc2").use_bias  # the classifier keeps its bias


def test_alexnet_layout():
  model = models.create_model("alexnet", batchnorm=True)
  shapes = {l.name: l.output.shape[1:] for l in model.layers}
  assert shapes["pool1"] == (27, 27, 64) and shapes["pool2"] == (13, 13, 192)
  assert shapes["pool5"] == (6, 6, 256) and shapes["avgpool"] == (6, 6, 256)
  for name in ("conv1", "conv5", "fc6", "fc7"):
    assert isinstance(model.get_layer(f"{name}_bn"),
                      keras.layers.BatchNormalization)
  assert [l.rate for l in model.layers
          if isinstance(l, keras.layers.Dropout)] == [0.5, 0.5]
  with pytest.raises(ValueError, match="too small"):
    models.create_model("alexnet", input_shape=(32, 32, 3))
