r"""tfbio-export: a trained run's model as a SavedModel and a ``.keras`` file.

    tfbio-export --workdir=/tmp/run [--out=/tmp/run/export]

Restores the latest checkpoint of ``--workdir`` (a run of any kind:
classification, detection, target propagation) and writes
``OUT/saved_model`` (``model.export``: a serving signature ``serve`` that
maps an image batch to logits, or to decoded boxes for detection; loadable
with ``tf.saved_model.load`` without tfbio) and ``OUT/model.keras`` (needs
tfbio to load).
"""

from tfbio.cli import common

from absl import flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfbio-train workdir.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default "
                           "WORKDIR/export).")


def main(argv):
  if len(argv) > 1:
    common.usage("tfbio-export", f"unexpected arguments {argv[1:]}")
  if not _WORKDIR.value:
    common.usage("tfbio-export", "--workdir is required")
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top

  try:
    run_lib.export(_WORKDIR.value, _OUT.value)
  except common.USER_ERRORS as e:
    common.fail("tfbio-export", e)


def run():
  common.run(main, "tfbio-export", __name__)


if __name__ == "__main__":
  run()
