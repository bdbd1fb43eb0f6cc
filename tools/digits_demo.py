#!/usr/bin/env python3
r"""Main offline job: BP vs sign-symmetry vs feedback alignment on digits.

Trains the same small CNN (two tfbio Conv2D layers and two tfbio Dense layers)
once per feedback algorithm on scikit-learn's bundled 8x8 digits (1,797
images; no download), with `model.fit`, and prints a comparison table.

    .venv/bin/python tools/digits_demo.py                      # bp, ss, fa
    .venv/bin/python tools/digits_demo.py --algorithms=bp,ss,urfb,brsf \
        --epochs=30 --seed=1

Initializers follow xiao2018 (He normal fan-out for conv, U(-1/sqrt(n_in),
1/sqrt(n_in)) for dense), so `ss` and `fa` use the scales of
docs/algorithms.md §1.
"""

import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_list("algorithms", ["bp", "ss", "fa"],
                  "Feedback algorithms to compare (names from "
                  "tfbio.feedback.names()).")
flags.DEFINE_integer("epochs", 20, "Training epochs per algorithm.")
flags.DEFINE_integer("batch_size", 32, "Minibatch size.")
flags.DEFINE_float("learning_rate", 0.05, "SGD learning rate (momentum 0.9).")
flags.DEFINE_integer("seed", 0, "Random seed (data split and weights).")


def load_digits(seed):
  """(x_train, y_train, x_test, y_test): 8x8x1 images in [0, 1], 75/25 split."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  x = (digits.images / 16.0).astype("float32")[..., None]
  y = digits.target.astype("int32")
  order = np.random.RandomState(seed).permutation(len(x))
  x, y = x[order], y[order]
  n_train = int(0.75 * len(x))
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def build_model(feedback):
  import keras  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top

  conv_init = keras.initializers.VarianceScaling(2.0, "fan_out",
                                                 "untruncated_normal")
  dense_init = keras.initializers.VarianceScaling(1.0 / 3, "fan_in", "uniform")
  inputs = keras.Input((8, 8, 1))
  x = tfbio.layers.Conv2D(16, 3, padding="same", activation="relu",
                          kernel_initializer=conv_init, feedback=feedback,
                          name="conv1")(inputs)
  x = tfbio.layers.Conv2D(32, 3, strides=2, padding="same",
                          activation="relu", kernel_initializer=conv_init,
                          feedback=feedback, name="conv2")(x)
  x = keras.layers.Flatten()(x)
  x = tfbio.layers.Dense(64, activation="relu", kernel_initializer=dense_init,
                         feedback=feedback, name="fc1")(x)
  outputs = tfbio.layers.Dense(10, kernel_initializer=dense_init,
                               feedback=feedback, name="predictions")(x)
  return keras.Model(inputs, outputs, name=f"digits_cnn_{feedback}")


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top

  for name in FLAGS.algorithms:  # Fail fast, before any training.
    try:
      tfbio.feedback.get(name)
    except ValueError as e:
      raise SystemExit(f"digits_demo: --algorithms: {e}") from None
  if FLAGS.epochs <= 0 or FLAGS.batch_size <= 0:
    raise SystemExit(f"digits_demo: --epochs and --batch_size must be positive. "
                         f"Received: --epochs={FLAGS.epochs} "
                         f"--batch_size={FLAGS.batch_size}")
  x_train, y_train, x_test, y_test = load_digits(FLAGS.seed)
  logging.info("digits: %d train / %d test images", len(x_train), len(x_test))
  rows = []
  for name in FLAGS.algorithms:
    keras.utils.set_random_seed(FLAGS.seed)
    model = build_model(name)
    model.compile(
        optimizer=keras.optimizers.SGD(FLAGS.learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    logging.info("training %s for %d epochs", name, FLAGS.epochs)
    start = time.time()
    history = model.fit(x_train, y_train, batch_size=FLAGS.batch_size,
                        epochs=FLAGS.epochs, verbose=0)
    seconds = time.time() - start
    _, train_acc = model.evaluate(x_train, y_train, verbose=0)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    logging.info("%s: test accuracy %.4f (%.1f s)", name, test_acc, seconds)
    rows.append((name, history.history["loss"][-1], train_acc, test_loss,
                 test_acc, seconds))

  print(f"\nDigits (8x8, {len(x_train)} train / {len(x_test)} test), "
        f"{FLAGS.epochs} epochs, SGD lr {FLAGS.learning_rate} momentum 0.9, "
        f"seed {FLAGS.seed}\n")
  print("| feedback | final train loss | train acc | test loss | test acc | "
        "seconds |")
  print("|---|---|---|---|---|---|")
  for name, loss, train_acc, test_loss, test_acc, seconds in rows:
    print(f"| {name} | {loss:.4f} | {train_acc:.4f} | {test_loss:.4f} | "
          f"{test_acc:.4f} | {seconds:.1f} |")


if __name__ == "__main__":
  app.run(main)
