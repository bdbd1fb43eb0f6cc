"""Tests of tfbio.tp: difference target propagation (bartunov2018 §2.1.1,
Algorithm 1, appendix; docs/algorithms.md §6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import models
from tfbio import tp


def _digits():
  """sklearn digits, 8x8 -> 64 features / 16, fixed 75/25 split."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  x = (digits.images.reshape(-1, 64) / 16.0).astype("float32")
  y = digits.target.astype("int32")
  order = np.random.RandomState(0).permutation(len(x))
  x, y = x[order], y[order]
  n_train = int(0.75 * len(x))
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _fc_layers(hidden=(128, 128, 128), classes=10):
  """A tanh FC stack of tfbio Dense layers (feedback "bp")."""
  layers = [tfbio.layers.Dense(units, activation="tanh", name=f"fc{i + 1}")
            for i, units in enumerate(hidden)]
  return layers + [tfbio.layers.Dense(classes, name="output")]


def _tp_model(variant="dtp", hidden=(16, 16), input_dim=12, **kwargs):
  return tp.TargetPropModel(_fc_layers(hidden, classes=4), variant=variant,
                            input_shape=(input_dim,), seed=7, **kwargs)


def _batch(n=16, input_dim=12, classes=4, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.rand(n, input_dim).astype("float32"),
          rng.randint(0, classes, n).astype("int32"))


# -- learning on digits --------------------------------------------------------


def test_dtp_and_sdtp_reach_backprop_error_on_digits():
  x_train, y_train, x_test, y_test = _digits()
  epochs, batch = 12, 64
  # Learning rates above bartunov2018 Table 4's range: 1,347 examples and
  # 12 epochs instead of 50,000 and hundreds.
  bp = keras.Sequential([keras.Input((64,))] + _fc_layers())
  bp.compile(keras.optimizers.Adam(1e-3),
             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             metrics=["accuracy"])
  bp.fit(x_train, y_train, epochs=epochs, batch_size=batch, verbose=0)
  bp_error = 1.0 - bp.evaluate(x_test, y_test, verbose=0,
                               return_dict=True)["accuracy"]
  assert bp_error < 0.06

  errors, histories = {}, {}
  for variant in tp.VARIANTS:
    model = tp.TargetPropModel(
        _fc_layers(), variant=variant, input_shape=(64,),
        forward_optimizer=keras.optimizers.Adam(1e-3),
        inverse_optimizer=keras.optimizers.Adam(1e-3), noise_std=0.1,
        step_size=0.1, bp_angle=variant == "dtp", seed=0)
    model.compile(metrics=["accuracy"])
    before = model.reconstruction_errors(x_test)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch,
                        validation_data=(x_test, y_test), verbose=0)
    after = model.reconstruction_errors(x_test)
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    errors[variant] = results["error"]
    histories[variant] = history.history
    np.testing.assert_allclose(results["error"], 1 - results["accuracy"],
                               atol=1e-6)
    np.testing.assert_allclose(history.history["val_error"][-1],
                               results["error"], atol=1e-6)
    # The hidden inverses g_2, g_3 learn: reconstruction error goes down.
    for name in ("fc2", "fc3"):
      assert after[name] < 0.5 * before[name], (variant, name, before, after)
      losses = history.history[f"inv_loss/{name}"]
      assert losses[-1] < 0.5 * losses[0], (variant, name, losses)
    for name in ("fc1", "fc2", "fc3"):
      assert f"fwd_loss/{name}" in history.history
    assert ("inv_loss/output" in history.history) == (variant == "sdtp")
    assert "inv_loss/fc1" not in history.history  # The first layer has none.
  for variant, error in errors.items():
    assert error <= bp_error + 0.05, (variant, errors, bp_error)

  logs = histories["dtp"]
  assert set(k for k in logs if k.startswith("bp_angle/")) == {
      "bp_angle/fc1", "bp_angle/fc2", "bp_angle/fc3", "bp_angle/output"}
  # DTP's penultimate target h - α dL/dh makes fc3's update parallel to the
  # BP gradient; the classifier is trained on the task loss itself.
  assert max(logs["bp_angle/fc3"]) < 1.0
  assert max(logs["bp_angle/output"]) < 1.0
  # Lower layers: a real angle, better than orthogonal after training.
  assert 1.0 < logs["bp_angle/fc1"][-1] < 85.0
  assert not any(k.startswith("bp_angle/") for k in histories["sdtp"])


# -- locality: no backprop through more than one layer -------------------------


@pytest.mark.parametrize("variant", tp.VARIANTS)
def test_each_layer_gets_only_its_local_loss_gradient(variant):
  model = _tp_model(variant, hidden=(16, 16, 16))
  x, y = _batch()
  fwd_grads, inv_grads, losses = model.compute_gradients(x, y)
  hs, targets = losses["activations"], losses["targets"]
  _, dist = model._labels(y)  # pylint: disable=protected-access
  start = 0
  for l, block in enumerate(model.blocks, start=1):
    variables = block.layer.trainable_variables
    h_prev = tf.constant(hs[l - 1].numpy())  # A plain constant input.
    with tf.GradientTape() as tape:
      out = block(h_prev)
      if l < len(model.blocks):  # ||f_l(h_{l-1}) - ĥ_l||², ĥ_l a constant.
        local = tp.squared_error(out, tf.constant(targets[l].numpy()))
      else:  # The classifier: the task loss.
        local = tf.reduce_mean(keras.losses.categorical_crossentropy(
            dist, out, from_logits=True))
    expected = tape.gradient(local, variables)
    got = fwd_grads[start:start + len(variables)]
    for e, g in zip(expected, got):
      np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-7)
    start += len(variables)
  assert start == len(fwd_grads)
  assert len(inv_grads) == len(model.inverse_variables)
  assert all(g is not None for g in inv_grads)

  # Inspect the tape: every loss reaches exactly one layer's parameters.
  with tf.GradientTape(persistent=True) as tape:
    losses = model.tp_losses(x, y)
  per_layer = [b.layer.trainable_variables for b in model.blocks]
  for l, loss in enumerate(losses["forward"]):
    for k, variables in enumerate(per_layer):
      grads = tape.gradient(loss, variables)
      assert all((g is not None) == (k == l) for g in grads), (l, k)
    assert all(g is None for g in tape.gradient(loss,
                                                model.inverse_variables))
  for k, variables in enumerate(per_layer):
    grads = tape.gradient(losses["task"], variables)
    assert all((g is not None) == (k == len(per_layer) - 1) for g in grads)
  for loss, inverse in zip(losses["inverse"], model.inverse_layers):
    assert all(g is None for g in tape.gradient(loss, model.forward_variables))
    for other in model.inverse_layers:
      grads = tape.gradient(loss, other.trainable_variables)
      assert all((g is not None) == (other is inverse) for g in grads)
  del tape


def test_targets_follow_spec_equations():
  model = _tp_model("sdtp", hidden=(8, 8, 8))
  x, y = _batch()
  losses = model.tp_losses(x, y)
  hs, t = losses["activations"], losses["targets"]
  g3, g4 = model.inverse("fc3"), model.inverse("output")
  one_hot = tf.one_hot(y, 4)
  np.testing.assert_allclose(t[4], one_hot)  # ĥ_L = argmin L.
  np.testing.assert_allclose(
      t[3], hs[3] + g4(one_hot) - g4(tf.nn.softmax(hs[4])), atol=1e-6)
  np.testing.assert_allclose(t[2], hs[2] + g3(t[3]) - g3(hs[3]), atol=1e-6)

  dtp = _tp_model("dtp", hidden=(8, 8, 8), step_size=0.05)
  losses = dtp.tp_losses(x, y)
  hs, t = losses["activations"], losses["targets"]
  h3 = tf.constant(hs[3].numpy())
  with tf.GradientTape() as tape:
    tape.watch(h3)
    loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
        y, dtp.blocks[-1](h3), from_logits=True))
  np.testing.assert_allclose(t[3], h3 - 0.05 * tape.gradient(loss, h3),
                             atol=1e-6)
  assert 4 not in t
  with pytest.raises(ValueError, match="No inverse for layer 'output'"):
    dtp.inverse("output")


@pytest.mark.parametrize("inverse_training", tp.INVERSE_TRAININGS)
def test_inverse_losses(inverse_training):
  model = _tp_model("sdtp", hidden=(8, 8), noise_std=0.2,
                    inverse_training=inverse_training)
  x, y = _batch()
  hs = model.forward(x)
  rng = np.random.RandomState(1)
  noise = [rng.normal(0, 0.2, (16, 8)).astype("float32") for _ in range(2)]
  got = model.inverse_losses(hs, noise=noise)
  g2, g3 = model.inverse("fc2"), model.inverse("output")
  want = []
  for g, block, h_prev, eps, softmax in ((g2, model.blocks[1], hs[1],
                                          noise[0], False),
                                         (g3, model.blocks[2], hs[2],
                                          noise[1], True)):
    h = block(h_prev + eps)
    if softmax:  # For l = L (SDTP), f_L includes the softmax.
      h = tf.nn.softmax(h)
    target = h_prev if inverse_training == "denoising" else h_prev + eps
    want.append(tp.squared_error(g(h), target))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Drawn noise: random, but the loss is finite and differs between draws.
  a, b = model.inverse_losses(hs), model.inverse_losses(hs)
  assert np.all(np.isfinite(a)) and not np.allclose(a, b)


# -- schedules -----------------------------------------------------------------


class _Snapshots(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.forward, self.inverse = [], []

  def _take(self):
    self.forward.append([v.numpy() for v in self.model.forward_variables])
    self.inverse.append([v.numpy() for v in self.model.inverse_variables])

  def on_train_begin(self, logs=None):
    self._take()

  def on_epoch_end(self, epoch, logs=None):
    self._take()


def _changed(before, after):
  return [not np.array_equal(a, b) for a, b in zip(before, after)]


def test_alternating_schedule_switches_every_epoch():
  model = _tp_model("dtp", hidden=(16, 16, 16), schedule="alternating",
                    forward_optimizer=keras.optimizers.Adam(1e-2),
                    inverse_optimizer=keras.optimizers.Adam(1e-2),
                    bp_angle=False)
  model.compile()
  x, y = _batch(64)
  snaps = _Snapshots()
  model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[snaps])
  for epoch in range(4):
    fwd = _changed(snaps.forward[epoch], snaps.forward[epoch + 1])
    inv = _changed(snaps.inverse[epoch], snaps.inverse[epoch + 1])
    if epoch % 2 == 0:  # Inverse epochs: forward weights frozen.
      assert all(inv) and not any(fwd), epoch
    else:  # Forward epochs: inverse weights frozen.
      assert all(fwd) and not any(inv), epoch
  assert int(model.tp_epoch.numpy()) == 3
  assert int(model.forward_optimizer.iterations.numpy()) == 8
  assert int(model.inverse_optimizer.iterations.numpy()) == 8


def test_parallel_schedule_updates_both_every_step():
  model = _tp_model("sdtp", bp_angle=False)
  model.compile()
  x, y = _batch(32)
  snaps = _Snapshots()
  model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[snaps])
  for epoch in range(2):
    assert all(_changed(snaps.forward[epoch], snaps.forward[epoch + 1]))
    assert all(_changed(snaps.inverse[epoch], snaps.inverse[epoch + 1]))
  assert int(model.forward_optimizer.iterations.numpy()) == 4
  assert int(model.inverse_optimizer.iterations.numpy()) == 4


def test_alternating_schedule_under_mirrored_strategy(strategy):
  # conftest.py splits the CPU into two logical devices. No optimizer update
  # may sit in graph control flow under tf.distribute: each phase has its
  # own compiled step.
  with strategy.scope():
    model = _tp_model("sdtp", schedule="alternating", bp_angle=False)
    model.compile()
  x, y = _batch(32)
  history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
  assert np.isfinite(history.history["inv_loss/output"]).all()
  assert int(model.forward_optimizer.iterations.numpy()) == 2
  assert int(model.inverse_optimizer.iterations.numpy()) == 2


# -- locally-connected stacks and the bartunov2018 networks --------------------


def test_locally_connected_stack_trains_with_transposed_inverses():
  net = models.create_model("bartunov2018_mnist_lc", input_shape=(8, 8, 1))
  model = tp.TargetPropModel(net, variant="sdtp", seed=1)
  assert [b.name for b in model.blocks] == ["lc1", "lc2", "lc3", "lc4",
                                            "output"]
  assert [p.name for p in model.blocks[-1].pre_layers] == ["flatten"]
  for block in model.blocks[1:]:
    g = model.inverse(block.name)
    # The transpose trick: the inverse's weight has the forward kernel's
    # shape (no dense matrix), plus one bias per unit of h_{l-1}.
    assert tuple(g.kernel.shape) == tuple(block.layer.kernel.shape)
    assert [tuple(v.shape) for v in g.trainable_variables] == [
        block.input_shape, tuple(block.layer.kernel.shape)]
    # V h = d/dx <h, op(x; A)> is the adjoint of op(.; A).
    h = tf.random.normal((3,) + block.output_shape)
    x = tf.random.normal((3,) + block.input_shape)
    np.testing.assert_allclose(
        tf.reduce_sum(h * g.dummy_forward(x)),
        tf.reduce_sum(g.transpose(h) * x), rtol=1e-4)
  x_train, y_train, _, _ = _digits()
  x_train = x_train[:64].reshape(-1, 8, 8, 1)
  model.compile()
  history = model.fit(x_train, y_train[:64], epochs=1, batch_size=32,
                      verbose=0)
  for name, values in history.history.items():
    assert np.all(np.isfinite(values)), name
  assert "inv_loss/lc2" in history.history
  assert "bp_angle/lc1" in history.history


def test_bartunov2018_networks_at_their_shapes():
  rng = np.random.RandomState(0)
  for name, kwargs in (("bartunov2018_mnist_fc", {}),
                       ("bartunov2018_mnist_fc", {"input_shape": (8, 8, 1)}),
                       ("bartunov2018_cifar_fc", {}),
                       ("bartunov2018_mnist_lc", {}),
                       ("bartunov2018_cifar_lc", {})):
    net = models.create_model(name, **kwargs)
    model = tp.TargetPropModel(net, variant="dtp", seed=0)
    hidden = [b.name for b in model.blocks[:-1]]
    assert hidden[0] in ("fc1", "lc1") and model.blocks[-1].name == "output"
    assert [g.name for g in model.inverse_layers] == [
        f"inv_{n}" for n in hidden[1:]]
    for block in model.blocks[1:-1]:
      assert (tuple(model.inverse(block.name).kernel.shape)
              == tuple(block.layer.kernel.shape))
  # One step at MNIST size for the LC network (the others share the code).
  model.compile()
  del model
  net = models.create_model("bartunov2018_mnist_lc")
  model = tp.TargetPropModel(net, variant="sdtp", bp_angle=False, seed=0)
  model.compile()
  logs = model.train_on_batch(rng.rand(4, 28, 28, 1).astype("float32"),
                              rng.randint(0, 10, 4), return_dict=True)
  assert all(np.isfinite(v) for v in logs.values()), logs


def test_conv_and_pooled_blocks_have_transposed_inverses():
  net = models.create_model("bartunov2018_imagenet_lc", num_classes=5,
                            input_shape=(64, 64, 3), conv=True)
  model = tp.TargetPropModel(net, variant="sdtp", seed=0)
  assert [[p.name for p in b.pre_layers] for b in model.blocks] == [
      [], ["pool1"], ["pool2"], ["pool3"], ["avgpool"]]
  for block in model.blocks[1:]:
    g = model.inverse(block.name)
    h = tf.random.normal((2,) + block.output_shape)
    x = tf.random.normal((2,) + block.input_shape)
    np.testing.assert_allclose(
        tf.reduce_sum(h * g.dummy_forward(x)),
        tf.reduce_sum(g.transpose(h) * x), rtol=1e-4)
    assert g(h).shape == (2,) + block.input_shape


# -- bad input -----------------------------------------------------------------


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="variant must be one of .*'tp'"):
    _tp_model("tp")
  with pytest.raises(ValueError, match="schedule must be one of .*'sleep'"):
    _tp_model(schedule="sleep")
  with pytest.raises(ValueError, match="inverse_training must be .*'x'"):
    _tp_model(inverse_training="x")
  with pytest.raises(ValueError, match="noise_std=-0.1"):
    _tp_model(noise_std=-0.1)
  with pytest.raises(ValueError, match="step_size=-1"):
    _tp_model(step_size=-1)
  with pytest.raises(ValueError, match="input_shape is required"):
    tp.TargetPropModel(_fc_layers())
  net = keras.Sequential([keras.Input((12,))] + _fc_layers((8,), 4))
  with pytest.raises(ValueError, match=r"input_shape=\(10,\) does not match "
                     r"the input shape \(12,\)"):
    tp.TargetPropModel(net, input_shape=(10,))
  with pytest.raises(ValueError, match="loss"):
    _tp_model().compile(loss="mse")


@pytest.mark.parametrize("bad, match", [
    (keras.layers.BatchNormalization(name="bn"), "'bn' .*BatchNormalization"
     ".* no inverse"),
    (keras.layers.Dropout(0.5, name="drop"), "'drop' .*Dropout.* no inverse"),
    (keras.layers.Dense(8, name="kd"), "'kd' .*Dense.* no inverse"),
])
def test_layers_without_inverse_raise(bad, match):
  layers = [tfbio.layers.Dense(8, activation="tanh", name="fc1"), bad,
            tfbio.layers.Dense(8, activation="tanh", name="fc2"),
            tfbio.layers.Dense(4, name="output")]
  with pytest.raises(ValueError, match=match):
    tp.TargetPropModel(layers, input_shape=(12,))


def test_bad_networks_raise():
  with pytest.raises(ValueError, match="'pool' .*MaxPooling2D.* no inverse"):
    tp.TargetPropModel(
        [tfbio.layers.Conv2D(4, 3, activation="tanh", name="c1"),
         keras.layers.MaxPooling2D(name="pool"),
         tfbio.layers.Conv2D(4, 3, activation="tanh", name="c2"),
         keras.layers.Flatten(), tfbio.layers.Dense(3, name="output")],
        input_shape=(12, 12, 1))
  with pytest.raises(ValueError, match="feedback 'fa'"):
    tp.TargetPropModel(
        [tfbio.layers.Dense(8, activation="tanh", feedback="fa"),
         tfbio.layers.Dense(4)], input_shape=(12,))
  with pytest.raises(ValueError, match="'soft' .*follows the classifier"):
    tp.TargetPropModel(
        [tfbio.layers.Dense(8, activation="tanh"), tfbio.layers.Dense(4),
         keras.layers.Reshape((2, 2), name="soft")], input_shape=(12,))
  with pytest.raises(ValueError, match="at least one hidden"):
    tp.TargetPropModel([tfbio.layers.Dense(4)], input_shape=(12,))
  with pytest.raises(ValueError, match="logits or a softmax"):
    tp.TargetPropModel([tfbio.layers.Dense(8, activation="tanh"),
                        tfbio.layers.Dense(4, activation="relu")],
                       input_shape=(12,))
  inputs = keras.Input((12,))
  h = tfbio.layers.Dense(8, activation="tanh")(inputs)
  skip = keras.layers.Add()([h, tfbio.layers.Dense(8, activation="tanh")(h)])
  with pytest.raises(ValueError, match="Add"):
    tp.TargetPropModel(keras.Model(inputs, tfbio.layers.Dense(4)(skip)))


def test_mismatched_shapes_raise():
  model = _tp_model()
  model.compile()
  x, _ = _batch()
  with pytest.raises(ValueError, match=r"Labels must be .*\(batch, 4\)"):
    model.train_on_batch(x, np.zeros((16, 3), "float32"))
  with pytest.raises(ValueError):
    model.train_on_batch(np.zeros((16, 5), "float32"), np.zeros(16, "int32"))
  op = tfbio.layers.Dense(4, use_bias=False)
  inverse = tp.LayerInverse(op, target_shape=(6,), name="g")
  with pytest.raises(ValueError, match=r"maps activations of shape \(4,\) "
                     r"back to \(6,\); it was built for inputs of shape "
                     r"\(5,\)"):
    inverse.build((None, 5))


# -- saving --------------------------------------------------------------------


def test_keras_round_trip(tmp_path):
  model = _tp_model("sdtp", hidden=(16, 16), step_size=0.05,
                    inverse_training="noise_preserving", noise_std=0.05,
                    bp_angle=False)
  model.compile(metrics=["accuracy"])
  x, y = _batch(48)
  model.fit(x, y, epochs=2, batch_size=16, verbose=0)
  path = tmp_path / "tp.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert isinstance(loaded, tp.TargetPropModel)
  for attr in ("variant", "schedule", "inverse_training", "noise_std",
               "step_size", "seed", "bp_angle"):
    assert getattr(loaded, attr) == getattr(model, attr), attr
  np.testing.assert_array_equal(model.predict(x, verbose=0),
                                loaded.predict(x, verbose=0))
  for a, b in zip(model.forward_variables + model.inverse_variables,
                  loaded.forward_variables + loaded.inverse_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert model.reconstruction_errors(x) == loaded.reconstruction_errors(x)
  for name in ("forward_optimizer", "inverse_optimizer"):
    assert (int(getattr(loaded, name).iterations.numpy())
            == int(getattr(model, name).iterations.numpy()) == 6)
    for a, b in zip(getattr(model, name).variables,
                    getattr(loaded, name).variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert loaded.forward_optimizer.learning_rate.numpy() == pytest.approx(1e-4)
  logs = loaded.fit(x, y, epochs=1, batch_size=16, verbose=0).history
  assert np.isfinite(logs["loss"][0])
