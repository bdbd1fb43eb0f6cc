"""Swap every Dense/Conv2D of a Keras model for its tfbio feedback layer."""

import re

from absl import logging
import keras

from tfbio import feedback as feedback_lib
from tfbio.layers import base_feedback
from tfbio.layers.conv2d import Conv2D
from tfbio.layers.dense import Dense

# Keras class → tfbio class. Exact types only: subclasses of Dense/Conv2D
# (e.g. a user's custom layer) may change behaviour we would not reproduce.
_CONVERTIBLE = {keras.layers.Dense: Dense, keras.layers.Conv2D: Conv2D}
_DROPPED_KEYS = ("lora_rank", "lora_alpha", "quantization_config")


def _resolve_overrides(overrides):
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


def convert(model, feedback, overrides=None, **layer_kwargs):
  """Returns a copy of ``model`` whose Dense/Conv2D layers are tfbio layers.

  Every ``keras.layers.Dense`` / ``keras.layers.Conv2D`` (nested models
  included) becomes ``tfbio.layers.Dense`` / ``tfbio.layers.Conv2D`` with the
  same config and weights and the chosen feedback algorithm; every other layer
  is cloned with its weights. The input model is never modified.

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
  if not isinstance(model, keras.Model):
    raise ValueError(f"convert() needs a keras.Model. Received: {model!r}")
  # Functional models are instances of keras' (private) Functional class;
  # a class that *subclasses* it or keras.Model directly has its own call().
  if not (isinstance(model, keras.Sequential)
          or type(model).__name__ == "Functional"):
    raise ValueError(f"convert() supports Sequential and functional models; "
                     f"{type(model).__name__!r} is subclassed and cannot be "
                     "cloned.")
  default = feedback_lib.get(feedback)
  resolved = _resolve_overrides(overrides)
  used = set()
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
    return cls(**config, feedback=choose(layer.name), **layer_kwargs)

  new = keras.models.clone_model(model, clone_function=clone, recursive=True)
  unused = [key for key, _, _ in resolved if key not in used]
  if unused:
    raise ValueError(f"overrides keys matched no convertible layer: {unused}")

  old_layers, new_layers = list(_walk(model)), list(_walk(new))
  if len(old_layers) != len(new_layers):
    raise RuntimeError("clone_model changed the layer structure: "
                       f"{len(old_layers)} vs {len(new_layers)} layers")
  for old, fresh in zip(old_layers, new_layers):
    if isinstance(fresh, keras.Model):
      continue  # its layers are visited on their own
    if isinstance(fresh, base_feedback.BaseFeedbackLayer):
      fresh.kernel.assign(old.kernel)
      if old.bias is not None:
        fresh.bias.assign(old.bias)
      fresh.reset_sign_reference()
    elif old.weights:
      fresh.set_weights(old.get_weights())
  logging.info("tfbio.convert: %d of %d layers converted to feedback layers "
               "(%s by default, %d by overrides).", counts["converted"],
               len(old_layers), default.name, counts["overridden"])
  return new
