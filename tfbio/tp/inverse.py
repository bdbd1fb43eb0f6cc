"""Blocks ``f_l`` of a target-propagation stack and their learned inverses.

bartunov2018 §2.1.1 trains a stack ``h_l = f_l(h_{l-1}; θ_l)`` with
approximate inverses ``g_l(h_l; λ_l) ≈ f_l^{-1}(h_l)`` "parametrized similarly
to the forward computation": ``g_l(h_l) = σ(V_l h_l + c_l)``
(docs/algorithms.md §6).

* A *block* ``f_l`` is one tfbio feedback layer (``Dense``,
  ``LocallyConnected2D`` or ``Conv2D``, activation built in) preceded by the
  parameter-free *linear* layers that sit between it and the previous
  feedback layer (``Flatten``, ``Reshape``, average pools, ...): for example
  ``f_l = output ∘ flatten``. Any other layer (batch norm, dropout, max
  pooling, merges, ...) has no inverse and is rejected.
* ``V_l`` is never a dense matrix. Following the appendix of bartunov2018
  ("Inverse operations"), the linear part ``z = A P(x)`` of the block
  (``P`` = the folded parameter-free layers, ``A`` = a kernel of exactly the
  forward kernel's shape) is a *dummy forward op*, and the inverse applies its
  transpose as the gradient of that op with respect to its input::

      V_l h = (dz/dx)^T h = d/dx <h, A P(x)>,   g_l(h) = σ(V_l h + c_l).

  For a Dense block this is ``h A^T``; for a locally-connected one it is the
  untied "transposed convolution" with the same sparse structure as ``W^T``.
  The gradient is taken with ``tf.GradientTape``; it is an implementation
  detail of a linear map, not a learning signal (bartunov2018 appendix).
"""

import keras
import tensorflow as tf

from tfbio.layers.chain import chain_layers
from tfbio.layers.chain import describe_layer
from tfbio.layers.chain import LayerBlock
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense
from tfbio.layers.locally_connected import LocallyConnected2D
from tfbio.utils import checks

# Feedback layers a block may end in.
INVERTIBLE_LAYERS = (Dense, LocallyConnected2D, Conv2D)

# Parameter-free layers that are linear maps of their input, so that they can
# be folded into the dummy forward op of the next block.
LINEAR_PARAMETER_FREE = (
    keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute,
    keras.layers.Identity,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D, keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D, keras.layers.Cropping1D,
    keras.layers.Cropping2D, keras.layers.Cropping3D,
)

# Config entries of the shadow (dummy) forward op that must not be inherited
# from the forward layer: the op is linear, bias-free, plain backprop.
_SHADOW_OVERRIDES = {
    "use_bias": False, "activation": None, "feedback": "bp", "density": 1.0,
    "feedback_density": 1.0, "sign_fixed": False,
    "kernel_initializer": "glorot_uniform", "kernel_regularizer": None,
    "bias_regularizer": None, "activity_regularizer": None,
    "kernel_constraint": None, "bias_constraint": None,
}


class Block(LayerBlock):
  """``f_l = layer ∘ pre_layers[-1] ∘ ... ∘ pre_layers[0]`` (not a Keras layer).

  Attributes:
    pre_layers: tuple of parameter-free linear Keras layers applied first.
    layer: the tfbio feedback layer (its activation is the block's ``σ_l``).
    post_layers: ``()`` (a TP block ends in its feedback layer).
    input_shape: shape of ``h_{l-1}`` without the batch axis.
    output_shape: shape of ``h_l`` without the batch axis.
  """

  def __init__(self, pre_layers, layer, input_shape, output_shape):
    super().__init__(pre_layers, layer, (), output_shape)
    self.input_shape = tuple(input_shape)

  def __call__(self, h, training=None):
    for pre in self.pre_layers:
      h = pre(h)
    return self.layer(h, training=training)


def split_blocks(network):
  """Splits a chain model into TP blocks ``f_1 .. f_L`` (see :class:`Block`).

  Args:
    network: a built Sequential or chain-shaped functional ``keras.Model``.

  Returns:
    A list of :class:`Block`, the last one the classifier.

  Raises:
    ValueError: a layer without an inverse (the message names it), a layer
      after the classifier, a non-``bp`` feedback layer, or fewer than two
      blocks.
  """
  chain = chain_layers(network, "target propagation")
  shape = (None,) + tuple(network.inputs[0].shape[1:])
  blocks, pending, block_input = [], [], shape
  for layer in chain:
    if isinstance(layer, INVERTIBLE_LAYERS):
      if not layer.feedback.is_backprop:
        raise ValueError(f"Layer {describe_layer(layer)} uses feedback "
                         f"{layer.feedback.name!r}; target propagation trains "
                         "by targets and needs feedback='bp' layers.")
      if layer.kernel_mask is not None or layer.sign_fixed:
        raise ValueError(f"Layer {describe_layer(layer)} has a connectivity mask or "
                         "sign-fixed weights, which target propagation does "
                         "not support.")
      out_shape = tuple(layer.compute_output_shape(shape))
      blocks.append(Block(pending, layer, block_input[1:], out_shape[1:]))
      pending, shape, block_input = [], out_shape, out_shape
    elif isinstance(layer, LINEAR_PARAMETER_FREE):
      pending.append(layer)
      shape = tuple(layer.compute_output_shape(shape))
    else:
      raise ValueError(
          f"Layer {describe_layer(layer)} has no inverse for target propagation; "
          "supported: tfbio Dense / LocallyConnected2D / Conv2D and, between "
          "them, parameter-free linear layers (Flatten, Reshape, average "
          "pooling, padding, cropping).")
  if pending:
    raise ValueError(f"Layer {describe_layer(pending[0])} follows the classifier; "
                     "target propagation needs a tfbio feedback layer "
                     "(the classifier) last.")
  if len(blocks) < 2:
    raise ValueError(f"Target propagation needs at least one hidden feedback "
                     f"layer and a classifier; model {network.name!r} has "
                     f"{len(blocks)} feedback layer(s).")
  return blocks


@keras.saving.register_keras_serializable(package="tfbio")
class LayerInverse(keras.layers.Layer):
  """Learned inverse ``g_l(h_l) = σ(V_l h_l + c_l)`` of one block ``f_l``.

  bartunov2018 §2.1.1 (docs/algorithms.md §6) with the appendix's transpose
  trick: ``V_l h = d/dx <h, op(P(x); A_l)>``, where ``op`` is ``forward_op`` (a
  bias-free, linear copy of the block's feedback layer whose ``kernel`` is the
  inverse's weight ``A_l``, shaped exactly like the forward kernel) and ``P``
  the block's parameter-free layers (``pre_layers``). ``c_l`` has the full shape
  of ``h_{l-1}`` (one bias per unit, untied like an LC bias).

  Input: ``h_l`` ``(batch, *output shape of f_l)``; output: ``(batch,
  *target_shape)``, the shape of ``h_{l-1}``.

  Args:
    forward_op: the dummy forward layer (a tfbio Dense / LocallyConnected2D /
      Conv2D with ``use_bias=False`` and no activation), or its serialized
      config.
    target_shape: shape of ``h_{l-1}`` without the batch axis.
    pre_layers: parameter-free linear layers (or their serialized configs)
      applied to ``x`` before ``forward_op``.
    activation: ``σ`` of the inverse; the activation of the layer that
      produced ``h_{l-1}`` (tanh in bartunov2018).
    bias_initializer: initializer of ``c_l`` (zeros).
    **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).
  """

  def __init__(self, forward_op, target_shape, pre_layers=(),
               activation="tanh", bias_initializer="zeros", **kwargs):
    super().__init__(**kwargs)
    if isinstance(forward_op, dict):
      forward_op = keras.saving.deserialize_keras_object(forward_op)
    if not isinstance(forward_op, INVERTIBLE_LAYERS):
      raise ValueError(f"forward_op must be a tfbio Dense, LocallyConnected2D "
                       f"or Conv2D layer. Received: forward_op={forward_op!r}")
    if forward_op.use_bias or not forward_op.feedback.is_backprop:
      raise ValueError(f"forward_op must be bias-free with feedback='bp'. "
                       f"Received: forward_op={forward_op.name!r}")
    target_shape = checks.shape("target_shape", target_shape)
    pre = []
    for p in pre_layers:
      if isinstance(p, dict):
        p = keras.saving.deserialize_keras_object(p)
      if not isinstance(p, LINEAR_PARAMETER_FREE):
        raise ValueError(f"pre_layers must be parameter-free linear layers. "
                         f"Received: {p!r}")
      pre.append(p)
    self.forward_op = forward_op
    self.pre_layers = pre
    self.target_shape = target_shape
    if isinstance(activation, str) and ">" in activation:
      self.activation = keras.activations.deserialize(activation)
    else:
      self.activation = keras.activations.get(activation)
    self.bias_initializer = keras.initializers.get(bias_initializer)

  def build(self, input_shape):
    shape = (None,) + self.target_shape
    for p in self.pre_layers:
      if not p.built:
        p.build(shape)
      shape = tuple(p.compute_output_shape(shape))
    if not self.forward_op.built:
      self.forward_op.build(shape)
    out = tuple(self.forward_op.compute_output_shape(shape))[1:]
    if tuple(input_shape[1:]) != out:
      raise ValueError(f"Inverse {self.name!r} maps activations of shape {out} "
                       f"back to {self.target_shape}; it was built for inputs "
                       f"of shape {tuple(input_shape[1:])}.")
    self.bias = self.add_weight(name="bias", shape=self.target_shape,
                                initializer=self.bias_initializer)

  @property
  def kernel(self):
    """``A_l``, the weight of the dummy forward op (forward kernel's shape)."""
    return self.forward_op.kernel

  def dummy_forward(self, x):
    """``z = op(P(x); A_l)``, the linear map whose transpose is ``V_l``."""
    for p in self.pre_layers:
      x = p(x)
    return self.forward_op(x, training=False)

  def transpose(self, h):
    """``V_l h = d/dx <h, op(P(x); A_l)>`` (bartunov2018 appendix)."""
    h = tf.convert_to_tensor(h, dtype=self.compute_dtype)
    batch = tf.shape(h)[:1]
    x0 = tf.zeros(tf.concat([batch, self.target_shape], 0), dtype=h.dtype)
    with tf.GradientTape() as tape:
      tape.watch(x0)
      z = self.dummy_forward(x0)
    return tape.gradient(z, x0, output_gradients=h)

  def call(self, inputs):
    x = self.transpose(inputs) + tf.cast(self.bias, self.compute_dtype)
    if self.activation is not None:
      x = self.activation(x)
    return x

  def compute_output_shape(self, input_shape):
    return (input_shape[0],) + self.target_shape

  def get_config(self):
    config = super().get_config()
    config.update({
        "forward_op": keras.saving.serialize_keras_object(self.forward_op),
        "target_shape": self.target_shape,
        "pre_layers": [keras.saving.serialize_keras_object(p)
                       for p in self.pre_layers],
        "activation": keras.activations.serialize(self.activation),
        "bias_initializer": keras.initializers.serialize(
            self.bias_initializer),
    })
    return config


def make_inverse(block, previous_layer):
  """The :class:`LayerInverse` ``g_l`` of ``block`` (built, fresh weights).

  Args:
    block: the :class:`Block` ``f_l`` to invert.
    previous_layer: the feedback layer that produced ``h_{l-1}``; its
      activation becomes the inverse's ``σ``.
  """
  layer = block.layer
  config = layer.get_config()
  config.update(_SHADOW_OVERRIDES)
  config["name"] = f"inv_{layer.name}_op"
  if isinstance(layer, LocallyConnected2D):
    config["implementation"] = layer.resolved_implementation
  op = type(layer).from_config(config)
  pre = []
  for p in block.pre_layers:
    p_config = p.get_config()
    p_config["name"] = f"inv_{layer.name}_{p.name}"
    pre.append(type(p).from_config(p_config))
  inverse = LayerInverse(op, block.input_shape, pre_layers=pre,
                         activation=keras.activations.serialize(
                             previous_layer.activation),
                         name=f"inv_{layer.name}")
  inverse.build((None,) + block.output_shape)
  return inverse


__all__ = ["Block", "INVERTIBLE_LAYERS", "LINEAR_PARAMETER_FREE",
           "LayerInverse", "make_inverse", "split_blocks"]
