"""Optimizers of the seeds: Batch Manhattan (liao2016 §3)."""

import math

import keras
from keras import ops

SETTINGS = (0, 1, 2, 3)


@keras.saving.register_keras_serializable(package="tfbio")
class BatchManhattan(keras.optimizers.Optimizer):
  """Batch Manhattan (liao2016 §3): update with the *sign* of the gradient.

  With ``g`` the minibatch gradient, ``m`` momentum, ``d`` weight decay, ``η``
  the learning rate and ``w += η τ`` (docs/algorithms.md §3):

  * setting 0 (SGD):          ``τ = -g + m τ_prev - d w``
  * setting 1 (default "BM"): ``τ = -sign(g) + m τ_prev - d w``
  * setting 2:                ``τ = sign(-sign(g) + m τ_prev - d w)``
  * setting 3:                ``κ = -sign(g) + m κ_prev - d w``, ``τ = sign(κ)``

  Weight decay and momentum enter exactly as written (not as in
  ``keras.optimizers.SGD``, whose decay is decoupled and whose velocity
  already includes ``η``). Under ``tf.distribute`` Keras all-reduces the
  gradients before ``update_step``, so the sign is that of the global
  minibatch gradient. Sign-fixed weights are an option of the layers
  (``sign_fixed=True``) and so work with this optimizer too.

  Example:

  >>> model.compile(optimizer=tfbio.optimizers.BatchManhattan(5e-4),
  ...               loss="sparse_categorical_crossentropy")

  Args:
    learning_rate: float ≥ 0 or a Keras learning-rate schedule.
    momentum: ``m`` in [0, 1].
    weight_decay: ``d`` ≥ 0, applied inside ``τ`` as above.
    setting: 0, 1, 2 or 3.
    name, **kwargs: base optimizer arguments (``clipnorm`` etc.; Keras'
      own ``weight_decay`` is not used).
  """

  def __init__(self, learning_rate=5e-4, momentum=0.9, weight_decay=0.0,
               setting=1, name="batch_manhattan", **kwargs):
    if isinstance(learning_rate, (int, float)) and (
        learning_rate < 0 or math.isnan(learning_rate)):
      raise ValueError(f"learning_rate must be >= 0. Received: "
                       f"learning_rate={learning_rate!r}")
    for arg, value, high in (("momentum", momentum, 1.0),
                             ("weight_decay", weight_decay, math.inf)):
      if not isinstance(value, (int, float)) or isinstance(value, bool) or (
          not 0.0 <= value <= high):
        raise ValueError(f"{arg} must be a number in [0, {high}]. Received: "
                         f"{arg}={value!r}")
    if setting not in SETTINGS or isinstance(setting, bool):
      raise ValueError(f"setting must be one of {SETTINGS} (liao2016 §3). "
                       f"Received: setting={setting!r}")
    kwargs.pop("weight_decay", None)
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = float(momentum)
    self.bm_weight_decay = float(weight_decay)
    self.setting = int(setting)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    # τ_prev (settings 0–2) or κ_prev (setting 3).
    self.traces = self.add_optimizer_variables(variables, "trace")

  def update_step(self, gradient, variable, learning_rate):
    dtype = variable.dtype
    lr = ops.cast(learning_rate, dtype)
    g = ops.cast(gradient, dtype)
    trace = self.traces[self._get_variable_index(variable)]
    step = g if self.setting == 0 else ops.sign(g)
    tau = ops.subtract(
        ops.add(ops.negative(step), ops.multiply(trace, self.momentum)),
        ops.multiply(variable, self.bm_weight_decay))
    if self.setting == 3:
      self.assign(trace, tau)  # κ
      tau = ops.sign(tau)
    elif self.setting == 2:
      tau = ops.sign(tau)
      self.assign(trace, tau)
    else:
      self.assign(trace, tau)
    self.assign_add(variable, ops.multiply(tau, lr))

  def get_config(self):
    config = super().get_config()
    config.pop("weight_decay", None)
    config.update({"momentum": self.momentum,
                   "weight_decay": self.bm_weight_decay,
                   "setting": self.setting})
    return config
