"""tfbio-train / -eval / -export / -sweep: outputs, resume, multi-worker, errors.

The binaries run as subprocesses (as users run them) on a tiny config:
amit2019's simpnet (dropout: a random state to restore) with ``brsf``
feedback (a per-step feedback counter to restore) on scikit-learn's 8x8
digits, written into the test's tmp dir.
"""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbio.train import config as config_lib

TINY_CONFIG = '''
from tfbio.train.config import base_config


def get_config(arg=None):
  c = base_config()
  c.model.name = "simpnet"
  c.feedback = "brsf"
  c.data.name = "digits"
  c.batch_size = 32
  c.epochs = 2
  c.steps_per_epoch = 6
  c.checkpoint_every_steps = 4
  c.optimizer.learning_rate = 0.05
  c.log_every_steps = 2
  if arg:
    for item in arg.split(","):
      key, value = item.split("=")
      if key == "algo":
        c.feedback = value
      elif key == "lr_mult":
        c.optimizer.lr_mult = float(value)
      else:
        raise ValueError(f"unknown arg {key!r}")
  return c
'''


@pytest.fixture(name="tiny_config")
def fixture_tiny_config(tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(TINY_CONFIG)
  return str(path)


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.update(extra)
  return env


def _cli(name, *args, env=None, timeout=240):
  return subprocess.run([sys.executable, "-m", f"tfbio.cli.{name}", *args],
                        capture_output=True, text=True, env=env or _env(),
                        timeout=timeout, check=False)


def _checkpoint_values(directory):
  reader = tf.train.load_checkpoint(directory)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if not name.startswith("_CHECKPOINTABLE")
          and "save_counter" not in name}


def _assert_same_checkpoints(a, b):
  va, vb = _checkpoint_values(a), _checkpoint_values(b)
  assert va.keys() == vb.keys()
  assert any("feedback_step" in k for k in va)
  assert any("seed_states" in k for k in va)
  for key in va:
    np.testing.assert_array_equal(va[key], vb[key], err_msg=key)


def test_train_writes_its_outputs_and_eval_export_read_them(tiny_config,
                                                            tmp_path):
  workdir = str(tmp_path / "run")
  proc = _cli("train", f"--config={tiny_config}", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ("config.json", "history.csv", "model.keras", "metrics.json",
               "checkpoints", "tb"):
    assert os.path.exists(os.path.join(workdir, name)), name
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  assert metrics["steps"] == 12 and metrics["feedback"] == "brsf"
  assert 0 <= metrics["final_eval_error"] <= 100
  header, *rows = open(os.path.join(workdir, "history.csv")).read().split()
  assert len(rows) == 2
  for column in ("train_loss", "eval_error", "alignment_angle",
                 "wb_correlation/fc1", "lr"):
    assert column in header.split(","), column
  config = config_lib.from_json(open(os.path.join(workdir,
                                                  "config.json")).read())
  assert config.model.name == "simpnet" and config.feedback == "brsf"
  assert "epoch 2/2" in proc.stderr  # absl progress lines

  proc = _cli("eval", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.load(open(os.path.join(workdir, "eval_test.json")))
  assert result["step"] == 12
  assert result["eval_error"] == pytest.approx(metrics["final_eval_error"])

  proc = _cli("export", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  loaded = tf.saved_model.load(os.path.join(workdir, "export", "saved_model"))
  logits = loaded.serve(tf.zeros((3, 8, 8, 1)))
  assert logits.shape == (3, 10)
  assert os.path.exists(os.path.join(workdir, "export", "model.keras"))


def test_sigkill_mid_epoch_then_same_command_resumes_to_same_weights(
    tiny_config, tmp_path):
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  uninterrupted = subprocess.Popen(
      [sys.executable, "-m", "tfbio.cli.train", f"--config={tiny_config}",
       f"--workdir={full}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, env=_env())
  # Step 9 is mid-epoch 2; the last checkpoint before it is step 8.
  args = [f"--config={tiny_config}", f"--workdir={killed}",
          "--config.debug_kill_after_step=9"]
  proc = _cli("train", *args)
  assert proc.returncode == -9, proc.stderr[-2000:]
  _, err = uninterrupted.communicate(timeout=240)
  assert uninterrupted.returncode == 0, err[-2000:]
  assert not os.path.exists(os.path.join(killed, "metrics.json"))
  assert tf.train.latest_checkpoint(
      os.path.join(killed, "checkpoints")).endswith("ckpt-8")
  proc = _cli("train", *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Resumed from" in proc.stderr and "at step 8" in proc.stderr
  _assert_same_checkpoints(os.path.join(full, "checkpoints"),
                           os.path.join(killed, "checkpoints"))
  # The killed run's lock (a dead PID) is taken over with a warning.
  assert "Taking over the stale lock" in proc.stderr
  assert not os.path.exists(os.path.join(killed, ".lock"))
  with open(os.path.join(killed, "history.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["epoch"] for r in rows] == ["1", "2"]
  # Epoch 2 resumed at step 8: its train_* average only steps 9-12.
  assert [r["resumed_at_step"] for r in rows] == ["", "8"]


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_on_localhost_end_with_identical_weights(tiny_config,
                                                             tmp_path):
  workdir = str(tmp_path / "mw")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "tfbio.cli.train", f"--config={tiny_config}",
         f"--workdir={workdir}", "--strategy=multiworker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(TF_CONFIG=tf_config)))
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=300))
  finally:
    for proc in procs:
      proc.kill()
  for proc, (_, err) in zip(procs, outputs):
    assert proc.returncode == 0, err[-3000:]
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  assert metrics["num_replicas"] == 2 and metrics["steps"] == 12
  _assert_same_checkpoints(os.path.join(workdir, "checkpoints"),
                           os.path.join(workdir, "checkpoints_worker1"))


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    tiny_config, tmp_path):
  workdir = str(tmp_path / "div")
  proc = _cli("train", f"--config={tiny_config}", f"--workdir={workdir}",
              "--config.model.name=liao2016_timit", "--config.feedback=usf",
              "--config.optimizer.lr_mult=1e5",
              "--config.checkpoint_every_steps=1")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("tfbio-train: error: Training diverged")
  assert "'usf'" in last and "at step" in last
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest is not None:  # Diverging at step 1 leaves no checkpoint at all.
    for value in _checkpoint_values(latest).values():
      if value.dtype.kind == "f":
        assert np.all(np.isfinite(value))


BAD_INPUTS = {  # case: (extra args, text the one-line error must contain)
    "unknown_key": (["--config.nope=1"], "nope"),
    "unknown_model": (["--config.model.name=resnet19"], "resnet18"),
    "unknown_dataset": (["--config.data.name=no_such_data_xyz"],
                        "no_such_data_xyz"),
    "unknown_feedback": (["--config.feedback=signsym"], "signsym"),
    "unknown_strategy": (["--strategy=gpu_cluster"], "gpu_cluster"),
    "workdir_is_a_file": ([], "is not a directory"),
    "config_arg_typo": ([], "bogus"),
    # A live process (this test's) holds the workdir's lock.
    "workdir_locked": ([], f"is in use by PID {os.getpid()}"),
    "batch_larger_than_data": (["--config.batch_size=100000"],
                               "batch_size=100000 is larger than the"),
    "bad_feedback_parameter": (["--config.feedback=brsf_p:flip_prob=2"],
                               "flip_prob=2"),
}


def test_bad_input_is_one_line_nonzero_and_writes_nothing(tiny_config,
                                                          tmp_path):
  # All cases at once: each is a process that mostly imports TensorFlow.
  procs = {}
  for case, (args, _) in BAD_INPUTS.items():
    workdir, config = str(tmp_path / case), tiny_config
    if case == "workdir_is_a_file":
      open(workdir, "w").close()
    if case == "config_arg_typo":
      config = f"{tiny_config}:bogus=1"
    if case == "workdir_locked":
      os.makedirs(workdir)
      with open(os.path.join(workdir, ".lock"), "w") as f:
        f.write(f"{os.getpid()}\n")
    procs[case] = subprocess.Popen(
        [sys.executable, "-m", "tfbio.cli.train", f"--config={config}",
         f"--workdir={workdir}", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=_env())
  for case, proc in procs.items():
    _, err = proc.communicate(timeout=240)
    message = BAD_INPUTS[case][1]
    assert proc.returncode == 1, (case, err[-2000:])
    last = err.strip().splitlines()[-1]
    assert last.startswith("tfbio-train: error: ") and message in last, (
        case, last)
    assert "Traceback" not in err, case
    if case == "workdir_locked":  # Nothing but the other run's lock.
      assert os.listdir(tmp_path / case) == [".lock"], case
    elif case != "workdir_is_a_file":
      assert not os.path.exists(tmp_path / case), case


def test_sweep_runs_the_product_resumably_and_writes_its_table(tiny_config,
                                                               tmp_path):
  workdir = str(tmp_path / "sweep")
  args = ["--config=" + tiny_config, "--axes=algo=bp|fa,lr_mult=0.1",
          "--best_over=lr_mult", f"--workdir={workdir}", "--parallel=2",
          "--override=epochs=1", "--override=steps_per_epoch=3"]
  proc = _cli("sweep", *args, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "results.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  assert [(r["algo"], r["status"], r["reused"], r["primary_metric"])
          for r in rows] == [("bp", "ok", "False", "eval_error"),
                             ("fa", "ok", "False", "eval_error")]
  table = open(os.path.join(workdir, "results.md")).read()
  assert "| algo | eval_error |" in table
  assert "| bp | " in table and "(lr_mult=0.1) |" in table
  assert "lower is better" in table
  assert os.path.exists(os.path.join(workdir, "algo=fa,lr_mult=0.1",
                                     "metrics.json"))
  assert "[2/2]" in proc.stderr and "left" in proc.stderr  # Progress + ETA.
  proc = _cli("sweep", *args, timeout=600)  # Resumes: every cell reused.
  assert proc.returncode == 0
  with open(os.path.join(workdir, "results.csv"), newline="") as f:
    assert [r["reused"] for r in csv.DictReader(f)] == ["True", "True"]
