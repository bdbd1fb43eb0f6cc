"""Target propagation (DTP / SDTP) behind ``tfbio-train``: ``config.tp``.

bartunov2018 §2.1.1 and Algorithm 1; SPEC §6. :class:`TPTrainer` is
:class:`tfbio.train.Trainer`'s counterpart for ``config.tp.enabled``: it
builds the registry model as the trainer does (``feedback`` must be
``"bp"``: only the forward computation is used), wraps it in
``tfbio.tp.TargetPropModel`` and trains it with Keras ``fit`` on the same
``tfbio.data`` datasets. The forward optimizer is the config's (with its
learning-rate schedule; bartunov2018 uses Adam), the inverse one is Adam
with ``tp.inverse_learning_rate`` (constant), β1 0.9, ``tp.inverse_beta_2``
and ``tp.inverse_epsilon``.

Runs under ``--strategy=default`` or ``mirrored`` (Keras ``fit`` fails under
multi-worker strategies, keras-team/keras#20585). Work directory::

    config.json      the resolved config
    backup/          keras.callbacks.BackupAndRestore at every epoch end
                     (kept at the end; ``checkpoint_every_steps`` is not
                     used): the same command resumes at the last completed
                     epoch (a finished run trains no further and rewrites
                     metrics.json)
    history.csv      keras.callbacks.CSVLogger, one row per epoch: Keras'
                     logs (``epoch`` 0-based, ``loss``, ``error`` and
                     ``val_error`` as fractions, ``fwd_loss/<layer>``,
                     ``inv_loss/<layer>``, ``bp_angle/<layer>``) plus the
                     trainer's names ``step``, ``lr``, ``train_loss``,
                     ``train_error``, ``eval_loss``, ``eval_error`` (errors
                     in %)
    model.keras      the trained network (the classifier, without inverses)
    metrics.json     the keys of ``Trainer``'s (``final_eval_error``,
                     ``best_eval_error`` (min over epochs), ``steps``,
                     ``final_train_error``, ...) plus the last epoch's
                     ``fwd_loss/...``, ``inv_loss/...``, ``bp_angle/...``

Resuming restores weights, optimizer states and the epoch; unlike the
custom loop it is not bit-exact (an interrupted epoch restarts from its
first step, and the data order restarts from the seed's first epoch).
"""

import csv
import json
import math
import os
import time

from absl import logging
import keras
import tensorflow as tf

from tfbio.train import trainer as trainer_lib

STRATEGIES = ("default", "mirrored")
# Per-layer TP diagnostics copied from the last epoch into metrics.json.
LAYER_PREFIXES = ("fwd_loss/", "inv_loss/", "bp_angle/")


class _TrainerLogs(keras.callbacks.Callback):
  """Adds the trainer's column names to the epoch logs (before CSVLogger)."""

  def __init__(self, steps_per_epoch):
    super().__init__()
    self.steps_per_epoch = steps_per_epoch

  def on_epoch_end(self, epoch, logs=None):
    if logs is None:
      return
    logs["step"] = (epoch + 1) * self.steps_per_epoch
    lr = self.model.forward_optimizer.learning_rate
    logs["lr"] = float(lr.numpy() if hasattr(lr, "numpy") else lr)
    for prefix, source in (("train_", ""), ("eval_", "val_")):
      if f"{source}loss" in logs:
        logs[f"{prefix}loss"] = float(logs[f"{source}loss"])
      if f"{source}error" in logs:
        logs[f"{prefix}error"] = 100.0 * float(logs[f"{source}error"])
    if not math.isfinite(float(logs.get("loss", 0.0))):
      raise trainer_lib.TrainingDiverged(
          f"Training diverged: loss {logs['loss']} in epoch {epoch + 1} "
          "(target propagation); the last good backup is kept.")


class TPTrainer(trainer_lib.Trainer):
  """Trains ``config`` by target propagation; see the module docstring."""

  def __init__(self, config, workdir, strategy="default", tpu_address=None):
    if strategy not in STRATEGIES:
      raise ValueError("target propagation runs with --strategy=default|"
                       f"mirrored. Received: --strategy={strategy}")
    if config.freeze:
      raise ValueError("target propagation does not support freeze. "
                       f"Received: freeze={config.freeze!r}")
    super().__init__(config, workdir, strategy=strategy,
                     tpu_address=tpu_address)

  def setup_model(self):
    """Phase 3: network, TargetPropModel and optimizers under the scope."""
    from tfbio.tp import model as tp_model  # pylint: disable=g-import-not-at-top

    tp = self.config.tp
    keras.utils.set_random_seed(self.config.seed)
    with self.strategy.scope():
      self.model = trainer_lib.build_model(self.config, self.num_classes,
                                           self.input_shape)
      if self.config.init.path:
        trainer_lib.warm_start(self.model, self.config.init.path,
                               self.config.init.layers)
      forward = trainer_lib.make_optimizer(self.config, self.steps_per_epoch)
      inverse = keras.optimizers.Adam(
          tp.inverse_learning_rate, beta_1=0.9, beta_2=tp.inverse_beta_2,
          epsilon=tp.inverse_epsilon, name="inverse_adam")
      self.tp_model = tp_model.TargetPropModel(
          self.model, variant=tp.variant, schedule=tp.schedule,
          inverse_training=tp.inverse_training, noise_std=tp.noise_std,
          step_size=tp.step_size, forward_optimizer=forward,
          inverse_optimizer=inverse, seed=int(self.config.seed))
      self.tp_model.compile()
    self.optimizer = forward
    self.frozen = []

  def _fit_train_dataset(self):
    from tfbio import data  # pylint: disable=g-import-not-at-top

    c = self.config.data
    ds = data.get_dataset(
        c.name, c.train_split, batch_size=self.config.batch_size,
        data_dir=c.data_dir, image_size=c.image_size,
        preprocess=c.preprocess_train, shuffle=True, seed=self.config.seed,
        repeat=True, drop_remainder=True, shuffle_buffer=c.shuffle_buffer)
    return ds.prefetch(2)

  def train(self):
    """Runs (or resumes) ``fit``; returns the final metrics dict."""
    from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

    if not hasattr(self, "steps_per_epoch"):
      self.setup_data()
    if not hasattr(self, "tp_model"):
      self.setup_model()
    os.makedirs(self.workdir, exist_ok=True)
    with open(os.path.join(self.workdir, "config.json"), "w",
              encoding="utf-8") as f:
      f.write(config_lib.to_json(self.config))
    spe, epochs = self.steps_per_epoch, self.config.epochs
    tp = self.config.tp
    logging.info("Training %s by %s (%s schedule) on %s: %d epochs x %d "
                 "steps, global batch %d, %d replica(s), strategy %s",
                 self.config.model.name, tp.variant, tp.schedule,
                 self.config.data.name, epochs, spe, self.config.batch_size,
                 self.strategy.num_replicas_in_sync, self.strategy_name)
    # The epoch's CSV row is written before its backup: a crash between the
    # two redoes the epoch (its row then appears twice; _finish_tp keeps the
    # last).
    callbacks = [
        _TrainerLogs(spe),
        keras.callbacks.CSVLogger(self._history_path(), append=True),
        keras.callbacks.TensorBoard(os.path.join(self.workdir, "tb"),
                                    write_graph=False),
        keras.callbacks.BackupAndRestore(
            os.path.join(self.workdir, "backup"), save_freq="epoch",
            delete_checkpoint=False),
    ]
    t0 = time.time()
    self.tp_model.fit(self._fit_train_dataset(), epochs=epochs,
                      steps_per_epoch=spe,
                      validation_data=self._eval_dataset(),
                      callbacks=callbacks, verbose=2)
    return self._finish_tp(time.time() - t0)

  def _finish_tp(self, seconds):
    with open(self._history_path(), newline="", encoding="utf-8") as f:
      by_epoch = {r["epoch"]: r for r in csv.DictReader(f)}  # Last wins.
    history = [by_epoch[k] for k in sorted(by_epoch, key=int)]
    if not history:
      raise ValueError(f"{self._history_path()!r} has no epoch rows.")
    final = history[-1]
    metrics = {
        "model": self.config.model.name,
        "feedback": "tp",
        "tp_variant": self.config.tp.variant,
        "tp_schedule": self.config.tp.schedule,
        "last_layer": None,
        "dataset": self.config.data.name,
        "epochs": self.config.epochs,
        "steps": int(final["step"]),
        "best_eval_error": min(float(r["eval_error"]) for r in history),
        "wall_seconds_this_run": seconds,
        "num_replicas": self.strategy.num_replicas_in_sync,
    }
    metrics.update({f"final_{k}": float(v) for k, v in final.items()
                    if k.startswith(("train_", "eval_"))})
    metrics.update({k: float(v) for k, v in final.items()
                    if k.startswith(LAYER_PREFIXES)})
    self.model.save(os.path.join(self.workdir, "model.keras"))
    with open(os.path.join(self.workdir, "metrics.json"), "w",
              encoding="utf-8") as f:
      json.dump(metrics, f, indent=1)
    logging.info("Done: final eval_error %.4f (best %.4f); wrote %s",
                 metrics["final_eval_error"], metrics["best_eval_error"],
                 os.path.join(self.workdir, "metrics.json"))
    return metrics
