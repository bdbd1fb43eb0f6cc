"""Swap every kernel layer of a Keras model for its tfbio feedback layer."""

import collections
import re
import warnings

from absl import logging
import keras
import tensorflow as tf

from tfbio import feedback as feedback_lib
from tfbio.layers import conv as conv_layers
from tfbio.layers.attention import MultiHeadAttention
from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense
from tfbio.layers.einsum_dense import EinsumDense
from tfbio.layers.feedback_mixin import FeedbackLayerMixin
from tfbio.layers.locally_connected import LocallyConnected2D

# Keras or tfbio class → tfbio class. Exact types only: subclasses of
# Dense/Conv2D (e.g. a user's custom layer) may change behaviour we would not
# reproduce. tfbio layers are re-created with the new algorithm.
_CONVERTIBLE = {keras.layers.Dense: Dense, keras.layers.Conv2D: Conv2D,
                Dense: Dense, Conv2D: Conv2D,
                LocallyConnected2D: LocallyConnected2D,
                keras.layers.EinsumDense: EinsumDense,
                keras.layers.MultiHeadAttention: MultiHeadAttention}
for _name in ("Conv1D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
              "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D",
              "SeparableConv1D", "SeparableConv2D"):
  _CONVERTIBLE[getattr(keras.layers, _name)] = getattr(conv_layers, _name)
for _cls in list(_CONVERTIBLE.values()):
  _CONVERTIBLE[_cls] = _cls
del _name, _cls
_DROPPED_KEYS = ("lora_rank", "lora_alpha", "quantization_config")


def resolve_overrides(overrides):
  """``[(key, compiled regex, algorithm)]`` of an overrides map.

  Raises:
    ValueError: a key that is not a valid regex, or an unknown algorithm.
  """
  resolved = []
  for key, spec in (overrides or {}).items():
    try:
      pattern = re.compile(key)
    except re.error as e:
      raise ValueError(f"overrides key {key!r} is not a layer name nor a valid "
                       f"regular expression ({e})") from None
    resolved.append((key, pattern, feedback_lib.get(spec)))
  return resolved


def _walk(model):
  """All layers of ``model`` and of its nested models, in a stable order."""
  for layer in model.layers:
    yield layer
    if isinstance(layer, keras.Model):
      yield from _walk(layer)


def _check_clonable(model, what):
  if not isinstance(model, keras.Model):
    raise ValueError(f"{what}() needs a keras.Model. Received: {model!r}")
  # Functional models are instances of keras' (private) Functional class;
  # a class that *subclasses* it or keras.Model directly has its own call().
  if not (isinstance(model, keras.Sequential)
          or type(model).__name__ == "Functional"):
    raise ValueError(f"{what}() supports Sequential and functional models; "
                     f"{type(model).__name__!r} is subclassed and cannot be "
                     "cloned.")


def _copy_weights(model, new, replaced, copy_replaced):
  """Copies weights from ``model`` into its clone ``new``, layer by layer.

  New layers whose id is in ``replaced`` go to ``copy_replaced(old, fresh)``;
  the others get ``set_weights`` (all their variables, feedback state too).
  Returns the list of the old model's layers.
  """
  old_layers, new_layers = list(_walk(model)), list(_walk(new))
  if len(old_layers) != len(new_layers):
    raise RuntimeError("clone_model changed the layer structure: "
                       f"{len(old_layers)} vs {len(new_layers)} layers")
  for old, fresh in zip(old_layers, new_layers):
    if isinstance(fresh, keras.Model) or fresh is old:
      continue  # nested models: layer by layer; reused layers: as they are
    if id(fresh) in replaced:
      copy_replaced(old, fresh)
    elif old.weights:
      fresh.set_weights(old.get_weights())
  return old_layers


def convert(model, feedback, overrides=None, strict=False, return_table=False,
            **layer_kwargs):
  """Returns a copy of ``model`` whose kernel layers are tfbio feedback layers.

  Every Keras layer with a linear kernel (nested models and the projections
  of ``MultiHeadAttention`` included) becomes the tfbio layer of the same
  name with the same config and weights and the chosen feedback algorithm:
  ``Dense``, ``Conv2D``, ``EinsumDense``, ``Conv1D``, ``Conv3D``,
  ``Conv{1,2,3}DTranspose``, ``DepthwiseConv{1,2}D``,
  ``SeparableConv{1,2}D`` and ``MultiHeadAttention`` (see
  docs/algorithms.md §2.5); tfbio feedback layers already in the model are
  re-created with the chosen algorithm (fresh feedback state, same weights
  and seed). Every other layer is left alone: a layer without weights
  (``Lambda``, pooling, activations, ...) is reused as is, the same object
  (so Keras' safe mode never has to re-create a ``Lambda``); a layer with
  weights (batch norm, ...) is cloned from its config with its weights
  copied, so that training the result never changes the input model — or,
  if its config cannot re-create it, reused as is (its weights are then
  shared with the input model; the table says "shared"). The input model
  itself is never modified.

  A trainable layer with a kernel that cannot be swapped — a grouped
  convolution, LoRA or quantized layers, a subclass or any other layer with
  a ``*kernel`` weight (an RNN, ``TimeDistributed``, a custom layer) — is
  left as above with a ``UserWarning`` naming it; with ``strict=True`` it is
  a ``ValueError`` instead.

  The result is logged (absl INFO) as one table, a row per layer
  (``layer``: path through nested models, ``type``, ``algorithm``,
  ``status``: ``converted``, ``kept`` (the same object), ``copied``,
  ``shared``, ``input``, ``model`` (a nested model, rebuilt), or ``NOT
  CONVERTED: reason``), plus a row per attention projection
  (``"mha/query"``, ...); ``return_table=True`` also returns it, as a list
  of :class:`ConversionRow`.

  Example (xiao2018's "SS except the last layer")::

      base = keras.applications.MobileNetV2(weights=None, classes=10,
                                            input_shape=(32, 32, 3))
      model, table = tfbio.convert(base, "ss", overrides={"predictions": "bp"},
                                   return_table=True)

  Args:
    model: a Sequential or functional Keras model (``keras.applications``
      models included). Subclassed models cannot be cloned by Keras.
    feedback: algorithm for every converted layer (name, dict or object).
    overrides: optional ``{layer name or regex: algorithm}``; the first key
      that equals a layer's name, or else fully matches it as a regular
      expression, chooses that layer's algorithm (a ``MultiHeadAttention``
      is matched by its own name, for all its projections).
    strict: raise instead of warning about kernel layers left unconverted.
    return_table: also return the table.
    **layer_kwargs: extra tfbio layer arguments for every converted layer
      (``density``, ``feedback_density``, ``sign_fixed``).

  Returns:
    A new Keras model, or ``(model, table)`` with ``return_table=True``.

  Raises:
    ValueError: a subclassed model, an unknown algorithm, an override that
      matches no convertible layer, or (``strict=True``) a kernel layer that
      cannot be converted.
  """
  _check_clonable(model, "convert")
  default = feedback_lib.get(feedback)
  resolved = resolve_overrides(overrides)
  used = set()
  replaced = set()
  unsupported = {}
  for path, layer in _walk_paths(model):
    reason = _unsupported_reason(layer)
    if reason:
      unsupported[id(layer)] = (path, reason)
  if unsupported:
    listing = "; ".join(f"{p!r}: {r}" for p, r in unsupported.values())
    if strict:
      raise ValueError(f"tfbio.convert(strict=True): these layers have a "
                       f"kernel but cannot be converted: {listing}")
    warnings.warn(f"tfbio.convert: layers with a kernel left unconverted "
                  f"(their backward pass stays exact): {listing}",
                  stacklevel=2)

  def choose(name):
    for key, pattern, algo in resolved:
      if key == name or pattern.fullmatch(name):
        used.add(key)
        return algo
    return default

  def clone(layer):
    cls = _CONVERTIBLE.get(type(layer))
    if cls is None or id(layer) in unsupported:
      return _keep(layer)
    config = layer.get_config()
    for key in _DROPPED_KEYS:
      config.pop(key, None)
    kwargs = dict(layer_kwargs)
    if cls is MultiHeadAttention and "seed" in kwargs:
      kwargs["feedback_seed"] = kwargs.pop("seed")
    fresh = cls.from_config({**config, "feedback": choose(layer.name),
                             **kwargs})
    replaced.add(id(fresh))
    return fresh

  new = keras.models.clone_model(model, clone_function=clone, recursive=True)
  unused = [key for key, _, _ in resolved if key not in used]
  if unused:
    raise ValueError(f"overrides keys matched no convertible layer: {unused}")
  _copy_weights(model, new, replaced, _copy_converted)
  table = _conversion_table(model, new, replaced, unsupported)
  logging.info("tfbio.convert:\n%s", format_table(table))
  return (new, table) if return_table else new


ConversionRow = collections.namedtuple(
    "ConversionRow", ["layer", "type", "algorithm", "status"])
ConversionRow.__doc__ = """One row of ``tfbio.convert``'s table.

Attributes:
  layer: the layer's path (``"block/inner_conv"``; ``"mha/query"`` for an
    attention projection).
  type: ``"Conv2D -> tfbio.Conv2D"`` for a converted layer, else the type.
  algorithm: the feedback algorithm (``"ss"``, ``"frsf_p(flip_prob=0.3)"``)
    or ``"-"``.
  status: ``converted``, ``kept``, ``copied``, ``shared``, ``input``,
    ``model``, or ``NOT CONVERTED: reason``.
"""


def _walk_paths(model, prefix=""):
  """``(path, layer)`` of every layer of ``model`` and its nested models."""
  for layer in model.layers:
    path = prefix + layer.name
    yield path, layer
    if isinstance(layer, keras.Model):
      yield from _walk_paths(layer, path + "/")


def _unsupported_reason(layer):
  """Why a trainable layer with a kernel cannot be converted, or None."""
  if isinstance(layer, keras.Model) or not layer.trainable:
    return None
  if type(layer) in _CONVERTIBLE:
    config = layer.get_config()
    if config.get("lora_rank") or getattr(layer, "lora_enabled", False):
      return "LoRA is not supported"
    if config.get("quantization_config") or getattr(
        layer, "quantization_mode", None):
      return "quantization is not supported"
    if config.get("groups", 1) != 1 and _CONVERTIBLE[type(layer)] is not Conv2D:
      return f"grouped convolution (groups={config['groups']})"
    return None
  kernels = [v.name for v in layer.trainable_weights
             if v.name.endswith("kernel")]
  if kernels:
    return (f"no tfbio feedback version of {type(layer).__name__} (weights "
            f"{', '.join(kernels)})")
  return None


def _keep(layer):
  """A layer convert() does not swap: itself, or a copy if it has weights.

  Weightless layers are reused (``Lambda`` is never re-created). Layers with
  weights are re-created from their config (their weights are copied later)
  so that the input model is not trained along; the object itself is reused
  when its config cannot re-create it.
  """
  # Keras operations in a functional graph (``x + 1.0``) are not layers.
  if not isinstance(layer, keras.layers.Layer) or not layer.weights:
    return layer
  try:
    return layer.__class__.from_config(layer.get_config())
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("tfbio.convert: reusing layer %r (its weights are "
                    "shared with the input model): %s cannot re-create it "
                    "from its config (%s).", layer.name,
                    type(layer).__name__, e)
    return layer


def _plain_weights(layer):
  """The layer's weights (sublayers included) minus any feedback state."""
  ids = set()
  for sub in layer._flatten_layers():  # pylint: disable=protected-access
    if isinstance(sub, FeedbackLayerMixin):
      ids.update(id(v) for v in sub.feedback_variables)
  return [v for v in layer.weights if id(v) not in ids]


def _copy_converted(old, fresh):
  """Copies ``old``'s weights into the converted layer ``fresh``."""
  if isinstance(fresh, BaseFeedbackLayer):
    fresh.kernel.assign(old.kernel)
    if old.bias is not None:
      fresh.bias.assign(old.bias)
    fresh.reset_sign_reference()
    return
  source, target = _plain_weights(old), _plain_weights(fresh)
  if [tuple(v.shape) for v in source] != [tuple(v.shape) for v in target]:
    raise RuntimeError(f"tfbio.convert: weights of {old.name!r} do not match "
                       f"its converted layer: {[v.path for v in source]} vs "
                       f"{[v.path for v in target]}")
  for a, b in zip(source, target):
    b.assign(a)
  for sub in fresh._flatten_layers():  # pylint: disable=protected-access
    if isinstance(sub, FeedbackLayerMixin):
      sub.reset_sign_reference()


def _algorithm_name(algorithm):
  params = {k: v for k, v in algorithm.get_config().items() if v is not None}
  if not params:
    return algorithm.name
  args = ", ".join(f"{k}={v!r}" for k, v in params.items())
  return f"{algorithm.name}({args})"


def _conversion_table(model, new, replaced, unsupported):
  rows = []
  for (path, old), (_, fresh) in zip(_walk_paths(model), _walk_paths(new)):
    algorithm = "-"
    kind = type(old).__name__
    if id(fresh) in replaced:
      status = "converted"
      kind = f"{kind} -> tfbio.{type(fresh).__name__}"
      algorithm = _algorithm_name(fresh.feedback)
    elif isinstance(old, keras.Model):
      status = "model"
    elif isinstance(old, keras.layers.InputLayer):
      status = "input"
    elif fresh is old:
      status = "shared" if old.weights else "kept"
    else:
      status = "copied"
    if id(old) in unsupported:
      status = f"NOT CONVERTED: {unsupported[id(old)][1]} ({status})"
    rows.append(ConversionRow(path, kind, algorithm, status))
    if id(fresh) in replaced and isinstance(fresh, MultiHeadAttention):
      for name, sub in fresh.feedback_layers.items():
        rows.append(ConversionRow(
            f"{path}/{name}", "EinsumDense -> tfbio.EinsumDense",
            _algorithm_name(sub.feedback), "converted (projection)"))
  return rows


def format_table(table):
  """The text of a ``tfbio.convert`` table, with a summary line."""
  header = ConversionRow("layer", "type", "algorithm", "status")
  widths = [max(len(str(row[i])) for row in [header] + table)
            for i in range(3)]
  lines = ["  ".join(str(v).ljust(w) for v, w in zip(row[:3], widths))
           + "  " + row[3] for row in [header] + table]
  converted = collections.Counter(
      row.algorithm for row in table if row.status == "converted")
  kinds = collections.Counter(
      row.type.split(" -> ")[0] for row in table if row.status == "converted")
  not_converted = [row.layer for row in table
                   if row.status.startswith("NOT CONVERTED")]
  lines.append(
      f"{len(table)} rows: {sum(converted.values())} layers converted ("
      + ", ".join(f"{k}: {v}" for k, v in sorted(converted.items())) + "; "
      + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + "), "
      f"{len(not_converted)} kernel layers not converted"
      + (f" ({', '.join(not_converted)})" if not_converted else ""))
  return "\n".join(lines)


def _tile_positions(value, positions):
  """``(kh, kw, c_in, c_out)`` conv tensor → ``(P, kh*kw*c_in, c_out)``."""
  value = tf.convert_to_tensor(value)
  flat = tf.reshape(value, [1, -1, value.shape[-1]])
  return tf.tile(flat, [positions, 1, 1])


def untie(model, layers=None):
  """Returns a copy of ``model`` with chosen Conv2D layers untied.

  Each chosen ``Conv2D`` (Keras' or tfbio's) becomes a
  ``tfbio.layers.LocallyConnected2D`` with the same connectivity, whose
  filter at every position is a copy of the tied filter (and whose untied
  bias is the tied bias everywhere), so the new model computes the same
  function at the start. The feedback algorithm, masks, sign-fixing and seed
  are kept; fixed feedback state (``fa``/``urfb``/``rndf`` ``B``, ``frsf*``'s
  ``M``/``S_p``, masks) is tiled the same way, so the backward pass also
  starts identical. amit2019's ``deepnet_s`` recipe: train tied, freeze the
  first layer, retrain the rest untied. The input model is never modified.

  Args:
    model: a Sequential or functional model.
    layers: names or regular expressions (full match) of the Conv2D layers to
      untie; None unties every Conv2D.

  Returns:
    A new Keras model.

  Raises:
    ValueError: a name that matches no Conv2D layer, a dilated or
      channels-first convolution, or a layer whose input size is not static.
  """
  _check_clonable(model, "untie")
  patterns = None if layers is None else [
      (key, re.compile(key)) for key in ([layers] if isinstance(layers, str)
                                         else list(layers))]
  used, replaced = set(), set()

  def chosen(layer):
    if type(layer) not in (keras.layers.Conv2D, Conv2D):
      return False
    if patterns is None:
      return True
    for key, pattern in patterns:
      if key == layer.name or pattern.fullmatch(layer.name):
        used.add(key)
        return True
    return False

  def clone(layer):
    if not chosen(layer):
      return _keep(layer)
    config = layer.get_config()
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
      raise ValueError(f"Cannot untie {layer.name!r}: dilation_rate="
                       f"{config['dilation_rate']} is not supported.")
    if config.get("data_format", "channels_last") != "channels_last":
      raise ValueError(f"Cannot untie {layer.name!r}: data_format="
                       f"{config['data_format']!r}; only channels_last.")
    if config.get("groups", 1) != 1:
      raise ValueError(f"Cannot untie {layer.name!r}: groups="
                       f"{config['groups']} is not supported.")
    shape = tuple(layer.input.shape)
    if None in shape[1:]:
      raise ValueError(f"Cannot untie {layer.name!r}: its input shape {shape} "
                       "is not static.")
    keep = ("filters", "kernel_size", "strides", "padding", "activation",
            "use_bias", "kernel_initializer", "bias_initializer",
            "kernel_regularizer", "bias_regularizer", "activity_regularizer",
            "kernel_constraint", "bias_constraint", "name", "trainable",
            "dtype", "feedback", "density", "feedback_density", "sign_fixed",
            "seed")
    fresh = LocallyConnected2D(**{k: v for k, v in config.items()
                                  if k in keep})
    replaced.add(id(fresh))
    return fresh

  def copy(old, fresh):
    positions = fresh.out_h * fresh.out_w
    fresh.kernel.assign(_tile_positions(old.kernel, positions))
    if old.bias is not None:
      fresh.bias.assign(tf.broadcast_to(old.bias, fresh.bias.shape))
    if isinstance(old, Conv2D):
      for attr in ("kernel_mask", "feedback_mask"):
        if getattr(old, attr) is not None:
          getattr(fresh, attr).assign(
              _tile_positions(getattr(old, attr), positions))
      for name, variable in old._feedback_state.items():  # pylint: disable=protected-access
        fresh._feedback_state[name].assign(  # pylint: disable=protected-access
            _tile_positions(variable, positions))
      if old.feedback_step is not None:
        fresh.feedback_step.assign(old.feedback_step)
    fresh.reset_sign_reference()

  new = keras.models.clone_model(model, clone_function=clone, recursive=True)
  if patterns is not None:
    unused = [key for key, _ in patterns if key not in used]
    if unused:
      raise ValueError(f"untie(): layers matched no Conv2D layer: {unused}")
  old_layers = _copy_weights(model, new, replaced, copy)
  logging.info("tfbio.untie: %d of %d layers untied.", len(replaced),
               len(old_layers))
  return new
