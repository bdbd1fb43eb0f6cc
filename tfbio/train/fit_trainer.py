"""Training rules that run as a Keras ``fit`` of a model wrapper.

Target propagation (``tfbio.tp.TargetPropModel``, :mod:`tfbio.train.tp_trainer`)
and direct feedback alignment (``tfbio.dfa.DFAModel``,
:mod:`tfbio.train.dfa_trainer`) replace the whole backward pass, so they
are Keras models with their own ``train_step`` around the registry network.
:class:`FitTrainer` is :class:`tfbio.train.Trainer`'s counterpart for them:
it builds the registry model as the trainer does (``feedback`` must be
``"bp"``: only the forward computation is used), wraps it (a subclass's
:meth:`FitTrainer.wrap`) and trains the wrapper with Keras ``fit`` on the
same ``tfbio.data`` datasets, with the config's optimizer and learning-rate
schedule.

Runs under ``--strategy=default`` or ``mirrored`` (Keras ``fit`` fails under
multi-worker strategies, keras-team/keras#20585). The work directory is the
classification trainer's (``tfbio.train.workdir``): ``history.csv`` has the
same columns (1-based ``epoch``, ``step``, ``lr``, ``train_loss``,
``train_error``, ``eval_loss``, ``eval_error``, errors in %) plus the
rule's per-layer diagnostics (:attr:`FitTrainer.layer_prefixes`);
``checkpoints/`` holds the network and the step at every epoch end (what
``tfbio-eval`` and ``tfbio-export`` restore); ``backup/`` holds Keras'
``BackupAndRestore`` state (network, the rule's own state and optimizers,
epoch), the fit loop's own resume point; ``metrics.json`` adds the last
epoch's per-layer diagnostics.

Resuming restores weights, optimizer states and the epoch; unlike the
custom loop it is not bit-exact (an interrupted epoch restarts from its
first step, and the data order restarts from the seed's first epoch). A
finished run trains no further and rewrites ``metrics.json``.
"""

import math
import time

from absl import logging
import keras
import tensorflow as tf

from tfbio.train import trainer as trainer_lib
from tfbio.train import workdir as workdir_lib

STRATEGIES = ("default", "mirrored")


class ErrorRate(keras.metrics.Mean):
  """Classification error (a fraction) of logits; Keras logs it as ``error``."""

  def __init__(self, name="error", **kwargs):
    super().__init__(name=name, **kwargs)

  def update_state(self, y_true, y_pred, sample_weight=None):
    wrong = tf.not_equal(tf.argmax(y_pred, -1, output_type=tf.int32),
                         tf.cast(tf.reshape(y_true, [-1]), tf.int32))
    return super().update_state(tf.cast(wrong, self.dtype), sample_weight)


class _EpochLogs(keras.callbacks.Callback):
  """Writes each epoch's history row and checkpoint (before the backup)."""

  def __init__(self, trainer):
    super().__init__()
    self.trainer = trainer

  def on_train_begin(self, logs=None):
    self.rows = {int(float(r["epoch"])): r
                 for r in workdir_lib.read_history(self.trainer.workdir)}
    self.first_loss = None
    self.epoch_times = []

  def on_epoch_begin(self, epoch, logs=None):
    self.t_epoch = self.t_eval = time.time()

  def on_test_begin(self, logs=None):
    self.t_eval = time.time()  # The epoch's training ends here.

  def on_epoch_end(self, epoch, logs=None):
    logs = dict(logs or {})
    t = self.trainer
    loss = float(logs.get("loss", 0.0))
    self.first_loss = loss if self.first_loss is None else self.first_loss
    if not math.isfinite(loss) or abs(loss) > (
        trainer_lib.DIVERGENCE_FACTOR * max(abs(self.first_loss), 1e-3)):
      latest = t.manager.latest_checkpoint
      raise trainer_lib.TrainingDiverged(
          f"Training diverged: loss {loss:.4g} in epoch {epoch + 1} (first "
          f"epoch's loss {self.first_loss:.4g}) with {t.rule_name}; " + (
              f"the last good checkpoint is {latest}" if latest else
              "no checkpoint was written before it"))
    step = (epoch + 1) * t.steps_per_epoch
    lr = t.optimizer.learning_rate
    row = {"epoch": epoch + 1, "step": step,
           "lr": float(lr.numpy() if hasattr(lr, "numpy") else lr)}
    for prefix, source in (("train_", ""), ("eval_", "val_")):
      if f"{source}loss" in logs:
        row[f"{prefix}loss"] = float(logs[f"{source}loss"])
      if f"{source}error" in logs:
        row[f"{prefix}error"] = 100.0 * float(logs[f"{source}error"])
    row.update({k: float(v) for k, v in logs.items()
                if k.startswith(t.layer_prefixes)})
    self.rows[epoch + 1] = row
    workdir_lib.write_history(t.workdir,
                              [self.rows[e] for e in sorted(self.rows)])
    t.step.assign(step)
    t.manager.save(checkpoint_number=step)
    now = time.time()
    self.epoch_times.append(now - self.t_epoch)
    train_seconds = (self.t_eval if self.t_eval > self.t_epoch else now) - (
        self.t_epoch)
    t._log_epoch(  # pylint: disable=protected-access
        row, epoch + 1, t.config.epochs,
        images_per_second=(t.steps_per_epoch * t.config.batch_size
                           / max(train_seconds, 1e-9)),
        epoch_seconds=self.epoch_times[-1],
        run_eta=(sum(self.epoch_times) / len(self.epoch_times)
                 * (t.config.epochs - epoch - 1)))


class FitTrainer(trainer_lib.Trainer):
  """Trains ``config`` by ``fit`` of :meth:`wrap`'s model; see the module doc.

  Subclasses set ``rule_name`` (logs, errors), ``layer_prefixes`` (the
  per-layer diagnostics copied into ``history.csv`` and ``metrics.json``)
  and implement :meth:`wrap`.
  """

  rule_name = ""
  layer_prefixes = ()

  def __init__(self, config, workdir, strategy="default", tpu_address=None):
    if strategy not in STRATEGIES:
      raise ValueError(f"{self.rule_name} runs with --strategy=default|"
                       f"mirrored. Received: --strategy={strategy}")
    if config.freeze:
      raise ValueError(f"{self.rule_name} does not support freeze. "
                       f"Received: freeze={config.freeze!r}")
    super().__init__(config, workdir, strategy=strategy,
                     tpu_address=tpu_address)

  def wrap(self, network, optimizer):
    """The compiled Keras model that ``fit`` trains (under the scope)."""
    raise NotImplementedError

  def setup_model(self):
    """Phase 3: network, its wrapper and optimizers under the scope."""
    keras.utils.set_random_seed(self.config.seed)
    trainer_lib.set_precision(self.config)  # compile adds loss scaling
    with self.strategy.scope():
      self.model = trainer_lib.build_model(self.config, self.num_classes,
                                           self.input_shape)
      if self.config.init.path:
        trainer_lib.warm_start(self.model, self.config.init.path,
                               self.config.init.layers)
      self.optimizer = trainer_lib.make_optimizer(self.config,
                                                  self.steps_per_epoch)
      self.wrapper = self.wrap(self.model, self.optimizer)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                              name="global_step")
      # The network and the step: what eval and export restore (the fit
      # loop resumes from backup/).
      self.checkpoint = tf.train.Checkpoint(model=self.model, step=self.step)
    self.frozen = []
    self.loss_fn = trainer_lib.make_loss(self.config)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, workdir_lib.path(self.workdir,
                                          workdir_lib.CHECKPOINTS),
        max_to_keep=2)

  def _fit_train_dataset(self):
    from tfbio import data  # pylint: disable=g-import-not-at-top

    c = self.config.data
    ds = data.get_dataset(
        c.name, c.train_split, batch_size=self.config.batch_size,
        data_dir=c.data_dir, image_size=c.image_size,
        preprocess=c.preprocess_train, shuffle=True, seed=self.config.seed,
        repeat=True, drop_remainder=True, shuffle_buffer=c.shuffle_buffer)
    return ds.prefetch(2)

  def _train(self):
    """Runs (or resumes) ``fit``; returns the final metrics dict."""
    self._write_config()
    self.manager.restore_or_initialize()
    spe, epochs = self.steps_per_epoch, self.config.epochs
    logging.info("Training %s by %s on %s: %d epochs x %d steps, global "
                 "batch %d, %d replica(s), strategy %s",
                 self.config.model.name, self.rule_name,
                 self.config.data.name, epochs, spe, self.config.batch_size,
                 self.strategy.num_replicas_in_sync, self.strategy_name)
    # The epoch's history row and checkpoint are written before its
    # backup: a crash between them redoes the epoch (its row is replaced).
    callbacks = [
        _EpochLogs(self),
        keras.callbacks.TensorBoard(
            workdir_lib.path(self.workdir, workdir_lib.TENSORBOARD),
            write_graph=False),
        keras.callbacks.BackupAndRestore(
            workdir_lib.path(self.workdir, workdir_lib.BACKUP),
            save_freq="epoch", delete_checkpoint=False),
    ]
    t0 = time.time()
    self.wrapper.fit(self._fit_train_dataset(), epochs=epochs,
                      steps_per_epoch=spe,
                      validation_data=self._eval_dataset(),
                      callbacks=callbacks, verbose=0)  # _EpochLogs logs.
    history = workdir_lib.read_history(self.workdir)
    if not history:
      path = workdir_lib.path(self.workdir, workdir_lib.HISTORY)
      raise ValueError(f"{path!r} has no epoch rows.")
    extra = {k: workdir_lib.to_float(v) for k, v in history[-1].items()
             if k.startswith(self.layer_prefixes)}
    return self._finish(history, time.time() - t0, **extra)
