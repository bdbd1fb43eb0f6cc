#!/usr/bin/env python3
r"""Draws xiao2018 Fig. 2: box, focal and total training loss of several runs.

Detection runs: reads each run's ``steps.csv`` (written by ``tfbio-train``
every ``log_every_steps`` for detection models: ``step, loss, box_loss,
focal_loss``) and draws three panels (box loss, focal loss, total loss) with
one line per run, optionally smoothed by a moving average. Classification
runs (target propagation and DFA too): the same figure per epoch from each
run's ``history.csv`` (training loss, training error, test error).

    .venv/bin/python tools/plot_losses.py --runs='BP=/tmp/run_bp,FA=/tmp/run_fa' \
        --out=/tmp/bp_fa.png

    .venv/bin/python tools/plot_losses.py \
        --runs='BP=/runs/coco_bp,SS+last BP=/runs/coco_ss,FA+last BP=/runs/coco_fa' \
        --out=docs/figures/xiao2018_fig2.png [--smooth=50]
"""

import os

from absl import app
from absl import flags

from tfbio import analysis
from tfbio.train import workdir

_RUNS = flags.DEFINE_string("runs", None, "Comma-separated LABEL=WORKDIR "
                            "(or a workdir alone: its name is the label).")
_OUT = flags.DEFINE_string("out", None, "PNG to write.")
_SMOOTH = flags.DEFINE_integer("smooth", 1, "Moving-average window in logged "
                               "points (1: raw).", lower_bound=1)
_TITLE = flags.DEFINE_string("title", "RetinaNet training loss (xiao2018 "
                             "Fig. 2)", "Figure title.")

def parse_runs(text):
  """``'A=/x,B=/y'`` → ``[("A", "/x"), ("B", "/y")]``; ValueError on junk."""
  runs = []
  for item in (text or "").split(","):
    item = item.strip()
    if not item:
      continue
    label, sep, path = item.partition("=")
    if not sep:
      label, path = os.path.basename(item.rstrip("/")), item
    if not path:
      raise ValueError(f"--runs entry {item!r} has no workdir")
    runs.append((label.strip(), path.strip()))
  if not runs:
    raise ValueError(f"--runs={text!r} names no run")
  return runs


def _kind(path):
  """``"detection"`` (steps.csv with box_loss) or ``"classification"``."""
  try:
    workdir.read_steps(path, required=[k for k, _ in analysis.LOSS_PANELS])
    return "detection"
  except ValueError:
    if not os.path.isfile(workdir.path(path, workdir.HISTORY)):
      raise ValueError(f"{path!r} has neither a detection steps.csv nor a "
                       f"{workdir.HISTORY}: not a tfbio-train workdir (or no "
                       "epoch finished yet)") from None
    return "classification"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}")
  if not _RUNS.value or not _OUT.value:
    raise app.UsageError("--runs and --out are required")
  try:
    runs = parse_runs(_RUNS.value)
    kinds = {label: _kind(path) for label, path in runs}
    if len(set(kinds.values())) > 1:
      raise ValueError(f"--runs mixes detection and classification runs: "
                       f"{kinds}")
    if set(kinds.values()) == {"detection"}:
      required = [k for k, _ in analysis.LOSS_PANELS]
      analysis.plot_detection_losses(
          [(label, workdir.read_steps(path, required=required))
           for label, path in runs], _OUT.value, _SMOOTH.value,
          _TITLE.value)
    else:
      title = (_TITLE.value if _TITLE.present else
               "Training loss and error per epoch")
      analysis.plot_detection_losses(
          [(label, workdir.history_columns(path)) for label, path in runs],
          _OUT.value, _SMOOTH.value, title,
          panels=analysis.HISTORY_PANELS, x="epoch")
  except ValueError as e:
    raise SystemExit(f"plot_losses: error: {e}") from None


if __name__ == "__main__":
  app.run(main)
