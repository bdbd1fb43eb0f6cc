"""The run directory of ``tfbio-train``: its file names, columns and readers.

A run directory is a file format. Every writer (the trainers) and every
reader (``tfbio-eval``, ``tfbio-export``, ``tfbio-sweep``, ``tfbio.analysis``,
``tfbio.experiments``, ``tools/*``) goes through this module, so a name or a
column is defined here once::

    config.json      the resolved config (``tfbio.train.config.to_json``)
    checkpoints/     tf.train.Checkpoint of the run (model, optimizer, step):
                     every ``checkpoint_every_steps`` and every epoch end
    backup/          target propagation only: Keras BackupAndRestore state
                     (the fit loop's own resume point)
    history.csv      one row per epoch (:data:`HISTORY_COLUMNS` first, then
                     per-layer metrics named ``metric/layer``)
    steps.csv        one row per ``log_every_steps``: ``step`` + the step
                     metrics of the trainer (``loss``, ``error``; detection:
                     ``loss``, ``box_loss``, ``focal_loss``)
    tb/              TensorBoard scalars
    model.keras      the final model
    metrics.json     the run's summary (:func:`summary`), naming its own
                     primary metric
    eval_SPLIT.json  written by ``tfbio-eval``
    export/          written by ``tfbio-export`` / ``--export``
    .lock            the PID of the run writing the directory (chief):
                     a second concurrent run into it is refused
    result.json      written by ``tfbio.experiments`` when it ran the run as
                     a job: its status (``ok``, ``diverged``) and primary
                     metric; a run with one is finished
    log.txt          the job's console output (``tfbio.experiments``)

``metrics.json`` holds ``primary_metric`` (e.g. ``"eval_error"``) and
``primary_mode`` (``"min"``: lower is better, ``"max"``: higher is better),
``best_<metric>`` (the best epoch), ``final_<metric>`` (the last epoch) and
``final_<key>`` for every other train/eval column of the last epoch. Runs are
ranked by :func:`primary` (sweeps, experiments).

History rows use a **1-based** ``epoch`` (the epoch just completed) and the
global optimizer ``step`` at its end; errors are percentages. A row whose
epoch was interrupted and resumed mid-way has ``resumed_at_step`` (the step
it resumed at): its ``train_*`` averages cover only the steps after it.
"""

import contextlib
import csv
import json
import math
import os
import shutil

from absl import logging

from tfbio.train import config as config_lib

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
HISTORY = "history.csv"
STEPS = "steps.csv"
TENSORBOARD = "tb"
MODEL = "model.keras"
METRICS = "metrics.json"
EXPORT = "export"
RESULT = "result.json"
LOCK = ".lock"
LOG = "log.txt"

# First columns of every history row (any trainer); more follow.
HISTORY_COLUMNS = ("epoch", "step", "lr")
# Primary metrics: name -> mode ("min": lower is better).
PRIMARY_MODES = {"eval_error": "min", "eval_AP": "max"}


def path(workdir, name):
  """``workdir/name`` for one of this module's names."""
  return os.path.join(workdir, name)


def is_run(workdir):
  """True if ``workdir`` holds a run's ``config.json``."""
  return os.path.isfile(path(workdir, CONFIG))


# -- config.json --------------------------------------------------------------


def write_config(workdir, config):
  """Writes ``config.json`` (atomically)."""
  _write_text(path(workdir, CONFIG), config_lib.to_json(config))


def read_config(workdir):
  """The ``ConfigDict`` of a run; ValueError if ``workdir`` is not a run."""
  if not is_run(workdir):
    raise ValueError(f"{workdir!r} has no {CONFIG}: not a tfbio-train "
                     "workdir.")
  with open(path(workdir, CONFIG), encoding="utf-8") as f:
    return config_lib.from_json(f.read())


# -- metrics.json -------------------------------------------------------------


def summary(*, primary_metric, history, final, **fields):
  """The ``metrics.json`` dict of a finished run.

  Args:
    primary_metric: a key of :data:`PRIMARY_MODES` (the eval column that
      ranks epochs and runs).
    history: the history rows (dicts) of every completed epoch.
    final: the last epoch's row (or an evaluation when there is none).
    **fields: other entries (model, feedback, steps, ...).
  """
  mode = PRIMARY_MODES[primary_metric]
  pick = min if mode == "min" else max
  values = [to_float(r.get(primary_metric)) for r in history]
  values = [v for v in values if math.isfinite(v)]
  best = pick(values) if values else to_float(final.get(primary_metric))
  metrics = {"primary_metric": primary_metric, "primary_mode": mode}
  metrics.update(fields)
  metrics[f"best_{primary_metric}"] = best
  metrics.update({f"final_{k}": to_float(v) for k, v in final.items()
                  if k.startswith(("train_", "eval_")) and "/" not in k})
  return metrics


def write_metrics(workdir, metrics):
  _write_text(path(workdir, METRICS), json.dumps(metrics, indent=1))


def read_metrics(workdir):
  """The ``metrics.json`` dict, or None if the run has not finished."""
  p = path(workdir, METRICS)
  if not os.path.isfile(p):
    return None
  with open(p, encoding="utf-8") as f:
    return json.load(f)


def primary(metrics):
  """``(name, mode, best, final)`` of a ``metrics.json`` dict.

  Runs written before ``primary_metric`` existed rank by ``eval_error``
  (classification) or ``eval_AP`` (detection), whichever they hold.
  """
  name = metrics.get("primary_metric")
  if name is None:
    name = next((k for k in PRIMARY_MODES if f"best_{k}" in metrics),
                "eval_error")
  mode = metrics.get("primary_mode", PRIMARY_MODES.get(name, "min"))
  return (name, mode, to_float(metrics.get(f"best_{name}")),
          to_float(metrics.get(f"final_{name}")))


def better(mode):
  """``(a, b) -> True`` if value ``a`` beats ``b`` under ``mode``."""
  return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


# -- history.csv / steps.csv ---------------------------------------------


def read_history(workdir, max_epoch=None):
  """History rows (dicts of str) with ``epoch <= max_epoch``; [] if none.

  A repeated epoch (a crash between its row and its checkpoint) keeps the
  last row written.
  """
  rows = _read_csv(path(workdir, HISTORY))
  by_epoch = {}
  for row in rows:
    epoch = int(float(row["epoch"]))
    if max_epoch is None or epoch <= max_epoch:
      by_epoch[epoch] = row
  return [by_epoch[e] for e in sorted(by_epoch)]


def history_columns(workdir):
  """``{column: [float, ...]}`` of ``history.csv`` (NaN where empty)."""
  return columns(read_history(workdir), path(workdir, HISTORY))


def write_history(workdir, rows):
  """Rewrites ``history.csv`` with ``rows`` (atomically; union of keys)."""
  keys = list(HISTORY_COLUMNS)
  for row in rows:
    keys += [k for k in row if k not in keys]
  tmp = path(workdir, HISTORY) + ".tmp"
  with open(tmp, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
  os.replace(tmp, path(workdir, HISTORY))


def append_step(workdir, step, values):
  """Appends ``step, values...`` to ``steps.csv`` (header on creation)."""
  p = path(workdir, STEPS)
  new = not os.path.exists(p)
  with open(p, "a", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    if new:
      writer.writerow(["step"] + list(values))
    writer.writerow([step] + [values[k] for k in values])


def read_steps(workdir, required=()):
  """``{column: [float, ...]}`` of ``steps.csv``; ValueError if absent.

  Args:
    workdir: a run directory.
    required: columns that must be present.
  """
  p = path(workdir, STEPS)
  if not os.path.isfile(p):
    raise ValueError(f"{p!r} does not exist: not a tfbio-train workdir (or "
                     "it has not logged a step yet).")
  rows = _read_csv(p)
  missing = [k for k in required if rows and k not in rows[0]]
  if not rows or missing:
    raise ValueError(f"{p!r} lacks the columns {missing or 'all'} (needs "
                     f"step, {', '.join(required)})")
  return columns(rows, p)


# -- the lock ----------------------------------------------------------------


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by another user.
    return True
  return True


@contextlib.contextmanager
def locked(workdir):
  """Holds ``WORKDIR/.lock`` (this PID) while a run writes the directory.

  Raises:
    ValueError: another live process holds the lock (one line naming its
      PID). A lock whose process is dead is taken over with a warning.
  """
  os.makedirs(workdir, exist_ok=True)
  p = path(workdir, LOCK)
  me = os.getpid()
  try:
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
  except FileExistsError:
    try:
      with open(p, encoding="utf-8") as f:
        owner = int(f.read().strip() or 0)
    except (OSError, ValueError):
      owner = 0
    if owner and owner != me and _alive(owner):
      raise ValueError(f"workdir {workdir!r} is in use by PID {owner} (lock "
                       f"{p}); wait for that run or stop it") from None
    logging.warning("Taking over the stale lock of PID %s in %s", owner or "?",
                    workdir)
    fd = os.open(p, os.O_CREAT | os.O_TRUNC | os.O_WRONLY)
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(f"{me}\n")
  try:
    yield
  finally:
    try:
      with open(p, encoding="utf-8") as f:
        ours = f.read().strip() == str(me)
      if ours:
        os.remove(p)
    except OSError:
      pass


@contextlib.contextmanager
def removed_on_failure(workdir, keep):
  """Removes what the block added to ``workdir`` if it raises and not ``keep()``.

  A run that fails before it has anything worth resuming from (bad data,
  an unwritable directory, divergence before the first checkpoint) leaves
  the directory as it found it: entries that existed before the block are
  never touched; the directory itself is removed if the block created it.

  Args:
    workdir: the run directory (need not exist yet).
    keep: ``() -> bool``, called after a failure: True keeps everything
      (e.g. a checkpoint was written).
  """
  existed = os.path.isdir(workdir)
  before = set(os.listdir(workdir)) if existed else set()
  try:
    yield
  except BaseException:
    if os.path.isdir(workdir) and not keep():
      for name in set(os.listdir(workdir)) - before:
        p = path(workdir, name)
        if os.path.isdir(p) and not os.path.islink(p):
          shutil.rmtree(p, ignore_errors=True)
        else:
          with contextlib.suppress(OSError):
            os.remove(p)
      if not existed:
        with contextlib.suppress(OSError):
          os.rmdir(workdir)
    raise


# -- helpers ---------------------------------------------------------------


def to_float(value):
  """``float(value)``; NaN for None, '' or text that is not a number."""
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


def columns(rows, source="rows"):
  """Rows of dicts as ``{column: [float, ...]}``; ValueError if empty."""
  if not rows:
    raise ValueError(f"No rows in {source!r}.")
  keys = []
  for row in rows:
    keys += [k for k in row if k not in keys]
  return {k: [to_float(r.get(k)) for r in rows] for k in keys}


def _read_csv(p):
  if not os.path.isfile(p):
    return []
  with open(p, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def _write_text(p, text):
  tmp = p + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, p)
