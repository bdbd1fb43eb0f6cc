"""RetinaNet through the training loop: losses logged, COCO eval, export, Fig. 2."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tfbio.train import detection

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
  config = _config_module().get_config("smoke=1,algo=ss_lastbp")
  config.data.data_dir = shapes
  config.data.image_size = 64
  config.batch_size = 2
  config.steps_per_epoch = 2
  config.epochs = 1
  config.log_every_steps = 1
  config.data.max_eval_examples = 4
  assert detection.trainer_class(config) is detection.DetectionTrainer
  workdir = str(tmp_path / "run")
  trainer = detection.DetectionTrainer(config, workdir)
  metrics = trainer.train()
  # xiao2018 §3.2: only the last conv of both subnets on BP.
  on_bp = {l.name for l in trainer.model.layers
           if getattr(l, "feedback", None) is not None
           and l.feedback.name == "bp"}
  assert on_bp == {"class_output", "box_output"}
  assert metrics["steps"] == 2 and 0.0 <= metrics["final_eval_AP"] <= 1.0
  for key in ("final_train_box_loss", "final_train_focal_loss",
              "final_train_loss", "final_eval_AP50", "best_eval_AP"):
    assert np.isfinite(metrics[key]), key
  steps = open(os.path.join(workdir, "steps.csv")).read().split()
  assert steps[0] == "step,loss,box_loss,focal_loss" and len(steps) == 3
  history = open(os.path.join(workdir, "history.csv")).read()
  assert "train_focal_loss" in history and "eval_AP" in history

  from tfbio.train import export  # pylint: disable=g-import-not-at-top
  export.export_model(trainer.model, workdir)
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
  from tfbio import analysis  # pylint: disable=g-import-not-at-top
  assert analysis.read_steps_csv(workdir)["step"] == [1.0, 2.0]
  json.dumps(metrics)  # metrics.json is plain JSON
