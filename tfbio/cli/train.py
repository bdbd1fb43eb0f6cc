r"""tfbio-train: trains one experiment config.

    tfbio-train --config=configs/liao2016.py:smoke=1 --workdir=/tmp/run
    tfbio-train --config=configs/xiao2018_imagenet.py:model=resnet18,algo=ss \
        --workdir=gs://bucket/run --strategy=mirrored \
        --config.data.data_dir=/data/tfds --config.optimizer.lr_mult=0.5

``--config.key=value`` overrides any config field; the same command resumes
an interrupted run from ``WORKDIR/checkpoints``. With
``--strategy=multiworker`` every worker runs this same command with its own
``TF_CONFIG``. Writes ``config.json``, ``checkpoints/``, ``history.csv``,
``tb/``, ``model.keras`` and ``metrics.json`` into the workdir. Logs one
progress line per epoch (``--log_every_steps=N``: also every N steps). A bad
input is one line ``tfbio-train: error: ...``, exit status 2 (the command
line) or 1 (data, workdir, divergence), and leaves nothing behind.
"""

from tfbio.cli import common

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config: configs/NAME.py[:ARGS].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created; "
                               "resumed if it holds a checkpoint).")
_STRATEGY = flags.DEFINE_string(
    "strategy", "default", "default | mirrored | multiworker | tpu.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name or address (strategy=tpu).")
_EXPORT = flags.DEFINE_bool("export", False, "Also export a SavedModel to "
                            "WORKDIR/export at the end (see tfbio-export).")
_LOG_EVERY_STEPS = flags.DEFINE_integer(
    "log_every_steps", 0, "Also log a progress line every N steps (default: "
    "one line per epoch; steps.csv and tb/ get config.log_every_steps).",
    lower_bound=0)
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", None, "Split the CPU into N logical devices, so that "
    "--strategy=mirrored runs N replicas on a machine without GPUs.",
    lower_bound=1)


def main(argv):
  if len(argv) > 1:
    common.usage("tfbio-train", f"unexpected arguments {argv[1:]}")
  if _CONFIG.value is None:
    common.usage("tfbio-train", "--config is required, e.g. "
                "--config=configs/liao2016.py:smoke=1")
  if not _WORKDIR.value:
    common.usage("tfbio-train", "--workdir is required")
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top
  from tfbio.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from tfbio.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  try:
    if _CPU_REPLICAS.value:
      from tfbio.train import strategy  # pylint: disable=g-import-not-at-top
      strategy.split_cpu(_CPU_REPLICAS.value)
    # Strategy, data, model and the loop (tfbio.train.run.train's phases).
    trainer, metrics = run_lib.train(_CONFIG.value, _WORKDIR.value,
                                     strategy=_STRATEGY.value,
                                     tpu_address=_TPU.value,
                                     log_every_steps=_LOG_EVERY_STEPS.value)
  except common.USER_ERRORS + (trainer_lib.TrainingDiverged,) as e:
    common.fail_on("tfbio-train", e)  # 2: a config value; 1: the rest.
  # Export.
  if _EXPORT.value and trainer.is_chief:
    from tfbio.train import export  # pylint: disable=g-import-not-at-top
    export.export_model(trainer.model, _WORKDIR.value)
  name, _, best, final = workdir_lib.primary(metrics)
  logging.info("final %s %.4f (best %.4f)", name, final, best)


def run():
  common.run(main, "tfbio-train", __name__)


if __name__ == "__main__":
  run()
