"""Feedback versions of Keras' layers with a linear kernel (issue 15).

Every tfbio layer here is checked against the Keras layer of the same name
holding the same weights: the forward pass and the weight gradients are
Keras', and the input gradient is Keras' with the kernel(s) replaced by the
feedback kernel(s) ``B``. Loops over algorithms live inside the tests (each
test pays for a Keras session reset in conftest).
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import feedback as fb
from tfbio.layers import feedback_mixin
from tfbio.ops import feedback_kernels as fk

RULES = ("bp", "ss", "fa", "brsf", "urfb", "kp")
RTOL, ATOL = 1e-4, 1e-5

# id -> (tfbio class, Keras class, kwargs, input shape)
CASES = {
    "conv1d": (tfbio.layers.Conv1D, keras.layers.Conv1D,
               dict(filters=4, kernel_size=3, strides=2, padding="same"),
               (2, 9, 3)),
    "conv1d_causal": (tfbio.layers.Conv1D, keras.layers.Conv1D,
                      dict(filters=3, kernel_size=3, padding="causal",
                           dilation_rate=2), (2, 8, 2)),
    "conv3d": (tfbio.layers.Conv3D, keras.layers.Conv3D,
               dict(filters=3, kernel_size=2), (2, 4, 3, 4, 2)),
    "conv1d_transpose": (tfbio.layers.Conv1DTranspose,
                         keras.layers.Conv1DTranspose,
                         dict(filters=3, kernel_size=3, strides=2,
                              padding="same"), (2, 5, 2)),
    "conv2d_transpose": (tfbio.layers.Conv2DTranspose,
                         keras.layers.Conv2DTranspose,
                         dict(filters=3, kernel_size=3, strides=2),
                         (2, 4, 3, 2)),
    "conv3d_transpose": (tfbio.layers.Conv3DTranspose,
                         keras.layers.Conv3DTranspose,
                         dict(filters=2, kernel_size=2, strides=2),
                         (1, 3, 2, 3, 2)),
    "depthwise_conv1d": (tfbio.layers.DepthwiseConv1D,
                         keras.layers.DepthwiseConv1D,
                         dict(kernel_size=3, depth_multiplier=2,
                              padding="same"), (2, 7, 3)),
    "depthwise_conv2d": (tfbio.layers.DepthwiseConv2D,
                         keras.layers.DepthwiseConv2D,
                         dict(kernel_size=3, depth_multiplier=2, strides=2,
                              padding="same"), (2, 6, 5, 3)),
    "separable_conv1d": (tfbio.layers.SeparableConv1D,
                         keras.layers.SeparableConv1D,
                         dict(filters=4, kernel_size=3, depth_multiplier=2),
                         (2, 7, 3)),
    "separable_conv2d": (tfbio.layers.SeparableConv2D,
                         keras.layers.SeparableConv2D,
                         dict(filters=4, kernel_size=3, padding="same",
                              strides=2), (2, 5, 6, 3)),
    "einsum_dense": (tfbio.layers.EinsumDense, keras.layers.EinsumDense,
                     dict(equation="abc,cde->abde", output_shape=(3, 2, 3),
                          bias_axes="de"), (2, 3, 4)),
}
KERNELS = {"separable_conv1d": ("depthwise_kernel", "pointwise_kernel"),
           "separable_conv2d": ("depthwise_kernel", "pointwise_kernel")}


def _np(t):
  return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def _kernels(case):
  return KERNELS.get(case, ("kernel",))


def _keras_weights(layer):
  """The layer's Keras variables (no feedback state), in Keras' order."""
  ids = {id(v) for v in layer.feedback_variables}
  return [v for v in layer.weights if id(v) not in ids]


def _build_pair(case, feedback, rng, **extra):
  cls, keras_cls, kwargs, shape = CASES[case]
  layer = cls(**kwargs, feedback=feedback, seed=3, **extra)
  layer.build(shape)
  for v in _keras_weights(layer):  # non-trivial weights, biases included
    v.assign(rng.normal(0, 0.5, size=v.shape).astype("float32"))
  layer.reset_sign_reference()
  ref = keras_cls(**kwargs)
  ref.build(shape)
  ref.set_weights([_np(v) for v in _keras_weights(layer)])
  return layer, ref, shape


def _grads(layer, x, g, training):
  x = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=training) if training else layer(x)
    loss = tf.reduce_sum(y * g)
  variables = layer.trainable_weights
  grads = tape.gradient(loss, [x] + variables)
  named = {v.path.split("/")[-1]: gr for v, gr in zip(variables, grads[1:])}
  return _np(y), _np(grads[0]), named


def _with_kernels(ref, values, x, g):
  """Keras' (y, dx, grads) with the given kernels assigned (then restored)."""
  saved = {name: _np(getattr(ref, name)) for name in values}
  for name, value in values.items():
    getattr(ref, name).assign(value)
  try:
    return _grads(ref, x, g, training=False)
  finally:
    for name, value in saved.items():
      getattr(ref, name).assign(value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradients_match_keras_with_b_substituted(case):
  rng = np.random.default_rng(0)
  names = _kernels(case)
  for rule in RULES:
    msg = f"{case}/{rule}"
    layer, ref, shape = _build_pair(case, rule, rng)
    x = rng.normal(size=shape).astype("float32")
    g = rng.normal(size=layer.compute_output_shape(shape)).astype("float32")
    w = {n: _np(getattr(layer, n)) for n in names}
    b = {n: _np(layer.feedback_kernel(n)) for n in names}
    if rule == "bp":
      for n in names:
        np.testing.assert_array_equal(b[n], w[n], err_msg=msg)
    else:
      for n in names:
        assert np.abs(b[n] - w[n]).max() > 1e-3, msg

    y, dx, grads = _grads(layer, x, g, training=True)

    ry, _, rgrads = _with_kernels(ref, {}, x, g)
    _, rdx, _ = _with_kernels(ref, b, x, g)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL, err_msg=msg)
    np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL, err_msg=msg)
    np.testing.assert_allclose(_np(grads["bias"]), _np(rgrads["bias"]),
                               rtol=RTOL, atol=ATOL, err_msg=msg)
    if len(names) == 2:
      # Separable: the depthwise kernel gets the signal sent back through
      # the pointwise B; the pointwise kernel's gradient is exact.
      _, _, dgrads = _with_kernels(ref, {names[1]: b[names[1]]}, x, g)
      expected = {names[0]: dgrads[names[0]], names[1]: rgrads[names[1]]}
    else:
      expected = {names[0]: rgrads[names[0]]}
    for n in names:
      np.testing.assert_allclose(_np(grads[n]), _np(expected[n]), rtol=RTOL,
                                 atol=ATOL, err_msg=f"{msg}/{n}")
    prefixes = {"kernel": ""}
    prefixes.update(depthwise_kernel="depthwise_",
                    pointwise_kernel="pointwise_")
    if fb.get(rule).trainable_feedback:
      for n in names:
        np.testing.assert_array_equal(
            _np(grads[prefixes[n] + "feedback_kernel"]), _np(grads[n]),
            err_msg=msg)
    else:
      assert set(grads) == set(names) | {"bias"}, msg
    if rule == "brsf":
      assert int(_np(layer.feedback_step)) == 1, msg  # once per call
      for n in names:
        assert np.abs(_np(layer.feedback_kernel(n)) - b[n]).max() > 1e-3
    if rule == "bp":  # the plain Keras op: bit-identical
      np.testing.assert_array_equal(y, ry, err_msg=msg)


@pytest.mark.parametrize("case", sorted(CASES))
def test_kind_fans_and_ss_scale_are_keras(case):
  # pylint: disable-next=g-import-not-at-top
  from keras.src.initializers.random_initializers import compute_fans
  layer, _, _ = _build_pair(case, "ss", np.random.default_rng(1))
  for n in _kernels(case):
    w = _np(getattr(layer, n))
    ctx = layer.feedback_context(n)
    if case == "einsum_dense":
      # Kernel (c, d, e) of "abc,cde->abde": Keras' einsum fans.
      assert ctx.kind == "dense"
      assert (ctx.fan_in, ctx.fan_out) == (w.shape[0], w.shape[1] * w.shape[2])
      assert (ctx.fan_in, ctx.fan_out) == compute_fans(w.shape, [0], [1, 2])
    else:
      assert ctx.kind == "conv"
      assert (ctx.fan_in, ctx.fan_out) == compute_fans(w.shape)
    np.testing.assert_allclose(
        _np(layer.feedback_kernel(n)),
        np.sign(w) * fk.ss_scale(ctx.kind, ctx.fan_in, ctx.fan_out),
        rtol=1e-6, err_msg=f"{case}/{n}")


def test_transposed_and_depthwise_fans_explicitly():
  t = tfbio.layers.Conv2DTranspose(5, 3, feedback="ss")
  t.build((None, 4, 4, 2))   # kernel (3, 3, 5, 2): filters=5, c_in=2
  assert t.feedback_context()[1:3] == (9 * 5, 9 * 2)
  d = tfbio.layers.DepthwiseConv2D(3, depth_multiplier=2, feedback="ss")
  d.build((None, 6, 6, 4))   # kernel (3, 3, 4, 2)
  assert d.feedback_context()[1:3] == (9 * 4, 9 * 2)
  np.testing.assert_allclose(_np(d.feedback_kernel()),
                             np.sign(_np(d.kernel)) * math.sqrt(2 / 18),
                             rtol=1e-6)


def test_fa_draws_b_like_the_kernel_initializer():
  # EinsumDense: Keras' Glorot uses the einsum fans (c=64, d*e=8*8).
  layer = tfbio.layers.EinsumDense("abc,cde->abde", (None, 8, 8),
                                   feedback="fa", seed=4)
  layer.build((None, 3, 64))
  w, b = _np(layer.kernel), _np(layer.feedback_kernel())
  limit = math.sqrt(6 / (64 + 64))
  for t in (w, b):
    assert np.abs(t).max() <= limit and np.abs(t).max() > 0.95 * limit
  assert abs(np.corrcoef(w.ravel(), b.ravel())[0, 1]) < 0.1
  # Depthwise: from depthwise_initializer.
  d = tfbio.layers.DepthwiseConv2D(
      3, feedback="fa", depthwise_initializer=keras.initializers.RandomUniform(
          2.0, 3.0))
  d.build((None, 5, 5, 4))
  assert _np(d.feedback_kernel()).min() >= 2.0


def test_bp_is_the_plain_op(monkeypatch):
  calls = []

  def counting(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)

  real = feedback_mixin.feedback_linear
  monkeypatch.setattr(feedback_mixin, "feedback_linear", counting)
  rng = np.random.default_rng(2)
  for case in ("conv1d", "separable_conv2d", "einsum_dense"):
    layer, _, shape = _build_pair(case, "bp", rng)
    _grads(layer, rng.normal(size=shape).astype("float32"),
           1.0, training=True)
    assert not calls, case
    assert layer.feedback_variables == []
    layer, _, shape = _build_pair(case, "ss", rng)
    _grads(layer, rng.normal(size=shape).astype("float32"), 1.0,
           training=True)
    assert len(calls) == len(_kernels(case)), case
    calls.clear()


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_and_keras_file_round_trip(case, tmp_path):
  cls, keras_cls, kwargs, shape = CASES[case]
  rule = {"name": "frsf_p", "flip_prob": 0.3} if "conv" in case else "urfb"
  layer = cls(**kwargs, feedback=rule, seed=6, feedback_density=0.5,
              activation="relu", name="layer")
  config = layer.get_config()
  again = cls.from_config(config)
  assert again.get_config() == config
  assert config["feedback"] == fb.serialize(rule)
  keras_config = keras_cls(**kwargs, activation="relu",
                           name="layer").get_config()
  for key, value in keras_config.items():
    assert config[key] == value, key

  model = keras.Sequential([keras.Input(shape[1:]), layer])
  x = np.random.default_rng(3).normal(size=shape).astype("float32")
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  new = loaded.layers[0]
  assert type(new) is cls
  assert [v.name for v in new.weights] == [v.name for v in layer.weights]
  for a, b in zip(layer.weights, new.weights):
    np.testing.assert_array_equal(_np(a), _np(b), err_msg=a.path)
  for n in _kernels(case):
    np.testing.assert_array_equal(_np(new.feedback_kernel(n)),
                                  _np(layer.feedback_kernel(n)))
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))


def test_masks_and_sign_fixed_during_fit():
  model = keras.Sequential([
      keras.Input((8, 3)),
      tfbio.layers.SeparableConv1D(4, 3, feedback="urfb", density=0.5,
                                   feedback_density=0.5, sign_fixed=True,
                                   seed=1, activation="tanh"),
      keras.layers.Flatten(),
      tfbio.layers.EinsumDense("ab,bc->ac", 2, feedback="fa", density=0.5,
                               seed=2),
  ])
  model.compile(keras.optimizers.SGD(1.0), "mse", jit_compile=False)
  rng = np.random.default_rng(4)
  x = rng.normal(size=(8, 8, 3)).astype("float32")
  y = 3 * rng.normal(size=(8, 2)).astype("float32")
  sep, dense = model.layers[0], model.layers[2]
  before = {n: _np(getattr(sep, n)) for n in _kernels("separable_conv1d")}
  model.fit(x, y, batch_size=4, epochs=3, verbose=0)
  for n, prefix in (("depthwise_kernel", "depthwise_"),
                    ("pointwise_kernel", "pointwise_")):
    w = _np(getattr(sep, n))
    mask = _np(getattr(sep, prefix + "kernel_mask"))
    assert np.all(w[mask == 0] == 0), n
    assert np.abs(w - before[n]).max() > 1e-3, n
    ref = _np(getattr(sep, prefix + "sign_reference"))
    assert np.all((w * ref > 0)[mask == 1]), n
    fmask = _np(getattr(sep, prefix + "feedback_mask"))
    assert np.all(_np(sep.feedback_kernel(n))[fmask == 0] == 0), n
  assert np.all(_np(dense.kernel)[_np(dense.kernel_mask) == 0] == 0)


def test_unsupported_arguments_raise():
  with pytest.raises(ValueError, match="groups=2"):
    tfbio.layers.Conv1D(4, 3, groups=2)
  with pytest.raises(ValueError, match="lora_rank=2"):
    tfbio.layers.EinsumDense("ab,bc->ac", 3, lora_rank=2)
  with pytest.raises(ValueError, match="density=0"):
    tfbio.layers.Conv3D(4, 3, density=0)
  with pytest.raises(ValueError, match="feedback_seed=-1"):
    tfbio.layers.MultiHeadAttention(2, 3, feedback_seed=-1)
  with pytest.raises(ValueError, match="'nope'"):
    tfbio.layers.DepthwiseConv2D(3, feedback="nope")
  layer = tfbio.layers.SeparableConv2D(2, 3)
  layer.build((None, 5, 5, 2))
  with pytest.raises(ValueError, match="depthwise_kernel"):
    layer.feedback_kernel()


# -- multi-head attention ---------------------------------------------------

PROJECTIONS = ("query", "key", "value", "attention_output")


def _mha_pair(rule, rng):
  kwargs = dict(num_heads=2, key_dim=3, value_dim=2)
  shapes = dict(query=(2, 4, 5), value=(2, 3, 6), key=(2, 3, 4))
  layer = tfbio.layers.MultiHeadAttention(**kwargs, feedback=rule,
                                          feedback_seed=5)
  ref = keras.layers.MultiHeadAttention(**kwargs)
  layer.build(shapes["query"], shapes["value"], shapes["key"])
  ref.build(shapes["query"], shapes["value"], shapes["key"])
  ids = {id(v) for p in layer.feedback_layers.values()
         for v in p.feedback_variables}
  plain = [v for v in layer.weights if id(v) not in ids]
  for v in plain:
    v.assign(rng.normal(0, 0.5, size=v.shape).astype("float32"))
  ref.set_weights([_np(v) for v in plain])
  inputs = {k: rng.normal(size=s).astype("float32")
            for k, s in shapes.items()}
  return layer, ref, inputs


def _mha_grads(layer, inputs, g):
  """``(y, {input: grad}, {"query/kernel": grad, ...})`` of a training call."""
  tensors = {k: tf.constant(v) for k, v in inputs.items()}
  with tf.GradientTape() as tape:
    tape.watch(list(tensors.values()))
    y = layer(tensors["query"], tensors["value"], key=tensors["key"],
              training=True)
    loss = tf.reduce_sum(y * g)
  variables = layer.trainable_weights
  grads = tape.gradient(loss, list(tensors.values()) + variables)
  dx = {k: _np(d) for k, d in zip(tensors, grads)}
  named = {"/".join(v.path.split("/")[-2:]): _np(d)
           for v, d in zip(variables, grads[len(tensors):])}
  return _np(y), dx, named


def _linear_vjp(dense, x, g, kernel=None):
  """``(dx, dW)`` of ``<g, dense(x)>``, with ``kernel`` assigned if given."""
  saved = _np(dense.kernel)
  if kernel is not None:
    dense.kernel.assign(kernel)
  try:
    x = tf.constant(x)
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(dense(x) * g)
    dx, dw = tape.gradient(loss, [x, dense.kernel])
    return _np(dx), _np(dw)
  finally:
    dense.kernel.assign(saved)


def _mha_reference(ref, inputs, g, b):
  """Keras' attention differentiated exactly at the true forward pass, with
  ``B`` in the backward pass of every projection (``b``: name -> B)."""
  dense = {"query": ref.query_dense, "key": ref.key_dense,
           "value": ref.value_dense, "attention_output": ref.output_dense}
  proj = {k: dense[k](tf.constant(inputs[k])) for k in ("query", "key",
                                                         "value")}
  with tf.GradientTape() as tape:
    tape.watch(list(proj.values()))
    attention, _ = ref._compute_attention(  # pylint: disable=protected-access
        proj["query"], proj["key"], proj["value"])
  out_kernel = dense["attention_output"]
  d_attention, dw_out = _linear_vjp(out_kernel, attention, g)
  d_attention_b, _ = _linear_vjp(out_kernel, attention, g,
                                 b["attention_output"])
  d_proj = tape.gradient(attention, list(proj.values()),
                         output_gradients=tf.constant(d_attention_b))
  dx, dw = {}, {"attention_output/kernel": dw_out}
  for (k, p), dp in zip(proj.items(), d_proj):
    dx[k], _ = _linear_vjp(dense[k], inputs[k], dp, b[k])
    _, dw[f"{k}/kernel"] = _linear_vjp(dense[k], inputs[k], dp)
  y = _np(out_kernel(attention))
  return y, dx, dw


def test_multi_head_attention_projections_use_feedback():
  rng = np.random.default_rng(7)
  for rule in ("bp", "ss", "fa", "brsf", "urfb"):
    layer, ref, inputs = _mha_pair(rule, rng)
    projections = layer.feedback_layers
    assert sorted(projections) == sorted(PROJECTIONS), rule
    for p in projections.values():
      assert type(p) is tfbio.layers.EinsumDense
      assert p.feedback == fb.get(rule)
    q = projections["query"]
    assert q.feedback_context()[:3] == ("dense", 5, 2 * 3)
    assert len({p.seed for p in projections.values()}) == 4
    b = {n: _np(p.feedback_kernel()) for n, p in projections.items()}
    g = rng.normal(size=(2, 4, 5)).astype("float32")

    y, dx, grads = _mha_grads(layer, inputs, g)

    ry, rdx, rgrads = _mha_reference(ref, inputs, g, b)
    keras_y = _np(ref(inputs["query"], inputs["value"], key=inputs["key"]))
    np.testing.assert_allclose(ry, keras_y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL, err_msg=rule)
    for k in inputs:
      np.testing.assert_allclose(dx[k], rdx[k], rtol=RTOL, atol=ATOL,
                                 err_msg=f"{rule}/{k}")
    for name, expected in rgrads.items():
      np.testing.assert_allclose(grads[name], expected, rtol=RTOL, atol=ATOL,
                                 err_msg=f"{rule}/{name}")
    if rule == "urfb":
      for n in PROJECTIONS:
        np.testing.assert_array_equal(grads[f"{n}/feedback_kernel"],
                                      grads[f"{n}/kernel"])


def test_multi_head_attention_round_trip(tmp_path):
  inputs = keras.Input((4, 5))
  mha = tfbio.layers.MultiHeadAttention(2, 3, feedback="rndf", sign_fixed=True,
                                        name="mha")
  model = keras.Model(inputs, mha(inputs, inputs))
  config = mha.get_config()
  assert tfbio.layers.MultiHeadAttention.from_config(config).get_config() == (
      config)
  path = str(tmp_path / "mha.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  new = loaded.get_layer("mha")
  assert type(new) is tfbio.layers.MultiHeadAttention
  assert new.feedback_seed == mha.feedback_seed
  assert [v.path for v in new.weights] == [v.path for v in mha.weights]
  for n, p in mha.feedback_layers.items():
    np.testing.assert_array_equal(_np(new.feedback_layers[n].feedback_kernel()),
                                  _np(p.feedback_kernel()))
  x = np.random.default_rng(8).normal(size=(2, 4, 5)).astype("float32")
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))


# -- grouped Conv2D ----------------------------------------------------------


def test_grouped_conv2d_matches_keras_with_b_substituted(tmp_path):
  # pylint: disable-next=g-import-not-at-top
  from keras.src.initializers.random_initializers import compute_fans
  rng = np.random.default_rng(5)
  # (Each eager grouped convolution is an XLA compilation on CPU, Keras'
  # workaround: channels_first is checked with one rule only.)
  for data_format, shape, rules in (("channels_last", (2, 7, 6, 6),
                                     ("bp", "ss", "fa", "kp")),
                                    ("channels_first", (2, 6, 5, 7), ("fa",))):
    kwargs = dict(filters=6, kernel_size=3, groups=3, strides=2,
                  padding="same", data_format=data_format)
    for rule in rules:
      msg = f"{data_format}/{rule}"
      layer = tfbio.layers.Conv2D(**kwargs, feedback=rule, seed=3)
      layer.build(shape)
      assert tuple(layer.kernel.shape) == (3, 3, 2, 6), msg  # c_in / groups
      ref = keras.layers.Conv2D(**kwargs)
      ref.build(shape)
      layer.kernel.assign(rng.normal(0, 0.5, size=(3, 3, 2, 6)))
      layer.bias.assign(rng.normal(0, 0.5, size=(6,)))
      layer.reset_sign_reference()
      ref.set_weights([_np(layer.kernel), _np(layer.bias)])
      ctx = layer._feedback_ctx  # pylint: disable=protected-access
      # Keras' fans of the (3, 3, 2, 6) kernel: fan_in = 9 * c_in / groups.
      assert (ctx.fan_in, ctx.fan_out) == compute_fans((3, 3, 2, 6)), msg
      w, b = _np(layer.kernel), _np(layer.feedback_kernel())
      if rule == "bp":
        np.testing.assert_array_equal(b, w, err_msg=msg)
      else:
        assert np.abs(b - w).max() > 1e-3, msg
      if rule == "ss":
        np.testing.assert_allclose(b, np.sign(w) * math.sqrt(2 / (9 * 6)),
                                   rtol=1e-6, err_msg=msg)
      x = rng.normal(size=shape).astype("float32")
      g = rng.normal(size=layer.compute_output_shape(shape)).astype("float32")
      y, dx, grads = _grads(layer, x, g, training=True)
      ry, _, rgrads = _with_kernels(ref, {}, x, g)
      _, rdx, _ = _with_kernels(ref, {"kernel": b}, x, g)
      np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL, err_msg=msg)
      np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL, err_msg=msg)
      for n in ("kernel", "bias"):
        np.testing.assert_allclose(_np(grads[n]), _np(rgrads[n]), rtol=RTOL,
                                   atol=ATOL, err_msg=f"{msg}/{n}")
      if fb.get(rule).trainable_feedback:
        np.testing.assert_array_equal(_np(grads["feedback_kernel"]),
                                      _np(grads["kernel"]), err_msg=msg)
      if rule != "bp":
        assert not np.allclose(dx, _with_kernels(ref, {}, x, g)[1],
                               atol=1e-3), msg  # B, not W, in dE/dx.

  layer = tfbio.layers.Conv2D(4, 3, groups=2, feedback="fa", seed=1,
                              name="grouped")
  config = layer.get_config()
  assert config["groups"] == 2
  assert tfbio.layers.Conv2D.from_config(config).get_config() == config
  model = keras.Sequential([keras.Input((5, 5, 4)), layer])
  x = rng.normal(size=(2, 5, 5, 4)).astype("float32")
  path = str(tmp_path / "grouped.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  np.testing.assert_array_equal(_np(loaded.layers[0].feedback_kernel()),
                                _np(layer.feedback_kernel()))
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             model.predict(x, verbose=0), atol=1e-6)
  with pytest.raises(ValueError, match="filters=5, groups=2"):
    tfbio.layers.Conv2D(5, 3, groups=2)
  with pytest.raises(ValueError, match="channels=3, groups=2"):
    tfbio.layers.Conv2D(4, 3, groups=2).build((None, 5, 5, 3))
