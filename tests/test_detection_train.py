"""RetinaNet through the training loop: losses logged, COCO eval, export, Fig. 2."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tfbio.experiments import search
from tfbio.train import detection
from tfbio.train import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config_module():
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.join(ROOT, "configs", "xiao2018_coco_retinanet.py")
  spec = importlib.util.spec_from_file_location("retina_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_retinanet_smoke_trains_evaluates_exports_and_plots(tmp_path):
  shapes = str(tmp_path / "shapes")
  for split, n in (("train", 8), ("val", 4)):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools",
                                                 "make_shapes_coco.py"),
                    f"--out={shapes}", f"--split={split}",
                    f"--num_images={n}", "--image_size=64"], check=True,
                   capture_output=True, timeout=120)
  config_file = os.path.join(ROOT, "configs", "xiao2018_coco_retinanet.py")
  config = _config_module().get_config("smoke=1,algo=ss_lastbp")
  assert run.kind(config) == "detection"
  assert run.trainer_class(config) is detection.DetectionTrainer
  # A detection sweep (in this process) runs to its results table, ranked
  # by eval_AP (higher is better).
  sweep_dir = str(tmp_path / "sweep")
  rows, table = search.sweep(
      f"{config_file}:smoke=1", sweep_dir,
      axes=search.parse_axes("algo=ss_lastbp"), workers=0,
      overrides=[f"data.data_dir={shapes}", "data.image_size=64",
                 "batch_size=2", "steps_per_epoch=2", "epochs=1",
                 "log_every_steps=1", "data.max_eval_examples=4"])
  assert [(r["status"], r["primary_metric"]) for r in rows] == [
      ("ok", "eval_AP")]
  assert "| algo | eval_AP |" in table and "higher is better" in table
  assert "| ss_lastbp | " in table
  workdir = os.path.join(sweep_dir, "algo=ss_lastbp")
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  assert metrics["primary_metric"] == "eval_AP"
  assert metrics["primary_mode"] == "max"
  assert metrics["steps"] == 2 and 0.0 <= metrics["final_eval_AP"] <= 1.0
  for key in ("final_train_box_loss", "final_train_focal_loss",
              "final_train_loss", "final_eval_AP50", "best_eval_AP"):
    assert np.isfinite(metrics[key]), key
  steps = open(os.path.join(workdir, "steps.csv")).read().split()
  assert steps[0] == "step,loss,box_loss,focal_loss" and len(steps) == 3
  history = open(os.path.join(workdir, "history.csv")).read()
  assert "train_focal_loss" in history and "eval_AP" in history

  # eval and export restore a detection run.
  trainer = run.restore(workdir)
  # xiao2018 §3.2: only the last conv of both subnets on BP.
  on_bp = {l.name for l in trainer.model.layers
           if getattr(l, "feedback", None) is not None
           and l.feedback.name == "bp"}
  assert on_bp == {"class_output", "box_output"}
  result, path = run.evaluate(workdir)
  assert path.endswith("eval_val.json") and result["step"] == 2
  assert result["eval_AP"] == metrics["final_eval_AP"]
  run.export(workdir)
  served = tf.saved_model.load(os.path.join(workdir, "export", "saved_model"))
  out = served.serve(tf.zeros((2, 64, 64, 3)))
  assert set(out) == {"boxes", "scores", "classes", "num_detections"}
  assert out["boxes"].shape == (2, 100, 4)

  png = str(tmp_path / "fig2.png")
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "plot_losses.py"),
       f"--runs=SS+last BP={workdir},again={workdir}", f"--out={png}"],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.getsize(png) > 1000
  from tfbio.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  assert workdir_lib.read_steps(workdir)["step"] == [1.0, 2.0]
  json.dumps(metrics)  # metrics.json is plain JSON
