"""Argument checks in the Keras style: one-line ValueErrors quoting the value.

Every check takes the argument's ``name`` first and its ``value`` second,
returns the value normalised (a Python ``int``/``float``/``tuple``, a lower
case string, ...) and otherwise raises ``ValueError`` of the form::

    units must be a positive int. Received: units=-3

``bool`` is never accepted where an int or a number is expected, nor is a
string unless asked for (``number(..., strings=True)``); NumPy integers and
floats are (they are returned as Python numbers).

Example:

>>> positive_int("units", 3)
3
>>> int_tuple("strides", 2, 2)
(2, 2)
>>> padding("padding", "SAME")
'same'
"""

import math
import operator


def _received(name, what, value):
  return ValueError(f"{name} must be {what}. Received: {name}={value!r}")


def _as_int(value):
  """``value`` as a Python int, or None if it is not an integer (or a bool)."""
  if isinstance(value, bool):
    return None
  try:
    return operator.index(value)
  except TypeError:
    return None


def integer(name, value):
  """An int (any sign).

  Args:
    name: the argument's name, quoted in the error.
    value: the value to check.

  Returns:
    ``value`` as a Python int.

  Raises:
    ValueError: ``value`` is not an integer (a bool is not).
  """
  result = _as_int(value)
  if result is None:
    raise _received(name, "an int", value)
  return result


def positive_int(name, value):
  """An int ``>= 1``; see :func:`integer`."""
  result = _as_int(value)
  if result is None or result < 1:
    raise _received(name, "a positive int", value)
  return result


def non_negative_int(name, value):
  """An int ``>= 0``; see :func:`integer`."""
  result = _as_int(value)
  if result is None or result < 0:
    raise _received(name, "a non-negative int", value)
  return result


def boolean(name, value):
  """A bool (not merely truthy: ``1`` and ``"yes"`` are refused).

  Returns:
    ``value``.

  Raises:
    ValueError: ``value`` is not a bool.
  """
  if not isinstance(value, bool):
    raise _received(name, "a bool", value)
  return value


def one_of(name, value, choices):
  """One of ``choices`` (compared with ``in``).

  Returns:
    ``value``.

  Raises:
    ValueError: ``"{name} must be one of {choices}. Received: ..."``.
  """
  if value not in choices:
    raise _received(name, f"one of {tuple(choices)}", value)
  return value


def _interval(low, high, low_open, high_open):
  if low is not None and high is not None:
    return (f"in {'(' if low_open else '['}{low}, {high}"
            f"{')' if high_open else ']'}")
  if low is not None:
    return f"{'>' if low_open else '>='} {low}"
  if high is not None:
    return f"{'<' if high_open else '<='} {high}"
  return ""


def number(name, value, low=None, high=None, *, low_open=False,
           high_open=False, strings=False):
  """A finite real number, optionally within an interval.

  Args:
    name: the argument's name, quoted in the error.
    value: the value to check: anything ``float()`` converts except a bool
      and, unless ``strings``, a string.
    low, high: bounds (None: unbounded on that side).
    low_open, high_open: whether the bound itself is excluded.
    strings: whether a numeric string (``"0.25"``, e.g. a parameter parsed
      from a command line) is accepted.

  Returns:
    ``value`` as a Python float.

  Raises:
    ValueError: e.g. ``"noise_std must be a finite number >= 0. Received:
      noise_std=-0.1"`` or ``"density must be a number in (0, 1]. Received:
      density=2"``.
  """
  interval = _interval(low, high, low_open, high_open)
  bounded = low is not None and high is not None
  what = (f"a number {interval}" if bounded
          else f"a finite number {interval}".strip())
  result = None
  if not isinstance(value, bool) and (
      strings or not isinstance(value, (str, bytes))):
    try:
      result = float(value)
    except (TypeError, ValueError):
      result = None
  if (result is None or not math.isfinite(result)
      or (low is not None and (result <= low if low_open else result < low))
      or (high is not None
          and (result >= high if high_open else result > high))):
    raise _received(name, what, value)
  return result


def density(name, value):
  """A connection density: a number in ``(0, 1]``; see :func:`number`."""
  return number(name, value, 0, 1, low_open=True)


def _tuple_words(n, minimum):
  kind = {0: "non-negative", 1: "positive"}.get(minimum)
  ints = f"{kind} ints" if kind else f"ints >= {minimum}"
  one = f"a {kind} int" if kind else f"an int >= {minimum}"
  group = {2: "a pair", 3: "a triple"}.get(n, f"a tuple of {n}")
  return f"{one} or {group} of {ints}"


def int_tuple(name, value, n, *, minimum=1):
  """An int or ``n`` ints, standardised to an ``n``-tuple of ints.

  Like ``keras.src.utils.argument_validation.standardize_tuple``.

  Args:
    name: the argument's name, quoted in the error.
    value: an int (repeated ``n`` times) or an iterable of ``n`` ints.
    n: the length of the result.
    minimum: the smallest allowed entry (1: positive ints; 0: non-negative).

  Returns:
    A tuple of ``n`` Python ints.

  Raises:
    ValueError: e.g. ``"strides must be a positive int or a pair of positive
      ints. Received: strides=(1, 0)"``.
  """
  single = _as_int(value)
  if single is not None:
    values = (single,) * n
  elif isinstance(value, (str, bytes)):
    values = None
  else:
    try:
      values = tuple(_as_int(v) for v in value)
    except TypeError:
      values = None
  if (values is None or len(values) != n
      or any(v is None or v < minimum for v in values)):
    raise _received(name, _tuple_words(n, minimum), value)
  return values


def shape(name, value, rank=None):
  """A non-empty tuple of positive ints (of length ``rank`` if given).

  Args:
    name: the argument's name, quoted in the error.
    value: an iterable of ints, e.g. ``(28, 28, 1)``.
    rank: the required length, or None for any (non-zero) length.

  Returns:
    A tuple of Python ints.

  Raises:
    ValueError: e.g. ``"input_shape must be 3 positive ints. Received:
      input_shape=(28, 28)"``.
  """
  values = None
  if not isinstance(value, (str, bytes)):
    try:
      values = tuple(_as_int(v) for v in value)
    except TypeError:
      values = None
  if (not values or (rank is not None and len(values) != rank)
      or any(v is None or v < 1 for v in values)):
    what = "positive ints" if rank is None else f"{rank} positive ints"
    raise _received(name, what, value)
  return values


def padding(name, value):
  """A convolution padding: ``"valid"`` or ``"same"``, any case.

  Returns:
    ``"valid"`` or ``"same"``.

  Raises:
    ValueError: ``"padding must be 'valid' or 'same'. Received: ..."``.
  """
  if not isinstance(value, str) or value.lower() not in ("valid", "same"):
    raise _received(name, "'valid' or 'same'", value)
  return value.lower()
