"""Tests of tfbio.experiments.peer (the biotorch side-by-side report) on
synthetic sweep directories: nothing is trained."""

import csv
import json
import os

import pytest

from tfbio.experiments import peer


def _cell(root, name, status, errors, seconds=10.0):
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  with open(os.path.join(workdir, "history.csv"), "w") as f:
    f.write("epoch,step,eval_error\n")
    for i, e in enumerate(errors, start=1):
      f.write(f"{i},{i * 10},{e}\n")
  if status is not None:
    with open(os.path.join(workdir, "result.json"), "w") as f:
      json.dump({"status": status, "seconds": seconds, "best_eval_error":
                 min(errors), "final_eval_error": errors[-1],
                 "primary_metric": "eval_error"}, f)


def test_selection_uses_validation_best_and_counts_divergence(tmp_path):
  select = tmp_path / "select"
  _cell(select, "algo=bp,lr=0.1", "ok", [20.0, 9.5, 9.8])
  _cell(select, "algo=bp,lr=0.01", "ok", [25.0, 12.0, 10.5])
  _cell(select, "algo=fa,lr=0.1", "diverged", [80.0, 5.0])  # chance, not 5
  _cell(select, "algo=fa,lr=0.01", "ok", [30.0, 14.0])
  _cell(select, "algo=usf,lr=0.1", None, [30.0])           # still running
  rows = peer.load_runs(str(select), "selection")
  assert peer.select_rates(rows) == {"bp": ("0.1", 9.5), "fa": ("0.01", 14.0)}
  table = peer.selection_table(rows)
  assert "| fa | 90.00 (diverged) | 14.00 | lr 0.01 (grid edge) |" in table
  assert "| bp | 9.50 | 10.50 | lr 0.1 (grid edge) |" in table
  assert "| usf | missing | — | — |" in table


def test_side_by_side_interval_verdict_and_report(tmp_path):
  select, final, out = tmp_path / "s", tmp_path / "f", tmp_path / "out"
  _cell(select, "algo=bp,lr=0.1", "ok", [9.0])
  for seed, best in enumerate([9.1, 9.3, 9.2]):      # biotorch 9.2: matches
    _cell(final, f"algo=bp,seed={seed}", "ok", [15.0, best, best + 0.1])
  for seed, best in enumerate([15.1, 15.3, 15.2]):   # biotorch 13.06: +2.1
    _cell(final, f"algo=fa,seed={seed}", "ok", [20.0, best])
  _cell(final, "algo=usf,seed=0", "ok", [12.0, 9.7])
  _cell(final, "algo=usf,seed=1", None, [12.0])
  rows = peer.load_runs(str(final), "final")
  table = peer.side_by_side(rows)
  bp = next(line for line in table.splitlines() if line.startswith("| bp "))
  assert "9.20 ± 0.10 (n=3)" in bp and "0: 9.10, 1: 9.30, 2: 9.20" in bp
  assert bp.endswith("| HOLDS |")
  fa = next(line for line in table.splitlines() if line.startswith("| fa "))
  assert "+2.14" in fa and fa.endswith("| DOES NOT HOLD |")
  usf = next(line for line in table.splitlines() if line.startswith("| usf"))
  assert usf.endswith("| INCONCLUSIVE |")     # n = 1: no interval
  assert "usf: seeds 1 not finished" in table
  assert "| dfa | 12.81 | not run |" in table
  text = peer.report(str(select), str(final), str(out))
  assert "±1 percentage point" in text and "HOLDS" in text
  for name in ("README.md", "runs.csv", "biotorch.png", "curves_final.png",
               "curves_selection.png"):
    assert (out / name).is_file(), name
  with open(out / "runs.csv") as f:
    runs = list(csv.DictReader(f))
  assert [r["role"] for r in runs].count("final") == 8
  assert {r["status"] for r in runs} == {"ok", "missing"}
  assert pytest.approx(float(runs[0]["seconds"])) == 10.0
