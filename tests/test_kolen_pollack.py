"""Kolen–Pollack feedback (``kp``, akrout2019): B moves and decays like W."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import feedback as fb

STEPS, LR = 300, 0.05


def _angle(a, b):
  a, b = np.ravel(a), np.ravel(b)
  cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
  return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _train(feedback, optimizer_decay=None, kernel_regularizer=None):
  """A 2-layer dense net, STEPS full-batch SGD steps (model.losses added)."""
  keras.utils.set_random_seed(0)  # the same W for every call
  layers = [
      tfbio.layers.Dense(16, activation="tanh", feedback=feedback, seed=1,
                         kernel_regularizer=kernel_regularizer),
      tfbio.layers.Dense(4, feedback=feedback, seed=2,
                         kernel_regularizer=kernel_regularizer)]
  model = keras.Sequential([keras.Input((8,))] + layers)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 8)).astype("float32")
  y = np.tanh(x @ rng.normal(size=(8, 4))).astype("float32")
  optimizer = keras.optimizers.SGD(LR, weight_decay=optimizer_decay)

  def state():
    # pylint: disable-next=protected-access
    return [(l.kernel.numpy(), l._feedback_kernel.numpy()) for l in layers]

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
      if model.losses:
        loss += tf.add_n(model.losses)
    variables = model.trainable_weights
    optimizer.apply(tape.gradient(loss, variables), variables)

  before = state()
  for _ in range(STEPS):
    step()
  return before, state()


def test_registry_entry():
  kp = fb.get("kp")
  assert isinstance(kp, fb.UpdatedRandomFeedback)
  assert kp.trainable_feedback and not kp.per_step and not kp.is_backprop
  assert fb.serialize("kp") == {"name": "kp", "initializer": None,
                                "weight_decay": 0.0}
  algo = fb.get("kp", weight_decay="0.01", initializer="he_normal")
  assert fb.get(fb.serialize(algo)) == algo != kp
  for bad in (-0.1, "x", float("nan"), None):
    with pytest.raises(ValueError,
                       match=re.escape(f"weight_decay={bad!r}")):
      fb.get("kp", weight_decay=bad)


def test_w_minus_b_shrinks_geometrically_and_b_aligns():
  decay = 0.1
  urfb_before, urfb_after = _train("urfb")
  kp_before, kp_after = _train({"name": "kp", "weight_decay": decay})
  shrink = (1 - LR * decay) ** STEPS  # 0.22
  for (w0, b0), (w1, b1), (_, _), (uw1, ub1) in zip(
      kp_before, kp_after, urfb_before, urfb_after):
    # Same gradient increment for both, same decay: W - B = shrink (W0 - B0).
    np.testing.assert_allclose(w1 - b1, shrink * (w0 - b0), rtol=1e-3,
                               atol=1e-6)
    # urfb (no decay): W - B never changes.
    np.testing.assert_allclose(uw1 - ub1, w0 - b0, rtol=0, atol=1e-5)
    start, kp_end, urfb_end = (_angle(w0, b0), _angle(w1, b1),
                               _angle(uw1, ub1))
    assert kp_end < start - 35, (start, kp_end)
    assert kp_end < urfb_end - 20, (kp_end, urfb_end)


def test_zero_decay_is_urfb():
  _, urfb_after = _train("urfb")
  _, kp_after = _train("kp")
  for (w, b), (kw, kb) in zip(urfb_after, kp_after):
    np.testing.assert_array_equal(kw, w)
    np.testing.assert_array_equal(kb, b)


@pytest.mark.parametrize("route", ["optimizer", "kernel_regularizer"])
def test_other_decay_routes_decay_b_once_like_w(route):
  """An optimizer's weight decay reaches B as W (kp adds nothing); an L2
  kernel_regularizer, which only sees W, is mirrored onto B by kp."""
  decay = 0.1
  if route == "optimizer":
    before, after = _train("kp", optimizer_decay=decay)
  else:
    before, after = _train("kp",
                           kernel_regularizer=keras.regularizers.L2(decay / 2))
  shrink = (1 - LR * decay) ** STEPS
  for (w0, b0), (w1, b1) in zip(before, after):
    np.testing.assert_allclose(w1 - b1, shrink * (w0 - b0), rtol=1e-3,
                               atol=1e-6)
