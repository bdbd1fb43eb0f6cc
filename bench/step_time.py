r"""Training-step time of every feedback algorithm relative to back-propagation.

Measures one full training step -- forward, backward (with the algorithm's
feedback kernels) and the SGD-with-momentum update -- compiled as a
``tf.function`` (graph mode), with XLA on (``jit_compile=True``) and off, on
fixed random data at batch size 64, for

* ``liao2016_mnist``: ``tfbio.models.liao2016_mnist()``, 28x28x1, 10 classes;
* ``resnet18_cifar``: ``tfbio.models.resnet18(stem="cifar",
  input_shape=(32, 32, 3), num_classes=10)``;
* ``resnet18_224`` (not a default; a GPU model): ``tfbio.models.resnet18(
  input_shape=(224, 224, 3), num_classes=10)``, the ImageNet stem.

``--mixed_precision=mixed_float16|mixed_bfloat16`` sets the Keras dtype
policy of every model (float32 variables; the loss in float32; dynamic loss
scaling for float16).

Every algorithm gets its own model (same seed, so the same initial ``W``),
optimizer and compiled step. After ``--warmup`` untimed steps each (tracing,
XLA compilation), the timing runs in ``--rounds`` rounds; each round times
``--steps`` consecutive steps of every algorithm, in an order rotated from
round to round, so that machine noise hits all algorithms alike. A round's
figure is its wall time divided by ``--steps`` (the loss is fetched at the
end, which waits for the device); the reported figure is the median over
rounds, and the ratio is that median over ``bp``'s. ``*_p`` variants use
``flip_prob=0.5``. The target: every algorithm at most 1.05x ``bp``.

Run (the full default measurement; use a quiet machine):

    .venv/bin/python bench/step_time.py
    .venv/bin/python bench/step_time.py --models=resnet18_cifar --xla=on \
        --algorithms=bp,ss,fa,urfb --rounds=20 --out=/tmp/step_time.md
    .venv/bin/python bench/step_time.py --steps=5 --rounds=1 --warmup=2  # smoke

Prints a markdown table (model, xla, algorithm, median ms/step, ratio to bp);
``--out`` also writes it to a file: JSON (every round's figure included) if
the name ends in ``.json``, else markdown.
"""

import json
import statistics
import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS

# Registry models (their own input shape, 10 classes), Keras models converted
# with tfbio.convert (every layer type: see _keras_model) and the defaults.
REGISTRY = ("liao2016_mnist", "resnet18_cifar", "resnet18_224", "resnet20",
            "le_net_mnist", "le_net_cifar", "vit_tiny")
KERAS = ("mobilenetv2", "conv1d", "conv3d", "transpose", "separable")
MODELS = REGISTRY + KERAS
DEFAULT_MODELS = ("liao2016_mnist", "resnet18_cifar")
FLIP_PROB = 0.5

flags.DEFINE_list("models", list(DEFAULT_MODELS),
                  f"Models to time, from {MODELS}.")
flags.DEFINE_list("algorithms", None,
                  "Feedback algorithms to time (default: all of "
                  "tfbio.feedback.names()); bp is always added as reference.")
flags.DEFINE_enum("xla", "both", ["both", "on", "off"],
                  "Time with jit_compile=True ('on'), False ('off') or both.")
flags.DEFINE_integer("steps", 10, "Timed training steps per algorithm per "
                     "round.", lower_bound=1)
flags.DEFINE_integer("rounds", 10, "Rounds; the median over rounds is "
                     "reported.", lower_bound=1)
flags.DEFINE_integer("warmup", 5, "Untimed steps per algorithm before timing "
                     "(tracing and compilation happen here).", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Minibatch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "SGD learning rate.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and the random data.")
flags.DEFINE_string("out", None, "Optional output file: .json for JSON, "
                    "anything else for the markdown table.")
flags.DEFINE_enum("mixed_precision", None, ["mixed_float16", "mixed_bfloat16"],
                  "Keras dtype policy of the models (default float32); "
                  "mixed_float16 adds dynamic loss scaling to the step.")


# -- models and steps --------------------------------------------------------


def _keras_model(name):
  """A Keras model (before conversion) exercising tfbio's other layer types.

  ``mobilenetv2``: keras.applications.MobileNetV2 at 32x32 (Conv2D,
  DepthwiseConv2D, Dense); ``conv1d``: Conv1D + DepthwiseConv1D on
  (64, 16) sequences; ``conv3d``: Conv3D on 8x16x16x3 volumes;
  ``transpose``: Conv2D down, Conv2DTranspose up (and Conv1DTranspose /
  Conv3DTranspose are the same op family); ``separable``: SeparableConv2D
  (both kernels) and an EinsumDense head.
  """
  import keras  # pylint: disable=g-import-not-at-top

  L = keras.layers  # pylint: disable=invalid-name
  if name == "mobilenetv2":
    shape = (32, 32, 3)
    return keras.applications.MobileNetV2(
        weights=None, input_shape=shape, classes=10,
        classifier_activation=None), shape
  if name == "conv1d":
    shape = (64, 16)
    layers = [L.Conv1D(64, 5, padding="same", activation="relu"),
              L.DepthwiseConv1D(5, padding="same", activation="relu"),
              L.Conv1D(64, 3, strides=2, activation="relu"),
              L.GlobalAveragePooling1D(), L.Dense(10)]
  elif name == "conv3d":
    shape = (8, 16, 16, 3)
    layers = [L.Conv3D(32, 3, padding="same", activation="relu"),
              L.Conv3D(32, 3, strides=2, activation="relu"),
              L.GlobalAveragePooling3D(), L.Dense(10)]
  elif name == "transpose":
    shape = (32, 32, 3)
    layers = [L.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
              L.Conv2DTranspose(32, 3, strides=2, padding="same",
                                activation="relu"),
              L.Conv2D(16, 3, strides=2, activation="relu"),
              L.GlobalAveragePooling2D(), L.Dense(10)]
  elif name == "separable":
    shape = (32, 32, 3)
    layers = [L.SeparableConv2D(64, 3, padding="same", activation="relu"),
              L.SeparableConv2D(64, 3, strides=2, activation="relu"),
              L.GlobalAveragePooling2D(),
              L.EinsumDense("ab,bc->ac", output_shape=10, bias_axes="c")]
  else:
    raise ValueError(f"Unknown model {name!r}; known: {MODELS}")
  return keras.Sequential([keras.Input(shape)] + layers), shape


def build_model(model_name, algorithm):
  """(model, input shape) for a model name of MODELS."""
  import tfbio  # pylint: disable=g-import-not-at-top
  from tfbio import models  # pylint: disable=g-import-not-at-top

  if model_name == "resnet18_cifar":
    shape = (32, 32, 3)
    return models.resnet18(num_classes=10, input_shape=shape, stem="cifar",
                           feedback=algorithm), shape
  if model_name == "resnet18_224":  # ImageNet stem and size, 10 classes
    shape = (224, 224, 3)
    return models.resnet18(num_classes=10, input_shape=shape,
                           feedback=algorithm), shape
  if model_name in REGISTRY:
    shape = tuple(models.model_info(model_name).input_shape)
    return models.create_model(model_name, num_classes=10, input_shape=shape,
                               feedback=algorithm), shape
  base, shape = _keras_model(model_name)
  return tfbio.convert(base, algorithm, strict=True), shape


def algorithm_spec(name):
  """The algorithm for a name; ``*_p`` variants get ``flip_prob=0.5``."""
  import tfbio  # pylint: disable=g-import-not-at-top

  params = {"flip_prob": FLIP_PROB} if name.endswith("_p") else {}
  return tfbio.feedback.get(name, **params)


def make_optimizer():
  """The benchmark's optimizer: SGD (``--learning_rate``, ``--momentum``)."""
  import keras  # pylint: disable=g-import-not-at-top

  return keras.optimizers.SGD(FLAGS.learning_rate, momentum=FLAGS.momentum)


def random_batch(data_shape):
  """A fixed random batch (x, y): ``--batch_size`` standard-normal inputs of
  ``data_shape`` and 10-class labels, from ``--seed``."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(FLAGS.seed)
  x = tf.constant(rng.standard_normal((FLAGS.batch_size,) + data_shape),
                  tf.float32)
  y = tf.constant(rng.integers(0, 10, FLAGS.batch_size), tf.int32)
  return x, y


def make_train_step(model, jit_compile):
  """A compiled step: forward, backward, SGD-momentum apply; returns loss."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  optimizer = make_optimizer()
  scaled = FLAGS.mixed_precision == "mixed_float16"
  if scaled:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  optimizer.build(model.trainable_variables)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function(jit_compile=jit_compile)
  def train_step(x, y):
    with tf.GradientTape() as tape:
      logits = tf.cast(model(x, training=True), tf.float32)
      loss = loss_fn(y, logits)
      scaled_loss = optimizer.scale_loss(loss) if scaled else loss
    grads = tape.gradient(scaled_loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return loss

  return train_step


def run_steps(step, x, y, n):
  """Runs ``n`` steps and waits for the last; returns (seconds, last loss)."""
  start = time.perf_counter()
  for _ in range(n):
    loss = step(x, y)
  loss = float(loss)  # Blocks until the device has finished.
  return time.perf_counter() - start, loss


# -- measurement -------------------------------------------------------------


def time_config(model_name, algorithms, jit_compile):
  """Per-round ms/step of each algorithm on one (model, xla) configuration."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  xla = "on" if jit_compile else "off"
  steps, data_shape = {}, None
  for name in algorithms:
    keras.utils.clear_session()
    keras.utils.set_random_seed(FLAGS.seed)
    model, data_shape = build_model(model_name, algorithm_spec(name))
    steps[name] = make_train_step(model, jit_compile)

  x, y = random_batch(data_shape)

  for name in algorithms:
    seconds, loss = run_steps(steps[name], x, y, FLAGS.warmup)
    logging.info("%s xla=%s %s: warmup %d steps in %.1f s (loss %.4g)",
                 model_name, xla, name, FLAGS.warmup, seconds, loss)

  per_round = {name: [] for name in algorithms}
  last_loss = {}
  for r in range(FLAGS.rounds):
    shift = r % len(algorithms)
    for name in algorithms[shift:] + algorithms[:shift]:
      seconds, last_loss[name] = run_steps(steps[name], x, y, FLAGS.steps)
      per_round[name].append(1000.0 * seconds / FLAGS.steps)
    logging.info("%s xla=%s round %d/%d: %s", model_name, xla, r + 1,
                 FLAGS.rounds, ", ".join(
                     f"{n} {per_round[n][-1]:.2f}" for n in algorithms))
  for name, loss in last_loss.items():
    if not np.isfinite(loss):
      logging.warning("%s xla=%s %s: non-finite loss %s after training "
                      "(timings still count)", model_name, xla, name, loss)
  del steps
  return per_round


def summarize(results):
  """Rows (model, xla, algorithm, median ms, ratio to bp) from raw rounds."""
  rows = []
  for (model_name, xla), per_round in results.items():
    medians = {n: statistics.median(t) for n, t in per_round.items()}
    for name, median in medians.items():
      rows.append({
          "model": model_name, "xla": xla, "algorithm": name,
          "median_ms": median, "ratio_to_bp": median / medians["bp"],
          "rounds_ms": per_round[name],
      })
  return rows


def markdown_table(rows):
  lines = ["| model | xla | algorithm | median ms/step | ratio to bp |",
           "|---|---|---|---:|---:|"]
  for row in rows:
    flag = "" if row["ratio_to_bp"] <= 1.05 else " (> 1.05)"
    lines.append(f"| {row['model']} | {row['xla']} | {row['algorithm']} | "
                 f"{row['median_ms']:.2f} | {row['ratio_to_bp']:.3f}{flag} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top

  unknown = [m for m in FLAGS.models if m not in MODELS]
  if unknown:
    raise app.UsageError(f"Unknown models {unknown}; known: {MODELS}")
  algorithms = list(FLAGS.algorithms or tfbio.feedback.names())
  for name in algorithms:
    algorithm_spec(name)  # Fails early on an unknown name.
  algorithms = ["bp"] + [a for a in algorithms if a != "bp"]
  xla_modes = {"both": [False, True], "on": [True], "off": [False]}[FLAGS.xla]
  if FLAGS.mixed_precision:
    import keras  # pylint: disable=g-import-not-at-top
    keras.config.set_dtype_policy(FLAGS.mixed_precision)
  logging.info("TensorFlow %s, devices %s, policy %s", tf.__version__,
               [d.name for d in tf.config.list_logical_devices()],
               FLAGS.mixed_precision or "float32")

  results = {}
  for model_name in FLAGS.models:
    for jit_compile in xla_modes:
      logging.info("Timing %s, xla=%s, %d algorithms", model_name,
                   jit_compile, len(algorithms))
      results[(model_name, "on" if jit_compile else "off")] = time_config(
          model_name, algorithms, jit_compile)

  rows = summarize(results)
  table = markdown_table(rows)
  print(table)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      if FLAGS.out.endswith(".json"):
        json.dump({"flags": {k: FLAGS[k].value for k in (
            "steps", "rounds", "warmup", "batch_size", "learning_rate",
            "momentum", "seed")}, "rows": rows}, f, indent=1)
      else:
        f.write(table + "\n")
    logging.info("Wrote %s", FLAGS.out)


if __name__ == "__main__":
  app.run(main)
