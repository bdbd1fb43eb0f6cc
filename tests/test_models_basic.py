"""Basic tests of tfbio.models: shapes, parameter counts, one fit step."""

import keras
import numpy as np
import pytest

import tfbio
from tfbio import models


def _n_trainable(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def _feedback_layers(model):
  return [l for l in model.layers
          if isinstance(l, tfbio.layers.BaseFeedbackLayer)]


def test_resnet18_imagenet_parameter_count_is_torchvisions():
  model = models.resnet18(num_classes=1000, stem="imagenet", feedback="bp")
  assert model.output_shape == (None, 1000)
  assert _n_trainable(model) == 11_689_512


def test_resnet18_imagenet_shapes_match_torchvision():
  model = models.resnet18()
  assert model.get_layer("maxpool").output.shape[1:] == (56, 56, 64)
  assert model.get_layer("layer2_0_relu2").output.shape[1:] == (28, 28, 128)
  assert model.get_layer("layer4_1_relu2").output.shape[1:] == (7, 7, 512)
  # 20 convs + the classifier; projection shortcuts in stages 2-4 only.
  assert len(_feedback_layers(model)) == 21
  assert [l.name for l in model.layers if "downsample_0" in l.name] == [
      "layer2_0_downsample_0", "layer3_0_downsample_0",
      "layer4_0_downsample_0"]


def test_liao2016_mnist_shape_and_parameter_count():
  model = models.liao2016_mnist()
  assert model.output_shape == (None, 10)
  # Table 1: conv 5x5x20 (28 -> 24), pool (-> 12), conv 5x5x50 (-> 8),
  # pool (-> 4), FC 500, FC 10; weights + biases.
  expected = ((5 * 5 * 1 * 20 + 20) + (5 * 5 * 20 * 50 + 50)
              + (4 * 4 * 50 * 500 + 500) + (500 * 10 + 10))
  assert expected == 431_080
  assert _n_trainable(model) == expected
  out = model(np.zeros((3, 28, 28, 1), "float32"))
  assert out.shape == (3, 10)


def test_liao2016_mnist_batchnorm_is_affine_free_and_bias_free():
  model = models.liao2016_mnist(num_classes=7, batchnorm=True)
  assert model.output_shape == (None, 7)
  # No biases before BN, no gamma/beta; the classifier keeps its bias.
  expected = 5 * 5 * 20 + 5 * 5 * 20 * 50 + 800 * 500 + (500 * 7 + 7)
  assert _n_trainable(model) == expected
  bns = [l for l in model.layers
         if isinstance(l, keras.layers.BatchNormalization)]
  assert [l.name for l in bns] == ["conv1_bn", "conv2_bn", "fc1_bn"]
  assert all(not l.center and not l.scale and l.momentum == 0.95 for l in bns)


def test_resnet18_cifar_fit_step_is_finite():
  model = models.resnet18(num_classes=10, input_shape=(32, 32, 3),
                          stem="cifar", feedback="ss")
  assert model.get_layer("conv1").kernel.shape == (3, 3, 3, 64)
  assert model.get_layer("layer4_1_relu2").output.shape[1:] == (4, 4, 512)
  model.compile(
      optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  rng = np.random.default_rng(0)
  x = rng.standard_normal((8, 32, 32, 3)).astype("float32")
  y = rng.integers(0, 10, 8)
  before = model.get_layer("conv1").kernel.numpy()
  history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  after = model.get_layer("conv1").kernel.numpy()
  assert np.all(np.isfinite(after))
  assert not np.allclose(before, after)
  assert np.all(np.isfinite(model.predict(x, verbose=0)))


@pytest.mark.parametrize("builder", [
    lambda **kw: models.liao2016_mnist(**kw),
    lambda **kw: models.resnet18(num_classes=10, input_shape=(32, 32, 3),
                                 stem="cifar", **kw),
], ids=["liao2016_mnist", "resnet18_cifar"])
def test_last_layer_bp_leaves_only_the_classifier_on_bp(builder):
  model = builder(feedback="ss", last_layer="bp")
  layers = _feedback_layers(model)
  assert layers[-1] is model.layers[-1]  # The classifier is the output.
  assert [l.feedback.name for l in layers] == ["ss"] * (len(layers) - 1) + [
      "bp"]


def test_feedback_with_params_reaches_every_layer():
  algo = tfbio.feedback.get("frsf_p", flip_prob=0.25)
  model = models.liao2016_mnist(feedback=algo)
  assert all(l.feedback == algo for l in _feedback_layers(model))
  model = models.liao2016_mnist(feedback={"name": "brsf_p", "flip_prob": 0.5},
                                last_layer="fa")
  assert [l.feedback.name for l in _feedback_layers(model)] == [
      "brsf_p", "brsf_p", "brsf_p", "fa"]


def test_builders_reject_bad_arguments():
  with pytest.raises(ValueError, match="stem must be one of"):
    models.resnet18(stem="tiny")
  with pytest.raises(ValueError, match="Unknown feedback algorithm"):
    models.liao2016_mnist(feedback="nope")
  with pytest.raises(ValueError, match="needs flip_prob"):
    models.resnet18(last_layer="brsf_p")
  with pytest.raises(ValueError, match="num_classes"):
    models.liao2016_mnist(num_classes=0)
