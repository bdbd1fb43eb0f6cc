"""Block-wise direct feedback alignment on residual networks (tfbio.dfa).

Launay, Poli, Boniface, Krzakala 2020, "Direct Feedback Alignment Scales to
Modern Deep Learning Tasks and Architectures": the output error ``e`` reaches
the output ``h_k`` of every block through its own fixed ``B_k``; inside a
block the update is back-propagation from ``e B_k``; no error crosses a
block boundary, not even along the residual stream (docs/algorithms.md §9).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbio import dfa
from tfbio import models
from tfbio.data import sources


def _sce():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _softmax(a):
  z = np.exp(a - a.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


def _residual_net(d=4, c=3):
  """x -> h1 = x + tanh(x W1 + b1) -> h2 = h1 + tanh(h1 W2 + b2) -> h2 W3."""
  inputs = keras.Input((d,))
  f1 = keras.layers.Dense(d, activation="tanh", name="f1")(inputs)
  h1 = keras.layers.Add(name="add1")([inputs, f1])
  f2 = keras.layers.Dense(d, activation="tanh", name="f2")(h1)
  h2 = keras.layers.Add(name="add2")([h1, f2])
  outputs = keras.layers.Dense(c, name="output")(h2)
  return keras.Model(inputs, outputs, name="resnet")


def _numpy_case(seed=0, n=6, d=4, c=3):
  rng = np.random.RandomState(seed)
  x = rng.randn(n, d).astype("float32")
  y = rng.randint(0, c, n).astype("int32")
  weights = [rng.randn(d, d) * 0.5, rng.randn(d) * 0.1,
             rng.randn(d, d) * 0.5, rng.randn(d) * 0.1,
             rng.randn(d, c) * 0.5, rng.randn(c) * 0.1]
  return x, y, [w.astype("float32") for w in weights]


def _forward64(x, w):
  w1, b1, w2, b2, w3, b3 = [v.astype("float64") for v in w]
  x = x.astype("float64")
  t1 = np.tanh(x @ w1 + b1)
  h1 = x + t1
  t2 = np.tanh(h1 @ w2 + b2)
  h2 = h1 + t2
  return x, t1, h1, t2, h2, h2 @ w3 + b3


def test_each_block_update_is_the_vjp_of_its_output_with_e_b():
  n, d, c = 6, 4, 3
  x, y, w = _numpy_case(n=n, d=d, c=c)
  net = _residual_net(d, c)
  net.set_weights(w)
  model = dfa.DFAModel(net, seed=1, bp_angle=True)
  assert model.block_wise  # Automatic: every residual addition ends a block.
  assert [b.name for b in model.blocks] == ["add1", "add2", "output"]
  b1 = model.feedback_matrix("add1").numpy().astype("float64")
  b2 = model.feedback_matrix("add2").numpy().astype("float64")
  assert b1.shape == b2.shape == (c, d) and not np.allclose(b1, b2)
  model.compile("sgd", _sce(), jit_compile=False)
  result = model.compute_gradients(x, y, backprop=True)

  x64, t1, h1, t2, h2, a = _forward64(x, w)
  e = (_softmax(a) - np.eye(c)[y]) / n
  np.testing.assert_allclose(result["error"], e, atol=1e-6)
  # Block 1: h1 = x + tanh(x W1 + b1) with x constant; VJP with e B_1.
  delta1 = (e @ b1) * (1.0 - t1**2)
  # Block 2: its input h1 is constant (the residual stream carries no
  # error from block 2 back to block 1); VJP of h2 with e B_2.
  delta2 = (e @ b2) * (1.0 - t2**2)
  want = [x64.T @ delta1, delta1.sum(0), h1.T @ delta2, delta2.sum(0),
          h2.T @ e, e.sum(0)]  # Output block: its true gradient.
  for got, ref, what in zip(result["grads"], want,
                            ["W1", "b1", "W2", "b2", "W3", "b3"]):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7, err_msg=what)

  # The back-propagated diagnostic chains the cut graph into plain BP.
  w3 = w[4].astype("float64")
  g2 = e @ w3.T
  bp_delta2 = g2 * (1.0 - t2**2)
  g1 = g2 + bp_delta2 @ w[2].astype("float64").T  # Stream + branch.
  bp_delta1 = g1 * (1.0 - t1**2)
  bp = [x64.T @ bp_delta1, bp_delta1.sum(0), h1.T @ bp_delta2,
        bp_delta2.sum(0), h2.T @ e, e.sum(0)]
  for got, ref, what in zip(result["backprop_grads"], bp,
                            ["W1", "b1", "W2", "b2", "W3", "b3"]):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7, err_msg=what)
  assert not np.allclose(bp[0], want[0], atol=1e-4)  # DFA is not BP.

  # fit applies exactly these updates (plain SGD, one full batch).
  lr = 0.5
  model.compile(keras.optimizers.SGD(lr), _sce(), jit_compile=False)
  history = model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
  assert set(history.history) == {"loss", "bp_angle/add1", "bp_angle/add2"}
  for got, before, g in zip(net.get_weights(), w, want):
    np.testing.assert_allclose(got, before - lr * g, rtol=1e-5, atol=1e-6)


def test_named_block_outputs_backprop_inside_a_block():
  # One block ending at add2: e B reaches h2 and is back-propagated through
  # both residual units (stream and branches) inside the block.
  n, d, c = 5, 4, 3
  x, y, w = _numpy_case(seed=2, n=n, d=d, c=c)
  net = _residual_net(d, c)
  net.set_weights(w)
  model = dfa.DFAModel(net, seed=4, block_outputs=["add2"])
  assert [b.name for b in model.blocks] == ["add2", "output"]
  assert [l.name for l in model.blocks[0].pre_layers] == ["f1", "add1", "f2"]
  model.compile("sgd", _sce(), jit_compile=False)
  result = model.compute_gradients(x, y)
  x64, t1, h1, t2, h2, a = _forward64(x, w)
  e = (_softmax(a) - np.eye(c)[y]) / n
  g2 = e @ model.feedback_matrix("add2").numpy().astype("float64")
  delta2 = g2 * (1.0 - t2**2)
  delta1 = (g2 + delta2 @ w[2].astype("float64").T) * (1.0 - t1**2)
  want = [x64.T @ delta1, delta1.sum(0), h1.T @ delta2, delta2.sum(0)]
  for got, ref in zip(result["grads"][:4], want):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)


def test_weight_decay_is_coupled_l2_on_every_variable():
  n, d, c = 6, 4, 3
  x, y, w = _numpy_case(seed=3, n=n, d=d, c=c)
  net = _residual_net(d, c)
  net.set_weights(w)
  model = dfa.DFAModel(net, seed=1, weight_decay=0.1)
  model.compile(keras.optimizers.SGD(0.5), _sce(), jit_compile=False)
  grads = [g.numpy() for g in model.compute_gradients(x, y)["grads"]]
  model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
  for got, before, g in zip(net.get_weights(), w, grads):
    np.testing.assert_allclose(got, before - 0.5 * (g + 0.1 * before),
                               rtol=1e-5, atol=1e-6)


def _small_vit():
  return models.create_model("vit_tiny", num_classes=10, input_shape=(8, 8, 1),
                             patch_size=4, dim=16, depth=2, num_heads=2,
                             mlp_dim=32)


def test_vit_blocks_and_fit_loss_falls():
  keras.utils.set_random_seed(0)
  model = dfa.DFAModel(_small_vit(), seed=0)
  # Every residual addition ends a block; the patch embedding trains inside
  # the first one, the final LayerNorm and the head get their true gradient.
  assert [b.name for b in model.blocks] == [
      "block1_add1", "block1_add2", "block2_add1", "block2_add2", "head"]
  assert [l.name for l in model.blocks[0].pre_layers] == [
      "patch_embed", "patch_tokens", "pos_embed", "block1_norm1",
      "block1_attn"]
  assert [l.name for l in model.blocks[-1].pre_layers] == [
      "norm", "cls_token", "cls_flatten"]
  # B_k: (n_L, tokens * dim) = (10, (4 + 1) * 16).
  assert [tuple(b.shape) for b in model.direct_feedback.matrices] == [
      (10, 80)] * 4
  assert len(model.dfa_variables) == len(model.network.trainable_variables)

  x, y = sources._digits_splits()["train"]  # pylint: disable=protected-access
  x, y = x[:512], y[:512]
  model.compile(keras.optimizers.Adam(3e-3), _sce(), jit_compile=False)
  loss0 = float(_sce()(y, model.network(x)))  # Before training (eager).
  history = model.fit(x, y, epochs=4, batch_size=64, verbose=0)
  losses = history.history["loss"]
  assert np.all(np.isfinite(losses)), losses
  # DFA learns more slowly than BP here (BP: 2.74 -> 0.54 in 3 epochs of 32
  # steps); the loss must still fall clearly below its start.
  assert losses[-1] < loss0 - 0.2 and losses[-1] < losses[0], (loss0, losses)


def test_keras_round_trip_of_block_feedback(tmp_path):
  keras.utils.set_random_seed(1)
  model = dfa.DFAModel(_small_vit(), seed=7, feedback_density=0.5,
                       block_outputs=["block1_add2", "block2_add2"])
  assert [b.name for b in model.blocks] == [
      "block1_add2", "block2_add2", "head"]
  x = np.random.RandomState(0).rand(4, 8, 8, 1).astype("float32")
  feedback = [v.numpy() for v in model.direct_feedback.variables]
  assert len(feedback) == 4  # B_1, B_2 and their masks.
  path = str(tmp_path / "vit_dfa.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, dfa.DFAModel) and loaded.block_wise
  assert (json.dumps(loaded.get_config(), sort_keys=True)
          == json.dumps(model.get_config(), sort_keys=True))
  assert [b.name for b in loaded.blocks] == [b.name for b in model.blocks]
  for got, want in zip(loaded.direct_feedback.variables, feedback):
    np.testing.assert_array_equal(got.numpy(), want)
  np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
  # get_config / from_config draws the same B_k again from the seed.
  clone = dfa.DFAModel.from_config(model.get_config())
  for got, want in zip(clone.direct_feedback.variables, feedback):
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("kwargs, message", [
    ({"block_outputs": "blocks"}, "block_outputs must be None, 'residual', "),
    ({"feedback_structure": "kernel"},
     "needs each block output to be read by exactly one kernel layer"),
    ({"feedback_structure": "conv"}, "Received: feedback_structure='conv'"),
    ({"block_outputs": []}, "Received: block_outputs=[]"),
    ({"block_outputs": ["nope"]}, "does not call. Layers:"),
    ({"block_outputs": ["output"]}, "comes after the output layer"),
    ({"weight_decay": -1.0}, "Received: weight_decay=-1.0"),
])
def test_bad_block_arguments(kwargs, message):
  with pytest.raises(ValueError) as info:
    dfa.DFAModel(_residual_net(), **kwargs)
  assert message in str(info.value)


def test_merge_without_residual_addition_is_refused():
  inputs = keras.Input((4,))
  h = keras.layers.Dense(3, name="fc")(inputs)
  h = keras.layers.Concatenate(name="cat")([inputs, h])
  outputs = keras.layers.Dense(2, name="output")(h)
  with pytest.raises(ValueError, match="no residual addition"):
    dfa.DFAModel(keras.Model(inputs, outputs))
  # ... unless the blocks are named.
  model = dfa.DFAModel(keras.Model(inputs, outputs), block_outputs=["cat"])
  assert [b.name for b in model.blocks] == ["cat", "output"]


def _small_lenet():
  """conv(3x3, 2) relu pool conv(3x3, 3) relu flatten dense(4) relu dense(3)."""
  inputs = keras.Input((8, 8, 1))
  h = keras.layers.Conv2D(2, 3, activation="relu", name="conv1")(inputs)
  h = keras.layers.MaxPooling2D(2, name="pool1")(h)
  h = keras.layers.Conv2D(3, 2, name="conv2")(h)
  h = keras.layers.ReLU(name="relu2")(h)
  h = keras.layers.Flatten(name="flatten")(h)
  h = keras.layers.Dense(4, activation="relu", name="fc1")(h)
  return keras.Model(inputs, keras.layers.Dense(3, name="fc2")(h))


def test_kernel_structured_feedback_is_biotorchs_input_gradient(tmp_path):
  """block_outputs='kernel_inputs' + feedback_structure='kernel': B_k has the
  reading layer's kernel shape with n_L outputs, Glorot-uniform; the error
  reaches h_k as that layer's input gradient for B_k (conv: at e repeated
  over its output positions), as biotorch's DFA layers compute it."""
  keras.utils.set_random_seed(0)
  model = dfa.DFAModel(_small_lenet(), seed=3, block_outputs="kernel_inputs",
                       feedback_structure="kernel")
  assert [b.name for b in model.blocks] == ["pool1", "flatten", "fc1", "fc2"]
  fb = model.direct_feedback
  shapes = [tuple(m.shape) for m in fb.matrices]
  assert shapes == [(2, 2, 2, 3), (12, 3), (4, 3)]  # conv2, fc1, fc2 readers
  for m, (fi, fo) in zip(fb.matrices, [(8, 12), (12, 3), (4, 3)]):
    limit = np.sqrt(6 / (fi + fo))
    assert np.abs(m.numpy()).max() <= limit
    assert np.abs(m.numpy()).max() > 0.7 * limit
  e = np.random.RandomState(1).randn(2, 3).astype("float32")
  got = [p.numpy() for p in fb(tf.constant(e))]
  b = fb.matrices[0].numpy()           # (kh, kw, c_in, n_L) = (2, 2, 2, 3)
  want = np.zeros((2, 3, 3, 2))        # conv2 reads pool1 (3, 3, 2), out 2x2
  for n in range(2):
    for oy in range(2):
      for ox in range(2):
        for i in range(2):
          for j in range(2):
            want[n, oy + i, ox + j] += b[i, j] @ e[n]
  np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[1], e @ fb.matrices[1].numpy().T, rtol=1e-5)
  np.testing.assert_allclose(got[2], e @ fb.matrices[2].numpy().T, rtol=1e-5)
  # Trains, and the consumers survive .keras.
  model.compile("sgd", _sce())
  x = np.random.RandomState(2).rand(4, 8, 8, 1).astype("float32")
  loss = model.fit(x, np.array([0, 1, 2, 1]), epochs=2, verbose=0)
  assert np.all(np.isfinite(loss.history["loss"]))
  with pytest.raises(ValueError, match="needs a network cut into blocks"):
    dfa.DFAModel(_small_lenet(), feedback_structure="kernel")
  path = str(tmp_path / "lenet_dfa.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.direct_feedback.consumers == fb.consumers
  for got_b, want_b in zip(loaded.direct_feedback.matrices, fb.matrices):
    np.testing.assert_array_equal(got_b.numpy(), want_b.numpy())
