"""tfbio.convert: Keras Sequential/functional models → feedback models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio.convert import format_table

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
    # Layers without weights are reused as they are; the others (and the
    # input layers, which clone_model makes) are copies.
    if (old.weights or type(old) in CONVERTIBLE
        or isinstance(old, keras.layers.InputLayer)):
      assert new is not old, old.name
    else:
      assert new is old, old.name
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


# -- every kernel layer type, layers left alone, the table -------------------


def _walk_paths(model, prefix=""):
  for layer in model.layers:
    yield prefix + layer.name, layer
    if isinstance(layer, keras.Model):
      yield from _walk_paths(layer, prefix + layer.name + "/")


def test_lambda_layers_are_reused_and_predictions_identical():
  """ResNet-20's option-A shortcut: a Lambda (which safe mode refuses to
  re-create) stays the very same object."""
  inputs = keras.Input((8, 8, 4))
  x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
  shortcut = keras.layers.Lambda(
      lambda t: keras.ops.pad(t[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0],
                                                   [2, 2]]), name="option_a")(x)
  y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
  y = keras.layers.Add(name="add")([y, shortcut])
  outputs = keras.layers.Dense(3, name="predictions")(
      keras.layers.GlobalAveragePooling2D(name="pool")(y))
  model = keras.Model(inputs, outputs)
  _randomize(model, 3)
  snapshot = _snapshot(model)
  x = _inputs(2, (8, 8, 4))

  converted = tfbio.convert(model, "fa")

  assert converted.get_layer("option_a") is model.get_layer("option_a")
  assert isinstance(converted.get_layer("conv2"), tfbio.layers.Conv2D)
  np.testing.assert_allclose(converted.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=0, atol=1e-5)
  _assert_unchanged(model, snapshot)


def _all_types_model():
  inputs = keras.Input((6, 6, 3), name="image")
  x = keras.layers.SeparableConv2D(4, 3, padding="same", name="sep")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
  x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same",
                                   name="up")(x)
  x = keras.layers.Reshape((12 * 12, 4), name="tokens")(x)
  x = keras.layers.Conv1D(6, 3, padding="same", name="conv1d")(x)
  x = keras.layers.LayerNormalization(name="ln")(x)
  x = keras.layers.MultiHeadAttention(2, 3, name="mha")(x, x)
  x = keras.layers.EinsumDense("abc,cd->abd", (None, 5), bias_axes="d",
                               name="einsum")(x)
  outputs = keras.layers.Dense(3, name="predictions")(
      keras.layers.GlobalAveragePooling1D(name="pool")(x))
  model = keras.Model(inputs, outputs)
  _randomize(model, 4)
  return model


def test_convert_every_layer_type_and_table():
  model = _all_types_model()
  snapshot = _snapshot(model)
  x = _inputs(2, (6, 6, 3))
  expected = model.predict(x, verbose=0)

  converted, table = tfbio.convert(
      model, "ss", overrides={"predictions": "bp", "mha": "urfb"},
      return_table=True)

  expected_types = {
      "sep": tfbio.layers.SeparableConv2D, "dw": tfbio.layers.DepthwiseConv2D,
      "up": tfbio.layers.Conv2DTranspose, "conv1d": tfbio.layers.Conv1D,
      "mha": tfbio.layers.MultiHeadAttention,
      "einsum": tfbio.layers.EinsumDense, "predictions": tfbio.layers.Dense}
  for name, cls in expected_types.items():
    assert type(converted.get_layer(name)) is cls, name
  mha = converted.get_layer("mha")
  for sub in mha.feedback_layers.values():
    assert sub.feedback.name == "urfb"
  old_mha = model.get_layer("mha")
  for attr in ("query_dense", "key_dense", "value_dense", "output_dense"):
    np.testing.assert_array_equal(getattr(mha, attr).kernel.numpy(),
                                  getattr(old_mha, attr).kernel.numpy())
  np.testing.assert_allclose(converted.predict(x, verbose=0), expected,
                             rtol=0, atol=1e-5)
  _assert_unchanged(model, snapshot)

  # The table: every layer (by path, in order), then MHA's projections.
  layers = [row.layer for row in table]
  walked = [p for p, _ in _walk_paths(model)]
  assert [l for l in layers if "/" not in l] == walked
  assert [l for l in layers if l.startswith("mha/")] == [
      "mha/query", "mha/key", "mha/value", "mha/attention_output"]
  rows = {row.layer: row for row in table}
  for name in expected_types:
    assert rows[name].status == "converted", name
    assert rows[name].type.endswith(f"tfbio.{expected_types[name].__name__}")
  assert rows["predictions"].algorithm == "bp"
  assert rows["mha"].algorithm == rows["mha/query"].algorithm == "urfb"
  assert rows["sep"].algorithm == "ss"
  assert rows["ln"].status == "copied" and rows["ln"].algorithm == "-"
  assert rows["tokens"].status == "kept"
  assert rows["image"].status == "input"
  text = format_table(table)
  assert "7 layers converted" in text and "0 kernel layers not" in text


class _CustomKernelLayer(keras.layers.Layer):
  """A custom layer with a kernel, whose config cannot re-create it."""

  def __init__(self, units, scale_fn, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.scale_fn = scale_fn  # not serializable: no get_config

  def build(self, input_shape):
    self.kernel = self.add_weight(name="kernel",
                                  shape=(input_shape[-1], self.units))

  def call(self, inputs):
    return self.scale_fn(keras.ops.matmul(inputs, self.kernel))


def test_unsupported_kernel_layers_warn_or_raise():
  # (Grouped Conv2D converts, test_grouped_conv2d_converts; grouped Conv1D
  # does not yet.)
  inputs = keras.Input((6, 4))
  x = keras.layers.Conv1D(4, 3, groups=2, name="grouped")(inputs)
  x = keras.layers.SimpleRNN(3, name="rnn")(x)
  x = _CustomKernelLayer(3, lambda t: 2 * t, name="custom")(x)
  outputs = keras.layers.Dense(2, name="predictions")(x)
  model = keras.Model(inputs, outputs)
  x = _inputs(2, (6, 4))
  expected = model.predict(x, verbose=0)

  with pytest.raises(ValueError, match="grouped.*rnn.*custom"):
    tfbio.convert(model, "ss", strict=True)
  with pytest.warns(UserWarning, match="grouped") as record:
    converted, table = tfbio.convert(model, "ss", return_table=True)
  assert "'rnn'" in str(record[0].message)
  assert "'custom'" in str(record[0].message)
  assert type(converted.get_layer("grouped")) is keras.layers.Conv1D
  assert type(converted.get_layer("rnn")) is keras.layers.SimpleRNN
  # Its config cannot re-create it: the very object is reused.
  assert converted.get_layer("custom") is model.get_layer("custom")
  assert isinstance(converted.get_layer("predictions"), tfbio.layers.Dense)
  rows = {row.layer: row for row in table}
  assert rows["grouped"].status == (
      "NOT CONVERTED: grouped convolution (groups=2) (copied)")
  assert rows["rnn"].status.startswith("NOT CONVERTED")
  assert rows["custom"].status.endswith("(shared)")
  assert rows["predictions"].status == "converted"
  np.testing.assert_allclose(converted.predict(x, verbose=0), expected,
                             rtol=0, atol=1e-5)


def test_convert_mobilenet_v2():
  base = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3),
                                        classes=10)
  x = _inputs(2, (32, 32, 3), seed=11)
  expected = np.array(base(x, training=False))

  model, table = tfbio.convert(base, "ss", return_table=True)

  types = [type(layer) for layer in _walk(model)]
  assert types.count(tfbio.layers.DepthwiseConv2D) == 17
  assert keras.layers.DepthwiseConv2D not in types
  assert keras.layers.Conv2D not in types
  assert not [r for r in table if r.status.startswith("NOT CONVERTED")]
  assert sum(r.status == "converted" for r in table) == 53
  assert all(r.algorithm == "ss" for r in table if r.status == "converted")
  np.testing.assert_allclose(np.array(model(x, training=False)), expected,
                             rtol=0, atol=1e-5)
  # One SS training step (eager: cheaper than compiling the whole net).
  optimizer = keras.optimizers.SGD(0.01)
  with tf.GradientTape() as tape:
    loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        np.arange(2), model(x, training=True)))
  grads = tape.gradient(loss, model.trainable_weights)
  assert np.isfinite(float(loss))
  for g, v in zip(grads, model.trainable_weights):
    assert np.all(np.isfinite(np.array(g))), v.path
  optimizer.apply(grads, model.trainable_weights)
  for v in model.trainable_weights:
    assert np.all(np.isfinite(v.numpy())), v.path


def test_keras_operations_in_the_graph_are_kept():
  # x + 1.0 in a functional model is a Keras operation, not a layer
  # (MobileNetV3's hard-swish); convert() used to read its .weights.
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs) + 1.0)
  converted = tfbio.convert(model, "ss")
  x = np.ones((2, 4), "float32")
  np.testing.assert_allclose(converted(x), model(x), rtol=1e-6)


def test_grouped_conv2d_converts():
  inputs = keras.Input((6, 6, 4))
  x = keras.layers.Conv2D(4, 3, groups=4, padding="same", name="dw")(inputs)
  x = keras.layers.Conv2D(6, 1, groups=2, name="pw")(x)
  outputs = keras.layers.Dense(2, name="predictions")(keras.layers.Flatten()(x))
  model = keras.Model(inputs, outputs)
  x = _inputs(2, (6, 6, 4))
  converted, table = tfbio.convert(model, "ss", strict=True,
                                   return_table=True)
  for name, groups in (("dw", 4), ("pw", 2)):
    layer = converted.get_layer(name)
    assert type(layer) is tfbio.layers.Conv2D and layer.groups == groups
    assert layer.feedback.name == "ss"
  assert {row.layer: row.status for row in table}["dw"] == "converted"
  np.testing.assert_allclose(converted.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=0, atol=1e-5)
