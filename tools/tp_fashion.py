#!/usr/bin/env python3
r"""BP vs DTP vs SDTP (parallel) on Fashion-MNIST with a tanh FC network.

bartunov2018 §3.1 compares backprop with difference target propagation (DTP)
and simplified DTP (SDTP) on MNIST with fully-connected tanh networks (its
Table 1). This script runs the same three methods, a few epochs each on this
machine, on Fashion-MNIST (the IDX files of the Debian package
``dataset-fashion-mnist``), and prints / writes a markdown table of the final
train and test error (both measured with ``evaluate`` after training).

    .venv/bin/python tools/tp_fashion.py --out=/tmp/tp_fashion.md
    .venv/bin/python tools/tp_fashion.py --network=bartunov2018_mnist_fc

Hyper-parameters (not searched): Adam for BP and for the forward weights of
DTP / SDTP (same learning rate), a second Adam for the inverses, both at
3e-4, the top of bartunov2018 Table 4's range [1e-5, 3e-4] (the runs are a
few epochs long, not hundreds); α (DTP's penultimate step) 0.1 and σ
(inverse-training noise) 0.1, inside Table 4's ranges. On 2 CPU cores the
default 10 epochs of all three methods take about 5 minutes.
"""

import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", 10, "Training epochs per method.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist/",
                    "Directory with the Fashion-MNIST IDX files.")
flags.DEFINE_string("out", None, "Markdown file for the results table.")
flags.DEFINE_enum("network", "fc3x256", ["fc3x256", "bartunov2018_mnist_fc"],
                  "fc3x256: 3 tanh Dense layers of 256 units; "
                  "bartunov2018_mnist_fc: 7 x 240 (bartunov2018 §3.1).")
flags.DEFINE_list("methods", ["bp", "dtp", "sdtp"], "Methods to run.")
flags.DEFINE_integer("batch_size", 128, "Minibatch size.")
flags.DEFINE_float("learning_rate", 3e-4,
                   "Adam learning rate of BP and of TP's forward weights.")
flags.DEFINE_float("inverse_learning_rate", 3e-4,
                   "Adam learning rate of the TP inverses.")
flags.DEFINE_float("step_size", 0.1, "DTP's α (penultimate target step).")
flags.DEFINE_float("noise_std", 0.1, "σ of the inverse-training noise.")
flags.DEFINE_bool("bp_angle", True,
                  "Log the angle between TP updates and BP gradients.")
flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, noise).")


def build_network(name, seed):
  """A fresh tanh FC network on 28x28x1 images (logits out)."""
  import keras  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top
  from tfbio import models  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(seed)
  if name == "bartunov2018_mnist_fc":
    return models.create_model(name, input_shape=(28, 28, 1))
  layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(name="flatten")]
  layers += [tfbio.layers.Dense(256, activation="tanh", name=f"fc{i}")
             for i in (1, 2, 3)]
  layers.append(tfbio.layers.Dense(10, name="output"))
  return keras.Sequential(layers, name=name)


def run(method, train, test, train_eval):
  """Trains one method; returns a dict of results."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfbio import tp  # pylint: disable=g-import-not-at-top

  net = build_network(FLAGS.network, FLAGS.seed)
  if method == "bp":
    model = net
    model.compile(keras.optimizers.Adam(FLAGS.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
  else:
    model = tp.TargetPropModel(
        net, variant=method, schedule="parallel",
        inverse_training="denoising", noise_std=FLAGS.noise_std,
        step_size=FLAGS.step_size,
        forward_optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        inverse_optimizer=keras.optimizers.Adam(FLAGS.inverse_learning_rate),
        bp_angle=FLAGS.bp_angle, seed=FLAGS.seed)
    model.compile(metrics=["accuracy"])
  start = time.time()
  history = model.fit(train, epochs=FLAGS.epochs, validation_data=test,
                      verbose=0)
  seconds = time.time() - start
  for epoch in range(FLAGS.epochs):
    logs = {k: round(float(v[epoch]), 4) for k, v in history.history.items()}
    logging.info("%s epoch %d: %s", method, epoch + 1, logs)
  result = {
      "method": method,
      "train": 1.0 - model.evaluate(train_eval, verbose=0,
                                    return_dict=True)["accuracy"],
      "test": 1.0 - model.evaluate(test, verbose=0,
                                   return_dict=True)["accuracy"],
      "seconds": seconds,
  }
  angles = [v[-1] for k, v in history.history.items()
            if k.startswith("bp_angle/") and not k.endswith("/output")]
  result["angle"] = float(np.mean(angles)) if angles else None
  result["angle_fc1"] = (float(history.history["bp_angle/fc1"][-1])
                         if "bp_angle/fc1" in history.history else None)
  return result


def table(results):
  lines = [
      f"Fashion-MNIST, {FLAGS.network} (tanh), {FLAGS.epochs} epochs, batch "
      f"{FLAGS.batch_size}, Adam lr {FLAGS.learning_rate:g} (inverses "
      f"{FLAGS.inverse_learning_rate:g}), α {FLAGS.step_size:g}, σ "
      f"{FLAGS.noise_std:g}, parallel schedule, denoising inverses, seed "
      f"{FLAGS.seed}.",
      "",
      "| method | train error % | test error % | BP angle fc1 ° | "
      "BP angle, mean of hidden layers ° | train time s |",
      "|---|---:|---:|---:|---:|---:|",
  ]
  names = {"bp": "Backprop", "dtp": "DTP, parallel", "sdtp": "SDTP, parallel"}
  def fmt(value):
    return "—" if value is None else f"{value:.1f}"

  for r in results:
    lines.append(f"| {names[r['method']]} | {100 * r['train']:.2f} | "
                 f"{100 * r['test']:.2f} | {fmt(r['angle_fc1'])} | "
                 f"{fmt(r['angle'])} | {r['seconds']:.0f} |")
  lines += [
      "",
      "Errors from `evaluate` after the last epoch (train: the 60,000 "
      "training images). BP angle: degrees between a layer's TP update "
      "(gradient of its local loss) and the backprop gradient, averaged "
      "over the last epoch's steps (a diagnostic; DTP's penultimate layer is "
      "~0 by construction).",
  ]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  from tfbio import data  # pylint: disable=g-import-not-at-top

  for method in FLAGS.methods:
    if method not in ("bp", "dtp", "sdtp"):
      raise ValueError(f"methods must be bp, dtp or sdtp. Received: "
                       f"method={method!r}")
  common = dict(batch_size=FLAGS.batch_size, data_dir=FLAGS.data_dir)
  train = data.get_dataset("fashion_mnist_idx", "train", shuffle=True,
                           seed=FLAGS.seed, **common)
  train_eval = data.get_dataset("fashion_mnist_idx", "train", shuffle=False,
                                **common)
  test = data.get_dataset("fashion_mnist_idx", "test", shuffle=False,
                          **common)
  results = []
  for method in FLAGS.methods:
    results.append(run(method, train, test, train_eval))
    logging.info("%s: %s", method, results[-1])
  text = table(results)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text)
    logging.info("Wrote %s", FLAGS.out)


if __name__ == "__main__":
  app.run(main)
