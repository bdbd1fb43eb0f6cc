"""Functional Keras networks as graphs of layer calls (nodes).

The graph counterpart of :mod:`tfbio.layers.chain`, for training rules that
cut a network with merges (residual connections, attention blocks) into
regions and run it node by node (``tfbio.dfa`` block-wise direct feedback
alignment):

* :func:`functional_graph`: the functional graph of a built Sequential or
  functional model with one input and one output;
* :func:`graph_nodes`: its layer calls, in execution order;
* :func:`producer` / :func:`ancestors`: where a tensor comes from;
* :func:`call_node`: one layer call on computed values (what Keras'
  ``Functional.call`` does for each node).

A *node* is one call of a layer (``keras.src.ops.node.Node``); its
``input_tensors`` and ``outputs`` are the symbolic ``KerasTensor`` s of the
graph, and computed values are looked up by ``id`` of those tensors, as in
Keras' own graph runner.
"""

from keras.src.models import functional as keras_functional

from tfbio.layers.chain import describe_layer
from tfbio.layers.chain import functional_io


def functional_graph(network, needed_by):
  """The functional graph of ``network`` (a Sequential's inner model).

  Args:
    network: a built ``keras.Model``.
    needed_by: who needs the graph, for the error messages.

  Returns:
    A functional ``keras.Model`` with ``inputs``, ``outputs`` and nodes.

  Raises:
    ValueError: not a ``keras.Model``, unbuilt, subclassed, or not exactly
      one input and one output.
  """
  graph, _, _ = functional_io(network, needed_by)
  return graph


def graph_nodes(graph):
  """The layer calls of ``graph`` in execution order (no input nodes)."""
  nodes = []
  by_depth = graph._nodes_by_depth  # pylint: disable=protected-access
  for depth in sorted(by_depth, reverse=True):
    for node in by_depth[depth]:
      if node.operation is not None and not node.is_input:
        nodes.append(node)
  return nodes


def producer(tensor):
  """The node that computes the symbolic ``tensor`` (None for an input)."""
  history = getattr(tensor, "_keras_history", None)
  if history is None or history.operation is None:
    return None
  node = history.operation._inbound_nodes[history.node_index]  # pylint: disable=protected-access
  return None if node.is_input else node


def ancestors(tensor, stop=frozenset()):
  """``{id(node): node}`` of the nodes that ``tensor`` depends on (itself
  included), not walking past the nodes whose ids are in ``stop``."""
  found, pending = {}, [tensor]
  while pending:
    node = producer(pending.pop())
    if node is None or id(node) in found or id(node) in stop:
      continue
    found[id(node)] = node
    pending.extend(node.input_tensors)
  return found


def is_merge(node):
  """Whether the node takes several tensors (a merge, attention, ...)."""
  return len(node.input_tensors) != 1


def call_node(node, values, training=None):
  """Calls ``node``'s layer on computed values, as ``Functional.call`` does.

  Args:
    node: a graph node.
    values: ``{id(symbolic tensor): computed tensor}`` holding every input
      of ``node``.
    training: the ``training`` flag (passed where the layer takes it).

  Returns:
    The layer's output (a tensor, or a structure for multi-output layers).
  """
  args, kwargs = node.arguments.fill_in(values)
  return keras_functional.operation_fn(node.operation, training=training)(
      *args, **kwargs)


def describe_node(node):
  """How error messages name the layer of a node."""
  return describe_layer(node.operation)
