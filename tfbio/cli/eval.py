r"""tfbio-eval: evaluates a run's latest checkpoint on its eval split.

    tfbio-eval --workdir=/tmp/run [--split=test] [--out=eval.json]

Writes ``{"eval_loss", "eval_error", ["eval_top5_error"], "step"}`` to
``WORKDIR/eval_{split}.json`` (or ``--out``) and logs it.
"""

from tfbio.cli import common

import json  # noqa: E402
import os  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfbio-train workdir.")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: the "
                             "config's data.eval_split).")
_OUT = flags.DEFINE_string("out", None, "Output JSON (default "
                           "WORKDIR/eval_SPLIT.json).")


def main(argv):
  if len(argv) > 1:
    common.fail("tfbio-eval", f"unexpected arguments {argv[1:]}")
  if not _WORKDIR.value:
    common.fail("tfbio-eval", "--workdir is required")
  from tfbio.train import detection  # pylint: disable=g-import-not-at-top

  try:
    trainer = detection.restore(_WORKDIR.value)
    if _SPLIT.value:
      with trainer.config.unlocked():
        trainer.config.data.eval_split = _SPLIT.value
      trainer.setup_data()
    result = trainer.evaluate()
  except common.USER_ERRORS as e:
    common.fail("tfbio-eval", e)
  result["step"] = int(trainer.step.numpy())
  split = trainer.config.data.eval_split
  out = _OUT.value or os.path.join(_WORKDIR.value, f"eval_{split}.json")
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  logging.info("%s: %s (wrote %s)", split, result, out)


def run():
  app.run(main, flags_parser=common.flags_parser("tfbio-eval"))


if __name__ == "__main__":
  run()
