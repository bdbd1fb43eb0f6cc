"""Direct feedback alignment (DFA) as a Keras model wrapper.

Nøkland 2016, "Direct Feedback Alignment Provides Learning in Deep Neural
Networks" (NeurIPS), §2–3. The network is a chain of *blocks*
``h_l = f_l(a_l)``, ``a_l = W_l h_{l-1} + b_l`` (one kernel layer each,
``l = 1..L``, the last one the output layer). With the output error
``e = ∂E/∂a_L`` (per example; for softmax cross-entropy averaged over the
batch, ``e = (softmax(a_L) - onehot(y)) / N``) every hidden layer ``l < L``
is updated with

    δ_l = (e B_l) ⊙ f_l'(a_l),   ∂W_l := h_{l-1}ᵀ δ_l,   ∂b_l := Σ_batch δ_l,

``B_l`` a fixed random ``(n_L, n_l)`` matrix (``n_l`` = the flattened size of
``a_l``), and the output layer with its true gradient ``h_{L-1}ᵀ e`` (in DFA
the output layer always receives ``e`` itself, so there is no "last layer"
option). No error passes between layers. For a convolution, ``δ_l`` is
``e B_l`` reshaped to the layer's output shape ``(h, w, c)`` times
``f_l'(a_l)``, and ``∂W_l`` is the convolution's kernel gradient for that
output gradient (``tf.nn.conv2d_backprop_filter(h_{l-1}, δ_l)``).

How it is computed (exact, no approximation beyond DFA itself): the network
runs forward once, block by block, with ``stop_gradient`` on the input of
every kernel layer, under one persistent ``tf.GradientTape``. ``e`` is the
tape gradient of the compiled loss with respect to the output layer's
pre-activation ``a_L`` (so any compiled loss, ``sample_weight`` and the
``tf.distribute`` loss scaling are honoured), and the hidden layers'
updates are the vector-Jacobian products of their block outputs with the
constants ``e B_l``:
``tape.gradient(h_l, θ_l, output_gradients=e B_l) = (h_{l-1}ᵀ δ_l, Σ δ_l)``
for a dense layer (the conv kernel gradient for a conv layer). Weight
regularizers (and activity regularizers) add their own, local, gradients.
"""

import math

from absl import logging
import keras
import tensorflow as tf

from tfbio.layers import chain
from tfbio.layers.chain import describe_layer
from tfbio.ops import dfa as dfa_ops
from tfbio.ops.similarity import angle_degrees
from tfbio.utils import checks
from tfbio.utils import seeds

# Layers directly after a kernel layer that belong to its f_l: δ_l is taken
# at their output, so f_l' includes these activations and units dropped by
# dropout get no update (as under backprop).
ACTIVATION_LAYERS = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
    keras.layers.ELU, keras.layers.Softmax,
    keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout,
)

_SUPPORTED = ("kernel layers (Dense, Conv2D, tfbio.layers.*, ...) with their "
              "activation and, between them, layers without trainable "
              "weights (pooling, Flatten, Reshape, Dropout, Activation, ...)")


def _is_linear(activation):
  return activation is None or activation is keras.activations.linear


def is_kernel_layer(layer):
  """Whether ``layer`` is a DFA block's kernel layer: it has a ``kernel``."""
  return isinstance(getattr(layer, "kernel", None), keras.Variable)


class Block(chain.LayerBlock):
  """One DFA block: ``pre_layers``, then ``layer``, then ``post_layers``.

  Not a Keras layer. ``pre_layers`` are the forward-only layers between the
  previous block and ``layer`` (pooling, ``Flatten``, ...); ``post_layers``
  are, for a hidden block, the activation / dropout layers directly after
  ``layer`` (part of ``f_l``), and for the output block every layer after
  it.

  Attributes:
    pre_layers: tuple of Keras layers.
    layer: the kernel layer (``W_l``, ``b_l`` and its built-in activation).
    post_layers: tuple of Keras layers.
    output_shape: shape of ``h_l`` (= of ``a_l``) without the batch axis.
  """

  @property
  def size(self):
    """``n_l``: the flattened size of ``a_l``."""
    return math.prod(self.output_shape)


def chain_layers(network):
  """The layers of a Sequential / chain-shaped functional model, in order.

  :func:`tfbio.layers.chain.chain_layers`, with DFAModel in the messages.

  Raises:
    ValueError: a subclassed or unbuilt model, several inputs or outputs, a
      nested model, a layer used twice, or a layer with several inputs
      (skip connections, merges).
  """
  return chain.chain_layers(network, "DFAModel")


def split_blocks(network):
  """Splits a chain model into DFA blocks (see :class:`Block`).

  Args:
    network: a built Sequential or chain-shaped functional ``keras.Model``.

  Returns:
    A list of :class:`Block`, the last one the output layer's.

  Raises:
    ValueError: an unsupported layer (named: trainable weights but no
      kernel), a non-static shape, fewer than two kernel layers, or any
      error of :func:`chain_layers`.
  """
  chain = chain_layers(network)
  shape = (None,) + tuple(network.inputs[0].shape[1:])
  blocks, pending = [], []
  current = None  # [pre, layer, post, output_shape] of the open block.
  in_post = False
  for layer in chain:
    if is_kernel_layer(layer):
      if current is not None:
        blocks.append(Block(*current))
      out_shape = tuple(layer.compute_output_shape(shape))
      if any(d is None for d in out_shape[1:]):
        raise ValueError(f"Layer {describe_layer(layer)} has output shape "
                         f"{out_shape}; DFAModel needs static shapes (give "
                         "the network a fixed input shape).")
      current = [pending, layer, [], out_shape[1:]]
      pending, in_post = [], True
      shape = out_shape
      continue
    if layer.trainable_weights:
      raise ValueError(f"Layer {describe_layer(layer)} has trainable weights but no "
                       f"kernel; DFAModel supports {_SUPPORTED}.")
    if in_post and isinstance(layer, ACTIVATION_LAYERS):
      current[2].append(layer)
    else:
      in_post = False
      pending.append(layer)
    shape = tuple(layer.compute_output_shape(shape))
  if current is None or not blocks:
    raise ValueError(f"DFAModel needs at least one hidden kernel layer and an "
                     f"output layer; model {network.name!r} has "
                     f"{0 if current is None else 1} kernel layer(s).")
  # The output block takes every layer after its kernel layer.
  current[2] = current[2] + pending
  blocks.append(Block(*current))
  return blocks


def _linear_output(layer, x, training):
  """``(a, activation)``: the kernel layer's pre-activation and activation.

  A layer with a non-linear built-in activation is called with its
  ``activation`` attribute set to linear for this one call (Keras' and
  tfbio's kernel layers apply ``self.activation`` last in ``call``).
  """
  activation = getattr(layer, "activation", None)
  if _is_linear(activation):
    return layer(x, training=training), None
  layer.activation = keras.activations.linear
  try:
    a = layer(x, training=training)
  finally:
    layer.activation = activation
  return a, activation


@keras.saving.register_keras_serializable(package="tfbio")
class DirectFeedback(keras.layers.Layer):
  """The fixed random feedback matrices ``B_l`` of DFA (Nøkland 2016 §2).

  Holds one non-trainable ``(n_L, n_l)`` variable ``<layer>_feedback`` per
  hidden layer (and ``<layer>_feedback_mask`` when ``feedback_density < 1``),
  drawn from a stateless RNG keyed by ``(seed, hidden-layer index)``: the
  same values on every device and replica, and again after re-creation from
  the config. They are saved by ``.keras`` and ``tf.train.Checkpoint``.

  ``call(error)`` returns ``[e B_l]`` for every hidden layer, each reshaped
  to the layer's output shape.

  Args:
    num_outputs: ``n_L``, the flattened size of the output pre-activation.
    hidden: list of ``(layer name, output shape)`` of the hidden layers.
    feedback_scale: half-width ``s`` of ``B_l ~ U[-s, s]``; None:
      ``1/sqrt(n_L)`` (:func:`tfbio.ops.dfa.default_feedback_scale`).
    feedback_density: fraction of the entries of each ``B_l`` kept by a fixed
      random binary mask (1.0: dense ``B_l``). Kept entries are not rescaled.
    seed: non-negative int seed (drawn and stored when None).
    **kwargs: ``keras.layers.Layer`` arguments.
  """

  def __init__(self, num_outputs, hidden, feedback_scale=None,
               feedback_density=1.0, seed=None, **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    self.num_outputs = checks.positive_int("num_outputs", num_outputs)
    self.hidden = [(str(name), checks.shape(f"shape of {name}", shape))
                   for name, shape in hidden]
    if not self.hidden:
      raise ValueError(f"hidden must list at least one hidden layer. "
                       f"Received: hidden={hidden!r}")
    self.feedback_scale = (None if feedback_scale is None else checks.number(
        "feedback_scale", feedback_scale, 0, low_open=True))
    self.feedback_density = checks.density("feedback_density",
                                           feedback_density)
    self.seed = seeds.resolve_seed(seed)
    self.matrices = []
    self.masks = []

  @property
  def scale(self):
    """The half-width ``s`` of the uniform distribution of every ``B_l``."""
    if self.feedback_scale is None:
      return dfa_ops.default_feedback_scale(self.num_outputs)
    return self.feedback_scale

  def build(self, input_shape=None):
    for index, (name, shape) in enumerate(self.hidden):
      b_shape = (self.num_outputs, math.prod(shape))
      self.matrices.append(self._add_fixed_weight(
          f"{name}_feedback", f"_feedback_{index}", b_shape,
          dfa_ops.feedback_matrix, self.scale, index))
      if self.feedback_density < 1.0:
        self.masks.append(self._add_fixed_weight(
            f"{name}_feedback_mask", f"_feedback_mask_{index}", b_shape,
            dfa_ops.feedback_mask, self.feedback_density, index))
    self.built = True

  def _add_fixed_weight(self, name, attribute, shape, draw, param, index):
    """A non-trainable weight ``draw(shape, param, seed, index)``.

    ``draw`` is :func:`tfbio.ops.dfa.feedback_matrix` (``param``: the scale)
    or :func:`tfbio.ops.dfa.feedback_mask` (``param``: the density). The
    weight is also set as attribute ``attribute``: tf.train.Checkpoint
    tracks attributes, not lists.
    """
    seed = self.seed

    def initializer(shape, dtype=None):
      return draw(shape, param, seed, index, dtype=dtype or "float32")

    weight = self.add_weight(name=name, shape=shape, initializer=initializer,
                             trainable=False)
    setattr(self, attribute, weight)
    return weight

  def _index(self, layer):
    if isinstance(layer, int) and not isinstance(layer, bool):
      return layer
    names = [name for name, _ in self.hidden]
    if layer not in names:
      raise ValueError(f"No feedback matrix for layer {layer!r}; hidden "
                       f"layers: {names}.")
    return names.index(layer)

  def feedback_matrix(self, layer):
    """The effective ``B_l`` (mask applied) of a hidden layer (name or index)."""
    index = self._index(layer)
    b = self.matrices[index]
    if self.masks:
      return tf.convert_to_tensor(b) * tf.convert_to_tensor(self.masks[index])
    return tf.convert_to_tensor(b)

  def call(self, error):
    return [dfa_ops.project_error(error, self.feedback_matrix(i), shape)
            for i, (_, shape) in enumerate(self.hidden)]

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_outputs": self.num_outputs,
        "hidden": [[name, list(shape)] for name, shape in self.hidden],
        "feedback_scale": self.feedback_scale,
        "feedback_density": self.feedback_density,
        "seed": self.seed,
    })
    return config


@keras.saving.register_keras_serializable(package="tfbio")
class DFAModel(chain.NetworkWrapper, keras.Model):
  """Trains a chain network by direct feedback alignment (Nøkland 2016).

  The update rule is in the module docstring of ``tfbio.dfa.model``.
  ``call`` / ``predict`` / ``evaluate`` run the wrapped network unchanged;
  ``fit`` replaces the back-propagated gradients of the hidden layers by
  their DFA updates ``(h_{l-1}ᵀ δ_l, Σ δ_l)`` and hands them, with the
  output layer's true gradient, to the compiled optimizer. Under
  ``tf.distribute`` the per-replica updates are all-reduced (summed) by the
  optimizer, and the compiled loss is the global-batch mean, so a mirrored
  step equals a one-device step on the same global batch.

  What is exact: the output layer's gradient; each hidden ``δ_l`` and update
  is exactly Nøkland's formula (computed by a vector-Jacobian product, no
  finite differences). What is approximate: DFA itself, i.e. the hidden
  updates are not the gradient of the loss; they align with it during
  training (``bp_angle`` logs by how much).

  Supported networks: a Sequential or chain-shaped functional model (or a
  list of layers with ``input_shape``) of kernel layers (any layer with a
  ``kernel``: ``keras.layers.Dense`` / ``Conv2D``, ``tfbio.layers.*``; their
  ``feedback`` algorithm is irrelevant, since no error passes between
  layers) and, between them, layers without trainable weights. ``δ_l`` is
  taken after the kernel layer's own activation and the activation /
  dropout layers directly after it (``ACTIVATION_LAYERS``); pooling,
  ``Flatten`` etc. are forward-only, so ``n_l`` is the size of the kernel
  layer's output, before pooling. Layers with trainable weights but no
  kernel (batch norm with ``scale``/``center``, layer norm, PReLU, ...) and
  non-chain graphs (residual connections) raise ``ValueError``.

  Example:

  >>> net = keras.Sequential([keras.Input((64,)),
  ...                         keras.layers.Dense(256, activation="tanh"),
  ...                         keras.layers.Dense(10)])
  >>> model = tfbio.dfa.DFAModel(net, seed=0)
  >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
  ...     from_logits=True), metrics=["accuracy"])
  >>> history = model.fit(x, y, epochs=5)

  Epoch logs: ``loss``, the compiled metrics and, with ``bp_angle=True``,
  ``bp_angle/<layer>`` for every hidden layer: the angle in degrees between
  the layer's DFA update and its back-propagated gradient at the same
  parameters and forward pass (``tfbio.ops.similarity.angle_degrees``: NaN
  if either is exactly zero; a diagnostic, never used for learning).

  Args:
    network: a built Sequential / chain-shaped functional ``keras.Model``
      (e.g. ``tfbio.models.create_model("bartunov2018_mnist_fc")``) or a
      list of layers (then ``input_shape`` is required).
    feedback_scale: half-width ``s`` of the uniform ``B_l ~ U[-s, s]``
      (> 0); None (default): ``s = 1/sqrt(n_L)``, which keeps the variance of
      ``e B_l`` independent of the number of outputs (tfbio's choice; Nøkland
      2016 draws fixed random ``B_l``, see
      :func:`tfbio.ops.dfa.default_feedback_scale`).
    feedback_density: fraction in ``(0, 1]`` of the entries of every ``B_l``
      kept by a fixed random binary mask (sparse DFA, Crafton et al. 2019);
      1.0: dense.
    seed: int seed of ``B_l`` and the masks (drawn and stored when None).
    bp_angle: log ``bp_angle/<layer>`` (costs one extra backward pass through
      the whole network per step).
    input_shape: input shape without the batch axis, to build ``network``.
    **kwargs: ``keras.Model`` arguments (``name``, ...).

  Raises:
    ValueError: a bad argument (the message quotes it), or an unsupported
      network (the message names the layer).
  """

  def __init__(self, network, feedback_scale=None, feedback_density=1.0,
               seed=None, bp_angle=False, input_shape=None, **kwargs):
    super().__init__(**kwargs)
    self.feedback_scale = (None if feedback_scale is None else checks.number(
        "feedback_scale", feedback_scale, 0, low_open=True))
    self.feedback_density = checks.density("feedback_density",
                                           feedback_density)
    self.bp_angle = checks.boolean("bp_angle", bp_angle)
    self.seed = seeds.resolve_seed(seed)
    self.network = chain.build_network(network, input_shape)
    self.blocks = split_blocks(self.network)
    self.num_outputs = self.blocks[-1].size
    self.dfa_variables = [v for b in self.blocks
                          for v in b.layer.trainable_variables]
    ours = {id(v) for v in self.dfa_variables}
    for v in self.network.trainable_variables:
      if id(v) not in ours:
        raise ValueError(f"Trainable variable {v.path!r} belongs to no kernel "
                         "layer of the chain; DFAModel cannot update it.")
    self.direct_feedback = DirectFeedback(
        self.num_outputs, [(b.name, b.output_shape) for b in self.blocks[:-1]],
        feedback_scale=self.feedback_scale,
        feedback_density=self.feedback_density, seed=self.seed,
        name="direct_feedback")
    self.direct_feedback.build()
    self._angle_trackers = ([keras.metrics.Mean(name=f"bp_angle/{b.name}")
                             for b in self.blocks[:-1]] if bp_angle else [])
    self.built = True
    logging.info(
        "DFAModel %s: blocks %s; B_l of shapes %s, U[-%.4g, %.4g], density "
        "%g, seed %d.", self.name, self.blocks,
        [tuple(b.shape) for b in self.direct_feedback.matrices],
        self.direct_feedback.scale, self.direct_feedback.scale,
        self.feedback_density, self.seed)

  @property
  def hidden_layers(self):
    """The hidden kernel layers ``l = 1..L-1``, in order."""
    return [b.layer for b in self.blocks[:-1]]

  @property
  def output_layer(self):
    """The output kernel layer ``L``."""
    return self.blocks[-1].layer

  def feedback_matrix(self, layer_name):
    """The effective ``B_l`` (mask applied) of a hidden layer, a tensor."""
    return self.direct_feedback.feedback_matrix(layer_name)

  def call(self, inputs, training=None):
    return self.network(inputs, training=training)

  # -- DFA ---------------------------------------------------------------------

  def forward(self, x, training=None, tape=None):
    """The network, block by block, with every kernel layer's input constant.

    Args:
      x: inputs.
      training: the ``training`` flag of every layer call.
      tape: an active ``tf.GradientTape`` that is to watch the constant
        kernel-layer inputs (so that gradients with respect to them can be
        taken, e.g. for the back-propagated diagnostic).

    Returns:
      A dict: ``"output"`` (the network output), ``"pre_activation"``
      (``a_L``), ``"hidden"`` (``[h_1, ..., h_{L-1}]``, the block outputs
      where ``δ_l`` is injected), ``"inputs"`` (the ``stop_gradient``-ed
      kernel-layer inputs, one per block) and ``"raw_inputs"`` (the same
      tensors before ``stop_gradient``).
    """
    h = x
    inputs, raw, hidden = [], [], []
    last = len(self.blocks) - 1
    a = None
    for index, block in enumerate(self.blocks):
      for layer in block.pre_layers:
        h = layer(h, training=training)
      raw.append(h)
      h = tf.stop_gradient(h)
      if tape is not None:
        tape.watch(h)
      inputs.append(h)
      if index < last:
        h = block.layer(h, training=training)
      else:
        a, activation = _linear_output(block.layer, h, training)
        h = a if activation is None else activation(a)
      for layer in block.post_layers:
        h = layer(h, training=training)
      if index < last:
        hidden.append(h)
    return {"output": h, "pre_activation": a, "hidden": hidden,
            "inputs": inputs, "raw_inputs": raw}

  def _scaled_loss(self, x, y, y_pred, sample_weight):
    loss = self._compute_loss(x=x, y=y, y_pred=y_pred,
                              sample_weight=sample_weight, training=True)
    unscaled = loss * tf.cast(
        tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)
    if self.optimizer is not None:
      loss = self.optimizer.scale_loss(loss)
    return loss, unscaled

  def _backprop_from_tape(self, tape, loss, fwd):
    """True gradients of ``loss``, chained through the cut forward pass."""
    grads = [None] * len(self.blocks)
    upstream = None
    ones = tf.ones_like(loss)
    for index in range(len(self.blocks) - 1, -1, -1):
      variables = list(self.blocks[index].layer.trainable_variables)
      sources = variables + [fwd["inputs"][index]]
      if upstream is None:
        out = tape.gradient(loss, sources)
      else:
        out = tape.gradient([loss, fwd["raw_inputs"][index + 1]], sources,
                            output_gradients=[ones, upstream])
      grads[index] = out[:len(variables)]
      upstream = out[-1]
      if upstream is None:
        upstream = tf.zeros_like(fwd["inputs"][index])
    return [g for block_grads in grads for g in block_grads]

  def compute_gradients(self, x, y, sample_weight=None, training=True,
                        backprop=False):
    """DFA updates of :attr:`dfa_variables` for one batch (applies nothing).

    Needs a compiled loss. The loss is the one ``fit`` minimises (divided by
    the number of replicas under ``tf.distribute``, and scaled by a
    loss-scale optimizer).

    Args:
      x: inputs.
      y: targets.
      sample_weight: optional per-example weights of the compiled loss.
      training: the ``training`` flag of the forward pass.
      backprop: also return the back-propagated gradients.

    Returns:
      A dict: ``"grads"`` (aligned with :attr:`dfa_variables`),
      ``"error"`` (``e = ∂loss/∂a_L``), ``"output"``, ``"loss"`` (as
      minimised), ``"unscaled_loss"`` (the global-batch loss) and, with
      ``backprop``, ``"backprop_grads"``.
    """
    with tf.GradientTape(persistent=True) as tape:
      fwd = self.forward(x, training=training,
                         tape=tape if backprop else None)
      loss, unscaled = self._scaled_loss(x, y, fwd["output"], sample_weight)
    error = tape.gradient(loss, fwd["pre_activation"])
    if error is None:
      raise ValueError("The compiled loss does not depend on the network "
                       "output; DFAModel cannot compute e = dE/da_L.")
    projections = self.direct_feedback(tf.stop_gradient(error))
    targets = [loss] + fwd["hidden"]
    output_gradients = [tf.ones_like(loss)] + [
        tf.cast(p, h.dtype) for p, h in zip(projections, fwd["hidden"])]
    grads = tape.gradient(targets, self.dfa_variables,
                          output_gradients=output_gradients)
    result = {"grads": grads, "error": error, "output": fwd["output"],
              "loss": loss, "unscaled_loss": unscaled}
    if backprop:
      result["backprop_grads"] = self._backprop_from_tape(tape, loss, fwd)
    del tape
    return result

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    result = self.compute_gradients(x, y, sample_weight,
                                    backprop=self.bp_angle)
    self.optimizer.apply(result["grads"], self.dfa_variables)
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    self._loss_tracker.update_state(result["unscaled_loss"],
                                    sample_weight=batch)
    if self.bp_angle:
      start = 0
      for tracker, block in zip(self._angle_trackers, self.blocks):
        stop = start + len(block.layer.trainable_variables)
        if stop > start:  # A frozen layer has no update to compare.
          tracker.update_state(angle_degrees(
              result["grads"][start:stop],
              result["backprop_grads"][start:stop]))
        start = stop
    return self.compute_metrics(x, y, result["output"], sample_weight)

  def test_step(self, data):
    logs = super().test_step(data)
    return {k: v for k, v in logs.items() if not k.startswith("bp_angle/")}

  def get_config(self):
    return self.network_config(
        feedback_scale=self.feedback_scale,
        feedback_density=self.feedback_density, seed=self.seed,
        bp_angle=self.bp_angle)
