"""Jobs: training runs executed in worker processes, resumable.

A :class:`Job` is one ``tfbio-train`` run (a config file with its args and
overrides, a work directory). :func:`run_jobs` trains a list of them in
``workers`` spawned processes (or in this process with ``workers=0``),
longest first, and returns one result row per job. A job whose work
directory holds a ``result.json`` (``tfbio.train.workdir.RESULT``) is
finished: its row is read back and nothing is trained, so an interrupted
search or report resumes where it stopped (a half-finished run resumes from
its own checkpoint). A diverged run is finished too (status ``diverged``);
a run that raises is ``failed``, writes no ``result.json`` and is retried
next time; after ``deadline`` no new job starts (status ``skipped``).

Result rows (dicts) hold the job's ``info`` entries, ``name``, ``workdir``,
``status``, ``seconds``, ``message`` (diverged/failed), ``reused`` (True if
finished before this call), and for a finished
run ``primary_metric``, ``primary_mode``, ``best``, ``final`` (the primary
metric's best and final epoch values) plus ``best_<metric>`` and
``final_<metric>``.
"""

import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
import time
import traceback

from absl import logging

from tfbio.train import workdir as workdir_lib

FINISHED = ("ok", "diverged")


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run.

  Attributes:
    name: shown in logs (a cell name).
    config: ``configs/NAME.py[:ARGS]``.
    workdir: the run's work directory.
    overrides: ``((dotted key, value), ...)`` applied to the config (``str``
      values are parsed as ``--config.key=value``).
    strategy: ``--strategy`` of the run.
    cost: relative cost (scheduling: longest first).
    info: ``((key, value), ...)`` copied into the result row.
  """
  name: str
  config: str
  workdir: str
  overrides: tuple = ()
  strategy: str = "default"
  cost: float = 1.0
  info: tuple = ()


def read_result(workdir):
  """The ``result.json`` row of a finished job, or None."""
  path = workdir_lib.path(workdir, workdir_lib.RESULT)
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    row = json.load(f)
  if "primary_metric" not in row and "final_eval_error" in row:
    # Written before rows named their metric.
    row.update(primary_metric="eval_error", primary_mode="min",
               best=row.get("best_eval_error"),
               final=row.get("final_eval_error"))
  return row


def _row(job, status, seconds, metrics=None, message=None):
  row = dict(job.info)
  row.update(name=job.name, workdir=job.workdir, status=status,
             seconds=seconds)
  if metrics is not None:
    name, mode, best, final = workdir_lib.primary(metrics)
    row.update(primary_metric=name, primary_mode=mode, best=best,
               final=final)
    row[f"best_{name}"] = best
    row[f"final_{name}"] = final
  if message is not None:
    row["message"] = message
  return row


@contextlib.contextmanager
def _output_to(path):
  """Sends this process's stdout/stderr (file descriptors) to ``path``."""
  sys.stdout.flush()
  sys.stderr.flush()
  saved = os.dup(1), os.dup(2)
  with open(path, "a", encoding="utf-8") as log:
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
      yield
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      os.close(saved[0])
      os.close(saved[1])


def run_job(job, deadline=None, capture=True):
  """Trains ``job`` in this process (unless finished); returns its row.

  Args:
    job: the :class:`Job`.
    deadline: ``time.time()`` after which the job is skipped, or None.
    capture: send the run's console output to ``WORKDIR/log.txt``.
  """
  # Imported here: the parent process of a pool never needs TensorFlow.
  import keras  # pylint: disable=g-import-not-at-top
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top
  from tfbio.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  finished = read_result(job.workdir)
  if finished is not None:
    return finished
  if deadline is not None and time.time() > deadline:
    return _row(job, "skipped", 0.0)
  os.makedirs(job.workdir, exist_ok=True)
  start = time.time()
  metrics = message = None
  log = workdir_lib.path(job.workdir, workdir_lib.LOG)
  with _output_to(log) if capture else contextlib.nullcontext():
    try:
      config = run_lib.load_config(job.config, job.overrides)
      _, metrics = run_lib.train(config, job.workdir, strategy=job.strategy)
      status = "ok"
    except trainer_lib.TrainingDiverged as e:
      status, message = "diverged", str(e)
    except Exception as e:  # pylint: disable=broad-except
      # Reported by the caller, with the traceback in log.txt; no
      # result.json, so the next invocation tries the job again.
      traceback.print_exc()
      status, message = "failed", f"{type(e).__name__}: {e}"
  keras.utils.clear_session()
  row = _row(job, status, time.time() - start, metrics, message)
  if status in FINISHED:
    path = workdir_lib.path(job.workdir, workdir_lib.RESULT)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump(row, f, indent=1)
    os.replace(path + ".tmp", path)
  return row


def _worker_init(threads):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if threads:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_indexed(args):
  index, job, deadline = args
  return index, run_job(job, deadline)


def run_jobs(jobs, workers=1, deadline=None, threads=None,
             tasks_per_worker=25, on_result=None):
  """Trains ``jobs``; returns their result rows in the order of ``jobs``.

  Args:
    jobs: :class:`Job` list (distinct work directories).
    workers: worker processes (spawned); 0 runs every job in this process,
      its output not captured.
    deadline: ``time.time()`` after which no new job starts, or None.
    threads: TensorFlow threads per worker (None: TensorFlow's default).
    tasks_per_worker: jobs a worker runs before it is replaced (1 for jobs
      that create a ``tf.distribute`` strategy: one per process).
    on_result: called as ``on_result(row, done, total)`` as each job ends.

  Returns:
    The rows (see the module docstring).
  """
  names = [j.workdir for j in jobs]
  if len(set(names)) != len(names):
    raise ValueError("run_jobs: two jobs share a work directory")
  rows = [None] * len(jobs)
  todo = []
  for i, job in enumerate(jobs):
    finished = read_result(job.workdir)
    if finished is not None:  # Reused, not retrained.
      rows[i] = dict(finished, reused=True, workdir=job.workdir)
    else:
      todo.append(i)
  done = len(jobs) - len(todo)
  if todo:
    logging.info("%d jobs to train, %d finished earlier", len(todo), done)
  todo.sort(key=lambda i: -jobs[i].cost)
  progress = _Progress(len(jobs), done, len(todo), max(workers, 1))

  def finish(i, row):
    rows[i] = dict(row, reused=False)
    progress.update(jobs[i], row)
    if on_result is not None:
      on_result(row, progress.done, len(jobs))

  if workers == 0:
    for i in todo:
      finish(i, run_job(jobs[i], deadline, capture=False))
  elif todo:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(todo)), initializer=_worker_init,
                  initargs=(threads,),
                  maxtasksperchild=tasks_per_worker) as pool:
      for i, row in pool.imap_unordered(
          _run_indexed, [(i, jobs[i], deadline) for i in todo]):
        finish(i, row)
  return rows


class _Progress:
  """Logs ``[done/total] job: status metric (s); elapsed, ETA``."""

  def __init__(self, total, done, todo, workers):
    self.total, self.done, self.todo, self.workers = total, done, todo, workers
    self.trained, self.seconds = 0, 0.0
    self.t0 = time.time()

  def update(self, job, row):
    self.done += 1
    status = row["status"]
    if status == "skipped":
      return
    self.trained += 1
    self.seconds += row.get("seconds", 0.0)
    left = self.todo - self.trained
    eta = self.seconds / self.trained * left / self.workers
    metric = (f" {row['primary_metric']} {row['final']:.4g}"
              if row.get("final") is not None else "")
    if status == "failed":
      logging.error("%s FAILED: %s (log: %s)", job.name, row.get("message"),
                    workdir_lib.path(job.workdir, workdir_lib.LOG))
    logging.info("[%d/%d] %s: %s%s (%.0f s); %.1f min elapsed, ~%.1f min "
                 "left", self.done, self.total, job.name, status, metric,
                 row.get("seconds", 0.0), (time.time() - self.t0) / 60,
                 eta / 60)
