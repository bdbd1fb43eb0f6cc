"""Tests of the amit2019 and bartunov2018 model builders.

Shapes follow the layer tables of the builders' docstrings; parameter counts
are worked out by hand from the papers' architectures (weights + biases).
The generic build / train-step / ``.keras`` round trip over every registered
model lives in another test file.
"""

import keras
import numpy as np
import pytest

import tfbio
from tfbio import activations
from tfbio import models

AMIT = ("simpnet", "deepnet", "deepernet", "deepnet_s")
BARTUNOV = ("bartunov2018_mnist_fc", "bartunov2018_cifar_fc",
            "bartunov2018_mnist_lc", "bartunov2018_cifar_lc",
            "bartunov2018_imagenet_lc")


def _n_trainable(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def _feedback_layers(model):
  return [l for l in model.layers
          if isinstance(l, tfbio.layers.BaseFeedbackLayer)]


def _build(name, **kwargs):
  """Builds at the registered small input where there is one."""
  info = models.model_info(name)
  kwargs.setdefault("input_shape", info.small_input_shape or info.input_shape)
  return models.create_model(name, **kwargs)


def _shapes(model):
  return {l.name: tuple(l.output.shape[1:]) for l in model.layers}


def _conv(k, c_in, c_out):
  return k * k * c_in * c_out + c_out


def _dense(n_in, n_out):
  return n_in * n_out + n_out


def _lc(out_h, out_w, k, c_in, c_out):
  # A filter and a bias per output position.
  return out_h * out_w * (k * k * c_in * c_out + c_out)


# --- amit2019 -------------------------------------------------------------

AMIT_SHAPES = {
    "simpnet": {
        "conv1": (32, 32, 32), "pool1": (16, 16, 32), "drop1": (16, 16, 32),
        "flatten": (8192,), "fc1": (500,), "drop2": (500,), "output": (10,)},
    "deepnet": {
        "conv1": (32, 32, 32), "pool1": (16, 16, 32), "conv2": (16, 16, 32),
        "conv3": (16, 16, 32), "pool2": (8, 8, 32), "drop1": (8, 8, 32),
        "conv4": (8, 8, 32), "conv5": (8, 8, 32), "pool3": (4, 4, 32),
        "drop2": (4, 4, 32), "flatten": (512,), "fc1": (500,),
        "output": (10,)},
    "deepernet": {
        "conv1": (32, 32, 16), "conv2": (32, 32, 16), "sum1": (32, 32, 16),
        "conv3": (32, 32, 32), "conv4": (32, 32, 32), "sum2": (32, 32, 32),
        "pool1": (16, 16, 32), "drop1": (16, 16, 32), "conv5": (16, 16, 64),
        "conv6": (16, 16, 64), "sum3": (16, 16, 64), "pool2": (8, 8, 64),
        "conv7": (8, 8, 128), "conv8": (8, 8, 128), "sum4": (8, 8, 128),
        "pool3": (4, 4, 128), "drop2": (4, 4, 128), "flatten": (2048,),
        "fc1": (500,), "output": (10,)},
    "deepnet_s": {
        "conv1": (32, 32, 16), "conv2": (32, 32, 16), "sum1": (32, 32, 16),
        "pool1": (11, 11, 16), "drop1": (11, 11, 16), "conv3": (11, 11, 64),
        "conv4": (11, 11, 64), "sum2": (11, 11, 64), "pool2": (6, 6, 64),
        "conv5": (6, 6, 64), "conv6": (6, 6, 64), "sum3": (6, 6, 64),
        "pool3": (3, 3, 64), "drop2": (3, 3, 64), "flatten": (576,),
        "fc1": (500,), "output": (10,)},
}

AMIT_PARAMS = {
    # conv 5x5x3 -> 32; Full 500 on 16*16*32; output 10.
    "simpnet": _conv(5, 3, 32) + _dense(16 * 16 * 32, 500) + _dense(500, 10),
    # conv 5x5 32, four conv 3x3 32 -> 32, Full 500 on 4*4*32, output.
    "deepnet": (_conv(5, 3, 32) + 4 * _conv(3, 32, 32)
                + _dense(4 * 4 * 32, 500) + _dense(500, 10)),
    "deepernet": (_conv(3, 3, 16) + _conv(3, 16, 16) + _conv(3, 16, 32)
                  + _conv(3, 32, 32) + _conv(3, 32, 64) + _conv(3, 64, 64)
                  + _conv(3, 64, 128) + _conv(3, 128, 128)
                  + _dense(4 * 4 * 128, 500) + _dense(500, 10)),
    "deepnet_s": (_conv(3, 3, 16) + _conv(3, 16, 16) + _conv(3, 16, 64)
                  + _conv(3, 64, 64) + _conv(2, 64, 64) + _conv(2, 64, 64)
                  + _dense(3 * 3 * 64, 500) + _dense(500, 10)),
}


def test_amit_parameter_counts_by_hand():
  assert AMIT_PARAMS["simpnet"] == (5 * 5 * 3 * 32 + 32) + (
      16 * 16 * 32 * 500 + 500) + (500 * 10 + 10) == 4_103_942
  assert AMIT_PARAMS["deepnet"] == 300_934
  assert AMIT_PARAMS["deepernet"] == 1_323_030
  assert AMIT_PARAMS["deepnet_s"] == 375_382


@pytest.mark.parametrize("name", AMIT)
def test_amit_shapes_and_parameter_counts(name):
  model = models.create_model(name)
  assert model.name == name
  assert model.output_shape == (None, 10)
  shapes = _shapes(model)
  for layer, shape in AMIT_SHAPES[name].items():
    assert shapes[layer] == shape, layer
  # Every non-input layer is in the documented table.
  assert set(shapes) - {"image"} == set(AMIT_SHAPES[name])
  assert _n_trainable(model) == AMIT_PARAMS[name]
  info = models.model_info(name)
  assert info.reference_params is None and info.input_shape == (32, 32, 3)


@pytest.mark.parametrize("name", AMIT)
def test_amit_activations_and_initializers(name):
  model = models.create_model(name, num_classes=100)
  assert model.output_shape == (None, 100)
  for layer in _feedback_layers(model):
    expected = None if layer.name == "output" else activations.saturated_linear
    if expected is None:
      assert layer.activation is keras.activations.linear
    else:
      assert layer.activation is expected, layer.name
    assert isinstance(layer.kernel_initializer,
                      keras.initializers.GlorotUniform)
    assert np.all(layer.bias.numpy() == 0.0)
    if isinstance(layer, tfbio.layers.Conv2D):
      assert layer.padding == "same" and layer.strides == (1, 1)
  pools = [l for l in model.layers
           if isinstance(l, keras.layers.MaxPooling2D)]
  assert all(p.padding == "same" for p in pools)


def test_amit_pool_windows_and_strides():
  pools = lambda m: [(l.pool_size, l.strides) for l in m.layers  # noqa: E731
                     if isinstance(l, keras.layers.MaxPooling2D)]
  assert pools(models.deepnet()) == [((3, 3), (2, 2))] * 3
  assert pools(models.deepnet_s()) == [((3, 3), (3, 3)), ((2, 2), (2, 2)),
                                       ((2, 2), (2, 2))]


@pytest.mark.parametrize("name, rates", [
    ("simpnet", {"drop1": 0.8, "drop2": 0.3}),
    ("deepnet", {"drop1": 0.8, "drop2": 0.3}),
    ("deepernet", {"drop1": 0.5, "drop2": 0.8}),
    ("deepnet_s", {"drop1": 0.5, "drop2": 0.5}),
])
def test_amit_dropout_rates_as_written(name, rates):
  model = models.create_model(name)
  drops = {l.name: l.rate for l in model.layers
           if isinstance(l, keras.layers.Dropout)}
  assert drops == rates
  without = models.create_model(name, dropout=False)
  assert not [l for l in without.layers
              if isinstance(l, keras.layers.Dropout)]
  assert _n_trainable(without) == AMIT_PARAMS[name]


@pytest.mark.parametrize("name, n_sums", [("deepernet", 4), ("deepnet_s", 3),
                                          ("simpnet", 0), ("deepnet", 0)])
def test_amit_sum_layers_add_the_pair_of_convs(name, n_sums):
  model = models.create_model(name)
  adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
  assert [l.name for l in adds] == [f"sum{k}" for k in range(1, n_sums + 1)]
  for k, add in enumerate(adds):
    first, second = f"conv{2 * k + 1}", f"conv{2 * k + 2}"
    # pylint: disable-next=protected-access
    inputs = [t._keras_history[0].name for t in add.input]
    assert inputs == [first, second]
  if name == "deepernet":
    probe = keras.Model(model.input, [model.get_layer(n).output
                                      for n in ("conv1", "conv2", "sum1")])
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3))
    c1, c2, s1 = (t.numpy() if hasattr(t, "numpy") else t
                  for t in probe(x.astype("float32")))
    np.testing.assert_allclose(s1, c1 + c2, rtol=1e-6, atol=1e-6)
    assert np.abs(c1).max() <= 1.0  # saturated linearity


@pytest.mark.parametrize("name, untied", [("simpnet", True),
                                          ("deepnet_s", "all")])
def test_amit_untied_all_convs_are_locally_connected(name, untied):
  tied = models.create_model(name)
  model = models.create_model(name, untied=untied, lc_implementation="dense")
  convs = [l for l in tied.layers if isinstance(l, tfbio.layers.Conv2D)]
  assert convs
  for conv in convs:
    lc = model.get_layer(conv.name)
    assert isinstance(lc, tfbio.layers.LocallyConnected2D)
    assert lc.resolved_implementation == "dense"
    assert lc.activation is activations.saturated_linear
    assert (lc.kernel_size, lc.strides, lc.padding, lc.filters) == (
        conv.kernel_size, conv.strides, conv.padding, conv.filters)
  assert _shapes(model) == _shapes(tied)
  if name == "simpnet":
    # Untied conv1: a 5x5x3 -> 32 filter and a bias at each of 32x32 places.
    expected = (_lc(32, 32, 5, 3, 32) + _dense(16 * 16 * 32, 500)
                + _dense(500, 10))
    assert expected == 32 * 32 * (5 * 5 * 3 * 32 + 32) + 4_101_510
    assert _n_trainable(model) == expected
  out = model(np.zeros((2, 32, 32, 3), "float32"))
  assert tuple(out.shape) == (2, 10)


def test_amit_untied_list_unties_only_those():
  rest = ["conv2", "conv3", "conv4", "conv5", "conv6"]
  model = models.deepnet_s(untied=rest)
  assert isinstance(model.get_layer("conv1"), tfbio.layers.Conv2D)
  for name in rest:
    assert isinstance(model.get_layer(name), tfbio.layers.LocallyConnected2D)
  assert model.get_layer("conv3").output.shape[1:] == (11, 11, 64)
  expected = (_conv(3, 3, 16) + _lc(32, 32, 3, 16, 16) + _lc(11, 11, 3, 16, 64)
              + _lc(11, 11, 3, 64, 64) + 2 * _lc(6, 6, 2, 64, 64)
              + _dense(576, 500) + _dense(500, 10))
  assert _n_trainable(model) == expected


@pytest.mark.parametrize("name", AMIT)
def test_amit_density_reaches_every_feedback_layer(name):
  model = models.create_model(name, density=0.5, feedback="urfb")
  fb = _feedback_layers(model)
  assert [l.name for l in fb][-2:] == ["fc1", "output"]
  for layer in fb:
    assert layer.density == 0.5 and layer.feedback_density == 0.5, layer.name
    assert layer.kernel_mask is not None and layer.feedback_mask is not None
  kept = model.get_layer("fc1").kernel_mask.numpy().mean()
  assert 0.45 < kept < 0.55
  lc = models.simpnet(untied=True, density=0.5).get_layer("conv1")
  assert lc.density == 0.5 and lc.feedback_density == 0.5


@pytest.mark.parametrize("name", AMIT + BARTUNOV)
def test_urfb_with_bp_last_layer(name):
  model = _build(name, feedback="urfb", last_layer="bp")
  algos = {l.name: l.feedback.name for l in _feedback_layers(model)}
  assert algos.pop("output") == "bp"
  assert algos and set(algos.values()) == {"urfb"}


def test_overrides_by_layer_name():
  model = models.deepnet(feedback="urfb", overrides={"conv[23]": "fa"})
  algos = {l.name: l.feedback.name for l in _feedback_layers(model)}
  assert algos == {"conv1": "urfb", "conv2": "fa", "conv3": "fa",
                   "conv4": "urfb", "conv5": "urfb", "fc1": "urfb",
                   "output": "urfb"}
  with pytest.raises(ValueError, match="pool1"):
    models.deepnet(overrides={"pool1": "fa"})


@pytest.mark.parametrize("kwargs, match", [
    ({"untied": "some"}, "untied='some'"),
    ({"untied": ["fc1"]}, r"untied=\['fc1'\]"),
    ({"untied": None}, "untied=None"),
    ({"density": 0}, "density=0"),
    ({"density": 1.5}, "density=1.5"),
    ({"density": True}, "density=True"),
    ({"density": "0.5"}, "density='0.5'"),
    ({"dropout": "yes"}, "dropout='yes'"),
    ({"lc_implementation": "fast"}, "lc_implementation='fast'"),
    ({"num_classes": 0}, "num_classes=0"),
    ({"input_shape": (32, 32)}, r"input_shape=\(32, 32\)"),
    ({"feedback": "nope"}, "nope"),
])
def test_amit_bad_options_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    models.simpnet(**kwargs)


# --- bartunov2018 -----------------------------------------------------------

BARTUNOV_SHAPES = {
    "bartunov2018_mnist_fc": dict(
        {f"fc{l}": (240,) for l in range(1, 8)},
        flatten=(784,), output=(10,)),
    "bartunov2018_cifar_fc": dict(
        {f"fc{l}": (1024,) for l in range(1, 4)},
        flatten=(3072,), output=(10,)),
    "bartunov2018_mnist_lc": {
        "lc1": (14, 14, 32), "lc2": (14, 14, 16), "lc3": (14, 14, 16),
        "lc4": (12, 12, 10), "flatten": (1440,), "output": (10,)},
    "bartunov2018_cifar_lc": {
        "lc1": (16, 16, 32), "lc2": (8, 8, 32), "lc3": (8, 8, 16),
        "lc4": (4, 4, 16), "lc5": (4, 4, 10), "flatten": (160,),
        "output": (10,)},
    # At the small input 64x64: 64/4 = 16, (16-3)//2+1 = 7, 3, 1.
    "bartunov2018_imagenet_lc": {
        "lc1": (16, 16, 48), "pool1": (7, 7, 48), "lc2": (7, 7, 64),
        "pool2": (3, 3, 64), "lc3": (3, 3, 96), "pool3": (1, 1, 96),
        "lc4": (1, 1, 128), "avgpool": (128,), "output": (1000,)},
}

BARTUNOV_PARAMS = {
    "bartunov2018_mnist_fc": (_dense(28 * 28, 240) + 6 * _dense(240, 240)
                              + _dense(240, 10)),
    "bartunov2018_cifar_fc": (_dense(32 * 32 * 3, 1024)
                              + 2 * _dense(1024, 1024) + _dense(1024, 10)),
    "bartunov2018_mnist_lc": (_lc(14, 14, 3, 1, 32) + _lc(14, 14, 3, 32, 16)
                              + _lc(14, 14, 3, 16, 16)
                              + _lc(12, 12, 3, 16, 10)
                              + _dense(12 * 12 * 10, 10)),
    "bartunov2018_cifar_lc": (_lc(16, 16, 3, 3, 32) + _lc(8, 8, 3, 32, 32)
                              + _lc(8, 8, 3, 32, 16) + _lc(4, 4, 3, 16, 16)
                              + _lc(4, 4, 1, 16, 10) + _dense(160, 10)),
    # At the small input (64x64x3).
    "bartunov2018_imagenet_lc": (_lc(16, 16, 9, 3, 48) + _lc(7, 7, 5, 48, 64)
                                 + _lc(3, 3, 3, 64, 96)
                                 + _lc(1, 1, 3, 96, 128)
                                 + _dense(128, 1000)),
}


def test_bartunov_parameter_counts_by_hand():
  assert BARTUNOV_PARAMS["bartunov2018_mnist_fc"] == 537_850
  assert BARTUNOV_PARAMS["bartunov2018_cifar_fc"] == 5_256_202
  assert BARTUNOV_PARAMS["bartunov2018_mnist_lc"] == 1_646_954
  assert BARTUNOV_PARAMS["bartunov2018_cifar_lc"] == 1_158_634
  assert BARTUNOV_PARAMS["bartunov2018_imagenet_lc"] == 7_502_856
  # At the default 224x224 (not built here): 56 -> 27 -> 13 -> 6.
  imagenet_224 = (_lc(56, 56, 9, 3, 48) + _lc(27, 27, 5, 48, 64)
                  + _lc(13, 13, 3, 64, 96) + _lc(6, 6, 3, 96, 128)
                  + _dense(128, 1000))
  assert imagenet_224 == 106_238_856


@pytest.mark.parametrize("name", BARTUNOV)
def test_bartunov_shapes_and_parameter_counts(name):
  model = _build(name)
  assert model.name == name
  shapes = _shapes(model)
  assert set(shapes) - {"image"} == set(BARTUNOV_SHAPES[name])
  for layer, shape in BARTUNOV_SHAPES[name].items():
    assert shapes[layer] == shape, layer
  assert _n_trainable(model) == BARTUNOV_PARAMS[name]
  hidden = _feedback_layers(model)[:-1]
  assert hidden and all(l.activation is keras.activations.tanh
                        for l in hidden)
  assert model.get_layer("output").activation is keras.activations.linear
  for layer in _feedback_layers(model):
    assert isinstance(layer.kernel_initializer,
                      keras.initializers.GlorotUniform)
  if "_lc" in name:
    assert all(isinstance(l, tfbio.layers.LocallyConnected2D) for l in hidden)
  else:
    assert all(isinstance(l, tfbio.layers.Dense) for l in hidden)
  assert models.model_info(name).reference_params is None


def test_bartunov_layer_geometry_and_pools():
  lcs = [(l.kernel_size, l.filters, l.strides, l.padding) for l in
         _feedback_layers(models.bartunov2018_cifar_lc())[:-1]]
  assert lcs == [((3, 3), 32, (2, 2), "same"), ((3, 3), 32, (2, 2), "same"),
                 ((3, 3), 16, (1, 1), "same"), ((3, 3), 16, (2, 2), "same"),
                 ((1, 1), 10, (1, 1), "same")]
  info = models.model_info("bartunov2018_imagenet_lc")
  assert info.input_shape == (224, 224, 3) and info.num_classes == 1000
  assert info.small_input_shape == (64, 64, 3)
  model = models.bartunov2018_imagenet_lc(input_shape=(64, 64, 3))
  pools = [l for l in model.layers
           if isinstance(l, keras.layers.AveragePooling2D)]
  assert [(p.pool_size, p.strides, p.padding) for p in pools] == [
      ((3, 3), (2, 2), "valid")] * 3
  assert isinstance(model.get_layer("avgpool"),
                    keras.layers.GlobalAveragePooling2D)


def test_bartunov_fc_accepts_flat_inputs():
  model = models.bartunov2018_mnist_fc(input_shape=(784,))
  assert _n_trainable(model) == BARTUNOV_PARAMS["bartunov2018_mnist_fc"]
  out = model(np.zeros((3, 784), "float32"))
  assert tuple(out.shape) == (3, 10)


@pytest.mark.parametrize("name", ["bartunov2018_mnist_lc",
                                  "bartunov2018_cifar_lc",
                                  "bartunov2018_imagenet_lc"])
def test_bartunov_conv_analog_has_the_same_geometry(name):
  lc_model = _build(name)
  conv_model = _build(name, conv=True, feedback="fa")
  assert _shapes(conv_model) == _shapes(lc_model)
  for lc in _feedback_layers(lc_model)[:-1]:
    conv = conv_model.get_layer(lc.name)
    assert isinstance(conv, tfbio.layers.Conv2D)
    assert conv.activation is keras.activations.tanh
    assert conv.feedback.name == "fa"
    assert (conv.kernel_size, conv.strides, conv.padding, conv.filters) == (
        lc.kernel_size, lc.strides, lc.padding, lc.filters)
  if name == "bartunov2018_cifar_lc":
    assert _n_trainable(conv_model) == (
        _conv(3, 3, 32) + _conv(3, 32, 32) + _conv(3, 32, 16)
        + _conv(3, 16, 16) + _conv(1, 16, 10) + _dense(160, 10))


def test_bartunov_forward_pass_and_lc_implementation():
  model = models.bartunov2018_mnist_lc(lc_implementation="sparse")
  assert all(l.resolved_implementation == "sparse"
             for l in _feedback_layers(model)[:-1])
  out = model(np.ones((2, 28, 28, 1), "float32"))
  assert tuple(out.shape) == (2, 10) and np.all(np.isfinite(out))


@pytest.mark.parametrize("builder, kwargs, match", [
    (models.bartunov2018_cifar_lc, {"conv": 1}, "conv=1"),
    (models.bartunov2018_cifar_lc, {"lc_implementation": "x"},
     "lc_implementation='x'"),
    (models.bartunov2018_cifar_lc, {"num_classes": -1}, "num_classes=-1"),
    (models.bartunov2018_mnist_fc, {"input_shape": (28, 28)},
     r"input_shape=\(28, 28\)"),
    (models.bartunov2018_mnist_fc, {"overrides": {"lc1": "fa"}}, "lc1"),
    (models.bartunov2018_mnist_lc, {"last_layer": "nope"}, "nope"),
])
def test_bartunov_bad_options_raise(builder, kwargs, match):
  with pytest.raises(ValueError, match=match):
    builder(**kwargs)


def test_bartunov_fc_rejects_lc_options():
  with pytest.raises(TypeError):
    # pylint: disable-next=unexpected-keyword-arg
    models.bartunov2018_mnist_fc(conv=True)
