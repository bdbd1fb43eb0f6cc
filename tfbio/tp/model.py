"""Difference target propagation (DTP) and simplified DTP (SDTP), as a model.

bartunov2018 §2.1.1 and Algorithm 1; docs/algorithms.md §6. A stack of blocks
``h_l = f_l(h_{l-1}) = σ_l(W_l h_{l-1} + b_l)`` (``l = 1..L``, ``h_0 = x``,
``f_L`` the classifier; see ``tfbio.tp.inverse``) is trained without
backpropagating through more than one layer:

* targets, from the top down (all held constant, ``stop_gradient``):

  - DTP: ``ĥ_{L-1} = h_{L-1} - α ∂L/∂h_{L-1}``, the gradient of the
    per-example task loss through the classifier ``f_L`` only;
  - SDTP: ``ĥ_L = argmin_{h_L} L(h_L)``, the label distribution (one-hot)
    in the space of the softmax output ``p_L = softmax(f_L(h_{L-1}))``, and
    ``ĥ_{L-1} = h_{L-1} + g_L(ĥ_L) - g_L(p_L)`` (no gradient anywhere);
  - both, for ``l = L-1 .. 2``:
    ``ĥ_{l-1} = h_{l-1} + g_l(ĥ_l) - g_l(h_l)`` (difference correction);

* forward (layer-local) losses ``L_l = ||f_l(h_{l-1}) - ĥ_l||²`` for
  ``l < L`` with ``h_{l-1}`` and ``ĥ_l`` constants, and the task loss
  (softmax cross-entropy) for the classifier, whose input is constant too;
  so ``θ_l`` receives the gradient of its own loss only;
* inverse losses, for every block that has an inverse (``l = 2..L-1`` for
  DTP, ``2..L`` for SDTP; the first layer needs none), with
  ``ε ~ N(0, σ²)`` and ``f_l`` held constant:

  - ``"denoising"`` (bartunov2018's choice, docs/algorithms.md §6):
    ``||h_{l-1} - g_l(f_l(h_{l-1} + ε))||²``;
  - ``"noise_preserving"`` (Lee et al. 2015, bartunov2018 appendix
    "Denoising vs noise-preserving"): ``||(h_{l-1} + ε) - g_l(f_l(h_{l-1} +
    ε))||²``;

  for ``l = L`` (SDTP) ``f_L`` includes the softmax.

``||·||²`` is the squared L2 norm over the units of one example, averaged
over the batch. Forward and inverse parameters have separate optimizers
(Adam in bartunov2018 §3 and Table 4). ``schedule="parallel"`` updates both
every step; ``"alternating"`` trains the inverses only in even epochs
(0, 2, ...) and the forward weights only in odd ones (the original DTP
schedule: "one loss for one full epoch of the training set before switching
to training the other loss").
"""

from absl import logging
import keras
import tensorflow as tf

from tfbio.layers import chain
from tfbio.ops.similarity import angle_degrees
from tfbio.tp import inverse as inverse_lib
from tfbio.utils import checks
from tfbio.utils.seeds import resolve_seed

VARIANTS = ("dtp", "sdtp")
SCHEDULES = ("parallel", "alternating")
INVERSE_TRAININGS = ("denoising", "noise_preserving")

# Defaults inside the ranges of bartunov2018 Table 4: learning rates in
# [1e-5, 3e-4], β1 = 0.9, β2 in {0.99, 0.999}, ε in {1e-4, 1e-6, 1e-8};
# α in [0.01, 0.2]; σ in [0.01, 0.3].
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_STEP_SIZE = 0.1
DEFAULT_NOISE_STD = 0.1


def default_optimizer(learning_rate=DEFAULT_LEARNING_RATE, name=None):
  """Adam with bartunov2018 Table 4's β1 = 0.9, β2 = 0.999, ε = 1e-8."""
  return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9,
                               beta_2=0.999, epsilon=1e-8, name=name)


def _get_optimizer(value, name, default_name):
  if value is None:
    return default_optimizer(name=default_name)
  if isinstance(value, dict):
    value = keras.optimizers.deserialize(value)
  elif isinstance(value, str):
    value = keras.optimizers.get(value)
  if not isinstance(value, keras.optimizers.Optimizer):
    raise ValueError(f"{name} must be a keras optimizer (or its name/config). "
                     f"Received: {name}={value!r}")
  return value


def squared_error(a, b):
  """``||a - b||²`` over the non-batch axes, averaged over the batch."""
  d = tf.reshape(a - b, [tf.shape(a)[0], -1])
  return tf.reduce_mean(tf.reduce_sum(tf.square(d), axis=1))


class EpochCounter(keras.callbacks.Callback):
  """Writes the epoch index into ``model.tp_epoch`` at every epoch start.

  :meth:`TargetPropModel.fit` adds one automatically. Under the alternating
  schedule it then switches the model to the train step of the epoch's
  phase (inverses in even epochs, forward weights in odd ones).
  """

  def on_epoch_begin(self, epoch, logs=None):
    self.model.tp_epoch.assign(epoch)
    if self.model.schedule == "alternating":
      self.model.make_train_function()


@keras.saving.register_keras_serializable(package="tfbio")
class TargetPropModel(chain.NetworkWrapper, keras.Model):
  """Trains a chain of tfbio layers by (simplified) difference target prop.

  bartunov2018 §2.1.1, Algorithm 1 (SDTP) and the appendix (inverses of
  locally-connected layers); docs/algorithms.md §6. The equations are in the
  module docstring of ``tfbio.tp.model``. ``call`` / ``predict`` / ``evaluate``
  run the wrapped network unchanged (it outputs logits or, if the classifier has
  a softmax activation, probabilities).

  Example:

  >>> net = tfbio.models.create_model("bartunov2018_mnist_fc")
  >>> model = tfbio.tp.TargetPropModel(net, variant="sdtp")
  >>> model.compile(metrics=["accuracy"])
  >>> history = model.fit(x, y, epochs=5, validation_data=(x_val, y_val))

  Epoch logs: ``loss`` (task cross-entropy), ``error`` (classification error
  rate), compiled metrics, and per block ``fwd_loss/<layer>`` (hidden
  blocks), ``inv_loss/<layer>`` (blocks with an inverse ``g_l``) and
  ``bp_angle/<layer>`` (all blocks; the angle in degrees between the TP
  update direction, i.e. the gradient of the block's local loss with respect
  to its ``(W_l, b_l)``, and the backprop gradient of the task loss,
  ``tfbio.ops.angle_degrees``: NaN if either is exactly zero; a diagnostic
  only, never used for learning). Validation adds ``val_loss``,
  ``val_error`` and the compiled metrics.

  Args:
    network: a built Sequential / chain-shaped functional ``keras.Model``
      (e.g. ``tfbio.models.create_model("bartunov2018_mnist_fc")``) or a
      list of layers (then ``input_shape`` is required). Feedback layers
      must use ``feedback="bp"``; only their forward computation is used.
    variant: ``"dtp"`` or ``"sdtp"``.
    schedule: ``"parallel"`` or ``"alternating"``.
    inverse_training: ``"denoising"`` or ``"noise_preserving"``.
    noise_std: σ >= 0 of the noise that trains the inverses.
    step_size: α >= 0 of DTP's penultimate target (unused by SDTP).
    forward_optimizer: optimizer of the forward parameters ``θ`` (default
      Adam, lr 1e-4, β = (0.9, 0.999), ε = 1e-8); also ``self.optimizer``.
    inverse_optimizer: optimizer of the inverse parameters ``λ`` (same
      default).
    bp_angle: whether to log ``bp_angle/<layer>`` (costs one extra
      forward/backward pass per step).
    input_shape: input shape without the batch axis, to build ``network``.
    seed: int seed of the inverse-training noise (drawn when None).
    **kwargs: ``keras.Model`` arguments (``name``, ...).

  Raises:
    ValueError: an unknown variant / schedule / inverse training, σ < 0,
      α < 0, a layer without an inverse (named), a non-chain model, or an
      ``input_shape`` that does not match ``network``.
  """

  def __init__(self, network, variant="dtp", schedule="parallel",
               inverse_training="denoising", noise_std=DEFAULT_NOISE_STD,
               step_size=DEFAULT_STEP_SIZE, forward_optimizer=None,
               inverse_optimizer=None, bp_angle=True, input_shape=None,
               seed=None, **kwargs):
    super().__init__(**kwargs)
    self.variant = checks.one_of("variant", variant, VARIANTS)
    self.schedule = checks.one_of("schedule", schedule, SCHEDULES)
    self.inverse_training = checks.one_of("inverse_training",
                                          inverse_training, INVERSE_TRAININGS)
    self.noise_std = checks.number("noise_std", noise_std, 0, strings=True)
    self.step_size = checks.number("step_size", step_size, 0, strings=True)
    self.bp_angle = checks.boolean("bp_angle", bp_angle)
    self.seed = resolve_seed(seed)
    self.network = chain.build_network(network, input_shape)
    self.blocks = inverse_lib.split_blocks(self.network)
    classifier = self.blocks[-1].layer
    if len(self.blocks[-1].output_shape) != 1 or (
        self.blocks[-1].output_shape[0] < 2):
      raise ValueError(f"The classifier {classifier.name!r} must output "
                       f"(batch, classes >= 2); its output shape is "
                       f"{self.blocks[-1].output_shape}.")
    self.num_classes = self.blocks[-1].output_shape[0]
    if classifier.activation in (None, keras.activations.linear):
      self._from_logits = True
    elif classifier.activation is keras.activations.softmax:
      self._from_logits = False
    else:
      activation = keras.activations.serialize(classifier.activation)
      raise ValueError(f"The classifier {classifier.name!r} must output logits "
                       f"or a softmax. Received: activation={activation!r}")

    # g_l for l = 2..L-1 (DTP) or 2..L (SDTP), 0-based block index l-1.
    num_blocks = len(self.blocks)
    last = num_blocks if self.variant == "sdtp" else num_blocks - 1
    self._inverse_of = {}
    inverses = []
    for index in range(1, last):
      self._inverse_of[index] = len(inverses)
      inverses.append(inverse_lib.make_inverse(
          self.blocks[index], self.blocks[index - 1].layer))
    self.inverse_layers = inverses

    self.forward_optimizer = _get_optimizer(
        forward_optimizer, "forward_optimizer", "forward_adam")
    self.inverse_optimizer = _get_optimizer(
        inverse_optimizer, "inverse_optimizer", "inverse_adam")
    if self.forward_optimizer is self.inverse_optimizer:
      raise ValueError("forward_optimizer and inverse_optimizer must be two "
                       "different optimizer objects.")
    self.tp_epoch = keras.Variable(0, dtype="int64", trainable=False,
                                   name="tp_epoch")
    self._train_functions = {}
    self._trace_phase = self.phase
    self._noise = keras.random.SeedGenerator(seed, name="tp_noise")
    self._error_tracker = keras.metrics.Mean(name="error")
    self._fwd_trackers = [keras.metrics.Mean(name=f"fwd_loss/{b.name}")
                          for b in self.blocks[:-1]]
    self._inv_trackers = [keras.metrics.Mean(name=f"inv_loss/{b.name}")
                          for i, b in enumerate(self.blocks)
                          if i in self._inverse_of]
    self._angle_trackers = ([keras.metrics.Mean(name=f"bp_angle/{b.name}")
                             for b in self.blocks] if bp_angle else [])
    self.built = True
    logging.info("TargetPropModel %s: %s, %s, %s inverses; blocks %s; "
                 "inverses for %s.", self.name, self.variant, self.schedule,
                 self.inverse_training, self.blocks,
                 [self.blocks[i].name for i in sorted(self._inverse_of)])

  # -- construction ----------------------------------------------------------

  @property
  def forward_variables(self):
    """``θ``: the trainable weights of the blocks' feedback layers."""
    return [v for b in self.blocks for v in b.layer.trainable_variables]

  @property
  def inverse_variables(self):
    """``λ``: the trainable weights of the inverses ``g_l``."""
    return [v for g in self.inverse_layers for v in g.trainable_variables]

  def inverse(self, layer_name):
    """The :class:`LayerInverse` ``g_l`` of the block of ``layer_name``."""
    for index, block in enumerate(self.blocks):
      if block.name == layer_name and index in self._inverse_of:
        return self.inverse_layers[self._inverse_of[index]]
    names = [self.blocks[i].name for i in sorted(self._inverse_of)]
    raise ValueError(f"No inverse for layer {layer_name!r}; inverses exist for "
                     f"{names}.")

  # -- Keras plumbing ----------------------------------------------------------

  def call(self, inputs, training=None):
    return self.network(inputs, training=training)

  def compile(self, optimizer=None, loss=None, metrics=None,
              jit_compile=False, **kwargs):
    """Keras ``compile``; the task loss is fixed (softmax cross-entropy).

    Args:
      optimizer: replaces ``forward_optimizer`` when given.
      loss: must be None.
      metrics: extra Keras metrics on the network output (e.g.
        ``["accuracy"]``).
      jit_compile: XLA for the train step; off by default (Keras' ``"auto"``
        would turn it on for GPUs, where this step has not been tested).
      **kwargs: other ``keras.Model.compile`` arguments.
    """
    if loss is not None:
      raise ValueError(f"TargetPropModel trains on softmax cross-entropy and "
                       f"takes no loss. Received: loss={loss!r}")
    if optimizer is not None:
      self.forward_optimizer = _get_optimizer(optimizer, "optimizer", None)
    super().compile(optimizer=self.forward_optimizer, metrics=metrics,
                    jit_compile=jit_compile, **kwargs)
    self._train_functions = {}
    if not self.forward_optimizer.built:
      self.forward_optimizer.build(self.forward_variables)
    if not self.inverse_optimizer.built and self.inverse_variables:
      self.inverse_optimizer.build(self.inverse_variables)

  def compile_from_config(self, config):
    config = keras.saving.deserialize_keras_object(config)
    self.compile(**config)

  def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto",
          callbacks=None, **kwargs):
    """``keras.Model.fit`` plus an :class:`EpochCounter` callback."""
    callbacks = list(callbacks or [])
    if not any(isinstance(c, EpochCounter) for c in callbacks):
      callbacks.insert(0, EpochCounter())
    return super().fit(x, y, batch_size=batch_size, epochs=epochs,
                       verbose=verbose, callbacks=callbacks, **kwargs)

  # -- target propagation ------------------------------------------------------

  def _labels(self, y):
    """``(labels int32 [b], distribution float [b, C])`` from ``y``."""
    y = tf.convert_to_tensor(y)
    c = self.num_classes
    if y.shape.rank == 2 and y.shape[-1] == c:  # One-hot / distribution.
      dist = tf.cast(y, self.compute_dtype)
      return tf.argmax(dist, axis=-1, output_type=tf.int32), dist
    if y.shape.rank == 2 and y.shape[-1] == 1:
      y = y[:, 0]
    if y.shape.rank != 1:
      raise ValueError(f"Labels must be class indices (batch,) or one-hot "
                       f"(batch, {c}). Received: labels of shape {y.shape}")
    labels = tf.cast(y, tf.int32)
    return labels, tf.one_hot(labels, c, dtype=self.compute_dtype)

  def _task_loss(self, dist, out):
    """Per-example softmax cross-entropy ``L(h_L)``."""
    return keras.losses.categorical_crossentropy(
        dist, out, from_logits=self._from_logits)

  def _distribution(self, out):
    """``p_L``: the classifier output as a label distribution."""
    return tf.nn.softmax(out) if self._from_logits else out

  def _g(self, index, h):
    return self.inverse_layers[self._inverse_of[index]](h)

  def forward(self, x, training=None):
    """``[h_0 = x, h_1, ..., h_L]``, each block applied to a constant input."""
    h = tf.cast(tf.convert_to_tensor(x), self.compute_dtype)
    hs = [h]
    for block in self.blocks:
      h = block(tf.stop_gradient(h), training=training)
      hs.append(h)
    return hs

  def targets(self, hs, dist):
    """Targets ``{l: ĥ_l}`` for ``l = 1..L-1`` (and ``L`` for SDTP), constant.

    Args:
      hs: ``[h_0, ..., h_L]`` from :meth:`forward`.
      dist: label distribution ``[b, C]``.
    """
    num = len(self.blocks)
    targets = {}
    if self.variant == "sdtp":
      targets[num] = dist  # ĥ_L = argmin L(h_L): the label distribution.
      targets[num - 1] = (hs[num - 1] + self._g(num - 1, dist)
                          - self._g(num - 1, self._distribution(hs[num])))
    else:
      penultimate = tf.stop_gradient(hs[num - 1])
      with tf.GradientTape() as tape:
        tape.watch(penultimate)
        loss = tf.reduce_sum(self._task_loss(
            dist, self.blocks[-1](penultimate, training=False)))
      grad = tape.gradient(loss, penultimate)
      targets[num - 1] = hs[num - 1] - self.step_size * grad
    for l in range(num - 1, 1, -1):  # ĥ_{l-1} from ĥ_l through g_l.
      targets[l - 1] = (hs[l - 1] + self._g(l - 1, targets[l])
                        - self._g(l - 1, hs[l]))
    return {l: tf.stop_gradient(t) for l, t in targets.items()}

  def inverse_losses(self, hs, noise=None):
    """``[L_inv(λ_l)]`` for the blocks with an inverse, in block order.

    Args:
      hs: ``[h_0, ..., h_L]`` from :meth:`forward`.
      noise: optional list of ``ε`` tensors (one per inverse, shaped like its
        ``h_{l-1}``); drawn from ``N(0, σ²)`` when None.
    """
    losses = []
    for position, index in enumerate(sorted(self._inverse_of)):
      h_prev = tf.stop_gradient(hs[index])
      if noise is not None:
        noisy = h_prev + tf.cast(noise[position], h_prev.dtype)
      elif self.noise_std > 0:
        noisy = h_prev + keras.random.normal(
            tf.shape(h_prev), stddev=self.noise_std, dtype=h_prev.dtype,
            seed=self._noise)
      else:
        noisy = h_prev
      h = self.blocks[index](noisy, training=False)
      if index == len(self.blocks) - 1:
        h = self._distribution(h)
      reconstruction = self._g(index, tf.stop_gradient(h))
      target = h_prev if self.inverse_training == "denoising" else noisy
      losses.append(squared_error(reconstruction, target))
    return losses

  def tp_losses(self, x, y, training=True):
    """All losses of one TP step.

    Returns:
      A dict: ``"output"`` (``h_L``), ``"labels"``, ``"task"`` (mean
      cross-entropy, the classifier's loss), ``"forward"`` (list of
      ``||h_l - ĥ_l||²``, ``l = 1..L-1``), ``"inverse"`` (list, see
      :meth:`inverse_losses`), ``"activations"`` and ``"targets"``.
    """
    labels, dist = self._labels(y)
    hs = self.forward(x, training=training)
    task = tf.reduce_mean(self._task_loss(dist, hs[-1]))
    targets = self.targets(hs, dist)
    forward = [squared_error(hs[l], targets[l])
               for l in range(1, len(self.blocks))]
    return {"output": hs[-1], "labels": labels, "task": task,
            "forward": forward, "inverse": self.inverse_losses(hs),
            "activations": hs, "targets": targets}

  def compute_gradients(self, x, y, training=True):
    """TP gradients of ``θ`` and ``λ`` for one batch (applies nothing).

    Forward and inverse losses depend on disjoint parameters (every input and
    target is a constant), so one gradient of their sum gives each parameter
    the gradient of its own local loss.

    Returns:
      ``(forward_grads, inverse_grads, losses)`` aligned with
      :attr:`forward_variables` / :attr:`inverse_variables`; ``losses`` is
      the dict of :meth:`tp_losses`.
    """
    fwd_vars, inv_vars = self.forward_variables, self.inverse_variables
    with tf.GradientTape() as tape:
      losses = self.tp_losses(x, y, training=training)
      total = losses["task"] + tf.add_n(losses["forward"])
      if losses["inverse"]:
        total += tf.add_n(losses["inverse"])
    grads = tape.gradient(total, fwd_vars + inv_vars)
    return grads[:len(fwd_vars)], grads[len(fwd_vars):], losses

  def backprop_gradients(self, x, y, training=True):
    """BP gradients of the mean task loss w.r.t. ``θ`` (diagnostic only)."""
    _, dist = self._labels(y)
    with tf.GradientTape() as tape:
      out = self.network(tf.cast(x, self.compute_dtype), training=training)
      loss = tf.reduce_mean(self._task_loss(dist, out))
    return tape.gradient(loss, self.forward_variables)

  def reconstruction_errors(self, x):
    """``{layer: ||h_{l-1} - g_l(f_l(h_{l-1}))||²}`` without noise (numbers).

    For the classifier (SDTP) ``f_L`` includes the softmax.
    """
    hs = self.forward(x, training=False)
    errors = {}
    for index in sorted(self._inverse_of):
      h = hs[index + 1]
      if index == len(self.blocks) - 1:
        h = self._distribution(h)
      errors[self.blocks[index].name] = float(
          squared_error(self._g(index, h), hs[index]))
    return errors

  @property
  def phase(self):
    """What the current epoch trains: ``"both"``, ``"inverse"``, ``"forward"``.

    Parallel: both, every step. Alternating: inverses in even epochs of
    ``tp_epoch`` (0, 2, ...), forward weights in odd ones.
    """
    if self.schedule == "parallel":
      return "both"
    return "inverse" if int(self.tp_epoch.numpy()) % 2 == 0 else "forward"

  def make_train_function(self, force=False):
    """One compiled train step per phase (alternating), switched per epoch.

    The phase is a Python constant of each traced step, so no optimizer
    update sits inside graph control flow (which ``tf.distribute`` forbids).
    """
    if self.schedule == "parallel":
      return super().make_train_function(force=force)
    phase = self.phase
    function = None if force else self._train_functions.get(phase)
    if function is None:
      super().make_train_function(force=True)
      function = self._train_functions[phase] = self.train_function
    self.train_function = function
    self._trace_phase = phase
    return function

  def _apply(self, optimizer, grads, variables):
    if variables:
      optimizer.apply(grads, variables)

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
      raise ValueError("TargetPropModel does not support sample weights. "
                       "Received: sample_weight is not None")
    fwd_grads, inv_grads, losses = self.compute_gradients(x, y)
    if self.bp_angle:  # At the same parameters, before any update.
      bp_grads = self.backprop_gradients(x, y)
    if self._trace_phase in ("both", "forward"):
      self._apply(self.forward_optimizer, fwd_grads, self.forward_variables)
    if self._trace_phase in ("both", "inverse"):
      self._apply(self.inverse_optimizer, inv_grads, self.inverse_variables)

    batch = tf.cast(tf.shape(losses["output"])[0], tf.float32)
    self._update_task_metrics(y, losses["output"], losses["labels"],
                              losses["task"], batch)
    for tracker, value in zip(self._fwd_trackers, losses["forward"]):
      tracker.update_state(value, sample_weight=batch)
    for tracker, value in zip(self._inv_trackers, losses["inverse"]):
      tracker.update_state(value, sample_weight=batch)
    if self.bp_angle:
      start = 0
      for tracker, block in zip(self._angle_trackers, self.blocks):
        stop = start + len(block.layer.trainable_variables)
        tracker.update_state(
            angle_degrees(fwd_grads[start:stop], bp_grads[start:stop]),
            sample_weight=batch)
        start = stop
    logs = self._task_logs()
    for tracker in (self._fwd_trackers + self._inv_trackers
                    + self._angle_trackers):
      logs[tracker.name] = tracker.result()
    return logs

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
      raise ValueError("TargetPropModel does not support sample weights. "
                       "Received: sample_weight is not None")
    labels, dist = self._labels(y)
    out = self(x, training=False)
    loss = tf.reduce_mean(self._task_loss(dist, out))
    batch = tf.cast(tf.shape(out)[0], tf.float32)
    self._update_task_metrics(y, out, labels, loss, batch)
    return self._task_logs()

  def _update_task_metrics(self, y, out, labels, loss, batch):
    self._loss_tracker.update_state(loss, sample_weight=batch)
    wrong = tf.not_equal(tf.argmax(out, axis=-1, output_type=tf.int32),
                         labels)
    self._error_tracker.update_state(tf.cast(wrong, tf.float32))
    if self._compile_metrics is not None:
      self._compile_metrics.update_state(y, out)

  def _task_logs(self):
    logs = {"loss": self._loss_tracker.result(),
            "error": self._error_tracker.result()}
    if self._compile_metrics is not None:
      logs.update(self._compile_metrics.result())
    return logs

  def get_config(self):
    return self.network_config(
        variant=self.variant, schedule=self.schedule,
        inverse_training=self.inverse_training, noise_std=self.noise_std,
        step_size=self.step_size,
        forward_optimizer=keras.optimizers.serialize(self.forward_optimizer),
        inverse_optimizer=keras.optimizers.serialize(self.inverse_optimizer),
        bp_angle=self.bp_angle, seed=self.seed)
