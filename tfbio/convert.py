"""Swap every Dense/Conv2D of a Keras model for its tfbio feedback layer."""

import re

from absl import logging
import keras
import tensorflow as tf

from tfbio import feedback as feedback_lib
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense
from tfbio.layers.locally_connected import LocallyConnected2D

# Keras or tfbio class → tfbio class. Exact types only: subclasses of
# Dense/Conv2D (e.g. a user's custom layer) may change behaviour we would not
# reproduce. tfbio layers are re-created with the new algorithm.
_CONVERTIBLE = {keras.layers.Dense: Dense, keras.layers.Conv2D: Conv2D,
                Dense: Dense, Conv2D: Conv2D,
                LocallyConnected2D: LocallyConnected2D}
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
    if isinstance(fresh, keras.Model):
      continue  # its layers are visited on their own
    if id(fresh) in replaced:
      copy_replaced(old, fresh)
    elif old.weights:
      fresh.set_weights(old.get_weights())
  return old_layers


def convert(model, feedback, overrides=None, **layer_kwargs):
  """Returns a copy of ``model`` whose Dense/Conv2D layers are tfbio layers.

  Every ``keras.layers.Dense`` / ``keras.layers.Conv2D`` (nested models
  included) becomes ``tfbio.layers.Dense`` / ``tfbio.layers.Conv2D`` with the
  same config and weights and the chosen feedback algorithm; tfbio feedback
  layers already in the model are re-created with the chosen algorithm (fresh
  feedback state, same weights); every other layer is cloned with its
  weights. The input model is never modified.

  Example (xiao2018's "SS except the last layer")::

      base = keras.applications.ResNet50(weights=None, classes=10)
      model = tfbio.convert(base, "ss", overrides={"predictions": "bp"})

  Args:
    model: a Sequential or functional Keras model (``keras.applications``
      models included). Subclassed models cannot be cloned by Keras.
    feedback: algorithm for every converted layer (name, dict or object).
    overrides: optional ``{layer name or regex: algorithm}``; the first key
      that equals a layer's name, or else fully matches it as a regular
      expression, chooses that layer's algorithm.
    **layer_kwargs: extra tfbio layer arguments for every converted layer
      (``density``, ``feedback_density``, ``sign_fixed``).

  Returns:
    A new Keras model.

  Raises:
    ValueError: a subclassed model, an unknown algorithm, an override that
      matches no layer, or a layer that cannot be converted (grouped conv).
  """
  _check_clonable(model, "convert")
  default = feedback_lib.get(feedback)
  resolved = resolve_overrides(overrides)
  used = set()
  replaced = set()
  counts = {"converted": 0, "overridden": 0}

  def choose(name):
    for key, pattern, algo in resolved:
      if key == name or pattern.fullmatch(name):
        used.add(key)
        counts["overridden"] += 1
        return algo
    return default

  def clone(layer):
    cls = _CONVERTIBLE.get(type(layer))
    if cls is None:
      return layer.__class__.from_config(layer.get_config())
    config = layer.get_config()
    if config.get("lora_rank") or config.get("quantization_config"):
      raise ValueError(f"Layer {layer.name!r} uses LoRA or quantization, which "
                       "tfbio layers do not support.")
    if config.get("groups", 1) != 1:
      raise ValueError(f"Layer {layer.name!r} is a grouped convolution "
                       f"(groups={config['groups']}), which tfbio.layers.Conv2D"
                       " does not support.")
    for key in _DROPPED_KEYS:
      config.pop(key, None)
    counts["converted"] += 1
    fresh = cls(**{**config, "feedback": choose(layer.name), **layer_kwargs})
    replaced.add(id(fresh))
    return fresh

  new = keras.models.clone_model(model, clone_function=clone, recursive=True)
  unused = [key for key, _, _ in resolved if key not in used]
  if unused:
    raise ValueError(f"overrides keys matched no convertible layer: {unused}")

  def copy(old, fresh):
    fresh.kernel.assign(old.kernel)
    if old.bias is not None:
      fresh.bias.assign(old.bias)
    fresh.reset_sign_reference()

  old_layers = _copy_weights(model, new, replaced, copy)
  logging.info("tfbio.convert: %d of %d layers converted to feedback layers "
               "(%s by default, %d by overrides).", counts["converted"],
               len(old_layers), default.name, counts["overridden"])
  return new


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
      return layer.__class__.from_config(layer.get_config())
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
