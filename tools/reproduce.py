#!/usr/bin/env python3
r"""Reproduction report: the seed papers' claims re-measured at CPU scale.

Runs a fixed list of experiments on real data that fits one CPU machine --
Fashion-MNIST (the IDX files of the Debian package ``dataset-fashion-mnist``
in ``/usr/share/datasets/fashion-mnist``, else tensorflow-datasets'
``fashion_mnist`` when it is prepared or reachable) and scikit-learn's
digits (the linear network needs no data) -- with every cell trained for
each of ``--seeds`` (three by default), and writes ``OUT/README.md`` (one
section per claim: the paper's expectation, the rule that decides the
verdict, the measured mean ± std, the verdict) plus PNG plots::

    .venv/bin/python tools/reproduce.py --out docs/results       # ~60 min
    .venv/bin/python tools/reproduce.py --out /tmp/r --only liao2016_b
    .venv/bin/python tools/reproduce.py --out docs/results --budget_minutes 20

Every run is a ``tfbio.train`` run of one of the paper configs in
``configs/`` (the same code as ``tfbio-train``) with a CPU-sized override
set (``tfbio.experiments.cells``), in ``OUT/runs/<scale>/<cell>/lr<m>/
seed<s>/``. A run recorded in the committed ``OUT/runs.csv`` (its curves in
``OUT/curves.csv``) or finished in ``OUT/runs/`` is not run again: the same
command regenerates the report from the committed records without training,
resumes an interrupted report where it stopped, and trains only what is
missing. This binary only parses flags; the engine, cells, claims (with
their rules) and report are ``tfbio.experiments``.
``--jobs`` worker processes (2 by default, one TensorFlow thread each: on
2 cores two small runs side by side beat one run on two threads) take the
runs longest-first. After ``--budget_minutes`` no new run is started; the
report is still written, claims with missing runs are marked INCOMPLETE, and
the same command later finishes them.

Scale (the same for every claim unless its section says otherwise): the
first 10,000 Fashion-MNIST training images and the first 5,000 test images
(``--train_examples`` / ``--eval_examples``), batch 100, a few epochs (per
claim), constant learning rate, no augmentation. Errors are the **final**
test error (%) of each run (not the best over epochs); a run that diverges
(NaN loss) counts as chance error (90 %) and is flagged. Where a paper picks
the best of several learning rates (liao2016: "the best of five"
multipliers), seed 0 is run at each candidate multiplier and the one with
the lowest final test error is used for the other seeds (test-set selection,
like the paper's; stated in the tables).

Verdict rules are fixed in ``tfbio/experiments/claims.py`` *before* any
run (they are printed in the report) and are never adjusted to the
outcome; "close" is liao2016's own threshold (within 3 points of the
baseline) unless stated.
"""


import os
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def _define_flags():
  """The command-line flags (only when run as a program)."""
  from tfbio.experiments import claims  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("out", "docs/results", "Output directory (report, "
                      "plots, runs.csv, curves.csv, runs/).")
  flags.DEFINE_float("budget_minutes", 60.0, "Start no new run after this "
                     "many minutes (the report is written anyway).")
  flags.DEFINE_list("only", [], "Claims to run (default: all). Known: "
                    + ", ".join(claims.CLAIM_NAMES) + ".")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every cell (>= 3 "
                    "for the report's mean ± std).")
  flags.DEFINE_integer("jobs", 2, "Worker processes (one TF thread each).",
                       lower_bound=1)
  flags.DEFINE_integer("train_examples", 10000, "Fashion-MNIST training "
                       "images used (the first N).", lower_bound=100)
  flags.DEFINE_integer("eval_examples", 5000, "Fashion-MNIST test images "
                       "used (the first N).", lower_bound=100)
  flags.DEFINE_enum("data", "auto", ["auto", "fashion", "digits"],
                    "auto: Fashion-MNIST if its IDX files are installed, else "
                    "scikit-learn's digits (an easier task; fresh offline "
                    "machines); fashion: the IDX files or "
                    "tensorflow-datasets' fashion_mnist.")
  flags.DEFINE_float("epoch_scale", 1.0, "Multiplies every claim's epochs "
                     "(smoke: e.g. 0.2; at least 1 epoch).", lower_bound=0.0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  # TensorFlow in the workers: one thread each (before they import it).
  os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
  os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from tfbio import data  # pylint: disable=g-import-not-at-top
  from tfbio.experiments import cells  # pylint: disable=g-import-not-at-top
  from tfbio.experiments import claims as claims_lib  # pylint: disable=g-import-not-at-top
  from tfbio.experiments import report  # pylint: disable=g-import-not-at-top
  from tfbio.experiments import reproduce  # pylint: disable=g-import-not-at-top

  unknown = [c for c in FLAGS.only if c not in claims_lib.CLAIM_NAMES]
  if unknown:
    sys.exit(f"reproduce: error: unknown claim(s) {unknown}; known: "
             f"{', '.join(claims_lib.CLAIM_NAMES)}")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    sys.exit(f"reproduce: error: --seeds must be integers. Received: "
             f"{FLAGS.seeds}")
  if len(set(seeds)) != len(seeds) or not seeds:
    sys.exit(f"reproduce: error: --seeds must be distinct. Received: {seeds}")
  claims = [c for c in claims_lib.default_claims()
            if not FLAGS.only or c.name in FLAGS.only]
  data_name = FLAGS.data
  if data_name == "auto":
    data_name = "fashion" if data.fashion_mnist_idx_present() else "digits"
    if data_name == "digits":
      logging.warning("Fashion-MNIST is not installed in %s (apt-get install "
                      "dataset-fashion-mnist): using scikit-learn's digits; "
                      "pass --data=fashion to use tensorflow-datasets' copy.",
                      data.FASHION_MNIST_DIR)
  options = cells.Options(
      out=FLAGS.out, data=data_name, train_examples=FLAGS.train_examples,
      eval_examples=FLAGS.eval_examples, epoch_scale=FLAGS.epoch_scale,
      jobs=FLAGS.jobs, budget_minutes=FLAGS.budget_minutes,
      repo=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  command = "tools/reproduce.py " + " ".join(sys.argv[1:])
  verdicts, minutes, missing, failed = reproduce.reproduce(
      claims, seeds, options, command)
  for name, v in verdicts.items():
    logging.info("%-20s %s", name, report.verdict_text(v))
  logging.info("wrote %s (%.1f min%s)", os.path.join(FLAGS.out, "README.md"),
               minutes, f"; {missing} runs missing" if missing else "")
  if failed:
    sys.exit(f"reproduce: error: {failed} runs failed; the report marks "
             "their claims INCOMPLETE (rerun to retry)")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
