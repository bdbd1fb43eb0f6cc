"""One run: a config → its trainer → a work directory, and back.

Every binary and experiment goes through this module:

* :func:`kind` / :func:`trainer_class`: which trainer a config gets (the
  one place this is decided): ``"tp"`` (target propagation:
  ``config.tp.enabled``) → :class:`~tfbio.train.tp_trainer.TPTrainer`;
  ``"dfa"`` (direct feedback alignment: ``config.dfa.enabled``) →
  :class:`~tfbio.train.dfa_trainer.DFATrainer`;
  ``"detection"`` (a registry model with ``task="detection"``: RetinaNet) →
  :class:`~tfbio.train.detection.DetectionTrainer`; ``"classification"`` →
  :class:`~tfbio.train.trainer.Trainer`.
* :func:`train`: the phases of ``tfbio-train`` (strategy, data, model, loop).
* :func:`restore`: the trainer of an existing work directory at its latest
  checkpoint (any kind); :func:`evaluate` and :func:`export` use it.
* :func:`load_config`: ``configs/NAME.py[:ARGS]`` plus ``key=value``
  overrides, as ``tfbio-train --config=... --config.key=value`` reads them.

The work directory's files are defined in :mod:`tfbio.train.workdir`.
"""

import ast
import importlib.util
import json
import os

import ml_collections

from tfbio import models
from tfbio.train import detection
from tfbio.train import dfa_trainer
from tfbio.train import export as export_lib
from tfbio.train import tp_trainer
from tfbio.train import trainer as trainer_lib
from tfbio.train import workdir as workdir_lib

KINDS = ("classification", "detection", "tp", "dfa")


class ConfigError(ValueError):
  """A config value that validation rejects (before any data is read).

  The binaries report it as a usage error (exit status 2); errors found
  later (data, work directory, divergence) are runtime errors (status 1).
  """


def kind(config):
  """``"tp"``, ``"dfa"``, ``"detection"`` or ``"classification"``."""
  if config.get("tp", {}).get("enabled"):
    return "tp"
  if config.get("dfa", {}).get("enabled"):
    return "dfa"
  if models.model_info(config.model.name).task == "detection":
    return "detection"
  return "classification"


def trainer_class(config):
  """The trainer class of a config (see the module docstring)."""
  return {"classification": trainer_lib.Trainer,
          "detection": detection.DetectionTrainer,
          "tp": tp_trainer.TPTrainer,
          "dfa": dfa_trainer.DFATrainer}[kind(config)]


def make_trainer(config, workdir, strategy="default", tpu_address=None):
  """The trainer of ``config`` (validated; nothing is written yet)."""
  return trainer_class(config)(config, workdir, strategy=strategy,
                               tpu_address=tpu_address)


def train(config, workdir, strategy="default", tpu_address=None,
          log_every_steps=0):
  """Trains (or resumes) ``config`` in ``workdir``.

  Logs one progress line per epoch (``log_every_steps``: also one every N
  steps; the custom loop only).

  Returns:
    ``(trainer, metrics)``: the trainer and the ``metrics.json`` dict.


  Raises:
    tfbio.train.TrainingDiverged: the loss stopped being finite or grew
      ``DIVERGENCE_FACTOR`` times.
    ConfigError: a config value (or strategy, workdir path) that validation
      rejects; nothing was read or written.
    ValueError: missing or unreadable data (one line); nothing is left in
      ``workdir`` that was not there before, unless a checkpoint was
      written (``tfbio.train.workdir.removed_on_failure``).
  """
  # 1. Strategy and config validation: nothing is written before them.
  try:
    trainer = make_trainer(config, workdir, strategy, tpu_address)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  trainer.log_every_steps = log_every_steps
  # 2. Data: sizes, classes, input shape; fails fast if the data is absent.
  trainer.setup_data()
  # 3. Model + optimizer + checkpoint under strategy.scope().
  trainer.setup_model()
  # 4-5. Logs and the loop; model.keras and metrics.json at the end.
  return trainer, trainer.train()


def restore(workdir, split=None):
  """The trainer of a run, restored to its latest checkpoint.

  Works on a run of every kind (classification, detection, target
  propagation).

  Args:
    workdir: a ``tfbio-train`` work directory.
    split: evaluate on this split instead of the config's
      ``data.eval_split``.

  Raises:
    ValueError: not a work directory, or no checkpoint yet.
  """
  config = workdir_lib.read_config(workdir)
  if split:
    config.data.eval_split = split
  trainer = make_trainer(config, workdir)
  trainer.setup_data()
  trainer.setup_model()
  trainer.restore_latest()
  return trainer


def evaluate(workdir, split=None, out=None):
  """Evaluates a run's latest checkpoint; writes and returns the result.

  Writes ``{eval metrics..., "step", "split"}`` to ``out`` (default
  ``WORKDIR/eval_SPLIT.json``). Returns ``(result, path)``.
  """
  trainer = restore(workdir, split)
  result = {k: float(v) for k, v in trainer.evaluate().items()}
  split = trainer.config.data.eval_split
  result.update(step=int(trainer.step.numpy()), split=split)
  path = out or os.path.join(workdir, f"eval_{split}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  return result, path


def export(workdir, out=None):
  """Exports a run's latest checkpoint (``tfbio.train.export``).

  Returns:
    The export directory.
  """
  trainer = restore(workdir)
  return export_lib.export_model(trainer.model, workdir, out)


# -- configs ------------------------------------------------------------------


def load_config_module(spec):
  """The Python module of ``configs/NAME.py[:ARGS]`` (the part before ``:``).

  Config files are not a package: they are loaded by path, as
  ``ml_collections.config_flags`` loads them for ``--config``.
  """
  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    raise ValueError(f"config file {path!r} does not exist")
  name = "tfbio_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_config(spec, overrides=()):
  """``get_config(ARGS)`` of ``configs/NAME.py[:ARGS]`` with overrides applied.

  Args:
    spec: ``path[:ARGS]``.
    overrides: ``[(dotted key, value), ...]``; a ``str`` value is parsed as
      ``--config.key=value`` would be (see :func:`set_value`).
  """
  _, _, arg = spec.partition(":")
  config = load_config_module(spec).get_config(arg or None)
  for key, value in overrides:
    set_value(config, key, value)
  return config


# Free-form dicts of the schema: new keys may be added to them.
FREE_FORM = ("model.kwargs", "overrides")


def set_value(config, key, value):
  """Sets ``config.<dotted key>``; a ``str`` value takes the field's type.

  ``"None"`` sets None (``"none"`` too, except for a text field, where it is
  the text: ``data.preprocess_train=none``); for a field that is None, text
  is read as
  a Python literal when it is one (``"0.3"`` → 0.3) and kept as text
  otherwise. Only the free-form dicts (:data:`FREE_FORM`) take new keys.

  Raises:
    ValueError: an unknown key, or text that does not convert to the
      field's type.
  """
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      raise ValueError(f"config has no field {key!r}")
    node = node[p]
  if not isinstance(node, ml_collections.ConfigDict) or (
      leaf not in node and ".".join(parents) not in FREE_FORM):
    raise ValueError(f"config has no field {key!r}")
  if isinstance(value, str):
    value = _parse(key, value, node.get(leaf))
  with node.ignore_type():
    node[leaf] = value


def _parse(key, text, current):
  if text.strip() == "None" or (text.strip().lower() == "none"
                                and not isinstance(current, str)):
    return None
  if isinstance(current, bool):
    if text.lower() in ("1", "true", "yes", "on"):
      return True
    if text.lower() in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"{key} must be true or false. Received: {key}={text}")
  if isinstance(current, (int, float)):
    try:
      return type(current)(text)
    except ValueError:
      raise ValueError(f"{key} must be {type(current).__name__}. Received: "
                       f"{key}={text}") from None
  if isinstance(current, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text
