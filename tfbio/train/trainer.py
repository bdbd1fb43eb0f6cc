"""The training loop behind ``tfbio-train``: one custom loop for every strategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), so training runs a custom loop
(``experimental_distribute_dataset`` + ``strategy.run`` + the Keras
optimizer) under whichever strategy ``--strategy`` picks; the loss is the
mean over the **global** batch (``tf.nn.compute_average_loss``), so the
config's batch size and learning rate mean the same on 1 device or 64.

The work directory (its names and columns: ``tfbio.train.workdir``) is
written by the chief; other workers write their checkpoints to a private
``checkpoints_worker{N}`` and delete nothing. ``checkpoints/`` holds model +
optimizer + step every ``checkpoint_every_steps`` and at every epoch end
(backup-and-restore: the same command resumes).

Resuming is exact: each epoch's data order is a function of
``(seed, epoch)``, a resumed epoch skips the batches already trained on, and
every random state (weights, optimizer slots, dropout seed generators,
per-step feedback counters) is in the checkpoint.
"""

import contextlib
import math
import os
import re
import signal
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfbio.train import config as config_lib
from tfbio.train import strategy as strategy_lib
from tfbio.train import workdir as workdir_lib
from tfbio.utils import seeds as seeds_lib


# A loss this many times its run's first value counts as diverged.
DIVERGENCE_FACTOR = 1e6


def format_duration(seconds):
  """``"12 s"``, ``"1 min 24 s"``, ``"2 h 05 min"`` (progress lines)."""
  seconds = max(0, int(round(seconds)))
  if seconds < 60:
    return f"{seconds} s"
  if seconds < 3600:
    return f"{seconds // 60} min {seconds % 60} s"
  return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _metric_text(key, value):
  if not math.isfinite(value):
    return f"{key} {value}"
  if key.endswith("error"):
    return f"{key} {value:.2f} %"
  return f"{key} {value:.4f}"


def progress_line(head, metrics, *, images_per_second=None, epoch_seconds=None,
                  epoch_eta=None, run_eta=None):
  """One console line of training progress, readable in a file.

  E.g. ``epoch 3/10  loss 0.4123  error 12.34 %  eval_error 13.10 %  1234
  img/s  epoch 12 s  ETA 1 min 24 s`` (errors are percentages).

  Args:
    head: ``"epoch 3/10"`` or ``"step 120/1000"``.
    metrics: ``{name: value}`` in display order.
    images_per_second: training throughput.
    epoch_seconds: the epoch's wall time (training and evaluation).
    epoch_eta: seconds left in the epoch.
    run_eta: seconds left in the run.
  """
  parts = [head] + [_metric_text(k, float(v)) for k, v in metrics.items()]
  if images_per_second is not None:
    parts.append(f"{images_per_second:.0f} img/s")
  if epoch_seconds is not None:
    parts.append(f"epoch {format_duration(epoch_seconds)}")
  if epoch_eta is not None:
    parts.append(f"epoch ETA {format_duration(epoch_eta)}")
  if run_eta is not None:
    parts.append(f"ETA {format_duration(run_eta)}")
  return "  ".join(parts)


class TrainingDiverged(RuntimeError):
  """The loss stopped being finite or grew ``DIVERGENCE_FACTOR`` times.

  The last good checkpoint (if any) is kept.
  """


class _LearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """Base rate × lr_mult × the schedule's multiplier at the step's epoch."""

  def __init__(self, base, boundaries_steps, multipliers, warmup_steps=0):
    self.base = float(base)
    self.boundaries_steps = [int(b) for b in boundaries_steps]
    self.multipliers = [float(m) for m in multipliers]
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    if not self.boundaries_steps:
      rate = tf.constant(self.base * self.multipliers[0], tf.float32)
    else:
      schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
          self.boundaries_steps, [self.base * m for m in self.multipliers])
      rate = tf.cast(schedule(step), tf.float32)
    if self.warmup_steps:
      # Linear warm-up from base/warmup_steps to the schedule's rate.
      ramp = tf.minimum(
          1.0, (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps))
      rate = rate * ramp
    return rate

  def get_config(self):
    return {"base": self.base, "boundaries_steps": self.boundaries_steps,
            "multipliers": self.multipliers,
            "warmup_steps": self.warmup_steps}


def learning_rate_schedule(config, steps_per_epoch):
  """The config's schedule as a Keras schedule over optimizer steps."""
  opt, sch = config.optimizer, config.schedule
  base = opt.learning_rate * opt.lr_mult
  warmup = sch.get("warmup_steps", 0)
  if sch.name == "constant":
    return _LearningRate(base, [], [1.0], warmup)
  if sch.name == "piecewise":
    return _LearningRate(
        base, [b * steps_per_epoch for b in sch.boundaries_epochs],
        sch.multipliers, warmup)
  boundaries = list(range(sch.every_epochs, config.epochs, sch.every_epochs))
  return _LearningRate(base, [b * steps_per_epoch for b in boundaries],
                       [sch.factor ** -i for i in range(len(boundaries) + 1)],
                       warmup)


def set_precision(config):
  """Sets Keras' global dtype policy from ``config.mixed_precision``.

  None: float32; ``"mixed_float16"`` / ``"mixed_bfloat16"``: float32
  variables, that compute dtype (docs: tfbio.train.config).
  """
  keras.config.set_dtype_policy(config.get("mixed_precision") or "float32")


def loss_scaled(config, optimizer):
  """``optimizer`` in a ``LossScaleOptimizer`` for ``mixed_float16``."""
  if config.get("mixed_precision") == "mixed_float16":
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def make_optimizer(config, steps_per_epoch):
  from tfbio import optimizers  # pylint: disable=g-import-not-at-top

  opt = config.optimizer
  lr = learning_rate_schedule(config, steps_per_epoch)
  clipnorm = opt.get("clipnorm", 0.0)
  clip = {"global_clipnorm": clipnorm} if clipnorm else {}
  if opt.name == "sgd":
    return keras.optimizers.SGD(lr, momentum=opt.momentum,
                                nesterov=opt.nesterov, **clip)
  if opt.name == "adam":
    return keras.optimizers.Adam(lr, beta_1=opt.beta_1, beta_2=opt.beta_2,
                                 epsilon=opt.epsilon, **clip)
  return optimizers.BatchManhattan(lr, momentum=opt.momentum,
                                   weight_decay=opt.weight_decay,
                                   setting=opt.setting)


def make_loss(config):
  """Per-example loss on logits (reduction ``None``)."""
  from tfbio import losses  # pylint: disable=g-import-not-at-top

  if config.loss.name == "hinge":
    return losses.MulticlassHinge(mu=config.loss.mu, reduction=None)
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                    reduction=None)


def build_model(config, num_classes, input_shape):
  from tfbio import models  # pylint: disable=g-import-not-at-top

  last = config.last_layer
  return models.create_model(
      config.model.name, num_classes=num_classes,
      input_shape=tuple(config.model.input_shape or input_shape),
      feedback=config_lib.plain(config.feedback),
      last_layer=config_lib.plain(last) if last is not None else None,
      overrides=config_lib.plain(config.overrides) or None,
      **config_lib.plain(config.model.kwargs))


def feedback_name(config):
  """The name of ``config.feedback`` (a name or a ``{"name": ...}`` dict)."""
  feedback = config_lib.plain(config.feedback)
  return feedback if isinstance(feedback, str) else feedback.get("name")


def frozen_layer_names(model, spec):
  """Names of the layers that ``config.freeze`` keeps fixed."""
  if not spec:
    return set()
  classifiers = set(getattr(model, "tfbio_classifier_layers", []))
  with_weights = [l.name for l in model.layers if l.trainable_weights]
  if spec == "@classifier":
    return classifiers
  if spec == "@hidden":
    return {n for n in with_weights if n not in classifiers}
  try:
    pattern = re.compile(spec)
  except re.error as e:
    raise ValueError(f"freeze={spec!r} is not a valid regex ({e})") from None
  names = {n for n in with_weights if pattern.fullmatch(n)}
  if not names:
    raise ValueError(f"freeze={spec!r} matches no layer with weights; layers: "
                     f"{with_weights}")
  return names


def warm_start(model, path, layers_regex):
  """Copies weights by layer name from a ``.keras`` file or an earlier run."""
  import tfbio  # pylint: disable=g-import-not-at-top,unused-import

  if os.path.isdir(path):
    path = os.path.join(path, "model.keras")
  if not os.path.isfile(path):
    raise ValueError(f"init.path={path!r} does not exist (a .keras file or "
                     "the workdir of a finished run).")
  source = keras.models.load_model(path, compile=False)
  pattern = re.compile(layers_regex)
  copied = []
  for layer in model.layers:
    if not layer.weights or not pattern.fullmatch(layer.name):
      continue
    try:
      other = source.get_layer(layer.name)
    except ValueError:
      continue
    theirs = other.get_weights()
    if [w.shape for w in theirs] == [tuple(w.shape) for w in layer.weights]:
      layer.set_weights(theirs)
      copied.append(layer.name)
  if not copied:
    raise ValueError(f"init.path={path!r}: no layer matching "
                     f"{layers_regex!r} has the same name and weight shapes.")
  logging.info("Warm start from %s: copied %d layers (%s)", path, len(copied),
               ", ".join(copied))
  return copied


class Trainer:
  """Trains ``config`` in ``workdir`` under ``strategy``; see module doc."""

  def __init__(self, config, workdir, strategy="default", tpu_address=None):
    config_lib.validate(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
      raise ValueError(f"workdir={workdir!r} exists and is not a directory.")
    self.config = config
    self.workdir = workdir
    self.strategy = strategy_lib.make_strategy(strategy, tpu_address)
    self.strategy_name = strategy
    self.is_chief, self.task_id = strategy_lib.worker_info(self.strategy)

  # -- setup ------------------------------------------------------------------

  def setup_data(self):
    """Phase 2: dataset sizes, classes and input shape (no data read yet)."""
    from tfbio import data  # pylint: disable=g-import-not-at-top

    c = self.config.data
    info = data.dataset_info(c.name, data_dir=c.data_dir)
    self.num_classes = info["num_classes"]
    self.input_shape = tuple(info["input_shape"])
    if c.image_size:
      self.input_shape = (c.image_size, c.image_size, self.input_shape[-1])
    n_train = data.sources.split_size(info["num_examples"], c.train_split)
    if n_train is None:
      raise ValueError(f"data.train_split={c.train_split!r} is not a split of "
                       f"{c.name!r}: {sorted(info['num_examples'])}")
    if c.max_train_examples:
      n_train = min(n_train, c.max_train_examples)
    if self.config.batch_size > n_train:
      raise ValueError(f"batch_size={self.config.batch_size} is larger than "
                       f"the {n_train} training examples of {c.name!r} "
                       f"({c.train_split!r}); every batch would repeat data")
    self.steps_per_epoch = self.config.steps_per_epoch or max(
        1, n_train // self.config.batch_size)
    self.n_eval = data.sources.split_size(info["num_examples"], c.eval_split)
    if c.max_eval_examples and self.n_eval:
      self.n_eval = min(self.n_eval, c.max_eval_examples)

  def _train_dataset(self, epoch, skip):
    from tfbio import data  # pylint: disable=g-import-not-at-top

    c = self.config.data
    ds = data.get_dataset(
        c.name, c.train_split, batch_size=self.config.batch_size,
        data_dir=c.data_dir, image_size=c.image_size,
        preprocess=c.preprocess_train, shuffle=True,
        seed=seeds_lib.epoch_seed(self.config.seed, epoch), repeat=True,
        drop_remainder=True, shuffle_buffer=c.shuffle_buffer)
    return strategy_lib.shard_by_data(
        ds.take(self.steps_per_epoch).skip(skip))

  def _eval_dataset(self):
    from tfbio import data  # pylint: disable=g-import-not-at-top

    c = self.config.data
    ds = data.get_dataset(
        c.name, c.eval_split, batch_size=self.config.batch_size,
        data_dir=c.data_dir, image_size=c.image_size,
        preprocess=c.preprocess_eval, shuffle=False, seed=0, repeat=False,
        drop_remainder=False)
    if self.n_eval:
      ds = ds.take(math.ceil(self.n_eval / self.config.batch_size))
    return ds

  def setup_model(self):
    """Phase 3: model, optimizer and checkpoint under ``strategy.scope()``."""
    keras.utils.set_random_seed(self.config.seed)
    set_precision(self.config)
    with self.strategy.scope():
      self.model = build_model(self.config, self.num_classes,
                               self.input_shape)
      if self.config.init.path:
        warm_start(self.model, self.config.init.path, self.config.init.layers)
      frozen = frozen_layer_names(self.model, self.config.freeze)
      self.frozen = sorted(frozen)
      self.train_vars = [v for l in self.model.layers if l.name not in frozen
                         for v in l.trainable_weights]
      self.optimizer = loss_scaled(
          self.config, make_optimizer(self.config, self.steps_per_epoch))
      self.optimizer.build(self.train_vars)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                              name="global_step")
      # Keras 3 seed generators (dropout) are not reached by the
      # checkpoint's object graph through the model: save their states too.
      seed_states = tf.Module()
      seed_states.states = [
          getattr(v, "value", v) for v in self.model.non_trainable_variables
          if v.path.endswith("seed_generator_state")]
      self.checkpoint = tf.train.Checkpoint(
          model=self.model, optimizer=self.optimizer, step=self.step,
          seed_states=seed_states)
    if self.frozen:
      logging.info("Frozen (not updated): %s", ", ".join(self.frozen))
    self.loss_fn = make_loss(self.config)
    ckpt_dir = workdir_lib.path(
        self.workdir, workdir_lib.CHECKPOINTS if self.is_chief
        else f"{workdir_lib.CHECKPOINTS}_worker{self.task_id}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir,
                                              max_to_keep=2)

  # Metrics of a training step, in the progress lines and history (train_*).
  step_metrics = ("loss", "error")
  # Console progress line every N steps (0: one line per epoch only;
  # tfbio-train --log_every_steps). steps.csv and TensorBoard get the
  # config's log_every_steps cadence either way.
  log_every_steps = 0

  def replica_losses(self, batch):
    """``(loss to minimise, {metric: value})`` for one replica's batch.

    Every value is this replica's share of the global-batch mean (summed over
    replicas by the caller). Subclasses (detection) override this.
    """
    x, y = batch
    global_batch = self.config.batch_size
    # float32 loss under mixed precision.
    logits = tf.cast(self.model(x, training=True), tf.float32)
    loss = tf.nn.compute_average_loss(self.loss_fn(y, logits),
                                      global_batch_size=global_batch)
    wrong = tf.cast(tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32),
                                 tf.cast(y, tf.int32)), tf.float32)
    return loss, {"loss": loss,
                  "error": 100.0 * tf.reduce_sum(wrong) / global_batch}

  def _train_step_fn(self):
    model, optimizer = self.model, self.optimizer
    train_vars = self.train_vars
    coupled_wd = (self.config.optimizer.weight_decay
                  if self.config.optimizer.name != "batch_manhattan" else 0.0)

    def replica_step(batch):
      with tf.GradientTape() as tape:
        loss, metrics = self.replica_losses(batch)
        if model.losses:
          loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        # mixed_float16: the scaled loss; the optimizer unscales the grads
        # and skips a step whose gradients are not finite.
        scale = (optimizer.dynamic_scale if isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer) else None)
        if scale is not None:
          loss = loss * tf.cast(scale, loss.dtype)
      grads = tape.gradient(loss, train_vars)
      if coupled_wd:
        # Replicas' gradients are summed: each adds its share of the decay
        # (scaled like the gradients under loss scaling).
        share = coupled_wd / self.strategy.num_replicas_in_sync
        if scale is not None:
          share = share * tf.cast(scale, tf.float32)
        grads = [g + share * v if g is not None else None
                 for g, v in zip(grads, train_vars)]
      optimizer.apply_gradients(zip(grads, train_vars))
      return metrics

    @tf.function
    def train_step(iterator):
      metrics = self.strategy.run(replica_step, args=(next(iterator),))
      self.step.assign_add(1)
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
              for k, v in metrics.items()}

    return train_step

  def evaluate(self):
    """``{"eval_loss", "eval_error", ["eval_top5_error"]}`` on the eval split."""
    model, loss_fn = self.model, self.loss_fn
    top5 = self.num_classes >= 10

    @tf.function
    def eval_step(x, y):
      logits = model(x, training=False)
      y = tf.cast(y, tf.int32)
      right = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y)
      in_top5 = (tf.math.in_top_k(y, logits, 5) if top5
                 else tf.zeros_like(right))
      return (tf.reduce_sum(loss_fn(y, logits)),
              tf.reduce_sum(tf.cast(right, tf.float32)),
              tf.reduce_sum(tf.cast(in_top5, tf.float32)), tf.shape(y)[0])

    sums = np.zeros(3)
    count = 0
    for x, y in self._eval_dataset():
      loss, right, right5, n = eval_step(x, y)
      sums += [float(loss), float(right), float(right5)]
      count += int(n)
    if not count:
      raise ValueError(f"eval split {self.config.data.eval_split!r} of "
                       f"{self.config.data.name!r} is empty.")
    result = {"eval_loss": sums[0] / count,
              "eval_error": 100.0 * (1.0 - sums[1] / count)}
    if top5:
      result["eval_top5_error"] = 100.0 * (1.0 - sums[2] / count)
    return result

  # -- logs ---------------------------------------------------------------------

  def _write_config(self):
    os.makedirs(self.workdir, exist_ok=True)
    if self.is_chief:
      workdir_lib.write_config(self.workdir, self.config)

  # -- main loop ----------------------------------------------------------------

  def train(self):
    """Runs (or resumes) training; returns the final metrics dict.

    The chief holds the work directory's lock meanwhile
    (``tfbio.train.workdir.locked``: a second concurrent run into the same
    directory is refused). A run that fails before its first checkpoint
    leaves the directory as it found it
    (``tfbio.train.workdir.removed_on_failure``); an unreadable input file
    is a ValueError naming it (``tfbio.data.named_input_errors``).
    """
    from tfbio import data  # pylint: disable=g-import-not-at-top

    if not hasattr(self, "steps_per_epoch"):
      self.setup_data()
    if not hasattr(self, "model"):
      self.setup_model()
    with contextlib.ExitStack() as stack:
      if self.is_chief:
        stack.enter_context(workdir_lib.removed_on_failure(
            self.workdir, lambda: self.manager.latest_checkpoint is not None))
        stack.enter_context(workdir_lib.locked(self.workdir))
      stack.enter_context(data.named_input_errors())
      return self._train()

  def _train(self):
    from tfbio import analysis  # pylint: disable=g-import-not-at-top

    self._write_config()
    restored = self.manager.restore_or_initialize()
    start = int(self.step.numpy())
    if restored:
      logging.info("Resumed from %s at step %d", restored, start)
    spe, epochs = self.steps_per_epoch, self.config.epochs
    total_steps = spe * epochs
    history = workdir_lib.read_history(self.workdir, max_epoch=start // spe)
    writer = (tf.summary.create_file_writer(
        workdir_lib.path(self.workdir, workdir_lib.TENSORBOARD))
              if self.is_chief else tf.summary.create_noop_writer())
    train_step = self._train_step_fn()
    algorithm = feedback_name(self.config)
    logging.info("Training %s (feedback %s, last layer %s) on %s: %d epochs "
                 "x %d steps, global batch %d, %d replica(s), strategy %s",
                 self.config.model.name, algorithm, self.config.last_layer,
                 self.config.data.name, epochs, spe, self.config.batch_size,
                 self.strategy.num_replicas_in_sync, self.strategy_name)
    t0 = time.time()
    first_loss = None
    epoch_times = []
    while int(self.step.numpy()) < total_steps:
      step = int(self.step.numpy())
      epoch, done = divmod(step, spe)
      t_epoch = time.time()
      iterator = iter(self.strategy.experimental_distribute_dataset(
          self._train_dataset(epoch, done)))
      sums = {k: [] for k in self.step_metrics}
      for i in range(done, spe):
        values = {k: float(v) for k, v in train_step(iterator).items()}
        loss = values["loss"]
        global_step = epoch * spe + i + 1
        first_loss = loss if first_loss is None else first_loss
        if not math.isfinite(loss) or (
            abs(loss) > DIVERGENCE_FACTOR * max(abs(first_loss), 1e-3)):
          latest = self.manager.latest_checkpoint
          raise TrainingDiverged(
              f"Training diverged: loss {loss:.4g} at step {global_step} "
              f"(epoch {epoch + 1}; first loss {first_loss:.4g}) with "
              f"feedback {algorithm!r}; " + (
                  f"the last good checkpoint is {latest}" if latest else
                  "no checkpoint was written before it"))
        for k in self.step_metrics:
          sums[k].append(values[k])
        if (self.is_chief and self.log_every_steps
            and global_step % self.log_every_steps == 0):
          per_step = (time.time() - t_epoch) / (i + 1 - done)
          epoch_left = per_step * (spe - i - 1)
          logging.info("%s", progress_line(
              f"step {global_step}/{total_steps} (epoch {epoch + 1}/"
              f"{epochs})", values,
              images_per_second=self.config.batch_size / per_step,
              epoch_eta=epoch_left, run_eta=epoch_left + per_step * spe * (
                  epochs - epoch - 1)))
        if global_step % self.config.log_every_steps == 0:
          if self.is_chief:
            workdir_lib.append_step(self.workdir, global_step, values)
          with writer.as_default(step=global_step):
            for k, v in values.items():
              tf.summary.scalar(f"train/step_{k}", v)
        if (global_step % self.config.checkpoint_every_steps == 0
            and i + 1 < spe):
          self.manager.save(checkpoint_number=global_step)
        if global_step == self.config.debug_kill_after_step and not restored:
          logging.warning("debug_kill_after_step=%d: SIGKILL", global_step)
          os.kill(os.getpid(), signal.SIGKILL)
      train_seconds = time.time() - t_epoch
      row = {"epoch": epoch + 1, "step": (epoch + 1) * spe,
             "lr": float(self.optimizer.learning_rate)}
      if done:  # Resumed mid-epoch: train_* cover the steps after it.
        row["resumed_at_step"] = epoch * spe + done
      row.update({f"train_{k}": float(np.mean(v)) if v else float("nan")
                  for k, v in sums.items()})
      row.update(self.evaluate())
      if self.config.alignment:
        row.update({k: float(v) for k, v in
                    analysis.network_metrics(self.model).items()})
      history.append(row)
      if self.is_chief:
        workdir_lib.write_history(self.workdir, history)
      with writer.as_default(step=(epoch + 1) * spe):
        for key, value in row.items():
          if key not in ("epoch", "step") and math.isfinite(value):
            tf.summary.scalar(key.replace("/", "_at_"), value)
      writer.flush()
      self.manager.save(checkpoint_number=(epoch + 1) * spe)
      epoch_times.append(time.time() - t_epoch)
      self._log_epoch(row, epoch + 1, epochs, images_per_second=(
          (spe - done) * self.config.batch_size / max(train_seconds, 1e-9)),
                      epoch_seconds=epoch_times[-1],
                      run_eta=np.mean(epoch_times) * (epochs - epoch - 1))
    return self._finish(history, time.time() - t0)

  # The eval metric that ranks epochs and runs (its mode:
  # tfbio.train.workdir.PRIMARY_MODES).
  primary_metric = "eval_error"

  def _log_epoch(self, row, epoch, epochs, **timing):
    """Logs an epoch's progress line (chief): its train_* and primary metric."""
    if not self.is_chief:
      return
    shown = {k[len("train_"):]: row[k] for k in row
             if k.startswith("train_") and "/" not in k}
    if self.primary_metric in row:
      shown[self.primary_metric] = row[self.primary_metric]
    logging.info("%s", progress_line(f"epoch {epoch}/{epochs}", shown,
                                     **timing))

  def _summary_fields(self, seconds):
    """``metrics.json`` entries besides the metric values."""
    return {
        "model": self.config.model.name,
        "feedback": config_lib.plain(self.config.feedback),
        "last_layer": config_lib.plain(self.config.last_layer),
        "dataset": self.config.data.name,
        "epochs": self.config.epochs,
        "steps": int(self.step.numpy()),
        "wall_seconds_this_run": seconds,
        "num_replicas": self.strategy.num_replicas_in_sync,
    }

  def _finish(self, history, seconds, **extra):
    """Writes ``model.keras`` and ``metrics.json``; returns the metrics."""
    final = history[-1] if history else self.evaluate()
    metrics = workdir_lib.summary(
        primary_metric=self.primary_metric, history=history, final=final,
        **self._summary_fields(seconds), **extra)
    if self.is_chief:
      self.model.save(workdir_lib.path(self.workdir, workdir_lib.MODEL))
      workdir_lib.write_metrics(self.workdir, metrics)
      key = self.primary_metric
      logging.info("Done: final %s %.4f (best %.4f); wrote %s", key,
                   metrics[f"final_{key}"], metrics[f"best_{key}"],
                   workdir_lib.path(self.workdir, workdir_lib.METRICS))
    return metrics

  def restore_latest(self):
    """Restores the latest checkpoint (after :meth:`setup_model`).

    Raises:
      ValueError: the run has no checkpoint yet.
    """
    latest = self.manager.latest_checkpoint
    if latest is None:
      raise ValueError(f"{self.workdir!r} has no checkpoint yet.")
    self.checkpoint.restore(latest).expect_partial()
    logging.info("Restored %s (step %d)", latest, int(self.step.numpy()))
    return latest
