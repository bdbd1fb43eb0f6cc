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

Residual networks and Transformers are trained *block-wise* (Launay, Poli,
Boniface, Krzakala 2020, "Direct Feedback Alignment Scales to Modern Deep
Learning Tasks and Architectures", NeurIPS): the same computation with
blocks that are regions of the graph (:func:`split_graph_blocks`) instead of
single kernel layers; ``stop_gradient`` on every tensor that crosses a block
boundary, ``e B_k`` injected at each block's output ``h_k``, and
``tape.gradient(h_k, θ_k, output_gradients=e B_k)`` is back-propagation
inside block ``k`` from that signal.
"""

import math

from absl import logging
import keras
import tensorflow as tf

from tfbio.layers import chain
from tfbio.layers import graph as graph_lib
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

  @property
  def trainable_variables(self):
    """The block's trainable variables (its layers' in order, each once)."""
    seen, found = set(), []
    for layer in self.pre_layers + (self.layer,) + self.post_layers:
      for v in layer.trainable_variables:
        if id(v) not in seen:
          seen.add(id(v))
          found.append(v)
    return found


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

# -- block-wise DFA on graph networks (Launay et al. 2020) ---------------------

# block_outputs="residual": every residual addition ends a block.
RESIDUAL = "residual"
# block_outputs="kernel_inputs": the input of every kernel layer but the first
# ends a block (biotorch's DFA layers).
KERNEL_INPUTS = "kernel_inputs"
# feedback_structure: "dense" B_k (n_L, size of h_k) (Nøkland 2016), or
# "kernel": B_k in the shape of the kernel layer that reads h_k, with n_L
# output units (biotorch's DFA layers).
STRUCTURES = ("dense", "kernel")


class GraphBlock(Block):
  """One block of block-wise DFA: a region of a graph network.

  Launay, Poli, Boniface, Krzakala 2020, "Direct Feedback Alignment Scales
  to Modern Deep Learning Tasks and Architectures" (NeurIPS), §3–4: the
  output error reaches the output of every block through its own ``B_k``;
  inside the block it is back-propagated. Not a Keras layer.

  Attributes:
    nodes: the block's layer calls, in execution order.
    layer: a hidden block's *end*: the layer whose output ``h_k`` receives
      ``e B_k``; the output block's output kernel layer.
    pre_layers: the block's other layers, in execution order (those after
      ``layer`` in the output block are ``post_layers``).
    output_shape: shape of ``h_k`` (output block: of ``a_L``) without the
      batch axis.
  """

  def __init__(self, nodes, layer, output_shape, post_layers=()):
    post = tuple(post_layers)
    layers_in_order = []
    for node in nodes:
      op = node.operation
      if (op is not layer and all(op is not p for p in post)
          and all(op is not p for p in layers_in_order)):
        layers_in_order.append(op)
    super().__init__(layers_in_order, layer, post, output_shape)
    self.nodes = tuple(nodes)


def residual_block_ends(nodes):
  """The nodes ending the blocks of ``block_outputs="residual"``.

  Every ``keras.layers.Add`` (a residual addition ``x + F(x)``) ends a
  block, moved past the activation / dropout layers (``ACTIVATION_LAYERS``)
  that directly follow it as its only consumer (a ResNet unit's ReLU after
  the addition belongs to the unit, as ``f_l'`` does in a chain).

  Args:
    nodes: the graph's nodes in execution order.

  Returns:
    A list of nodes, in execution order.
  """
  consumers = {}
  for node in nodes:
    for tensor in node.input_tensors:
      consumers.setdefault(id(tensor), []).append(node)
  ends = []
  for node in nodes:
    if not isinstance(node.operation, keras.layers.Add):
      continue
    end = node
    while True:
      users = consumers.get(id(end.outputs[0]), [])
      if len(users) != 1 or not isinstance(users[0].operation,
                                           ACTIVATION_LAYERS):
        break
      end = users[0]
    ends.append(end)
  return ends


def kernel_input_block_ends(nodes):
  """The nodes ending the blocks of ``block_outputs="kernel_inputs"``.

  The layer call whose output is the input of each kernel layer but the
  first (in execution order): the error then enters every hidden layer's
  block where the next kernel layer reads it, and reaches the kernel layer
  through the weightless layers between them (pooling, flattening, the
  activation) by back-propagation — biotorch's DFA layers, which replace
  each layer's *input* gradient by the projected error.

  Raises:
    ValueError: a kernel layer whose input is the network input (not the
      first kernel layer), or with several inputs.
  """
  kernels = [n for n in nodes if is_kernel_layer(n.operation)]
  ends, seen = [], set()
  for node in kernels[1:]:
    if len(node.input_tensors) != 1:
      raise ValueError(f"block_outputs='kernel_inputs' needs single-input "
                       f"kernel layers; {graph_lib.describe_node(node)} has "
                       f"{len(node.input_tensors)}.")
    end = graph_lib.producer(node.input_tensors[0])
    if end is None:
      raise ValueError(f"Kernel layer {graph_lib.describe_node(node)} reads "
                       "the network input; block_outputs='kernel_inputs' "
                       "needs it to follow another kernel layer.")
    if id(end) not in seen:
      seen.add(id(end))
      ends.append(end)
  return ends


def _named_block_ends(nodes, names):
  by_name = {}
  for node in nodes:
    by_name.setdefault(node.operation.name, []).append(node)
  ends = []
  for name in names:
    found = by_name.get(name)
    if not found:
      raise ValueError(f"block_outputs names layer {name!r}, which the "
                       f"network does not call. Layers: {sorted(by_name)}")
    if len(found) > 1 or len(found[0].outputs) != 1:
      raise ValueError(f"block_outputs layer {name!r} must be called once "
                       "and have one output.")
    ends.append(found[0])
  return ends


def _output_node(graph):
  """``(node, post_layers)``: the output kernel layer's call and the
  weightless single-input layers after it."""
  node = graph_lib.producer(graph.outputs[0])
  post = []
  while node is not None and not is_kernel_layer(node.operation):
    if graph_lib.is_merge(node) or node.operation.trainable_weights:
      node = None
      break
    post.insert(0, node.operation)
    node = graph_lib.producer(node.input_tensors[0])
  if node is None or graph_lib.is_merge(node):
    raise ValueError("DFAModel needs the network output to come from a "
                     "kernel layer (Dense, ...) through layers without "
                     "trainable weights; it takes e = dE/da_L there.")
  return node, post


class GraphPlan:
  """How :class:`DFAModel` runs a graph network cut into blocks.

  Not a Keras object (so that Keras does not track its node lists).

  Attributes:
    graph: the functional graph.
    nodes: its nodes, in execution order.
    node_block: ``{id(node): block index}``.
    tensor_block: ``{id(symbolic output tensor): block index}``.
    block_tensors: ``h_k``'s symbolic tensors, one per hidden block.
    output_node: the output kernel layer's call (``a_L``).
  """

  def __init__(self, graph, nodes, node_block, block_tensors, output_node):
    self.graph = graph
    self.nodes = nodes
    self.node_block = node_block
    self.tensor_block = {id(t): node_block[id(n)] for n in nodes
                         for t in n.outputs}
    self.block_tensors = block_tensors
    self.output_node = output_node


def split_graph_blocks(network, block_outputs=RESIDUAL):
  """Cuts a graph network into the blocks of block-wise DFA.

  Block ``k`` (``k = 1..K-1``) is every layer call that ``h_k`` (the output
  of the ``k``-th block end) depends on and no earlier ``h_j`` does; the
  output block ``K`` is every remaining call (it ends with the output
  kernel layer). Block ends, in execution order: ``block_outputs="residual"``
  (:func:`residual_block_ends`) or the named layers.

  Args:
    network: a built Sequential or functional ``keras.Model`` with one input
      and one output.
    block_outputs: ``"residual"`` or a sequence of layer names.

  Returns:
    ``(blocks, plan)``: a list of :class:`GraphBlock` (the output block
    last) and the :class:`GraphPlan`.

  Raises:
    ValueError: no block end, an unknown or repeated layer name, a block end
      after the output layer, a hidden block without trainable weights, a
      non-static block output shape, or a layer with weights in two blocks.
  """
  graph = graph_lib.functional_graph(network, "DFAModel")
  nodes = graph_lib.graph_nodes(graph)
  order = {id(n): i for i, n in enumerate(nodes)}
  output_node, post = _output_node(graph)
  if block_outputs == RESIDUAL:
    ends = residual_block_ends(nodes)
    if not ends:
      raise ValueError(f"Model {network.name!r} has no residual addition "
                       "(keras.layers.Add); pass block_outputs=[layer names] "
                       "to DFAModel.")
  elif block_outputs == KERNEL_INPUTS:
    ends = kernel_input_block_ends(nodes)
  else:
    ends = sorted(_named_block_ends(nodes, block_outputs),
                  key=lambda n: order[id(n)])
  node_block = {}
  for k, end in enumerate(ends):
    region = graph_lib.ancestors(end.outputs[0], stop=node_block)
    if id(output_node) in region or id(output_node) in node_block:
      raise ValueError(f"Block end {graph_lib.describe_node(end)} comes "
                       "after the output layer "
                       f"{graph_lib.describe_node(output_node)}.")
    for nid in region:
      node_block[nid] = k
  last = len(ends)
  for node in nodes:
    node_block.setdefault(id(node), last)
  blocks = []
  for k in range(last + 1):
    members = [n for n in nodes if node_block[id(n)] == k]
    if k < last:
      tensor = ends[k].outputs[0]
      block = GraphBlock(members, ends[k].operation, tensor.shape[1:])
      if not block.trainable_variables:
        raise ValueError(f"The block ending at "
                         f"{graph_lib.describe_node(ends[k])} has no trainable "
                         "weights; drop it from block_outputs.")
    else:
      tensor = output_node.outputs[0]
      block = GraphBlock(members, output_node.operation, tensor.shape[1:],
                         post_layers=post)
    if any(d is None for d in block.output_shape):
      raise ValueError(f"Block output of {describe_layer(block.layer)} has "
                       f"shape {tuple(tensor.shape)}; DFAModel needs static "
                       "shapes (give the network a fixed input shape).")
    blocks.append(block)
  owner = {}
  for k, block in enumerate(blocks):
    for v in block.trainable_variables:
      if owner.setdefault(id(v), k) != k:
        raise ValueError(f"Variable {v.path!r} is used in blocks {owner[id(v)]}"
                         f" and {k}; block-wise DFA needs each weight layer in "
                         "one block.")
  plan = GraphPlan(graph, nodes, node_block,
                   [end.outputs[0] for end in ends], output_node)
  return blocks, plan



def _check_block_outputs(value):
  """None, ``"residual"``, ``"kernel_inputs"`` or a tuple of layer names
  (else ValueError)."""
  if value is None or value in (RESIDUAL, KERNEL_INPUTS):
    return value
  if (isinstance(value, (list, tuple)) and value
      and all(isinstance(v, str) and v for v in value)):
    return tuple(value)
  raise ValueError(f"block_outputs must be None, {RESIDUAL!r}, "
                   f"{KERNEL_INPUTS!r} or a non-empty list of layer names. "
                   f"Received: block_outputs={value!r}")


def kernel_consumer(plan, k):
  """The feedback layout of hidden block ``k`` for
  ``feedback_structure="kernel"``: the one kernel layer that reads ``h_k``.

  Returns:
    ``{"kind": "dense"}`` or ``{"kind": "conv2d", "kernel_size": [kh, kw],
    "strides": [..], "padding": "valid"|"same", "dilation_rate": [..],
    "output_hw": [h, w]}``.

  Raises:
    ValueError: ``h_k`` is read by several layers or by a layer that is not
      a Dense-like or a channels-last, ungrouped Conv2D-like kernel layer.
  """
  tensor = plan.block_tensors[k]
  users = [n for n in plan.nodes
           if any(t is tensor for t in n.input_tensors)]
  where = f"block output {tuple(tensor.shape)} (block {k + 1})"
  if len(users) != 1 or not is_kernel_layer(users[0].operation):
    raise ValueError(f"feedback_structure='kernel' needs each block output "
                     f"to be read by exactly one kernel layer; {where} is "
                     f"read by {[graph_lib.describe_node(n) for n in users]}.")
  layer = users[0].operation
  rank = len(layer.kernel.shape)
  if rank == 2 and len(tensor.shape) == 2:
    return {"kind": "dense"}
  if (rank == 4 and hasattr(layer, "strides")
      and getattr(layer, "data_format", "channels_last") == "channels_last"
      and getattr(layer, "groups", 1) == 1
      and len(tensor.shape) == 4):
    out = layer.compute_output_shape(tuple(tensor.shape))
    return {"kind": "conv2d", "kernel_size": list(layer.kernel.shape[:2]),
            "strides": list(layer.strides), "padding": layer.padding,
            "dilation_rate": list(layer.dilation_rate),
            "output_hw": [int(out[1]), int(out[2])]}
  raise ValueError(f"feedback_structure='kernel' supports Dense and "
                   f"channels-last ungrouped Conv2D readers; {where} is read "
                   f"by {graph_lib.describe_node(users[0])}.")


def _has_merges(network):
  """Whether a functional network has a layer call with several inputs."""
  try:
    graph = graph_lib.functional_graph(network, "DFAModel")
  except ValueError:
    return False  # split_blocks raises the chain's own error.
  return any(graph_lib.is_merge(n) for n in graph_lib.graph_nodes(graph))


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

  With ``consumers`` (``feedback_structure="kernel"``, biotorch's DFA
  layers) hidden block ``l``'s ``B_l`` has the shape of the kernel layer
  that reads ``h_l``, with ``n_L`` output units: ``(n_in, n_L)`` for a dense
  reader (projection ``e B_lᵀ``), ``(kh, kw, c_in, n_L)`` for a convolution
  (projection: the convolution's input gradient for ``B_l`` at the error
  repeated over its output positions,
  :func:`tfbio.ops.dfa.conv_input_projection`), drawn uniform with the
  Glorot half-width ``sqrt(6 / (fan_in + fan_out))`` of that shape (Keras
  fans; PyTorch's for biotorch's ``(n_L, c_in, kh, kw)``) unless
  ``feedback_scale`` is given.

  Args:
    num_outputs: ``n_L``, the flattened size of the output pre-activation.
    hidden: list of ``(layer name, output shape)`` of the hidden layers.
    feedback_scale: half-width ``s`` of ``B_l ~ U[-s, s]``; None:
      ``1/sqrt(n_L)`` (:func:`tfbio.ops.dfa.default_feedback_scale`).
    feedback_density: fraction of the entries of each ``B_l`` kept by a fixed
      random binary mask (1.0: dense ``B_l``). Kept entries are not rescaled.
    seed: non-negative int seed (drawn and stored when None).
    consumers: None (dense ``B_l``), or per hidden layer the layout of the
      kernel layer reading it (:func:`kernel_consumer`).
    **kwargs: ``keras.layers.Layer`` arguments.
  """

  def __init__(self, num_outputs, hidden, feedback_scale=None,
               feedback_density=1.0, seed=None, consumers=None, **kwargs):
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
    if consumers is not None and len(consumers) != len(self.hidden):
      raise ValueError(f"consumers needs one entry per hidden layer "
                       f"({len(self.hidden)}). Received: {consumers!r}")
    self.consumers = None if consumers is None else [dict(c)
                                                     for c in consumers]
    self.matrices = []
    self.masks = []

  @property
  def scale(self):
    """The half-width ``s`` of the uniform distribution of every dense
    ``B_l`` (kernel-structured ``B_l``: :meth:`matrix_shape_and_scale`)."""
    if self.feedback_scale is None:
      return dfa_ops.default_feedback_scale(self.num_outputs)
    return self.feedback_scale

  def matrix_shape_and_scale(self, index):
    """``(shape, half-width)`` of hidden layer ``index``'s ``B_l``."""
    shape = self.hidden[index][1]
    if self.consumers is None:
      return (self.num_outputs, math.prod(shape)), self.scale
    consumer = self.consumers[index]
    if consumer["kind"] == "dense":
      b_shape = (math.prod(shape), self.num_outputs)
      fans = b_shape
    else:
      kh, kw = consumer["kernel_size"]
      b_shape = (kh, kw, shape[-1], self.num_outputs)
      fans = (kh * kw * shape[-1], kh * kw * self.num_outputs)
    if self.feedback_scale is not None:
      return b_shape, self.feedback_scale
    return b_shape, math.sqrt(6.0 / (fans[0] + fans[1]))

  def build(self, input_shape=None):
    for index, (name, shape) in enumerate(self.hidden):
      b_shape, scale = self.matrix_shape_and_scale(index)
      self.matrices.append(self._add_fixed_weight(
          f"{name}_feedback", f"_feedback_{index}", b_shape,
          dfa_ops.feedback_matrix, scale, index))
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
    if self.consumers is None:
      return [dfa_ops.project_error(error, self.feedback_matrix(i), shape)
              for i, (_, shape) in enumerate(self.hidden)]
    out = []
    for i, ((_, shape), consumer) in enumerate(zip(self.hidden,
                                                   self.consumers)):
      b = self.feedback_matrix(i)
      if consumer["kind"] == "dense":
        out.append(dfa_ops.project_error(error, tf.transpose(b), shape))
      else:
        out.append(dfa_ops.conv_input_projection(
            error, b, shape, consumer["output_hw"], consumer["strides"],
            consumer["padding"], consumer["dilation_rate"]))
    return out

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_outputs": self.num_outputs,
        "hidden": [[name, list(shape)] for name, shape in self.hidden],
        "feedback_scale": self.feedback_scale,
        "feedback_density": self.feedback_density,
        "seed": self.seed,
        "consumers": self.consumers,
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
  layer's output, before pooling. In a chain, layers with trainable weights
  but no kernel (batch norm with ``scale``/``center``, layer norm, PReLU,
  ...) raise ``ValueError``.

  Block-wise DFA (Launay, Poli, Boniface, Krzakala 2020, "Direct Feedback
  Alignment Scales to Modern Deep Learning Tasks and Architectures",
  NeurIPS; docs/algorithms.md §9): a functional network with merges
  (residual connections, attention: ResNets, ``tfbio.models`` ``vit_tiny``),
  or any network given ``block_outputs``, is cut into *blocks*
  (:func:`split_graph_blocks`). Block ``k`` ends at a layer whose output
  ``h_k`` receives ``e B_k`` (``B_k`` of shape ``(n_L, size of h_k)``); its
  parameters (any layers: LayerNorm, attention, embeddings included) get the
  VJP of ``h_k`` with ``e B_k``, i.e. back-propagation inside the block
  only. Every tensor passed from one block to another enters as a
  ``stop_gradient`` copy, so no error crosses a block boundary, the residual
  stream included. The output block (after the last block end, up to the
  output kernel layer and the weightless layers after it) gets its true
  gradient, and ``e = ∂E/∂a_L`` is taken at the output kernel layer's
  pre-activation as in the chain case. Default (``block_outputs=None``) for
  a network with merges: every ``keras.layers.Add`` ends a block (and the
  activation / dropout layers directly after it), so each residual unit
  ``x + F(x)`` is a block and the layers before the first addition (a patch
  embedding) train inside the first block.

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
    block_outputs: None (a chain: Nøkland's per-kernel-layer DFA; a network
      with merges: ``"residual"``), ``"residual"`` (every residual addition
      ends a block) or a list of layer names, each ending a block (e.g.
      ``["block1_add2", "block2_add2", ...]`` for one block per ViT
      transformer block, Launay et al.'s "macro" granularity).
    weight_decay: coupled L2 decay ``λ >= 0`` added to every update
      (``+ λ θ``, the gradient of ``λ/2 ||θ||²``; as
      ``tfbio.train.Trainer``'s ``optimizer.weight_decay``); 0: none.
    feedback_structure: ``"dense"`` (default): ``B_k`` is an
      ``(n_L, size of h_k)`` matrix (Nøkland 2016); ``"kernel"`` (needs a
      block-wise network, e.g. ``block_outputs="kernel_inputs"``): ``B_k``
      has the shape of the one kernel layer reading ``h_k`` with ``n_L``
      output units, and ``e`` reaches ``h_k`` as that layer's input gradient
      for ``B_k`` (a convolution's at ``e`` repeated over its output
      positions) — biotorch's DFA layers exactly (docs/algorithms.md §9;
      :class:`DirectFeedback`).
    **kwargs: ``keras.Model`` arguments (``name``, ...).

  Raises:
    ValueError: a bad argument (the message quotes it), or an unsupported
      network (the message names the layer).
  """

  def __init__(self, network, feedback_scale=None, feedback_density=1.0,
               seed=None, bp_angle=False, input_shape=None,
               block_outputs=None, weight_decay=0.0,
               feedback_structure="dense", **kwargs):
    super().__init__(**kwargs)
    self.feedback_scale = (None if feedback_scale is None else checks.number(
        "feedback_scale", feedback_scale, 0, low_open=True))
    self.feedback_density = checks.density("feedback_density",
                                           feedback_density)
    self.bp_angle = checks.boolean("bp_angle", bp_angle)
    self.block_outputs = _check_block_outputs(block_outputs)
    self.weight_decay = checks.number("weight_decay", weight_decay, 0)
    self.feedback_structure = checks.one_of(
        "feedback_structure", feedback_structure, STRUCTURES)
    self.seed = seeds.resolve_seed(seed)
    self.network = chain.build_network(network, input_shape)
    mode = self.block_outputs
    if mode is None and _has_merges(self.network):
      mode = RESIDUAL
    self._plan = None
    if mode is None:
      self.blocks = split_blocks(self.network)
    else:
      self.blocks, self._plan = split_graph_blocks(self.network, mode)
    self.num_outputs = self.blocks[-1].size
    self.dfa_variables = [v for b in self.blocks
                          for v in b.trainable_variables]
    ours = {id(v) for v in self.dfa_variables}
    for v in self.network.trainable_variables:
      if id(v) not in ours:
        raise ValueError(f"Trainable variable {v.path!r} belongs to no kernel "
                         "layer of the chain; DFAModel cannot update it.")
    consumers = None
    if self.feedback_structure == "kernel":
      if self._plan is None:
        raise ValueError("feedback_structure='kernel' needs a network cut "
                         "into blocks: pass block_outputs='kernel_inputs' "
                         "(or layer names).")
      consumers = [kernel_consumer(self._plan, k)
                   for k in range(len(self.blocks) - 1)]
    self.direct_feedback = DirectFeedback(
        self.num_outputs, [(b.name, b.output_shape) for b in self.blocks[:-1]],
        feedback_scale=self.feedback_scale,
        feedback_density=self.feedback_density, seed=self.seed,
        consumers=consumers, name="direct_feedback")
    self.direct_feedback.build()
    self._angle_trackers = ([keras.metrics.Mean(name=f"bp_angle/{b.name}")
                             for b in self.blocks[:-1]] if bp_angle else [])
    self.built = True
    logging.info(
        "DFAModel %s: blocks %s; B_l of shapes %s, U[-s, s] with s = %s, "
        "density %g, seed %d.", self.name, self.blocks,
        [tuple(b.shape) for b in self.direct_feedback.matrices],
        [round(self.direct_feedback.matrix_shape_and_scale(i)[1], 4)
         for i in range(len(self.blocks) - 1)],
        self.feedback_density, self.seed)

  @property
  def block_wise(self):
    """Whether the network is cut into graph blocks (Launay et al. 2020)."""
    return self._plan is not None

  @property
  def hidden_layers(self):
    """The hidden kernel layers ``l = 1..L-1`` (block-wise: each hidden
    block's end, whose output receives ``e B_k``), in order."""
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
    if self._plan is not None:
      return self._forward_graph(x, training, tape)
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
    edges = [(i - 1, i, raw[i], inputs[i]) for i in range(1, len(inputs))]
    return {"output": h, "pre_activation": a, "hidden": hidden,
            "inputs": inputs, "raw_inputs": raw, "edges": edges}

  def _forward_graph(self, x, training, tape):
    """:meth:`forward` of a graph cut into blocks (``block_wise``).

    Runs the layer calls in execution order; every tensor that one block
    passes to another enters the consumer as a ``stop_gradient`` copy (one
    per consumer block), so no error crosses a block boundary, not even
    along the residual stream.
    """
    plan = self._plan
    values = {id(plan.graph.inputs[0]): x}
    cuts, edges = {}, []
    a = None
    for node in plan.nodes:
      k = plan.node_block[id(node)]
      local = values
      for t in node.input_tensors:
        j = plan.tensor_block.get(id(t))
        if j is None or j == k:
          continue
        if (id(t), k) not in cuts:
          cut = tf.stop_gradient(values[id(t)])
          if tape is not None:
            tape.watch(cut)
          cuts[(id(t), k)] = cut
          edges.append((j, k, values[id(t)], cut))
        if local is values:
          local = dict(values)
        local[id(t)] = cuts[(id(t), k)]
      if node is plan.output_node:
        (h,), _ = node.arguments.fill_in(local)
        a, activation = _linear_output(node.operation, h, training)
        out = a if activation is None else activation(a)
      else:
        out = graph_lib.call_node(node, local, training)
      for t, value in zip(node.outputs, tf.nest.flatten(out)):
        values[id(t)] = value
    hidden = [values[id(t)] for t in plan.block_tensors]
    return {"output": values[id(plan.graph.outputs[0])], "pre_activation": a,
            "hidden": hidden, "inputs": [e[3] for e in edges],
            "raw_inputs": [e[2] for e in edges], "edges": edges}

  def _scaled_loss(self, x, y, y_pred, sample_weight):
    loss = self._compute_loss(x=x, y=y, y_pred=y_pred,
                              sample_weight=sample_weight, training=True)
    unscaled = loss * tf.cast(
        tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)
    if self.optimizer is not None:
      loss = self.optimizer.scale_loss(loss)
    return loss, unscaled

  def _backprop_from_tape(self, tape, loss, fwd):
    """True gradients of ``loss``, chained through the cut forward pass.

    Block by block from the output: a block's gradients are the VJP of the
    loss and of its tensors that later blocks consumed (with the gradients
    those blocks sent back to their ``stop_gradient`` copies).
    """
    edges = fwd["edges"]
    upstream = {}  # id(raw tensor) -> [raw tensor, summed gradient]
    grads = [None] * len(self.blocks)
    zero = tf.UnconnectedGradients.ZERO
    for index in range(len(self.blocks) - 1, -1, -1):
      variables = self.blocks[index].trainable_variables
      cuts = [e for e in edges if e[1] == index]
      sent = [upstream[id(e[2])] for e in edges
              if e[0] == index and id(e[2]) in upstream]
      sent = list({id(r): (r, g) for r, g in sent}.values())
      out = tape.gradient([loss] + [r for r, _ in sent],
                          variables + [e[3] for e in cuts],
                          output_gradients=[tf.ones_like(loss)]
                          + [g for _, g in sent],
                          unconnected_gradients=zero)
      grads[index] = out[:len(variables)]
      for edge, g in zip(cuts, out[len(variables):]):
        raw = edge[2]
        if id(raw) in upstream:
          upstream[id(raw)] = (raw, upstream[id(raw)][1] + g)
        else:
          upstream[id(raw)] = (raw, g)
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
    grads = result["grads"]
    if self.weight_decay:
      # Coupled L2 (the gradient of λ/2 ||θ||²), as tfbio.train.Trainer;
      # replicas' updates are summed, each adds its share.
      share = self.weight_decay / tf.distribute.get_strategy(
      ).num_replicas_in_sync
      grads = [g + tf.cast(share, g.dtype) * v
               for g, v in zip(grads, self.dfa_variables)]
    self.optimizer.apply(grads, self.dfa_variables)
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    self._loss_tracker.update_state(result["unscaled_loss"],
                                    sample_weight=batch)
    if self.bp_angle:
      start = 0
      for tracker, block in zip(self._angle_trackers, self.blocks):
        stop = start + len(block.trainable_variables)
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
        bp_angle=self.bp_angle,
        block_outputs=(list(self.block_outputs)
                       if isinstance(self.block_outputs, tuple)
                       else self.block_outputs),
        weight_decay=self.weight_decay,
        feedback_structure=self.feedback_structure)
