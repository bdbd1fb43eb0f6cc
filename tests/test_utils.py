"""tfbio.utils (checks, seeds, geometry) and tfbio.ops.similarity."""

import math
import random
import re

import numpy as np
import pytest
import tensorflow as tf

from tfbio.ops import similarity
from tfbio.utils import checks
from tfbio.utils import geometry
from tfbio.utils import seeds


# -- checks -------------------------------------------------------------------


def test_positive_int():
  assert checks.positive_int("units", 3) == 3
  assert checks.positive_int("units", np.int64(4)) == 4
  assert type(checks.positive_int("units", np.int64(4))) is int
  for bad in (0, -3, 2.0, True, "3", None):
    with pytest.raises(ValueError, match=re.escape(
        f"units must be a positive int. Received: units={bad!r}")):
      checks.positive_int("units", bad)


def test_non_negative_int_and_integer():
  assert checks.non_negative_int("seed", 0) == 0
  with pytest.raises(ValueError, match=re.escape(
      "seed must be a non-negative int. Received: seed=-1")):
    checks.non_negative_int("seed", -1)
  assert checks.integer("seed", -5) == -5
  with pytest.raises(ValueError, match=re.escape(
      "seed must be an int. Received: seed=False")):
    checks.integer("seed", False)


def test_boolean_and_one_of():
  assert checks.boolean("sign_fixed", False) is False
  with pytest.raises(ValueError, match=re.escape(
      "sign_fixed must be a bool. Received: sign_fixed=1")):
    checks.boolean("sign_fixed", 1)
  assert checks.one_of("variant", "dtp", ("dtp", "sdtp")) == "dtp"
  with pytest.raises(ValueError, match=re.escape(
      "variant must be one of ('dtp', 'sdtp'). Received: variant='tp'")):
    checks.one_of("variant", "tp", ("dtp", "sdtp"))


def test_number_and_density():
  assert checks.number("std", "0.1", 0, low_open=True, strings=True) == 0.1
  with pytest.raises(ValueError, match=re.escape("std='0.1'")):
    checks.number("std", "0.1", 0, low_open=True)
  assert checks.number("p", 1, 0, 1) == 1.0
  assert checks.number("beta", 0, 0, 1, high_open=True) == 0.0
  for bad in (-0.1, math.nan, math.inf, True, "x", None):
    with pytest.raises(ValueError, match=re.escape(
        f"noise_std must be a finite number >= 0. Received: "
        f"noise_std={bad!r}")):
      checks.number("noise_std", bad, 0)
  with pytest.raises(ValueError, match=re.escape("beta must be a number in "
                                                 "[0, 1). Received: beta=1")):
    checks.number("beta", 1, 0, 1, high_open=True)
  assert checks.density("density", 1) == 1.0
  assert checks.density("density", 0.5) == 0.5
  for bad in (0, 1.5, -1, math.nan, False, "0.5"):
    with pytest.raises(ValueError, match=re.escape(
        f"density must be a number in (0, 1]. Received: density={bad!r}")):
      checks.density("density", bad)


def test_int_tuple():
  assert checks.int_tuple("strides", 2, 2) == (2, 2)
  assert checks.int_tuple("strides", [1, np.int32(3)], 2) == (1, 3)
  assert checks.int_tuple("kernel_size", 3, 3) == (3, 3, 3)
  assert checks.int_tuple("pad", (0, 1), 2, minimum=0) == (0, 1)
  for bad in ((1, 0), (1, 2, 3), 0, "ab", (1.5, 2), (True, 1), None):
    with pytest.raises(ValueError, match=re.escape(
        f"strides must be a positive int or a pair of positive ints. "
        f"Received: strides={bad!r}")):
      checks.int_tuple("strides", bad, 2)
  with pytest.raises(ValueError, match=re.escape(
      "pad must be a non-negative int or a triple of non-negative ints.")):
    checks.int_tuple("pad", -1, 3, minimum=0)


def test_shape():
  assert checks.shape("input_shape", [28, 28, 1]) == (28, 28, 1)
  assert checks.shape("input_shape", (10,), rank=1) == (10,)
  for bad, rank in (((28, 28), 3), ((), None), ((0, 4), None), (5, None),
                    ((None, 3), None)):
    with pytest.raises(ValueError, match=re.escape(
        f"input_shape must be {'' if rank is None else f'{rank} '}positive "
        f"ints. Received: input_shape={bad!r}")):
      checks.shape("input_shape", bad, rank=rank)


def test_padding():
  assert checks.padding("padding", "SAME") == "same"
  assert checks.padding("padding", "valid") == "valid"
  for bad in ("full", None, 1):
    with pytest.raises(ValueError, match=re.escape(
        f"padding must be 'valid' or 'same'. Received: padding={bad!r}")):
      checks.padding("padding", bad)


# -- seeds --------------------------------------------------------------------


def test_resolve_seed():
  assert seeds.resolve_seed(7) == 7
  random.seed(3)
  drawn = seeds.resolve_seed(None)
  assert 0 <= drawn <= 2**31 - 2
  random.seed(3)
  assert seeds.resolve_seed(None) == drawn
  for bad in (-1, 1.0, True, "1"):
    with pytest.raises(ValueError, match=re.escape(
        f"seed must be a non-negative int. Received: seed={bad!r}")):
      seeds.resolve_seed(bad)


def test_seed_mixing_is_one_rule_for_ints_and_tensors():
  assert seeds.mix_seed(3, 5) == 53
  assert seeds.derived_seed(3, 5) == 53
  # The old feedback.derived_seed: (seed * 16 + purpose) % (2**31 - 1).
  big = 2**31 - 2
  assert seeds.derived_seed(big, 4) == (big * 16 + 4) % (2**31 - 1)
  assert seeds.derived_seed("12", 1) == 193
  # The stateless streams: the same rule in int64, without the modulus.
  mixed = seeds.mix_seed(tf.constant(big, tf.int64), 4)
  assert mixed.dtype == tf.int64 and int(mixed) == big * 16 + 4


def test_stateless_stream_seed_unchanged():
  """ops.feedback_kernels draws what it drew before tfbio.utils.seeds."""
  from tfbio.ops import feedback_kernels as fk  # pylint: disable=g-import-not-at-top
  got = fk.stateless_magnitude([5], 11, 1, step=2)
  want = tf.random.stateless_uniform(
      [5], tf.constant([11 * 16 + 1, 2], tf.int64), alg="philox")
  np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_epoch_seed():
  assert seeds.epoch_seed(0, 0) == 0
  assert seeds.epoch_seed(1, 2) == 100005
  assert seeds.epoch_seed(7, 3) == 7 * 100003 + 3


# -- geometry -----------------------------------------------------------------


@pytest.mark.parametrize("length,kernel,stride,padding,dilation,expected", [
    (28, 5, 1, "valid", 1, 24), (28, 5, 1, "same", 1, 28),
    (7, 3, 2, "same", 1, 4), (7, 3, 2, "valid", 1, 3),
    (10, 3, 1, "valid", 2, 6), (10, 3, 1, "same", 2, 10),
    (None, 3, 1, "same", 1, None)])
def test_conv_output_length(length, kernel, stride, padding, dilation,
                            expected):
  assert geometry.conv_output_length(length, kernel, stride, padding,
                                     dilation) == expected


def test_conv_output_length_matches_tensorflow():
  x = tf.zeros([1, 9, 11, 1])
  for padding in ("valid", "same"):
    for kernel, stride in ((3, 1), (3, 2), (4, 3), (1, 2)):
      y = tf.nn.conv2d(x, tf.zeros([kernel, kernel, 1, 1]), stride,
                       padding.upper())
      assert y.shape[1:3] == (
          geometry.conv_output_length(9, kernel, stride, padding),
          geometry.conv_output_length(11, kernel, stride, padding))


# -- similarity ---------------------------------------------------------------


def test_angle_degrees():
  assert float(similarity.angle_degrees([1.0, 0.0], [0.0, 2.0])) == (
      pytest.approx(90.0))
  assert float(similarity.angle_degrees(
      np.array([1.0, 0.0]), np.array([1.0, 1.0]), tf.float64)) == (
          pytest.approx(45.0, abs=1e-12))
  assert float(similarity.angle_degrees([[1.0], [2.0]], [[-1.0], [-2.0]])) == (
      pytest.approx(180.0, abs=1e-3))
  # A list of tensors is flattened and concatenated.
  a = [tf.ones([2, 2]), tf.zeros([3])]
  assert float(similarity.angle_degrees(a, a)) == pytest.approx(0.0, abs=1e-2)
  # Zero vector: undefined, NaN (also under XLA).
  assert math.isnan(float(similarity.angle_degrees(tf.zeros(3), tf.ones(3))))
  jitted = tf.function(similarity.angle_degrees, jit_compile=True)
  assert math.isnan(float(jitted(tf.ones(3), tf.zeros(3))))


def test_pearson_correlation():
  a = np.array([1.0, 2.0, 3.0, 5.0])
  assert float(similarity.pearson_correlation(a, 2 * a + 1, tf.float64)) == (
      pytest.approx(1.0))
  assert float(similarity.pearson_correlation(a, -a, tf.float64)) == (
      pytest.approx(-1.0))
  assert float(similarity.pearson_correlation(a, a[::-1], tf.float64)) == (
      pytest.approx(np.corrcoef(a, a[::-1])[0, 1]))
  assert math.isnan(float(similarity.pearson_correlation(a, np.ones(4))))
