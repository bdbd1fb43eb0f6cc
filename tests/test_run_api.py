"""tfbio.train.run and tfbio.train.workdir: trainer choice, overrides, schema."""

import json
import os
import subprocess
import sys

import pytest

from tfbio.experiments import jobs as jobs_lib
from tfbio.experiments import search
from tfbio.train import detection
from tfbio.train import run
from tfbio.train import tp_trainer
from tfbio.train import trainer as trainer_lib
from tfbio.train import workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, arg=""):
  return run.load_config(os.path.join(ROOT, "configs", f"{name}.py:{arg}"))


@pytest.mark.parametrize("name, arg, kind, cls", [
    ("demo", "algo=ss", "classification", trainer_lib.Trainer),
    ("bartunov2018", "smoke=1,algo=dtp", "tp", tp_trainer.TPTrainer),
    ("bartunov2018", "smoke=1,algo=bp", "classification", trainer_lib.Trainer),
    ("xiao2018_coco_retinanet", "smoke=1", "detection",
     detection.DetectionTrainer)])
def test_one_place_decides_the_trainer(name, arg, kind, cls):
  config = _config(name, arg)
  assert run.kind(config) == kind and run.trainer_class(config) is cls


def test_set_value_parses_text_like_the_command_line():
  config = _config("demo", "algo=ss")
  run.set_value(config, "epochs", "7")
  run.set_value(config, "optimizer.lr_mult", "0.5")
  run.set_value(config, "alignment", "false")
  run.set_value(config, "data.max_train_examples", "128")  # None field.
  run.set_value(config, "data.preprocess_train", "none")  # Text, not None.
  run.set_value(config, "model.kwargs.width", 16)  # Free-form dict.
  assert (config.epochs, config.optimizer.lr_mult, config.alignment) == (
      7, 0.5, False)
  assert config.data.max_train_examples == 128
  assert config.data.preprocess_train == "none"
  assert config.model.kwargs.width == 16
  run.set_value(config, "data.max_train_examples", "None")
  assert config.data.max_train_examples is None
  with pytest.raises(ValueError, match="config has no field 'epochz'"):
    run.set_value(config, "epochz", "3")
  with pytest.raises(ValueError, match="epochs must be int. Received: "
                     "epochs=2.5"):
    run.set_value(config, "epochs", "2.5")


def test_restore_of_a_directory_that_is_not_a_run(tmp_path):
  with pytest.raises(ValueError, match="has no config.json"):
    run.restore(str(tmp_path))


def test_summary_names_its_primary_metric_and_ranks_by_its_mode():
  history = [{"epoch": 1, "eval_AP": "0.2"}, {"epoch": 2, "eval_AP": "0.5"},
             {"epoch": 3, "eval_AP": "0.4"}]
  metrics = workdir.summary(primary_metric="eval_AP", history=history,
                            final=history[-1], steps=30)
  assert metrics["primary_metric"] == "eval_AP"
  assert metrics["primary_mode"] == "max"
  assert metrics["best_eval_AP"] == 0.5 and metrics["final_eval_AP"] == 0.4
  assert workdir.primary(metrics) == ("eval_AP", "max", 0.5, 0.4)
  # Runs written before primary_metric existed.
  assert workdir.primary({"best_eval_error": 3.0, "final_eval_error": 4.0}
                         ) == ("eval_error", "min", 3.0, 4.0)


def test_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
  workdir.write_history(str(tmp_path), [{"epoch": 1, "step": 5, "lr": 0.1,
                                         "eval_error": 50.0}])
  with open(tmp_path / workdir.HISTORY, "a", encoding="utf-8") as f:
    f.write("1,5,0.1,40.0\n2,10,0.1,30.0\n")
  rows = workdir.read_history(str(tmp_path))
  assert [(r["epoch"], r["eval_error"]) for r in rows] == [("1", "40.0"),
                                                          ("2", "30.0")]
  assert len(workdir.read_history(str(tmp_path), max_epoch=1)) == 1
  assert workdir.history_columns(str(tmp_path))["eval_error"] == [40.0, 30.0]


def test_grid_table_maximises_AP_and_names_the_winner():
  rows = [{"algo": "bp", "lr_mult": "1", "status": "ok", "best": 0.3,
           "primary_metric": "eval_AP", "primary_mode": "max"},
          {"algo": "bp", "lr_mult": "10", "status": "ok", "best": 0.5,
           "primary_metric": "eval_AP", "primary_mode": "max"},
          {"algo": "ss", "lr_mult": "1", "status": "failed"},
          {"algo": "ss", "lr_mult": "10", "status": "diverged", "best": None}]
  axes = [("algo", ["bp", "ss"]), ("lr_mult", ["1", "10"])]
  table = search.grid_table(rows, axes, best_over=["lr_mult"])
  assert "| bp | 0.5 (lr_mult=10) |" in table
  assert "| ss | — |" in table and "higher is better" in table


def test_finished_jobs_are_read_back_not_rerun(tmp_path):
  job = jobs_lib.Job(name="x", config="unused.py", workdir=str(tmp_path))
  with open(tmp_path / workdir.RESULT, "w", encoding="utf-8") as f:
    json.dump({"status": "ok", "final_eval_error": 12.5,
               "best_eval_error": 11.0}, f)
  (row,) = jobs_lib.run_jobs([job], workers=0)
  assert row["reused"] and row["status"] == "ok"
  assert (row["primary_metric"], row["best"], row["final"]) == (
      "eval_error", 11.0, 12.5)


def test_workdir_lock_refuses_a_live_owner_and_takes_over_a_stale_one(
    tmp_path):
  lock = tmp_path / workdir.LOCK
  lock.write_text(f"{os.getppid()}\n")  # A live process that is not us.
  with pytest.raises(ValueError, match=f"is in use by PID {os.getppid()}"):
    with workdir.locked(str(tmp_path)):
      pass
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  lock.write_text(dead.stdout)  # Its process has exited: a stale lock.
  with workdir.locked(str(tmp_path)):
    assert lock.read_text().strip() == str(os.getpid())
  assert not lock.exists()  # Released.


def test_seed_axis_gives_mean_std_n_and_a_curves_plot(tmp_path):
  rows = []
  for algo, base in (("bp", 10.0), ("fa", 20.0)):
    for seed in ("0", "1", "2"):
      d = tmp_path / f"algo={algo},seed={seed}"
      d.mkdir()
      workdir.write_history(str(d), [
          {"epoch": e, "step": e, "lr": 0.1, "eval_error": base + 5 - e}
          for e in (1, 2, 3)])
      status = "diverged" if (algo, seed) == ("fa", "2") else "ok"
      rows.append({"algo": algo, "seed": seed, "status": status,
                   "workdir": str(d), "primary_metric": "eval_error",
                   "primary_mode": "min", "best": base + 2 + int(seed),
                   "final": base + 2 + int(seed)})
  axes = [("algo", ["bp", "fa"]), ("seed", ["0", "1", "2"])]
  table = search.write_results(str(tmp_path), "c.py", rows, axes, {})
  assert "| bp | 13 ± 1 | 13 ± 1 | 3 | 0,1,2 | — |" in table
  assert "| fa | 22.5 ± 0.71 | 22.5 ± 0.71 | 2 | 0,1 | 2 diverged |" in table
  assert (tmp_path / "curves.png").stat().st_size > 1000


def test_seed_sweep_states_its_setup_and_a_xiao2018_verdict(tmp_path):
  from tfbio.experiments import claims  # pylint: disable=g-import-not-at-top
  config = run.load_config(os.path.join(ROOT, "configs", "demo.py") +
                           ":data=digits")
  errors = {"bp": 3.0, "ss": 4.0, "ss_lastbp": 3.5, "fa": 20.0,
            "fa_lastbp": 12.0}
  rows = []
  for algo, error in errors.items():
    for seed in ("0", "1"):
      d = tmp_path / f"algo={algo},seed={seed}"
      d.mkdir()
      workdir.write_config(str(d), config)
      workdir.write_history(str(d), [
          {"epoch": e, "step": e, "lr": 0.05, "eval_error": error + 3 - e}
          for e in (1, 2)])
      rows.append({"algo": algo, "seed": seed, "status": "ok",
                   "workdir": str(d), "primary_metric": "eval_error",
                   "primary_mode": "min", "best": error, "final": error})
  axes = [("algo", list(errors)), ("seed", ["0", "1"])]
  table = search.write_results(str(tmp_path), "demo.py", rows, axes, {},
                               verdict="xiao2018")
  assert ("Setup: digits, 1,347 training / 450 test images at 28×28; "
          "liao2016_mnist, 8 epochs of batch 32, sgd lr 0.02, momentum 0.9 "
          "(fixed, not searched); seeds 0, 1 (2 per condition).") in table
  assert claims.XIAO2018_RULE in table
  for claim in claims.XIAO2018_CLAIMS:
    assert f"**{claim}: holds**" in table, claim
  # FA + last BP above FA: the third claim fails; a diverged seed counts
  # as chance error.
  rows[-1]["status"] = "diverged"
  paragraph = search.verdict_paragraph("xiao2018", rows)
  assert "**last-layer BP helps FA: does not hold** (FA + last BP 51.00 < " \
         "FA 20.00)" in paragraph
  assert "**SS ≈ BP: holds**" in paragraph
  with pytest.raises(ValueError, match="needs the axis algo="):
    search.check_verdict("xiao2018", [("algo", ["bp", "ss"])])
  with pytest.raises(ValueError, match="'nope' is not one of"):
    search.check_verdict("nope", axes)


def test_removed_on_failure_keeps_what_was_there_and_a_checkpoint(tmp_path):
  fresh = tmp_path / "fresh"
  with pytest.raises(RuntimeError):
    with workdir.removed_on_failure(str(fresh), keep=lambda: False):
      fresh.mkdir()
      (fresh / "config.json").write_text("{}")
      (fresh / "tb").mkdir()
      raise RuntimeError("bad batch")
  assert not fresh.exists()
  old = tmp_path / "old"
  old.mkdir()
  (old / "log.txt").write_text("mine")
  with pytest.raises(RuntimeError):
    with workdir.removed_on_failure(str(old), keep=lambda: False):
      (old / "config.json").write_text("{}")
      raise RuntimeError("bad batch")
  assert sorted(os.listdir(old)) == ["log.txt"]
  with pytest.raises(RuntimeError):  # A checkpoint: everything is kept.
    with workdir.removed_on_failure(str(old), keep=lambda: True):
      (old / "checkpoints").mkdir()
      raise RuntimeError("diverged at step 900")
  assert sorted(os.listdir(old)) == ["checkpoints", "log.txt"]


def test_progress_line_is_one_plain_line():
  line = trainer_lib.progress_line(
      "epoch 3/10", {"loss": 0.41234, "error": 12.345, "eval_error": 13.1},
      images_per_second=1234.4, epoch_seconds=12.2, run_eta=84)
  assert line == ("epoch 3/10  loss 0.4123  error 12.35 %  eval_error "
                  "13.10 %  1234 img/s  epoch 12 s  ETA 1 min 24 s")
  assert trainer_lib.format_duration(7500) == "2 h 05 min"
