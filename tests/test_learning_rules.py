"""Learning rules and measurements: BatchManhattan, MulticlassHinge,
saturated_linear, affine-free batch norm, alignment metrics and plots.

Every check compares with a reference computed here by hand or in NumPy from the
formulas of docs/algorithms.md §3 and §7 (liao2016 §3, amit2019 §3.2, xiao2018
Fig. 3, amit2019 Fig. 10–11). The MirroredStrategy test of BatchManhattan lives
in test_distribute.py (one strategy per process).
"""

import csv
import logging as py_logging
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import analysis

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# -- BatchManhattan (liao2016 §3) ----------------------------------------------

LR, MOMENTUM, DECAY = 0.1, 0.9, 0.01
W0 = np.array([1.0, -0.5, 0.0, 0.3, 2.0])
# Three steps of fixed gradients; column 2 is exactly 0 with w = 0 (sign(0)
# = 0 must keep it at 0 forever), column 1 starts with a 0 gradient on a
# non-zero weight (only the decay moves it).
GRADS = np.array([[2.0, 0.0, 0.0, -0.1, 1e-3],
                  [-0.5, 0.4, 0.0, 0.0, -3.0],
                  [0.0, -0.2, 0.0, 0.7, 0.5]])

# Element 0 (w0 = 1, g = 2, -0.5, 0) worked out by hand from
# docs/algorithms.md §3:
#   setting 0: τ = -2.01 → w 0.799; τ = 0.5 - 1.809 - 0.00799 = -1.31699
#              → 0.667301; τ = -1.185291 - 0.00667301 → 0.548104599
#   setting 1: τ = -1.01 → 0.899; τ = 1 - 0.909 - 0.00899 = 0.08201
#              → 0.907201; τ = 0.073809 - 0.00907201 → 0.913674699
#   setting 2: τ = sign(-1.01) = -1 → 0.9; sign(1 - 0.9 - 0.009) = 1 → 1.0;
#              sign(0.9 - 0.01) = 1 → 1.1; stored τ_prev = 1
#   setting 3: κ = -1.01 → 0.9; κ = 1 - 0.909 - 0.009 = 0.082 → 1.0;
#              κ = 0.0738 - 0.01 = 0.0638 → 1.1; stored κ = 0.0638
BY_HAND = {0: (0.548104599, -1.19196401), 1: (0.913674699, 0.06473699),
           2: (1.1, 1.0), 3: (1.1, 0.0638)}


def _bm_reference(setting, w0=W0, grads=GRADS, lr=LR, m=MOMENTUM, d=DECAY):
  """docs/algorithms.md §3 Batch Manhattan in NumPy.

  Returns:
    (w, stored trace, pre-sign τ/κ).
  """
  w = np.array(w0, np.float64)
  trace = np.zeros_like(w)
  pre_sign = []
  for g in grads:
    step = g if setting == 0 else np.sign(g)
    tau = -step + m * trace - d * w
    pre_sign.append(tau)
    if setting == 2:
      tau = np.sign(tau)
      trace = tau
    elif setting == 3:
      trace = tau  # κ
      tau = np.sign(tau)
    else:
      trace = tau
    w = w + lr * tau
  return w, trace, np.array(pre_sign)


@pytest.mark.parametrize("setting", [0, 1, 2, 3])
def test_batch_manhattan_matches_reference(setting):
  w_ref, trace_ref, pre_sign = _bm_reference(setting)
  # The sign of a non-zero τ/κ must not hinge on float32 rounding.
  nonzero = pre_sign[pre_sign != 0]
  assert np.all(np.abs(nonzero) > 1e-3)
  np.testing.assert_allclose([w_ref[0], trace_ref[0]], BY_HAND[setting],
                             rtol=0, atol=1e-9)

  opt = tfbio.optimizers.BatchManhattan(LR, momentum=MOMENTUM,
                                        weight_decay=DECAY, setting=setting)
  var = keras.Variable(W0.astype("float32"), name="w")
  for g in GRADS:
    opt.apply_gradients([(tf.constant(g, tf.float32), var)])
  assert int(opt.iterations.numpy()) == 3
  np.testing.assert_allclose(var.numpy(), w_ref, rtol=0, atol=1e-6)
  assert len(opt.traces) == 1
  np.testing.assert_allclose(opt.traces[0].numpy(), trace_ref, rtol=0,
                             atol=1e-6)
  # sign(0) = 0: a weight at 0 with gradient 0 never moves, trace stays 0.
  assert var.numpy()[2] == 0.0 and opt.traces[0].numpy()[2] == 0.0
  if setting == 2:
    assert set(np.unique(opt.traces[0].numpy())) <= {-1.0, 0.0, 1.0}


def test_batch_manhattan_settings_differ():
  # The four settings are four different rules on these gradients.
  results = [_bm_reference(s)[0] for s in range(4)]
  for i in range(4):
    for j in range(i + 1, 4):
      if {i, j} != {2, 3}:
        assert not np.allclose(results[i], results[j]), (i, j)
  # Settings 2 and 3 store different traces even where the weights agree.
  assert not np.allclose(_bm_reference(2)[1], _bm_reference(3)[1])


def _regression_data(n=64):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 4)).astype("float32")
  y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype("float32")
  return x, y


def _regression_model(optimizer):
  model = keras.Sequential([
      keras.Input((4,)),
      tfbio.layers.Dense(1, feedback="bp", seed=5, name="out",
                         kernel_initializer=keras.initializers.GlorotUniform(
                             seed=1))])
  model.compile(optimizer=optimizer, loss="mse")
  return model


@pytest.mark.parametrize("setting", [0, 1, 2, 3])
def test_batch_manhattan_fit_reduces_loss(setting):
  x, y = _regression_data()
  model = _regression_model(tfbio.optimizers.BatchManhattan(
      0.05, momentum=0.5, weight_decay=1e-4, setting=setting))
  before = model.evaluate(x, y, verbose=0)
  model.fit(x, y, batch_size=16, epochs=10, shuffle=False, verbose=0)
  after = model.evaluate(x, y, verbose=0)
  assert after < 0.5 * before, (before, after)


def test_batch_manhattan_keras_save_load_continues_identically(tmp_path):
  x, y = _regression_data()
  opt = tfbio.optimizers.BatchManhattan(0.01, momentum=0.9, weight_decay=0.01,
                                        setting=3)
  model = _regression_model(opt)
  model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
  assert np.any(opt.traces[0].numpy() != 0)
  path = os.path.join(tmp_path, "bm.keras")
  model.save(path)
  loaded = keras.models.load_model(path)

  assert type(loaded.optimizer) is tfbio.optimizers.BatchManhattan
  config = loaded.optimizer.get_config()
  assert (config["setting"], config["momentum"], config["weight_decay"]) == (
      3, 0.9, 0.01)
  assert config == opt.get_config()
  assert int(loaded.optimizer.iterations.numpy()) == 4
  for a, b in zip(opt.traces, loaded.optimizer.traces):
    np.testing.assert_array_equal(a.numpy(), b.numpy())

  model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
  loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
  for a, b in zip(model.weights, loaded.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  for a, b in zip(opt.traces, loaded.optimizer.traces):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_batch_manhattan_serialize_round_trip():
  opt = tfbio.optimizers.BatchManhattan(0.25, momentum=0.5, weight_decay=1e-3,
                                        setting=2, clipnorm=2.0)
  config = keras.optimizers.serialize(opt)
  assert config["registered_name"] == "tfbio>BatchManhattan"
  again = keras.optimizers.deserialize(config)
  assert type(again) is tfbio.optimizers.BatchManhattan
  assert again.get_config() == opt.get_config()
  assert (again.setting, again.momentum, again.bm_weight_decay) == (
      2, 0.5, 1e-3)
  assert again.clipnorm == 2.0
  np.testing.assert_allclose(float(again.learning_rate.numpy()), 0.25)
  again = tfbio.optimizers.BatchManhattan.from_config(opt.get_config())
  assert again.get_config() == opt.get_config()


@pytest.mark.parametrize("kwargs,pattern", [
    ({"setting": 7}, r"setting=7"),
    ({"setting": True}, r"setting=True"),
    ({"learning_rate": -1}, r"learning_rate=-1"),
    ({"momentum": 1.5}, r"momentum=1\.5"),
    ({"momentum": -0.1}, r"momentum=-0\.1"),
    ({"weight_decay": -0.1}, r"weight_decay=-0\.1"),
])
def test_batch_manhattan_bad_arguments(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    tfbio.optimizers.BatchManhattan(**kwargs)


# -- MulticlassHinge (amit2019 §3.2) -------------------------------------------

LOGITS = np.array([
    [0.3, -2.0, 1.5, -0.2],     # label 0
    [1.0, -1.0, 0.5, 2.0],      # label 3: x_c = 2 ≥ 1; x_1 = -1 exactly
    [-1.5, 1.0, 0.99, -1.01],   # label 1: x_c = 1 exactly
    [0.0, 0.0, -3.0, -0.999],   # label 2
], np.float32)
LABELS = np.array([0, 3, 1, 2])


def _hinge_reference(x, labels, mu):
  x = np.asarray(x, np.float64)
  out = []
  for row, c in zip(x, labels):
    others = [max(0.0, 1.0 + row[i]) for i in range(len(row)) if i != c]
    out.append(max(0.0, 1.0 - row[c]) + mu * sum(others))
  return np.array(out)


def _delta_reference(x, labels, mu):
  """δ_c = 1 if x_c < 1 else 0; δ_i = -μ if x_i > -1 else 0.

  docs/algorithms.md §3.
  """
  delta = np.where(x > -1.0, -mu, 0.0)
  for b, c in enumerate(labels):
    delta[b, c] = 1.0 if x[b, c] < 1.0 else 0.0
  return delta


@pytest.mark.parametrize("mu", [None, 0.5, 0.0])
@pytest.mark.parametrize("integer_labels", [True, False])
def test_multiclass_hinge_value(mu, integer_labels):
  expected_mu = 1.0 / 3 if mu is None else mu
  per_example = _hinge_reference(LOGITS, LABELS, expected_mu)
  # Row 0 by hand (μ = 1/3): 0.7 + (0 + 2.5 + 0.8) / 3 = 1.8.
  if mu is None:
    assert per_example[0] == pytest.approx(1.8)
  labels = LABELS if integer_labels else np.eye(4, dtype=np.float32)[LABELS]
  loss = tfbio.losses.MulticlassHinge(mu=mu,
                                      from_integer_labels=integer_labels)
  np.testing.assert_allclose(float(loss(labels, LOGITS)), per_example.mean(),
                             rtol=1e-6)
  summed = tfbio.losses.MulticlassHinge(
      mu=mu, from_integer_labels=integer_labels, reduction="sum")
  np.testing.assert_allclose(float(summed(labels, LOGITS)),
                             per_example.sum(), rtol=1e-6)
  unreduced = tfbio.losses.MulticlassHinge(
      mu=mu, from_integer_labels=integer_labels, reduction=None)
  np.testing.assert_allclose(np.array(unreduced(labels, LOGITS)),
                             per_example, rtol=1e-6)


@pytest.mark.parametrize("mu", [None, 0.25])
def test_multiclass_hinge_gradient_is_minus_delta(mu):
  expected_mu = 1.0 / 3 if mu is None else mu
  logits = tf.Variable(LOGITS)
  loss = tfbio.losses.MulticlassHinge(mu=mu, reduction="sum")
  with tf.GradientTape() as tape:
    value = loss(LABELS[:, None], logits)
  grad = tape.gradient(value, logits).numpy()
  delta = _delta_reference(LOGITS, LABELS, expected_mu)
  # The boundary cases are in the batch: x_c = 1 and x_i = -1 give 0.
  assert delta[2, 1] == 0.0 and delta[1, 1] == 0.0 and delta[1, 3] == 0.0
  np.testing.assert_allclose(grad, -delta, rtol=0, atol=1e-7)
  # With the default (mean) reduction the signal is δ / batch size.
  mean_loss = tfbio.losses.MulticlassHinge(mu=mu)
  with tf.GradientTape() as tape:
    value = mean_loss(LABELS, logits)
  np.testing.assert_allclose(tape.gradient(value, logits).numpy(),
                             -delta / len(LABELS), rtol=0, atol=1e-7)


@pytest.mark.parametrize("mu,pattern", [(-1, r"mu=-1"), (float("nan"),
                                                          r"mu=nan"),
                                        ("0.5", r"mu='0.5'")])
def test_multiclass_hinge_bad_mu(mu, pattern):
  with pytest.raises(ValueError, match=pattern):
    tfbio.losses.MulticlassHinge(mu=mu)


def test_multiclass_hinge_config_round_trip():
  loss = tfbio.losses.MulticlassHinge(mu=0.3, from_integer_labels=False,
                                      reduction="sum", name="hinge")
  config = loss.get_config()
  assert config["mu"] == 0.3 and config["from_integer_labels"] is False
  assert config["reduction"] == "sum" and config["name"] == "hinge"
  again = tfbio.losses.MulticlassHinge.from_config(config)
  assert again.get_config() == config
  serialized = keras.losses.serialize(loss)
  again = keras.losses.deserialize(serialized)
  assert type(again) is tfbio.losses.MulticlassHinge
  assert again.get_config() == config
  onehot = np.eye(4, dtype=np.float32)[LABELS]
  np.testing.assert_allclose(float(again(onehot, LOGITS)),
                             _hinge_reference(LOGITS, LABELS, 0.3).sum(),
                             rtol=1e-6)
  default = tfbio.losses.MulticlassHinge.from_config(
      tfbio.losses.MulticlassHinge().get_config())
  assert default.mu is None and default.from_integer_labels is True


def test_multiclass_hinge_in_fit():
  rng = np.random.default_rng(1)
  centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
  y = rng.integers(0, 3, size=150)
  x = (centers[y] + rng.normal(size=(150, 2))).astype("float32")
  model = keras.Sequential([
      keras.Input((2,)),
      tfbio.layers.Dense(16, activation=tfbio.activations.saturated_linear,
                         feedback="urfb", seed=3),
      tfbio.layers.Dense(3, feedback="bp", seed=4)])
  model.compile(optimizer=keras.optimizers.SGD(0.1),
                loss=tfbio.losses.MulticlassHinge(),
                metrics=["sparse_categorical_accuracy"])
  history = model.fit(x, y, batch_size=50, epochs=10, verbose=0)
  losses = history.history["loss"]
  assert losses[-1] < 0.5 * losses[0], losses
  assert history.history["sparse_categorical_accuracy"][-1] > 0.9


# -- saturated_linear (amit2019) -----------------------------------------------


def test_saturated_linear_values_and_derivative():
  x = np.array([-3.0, -1.0001, -1.0, -0.5, 0.0, 0.7, 1.0, 1.0001, 5.0],
               np.float32)
  expected = np.array([-1.0, -1.0, -1.0, -0.5, 0.0, 0.7, 1.0, 1.0, 1.0])
  # docs/algorithms.md §3: σ'(x) = 1 for |x| <= 1 (±1 included), else 0.
  expected_grad = np.where(np.abs(x) <= 1.0, 1.0, 0.0)
  assert expected_grad[2] == 1.0 and expected_grad[6] == 1.0
  t = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(t)
    y = tfbio.activations.saturated_linear(t)
  np.testing.assert_allclose(y.numpy(), expected, rtol=0, atol=1e-7)
  np.testing.assert_array_equal(tape.gradient(y, t).numpy(), expected_grad)

  @tf.function(jit_compile=True)
  def xla_grad(v):
    with tf.GradientTape() as tape:
      tape.watch(v)
      out = tfbio.activations.saturated_linear(v)
    return tape.gradient(out, v)

  np.testing.assert_array_equal(xla_grad(t).numpy(), expected_grad)


def test_saturated_linear_string_identifier():
  # The docstring of tfbio.activations.saturated_linear promises the string
  # "tfbio>saturated_linear" after `import tfbio`. Deserialization accepts it,
  # but keras.activations.get (used by every layer's `activation=`) does not.
  fn = tfbio.activations.saturated_linear
  assert keras.activations.deserialize("tfbio>saturated_linear") is fn
  assert tfbio.layers.Dense(
      3, activation="tfbio>saturated_linear").activation is fn


def test_saturated_linear_dense_survives_keras_save_load(tmp_path):
  model = keras.Sequential([
      keras.Input((3,)),
      tfbio.layers.Dense(4, activation=tfbio.activations.saturated_linear,
                         feedback="ss", seed=2, name="hidden",
                         kernel_initializer=keras.initializers.RandomNormal(
                             stddev=3.0, seed=0))])
  config = model.get_layer("hidden").get_config()
  assert "saturated_linear" in str(config["activation"])
  x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
  out = np.array(model(x))
  assert np.abs(out).max() == pytest.approx(1.0)  # some units saturate
  assert np.any(np.abs(out) < 1.0)
  path = os.path.join(tmp_path, "satlin.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  layer = loaded.get_layer("hidden")
  assert layer.activation is tfbio.activations.saturated_linear
  np.testing.assert_array_equal(np.array(loaded(x)), out)


# -- affine-free batch norm (liao2016 §3) --------------------------------------


def test_affine_free_batch_norm():
  layer = tfbio.layers.normalization.affine_free_batch_norm(name="bn")
  assert isinstance(layer, keras.layers.BatchNormalization)
  assert (layer.center, layer.scale, layer.momentum) == (False, False, 0.95)
  assert layer.name == "bn"
  x = np.random.default_rng(0).normal(2.0, 3.0, size=(32, 3)).astype(
      "float32")
  y = np.array(layer(x, training=True))
  assert layer.trainable_weights == []
  assert sorted(v.name for v in layer.non_trainable_weights) == [
      "moving_mean", "moving_variance"]
  # No scale or shift: plain standardisation with the batch statistics.
  mean, var = x.mean(axis=0), x.var(axis=0)
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4,
                             atol=1e-4)
  # EMA with alpha = 0.05 from (0, 1).
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.05 * mean,
                             rtol=1e-4)
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             0.95 + 0.05 * var, rtol=1e-4)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"center": True}, r"center=True"),
    ({"scale": True}, r"scale=True"),
    ({"momentum": 0.99}, r"momentum=0\.99"),
])
def test_affine_free_batch_norm_rejects_fixed_arguments(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    tfbio.layers.normalization.affine_free_batch_norm(**kwargs)


# -- analysis (xiao2018 Fig. 3, amit2019 Fig. 10–11) ---------------------------


def test_alignment_angle():
  w = np.random.default_rng(0).normal(size=(5, 4))
  assert analysis.alignment_angle(w, w) == pytest.approx(0.0, abs=1e-5)
  assert analysis.alignment_angle(w, 3.0 * w) == pytest.approx(0.0, abs=1e-5)
  assert analysis.alignment_angle(w, -w) == pytest.approx(180.0, abs=1e-5)
  v = np.random.default_rng(1).normal(size=(5, 4))
  ortho = v - np.sum(v * w) / np.sum(w * w) * w
  assert analysis.alignment_angle(w, ortho) == pytest.approx(90.0, abs=1e-6)
  assert analysis.alignment_angle([1.0, 0.0], [1.0, 1.0]) == pytest.approx(
      45.0)
  assert math.isnan(analysis.alignment_angle(w, np.zeros_like(w)))


def test_kurtosis():
  assert analysis.kurtosis([1.0, -1.0, 1.0, -1.0]) == pytest.approx(1.0)
  # mean 0.5, centred (-.5, -.5, -.5, 1.5): var 0.75, m4 1.3125 → 7/3.
  assert analysis.kurtosis([0.0, 0.0, 0.0, 2.0]) == pytest.approx(7.0 / 3)
  gauss = np.random.default_rng(0).normal(size=(400, 500))
  assert analysis.kurtosis(gauss) == pytest.approx(3.0, abs=0.05)
  uniform = np.random.default_rng(0).uniform(size=200_000)
  assert analysis.kurtosis(uniform) == pytest.approx(1.8, abs=0.02)
  assert math.isnan(analysis.kurtosis(np.ones(5)))


def test_pearson_correlation():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 7))
  b = 0.5 * a + rng.normal(size=(6, 7))
  expected = np.corrcoef(a.ravel(), b.ravel())[0, 1]
  assert analysis.pearson_correlation(a, b) == pytest.approx(expected,
                                                             abs=1e-12)
  assert analysis.pearson_correlation(a, 2 * a + 1) == pytest.approx(1.0)
  assert analysis.pearson_correlation(a, -a) == pytest.approx(-1.0)
  assert math.isnan(analysis.pearson_correlation(a, np.ones_like(a)))


def _bp_ss_model():
  inputs = keras.Input((5,))
  x = tfbio.layers.Dense(4, activation="tanh", feedback="bp", seed=1,
                         name="fc_bp")(inputs)
  outputs = tfbio.layers.Dense(3, feedback="ss", seed=2, name="fc_ss")(x)
  return keras.Model(inputs, outputs)


def _expected_metrics(model):
  """Metrics computed here from the kernels (ss: B = sign(W)/√n_in,
  docs/algorithms.md §1)."""
  w_bp = model.get_layer("fc_bp").kernel.numpy().astype(np.float64)
  w_ss = model.get_layer("fc_ss").kernel.numpy().astype(np.float64)
  b_ss = np.sign(w_ss) / math.sqrt(4)
  np.testing.assert_allclose(model.get_layer("fc_ss").feedback_kernel(),
                             b_ss, rtol=1e-6)
  cos = np.sum(np.abs(w_ss)) / (np.linalg.norm(w_ss) * math.sqrt(w_ss.size))
  angle_ss = math.degrees(math.acos(cos))
  corr_ss = np.corrcoef(w_ss.ravel(), np.sign(w_ss).ravel())[0, 1]

  def kurt(w):
    c = w - w.mean()
    return np.mean(c**4) / np.mean(c**2)**2

  per = {
      "fc_bp": {"alignment_angle": 0.0, "wb_correlation": 1.0,
                "weight_kurtosis": kurt(w_bp), "weight_mean": w_bp.mean(),
                "weight_std": w_bp.std()},
      "fc_ss": {"alignment_angle": angle_ss, "wb_correlation": corr_ss,
                "weight_kurtosis": kurt(w_ss), "weight_mean": w_ss.mean(),
                "weight_std": w_ss.std()},
  }
  expected = {}
  for metric in analysis.METRICS:
    expected[metric] = (per["fc_bp"][metric] + per["fc_ss"][metric]) / 2
    for name in per:
      expected[f"{metric}/{name}"] = per[name][metric]
  return expected


def _assert_metrics(actual, expected):
  assert sorted(actual) == sorted(expected)
  for key, value in expected.items():
    assert actual[key] == pytest.approx(value, abs=1e-4), key


def test_network_metrics_bp_and_ss():
  model = _bp_ss_model()
  metrics = analysis.network_metrics(model)
  expected = _expected_metrics(model)
  assert 0.0 < expected["alignment_angle/fc_ss"] < 90.0
  _assert_metrics(metrics, expected)
  averaged = analysis.network_metrics(model, per_layer=False)
  assert sorted(averaged) == sorted(analysis.METRICS)
  assert analysis.network_metrics(keras.Sequential(
      [keras.Input((2,)), keras.layers.Dense(2)])) == {}


def _classification_data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(48, 5)).astype("float32")
  y = (x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 1).astype("int32")
  return x, y


def _fit_logged(model, tmp_path, epochs=3):
  model.compile(optimizer=keras.optimizers.SGD(0.1),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  x, y = _classification_data()
  logger = analysis.AlignmentLogger()
  path = os.path.join(tmp_path, "history.csv")
  history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False,
                      verbose=0,
                      callbacks=[logger, keras.callbacks.CSVLogger(path)])
  return logger, history, path


def test_alignment_logger_and_csv(tmp_path):
  model = _bp_ss_model()
  initial = _expected_metrics(model)
  logger, history, path = _fit_logged(model, tmp_path)
  _assert_metrics(logger.initial, initial)
  final = _expected_metrics(model)
  assert final["alignment_angle/fc_ss"] != pytest.approx(
      initial["alignment_angle/fc_ss"], abs=1e-4)
  logged = {k: v[-1] for k, v in history.history.items() if k != "loss"}
  _assert_metrics(logged, final)
  for key in final:
    assert len(history.history[key]) == 3
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3
  for key, value in final.items():
    assert float(rows[-1][key]) == pytest.approx(value, abs=1e-4), key
    for row, hist in zip(rows, history.history[key]):
      assert float(row[key]) == pytest.approx(hist, abs=1e-6), key


def test_alignment_logger_warns_once_without_feedback_layers(tmp_path,
                                                             caplog):
  model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)],
                           name="plain")
  with caplog.at_level(py_logging.WARNING):
    _, history, path = _fit_logged(model, tmp_path, epochs=3)
  warnings = [r for r in caplog.records
              if "AlignmentLogger" in r.getMessage()]
  assert len(warnings) == 1, [r.getMessage() for r in warnings]
  assert "plain" in warnings[0].getMessage()
  assert sorted(history.history) == ["loss"]
  with open(path, newline="", encoding="utf-8") as f:
    header = next(csv.reader(f))
  # (Keras' CSVLogger adds empty val_* columns when there is no validation.)
  assert [k for k in header if not k.startswith("val_")] == ["epoch", "loss"]


def test_plots_from_csv(tmp_path):
  _, _, path = _fit_logged(_bp_ss_model(), tmp_path)
  for fn, name in ((analysis.plot_alignment_history, "fig3.png"),
                   (analysis.plot_correlation_history, "fig10.png")):
    png = os.path.join(tmp_path, name)
    assert fn(path, png, title="test") == png
    with open(png, "rb") as f:
      data = f.read()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name


def test_plots_reject_csv_without_metrics(tmp_path):
  path = os.path.join(tmp_path, "plain.csv")
  with open(path, "w", encoding="utf-8") as f:
    f.write("epoch,loss\n0,1.0\n1,0.5\n")
  with pytest.raises(ValueError, match=r"alignment_angle"):
    analysis.plot_alignment_history(path, os.path.join(tmp_path, "a.png"))
  with pytest.raises(ValueError, match=r"wb_correlation"):
    analysis.plot_correlation_history(path, os.path.join(tmp_path, "b.png"))
  assert not os.path.exists(os.path.join(tmp_path, "a.png"))
