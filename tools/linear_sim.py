#!/usr/bin/env python3
r"""amit2019 §5.1: updated random feedback in a deep linear network (Fig. 12).

Runs ``tfbio.experiments.linear_sim`` (its docstring defines the network,
the settings and the defaults) and writes the Fig. 12-like PNG and the
table of iterations to the target error::

    .venv/bin/python tools/linear_sim.py                  # ~15 s on 2 cores
    .venv/bin/python tools/linear_sim.py --seeds=0 --iterations=300 \
        --learning_rate=0.03 \
        --out_dir=/tmp/linear_sim_short
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from tfbio.experiments.linear_sim import plot
from tfbio.experiments.linear_sim import run
from tfbio.experiments.linear_sim import table

FLAGS = flags.FLAGS
flags.DEFINE_integer("iterations", 1000, "Full-batch gradient steps per run.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "One run per seed (Y, R(0), BP "
                  "init).")
flags.DEFINE_list("epsilons", ["0", "0.25", "0.5", "1"],
                  "Feedback update scales ε (0 = FRFB, 1 = URFB).")
flags.DEFINE_float("learning_rate", 0.01, "Gradient-descent step η.")
flags.DEFINE_float("feedback_std", 0.05, "Standard deviation of R_l(0).")
flags.DEFINE_float("init_std", 0.05, "Standard deviation of W_l(0) for BP.")
flags.DEFINE_bool("bp", True, "Also run back-propagation from a random init.")
flags.DEFINE_float("target_error", 0.01, "Target error for the table, as a "
                   "fraction of ||Y||² (the error of the zero network).")
flags.DEFINE_string("out_dir", "/tmp/linear_sim", "Where to write the PNG.")


def main(argv):
  del argv
  try:
    seeds = [int(s) for s in FLAGS.seeds]
    epsilons = [float(e) for e in FLAGS.epsilons]
  except ValueError as e:
    raise SystemExit(f"linear_sim: --seeds / --epsilons: {e}") from None
  if not 0.0 < FLAGS.target_error < 1.0:
    raise SystemExit(f"linear_sim: --target_error must be in (0, 1). "
                     f"Received: --target_error={FLAGS.target_error}")
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  start = time.time()
  try:
    curves = run(epsilons, FLAGS.iterations, seeds, FLAGS.learning_rate,
                 feedback_std=FLAGS.feedback_std, init_std=FLAGS.init_std,
                 bp=FLAGS.bp, target_error=FLAGS.target_error)
  except ValueError as e:
    raise SystemExit(f"linear_sim: {e}") from None
  path = plot(curves, os.path.join(FLAGS.out_dir, "linear_sim.png"))
  logging.info("wrote %s (%.1f s in all)", path, time.time() - start)
  print(f"\namit2019 §5.1 linear network 40-100-100-10, X = I_40, "
        f"Y ~ N(0, 0.2²), {FLAGS.iterations} full-batch GD iterations, "
        f"η = {FLAGS.learning_rate}, R(0) ~ N(0, {FLAGS.feedback_std}²), "
        f"BP W(0) ~ N(0, {FLAGS.init_std}²), seeds {seeds}; error = "
        f"||Y - f(X)||² (loss = error / 2)\n")
  print(table(curves))
  print(f"\nfigure: {path}")


if __name__ == "__main__":
  app.run(main)
