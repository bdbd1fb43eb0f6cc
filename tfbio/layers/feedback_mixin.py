"""Feedback machinery for subclasses of Keras layers with linear kernels.

``tfbio.layers.Conv1D``, ``EinsumDense``, ``DepthwiseConv2D``, ... are the
Keras layers themselves (every Keras argument, ``get_config``,
``compute_output_shape`` and weight name is Keras') with one change: each
use of a kernel goes through :func:`tfbio.ops.feedback_linear`, so that the
input gradient uses the feedback kernel ``B`` of the layer's feedback
algorithm (``tfbio.feedback``) while the forward pass and the weight gradient
stay exact. With ``feedback="bp"`` (and no feedback mask) the plain Keras op
runs, with no custom gradient.

:class:`FeedbackLayerMixin` holds, per kernel, what
``tfbio.layers.BaseFeedbackLayer`` holds for Dense/Conv2D, under the same
variable and attribute names (prefixed for a layer's second kernel):

* the algorithm's state (``feedback_kernel``, ``feedback_magnitude``,
  ``feedback_flips``), built by ``FeedbackAlgorithm.build``;
* ``feedback_step``: the layer's int64 step counter (one per layer);
* optional fixed masks of ``W`` (``density``) and of ``B``
  (``feedback_density``), amit2019 §3.1;
* optional sign-fixed weights (``sign_fixed``) with their ``sign_reference``.

Fans: every fan-dependent scale (``ss``, ``nusf``, the ``fa``/``urfb``/``kp``
initializer draw) uses the fans Keras' ``VarianceScaling`` computes for the
kernel (``keras.src.initializers.random_initializers.compute_fans``; for
``EinsumDense`` with the einsum's input and output axes, as Keras does).
See docs/algorithms.md §2.5 for the table per layer type.
"""

from keras import ops
import tensorflow as tf

from tfbio import feedback as feedback_lib
from tfbio.ops import feedback_kernels as fk
from tfbio.ops.feedback_linear import feedback_linear
from tfbio.utils import checks
from tfbio.utils.seeds import derived_seed
from tfbio.utils.seeds import resolve_seed

# Seed stream of a layer's second kernel (the pointwise kernel of a separable
# convolution); feedback.py's purposes are 1, 3, 4, 5.
PURPOSE_SECOND_KERNEL = 6


def keras_fans(shape, input_axes=None, output_axes=None):
  """``(fan_in, fan_out)`` exactly as Keras' ``VarianceScaling`` reads them.

  Args:
    shape: kernel shape. Without axes: ``(n_in, n_out)`` for 2-D shapes, and
      for ``(..., a, b)`` the receptive field ``prod(...)`` times ``a`` and
      ``b``.
    input_axes, output_axes: optional kernel axes of the input and output
      units (``EinsumDense``).

  Returns:
    A pair of Python ints.
  """
  # pylint: disable-next=g-import-not-at-top
  from keras.src.initializers.random_initializers import compute_fans
  return compute_fans(tuple(int(d) for d in shape), input_axes=input_axes,
                      output_axes=output_axes)


def check_feedback_args(feedback, density, feedback_density, sign_fixed,
                        seed, seed_name="seed"):
  """Validated ``(algorithm, density, feedback_density, sign_fixed, seed)``."""
  algorithm = feedback_lib.get(feedback)
  density = checks.density("density", density)
  feedback_density = checks.density("feedback_density", feedback_density)
  sign_fixed = checks.boolean("sign_fixed", sign_fixed)
  if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                           or seed < 0):
    raise ValueError(f"{seed_name} must be a non-negative int. Received: "
                     f"{seed_name}={seed!r}")
  return algorithm, density, feedback_density, sign_fixed, resolve_seed(seed)


def check_no_lora_or_quantization(layer_name, kwargs):
  """ValueError if Keras' LoRA or quantization arguments are set."""
  for key in ("lora_rank", "quantization_config"):
    if kwargs.get(key):
      raise ValueError(f"tfbio feedback layers do not support LoRA or "
                       f"quantization ({layer_name}). Received: "
                       f"{key}={kwargs[key]!r}")


# -- per-kernel machinery shared with tfbio.layers.BaseFeedbackLayer ---------
#
# ``owner`` below is what creates the variables (``owner.add_weight``) and
# what the feedback algorithm builds on: the layer itself for
# ``BaseFeedbackLayer``, a :class:`KernelSlot` for the mixin's layers.


def feedback_config(layer, seed_key="seed"):
  """The feedback entries of ``layer.get_config()`` (in this order)."""
  return {
      "feedback": feedback_lib.serialize(layer.feedback),
      "density": layer.density,
      "feedback_density": layer.feedback_density,
      "sign_fixed": layer.sign_fixed,
      seed_key: getattr(layer, seed_key),
  }


def add_mask(owner, name, shape, density, seed, purpose):
  """A fixed random 0/1 variable keeping a fraction ``density`` of entries."""
  return owner.add_weight(
      name=name, shape=shape, trainable=False,
      initializer=lambda shape, dtype=None: fk.stateless_mask(
          shape, density, seed, purpose, dtype=dtype or "float32"))


def add_feedback_step(layer):
  """The layer's int64 step counter (keys per-step algorithms' RNG)."""
  return layer.add_weight(
      name="feedback_step", shape=(), dtype="int64", trainable=False,
      initializer="zeros", aggregation="only_first_replica")


def feedback_step_value(layer):
  """``layer.feedback_step`` as a tensor, or 0 for a layer without one."""
  if layer.feedback_step is None:
    return 0
  return tf.convert_to_tensor(layer.feedback_step)


def build_feedback_state(owner, layer, kernel, ctx, prefix=""):
  """Creates ``B``'s mask, the algorithm's state and the sign reference.

  In this order, after ``kernel`` (and its mask) exist. The variables are
  also set as attributes of ``layer`` (names prefixed by ``prefix``; the
  algorithm's state with a leading ``"_"``), so that ``tf.train.Checkpoint``
  finds them.

  Args:
    owner: creates the variables; the "layer" of ``FeedbackAlgorithm.build``.
    layer: the Keras layer (its feedback settings).
    kernel: the kernel variable ``W``.
    ctx: the kernel's ``tfbio.feedback.FeedbackContext``.
    prefix: prefix of the attribute names (``""`` for a single kernel).

  Returns:
    ``(feedback_mask, state, sign_reference)``; the masks are None if unused.
  """
  shape = tuple(kernel.shape)
  feedback_mask = None
  if layer.feedback_density < 1.0:
    feedback_mask = add_mask(owner, "feedback_mask", shape,
                             layer.feedback_density, ctx.seed,
                             feedback_lib.PURPOSE_FEEDBACK_MASK)
    setattr(layer, prefix + "feedback_mask", feedback_mask)
  state = layer.feedback.build(owner, shape, layer.variable_dtype, ctx)
  for name, variable in state.items():
    # "_" keeps them off the public feedback_kernel() method's name.
    setattr(layer, "_" + prefix + name, variable)
  stored_b = state.get("feedback_kernel")
  if stored_b is not None and feedback_mask is not None:
    stored_b.assign(stored_b * feedback_mask)
    if stored_b.trainable:
      stored_b.constraint = lambda b: b * feedback_mask
  sign_reference = None
  if layer.sign_fixed:
    sign_reference = owner.add_weight(
        name="sign_reference", shape=shape, trainable=False,
        initializer=lambda shape, dtype=None: tf.where(
            kernel.value >= 0, 1.0, -1.0))
    setattr(layer, prefix + "sign_reference", sign_reference)
  return feedback_mask, state, sign_reference


def constrain_kernel(w, user_constraint, sign_reference, kernel_mask):
  """``W`` after an update: user constraint, then sign fix, then mask."""
  if user_constraint is not None:
    w = user_constraint(w)
  if sign_reference is not None:
    w = fk.sign_fix(w, tf.cast(sign_reference, w.dtype))
  if kernel_mask is not None:
    w = w * tf.cast(kernel_mask, w.dtype)
  return w


def kernel_pair(layer, kernel, kernel_mask, feedback_mask, state, ctx, step):
  """``(W_eff, B)`` of one kernel in the layer's compute dtype.

  ``B`` is None when the plain op applies. ``B`` is computed from ``W`` in
  the variable dtype and then cast: under mixed precision (float32
  variables, float16/bfloat16 compute) a per-step draw (``brsf``) is then
  the float32 layer's draw, not another random stream; with float32
  compute every cast is a no-op.
  """
  # Inside call, Keras autocasts the variable (and its .dtype) to the compute
  # dtype.
  w = tf.cast(tf.convert_to_tensor(kernel), layer.variable_dtype)
  if kernel_mask is not None:
    w = w * tf.cast(kernel_mask, w.dtype)
  compute = layer.compute_dtype
  if layer.feedback.is_backprop and feedback_mask is None:
    return tf.cast(w, compute), None
  b = layer.feedback.kernel(w, state, ctx, step)
  if feedback_mask is not None:
    b = b * tf.cast(feedback_mask, b.dtype)
  return tf.cast(w, compute), tf.cast(b, compute)


def check_built(layer):
  """ValueError unless ``layer`` is built (its feedback state exists)."""
  if not layer.built:
    raise ValueError(f"Layer {layer.name!r} is not built yet; call it on an "
                     "input first.")


class KernelSlot:
  """One kernel of a layer and its feedback state.

  It is what the feedback algorithm sees as its "layer" while it builds its
  state: :meth:`add_weight` creates the variable on the real layer (name
  prefixed for a second kernel), ``kernel_initializer`` is this kernel's
  initializer, ``kernel`` this kernel's variable.

  Attributes:
    attr: the layer attribute holding the kernel variable (``"kernel"``,
      ``"depthwise_kernel"``, ...).
    prefix: prefix of this kernel's state names (``""`` for a layer's only
      kernel, so the names are those of ``tfbio.layers.Dense``).
    ctx: the ``tfbio.feedback.FeedbackContext`` (kind, Keras fans, seed).
    kernel_initializer: the kernel's initializer (for ``fa``-like draws).
  """

  def __init__(self, layer, attr, prefix, ctx, initializer):
    self.layer = layer
    self.attr = attr
    self.prefix = prefix
    self.ctx = ctx
    self.kernel_initializer = initializer
    # Set by build() where used.
    self.kernel_mask = self.feedback_mask = self.sign_reference = None
    self.state = {}
    self.user_constraint = None

  @property
  def kernel(self):
    return getattr(self.layer, self.attr)

  def add_weight(self, name, **kwargs):
    variable = self.layer.add_weight(name=self.prefix + name, **kwargs)
    # pylint: disable-next=protected-access
    self.layer._feedback_variable_ids.add(id(variable))
    return variable

  def adapt_initializer(self, initializer):
    # pylint: disable-next=protected-access
    return self.layer._adapt_feedback_initializer(initializer)

  def _constrain(self, w):
    return constrain_kernel(w, self.user_constraint, self.sign_reference,
                            self.kernel_mask)

  def build(self):
    """Creates masks, sign reference and the algorithm's state."""
    layer, kernel = self.layer, self.kernel
    if layer.density < 1.0:
      self.kernel_mask = add_mask(self, "kernel_mask", tuple(kernel.shape),
                                  layer.density, self.ctx.seed,
                                  feedback_lib.PURPOSE_KERNEL_MASK)
      kernel.assign(kernel * tf.cast(self.kernel_mask, kernel.dtype))
      setattr(layer, self.prefix + "kernel_mask", self.kernel_mask)
    self.feedback_mask, self.state, self.sign_reference = (
        build_feedback_state(self, layer, kernel, self.ctx, self.prefix))
    if self.kernel_mask is not None or self.sign_reference is not None:
      self.user_constraint = kernel.constraint
      kernel.constraint = self._constrain

  def kernels(self, step):
    """``(W_eff, B)``; ``B`` is None when the plain op applies."""
    return kernel_pair(self.layer, self.kernel, self.kernel_mask,
                       self.feedback_mask, self.state, self.ctx, step)

  def reset_sign_reference(self):
    kernel = self.kernel
    if self.kernel_mask is not None:
      kernel.assign(kernel * tf.cast(self.kernel_mask, kernel.dtype))
    if self.sign_reference is not None:
      self.sign_reference.assign(tf.where(kernel.value >= 0, 1.0, -1.0))


class FeedbackLayerMixin:
  """Adds feedback to a Keras layer class whose kernels act linearly.

  Use as the first base: ``class Conv1D(FeedbackLayerMixin,
  keras.layers.Conv1D)``. Subclasses set:

  * ``feedback_kind``: ``"dense"`` or ``"conv"`` (``FeedbackContext.kind``);
  * ``_feedback_kernel_specs``: ``((kernel attribute, state prefix,
    initializer attribute), ...)``, one entry per kernel, in the order the
    forward pass applies them;
  * ``_linear(inputs, pairs)``: the layer's linear part (no bias, no
    activation), applying each ``(W, B)`` pair with :meth:`_apply_kernel`.

  Args (keyword only, besides the Keras layer's own):
    feedback: feedback algorithm (name, dict or ``FeedbackAlgorithm``).
    density, feedback_density, sign_fixed, seed: as
      ``tfbio.layers.BaseFeedbackLayer``.
  """

  feedback_kind = "conv"
  _feedback_kernel_specs = (("kernel", "", "kernel_initializer"),)

  def __init__(self, *args, feedback="bp", density=1.0, feedback_density=1.0,
               sign_fixed=False, seed=None, **kwargs):
    check_no_lora_or_quantization(type(self).__name__, kwargs)
    values = check_feedback_args(feedback, density, feedback_density,
                                 sign_fixed, seed)
    super().__init__(*args, **kwargs)
    groups = getattr(self, "groups", 1)
    if groups != 1:
      raise ValueError(f"tfbio.layers.{type(self).__name__} supports only "
                       f"groups=1. Received: groups={groups!r}")
    (self.feedback, self.density, self.feedback_density, self.sign_fixed,
     self.seed) = values
    self.feedback_step = None
    self._feedback_slots = ()
    self._feedback_variable_ids = set()

  # -- build -------------------------------------------------------------

  def _kernel_fans(self, attr, shape):  # pylint: disable=unused-argument
    """Keras' fans of kernel ``attr``; EinsumDense adds the einsum axes."""
    return keras_fans(shape)

  def _adapt_feedback_initializer(self, initializer):
    """Hook: the initializer Keras would really use for the kernel."""
    return initializer

  def build(self, input_shape):
    super().build(input_shape)
    self._build_feedback()

  def _build_feedback(self):
    """Creates the feedback state of every kernel (after Keras' build)."""
    slots = []
    for index, (attr, prefix, init_attr) in enumerate(
        self._feedback_kernel_specs):
      kernel = getattr(self, attr)
      fan_in, fan_out = self._kernel_fans(attr, tuple(kernel.shape))
      seed = self.seed if index == 0 else derived_seed(
          self.seed, PURPOSE_SECOND_KERNEL + index - 1)
      ctx = feedback_lib.FeedbackContext(
          self.feedback_kind, int(fan_in), int(fan_out), seed,
          fk.initializer_std(getattr(self, init_attr), fan_in, fan_out))
      slot = KernelSlot(self, attr, prefix, ctx, getattr(self, init_attr))
      slot.build()
      slots.append(slot)
    self._feedback_slots = tuple(slots)
    if self.feedback.per_step:
      self.feedback_step = add_feedback_step(self)
      self._feedback_variable_ids.add(id(self.feedback_step))

  # -- call --------------------------------------------------------------

  def _feedback_pairs(self, training):
    """``[(W_eff, B or None), ...]`` per kernel; advances the step."""
    step = feedback_step_value(self)
    pairs = [slot.kernels(step) for slot in self._feedback_slots]
    if training and self.feedback_step is not None:
      self.feedback_step.assign_add(1)
    return pairs

  def _apply_kernel(self, op, x, pair):
    """``op(x, W)``; through ``feedback_linear`` unless ``B`` is None."""
    w, b = pair
    if b is None:
      return op(x, w)
    return feedback_linear(
        op, x, w, b,
        feedback_receives_kernel_grad=self.feedback.trainable_feedback)

  def _linear(self, inputs, pairs):
    raise NotImplementedError

  def _finish(self, outputs):
    """Adds the per-channel bias and applies the activation, as Keras."""
    if self.use_bias:
      channels = self.bias.shape[0]
      if self.data_format == "channels_last":
        bias_shape = (1,) * (self.rank + 1) + (channels,)
      else:
        bias_shape = (1, channels) + (1,) * self.rank
      outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
    if self.activation is not None:
      return self.activation(outputs)
    return outputs

  def call(self, inputs, training=None):
    pairs = self._feedback_pairs(training)
    return self._finish(self._linear(inputs, pairs))

  # -- public helpers ----------------------------------------------------

  @property
  def feedback_variables(self):
    """The variables of the feedback machinery (not Keras' own weights)."""
    return [v for v in self.weights if id(v) in self._feedback_variable_ids]

  def feedback_kernel(self, kernel=None):
    """The ``B`` that the backward pass uses at the current step (a tensor).

    For ``bp`` this is ``W`` itself (masked where a feedback mask is set).

    Args:
      kernel: which kernel, by attribute name (``"kernel"``,
        ``"depthwise_kernel"``, ``"pointwise_kernel"``); may be omitted for a
        layer with a single kernel.
    """
    check_built(self)
    names = [slot.attr for slot in self._feedback_slots]
    if kernel is None:
      if len(names) != 1:
        raise ValueError(f"Layer {self.name!r} has kernels {names}; choose "
                         f"one. Received: kernel={kernel!r}")
      kernel = names[0]
    if kernel not in names:
      raise ValueError(f"Layer {self.name!r} has kernels {names}. Received: "
                       f"kernel={kernel!r}")
    slot = self._feedback_slots[names.index(kernel)]
    w, b = slot.kernels(feedback_step_value(self))
    return w if b is None else b

  def feedback_context(self, kernel=None):
    """The ``FeedbackContext`` (kind, Keras fans, seed) of a kernel."""
    names = [slot.attr for slot in self._feedback_slots]
    kernel = names[0] if kernel is None else kernel
    return self._feedback_slots[names.index(kernel)].ctx

  def reset_sign_reference(self):
    """Re-reads the reference signs from the current kernels (and re-masks).

    Call after assigning weights by hand (``tfbio.convert`` does).
    """
    for slot in self._feedback_slots:
      slot.reset_sign_reference()

  def enable_lora(self, *args, **kwargs):  # pylint: disable=unused-argument
    raise ValueError(f"tfbio feedback layers do not support LoRA "
                     f"({self.name!r}).")

  def quantize(self, *args, **kwargs):  # pylint: disable=unused-argument
    raise ValueError(f"tfbio feedback layers do not support quantization "
                     f"({self.name!r}).")

  # -- saving ------------------------------------------------------------

  def _saved_variables(self):
    own = list(self._trainable_variables) + list(
        self._non_trainable_variables)
    keras_vars = [v for v in own if id(v) not in self._feedback_variable_ids]
    return keras_vars + [v for v in own
                         if id(v) in self._feedback_variable_ids]

  def save_own_variables(self, store):
    """Keras' variables (as Keras saves them), then the feedback state."""
    if not self.built:
      return
    for i, variable in enumerate(self._saved_variables()):
      store[str(i)] = variable

  def load_own_variables(self, store):
    variables = self._saved_variables()
    if len(store.keys()) != len(variables):
      raise ValueError(f"Layer {self.name!r} expected {len(variables)} "
                       f"variables, but the file lists {len(store.keys())}.")
    for i, variable in enumerate(variables):
      variable.assign(store[str(i)])

  def get_config(self):
    config = super().get_config()
    config.update(feedback_config(self))
    return config
