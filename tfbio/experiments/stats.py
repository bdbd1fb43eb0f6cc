"""Small statistics of per-seed results (no numpy needed)."""

import math


def mean(values):
  """Arithmetic mean; NaN for no values."""
  return sum(values) / len(values) if values else math.nan


def std(values):
  """Sample standard deviation (n - 1); 0 for fewer than 2 values."""
  if len(values) < 2:
    return 0.0
  m = mean(values)
  return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fmt(values, diverged=0):
  """``"mean ± std"`` (2 decimals), ``" (k diverged)"`` if any; — if none."""
  if not values:
    return "—"
  text = f"{mean(values):.2f} ± {std(values):.2f}"
  if diverged:
    text += f" ({diverged} diverged)"
  return text


HOLDS = "HOLDS"
DOES_NOT_HOLD = "DOES NOT HOLD"
INCONCLUSIVE = "INCONCLUSIVE"


def paired_differences(a, b):
  """``[a[s] - b[s]]`` over the seeds ``s`` both dicts hold, in seed order."""
  return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def bootstrap_ci(values, level=0.95, resamples=10000, seed=0):
  """Percentile bootstrap interval of the mean of ``values``.

  Resamples ``values`` with replacement ``resamples`` times (a fixed
  ``random.Random(seed)``, so the interval is reproducible) and returns the
  ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
  means. With few values (3-5 seeds) the interval is only as wide as the
  values' own spread allows: it is a description, not an exact test.

  Returns:
    ``(low, high)``; ``(nan, nan)`` for no values; ``(v, v)`` for one.
  """
  import random  # pylint: disable=g-import-not-at-top
  values = list(values)
  if not values:
    return math.nan, math.nan
  rng = random.Random(seed)
  n = len(values)
  means = sorted(sum(rng.choice(values) for _ in range(n)) / n
                 for _ in range(resamples))
  low = means[int(math.floor((1 - level) / 2 * (resamples - 1)))]
  high = means[int(math.ceil((1 + level) / 2 * (resamples - 1)))]
  return low, high


def equivalence(low, high, margin):
  """"``|difference| < margin``" judged on its interval ``(low, high)``.

  HOLDS if the whole interval lies inside ``(-margin, margin)``; DOES NOT
  HOLD if it lies wholly outside (``low >= margin`` or ``high <= -margin``);
  INCONCLUSIVE otherwise (or for a NaN interval).
  """
  if math.isnan(low) or math.isnan(high):
    return INCONCLUSIVE
  if -margin < low and high < margin:
    return HOLDS
  if low >= margin or high <= -margin:
    return DOES_NOT_HOLD
  return INCONCLUSIVE


def greater(low, high, margin=0.0):
  """"``difference > margin``" judged on its interval ``(low, high)``.

  HOLDS if ``low > margin``; DOES NOT HOLD if ``high <= margin``;
  INCONCLUSIVE otherwise (or for a NaN interval).
  """
  if math.isnan(low) or math.isnan(high):
    return INCONCLUSIVE
  if low > margin:
    return HOLDS
  if high <= margin:
    return DOES_NOT_HOLD
  return INCONCLUSIVE


def less(low, high, margin=0.0):
  """"``difference < margin``" (e.g. not worse by ``margin``): HOLDS if
  ``high < margin``; DOES NOT HOLD if ``low >= margin``; else INCONCLUSIVE."""
  if math.isnan(low) or math.isnan(high):
    return INCONCLUSIVE
  if high < margin:
    return HOLDS
  if low >= margin:
    return DOES_NOT_HOLD
  return INCONCLUSIVE
