"""tfbio.convert: Keras Sequential/functional models → feedback models."""

import keras
import numpy as np
import pytest

import tfbio

CONVERTIBLE = (keras.layers.Dense, keras.layers.Conv2D)


def _walk(model):
  for layer in model.layers:
    yield layer
    if isinstance(layer, keras.Model):
      yield from _walk(layer)


def _randomize(model, seed=0):
  """Non-trivial weights everywhere (BN statistics included)."""
  rng = np.random.default_rng(seed)
  for v in model.weights:
    shape = tuple(v.shape)
    if "variance" in v.path:
      v.assign(rng.uniform(0.5, 2.0, size=shape).astype("float32"))
    else:
      v.assign(rng.normal(0.0, 0.3, size=shape).astype("float32"))


def _sequential():
  model = keras.Sequential([
      keras.Input((8, 8, 3)),
      keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu",
                          name="conv"),
      keras.layers.Flatten(name="flatten"),
      keras.layers.Dense(6, activation="tanh", name="dense_1"),
      keras.layers.Dense(3, name="predictions"),
  ], name="seq")
  _randomize(model, 1)
  return model


def _functional():
  inputs = keras.Input((8, 8, 3), name="image")
  x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
  x = keras.layers.BatchNormalization(name="bn1")(x)
  x = keras.layers.Activation("relu", name="relu1")(x)
  block = keras.Sequential([
      keras.Input((8, 8, 4)),
      keras.layers.Conv2D(5, 3, dilation_rate=2, padding="same",
                          activation="relu", name="inner_conv"),
      keras.layers.BatchNormalization(name="inner_bn"),
      keras.layers.MaxPooling2D(name="inner_pool"),
      keras.layers.Dense(4, activation="relu", name="inner_dense"),
  ], name="block")
  x = block(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(8, activation="relu", name="dense_1")(x)
  x = keras.layers.Dense(8, activation="tanh", name="dense_2")(x)
  outputs = keras.layers.Dense(5, name="predictions")(x)
  model = keras.Model(inputs, outputs, name="func")
  _randomize(model, 2)
  return model


def _inputs(n=4, shape=(8, 8, 3), seed=5):
  return np.random.default_rng(seed).normal(size=(n,) + shape).astype(
      "float32")


def _snapshot(model):
  return ([(layer, type(layer)) for layer in _walk(model)],
          [np.array(v.numpy()) for v in model.weights],
          [v for v in model.weights])


def _assert_unchanged(model, snapshot):
  layers, values, variables = snapshot
  now = [(layer, type(layer)) for layer in _walk(model)]
  assert len(now) == len(layers)
  for (layer, cls), (layer_now, cls_now) in zip(layers, now):
    assert layer_now is layer
    assert cls_now is cls
  assert len(model.weights) == len(variables)
  for v, v_now, value in zip(variables, model.weights, values):
    assert v_now is v
    assert np.array_equal(np.array(v_now.numpy()), value), v.path


def _check_converted(original, converted, algorithms):
  """Types, names, configs and weights of every layer pair.

  ``algorithms``: ``{layer name: expected FeedbackAlgorithm}`` for every
  convertible layer.
  """
  old_layers, new_layers = list(_walk(original)), list(_walk(converted))
  assert len(old_layers) == len(new_layers)
  n_converted = 0
  for old, new in zip(old_layers, new_layers):
    assert new is not old
    assert new.name == old.name
    if type(old) in CONVERTIBLE:
      n_converted += 1
      expected_cls = {keras.layers.Dense: tfbio.layers.Dense,
                      keras.layers.Conv2D: tfbio.layers.Conv2D}[type(old)]
      assert type(new) is expected_cls, old.name
      assert new.feedback == algorithms[old.name], old.name
      old_config, new_config = old.get_config(), new.get_config()
      for key in ("units", "filters", "kernel_size", "strides", "padding",
                  "dilation_rate", "activation", "use_bias"):
        if key in old_config:
          assert tuple(np.atleast_1d(new_config[key])) == tuple(
              np.atleast_1d(old_config[key])), (old.name, key)
      assert np.array_equal(new.kernel.numpy(), old.kernel.numpy())
      assert np.array_equal(new.bias.numpy(), old.bias.numpy())
    else:
      assert type(new) is type(old), old.name
      assert not isinstance(new, tfbio.layers.BaseFeedbackLayer)
      if not isinstance(new, keras.Model):  # nested models: layer by layer
        old_w, new_w = old.get_weights(), new.get_weights()
        assert len(old_w) == len(new_w)
        for a, b in zip(old_w, new_w):
          assert np.array_equal(a, b), old.name
  assert n_converted == len(algorithms)
  # No variable is shared between the two models.
  old_ids = {id(v) for v in original.weights}
  assert not any(id(v) in old_ids for v in converted.weights)


def test_convert_sequential():
  model = _sequential()
  snapshot = _snapshot(model)
  x = _inputs()
  expected = model.predict(x, verbose=0)

  converted = tfbio.convert(model, "ss")

  assert isinstance(converted, keras.Sequential)
  ss = tfbio.feedback.get("ss")
  _check_converted(model, converted,
                   {"conv": ss, "dense_1": ss, "predictions": ss})
  np.testing.assert_allclose(converted.predict(x, verbose=0), expected,
                             rtol=0, atol=1e-5)
  _assert_unchanged(model, snapshot)


def test_convert_functional_with_batch_norm_and_nested_sequential():
  model = _functional()
  snapshot = _snapshot(model)
  x = _inputs()
  expected = model.predict(x, verbose=0)

  converted = tfbio.convert(model, "fa")

  fa = tfbio.feedback.get("fa")
  _check_converted(model, converted, {
      n: fa for n in ("conv1", "inner_conv", "inner_dense", "dense_1",
                      "dense_2", "predictions")})
  block = converted.get_layer("block")
  assert isinstance(block, keras.Sequential)
  assert block is not model.get_layer("block")
  assert isinstance(block.get_layer("inner_conv"), tfbio.layers.Conv2D)
  assert isinstance(block.get_layer("inner_bn"),
                    keras.layers.BatchNormalization)
  bn_old, bn_new = model.get_layer("bn1"), converted.get_layer("bn1")
  for a, b in zip(bn_old.get_weights(), bn_new.get_weights()):
    assert np.array_equal(a, b)
  np.testing.assert_allclose(converted.predict(x, verbose=0), expected,
                             rtol=0, atol=1e-5)
  np.testing.assert_allclose(
      np.array(converted(x, training=False)),
      np.array(model(x, training=False)), rtol=0, atol=1e-5)
  _assert_unchanged(model, snapshot)

  # Training the converted model leaves the original alone.
  converted.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
  converted.fit(x, np.ones((4, 5), "float32"), batch_size=4, epochs=1,
                verbose=0)
  assert not np.array_equal(converted.get_layer("dense_1").kernel.numpy(),
                            model.get_layer("dense_1").kernel.numpy())
  _assert_unchanged(model, snapshot)


def test_convert_with_bp_trains_like_the_original():
  """convert(model, "bp") gives the same training step as Keras itself."""
  model = _functional()
  converted = tfbio.convert(model, "bp")
  reference = keras.models.clone_model(model)
  reference.set_weights(model.get_weights())
  x = _inputs(8)
  y = np.random.default_rng(1).integers(0, 5, size=(8,))
  for m in (converted, reference):
    m.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(
                  from_logits=True))
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
  assert not np.allclose(reference.get_layer("dense_1").kernel.numpy(),
                         model.get_layer("dense_1").kernel.numpy())
  pairs = list(zip(_walk(reference), _walk(converted)))
  assert len(pairs) == len(list(_walk(model)))
  for ref_layer, new_layer in pairs:
    assert ref_layer.name == new_layer.name
    if isinstance(new_layer, keras.Model):
      continue
    assert len(ref_layer.weights) == len(new_layer.weights)
    for a, b in zip(ref_layer.weights, new_layer.weights):
      np.testing.assert_allclose(np.array(b.numpy()), np.array(a.numpy()),
                                 rtol=0, atol=1e-5, err_msg=b.path)


def test_overrides_exact_name_leaves_only_that_layer_on_bp():
  model = _functional()
  converted = tfbio.convert(model, "ss", overrides={"predictions": "bp"})
  ss, bp = tfbio.feedback.get("ss"), tfbio.feedback.get("bp")
  _check_converted(model, converted, {
      "conv1": ss, "inner_conv": ss, "inner_dense": ss, "dense_1": ss,
      "dense_2": ss, "predictions": bp})
  on_bp = [layer.name for layer in _walk(converted)
           if isinstance(layer, tfbio.layers.BaseFeedbackLayer)
           and layer.feedback.is_backprop]
  assert on_bp == ["predictions"]


def test_overrides_regex_and_algorithm_objects():
  model = _functional()
  flip = tfbio.feedback.get("brsf_p", flip_prob=0.25)
  converted = tfbio.convert(
      model, "nusf",
      overrides={"dense_.*": "urfb", "inner_(conv|dense)": flip,
                 "predictions": {"name": "rndf", "std": 0.1}})
  nusf, urfb = tfbio.feedback.get("nusf"), tfbio.feedback.get("urfb")
  _check_converted(model, converted, {
      "conv1": nusf, "inner_conv": flip, "inner_dense": flip,
      "dense_1": urfb, "dense_2": urfb,
      "predictions": tfbio.feedback.get("rndf", std=0.1)})
  assert converted.get_layer("block").get_layer(
      "inner_conv").feedback.flip_prob == 0.25
  # A regex must match the whole name: "dense" alone matches nothing.
  with pytest.raises(ValueError):
    tfbio.convert(model, "nusf", overrides={"dense": "bp"})


def test_unmatched_override_key_raises():
  model = _sequential()
  snapshot = _snapshot(model)
  with pytest.raises(ValueError, match="no_such_layer"):
    tfbio.convert(model, "ss", overrides={"no_such_layer": "bp"})
  with pytest.raises(ValueError):
    tfbio.convert(model, "ss",
                  overrides={"predictions": "bp", "conv_.*": "fa"})
  # A non-convertible layer's name matches no *convertible* layer.
  with pytest.raises(ValueError):
    tfbio.convert(model, "ss", overrides={"flatten": "bp"})
  _assert_unchanged(model, snapshot)


def test_unknown_algorithm_raises():
  with pytest.raises(ValueError):
    tfbio.convert(_sequential(), "no_such_algorithm")
  with pytest.raises(ValueError):
    tfbio.convert(_sequential(), "ss", overrides={"predictions": "nope"})


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.hidden = keras.layers.Dense(4, activation="relu")
    self.out = keras.layers.Dense(2)

  def call(self, inputs):
    return self.out(self.hidden(inputs))


def test_subclassed_model_raises():
  model = _Subclassed()
  model(np.zeros((1, 3), "float32"))
  with pytest.raises(ValueError, match="(?i)subclass"):
    tfbio.convert(model, "ss")
  with pytest.raises(ValueError):
    tfbio.convert(keras.layers.Dense(3), "ss")


def test_layer_kwargs_reach_every_converted_layer():
  model = _sequential()
  x = _inputs()
  converted = tfbio.convert(model, "fa", density=0.5, feedback_density=0.5,
                            sign_fixed=True)
  feedback_layers = [layer for layer in _walk(converted)
                     if isinstance(layer, tfbio.layers.BaseFeedbackLayer)]
  assert [layer.name for layer in feedback_layers] == [
      "conv", "dense_1", "predictions"]
  for layer in feedback_layers:
    old = model.get_layer(layer.name)
    assert layer.density == 0.5
    assert layer.feedback_density == 0.5
    assert layer.sign_fixed is True
    mask = layer.kernel_mask.numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert 0 < mask.mean() < 1
    # W keeps the original values where connected and is 0 elsewhere.
    np.testing.assert_array_equal(layer.kernel.numpy(),
                                  old.kernel.numpy() * mask)
    # The sign reference is that of the converted (original) weights.
    np.testing.assert_array_equal(
        layer.sign_reference.numpy(),
        np.where(layer.kernel.numpy() >= 0, 1.0, -1.0))
    b = np.array(layer.feedback_kernel())
    assert np.all(b[layer.feedback_mask.numpy() == 0] == 0)
  # Predictions are those of the masked network.
  masked = keras.models.clone_model(model)
  masked.set_weights(model.get_weights())
  for layer in feedback_layers:
    masked.get_layer(layer.name).kernel.assign(layer.kernel.numpy())
  np.testing.assert_allclose(converted.predict(x, verbose=0),
                             masked.predict(x, verbose=0), rtol=0, atol=1e-5)
  # The defaults apply when no kwargs are given.
  plain = tfbio.convert(model, "fa")
  for layer in _walk(plain):
    if isinstance(layer, tfbio.layers.BaseFeedbackLayer):
      assert layer.density == 1.0 and layer.kernel_mask is None
      assert layer.sign_fixed is False


def test_convert_keras_applications_resnet50():
  base = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3),
                                     classes=10)
  n_convertible = sum(type(layer) in CONVERTIBLE for layer in _walk(base))
  assert n_convertible > 50
  x = _inputs(4, (32, 32, 3), seed=9)
  expected = np.array(base(x, training=False))

  model = tfbio.convert(base, "ss", overrides={"predictions": "bp"})

  feedback_layers = [layer for layer in _walk(model)
                     if isinstance(layer, tfbio.layers.BaseFeedbackLayer)]
  assert len(feedback_layers) == n_convertible
  assert not any(type(layer) in CONVERTIBLE for layer in _walk(model))
  algorithms = {layer.name: layer.feedback.name for layer in feedback_layers}
  assert algorithms.pop("predictions") == "bp"
  assert set(algorithms.values()) == {"ss"}
  np.testing.assert_allclose(np.array(model(x, training=False)), expected,
                             rtol=0, atol=1e-5)

  model.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy())
  before = model.get_layer("conv1_conv").kernel.numpy()
  history = model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  for v in model.trainable_weights:
    assert np.all(np.isfinite(v.numpy())), v.path
  after = model.get_layer("conv1_conv").kernel.numpy()
  assert not np.array_equal(before, after)


def test_converted_model_keras_round_trip(tmp_path):
  model = _functional()
  converted = tfbio.convert(
      model, tfbio.feedback.get("frsf_p", flip_prob=0.3),
      overrides={"predictions": "bp", "dense_2": "urfb"},
      feedback_density=0.5)
  x = _inputs()
  path = str(tmp_path / "converted.keras")
  converted.save(path)
  loaded = keras.saving.load_model(path)

  old_layers, new_layers = list(_walk(converted)), list(_walk(loaded))
  assert [type(layer) for layer in old_layers] == [
      type(layer) for layer in new_layers]
  for old, new in zip(old_layers, new_layers):
    assert new.name == old.name
    if isinstance(old, tfbio.layers.BaseFeedbackLayer):
      assert new.feedback == old.feedback
      assert new.feedback_density == old.feedback_density == 0.5
      assert new.seed == old.seed
      np.testing.assert_array_equal(np.array(new.feedback_kernel()),
                                    np.array(old.feedback_kernel()))
    if not isinstance(old, keras.Model):
      assert [v.name for v in new.weights] == [v.name for v in old.weights]
      for a, b in zip(old.weights, new.weights):
        assert np.array_equal(np.array(a.numpy()), np.array(b.numpy())), (
            a.path)
  assert len(loaded.weights) == len(converted.weights)
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                converted.predict(x, verbose=0))
