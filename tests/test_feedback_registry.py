"""Tests of the feedback-algorithm registry (tfbio.feedback).

Loops live inside the tests (rather than in parametrize) because every test
pays for a Keras session reset in conftest.
"""

import re

import keras
import pytest

import tfbio
from tfbio import feedback as fb

ALL_NAMES = [
    "bp", "brsf", "brsf_p", "fa", "frfb", "frsf", "frsf_p", "kp", "nusf",
    "rndf", "ss", "urfb", "usf"
]
FLIP_NAMES = ["brsf_p", "frsf_p"]


def _params(name):
  return {"flip_prob": 0.3} if name in FLIP_NAMES else {}


def test_names_exactly_the_thirteen():
  assert sorted(fb.names()) == sorted(ALL_NAMES)
  assert len(fb.names()) == len(set(fb.names())) == 13
  assert tfbio.feedback.names() == fb.names()


def test_get_by_name():
  for name in ALL_NAMES:
    algo = fb.get(name, **_params(name))
    assert isinstance(algo, fb.FeedbackAlgorithm), name
    assert algo.name == ("fa" if name == "frfb" else name)
  assert fb.get(" SS ").name == "ss"


def test_frfb_is_alias_of_fa():
  a = fb.get("frfb")
  b = fb.get("fa")
  assert type(a) is type(b)
  assert a == b
  assert fb.serialize("frfb") == fb.serialize("fa")


def test_flags():
  assert fb.get("bp").is_backprop
  algos = {n: fb.get(n, **_params(n)) for n in ALL_NAMES}
  assert {n for n, a in algos.items() if a.is_backprop} == {"bp"}
  assert {n for n, a in algos.items() if a.per_step} == {"brsf", "brsf_p"}
  assert {n for n, a in algos.items() if a.trainable_feedback} == {"urfb",
                                                                   "kp"}


def test_get_object_returns_same_object():
  for name in ALL_NAMES:
    algo = fb.get(name, **_params(name))
    assert fb.get(algo) is algo, name


def test_get_object_with_params_raises():
  with pytest.raises(ValueError, match="flip_prob"):
    fb.get(fb.get("ss"), flip_prob=0.5)


def test_get_from_dict():
  algo = fb.get({"name": "frsf_p", "flip_prob": 0.25})
  assert algo.name == "frsf_p"
  assert algo.flip_prob == 0.25
  assert fb.get({"name": "rndf", "std": 0.1}).std == 0.1
  assert fb.get({"name": "ss"}).name == "ss"
  assert fb.get({"name": "frfb"}).name == "fa"
  # Keyword parameters override the dict's.
  assert fb.get({"name": "brsf_p", "flip_prob": 0.25},
                flip_prob=0.75).flip_prob == 0.75


def test_serialize_round_trip_every_algorithm():
  for name in ALL_NAMES:
    algo = fb.get(name, **_params(name))
    config = fb.serialize(algo)
    assert config["name"] == algo.name
    again = fb.get(config)
    assert type(again) is type(algo), name
    assert again == algo, name
    assert fb.serialize(again) == config, name
    assert fb.serialize(name if not _params(name) else config) == config


def test_serialize_round_trip_with_params():
  for algo in [fb.get("rndf", std=0.2), fb.get("brsf_p", flip_prob=0.9),
               fb.get("frsf_p", flip_prob=0.0),
               fb.get("fa", initializer="he_normal"),
               fb.get("urfb", initializer=keras.initializers.RandomUniform(
                   -0.1, 0.1, seed=3))]:
    config = fb.serialize(algo)
    again = fb.get(config)
    assert again == algo, config
    assert fb.serialize(again) == config


def test_serialize_values():
  assert fb.serialize("ss") == {"name": "ss"}
  assert fb.serialize("rndf") == {"name": "rndf", "std": 0.05}
  assert fb.serialize(fb.get("frsf_p", flip_prob=0.5)) == {
      "name": "frsf_p", "flip_prob": 0.5}


def test_equality_and_hash():
  assert fb.get("frsf_p", flip_prob=0.1) != fb.get("frsf_p", flip_prob=0.2)
  assert fb.get("brsf_p", flip_prob=0.1) != fb.get("frsf_p", flip_prob=0.1)
  assert fb.get("fa") != fb.get("urfb")
  assert hash(fb.get("rndf", std=0.1)) == hash(fb.get("rndf", std=0.1))


def test_unknown_name_lists_known_names():
  with pytest.raises(ValueError) as info:
    fb.get("nope")
  msg = str(info.value)
  assert "'nope'" in msg
  for name in ALL_NAMES:
    assert re.search(r"\b" + re.escape(name) + r"\b", msg), (name, msg)


def test_non_string_identifier_raises():
  for bad in [None, 3, 1.5, ["ss"]]:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
      fb.get(bad)


@pytest.mark.parametrize("name", FLIP_NAMES)
def test_bad_flip_prob(name):
  for bad in [1.5, -0.1, "x", None, 2, float("inf")]:
    with pytest.raises(ValueError, match=re.escape(f"flip_prob={bad!r}")):
      fb.get(name, flip_prob=bad)
  with pytest.raises(ValueError, match="flip_prob"):
    fb.get(name)
  with pytest.raises(ValueError, match="flip_prob"):
    fb.get(name, flip_prob=float("nan"))


@pytest.mark.parametrize("name", FLIP_NAMES)
def test_valid_flip_prob(name):
  for p in [0, 0.0, 0.5, 1, 1.0, "0.25"]:
    assert fb.get(name, flip_prob=p).flip_prob == float(p)


def test_bad_rndf_std():
  for bad in [0, -1, 0.0, -0.5, "x", float("inf"), None]:
    with pytest.raises(ValueError, match=re.escape(f"std={bad!r}")):
      fb.get("rndf", std=bad)
  assert fb.get("rndf").std == 0.05
  assert fb.get("rndf", std="0.1").std == 0.1


def test_unknown_param_raises():
  for name in ALL_NAMES:
    params = {**_params(name), "bogus_param": 1}
    with pytest.raises(ValueError, match="bogus_param"):
      fb.get(name, **params)
  with pytest.raises(ValueError, match="bogus"):
    fb.get({"name": "ss", "bogus": 2})


def test_bad_fa_initializer():
  with pytest.raises(ValueError, match="not_an_initializer"):
    fb.get("fa", initializer="not_an_initializer")


def test_a_name_with_parameters_as_a_command_line_gives_it():
  algo = fb.get("brsf_p:flip_prob=0.3")
  assert algo == fb.get("brsf_p", flip_prob=0.3)
  assert fb.get("kp: weight_decay=0.01").weight_decay == 0.01
  with pytest.raises(ValueError, match="key=value"):
    fb.get("brsf_p:0.3")
  with pytest.raises(ValueError, match="flip_prob"):
    fb.get("brsf_p:flip_prob=2")


def test_biotorch_scale_options():
  """biotorch's uSF / brSF / frSF (docs/algorithms.md §1.1): sign(W) times
  the Glorot std, and |Glorot-uniform| magnitudes."""
  import math
  import numpy as np
  import tensorflow as tf
  from tfbio.feedback import FeedbackContext
  ctx = FeedbackContext("conv", fan_in=150, fan_out=400, seed=3)
  w = tf.constant(np.random.default_rng(0).normal(size=(5, 5, 6, 16)),
                  tf.float32)
  b = fb.get("ss:scale=glorot").kernel(w, {}, ctx, 0).numpy()
  np.testing.assert_allclose(b, np.sign(w) * math.sqrt(2 / 550), rtol=1e-6)
  assert fb.serialize("ss:scale=glorot") == {"name": "ss", "scale": "glorot"}
  limit = math.sqrt(6 / 550)
  b = fb.get("brsf", magnitude="glorot").kernel(w, {}, ctx, 7).numpy()
  u = fb.get("brsf").kernel(w, {}, ctx, 7).numpy()
  np.testing.assert_allclose(b, u * limit, rtol=1e-6)  # same draw, scaled
  assert np.all(np.sign(b) == np.sign(w)) and np.abs(b).max() < limit
  assert np.abs(b).mean() > 0.4 * limit
  assert fb.get(fb.serialize(fb.get("frsf:magnitude=glorot"))) == fb.get(
      "frsf", magnitude="glorot")
  with pytest.raises(ValueError, match="'xavier'"):
    fb.get("ss:scale=xavier")
  with pytest.raises(ValueError, match="magnitude"):
    fb.get("brsf", magnitude="normal")


def test_ss_scale_initializer_is_the_kernels_own_spread():
  """ss:scale=initializer: s = the std of each kernel's own initializer."""
  import math
  import numpy as np
  dense = tfbio.layers.Dense(30, feedback="ss:scale=initializer")
  dense.build((None, 20))  # glorot_uniform: sqrt(2 / (20 + 30))
  conv = tfbio.layers.Conv2D(8, 3, feedback="ss:scale=initializer",
                             kernel_initializer="he_normal")
  conv.build((None, 9, 9, 4))  # sqrt(2 / fan_in), fan_in = 36
  sep = tfbio.layers.SeparableConv2D(
      6, 3, feedback="ss:scale=initializer",
      depthwise_initializer=keras.initializers.RandomNormal(stddev=0.01))
  sep.build((None, 9, 9, 4))
  for layer, kernels in (
      (dense, {"kernel": math.sqrt(2 / 50)}),
      (conv, {"kernel": math.sqrt(2 / 36)}),
      (sep, {"depthwise_kernel": 0.01,
             "pointwise_kernel": math.sqrt(2 / (4 + 6))})):
    for attr, s in kernels.items():
      b = (layer.feedback_kernel(attr) if len(kernels) > 1
           else layer.feedback_kernel())
      np.testing.assert_allclose(np.asarray(b),
                                 np.sign(np.asarray(getattr(layer, attr))) * s,
                                 rtol=1e-5)
  bad = tfbio.layers.Dense(3, feedback="ss:scale=initializer",
                           kernel_initializer="zeros", name="zero_init")
  with pytest.raises(ValueError, match="'zero_init' has Zeros"):
    bad.build((None, 2))
