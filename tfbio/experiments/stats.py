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
