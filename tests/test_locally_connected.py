"""tfbio.layers.LocallyConnected2D, tfbio.untie and tfbio.analysis filters.

References are independent of the library: a NumPy loop over output
positions (zero padding with TensorFlow's SAME convention) gives the output,
the input gradient with ``B`` in place of ``W`` and the true kernel gradient;
``tf.nn.conv2d`` gives the tied reference. Loops live inside tests because
every test pays for a Keras session reset in conftest.
"""

import functools
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import feedback as fb
from tfbio.ops import locally_connected as lc_ops

LC = tfbio.layers.LocallyConnected2D
ALL_NAMES = fb.names()
FLIP_NAMES = ("brsf_p", "frsf_p")
PER_STEP = ("brsf", "brsf_p")
IMPLEMENTATIONS = ("dense", "sparse", "offsets")
RTOL = 1e-4
ATOL = 1e-5
IN_SHAPE = (2, 7, 7, 3)
FILTERS = 4
# (input shape, kernel_size, strides, padding); the last ones have an odd
# total SAME padding (TensorFlow puts the extra row/column at the end) and
# non-square kernels/strides.
GEOMETRIES = [(IN_SHAPE, (3, 3), (s, s), p)
              for s in (1, 2) for p in ("same", "valid")] + [
                  ((2, 8, 8, 3), (3, 3), (2, 2), "same"),
                  ((2, 8, 7, 3), (2, 3), (1, 2), "same"),
                  ((2, 8, 7, 3), (2, 3), (2, 1), "valid"),
                  # VALID with an unread last row (offsets form crops it).
                  ((2, 9, 8, 3), (2, 2), (2, 3), "valid"),
              ]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _feedback(name):
  return {"name": name, "flip_prob": 0.3} if name in FLIP_NAMES else name


def _np(t):
  return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def _var(layer, name):
  """The layer's variable whose path ends in ``/name``."""
  found = [v for v in layer.weights if v.path.split("/")[-1] == name]
  assert len(found) == 1, [v.path for v in layer.weights]
  return found[0]


def _geometry(size, k, s, padding):
  """(out, pad_before) of one axis, TensorFlow's convention."""
  if padding == "valid":
    return (size - k) // s + 1, 0
  out = -(-size // s)
  return out, max((out - 1) * s + k - size, 0) // 2


def _padded(x, kernel_size, strides, padding):
  """NumPy: ``x`` zero-padded (extra zeros at the end are harmless) and
  ``(out_h, out_w, pad_top, pad_left)``."""
  _, h, w, _ = x.shape
  (kh, kw), (sh, sw) = kernel_size, strides
  out_h, top = _geometry(h, kh, sh, padding)
  out_w, left = _geometry(w, kw, sw, padding)
  pad = np.zeros((x.shape[0], h + 2 * kh + top, w + 2 * kw + left,
                  x.shape[3]), x.dtype)
  pad[:, top:top + h, left:left + w] = x
  return pad, out_h, out_w, top, left


def _lc_reference(x, w, b, g, kernel_size, strides, padding):
  """NumPy loop: ``(y, dx with B, dW with W)`` of an untied layer (no bias).

  ``w``, ``b``: ``(out_h*out_w, kh*kw*c_in, c_out)``; ``g``: upstream grad.
  """
  x = x.astype(np.float64)
  pad, out_h, out_w, top, left = _padded(x, kernel_size, strides, padding)
  (kh, kw), (sh, sw) = kernel_size, strides
  n, h, wd, _ = x.shape
  c_out = w.shape[-1]
  y = np.zeros((n, out_h, out_w, c_out))
  dpad = np.zeros_like(pad)
  dw = np.zeros(w.shape)
  for i in range(out_h):
    for j in range(out_w):
      p = i * out_w + j
      rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
      window = pad[:, rows, cols, :].reshape(n, -1)
      y[:, i, j] = window @ w[p]
      dpad[:, rows, cols, :] += (g[:, i, j] @ b[p].T).reshape(n, kh, kw, -1)
      dw[p] = window.T @ g[:, i, j]
  dx = dpad[:, top:top + h, left:left + wd]
  return y, dx, dw


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


def _make(feedback="bp", implementation="dense", strides=1, padding="same",
          filters=FILTERS, kernel_size=3, seed=11, in_shape=IN_SHAPE,
          **kwargs):
  layer = LC(filters, kernel_size, strides=strides, padding=padding,
             implementation=implementation, feedback=_feedback(feedback),
             seed=seed, **kwargs)
  layer.build(in_shape)
  assert layer.resolved_implementation == implementation
  return layer


# -- 1. identical filters at every position == Conv2D --------------------------


def test_tied_lc_equals_conv2d():
  rng = np.random.default_rng(0)
  for in_shape, kernel_size, strides, padding in GEOMETRIES:
    x = rng.standard_normal(in_shape).astype(np.float32)
    w = rng.standard_normal(kernel_size + (in_shape[-1], FILTERS)).astype(
        np.float32)
    bias = rng.standard_normal(FILTERS).astype(np.float32)
    taps = math.prod(w.shape[:3])
    # Conv2D reference by autodiff.
    xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(bias)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch([xt, wt, bt])
      y_conv = tf.nn.bias_add(
          tf.nn.conv2d(xt, wt, strides, padding.upper()), bt)
      g = tf.constant(rng.standard_normal(y_conv.shape).astype(np.float32))
      loss = tf.reduce_sum(y_conv * g)
    dx_conv, dw_conv, db_conv = (_np(t) for t in tape.gradient(
        loss, [xt, wt, bt]))
    g = _np(g)
    out_h, out_w = y_conv.shape[1:3]
    positions = out_h * out_w
    for impl in IMPLEMENTATIONS:
      case = f"{in_shape}/{kernel_size}/{strides}/{padding}/{impl}"
      layer = _make("bp", impl, strides, padding, kernel_size=kernel_size,
                    in_shape=in_shape)
      assert tuple(layer.kernel.shape) == (positions, taps, FILTERS), case
      assert tuple(layer.bias.shape) == (out_h, out_w, FILTERS), case
      layer.set_weights([
          np.tile(w.reshape(1, taps, FILTERS), (positions, 1, 1)),
          np.broadcast_to(bias, (out_h, out_w, FILTERS))])
      assert layer.compute_output_shape(in_shape) == tuple(y_conv.shape)
      y, dx, grads = _training_grads(layer, x, g)
      assert set(grads) == {"kernel", "bias"}, case
      np.testing.assert_allclose(y, _np(y_conv), rtol=RTOL, atol=ATOL,
                                 err_msg=case)
      np.testing.assert_allclose(dx, dx_conv, rtol=RTOL, atol=ATOL,
                                 err_msg=case)
      dk = _np(grads["kernel"])
      np.testing.assert_allclose(dk.sum(0), dw_conv.reshape(taps, FILTERS),
                                 rtol=RTOL, atol=1e-4, err_msg=case)
      # Per position: the patch-wise product (independent NumPy reference).
      _, _, rdw = _lc_reference(x, _np(layer.kernel), _np(layer.kernel), g,
                                kernel_size, strides, padding)
      np.testing.assert_allclose(dk, rdw, rtol=RTOL, atol=ATOL, err_msg=case)
      db = _np(grads["bias"])
      np.testing.assert_allclose(db, g.sum(0), rtol=RTOL, atol=ATOL,
                                 err_msg=case)
      np.testing.assert_allclose(db.sum((0, 1)), db_conv, rtol=RTOL,
                                 atol=ATOL, err_msg=case)


# -- 2. dense, sparse and offsets agree ---------------------------------------


@pytest.mark.parametrize("other", ["sparse", "offsets"])
@pytest.mark.parametrize("name", ALL_NAMES)
def test_dense_and_other_forms_agree(name, other):
  rng = np.random.default_rng(1)
  for in_shape, kernel_size, strides, padding in GEOMETRIES[2:]:
    case = f"{name}/{other}/{in_shape}/{kernel_size}/{strides}/{padding}"
    x = rng.standard_normal(in_shape).astype(np.float32)
    kwargs = dict(kernel_size=kernel_size, in_shape=in_shape, seed=5)
    dense = _make(name, "dense", strides, padding, **kwargs)
    sparse = _make(name, other, strides, padding, **kwargs)
    assert sparse.supports_jit is (other != "sparse"), case
    sparse.kernel.assign(dense.kernel)
    bias = rng.standard_normal(dense.bias.shape).astype(np.float32)
    dense.bias.assign(bias)
    sparse.bias.assign(bias)
    if name in PER_STEP:
      dense.feedback_step.assign(3)
      sparse.feedback_step.assign(3)
    b = _np(dense.feedback_kernel())
    # Same seed: the same feedback state, hence the same B.
    np.testing.assert_array_equal(_np(sparse.feedback_kernel()), b,
                                  err_msg=case)
    g = rng.standard_normal(
        dense.compute_output_shape(in_shape)).astype(np.float32)
    y_d, dx_d, gr_d = _training_grads(dense, x, g)
    y_s, dx_s, gr_s = _training_grads(sparse, x, g)
    assert set(gr_d) == set(gr_s), case
    np.testing.assert_allclose(y_s, y_d, rtol=RTOL, atol=ATOL, err_msg=case)
    np.testing.assert_allclose(dx_s, dx_d, rtol=RTOL, atol=ATOL, err_msg=case)
    for key in gr_d:
      np.testing.assert_allclose(_np(gr_s[key]), _np(gr_d[key]), rtol=RTOL,
                                 atol=ATOL, err_msg=f"{case}/{key}")
    if name in PER_STEP:
      assert int(_np(dense.feedback_step)) == 4, case
      assert int(_np(sparse.feedback_step)) == 4, case
      np.testing.assert_array_equal(_np(sparse.feedback_kernel()),
                                    _np(dense.feedback_kernel()), err_msg=case)


# -- 3. every algorithm: dx with B, true dW, urfb's dB -------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_training_gradients_use_feedback_kernel(name):
  rng = np.random.default_rng(2)
  for in_shape, kernel_size, strides, padding in (GEOMETRIES[0],
                                                  GEOMETRIES[3],
                                                  GEOMETRIES[5]):
    x = rng.standard_normal(in_shape).astype(np.float32)
    for impl in IMPLEMENTATIONS:
      case = f"{name}/{in_shape}/{kernel_size}/{strides}/{padding}/{impl}"
      layer = _make(name, impl, strides, padding, kernel_size=kernel_size,
                    in_shape=in_shape, seed=7)
      layer.bias.assign(
          rng.standard_normal(layer.bias.shape).astype(np.float32))
      w, bias = _np(layer.kernel), _np(layer.bias)
      b = _np(layer.feedback_kernel())  # read before the training call
      assert b.shape == w.shape, case
      if name == "bp":
        np.testing.assert_array_equal(b, w, err_msg=case)
      else:
        assert np.abs(b - w).max() > 1e-3, case
      g = rng.standard_normal(
          layer.compute_output_shape(in_shape)).astype(np.float32)

      y, dx, grads = _training_grads(layer, x, g)

      ry, rdx, rdw = _lc_reference(x, w, b, g, kernel_size, strides, padding)
      np.testing.assert_allclose(y, ry + bias, rtol=RTOL, atol=ATOL,
                                 err_msg=case)
      np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=ATOL, err_msg=case)
      np.testing.assert_allclose(_np(grads["kernel"]), rdw, rtol=RTOL,
                                 atol=ATOL, err_msg=case)
      np.testing.assert_allclose(_np(grads["bias"]), g.sum(0), rtol=RTOL,
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


def test_feedback_kernel_definitions():
  """``B`` of the sign algorithms uses the conv fans of the LC layer."""
  layer = _make("ss", filters=5, in_shape=(1, 6, 6, 2))
  w = _np(layer.kernel)
  k = 3 * 3
  expected = {"ss": np.sign(w) * math.sqrt(2.0 / (k * 5)),
              "usf": np.sign(w), "nusf": np.sign(w) / (k * 2)}
  for name, value in expected.items():
    other = _make(name, filters=5, in_shape=(1, 6, 6, 2))
    other.kernel.assign(w)
    np.testing.assert_allclose(_np(other.feedback_kernel()), value,
                               rtol=1e-6, atol=0, err_msg=name)


def test_sparse_weight_gradient_in_chunks():
  """``feedback_lc_sparse`` sums the weight gradient a chunk at a time."""
  rng = np.random.default_rng(12)
  in_shape, kernel_size, strides, padding = GEOMETRIES[4]
  indices, value_index, dense_shape = lc_ops.sparse_connectivity(
      *in_shape[1:], kernel_size, strides, padding, FILTERS)
  out_h, out_w = 4, 4
  taps = 3 * 3 * 3
  w = rng.standard_normal((out_h * out_w, taps, FILTERS)).astype(np.float32)
  b = rng.standard_normal(w.shape).astype(np.float32)
  x = rng.standard_normal(in_shape).astype(np.float32)
  g = rng.standard_normal((2, out_h, out_w, FILTERS)).astype(np.float32)
  ry, rdx, rdw = _lc_reference(x, w, b, g, kernel_size, strides, padding)
  # Taps in the padding have no entry: fewer nonzeros than P*K*c_out.
  assert len(value_index) < w.size
  for chunk in (7, 1000, 1 << 20):
    xt, wt, bt = (tf.constant(v) for v in (x.reshape(2, -1), w, b))
    with tf.GradientTape() as tape:
      tape.watch([xt, wt, bt])
      y = lc_ops.feedback_lc_sparse(xt, wt, bt, indices, value_index,
                                    dense_shape, True, chunk_entries=chunk)
      loss = tf.reduce_sum(y * g.reshape(2, -1))
    dx, dw, db = tape.gradient(loss, [xt, wt, bt])
    np.testing.assert_allclose(_np(y).reshape(ry.shape), ry, rtol=RTOL,
                               atol=ATOL, err_msg=chunk)
    np.testing.assert_allclose(_np(dx).reshape(rdx.shape), rdx, rtol=RTOL,
                               atol=ATOL, err_msg=chunk)
    np.testing.assert_allclose(_np(dw), rdw, rtol=RTOL, atol=ATOL,
                               err_msg=chunk)
    np.testing.assert_array_equal(_np(db), _np(dw), err_msg=chunk)


def _op_grads(fn, x, w, b, g):
  """``(y, dx, dW, dB)`` of ``fn(x, w, b)`` against upstream ``g``."""
  x, w, b = (tf.constant(v) for v in (x, w, b))
  with tf.GradientTape() as tape:
    tape.watch([x, w, b])
    loss = tf.reduce_sum(fn(x, w, b) * g)
  return [_np(t) for t in [fn(x, w, b)] + tape.gradient(loss, [x, w, b])]


def test_offsets_op_matches_reference_under_tf_function_and_xla():
  rng = np.random.default_rng(13)
  for in_shape, kernel_size, strides, padding in (GEOMETRIES[3],
                                                  GEOMETRIES[5],
                                                  GEOMETRIES[-1]):
    case = f"{in_shape}/{kernel_size}/{strides}/{padding}"
    out_h, out_w, _, _ = lc_ops.lc_geometry(*in_shape[1:3], kernel_size,
                                            strides, padding)
    shape = (out_h * out_w, math.prod(kernel_size) * in_shape[-1], FILTERS)
    x = rng.standard_normal(in_shape).astype(np.float32)
    w, b = (rng.standard_normal(shape).astype(np.float32) for _ in "wb")
    g = rng.standard_normal((in_shape[0], out_h, out_w, FILTERS)).astype(
        np.float32)
    ry, rdx, rdw = _lc_reference(x, w, b, g, kernel_size, strides, padding)

    def offsets(x, w, b):
      return lc_ops.feedback_lc_offsets(x, w, b, kernel_size, strides,
                                        padding, True)

    for mode, fn in (("eager", offsets), ("graph", tf.function(offsets)),
                     ("xla", tf.function(offsets, jit_compile=True))):
      y, dx, dw, db = _op_grads(fn, x, w, b, g)
      for got, want, what in ((y, ry, "y"), (dx, rdx, "dx"), (dw, rdw, "dW"),
                              (db, rdw, "dB")):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-4,
                                   err_msg=f"{case}/{mode}/{what}")
  # B = W when feedback_kernel is None (last geometry): back-propagation.
  y, dx, dw, _ = _op_grads(lambda x, w, b: lc_ops.feedback_lc_offsets(
      x, w, None, kernel_size, strides, padding), x, w, b, g)
  ry, rdx, rdw = _lc_reference(x, w, w, g, kernel_size, strides, padding)
  np.testing.assert_allclose(y, ry, rtol=RTOL, atol=1e-4)
  np.testing.assert_allclose(dx, rdx, rtol=RTOL, atol=1e-4)
  np.testing.assert_allclose(dw, rdw, rtol=RTOL, atol=1e-4)


def test_offsets_form_never_builds_patch_sized_tensors():
  """No tensor of the traced forward + backward is as large as the patches
  (``batch*P*kh*kw*c_in``, here larger than W, x and y), while the dense
  form's are."""
  batch, size, c_in, c_out = 8, 6, 4, 2
  layers = {impl: _make("fa", impl, filters=c_out,
                        in_shape=(batch, size, size, c_in))
            for impl in ("dense", "offsets")}
  patches = batch * size * size * 3 * 3 * c_in
  assert patches > max(layers["dense"].kernel.numpy().size,
                       batch * size * size * max(c_in, c_out))
  largest = {}
  for impl, layer in layers.items():
    variables = layer.trainable_variables

    @tf.function
    def step(x, layer=layer, variables=variables):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
      return tape.gradient(y, [x] + variables, output_gradients=y)

    graph = step.get_concrete_function(
        tf.TensorSpec((batch, size, size, c_in))).graph
    largest[impl] = max(
        t.shape.num_elements() or 0 for op in graph.get_operations()
        for t in op.outputs if t.shape.is_fully_defined())
  assert largest["dense"] >= patches
  assert largest["offsets"] < patches, largest


# -- 4. masks and sign-fixed weights under fit ---------------------------------


def test_masks_and_sign_fixed_under_fit():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
  y = rng.standard_normal((16, 3)).astype(np.float32) * 3.0
  # Every rule in the dense form; the other forms with a stored and a
  # per-step rule (their masks and sign-fixing share the dense form's code).
  for name in ("bp", "fa", "urfb", "brsf"):
    for impl in IMPLEMENTATIONS:
      if impl != "dense" and name not in ("urfb", "brsf"):
        continue
      case = f"{name}/{impl}"
      keras.utils.clear_session()
      lc = LC(3, 3, padding="same", activation="tanh", feedback=name,
              implementation=impl, density=0.5, feedback_density=0.5,
              sign_fixed=True, seed=4, name="lc")
      model = keras.Sequential([
          keras.Input((6, 6, 2)), lc, keras.layers.Flatten(),
          keras.layers.Dense(3)])
      model.compile(keras.optimizers.SGD(2.0, momentum=0.9), "mse")
      wm = _np(_var(lc, "kernel_mask"))
      bm = _np(_var(lc, "feedback_mask"))
      ref = _np(_var(lc, "sign_reference"))
      n = wm.size
      for mask in (wm, bm):
        assert set(np.unique(mask)) <= {0.0, 1.0}, case
        assert abs(mask.mean() - 0.5) < 4 * math.sqrt(0.25 / n), case
      assert not np.array_equal(wm, bm), case
      w0 = _np(lc.kernel)
      np.testing.assert_array_equal(w0[wm == 0], 0.0, err_msg=case)
      assert (w0[wm == 1] != 0).all(), case
      np.testing.assert_array_equal(ref, np.where(w0 >= 0, 1.0, -1.0))
      model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
      w = _np(lc.kernel)
      assert np.abs(w - w0).max() > 0.05, case  # it did train
      np.testing.assert_array_equal(w[wm == 0], 0.0, err_msg=case)
      assert (w * ref > 0)[wm == 1].all(), case
      # Some updates would have flipped a sign: those weights sit at ±1e-10.
      tiny = (np.abs(w) < 1e-9) & (wm == 1)
      assert tiny.any(), case
      np.testing.assert_array_equal(w[tiny], (np.float32(1e-10) * ref)[tiny])
      np.testing.assert_array_equal(_np(_var(lc, "sign_reference")), ref)
      b = _np(lc.feedback_kernel())
      np.testing.assert_array_equal(b[bm == 0], 0.0, err_msg=case)
      if name == "bp":
        np.testing.assert_array_equal(b, w * bm, err_msg=case)
      if name in ("fa", "urfb"):
        stored = _np(_var(lc, "feedback_kernel"))
        np.testing.assert_array_equal(stored[bm == 0], 0.0, err_msg=case)
        assert (stored[bm == 1] != 0).all(), case
      if name == "brsf":
        assert int(_np(lc.feedback_step)) == 8, case


# -- 5. untie() ----------------------------------------------------------------


def _tied_model(kind):
  inputs = keras.Input((8, 8, 3), name="image")
  if kind == "tfbio":
    conv = functools.partial(tfbio.layers.Conv2D, feedback="fa")
    dense = functools.partial(tfbio.layers.Dense, feedback="fa")
  else:
    conv, dense = keras.layers.Conv2D, keras.layers.Dense
  x = conv(4, 3, padding="same", activation="relu", name="conv_a",
           bias_initializer="random_normal")(inputs)
  x = conv(5, 3, strides=2, padding="valid", activation="tanh",
           name="conv_b", bias_initializer="random_normal")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  outputs = dense(3, name="logits")(x)
  return keras.Model(inputs, outputs, name=f"tied_{kind}")


def _snapshot(model):
  return ([(layer, type(layer)) for layer in model.layers],
          [np.array(v.numpy()) for v in model.weights])


def _assert_unchanged(model, snapshot):
  layers, values = snapshot
  assert [(layer, type(layer)) for layer in model.layers] == layers
  assert len(model.weights) == len(values)
  for v, value in zip(model.weights, values):
    assert np.array_equal(np.array(v.numpy()), value), v.path


def _input_and_kernel_grads(model, x, y):
  with tf.GradientTape() as tape:
    xt = tf.constant(x)
    tape.watch(xt)
    loss = tf.reduce_sum((model(xt, training=True) - y) ** 2)
  names = [v.path for v in model.trainable_weights]
  grads = tape.gradient(loss, [xt] + model.trainable_weights)
  return _np(grads[0]), {n: _np(g) for n, g in zip(names, grads[1:])}


def test_untie_tfbio_model_with_fa():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
  y = rng.standard_normal((4, 3)).astype(np.float32)
  model = _tied_model("tfbio")
  snapshot = _snapshot(model)
  untied = tfbio.untie(model)
  _assert_unchanged(model, snapshot)
  assert untied is not model
  np.testing.assert_allclose(untied.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=0, atol=ATOL)
  for name in ("conv_a", "conv_b"):
    old, new = model.get_layer(name), untied.get_layer(name)
    assert type(old) is tfbio.layers.Conv2D
    assert type(new) is LC, name
    assert new.feedback == old.feedback == fb.get("fa"), name
    assert new.seed == old.seed, name
    assert new.kernel_size == old.kernel_size
    assert new.strides == old.strides and new.padding == old.padding
    assert new.resolved_implementation == "dense"
    kh, kw, c_in, c_out = old.kernel.shape
    flat_w = _np(old.kernel).reshape(kh * kw * c_in, c_out)
    flat_b = _np(old.feedback_kernel()).reshape(kh * kw * c_in, c_out)
    assert np.abs(flat_w - flat_b).max() > 1e-3
    w_lc, b_lc = _np(new.kernel), _np(new.feedback_kernel())
    assert w_lc.shape[0] == new.out_h * new.out_w > 1
    for p in range(w_lc.shape[0]):
      np.testing.assert_array_equal(w_lc[p], flat_w, err_msg=f"{name}/{p}")
      np.testing.assert_array_equal(b_lc[p], flat_b, err_msg=f"{name}/{p}")
    np.testing.assert_array_equal(
        _np(new.bias), np.broadcast_to(_np(old.bias), new.bias.shape))
  assert untied.get_layer("conv_a").out_h == 8
  assert untied.get_layer("conv_b").out_h == 3
  # Same backward pass at the start: dx equal, LC dW summed == conv dW.
  dx_t, gr_t = _input_and_kernel_grads(model, x, y)
  dx_u, gr_u = _input_and_kernel_grads(untied, x, y)
  np.testing.assert_allclose(dx_u, dx_t, rtol=RTOL, atol=ATOL)
  for name in ("conv_a", "conv_b"):
    conv_dw = gr_t[f"{name}/kernel"]
    np.testing.assert_allclose(
        gr_u[f"{name}/kernel"].sum(0), conv_dw.reshape(-1, conv_dw.shape[-1]),
        rtol=RTOL, atol=1e-4, err_msg=name)
  np.testing.assert_allclose(gr_u["logits/kernel"], gr_t["logits/kernel"],
                             rtol=RTOL, atol=ATOL)

  # One training step of the untied model.
  untied.compile(keras.optimizers.SGD(0.1), "mse")
  before = _np(untied.get_layer("conv_a").kernel)
  history = untied.fit(x, y, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  for v in untied.weights:
    assert np.isfinite(_np(v)).all(), v.path
  after = _np(untied.get_layer("conv_a").kernel)
  assert np.abs(after - before).max() > 1e-6
  # Filters are untied now: positions moved differently.
  assert np.abs(after[0] - after[-1]).max() > 1e-6
  _assert_unchanged(model, snapshot)


def test_untie_keras_model_and_layer_selection():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
  model = _tied_model("keras")
  snapshot = _snapshot(model)
  expected = model.predict(x, verbose=0)
  untied = tfbio.untie(model)
  np.testing.assert_allclose(untied.predict(x, verbose=0), expected, rtol=0,
                             atol=ATOL)
  for name in ("conv_a", "conv_b"):
    layer = untied.get_layer(name)
    assert type(layer) is LC, name
    assert layer.feedback == fb.get("bp")
  assert type(untied.get_layer("logits")) is keras.layers.Dense

  only_b = tfbio.untie(model, layers=["conv_b"])
  assert type(only_b.get_layer("conv_a")) is keras.layers.Conv2D
  assert type(only_b.get_layer("conv_b")) is LC
  np.testing.assert_allclose(only_b.predict(x, verbose=0), expected, rtol=0,
                             atol=ATOL)
  np.testing.assert_array_equal(_np(only_b.get_layer("conv_a").kernel),
                                _np(model.get_layer("conv_a").kernel))

  tfbio_model = _tied_model("tfbio")
  only_a = tfbio.untie(tfbio_model, layers="conv_a")
  assert type(only_a.get_layer("conv_a")) is LC
  assert type(only_a.get_layer("conv_b")) is tfbio.layers.Conv2D
  assert only_a.get_layer("conv_b").feedback == fb.get("fa")
  np.testing.assert_array_equal(
      _np(only_a.get_layer("conv_b").feedback_kernel()),
      _np(tfbio_model.get_layer("conv_b").feedback_kernel()))

  with pytest.raises(ValueError, match="nope"):
    tfbio.untie(model, layers=["conv_a", "nope"])
  with pytest.raises(ValueError, match="logits"):
    tfbio.untie(model, layers=["logits"])  # a Dense layer is no Conv2D
  _assert_unchanged(model, snapshot)


def test_untie_tiles_state_for_every_algorithm():
  rng = np.random.default_rng(6)
  x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
  for name in ALL_NAMES:
    keras.utils.clear_session()
    inputs = keras.Input((6, 6, 2))
    conv = tfbio.layers.Conv2D(3, 3, strides=2, padding="same",
                               feedback=_feedback(name), density=0.5,
                               feedback_density=0.5, sign_fixed=True, seed=8,
                               name="conv")
    model = keras.Model(inputs, keras.layers.Flatten()(conv(inputs)))
    if name in PER_STEP:
      conv.feedback_step.assign(5)
    untied = tfbio.untie(model)
    lc = untied.get_layer("conv")
    assert type(lc) is LC, name
    assert lc.feedback == conv.feedback, name
    assert (lc.density, lc.feedback_density, lc.sign_fixed) == (
        0.5, 0.5, True), name
    np.testing.assert_allclose(untied.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=0,
                               atol=ATOL, err_msg=name)
    positions = lc.out_h * lc.out_w
    assert positions == 9

    def tiled(t):
      flat = _np(t).reshape(1, -1, 3)
      return np.tile(flat, (positions, 1, 1))

    for attr in ("kernel", "kernel_mask", "feedback_mask", "sign_reference"):
      np.testing.assert_array_equal(_np(getattr(lc, attr)),
                                    tiled(getattr(conv, attr)),
                                    err_msg=f"{name}: {attr}")
    for state in ("feedback_kernel", "feedback_magnitude", "feedback_flips"):
      if hasattr(conv, "_" + state):
        np.testing.assert_array_equal(_np(_var(lc, state)),
                                      tiled(_var(conv, state)),
                                      err_msg=f"{name}: {state}")
    if name in PER_STEP:
      assert int(_np(lc.feedback_step)) == 5, name
    else:
      # B is a function of the (tiled) W and the (tiled) state.
      np.testing.assert_allclose(_np(lc.feedback_kernel()),
                                 tiled(conv.feedback_kernel()), rtol=1e-6,
                                 atol=0, err_msg=name)


# -- 6. saving -----------------------------------------------------------------


def _lc_model(name, impl, init_seed=0):
  def init(i):
    return keras.initializers.GlorotUniform(seed=100 * init_seed + i)

  inputs = keras.Input((6, 6, 2))
  x = LC(3, 3, padding="same", activation="relu", feedback=_feedback(name),
         implementation=impl, seed=21, kernel_initializer=init(1),
         bias_initializer=keras.initializers.RandomUniform(
             -0.1, 0.1, seed=100 * init_seed + 50), name="lc_a")(inputs)
  x = LC(4, 3, strides=2, activation="tanh", feedback=_feedback(name),
         implementation=impl, seed=22, kernel_initializer=init(2),
         name="lc_b")(x)
  x = keras.layers.Flatten()(x)
  outputs = tfbio.layers.Dense(3, feedback=_feedback(name), seed=23,
                               kernel_initializer=init(3), name="logits")(x)
  model = keras.Model(inputs, outputs)
  model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def _data(n=8, seed=7):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, 6, 6, 2)).astype("float32"),
          rng.integers(0, 3, size=(n,)).astype("int32"))


def _variables(model):
  values = {}
  for v in model.variables:
    assert v.path not in values, f"duplicate variable path {v.path}"
    values[v.path] = np.array(v.numpy())
  return values


def _assert_same(a, b, what):
  assert sorted(a) == sorted(b), f"{what}: different variables"
  for key in a:
    assert a[key].dtype == b[key].dtype, f"{what}: dtype of {key}"
    assert np.array_equal(a[key], b[key]), f"{what}: {key} differs"


def _feedback_kernels(model):
  return {n: _np(model.get_layer(n).feedback_kernel())
          for n in ("lc_a", "lc_b", "logits")}


@pytest.mark.parametrize("name", ["fa", "brsf", "urfb"])
def test_keras_file_round_trip(name, tmp_path):
  x, y = _data()
  for impl in IMPLEMENTATIONS:
    model = _lc_model(name, impl)
    w0 = _np(model.get_layer("lc_a").kernel)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert np.abs(_np(model.get_layer("lc_a").kernel) - w0).max() > 1e-6
    path = str(tmp_path / f"lc_{name}_{impl}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for layer_name in ("lc_a", "lc_b"):
      orig, new = model.get_layer(layer_name), loaded.get_layer(layer_name)
      assert type(new) is LC
      assert new.feedback == orig.feedback
      assert new.seed == orig.seed
      assert new.implementation == impl
      assert new.resolved_implementation == impl
      assert new.get_config() == orig.get_config()
      if name in PER_STEP:
        assert int(_np(new.feedback_step)) == 2
    _assert_same(_variables(model), _variables(loaded), f"{impl}: load")
    _assert_same(_feedback_kernels(model), _feedback_kernels(loaded),
                 f"{impl}: feedback_kernel()")
    xt, _ = _data(4, seed=8)
    np.testing.assert_array_equal(model.predict(xt, verbose=0),
                                  loaded.predict(xt, verbose=0))


@pytest.mark.parametrize("name", ["fa", "brsf", "urfb", "frsf_p"])
def test_checkpoint_round_trip_keeps_feedback_state(name, tmp_path):
  x, y = _data()
  model = _lc_model(name, "dense")
  model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  fresh = _lc_model(name, "dense", init_seed=1)
  rng = np.random.default_rng(9)
  for v in fresh.variables:  # every variable, feedback state included, differs
    old = np.array(v.numpy())
    if v.dtype.startswith("int"):
      v.assign(old + 1000)
    else:
      v.assign((old + rng.uniform(0.5, 1.0, size=old.shape)).astype(old.dtype))
  before = _variables(fresh)
  for key, value in _variables(model).items():
    assert not np.array_equal(before[key], value), key
  tf.train.Checkpoint(model=fresh).restore(
      path).assert_existing_objects_matched()
  _assert_same(_variables(model), _variables(fresh), "after restore")
  _assert_same(_feedback_kernels(model), _feedback_kernels(fresh),
               "feedback_kernel() after restore")
  lc_state = [v.name for v in fresh.get_layer("lc_a").variables]
  expected = {"fa": "feedback_kernel", "urfb": "feedback_kernel",
              "brsf": "feedback_step", "frsf_p": "feedback_flips"}[name]
  assert expected in lc_state


def test_dense_form_under_xla_trains_like_graph_mode():
  """The dense form compiles with XLA and trains as without it; the sparse
  form reports ``supports_jit=False``, so Keras refuses ``jit_compile``.

  (Keras' ``jit_compile="auto"`` is off on CPU-only machines and under
  tf.distribute, hence the explicit ``jit_compile=True``. ``brsf`` is left
  out: its stateless draws differ under XLA, as documented in
  ``tfbio.ops.feedback_kernels``.)
  """
  x, y = _data()
  for name in ("bp", "fa", "urfb"):
    xla = _lc_model(name, "dense")
    plain = _lc_model(name, "dense")
    xla.jit_compile = True
    plain.jit_compile = False
    assert xla.jit_compile is True
    _assert_same(_variables(xla), _variables(plain), f"{name}: initial")
    before = _variables(plain)
    for model in (xla, plain):
      model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    after = _variables(plain)
    assert not np.allclose(after["lc_a/kernel"], before["lc_a/kernel"])
    for key, value in _variables(xla).items():
      np.testing.assert_allclose(value, after[key], rtol=0, atol=ATOL,
                                 err_msg=f"{name}: {key}")
  sparse = _lc_model("fa", "sparse")
  assert not sparse.get_layer("lc_a").supports_jit
  with pytest.warns(UserWarning, match="jit_compile"):
    sparse.jit_compile = True
  assert sparse.jit_compile is False
  sparse.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
  assert all(np.isfinite(v).all() for v in _variables(sparse).values())


# -- 7. analysis ---------------------------------------------------------------


def test_untied_filters_view():
  rng = np.random.default_rng(10)
  layer = LC(5, (3, 2), strides=(2, 1), padding="valid", seed=1)
  x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
  y = _np(layer(x)) - _np(layer.bias)
  assert (layer.out_h, layer.out_w) == (3, 5)
  view = tfbio.analysis.untied_filters(layer)
  assert view.shape == (3, 5, 3, 2, 3, 5)
  kernel = _np(layer.kernel)
  for i in range(3):
    for j in range(5):
      np.testing.assert_array_equal(view[i, j],
                                    kernel[i * 5 + j].reshape(3, 2, 3, 5))
      # The filter at (i, j) applied to its input window gives y[:, i, j].
      window = x[:, 2 * i:2 * i + 3, j:j + 2, :]
      np.testing.assert_allclose(
          np.einsum("nabc,abcf->nf", window, view[i, j]), y[:, i, j],
          rtol=RTOL, atol=ATOL, err_msg=f"({i}, {j})")
  np.testing.assert_array_equal(view[1, 2, 0, 1, 2, 3],
                                kernel[1 * 5 + 2, (0 * 2 + 1) * 3 + 2, 3])
  with pytest.raises(ValueError, match="LocallyConnected2D"):
    tfbio.analysis.untied_filters(tfbio.layers.Conv2D(3, 3))
  with pytest.raises(ValueError, match="not built"):
    tfbio.analysis.untied_filters(LC(3, 3))


def test_save_untied_filters_png(tmp_path):
  layer = LC(6, 3, padding="same", seed=2)
  layer.build((None, 8, 8, 3))
  for kwargs in ({}, {"filters": (5, 0), "positions": [(0, 0), (7, 7)],
                      "channel": 2}):
    path = str(tmp_path / f"filters_{len(kwargs)}.png")
    assert tfbio.analysis.save_untied_filters_png(layer, path,
                                                  **kwargs) == path
    with open(path, "rb") as f:
      data = f.read()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000
  with pytest.raises(ValueError, match="filter index 6"):
    tfbio.analysis.save_untied_filters_png(layer, str(tmp_path / "a.png"),
                                           filters=(0, 6))
  with pytest.raises(ValueError, match="filter index -1"):
    tfbio.analysis.save_untied_filters_png(layer, str(tmp_path / "b.png"),
                                           filters=(-1,))
  with pytest.raises(ValueError, match=re.escape("position (8, 0)")):
    tfbio.analysis.save_untied_filters_png(layer, str(tmp_path / "c.png"),
                                           positions=[(8, 0)])
  with pytest.raises(ValueError, match=re.escape("position (0, -1)")):
    tfbio.analysis.save_untied_filters_png(layer, str(tmp_path / "d.png"),
                                           positions=[(0, -1)])


# -- 8. bad input --------------------------------------------------------------


@pytest.mark.parametrize("factory,quoted", [
    (lambda: LC(0, 3), "filters=0"),
    (lambda: LC(-2, 3), "filters=-2"),
    (lambda: LC(4, 0), "kernel_size=0"),
    (lambda: LC(4, (3,)), "kernel_size=(3,)"),
    (lambda: LC(4, 3, strides=-1), "strides=-1"),
    (lambda: LC(4, 3, padding="full"), "padding='full'"),
    (lambda: LC(4, 3, implementation="fast"), "implementation='fast'"),
    (lambda: LC(4, 3, data_format="channels_first"),
     "data_format='channels_first'"),
    (lambda: LC(4, 3, max_dense_bytes=0), "max_dense_bytes=0"),
    (lambda: LC(4, 3, max_dense_bytes=-5), "max_dense_bytes=-5"),
    (lambda: LC(4, 3, density=0), "density=0"),
    (lambda: LC(4, 3, feedback="nope"), "'nope'"),
    (lambda: LC(4, 3, seed=-1), "seed=-1"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments(factory, quoted):
  with pytest.raises(ValueError, match=re.escape(quoted)):
    factory()


def test_bad_inputs_at_build():
  with pytest.raises(ValueError, match=re.escape("kernel_size=(9, 9)")):
    LC(4, 9).build((None, 7, 7, 3))
  with pytest.raises(ValueError, match=re.escape("kernel_size=(3, 8)")):
    LC(4, (3, 8))(keras.Input((7, 7, 3)))
  # With SAME padding a large kernel is fine (zeros around the input).
  layer = LC(2, 9, padding="same")
  assert layer(tf.ones((1, 7, 7, 3))).shape == (1, 7, 7, 2)
  for shape in ((None, None, None, 3), (None, 7, None, 3)):
    with pytest.raises(ValueError, match="static") as info:
      LC(4, 3).build(shape)
    assert str(shape) in str(info.value)
  with pytest.raises(ValueError, match="static"):
    LC(4, 3)(keras.Input((None, None, 3)))


def test_dense_memory_bound():
  # (batch 8) x (5*5 positions) x (3*3*3 taps) x 4 bytes = 21600 bytes.
  with pytest.raises(ValueError, match=re.escape("implementation='sparse'")):
    LC(4, 3, implementation="dense", max_dense_bytes=1000).build((8, 7, 7, 3))
  with pytest.raises(ValueError, match="max_dense_bytes=21599"):
    LC(4, 3, implementation="dense", max_dense_bytes=21599).build(
        (8, 7, 7, 3))
  exact = LC(4, 3, implementation="dense", max_dense_bytes=21600)
  exact.build((8, 7, 7, 3))
  assert exact.resolved_implementation == "dense"
  for bound, expected in ((1000, "offsets"), (21599, "offsets"),
                          (21600, "dense")):
    layer = LC(4, 3, implementation="auto", max_dense_bytes=bound)
    layer.build((8, 7, 7, 3))
    assert layer.resolved_implementation == expected, bound
    assert layer.supports_jit is True, bound
    assert layer.get_config()["implementation"] == "auto"
  # Unknown batch: one example (2700 bytes) is what counts.
  for bound, expected in ((2699, "offsets"), (2700, "dense")):
    layer = LC(4, 3, max_dense_bytes=bound)
    layer.build((None, 7, 7, 3))
    assert layer.resolved_implementation == expected, bound
  assert LC(4, 3).implementation == "auto"
  # "sparse" is always allowed, whatever the bound.
  sparse = LC(4, 3, implementation="sparse", max_dense_bytes=1)
  sparse.build((8, 7, 7, 3))
  assert sparse.resolved_implementation == "sparse"
  # The auto-chosen offsets form computes the same map.
  auto = LC(4, 3, max_dense_bytes=1000, seed=3)
  dense = LC(4, 3, implementation="dense", seed=3)
  x = np.random.default_rng(11).standard_normal((8, 7, 7, 3)).astype(
      np.float32)
  auto.build(x.shape)
  dense.build(x.shape)
  dense.set_weights(auto.get_weights())
  assert auto.resolved_implementation == "offsets"
  np.testing.assert_allclose(_np(auto(x)), _np(dense(x)), rtol=RTOL,
                             atol=ATOL)


# -- 9. initialisation ---------------------------------------------------------


def test_initializers_use_conv_fans():
  layer = LC(16, 3, padding="same", kernel_initializer="he_normal",
             feedback="fa", seed=3)
  layer.build((None, 16, 16, 8))
  w = _np(layer.kernel)
  assert w.shape == (256, 72, 16)
  std = math.sqrt(2.0 / 72)
  np.testing.assert_allclose(w.std(), std, rtol=0.02)
  per_position = w.reshape(256, -1).std(1)
  np.testing.assert_allclose(per_position.mean(), std, rtol=0.02)
  np.testing.assert_allclose(per_position, std, rtol=0.12)
  # fa's B is drawn like W, so it has the same per-position scale.
  b = _np(layer.feedback_kernel())
  np.testing.assert_allclose(b.std(), std, rtol=0.02)
  assert abs(np.corrcoef(w.ravel(), b.ravel())[0, 1]) < 0.02
  # Glorot uniform: limit sqrt(6 / (fan_in + fan_out)), fan_out = 3*3*16.
  glorot = LC(16, 3, padding="same", seed=4)
  glorot.build((None, 16, 16, 8))
  limit = math.sqrt(6.0 / (72 + 144))
  w = _np(glorot.kernel)
  assert np.abs(w).max() <= limit * (1 + 1e-6)
  assert np.abs(w).max() > 0.99 * limit
  np.testing.assert_allclose(w.std(), limit / math.sqrt(3), rtol=0.02)
  # Non-VarianceScaling initializers are left alone.
  ones = LC(2, 3, kernel_initializer="ones")
  ones.build((None, 5, 5, 2))
  np.testing.assert_array_equal(_np(ones.kernel), 1.0)
