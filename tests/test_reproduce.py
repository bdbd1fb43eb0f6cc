"""tools/reproduce.py: cells are valid configs, verdict rules, end to end."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def repro():
  # Importing defines no absl flags (they are defined only under __main__).
  spec = importlib.util.spec_from_file_location(
      "tfbio_reproduce", os.path.join(ROOT, "tools", "reproduce.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_cell_is_a_valid_config(repro, tmp_path):
  from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

  repro.OPTS = repro.Options(out=str(tmp_path), data="digits")
  claim_cells = {c for claim in repro.CLAIMS for c in claim.cells}
  assert claim_cells <= set(repro.CELLS)
  for cell_id, cell in repro.CELLS.items():
    assert cell.lr_of is None or repro.CELLS[cell.lr_of].lr_mults, cell_id
    task = repro._task(cell_id, 1, 10.0 if cell.lr_mults else None)
    config = repro._load_config(task["config"])
    for key, value in task["overrides"]:
      repro._set(config, key, value)
    config_lib.validate(config)
    assert config.data.name == "digits" and config.seed == 1, cell_id
    assert task["workdir"].startswith(str(tmp_path / "runs" / "digits" /
                                          cell_id))
  repro.OPTS = repro.Options(data="fashion", train_examples=1234)
  overrides = dict(repro.data_overrides("fashion", 32))
  assert overrides["data.max_train_examples"] == 1234
  assert overrides["data.image_size"] == 32


def _results(repro, errors, seeds=(0, 1, 2)):
  rows = {}
  for cell_id, value in errors.items():
    for s in seeds:
      rows[(cell_id, s)] = {"status": "ok", "final_eval_error": value + s * 0.1,
                            "workdir": "/nonexistent"}
  return repro.Results(rows, {})


def test_xiao_rule(repro):
  claim = repro.Xiao2018()
  errors = {}
  for net in repro.XIAO_NETS:
    errors.update({f"xiao-{net}-bp": 10.0, f"xiao-{net}-ss": 11.0,
                   f"xiao-{net}-ss_lastbp": 12.0, f"xiao-{net}-fa": 20.0,
                   f"xiao-{net}-fa_lastbp": 15.0})
  assert claim.verdict(_results(repro, errors), (0, 1, 2)).holds is True
  errors["xiao-resnet-fa_lastbp"] = 25.0  # Worse than FA: one part fails.
  verdict = claim.verdict(_results(repro, errors), (0, 1, 2))
  assert verdict.holds is False
  assert [ok for _, ok in verdict.parts].count(False) == 1


def test_flip_rule_and_divergence_counts_as_chance(repro):
  claim = repro.Liao2016B()
  errors = {}
  for mode in ("brsf", "frsf"):
    for i, cell in enumerate(claim._ids(mode)):
      errors[cell] = 10.0 + 10 * i
  res = _results(repro, errors)
  assert claim.verdict(res, (0, 1, 2)).holds is True
  res.rows[("liao-frsf_p25_bn_bm", 0)] = {"status": "diverged"}
  assert res.errors("liao-frsf_p25_bn_bm", (0, 1, 2))[0] == 90.0
  assert res.diverged("liao-frsf_p25_bn_bm", (0, 1, 2)) == 1
  errors["liao-brsf_p50_bn_bm"] = 5.0  # A drop of 15 points: not monotone.
  assert claim.verdict(_results(repro, errors), (0, 1, 2)).holds is False


def test_report_marks_missing_runs_incomplete(repro, tmp_path):
  repro.OPTS = repro.Options(out=str(tmp_path), data="digits")
  claims = [repro.Bartunov2018(), repro.Liao2016C2()]
  res = _results(repro, {"bartunov-bp": 5.0, "bartunov-dtp": 6.0,
                         "bartunov-sdtp": 7.5})
  verdicts = repro.write_report(claims, res, [0, 1, 2], 1.0, str(tmp_path),
                                "tools/reproduce.py --only=...")
  assert verdicts["bartunov2018"].holds is True
  assert verdicts["liao2016_c2"].holds is None
  text = (tmp_path / "README.md").read_text()
  assert "| [bartunov2018]" in text and "**HOLDS**" in text
  assert "INCOMPLETE" in text
  assert (tmp_path / "bartunov2018_tp.png").stat().st_size > 1000


def test_end_to_end_on_digits_resumes_and_rejects_bad_input(tmp_path):
  out = str(tmp_path / "r")
  cmd = [sys.executable, os.path.join(ROOT, "tools", "reproduce.py"),
         f"--out={out}", "--data=digits", "--only=bartunov2018",
         "--seeds=0,1", "--epoch_scale=0.2", "--jobs=2"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = open(os.path.join(out, "README.md"), encoding="utf-8").read()
  assert "## bartunov2018: " in report and "digits" in report
  result = os.path.join(out, "runs", "digits-x0.2", "bartunov-sdtp",
                        "default", "seed1", "result.json")
  first = json.load(open(result, encoding="utf-8"))
  assert first["status"] == "ok" and 0 <= first["final_eval_error"] <= 100
  mtime = os.path.getmtime(result)
  # Same command again: every run is reused, nothing retrained.
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.getmtime(result) == mtime
  assert "[6/6]" not in proc.stderr  # Reused runs are not logged as run.
  bad = subprocess.run(cmd[:4] + ["--only=nope"], capture_output=True,
                       text=True, timeout=120, check=False)
  assert bad.returncode != 0
  assert "unknown claim(s) ['nope']" in bad.stderr.strip().splitlines()[-1]
