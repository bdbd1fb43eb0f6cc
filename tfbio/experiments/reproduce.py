"""The reproduction: the seed papers' claims re-measured, resumably.

:func:`reproduce` runs every run the chosen claims need and writes the
report (:mod:`tfbio.experiments.report`). A run is trained only if it is in
neither the committed ``OUT/runs.csv`` (with its curves in ``curves.csv``)
nor the git-ignored ``OUT/runs/`` (a finished job's ``result.json``): the
same command regenerates the report from the committed records without
training anything, and extends it by training only the runs missing from
them. Where a cell picks the best of several learning rates (liao2016: "the
best of five" multipliers), seed 0 is run at each candidate ``lr_mult`` and
the one with the lowest final test error is used for the other seeds
(test-set selection, like the paper's; stated in the tables).
"""

import os
import time

from absl import logging

from tfbio.experiments import cells as cells_lib
from tfbio.experiments import claims as claims_lib
from tfbio.experiments import jobs as jobs_lib
from tfbio.experiments import linear_sim
from tfbio.experiments import report as report_lib
from tfbio.train import workdir as workdir_lib

class _Ledger:
  """The runs of the report: reused from the records or trained."""

  def __init__(self, options, cells):
    self.options, self.cells = options, cells
    out = os.path.abspath(options.out)
    self.runs_path = os.path.join(out, report_lib.RUNS)
    self.curves_path = os.path.join(out, report_lib.CURVES)
    self.rows = report_lib.read_runs(self.runs_path)
    self.curves = report_lib.read_curves(self.curves_path)
    self.missing = 0
    self.failed = 0

  def run(self, keys, deadline):
    """Trains the runs of ``keys`` that no record holds (in parallel)."""
    todo, jobs = [], []
    for key in keys:
      cell_id, seed, lr = key
      job = cells_lib.job(self.cells, cell_id, seed,
                          float(lr) if lr else None, self.options)
      if key in self.rows and self.rows[key]["status"] in jobs_lib.FINISHED:
        if key not in self.curves:  # A record without curves: runs/ may
          history = workdir_lib.read_history(job.workdir)  # have them.
          if history:
            self.curves[key] = history
        continue
      todo.append(key)
      jobs.append(job)
    if not jobs:
      return
    results = jobs_lib.run_jobs(jobs, workers=self.options.jobs,
                                deadline=deadline, threads=1)
    for key, job, row in zip(todo, jobs, results):
      if row["status"] not in jobs_lib.FINISHED:
        self.missing += 1
        self.failed += row["status"] == "failed"
        continue
      self.rows[key] = {
          "status": row["status"], "seconds": row.get("seconds"),
          "final_eval_error": row.get("final_eval_error"),
          "best_eval_error": row.get("best_eval_error"), "role": "report"}
      history = workdir_lib.read_history(job.workdir)
      if history:
        self.curves[key] = history

  def save(self):
    report_lib.write_runs(self.runs_path, self.rows)
    report_lib.write_curves(self.curves_path, self.curves)


def _select_lr(cell, cell_id, ledger, seed):
  """Best ``lr_mult`` of a cell from its seed-0 candidates (None: not all)."""
  best = None
  for lr in cell.lr_mults:
    row = ledger.rows.get(report_lib.run_key(cell_id, seed, lr))
    if row is None:
      return None
    err = cells_lib.run_error(row)
    if best is None or err < best[0]:
      best = (err, lr)
  return best[1]


def _needed_cells(claims, cells):
  ids = []
  for claim in claims:
    for c in claim.all_cells():
      if c not in ids:
        ids.append(c)
  # lr_of cells need their source's selection: add the sources.
  for c in list(ids):
    src = cells[c].lr_of
    if src and src not in ids:
      ids.append(src)
  return ids


def run_all(claims, seeds, options, cells=None):
  """Runs (or reuses) every run the claims need.

  Returns:
    ``(Results, minutes, missing, failed)``: ``missing`` counts the runs not
    finished (budget or failure), ``failed`` those that raised.
  """
  cells = cells or cells_lib.build_cells()
  t0 = time.time()
  deadline = t0 + 60 * options.budget_minutes
  ids = _needed_cells(claims, cells)
  ledger = _Ledger(options, cells)
  first = []
  for c in ids:
    cell = cells[c]
    if cell.lr_mults:
      first += [report_lib.run_key(c, seeds[0], lr) for lr in cell.lr_mults]
    elif not cell.lr_of:
      first += [report_lib.run_key(c, s, None) for s in seeds]
  ledger.run(first, deadline)
  ledger.save()
  selected, second = {}, []
  for c in ids:
    cell = cells[c]
    if cell.lr_mults:
      lr = _select_lr(cell, c, ledger, seeds[0])
    elif cell.lr_of:
      lr = selected.get(cell.lr_of)
    else:
      continue
    if lr is None:
      continue
    selected[c] = lr
    second += [report_lib.run_key(c, s, lr) for s in seeds
               if not (cell.lr_mults and s == seeds[0])]
  ledger.run(second, deadline)
  # Roles: a learning-rate candidate that lost is a selection run.
  for (c, seed, lr), row in ledger.rows.items():
    cell = cells.get(c)
    row["role"] = ("selection" if cell is not None and cell.lr_mults
                   and lr != report_lib.lr_text(selected.get(c))
                   else "report")
  ledger.save()
  rows, curves = {}, {}
  for c in ids:
    lr = report_lib.lr_text(selected.get(c))
    if cells[c].lr_of and c not in selected:
      continue
    for s in seeds:
      key = report_lib.run_key(c, s, lr)
      if key in ledger.rows and ledger.rows[key]["status"] in (
          jobs_lib.FINISHED):
        rows[(c, s)] = dict(ledger.rows[key], lr_mult=selected.get(c, ""))
        curves[(c, s)] = ledger.curves.get(key, [])
  if any(c.name == "amit2019_linear" for c in claims):
    rows[("linear", None)] = _linear(options, seeds)
  missing = sum(1 for c in ids for s in seeds if (c, s) not in rows)
  if ledger.failed:
    logging.error("%d runs failed (see the errors above); rerun to retry "
                  "them", ledger.failed)
  return (claims_lib.Results(rows, selected, cells, curves),
          (time.time() - t0) / 60, missing, ledger.failed)


def _linear(options, seeds):
  """amit2019 §5.1 with the linear simulation's defaults (reused if done)."""
  out = os.path.abspath(options.out)
  path = os.path.join(out, report_lib.LINEAR)
  result = report_lib.read_linear(path)
  if result is not None and result.get("seeds") == list(seeds):
    return result
  curves = linear_sim.run(seeds=tuple(seeds))
  linear_sim.plot(curves, os.path.join(out, claims_lib.LINEAR_PNG))
  its = {k: linear_sim.iterations_to_target(curves, k)
         for k in curves.settings}
  result = {"seeds": list(seeds), "per_seed": its,
            "iterations": {k: (sum(v) / len(v) if None not in v else None)
                           for k, v in its.items()},
            "table": linear_sim.table(curves)}
  report_lib.write_linear(path, result)
  return result


def reproduce(claims, seeds, options, command):
  """Runs what is missing and writes the report; returns the verdicts.

  Returns:
    ``(verdicts, minutes, missing, failed)``.
  """
  os.makedirs(os.path.abspath(options.out), exist_ok=True)
  res, minutes, missing, failed = run_all(claims, seeds, options)
  verdicts = report_lib.write_report(claims, res, seeds, minutes,
                                     os.path.abspath(options.out), command,
                                     options)
  return verdicts, minutes, missing, failed

