"""tfbio.layers.Dense / Conv2D: gradients, feedback kernels, masks, sign-fixing.

References are computed with plain TensorFlow ops on copies of the layer's
weights: the input gradient with ``B`` in place of ``W``, the kernel gradient
with ``W``. Loops live inside tests where possible because every test pays
for a Keras session reset in conftest.
"""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import feedback as fb

ALL_NAMES = fb.names()
FLIP_NAMES = ("brsf_p", "frsf_p")
PER_STEP = ("brsf", "brsf_p")
RTOL = 1e-4
ATOL = 1e-5

# (name, layer kwargs, input shape)
LAYER_CASES = [
    ("dense", {}, (4, 6)),
    ("conv", {"strides": 1, "padding": "same"}, (2, 7, 7, 3)),
    ("conv", {"strides": 1, "padding": "valid"}, (2, 7, 7, 3)),
    ("conv", {"strides": 2, "padding": "same"}, (2, 7, 7, 3)),
    ("conv", {"strides": 2, "padding": "valid"}, (2, 7, 7, 3)),
]


def _params(name):
  return {"flip_prob": 0.3} if name in FLIP_NAMES else {}


def _feedback(name):
  return {"name": name, **_params(name)}


def _make(kind, feedback="bp", units=5, **kwargs):
  if kind == "dense":
    return tfbio.layers.Dense(units, feedback=feedback, **kwargs)
  return tfbio.layers.Conv2D(4, 3, feedback=feedback, **kwargs)


def _var(layer, name):
  """The layer's variable whose path ends in ``/name``."""
  found = [v for v in layer.weights if v.path.split("/")[-1] == name]
  assert len(found) == 1, [v.path for v in layer.weights]
  return found[0]


def _np(t):
  return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def _reference_op(layer):
  """Plain-TF forward op ``op(x, K)`` of the layer (no bias)."""
  if isinstance(layer, tfbio.layers.Conv2D):
    strides = (1,) + tuple(layer.strides) + (1,)
    padding = layer.padding.upper()
    dilations = (1,) + tuple(layer.dilation_rate) + (1,)
    return lambda x, k: tf.nn.conv2d(x, k, strides, padding,
                                     dilations=dilations)
  return lambda x, k: tf.tensordot(x, k, axes=[[x.shape.rank - 1], [0]])


def _reference_grads(op, x, w, b, g):
  """(y, dx with B, dW with W) of <g, op(x, .)> by plain TF."""
  x, w, b = (tf.constant(v, tf.float32) for v in (x, w, b))
  with tf.GradientTape() as tape:
    tape.watch(w)
    y = op(x, w)
    loss = tf.reduce_sum(y * g)
  dw = tape.gradient(loss, w)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss_b = tf.reduce_sum(op(x, b) * g)
  dx = tape.gradient(loss_b, x)
  return y.numpy(), dx.numpy(), dw.numpy()


def _training_grads(layer, x, g):
  """Runs ``layer(x, training=True)`` under a tape; returns y and grads."""
  x = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    loss = tf.reduce_sum(y * g)
  variables = layer.trainable_weights
  grads = tape.gradient(loss, [x] + variables)
  named = {v.path.split("/")[-1]: gr for v, gr in zip(variables, grads[1:])}
  return y.numpy(), grads[0].numpy(), named


# -- gradients of every algorithm on every layer kind ---------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_training_gradients_use_feedback_kernel(name):
  rng = np.random.default_rng(0)
  for kind, kwargs, in_shape in LAYER_CASES:
    case = f"{name}/{kind}/{kwargs}"
    layer = _make(kind, _feedback(name), seed=11, **kwargs)
    x = rng.standard_normal(in_shape).astype(np.float32)
    layer.build(x.shape)
    layer.bias.assign(rng.standard_normal(layer.bias.shape).astype(np.float32))
    w = _np(layer.kernel)
    bias = _np(layer.bias)
    b = _np(layer.feedback_kernel())  # read before the training call
    assert b.shape == w.shape, case
    if name == "bp":
      np.testing.assert_array_equal(b, w, err_msg=case)
    else:
      assert np.abs(b - w).max() > 1e-3, case
    if name in PER_STEP:
      assert int(_np(layer.feedback_step)) == 0, case
    out_shape = layer.compute_output_shape(x.shape)
    g = rng.standard_normal(out_shape).astype(np.float32)

    y, dx, grads = _training_grads(layer, x, g)

    op = _reference_op(layer)
    ry, rdx, rdw = _reference_grads(op, x, w, b, g)
    np.testing.assert_allclose(y, ry + bias, rtol=RTOL, atol=ATOL,
                               err_msg=case)
    np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL, err_msg=case)
    np.testing.assert_allclose(_np(grads["kernel"]), rdw, rtol=RTOL,
                               atol=ATOL, err_msg=case)
    np.testing.assert_allclose(_np(grads["bias"]),
                               g.reshape(-1, g.shape[-1]).sum(0), rtol=RTOL,
                               atol=ATOL, err_msg=case)
    if name in ("urfb", "kp"):
      assert set(grads) == {"kernel", "bias", "feedback_kernel"}, case
      np.testing.assert_allclose(_np(grads["feedback_kernel"]),
                                 _np(grads["kernel"]), rtol=0, atol=1e-7,
                                 err_msg=case)
    else:
      assert set(grads) == {"kernel", "bias"}, case
    if name in PER_STEP:
      assert int(_np(layer.feedback_step)) == 1, case
      assert np.abs(_np(layer.feedback_kernel()) - b).max() > 1e-3, case
    else:
      assert layer.feedback_step is None, case
      np.testing.assert_array_equal(_np(layer.feedback_kernel()), b,
                                    err_msg=case)


def test_inference_calls_do_not_advance_step():
  layer = _make("dense", "brsf", seed=2)
  x = tf.ones((2, 6))
  layer(x)
  b0 = _np(layer.feedback_kernel())
  layer(x, training=False)
  layer(x)
  assert int(_np(layer.feedback_step)) == 0
  np.testing.assert_array_equal(_np(layer.feedback_kernel()), b0)
  layer(x, training=True)
  layer(x, training=True)
  assert int(_np(layer.feedback_step)) == 2


def test_model_fit_advances_step_once_per_batch():
  model = keras.Sequential([
      keras.Input((6,)),
      tfbio.layers.Dense(4, feedback="brsf", seed=1, activation="tanh"),
      tfbio.layers.Dense(2, feedback={"name": "brsf_p", "flip_prob": 0.5},
                         seed=2),
  ])
  model.compile(keras.optimizers.SGD(0.01), "mse", jit_compile=False)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((12, 6)).astype(np.float32)
  y = rng.standard_normal((12, 2)).astype(np.float32)
  model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
  for layer in model.layers:
    assert int(_np(layer.feedback_step)) == 3
  model.predict(x, verbose=0)
  model.evaluate(x, y, verbose=0)
  for layer in model.layers:
    assert int(_np(layer.feedback_step)) == 3


def test_dense_rank3_input_gradients():
  rng = np.random.default_rng(1)
  for name in ("fa", "ss", "brsf"):
    layer = tfbio.layers.Dense(4, feedback=name, seed=5)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    layer.build(x.shape)
    layer.bias.assign(rng.standard_normal(4).astype(np.float32))
    w, bias = _np(layer.kernel), _np(layer.bias)
    b = _np(layer.feedback_kernel())
    g = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y, dx, grads = _training_grads(layer, x, g)
    assert y.shape == (2, 3, 4)
    np.testing.assert_allclose(y, x @ w + bias, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, g @ b.T, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_np(grads["kernel"]),
                               np.einsum("bti,bto->io", x, g), rtol=RTOL,
                               atol=ATOL)
    np.testing.assert_allclose(_np(grads["bias"]), g.sum((0, 1)), rtol=RTOL,
                               atol=ATOL)


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "valid")])
def test_conv_channels_first_matches_channels_last(strides, padding):
  rng = np.random.default_rng(2)
  kwargs = dict(strides=strides, padding=padding, feedback="rndf", seed=9)
  cl = tfbio.layers.Conv2D(4, 3, data_format="channels_last", **kwargs)
  cf = tfbio.layers.Conv2D(4, 3, data_format="channels_first", **kwargs)
  x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
  xt = np.transpose(x, (0, 3, 1, 2))
  cl.build(x.shape)
  cf.build(xt.shape)
  assert tuple(cf.kernel.shape) == tuple(cl.kernel.shape) == (3, 3, 3, 4)
  cf.kernel.assign(cl.kernel)
  cl.bias.assign(rng.standard_normal(4).astype(np.float32))
  cf.bias.assign(cl.bias)
  # Same seed, same algorithm: the same fixed random B.
  np.testing.assert_array_equal(_np(cf.feedback_kernel()),
                                _np(cl.feedback_kernel()))
  out = cl.compute_output_shape(x.shape)
  g = rng.standard_normal(out).astype(np.float32)
  gt = np.transpose(g, (0, 3, 1, 2))
  assert cf.compute_output_shape(xt.shape) == gt.shape
  y_cl, dx_cl, gr_cl = _training_grads(cl, x, g)
  y_cf, dx_cf, gr_cf = _training_grads(cf, xt, gt)
  np.testing.assert_allclose(y_cf, np.transpose(y_cl, (0, 3, 1, 2)),
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dx_cf, np.transpose(dx_cl, (0, 3, 1, 2)),
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(_np(gr_cf["kernel"]), _np(gr_cl["kernel"]),
                             rtol=RTOL, atol=ATOL)
  # And channels_last itself matches the reference with B.
  _, rdx, _ = _reference_grads(_reference_op(cl), x, _np(cl.kernel),
                               _np(cl.feedback_kernel()), g)
  np.testing.assert_allclose(dx_cl, rdx, rtol=RTOL, atol=ATOL)


def test_conv_dilation_gradients():
  rng = np.random.default_rng(3)
  layer = tfbio.layers.Conv2D(4, 3, dilation_rate=2, padding="same",
                              feedback="frsf", seed=4)
  x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
  layer.build(x.shape)
  w, b = _np(layer.kernel), _np(layer.feedback_kernel())
  g = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
  y, dx, grads = _training_grads(layer, x, g)
  ry, rdx, rdw = _reference_grads(_reference_op(layer), x, w, b, g)
  np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(_np(grads["kernel"]), rdw, rtol=RTOL, atol=ATOL)


# -- exact definitions of B ---------------------------------------------------


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_sign_symmetric_definitions(kind):
  in_shape = (2, 6) if kind == "dense" else (1, 5, 5, 3)
  for name in ("ss", "usf", "nusf"):
    layer = _make(kind, name, units=7, seed=1)
    layer.build(in_shape)
    w = _np(layer.kernel)
    if kind == "dense":
      n_in = in_shape[-1]
      ss_scale = 1.0 / math.sqrt(n_in)
      fan_in = n_in
    else:
      kh, kw, c_in, c_out = w.shape
      ss_scale = math.sqrt(2.0 / (kh * kw * c_out))
      fan_in = kh * kw * c_in
    expected = {"ss": np.sign(w) * ss_scale, "usf": np.sign(w),
                "nusf": np.sign(w) / fan_in}[name]
    np.testing.assert_allclose(_np(layer.feedback_kernel()), expected,
                               rtol=1e-6, atol=0, err_msg=name)
    # Recomputed from the current W: follows W after an assignment.
    layer.kernel.assign(-layer.kernel)
    np.testing.assert_allclose(_np(layer.feedback_kernel()), -expected,
                               rtol=1e-6, atol=0, err_msg=name)


def _big_dense(feedback, seed=3, shape=(200, 300), **kwargs):
  layer = tfbio.layers.Dense(shape[1], feedback=feedback, seed=seed, **kwargs)
  layer.build((None, shape[0]))
  return layer


def _check_uniform01(m, msg=""):
  assert m.min() >= 0.0 and m.max() < 1.0, msg
  np.testing.assert_allclose(m.mean(), 0.5, atol=0.01, err_msg=msg)
  np.testing.assert_allclose(m.std(), 1 / math.sqrt(12), atol=0.01,
                             err_msg=msg)


def _step(layer):
  """One training call (advances the step of per-step algorithms)."""
  layer(tf.zeros((1,) + tuple(layer.kernel.shape[:-1][-1:])), training=True)


def test_frsf_magnitude_uniform_and_fixed():
  layer = _big_dense("frsf")
  w = _np(layer.kernel)
  b = _np(layer.feedback_kernel())
  m = b / np.sign(w)
  _check_uniform01(m)
  np.testing.assert_array_equal(np.sign(b), np.sign(w))
  assert abs(np.corrcoef(np.abs(w).ravel(), m.ravel())[0, 1]) < 0.03
  for _ in range(2):
    _step(layer)
  np.testing.assert_array_equal(_np(layer.feedback_kernel()), b)
  # M is fixed, sign(W) is read each step.
  layer.kernel.assign(-layer.kernel)
  np.testing.assert_array_equal(_np(layer.feedback_kernel()), -b)


def test_brsf_redrawn_each_step_and_reproducible():
  a = _big_dense("brsf", seed=21, shape=(30, 40))
  b = _big_dense("brsf", seed=21, shape=(30, 40))
  c = _big_dense("brsf", seed=22, shape=(30, 40))
  b.kernel.assign(a.kernel)
  c.kernel.assign(a.kernel)
  w = _np(a.kernel)
  seen = []
  for step in range(3):
    ba = _np(a.feedback_kernel())
    np.testing.assert_array_equal(_np(b.feedback_kernel()), ba)
    assert np.abs(_np(c.feedback_kernel()) - ba).max() > 0.1
    np.testing.assert_array_equal(np.sign(ba), np.sign(w))
    m = ba / np.sign(w)
    assert m.min() >= 0 and m.max() < 1
    for prev in seen:
      assert np.abs(prev - ba).max() > 0.1, step
    seen.append(ba)
    for layer in (a, b, c):
      _step(layer)
  # A layer rebuilt and set to step 1 draws what the first drew at step 1.
  d = _big_dense("brsf", seed=21, shape=(30, 40))
  d.kernel.assign(a.kernel)
  d.feedback_step.assign(1)
  np.testing.assert_array_equal(_np(d.feedback_kernel()), seen[1])


def test_brsf_magnitude_distribution():
  layer = _big_dense("brsf")
  w = _np(layer.kernel)
  _check_uniform01(_np(layer.feedback_kernel()) / np.sign(w))


@pytest.mark.parametrize("name", FLIP_NAMES)
def test_flip_fraction_and_magnitude(name):
  n = 200 * 300
  for p in (0.0, 0.25, 0.5, 1.0):
    layer = _big_dense({"name": name, "flip_prob": p}, seed=5)
    w = _np(layer.kernel)
    b = _np(layer.feedback_kernel())
    flipped = np.sign(b) != np.sign(w)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(flipped.mean() - p) <= 3 * sigma + 1e-12, (p, flipped.mean())
    _check_uniform01(np.abs(b), f"{name} p={p}")
    if p == 0.5:
      b_before = b
      _step(layer)
      flipped_next = np.sign(_np(layer.feedback_kernel())) != np.sign(w)
      if name == "brsf_p":
        # Signs redrawn: about half of the flip pattern changes.
        np.testing.assert_allclose((flipped != flipped_next).mean(), 0.5,
                                   atol=0.02)
      else:
        np.testing.assert_array_equal(_np(layer.feedback_kernel()), b_before)


def test_rndf_distribution_and_fixed():
  layer = _big_dense("rndf")
  w = _np(layer.kernel)
  b = _np(layer.feedback_kernel())
  np.testing.assert_allclose(b.std(), 0.05, rtol=0.02)
  np.testing.assert_allclose(b.mean(), 0.0, atol=0.05 * 4 / math.sqrt(b.size))
  assert abs(np.corrcoef(w.ravel(), b.ravel())[0, 1]) < 0.03
  _step(layer)
  layer.kernel.assign(-layer.kernel)
  np.testing.assert_array_equal(_np(layer.feedback_kernel()), b)
  custom = _big_dense({"name": "rndf", "std": 0.2}, shape=(50, 60))
  np.testing.assert_allclose(_np(custom.feedback_kernel()).std(), 0.2,
                             rtol=0.05)


@pytest.mark.parametrize("name", ["fa", "frfb", "urfb"])
def test_fa_dense_distribution_like_kernel_initializer(name):
  n_in = 200
  init = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform",
                                            seed=17)
  layer = _big_dense(name, shape=(n_in, 300), kernel_initializer=init)
  w = _np(layer.kernel)
  b = _np(layer.feedback_kernel())
  s = 1 / math.sqrt(n_in)
  for t in (w, b):
    assert np.abs(t).max() <= s * (1 + 1e-6)
    assert np.abs(t).max() > 0.99 * s
    np.testing.assert_allclose(t.std(), s / math.sqrt(3), rtol=0.02)
    np.testing.assert_allclose(t.mean(), 0.0, atol=0.01 * s)
  assert abs(np.corrcoef(w.ravel(), b.ravel())[0, 1]) < 0.03


def test_fa_conv_distribution_like_kernel_initializer():
  init = keras.initializers.VarianceScaling(2.0, "fan_out",
                                            "untruncated_normal")
  layer = tfbio.layers.Conv2D(64, 3, feedback="fa", seed=8,
                              kernel_initializer=init)
  layer.build((None, 8, 8, 64))
  w = _np(layer.kernel)
  b = _np(layer.feedback_kernel())
  s = math.sqrt(2.0 / (3 * 3 * 64))
  for t in (w, b):
    np.testing.assert_allclose(t.std(), s, rtol=0.03)
    np.testing.assert_allclose(t.mean(), 0.0, atol=0.03 * s)
  # Untruncated: some entries beyond 2 std exist (~4.6%).
  assert (np.abs(b) > 2 * s).mean() > 0.03
  assert abs(np.corrcoef(w.ravel(), b.ravel())[0, 1]) < 0.03


def test_fa_fixed_across_steps_and_independent_of_w_updates():
  layer = _big_dense("fa", shape=(20, 30))
  b = _np(layer.feedback_kernel())
  _step(layer)
  layer.kernel.assign(layer.kernel * 3.0 + 1.0)
  np.testing.assert_array_equal(_np(layer.feedback_kernel()), b)


def test_fa_initializer_override():
  layer = _big_dense({"name": "fa", "initializer": keras.initializers.
                      RandomUniform(2.0, 3.0)}, shape=(20, 30))
  b = _np(layer.feedback_kernel())
  assert b.min() >= 2.0 and b.max() < 3.0
  assert np.abs(_np(layer.kernel)).max() < 1.0
  layer = _big_dense({"name": "fa", "initializer": "ones"}, shape=(4, 5))
  np.testing.assert_array_equal(_np(layer.feedback_kernel()),
                                np.ones((4, 5), np.float32))
  layer = _big_dense(fb.get("urfb", initializer="zeros"), shape=(4, 5))
  np.testing.assert_array_equal(_np(layer.feedback_kernel()),
                                np.zeros((4, 5), np.float32))


def test_frfb_behaves_like_fa():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((3, 6)).astype(np.float32)
  g = rng.standard_normal((3, 5)).astype(np.float32)
  results = []
  for name in ("fa", "frfb"):
    init = keras.initializers.GlorotUniform(seed=3)
    layer = tfbio.layers.Dense(5, feedback=name, seed=13,
                               kernel_initializer=init)
    layer.build(x.shape)
    assert layer.feedback.name == "fa"
    assert layer.get_config()["feedback"] == {"name": "fa",
                                              "initializer": None}
    results.append((_np(layer.kernel), _np(layer.feedback_kernel()))
                   + _training_grads(layer, x, g)[:2])
  for a, b in zip(*results):
    np.testing.assert_array_equal(a, b)


def test_stored_feedback_same_seed_same_b():
  for name in ("fa", "rndf", "frsf", "urfb"):
    a = _big_dense(name, seed=31, shape=(10, 12))
    b = _big_dense(name, seed=31, shape=(10, 12))
    c = _big_dense(name, seed=32, shape=(10, 12))
    if name == "frsf":
      b.kernel.assign(a.kernel)
      c.kernel.assign(a.kernel)
    ba = _np(a.feedback_kernel())
    np.testing.assert_array_equal(_np(b.feedback_kernel()), ba, err_msg=name)
    assert np.abs(_np(c.feedback_kernel()) - ba).max() > 1e-3, name


# -- urfb: B moves with W -------------------------------------------------------


def _urfb_model(**layer_kwargs):
  return keras.Sequential([
      keras.Input((5, 5, 2)),
      tfbio.layers.Conv2D(3, 3, feedback="urfb", activation="tanh", seed=1,
                          **layer_kwargs),
      keras.layers.Flatten(),
      tfbio.layers.Dense(4, feedback="urfb", activation="tanh", seed=2,
                         **layer_kwargs),
      tfbio.layers.Dense(2, feedback="urfb", seed=3, **layer_kwargs),
  ])


def _fit_data():
  rng = np.random.default_rng(7)
  x = rng.standard_normal((8, 5, 5, 2)).astype(np.float32)
  y = rng.standard_normal((8, 2)).astype(np.float32)
  return x, y


@pytest.mark.parametrize("optimizer,steps", [
    (lambda: keras.optimizers.SGD(0.1), 1),
    (lambda: keras.optimizers.SGD(0.1, momentum=0.9), 2),
    (lambda: keras.optimizers.Adam(0.01), 2),
], ids=["sgd", "momentum", "adam"])
def test_urfb_b_moves_with_w(optimizer, steps):
  model = _urfb_model()
  model.compile(optimizer(), "mse", jit_compile=False)
  x, y = _fit_data()
  layers = [l for l in model.layers if isinstance(l, tfbio.layers.Dense)
            or isinstance(l, tfbio.layers.Conv2D)]
  before = [(_np(l.kernel), _np(_var(l, "feedback_kernel"))) for l in layers]
  for w0, b0 in before:
    assert np.abs(w0 - b0).max() > 1e-3
  model.fit(x, y, batch_size=8, epochs=steps, verbose=0, shuffle=False)
  for layer, (w0, b0) in zip(layers, before):
    w1, b1 = _np(layer.kernel), _np(_var(layer, "feedback_kernel"))
    assert np.abs(w1 - w0).max() > 1e-4, layer.name  # it did train
    np.testing.assert_allclose(b1 - b0, w1 - w0, rtol=0, atol=1e-6,
                               err_msg=layer.name)


# -- sparse connectivity masks ----------------------------------------------


def test_mask_fractions_and_independence():
  layer = _big_dense("fa", shape=(100, 200), density=0.5,
                     feedback_density=0.5)
  wm = _np(_var(layer, "kernel_mask"))
  bm = _np(_var(layer, "feedback_mask"))
  assert set(np.unique(wm)) <= {0.0, 1.0}
  assert set(np.unique(bm)) <= {0.0, 1.0}
  n = wm.size
  tol = 4 * math.sqrt(0.25 / n)
  np.testing.assert_allclose(1 - wm.mean(), 0.5, atol=tol)
  np.testing.assert_allclose(1 - bm.mean(), 0.5, atol=tol)
  np.testing.assert_allclose(((wm == 0) & (bm == 0)).mean(), 0.25,
                             atol=4 * math.sqrt(0.25 * 0.75 / n))
  w = _np(layer.kernel)
  b = _np(layer.feedback_kernel())
  np.testing.assert_array_equal(w[wm == 0], 0.0)
  np.testing.assert_array_equal(b[bm == 0], 0.0)
  assert (w[wm == 1] != 0).all()
  assert (b[bm == 1] != 0).all()
  other = _big_dense("fa", shape=(100, 200), density=0.3)
  np.testing.assert_allclose(
      1 - _np(_var(other, "kernel_mask")).mean(), 0.7, atol=0.01)


def test_masked_gradients():
  rng = np.random.default_rng(5)
  for name in ("bp", "ss", "urfb", "brsf"):
    layer = tfbio.layers.Dense(8, feedback=name, density=0.5,
                               feedback_density=0.5, seed=3)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    layer.build(x.shape)
    wm = _np(_var(layer, "kernel_mask"))
    bm = _np(_var(layer, "feedback_mask"))
    w = _np(layer.kernel)
    b = _np(layer.feedback_kernel())
    np.testing.assert_array_equal(b[bm == 0], 0.0, err_msg=name)
    if name == "bp":
      np.testing.assert_allclose(b, w * bm, rtol=0, atol=0)
    g = rng.standard_normal((4, 8)).astype(np.float32)
    y, dx, grads = _training_grads(layer, x, g)
    np.testing.assert_allclose(y, x @ (w * wm), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, g @ b.T, rtol=RTOL, atol=ATOL,
                               err_msg=name)
    np.testing.assert_allclose(_np(grads["kernel"]), (x.T @ g) * wm,
                               rtol=RTOL, atol=ATOL, err_msg=name)
    if name == "urfb":
      np.testing.assert_array_equal(
          _np(grads["feedback_kernel"])[bm == 0], 0.0)


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01),
    lambda: keras.optimizers.Adam(0.05, weight_decay=0.01),
], ids=["sgd_momentum_wd", "adam"])
@pytest.mark.parametrize("name", ["fa", "urfb"])
def test_masked_entries_stay_zero_during_fit(optimizer, name):
  kwargs = dict(density=0.5, feedback_density=0.5)
  model = keras.Sequential([
      keras.Input((5, 5, 2)),
      tfbio.layers.Conv2D(3, 3, feedback=name, activation="tanh", seed=1,
                          **kwargs),
      keras.layers.Flatten(),
      tfbio.layers.Dense(4, feedback=name, activation="tanh", seed=2,
                         **kwargs),
      tfbio.layers.Dense(2, feedback=name, seed=3, **kwargs),
  ])
  model.compile(optimizer(), "mse", jit_compile=False)
  x, y = _fit_data()
  layers = [l for l in model.layers if not isinstance(l, keras.layers.Flatten)]
  w0 = [_np(l.kernel) for l in layers]
  model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False)
  for layer, w_before in zip(layers, w0):
    wm = _np(_var(layer, "kernel_mask"))
    bm = _np(_var(layer, "feedback_mask"))
    w = _np(layer.kernel)
    assert np.abs(w - w_before)[wm == 1].max() > 1e-4, layer.name
    np.testing.assert_array_equal(w[wm == 0], 0.0, err_msg=layer.name)
    np.testing.assert_array_equal(_np(layer.feedback_kernel())[bm == 0], 0.0,
                                  err_msg=layer.name)
    stored = _np(_var(layer, "feedback_kernel"))
    np.testing.assert_array_equal(stored[bm == 0], 0.0, err_msg=layer.name)
    if name == "urfb":
      assert np.abs(stored - _np(layer.feedback_kernel())).max() == 0.0


# -- sign-fixed weights ---------------------------------------------------------


def _sign_setup(sign_fixed, **kwargs):
  rng = np.random.default_rng(6)
  layer = tfbio.layers.Dense(6, feedback="fa", sign_fixed=sign_fixed, seed=4,
                             kernel_initializer=keras.initializers.
                             GlorotUniform(seed=5), **kwargs)
  x = rng.standard_normal((16, 8)).astype(np.float32)
  y = rng.standard_normal((16, 6)).astype(np.float32) * 3.0
  layer.build(x.shape)
  return layer, x, y


def _sgd_step(layer, optimizer, x, y):
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean((layer(x, training=True) - y) ** 2)
  grads = tape.gradient(loss, layer.trainable_weights)
  optimizer.apply(grads, layer.trainable_weights)
  return {v.path.split("/")[-1]: _np(gr)
          for v, gr in zip(layer.trainable_weights, grads)}


def test_sign_fixed_keeps_signs():
  lr = 2.0
  layer, x, y = _sign_setup(True)
  w0 = _np(layer.kernel)
  ref = _np(_var(layer, "sign_reference"))
  np.testing.assert_array_equal(ref, np.where(w0 >= 0, 1.0, -1.0))
  optimizer = keras.optimizers.SGD(lr)
  grads = _sgd_step(layer, optimizer, x, y)
  unconstrained = w0 - lr * grads["kernel"]
  flipped = np.sign(unconstrained) != np.sign(w0)
  assert flipped.sum() >= 5, flipped.sum()
  assert (~flipped).sum() >= 5
  w1 = _np(layer.kernel)
  np.testing.assert_array_equal(w1[flipped],
                                (np.float32(1e-10) * ref)[flipped])
  np.testing.assert_allclose(w1[~flipped], unconstrained[~flipped],
                             rtol=1e-6, atol=1e-7)
  for _ in range(5):
    _sgd_step(layer, optimizer, x, y)
  w = _np(layer.kernel)
  assert (w * ref > 0).all()
  assert np.abs(w - w0).max() > 0.1  # it did train
  tiny = np.abs(w) < 1e-9
  assert tiny.any()
  np.testing.assert_array_equal(w[tiny], (np.float32(1e-10) * ref)[tiny])
  np.testing.assert_array_equal(_np(_var(layer, "sign_reference")), ref)


def test_without_sign_fixed_signs_flip():
  lr = 2.0
  layer, x, y = _sign_setup(False)
  w0 = _np(layer.kernel)
  optimizer = keras.optimizers.SGD(lr)
  grads = _sgd_step(layer, optimizer, x, y)
  w1 = _np(layer.kernel)
  np.testing.assert_allclose(w1, w0 - lr * grads["kernel"], rtol=1e-6,
                             atol=1e-7)
  assert (np.sign(w1) != np.sign(w0)).sum() >= 5


def test_sign_fixed_with_fit_and_mask():
  model = keras.Sequential([
      keras.Input((8,)),
      tfbio.layers.Dense(6, feedback="ss", sign_fixed=True, density=0.5,
                         seed=3),
  ])
  model.compile(keras.optimizers.SGD(2.0, momentum=0.9), "mse",
                jit_compile=False)
  rng = np.random.default_rng(8)
  x = rng.standard_normal((16, 8)).astype(np.float32)
  y = rng.standard_normal((16, 6)).astype(np.float32) * 3.0
  layer = model.layers[0]
  w0 = _np(layer.kernel)
  ref = _np(_var(layer, "sign_reference"))
  wm = _np(_var(layer, "kernel_mask"))
  model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
  w = _np(layer.kernel)
  np.testing.assert_array_equal(w[wm == 0], 0.0)
  assert (w * ref > 0)[wm == 1].all()
  assert np.abs(w - w0).max() > 0.1


# -- argument validation ----------------------------------------------------


@pytest.mark.parametrize("factory,quoted", [
    (lambda: tfbio.layers.Dense(0), "units=0"),
    (lambda: tfbio.layers.Dense(-3), "units=-3"),
    (lambda: tfbio.layers.Dense("a"), "units='a'"),
    (lambda: tfbio.layers.Conv2D(0, 3), "filters=0"),
    (lambda: tfbio.layers.Conv2D(4, 0), "kernel_size=0"),
    (lambda: tfbio.layers.Conv2D(4, (3,)), "kernel_size=(3,)"),
    (lambda: tfbio.layers.Conv2D(4, 3, strides=0), "strides=0"),
    (lambda: tfbio.layers.Conv2D(4, 3, padding="full"), "padding='full'"),
    (lambda: tfbio.layers.Conv2D(4, 3, groups=0), "groups=0"),
    (lambda: tfbio.layers.Conv2D(4, 3, groups=3), "filters=4, groups=3"),
    (lambda: tfbio.layers.Dense(4, density=0), "density=0"),
    (lambda: tfbio.layers.Dense(4, density=1.5), "density=1.5"),
    (lambda: tfbio.layers.Conv2D(4, 3, density=0), "density=0"),
    (lambda: tfbio.layers.Dense(4, feedback_density=-1),
     "feedback_density=-1"),
    (lambda: tfbio.layers.Dense(4, sign_fixed="yes"), "sign_fixed='yes'"),
    (lambda: tfbio.layers.Dense(4, seed=-1), "seed=-1"),
    (lambda: tfbio.layers.Conv2D(4, 3, seed=-1), "seed=-1"),
    (lambda: tfbio.layers.Dense(4, feedback="nope"), "'nope'"),
    (lambda: tfbio.layers.Conv2D(4, 3, feedback="nope"), "'nope'"),
    (lambda: tfbio.layers.Dense(4, feedback="frsf_p"), "flip_prob"),
    (lambda: tfbio.layers.Dense(
        4, feedback={"name": "brsf_p", "flip_prob": 1.5}), "flip_prob=1.5"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments(factory, quoted):
  with pytest.raises(ValueError, match=re.escape(quoted)):
    factory()


# -- configs ------------------------------------------------------------------


def test_get_config_round_trip_every_algorithm():
  for name in ALL_NAMES:
    for layer in (
        tfbio.layers.Dense(4, feedback=_feedback(name), seed=7, density=0.5,
                           activation="relu"),
        tfbio.layers.Conv2D(3, (3, 2), strides=2, padding="same",
                            feedback=_feedback(name), seed=8,
                            feedback_density=0.5, sign_fixed=True),
    ):
      config = layer.get_config()
      again = type(layer).from_config(config)
      assert again.get_config() == config, name
      assert config["feedback"] == fb.serialize(_feedback(name)), name
      assert again.feedback == layer.feedback, name
      assert config["seed"] in (7, 8)


def test_config_rebuild_draws_same_feedback_state():
  for name in ("rndf", "frsf", {"name": "frsf_p", "flip_prob": 0.5}, "fa"):
    layer = tfbio.layers.Conv2D(3, 3, feedback=name, seed=12)
    layer.build((None, 6, 6, 2))
    again = tfbio.layers.Conv2D.from_config(layer.get_config())
    again.build((None, 6, 6, 2))
    again.kernel.assign(layer.kernel)
    np.testing.assert_array_equal(_np(again.feedback_kernel()),
                                  _np(layer.feedback_kernel()),
                                  err_msg=str(name))


def test_seed_drawn_when_none_and_stored():
  layer = tfbio.layers.Dense(3, feedback="frsf")
  assert isinstance(layer.seed, int) and layer.seed >= 0
  assert layer.get_config()["seed"] == layer.seed
