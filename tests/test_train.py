"""tfbio-train / -eval / -export / -sweep: outputs, resume, multi-worker, errors.

The binaries run as subprocesses (as users run them) on a tiny config:
amit2019's simpnet (dropout: a random state to restore) with ``brsf``
feedback (a per-step feedback counter to restore) on scikit-learn's 8x8
digits, written into the test's tmp dir.
"""

import csv
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbio.train import config as config_lib
from tfbio.train import run as run_lib

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
  # One plain progress line per epoch (no Keras bar: \r, \b); no per-step
  # lines unless --log_every_steps asks; no TensorFlow INFO lines.
  assert "epoch 2/2  loss " in proc.stderr and " ETA 0 s" in proc.stderr
  assert "\r" not in proc.stderr and "\b" not in proc.stderr
  assert "step 2/12" not in proc.stderr
  assert "Sharding callback" not in proc.stderr

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


# Every bad input of every binary (issue 18): (binary, case, args, exit
# status, text the one-line error must contain). Status 2: the command line
# itself is wrong (flags, config file, config fields and values); 1: found
# while running (data, work directory, lock, divergence). {cfg} is the tiny
# config, {tmp} the test's tmp dir, {wd} the case's own workdir.
BAD_INPUTS = [
    ("train", "missing_config_file", ["--config={tmp}/nope.py"], 2,
     "'{tmp}/nope.py' does not exist"),
    # absl would read the next flag as batch_size's value.
    ("train", "config_value_missing", ["--config.batch_size",
                                       "--strategy=default"], 2,
     "--config.batch_size needs a value"),
    ("train", "unknown_key", ["--config.nope=1"], 2, "nope"),
    ("train", "unknown_model", ["--config.model.name=resnet19"], 2,
     "resnet18"),
    ("train", "unknown_feedback", ["--config.feedback=signsym"], 2,
     "signsym"),
    ("train", "bad_feedback_parameter",
     ["--config.feedback=brsf_p:flip_prob=2"], 2, "flip_prob=2"),
    # None is settable (not a parse error); validation names the value.
    ("train", "none_where_a_number_is_needed", ["--config.batch_size=None"],
     2, "batch_size=None"),
    ("train", "unknown_strategy", ["--strategy=gpu_cluster"], 2,
     "gpu_cluster"),
    ("train", "workdir_is_a_file", [], 2, "is not a directory"),
    ("train", "config_arg_typo", [], 2, "bogus"),
    ("train", "unknown_flag", ["--nope"], 2, "nope"),
    ("train", "unknown_dataset", ["--config.data.name=no_such_data_xyz"], 1,
     "no_such_data_xyz"),
    # A live process (this test's) holds the workdir's lock.
    ("train", "workdir_locked", [], 1, f"is in use by PID {os.getpid()}"),
    ("train", "read_only_workdir", [], 1, "{wd}"),
    # With a None (settable) on the way: the run gets to the data check.
    ("train", "batch_larger_than_data",
     ["--config.batch_size=100000", "--config.data.max_eval_examples=None"],
     1, "batch_size=100000 is larger than the"),
    ("train", "missing_image_folder", ["--config.data.name=folder:{tmp}/no"],
     1, "{tmp}/no"),
    ("train", "unreadable_image",
     ["--config.data.name=folder:{tmp}/images", "--config.batch_size=1",
      "--config.steps_per_epoch=1", "--config.data.image_size=8"], 1,
     "{tmp}/images/train/cat/bad.jpg"),
    ("train", "corrupt_coco_json",
     ["--config.model.name=retinanet_resnet18", "--config.data.name=coco",
      "--config.data.data_dir={tmp}/coco", "--config.data.image_size=64"], 1,
     "{tmp}/coco/annotations_train.json"),
    # Diverges at step 2, before the first checkpoint (step 4).
    ("train", "divergence", ["--config.optimizer.lr_mult=1e38"], 1,
     "Training diverged"),
    ("eval", "no_workdir_flag", [], 2, "--workdir is required"),
    ("eval", "unknown_flag", ["--nope"], 2, "nope"),
    ("eval", "not_a_run", [], 1, "has no config.json"),
    ("eval", "no_checkpoint", [], 1, "has no checkpoint yet"),
    ("eval", "corrupt_coco_json", [], 1, "{tmp}/coco/annotations_train.json"),
    ("export", "no_workdir_flag", [], 2, "--workdir is required"),
    ("export", "unexpected_argument", ["extra"], 2, "extra"),
    ("export", "not_a_run", [], 1, "has no config.json"),
    ("sweep", "missing_config_file", ["--config={tmp}/nope.py",
                                      "--axes=algo=bp"], 2, "nope.py"),
    ("sweep", "bad_axes", ["--axes=algo"], 2, "'algo'"),
    ("sweep", "best_over_not_an_axis", ["--axes=algo=bp",
                                        "--best_over=lr_mult"], 2, "lr_mult"),
]

# Runs one binary's rows in one process (each process mostly imports
# TensorFlow): through the console scripts' launcher, main() per row with
# stderr captured; prints [{"code", "stderr"}] as JSON.
_ROWS_DRIVER = r"""
import io, json, logging as std_logging, sys
import tfbio_launcher
binary, rows = sys.argv[1], json.loads(sys.argv[2])
module = tfbio_launcher.load(binary, argv=[])
from absl import flags, logging
handler = logging.get_absl_handler().python_handler
results, real_stderr = [], sys.stderr
for argv in rows:
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith("config.")]:
    delattr(flags.FLAGS, name)  # ml_collections' per-field flags.
  root = std_logging.getLogger()  # Only absl's handler (no basicConfig).
  root.handlers = [h for h in root.handlers
                   if isinstance(h, logging.ABSLHandler)]
  buffer = io.StringIO()
  sys.stderr = handler.stream = buffer
  sys.argv = ["tfbio-" + binary] + argv
  try:
    module.run()
    code = 0
  except SystemExit as e:
    code = e.code
  finally:
    sys.stderr = handler.stream = real_stderr
  results.append({"code": code, "stderr": buffer.getvalue()})
print(json.dumps(results))
"""


def _prepare_bad_inputs(tmp_path, tiny_config):
  """The rows' files; returns {(binary, case): argv}."""
  tmp = str(tmp_path)
  images = tmp_path / "images" / "train" / "cat"
  images.mkdir(parents=True)
  (images / "bad.jpg").write_text("not an image")
  (tmp_path / "coco").mkdir()
  (tmp_path / "coco" / "annotations_train.json").write_text('{"images": [')
  config = run_lib.load_config(tiny_config)
  for case, edit in (("no_checkpoint", {}), ("corrupt_coco_json", {
      "model.name": "retinanet_resnet18", "data.name": "coco",
      "data.data_dir": f"{tmp}/coco", "data.image_size": 64})):
    run = tmp_path / f"eval_{case}"
    run.mkdir()
    for key, value in edit.items():
      run_lib.set_value(config, key, value)
    (run / "config.json").write_text(config_lib.to_json(config))
  for binary in ("eval", "export"):
    (tmp_path / f"{binary}_not_a_run").mkdir()
  open(tmp_path / "train_workdir_is_a_file", "w").close()
  os.makedirs(tmp_path / "train_workdir_locked")
  with open(tmp_path / "train_workdir_locked" / ".lock", "w") as f:
    f.write(f"{os.getpid()}\n")
  readonly = tmp_path / "readonly"
  readonly.mkdir()
  readonly.chmod(0o555)
  # root ignores permissions; sysfs refuses even root.
  readonly_wd = (str(readonly / "run") if not os.access(readonly, os.W_OK)
                 else "/sys/tfbio_readonly_test_run")
  argvs = {}
  for binary, case, args, _, _ in BAD_INPUTS:
    wd = (readonly_wd if case == "read_only_workdir"
          else f"{tmp}/{binary}_{case}")
    fill = lambda text, wd=wd: text.format(cfg=tiny_config, tmp=tmp, wd=wd)
    args = [fill(a) for a in args]
    if binary == "train":
      config = tiny_config + (":bogus=1" if case == "config_arg_typo" else "")
      argv = [f"--config={config}", *args, f"--workdir={wd}"]
      if case == "missing_config_file":
        argv = [*args, f"--workdir={wd}"]
    elif binary == "sweep":
      argv = ([f"--config={tiny_config}"] if case != "missing_config_file"
              else []) + args + [f"--workdir={wd}"]
    else:
      argv = args + ([f"--workdir={wd}"] if case != "no_workdir_flag" else [])
    argvs[(binary, case)] = argv
  return argvs, readonly_wd


def _tree(root):
  return sorted(os.path.relpath(os.path.join(d, n), root)
                for d, dirs, files in os.walk(root) for n in dirs + files)


_LOG_LINE = re.compile(r"^I\d{4} ")  # an absl INFO record


def test_bad_input_is_one_line_nonzero_and_writes_nothing(tiny_config,
                                                          tmp_path):
  argvs, readonly_wd = _prepare_bad_inputs(tmp_path, tiny_config)
  before = _tree(tmp_path)
  env = {k: v for k, v in _env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  procs = {}
  for binary in ("train", "eval", "export", "sweep"):
    rows = [argvs[(b, case)] for b, case, *_ in BAD_INPUTS if b == binary]
    procs[binary] = subprocess.Popen(
        [sys.executable, "-c", _ROWS_DRIVER, binary, json.dumps(rows)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  results = {}
  for binary, proc in procs.items():
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (binary, err[-3000:])
    # The launcher drops TensorFlow's start-up banner (TF_CPP_MIN_LOG_LEVEL
    # unset here).
    for banner in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard"):
      assert banner not in err, (binary, banner, err[-2000:])
    cases = [case for b, case, *_ in BAD_INPUTS if b == binary]
    results.update(zip([(binary, c) for c in cases], json.loads(out)))
  tmp = str(tmp_path)
  for binary, case, _, code, text in BAD_INPUTS:
    wd = readonly_wd if case == "read_only_workdir" else ""
    text = text.format(tmp=tmp, wd=wd)
    result = results[(binary, case)]
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == code, (binary, case, result)
    # One line, the last; before it at most absl INFO records (a run that
    # failed after starting).
    errors = [l for l in lines if not _LOG_LINE.match(l)]
    assert errors == lines[-1:], (binary, case, lines)
    assert lines[-1].startswith(f"tfbio-{binary}: error: "), (binary, case)
    assert text in lines[-1], (binary, case, lines[-1])
    if code == 2:  # A usage error is reported before anything runs.
      assert len(lines) == 1, (binary, case, lines)
  assert _tree(tmp_path) == before  # Nothing written, nothing removed.
  assert not os.path.exists(readonly_wd)


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


def test_plot_losses_draws_classification_histories(tmp_path):
  from tfbio.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  runs = []
  for name in ("bp", "fa"):
    d = tmp_path / name
    d.mkdir()
    workdir_lib.write_history(str(d), [
        {"epoch": e, "step": 10 * e, "lr": 0.1, "train_loss": 1.0 / e,
         "train_error": 30.0 / e, "eval_error": 35.0 / e} for e in (1, 2, 3)])
    runs.append(f"{name.upper()}={d}")
  out = tmp_path / "losses.png"
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, os.path.join(root, "tools", "plot_losses.py"),
       f"--runs={','.join(runs)}", f"--out={out}"], capture_output=True,
      text=True, env=_env(), timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert out.stat().st_size > 1000
