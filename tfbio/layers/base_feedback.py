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
  a weight's sign leaves it at ``±1e-10`` instead (docs/algorithms.md §1).
  The reference signs are those of ``W`` at build time, kept in the
  ``sign_reference`` variable; call :meth:`reset_sign_reference` after
  assigning new weights.
"""

import keras
import tensorflow as tf

from tfbio import feedback as feedback_lib
from tfbio.layers import feedback_mixin as shared
from tfbio.ops import feedback_kernels as fk


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
    (self.feedback, self.density, self.feedback_density, self.sign_fixed,
     self.seed) = shared.check_feedback_args(feedback, density,
                                             feedback_density, sign_fixed,
                                             seed)
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
        self.kernel_kind, int(fan_in), int(fan_out), self.seed,
        fk.initializer_std(self.kernel_initializer, fan_in, fan_out))
    if self.density < 1.0:
      self.kernel_mask = shared.add_mask(self, "kernel_mask", shape,
                                         self.density, self.seed,
                                         feedback_lib.PURPOSE_KERNEL_MASK)
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
    # Also sets self.feedback_mask and self.sign_reference (when used).
    _, self._feedback_state, _ = shared.build_feedback_state(
        self, self, self.kernel, self._feedback_ctx)
    if self.feedback.per_step:
      self.feedback_step = shared.add_feedback_step(self)

  def adapt_initializer(self, initializer):
    """Hook for kernel shapes whose fans Keras computes wrongly (LC layers).

    Used for ``W`` and for ``B`` drawn "like ``W``" (``fa``, ``urfb``).
    """
    return initializer

  def _constrain_kernel(self, w):
    return shared.constrain_kernel(w, self._user_kernel_constraint,
                                   self.sign_reference, self.kernel_mask)

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
    w, b = shared.kernel_pair(self, self.kernel, self.kernel_mask,
                              self.feedback_mask, self._feedback_state,
                              self._feedback_ctx,
                              shared.feedback_step_value(self))
    # The plain op (B None) leaves the step as it is.
    if training and b is not None and self.feedback_step is not None:
      self.feedback_step.assign_add(1)
    return w, b

  def feedback_kernel(self):
    """The ``B`` that the backward pass uses at the current step (a tensor).

    For ``bp`` this is ``W`` itself (masked where a feedback mask is set).
    """
    shared.check_built(self)
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
        **shared.feedback_config(self),
    })
    return config
