"""Chain-shaped Keras networks: building one, and listing its layers in order.

Shared by the training rules that wrap a network in a ``keras.Model`` and
walk it layer by layer (``tfbio.tp`` target propagation, ``tfbio.dfa`` direct
feedback alignment): a *chain* is a built Sequential or functional model with
one input and one output in which every layer is called once, on the output
of the layer before it (no nested models, skip connections or merges).

* :func:`build_network`: the wrapped network from a ``keras.Model`` or a list
  of layers (plus ``input_shape``);
* :func:`chain_layers`: its layers, from input to output;
* :class:`LayerBlock`: one weight layer of the chain with the weightless
  layers before and after it (the blocks each rule splits a chain into);
* :class:`NetworkWrapper`: the ``get_config`` / ``from_config`` of a
  ``keras.Model`` whose first constructor argument is that network.
"""

import keras
import tensorflow as tf

from tfbio.utils import checks


def describe_layer(layer):
  """``'name' (ClassName)``: how error messages name a layer."""
  return f"{layer.name!r} ({type(layer).__name__})"


def build_network(network, input_shape=None):
  """The network a training-rule wrapper trains, built when possible.

  Args:
    network: a ``keras.Model`` (built here with ``input_shape`` if it is not
      built yet), or a list/tuple of layers (then wrapped in a
      ``keras.Sequential`` after ``keras.Input(input_shape)``).
    input_shape: input shape without the batch axis, or None.

  Returns:
    The ``keras.Model`` (``network`` itself when it is one).

  Raises:
    ValueError: ``network`` is neither a model nor a list of layers, a list
      without ``input_shape``, or an ``input_shape`` that does not match the
      built model's.
  """
  if input_shape is not None:
    input_shape = checks.shape("input_shape", input_shape)
  if isinstance(network, (list, tuple)):
    if input_shape is None:
      raise ValueError("input_shape is required when network is a list of "
                       "layers. Received: input_shape=None")
    network = keras.Sequential([keras.Input(shape=input_shape)]
                               + list(network))
  elif isinstance(network, keras.Model):
    if not network.built and input_shape is not None:
      network.build((None,) + input_shape)
    if network.built and input_shape is not None:
      have = tuple(network.inputs[0].shape[1:])
      if have != input_shape:
        raise ValueError(f"input_shape={input_shape} does not match the "
                         f"input shape {have} of model {network.name!r}.")
  else:
    raise ValueError(f"network must be a keras.Model or a list of layers. "
                     f"Received: network={network!r}")
  return network


def functional_io(network, needed_by, kind="functional model"):
  """``(graph, inputs, outputs)`` of a built one-input, one-output
  Sequential or functional model (``graph``: the functional model behind a
  Sequential, else ``network``).

  Args:
    network: the model.
    needed_by: who needs it, for the error messages.
    kind: what ``needed_by`` needs, for the subclassed-model message.

  Raises:
    ValueError: not a ``keras.Model``, unbuilt, subclassed, or not exactly
      one input and one output.
  """
  if not isinstance(network, keras.Model):
    raise ValueError(f"network must be a keras.Model or a list of layers. "
                     f"Received: network={network!r}")
  if not network.built:
    raise ValueError(f"Model {network.name!r} is not built; build it (or pass "
                     f"input_shape=) before wrapping it for {needed_by}.")
  graph = network
  if isinstance(network, keras.Sequential):
    graph = getattr(network, "_functional", None)
    if graph is None:
      graph = network
  try:
    inputs, outputs = graph.inputs, graph.outputs
  except (AttributeError, ValueError):
    inputs = outputs = None
  if not inputs or not outputs or not hasattr(graph, "_nodes_by_depth"):
    raise ValueError(f"Model {network.name!r} ({type(network).__name__}) is "
                     f"subclassed; {needed_by} needs a Sequential or {kind}.")
  if len(inputs) != 1 or len(outputs) != 1:
    raise ValueError(f"Model {network.name!r} must have one input and one "
                     f"output; it has {len(inputs)} and {len(outputs)}.")
  return graph, inputs, outputs


def chain_layers(network, needed_by):
  """The layers of a Sequential / chain-shaped functional model, in order.

  Walks the model's graph back from its output, so that nodes the layers
  have in other graphs do not matter.

  Args:
    network: a built ``keras.Model``.
    needed_by: who needs the chain, for the error messages (e.g.
      ``"DFAModel"``, ``"target propagation"``).

  Returns:
    A list of the layers, from the input to the output (no ``InputLayer``).

  Raises:
    ValueError: not a ``keras.Model``, a subclassed or unbuilt model, several
      inputs or outputs, a nested model, a layer used twice, or a layer with
      several inputs (skip connections, merges).
  """
  _, inputs, outputs = functional_io(
      network, needed_by, "functional model whose layers form a chain")
  chain, tensor = [], outputs[0]
  while tensor is not inputs[0]:
    history = tensor._keras_history  # pylint: disable=protected-access
    layer, node_index = history[0], history[1]
    if isinstance(layer, keras.Model):
      raise ValueError(f"Layer {describe_layer(layer)} is a nested model; "
                       "flatten it into one Sequential/functional chain for "
                       f"{needed_by}.")
    if any(layer is other for other in chain):
      raise ValueError(f"Layer {describe_layer(layer)} is used more than "
                       f"once; {needed_by} needs each layer once, in a chain.")
    node = layer._inbound_nodes[node_index]  # pylint: disable=protected-access
    layer_inputs = tf.nest.flatten(node.input_tensors)
    if len(layer_inputs) != 1:
      raise ValueError(f"Layer {describe_layer(layer)} takes "
                       f"{len(layer_inputs)} inputs; {needed_by} needs a "
                       "chain (no skip connections or merges).")
    chain.append(layer)
    tensor = layer_inputs[0]
  return chain[::-1]


class LayerBlock:
  """``pre_layers``, then the weight layer ``layer``, then ``post_layers``.

  Not a Keras layer. The base of ``tfbio.tp.Block`` and ``tfbio.dfa.Block``,
  whose ``split_blocks`` decide which layers of a chain go where.

  Attributes:
    pre_layers: tuple of Keras layers applied before ``layer``.
    layer: the layer with the block's weights.
    post_layers: tuple of Keras layers applied after ``layer``.
    output_shape: shape of ``layer``'s output without the batch axis.
  """

  def __init__(self, pre_layers, layer, post_layers, output_shape):
    self.pre_layers = tuple(pre_layers)
    self.layer = layer
    self.post_layers = tuple(post_layers)
    self.output_shape = tuple(output_shape)

  @property
  def name(self):
    """The name of ``layer``."""
    return self.layer.name

  def __repr__(self):
    names = ([p.name for p in self.pre_layers] + [f"[{self.layer.name}]"]
             + [p.name for p in self.post_layers])
    return f"{type(self).__name__}({' -> '.join(names)})"


class NetworkWrapper:
  """Config round trip of a ``keras.Model`` ``cls(network, **options)``.

  A mixin (list it before ``keras.Model``): the subclass stores the wrapped
  network as ``self.network`` and returns ``self.network_config(**options)``
  from ``get_config``; :meth:`from_config` deserializes the network and
  passes the rest of the config back as keyword arguments.
  """

  def network_config(self, **options):
    """``name``, ``trainable``, the serialized ``network`` and ``options``."""
    return {
        "name": self.name,
        "trainable": self.trainable,
        "network": keras.saving.serialize_keras_object(self.network),
        **options,
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    network = keras.saving.deserialize_keras_object(
        config.pop("network"), custom_objects=custom_objects)
    return cls(network, **config)
