"""Private base of tfbio's feedback layers (Dense, Conv2D, locally-connected).

A feedback layer owns a forward kernel ``W`` and chooses, through its
feedback algorithm (``tfbio.feedback``), the kernel ``B`` that its backward
pass uses for the input gradient. The arithmetic lives in ``tfbio.ops``; this
class only decides which tensors to pass and keeps the state:

* feedback state of the algorithm (``M``, ``S_p``, ``B``), as variables;
* ``feedback_step``: int64 counter advanced once per training call, keying the
  stateless RNG of per-step algorithms (``brsf``, ``brsf_p``);
* optional fixed sparse-connectivity masks for ``W`` (``density``) and,
  independently, for ``B`` (``feedback_density``) — amit2019 §3.1; masked
  entries are exactly 0 forever (forward uses ``W ∘ mask``, so their gradient
  is 0, and a constraint re-applies the mask after every optimizer update);
* optional sign-fixed weights (``sign_fixed=True``): an update that would flip
  a weight's sign leaves it at ``±1e-10`` instead (SPEC §1). The reference
  signs are those of ``W`` at build time, kept in the ``sign_reference``
  variable; call :meth:`reset_sign_reference` after assigning new weights.
"""

import random

import keras
import tensorflow as tf

from tfbio import feedback as feedback_lib
from tfbio.ops import feedback_kernels as fk


def _check_density(name, value):
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a number in (0, 1]. Received: "
                     f"{name}={value!r}") from None
  if not 0.0 < value <= 1.0:
    raise ValueError(f"{name} must be in (0, 1]. Received: {name}={value!r}")
  return value


def resolve_seed(seed):
  """``seed``, or a fresh random one for None; ValueError unless an int >= 0.

  The drawn seed is stored (and serialized) so that a saved layer or model
  draws the same random feedback state again.
  """
  if seed is None:
    seed = random.randint(0, 2**31 - 2)
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"seed must be a non-negative int. Received: "
                     f"seed={seed!r}")
  return seed


class BaseFeedbackLayer(keras.layers.Layer):
  """Common machinery of feedback layers. Not used directly.

  Args:
    activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, bias_constraint: as in ``keras.layers.Dense``.
    feedback: feedback algorithm: a name from ``tfbio.feedback.names()``, a
      dict ``{"name": ..., **params}``, or a ``FeedbackAlgorithm``.
    density: fraction of ``W``'s connections kept by a fixed random mask
      (amit2019 §3.1 uses 0.5); 1.0 means no mask.
    feedback_density: same, for ``B``, drawn independently.
    sign_fixed: if True, weights never change sign during training.
    seed: integer seed of the layer's feedback randomness (masks, ``M``,
      ``S_p``, ``B``); drawn from Python's ``random`` (seeded by
      ``keras.utils.set_random_seed``) when None, and stored in the config.
    **kwargs: base ``keras.layers.Layer`` arguments.
  """

  kernel_kind = None  # "dense" or "conv"; set by subclasses.

  def __init__(self, activation=None, use_bias=True,
               kernel_initializer="glorot_uniform", bias_initializer="zeros",
               kernel_regularizer=None, bias_regularizer=None,
               activity_regularizer=None, kernel_constraint=None,
               bias_constraint=None, feedback="bp", density=1.0,
               feedback_density=1.0, sign_fixed=False, seed=None, **kwargs):
    super().__init__(activity_regularizer=activity_regularizer, **kwargs)
    if isinstance(activation, str) and ">" in activation:
      # Registered custom activations, e.g. "tfbio>saturated_linear"
      # (keras.activations.get only knows the built-in names).
      self.activation = keras.activations.deserialize(activation)
    else:
      self.activation = keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
    self.bias_regularizer = keras.regularizers.get(bias_regularizer)
    self.kernel_constraint = keras.constraints.get(kernel_constraint)
    self.bias_constraint = keras.constraints.get(bias_constraint)
    self.feedback = feedback_lib.get(feedback)
    self.density = _check_density("density", density)
    self.feedback_density = _check_density("feedback_density",
                                           feedback_density)
    if not isinstance(sign_fixed, bool):
      raise ValueError(f"sign_fixed must be a bool. Received: "
                       f"sign_fixed={sign_fixed!r}")
    self.sign_fixed = sign_fixed
    self.seed = resolve_seed(seed)
    self.kernel_mask = None
    self.feedback_mask = None
    self.sign_reference = None
    self.feedback_step = None
    self._feedback_state = {}
    self._feedback_ctx = None

  # -- build helpers ---------------------------------------------------------

  def _build_weights(self, shape, fan_in, fan_out, bias_shape):
    """Creates ``W`` (with its mask), the bias and all feedback state."""
    initializer = self.adapt_initializer(self.kernel_initializer)
    constraint = self.kernel_constraint
    self._feedback_ctx = feedback_lib.FeedbackContext(
        self.kernel_kind, int(fan_in), int(fan_out), self.seed)
    if self.density < 1.0:
      self.kernel_mask = self.add_weight(
          name="kernel_mask", shape=shape, trainable=False,
          initializer=self._mask_initializer(
              self.density, feedback_lib.PURPOSE_KERNEL_MASK))
      base_init, mask = initializer, self.kernel_mask
      initializer = lambda shape, dtype=None: (  # noqa: E731
          base_init(shape, dtype=dtype) * tf.cast(mask, dtype or "float32"))
    self._user_kernel_constraint = constraint
    if self.density < 1.0 or self.sign_fixed:
      constraint = self._constrain_kernel
    self.kernel = self.add_weight(
        name="kernel", shape=shape, initializer=initializer,
        regularizer=self.kernel_regularizer, constraint=constraint)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(
          name="bias", shape=tuple(bias_shape),
          initializer=self.bias_initializer,
          regularizer=self.bias_regularizer, constraint=self.bias_constraint)
    self._build_feedback_state()

  def _finish(self, y):
    """Adds the bias and applies the activation."""
    if self.bias is not None:
      bias = tf.cast(self.bias, y.dtype)
      # 1-D biases (Dense, Conv2D) use the fused op; untied ones broadcast.
      y = tf.nn.bias_add(y, bias) if len(self.bias.shape) == 1 else y + bias
    if self.activation is not None:
      y = self.activation(y)
    return y

  def _build_feedback_state(self):
    """Creates the algorithm's state, ``B``'s mask, sign reference, step."""
    shape = tuple(self.kernel.shape)
    if self.feedback_density < 1.0:
      self.feedback_mask = self.add_weight(
          name="feedback_mask", shape=shape, trainable=False,
          initializer=self._mask_initializer(
              self.feedback_density, feedback_lib.PURPOSE_FEEDBACK_MASK))
    self._feedback_state = self.feedback.build(
        self, shape, self.variable_dtype, self._feedback_ctx)
    for name, variable in self._feedback_state.items():
      # Attributes (not only the dict) so that tf.train.Checkpoint finds them;
      # "_" keeps them off the public feedback_kernel() method's name.
      setattr(self, "_" + name, variable)
    stored_b = self._feedback_state.get("feedback_kernel")
    if stored_b is not None and self.feedback_mask is not None:
      stored_b.assign(stored_b * self.feedback_mask)
      if stored_b.trainable:
        mask = self.feedback_mask
        stored_b.constraint = lambda b: b * mask
    if self.sign_fixed:
      kernel = self.kernel
      self.sign_reference = self.add_weight(
          name="sign_reference", shape=shape, trainable=False,
          initializer=lambda shape, dtype=None: tf.where(
              kernel.value >= 0, 1.0, -1.0))
    if self.feedback.per_step:
      self.feedback_step = self.add_weight(
          name="feedback_step", shape=(), dtype="int64", trainable=False,
          initializer="zeros", aggregation="only_first_replica")

  def adapt_initializer(self, initializer):
    """Hook for kernel shapes whose fans Keras computes wrongly (LC layers).

    Used for ``W`` and for ``B`` drawn "like ``W``" (``fa``, ``urfb``).
    """
    return initializer

  def _mask_initializer(self, density, purpose):
    seed = self.seed
    return lambda shape, dtype=None: fk.stateless_mask(
        shape, density, seed, purpose, dtype=dtype or "float32")

  def _constrain_kernel(self, w):
    if self._user_kernel_constraint is not None:
      w = self._user_kernel_constraint(w)
    if self.sign_fixed:
      w = fk.sign_fix(w, tf.cast(self.sign_reference, w.dtype))
    if self.kernel_mask is not None:
      w = w * tf.cast(self.kernel_mask, w.dtype)
    return w

  def reset_sign_reference(self):
    """Re-reads the reference signs from the current ``W`` (and re-masks it).

    Call after assigning weights by hand (``tfbio.convert`` does).
    """
    if self.kernel_mask is not None:
      self.kernel.assign(self.kernel * self.kernel_mask)
    if self.sign_fixed:
      self.sign_reference.assign(tf.where(self.kernel.value >= 0, 1.0, -1.0))

  # -- call helpers ----------------------------------------------------------

  def _kernels(self, training=False):
    """Returns ``(W_eff, B)``; ``B`` is None when the plain op applies."""
    w = tf.convert_to_tensor(self.kernel)
    if w.dtype != self.compute_dtype:
      w = tf.cast(w, self.compute_dtype)
    if self.kernel_mask is not None:
      w = w * tf.cast(self.kernel_mask, w.dtype)
    if self.feedback.is_backprop and self.feedback_mask is None:
      return w, None
    step = 0
    if self.feedback_step is not None:
      step = tf.convert_to_tensor(self.feedback_step)
    b = self.feedback.kernel(w, self._feedback_state, self._feedback_ctx, step)
    if self.feedback_mask is not None:
      b = b * tf.cast(self.feedback_mask, b.dtype)
    if training and self.feedback_step is not None:
      self.feedback_step.assign_add(1)
    return w, b

  def feedback_kernel(self):
    """The ``B`` that the backward pass uses at the current step (a tensor).

    For ``bp`` this is ``W`` itself (masked where a feedback mask is set).
    """
    if not self.built:
      raise ValueError(f"Layer {self.name!r} is not built yet; call it on an "
                       "input first.")
    w, b = self._kernels(training=False)
    return w if b is None else b

  def get_config(self):
    config = super().get_config()
    config.update({
        "activation": keras.activations.serialize(self.activation),
        "use_bias": self.use_bias,
        "kernel_initializer": keras.initializers.serialize(
            self.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(
            self.bias_initializer),
        "kernel_regularizer": keras.regularizers.serialize(
            self.kernel_regularizer),
        "bias_regularizer": keras.regularizers.serialize(
            self.bias_regularizer),
        "activity_regularizer": keras.regularizers.serialize(
            self.activity_regularizer),
        "kernel_constraint": keras.constraints.serialize(
            self.kernel_constraint),
        "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        "feedback": feedback_lib.serialize(self.feedback),
        "density": self.density,
        "feedback_density": self.feedback_density,
        "sign_fixed": self.sign_fixed,
        "seed": self.seed,
    })
    return config
