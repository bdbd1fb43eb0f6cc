"""Direct feedback alignment (tfbio.dfa, Nøkland 2016): maths, learning,
tf.distribute, saving.

Only ONE MirroredStrategy exists per process: mirrored tests use the
session-wide ``strategy`` fixture of conftest.py.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbio import dfa
from tfbio import models
from tfbio.data import sources
from tfbio.ops import dfa as dfa_ops


def _sce(from_logits=True):
  return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def _softmax(a):
  z = np.exp(a - a.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


def _mlp(hidden=(4,), inputs=5, classes=3, activation="tanh", seed=0,
         output_activation=None):
  init = lambda i: keras.initializers.GlorotUniform(seed=seed * 10 + i)
  bias = lambda i: keras.initializers.RandomUniform(-0.1, 0.1,
                                                    seed=seed * 10 + 5 + i)
  layers = [keras.Input((inputs,))]
  for i, units in enumerate(hidden):
    layers.append(keras.layers.Dense(units, activation=activation,
                                     kernel_initializer=init(i),
                                     bias_initializer=bias(i),
                                     name=f"fc{i + 1}"))
  layers.append(keras.layers.Dense(classes, activation=output_activation,
                                   kernel_initializer=init(9),
                                   bias_initializer=bias(9), name="output"))
  return keras.Sequential(layers, name="net")


# -- the update rule against NumPy ---------------------------------------------


def test_one_train_step_equals_numpy_reference():
  rng = np.random.RandomState(0)
  n, d, m, c, lr = 6, 5, 4, 3, 0.5
  x = rng.randn(n, d).astype("float32")
  y = rng.randint(0, c, n).astype("int32")
  w1, b1 = rng.randn(d, m) * 0.5, rng.randn(m) * 0.1
  w2, b2 = rng.randn(m, c) * 0.5, rng.randn(c) * 0.1
  b_fb = rng.randn(c, m)  # B_1, (n_L, n_1)
  net = keras.Sequential([keras.Input((d,)),
                          keras.layers.Dense(m, activation="tanh",
                                             name="hidden"),
                          keras.layers.Dense(c, name="output")])
  net.set_weights([w1, b1, w2, b2])
  model = dfa.DFAModel(net, seed=3)
  assert [b.name for b in model.blocks] == ["hidden", "output"]
  assert tuple(model.direct_feedback.matrices[0].shape) == (c, m)
  model.direct_feedback.matrices[0].assign(b_fb)
  model.compile(keras.optimizers.SGD(lr), _sce(), jit_compile=False)
  model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)

  # Nøkland 2016 by hand (float64).
  x64 = x.astype("float64")
  h1 = np.tanh(x64 @ w1 + b1)
  e = (_softmax(h1 @ w2 + b2) - np.eye(c)[y]) / n  # dE/da_L, loss = mean.
  delta = (e @ b_fb) * (1.0 - h1**2)               # (e B_1) ⊙ f'(a_1)
  expected = [w1 - lr * x64.T @ delta, b1 - lr * delta.sum(0),
              w2 - lr * h1.T @ e, b2 - lr * e.sum(0)]  # last layer: true grad
  for got, want, what in zip(net.get_weights(), expected,
                             ["W1", "b1", "W2", "b2"]):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                               err_msg=what)
  # ... which is not backprop: BP would use W2ᵀ instead of B.
  bp_delta = (e @ w2.T) * (1.0 - h1**2)
  assert not np.allclose(x64.T @ delta, x64.T @ bp_delta, atol=1e-3)
  # The pure ops give the same hidden update.
  dw, db = dfa_ops.dense_gradients(
      tf.constant(x64), dfa_ops.hidden_delta(tf.constant(e), tf.constant(b_fb),
                                             tf.constant(1.0 - h1**2)))
  np.testing.assert_allclose(dw, x64.T @ delta, rtol=1e-10)
  np.testing.assert_allclose(db, delta.sum(0), rtol=1e-10)


def test_conv_block_pooling_sparse_feedback_and_softmax_output():
  # conv (tanh) -> max pool -> flatten -> dense(softmax): δ is taken at the
  # conv output (before pooling, n_1 = 6*6*2); the conv update is the kernel
  # gradient of δ = reshape(e B) ⊙ f'(a). The softmax output is unwrapped to
  # get e = dE/da_L.
  rng = np.random.RandomState(1)
  n, c = 4, 3
  x = rng.rand(n, 6, 6, 1).astype("float32")
  y = rng.randint(0, c, n).astype("int32")
  inputs = keras.Input((6, 6, 1))
  h = keras.layers.Conv2D(2, 3, padding="same", activation="tanh",
                          name="conv")(inputs)
  h = keras.layers.MaxPooling2D(2)(h)
  h = keras.layers.Flatten()(h)
  outputs = keras.layers.Dense(c, activation="softmax", name="output")(h)
  model = dfa.DFAModel(keras.Model(inputs, outputs), feedback_density=0.5,
                       seed=5)
  model.compile("sgd", _sce(from_logits=False), jit_compile=False)
  b = model.feedback_matrix("conv").numpy()
  mask = model.direct_feedback.masks[0].numpy()
  assert b.shape == mask.shape == (c, 6 * 6 * 2)
  assert set(np.unique(mask)) == {0.0, 1.0} and 0.3 < mask.mean() < 0.7
  np.testing.assert_array_equal(b[mask == 0], 0.0)
  scale = 1.0 / np.sqrt(c)  # Default U[-1/sqrt(n_L), 1/sqrt(n_L)].
  assert np.abs(b).max() <= scale and np.abs(b).max() > 0.8 * scale

  result = model.compute_gradients(x, y)
  p = model.predict(x, verbose=0)
  e = (p - np.eye(c)[y]) / n
  np.testing.assert_allclose(result["error"], e, atol=1e-5)
  conv = model.blocks[0].layer
  a = tf.nn.conv2d(x, conv.kernel, 1, "SAME") + conv.bias
  delta = tf.reshape(tf.constant(e, tf.float32) @ b, (n, 6, 6, 2)) * (
      1.0 - tf.tanh(a)**2)
  dk = tf.compat.v1.nn.conv2d_backprop_filter(
      x, conv.kernel.shape, delta, [1, 1, 1, 1], "SAME")
  np.testing.assert_allclose(result["grads"][0], dk, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(result["grads"][1],
                             tf.reduce_sum(delta, [0, 1, 2]), rtol=1e-4,
                             atol=1e-6)


def test_backprop_diagnostic_equals_plain_backprop():
  x = np.random.RandomState(2).rand(8, 5).astype("float32")
  y = np.arange(8) % 3
  model = dfa.DFAModel(_mlp(hidden=(6, 4)), seed=0, bp_angle=True)
  model.compile("sgd", _sce(), jit_compile=False)
  result = model.compute_gradients(x, y, backprop=True)
  with tf.GradientTape() as tape:
    loss = _sce()(y, model.network(x, training=True))
  want = tape.gradient(loss, model.dfa_variables)
  for got, ref in zip(result["backprop_grads"], want):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  # The output layer's DFA update is its true gradient.
  for got, ref in zip(result["grads"][-2:], want[-2:]):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  history = model.fit(x, y, epochs=1, verbose=0)
  assert set(history.history) == {"loss", "bp_angle/fc1", "bp_angle/fc2"}
  assert 0 < history.history["bp_angle/fc1"][0] < 180


# -- learning ------------------------------------------------------------------


def test_dfa_reaches_backprop_error_on_digits():
  splits = sources._digits_splits()  # pylint: disable=protected-access
  (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
  x_train = x_train.reshape(len(x_train), -1)
  x_test = x_test.reshape(len(x_test), -1)
  errors = {}
  for kind in ("bp", "dfa"):
    keras.utils.set_random_seed(0)
    net = _mlp(hidden=(256, 256), inputs=64, classes=10)
    model = net if kind == "bp" else dfa.DFAModel(net, seed=0)
    model.compile(keras.optimizers.Adam(3e-3), _sce(), metrics=["accuracy"],
                  jit_compile=False)
    model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0,
                              return_dict=True)["accuracy"]
    errors[kind] = 100.0 * (1.0 - accuracy)
  assert errors["dfa"] < 10.0, errors
  assert errors["dfa"] <= errors["bp"] + 5.0, errors


# -- tf.distribute -------------------------------------------------------------


def _small_dfa():
  """Softmax output (unwrapped to get e), sparse B_l."""
  return dfa.DFAModel(_mlp(hidden=(6, 5), inputs=4, classes=3, seed=4,
                           output_activation="softmax"),
                      seed=11, feedback_density=0.7)


def test_mirrored_training_equals_single_device(strategy):
  rng = np.random.RandomState(3)
  x = rng.rand(24, 4).astype("float32")
  y = rng.randint(0, 3, 24).astype("int32")

  def build():
    model = _small_dfa()
    model.compile(keras.optimizers.SGD(0.2, momentum=0.9),
                  _sce(from_logits=False), jit_compile=False)
    return model

  def train(model):
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return {v.path: np.array(v.numpy()) for v in model.variables}

  single = build()
  with strategy.scope():  # The optimizer too must be created in the scope.
    mirrored = build()
  assert mirrored.distribute_strategy is strategy
  before = {v.path: np.array(v.numpy()) for v in single.variables}
  after_single, after_mirrored = train(single), train(mirrored)
  assert sorted(after_single) == sorted(after_mirrored)
  assert not np.allclose(before["net/fc1/kernel"],
                         after_single["net/fc1/kernel"])
  for key, value in after_single.items():
    np.testing.assert_allclose(after_mirrored[key], value, rtol=0, atol=1e-5,
                               err_msg=key)
  for variable in mirrored.direct_feedback.variables:  # B_l and masks.
    replicas = [np.array(c.numpy()) for c in variable.value.values]
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0], replicas[1])
    np.testing.assert_array_equal(replicas[0], before[variable.path])


# -- saving --------------------------------------------------------------------


def test_keras_file_and_checkpoint_round_trip(tmp_path):
  x = np.random.RandomState(4).rand(16, 4).astype("float32")
  y = np.arange(16) % 3
  model = _small_dfa()
  model.compile("adam", _sce(from_logits=False), metrics=["accuracy"],
                jit_compile=False)
  model.fit(x, y, epochs=1, batch_size=8, verbose=0)
  feedback = [v.numpy() for v in model.direct_feedback.variables]
  assert len(feedback) == 4  # B_1, B_2 and their masks.
  predictions = model.predict(x, verbose=0)

  path = str(tmp_path / "dfa.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, dfa.DFAModel)
  # (JSON: the saved config has lists where the live one has tuples.)
  assert (json.dumps(loaded.get_config(), sort_keys=True)
          == json.dumps(model.get_config(), sort_keys=True))
  for got, want in zip(loaded.direct_feedback.variables, feedback):
    np.testing.assert_array_equal(got.numpy(), want)
  np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions,
                             atol=1e-6)
  loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # Still trains.

  # A model with another seed draws other B_l; a checkpoint restores them.
  other = dfa.DFAModel(_mlp(hidden=(6, 5), inputs=4, classes=3, seed=9,
                            output_activation="softmax"),
                       seed=12, feedback_density=0.7)
  assert not np.allclose(other.direct_feedback.variables[0].numpy(),
                         feedback[0])
  prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  status = tf.train.Checkpoint(model=other).restore(prefix)
  status.assert_existing_objects_matched()
  status.expect_partial()  # `other` has no optimizer to restore.
  for got, want in zip(other.direct_feedback.variables, feedback):
    np.testing.assert_array_equal(got.numpy(), want)
  np.testing.assert_allclose(other.predict(x, verbose=0), predictions,
                             atol=1e-6)

  # get_config / from_config draws the same B_l again from the seed.
  clone = dfa.DFAModel.from_config(model.get_config())
  for got, want in zip(clone.direct_feedback.variables, feedback):
    np.testing.assert_array_equal(got.numpy(), want)


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"feedback_density": 2},
     "feedback_density must be a number in (0, 1]. Received: "
     "feedback_density=2"),
    ({"feedback_scale": 0},
     "feedback_scale must be a finite number > 0. Received: "
     "feedback_scale=0"),
    ({"seed": -1}, "Received: seed=-1"),
    ({"bp_angle": "yes"}, "Received: bp_angle='yes'"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError) as info:
    dfa.DFAModel(_mlp(), **kwargs)
  assert message in str(info.value)


def test_unsupported_networks_name_the_layer():
  inputs = keras.Input((5,))
  h = keras.layers.Dense(4, name="fc1")(inputs)
  h = keras.layers.BatchNormalization(name="bn1")(h)
  outputs = keras.layers.Dense(3, name="output")(h)
  with pytest.raises(ValueError, match="'bn1' \\(BatchNormalization\\)"):
    dfa.DFAModel(keras.Model(inputs, outputs))

  # A residual connection is no longer refused: the network is trained
  # block-wise (tests/test_dfa_blocks.py), the addition ending a block.
  h = keras.layers.Dense(5, activation="relu", name="fc1")(inputs)
  h = keras.layers.Add(name="skip")([inputs, h])
  outputs = keras.layers.Dense(3, name="output")(h)
  residual = dfa.DFAModel(keras.Model(inputs, outputs))
  assert residual.block_wise
  assert [b.name for b in residual.blocks] == ["skip", "output"]
  # ... while a chain is cut at every kernel layer, and a layer with weights
  # but no kernel is refused there (above).
  assert not dfa.DFAModel(_mlp()).block_wise

  with pytest.raises(ValueError, match="at least one hidden kernel layer"):
    dfa.DFAModel([keras.layers.Dense(3)], input_shape=(5,))


def test_list_of_layers_and_activation_layers_belong_to_the_block():
  model = dfa.DFAModel([keras.layers.Dense(4, name="fc1"),
                        keras.layers.ReLU(name="relu"),
                        keras.layers.Dropout(0.5, name="drop"),
                        keras.layers.Flatten(name="flat"),
                        keras.layers.Dense(3, name="output")],
                       input_shape=(5,), seed=0)
  hidden, output = model.blocks
  assert [l.name for l in hidden.post_layers] == ["relu", "drop"]
  assert [l.name for l in output.pre_layers] == ["flat"]
  assert model.hidden_layers == [hidden.layer]
  assert model.output_layer is output.layer


def test_registry_network_with_feedback_layers_trains():
  # tfbio feedback layers: their own feedback ("fa" here) is never used,
  # since DFA passes no error between layers. Separate ReLU layers belong to
  # their block's f_l.
  net = models.create_model("liao2016_timit", num_classes=4,
                            input_shape=(12,), feedback="fa")
  model = dfa.DFAModel(net, seed=0)
  assert [[l.name for l in b.post_layers] for b in model.blocks] == [
      ["fc1_relu"], ["fc2_relu"], []]
  model.compile("adam", _sce(), jit_compile=False)
  rng = np.random.RandomState(5)
  history = model.fit(rng.rand(16, 12).astype("float32"),
                      rng.randint(0, 4, 16), epochs=1, verbose=0)
  for name, values in history.history.items():
    assert np.all(np.isfinite(values)), name
