r"""tfbio-export: a trained run's model as a SavedModel and a ``.keras`` file.

    tfbio-export --workdir=/tmp/run [--out=/tmp/run/export]

Restores the latest checkpoint of ``--workdir`` and writes
``OUT/saved_model`` (``model.export``: a serving signature ``serve`` that
maps an image batch to logits; loadable with ``tf.saved_model.load``
without tfbio) and ``OUT/model.keras`` (needs tfbio to load).
"""

from tfbio.cli import common

import os  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from tfbio.train import export as export_lib  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfbio-train workdir.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default "
                           "WORKDIR/export).")

# Library function (no flags), re-exported for callers of this module.
export_model = export_lib.export_model




def main(argv):
  if len(argv) > 1:
    common.fail("tfbio-export", f"unexpected arguments {argv[1:]}")
  if not _WORKDIR.value:
    common.fail("tfbio-export", "--workdir is required")
  from tfbio.train import detection  # pylint: disable=g-import-not-at-top

  try:
    trainer = detection.restore(_WORKDIR.value)
  except common.USER_ERRORS as e:
    common.fail("tfbio-export", e)
  export_model(trainer.model, _WORKDIR.value, _OUT.value)


def run():
  app.run(main, flags_parser=common.flags_parser("tfbio-export"))


if __name__ == "__main__":
  run()
