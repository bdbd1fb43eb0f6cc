#!/usr/bin/env python3
"""biotorch's Fashion-MNIST table beside tfbio's runs (no training).

Reads the two tfbio-sweep directories of configs/biotorch.py (the
learning-rate selection and the final runs) and writes OUT/README.md,
OUT/runs.csv and the plots (tfbio.experiments.peer)::

    tools/biotorch_table.py   # defaults: the sweeps under docs/results/biotorch
"""

from absl import app
from absl import flags

_SELECT = flags.DEFINE_string("select", "docs/results/biotorch/sweeps/select",
                              "Selection sweep directory.")
_FINAL = flags.DEFINE_string("final", "docs/results/biotorch/sweeps/final",
                             "Final sweep directory.")
_OUT = flags.DEFINE_string("out", "docs/results/biotorch", "Output directory.")
_DATA = flags.DEFINE_enum("data", "fashion", ["fashion", "mnist"],
                          "Which published column to compare with.")


def main(argv):
  del argv
  from tfbio.experiments import peer  # pylint: disable=g-import-not-at-top
  peer.report(_SELECT.value, _FINAL.value, _OUT.value, _DATA.value)


if __name__ == "__main__":
  app.run(main)
