"""Helpers shared by the experiment configs (``configs/*.py``).

Each config imports this module (``from tfbio.train import config_args as
common``): ``configs/`` is not a package, so shared code lives here.

Helpers:

* :func:`parse_arg` turns the text after the colon of
  ``--config=configs/NAME.py:ARGS`` (``"model=cifar,algo=usf,smoke"``) into a
  dict, converting each value to the type of its default and checking it
  against the allowed values; an unknown key or a bad value raises a
  one-line ``ValueError`` quoting it.
* :func:`apply_smoke` shrinks a config to a run of a few seconds on CPU,
  offline (scikit-learn's bundled 8x8 ``digits``, resized to what the model
  accepts);
* :func:`set_feedback` and :func:`set_adam` set the feedback and an Adam
  recipe.
"""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# Smoke runs: a few steps on a few dozen digits.
SMOKE_BATCH_SIZE = 16
SMOKE_STEPS_PER_EPOCH = 2
SMOKE_EPOCHS = 1
SMOKE_MAX_EXAMPLES = 64


def parse_arg(arg, *, choices=None, types=None, **defaults):
  """Parses a config's ``key=value,key=value`` argument.

  A bare word ``key`` means ``key=1`` (so ``smoke`` is ``smoke=1``); ``arg``
  None or empty gives the defaults. Values are converted to the type of the
  key's default (``bool``: 0/1/true/false/yes/no; ``int``; ``float``;
  ``str``); a key whose default is None takes its type from ``types``
  (default ``str``).

  Args:
    arg: the argument text, or None.
    choices: ``{key: allowed values}`` (after conversion).
    types: ``{key: type}`` for keys whose default is None.
    **defaults: every known key with its default value.

  Returns:
    A dict with every key of ``defaults``.

  Raises:
    ValueError: an unknown or repeated key, a value that does not convert or
      is not among the allowed ones. One line quoting the offending text.

  Example:
    >>> parse_arg("model=cifar,smoke", model="mnist", smoke=False)
    {'model': 'cifar', 'smoke': True}
  """
  choices = dict(choices or {})
  types = dict(types or {})
  unknown = set(choices) - set(defaults)
  unknown |= set(types) - set(defaults)
  if unknown:
    raise ValueError(f"parse_arg: choices/types for undeclared keys "
                     f"{sorted(unknown)}")
  values = dict(defaults)
  if arg is None:
    return values
  if not isinstance(arg, str):
    raise ValueError(f"Config argument must be a string 'key=value,...'. "
                     f"Received: {arg!r}")
  seen = set()
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if key not in defaults:
      raise ValueError(
          f"Unknown config argument {key!r} in {item!r}. Known: "
          f"{', '.join(sorted(defaults))}")
    if key in seen:
      raise ValueError(f"Config argument {key!r} given twice in {arg!r}")
    seen.add(key)
    if not sep:
      text = "1"
    kind = types.get(key, type(defaults[key]) if defaults[key] is not None
                     else str)
    value = _convert(key, text, kind, item)
    if key in choices and value not in choices[key]:
      allowed = ", ".join(_show(c) for c in choices[key])
      raise ValueError(f"Bad value for config argument {key!r} in {item!r}. "
                       f"Allowed: {allowed}")
    values[key] = value
  return values


def _convert(key, text, kind, item):
  """``text`` as ``kind``, or ValueError quoting ``item``."""
  if kind is bool:
    if text.lower() in _TRUE:
      return True
    if text.lower() in _FALSE:
      return False
    raise ValueError(f"Config argument {key!r} must be 0 or 1. Received: "
                     f"{item!r}")
  if kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      raise ValueError(f"Config argument {key!r} must be a number "
                       f"({kind.__name__}). Received: {item!r}") from None
  if not text:
    raise ValueError(f"Config argument {key!r} needs a value. Received: "
                     f"{item!r}")
  return text


def _show(value):
  if isinstance(value, bool):
    return str(int(value))
  if isinstance(value, float):
    return f"{value:g}"
  return str(value)


def bad_arg(key, value, reason):
  """A one-line ValueError about ``key=value`` (config-specific checks)."""
  return ValueError(f"Bad value for config argument {key!r}: "
                    f"{key}={_show(value)} ({reason})")


def apply_smoke(config, *, image_size, model_name=None, batch_size=None):
  """Shrinks ``config`` in place to a seconds-long offline run; returns it.

  Data become the first ``SMOKE_MAX_EXAMPLES`` of scikit-learn's bundled
  ``digits`` (8x8x1, 10 classes, train/test splits), resized to
  ``image_size`` (None: the 8x8 images as they are, for networks that
  flatten any input); one epoch of ``SMOKE_STEPS_PER_EPOCH`` steps;
  checkpoints and log lines every step. The number of classes comes from
  the dataset (the trainer passes it to the model).

  Args:
    config: a config from ``tfbio.train.config.base_config()``.
    image_size: side the model accepts, or None.
    model_name: replaces ``config.model.name`` (a smaller network).
    batch_size: global batch (default ``SMOKE_BATCH_SIZE``).
  """
  if model_name is not None:
    config.model.name = model_name
  config.model.input_shape = None
  d = config.data
  d.name = "digits"
  d.data_dir = None
  d.train_split = "train"
  d.eval_split = "test"
  d.preprocess_train = "none"
  d.preprocess_eval = "none"
  d.image_size = image_size
  d.shuffle_buffer = 256
  d.max_train_examples = SMOKE_MAX_EXAMPLES
  d.max_eval_examples = SMOKE_MAX_EXAMPLES
  config.batch_size = batch_size or SMOKE_BATCH_SIZE
  config.epochs = SMOKE_EPOCHS
  config.steps_per_epoch = SMOKE_STEPS_PER_EPOCH
  config.checkpoint_every_steps = 1
  config.log_every_steps = 1
  return config


def set_feedback(config, feedback, last_layer=None):
  """Sets ``config.feedback`` (a name or a ``{"name": ..., ...}`` dict)."""
  with config.ignore_type():
    config.feedback = feedback
  config.last_layer = last_layer
  return config


def set_adam(config, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
  """Adam at a constant rate, no weight decay (bartunov2018's recipe)."""
  o = config.optimizer
  o.name = "adam"
  o.learning_rate = learning_rate
  o.beta_1, o.beta_2, o.epsilon = beta_1, beta_2, epsilon
  o.weight_decay = 0.0
  config.schedule.name = "constant"
  return config
