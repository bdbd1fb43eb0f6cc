"""Tests of tfbio.experiments.stats: bootstrap intervals and verdict rules."""

import math

import numpy as np

from tfbio.experiments import stats


def test_paired_differences_use_common_seeds_in_order():
  a = {0: 10.0, 1: 12.0, 2: 11.0, 4: 9.0}
  b = {0: 9.0, 2: 10.5, 1: 13.0, 3: 1.0}
  assert stats.paired_differences(a, b) == [1.0, -1.0, 0.5]


def test_bootstrap_ci_matches_numpy_percentiles_and_is_reproducible():
  values = [1.0, 2.5, 0.5, 3.0, 2.0]
  low, high = stats.bootstrap_ci(values, resamples=4000, seed=3)
  assert (low, high) == stats.bootstrap_ci(values, resamples=4000, seed=3)
  rng = np.random.default_rng(0)
  means = rng.choice(values, size=(200000, 5)).mean(axis=1)
  ref_low, ref_high = np.percentile(means, [2.5, 97.5])
  assert abs(low - ref_low) < 0.1 and abs(high - ref_high) < 0.1
  assert low < np.mean(values) < high
  assert stats.bootstrap_ci([4.0]) == (4.0, 4.0)
  assert all(math.isnan(v) for v in stats.bootstrap_ci([]))


def test_verdict_rules_on_intervals():
  h, n, i = stats.HOLDS, stats.DOES_NOT_HOLD, stats.INCONCLUSIVE
  assert stats.equivalence(-0.5, 0.8, 1.0) == h
  assert stats.equivalence(1.0, 3.0, 1.0) == n
  assert stats.equivalence(-3.0, -1.0, 1.0) == n
  assert stats.equivalence(0.5, 1.5, 1.0) == i
  assert stats.greater(0.2, 2.0) == h
  assert stats.greater(-1.0, 0.0) == n
  assert stats.greater(-0.1, 2.0) == i
  assert stats.less(-2.0, 0.9, 1.0) == h
  assert stats.less(1.0, 2.0, 1.0) == n
  assert stats.less(0.0, 2.0, 1.0) == i
  assert stats.equivalence(math.nan, math.nan, 1.0) == i
