"""tfbio.experiments' reproduction (tools/reproduce.py): cells, rules, records.

Cells are valid configs, the verdict rules pass and fail on constructed
numbers, the committed records (runs.csv, curves.csv) round trip, and end
to end on digits the binary trains, reuses and regenerates the report from
its records alone.
"""

import json
import os
import shutil
import subprocess
import sys

from tfbio.experiments import cells as cells_lib
from tfbio.experiments import claims as claims_lib
from tfbio.experiments import report as report_lib
from tfbio.train import config as config_lib
from tfbio.train import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELLS = cells_lib.build_cells()


def test_every_cell_is_a_valid_config(tmp_path):
  options = cells_lib.Options(out=str(tmp_path), data="digits", repo=ROOT)
  claim_cells = {c for claim in claims_lib.default_claims()
                 for c in claim.cells}
  assert claim_cells <= set(CELLS)
  for cell_id, cell in CELLS.items():
    assert cell.lr_of is None or CELLS[cell.lr_of].lr_mults, cell_id
    job = cells_lib.job(CELLS, cell_id, 1, 10.0 if cell.lr_mults else None,
                        options)
    config = run.load_config(job.config, job.overrides)
    config_lib.validate(config)
    assert config.data.name == "digits" and config.seed == 1, cell_id
    assert job.workdir.startswith(str(tmp_path / "runs" / "digits" /
                                      cell_id))
  options = cells_lib.Options(data="fashion", train_examples=1234)
  overrides = dict(cells_lib.data_overrides(options, 32))
  assert overrides["data.max_train_examples"] == 1234
  assert overrides["data.image_size"] == 32


def _results(errors, seeds=(0, 1, 2)):
  rows = {}
  for cell_id, value in errors.items():
    for s in seeds:
      rows[(cell_id, s)] = {"status": "ok", "final_eval_error": value + s * 0.1,
                            "workdir": "/nonexistent"}
  return claims_lib.Results(rows, {}, CELLS)


def test_xiao_rule():
  claim = claims_lib.Xiao2018()
  errors = {}
  for net in cells_lib.XIAO_NETS:
    errors.update({f"xiao-{net}-bp": 10.0, f"xiao-{net}-ss": 11.0,
                   f"xiao-{net}-ss_lastbp": 12.0, f"xiao-{net}-fa": 20.0,
                   f"xiao-{net}-fa_lastbp": 15.0})
  assert claim.verdict(_results(errors), (0, 1, 2)).holds is True
  errors["xiao-resnet-fa_lastbp"] = 25.0  # Worse than FA: one part fails.
  verdict = claim.verdict(_results(errors), (0, 1, 2))
  assert verdict.holds is False
  assert [ok for _, ok in verdict.parts].count(False) == 1


def test_flip_rule_and_divergence_counts_as_chance():
  claim = claims_lib.Liao2016B()
  errors = {}
  for mode in ("brsf", "frsf"):
    for i, cell in enumerate(claim._ids(mode)):
      errors[cell] = 10.0 + 10 * i
  res = _results(errors)
  assert claim.verdict(res, (0, 1, 2)).holds is True
  res.rows[("liao-frsf_p25_bn_bm", 0)] = {"status": "diverged"}
  assert res.errors("liao-frsf_p25_bn_bm", (0, 1, 2))[0] == 90.0
  assert res.diverged("liao-frsf_p25_bn_bm", (0, 1, 2)) == 1
  errors["liao-brsf_p50_bn_bm"] = 5.0  # A drop of 15 points: not monotone.
  assert claim.verdict(_results(errors), (0, 1, 2)).holds is False


def test_report_marks_missing_runs_incomplete(tmp_path):
  options = cells_lib.Options(out=str(tmp_path), data="digits")
  claims = [claims_lib.Bartunov2018(), claims_lib.Liao2016C2()]
  res = _results({"bartunov-bp": 5.0, "bartunov-dtp": 6.0,
                  "bartunov-sdtp": 7.5})
  verdicts = report_lib.write_report(claims, res, [0, 1, 2], 1.0,
                                     str(tmp_path),
                                     "tools/reproduce.py --only=...", options)
  assert verdicts["bartunov2018"].holds is True
  assert verdicts["liao2016_c2"].holds is None
  text = (tmp_path / "README.md").read_text()
  assert "| [bartunov2018]" in text and "**HOLDS**" in text
  assert "INCOMPLETE" in text
  assert (tmp_path / "bartunov2018_tp.png").stat().st_size > 1000


def test_records_round_trip(tmp_path):
  rows = {report_lib.run_key("liao-sgd", 0, 10.0): {
      "status": "ok", "final_eval_error": 12.345678901, "role": "selection",
      "best_eval_error": 11.0, "seconds": 3.5},
          report_lib.run_key("bartunov-bp", 1, None): {
              "status": "diverged", "role": "report"}}
  path = str(tmp_path / "runs.csv")
  report_lib.write_runs(path, rows)
  back = report_lib.read_runs(path)
  assert set(back) == {("liao-sgd", 0, "10"), ("bartunov-bp", 1, "")}
  assert back[("liao-sgd", 0, "10")]["final_eval_error"] == 12.345678901
  assert back[("liao-sgd", 0, "10")]["role"] == "selection"
  assert back[("bartunov-bp", 1, "")]["final_eval_error"] is None
  curves = {("liao-sgd", 0, "10"): [{"epoch": 1, "eval_error": 20.0,
                                     "wb_correlation/fc1": 0.5},
                                    {"epoch": 2, "eval_error": 15.5}]}
  report_lib.write_curves(str(tmp_path / "curves.csv"), curves)
  back = report_lib.read_curves(str(tmp_path / "curves.csv"))
  assert [r["eval_error"] for r in back[("liao-sgd", 0, "10")]] == [
      "20.0", "15.5"]
  assert "wb_correlation/fc1" not in back[("liao-sgd", 0, "10")][0]


def test_end_to_end_on_digits_resumes_regenerates_and_rejects_bad_input(
    tmp_path):
  out = str(tmp_path / "r")
  cmd = [sys.executable, os.path.join(ROOT, "tools", "reproduce.py"),
         f"--out={out}", "--data=digits", "--only=bartunov2018",
         "--seeds=1", "--epoch_scale=0.2", "--jobs=2"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = open(os.path.join(out, "README.md"), encoding="utf-8").read()
  assert "## bartunov2018: " in report and "digits" in report
  result = os.path.join(out, "runs", "digits-x0.2", "bartunov-sdtp",
                        "default", "seed1", "result.json")
  first = json.load(open(result, encoding="utf-8"))
  assert first["status"] == "ok" and 0 <= first["final_eval_error"] <= 100
  runs = report_lib.read_runs(os.path.join(out, "runs.csv"))
  assert len(runs) == 3
  assert runs[("bartunov-sdtp", 1, "")]["final_eval_error"] == (
      first["final_eval_error"])
  curves = report_lib.read_curves(os.path.join(out, "curves.csv"))
  assert [r["epoch"] for r in curves[("bartunov-sdtp", 1, "")]] == ["1"]
  # From the committed records alone (runs/ deleted): nothing is trained
  # and the report's tables are the same.
  shutil.rmtree(os.path.join(out, "runs"))
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert not os.path.exists(os.path.join(out, "runs"))
  again = open(os.path.join(out, "README.md"), encoding="utf-8").read()
  assert again.split("\n")[4:] == report.split("\n")[4:]
  bad = subprocess.run(cmd[:4] + ["--only=nope"], capture_output=True,
                       text=True, timeout=120, check=False)
  assert bad.returncode != 0
  assert "unknown claim(s) ['nope']" in bad.stderr.strip().splitlines()[-1]
