r"""tfbio-eval: evaluates a run's latest checkpoint on its eval split.

    tfbio-eval --workdir=/tmp/run [--split=test] [--out=eval.json]

Works on a run of every kind (classification, detection, target
propagation). Writes the eval metrics (classification: ``eval_loss``,
``eval_error``, [``eval_top5_error``]; detection: ``eval_AP``, ...) plus
``step`` and ``split`` to ``WORKDIR/eval_{split}.json`` (or ``--out``) and
logs them.
"""

from tfbio.cli import common

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfbio-train workdir.")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: the "
                             "config's data.eval_split).")
_OUT = flags.DEFINE_string("out", None, "Output JSON (default "
                           "WORKDIR/eval_SPLIT.json).")


def main(argv):
  if len(argv) > 1:
    common.usage("tfbio-eval", f"unexpected arguments {argv[1:]}")
  if not _WORKDIR.value:
    common.usage("tfbio-eval", "--workdir is required")
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top

  try:
    result, path = run_lib.evaluate(_WORKDIR.value, _SPLIT.value, _OUT.value)
  except common.USER_ERRORS as e:
    common.fail("tfbio-eval", e)
  logging.info("%s at step %d: %s (wrote %s)", result["split"],
               result["step"], ", ".join(
                   f"{k} {v:.4f}" for k, v in result.items()
                   if k.startswith("eval_")), path)


def run():
  common.run(main, "tfbio-eval", __name__)


if __name__ == "__main__":
  run()
