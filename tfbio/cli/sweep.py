r"""tfbio-sweep: the cartesian product of config args, with a results table.

liao2016 §5 ran "the cartesian product of models (experimental conditions)
and datasets (tasks)", each at 5 learning-rate multipliers, reporting the
best validation error over epochs and runs. This binary runs such a product
of a config's ``key=value`` args, one ``tfbio-train`` subprocess per cell::

    tfbio-sweep --config=configs/liao2016.py:model=mnist \
        --axes='algo=sgd|usf_bn|rndf_bn,lr_mult=100|10|1|0.1|0.01' \
        --best_over=lr_mult --workdir=/tmp/sweep

Each cell trains ``--config``'s args plus one value per axis in
``WORKDIR/<axis>=<value>,...`` (``--parallel`` worker processes); a finished
cell is skipped (the sweep is resumable; an interrupted cell resumes from
its own checkpoint), a diverged or failed cell is recorded as such and the
sweep goes on. Writes ``WORKDIR/results.csv`` (one row per cell: axes,
status, the primary metric's best and final value) and
``WORKDIR/results.md``: the best primary metric (``eval_error``, lower is
better; detection ``eval_AP``, higher is better) optimised over the
``--best_over`` axes (the winning values are named), rows = the first
remaining axis, columns = the others (liao2016 Table 2's layout: datasets ×
algorithms, best over the learning-rate multipliers). The engine is
``tfbio.experiments.search``.

Random search (bartunov2018 appendix: "random searches over 60 random
configurations drawn from the relevant ranges specified in table 4")::

    tfbio-sweep --config=configs/bartunov2018.py:algo=sdtp --random=60 \
        --random_seed=0 --workdir=/tmp/search

``--random=N`` draws N configurations from the config module's
``SEARCH_SPACE`` (``{"field.path": ("log_uniform" | "uniform", low, high)
or ("choice", values)}``; a config file without one is an error), each a
cell ``trial=000``, ``trial=001``, ... trained with the drawn values as
``--config.FIELD=VALUE`` overrides. The draws are a function of
``--random_seed`` only (values rounded to 4 significant digits), so a
second invocation redraws the same trials and skips the finished ones.
With ``--axes`` too, the same N trials run inside every grid cell
(``WORKDIR/<axes>,trial=00k``). results.csv gains one column per drawn
field; results.md lists the trials, best first.
"""

from tfbio.cli import common

import os  # noqa: E402

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "configs/NAME.py[:ARGS]; the "
                              "axes' key=value pairs are appended to ARGS.")
_AXES = flags.DEFINE_string("axes", None, "Comma-separated axes "
                            "'key=v1|v2|...' (config arg keys).")
_BEST_OVER = flags.DEFINE_list("best_over", [], "Axes the table optimises "
                               "over (e.g. lr_mult).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.")
_STRATEGY = flags.DEFINE_string("strategy", "default", "Passed to each cell.")
_PARALLEL = flags.DEFINE_integer(
    "parallel", 1, "Cells trained at the same time (worker processes; the "
    "cores are shared out between them).", lower_bound=1)
_RANDOM = flags.DEFINE_integer(
    "random", 0, "Random search: N configurations drawn from the config "
    "module's SEARCH_SPACE (with --axes: N inside every grid cell).",
    lower_bound=0)
_RANDOM_SEED = flags.DEFINE_integer("random_seed", 0, "Seed of the "
                                    "--random draws.")
_VERDICT = flags.DEFINE_string(
    "verdict", None, "Add a verdict paragraph to results.md: xiao2018 (needs "
    "--axes with algo=bp|ss|ss_lastbp|fa|fa_lastbp; rule in "
    "tfbio/experiments/claims.py).")
_OVERRIDES = flags.DEFINE_multi_string(
    "override", [], "Extra --config.key=value for every cell (repeatable), "
    "e.g. --override=epochs=2.")


def main(argv):
  if len(argv) > 1:
    common.usage("tfbio-sweep", f"unexpected arguments {argv[1:]}")
  for name, flag in (("--config", _CONFIG), ("--workdir", _WORKDIR)):
    if not flag.value:
      common.usage("tfbio-sweep", f"{name} is required")
  from tfbio.experiments import search  # pylint: disable=g-import-not-at-top

  try:
    if not os.path.isfile(_CONFIG.value.partition(":")[0]):
      raise ValueError(f"--config file {_CONFIG.value.partition(':')[0]!r} "
                       "does not exist")
    if os.path.exists(_WORKDIR.value) and not os.path.isdir(_WORKDIR.value):
      raise ValueError(f"--workdir={_WORKDIR.value!r} is not a directory")
    axes = search.parse_axes(_AXES.value) if _AXES.value else []
    rows, table = search.sweep(
        _CONFIG.value, _WORKDIR.value, axes=axes, random_trials=_RANDOM.value,
        random_seed=_RANDOM_SEED.value, best_over=_BEST_OVER.value,
        overrides=_OVERRIDES.value, strategy=_STRATEGY.value,
        workers=_PARALLEL.value, verdict=_VERDICT.value)
  except ValueError as e:  # The flags: axes, overrides, search space.
    common.usage("tfbio-sweep", e)
  failed = [r["cell"] for r in rows if r["status"] == "failed"]
  logging.info("Wrote %s/results.md and results.csv:\n%s", _WORKDIR.value,
               table)
  if failed:
    common.fail("tfbio-sweep", f"{len(failed)} cell(s) failed: "
                f"{', '.join(failed)} (see their log.txt; rerun to retry)")


def run():
  common.run(main, "tfbio-sweep", __name__)


if __name__ == "__main__":
  run()
