"""Target propagation through tfbio-train and a tfbio-sweep random search.

The binaries run as subprocesses on configs/bartunov2018.py's smoke variant
(the bartunov2018 MNIST FC net on 64 of scikit-learn's 8x8 digits, one
epoch of 2 steps).
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tfbio.train import config as config_lib
from tfbio.train import tp_trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "bartunov2018.py")


def _load_config_module():
  spec = importlib.util.spec_from_file_location("bartunov2018_tp", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _cli(name, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, "-m", f"tfbio.cli.{name}", *args],
                        capture_output=True, text=True, env=env, timeout=240,
                        check=False, cwd=REPO)


def test_sdtp_smoke_trains_through_tfbio_train(tmp_path):
  workdir = tmp_path / "run"
  proc = _cli("train", f"--config={CONFIG}:smoke=1,model=mnist_fc,algo=sdtp",
              f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  # One plain progress line per epoch, no Keras bar (\r, \b).
  assert "epoch 1/1  loss " in proc.stderr and " img/s " in proc.stderr
  assert "\r" not in proc.stderr and "\b" not in proc.stderr
  with open(workdir / "metrics.json", encoding="utf-8") as f:
    metrics = json.load(f)
  for key in ("final_eval_error", "best_eval_error", "steps",
              "final_train_error", "final_train_loss", "final_eval_loss"):
    assert key in metrics, key
  assert metrics["steps"] == 2
  assert 0 <= metrics["best_eval_error"] <= 100
  assert any(k.startswith("fwd_loss/") for k in metrics)
  assert "inv_loss/output" in metrics  # SDTP inverts the classifier too.
  assert any(k.startswith("bp_angle/") for k in metrics)
  with open(workdir / "history.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 1
  assert any(k.startswith("fwd_loss/") for k in rows[0])
  assert float(rows[0]["eval_error"]) == metrics["final_eval_error"]
  assert (workdir / "model.keras").is_file()
  assert (workdir / "config.json").is_file()
  assert '"variant": "sdtp"' in (workdir / "config.json").read_text()
  assert rows[0]["epoch"] == "1" and rows[0]["step"] == "2"  # 1-based.
  assert metrics["primary_metric"] == "eval_error"

  # tfbio-eval and tfbio-export restore a TP run (they used to fail with
  # "has no checkpoint yet": the TP trainer wrote only backup/).
  proc = _cli("eval", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads((workdir / "eval_test.json").read_text())
  assert result["step"] == 2 and result["split"] == "test"
  assert result["eval_error"] == pytest.approx(metrics["final_eval_error"])
  proc = _cli("export", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (workdir / "export" / "saved_model" / "saved_model.pb").is_file()


def test_random_sweep_draws_distinct_trials_and_resumes(tmp_path):
  workdir = tmp_path / "sweep"
  args = (f"--config={CONFIG}:smoke=1,algo=dtp", "--random=2",
          "--random_seed=1", f"--workdir={workdir}")
  proc = _cli("sweep", *args)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(workdir / "results.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["trial"] for r in rows] == ["000", "001"]
  assert [r["status"] for r in rows] == ["ok", "ok"]
  space = _load_config_module().SEARCH_SPACE
  assert set(space) <= set(rows[0])
  assert rows[0]["tp.noise_std"] != rows[1]["tp.noise_std"]
  for row in rows:
    low, high = space["tp.noise_std"][1:]
    assert low <= float(row["tp.noise_std"]) <= high
    config = json.loads((workdir / f"trial={row['trial']}" /
                         "config.json").read_text())
    assert config["tp"]["noise_std"] == float(row["tp.noise_std"])
    assert config["optimizer"]["learning_rate"] == float(
        row["optimizer.learning_rate"])
  assert "trial=00" in (workdir / "results.md").read_text()

  again = _cli("sweep", *args)
  assert again.returncode == 0, again.stderr[-2000:]
  with open(workdir / "results.csv", newline="", encoding="utf-8") as f:
    assert [r["reused"] for r in csv.DictReader(f)] == ["True"] * 2


def test_random_sweep_needs_a_search_space(tmp_path):
  path = tmp_path / "plain.py"
  path.write_text("def get_config(arg=None):\n  return None\n")
  proc = _cli("sweep", f"--config={path}", "--random=2",
              f"--workdir={tmp_path / 'sweep'}")
  assert proc.returncode == 2  # A usage error (tfbio.cli.common).
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "tfbio-sweep: error: --random needs a SEARCH_SPACE")


@pytest.mark.parametrize("key,value,match", [
    ("variant", "tp", "tp.variant must be one of"),
    ("schedule", "every", "tp.schedule must be one of"),
    ("inverse_training", "x", "tp.inverse_training must be one of"),
    ("noise_std", -0.1, "tp.noise_std must be a finite number >= 0"),
    ("step_size", float("nan"), "tp.step_size must be a finite number"),
    ("inverse_learning_rate", 0.0, "tp.inverse_learning_rate must be"),
    ("inverse_beta_2", 1.0, "tp.inverse_beta_2 must be"),
    ("inverse_epsilon", -1e-8, "tp.inverse_epsilon must be"),
])
def test_bad_tp_values_raise_one_line_errors(key, value, match):
  config = _load_config_module().get_config("smoke=1,algo=sdtp")
  config.tp[key] = value
  with pytest.raises(ValueError, match=match) as info:
    config_lib.validate(config)
  assert "\n" not in str(info.value)
  assert repr(value) in str(info.value)


def test_tp_trainer_rejects_other_strategies_and_freeze(tmp_path):
  config = _load_config_module().get_config("smoke=1,algo=dtp")
  with pytest.raises(ValueError, match="--strategy=default|mirrored"):
    tp_trainer.TPTrainer(config, str(tmp_path), strategy="multiworker")
  config.freeze = "@classifier"
  with pytest.raises(ValueError, match="does not support freeze"):
    tp_trainer.TPTrainer(config, str(tmp_path))


def test_bartunov2018_tp_args():
  module = _load_config_module()
  assert not module.get_config().tp.enabled
  config = module.get_config("algo=sdtp,schedule=alternating")
  assert config.tp.enabled and config.tp.variant == "sdtp"
  assert config.tp.schedule == "alternating"
  with pytest.raises(ValueError, match="schedule.*algo=dtp"):
    module.get_config("schedule=alternating")


def test_dfa_smoke_trains_evaluates_and_exports_through_the_binaries(
    tmp_path):
  workdir = tmp_path / "dfa"
  config = os.path.join(REPO, "configs", "dfa.py")
  proc = _cli("train", f"--config={config}:smoke=1,algo=dfa",
              f"--workdir={workdir}", "--config.dfa.bp_angle=true")
  assert proc.returncode == 0, proc.stderr[-2000:]
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert metrics["feedback"] == "dfa" and metrics["steps"] == 2
  assert metrics["primary_metric"] == "eval_error"
  assert 0 <= metrics["final_eval_error"] <= 100
  assert any(k.startswith("bp_angle/") for k in metrics)
  with open(workdir / "history.csv", newline="", encoding="utf-8") as f:
    (row,) = list(csv.DictReader(f))
  assert row["epoch"] == "1" and float(row["eval_error"]) == (
      metrics["final_eval_error"])
  proc = _cli("eval", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads((workdir / "eval_test.json").read_text())
  assert result["eval_error"] == pytest.approx(metrics["final_eval_error"])
